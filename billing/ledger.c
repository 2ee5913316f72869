/*
 * The usage ledger: see ledger.h for the on-disk format and the rules.
 * Design choices that keep it obviously correct:
 *  - a writer never appends to a segment it did not create, so recovery only
 *    ever has to cut the tail of the newest segment, and nothing else;
 *  - frames are written with pwrite() at the known end of the last good
 *    record, so a failed or short write is undone by one ftruncate();
 *  - open and read share one scanner; a frame counts only when its length,
 *    CRC and msgpack shape are all valid, so garbage is never a record.
 */
#define LOG_TAG "ledger"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fsutil.h"
#include "ledger.h"
#include "log.h"
#include "xalloc.h"

#define FRAME_HEADER 8u
#define DAY_LEN 10 /* YYYY-MM-DD */

/* ---- key set: chained hash set of idempotency keys ---------------------- */

struct key_node {
	struct key_node *next;
	uint64_t hash;
	uint64_t minute;
	uint32_t seq;
	char replica[];
};

struct key_set {
	struct key_node **buckets;
	size_t n_buckets; /* power of two */
	size_t n;
};

static uint64_t key_hash(const floe_ledger_key *k)
{
	/* FNV-1a over the replica, the minute and the seq. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)k->replica; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	uint64_t v[2] = { k->minute, k->seq };
	const unsigned char *b = (const unsigned char *)v;
	for (size_t i = 0; i < sizeof(v); i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static struct key_node *set_find(const struct key_set *s, const floe_ledger_key *k, uint64_t h)
{
	if (!s->n_buckets)
		return NULL;
	for (struct key_node *n = s->buckets[h & (s->n_buckets - 1)]; n; n = n->next)
		if (n->hash == h && n->minute == k->minute && n->seq == k->seq &&
		    strcmp(n->replica, k->replica) == 0)
			return n;
	return NULL;
}

static void set_grow(struct key_set *s)
{
	size_t nb = s->n_buckets ? s->n_buckets * 2 : 1024;
	struct key_node **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct key_node *n = s->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = nb;
}

/* Adds k, which must be absent. */
static struct key_node *set_add(struct key_set *s, const floe_ledger_key *k, uint64_t h)
{
	if (s->n >= s->n_buckets)
		set_grow(s);
	size_t len = strlen(k->replica);
	struct key_node *n = xmalloc(sizeof(*n) + len + 1);
	n->hash = h;
	n->minute = k->minute;
	n->seq = k->seq;
	memcpy(n->replica, k->replica, len + 1);
	struct key_node **b = &s->buckets[h & (s->n_buckets - 1)];
	n->next = *b;
	*b = n;
	s->n++;
	return n;
}

static void set_remove(struct key_set *s, struct key_node *node)
{
	for (struct key_node **p = &s->buckets[node->hash & (s->n_buckets - 1)]; *p;
	     p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			free(node);
			s->n--;
			return;
		}
	}
}

static void set_destroy(struct key_set *s)
{
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct key_node *n = s->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	free(s->buckets);
	memset(s, 0, sizeof(*s));
}

/* ---- segment names ------------------------------------------------------ */

struct seg_name {
	char day[DAY_LEN + 1];
	unsigned long n;
	char *path;
};

