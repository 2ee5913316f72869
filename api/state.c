/*
 * The persistent endpoint state (state.h). Same habits as the snapshot
 * store's metadata (snapshotter/store.c): a msgpack map with string keys,
 * followed by the SHA-256 of the map, so a flipped bit anywhere is caught
 * before any field is believed; a file that does not check out is moved
 * aside whole, never half-loaded.
 */
#define LOG_TAG "state"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "msgpack-util.h"
#include "sha256.h"
#include "state.h"
#include "xalloc.h"

#define STATE_VERSION 1
#define FILE_NAME "endpoints.msgpack"
/* mkostemp's template: a dot file, so nothing lists it as state */
#define TEMP_PREFIX FILE_NAME ".tmp." /* what floe_write_atomic names its temp files */
#define CORRUPT_KEEP 8

/* --- desired state -------------------------------------------------------- */

static const char *const desired_names[] = {
	[FLOE_STATE_RUNNING] = "running",
	[FLOE_STATE_PAUSED] = "paused",
	[FLOE_STATE_SCALED_TO_ZERO] = "scaledToZero",
};
#define N_DESIRED (sizeof(desired_names) / sizeof(desired_names[0]))

const char *floe_state_desired_name(enum floe_state_desired d)
{
	return (unsigned)d < N_DESIRED ? desired_names[d] : "unknown";
}

int floe_state_desired_parse(const char *s, enum floe_state_desired *out)
{
	for (size_t i = 0; i < N_DESIRED; i++)
		if (strcmp(s, desired_names[i]) == 0) {
			*out = (enum floe_state_desired)i;
			return 0;
		}
	return -EINVAL;
}

/* --- in memory ------------------------------------------------------------ */

static void entry_free(struct floe_state_entry *e)
{
	if (!e)
		return;
	free(e->ns);
	free(e->name);
	free(e->spec_json);
	for (size_t i = 0; i < e->n_history; i++) {
		free(e->history[i].state);
		free(e->history[i].message);
	}
	free(e);
}

void floe_state_init(struct floe_state *st)
{
	st->entries = NULL;
	st->n = st->cap = 0;
}

void floe_state_destroy(struct floe_state *st)
{
	for (size_t i = 0; i < st->n; i++)
		entry_free(st->entries[i]);
	free(st->entries);
	floe_state_init(st);
}

static void state_append(struct floe_state *st, struct floe_state_entry *e)
{
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 8;
		st->entries = xrealloc(st->entries, st->cap * sizeof(*st->entries));
	}
	st->entries[st->n++] = e;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n > 0 && n <= FLOE_STATE_NAME_MAX;
}

struct floe_state_entry *floe_state_find(struct floe_state *st, const char *ns, const char *name)
{
	/* Linear: a machine serves tens of endpoints, and lookups are per API
	 * call, not per request. */
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->entries[i]->ns, ns) == 0 && strcmp(st->entries[i]->name, name) == 0)
			return st->entries[i];
	return NULL;
}

struct floe_state_entry *floe_state_put(struct floe_state *st, const char *ns, const char *name,
					floe_error *err)
{
	if (!name_ok(ns) || !name_ok(name)) {
		floe_error_set(err, -EINVAL,
			       "namespace and name must be 1 to %d bytes (got %zu and %zu)",
			       FLOE_STATE_NAME_MAX, ns ? strlen(ns) : 0, name ? strlen(name) : 0);
		return NULL;
	}
	struct floe_state_entry *e = floe_state_find(st, ns, name);
	if (e)
		return e;
	e = xcalloc(1, sizeof(*e));
	e->ns = xstrdup(ns);
	e->name = xstrdup(name);
	e->spec_json = xstrdup("");
	e->desired = FLOE_STATE_RUNNING;
	state_append(st, e);
	return e;
}

bool floe_state_remove(struct floe_state *st, const char *ns, const char *name)
{
	for (size_t i = 0; i < st->n; i++) {
		struct floe_state_entry *e = st->entries[i];
		if (strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0) {
			memmove(&st->entries[i], &st->entries[i + 1],
				(st->n - i - 1) * sizeof(*st->entries));
			st->n--;
			entry_free(e);
			return true;
		}
	}
	return false;
}

