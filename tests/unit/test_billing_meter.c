/*
 * The metering policy on synthetic replica lifecycles: minutes, states,
 * billable time and costs are exactly what the rules in meter.h give.
 */
#include <errno.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "meter.h"

/* 2026-11-28T10:00:00Z */
#define T0 UINT64_C(1795860000000)
#define S(x) ((uint64_t)(x)*1000)
#define M(x) ((uint64_t)(x)*60000)

static const struct floe_meter_prices prices = {
	.per_hour_micro = { 1200000, 3600000, 3600000, 600000 }, /* init, running, draining, warm */
};

static long meter(const struct floe_meter_event *ev, size_t n, enum floe_meter_rounding r,
		  struct floe_meter_row **rows)
{
	return floe_meter_replica(ev, n, NULL, 0, 0, r, &prices, rows);
}

static void expect_row(const struct floe_meter_row *row, uint64_t minute, enum floe_meter_state st,
		       uint64_t ms, uint64_t billable, uint64_t cost)
{
	cr_expect_eq(row->minute_ms, minute, "minute %llu", (unsigned long long)row->minute_ms);
	cr_expect_eq(row->state, st);
	cr_expect_eq(row->ms, ms, "ms %llu, want %llu", (unsigned long long)row->ms,
		     (unsigned long long)ms);
	cr_expect_eq(row->billable_ms, billable, "billable %llu, want %llu",
		     (unsigned long long)row->billable_ms, (unsigned long long)billable);
	cr_expect_eq(row->cost_micro, cost, "cost %llu, want %llu",
		     (unsigned long long)row->cost_micro, (unsigned long long)cost);
}

/* Start at :30, ready at :50, drain at 2:10, gone at 2:15: 105 s in all. */
static const struct floe_meter_event life[] = {
	{ T0 + S(30), FLOE_METER_INITIALIZING },
	{ T0 + S(50), FLOE_METER_RUNNING },
	{ T0 + M(2) + S(10), FLOE_METER_DRAINING },
	{ T0 + M(2) + S(15), FLOE_METER_STOPPED },
};

Test(meter, started_minutes_bill_whole_minutes_split_by_state)
{
	struct floe_meter_row *rows;
	long n = meter(life, 4, FLOE_ROUND_MINUTE, &rows);
	cr_assert_eq(n, 5);
	/* minute 0: 20 s initializing, 10 s running -> 40 s + 20 s billed */
	expect_row(&rows[0], T0, FLOE_METER_INITIALIZING, S(20), S(40), 13333); /* 1.20/h x 40 s */
	expect_row(&rows[1], T0, FLOE_METER_RUNNING, S(10), S(20), 20000);      /* 3.60/h x 20 s */
	expect_row(&rows[2], T0 + M(1), FLOE_METER_RUNNING, S(60), S(60), 60000);
	/* minute 2: 10 s running, 5 s draining -> 40 s + 20 s */
	expect_row(&rows[3], T0 + M(2), FLOE_METER_RUNNING, S(10), S(40), 40000);
	expect_row(&rows[4], T0 + M(2), FLOE_METER_DRAINING, S(5), S(20), 20000);
	uint64_t ms = 0, billable = 0;
	for (long i = 0; i < n; i++) {
		ms += rows[i].ms;
		billable += rows[i].billable_ms;
	}
	cr_expect_eq(ms, S(105), "rows add up to the lifetime");
	cr_expect_eq(billable, M(3), "three started minutes, each billed once");
	free(rows);
}

Test(meter, exact_seconds_round_each_row_up_to_a_second)
{
	struct floe_meter_event ev[] = {
		{ T0 + 250, FLOE_METER_INITIALIZING },
		{ T0 + S(2) + 1, FLOE_METER_RUNNING },
		{ T0 + S(9) + 500, FLOE_METER_STOPPED },
	};
	struct floe_meter_row *rows;
	long n = meter(ev, 3, FLOE_ROUND_SECOND, &rows);
	cr_assert_eq(n, 2);
	expect_row(&rows[0], T0, FLOE_METER_INITIALIZING, 1751, S(2), 667); /* 1.2/h x 2 s */
	expect_row(&rows[1], T0, FLOE_METER_RUNNING, 7499, S(8), 8000);
	free(rows);
}

Test(meter, remainder_of_a_split_minute_goes_to_the_longest_state)
{
	struct floe_meter_event ev[] = {
		{ T0, FLOE_METER_INITIALIZING },
		{ T0 + 7, FLOE_METER_RUNNING },
		{ T0 + 11, FLOE_METER_STOPPED },
	};
	struct floe_meter_row *rows;
	long n = meter(ev, 3, FLOE_ROUND_MINUTE, &rows);
	cr_assert_eq(n, 2);
	/* 60000 x 7/11 = 38181.8, 60000 x 4/11 = 21818.2: 1 ms left over */
	cr_expect_eq(rows[0].billable_ms, 38182);
	cr_expect_eq(rows[1].billable_ms, 21818);
	free(rows);
}

