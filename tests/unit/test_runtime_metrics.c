/*
 * Unit tests for runtime/metrics: exact exposition text, escaping, number
 * formatting, removal, and the child hash table under growth. The output is
 * also checked by promtool (Debian package "prometheus") when installed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"
#include "xalloc.h"

static struct floe_metrics *m;
static struct floe_buf out;

static void setup(void)
{
	m = floe_metrics_new();
	floe_buf_init(&out);
}

static void teardown(void)
{
	floe_metrics_free(m);
	floe_buf_destroy(&out);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void)
{
	floe_buf_reset(&out);
	floe_metrics_render(m, &out);
	return out.data ? out.data : "";
}

#define V(...) ((const char *const[]){ __VA_ARGS__ })

Test(metrics, counter_with_labels)
{
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_COUNTER, "floe_requests_total", "Requests answered.",
				    V("endpoint", "code", NULL), NULL, 0);
	struct floe_metric *a = floe_metric_get(f, V("demo", "200"));
	struct floe_metric *b = floe_metric_get(f, V("demo", "503"));
	floe_metric_inc(a);
	floe_metric_inc(a);
	floe_metric_add(a, 3);
	floe_metric_inc(b);
	/* Same values again: same child. */
	cr_assert_eq(floe_metric_get(f, V("demo", "200")), a);
	cr_assert_eq(floe_metric_value(a), 5);
	cr_assert_str_eq(render(), "# HELP floe_requests_total Requests answered.\n"
				   "# TYPE floe_requests_total counter\n"
				   "floe_requests_total{endpoint=\"demo\",code=\"200\"} 5\n"
				   "floe_requests_total{endpoint=\"demo\",code=\"503\"} 1\n");
}

Test(metrics, gauge_without_labels)
{
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_GAUGE, "floe_up",
							   "Whether floed is up.", NULL, NULL, 0);
	struct floe_metric *g = floe_metric_get(f, NULL);
	floe_metric_set(g, 7);
	floe_metric_add(g, -2.5);
	cr_assert_eq(floe_metric_value(g), 4.5);
	cr_assert_str_eq(render(), "# HELP floe_up Whether floed is up.\n"
				   "# TYPE floe_up gauge\n"
				   "floe_up 4.5\n");
}

Test(metrics, empty_label_array_is_no_labels)
{
	const char *const none[] = { NULL };
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_GAUGE, "g", "h", none, NULL, 0);
	floe_metric_inc(floe_metric_get(f, none));
	cr_assert_str_eq(render(), "# HELP g h\n# TYPE g gauge\ng 1\n");
}

Test(metrics, histogram_cumulative)
{
	const double bounds[] = { 0.005, 1, 2.5, 10 };
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_HISTOGRAM, "floe_request_duration_seconds",
				    "Request latency.", V("endpoint", NULL), bounds, 4);
	struct floe_metric *h = floe_metric_get(f, V("demo"));
	floe_metric_observe(h, 0.001); /* <= 0.005 */
	floe_metric_observe(h, 0.005); /* le is inclusive */
	floe_metric_observe(h, 2);     /* <= 2.5 */
	floe_metric_observe(h, 2.5);   /* <= 2.5 */
	floe_metric_observe(h, 100);   /* +Inf only */
	cr_assert_eq(floe_metric_value(h), 5);
	cr_assert_str_eq(render(),
			 "# HELP floe_request_duration_seconds Request latency.\n"
			 "# TYPE floe_request_duration_seconds histogram\n"
			 "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"0.005\"} 2\n"
			 "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"1\"} 2\n"
			 "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"2.5\"} 4\n"
			 "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"10\"} 4\n"
			 "floe_request_duration_seconds_bucket{endpoint=\"demo\",le=\"+Inf\"} 5\n"
			 "floe_request_duration_seconds_sum{endpoint=\"demo\"} 104.506\n"
			 "floe_request_duration_seconds_count{endpoint=\"demo\"} 5\n");
}

Test(metrics, histogram_without_labels_and_explicit_inf)
{
	const double bounds[] = { 1, INFINITY };
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_HISTOGRAM, "h", "x", NULL, bounds, 2);
	struct floe_metric *h = floe_metric_get(f, NULL);
	floe_metric_observe(h, 0.5);
	floe_metric_observe(h, 3);
	/* The explicit +Inf bound is not rendered twice. */
	cr_assert_str_eq(render(), "# HELP h x\n# TYPE h histogram\n"
				   "h_bucket{le=\"1\"} 1\n"
				   "h_bucket{le=\"+Inf\"} 2\n"
				   "h_sum 3.5\n"
				   "h_count 2\n");
}

