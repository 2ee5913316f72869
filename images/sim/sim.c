/*
 * floe-sim: floe's reference inference engine.
 *
 * A small HTTP server that behaves like an inference engine (TGI, vLLM, TEI,
 * llama-server) for tests, demos and benchmarks: it "loads" for --init-ms
 * (optionally filling --rss-mib of memory), then generates deterministic
 * tokens from a word list, one every --token-ms, streamed as Server-Sent
 * Events. The output is a pure function of the request body and --model, so
 * tests can assert exact bodies.
 *
 * It is a standalone program (libuv, llhttp, jansson; not floe's base
 * library) with one thread and no libuv threadpool use, so that CRIU can
 * checkpoint and restore it without surprises.
 *
 * Connections: HTTP/1.1 keep-alive and pipelining. A connection answers its
 * requests strictly in order: when a request goes asynchronous (a token timer,
 * or a wait for a generation slot) the parser is paused and later bytes are
 * kept until the response is complete. Responses are built in a per-connection
 * buffer and sent with one uv_try_write (falling back to one uv_write).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>
#include <llhttp.h>
#include <uv.h>

#ifndef FLOE_VERSION
#define FLOE_VERSION "dev"
#endif

#define MAX_BODY (8u << 20)          /* larger request bodies get 413 */
#define MAX_HEADER_BYTES (64u << 10) /* request line + headers, then 431 */
#define MAX_URL 8192                 /* then 414 */
#define MAX_PENDING (1u << 20)       /* pipelined bytes kept while busy */
#define WRITE_HIGH_WATER (1u << 20)  /* stop reading while this much is queued */
#define DEFAULT_TOKENS 16
#define MAX_TOKENS 4096
#define EMBED_DIM 32
#define DRAIN_GRACE_MS 5000
#define LINGER_MS 2000
#define FILL_CHUNK_WORDS ((4u << 20) / sizeof(uint64_t))
#define FILL_SEED 0x9e3779b97f4a7c15ULL
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- small utilities ------------------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p && n) {
		fputs("floe-sim: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* A growable byte buffer; len bytes are valid, and p is NUL-terminated when non-NULL. */
struct sb {
	char *p;
	size_t len, cap;
};

static void sb_reserve(struct sb *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 512;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void sb_add(struct sb *b, const void *data, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_adds(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	sb_reserve(b, 128);
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		sb_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void sb_free(struct sb *b)
{
	free(b->p);
	*b = (struct sb){ 0 };
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

/* splitmix64's finaliser: spreads a counter into well-mixed bits. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Tokens of a prompt, roughly: whitespace-separated words. */
static unsigned count_words(const char *s)
{
	unsigned n = 0;
	bool in = false;
	for (; *s; s++) {
		bool sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
		if (!sp && !in)
			n++;
		in = !sp;
	}
	return n;
}

/* ---- the "model": deterministic tokens from a word list ------------------------------------- */

/* Plain ASCII words: token text never needs JSON escaping. */
static const char *const words[] = {
	"the",    "a",     "model",  "token",  "stream",  "cold",    "start",    "replica",
	"engine", "floe",  "river",  "ice",    "north",   "quiet",   "bright",   "signal",
	"vector", "layer", "weight", "cache",  "prompt",  "answer",  "scale",    "zero",
	"warm",   "light", "water",  "stone",  "cloud",   "wind",    "snapshot", "restore",
	"memory", "page",  "kernel", "socket", "request", "reply",   "queue",    "batch",
	"fast",   "slow",  "small",  "large",  "simple",  "careful", "steady",   "drift",
	"and",    "of",    "to",     "in",     "with",    "over",    "under",    "through",
	"is",     "runs",  "waits",  "wakes",  "sleeps",  "flows",   "holds",    "returns",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static unsigned token_word(uint64_t seed, unsigned i)
{
	return (unsigned)(mix64(seed + (uint64_t)(i + 1) * FILL_SEED) % N_WORDS);
}

/* Token ids look like a vocabulary's: stable per word. */
static unsigned token_id(unsigned word)
{
	return 1000 + word * 37;
}

/* Appends the text of token i (each token is " word"). */
static void token_text(struct sb *b, uint64_t seed, unsigned i)
{
	sb_adds(b, " ");
	sb_adds(b, words[token_word(seed, i)]);
}

/* ---- global state --------------------------------------------------------------------------- */

static struct {
	int port;
	const char *host;
	uint64_t init_ms, token_ms;
	uint64_t rss_mib;
	unsigned max_running; /* 0: unlimited */
	const char *model;
	bool listen_after_init;
} opt = { .port = 8000, .host = "127.0.0.1", .model = "floe-sim" };

struct conn;

static struct {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t init_timer, grace_timer;
	uv_idle_t fill_idle;
	uv_signal_t sigterm, sigint;
	bool listening, ready, init_elapsed, filled, draining;
	uint64_t start_ms;
	int bound_port;
	char *model_json; /* opt.model as a JSON string literal */
	/* --rss-mib memory, filled with an xorshift stream during initialisation */
	uint64_t *mem;
	size_t mem_words, mem_filled;
	uint64_t fill_state, checksum;
	/* connections and the generation scheduler */
	struct conn *conns;
	unsigned nconns;
	struct conn *queue_head, *queue_tail;
	unsigned queued, running;
	uint64_t requests, tokens;
} g;

/* ---- connections ---------------------------------------------------------------------------- */

enum gen_kind {
	GEN_NONE,
	GEN_PLAIN, /* one JSON body after n_tokens * token_ms */
	GEN_TGI,   /* /generate_stream events */
	GEN_CHAT,  /* /v1/chat/completions chunks */
	GEN_COMPL, /* /v1/completions chunks */
};

/* One generation request in progress on a connection (at most one at a time). */
struct gen {
	enum gen_kind kind;
	uint64_t seed;
	unsigned n_tokens, next, prompt_tokens;
	bool hit_limit;     /* finish_reason "length" rather than "stop" */
	bool include_usage; /* stream_options.include_usage */
	char id[40];
	char *model_json; /* the echoed model name as a JSON literal (owned) */
	char *body;       /* GEN_PLAIN: the response body (owned) */
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer; /* token timer, or the lingering-close timer */
	uv_shutdown_t shutdown_req;
	llhttp_t parser;
	struct conn *prev, *next; /* g.conns */
	struct conn *qnext;       /* g.queue_head */
	int open_handles;
	/* the request being parsed */
	struct sb url, body;
	size_t header_bytes;
	char hname[8], hval[16];
	size_t hname_len, hval_len;
	int err_status; /* status a parser callback chose before failing */
	bool in_message, keep_alive, http10, head, expect;
	/* connection state */
	bool busy; /* a request is queued or generating: parser paused */
	bool queued, running;
	bool in_parse;
	bool done_reading; /* the last response of this connection is out */
	bool reading, shutting_down, lingering, closing;
	struct sb pending; /* bytes received while busy */
	size_t pending_off;
	struct sb out; /* response bytes not yet handed to the kernel */
	struct gen gen;
};

static const llhttp_settings_t parser_settings;
static void conn_after_io(struct conn *c);
static void sched_next(void);
static void maybe_exit(void);

static void gen_reset(struct gen *gen)
{
	free(gen->model_json);
	free(gen->body);
	*gen = (struct gen){ 0 };
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		g.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g.nconns--;
	sb_free(&c->url);
	sb_free(&c->body);
	sb_free(&c->pending);
	sb_free(&c->out);
	gen_reset(&c->gen);
	free(c);
	maybe_exit();
}

static void queue_remove(struct conn *c)
{
	struct conn **pp = &g.queue_head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (!*pp)
		return;
	*pp = c->qnext;
	if (g.queue_tail == c)
		g.queue_tail = prev;
	c->qnext = NULL;
	c->queued = false;
	g.queued--;
}

/* Abortive close: a generation in progress stops (the client went away). Safe to call from any
 * callback of this connection: the memory is freed in the close callbacks. */
static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->queued)
		queue_remove(c);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	if (c->running) {
		c->running = false;
		g.running--;
		sched_next();
	}
}

struct wreq {
	uv_write_t req;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = container_of(req->handle, struct conn, tcp);
	free(container_of(req, struct wreq, req));
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	conn_after_io(c);
}

/* Hands c->out to the kernel: uv_try_write first (no allocation when the socket has room), the
 * rest as one uv_write. */
static void conn_flush(struct conn *c)
{
	if (c->out.len == 0 || c->closing) {
		c->out.len = 0;
		return;
	}
	uv_buf_t buf = uv_buf_init(c->out.p, (unsigned)c->out.len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
	if (n < 0 && n != UV_EAGAIN) {
		c->out.len = 0;
		conn_close(c);
		return;
	}
	size_t done = n > 0 ? (size_t)n : 0;
	if (done < c->out.len) {
		size_t rest = c->out.len - done;
		struct wreq *w = xrealloc(NULL, sizeof(*w) + rest);
		memcpy(w->data, c->out.p + done, rest);
		buf = uv_buf_init(w->data, (unsigned)rest);
		if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) < 0) {
			free(w);
			c->out.len = 0;
			conn_close(c);
			return;
		}
	}
	c->out.len = 0;
}

static void on_linger_timeout(uv_timer_t *t)
{
	conn_close(container_of(t, struct conn, timer));
}

/* Lingering close (RFC 9112 section 9.6): after our last response, shut down the write side and
 * read until the client closes, so unread pipelined bytes do not turn into a reset that destroys
 * the response in flight. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = container_of(req, struct conn, shutdown_req);
	if (c->closing)
		return;
	if (status < 0 || g.draining) {
		conn_close(c);
		return;
	}
	c->lingering = true;
	uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
	conn_after_io(c);
}

static size_t conn_parse(struct conn *c, const char *data, size_t len);

/* Parses bytes that arrived while the connection was busy. */
static void conn_drain_pending(struct conn *c)
{
	while (!c->busy && !c->closing && !c->done_reading && c->pending_off < c->pending.len) {
		c->pending_off += conn_parse(c, c->pending.p + c->pending_off,
					     c->pending.len - c->pending_off);
	}
	if (c->pending_off == c->pending.len) {
		c->pending.len = 0;
		c->pending_off = 0;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	/* One thread, and on_read consumes or copies the bytes before the next read: one static
	 * buffer serves every connection. */
	static char slab[64 << 10];
	buf->base = slab;
	buf->len = sizeof(slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = container_of(s, struct conn, tcp);
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		/* EOF or error. A client that goes away mid-generation aborts it, as vLLM does;
		 * an idle one is simply closed. */
		conn_close(c);
		return;
	}
	if (c->lingering || c->done_reading)
		return;
	size_t n = (size_t)nread;
	if (c->busy || c->pending_off < c->pending.len) {
		sb_add(&c->pending, buf->base, n);
		conn_drain_pending(c);
	} else {
		size_t used = conn_parse(c, buf->base, n);
		if (used < n)
			sb_add(&c->pending, buf->base + used, n - used);
	}
	conn_after_io(c);
}

/* After any progress: flush output, start the lingering close once the last response is out,
 * and read only when we can take more bytes (back-pressure on pipelining clients). */
static void conn_after_io(struct conn *c)
{
	conn_flush(c);
	if (c->closing)
		return;
	if (c->done_reading && !c->busy && !c->shutting_down) {
		c->shutting_down = true;
		if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
			conn_close(c);
			return;
		}
	}
	bool want = c->lingering ||
		    (!c->done_reading && c->pending.len - c->pending_off < MAX_PENDING &&
		     uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_HIGH_WATER);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
			conn_close(c);
			return;
		}
		c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0) {
		fprintf(stderr, "floe-sim: accept: %s\n", uv_strerror(status));
		return;
	}
	struct conn *c = xrealloc(NULL, sizeof(*c));
	*c = (struct conn){ 0 };
	uv_tcp_init(g.loop, &c->tcp);
	uv_timer_init(g.loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = g.conns;
	if (g.conns)
		g.conns->prev = c;
	g.conns = c;
	g.nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	/* Streamed tokens are small writes that must leave at once. */
	uv_tcp_nodelay(&c->tcp, 1);
	llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
	c->parser.data = c;
	conn_after_io(c);
}

/* ---- responses ------------------------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* The Connection header this response needs, deciding keep-alive for good. */
static const char *connection_header(struct conn *c)
{
	if (g.draining)
		c->keep_alive = false;
	if (!c->keep_alive)
		return "Connection: close\r\n";
	/* HTTP/1.0 keeps the connection only when told so (RFC 9112 section 9.3). */
	return c->http10 ? "Connection: keep-alive\r\n" : "";
}

/* Appends a complete response to c->out. */
static void respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
		    const char *extra_headers)
{
	sb_printf(
		&c->out,
		"HTTP/1.1 %d %s\r\nServer: floe-sim\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		"%s%s\r\n",
		status, reason_phrase(status), ctype, len, connection_header(c),
		extra_headers ? extra_headers : "");
	if (!c->head)
		sb_add(&c->out, body, len);
	if (!c->keep_alive)
		c->done_reading = true;
}

static void respond_json(struct conn *c, int status, json_t *j, size_t flags,
			 const char *extra_headers)
{
	char *s = json_dumps(j, JSON_COMPACT | flags);
	json_decref(j);
	respond(c, status, "application/json", s, strlen(s), extra_headers);
	free(s);
}

static bool is_openai_path(const struct conn *c)
{
	return c->url.len >= 4 && memcmp(c->url.p, "/v1/", 4) == 0;
}

/* Errors in the caller's dialect: OpenAI's {"error":{"message",...}} under /v1/, TGI's
 * {"error","error_type"} elsewhere. */
__attribute__((format(printf, 4, 5))) static void
respond_error(struct conn *c, int status, const char *extra_headers, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *type = "invalid_request_error";
	if (status == 404)
		type = "not_found";
	else if (status == 405)
		type = "method_not_allowed";
	else if (status == 413)
		type = "payload_too_large";
	else if (status >= 500)
		type = "unavailable";
	json_t *j;
	if (is_openai_path(c))
		j = json_pack("{s:{s:s%,s:s,s:n,s:i}}", "error", "message", msg, strlen(msg),
			      "type", type, "param", "code", status);
	else
		j = json_pack("{s:s%,s:s}", "error", msg, strlen(msg), "error_type", type);
	if (!j) /* msg was not UTF-8 (it quotes the client): say less */
		j = json_pack("{s:s,s:s}", "error", reason_phrase(status), "error_type", type);
	respond_json(c, status, j, 0, extra_headers);
}

/* ---- generation: scheduling, token timers, SSE framing -------------------------------------- */

/* Scratch space for one event; events are built then framed into c->out. */
static struct sb ev;

static void sse_event(struct conn *c, const char *data, size_t len)
{
	/* HTTP/1.0 has no chunked coding: the stream is delimited by closing the connection. */
	if (!c->http10)
		sb_printf(&c->out, "%zx\r\n", len);
	sb_add(&c->out, data, len);
	if (!c->http10)
		sb_adds(&c->out, "\r\n");
}

static void stream_head(struct conn *c)
{
	struct gen *gen = &c->gen;
	if (c->http10)
		c->keep_alive = false;
	sb_printf(&c->out,
		  "HTTP/1.1 200 OK\r\nServer: floe-sim\r\nContent-Type: text/event-stream\r\n"
		  "Cache-Control: no-cache\r\n%s%s\r\n",
		  c->http10 ? "" : "Transfer-Encoding: chunked\r\n", connection_header(c));
	if (gen->kind == GEN_CHAT) {
		ev.len = 0;
		sb_printf(
			&ev,
			"data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":0,"
			"\"model\":%s,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
			"\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
			gen->id, gen->model_json);
		sse_event(c, ev.p, ev.len);
	}
}

static void stream_token(struct conn *c, unsigned i)
{
	struct gen *gen = &c->gen;
	unsigned w = token_word(gen->seed, i);
	ev.len = 0;
	switch (gen->kind) {
	case GEN_TGI:
		sb_printf(&ev,
			  "data: {\"token\":{\"id\":%u,\"text\":\" %s\",\"logprob\":0.0,"
			  "\"special\":false},\"generated_text\":",
			  token_id(w), words[w]);
		if (i + 1 < gen->n_tokens) {
			sb_adds(&ev, "null");
		} else {
			sb_adds(&ev, "\"");
			for (unsigned k = 0; k < gen->n_tokens; k++)
				token_text(&ev, gen->seed, k);
			sb_adds(&ev, "\"");
		}
		sb_adds(&ev, ",\"details\":null}\n\n");
		break;
	case GEN_CHAT:
		sb_printf(&ev,
			  "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":0,"
			  "\"model\":%s,\"choices\":[{\"index\":0,\"delta\":{\"content\":\" %s\"},"
			  "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
			  gen->id, gen->model_json, words[w]);
		break;
	case GEN_COMPL:
		sb_printf(&ev,
			  "data: {\"id\":\"%s\",\"object\":\"text_completion\",\"created\":0,"
			  "\"model\":%s,\"choices\":[{\"index\":0,\"text\":\" %s\","
			  "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
			  gen->id, gen->model_json, words[w]);
		break;
	default: return;
	}
	sse_event(c, ev.p, ev.len);
}

static void stream_end(struct conn *c)
{
	struct gen *gen = &c->gen;
	const char *finish = gen->hit_limit ? "length" : "stop";
	const char *object = gen->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion";
	if (gen->kind == GEN_CHAT || gen->kind == GEN_COMPL) {
		ev.len = 0;
		sb_printf(
			&ev,
			"data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":0,\"model\":%s,"
			"\"choices\":[{\"index\":0,%s,\"logprobs\":null,\"finish_reason\":\"%s\"}]}"
			"\n\n",
			gen->id, object, gen->model_json,
			gen->kind == GEN_CHAT ? "\"delta\":{}" : "\"text\":\"\"", finish);
		if (gen->include_usage)
			sb_printf(
				&ev,
				"data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":0,\"model\":%s,"
				"\"choices\":[],\"usage\":{\"prompt_tokens\":%u,"
				"\"completion_tokens\":%u,\"total_tokens\":%u}}\n\n",
				gen->id, object, gen->model_json, gen->prompt_tokens, gen->n_tokens,
				gen->prompt_tokens + gen->n_tokens);
		sb_adds(&ev, "data: [DONE]\n\n");
		sse_event(c, ev.p, ev.len);
	}
	if (!c->http10)
		sb_adds(&c->out, "0\r\n\r\n");
}

/* The request's response is complete: free the slot, then go on with pipelined requests. */
static void gen_done(struct conn *c)
{
	uv_timer_stop(&c->timer);
	g.tokens += c->gen.n_tokens;
	gen_reset(&c->gen);
	c->busy = false;
	if (c->running) {
		c->running = false;
		g.running--;
	}
	if (g.draining || !c->keep_alive)
		c->done_reading = true;
	if (!c->in_parse)
		conn_drain_pending(c);
	conn_after_io(c);
	sched_next();
}

static void on_token_timer(uv_timer_t *t)
{
	struct conn *c = container_of(t, struct conn, timer);
	struct gen *gen = &c->gen;
	if (gen->kind == GEN_PLAIN) {
		respond(c, 200, "application/json", gen->body, strlen(gen->body), NULL);
		gen_done(c);
		return;
	}
	stream_token(c, gen->next++);
	if (gen->next < gen->n_tokens) {
		conn_flush(c);
		return;
	}
	stream_end(c);
	gen_done(c);
}

/* Writes the whole response now (token_ms == 0), or its head and a timer. */
static void gen_start(struct conn *c)
{
	struct gen *gen = &c->gen;
	g.running++;
	c->running = true;
	if (gen->kind != GEN_PLAIN)
		stream_head(c);
	if (opt.token_ms == 0) {
		if (gen->kind == GEN_PLAIN) {
			respond(c, 200, "application/json", gen->body, strlen(gen->body), NULL);
		} else {
			for (unsigned i = 0; i < gen->n_tokens; i++)
				stream_token(c, i);
			stream_end(c);
		}
		gen_done(c);
		return;
	}
	if (gen->kind == GEN_PLAIN)
		uv_timer_start(&c->timer, on_token_timer, opt.token_ms * gen->n_tokens, 0);
	else
		uv_timer_start(&c->timer, on_token_timer, opt.token_ms, opt.token_ms);
	conn_flush(c);
}

static bool slot_free(void)
{
	return opt.max_running == 0 || g.running < opt.max_running;
}

/* Runs c->gen now, or queues it for a slot (--max-running). The parser is paused meanwhile. */
static void gen_submit(struct conn *c)
{
	c->busy = true;
	if (slot_free() && !g.queue_head) {
		gen_start(c);
		return;
	}
	c->queued = true;
	g.queued++;
	if (g.queue_tail)
		g.queue_tail->qnext = c;
	else
		g.queue_head = c;
	g.queue_tail = c;
}

static void sched_next(void)
{
	while (g.queue_head && slot_free()) {
		struct conn *c = g.queue_head;
		queue_remove(c);
		gen_start(c);
	}
}

/* ---- request parsing helpers ---------------------------------------------------------------- */

static json_t *body_object(struct conn *c)
{
	json_error_t err;
	json_t *j = json_loadb(c->body.p ? c->body.p : "", c->body.len, 0, &err);
	if (!j) {
		respond_error(c, 400, NULL, "invalid JSON body: %s (line %d, column %d)", err.text,
			      err.line, err.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		respond_error(c, 400, NULL, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Reads a token limit: absent or null gives the default (a natural "stop"); an integer >= 1 is
 * capped at MAX_TOKENS and ends with "length". Returns false after answering 400. */
static bool parse_limit(struct conn *c, json_t *obj, const char *key, struct gen *gen)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	gen->n_tokens = DEFAULT_TOKENS;
	gen->hit_limit = false;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		respond_error(c, 400, NULL, "`%s` must be an integer >= 1", key);
		return false;
	}
	json_int_t n = json_integer_value(v);
	gen->n_tokens = n > MAX_TOKENS ? MAX_TOKENS : (unsigned)n;
	gen->hit_limit = true;
	return true;
}

static uint64_t seed_begin(void)
{
	return fnv1a(FNV_OFFSET, opt.model, strlen(opt.model) + 1);
}

/* The model name echoed in OpenAI responses: the request's, else ours. */
static char *echo_model(json_t *req)
{
	json_t *m = json_object_get(req, "model");
	if (json_is_string(m))
		return json_dumps(m, JSON_ENCODE_ANY);
	return strdup(g.model_json);
}

/* The same, as a new reference for json_pack's "o". */
static json_t *model_value(json_t *req)
{
	json_t *m = json_object_get(req, "model");
	return json_is_string(m) ? json_incref(m) : json_string(opt.model);
}

static void gen_text(struct sb *b, const struct gen *gen)
{
	for (unsigned i = 0; i < gen->n_tokens; i++)
		token_text(b, gen->seed, i);
}

static void gen_set_id(struct conn *c, const char *prefix)
{
	snprintf(c->gen.id, sizeof(c->gen.id), "%s%016" PRIx64, prefix,
		 fnv1a(seed_begin(), c->body.p, c->body.len));
}

/* ---- routes --------------------------------------------------------------------------------- */

static void route_health(struct conn *c)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	static const char init[] = "{\"status\":\"initializing\"}";
	if (g.ready)
		respond(c, 200, "application/json", ok, sizeof(ok) - 1, NULL);
	else
		respond(c, 503, "application/json", init, sizeof(init) - 1, NULL);
}

static uint64_t mem_checksum(const uint64_t *mem, size_t words)
{
	uint64_t cs = FNV_OFFSET;
	for (size_t i = 0; i < words; i++)
		cs = (cs ^ mem[i]) * FNV_PRIME;
	return cs;
}

static void route_info(struct conn *c)
{
	char cs[32];
	snprintf(cs, sizeof(cs), "%016" PRIx64, g.checksum);
	json_t *j = json_object();
	json_object_set_new(j, "model_id", json_string(opt.model));
	json_object_set_new(j, "version", json_string(FLOE_VERSION));
	json_object_set_new(j, "pid", json_integer(getpid()));
	json_object_set_new(j, "host", json_string(opt.host));
	json_object_set_new(j, "port", json_integer(g.bound_port));
	json_object_set_new(j, "ready", json_boolean(g.ready));
	json_object_set_new(j, "init_ms", json_integer((json_int_t)opt.init_ms));
	json_object_set_new(j, "token_ms", json_integer((json_int_t)opt.token_ms));
	json_object_set_new(j, "max_running", json_integer(opt.max_running));
	json_object_set_new(j, "rss_mib", json_integer((json_int_t)opt.rss_mib));
	json_object_set_new(j, "memory_checksum", g.filled ? json_string(cs) : json_null());
	/* ?verify recomputes the checksum from memory (blocking, ~0.2 s per GiB): snapshot tests
	 * use it to check that restored memory is intact. */
	const char *q = memchr(c->url.p, '?', c->url.len);
	if (q && strstr(q, "verify") && g.filled)
		json_object_set_new(j, "memory_verified",
				    json_boolean(mem_checksum(g.mem, g.mem_words) == g.checksum));
	json_object_set_new(j, "uptime_s",
			    json_real((double)(uv_now(g.loop) - g.start_ms) / 1000.0));
	json_object_set_new(j, "requests_served", json_integer((json_int_t)g.requests));
	json_object_set_new(j, "tokens_generated", json_integer((json_int_t)g.tokens));
	respond_json(c, 200, j, JSON_REAL_PRECISION(6), NULL);
}

static void route_metrics(struct conn *c)
{
	char body[2048];
	int n = snprintf(body, sizeof(body),
			 "# HELP sim_requests_total HTTP requests received.\n"
			 "# TYPE sim_requests_total counter\n"
			 "sim_requests_total %" PRIu64 "\n"
			 "# HELP sim_running_requests Requests generating tokens now.\n"
			 "# TYPE sim_running_requests gauge\n"
			 "sim_running_requests %u\n"
			 "# HELP sim_queue_size Requests waiting for a generation slot.\n"
			 "# TYPE sim_queue_size gauge\n"
			 "sim_queue_size %u\n"
			 "# HELP sim_generated_tokens_total Tokens generated.\n"
			 "# TYPE sim_generated_tokens_total counter\n"
			 "sim_generated_tokens_total %" PRIu64 "\n"
			 "# HELP sim_connections Open client connections.\n"
			 "# TYPE sim_connections gauge\n"
			 "sim_connections %u\n"
			 "# HELP sim_ready Whether initialisation has finished.\n"
			 "# TYPE sim_ready gauge\n"
			 "sim_ready %d\n",
			 g.requests, g.running, g.queued, g.tokens, g.nconns, g.ready ? 1 : 0);
	respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, (size_t)n, NULL);
}

static void route_models(struct conn *c)
{
	respond_json(c, 200,
		     json_pack("{s:s,s:[{s:s,s:s,s:i,s:s}]}", "object", "list", "data", "id",
			       opt.model, "object", "model", "created", 0, "owned_by", "floe"),
		     0, NULL);
}

/* POST /generate and /generate_stream (TGI). */
static void route_tgi(struct conn *c, bool stream)
{
	json_t *req = body_object(c);
	if (!req)
		return;
	struct gen *gen = &c->gen;
	json_t *inputs = json_object_get(req, "inputs");
	json_t *params = json_object_get(req, "parameters");
	if (!json_is_string(inputs)) {
		respond_error(c, 400, NULL, "`inputs` must be a string");
		goto out;
	}
	if (params && !json_is_object(params) && !json_is_null(params)) {
		respond_error(c, 400, NULL, "`parameters` must be an object");
		goto out;
	}
	if (!parse_limit(c, params, "max_new_tokens", gen))
		goto out;
	gen->seed = fnv1a(seed_begin(), json_string_value(inputs), json_string_length(inputs));
	gen->kind = stream ? GEN_TGI : GEN_PLAIN;
	if (!stream) {
		struct sb text = { 0 };
		gen_text(&text, gen);
		json_t *r = json_pack("{s:s}", "generated_text", text.p);
		sb_free(&text);
		gen->body = json_dumps(r, JSON_COMPACT);
		json_decref(r);
	}
	gen_submit(c);
out:
	json_decref(req);
}

/* Appends a message's text content: a string, or an array of {"type":"text","text":...} parts;
 * counts its words into *tokens. */
static bool chat_content(json_t *content, struct sb *prompt, unsigned *tokens)
{
	if (json_is_string(content)) {
		sb_add(prompt, json_string_value(content), json_string_length(content));
		*tokens += count_words(json_string_value(content));
		return true;
	}
	if (json_is_null(content))
		return true;
	if (!json_is_array(content))
		return false;
	size_t i;
	json_t *part;
	json_array_foreach(content, i, part) {
		json_t *text = json_object_get(part, "text");
		if (json_is_string(text)) {
			sb_add(prompt, json_string_value(text), json_string_length(text));
			*tokens += count_words(json_string_value(text));
		} else if (!json_is_object(part))
			return false;
		sb_adds(prompt, "\n");
	}
	return true;
}

/* POST /v1/chat/completions and /v1/completions (OpenAI). */
static void route_openai(struct conn *c, bool chat)
{
	json_t *req = body_object(c);
	if (!req)
		return;
	struct gen *gen = &c->gen;
	struct sb prompt = { 0 };
	sb_adds(&prompt, "");
	if (chat) {
		json_t *msgs = json_object_get(req, "messages"), *m;
		size_t i;
		if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
			respond_error(c, 400, NULL, "`messages` must be a non-empty array");
			goto out;
		}
		json_array_foreach(msgs, i, m) {
			json_t *role = json_object_get(m, "role");
			if (!json_is_string(role)) {
				respond_error(c, 400, NULL, "`messages[%zu].role` must be a string",
					      i);
				goto out;
			}
			/* Role and content, separated so that messages cannot run together. */
			sb_adds(&prompt, json_string_value(role));
			sb_adds(&prompt, "\x1f ");
			if (!chat_content(json_object_get(m, "content"), &prompt,
					  &gen->prompt_tokens)) {
				respond_error(c, 400, NULL,
					      "`messages[%zu].content` must be a string or "
					      "an array of parts",
					      i);
				goto out;
			}
			sb_adds(&prompt, "\x1e\n");
		}
	} else {
		json_t *p = json_object_get(req, "prompt");
		if (json_is_array(p) && json_array_size(p) == 1)
			p = json_array_get(p, 0);
		if (!json_is_string(p)) {
			respond_error(c, 400, NULL,
				      "`prompt` must be a string (or an array of one)");
			goto out;
		}
		sb_add(&prompt, json_string_value(p), json_string_length(p));
		gen->prompt_tokens = count_words(json_string_value(p));
	}
	/* Chat clients may send the newer name of the limit. */
	json_t *mct = json_object_get(req, "max_completion_tokens");
	bool newer = chat && mct && !json_is_null(mct);
	if (!parse_limit(c, req, newer ? "max_completion_tokens" : "max_tokens", gen))
		goto out;
	json_t *stream = json_object_get(req, "stream");
	if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
		respond_error(c, 400, NULL, "`stream` must be a boolean");
		goto out;
	}
	json_t *so = json_object_get(req, "stream_options");
	gen->include_usage = json_is_true(json_object_get(so, "include_usage"));
	gen->seed = fnv1a(seed_begin(), prompt.p, prompt.len);
	gen->model_json = echo_model(req);
	gen_set_id(c, chat ? "chatcmpl-" : "cmpl-");
	if (json_is_true(stream)) {
		gen->kind = chat ? GEN_CHAT : GEN_COMPL;
	} else {
		struct sb text = { 0 };
		gen_text(&text, gen);
		json_t *choice =
			chat ? json_pack("{s:i,s:{s:s,s:s},s:n,s:s}", "index", 0, "message", "role",
					 "assistant", "content", text.p, "logprobs",
					 "finish_reason", gen->hit_limit ? "length" : "stop") :
			       json_pack("{s:i,s:s,s:n,s:s}", "index", 0, "text", text.p,
					 "logprobs", "finish_reason",
					 gen->hit_limit ? "length" : "stop");
		json_t *r = json_pack("{s:s,s:s,s:i,s:o,s:[o],s:{s:i,s:i,s:i}}", "id", gen->id,
				      "object", chat ? "chat.completion" : "text_completion",
				      "created", 0, "model", model_value(req), "choices", choice,
				      "usage", "prompt_tokens", gen->prompt_tokens,
				      "completion_tokens", gen->n_tokens, "total_tokens",
				      gen->prompt_tokens + gen->n_tokens);
		sb_free(&text);
		gen->body = json_dumps(r, JSON_COMPACT);
		json_decref(r);
		gen->kind = GEN_PLAIN;
	}
	gen_submit(c);
out:
	sb_free(&prompt);
	json_decref(req);
}

