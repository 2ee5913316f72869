/*
 * The endpoint state store on real directories: what is saved loads back
 * field for field; equal states give equal bytes; history keeps the newest
 * 32; any damage to the file (every bit flip, every truncation, a
 * well-checksummed file with wrong types) sets it aside with a REASON and
 * loads nothing; a failed save (no space, read-only, not a directory)
 * leaves the old file and no temp file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <msgpack.h>

#include "fsutil.h"
#include "sha256.h"
#include "state.h"
#include "xalloc.h"

static char data_dir[] = "/tmp/floe-state-XXXXXX";
static char mnt[sizeof(data_dir) + 8];
static bool mounted;

static void setup(void)
{
	strcpy(data_dir, "/tmp/floe-state-XXXXXX");
	cr_assert_not_null(mkdtemp(data_dir));
	mounted = false;
}

static void teardown(void)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	mounted = false;
	floe_rm_rf(data_dir);
}

TestSuite(state, .init = setup, .fini = teardown);

/* --- helpers -------------------------------------------------------------- */

static char *state_path(const char *dir)
{
	return xasprintf("%s/state/endpoints.msgpack", dir);
}

static char *read_whole(const char *path, size_t *len)
{
	char *data = NULL;
	int rc = floe_read_file(path, 1u << 30, &data, len);
	cr_assert_eq(rc, 0, "read %s: %s", path, strerror(-rc));
	return data;
}

static void write_whole(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Names in dir (not . and ..), sorted, joined by spaces. */
static char *list_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0)
		return xstrdup("");
	char *out = xstrdup("");
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
			char *next = xasprintf("%s%s%s", out, *out ? " " : "", ents[i]->d_name);
			free(out);
			out = next;
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

static size_t count_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0, sl = strlen(suffix);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void put_entry(struct floe_state *st, const char *ns, const char *name, const char *spec,
		      enum floe_state_desired desired, uint64_t created, int n_events)
{
	floe_error err = { 0 };
	struct floe_state_entry *e = floe_state_put(st, ns, name, &err);
	cr_assert_not_null(e, "%s", err.msg);
	cr_assert_eq(floe_state_entry_set_spec(e, spec, strlen(spec), &err), 0, "%s", err.msg);
	e->desired = desired;
	e->created_at_ms = created;
	e->updated_at_ms = created + 1000;
	static const char *states[] = { "pending", "initializing", "running", "scaledToZero" };
	for (int i = 0; i < n_events; i++) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%s/%s event %d", ns, name, i);
		floe_state_record(e, created + (uint64_t)i, states[i % 4], msg);
	}
}

/* Three endpoints in two namespaces, put in an order that is not sorted. */
static void sample(struct floe_state *st)
{
	floe_state_init(st);
	put_entry(st, "bob", "llama", "{\"model\":{\"repository\":\"meta/llama\"}}",
		  FLOE_STATE_SCALED_TO_ZERO, 1700000000000ull, 5);
	put_entry(st, "alice", "zephyr",
		  "{\"name\":\"zephyr\",\"note\":\"caf\xc3\xa9 \xe2\x9c\x93\"}", FLOE_STATE_RUNNING,
		  1700000001000ull, 2);
	put_entry(st, "alice", "gpt2", "", FLOE_STATE_PAUSED, 1700000002000ull, 0);
}

static void assert_entry_eq(const struct floe_state_entry *a, const struct floe_state_entry *b)
{
	cr_assert_str_eq(a->ns, b->ns);
	cr_assert_str_eq(a->name, b->name);
	cr_assert_str_eq(a->spec_json, b->spec_json);
	cr_assert_eq(a->desired, b->desired, "%s/%s", a->ns, a->name);
	cr_assert_eq(a->created_at_ms, b->created_at_ms);
	cr_assert_eq(a->updated_at_ms, b->updated_at_ms);
	cr_assert_eq(a->n_history, b->n_history, "%s/%s", a->ns, a->name);
	for (size_t i = 0; i < a->n_history; i++) {
		cr_assert_eq(a->history[i].t_ms, b->history[i].t_ms);
		cr_assert_str_eq(a->history[i].state, b->history[i].state);
		cr_assert_str_eq(a->history[i].message, b->history[i].message);
	}
}

