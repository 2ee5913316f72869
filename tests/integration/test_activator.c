/*
 * The activator: requests to a cold endpoint are held while exactly one
 * replica starts, bounded holds and queues, scale to zero and back, and
 * the simple scale-up. Real floed, real floe-sim replicas.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(activator, .init = harness_test_init, .fini = harness_test_fini, .timeout = 120);

#define JSON_CT "Content-Type: application/json"
#define GEN_BODY "{\"inputs\":\"hello floe\",\"parameters\":{\"max_new_tokens\":8}}"

#define READY(ep) "floe_replicas{endpoint=\"" ep "\",state=\"ready\"}"
#define STARTING(ep) "floe_replicas{endpoint=\"" ep "\",state=\"starting\"}"
#define DEPTH(ep) "floe_queue_depth{endpoint=\"" ep "\"}"
#define FRESH(ep) "floe_cold_starts_total{endpoint=\"" ep "\",kind=\"fresh\"}"

static size_t n_inits(struct floed *f)
{
	pid_t p[64];
	return floed_inits(f, p, 64);
}

static size_t n_engines(struct floed *f)
{
	pid_t p[64];
	return floed_engines(f, p, 64);
}

static int replica_of(const struct http_resp *r, const char *ep)
{
	char *v = http_header(r, "X-Floe-Replica");
	int n = replica_seq(v, ep);
	free(v);
	return n;
}

static void assert_body(const struct http_resp *r, const char *want, size_t want_len)
{
	cr_assert_eq(r->body.len, want_len, "body length %zu, engine's %zu; body: %.300s",
		     r->body.len, want_len, http_body(r));
	cr_assert(memcmp(r->body.data, want, want_len) == 0,
		  "body differs from the engine's:\n got: %.300s\nwant: %.300s", http_body(r),
		  want);
}

Test(activator, cold_request_is_held_and_answered_with_engine_body)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: demo\n"
			    "    engine: sim\n"
			    "    args: [\"--model\", \"demo\", \"--init-ms\", \"400\"]\n");
	struct sim *ref = sim_start("demo", NULL);
	size_t want_len;
	char *want = sim_post(ref, "/generate", GEN_BODY, &want_len);
	cr_assert(want, "reference floe-sim did not answer /generate");

	cr_assert_eq(n_inits(f), 0, "a replica runs before any request (min_replica is 0)");

	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200, "cold request: status %ld (curl: %s) body %.300s", r.status,
		     r.error, http_body(&r));
	assert_body(&r, want, want_len);

	char *st = http_header(&r, "Server-Timing");
	cr_assert(st, "no Server-Timing header");
	double hold = -1, cold = -1;
	char desc[64];
	cr_assert(server_timing_get(st, "hold", &hold, NULL, 0), "Server-Timing lacks hold: %s",
		  st);
	cr_assert(server_timing_get(st, "cold-start", &cold, desc, sizeof(desc)),
		  "the waking request's Server-Timing lacks cold-start: %s", st);
	cr_expect_str_eq(desc, "fresh", "cold-start desc: %s", st);
	/* The engine takes 400 ms to initialise, so the request was held at
	 * least about that long: the numbers must say so (a lower bound set by
	 * the engine, not a speed requirement). */
	cr_expect_geq(hold, 200, "hold;dur=%g but the engine alone takes 400 ms: %s", hold, st);
	cr_expect_geq(cold, 200, "cold-start;dur=%g but the engine alone takes 400 ms: %s", cold,
		      st);
	free(st);
	cr_expect_eq(replica_of(&r, "demo"), 1, "X-Floe-Replica of the first replica");
	http_resp_free(&r);

	/* Warm now: same body, a hold entry, no cold-start entry. */
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200);
	assert_body(&r, want, want_len);
	st = http_header(&r, "Server-Timing");
	cr_assert(st, "no Server-Timing on a warm request");
	cr_expect(server_timing_get(st, "hold", &hold, NULL, 0),
		  "warm Server-Timing lacks hold: %s", st);
	cr_expect(!server_timing_get(st, "cold-start", &cold, NULL, 0),
		  "a warm request reports a cold start: %s", st);
	free(st);
	cr_expect_eq(replica_of(&r, "demo"), 1);
	http_resp_free(&r);

	cr_expect_eq(floed_metric(f, FRESH("demo")), 1);
	cr_expect_eq(floed_metric(f, "floe_requests_total{endpoint=\"demo\",code=\"200\"}"), 2);
	free(want);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(activator, concurrent_cold_requests_start_exactly_one_replica)
{
	/* max_replica 1: with more allowed, 100 in-flight requests may rightly
	 * start a second replica once the first is ready. */
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: demo\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"demo\", \"--init-ms\", \"500\"]\n"
				      "    scaling:\n"
				      "      max_replica: 1\n");
	struct sim *ref = sim_start("demo", NULL);
	size_t want_len;
	char *want = sim_post(ref, "/generate", GEN_BODY, &want_len);
	cr_assert(want);

	enum {
		N = 100
	};
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req reqs[N];
	struct http_resp resps[N];
	for (int i = 0; i < N; i++)
		reqs[i] = (struct http_req){ .url = floed_url(f, "/endpoints/demo/generate"),
					     .body = GEN_BODY,
					     .headers = hdrs,
					     .timeout_ms = 60000 };
	http_multi(reqs, N, resps);

	int ok = 0, same_body = 0, on_one = 0;
	for (int i = 0; i < N; i++) {
		if (resps[i].status == 200)
			ok++;
		else
			cr_log_error("request %d: status %ld curl %d (%s) body %.200s", i,
				     resps[i].status, resps[i].code, resps[i].error,
				     http_body(&resps[i]));
		if (resps[i].body.len == want_len &&
		    memcmp(resps[i].body.data, want, want_len) == 0)
			same_body++;
		if (replica_of(&resps[i], "demo") == 1)
			on_one++;
		http_resp_free(&resps[i]);
	}
	cr_expect_eq(ok, N, "%d of %d concurrent cold requests got 200", ok, N);
	cr_expect_eq(same_body, N, "%d of %d bodies equal the engine's", same_body, N);
	cr_expect_eq(on_one, N, "%d of %d answered by demo-1", on_one, N);
	cr_expect_eq(floed_metric(f, FRESH("demo")), 1, "cold starts for 100 concurrent requests");
	cr_expect_eq(n_inits(f), 1, "floe-init processes under floed");
	cr_expect_eq(n_engines(f), 1, "engine processes under floe-init");
	cr_expect_eq(floed_metric0(f, DEPTH("demo")), 0, "queue depth after all were answered");
	free(want);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(activator, scale_up_timeout_header_bounds_the_hold)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: slow\n"
			    "    engine: sim\n"
			    "    args: [\"--model\", \"slow\", \"--init-ms\", \"5000\"]\n");
	struct http_resp r;
	int64_t t0 = harness_now_ms();
	http_post(floed_url(f, "/endpoints/slow/generate"), GEN_BODY, &r, JSON_CT,
		  "X-Scale-Up-Timeout: 1", NULL);
	int64_t took = harness_now_ms() - t0;
	http_assert_error(&r, 503, "scale_up_timeout");
	char *ra = http_header(&r, "Retry-After");
	cr_expect(ra && *ra, "503 without Retry-After");
	free(ra);
	/* Held (not refused at once): a lower bound, set by the header. */
	cr_expect_geq(took, 900, "answered after %lld ms, before the 1 s it was asked to wait",
		      (long long)took);
	http_resp_free(&r);

	/* RFC 7240's Prefer: wait=N says the same. */
	t0 = harness_now_ms();
	http_post(floed_url(f, "/endpoints/slow/generate"), GEN_BODY, &r, JSON_CT,
		  "Prefer: respond-async, wait=1", NULL);
	took = harness_now_ms() - t0;
	http_assert_error(&r, 503, "scale_up_timeout");
	cr_expect_geq(took, 900, "Prefer: wait=1 answered after %lld ms", (long long)took);
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