int floe_state_entry_set_spec(struct floe_state_entry *e, const char *json, size_t len,
			      floe_error *err)
{
	if (len > FLOE_STATE_SPEC_MAX)
		return floe_error_set(err, -EINVAL, "spec of %s/%s: %zu bytes, more than %u", e->ns,
				      e->name, len, FLOE_STATE_SPEC_MAX);
	if (memchr(json, '\0', len))
		return floe_error_set(err, -EINVAL, "spec of %s/%s: contains a NUL byte", e->ns,
				      e->name);
	free(e->spec_json);
	e->spec_json = xstrndup(json, len);
	return 0;
}

/* Copy at most max bytes of s, never cutting a UTF-8 sequence in two (a
 * JSON encoder downstream would otherwise emit an invalid string). */
static char *dup_truncated(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return xstrndup(s, n);
}

void floe_state_record(struct floe_state_entry *e, uint64_t t_ms, const char *state,
		       const char *message)
{
	if (e->n_history == FLOE_STATE_HISTORY_MAX) {
		free(e->history[0].state);
		free(e->history[0].message);
		memmove(&e->history[0], &e->history[1],
			(FLOE_STATE_HISTORY_MAX - 1) * sizeof(e->history[0]));
		e->n_history--;
	}
	struct floe_state_event *ev = &e->history[e->n_history++];
	ev->t_ms = t_ms;
	ev->state = dup_truncated(state ? state : "", FLOE_STATE_EVENT_STATE_MAX);
	ev->message = dup_truncated(message ? message : "", FLOE_STATE_EVENT_MESSAGE_MAX);
}

/* --- save ----------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	const struct floe_state_entry *x = *(const struct floe_state_entry *const *)a;
	const struct floe_state_entry *y = *(const struct floe_state_entry *const *)b;
	int c = strcmp(x->ns, y->ns);
	return c ? c : strcmp(x->name, y->name);
}

/* Everything a save writes must load back: the same limits as the parser. */
static int entry_check(const struct floe_state_entry *e, floe_error *err)
{
	if (!name_ok(e->ns) || !name_ok(e->name))
		return floe_error_set(err, -EINVAL,
				      "endpoint %s/%s: namespace and name must be 1 to %d bytes",
				      e->ns ? e->ns : "(null)", e->name ? e->name : "(null)",
				      FLOE_STATE_NAME_MAX);
	if (!e->spec_json || strlen(e->spec_json) > FLOE_STATE_SPEC_MAX)
		return floe_error_set(err, -EINVAL, "endpoint %s/%s: spec missing or over %u bytes",
				      e->ns, e->name, FLOE_STATE_SPEC_MAX);
	if ((unsigned)e->desired >= N_DESIRED)
		return floe_error_set(err, -EINVAL, "endpoint %s/%s: desired state %d unknown",
				      e->ns, e->name, (int)e->desired);
	if (e->n_history > FLOE_STATE_HISTORY_MAX)
		return floe_error_set(err, -EINVAL, "endpoint %s/%s: %zu history events, max %d",
				      e->ns, e->name, e->n_history, FLOE_STATE_HISTORY_MAX);
	for (size_t i = 0; i < e->n_history; i++) {
		const struct floe_state_event *ev = &e->history[i];
		if (!ev->state || strlen(ev->state) > FLOE_STATE_EVENT_STATE_MAX || !ev->message ||
		    strlen(ev->message) > FLOE_STATE_EVENT_MESSAGE_MAX)
			return floe_error_set(err, -EINVAL,
					      "endpoint %s/%s: history event %zu: state or message "
					      "missing or too long",
					      e->ns, e->name, i);
	}
	return 0;
}

