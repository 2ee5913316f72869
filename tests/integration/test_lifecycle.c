/*
 * floed's life: bad configs, SIGTERM with requests in flight, SIGHUP
 * reloads, kill -9, the control plane, the embedded default config.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(lifecycle, .init = harness_test_init, .fini = harness_test_fini, .timeout = 120);

#define JSON_CT "Content-Type: application/json"
#define GEN_BODY "{\"inputs\":\"hello floe\",\"parameters\":{\"max_new_tokens\":8}}"

static int replica_of(const struct http_resp *r, const char *ep)
{
	char *v = http_header(r, "X-Floe-Replica");
	int n = replica_seq(v, ep);
	free(v);
	return n;
}

/* POST GEN_BODY to /endpoints/EP/generate; status, and the replica number in *seq. */
static long generate(struct floed *f, const char *ep, int *seq)
{
	char path[128];
	snprintf(path, sizeof(path), "/endpoints/%s/generate", ep);
	struct http_resp r;
	long st = http_post(floed_url(f, path), GEN_BODY, &r, JSON_CT, NULL);
	if (seq)
		*seq = replica_of(&r, ep);
	http_resp_free(&r);
	return st;
}

static bool all_dead(const pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (proc_alive(pids[i]))
			return false;
	return true;
}

Test(lifecycle, bad_config_is_refused_with_file_and_line)
{
	static const struct {
		const char *what, *text;
		int line, alt_line; /* alt_line: also acceptable (0: none) */
	} cases[] = {
		{ "unknown top-level key",
		  "log_level: info\n"
		  "bogus_key: 1\n"
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n",
		  2, 0 },
		{ "wrong type in scaling",
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n"
		  "    scaling:\n"
		  "      max_replica: many\n",
		  5, 0 },
		{ "bad duration",
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n"
		  "    scaling:\n"
		  "      min_replica: 0\n"
		  "      scale_to_zero_timeout: 5 parsecs\n",
		  6, 0 },
		{ "unknown engine",
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n"
		  "  - name: other\n"
		  "    engine: nosuchengine\n",
		  5, 0 },
		{ "unknown endpoint key",
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n"
		  "    replicas: 3\n",
		  4, 0 },
		{ "YAML syntax error",
		  "endpoints:\n"
		  "  - name: demo\n"
		  "    engine: sim\n"
		  "    args: [\"--init-ms\", \"1\"\n"
		  "    port: 8000\n",
		  5, 4 }, /* libyaml notices at line 5; the context is line 4 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct floed_run r;
		floed_run(cases[i].text, NULL, 10000, &r);
		cr_expect(r.code > 0 && r.code < 128,
			  "%s: floed exited with %d, want a non-zero exit", cases[i].what, r.code);
		char *want = xasprintf("%s:%d:", r.config_path, cases[i].line);
		char *alt = cases[i].alt_line ?
				    xasprintf("%s:%d:", r.config_path, cases[i].alt_line) :
				    NULL;
		cr_expect(strstr(r.output, want) || (alt && strstr(r.output, alt)),
			  "%s: output lacks \"%s\":\n%s", cases[i].what, want, r.output);
		free(alt);
		free(want);
		floed_run_free(&r);
	}

	/* A file that does not exist. */
	struct floed_run r;
	static const char *const args[] = { "--config", "/nonexistent/floed.yaml", NULL };
	floed_run(NULL, args, 10000, &r);
	cr_expect(r.code > 0 && r.code < 128, "missing config: exit %d", r.code);
	cr_expect(strstr(r.output, "/nonexistent/floed.yaml"),
		  "missing config: output lacks the path:\n%s", r.output);
	floed_run_free(&r);
}

/*
 * Without auth.tokens floed serves everyone as the default namespace, so it
 * listens only on loopback: --listen and --api-listen to another address
 * are refused like the same addresses in the file (issue 5).
 */
Test(lifecycle, single_user_refuses_non_loopback_flags)
{
	const char *bd = getenv("FLOE_BUILD_DIR");
	cr_assert_not_null(bd);
	static const char *const flags[] = { "--listen 0.0.0.0:18080", "--api-listen [::]:18081" };
	for (size_t i = 0; i < 2; i++) {
		char *cmd = xasprintf("'%s/floed' --check %s 2>&1", bd, flags[i]);
		FILE *p = popen(cmd, "r");
		cr_assert_not_null(p);
		char out[1024] = "";
		size_t n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = '\0';
		int st = pclose(p);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "%s: accepted:\n%s", flags[i],
			  out);
		cr_expect(strstr(out, "is not a loopback address"), "%s: output:\n%s", flags[i],
			  out);
		free(cmd);
	}
}

