/*
 * Snapshots (issue 3), zdtm-style against the real floed, real CRIU and
 * real floe-sim replicas: set up state in a fresh engine, let floed dump
 * it, scale to zero, wake the endpoint and check the state survived the
 * restore. Then what users rely on around it: several replicas restored
 * from one snapshot, a damaged snapshot quarantined without failing the
 * request, restored replicas' logs, the warm pool, and a changed endpoint
 * definition never served from the old snapshot.
 *
 * Every test uses scale_to_zero_timeout 1s to get its second cold start
 * quickly; waits are generous WAIT_UNTILs, never timed assertions. Tests
 * skip only where floed says snapshots are unavailable (no CRIU).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(snapshot, .init = harness_test_init, .fini = harness_test_fini, .timeout = 120);

#define JSON_CT "Content-Type: application/json"

#define READY(ep) "floe_replicas{endpoint=\"" ep "\",state=\"ready\"}"
#define WARM(ep) "floe_replicas{endpoint=\"" ep "\",state=\"warm_pool\"}"
#define COLD(ep, kind) "floe_cold_starts_total{endpoint=\"" ep "\",kind=\"" kind "\"}"
#define SNAP_OPS(ep, op, result) \
	"floe_snapshot_operations_total{endpoint=\"" ep "\",op=\"" op "\",result=\"" result "\"}"

/* The sim engine of every test: half a second of init, 32 MiB of
 * deterministic memory (its checksum is the state that must survive). */
#define SIM_ARGS ", \"--init-ms\", \"500\", \"--rss-mib\", \"32\""
#define TO_ZERO_1S       \
	"    scaling:\n" \
	"      scale_to_zero_timeout: 1s\n"

#define KEY_LEN 64

/* ------------------------------------------------------------------ */
/* helpers */

/* floed without CRIU says so at start; only then may a test skip. */
static void skip_without_criu(struct floed *f)
{
	char *log = floed_read_log(f);
	bool unavailable = log && strstr(log, "snapshots unavailable");
	char line[512] = "";
	if (unavailable) {
		const char *p = strstr(log, "snapshots unavailable");
		size_t n = strcspn(p, "\n");
		snprintf(line, sizeof(line), "%.*s", (int)(n < 400 ? n : 400), p);
	}
	free(log);
	if (unavailable)
		cr_skip_test("floed runs without CRIU on this machine (%s)", line);
}

static struct floed *start_snap_floed(const char *yaml)
{
	struct floed *f = floed_start(yaml);
	skip_without_criu(f);
	return f;
}

/* What GET /endpoints/EP/info?verify=1 told: the engine's state and floed's headers. */
struct info {
	long status;
	int replica;        /* N of X-Floe-Replica, -1 without one */
	char desc[32];      /* cold-start desc of Server-Timing, "" when not a cold start */
	char checksum[40];  /* memory_checksum, "" when null */
	char model[64];     /* model_id */
	bool verified;      /* memory_verified */
	bool has_verified;  /* memory_verified was present */
	long long requests; /* requests_served, -1 when absent */
	char body[400];
};

static void info_from(const struct http_resp *r, const char *ep, struct info *out)
{
	memset(out, 0, sizeof(*out));
	out->status = r->status;
	out->requests = -1;
	snprintf(out->body, sizeof(out->body), "%.399s", http_body(r));
	char *rep = http_header(r, "X-Floe-Replica");
	out->replica = replica_seq(rep, ep);
	free(rep);
	char *st = http_header(r, "Server-Timing");
	double dur;
	if (st && !server_timing_get(st, "cold-start", &dur, out->desc, sizeof(out->desc)))
		out->desc[0] = '\0';
	free(st);
	json_t *j = http_json(r);
	if (!j)
		return;
	const char *cs = json_string_value(json_object_get(j, "memory_checksum"));
	snprintf(out->checksum, sizeof(out->checksum), "%s", cs ? cs : "");
	const char *m = json_string_value(json_object_get(j, "model_id"));
	snprintf(out->model, sizeof(out->model), "%s", m ? m : "");
	json_t *v = json_object_get(j, "memory_verified");
	out->has_verified = json_is_boolean(v);
	out->verified = json_is_true(v);
	json_t *n = json_object_get(j, "requests_served");
	if (json_is_integer(n))
		out->requests = (long long)json_integer_value(n);
	json_decref(j);
}

