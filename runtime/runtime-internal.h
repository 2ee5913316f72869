/*
 * Structures shared by the files of the runtime core: activator.c (routing,
 * queue, scaling), replica.c (replica lifecycle and readiness) and proxy.c
 * (upstream connections and streaming). Not for use outside runtime/.
 */
#ifndef FLOE_RUNTIME_INTERNAL_H
#define FLOE_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "activator.h"
#include "buf.h"
#include "cgroup.h"
#include "config.h"
#include "criu.h"
#include "http.h"
#include "list.h"
#include "metrics.h"
#include "proc.h"
#include "server.h"
#include "store.h"
#include "usage.h"

enum replica_state {
	REPLICA_STARTING,
	REPLICA_READY,
	REPLICA_DRAINING, /* no new requests; stops when its in-flight ones finish */
	REPLICA_STOPPING, /* signalled; waiting for the process to exit */
	REPLICA_DEAD,     /* exited; freed once nothing refers to it */
	REPLICA_WARM,     /* in the warm pool: restored (or restoring) and frozen, not routable */
};

enum cold_kind {
	COLD_FRESH,
	COLD_RESTORE,
	COLD_WARM_POOL
};

struct floe_activator {
	uv_loop_t *loop;
	struct floe_metrics *metrics;
	struct floe_usage *usage;            /* billing records, or NULL */
	const struct floe_auth_config *auth; /* the daemon's current tokens (NULL: none) */
	void (*on_status)(void *arg, const struct floe_endpoint_config *cfg,
			  const struct floe_endpoint_status *st);
	void *status_arg;
	char *data_dir;
	char *init_path;
	uint64_t log_max_bytes;
	struct floe_list endpoints;
	/* Replica ids ("chat-3") name log files and ledger records, so they
	 * never repeat within one floed: the last number of every endpoint
	 * name ever removed is remembered here. */
	struct seq_memo {
		char *name;
		uint32_t seq;
	} * seq_memo;
	size_t n_seq_memo;
	bool shutting_down;
	void (*shutdown_done)(struct floe_activator *a, void *arg);
	void *shutdown_arg;
	uv_timer_t shutdown_timer;
	uv_idle_t shutdown_check;
	int pending_closes;
	/* snapshots (snapshot.c) */
	struct floe_criu_caps criu;
	bool freezer;              /* cgroup freezer usable: warm pools possible */
	uint64_t warm_pool_memory; /* budget for all pools, bytes (0: none) */
	uint64_t warm_bytes;       /* held or reserved by pool replicas */
	struct {
		struct floe_metric_family *requests;
		struct floe_metric_family *request_duration;
		struct floe_metric_family *cold_starts;
		struct floe_metric_family *cold_start_duration;
		struct floe_metric_family *replicas;
		struct floe_metric_family *queue_depth;
		struct floe_metric_family *snapshot_bytes;
		struct floe_metric_family *snapshot_ops;
		struct floe_metric_family *restore_duration;
		struct floe_metric_family *endpoint_info; /* {endpoint, namespace, type} 1 */
		struct floe_metric_family *desired;       /* the scale policy's last decision */
		struct floe_metric_family *actual;        /* ready + starting */
	} m;
};

struct endpoint {
	struct floe_list link; /* in activator->endpoints */
	struct floe_activator *act;
	struct floe_endpoint_config *cfg; /* own copy */
	struct floe_list replicas;
	uint32_t n_starting, n_ready, n_draining, n_warm;
	struct floe_list held; /* struct floe_req, FIFO */
	uint32_t n_held;
	uint32_t in_flight;
	uint32_t next_seq;
	uint32_t failures; /* consecutive failed starts or crashes, for backoff */
	uint64_t last_activity_ms;
	uv_timer_t idle_timer;    /* scale to zero */
	uv_timer_t hold_timer;    /* earliest held-request deadline */
	uint64_t hold_due_ms;     /* when hold_timer fires (UINT64_MAX: stopped) */
	uv_timer_t backoff_timer; /* next start allowed */
	uint64_t backoff_until_ms;
	bool removed; /* gone from the config: freed once empty */
	bool paused;  /* no replicas, requests refused (503) until resumed */
	bool zeroed;  /* scaled to zero by request: min_replica waits for the next request */
	/* A new definition replaces running replicas: as many new ones as were
	 * ready start at once (update_floor), and the state says updating until
	 * one is ready, or updateFailed if they keep failing. */
	bool updating, update_failed;
	uint32_t update_floor;
	int last_state; /* enum floe_endpoint_state last told to on_status; -1: none */
	int pending_closes;
	struct floe_metric *m_queue_depth;
	struct floe_metric *m_replicas[4]; /* starting, ready, draining, warm_pool */
	/* autoscaler gauges; NULL once the endpoint is removed (series gone) */
	struct floe_metric *m_desired, *m_actual;
	/* snapshot (snapshot.c) */
	char snap_key[FLOE_SNAPSHOT_KEY_LEN + 1];
	struct floe_snapshot_meta *snap; /* the usable snapshot, or NULL */
	bool snap_busy;                  /* a warm-up or dump is under way */
	uint64_t snap_retry_ms;          /* no new dump attempt before */
	uint32_t snap_jobs;              /* thread-pool jobs referring to this endpoint */
	uint32_t pool_failures;          /* pool replicas lost in a row */
};

struct upstream;

