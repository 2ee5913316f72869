/*
 * The usage ledger against real files in a fresh temporary directory:
 * round trip, idempotency, rotation, torn tails, bit flips, write errors
 * (RLIMIT_FSIZE), and the kill test (SIGKILL of a writer >= 200 times).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "ledger.h"
#include "log.h"
#include "xalloc.h"

static char tmp[64];
static char dir[128];

static void setup(void)
{
	floe_log_init(FLOE_LOG_ERROR, false); /* torn tails are expected here */
	strcpy(tmp, "/tmp/floe-ledger-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/ledger", tmp);
}

static void teardown(void)
{
	floe_rm_rf(tmp);
}

TestSuite(billing_ledger, .init = setup, .fini = teardown);

static time_t fake_now(void *opaque)
{
	return *(time_t *)opaque;
}

/* 2023-11-14T22:13:20Z */
static time_t clock_t0 = 1700000000;

static floe_ledger *open_ok(uint64_t seg_max, time_t *now, floe_ledger_reader *rec)
{
	floe_ledger_options o = { .dir = dir, .segment_max_bytes = seg_max };
	if (now) {
		o.now = fake_now;
		o.now_opaque = now;
	}
	floe_ledger *lg;
	floe_error err;
	int rc = floe_ledger_open(&o, &lg, rec, &err);
	cr_assert_eq(rc, 0, "open: %s", err.msg);
	return lg;
}

/* Caller payload: {"v": v}. */
static size_t payload(char *buf, size_t cap, uint64_t v)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "v", 1);
	msgpack_pack_uint64(&pk, v);
	cr_assert(sb.size <= cap);
	size_t n = sb.size;
	memcpy(buf, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static int append(floe_ledger *lg, const char *replica, uint64_t minute, uint32_t seq,
		  uint64_t *recno)
{
	char buf[64];
	size_t n = payload(buf, sizeof(buf), minute * 100000 + seq);
	floe_ledger_key k = { .replica = replica, .minute = minute, .seq = seq };
	return floe_ledger_append(lg, &k, buf, n, recno);
}

/* Collects what a read returns and checks each payload matches its key. */
struct seen {
	size_t n;
	char replica[4096][16];
	uint64_t minute[4096];
	uint32_t seq[4096];
};

static int collect(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct seen *s = opaque;
	char want[64];
	size_t wn = payload(want, sizeof(want), k->minute * 100000 + k->seq);
	cr_assert_eq(len, wn);
	cr_assert_eq(memcmp(data, want, len), 0, "payload of %s/%llu/%u", k->replica,
		     (unsigned long long)k->minute, k->seq);
	cr_assert(s->n < 4096);
	snprintf(s->replica[s->n], sizeof(s->replica[0]), "%s", k->replica);
	s->minute[s->n] = k->minute;
	s->seq[s->n] = k->seq;
	s->n++;
	return 0;
}

static void read_ok(struct seen *s, floe_ledger_reader *rd)
{
	floe_error err;
	memset(s, 0, sizeof(*s));
	int rc = floe_ledger_read(dir, collect, s, rd, &err);
	cr_assert_eq(rc, 0, "read: %s", err.msg);
}

static size_t count_segments(char names[][64], size_t max)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".seg")) {
			if (n < max)
				snprintf(names[n], 64, "%s", de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s", path);
	return (uint64_t)st.st_size;
}

static struct seen S;

Test(billing_ledger, round_trip_and_duplicates)
{
	floe_ledger *lg = open_ok(0, NULL, NULL);
	uint64_t rec = 0;
	for (uint32_t i = 1; i <= 100; i++) {
		cr_assert_eq(append(lg, "r1", 100, i, &rec), 0);
		cr_assert_eq(rec, i);
	}
	cr_assert_eq(floe_ledger_committed(lg), 0);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	cr_assert_eq(floe_ledger_committed(lg), 100);
	cr_assert_eq(append(lg, "r1", 100, 5, &rec), 1, "duplicate refused");
	cr_assert_eq(rec, 100);
	cr_assert_eq(append(lg, "", 100, 5, NULL), -EINVAL);
	floe_ledger_close(lg);

	floe_ledger_reader rec_rd;
	lg = open_ok(0, NULL, &rec_rd);
	cr_assert_eq(rec_rd.records, 100);
	cr_assert_not(rec_rd.incomplete);
	cr_assert_not(rec_rd.torn_tail);
	floe_ledger_reader_destroy(&rec_rd);
	cr_assert_eq(floe_ledger_committed(lg), 100);
	cr_assert(floe_ledger_contains(lg, &(floe_ledger_key){ "r1", 100, 42 }));
	cr_assert_eq(append(lg, "r1", 100, 42, NULL), 1, "duplicate across reopen");
	cr_assert_eq(append(lg, "r2", 100, 42, &rec), 0);
	cr_assert_eq(rec, 101);
	cr_assert_eq(floe_ledger_errors(lg), 0);
	floe_ledger_close(lg);

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 101);
	for (uint32_t i = 0; i < 100; i++) {
		cr_assert_str_eq(S.replica[i], "r1");
		cr_assert_eq(S.seq[i], i + 1);
	}
	cr_assert_str_eq(S.replica[100], "r2");
	cr_assert_eq(rd.duplicates, 0);
	cr_assert_not(rd.incomplete);
	floe_ledger_reader_destroy(&rd);
}

