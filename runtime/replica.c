#define LOG_TAG "replica"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "runtime-internal.h"
#include "xalloc.h"

/*
 * Readiness polling backs off with the time already spent starting, so the
 * lag between the engine becoming ready and floed noticing stays a small
 * fraction of the start time: a restore ready in milliseconds is seen in
 * milliseconds, a model that loads for minutes is asked every few tens of
 * milliseconds. A refused connect (vLLM and TGI keep the port closed while
 * loading) costs the engine nothing, so it is retried sooner than a probe
 * the engine has to answer (llama-server's 503 while loading). The old
 * fixed 10 ms, then 50 ms after 2 s, cost a median 44 ms of lag on a 2 s
 * engine (scripts/bench/coldstart).
 */
#define PROBE_MIN_MS 2
#define PROBE_ANSWERED_DIV 100 /* elapsed/100: 1% of the start time */
#define PROBE_ANSWERED_MAX_MS 25
#define PROBE_REFUSED_DIV 200
#define PROBE_REFUSED_MAX_MS 10
#define PROBE_TIMEOUT_MS 2000

struct probe {
	struct replica *r; /* NULL once the replica gave up on it */
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	struct floe_http_parser parser;
	char request[256];
	bool done;
	bool ok;
};

static void replica_schedule_probe(struct replica *r);
static void replica_probe(struct replica *r);
static void replica_stop(struct replica *r);
static void on_probe_closed(uv_handle_t *h);

/* --- life and death ------------------------------------------------------- */

static void replica_free_if_unused(struct replica *r)
{
	if (r->state != REPLICA_DEAD || r->refs > 0 || r->pending_closes > 0 || !r->proc_closed)
		return;
	free(r->health_route);
	free(r);
}

void floe__replica_unref(struct replica *r)
{
	r->refs--;
	replica_free_if_unused(r);
}

static void on_replica_handle_closed(uv_handle_t *h)
{
	struct replica *r = h->data;
	r->pending_closes--;
	replica_free_if_unused(r);
}

static void on_proc_closed(struct floe_proc *p)
{
	struct replica *r = p->data;
	r->proc_closed = true;
	if (r->cg) {
		int rc = floe_cgroup_destroy(r->cg);
		if (rc < 0)
			log_replica_warn(r->ep->cfg->name, r->id, "left its cgroup behind: %s",
					 strerror(-rc));
		r->cg = NULL;
	}
	replica_free_if_unused(r);
}

static void probe_abandon(struct replica *r)
{
	if (r->probe) {
		r->probe->r = NULL;
		if (!r->probe->done) {
			r->probe->done = true;
			uv_close((uv_handle_t *)&r->probe->tcp, on_probe_closed);
		}
		r->probe = NULL;
	}
}

void floe__replica_on_exit(struct floe_proc *p, int status)
{
	struct replica *r = p->data;
	struct endpoint *ep = r->ep;
	enum replica_state was = r->state;
	char how[64];
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "status 0x%x", status);

	bool failed = false;
	if (was == REPLICA_STARTING) {
		log_replica_error(ep->cfg->name, r->id, "exited before it was ready (%s); log: %s",
				  how, p->log_path);
		failed = true;
	} else if (was == REPLICA_READY) {
		log_replica_error(ep->cfg->name, r->id, "died (%s); log: %s", how, p->log_path);
		failed = true;
	} else if (was == REPLICA_WARM) {
		log_replica_warn(ep->cfg->name, r->id, "exited in the warm pool (%s); log: %s", how,
				 p->log_path);
	} else {
		log_replica_info(ep->cfg->name, r->id, "stopped (%s)", how);
	}
	/* A restored replica that dies before it is ready is the snapshot's
	 * fault, not the engine's: the replacement starts fresh at once. */
	if (was == REPLICA_STARTING && r->kind == COLD_RESTORE)
		failed = false;
	floe__snap_on_exit(r, was);
	probe_abandon(r);
	uv_timer_stop(&r->timer);
	floe__replica_close_idle(r);
	floe__endpoint_set_state(ep, r, REPLICA_DEAD);
	r->pending_closes++;
	uv_close((uv_handle_t *)&r->timer, on_replica_handle_closed);
	floe_proc_close(&r->proc, on_proc_closed);
	/* In-flight requests learn of the death from their sockets (EOF/RST): 502. */
	floe__endpoint_on_replica_gone(ep, r, failed, status);
	replica_free_if_unused(r);
}

