#define LOG_TAG "activator"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "auth.h"
#include "clock.h"
#include "log.h"
#include "runtime-internal.h"
#include "scale.h"
#include "xalloc.h"

#define PREFIX "/endpoints/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
/* Requests routed by the body's "model" are buffered whole to read it. */
#define ROUTE_BODY_MAX (8u * 1024 * 1024)
/* Held bodies are buffered up to this, then the client is paused. */
#define HOLD_BODY_MAX (1024u * 1024)
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000
/* Consecutive failed starts after which held requests are answered 503
 * instead of waiting out their whole hold for an engine that cannot start. */
#define MAX_START_FAILURES 3

static void endpoint_evaluate(struct endpoint *ep);
static void endpoint_status_note(struct endpoint *ep);
static void endpoint_release(struct endpoint *ep);
static void endpoint_maybe_free(struct endpoint *ep);
static void req_free(struct floe_req *req);

const char *floe__cold_kind_name(enum cold_kind k)
{
	switch (k) {
	case COLD_RESTORE: return "restore";
	case COLD_WARM_POOL: return "warm_pool";
	default: return "fresh";
	}
}

static const char *const replica_state_names[] = { "starting", "ready", "draining", "warm_pool" };

/* --- metrics -------------------------------------------------------------- */

static void metrics_register(struct floe_activator *a)
{
	static const char *const l_ep_code[] = { "endpoint", "code", NULL };
	static const char *const l_ep[] = { "endpoint", NULL };
	static const char *const l_ep_kind[] = { "endpoint", "kind", NULL };
	static const char *const l_ep_state[] = { "endpoint", "state", NULL };
	a->m.requests = floe_metrics_family(a->metrics, FLOE_COUNTER, "floe_requests_total",
					    "Requests answered, by endpoint and HTTP status.",
					    l_ep_code, NULL, 0);
	a->m.request_duration = floe_metrics_family(
		a->metrics, FLOE_HISTOGRAM, "floe_request_duration_seconds",
		"Time from request head to the end of the response, hold included.", l_ep,
		floe_metrics_latency_buckets, floe_metrics_latency_buckets_len);
	a->m.cold_starts = floe_metrics_family(
		a->metrics, FLOE_COUNTER, "floe_cold_starts_total",
		"Replicas that came up, by kind (fresh, restore, warm_pool).", l_ep_kind, NULL, 0);
	a->m.cold_start_duration = floe_metrics_family(
		a->metrics, FLOE_HISTOGRAM, "floe_cold_start_duration_seconds",
		"Time from starting a replica to its first successful readiness check.", l_ep_kind,
		floe_metrics_latency_buckets, floe_metrics_latency_buckets_len);
	a->m.replicas = floe_metrics_family(a->metrics, FLOE_GAUGE, "floe_replicas",
					    "Replicas by state.", l_ep_state, NULL, 0);
	a->m.queue_depth =
		floe_metrics_family(a->metrics, FLOE_GAUGE, "floe_queue_depth",
				    "Requests held waiting for a replica.", l_ep, NULL, 0);
	/* The Prometheus "info" pattern: the namespace and type join other
	 * series through group_left, instead of a label on every series. */
	static const char *const l_info[] = { "endpoint", "namespace", "type", NULL };
	a->m.endpoint_info = floe_metrics_family(
		a->metrics, FLOE_GAUGE, "floe_endpoint_info",
		"Served endpoints, always 1: their namespace and type (public, authenticated, "
		"private).",
		l_info, NULL, 0);
	a->m.desired = floe_metrics_family(
		a->metrics, FLOE_GAUGE, "floe_autoscaler_desired_replicas",
		"Replicas (ready or starting) the scaling policy last decided the endpoint should "
		"have; 0 while paused.",
		l_ep, NULL, 0);
	a->m.actual = floe_metrics_family(a->metrics, FLOE_GAUGE, "floe_autoscaler_actual_replicas",
					  "Replicas ready or starting.", l_ep, NULL, 0);
}

static const char *const access_names[] = { "public", "authenticated", "private" };

static void endpoint_info_add(struct endpoint *ep)
{
	const struct floe_endpoint_config *c = ep->cfg;
	const char *lv[] = { c->name, c->ns ? c->ns : "default",
			     (unsigned)c->access < 3 ? access_names[c->access] : "public" };
	floe_metric_set(floe_metric_get(ep->act->m.endpoint_info, lv), 1);
}

/* Another endpoint of ep's name in the list (only a serving one: serving):
 * a removed endpoint still draining while a new one of the name serves.
 * They share the series of the name (and the cached pointers to them),
 * whose values are the serving one's. */
static bool endpoint_name_shared(const struct endpoint *ep, bool serving)
{
	const struct floe_list *pos;
	floe_list_for_each(pos, &ep->act->endpoints) {
		const struct endpoint *o = container_of(pos, struct endpoint, link);
		if (o != ep && (!serving || !o->removed) &&
		    strcmp(o->cfg->name, ep->cfg->name) == 0)
			return true;
	}
	return false;
}

/* The endpoint is gone for its users (deleted, or out of the config): its
 * info and autoscaler series go now, while its draining replicas stay
 * counted in floe_replicas until it is freed. */
static void endpoint_metrics_forget(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	if (!ep->m_desired)
		return; /* already */
	floe_metric_remove_matching(a->m.endpoint_info, "endpoint", ep->cfg->name);
	floe_metric_remove_matching(a->m.desired, "endpoint", ep->cfg->name);
	floe_metric_remove_matching(a->m.actual, "endpoint", ep->cfg->name);
	ep->m_desired = ep->m_actual = NULL;
}

static void endpoint_metrics_update(struct endpoint *ep)
{
	if (ep->removed && endpoint_name_shared(ep, true))
		return;
	if (ep->m_actual)
		floe_metric_set(ep->m_actual, ep->n_ready + ep->n_starting);
	floe_metric_set(ep->m_queue_depth, ep->n_held);
	floe_metric_set(ep->m_replicas[0], ep->n_starting);
	floe_metric_set(ep->m_replicas[1], ep->n_ready);
	floe_metric_set(ep->m_replicas[2], ep->n_draining);
	floe_metric_set(ep->m_replicas[3], ep->n_warm);
	endpoint_status_note(ep);
}

/* --- status (the endpoint API's state, and its history) -------------------- */

/* ep's state in Hugging Face's words: the one place it is derived. */
static enum floe_endpoint_state endpoint_state(const struct endpoint *ep)
{
	if (ep->paused)
		return FLOE_EP_PAUSED;
	if (ep->update_failed && ep->n_ready == 0)
		return FLOE_EP_UPDATE_FAILED;
	if (ep->updating)
		return FLOE_EP_UPDATING;
	if (ep->n_ready > 0)
		return FLOE_EP_RUNNING;
	if (ep->failures >= MAX_START_FAILURES)
		return FLOE_EP_FAILED;
	if (ep->n_starting > 0)
		return FLOE_EP_INITIALIZING;
	return FLOE_EP_SCALED_TO_ZERO;
}