static void get_info(struct floed *f, const char *ep, struct info *out)
{
	char path[128];
	snprintf(path, sizeof(path), "/endpoints/%s/info?verify=1", ep);
	struct http_resp r;
	http_get(floed_url(f, path), &r);
	info_from(&r, ep, out);
	if (r.status != 200)
		cr_log_error("GET %s: status %ld (curl: %s) body %.300s", path, r.status, r.error,
			     http_body(&r));
	http_resp_free(&r);
}

static double metric(struct floed *f, const char *fmt, const char *ep)
{
	char series[256];
	snprintf(series, sizeof(series), fmt, ep);
	return floed_metric0(f, series);
}

#define M_READY "floe_replicas{endpoint=\"%s\",state=\"ready\"}"
#define M_STARTING "floe_replicas{endpoint=\"%s\",state=\"starting\"}"
#define M_DRAINING "floe_replicas{endpoint=\"%s\",state=\"draining\"}"
#define M_DUMP_OK "floe_snapshot_operations_total{endpoint=\"%s\",op=\"dump\",result=\"ok\"}"

/* Wait until floed has committed its n-th snapshot of ep. Asserts. */
static void wait_dumps(struct floed *f, const char *ep, int n)
{
	bool ok = WAIT_UNTIL(metric(f, M_DUMP_OK, ep) >= n, 30000);
	if (!ok)
		floed_print_log(f, 40);
	cr_assert(ok, "%s: snapshot #%d was not taken within 30 s (dump ok count %g)", ep, n,
		  metric(f, M_DUMP_OK, ep));
}

/* Wait until ep has no replica starting, ready or draining. Asserts. */
static void wait_zero(struct floed *f, const char *ep)
{
	bool ok = WAIT_UNTIL(metric(f, M_READY, ep) == 0 && metric(f, M_STARTING, ep) == 0 &&
				     metric(f, M_DRAINING, ep) == 0,
			     20000);
	if (!ok)
		floed_print_log(f, 40);
	cr_assert(ok, "%s did not scale to zero within 20 s (scale_to_zero_timeout 1s)", ep);
}

/*
 * The snapshot keys (directory names of 64 hex digits) under
 * DATA/snapshots; .tmp and quarantine are not snapshots. Returns the count,
 * at most max stored.
 */
static size_t snapshot_keys(struct floed *f, char keys[][KEY_LEN + 1], size_t max)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/snapshots", f->data_dir);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != KEY_LEN ||
		    strspn(de->d_name, "0123456789abcdef") != KEY_LEN)
			continue;
		if (n < max)
			snprintf(keys[n], KEY_LEN + 1, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* The one snapshot key there is. Asserts. */
static void the_key(struct floed *f, char key[KEY_LEN + 1])
{
	char keys[4][KEY_LEN + 1];
	size_t n = snapshot_keys(f, keys, 4);
	cr_assert_eq(n, 1, "%zu snapshots under %s/snapshots, want 1", n, f->data_dir);
	snprintf(key, KEY_LEN + 1, "%s", keys[0]);
}

static bool key_present(struct floed *f, const char *key)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/snapshots/%s", f->data_dir, key);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * The first cold request: a fresh start whose engine state (checksum,
 * requests served) the snapshot is about to hold. `burst` concurrent
 * requests are held and then all dispatched to the one replica; floed
 * dumps it once none is in flight, so every answer predates the dump and
 * the largest requests_served among them is at most the snapshot's.
 */
static void first_cold_burst(struct floed *f, const char *ep, int burst, struct info *fresh,
			     long long *max_served)
{
	char path[128];
	snprintf(path, sizeof(path), "/endpoints/%s/info?verify=1", ep);
	enum {
		MAX_BURST = 64
	};
	cr_assert(burst >= 1 && burst <= MAX_BURST);
	struct http_req reqs[MAX_BURST];
	struct http_resp resps[MAX_BURST];
	for (int i = 0; i < burst; i++)
		reqs[i] = (struct http_req){ .url = floed_url(f, path), .timeout_ms = 30000 };
	http_multi(reqs, (size_t)burst, resps);
	int ok = 0, woke = 0;
	*max_served = -1;
	for (int i = 0; i < burst; i++) {
		struct info in;
		info_from(&resps[i], ep, &in);
		if (in.status == 200)
			ok++;
		else
			cr_log_error("cold burst request %d: status %ld curl %s body %.200s", i,
				     in.status, resps[i].error, in.body);
		if (in.desc[0]) {
			woke++;
			*fresh = in;
		}
		if (in.requests > *max_served)
			*max_served = in.requests;
		http_resp_free(&resps[i]);
	}
	cr_assert_eq(ok, burst, "%d of %d cold requests answered 200", ok, burst);
	cr_assert_eq(woke, 1, "%d of %d cold requests report a cold start, want exactly 1", woke,
		     burst);
	cr_assert_str_eq(fresh->desc, "fresh", "first cold start of %s: desc=\"%s\"", ep,
			 fresh->desc);
	cr_assert_eq(fresh->replica, 1, "first cold start answered by %s-%d", ep, fresh->replica);
	cr_assert(fresh->has_verified && fresh->verified, "fresh engine's memory not verified: %s",
		  fresh->body);
	cr_assert(fresh->checksum[0], "fresh engine reports no memory_checksum: %s", fresh->body);
}