static void assert_state_eq(struct floe_state *want, struct floe_state *got)
{
	cr_assert_eq(got->n, want->n);
	for (size_t i = 0; i < want->n; i++) {
		struct floe_state_entry *w = want->entries[i];
		struct floe_state_entry *g = floe_state_find(got, w->ns, w->name);
		cr_assert_not_null(g, "%s/%s missing after load", w->ns, w->name);
		assert_entry_eq(w, g);
	}
}

static void save_ok(const char *dir, const struct floe_state *st)
{
	floe_error err = { 0 };
	int rc = floe_state_save(dir, st, &err);
	cr_assert_eq(rc, 0, "save: %d %s", rc, err.msg);
}

static void load_ok(const char *dir, struct floe_state *st)
{
	floe_error err = { 0 };
	bool aside = true;
	int rc = floe_state_load(dir, st, &aside, &err);
	cr_assert_eq(rc, 0, "load: %d %s", rc, err.msg);
	cr_assert_not(aside, "set aside: %s", err.msg);
}

/* Load a file expected to be corrupt: it must be moved aside with a
 * REASON, and nothing loaded. Returns the REASON's text. */
static char *load_expect_set_aside(const char *ctx)
{
	struct floe_state st;
	floe_error err = { 0 };
	bool aside = false;
	int rc = floe_state_load(data_dir, &st, &aside, &err);
	cr_assert_eq(rc, 0, "%s: load returned %d (%s)", ctx, rc, err.msg);
	cr_assert(aside, "%s: not set aside", ctx);
	cr_assert_eq(st.n, 0, "%s: %zu endpoints half-loaded", ctx, st.n);
	cr_assert_neq(err.msg[0], '\0', "%s: nothing to log", ctx);
	char *path = state_path(data_dir);
	cr_assert_not(exists(path), "%s: the corrupt file is still in place", ctx);
	free(path);
	/* err names where it went; that file and its REASON exist */
	const char *moved = strstr(err.msg, "moved to ");
	cr_assert_not_null(moved, "%s: %s", ctx, err.msg);
	char dst[512];
	snprintf(dst, sizeof(dst), "%s", moved + strlen("moved to "));
	*strchr(dst, ',') = '\0';
	cr_assert(exists(dst), "%s: %s missing", ctx, dst);
	char *why_path = xasprintf("%s.REASON", dst);
	size_t len;
	char *why = read_whole(why_path, &len);
	cr_assert_gt(len, 1, "%s: empty REASON", ctx);
	free(why_path);
	floe_state_destroy(&st);
	return why;
}

