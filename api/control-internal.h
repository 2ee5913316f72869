/*
 * Shared by the files of the control plane: control.c (routing, health,
 * metrics, snapshots) and billing.c (usage export). Not for use outside api/.
 */
#ifndef FLOE_CONTROL_INTERNAL_H
#define FLOE_CONTROL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "control.h"
#include "http.h"
#include "server.h"

/* What a connection's exchange points at, for the handler's callbacks. */
enum ctl_kind {
	CTL_JOB = 1, /* struct ctl_job */
	CTL_BODY,    /* struct ctl_body */
	CTL_STREAM,  /* struct ctl_stream */
};

/*
 * A request whose answer needs file I/O, run on libuv's thread pool. The
 * connection may close meanwhile: on_abort clears conn, and the job is
 * still freed only by finish.
 */
struct ctl_job {
	enum ctl_kind kind; /* CTL_JOB, set by floe__ctl_job_queue */
	uv_work_t work;
	struct floe_control *ctl;
	struct floe_conn *conn; /* NULL once the client has gone */
	bool head_only;
	void (*run)(struct ctl_job *j); /* on the pool */
	/* On the loop: answer conn (when not NULL) and free the job. status < 0:
	 * run never ran (uv_queue_work's error). */
	void (*finish)(struct ctl_job *j, int status);
};

/*
 * A request whose body the route needs (the endpoint API's POST and PUT):
 * collected up to FLOE_CTL_BODY_MAX bytes, then done runs on the loop and
 * must answer c and free b; if the client goes first, free runs instead.
 */
#define FLOE_CTL_BODY_MAX (1u << 20)
struct ctl_body {
	enum ctl_kind kind; /* CTL_BODY, set by floe__ctl_body_start */
	struct floe_buf data;
	bool too_big;
	void (*done)(struct floe_conn *c, struct ctl_body *b);
	void (*free)(struct ctl_body *b);
};

/*
 * A response written piece by piece for as long as it lasts (a log follow).
 * The route writes with floe_conn_write; when that answers false (the
 * client reads slowly) it holds further output until on_writable. If the
 * client leaves (or floed closes the connection), on_gone runs instead and
 * the connection must not be used again. A request body is ignored. The
 * route ends the exchange itself: exchange NULL, then floe_conn_finish.
 */
struct ctl_stream {
	enum ctl_kind kind; /* CTL_STREAM, set by floe__ctl_stream_start */
	void (*on_writable)(struct floe_conn *c, struct ctl_stream *s);
	void (*on_gone)(struct ctl_stream *s);
};

/** Make s (on_writable and on_gone set) c's exchange. */
void floe__ctl_stream_start(struct floe_conn *c, struct ctl_stream *s);

/** Collect c's request body into b (done and free set), then call b->done. */
void floe__ctl_body_start(struct floe_conn *c, struct ctl_body *b);

/** Queue j (run, finish and head_only set) for the client c. */
void floe__ctl_job_queue(struct floe_conn *c, struct ctl_job *j);

/** A whole response: status, Content-Type, extra header lines ("Name: v\r\n"...), body. */
void floe__ctl_respond(struct floe_conn *c, int status, const char *content_type,
		       const char *extra_headers, const char *body, size_t len, bool head_only);

/**
 * Who is asking (see control.h, Auth). Returns true with *ns the token's
 * namespace (pointing into the config; NULL in single-user mode: no limit),
 * or false after answering 401.
 */
bool floe__ctl_authorize(struct floe_conn *c, struct floe_http_msg *msg, const char **ns);

/** 405 with the Allow header line given ("Allow: GET, HEAD\r\n"). */
void floe__ctl_method_not_allowed(struct floe_conn *c, const char *allow);

/**
 * /v2/billing/REST (rest: the path after "/v2/billing/", not terminated;
 * query: after '?', or NULL; ns: the token's namespace, NULL in single-user
 * mode). Returns true when it answered (or queued the answer), false for an
 * unknown REST (the caller's 404).
 */
bool floe__billing_route(struct floe_conn *c, struct floe_http_msg *msg, const char *rest,
			 size_t rest_len, const char *query, const char *ns);

/**
 * /api/whoami-v2 and /v2/endpoint/... (path: the request path without its
 * query; ns as for billing). Returns true when it answered.
 */
bool floe__endpoints_route(struct floe_conn *c, struct floe_http_msg *msg, const char *path,
			   size_t path_len, const char *ns);

/**
 * GET|HEAD /v2/endpoint/{ns}/{name}/replicas (replicas.c), name a served
 * endpoint of the caller's namespace: 200 {"items":[{id, state, pid,
 * coldStart{kind, seconds}, startedAt, readyAt, uptimeSeconds, inFlight,
 * gpus, snapshot}...]}, the live replicas, oldest first.
 */
void floe__replicas_route(struct floe_conn *c, struct floe_http_msg *msg, const char *name);

/**
 * GET|HEAD /v2/endpoint/{ns}/{name}/logs?replica=ID&tail=N&follow=1
 * (replicas.c): the replica's captured stdout+stderr as text/plain, the
 * last N lines (default 100, at most 100000; 400 naming tail or follow
 * for a bad value, 404 for an unknown replica). follow=1: chunked, the
 * tail then the output as it comes, until the replica's process exits or
 * the client goes away. Answers now or from the thread pool.
 */
void floe__logs_route(struct floe_conn *c, struct floe_http_msg *msg, const char *name);

#endif
