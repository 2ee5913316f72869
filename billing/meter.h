/*
 * Metering policy: a replica's life, as a pure function, into per-minute
 * usage rows and their cost. No I/O, no clock: floed records transitions
 * and answers; tests replay synthetic lifecycles.
 *
 * Usage is split by UTC minute [m, m+60 s) and by state. Times are integer
 * milliseconds, so rows add up exactly to the replica's lifetime.
 *
 * Billable quantity, per replica:
 *  - FLOE_ROUND_MINUTE (default): every UTC minute in which the replica
 *    existed bills one whole replica-minute, however little of it was used
 *    (a started minute). That minute is split across the states seen in it
 *    in proportion to their time, in whole milliseconds; the remainder of
 *    the division goes to the state with the most time (ties: the earlier
 *    state in enum order). So a minute is never billed twice, even when the
 *    replica changed state in it, and the billable time of every minute
 *    adds up to exactly 60,000 ms.
 *  - FLOE_ROUND_SECOND: each row's time rounded up to a whole second.
 *
 * Cost = billable ms x price per hour / 3,600,000, in millionths of the
 * currency (fixed point; no binary floats), rounded half up per row.
 */
#ifndef FLOE_METER_H
#define FLOE_METER_H

#include <stddef.h>
#include <stdint.h>

enum floe_meter_state {
	FLOE_METER_INITIALIZING = 0, /* starting or restoring, until ready */
	FLOE_METER_RUNNING,          /* ready */
	FLOE_METER_DRAINING,
	FLOE_METER_WARM_POOL, /* restored and frozen */
	FLOE_METER_STOPPED,   /* gone: ends the timeline */
};
#define FLOE_METER_NSTATES 4 /* billable states */

enum floe_meter_rounding {
	FLOE_ROUND_MINUTE = 0,
	FLOE_ROUND_SECOND
};

/** From t_ms (Unix time, ms) on, the replica is in state. */
struct floe_meter_event {
	uint64_t t_ms;
	enum floe_meter_state state;
};

/**
 * Requests the replica answered in one UTC minute while in one state, by
 * status class (1xx..5xx): floed counts answers per minute and state, it
 * does not record each one.
 */
struct floe_meter_answers {
	uint64_t minute_ms; /* start of the UTC minute (a multiple of 60,000) */
	enum floe_meter_state state;
	uint32_t requests[5];
};

/** Price per hour of each state, in millionths of the currency (0: free). */
struct floe_meter_prices {
	uint64_t per_hour_micro[FLOE_METER_NSTATES];
};

struct floe_meter_row {
	uint64_t minute_ms; /* start of the UTC minute */
	enum floe_meter_state state;
	uint64_t ms;          /* time in this state within the minute */
	uint64_t billable_ms; /* see the rounding rules above */
	uint64_t cost_micro;
	uint32_t requests[5]; /* answered in this minute in this state, by class 1xx..5xx */
};

/**
 * Meter one replica. events: in time order, the first is its start, the
 * last FLOE_METER_STOPPED (a timeline still running is metered up to
 * now_ms instead). answers (any order; several entries for one minute and
 * state add up) go to the row of their minute and state; if that row has
 * no time (counts for the instant of a transition), to the minute's row
 * with the most time (ties: the earlier state); if the minute has no row at
 * all (outside the timeline), they are dropped. minute_ms that is not a
 * whole minute counts in the minute it falls in. Rows come out in time,
 * then state order; *rows is malloc'd (NULL when there are none). Returns
 * the row count, or -EINVAL for events out of order or an unknown state.
 */
long floe_meter_replica(const struct floe_meter_event *events, size_t n_events,
			const struct floe_meter_answers *answers, size_t n_answers, uint64_t now_ms,
			enum floe_meter_rounding rounding, const struct floe_meter_prices *prices,
			struct floe_meter_row **rows);

/**
 * The same, into a buffer the caller keeps across calls (an export meters
 * hundreds of thousands of replicas): *rows holds *cap rows and is grown
 * with realloc as needed. Start with NULL and 0; free(*rows) when done.
 */
long floe_meter_replica_into(const struct floe_meter_event *events, size_t n_events,
			     const struct floe_meter_answers *answers, size_t n_answers,
			     uint64_t now_ms, enum floe_meter_rounding rounding,
			     const struct floe_meter_prices *prices, struct floe_meter_row **rows,
			     size_t *cap);

#endif
