/*
 * Usage recording (see usage.h). The loop thread builds records as replicas
 * change state and answer; once per commit interval it hands the round's
 * records to the writer thread, which appends them and fsyncs once (group
 * commit). The writer owns the ledger; the two threads share only the
 * hand-over queue (under a mutex) and a few counters (atomics) that the
 * loop copies into /metrics.
 */
#define LOG_TAG "usage"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "host.h"
#include "ledger.h"
#include "list.h"
#include "log.h"
#include "record.h"
#include "usage.h"
#include "xalloc.h"

#define MINUTE_MS UINT64_C(60000)
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define FINAL_ATTEMPTS 5 /* commits tried at exit before giving up */

/* One record on its way to the ledger. */
struct urec {
	struct urec *next;
	uint64_t minute;
	uint32_t seq;
	uint32_t len;
	char *replica;
	unsigned char payload[];
};

struct rec_list {
	struct urec *head, **tail;
	size_t n;
};

struct floe_usage {
	uv_loop_t *loop;
	char *dir;
	char instance[9];
	char tick_name[10]; /* "@" + instance: the key of tick records */
	uint32_t tick_seq;
	struct floe_billing_config billing; /* own copy */
	char *gpu_model;                    /* instance type of GPU replicas without one */
	uint64_t last_ms;                   /* records never go back in time */
	struct floe_list replicas;          /* live struct floe_usage_replica */
	size_t n_live;
	struct rec_list round; /* built since the last hand-over */
	uv_timer_t timer;
	bool closed;
	/* metrics, and what they last showed of the writer's counters */
	struct floe_metric *m_errors, *m_records, *m_pending, *m_last_commit;
	uint64_t shown_errors, shown_records;
	/* the writer thread */
	floe_ledger *lg;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct rec_list queue; /* handed over, not yet taken (under mu) */
	bool quit;             /* under mu */
	_Atomic uint64_t errors, committed, pending, last_commit_ms;
};

struct floe_usage_replica {
	struct floe_list link; /* in u->replicas */
	struct floe_usage *u;
	uint32_t seq;
	enum floe_meter_state state;
	uint64_t counts_minute; /* minute of counts[], UINT64_MAX: none */
	uint32_t counts[FLOE_METER_NSTATES][5];
	char name[FLOE_LEDGER_MAX_REPLICA + 1];
};

static void list_init(struct rec_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
	l->n = 0;
}

static void list_append(struct rec_list *l, struct rec_list *more)
{
	if (!more->head)
		return;
	*l->tail = more->head;
	l->tail = more->tail;
	l->n += more->n;
	list_init(more);
}

static void list_free(struct rec_list *l)
{
	while (l->head) {
		struct urec *r = l->head;
		l->head = r->next;
		free(r->replica);
		free(r);
	}
	list_init(l);
}

/* Wall clock in ms (records are billed in UTC minutes), made monotonic:
 * a clock stepped back by NTP must not put a replica's events out of order. */
static uint64_t wall_ms(struct floe_usage *u)
{
	uint64_t ms = floe_wall_ms();
	if (ms < u->last_ms)
		ms = u->last_ms;
	u->last_ms = ms;
	return ms;
}

/* Queue one record for the next commit. */
static void emit(struct floe_usage *u, const char *replica, uint32_t seq,
		 const struct floe_record *rec)
{
	struct floe_buf b = FLOE_BUF_INIT;
	if (floe_record_encode(rec, &b) < 0) {
		/* Only an over-long string can fail; the config checks them. */
		log_error("%s: usage record not encodable; dropped", replica);
		floe_buf_destroy(&b);
		return;
	}
	struct urec *r = xmalloc(sizeof(*r) + b.len);
	r->next = NULL;
	r->minute = rec->t_ms / MINUTE_MS;
	r->seq = seq;
	r->len = (uint32_t)b.len;
	r->replica = xstrdup(replica);
	memcpy(r->payload, b.data, b.len);
	floe_buf_destroy(&b);
	*u->round.tail = r;
	u->round.tail = &r->next;
	u->round.n++;
}

/* --- the writer thread ---------------------------------------------------- */