/* Keys in a fixed order and entries sorted: equal states, equal bytes. */
static void pack_entry(msgpack_packer *pk, const struct floe_state_entry *e)
{
	msgpack_pack_map(pk, 7);
	floe_mp_pack_kv_str(pk, "namespace", e->ns);
	floe_mp_pack_kv_str(pk, "name", e->name);
	floe_mp_pack_kv_str(pk, "spec", e->spec_json);
	floe_mp_pack_kv_u64(pk, "created_at_ms", e->created_at_ms);
	floe_mp_pack_kv_u64(pk, "updated_at_ms", e->updated_at_ms);
	floe_mp_pack_kv_str(pk, "desired", desired_names[e->desired]);
	floe_mp_pack_str(pk, "history");
	msgpack_pack_array(pk, e->n_history);
	for (size_t i = 0; i < e->n_history; i++) {
		msgpack_pack_map(pk, 3);
		floe_mp_pack_kv_u64(pk, "t_ms", e->history[i].t_ms);
		floe_mp_pack_kv_str(pk, "state", e->history[i].state);
		floe_mp_pack_kv_str(pk, "message", e->history[i].message);
	}
}

int floe_state_encode(const struct floe_state *st, struct floe_buf *out, floe_error *err)
{
	struct floe_state_entry **sorted = xcalloc(st->n + 1, sizeof(*sorted));
	if (st->n)
		memcpy(sorted, st->entries, st->n * sizeof(*sorted));
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = 0;
	for (size_t i = 0; i < st->n && rc == 0; i++)
		rc = entry_check(sorted[i], err);
	if (rc < 0)
		goto out;
	qsort(sorted, st->n, sizeof(*sorted), entry_cmp);
	for (size_t i = 1; i < st->n; i++)
		if (entry_cmp(&sorted[i - 1], &sorted[i]) == 0) {
			/* the loader would refuse the file */
			rc = floe_error_set(err, -EINVAL, "endpoint %s/%s appears twice",
					    sorted[i]->ns, sorted[i]->name);
			goto out;
		}

	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	floe_mp_pack_kv_u64(&pk, "version", STATE_VERSION);
	floe_mp_pack_str(&pk, "endpoints");
	msgpack_pack_array(&pk, st->n);
	for (size_t i = 0; i < st->n; i++)
		pack_entry(&pk, sorted[i]);
	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, sb.data, sb.size);
	floe_sha256_final(&h, digest);
	msgpack_sbuffer_write(&sb, (const char *)digest, sizeof(digest));
	if (sb.size > FLOE_STATE_FILE_MAX) {
		rc = floe_error_set(err, -EFBIG, "%zu bytes of endpoint state, more than %u",
				    sb.size, FLOE_STATE_FILE_MAX);
		goto out;
	}
	floe_buf_append(out, sb.data, sb.size);
out:
	msgpack_sbuffer_destroy(&sb);
	free(sorted);
	return rc;
}

int floe_state_write(const char *data_dir, const void *data, size_t len, floe_error *err)
{
	char *dir = xasprintf("%s/state", data_dir);
	char *path = xasprintf("%s/" FILE_NAME, dir);
	int rc = floe_mkdir_p(dir, 0700);
	if (rc < 0) {
		floe_error_set(err, rc, "create %s: %s", dir, strerror(-rc));
	} else {
		/* A temp name of its own per write (two writers never share
		 * one), fsync, rename, fsync of the directory. */
		rc = floe_write_atomic(path, data, len, 0600);
		if (rc < 0)
			floe_error_set(err, rc, "write %s: %s", path, strerror(-rc));
	}
	free(dir);
	free(path);
	return rc;
}

int floe_state_save(const char *data_dir, const struct floe_state *st, floe_error *err)
{
	struct floe_buf b = FLOE_BUF_INIT;
	int rc = floe_state_encode(st, &b, err);
	if (rc == 0)
		rc = floe_state_write(data_dir, b.data, b.len, err);
	floe_buf_destroy(&b);
	return rc;
}

/* --- load: parse ---------------------------------------------------------- */

/* Why a file is corrupt, with the path of the field ("endpoints[2].name"). */
struct why {
	char msg[512];
};