Test(lifecycle, sigterm_lets_in_flight_streams_finish_then_exits_0)
{
	struct floed *f =
		floed_start("shutdown_grace: 30s\n"
			    "endpoints:\n" HARNESS_SIM_EP("demo", ", \"--token-ms\", \"100\""));
	struct sim *ref = sim_start("demo", NULL);
	/* 60 tokens x 100 ms: a 6 s stream. */
	static const char body[] =
		"{\"inputs\":\"drain me\",\"parameters\":{\"max_new_tokens\":60}}";
	size_t want_len;
	char *want = sim_post(ref, "/generate_stream", body, &want_len);
	cr_assert(want);
	cr_assert_eq(generate(f, "demo", NULL), 200);

	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = { .url = floed_url(f, "/endpoints/demo/generate_stream"),
				.body = body,
				.headers = hdrs,
				.timeout_ms = 60000 };
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0, 10000), "the stream did not start");
	pid_t pids[64];
	size_t n = floed_replica_pids(f, pids, 64);
	cr_assert_eq(n, 2, "want one floe-init and one engine, found %zu processes", n);

	cr_assert_eq(floed_signal(f, SIGTERM), 0);
	/* It stops accepting while the stream is still going. */
	bool refused = WAIT_UNTIL(({
					  int fd = raw_connect(f->port);
					  if (fd >= 0)
						  close(fd);
					  fd < 0;
				  }),
				  5000);
	bool streaming_then = !http_bg_done(bg);
	cr_expect(refused, "floed still accepts connections 5 s after SIGTERM");
	cr_expect(!refused || streaming_then,
		  "the listener closed only after the in-flight stream ended");

	struct http_resp *r = http_bg_wait(bg, 40000);
	cr_assert(r, "the in-flight stream did not end");
	cr_expect_eq(r->code, CURLE_OK, "the in-flight stream was cut by SIGTERM: %s", r->error);
	cr_expect_eq(r->status, 200);
	cr_expect(r->body.len == want_len && memcmp(r->body.data, want, want_len) == 0,
		  "the drained stream differs from the engine's (%zu vs %zu bytes)", r->body.len,
		  want_len);
	http_bg_free(bg);

	int code = floed_wait(f, 30000);
	cr_expect_eq(code, 0, "floed exit code after SIGTERM: %d", code);
	cr_expect(WAIT_UNTIL(all_dead(pids, n), 5000), "replica processes outlived floed");
	for (size_t i = 0; i < n; i++)
		if (proc_alive(pids[i]))
			kill(pids[i], SIGKILL);
	free(want);
	sim_stop(ref);
	floed_stop(f);
}

Test(lifecycle, sighup_adds_and_removes_endpoints_and_keeps_unchanged_replicas)
{
#define KEEP_EP HARNESS_SIM_EP("keep", ", \"--token-ms\", \"100\"")
	struct floed *f = floed_start("endpoints:\n" KEEP_EP HARNESS_SIM_EP("gone", ""));
	struct sim *ref = sim_start("keep", NULL);
	static const char body[] = "{\"inputs\":\"reload\",\"parameters\":{\"max_new_tokens\":30}}";
	size_t want_len;
	char *want = sim_post(ref, "/generate_stream", body, &want_len);
	cr_assert(want);

	int seq;
	cr_assert_eq(generate(f, "keep", &seq), 200);
	cr_assert_eq(seq, 1);
	cr_assert_eq(generate(f, "gone", NULL), 200);
	pid_t keep_engine = floed_engine_with_arg(f, "keep");
	pid_t gone_engine = floed_engine_with_arg(f, "gone");
	cr_assert(keep_engine > 0 && gone_engine > 0, "engines not found under floed");

	/* A stream to the unchanged endpoint runs across the reload (3 s). */
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = { .url = floed_url(f, "/endpoints/keep/generate_stream"),
				.body = body,
				.headers = hdrs,
				.timeout_ms = 60000 };
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0, 10000), "the stream did not start");

	floed_reload(f, "endpoints:\n" KEEP_EP HARNESS_SIM_EP("added", ""));

	cr_expect(WAIT_UNTIL(generate(f, "added", NULL) == 200, 15000),
		  "the added endpoint is not served after SIGHUP");
	cr_expect(WAIT_UNTIL(generate(f, "gone", NULL) == 404, 15000),
		  "the removed endpoint is still served after SIGHUP");
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/gone/generate"), GEN_BODY, &r, JSON_CT, NULL);
	http_assert_error(&r, 404, "not_found");
	http_resp_free(&r);
	cr_expect(WAIT_UNTIL(!proc_alive(gone_engine), 15000),
		  "the removed endpoint's engine %d still runs", (int)gone_engine);

	cr_expect_eq(generate(f, "keep", &seq), 200);
	cr_expect_eq(seq, 1, "the unchanged endpoint got a new replica (keep-%d)", seq);
	cr_expect_eq(floed_engine_with_arg(f, "keep"), keep_engine,
		     "the unchanged endpoint's engine process changed");

	struct http_resp *sr = http_bg_wait(bg, 30000);
	cr_assert(sr, "the stream across the reload did not end");
	cr_expect_eq(sr->code, CURLE_OK, "the stream across the reload was cut: %s", sr->error);
	cr_expect(sr->body.len == want_len && memcmp(sr->body.data, want, want_len) == 0,
		  "the stream across the reload differs from the engine's (%zu vs %zu bytes)",
		  sr->body.len, want_len);
	http_bg_free(bg);
	cr_expect_eq(floed_metric(f, "floe_cold_starts_total{endpoint=\"keep\",kind=\"fresh\"}"),
		     1);
	free(want);
	sim_stop(ref);
	FLOED_STOP_OK(f);