struct replica {
	struct floe_list link; /* in endpoint->replicas */
	struct endpoint *ep;
	uint32_t seq;
	char id[80];
	enum replica_state state;
	struct floe_proc proc;
	uint16_t port;
	char *health_route;
	enum floe_ready_kind ready_kind;
	uint64_t start_timeout_ms;
	uint64_t stop_grace_ms;
	uint64_t spawned_ns;
	uint64_t ready_ns;
	enum cold_kind kind;
	uint32_t in_flight;
	uint32_t refs;         /* requests and upstream connections pointing here */
	struct floe_list idle; /* idle struct upstream, most recent last */
	uint32_t n_idle;
	uv_timer_t timer;    /* readiness polls, then stop grace */
	struct probe *probe; /* readiness probe in progress */
	bool probe_refused;  /* the last probe's connect was refused */
	int pending_closes;
	bool proc_closed;
	bool counted;                     /* included in endpoint state counters */
	struct floe_usage_replica *usage; /* metering, from its first state to DEAD */
	/* snapshot.c */
	bool restoring;       /* CRIU restore under way: no process attached yet */
	bool pool;            /* restored for the warm pool */
	bool pool_ready;      /* ... and frozen: can be thawed */
	bool snap_wait;       /* to be dumped once idle: not routable */
	bool dumping;         /* CRIU dump under way */
	bool pool_refill;     /* thawed from the pool: refill it after its first answer */
	bool stop_after_dump; /* asked to stop during a dump: stopped once it is done */
	uint64_t pool_bytes;  /* what it counts against warm_pool_memory */
	uint64_t attached_ms;
	struct floe_cgroup *cg;
	char snap_key[FLOE_SNAPSHOT_KEY_LEN + 1]; /* restored from */
};

enum req_state {
	REQ_ROUTING,  /* reading the body to find the OpenAI "model" */
	REQ_HELD,     /* waiting in the endpoint queue */
	REQ_PROXYING, /* assigned to a replica */
	REQ_DONE,
};

struct floe_req {
	struct floe_activator *act;
	struct floe_conn *client;
	struct endpoint *ep;
	struct replica *r;
	struct upstream *up;
	enum req_state state;
	struct floe_list qlink; /* in endpoint->held */
	uint64_t deadline_ms;
	uint64_t t_start_ns;
	uint64_t hold_ns;
	bool woke;       /* this request started the cold start */
	bool probe;      /* a GET of the endpoint's health route: not activity */
	bool strip_auth; /* the Authorization header was floe's token: not forwarded */
	bool refused;    /* turned away by the token check: not activity */
	bool cold_reported;
	uint64_t cold_start_ns;
	enum cold_kind cold_kind;
	/* request toward the upstream */
	struct floe_buf head; /* serialized request head */
	struct floe_buf body; /* body bytes not yet written upstream */
	bool body_chunked;    /* forward the body as chunked */
	bool body_done;       /* the client's body ended */
	bool body_sent_done;  /* ... and its end was written upstream */
	bool head_request;
	bool body_paused;
	bool replayable;        /* sent on a reused connection, no answer yet */
	struct floe_buf replay; /* the bytes sent so far, while replayable */
	/* response toward the client */
	int status;
	bool resp_started; /* head written to the client */
	bool resp_chunked; /* we frame the body as chunked */
	bool resp_keep_alive;
	struct floe_http_msg *req_msg; /* the client's request head (lives until complete) */
	char *target;                  /* request target for upstream */
};

/* activator.c */
void floe__endpoint_on_replica_ready(struct endpoint *ep, struct replica *r);
void floe__endpoint_on_replica_gone(struct endpoint *ep, struct replica *r, bool failed_start,
				    int status);
void floe__endpoint_set_state(struct endpoint *ep, struct replica *r, enum replica_state st);
void floe__req_complete(struct floe_req *req, int status);
void floe__activator_check_shutdown(struct floe_activator *a);
const char *floe__cold_kind_name(enum cold_kind k);

void floe__endpoint_dispatch(struct endpoint *ep);

/* replica.c */
struct replica *floe__replica_start(struct endpoint *ep, floe_error *err);
/* snapshot.c's restores hand their replica back here */
void floe__replica_restored(struct replica *r, pid_t pid, const char *note);
void floe__replica_restore_failed(struct replica *r);
void floe__replica_probe_now(struct replica *r);
void floe__replica_dump_done(struct replica *r);
void floe__replica_on_exit(struct floe_proc *p, int status);
struct replica *floe__replica_new_pooled(struct endpoint *ep);
void floe__replica_drain(struct replica *r);
void floe__replica_kill(struct replica *r);
void floe__replica_unref(struct replica *r);

/* proxy.c */
void floe__proxy_start(struct floe_req *req, struct replica *r);
void floe__proxy_on_body(struct floe_req *req);
void floe__proxy_on_client_writable(struct floe_req *req);
void floe__proxy_abort(struct floe_req *req);
void floe__replica_close_idle(struct replica *r);

/* snapshot.c */
void floe__snap_init(struct floe_activator *a, bool enabled);
void floe__snap_endpoint_load(struct endpoint *ep);
void floe__snap_endpoint_free(struct endpoint *ep);
bool floe__snap_restorable(struct endpoint *ep);
void floe__snap_restore(struct replica *r);
struct replica *floe__snap_take_warm(struct endpoint *ep);
void floe__snap_refill(struct endpoint *ep);
void floe__snap_on_ready(struct replica *r);
void floe__snap_on_idle(struct replica *r);
void floe__snap_on_answered(struct replica *r);
void floe__snap_on_exit(struct replica *r, enum replica_state was);
void floe__snap_register_metrics(struct floe_activator *a);

#endif
