/*
 * The registry of API-created endpoints (see registry.h): the state store
 * plus the Hugging Face translation. Every change is made to a copy of the
 * entry's fields first and saved; only a saved change is kept in memory.
 *
 * Status changes come often (every wake and every scale to zero), so
 * their saves leave the loop: the state is encoded on the loop, written
 * and fsynced on the thread pool, one write at a time, and changes made
 * meanwhile are coalesced into the next write. The API's own saves stay
 * synchronous (they answer only once saved). Every encode takes a number;
 * a write never replaces the file with an older encoding than the last
 * one written (write_lock and written_gen), so a slow pool write cannot
 * undo a create or delete saved after it was encoded.
 */
#define LOG_TAG "registry"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hf.h"
#include "log.h"
#include "registry.h"
#include "xalloc.h"

/* A status save on the thread pool. */
struct history_save {
	uv_work_t work;
	struct floe_registry *r;
	struct floe_buf bytes;
	uint64_t gen;
	int rc;
	floe_error err;
};

struct floe_registry;
static int save(struct floe_registry *r, floe_error *err);

struct floe_registry {
	char *data_dir;
	char *presets_dir, *bindir;
	struct floe_config_env env;
	struct floe_state state;
	/* Status history of the config file's endpoints: kept while floed
	 * runs, not saved (the file, not floed, owns those endpoints). */
	struct floe_state file_history;
	uv_loop_t *loop;
	bool dirty;                     /* status changes not yet written */
	struct history_save *in_flight; /* at most one write on the pool */
	uint64_t next_gen;              /* encodings, numbered from 1 */
	pthread_mutex_t write_lock;     /* one file write at a time... */
	uint64_t written_gen;           /* ... never older than this one */
	uint64_t save_errors;           /* failed status writes, for the log's rate */
};

int floe_registry_open(uv_loop_t *loop, const char *data_dir, const struct floe_config_env *env,
		       struct floe_registry **out, floe_error *err)
{
	struct floe_registry *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	pthread_mutex_init(&r->write_lock, NULL);
	floe_state_init(&r->file_history);
	r->data_dir = xstrdup(data_dir);
	r->presets_dir = xstrdup(env ? env->presets_dir : NULL);
	r->bindir = xstrdup(env ? env->bindir : NULL);
	r->env.presets_dir = r->presets_dir;
	r->env.bindir = r->bindir;
	floe_state_init(&r->state);
	bool set_aside = false;
	int rc = floe_state_load(data_dir, &r->state, &set_aside, err);
	if (rc < 0) {
		floe_registry_free(r);
		return floe_error_wrap(err, "endpoint state");
	}
	if (set_aside)
		log_error("endpoint state: %s; starting without API endpoints", err->msg);
	floe_error_clear(err);
	log_info("endpoint state: %zu endpoint(s) created through the API", r->state.n);
	*out = r;
	return 0;
}

void floe_registry_free(struct floe_registry *r)
{
	if (!r)
		return;
	if (r->dirty) {
		floe_error err;
		floe_error_clear(&err);
		if (save(r, &err) < 0)
			log_error("endpoint status history not saved: %s", err.msg);
	}
	floe_state_destroy(&r->state);
	floe_state_destroy(&r->file_history);
	pthread_mutex_destroy(&r->write_lock);
	free(r->data_dir);
	free(r->presets_dir);
	free(r->bindir);
	free(r);
}

static json_t *entry_body(const struct floe_state_entry *e)
{
	return json_loads(e->spec_json, 0, NULL);
}

/* Translate e; NULL (logged) when it no longer does. */
static struct floe_endpoint_config *entry_config(struct floe_registry *r,
						 const struct floe_state_entry *e)
{
	json_t *body = entry_body(e);
	struct floe_endpoint_config *cfg = NULL;
	floe_error err;
	floe_error_clear(&err);
	if (!body)
		log_ep_error(e->name,
			     "its stored definition (namespace %s) is not JSON; not served", e->ns);
	else if (floe_hf_to_config(body, e->ns, &r->env, &cfg, &err) < 0)
		log_ep_error(e->name, "not served (namespace %s): %s", e->ns, err.msg);
	json_decref(body);
	return cfg;
}

struct floe_config *floe_registry_compose(struct floe_registry *r, const struct floe_config *file)
{
	struct floe_config *c = xcalloc(1, sizeof(*c));
	for (size_t i = 0; file && i < file->n_endpoints; i++)
		floe_config_add_endpoint(c, &file->endpoints[i]);
	for (size_t i = 0; i < r->state.n; i++) {
		const struct floe_state_entry *e = r->state.entries[i];
		struct floe_endpoint_config *ep = entry_config(r, e);
		if (ep && floe_config_add_endpoint(c, ep) == -EEXIST)
			log_ep_error(e->name,
				     "the config file now defines an endpoint of that name; the "
				     "file's is served, not the API's (namespace %s)",
				     e->ns);
		floe_endpoint_config_free(ep);
	}
	return c;
}