static void endpoint_status(const struct endpoint *ep, struct floe_endpoint_status *st)
{
	memset(st, 0, sizeof(*st));
	st->ready = ep->n_ready;
	st->starting = ep->n_starting;
	st->warm = ep->n_warm;
	st->held = ep->n_held;
	st->paused = ep->paused;
	uint32_t min = ep->zeroed ? 0 : ep->cfg->scaling.min_replica;
	uint32_t live = ep->n_ready + ep->n_starting;
	st->target = ep->paused ? 0 : (live > min ? live : min);
	st->state = endpoint_state(ep);
	char *m = st->message;
	size_t n = sizeof(st->message);
	switch (st->state) {
	case FLOE_EP_PAUSED: snprintf(m, n, "paused"); break;
	case FLOE_EP_UPDATE_FAILED:
		snprintf(m, n,
			 "replicas of the new definition failed %u time(s) in a row; see the "
			 "replica logs",
			 ep->failures);
		break;
	case FLOE_EP_UPDATING:
		snprintf(m, n, "new definition: %u replica(s) starting to replace the old ones",
			 ep->n_starting);
		break;
	case FLOE_EP_RUNNING: snprintf(m, n, "%u replica(s) ready", ep->n_ready); break;
	case FLOE_EP_FAILED:
		snprintf(m, n, "%u replica starts failed in a row; see the replica logs",
			 ep->failures);
		break;
	case FLOE_EP_INITIALIZING: snprintf(m, n, "%u replica(s) starting", ep->n_starting); break;
	case FLOE_EP_SCALED_TO_ZERO:
		snprintf(m, n, "no replica; the next request starts one");
		break;
	}
}

/* Tell on_status when ep's state changed (for its status history). */
static void endpoint_status_note(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	if (ep->removed || !a->on_status)
		return;
	/* Called on every change of the replica counters: the state alone
	 * first, the whole status (its message) only when it changed. */
	enum floe_endpoint_state state = endpoint_state(ep);
	if ((int)state == ep->last_state)
		return;
	ep->last_state = (int)state;
	struct floe_endpoint_status st;
	endpoint_status(ep, &st);
	a->on_status(a->status_arg, ep->cfg, &st);
}

/* --- replica state bookkeeping -------------------------------------------- */

static uint32_t *state_counter(struct endpoint *ep, enum replica_state st)
{
	switch (st) {
	case REPLICA_STARTING: return &ep->n_starting;
	case REPLICA_READY: return &ep->n_ready;
	case REPLICA_DRAINING: return &ep->n_draining;
	case REPLICA_WARM: return &ep->n_warm;
	default: return NULL;
	}
}

/* What a replica state is billed as. A replica asked to stop is still
 * running its engine until it exits: draining. */
static enum floe_meter_state meter_state(enum replica_state st)
{
	switch (st) {
	case REPLICA_STARTING: return FLOE_METER_INITIALIZING;
	case REPLICA_READY: return FLOE_METER_RUNNING;
	case REPLICA_DRAINING:
	case REPLICA_STOPPING: return FLOE_METER_DRAINING;
	case REPLICA_WARM: return FLOE_METER_WARM_POOL;
	case REPLICA_DEAD: break;
	}
	return FLOE_METER_STOPPED;
}

static void replica_meter(struct endpoint *ep, struct replica *r, enum replica_state st)
{
	struct floe_usage *u = ep->act->usage;
	enum floe_meter_state ms = meter_state(st);
	if (!u)
		return;
	if (!r->usage) {
		/* The first state of a replica starts its timeline. */
		if (ms != FLOE_METER_STOPPED)
			r->usage = floe_usage_replica_start(u, ep->cfg, r->id, ms);
		return;
	}
	floe_usage_replica_state(r->usage, ms);
	if (ms == FLOE_METER_STOPPED)
		r->usage = NULL; /* freed by the call */
}

void floe__endpoint_set_state(struct endpoint *ep, struct replica *r, enum replica_state st)
{
	replica_meter(ep, r, st);
	uint32_t *old = r->counted ? state_counter(ep, r->state) : NULL;
	if (old)
		(*old)--;
	r->state = st;
	uint32_t *now = state_counter(ep, st);
	if (now)
		(*now)++;
	r->counted = now != NULL;
	endpoint_metrics_update(ep);
}

/* --- requests ------------------------------------------------------------- */

/* Requests that matched no endpoint (404) are counted under endpoint="":
 * labelling them with the name asked for would let any client create
 * series without bound. */
static void req_record(struct floe_req *req, int status)
{
	struct floe_activator *a = req->act;
	const char *name = req->ep ? req->ep->cfg->name : "";
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	const char *lv[] = { name, code };
	floe_metric_inc(floe_metric_get(a->m.requests, lv));
	const char *ld[] = { name };
	floe_metric_observe(floe_metric_get(a->m.request_duration, ld),
			    (double)(floe_now_ns() - req->t_start_ns) / 1e9);
}

static void req_unhold(struct floe_req *req)
{
	if (req->state != REQ_HELD)
		return;
	floe_list_remove(&req->qlink);
	req->ep->n_held--;
	req->hold_ns = floe_now_ns() - req->t_start_ns;
	endpoint_metrics_update(req->ep);
}

/* The exchange is over (answered, or the client left): account and free. */
void floe__req_complete(struct floe_req *req, int status)
{
	struct endpoint *ep = req->ep;
	struct floe_activator *a = req->act;
	req_unhold(req);
	if (req->r) {
		req->r->in_flight--;
		ep->in_flight--;
		struct replica *r = req->r;
		req->r = NULL;
		/* Only what the engine answered counts (req->status is its status
		 * line); refusals and timeouts of floed's own are not its work. */
		if (r->usage && req->status > 0)
			floe_usage_replica_answer(r->usage, req->status);
		if (r->state == REPLICA_DRAINING && r->in_flight == 0)
			floe__replica_drain(r); /* last one out stops it */
		else if (r->snap_wait && r->in_flight == 0)
			floe__snap_on_idle(r);
		floe__snap_on_answered(r);
		floe__replica_unref(r);
	}
	req_record(req, status);
	req->state = REQ_DONE;
	if (req->client) {
		req->client->exchange = NULL;
		req->client = NULL;
	}
	bool activity = !req->probe && !req->refused;
	req_free(req);
	if (ep) {
		if (activity)
			ep->last_activity_ms = floe_now_ms();
		endpoint_evaluate(ep);
		endpoint_maybe_free(ep);
	}
	floe__activator_check_shutdown(a);
}

static void req_free(struct floe_req *req)
{
	floe_buf_destroy(&req->head);
	floe_buf_destroy(&req->body);
	floe_buf_destroy(&req->replay);
	free(req->target);
	free(req);
}

/* Answer with an error and end the request. */
static void req_fail(struct floe_req *req, int status, const char *type, const char *message,
		     const char *extra_headers)
{
	struct floe_conn *c = req->client;
	req->client = NULL;
	if (c) {
		/* Every answer says how long it was held, refusals included. */
		uint64_t held_ns =
			req->state == REQ_HELD ? floe_now_ns() - req->t_start_ns : req->hold_ns;
		char headers[256];
		snprintf(headers, sizeof(headers), "%sServer-Timing: hold;dur=%.1f\r\n",
			 extra_headers ? extra_headers : "", (double)held_ns / 1e6);
		c->exchange = NULL;
		floe_conn_error(c, status, type, message, headers);
	}
	floe__req_complete(req, status);
}

/* --- the queue ------------------------------------------------------------ */

