#define LOG_TAG "control"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "activator.h"
#include "auth.h"
#include "control-internal.h"
#include "control.h"
#include "log.h"
#include "store.h"
#include "xalloc.h"

#define JSON_TYPE "application/json"
#define SNAP_PREFIX "/v2/snapshots"
#define BILLING_PREFIX "/v2/billing/"
#define ALLOW_GET "Allow: GET, HEAD\r\n"
#define ALLOW_ONE "Allow: GET, HEAD, DELETE\r\n"

enum route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,
	ROUTE_METRICS,
	ROUTE_SNAP_CAPS, /* /v2/snapshots/capabilities */
	ROUTE_SNAP_LIST, /* /v2/snapshots */
	ROUTE_SNAP_ONE,  /* /v2/snapshots/ANYTHING-ELSE (a key, or a 404) */
	ROUTE_BILLING,   /* /v2/billing/... (billing.c) */
	ROUTE_ENDPOINTS, /* /v2/endpoint/..., /api/whoami-v2 (endpoints.c) */
};

/* --- responses ------------------------------------------------------------ */

void floe__ctl_respond(struct floe_conn *c, int status, const char *content_type,
		       const char *extra_headers, const char *body, size_t len, bool head_only)
{
	bool keep_alive = floe_conn_keep_alive(c);
	struct floe_buf head = FLOE_BUF_INIT;
	floe_buf_printf(
		&head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
		status, floe_http_reason(status), content_type, len,
		extra_headers ? extra_headers : "", keep_alive ? "" : "Connection: close\r\n");
	uv_buf_t b[2] = { uv_buf_init(head.data, (unsigned)head.len),
			  uv_buf_init((char *)body, head_only ? 0 : (unsigned)len) };
	floe_conn_writev(c, b, 2);
	floe_buf_destroy(&head);
	floe_conn_finish(c, keep_alive);
}

static void respond(struct floe_conn *c, int status, const char *content_type, const char *body,
		    size_t len, bool head_only)
{
	floe__ctl_respond(c, status, content_type, NULL, body, len, head_only);
}

/* RFC 9110 15.3.5: a 204 carries neither a body nor a Content-Length. */
static void respond_no_content(struct floe_conn *c)
{
	bool keep_alive = floe_conn_keep_alive(c);
	const char *head = keep_alive ? "HTTP/1.1 204 No Content\r\n\r\n" :
					"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
	floe_conn_write(c, head, strlen(head));
	floe_conn_finish(c, keep_alive);
}

/* Takes the reference to v. */
static void respond_json(struct floe_conn *c, int status, json_t *v, bool head_only)
{
	char *text = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	respond(c, status, JSON_TYPE, text, strlen(text), head_only);
	free(text);
}

/* A JSON string, or null for a missing value (or one that is not UTF-8,
 * which jansson refuses). */
static json_t *json_str_or_null(const char *s)
{
	json_t *v = s && s[0] ? json_string(s) : NULL;
	return v ? v : json_null();
}

/* --- routing -------------------------------------------------------------- */

/*
 * Split the request target into a route, the rest of the path after
 * /v2/snapshots/ (*rest, *rest_len) and the query (*query, NULL if none).
 * Nothing is decoded: a key is 64 plain hex digits, so anything else
 * (dot segments, %2e, a slash) is simply no key, and never reaches the
 * file system.
 */