Test(billing_ledger, duplicate_on_disk_read_once)
{
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(0, &now, NULL);
	for (uint32_t i = 1; i <= 10; i++)
		cr_assert_eq(append(lg, "r1", 7, i, NULL), 0);
	floe_ledger_close(lg);
	/* A replayed segment (same records again, later in ledger order). */
	char src[256], dst[256], *data;
	size_t len;
	snprintf(src, sizeof(src), "%s/2023-11-14.0.seg", dir);
	snprintf(dst, sizeof(dst), "%s/2023-11-14.1.seg", dir);
	cr_assert_eq(floe_read_file(src, 1 << 20, &data, &len), 0);
	cr_assert_eq(floe_write_atomic(dst, data, len, 0644), 0);
	free(data);

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 10);
	cr_assert_eq(rd.duplicates, 10);
	cr_assert_not(rd.incomplete);
	floe_ledger_reader_destroy(&rd);
}

Test(billing_ledger, size_rotation)
{
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(1024, &now, NULL);
	for (uint32_t i = 1; i <= 200; i++)
		cr_assert_eq(append(lg, "replica-a", 9, i, NULL), 0);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	cr_assert_eq(floe_ledger_committed(lg), 200);
	floe_ledger_close(lg);

	char names[64][64];
	size_t n = count_segments(names, 64);
	cr_assert_gt(n, 5, "200 records of ~50 bytes in 1 KiB segments: %zu", n);
	for (size_t i = 0; i < n && i < 64; i++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		cr_assert_leq(file_size(p), 1024, "%s", names[i]);
		cr_assert_eq(strncmp(names[i], "2023-11-14.", 11), 0, "%s", names[i]);
	}
	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 200);
	for (uint32_t i = 0; i < 200; i++)
		cr_assert_eq(S.seq[i], i + 1, "in order across segments");
	cr_assert_eq(rd.segments, n);
	floe_ledger_reader_destroy(&rd);
}

Test(billing_ledger, day_rotation)
{
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(0, &now, NULL);
	cr_assert_eq(append(lg, "r", 1, 1, NULL), 0);
	now += 86400;
	cr_assert_eq(append(lg, "r", 1, 2, NULL), 0);
	now -= 2 * 86400; /* clock goes back: stays on the newest day */
	cr_assert_eq(append(lg, "r", 1, 3, NULL), 0);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	floe_ledger_close(lg);
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	cr_assert_gt(file_size(p), 0);
	snprintf(p, sizeof(p), "%s/2023-11-15.0.seg", dir);
	cr_assert_gt(file_size(p), 0);
	char names[8][64];
	cr_assert_eq(count_segments(names, 8), 2);

	/* A reopen starts segment N+1 of the (newest) day. */
	now = clock_t0 + 86400;
	lg = open_ok(0, &now, NULL);
	cr_assert_eq(append(lg, "r", 1, 4, NULL), 0);
	floe_ledger_close(lg);
	snprintf(p, sizeof(p), "%s/2023-11-15.1.seg", dir);
	cr_assert_gt(file_size(p), 0);
	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 4);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(S.seq[i], i + 1);
	floe_ledger_reader_destroy(&rd);
}

