/*
 * floe endpoint create and floe endpoint update: options into Hugging
 * Face's Endpoint body (create) or a merge patch of it (update), or a body
 * from a file, sent as it is.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cli-internal.h"
#include "xalloc.h"

struct ep_args {
	const char *ns, *engine, *repository, *revision, *task, *framework, *type;
	const char *min_replica, *max_replica, *stz, *threshold;
	const char *accelerator, *instance_type, *instance_size;
	const char *port, *health_route, *from_file, *timeout;
	struct strv env, secrets, command, args;
	bool wait;
};

static void ep_args_destroy(struct ep_args *a)
{
	free(a->env.v);
	free(a->secrets.v);
	free(a->command.v);
	free(a->args.v);
}

/* Whether any option that goes into the body was given. */
static bool ep_args_any_field(const struct ep_args *a)
{
	return a->engine || a->repository || a->revision || a->task || a->framework || a->type ||
	       a->min_replica || a->max_replica || a->stz || a->threshold || a->accelerator ||
	       a->instance_type || a->instance_size || a->port || a->health_route || a->env.n ||
	       a->secrets.n || a->command.n || a->args.n;
}

/* obj[key] as an object, created when missing (borrowed). */
static json_t *jobj(json_t *obj, const char *key)
{
	json_t *o = json_object_get(obj, key);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(obj, key, o);
	}
	return o;
}

/* An integer option into obj[key]; a usage error when it is not one. Range
 * checks are floed's (its 400 names the field). */
static int put_int(struct cli *cli, json_t *obj, const char *key, const char *opt, const char *text)
{
	if (!text)
		return EXIT_OK;
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (!text[0] || *end || errno)
		return cli__usage_error(cli->cmd, "--%s takes an integer, not '%s'", opt, text);
	json_object_set_new(obj, key, json_integer((json_int_t)v));
	return EXIT_OK;
}

/* K=V options into obj (created under parent[key] when there are any). */
static int put_kv(struct cli *cli, json_t *parent, const char *key, const char *opt,
		  const struct strv *sv)
{
	if (!sv->n)
		return EXIT_OK;
	json_t *o = jobj(parent, key);
	for (size_t i = 0; i < sv->n; i++) {
		const char *eq = strchr(sv->v[i], '=');
		if (!eq || eq == sv->v[i])
			/* Never quote the value: it may be a secret. */
			return cli__usage_error(cli->cmd, "--%s takes KEY=VALUE", opt);
		char *k = xstrndup(sv->v[i], (size_t)(eq - sv->v[i]));
		json_object_set_new(o, k, json_string(eq + 1));
		free(k);
	}
	return EXIT_OK;
}

static json_t *strv_json(const struct strv *sv)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

/*
 * --engine -> the kind of model.image (and its url). The engines Hugging
 * Face names have their own image kind; anything else (sim, another preset
 * of floe's images/, an absolute path to an executable) is a custom image
 * whose url floed reads as a preset or a path.
 */
static const char *engine_kind(const char *engine, const char **url)
{
	static const char *const kinds[][2] = {
		{ "vllm", "vLLM" }, { "sglang", "sGLang" },     { "tgi", "tgi" },
		{ "tei", "tei" },   { "llamacpp", "llamacpp" }, { "huggingface", "huggingface" },
	};
	*url = NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcasecmp(engine, kinds[i][0]) == 0)
			return kinds[i][1];
	*url = engine;
	return "custom";
}

/*
 * The Hugging Face body of create (everything needed) or the merge patch of
 * update (only what was given). old_kind: update's current image kind, so
 * that --port alone patches the image there is, and --engine of another
 * kind removes the old one (a JSON null in a merge patch deletes).
 */