Test(activator, max_hold_bounds_the_hold)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: slow\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"slow\", \"--init-ms\", \"5000\"]\n"
				      "    max_hold: 1s\n");
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/slow/generate"), GEN_BODY, &r, JSON_CT, NULL);
	http_assert_error(&r, 503, "scale_up_timeout");
	char *ra = http_header(&r, "Retry-After");
	cr_expect(ra && *ra, "503 without Retry-After");
	free(ra);
	http_resp_free(&r);
	/* The shorter of max_hold and X-Scale-Up-Timeout wins: held for 30 s,
	 * the request would see the replica ready (5 s) and get 200. */
	http_post(floed_url(f, "/endpoints/slow/generate"), GEN_BODY, &r, JSON_CT,
		  "X-Scale-Up-Timeout: 30", NULL);
	http_assert_error(&r, 503, "scale_up_timeout");
	http_resp_free(&r);
	/* Still serving the control plane after refusing a held request. */
	cr_expect_eq(http_status(NULL, floed_api_url(f, "/healthz"), NULL), 200);
	FLOED_STOP_OK(f);
}

Test(activator, full_queue_is_refused_with_503)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: demo\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"demo\", \"--init-ms\", \"3000\"]\n"
				      "    queue_size: 2\n");
	enum {
		N = 5
	};
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req reqs[N];
	struct http_resp resps[N];
	for (int i = 0; i < N; i++)
		reqs[i] = (struct http_req){ .url = floed_url(f, "/endpoints/demo/generate"),
					     .body = GEN_BODY,
					     .headers = hdrs,
					     .timeout_ms = 60000 };
	http_multi(reqs, N, resps);
	int ok = 0, full = 0;
	for (int i = 0; i < N; i++) {
		if (resps[i].status == 200) {
			ok++;
		} else {
			http_assert_error(&resps[i], 503, "queue_full");
			char *ra = http_header(&resps[i], "Retry-After");
			cr_expect(ra && *ra, "queue_full 503 without Retry-After");
			free(ra);
			full++;
		}
		http_resp_free(&resps[i]);
	}
	cr_expect_eq(ok, 2, "queue_size 2: %d held requests were served", ok);
	cr_expect_eq(full, 3, "queue_size 2: %d of 5 refused", full);
	FLOED_STOP_OK(f);
}