/* Writes n records (seq 1..n) into 2023-11-14.0.seg; returns its bytes and
 * the offsets where each record starts (offs[n] = size). */
static char *make_segment(uint32_t n, uint64_t *offs, size_t *len)
{
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(0, &now, NULL);
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	offs[0] = 0;
	for (uint32_t i = 1; i <= n; i++) {
		cr_assert_eq(append(lg, "r", 3, i, NULL), 0);
		offs[i] = file_size(p);
	}
	floe_ledger_close(lg);
	char *data;
	cr_assert_eq(floe_read_file(p, 1 << 20, &data, len), 0);
	return data;
}

static void put_segment(const char *data, size_t len)
{
	char p[256];
	floe_rm_rf(dir);
	cr_assert_eq(floe_mkdir_p(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	cr_assert_eq(floe_write_atomic(p, data, len, 0644), 0);
}

Test(billing_ledger, torn_tail_every_offset)
{
	uint64_t offs[6];
	size_t len;
	char *data = make_segment(5, offs, &len);
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	for (uint64_t cut = offs[4] + 1; cut < offs[5]; cut++) {
		put_segment(data, cut);
		floe_ledger_reader rec;
		time_t now = clock_t0;
		floe_ledger *lg = open_ok(0, &now, &rec);
		cr_assert_eq(rec.records, 4, "cut at %llu", (unsigned long long)cut);
		cr_assert(rec.torn_tail);
		cr_assert_eq(rec.tail_offset, offs[4]);
		cr_assert_eq(rec.tail_bytes, cut - offs[4]);
		cr_assert_eq(rec.n_damaged, 0);
		cr_assert_not(rec.incomplete);
		floe_ledger_reader_destroy(&rec);
		cr_assert_eq(file_size(p), offs[4], "tail truncated");
		cr_assert_eq(append(lg, "r", 3, 5, NULL), 0, "the lost record goes in again");
		cr_assert_eq(append(lg, "r", 3, 6, NULL), 0);
		cr_assert_eq(floe_ledger_commit(lg), 0);
		floe_ledger_close(lg);

		floe_ledger_reader rd;
		read_ok(&S, &rd);
		cr_assert_eq(S.n, 6);
		for (uint32_t i = 0; i < 6; i++)
			cr_assert_eq(S.seq[i], i + 1);
		cr_assert_not(rd.incomplete);
		cr_assert_not(rd.torn_tail);
		floe_ledger_reader_destroy(&rd);
	}
	free(data);
}

Test(billing_ledger, bit_flips_in_middle_record)
{
	uint64_t offs[8];
	size_t len;
	char *data = make_segment(7, offs, &len);
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	uint64_t from = offs[3], to = offs[4]; /* record seq 4 */
	for (uint64_t bit = from * 8; bit < to * 8; bit++) {
		data[bit / 8] ^= (char)(1u << (bit % 8));
		put_segment(data, len);
		floe_ledger_reader rd;
		read_ok(&S, &rd);
		cr_assert_eq(S.n, 6, "bit %llu", (unsigned long long)bit);
		uint32_t want[] = { 1, 2, 3, 5, 6, 7 };
		for (int i = 0; i < 6; i++)
			cr_assert_eq(S.seq[i], want[i]);
		cr_assert(rd.incomplete);
		cr_assert_eq(rd.n_damaged, 1);
		cr_assert_str_eq(rd.damaged[0].file, p);
		cr_assert_eq(rd.damaged[0].offset, from);
		cr_assert_eq(rd.damaged[0].length, to - from);
		cr_assert_not(rd.torn_tail);
		floe_ledger_reader_destroy(&rd);

		if (bit % 5 == 0) { /* sampled: recovery reports, never truncates */
			floe_ledger_reader rec;
			time_t now = clock_t0;
			floe_ledger *lg = open_ok(0, &now, &rec);
			cr_assert_eq(rec.records, 6);
			cr_assert_eq(rec.n_damaged, 1);
			cr_assert_eq(rec.damaged[0].offset, from);
			cr_assert_not(rec.torn_tail);
			floe_ledger_reader_destroy(&rec);
			floe_ledger_close(lg);
			cr_assert_eq(file_size(p), len);
		}
		data[bit / 8] ^= (char)(1u << (bit % 8));
	}
	free(data);
}

Test(billing_ledger, damage_in_older_segment_not_truncated)
{
	uint64_t offs[4];
	size_t len;
	char *data = make_segment(3, offs, &len);
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(0, &now, NULL);
	cr_assert_eq(append(lg, "r", 3, 9, NULL), 0); /* 2023-11-14.1.seg */
	floe_ledger_close(lg);
	/* Damage the last record of a segment that is not the newest. */
	data[offs[3] - 1] ^= 0x10;
	char seg0[256];
	snprintf(seg0, sizeof(seg0), "%s/2023-11-14.0.seg", dir);
	cr_assert_eq(floe_write_atomic(seg0, data, len, 0644), 0);
	floe_ledger_reader rec;
	lg = open_ok(0, &now, &rec);
	cr_assert_eq(rec.n_damaged, 1);
	cr_assert_not(rec.torn_tail);
	floe_ledger_reader_destroy(&rec);
	floe_ledger_close(lg);
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-14.0.seg", dir);
	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 3); /* seq 1, 2 and 9 */
	cr_assert(rd.incomplete);
	cr_assert_eq(rd.n_damaged, 1);
	cr_assert_str_eq(rd.damaged[0].file, p);
	cr_assert_eq(rd.damaged[0].offset, offs[2]);
	cr_assert_eq(file_size(p), len);
	floe_ledger_reader_destroy(&rd);
	free(data);
}

Test(billing_ledger, write_error_efbig)
{
	signal(SIGXFSZ, SIG_IGN);
	floe_ledger *lg = open_ok(0, NULL, NULL);
	struct rlimit old, lim;
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1000; /* bytes per file: about 20 records */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	uint32_t ok = 0;
	int rc = 0;
	for (uint32_t i = 1; i <= 1000; i++) {
		rc = append(lg, "r", 5, i, NULL);
		if (rc != 0)
			break;
		ok = i;
		if (i % 3 == 0)
			cr_assert_eq(floe_ledger_commit(lg), 0);
	}
	cr_assert_eq(rc, -EFBIG);
	cr_assert_gt(ok, 5);
	cr_assert_eq(floe_ledger_errors(lg), 1);
	cr_assert_eq(append(lg, "r", 5, ok + 1, NULL), -EFBIG, "still full");
	cr_assert_eq(floe_ledger_errors(lg), 2);
	cr_assert_eq(floe_ledger_commit(lg), 0, "the whole records before it commit");
	cr_assert_eq(floe_ledger_committed(lg), ok);
	cr_assert_not(floe_ledger_contains(lg, &(floe_ledger_key){ "r", 5, ok + 1 }));

	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(append(lg, "r", 5, ok + 1, NULL), 0, "retried once space is back");
	cr_assert_eq(floe_ledger_commit(lg), 0);
	floe_ledger_close(lg);

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, ok + 1);
	for (uint32_t i = 0; i <= ok; i++)
		cr_assert_eq(S.seq[i], i + 1);
	cr_assert_not(rd.incomplete);
	cr_assert_not(rd.torn_tail, "no partial frame left behind");
	floe_ledger_reader_destroy(&rd);
}