static struct replica *replica_alloc(struct endpoint *ep)
{
	const struct floe_endpoint_config *cfg = ep->cfg;
	struct replica *r = xcalloc(1, sizeof(*r));
	r->ep = ep;
	r->seq = ++ep->next_seq;
	snprintf(r->id, sizeof(r->id), "%s-%u", cfg->name, r->seq);
	r->port = cfg->port;
	r->health_route = xstrdup(cfg->health_route);
	r->ready_kind = cfg->ready;
	r->start_timeout_ms = cfg->start_timeout_ms;
	r->stop_grace_ms = cfg->stop_grace_ms;
	r->kind = COLD_FRESH;
	floe_list_init(&r->idle);
	r->proc.data = r;
	r->proc.pidfd = -1;
	r->spawned_ns = floe_now_ns();
	return r;
}

/* Listed in its endpoint, with its timer: from here on it is freed through
 * the normal path (state DEAD, handles closed, no references). */
static void replica_list(struct replica *r, enum replica_state st)
{
	uv_timer_init(r->ep->act->loop, &r->timer);
	r->timer.data = r;
	floe_list_push(&r->ep->replicas, &r->link);
	floe__endpoint_set_state(r->ep, r, st);
}

static char *replica_log_path(struct replica *r, floe_error *err)
{
	struct floe_activator *a = r->ep->act;
	char *log_dir = xasprintf("%s/logs/%s", a->data_dir, r->ep->cfg->name);
	int rc = floe_mkdir_p(log_dir, 0750);
	if (rc < 0) {
		floe_error_set(err, rc, "cannot create log directory %s: %s", log_dir,
			       strerror(-rc));
		free(log_dir);
		return NULL;
	}
	char *log_path = xasprintf("%s/%s.log", log_dir, r->id);
	free(log_dir);
	return log_path;
}

static int replica_spawn(struct replica *r, floe_error *err)
{
	struct floe_activator *a = r->ep->act;
	const struct floe_endpoint_config *cfg = r->ep->cfg;
	char *log_path = replica_log_path(r, err);
	if (!log_path)
		return err->code;
	struct floe_proc_spec spec = {
		.argv = cfg->argv,
		.env = cfg->env,
		.n_env = cfg->n_env,
		.init_path = a->init_path,
		.log_path = log_path,
		.log_max_bytes = a->log_max_bytes,
	};
	int rc = floe_proc_spawn(a->loop, &r->proc, &spec, floe__replica_on_exit, err);
	free(log_path);
	r->proc.data = r;
	if (rc < 0)
		return floe_error_wrap(err, "start of replica %s failed", r->id);
	log_replica_info(cfg->name, r->id, "starting (pid %d): %s", (int)r->proc.pid, cfg->argv[0]);
	return 0;
}

struct replica *floe__replica_start(struct endpoint *ep, floe_error *err)
{
	struct replica *r = floe__snap_take_warm(ep);
	if (r)
		return r;
	r = replica_alloc(ep);
	if (floe__snap_restorable(ep)) {
		/* Asynchronous: floe__replica_restored or _restore_failed follow. */
		r->kind = COLD_RESTORE;
		r->restoring = true;
		replica_list(r, REPLICA_STARTING);
		floe__snap_restore(r);
		return r;
	}
	if (replica_spawn(r, err) < 0) {
		free(r->health_route);
		free(r);
		return NULL;
	}
	replica_list(r, REPLICA_STARTING);
	replica_schedule_probe(r);
	return r;
}