Test(activator, client_leaving_while_held_leaves_the_queue)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: demo\n"
			    "    engine: sim\n"
			    "    args: [\"--model\", \"demo\", \"--init-ms\", \"6000\"]\n");
	char req[512];
	snprintf(req, sizeof(req),
		 "POST /endpoints/demo/generate HTTP/1.1\r\n"
		 "Host: x\r\n"
		 "Content-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 strlen(GEN_BODY), GEN_BODY);
	int fd = raw_connect(f->port);
	cr_assert(fd >= 0);
	cr_assert_eq(raw_send(fd, req, strlen(req)), 0);
	cr_assert(WAIT_UNTIL(floed_metric(f, DEPTH("demo")) == 1, 5000),
		  "the held request does not show in floe_queue_depth (value %g)",
		  floed_metric(f, DEPTH("demo")));
	close(fd);

	/* Depth back to 0 with the replica still starting: the client was
	 * dropped, not released by a ready replica. */
	double depth = -1, ready = -1;
	int64_t deadline = harness_now_ms() + 10000;
	while (harness_now_ms() < deadline) {
		char *m = metrics_scrape(f);
		depth = metrics_find(m, DEPTH("demo"));
		ready = metrics_find(m, READY("demo"));
		free(m);
		if (depth == 0)
			break;
		harness_sleep_ms(50);
	}
	cr_expect_eq(depth, 0, "floe_queue_depth stays %g after the client left", depth);
	cr_expect_leq(ready, 0, "depth fell only when the replica became ready (ready=%g)", ready);

	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_expect_eq(r.status, 200, "the endpoint does not serve after a client left: %ld %s",
		     r.status, r.error);
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

Test(activator, held_request_survives_a_replica_dying_while_it_starts)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: demo\n"
			    "    engine: sim\n"
			    "    args: [\"--model\", \"demo\", \"--init-ms\", \"3000\"]\n");
	static const char *const hdrs[] = { JSON_CT, "X-Scale-Up-Timeout: 60", NULL };
	struct http_req req = { .url = floed_url(f, "/endpoints/demo/generate"),
				.body = GEN_BODY,
				.headers = hdrs,
				.timeout_ms = 60000 };
	struct http_bg *bg = http_bg_start(&req);
	pid_t engine[4];
	cr_assert(WAIT_UNTIL(floed_engines(f, engine, 4) == 1, 10000),
		  "no engine started for the held request");
	cr_assert_eq(floed_metric(f, READY("demo")), 0, "the engine is ready before its 3 s init");
	cr_assert_eq(kill(engine[0], SIGKILL), 0);

	/* Held requests wait for another replica. */
	struct http_resp *r = http_bg_wait(bg, 40000);
	cr_assert(r, "the held request got no answer");
	cr_expect_eq(r->status, 200,
		     "held request after its replica died while starting: %ld %s %.200s", r->status,
		     r->error, http_body(r));
	cr_expect_eq(replica_of(r, "demo"), 2, "want the replacement replica demo-2");
	http_bg_free(bg);
	FLOED_STOP_OK(f);
}