#undef KEEP_EP
}

Test(lifecycle, sighup_restarts_a_changed_endpoint)
{
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("demo", ", \"--init-ms\", \"100\""));
	int seq;
	cr_assert_eq(generate(f, "demo", &seq), 200);
	cr_assert_eq(seq, 1);
	pid_t old = floed_engine_with_arg(f, "demo");
	cr_assert(old > 0);

	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("demo", ", \"--init-ms\", \"200\""));
	cr_expect(WAIT_UNTIL(!proc_alive(old), 15000),
		  "the changed endpoint's old engine %d still runs", (int)old);
	cr_expect(WAIT_UNTIL(generate(f, "demo", &seq) == 200 && seq > 1, 15000),
		  "the changed endpoint is not served by a new replica (keep-%d)", seq);
	/* The old replica may outlive the reload by as long as its snapshot
	 * takes (CRIU's dump has processes of its own in the replica's tree
	 * meanwhile), so the new replica is found by its new args, and the old
	 * ones must be gone soon after. */
	pid_t now = floed_engine_with_arg(f, "200");
	cr_expect(now > 0 && now != old, "no engine with the new args (pid %d, was %d)", (int)now,
		  (int)old);
	cr_expect(WAIT_UNTIL(floed_engine_with_arg(f, "100") == 0, 15000),
		  "a process with the old args still runs");
	FLOED_STOP_OK(f);
}

Test(lifecycle, sighup_with_a_bad_config_keeps_the_old_one)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("demo", ""));
	int seq;
	cr_assert_eq(generate(f, "demo", &seq), 200);
	pid_t engine = floed_engine_with_arg(f, "demo");

	/* The harness header is 4 lines: the bad key is on line 5. */
	floed_reload(f, "bogus_key: 1\nendpoints:\n" HARNESS_SIM_EP("demo", ""));
	char *want = xasprintf("%s:5:", f->config_path);
	cr_expect(WAIT_UNTIL(({
				     char *log = floed_read_log(f);
				     bool has = strstr(log, want) != NULL;
				     free(log);
				     has;
			     }),
			     5000),
		  "floed did not log \"%s\" for the bad reload", want);
	free(want);
	cr_expect_eq(floed_wait(f, 0), -1, "floed exited on a bad reload");
	cr_expect_eq(generate(f, "demo", &seq), 200, "the old config is not served any more");
	cr_expect_eq(seq, 1);
	cr_expect_eq(floed_engine_with_arg(f, "demo"), engine);

	/* A good reload afterwards still works. */
	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("demo", "") HARNESS_SIM_EP("second", ""));
	cr_expect(WAIT_UNTIL(generate(f, "second", NULL) == 200, 15000),
		  "a good reload after a bad one was not applied");
	FLOED_STOP_OK(f);
}

