#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "http.h"
#include "xalloc.h"

/* Bytes a header line costs beyond its name and value: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4

static struct floe_http_parser *parser_of(llhttp_t *l)
{
	return (struct floe_http_parser *)l->data;
}

static int refuse(struct floe_http_parser *p, int status, const char *reason)
{
	p->error_status = status;
	p->error_reason = reason;
	return HPE_USER;
}

/* on_headers_complete must return -1 to fail (HPE_USER means something else there). */
static int refuse_head(struct floe_http_parser *p, int status, const char *reason)
{
	refuse(p, status, reason);
	return -1;
}

static void msg_reset(struct floe_http_msg *m)
{
	floe_buf_reset(&m->raw);
	m->url_off = m->url_len = 0;
	m->reason_off = m->reason_len = 0;
	m->n_headers = 0;
	m->method = 0;
	m->status = 0;
	m->major = m->minor = 0;
	m->content_length = -1;
	m->chunked = false;
	m->keep_alive = false;
	m->expect_continue = false;
	m->connection_list_off = 0;
}

/* Account for head bytes; the limit covers the request line and all headers
 * because llhttp itself caps neither. */
static int count_head(struct floe_http_parser *p, size_t len)
{
	p->head_bytes += len;
	if (p->head_bytes > p->max_head_bytes)
		return refuse(p, 431, "header block too large");
	return 0;
}

/* Pieces of one item are contiguous in raw: an item is NUL-terminated (and
 * the next one begun) only in the *_complete callbacks. */
static void raw_piece(struct floe_http_msg *m, const char *at, size_t len)
{
	floe_buf_append(&m->raw, at, len);
}

static uint32_t item_start(struct floe_http_msg *m)
{
	/* Every item is followed by its NUL; a new item starts at raw.len. */
	return (uint32_t)m->raw.len;
}

static int on_message_begin(llhttp_t *l)
{
	struct floe_http_parser *p = parser_of(l);
	msg_reset(&p->msg);
	p->head_bytes = 0;
	p->body_bytes = 0;
	p->in_head = true;
	p->started = true;
	p->te_seen = p->te_bad = false;
	p->n_te = 0;
	/* Offsets are assigned as items begin; keep one NUL at offset 0 so that
	 * offset 0 always reads as the empty string for absent items. */
	floe_buf_append(&p->msg.raw, "", 1);
	p->msg.url_off = p->msg.reason_off = 0;
	return 0;
}

static int on_url(llhttp_t *l, const char *at, size_t len)
{
	struct floe_http_parser *p = parser_of(l);
	if (count_head(p, len))
		return HPE_USER;
	if (p->msg.url_len == 0 && p->msg.url_off == 0)
		p->msg.url_off = item_start(&p->msg);
	raw_piece(&p->msg, at, len);
	p->msg.url_len += (uint32_t)len;
	return 0;
}

static int on_url_complete(llhttp_t *l)
{
	floe_buf_append(&parser_of(l)->msg.raw, "", 1);
	return 0;
}

static int on_status(llhttp_t *l, const char *at, size_t len)
{
	struct floe_http_parser *p = parser_of(l);
	if (count_head(p, len))
		return HPE_USER;
	if (p->msg.reason_len == 0 && p->msg.reason_off == 0)
		p->msg.reason_off = item_start(&p->msg);
	raw_piece(&p->msg, at, len);
	p->msg.reason_len += (uint32_t)len;
	return 0;
}

static int on_status_complete(llhttp_t *l)
{
	floe_buf_append(&parser_of(l)->msg.raw, "", 1);
	return 0;
}

static struct floe_http_header *current_header(struct floe_http_msg *m)
{
	return m->n_headers ? &m->headers[m->n_headers - 1] : NULL;
}

