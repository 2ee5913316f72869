/*
 * Ledger benchmark (driven by scripts/bench/ledger; see it for the scenario).
 *
 *   ledger_bench month DIR      write the synthetic month into DIR (a ledger)
 *   ledger_bench export DIR     time the export of DIR's month, with baselines
 *   ledger_bench append DIR N   append throughput of N records, with baselines
 *
 * Everything goes through the real code: floe_record_encode,
 * floe_ledger_append/commit, floe_ledger_read, floe_export_*.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "ledger.h"
#include "log.h"
#include "record.h"

#define MIN_MS UINT64_C(60000)
#define MONTH_START UINT64_C(1793491200000) /* 2026-11-01T00:00:00Z */
#define MONTH_DAYS 30
#define N_ENDPOINTS 1000
#define CRASH_AT (MONTH_START + UINT64_C(16) * 86400000 + UINT64_C(12) * 3600000 + 4321)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: a fixed seed makes the month the same on every run. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}
static uint64_t urange(uint64_t lo, uint64_t hi) /* [lo, hi] */
{
	return lo + rnd() % (hi - lo + 1);
}
/* ln(x) for x > 0 without libm (the build does not link it): x = m 2^e,
 * ln m = 2 atanh((m - 1) / (m + 1)) by its series. */
static double ln(double x)
{
	int e = 0;
	while (x >= 2) {
		x /= 2;
		e++;
	}
	while (x < 1) {
		x *= 2;
		e--;
	}
	double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
	for (int k = 1; k < 40; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * 0.6931471805599453;
}

static double exp_rand(double mean)
{
	double u = (double)(rnd() >> 11) / 9007199254740992.0;
	return -mean * ln(1.0 - u);
}

/* ---- the synthetic month ----------------------------------------------- */

enum ev_kind {
	EV_START,
	EV_STATE,
	EV_ANSWERS
};

struct ev {
	uint64_t t;
	uint32_t rep;
	uint8_t kind, state;
	uint16_t order; /* position within the replica: ties in t keep seq order */
};

struct rep {
	uint32_t ep, n, inst;
	uint32_t order; /* events generated */
	uint32_t seq;   /* records written (seq follows the ledger's order) */
};

static struct ev *evs;
static size_t n_evs, cap_evs;
static struct rep *reps;
static size_t n_reps, cap_reps;

static void add_ev(uint32_t rep, uint64_t t, enum ev_kind k, enum floe_meter_state st)
{
	if (reps[rep].inst == 0 && t > CRASH_AT)
		return; /* instance 0 crashed: its replicas write nothing more */
	if (n_evs == cap_evs) {
		cap_evs = cap_evs ? cap_evs * 2 : 1 << 20;
		evs = realloc(evs, cap_evs * sizeof(*evs));
	}
	evs[n_evs++] = (struct ev){ t, rep, (uint8_t)k, (uint8_t)st, (uint16_t)reps[rep].order++ };
}

static int cmp_ev(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->rep != y->rep)
		return x->rep < y->rep ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

static const char *const instances[] = { "5f2c9a1e", "b7d04c33" };
static const char *const itypes[] = { "cpu", "nvidia-h100", "nvidia-l4" };
static const uint32_t gpus_of[] = { 0, 2, 1 };
static const struct floe_meter_prices prices_of[] = {
	{ { 100000, 200000, 200000, 50000 } },
	{ { 4000000, 8000000, 8000000, 1000000 } },
	{ { 700000, 1400000, 1400000, 300000 } },
};

/* Each endpoint wakes on average once an hour (exponential gaps after its
 * replica is gone, mean 45 min, so that a wake is ~60 min apart); a wake
 * is a replica: initializing 5-20 s, running ~15 min (10-20), draining
 * ~1 s (0.5-1.5), stopped; it answers requests in 5 of its running minutes
 * (one answers record each). 5% of wakes are from the warm pool: the
 * replica was restored 2-5 s then frozen 1-30 min before the wake. */
static void gen_month(void)
{
	uint64_t end = MONTH_START + (uint64_t)MONTH_DAYS * 86400000;
	for (uint32_t ep = 0; ep < N_ENDPOINTS; ep++) {
		uint64_t t = MONTH_START + (uint64_t)exp_rand(1800e3);
		uint32_t n = 0;
		while (t < end) {
			if (n_reps == cap_reps) {
				cap_reps = cap_reps ? cap_reps * 2 : 1 << 16;
				reps = realloc(reps, cap_reps * sizeof(*reps));
			}
			uint32_t r = (uint32_t)n_reps++;
			bool pool = rnd() % 100 < 5;
			uint64_t start = pool ? t - urange(60000, 1800000) : t;
			reps[r] = (struct rep){ ep, n++, start > CRASH_AT ? 1 : 0, 0, 1 };
			add_ev(r, start, EV_START, FLOE_METER_INITIALIZING);
			uint64_t ready;
			if (pool) {
				add_ev(r, start + urange(2000, 5000), EV_STATE,
				       FLOE_METER_WARM_POOL);
				ready = t;
			} else {
				ready = t + urange(5000, 20000);
			}
			add_ev(r, ready, EV_STATE, FLOE_METER_RUNNING);
			uint64_t drain = ready + urange(600000, 1200000);
			/* 5 distinct running minutes with answers, written after each. */
			uint64_t first = ready / MIN_MS + 1, last = drain / MIN_MS - 1;
			uint64_t span = last > first ? last - first + 1 : 1;
			uint64_t pick[5];
			int np = 0;
			while (np < 5 && np < (int)span) {
				uint64_t m = first + rnd() % span;
				bool dup = false;
				for (int i = 0; i < np; i++)
					dup |= pick[i] == m;
				if (!dup)
					pick[np++] = m;
			}
			for (int i = 0; i < np; i++)
				for (int j = i + 1; j < np; j++)
					if (pick[j] < pick[i]) {
						uint64_t x = pick[i];
						pick[i] = pick[j];
						pick[j] = x;
					}
			for (int i = 0; i < np; i++) {
				/* After its minute, before the drain (so before stopped). */
				uint64_t at = (pick[i] + 1) * MIN_MS + urange(1, 900);
				add_ev(r, at < drain ? at : drain - 1, EV_ANSWERS,
				       FLOE_METER_RUNNING);
			}
			add_ev(r, drain, EV_STATE, FLOE_METER_DRAINING);
			uint64_t stop = drain + urange(500, 1500);
			add_ev(r, stop, EV_STATE, FLOE_METER_STOPPED);
			t = stop + (uint64_t)exp_rand(2700e3);
		}
	}
	qsort(evs, n_evs, sizeof(*evs), cmp_ev);
}

static uint64_t sim_now_ms;
static time_t sim_now(void *opaque)
{
	return (time_t)(sim_now_ms / 1000);
}

struct writer {
	floe_ledger *lg;
	struct floe_buf b;
	uint64_t records, bytes_payload;
	uint64_t commit_every;
};

static void put(struct writer *w, const char *name, uint32_t seq, const struct floe_record *rec)
{
	floe_buf_reset(&w->b);
	if (floe_record_encode(rec, &w->b) < 0)
		abort();
	floe_ledger_key key = { .replica = name, .minute = rec->t_ms / MIN_MS, .seq = seq };
	sim_now_ms = rec->t_ms;
	int rc = floe_ledger_append(w->lg, &key, w->b.data, w->b.len, NULL);
	if (rc != 0) {
		fprintf(stderr, "append %s/%u: %d\n", name, seq, rc);
		exit(1);
	}
	w->records++;
	w->bytes_payload += w->b.len;
	if (w->commit_every && w->records % w->commit_every == 0 && floe_ledger_commit(w->lg) < 0)
		exit(1);
}

static void put_ev(struct writer *w, const struct ev *e)
{
	const struct rep *r = &reps[e->rep];
	char name[64], ep[16], ns[16];
	snprintf(name, sizeof(name), "ep-%04u-%u@%s", r->ep, r->n, instances[r->inst]);
	snprintf(ep, sizeof(ep), "ep-%04u", r->ep);
	snprintf(ns, sizeof(ns), "ns-%02u", r->ep % 50);
	unsigned it = r->ep % 3;
	struct floe_record rec = { .t_ms = e->t };
	switch (e->kind) {
	case EV_START:
		rec.kind = FLOE_RECORD_START;
		rec.instance = (struct floe_str){ instances[r->inst], 8 };
		rec.ns = (struct floe_str){ ns, (uint32_t)strlen(ns) };
		rec.endpoint = (struct floe_str){ ep, (uint32_t)strlen(ep) };
		rec.instance_type = (struct floe_str){ itypes[it], (uint32_t)strlen(itypes[it]) };
		rec.currency = (struct floe_str){ "USD", 3 };
		rec.gpus = gpus_of[it];
		rec.prices = prices_of[it];
		rec.state = (enum floe_meter_state)e->state;
		break;
	case EV_STATE:
		rec.kind = FLOE_RECORD_STATE;
		rec.state = (enum floe_meter_state)e->state;
		break;
	case EV_ANSWERS:
		rec.kind = FLOE_RECORD_ANSWERS;
		rec.minute = e->t / MIN_MS - 1;
		rec.requests[FLOE_METER_RUNNING][1] = (uint32_t)urange(1, 2000);
		if (rnd() % 4 == 0)
			rec.requests[FLOE_METER_RUNNING][4] = (uint32_t)urange(1, 20);
		if (rnd() % 8 == 0)
			rec.requests[FLOE_METER_RUNNING][3] = (uint32_t)urange(1, 50);
		break;
	}
	put(w, name, reps[e->rep].seq++, &rec);
}

/* Records in time order; a tick of the live instance in every second in
 * which nothing else was written while any of its replicas is alive. */
static uint64_t write_month(struct writer *w, uint64_t limit)
{
	uint64_t ticks = 0;
	uint32_t tick_seq[2] = { 1, 1 };
	long alive[2] = { 0, 0 };
	size_t i = 0;
	uint64_t end = MONTH_START + (uint64_t)MONTH_DAYS * 86400000;
	for (uint64_t sec = MONTH_START; sec < end && (!limit || w->records < limit); sec += 1000) {
		bool wrote = false;
		for (; i < n_evs && evs[i].t < sec + 1000; i++) {
			const struct ev *e = &evs[i];
			put_ev(w, e);
			wrote = true;
			if (e->kind == EV_START)
				alive[reps[e->rep].inst]++;
			else if (e->kind == EV_STATE && e->state == FLOE_METER_STOPPED)
				alive[reps[e->rep].inst]--;
		}
		int inst = sec + 999 > CRASH_AT ? 1 : 0;
		if (!wrote && alive[inst] > 0) {
			char name[16];
			snprintf(name, sizeof(name), "@%s", instances[inst]);
			struct floe_record rec = { .kind = FLOE_RECORD_TICK,
						   .t_ms = sec + 999,
						   .instance = { instances[inst], 8 } };
			put(w, name, tick_seq[inst]++, &rec);
			ticks++;
		}
	}
	return ticks;
}

static uint64_t dir_bytes(const char *dir, int *nfiles)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t total = 0;
	*nfiles = 0;
	while (d && (de = readdir(d))) {
		if (!strstr(de->d_name, ".seg"))
			continue;
		char p[4096];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &st) == 0) {
			total += (uint64_t)st.st_size;
			(*nfiles)++;
		}
	}
	if (d)
		closedir(d);
	return total;
}

