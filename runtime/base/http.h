/*
 * HTTP/1.1 message parsing over llhttp, for both sides of the proxy: client
 * requests (with the limits and request-smuggling checks a gateway needs)
 * and upstream responses. No lenient flag of llhttp is ever enabled: they
 * re-open request smuggling.
 *
 * llhttp's data callbacks may fire several times per item; this layer
 * accumulates them into one buffer (msg->raw), NUL-terminating each piece,
 * so callers see whole, C-string headers once the header block is complete.
 */
#ifndef FLOE_HTTP_H
#define FLOE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "buf.h"

/** Headers the proxy treats specially, recognised once while parsing. */
enum floe_http_header_id {
	FLOE_HDR_OTHER = 0,
	FLOE_HDR_HOP_BY_HOP, /* RFC 9110 7.6.1 (Connection itself has its own id) */
	FLOE_HDR_CONNECTION,
	FLOE_HDR_CONTENT_LENGTH,
	FLOE_HDR_TRANSFER_ENCODING, /* also hop-by-hop */
	FLOE_HDR_EXPECT,
	FLOE_HDR_HOST,
	FLOE_HDR_X_FORWARDED_FOR,
	FLOE_HDR_X_FORWARDED_PROTO,
	FLOE_HDR_AUTHORIZATION, /* floe's own token is not passed to engines that need one */
};

struct floe_http_header {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
	uint8_t id; /* enum floe_http_header_id */
};

/** One parsed message head. Strings point into raw and are NUL-terminated. */
struct floe_http_msg {
	struct floe_buf raw;
	uint32_t url_off, url_len;       /* request target (requests) */
	uint32_t reason_off, reason_len; /* reason phrase (responses) */
	struct floe_http_header *headers;
	size_t n_headers, cap_headers;
	uint8_t method; /* llhttp_method_t (requests) */
	int status;     /* responses */
	uint8_t major, minor;
	int64_t content_length; /* -1 when absent */
	bool chunked;
	bool keep_alive;      /* llhttp_should_keep_alive after the head */
	bool expect_continue; /* request had "Expect: 100-continue" */
	/* Offset in raw of the Connection value when it names other headers to
	 * drop (beyond keep-alive/close), else 0: only then must each header be
	 * checked against the list. An offset, since raw moves as it grows. */
	uint32_t connection_list_off;
};

/** The Connection list naming headers to drop, or NULL when it names none. */
static inline const char *floe_http_msg_connection_list(const struct floe_http_msg *m)
{
	return m->connection_list_off ? m->raw.data + m->connection_list_off : NULL;
}

/** True for ids a proxy never forwards (hop-by-hop, Connection, Transfer-Encoding). */
static inline bool floe_http_header_id_is_hop(uint8_t id)
{
	return id == FLOE_HDR_HOP_BY_HOP || id == FLOE_HDR_CONNECTION ||
	       id == FLOE_HDR_TRANSFER_ENCODING;
}

static inline const char *floe_http_msg_str(const struct floe_http_msg *m, uint32_t off)
{
	return m->raw.data + off;
}
static inline const char *floe_http_msg_url(const struct floe_http_msg *m)
{
	return m->raw.data + m->url_off;
}
static inline const char *floe_http_header_name(const struct floe_http_msg *m, size_t i)
{
	return m->raw.data + m->headers[i].name_off;
}
static inline const char *floe_http_header_value(const struct floe_http_msg *m, size_t i)
{
	return m->raw.data + m->headers[i].value_off;
}

/** First value of a header (case-insensitive name), or NULL. */
const char *floe_http_msg_header(const struct floe_http_msg *m, const char *name);

/**
 * Parser callbacks. Each returns 0 to go on.
 * on_head: the header block is complete and validated. Return 1 to say the
 *   message has no body (a response to HEAD), or an HTTP status >= 400 to
 *   refuse the request (the parser then stops with that error_status).
 * on_body: a piece of the (de-chunked) body.
 * on_complete: the message is complete. Return 1 to pause the parser here
 *   (pipelined bytes after this message are left unconsumed).
 */
struct floe_http_parser_cbs {
	int (*on_head)(void *ud, struct floe_http_msg *msg);
	int (*on_body)(void *ud, const char *data, size_t len);
	int (*on_complete)(void *ud);
};