/* Accepts exactly YYYY-MM-DD.N.seg (N decimal, no leading zeros). */
static bool seg_parse(const char *name, struct seg_name *out)
{
	unsigned y, m, d;
	unsigned long n;
	int used = 0;
	if (sscanf(name, "%4u-%2u-%2u.%lu.seg%n", &y, &m, &d, &n, &used) != 4 ||
	    used != (int)strlen(name))
		return false;
	char canon[64];
	snprintf(canon, sizeof(canon), "%04u-%02u-%02u.%lu.seg", y, m, d, n);
	if (strcmp(canon, name) != 0)
		return false;
	memcpy(out->day, name, DAY_LEN);
	out->day[DAY_LEN] = '\0';
	out->n = n;
	return true;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg_name *x = a, *y = b;
	int c = strcmp(x->day, y->day);
	if (c)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

static void segs_free(struct seg_name *segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(segs[i].path);
	free(segs);
}

/* Lists dir's segments in ledger order. A missing dir is empty. */
static int segs_list(const char *dir, struct seg_name **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct seg_name *segs = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct seg_name s;
		if (!seg_parse(de->d_name, &s))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			segs = xrealloc(segs, cap * sizeof(*segs));
		}
		s.path = xasprintf("%s/%s", dir, de->d_name);
		segs[n++] = s;
	}
	closedir(d);
	if (n)
		qsort(segs, n, sizeof(*segs), seg_cmp);
	*out = segs;
	*count = n;
	return 0;
}

/* ---- frames ------------------------------------------------------------- */

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static bool str_is(const msgpack_object *o, const char *s)
{
	size_t len = strlen(s);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
	       memcmp(o->via.str.ptr, s, len) == 0;
}

struct frame {
	size_t size; /* header + payload */
	floe_ledger_key key;
	char replica[FLOE_LEDGER_MAX_REPLICA + 1];
	const void *data;
	size_t data_len;
};

/*
 * Decodes the frame at buf (avail bytes) into f, with u owning what f->data
 * points to. True only for a whole frame whose length, CRC and payload shape
 * are all valid.
 */
static bool frame_parse(const unsigned char *buf, size_t avail, msgpack_unpacked *u,
			struct frame *f)
{
	if (avail < FRAME_HEADER)
		return false;
	uint32_t len = get_le32(buf);
	if (len == 0 || len > FLOE_LEDGER_MAX_PAYLOAD || len > avail - FRAME_HEADER)
		return false;
	uint32_t crc = floe_crc32c(floe_crc32c(0, buf, 4), buf + FRAME_HEADER, len);
	if (crc != get_le32(buf + 4))
		return false;

	size_t off = 0;
	if (msgpack_unpack_next(u, (const char *)buf + FRAME_HEADER, len, &off) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != len || u->data.type != MSGPACK_OBJECT_MAP || u->data.via.map.size != 4)
		return false;
	unsigned have = 0;
	for (uint32_t i = 0; i < 4; i++) {
		const msgpack_object *k = &u->data.via.map.ptr[i].key;
		const msgpack_object *v = &u->data.via.map.ptr[i].val;
		if (str_is(k, "replica") && !(have & 1) && v->type == MSGPACK_OBJECT_STR &&
		    v->via.str.size >= 1 && v->via.str.size <= FLOE_LEDGER_MAX_REPLICA &&
		    !memchr(v->via.str.ptr, '\0', v->via.str.size)) {
			memcpy(f->replica, v->via.str.ptr, v->via.str.size);
			f->replica[v->via.str.size] = '\0';
			have |= 1;
		} else if (str_is(k, "minute") && !(have & 2) &&
			   v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			f->key.minute = v->via.u64;
			have |= 2;
		} else if (str_is(k, "seq") && !(have & 4) &&
			   v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= UINT32_MAX) {
			f->key.seq = (uint32_t)v->via.u64;
			have |= 4;
		} else if (str_is(k, "data") && !(have & 8) && v->type == MSGPACK_OBJECT_BIN &&
			   v->via.bin.size >= 1) {
			f->data = v->via.bin.ptr;
			f->data_len = v->via.bin.size;
			have |= 8;
		} else {
			return false;
		}
	}
	if (have != 15)
		return false;
	f->key.replica = f->replica;
	f->size = FRAME_HEADER + len;
	return true;
}

static bool frame_valid_at(const unsigned char *buf, size_t avail)
{
	msgpack_unpacked u;
	struct frame f;
	msgpack_unpacked_init(&u);
	bool ok = frame_parse(buf, avail, &u, &f);
	msgpack_unpacked_destroy(&u);
	return ok;
}

