/*
 * The usage ledger: see ledger.h for the on-disk format and the rules.
 * Design choices that keep it obviously correct:
 *  - a writer never appends to a segment it did not create, so recovery only
 *    ever has to cut the tail of the newest segment, and nothing else; and
 *    since a writer commits a segment before it rotates, open() needs to
 *    look at nothing but the newest segment;
 *  - frames are written with pwrite() at the known end of the last good
 *    record, so a failed or short write is undone by one ftruncate();
 *  - open and read share one scanner; a frame counts only when its length,
 *    CRC and msgpack shape are all valid, so garbage is never a record.
 * The reader is the export's hot path (a month is ~10 M records), so it
 * reads segments through a cache-sized window, checks CRCs with
 * the SSE4.2 crc32 instruction where the CPU has it, parses the 4-key
 * frame map in place (no msgpack_unpack: its allocation and object tree
 * cost more than everything else together) and dedupes with an
 * open-addressing map replica -> highest seq.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fsutil.h"
#include "hash.h"
#include "ledger.h"
#include "log.h"
#include "xalloc.h"

#define FRAME_HEADER 8u
#define DAY_LEN 10 /* YYYY-MM-DD */

/* ---- CRC32C of a frame -------------------------------------------------- */

static uint32_t frame_crc(const unsigned char *frame, size_t payload_len)
{
	return floe_crc32c(floe_crc32c(0, frame, 4), frame + FRAME_HEADER, payload_len);
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

struct frame {
	size_t size;         /* header + payload */
	const char *replica; /* in the payload, not NUL-terminated */
	size_t replica_len;
	uint64_t minute;
	uint32_t seq;
	const void *data;
	size_t data_len;
};

/*
 * A cursor over msgpack bytes (big-endian lengths, msgpack spec "formats").
 * Only what a frame map holds is decoded; any other type is malformed.
 */
struct mp {
	const unsigned char *p, *end;
};

static bool mp_take(struct mp *m, size_t n, uint64_t *v)
{
	if ((size_t)(m->end - m->p) < n)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x = x << 8 | m->p[i];
	m->p += n;
	*v = x;
	return true;
}

static bool mp_bytes(struct mp *m, uint64_t n, const unsigned char **out)
{
	if ((uint64_t)(m->end - m->p) < n)
		return false;
	*out = m->p;
	m->p += n;
	return true;
}

/* str (fixstr, str 8/16/32) */
static bool mp_str(struct mp *m, const unsigned char **s, size_t *len)
{
	if (m->p >= m->end)
		return false;
	unsigned c = *m->p++;
	uint64_t n;
	if ((c & 0xe0) == 0xa0)
		n = c & 0x1f;
	else if (c < 0xd9 || c > 0xdb || !mp_take(m, 1u << (c - 0xd9), &n))
		return false;
	*len = (size_t)n;
	return mp_bytes(m, n, s);
}

/* bin 8/16/32 */
static bool mp_bin(struct mp *m, const unsigned char **s, size_t *len)
{
	if (m->p >= m->end)
		return false;
	unsigned c = *m->p++;
	uint64_t n;
	if (c < 0xc4 || c > 0xc6 || !mp_take(m, 1u << (c - 0xc4), &n))
		return false;
	*len = (size_t)n;
	return mp_bytes(m, n, s);
}

/* A non-negative integer in any msgpack int format (msgpack-c's
 * POSITIVE_INTEGER, which the old object-tree parser accepted). */
static bool mp_uint(struct mp *m, uint64_t *v)
{
	if (m->p >= m->end)
		return false;
	unsigned c = *m->p++;
	if (c <= 0x7f) {
		*v = c;
		return true;
	}
	if (c >= 0xcc && c <= 0xcf)
		return mp_take(m, 1u << (c - 0xcc), v);
	if (c >= 0xd0 && c <= 0xd3) {
		unsigned n = 1u << (c - 0xd0);
		if (!mp_take(m, n, v))
			return false;
		return (*v >> (n * 8 - 1)) == 0; /* sign bit clear */
	}
	return false;
}

static bool key_is(const unsigned char *k, size_t len, const char *name, size_t name_len)
{
	return len == name_len && memcmp(k, name, len) == 0;
}

/*
 * Parses the payload in place: a map of exactly the 4 keys "replica"
 * (1..FLOE_LEDGER_MAX_REPLICA bytes, no NUL), "minute" (uint), "seq"
 * (uint32), "data" (bin, >= 1 byte), in any order, each once, nothing
 * after the map.
 */
static bool payload_parse(const unsigned char *p, size_t len, struct frame *f)
{
	struct mp m = { p, p + len };
	uint64_t n;
	unsigned c = *m.p++;
	if (c == 0x84)
		n = 4;
	else if ((c != 0xde && c != 0xdf) || !mp_take(&m, c == 0xde ? 2 : 4, &n) || n != 4)
		return false;
	unsigned have = 0;
	for (int i = 0; i < 4; i++) {
		const unsigned char *k, *s;
		size_t klen, slen;
		uint64_t v;
		if (!mp_str(&m, &k, &klen))
			return false;
		if (key_is(k, klen, "replica", 7) && !(have & 1)) {
			if (!mp_str(&m, &s, &slen) || slen < 1 || slen > FLOE_LEDGER_MAX_REPLICA ||
			    memchr(s, '\0', slen))
				return false;
			f->replica = (const char *)s;
			f->replica_len = slen;
			have |= 1;
		} else if (key_is(k, klen, "minute", 6) && !(have & 2)) {
			if (!mp_uint(&m, &f->minute))
				return false;
			have |= 2;
		} else if (key_is(k, klen, "seq", 3) && !(have & 4)) {
			if (!mp_uint(&m, &v) || v > UINT32_MAX)
				return false;
			f->seq = (uint32_t)v;
			have |= 4;
		} else if (key_is(k, klen, "data", 4) && !(have & 8)) {
			if (!mp_bin(&m, &s, &slen) || slen < 1)
				return false;
			f->data = s;
			f->data_len = slen;
			have |= 8;
		} else {
			return false;
		}
	}
	return have == 15 && m.p == m.end;
}

/*
 * Decodes the frame at buf (avail bytes) into f, which points into buf.
 * True only for a whole frame whose length, CRC and payload shape are all
 * valid.
 */
static bool frame_parse(const unsigned char *buf, size_t avail, struct frame *f)
{
	if (avail < FRAME_HEADER)
		return false;
	uint32_t len = get_le32(buf);
	if (len == 0 || len > FLOE_LEDGER_MAX_PAYLOAD || len > avail - FRAME_HEADER)
		return false;
	if (frame_crc(buf, len) != get_le32(buf + 4))
		return false;
	if (!payload_parse(buf + FRAME_HEADER, len, f))
		return false;
	f->size = FRAME_HEADER + len;
	return true;
}

/* ---- dedupe map: replica -> highest seq read ---------------------------- */

/*
 * Open addressing with linear probing; a slot is 24 bytes and names live
 * in one arena as [length byte][bytes], so the map costs about
 * 24 / load + name + 1 bytes per distinct replica (~70 bytes for a 20-byte
 * name), never anything per record.
 */
struct seq_slot {
	uint64_t hash; /* 0: empty */
	uint32_t seq;
	uint32_t name;  /* offset in the arena */
	uint32_t index; /* order of first appearance (floe_ledger_key.index) */
};

struct seq_map {
	struct seq_slot *slots;
	size_t cap; /* power of two */
	size_t n;
	unsigned char *arena;
	size_t arena_len, arena_cap;
};

/* Never 0: an empty slot's hash is 0. */
static uint64_t name_hash(const unsigned char *p, size_t n)
{
	return floe_hash_bytes(p, n) | 1;
}

/*
 * Zeroed slots. Tables of 2 MiB and more are asked for in transparent huge
 * pages: first touches of a fresh table are page faults (costly under a
 * hypervisor), and random lookups miss the TLB on 4 KiB pages; 2 MiB pages
 * cut both by 512. Without THP it is plain zeroed memory.
 */
#define HUGE_PAGE (2u * 1024u * 1024u)

static struct seq_slot *slots_alloc(size_t cap)
{
	size_t bytes = cap * sizeof(struct seq_slot);
	if (bytes < HUGE_PAGE)
		return xcalloc(cap, sizeof(struct seq_slot));
	void *p;
	if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
		return xcalloc(cap, sizeof(struct seq_slot)); /* aborts if memory is out */
	madvise(p, bytes, MADV_HUGEPAGE);
	memset(p, 0, bytes);
	return p;
}

static void map_grow(struct seq_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 4096;
	struct seq_slot *s = slots_alloc(cap);
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].hash)
			continue;
		size_t j = m->slots[i].hash & (cap - 1);
		while (s[j].hash)
			j = (j + 1) & (cap - 1);
		s[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
}

