/*
 * The registry of API-created endpoints (see registry.h): the state store
 * plus the Hugging Face translation. Every change is made to a copy of the
 * entry's fields first and saved; only a saved change is kept in memory.
 */
#define LOG_TAG "registry"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hf.h"
#include "log.h"
#include "registry.h"
#include "xalloc.h"

struct floe_registry {
	char *data_dir;
	char *presets_dir, *bindir;
	struct floe_config_env env;
	struct floe_state state;
};

int floe_registry_open(const char *data_dir, const struct floe_config_env *env,
		       struct floe_registry **out, floe_error *err)
{
	struct floe_registry *r = xcalloc(1, sizeof(*r));
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
	floe_state_destroy(&r->state);
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
		log_error("%s/%s: its stored definition is not JSON; not served", e->ns, e->name);
	else if (floe_hf_to_config(body, e->ns, &r->env, &cfg, &err) < 0)
		log_error("%s/%s: not served: %s", e->ns, e->name, err.msg);
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
			log_error("%s/%s: the config file now defines an endpoint of that name; "
				  "the file's is served",
				  e->ns, e->name);
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

static int save(struct floe_registry *r, floe_error *err)
{
	int rc = floe_state_save(r->data_dir, &r->state, err);
	if (rc < 0)
		floe_error_wrap(err, "saving the endpoint state");
	return rc;
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
	log_info("%s/%s: created through the API", ns_copy, name_copy);
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
		floe_state_record(e, e->updated_at_ms, FLOE_HF_STATE_UPDATING, "updated");
		log_info("%s/%s: updated through the API", ns, name);
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
	int rc = floe_state_save(r->data_dir, &rest, err);
	free(rest.entries);
	if (rc < 0)
		return floe_error_wrap(err, "saving the endpoint state");
	floe_state_remove(&r->state, ns, name);
	log_info("%s/%s: deleted through the API", ns, name);
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
	floe_state_record(e, floe_wall_ms(), floe_state_desired_name(desired),
			  "asked through the API");
	return 0;
}