static int build_body(struct cli *cli, const struct ep_args *a, const char *name, bool create,
		      const char *old_kind, json_t **out)
{
	json_t *b = json_object();
	json_t *compute = json_object(), *scaling = json_object(), *model = json_object();
	int rc = EXIT_OK;
	*out = NULL;
	if (create)
		json_object_set_new(b, "name", json_string(name));
	if (a->type || create)
		json_object_set_new(b, "type", json_string(a->type ? a->type : "authenticated"));
	if (a->accelerator)
		json_object_set_new(compute, "accelerator", json_string(a->accelerator));
	if (a->instance_type)
		json_object_set_new(compute, "instanceType", json_string(a->instance_type));
	if (a->instance_size)
		json_object_set_new(compute, "instanceSize", json_string(a->instance_size));
	if ((rc = put_int(cli, scaling, "minReplica", "min-replica", a->min_replica)) ||
	    (rc = put_int(cli, scaling, "maxReplica", "max-replica", a->max_replica)) ||
	    (rc = put_int(cli, scaling, "scaleToZeroTimeout", "scale-to-zero-timeout", a->stz)))
		goto out;
	if (a->threshold) {
		char *end;
		double v = strtod(a->threshold, &end);
		if (!a->threshold[0] || *end) {
			rc = cli__usage_error(cli->cmd,
					      "--scaling-threshold takes a number, not '%s'",
					      a->threshold);
			goto out;
		}
		json_object_set_new(jobj(scaling, "measure"), "pendingRequests", json_real(v));
	}
	if (a->repository || create)
		json_object_set_new(model, "repository",
				    json_string(a->repository ? a->repository : name));
	if (a->revision)
		json_object_set_new(model, "revision", json_string(a->revision));
	if (a->task)
		json_object_set_new(model, "task", json_string(a->task));
	if (a->framework)
		json_object_set_new(model, "framework", json_string(a->framework));
	if (a->engine || a->port || a->health_route) {
		const char *url = NULL;
		const char *kind = a->engine ? engine_kind(a->engine, &url) :
				   old_kind  ? old_kind :
					       "huggingface";
		json_t *image = json_object();
		json_t *inner = json_object();
		if (url)
			json_object_set_new(inner, "url", json_string(url));
		if ((rc = put_int(cli, inner, "port", "port", a->port))) {
			json_decref(image);
			json_decref(inner);
			goto out;
		}
		if (a->health_route)
			json_object_set_new(inner, "healthRoute", json_string(a->health_route));
		if (old_kind && strcmp(old_kind, kind) != 0)
			json_object_set_new(image, old_kind, json_null());
		json_object_set_new(image, kind, inner);
		json_object_set_new(model, "image", image);
	}
	if ((rc = put_kv(cli, model, "env", "env", &a->env)) ||
	    (rc = put_kv(cli, model, "secrets", "secret", &a->secrets)))
		goto out;
	if (a->command.n)
		json_object_set_new(model, "command", strv_json(&a->command));
	if (a->args.n)
		json_object_set_new(model, "args", strv_json(&a->args));
out:
	if (json_object_size(scaling))
		json_object_set(compute, "scaling", scaling);
	if (json_object_size(compute))
		json_object_set(b, "compute", compute);
	if (json_object_size(model))
		json_object_set(b, "model", model);
	json_decref(scaling);
	json_decref(compute);
	json_decref(model);
	if (rc != EXIT_OK)
		json_decref(b);
	else
		*out = b;
	return rc;
}

/* --from-file FILE (- for stdin): a JSON object, sent as it is. */
static int read_body_file(struct cli *cli, const char *file, json_t **out)
{
	json_error_t jerr;
	json_t *v = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) :
					     json_load_file(file, 0, &jerr);
	*out = NULL;
	if (!v) {
		cli__errorf("%s: %s (line %d, column %d)", strcmp(file, "-") ? file : "stdin",
			    jerr.text, jerr.line, jerr.column);
		return EXIT_FAIL;
	}
	if (!json_is_object(v)) {
		cli__errorf("%s: expected a JSON object (an Endpoint body)", file);
		json_decref(v);
		return EXIT_FAIL;
	}
	*out = v;
	return EXIT_OK;
}