/* Both starts fresh: restores from a snapshot are test_snapshot.c's. */
Test(activator, idle_endpoint_scales_to_zero_and_wakes_again)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: demo\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"demo\", \"--init-ms\", \"300\"]\n"
				      "    snapshot: {enabled: false}\n"
				      "    scaling:\n"
				      "      scale_to_zero_timeout: 1s\n");
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200, "first request: %ld %s", r.status, r.error);
	int first = replica_of(&r, "demo");
	cr_expect_eq(first, 1);
	http_resp_free(&r);
	pid_t engine[4];
	cr_assert_eq(floed_engines(f, engine, 4), 1, "one engine after the first request");

	cr_assert(WAIT_UNTIL(n_inits(f) == 0 && floed_metric0(f, READY("demo")) == 0, 15000),
		  "still %zu replica(s), ready gauge %g, long after scale_to_zero_timeout (1s)",
		  n_inits(f), floed_metric(f, READY("demo")));
	cr_expect(!proc_alive(engine[0]), "engine %d outlived its replica", (int)engine[0]);

	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200, "request after scale to zero: %ld %s", r.status, r.error);
	int second = replica_of(&r, "demo");
	cr_expect_gt(second, first, "X-Floe-Replica after waking is %d, was %d", second, first);
	char *st = http_header(&r, "Server-Timing");
	char desc[64] = "";
	cr_expect(server_timing_get(st, "cold-start", NULL, desc, sizeof(desc)),
		  "waking request has no cold-start in Server-Timing: %s", st ? st : "(none)");
	cr_expect_str_eq(desc, "fresh");
	free(st);
	http_resp_free(&r);
	cr_expect_eq(floed_metric(f, FRESH("demo")), 2);
	cr_expect_eq(n_inits(f), 1);
	FLOED_STOP_OK(f);
}

Test(activator, scale_to_zero_lets_an_in_flight_stream_finish)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: demo\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"demo\", \"--token-ms\", \"100\"]\n"
				      "    scaling:\n"
				      "      scale_to_zero_timeout: 1s\n");
	struct sim *ref = sim_start("demo", NULL);
	/* 40 tokens x 100 ms: the stream outlasts the 1 s idle timeout. */
	static const char body[] = "{\"inputs\":\"idle\",\"parameters\":{\"max_new_tokens\":40}}";
	size_t want_len;
	char *want = sim_post(ref, "/generate_stream", body, &want_len);
	cr_assert(want);
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate_stream"), body, &r, JSON_CT, NULL);
	cr_expect_eq(r.code, CURLE_OK, "the stream was cut: %s", r.error);
	cr_expect_eq(r.status, 200);
	cr_expect(r.body.len == want_len && memcmp(r.body.data, want, want_len) == 0,
		  "the stream differs from the engine's (%zu vs %zu bytes)", r.body.len, want_len);
	http_resp_free(&r);
	/* Then, idle, it does scale to zero. */
	cr_expect(WAIT_UNTIL(n_inits(f) == 0, 15000), "no scale to zero after the stream ended");
	free(want);
	sim_stop(ref);
	FLOED_STOP_OK(f);
}

