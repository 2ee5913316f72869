/*
 * floe's observability routes on the control plane, against the real
 * floed: GET /v2/endpoint/{ns}/{name}/replicas and .../logs (tail, replica,
 * follow), with an engine that writes a line for every request it serves.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(endpoint_obs, .init = harness_test_init, .fini = harness_test_fini, .timeout = 180);

/* An engine on PORT that prints OBS_LINES numbered lines at start, then one
 * line per request on stdout ("served PATH") and one on stderr; /spew/N
 * prints N numbered lines of 100 bytes instead. */
static const char engine_py[] =
	"import http.server, os, sys\n"
	"for i in range(1, int(os.environ.get('OBS_LINES', '0')) + 1):\n"
	"    print('boot line %d' % i, flush=True)\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"    def answer(self):\n"
	"        n = int(self.headers.get('Content-Length') or 0)\n"
	"        if n:\n"
	"            self.rfile.read(n)\n"
	"        if self.path.startswith('/spew/'):\n"
	"            sys.stdout.write(''.join('spew %09d %s\\n' % (i, 'x' * 84)\n"
	"                             for i in range(int(self.path[6:]))))\n"
	"            sys.stdout.flush()\n"
	"        elif self.path != '/health':\n"
	"            print('served ' + self.path, flush=True)\n"
	"            print('stderr ' + self.path, file=sys.stderr, flush=True)\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', '2')\n"
	"        self.end_headers()\n"
	"        self.wfile.write(b'ok')\n"
	"    do_GET = answer\n"
	"    do_POST = answer\n"
	"http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

#define OBS_EP(lines)                                                                  \
	"  - name: obs\n"                                                              \
	"    engine: custom\n"                                                         \
	"    command: [\"/usr/bin/python3\", \"-u\", \"@DIR@/engine.py\", \"9000\"]\n" \
	"    port: 9000\n"                                                             \
	"    health_route: /health\n"                                                  \
	"    env: {OBS_LINES: \"" lines "\"}\n"                                        \
	"    snapshot: {enabled: false}\n"                                             \
	"    scaling: {scale_to_zero_timeout: 10m}\n"

/* floed with the engine file in place before any replica starts. */
static struct floed *start(const char *yaml)
{
	struct floed *f = floed_start(yaml);
	char *path = xasprintf("%s/engine.py", f->dir);
	cr_assert_eq(harness_write_file(path, engine_py, strlen(engine_py)), 0);
	free(path);
	return f;
}

/* GET path on the control plane as token (NULL: none); the response in *r. */
static long api_get(struct floed *f, const char *path, const char *token, struct http_resp *r)
{
	struct http_req req = { .url = floed_api_url(f, path), .bearer = token };
	return http_do(&req, r);
}

/* The replicas route's items (a new reference), asserting 200. */
static json_t *replicas(struct floed *f)
{
	struct http_resp r;
	cr_assert_eq(api_get(f, "/v2/endpoint/default/obs/replicas", NULL, &r), 200, "%s",
		     http_body(&r));
	char *ct = http_header(&r, "Content-Type");
	cr_expect(ct && strstr(ct, "application/json"), "Content-Type %s", ct ? ct : "-");
	free(ct);
	json_t *o = http_json(&r);
	http_resp_free(&r);
	cr_assert(json_is_array(json_object_get(o, "items")));
	json_t *items = json_incref(json_object_get(o, "items"));
	json_decref(o);
	return items;
}

static size_t n_replicas(struct floed *f)
{
	json_t *items = replicas(f);
	size_t n = json_array_size(items);
	json_decref(items);
	return n;
}

static long wake(struct floed *f, const char *path)
{
	char *p = xasprintf("/endpoints/obs%s", path);
	long st = http_status("POST", floed_url(f, p), "{}");
	free(p);
	return st;
}

static bool ends_in_z(const char *s)
{
	return s && strlen(s) > 20 && s[strlen(s) - 1] == 'Z' && s[10] == 'T';
}