static bool fail(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct why *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* A string of min..max bytes without NUL, copied to *out. */
static bool get_str(const msgpack_object *o, size_t min, size_t max, char **out, struct why *w,
		    const char *field)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return fail(w, "%s: not a string", field);
	if (o->via.str.size < min || o->via.str.size > max)
		return fail(w, "%s: %" PRIu32 " bytes, allowed %zu to %zu", field, o->via.str.size,
			    min, max);
	if (memchr(o->via.str.ptr, '\0', o->via.str.size))
		return fail(w, "%s: contains a NUL byte", field);
	free(*out); /* a repeated key is refused before this; be safe anyway */
	*out = xstrndup(o->via.str.ptr, o->via.str.size);
	return true;
}

static bool get_u64(const msgpack_object *o, uint64_t *out, struct why *w, const char *field)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail(w, "%s: not an unsigned integer", field);
	*out = o->via.u64;
	return true;
}

/* Each key of a record at most once, the required ones all present: bit i
 * of *seen is keys[i]. Returns the index of k in keys, -1 when unknown (the
 * caller skips it: a newer floed may add fields), -2 on a repeat. */
static int key_index(const msgpack_object *k, const char *const *keys, size_t n, unsigned *seen)
{
	for (size_t i = 0; i < n; i++)
		if (floe_mp_key_is(k, keys[i])) {
			if (*seen & (1u << i))
				return -2;
			*seen |= 1u << i;
			return (int)i;
		}
	return -1;
}

static bool missing_key(const char *const *keys, size_t n, unsigned seen, struct why *w,
			const char *where)
{
	for (size_t i = 0; i < n; i++)
		if (!(seen & (1u << i)))
			return fail(w, "%s: no \"%s\"", where, keys[i]);
	return false;
}

static const char *const event_keys[] = { "t_ms", "state", "message" };
#define N_EVENT_KEYS (sizeof(event_keys) / sizeof(event_keys[0]))

static bool parse_event(const msgpack_object *o, struct floe_state_event *ev, struct why *w,
			const char *where)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(w, "%s: not a map", where);
	unsigned seen = 0;
	char field[128];
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
		int idx = key_index(k, event_keys, N_EVENT_KEYS, &seen);
		if (idx == -2)
			return fail(w, "%s: a key appears twice", where);
		if (idx >= 0)
			snprintf(field, sizeof(field), "%s.%s", where, event_keys[idx]);
		bool ok = true;
		switch (idx) {
		case 0: ok = get_u64(v, &ev->t_ms, w, field); break;
		case 1: ok = get_str(v, 0, FLOE_STATE_EVENT_STATE_MAX, &ev->state, w, field); break;
		case 2:
			ok = get_str(v, 0, FLOE_STATE_EVENT_MESSAGE_MAX, &ev->message, w, field);
			break;
		default: break;
		}
		if (!ok)
			return false;
	}
	if (seen != (1u << N_EVENT_KEYS) - 1)
		return missing_key(event_keys, N_EVENT_KEYS, seen, w, where);
	return true;
}

static const char *const entry_keys[] = { "namespace",     "name",    "spec",   "created_at_ms",
					  "updated_at_ms", "desired", "history" };
#define N_ENTRY_KEYS (sizeof(entry_keys) / sizeof(entry_keys[0]))

/* Fills e (zeroed by the caller); on failure e holds what was parsed so far,
 * for entry_free. */
