/*
 * The proxy: routes (prefix and OpenAI model), exact bodies, streaming both
 * ways, keep-alive, hop-by-hop headers, and replicas dying under requests.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(proxy, .init = harness_test_init, .fini = harness_test_fini, .timeout = 120);

#define JSON_CT "Content-Type: application/json"
#define GEN_BODY "{\"inputs\":\"hello floe\",\"parameters\":{\"max_new_tokens\":8}}"
#define CHAT_BODY(model, stream)                                                                \
	"{\"model\":\"" model "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]," \
	"\"max_tokens\":6,\"stream\":" stream "}"
#define COMPL_BODY(model, stream) \
	"{\"model\":\"" model "\",\"prompt\":\"once upon\",\"max_tokens\":5,\"stream\":" stream "}"
#define EMB_BODY(model) "{\"model\":\"" model "\",\"input\":\"embed me\"}"

static int replica_of(const struct http_resp *r, const char *ep)
{
	char *v = http_header(r, "X-Floe-Replica");
	int n = replica_seq(v, ep);
	free(v);
	return n;
}

static void expect_same_body(const struct http_resp *r, const char *want, size_t want_len,
			     const char *what)
{
	cr_expect_eq(r->status, 200, "%s: status %ld (curl %s) %.300s", what, r->status, r->error,
		     http_body(r));
	cr_expect(r->body.len == want_len && memcmp(r->body.data, want, want_len) == 0,
		  "%s: body differs from the engine's\n got (%zu): %.400s\nwant (%zu): %.400s",
		  what, r->body.len, http_body(r), want_len, want);
}

/* A string member, "(none)" when missing (criterion's str asserts need non-NULL). */
static const char *jstr(json_t *j, const char *key)
{
	const char *v = json_string_value(json_object_get(j, key));
	return v ? v : "(none)";
}

/* Last value of header `name` (case-insensitive) in the echo engine's answer. */
static const char *echo_header(json_t *echo, const char *name)
{
	json_t *hs = json_object_get(echo, "headers");
	const char *v = NULL;
	size_t i;
	json_t *h;
	json_array_foreach(hs, i, h) {
		const char *n = json_string_value(json_array_get(h, 0));
		if (n && strcasecmp(n, name) == 0)
			v = json_string_value(json_array_get(h, 1));
	}
	return v;
}

static json_t *echo_json(const struct http_resp *r)
{
	cr_assert_eq(r->status, 200, "echo: status %ld (curl %s) %.300s", r->status, r->error,
		     http_body(r));
	json_t *j = http_json(r);
	cr_assert(j, "echo engine answer is not JSON: %.300s", http_body(r));
	return j;
}

/* A value of the sim's own /metrics, read through floed. */
static double sim_metric(struct floed *f, const char *ep, const char *series)
{
	char path[128];
	snprintf(path, sizeof(path), "/endpoints/%s/metrics", ep);
	struct http_resp r;
	double v = -1;
	if (http_get(floed_url(f, path), &r) == 200)
		v = metrics_find(http_body(&r), series);
	http_resp_free(&r);
	return v;
}