static int on_header_field(llhttp_t *l, const char *at, size_t len)
{
	struct floe_http_parser *p = parser_of(l);
	struct floe_http_msg *m = &p->msg;
	if (count_head(p, len))
		return HPE_USER;
	struct floe_http_header *h = current_header(m);
	/* A field piece after a completed value starts a new header. */
	if (!h || h->value_off != 0) {
		if (count_head(p, HEADER_LINE_OVERHEAD))
			return HPE_USER;
		if (m->n_headers == m->cap_headers) {
			m->cap_headers = m->cap_headers ? m->cap_headers * 2 : 16;
			m->headers = xrealloc(m->headers, m->cap_headers * sizeof(*m->headers));
		}
		h = &m->headers[m->n_headers++];
		memset(h, 0, sizeof(*h));
		h->name_off = item_start(m);
	}
	raw_piece(m, at, len);
	h->name_len += (uint32_t)len;
	p->field_end = at + len;
	p->field_gen = p->exec_gen;
	return 0;
}

static int on_header_field_complete(llhttp_t *l)
{
	struct floe_http_parser *p = parser_of(l);
	struct floe_http_msg *m = &p->msg;
	floe_buf_append(&m->raw, "", 1);
	/* RFC 9112 5.1: no whitespace between name and colon (llhttp keeps it
	 * in the name), and a name is never empty. */
	const struct floe_http_header *cur = current_header(m);
	if (cur->name_len == 0 || strpbrk(m->raw.data + cur->name_off, " \t"))
		return refuse(p, 400, "invalid header name");
	p->after_field = true;
	p->lf_after_field = false;
	p->value_pieces = 0;
	/* The value may be empty (no on_header_value call): give it an offset now. */
	struct floe_http_header *h = current_header(m);
	h->value_off = item_start(m);
	return 0;
}

/*
 * llhttp 8 accepts obs-fold (RFC 9112 5.2) in strict mode: a line starting
 * with whitespace continues the previous value and is reported as one more
 * value piece, with the CRLF and the leading whitespace skipped. A proxy
 * must refuse it. Within one buffer a value is one contiguous piece, so:
 * a further piece of the same value is a fold unless it continues the
 * value exactly at the start of a new buffer (and the previous buffer did
 * not end in a line feed); and before the first piece, only the colon and
 * blanks may stand between the name and the value, never a line feed.
 * An empty value is a zero-length piece and is left alone.
 */
static bool is_folded(struct floe_http_parser *p, const char *at, size_t len)
{
	if (len == 0) {
		p->value_pieces++;
		p->after_field = false;
		return false;
	}
	bool folded;
	if (p->value_pieces > 0) {
		folded = at != p->exec_start || p->prev_last_byte == '\n';
	} else {
		const char *from = p->field_gen == p->exec_gen ? p->field_end : p->exec_start;
		folded = p->lf_after_field || memchr(from, '\n', (size_t)(at - from)) != NULL;
	}
	p->value_pieces++;
	p->after_field = false;
	return folded;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len)
{
	struct floe_http_parser *p = parser_of(l);
	if (count_head(p, len))
		return HPE_USER;
	if (is_folded(p, at, len))
		return refuse(p, 400, "obsolete header line folding");
	raw_piece(&p->msg, at, len);
	current_header(&p->msg)->value_len += (uint32_t)len;
	return 0;
}

/* Recognise a header name once, by length first: every consumer then
 * switches on the id instead of comparing strings again. */
