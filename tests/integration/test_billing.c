/*
 * Billing end to end: the real floed meters real floe-sim replicas into its
 * ledger, and the control plane exports it. The CSV is read with Python's
 * csv module (check_usage_csv.py), and its sums are held against what the
 * test saw of the replicas' lives: across a UTC minute boundary, after a
 * kill -9 of floed, with a damaged segment, with a full disk.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(billing, .init = harness_test_init, .fini = harness_test_fini, .timeout = 240);

#define HEADER                                                                                 \
	"period_start,period_end,namespace,endpoint,replica,instance_type,gpus,state,seconds," \
	"billable_seconds,requests,unit_price_per_hour,cost,currency\r\n"
#define CHAT \
	"{\"model\":\"bill\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}"
#define M_LIVE(st) "floe_replicas{endpoint=\"bill\",state=\"" st "\"}"

/* Prices chosen so costs are easy to check by hand: 3.6/h is 0.001/s. */
#define BILLING_YAML                 \
	"billing:\n"                 \
	"  currency: EUR\n"          \
	"  prices:\n"                \
	"    cpu:\n"                 \
	"      initializing: 0.36\n" \
	"      running: 3.6\n"       \
	"      draining: 3.6\n"      \
	"      warm_pool: 0.036\n"
#define BILL_EP(timeout)                                               \
	"endpoints:\n"                                                 \
	"  - name: bill\n"                                             \
	"    engine: sim\n"                                            \
	"    namespace: team-a\n"                                      \
	"    args: [\"--model\", \"bill\", \"--init-ms\", \"1500\"]\n" \
	"    snapshot: {enabled: false}\n"                             \
	"    scaling: {scale_to_zero_timeout: " timeout "}\n"

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-11-28T10:04:00Z" for a Unix ms (rounded down to the minute). */
static const char *iso_minute(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 60000 * 60);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static bool pids_alive(const pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (kill(pids[i], 0) == 0)
			return true;
	return false;
}

static int live_replicas(struct floed *f)
{
	return (int)(floed_metric0(f, M_LIVE("starting")) + floed_metric0(f, M_LIVE("ready")) +
		     floed_metric0(f, M_LIVE("draining")));
}

/* GET /v2/billing/usage.csv?QUERY; asserts 200 and the CSV type. */
static char *export_csv(struct floed *f, const char *query, char **incomplete)
{
	char path[512];
	snprintf(path, sizeof(path), "/v2/billing/usage.csv?%s", query);
	struct http_resp r;
	http_get(floed_api_url(f, path), &r);
	cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, http_body(&r));
	char *ct = http_header(&r, "Content-Type");
	cr_assert(ct && strncmp(ct, "text/csv", 8) == 0, "Content-Type %s", ct ? ct : "(none)");
	free(ct);
	if (incomplete)
		*incomplete = http_header(&r, "Floe-Ledger-Incomplete");
	char *body = xstrdup(http_body(&r));
	http_resp_free(&r);
	return body;
}

/* The CSV through check_usage_csv.py; its JSON summary (asserts it passed). */
static json_t *check_csv(const char *csv)
{
	char path[] = "/tmp/floe-usage-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, csv, strlen(csv)), (ssize_t)strlen(csv));
	close(fd);
	const char *src = getenv("FLOE_SOURCE_DIR");
	char *cmd = xasprintf("/usr/bin/python3 '%s/tests/integration/check_usage_csv.py' '%s'",
			      src ? src : ".", path);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	struct floe_buf out = FLOE_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		floe_buf_append(&out, chunk, n);
	int rc = pclose(p);
	floe_buf_append(&out, "", 1);
	cr_assert_eq(rc, 0, "check_usage_csv.py failed:\n%s\nCSV:\n%s", out.data, csv);
	json_t *v = json_loads(out.data, 0, NULL);
	cr_assert(v, "not JSON: %s", out.data);
	unlink(path);
	free(cmd);
	floe_buf_destroy(&out);
	return v;
}

static int64_t jint(json_t *o, const char *path)
{
	json_t *v = o;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	cr_assert(json_is_integer(v), "%s is not an integer", path);
	return (int64_t)json_integer_value(v);
}

/* Wait until the second of the UTC minute is in [lo, hi). */
static void wait_second_in(int lo, int hi)
{
	for (;;) {
		int s = (int)(wall_ms() / 1000 % 60);
		if (s >= lo && s < hi)
			return;
		harness_sleep_ms(200);
	}
}

