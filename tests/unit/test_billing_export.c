/*
 * The usage export on real ledgers (floe_ledger_append of floe_record_encode
 * payloads in temporary directories): exact CSV text for small hand-computed
 * cases, totals that reconcile across granularities, filters, clipping,
 * crashed and live instances, duplicates, damage, the JSON summary, and the
 * query parser's errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "export.h"
#include "ledger.h"
#include "record.h"

/* 2026-11-28T10:00:00Z */
#define T0 UINT64_C(1795860000000)
#define SEC(x) ((uint64_t)(x)*1000)
#define MIN(x) ((uint64_t)(x)*60000)
#define HOUR(x) ((uint64_t)(x)*3600000)
#define DAY(x) ((uint64_t)(x)*86400000)

static struct floe_meter_prices prices = {
	.per_hour_micro = { 1200000, 3600000, 3600000, 600000 },
};

struct w {
	char dir[64];
	floe_ledger *lg;
};

static void w_open(struct w *w)
{
	strcpy(w->dir, "/tmp/floe-export-XXXXXX");
	cr_assert_not_null(mkdtemp(w->dir));
	floe_ledger_options o = { .dir = w->dir };
	floe_error err;
	cr_assert_eq(floe_ledger_open(&o, &w->lg, NULL, &err), 0, "%s", err.msg);
}

static void w_close(struct w *w)
{
	if (w->lg)
		floe_ledger_close(w->lg);
	w->lg = NULL;
}

static void w_remove(struct w *w)
{
	w_close(w);
	DIR *d = opendir(w->dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", w->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(w->dir);
}

/* The one segment's path (the tests write one segment per open). */
static void w_segment(struct w *w, char *out, size_t n)
{
	DIR *d = opendir(w->dir);
	struct dirent *de;
	out[0] = '\0';
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".seg") && !out[0])
			snprintf(out, n, "%s/%s", w->dir, de->d_name);
	closedir(d);
	cr_assert(out[0], "no segment in %s", w->dir);
}

static void w_append(struct w *w, const char *replica, uint32_t seq, const struct floe_record *rec)
{
	struct floe_buf b = FLOE_BUF_INIT;
	cr_assert_eq(floe_record_encode(rec, &b), 0);
	floe_ledger_key key = { .replica = replica, .minute = rec->t_ms / 60000, .seq = seq };
	cr_assert_eq(floe_ledger_append(w->lg, &key, b.data, b.len, NULL), 0);
	floe_buf_destroy(&b);
}

static struct floe_str fs(const char *s)
{
	return (struct floe_str){ s, (uint32_t)strlen(s) };
}

/* A replica being written: its ledger name and next seq. */
struct rw {
	char name[64];
	const char *inst;
	uint32_t seq;
};

static void r_start(struct w *w, struct rw *r, const char *id, const char *inst, const char *ns,
		    const char *ep, const char *itype, uint32_t gpus, uint64_t t,
		    enum floe_meter_state st)
{
	snprintf(r->name, sizeof(r->name), "%s@%s", id, inst);
	r->inst = inst;
	r->seq = 1;
	struct floe_record rec = {
		.kind = FLOE_RECORD_START,
		.t_ms = t,
		.instance = fs(inst),
		.ns = fs(ns),
		.endpoint = fs(ep),
		.instance_type = fs(itype),
		.currency = fs("USD"),
		.gpus = gpus,
		.rounding = FLOE_ROUND_MINUTE,
		.prices = prices,
		.state = st,
	};
	w_append(w, r->name, r->seq++, &rec);
}

static void r_state(struct w *w, struct rw *r, uint64_t t, enum floe_meter_state st)
{
	struct floe_record rec = { .kind = FLOE_RECORD_STATE, .t_ms = t, .state = st };
	w_append(w, r->name, r->seq++, &rec);
}

static void r_answers(struct w *w, struct rw *r, uint64_t minute_ms, enum floe_meter_state st,
		      uint32_t c2xx, uint32_t c5xx)
{
	struct floe_record rec = { .kind = FLOE_RECORD_ANSWERS,
				   .t_ms = minute_ms + MIN(1),
				   .minute = minute_ms / 60000 };
	rec.requests[st][1] = c2xx;
	rec.requests[st][4] = c5xx;
	w_append(w, r->name, r->seq++, &rec);
}

static void tick(struct w *w, const char *inst, uint32_t seq, uint64_t t)
{
	char name[64];
	snprintf(name, sizeof(name), "@%s", inst);
	struct floe_record rec = { .kind = FLOE_RECORD_TICK, .t_ms = t, .instance = fs(inst) };
	w_append(w, name, seq, &rec);
}

