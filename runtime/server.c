#define LOG_TAG "server"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "log.h"
#include "server.h"
#include "stream.h"
#include "xalloc.h"

/* Output queued beyond this stops the producer (floe_conn_write returns
 * false); it is told to go on once the queue is under the low mark. */
#define WRITE_HIGH_WATER (256 * 1024)
#define WRITE_LOW_WATER (64 * 1024)
/* Pipelined bytes buffered while an exchange runs; past it we stop reading. */
#define PENDING_MAX (64 * 1024)
#define READ_BUF_SIZE (64 * 1024)

static void conn_close(struct floe_conn *c);
static void conn_process(struct floe_conn *c);
static void conn_update_reading(struct floe_conn *c);
static void conn_arm_idle(struct floe_conn *c);
static int conn_start_reading(struct floe_conn *c);

/* --- parser callbacks ----------------------------------------------------- */

static int conn_on_head(void *ud, struct floe_http_msg *msg)
{
	struct floe_conn *c = ud;
	if (c->timer_active) {
		uv_timer_stop(&c->timer);
		c->timer_active = false;
		c->timer_is_head = false;
	}
	/* Answer Expect: 100-continue ourselves: the request passed our checks,
	 * and the upstream never sees the expectation (we strip it). */
	if (msg->expect_continue && msg->minor >= 1)
		floe_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->in_exchange = true;
	c->response_started = false;
	/* A request without a body is complete with its head, so an answer
	 * given right away can keep the connection. */
	c->request_complete = !msg->chunked && msg->content_length <= 0;
	c->client_keep_alive = msg->keep_alive;
	c->exchange = NULL;
	c->server->handler->on_head(c, msg);
	return 0;
}

static int conn_on_body(void *ud, const char *data, size_t len)
{
	struct floe_conn *c = ud;
	if (c->in_exchange && c->server->handler->on_body)
		c->server->handler->on_body(c, data, len);
	return 0;
}

static int conn_on_complete(void *ud)
{
	struct floe_conn *c = ud;
	c->request_complete = true;
	if (c->in_exchange) {
		if (c->server->handler->on_body_end)
			c->server->handler->on_body_end(c);
	}
	/* Still answering: pause so the next pipelined request waits its turn. */
	return c->in_exchange ? 1 : 0;
}

static const struct floe_http_parser_cbs conn_parser_cbs = {
	.on_head = conn_on_head,
	.on_body = conn_on_body,
	.on_complete = conn_on_complete,
};

/* --- writing -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
	struct floe_write *w = floe_write_of(req);
	struct floe_conn *c = w->owner;
	c->write_queued -= w->len;
	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED)
			log_debug("write to %s failed: %s", c->peer, uv_strerror(status));
		conn_close(c);
		return;
	}
	if (c->closing)
		return;
	if (c->close_after_write && c->write_queued == 0) {
		conn_close(c);
		return;
	}
	if (c->want_writable && c->write_queued < WRITE_LOW_WATER) {
		c->want_writable = false;
		if (c->in_exchange && c->server->handler->on_writable)
			c->server->handler->on_writable(c);
	}
}

static bool conn_writev_now(struct floe_conn *c, const uv_buf_t *bufs, unsigned n);

bool floe_conn_writev(struct floe_conn *c, const uv_buf_t *bufs, unsigned n)
{
	if (c->closing)
		return false;
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	if (total == 0)
		return true;
	if (c->in_exchange)
		c->response_started = true;
	if (c->corked) {
		for (unsigned i = 0; i < n; i++)
			floe_buf_append(&c->cork, bufs[i].base, bufs[i].len);
		return c->write_queued + c->cork.len < WRITE_HIGH_WATER;
	}
	return conn_writev_now(c, bufs, n);
}

/* Write what was corked, in one system call where the kernel takes it. */
static void conn_flush_cork(struct floe_conn *c)
{
	if (c->cork.len == 0 || c->closing)
		return;
	uv_buf_t b = uv_buf_init(c->cork.data, (unsigned)c->cork.len);
	conn_writev_now(c, &b, 1);
	floe_buf_reset(&c->cork);
}

void floe_conn_cork(struct floe_conn *c)
{
	c->corked++;
}

void floe_conn_uncork(struct floe_conn *c)
{
	if (c->corked > 0 && --c->corked == 0)
		conn_flush_cork(c);
}

static bool conn_writev_now(struct floe_conn *c, const uv_buf_t *bufs, unsigned n)
{
	ssize_t queued =
		floe_stream_write((uv_stream_t *)&c->tcp, bufs, n, c->write_queued, c, on_write);
	if (queued < 0) {
		conn_close(c);
		return false;
	}
	c->write_queued += (size_t)queued;
	if (c->write_queued >= WRITE_HIGH_WATER) {
		c->want_writable = true;
		return false;
	}
	return true;
}

bool floe_conn_write(struct floe_conn *c, const char *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	return floe_conn_writev(c, &b, 1);
}

bool floe_conn_keep_alive(const struct floe_conn *c)
{
	return c->client_keep_alive && c->request_complete && !c->server->draining && !c->closing;
}