/* The last n lines of text, as tail -n counts them (allocated). */
static char *last_lines(const char *text, int n)
{
	size_t len = strlen(text);
	size_t end = len > 0 && text[len - 1] == '\n' ? len - 1 : len;
	size_t start = 0;
	int seen = 0;
	if (n == 0)
		return xstrdup("");
	for (size_t i = end; i-- > 0;)
		if (text[i] == '\n' && ++seen == n) {
			start = i + 1;
			break;
		}
	return xstrdup(text + start);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* What floed captured of replica id: ID.log.1 then ID.log (allocated). */
static char *log_files(struct floed *f, const char *id)
{
	char *cur = xasprintf("%s/logs/obs/%s.log", f->data_dir, id);
	char *old = xasprintf("%s.1", cur);
	char *a = harness_read_file(old, NULL);
	char *b = harness_read_file(cur, NULL);
	cr_assert(b, "no %s", cur);
	char *all = xasprintf("%s%s", a ? a : "", b);
	free(a);
	free(b);
	free(cur);
	free(old);
	return all;
}

/*
 * The replicas route: nothing while scaled to zero; after a request, the
 * one replica, ready, its process alive, a fresh cold start that took time,
 * UTC times, an uptime that grows; 404 for an endpoint that is not there,
 * 405 for a POST.
 */
Test(endpoint_obs, replicas_of_an_endpoint)
{
	struct floed *f = start("endpoints:\n" OBS_EP("3"));
	cr_expect_eq(n_replicas(f), 0, "replicas of an endpoint scaled to zero");
	cr_assert_eq(wake(f, "/v1/x"), 200);

	json_t *items = replicas(f);
	cr_assert_eq(json_array_size(items), 1);
	json_t *r = json_array_get(items, 0);
	cr_expect_str_eq(json_string_value(json_object_get(r, "id")), "obs-1");
	cr_expect_str_eq(json_string_value(json_object_get(r, "state")), "ready");
	json_int_t pid = json_integer_value(json_object_get(r, "pid"));
	cr_expect(pid > 0 && proc_alive((pid_t)pid), "pid %lld is not a live process",
		  (long long)pid);
	pid_t inits[4];
	size_t n_inits = floed_inits(f, inits, 4);
	cr_expect(n_inits == 1 && inits[0] == (pid_t)pid, "pid %lld is not floed's floe-init",
		  (long long)pid);
	json_t *cold = json_object_get(r, "coldStart");
	cr_expect_str_eq(json_string_value(json_object_get(cold, "kind")), "fresh");
	cr_expect(json_real_value(json_object_get(cold, "seconds")) > 0, "cold start seconds");
	const char *started = json_string_value(json_object_get(r, "startedAt"));
	const char *ready = json_string_value(json_object_get(r, "readyAt"));
	cr_expect(ends_in_z(started), "startedAt %s", started ? started : "-");
	cr_expect(ends_in_z(ready), "readyAt %s", ready ? ready : "-");
	cr_expect(started && ready && strcmp(started, ready) <= 0, "ready before started");
	double up1 = json_real_value(json_object_get(r, "uptimeSeconds"));
	cr_expect(up1 > 0);
	cr_expect_eq(json_integer_value(json_object_get(r, "inFlight")), 0);
	cr_expect(json_is_integer(json_object_get(r, "gpus")));
	cr_expect(json_is_null(json_object_get(r, "snapshot")));
	json_decref(items);

	harness_sleep_ms(300);
	items = replicas(f);
	double up2 = json_real_value(json_object_get(json_array_get(items, 0), "uptimeSeconds"));
	cr_expect(up2 > up1, "uptime %f then %f", up1, up2);
	json_decref(items);

	struct http_resp resp;
	api_get(f, "/v2/endpoint/default/nope/replicas", NULL, &resp);
	http_assert_error(&resp, 404, "not_found");
	http_resp_free(&resp);
	cr_expect_eq(http_status("POST", floed_api_url(f, "/v2/endpoint/default/obs/replicas"), ""),
		     405);
	/* HEAD: the head only (curl would wait for the body it announces). */
	static const char head[] = "HEAD /v2/endpoint/default/obs/replicas HTTP/1.1\r\n"
				   "Host: x\r\nConnection: close\r\n\r\n";
	struct raw_resp raw;
	cr_expect_eq(raw_exchange(f->api_port, head, sizeof(head) - 1, 5000, &raw), 200);
	cr_expect(raw.closed && strstr(raw.data.data, "\r\n\r\n") &&
			  strstr(raw.data.data, "\r\n\r\n")[4] == '\0',
		  "a body after HEAD's head: %s", raw.data.data);
	raw_resp_free(&raw);
	/* The actions are still POST only. */
	cr_expect_eq(http_status("GET", floed_api_url(f, "/v2/endpoint/default/obs/pause"), NULL),
		     405);

	/* Scaled to zero: the list is empty again. */
	cr_assert_eq(
		http_status("POST", floed_api_url(f, "/v2/endpoint/default/obs/scale-to-zero"), ""),
		200);
	cr_expect(WAIT_UNTIL(n_replicas(f) == 0, 15000), "the replica did not go");
	FLOED_STOP_OK(f);
}

/* GET logs with a query; the body in *out (allocated) when out is not NULL. */
static long logs(struct floed *f, const char *query, char **out, struct http_resp *keep)
{
	char *path = xasprintf("/v2/endpoint/default/obs/logs%s", query);
	struct http_resp r;
	long st = api_get(f, path, NULL, &r);
	free(path);
	if (out)
		*out = xstrdup(http_body(&r));
	if (keep)
		*keep = r;
	else
		http_resp_free(&r);
	return st;
}

/*
 * tail=N gives exactly the file's last N lines, across the rotation to
 * ID.log.1 (replica_log_max_bytes is 4 KiB here); stderr is there too;
 * the default is 100 lines of the newest replica; the bad values are 400
 * naming the parameter; an unknown replica is 404.
 */
Test(endpoint_obs, logs_tail)
{
	struct floed *f = start("replica_log_max_bytes: 4096\nendpoints:\n" OBS_EP("400"));
	struct http_resp r;
	cr_expect_eq(logs(f, "", NULL, NULL), 404, "logs of an endpoint that never ran");
	cr_assert_eq(wake(f, "/first"), 200);

	char *cur_path = xasprintf("%s/logs/obs/obs-1.log", f->data_dir);
	char *old_path = xasprintf("%s.1", cur_path);
	char *cur = harness_read_file(cur_path, NULL);
	char *old = harness_read_file(old_path, NULL);
	cr_assert(cur && old, "the log was not rotated to %s", old_path);
	char *all = log_files(f, "obs-1");
	cr_assert(strstr(all, "served /first\n") && strstr(all, "stderr /first\n"), "%s", all);

	char *body;
	cr_assert_eq(logs(f, "?tail=5", &body, &r), 200);
	char *want = last_lines(all, 5);
	cr_expect_str_eq(body, want);
	cr_expect_eq(count_lines(body), 5);
	char *ct = http_header(&r, "Content-Type");
	cr_expect(ct && strncmp(ct, "text/plain", 10) == 0, "Content-Type %s", ct ? ct : "-");
	char *rep = http_header(&r, "X-Floe-Replica");
	cr_expect(rep && strcmp(rep, "obs-1") == 0, "X-Floe-Replica %s", rep ? rep : "-");
	free(ct);
	free(rep);
	http_resp_free(&r);
	free(want);
	free(body);

	/* More lines than the current file holds: the rest from ID.log.1. */
	int n = count_lines(cur) + 20;
	char *q = xasprintf("?tail=%d&replica=obs-1", n);
	cr_assert_eq(logs(f, q, &body, NULL), 200);
	want = last_lines(all, n);
	cr_expect_str_eq(body, want);
	cr_expect(strlen(body) > strlen(cur), "the tail did not reach into %s", old_path);
	free(want);
	free(body);
	free(q);

	cr_assert_eq(logs(f, "", &body, NULL), 200);
	cr_expect_eq(count_lines(body), 100, "default tail");
	free(body);
	cr_assert_eq(logs(f, "?tail=0", &body, NULL), 200);
	cr_expect_str_eq(body, "");
	free(body);
	cr_assert_eq(logs(f, "?tail=100000", &body, NULL), 200);
	cr_expect_str_eq(body, all);
	free(body);

	const char *bad_tail[] = { "?tail=abc", "?tail=-1", "?tail=100001", "?tail=", "?tail=1e3" };
	for (size_t i = 0; i < sizeof(bad_tail) / sizeof(bad_tail[0]); i++) {
		logs(f, bad_tail[i], NULL, &r);
		http_assert_error(&r, 400, "bad_request");
		cr_expect(strstr(http_body(&r), "tail"), "%s: %s", bad_tail[i], http_body(&r));
		http_resp_free(&r);
	}
	logs(f, "?follow=maybe", NULL, &r);
	http_assert_error(&r, 400, "bad_request");
	cr_expect(strstr(http_body(&r), "follow"), "%s", http_body(&r));
	http_resp_free(&r);
	const char *unknown[] = { "?replica=obs-99", "?replica=other-1", "?replica=..%2Fobs-1",
				  "?replica=obs-1.log" };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		logs(f, unknown[i], NULL, &r);
		http_assert_error(&r, 404, "not_found");
		http_resp_free(&r);
	}
	cr_expect_eq(http_status("POST", floed_api_url(f, "/v2/endpoint/default/obs/logs"), ""),
		     405);
	free(all);
	free(cur);
	free(old);
	free(cur_path);
	free(old_path);
	FLOED_STOP_OK(f);
}