/* Export with a query string; returns the output (caller frees). */
static char *run(struct w *w, const char *query, bool summary, const char *live, uint64_t now,
		 struct floe_export_report *rep)
{
	struct floe_export_query q;
	floe_error err;
	cr_assert_eq(
		floe_export_query_parse(query, now, FLOE_EXPORT_DEFAULT_MAX_RANGE_MS, &q, &err), 0,
		"%s: %s", query, err.msg);
	struct floe_buf out = FLOE_BUF_INIT;
	struct floe_export_report own;
	if (!rep)
		rep = &own;
	int rc = summary ? floe_export_summary(w->dir, &q, live, now, &out, rep, &err) :
			   floe_export_csv(w->dir, &q, live, now, &out, rep, &err);
	cr_assert_eq(rc, 0, "%s", err.msg);
	if (rep == &own)
		floe_export_report_destroy(&own);
	floe_export_query_destroy(&q);
	if (!out.data)
		floe_buf_puts(&out, "");
	return floe_buf_steal(&out, NULL);
}

#define HEADER                                                                                 \
	"period_start,period_end,namespace,endpoint,replica,instance_type,gpus,state,seconds," \
	"billable_seconds,requests,unit_price_per_hour,cost,currency\r\n"

/* Start at :30, ready at :50, drain at 2:10, gone at 2:15 (as in the meter
 * tests: 20 s + 10 s, 60 s, 10 s + 5 s), answers in minutes 0 and 1. */
static void simple_life(struct w *w)
{
	struct rw r;
	r_start(w, &r, "chat-1", "inst1", "team-a", "chat", "cpu", 0, T0 + SEC(30),
		FLOE_METER_INITIALIZING);
	r_state(w, &r, T0 + SEC(50), FLOE_METER_RUNNING);
	r_answers(w, &r, T0, FLOE_METER_RUNNING, 1, 0);
	r_answers(w, &r, T0 + MIN(1), FLOE_METER_RUNNING, 7, 2);
	r_state(w, &r, T0 + MIN(2) + SEC(10), FLOE_METER_DRAINING);
	r_state(w, &r, T0 + MIN(2) + SEC(15), FLOE_METER_STOPPED);
}

Test(export, minute_rows_of_one_replica_exactly)
{
	struct w w;
	w_open(&w);
	simple_life(&w);
	w_close(&w);
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29&granularity=minute", false, NULL,
			T0 + DAY(2), NULL);
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T10:00:00Z,2026-11-28T10:01:00Z,team-a,chat,,cpu,0,initializing,20.000,40.000,0,1.200000,0.013333,USD\r\n"
		"2026-11-28T10:00:00Z,2026-11-28T10:01:00Z,team-a,chat,,cpu,0,running,10.000,20.000,1,3.600000,0.020000,USD\r\n"
		"2026-11-28T10:01:00Z,2026-11-28T10:02:00Z,team-a,chat,,cpu,0,running,60.000,60.000,9,3.600000,0.060000,USD\r\n"
		"2026-11-28T10:02:00Z,2026-11-28T10:03:00Z,team-a,chat,,cpu,0,running,10.000,40.000,0,3.600000,0.040000,USD\r\n"
		"2026-11-28T10:02:00Z,2026-11-28T10:03:00Z,team-a,chat,,cpu,0,draining,5.000,20.000,0,3.600000,0.020000,USD\r\n");
	free(csv);
	w_remove(&w);
}

Test(export, hour_rows_by_replica_and_clipping)
{
	struct w w;
	w_open(&w);
	simple_life(&w);
	w_close(&w);
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29&granularity=hour&group_by=replica",
			false, NULL, T0 + DAY(2), NULL);
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,team-a,chat,chat-1@inst1,cpu,0,initializing,20.000,40.000,0,1.200000,0.013333,USD\r\n"
		"2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,team-a,chat,chat-1@inst1,cpu,0,running,80.000,120.000,10,3.600000,0.120000,USD\r\n"
		"2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,team-a,chat,chat-1@inst1,cpu,0,draining,5.000,20.000,0,3.600000,0.020000,USD\r\n");
	free(csv);
	/* Clipped to [10:01, 10:02): one minute, the day's period clipped too. */
	csv = run(&w, "from=2026-11-28T10:01Z&to=2026-11-28T11:02%2B01:00", false, NULL,
		  T0 + DAY(2), NULL);
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T10:01:00Z,2026-11-28T10:02:00Z,team-a,chat,,cpu,0,running,60.000,60.000,9,3.600000,0.060000,USD\r\n");
	free(csv);
	/* A range with none of it: the header only. */
	csv = run(&w, "from=2026-11-28T10:03Z&to=2026-11-29", false, NULL, T0 + DAY(2), NULL);
	cr_expect_str_eq(csv, HEADER);
	free(csv);
	w_remove(&w);
}

