/*
 * The registry's status history and its saves: changes reported by the
 * activator are recorded and written on the thread pool, coalesced, and a
 * slow pool write never puts an older state over an API save made after it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "fsutil.h"
#include "registry.h"
#include "state.h"
#include "xalloc.h"

static char presets_dir[4096];
static struct floe_config_env env;
static char data_dir[] = "/tmp/floe-registry-XXXXXX";

static void setup(void)
{
	const char *src = getenv("FLOE_SOURCE_DIR");
	if (src && src[0])
		snprintf(presets_dir, sizeof(presets_dir), "%s/images", src);
	else
		snprintf(presets_dir, sizeof(presets_dir), "%s", FLOE_PRESETS_DIR);
	env.presets_dir = presets_dir;
	env.bindir = "/opt/floe/bin";
	cr_assert(mkdtemp(data_dir));
	/* One pool thread, so a test can hold the pool (see block_pool). */
	setenv("UV_THREADPOOL_SIZE", "1", 1);
}

static void teardown(void)
{
	floe_rm_rf(data_dir);
}

TestSuite(registry, .init = setup, .fini = teardown);

static json_t *body(const char *name)
{
	char text[512];
	snprintf(text, sizeof(text),
		 "{\"name\":\"%s\",\"type\":\"public\",\"model\":{\"repository\":\"%s\","
		 "\"image\":{\"custom\":{\"url\":\"sim\"}}}}",
		 name, name);
	json_t *b = json_loads(text, 0, NULL);
	cr_assert(b);
	return b;
}

static void report(struct floe_registry *r, const struct floe_endpoint_config *cfg,
		   enum floe_endpoint_state s, const char *msg)
{
	struct floe_endpoint_status st = { .state = s };
	snprintf(st.message, sizeof(st.message), "%s", msg);
	floe_registry_on_status(r, cfg, &st);
}

/* A job that holds the thread pool until released: work queued after it
 * waits, as it would behind slow snapshot or export jobs. */
static uv_sem_t pool_gate;
static void hold_pool(uv_work_t *w)
{
	(void)w;
	uv_sem_wait(&pool_gate);
}
static void held_done(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
}

/* The states of ns/name's history as saved on disk, comma-separated. */
static char *saved_history(const char *name)
{
	struct floe_state st;
	floe_state_init(&st);
	floe_error err;
	floe_error_clear(&err);
	cr_assert_eq(floe_state_load(data_dir, &st, NULL, &err), 0, "%s", err.msg);
	struct floe_state_entry *e = floe_state_find(&st, "default", name);
	char *out = xstrdup(e ? "" : "(none)");
	for (size_t i = 0; e && i < e->n_history; i++) {
		char *next = xasprintf("%s%s%s", out, i ? "," : "", e->history[i].state);
		free(out);
		out = next;
	}
	floe_state_destroy(&st);
	return out;
}

Test(registry, history_is_saved_off_the_loop_and_never_undoes_a_later_save)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct floe_registry *r = NULL;
	floe_error err;
	floe_error_clear(&err);
	cr_assert_eq(floe_registry_open(&loop, data_dir, &env, &r, &err), 0, "%s", err.msg);
	json_t *b = body("chat");
	cr_assert_eq(floe_registry_create(r, "default", b, NULL, &err), 0, "%s", err.msg);
	json_decref(b);
	struct floe_config *cfg = floe_registry_compose(r, NULL);
	cr_assert_eq(cfg->n_endpoints, 1);
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];

	/* Many changes in one loop turn: one write in flight (held behind
	 * another job), the rest coalesced into the next. */
	uv_work_t hold;
	cr_assert_eq(uv_sem_init(&pool_gate, 0), 0);
	cr_assert_eq(uv_queue_work(&loop, &hold, hold_pool, held_done), 0);
	report(r, ep, FLOE_EP_SCALED_TO_ZERO, "no replica");
	report(r, ep, FLOE_EP_INITIALIZING, "1 starting");
	report(r, ep, FLOE_EP_RUNNING, "1 ready");
	/* An API save while that write waits on the pool: encoded later, so
	 * it must be what stays on disk (the history with it). */
	b = body("other");
	cr_assert_eq(floe_registry_create(r, "default", b, NULL, &err), 0, "%s", err.msg);
	json_decref(b);
	uv_sem_post(&pool_gate);       /* the held write runs now, after the create */
	uv_run(&loop, UV_RUN_DEFAULT); /* every queued write done */
	uv_sem_destroy(&pool_gate);

	char *h = saved_history("chat");
	cr_expect_str_eq(h, "pending,scaledToZero,initializing,running");
	free(h);
	h = saved_history("other");
	cr_expect_str_eq(h, "pending", "the create made after a pool write was lost");
	free(h);
	cr_expect_str_eq(floe_registry_history(r, "default", "chat")->history[3].message,
			 "1 ready");

	/* A config file's endpoint: kept in memory, never saved. */
	struct floe_endpoint_config file_ep = *ep;
	file_ep.name = "from-file";
	report(r, &file_ep, FLOE_EP_RUNNING, "1 ready");
	uv_run(&loop, UV_RUN_DEFAULT);
	const struct floe_state_entry *fh = floe_registry_history(r, "default", "from-file");
	cr_assert(fh);
	cr_expect_eq(fh->n_history, 1);
	h = saved_history("from-file");
	cr_expect_str_eq(h, "(none)");
	free(h);

	/* Changes reported and not yet written are saved by free. */
	report(r, ep, FLOE_EP_SCALED_TO_ZERO, "idle");
	floe_config_free(cfg);
	uv_run(&loop, UV_RUN_DEFAULT);
	floe_registry_free(r);
	uv_loop_close(&loop);
	h = saved_history("chat");
	cr_expect_str_eq(h, "pending,scaledToZero,initializing,running,scaledToZero");
	free(h);
}