/* Start a follow in the background and wait for its first bytes (the tail
 * of one line), so that it is established. */
static struct http_bg *follow(struct floed *f, const char *query)
{
	char *path = xasprintf("/v2/endpoint/default/obs/logs%s", query);
	struct http_req req = { .url = floed_api_url(f, path), .timeout_ms = 60000 };
	free(path);
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0 || http_bg_done(bg), 15000),
		  "the follow sent nothing");
	cr_assert(!http_bg_done(bg), "the follow ended at once");
	return bg;
}

/*
 * follow=1: a line the engine writes after the request began arrives while
 * the response is open; scaling to zero ends the response, complete.
 * Afterwards the stopped replica's log is still there to read, and a new
 * replica becomes the default.
 */
Test(endpoint_obs, follow_until_the_replica_stops)
{
	struct floed *f = start("endpoints:\n" OBS_EP("3"));
	cr_assert_eq(wake(f, "/first"), 200);
	struct http_bg *bg = follow(f, "?follow=1&tail=1");
	/* A second follower, in HTTP/1.0: no chunks, the end is the close. */
	static const char old_req[] = "GET /v2/endpoint/default/obs/logs?follow=1&tail=0 "
				      "HTTP/1.0\r\n\r\n";
	int fd = raw_connect(f->api_port);
	cr_assert(fd >= 0);
	cr_assert_eq(raw_send(fd, old_req, sizeof(old_req) - 1), 0);
	size_t before = http_bg_bytes(bg);
	cr_assert_eq(wake(f, "/while-following"), 200);
	size_t line = strlen("served /while-following\n") + strlen("stderr /while-following\n");
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) >= before + line, 15000),
		  "the new lines did not arrive (%zu bytes, %zu before)", http_bg_bytes(bg),
		  before);
	cr_expect(!http_bg_done(bg), "the follow ended before its replica stopped");

	cr_assert_eq(
		http_status("POST", floed_api_url(f, "/v2/endpoint/default/obs/scale-to-zero"), ""),
		200);
	struct http_resp *r = http_bg_wait(bg, 20000);
	cr_assert(r, "the follow did not end when its replica stopped");
	cr_expect_eq(r->code, CURLE_OK, "%s", r->error);
	cr_expect_eq(r->status, 200);
	char *te = http_header(r, "Transfer-Encoding");
	cr_expect(te && strcmp(te, "chunked") == 0, "Transfer-Encoding %s", te ? te : "-");
	free(te);
	const char *body = http_body(r);
	cr_expect(strncmp(body, "stderr /first\n", 14) == 0 ||
			  strncmp(body, "served /first\n", 14) == 0,
		  "the tail: %s", body);
	cr_expect(strstr(body, "served /while-following\n") &&
			  strstr(body, "stderr /while-following\n"),
		  "%s", body);
	http_bg_free(bg);
	struct raw_resp raw;
	raw_read(fd, 15000, &raw);
	close(fd);
	cr_expect(raw.closed, "the HTTP/1.0 follow was not ended by a close");
	cr_expect_eq(raw.status, 200);
	cr_expect(raw.body.data && strcmp(raw.body.data, "served /while-following\n"
							 "stderr /while-following\n") == 0,
		  "HTTP/1.0 follow: %s", raw.data.data);
	raw_resp_free(&raw);
	cr_expect(WAIT_UNTIL(n_replicas(f) == 0, 15000));

	/* The stopped replica's log, from the file: the default, by id, and a
	 * follow that has nothing to wait for. */
	char *all = log_files(f, "obs-1");
	char *text;
	cr_assert_eq(logs(f, "?tail=1000", &text, NULL), 200);
	cr_expect_str_eq(text, all);
	free(text);
	struct http_resp resp;
	cr_assert_eq(logs(f, "?replica=obs-1&follow=1&tail=2", &text, &resp), 200);
	char *want = last_lines(all, 2);
	cr_expect_str_eq(text, want);
	char *cl = http_header(&resp, "Content-Length");
	cr_expect(cl, "a stopped replica's follow is one whole answer");
	free(cl);
	http_resp_free(&resp);
	free(want);
	free(text);

	/* A new replica: the default now, the old one still by id. */
	cr_assert_eq(wake(f, "/second"), 200);
	cr_assert_eq(logs(f, "?tail=1", &text, &resp), 200);
	char *rep = http_header(&resp, "X-Floe-Replica");
	cr_expect(rep && strcmp(rep, "obs-2") == 0, "X-Floe-Replica %s", rep ? rep : "-");
	free(rep);
	http_resp_free(&resp);
	free(text);
	cr_assert_eq(logs(f, "?replica=obs-1&tail=100000", &text, NULL), 200);
	cr_expect_str_eq(text, all);
	free(text);
	free(all);
	FLOED_STOP_OK(f);
}