Test(export, namespace_filter_and_an_unknown_namespace)
{
	struct w w;
	w_open(&w);
	simple_life(&w);
	struct rw r;
	r_start(&w, &r, "emb-1", "inst1", "team-b", "embed", "nvidia-l4", 1, T0 + MIN(5),
		FLOE_METER_RUNNING);
	r_state(&w, &r, T0 + MIN(6), FLOE_METER_STOPPED);
	w_close(&w);
	const char *b_row = "2026-11-28T00:00:00Z,2026-11-29T00:00:00Z,team-b,embed,,nvidia-l4,1,"
			    "running,60.000,60.000,0,3.600000,0.060000,USD\r\n";
	char *all = run(&w, "from=2026-11-28&to=2026-11-29", false, NULL, T0 + DAY(2), NULL);
	cr_expect(strstr(all, "team-a,chat"), "%s", all);
	cr_expect(strstr(all, b_row), "%s", all);
	char *b = run(&w, "namespace=team%2Db&from=2026-11-28&to=2026-11-29", false, NULL,
		      T0 + DAY(2), NULL);
	char want[512];
	snprintf(want, sizeof(want), "%s%s", HEADER, b_row);
	cr_expect_str_eq(b, want);
	char *none = run(&w, "namespace=nope&from=2026-11-28&to=2026-11-29", false, NULL,
			 T0 + DAY(2), NULL);
	cr_expect_str_eq(none, HEADER);
	free(all);
	free(b);
	free(none);
	w_remove(&w);
}

Test(export, csv_fields_with_commas_and_quotes_are_quoted)
{
	struct w w;
	w_open(&w);
	struct rw r;
	r_start(&w, &r, "q-1", "i", "ns", "a,\"b\"", "cpu", 0, T0, FLOE_METER_RUNNING);
	r_state(&w, &r, T0 + MIN(1), FLOE_METER_STOPPED);
	w_close(&w);
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29", false, NULL, T0 + DAY(2), NULL);
	cr_expect(strstr(csv, ",ns,\"a,\"\"b\"\"\",,cpu,0,running,"), "%s", csv);
	free(csv);
	w_remove(&w);
}

/* ---- many lifecycles: reconciliation ------------------------------------ */

struct truth {
	uint64_t ms, billable, cost, requests, replicas;
};

/* Meter a lifecycle directly (the policy itself) and add it to t. */
static void truth_add(struct truth *t, const struct floe_meter_event *ev, size_t n,
		      const struct floe_meter_answers *ans, size_t na, uint64_t end)
{
	struct floe_meter_row *rows;
	long nr = floe_meter_replica(ev, n, ans, na, end, FLOE_ROUND_MINUTE, &prices, &rows);
	cr_assert_geq(nr, 0);
	for (long i = 0; i < nr; i++) {
		t->ms += rows[i].ms;
		t->billable += rows[i].billable_ms;
		t->cost += rows[i].cost_micro;
		for (int c = 0; c < 5; c++)
			t->requests += rows[i].requests[c];
	}
	t->replicas += nr > 0;
	free(rows);
}

/* "123.456" -> 123456 (any number of decimals, scaled to `decimals`). */
static uint64_t fixed(const char *s, int decimals)
{
	uint64_t v = 0;
	int d = -1;
	for (; *s && *s != ','; s++) {
		if (*s == '.') {
			d = 0;
			continue;
		}
		v = v * 10 + (uint64_t)(*s - '0');
		if (d >= 0)
			d++;
	}
	cr_assert_eq(d, decimals, "'%s' has %d decimals", s, d);
	return v;
}

/* Totals of a CSV's columns; also checks that rows are sorted. */
static struct truth csv_totals(const char *csv)
{
	struct truth t = { 0 };
	const char *line = strstr(csv, "\r\n");
	cr_assert_not_null(line);
	line += 2;
	char prev[256] = "";
	while (*line) {
		const char *end = strstr(line, "\r\n");
		cr_assert_not_null(end, "every line ends in CRLF");
		const char *f[14];
		f[0] = line;
		int n = 1;
		for (const char *p = line; p < end && n < 14; p++)
			if (*p == ',')
				f[n++] = p + 1;
		cr_assert_eq(n, 14);
		t.ms += fixed(f[8], 3);
		t.billable += fixed(f[9], 3);
		t.requests += strtoull(f[10], NULL, 10);
		t.cost += fixed(f[12], 6);
		/* period, namespace, endpoint, replica in order */
		char key[256];
		snprintf(key, sizeof(key), "%.*s", (int)(f[5] - f[0]), f[0]);
		cr_expect_leq(strcmp(prev, key), 0, "rows out of order: '%s' then '%s'", prev, key);
		strcpy(prev, key);
		line = end + 2;
	}
	return t;
}

/* Two days and a bit of lifecycles over three endpoints in two namespaces,
 * across hour and day boundaries; warm-pool replicas; a second instance
 * that crashed (no stopped, its last tick ends it); a replica of the live
 * instance still running. Returns what the policy gives for [from, to). */