/* A hand-made state file: msgpack bytes plus a valid SHA-256 trailer. */
static void write_with_trailer(const msgpack_sbuffer *sb)
{
	uint8_t d[FLOE_SHA256_LEN];
	struct floe_sha256 h;
	floe_sha256_init(&h);
	floe_sha256_update(&h, sb->data, sb->size);
	floe_sha256_final(&h, d);
	char *dir = xasprintf("%s/state", data_dir);
	cr_assert_eq(floe_mkdir_p(dir, 0700), 0);
	char *path = state_path(data_dir);
	char *buf = xmalloc(sb->size + sizeof(d));
	memcpy(buf, sb->data, sb->size);
	memcpy(buf + sb->size, d, sizeof(d));
	write_whole(path, buf, sb->size + sizeof(d));
	free(buf);
	free(path);
	free(dir);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/* --- tests ---------------------------------------------------------------- */

Test(state, missing_file_is_an_empty_state)
{
	struct floe_state st;
	load_ok(data_dir, &st);
	cr_assert_eq(st.n, 0);
	char *nowhere = xasprintf("%s/does/not/exist", data_dir);
	load_ok(nowhere, &st);
	cr_assert_eq(st.n, 0);
	cr_assert_not(exists(nowhere), "load must not create anything");
	free(nowhere);
	floe_state_destroy(&st);
}

Test(state, round_trip_keeps_every_field)
{
	struct floe_state st, back;
	sample(&st);
	/* a spec exactly at the limit is accepted */
	char *big = xmalloc(FLOE_STATE_SPEC_MAX + 1);
	memset(big, 'x', FLOE_STATE_SPEC_MAX);
	big[0] = '"';
	big[FLOE_STATE_SPEC_MAX - 1] = '"';
	big[FLOE_STATE_SPEC_MAX] = '\0';
	put_entry(&st, "carol", "big", big, FLOE_STATE_RUNNING, UINT64_MAX - 2000, 1);
	free(big);
	save_ok(data_dir, &st);
	load_ok(data_dir, &back);
	assert_state_eq(&st, &back);
	cr_assert_eq(floe_state_find(&back, "bob", "llama")->desired, FLOE_STATE_SCALED_TO_ZERO);
	cr_assert_str_eq(floe_state_find(&back, "bob", "llama")->history[4].message,
			 "bob/llama event 4");
	cr_assert_null(floe_state_find(&back, "bob", "zephyr"));
	floe_state_destroy(&st);
	floe_state_destroy(&back);
}

Test(state, remove_then_save_drops_the_endpoint)
{
	struct floe_state st, back;
	sample(&st);
	save_ok(data_dir, &st);
	cr_assert(floe_state_remove(&st, "alice", "zephyr"));
	cr_assert_not(floe_state_remove(&st, "alice", "zephyr"));
	cr_assert_not(floe_state_remove(&st, "nobody", "gpt2"));
	save_ok(data_dir, &st);
	load_ok(data_dir, &back);
	cr_assert_eq(back.n, 2);
	cr_assert_null(floe_state_find(&back, "alice", "zephyr"));
	assert_state_eq(&st, &back);
	/* all removed: an empty but valid file */
	floe_state_destroy(&st);
	floe_state_init(&st);
	save_ok(data_dir, &st);
	floe_state_destroy(&back);
	load_ok(data_dir, &back);
	cr_assert_eq(back.n, 0);
	floe_state_destroy(&back);
}

Test(state, put_finds_an_existing_entry)
{
	struct floe_state st;
	floe_state_init(&st);
	struct floe_state_entry *a = floe_state_put(&st, "ns", "one", NULL);
	for (int i = 0; i < 50; i++) { /* entries grow: a must not move */
		char name[16];
		snprintf(name, sizeof(name), "e%d", i);
		cr_assert_not_null(floe_state_put(&st, "ns", name, NULL));
	}
	cr_assert_eq(floe_state_put(&st, "ns", "one", NULL), a);
	cr_assert_eq(floe_state_find(&st, "ns", "one"), a);
	cr_assert_eq(st.n, 51);
	cr_assert_str_eq(a->spec_json, "");
	cr_assert_eq(a->desired, FLOE_STATE_RUNNING);
	floe_state_destroy(&st);
}

Test(state, history_keeps_the_newest_32)
{
	struct floe_state st, back;
	floe_state_init(&st);
	struct floe_state_entry *e = floe_state_put(&st, "ns", "ep", NULL);
	for (int i = 0; i < 40; i++) {
		char msg[32];
		snprintf(msg, sizeof(msg), "change %d", i);
		floe_state_record(e, 1000 + (uint64_t)i, i % 2 ? "running" : "scaledToZero", msg);
	}
	cr_assert_eq(e->n_history, FLOE_STATE_HISTORY_MAX);
	cr_assert_eq(e->history[0].t_ms, 1008, "the 8 oldest are dropped");
	cr_assert_str_eq(e->history[0].message, "change 8");
	cr_assert_str_eq(e->history[31].message, "change 39");
	cr_assert_str_eq(e->history[31].state, "running");
	save_ok(data_dir, &st);
	load_ok(data_dir, &back);
	assert_state_eq(&st, &back);
	floe_state_destroy(&st);
	floe_state_destroy(&back);
}

Test(state, record_truncates_on_a_character_boundary)
{
	struct floe_state st;
	floe_state_init(&st);
	struct floe_state_entry *e = floe_state_put(&st, "ns", "ep", NULL);
	/* 1023 ASCII bytes then a 2-byte character: cutting at 1024 would split it */
	char msg[FLOE_STATE_EVENT_MESSAGE_MAX + 16];
	memset(msg, 'a', FLOE_STATE_EVENT_MESSAGE_MAX - 1);
	strcpy(msg + FLOE_STATE_EVENT_MESSAGE_MAX - 1, "\xc3\xa9tail");
	floe_state_record(e, 1, "failed", msg);
	cr_assert_eq(strlen(e->history[0].message), FLOE_STATE_EVENT_MESSAGE_MAX - 1);
	floe_state_record(e, 2, NULL, NULL);
	cr_assert_str_eq(e->history[1].state, "");
	cr_assert_str_eq(e->history[1].message, "");
	save_ok(data_dir, &st);
	floe_state_destroy(&st);
}

Test(state, equal_states_save_byte_identical_files)
{
	struct floe_state a, b;
	sample(&a);
	/* the same endpoints, put in the opposite order */
	floe_state_init(&b);
	for (size_t i = a.n; i-- > 0;) {
		struct floe_state_entry *src = a.entries[i];
		struct floe_state_entry *e = floe_state_put(&b, src->ns, src->name, NULL);
		floe_state_entry_set_spec(e, src->spec_json, strlen(src->spec_json), NULL);
		e->desired = src->desired;
		e->created_at_ms = src->created_at_ms;
		e->updated_at_ms = src->updated_at_ms;
		for (size_t j = 0; j < src->n_history; j++)
			floe_state_record(e, src->history[j].t_ms, src->history[j].state,
					  src->history[j].message);
	}
	char *other = xasprintf("%s/other", data_dir);
	save_ok(data_dir, &a);
	save_ok(other, &b);
	size_t la, lb;
	char *pa = state_path(data_dir), *pb = state_path(other);
	char *fa = read_whole(pa, &la), *fb = read_whole(pb, &lb);
	cr_assert_eq(la, lb);
	cr_assert(memcmp(fa, fb, la) == 0, "same state, different bytes");
	/* loading and saving again changes nothing */
	struct floe_state back;
	load_ok(data_dir, &back);
	save_ok(other, &back);
	free(fb);
	fb = read_whole(pb, &lb);
	cr_assert_eq(la, lb);
	cr_assert(memcmp(fa, fb, la) == 0, "reloaded state saved different bytes");
	/* and a different state gives different bytes */
	floe_state_record(floe_state_find(&back, "alice", "gpt2"), 5, "running", "");
	save_ok(other, &back);
	free(fb);
	fb = read_whole(pb, &lb);
	cr_assert(la != lb || memcmp(fa, fb, la) != 0);
	free(fa);
	free(fb);
	free(pa);
	free(pb);
	free(other);
	floe_state_destroy(&a);
	floe_state_destroy(&b);
	floe_state_destroy(&back);
}

static char *small_saved_file(size_t *len)
{
	struct floe_state st;
	floe_state_init(&st);
	put_entry(&st, "alice", "zephyr", "{\"a\":1}", FLOE_STATE_PAUSED, 1700000000000ull, 2);
	put_entry(&st, "bob", "x", "{}", FLOE_STATE_RUNNING, 1, 1);
	save_ok(data_dir, &st);
	floe_state_destroy(&st);
	char *path = state_path(data_dir);
	char *data = read_whole(path, len);
	free(path);
	return data;
}

Test(state, every_bit_flip_is_set_aside, .timeout = 600)
{
	size_t len;
	char *orig = small_saved_file(&len);
	char *path = state_path(data_dir);
	char *buf = xmalloc(len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(buf, orig, len);
		buf[bit / 8] ^= (char)(1u << (bit % 8));
		write_whole(path, buf, len);
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "bit %zu of %zu", bit, len * 8);
		free(load_expect_set_aside(ctx));
	}
	char *qdir = xasprintf("%s/state/corrupt", data_dir);
	cr_assert_eq(count_suffix(qdir, ".msgpack"), 8);
	cr_assert_eq(count_suffix(qdir, ".REASON"), 8);
	/* the untouched file still loads */
	write_whole(path, orig, len);
	struct floe_state st;
	load_ok(data_dir, &st);
	cr_assert_eq(st.n, 2);
	floe_state_destroy(&st);
	free(qdir);
	free(buf);
	free(path);
	free(orig);
}