void floe_registry_settle(struct floe_registry *r, struct floe_activator *a)
{
	for (size_t i = 0; i < r->state.n; i++) {
		const struct floe_state_entry *e = r->state.entries[i];
		const struct floe_endpoint_config *cfg = floe_activator_endpoint_config(a, e->name);
		if (cfg && cfg->ns && strcmp(cfg->ns, e->ns) == 0 &&
		    e->desired == FLOE_STATE_PAUSED)
			floe_activator_pause(a, e->name);
	}
}

const struct floe_state_entry *floe_registry_entry(struct floe_registry *r, const char *ns,
						   const char *name)
{
	return floe_state_find(&r->state, ns, name);
}

/* Write bytes (encoding number gen) unless a newer encoding is on disk. */
static int write_ordered(struct floe_registry *r, const struct floe_buf *bytes, uint64_t gen,
			 floe_error *err)
{
	int rc = 0;
	pthread_mutex_lock(&r->write_lock);
	if (gen > r->written_gen) {
		rc = floe_state_write(r->data_dir, bytes->data, bytes->len, err);
		if (rc == 0)
			r->written_gen = gen;
	}
	pthread_mutex_unlock(&r->write_lock);
	return rc;
}

/* Save the whole state now, on this thread (the API's changes). */
static int save(struct floe_registry *r, floe_error *err)
{
	struct floe_buf bytes = FLOE_BUF_INIT;
	int rc = floe_state_encode(&r->state, &bytes, err);
	if (rc == 0) {
		/* What is pending is in this encoding too. */
		bool was_dirty = r->dirty;
		r->dirty = false;
		rc = write_ordered(r, &bytes, ++r->next_gen, err);
		if (rc < 0)
			r->dirty = was_dirty;
	}
	floe_buf_destroy(&bytes);
	if (rc < 0)
		floe_error_wrap(err, "saving the endpoint state");
	return rc;
}

static void history_save_start(struct floe_registry *r);

static void history_save_run(uv_work_t *w)
{
	struct history_save *s = container_of(w, struct history_save, work);
	s->rc = write_ordered(s->r, &s->bytes, s->gen, &s->err);
}

static void history_save_done(uv_work_t *w, int status)
{
	struct history_save *s = container_of(w, struct history_save, work);
	struct floe_registry *r = s->r;
	r->in_flight = NULL;
	if (status < 0 || s->rc < 0) {
		/* Kept dirty: the next change writes it all again. The first
		 * failure and then every 100th is logged. */
		r->dirty = true;
		if (r->save_errors++ % 100 == 0)
			log_error("endpoint status history not saved: %s",
				  status < 0 ? uv_strerror(status) : s->err.msg);
	}
	floe_buf_destroy(&s->bytes);
	free(s);
	if (r->dirty)
		history_save_start(r);
}

/* Write the state on the thread pool, unless a write is under way (its
 * completion starts the next one). */
static void history_save_start(struct floe_registry *r)
{
	if (r->in_flight || !r->dirty || !r->loop)
		return;
	struct history_save *s = xcalloc(1, sizeof(*s));
	s->r = r;
	floe_buf_init(&s->bytes);
	floe_error_clear(&s->err);
	if (floe_state_encode(&r->state, &s->bytes, &s->err) < 0) {
		log_error("endpoint status history not saved: %s", s->err.msg);
		floe_buf_destroy(&s->bytes);
		free(s);
		return;
	}
	s->gen = ++r->next_gen;
	r->dirty = false;
	r->in_flight = s;
	int rc = uv_queue_work(r->loop, &s->work, history_save_run, history_save_done);
	if (rc < 0) {
		r->in_flight = NULL;
		r->dirty = true;
		log_error("endpoint status history not saved: %s", uv_strerror(rc));
		floe_buf_destroy(&s->bytes);
		free(s);
	}
}

void floe_registry_on_status(void *arg, const struct floe_endpoint_config *cfg,
			     const struct floe_endpoint_status *st)
{
	struct floe_registry *r = arg;
	const char *ns = cfg->ns ? cfg->ns : "default";
	struct floe_state_entry *e = floe_state_find(&r->state, ns, cfg->name);
	bool api = e != NULL;
	if (!e) {
		floe_error err;
		floe_error_clear(&err);
		e = floe_state_put(&r->file_history, ns, cfg->name, &err);
		if (!e)
			return;
	}
	floe_state_record(e, floe_wall_ms(), floe_hf_state_name(st->state), st->message);
	if (api) {
		r->dirty = true;
		history_save_start(r);
	}
}

const struct floe_state_entry *floe_registry_history(struct floe_registry *r, const char *ns,
						     const char *name)
{
	const struct floe_state_entry *e = floe_state_find(&r->state, ns, name);
	return e ? e : floe_state_find(&r->file_history, ns, name);
}

static int set_spec(struct floe_state_entry *e, const json_t *body, floe_error *err)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = floe_state_entry_set_spec(e, text, strlen(text), err);
	free(text);
	return rc;
}