/* The options of create and update, into a (out: 25 entries, the last zero). */
#define EP_WRITE_NOPTS 25
static void ep_write_opts(struct ep_args *a, struct opt *out)
{
	const struct opt o[EP_WRITE_NOPTS] = {
		{ "namespace", 0, &a->ns, NULL, NULL },
		{ "engine", 0, &a->engine, NULL, NULL },
		{ "repository", 0, &a->repository, NULL, NULL },
		{ "repo", 0, &a->repository, NULL, NULL }, /* hf endpoints deploy's name */
		{ "revision", 0, &a->revision, NULL, NULL },
		{ "task", 0, &a->task, NULL, NULL },
		{ "framework", 0, &a->framework, NULL, NULL },
		{ "type", 0, &a->type, NULL, NULL },
		{ "min-replica", 0, &a->min_replica, NULL, NULL },
		{ "max-replica", 0, &a->max_replica, NULL, NULL },
		{ "scale-to-zero-timeout", 0, &a->stz, NULL, NULL },
		{ "scaling-threshold", 0, &a->threshold, NULL, NULL },
		{ "accelerator", 0, &a->accelerator, NULL, NULL },
		{ "instance-type", 0, &a->instance_type, NULL, NULL },
		{ "instance-size", 0, &a->instance_size, NULL, NULL },
		{ "port", 0, &a->port, NULL, NULL },
		{ "health-route", 0, &a->health_route, NULL, NULL },
		{ "env", 0, NULL, NULL, &a->env },
		{ "secret", 0, NULL, NULL, &a->secrets },
		{ "command", 0, NULL, NULL, &a->command },
		{ "arg", 0, NULL, NULL, &a->args },
		{ "from-file", 0, &a->from_file, NULL, NULL },
		{ "wait", 0, NULL, &a->wait, NULL },
		{ "timeout", 0, &a->timeout, NULL, NULL },
		{ 0 },
	};
	memcpy(out, o, sizeof(o));
}

/* Option checks both share; EXIT_OK or a usage error. */
static int ep_args_check(struct cli *cli, const struct ep_args *a)
{
	if (a->type && !cli__one_of(a->type, "public|authenticated|private|protected"))
		return cli__usage_error(cli->cmd,
					"--type must be public, authenticated or private, not '%s'",
					a->type);
	if (a->engine && (!a->engine[0] || strcmp(a->engine, "custom") == 0))
		return cli__usage_error(
			cli->cmd,
			"--engine takes vllm, tgi, sglang, tei, llamacpp, huggingface, "
			"a floe preset such as sim, or an absolute path to an executable");
	if (a->from_file && ep_args_any_field(a))
		return cli__usage_error(cli->cmd,
					"--from-file sends the file as it is: put the other "
					"fields in the file");
	if (a->timeout && !a->wait)
		return cli__usage_error(cli->cmd, "--timeout goes with --wait");
	return EXIT_OK;
}

/* After a create or update: wait when asked, then show the endpoint. */
static int ep_write_finish(struct cli *cli, const char *ns, const char *name, json_t *ep,
			   const char *raw, const struct ep_args *a)
{
	if (!a->wait) {
		cli__show_endpoint(cli, ep, raw);
		return EXIT_OK;
	}
	double t;
	int rc = cli__parse_timeout(cli, a->timeout, &t);
	if (rc != EXIT_OK)
		return rc;
	json_t *last = NULL;
	char *last_raw = NULL;
	rc = cli__wait_ready(cli, ns, name, t, &last, &last_raw);
	if (last)
		cli__show_endpoint(cli, last, last_raw);
	json_decref(last);
	free(last_raw);
	return rc;
}