/* Fresh start, its snapshot, scale to zero: the state every test starts from. */
static void snapshot_then_zero(struct floed *f, const char *ep, struct info *fresh)
{
	long long served;
	first_cold_burst(f, ep, 1, fresh, &served);
	wait_dumps(f, ep, 1);
	wait_zero(f, ep);
}

/* ------------------------------------------------------------------ */
/* 1: state survives dump and restore */

Test(snapshot, state_survives_dump_and_restore)
{
	struct floed *f =
		start_snap_floed("endpoints:\n" HARNESS_SIM_EP("snapst", SIM_ARGS) TO_ZERO_1S);
	/* 40 held requests: the snapshot's counter is then well above what
	 * any freshly started engine reports (its health probes plus one). */
	struct info fresh;
	long long served_before_dump;
	first_cold_burst(f, "snapst", 40, &fresh, &served_before_dump);
	cr_assert_geq(served_before_dump, 40, "requests_served %lld after 40 requests",
		      served_before_dump);

	wait_dumps(f, "snapst", 1);
	char key[KEY_LEN + 1];
	the_key(f, key);
	char meta[PATH_MAX];
	snprintf(meta, sizeof(meta), "%s/snapshots/%s/meta.msgpack", f->data_dir, key);
	cr_expect_eq(access(meta, R_OK), 0, "snapshot %s has no meta.msgpack", key);
	cr_expect_gt(floed_metric0(f, "floe_snapshot_bytes{endpoint=\"snapst\"}"), 32.0 * 1048576,
		     "floe_snapshot_bytes below the engine's 32 MiB of memory");
	wait_zero(f, "snapst");

	struct info back;
	get_info(f, "snapst", &back);
	cr_assert_eq(back.status, 200, "cold request after scale to zero: %ld %s", back.status,
		     back.body);
	cr_expect_str_eq(back.desc, "restore", "cold start after the snapshot: desc=\"%s\"",
			 back.desc);
	cr_expect_eq(back.replica, 2, "answered by snapst-%d, want snapst-2", back.replica);
	cr_expect(back.has_verified && back.verified,
		  "restored engine's memory does not verify: %s", back.body);
	cr_expect_str_eq(back.checksum, fresh.checksum,
			 "memory_checksum changed across dump and restore");
	cr_log_info("requests_served: %lld before the dump, %lld after the restore; checksum %s",
		    served_before_dump, back.requests, back.checksum);
	cr_expect_gt(back.requests, served_before_dump,
		     "requests_served %lld after restore, %lld before the dump: the counter did "
		     "not carry over",
		     back.requests, served_before_dump);
	cr_expect_eq(floed_metric0(f, COLD("snapst", "restore")), 1);
	cr_expect_eq(floed_metric0(f, COLD("snapst", "fresh")), 1);
	cr_expect_eq(floed_metric0(f, SNAP_OPS("snapst", "restore", "ok")), 1);
	cr_expect_eq(floed_metric0(f, SNAP_OPS("snapst", "restore", "failed")), 0);
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* 2: several replicas restored from one snapshot, all serving */

#define GEN_SLOW "{\"inputs\":\"hello floe\",\"parameters\":{\"max_new_tokens\":30}}"
#define GEN_SHORT "{\"inputs\":\"hello floe\",\"parameters\":{\"max_new_tokens\":6}}"

Test(snapshot, three_replicas_restored_concurrently_all_serve)
{
	struct floed *f = start_snap_floed("endpoints:\n" HARNESS_SIM_EP(
		"snap3", SIM_ARGS ", \"--token-ms\", \"150\"") "    scaling:\n"
							       "      max_replica: 3\n"
							       "      target_concurrency: 1\n"
							       "      scale_to_zero_timeout: 1s\n");
	struct info fresh;
	snapshot_then_zero(f, "snap3", &fresh);

	/*
	 * The scaler (runtime/scale.c) starts one replica for a cold burst and
	 * then one more at a time while in-flight per ready replica exceeds
	 * target_concurrency; held requests all go to the first ready one. So:
	 * three slow requests wake snap3-2 and keep it busy while snap3-3 and
	 * snap3-4 are restored from the same snapshot; three more requests
	 * then go to the least loaded replicas.
	 */
	static const char *const hdrs[] = { JSON_CT, NULL };
	struct http_req slow = { .url = floed_url(f, "/endpoints/snap3/generate"),
				 .body = GEN_SLOW,
				 .headers = hdrs,
				 .timeout_ms = 60000 };
	struct http_bg *bg[3];
	for (int i = 0; i < 3; i++)
		bg[i] = http_bg_start(&slow);
	bool three = WAIT_UNTIL(floed_metric0(f, READY("snap3")) == 3, 30000);
	if (!three)
		floed_print_log(f, 40);
	cr_expect(three, "snap3 did not reach 3 ready replicas under 3 slow requests (ready %g)",
		  floed_metric0(f, READY("snap3")));

	struct http_req reqs[3];
	struct http_resp resps[3];
	for (int i = 0; i < 3; i++)
		reqs[i] = (struct http_req){ .url = floed_url(f, "/endpoints/snap3/generate"),
					     .body = GEN_SHORT,
					     .headers = hdrs,
					     .timeout_ms = 60000 };
	http_multi(reqs, 3, resps);

	bool seen[16] = { false };
	int ok = 0;
	for (int i = 0; i < 6; i++) {
		struct http_resp *r = i < 3 ? http_bg_wait(bg[i], 60000) : &resps[i - 3];
		cr_assert(r, "slow request %d did not finish", i);
		char *rep = http_header(r, "X-Floe-Replica");
		int n = replica_seq(rep, "snap3");
		free(rep);
		if (r->status == 200)
			ok++;
		else
			cr_log_error("request %d: status %ld (curl %s) body %.200s", i, r->status,
				     r->error, http_body(r));
		cr_expect(n >= 2 && n <= 4, "request %d answered by snap3-%d, want snap3-2..4", i,
			  n);
		if (n >= 0 && n < 16)
			seen[n] = true;
		if (i >= 3)
			http_resp_free(r);
	}
	for (int i = 0; i < 3; i++)
		http_bg_free(bg[i]);
	cr_expect_eq(ok, 6, "%d of 6 requests answered 200", ok);
	int distinct = 0;
	for (int n = 0; n < 16; n++)
		distinct += seen[n];
	cr_expect_eq(distinct, 3, "requests answered by %d distinct replicas, want 3", distinct);
	cr_expect_eq(floed_metric0(f, COLD("snap3", "restore")), 3,
		     "restore cold starts: every replica after the snapshot is a restore");
	cr_expect_eq(floed_metric0(f, COLD("snap3", "fresh")), 1);
	cr_expect_eq(floed_metric0(f, SNAP_OPS("snap3", "restore", "ok")), 3);
	cr_expect_eq(floed_metric0(f, SNAP_OPS("snap3", "dump", "ok")), 1,
		     "restored replicas must not be dumped again");
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* 3: a damaged snapshot is quarantined, the request still served */

enum damage {
	TRUNCATE_PAGES,
	GARBAGE_INVENTORY,
};

/* The largest pages-*.img (the engine's memory) of the snapshot. */
static void largest_pages(const char *images, char *out, size_t n)
{
	DIR *d = opendir(images);
	cr_assert(d, "opendir %s", images);
	off_t best = -1;
	struct dirent *de;
	out[0] = '\0';
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "pages-", 6) != 0)
			continue;
		char p[PATH_MAX];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", images, de->d_name);
		if (stat(p, &st) == 0 && st.st_size > best) {
			best = st.st_size;
			snprintf(out, n, "%s", p);
		}
	}
	closedir(d);
	cr_assert(out[0], "no pages-*.img in %s", images);
}