int floe_registry_create(struct floe_registry *r, const char *ns, const json_t *body,
			 const struct floe_config *file, floe_error *err)
{
	struct floe_endpoint_config *cfg = NULL;
	int rc = floe_hf_to_config(body, ns, &r->env, &cfg, err);
	if (rc < 0)
		return rc;
	/* Names route requests (/endpoints/NAME), so they are unique across
	 * namespaces and sources. */
	bool taken = floe_config_endpoint(file, cfg->name) != NULL;
	for (size_t i = 0; !taken && i < r->state.n; i++)
		taken = strcmp(r->state.entries[i]->name, cfg->name) == 0;
	if (taken) {
		rc = floe_error_set(err, -EEXIST, "name: an endpoint '%s' exists already",
				    cfg->name);
		floe_endpoint_config_free(cfg);
		return rc;
	}
	struct floe_state_entry *e = floe_state_put(&r->state, ns, cfg->name, err);
	floe_endpoint_config_free(cfg);
	if (!e)
		return err->code;
	uint64_t now = floe_wall_ms();
	e->created_at_ms = e->updated_at_ms = now;
	e->desired = FLOE_STATE_RUNNING;
	floe_state_record(e, now, FLOE_HF_STATE_PENDING, "created");
	char ns_copy[64], name_copy[64];
	snprintf(ns_copy, sizeof(ns_copy), "%s", e->ns);
	snprintf(name_copy, sizeof(name_copy), "%s", e->name);
	if ((rc = set_spec(e, body, err)) < 0 || (rc = save(r, err)) < 0) {
		floe_state_remove(&r->state, ns_copy, name_copy);
		return rc;
	}
	log_ep_info(name_copy, "created through the API (namespace %s)", ns_copy);
	return 0;
}

int floe_registry_update(struct floe_registry *r, const char *ns, const char *name,
			 const json_t *patch, floe_error *err)
{
	struct floe_state_entry *e = floe_state_find(&r->state, ns, name);
	if (!e)
		return floe_error_set(err, -ENOENT, "no endpoint '%s' in namespace '%s'", name, ns);
	json_t *old = entry_body(e);
	json_t *merged = floe_hf_merge(old ? old : json_object(), patch);
	json_decref(old);
	struct floe_endpoint_config *cfg = NULL;
	int rc = floe_hf_to_config(merged, ns, &r->env, &cfg, err);
	if (rc == 0 && strcmp(cfg->name, name) != 0)
		rc = floe_error_set(err, -EPERM, "name: an endpoint cannot be renamed (%s -> %s)",
				    name, cfg->name);
	floe_endpoint_config_free(cfg);
	if (rc < 0) {
		json_decref(merged);
		return rc;
	}
	char *before = xstrdup(e->spec_json);
	uint64_t before_ms = e->updated_at_ms;
	rc = set_spec(e, merged, err);
	json_decref(merged);
	if (rc == 0) {
		e->updated_at_ms = floe_wall_ms();
		rc = save(r, err);
	}
	if (rc < 0) {
		floe_state_entry_set_spec(e, before, strlen(before), err);
		e->updated_at_ms = before_ms;
	} else {
		/* Its state history shows "updating" when running replicas are
		 * replaced (the activator reports it). */
		log_ep_info(name, "updated through the API (namespace %s)", ns);
	}
	free(before);
	return rc;
}

int floe_registry_delete(struct floe_registry *r, const char *ns, const char *name, floe_error *err)
{
	struct floe_state_entry *e = floe_state_find(&r->state, ns, name);
	if (!e)
		return floe_error_set(err, -ENOENT, "no endpoint '%s' in namespace '%s'", name, ns);
	/* Saved without it first; only then is it forgotten. */
	struct floe_state rest = { .entries = xcalloc(r->state.n + 1, sizeof(*rest.entries)) };
	for (size_t i = 0; i < r->state.n; i++)
		if (r->state.entries[i] != e)
			rest.entries[rest.n++] = r->state.entries[i];
	struct floe_buf bytes = FLOE_BUF_INIT;
	int rc = floe_state_encode(&rest, &bytes, err);
	if (rc == 0)
		rc = write_ordered(r, &bytes, ++r->next_gen, err);
	floe_buf_destroy(&bytes);
	free(rest.entries);
	if (rc < 0)
		return floe_error_wrap(err, "saving the endpoint state");
	floe_state_remove(&r->state, ns, name);
	log_ep_info(name, "deleted through the API (namespace %s)", ns);
	return 0;
}

int floe_registry_set_desired(struct floe_registry *r, const char *ns, const char *name,
			      enum floe_state_desired desired, floe_error *err)
{
	struct floe_state_entry *e = floe_state_find(&r->state, ns, name);
	if (!e)
		return floe_error_set(err, -ENOENT, "no endpoint '%s' in namespace '%s'", name, ns);
	if (e->desired == desired)
		return 0;
	enum floe_state_desired before = e->desired;
	e->desired = desired;
	int rc = save(r, err);
	if (rc < 0) {
		e->desired = before;
		return rc;
	}
	return 0; /* the activator reports the state it leads to, for the history */
}