static void hold_timer_arm(struct endpoint *ep);
static void hold_timer_start(struct endpoint *ep, uint64_t due_ms);

/*
 * Answer every held request whose deadline is at or before due_ms (all of
 * them with UINT64_MAX). Answering one runs the endpoint's bookkeeping,
 * which may answer others (a failed start fails the queue), so the scan
 * starts over after each one instead of trusting a saved next pointer.
 */
static void fail_held(struct endpoint *ep, uint64_t due_ms, int status, const char *type,
		      const char *message, const char *extra_headers)
{
	for (;;) {
		struct floe_req *victim = NULL;
		struct floe_list *pos;
		floe_list_for_each(pos, &ep->held) {
			struct floe_req *req = container_of(pos, struct floe_req, qlink);
			if (req->deadline_ms <= due_ms) {
				victim = req;
				break;
			}
		}
		if (!victim)
			return;
		req_fail(victim, status, type, message, extra_headers);
	}
}

static void on_hold_timer(uv_timer_t *t)
{
	struct endpoint *ep = container_of(t, struct endpoint, hold_timer);
	char msg[160];
	snprintf(msg, sizeof(msg), "endpoint '%s' had no ready replica within the hold time",
		 ep->cfg->name);
	fail_held(ep, floe_now_ms(), 503, "scale_up_timeout", msg, "Retry-After: 5\r\n");
	hold_timer_arm(ep);
}

static void hold_timer_start(struct endpoint *ep, uint64_t due_ms)
{
	uint64_t now = floe_now_ms();
	ep->hold_due_ms = due_ms;
	uv_timer_start(&ep->hold_timer, on_hold_timer, due_ms > now ? due_ms - now : 0, 0);
}

/* Aim the timer at the earliest deadline in the queue (a full scan: only
 * when the timer fires, not per request). */
static void hold_timer_arm(struct endpoint *ep)
{
	uint64_t earliest = UINT64_MAX;
	struct floe_list *pos;
	floe_list_for_each(pos, &ep->held) {
		struct floe_req *req = container_of(pos, struct floe_req, qlink);
		if (req->deadline_ms < earliest)
			earliest = req->deadline_ms;
	}
	if (earliest == UINT64_MAX) {
		uv_timer_stop(&ep->hold_timer);
		ep->hold_due_ms = UINT64_MAX;
		return;
	}
	hold_timer_start(ep, earliest);
}

/* Seconds (fractions allowed) at the start of text, in ms; false when none. */
static bool parse_seconds(const char *text, uint64_t *ms)
{
	char *end;
	double s = strtod(text, &end);
	if (end == text || !(s >= 0) || s > 1e9)
		return false;
	*ms = (uint64_t)(s * 1000.0);
	return true;
}

/* How long the client lets us hold it: the endpoint's max_hold, shortened
 * by X-Scale-Up-Timeout: SECONDS or Prefer: wait=SECONDS (RFC 7240). */
static uint64_t client_hold_ms(const struct floe_http_msg *msg, uint64_t max_ms)
{
	uint64_t ms, hold = max_ms;
	const char *v = floe_http_msg_header(msg, "x-scale-up-timeout");
	if (v && parse_seconds(v, &ms) && ms < hold)
		hold = ms;
	const char *prefer = floe_http_msg_header(msg, "prefer");
	const char *wait = prefer ? strcasestr(prefer, "wait=") : NULL;
	if (wait && (wait == prefer || wait[-1] == ' ' || wait[-1] == ',' || wait[-1] == ';') &&
	    parse_seconds(wait + 5, &ms) && ms < hold)
		hold = ms;
	return hold;
}

static struct replica *pick_replica(struct endpoint *ep)
{
	struct replica *best = NULL;
	struct floe_list *pos;
	floe_list_for_each(pos, &ep->replicas) {
		struct replica *r = container_of(pos, struct replica, link);
		/* being dumped: frozen anyway; requests wait for the dump or go elsewhere */
		if (r->state != REPLICA_READY || r->dumping)
			continue;
		if (!best || r->in_flight < best->in_flight)
			best = r;
	}
	return best;
}

static void req_dispatch(struct floe_req *req, struct replica *r)
{
	struct endpoint *ep = req->ep;
	req_unhold(req);
	req->state = REQ_PROXYING;
	req->r = r;
	r->refs++;
	r->in_flight++;
	ep->in_flight++;
	if (req->woke && !req->cold_reported) {
		req->cold_reported = true;
		req->cold_kind = r->kind;
		req->cold_start_ns = r->ready_ns - r->spawned_ns;
	}
	floe__proxy_start(req, r);
}

/* Route a request whose endpoint is known: dispatch, or hold. */
/* A GET or HEAD of the endpoint's own health route (its query ignored). */
static bool is_health_probe(const struct floe_req *req)
{
	const struct floe_http_msg *m = req->req_msg;
	const char *route = req->ep->cfg->health_route;
	if (!m || (m->method != HTTP_GET && m->method != HTTP_HEAD) || !req->target || !route)
		return false;
	size_t n = strcspn(req->target, "?");
	return n == strlen(route) && memcmp(req->target, route, n) == 0;
}

static void req_admit(struct floe_req *req)
{
	struct endpoint *ep = req->ep;
	struct floe_activator *a = req->act;
	if (a->shutting_down) {
		req_fail(req, 503, "shutting_down", "floed is shutting down", "Retry-After: 1\r\n");
		return;
	}
	if (ep->paused) {
		/* Hugging Face's semantics: a paused endpoint is not woken. */
		char msg[160];
		snprintf(msg, sizeof(msg), "endpoint '%s' is paused; resume it to serve requests",
			 ep->cfg->name);
		req_fail(req, 503, "paused", msg, NULL);
		return;
	}
	/* GET {url}{healthRoute} is how clients (huggingface_hub's wait())
	 * and monitors ask "is a replica ready?": answered, never a wake-up,
	 * and not activity that keeps the endpoint up. A ready replica being
	 * snapshotted counts (the probe waits out the dump like any request). */
	req->probe = is_health_probe(req);
	if (req->probe) {
		if (ep->n_ready == 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "endpoint '%s' has no ready replica",
				 ep->cfg->name);
			req_fail(req, 503, "not_ready", msg, NULL);
			return;
		}
	} else {
		ep->last_activity_ms = floe_now_ms();
		ep->zeroed = false;
		uv_timer_stop(&ep->idle_timer);
	}
	struct replica *r = pick_replica(ep);
	if (r && floe_list_empty(&ep->held)) {
		req_dispatch(req, r);
		endpoint_evaluate(ep);
		return;
	}
	if (ep->n_held >= ep->cfg->queue_size) {
		char msg[160];
		snprintf(msg, sizeof(msg), "endpoint '%s' queue is full (%u requests held)",
			 ep->cfg->name, ep->n_held);
		req_fail(req, 503, "queue_full", msg, "Retry-After: 1\r\n");
		return;
	}
	req->state = REQ_HELD;
	req->deadline_ms = floe_now_ms() + client_hold_ms(req->req_msg, ep->cfg->max_hold_ms);
	/* The first request held while nothing is starting is the one that
	 * wakes the endpoint: its Server-Timing reports the cold start. */
	req->woke = ep->n_starting == 0 && ep->n_ready == 0;
	floe_list_push(&ep->held, &req->qlink);
	ep->n_held++;
	endpoint_metrics_update(ep);
	/* O(1) per held request: the timer moves only for an earlier deadline
	 * (a shorter X-Scale-Up-Timeout); otherwise its next firing rescans. */
	if (req->deadline_ms < ep->hold_due_ms)
		hold_timer_start(ep, req->deadline_ms);
	endpoint_evaluate(ep);
}

