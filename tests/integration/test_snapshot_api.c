/*
 * The control plane's snapshot routes against the real floed: what CRIU can
 * do here, the list of snapshots (as on disk), deleting one (the next cold
 * start is fresh again and takes a new one), and the refusals (unknown or
 * malformed keys, dot segments, wrong methods).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(snapshot_api, .init = harness_test_init, .fini = harness_test_fini, .timeout = 180);

#define DUMP_OK(ep) "floe_snapshot_operations_total{endpoint=\"" ep "\",op=\"dump\",result=\"ok\"}"
#define RESTORE_KIND(ep) "floe_cold_starts_total{endpoint=\"" ep "\",kind=\"restore\"}"
#define RESTORE_FAILED(ep) \
	"floe_snapshot_operations_total{endpoint=\"" ep "\",op=\"restore\",result=\"failed\"}"
#define READY(ep) "floe_replicas{endpoint=\"" ep "\",state=\"ready\"}"
#define ZEROS64 "0000000000000000000000000000000000000000000000000000000000000000"

/* Skip (with the reason floed gave) where this machine cannot snapshot. */
static void skip_without_criu(struct floed *f)
{
	char *log = floed_read_log(f);
	const char *why = log ? strstr(log, "snapshots unavailable") : NULL;
	if (why) {
		char line[256];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(why, "\n"), why);
		free(log);
		FLOED_STOP_OK(f);
		cr_skip_test("this machine has no usable CRIU (floed: %s)", line);
	}
	free(log);
}

/* method path on the control plane; asserts the status and a JSON body
 * (Content-Type application/json) and returns it parsed (caller decrefs). */
static json_t *api_json(struct floed *f, const char *method, const char *path, long status)
{
	struct http_req req = { .method = method, .url = floed_api_url(f, path) };
	struct http_resp r;
	http_do(&req, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld (want %ld) %s %s", method, path, r.status,
		     status, r.error, http_body(&r));
	char *ct = http_header(&r, "Content-Type");
	cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "%s %s: Content-Type %s", method,
		  path, ct ? ct : "(none)");
	free(ct);
	json_t *v = http_json(&r);
	cr_assert(v, "%s %s: body is not JSON: %s", method, path, http_body(&r));
	http_resp_free(&r);
	return v;
}

/* GET /v2/snapshots[QUERY]: the items array (caller decrefs). Asserts the shape. */
static json_t *list_items(struct floed *f, const char *query)
{
	char path[256];
	snprintf(path, sizeof(path), "/v2/snapshots%s", query ? query : "");
	json_t *o = api_json(f, "GET", path, 200);
	json_t *items = json_object_get(o, "items");
	cr_assert(json_is_array(items), "GET %s: no items array", path);
	json_incref(items);
	json_decref(o);
	return items;
}

/* DELETE /v2/snapshots/KEY: the status; a 404 must be floed's JSON error. */
static long delete_snapshot(struct floed *f, const char *key)
{
	char path[128];
	snprintf(path, sizeof(path), "/v2/snapshots/%s", key);
	struct http_req req = { .method = "DELETE", .url = floed_api_url(f, path) };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (st == 204)
		cr_expect_eq(r.body.len, 0, "204 with a body: %s", http_body(&r));
	else if (st == 404)
		http_assert_error(&r, 404, "not_found");
	http_resp_free(&r);
	return st;
}

/* GET /endpoints/EP/info: asserts 200, returns the cold-start desc ("" when warm). */
static void info_cold_start(struct floed *f, const char *ep, char *desc, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "/endpoints/%s/info", ep);
	struct http_resp r;
	http_get(floed_url(f, path), &r);
	cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.error);
	char *st = http_header(&r, "Server-Timing");
	desc[0] = '\0';
	server_timing_get(st, "cold-start", NULL, desc, n);
	free(st);
	http_resp_free(&r);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *snap_dir(struct floed *f, const char *key)
{
	return xasprintf("%s/snapshots/%s", f->data_dir, key);
}

