#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

int floe_log_level = FLOE_LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void floe_log_init(enum floe_log_level level, bool json)
{
	floe_log_level = level;
	log_json = json;
}

int floe_log_level_parse(const char *name, enum floe_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum floe_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF), 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string (RFC 8259 section 7). Messages carry engine output, paths
 * and config text: control characters are escaped so a record stays one
 * line, and bytes that are not UTF-8 (a message cut mid-character, a
 * Latin-1 file name) become U+FFFD so the line still parses. */
static void json_string(struct floe_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	floe_buf_puts(b, "\"");
	while (left > 0) {
		unsigned char c = *p;
		size_t n = 1;
		switch (c) {
		case '"': floe_buf_puts(b, "\\\""); break;
		case '\\': floe_buf_puts(b, "\\\\"); break;
		case '\n': floe_buf_puts(b, "\\n"); break;
		case '\r': floe_buf_puts(b, "\\r"); break;
		case '\t': floe_buf_puts(b, "\\t"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char esc[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				floe_buf_puts(b, esc);
			} else if ((n = utf8_len(p, left)) > 0) {
				floe_buf_append(b, p, n);
			} else {
				n = 1;
				floe_buf_puts(b, "\\ufffd");
			}
		}
		p += n;
		left -= n;
	}
	floe_buf_puts(b, "\"");
}

static void log_write(enum floe_log_level level, const char *tag, const char *endpoint,
		      const char *replica, int errnum, const char *fmt, va_list ap)
{
	int saved_errno = errno; /* callers may log between a call and their errno check */
	char msg[2048];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (errnum != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnum));

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

	/* Built whole, then one write(2), so lines from several threads never
	 * interleave; never cut, since a cut JSON line does not parse. */
	struct floe_buf line = FLOE_BUF_INIT;
	floe_buf_reserve(&line, 128 + strlen(msg));
	if (log_json) {
		floe_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":", when,
				level_names[level]);
		json_string(&line, tag);
		if (endpoint) {
			floe_buf_puts(&line, ",\"endpoint\":");
			json_string(&line, endpoint);
		}
		if (replica) {
			floe_buf_puts(&line, ",\"replica\":");
			json_string(&line, replica);
		}
		floe_buf_puts(&line, ",\"msg\":");
		json_string(&line, msg);
		floe_buf_puts(&line, "}\n");
	} else {
		floe_buf_printf(&line, "%s %-5s %-10s ", when, level_names[level], tag);
		if (endpoint)
			floe_buf_printf(&line, "%s: ", endpoint);
		if (replica)
			floe_buf_printf(&line, "replica %s ", replica);
		floe_buf_printf(&line, "%s\n", msg);
	}
	size_t off = 0;
	while (off < line.len) {
		ssize_t r = write(STDERR_FILENO, line.data + off, line.len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	floe_buf_destroy(&line);
	errno = saved_errno;
}

void floe__log(enum floe_log_level level, const char *tag, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(level, tag, NULL, NULL, errnum, fmt, ap);
	va_end(ap);
}

void floe__log_ctx(enum floe_log_level level, const char *tag, const char *endpoint,
		   const char *replica, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(level, tag, endpoint, replica, errnum, fmt, ap);
	va_end(ap);
}