/*
 * A client that goes away in the middle of a follow: floed keeps serving
 * (both planes), keeps writing the log, and (under ASan) leaks nothing:
 * FLOED_STOP_OK wants exit code 0.
 */
Test(endpoint_obs, follow_client_goes_away)
{
	struct floed *f = start("endpoints:\n" OBS_EP("3"));
	cr_assert_eq(wake(f, "/first"), 200);
	for (int i = 0; i < 3; i++) {
		struct http_bg *bg = follow(f, "?follow=true");
		http_bg_abort(bg);
		http_bg_free(bg);
	}
	/* One that leaves while the tail is being read, too. */
	char *path = xasprintf("/v2/endpoint/default/obs/logs?follow=1&tail=100000");
	struct http_req req = { .url = floed_api_url(f, path) };
	struct http_bg *bg = http_bg_start(&req);
	http_bg_abort(bg);
	http_bg_free(bg);
	free(path);

	cr_assert_eq(wake(f, "/after"), 200);
	cr_expect_eq(n_replicas(f), 1);
	cr_expect(WAIT_UNTIL(({
				     char *all = log_files(f, "obs-1");
				     bool ok = strstr(all, "served /after\n") != NULL;
				     free(all);
				     ok;
			     }),
			     5000),
		  "the log stopped after the follower left");
	/* And a follow still works. */
	bg = follow(f, "?follow=1&tail=1");
	cr_assert_eq(wake(f, "/again"), 200);
	cr_expect(WAIT_UNTIL(http_bg_bytes(bg) > strlen("stderr /after\n") + 10, 15000));
	http_bg_free(bg);
	FLOED_STOP_OK(f);
}

