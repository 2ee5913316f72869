#define LOG_TAG "proxy"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "clock.h"
#include "log.h"
#include "runtime-internal.h"
#include "stream.h"
#include "xalloc.h"

/* Request bytes queued toward a replica beyond this pause the client. */
#define UP_WRITE_HIGH_WATER (256 * 1024)
#define UP_WRITE_LOW_WATER (64 * 1024)
/* A request sent on a reused connection is kept (up to this) until its
 * response begins, to be replayed once on a fresh connection if the reused
 * one turns out to have been closed by the engine meanwhile. */
#define REPLAY_MAX (64 * 1024)
/* Idle keep-alive connections kept per replica. */
#define POOL_MAX_IDLE 256
#define UP_READ_BUF (64 * 1024)

struct upstream {
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct replica *r;
	struct floe_list link; /* in r->idle while idle */
	struct floe_req *req;
	struct floe_http_parser parser;
	size_t write_queued;
	bool connected;
	bool closing;
	bool reused;
	bool head_sent;
	bool resp_done;    /* the response message is complete */
	bool junk_after;   /* bytes followed the response: not reusable */
	bool read_stopped; /* backpressure from the client */
};

static void up_close(struct upstream *up);
static void up_fail(struct upstream *up, const char *why);
static void proxy_finish(struct upstream *up);
static void up_start_reading(struct upstream *up);
static void proxy_connect(struct floe_req *req, struct replica *r);
static void proxy_forget_replay(struct floe_req *req);

/* --- connections ---------------------------------------------------------- */

static void on_up_closed(uv_handle_t *h)
{
	struct upstream *up = container_of((uv_tcp_t *)h, struct upstream, tcp);
	floe_http_parser_destroy(&up->parser);
	struct replica *r = up->r;
	free(up);
	if (r)
		floe__replica_unref(r);
}

static void up_close(struct upstream *up)
{
	if (up->closing)
		return;
	up->closing = true;
	if (floe_list_linked(&up->link)) {
		floe_list_remove(&up->link);
		up->r->n_idle--;
	}
	uv_close((uv_handle_t *)&up->tcp, on_up_closed);
}

void floe__replica_close_idle(struct replica *r)
{
	struct floe_list *n;
	while ((n = floe_list_shift(&r->idle)) != NULL) {
		struct upstream *up = container_of(n, struct upstream, link);
		r->n_idle--;
		floe_list_init(&up->link);
		up_close(up);
	}
}

static void on_up_write(uv_write_t *w, int status)
{
	struct floe_write *uw = floe_write_of(w);
	struct upstream *up = uw->owner;
	up->write_queued -= uw->len;
	free(uw);
	if (up->closing)
		return;
	if (status < 0) {
		up_fail(up, uv_strerror(status));
		return;
	}
	struct floe_req *req = up->req;
	if (req && req->body_paused && up->write_queued < UP_WRITE_LOW_WATER) {
		req->body_paused = false;
		if (req->client)
			floe_conn_resume_body(req->client);
	}
}

/* Write to the replica; what the kernel does not take now is copied.
 * Returns -1 when the write failed: the request has then been answered 502
 * and freed, and the caller must not touch it. */
static int up_writev(struct upstream *up, const uv_buf_t *bufs, unsigned n)
{
	if (up->closing)
		return 0;
	ssize_t queued = floe_stream_write((uv_stream_t *)&up->tcp, bufs, n, up->write_queued, up,
					   on_up_write);
	if (queued < 0) {
		up_fail(up, uv_strerror((int)queued));
		return -1;
	}
	up->write_queued += (size_t)queued;
	return 0;
}

static void proxy_forget_replay(struct floe_req *req)
{
	req->replayable = false;
	floe_buf_destroy(&req->replay);
}

/* Send what the client has given us so far, framed for the upstream,
 * together with the request head if that has not left yet. */