/* A replica that never got a process (its restore failed and so did the
 * fresh start after it): gone, as a failed start. */
static void replica_gone_unstarted(struct replica *r)
{
	struct endpoint *ep = r->ep;
	floe__endpoint_set_state(ep, r, REPLICA_DEAD);
	r->proc_closed = true;
	r->pending_closes++;
	uv_close((uv_handle_t *)&r->timer, on_replica_handle_closed);
	floe__endpoint_on_replica_gone(ep, r, true, 255 << 8);
	replica_free_if_unused(r);
}

void floe__replica_restored(struct replica *r, pid_t pid, const char *note)
{
	floe_error err;
	floe_error_clear(&err);
	r->restoring = false;
	if (floe_proc_attach(&r->proc, pid, &err) < 0) {
		log_replica_error(r->ep->cfg->name, r->id, "lost after its restore: %s", err.msg);
		replica_gone_unstarted(r);
		return;
	}
	r->attached_ms = floe_now_ms();
	floe_proc_log_note(&r->proc, note);
	if (r->state == REPLICA_STOPPING || r->ep->act->shutting_down || r->ep->removed) {
		/* Stopped while it was being restored (a pool replica is frozen:
		 * it would not act on the signal). */
		if (r->cg)
			floe_cgroup_thaw(r->cg, 1000, NULL);
		floe_proc_signal(&r->proc, SIGKILL);
		return;
	}
	if (r->pool)
		return; /* frozen in the pool until a cold request thaws it */
	log_replica_info(r->ep->cfg->name, r->id, "restored (pid %d)", (int)pid);
	replica_probe(r);
}

void floe__replica_restore_failed(struct replica *r)
{
	floe_error err;
	floe_error_clear(&err);
	r->restoring = false;
	if (r->pool || r->state != REPLICA_STARTING || r->ep->act->shutting_down ||
	    r->ep->removed) {
		replica_gone_unstarted(r);
		return;
	}
	/* The requests waiting for it are still held: start the engine fresh
	 * in the same replica. Its cold start then reports both. */
	r->kind = COLD_FRESH;
	if (replica_spawn(r, &err) < 0) {
		/* err names the replica ("start of replica chat-3 failed: ...") */
		log_ep_error(r->ep->cfg->name, "%s", err.msg);
		replica_gone_unstarted(r);
		return;
	}
	replica_schedule_probe(r);
}

/* Listed as WARM from the start, so the scaler never counts it as starting:
 * a pool replica serves no request until a cold start thaws it. */
struct replica *floe__replica_new_pooled(struct endpoint *ep)
{
	struct replica *r = replica_alloc(ep);
	r->kind = COLD_WARM_POOL;
	r->restoring = true;
	replica_list(r, REPLICA_WARM);
	return r;
}

void floe__replica_dump_done(struct replica *r)
{
	if (!r->stop_after_dump)
		return;
	r->stop_after_dump = false;
	replica_stop(r);
}

void floe__replica_probe_now(struct replica *r)
{
	replica_probe(r);
}

/* --- readiness ------------------------------------------------------------ */

static void on_probe_closed(uv_handle_t *h)
{
	struct probe *pr = container_of((uv_tcp_t *)h, struct probe, tcp);
	floe_http_parser_destroy(&pr->parser);
	free(pr);
}

static void replica_became_ready(struct replica *r)
{
	r->ready_ns = floe_now_ns();
	floe__endpoint_set_state(r->ep, r, REPLICA_READY);
	floe__endpoint_on_replica_ready(r->ep, r);
}

static void probe_finish(struct probe *pr, bool ok)
{
	if (pr->done)
		return;
	pr->done = true;
	struct replica *r = pr->r;
	uv_close((uv_handle_t *)&pr->tcp, on_probe_closed);
	if (!r)
		return;
	r->probe = NULL;
	uv_timer_stop(&r->timer);
	if (r->state != REPLICA_STARTING)
		return;
	if (ok)
		replica_became_ready(r);
	else
		replica_schedule_probe(r);
}