Test(proxy, routes_give_the_engine_bodies)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", "") HARNESS_SIM_EP("other", ""));
	struct sim *ref = sim_start("tiny", NULL);
	static const struct {
		const char *engine_path, *floed_path, *body;
	} cases[] = {
		{ "/generate", "/endpoints/tiny/generate", GEN_BODY },
		{ "/v1/chat/completions", "/v1/chat/completions", CHAT_BODY("tiny", "false") },
		{ "/v1/completions", "/v1/completions", COMPL_BODY("tiny", "false") },
		{ "/v1/embeddings", "/v1/embeddings", EMB_BODY("tiny") },
		{ "/v1/chat/completions", "/endpoints/tiny/v1/chat/completions",
		  CHAT_BODY("tiny", "false") },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t want_len;
		char *want = sim_post(ref, cases[i].engine_path, cases[i].body, &want_len);
		cr_assert(want, "reference sim refused %s", cases[i].engine_path);
		struct http_resp r;
		http_post(floed_url(f, cases[i].floed_path), cases[i].body, &r, JSON_CT, NULL);
		expect_same_body(&r, want, want_len, cases[i].floed_path);
		cr_expect_eq(replica_of(&r, "tiny"), 1, "%s: X-Floe-Replica", cases[i].floed_path);
		http_resp_free(&r);
		free(want);
	}

	/* A GET through the prefix. */
	struct http_resp want, got;
	char url[128];
	snprintf(url, sizeof(url), "%s/v1/models", ref->url);
	cr_assert_eq(http_get(url, &want), 200);
	http_get(floed_url(f, "/endpoints/tiny/v1/models"), &got);
	expect_same_body(&got, want.body.data, want.body.len, "GET /endpoints/tiny/v1/models");
	http_resp_free(&want);
	http_resp_free(&got);

	/* The model field picks the endpoint. */
	http_post(floed_url(f, "/v1/embeddings"), EMB_BODY("other"), &got, JSON_CT, NULL);
	cr_expect_eq(got.status, 200);
	cr_expect_eq(replica_of(&got, "other"), 1,
		     "model \"other\" was not routed to endpoint other");
	json_t *j = http_json(&got);
	cr_expect_str_eq(jstr(j, "model"), "other");
	json_decref(j);
	http_resp_free(&got);

	/* No endpoint of that name. */
	http_post(floed_url(f, "/v1/chat/completions"), CHAT_BODY("nosuch", "false"), &got, JSON_CT,
		  NULL);
	http_assert_error(&got, 404, "not_found");
	http_resp_free(&got);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(proxy, prefix_is_stripped_and_query_kept)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_ECHO_EP("echo"));
	struct http_resp r;
	http_get(floed_url(f, "/endpoints/echo/a/b?x=1&y=two"), &r);
	json_t *j = echo_json(&r);
	cr_expect_str_eq(jstr(j, "path"), "/a/b?x=1&y=two");
	cr_expect_str_eq(jstr(j, "method"), "GET");
	json_decref(j);
	http_resp_free(&r);

	http_get(floed_url(f, "/endpoints/echo"), &r);
	j = echo_json(&r);
	cr_expect_str_eq(jstr(j, "path"), "/", "/endpoints/echo is forwarded as %s",
			 jstr(j, "path"));
	json_decref(j);
	http_resp_free(&r);

	struct http_req put = { .method = "PUT",
				.url = floed_url(f, "/endpoints/echo/thing"),
				.body = "abc" };
	http_do(&put, &r);
	j = echo_json(&r);
	cr_expect_str_eq(jstr(j, "method"), "PUT");
	cr_expect_str_eq(jstr(j, "path"), "/thing");
	cr_expect_str_eq(jstr(j, "body"), "abc");
	json_decref(j);
	http_resp_free(&r);

	/* OpenAI routes keep their path (and query), and the body. */
	static const char chat[] = "{\"model\":\"echo\",\"messages\":[]}";
	http_post(floed_url(f, "/v1/chat/completions?trace=1"), chat, &r, JSON_CT, NULL);
	j = echo_json(&r);
	cr_expect_str_eq(jstr(j, "path"), "/v1/chat/completions?trace=1");
	cr_expect_str_eq(jstr(j, "body"), chat);
	json_decref(j);
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