/* ---- scanning (shared by open and read) --------------------------------- */

struct scan {
	struct key_set *seen;
	floe_ledger_reader *rd;
	floe_ledger_record_cb cb;
	void *opaque;
	bool recover; /* open: truncate the torn tail, fsync every segment */
	int cb_rc;
};

static void add_damage(floe_ledger_reader *rd, const char *path, uint64_t off, uint64_t len)
{
	rd->damaged = xrealloc(rd->damaged, (rd->n_damaged + 1) * sizeof(*rd->damaged));
	rd->damaged[rd->n_damaged++] = (floe_ledger_damage){ xstrdup(path), off, len };
	rd->incomplete = true;
	log_warn("%s: damaged records at offset %llu (%llu bytes) skipped", path,
		 (unsigned long long)off, (unsigned long long)len);
}

static int read_all(int fd, unsigned char **data, size_t *len)
{
	struct stat st;
	*data = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0)
		return -errno;
	size_t size = (size_t)st.st_size, got = 0;
	unsigned char *buf = xmalloc(size ? size : 1);
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (r == 0)
			break; /* shrank under us: scan what we have */
		got += (size_t)r;
	}
	*data = buf;
	*len = got;
	return 0;
}

static int scan_segment(struct scan *sc, const char *path, bool newest, floe_error *err)
{
	int fd = open(path, (sc->recover && newest ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "open %s: %s", path, strerror(errno));
	unsigned char *buf;
	size_t len;
	int rc = read_all(fd, &buf, &len);
	if (rc < 0) {
		close(fd);
		return floe_error_set(err, rc, "read %s: %s", path, strerror(-rc));
	}
	sc->rd->segments++;

	size_t off = 0;
	while (off < len) {
		msgpack_unpacked u;
		struct frame f;
		msgpack_unpacked_init(&u);
		if (frame_parse(buf + off, len - off, &u, &f)) {
			uint64_t h = key_hash(&f.key);
			if (set_find(sc->seen, &f.key, h)) {
				sc->rd->duplicates++;
			} else {
				set_add(sc->seen, &f.key, h);
				sc->rd->records++;
				if (sc->cb)
					sc->cb_rc = sc->cb(&f.key, f.data, f.data_len, sc->opaque);
			}
			msgpack_unpacked_destroy(&u);
			off += f.size;
			if (sc->cb_rc)
				break;
			continue;
		}
		msgpack_unpacked_destroy(&u);

		/* Bad frame at off: resync at the next offset where a whole valid
		 * frame parses (a false match needs a 2^-32 CRC collision and a
		 * well-formed record map). */
		size_t next = off + 1;
		while (next + FRAME_HEADER <= len && !frame_valid_at(buf + next, len - next))
			next++;
		if (next + FRAME_HEADER > len)
			next = len;
		if (next == len && newest) {
			/* Torn tail: the write of the last record(s) never finished. */
			sc->rd->torn_tail = true;
			free(sc->rd->tail_file);
			sc->rd->tail_file = xstrdup(path);
			sc->rd->tail_offset = off;
			sc->rd->tail_bytes = len - off;
			if (sc->recover) {
				log_warn("%s: torn tail at offset %zu (%zu bytes) truncated", path,
					 off, len - off);
				if (ftruncate(fd, (off_t)off) != 0) {
					rc = floe_error_set(err, -errno, "truncate %s to %zu: %s",
							    path, off, strerror(errno));
					goto out;
				}
			} else {
				log_info("%s: torn tail at offset %zu (%zu bytes)", path, off,
					 len - off);
			}
			break;
		}
		add_damage(sc->rd, path, off, next - off);
		off = next;
	}
	/* Records a killed writer left in the page cache become durable here,
	 * so that everything open() counts is committed. */
	if (sc->recover && fsync(fd) != 0)
		rc = floe_error_set(err, -errno, "fsync %s: %s", path, strerror(errno));
out:
	free(buf);
	close(fd);
	return rc;
}

static int scan_dir(struct scan *sc, const char *dir, struct seg_name **segs_out, size_t *nsegs_out,
		    floe_error *err)
{
	struct seg_name *segs;
	size_t n;
	int rc = segs_list(dir, &segs, &n);
	if (rc < 0)
		return floe_error_set(err, rc, "list %s: %s", dir, strerror(-rc));
	for (size_t i = 0; i < n && rc == 0 && sc->cb_rc == 0; i++)
		rc = scan_segment(sc, segs[i].path, i + 1 == n, err);
	if (segs_out) {
		*segs_out = segs;
		*nsegs_out = n;
	} else {
		segs_free(segs, n);
	}
	return rc;
}

void floe_ledger_reader_destroy(floe_ledger_reader *rd)
{
	if (!rd)
		return;
	for (size_t i = 0; i < rd->n_damaged; i++)
		free(rd->damaged[i].file);
	free(rd->damaged);
	free(rd->tail_file);
	memset(rd, 0, sizeof(*rd));
}

int floe_ledger_read(const char *dir, floe_ledger_record_cb cb, void *opaque,
		     floe_ledger_reader *rd, floe_error *err)
{
	struct key_set seen = { 0 };
	memset(rd, 0, sizeof(*rd));
	struct scan sc = { .seen = &seen, .rd = rd, .cb = cb, .opaque = opaque };
	int rc = scan_dir(&sc, dir, NULL, NULL, err);
	set_destroy(&seen);
	if (rc < 0)
		return floe_error_wrap(err, "read of ledger %s failed", dir);
	return sc.cb_rc;
}

/* ---- the writer --------------------------------------------------------- */

struct floe_ledger {
	char *dir;
	uint64_t segment_max;
	time_t (*now)(void *opaque);
	void *now_opaque;
	struct key_set keys;

	int fd;                     /* current segment, -1 until the first append */
	char day[DAY_LEN + 1];      /* its day */
	uint64_t off;               /* end of its last whole record */
	uint64_t committed_off;     /* end of its last durable record */
	char last_day[DAY_LEN + 1]; /* newest segment on disk ("" if none) */
	unsigned long last_n;

	uint64_t appended, committed, errors;
	struct key_node **pending; /* keys written since the last commit */
	size_t n_pending, cap_pending;
};

static time_t default_now(void *opaque)
{
	return time(NULL);
}

static void day_of(time_t t, char out[DAY_LEN + 1])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, DAY_LEN + 1, "%Y-%m-%d", &tm);
}