Test(activator, min_replica_starts_at_boot_and_stays)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: demo\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"demo\", \"--init-ms\", \"300\"]\n"
				      "    scaling:\n"
				      "      min_replica: 1\n"
				      "      scale_to_zero_timeout: 1s\n");
	cr_assert(WAIT_UNTIL(n_engines(f) == 1 && floed_metric(f, READY("demo")) == 1, 15000),
		  "min_replica 1: %zu engine(s), ready gauge %g without any request", n_engines(f),
		  floed_metric(f, READY("demo")));
	pid_t engine[4];
	cr_assert_eq(floed_engines(f, engine, 4), 1);

	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200);
	char *st = http_header(&r, "Server-Timing");
	cr_expect(!server_timing_get(st, "cold-start", NULL, NULL, 0),
		  "a request to a pre-started replica reports a cold start: %s",
		  st ? st : "(none)");
	free(st);
	cr_expect_eq(replica_of(&r, "demo"), 1);
	http_resp_free(&r);

	/* Past scale_to_zero_timeout it must not scale below min_replica. */
	harness_sleep_ms(2500);
	cr_expect_eq(n_engines(f), 1);
	cr_expect(proc_alive(engine[0]), "the min_replica replica was stopped");
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(replica_of(&r, "demo"), 1, "a new replica replaced the min_replica one");
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

Test(activator, load_above_target_concurrency_starts_a_second_replica)
{
	struct floed *f = floed_start(
		"endpoints:\n"
		"  - name: demo\n"
		"    engine: sim\n"
		"    args: [\"--model\", \"demo\", \"--init-ms\", \"300\", \"--token-ms\", \"100\"]\n"
		/* No snapshot: a dump of replica 1 right after the warm-up
		 * takes it out of routing for a while (long under ASan), and
		 * the streams would then start on replica 2 instead. */
		"    snapshot: {enabled: false}\n"
		"    scaling:\n"
		"      max_replica: 2\n"
		"      target_concurrency: 1\n");
	struct http_resp r;
	static const char quick[] = "{\"inputs\":\"q\",\"parameters\":{\"max_new_tokens\":1}}";
	http_post(floed_url(f, "/endpoints/demo/generate"), quick, &r, JSON_CT, NULL);
	cr_assert_eq(r.status, 200, "warm-up: %ld %s", r.status, r.error);
	http_resp_free(&r);

	/* Three long streams (60 tokens x 100 ms) keep replica 1 busy. */
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req slow = {
		.url = floed_url(f, "/endpoints/demo/generate_stream"),
		.body = "{\"inputs\":\"slow\",\"parameters\":{\"max_new_tokens\":60}}",
		.headers = hdrs,
		.timeout_ms = 60000
	};
	struct http_bg *bg[3];
	for (int i = 0; i < 3; i++)
		bg[i] = http_bg_start(&slow);

	size_t most = 0;
	bool two = WAIT_UNTIL(({
				      size_t n = n_inits(f);
				      if (n > most)
					      most = n;
				      floed_metric(f, READY("demo")) == 2;
			      }),
			      15000);
	cr_expect(two, "in-flight 3 > target_concurrency 1, but %g ready replica(s)",
		  floed_metric(f, READY("demo")));

	/* New requests go to the least loaded replica: the new one. */
	bool seen[8] = { false };
	for (int i = 0; two && i < 10; i++) {
		http_post(floed_url(f, "/endpoints/demo/generate"), quick, &r, JSON_CT, NULL);
		cr_expect_eq(r.status, 200);
		int n = replica_of(&r, "demo");
		if (n > 0 && n < 8)
			seen[n] = true;
		http_resp_free(&r);
		size_t k = n_inits(f);
		if (k > most)
			most = k;
		if (seen[2])
			break;
	}
	for (int i = 0; i < 3; i++) {
		http_bg_abort(bg[i]);
		struct http_resp *br = http_bg_wait(bg[i], 15000);
		if (br) {
			int n = replica_of(br, "demo");
			if (n > 0 && n < 8)
				seen[n] = true;
		}
		http_bg_free(bg[i]);
	}
	int distinct = 0;
	for (int i = 0; i < 8; i++)
		distinct += seen[i];
	cr_expect_eq(distinct, 2, "requests answered by %d distinct replicas, want 2", distinct);
	cr_expect_leq(most, 2, "%zu replicas ran at once, max_replica is 2", most);
	FLOED_STOP_OK(f);
}