static struct truth many_lives(struct w *w, uint64_t from, uint64_t to, uint64_t now)
{
	struct truth tr = { 0 };
	srand(7);
	const char *eps[] = { "chat", "embed", "tts" };
	const char *nss[] = { "team-a", "team-b" };
	uint64_t base = T0 - HOUR(10) - MIN(30); /* 2026-11-27T23:30Z */
	for (int i = 0; i < 60; i++) {
		struct rw r;
		char id[32];
		snprintf(id, sizeof(id), "%s-%d", eps[i % 3], i);
		uint64_t t0 = base + (uint64_t)(rand() % (int)(DAY(2) / 1000)) * 1000 +
			      (uint64_t)(rand() % 1000);
		bool pool = i % 5 == 0;
		struct floe_meter_event ev[6];
		struct floe_meter_answers ans[8];
		size_t n = 0, na = 0;
		r_start(w, &r, id, "live", nss[i % 2], eps[i % 3], i % 2 ? "nvidia-l4" : "cpu",
			(uint32_t)(i % 2), t0, FLOE_METER_INITIALIZING);
		ev[n++] = (struct floe_meter_event){ t0, FLOE_METER_INITIALIZING };
		uint64_t t = t0 + SEC(5 + rand() % 15);
		if (pool) {
			r_state(w, &r, t, FLOE_METER_WARM_POOL);
			ev[n++] = (struct floe_meter_event){ t, FLOE_METER_WARM_POOL };
			t += MIN(1 + rand() % 120);
		}
		r_state(w, &r, t, FLOE_METER_RUNNING);
		ev[n++] = (struct floe_meter_event){ t, FLOE_METER_RUNNING };
		uint64_t run_end = t + SEC(30 + rand() % 3600);
		for (uint64_t m = t - t % MIN(1); m < run_end && na < 5; m += MIN(3)) {
			uint32_t ok = (uint32_t)(rand() % 50), bad = (uint32_t)(rand() % 3);
			r_answers(w, &r, m, FLOE_METER_RUNNING, ok, bad);
			ans[na] = (struct floe_meter_answers){ m, FLOE_METER_RUNNING, { 0 } };
			ans[na].requests[1] = ok;
			ans[na++].requests[4] = bad;
		}
		if (i == 59) {
			/* Still running in the live floed: metered up to now. */
			truth_add(&tr, ev, n, ans, na, now);
			continue;
		}
		r_state(w, &r, run_end, FLOE_METER_DRAINING);
		ev[n++] = (struct floe_meter_event){ run_end, FLOE_METER_DRAINING };
		r_state(w, &r, run_end + 1000, FLOE_METER_STOPPED);
		ev[n++] = (struct floe_meter_event){ run_end + 1000, FLOE_METER_STOPPED };
		truth_add(&tr, ev, n, ans, na, 0);
	}
	/* The crashed instance: two replicas, ticks every second until the
	 * crash at T0 + 2 h 30 min 07 s. */
	struct rw a, b;
	r_start(w, &a, "chat-x", "dead", "team-a", "chat", "cpu", 0, T0 + HOUR(2),
		FLOE_METER_INITIALIZING);
	r_state(w, &a, T0 + HOUR(2) + SEC(10), FLOE_METER_RUNNING);
	r_start(w, &b, "tts-x", "dead", "team-b", "tts", "nvidia-l4", 1, T0 + HOUR(2) + MIN(20),
		FLOE_METER_RUNNING);
	uint64_t crash = T0 + HOUR(2) + MIN(30) + SEC(7);
	uint32_t seq = 1;
	for (uint64_t tt = T0 + HOUR(2) + MIN(25); tt <= crash; tt += SEC(1))
		tick(w, "dead", seq++, tt);
	struct floe_meter_event ea[] = { { T0 + HOUR(2), FLOE_METER_INITIALIZING },
					 { T0 + HOUR(2) + SEC(10), FLOE_METER_RUNNING } };
	struct floe_meter_event eb[] = { { T0 + HOUR(2) + MIN(20), FLOE_METER_RUNNING } };
	truth_add(&tr, ea, 2, NULL, 0, crash);
	truth_add(&tr, eb, 1, NULL, 0, crash);
	(void)from;
	(void)to;
	return tr;
}