bool floe_conn_request_complete(const struct floe_conn *c)
{
	return c->request_complete;
}

void floe_conn_finish(struct floe_conn *c, bool keep_alive)
{
	if (!c->in_exchange)
		return;
	/* The close decision below looks at the write queue: corked bytes first. */
	conn_flush_cork(c);
	c->in_exchange = false;
	c->exchange = NULL;
	c->want_writable = false;
	if (c->closing)
		return;
	if (!keep_alive || !floe_conn_keep_alive(c)) {
		c->close_after_write = true;
		if (c->write_queued == 0)
			conn_close(c);
		else
			uv_read_stop((uv_stream_t *)&c->tcp);
		return;
	}
	if (c->paused) {
		c->paused = false;
		floe_http_parser_resume(&c->parser);
	}
	c->body_paused = false;
	conn_arm_idle(c);
	conn_process(c);
}

void floe_conn_error(struct floe_conn *c, int status, const char *type, const char *message,
		     const char *extra_headers)
{
	struct floe_buf out = FLOE_BUF_INIT;
	bool keep_alive = floe_conn_keep_alive(c);
	floe_http_error_response(&out, status, type, message, extra_headers, keep_alive);
	floe_conn_write(c, out.data, out.len);
	floe_buf_destroy(&out);
	floe_conn_finish(c, keep_alive);
}

void floe_conn_pause_body(struct floe_conn *c)
{
	c->body_paused = true;
	conn_update_reading(c);
}

void floe_conn_resume_body(struct floe_conn *c)
{
	if (!c->body_paused)
		return;
	c->body_paused = false;
	conn_process(c);
}

void floe_conn_abort(struct floe_conn *c)
{
	conn_close(c);
}

/* --- reading and parsing -------------------------------------------------- */

static const char *error_type(int status)
{
	switch (status) {
	case 408: return "request_timeout";
	case 413: return "payload_too_large";
	case 431: return "header_too_large";
	case 501: return "not_implemented";
	case 505: return "http_version_not_supported";
	case 405: return "method_not_allowed";
	case 417: return "expectation_failed";
	default: return "bad_request";
	}
}

/* A request we refuse at the protocol level: answer and close, since the
 * byte stream can no longer be trusted to frame the next request. */
static void conn_protocol_error(struct floe_conn *c, int status, const char *reason)
{
	log_debug("%s: refusing request from %s: %d %s", c->server->name, c->peer, status, reason);
	bool responded = c->in_exchange && c->response_started;
	if (c->in_exchange) {
		c->in_exchange = false;
		if (c->server->handler->on_abort)
			c->server->handler->on_abort(c);
		c->exchange = NULL;
	}
	if (responded) {
		/* Part of a response is out: an error page would corrupt it. */
		conn_close(c);
		return;
	}
	c->client_keep_alive = false;
	struct floe_buf out = FLOE_BUF_INIT;
	floe_http_error_response(&out, status, error_type(status), reason, NULL, false);
	floe_conn_write(c, out.data, out.len);
	conn_flush_cork(c);
	floe_buf_destroy(&out);
	c->close_after_write = true;
	if (c->write_queued == 0)
		conn_close(c);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
}

static void conn_process(struct floe_conn *c)
{
	/* Not re-entrant: a handler finishing its exchange from inside a parser
	 * callback lands here again; the running loop below picks up from there. */
	if (c->processing)
		return;
	c->processing = true;
	size_t off = 0;
	while (!c->closing && !c->close_after_write && !c->paused && !c->body_paused &&
	       off < c->pending.len) {
		size_t consumed = 0;
		enum floe_http_status st = floe_http_parser_execute(
			&c->parser, c->pending.data + off, c->pending.len - off, &consumed);
		off += consumed;
		if (st == FLOE_HTTP_ERROR) {
			conn_protocol_error(c, c->parser.error_status, c->parser.error_reason);
			break;
		}
		if (st == FLOE_HTTP_PAUSED) {
			/* A request is complete and its exchange still running, unless the
			 * handler finished it meanwhile (then floe_conn_finish resumed). */
			if (c->in_exchange)
				c->paused = true;
			else
				floe_http_parser_resume(&c->parser);
		}
	}
	c->processing = false;
	if (c->closing)
		return;
	floe_buf_consume(&c->pending, off);
	/* Arm the head timeout once a new request has begun arriving. */
	if (!c->in_exchange && floe_http_parser_mid_message(&c->parser) && c->parser.in_head &&
	    !c->timer_is_head)
		conn_arm_idle(c);
	conn_update_reading(c);
}

