/*
 * The endpoint routes of the control plane, in the shape of the Hugging
 * Face Inference Endpoints v2 API (issue 5):
 *
 *   GET  /api/whoami-v2                              {"type":"user","name":NS,"orgs":[]}
 *   GET  /v2/endpoint/{ns}                           {"items":[Endpoint...]}
 *   GET  /v2/endpoint/{ns}/{name}                    Endpoint
 *   POST /v2/endpoint/{ns}/{name}/pause              Endpoint (replicas drain; 503 until resumed)
 *   POST /v2/endpoint/{ns}/{name}/resume             Endpoint; 400 "already running" when not paused
 *   POST /v2/endpoint/{ns}/{name}/scale-to-zero      Endpoint
 *   GET  /v2/provider/{ns}                           this machine's compute
 *   GET  /v2/endpoint/{ns}/{name}/history            its state changes (registry.h)
 *   GET  /v2/endpoint/{ns}/{name}/replicas           live replicas (replicas.c)
 *   GET  /v2/endpoint/{ns}/{name}/logs               engine output, ?follow=1 streams (replicas.c)
 *
 *   POST   /v2/endpoint/{ns}                      create (Hugging Face's body) -> Endpoint
 *   PUT    /v2/endpoint/{ns}/{name}               RFC 7386 merge patch of its body -> Endpoint
 *   DELETE /v2/endpoint/{ns}/{name}               its replicas drain, it is forgotten
 *
 * Endpoints created here are kept in the registry (registry.h: saved before
 * they are served, served again after a restart, paused ones stay paused).
 * Endpoints of the config file are listed and can be paused, resumed and
 * scaled to zero, but changing or deleting one is the file's business
 * (409), and their pauses last until floed restarts.
 *
 * With tokens (control.h, Auth) a token reaches its own namespace only
 * (403); single-user, every namespace is the operator's.
 */
#define LOG_TAG "control"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "activator.h"
#include "control-internal.h"
#include "hf.h"
#include "host.h"
#include "log.h"
#include "meter.h"
#include "registry.h"
#include "xalloc.h"

#define JSON_TYPE "application/json"

/* The stored entry of an API endpoint, or NULL (a config file's). */
static const struct floe_state_entry *api_entry(struct floe_control *ctl,
						const struct floe_endpoint_config *cfg)
{
	return ctl->registry && cfg->ns ? floe_registry_entry(ctl->registry, cfg->ns, cfg->name) :
					  NULL;
}

/* The Endpoint JSON of a served endpoint, or NULL when it is not one. */
static json_t *endpoint_json(struct floe_control *ctl, const char *name)
{
	const struct floe_endpoint_config *cfg = floe_activator_endpoint_config(ctl->act, name);
	struct floe_endpoint_status es;
	if (!cfg || floe_activator_endpoint_status(ctl->act, name, &es) < 0)
		return NULL;
	const struct floe_state_entry *e = api_entry(ctl, cfg);
	json_t *body = e ? json_loads(e->spec_json, 0, NULL) : NULL;
	char *url = xasprintf("%s/endpoints/%s", ctl->data_url ? ctl->data_url : "", name);
	struct floe_hf_status st = {
		.state = floe_hf_state_name(es.state),
		.message = es.message,
		.url = url,
		.region = "local",
		.ready = es.ready,
		.target = es.target,
		.created_ms = e ? e->created_at_ms : ctl->started_ms,
		.updated_ms = e ? e->updated_at_ms : ctl->started_ms,
	};
	json_t *o = floe_hf_endpoint_json(body, cfg, &st);
	json_decref(body);
	free(url);
	return o;
}

static void respond_json(struct floe_conn *c, int status, json_t *v, bool head_only)
{
	char *text = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	floe__ctl_respond(c, status, JSON_TYPE, NULL, text, strlen(text), head_only);
	free(text);
}

/* The registry answered err: its code says which status. */
static void registry_error(struct floe_conn *c, const floe_error *err)
{
	switch (err->code) {
	case -EINVAL: floe_conn_error(c, 400, "bad_request", err->msg, NULL); return;
	case -EPERM: floe_conn_error(c, 400, "bad_request", err->msg, NULL); return;
	case -EEXIST: floe_conn_error(c, 409, "conflict", err->msg, NULL); return;
	case -ENOENT: floe_conn_error(c, 404, "not_found", err->msg, NULL); return;
	default: break;
	}
	log_error("endpoint API: %s", err->msg);
	floe_conn_error(c, 500, "internal_error", err->msg, NULL);
}

/* --- POST (create) and PUT (update): they need the body ------------------- */

struct ep_write {
	struct ctl_body b; /* first: the control plane sees a struct ctl_body */
	struct floe_control *ctl;
	bool update;
	char ns[64], name[64];
};