/* Append every record of l and commit. 0, or -errno of the first failure
 * (the ledger then forgets the batch: all of it is appended again). */
static int write_batch(floe_ledger *lg, const struct rec_list *l)
{
	for (const struct urec *r = l->head; r; r = r->next) {
		floe_ledger_key key = { .replica = r->replica, .minute = r->minute, .seq = r->seq };
		int rc = floe_ledger_append(lg, &key, r->payload, r->len, NULL);
		if (rc < 0)
			return rc;
	}
	return floe_ledger_commit(lg);
}

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void writer_main(void *arg)
{
	struct floe_usage *u = arg;
	struct rec_list pending;
	list_init(&pending);
	uint64_t retry_ms = 0, retry_at = 0;
	int final_attempts = 0;
	bool failing = false;
	for (;;) {
		uv_mutex_lock(&u->mu);
		for (;;) {
			if (u->queue.head || u->quit)
				break;
			if (pending.head) {
				uint64_t now = mono_ms();
				if (now >= retry_at)
					break;
				uv_cond_timedwait(&u->cv, &u->mu, (retry_at - now) * 1000000);
			} else {
				uv_cond_wait(&u->cv, &u->mu);
			}
		}
		list_append(&pending, &u->queue);
		bool quit = u->quit;
		uv_mutex_unlock(&u->mu);

		if (pending.head && (!failing || quit || mono_ms() >= retry_at)) {
			int rc = write_batch(u->lg, &pending);
			if (rc == 0) {
				atomic_fetch_add(&u->committed, pending.n);
				atomic_store(&u->last_commit_ms, floe_wall_ms());
				if (failing)
					log_info(
						"ledger writes work again; %zu usage records stored",
						pending.n);
				list_free(&pending);
				failing = false;
				retry_ms = 0;
			} else {
				atomic_fetch_add(&u->errors, 1);
				retry_ms = retry_ms ? retry_ms * 2 : RETRY_FIRST_MS;
				if (retry_ms > RETRY_MAX_MS)
					retry_ms = RETRY_MAX_MS;
				retry_at = mono_ms() + retry_ms;
				/* One line when it starts failing, then one per retry at
				 * the longest backoff: a full disk must not flood the log. */
				if (!failing || retry_ms == RETRY_MAX_MS)
					log_error(
						"ledger %s: %s; %zu usage records kept in memory, "
						"retrying in %" PRIu64 " s",
						u->dir, strerror(-rc), pending.n, retry_ms / 1000);
				failing = true;
				if (quit && ++final_attempts >= FINAL_ATTEMPTS) {
					log_error("ledger %s: giving up at exit: %zu usage records "
						  "not stored",
						  u->dir, pending.n);
					list_free(&pending);
				} else if (quit) {
					uv_sleep(100); /* at exit nobody waits for the backoff */
				}
			}
		}
		atomic_store(&u->pending, pending.n);
		if (quit && !pending.head) {
			uv_mutex_lock(&u->mu);
			bool more = u->queue.head != NULL;
			uv_mutex_unlock(&u->mu);
			if (!more)
				return;
		}
	}
}

/* --- the loop side -------------------------------------------------------- */

/* Queue the answer counts of the replica's last minute, if any. */
static void flush_answers(struct floe_usage_replica *ur, uint64_t t_ms)
{
	if (ur->counts_minute == UINT64_MAX)
		return;
	struct floe_record rec = {
		.kind = FLOE_RECORD_ANSWERS,
		.t_ms = t_ms,
		.minute = ur->counts_minute,
	};
	memcpy(rec.requests, ur->counts, sizeof(rec.requests));
	emit(ur->u, ur->name, ++ur->seq, &rec);
	memset(ur->counts, 0, sizeof(ur->counts));
	ur->counts_minute = UINT64_MAX;
}

static void metrics_update(struct floe_usage *u)
{
	uint64_t errors = atomic_load(&u->errors), records = atomic_load(&u->committed);
	floe_metric_add(u->m_errors, (double)(errors - u->shown_errors));
	floe_metric_add(u->m_records, (double)(records - u->shown_records));
	u->shown_errors = errors;
	u->shown_records = records;
	floe_metric_set(u->m_pending, (double)atomic_load(&u->pending) + (double)u->round.n);
	floe_metric_set(u->m_last_commit, (double)atomic_load(&u->last_commit_ms) / 1000.0);
}