static uint8_t classify(const char *name, size_t len)
{
#define IS(s) (len == sizeof(s) - 1 && strcasecmp(name, s) == 0)
	switch (len) {
	case 2: return IS("te") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	case 4: return IS("host") ? FLOE_HDR_HOST : FLOE_HDR_OTHER;
	case 6: return IS("expect") ? FLOE_HDR_EXPECT : FLOE_HDR_OTHER;
	case 7: return IS("upgrade") || IS("trailer") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	case 10:
		if (IS("connection"))
			return FLOE_HDR_CONNECTION;
		return IS("keep-alive") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	case 13: return IS("authorization") ? FLOE_HDR_AUTHORIZATION : FLOE_HDR_OTHER;
	case 14: return IS("content-length") ? FLOE_HDR_CONTENT_LENGTH : FLOE_HDR_OTHER;
	case 15: return IS("x-forwarded-for") ? FLOE_HDR_X_FORWARDED_FOR : FLOE_HDR_OTHER;
	case 16: return IS("proxy-connection") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	case 17:
		if (IS("transfer-encoding"))
			return FLOE_HDR_TRANSFER_ENCODING;
		return IS("x-forwarded-proto") ? FLOE_HDR_X_FORWARDED_PROTO : FLOE_HDR_OTHER;
	case 18: return IS("proxy-authenticate") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	case 19: return IS("proxy-authorization") ? FLOE_HDR_HOP_BY_HOP : FLOE_HDR_OTHER;
	default: return FLOE_HDR_OTHER;
	}
#undef IS
}

/* "keep-alive", "close" (or both): nothing beyond the usual to strip. */
static bool connection_is_plain(const char *value)
{
	return strcasecmp(value, "keep-alive") == 0 || strcasecmp(value, "close") == 0;
}

static int on_header_value_complete(llhttp_t *l)
{
	struct floe_http_parser *p = parser_of(l);
	struct floe_http_msg *m = &p->msg;
	p->after_field = false;
	/* The value is the tail of raw: drop trailing blanks (OWS is not part
	 * of a field value, RFC 9110 5.5; llhttp keeps it). */
	struct floe_http_header *cur = current_header(m);
	while (cur->value_len > 0 &&
	       (m->raw.data[m->raw.len - 1] == ' ' || m->raw.data[m->raw.len - 1] == '\t')) {
		m->raw.len--;
		cur->value_len--;
	}
	floe_buf_append(&m->raw, "", 1);
	const struct floe_http_header *h = cur;
	const char *name = m->raw.data + h->name_off;
	const char *value = m->raw.data + h->value_off;
	cur->id = classify(name, h->name_len);
	if (cur->id == FLOE_HDR_CONNECTION && !connection_is_plain(value))
		m->connection_list_off = h->value_off;
	if (cur->id == FLOE_HDR_TRANSFER_ENCODING) {
		/* Only "chunked" alone is accepted: other codings (gzip, identity,
		 * lists) are how smuggling payloads hide from one of two parsers. */
		p->n_te++;
		p->te_seen = true;
		if (strcasecmp(value, "chunked") != 0)
			p->te_bad = true;
	} else if (cur->id == FLOE_HDR_EXPECT) {
		if (strcasecmp(value, "100-continue") == 0)
			m->expect_continue = true;
		else if (l->type == HTTP_REQUEST)
			return refuse(p, 417, "unsupported expectation");
	}
	return 0;
}

static int on_headers_complete(llhttp_t *l)
{
	struct floe_http_parser *p = parser_of(l);
	struct floe_http_msg *m = &p->msg;
	p->in_head = false;
	m->major = llhttp_get_http_major(l);
	m->minor = llhttp_get_http_minor(l);
	m->method = llhttp_get_method(l);
	m->status = llhttp_get_status_code(l);
	m->chunked = (l->flags & F_CHUNKED) != 0;
	m->content_length = (l->flags & F_CONTENT_LENGTH) ? (int64_t)l->content_length : -1;
	m->keep_alive = llhttp_should_keep_alive(l);

	if (l->type == HTTP_REQUEST) {
		/* llhttp already refuses CL+TE, duplicate and invalid CL; these are
		 * the shapes it lets through in strict mode that a proxy must not. */
		if (p->te_seen && (p->te_bad || p->n_te > 1))
			return refuse_head(p, 400, "unsupported transfer coding");
		if (p->te_seen && m->content_length >= 0)
			return refuse_head(p, 400, "Content-Length with Transfer-Encoding");
		if (m->method == HTTP_CONNECT)
			return refuse_head(p, 405, "CONNECT not supported");
		if (llhttp_get_upgrade(l))
			return refuse_head(p, 501, "protocol upgrade not supported");
		if (m->major != 1)
			return refuse_head(p, 505, "HTTP version not supported");
		if (m->content_length > 0 && (uint64_t)m->content_length > p->max_body_bytes)
			return refuse_head(p, 413, "request body too large");
	}
	int rc = p->cbs->on_head ? p->cbs->on_head(p->ud, m) : 0;
	if (rc >= 400) {
		refuse(p, rc, "refused");
		return -1;
	}
	return rc == 1 ? 1 : 0;
}