/*
 * One replica's life across a minute boundary: woken at :48-:54 of a
 * minute, it answers three requests and scales to zero 12 s after the last
 * one, in the next minute. Its rows add up to its life, every started
 * minute bills 60 s, each minute's cost is the price times that, and the
 * coarser exports reconcile exactly.
 */
Test(billing, minute_boundary)
{
	struct floed *f = floed_start(BILLING_YAML BILL_EP("12s"));
	wait_second_in(48, 54);
	int64_t t0 = wall_ms();
	for (int i = 0; i < 3; i++) {
		struct http_resp r;
		http_post(floed_url(f, "/v1/chat/completions"), CHAT, &r,
			  "Content-Type: application/json", NULL);
		cr_assert_eq(r.status, 200, "chat %d: %ld %s", i, r.status, http_body(&r));
		http_resp_free(&r);
	}
	int64_t t_answered = wall_ms();
	/* The replica ends when its processes are gone (floed has reaped
	 * them: it records the end before that); the test polls every 50 ms. */
	pid_t pids[16];
	size_t np = floed_replica_pids(f, pids, 16);
	cr_assert_gt(np, 0);
	cr_assert(WAIT_UNTIL(!pids_alive(pids, np), 40000), "the replica did not stop");
	int64_t t1 = wall_ms();
	cr_assert(t1 / 60000 > t0 / 60000, "the replica did not outlive its first minute");
	harness_sleep_ms(1500); /* one commit interval and then some */

	char from[32], to[32], later[32];
	iso_minute(t0, from, sizeof(from));
	iso_minute(t1 + 60000, to, sizeof(to));
	char q[256];
	snprintf(q, sizeof(q), "from=%s&to=%s&granularity=minute&group_by=replica", from, to);
	char *csv = export_csv(f, q, NULL);
	json_t *s = check_csv(csv);

	json_t *reps = json_object_get(s, "replicas");
	cr_assert_eq(json_object_size(reps), 1, "one replica: %s", csv);
	const char *rname = json_object_iter_key(json_object_iter(reps));
	cr_assert(strncmp(rname, "bill-1@", 7) == 0, "replica %s", rname);
	json_t *rep = json_object_get(reps, rname);
	int64_t ms = jint(rep, "ms");
	/* Its life is inside [t0, t1] and covers at least from the answers to
	 * the idle timeout; the 1 s of slack is the test's polling. */
	cr_assert(ms <= t1 - t0 + 50, "metered %" PRId64 " ms, the test saw at most %" PRId64, ms,
		  t1 - t0);
	cr_assert(ms >= t1 - t0 - 1000, "metered %" PRId64 " ms, the test saw %" PRId64, ms,
		  t1 - t0);
	cr_assert(ms >= t1 - t_answered);
	size_t minutes = json_array_size(json_object_get(rep, "periods"));
	cr_assert_geq(minutes, 2);
	cr_assert_eq(jint(rep, "billable_ms"), (int64_t)minutes * 60000,
		     "every started minute bills 60 s");
	cr_assert_eq(jint(rep, "requests"), 3);
	int64_t init_ms = jint(rep, "states.initializing");
	cr_assert(init_ms >= 1400 && init_ms <= 4000, "initializing %" PRId64 " ms (sim: 1.5 s)",
		  init_ms);
	cr_assert(jint(rep, "states.running") > 5000);
	cr_assert(strstr(csv, ",team-a,bill,bill-1@") && strstr(csv, ",cpu,0,running,"),
		  "dimensions: %s", csv);
	cr_assert(strstr(csv, ",3.600000,") && strstr(csv, ",EUR\r\n"), "price/currency: %s", csv);

	/* The same range again: the same bytes. */
	char *again = export_csv(f, q, NULL);
	cr_assert_str_eq(again, csv);
	free(again);

	/* Coarser periods and groups reconcile exactly with the minutes. */
	const char *coarse[] = { "granularity=hour&group_by=replica",
				 "granularity=day&group_by=endpoint",
				 "granularity=minute&group_by=endpoint" };
	for (size_t i = 0; i < sizeof(coarse) / sizeof(coarse[0]); i++) {
		snprintf(q, sizeof(q), "from=%s&to=%s&%s", from, to, coarse[i]);
		char *c = export_csv(f, q, NULL);
		json_t *cs = check_csv(c);
		cr_assert_eq(jint(cs, "total.ms"), jint(s, "total.ms"), "%s", coarse[i]);
		cr_assert_eq(jint(cs, "total.billable_ms"), jint(s, "total.billable_ms"), "%s",
			     coarse[i]);
		cr_assert_eq(jint(cs, "total.cost_micro"), jint(s, "total.cost_micro"), "%s",
			     coarse[i]);
		cr_assert_eq(jint(cs, "total.requests"), 3, "%s", coarse[i]);
		json_decref(cs);
		free(c);
	}

	/* Scaled to zero costs nothing: a later end adds no row. */
	harness_sleep_ms(1000);
	iso_minute(wall_ms() + 120000, later, sizeof(later));
	snprintf(q, sizeof(q), "from=%s&to=%s&granularity=minute&group_by=replica", from, later);
	char *after = export_csv(f, q, NULL);
	cr_assert_str_eq(after, csv, "usage grew while scaled to zero");
	free(after);

	/* The JSON summary says the same. */
	snprintf(q, sizeof(q), "/v2/billing/summary?from=%s&to=%s&namespace=team-a", from, to);
	struct http_resp r;
	http_get(floed_api_url(f, q), &r);
	cr_assert_eq(r.status, 200, "%s", http_body(&r));
	json_t *sum = http_json(&r);
	cr_assert(sum, "%s", http_body(&r));
	json_t *eps = json_object_get(sum, "endpoints");
	cr_assert_eq(json_array_size(eps), 1, "%s", http_body(&r));
	json_t *ep = json_array_get(eps, 0);
	cr_assert_str_eq(json_string_value(json_object_get(ep, "endpoint")), "bill");
	cr_assert_eq(jint(ep, "ms.initializing") + jint(ep, "ms.running") +
			     jint(ep, "ms.draining") + jint(ep, "ms.warm_pool"),
		     ms);
	cr_assert_eq(jint(ep, "billable_ms"), jint(rep, "billable_ms"));
	cr_assert_eq(jint(ep, "requests.2xx"), 3);
	char cost[32];
	int64_t micro = jint(rep, "cost_micro");
	snprintf(cost, sizeof(cost), "%" PRId64 ".%06" PRId64, micro / 1000000, micro % 1000000);
	cr_assert_str_eq(json_string_value(json_object_get(ep, "cost")), cost);
	cr_assert(json_is_false(json_object_get(sum, "incomplete")));
	json_decref(sum);
	http_resp_free(&r);

	/* /metrics: the commits, and no errors. */
	cr_assert_gt(floed_metric0(f, "floe_ledger_records_total"), 3);
	cr_assert_eq(floed_metric0(f, "floe_ledger_errors_total"), 0);

	json_decref(s);
	free(csv);
	FLOED_STOP_OK(f);
}

