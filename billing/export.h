/*
 * The usage export: reads the ledger (see record.h for what floed writes),
 * meters every replica with the pure policy of meter.h and aggregates the
 * per-minute rows into the CSV of GET /v2/billing/usage.csv (and `floe
 * billing export`) or the JSON of GET /v2/billing/summary.
 *
 * Metering a replica: its events are its start (first state at start's t)
 * and each state record; its answers come from its answers records. A
 * timeline without `stopped` ends at now_ms if its instance is the live
 * floed (live_instance), else (that floed crashed, and its replicas died
 * with it) at the latest t of any record of that instance, never before the
 * replica's own last event. A replica whose start is missing (lost to
 * damage) cannot be billed: its records are counted (orphans) and the
 * export is incomplete; so are records that follow their replica's
 * stopped (none should: see record.h). Copies of a (replica, seq) are
 * dropped by the ledger reader (and, while the replica is open, by seq here
 * too: a seq not above the replica's last is skipped). A
 * state record whose t is before the replica's previous event (a wall clock
 * stepped back) counts from that previous event.
 *
 * CSV (RFC 4180, CRLF): header
 *   period_start,period_end,namespace,endpoint,replica,instance_type,gpus,
 *   state,seconds,billable_seconds,requests,unit_price_per_hour,cost,currency
 * periods half-open, clipped to [from, to), "YYYY-MM-DDTHH:MM:SSZ"; replica
 * (the ledger name "<replica id>@<instance>") empty with group_by=endpoint;
 * seconds and billable_seconds = ms / 1000 with 3 decimals; requests all
 * classes; unit_price_per_hour and cost with 6 decimals. One row per
 * distinct (period, namespace, endpoint, replica, instance_type, gpus,
 * state, unit price, currency), sorted in that order (state in meter enum
 * order, currency last), rows with 0 ms left out. A row's cost is the exact
 * sum of its per-(replica, minute, state) costs as rounded by meter.c, so
 * every granularity adds up to the same totals. Same ledger and query:
 * same bytes.
 *
 * JSON summary:
 *   {"from":ISO,"to":ISO,"namespace":NS|null,"incomplete":bool,
 *    "damaged":[{"file":BASENAME,"offset":N,"length":N}],
 *    "endpoints":[{"namespace","endpoint","replicas":N,
 *      "ms":{"initializing","running","draining","warm_pool"},
 *      "billable_ms":N,"requests":{"1xx".."5xx"},"cost":"D.DDDDDD",
 *      "currency":C}]}
 * one entry per (namespace, endpoint, currency), sorted that way; replicas
 * counts lifetimes with time in [from, to).
 *
 * Cost: memory is the interned strings and a small record per replica seen
 * (its name, ~100 bytes), plus the events of replicas still
 * open at the point of the read (a replica is metered and its events freed
 * when its stopped record is read), plus the aggregate (one cell per output
 * row before merging). Everything blocks (file I/O); floed calls it from
 * libuv's thread pool. Not thread-safe per call, but calls share nothing.
 */
#ifndef FLOE_EXPORT_H
#define FLOE_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "ledger.h"

#define FLOE_EXPORT_DEFAULT_MAX_RANGE_MS (366ull * 86400000) /* billing.max_export_range */

enum floe_export_granularity {
	FLOE_EXPORT_MINUTE,
	FLOE_EXPORT_HOUR,
	FLOE_EXPORT_DAY
};
enum floe_export_group {
	FLOE_EXPORT_BY_ENDPOINT,
	FLOE_EXPORT_BY_REPLICA
};

/** What to export. from_ms and to_ms are whole UTC minutes, from < to. */
struct floe_export_query {
	char *ns; /* owned; NULL: every namespace */
	uint64_t from_ms, to_ms;
	enum floe_export_granularity granularity;
	enum floe_export_group group_by;
};