Test(proxy, hop_by_hop_headers_are_dropped_and_forwarding_headers_added)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_ECHO_EP("echo"));
	static const char *const hdrs[] = {
		"Connection: keep-alive, X-Drop-Me",
		"X-Drop-Me: secret",
		"Keep-Alive: timeout=5",
		"TE: trailers",
		"Trailer: X-Checksum",
		"Proxy-Authorization: Basic Zm9vOmJhcg==",
		"Proxy-Connection: keep-alive",
		"Upgrade: h2c",
		"X-Forwarded-For: 10.1.2.3",
		"X-Keep-Me: yes",
		NULL,
	};
	struct http_req req = { .url = floed_url(f, "/endpoints/echo/hop"), .headers = hdrs };
	struct http_resp r;
	http_do(&req, &r);
	json_t *j = echo_json(&r);
	static const char *const dropped[] = {
		"X-Drop-Me", "Keep-Alive",          "TE",
		"Trailer",   "Proxy-Authorization", "Proxy-Connection",
		"Upgrade",   "Transfer-Encoding",   NULL
	};
	for (size_t i = 0; dropped[i]; i++)
		cr_expect(!echo_header(j, dropped[i]), "hop-by-hop %s reached the engine: %s",
			  dropped[i], echo_header(j, dropped[i]));
	const char *c = echo_header(j, "Connection");
	cr_expect(!c || !strcasestr(c, "x-drop-me"), "client's Connection list forwarded: %s", c);
	cr_expect_str_eq(echo_header(j, "X-Keep-Me") ? echo_header(j, "X-Keep-Me") : "(none)",
			 "yes", "end-to-end header lost");
	const char *xff = echo_header(j, "X-Forwarded-For");
	cr_expect(xff && strcmp(xff, "10.1.2.3, 127.0.0.1") == 0,
		  "X-Forwarded-For is %s, want \"10.1.2.3, 127.0.0.1\"", xff ? xff : "(none)");
	const char *xfp = echo_header(j, "X-Forwarded-Proto");
	cr_expect(xfp && strcmp(xfp, "http") == 0, "X-Forwarded-Proto is %s", xfp ? xfp : "(none)");
	json_decref(j);

	/* The engine's own hop-by-hop response headers stop at floed too. */
	cr_expect_eq(http_header_count(&r, "X-Resp-Hop"), 0,
		     "header named in the engine's Connection reached the client");
	cr_expect_eq(http_header_count(&r, "X-Resp-End"), 1, "end-to-end response header lost");
	http_resp_free(&r);

	/* Without a client X-Forwarded-For, floed adds one with the peer. */
	http_get(floed_url(f, "/endpoints/echo/plain"), &r);
	j = echo_json(&r);
	xff = echo_header(j, "X-Forwarded-For");
	cr_expect(xff && strcmp(xff, "127.0.0.1") == 0, "X-Forwarded-For is %s, want 127.0.0.1",
		  xff ? xff : "(none)");
	json_decref(j);
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