Test(lifecycle, replicas_die_with_floed_on_kill_9)
{
	/* clang-format off */
	static const char config[] =
		"endpoints:\n"
		HARNESS_SIM_EP("a", "")
		"    scaling:\n"
		"      min_replica: 1\n"
		HARNESS_SIM_EP("b", "")
		"    scaling:\n"
		"      min_replica: 1\n";
	/* clang-format on */
	struct floed *f = floed_start(config);
	pid_t pids[64];
	cr_assert(WAIT_UNTIL(({
				     pid_t e[8];
				     floed_engines(f, e, 8) == 2;
			     }),
			     15000),
		  "min_replica 1 for two endpoints did not give two engines");
	size_t n = floed_replica_pids(f, pids, 64);
	cr_assert_eq(n, 4, "want 2 floe-init + 2 engines, found %zu", n);

	cr_assert_eq(floed_signal(f, SIGKILL), 0);
	cr_assert_eq(floed_wait(f, 5000), 128 + SIGKILL);
	bool gone = WAIT_UNTIL(all_dead(pids, n), 10000);
	for (size_t i = 0; i < n; i++) {
		if (proc_alive(pids[i])) {
			cr_log_error("replica process %d outlived floed's kill -9", (int)pids[i]);
			kill(pids[i], SIGKILL);
		}
	}
	cr_expect(gone, "replica processes outlived floed's kill -9");
	floed_stop(f);
}

Test(lifecycle, control_plane_health_and_metrics)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("demo", ""));
	cr_assert_eq(generate(f, "demo", NULL), 200);

	struct http_resp r;
	cr_expect_eq(http_get(floed_api_url(f, "/healthz"), &r), 200);
	http_resp_free(&r);

	cr_assert_eq(http_get(floed_api_url(f, "/metrics"), &r), 200);
	char *ct = http_header(&r, "Content-Type");
	cr_expect(ct && strncmp(ct, "text/plain", 10) == 0, "/metrics Content-Type %s",
		  ct ? ct : "(none)");
	free(ct);
	const char *m = http_body(&r);
	static const char *const families[] = {
		"floe_requests_total",    "floe_request_duration_seconds",
		"floe_cold_starts_total", "floe_cold_start_duration_seconds",
		"floe_replicas",          "floe_queue_depth",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		cr_expect(metrics_has_family(m, families[i]), "/metrics lacks %s", families[i]);

	static const struct {
		const char *series;
		double value;
	} series[] = {
		{ "floe_requests_total{endpoint=\"demo\",code=\"200\"}", 1 },
		{ "floe_request_duration_seconds_count{endpoint=\"demo\"}", 1 },
		{ "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"+Inf\"}", 1 },
		{ "floe_cold_starts_total{endpoint=\"demo\",kind=\"fresh\"}", 1 },
		{ "floe_cold_start_duration_seconds_count{endpoint=\"demo\",kind=\"fresh\"}", 1 },
		{ "floe_replicas{endpoint=\"demo\",state=\"ready\"}", 1 },
		{ "floe_queue_depth{endpoint=\"demo\"}", 0 },
	};
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
		double v = metrics_find(m, series[i].series);
		cr_expect_eq(v, series[i].value, "%s is %g, want %g", series[i].series, v,
			     series[i].value);
	}
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}

/* ---- /metrics through a real Prometheus parser ---- */

/* meson test sets FLOE_SOURCE_DIR; run by hand, the presets dir's parent. */
static char *source_dir(void)
{
	const char *src = getenv("FLOE_SOURCE_DIR");
	if (src && src[0])
		return xstrdup(src);
	char *dir = xstrdup(FLOE_PRESETS_DIR);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	return dir;
}

/*
 * Run tests/integration/check_metrics.py (prometheus_client's parser, then
 * floed's families, types, labels and consistency) on text, with args
 * ("--expect", "SERIES=VALUE", "--min", ...; NULL-terminated). Returns its
 * exit status (0: all good, 1: problems, 2: bad usage or no module); *out
 * gets what it printed (caller frees).
 */