Test(export, totals_reconcile_across_granularities_and_with_the_policy)
{
	struct w w;
	w_open(&w);
	uint64_t now = T0 + DAY(2); /* before `to`: the live replica is all in range */
	struct truth want = many_lives(&w, 0, 0, now);
	w_close(&w);
	const char *queries[] = {
		"from=2026-11-27&to=2026-12-01&granularity=minute",
		"from=2026-11-27&to=2026-12-01&granularity=hour",
		"from=2026-11-27&to=2026-12-01&granularity=day",
		"from=2026-11-27&to=2026-12-01&granularity=minute&group_by=replica",
		"from=2026-11-27&to=2026-12-01&granularity=hour&group_by=replica",
		"from=2026-11-27&to=2026-12-01&granularity=day&group_by=replica",
	};
	for (size_t i = 0; i < sizeof(queries) / sizeof(*queries); i++) {
		struct floe_export_report rep;
		char *csv = run(&w, queries[i], false, "live", now, &rep);
		struct truth got = csv_totals(csv);
		cr_expect_eq(got.ms, want.ms, "%s: ms %llu, want %llu", queries[i],
			     (unsigned long long)got.ms, (unsigned long long)want.ms);
		cr_expect_eq(got.billable, want.billable, "%s: billable", queries[i]);
		cr_expect_eq(got.cost, want.cost, "%s: cost %llu, want %llu", queries[i],
			     (unsigned long long)got.cost, (unsigned long long)want.cost);
		cr_expect_eq(got.requests, want.requests, "%s: requests", queries[i]);
		cr_expect_eq(rep.replicas, want.replicas, "%s: replicas", queries[i]);
		cr_expect_not(rep.incomplete);
		cr_expect_eq(rep.duplicates, 0);
		floe_export_report_destroy(&rep);
		/* Same ledger, same query: same bytes. */
		char *again = run(&w, queries[i], false, "live", now, NULL);
		cr_expect_str_eq(again, csv, "%s: a second export differs", queries[i]);
		free(again);
		free(csv);
	}
	w_remove(&w);
}

Test(export, a_crashed_instance_ends_at_its_last_record_a_live_one_at_now)
{
	struct w w;
	w_open(&w);
	struct rw a, l;
	r_start(&w, &a, "c-1", "dead", "ns", "ep", "cpu", 0, T0, FLOE_METER_RUNNING);
	tick(&w, "dead", 1, T0 + SEC(30));
	tick(&w, "dead", 2, T0 + SEC(31) + 500);
	r_start(&w, &l, "c-2", "live", "ns", "ep", "cpu", 0, T0, FLOE_METER_RUNNING);
	w_close(&w);
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29&group_by=replica", false, "live",
			T0 + MIN(2) + SEC(1), NULL);
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T00:00:00Z,2026-11-29T00:00:00Z,ns,ep,c-1@dead,cpu,0,running,31.500,60.000,0,3.600000,0.060000,USD\r\n"
		"2026-11-28T00:00:00Z,2026-11-29T00:00:00Z,ns,ep,c-2@live,cpu,0,running,121.000,180.000,0,3.600000,0.180000,USD\r\n");
	free(csv);
	/* Without a live instance, "live" crashed too: it ends at its start. */
	csv = run(&w, "from=2026-11-28&to=2026-11-29&group_by=replica", false, NULL,
		  T0 + MIN(2) + SEC(1), NULL);
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T00:00:00Z,2026-11-29T00:00:00Z,ns,ep,c-1@dead,cpu,0,running,31.500,60.000,0,3.600000,0.060000,USD\r\n");
	free(csv);
	w_remove(&w);
}

Test(export, warm_pool_then_thawed)
{
	struct w w;
	w_open(&w);
	struct rw r;
	r_start(&w, &r, "p-1", "i", "ns", "ep", "cpu", 0, T0 - MIN(1) - SEC(5),
		FLOE_METER_INITIALIZING); /* restoring for the pool */
	r_state(&w, &r, T0 - MIN(1), FLOE_METER_WARM_POOL);
	r_state(&w, &r, T0 + SEC(10), FLOE_METER_RUNNING); /* thawed */
	r_state(&w, &r, T0 + SEC(40), FLOE_METER_STOPPED);
	w_close(&w);
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29&granularity=hour", false, NULL,
			T0 + DAY(1), NULL);
	/* As in the meter test: minute -2 init 5 s (60 s billed, 0.02), minute -1
	 * warm 60 s (0.01), minute 0 running 30 s (45 s, 0.045) + warm 10 s (15 s,
	 * 0.0025). Hours 09 and 10. */
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T09:00:00Z,2026-11-28T10:00:00Z,ns,ep,,cpu,0,initializing,5.000,60.000,0,1.200000,0.020000,USD\r\n"
		"2026-11-28T09:00:00Z,2026-11-28T10:00:00Z,ns,ep,,cpu,0,warm_pool,60.000,60.000,0,0.600000,0.010000,USD\r\n"
		"2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,ns,ep,,cpu,0,running,30.000,45.000,0,3.600000,0.045000,USD\r\n"
		"2026-11-28T10:00:00Z,2026-11-28T11:00:00Z,ns,ep,,cpu,0,warm_pool,10.000,15.000,0,0.600000,0.002500,USD\r\n");
	free(csv);
	w_remove(&w);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