/* What `du -b --apparent-size` of the plain files in DIR says; -1 if unreadable. */
static long long dir_file_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	long long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
		    S_ISREG(st.st_mode))
			sum += st.st_size;
	}
	closedir(d);
	return sum;
}

static bool is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* "2026-11-28T07:00:00Z" -> Unix time; -1 if not that form. */
static long long parse_utc(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || strlen(s) != 20)
		return -1;
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return (long long)timegm(&tm);
}

static size_t n_inits(struct floed *f)
{
	pid_t p[16];
	return floed_inits(f, p, 16);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The item of endpoint ep in items, or NULL. */
static json_t *item_of(json_t *items, const char *ep)
{
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *e = jstr(it, "endpoint");
		if (e && strcmp(e, ep) == 0)
			return it;
	}
	return NULL;
}

/* The version `criu --version` prints ("Version: 4.2.1"), or "" if it cannot run. */
static void criu_version_of(const char *criu, char *out, size_t n)
{
	out[0] = '\0';
	char *cmd = xasprintf("'%s' --version 2>/dev/null", criu);
	FILE *p = popen(cmd, "r");
	free(cmd);
	if (!p)
		return;
	char line[256];
	while (fgets(line, sizeof(line), p))
		if (sscanf(line, "Version: %63s", out) == 1)
			break;
	pclose(p);
	(void)n;
}

Test(snapshot_api, capabilities_report_what_criu_can_do_here)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("caps", ""));
	json_t *caps = api_json(f, "GET", "/v2/snapshots/capabilities", 200);
	json_t *snapshots = json_object_get(caps, "snapshots");
	cr_assert(json_is_boolean(snapshots), "snapshots is not a boolean");
	if (!json_is_true(snapshots)) {
		/* Then floed says why, here and in its log, and the test has nothing
		 * more to check on this machine. */
		const char *why = jstr(caps, "reason");
		cr_expect(why && why[0], "snapshots false without a reason");
		json_decref(caps);
		skip_without_criu(f);
		cr_assert_fail("capabilities say no snapshots (%s) but floed's log does not",
			       why ? why : "no reason");
	}
	cr_expect(json_is_null(json_object_get(caps, "reason")), "reason is not null");
	const char *path = jstr(caps, "criu_path");
	const char *version = jstr(caps, "criu_version");
	cr_assert(path && path[0] == '/', "criu_path %s", path ? path : "(none)");
	cr_assert(version, "no criu_version");
	/* The version must be that of the binary it names, asked independently. */
	char real[64];
	criu_version_of(path, real, sizeof(real));
	cr_expect_str_eq(version, real, "criu_version %s, but %s --version says %s", version, path,
			 real);
	if (access("/usr/local/sbin/criu", X_OK) == 0 && strcmp(path, "/usr/local/sbin/criu") == 0)
		cr_expect_str_eq(version, "4.2.1", "this machine's CRIU (scripts/install-criu)");
	int major = 0, minor = 0;
	cr_expect(sscanf(version, "%d.%d", &major, &minor) == 2 &&
			  (major > 4 || (major == 4 && minor >= 2)),
		  "criu_version %s is older than 4.2 yet snapshots are on", version);
	/* Kernel 6.18 with userfaultfd: CRIU's lazy-pages check passes here. */
	cr_expect(json_is_true(json_object_get(caps, "lazy_pages")), "lazy_pages is not true");
	json_t *gpu = json_object_get(caps, "gpu_checkpoint");
	cr_expect(json_is_boolean(gpu), "gpu_checkpoint is not a boolean");
	const char *gpu_why = jstr(caps, "gpu_reason");
	if (json_is_false(gpu))
		cr_expect(gpu_why && gpu_why[0], "gpu_checkpoint false without gpu_reason");
	else
		cr_expect(json_is_null(json_object_get(caps, "gpu_reason")));
	json_t *pool = json_object_get(caps, "warm_pool");
	cr_expect(json_is_boolean(pool), "warm_pool is not a boolean");
	/* Agrees with the freezer floed found (the log line at start). */
	if (json_is_boolean(pool)) {
		char *log = floed_read_log(f);
		bool frozen_pools = log && strstr(log, "warm pool cgroup v1 freezer");
		free(log);
		cr_expect_eq(json_is_true(pool), frozen_pools,
			     "warm_pool %s, but floed's log %s a freezer",
			     json_is_true(pool) ? "true" : "false",
			     frozen_pools ? "names" : "names no");
	}
	json_decref(caps);
	FLOED_STOP_OK(f);
}