/* RFC 4648 base64 of n bytes. */
static void base64(struct sb *b, const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		char q[4] = { tab[v >> 18], tab[(v >> 12) & 63],
			      i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '=' };
		sb_add(b, q, 4);
	}
}

/* A deterministic unit vector for a text; as_base64: the little-endian float32 bytes in base64,
 * OpenAI's encoding_format "base64" (which the official clients ask for by default). */
static json_t *embedding(const char *text, size_t len, bool as_base64)
{
	double v[EMBED_DIM], norm = 0;
	uint64_t seed = fnv1a(seed_begin(), text, len);
	for (int d = 0; d < EMBED_DIM; d++) {
		v[d] = (double)(mix64(seed + (uint64_t)d) >> 11) * 0x1p-53 * 2.0 - 1.0;
		norm += v[d] * v[d];
	}
	/* Newton's square root: exact enough, deterministic, and no libm to link. */
	double root = norm > 1 ? norm : 1;
	for (int i = 0; i < 64; i++)
		root = 0.5 * (root + norm / root);
	norm = norm > 0 ? 1.0 / root : 0;
	if (as_base64) {
		unsigned char bytes[EMBED_DIM * 4];
		for (int d = 0; d < EMBED_DIM; d++) {
			float f = (float)(v[d] * norm);
			uint32_t u;
			memcpy(&u, &f, 4);
			for (int k = 0; k < 4; k++)
				bytes[d * 4 + k] = (unsigned char)(u >> (8 * k));
		}
		struct sb b = { 0 };
		base64(&b, bytes, sizeof(bytes));
		json_t *str = json_stringn(b.p, b.len);
		sb_free(&b);
		return str;
	}
	json_t *a = json_array();
	for (int d = 0; d < EMBED_DIM; d++)
		json_array_append_new(a, json_real(v[d] * norm));
	return a;
}