static void damage_snapshot(struct floed *f, const char *key, enum damage how)
{
	char images[PATH_MAX], file[PATH_MAX];
	snprintf(images, sizeof(images), "%s/snapshots/%s/images", f->data_dir, key);
	struct stat st;
	if (how == TRUNCATE_PAGES) {
		largest_pages(images, file, sizeof(file));
		cr_assert_eq(stat(file, &st), 0, "stat %s", file);
		cr_assert_gt(st.st_size, 0, "%s is empty", file);
		cr_assert_eq(truncate(file, st.st_size / 2), 0, "truncate %s", file);
		return;
	}
	snprintf(file, sizeof(file), "%s/inventory.img", images);
	cr_assert_eq(stat(file, &st), 0, "stat %s", file);
	size_t len = (size_t)st.st_size;
	cr_assert_gt(len, 0, "%s is empty", file);
	char *junk = malloc(len);
	cr_assert(junk);
	for (size_t i = 0; i < len; i++)
		junk[i] = (char)(0xA5 ^ (i * 37));
	cr_assert_eq(harness_write_file(file, junk, len), 0, "overwrite %s", file);
	free(junk);
}

/* A quarantine/KEY.UNIXTIME directory with a non-empty REASON file. */
static bool quarantined(struct floed *f, const char *key, char *reason, size_t n)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/snapshots/quarantine", f->data_dir);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (strncmp(de->d_name, key, KEY_LEN) != 0 || de->d_name[KEY_LEN] != '.')
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s/REASON", dir, de->d_name);
		size_t len = 0;
		char *text = harness_read_file(path, &len);
		if (text && len > 0) {
			found = true;
			snprintf(reason, n, "%s", text);
		}
		free(text);
	}
	closedir(d);
	return found;
}