Test(state, every_truncation_is_set_aside, .timeout = 600)
{
	size_t len;
	char *orig = small_saved_file(&len);
	char *path = state_path(data_dir);
	for (size_t cut = 0; cut < len; cut++) {
		write_whole(path, orig, cut);
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "truncated to %zu of %zu", cut, len);
		char *why = load_expect_set_aside(ctx);
		if (cut < FLOE_SHA256_LEN)
			cr_assert_not_null(strstr(why, "shorter"), "%s: %s", ctx, why);
		free(why);
	}
	free(path);
	free(orig);
}

/* Files with a valid trailer but content a save never writes. */
enum bad_kind {
	BAD_TIME_AS_STRING,
	BAD_NAME_TOO_LONG,
	BAD_NAME_WITH_NUL,
	BAD_DESIRED,
	BAD_MISSING_SPEC,
	BAD_HISTORY_33,
	BAD_EVENT_STATE_INT,
	BAD_DUPLICATE_ENDPOINT,
	BAD_DUPLICATE_KEY,
	BAD_ENDPOINTS_NOT_ARRAY,
	BAD_TOP_ARRAY,
	BAD_NO_VERSION,
	BAD_TRAILING_BYTES,
	BAD_COUNT,
};

static const char *const bad_expect[BAD_COUNT] = {
	[BAD_TIME_AS_STRING] = "endpoints[0].created_at_ms",
	[BAD_NAME_TOO_LONG] = "endpoints[0].name",
	[BAD_NAME_WITH_NUL] = "endpoints[0].name",
	[BAD_DESIRED] = "endpoints[0].desired",
	[BAD_MISSING_SPEC] = "no \"spec\"",
	[BAD_HISTORY_33] = "endpoints[0].history",
	[BAD_EVENT_STATE_INT] = "endpoints[0].history[0].state",
	[BAD_DUPLICATE_ENDPOINT] = "appears twice",
	[BAD_DUPLICATE_KEY] = "appears twice",
	[BAD_ENDPOINTS_NOT_ARRAY] = "endpoints",
	[BAD_TOP_ARRAY] = "not a map",
	[BAD_NO_VERSION] = "version",
	[BAD_TRAILING_BYTES] = "msgpack",
};

