/*
 * Unit tests for runtime/base/buf (growth, consume, steal, reset), the
 * error helpers (set, wrap, clear, truncation) and the xalloc helpers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "xalloc.h"

/* What every buffer promises after any operation. */
static void check_invariants(const struct floe_buf *b)
{
	if (!b->data) {
		cr_assert_eq(b->len, 0);
		cr_assert_eq(b->cap, 0);
		return;
	}
	cr_assert_lt(b->len, b->cap, "no room for the NUL: len %zu cap %zu", b->len, b->cap);
	cr_assert_eq(b->data[b->len], '\0', "not NUL-terminated");
}

/* ------------------------------------------------------------------- buf */

Test(buf, init_is_empty)
{
	struct floe_buf a = FLOE_BUF_INIT;
	struct floe_buf b;
	memset(&b, 0xab, sizeof(b));
	floe_buf_init(&b);
	cr_assert_null(a.data);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
	floe_buf_destroy(&b); /* destroying an empty buffer is fine */
	floe_buf_destroy(&a);
}

Test(buf, append_grows_and_keeps_content)
{
	struct floe_buf b = FLOE_BUF_INIT;
	size_t caps_seen = 0, last_cap = 0;
	for (int i = 0; i < 10000; i++) {
		char ch = (char)('a' + i % 26);
		floe_buf_append(&b, &ch, 1);
		check_invariants(&b);
		if (b.cap != last_cap) {
			caps_seen++;
			last_cap = b.cap;
		}
	}
	cr_assert_eq(b.len, 10000);
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(b.data[i], (char)('a' + i % 26), "byte %d", i);
	/* Geometric growth: a handful of reallocations, not one per byte. */
	cr_assert_leq(caps_seen, 16, "%zu capacity changes for 10000 appends", caps_seen);
	floe_buf_destroy(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
}

Test(buf, append_binary_and_empty)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_append(&b, "", 0);
	check_invariants(&b);
	cr_assert_not_null(b.data, "an append, even empty, gives a C string");
	cr_assert_str_eq(b.data, "");
	floe_buf_append(&b, "a\0b", 3);
	cr_assert_eq(b.len, 3);
	cr_assert_eq(memcmp(b.data, "a\0b", 4), 0, "embedded NUL kept, NUL after");
	floe_buf_puts(&b, "cd");
	cr_assert_eq(b.len, 5);
	cr_assert_eq(memcmp(b.data, "a\0bcd", 6), 0);
	check_invariants(&b);
	floe_buf_destroy(&b);
}

Test(buf, append_large_block)
{
	size_t n = 1 << 20;
	char *big = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i * 31 + 7);
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b, "head:");
	floe_buf_append(&b, big, n);
	check_invariants(&b);
	cr_assert_eq(b.len, n + 5);
	cr_assert_eq(memcmp(b.data, "head:", 5), 0);
	cr_assert_eq(memcmp(b.data + 5, big, n), 0);
	free(big);
	floe_buf_destroy(&b);
}

Test(buf, printf_formats_and_grows)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_printf(&b, "%s=%d;", "x", 42);
	cr_assert_str_eq(b.data, "x=42;");
	cr_assert_eq(b.len, 5);
	/* Past the first capacity in one call. */
	floe_buf_printf(&b, "%0300d|%s", 7, "end");
	check_invariants(&b);
	cr_assert_eq(b.len, 5 + 300 + 4);
	cr_assert_eq(strncmp(b.data, "x=42;000", 8), 0);
	cr_assert_str_eq(b.data + b.len - 5, "7|end");
	/* Many small ones. */
	for (int i = 0; i < 1000; i++)
		floe_buf_printf(&b, "%d,", i % 10);
	check_invariants(&b);
	cr_assert_eq(b.len, 309 + 2000);
	cr_assert_str_eq(b.data + b.len - 4, "8,9,");
	/* An empty expansion changes nothing. */
	size_t len = b.len;
	floe_buf_printf(&b, "%s", "");
	cr_assert_eq(b.len, len);
	check_invariants(&b);
	floe_buf_destroy(&b);
}

Test(buf, printf_into_exact_capacity)
{
	/* 63 bytes fill a 64-byte first allocation exactly (NUL included). */
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_printf(&b, "%063d", 1);
	check_invariants(&b);
	cr_assert_eq(b.len, 63);
	floe_buf_printf(&b, "%c", 'z');
	check_invariants(&b);
	cr_assert_eq(b.len, 64);
	cr_assert_eq(b.data[63], 'z');
	cr_assert_eq(b.data[62], '1');
	floe_buf_destroy(&b);
}