Test(meter, warm_pool_then_thawed)
{
	struct floe_meter_event ev[] = {
		{ T0 - M(1) - S(5), FLOE_METER_INITIALIZING }, /* restoring for the pool */
		{ T0 - M(1), FLOE_METER_WARM_POOL },
		{ T0 + S(10), FLOE_METER_RUNNING }, /* thawed */
		{ T0 + S(40), FLOE_METER_STOPPED },
	};
	struct floe_meter_row *rows;
	long n = meter(ev, 4, FLOE_ROUND_MINUTE, &rows);
	cr_assert_eq(n, 4);
	expect_row(&rows[0], T0 - M(2), FLOE_METER_INITIALIZING, S(5), S(60), 20000);
	expect_row(&rows[1], T0 - M(1), FLOE_METER_WARM_POOL, S(60), S(60), 10000); /* 0.60/h */
	/* minute 0: 10 s frozen, 30 s serving -> 15 s + 45 s; rows in state order */
	expect_row(&rows[2], T0, FLOE_METER_RUNNING, S(30), S(45), 45000);
	expect_row(&rows[3], T0, FLOE_METER_WARM_POOL, S(10), S(15), 2500);
	free(rows);
}

Test(meter, a_running_replica_is_metered_up_to_now)
{
	struct floe_meter_event ev[] = { { T0 + S(50), FLOE_METER_RUNNING } };
	struct floe_meter_row *rows;
	long n = floe_meter_replica(ev, 1, NULL, 0, T0 + M(1) + S(5), FLOE_ROUND_MINUTE, &prices,
				    &rows);
	cr_assert_eq(n, 2);
	cr_expect_eq(rows[0].ms, S(10));
	cr_expect_eq(rows[1].ms, S(5));
	cr_expect_eq(rows[1].minute_ms, T0 + M(1));
	free(rows);
}

Test(meter, answers_count_in_their_minute_and_state_by_class)
{
	/* floed's counts per (minute, state): 1xx..5xx */
	struct floe_meter_answers ans[] = {
		{ T0, FLOE_METER_RUNNING, { 0, 1, 0, 0, 0 } },         /* a 200 at 0:55 */
		{ T0 + M(1), FLOE_METER_RUNNING, { 0, 7, 0, 0, 2 } },  /* 200s and 503s */
		{ T0 + M(2), FLOE_METER_DRAINING, { 0, 1, 0, 0, 0 } }, /* while draining */
		{ T0 + M(2), FLOE_METER_RUNNING, { 1, 0, 0, 0, 0 } },  /* a 101 */
		{ T0 + M(1), FLOE_METER_RUNNING, { 0, 3, 1, 0, 0 } },  /* a second entry adds up */
	};
	struct floe_meter_row *rows;
	long n = floe_meter_replica(life, 4, ans, 5, 0, FLOE_ROUND_MINUTE, &prices, &rows);
	cr_assert_eq(n, 5);
	cr_expect_eq(rows[1].requests[1], 1, "the 200 in minute 0, on its running row");
	for (int c = 0; c < 5; c++)
		cr_expect_eq(rows[0].requests[c], 0, "nothing on minute 0's initializing row");
	cr_expect_eq(rows[2].requests[1], 10, "7 + 3 200s in minute 1");
	cr_expect_eq(rows[2].requests[2], 1);
	cr_expect_eq(rows[2].requests[4], 2, "the 503s");
	cr_expect_eq(rows[4].requests[1], 1, "the 200 while draining");
	cr_expect_eq(rows[3].requests[0], 1, "the 101 on minute 2's running row");
	free(rows);
}

Test(meter, answers_in_a_state_without_time_go_to_the_longest_row_of_the_minute)
{
	/* Minute 2 has running (10 s) and draining (5 s), no initializing:
	 * counts said to be initializing (an answer at the instant of a
	 * transition) go to the running row, the minute's longest. */
	struct floe_meter_answers ans[] = {
		{ T0 + M(2), FLOE_METER_INITIALIZING, { 0, 0, 0, 4, 0 } },
		{ T0 + M(2), FLOE_METER_WARM_POOL, { 0, 2, 0, 0, 0 } },
	};
	struct floe_meter_row *rows;
	long n = floe_meter_replica(life, 4, ans, 2, 0, FLOE_ROUND_MINUTE, &prices, &rows);
	cr_assert_eq(n, 5);
	cr_expect_eq(rows[3].state, FLOE_METER_RUNNING);
	cr_expect_eq(rows[3].requests[3], 4);
	cr_expect_eq(rows[3].requests[1], 2);
	cr_expect_eq(rows[4].requests[1], 0, "not the shorter draining row");
	cr_expect_eq(rows[4].requests[3], 0);
	free(rows);
}