/* floed's SIGTERM with a follow open: floed exits (0, nothing left over)
 * and the follow's response ends complete. */
Test(endpoint_obs, shutdown_with_an_open_follow)
{
	struct floed *f = start("endpoints:\n" OBS_EP("3"));
	cr_assert_eq(wake(f, "/first"), 200);
	struct http_bg *bg = follow(f, "?follow=1");
	FLOED_STOP_OK(f);
	struct http_resp *r = http_bg_wait(bg, 10000);
	cr_assert(r, "the follow outlived floed");
	cr_expect_eq(r->code, CURLE_OK, "%s", r->error);
	cr_expect(strstr(http_body(r), "served /first\n"), "%s", http_body(r));
	http_bg_free(bg);
}

/* With tokens: both routes want a token of the endpoint's namespace. */
Test(endpoint_obs, tokens)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk, "endpoints:\n"
		     "  - name: chat\n    engine: sim\n    namespace: alice\n");
	const char *routes[] = { "/v2/endpoint/alice/chat/replicas",
				 "/v2/endpoint/alice/chat/logs" };
	for (int i = 0; i < 2; i++) {
		struct http_resp r;
		api_get(f, routes[i], NULL, &r);
		http_assert_error(&r, 401, "unauthorized");
		http_resp_free(&r);
		api_get(f, routes[i], tk.bob, &r);
		http_assert_error(&r, 403, "forbidden");
		http_resp_free(&r);
	}
	struct http_resp r;
	cr_expect_eq(api_get(f, routes[0], tk.alice, &r), 200, "%s", http_body(&r));
	http_resp_free(&r);
	/* No replica ran yet: no log, but the endpoint is hers (404 names the log). */
	api_get(f, routes[1], tk.alice, &r);
	http_assert_error(&r, 404, "not_found");
	cr_expect(strstr(http_body(&r), "log"), "%s", http_body(&r));
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