Test(export, retried_duplicates_count_once)
{
	struct w w;
	w_open(&w);
	simple_life(&w);
	w_close(&w);
	char *once = run(&w, "from=2026-11-28&to=2026-11-29&granularity=minute", false, NULL,
			 T0 + DAY(2), NULL);
	/* Every record a second time, in a later segment: what a retried
	 * commit whose first copy reached the disk leaves behind. */
	char seg[256], copy[300];
	w_segment(&w, seg, sizeof(seg));
	snprintf(copy, sizeof(copy), "%s/2999-01-01.0.seg", w.dir);
	copy_file(seg, copy);
	struct floe_export_report rep;
	char *twice = run(&w, "from=2026-11-28&to=2026-11-29&granularity=minute", false, NULL,
			  T0 + DAY(2), &rep);
	cr_expect_str_eq(twice, once);
	cr_expect_eq(rep.duplicates, 6, "6 records skipped as copies, got %llu",
		     (unsigned long long)rep.duplicates);
	cr_expect_eq(rep.records, 6);
	cr_expect_not(rep.incomplete);
	floe_export_report_destroy(&rep);
	free(once);
	free(twice);
	w_remove(&w);
}

static off_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	return st.st_size;
}

Test(export, a_damaged_middle_record_makes_the_export_incomplete)
{
	struct w w;
	w_open(&w);
	struct rw a, b;
	r_start(&w, &a, "a-1", "i", "ns", "ep", "cpu", 0, T0, FLOE_METER_RUNNING);
	char seg[256];
	w_segment(&w, seg, sizeof(seg));
	off_t start_b = file_size(seg);
	r_start(&w, &b, "b-1", "i", "ns", "ep", "cpu", 0, T0, FLOE_METER_RUNNING);
	off_t end_b = file_size(seg);
	r_state(&w, &b, T0 + MIN(1), FLOE_METER_DRAINING);
	r_state(&w, &b, T0 + MIN(2), FLOE_METER_STOPPED);
	r_state(&w, &a, T0 + MIN(1), FLOE_METER_STOPPED);
	w_close(&w);
	/* Flip one byte inside b's start record. */
	int fd = open(seg, O_RDWR);
	cr_assert_geq(fd, 0);
	char c;
	cr_assert_eq(pread(fd, &c, 1, start_b + 20), 1);
	c ^= 0x40;
	cr_assert_eq(pwrite(fd, &c, 1, start_b + 20), 1);
	close(fd);

	struct floe_export_report rep;
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29", false, NULL, T0 + DAY(2), &rep);
	cr_expect(rep.incomplete);
	cr_assert_eq(rep.n_damaged, 1);
	cr_expect_eq(rep.damaged[0].offset, (uint64_t)start_b);
	cr_expect_eq(rep.damaged[0].length, (uint64_t)(end_b - start_b));
	cr_expect_eq(rep.orphans, 2, "b's two later records cannot be billed");
	char *h = floe_export_incomplete_header(&rep);
	const char *base = strrchr(seg, '/') + 1;
	char want[512];
	snprintf(want, sizeof(want),
		 "1 damaged range(s): %s@%lld+%lld; 2 record(s) of replicas whose start is missing",
		 base, (long long)start_b, (long long)(end_b - start_b));
	cr_expect_str_eq(h, want);
	/* a is still billed in full. */
	cr_expect_str_eq(
		csv, HEADER
		"2026-11-28T00:00:00Z,2026-11-29T00:00:00Z,ns,ep,,cpu,0,running,60.000,60.000,0,3.600000,0.060000,USD\r\n");
	free(h);
	free(csv);
	floe_export_report_destroy(&rep);
	/* The summary says so too. */
	csv = run(&w, "from=2026-11-28&to=2026-11-29", true, NULL, T0 + DAY(2), NULL);
	json_error_t jerr;
	json_t *j = json_loads(csv, 0, &jerr);
	cr_assert_not_null(j, "%s", jerr.text);
	cr_expect(json_is_true(json_object_get(j, "incomplete")));
	json_t *d = json_array_get(json_object_get(j, "damaged"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(d, "file")), base);
	cr_expect_eq(json_integer_value(json_object_get(d, "offset")), start_b);
	cr_expect_eq(json_integer_value(json_object_get(d, "length")), end_b - start_b);
	json_decref(j);
	free(csv);
	w_remove(&w);
}

Test(export, a_complete_export_has_no_incomplete_header)
{
	struct floe_export_report rep = { 0 };
	cr_expect_null(floe_export_incomplete_header(&rep));
}