/* The segment files of f's ledger, sorted (caller frees). */
static size_t segments(struct floed *f, char names[][64], size_t max)
{
	char *dir = xasprintf("%s/ledger", f->data_dir);
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) && n < max)
		if (strstr(e->d_name, ".seg"))
			snprintf(names[n++], 64, "%s", e->d_name);
	if (d)
		closedir(d);
	free(dir);
	qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
	return n;
}

/*
 * kill -9 of floed with a replica running: the replica dies with it, the
 * restarted floed reads the ledger whole, and the export ends the replica
 * within a commit interval of the kill (never later, never much earlier).
 */
Test(billing, crash_kill9)
{
	struct floed *f = floed_start(BILLING_YAML BILL_EP("5m"));
	struct http_resp r;
	http_post(floed_url(f, "/v1/chat/completions"), CHAT, &r, "Content-Type: application/json",
		  NULL);
	cr_assert_eq(r.status, 200);
	http_resp_free(&r);
	int64_t t0 = wall_ms();
	harness_sleep_ms(3300);
	pid_t pids[16];
	size_t np = floed_replica_pids(f, pids, 16);
	cr_assert_gt(np, 0);
	int64_t t_kill = wall_ms();
	floed_signal(f, SIGKILL);
	cr_assert_eq(floed_wait(f, 5000), 128 + SIGKILL);
	/* PDEATHSIG: the replica does not outlive floed. */
	for (size_t i = 0; i < np; i++)
		cr_assert(WAIT_UNTIL(kill(pids[i], 0) != 0, 5000), "replica %d outlived floed",
			  (int)pids[i]);

	floed_restart(f);
	char from[32], to[32], q[256];
	iso_minute(t0 - 60000, from, sizeof(from));
	iso_minute(wall_ms() + 60000, to, sizeof(to));
	snprintf(q, sizeof(q), "from=%s&to=%s&granularity=minute&group_by=replica", from, to);
	char *incomplete = NULL;
	char *csv = export_csv(f, q, &incomplete);
	cr_assert_null(incomplete, "a crash is not damage: %s", incomplete);
	json_t *s = check_csv(csv);
	json_t *reps = json_object_get(s, "replicas");
	cr_assert_eq(json_object_size(reps), 1, "%s", csv);
	json_t *rep = json_object_iter_value(json_object_iter(reps));
	int64_t ms = jint(rep, "ms");
	/* From its start (before t0) to the last commit before the kill: the
	 * documented loss is at most one commit interval (1 s). */
	int64_t lived = t_kill - t0;
	cr_assert(ms >= lived - 1200 && ms <= lived + 2500,
		  "metered %" PRId64 " ms; it lived ~%" PRId64 " ms until the kill", ms, lived);
	/* Nothing is added while the new floed runs: that replica is over. */
	harness_sleep_ms(1200);
	char *again = export_csv(f, q, NULL);
	cr_assert_str_eq(again, csv);
	free(again);
	json_decref(s);
	free(csv);
	FLOED_STOP_OK(f);
}