static int cmd_month(const char *dir)
{
	double t0 = now_s();
	gen_month();
	floe_ledger_options o = { .dir = dir, .now = sim_now };
	struct writer w = { .commit_every = 100000 };
	floe_error err;
	if (floe_ledger_open(&o, &w.lg, NULL, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	uint64_t ticks = write_month(&w, 0);
	floe_ledger_close(w.lg);
	floe_buf_destroy(&w.b);
	int nf;
	uint64_t bytes = dir_bytes(dir, &nf);
	printf("month: %d days, %d endpoints, %zu replica lifetimes (%zu events), %llu ticks, "
	       "%llu records, %.1f MiB in %d segments (written in %.1f s)\n",
	       MONTH_DAYS, N_ENDPOINTS, n_reps, n_evs, (unsigned long long)ticks,
	       (unsigned long long)w.records, (double)bytes / 1048576, nf, now_s() - t0);
	return 0;
}

/* ---- export ------------------------------------------------------------- */

static double cat_dir(const char *dir, uint64_t *bytes)
{
	static char buf[1 << 20];
	double t0 = now_s();
	DIR *d = opendir(dir);
	struct dirent *de;
	*bytes = 0;
	while (d && (de = readdir(d))) {
		if (!strstr(de->d_name, ".seg"))
			continue;
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		int fd = open(p, O_RDONLY);
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			*bytes += (uint64_t)n;
		close(fd);
	}
	if (d)
		closedir(d);
	return now_s() - t0;
}

struct dec {
	int mode; /* 0: nothing, 1: floe_record_decode, 2: msgpack_unpack_next */
	msgpack_unpacked u;
	uint64_t n, bad;
};

static int on_rec(const floe_ledger_key *key, const void *p, size_t len, void *opaque)
{
	struct dec *d = opaque;
	d->n++;
	if (d->mode == 1) {
		struct floe_record r;
		d->bad += floe_record_decode(p, len, &r) != 0;
	} else if (d->mode == 2) {
		size_t off = 0;
		d->bad += msgpack_unpack_next(&d->u, p, len, &off) != MSGPACK_UNPACK_SUCCESS;
	}
	return 0;
}

static double time_read(const char *dir, int mode, uint64_t *n)
{
	struct dec d = { .mode = mode };
	msgpack_unpacked_init(&d.u);
	floe_ledger_reader rd;
	floe_error err;
	double t0 = now_s();
	if (floe_ledger_read(dir, on_rec, &d, &rd, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	double t = now_s() - t0;
	floe_ledger_reader_destroy(&rd);
	msgpack_unpacked_destroy(&d.u);
	if (d.bad) {
		fprintf(stderr, "%llu records failed to decode\n", (unsigned long long)d.bad);
		exit(1);
	}
	*n = d.n;
	return t;
}

static long max_rss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

static double best_of(int runs, const char *dir, const char *query, bool summary,
		      struct floe_export_report *rep_out, size_t *out_bytes)
{
	double best = 1e9;
	for (int i = 0; i < runs; i++) {
		struct floe_export_query q;
		floe_error err;
		uint64_t now = MONTH_START + (uint64_t)MONTH_DAYS * 86400000 + 3600000;
		if (floe_export_query_parse(query, now, FLOE_EXPORT_DEFAULT_MAX_RANGE_MS, &q,
					    &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		struct floe_buf out = FLOE_BUF_INIT;
		struct floe_export_report rep;
		double t0 = now_s();
		int rc = summary ?
				 floe_export_summary(dir, &q, instances[1], now, &out, &rep, &err) :
				 floe_export_csv(dir, &q, instances[1], now, &out, &rep, &err);
		double t = now_s() - t0;
		if (rc < 0) {
			fprintf(stderr, "%s\n", err.msg);
			exit(1);
		}
		if (t < best)
			best = t;
		*out_bytes = out.len;
		floe_buf_destroy(&out);
		floe_export_query_destroy(&q);
		if (i + 1 < runs)
			floe_export_report_destroy(&rep);
		else
			*rep_out = rep;
	}
	return best;
}

static int cmd_export(const char *dir, int runs)
{
	uint64_t bytes, n0, n1, n2;
	double cat = 1e9;
	for (int i = 0; i < runs; i++) {
		double t = cat_dir(dir, &bytes);
		cat = t < cat ? t : cat;
	}
	double rd0 = 1e9, rd1 = 1e9, rd2 = 1e9;
	for (int i = 0; i < runs; i++) {
		double t = time_read(dir, 0, &n0);
		rd0 = t < rd0 ? t : rd0;
		t = time_read(dir, 1, &n1);
		rd1 = t < rd1 ? t : rd1;
		t = time_read(dir, 2, &n2);
		rd2 = t < rd2 ? t : rd2;
	}
	printf("ledger: %llu records, %.1f MiB\n\n", (unsigned long long)n0,
	       (double)bytes / 1048576);
	printf("%-46s %9s %12s %9s %10s %9s\n", "operation", "best s", "records/s", "x cat",
	       "out MiB", "rows");
	printf("%-46s %9.3f %12.0f %9s %10s %9s\n", "cat segments > /dev/null (read(2), 1 MiB)",
	       cat, (double)n0 / cat, "1.0", "-", "-");
	printf("%-46s %9.3f %12.0f %9.1f %10s %9s\n", "floe_ledger_read, no decode", rd0,
	       (double)n0 / rd0, rd0 / cat, "-", "-");
	printf("%-46s %9.3f %12.0f %9.1f %10s %9s\n", "  + floe_record_decode (cursor)", rd1,
	       (double)n1 / rd1, rd1 / cat, "-", "-");
	printf("%-46s %9.3f %12.0f %9.1f %10s %9s\n", "  + msgpack_unpack_next (tree only)", rd2,
	       (double)n2 / rd2, rd2 / cat, "-", "-");
	printf("decode: cursor %.0f ns/record, msgpack_unpack_next %.0f ns/record (over the read)\n",
	       (rd1 - rd0) / (double)n0 * 1e9, (rd2 - rd0) / (double)n0 * 1e9);
	static const struct {
		const char *label, *query;
		bool summary;
	} cases[] = {
		{ "export CSV granularity=day group_by=endpoint",
		  "from=2026-11-01&to=2026-12-01&granularity=day", false },
		{ "export CSV granularity=hour group_by=replica",
		  "from=2026-11-01&to=2026-12-01&granularity=hour&group_by=replica", false },
		{ "export JSON summary", "from=2026-11-01&to=2026-12-01", true },
		{ "export CSV day, namespace=ns-07",
		  "namespace=ns-07&from=2026-11-01&to=2026-12-01&granularity=day", false },
	};
	double goal = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct floe_export_report rep;
		size_t out = 0;
		double t = best_of(runs, dir, cases[i].query, cases[i].summary, &rep, &out);
		if (i == 0)
			goal = t;
		char rows[32];
		snprintf(rows, sizeof(rows), "%llu", (unsigned long long)rep.rows);
		printf("%-46s %9.3f %12.0f %9.1f %10.1f %9s\n", cases[i].label, t,
		       (double)rep.records / t, t / cat, (double)out / 1048576, rows);
		if (i == 0)
			printf("  (report: %llu records, %llu duplicates, %llu replica lifetimes, "
			       "incomplete %s)\n",
			       (unsigned long long)rep.records, (unsigned long long)rep.duplicates,
			       (unsigned long long)rep.replicas, rep.incomplete ? "yes" : "no");
		floe_export_report_destroy(&rep);
	}
	printf("max RSS of this process: %ld MiB\n", max_rss_mib());
	printf("goal (issue 4): month's export (day, endpoint) < 2 s: %.3f s: %s\n", goal,
	       goal < 2 ? "met" : "NOT met");
	return 0;
}

/* ---- append throughput -------------------------------------------------- */

struct frames {
	char *data;
	size_t len;
	size_t *ends;
	size_t n;
};

/* The frames the ledger wrote, in order (to write the same bytes again). */
static void load_frames(const char *dir, struct frames *f)
{
	memset(f, 0, sizeof(*f));
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (strstr(names[i]->d_name, ".seg")) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", dir, names[i]->d_name);
			int fd = open(p, O_RDONLY);
			struct stat st;
			fstat(fd, &st);
			f->data = realloc(f->data, f->len + (size_t)st.st_size);
			size_t got = 0;
			while (got < (size_t)st.st_size) {
				ssize_t r =
					read(fd, f->data + f->len + got, (size_t)st.st_size - got);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			f->len += got;
			close(fd);
		}
		free(names[i]);
	}
	free(names);
	size_t cap = 0;
	for (size_t off = 0; off + 8 <= f->len;) {
		const unsigned char *p = (const unsigned char *)f->data + off;
		size_t len =
			(size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
		off += 8 + len;
		if (f->n == cap) {
			cap = cap ? cap * 2 : 1024;
			f->ends = realloc(f->ends, cap * sizeof(*f->ends));
		}
		f->ends[f->n++] = off;
	}
}

/* commit: every `every` records, or every second when every == 0. */
static double run_ledger(const char *dir, uint64_t n, uint64_t every, uint64_t *commits)
{
	floe_ledger_options o = { .dir = dir, .now = sim_now };
	struct writer w = { 0 };
	floe_error err;
	if (floe_ledger_open(&o, &w.lg, NULL, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	/* Records in the month's order and sizes (starts, states, answers,
	 * ticks); the simulated clock only picks segment days. */
	rng_state = 0x2545f4914f6cdd1dull;
	double t0 = now_s(), last = t0;
	*commits = 0;
	struct writer *wp = &w;
	/* write_month commits through w.commit_every; time-based commits are
	 * done here by wrapping: simplest is to write in batches and check. */
	uint64_t done = 0;
	size_t i = 0;
	while (done < n && i < n_evs) {
		put_ev(wp, &evs[i++]);
		done++;
		bool commit = every ? done % every == 0 : false;
		if (!every && (done & 63) == 0) {
			double t = now_s();
			if (t - last >= 1.0) {
				commit = true;
				last = t;
			}
		}
		if (commit) {
			if (floe_ledger_commit(w.lg) < 0)
				exit(1);
			(*commits)++;
		}
	}
	floe_ledger_commit(w.lg);
	(*commits)++;
	double t = now_s() - t0;
	floe_ledger_close(w.lg);
	floe_buf_destroy(&w.b);
	return t;
}

static double run_plain(const char *path, const struct frames *f, uint64_t every, uint64_t *commits)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	double t0 = now_s(), last = t0;
	size_t off = 0;
	*commits = 0;
	for (size_t i = 0; i < f->n; i++) {
		size_t len = f->ends[i] - off;
		if (write(fd, f->data + off, len) != (ssize_t)len)
			exit(1);
		off = f->ends[i];
		bool commit = every ? (i + 1) % every == 0 : false;
		if (!every && ((i + 1) & 63) == 0) {
			double t = now_s();
			if (t - last >= 1.0) {
				commit = true;
				last = t;
			}
		}
		if (commit) {
			fdatasync(fd);
			(*commits)++;
		}
	}
	fdatasync(fd);
	(*commits)++;
	double t = now_s() - t0;
	close(fd);
	return t;
}

static void rm_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
}

static int cmd_append(const char *dir, uint64_t n)
{
	gen_month();
	if (n > n_evs)
		n = n_evs;
	printf("%-48s %10s %9s %12s %9s\n", "append (same records, same frames)", "records",
	       "commits", "records/s", "ratio");
	static const uint64_t cadence[] = { 0, 1000 };
	for (int c = 0; c < 2; c++) {
		char ldir[4096], plain[4096];
		snprintf(ldir, sizeof(ldir), "%s/ledger-%d", dir, c);
		snprintf(plain, sizeof(plain), "%s/plain-%d.bin", dir, c);
		mkdir(ldir, 0755);
		rm_segments(ldir);
		uint64_t lc, pc;
		double tl = run_ledger(ldir, n, cadence[c], &lc);
		struct frames f;
		load_frames(ldir, &f);
		double tp = run_plain(plain, &f, cadence[c], &pc);
		const char *what = cadence[c] ? "every 1000 records" : "every 1 s";
		char label[128];
		snprintf(label, sizeof(label), "floe_ledger_append, commit %s", what);
		printf("%-48s %10llu %9llu %12.0f %8.2fx\n", label, (unsigned long long)n,
		       (unsigned long long)lc, (double)n / tl, tp / tl);
		snprintf(label, sizeof(label), "write(2)+fdatasync, %s", what);
		printf("%-48s %10zu %9llu %12.0f %9s\n", label, f.n, (unsigned long long)pc,
		       (double)f.n / tp, "1.00x");
		printf("  (%.1f MiB of frames, %.0f bytes/record on average)\n",
		       (double)f.len / 1048576, (double)f.len / (double)f.n);
		free(f.data);
		free(f.ends);
		unlink(plain);
		rm_segments(ldir);
		rmdir(ldir);
	}
	printf("ratio = ledger records/s / plain write records/s\n");
	return 0;
}

int main(int argc, char **argv)
{
	floe_log_init(FLOE_LOG_WARN, false);
	if (argc >= 3 && strcmp(argv[1], "month") == 0)
		return cmd_month(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "export") == 0)
		return cmd_export(argv[2], argc >= 4 ? atoi(argv[3]) : 3);
	if (argc >= 4 && strcmp(argv[1], "one") == 0) { /* for perf: one export */
		struct floe_export_report rep;
		size_t out = 0;
		double t = best_of(1, argv[2], argv[3], argc >= 5, &rep, &out);
		printf("%.3f s, %llu rows, %zu bytes\n", t, (unsigned long long)rep.rows, out);
		floe_export_report_destroy(&rep);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "append") == 0)
		return cmd_append(argv[2], strtoull(argv[3], NULL, 10));
	fprintf(stderr, "usage: ledger_bench month DIR | export DIR [RUNS] | append DIR N\n");
	return 2;
}