static int check_metrics(const char *text, const char *const *args, char **out)
{
	char *src = source_dir();
	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/metrics.txt", dir);
	cr_assert_eq(harness_write_file(file, text, strlen(text)), 0);
	/* /usr/bin/python3: the Debian module, whatever python3 PATH finds. */
	struct floe_buf cmd = FLOE_BUF_INIT;
	floe_buf_printf(&cmd, "/usr/bin/python3 '%s/tests/integration/check_metrics.py' '%s'", src,
			file);
	for (; args && *args; args++) {
		cr_assert(!strchr(*args, '\''), "quote in %s", *args);
		floe_buf_printf(&cmd, " '%s'", *args);
	}
	floe_buf_puts(&cmd, " 2>&1");
	FILE *p = popen(cmd.data, "r");
	cr_assert(p, "popen %s", cmd.data);
	struct floe_buf output = FLOE_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		floe_buf_append(&output, chunk, n);
	int st = pclose(p);
	floe_buf_puts(&output, "");
	*out = floe_buf_steal(&output, NULL);
	floe_buf_destroy(&cmd);
	harness_rmtree(dir);
	free(file);
	free(dir);
	free(src);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_metrics_ok(const char *what, const char *text, const char *const *args)
{
	char *out;
	int rc = check_metrics(text, args, &out);
	cr_expect_eq(rc, 0, "%s: check_metrics.py exit %d:\n%s--- /metrics:\n%s", what, rc, out,
		     text);
	free(out);
}

/* text with its first `from` replaced by `to` (caller frees). */
static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	cr_assert(at, "no \"%s\" in /metrics", from);
	return xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

#define EP_DEMO "{endpoint=\"demo\""
#define DEMO_CODE(c) "floe_requests_total" EP_DEMO ",code=\"" c "\"}"
#define DEMO_STATE(s) "floe_replicas" EP_DEMO ",state=\"" s "\"}"
#define DEMO_FRESH EP_DEMO ",kind=\"fresh\"}"
#define DEMO_DESIRED "floe_autoscaler_desired_replicas" EP_DEMO "}"
#define DEMO_ACTUAL "floe_autoscaler_actual_replicas" EP_DEMO "}"

Test(lifecycle, metrics_pass_a_real_prometheus_parser_and_add_up)
{
	/* A replica that takes 1 s to be ready, so requests are held. */
	struct floed *f =
		floed_start("endpoints:\n" HARNESS_SIM_EP("demo", ", \"--init-ms\", \"1000\""));
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = { .url = floed_url(f, "/endpoints/demo/generate"),
				.body = GEN_BODY,
				.headers = hdrs };
	struct http_bg *bg[2] = { http_bg_start(&req), http_bg_start(&req) };

	/* While both are held: one snapshot where the queue holds two and the
	 * one replica is starting. */
	char *held = NULL;
	bool both_held = WAIT_UNTIL(({
					    free(held);
					    held = metrics_scrape(f);
					    metrics_find(held, "floe_queue_depth" EP_DEMO "}") == 2;
				    }),
				    10000);
	cr_assert(both_held, "never saw two requests held; last /metrics:\n%s",
		  held ? held : "(none)");
	static const char *const held_args[] = {
		"--expect",
		"floe_queue_depth" EP_DEMO "}=2",
		"--expect",
		DEMO_STATE("starting") "=1",
		"--expect",
		DEMO_STATE("ready") "=0",
		"--expect",
		DEMO_STATE("draining") "=0",
		/* the policy wants one replica, and one is starting */
		"--expect",
		DEMO_DESIRED "=1",
		"--expect",
		DEMO_ACTUAL "=1",
		NULL,
	};
	expect_metrics_ok("while held", held, held_args);
	free(held);

	for (int i = 0; i < 2; i++) {
		struct http_resp *r = http_bg_wait(bg[i], 30000);
		cr_assert(r, "held request %d did not end", i);
		cr_expect_eq(r->status, 200, "held request %d: %ld %s", i, r->status, r->error);
		http_bg_free(bg[i]);
	}
	/* An unknown endpoint (floed's 404), an unknown route (the engine's
	 * 404), and a warm request. */
	cr_expect_eq(http_status("POST", floed_url(f, "/endpoints/nosuch/generate"), GEN_BODY),
		     404);
	cr_expect_eq(http_status("GET", floed_url(f, "/endpoints/demo/no/such/route"), NULL), 404);
	cr_expect_eq(generate(f, "demo", NULL), 200);

	/* A request is recorded when its exchange ends, which may be just
	 * after the client has the last byte: wait until all five are in. */
	char *m = NULL;
	bool recorded = WAIT_UNTIL(
		({
			free(m);
			m = metrics_scrape(f);
			metrics_find(m, "floe_request_duration_seconds_count" EP_DEMO "}") == 4 &&
				metrics_find(m, "floe_request_duration_seconds_count{"
						"endpoint=\"\"}") == 1;
		}),
		5000);
	cr_expect(recorded, "five requests not recorded; /metrics:\n%s", m ? m : "(none)");
	static const char *const args[] = {
		"--expect",
		DEMO_CODE("200") "=3",
		"--expect",
		DEMO_CODE("404") "=1",
		"--expect",
		"floe_requests_total{endpoint=\"\",code=\"404\"}=1",
		"--expect",
		"floe_request_duration_seconds_count" EP_DEMO "}=4",
		"--expect",
		"floe_request_duration_seconds_count{endpoint=\"\"}=1",
		/* the two held requests waited the replica's 1 s each */
		"--min",
		"floe_request_duration_seconds_sum" EP_DEMO "}=2",
		"--expect",
		"floe_cold_starts_total" DEMO_FRESH "=1",
		"--expect",
		"floe_cold_start_duration_seconds_count" DEMO_FRESH "=1",
		"--min",
		"floe_cold_start_duration_seconds_sum" DEMO_FRESH "=1",
		"--expect",
		DEMO_STATE("starting") "=0",
		"--expect",
		DEMO_STATE("ready") "=1",
		"--expect",
		DEMO_STATE("draining") "=0",
		"--expect",
		"floe_queue_depth" EP_DEMO "}=0",
		"--expect",
		DEMO_DESIRED "=1",
		"--expect",
		DEMO_ACTUAL "=1",
		"--expect",
		"floe_endpoint_info" EP_DEMO ",namespace=\"default\",type=\"public\"}=1",
		NULL,
	};
	expect_metrics_ok("after the traffic", m, args);

	/* The check can fail: a wrong type, and a wrong count. */
	char *out;
	char *bad = replace(m, "# TYPE floe_replicas gauge", "# TYPE floe_replicas counter");
	cr_expect_eq(check_metrics(bad, NULL, &out), 1, "a counter floe_replicas passed:\n%s", out);
	cr_expect(strstr(out, "floe_replicas: type counter, want gauge"), "%s", out);
	free(out);
	free(bad);
	static const char *const wrong[] = { "--expect", DEMO_CODE("200") "=4", NULL };
	cr_expect_eq(check_metrics(m, wrong, &out), 1, "a wrong count passed:\n%s", out);
	free(out);
	free(m);
	FLOED_STOP_OK(f);
}

/* ---- the endpoint info and autoscaler series follow their endpoint ---- */

#define INFO(ep, ns, type) \
	"floe_endpoint_info{endpoint=\"" ep "\",namespace=\"" ns "\",type=\"" type "\"}"
#define DESIRED(ep) "floe_autoscaler_desired_replicas{endpoint=\"" ep "\"}"
#define ACTUAL(ep) "floe_autoscaler_actual_replicas{endpoint=\"" ep "\"}"
#define READY(ep) "floe_replicas{endpoint=\"" ep "\",state=\"ready\"}"

/* method path [body] on the control plane: the status. */
static long api_call(struct floed *f, const char *method, const char *path, const char *body)
{
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = { .method = method,
				.url = floed_api_url(f, path),
				.body = body,
				.headers = body ? hdrs : NULL };
	struct http_resp r;
	long st = http_do(&req, &r);
	http_resp_free(&r);
	return st;
}

/* Whether the scrape has none of these series (all absent: -1). */
static bool all_absent(struct floed *f, const char *const *series)
{
	char *m = metrics_scrape(f);
	bool none = m != NULL;
	for (; m && *series; series++)
		if (metrics_find(m, *series) != -1)
			none = false;
	free(m);
	return none;
}

/* An endpoint the way huggingface_hub creates it ("protected": authenticated). */
#define MADE_BODY                                                                               \
	"{\"name\":\"made\",\"type\":\"protected\",\"compute\":{\"accelerator\":\"cpu\","       \
	"\"instanceType\":\"intel-icl\",\"instanceSize\":\"x1\",\"scaling\":{\"minReplica\":0," \
	"\"maxReplica\":1,\"scaleToZeroTimeout\":15}},\"model\":{\"repository\":\"made\","      \
	"\"framework\":\"custom\",\"task\":\"text-generation\",\"image\":{\"custom\":{"         \
	"\"url\":\"sim\",\"healthRoute\":\"/health\",\"port\":8000}}}}"

Test(lifecycle, endpoint_info_and_autoscaler_series_follow_the_endpoint)
{
#define LEAVE_EP HARNESS_SIM_EP("leave", "") "    namespace: team-a\n"
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("stay", "") LEAVE_EP);
#undef LEAVE_EP
	/* Served, cold: the info is there, the policy wants nothing yet. */
	cr_expect_eq(floed_metric(f, INFO("leave", "team-a", "public")), 1);
	cr_expect_eq(floed_metric(f, INFO("stay", "default", "public")), 1);
	cr_expect_eq(floed_metric(f, DESIRED("leave")), 0);
	cr_expect_eq(floed_metric(f, ACTUAL("leave")), 0);

	cr_assert_eq(generate(f, "leave", NULL), 200);
	char *m = metrics_scrape(f);
	cr_assert(m);
	static const char *const after_cold[] = {
		"--expect", INFO("leave", "team-a", "public") "=1",
		"--expect", INFO("stay", "default", "public") "=1",
		"--expect", DESIRED("leave") "=1",
		"--expect", ACTUAL("leave") "=1",
		"--expect", DESIRED("stay") "=0",
		"--expect", ACTUAL("stay") "=0",
		NULL,
	};
	expect_metrics_ok("after a cold start", m, after_cold);
	free(m);

	/* Out of the config: its info and autoscaler series go at once, its
	 * replica series once the replica has stopped. */
	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("stay", ""));
	static const char *const leave_series[] = { INFO("leave", "team-a", "public"),
						    DESIRED("leave"), ACTUAL("leave"), NULL };
	cr_expect(WAIT_UNTIL(all_absent(f, leave_series), 10000),
		  "the removed endpoint's info or autoscaler series stay");
	static const char *const leave_replicas[] = { READY("leave"),
						      "floe_queue_depth{endpoint=\"leave\"}",
						      NULL };
	cr_expect(WAIT_UNTIL(all_absent(f, leave_replicas), 15000),
		  "the removed endpoint's replica series stay");
	m = metrics_scrape(f);
	static const char *const stay_only[] = { "--expect", INFO("stay", "default", "public") "=1",
						 NULL };
	expect_metrics_ok("after the reload", m, stay_only);
	free(m);

	/* Created through the API, scaled to zero on request, deleted. */
	cr_assert_eq(api_call(f, "POST", "/v2/endpoint/default", MADE_BODY), 200);
	cr_expect_eq(floed_metric(f, INFO("made", "default", "authenticated")), 1);
	cr_assert_eq(generate(f, "made", NULL), 200);
	cr_expect_eq(floed_metric(f, DESIRED("made")), 1);
	cr_expect_eq(floed_metric(f, ACTUAL("made")), 1);
	cr_assert_eq(api_call(f, "POST", "/v2/endpoint/default/made/scale-to-zero", ""), 200);
	cr_expect(WAIT_UNTIL(floed_metric(f, DESIRED("made")) == 0 &&
				     floed_metric(f, ACTUAL("made")) == 0,
			     15000),
		  "after scale-to-zero: desired %g, actual %g", floed_metric(f, DESIRED("made")),
		  floed_metric(f, ACTUAL("made")));
	cr_assert_eq(api_call(f, "DELETE", "/v2/endpoint/default/made", NULL), 200);
	static const char *const made_series[] = { INFO("made", "default", "authenticated"),
						   DESIRED("made"), ACTUAL("made"), READY("made"),
						   NULL };
	cr_expect(WAIT_UNTIL(all_absent(f, made_series), 15000),
		  "the deleted endpoint's series stay");
	FLOED_STOP_OK(f);
}

