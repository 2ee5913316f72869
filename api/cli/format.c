/*
 * What the CLI prints: errors, aligned tables, durations for people, and
 * the lookups into floed's JSON that feed them.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

void cli__errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("floe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void cli__table_add(struct table *t, ...)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	va_list ap;
	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = va_arg(ap, char *); /* takes ownership */
	va_end(ap);
	t->nrows++;
}

void cli__table_print(struct table *t, FILE *out)
{
	size_t width[16] = { 0 };
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = strlen(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = strlen(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		struct floe_buf line = FLOE_BUF_INIT;
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
			bool last = c + 1 == t->ncols;
			if (t->right[c])
				floe_buf_printf(&line, "%*s", (int)width[c], cell);
			else
				floe_buf_printf(&line, "%-*s", last ? 0 : (int)width[c], cell);
			if (!last)
				floe_buf_puts(&line, "  ");
		}
		while (line.len && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		fprintf(out, "%s\n", line.data ? line.data : "");
		floe_buf_destroy(&line);
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

char *cli__human_ms(json_int_t ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		return xasprintf("%lld.%llds", (long long)(ms / 1000),
				 (long long)(ms % 1000 / 100));
	long long s = (long long)(ms / 1000);
	if (s < 3600)
		return xasprintf("%lldm%02llds", s / 60, s % 60);
	return xasprintf("%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
}

const char *cli__jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int cli__print_raw_json(const char *raw)
{
	size_t n = strlen(raw);
	fputs(raw, stdout);
	if (!n || raw[n - 1] != '\n')
		fputc('\n', stdout);
	return EXIT_OK;
}

json_int_t cli__json_int_of(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

json_t *cli__jpath(json_t *o, const char *path)
{
	while (o && *path) {
		size_t n = strcspn(path, ".");
		char key[64];
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = json_object_get(o, key);
		path += n + (path[n] == '.');
	}
	return o;
}

const char *cli__jpstr(json_t *o, const char *path, const char *dflt)
{
	const char *s = json_string_value(cli__jpath(o, path));
	return s ? s : dflt;
}

char *cli__int_or_dash(json_t *v)
{
	return json_is_integer(v) ? xasprintf("%lld", (long long)json_integer_value(v)) :
				    xstrdup("-");
}