static int on_body(llhttp_t *l, const char *at, size_t len)
{
	struct floe_http_parser *p = parser_of(l);
	p->body_bytes += len;
	if (p->body_bytes > p->max_body_bytes)
		return refuse(p, 413, "request body too large");
	if (p->cbs->on_body && p->cbs->on_body(p->ud, at, len) != 0)
		return refuse(p, 500, "body rejected");
	return 0;
}

static int on_message_complete(llhttp_t *l)
{
	struct floe_http_parser *p = parser_of(l);
	p->started = false;
	int rc = p->cbs->on_complete ? p->cbs->on_complete(p->ud) : 0;
	return rc == 1 ? HPE_PAUSED : 0;
}

void floe_http_parser_init(struct floe_http_parser *p, llhttp_type_t type,
			   const struct floe_http_parser_cbs *cbs, void *ud, size_t max_head_bytes,
			   uint64_t max_body_bytes)
{
	memset(p, 0, sizeof(*p));
	llhttp_settings_init(&p->settings);
	p->settings.on_message_begin = on_message_begin;
	p->settings.on_url = on_url;
	p->settings.on_url_complete = on_url_complete;
	p->settings.on_status = on_status;
	p->settings.on_status_complete = on_status_complete;
	p->settings.on_header_field = on_header_field;
	p->settings.on_header_field_complete = on_header_field_complete;
	p->settings.on_header_value = on_header_value;
	p->settings.on_header_value_complete = on_header_value_complete;
	p->settings.on_headers_complete = on_headers_complete;
	p->settings.on_body = on_body;
	p->settings.on_message_complete = on_message_complete;
	llhttp_init(&p->llhttp, type, &p->settings);
	p->llhttp.data = p;
	p->cbs = cbs;
	p->ud = ud;
	p->max_head_bytes = max_head_bytes;
	p->max_body_bytes = max_body_bytes;
	floe_buf_init(&p->msg.raw);
	msg_reset(&p->msg);
}

void floe_http_parser_destroy(struct floe_http_parser *p)
{
	floe_buf_destroy(&p->msg.raw);
	free(p->msg.headers);
	p->msg.headers = NULL;
	p->msg.cap_headers = p->msg.n_headers = 0;
}

enum floe_http_status floe_http_parser_execute(struct floe_http_parser *p, const char *data,
					       size_t len, size_t *consumed)
{
	p->exec_start = data;
	p->exec_gen++;
	llhttp_errno_t e = llhttp_execute(&p->llhttp, data, len);
	const char *pos = e == HPE_OK ? NULL : llhttp_get_error_pos(&p->llhttp);
	*consumed = pos ? (size_t)(pos - data) : len;
	if (*consumed > 0) {
		p->prev_last_byte = data[*consumed - 1];
		/* Still between a header name and its value: remember whether a
		 * line feed went by (a fold split across buffers). */
		if (p->after_field) {
			const char *from = p->field_gen == p->exec_gen ? p->field_end : data;
			if (memchr(from, '\n', (size_t)(data + *consumed - from)))
				p->lf_after_field = true;
		}
	}
	if (e == HPE_OK)
		return FLOE_HTTP_OK;
	if (e == HPE_PAUSED)
		return FLOE_HTTP_PAUSED;
	/* A refusal of ours (error_status set) surfaces as HPE_USER, or as
	 * HPE_CB_HEADERS_COMPLETE when it came from on_headers_complete. */
	if (p->error_status == 0) {
		p->error_status = 400;
		p->error_reason = llhttp_get_error_reason(&p->llhttp);
		if (!p->error_reason)
			p->error_reason = llhttp_errno_name(e);
	}
	return FLOE_HTTP_ERROR;
}