Test(metrics, histogram_fresh_child_is_all_zero)
{
	const double bounds[] = { 0.1 };
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_HISTOGRAM, "h", "x", V("k", NULL), bounds, 1);
	floe_metric_get(f, V("v"));
	cr_assert_str_eq(render(), "# HELP h x\n# TYPE h histogram\n"
				   "h_bucket{k=\"v\",le=\"0.1\"} 0\n"
				   "h_bucket{k=\"v\",le=\"+Inf\"} 0\n"
				   "h_sum{k=\"v\"} 0\n"
				   "h_count{k=\"v\"} 0\n");
}

Test(metrics, default_latency_buckets)
{
	cr_assert_gt(floe_metrics_latency_buckets_len, 3);
	cr_assert_eq(floe_metrics_latency_buckets[0], 0.005);
	cr_assert_eq(floe_metrics_latency_buckets[floe_metrics_latency_buckets_len - 1], 300);
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_HISTOGRAM, "floe_cold_start_duration_seconds",
				    "Cold starts.", V("endpoint", "kind", NULL),
				    floe_metrics_latency_buckets, floe_metrics_latency_buckets_len);
	struct floe_metric *h = floe_metric_get(f, V("demo", "fresh"));
	floe_metric_observe(h, 95); /* a slow model load: lands in le="120" */
	const char *text = render();
	cr_assert(strstr(text,
			 "floe_cold_start_duration_seconds_bucket{endpoint=\"demo\",kind=\"fresh\","
			 "le=\"60\"} 0\n"));
	cr_assert(strstr(text,
			 "floe_cold_start_duration_seconds_bucket{endpoint=\"demo\",kind=\"fresh\","
			 "le=\"120\"} 1\n"));
	cr_assert(strstr(text, "le=\"0.025\"} 0\n"));
	cr_assert(strstr(text, "le=\"300\"} 1\n"));
	cr_assert(strstr(text, "le=\"+Inf\"} 1\n"));
}

Test(metrics, escaping)
{
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_COUNTER, "c_total",
							   "Back\\slash, \"quotes\" and\nnewline.",
							   V("path", NULL), NULL, 0);
	floe_metric_inc(floe_metric_get(f, V("a\\b\"c\nd")));
	/* HELP escapes backslash and newline but leaves the quote; label values escape all three. */
	cr_assert_str_eq(render(), "# HELP c_total Back\\\\slash, \"quotes\" and\\nnewline.\n"
				   "# TYPE c_total counter\n"
				   "c_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}

Test(metrics, unicode_and_empty_label_values)
{
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_GAUGE, "g", "h", V("a", "b", NULL), NULL, 0);
	floe_metric_set(floe_metric_get(f, V("", "mod\xc3\xa8le")), 1);
	cr_assert_str_eq(render(), "# HELP g h\n# TYPE g gauge\ng{a=\"\",b=\"mod\xc3\xa8le\"} 1\n");
}

static const char *fmt_one(double v)
{
	floe_metrics_free(m);
	m = floe_metrics_new();
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_GAUGE, "g", "h", NULL, NULL, 0);
	floe_metric_set(floe_metric_get(f, NULL), v);
	const char *text = render();
	const char *prefix = "# HELP g h\n# TYPE g gauge\ng ";
	cr_assert(strncmp(text, prefix, strlen(prefix)) == 0, "rendered: %s", text);
	static char val[64];
	snprintf(val, sizeof(val), "%s", text + strlen(prefix));
	val[strcspn(val, "\n")] = '\0';
	return val;
}

Test(metrics, number_formatting)
{
	cr_assert_str_eq(fmt_one(0), "0");
	cr_assert_str_eq(fmt_one(-0.0), "0");
	cr_assert_str_eq(fmt_one(1), "1");
	cr_assert_str_eq(fmt_one(-42), "-42");
	cr_assert_str_eq(fmt_one(1000000), "1000000");
	cr_assert_str_eq(fmt_one(9007199254740992.0), "9007199254740992");
	cr_assert_str_eq(fmt_one(0.1), "0.1");
	cr_assert_str_eq(fmt_one(2.5), "2.5");
	cr_assert_str_eq(fmt_one(0.005), "0.005");
	cr_assert_str_eq(fmt_one(-0.25), "-0.25");
	cr_assert_str_eq(fmt_one(1.0 / 3), "0.3333333333333333");
	cr_assert_str_eq(fmt_one(0.1 + 0.2), "0.30000000000000004");
	cr_assert_str_eq(fmt_one(1e-7), "1e-07");
	cr_assert_str_eq(fmt_one(1e300), "1e+300");
	cr_assert_str_eq(fmt_one(INFINITY), "+Inf");
	cr_assert_str_eq(fmt_one(-INFINITY), "-Inf");
	cr_assert_str_eq(fmt_one(NAN), "NaN");
	/* Whatever the shape, it reads back to the same double. */
	const double samples[] = { 123.456, 6.02214076e23, 5e-324, 1.7976931348623157e308,
				   12345.678901234567 };
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		cr_assert_eq(strtod(fmt_one(samples[i]), NULL), samples[i], "%s",
			     fmt_one(samples[i]));
}