/* POST /embed (TEI) and /v1/embeddings (OpenAI): a string or an array of strings. */
static void route_embed(struct conn *c, bool openai)
{
	json_t *req = body_object(c);
	if (!req)
		return;
	const char *key = openai ? "input" : "inputs";
	json_t *in = json_object_get(req, key), *item;
	json_t *list = json_is_string(in) ? json_pack("[O]", in) : json_incref(in);
	size_t i;
	if (!json_is_array(list) || json_array_size(list) == 0) {
		respond_error(c, 400, NULL, "`%s` must be a string or a non-empty array of strings",
			      key);
		goto out;
	}
	json_array_foreach(list, i, item) {
		if (!json_is_string(item)) {
			respond_error(c, 400, NULL, "`%s[%zu]` must be a string", key, i);
			goto out;
		}
	}
	json_t *fmt = openai ? json_object_get(req, "encoding_format") : NULL;
	bool as_base64 = json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0;
	if (fmt && !json_is_null(fmt) && !as_base64 &&
	    !(json_is_string(fmt) && strcmp(json_string_value(fmt), "float") == 0)) {
		respond_error(c, 400, NULL, "`encoding_format` must be \"float\" or \"base64\"");
		goto out;
	}
	json_t *res = json_array();
	unsigned words_in = 0;
	json_array_foreach(list, i, item) {
		json_t *vec =
			embedding(json_string_value(item), json_string_length(item), as_base64);
		words_in += count_words(json_string_value(item));
		if (openai)
			json_array_append_new(res, json_pack("{s:s,s:i,s:o}", "object", "embedding",
							     "index", (int)i, "embedding", vec));
		else
			json_array_append_new(res, vec);
	}
	if (openai) {
		res = json_pack("{s:s,s:o,s:o,s:{s:i,s:i}}", "object", "list", "data", res, "model",
				model_value(req), "usage", "prompt_tokens", words_in,
				"total_tokens", words_in);
	}
	respond_json(c, 200, res, JSON_REAL_PRECISION(8), NULL);
out:
	json_decref(list);
	json_decref(req);
}

