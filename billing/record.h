/*
 * Usage records: what floed writes into the ledger about each replica, and
 * what the export reads back. The ledger is event-sourced: a replica's
 * time is never written as "N seconds"; it is the span between its
 * recorded transitions, metered at export time by the pure policy in
 * meter.h. So a running replica costs no writes while nothing changes.
 *
 * Record kinds (the payload of one ledger record, a msgpack map; every
 * kind has "k" (kind name) and "t" (Unix ms when it was made)):
 *
 *   start    a replica began. Key replica = the replica's ledger name
 *            ("<replica id>@<instance>"), seq 1. Carries everything the
 *            export needs to bill it: the floed instance, namespace,
 *            endpoint, instance type, GPU count, currency, rounding,
 *            price per hour of each billable state (fixed at start), and
 *            its first state (initializing, or warm_pool for a pool
 *            replica).
 *   state    the replica entered a state (including stopped, which ends
 *            it). seq 2, 3, ... in the replica's order.
 *   answers  requests the replica answered in one UTC minute, by the
 *            state it was in and the status class (1xx..5xx). Written
 *            once the minute is over (or when the replica stops).
 *   tick     floed instance I was alive at t with replicas running. Key
 *            replica = "@<instance>". Written at a commit in which
 *            nothing else was, so that after a crash (replicas die with
 *            floed) every open replica of I is known to have ended at
 *            the last record of I, give or take one commit interval.
 *
 * Keys: (replica, minute of t, seq). seq increases by one per record of a
 * replica (per tick for "@<instance>"), so a record appended twice (a
 * retried commit) has the same key and readers count it once.
 * A replica's answers records come before its stopped record (the last
 * minute's answers are written at stop, ahead of it): the export meters a
 * replica when it reads stopped; a record of it after that cannot be
 * billed (counted as an orphan, the export flagged incomplete).
 *
 * Wire format: one msgpack map, keys are short strings; values:
 *   "k"        str    "start" | "state" | "answers" | "tick"      (all)
 *   "t"        uint   Unix ms                                      (all)
 *   "instance" str    floed instance id                  (start, tick)
 *   "ns"       str    namespace                                (start)
 *   "endpoint" str                                             (start)
 *   "itype"    str    instance type ("cpu", a GPU model)       (start)
 *   "gpus"     uint   GPU count (<= UINT32_MAX)                (start)
 *   "cur"      str    currency ("USD")                         (start)
 *   "round"    str    "minute" | "second"                      (start)
 *   "prices"   array of 4 uint: micro-currency per hour of
 *                     initializing, running, draining, warm_pool (start)
 *   "state"    str    "initializing" | "running" | "draining" |
 *                     "warm_pool" | "stopped" (start: a billable state
 *                     only)                                (start, state)
 *   "minute"   uint   Unix minute of the counts              (answers)
 *   "req"      array of [state index 0..3, c1xx, c2xx, c3xx, c4xx, c5xx]
 *                     (uint each), one per state with any count, each
 *                     state at most once                      (answers)
 * Strings are msgpack str of 0..FLOE_RECORD_MAX_STR bytes. Every field of
 * the kind is required; a key given twice, a wrong type, a value out of
 * range or trailing bytes make the payload malformed. Other keys are
 * skipped whatever their value.
 */
#ifndef FLOE_RECORD_H
#define FLOE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "meter.h"

#define FLOE_RECORD_MAX_STR 255u /* longest string field, bytes */

enum floe_record_kind {
	FLOE_RECORD_START = 0,
	FLOE_RECORD_STATE,
	FLOE_RECORD_ANSWERS,
	FLOE_RECORD_TICK,
};

/** A string that need not be NUL-terminated (decoded fields point into the payload). */
struct floe_str {
	const char *p;
	uint32_t len;
};

struct floe_record {
	enum floe_record_kind kind;
	uint64_t t_ms;
	/* start, tick */
	struct floe_str instance;
	/* start */
	struct floe_str ns, endpoint, instance_type, currency;
	uint32_t gpus;
	enum floe_meter_rounding rounding;
	struct floe_meter_prices prices;
	/* start (first state), state */
	enum floe_meter_state state;
	/* answers */
	uint64_t minute;                          /* Unix minute (ms / 60000) */
	uint32_t requests[FLOE_METER_NSTATES][5]; /* [state][class 1xx..5xx] */
};

/**
 * Append the msgpack encoding of rec to out. Returns 0, or -EINVAL for a
 * field out of range (a string over FLOE_RECORD_MAX_STR, an unknown state).
 */
int floe_record_encode(const struct floe_record *rec, struct floe_buf *out);

/**
 * Decode one payload. String fields of *rec point into payload (valid as
 * long as it is). Unknown map keys are ignored (newer writers may add
 * fields). Returns 0, or -EBADMSG for a payload that is not a well-formed
 * record of a known kind.
 */
int floe_record_decode(const void *payload, size_t len, struct floe_record *rec);

/** "initializing", "running", "draining", "warm_pool", "stopped". */
const char *floe_record_state_name(enum floe_meter_state s);

#endif