static void pack_good_entry(msgpack_packer *pk, enum bad_kind kind, const char *name, int extra)
{
	msgpack_pack_map(pk, (kind == BAD_MISSING_SPEC ? 6 : 7) + extra);
	pk_str(pk, "namespace");
	pk_str(pk, "ns");
	pk_str(pk, "name");
	if (kind == BAD_NAME_TOO_LONG) {
		pk_str(pk, "0123456789012345678901234567890123456789012345678901234567890123");
	} else if (kind == BAD_NAME_WITH_NUL) {
		msgpack_pack_str(pk, 3);
		msgpack_pack_str_body(pk, "a\0b", 3);
	} else {
		pk_str(pk, name);
	}
	if (kind != BAD_MISSING_SPEC) {
		pk_str(pk, "spec");
		pk_str(pk, "{}");
	}
	pk_str(pk, "created_at_ms");
	if (kind == BAD_TIME_AS_STRING)
		pk_str(pk, "1700000000000");
	else
		msgpack_pack_uint64(pk, 1700000000000ull);
	pk_str(pk, kind == BAD_DUPLICATE_KEY ? "created_at_ms" : "updated_at_ms");
	msgpack_pack_uint64(pk, 1700000000001ull);
	pk_str(pk, "desired");
	pk_str(pk, kind == BAD_DESIRED ? "sleeping" : "running");
	pk_str(pk, "history");
	int n = kind == BAD_HISTORY_33 ? 33 : 1;
	msgpack_pack_array(pk, (size_t)n);
	for (int i = 0; i < n; i++) {
		msgpack_pack_map(pk, 3);
		pk_str(pk, "t_ms");
		msgpack_pack_uint64(pk, (uint64_t)i);
		pk_str(pk, "state");
		if (kind == BAD_EVENT_STATE_INT)
			msgpack_pack_int(pk, 7);
		else
			pk_str(pk, "running");
		pk_str(pk, "message");
		pk_str(pk, "");
	}
	for (int i = 0; i < extra; i++) { /* fields of a later floed */
		char k[24];
		snprintf(k, sizeof(k), "future%d", i);
		pk_str(pk, k);
		msgpack_pack_array(pk, 2);
		msgpack_pack_nil(pk);
		msgpack_pack_true(pk);
	}
}