static void route_generate(struct conn *c)
{
	route_tgi(c, false);
}
static void route_generate_stream(struct conn *c)
{
	route_tgi(c, true);
}
static void route_chat(struct conn *c)
{
	route_openai(c, true);
}
static void route_completions(struct conn *c)
{
	route_openai(c, false);
}
static void route_tei_embed(struct conn *c)
{
	route_embed(c, false);
}
static void route_oai_embed(struct conn *c)
{
	route_embed(c, true);
}

enum {
	M_GET = 1,
	M_POST = 2
};

static const struct route {
	const char *path;
	unsigned methods;
	bool needs_ready; /* 503 while initialising */
	void (*fn)(struct conn *c);
} routes[] = {
	{ "/health", M_GET, false, route_health },
	{ "/info", M_GET, false, route_info },
	{ "/metrics", M_GET, false, route_metrics },
	{ "/v1/models", M_GET, false, route_models },
	{ "/generate", M_POST, true, route_generate },
	{ "/generate_stream", M_POST, true, route_generate_stream },
	{ "/v1/chat/completions", M_POST, true, route_chat },
	{ "/v1/completions", M_POST, true, route_completions },
	{ "/embed", M_POST, true, route_tei_embed },
	{ "/v1/embeddings", M_POST, true, route_oai_embed },
};