/* Forget the records written since the last commit (their fate on disk is
 * unknown, so the caller appends them again). */
static void discard_pending(floe_ledger *lg)
{
	if (lg->n_pending)
		log_warn("%s: %zu uncommitted record(s) discarded", lg->dir, lg->n_pending);
	for (size_t i = 0; i < lg->n_pending; i++)
		set_remove(&lg->keys, lg->pending[i]);
	lg->n_pending = 0;
}

static void abandon_segment(floe_ledger *lg)
{
	discard_pending(lg);
	if (lg->fd >= 0)
		close(lg->fd);
	lg->fd = -1;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int segment_create(floe_ledger *lg, const char *day)
{
	unsigned long n = strcmp(day, lg->last_day) == 0 ? lg->last_n + 1 : 0;
	for (;; n++) {
		char *path = xasprintf("%s/%s.%lu.seg", lg->dir, day, n);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno == EEXIST) {
			free(path);
			continue;
		}
		if (fd < 0) {
			int e = -errno;
			log_error("create %s: %s", path, strerror(-e));
			free(path);
			return e;
		}
		/* The new name must survive a crash along with its records. */
		int rc = fsync_dir(lg->dir);
		if (rc < 0) {
			log_error("fsync of directory %s: %s", lg->dir, strerror(-rc));
			close(fd);
			unlink(path);
			free(path);
			return rc;
		}
		log_debug("new segment %s", path);
		free(path);
		lg->fd = fd;
		memcpy(lg->day, day, sizeof(lg->day));
		memcpy(lg->last_day, day, sizeof(lg->last_day));
		lg->last_n = n;
		lg->off = lg->committed_off = 0;
		return 0;
	}
}