/* Hand held requests to ready replicas, oldest first. */
static void endpoint_release(struct endpoint *ep)
{
	struct floe_list *n;
	while (!floe_list_empty(&ep->held)) {
		struct replica *r = pick_replica(ep);
		if (!r)
			break;
		n = ep->held.next;
		req_dispatch(container_of(n, struct floe_req, qlink), r);
	}
	if (floe_list_empty(&ep->held)) {
		uv_timer_stop(&ep->hold_timer);
		ep->hold_due_ms = UINT64_MAX;
	}
}

void floe__endpoint_dispatch(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	endpoint_release(ep);
	endpoint_evaluate(ep);
	endpoint_maybe_free(ep);
	floe__activator_check_shutdown(a);
}

/* --- scaling -------------------------------------------------------------- */

static void on_idle_timer(uv_timer_t *t)
{
	endpoint_evaluate(container_of(t, struct endpoint, idle_timer));
}

static void on_backoff_timer(uv_timer_t *t)
{
	endpoint_evaluate(container_of(t, struct endpoint, backoff_timer));
}

static void endpoint_fail_held(struct endpoint *ep, const char *why)
{
	fail_held(ep, UINT64_MAX, 503, "replica_start_failed", why, "Retry-After: 10\r\n");
}

/* One more failed start or crash: the next start waits 0.5 s, doubling up to 30 s. */
static void endpoint_note_failure(struct endpoint *ep)
{
	ep->failures++;
	uint64_t backoff = BACKOFF_BASE_MS << (ep->failures < 7 ? ep->failures - 1 : 6);
	ep->backoff_until_ms =
		floe_now_ms() + (backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS);
	if (ep->updating && ep->failures >= MAX_START_FAILURES) {
		/* Stop insisting: the next request retries (with backoff). */
		ep->updating = false;
		ep->update_failed = true;
		ep->update_floor = 0;
	}
	endpoint_status_note(ep);
}

static void endpoint_evaluate(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	if (ep->paused && ep->m_desired)
		floe_metric_set(ep->m_desired, 0); /* wants none until resumed */
	if (ep->removed || ep->paused || a->shutting_down)
		return;
	uint64_t now = floe_now_ms();
	bool idle = ep->in_flight == 0 && ep->n_held == 0;
	uint64_t idle_for = now - ep->last_activity_ms;
	struct floe_scale_input in = {
		.ready = ep->n_ready,
		.starting = ep->n_starting,
		.in_flight = ep->in_flight,
		.held = ep->n_held,
		.target_concurrency = ep->cfg->scaling.target_concurrency,
		.min_replica = ep->zeroed ? 0 : ep->cfg->scaling.min_replica,
		.update_floor = ep->update_floor,
		.max_replica = ep->cfg->scaling.max_replica,
		.idle_expired = idle && idle_for >= ep->cfg->scaling.scale_to_zero_timeout_ms,
	};
	struct floe_scale_decision d = floe_scale_decide(&in);
	floe_metric_set(ep->m_desired, d.desired);

	if (d.drain > 0) {
		log_ep_info(ep->cfg->name, "idle for %.1f s, scaling down by %u",
			    (double)idle_for / 1000.0, d.drain);
		/* Drain the least recently started first? All are idle: any. */
		struct floe_list *pos, *tmp;
		uint32_t left = d.drain;
		floe_list_for_each_safe(pos, tmp, &ep->replicas) {
			struct replica *r = container_of(pos, struct replica, link);
			if (left == 0)
				break;
			if (r->state == REPLICA_READY) {
				floe__replica_drain(r);
				left--;
			}
		}
	}
	if (d.start > 0) {
		if (now < ep->backoff_until_ms) {
			uv_timer_start(&ep->backoff_timer, on_backoff_timer,
				       ep->backoff_until_ms - now, 0);
		} else {
			for (uint32_t i = 0; i < d.start; i++) {
				floe_error err;
				floe_error_clear(&err);
				if (!floe__replica_start(ep, &err)) {
					log_ep_error(ep->cfg->name, "%s", err.msg);
					endpoint_note_failure(ep);
					if (ep->failures >= MAX_START_FAILURES) {
						endpoint_fail_held(ep, err.msg);
					}
					uv_timer_start(&ep->backoff_timer, on_backoff_timer,
						       ep->backoff_until_ms - now, 0);
					break;
				}
			}
		}
	}
	/* Re-arm scale-to-zero while idle and above the minimum. */
	if (idle && ep->n_ready + ep->n_starting > in.min_replica && d.drain == 0) {
		uint64_t timeout = ep->cfg->scaling.scale_to_zero_timeout_ms;
		uv_timer_start(&ep->idle_timer, on_idle_timer,
			       idle_for < timeout ? timeout - idle_for : 0, 0);
	}
}

void floe__endpoint_on_replica_ready(struct endpoint *ep, struct replica *r)
{
	ep->failures = 0;
	ep->backoff_until_ms = 0;
	ep->updating = ep->update_failed = false;
	ep->update_floor = 0;
	endpoint_status_note(ep);
	struct floe_activator *a = ep->act;
	const char *kind = floe__cold_kind_name(r->kind);
	const char *lv[] = { ep->cfg->name, kind };
	double secs = (double)(r->ready_ns - r->spawned_ns) / 1e9;
	floe_metric_inc(floe_metric_get(a->m.cold_starts, lv));
	floe_metric_observe(floe_metric_get(a->m.cold_start_duration, lv), secs);
	log_replica_info(ep->cfg->name, r->id, "ready (%s start, %.0f ms)", kind, secs * 1000);
	endpoint_release(ep);
	endpoint_evaluate(ep);
	floe__snap_on_ready(r);
}

void floe__endpoint_on_replica_gone(struct endpoint *ep, struct replica *r, bool failed, int status)
{
	floe_list_remove(&r->link);
	if (failed) {
		endpoint_note_failure(ep);
		if (ep->failures >= MAX_START_FAILURES && ep->n_ready == 0) {
			char why[256];
			snprintf(
				why, sizeof(why),
				"endpoint '%s': %u replica starts failed in a row (last: %s); see %s/logs/%s/",
				ep->cfg->name, ep->failures,
				WIFEXITED(status) ? "exited" : "killed", ep->act->data_dir,
				ep->cfg->name);
			endpoint_fail_held(ep, why);
		}
	}
	endpoint_evaluate(ep);
	if (r->state == REPLICA_DEAD && !ep->removed)
		floe__snap_refill(ep); /* a pool replica may have gone */
	endpoint_maybe_free(ep);
	floe__activator_check_shutdown(ep->act);
}

/* --- routing -------------------------------------------------------------- */