Test(proxy, sse_events_arrive_as_the_engine_writes_them)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ", \"--token-ms\", \"150\""));
	struct sim *ref = sim_start("tiny", NULL);
	static const char body[] =
		"{\"inputs\":\"stream me\",\"parameters\":{\"max_new_tokens\":6}}";
	size_t want_len;
	char *want = sim_post(ref, "/generate_stream", body, &want_len);
	cr_assert(want);
	/* Wake the endpoint first so the stream alone is measured. */
	cr_assert_eq(http_status("POST", floed_url(f, "/endpoints/tiny/generate"), GEN_BODY), 200);

	struct http_resp r;
	http_post(floed_url(f, "/endpoints/tiny/generate_stream"), body, &r, JSON_CT, NULL);
	expect_same_body(&r, want, want_len, "generate_stream");
	char *ct = http_header(&r, "Content-Type");
	cr_expect(ct && strncmp(ct, "text/event-stream", 17) == 0, "Content-Type %s",
		  ct ? ct : "(none)");
	free(ct);

	/* The engine writes 6 events 150 ms apart (750 ms from first to
	 * last). A proxy that buffers delivers them together. */
	int64_t first = -1, last = -1;
	size_t pieces = 0;
	for (size_t i = 0; i < r.n_chunks; i++) {
		if (!memmem(r.body.data + r.chunks[i].off, r.chunks[i].len, "data:", 5))
			continue;
		if (first < 0)
			first = r.chunks[i].t_ms;
		last = r.chunks[i].t_ms;
		pieces++;
	}
	cr_expect_geq(pieces, 2, "the whole stream arrived in %zu piece(s)", pieces);
	cr_expect_geq(
		last - first, 300,
		"first and last event arrived %lld ms apart; the engine spaced them by 750 ms",
		(long long)(last - first));
	http_resp_free(&r);
	free(want);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(proxy, openai_streams_end_with_done)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ", \"--token-ms\", \"20\""));
	struct sim *ref = sim_start("tiny", NULL);
	static const struct {
		const char *path, *body;
	} cases[] = {
		{ "/v1/chat/completions", CHAT_BODY("tiny", "true") },
		{ "/v1/completions", COMPL_BODY("tiny", "true") },
	};
	for (size_t i = 0; i < 2; i++) {
		size_t want_len;
		char *want = sim_post(ref, cases[i].path, cases[i].body, &want_len);
		cr_assert(want);
		struct http_resp r;
		http_post(floed_url(f, cases[i].path), cases[i].body, &r, JSON_CT, NULL);
		expect_same_body(&r, want, want_len, cases[i].path);
		static const char done[] = "data: [DONE]\n\n";
		cr_expect(r.body.len >= strlen(done) &&
				  strcmp(r.body.data + r.body.len - strlen(done), done) == 0,
			  "%s stream does not end with data: [DONE]: ...%s", cases[i].path,
			  r.body.len > 60 ? r.body.data + r.body.len - 60 : http_body(&r));
		http_resp_free(&r);
		free(want);
	}
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(proxy, chunked_request_bodies_are_forwarded)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", "") HARNESS_ECHO_EP("echo"));
	struct sim *ref = sim_start("tiny", NULL);
	static const struct {
		const char *engine_path, *floed_path, *body;
	} cases[] = {
		{ "/generate", "/endpoints/tiny/generate", GEN_BODY },
		/* Routing by model needs the whole (chunked) body first. */
		{ "/v1/chat/completions", "/v1/chat/completions", CHAT_BODY("tiny", "false") },
	};
	static const char *const hdrs[] = { JSON_CT, NULL };
	for (size_t i = 0; i < 2; i++) {
		size_t want_len;
		char *want = sim_post(ref, cases[i].engine_path, cases[i].body, &want_len);
		cr_assert(want);
		struct http_req req = { .url = floed_url(f, cases[i].floed_path),
					.body = cases[i].body,
					.headers = hdrs,
					.chunked = true,
					.chunk_size = 5 };
		struct http_resp r;
		http_do(&req, &r);
		expect_same_body(&r, want, want_len, cases[i].floed_path);
		http_resp_free(&r);
		free(want);
	}
	static const char text[] = "a chunked body, sent 3 bytes at a time, arrives whole";
	struct http_req req = { .url = floed_url(f, "/endpoints/echo/upload"),
				.body = text,
				.chunked = true,
				.chunk_size = 3 };
	struct http_resp r;
	http_do(&req, &r);
	json_t *j = echo_json(&r);
	cr_expect_str_eq(jstr(j, "body"), text);
	json_decref(j);
	http_resp_free(&r);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(proxy, keep_alive_reuses_the_client_connection)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ""));
	CURL *e = curl_easy_init();
	static const char *const hdrs[] = { JSON_CT, NULL };
	for (int i = 0; i < 6; i++) {
		struct http_req req = { .url = floed_url(f, "/endpoints/tiny/generate"),
					.body = GEN_BODY,
					.headers = hdrs,
					.easy = e,
					.chunked = (i % 2 == 1) };
		if (i == 4)
			req = (struct http_req){ .url = floed_url(f, "/endpoints/tiny/v1/models"),
						 .easy = e };
		struct http_resp r;
		http_do(&req, &r);
		cr_expect_eq(r.status, 200, "request %d: %ld %s", i, r.status, r.error);
		if (i == 0)
			cr_expect_eq(r.num_connects, 1);
		else
			cr_expect_eq(r.num_connects, 0, "request %d opened a new connection", i);
		http_resp_free(&r);
	}
	curl_easy_cleanup(e);
	FLOED_STOP_OK(f);
}

