/*
 * Scaling policy, a pure function of the endpoint's observed state so tests
 * can replay traces (the full autoscaler of a later issue replaces it).
 */
#ifndef FLOE_SCALE_H
#define FLOE_SCALE_H

#include <stdbool.h>
#include <stdint.h>

struct floe_scale_input {
	uint32_t ready;     /* replicas serving */
	uint32_t starting;  /* replicas coming up */
	uint32_t in_flight; /* requests on replicas */
	uint32_t held;      /* requests waiting for a replica */
	uint32_t target_concurrency;
	uint32_t min_replica;
	uint32_t update_floor; /* while a new definition replaces the replicas: a minimum too */
	uint32_t max_replica;
	bool idle_expired; /* no request for scale_to_zero_timeout */
};

struct floe_scale_decision {
	uint32_t start; /* replicas to start now */
	uint32_t drain; /* ready replicas to drain now (idle scale-down) */
	/* replicas (ready + starting) the endpoint should have: ready + starting
	 * + start - drain, except above max_replica, where nothing is drained
	 * but desired is max_replica */
	uint32_t desired;
};

/**
 * Cold (nothing ready or starting) with demand or a minimum: start one
 * replica, or min_replica; concurrent requests to a cold endpoint never
 * start one each. Warm: start one more when in-flight plus held requests
 * per ready replica exceed target_concurrency and none is already starting.
 * Never above max_replica, never below min_replica. Idle past the timeout:
 * drain down to min_replica. desired is the count all this aims at, within
 * the bounds above.
 */
struct floe_scale_decision floe_scale_decide(const struct floe_scale_input *in);

#endif