/*
 * Whether (replica, seq) is new, i.e. seq is above the highest seq read so
 * far for replica (or replica is new); if so it becomes the highest, and
 * *index is the replica's number. -EOVERFLOW past 4 GiB of distinct names
 * (~200 M replicas).
 */
static int map_admit(struct seq_map *m, const char *name, size_t len, uint64_t h, uint32_t seq,
		     uint32_t *index)
{
	if (2 * (m->n + 1) > m->cap)
		map_grow(m);
	size_t j = h & (m->cap - 1);
	for (;; j = (j + 1) & (m->cap - 1)) {
		struct seq_slot *s = &m->slots[j];
		if (!s->hash)
			break;
		if (s->hash != h)
			continue;
		const unsigned char *a = m->arena + s->name;
		if (a[0] != len || memcmp(a + 1, name, len) != 0)
			continue;
		if (seq <= s->seq)
			return 0;
		s->seq = seq;
		*index = s->index;
		return 1;
	}
	if (m->arena_len + 1 + len > UINT32_MAX)
		return -EOVERFLOW;
	if (m->arena_len + 1 + len > m->arena_cap) {
		m->arena_cap = m->arena_cap ? m->arena_cap * 2 : 64 * 1024;
		m->arena = xrealloc(m->arena, m->arena_cap);
	}
	*index = (uint32_t)m->n;
	m->slots[j] = (struct seq_slot){ h, seq, (uint32_t)m->arena_len, (uint32_t)m->n };
	m->arena[m->arena_len] = (unsigned char)len;
	memcpy(m->arena + m->arena_len + 1, name, len);
	m->arena_len += 1 + len;
	m->n++;
	return 1;
}