Test(meter, answers_in_a_minute_without_rows_are_dropped)
{
	struct floe_meter_answers ans[] = {
		{ T0 - M(1), FLOE_METER_RUNNING, { 0, 5, 0, 0, 0 } }, /* before the start */
		{ T0 + M(3), FLOE_METER_RUNNING, { 0, 6, 0, 0, 0 } }, /* after the stop */
		{ T0 + M(1), FLOE_METER_RUNNING, { 0, 1, 0, 0, 0 } },
	};
	struct floe_meter_row *rows;
	long n = floe_meter_replica(life, 4, ans, 3, 0, FLOE_ROUND_MINUTE, &prices, &rows);
	cr_assert_eq(n, 5);
	uint32_t total = 0;
	for (long i = 0; i < n; i++)
		for (int c = 0; c < 5; c++)
			total += rows[i].requests[c];
	cr_expect_eq(total, 1, "only minute 1's count is on a row");
	cr_expect_eq(rows[2].requests[1], 1);
	free(rows);
}

Test(meter, nothing_after_stop_and_nothing_for_an_empty_timeline)
{
	struct floe_meter_event ev[] = { { T0, FLOE_METER_STOPPED } };
	struct floe_meter_row *rows;
	cr_expect_eq(meter(ev, 1, FLOE_ROUND_MINUTE, &rows), 0);
	free(rows);
	cr_expect_eq(meter(NULL, 0, FLOE_ROUND_MINUTE, &rows), 0);
	free(rows);
}

Test(meter, events_out_of_order_are_refused)
{
	struct floe_meter_event ev[] = { { T0 + 10, FLOE_METER_RUNNING },
					 { T0, FLOE_METER_STOPPED } };
	struct floe_meter_row *rows;
	cr_expect_eq(meter(ev, 2, FLOE_ROUND_MINUTE, &rows), -EINVAL);
}

Test(meter, a_year_at_a_high_price_does_not_overflow)
{
	struct floe_meter_event ev[] = { { T0, FLOE_METER_RUNNING },
					 { T0 + M(60 * 24 * 365), FLOE_METER_STOPPED } };
	struct floe_meter_prices dear = { .per_hour_micro = { 0, UINT64_C(98765432100000) } };
	struct floe_meter_row *rows;
	long n = floe_meter_replica(ev, 2, NULL, 0, 0, FLOE_ROUND_MINUTE, &dear, &rows);
	cr_assert_eq(n, 60 * 24 * 365);
	unsigned __int128 sum = 0;
	for (long i = 0; i < n; i++)
		sum += rows[i].cost_micro;
	/* one minute = 1/60 hour of 98765432100000: 1646090535000 each, exact */
	cr_expect(sum == (unsigned __int128)UINT64_C(1646090535000) * (uint64_t)n);
	free(rows);
}

Test(meter, random_lifecycles_add_up)
{
	srand(42);
	for (int round = 0; round < 500; round++) {
		struct floe_meter_event ev[12];
		uint64_t t = T0 + (uint64_t)(rand() % 120000);
		size_t n = 1 + (size_t)(rand() % 10);
		for (size_t i = 0; i < n; i++) {
			ev[i].t_ms = t;
			ev[i].state = (enum floe_meter_state)(rand() % FLOE_METER_NSTATES);
			t += (uint64_t)(rand() % 200000);
		}
		ev[n].t_ms = t;
		ev[n].state = FLOE_METER_STOPPED;
		struct floe_meter_row *rows;
		long nr = meter(ev, n + 1, FLOE_ROUND_MINUTE, &rows);
		cr_assert_geq(nr, 0);
		uint64_t ms = 0;
		for (long i = 0; i < nr; i++) {
			ms += rows[i].ms;
			uint64_t minute_billable = 0;
			for (long j = 0; j < nr; j++)
				if (rows[j].minute_ms == rows[i].minute_ms)
					minute_billable += rows[j].billable_ms;
			cr_assert_eq(minute_billable, M(1), "round %d: a minute billed %llu ms",
				     round, (unsigned long long)minute_billable);
		}
		cr_assert_eq(ms, t - ev[0].t_ms, "round %d: rows %llu ms, lifetime %llu ms", round,
			     (unsigned long long)ms, (unsigned long long)(t - ev[0].t_ms));
		free(rows);
	}
}