/*
 * A damaged record in the middle of a segment: floed starts, reports it,
 * and every export says it is incomplete (header) while still counting
 * the records around it.
 */
Test(billing, damaged_segment)
{
	struct floed *f = floed_start(BILLING_YAML BILL_EP("2s"));
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(http_status("POST", floed_url(f, "/v1/chat/completions"), CHAT), 200);
		cr_assert(WAIT_UNTIL(live_replicas(f) == 0 &&
					     floed_metric0(f,
							   "floe_cold_starts_total{endpoint="
							   "\"bill\",kind=\"fresh\"}") == round + 1,
				     30000));
	}
	harness_sleep_ms(1300);
	floed_signal(f, SIGTERM);
	cr_assert_eq(floed_wait(f, 15000), 0);
	char names[8][64];
	size_t n = segments(f, names, 8);
	cr_assert_eq(n, 1, "one segment");
	char *path = xasprintf("%s/ledger/%s", f->data_dir, names[0]);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	/* Flip a byte of the first record: the first replica's start. */
	FILE *fp = fopen(path, "r+");
	cr_assert(fp);
	cr_assert_gt(st.st_size, 100);
	long off = 12; /* past the frame's length and CRC, in its payload */
	fseek(fp, off, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, off, SEEK_SET);
	fputc(c ^ 0x5a, fp);
	fclose(fp);

	floed_restart(f);
	char from[32], to[32], q[256];
	iso_minute(wall_ms() - 10 * 60000, from, sizeof(from));
	iso_minute(wall_ms() + 60000, to, sizeof(to));
	snprintf(q, sizeof(q), "from=%s&to=%s&group_by=replica", from, to);
	char *incomplete = NULL;
	char *csv = export_csv(f, q, &incomplete);
	cr_assert(incomplete, "no Floe-Ledger-Incomplete header");
	cr_assert(strstr(incomplete, names[0]), "the header names the file: %s", incomplete);
	/* The second replica's records sit after the damage: still counted.
	 * The first one's start is lost: it cannot be priced, and the header
	 * says so too. */
	cr_assert(strstr(csv, "bill-2@"), "%s", csv);
	cr_assert_null(strstr(csv, "bill-1@"), "%s", csv);
	cr_assert(strstr(incomplete, "start is missing"), "%s", incomplete);
	free(incomplete);
	free(csv);
	char *log = floed_read_log(f);
	cr_assert(strstr(log, names[0]), "the log names the damaged file");
	free(log);
	free(path);
	FLOED_STOP_OK(f);
}

/* Queries that cannot be answered get 400 naming the parameter; an
 * unknown namespace is an empty file, not an error. */
