/*
 * Bad input on the data plane: malformed HTTP and request-smuggling shapes
 * get their status, are never forwarded, and floed keeps serving.
 *
 * The endpoint is the echo engine, which counts the requests it receives:
 * after each bad request a normal one must see exactly the count of normal
 * requests so far, so a bad request that slipped through shows up.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(badinput, .init = harness_test_init, .fini = harness_test_fini, .timeout = 120);

/* clang-format off */
#define CONFIG                          \
	"limits:\n"                     \
	"  max_header_bytes: 4096\n"    \
	"  max_body_bytes: 1024\n"      \
	"  header_timeout: 500ms\n"     \
	"endpoints:\n"                  \
	HARNESS_ECHO_EP("echo")         \
	"    scaling:\n"                \
	"      min_replica: 1\n"
/* clang-format on */

struct ctx {
	struct floed *f;
	int normal; /* normal requests the echo engine has answered */
};

static void expect_serving(struct ctx *c, const char *after)
{
	struct http_resp r;
	http_get(floed_url(c->f, "/endpoints/echo/count"), &r);
	cr_assert_eq(r.status, 200, "after %s: a normal request got %ld (curl: %s) %.200s", after,
		     r.status, r.error, http_body(&r));
	c->normal++;
	json_t *j = http_json(&r);
	json_int_t n = json_integer_value(json_object_get(j, "count"));
	cr_expect_eq(n, c->normal,
		     "after %s: the engine has seen %lld requests, %d were normal: "
		     "the bad one was forwarded",
		     after, (long long)n, c->normal);
	/* Later checks count from what the engine saw. */
	if (n > c->normal)
		c->normal = (int)n;
	json_decref(j);
	http_resp_free(&r);
}

static void ctx_start(struct ctx *c)
{
	c->f = floed_start(CONFIG);
	c->normal = 0;
	expect_serving(c, "start");
}

/* status, a JSON error body of `type`, and (if must_close) the connection closed. */
static void expect_refused(const struct raw_resp *r, const char *what, int status, const char *type,
			   bool must_close)
{
	cr_expect_eq(r->status, status, "%s: status %d, want %d; got: %.300s", what, r->status,
		     status, r->data.data);
	if (must_close)
		cr_expect(r->closed, "%s: connection left open after %d", what, r->status);
	if (r->status != status)
		return;
	json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
	const char *t = json_string_value(json_object_get(json_object_get(j, "error"), "type"));
	cr_expect(t && strcmp(t, type) == 0, "%s: error type %s, want %s; body %.200s", what,
		  t ? t : "(none)", type, r->body.data);
	json_decref(j);
}

struct shape {
	const char *name;
	const char *bytes;
};