static void conn_update_reading(struct floe_conn *c)
{
	if (c->closing || c->close_after_write)
		return;
	bool want = !c->body_paused && c->pending.len < PENDING_MAX;
	if (want == !c->read_stopped)
		return;
	c->read_stopped = !want;
	if (want)
		conn_start_reading(c);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	/* One buffer for all connections: the loop is single-threaded and every
	 * read is consumed (copied into pending) before the next one. */
	static char slab[READ_BUF_SIZE];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct floe_conn *c = container_of((uv_tcp_t *)s, struct floe_conn, tcp);
	if (nread < 0) {
		if (nread != UV_EOF && nread != UV_ECONNRESET)
			log_debug("read from %s: %s", c->peer, uv_strerror((int)nread));
		/* The client is gone: an exchange in progress is aborted (held
		 * requests leave the queue, upstream requests are closed). */
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	floe_buf_append(&c->pending, buf->base, (size_t)nread);
	conn_process(c);
}

static int conn_start_reading(struct floe_conn *c)
{
	return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* --- timers --------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct floe_conn *c = container_of(t, struct floe_conn, timer);
	c->timer_active = false;
	c->timer_is_head = false;
	if (c->in_exchange || c->closing)
		return;
	if (floe_http_parser_mid_message(&c->parser)) {
		/* Slow or stalled head (slowloris): 408 and close. */
		conn_protocol_error(c, 408, "request header timeout");
		return;
	}
	conn_close(c); /* idle keep-alive connection */
}

static void conn_arm_idle(struct floe_conn *c)
{
	uint64_t ms = floe_http_parser_mid_message(&c->parser) ?
			      c->server->limits.header_timeout_ms :
			      c->server->limits.idle_timeout_ms;
	uv_timer_start(&c->timer, on_timer, ms, 0);
	c->timer_active = true;
	c->timer_is_head = floe_http_parser_mid_message(&c->parser);
}

/* --- lifecycle ------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
	struct floe_conn *c = h->data;
	if (--c->pending_closes > 0)
		return;
	floe_list_remove(&c->link);
	c->server->n_conns--;
	floe_http_parser_destroy(&c->parser);
	floe_buf_destroy(&c->pending);
	floe_buf_destroy(&c->cork);
	free(c);
}

static void conn_close(struct floe_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->in_exchange) {
		c->in_exchange = false;
		if (c->server->handler->on_abort)
			c->server->handler->on_abort(c);
		c->exchange = NULL;
	}
	c->pending_closes = 2;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void format_peer(uv_tcp_t *tcp, char *out, size_t len)
{
	struct sockaddr_storage ss;
	int n = sizeof(ss);
	snprintf(out, len, "unknown");
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &n) != 0)
		return;
	if (ss.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&ss, out, len);
	else if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, out, len);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct floe_server *s = container_of((uv_tcp_t *)listener, struct floe_server, listener);
	if (status < 0) {
		log_warn("%s: accept: %s", s->name, uv_strerror(status));
		return;
	}
	struct floe_conn *c = xcalloc(1, sizeof(*c));
	c->server = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	floe_list_push(&s->conns, &c->link);
	s->n_conns++;
	floe_http_parser_init(&c->parser, HTTP_REQUEST, &conn_parser_cbs, c,
			      s->limits.max_head_bytes, s->limits.max_body_bytes);
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	format_peer(&c->tcp, c->peer, sizeof(c->peer));
	if (s->draining) {
		conn_close(c);
		return;
	}
	if (conn_start_reading(c) != 0) {
		conn_close(c);
		return;
	}
	conn_arm_idle(c);
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	char portstr[8];
	snprintf(portstr, sizeof(portstr), "%u", port);
	int r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0)
		return -EADDRNOTAVAIL;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int floe_server_listen(struct floe_server *s, uv_loop_t *loop, const char *name, const char *host,
		       uint16_t port, const struct floe_server_handler *handler,
		       const struct floe_server_limits *limits, floe_error *err)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->handler = handler;
	s->limits = *limits;
	snprintf(s->name, sizeof(s->name), "%s", name);
	floe_list_init(&s->conns);

	struct sockaddr_storage addr;
	if (resolve(host, port, &addr) != 0)
		return floe_error_set(err, -EADDRNOTAVAIL, "%s: cannot resolve %s", name, host);
	uv_tcp_init(loop, &s->listener);
	int r = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
	if (r != 0) {
		uv_close((uv_handle_t *)&s->listener, NULL);
		return floe_error_set(err, r, "%s: listen on %s:%u: %s", name, host, port,
				      uv_strerror(r));
	}
	s->listening = true;
	return 0;
}

uint16_t floe_server_port(const struct floe_server *s)
{
	struct sockaddr_storage ss;
	int n = sizeof(ss);
	if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &n) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void floe_server_stop_accepting(struct floe_server *s)
{
	if (!s->listening)
		return;
	s->listening = false;
	uv_close((uv_handle_t *)&s->listener, NULL);
}

void floe_server_drain(struct floe_server *s)
{
	floe_server_stop_accepting(s);
	s->draining = true;
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &s->conns) {
		struct floe_conn *c = container_of(pos, struct floe_conn, link);
		if (!c->in_exchange)
			conn_close(c);
	}
}

void floe_server_close_all(struct floe_server *s)
{
	floe_server_stop_accepting(s);
	s->draining = true;
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &s->conns)
		conn_close(container_of(pos, struct floe_conn, link));
}