static void handle_request(struct conn *c)
{
	g.requests++;
	gen_reset(&c->gen);
	size_t plen = c->url.len;
	const char *q = memchr(c->url.p, '?', c->url.len);
	if (q)
		plen = (size_t)(q - c->url.p);
	const struct route *r = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strlen(routes[i].path) == plen && memcmp(routes[i].path, c->url.p, plen) == 0) {
			r = &routes[i];
			break;
		}
	}
	if (!r) {
		respond_error(c, 404, NULL, "no route for %.*s", (int)(plen > 200 ? 200 : plen),
			      c->url.p);
		return;
	}
	uint8_t method = llhttp_get_method(&c->parser);
	unsigned m = method == HTTP_GET || method == HTTP_HEAD ? M_GET :
		     method == HTTP_POST                       ? M_POST :
								 0;
	if (!(r->methods & m)) {
		char allow[40];
		snprintf(allow, sizeof(allow), "Allow: %s\r\n",
			 r->methods == M_GET ? "GET, HEAD" : "POST");
		respond_error(c, 405, allow, "method %s not allowed on %.*s",
			      llhttp_method_name(method), (int)plen, c->url.p);
		return;
	}
	if (r->needs_ready && !g.ready) {
		respond_error(c, 503, NULL, "the model is initializing");
		return;
	}
	r->fn(c);
}