struct floe_http_parser {
	llhttp_t llhttp;
	llhttp_settings_t settings;
	struct floe_http_msg msg;
	const struct floe_http_parser_cbs *cbs;
	void *ud;
	size_t head_bytes;
	size_t max_head_bytes;
	uint64_t body_bytes;
	uint64_t max_body_bytes;
	int error_status;         /* status to answer a refused request with (400, 413, 431, 501) */
	const char *error_reason; /* short, static */
	bool in_head;             /* between message begin and head complete */
	bool started;             /* a message has begun (bytes of it were seen) */
	bool te_seen, te_bad;
	/* obs-fold detection (see is_folded in http.c) */
	const char *exec_start; /* the buffer being parsed */
	uint64_t exec_gen;      /* counts execute calls */
	const char *field_end;  /* just past the last header name piece ... */
	uint64_t field_gen;     /* ... in this execute call */
	char prev_last_byte;    /* last byte of the previous buffer */
	bool after_field;       /* a header name is complete, its value not begun */
	bool lf_after_field;    /* a line feed went by since */
	unsigned value_pieces;  /* pieces of the current value so far */
	unsigned n_te;
};

enum floe_http_status {
	FLOE_HTTP_OK = 0,     /* all bytes consumed */
	FLOE_HTTP_PAUSED = 1, /* stopped after a complete message; see *consumed */
	FLOE_HTTP_ERROR = -1, /* refused: error_status and error_reason say why */
};

/**
 * Caller memory. type is HTTP_REQUEST or HTTP_RESPONSE. Limits: head bytes
 * (request line + headers) and body bytes (UINT64_MAX for none).
 */
void floe_http_parser_init(struct floe_http_parser *p, llhttp_type_t type,
			   const struct floe_http_parser_cbs *cbs, void *ud, size_t max_head_bytes,
			   uint64_t max_body_bytes);
void floe_http_parser_destroy(struct floe_http_parser *p);

/** Feed bytes. *consumed is how many were parsed (all, unless PAUSED or ERROR). */
enum floe_http_status floe_http_parser_execute(struct floe_http_parser *p, const char *data,
					       size_t len, size_t *consumed);
/** The peer closed: completes a read-until-close body. Returns OK or ERROR (truncated message). */
enum floe_http_status floe_http_parser_finish(struct floe_http_parser *p);
/** Continue after FLOE_HTTP_PAUSED. */
void floe_http_parser_resume(struct floe_http_parser *p);
/** True while the parser is inside a message (bytes seen, not yet complete). */
bool floe_http_parser_mid_message(const struct floe_http_parser *p);
/** True when the response body runs until the connection closes. */
bool floe_http_parser_needs_eof(const struct floe_http_parser *p);

/** Standard reason phrase ("Not Found"), or "Unknown". */
const char *floe_http_reason(int status);

/**
 * Percent-decode s[0..n) (RFC 3986 2.1) into a new NUL-terminated string.
 * '+' stays a plus (query strings of floe's API are not form-encoded).
 * NULL for a bad escape, or one that decodes to a NUL byte.
 */
char *floe_http_pct_decode(const char *s, size_t n);

/**
 * Parameter name of a query string ("a=1&b=x%20y", without the '?'; NULL:
 * none), percent-decoded into *out (allocated). The first occurrence counts;
 * a bare "name" is present with the value "". Returns 1, 0 when absent
 * (*out NULL), or -1 when the value is not valid percent-encoding.
 */
int floe_http_query_param(const char *query, const char *name, char **out);

/** True for hop-by-hop headers (RFC 9110 7.6.1) a proxy must not forward. */
bool floe_http_is_hop_by_hop(const char *name);

/** Append header i of m as "Name: value\r\n" (no formatting pass: it is on every request). */
void floe_http_header_append(struct floe_buf *out, const struct floe_http_msg *m, size_t i);

/** True when a comma-separated token list (e.g. Connection) contains token, case-insensitively. */
bool floe_http_list_has_token(const char *list, const char *token);

/**
 * Append a complete JSON error response to out: status line, Content-Type,
 * Content-Length, optional extra header lines (each ending in CRLF, may be
 * NULL), Connection: close when !keep_alive, and
 * {"error":{"message":...,"type":...,"code":status}}.
 */
void floe_http_error_response(struct floe_buf *out, int status, const char *type,
			      const char *message, const char *extra_headers, bool keep_alive);

#endif
