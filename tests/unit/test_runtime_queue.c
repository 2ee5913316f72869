/*
 * Unit tests for runtime/scale: the pure scaling policy that decides, from
 * an endpoint's observed state, how many replicas to start or drain. Single
 * decisions, a replayed trace of a cold start, burst, scale-up and scale to
 * zero, and a simulated endpoint driven by a pseudo-random demand trace that
 * checks the bounds the policy promises.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "scale.h"

struct ep {
	uint32_t ready, starting, in_flight, held;
	uint32_t target, min, max;
	bool idle;
};

static struct floe_scale_decision decide(struct ep e)
{
	struct floe_scale_input in = {
		.ready = e.ready,
		.starting = e.starting,
		.in_flight = e.in_flight,
		.held = e.held,
		.target_concurrency = e.target,
		.min_replica = e.min,
		.max_replica = e.max,
		.idle_expired = e.idle,
	};
	return floe_scale_decide(&in);
}

#define expect_decision(e, want_start, want_drain)                                  \
	do {                                                                        \
		struct floe_scale_decision d_ = decide(e);                          \
		cr_assert_eq(d_.start, (want_start), "start %u, want %u", d_.start, \
			     (unsigned)(want_start));                               \
		cr_assert_eq(d_.drain, (want_drain), "drain %u, want %u", d_.drain, \
			     (unsigned)(want_drain));                               \
	} while (0)

/* ------------------------------------------------------------------ cold */

Test(scale, cold_with_demand_starts_exactly_one)
{
	expect_decision(((struct ep){ .held = 1, .target = 4, .max = 5 }), 1, 0);
	/* A burst of 100 held requests still starts one: concurrent requests to
	 * a cold endpoint never start one replica each. */
	expect_decision(((struct ep){ .held = 100, .target = 4, .max = 5 }), 1, 0);
	expect_decision(((struct ep){ .held = 100, .target = 1, .max = 100 }), 1, 0);
}

Test(scale, cold_while_starting_waits)
{
	/* One is already coming up: the burst waits for it. */
	expect_decision(((struct ep){ .starting = 1, .held = 100, .target = 4, .max = 5 }), 0, 0);
}

Test(scale, cold_without_demand_stays_at_zero)
{
	expect_decision(((struct ep){ .target = 4, .max = 5 }), 0, 0);
	expect_decision(((struct ep){ .target = 4, .max = 5, .idle = true }), 0, 0);
}

Test(scale, min_replica_is_started_with_no_demand)
{
	expect_decision(((struct ep){ .target = 4, .min = 2, .max = 5 }), 2, 0);
	expect_decision(((struct ep){ .target = 4, .min = 2, .max = 5, .idle = true }), 2, 0);
	/* Demand does not add to the minimum when cold. */
	expect_decision(((struct ep){ .held = 50, .target = 4, .min = 2, .max = 5 }), 2, 0);
	/* Replicas already starting count towards the minimum. */
	expect_decision(((struct ep){ .starting = 1, .target = 4, .min = 2, .max = 5 }), 1, 0);
	expect_decision(((struct ep){ .ready = 1, .target = 4, .min = 2, .max = 5 }), 1, 0);
	expect_decision(((struct ep){ .ready = 2, .target = 4, .min = 2, .max = 5 }), 0, 0);
}

Test(scale, min_above_max_is_capped)
{
	expect_decision(((struct ep){ .target = 4, .min = 5, .max = 2 }), 2, 0);
}

/* ------------------------------------------------------------------ warm */

Test(scale, warm_at_target_does_nothing)
{
	/* 2 ready x target 4 = 8: exactly at target is not above it. */
	expect_decision(((struct ep){ .ready = 2, .in_flight = 8, .target = 4, .max = 5 }), 0, 0);
	expect_decision(
		((struct ep){ .ready = 2, .in_flight = 6, .held = 2, .target = 4, .max = 5 }), 0,
		0);
	expect_decision(((struct ep){ .ready = 1, .in_flight = 1, .target = 1, .max = 5 }), 0, 0);
}