/*
 * The map is far bigger than the caches (700 k replicas: ~32 MB of slots),
 * so each lookup is one or two cache misses, which dominate a read. A batch
 * of frames is looked up in three passes so that the misses overlap:
 * prefetch each slot, then each name the slot points to, then admit.
 */
static void map_prefetch_slot(const struct seq_map *m, uint64_t h)
{
	if (m->cap)
		__builtin_prefetch(&m->slots[h & (m->cap - 1)]);
}

static void map_prefetch_name(const struct seq_map *m, uint64_t h)
{
	if (m->cap) {
		const struct seq_slot *s = &m->slots[h & (m->cap - 1)];
		if (s->hash == h)
			__builtin_prefetch(m->arena + s->name);
	}
}

static void map_destroy(struct seq_map *m)
{
	free(m->slots);
	free(m->arena);
	memset(m, 0, sizeof(*m));
}

/* ---- scanning (shared by open and read) --------------------------------- */

struct scan {
	struct seq_map seen;
	floe_ledger_reader *rd;
	floe_ledger_record_cb cb;
	void *opaque;
	bool recover; /* open: truncate the torn tail, fsync the segment */
	int cb_rc;
	unsigned char *buf; /* the window's bytes (WINDOW), reused across segments */
};

static void add_damage(floe_ledger_reader *rd, const char *path, uint64_t off, uint64_t len)
{
	rd->damaged = xrealloc(rd->damaged, (rd->n_damaged + 1) * sizeof(*rd->damaged));
	rd->damaged[rd->n_damaged++] = (floe_ledger_damage){ xstrdup(path), off, len };
	rd->incomplete = true;
	log_warn("%s: damaged records at offset %llu (%llu bytes) skipped", path,
		 (unsigned long long)off, (unsigned long long)len);
}

/*
 * A segment is read through a window of WINDOW bytes that slides along the
 * file (pread into a buffer reused for every segment), not read whole or
 * mmapped: a whole-segment buffer costs a page fault per 4 KiB and leaves
 * the bytes out of cache by the time the CRC and the parser get to them;
 * a mapping of the newest segment would turn a live writer's truncation
 * (its error path) into SIGBUS. The window always holds the next
 * MAX_FRAME bytes (or all that is left), enough for any frame.
 */
#define MAX_FRAME (FRAME_HEADER + FLOE_LEDGER_MAX_PAYLOAD)
#define WINDOW (1024u * 1024u)
#define BATCH 16 /* frames looked up together (see map_prefetch_slot) */

struct window {
	int fd;
	uint64_t size; /* bytes to scan: the size at open (later appends are not ours) */
	uint64_t base; /* file offset of buf[0] */
	size_t len;    /* bytes in buf */
};

/* Makes [off, off + MAX_FRAME) available (or up to the end); returns the
 * bytes available from off, or -errno. A file that shrank under us ends
 * where it now ends. */