static struct endpoint *find_endpoint(struct floe_activator *a, const char *name, size_t len,
				      bool match_model)
{
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (ep->removed)
			continue;
		if (strlen(ep->cfg->name) == len && memcmp(ep->cfg->name, name, len) == 0)
			return ep;
	}
	if (!match_model)
		return NULL;
	/* OpenAI clients send the model id; an endpoint serving that model answers. */
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (!ep->removed && ep->cfg->model && strlen(ep->cfg->model) == len &&
		    memcmp(ep->cfg->model, name, len) == 0)
			return ep;
	}
	return NULL;
}

static bool is_openai_route(const char *path, size_t len)
{
	static const char *const routes[] = { "/v1/chat/completions", "/v1/completions",
					      "/v1/embeddings" };
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strlen(routes[i]) == len && memcmp(routes[i], path, len) == 0)
			return true;
	return false;
}

/* Serialize the request head for the upstream: hop-by-hop headers and our
 * own framing headers out, X-Forwarded-* in. Framing is decided here. */
static void build_upstream_head(struct floe_req *req, const struct floe_http_msg *msg,
				int64_t content_length, bool chunked)
{
	struct floe_buf *h = &req->head;
	const char *xff = NULL;
	bool have_host = false;
	floe_buf_reserve(h, 512);
	floe_buf_printf(h, "%s %s HTTP/1.1\r\n", llhttp_method_name((llhttp_method_t)msg->method),
			req->target);
	for (size_t i = 0; i < msg->n_headers; i++) {
		switch (msg->headers[i].id) {
		case FLOE_HDR_OTHER: break;
		case FLOE_HDR_HOST: have_host = true; break;
		case FLOE_HDR_X_FORWARDED_FOR: xff = floe_http_header_value(msg, i); continue;
		case FLOE_HDR_AUTHORIZATION:
			if (req->strip_auth)
				continue;
			break;
		default:
			/* Hop-by-hop, our own framing and forwarding headers, and
			 * Expect (answered here) are not passed on. */
			continue;
		}
		if (floe_http_msg_connection_list(msg) &&
		    floe_http_list_has_token(floe_http_msg_connection_list(msg),
					     floe_http_header_name(msg, i)))
			continue;
		floe_http_header_append(h, msg, i);
	}
	if (!have_host)
		floe_buf_puts(h, "Host: localhost\r\n");
	if (xff)
		floe_buf_printf(h, "X-Forwarded-For: %s, %s\r\n", xff, req->client->peer);
	else
		floe_buf_printf(h, "X-Forwarded-For: %s\r\n", req->client->peer);
	floe_buf_puts(h, "X-Forwarded-Proto: http\r\n");
	if (chunked) {
		floe_buf_puts(h, "Transfer-Encoding: chunked\r\n");
		req->body_chunked = true;
	} else if (content_length >= 0) {
		floe_buf_printf(h, "Content-Length: %lld\r\n", (long long)content_length);
	}
	floe_buf_puts(h, "\r\n");
}

/*
 * Who may call ep (its `type`, issue 5). Single-user floed (no tokens) lets
 * everyone through: it listens on loopback only. Otherwise `authenticated`
 * and `private` endpoints want a token of their namespace; the check comes
 * before the request is admitted, so a refused request never wakes the
 * endpoint, never counts as activity and is never billed. The token is
 * floe's, so it is not passed on to the engine.
 *
 * Returns true to go on. false: answered (401, or 403 for a token of another
 * namespace), or *hidden set for a private endpoint, which the caller
 * answers exactly as it answers an endpoint that does not exist, so that
 * its name is not disclosed either.
 */
static bool req_authorize(struct floe_req *req, bool *hidden)
{
	const struct floe_endpoint_config *cfg = req->ep->cfg;
	*hidden = false;
	if (cfg->access == FLOE_ENDPOINT_PUBLIC || floe_auth_single_user(req->act->auth))
		return true;
	const char *ns = NULL;
	enum floe_auth_result res = floe_auth_check(
		req->act->auth, floe_http_msg_header(req->req_msg, "authorization"), &ns);
	if (res == FLOE_AUTH_OK && cfg->ns && strcmp(ns, cfg->ns) == 0) {
		req->strip_auth = true;
		return true;
	}
	req->refused = true;
	if (cfg->access == FLOE_ENDPOINT_PRIVATE) {
		*hidden = true;
		return false;
	}
	if (res == FLOE_AUTH_OK)
		req_fail(req, 403, "forbidden", "your token is for another namespace", NULL);
	else if (res == FLOE_AUTH_NO_TOKEN)
		/* RFC 6750 section 3: no error code when no credentials came. */
		req_fail(req, 401, "unauthorized",
			 "this endpoint needs a token: Authorization: Bearer TOKEN",
			 "WWW-Authenticate: Bearer realm=\"floe\"\r\n");
	else
		req_fail(req, 401, "unauthorized", "the token is not valid",
			 "WWW-Authenticate: Bearer realm=\"floe\", error=\"invalid_token\"\r\n");
	return false;
}

static void act_on_head(struct floe_conn *c, struct floe_http_msg *msg)
{
	struct floe_activator *a = c->server->data;
	const char *url = floe_http_msg_url(msg);
	size_t url_len = msg->url_len;
	const char *q = memchr(url, '?', url_len);
	size_t path_len = q ? (size_t)(q - url) : url_len;

	struct floe_req *req = xcalloc(1, sizeof(*req));
	req->act = a;
	req->client = c;
	req->t_start_ns = floe_now_ns();
	req->req_msg = msg;
	req->head_request = msg->method == HTTP_HEAD;
	floe_list_init(&req->qlink);
	floe_buf_init(&req->head);
	floe_buf_init(&req->body);
	c->exchange = req;

	if (path_len >= PREFIX_LEN && memcmp(url, PREFIX, PREFIX_LEN) == 0) {
		const char *name = url + PREFIX_LEN;
		const char *slash = memchr(name, '/', path_len - PREFIX_LEN);
		size_t name_len = slash ? (size_t)(slash - name) : path_len - PREFIX_LEN;
		struct endpoint *ep = find_endpoint(a, name, name_len, false);
		bool hidden = false;
		if (ep) {
			req->ep = ep;
			if (!req_authorize(req, &hidden) && !hidden)
				return;
		}
		if (!ep || hidden) {
			char m[200];
			snprintf(m, sizeof(m), "endpoint '%.*s' not found",
				 (int)(name_len > 64 ? 64 : name_len), name);
			req_fail(req, 404, "not_found", m, NULL);
			return;
		}
		/* Strip the prefix; "/endpoints/NAME" alone (or "?q") maps to "/". */
		const char *rest = name + name_len;
		size_t rest_len = url_len - (size_t)(rest - url);
		if (rest_len == 0 || rest[0] == '?')
			req->target = xasprintf("/%.*s", (int)rest_len, rest);
		else
			req->target = xstrndup(rest, rest_len);
		build_upstream_head(req, msg, msg->content_length, msg->chunked);
		req_admit(req);
		return;
	}
	if (msg->method == HTTP_POST && is_openai_route(url, path_len)) {
		/* The endpoint is named inside the body: read it whole first. */
		req->state = REQ_ROUTING;
		req->target = xstrndup(url, url_len);
		return;
	}
	req_fail(req, 404, "not_found",
		 "no such route: use /endpoints/NAME/... or /v1/* with a model", NULL);
}