Test(snapshot_api, list_delete_and_the_next_cold_start_is_fresh)
{
	struct floed *f = floed_start("endpoints:\n"
				      "  - name: snap\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"snap\", \"--init-ms\", \"300\"]\n"
				      "    scaling:\n"
				      "      scale_to_zero_timeout: 1s\n"
				      "  - name: alpha\n"
				      "    engine: sim\n"
				      "    args: [\"--model\", \"alpha\", \"--init-ms\", \"300\"]\n"
				      "    scaling:\n"
				      "      scale_to_zero_timeout: 1s\n");
	skip_without_criu(f);
	json_t *items = list_items(f, NULL);
	cr_expect_eq(json_array_size(items), 0, "snapshots listed before any cold start");
	json_decref(items);

	char desc[64];
	info_cold_start(f, "snap", desc, sizeof(desc));
	cr_expect_str_eq(desc, "fresh");
	info_cold_start(f, "alpha", desc, sizeof(desc));
	cr_expect_str_eq(desc, "fresh");
	cr_assert(WAIT_UNTIL(floed_metric0(f, DUMP_OK("snap")) == 1 &&
				     floed_metric0(f, DUMP_OK("alpha")) == 1,
			     30000),
		  "no snapshots taken: dump ok snap %g, alpha %g",
		  floed_metric0(f, DUMP_OK("snap")), floed_metric0(f, DUMP_OK("alpha")));

	/* Both listed, sorted by endpoint, each as it is on disk. */
	items = list_items(f, NULL);
	cr_assert_eq(json_array_size(items), 2, "%zu items after two dumps",
		     json_array_size(items));
	cr_expect_str_eq(jstr(json_array_get(items, 0), "endpoint"), "alpha");
	cr_expect_str_eq(jstr(json_array_get(items, 1), "endpoint"), "snap");
	json_t *it = item_of(items, "snap");
	cr_assert(it, "no item for endpoint snap");
	char key[65], alpha_key[65];
	cr_assert(is_hex64(jstr(it, "key")), "key %s", jstr(it, "key"));
	snprintf(key, sizeof(key), "%s", jstr(it, "key"));
	snprintf(alpha_key, sizeof(alpha_key), "%s", jstr(item_of(items, "alpha"), "key"));
	cr_expect(is_hex64(alpha_key) && strcmp(alpha_key, key) != 0, "alpha's key %s", alpha_key);
	char *dir = snap_dir(f, key);
	char *images = xasprintf("%s/images", dir);
	cr_assert(is_dir(images), "%s is not there", images);
	json_int_t image_bytes = json_integer_value(json_object_get(it, "image_bytes"));
	cr_expect_gt(image_bytes, 0);
	cr_expect_eq((long long)image_bytes, dir_file_bytes(images),
		     "image_bytes %lld, files in %s: %lld bytes", (long long)image_bytes, images,
		     dir_file_bytes(images));
	json_int_t pages = json_integer_value(json_object_get(it, "pages_bytes"));
	cr_expect(pages > 0 && pages <= image_bytes, "pages_bytes %lld of %lld", (long long)pages,
		  (long long)image_bytes);
	cr_expect_str_eq(jstr(it, "source_replica"), "snap-1");
	long long created = parse_utc(jstr(it, "created_at"));
	long long now = (long long)time(NULL);
	cr_expect(created > 0 && created <= now + 5 && created >= now - 120,
		  "created_at %s is not a UTC time of this run (now %lld)", jstr(it, "created_at"),
		  now);
	json_t *caps = api_json(f, "GET", "/v2/snapshots/capabilities", 200);
	cr_expect_str_eq(jstr(it, "criu_version"), jstr(caps, "criu_version"));
	json_decref(caps);
	struct utsname u;
	uname(&u);
	cr_expect_str_eq(jstr(it, "kernel"), u.release);
	cr_expect(json_is_integer(json_object_get(it, "dump_ms")), "dump_ms");
	cr_expect(json_is_integer(json_object_get(it, "restores")), "restores");
	cr_expect(json_is_integer(json_object_get(it, "restore_failures")), "restore_failures");
	cr_expect(json_object_get(it, "last_restore_ms") != NULL, "no last_restore_ms");

	/* One snapshot by key: the same item. */
	char path[160];
	snprintf(path, sizeof(path), "/v2/snapshots/%s", key);
	json_t *one = api_json(f, "GET", path, 200);
	cr_expect(json_equal(one, it), "GET %s differs from its list item", path);
	json_decref(one);
	json_decref(items);

	/* The endpoint filter. */
	items = list_items(f, "?x=1&endpoint=%73nap"); /* percent-encoded "snap" */
	cr_expect_eq(json_array_size(items), 1);
	cr_expect_str_eq(jstr(json_array_get(items, 0), "key"), key);
	json_decref(items);
	items = list_items(f, "?endpoint=nobody");
	cr_expect_eq(json_array_size(items), 0);
	json_decref(items);

	/* Keys are matched, never resolved: dot segments (sent as is, not
	 * normalised by a client), encoded ones, the store's own directories
	 * and an upper-case key are all 404, and nothing is removed. */
	char *logs = xasprintf("%s/logs", f->data_dir);
	cr_assert(is_dir(logs), "%s missing before the test", logs);
	char upper[65];
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(key[i] >= 'a' && key[i] <= 'f' ? key[i] - 32 : key[i]);
	const char *bad_targets[] = {
		"/v2/snapshots/../logs",
		"/v2/snapshots/../../etc",
		"/v2/snapshots/%2e%2e/logs",
		"/v2/snapshots/%2e%2e%2flogs",
		"/v2/snapshots/.tmp",
		"/v2/snapshots/quarantine",
		"/v2/snapshots/.",
		"/v2/snapshots/",
		NULL, /* KEY/../KEY */
		NULL, /* KEY in upper case */
	};
	char key_dots[200], key_upper[100];
	snprintf(key_dots, sizeof(key_dots), "/v2/snapshots/%s/../%s", key, key);
	snprintf(key_upper, sizeof(key_upper), "/v2/snapshots/%s", upper);
	bad_targets[8] = key_dots;
	bad_targets[9] = key_upper;
	for (size_t i = 0; i < sizeof(bad_targets) / sizeof(*bad_targets); i++) {
		char raw[512];
		int n = snprintf(raw, sizeof(raw),
				 "DELETE %s HTTP/1.1\r\nHost: floe\r\nConnection: close\r\n\r\n",
				 bad_targets[i]);
		struct raw_resp rr;
		raw_exchange(f->api_port, raw, (size_t)n, 5000, &rr);
		cr_expect_eq(rr.status, 404, "DELETE %s: %d", bad_targets[i], rr.status);
		cr_expect(rr.body.data && strstr(rr.body.data, "\"not_found\""),
			  "DELETE %s: body %s", bad_targets[i], rr.body.data ? rr.body.data : "");
		raw_resp_free(&rr);
	}
	cr_expect(is_dir(logs), "DATA/logs removed through a dot segment");
	cr_expect(is_dir("/etc"), "/etc removed (!)");
	char *tmp = xasprintf("%s/snapshots/.tmp", f->data_dir);
	char *quarantine = xasprintf("%s/snapshots/quarantine", f->data_dir);
	cr_expect(is_dir(tmp) && is_dir(quarantine), "the store's own directories were removed");
	cr_expect(is_dir(images), "snapshot removed by a malformed DELETE");
	items = list_items(f, NULL);
	cr_expect_eq(json_array_size(items), 2, "snapshots lost to malformed DELETEs");
	json_decref(items);
	free(tmp);
	free(quarantine);
	free(logs);

	/* Delete snap's snapshot once both endpoints are at zero. */
	cr_assert(WAIT_UNTIL(n_inits(f) == 0 && floed_metric0(f, READY("snap")) == 0, 15000),
		  "no scale to zero (scale_to_zero_timeout 1s): %zu replicas", n_inits(f));
	cr_assert_eq(delete_snapshot(f, key), 204);
	cr_expect(!is_dir(dir), "%s still there after DELETE 204", dir);
	items = list_items(f, NULL);
	cr_expect_eq(json_array_size(items), 1, "%zu items after deleting one of two",
		     json_array_size(items));
	cr_expect(item_of(items, "snap") == NULL, "snap's snapshot still listed");
	cr_expect(item_of(items, "alpha") != NULL, "alpha's snapshot went too");
	json_decref(items);
	json_t *gone = api_json(f, "GET", path, 404);
	cr_expect_str_eq(jstr(json_object_get(gone, "error"), "type"), "not_found");
	json_decref(gone);

	/* snap starts fresh (nothing restored from deleted files); alpha,
	 * untouched, still restores. */
	double restores_before = floed_metric0(f, RESTORE_KIND("snap"));
	info_cold_start(f, "snap", desc, sizeof(desc));
	cr_expect_str_eq(desc, "fresh", "cold start after DELETE was %s", desc);
	cr_expect_eq(floed_metric0(f, RESTORE_KIND("snap")), restores_before);
	/* floed knew: it did not try the deleted files and fail over. */
	cr_expect_eq(floed_metric0(f, RESTORE_FAILED("snap")), 0,
		     "a restore from the deleted snapshot was attempted");
	info_cold_start(f, "alpha", desc, sizeof(desc));
	cr_expect_str_eq(desc, "restore", "alpha's cold start was %s", desc);
	/* The restore is counted in the snapshot's metadata (written off the loop). */
	bool counted = false;
	for (int i = 0; i < 100 && !counted; i++) {
		json_t *l = list_items(f, "?endpoint=alpha");
		json_t *a = json_array_get(l, 0);
		counted = a && json_integer_value(json_object_get(a, "restores")) == 1 &&
			  json_is_integer(json_object_get(a, "last_restore_ms"));
		json_decref(l);
		if (!counted)
			usleep(50000);
	}
	cr_expect(counted, "alpha's listed snapshot does not count its restore");

	/* ... and snap's fresh replica takes a new snapshot, listed again. */
	cr_assert(WAIT_UNTIL(floed_metric0(f, DUMP_OK("snap")) == 2, 30000),
		  "no new snapshot after the DELETE: dump ok %g",
		  floed_metric0(f, DUMP_OK("snap")));
	items = list_items(f, "?endpoint=snap");
	cr_assert_eq(json_array_size(items), 1, "new snapshot not listed");
	it = json_array_get(items, 0);
	/* Same definition, same key; a new snapshot (taken by the new replica). */
	cr_expect_str_eq(jstr(it, "key"), key);
	cr_expect_str_neq(jstr(it, "source_replica"), "snap-1");
	cr_expect_gt(json_integer_value(json_object_get(it, "image_bytes")), 0);
	cr_expect(parse_utc(jstr(it, "created_at")) >= created, "created_at went back: %s",
		  jstr(it, "created_at"));
	cr_expect(is_dir(images), "%s not there after the new dump", images);
	json_decref(items);

	cr_expect_eq(delete_snapshot(f, key), 204);
	cr_expect(!is_dir(dir), "%s still there after the second DELETE", dir);
	cr_expect_eq(delete_snapshot(f, key), 404, "DELETE of a deleted snapshot");
	free(images);
	free(dir);
	FLOED_STOP_OK(f);
}