static void proxy_send_body(struct floe_req *req)
{
	struct upstream *up = req->up;
	if (!up || !up->connected || up->closing)
		return;
	uv_buf_t b[5];
	unsigned n = 0;
	char size[24];
	bool no_body = !req->body_done && req->client && floe_conn_request_complete(req->client);
	if (no_body)
		req->body_done = true;
	/* The head waits for the first body bytes: the engine can do nothing
	 * with it alone, and head and body then share one write. */
	if (!up->head_sent && (req->body.len > 0 || req->body_done)) {
		b[n++] = uv_buf_init(req->head.data, (unsigned)req->head.len);
		up->head_sent = true;
	}
	if (!up->head_sent)
		return;
	if (req->body.len > 0) {
		if (req->body_chunked) {
			int len = snprintf(size, sizeof(size), "%zx\r\n", req->body.len);
			b[n++] = uv_buf_init(size, (unsigned)len);
			b[n++] = uv_buf_init(req->body.data, (unsigned)req->body.len);
			b[n++] = uv_buf_init("\r\n", 2);
		} else {
			b[n++] = uv_buf_init(req->body.data, (unsigned)req->body.len);
		}
	}
	if (req->body_done && !req->body_sent_done) {
		req->body_sent_done = true;
		if (req->body_chunked)
			b[n++] = uv_buf_init("0\r\n\r\n", 5);
	}
	if (req->replayable) {
		for (unsigned i = 0; i < n; i++)
			floe_buf_append(&req->replay, b[i].base, b[i].len);
		if (req->replay.len > REPLAY_MAX)
			proxy_forget_replay(req);
	}
	if (up_writev(up, b, n) < 0)
		return; /* answered 502 and freed, or being replayed */
	floe_buf_reset(&req->body);
	if (!req->client || req->body_done)
		return;
	if (up->write_queued >= UP_WRITE_HIGH_WATER && !req->body_paused) {
		req->body_paused = true;
		floe_conn_pause_body(req->client);
	} else if (req->body_paused && up->write_queued < UP_WRITE_LOW_WATER) {
		/* Paused while held (body buffered up to its cap): go on now. */
		req->body_paused = false;
		floe_conn_resume_body(req->client);
	}
}

void floe__proxy_on_body(struct floe_req *req)
{
	proxy_send_body(req);
}

static void proxy_send_head(struct upstream *up)
{
	proxy_send_body(up->req);
}

/* --- the response --------------------------------------------------------- */

static void write_response_head(struct upstream *up, const struct floe_http_msg *msg)
{
	struct floe_req *req = up->req;
	struct floe_conn *c = req->client;
	/* One scratch buffer for every response head (single-threaded loop;
	 * the bytes are copied out by the write below). */
	static struct floe_buf h = FLOE_BUF_INIT;
	floe_buf_reset(&h);
	bool no_body = req->head_request || msg->status == 204 || msg->status == 304 ||
		       (msg->status >= 100 && msg->status < 200);
	bool client_11 = req->req_msg && req->req_msg->minor >= 1;

	req->status = msg->status;
	floe_buf_puts(&h, "HTTP/1.1 ");
	floe_buf_append_u64(&h, (uint64_t)msg->status);
	floe_buf_puts(&h, " ");
	if (msg->reason_len)
		floe_buf_append(&h, floe_http_msg_str(msg, msg->reason_off), msg->reason_len);
	else
		floe_buf_puts(&h, floe_http_reason(msg->status));
	floe_buf_puts(&h, "\r\n");
	for (size_t i = 0; i < msg->n_headers; i++) {
		uint8_t id = msg->headers[i].id;
		if (floe_http_header_id_is_hop(id) || id == FLOE_HDR_CONTENT_LENGTH)
			continue;
		if (floe_http_msg_connection_list(msg) &&
		    floe_http_list_has_token(floe_http_msg_connection_list(msg),
					     floe_http_header_name(msg, i)))
			continue;
		floe_http_header_append(&h, msg, i);
	}
	floe_buf_puts(&h, "Server-Timing: hold;dur=");
	floe_buf_append_ms(&h, req->hold_ns);
	if (req->woke && req->cold_reported) {
		floe_buf_puts(&h, ", cold-start;dur=");
		floe_buf_append_ms(&h, req->cold_start_ns);
		floe_buf_puts(&h, ";desc=\"");
		floe_buf_puts(&h, floe__cold_kind_name(req->cold_kind));
		floe_buf_puts(&h, "\"");
	}
	floe_buf_puts(&h, "\r\nX-Floe-Replica: ");
	floe_buf_puts(&h, up->r ? up->r->id : "gone");
	floe_buf_puts(&h, "\r\n");

	bool keep_alive = floe_conn_keep_alive(c);
	if (msg->content_length >= 0) {
		/* With no body (HEAD, 204, 304) it still describes the entity. */
		floe_buf_puts(&h, "Content-Length: ");
		floe_buf_append_u64(&h, (uint64_t)msg->content_length);
		floe_buf_puts(&h, "\r\n");
	} else if (no_body) {
		/* nothing to frame */
	} else if (client_11) {
		/* Chunked or read-until-close upstream: re-framed as chunked, which
		 * also lets SSE events reach the client as they are produced. */
		floe_buf_puts(&h, "Transfer-Encoding: chunked\r\n");
		req->resp_chunked = true;
	} else {
		keep_alive = false; /* HTTP/1.0: the end of the body is the close */
	}
	if (!keep_alive)
		floe_buf_puts(&h, "Connection: close\r\n");
	else if (!client_11)
		floe_buf_puts(&h, "Connection: keep-alive\r\n");
	floe_buf_puts(&h, "\r\n");
	req->resp_keep_alive = keep_alive;
	req->resp_started = true;
	if (!floe_conn_write(c, h.data, h.len) && !up->read_stopped) {
		up->read_stopped = true;
		uv_read_stop((uv_stream_t *)&up->tcp);
	}
}

