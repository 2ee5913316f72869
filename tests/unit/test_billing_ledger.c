/*
 * The usage ledger against real files in a fresh temporary directory:
 * round trip, duplicates by per-replica seq, rotation, open() reading only
 * the newest segment, torn tails, bit flips, malformed frames, write errors
 * (RLIMIT_FSIZE), the kill test (SIGKILL of a writer >= 200 times) and a
 * read of a realistic ledger (also a benchmark: FLOE_LEDGER_BENCH).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
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

Test(billing_ledger, round_trip_and_numbering)
{
	floe_ledger *lg = open_ok(0, NULL, NULL);
	uint64_t rec = 0;
	for (uint32_t i = 1; i <= 100; i++) {
		cr_assert_eq(append(lg, "r1", 100, i, &rec), 0);
		cr_assert_eq(rec, i);
	}
	cr_assert_eq(floe_ledger_appended(lg), 100);
	cr_assert_eq(floe_ledger_committed(lg), 0);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	cr_assert_eq(floe_ledger_committed(lg), 100);
	cr_assert_eq(append(lg, "", 100, 5, NULL), -EINVAL);
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(append(lg, big, 100, 5, NULL), -EINVAL, "replica over 255 bytes");
	floe_ledger_close(lg);

	/* Numbers start again at each open. */
	floe_ledger_reader rec_rd;
	lg = open_ok(0, NULL, &rec_rd);
	cr_assert_eq(rec_rd.records, 100);
	cr_assert_eq(rec_rd.segments, 1);
	cr_assert_not(rec_rd.incomplete);
	cr_assert_not(rec_rd.torn_tail);
	floe_ledger_reader_destroy(&rec_rd);
	cr_assert_eq(floe_ledger_committed(lg), 0);
	cr_assert_eq(floe_ledger_appended(lg), 0);
	cr_assert_eq(append(lg, "r2", 100, 1, &rec), 0);
	cr_assert_eq(rec, 1);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	cr_assert_eq(floe_ledger_committed(lg), 1);
	cr_assert_eq(floe_ledger_errors(lg), 0);
	floe_ledger_close(lg);

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 101);
	for (uint32_t i = 0; i < 100; i++) {
		cr_assert_str_eq(S.replica[i], "r1");
		cr_assert_eq(S.minute[i], 100);
		cr_assert_eq(S.seq[i], i + 1);
	}
	cr_assert_str_eq(S.replica[100], "r2");
	cr_assert_eq(S.seq[100], 1);
	cr_assert_eq(rd.records, 101);
	cr_assert_eq(rd.segments, 2);
	cr_assert_eq(rd.duplicates, 0);
	cr_assert_not(rd.incomplete);
	floe_ledger_reader_destroy(&rd);
}