static void corrupted_snapshot_case(const char *ep, enum damage how)
{
	char yaml[1024];
	snprintf(yaml, sizeof(yaml),
		 "endpoints:\n"
		 "  - name: %s\n"
		 "    engine: sim\n"
		 "    args: [\"--model\", \"%s\"" SIM_ARGS "]\n" TO_ZERO_1S,
		 ep, ep);
	struct floed *f = start_snap_floed(yaml);
	struct info fresh;
	snapshot_then_zero(f, ep, &fresh);
	char key[KEY_LEN + 1];
	the_key(f, key);
	damage_snapshot(f, key, how);

	struct info in;
	get_info(f, ep, &in);
	cr_assert_eq(in.status, 200, "cold request with a damaged snapshot: %ld %s", in.status,
		     in.body);
	cr_expect_str_eq(in.desc, "fresh",
			 "a damaged snapshot must give a fresh start: desc=\"%s\"", in.desc);
	cr_expect(in.has_verified && in.verified, "engine memory not verified: %s", in.body);
	cr_expect_str_eq(in.checksum, fresh.checksum);
	cr_expect_eq(metric(f, SNAP_OPS("%s", "restore", "failed"), ep), 1,
		     "floe_snapshot_operations_total restore failed");

	char reason[512] = "";
	bool q = WAIT_UNTIL(quarantined(f, key, reason, sizeof(reason)), 10000);
	cr_expect(q, "snapshot %.12s not moved to snapshots/quarantine/KEY.TIME with a REASON",
		  key);
	if (q)
		cr_log_info("quarantine REASON: %s", reason);
	char *log = floed_read_log(f);
	char want[64];
	snprintf(want, sizeof(want), "snapshot %.12s quarantined: ", key);
	cr_expect(log && strstr(log, want), "floed's log lacks \"%s\"", want);
	free(log);

	/* Still serving, and the fresh replica that answered is snapshotted anew. */
	get_info(f, ep, &in);
	cr_expect_eq(in.status, 200, "request after the quarantine: %ld %s", in.status, in.body);
	wait_dumps(f, ep, 2);
	cr_expect(key_present(f, key), "no new snapshot %.12s after the quarantine", key);

	/* ... and the new snapshot serves the next cold start. */
	wait_zero(f, ep);
	get_info(f, ep, &in);
	cr_expect_eq(in.status, 200);
	cr_expect_str_eq(in.desc, "restore", "cold start from the new snapshot: desc=\"%s\"",
			 in.desc);
	cr_expect(in.has_verified && in.verified, "restored memory not verified: %s", in.body);
	FLOED_STOP_OK(f);
}

Test(snapshot, corrupted_snapshot_is_quarantined_and_the_request_still_served)
{
	corrupted_snapshot_case("snapcut", TRUNCATE_PAGES);
}

Test(snapshot, garbage_inventory_is_quarantined_and_the_request_still_served)
{
	corrupted_snapshot_case("snapinv", GARBAGE_INVENTORY);
}

/* ------------------------------------------------------------------ */
/* 4: restored replicas' logs */