Test(metrics, counter_ignores_negative_add)
{
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_COUNTER, "c_total", "h", NULL, NULL, 0);
	struct floe_metric *c = floe_metric_get(f, NULL);
	floe_metric_add(c, 2);
	floe_metric_add(c, -1);
	floe_metric_add(c, NAN);
	cr_assert_eq(floe_metric_value(c), 2);
}

Test(metrics, empty_family_and_registration_order)
{
	floe_metrics_family(m, FLOE_GAUGE, "zeta", "last letter, first registered", V("x", NULL),
			    NULL, 0);
	struct floe_metric_family *a =
		floe_metrics_family(m, FLOE_COUNTER, "alpha_total", "second", NULL, NULL, 0);
	floe_metric_inc(floe_metric_get(a, NULL));
	cr_assert_str_eq(render(), "# HELP zeta last letter, first registered\n"
				   "# TYPE zeta gauge\n"
				   "# HELP alpha_total second\n"
				   "# TYPE alpha_total counter\n"
				   "alpha_total 1\n");
}

Test(metrics, remove)
{
	struct floe_metric_family *f = floe_metrics_family(
		m, FLOE_GAUGE, "floe_queue_depth", "Held requests.", V("endpoint", NULL), NULL, 0);
	floe_metric_set(floe_metric_get(f, V("a")), 1);
	floe_metric_set(floe_metric_get(f, V("b")), 2);
	floe_metric_set(floe_metric_get(f, V("c")), 3);
	floe_metric_remove(f, V("b"));
	floe_metric_remove(f, V("nope")); /* absent: no-op */
	cr_assert_str_eq(render(), "# HELP floe_queue_depth Held requests.\n"
				   "# TYPE floe_queue_depth gauge\n"
				   "floe_queue_depth{endpoint=\"a\"} 1\n"
				   "floe_queue_depth{endpoint=\"c\"} 3\n");
	/* Recreated at zero, after the survivors. */
	struct floe_metric *b = floe_metric_get(f, V("b"));
	cr_assert_eq(floe_metric_value(b), 0);
	floe_metric_remove(f, V("a"));
	floe_metric_remove(f, V("c"));
	floe_metric_remove(f, V("b"));
	cr_assert_str_eq(render(), "# HELP floe_queue_depth Held requests.\n"
				   "# TYPE floe_queue_depth gauge\n");
	floe_metric_set(floe_metric_get(f, V("d")), 4);
	cr_assert_str_eq(render(), "# HELP floe_queue_depth Held requests.\n"
				   "# TYPE floe_queue_depth gauge\n"
				   "floe_queue_depth{endpoint=\"d\"} 4\n");
}

Test(metrics, remove_without_labels)
{
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_GAUGE, "g", "h", NULL, NULL, 0);
	floe_metric_set(floe_metric_get(f, NULL), 5);
	floe_metric_remove(f, NULL);
	cr_assert_str_eq(render(), "# HELP g h\n# TYPE g gauge\n");
}