static void write_crafted(enum bad_kind kind, uint64_t version, int extra)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (kind == BAD_TOP_ARRAY) {
		msgpack_pack_array(&pk, 0);
	} else {
		msgpack_pack_map(&pk, (kind == BAD_NO_VERSION ? 1 : 2) + (extra ? 1 : 0));
		if (kind != BAD_NO_VERSION) {
			pk_str(&pk, "version");
			msgpack_pack_uint64(&pk, version);
		}
		pk_str(&pk, "endpoints");
		if (kind == BAD_ENDPOINTS_NOT_ARRAY) {
			msgpack_pack_map(&pk, 0);
		} else {
			msgpack_pack_array(&pk, kind == BAD_DUPLICATE_ENDPOINT ? 2 : 1);
			pack_good_entry(&pk, kind, "ep", extra);
			if (kind == BAD_DUPLICATE_ENDPOINT)
				pack_good_entry(&pk, kind, "ep", extra);
		}
		if (extra) {
			pk_str(&pk, "future");
			msgpack_pack_uint64(&pk, 9);
		}
	}
	if (kind == BAD_TRAILING_BYTES)
		msgpack_pack_nil(&pk);
	write_with_trailer(&sb);
	msgpack_sbuffer_destroy(&sb);
}

Test(state, wrong_types_under_a_valid_trailer_are_set_aside)
{
	for (int kind = 0; kind < BAD_COUNT; kind++) {
		write_crafted((enum bad_kind)kind, 1, 0);
		char ctx[32];
		snprintf(ctx, sizeof(ctx), "case %d", kind);
		char *why = load_expect_set_aside(ctx);
		cr_assert_not_null(strstr(why, bad_expect[kind]), "%s: REASON '%s' lacks '%s'", ctx,
				   why, bad_expect[kind]);
		free(why);
	}
}

Test(state, crafted_control_file_loads)
{
	/* the same generator without a defect: proves the cases above fail for
	 * their defect, not for the generator */
	write_crafted(BAD_COUNT, 1, 0);
	struct floe_state st;
	load_ok(data_dir, &st);
	cr_assert_eq(st.n, 1);
	floe_state_destroy(&st);
}

Test(state, unknown_keys_of_a_later_floed_are_skipped)
{
	write_crafted(BAD_COUNT, 1, 2);
	struct floe_state st;
	load_ok(data_dir, &st);
	cr_assert_eq(st.n, 1);
	struct floe_state_entry *e = floe_state_find(&st, "ns", "ep");
	cr_assert_not_null(e);
	cr_assert_eq(e->created_at_ms, 1700000000000ull);
	cr_assert_eq(e->n_history, 1);
	floe_state_destroy(&st);
}

Test(state, a_later_version_is_refused_and_left_alone)
{
	write_crafted(BAD_COUNT, 2, 0);
	char *path = state_path(data_dir);
	size_t before_len;
	char *before = read_whole(path, &before_len);
	struct floe_state st;
	floe_error err = { 0 };
	bool aside = true;
	cr_assert_eq(floe_state_load(data_dir, &st, &aside, &err), -ENOTSUP);
	cr_assert_not(aside);
	cr_assert_eq(st.n, 0);
	cr_assert_not_null(strstr(err.msg, "version 2"), "%s", err.msg);
	size_t after_len;
	char *after = read_whole(path, &after_len);
	cr_assert_eq(before_len, after_len);
	cr_assert(memcmp(before, after, before_len) == 0);
	char *qdir = xasprintf("%s/state/corrupt", data_dir);
	cr_assert_not(exists(qdir));
	free(qdir);
	free(before);
	free(after);
	free(path);
}

Test(state, no_temp_file_is_left_behind)
{
	struct floe_state st;
	sample(&st);
	for (int i = 0; i < 5; i++) {
		floe_state_record(st.entries[0], (uint64_t)i, "running", "again");
		save_ok(data_dir, &st);
	}
	char *dir = xasprintf("%s/state", data_dir);
	char *names = list_dir(dir);
	cr_assert_str_eq(names, "endpoints.msgpack");
	free(names);
	/* a save a crash cut short left its temp file: the next load removes it */
	char *stale = xasprintf("%s/endpoints.msgpack.tmp.Ab12Cd", dir);
	write_whole(stale, "half", 4);
	struct floe_state back;
	load_ok(data_dir, &back);
	assert_state_eq(&st, &back);
	cr_assert_not(exists(stale));
	free(stale);
	free(dir);
	floe_state_destroy(&st);
	floe_state_destroy(&back);
}