/* Each is refused with 400 and a close, never forwarded. */
static const struct shape bad_400[] = {
	{ "garbage request line", "THIS IS NOT HTTP\r\n\r\n" },
	{ "binary request line", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n" },
	{ "Content-Length with Transfer-Encoding",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
	{ "Transfer-Encoding with Content-Length",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	  "Content-Length: 5\r\n\r\n0\r\n\r\n" },
	{ "two differing Content-Length",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	  "Content-Length: 6\r\n\r\nhello!" },
	{ "Content-Length: abc",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nabc" },
	{ "Content-Length: -1",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" },
	{ "obs-fold header",
	  "GET /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n" },
	{ "space before colon", "GET /endpoints/echo/x HTTP/1.1\r\nHost : x\r\n\r\n" },
	{ "invalid chunk size",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "zz\r\nhello\r\n0\r\n\r\n" },
	{ "Transfer-Encoding: gzip",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxxxx" },
	{ "Transfer-Encoding: gzip, chunked",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	  "4\r\nxxxx\r\n0\r\n\r\n" },
	{ "Transfer-Encoding: identity",
	  "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nxxxx" },
};

Test(badinput, malformed_and_smuggling_shapes_get_400_and_are_not_forwarded)
{
	struct ctx c;
	ctx_start(&c);
	for (size_t i = 0; i < sizeof(bad_400) / sizeof(bad_400[0]); i++) {
		struct raw_resp r;
		raw_exchange(c.f->port, bad_400[i].bytes, strlen(bad_400[i].bytes), 5000, &r);
		expect_refused(&r, bad_400[i].name, 400, "bad_request", true);
		raw_resp_free(&r);
		expect_serving(&c, bad_400[i].name);
	}
	FLOED_STOP_OK(c.f);
}

Test(badinput, header_block_over_the_limit_gets_431)
{
	struct ctx c;
	ctx_start(&c);
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b, "GET /endpoints/echo/x HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 64; i++) /* 64 x ~130 bytes: 8 KiB, limit 4096 */
		floe_buf_printf(&b, "X-Pad-%02d: %0120d\r\n", i, 0);
	floe_buf_puts(&b, "\r\n");
	struct raw_resp r;
	raw_exchange(c.f->port, b.data, b.len, 5000, &r);
	expect_refused(&r, "8 KiB of headers", 431, "header_too_large", false);
	raw_resp_free(&r);
	expect_serving(&c, "431");

	/* A single header line longer than the limit, too. */
	floe_buf_reset(&b);
	floe_buf_puts(&b, "GET /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nX-Long: ");
	for (int i = 0; i < 6000; i++)
		floe_buf_puts(&b, "a");
	floe_buf_puts(&b, "\r\n\r\n");
	raw_exchange(c.f->port, b.data, b.len, 5000, &r);
	expect_refused(&r, "one 6000-byte header", 431, "header_too_large", false);
	raw_resp_free(&r);
	expect_serving(&c, "431 (long line)");
	floe_buf_destroy(&b);
	FLOED_STOP_OK(c.f);
}

Test(badinput, body_over_the_limit_gets_413)
{
	struct ctx c;
	ctx_start(&c);
	struct floe_buf b = FLOE_BUF_INIT;
	floe_buf_puts(&b,
		      "POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n");
	for (int i = 0; i < 4096; i++)
		floe_buf_puts(&b, "b");
	struct raw_resp r;
	raw_exchange(c.f->port, b.data, b.len, 5000, &r);
	expect_refused(&r, "Content-Length 4096 (limit 1024)", 413, "payload_too_large", false);
	raw_resp_free(&r);
	expect_serving(&c, "413 (Content-Length)");

	/* Chunked: the size is only known as it streams in. */
	floe_buf_reset(&b);
	floe_buf_puts(
		&b,
		"POST /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 8; i++) {
		floe_buf_puts(&b, "200\r\n");
		for (int k = 0; k < 512; k++)
			floe_buf_puts(&b, "c");
		floe_buf_puts(&b, "\r\n");
	}
	floe_buf_puts(&b, "0\r\n\r\n");
	raw_exchange(c.f->port, b.data, b.len, 5000, &r);
	expect_refused(&r, "chunked 4096 bytes (limit 1024)", 413, "payload_too_large", false);
	raw_resp_free(&r);
	/* Whatever the engine saw of it, it was not a complete request. */
	expect_serving(&c, "413 (chunked)");

	/* The OpenAI route reads the body to route it: same limit. */
	floe_buf_reset(&b);
	floe_buf_puts(&b, "{\"model\":\"echo\",\"prompt\":\"");
	for (int i = 0; i < 4096; i++)
		floe_buf_puts(&b, "d");
	floe_buf_puts(&b, "\"}");
	struct http_resp hr;
	http_post(floed_url(c.f, "/v1/completions"), b.data, &hr, "Content-Type: application/json",
		  NULL);
	http_assert_error(&hr, 413, "payload_too_large");
	http_resp_free(&hr);
	expect_serving(&c, "413 (OpenAI route)");
	floe_buf_destroy(&b);
	FLOED_STOP_OK(c.f);
}

Test(badinput, headers_sent_too_slowly_get_408_and_a_close)
{
	struct ctx c;
	ctx_start(&c);
	int fd = raw_connect(c.f->port);
	cr_assert(fd >= 0);
	static const char half[] = "GET /endpoints/echo/x HT";
	cr_assert_eq(raw_send(fd, half, strlen(half)), 0);
	struct raw_resp r;
	/* header_timeout is 500 ms; wait up to 10 s for the answer and close. */
	raw_read(fd, 10000, &r);
	close(fd);
	expect_refused(&r, "half a request line", 408, "request_timeout", true);
	raw_resp_free(&r);
	expect_serving(&c, "408");

	/* Trickling: a complete line, then one header byte at a time, slowly. */
	fd = raw_connect(c.f->port);
	cr_assert(fd >= 0);
	static const char line[] = "GET /endpoints/echo/x HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	cr_assert_eq(raw_send(fd, line, strlen(line)), 0);
	bool closed = false;
	for (int i = 0; i < 40 && !closed; i++) {
		harness_sleep_ms(100);
		closed = raw_send(fd, "a", 1) < 0;
	}
	raw_read(fd, 10000, &r);
	close(fd);
	expect_refused(&r, "headers trickled byte by byte", 408, "request_timeout", true);
	raw_resp_free(&r);
	expect_serving(&c, "408 (trickle)");
	FLOED_STOP_OK(c.f);
}

Test(badinput, unknown_endpoint_gets_404_json)
{
	struct ctx c;
	ctx_start(&c);
	struct http_resp r;
	http_get(floed_url(c.f, "/endpoints/nosuch/generate"), &r);
	http_assert_error(&r, 404, "not_found");
	http_resp_free(&r);
	http_post(floed_url(c.f, "/endpoints/nosuch"), "{}", &r, "Content-Type: application/json",
		  NULL);
	http_assert_error(&r, 404, "not_found");
	http_resp_free(&r);
	expect_serving(&c, "404");
	FLOED_STOP_OK(c.f);
}

Test(badinput, openai_route_needs_a_json_body_with_a_model)
{
	struct ctx c;
	ctx_start(&c);
	static const struct {
		const char *what, *body;
	} cases[] = {
		{ "not JSON", "this is not json" },
		{ "truncated JSON", "{\"model\":\"echo\",\"messages\":[" },
		{ "JSON without model", "{\"messages\":[]}" },
		{ "model not a string", "{\"model\":42}" },
		{ "a JSON array", "[\"echo\"]" },
		{ "empty body", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_resp r;
		struct http_req req = { .method = "POST",
					.url = floed_url(c.f, "/v1/chat/completions"),
					.body = cases[i].body,
					.body_len = strlen(cases[i].body),
					.headers = (const char *const[]){
						"Content-Type: application/json", NULL } };
		if (!*cases[i].body)
			req.body = NULL; /* POST without a body */
		http_do(&req, &r);
		cr_expect_eq(r.status, 400, "%s: status %ld", cases[i].what, r.status);
		if (r.status == 400)
			http_assert_error(&r, 400, "bad_request");
		http_resp_free(&r);
		expect_serving(&c, cases[i].what);
	}
	FLOED_STOP_OK(c.f);
}

Test(badinput, random_garbage_on_50_connections)
{
	struct ctx c;
	ctx_start(&c);
	enum {
		N = 50
	};
	int fds[N];
	unsigned seed = 20260101;
	char buf[2048];
	for (int i = 0; i < N; i++) {
		size_t len = 1 + (size_t)(rand_r(&seed) % 2000);
		size_t off = 0;
		/* Half start with a valid request line, to reach the header parser. */
		if (i % 2) {
			static const char l[] = "POST /endpoints/echo/x HTTP/1.1\r\n";
			memcpy(buf, l, strlen(l));
			off = strlen(l);
			len += off;
			if (len > sizeof(buf))
				len = sizeof(buf);
		}
		for (size_t k = off; k < len; k++)
			buf[k] = (char)(rand_r(&seed) & 0xff);
		fds[i] = raw_connect(c.f->port);
		cr_assert(fds[i] >= 0, "connection %d refused: %s", i, strerror(-fds[i]));
		raw_send(fds[i], buf, len);
	}
	/* Every connection is answered (400, or 408 past header_timeout, or 431)
	 * and closed; none is left hanging. */
	int closed = 0, bad_status = 0;
	int64_t deadline = harness_now_ms() + 15000;
	for (int i = 0; i < N; i++) {
		struct raw_resp r;
		int64_t left = deadline - harness_now_ms();
		raw_read(fds[i], left > 0 ? (int)left : 0, &r);
		close(fds[i]);
		closed += r.closed;
		if (r.status && (r.status < 400 || r.status > 499)) {
			bad_status++;
			cr_log_error("garbage connection %d got status %d", i, r.status);
		}
		raw_resp_free(&r);
	}
	cr_expect_eq(closed, N, "%d of %d garbage connections were closed by floed", closed, N);
	cr_expect_eq(bad_status, 0, "%d garbage connections got a non-4xx status", bad_status);
	cr_expect_eq(http_status(NULL, floed_api_url(c.f, "/healthz"), NULL), 200);
	expect_serving(&c, "50 garbage connections");
	FLOED_STOP_OK(c.f);
}