Test(metrics, remove_matching)
{
	const double bounds[] = { 1 };
	struct floe_metric_family *req = floe_metrics_family(
		m, FLOE_COUNTER, "floe_requests_total", "r", V("endpoint", "code", NULL), NULL, 0);
	struct floe_metric_family *cold =
		floe_metrics_family(m, FLOE_HISTOGRAM, "floe_cold_start_duration_seconds", "c",
				    V("endpoint", "kind", NULL), bounds, 1);
	const char *eps[] = { "keep", "gone", "keep", "gone", "gone" };
	const char *codes[] = { "200", "200", "503", "503", "404" };
	for (int i = 0; i < 5; i++)
		floe_metric_inc(floe_metric_get(req, V(eps[i], codes[i])));
	floe_metric_observe(floe_metric_get(cold, V("gone", "fresh")), 0.5);
	floe_metric_observe(floe_metric_get(cold, V("keep", "fresh")), 2);
	/* A code equal to an endpoint name must not match on the wrong label. */
	floe_metric_inc(floe_metric_get(req, V("keep", "gone")));

	floe_metric_remove_matching(req, "endpoint", "gone");
	floe_metric_remove_matching(cold, "endpoint", "gone");
	floe_metric_remove_matching(req, "no_such_label", "keep"); /* no-op */
	cr_assert_str_eq(
		render(),
		"# HELP floe_requests_total r\n"
		"# TYPE floe_requests_total counter\n"
		"floe_requests_total{endpoint=\"keep\",code=\"200\"} 1\n"
		"floe_requests_total{endpoint=\"keep\",code=\"503\"} 1\n"
		"floe_requests_total{endpoint=\"keep\",code=\"gone\"} 1\n"
		"# HELP floe_cold_start_duration_seconds c\n"
		"# TYPE floe_cold_start_duration_seconds histogram\n"
		"floe_cold_start_duration_seconds_bucket{endpoint=\"keep\",kind=\"fresh\",le=\"1\"} 0\n"
		"floe_cold_start_duration_seconds_bucket{endpoint=\"keep\",kind=\"fresh\",le=\"+Inf\"} 1\n"
		"floe_cold_start_duration_seconds_sum{endpoint=\"keep\",kind=\"fresh\"} 2\n"
		"floe_cold_start_duration_seconds_count{endpoint=\"keep\",kind=\"fresh\"} 1\n");
	/* The removed series come back fresh. */
	cr_assert_eq(floe_metric_value(floe_metric_get(req, V("gone", "200"))), 0);
}

Test(metrics, values_do_not_collide_across_boundaries)
{
	struct floe_metric_family *f =
		floe_metrics_family(m, FLOE_GAUGE, "g", "h", V("a", "b", NULL), NULL, 0);
	struct floe_metric *x = floe_metric_get(f, V("a", "bc"));
	struct floe_metric *y = floe_metric_get(f, V("ab", "c"));
	struct floe_metric *z = floe_metric_get(f, V("abc", ""));
	cr_assert_neq(x, y);
	cr_assert_neq(y, z);
	cr_assert_neq(x, z);
}

Test(metrics, ten_thousand_children)
{
	enum {
		N = 10000
	};
	struct floe_metric_family *f = floe_metrics_family(m, FLOE_COUNTER, "c_total", "h",
							   V("endpoint", "code", NULL), NULL, 0);
	struct floe_metric **ptrs = xcalloc(N, sizeof(*ptrs));
	char ep[32], code[32];
	for (int i = 0; i < N; i++) {
		snprintf(ep, sizeof(ep), "ep%d", i / 10);
		snprintf(code, sizeof(code), "%d", i % 10);
		ptrs[i] = floe_metric_get(f, V(ep, code));
		floe_metric_add(ptrs[i], i);
	}
	/* After every growth: same pointers, values intact, all distinct. */
	for (int i = 0; i < N; i++) {
		snprintf(ep, sizeof(ep), "ep%d", i / 10);
		snprintf(code, sizeof(code), "%d", i % 10);
		cr_assert_eq(floe_metric_get(f, V(ep, code)), ptrs[i], "child %d moved", i);
		cr_assert_eq(floe_metric_value(ptrs[i]), i);
	}
	/* Render keeps creation order and has every series exactly once. */
	const char *text = render();
	size_t lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, N + 2);
	cr_assert(strstr(text, "# TYPE c_total counter\nc_total{endpoint=\"ep0\",code=\"0\"} 0\n"
			       "c_total{endpoint=\"ep0\",code=\"1\"} 1\n"));
	cr_assert(strstr(text, "c_total{endpoint=\"ep999\",code=\"9\"} 9999\n"));

	/* Remove half (every endpoint with an odd number) and check the rest. */
	for (int e = 1; e < N / 10; e += 2) {
		snprintf(ep, sizeof(ep), "ep%d", e);
		floe_metric_remove_matching(f, "endpoint", ep);
	}
	for (int i = 0; i < N; i++) {
		if ((i / 10) % 2)
			continue;
		snprintf(ep, sizeof(ep), "ep%d", i / 10);
		snprintf(code, sizeof(code), "%d", i % 10);
		cr_assert_eq(floe_metric_get(f, V(ep, code)), ptrs[i]);
	}
	text = render();
	lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, N / 2 + 2);
	cr_assert_null(strstr(text, "endpoint=\"ep1\""));
	free(ptrs);
}

/* ---- misuse is refused loudly at registration ---- */