/* ---- llhttp callbacks ----------------------------------------------------------------------- */

static int count_header_bytes(struct conn *c, size_t n)
{
	c->header_bytes += n;
	if (c->header_bytes > MAX_HEADER_BYTES) {
		c->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(llhttp_t *p)
{
	struct conn *c = p->data;
	c->url.len = 0;
	c->body.len = 0;
	c->header_bytes = 0;
	c->hname_len = c->hval_len = 0;
	c->expect = c->head = false;
	c->in_message = true;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	if (c->url.len + n > MAX_URL) {
		c->err_status = 414;
		return -1;
	}
	sb_add(&c->url, at, n);
	return count_header_bytes(c, n);
}

/* Only Expect matters to us; names and values are kept just long enough to recognise it. */
static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	if (c->hname_len + n <= sizeof(c->hname))
		memcpy(c->hname + c->hname_len, at, n);
	c->hname_len += n;
	return count_header_bytes(c, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	if (c->hval_len + n <= sizeof(c->hval))
		memcpy(c->hval + c->hval_len, at, n);
	c->hval_len += n;
	return count_header_bytes(c, n);
}

static int on_header_value_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	if (c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0 && c->hval_len == 12 &&
	    strncasecmp(c->hval, "100-continue", 12) == 0)
		c->expect = true;
	c->hname_len = c->hval_len = 0;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
	c->http10 = p->http_major == 1 && p->http_minor == 0;
	c->head = p->method == HTTP_HEAD;
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > MAX_BODY) {
		c->err_status = 413;
		return -1;
	}
	/* RFC 9110 section 10.1.1: a client that sent Expect waits for this before the body. */
	if (c->expect && !c->http10) {
		sb_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_flush(c);
	}
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	if (c->body.len + n > MAX_BODY) {
		c->err_status = 413;
		return -1;
	}
	sb_add(&c->body, at, n);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	c->in_message = false;
	handle_request(c);
	/* Pausing returns control to conn_parse, which keeps the bytes of later requests until
	 * this response is complete. */
	return c->busy || c->done_reading ? HPE_PAUSED : 0;
}

