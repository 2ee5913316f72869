/*
 * What the endpoint commands share: which endpoint (its NAME, its
 * namespace, its path on floed) and the readable view of one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

/* A path segment percent-encoded (names are [a-z0-9-], but a typo such as
 * "a/b" must stay one segment, for floed's 404 to name it). Allocated. */
static char *seg_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, (int)strlen(s));
	char *out = xstrdup(e ? e : "");
	curl_free(e);
	return out;
}

char *cli__ep_path(const char *ns, const char *name, const char *suffix)
{
	char *ens = seg_escape(ns);
	char *ename = name ? seg_escape(name) : NULL;
	char *p = xasprintf("/v2/endpoint/%s%s%s%s%s", ens, ename ? "/" : "", ename ? ename : "",
			    suffix ? "/" : "", suffix ? suffix : "");
	free(ens);
	free(ename);
	return p;
}

int cli__resolve_ns(struct cli *cli, const char *given, char **out)
{
	if (given) {
		if (!given[0])
			return cli__usage_error(cli->cmd, "--namespace needs a value");
		*out = xstrdup(given);
		return EXIT_OK;
	}
	json_t *v;
	long st;
	struct http h;
	struct req rq = { .quiet = true };
	int rc = cli__http_perform(cli, "GET", "/api/whoami-v2", &rq, &h);
	st = h.status;
	if (rc != EXIT_OK) {
		if (h.code == CURLE_OK && st == 404) {
			*out = xstrdup("default");
			rc = EXIT_OK;
		} else {
			cli__http_report(cli, &h);
		}
		cli__http_destroy(&h);
		return rc;
	}
	v = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, NULL);
	const char *name = json_string_value(json_object_get(v, "name"));
	*out = xstrdup(name && name[0] ? name : "default");
	json_decref(v);
	cli__http_destroy(&h);
	return EXIT_OK;
}

const char *cli__image_kind(json_t *ep)
{
	json_t *img = cli__jpath(ep, "model.image");
	void *it = json_is_object(img) ? json_object_iter(img) : NULL;
	return it ? json_object_iter_key(it) : NULL;
}

char *cli__engine_of(json_t *ep)
{
	const char *kind = cli__image_kind(ep);
	if (!kind)
		return xstrdup("-");
	if (strcmp(kind, "custom") == 0) {
		const char *url = json_string_value(json_object_get(
			json_object_get(cli__jpath(ep, "model.image"), kind), "url"));
		return xstrdup(url ? url : "custom");
	}
	char *k = xstrdup(kind);
	for (char *p = k; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}

/* "k1=v1, k2=v2" of a JSON object of strings; "-" when empty. Allocated. */
static char *kv_list(json_t *o)
{
	struct floe_buf b = FLOE_BUF_INIT;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		floe_buf_printf(&b, "%s%s=%s", b.len ? ", " : "", k,
				json_is_string(v) ? json_string_value(v) : "?");
	}
	if (!b.len)
		floe_buf_puts(&b, "-");
	return floe_buf_steal(&b, NULL);
}

/* The readable view of one Endpoint JSON (describe, and after a write). */
static void print_endpoint(json_t *ep, FILE *out)
{
	json_t *sc = cli__jpath(ep, "compute.scaling");
	json_t *stz = json_object_get(sc, "scaleToZeroTimeout");
	json_t *pend = cli__jpath(sc, "measure.pendingRequests");
	char *engine = cli__engine_of(ep);
	char *ready = cli__int_or_dash(cli__jpath(ep, "status.readyReplica"));
	char *target = cli__int_or_dash(cli__jpath(ep, "status.targetReplica"));
	char *minr = cli__int_or_dash(json_object_get(sc, "minReplica"));
	char *maxr = cli__int_or_dash(json_object_get(sc, "maxReplica"));
	char *env = kv_list(cli__jpath(ep, "model.env"));
	char *secrets = kv_list(cli__jpath(ep, "model.secrets"));
	char *stz_text = !json_is_integer(stz) ? xstrdup("-") :
			 json_integer_value(stz) == 0 ?
						 xstrdup("never") :
						 xasprintf("after %lld min idle",
							   (long long)json_integer_value(stz));
	char *pend_text = json_is_number(pend) ? xasprintf(", %g pending requests per replica",
							   json_number_value(pend)) :
						 xstrdup("");
	const char *msg = cli__jpstr(ep, "status.message", "");
	fprintf(out,
		"name:          %s\n"
		"namespace:     %s\n"
		"state:         %s\n",
		cli__jpstr(ep, "name", "?"), cli__jpstr(ep, "namespace", "?"),
		cli__jpstr(ep, "status.state", "?"));
	if (msg[0])
		fprintf(out, "message:       %s\n", msg);
	fprintf(out,
		"url:           %s\n"
		"type:          %s\n"
		"model:         %s (revision %s, task %s, framework %s)\n"
		"engine:        %s (health route %s)\n"
		"env:           %s\n"
		"secrets:       %s\n"
		"compute:       %s %s %s\n"
		"scaling:       min %s, max %s replicas; scale to zero %s%s\n"
		"replicas:      %s ready of %s\n"
		"created:       %s\n"
		"updated:       %s\n",
		cli__jpstr(ep, "status.url", "-"), cli__jpstr(ep, "type", "?"),
		cli__jpstr(ep, "model.repository", "?"), cli__jpstr(ep, "model.revision", "-"),
		cli__jpstr(ep, "model.task", "")[0] ? cli__jpstr(ep, "model.task", "") : "-",
		cli__jpstr(ep, "model.framework", "-"), engine, cli__jpstr(ep, "healthRoute", "/"),
		env, secrets, cli__jpstr(ep, "compute.accelerator", "-"),
		cli__jpstr(ep, "compute.instanceType", "-"),
		cli__jpstr(ep, "compute.instanceSize", "-"), minr, maxr, stz_text, pend_text, ready,
		target, cli__jpstr(ep, "status.createdAt", "-"),
		cli__jpstr(ep, "status.updatedAt", "-"));
	free(engine);
	free(ready);
	free(target);
	free(minr);
	free(maxr);
	free(env);
	free(secrets);
	free(stz_text);
	free(pend_text);
}

void cli__show_endpoint(struct cli *cli, json_t *ep, const char *raw)
{
	if (cli->json)
		cli__print_raw_json(raw);
	else
		print_endpoint(ep, stdout);
}

int cli__one_name(struct cli *cli, int npos, char **argv, const char **name)
{
	if (npos == 0)
		return cli__usage_error(cli->cmd, "which endpoint? give its NAME");
	if (npos > 1)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
	if (!argv[0][0])
		return cli__usage_error(cli->cmd, "the endpoint NAME is empty");
	*name = argv[0];
	return EXIT_OK;
}