Test(scale, warm_above_target_starts_one)
{
	expect_decision(((struct ep){ .ready = 2, .in_flight = 9, .target = 4, .max = 5 }), 1, 0);
	/* Held requests are demand too. */
	expect_decision(
		((struct ep){ .ready = 2, .in_flight = 8, .held = 1, .target = 4, .max = 5 }), 1,
		0);
	/* Far above target: still one at a time. */
	expect_decision(
		((struct ep){ .ready = 1, .in_flight = 4, .held = 500, .target = 4, .max = 5 }), 1,
		0);
}

Test(scale, warm_above_target_while_one_starts_waits)
{
	expect_decision(((struct ep){ .ready = 2,
				      .starting = 1,
				      .in_flight = 9,
				      .held = 40,
				      .target = 4,
				      .max = 5 }),
			0, 0);
}

Test(scale, never_above_max)
{
	expect_decision(
		((struct ep){ .ready = 5, .in_flight = 100, .held = 100, .target = 4, .max = 5 }),
		0, 0);
	expect_decision(
		((struct ep){ .ready = 4, .starting = 1, .in_flight = 100, .target = 4, .max = 5 }),
		0, 0);
	expect_decision(((struct ep){ .ready = 1, .in_flight = 100, .target = 4, .max = 1 }), 0, 0);
	expect_decision(((struct ep){ .held = 3, .target = 4, .max = 1 }), 1, 0);
}

Test(scale, large_counts_do_not_overflow)
{
	/* ready x target overflows 32 bits: must not wrap into "above target". */
	expect_decision(
		((struct ep){ .ready = 65536, .in_flight = 100000, .target = 65536, .max = 100000 }),
		0, 0);
}

/* ------------------------------------------------------------------ idle */

Test(scale, idle_drains_down_to_min)
{
	expect_decision(((struct ep){ .ready = 3, .target = 4, .max = 5, .idle = true }), 0, 3);
	expect_decision(((struct ep){ .ready = 3, .target = 4, .min = 1, .max = 5, .idle = true }),
			0, 2);
	expect_decision(((struct ep){ .ready = 1, .target = 4, .min = 1, .max = 5, .idle = true }),
			0, 0);
}

Test(scale, idle_with_demand_does_not_drain)
{
	expect_decision(
		((struct ep){ .ready = 3, .in_flight = 1, .target = 4, .max = 5, .idle = true }), 0,
		0);
	expect_decision(((struct ep){ .ready = 1, .held = 1, .target = 4, .max = 5, .idle = true }),
			0, 0);
}

Test(scale, not_idle_does_not_drain)
{
	expect_decision(((struct ep){ .ready = 3, .target = 4, .max = 5 }), 0, 0);
}

/* ---------------------------------------------------------------- replay */

struct step {
	const char *what;
	struct ep in;
	uint32_t start, drain;
};

/* One endpoint's life (target 4, min 0, max 3): a cold burst, scale-up one
 * replica at a time while load is above target, a hold at max, the load
 * going away, scale to zero, and a second wake-up. */
#define EP(r, s, f, h, i)                                                                    \
	{                                                                                    \
		.ready = r, .starting = s, .in_flight = f, .held = h, .target = 4, .max = 3, \
		.idle = i                                                                    \
	}
static const struct step trace[] = {
	{ "idle and cold", EP(0, 0, 0, 0, false), 0, 0 },
	{ "first request arrives", EP(0, 0, 0, 1, false), 1, 0 },
	{ "burst while starting", EP(0, 1, 0, 100, false), 0, 0 },
	{ "first replica ready, burst moves on", EP(1, 0, 4, 96, false), 1, 0 },
	{ "second starting", EP(1, 1, 4, 96, false), 0, 0 },
	{ "second ready, still above", EP(2, 0, 8, 92, false), 1, 0 },
	{ "third starting", EP(2, 1, 8, 92, false), 0, 0 },
	{ "at max, above target", EP(3, 0, 12, 88, false), 0, 0 },
	{ "queue drained, at target", EP(3, 0, 12, 0, false), 0, 0 },
	{ "load falls", EP(3, 0, 2, 0, false), 0, 0 },
	{ "quiet but not yet idle", EP(3, 0, 0, 0, false), 0, 0 },
	{ "idle timeout passes", EP(3, 0, 0, 0, true), 0, 3 },
	{ "draining done, at zero", EP(0, 0, 0, 0, true), 0, 0 },
	{ "woken again", EP(0, 0, 0, 1, false), 1, 0 },
	{ "one ready, light load", EP(1, 0, 1, 0, false), 0, 0 },
	{ "exactly at target", EP(1, 0, 4, 0, false), 0, 0 },
	{ "one over", EP(1, 0, 4, 1, false), 1, 0 },
};
#undef EP