static int up_on_head(void *ud, struct floe_http_msg *msg)
{
	struct upstream *up = ud;
	struct floe_req *req = up->req;
	if (msg->status < 200)
		return 1; /* interim (100 Continue): not forwarded; we answered Expect ourselves */
	if (!req || !req->client)
		return 0;
	write_response_head(up, msg);
	return req->head_request ? 1 : 0;
}

static int up_on_body(void *ud, const char *data, size_t len)
{
	struct upstream *up = ud;
	struct floe_req *req = up->req;
	if (!req || !req->client)
		return 0;
	bool more;
	if (req->resp_chunked) {
		char size[24];
		int n = snprintf(size, sizeof(size), "%zx\r\n", len);
		uv_buf_t b[3] = { uv_buf_init(size, (unsigned)n),
				  uv_buf_init((char *)data, (unsigned)len),
				  uv_buf_init("\r\n", 2) };
		more = floe_conn_writev(req->client, b, 3);
	} else {
		more = floe_conn_write(req->client, data, len);
	}
	if (!more && !up->read_stopped) {
		/* The client reads slower than the engine writes: stop reading the
		 * engine until the client's queue drains (on_writable). */
		up->read_stopped = true;
		uv_read_stop((uv_stream_t *)&up->tcp);
	}
	return 0;
}

static int up_on_complete(void *ud)
{
	struct upstream *up = ud;
	if (up->parser.msg.status < 200)
		return 0; /* an interim response: the real one follows */
	up->resp_done = true;
	return 1; /* pause: anything after this response is not ours */
}

static const struct floe_http_parser_cbs up_cbs = {
	.on_head = up_on_head,
	.on_body = up_on_body,
	.on_complete = up_on_complete,
};

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[UP_READ_BUF];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void up_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct upstream *up = container_of((uv_tcp_t *)s, struct upstream, tcp);
	if (up->closing)
		return;
	if (!up->req) {
		/* Idle pooled connection: the replica closed it, or sent junk. */
		up_close(up);
		return;
	}
	if (nread < 0) {
		if (nread == UV_EOF && floe_http_parser_mid_message(&up->parser) &&
		    floe_http_parser_needs_eof(&up->parser)) {
			/* Body delimited by the close. */
			if (floe_http_parser_finish(&up->parser) == FLOE_HTTP_OK && up->resp_done) {
				up->junk_after = true; /* closed: not reusable */
				proxy_finish(up);
				return;
			}
		}
		up_fail(up, nread == UV_EOF ? "replica closed the connection" :
					      uv_strerror((int)nread));
		return;
	}
	if (up->req->replayable)
		proxy_forget_replay(up->req); /* the engine answered: no replay */
	/* Head, body pieces and the final chunk parsed from one read leave in
	 * one write to the client. The conn outlives this callback even if it
	 * closes meanwhile (it is freed in its close callback). */
	struct floe_conn *c = up->req->client;
	if (c)
		floe_conn_cork(c);
	size_t consumed = 0;
	enum floe_http_status st =
		floe_http_parser_execute(&up->parser, buf->base, (size_t)nread, &consumed);
	if (st == FLOE_HTTP_ERROR) {
		up_fail(up, "malformed response from the replica");
	} else if (up->resp_done) {
		if (consumed < (size_t)nread)
			up->junk_after = true;
		proxy_finish(up);
	}
	if (c)
		floe_conn_uncork(c);
}

static void up_start_reading(struct upstream *up)
{
	up->read_stopped = false;
	uv_read_start((uv_stream_t *)&up->tcp, up_alloc, up_on_read);
}

/* The response is complete: pool the connection, end the exchange. */
static void proxy_finish(struct upstream *up)
{
	struct floe_req *req = up->req;
	struct replica *r = up->r;
	up->req = NULL;
	req->up = NULL;
	bool reusable = !up->junk_after && up->parser.msg.keep_alive && req->body_sent_done &&
			up->write_queued == 0 && r && r->state == REPLICA_READY &&
			r->n_idle < POOL_MAX_IDLE;
	if (reusable) {
		up->resp_done = false;
		up->head_sent = false;
		floe_http_parser_resume(&up->parser);
		if (up->read_stopped)
			up_start_reading(up);
		floe_list_push(&r->idle, &up->link);
		r->n_idle++;
	} else {
		up_close(up);
	}
	struct floe_conn *c = req->client;
	bool keep_alive = req->resp_keep_alive;
	int status = req->status;
	if (c) {
		if (req->resp_chunked)
			floe_conn_write(c, "0\r\n\r\n", 5);
		req->client = NULL;
		c->exchange = NULL;
	}
	floe__req_complete(req, status);
	if (c)
		floe_conn_finish(c, keep_alive); /* may start the next pipelined request */
}

