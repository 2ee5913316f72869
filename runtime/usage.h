/*
 * Usage recording: floed's side of billing. The activator reports each
 * replica's state changes and answers here; this module turns them into
 * usage records (billing/record.h) and a writer thread appends them to the
 * ledger in DATA/ledger with one fsync per commit interval (group commit).
 *
 * What a crash loses: the records of the last commit interval (1 s by
 * default), never more. Replicas die with floed (PDEATHSIG), and each
 * commit that has nothing else to write while replicas are alive writes a
 * tick, so the export ends a crashed instance's replicas at its last
 * durable record.
 *
 * Write errors (ENOSPC, EIO on fsync) are logged, counted in
 * floe_ledger_errors_total, and the uncommitted records are appended again
 * with a backoff until a commit succeeds; nothing is dropped. They stay in
 * memory meanwhile.
 *
 * Everything here runs on the loop thread except the writer.
 */
#ifndef FLOE_USAGE_H
#define FLOE_USAGE_H

#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "error.h"
#include "meter.h"
#include "metrics.h"

struct floe_usage;
struct floe_usage_replica;

/**
 * Open DATA_DIR/ledger (recovering a torn tail left by a crash) and start
 * the writer thread. billing is copied. Returns 0 or -errno with err set.
 */
int floe_usage_open(uv_loop_t *loop, const char *data_dir, struct floe_metrics *metrics,
		    const struct floe_billing_config *billing, struct floe_usage **out,
		    floe_error *err);

/** A reload: prices and currency apply to replicas started from now on. */
void floe_usage_configure(struct floe_usage *u, const struct floe_billing_config *billing);

/** This floed's instance id (8 hex digits, new at every start). */
const char *floe_usage_instance(const struct floe_usage *u);

/** The ledger directory (DATA_DIR/ledger). */
const char *floe_usage_dir(const struct floe_usage *u);

/** Longest from..to range of an export (billing.max_export_range). */
uint64_t floe_usage_max_export_range(const struct floe_usage *u);

/**
 * A replica began, in state (INITIALIZING, or WARM_POOL for a warm-pool
 * replica). replica_id is unique within this floed ("chat-3"); its ledger
 * name adds the instance. Returns its handle.
 */
struct floe_usage_replica *floe_usage_replica_start(struct floe_usage *u,
						    const struct floe_endpoint_config *ep,
						    const char *replica_id,
						    enum floe_meter_state state);

/** The replica is now in state; FLOE_METER_STOPPED ends it and frees ur. */
void floe_usage_replica_state(struct floe_usage_replica *ur, enum floe_meter_state state);

/** The replica answered a request with this HTTP status. */
void floe_usage_replica_answer(struct floe_usage_replica *ur, int status);

/**
 * Stop recording: replicas not reported stopped yet are ended now, what is
 * left is queued, and the loop handles close. Reports made after this are
 * ignored (handles stay valid until floe_usage_free, which then waits for
 * the writer's last commit).
 */
void floe_usage_close(struct floe_usage *u);

/** Wait for the writer's last commit, close the ledger and free. */
void floe_usage_free(struct floe_usage *u);

#endif
