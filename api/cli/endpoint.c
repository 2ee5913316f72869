/*
 * The endpoint commands that read or act on one endpoint: ls, describe,
 * wait, pause, resume, scale-to-zero and delete.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli-internal.h"
#include "xalloc.h"

int cli__cmd_endpoint_ls(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	char *ns;
	if ((rc = cli__resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = cli__ep_path(ns, NULL, NULL);
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
		cli__errorf("floed's endpoint list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "NAME",   "STATE", "READY/TARGET",
						    "ENGINE", "TYPE",  "URL" };
		static const bool right[] = { false, false, true, false, false, false };
		struct table t = { 6, head, right, NULL, 0 };
		size_t i;
		json_t *ep;
		json_array_foreach(items, i, ep) {
			char *ready = cli__int_or_dash(cli__jpath(ep, "status.readyReplica"));
			char *target = cli__int_or_dash(cli__jpath(ep, "status.targetReplica"));
			cli__table_add(&t, xstrdup(cli__jpstr(ep, "name", "?")),
				       xstrdup(cli__jpstr(ep, "status.state", "?")),
				       xasprintf("%s/%s", ready, target), cli__engine_of(ep),
				       xstrdup(cli__jpstr(ep, "type", "?")),
				       xstrdup(cli__jpstr(ep, "status.url", "-")));
			free(ready);
			free(target);
		}
		cli__table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}

int cli__cmd_endpoint_describe(struct cli *cli, int argc, char **argv)
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
	char *path = cli__ep_path(ns, name, NULL);
	json_t *v;
	char *raw;
	rc = cli__http_json(cli, "GET", path, NULL, false, &v, &raw, NULL);
	if (rc == EXIT_OK)
		cli__show_endpoint(cli, v, raw);
	free(raw);
	json_decref(v);
	free(path);
	free(ns);
	return rc;
}

int cli__cmd_endpoint_wait(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *timeout = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ "timeout", 0, &timeout, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = cli__one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	double t;
	if ((rc = cli__parse_timeout(cli, timeout, &t)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = cli__resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	json_t *ep = NULL;
	char *raw = NULL;
	rc = cli__wait_ready(cli, ns, name, t, &ep, &raw);
	/* Ready: the URL to send requests to (URL=$(floe endpoint wait NAME)). */
	if (rc == EXIT_OK) {
		if (cli->json)
			cli__print_raw_json(raw);
		else
			printf("%s\n", cli__jpstr(ep, "status.url", ""));
	}
	json_decref(ep);
	free(raw);
	free(ns);
	return rc;
}

/* POST .../ACTION or DELETE: one request, one line (or floed's JSON). */
static int ep_simple(struct cli *cli, int argc, char **argv, const char *method, const char *action,
		     const char *done)
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
	char *path = cli__ep_path(ns, name, action);
	json_t *v;
	char *raw;
	rc = cli__http_json(cli, method, path, NULL, false, &v, &raw, NULL);
	if (rc == EXIT_OK) {
		if (cli->json)
			cli__print_raw_json(raw);
		else if (cli__jpstr(v, "status.state", NULL))
			printf("%s: %s\n", name, cli__jpstr(v, "status.state", ""));
		else
			printf("%s %s\n", done, name);
	}
	json_decref(v);
	free(raw);
	free(path);
	free(ns);
	return rc;
}

int cli__cmd_endpoint_pause(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "pause", "paused");
}

int cli__cmd_endpoint_resume(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "resume", "resumed");
}

int cli__cmd_endpoint_scale_to_zero(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "scale-to-zero", "scaled to zero");
}

int cli__cmd_endpoint_delete(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "DELETE", NULL, "deleted");
}