enum floe_http_status floe_http_parser_finish(struct floe_http_parser *p)
{
	/* Between messages a close is just a close (llhttp would call it
	 * truncated right after a pause, before its state settles). */
	if (!p->started)
		return FLOE_HTTP_OK;
	llhttp_errno_t e = llhttp_finish(&p->llhttp);
	if (e == HPE_OK || e == HPE_PAUSED)
		return FLOE_HTTP_OK;
	if (p->error_status == 0) {
		p->error_status = 400;
		p->error_reason = "connection closed mid-message";
	}
	return FLOE_HTTP_ERROR;
}

void floe_http_parser_resume(struct floe_http_parser *p)
{
	llhttp_resume(&p->llhttp);
}

bool floe_http_parser_mid_message(const struct floe_http_parser *p)
{
	return p->started;
}

bool floe_http_parser_needs_eof(const struct floe_http_parser *p)
{
	return llhttp_message_needs_eof(&p->llhttp) != 0;
}

const char *floe_http_msg_header(const struct floe_http_msg *m, const char *name)
{
	for (size_t i = 0; i < m->n_headers; i++)
		if (strcasecmp(floe_http_header_name(m, i), name) == 0)
			return floe_http_header_value(m, i);
	return NULL;
}

const char *floe_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

bool floe_http_is_hop_by_hop(const char *name)
{
	/* RFC 9110 7.6.1, plus Proxy-Connection (non-standard, still sent). */
	return floe_http_header_id_is_hop(classify(name, strlen(name)));
}

void floe_http_header_append(struct floe_buf *out, const struct floe_http_msg *m, size_t i)
{
	const struct floe_http_header *h = &m->headers[i];
	floe_buf_reserve(out, h->name_len + h->value_len + 4);
	floe_buf_append(out, m->raw.data + h->name_off, h->name_len);
	floe_buf_append(out, ": ", 2);
	floe_buf_append(out, m->raw.data + h->value_off, h->value_len);
	floe_buf_append(out, "\r\n", 2);
}

bool floe_http_list_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *start = s;
		while (*s && *s != ',')
			s++;
		const char *end = s;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
			return true;
	}
	return false;
}

void floe_http_error_response(struct floe_buf *out, int status, const char *type,
			      const char *message, const char *extra_headers, bool keep_alive)
{
	json_t *body = json_pack("{s:{s:s, s:s, s:i}}", "error", "message", message, "type", type,
				 "code", status);
	char *text = json_dumps(body, JSON_COMPACT);
	size_t len = strlen(text);
	floe_buf_printf(out,
			"HTTP/1.1 %d %s\r\n"
			"Content-Type: application/json\r\n"
			"Content-Length: %zu\r\n"
			"%s%s\r\n",
			status, floe_http_reason(status), len, extra_headers ? extra_headers : "",
			keep_alive ? "" : "Connection: close\r\n");
	floe_buf_append(out, text, len);
	free(text);
	json_decref(body);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' :
	       c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 :
				      -1;
}

char *floe_http_pct_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

int floe_http_query_param(const char *query, const char *name, char **out)
{
	*out = NULL;
	size_t nlen = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= nlen && memcmp(p, name, nlen) == 0 && (len == nlen || p[nlen] == '=')) {
			*out = len == nlen ? xstrdup("") :
					     floe_http_pct_decode(p + nlen + 1, len - nlen - 1);
			return *out ? 1 : -1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}