/* Follow over HTTP/1.0 on a raw socket, reading nothing yet: the body is
 * the bytes up to the close. */
static int slow_follower(struct floed *f)
{
	int fd = raw_connect(f->api_port);
	cr_assert(fd >= 0);
	static const char req[] = "GET /v2/endpoint/default/obs/logs?follow=1&tail=0 "
				  "HTTP/1.0\r\n\r\n";
	cr_assert_eq(raw_send(fd, req, sizeof(req) - 1), 0);
	harness_sleep_ms(300); /* the tail (none) is read, the follower attached */
	return fd;
}

/* Read fd into out until it holds needle, the peer closes, or timeout_ms. */
static bool read_until(int fd, struct floe_buf *out, const char *needle, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char buf[65536];
	while (!(out->data && strstr(out->data, needle)) && harness_now_ms() < deadline) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		floe_buf_append(out, buf, (size_t)n);
	}
	return out->data && strstr(out->data, needle);
}

/*
 * A follower that reads nothing while the engine writes never slows the
 * engine. While it is less than 4 MiB behind beyond what the kernel holds
 * (tcp_wmem allows 4 MiB of send buffer), nothing is lost: 6 MB written
 * meanwhile arrive whole and in order once it reads. 15 MB behind, its
 * follow ends with a note saying so, and floed goes on serving.
 */
Test(endpoint_obs, slow_follower)
{
	struct floed *f = start("endpoints:\n" OBS_EP("0"));
	cr_assert_eq(wake(f, "/first"), 200);
	int fd = slow_follower(f);
	cr_assert_eq(wake(f, "/spew/60000"), 200, "the engine was held up by a slow follower");
	/* Everything arrives while the replica still runs: what waited in
	 * floed goes out as the client drains its socket. */
	struct floe_buf got = FLOE_BUF_INIT;
	cr_expect(read_until(fd, &got, "spew 000059999 ", 20000), "%zu bytes came", got.len);
	cr_assert_eq(
		http_status("POST", floed_api_url(f, "/v2/endpoint/default/obs/scale-to-zero"), ""),
		200);
	struct raw_resp raw;
	raw_read(fd, 30000, &raw);
	close(fd);
	cr_assert(raw.closed, "the follow did not end with its replica");
	floe_buf_append(&got, raw.data.data, raw.data.len);
	const char *body = strstr(got.data, "\r\n\r\n");
	cr_assert(body, "no response head");
	size_t lines = 0;
	for (const char *p = body; (p = strstr(p, "spew ")); p += 5) {
		char want[32];
		snprintf(want, sizeof(want), "spew %09zu ", lines);
		cr_assert(strncmp(p, want, strlen(want)) == 0, "line %zu is out of order: %.30s",
			  lines, p);
		lines++;
	}
	cr_expect_eq(lines, 60000, "%zu of 60000 lines arrived", lines);
	cr_expect_null(strstr(body, "[floe: follow ended"), "the follow was cut");
	raw_resp_free(&raw);
	floe_buf_destroy(&got);

	cr_assert_eq(wake(f, "/second"), 200);
	fd = slow_follower(f);
	cr_assert_eq(wake(f, "/spew/150000"), 200);
	cr_assert_eq(wake(f, "/still-serving"), 200);
	raw_read(fd, 30000, &raw);
	close(fd);
	cr_expect(raw.closed, "the follow of a client 15 MB behind was not ended");
	cr_expect(raw.data.data && strstr(raw.data.data, "[floe: follow ended: the client fell"),
		  "no note at the end: ...%s",
		  raw.data.len > 200 ? raw.data.data + raw.data.len - 200 : raw.data.data);
	raw_resp_free(&raw);
	FLOED_STOP_OK(f);
}