Test(snapshot, restored_replica_logs_are_captured)
{
	struct floed *f =
		start_snap_floed("endpoints:\n" HARNESS_SIM_EP("snaplog", SIM_ARGS) TO_ZERO_1S);
	struct info fresh;
	snapshot_then_zero(f, "snaplog", &fresh);
	char key[KEY_LEN + 1];
	the_key(f, key);

	struct info in;
	get_info(f, "snaplog", &in);
	cr_assert_eq(in.status, 200);
	cr_assert_str_eq(in.desc, "restore");
	cr_assert_eq(in.replica, 2);
	/* Scale to zero: floed SIGTERMs the restored engine, which logs its drain. */
	wait_zero(f, "snaplog");

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/logs/snaplog/snaplog-2.log", f->data_dir);
	char *text = NULL;
	bool drained = WAIT_UNTIL(((free(text), text = harness_read_file(path, NULL)) &&
				   strstr(text, "floe-sim: Terminated, draining")),
				  5000);
	cr_assert(text, "no log file %s", path);
	char first[160];
	snprintf(first, sizeof(first), "floe: replica snaplog-2 restored from snapshot %.12s in ",
		 key);
	cr_expect(strncmp(text, first, strlen(first)) == 0,
		  "%s does not start with \"%s\":\n%.500s", path, first, text);
	cr_expect(drained,
		  "the restored engine's own output (its SIGTERM drain line) is not in %s:\n%.500s",
		  path, text);
	/* The engine was restored, not started: no start-up lines of its own. */
	cr_expect(!strstr(text, "floe-sim: listening"),
		  "%s has the engine's start-up line: started, not restored?\n%.500s", path, text);
	free(text);
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* 5: the warm pool */

/*
 * Where floed puts replica cgroups: its start-up line says "warm pool
 * cgroup v1 freezer at MOUNT, replicas under DIR". Empty when floed uses
 * no v1 freezer (cgroup2's cgroup.freeze is not what this test reads).
 */
static void freezer_parent(struct floed *f, char *out, size_t n)
{
	out[0] = '\0';
	char *log = floed_read_log(f);
	const char *v1 = log ? strstr(log, "cgroup v1 freezer at ") : NULL;
	const char *p = v1 ? strstr(v1, "replicas under ") : NULL;
	if (p) {
		p += strlen("replicas under ");
		snprintf(out, n, "%.*s", (int)strcspn(p, " ;\n"), p);
	}
	free(log);
}

static bool freezer_state_is(const char *parent, const char *id, const char *want, char *got,
			     size_t n)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s/freezer.state", parent, id);
	char *s = harness_read_file(path, NULL);
	snprintf(got, n, "%s", s ? s : "(unreadable)");
	got[strcspn(got, "\n")] = '\0';
	free(s);
	return strcmp(got, want) == 0;
}

