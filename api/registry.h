/*
 * Endpoints created through the API (issue 5): their Hugging Face bodies
 * live in the state store (api/state.h, DATA_DIR/state), and floed serves
 * them beside the config file's. The file's endpoints belong to the file:
 * the registry never changes them, and an API name may not take one.
 *
 * floed composes what it serves as the file's endpoints plus the
 * registry's (floe_registry_compose) at start, on reload and after every
 * change here; then floe_registry_settle re-applies what users asked
 * (paused endpoints stay paused across restarts).
 *
 * Changes are saved before they are served: a create that cannot be
 * written to disk is refused (500) and not served. Those saves fsync on
 * the caller's thread (the state file is small and API changes are rare).
 *
 * Each endpoint's status history (its state changes, as the activator
 * reports them through floe_registry_on_status) is kept too: saved with
 * an API endpoint, written on the thread pool and coalesced, since states
 * change at every wake; kept in memory only for the config file's.
 */
#ifndef FLOE_REGISTRY_H
#define FLOE_REGISTRY_H

#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

#include "activator.h"
#include "config.h"
#include "error.h"
#include "state.h"

struct floe_registry;

/**
 * Load the store of data_dir (a damaged file is set aside and logged; the
 * registry starts empty). env: where presets are (copied); loop: where
 * status saves are queued to the thread pool (NULL: they wait for the next
 * API save, or floe_registry_free). Returns 0 or -errno with err set.
 */
int floe_registry_open(uv_loop_t *loop, const char *data_dir, const struct floe_config_env *env,
		       struct floe_registry **out, floe_error *err);
/** Free; status changes not yet written are saved first (on this thread). */
void floe_registry_free(struct floe_registry *r);

/**
 * The activator's on_status (arg: the registry): record the change in the
 * endpoint's history, and queue a save for an API endpoint.
 */
void floe_registry_on_status(void *arg, const struct floe_endpoint_config *cfg,
			     const struct floe_endpoint_status *st);

/**
 * The entry holding ns/name's history (n_history events, oldest first):
 * the stored entry of an API endpoint, or the in-memory one of a config
 * file endpoint. NULL: none recorded.
 */
const struct floe_state_entry *floe_registry_history(struct floe_registry *r, const char *ns,
						     const char *name);

/**
 * The endpoints to serve: copies of file's, then the registry's that still
 * translate (one that does not, or whose name the file took meanwhile, is
 * logged and left out). Free with floe_config_free.
 */
struct floe_config *floe_registry_compose(struct floe_registry *r, const struct floe_config *file);

/** After floe_activator_apply: pause what users paused. */
void floe_registry_settle(struct floe_registry *r, struct floe_activator *a);

/** The stored entry of ns/name (NULL: not an API endpoint). */
const struct floe_state_entry *floe_registry_entry(struct floe_registry *r, const char *ns,
						   const char *name);

/**
 * Create ns/NAME from a Hugging Face create body. Returns 0 (saved), -EEXIST
 * (the name is served already: file or API), -EINVAL (the body: err starts
 * with the field path), or another -errno (saving failed; nothing created).
 * file: the config file's endpoints, for names.
 */
int floe_registry_create(struct floe_registry *r, const char *ns, const json_t *body,
			 const struct floe_config *file, floe_error *err);

/**
 * Update ns/name with an RFC 7386 merge patch of its body. 0, -ENOENT, -EINVAL
 * (the merged body; nothing changes), -EPERM (the patch renames it), -errno.
 */
int floe_registry_update(struct floe_registry *r, const char *ns, const char *name,
			 const json_t *patch, floe_error *err);

/** Delete ns/name. 0, -ENOENT or -errno (saving failed: nothing deleted). */
int floe_registry_delete(struct floe_registry *r, const char *ns, const char *name,
			 floe_error *err);

/**
 * Remember what the user asked of ns/name (paused or running), saved before
 * it is served. 0, -ENOENT or -errno.
 */
int floe_registry_set_desired(struct floe_registry *r, const char *ns, const char *name,
			      enum floe_state_desired desired, floe_error *err);

#endif