/* Hand this round's records to the writer. */
static void hand_over(struct floe_usage *u)
{
	if (!u->round.head)
		return;
	uv_mutex_lock(&u->mu);
	list_append(&u->queue, &u->round);
	uv_cond_signal(&u->cv);
	uv_mutex_unlock(&u->mu);
}

static void on_tick(uv_timer_t *t)
{
	struct floe_usage *u = t->data;
	uint64_t now = wall_ms(u);
	uint64_t minute = now / MINUTE_MS;
	struct floe_list *pos;
	floe_list_for_each(pos, &u->replicas) {
		struct floe_usage_replica *ur = container_of(pos, struct floe_usage_replica, link);
		if (ur->counts_minute != UINT64_MAX && ur->counts_minute < minute)
			flush_answers(ur, now);
	}
	/* Proof of life: without it, a crash would leave the export to guess
	 * when this instance's replicas ended. */
	if (!u->round.head && u->n_live > 0) {
		struct floe_record rec = { .kind = FLOE_RECORD_TICK, .t_ms = now };
		rec.instance = (struct floe_str){ u->instance, (uint32_t)strlen(u->instance) };
		emit(u, u->tick_name, ++u->tick_seq, &rec);
	}
	hand_over(u);
	metrics_update(u);
}

static void billing_copy(struct floe_billing_config *dst, const struct floe_billing_config *src)
{
	dst->currency = xstrdup(src->currency ? src->currency : "USD");
	dst->round_second = src->round_second;
	dst->commit_interval_ms = src->commit_interval_ms ? src->commit_interval_ms : 1000;
	dst->max_export_range_ms = src->max_export_range_ms;
	dst->n_prices = src->n_prices;
	dst->prices = xcalloc(src->n_prices ? src->n_prices : 1, sizeof(*dst->prices));
	for (size_t i = 0; i < src->n_prices; i++) {
		dst->prices[i] = src->prices[i];
		dst->prices[i].instance_type = xstrdup(src->prices[i].instance_type);
	}
}

static void billing_destroy(struct floe_billing_config *b)
{
	free(b->currency);
	for (size_t i = 0; i < b->n_prices; i++)
		free(b->prices[i].instance_type);
	free(b->prices);
	memset(b, 0, sizeof(*b));
}

/* The instance type of the host's first GPU, or "gpu" when none can be read. */
static char *host_gpu_model(void)
{
	struct floe_host h;
	floe_host_probe(&h, "/proc");
	char *model = xstrdup(h.n_gpus ? h.gpus[0].instance_type : "gpu");
	floe_host_free(&h);
	return model;
}

static void instance_id(char out[9])
{
	uint32_t x = 0;
	if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	}
	snprintf(out, 9, "%08" PRIx32, x);
}

static void metrics_register(struct floe_usage *u, struct floe_metrics *m)
{
	static const char *const none[] = { NULL };
	u->m_errors = floe_metric_get(
		floe_metrics_family(m, FLOE_COUNTER, "floe_ledger_errors_total",
				    "Failed usage-ledger writes or fsyncs (each retried).", none,
				    NULL, 0),
		none);
	u->m_records = floe_metric_get(
		floe_metrics_family(m, FLOE_COUNTER, "floe_ledger_records_total",
				    "Usage records committed to the ledger.", none, NULL, 0),
		none);
	u->m_pending = floe_metric_get(
		floe_metrics_family(m, FLOE_GAUGE, "floe_ledger_pending_records",
				    "Usage records not yet committed.", none, NULL, 0),
		none);
	u->m_last_commit = floe_metric_get(
		floe_metrics_family(m, FLOE_GAUGE, "floe_ledger_last_commit_timestamp_seconds",
				    "Unix time of the last successful ledger commit.", none, NULL,
				    0),
		none);
}