Test(proxy, one_mebibyte_bodies_round_trip)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", "") HARNESS_ECHO_EP("echo"));
	struct sim *ref = sim_start("tiny", NULL);
	enum {
		MIB = 1 << 20
	};
	char *text = xmalloc(MIB + 1);
	for (size_t i = 0; i < MIB; i++)
		text[i] = "abcdefghijklmnopqrstuvwxyz0123456789 "[(i * 7 + i / 37) % 37];
	text[MIB] = 0;

	/* 1 MiB of input: the embedding is a function of all of it. */
	char *body = xasprintf("{\"model\":\"tiny\",\"input\":\"%s\"}", text);
	size_t want_len;
	char *want = sim_post(ref, "/v1/embeddings", body, &want_len);
	cr_assert(want);
	struct http_resp r;
	http_post(floed_url(f, "/v1/embeddings"), body, &r, JSON_CT, NULL);
	expect_same_body(&r, want, want_len, "1 MiB /v1/embeddings");
	http_resp_free(&r);
	free(want);
	free(body);

	/* 1 MiB up and (inside JSON) 1 MiB down, chunked up. */
	static const char *const hdrs[] = { "Content-Type: text/plain", NULL };
	for (int chunked = 0; chunked < 2; chunked++) {
		struct http_req req = { .url = floed_url(f, "/endpoints/echo/big"),
					.body = text,
					.body_len = MIB,
					.headers = hdrs,
					.chunked = chunked,
					.chunk_size = 65536,
					.timeout_ms = 60000 };
		http_do(&req, &r);
		json_t *j = echo_json(&r);
		const char *echoed = jstr(j, "body");
		cr_expect(echoed && strlen(echoed) == MIB && memcmp(echoed, text, MIB) == 0,
			  "1 MiB body (chunked=%d) came back as %zu bytes", chunked,
			  echoed ? strlen(echoed) : 0);
		json_decref(j);
		http_resp_free(&r);
	}
	free(text);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(proxy, replica_killed_mid_stream_cuts_it_and_the_endpoint_recovers)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ", \"--token-ms\", \"100\""));
	cr_assert_eq(http_status("POST", floed_url(f, "/endpoints/tiny/generate"),
				 "{\"inputs\":\"w\",\"parameters\":{\"max_new_tokens\":1}}"),
		     200);
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = {
		.url = floed_url(f, "/endpoints/tiny/generate_stream"),
		.body = "{\"inputs\":\"long\",\"parameters\":{\"max_new_tokens\":200}}",
		.headers = hdrs,
		.timeout_ms = 60000
	};
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0, 10000), "the stream did not start");

	pid_t inits[4], engines[4];
	cr_assert_eq(floed_inits(f, inits, 4), 1);
	cr_assert_eq(floed_engines(f, engines, 4), 1);
	cr_assert_eq(kill(engines[0], SIGKILL), 0);

	struct http_resp *r = http_bg_wait(bg, 15000);
	cr_assert(r, "the stream went on after its engine was killed");
	/* Headers were out: the only honest signal is a cut stream (no
	 * terminating chunk), which curl reports as an error. */
	cr_expect_neq(r->code, CURLE_OK,
		      "the stream ended cleanly (status %ld, %zu bytes) though its engine died",
		      r->status, r->body.len);
	cr_expect_eq(r->status, 200);
	http_bg_free(bg);

	/* Once floed has reaped the dead replica, the next request is served by a new one. */
	cr_assert(WAIT_UNTIL(!proc_alive(inits[0]), 10000),
		  "the dead replica's floe-init %d lingers", (int)inits[0]);
	struct http_resp n;
	http_post(floed_url(f, "/endpoints/tiny/generate"), GEN_BODY, &n, JSON_CT, NULL);
	cr_expect_eq(n.status, 200, "request after the crash: %ld %s %.200s", n.status, n.error,
		     http_body(&n));
	cr_expect_eq(replica_of(&n, "tiny"), 2, "X-Floe-Replica after the crash");
	http_resp_free(&n);
	FLOED_STOP_OK(f);
}