Test(snapshot_api, wrong_methods_unknown_keys_and_bad_queries)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("m", ""));
	static const struct {
		const char *method, *path, *allow;
	} not_allowed[] = {
		{ "PUT", "/v2/snapshots", "GET, HEAD" },
		{ "POST", "/v2/snapshots", "GET, HEAD" },
		{ "DELETE", "/v2/snapshots", "GET, HEAD" },
		{ "POST", "/v2/snapshots/capabilities", "GET, HEAD" },
		{ "DELETE", "/v2/snapshots/capabilities", "GET, HEAD" },
		{ "PUT", "/v2/snapshots/" ZEROS64, "GET, HEAD, DELETE" },
		{ "PATCH", "/v2/snapshots/" ZEROS64, "GET, HEAD, DELETE" },
	};
	for (size_t i = 0; i < sizeof(not_allowed) / sizeof(*not_allowed); i++) {
		struct http_req req = { .method = not_allowed[i].method,
					.url = floed_api_url(f, not_allowed[i].path) };
		struct http_resp r;
		http_do(&req, &r);
		http_assert_error(&r, 405, "method_not_allowed");
		char *allow = http_header(&r, "Allow");
		cr_expect(allow && strcmp(allow, not_allowed[i].allow) == 0,
			  "%s %s: Allow %s, want %s", not_allowed[i].method, not_allowed[i].path,
			  allow ? allow : "(none)", not_allowed[i].allow);
		free(allow);
		http_resp_free(&r);
	}

	/* Well-formed keys of no snapshot. */
	json_t *e = api_json(f, "GET", "/v2/snapshots/" ZEROS64, 404);
	json_decref(e);
	cr_expect_eq(delete_snapshot(f, ZEROS64), 404);
	cr_expect_eq(delete_snapshot(f, "0123"), 404);
	e = api_json(f, "GET", "/v2/snapshotsx", 404);
	json_decref(e);
	e = api_json(f, "GET", "/v2/snapshots?endpoint=%zz", 400);
	cr_expect_str_eq(jstr(json_object_get(e, "error"), "type"), "bad_request");
	json_decref(e);
	/* An endpoint without snapshots: an empty list, not an error. */
	json_t *items = list_items(f, "?endpoint=m");
	cr_expect_eq(json_array_size(items), 0);
	json_decref(items);

	/* HEAD: the head of the GET (its length), no body. */
	const char head_req[] =
		"HEAD /v2/snapshots HTTP/1.1\r\nHost: floe\r\nConnection: close\r\n\r\n";
	struct raw_resp rr;
	raw_exchange(f->api_port, head_req, sizeof(head_req) - 1, 5000, &rr);
	cr_expect_eq(rr.status, 200);
	const char *end = rr.data.data ? strstr(rr.data.data, "\r\n\r\n") : NULL;
	cr_expect(end && end[4] == '\0', "HEAD response has a body: %s",
		  rr.data.data ? rr.data.data : "");
	cr_expect(rr.data.data && strstr(rr.data.data, "Content-Length: 12\r\n"),
		  "HEAD's Content-Length is not that of {\"items\":[]}: %s",
		  rr.data.data ? rr.data.data : "");
	raw_resp_free(&rr);

	/* Answers from the thread pool keep the connection in step: two lists
	 * and a 404 over one keep-alive connection. */
	CURL *easy = curl_easy_init();
	for (int i = 0; i < 3; i++) {
		struct http_req req = { .url = floed_api_url(f, i == 2 ? "/v2/snapshots/" ZEROS64 :
									 "/v2/snapshots"),
					.easy = easy };
		struct http_resp r;
		http_do(&req, &r);
		cr_expect_eq(r.status, i == 2 ? 404 : 200, "request %d: %ld %s", i, r.status,
			     r.error);
		if (i > 0)
			cr_expect_eq(r.num_connects, 0, "request %d opened a new connection", i);
		http_resp_free(&r);
	}
	curl_easy_cleanup(easy);
	FLOED_STOP_OK(f);
}