/* ---- kill test ----------------------------------------------------------- */

#define KILLS 220

struct runs {
	uint32_t count[KILLS + 1];
	uint32_t max[KILLS + 1];
	int bad;
};

static int check_kill_record(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct runs *r = opaque;
	int run;
	char tail;
	if (sscanf(k->replica, "w%d%c", &run, &tail) != 1 || run < 0 || run > KILLS ||
	    k->minute != 1 || k->seq == 0) {
		r->bad++;
		return 0;
	}
	/* The payload is {"seq": seq} as the writer packed it. */
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
	    u.data.type != MSGPACK_OBJECT_MAP || u.data.via.map.size != 1 ||
	    u.data.via.map.ptr[0].val.via.u64 != k->seq)
		r->bad++;
	msgpack_unpacked_destroy(&u);
	r->count[run]++;
	if (k->seq > r->max[run])
		r->max[run] = k->seq;
	return 0;
}

Test(billing_ledger, kill_test, .timeout = 110)
{
	const char *bd = getenv("FLOE_BUILD_DIR");
	cr_assert_not_null(bd, "FLOE_BUILD_DIR not set (run through meson test)");
	char *writer = xasprintf("%s/tests/ledger_writer", bd);
	cr_assert_eq(access(writer, X_OK), 0, "%s", writer);
	static struct runs R;
	uint32_t acked[KILLS + 1] = { 0 }, stored[KILLS + 1] = { 0 };
	unsigned seed = 12345;
	uint64_t total_acked = 0;
	int torn = 0;

	for (int run = 1; run <= KILLS; run++) {
		int pfd[2];
		cr_assert_eq(pipe(pfd), 0);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			dup2(pfd[1], 1);
			close(pfd[0]);
			close(pfd[1]);
			char id[16];
			snprintf(id, sizeof(id), "w%d", run);
			execl(writer, writer, dir, id, "8", (char *)NULL);
			_exit(127);
		}
		close(pfd[1]);
		long us = rand_r(&seed) % 30001;
		nanosleep(&(struct timespec){ us / 1000000, (us % 1000000) * 1000 }, NULL);
		cr_assert_eq(kill(pid, SIGKILL), 0);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			  "writer run %d ended on its own (status %d)", run, st);

		/* The acknowledged stream: complete lines only. */
		char buf[1 << 16];
		size_t n = 0;
		ssize_t r;
		while (n < sizeof(buf) - 1 && (r = read(pfd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
			n += (size_t)r;
		close(pfd[0]);
		buf[n] = '\0';
		char *end = strrchr(buf, '\n');
		if (end) {
			*end = '\0';
			char *last = strrchr(buf, '\n');
			acked[run] = (uint32_t)strtoul(last ? last + 1 : buf, NULL, 10);
		}
		total_acked += acked[run];

		/* Recovery: clean apart from a torn tail. */
		floe_ledger_reader rec;
		floe_ledger *lg = open_ok(0, NULL, &rec);
		cr_assert_eq(rec.n_damaged, 0, "run %d: damage after a kill", run);
		torn += rec.torn_tail;
		floe_ledger_reader_destroy(&rec);
		floe_ledger_close(lg);

		floe_ledger_reader rd;
		floe_error err;
		memset(&R, 0, sizeof(R));
		cr_assert_eq(floe_ledger_read(dir, check_kill_record, &R, &rd, &err), 0, "%s",
			     err.msg);
		cr_assert_eq(R.bad, 0, "run %d: a record that no writer wrote", run);
		cr_assert_eq(rd.duplicates, 0);
		cr_assert_not(rd.incomplete);
		cr_assert_not(rd.torn_tail, "recovery truncated it");
		floe_ledger_reader_destroy(&rd);
		for (int w = 1; w <= KILLS; w++) {
			/* Exactly seq 1..K once each, K >= acknowledged. */
			cr_assert_eq(R.count[w], R.max[w], "run %d writer %d: gap", run, w);
			cr_assert_geq(R.max[w], acked[w], "run %d writer %d: acked %u, stored %u",
				      run, w, acked[w], R.max[w]);
			if (w < run)
				cr_assert_eq(R.max[w], stored[w], "writer %d changed later", w);
			if (w > run)
				cr_assert_eq(R.count[w], 0);
		}
		stored[run] = R.max[run];
	}
	cr_log_info("kill test: %d kills, %llu records acknowledged, %d torn tails", KILLS,
		    (unsigned long long)total_acked, torn);
	cr_assert_gt(total_acked, 0);
	free(writer);
}