Test(proxy, replica_killed_before_the_response_gives_502)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ", \"--token-ms\", \"100\""));
	cr_assert_eq(http_status("POST", floed_url(f, "/endpoints/tiny/generate"),
				 "{\"inputs\":\"w\",\"parameters\":{\"max_new_tokens\":1}}"),
		     200);
	/* A plain /generate answers after all tokens: 20 s here. */
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = {
		.url = floed_url(f, "/endpoints/tiny/generate"),
		.body = "{\"inputs\":\"long\",\"parameters\":{\"max_new_tokens\":200}}",
		.headers = hdrs,
		.timeout_ms = 60000
	};
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(sim_metric(f, "tiny", "sim_running_requests") == 1, 10000),
		  "the request never reached the engine");
	pid_t engines[4];
	cr_assert_eq(floed_engines(f, engines, 4), 1);
	cr_assert_eq(kill(engines[0], SIGKILL), 0);
	struct http_resp *r = http_bg_wait(bg, 15000);
	cr_assert(r, "no answer after the engine was killed");
	http_assert_error(r, 502, "upstream_error");
	http_bg_free(bg);

	cr_expect(WAIT_UNTIL(({
				     pid_t p[4];
				     floed_inits(f, p, 4) == 0;
			     }),
			     10000),
		  "the dead replica lingers");
	cr_expect_eq(http_status("POST", floed_url(f, "/endpoints/tiny/generate"), GEN_BODY), 200,
		     "the endpoint does not recover");
	FLOED_STOP_OK(f);
}

Test(proxy, client_leaving_mid_stream_closes_the_upstream_request)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("tiny", ", \"--token-ms\", \"100\""));
	static const char *const hdrs[] = { JSON_CT, NULL };
	/* 300 tokens x 100 ms: 30 s if nobody stops it. */
	struct http_req req = {
		.url = floed_url(f, "/endpoints/tiny/generate_stream"),
		.body = "{\"inputs\":\"long\",\"parameters\":{\"max_new_tokens\":300}}",
		.headers = hdrs,
		.timeout_ms = 60000
	};
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0, 10000), "the stream did not start");
	cr_assert_eq(sim_metric(f, "tiny", "sim_running_requests"), 1);
	http_bg_abort(bg);
	cr_assert(http_bg_wait(bg, 10000), "the client did not go away");
	http_bg_free(bg);
	cr_expect(WAIT_UNTIL(sim_metric(f, "tiny", "sim_running_requests") == 0, 10000),
		  "the engine still generates for a client that left (running %g)",
		  sim_metric(f, "tiny", "sim_running_requests"));
	FLOED_STOP_OK(f);
}

/*
 * An engine that closes each kept-alive connection instead of answering its
 * second request: what a pooled connection looks like when the engine
 * (uvicorn, after its 5 s keep-alive timeout) closed it just as floed
 * reused it. floed must replay the request on a fresh connection, once,
 * rather than answer 502.
 */
static const char stale_py[] =
	"import sys\n"
	"from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
	"class H(BaseHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def log_message(self, *a): pass\n"
	"    def answer(self):\n"
	"        n = int(self.headers.get('Content-Length') or 0)\n"
	"        body = self.rfile.read(n) if n else b''\n"
	"        self.seen = getattr(self, 'seen', 0) + 1\n"
	"        if self.path != '/health' and self.seen >= 2:\n"
	"            self.close_connection = True\n"
	"            return\n"
	"        out = b'answered:' + body\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', str(len(out)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(out)\n"
	"    do_GET = answer\n"
	"    do_POST = answer\n"
	"ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

Test(proxy, a_reused_connection_the_engine_closed_is_retried_on_a_fresh_one)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: stale\n"
			    "    engine: custom\n"
			    "    command: [\"/usr/bin/python3\", \"@DIR@/stale.py\", \"9100\"]\n"
			    "    port: 9100\n"
			    "    health_route: /health\n");
	char *path = NULL;
	cr_assert(asprintf(&path, "%s/stale.py", f->dir) > 0);
	FILE *fp = fopen(path, "w");
	cr_assert_not_null(fp);
	fputs(stale_py, fp);
	fclose(fp);
	free(path);

	for (int i = 0; i < 4; i++) {
		struct http_resp r;
		char body[32];
		snprintf(body, sizeof(body), "request %d", i);
		long status = http_post(floed_url(f, "/endpoints/stale/x"), body, &r, NULL);
		cr_expect_eq(status, 200, "request %d on a reused connection: %ld %s", i, status,
			     http_body(&r));
		char want[64];
		snprintf(want, sizeof(want), "answered:%s", body);
		cr_expect_str_eq(http_body(&r), want);
		http_resp_free(&r);
	}
	FLOED_STOP_OK(f);
}