int cli__cmd_endpoint_create(struct cli *cli, int argc, char **argv)
{
	struct ep_args a = { 0 };
	struct opt opts[EP_WRITE_NOPTS];
	ep_write_opts(&a, opts);
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	json_t *body = NULL, *ep = NULL;
	char *ns = NULL, *raw = NULL, *text = NULL;
	const char *name = NULL;
	if (rc) {
		rc = rc == EXIT_HELP_DONE ? EXIT_OK : rc;
		goto out;
	}
	if ((rc = ep_args_check(cli, &a)) != EXIT_OK)
		goto out;
	if (a.timeout) {
		double t;
		if ((rc = cli__parse_timeout(cli, a.timeout, &t)) != EXIT_OK)
			goto out;
	}
	if (a.from_file) {
		if (npos > 1) {
			rc = cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
			goto out;
		}
		if ((rc = read_body_file(cli, a.from_file, &body)) != EXIT_OK)
			goto out;
		name = json_string_value(json_object_get(body, "name"));
		if (npos == 1 && (!name || strcmp(name, argv[0]) != 0)) {
			rc = cli__usage_error(cli->cmd, "NAME '%s' is not the name in %s ('%s')",
					      argv[0], a.from_file, name ? name : "none");
			goto out;
		}
		if (!name && a.wait) {
			rc = cli__usage_error(cli->cmd, "--wait needs the body's name");
			goto out;
		}
	} else {
		if ((rc = cli__one_name(cli, npos, argv, &name)) != EXIT_OK)
			goto out;
		if ((rc = build_body(cli, &a, name, true, NULL, &body)) != EXIT_OK)
			goto out;
	}
	if ((rc = cli__resolve_ns(cli, a.ns, &ns)) != EXIT_OK)
		goto out;
	char *path = cli__ep_path(ns, NULL, NULL);
	text = json_dumps(body, JSON_COMPACT);
	rc = cli__http_json(cli, "POST", path, text, false, &ep, &raw, NULL);
	free(path);
	if (rc == EXIT_OK) {
		if (!name)
			name = cli__jpstr(ep, "name", "?");
		rc = ep_write_finish(cli, ns, name, ep, raw, &a);
	}
out:
	if (text) {
		/* It may hold secrets. */
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(body);
	json_decref(ep);
	free(raw);
	free(ns);
	ep_args_destroy(&a);
	return rc;
}

int cli__cmd_endpoint_update(struct cli *cli, int argc, char **argv)
{
	struct ep_args a = { 0 };
	struct opt opts[EP_WRITE_NOPTS];
	ep_write_opts(&a, opts);
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	json_t *body = NULL, *ep = NULL, *cur = NULL;
	char *ns = NULL, *raw = NULL, *text = NULL, *path = NULL;
	const char *name = NULL;
	if (rc) {
		rc = rc == EXIT_HELP_DONE ? EXIT_OK : rc;
		goto out;
	}
	if ((rc = ep_args_check(cli, &a)) != EXIT_OK ||
	    (rc = cli__one_name(cli, npos, argv, &name)) != EXIT_OK)
		goto out;
	if (!a.from_file && !ep_args_any_field(&a)) {
		rc = cli__usage_error(cli->cmd,
				      "nothing to change: give at least one field option");
		goto out;
	}
	if (a.timeout) {
		double t;
		if ((rc = cli__parse_timeout(cli, a.timeout, &t)) != EXIT_OK)
			goto out;
	}
	if ((rc = cli__resolve_ns(cli, a.ns, &ns)) != EXIT_OK)
		goto out;
	path = cli__ep_path(ns, name, NULL);
	if (a.from_file) {
		if ((rc = read_body_file(cli, a.from_file, &body)) != EXIT_OK)
			goto out;
	} else {
		/* The image options patch the image the endpoint has. */
		const char *old_kind = NULL;
		if (a.engine || a.port || a.health_route) {
			if ((rc = cli__http_json(cli, "GET", path, NULL, false, &cur, NULL,
						 NULL)) != EXIT_OK)
				goto out;
			old_kind = cli__image_kind(cur);
		}
		if ((rc = build_body(cli, &a, name, false, old_kind, &body)) != EXIT_OK)
			goto out;
	}
	text = json_dumps(body, JSON_COMPACT);
	rc = cli__http_json(cli, "PUT", path, text, false, &ep, &raw, NULL);
	if (rc == EXIT_OK)
		rc = ep_write_finish(cli, ns, name, ep, raw, &a);
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(body);
	json_decref(cur);
	json_decref(ep);
	free(raw);
	free(path);
	free(ns);
	ep_args_destroy(&a);
	return rc;
}