Test(export, json_summary_per_endpoint)
{
	struct w w;
	w_open(&w);
	simple_life(&w);
	struct rw r;
	r_start(&w, &r, "chat-2", "inst1", "team-a", "chat", "cpu", 0, T0 + HOUR(1),
		FLOE_METER_RUNNING);
	r_answers(&w, &r, T0 + HOUR(1), FLOE_METER_RUNNING, 3, 0);
	r_state(&w, &r, T0 + HOUR(1) + SEC(30), FLOE_METER_STOPPED);
	r_start(&w, &r, "a-1", "inst1", "a-ns", "zeta", "cpu", 0, T0, FLOE_METER_RUNNING);
	r_state(&w, &r, T0 + MIN(1), FLOE_METER_STOPPED);
	r_start(&w, &r, "old-1", "inst1", "team-a", "old", "cpu", 0, T0 - DAY(3),
		FLOE_METER_RUNNING); /* outside the range: no entry */
	r_state(&w, &r, T0 - DAY(3) + MIN(1), FLOE_METER_STOPPED);
	w_close(&w);
	char *text = run(&w, "from=2026-11-28&to=2026-11-29", true, NULL, T0 + DAY(2), NULL);
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	cr_assert_not_null(j, "%s: %s", jerr.text, text);
	cr_expect_str_eq(json_string_value(json_object_get(j, "from")), "2026-11-28T00:00:00Z");
	cr_expect_str_eq(json_string_value(json_object_get(j, "to")), "2026-11-29T00:00:00Z");
	cr_expect(json_is_null(json_object_get(j, "namespace")));
	cr_expect(json_is_false(json_object_get(j, "incomplete")));
	cr_expect_eq(json_array_size(json_object_get(j, "damaged")), 0);
	json_t *eps = json_object_get(j, "endpoints");
	cr_assert_eq(json_array_size(eps), 2, "%s", text);
	json_t *e0 = json_array_get(eps, 0), *e1 = json_array_get(eps, 1);
	cr_expect_str_eq(json_string_value(json_object_get(e0, "namespace")), "a-ns");
	cr_expect_str_eq(json_string_value(json_object_get(e1, "endpoint")), "chat");
	cr_expect_eq(json_integer_value(json_object_get(e1, "replicas")), 2);
	json_t *ms = json_object_get(e1, "ms");
	cr_expect_eq(json_integer_value(json_object_get(ms, "initializing")), 20000);
	cr_expect_eq(json_integer_value(json_object_get(ms, "running")), 80000 + 30000);
	cr_expect_eq(json_integer_value(json_object_get(ms, "draining")), 5000);
	cr_expect_eq(json_integer_value(json_object_get(ms, "warm_pool")), 0);
	cr_expect_eq(json_integer_value(json_object_get(e1, "billable_ms")), 180000 + 60000);
	json_t *req = json_object_get(e1, "requests");
	cr_expect_eq(json_integer_value(json_object_get(req, "2xx")), 8 + 3);
	cr_expect_eq(json_integer_value(json_object_get(req, "5xx")), 2);
	cr_expect_eq(json_integer_value(json_object_get(req, "1xx")), 0);
	/* 0.013333 + 0.02 + 0.06 + 0.04 + 0.02 + 0.06 (one minute of chat-2) */
	cr_expect_str_eq(json_string_value(json_object_get(e1, "cost")), "0.213333");
	cr_expect_str_eq(json_string_value(json_object_get(e1, "currency")), "USD");
	json_decref(j);
	free(text);
	text = run(&w, "namespace=a-ns&from=2026-11-28&to=2026-11-29", true, NULL, T0 + DAY(2),
		   NULL);
	j = json_loads(text, 0, &jerr);
	cr_assert_not_null(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "namespace")), "a-ns");
	cr_expect_eq(json_array_size(json_object_get(j, "endpoints")), 1);
	json_decref(j);
	free(text);
	w_remove(&w);
}

Test(export, a_missing_ledger_directory_is_empty)
{
	struct w w = { .dir = "/tmp/floe-export-does-not-exist" };
	char *csv = run(&w, "from=2026-11-28&to=2026-11-29", false, NULL, T0, NULL);
	cr_expect_str_eq(csv, HEADER);
	free(csv);
}

/* ---- query parsing ------------------------------------------------------ */

static int parse(const char *query, uint64_t now, struct floe_export_query *q, floe_error *err)
{
	return floe_export_query_parse(query, now, FLOE_EXPORT_DEFAULT_MAX_RANGE_MS, q, err);
}

Test(export_query, defaults_are_this_month_up_to_now)
{
	struct floe_export_query q;
	floe_error err;
	cr_assert_eq(parse(NULL, T0 + 30500, &q, &err), 0);
	cr_expect_eq(q.to_ms, T0 + MIN(1), "now rounded up to a whole minute");
	cr_expect_eq(q.from_ms, UINT64_C(1793491200000), "2026-11-01T00:00Z");
	cr_expect_eq(q.granularity, FLOE_EXPORT_DAY);
	cr_expect_eq(q.group_by, FLOE_EXPORT_BY_ENDPOINT);
	cr_expect_null(q.ns);
	floe_export_query_destroy(&q);
	/* now exactly 2026-12-01T00:00Z: the month before. */
	cr_assert_eq(parse("namespace=", UINT64_C(1796083200000), &q, &err), 0);
	cr_expect_eq(q.to_ms, UINT64_C(1796083200000));
	cr_expect_eq(q.from_ms, UINT64_C(1793491200000));
	cr_expect_null(q.ns, "an empty namespace is all of them");
	floe_export_query_destroy(&q);
	/* to = 2027-01-01: from is 2026-12-01. */
	cr_assert_eq(parse("to=2027-01-01", T0, &q, &err), 0);
	cr_expect_eq(q.from_ms, UINT64_C(1796083200000));
	floe_export_query_destroy(&q);
}