static bool parse_entry(const msgpack_object *o, struct floe_state_entry *e, struct why *w,
			const char *where)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(w, "%s: not a map", where);
	unsigned seen = 0;
	char field[128];
	char *desired = NULL;
	bool ok = true;
	for (uint32_t i = 0; i < o->via.map.size && ok; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
		int idx = key_index(k, entry_keys, N_ENTRY_KEYS, &seen);
		if (idx == -2) {
			ok = fail(w, "%s: a key appears twice", where);
			break;
		}
		if (idx >= 0)
			snprintf(field, sizeof(field), "%s.%s", where, entry_keys[idx]);
		switch (idx) {
		case 0: ok = get_str(v, 1, FLOE_STATE_NAME_MAX, &e->ns, w, field); break;
		case 1: ok = get_str(v, 1, FLOE_STATE_NAME_MAX, &e->name, w, field); break;
		case 2: ok = get_str(v, 0, FLOE_STATE_SPEC_MAX, &e->spec_json, w, field); break;
		case 3: ok = get_u64(v, &e->created_at_ms, w, field); break;
		case 4: ok = get_u64(v, &e->updated_at_ms, w, field); break;
		case 5:
			ok = get_str(v, 1, 32, &desired, w, field) &&
			     (floe_state_desired_parse(desired, &e->desired) == 0 ||
			      fail(w, "%s: unknown state \"%s\"", field, desired));
			break;
		case 6:
			if (v->type != MSGPACK_OBJECT_ARRAY) {
				ok = fail(w, "%s: not an array", field);
				break;
			}
			if (v->via.array.size > FLOE_STATE_HISTORY_MAX) {
				ok = fail(w, "%s: %" PRIu32 " events, max %d", field,
					  v->via.array.size, FLOE_STATE_HISTORY_MAX);
				break;
			}
			for (uint32_t j = 0; j < v->via.array.size && ok; j++) {
				char ev_where[160];
				snprintf(ev_where, sizeof(ev_where), "%s[%" PRIu32 "]", field, j);
				/* counted first, so entry_free releases a half-parsed one */
				e->n_history++;
				ok = parse_event(&v->via.array.ptr[j], &e->history[j], w, ev_where);
			}
			break;
		default: break;
		}
	}
	free(desired);
	if (!ok)
		return false;
	if (seen != (1u << N_ENTRY_KEYS) - 1)
		return missing_key(entry_keys, N_ENTRY_KEYS, seen, w, where);
	return true;
}

/* Parse a whole file. Returns 0 (st filled), -EINVAL (corrupt: w says why)
 * or -ENOTSUP (a later version: w says which). */
static int parse_file(const char *data, size_t len, struct floe_state *st, struct why *w)
{
	if (len < FLOE_SHA256_LEN) {
		fail(w, "%zu bytes, shorter than its SHA-256 trailer", len);
		return -EINVAL;
	}
	len -= FLOE_SHA256_LEN;
	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, data, len);
	floe_sha256_final(&h, digest);
	if (memcmp(digest, data + len, FLOE_SHA256_LEN) != 0) {
		fail(w, "SHA-256 trailer does not match the content");
		return -EINVAL;
	}

	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	int rc = -EINVAL;
	msgpack_unpack_return ur = msgpack_unpack_next(&u, data, len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		fail(w, "not one msgpack object (unpack returned %d, %zu of %zu bytes used)",
		     (int)ur, off, len);
		goto out;
	}
	if (u.data.type != MSGPACK_OBJECT_MAP) {
		fail(w, "top level: not a map");
		goto out;
	}
	/* The version first: a later version's fields are not ours to judge. */
	const msgpack_object_map *map = &u.data.via.map;
	const msgpack_object *version = NULL, *endpoints = NULL;
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;
		const msgpack_object **slot = NULL;
		if (floe_mp_key_is(k, "version"))
			slot = &version;
		else if (floe_mp_key_is(k, "endpoints"))
			slot = &endpoints;
		if (slot && *slot) {
			fail(w, "top level: a key appears twice");
			goto out;
		}
		if (slot)
			*slot = &map->ptr[i].val;
	}
	if (!version || version->type != MSGPACK_OBJECT_POSITIVE_INTEGER || version->via.u64 == 0) {
		fail(w, "version: missing or not a positive integer");
		goto out;
	}
	if (version->via.u64 > STATE_VERSION) {
		fail(w, "format version %" PRIu64 ", this floed reads version %d", version->via.u64,
		     STATE_VERSION);
		rc = -ENOTSUP;
		goto out;
	}
	if (!endpoints || endpoints->type != MSGPACK_OBJECT_ARRAY) {
		fail(w, "endpoints: missing or not an array");
		goto out;
	}
	for (uint32_t i = 0; i < endpoints->via.array.size; i++) {
		char where[32];
		snprintf(where, sizeof(where), "endpoints[%" PRIu32 "]", i);
		struct floe_state_entry *e = xcalloc(1, sizeof(*e));
		if (!parse_entry(&endpoints->via.array.ptr[i], e, w, where)) {
			entry_free(e);
			goto out;
		}
		if (floe_state_find(st, e->ns, e->name)) {
			fail(w, "%s: endpoint %s/%s appears twice", where, e->ns, e->name);
			entry_free(e);
			goto out;
		}
		state_append(st, e);
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		floe_state_destroy(st);
	return rc;
}

