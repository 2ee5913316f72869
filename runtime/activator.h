/*
 * The activator: floed's data plane. It routes each request to an endpoint
 * (/endpoints/NAME/... or the OpenAI body's "model"), holds it in the
 * endpoint's bounded queue while a replica comes up, hands it to the proxy
 * once one is ready, scales replicas between min and max, and scales an
 * idle endpoint to zero.
 */
#ifndef FLOE_ACTIVATOR_H
#define FLOE_ACTIVATOR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "error.h"
#include "metrics.h"
#include "server.h"

struct floe_activator;

struct floe_activator_opts {
	const char *data_dir;  /* replica logs go to DATA_DIR/logs/ENDPOINT/ */
	const char *init_path; /* the floe-init executable */
	uint64_t replica_log_max_bytes;
};

/** The data-plane handler for floe_server_listen; set server->data to the activator. */
extern const struct floe_server_handler floe_activator_handler;

/** New activator; metrics (not owned) receives its families. */
struct floe_activator *floe_activator_new(uv_loop_t *loop, struct floe_metrics *metrics,
					  const struct floe_activator_opts *opts);

/**
 * Make the endpoints match cfg: add new ones, restart changed ones (their old
 * replicas drain), remove missing ones (held requests get 404, replicas
 * drain and stop), keep equal ones untouched. Starts min_replica replicas.
 */
void floe_activator_apply(struct floe_activator *a, const struct floe_config *cfg);

/**
 * Shutdown: held requests without a ready replica get 503, in-flight ones
 * finish, then every replica stops. done runs once nothing is left (requests
 * and replica processes). After grace_ms everything is killed.
 */
void floe_activator_shutdown(struct floe_activator *a, uint64_t grace_ms,
			     void (*done)(struct floe_activator *a, void *arg), void *arg);

/** Free (after shutdown completed). */
void floe_activator_free(struct floe_activator *a);

#endif