Test(billing_ledger, reappended_batch_read_once)
{
	floe_ledger *lg = open_ok(0, NULL, NULL);
	/* r1: 1..5, then 4 and 5 again (a batch re-appended after a commit
	 * reported failure although its first copy reached the disk). r2's seq
	 * space is independent: its 1..6 interleave with r1's, and r2's 4 and 5
	 * are new although r1 already had 4 and 5. */
	cr_assert_eq(append(lg, "r2", 7, 1, NULL), 0);
	for (uint32_t i = 1; i <= 5; i++)
		cr_assert_eq(append(lg, "r1", 7, i, NULL), 0);
	cr_assert_eq(append(lg, "r2", 7, 2, NULL), 0);
	cr_assert_eq(append(lg, "r2", 7, 3, NULL), 0);
	cr_assert_eq(append(lg, "r1", 7, 4, NULL), 0, "the writer always writes");
	cr_assert_eq(append(lg, "r1", 7, 5, NULL), 0);
	cr_assert_eq(append(lg, "r2", 7, 4, NULL), 0);
	cr_assert_eq(append(lg, "r2", 7, 5, NULL), 0);
	cr_assert_eq(append(lg, "r1", 8, 6, NULL), 0);
	cr_assert_eq(append(lg, "r2", 7, 2, NULL), 0, "an old seq of r2 comes back");
	cr_assert_eq(append(lg, "r2", 8, 6, NULL), 0);
	cr_assert_eq(floe_ledger_commit(lg), 0);
	cr_assert_eq(floe_ledger_committed(lg), 15, "every append was written");
	floe_ledger_close(lg);
	/* And the same replica continuing in a later segment (a reopen). */
	lg = open_ok(0, NULL, NULL);
	cr_assert_eq(append(lg, "r1", 8, 6, NULL), 0);
	cr_assert_eq(append(lg, "r1", 8, 7, NULL), 0);
	floe_ledger_close(lg);

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	const char *want_r[] = { "r2", "r1", "r1", "r1", "r1", "r1", "r2",
				 "r2", "r2", "r2", "r1", "r2", "r1" };
	uint32_t want_s[] = { 1, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 6, 7 };
	cr_assert_eq(S.n, 13);
	for (size_t i = 0; i < 13; i++) {
		cr_assert_str_eq(S.replica[i], want_r[i], "record %zu", i);
		cr_assert_eq(S.seq[i], want_s[i], "record %zu", i);
	}
	cr_assert_eq(rd.records, 13);
	cr_assert_eq(rd.duplicates, 4, "r1 4, 5 and 6, r2 2");
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

Test(billing_ledger, open_reads_only_the_newest_segment)
{
	/* Many old segments (1 KiB each), one of them damaged in the middle. */
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(1024, &now, NULL);
	for (uint32_t i = 1; i <= 600; i++)
		cr_assert_eq(append(lg, "replica-a", 9, i, NULL), 0);
	floe_ledger_close(lg);
	now += 86400; /* the newest segment: 2023-11-15.0.seg */
	lg = open_ok(1024, &now, NULL);
	for (uint32_t i = 601; i <= 605; i++)
		cr_assert_eq(append(lg, "replica-a", 9, i, NULL), 0);
	floe_ledger_close(lg);
	char names[256][64];
	size_t nseg = count_segments(names, 256);
	cr_assert_gt(nseg, 20, "%zu segments", nseg);
	char old[256], *data;
	size_t len;
	snprintf(old, sizeof(old), "%s/2023-11-14.10.seg", dir);
	cr_assert_eq(floe_read_file(old, 1 << 20, &data, &len), 0);
	cr_assert_gt(len, 200);
	data[100] ^= 0x01;
	cr_assert_eq(floe_write_atomic(old, data, len, 0644), 0);
	free(data);

	floe_ledger_reader rec;
	lg = open_ok(1024, &now, &rec);
	cr_assert_eq(rec.segments, 1, "open read one segment");
	cr_assert_eq(rec.records, 5, "the newest segment's records");
	cr_assert_eq(rec.n_damaged, 0, "open says nothing about old damage");
	cr_assert_not(rec.incomplete);
	cr_assert_not(rec.torn_tail);
	floe_ledger_reader_destroy(&rec);
	cr_assert_eq(append(lg, "replica-a", 9, 606, NULL), 0);
	floe_ledger_close(lg);
	cr_assert_eq(file_size(old), len, "old segment untouched");
	char p[256];
	snprintf(p, sizeof(p), "%s/2023-11-15.1.seg", dir);
	cr_assert_gt(file_size(p), 0, "the reopen started a new segment after the newest");

	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert(rd.incomplete);
	cr_assert_eq(rd.n_damaged, 1);
	cr_assert_str_eq(rd.damaged[0].file, old);
	cr_assert_leq(rd.damaged[0].offset, 100);
	cr_assert_gt(rd.damaged[0].offset + rd.damaged[0].length, 100);
	cr_assert_eq(rd.segments, nseg + 1);
	cr_assert_eq(S.n, 605, "606 records, the damaged one skipped");
	cr_assert_eq(S.seq[S.n - 1], 606);
	cr_assert_not(rd.torn_tail);
	floe_ledger_reader_destroy(&rd);
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
	/* Damage the last record of a segment that is not the newest: not a
	 * torn tail, since records follow it in a later segment. */
	data[offs[3] - 1] ^= 0x10;
	char seg0[256];
	snprintf(seg0, sizeof(seg0), "%s/2023-11-14.0.seg", dir);
	cr_assert_eq(floe_write_atomic(seg0, data, len, 0644), 0);
	floe_ledger_reader rec;
	lg = open_ok(0, &now, &rec);
	cr_assert_eq(rec.n_damaged, 0);
	cr_assert_not(rec.torn_tail);
	floe_ledger_reader_destroy(&rec);
	floe_ledger_close(lg);
	floe_ledger_reader rd;
	read_ok(&S, &rd);
	cr_assert_eq(S.n, 3); /* seq 1, 2 and 9 */
	cr_assert(rd.incomplete);
	cr_assert_eq(rd.n_damaged, 1);
	cr_assert_str_eq(rd.damaged[0].file, seg0);
	cr_assert_eq(rd.damaged[0].offset, offs[2]);
	cr_assert_eq(rd.damaged[0].length, offs[3] - offs[2]);
	cr_assert_not(rd.torn_tail);
	cr_assert_eq(file_size(seg0), len);
	floe_ledger_reader_destroy(&rd);
	free(data);
}

Test(billing_ledger, read_until_day)
{
	time_t now = clock_t0; /* 2023-11-14 */
	floe_ledger *lg = open_ok(0, &now, NULL);
	cr_assert_eq(append(lg, "r", 1, 1, NULL), 0);
	now += 86400;
	cr_assert_eq(append(lg, "r", 1, 2, NULL), 0);
	now += 2 * 86400;
	cr_assert_eq(append(lg, "r", 1, 3, NULL), 0);
	floe_ledger_close(lg);
	/* A partial record at the end of the newest segment. */
	char newest[256];
	snprintf(newest, sizeof(newest), "%s/2023-11-17.0.seg", dir);
	int fd = open(newest, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "\x20\0\0\0xx", 6), 6);
	close(fd);

	const char *days[] = { "2023-11-13", "2023-11-14", "2023-11-16", "2023-11-17", NULL };
	size_t want[] = { 0, 1, 2, 3, 3 };
	for (int i = 0; i < 5; i++) {
		floe_ledger_reader rd;
		floe_error err;
		memset(&S, 0, sizeof(S));
		cr_assert_eq(floe_ledger_read_until(dir, days[i], collect, &S, &rd, &err), 0, "%s",
			     err.msg);
		cr_assert_eq(S.n, want[i], "until %s", days[i] ? days[i] : "(all)");
		cr_assert_eq(rd.segments, want[i]);
		for (size_t j = 0; j < S.n; j++)
			cr_assert_eq(S.seq[j], j + 1);
		cr_assert_eq(rd.torn_tail, want[i] == 3, "only the newest segment has a tail");
		cr_assert_not(rd.incomplete);
		floe_ledger_reader_destroy(&rd);
	}
}