static void ep_write_free(struct ctl_body *b)
{
	floe_buf_destroy(&b->data);
	free(b);
}

static void ep_write_done(struct floe_conn *c, struct ctl_body *b)
{
	struct ep_write *w = (struct ep_write *)b;
	struct floe_control *ctl = w->ctl;
	json_error_t jerr;
	json_t *body = json_loadb(b->data.data ? b->data.data : "", b->data.len, 0, &jerr);
	floe_error err;
	floe_error_clear(&err);
	int rc;
	if (!json_is_object(body)) {
		floe_conn_error(c, 400, "bad_request", "the body is not a JSON object", NULL);
		goto out;
	}
	if (w->update) {
		rc = floe_registry_update(ctl->registry, w->ns, w->name, body, &err);
	} else {
		rc = floe_registry_create(ctl->registry, w->ns, body, *ctl->file_cfg, &err);
		const char *name = json_string_value(json_object_get(body, "name"));
		snprintf(w->name, sizeof(w->name), "%s", name ? name : "");
	}
	if (rc < 0) {
		registry_error(c, &err);
		goto out;
	}
	/* Served at once: no restart, no reload. */
	ctl->reapply(ctl->reapply_arg);
	json_t *o = endpoint_json(ctl, w->name);
	if (!o) {
		floe_conn_error(c, 500, "internal_error", "saved, but not served: see floed's log",
				NULL);
		goto out;
	}
	respond_json(c, 200, o, false);
out:
	json_decref(body);
	ep_write_free(b);
}

static void ep_write_start(struct floe_conn *c, struct floe_control *ctl, const char *ns,
			   const char *name)
{
	struct ep_write *w = xcalloc(1, sizeof(*w));
	w->ctl = ctl;
	w->update = name != NULL;
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->name, sizeof(w->name), "%s", name ? name : "");
	w->b.done = ep_write_done;
	w->b.free = ep_write_free;
	floe__ctl_body_start(c, &w->b);
}

/*
 * GET .../history: the endpoint's state changes, oldest first, as the
 * registry keeps them (saved for API endpoints, since this floed started
 * for the config file's): {"items":[{"at","state","message"}...]}.
 */
static json_t *history_json(struct floe_control *ctl, const char *ns, const char *name)
{
	json_t *items = json_array();
	const struct floe_state_entry *e =
		ctl->registry ? floe_registry_history(ctl->registry, ns, name) : NULL;
	for (size_t i = 0; e && i < e->n_history; i++) {
		const struct floe_state_event *ev = &e->history[i];
		char at[32];
		floe_hf_time_format(ev->t_ms, at);
		json_t *o = json_object();
		json_object_set_new(o, "at", json_string(at));
		json_object_set_new(o, "state", json_string(ev->state));
		json_object_set_new(o, "message", json_string(ev->message));
		json_array_append_new(items, o);
	}
	json_t *o = json_object();
	json_object_set_new(o, "items", items);
	return o;
}

/* --- GET /v2/provider/{ns}: what this machine can run ------------------- */

/* The price per hour of a running replica of instance type it, or null. */
static json_t *price_json(const struct floe_billing_config *b, const char *it)
{
	const struct floe_price *p = b ? floe_billing_price(b, it) : NULL;
	if (!p)
		return json_null();
	return json_real((double)p->per_hour_micro[FLOE_METER_RUNNING] / 1e6);
}

/* One of Hugging Face's compute items ("instanceType" x "instanceSize"). */
static json_t *compute_item(const char *accelerator, const char *itype, const char *arch,
			    uint32_t n_acc, const struct floe_host *h,
			    const struct floe_billing_config *b)
{
	char id[160], size[16];
	snprintf(size, sizeof(size), "x%u", n_acc ? n_acc : h->cpus);
	snprintf(id, sizeof(id), "local-%s-%s", itype, size);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "vendor", json_string("local"));
	json_object_set_new(o, "region", json_string("local"));
	json_object_set_new(o, "accelerator", json_string(accelerator));
	json_object_set_new(o, "instanceType", json_string(itype));
	json_object_set_new(o, "instanceSize", json_string(size));
	json_object_set_new(o, "architecture", json_string(arch));
	json_object_set_new(o, "numAccelerators", json_integer(n_acc));
	json_object_set_new(o, "numCpus", json_integer(h->cpus));
	json_object_set_new(o, "memoryGb", json_integer((json_int_t)(h->memory_bytes >> 30)));
	json_object_set_new(o, "pricePerHour", price_json(b, itype));
	json_object_set_new(o, "currency", json_string(b && b->currency ? b->currency : "USD"));
	json_object_set_new(o, "status", json_string("available"));
	return o;
}