static void route_by_model(struct floe_req *req)
{
	struct floe_activator *a = req->act;
	json_error_t jerr;
	json_t *doc = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
	const char *model = doc ? json_string_value(json_object_get(doc, "model")) : NULL;
	if (!doc || !json_is_object(doc)) {
		json_decref(doc);
		req_fail(req, 400, "bad_request", "request body is not a JSON object", NULL);
		return;
	}
	if (!model) {
		json_decref(doc);
		req_fail(req, 400, "bad_request", "request body has no \"model\" string", NULL);
		return;
	}
	struct endpoint *ep = find_endpoint(a, model, strlen(model), true);
	bool hidden = false;
	if (ep) {
		req->ep = ep;
		if (!req_authorize(req, &hidden) && !hidden) {
			json_decref(doc);
			return;
		}
	}
	if (!ep || hidden) {
		char m[200];
		snprintf(m, sizeof(m), "model '%.64s' is not served by any endpoint", model);
		json_decref(doc);
		req_fail(req, 404, "not_found", m, NULL);
		return;
	}
	json_decref(doc);
	req->body_done = true;
	build_upstream_head(req, req->req_msg, (int64_t)req->body.len, false);
	req_admit(req);
}

static void act_on_body(struct floe_conn *c, const char *data, size_t len)
{
	struct floe_req *req = c->exchange;
	if (!req)
		return;
	if (req->state == REQ_ROUTING) {
		if (req->body.len + len > ROUTE_BODY_MAX) {
			req_fail(req, 413, "payload_too_large",
				 "request body too large to route by model", NULL);
			return;
		}
		floe_buf_append(&req->body, data, len);
		return;
	}
	if (req->state == REQ_HELD) {
		floe_buf_append(&req->body, data, len);
		if (req->body.len > HOLD_BODY_MAX && !req->body_paused) {
			req->body_paused = true;
			floe_conn_pause_body(c);
		}
		return;
	}
	if (req->state == REQ_PROXYING) {
		floe_buf_append(&req->body, data, len);
		floe__proxy_on_body(req);
	}
}

static void act_on_body_end(struct floe_conn *c)
{
	struct floe_req *req = c->exchange;
	if (!req)
		return;
	if (req->state == REQ_ROUTING) {
		route_by_model(req);
		return;
	}
	req->body_done = true;
	if (req->state == REQ_PROXYING)
		floe__proxy_on_body(req);
}

static void act_on_writable(struct floe_conn *c)
{
	struct floe_req *req = c->exchange;
	if (req && req->state == REQ_PROXYING)
		floe__proxy_on_client_writable(req);
}

static void act_on_abort(struct floe_conn *c)
{
	struct floe_req *req = c->exchange;
	if (!req)
		return;
	req->client = NULL;
	c->exchange = NULL;
	if (req->state == REQ_PROXYING) {
		floe__proxy_abort(req); /* closes the upstream request, then completes */
		return;
	}
	/* Held or routing: drop it from the queue; 499 as nginx logs it. */
	floe__req_complete(req, 499);
}

const struct floe_server_handler floe_activator_handler = {
	.on_head = act_on_head,
	.on_body = act_on_body,
	.on_body_end = act_on_body_end,
	.on_writable = act_on_writable,
	.on_abort = act_on_abort,
};

/* --- endpoints ------------------------------------------------------------ */

static struct seq_memo *seq_memo_find(struct floe_activator *a, const char *name)
{
	for (size_t i = 0; i < a->n_seq_memo; i++)
		if (strcmp(a->seq_memo[i].name, name) == 0)
			return &a->seq_memo[i];
	return NULL;
}

/* The replica number an endpoint called name continues from: that of an
 * earlier endpoint of the name, still draining or long gone. */
static uint32_t seq_continue(struct floe_activator *a, const char *name)
{
	struct seq_memo *m = seq_memo_find(a, name);
	uint32_t seq = m ? m->seq : 0;
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *old = container_of(pos, struct endpoint, link);
		if (strcmp(old->cfg->name, name) == 0 && old->next_seq > seq)
			seq = old->next_seq;
	}
	return seq;
}

static void seq_remember(struct floe_activator *a, const char *name, uint32_t seq)
{
	struct seq_memo *m = seq_memo_find(a, name);
	if (!m) {
		a->seq_memo = xrealloc(a->seq_memo, (a->n_seq_memo + 1) * sizeof(*a->seq_memo));
		m = &a->seq_memo[a->n_seq_memo++];
		m->name = xstrdup(name);
		m->seq = 0;
	}
	if (seq > m->seq)
		m->seq = seq;
}

static struct endpoint *endpoint_new(struct floe_activator *a,
				     const struct floe_endpoint_config *cfg)
{
	struct endpoint *ep = xcalloc(1, sizeof(*ep));
	ep->act = a;
	ep->next_seq = seq_continue(a, cfg->name);
	ep->last_state = -1;
	ep->cfg = floe_endpoint_config_dup(cfg);
	floe_list_init(&ep->replicas);
	floe_list_init(&ep->held);
	ep->last_activity_ms = floe_now_ms();
	ep->hold_due_ms = UINT64_MAX;
	uv_timer_init(a->loop, &ep->idle_timer);
	uv_timer_init(a->loop, &ep->hold_timer);
	uv_timer_init(a->loop, &ep->backoff_timer);
	const char *lq[] = { cfg->name };
	ep->m_queue_depth = floe_metric_get(a->m.queue_depth, lq);
	for (int i = 0; i < 4; i++) {
		const char *ls[] = { cfg->name, replica_state_names[i] };
		ep->m_replicas[i] = floe_metric_get(a->m.replicas, ls);
	}
	ep->m_desired = floe_metric_get(a->m.desired, lq);
	ep->m_actual = floe_metric_get(a->m.actual, lq);
	endpoint_info_add(ep);
	endpoint_metrics_update(ep);
	floe_list_push(&a->endpoints, &ep->link);
	floe__snap_endpoint_load(ep);
	return ep;
}

static void on_endpoint_timer_closed(uv_handle_t *h)
{
	struct endpoint *ep = h->data;
	if (--ep->pending_closes > 0)
		return;
	floe__snap_endpoint_free(ep);
	floe_endpoint_config_free(ep->cfg);
	free(ep);
}

static void endpoint_maybe_free(struct endpoint *ep)
{
	if (!ep->removed || !floe_list_empty(&ep->replicas) || ep->n_held || ep->in_flight ||
	    ep->pending_closes || ep->snap_jobs)
		return;
	struct floe_activator *a = ep->act;
	floe_list_remove(&ep->link);
	seq_remember(a, ep->cfg->name, ep->next_seq);
	/* A new endpoint of the name holds pointers to these series: they are
	 * its own now, and go when it does. */
	if (!endpoint_name_shared(ep, false)) {
		floe_metric_remove_matching(a->m.queue_depth, "endpoint", ep->cfg->name);
		floe_metric_remove_matching(a->m.replicas, "endpoint", ep->cfg->name);
		floe_metric_remove_matching(a->m.snapshot_bytes, "endpoint", ep->cfg->name);
		floe_metric_remove_matching(a->m.snapshot_ops, "endpoint", ep->cfg->name);
		floe_metric_remove_matching(a->m.restore_duration, "endpoint", ep->cfg->name);
	}
	endpoint_metrics_forget(ep);
	ep->pending_closes = 3;
	ep->idle_timer.data = ep->hold_timer.data = ep->backoff_timer.data = ep;
	uv_close((uv_handle_t *)&ep->idle_timer, on_endpoint_timer_closed);
	uv_close((uv_handle_t *)&ep->hold_timer, on_endpoint_timer_closed);
	uv_close((uv_handle_t *)&ep->backoff_timer, on_endpoint_timer_closed);
}