static const llhttp_settings_t parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Answers a request llhttp (or our limits) refused, then closes the connection: after a parse
 * error the framing of anything that follows is unknown. */
static void conn_reject(struct conn *c, llhttp_errno_t err)
{
	int status = c->err_status ? c->err_status : 400;
	g.requests++;
	c->keep_alive = false;
	c->head = false;
	c->url.len = 0; /* plain error dialect */
	if (status == 400)
		respond_error(c, 400, NULL, "malformed HTTP request: %s (%s)",
			      llhttp_errno_name(err), c->parser.reason ? c->parser.reason : "?");
	else if (status == 413)
		respond_error(c, 413, NULL, "request body over %u bytes", MAX_BODY);
	else
		respond_error(c, status, NULL, "%s", reason_phrase(status));
	c->done_reading = true;
}

/* Feeds bytes to llhttp until they are used up, a request goes asynchronous, or the connection
 * is done. Returns the number of bytes consumed. */
static size_t conn_parse(struct conn *c, const char *data, size_t len)
{
	size_t off = 0;
	c->in_parse = true;
	while (off < len && !c->busy && !c->done_reading && !c->closing) {
		llhttp_errno_t err = llhttp_execute(&c->parser, data + off, len - off);
		if (err == HPE_OK) {
			off = len;
		} else if (err == HPE_PAUSED) {
			off = (size_t)(llhttp_get_error_pos(&c->parser) - data);
			llhttp_resume(&c->parser);
		} else if (err == HPE_PAUSED_UPGRADE) {
			/* No protocol upgrades here; the response said Connection: close. */
			c->done_reading = true;
			off = len;
		} else {
			conn_reject(c, err);
			off = len;
		}
	}
	c->in_parse = false;
	return off;
}

/* ---- initialisation, listening, shutdown ---------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
}

static void close_handle(uv_handle_t *h)
{
	if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
		uv_close(h, on_handle_closed);
}

/* Once draining and the last connection is gone, close our own handles: uv_run then returns. */
static void maybe_exit(void)
{
	if (!g.draining || g.nconns > 0)
		return;
	/* Closing the signal handles restores SIG_DFL: a repeated SIGTERM during exit must not
	 * turn a clean exit into death by signal, so keep them blocked from here on. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	close_handle((uv_handle_t *)&g.listener);
	close_handle((uv_handle_t *)&g.init_timer);
	close_handle((uv_handle_t *)&g.grace_timer);
	close_handle((uv_handle_t *)&g.fill_idle);
	close_handle((uv_handle_t *)&g.sigterm);
	close_handle((uv_handle_t *)&g.sigint);
}

static void on_grace_timeout(uv_timer_t *t)
{
	fprintf(stderr, "floe-sim: drain grace over, closing %u connection(s)\n", g.nconns);
	for (struct conn *c = g.conns; c; c = c->next)
		conn_close(c);
	maybe_exit();
}

static void on_signal(uv_signal_t *s, int signum)
{
	if (g.draining) {
		on_grace_timeout(&g.grace_timer);
		return;
	}
	g.draining = true;
	fprintf(stderr, "floe-sim: %s, draining %u connection(s)\n", strsignal(signum), g.nconns);
	if (g.listening)
		close_handle((uv_handle_t *)&g.listener);
	uv_timer_stop(&g.init_timer);
	uv_idle_stop(&g.fill_idle);
	/* Idle connections go now (after any response still being written); those mid-request
	 * finish it and then close. */
	for (struct conn *c = g.conns; c; c = c->next) {
		if (c->lingering) {
			conn_close(c);
		} else if (!c->busy && !c->in_message) {
			c->done_reading = true;
			conn_after_io(c);
		}
	}
	uv_timer_start(&g.grace_timer, on_grace_timeout, DRAIN_GRACE_MS, 0);
	maybe_exit();
}