static int probe_on_head(void *ud, struct floe_http_msg *msg)
{
	struct probe *pr = ud;
	pr->ok = msg->status >= 200 && msg->status < 300;
	return 1; /* the status is all we need */
}

static const struct floe_http_parser_cbs probe_cbs = { .on_head = probe_on_head };

static void probe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[4096];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void probe_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct probe *pr = container_of((uv_tcp_t *)s, struct probe, tcp);
	if (nread < 0) {
		probe_finish(pr, false);
		return;
	}
	size_t consumed;
	enum floe_http_status st =
		floe_http_parser_execute(&pr->parser, buf->base, (size_t)nread, &consumed);
	if (st == FLOE_HTTP_ERROR) {
		probe_finish(pr, false);
		return;
	}
	if (pr->parser.msg.status != 0 && !pr->parser.in_head)
		probe_finish(pr, pr->ok);
}

static void probe_on_write(uv_write_t *w, int status)
{
	struct probe *pr = container_of(w, struct probe, write);
	if (status < 0)
		probe_finish(pr, false);
}

static void probe_on_connect(uv_connect_t *creq, int status)
{
	struct probe *pr = container_of(creq, struct probe, connect);
	if (pr->done)
		return;
	if (status < 0) {
		if (pr->r)
			pr->r->probe_refused = true; /* port closed: still loading (vLLM, TGI) */
		probe_finish(pr, false);
		return;
	}
	if (!pr->r || pr->r->ready_kind == FLOE_READY_TCP) {
		probe_finish(pr, true);
		return;
	}
	uv_buf_t b = uv_buf_init(pr->request, (unsigned)strlen(pr->request));
	if (uv_write(&pr->write, (uv_stream_t *)&pr->tcp, &b, 1, probe_on_write) != 0 ||
	    uv_read_start((uv_stream_t *)&pr->tcp, probe_alloc, probe_on_read) != 0)
		probe_finish(pr, false);
}

static void on_probe_timeout(uv_timer_t *t)
{
	struct replica *r = t->data;
	if (r->probe)
		probe_finish(r->probe, false);
}

static void replica_probe(struct replica *r)
{
	if (r->state != REPLICA_STARTING)
		return;
	uint64_t elapsed_ms = (floe_now_ns() - r->spawned_ns) / 1000000;
	if (elapsed_ms > r->start_timeout_ms) {
		log_replica_error(r->ep->cfg->name, r->id,
				  "not ready after %.1f s (start_timeout); stopping it",
				  (double)elapsed_ms / 1000.0);
		/* Counted as a failed start by the exit handler (state STARTING). */
		floe_proc_signal(&r->proc, SIGKILL);
		return;
	}
	int fd = floe_netns_socket(r->proc.netns_fd, AF_INET, SOCK_STREAM);
	if (fd < 0) {
		log_replica_warn(r->ep->cfg->name, r->id, "has no probe socket: %s", strerror(-fd));
		replica_schedule_probe(r);
		return;
	}
	struct probe *pr = xcalloc(1, sizeof(*pr));
	pr->r = r;
	snprintf(
		pr->request, sizeof(pr->request),
		"GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: floe-probe\r\nConnection: close\r\n\r\n",
		r->health_route);
	floe_http_parser_init(&pr->parser, HTTP_RESPONSE, &probe_cbs, pr, 64 * 1024, UINT64_MAX);
	uv_tcp_init(r->ep->act->loop, &pr->tcp);
	if (uv_tcp_open(&pr->tcp, fd) != 0) {
		close(fd);
		pr->done = true;
		uv_close((uv_handle_t *)&pr->tcp, on_probe_closed);
		replica_schedule_probe(r);
		return;
	}
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", r->port, &addr);
	r->probe = pr;
	r->probe_refused = false;
	if (uv_tcp_connect(&pr->connect, &pr->tcp, (struct sockaddr *)&addr, probe_on_connect) !=
	    0) {
		probe_finish(pr, false);
		return;
	}
	uv_timer_start(&r->timer, on_probe_timeout, PROBE_TIMEOUT_MS, 0);
}