Test(metrics, duplicate_family_aborts, .signal = SIGABRT)
{
	floe_metrics_family(m, FLOE_GAUGE, "g", "h", NULL, NULL, 0);
	floe_metrics_family(m, FLOE_COUNTER, "g", "h", NULL, NULL, 0);
}

Test(metrics, bad_metric_name_aborts, .signal = SIGABRT)
{
	floe_metrics_family(m, FLOE_GAUGE, "0bad-name", "h", NULL, NULL, 0);
}

Test(metrics, reserved_label_aborts, .signal = SIGABRT)
{
	floe_metrics_family(m, FLOE_GAUGE, "g", "h", V("__name", NULL), NULL, 0);
}

Test(metrics, le_label_on_histogram_aborts, .signal = SIGABRT)
{
	const double b[] = { 1 };
	floe_metrics_family(m, FLOE_HISTOGRAM, "h", "h", V("le", NULL), b, 1);
}

Test(metrics, unsorted_buckets_abort, .signal = SIGABRT)
{
	const double b[] = { 1, 0.5 };
	floe_metrics_family(m, FLOE_HISTOGRAM, "h", "h", NULL, b, 2);
}

/* ---- a real parser: promtool from the Debian package "prometheus" ---- */

static const char *find_promtool(void)
{
	static const char *const paths[] = { "/usr/bin/promtool", "/usr/local/bin/promtool" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* Runs `promtool check metrics` on text; returns its exit status and output. */
static int promtool_check(const char *promtool, const char *text, char *log, size_t log_size)
{
	char in_path[] = "/tmp/floe-metrics-XXXXXX";
	int fd = mkstemp(in_path);
	cr_assert_geq(fd, 0);
	size_t len = strlen(text);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	char *cmd = xasprintf("%s check metrics < %s 2>&1", promtool, in_path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(log, 1, log_size - 1, p);
	log[n] = '\0';
	int st = pclose(p);
	free(cmd);
	unlink(in_path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(metrics, promtool_accepts_output)
{
	const char *promtool = find_promtool();
	if (!promtool)
		cr_skip_test("promtool not installed (apt-get install prometheus)");

	struct floe_metric_family *req =
		floe_metrics_family(m, FLOE_COUNTER, "floe_requests_total",
				    "Requests answered, by endpoint and status code.",
				    V("endpoint", "code", NULL), NULL, 0);
	struct floe_metric_family *dur = floe_metrics_family(
		m, FLOE_HISTOGRAM, "floe_request_duration_seconds",
		"Request latency.\nWith a \\ and a newline.", V("endpoint", NULL),
		floe_metrics_latency_buckets, floe_metrics_latency_buckets_len);
	struct floe_metric_family *rep =
		floe_metrics_family(m, FLOE_GAUGE, "floe_replicas", "Replicas by state.",
				    V("endpoint", "state", NULL), NULL, 0);
	floe_metrics_family(m, FLOE_GAUGE, "floe_queue_depth", "Held requests.",
			    V("endpoint", NULL), NULL, 0);
	struct floe_metric_family *up =
		floe_metrics_family(m, FLOE_GAUGE, "floe_build_info", "Build.", NULL, NULL, 0);
	floe_metric_set(floe_metric_get(up, NULL), 1);
	floe_metric_add(floe_metric_get(req, V("demo", "200")), 12);
	floe_metric_inc(floe_metric_get(req, V("we\"ird\\name\nx", "503")));
	struct floe_metric *h = floe_metric_get(dur, V("demo"));
	floe_metric_observe(h, 0.0123);
	floe_metric_observe(h, 1.0 / 3);
	floe_metric_observe(h, 400);
	floe_metric_set(floe_metric_get(rep, V("demo", "ready")), 2);
	floe_metric_set(floe_metric_get(rep, V("demo", "starting")), NAN);
	floe_metric_set(floe_metric_get(rep, V("demo", "draining")), -INFINITY);

	char log[4096];
	int rc = promtool_check(promtool, render(), log, sizeof(log));
	/* rc 3 is "lint problems only" in promtool 2.x; we expect none at all. */
	cr_assert_eq(rc, 0, "promtool rejected:\n%s\n---\n%s", log, out.data);
	cr_assert_str_eq(log, "", "promtool complained:\n%s", log);
}

Test(metrics, promtool_rejects_broken_text)
{
	/* Proves the check above can fail: promtool is really parsing. */
	const char *promtool = find_promtool();
	if (!promtool)
		cr_skip_test("promtool not installed (apt-get install prometheus)");
	char log[4096];
	int rc = promtool_check(promtool, "# TYPE x counter\nx{a=\"unterminated} 1\n", log,
				sizeof(log));
	cr_assert_neq(rc, 0);
}