Test(snapshot_api, clients_leaving_before_the_answer_do_not_hurt_floed)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("gone", ""));
	/* The answer comes from the thread pool; the client is gone by then
	 * (or not: both orders must be fine). */
	static const char *reqs[] = {
		"GET /v2/snapshots HTTP/1.1\r\nHost: floe\r\n\r\n",
		"GET /v2/snapshots/" ZEROS64 " HTTP/1.1\r\nHost: floe\r\n\r\n",
		"DELETE /v2/snapshots/" ZEROS64 " HTTP/1.1\r\nHost: floe\r\n\r\n",
	};
	for (int i = 0; i < 60; i++) {
		int fd = raw_connect(f->api_port);
		cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
		const char *r = reqs[i % 3];
		raw_send(fd, r, strlen(r));
		close(fd);
	}
	/* A pipelined pair on one connection: both answered, in order. */
	const char two[] = "GET /v2/snapshots/" ZEROS64 " HTTP/1.1\r\nHost: floe\r\n\r\n"
			   "GET /v2/snapshots HTTP/1.1\r\nHost: floe\r\nConnection: close\r\n\r\n";
	struct raw_resp rr;
	raw_exchange(f->api_port, two, sizeof(two) - 1, 5000, &rr);
	cr_expect_eq(rr.status, 404, "first of a pipelined pair: %d", rr.status);
	const char *second = rr.data.data ? strstr(rr.data.data + 1, "HTTP/1.1 200") : NULL;
	cr_expect(second && strstr(second, "{\"items\":[]}"), "second answer: %s",
		  rr.data.data ? rr.data.data : "");
	raw_resp_free(&rr);
	cr_expect_eq(http_status("GET", floed_api_url(f, "/healthz"), NULL), 200);
	json_t *items = list_items(f, NULL);
	json_decref(items);
	cr_expect_eq(floed_wait(f, 0), -1, "floed exited");
	FLOED_STOP_OK(f);
}