/*
 * A name served again while the endpoint that had it still drains: the two
 * share the name's series, which stay the new one's when the old one is
 * freed (they used to be removed then, under the new endpoint's feet).
 */
Test(lifecycle, a_name_served_again_while_its_old_endpoint_drains_keeps_its_series)
{
#define SLOW_EP HARNESS_SIM_EP("slow", ", \"--token-ms\", \"100\"")
	struct floed *f = floed_start("endpoints:\n" SLOW_EP);
	int seq;
	cr_assert_eq(generate(f, "slow", &seq), 200);
	cr_assert_eq(seq, 1);
	/* 30 tokens x 100 ms: a 3 s stream across both reloads. */
	static const char body[] = "{\"inputs\":\"drain\",\"parameters\":{\"max_new_tokens\":30}}";
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req req = { .url = floed_url(f, "/endpoints/slow/generate_stream"),
				.body = body,
				.headers = hdrs,
				.timeout_ms = 60000 };
	struct http_bg *bg = http_bg_start(&req);
	cr_assert(WAIT_UNTIL(http_bg_bytes(bg) > 0, 10000), "the stream did not start");

	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("other", ""));
	cr_assert(WAIT_UNTIL(floed_metric(f, INFO("slow", "default", "public")) == -1, 10000),
		  "slow is still served after the first reload");
	cr_assert(!http_bg_done(bg), "the stream ended before the name came back");
	floed_reload(f, "endpoints:\n" SLOW_EP);
	cr_assert(WAIT_UNTIL(floed_metric(f, INFO("slow", "default", "public")) == 1, 10000),
		  "slow is not served again after the second reload");

	struct http_resp *r = http_bg_wait(bg, 30000);
	cr_assert(r, "the stream did not end");
	cr_expect_eq(r->code, CURLE_OK, "the draining stream was cut: %s", r->error);
	http_bg_free(bg);
	/* The old endpoint is freed as its last replica stops. */
	cr_assert(WAIT_UNTIL(({
				     char *log = floed_read_log(f);
				     bool has = strstr(log, "slow: replica slow-1 stopped") != NULL;
				     free(log);
				     has;
			     }),
			     15000),
		  "the old replica slow-1 did not stop");

	cr_assert_eq(generate(f, "slow", &seq), 200);
	cr_expect_eq(seq, 2, "served by slow-%d", seq);
	char *m = metrics_scrape(f);
	cr_assert(m);
	static const char *const args[] = {
		"--expect", READY("slow") "=1",
		"--expect", "floe_queue_depth{endpoint=\"slow\"}=0",
		"--expect", INFO("slow", "default", "public") "=1",
		"--expect", DESIRED("slow") "=1",
		"--expect", ACTUAL("slow") "=1",
		NULL,
	};
	expect_metrics_ok("after the old endpoint was freed", m, args);
	free(m);
	FLOED_STOP_OK(f);