static enum route route_of(const char *url, const char **rest, size_t *rest_len, const char **query)
{
	const char *q = strchr(url, '?');
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	*query = q ? q + 1 : NULL;
	*rest = NULL;
	*rest_len = 0;
	if (plen == 8 && memcmp(url, "/healthz", 8) == 0)
		return ROUTE_HEALTHZ;
	if (plen == 8 && memcmp(url, "/metrics", 8) == 0)
		return ROUTE_METRICS;
	if ((plen == 14 && memcmp(url, "/api/whoami-v2", 14) == 0) ||
	    (plen > 13 && memcmp(url, "/v2/endpoint/", 13) == 0) ||
	    (plen > 13 && memcmp(url, "/v2/provider/", 13) == 0)) {
		*rest = url;
		*rest_len = plen;
		return ROUTE_ENDPOINTS;
	}
	size_t bpre = strlen(BILLING_PREFIX);
	if (plen > bpre && memcmp(url, BILLING_PREFIX, bpre) == 0) {
		*rest = url + bpre;
		*rest_len = plen - bpre;
		return ROUTE_BILLING;
	}
	size_t pre = strlen(SNAP_PREFIX);
	if (plen < pre || memcmp(url, SNAP_PREFIX, pre) != 0)
		return ROUTE_NONE;
	if (plen == pre)
		return ROUTE_SNAP_LIST;
	if (url[pre] != '/')
		return ROUTE_NONE;
	*rest = url + pre + 1;
	*rest_len = plen - pre - 1;
	if (*rest_len == 12 && memcmp(*rest, "capabilities", 12) == 0)
		return ROUTE_SNAP_CAPS;
	return ROUTE_SNAP_ONE;
}

/* --- snapshot routes: capabilities (memory only, on the loop) -------------- */

static void snap_capabilities(struct floe_conn *c, struct floe_activator *act, bool head_only)
{
	const struct floe_criu_caps *caps = floe_activator_criu(act);
	json_t *o = json_object();
	json_object_set_new(o, "snapshots", json_boolean(caps->snapshots));
	/* What was found, even when it is not usable (too old): the reason says so. */
	json_object_set_new(o, "criu_version", json_str_or_null(caps->version));
	json_object_set_new(o, "criu_path", json_str_or_null(caps->path));
	json_object_set_new(o, "reason",
			    caps->snapshots ?
				    json_null() :
				    json_str_or_null(caps->why[0] ? caps->why : "unknown"));
	json_object_set_new(o, "lazy_pages", json_boolean(caps->snapshots && caps->lazy_pages));
	json_object_set_new(o, "gpu_checkpoint", json_boolean(caps->snapshots && caps->gpu));
	const char *gpu_why = caps->gpu_why[0] ? caps->gpu_why : "snapshots unavailable";
	json_object_set_new(o, "gpu_reason",
			    caps->snapshots && caps->gpu ? json_null() : json_str_or_null(gpu_why));
	/* A warm pool is replicas restored from a snapshot, then frozen. */
	json_object_set_new(o, "warm_pool",
			    json_boolean(caps->snapshots && floe_activator_freezer(act)));
	respond_json(c, 200, o, head_only);
}

/* --- snapshot routes: store access (file I/O, on the thread pool) ---------- */

enum snap_op {
	OP_LIST,
	OP_GET,
	OP_DELETE
};

struct snap_job {
	struct ctl_job job; /* first: the pool's callbacks see a struct ctl_job */
	enum snap_op op;
	char *data_dir;
	char *endpoint; /* OP_LIST filter, or NULL */
	char **allowed; /* the token's namespace's endpoints (NULL: single-user, all) */
	char key[FLOE_SNAPSHOT_KEY_LEN + 1];
	/* results (written on the pool, read in snap_done) */
	int status;
	const char *err_type;
	floe_error err;
	char *body; /* JSON text for a 200 */
};