Test(state, limits_are_refused_with_einval)
{
	struct floe_state st;
	floe_state_init(&st);
	floe_error err = { 0 };
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';
	cr_assert_not_null(floe_state_put(&st, n63, n63, &err), "%s", err.msg);
	cr_assert_null(floe_state_put(&st, "ns", n64, &err));
	cr_assert_eq(err.code, -EINVAL);
	cr_assert_null(floe_state_put(&st, n64, "x", &err));
	cr_assert_null(floe_state_put(&st, "", "x", &err));
	cr_assert_null(floe_state_put(&st, "ns", "", &err));
	cr_assert_eq(st.n, 1);

	struct floe_state_entry *e = st.entries[0];
	cr_assert_eq(floe_state_entry_set_spec(e, "{\"a\":\"\0\"}", 9, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
	char *big = xmalloc(FLOE_STATE_SPEC_MAX + 1);
	memset(big, ' ', FLOE_STATE_SPEC_MAX + 1);
	cr_assert_eq(floe_state_entry_set_spec(e, big, FLOE_STATE_SPEC_MAX + 1, &err), -EINVAL);
	cr_assert_str_eq(e->spec_json, "", "a refused spec leaves the old one");
	free(big);
	save_ok(data_dir, &st);

	/* fields changed behind the API's back are checked by save, and the
	 * old file stays */
	char *path = state_path(data_dir);
	size_t l1, l2;
	char *f1 = read_whole(path, &l1);
	free(e->name);
	e->name = xstrdup(n64);
	err.code = 0;
	cr_assert_eq(floe_state_save(data_dir, &st, &err), -EINVAL);
	cr_assert_neq(err.msg[0], '\0');
	free(e->name);
	e->name = xstrdup(n63);
	e->desired = (enum floe_state_desired)7;
	cr_assert_eq(floe_state_save(data_dir, &st, &err), -EINVAL);
	e->desired = FLOE_STATE_RUNNING;
	char *f2 = read_whole(path, &l2);
	cr_assert_eq(l1, l2);
	cr_assert(memcmp(f1, f2, l1) == 0);
	free(f1);
	free(f2);
	free(path);
	floe_state_destroy(&st);
}

Test(state, desired_names_round_trip)
{
	enum floe_state_desired d;
	cr_assert_eq(floe_state_desired_parse("scaledToZero", &d), 0);
	cr_assert_eq(d, FLOE_STATE_SCALED_TO_ZERO);
	cr_assert_str_eq(floe_state_desired_name(FLOE_STATE_PAUSED), "paused");
	cr_assert_str_eq(floe_state_desired_name(FLOE_STATE_RUNNING), "running");
	cr_assert_eq(floe_state_desired_parse("Running", &d), -EINVAL);
}

Test(state, save_where_state_is_a_file_fails_cleanly)
{
	char *blocker = xasprintf("%s/state", data_dir);
	write_whole(blocker, "not a dir", 9);
	struct floe_state st;
	sample(&st);
	floe_error err = { 0 };
	int rc = floe_state_save(data_dir, &st, &err);
	cr_assert_lt(rc, 0);
	cr_assert_eq(err.code, rc);
	cr_assert_not_null(strstr(err.msg, data_dir), "%s", err.msg);
	/* load: an I/O error, not an empty state and not a corrupt file */
	struct floe_state back;
	bool aside = true;
	cr_assert_eq(floe_state_load(data_dir, &back, &aside, &err), -ENOTDIR, "%s", err.msg);
	cr_assert_not(aside);
	cr_assert_eq(back.n, 0);
	size_t len;
	char *still = read_whole(blocker, &len);
	cr_assert_eq(len, 9);
	free(still);
	free(blocker);
	floe_state_destroy(&st);
}

Test(state, a_directory_in_place_of_the_file_is_an_io_error)
{
	char *p = state_path(data_dir);
	cr_assert_eq(floe_mkdir_p(p, 0700), 0);
	struct floe_state st;
	floe_error err = { 0 };
	bool aside = true;
	cr_assert_eq(floe_state_load(data_dir, &st, &aside, &err), -EISDIR, "%s", err.msg);
	cr_assert_not(aside);
	cr_assert(exists(p));
	free(p);
}

static void mount_small_tmpfs(void)
{
	snprintf(mnt, sizeof(mnt), "%s/mnt", data_dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("floe-test", mnt, "tmpfs", 0, "size=64k") < 0)
		cr_skip_test("mount tmpfs: %s (needs root)", strerror(errno));
	mounted = true;
}

Test(state, a_full_disk_keeps_the_old_file)
{
	mount_small_tmpfs();
	struct floe_state st, back;
	sample(&st);
	save_ok(mnt, &st);
	/* 200 KiB of spec cannot fit in 64 KiB */
	struct floe_state_entry *e = floe_state_put(&st, "bob", "huge", NULL);
	char *big = xmalloc(200 * 1024);
	memset(big, 'z', 200 * 1024);
	cr_assert_eq(floe_state_entry_set_spec(e, big, 200 * 1024, NULL), 0);
	free(big);
	floe_error err = { 0 };
	int rc = floe_state_save(mnt, &st, &err);
	cr_assert_eq(rc, -ENOSPC, "%d %s", rc, err.msg);
	cr_assert_not_null(strstr(err.msg, "No space"), "%s", err.msg);
	char *dir = xasprintf("%s/state", mnt);
	char *names = list_dir(dir);
	cr_assert_str_eq(names, "endpoints.msgpack", "the temp file must go");
	free(names);
	free(dir);
	load_ok(mnt, &back);
	cr_assert_eq(back.n, 3);
	cr_assert_null(floe_state_find(&back, "bob", "huge"));
	floe_state_remove(&st, "bob", "huge");
	assert_state_eq(&st, &back);
	floe_state_destroy(&st);
	floe_state_destroy(&back);
}

Test(state, a_read_only_directory_keeps_the_old_file)
{
	mount_small_tmpfs();
	struct floe_state st, back;
	sample(&st);
	save_ok(mnt, &st);
	cr_assert_eq(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0, "%s",
		     strerror(errno));
	floe_state_record(st.entries[0], 99, "failed", "changed");
	floe_error err = { 0 };
	int rc = floe_state_save(mnt, &st, &err);
	cr_assert_eq(rc, -EROFS, "%d %s", rc, err.msg);
	cr_assert_not_null(strstr(err.msg, "Read-only"), "%s", err.msg);
	load_ok(mnt, &back);
	cr_assert_eq(back.n, 3);
	struct floe_state_entry *e = floe_state_find(&back, st.entries[0]->ns, st.entries[0]->name);
	cr_assert_eq(e->n_history, st.entries[0]->n_history - 1, "the failed save's change leaked");
	floe_state_destroy(&st);
	floe_state_destroy(&back);
}

Test(state, corrupt_dir_keeps_the_newest_8)
{
	char *dir = xasprintf("%s/state", data_dir);
	cr_assert_eq(floe_mkdir_p(dir, 0700), 0);
	char *path = state_path(data_dir);
	char *qdir = xasprintf("%s/corrupt", dir);
	for (int i = 0; i < 11; i++) {
		char junk[32];
		int n = snprintf(junk, sizeof(junk), "garbage number %02d", i);
		write_whole(path, junk, (size_t)n);
		free(load_expect_set_aside("junk"));
	}
	cr_assert_eq(count_suffix(qdir, ".msgpack"), 8);
	cr_assert_eq(count_suffix(qdir, ".REASON"), 8);
	/* the survivors are files 3..10, each with its REASON */
	bool seen[11] = { false };
	DIR *d = opendir(qdir);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 8 || strcmp(de->d_name + l - 8, ".msgpack") != 0)
			continue;
		char *p = xasprintf("%s/%s", qdir, de->d_name);
		size_t len;
		char *content = read_whole(p, &len);
		int which = -1;
		cr_assert_eq(sscanf(content, "garbage number %d", &which), 1, "%s", content);
		cr_assert(which >= 3 && which <= 10, "kept file %d, an old one", which);
		seen[which] = true;
		char *why = xasprintf("%s.REASON", p);
		cr_assert(exists(why), "%s", why);
		free(why);
		free(content);
		free(p);
	}
	closedir(d);
	for (int i = 3; i <= 10; i++)
		cr_assert(seen[i], "file %d was dropped", i);
	free(qdir);
	free(path);
	free(dir);
}