static ssize_t window_at(struct scan *sc, struct window *w, uint64_t off)
{
	uint64_t end = w->base + w->len;
	if (off >= w->base && (end - off >= MAX_FRAME || end == w->size))
		return (ssize_t)(end - off);
	if (!sc->buf)
		sc->buf = xmalloc(WINDOW);
	size_t keep = off >= w->base && off < end ? (size_t)(end - off) : 0;
	if (keep)
		memmove(sc->buf, sc->buf + (off - w->base), keep);
	w->base = off;
	w->len = keep;
	while (w->len < WINDOW && w->base + w->len < w->size) {
		size_t want = WINDOW - w->len;
		if (want > w->size - (w->base + w->len))
			want = (size_t)(w->size - (w->base + w->len));
		ssize_t r = pread(w->fd, sc->buf + w->len, want, (off_t)(w->base + w->len));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			w->size = w->base + w->len; /* shrank under us: scan what we have */
			break;
		}
		w->len += (size_t)r;
	}
	return (ssize_t)w->len;
}

static int emit(struct scan *sc, const struct frame *f, uint64_t h, floe_error *err)
{
	uint32_t index = 0;
	int ok = map_admit(&sc->seen, f->replica, f->replica_len, h, f->seq, &index);
	if (ok < 0)
		return floe_error_set(err, ok, "more than 4 GiB of distinct replica names");
	if (!ok) {
		sc->rd->duplicates++;
		return 0;
	}
	sc->rd->records++;
	if (sc->cb) {
		char replica[FLOE_LEDGER_MAX_REPLICA + 1];
		memcpy(replica, f->replica, f->replica_len);
		replica[f->replica_len] = '\0';
		floe_ledger_key key = { .replica = replica,
					.minute = f->minute,
					.seq = f->seq,
					.index = index };
		sc->cb_rc = sc->cb(&key, f->data, f->data_len, sc->opaque);
	}
	return 0;
}