/*
 * The machine as a provider: its CPUs, memory and each GPU model with its
 * count, plus Hugging Face's compute items (one for CPU replicas, one per
 * GPU model), priced from billing.prices. Read from /proc on each call
 * (small files): CPUs can be hot-plugged, the driver reloaded.
 */
static void provider_route(struct floe_conn *c, struct floe_control *ctl, bool head_only)
{
	const struct floe_billing_config *b = ctl->file_cfg ? &(*ctl->file_cfg)->billing : NULL;
	struct floe_host h;
	floe_host_probe(&h, "/proc");
	json_t *o = json_object();
	json_object_set_new(o, "vendor", json_string("local"));
	json_object_set_new(o, "region", json_string("local"));
	json_t *cpu = json_object();
	json_object_set_new(cpu, "model", h.cpu_model ? json_string(h.cpu_model) : json_null());
	json_object_set_new(cpu, "count", json_integer(h.cpus));
	json_object_set_new(cpu, "architecture", json_string(h.arch));
	json_object_set_new(o, "cpu", cpu);
	json_object_set_new(o, "memoryBytes", json_integer((json_int_t)h.memory_bytes));
	json_t *gpus = json_array(), *items = json_array();
	json_array_append_new(items, compute_item("cpu", "cpu", h.arch, 0, &h, b));
	for (size_t i = 0; i < h.n_gpus; i++) {
		json_t *g = json_object();
		json_object_set_new(g, "model", json_string(h.gpus[i].model));
		json_object_set_new(g, "instanceType", json_string(h.gpus[i].instance_type));
		json_object_set_new(g, "count", json_integer(h.gpus[i].count));
		json_array_append_new(gpus, g);
		json_array_append_new(items, compute_item("gpu", h.gpus[i].instance_type,
							  h.gpus[i].model, h.gpus[i].count, &h, b));
	}
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "items", items);
	floe_host_free(&h);
	respond_json(c, 200, o, head_only);
}

/* An endpoint name or namespace as a path segment: what config names allow. */
static bool segment_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0)))
			return false;
	}
	return true;
}