static void endpoint_drain_all(struct endpoint *ep)
{
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &ep->replicas) {
		struct replica *r = container_of(pos, struct replica, link);
		if (r->state == REPLICA_STARTING || r->state == REPLICA_READY ||
		    r->state == REPLICA_WARM)
			floe__replica_drain(r);
	}
}

static void endpoint_remove(struct endpoint *ep)
{
	endpoint_metrics_forget(ep);
	ep->removed = true;
	uv_timer_stop(&ep->idle_timer);
	uv_timer_stop(&ep->backoff_timer);
	fail_held(ep, UINT64_MAX, 404, "not_found", "endpoint was removed", NULL);
	endpoint_drain_all(ep);
	endpoint_maybe_free(ep);
}

void floe_activator_apply(struct floe_activator *a, const struct floe_config *cfg)
{
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (ep->removed)
			continue;
		const struct floe_endpoint_config *nc = floe_config_endpoint(cfg, ep->cfg->name);
		if (!nc) {
			log_ep_info(ep->cfg->name, "removed from the configuration; draining");
			endpoint_remove(ep);
		} else if (!floe_endpoint_config_equal(ep->cfg, nc)) {
			/* Same name, new definition: new replicas serve the held and
			 * new requests, the old ones finish theirs and stop. */
			log_ep_info(ep->cfg->name, "definition changed; replacing its replicas");
			floe_metric_remove_matching(a->m.endpoint_info, "endpoint", ep->cfg->name);
			floe_endpoint_config_free(ep->cfg);
			ep->cfg = floe_endpoint_config_dup(nc);
			endpoint_info_add(ep); /* its namespace or type may have changed */
			ep->failures = 0;
			ep->backoff_until_ms = 0;
			/* A running endpoint stays up: as many new replicas as
			 * were ready start now (within max_replica), not at the
			 * next request. */
			ep->updating = !ep->paused && ep->n_ready + ep->n_starting > 0;
			ep->update_failed = false;
			ep->update_floor = ep->updating ? (ep->n_ready > 0 ? ep->n_ready : 1) : 0;
			endpoint_drain_all(ep);
			floe__snap_endpoint_load(ep); /* a new key: the old snapshot is not its */
			endpoint_evaluate(ep);
			floe__snap_refill(ep);
			endpoint_status_note(ep);
		}
	}
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		const struct floe_endpoint_config *nc = &cfg->endpoints[i];
		if (find_endpoint(a, nc->name, strlen(nc->name), false))
			continue;
		struct endpoint *ep = endpoint_new(a, nc);
		log_ep_info(nc->name, "serving (engine %s, replicas %u..%u)", nc->engine,
			    nc->scaling.min_replica, nc->scaling.max_replica);
		endpoint_evaluate(ep);
		floe__snap_refill(ep);
		endpoint_status_note(ep);
	}
}

void floe_activator_set_auth(struct floe_activator *a, const struct floe_auth_config *auth)
{
	a->auth = auth;
}

char **floe_activator_endpoints_of(const struct floe_activator *a, const char *ns)
{
	size_t n = 0, cap = 8;
	char **names = xmalloc(cap * sizeof(*names));
	const struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		const struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (ep->removed || !ep->cfg->ns || strcmp(ep->cfg->ns, ns) != 0)
			continue;
		if (n + 1 == cap) {
			cap *= 2;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(ep->cfg->name);
	}
	names[n] = NULL;
	return names;
}

/* --- pause, resume, scale to zero, status (the endpoint API) --------------- */

static struct endpoint *served_endpoint(const struct floe_activator *a, const char *name)
{
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (!ep->removed && strcmp(ep->cfg->name, name) == 0)
			return ep;
	}
	return NULL;
}

const struct floe_endpoint_config *floe_activator_endpoint_config(const struct floe_activator *a,
								  const char *name)
{
	const struct endpoint *ep = served_endpoint(a, name);
	return ep ? ep->cfg : NULL;
}

int floe_activator_pause(struct floe_activator *a, const char *name)
{
	struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	if (ep->paused)
		return 0;
	ep->paused = true;
	uv_timer_stop(&ep->idle_timer);
	uv_timer_stop(&ep->backoff_timer);
	log_ep_info(ep->cfg->name,
		    "paused; its replicas drain and requests get 503 until it is resumed");
	fail_held(ep, UINT64_MAX, 503, "paused", "the endpoint was paused", NULL);
	ep->updating = ep->update_failed = false;
	ep->update_floor = 0;
	endpoint_drain_all(ep); /* pool replicas too */
	endpoint_status_note(ep);
	return 0;
}

int floe_activator_resume(struct floe_activator *a, const char *name)
{
	struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	if (!ep->paused)
		return -EALREADY;
	ep->paused = false;
	ep->zeroed = false;
	ep->failures = 0;
	ep->backoff_until_ms = 0;
	log_ep_info(ep->cfg->name, "resumed");
	endpoint_evaluate(ep);
	floe__snap_refill(ep);
	endpoint_status_note(ep);
	return 0;
}

int floe_activator_scale_to_zero(struct floe_activator *a, const char *name)
{
	struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	if (ep->paused)
		return 0; /* nothing runs anyway */
	ep->zeroed = true;
	uv_timer_stop(&ep->idle_timer);
	log_ep_info(ep->cfg->name, "scaled to zero on request; the next request wakes it");
	/* The warm pool stays: it is what makes the next wake fast. */
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &ep->replicas) {
		struct replica *r = container_of(pos, struct replica, link);
		if (r->state == REPLICA_STARTING || r->state == REPLICA_READY)
			floe__replica_drain(r);
	}
	return 0;
}

int floe_activator_endpoint_status(const struct floe_activator *a, const char *name,
				   struct floe_endpoint_status *st)
{
	const struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	endpoint_status(ep, st);
	return 0;
}

/* --- lifecycle ------------------------------------------------------------ */

struct floe_activator *floe_activator_new(uv_loop_t *loop, struct floe_metrics *metrics,
					  const struct floe_activator_opts *opts)
{
	struct floe_activator *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->metrics = metrics;
	a->data_dir = xstrdup(opts->data_dir);
	a->init_path = xstrdup(opts->init_path);
	a->log_max_bytes = opts->replica_log_max_bytes;
	a->warm_pool_memory = opts->warm_pool_memory;
	a->usage = opts->usage;
	a->on_status = opts->on_status;
	a->status_arg = opts->status_arg;
	floe_list_init(&a->endpoints);
	uv_timer_init(loop, &a->shutdown_timer);
	uv_idle_init(loop, &a->shutdown_check);
	metrics_register(a);
	floe__snap_register_metrics(a);
	floe__snap_init(a, opts->snapshots);
	return a;
}

static bool activator_empty(struct floe_activator *a)
{
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (!floe_list_empty(&ep->replicas) || ep->n_held || ep->in_flight || ep->snap_jobs)
			return false;
	}
	return true;
}