Test(buf, reserve_makes_room_without_moving)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b, "abc");
	floe_buf_reserve(&b, 5000);
	cr_assert_geq(b.cap, 3 + 5000 + 1);
	cr_assert_str_eq(b.data, "abc", "reserve keeps content");
	cr_assert_eq(b.len, 3);
	char *before = b.data;
	size_t cap = b.cap;
	for (int i = 0; i < 5000; i++)
		floe_buf_append(&b, "x", 1);
	cr_assert_eq(b.data, before, "reserved room was not enough");
	cr_assert_eq(b.cap, cap);
	check_invariants(&b);
	floe_buf_destroy(&b);
}

Test(buf, consume)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b, "hello world");
	floe_buf_consume(&b, 6);
	cr_assert_eq(b.len, 5);
	cr_assert_str_eq(b.data, "world");
	check_invariants(&b);
	floe_buf_consume(&b, 0);
	cr_assert_str_eq(b.data, "world");
	floe_buf_consume(&b, 5);
	cr_assert_eq(b.len, 0);
	cr_assert_str_eq(b.data, "");
	floe_buf_puts(&b, "again");
	floe_buf_consume(&b, 100); /* more than there is: empties it */
	cr_assert_eq(b.len, 0);
	cr_assert_str_eq(b.data, "");
	/* Appending after consuming keeps order. */
	floe_buf_puts(&b, "abc");
	floe_buf_consume(&b, 1);
	floe_buf_puts(&b, "de");
	cr_assert_str_eq(b.data, "bcde");
	check_invariants(&b);
	floe_buf_destroy(&b);

	struct floe_buf empty = FLOE_BUF_INIT;
	floe_buf_consume(&empty, 3); /* on a never-used buffer */
	cr_assert_eq(empty.len, 0);
	floe_buf_destroy(&empty);
}

Test(buf, reset_keeps_storage)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_printf(&b, "%0500d", 0);
	char *data = b.data;
	size_t cap = b.cap;
	floe_buf_reset(&b);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.data, data);
	cr_assert_eq(b.cap, cap);
	cr_assert_str_eq(b.data, "");
	floe_buf_puts(&b, "new");
	cr_assert_str_eq(b.data, "new");
	cr_assert_eq(b.data, data);
	floe_buf_destroy(&b);

	struct floe_buf never = FLOE_BUF_INIT;
	floe_buf_reset(&never);
	cr_assert_null(never.data);
	cr_assert_eq(never.len, 0);
}

Test(buf, steal_hands_over_storage)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b, "owned by caller");
	size_t len = 0;
	char *s = floe_buf_steal(&b, &len);
	cr_assert_eq(len, 15);
	cr_assert_str_eq(s, "owned by caller");
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
	/* The buffer is reusable and independent of the stolen storage. */
	floe_buf_puts(&b, "fresh");
	cr_assert_str_eq(b.data, "fresh");
	cr_assert_str_eq(s, "owned by caller");
	free(s);
	s = floe_buf_steal(&b, NULL);
	cr_assert_str_eq(s, "fresh");
	free(s);

	struct floe_buf empty = FLOE_BUF_INIT;
	len = 99;
	cr_assert_null(floe_buf_steal(&empty, &len));
	cr_assert_eq(len, 0);
}

/* ----------------------------------------------------------------- error */

Test(error, set_formats_and_returns_code)
{
	floe_error err;
	floe_error_clear(&err);
	cr_assert_eq(err.code, 0);
	cr_assert_str_eq(err.msg, "");
	int r = floe_error_set(&err, -ENOENT, "open %s: %s", "/x.yaml", strerror(ENOENT));
	cr_assert_eq(r, -ENOENT);
	cr_assert_eq(err.code, -ENOENT);
	cr_assert_str_eq(err.msg, "open /x.yaml: No such file or directory");
	/* Setting again replaces, it does not append. */
	floe_error_set(&err, -1, "second");
	cr_assert_eq(err.code, -1);
	cr_assert_str_eq(err.msg, "second");
	floe_error_clear(&err);
	cr_assert_eq(err.code, 0);
	cr_assert_str_eq(err.msg, "");
}

Test(error, null_error_is_allowed)
{
	cr_assert_eq(floe_error_set(NULL, -EINVAL, "ignored %d", 1), -EINVAL);
	cr_assert_eq(floe_error_wrap(NULL, "ctx"), -1);
	floe_error_clear(NULL);
}

Test(error, wrap_prefixes_context_and_keeps_code)
{
	floe_error err;
	floe_error_set(&err, -EINVAL, "t.yaml:12: unknown key '%s'", "prot");
	int r = floe_error_wrap(&err, "load of %s failed", "t.yaml");
	cr_assert_eq(r, -EINVAL);
	cr_assert_eq(err.code, -EINVAL);
	cr_assert_str_eq(err.msg, "load of t.yaml failed: t.yaml:12: unknown key 'prot'");
	floe_error_wrap(&err, "reload");
	cr_assert_str_eq(err.msg, "reload: load of t.yaml failed: t.yaml:12: unknown key 'prot'");
	cr_assert_eq(err.code, -EINVAL);
}

