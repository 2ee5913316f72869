/*
 * An HTTP/1.1 server over libuv: accepts connections, parses requests with
 * the base HTTP layer (limits, smuggling checks), answers protocol errors
 * itself (400, 408, 413, 431...), and hands each request to a handler one
 * exchange at a time per connection (pipelined requests wait their turn).
 *
 * Both floed ports use it: the data plane (the activator and proxy) and the
 * control plane (api/).
 */
#ifndef FLOE_SERVER_H
#define FLOE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "error.h"
#include "http.h"
#include "list.h"

struct floe_server;
struct floe_conn;

/**
 * Per-exchange callbacks. on_head starts an exchange; the handler answers
 * (now or later) with floe_conn_write* and ends it with floe_conn_finish.
 * on_body/on_body_end stream the request body. on_writable: the write queue
 * drained below the low-water mark after floe_conn_write returned "full".
 * on_abort: the client went away (or the server is closing it) before the
 * exchange finished; the handler must drop every reference to the conn.
 */
struct floe_server_handler {
	void (*on_head)(struct floe_conn *c, struct floe_http_msg *msg);
	void (*on_body)(struct floe_conn *c, const char *data, size_t len);
	void (*on_body_end)(struct floe_conn *c);
	void (*on_writable)(struct floe_conn *c);
	void (*on_abort)(struct floe_conn *c);
};

struct floe_server_limits {
	size_t max_head_bytes;      /* 431 beyond */
	uint64_t max_body_bytes;    /* 413 beyond */
	uint64_t header_timeout_ms; /* 408 when a started head takes longer */
	uint64_t idle_timeout_ms;   /* idle keep-alive connections closed after this */
};

struct floe_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	const struct floe_server_handler *handler;
	struct floe_server_limits limits;
	void *data;             /* for the handler */
	struct floe_list conns; /* every open connection */
	size_t n_conns;
	bool listening;
	bool draining; /* no keep-alive: connections close after their exchange */
	char name[16]; /* "data" or "api", for logs */
};

/** One client connection (private fields after the comment). */
struct floe_conn {
	struct floe_server *server;
	void *exchange; /* the handler's per-exchange object, or NULL */
	char peer[64];  /* client address, for X-Forwarded-For */
	/* private */
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct floe_list link;
	struct floe_http_parser parser;
	struct floe_buf pending; /* bytes read but not parsed (after a pause) */
	struct floe_buf cork;    /* output held while corked */
	unsigned corked;
	bool in_exchange;      /* head seen, floe_conn_finish not yet called */
	bool response_started; /* bytes of this exchange's response were written */
	bool request_complete; /* the current request's body has ended */
	bool paused;           /* the parser is paused after a complete request */
	bool processing;       /* inside conn_process (it is not re-entrant) */
	bool read_stopped;     /* by backpressure or pause */
	bool body_paused;      /* the handler asked to stop the request body */
	bool want_writable;
	bool closing;
	bool close_after_write;
	bool client_keep_alive; /* the request allows keep-alive */
	bool timer_active;
	bool timer_is_head; /* the timer is the head timeout, not the idle one */
	int pending_closes;
	size_t write_queued; /* bytes handed to uv_write, not yet written */
};

/**
 * Listen on host:port. The server struct is caller memory, valid until the
 * close completes (floe_server_close). Returns 0 or negative with err set.
 */
int floe_server_listen(struct floe_server *s, uv_loop_t *loop, const char *name, const char *host,
		       uint16_t port, const struct floe_server_handler *handler,
		       const struct floe_server_limits *limits, floe_error *err);

/** Stop accepting; connections stay. */
void floe_server_stop_accepting(struct floe_server *s);

/** Shutdown: stop accepting, close idle connections now, the others after their exchange. */
void floe_server_drain(struct floe_server *s);

/** Close every connection now (exchanges get on_abort). */
void floe_server_close_all(struct floe_server *s);

/** The bound port (after listen), useful with port 0. */
uint16_t floe_server_port(const struct floe_server *s);

/** Write bytes (copied). Returns true when more may be written, false when the
 *  queue is over the high-water mark: wait for on_writable. */
bool floe_conn_write(struct floe_conn *c, const char *data, size_t len);
bool floe_conn_writev(struct floe_conn *c, const uv_buf_t *bufs, unsigned n);

/**
 * Cork: hold writes in memory until the matching uncork (nestable), so the
 * pieces of a response produced in one callback leave in one system call.
 * floe_conn_finish flushes whatever is corked.
 */
void floe_conn_cork(struct floe_conn *c);
void floe_conn_uncork(struct floe_conn *c);

/** Whether the response being written may keep the connection open. */
bool floe_conn_keep_alive(const struct floe_conn *c);

/**
 * End the exchange. keep_alive false (or the request body not fully read, or
 * the server draining) closes the connection once the writes are flushed.
 */
void floe_conn_finish(struct floe_conn *c, bool keep_alive);

/** Write a JSON error response and finish the exchange. extra_headers: CRLF-terminated lines or NULL. */
void floe_conn_error(struct floe_conn *c, int status, const char *type, const char *message,
		     const char *extra_headers);

/** Stop / restart delivering the request body (backpressure toward the client). */
void floe_conn_pause_body(struct floe_conn *c);
void floe_conn_resume_body(struct floe_conn *c);

/** Whether the request body has been fully received. */
bool floe_conn_request_complete(const struct floe_conn *c);

/** Close the connection now (the exchange, if any, gets on_abort). */
void floe_conn_abort(struct floe_conn *c);

#endif
