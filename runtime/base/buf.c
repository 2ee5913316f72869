#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

void floe_buf_init(struct floe_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void floe_buf_destroy(struct floe_buf *b)
{
	free(b->data);
	floe_buf_init(b);
}

void floe_buf_reset(struct floe_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void floe_buf_reserve(struct floe_buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void floe_buf_append(struct floe_buf *b, const void *data, size_t len)
{
	floe_buf_reserve(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void floe_buf_puts(struct floe_buf *b, const char *s)
{
	floe_buf_append(b, s, strlen(s));
}

void floe_buf_printf(struct floe_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	floe_buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void floe_buf_consume(struct floe_buf *b, size_t n)
{
	if (n >= b->len) {
		floe_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *floe_buf_steal(struct floe_buf *b, size_t *len)
{
	char *d = b->data;
	if (len)
		*len = b->len;
	floe_buf_init(b);
	return d;
}

void floe_buf_append_u64(struct floe_buf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	floe_buf_append(b, tmp + sizeof(tmp) - n, n);
}

void floe_buf_append_ms(struct floe_buf *b, uint64_t ns)
{
	uint64_t tenths = (ns + 50000) / 100000;
	floe_buf_append_u64(b, tenths / 10);
	char frac[2] = { '.', (char)('0' + tenths % 10) };
	floe_buf_append(b, frac, 2);
}