Test(error, wrap_does_not_reinterpret_percent)
{
	floe_error err;
	floe_error_set(&err, -1, "100%% sure, %s", "%s%n");
	cr_assert_str_eq(err.msg, "100% sure, %s%n");
	floe_error_wrap(&err, "at %d%%", 50);
	cr_assert_str_eq(err.msg, "at 50%: 100% sure, %s%n");
}

Test(error, long_messages_truncate_safely)
{
	char big[3 * FLOE_ERROR_MSG_MAX];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	floe_error err;
	floe_error_set(&err, -E2BIG, "%s", big);
	cr_assert_eq(strlen(err.msg), FLOE_ERROR_MSG_MAX - 1);
	cr_assert_eq(err.code, -E2BIG);

	/* The context survives a full message; the tail is what gets cut. */
	floe_error_wrap(&err, "context");
	cr_assert_eq(strlen(err.msg), FLOE_ERROR_MSG_MAX - 1);
	cr_assert_eq(strncmp(err.msg, "context: mmm", 12), 0);

	/* A context longer than the message buffer still leaves a C string. */
	floe_error_set(&err, -1, "inner");
	floe_error_wrap(&err, "%s", big);
	cr_assert_eq(strlen(err.msg), FLOE_ERROR_MSG_MAX - 1);
	cr_assert_eq(err.msg[0], 'm');
}

/* ---------------------------------------------------------------- xalloc */

Test(xalloc, strings)
{
	cr_assert_null(xstrdup(NULL));
	char *s = xstrdup("copy");
	cr_assert_str_eq(s, "copy");
	free(s);
	s = xstrndup("abcdef", 3);
	cr_assert_str_eq(s, "abc");
	free(s);
	s = xstrndup("ab", 10);
	cr_assert_str_eq(s, "ab");
	free(s);
	s = xasprintf("%s-%03d", "replica", 7);
	cr_assert_str_eq(s, "replica-007");
	free(s);
}

Test(xalloc, calloc_zeroes_and_realloc_keeps)
{
	unsigned char *p = xcalloc(4096, 1);
	for (size_t i = 0; i < 4096; i++)
		cr_assert_eq(p[i], 0);
	memcpy(p, "keep", 4);
	p = xrealloc(p, 1 << 20);
	cr_assert_eq(memcmp(p, "keep", 4), 0);
	free(p);
	void *m = xmalloc(1);
	cr_assert_not_null(m);
	free(m);
}

static int fd_seen = -1;

static void scope_with_cleanups(void)
{
	cleanup_close int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cleanup_close int none = -1; /* not a descriptor: left alone */
	cleanup_free char *s = xstrdup("freed on scope exit");
	cr_assert_geq(fd, 0);
	cr_assert_eq(none, -1);
	cr_assert_not_null(s);
	fd_seen = fd;
}

Test(xalloc, cleanup_helpers)
{
	scope_with_cleanups();
	cr_assert_geq(fd_seen, 0);
	errno = 0;
	cr_assert_eq(fcntl(fd_seen, F_GETFD), -1, "descriptor still open after its scope");
	cr_assert_eq(errno, EBADF);
}

/* AddressSanitizer reports an impossible size itself instead of returning
 * NULL, so the abort path is only observable without it. */
#ifndef __SANITIZE_ADDRESS__
Test(xalloc, out_of_memory_aborts, .signal = SIGABRT)
{
	void *volatile p = xmalloc(SIZE_MAX / 2);
	free(p);
}

Test(xalloc, calloc_overflow_aborts, .signal = SIGABRT)
{
	void *volatile p = xcalloc(SIZE_MAX / 2, 4);
	free(p);
}
#endif

Test(buf, decimal_and_millisecond_formatting)
{
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_append_u64(&b, 0);
	floe_buf_puts(&b, " ");
	floe_buf_append_u64(&b, 18446744073709551615ull);
	floe_buf_puts(&b, " ");
	floe_buf_append_ms(&b, 0);
	floe_buf_puts(&b, " ");
	floe_buf_append_ms(&b, 2053949999); /* 2053.949999 ms rounds to 2053.9 */
	floe_buf_puts(&b, " ");
	floe_buf_append_ms(&b, 2053950000); /* exactly half a tenth rounds up */
	floe_buf_puts(&b, " ");
	floe_buf_append_ms(&b, 999999);
	cr_assert_str_eq(b.data, "0 18446744073709551615 0.0 2053.9 2054.0 1.0");
	floe_buf_destroy(&b);
}