/**
 * Parse a URL query string ("a=b&c=d", NULL or "" = no parameters) into *q:
 * namespace (empty or absent: all), from, to, granularity (minute|hour|day,
 * default day), group_by (endpoint|replica, default endpoint). Names and
 * values are percent-decoded; '+' stays a plus (so that "+01:00" offsets
 * work unencoded). Unknown parameters are ignored. Times: see
 * floe_export_time_parse. Defaults: to = now_ms rounded up to a whole
 * minute; from = 00:00 UTC on the first day of to's month, or of the month
 * before when to is exactly that instant. max_range_ms: longest to - from
 * allowed (0: no limit). Returns 0, or -EINVAL with err naming the parameter
 * ("from: '2026-13-01' is not ..."); *q is zeroed then (nothing to destroy).
 */
int floe_export_query_parse(const char *query, uint64_t now_ms, uint64_t max_range_ms,
			    struct floe_export_query *q, floe_error *err);

/** Free what a parsed query owns and zero it. */
void floe_export_query_destroy(struct floe_export_query *q);

/**
 * Parse an ISO-8601 UTC instant: YYYY-MM-DD (00:00), YYYY-MM-DDTHH:MMZ,
 * YYYY-MM-DDTHH:MM:SSZ, or either of the last two with a +HH:MM / -HH:MM
 * offset instead of Z; years 1970..9999. Sets *ms (Unix ms). Returns 0, or
 * -EINVAL for anything else, -EDOM for a valid instant that is not a whole
 * UTC minute (seconds other than 00). No time zone of the process is used.
 */
int floe_export_time_parse(const char *s, uint64_t *ms);

/** Format Unix ms (truncated to the second) as "YYYY-MM-DDTHH:MM:SSZ" (20 bytes + NUL). */
void floe_export_time_format(uint64_t ms, char out[21]);

/** What an export read and how complete it is. */
struct floe_export_report {
	bool incomplete;             /* damage skipped, or records that cannot be billed */
	size_t n_damaged;            /* damaged ranges skipped in the ledger */
	floe_ledger_damage *damaged; /* owned (file is the segment's path) */
	uint64_t records;            /* records read (each key once) */
	uint64_t duplicates;         /* copies of a (replica, seq) already read, skipped */
	uint64_t orphans;     /* records of replicas whose start is missing (or after stopped) */
	uint64_t undecodable; /* records whose payload is not a valid record */
	uint64_t replicas;    /* replica lifetimes with time in [from, to) */
	uint64_t rows;        /* CSV rows (without the header) or summary entries */
};

/**
 * Export the ledger in ledger_dir (a missing directory is an empty ledger)
 * for q as CSV, appended to out. live_instance: floed's own instance id
 * (its open replicas are metered up to now_ms); NULL: none is live. rep
 * (required) receives the report; release it with
 * floe_export_report_destroy (also after an error). Returns 0, or -errno
 * with err set when the ledger cannot be read (out may then hold a part).
 */
int floe_export_csv(const char *ledger_dir, const struct floe_export_query *q,
		    const char *live_instance, uint64_t now_ms, struct floe_buf *out,
		    struct floe_export_report *rep, floe_error *err);

/** Like floe_export_csv, the JSON summary (q's granularity and group_by are not used). */
int floe_export_summary(const char *ledger_dir, const struct floe_export_query *q,
			const char *live_instance, uint64_t now_ms, struct floe_buf *out,
			struct floe_export_report *rep, floe_error *err);

/** Free what a report owns and zero it. */
void floe_export_report_destroy(struct floe_export_report *rep);

/**
 * The Floe-Ledger-Incomplete header value for a report, or NULL when it is
 * complete: "N damaged range(s): FILE@OFFSET+LENGTH, ..." (file basenames),
 * followed by "; N record(s) of replicas whose start is missing" and/or
 * "; N undecodable record(s)" when there are such. Caller frees.
 */
char *floe_export_incomplete_header(const struct floe_export_report *rep);

#endif