static json_t *meta_json(const struct floe_snapshot_meta *m)
{
	char created[32] = "";
	time_t secs = (time_t)(m->created_at_ms / 1000);
	struct tm tm;
	if (gmtime_r(&secs, &tm))
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *o = json_object();
	json_object_set_new(o, "key", json_str_or_null(m->key));
	json_object_set_new(o, "endpoint", json_str_or_null(m->endpoint));
	json_object_set_new(o, "source_replica", json_str_or_null(m->source_replica));
	json_object_set_new(o, "created_at", json_str_or_null(created));
	json_object_set_new(o, "image_bytes", json_integer((json_int_t)m->image_bytes));
	json_object_set_new(o, "pages_bytes", json_integer((json_int_t)m->pages_bytes));
	json_object_set_new(o, "dump_ms", json_integer((json_int_t)m->dump_ms));
	json_object_set_new(o, "criu_version", json_str_or_null(m->criu_version));
	json_object_set_new(o, "kernel", json_str_or_null(m->kernel));
	json_object_set_new(o, "restores", json_integer(m->restores));
	json_object_set_new(o, "restore_failures", json_integer(m->restore_failures));
	/* 0 would read as "restored in no time": null until there was one. */
	json_object_set_new(o, "last_restore_ms",
			    m->restores ? json_integer((json_int_t)m->last_restore_ms) :
					  json_null());
	return o;
}

static int meta_cmp(const void *a, const void *b)
{
	const struct floe_snapshot_meta *x = a, *y = b;
	int d = strcmp(x->endpoint, y->endpoint);
	if (d)
		return d;
	if (x->created_at_ms != y->created_at_ms)
		return x->created_at_ms < y->created_at_ms ? -1 : 1;
	return strcmp(x->key, y->key);
}

static void job_fail(struct snap_job *j, int status, const char *type)
{
	j->status = status;
	j->err_type = type;
}

/* Whether the caller may see snapshots of endpoint (a token sees those of
 * its namespace's endpoints). */
static bool snap_allowed(const struct snap_job *j, const char *endpoint)
{
	if (!j->allowed)
		return true;
	for (char **a = j->allowed; *a; a++)
		if (endpoint && strcmp(*a, endpoint) == 0)
			return true;
	return false;
}

/* For GET and DELETE with a token: the snapshot must be of one of its
 * endpoints. False after setting the error. */
static bool snap_owned(struct snap_job *j)
{
	if (!j->allowed)
		return true;
	struct floe_snapshot_meta m;
	memset(&m, 0, sizeof(m));
	int rc = floe_snapstore_load(j->data_dir, j->key, &m, &j->err);
	if (rc == -ENOENT) {
		floe_error_set(&j->err, rc, "no snapshot %s", j->key);
		job_fail(j, 404, "not_found");
		return false;
	}
	bool ok = rc == 0 && snap_allowed(j, m.endpoint);
	if (rc == 0)
		floe_snapshot_meta_free(&m);
	if (!ok) {
		/* A damaged one has no owner to read: the operator's to remove. */
		floe_error_set(&j->err, -EPERM,
			       "snapshot %s is not of an endpoint of your namespace", j->key);
		job_fail(j, 403, "forbidden");
	}
	return ok;
}

static void snap_list(struct snap_job *j)
{
	struct floe_snapshot_meta *metas;
	size_t n;
	int rc = floe_snapstore_list(j->data_dir, &metas, &n);
	if (rc < 0) {
		floe_error_set(&j->err, rc, "cannot read %s/snapshots: %s", j->data_dir,
			       strerror(-rc));
		job_fail(j, 500, "internal_error");
		return;
	}
	if (n)
		qsort(metas, n, sizeof(*metas), meta_cmp);
	json_t *items = json_array();
	for (size_t i = 0; i < n; i++) {
		if ((!j->endpoint || strcmp(metas[i].endpoint, j->endpoint) == 0) &&
		    snap_allowed(j, metas[i].endpoint))
			json_array_append_new(items, meta_json(&metas[i]));
		floe_snapshot_meta_free(&metas[i]);
	}
	free(metas);
	json_t *o = json_object();
	json_object_set_new(o, "items", items);
	j->body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	j->status = 200;
}