static void on_shutdown_check(uv_idle_t *h)
{
	struct floe_activator *a = container_of(h, struct floe_activator, shutdown_check);
	uv_idle_stop(h);
	if (!a->shutting_down || !a->shutdown_done || !activator_empty(a))
		return;
	uv_timer_stop(&a->shutdown_timer);
	void (*done)(struct floe_activator *, void *) = a->shutdown_done;
	a->shutdown_done = NULL;
	done(a, a->shutdown_arg);
}

void floe__activator_check_shutdown(struct floe_activator *a)
{
	/* Deferred to the next loop turn: callers are deep in callbacks. */
	if (a && a->shutting_down && a->shutdown_done)
		uv_idle_start(&a->shutdown_check, on_shutdown_check);
}

static void on_shutdown_grace(uv_timer_t *t)
{
	struct floe_activator *a = container_of(t, struct floe_activator, shutdown_timer);
	log_warn("shutdown grace elapsed: killing the remaining replicas");
	struct floe_list *pos, *rpos, *rtmp;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		floe_list_for_each_safe(rpos, rtmp, &ep->replicas)
			floe__replica_kill(container_of(rpos, struct replica, link));
	}
}

void floe_activator_shutdown(struct floe_activator *a, uint64_t grace_ms,
			     void (*done)(struct floe_activator *a, void *arg), void *arg)
{
	a->shutting_down = true;
	a->shutdown_done = done;
	a->shutdown_arg = arg;
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		uv_timer_stop(&ep->idle_timer);
		uv_timer_stop(&ep->backoff_timer);
		/* Held requests with a replica to go to get it; the rest cannot be
		 * served by a floed that is going away. */
		endpoint_release(ep);
		fail_held(ep, UINT64_MAX, 503, "shutting_down", "floed is shutting down",
			  "Retry-After: 1\r\n");
		endpoint_drain_all(ep);
	}
	uv_timer_start(&a->shutdown_timer, on_shutdown_grace, grace_ms, 0);
	floe__activator_check_shutdown(a);
}

static void on_act_handle_closed(uv_handle_t *h)
{
	struct floe_activator *a = h->data;
	if (--a->pending_closes > 0)
		return;
	free(a->data_dir);
	free(a->init_path);
	for (size_t i = 0; i < a->n_seq_memo; i++)
		free(a->seq_memo[i].name);
	free(a->seq_memo);
	free(a);
}

void floe_activator_free(struct floe_activator *a)
{
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		ep->removed = true;
		endpoint_maybe_free(ep);
	}
	a->pending_closes = 2;
	a->shutdown_timer.data = a->shutdown_check.data = a;
	uv_close((uv_handle_t *)&a->shutdown_timer, on_act_handle_closed);
	uv_close((uv_handle_t *)&a->shutdown_check, on_act_handle_closed);
}

/* --- replicas and their logs (the control plane's observability routes) --- */

static const char *replica_state_word(enum replica_state st)
{
	switch (st) {
	case REPLICA_STARTING: return "starting";
	case REPLICA_READY: return "ready";
	case REPLICA_DRAINING: return "draining";
	case REPLICA_STOPPING: return "stopping";
	case REPLICA_WARM: return "warm";
	case REPLICA_DEAD: break;
	}
	return "dead";
}

int floe_activator_replicas(const struct floe_activator *a, const char *name,
			    struct floe_replica_info **out)
{
	*out = NULL;
	const struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	size_t n = 0;
	const struct floe_list *pos;
	floe_list_for_each(pos, &ep->replicas)
		n++;
	if (n == 0)
		return 0;
	struct floe_replica_info *v = xcalloc(n, sizeof(*v));
	/* Replicas keep monotonic times; the wall clock is for display only,
	 * so each is placed at now minus its age. */
	uint64_t now_ns = floe_now_ns(), wall_ms = floe_wall_ms();
	size_t k = 0;
	floe_list_for_each(pos, &ep->replicas) {
		const struct replica *r = container_of(pos, struct replica, link);
		if (r->state == REPLICA_DEAD)
			continue;
		struct floe_replica_info *i = &v[k++];
		snprintf(i->id, sizeof(i->id), "%s", r->id);
		i->state = replica_state_word(r->state);
		i->pid = !r->restoring && r->proc.pid > 0 ? (int)r->proc.pid : 0;
		i->cold_kind = floe__cold_kind_name(r->kind);
		uint64_t age_ms = (now_ns - r->spawned_ns) / 1000000;
		i->started_ms = wall_ms - age_ms;
		i->uptime_seconds = (double)(now_ns - r->spawned_ns) / 1e9;
		i->cold_seconds = -1;
		if (r->ready_ns >= r->spawned_ns && r->ready_ns > 0) {
			i->cold_seconds = (double)(r->ready_ns - r->spawned_ns) / 1e9;
			i->ready_ms = wall_ms - (now_ns - r->ready_ns) / 1000000;
		}
		i->in_flight = r->in_flight;
		i->gpus = ep->cfg->resources.gpus;
		snprintf(i->snapshot, sizeof(i->snapshot), "%s", r->snap_key);
	}
	if (k == 0) {
		free(v);
		return 0;
	}
	*out = v;
	return (int)k;
}

static void on_follower_data(struct floe_proc_tap *t, const char *data, size_t len)
{
	struct floe_log_follower *f = container_of(t, struct floe_log_follower, tap);
	f->on_data(f, data, len);
}

static void on_follower_end(struct floe_proc_tap *t)
{
	struct floe_log_follower *f = container_of(t, struct floe_log_follower, tap);
	f->on_end(f);
}

/* A replica whose process floed may still hear from, with a log file. */
static bool replica_has_log(const struct replica *r)
{
	uint64_t off;
	return r->state != REPLICA_DEAD && floe_proc_log_file(&r->proc, &off) != NULL;
}

int floe_activator_replica_log(struct floe_activator *a, const char *name, const char *id,
			       struct floe_log_follower *f, struct floe_replica_log *out)
{
	memset(out, 0, sizeof(*out));
	if (f)
		f->tap.proc = NULL;
	struct endpoint *ep = served_endpoint(a, name);
	if (!ep)
		return -ENOENT;
	struct replica *found = NULL, *warm = NULL;
	struct floe_list *pos;
	floe_list_for_each(pos, &ep->replicas) {
		struct replica *r = container_of(pos, struct replica, link);
		if (!replica_has_log(r))
			continue;
		if (id && strcmp(r->id, id) == 0) {
			found = r;
			break;
		}
		/* The newest, and the one serving rather than waiting in the pool:
		 * its output is what someone asking for "the log" wants. */
		if (!id && r->state != REPLICA_WARM)
			found = r;
		else if (!id)
			warm = r;
	}
	if (!found)
		found = warm;
	if (!found)
		return -ESRCH;
	snprintf(out->id, sizeof(out->id), "%s", found->id);
	out->path = xstrdup(floe_proc_log_file(&found->proc, &out->offset));
	if (f) {
		f->tap.on_data = on_follower_data;
		f->tap.on_end = on_follower_end;
		f->tap.data = f;
		out->following = floe_proc_tap_add(&found->proc, &f->tap) == 0;
	}
	return 0;
}

void floe_activator_log_unfollow(struct floe_log_follower *f)
{
	floe_proc_tap_remove(&f->tap);
}