Test(billing, bad_queries)
{
	struct floed *f = floed_start("billing:\n  max_export_range: 2h\n" BILL_EP("1m"));
	const struct {
		const char *query;
		const char *names;
	} bad[] = {
		{ "from=yesterday&to=2026-11-28T10:00:00Z", "from" },
		{ "from=2026-11-28T10:00:00Z&to=2026-11-28T09:00:00Z", "to" },
		{ "from=2026-11-28T10:00:00Z&to=2026-11-28T10:00:00Z", "to" },
		{ "from=2026-11-28T00:00:00Z&to=2026-11-28T03:00:00Z", "range" },
		{ "from=2026-11-28T10:00:30Z&to=2026-11-28T11:00:00Z", "from" },
		{ "from=2026-11-28T10:00:00Z&to=2026-11-28T11:00:00Z&granularity=week",
		  "granularity" },
		{ "from=2026-11-28T10:00:00Z&to=2026-11-28T11:00:00Z&group_by=model", "group_by" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "/v2/billing/usage.csv?%s", bad[i].query);
		struct http_resp r;
		http_get(floed_api_url(f, path), &r);
		http_assert_error(&r, 400, "bad_request");
		json_t *v = http_json(&r);
		const char *msg =
			json_string_value(json_object_get(json_object_get(v, "error"), "message"));
		cr_assert(msg && strstr(msg, bad[i].names), "%s: message '%s' does not name %s",
			  bad[i].query, msg ? msg : "", bad[i].names);
		json_decref(v);
		http_resp_free(&r);
		snprintf(path, sizeof(path), "/v2/billing/summary?%s", bad[i].query);
		cr_assert_eq(http_status("GET", floed_api_url(f, path), NULL), 400, "%s", path);
	}
	char *csv = export_csv(
		f, "namespace=nobody&from=2026-11-28T10:00:00Z&to=2026-11-28T11:00:00Z", NULL);
	cr_assert_str_eq(csv, HEADER);
	free(csv);
	cr_assert_eq(http_status("POST", floed_api_url(f, "/v2/billing/usage.csv"), "x"), 405);
	cr_assert_eq(http_status("GET", floed_api_url(f, "/v2/billing/other"), NULL), 404);
	/* floed is still serving. */
	cr_assert_eq(http_status("GET", floed_api_url(f, "/healthz"), NULL), 200);
	FLOED_STOP_OK(f);
}

/*
 * A full disk: the ledger's writes fail, floed counts and logs it, keeps
 * serving, and stores the records once there is room again: nothing is
 * lost and nothing is stored twice.
 */
Test(billing, disk_full)
{
	struct floed *f = floed_start(BILLING_YAML BILL_EP("2s"));
	floed_signal(f, SIGTERM);
	cr_assert_eq(floed_wait(f, 15000), 0);
	/* The ledger on a 64 KiB tmpfs, filled up before floed starts again. */
	char *ledger = xasprintf("%s/ledger", f->data_dir);
	harness_rmtree(ledger);
	mkdir(ledger, 0750);
	if (mount("floe-test", ledger, "tmpfs", 0, "size=64k") != 0) {
		int e = errno;
		floed_restart(f);
		FLOED_STOP_OK(f);
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(e));
	}
	char *filler = xasprintf("%s/filler", ledger);
	FILE *fp = fopen(filler, "w");
	cr_assert(fp);
	static char block[4096];
	while (fwrite(block, 1, sizeof(block), fp) == sizeof(block) && fflush(fp) == 0)
		;
	fclose(fp);

	floed_restart(f);
	cr_assert_eq(http_status("POST", floed_url(f, "/v1/chat/completions"), CHAT), 200);
	cr_assert(WAIT_UNTIL(floed_metric0(f, "floe_ledger_errors_total") >= 1, 10000),
		  "no ledger error counted on a full disk");
	cr_assert_gt(floed_metric0(f, "floe_ledger_pending_records"), 0);
	/* Still serving. */
	cr_assert_eq(http_status("POST", floed_url(f, "/v1/chat/completions"), CHAT), 200);
	unlink(filler);
	cr_assert(WAIT_UNTIL(floed_metric0(f, "floe_ledger_pending_records") == 0 &&
				     floed_metric0(f, "floe_ledger_records_total") > 0,
			     40000),
		  "the records were not stored once there was room");
	cr_assert(WAIT_UNTIL(live_replicas(f) == 0, 30000));
	harness_sleep_ms(1500);
	char from[32], to[32], q[256];
	iso_minute(wall_ms() - 5 * 60000, from, sizeof(from));
	iso_minute(wall_ms() + 60000, to, sizeof(to));
	snprintf(q, sizeof(q), "from=%s&to=%s&group_by=replica&granularity=minute", from, to);
	char *incomplete = NULL;
	char *csv = export_csv(f, q, &incomplete);
	cr_assert_null(incomplete, "%s", incomplete);
	json_t *s = check_csv(csv);
	cr_assert_eq(jint(s, "total.requests"), 2, "%s", csv);
	cr_assert_gt(jint(s, "total.ms"), 1500);
	json_decref(s);
	free(csv);
	char *log = floed_read_log(f);
	cr_assert(strstr(log, "No space left on device"), "the log says why");
	free(log);
	umount2(ledger, MNT_DETACH);
	FLOED_STOP_OK(f);
	free(filler);
	free(ledger);
}