static void snap_get(struct snap_job *j)
{
	if (!snap_owned(j))
		return;
	struct floe_snapshot_meta m;
	memset(&m, 0, sizeof(m));
	int rc = floe_snapstore_load(j->data_dir, j->key, &m, &j->err);
	if (rc == -ENOENT) {
		floe_error_set(&j->err, rc, "no snapshot %s", j->key);
		job_fail(j, 404, "not_found");
		return;
	}
	if (rc < 0) {
		/* There, but damaged: the operator can still DELETE it. */
		floe_error_wrap(&j->err, "snapshot %s is damaged", j->key);
		job_fail(j, 500, "internal_error");
		return;
	}
	json_t *o = meta_json(&m);
	floe_snapshot_meta_free(&m);
	j->body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	j->status = 200;
}

static void snap_delete(struct snap_job *j)
{
	if (!snap_owned(j))
		return;
	int rc = floe_snapstore_remove(j->data_dir, j->key, &j->err);
	if (rc == -ENOENT) {
		floe_error_set(&j->err, rc, "no snapshot %s", j->key);
		job_fail(j, 404, "not_found");
		return;
	}
	if (rc < 0) {
		floe_error_wrap(&j->err, "delete of snapshot %s failed", j->key);
		job_fail(j, 500, "internal_error");
		return;
	}
	j->status = 204;
}

static void snap_work(struct ctl_job *job)
{
	struct snap_job *j = (struct snap_job *)job;
	switch (j->op) {
	case OP_LIST: snap_list(j); break;
	case OP_GET: snap_get(j); break;
	case OP_DELETE: snap_delete(j); break;
	}
}

static void snap_job_free(struct snap_job *j)
{
	for (char **a = j->allowed; a && *a; a++)
		free(*a);
	free(j->allowed);
	free(j->data_dir);
	free(j->endpoint);
	free(j->body);
	free(j);
}

static void snap_done(struct ctl_job *job, int status)
{
	struct snap_job *j = (struct snap_job *)job;
	if (status < 0) {
		floe_error_set(&j->err, status, "snapshot request not run: %s",
			       uv_strerror(status));
		job_fail(j, 503, "shutting_down");
	}
	if (j->op == OP_DELETE && j->status == 204) {
		log_info("snapshot %.12s deleted through the control plane", j->key);
		/* Before the answer, so that once a client sees 204 no cold start
		 * tries to restore from the files that are gone. */
		floe_activator_snapshot_removed(j->job.ctl->act, j->key);
	} else if (j->status >= 500) {
		log_warn("%s", j->err.msg);
	}
	struct floe_conn *c = j->job.conn;
	if (c) {
		if (j->status >= 400)
			floe_conn_error(c, j->status, j->err_type, j->err.msg, NULL);
		else if (j->status == 204)
			respond_no_content(c);
		else
			respond(c, j->status, JSON_TYPE, j->body, strlen(j->body),
				j->job.head_only);
	}
	snap_job_free(j);
}

static void snap_queue(struct floe_conn *c, struct snap_job *j, const char *ns)
{
	struct floe_control *ctl = c->server->data;
	if (ns)
		j->allowed = floe_activator_endpoints_of(ctl->act, ns);
	j->data_dir = xstrdup(floe_activator_data_dir(ctl->act));
	floe_error_clear(&j->err);
	j->job.run = snap_work;
	j->job.finish = snap_done;
	floe__ctl_job_queue(c, &j->job);
}

/* --- thread-pool jobs ----------------------------------------------------- */

static void job_work(uv_work_t *w)
{
	struct ctl_job *j = container_of(w, struct ctl_job, work);
	j->run(j);
}

static void job_done(uv_work_t *w, int status)
{
	struct ctl_job *j = container_of(w, struct ctl_job, work);
	if (j->conn)
		j->conn->exchange = NULL;
	j->finish(j, status);
}

void floe__ctl_job_queue(struct floe_conn *c, struct ctl_job *j)
{
	j->kind = CTL_JOB;
	j->ctl = c->server->data;
	j->conn = c;
	int rc = uv_queue_work(c->server->loop, &j->work, job_work, job_done);
	if (rc < 0) {
		/* finish answers the client and frees: tell it why nothing ran */
		j->finish(j, rc);
		return;
	}
	c->exchange = j;
}