Test(snapshot, warm_pool_thaws_on_cold_request_and_refills)
{
	struct floed *f = start_snap_floed("endpoints:\n" HARNESS_SIM_EP(
		"snapwp", SIM_ARGS) "    warm_pool: {size: 1}\n" TO_ZERO_1S);
	char *log = floed_read_log(f);
	bool no_freezer = log && strstr(log, "warm pools disabled");
	free(log);
	if (no_freezer)
		cr_skip_test(
			"floed has no cgroup freezer here (\"warm pools disabled\" in its log)");

	struct info fresh;
	long long served;
	first_cold_burst(f, "snapwp", 1, &fresh, &served);
	wait_dumps(f, "snapwp", 1);
	bool pooled = WAIT_UNTIL(floed_metric0(f, WARM("snapwp")) == 1, 20000);
	if (!pooled)
		floed_print_log(f, 40);
	cr_assert(pooled, "no warm-pool replica after the snapshot");
	wait_zero(f, "snapwp");
	cr_expect_eq(floed_metric0(f, WARM("snapwp")), 1, "the pool replica was scaled to zero");

	/* snapshot from snapwp-1, pool replica snapwp-2 */
	char cg[PATH_MAX], got[64];
	freezer_parent(f, cg, sizeof(cg));
	if (cg[0])
		cr_expect(freezer_state_is(cg, "snapwp-2", "FROZEN", got, sizeof(got)),
			  "pool replica %s/snapwp-2 freezer.state %s, want FROZEN", cg, got);
	else
		cr_log_warn("floed uses no cgroup v1 freezer here: freezer.state not checked");

	struct info in;
	get_info(f, "snapwp", &in);
	cr_assert_eq(in.status, 200, "cold request with a warm pool: %ld %s", in.status, in.body);
	cr_expect_str_eq(in.desc, "warm_pool", "cold start with a warm pool: desc=\"%s\"", in.desc);
	cr_expect_eq(in.replica, 2, "answered by snapwp-%d, want the pool's snapwp-2", in.replica);
	cr_expect(in.has_verified && in.verified, "thawed engine's memory not verified: %s",
		  in.body);
	cr_expect_str_eq(in.checksum, fresh.checksum);
	cr_expect_gt(in.requests, served, "requests_served did not carry over (%lld <= %lld)",
		     in.requests, served);
	cr_expect_eq(floed_metric0(f, COLD("snapwp", "warm_pool")), 1);
	if (cg[0])
		cr_expect(freezer_state_is(cg, "snapwp-2", "THAWED", got, sizeof(got)),
			  "serving replica %s/snapwp-2 freezer.state %s, want THAWED", cg, got);

	bool refilled = WAIT_UNTIL(floed_metric0(f, WARM("snapwp")) == 1, 20000);
	cr_expect(refilled, "the warm pool was not refilled (warm_pool %g)",
		  floed_metric0(f, WARM("snapwp")));
	if (refilled && cg[0])
		cr_expect(WAIT_UNTIL(freezer_state_is(cg, "snapwp-3", "FROZEN", got, sizeof(got)),
				     5000),
			  "refilled pool replica %s/snapwp-3 freezer.state %s, want FROZEN", cg,
			  got);
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* 6: a changed definition never reuses the old snapshot */

Test(snapshot, changed_definition_does_not_reuse_the_old_snapshot)
{
	struct floed *f =
		start_snap_floed("endpoints:\n" HARNESS_SIM_EP("snapdef", SIM_ARGS) TO_ZERO_1S);
	struct info fresh;
	snapshot_then_zero(f, "snapdef", &fresh);
	char old_key[KEY_LEN + 1];
	the_key(f, old_key);
	cr_expect_str_eq(fresh.model, "snapdef");

	/* Same endpoint, one more argument (a later --model wins in floe-sim). */
	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("snapdef", SIM_ARGS
						      ", \"--model\", \"other\"") TO_ZERO_1S);
	bool reloaded = WAIT_UNTIL(({
					   char *log = floed_read_log(f);
					   bool done = log && strstr(log, "configuration reloaded");
					   free(log);
					   done;
				   }),
				   10000);
	cr_assert(reloaded, "floed did not log \"configuration reloaded\" after SIGHUP");

	struct info in;
	get_info(f, "snapdef", &in);
	cr_assert_eq(in.status, 200, "cold request after the reload: %ld %s", in.status, in.body);
	cr_expect_str_eq(in.model, "other", "the engine still runs the old definition: %s",
			 in.body);
	cr_expect_str_eq(in.desc, "fresh",
			 "changed definition restored from the old snapshot: desc=\"%s\"", in.desc);
	cr_expect_eq(floed_metric0(f, COLD("snapdef", "restore")), 0);

	char keys[4][KEY_LEN + 1];
	bool replaced =
		WAIT_UNTIL(!key_present(f, old_key) && snapshot_keys(f, keys, 4) == 1, 30000);
	size_t n = snapshot_keys(f, keys, 4);
	cr_expect(replaced,
		  "after the reload: old snapshot %.12s %s, %zu snapshot(s) in all (want only a "
		  "new one)",
		  old_key, key_present(f, old_key) ? "still there" : "gone", n);
	if (n == 1)
		cr_expect_str_neq(keys[0], old_key,
				  "the new definition's snapshot has the old key");

	/* ... and the new snapshot serves the new definition. */
	wait_zero(f, "snapdef");
	get_info(f, "snapdef", &in);
	cr_expect_eq(in.status, 200);
	cr_expect_str_eq(in.desc, "restore", "cold start from the new snapshot: desc=\"%s\"",
			 in.desc);
	cr_expect_str_eq(in.model, "other");
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* lazy pages: the restored engine's memory arrives on first touch */

Test(snapshot, lazy_restore_serves_and_its_memory_is_intact)
{
	struct floed *f = start_snap_floed("endpoints:\n" HARNESS_SIM_EP("lazy", SIM_ARGS)
						   TO_ZERO_1S "    snapshot: {lazy_pages: true}\n");
	struct info fresh;
	snapshot_then_zero(f, "lazy", &fresh);
	/* ?verify=1 reads all 32 MiB: every page comes through userfaultfd
	 * from the lazy-pages daemon. */
	struct info back;
	get_info(f, "lazy", &back);
	cr_assert_eq(back.status, 200, "%ld %s", back.status, back.body);
	if (strcmp(back.desc, "restore") != 0)
		floed_print_log(f, 80); /* why the restore fell back to a fresh start */
	cr_expect_str_eq(back.desc, "restore");
	cr_expect(back.has_verified && back.verified, "lazily restored memory: %s", back.body);
	cr_expect_str_eq(back.checksum, fresh.checksum);
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/logs/lazy/lazy-2.log", f->data_dir);
	char *text = harness_read_file(log, NULL);
	cr_expect(text && strstr(text, "(lazy pages)"), "lazy-2.log does not say lazy pages: %s",
		  text ? text : "(none)");
	free(text);
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* the snapshot directory removed under floed: a fresh start, no lost request */

Test(snapshot, snapshot_deleted_under_floed_gives_a_fresh_start)
{
	struct floed *f =
		start_snap_floed("endpoints:\n" HARNESS_SIM_EP("gone", SIM_ARGS) TO_ZERO_1S);
	struct info fresh;
	snapshot_then_zero(f, "gone", &fresh);
	char key[KEY_LEN + 1], dir[PATH_MAX], cmd[PATH_MAX + 16];
	the_key(f, key);
	snprintf(dir, sizeof(dir), "%s/snapshots/%s", f->data_dir, key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	struct info back;
	get_info(f, "gone", &back);
	cr_assert_eq(back.status, 200, "%ld %s", back.status, back.body);
	cr_expect_str_eq(back.desc, "fresh");
	cr_expect(back.verified, "%s", back.body);
	/* and a new snapshot replaces it */
	wait_dumps(f, "gone", 2);
	cr_expect(key_present(f, key), "no new snapshot under the same key");
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* warm_pool_memory caps what pools hold */

Test(snapshot, warm_pool_memory_budget_keeps_the_pool_within_it)
{
	/* 32 MiB of engine memory: a 16 MiB budget fits no pool replica. */
	struct floed *f = start_snap_floed("warm_pool_memory: 16777216\n"
					   "endpoints:\n" HARNESS_SIM_EP("budget", SIM_ARGS)
						   TO_ZERO_1S "    warm_pool: {size: 2}\n");
	struct info fresh;
	snapshot_then_zero(f, "budget", &fresh);
	char *log = NULL;
	bool said = WAIT_UNTIL(
		((free(log), log = floed_read_log(f)) && strstr(log, "warm_pool_memory")), 10000);
	free(log);
	cr_assert(said, "no log line about the warm pool budget");
	cr_expect_eq(floed_metric0(f, "floe_replicas{endpoint=\"budget\",state=\"warm_pool\"}"), 0);
	struct info back;
	get_info(f, "budget", &back);
	cr_expect_str_eq(back.desc, "restore", "with no pool replica a cold start restores");
	FLOED_STOP_OK(f);
}

/* ------------------------------------------------------------------ */
/* damaged metadata found when floed loads the snapshot: quarantined, with why */

static int log_count(struct floed *f, const char *needle)
{
	char *log = floed_read_log(f);
	int n = 0;
	for (const char *p = log; p && (p = strstr(p, needle)); p++)
		n++;
	free(log);
	return n;
}

Test(snapshot, damaged_metadata_at_load_is_quarantined_with_its_reason)
{
	struct floed *f =
		start_snap_floed("endpoints:\n" HARNESS_SIM_EP("meta", SIM_ARGS) TO_ZERO_1S);
	struct info fresh;
	snapshot_then_zero(f, "meta", &fresh);
	char key[KEY_LEN + 1], path[PATH_MAX];
	the_key(f, key);
	snprintf(path, sizeof(path), "%s/snapshots/%s/meta.msgpack", f->data_dir, key);
	FILE *m = fopen(path, "r+");
	cr_assert_not_null(m);
	cr_assert_eq(fputs("garbage", m) >= 0, true);
	fclose(m);
	/* Away to another definition and back: floed loads the snapshot again. */
	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("meta", SIM_ARGS ", \"--model\", \"b\"")
				TO_ZERO_1S);
	cr_assert(WAIT_UNTIL(log_count(f, "configuration reloaded") == 1, 10000));
	floed_reload(f, "endpoints:\n" HARNESS_SIM_EP("meta", SIM_ARGS) TO_ZERO_1S);
	cr_assert(WAIT_UNTIL(log_count(f, "configuration reloaded") == 2, 10000));
	char reason[512] = "";
	cr_assert(WAIT_UNTIL(quarantined(f, key, reason, sizeof(reason)), 10000),
		  "damaged snapshot %s not quarantined", key);
	cr_expect(strstr(reason, "metadata") != NULL, "REASON says why: \"%s\"", reason);
	struct info back;
	get_info(f, "meta", &back);
	cr_assert_eq(back.status, 200, "%ld %s", back.status, back.body);
	cr_expect_str_eq(back.desc, "fresh");
	FLOED_STOP_OK(f);
}
