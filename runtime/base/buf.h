/* A growable byte buffer, always NUL-terminated for convenience. */
#ifndef FLOE_BUF_H
#define FLOE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct floe_buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
};

/* clang-format off: 14 lays a braced macro body out as a block */
#define FLOE_BUF_INIT      \
	{                  \
		NULL, 0, 0 \
	}
/* clang-format on */

/** Caller memory: init zeroes, destroy frees the storage. */
void floe_buf_init(struct floe_buf *b);
void floe_buf_destroy(struct floe_buf *b);
/** Empty it, keeping the storage. */
void floe_buf_reset(struct floe_buf *b);
/** Make room for at least n more bytes. */
void floe_buf_reserve(struct floe_buf *b, size_t n);
void floe_buf_append(struct floe_buf *b, const void *data, size_t len);
void floe_buf_puts(struct floe_buf *b, const char *s);
void floe_buf_printf(struct floe_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** Append a decimal number (no formatting pass: used on every request). */
void floe_buf_append_u64(struct floe_buf *b, uint64_t v);
/** Append nanoseconds as milliseconds with one decimal ("2053.9"). */
void floe_buf_append_ms(struct floe_buf *b, uint64_t ns);
/** Drop the first n bytes. */
void floe_buf_consume(struct floe_buf *b, size_t n);
/** Hand the storage to the caller (who frees it); b becomes empty. */
char *floe_buf_steal(struct floe_buf *b, size_t *len);

#endif