static int scan_segment(struct scan *sc, const char *path, bool newest, floe_error *err)
{
	int fd = open(path, (sc->recover ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return floe_error_set(err, -e, "stat %s: %s", path, strerror(e));
	}
	struct window w = { .fd = fd, .size = (uint64_t)st.st_size };
	sc->rd->segments++;

	int rc = 0;
	uint64_t off = 0;
	ssize_t avail;
	struct frame f;
	while (off < w.size) {
		if ((avail = window_at(sc, &w, off)) < 0)
			goto read_error;
		/* A batch of valid frames that lie in the window as it is (no slide,
		 * so the pointers into it stay valid), looked up with prefetches. */
		struct frame batch[BATCH];
		uint64_t hash[BATCH];
		size_t nb = 0;
		uint64_t o = off, wend = w.base + w.len;
		while (nb < BATCH && o < w.size &&
		       (o == off || wend - o >= MAX_FRAME || wend == w.size) &&
		       frame_parse(sc->buf + (o - w.base), (size_t)(wend - o), &batch[nb])) {
			hash[nb] = name_hash((const unsigned char *)batch[nb].replica,
					     batch[nb].replica_len);
			map_prefetch_slot(&sc->seen, hash[nb]);
			o += batch[nb++].size;
		}
		if (nb) {
			for (size_t i = 0; i < nb; i++)
				map_prefetch_name(&sc->seen, hash[i]);
			for (size_t i = 0; i < nb && !sc->cb_rc; i++) {
				rc = emit(sc, &batch[i], hash[i], err);
				if (rc < 0)
					goto out;
				off += batch[i].size;
			}
			if (sc->cb_rc)
				break;
			continue;
		}

		/* Bad frame at off: resync at the next offset where a whole valid
		 * frame parses (a false match needs a 2^-32 CRC collision and a
		 * well-formed record map). */
		uint64_t next = off + 1;
		for (; next + FRAME_HEADER <= w.size; next++) {
			if ((avail = window_at(sc, &w, next)) < 0)
				goto read_error;
			if (frame_parse(sc->buf + (next - w.base), (size_t)avail, &f))
				break;
		}
		if (next + FRAME_HEADER > w.size)
			next = w.size;
		if (next == w.size && newest) {
			/* Torn tail: the write of the last record(s) never finished. */
			uint64_t tail = w.size - off;
			sc->rd->torn_tail = true;
			free(sc->rd->tail_file);
			sc->rd->tail_file = xstrdup(path);
			sc->rd->tail_offset = off;
			sc->rd->tail_bytes = tail;
			if (sc->recover) {
				log_warn("%s: torn tail at offset %llu (%llu bytes) truncated",
					 path, (unsigned long long)off, (unsigned long long)tail);
				if (ftruncate(fd, (off_t)off) != 0) {
					rc = floe_error_set(err, -errno, "truncate %s to %llu: %s",
							    path, (unsigned long long)off,
							    strerror(errno));
					goto out;
				}
			} else {
				log_info("%s: torn tail at offset %llu (%llu bytes)", path,
					 (unsigned long long)off, (unsigned long long)tail);
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
	close(fd);
	return rc;
read_error:
	rc = floe_error_set(err, (int)avail, "read %s: %s", path, strerror((int)-avail));
	close(fd);
	return rc;
}

static void scan_destroy(struct scan *sc)
{
	map_destroy(&sc->seen);
	free(sc->buf);
	sc->buf = NULL;
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

int floe_ledger_read_until(const char *dir, const char *last_day, floe_ledger_record_cb cb,
			   void *opaque, floe_ledger_reader *rd, floe_error *err)
{
	memset(rd, 0, sizeof(*rd));
	struct seg_name *segs;
	size_t n;
	int rc = segs_list(dir, &segs, &n);
	if (rc < 0) {
		floe_error_set(err, rc, "list %s: %s", dir, strerror(-rc));
		return floe_error_wrap(err, "read of ledger %s failed", dir);
	}
	/* Only the newest segment of the whole ledger can have a torn tail
	 * (older ones were committed before the writer rotated): a segment
	 * that is newest only within the filter is judged as an older one. */
	size_t upto = n;
	if (last_day)
		while (upto > 0 && strncmp(segs[upto - 1].day, last_day, DAY_LEN) > 0)
			upto--;
	struct scan sc = { .rd = rd, .cb = cb, .opaque = opaque };
	for (size_t i = 0; i < upto && rc == 0 && sc.cb_rc == 0; i++)
		rc = scan_segment(&sc, segs[i].path, i + 1 == n, err);
	scan_destroy(&sc);
	segs_free(segs, n);
	if (rc < 0)
		return floe_error_wrap(err, "read of ledger %s failed", dir);
	return sc.cb_rc;
}

int floe_ledger_read(const char *dir, floe_ledger_record_cb cb, void *opaque,
		     floe_ledger_reader *rd, floe_error *err)
{
	return floe_ledger_read_until(dir, NULL, cb, opaque, rd, err);
}

/* ---- the writer --------------------------------------------------------- */

struct floe_ledger {
	char *dir;
	uint64_t segment_max;
	time_t (*now)(void *opaque);
	void *now_opaque;

	int fd;                     /* current segment, -1 until the first append */
	char day[DAY_LEN + 1];      /* its day */
	uint64_t off;               /* end of its last whole record */
	uint64_t committed_off;     /* end of its last durable record */
	char last_day[DAY_LEN + 1]; /* newest segment on disk ("" if none) */
	unsigned long last_n;

	uint64_t appended, committed, errors;
	size_t n_pending; /* records written since the last commit */
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

/* Forget the records written since the last commit: their fate on disk is
 * unknown, so the caller appends them again, and readers drop whichever
 * copies did reach the disk twice (same replica, seq not above the highest
 * read). */
static void discard_pending(floe_ledger *lg)
{
	if (lg->n_pending)
		log_warn("%s: %zu uncommitted record(s) discarded", lg->dir, lg->n_pending);
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
	put_le32(frame + 4, frame_crc(frame, plen));

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
	lg->n_pending++;
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

	/* Only the newest segment can hold records that were not committed (a
	 * writer commits before it rotates): recover it and nothing else, so an
	 * open costs the same with a day of segments as with a year. */
	floe_ledger_reader rd;
	memset(&rd, 0, sizeof(rd));
	struct seg_name *segs;
	size_t n;
	rc = segs_list(lg->dir, &segs, &n);
	if (rc < 0) {
		floe_error_set(err, rc, "list %s: %s", lg->dir, strerror(-rc));
	} else if (n) {
		memcpy(lg->last_day, segs[n - 1].day, sizeof(lg->last_day));
		lg->last_n = segs[n - 1].n;
		struct scan sc = { .rd = &rd, .recover = true };
		rc = scan_segment(&sc, segs[n - 1].path, true, err);
		scan_destroy(&sc);
	}
	segs_free(segs, n);
	if (rc < 0) {
		floe_ledger_reader_destroy(&rd);
		floe_ledger_close(lg);
		return floe_error_wrap(err, "recovery of ledger %s failed", opts->dir);
	}
	if (n)
		log_info("ledger %s: newest segment %s.%lu.seg: %llu records%s%s", lg->dir,
			 lg->last_day, lg->last_n, (unsigned long long)rd.records,
			 rd.torn_tail ? ", torn tail truncated" : "",
			 rd.incomplete ? ", damaged ranges skipped" : "");
	else
		log_info("ledger %s: empty", lg->dir);
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
	free(lg->dir);
	free(lg);
}