/* GET path on the control plane with an optional bearer token: the status
 * (the body in *body when asked, caller frees). */
static long api_get_as(struct floed *f, const char *path, const char *token, char **body,
		       char **www_auth)
{
	struct http_req req = { .url = floed_api_url(f, path), .bearer = token };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (body)
		*body = xstrdup(http_body(&r));
	if (www_auth)
		*www_auth = http_header(&r, "WWW-Authenticate");
	http_resp_free(&r);
	return st;
}

/*
 * With auth.tokens, the billing and snapshot routes want a token, and a
 * token sees its own namespace only: alice's export has alice's replicas,
 * never bob's, and asking for bob's is 403. Probes stay open.
 */
Test(billing, tokens_see_their_namespace)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk, "endpoints:\n"
		     "  - name: a1\n    engine: sim\n    namespace: alice\n"
		     "    args: [\"--model\", \"a1\"]\n    snapshot: {enabled: false}\n"
		     "  - name: b1\n    engine: sim\n    namespace: bob\n"
		     "    args: [\"--model\", \"b1\"]\n    snapshot: {enabled: false}\n");
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/a1/generate"), "{\"inputs\":\"x\"}"),
		200);
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/b1/generate"), "{\"inputs\":\"x\"}"),
		200);
	harness_sleep_ms(1300);

	cr_assert_eq(api_get_as(f, "/healthz", NULL, NULL, NULL), 200);
	cr_assert_eq(api_get_as(f, "/metrics", NULL, NULL, NULL), 200);
	char *www = NULL;
	cr_assert_eq(api_get_as(f, "/v2/billing/usage.csv", NULL, NULL, &www), 401);
	cr_assert(www && strstr(www, "Bearer") && !strstr(www, "error="), "%s", www);
	free(www);
	cr_assert_eq(api_get_as(f, "/v2/billing/usage.csv", "floe_not-a-real-token", NULL, &www),
		     401);
	cr_assert(www && strstr(www, "invalid_token"), "%s", www);
	free(www);
	cr_assert_eq(api_get_as(f, "/v2/snapshots", NULL, NULL, NULL), 401);

	char *csv = NULL;
	cr_assert_eq(api_get_as(f, "/v2/billing/usage.csv?group_by=replica", tk.alice, &csv, NULL),
		     200);
	cr_assert(strstr(csv, ",alice,a1,a1-1@"), "%s", csv);
	cr_assert_null(strstr(csv, "b1"), "alice sees bob's usage: %s", csv);
	free(csv);
	cr_assert_eq(api_get_as(f, "/v2/billing/usage.csv?namespace=bob", tk.alice, NULL, NULL),
		     403);
	cr_assert_eq(api_get_as(f, "/v2/billing/summary?namespace=bob", tk.alice, NULL, NULL), 403);
	cr_assert_eq(api_get_as(f, "/v2/billing/usage.csv?namespace=bob", tk.bob, &csv, NULL), 200);
	cr_assert(strstr(csv, ",bob,b1,") && !strstr(csv, "a1"), "%s", csv);
	free(csv);
	cr_assert_eq(api_get_as(f, "/v2/snapshots", tk.bob, &csv, NULL), 200);
	cr_assert_str_eq(csv, "{\"items\":[]}");
	free(csv);
	/* Tokens never reach the log. */
	char *log = floed_read_log(f);
	cr_assert_null(strstr(log, tk.alice));
	cr_assert_null(strstr(log, tk.bob));
	free(log);
	FLOED_STOP_OK(f);
}