static int parse_addr(struct sockaddr_storage *ss, int port)
{
	if (uv_ip4_addr(opt.host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	return uv_ip6_addr(opt.host, port, (struct sockaddr_in6 *)ss);
}

static int start_listening(void)
{
	struct sockaddr_storage ss;
	int err = parse_addr(&ss, opt.port);
	if (err < 0)
		return err;
	if ((err = uv_tcp_bind(&g.listener, (struct sockaddr *)&ss, 0)) < 0)
		return err;
	if ((err = uv_listen((uv_stream_t *)&g.listener, 1024, on_connection)) < 0)
		return err;
	int len = sizeof(ss);
	if ((err = uv_tcp_getsockname(&g.listener, (struct sockaddr *)&ss, &len)) < 0)
		return err;
	g.bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
							((struct sockaddr_in *)&ss)->sin_port);
	g.listening = true;
	return 0;
}

static void maybe_ready(void)
{
	if (g.ready || !g.init_elapsed || !g.filled)
		return;
	if (opt.listen_after_init) {
		int err = start_listening();
		if (err < 0) {
			fprintf(stderr, "floe-sim: listen on %s:%d: %s\n", opt.host, opt.port,
				uv_strerror(err));
			exit(1);
		}
	}
	g.ready = true;
	fprintf(stderr, "floe-sim: ready on %s:%d after %" PRIu64 " ms (model %s)\n", opt.host,
		g.bound_port, uv_now(g.loop) - g.start_ms, opt.model);
}

static void on_init_timer(uv_timer_t *t)
{
	g.init_elapsed = true;
	maybe_ready();
}

/* Fills --rss-mib in slices from an idle handle, so /health keeps answering 503 meanwhile. */
static void on_fill(uv_idle_t *h)
{
	size_t end = g.mem_filled + FILL_CHUNK_WORDS;
	if (end > g.mem_words)
		end = g.mem_words;
	uint64_t cs = g.checksum;
	for (size_t i = g.mem_filled; i < end; i++) {
		uint64_t x = xorshift64(&g.fill_state);
		g.mem[i] = x;
		cs = (cs ^ x) * FNV_PRIME;
	}
	g.checksum = cs;
	g.mem_filled = end;
	if (end < g.mem_words)
		return;
	uv_idle_stop(h);
	g.filled = true;
	maybe_ready();
}

static void usage(FILE *f)
{
	fprintf(f, "usage: floe-sim --port N [--host ADDR] [--init-ms MS] [--rss-mib N]\n"
		   "                [--token-ms MS] [--model NAME] [--max-running N]\n"
		   "                [--listen-after-init]\n");
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return false;
	*out = v;
	return true;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "init-ms", required_argument, NULL, 'i' },
		{ "rss-mib", required_argument, NULL, 'r' },
		{ "token-ms", required_argument, NULL, 't' },
		{ "model", required_argument, NULL, 'm' },
		{ "max-running", required_argument, NULL, 'M' },
		{ "listen-after-init", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int ch, li = 0;
	uint64_t v;
	while ((ch = getopt_long(argc, argv, "", lopts, &li)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'p':
			ok = parse_u64(optarg, 65535, &v);
			opt.port = (int)v;
			break;
		case 'H': opt.host = optarg; break;
		case 'i': ok = parse_u64(optarg, 24ULL * 3600 * 1000, &opt.init_ms); break;
		case 'r': ok = parse_u64(optarg, 1ULL << 20, &opt.rss_mib); break;
		case 't': ok = parse_u64(optarg, 3600ULL * 1000, &opt.token_ms); break;
		case 'm':
			ok = *optarg != '\0';
			opt.model = optarg;
			break;
		case 'M':
			ok = parse_u64(optarg, 1u << 20, &v);
			opt.max_running = (unsigned)v;
			break;
		case 'L': opt.listen_after_init = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("floe-sim %s\n", FLOE_VERSION); exit(0);
		default: usage(stderr); exit(2);
		}
		if (!ok) {
			fprintf(stderr, "floe-sim: bad value for --%s: '%s'\n", lopts[li].name,
				optarg);
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	g.loop = uv_default_loop();
	g.start_ms = uv_now(g.loop);
	json_t *m = json_string(opt.model);
	if (!m) {
		fprintf(stderr, "floe-sim: --model must be UTF-8\n");
		return 2;
	}
	g.model_json = json_dumps(m, JSON_ENCODE_ANY);
	json_decref(m);

	uv_tcp_init(g.loop, &g.listener);
	uv_timer_init(g.loop, &g.init_timer);
	uv_timer_init(g.loop, &g.grace_timer);
	uv_idle_init(g.loop, &g.fill_idle);
	uv_signal_init(g.loop, &g.sigterm);
	uv_signal_init(g.loop, &g.sigint);
	uv_signal_start(&g.sigterm, on_signal, SIGTERM);
	uv_signal_start(&g.sigint, on_signal, SIGINT);

	if (!opt.listen_after_init) {
		int err = start_listening();
		if (err < 0) {
			fprintf(stderr, "floe-sim: listen on %s:%d: %s\n", opt.host, opt.port,
				uv_strerror(err));
			return 1;
		}
		fprintf(stderr, "floe-sim: listening on %s:%d, init %" PRIu64 " ms\n", opt.host,
			g.bound_port, opt.init_ms);
	} else {
		fprintf(stderr,
			"floe-sim: initialising for %" PRIu64 " ms, then listening on %s:%d\n",
			opt.init_ms, opt.host, opt.port);
	}

	g.mem_words = (size_t)(opt.rss_mib << 20) / sizeof(uint64_t);
	g.checksum = FNV_OFFSET;
	g.fill_state = FILL_SEED;
	if (g.mem_words) {
		g.mem = mmap(NULL, g.mem_words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g.mem == MAP_FAILED) {
			perror("floe-sim: mmap");
			return 1;
		}
		uv_idle_start(&g.fill_idle, on_fill);
	} else {
		g.filled = true;
	}
	if (opt.init_ms)
		uv_timer_start(&g.init_timer, on_init_timer, opt.init_ms, 0);
	else
		g.init_elapsed = true;
	maybe_ready();

	uv_run(g.loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(g.loop);
	if (rc < 0)
		fprintf(stderr, "floe-sim: loop close: %s\n", uv_strerror(rc));
	if (g.mem)
		munmap(g.mem, g.mem_words * sizeof(uint64_t));
	free(g.model_json);
	sb_free(&ev);
	fprintf(stderr, "floe-sim: stopped\n");
	return 0;
}