/* --- load: files ---------------------------------------------------------- */

/* Read path whole. floe_read_file would stop quietly at a read error and
 * hand back a short buffer, which here would pass a failing disk off as a
 * corrupt file and move it aside. *too_big: over FLOE_STATE_FILE_MAX (not
 * read). */
static int read_state_file(const char *path, char **data, size_t *len, bool *too_big)
{
	*data = NULL;
	*len = 0;
	*too_big = false;
	/* NONBLOCK: a FIFO put there must not hang floed's start */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat stt;
	int rc = 0;
	if (fstat(fd, &stt) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(stt.st_mode)) {
		rc = S_ISDIR(stt.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)stt.st_size > FLOE_STATE_FILE_MAX) {
		*too_big = true;
		goto out;
	}
	size_t size = (size_t)stt.st_size;
	char *buf = xmalloc(size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			free(buf);
			goto out;
		}
		if (n == 0)
			break; /* shrank meanwhile: what is there is judged as is */
		got += (size_t)n;
	}
	*data = buf;
	*len = got;
out:
	close(fd);
	return rc;
}

/* "endpoints.UNIX_MS.msgpack" (reason: with ".REASON" after it) -> UNIX_MS. */
static bool corrupt_name(const char *name, uint64_t *ms, bool *reason)
{
	static const char prefix[] = "endpoints.", suffix[] = ".msgpack";
	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return false;
	const char *p = name + sizeof(prefix) - 1;
	if (*p < '0' || *p > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || strncmp(end, suffix, sizeof(suffix) - 1) != 0)
		return false;
	end += sizeof(suffix) - 1;
	if (*end == '\0')
		*reason = false;
	else if (strcmp(end, ".REASON") == 0)
		*reason = true;
	else
		return false;
	*ms = v;
	return true;
}

static int u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Keep the newest CORRUPT_KEEP files (and their REASON files); a REASON
 * whose file is gone goes too. *newest: the largest UNIX_MS there (0: none). */
static void corrupt_trim(const char *qdir, size_t keep_max, uint64_t *newest)
{
	*newest = 0;
	DIR *d = opendir(qdir);
	if (!d)
		return;
	uint64_t *ms = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t v;
		bool reason;
		if (!corrupt_name(de->d_name, &v, &reason) || reason)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			ms = xrealloc(ms, cap * sizeof(*ms));
		}
		ms[n++] = v;
	}
	if (n)
		qsort(ms, n, sizeof(*ms), u64_desc);
	if (n)
		*newest = ms[0];
	size_t keep = n < keep_max ? n : keep_max;
	rewinddir(d);
	while ((de = readdir(d))) {
		uint64_t v;
		bool reason;
		if (!corrupt_name(de->d_name, &v, &reason))
			continue;
		bool kept = false;
		for (size_t i = 0; i < keep && !kept; i++)
			kept = ms[i] == v;
		if (!kept && unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			log_warn("remove %s/%s: %s", qdir, de->d_name, strerror(errno));
	}
	closedir(d);
	free(ms);
}

/* Move path to DIR/corrupt/endpoints.UNIX_MS.msgpack (the next free
 * millisecond when two land in one) and write the reason beside it. */