Test(scale, replay_trace)
{
	for (size_t i = 0; i < sizeof(trace) / sizeof(trace[0]); i++) {
		struct floe_scale_decision d = decide(trace[i].in);
		cr_assert(d.start == trace[i].start && d.drain == trace[i].drain,
			  "step %zu (%s): start %u drain %u, want start %u drain %u", i,
			  trace[i].what, d.start, d.drain, trace[i].start, trace[i].drain);
	}
}

/* ------------------------------------------------------------- simulation */

static uint32_t rng_next(uint64_t *s)
{
	/* xorshift64*: a fixed seed gives the same trace on every run. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 2685821657736338717ULL) >> 32);
}

/*
 * Drive a simulated endpoint with a random demand trace: replicas take a
 * few ticks to start, decisions are applied as floed would. Checks the
 * promises on every tick: never above max, never drains below min or with
 * demand, a cold endpoint never starts more than one (or min) at once, a
 * warm one at most one, and demand always has a replica ready or starting.
 */
static void simulate(uint32_t min, uint32_t max, uint32_t target, uint64_t seed)
{
	struct ep e = { .target = target, .min = min, .max = max };
	uint32_t start_timer[64] = { 0 }; /* ticks left for each starting replica */
	uint32_t idle_ticks = 0;
	for (int tick = 0; tick < 5000; tick++) {
		/* Demand comes in bursts and quiet spells. */
		uint32_t r = rng_next(&seed);
		uint32_t demand = (tick / 500) % 2 ? 0 : r % (target * max * 2 + 1);
		if (r % 7 == 0)
			demand = 0;
		uint32_t capacity = e.ready * target;
		e.in_flight = demand < capacity ? demand : capacity;
		e.held = demand - e.in_flight;
		idle_ticks = demand ? 0 : idle_ticks + 1;
		e.idle = idle_ticks >= 20;

		uint32_t active = e.ready + e.starting;
		struct floe_scale_decision d = decide(e);
		cr_assert_leq(active + d.start, max, "tick %d: above max", tick);
		cr_assert_leq(d.drain, e.ready, "tick %d: drains more than ready", tick);
		if (d.drain) {
			cr_assert_eq(demand, 0, "tick %d: drain with demand", tick);
			cr_assert(e.idle, "tick %d: drain before idle", tick);
			cr_assert_geq(e.ready - d.drain, min, "tick %d: below min", tick);
		}
		cr_assert(!(d.start && d.drain), "tick %d: start and drain at once", tick);
		if (active == 0)
			cr_assert_leq(d.start, min > 1 ? min : 1, "tick %d: cold start of %u", tick,
				      d.start);
		else if (e.ready >= min && e.starting == 0)
			cr_assert_leq(d.start, 1, "tick %d: warm start of %u", tick, d.start);

		/* Apply: drained replicas go, started ones take 3 ticks. */
		e.ready -= d.drain;
		for (uint32_t i = 0; i < d.start; i++)
			start_timer[e.starting++] = 3;
		for (uint32_t i = 0; i < e.starting;) {
			if (--start_timer[i] == 0) {
				start_timer[i] = start_timer[--e.starting];
				e.ready++;
			} else {
				i++;
			}
		}
		cr_assert(!demand || e.ready + e.starting > 0,
			  "tick %d: demand with nothing ready or starting", tick);
		if (!e.idle)
			cr_assert_geq(e.ready + e.starting, min, "tick %d: below min", tick);
	}
}

Test(scale, simulated_endpoint_min0_max1)
{
	simulate(0, 1, 4, 0x1234);
}

Test(scale, simulated_endpoint_min0_max4)
{
	simulate(0, 4, 4, 0xdeadbeef);
}

Test(scale, simulated_endpoint_min2_max5)
{
	simulate(2, 5, 2, 0xfeedface);
}

Test(scale, simulated_endpoint_target1)
{
	simulate(1, 8, 1, 42);
}