/* --- handler -------------------------------------------------------------- */

bool floe__ctl_authorize(struct floe_conn *c, struct floe_http_msg *msg, const char **ns)
{
	struct floe_control *ctl = c->server->data;
	*ns = NULL;
	if (floe_auth_single_user(ctl->auth))
		return true;
	switch (floe_auth_check(ctl->auth, floe_http_msg_header(msg, "authorization"), ns)) {
	case FLOE_AUTH_OK: return true;
	case FLOE_AUTH_NO_TOKEN:
		/* RFC 6750 section 3: no error code when no credentials came. */
		floe_conn_error(c, 401, "unauthorized",
				"this route needs a token: Authorization: Bearer TOKEN",
				"WWW-Authenticate: Bearer realm=\"floe\"\r\n");
		return false;
	case FLOE_AUTH_BAD_TOKEN: break;
	}
	floe_conn_error(c, 401, "unauthorized", "the token is not valid",
			"WWW-Authenticate: Bearer realm=\"floe\", error=\"invalid_token\"\r\n");
	return false;
}

void floe__ctl_method_not_allowed(struct floe_conn *c, const char *allow)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "method not allowed here; allowed: %.*s",
		 (int)(strlen(allow) - strlen("Allow: \r\n")), allow + strlen("Allow: "));
	floe_conn_error(c, 405, "method_not_allowed", msg, allow);
}

static void control_on_head(struct floe_conn *c, struct floe_http_msg *msg)
{
	struct floe_control *ctl = c->server->data;
	bool get = msg->method == HTTP_GET || msg->method == HTTP_HEAD;
	bool head_only = msg->method == HTTP_HEAD;
	const char *rest, *query;
	size_t rest_len;
	enum route route = route_of(floe_http_msg_url(msg), &rest, &rest_len, &query);
	if (route >= ROUTE_SNAP_CAPS && route <= ROUTE_SNAP_ONE && !ctl->act)
		route = ROUTE_NONE;
	if ((route == ROUTE_BILLING && !ctl->usage) || (route == ROUTE_ENDPOINTS && !ctl->act))
		route = ROUTE_NONE;
	/* Everything under /v2 is someone's: who asks decides what they see. */
	const char *ns = NULL;
	if (route >= ROUTE_SNAP_CAPS && !floe__ctl_authorize(c, msg, &ns))
		return;
	/* Each route answers at once or from the thread pool; a request body
	 * (none is expected) is not read: floe_conn_finish then closes the
	 * connection instead of keeping it out of step. */
	switch (route) {
	case ROUTE_NONE: break;
	case ROUTE_BILLING:
		if (floe__billing_route(c, msg, rest, rest_len, query, ns))
			return;
		break;
	case ROUTE_ENDPOINTS:
		if (floe__endpoints_route(c, msg, rest, rest_len, ns))
			return;
		break;
	case ROUTE_HEALTHZ:
		if (!get) {
			floe__ctl_method_not_allowed(c, ALLOW_GET);
			return;
		}
		respond(c, 200, JSON_TYPE, "{\"status\":\"ok\"}", 15, head_only);
		return;
	case ROUTE_METRICS: {
		if (!get) {
			floe__ctl_method_not_allowed(c, ALLOW_GET);
			return;
		}
		struct floe_buf out = FLOE_BUF_INIT;
		floe_metrics_render(ctl->metrics, &out);
		respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
			out.data ? out.data : "", out.len, head_only);
		floe_buf_destroy(&out);
		return;
	}
	case ROUTE_SNAP_CAPS:
		if (!get) {
			floe__ctl_method_not_allowed(c, ALLOW_GET);
			return;
		}
		snap_capabilities(c, ctl->act, head_only);
		return;
	case ROUTE_SNAP_LIST: {
		if (!get) {
			floe__ctl_method_not_allowed(c, ALLOW_GET);
			return;
		}
		char *endpoint = NULL;
		if (floe_http_query_param(query, "endpoint", &endpoint) < 0) {
			floe_conn_error(c, 400, "bad_request",
					"the endpoint parameter is not valid percent-encoding",
					NULL);
			return;
		}
		struct snap_job *j = xcalloc(1, sizeof(*j));
		j->op = OP_LIST;
		j->job.head_only = head_only;
		j->endpoint = endpoint;
		snap_queue(c, j, ns);
		return;
	}
	case ROUTE_SNAP_ONE: {
		if (!get && msg->method != HTTP_DELETE) {
			floe__ctl_method_not_allowed(c, ALLOW_ONE);
			return;
		}
		if (!floe_snapshot_key_valid(rest, rest_len)) {
			floe_conn_error(c, 404, "not_found",
					"no such snapshot (a key is 64 lowercase hex digits)",
					NULL);
			return;
		}
		struct snap_job *j = xcalloc(1, sizeof(*j));
		j->op = get ? OP_GET : OP_DELETE;
		j->job.head_only = head_only;
		memcpy(j->key, rest, FLOE_SNAPSHOT_KEY_LEN);
		snap_queue(c, j, ns);
		return;
	}
	}
	floe_conn_error(c, 404, "not_found", "no such route on the control plane", NULL);
}