static int set_aside(const char *dir, const char *path, const char *reason, char **dst_out,
		     floe_error *err)
{
	char *qdir = xasprintf("%s/corrupt", dir);
	char *dst = NULL;
	int rc = floe_mkdir_p(qdir, 0700);
	if (rc < 0) {
		floe_error_set(err, rc, "create %s: %s", qdir, strerror(-rc));
		goto out;
	}
	/* Newer than every file there, even when the clock went back or an
	 * earlier one took the next millisecond: the trim judges age by name,
	 * and must never take the file just set aside for the oldest. */
	uint64_t newest;
	corrupt_trim(qdir, SIZE_MAX, &newest);
	uint64_t ms = floe_wall_ms();
	if (ms <= newest)
		ms = newest + 1;
	for (int attempt = 0;; attempt++, ms++) {
		free(dst);
		dst = xasprintf("%s/endpoints.%" PRIu64 ".msgpack", qdir, ms);
		/* NOREPLACE: an earlier corrupt file of the same millisecond is
		 * evidence too. */
		if (renameat2(AT_FDCWD, path, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
			break;
		rc = -errno;
		if (rc == -EINVAL) {
			/* a file system without RENAME_NOREPLACE: check, then rename */
			struct stat stt;
			if (stat(dst, &stt) == 0) {
				rc = -EEXIST;
			} else {
				rc = rename(path, dst) < 0 ? -errno : 0;
				if (rc == 0)
					break;
			}
		}
		if (rc != -EEXIST || attempt >= 1000) {
			floe_error_set(err, rc, "move %s to %s: %s", path, dst, strerror(-rc));
			goto out;
		}
	}
	rc = 0;
	char *why = xasprintf("%s.REASON", dst);
	FILE *f = fopen(why, "we");
	if (!f || fprintf(f, "%s\n", reason) < 0 || fclose(f) != 0)
		log_warn("write %s: %s", why, strerror(errno)); /* the file itself is aside */
	free(why);
	corrupt_trim(qdir, CORRUPT_KEEP, &newest);
	*dst_out = dst;
	dst = NULL;
out:
	free(dst);
	free(qdir);
	return rc;
}

/* Temp files of saves a crash interrupted. */
static void remove_stale_temps(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, TEMP_PREFIX, sizeof(TEMP_PREFIX) - 1) == 0) {
			if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
				log_warn("remove %s/%s: %s", dir, de->d_name, strerror(errno));
			else
				log_info("removed %s/%s, left by an interrupted save", dir,
					 de->d_name);
		}
	closedir(d);
}

int floe_state_load(const char *data_dir, struct floe_state *st, bool *set_aside_out,
		    floe_error *err)
{
	floe_state_init(st);
	if (set_aside_out)
		*set_aside_out = false;
	char *dir = xasprintf("%s/state", data_dir);
	char *path = xasprintf("%s/" FILE_NAME, dir);
	char *data = NULL, *dst = NULL;
	size_t len = 0;
	bool too_big = false;
	remove_stale_temps(dir);
	int rc = read_state_file(path, &data, &len, &too_big);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		floe_error_set(err, rc, "read %s: %s", path, strerror(-rc));
		goto out;
	}
	struct why w = { "" };
	if (too_big) {
		fail(&w, "larger than %u bytes", FLOE_STATE_FILE_MAX);
		rc = -EINVAL;
	} else {
		rc = parse_file(data, len, st, &w);
	}
	if (rc == -ENOTSUP) {
		floe_error_set(err, rc, "%s: %s", path, w.msg);
		goto out;
	}
	if (rc < 0) {
		rc = set_aside(dir, path, w.msg, &dst, err);
		if (rc < 0) {
			floe_error_wrap(err, "%s is corrupt (%s) and could not be set aside", path,
					w.msg);
			goto out;
		}
		if (set_aside_out)
			*set_aside_out = true;
		floe_error_set(err, -EIO, "%s is corrupt (%s): moved to %s, starting empty", path,
			       w.msg, dst);
	}
out:
	free(data);
	free(dst);
	free(dir);
	free(path);
	return rc;
}