/* The exchange with the replica failed. Before the response head: 502 to
 * the client. After it: the client's response is cut (closing its
 * connection is the only honest signal left). */
static void up_fail(struct upstream *up, const char *why)
{
	struct floe_req *req = up->req;
	up->req = NULL;
	const char *rid = up->r ? up->r->id : "?";
	bool retry = req && req->replayable && up->reused && !req->resp_started && up->r &&
		     up->r->state == REPLICA_READY;
	struct replica *r = up->r;
	up_close(up);
	if (!req)
		return;
	req->up = NULL;
	if (retry) {
		/* An idle keep-alive connection the engine closed just as we reused
		 * it (uvicorn closes them after 5 s): nothing was answered, so the
		 * request goes again, once, on a fresh connection. */
		log_replica_debug(req->ep->cfg->name, rid,
				  "reused connection failed (%s); retrying on a new one", why);
		req->replayable = false;
		proxy_connect(req, r);
		return;
	}
	struct floe_conn *c = req->client;
	req->client = NULL;
	if (c)
		c->exchange = NULL;
	log_replica_warn(req->ep->cfg->name, r ? rid : NULL, "request failed: %s%s", why,
			 req->resp_started ? " (response cut)" : "");
	if (c && !req->resp_started) {
		char msg[200];
		snprintf(msg, sizeof(msg), "replica %s failed: %s", rid, why);
		floe_conn_error(c, 502, "upstream_error", msg, NULL);
	} else if (c) {
		floe_conn_abort(c);
	}
	floe__req_complete(req, 502);
}

static void up_on_connect(uv_connect_t *creq, int status)
{
	struct upstream *up = container_of(creq, struct upstream, connect);
	if (up->closing)
		return;
	if (status < 0) {
		up_fail(up, uv_strerror(status));
		return;
	}
	up->connected = true;
	if (!up->req) {
		up_close(up); /* the client left while we connected */
		return;
	}
	up_start_reading(up);
	struct floe_req *req = up->req;
	if (req->replay.len > 0) {
		/* A retry: what went out on the stale connection goes again. */
		uv_buf_t b = uv_buf_init(req->replay.data, (unsigned)req->replay.len);
		up->head_sent = true;
		int rc = up_writev(up, &b, 1);
		floe_buf_destroy(&req->replay);
		if (rc < 0)
			return;
	}
	proxy_send_head(up);
}

/* A new connection to the replica, created inside its network namespace. */
static void proxy_connect(struct floe_req *req, struct replica *r)
{
	struct upstream *up = xcalloc(1, sizeof(*up));
	floe_list_init(&up->link);
	up->r = r;
	r->refs++;
	up->req = req;
	req->up = up;
	floe_http_parser_init(&up->parser, HTTP_RESPONSE, &up_cbs, up, 64 * 1024, UINT64_MAX);
	uv_tcp_init(r->ep->act->loop, &up->tcp);
	int fd = floe_netns_socket(r->proc.netns_fd, AF_INET, SOCK_STREAM);
	if (fd < 0) {
		up_fail(up, strerror(-fd));
		return;
	}
	if (uv_tcp_open(&up->tcp, fd) != 0) {
		close(fd);
		up_fail(up, "cannot adopt the upstream socket");
		return;
	}
	uv_tcp_nodelay(&up->tcp, 1);
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", r->port, &addr);
	int rc = uv_tcp_connect(&up->connect, &up->tcp, (struct sockaddr *)&addr, up_on_connect);
	if (rc != 0)
		up_fail(up, uv_strerror(rc));
}

void floe__proxy_start(struct floe_req *req, struct replica *r)
{
	struct floe_list *n = floe_list_empty(&r->idle) ? NULL : r->idle.prev;
	if (!n) {
		proxy_connect(req, r);
		return;
	}
	/* Most recently used first: the likeliest to be still open. */
	floe_list_remove(n);
	r->n_idle--;
	struct upstream *up = container_of(n, struct upstream, link);
	up->req = req;
	up->reused = true;
	req->up = up;
	req->replayable = true;
	floe_buf_init(&req->replay);
	proxy_send_head(up);
}

void floe__proxy_on_client_writable(struct floe_req *req)
{
	struct upstream *up = req->up;
	if (up && up->read_stopped && !up->closing)
		up_start_reading(up);
}

void floe__proxy_abort(struct floe_req *req)
{
	/* The client left: the engine should stop generating for it, and closing
	 * the connection is how HTTP says so. */
	struct upstream *up = req->up;
	if (up) {
		up->req = NULL;
		req->up = NULL;
		up_close(up);
	}
	floe__req_complete(req, 499);
}
