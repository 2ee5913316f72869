/*
 * Waiting until an endpoint is ready (endpoint wait, create --wait, update
 * --wait), with requests that never wake it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli-internal.h"
#include "xalloc.h"

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Between two polls of the state (huggingface_hub's wait() polls every 5 s;
 * a terminal is more impatient, and a GET costs floed next to nothing). */
#define WAIT_POLL_S 0.5
/* One poll's request may take this long at most. */
#define WAIT_REQUEST_MS 10000L

/* What wait has already said about a replica, to say only what changed. */
struct seen_replica {
	char id[96];
	char what[96];
};

struct wait_state {
	struct cli *cli;
	const char *name;
	double t0;
	bool replicas_route; /* false once floed has shown it has no replicas route */
	struct seen_replica seen[16];
	size_t n_seen;
};

/* The cold-start phase, from the replicas route when floed has it: each
 * replica's state and kind of start as they change. Never wakes anything
 * (a control-plane GET). */
static void wait_show_replicas(struct wait_state *w, const char *path)
{
	if (!w->replicas_route)
		return;
	json_t *v;
	long st;
	if (cli__http_json(w->cli, "GET", path, NULL, true, &v, NULL, &st) != EXIT_OK) {
		if (st == 404 || st == 405)
			w->replicas_route = false;
		return;
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(v, "items"), i, r) {
		const char *id = cli__jpstr(r, "id", "?");
		const char *state = cli__jpstr(r, "state", "?");
		const char *kind = cli__jpstr(r, "coldStart.kind", NULL);
		json_t *secs = cli__jpath(r, "coldStart.seconds");
		char what[96];
		if (json_is_number(secs))
			snprintf(what, sizeof(what), "%s after a %s start of %.2fs", state,
				 kind ? kind : "?", json_number_value(secs));
		else
			snprintf(what, sizeof(what), "%s%s%s%s", state, kind ? " (" : "",
				 kind ? kind : "", kind ? " start)" : "");
		size_t k;
		for (k = 0; k < w->n_seen && strcmp(w->seen[k].id, id) != 0; k++)
			;
		if (k < w->n_seen && strcmp(w->seen[k].what, what) == 0)
			continue;
		if (k == w->n_seen) {
			if (k == sizeof(w->seen) / sizeof(w->seen[0]))
				continue;
			w->n_seen++;
			snprintf(w->seen[k].id, sizeof(w->seen[k].id), "%s", id);
		}
		snprintf(w->seen[k].what, sizeof(w->seen[k].what), "%s", what);
		fprintf(stderr, "%s:   replica %s: %s (%.1fs)\n", w->name, id, what,
			mono_s() - w->t0);
	}
	json_decref(v);
}

/* GET {url}{healthRoute} the way huggingface_hub joins them. Its status, 0
 * when there was no answer. */
static long health_status(struct cli *cli, const char *url, const char *route, double left_s)
{
	size_t n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	while (*route == '/')
		route++;
	char *full = xasprintf("%.*s/%s", (int)n, url, route);
	struct http h;
	long ms = WAIT_REQUEST_MS;
	if (left_s > 0 && left_s * 1000 < ms)
		ms = (long)(left_s * 1000) + 1000;
	struct req rq = { .quiet = true, .abs_url = full, .timeout_ms = ms };
	cli__http_perform(cli, "GET", NULL, &rq, &h);
	long st = h.code == CURLE_OK ? h.status : 0;
	cli__http_destroy(&h);
	free(full);
	return st;
}

int cli__wait_ready(struct cli *cli, const char *ns, const char *name, double timeout_s,
		    json_t **last, char **last_raw)
{
	struct wait_state w = { .cli = cli, .name = name, .t0 = mono_s(), .replicas_route = true };
	char *path = cli__ep_path(ns, name, NULL);
	char *rpath = cli__ep_path(ns, name, "replicas");
	char last_state[64] = "";
	bool said_health = false;
	json_t *ep = NULL;
	char *raw = NULL;
	int rc;
	for (;;) {
		double elapsed = mono_s() - w.t0;
		json_decref(ep);
		free(raw);
		rc = cli__http_json(cli, "GET", path, NULL, false, &ep, &raw, NULL);
		if (rc != EXIT_OK)
			break;
		const char *state = cli__jpstr(ep, "status.state", "?");
		const char *msg = cli__jpstr(ep, "status.message", "");
		elapsed = mono_s() - w.t0;
		if (strcmp(state, last_state) != 0) {
			fprintf(stderr, "%s: %s (%.1fs)%s%s\n", name, state, elapsed,
				msg[0] ? ": " : "", msg);
			if (strcmp(state, "scaledToZero") == 0)
				fprintf(stderr,
					"%s:   scaled to zero: it starts on its next request "
					"(waiting does not wake it)\n",
					name);
			else if (strcmp(state, "paused") == 0)
				fprintf(stderr, "%s:   paused: it starts once resumed\n", name);
			snprintf(last_state, sizeof(last_state), "%s", state);
		}
		if (strcmp(state, "failed") == 0 || strcmp(state, "updateFailed") == 0) {
			cli__errorf("%s %s: %s", name, state,
				    msg[0] ? msg : "no message from floed");
			rc = EXIT_FAIL;
			break;
		}
		/* Before the health check, so that the replica's start is shown
		 * even when the endpoint turns ready on this round. */
		if (strcmp(state, "initializing") == 0 || strcmp(state, "updating") == 0 ||
		    strcmp(state, "pending") == 0 || strcmp(state, "running") == 0)
			wait_show_replicas(&w, rpath);
		double left = timeout_s < 0 ? -1 : timeout_s - elapsed;
		const char *url = cli__jpstr(ep, "status.url", NULL);
		if (strcmp(state, "running") == 0 && url && url[0]) {
			const char *route = cli__jpstr(ep, "healthRoute", "/");
			long hs = health_status(cli, url, route, left);
			if (hs == 200) {
				fprintf(stderr, "%s: ready (%.1fs)\n", name, mono_s() - w.t0);
				rc = EXIT_OK;
				break;
			}
			if (hs == 401 || hs == 403) {
				cli__errorf(
					"%s: GET %s%s answered %ld: give a token of namespace %s "
					"(--token or FLOE_TOKEN)",
					name, url, route, hs, ns);
				rc = EXIT_FAIL;
				break;
			}
			if (!said_health) {
				fprintf(stderr, "%s:   health route %s answers %ld (%.1fs)\n", name,
					route, hs, mono_s() - w.t0);
				said_health = true;
			}
		}
		elapsed = mono_s() - w.t0;
		if (timeout_s >= 0 && elapsed >= timeout_s) {
			cli__errorf("%s is not ready after %.1fs (state %s); exit 4", name, elapsed,
				    state);
			rc = EXIT_TIMEOUT;
			break;
		}
		double nap = WAIT_POLL_S;
		if (timeout_s >= 0 && timeout_s - elapsed < nap)
			nap = timeout_s - elapsed;
		sleep_s(nap);
	}
	free(path);
	free(rpath);
	if (last) {
		*last = ep;
		*last_raw = raw;
	} else {
		json_decref(ep);
		free(raw);
	}
	return rc;
}

int cli__parse_timeout(struct cli *cli, const char *text, double *out)
{
	*out = -1;
	if (!text)
		return EXIT_OK;
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (!text[0] || *end || errno || !(v >= 0) || v > 1e9)
		return cli__usage_error(cli->cmd,
					"--timeout takes seconds (a number >= 0), not '%s'", text);
	*out = v;
	return EXIT_OK;
}