int floe_ledger_commit(floe_ledger *lg)
{
	if (lg->fd < 0 || lg->n_pending == 0) {
		lg->committed = lg->appended;
		return 0;
	}
	if (fdatasync(lg->fd) != 0) {
		int e = -errno;
		lg->errors++;
		log_error("fsync of ledger segment %s/%s.%lu.seg: %s", lg->dir, lg->day, lg->last_n,
			  strerror(-e));
		discard_pending(lg);
		if (ftruncate(lg->fd, (off_t)lg->committed_off) != 0)
			abandon_segment(lg);
		else
			lg->off = lg->committed_off;
		return e;
	}
	lg->committed = lg->appended;
	lg->committed_off = lg->off;
	lg->n_pending = 0;
	return 0;
}

static int write_all_at(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int floe_ledger_append(floe_ledger *lg, const floe_ledger_key *key, const void *payload, size_t len,
		       uint64_t *recno)
{
	if (!key || !key->replica || !key->replica[0] ||
	    strlen(key->replica) > FLOE_LEDGER_MAX_REPLICA || !payload || len == 0)
		return -EINVAL;
	if (len > FLOE_LEDGER_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint64_t h = key_hash(key);
	if (set_find(&lg->keys, key, h))
		return 1;

	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	static const unsigned char zero[FRAME_HEADER];
	msgpack_sbuffer_write(&sb, (const char *)zero, FRAME_HEADER);
	size_t rlen = strlen(key->replica);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str(&pk, 7);
	msgpack_pack_str_body(&pk, "replica", 7);
	msgpack_pack_str(&pk, rlen);
	msgpack_pack_str_body(&pk, key->replica, rlen);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "minute", 6);
	msgpack_pack_uint64(&pk, key->minute);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "seq", 3);
	msgpack_pack_uint32(&pk, key->seq);
	msgpack_pack_str(&pk, 4);
	msgpack_pack_str_body(&pk, "data", 4);
	msgpack_pack_bin(&pk, len);
	msgpack_pack_bin_body(&pk, payload, len);
	size_t plen = sb.size - FRAME_HEADER;
	if (plen > FLOE_LEDGER_MAX_PAYLOAD) {
		msgpack_sbuffer_destroy(&sb);
		return -EMSGSIZE;
	}
	unsigned char *frame = (unsigned char *)sb.data;
	put_le32(frame, (uint32_t)plen);
	put_le32(frame + 4, floe_crc32c(floe_crc32c(0, frame, 4), frame + FRAME_HEADER, plen));

	/* Pick the segment: rotate on a new UTC day or past the size cap. A clock
	 * that goes back never sorts a new segment before an existing one. */
	char day[DAY_LEN + 1];
	day_of(lg->now(lg->now_opaque), day);
	if (strcmp(day, lg->last_day) < 0)
		memcpy(day, lg->last_day, sizeof(day));
	int rc = 0;
	if (lg->fd >= 0 &&
	    (strcmp(day, lg->day) != 0 || (lg->off > 0 && lg->off + sb.size > lg->segment_max))) {
		rc = floe_ledger_commit(lg); /* counts its own error */
		if (rc < 0)
			goto out;
		close(lg->fd);
		lg->fd = -1;
	}
	if (lg->fd < 0) {
		rc = segment_create(lg, day);
		if (rc < 0) {
			lg->errors++;
			goto out;
		}
	}

	rc = write_all_at(lg->fd, frame, sb.size, lg->off);
	if (rc < 0) {
		lg->errors++;
		log_error("write to ledger segment %s/%s.%lu.seg: %s", lg->dir, lg->day, lg->last_n,
			  strerror(-rc));
		/* Never leave a partial frame for a later record to follow. */
		if (ftruncate(lg->fd, (off_t)lg->off) != 0) {
			log_error("truncate of ledger segment %s/%s.%lu.seg: %s; abandoning it",
				  lg->dir, lg->day, lg->last_n, strerror(errno));
			abandon_segment(lg);
		}
		goto out;
	}
	lg->off += sb.size;
	if (lg->n_pending == lg->cap_pending) {
		lg->cap_pending = lg->cap_pending ? lg->cap_pending * 2 : 64;
		lg->pending = xrealloc(lg->pending, lg->cap_pending * sizeof(*lg->pending));
	}
	lg->pending[lg->n_pending++] = set_add(&lg->keys, key, h);
	lg->appended++;
	if (recno)
		*recno = lg->appended;
out:
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int floe_ledger_open(const floe_ledger_options *opts, floe_ledger **out,
		     floe_ledger_reader *recovery, floe_error *err)
{
	*out = NULL;
	if (!opts || !opts->dir || !opts->dir[0])
		return floe_error_set(err, -EINVAL, "ledger: no directory given");
	int rc = floe_mkdir_p(opts->dir, 0755);
	if (rc < 0)
		return floe_error_set(err, rc, "create ledger directory %s: %s", opts->dir,
				      strerror(-rc));

	floe_ledger *lg = xcalloc(1, sizeof(*lg));
	lg->dir = xstrdup(opts->dir);
	lg->segment_max =
		opts->segment_max_bytes ? opts->segment_max_bytes : FLOE_LEDGER_DEFAULT_SEGMENT_MAX;
	lg->now = opts->now ? opts->now : default_now;
	lg->now_opaque = opts->now_opaque;
	lg->fd = -1;

	floe_ledger_reader rd;
	memset(&rd, 0, sizeof(rd));
	struct scan sc = { .seen = &lg->keys, .rd = &rd, .recover = true };
	struct seg_name *segs;
	size_t n;
	rc = scan_dir(&sc, lg->dir, &segs, &n, err);
	if (rc == 0 && n) {
		memcpy(lg->last_day, segs[n - 1].day, sizeof(lg->last_day));
		lg->last_n = segs[n - 1].n;
	}
	if (rc == 0)
		segs_free(segs, n);
	if (rc < 0) {
		floe_ledger_reader_destroy(&rd);
		floe_ledger_close(lg);
		return floe_error_wrap(err, "recovery of ledger %s failed", opts->dir);
	}
	lg->appended = lg->committed = rd.records;
	log_info("ledger %s: %llu records in %llu segments%s", lg->dir,
		 (unsigned long long)rd.records, (unsigned long long)rd.segments,
		 rd.incomplete ? " (damaged ranges skipped)" : "");
	if (recovery)
		*recovery = rd;
	else
		floe_ledger_reader_destroy(&rd);
	*out = lg;
	return 0;
}

uint64_t floe_ledger_committed(const floe_ledger *lg)
{
	return lg->committed;
}

uint64_t floe_ledger_appended(const floe_ledger *lg)
{
	return lg->appended;
}

uint64_t floe_ledger_errors(const floe_ledger *lg)
{
	return lg->errors;
}

bool floe_ledger_contains(const floe_ledger *lg, const floe_ledger_key *key)
{
	return key && key->replica && set_find(&lg->keys, key, key_hash(key)) != NULL;
}

void floe_ledger_close(floe_ledger *lg)
{
	if (!lg)
		return;
	if (lg->fd >= 0) {
		if (floe_ledger_commit(lg) < 0)
			log_error("ledger %s: final commit failed", lg->dir);
		if (lg->fd >= 0)
			close(lg->fd);
	}
	set_destroy(&lg->keys);
	free(lg->pending);
	free(lg->dir);
	free(lg);
}