Test(export_query, forms_offsets_and_decoding)
{
	struct floe_export_query q;
	floe_error err;
	cr_assert_eq(parse("from=2026-11-28T11:00%2B01:00&to=2026-11-28T10:01:00Z&namespace=t%20a&"
			   "granularity=minute&group_by=replica&extra=ignored",
			   T0, &q, &err),
		     0, "%s", err.msg);
	cr_expect_eq(q.from_ms, T0);
	cr_expect_eq(q.to_ms, T0 + MIN(1));
	cr_expect_str_eq(q.ns, "t a");
	cr_expect_eq(q.granularity, FLOE_EXPORT_MINUTE);
	cr_expect_eq(q.group_by, FLOE_EXPORT_BY_REPLICA);
	floe_export_query_destroy(&q);
	cr_assert_eq(parse("from=2026-11-28T09:30-00:30&to=2026-11-28T10:00+00:00", T0 + DAY(1), &q,
			   &err),
		     -EINVAL, "an empty range");
	cr_assert_eq(parse("from=2026-11-28T09:30-00:30&to=2026-11-28T10:01+00:00", T0 + DAY(1), &q,
			   &err),
		     0, "%s", err.msg);
	cr_expect_eq(q.from_ms, T0);
	floe_export_query_destroy(&q);
	cr_assert_eq(parse("granularity=hour", T0, &q, &err), 0);
	cr_expect_eq(q.granularity, FLOE_EXPORT_HOUR);
	floe_export_query_destroy(&q);
	uint64_t ms;
	cr_expect_eq(floe_export_time_parse("2028-02-29", &ms), 0, "a leap day");
	cr_expect_eq(floe_export_time_parse("2100-02-29", &ms), -EINVAL, "not a leap year");
	char buf[21];
	floe_export_time_format(UINT64_C(253402300799999), buf);
	cr_expect_str_eq(buf, "9999-12-31T23:59:59Z");
}

static void expect_error(const char *query, uint64_t max, const char *prefix)
{
	struct floe_export_query q;
	floe_error err;
	floe_error_clear(&err);
	int rc = floe_export_query_parse(query, T0 + DAY(1), max, &q, &err);
	cr_expect_eq(rc, -EINVAL, "%s: accepted", query);
	cr_expect_eq(strncmp(err.msg, prefix, strlen(prefix)), 0, "%s: message '%s', want '%s...'",
		     query, err.msg, prefix);
	cr_expect_null(q.ns);
}

Test(export_query, errors_name_the_parameter)
{
	uint64_t max = FLOE_EXPORT_DEFAULT_MAX_RANGE_MS;
	expect_error("from=yesterday", max, "from: 'yesterday' is not a UTC date-time");
	expect_error("from=2026-13-01", max, "from: '2026-13-01'");
	expect_error("from=2026-02-30", max, "from: '2026-02-30'");
	expect_error("to=2026-11-28T10:00", max, "to: '2026-11-28T10:00'"); /* no zone */
	expect_error("to=2026-11-28T24:00Z", max, "to: ");
	expect_error("from=2026-11-28T10:00:30Z&to=2026-11-29", max,
		     "from: '2026-11-28T10:00:30Z' is not on a whole minute");
	expect_error("from=2026-11-28&to=2026-11-28", max, "to: 2026-11-28T00:00:00Z is not after");
	expect_error("from=2026-11-29&to=2026-11-28", max, "to: ");
	expect_error("from=2025-01-01&to=2026-11-28", max, "to: the range");
	expect_error("from=2026-11-01&to=2026-11-28", DAY(7), "to: the range");
	expect_error("granularity=week", max, "granularity: 'week' is not minute, hour or day");
	expect_error("group_by=ns", max, "group_by: 'ns' is not endpoint or replica");
	expect_error("from=2026-11-01&from=2026-11-02", max, "from: given twice");
	expect_error("namespace=%zz", max, "namespace: bad percent-encoding");
	expect_error("namespace=a%00b", max, "namespace: bad percent-encoding");
	expect_error("from=1969-12-31", max, "from: ");
	/* A range of exactly the maximum is fine. */
	struct floe_export_query q;
	floe_error err;
	cr_expect_eq(floe_export_query_parse("from=2026-11-01&to=2026-11-08", T0, DAY(7), &q, &err),
		     0);
	floe_export_query_destroy(&q);
}
