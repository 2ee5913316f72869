/*
 * The metering policy (see meter.h for the rules). One pass over the
 * timeline, a minute at a time: per-state milliseconds accumulate for the
 * current minute and are turned into rows when the timeline leaves it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "meter.h"
#include "xalloc.h"

#define MINUTE_MS UINT64_C(60000)
#define HOUR_MS UINT64_C(3600000)

struct builder {
	struct floe_meter_row *rows;
	size_t n, cap;
	enum floe_meter_rounding rounding;
	const struct floe_meter_prices *prices;
	uint64_t minute; /* the minute being accumulated, UINT64_MAX: none */
	uint64_t ms[FLOE_METER_NSTATES];
};

static uint64_t cost_micro(uint64_t billable_ms, uint64_t per_hour_micro)
{
	/* A row is at most a minute, so the product fits 64 bits for any price
	 * under ~3e8 an hour, and a 64-bit division by a constant is a
	 * multiply; the 128-bit path (a library call) is kept for the rest. */
	if (per_hour_micro <= (UINT64_MAX - HOUR_MS / 2) / MINUTE_MS && billable_ms <= MINUTE_MS)
		return (billable_ms * per_hour_micro + HOUR_MS / 2) / HOUR_MS;
	unsigned __int128 x = (unsigned __int128)billable_ms * per_hour_micro + HOUR_MS / 2;
	return (uint64_t)(x / HOUR_MS);
}

static void flush(struct builder *b)
{
	if (b->minute == UINT64_MAX)
		return;
	uint64_t total = 0;
	int most = -1;
	for (int s = 0; s < FLOE_METER_NSTATES; s++) {
		total += b->ms[s];
		if (b->ms[s] > 0 && (most < 0 || b->ms[s] > b->ms[most]))
			most = s;
	}
	if (total == 0) {
		b->minute = UINT64_MAX;
		return;
	}
	uint64_t billable[FLOE_METER_NSTATES] = { 0 };
	if (b->rounding == FLOE_ROUND_MINUTE) {
		/* Most minutes are in one state, or whole: then the split is
		 * exact without dividing (an export meters millions of minutes,
		 * and four 64-bit divisions a minute were most of its cost). */
		if (b->ms[most] == total) {
			billable[most] = MINUTE_MS;
		} else if (total == MINUTE_MS) {
			memcpy(billable, b->ms, sizeof(billable));
		} else {
			uint64_t given = 0;
			for (int s = 0; s < FLOE_METER_NSTATES; s++) {
				billable[s] = b->ms[s] * MINUTE_MS / total;
				given += billable[s];
			}
			billable[most] += MINUTE_MS - given;
		}
	} else {
		for (int s = 0; s < FLOE_METER_NSTATES; s++)
			billable[s] = (b->ms[s] + 999) / 1000 * 1000;
	}
	for (int s = 0; s < FLOE_METER_NSTATES; s++) {
		if (b->ms[s] == 0)
			continue;
		if (b->n == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 16;
			b->rows = xrealloc(b->rows, b->cap * sizeof(*b->rows));
		}
		struct floe_meter_row *r = &b->rows[b->n++];
		memset(r, 0, sizeof(*r));
		r->minute_ms = b->minute;
		r->state = (enum floe_meter_state)s;
		r->ms = b->ms[s];
		r->billable_ms = billable[s];
		r->cost_micro =
			cost_micro(billable[s], b->prices ? b->prices->per_hour_micro[s] : 0);
	}
	memset(b->ms, 0, sizeof(b->ms));
	b->minute = UINT64_MAX;
}

/* Account [from, to) in state s, across minute boundaries. */
static void span(struct builder *b, uint64_t from, uint64_t to, enum floe_meter_state s)
{
	while (from < to) {
		uint64_t minute = from - from % MINUTE_MS;
		if (minute != b->minute) {
			flush(b);
			b->minute = minute;
		}
		uint64_t end = minute + MINUTE_MS < to ? minute + MINUTE_MS : to;
		b->ms[s] += end - from;
		from = end;
	}
}

long floe_meter_replica(const struct floe_meter_event *events, size_t n_events,
			const struct floe_meter_answers *answers, size_t n_answers, uint64_t now_ms,
			enum floe_meter_rounding rounding, const struct floe_meter_prices *prices,
			struct floe_meter_row **rows)
{
	size_t cap = 0;
	*rows = NULL;
	long n = floe_meter_replica_into(events, n_events, answers, n_answers, now_ms, rounding,
					 prices, rows, &cap);
	if (n <= 0) {
		free(*rows);
		*rows = NULL;
	}
	return n;
}

long floe_meter_replica_into(const struct floe_meter_event *events, size_t n_events,
			     const struct floe_meter_answers *answers, size_t n_answers,
			     uint64_t now_ms, enum floe_meter_rounding rounding,
			     const struct floe_meter_prices *prices, struct floe_meter_row **rows,
			     size_t *cap)
{
	for (size_t i = 0; i < n_events; i++)
		if ((i > 0 && events[i].t_ms < events[i - 1].t_ms) ||
		    (unsigned)events[i].state > FLOE_METER_STOPPED)
			return -EINVAL;
	struct builder b = { .rows = *rows,
			     .cap = *cap,
			     .rounding = rounding,
			     .prices = prices,
			     .minute = UINT64_MAX };
	for (size_t i = 0; i < n_events; i++) {
		if (events[i].state == FLOE_METER_STOPPED)
			continue;
		uint64_t to = i + 1 < n_events ? events[i + 1].t_ms : now_ms;
		if (to > events[i].t_ms)
			span(&b, events[i].t_ms, to, events[i].state);
	}
	flush(&b);
	/* Answers: the row of their minute and state; a state with no time in
	 * that minute (counts for the very instant of a transition) falls back
	 * to the minute's row with the most time. Rows are in minute order, so
	 * the minute is found by binary search: an export meters every replica
	 * of a month, some with many answered minutes. */
	for (size_t a = 0; a < n_answers; a++) {
		if ((unsigned)answers[a].state >= FLOE_METER_NSTATES)
			continue;
		uint64_t minute = answers[a].minute_ms - answers[a].minute_ms % MINUTE_MS;
		size_t lo = 0, hi = b.n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (b.rows[mid].minute_ms < minute)
				lo = mid + 1;
			else
				hi = mid;
		}
		struct floe_meter_row *hit = NULL, *most = NULL;
		for (size_t i = lo; i < b.n && b.rows[i].minute_ms == minute; i++) {
			if (b.rows[i].state == answers[a].state)
				hit = &b.rows[i];
			if (!most || b.rows[i].ms > most->ms)
				most = &b.rows[i];
		}
		if (!hit)
			hit = most;
		if (hit)
			for (int c = 0; c < 5; c++)
				hit->requests[c] += answers[a].requests[c];
	}
	*rows = b.rows;
	*cap = b.cap;
	return (long)b.n;
}