/* The client went away (or floed is closing it) while a request was on the
 * thread pool: the job finishes there and answers no one (a uv_work_t cannot
 * be taken back once it runs). */
static void control_on_abort(struct floe_conn *c)
{
	enum ctl_kind *kind = c->exchange;
	if (!kind)
		return;
	if (*kind == CTL_JOB) {
		((struct ctl_job *)kind)->conn = NULL;
	} else if (*kind == CTL_STREAM) {
		c->exchange = NULL;
		((struct ctl_stream *)kind)->on_gone((struct ctl_stream *)kind);
	} else {
		struct ctl_body *b = (struct ctl_body *)kind;
		c->exchange = NULL;
		b->free(b);
	}
}

void floe__ctl_stream_start(struct floe_conn *c, struct ctl_stream *s)
{
	s->kind = CTL_STREAM;
	c->exchange = s;
}

/* A streamed response's client drained what was queued. */
static void control_on_writable(struct floe_conn *c)
{
	enum ctl_kind *kind = c->exchange;
	if (kind && *kind == CTL_STREAM)
		((struct ctl_stream *)kind)->on_writable(c, (struct ctl_stream *)kind);
}

void floe__ctl_body_start(struct floe_conn *c, struct ctl_body *b)
{
	b->kind = CTL_BODY;
	floe_buf_init(&b->data);
	b->too_big = false;
	c->exchange = b;
}

static void control_on_body(struct floe_conn *c, const char *data, size_t len)
{
	enum ctl_kind *kind = c->exchange;
	if (!kind || *kind != CTL_BODY)
		return; /* a body nobody asked for: ignored */
	struct ctl_body *b = (struct ctl_body *)kind;
	if (b->too_big || b->data.len + len > FLOE_CTL_BODY_MAX)
		b->too_big = true;
	else
		floe_buf_append(&b->data, data, len);
}

static void control_on_body_end(struct floe_conn *c)
{
	enum ctl_kind *kind = c->exchange;
	if (!kind || *kind != CTL_BODY)
		return;
	struct ctl_body *b = (struct ctl_body *)kind;
	c->exchange = NULL;
	if (b->too_big) {
		floe_conn_error(c, 413, "payload_too_large", "the body is over 1 MiB", NULL);
		b->free(b);
		return;
	}
	b->done(c, b);
}

const struct floe_server_handler floe_control_handler = {
	.on_head = control_on_head,
	.on_body = control_on_body,
	.on_body_end = control_on_body_end,
	.on_writable = control_on_writable,
	.on_abort = control_on_abort,
};