static void on_probe_due(uv_timer_t *t)
{
	replica_probe(t->data);
}

static void replica_schedule_probe(struct replica *r)
{
	uint64_t elapsed_ms = (floe_now_ns() - r->spawned_ns) / 1000000;
	uint64_t div = r->probe_refused ? PROBE_REFUSED_DIV : PROBE_ANSWERED_DIV;
	uint64_t max = r->probe_refused ? PROBE_REFUSED_MAX_MS : PROBE_ANSWERED_MAX_MS;
	uint64_t delay = elapsed_ms / div;
	if (delay < PROBE_MIN_MS)
		delay = PROBE_MIN_MS;
	if (delay > max)
		delay = max;
	uv_timer_start(&r->timer, on_probe_due, delay, 0);
}

/* --- drain and stop ------------------------------------------------------- */

static void on_stop_grace(uv_timer_t *t)
{
	struct replica *r = t->data;
	log_replica_warn(r->ep->cfg->name, r->id, "ignored SIGTERM for %.1f s; killing it",
			 (double)r->stop_grace_ms / 1000.0);
	floe_proc_signal(&r->proc, SIGKILL);
}

static void replica_stop(struct replica *r)
{
	if (r->state == REPLICA_STOPPING || r->state == REPLICA_DEAD)
		return;
	if (r->dumping) {
		/* A SIGTERM sent now would wait, pending, in the frozen tree,
		 * and CRIU would dump it: every replica restored from that
		 * snapshot would stop at once. Stopped when the dump is done. */
		if (!r->stop_after_dump)
			log_replica_info(r->ep->cfg->name, r->id,
					 "stops once its snapshot is taken");
		r->stop_after_dump = true;
		return;
	}
	bool was_warm = r->state == REPLICA_WARM;
	probe_abandon(r);
	floe__endpoint_set_state(r->ep, r, REPLICA_STOPPING);
	floe__replica_close_idle(r);
	uv_timer_stop(&r->timer);
	if (r->restoring)
		return; /* killed as soon as the restore hands it over */
	if (was_warm) {
		/* Frozen tasks act on no signal, not even SIGKILL, until thawed;
		 * an idle pool replica has nothing to finish. */
		floe_error err;
		floe_error_clear(&err);
		if (r->cg && floe_cgroup_thaw(r->cg, 1000, &err) < 0)
			log_replica_warn(r->ep->cfg->name, r->id, "not thawed before its kill: %s",
					 err.msg);
		floe_proc_signal(&r->proc, SIGKILL);
		return;
	}
	if (floe_proc_signal(&r->proc, SIGTERM) == 0)
		uv_timer_start(&r->timer, on_stop_grace, r->stop_grace_ms, 0);
}

void floe__replica_drain(struct replica *r)
{
	if (r->state == REPLICA_STARTING || r->state == REPLICA_WARM) {
		replica_stop(r); /* nothing in flight on a replica that never served */
		return;
	}
	if (r->state == REPLICA_READY) {
		log_replica_info(r->ep->cfg->name, r->id, "draining (%u in flight)", r->in_flight);
		floe__endpoint_set_state(r->ep, r, REPLICA_DRAINING);
	}
	if (r->state == REPLICA_DRAINING && r->in_flight == 0)
		replica_stop(r);
}

void floe__replica_kill(struct replica *r)
{
	if (r->state == REPLICA_DEAD)
		return;
	if (r->state == REPLICA_WARM || r->restoring) {
		replica_stop(r);
		return;
	}
	floe_proc_signal(&r->proc, SIGKILL);
}