int floe_usage_open(uv_loop_t *loop, const char *data_dir, struct floe_metrics *metrics,
		    const struct floe_billing_config *billing, struct floe_usage **out,
		    floe_error *err)
{
	struct floe_usage *u = xcalloc(1, sizeof(*u));
	u->loop = loop;
	u->dir = xasprintf("%s/ledger", data_dir);
	floe_ledger_reader rec;
	memset(&rec, 0, sizeof(rec));
	floe_ledger_options opts = { .dir = u->dir };
	int rc = floe_ledger_open(&opts, &u->lg, &rec, err);
	if (rc < 0) {
		floe_error_wrap(err, "usage ledger");
		free(u->dir);
		free(u);
		return rc;
	}
	if (rec.torn_tail)
		log_warn("ledger: %s ended in a partial record at offset %" PRIu64 " (%" PRIu64
			 " bytes, never committed: floed stopped mid-write); truncated",
			 rec.tail_file, rec.tail_offset, rec.tail_bytes);
	floe_ledger_reader_destroy(&rec);
	instance_id(u->instance);
	snprintf(u->tick_name, sizeof(u->tick_name), "@%s", u->instance);
	billing_copy(&u->billing, billing);
	floe_list_init(&u->replicas);
	list_init(&u->round);
	list_init(&u->queue);
	metrics_register(u, metrics);
	uv_mutex_init(&u->mu);
	uv_cond_init(&u->cv);
	rc = uv_thread_create(&u->thread, writer_main, u);
	if (rc < 0) {
		uv_cond_destroy(&u->cv);
		uv_mutex_destroy(&u->mu);
		floe_ledger_close(u->lg);
		billing_destroy(&u->billing);
		free(u->dir);
		free(u);
		return floe_error_set(err, rc, "usage ledger: writer thread: %s", uv_strerror(rc));
	}
	uv_timer_init(loop, &u->timer);
	u->timer.data = u;
	uv_timer_start(&u->timer, on_tick, u->billing.commit_interval_ms,
		       u->billing.commit_interval_ms);
	/* Recording must not keep the loop alive once everything else is done. */
	uv_unref((uv_handle_t *)&u->timer);
	if (u->billing.n_prices == 0)
		log_info("billing: no prices configured; usage is recorded at price 0");
	log_info("usage ledger %s, instance %s, commit every %" PRIu64 " ms", u->dir, u->instance,
		 u->billing.commit_interval_ms);
	*out = u;
	return 0;
}

void floe_usage_configure(struct floe_usage *u, const struct floe_billing_config *billing)
{
	uint64_t old = u->billing.commit_interval_ms;
	billing_destroy(&u->billing);
	billing_copy(&u->billing, billing);
	if (old != u->billing.commit_interval_ms && !u->closed)
		uv_timer_start(&u->timer, on_tick, u->billing.commit_interval_ms,
			       u->billing.commit_interval_ms);
}

const char *floe_usage_instance(const struct floe_usage *u)
{
	return u->instance;
}

const char *floe_usage_dir(const struct floe_usage *u)
{
	return u->dir;
}

uint64_t floe_usage_max_export_range(const struct floe_usage *u)
{
	return u->billing.max_export_range_ms;
}

static struct floe_str fstr(const char *s)
{
	return (struct floe_str){ s, (uint32_t)strlen(s) };
}

struct floe_usage_replica *floe_usage_replica_start(struct floe_usage *u,
						    const struct floe_endpoint_config *ep,
						    const char *replica_id,
						    enum floe_meter_state state)
{
	struct floe_usage_replica *ur = xcalloc(1, sizeof(*ur));
	ur->u = u;
	ur->state = state;
	ur->counts_minute = UINT64_MAX;
	snprintf(ur->name, sizeof(ur->name), "%s@%s", replica_id, u->instance);
	floe_list_push(&u->replicas, &ur->link);
	if (u->closed) {
		/* floed is past its last commit: an inert handle, freed at the end. */
		ur->state = FLOE_METER_STOPPED;
		return ur;
	}
	u->n_live++;