#undef SLOW_EP
}

/* ---- log_format: json ---- */

Test(lifecycle, json_log_lines_carry_endpoint_and_replica)
{
	struct floed *f = floed_start("log_format: json\nendpoints:\n" HARNESS_SIM_EP("jlog", ""));
	cr_assert_eq(generate(f, "jlog", NULL), 200);
	cr_assert_eq(floed_signal(f, SIGTERM), 0);
	cr_assert_eq(floed_wait(f, 20000), 0, "floed did not exit cleanly on SIGTERM");
	char *log = floed_read_log(f);
	cr_assert(log && log[0], "floed wrote no log");

	int lines = 0;
	bool serving = false, starting = false, ready = false, stopped = false;
	char *save = NULL;
	for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		json_error_t err;
		json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
		cr_assert(json_is_object(o), "line %d is not a JSON object (%s): %s", lines,
			  err.text, line);
		const char *ts = json_string_value(json_object_get(o, "ts"));
		const char *level = json_string_value(json_object_get(o, "level"));
		const char *module = json_string_value(json_object_get(o, "module"));
		const char *msg = json_string_value(json_object_get(o, "msg"));
		cr_expect(ts && level && module && msg, "line %d lacks ts/level/module/msg: %s",
			  lines, line);
		const char *ep = json_string_value(json_object_get(o, "endpoint"));
		const char *rep = json_string_value(json_object_get(o, "replica"));
		if (msg && ep && strcmp(ep, "jlog") == 0) {
			cr_expect(strncmp(msg, "jlog", 4) != 0, "the message repeats the name: %s",
				  line);
			if (!rep && strncmp(msg, "serving (engine sim", 19) == 0)
				serving = true;
		}
		if (msg && rep && strcmp(rep, "jlog-1") == 0) {
			cr_expect(ep && strcmp(ep, "jlog") == 0, "replica without endpoint: %s",
				  line);
			cr_expect(!strstr(msg, "jlog-1"), "the message repeats the replica: %s",
				  line);
			starting |= strncmp(msg, "starting (pid ", 14) == 0;
			ready |= strncmp(msg, "ready (fresh start, ", 20) == 0;
			stopped |= strncmp(msg, "stopped (", 9) == 0;
		}
		json_decref(o);
	}
	cr_expect_geq(lines, 4);
	cr_expect(serving, "no \"serving\" line with endpoint jlog");
	cr_expect(starting, "no \"starting\" line with endpoint jlog and replica jlog-1");
	cr_expect(ready, "no \"ready\" line with endpoint jlog and replica jlog-1");
	cr_expect(stopped, "no \"stopped\" line with endpoint jlog and replica jlog-1");
	free(log);
	FLOED_STOP_OK(f);
}

Test(lifecycle, runs_the_embedded_default_without_config)
{
	/* No --config: the embedded default (endpoint demo, sim, 2 s init). */
	struct floed *f = floed_start_argv(NULL, NULL);
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/demo/generate"), GEN_BODY, &r, JSON_CT, NULL);
	cr_expect_eq(r.status, 200, "default demo endpoint: %ld %s %.200s", r.status, r.error,
		     http_body(&r));
	char *st = http_header(&r, "Server-Timing");
	cr_expect(server_timing_get(st, "cold-start", NULL, NULL, 0),
		  "the default endpoint does not scale from zero: %s", st ? st : "(none)");
	free(st);
	http_resp_free(&r);
	FLOED_STOP_OK(f);
}