/* ---- malformed frames with a valid CRC ----------------------------------- */

/* A frame around payload p (n bytes), with a correct length and CRC. */
static size_t frame_of(unsigned char *out, const unsigned char *p, size_t n)
{
	out[0] = n & 0xff;
	out[1] = (n >> 8) & 0xff;
	out[2] = (n >> 16) & 0xff;
	out[3] = (n >> 24) & 0xff;
	uint32_t crc = floe_crc32c(floe_crc32c(0, out, 4), p, n);
	for (int i = 0; i < 4; i++)
		out[4 + i] = (crc >> (8 * i)) & 0xff;
	memcpy(out + 8, p, n);
	return n + 8;
}

struct mp_case {
	const char *what;
	size_t n;
	const char *bytes;
	bool valid;
	uint32_t seq;
};

#define MP(s) sizeof(s) - 1, s
/* Keys in msgpack: fixstr headers a7 "replica", a6 "minute", a3 "seq", a4 "data". */
#define K_REPLICA "\xa7replica"
#define K_MINUTE "\xa6minute"
#define K_SEQ "\xa3seq"
#define K_DATA \
	"\xa4" \
	"data"
#define V_DATA "\xc4\x01\x2a" /* bin 8, one byte */

static const struct mp_case mp_cases[] = {
	{ "canonical", MP("\x84" K_REPLICA "\xa1r" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA),
	  true, 1 },
	{ "other order, map16, str8 key, uint16 seq, int8 minute",
	  MP("\xde\x00\x04" K_DATA V_DATA K_SEQ "\xcd\x00\x02"
	     "\xd9\x07replica\xa1r" K_MINUTE "\xd0\x05"),
	  true, 2 },
	{ "uint32 seq max",
	  MP("\x84" K_REPLICA "\xa1r" K_MINUTE "\x05" K_SEQ "\xce\xff\xff\xff\xff" K_DATA V_DATA),
	  true, UINT32_MAX },
	{ "seq over 32 bits",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ
	     "\xcf\x00\x00\x00\x01\x00\x00\x00\x00" K_DATA V_DATA),
	  false, 0 },
	{ "negative minute",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\xff" K_SEQ "\x01" K_DATA V_DATA), false, 0 },
	{ "negative int8 seq",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\xd0\x80" K_DATA V_DATA), false, 0 },
	{ "three keys", MP("\x83" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01"), false, 0 },
	{ "five keys",
	  MP("\x85" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA "\xa1x\x01"),
	  false, 0 },
	{ "key twice", MP("\x84" K_REPLICA "\xa1q" K_SEQ "\x05" K_SEQ "\x01" K_DATA V_DATA), false,
	  0 },
	{ "unknown key",
	  MP("\x84" K_REPLICA "\xa1q"
	     "\xa6minutf\x05" K_SEQ "\x01" K_DATA V_DATA),
	  false, 0 },
	{ "empty replica", MP("\x84" K_REPLICA "\xa0" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA),
	  false, 0 },
	{ "NUL in replica",
	  MP("\x84" K_REPLICA "\xa2q\x00" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA), false, 0 },
	{ "replica not a str",
	  MP("\x84" K_REPLICA "\xc4\x01q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA), false, 0 },
	{ "data not bin", MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA "\xa1*"),
	  false, 0 },
	{ "empty data", MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA "\xc4\x00"),
	  false, 0 },
	{ "data longer than the payload",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA "\xc4\x09\x2a"), false,
	  0 },
	{ "str16 replica cut short", MP("\x84" K_REPLICA "\xda\x00"), false, 0 },
	{ "trailing byte",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ "\x01" K_DATA V_DATA "\xc0"), false,
	  0 },
	{ "not a map", MP("\x94\x01\x02\x03\x04"), false, 0 },
	{ "float seq",
	  MP("\x84" K_REPLICA "\xa1q" K_MINUTE "\x05" K_SEQ
	     "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00" K_DATA V_DATA),
	  false, 0 },
};

static int collect_raw(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct seen *s = opaque;
	cr_assert(s->n < 4096);
	cr_assert_eq(len, 1);
	cr_assert_eq(*(const unsigned char *)data, 0x2a);
	snprintf(s->replica[s->n], sizeof(s->replica[0]), "%s", k->replica);
	s->minute[s->n] = k->minute;
	s->seq[s->n] = k->seq;
	s->n++;
	return 0;
}

Test(billing_ledger, malformed_frames_rejected)
{
	/* Each case between two good frames, in a segment of its own. The
	 * frame's CRC is right, so only the payload's shape can reject it. */
	const struct mp_case *good = &mp_cases[0];
	for (size_t i = 0; i < sizeof(mp_cases) / sizeof(mp_cases[0]); i++) {
		const struct mp_case *c = &mp_cases[i];
		unsigned char seg[512];
		size_t n = frame_of(seg, (const unsigned char *)good->bytes, good->n);
		size_t at = n;
		n += frame_of(seg + n, (const unsigned char *)c->bytes, c->n);
		size_t bad_len = n - at;
		/* seq 3 of "r" follows, so a valid case (seq 1..2) is not a duplicate
		 * of the first frame only when its seq is above 1. */
		unsigned char tail[64];
		memcpy(tail, good->bytes, good->n);
		cr_assert_eq(tail[good->n - 9], 0x01); /* the seq byte */
		tail[good->n - 9] = 0x7f;
		n += frame_of(seg + n, tail, good->n);
		put_segment((const char *)seg, n);

		floe_ledger_reader rd;
		floe_error err;
		memset(&S, 0, sizeof(S));
		cr_assert_eq(floe_ledger_read(dir, collect_raw, &S, &rd, &err), 0, "%s", err.msg);
		if (c->valid) {
			cr_assert_eq(rd.n_damaged, 0, "%s: rejected", c->what);
			cr_assert_eq(rd.records + rd.duplicates, 3, "%s", c->what);
			/* seq 1 repeats the first frame; seq >= 127 makes the last one old */
			size_t want = 1 + (c->seq > 1) + (c->seq < 0x7f);
			cr_assert_eq(S.n, want, "%s", c->what);
			cr_assert_eq(rd.duplicates, 3 - want, "%s", c->what);
			if (c->seq > 1) {
				cr_assert_eq(S.seq[1], c->seq, "%s", c->what);
				cr_assert_eq(S.minute[1], 5, "%s", c->what);
				cr_assert_str_eq(S.replica[1], "r", "%s", c->what);
			}
		} else {
			cr_assert_eq(rd.n_damaged, 1, "%s: accepted", c->what);
			cr_assert_eq(rd.damaged[0].offset, at, "%s", c->what);
			cr_assert_eq(rd.damaged[0].length, bad_len, "%s", c->what);
			cr_assert_eq(S.n, 2, "%s", c->what);
			cr_assert_eq(S.seq[0], 1);
			cr_assert_eq(S.seq[1], 0x7f);
			cr_assert(rd.incomplete);
		}
		cr_assert_not(rd.torn_tail, "%s", c->what);
		floe_ledger_reader_destroy(&rd);
	}
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

/* 220 kills in CI; FLOE_LEDGER_KILLS=N for a longer run (scripts/bench/ledger). */
#define KILLS_DEFAULT 220
#define KILLS_MAX 100000

struct runs {
	int kills;
	uint32_t *count; /* [kills + 1] */
	uint32_t *max;
	int bad;
};

static int check_kill_record(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct runs *r = opaque;
	int run;
	char tail;
	if (sscanf(k->replica, "w%d%c", &run, &tail) != 1 || run < 0 || run > r->kills ||
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

Test(billing_ledger, kill_test, .timeout = 3600)
{
	const char *ke = getenv("FLOE_LEDGER_KILLS");
	int KILLS = ke ? atoi(ke) : KILLS_DEFAULT;
	cr_assert(KILLS >= 1 && KILLS <= KILLS_MAX, "FLOE_LEDGER_KILLS: 1..%d", KILLS_MAX);
	const char *bd = getenv("FLOE_BUILD_DIR");
	cr_assert_not_null(bd, "FLOE_BUILD_DIR not set (run through meson test)");
	char *writer = xasprintf("%s/tests/ledger_writer", bd);
	cr_assert_eq(access(writer, X_OK), 0, "%s", writer);
	struct runs R = { .kills = KILLS };
	uint32_t *acked = xcalloc((size_t)KILLS + 1, sizeof(uint32_t));
	uint32_t *stored = xcalloc((size_t)KILLS + 1, sizeof(uint32_t));
	R.count = xcalloc((size_t)KILLS + 1, sizeof(uint32_t));
	R.max = xcalloc((size_t)KILLS + 1, sizeof(uint32_t));
	unsigned seed = 12345;
	uint64_t total_acked = 0, dups = 0;
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
		/* Odd runs are killed at a random moment from their start (open
		 * and recovery included); even runs once they have committed
		 * something, so that kills land mid-stream even where starting
		 * the writer takes longer than the random delay (sanitizers). */
		char buf[1 << 16];
		size_t n = 0;
		ssize_t r;
		if (run % 2 == 0) {
			struct pollfd pp = { .fd = pfd[0], .events = POLLIN };
			cr_assert_eq(poll(&pp, 1, 10000), 1, "run %d: no commit in 10 s", run);
			r = read(pfd[0], buf, sizeof(buf) - 1);
			cr_assert_gt(r, 0);
			n = (size_t)r;
		}
		long us = rand_r(&seed) % 30001;
		nanosleep(&(struct timespec){ us / 1000000, (us % 1000000) * 1000 }, NULL);
		cr_assert_eq(kill(pid, SIGKILL), 0);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			  "writer run %d ended on its own (status %d)", run, st);

		/* The acknowledged stream: complete lines only. */
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
		memset(R.count, 0, ((size_t)KILLS + 1) * sizeof(uint32_t));
		memset(R.max, 0, ((size_t)KILLS + 1) * sizeof(uint32_t));
		R.bad = 0;
		cr_assert_eq(floe_ledger_read(dir, check_kill_record, &R, &rd, &err), 0, "%s",
			     err.msg);
		cr_assert_eq(R.bad, 0, "run %d: a record that no writer wrote", run);
		dups = rd.duplicates; /* re-appended batches: each seq is returned once */
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
	cr_log_info("kill test: %d kills, %llu records acknowledged, %d torn tails, %llu "
		    "re-appended copies skipped",
		    KILLS, (unsigned long long)total_acked, torn, (unsigned long long)dups);
	cr_assert_gt(total_acked, 0);
	cr_assert_gt(dups, 0, "the writers' re-appended batches reached the ledger");
	free(writer);
	free(acked);
	free(stored);
	free(R.count);
	free(R.max);
}

/* ---- read throughput ----------------------------------------------------- */

/*
 * A realistic ledger: replica names of ~20 bytes ("ep-NNNNNN-x@5f2c9a1e"),
 * payloads of 60-100 bytes shaped like usage records, records of many
 * replicas interleaved. Small by default (a correctness check of the read
 * path on realistic data); FLOE_LEDGER_BENCH=N writes N records over
 * N*7/20 replicas and logs floe_ledger_read's records/s (never asserted).
 */
struct bench_sum {
	uint64_t n, bytes, seq_sum;
};

static int bench_cb(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct bench_sum *s = opaque;
	s->n++;
	s->bytes += len;
	s->seq_sum += k->seq;
	return 0;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(billing_ledger, read_realistic_ledger, .timeout = 600)
{
	const char *env = getenv("FLOE_LEDGER_BENCH");
	uint64_t n = env ? strtoull(env, NULL, 10) : 20000;
	uint64_t n_replicas = n * 7 / 20;
	cr_assert_gt(n_replicas, 0);
	uint32_t *seqs = xcalloc(n_replicas, sizeof(*seqs));
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(0, &now, NULL);
	uint64_t rng = 0x9e3779b97f4a7c15ull, seq_sum = 0;
	double t0 = mono_s();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = xorshift(&rng) % n_replicas;
		char replica[32];
		snprintf(replica, sizeof(replica), "ep-%06llu-x@5f2c9a1e", (unsigned long long)r);
		uint32_t seq = ++seqs[r];
		seq_sum += seq;
		/* {"k": kind, "t": ms, "state": s, "endpoint": e, "pad": 0..32 bytes} */
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 5);
		msgpack_pack_str_with_body(&pk, "k", 1);
		msgpack_pack_str_with_body(&pk, "state", 5);
		msgpack_pack_str_with_body(&pk, "t", 1);
		msgpack_pack_uint64(&pk, 1700000000000ull + i * 1000);
		msgpack_pack_str_with_body(&pk, "state", 5);
		msgpack_pack_str_with_body(&pk, "running", 7);
		msgpack_pack_str_with_body(&pk, "endpoint", 8);
		msgpack_pack_str_with_body(&pk, "default/chat-model", 18);
		static const char pad[40];
		size_t pl = xorshift(&rng) % 33;
		msgpack_pack_str_with_body(&pk, "pad", 3);
		msgpack_pack_bin_with_body(&pk, pad, pl);
		cr_assert(sb.size >= 60 && sb.size <= 100, "payload %zu bytes", sb.size);
		floe_ledger_key k = { .replica = replica,
				      .minute = 28333333 + i / 1000,
				      .seq = seq };
		cr_assert_eq(floe_ledger_append(lg, &k, sb.data, sb.size, NULL), 0);
		msgpack_sbuffer_destroy(&sb);
		if (i % 1000 == 999)
			cr_assert_eq(floe_ledger_commit(lg), 0);
	}
	floe_ledger_close(lg);
	double t_write = mono_s() - t0;
	uint64_t distinct = 0;
	for (uint64_t r = 0; r < n_replicas; r++)
		distinct += seqs[r] != 0;
	free(seqs);

	double best = 0;
	for (int pass = 0; pass < (env ? 3 : 1); pass++) {
		struct bench_sum s = { 0 };
		floe_ledger_reader rd;
		floe_error err;
		t0 = mono_s();
		cr_assert_eq(floe_ledger_read(dir, bench_cb, &s, &rd, &err), 0, "%s", err.msg);
		double t = mono_s() - t0;
		cr_assert_eq(s.n, n);
		cr_assert_eq(s.seq_sum, seq_sum);
		cr_assert_eq(rd.records, n);
		cr_assert_eq(rd.duplicates, 0);
		cr_assert_not(rd.incomplete);
		if (env)
			fprintf(stderr,
				"ledger read: %llu records (%llu replicas, %llu segments, %.1f MB "
				"payload) in %.3f s: %.0f records/s\n",
				(unsigned long long)n, (unsigned long long)distinct,
				(unsigned long long)rd.segments, (double)s.bytes / 1e6, t,
				(double)n / t);
		floe_ledger_reader_destroy(&rd);
		if (best == 0 || t < best)
			best = t;
	}
	if (env)
		fprintf(stderr, "ledger write: %.1f s; best read %.0f records/s\n", t_write,
			(double)n / best);
}

/* ---- the pipelined reader ------------------------------------------------ */

/* Everything a callback sees, in order, as one stream of bytes. */
struct trace {
	struct floe_buf b;
	uint32_t next_index; /* indexes must come densely, in order of first appearance */
	bool index_ok;
	int stop_after; /* return 1 after this many records (0: never) */
	int seen;
};

static int trace_cb(const floe_ledger_key *k, const void *data, size_t len, void *opaque)
{
	struct trace *t = opaque;
	floe_buf_printf(&t->b, "%s|%llu|%u|%u|%zu|", k->replica, (unsigned long long)k->minute,
			k->seq, k->index, len);
	floe_buf_append(&t->b, data, len);
	if (k->index == t->next_index)
		t->next_index++;
	else if (k->index > t->next_index)
		t->index_ok = false;
	return t->stop_after && ++t->seen == t->stop_after ? 7 : 0;
}

/*
 * Several segments (one damaged in the middle), re-appended copies, and
 * more than the pipe's chunks hold: the pipelined read gives the callback
 * the same records in the same order, and the same report, as the plain
 * read; a callback that stops is obeyed.
 */
Test(billing_ledger, pipelined_read_equals_read)
{
	time_t now = clock_t0;
	floe_ledger *lg = open_ok(512 * 1024, &now, NULL);
	floe_error err;
	char payload[300];
	memset(payload, 0xa5, sizeof(payload));
	uint32_t seqs[50] = { 0 };
	for (int i = 0; i < 30000; i++) {
		char replica[32];
		int r = (i * 7) % 50;
		snprintf(replica, sizeof(replica), "rep-%d@cafe", r);
		floe_ledger_key k = { .replica = replica,
				      .minute = 1000 + (uint64_t)i / 100,
				      .seq = ++seqs[r] };
		cr_assert_eq(floe_ledger_append(lg, &k, payload, 20 + (size_t)(i % 250), NULL), 0);
		if (i % 1000 == 999) {
			/* a retried batch: the same records again */
			k.seq = seqs[r];
			cr_assert_eq(
				floe_ledger_append(lg, &k, payload, 20 + (size_t)(i % 250), NULL),
				0);
			cr_assert_eq(floe_ledger_commit(lg), 0);
		}
	}
	floe_ledger_close(lg);
	char names[64][64];
	size_t n_segs = count_segments(names, 64);
	cr_assert_gt(n_segs, 3, "several segments");
	qsort(names, n_segs, 64, (int (*)(const void *, const void *))strcmp);
	/* A flipped bit in the middle of the second segment: damage, skipped. */
	char *path = xasprintf("%s/%s", dir, names[1]);
	FILE *f = fopen(path, "r+");
	cr_assert_not_null(f);
	fseek(f, 5000, SEEK_SET);
	int ch = fgetc(f);
	fseek(f, 5000, SEEK_SET);
	fputc(ch ^ 0x08, f);
	fclose(f);
	free(path);

	struct trace a = { .index_ok = true }, b = { .index_ok = true };
	floe_ledger_reader ra, rb;
	cr_assert_eq(floe_ledger_read(dir, trace_cb, &a, &ra, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_ledger_read_pipelined(dir, trace_cb, &b, &rb, &err), 0, "%s", err.msg);
	cr_assert_eq(a.b.len, b.b.len);
	cr_assert(memcmp(a.b.data, b.b.data, a.b.len) == 0, "different records or order");
	cr_assert(a.index_ok && b.index_ok, "replica indexes not dense in first-appearance order");
	cr_assert_eq(a.next_index, 50);
	cr_assert_eq(ra.records, rb.records);
	cr_assert_eq(ra.duplicates, rb.duplicates);
	cr_assert_gt(rb.duplicates, 0);
	cr_assert(ra.incomplete && rb.incomplete);
	cr_assert_eq(ra.n_damaged, rb.n_damaged);
	cr_assert_eq(rb.damaged[0].offset, ra.damaged[0].offset);
	floe_ledger_reader_destroy(&ra);
	floe_ledger_reader_destroy(&rb);
	floe_buf_destroy(&a.b);
	floe_buf_destroy(&b.b);

	struct trace c = { .index_ok = true, .stop_after = 12345 };
	cr_assert_eq(floe_ledger_read_pipelined(dir, trace_cb, &c, &rb, &err), 7);
	cr_assert_eq(c.seen, 12345, "records after the callback stopped");
	floe_ledger_reader_destroy(&rb);
	floe_buf_destroy(&c.b);
}