	const char *itype = ep->resources.instance_type;
	if (!itype && ep->resources.gpus > 0) {
		if (!u->gpu_model)
			u->gpu_model = host_gpu_model();
		itype = u->gpu_model;
	}
	if (!itype)
		itype = "cpu";
	struct floe_record rec = {
		.kind = FLOE_RECORD_START,
		.t_ms = wall_ms(u),
		.instance = fstr(u->instance),
		.ns = fstr(ep->ns ? ep->ns : "default"),
		.endpoint = fstr(ep->name),
		.instance_type = fstr(itype),
		.currency = fstr(u->billing.currency),
		.gpus = ep->resources.gpus,
		.rounding = u->billing.round_second ? FLOE_ROUND_SECOND : FLOE_ROUND_MINUTE,
		.state = state,
	};
	const struct floe_price *price = floe_billing_price(&u->billing, itype);
	if (price)
		memcpy(rec.prices.per_hour_micro, price->per_hour_micro,
		       sizeof(rec.prices.per_hour_micro));
	else if (u->billing.n_prices > 0)
		log_replica_warn(ep->name, replica_id,
				 "billing: no price for instance type '%s'; billed at 0", itype);
	emit(u, ur->name, ++ur->seq, &rec);
	return ur;
}

void floe_usage_replica_state(struct floe_usage_replica *ur, enum floe_meter_state state)
{
	if (state == ur->state || ur->u->closed)
		return;
	struct floe_usage *u = ur->u;
	uint64_t now = wall_ms(u);
	/* The counts belong to the state they were made in: close them first. */
	if (state == FLOE_METER_STOPPED)
		flush_answers(ur, now);
	struct floe_record rec = { .kind = FLOE_RECORD_STATE, .t_ms = now, .state = state };
	emit(u, ur->name, ++ur->seq, &rec);
	ur->state = state;
	if (state == FLOE_METER_STOPPED) {
		floe_list_remove(&ur->link);
		u->n_live--;
		free(ur);
	}
}

void floe_usage_replica_answer(struct floe_usage_replica *ur, int status)
{
	int cls = status / 100;
	if (cls < 1 || cls > 5 || ur->state == FLOE_METER_STOPPED || ur->u->closed)
		return;
	uint64_t now = wall_ms(ur->u);
	uint64_t minute = now / MINUTE_MS;
	if (ur->counts_minute != minute) {
		flush_answers(ur, now);
		ur->counts_minute = minute;
	}
	ur->counts[ur->state][cls - 1]++;
}

static void on_timer_closed(uv_handle_t *h)
{
	(void)h;
}

void floe_usage_close(struct floe_usage *u)
{
	if (u->closed)
		return;
	/* Replicas still listed here were never reported stopped (floed is
	 * exiting without waiting for them, after a second signal): end them
	 * now. Their handles stay valid, inert, until floe_usage_free: the
	 * activator may still report on them while the loop winds down. */
	uint64_t now = wall_ms(u);
	struct floe_list *pos;
	floe_list_for_each(pos, &u->replicas) {
		struct floe_usage_replica *ur = container_of(pos, struct floe_usage_replica, link);
		if (ur->state == FLOE_METER_STOPPED)
			continue;
		flush_answers(ur, now);
		struct floe_record rec = { .kind = FLOE_RECORD_STATE,
					   .t_ms = now,
					   .state = FLOE_METER_STOPPED };
		emit(u, ur->name, ++ur->seq, &rec);
		ur->state = FLOE_METER_STOPPED;
		u->n_live--;
	}
	u->closed = true;
	hand_over(u);
	uv_timer_stop(&u->timer);
	uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

void floe_usage_free(struct floe_usage *u)
{
	if (!u)
		return;
	floe_usage_close(u);
	uv_mutex_lock(&u->mu);
	u->quit = true;
	uv_cond_signal(&u->cv);
	uv_mutex_unlock(&u->mu);
	uv_thread_join(&u->thread);
	list_free(&u->queue);
	while (!floe_list_empty(&u->replicas)) {
		struct floe_usage_replica *ur =
			container_of(u->replicas.next, struct floe_usage_replica, link);
		floe_list_remove(&ur->link);
		free(ur);
	}
	floe_ledger_close(u->lg);
	uv_cond_destroy(&u->cv);
	uv_mutex_destroy(&u->mu);
	billing_destroy(&u->billing);
	free(u->gpu_model);
	free(u->dir);
	free(u);
}