/* GET or DELETE path with a bearer token: the status; the body in *body. */
static long as_token(struct floed *f, const char *method, const char *path, const char *token,
		     char **body)
{
	struct http_req req = { .method = method, .url = floed_api_url(f, path), .bearer = token };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (body)
		*body = xstrdup(http_body(&r));
	http_resp_free(&r);
	return st;
}

/*
 * With auth.tokens, a token sees the snapshots of its namespace's
 * endpoints only: bob's list is empty, and he can neither read nor delete
 * alice's snapshot (403); alice can.
 */
Test(snapshot_api, tokens_see_their_namespaces_snapshots)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk, "endpoints:\n"
		     "  - name: snap\n"
		     "    engine: sim\n"
		     "    namespace: alice\n"
		     "    args: [\"--model\", \"snap\", \"--init-ms\", \"300\"]\n");
	skip_without_criu(f);
	char desc[64];
	info_cold_start(f, "snap", desc, sizeof(desc));
	cr_assert(WAIT_UNTIL(floed_metric0(f, DUMP_OK("snap")) == 1, 30000), "no snapshot taken");
	char *body = NULL;
	cr_assert_eq(as_token(f, "GET", "/v2/snapshots", tk.alice, &body), 200);
	json_t *o = json_loads(body, 0, NULL);
	free(body);
	json_t *items = json_object_get(o, "items");
	cr_assert_eq(json_array_size(items), 1);
	char path[128];
	snprintf(path, sizeof(path), "/v2/snapshots/%s", jstr(json_array_get(items, 0), "key"));
	json_decref(o);

	cr_assert_eq(as_token(f, "GET", "/v2/snapshots", tk.bob, &body), 200);
	cr_expect_str_eq(body, "{\"items\":[]}");
	free(body);
	cr_expect_eq(as_token(f, "GET", path, tk.bob, NULL), 403);
	cr_expect_eq(as_token(f, "DELETE", path, tk.bob, NULL), 403);
	cr_expect_eq(as_token(f, "GET", path, tk.alice, NULL), 200);
	cr_expect_eq(as_token(f, "DELETE", path, tk.alice, NULL), 204);
	FLOED_STOP_OK(f);
}
