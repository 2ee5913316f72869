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
#include "criu.h"
#include "error.h"
#include "metrics.h"
#include "proc.h"
#include "server.h"
#include "usage.h"

struct floe_activator;
struct floe_endpoint_status;

struct floe_activator_opts {
	const char *data_dir;  /* replica logs go to DATA_DIR/logs/ENDPOINT/ */
	const char *init_path; /* the floe-init executable */
	uint64_t replica_log_max_bytes;
	uint64_t warm_pool_memory; /* bytes all warm pools may hold (0: no cap) */
	bool snapshots;            /* false: never probe CRIU, fresh starts only */
	struct floe_usage *usage;  /* where replica time and answers are recorded (may be NULL) */
	/* Told on the loop each time an endpoint's state (FLOE_EP_*) changes,
	 * for its status history; NULL: nobody listens. */
	void (*on_status)(void *arg, const struct floe_endpoint_config *cfg,
			  const struct floe_endpoint_status *st);
	void *status_arg;
};

/** What snapshots can do on this machine, as probed at start (for the control plane). */
const struct floe_criu_caps *floe_activator_criu(const struct floe_activator *a);
bool floe_activator_freezer(const struct floe_activator *a);

/** The data directory (snapshots live in DATA_DIR/snapshots). */
const char *floe_activator_data_dir(const struct floe_activator *a);

/**
 * The names of the served endpoints of namespace ns, NULL-terminated,
 * malloc'd (free each and the array). For checks made off the loop.
 */
char **floe_activator_endpoints_of(const struct floe_activator *a, const char *ns);

/** An operator removed snapshot KEY (control plane): forget it wherever it is in use. */
void floe_activator_snapshot_removed(struct floe_activator *a, const char *key);

/** An endpoint's state, in the words of Hugging Face Inference Endpoints. */
enum floe_endpoint_state {
	FLOE_EP_SCALED_TO_ZERO, /* no replica: the next request starts one */
	FLOE_EP_INITIALIZING,   /* a replica is starting, none ready */
	FLOE_EP_RUNNING,        /* at least one replica ready */
	FLOE_EP_PAUSED,         /* paused: no replicas, requests get 503 */
	FLOE_EP_FAILED,         /* the last starts failed (backing off) */
	FLOE_EP_UPDATING,       /* a new definition: its replicas replace the old ones */
	FLOE_EP_UPDATE_FAILED,  /* ... and they failed to start (backing off) */
};

struct floe_endpoint_status {
	enum floe_endpoint_state state;
	char message[256];
	uint32_t ready, starting, warm, held;
	uint32_t target; /* replicas it is heading for (Hugging Face's targetReplica) */
	bool paused;
};

/** The config of the served endpoint name (valid until the next reload), or NULL. */
const struct floe_endpoint_config *floe_activator_endpoint_config(const struct floe_activator *a,
								  const char *name);

/** The status of the served endpoint name. 0, or -ENOENT. */
int floe_activator_endpoint_status(const struct floe_activator *a, const char *name,
				   struct floe_endpoint_status *st);

/**
 * Pause name: held requests get 503, every replica drains (in-flight
 * requests finish) and pool replicas stop; until resumed, requests get 503
 * at once and never wake it. 0 (also when already paused), or -ENOENT.
 */
int floe_activator_pause(struct floe_activator *a, const char *name);

/** Resume a paused endpoint (min_replica start again). 0, -ENOENT, or -EALREADY when not paused. */
int floe_activator_resume(struct floe_activator *a, const char *name);

/**
 * Scale name to zero now: starting and ready replicas drain (the warm pool
 * stays); min_replica is not restored until the next request. 0, or -ENOENT.
 */
int floe_activator_scale_to_zero(struct floe_activator *a, const char *name);

/** The data-plane handler for floe_server_listen; set server->data to the activator. */
extern const struct floe_server_handler floe_activator_handler;

/**
 * The tokens the data plane checks for `authenticated` and `private`
 * endpoints (not copied: the caller keeps auth alive until the next call).
 * NULL or none: single-user, every endpoint is open.
 */
void floe_activator_set_auth(struct floe_activator *a, const struct floe_auth_config *auth);

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

/** One live replica, as the control plane lists it (floe_activator_replicas). */
struct floe_replica_info {
	char id[80];           /* "chat-3": names its log file DATA/logs/chat/chat-3.log */
	const char *state;     /* "starting", "ready", "draining", "stopping" or "warm" */
	int pid;               /* floe-init's pid; 0 while a CRIU restore has no process yet */
	const char *cold_kind; /* "fresh", "restore" or "warm_pool" */
	double cold_seconds;   /* start to ready (the cold start metric); < 0 until ready */
	uint64_t started_ms;   /* Unix ms when floed began starting it (or thawed it) */
	uint64_t ready_ms;     /* Unix ms when it became ready; 0 until then */
	double uptime_seconds; /* since started_ms */
	uint32_t in_flight;    /* requests it is answering now */
	uint32_t gpus;         /* the endpoint's resources.gpus */
	char snapshot[65];     /* key of the snapshot it was restored from, "" when none */
};

/**
 * The live replicas (not the dead) of the served endpoint name, oldest
 * first, in *out (malloc'd, free it; NULL when there are none). Returns
 * their count, or -ENOENT when no endpoint is served under name.
 */
int floe_activator_replicas(const struct floe_activator *a, const char *name,
			    struct floe_replica_info **out);

/**
 * A follower of a replica's log output (floe_activator_replica_log). Caller
 * memory: set on_data, on_end and data. on_data gets the engine's output as
 * floed writes it to the log file. on_end runs once, when the replica's
 * output has ended for good (its process exited, or floed stopped it at
 * shutdown), on a loop turn of its own; the follower is detached by then,
 * holds nothing of the replica (which may be freed next) and may be freed
 * by the callback.
 */
struct floe_log_follower {
	void (*on_data)(struct floe_log_follower *f, const char *data, size_t len);
	void (*on_end)(struct floe_log_follower *f);
	void *data; /* for the caller */
	/* private */
	struct floe_proc_tap tap;
};

struct floe_replica_log {
	char id[80];
	char *path;      /* its log file now (malloc'd, free it); the previous rotation is PATH.1 */
	uint64_t offset; /* bytes of path written so far: what a follower gets comes after them */
	bool following;  /* f was attached: on_end will run */
};

/**
 * The log of live replica id of the served endpoint name (id NULL: its
 * newest live replica with a log, serving ones before warm-pool ones).
 * When f is not NULL and the replica's output may still grow, f is attached
 * (out->following): the file up to out->offset and then f's chunks are the
 * whole output, nothing missing or twice. A replica still being restored
 * has no process to follow yet: its file only.
 * Returns 0; -ENOENT when no endpoint is served under name; -ESRCH when it
 * has no live replica of that id (or none with a log): a stopped replica's
 * log is still on disk, DATA_DIR/logs/NAME/ID.log.
 */
int floe_activator_replica_log(struct floe_activator *a, const char *name, const char *id,
			       struct floe_log_follower *f, struct floe_replica_log *out);

/** Stop following (a no-op once on_end has run, or when f was never attached). */
void floe_activator_log_unfollow(struct floe_log_follower *f);

#endif