bool floe__endpoints_route(struct floe_conn *c, struct floe_http_msg *msg, const char *path,
			   size_t path_len, const char *token_ns)
{
	struct floe_control *ctl = c->server->data;
	bool get = msg->method == HTTP_GET || msg->method == HTTP_HEAD;
	bool head_only = msg->method == HTTP_HEAD;

	if (path_len == 14 && memcmp(path, "/api/whoami-v2", 14) == 0) {
		if (!get) {
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD\r\n");
			return true;
		}
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string("user"));
		json_object_set_new(o, "name", json_string(token_ns ? token_ns : "default"));
		json_object_set_new(o, "orgs", json_array());
		respond_json(c, 200, o, head_only);
		return true;
	}
	static const char provider[] = "/v2/provider/";
	size_t prlen = sizeof(provider) - 1;
	if (path_len > prlen && memcmp(path, provider, prlen) == 0) {
		const char *ns = path + prlen;
		size_t nslen = path_len - prlen;
		if (!segment_ok(ns, nslen)) {
			floe_conn_error(c, 404, "not_found", "no such provider route", NULL);
		} else if (token_ns &&
			   (strlen(token_ns) != nslen || memcmp(ns, token_ns, nslen) != 0)) {
			floe_conn_error(c, 403, "forbidden", "your token is for another namespace",
					NULL);
		} else if (!get) {
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD\r\n");
		} else {
			provider_route(c, ctl, head_only);
		}
		return true;
	}
	static const char prefix[] = "/v2/endpoint/";
	size_t plen = sizeof(prefix) - 1;
	if (path_len <= plen || memcmp(path, prefix, plen) != 0)
		return false;
	/* ns [/ name [/ action]] */
	const char *seg[3] = { NULL };
	size_t len[3] = { 0 };
	int n = 0;
	for (const char *p = path + plen, *end = path + path_len; p < end && n < 4;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t l = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (n == 3) {
			n++;
			break;
		}
		seg[n] = p;
		len[n++] = l;
		p = slash ? slash + 1 : end;
	}
	if (n > 3 || !segment_ok(seg[0], len[0]) || (n >= 2 && !segment_ok(seg[1], len[1]))) {
		floe_conn_error(c, 404, "not_found", "no such endpoint route", NULL);
		return true;
	}
	char ns[64], name[64];
	snprintf(ns, sizeof(ns), "%.*s", (int)len[0], seg[0]);
	if (token_ns && strcmp(ns, token_ns) != 0) {
		floe_conn_error(c, 403, "forbidden", "your token is for another namespace", NULL);
		return true;
	}
	if (n == 1) {
		if (msg->method == HTTP_POST) {
			if (!ctl->registry) {
				floe_conn_error(c, 501, "not_implemented",
						"this floed cannot create endpoints", NULL);
				return true;
			}
			ep_write_start(c, ctl, ns, NULL);
			return true;
		}
		if (!get) {
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD, POST\r\n");
			return true;
		}
		json_t *items = json_array();
		char **names = floe_activator_endpoints_of(ctl->act, ns);
		for (char **p = names; *p; p++) {
			json_t *e = endpoint_json(ctl, *p);
			if (e)
				json_array_append_new(items, e);
			free(*p);
		}
		free(names);
		json_t *o = json_object();
		json_object_set_new(o, "items", items);
		respond_json(c, 200, o, head_only);
		return true;
	}
	snprintf(name, sizeof(name), "%.*s", (int)len[1], seg[1]);
	const struct floe_endpoint_config *cfg = floe_activator_endpoint_config(ctl->act, name);
	if (!cfg || !cfg->ns || strcmp(cfg->ns, ns) != 0) {
		char m[200];
		snprintf(m, sizeof(m), "no endpoint '%s' in namespace '%s'", name, ns);
		floe_conn_error(c, 404, "not_found", m, NULL);
		return true;
	}
	const struct floe_state_entry *entry = api_entry(ctl, cfg);
	if (n == 2) {
		if ((msg->method == HTTP_PUT || msg->method == HTTP_DELETE) && !entry) {
			floe_conn_error(
				c, 409, "conflict",
				"this endpoint is defined in floed's config file: change or "
				"remove it there and reload floed (SIGHUP)",
				NULL);
			return true;
		}
		if (msg->method == HTTP_PUT) {
			ep_write_start(c, ctl, ns, name);
			return true;
		}
		if (msg->method == HTTP_DELETE) {
			floe_error err;
			floe_error_clear(&err);
			if (floe_registry_delete(ctl->registry, ns, name, &err) < 0) {
				registry_error(c, &err);
				return true;
			}
			ctl->reapply(ctl->reapply_arg); /* its replicas drain */
			floe__ctl_respond(c, 200, JSON_TYPE, NULL, "{}", 2, false);
			return true;
		}
		if (!get) {
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD, PUT, DELETE\r\n");
			return true;
		}
		respond_json(c, 200, endpoint_json(ctl, name), head_only);
		return true;
	}
	int rc;
	const char *action = seg[2];
	size_t alen = len[2];
	if (alen == 7 && memcmp(action, "history", 7) == 0) {
		if (!get)
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD\r\n");
		else
			respond_json(c, 200, history_json(ctl, ns, name), head_only);
		return true;
	}
	bool replicas = alen == 8 && memcmp(action, "replicas", 8) == 0;
	if (replicas || (alen == 4 && memcmp(action, "logs", 4) == 0)) {
		/* floe's own: read-only (replicas.c) */
		if (!get)
			floe__ctl_method_not_allowed(c, "Allow: GET, HEAD\r\n");
		else if (replicas)
			floe__replicas_route(c, msg, name);
		else
			floe__logs_route(c, msg, name);
		return true;
	}
	if (msg->method != HTTP_POST) {
		floe__ctl_method_not_allowed(c, "Allow: POST\r\n");
		return true;
	}
	bool pause = alen == 5 && memcmp(action, "pause", 5) == 0;
	bool resume = alen == 6 && memcmp(action, "resume", 6) == 0;
	if (resume) {
		struct floe_endpoint_status es;
		if (floe_activator_endpoint_status(ctl->act, name, &es) == 0 && !es.paused) {
			/* huggingface_hub looks for these words. */
			floe_conn_error(c, 400, "bad_request", "endpoint is already running", NULL);
			return true;
		}
	}
	if ((pause || resume) && entry) {
		/* Remembered first: a pause must outlive a restart. */
		floe_error err;
		floe_error_clear(&err);
		if (floe_registry_set_desired(ctl->registry, ns, name,
					      pause ? FLOE_STATE_PAUSED : FLOE_STATE_RUNNING,
					      &err) < 0) {
			registry_error(c, &err);
			return true;
		}
	}
	if (pause) {
		rc = floe_activator_pause(ctl->act, name);
	} else if (resume) {
		rc = floe_activator_resume(ctl->act, name);
		if (rc == -EALREADY)
			rc = 0;
	} else if (alen == 13 && memcmp(action, "scale-to-zero", 13) == 0) {
		rc = floe_activator_scale_to_zero(ctl->act, name);
	} else {
		floe_conn_error(c, 404, "not_found",
				"no such action (pause, resume, scale-to-zero)", NULL);
		return true;
	}
	if (rc < 0) {
		floe_conn_error(c, 404, "not_found", "no such endpoint", NULL);
		return true;
	}
	log_ep_info(name, "%.*s through the control plane", (int)alen, action);
	respond_json(c, 200, endpoint_json(ctl, name), false);
	return true;
}
