/*
 * An endpoint's replicas: floe replicas (the live ones) and floe endpoint
 * logs (an engine's output, followed with -f).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

static void on_interrupt(int sig)
{
	cli__interrupted = 1;
}

int cli__cmd_endpoint_logs(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *replica = NULL, *tail = NULL, *name;
	bool follow = false;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ "replica", 0, &replica, NULL, NULL },
		{ "tail", 0, &tail, NULL, NULL },
		{ "follow", 'f', NULL, &follow, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = cli__one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	if (tail) {
		char *end;
		errno = 0;
		long long n = strtoll(tail, &end, 10);
		if (!tail[0] || *end || errno || n < 0)
			return cli__usage_error(cli->cmd,
						"--tail takes a number of lines, not '%s'", tail);
	}
	if (replica && !replica[0])
		return cli__usage_error(cli->cmd, "--replica needs an id (see floe replicas NAME)");
	char *ns;
	if ((rc = cli__resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	struct floe_buf path = FLOE_BUF_INIT;
	char *p = cli__ep_path(ns, name, "logs");
	floe_buf_puts(&path, p);
	free(p);
	cli__query_add(&path, "replica", replica);
	cli__query_add(&path, "tail", tail);
	cli__query_add(&path, "follow", follow ? "1" : NULL);
	/* Ctrl-C ends a follow: the transfer stops (within about a second, at
	 * curl's next progress call) and floe exits 0. */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	struct http h;
	struct req rq = { .sink = stdout, .flush = true, .long_transfer = true };
	rc = cli__http_perform(cli, "GET", path.data, &rq, &h);
	if (cli__interrupted)
		rc = EXIT_OK;
	sigaction(SIGINT, &old, NULL);
	cli__http_destroy(&h);
	floe_buf_destroy(&path);
	free(ns);
	return rc;
}

/* Seconds for people, as cli__human_ms. */
static char *human_s(json_t *v)
{
	if (!json_is_number(v))
		return xstrdup("-");
	return cli__human_ms((json_int_t)(json_number_value(v) * 1000));
}

int cli__cmd_replicas(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = cli__one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = cli__resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = cli__ep_path(ns, name, "replicas");
	json_t *v;
	char *raw;
	rc = cli__http_json(cli, "GET", path, NULL, false, &v, &raw, NULL);
	free(path);
	free(ns);
	if (rc)
		return rc;
	json_t *items = json_object_get(v, "items");
	if (cli->json) {
		cli__print_raw_json(raw);
	} else if (!json_is_array(items)) {
		cli__errorf("floed's replica list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "ID",     "STATE",     "PID", "COLD START",
						    "UPTIME", "IN FLIGHT", "GPUS" };
		static const bool right[] = { false, false, true, false, true, true, true };
		struct table t = { 7, head, right, NULL, 0 };
		size_t i;
		json_t *r;
		json_array_foreach(items, i, r) {
			json_t *secs = cli__jpath(r, "coldStart.seconds");
			char *secs_text = human_s(secs);
			cli__table_add(
				&t, xstrdup(cli__jpstr(r, "id", "?")),
				xstrdup(cli__jpstr(r, "state", "?")),
				cli__int_or_dash(json_object_get(r, "pid")),
				xasprintf("%s %s", cli__jpstr(r, "coldStart.kind", "-"), secs_text),
				human_s(json_object_get(r, "uptimeSeconds")),
				cli__int_or_dash(json_object_get(r, "inFlight")),
				cli__int_or_dash(json_object_get(r, "gpus")));
			free(secs_text);
		}
		cli__table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}
