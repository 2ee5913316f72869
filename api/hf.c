/*
 * Hugging Face Inference Endpoints JSON <-> floe endpoint config (see hf.h
 * for the mapping).
 *
 * A body becomes a JSON object of floe's endpoint keys, loaded through the
 * config loader as `endpoints: [JSON]`, so an API endpoint and a config-file
 * endpoint obey the same rules, defaults and presets. While translating we
 * record where each floe key came from (floe path -> Hugging Face path):
 * that table turns a loader message such as
 * "<api>:1: endpoints[0].scaling.max_replica: must be >= min_replica (2)"
 * back into "compute.scaling.maxReplica: must be >= compute.scaling.minReplica (2)".
 */
#define LOG_TAG "hf"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hf.h"
#include "xalloc.h"

#define PATH_LEN 256
#define MS_PER_MIN UINT64_C(60000)

/* The loader's name for the text we hand it; messages start with it. */
#define API_NAME "<api>"

static const char *const type_names[] = { "public", "authenticated", "private" };

const char *floe_hf_state_name(enum floe_endpoint_state s)
{
	switch (s) {
	case FLOE_EP_INITIALIZING: return FLOE_HF_STATE_INITIALIZING;
	case FLOE_EP_RUNNING: return FLOE_HF_STATE_RUNNING;
	case FLOE_EP_PAUSED: return FLOE_HF_STATE_PAUSED;
	case FLOE_EP_FAILED: return FLOE_HF_STATE_FAILED;
	case FLOE_EP_UPDATING: return FLOE_HF_STATE_UPDATING;
	case FLOE_EP_UPDATE_FAILED: return FLOE_HF_STATE_UPDATE_FAILED;
	case FLOE_EP_SCALED_TO_ZERO: break;
	}
	return FLOE_HF_STATE_SCALED_TO_ZERO;
}

const char *floe_hf_type_name(enum floe_endpoint_access access)
{
	if ((unsigned)access < sizeof(type_names) / sizeof(type_names[0]))
		return type_names[access];
	return "public";
}

/* ------------------------------------------------------------------------
 * Typed access to the body; JSON null counts as absent
 * ------------------------------------------------------------------------ */

static int bad(floe_error *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(floe_error *err, const char *path, const char *fmt, ...)
{
	char msg[FLOE_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return floe_error_set(err, -EINVAL, "%s: %s", path, msg);
}

static const char *jkind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static json_t *member(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	return json_is_null(v) ? NULL : v;
}

static void join(char *out, const char *path, const char *key)
{
	snprintf(out, PATH_LEN, "%s%s%s", path, path[0] ? "." : "", key);
}

/* Member key of obj when it is of type t (*out; NULL when absent), else
 * 400 at its path: "expected WHAT, got ...". */
static int get_typed(const json_t *obj, const char *key, const char *path, json_type t,
		     const char *what, json_t **out, floe_error *err)
{
	json_t *v = member(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (json_typeof(v) != t) {
		char p[PATH_LEN];
		join(p, path, key);
		return bad(err, p, "expected %s, got %s", what, jkind(v));
	}
	*out = v;
	return 0;
}

static int get_string(const json_t *obj, const char *key, const char *path, const char **out,
		      floe_error *err)
{
	json_t *v;
	int r = get_typed(obj, key, path, JSON_STRING, "a string", &v, err);
	*out = v ? json_string_value(v) : NULL;
	return r;
}

static int get_object(const json_t *obj, const char *key, const char *path, json_t **out,
		      floe_error *err)
{
	return get_typed(obj, key, path, JSON_OBJECT, "an object", out, err);
}

/* *out stays NULL when absent; the loader checks the range. */
static int get_integer(const json_t *obj, const char *key, const char *path, json_t **out,
		       floe_error *err)
{
	return get_typed(obj, key, path, JSON_INTEGER, "an integer", out, err);
}

static int get_strlist(const json_t *obj, const char *key, const char *path, json_t **out,
		       floe_error *err)
{
	int r = get_typed(obj, key, path, JSON_ARRAY, "a list of strings", out, err);
	json_t *v = *out;
	if (r < 0 || !v)
		return r;
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item)) {
			char ip[PATH_LEN + 24];
			snprintf(ip, sizeof(ip), "%s%s%s[%zu]", path, path[0] ? "." : "", key, i);
			*out = NULL;
			return bad(err, ip, "expected a string, got %s", jkind(item));
		}
	}
	return 0;
}

static bool is_env_name(const char *s)
{
	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (const char *c = s + 1; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

/* An environment map: variable names, string values. Messages never quote
 * a value (it may be a secret). */
static int get_env(const json_t *obj, const char *key, const char *path, json_t **out,
		   floe_error *err)
{
	json_t *v;
	int r = get_object(obj, key, path, &v, err);
	*out = v;
	if (r < 0 || !v)
		return r;
	char p[PATH_LEN];
	join(p, path, key);
	const char *k;
	json_t *val;
	json_object_foreach(v, k, val) {
		if (!is_env_name(k))
			return bad(err, p,
				   "'%s' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)", k);
		if (!json_is_string(val)) {
			char kp[PATH_LEN];
			join(kp, p, k);
			return bad(err, kp, "expected a string, got %s", jkind(val));
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Body -> floe keys
 * ------------------------------------------------------------------------ */

struct tr {
	const struct floe_config_env *env;
	json_t *cfg;  /* the floe endpoint object being built */
	json_t *prov; /* floe key path -> Hugging Face field path */
	floe_error *err;
};

static void prov_set(struct tr *t, const char *floe_path, const char *hf_path)
{
	json_object_set_new(t->prov, floe_path, json_string(hf_path));
}

/* cfg[sect][key] = v (stolen), creating the section. */
static void set_in(json_t *cfg, const char *sect, const char *key, json_t *v)
{
	json_t *s = json_object_get(cfg, sect);
	if (!json_is_object(s)) {
		s = json_object();
		json_object_set_new(cfg, sect, s);
	}
	json_object_set_new(s, key, v);
}

/* Where floe keys come from unless the body says otherwise: the fields a
 * default or a cross-field rule can blame even when they were not sent. */
static void prov_defaults(struct tr *t)
{
	static const char *const table[][2] = {
		{ "name", "name" },
		{ "namespace", "namespace" },
		{ "type", "type" },
		{ "model", "model.repository" },
		{ "engine", "model.image" },
		{ "command", "model.command" },
		{ "args", "model.args" },
		{ "env", "model.env" },
		{ "scaling", "compute.scaling" },
		{ "scaling.min_replica", "compute.scaling.minReplica" },
		{ "scaling.max_replica", "compute.scaling.maxReplica" },
		{ "scaling.scale_to_zero_timeout", "compute.scaling.scaleToZeroTimeout" },
		{ "scaling.target_concurrency", "compute.scaling.measure.pendingRequests" },
		{ "resources", "compute" },
		{ "resources.instance_type", "compute.instanceType" },
		{ "resources.gpus", "compute.instanceSize" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		prov_set(t, table[i][0], table[i][1]);
}

static int tr_type(struct tr *t, const json_t *body)
{
	const char *type;
	int r = get_string(body, "type", "", &type, t->err);
	if (r < 0)
		return r;
	if (!type)
		return bad(t->err, "type", "required (public, authenticated or private)");
	/* huggingface_hub's InferenceEndpointType still has PROTECTED, its
	 * older name for authenticated (and its create default for years). */
	if (!strcmp(type, "protected"))
		type = "authenticated";
	if (strcmp(type, "public") && strcmp(type, "authenticated") && strcmp(type, "private"))
		return bad(t->err, "type", "expected public, authenticated or private, got \"%s\"",
			   type);
	json_object_set_new(t->cfg, "type", json_string(type));
	return 0;
}

/* "x4" -> 4; 0 when it is not of that form. */
static unsigned long instance_size_n(const char *s)
{
	if (s[0] != 'x' || s[1] < '1' || s[1] > '9' || strlen(s) > 8)
		return 0;
	char *end;
	unsigned long n = strtoul(s + 1, &end, 10);
	return *end ? 0 : n;
}

static int tr_scaling(struct tr *t, const json_t *scaling)
{
	static const char *const P = "compute.scaling";
	json_t *v;
	int r;
	if ((r = get_integer(scaling, "minReplica", P, &v, t->err)) < 0)
		return r;
	if (v)
		set_in(t->cfg, "scaling", "min_replica", json_deep_copy(v));
	if ((r = get_integer(scaling, "maxReplica", P, &v, t->err)) < 0)
		return r;
	if (v)
		set_in(t->cfg, "scaling", "max_replica", json_deep_copy(v));
	if ((r = get_integer(scaling, "scaleToZeroTimeout", P, &v, t->err)) < 0)
		return r;
	if (v) {
		json_int_t min = json_integer_value(v);
		char d[48];
		if (min < 0)
			return bad(t->err, "compute.scaling.scaleToZeroTimeout",
				   "must be >= 0 (minutes; 0: never)");
		/* Hugging Face's 0 is "never scale to zero": an idle time no
		 * endpoint reaches. */
		if (min == 0)
			snprintf(d, sizeof(d), "%" PRIu64 "ms", FLOE_HF_NEVER_MS);
		else
			snprintf(d, sizeof(d), "%" JSON_INTEGER_FORMAT "m", min);
		set_in(t->cfg, "scaling", "scale_to_zero_timeout", json_string(d));
	}
	json_t *measure;
	if ((r = get_object(scaling, "measure", P, &measure, t->err)) < 0)
		return r;
	v = member(measure, "pendingRequests");
	if (v) {
		static const char *const mp = "compute.scaling.measure.pendingRequests";
		if (!json_is_number(v))
			return bad(t->err, mp, "expected a number, got %s", jkind(v));
		double x = json_number_value(v);
		if (!(x > 0))
			return bad(t->err, mp, "must be > 0");
		/* Requests in flight per replica: floe's target_concurrency,
		 * rounded half up (x > 0, so truncating x + 0.5 rounds; no libm).
		 * Past 1e12 the loader's own limit message is what matters. */
		json_int_t n = x >= 1e12 ? (json_int_t)1000000000000 : (json_int_t)(x + 0.5);
		if (n < 1)
			n = 1;
		set_in(t->cfg, "scaling", "target_concurrency", json_integer(n));
	}
	return 0;
}

static int tr_compute(struct tr *t, const json_t *body)
{
	json_t *compute, *scaling;
	const char *acc, *itype, *isize;
	int r;
	if ((r = get_object(body, "compute", "", &compute, t->err)) < 0)
		return r;
	if ((r = get_string(compute, "accelerator", "compute", &acc, t->err)) < 0 ||
	    (r = get_string(compute, "instanceType", "compute", &itype, t->err)) < 0 ||
	    (r = get_string(compute, "instanceSize", "compute", &isize, t->err)) < 0 ||
	    (r = get_object(compute, "scaling", "compute", &scaling, t->err)) < 0)
		return r;
	bool gpu = false;
	if (acc && !strcmp(acc, "gpu"))
		gpu = true;
	else if (acc && strcmp(acc, "cpu"))
		return bad(t->err, "compute.accelerator", "expected cpu or gpu, got \"%s\"", acc);
	if (itype)
		set_in(t->cfg, "resources", "instance_type", json_string(itype));
	unsigned long gpus = 0;
	if (gpu) {
		gpus = 1;
		if (isize && !(gpus = instance_size_n(isize)))
			return bad(t->err, "compute.instanceSize",
				   "expected xN, the number of GPUs (x1, x2, x4...), got \"%s\"",
				   isize);
	}
	/* With cpu the size is Hugging Face's vCPU tier: nothing floe bills
	 * or limits, so it is kept for the returned JSON only. */
	set_in(t->cfg, "resources", "gpus", json_integer((json_int_t)gpus));
	return scaling ? tr_scaling(t, scaling) : 0;
}

static const struct image_kind {
	const char *key;     /* in model.image */
	const char *preset;  /* NULL: huggingface (by task) or custom */
	const char *tp_flag; /* the engine's tensor-parallel flag; NULL: 400 */
} image_kinds[] = {
	{ "huggingface", NULL, NULL },
	{ "custom", NULL, NULL },
	{ "vLLM", "vllm", "--tensor-parallel-size" },
	{ "vllm", "vllm", "--tensor-parallel-size" },
	{ "sGLang", "sglang", "--tp-size" },
	{ "sglang", "sglang", "--tp-size" },
	{ "tgi", "tgi", NULL },
	{ "tei", "tei", NULL },
	{ "llamacpp", "llamacpp", NULL },
};
#define N_IMAGE_KINDS (sizeof(image_kinds) / sizeof(image_kinds[0]))
#define IMAGE_KIND_LIST "huggingface, custom, vLLM, sGLang, tgi, tei, llamacpp"

static const char *preset_for_task(const char *task)
{
	static const char *const embedding_tasks[] = { "feature-extraction", "sentence-embeddings",
						       "sentence-similarity" };
	for (size_t i = 0; task && i < sizeof(embedding_tasks) / sizeof(embedding_tasks[0]); i++)
		if (!strcmp(task, embedding_tasks[i]))
			return "tei";
	return "tgi"; /* text-generation, text2text-generation and the rest */
}

/* Preset names are [a-z0-9]+ (the loader's rule for file names). */
static bool is_preset_name(const char *s)
{
	if (!s[0] || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* env[k] = v for each of src, remembering where each came from. */
static void env_merge(struct tr *t, json_t *env, const json_t *src, const char *src_path)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)src, k, v) {
		json_object_set_new(env, k, json_deep_copy(v));
		char fp[PATH_LEN], hp[PATH_LEN];
		join(fp, "env", k);
		join(hp, src_path, k);
		prov_set(t, fp, hp);
	}
}

/*
 * model.command with a preset: the command is the user's (engine custom),
 * everything else the preset's, so {model} and {port} keep their meaning
 * and the engine keeps its environment.
 */
static int preset_as_custom(struct tr *t, const char *preset, const char *preset_path, json_t *env)
{
	struct floe_preset *p;
	floe_error e;
	int r = floe_preset_load(t->env ? t->env->presets_dir : NULL, preset,
				 t->env ? t->env->bindir : NULL, &p, &e);
	if (r == -ENOENT)
		return bad(t->err, preset_path, "unknown engine preset '%s'", preset);
	if (r < 0)
		return floe_error_set(t->err, -EIO, "engine preset %s: %s", preset, e.msg);
	if (!json_object_get(t->cfg, "port"))
		json_object_set_new(t->cfg, "port", json_integer(p->port));
	if (!json_object_get(t->cfg, "health_route"))
		json_object_set_new(t->cfg, "health_route", json_string(p->health_route));
	json_object_set_new(t->cfg, "ready",
			    json_string(p->ready == FLOE_READY_TCP ? "tcp" : "http"));
	char d[48];
	snprintf(d, sizeof(d), "%" PRIu64 "ms", p->start_timeout_ms);
	json_object_set_new(t->cfg, "start_timeout", json_string(d));
	for (size_t i = 0; i < p->n_env; i++)
		json_object_set_new(env, p->env[i].key, json_string(p->env[i].value));
	floe_preset_free(p);
	return 0;
}

static int tr_model(struct tr *t, const json_t *body)
{
	json_t *model, *image, *command, *args, *menv, *secrets;
	const char *repo, *task, *s;
	int r;
	if ((r = get_object(body, "model", "", &model, t->err)) < 0)
		return r;
	if (!model)
		return bad(t->err, "model", "required (at least model.repository)");
	if ((r = get_string(model, "repository", "model", &repo, t->err)) < 0)
		return r;
	if (!repo || !repo[0])
		return bad(t->err, "model.repository", "required (fills {model} in the preset)");
	json_object_set_new(t->cfg, "model", json_string(repo));
	/* Returned as sent; only their types are checked. */
	if ((r = get_string(model, "framework", "model", &s, t->err)) < 0 ||
	    (r = get_string(model, "revision", "model", &s, t->err)) < 0 ||
	    (r = get_string(model, "task", "model", &task, t->err)) < 0 ||
	    (r = get_object(model, "image", "model", &image, t->err)) < 0 ||
	    (r = get_strlist(model, "command", "model", &command, t->err)) < 0 ||
	    (r = get_strlist(model, "args", "model", &args, t->err)) < 0 ||
	    (r = get_env(model, "env", "model", &menv, t->err)) < 0 ||
	    (r = get_env(model, "secrets", "model", &secrets, t->err)) < 0)
		return r;
	if (command && json_array_size(command) == 0)
		return bad(t->err, "model.command", "must not be empty");

	/* The image: exactly one kind. */
	const struct image_kind *kind = &image_kinds[0];
	const char *ikey = "huggingface";
	json_t *iobj = NULL;
	if (image) {
		if (json_object_size(image) != 1)
			return bad(t->err, "model.image",
				   "expected exactly one of " IMAGE_KIND_LIST ", got %zu keys",
				   json_object_size(image));
		void *it = json_object_iter(image);
		ikey = json_object_iter_key(it);
		iobj = json_object_iter_value(it);
		size_t k;
		for (k = 0; k < N_IMAGE_KINDS; k++)
			if (!strcmp(image_kinds[k].key, ikey))
				break;
		if (k == N_IMAGE_KINDS)
			return bad(t->err, "model.image",
				   "unknown image '%s' (expected one of " IMAGE_KIND_LIST ")",
				   ikey);
		kind = &image_kinds[k];
		if (json_is_null(iobj))
			iobj = NULL;
		if (iobj && !json_is_object(iobj))
			return bad(t->err, "model.image", "%s: expected an object, got %s", ikey,
				   jkind(iobj));
	}
	char ip[PATH_LEN];
	join(ip, "model.image", ikey);

	/* Overrides every kind takes: port, health route, environment. */
	json_t *port, *ienv;
	const char *hr_camel, *hr_snake;
	if ((r = get_integer(iobj, "port", ip, &port, t->err)) < 0 ||
	    (r = get_string(iobj, "healthRoute", ip, &hr_camel, t->err)) < 0 ||
	    (r = get_string(iobj, "health_route", ip, &hr_snake, t->err)) < 0 ||
	    (r = get_env(iobj, "env", ip, &ienv, t->err)) < 0)
		return r;
	char p[PATH_LEN];
	if (port) {
		json_object_set_new(t->cfg, "port", json_deep_copy(port));
		join(p, ip, "port");
		prov_set(t, "port", p);
	}
	if (hr_camel && hr_snake)
		return bad(t->err, ip, "give healthRoute or health_route, not both");
	/* huggingface_hub's own examples write custom_image["health_route"]. */
	if (hr_camel || hr_snake) {
		json_object_set_new(t->cfg, "health_route",
				    json_string(hr_camel ? hr_camel : hr_snake));
		join(p, ip, hr_camel ? "healthRoute" : "health_route");
		prov_set(t, "health_route", p);
	}

	const char *preset = kind->preset;
	const char *preset_path = ip; /* what to blame for the engine */
	json_t *cmd = NULL;           /* the custom command, when there is one */
	char url_path[PATH_LEN];
	join(url_path, ip, "url");
	if (!strcmp(kind->key, "huggingface")) {
		preset = preset_for_task(task);
		prov_set(t, "engine", task ? "model.task" : "model.image");
	} else if (!strcmp(kind->key, "custom")) {
		const char *url;
		if ((r = get_string(iobj, "url", ip, &url, t->err)) < 0)
			return r;
		if (!url || !url[0])
			return bad(
				t->err, url_path,
				"required: a floe engine preset (such as sim) or an absolute path "
				"to an executable");
		if (url[0] == '/') {
			/* An executable: checked now, so a typo is a 400 and not a
			 * replica that fails to start later. */
			struct stat sb;
			if (stat(url, &sb) < 0)
				return bad(t->err, url_path, "'%s' is not an executable file (%s)",
					   url, strerror(errno));
			if (!S_ISREG(sb.st_mode) || access(url, X_OK) < 0)
				return bad(t->err, url_path, "'%s' is not an executable file", url);
			if (!port)
				return bad(t->err, ip,
					   "port is required when url is an executable (the port "
					   "it listens on)");
			cmd = json_pack("[s]", url);
			prov_set(t, "command", url_path);
			preset = NULL;
		} else if (is_preset_name(url) && strcmp(url, "custom") != 0) {
			preset = url;
			preset_path = url_path;
			prov_set(t, "engine", url_path);
		} else {
			return bad(
				t->err, url_path,
				"expected a floe engine preset (such as sim) or an absolute path "
				"to an executable, got \"%s\" (floe runs no container images)",
				url);
		}
	} else {
		const char *url;
		json_t *tp;
		/* url is the engine's container image there: floe runs the
		 * preset's executable instead, so it is only type-checked. */
		if ((r = get_string(iobj, "url", ip, &url, t->err)) < 0 ||
		    (r = get_integer(iobj, "tensorParallelSize", ip, &tp, t->err)) < 0)
			return r;
		if (tp) {
			char tpp[PATH_LEN];
			join(tpp, ip, "tensorParallelSize");
			if (!kind->tp_flag)
				return bad(t->err, tpp, "not supported by %s", kind->key);
			if (json_integer_value(tp) < 1)
				return bad(t->err, tpp, "must be >= 1");
			char n[32];
			snprintf(n, sizeof(n), "%" JSON_INTEGER_FORMAT, json_integer_value(tp));
			/* model.args come first, so their indices in loader
			 * messages stay those of model.args. */
			json_t *a = args ? json_deep_copy(args) : json_array();
			json_array_append_new(a, json_string(kind->tp_flag));
			json_array_append_new(a, json_string(n));
			json_object_set_new(t->cfg, "args", a);
		}
		prov_set(t, "engine", ip);
	}
	if (args && !json_object_get(t->cfg, "args"))
		json_object_set_new(t->cfg, "args", json_deep_copy(args));

	json_t *env = json_object();
	if (command) {
		if (preset && (r = preset_as_custom(t, preset, preset_path, env)) < 0) {
			json_decref(env);
			json_decref(cmd);
			return r;
		}
		json_decref(cmd);
		cmd = json_deep_copy(command);
		prov_set(t, "command", "model.command");
		preset = NULL;
	}
	if (preset) {
		json_object_set_new(t->cfg, "engine", json_string(preset));
	} else {
		json_object_set_new(t->cfg, "engine", json_string("custom"));
		json_object_set_new(t->cfg, "command", cmd);
	}
	/* Later sources win: the image's env, model.env, then secrets. */
	if (ienv) {
		char ep[PATH_LEN];
		join(ep, ip, "env");
		env_merge(t, env, ienv, ep);
	}
	if (menv)
		env_merge(t, env, menv, "model.env");
	if (secrets)
		env_merge(t, env, secrets, "model.secrets");
	if (json_object_size(env))
		json_object_set_new(t->cfg, "env", env);
	else
		json_decref(env);
	return 0;
}

/* floe keys a Hugging Face field names: set there, not under floe. */
static const char *const floe_refused[][2] = {
	{ "name", "name" },
	{ "namespace", "the endpoint URL" },
	{ "type", "type" },
	{ "engine", "model.image" },
	{ "model", "model.repository" },
	{ "command", "model.command" },
	{ "args", "model.args" },
	{ "env", "model.env or model.secrets" },
	{ "port", "model.image.KIND.port" },
	{ "health_route", "model.image.KIND.healthRoute" },
};

static const char *const floe_scaling_refused[][2] = {
	{ "min_replica", "compute.scaling.minReplica" },
	{ "max_replica", "compute.scaling.maxReplica" },
	{ "scale_to_zero_timeout", "compute.scaling.scaleToZeroTimeout" },
};

static int tr_floe_section(struct tr *t, const char *sect, json_t *src)
{
	char p[PATH_LEN];
	join(p, "floe", sect);
	if (!json_is_object(src))
		return bad(t->err, p, "expected an object, got %s", jkind(src));
	const char *k;
	json_t *v;
	json_object_foreach(src, k, v) {
		char fp[PATH_LEN], hp[PATH_LEN];
		join(fp, sect, k);
		join(hp, p, k);
		if (!strcmp(sect, "scaling")) {
			for (size_t i = 0;
			     i < sizeof(floe_scaling_refused) / sizeof(floe_scaling_refused[0]);
			     i++)
				if (!strcmp(k, floe_scaling_refused[i][0]))
					return bad(t->err, hp, "not allowed here (set %s)",
						   floe_scaling_refused[i][1]);
			if (!strcmp(k, "target_concurrency") &&
			    json_object_get(json_object_get(t->cfg, "scaling"), k))
				return bad(t->err, hp,
					   "conflicts with compute.scaling.measure.pendingRequests "
					   "(set one of them)");
		}
		set_in(t->cfg, sect, k, json_deep_copy(v));
		prov_set(t, fp, hp);
	}
	return 0;
}

static int tr_floe(struct tr *t, const json_t *body)
{
	json_t *floe;
	int r = get_object(body, "floe", "", &floe, t->err);
	if (r < 0 || !floe)
		return r;
	const char *k;
	json_t *v;
	json_object_foreach(floe, k, v) {
		char hp[PATH_LEN];
		join(hp, "floe", k);
		for (size_t i = 0; i < sizeof(floe_refused) / sizeof(floe_refused[0]); i++)
			if (!strcmp(k, floe_refused[i][0]))
				return bad(t->err, hp, "not allowed here (%s %s)",
					   i == 1 ? "it comes from" : "set", floe_refused[i][1]);
		if (!strcmp(k, "scaling") || !strcmp(k, "resources")) {
			if ((r = tr_floe_section(t, k, v)) < 0)
				return r;
			continue;
		}
		/* Passed through as is: the loader checks it like a config file's
		 * key, and its messages name floe.KEY. */
		json_object_set_new(t->cfg, k, json_deep_copy(v));
		prov_set(t, k, hp);
	}
	return 0;
}

static int translate(struct tr *t, const json_t *body, const char *ns)
{
	if (!json_is_object(body))
		return bad(t->err, "body", "expected a JSON object, got %s",
			   body ? jkind(body) : "nothing");
	const char *name;
	int r = get_string(body, "name", "", &name, t->err);
	if (r < 0)
		return r;
	if (!name)
		return bad(t->err, "name", "required");
	json_object_set_new(t->cfg, "name", json_string(name));
	if (ns)
		json_object_set_new(t->cfg, "namespace", json_string(ns));
	if ((r = tr_type(t, body)) < 0 || (r = tr_compute(t, body)) < 0 ||
	    (r = tr_model(t, body)) < 0 || (r = tr_floe(t, body)) < 0)
		return r;
	return 0;
}

static int translate_new(const json_t *body, const char *ns, const struct floe_config_env *env,
			 struct tr *t, floe_error *err)
{
	t->env = env;
	t->cfg = json_object();
	t->prov = json_object();
	t->err = err;
	prov_defaults(t);
	int r = translate(t, body, ns);
	if (r < 0) {
		json_decref(t->cfg);
		json_decref(t->prov);
		t->cfg = t->prov = NULL;
	}
	return r;
}

int floe_hf_config_json(const json_t *body, const char *ns, const struct floe_config_env *env,
			json_t **out, floe_error *err)
{
	floe_error local;
	if (!err)
		err = &local;
	floe_error_clear(err);
	struct tr t;
	int r = translate_new(body, ns, env, &t, err);
	if (r < 0)
		return r;
	json_decref(t.prov);
	*out = t.cfg;
	return 0;
}

/* ------------------------------------------------------------------------
 * Loader messages -> Hugging Face field paths
 * ------------------------------------------------------------------------ */

/* The Hugging Face path of a floe path: the longest recorded prefix (at a
 * '.' or '[' boundary) plus the rest. NULL when nothing matches. */
static const char *hf_path(const struct tr *t, const char *fpath, char *out)
{
	char buf[PATH_LEN];
	snprintf(buf, sizeof(buf), "%s", fpath);
	size_t n = strlen(buf);
	for (;;) {
		buf[n] = '\0';
		const char *h = json_string_value(json_object_get(t->prov, buf));
		if (h && n) {
			snprintf(out, PATH_LEN, "%s%s", h, fpath + n);
			return out;
		}
		if (n == 0)
			return NULL;
		n--;
		while (n > 0 && fpath[n] != '.' && fpath[n] != '[')
			n--;
	}
}

/* Rewrite floe key names that a message quotes. */
static void rewrite(char *msg, size_t size)
{
	static const char *const table[][2] = {
		{ "must be >= min_replica", "must be >= compute.scaling.minReplica" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char *at = strstr(msg, table[i][0]);
		if (!at)
			continue;
		char tail[FLOE_ERROR_MSG_MAX];
		snprintf(tail, sizeof(tail), "%s", at + strlen(table[i][0]));
		snprintf(at, size - (size_t)(at - msg), "%s%s", table[i][1], tail);
	}
}

static int map_error(const struct tr *t, const floe_error *le, floe_error *err)
{
	const char *m = le->msg;
	static const char head[] = API_NAME ":";
	if (strncmp(m, head, sizeof(head) - 1) != 0)
		/* Not about our text: a preset file of this host is broken. */
		return floe_error_set(err, -EIO, "engine preset: %s", m);
	const char *rest = strchr(m + sizeof(head) - 1, ':');
	rest = rest ? rest + 1 : m;
	while (*rest == ' ')
		rest++;
	static const char ep[] = "endpoints[0]";
	if (strncmp(rest, ep, sizeof(ep) - 1) != 0)
		/* YAML the JSON became did not parse: a character libyaml refuses
		 * (such as U+FFFE) in some string. */
		return floe_error_set(err, -EINVAL,
				      "body: a string holds a character floe cannot take (%s)",
				      rest);
	rest += sizeof(ep) - 1;
	char fpath[PATH_LEN] = "";
	const char *sep = strstr(rest, ": ");
	if (!sep)
		return floe_error_set(err, -EINVAL, "%s", rest);
	if (rest[0] == '.')
		snprintf(fpath, sizeof(fpath), "%.*s", (int)(sep - rest - 1), rest + 1);
	const char *what = sep + 2;
	char msg[FLOE_ERROR_MSG_MAX];
	snprintf(msg, sizeof(msg), "%s", what);
	rewrite(msg, sizeof(msg));

	char hbuf[PATH_LEN];
	const char *hp = NULL;
	/* "unknown key 'k'" is about the section; the key's own record says
	 * whose section it was (floe.snapshot, not compute). */
	static const char uk[] = "unknown key '";
	if (!strncmp(what, uk, sizeof(uk) - 1)) {
		const char *k = what + sizeof(uk) - 1;
		const char *q = strchr(k, '\'');
		char kpath[PATH_LEN];
		snprintf(kpath, sizeof(kpath), "%s%s%.*s", fpath, fpath[0] ? "." : "",
			 (int)(q ? q - k : 0), k);
		if ((hp = hf_path(t, kpath, hbuf))) {
			char *dot = strrchr(hbuf, '.');
			if (dot)
				*dot = '\0';
		}
	}
	if (!hp)
		hp = hf_path(t, fpath, hbuf);
	if (!hp)
		return floe_error_set(err, -EINVAL, "%s%s%s", fpath, fpath[0] ? ": " : "", msg);
	return floe_error_set(err, -EINVAL, "%s: %s", hp, msg);
}

int floe_hf_to_config(const json_t *body, const char *ns, const struct floe_config_env *env,
		      struct floe_endpoint_config **out, floe_error *err)
{
	floe_error local;
	if (!err)
		err = &local;
	floe_error_clear(err);
	struct tr t;
	int r = translate_new(body, ns, env, &t, err);
	if (r < 0)
		return r;
	/* One line of JSON: flow style YAML, every loader message on line 1. */
	char *json = json_dumps(t.cfg, JSON_PRESERVE_ORDER);
	if (!json)
		abort(); /* jansson only fails to dump when out of memory */
	char *yaml = xasprintf("endpoints: [%s]\n", json);
	free(json);
	struct floe_config *cfg = NULL;
	floe_error le;
	floe_error_clear(&le);
	r = floe_config_load_string(yaml, strlen(yaml), API_NAME, env, &cfg, &le);
	free(yaml);
	if (r < 0) {
		r = map_error(&t, &le, err);
	} else if (cfg->n_endpoints != 1) {
		r = floe_error_set(err, -EIO, "translation gave %zu endpoints", cfg->n_endpoints);
	} else {
		*out = floe_endpoint_config_dup(&cfg->endpoints[0]);
	}
	floe_config_free(cfg);
	json_decref(t.cfg);
	json_decref(t.prov);
	return r;
}

/* ------------------------------------------------------------------------
 * Merge patch (RFC 7386, section 2)
 * ------------------------------------------------------------------------ */

json_t *floe_hf_merge(const json_t *stored, const json_t *patch)
{
	if (!json_is_object(patch))
		return patch ? json_deep_copy(patch) : json_null();
	json_t *out = json_is_object(stored) ? json_deep_copy(stored) : json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)patch, k, v) {
		if (json_is_null(v))
			json_object_del(out, k);
		else
			json_object_set_new(out, k, floe_hf_merge(json_object_get(out, k), v));
	}
	return out;
}

/* ------------------------------------------------------------------------
 * Endpoint JSON
 * ------------------------------------------------------------------------ */

void floe_hf_time_format(uint64_t ms, char out[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&s, &tm))
		memset(&tm, 0, sizeof(tm));
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

/* Minutes, rounded up so that a short timeout never reads as 0 ("never"). */
static json_int_t stz_minutes(uint64_t ms)
{
	if (ms >= FLOE_HF_NEVER_MS)
		return 0;
	return (json_int_t)((ms + MS_PER_MIN - 1) / MS_PER_MIN);
}

static json_t *duration_json(uint64_t ms)
{
	char d[48];
	if (ms % 1000)
		snprintf(d, sizeof(d), "%" PRIu64 "ms", ms);
	else
		snprintf(d, sizeof(d), "%" PRIu64 "s", ms / 1000);
	return json_string(d);
}

/* The Hugging Face image of a config-file endpoint. */
static json_t *image_of(const struct floe_endpoint_config *cfg)
{
	static const char *const kinds[][2] = {
		{ "vllm", "vLLM" }, { "sglang", "sGLang" },     { "tgi", "tgi" },
		{ "tei", "tei" },   { "llamacpp", "llamacpp" },
	};
	json_t *inner =
		json_pack("{s:s, s:i}", "healthRoute", cfg->health_route ? cfg->health_route : "/",
			  "port", (int)cfg->port);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (cfg->engine && !strcmp(cfg->engine, kinds[i][0]))
			return json_pack("{s:o}", kinds[i][1], inner);
	const char *url = cfg->engine ? cfg->engine : "custom";
	if (!strcmp(url, "custom") && cfg->argc > 0)
		url = cfg->argv[0];
	json_object_set_new(inner, "url", json_string(url));
	return json_pack("{s:o}", "custom", inner);
}

/* floe's extensions of a config-file endpoint, as a body's floe key would
 * write them. */
static json_t *floe_of(const struct floe_endpoint_config *cfg)
{
	json_t *f = json_object();
	json_t *snap = json_pack("{s:b, s:b}", "enabled", cfg->snapshot.enabled, "lazy_pages",
				 cfg->snapshot.lazy_pages);
	if (cfg->snapshot.warmup_path) {
		json_t *w = json_pack("{s:s, s:s, s:o}", "method",
				      cfg->snapshot.warmup_method ? cfg->snapshot.warmup_method :
								    "POST",
				      "path", cfg->snapshot.warmup_path, "timeout",
				      duration_json(cfg->snapshot.warmup_timeout_ms));
		if (cfg->snapshot.warmup_body)
			json_object_set_new(w, "body", json_string(cfg->snapshot.warmup_body));
		json_object_set_new(snap, "warmup", w);
	}
	json_object_set_new(f, "snapshot", snap);
	json_object_set_new(f, "warm_pool", json_pack("{s:i}", "size", (int)cfg->warm_pool_size));
	json_t *res = json_pack("{s:i}", "gpus", (int)cfg->resources.gpus);
	if (cfg->resources.instance_type)
		json_object_set_new(res, "instance_type",
				    json_string(cfg->resources.instance_type));
	json_object_set_new(f, "resources", res);
	json_object_set_new(f, "scaling",
			    json_pack("{s:I}", "target_concurrency",
				      (json_int_t)cfg->scaling.target_concurrency));
	json_object_set_new(f, "ready", json_string(cfg->ready == FLOE_READY_TCP ? "tcp" : "http"));
	json_object_set_new(f, "start_timeout", duration_json(cfg->start_timeout_ms));
	json_object_set_new(f, "stop_grace", duration_json(cfg->stop_grace_ms));
	json_object_set_new(f, "queue_size", json_integer(cfg->queue_size));
	json_object_set_new(f, "max_hold", duration_json(cfg->max_hold_ms));
	return f;
}

static json_t *masked(const json_t *obj)
{
	json_t *m = json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		json_object_set_new(m, k, json_string("***"));
	}
	return m;
}

static json_t *model_json(const json_t *body, const struct floe_endpoint_config *cfg)
{
	const json_t *bm = member(body, "model");
	json_t *m = json_is_object(bm) ? json_deep_copy(bm) : json_object();
	if (!body) {
		json_object_set_new(m, "repository", json_string(cfg->model ? cfg->model : ""));
		json_t *env = json_object();
		for (size_t i = 0; i < cfg->n_env; i++)
			json_object_set_new(env, cfg->env[i].key, json_string("***"));
		json_object_set_new(m, "env", env);
		json_object_set_new(m, "image", image_of(cfg));
	}
	/* huggingface_hub reads these four unconditionally. */
	if (!json_is_string(json_object_get(m, "repository")))
		json_object_set_new(m, "repository", json_string(cfg->model ? cfg->model : ""));
	if (!json_is_string(json_object_get(m, "framework")))
		json_object_set_new(m, "framework", json_string("custom"));
	if (!json_is_string(json_object_get(m, "revision")))
		json_object_set_new(m, "revision", json_null());
	if (!json_is_string(json_object_get(m, "task")))
		json_object_set_new(m, "task", json_string(""));
	if (!json_is_object(json_object_get(m, "image")))
		json_object_set_new(m, "image", json_pack("{s:{}}", "huggingface"));
	if (!json_is_object(json_object_get(m, "env")))
		json_object_set_new(m, "env", json_object());
	json_t *secrets = json_object_get(m, "secrets");
	if (json_is_object(secrets))
		json_object_set_new(m, "secrets", masked(secrets));
	else
		json_object_del(m, "secrets");
	return m;
}

static json_t *compute_json(const json_t *body, const struct floe_endpoint_config *cfg)
{
	const json_t *bc = member(body, "compute");
	json_t *c = json_is_object(bc) ? json_deep_copy(bc) : json_object();
	bool gpu = cfg->resources.gpus > 0;
	if (!json_is_string(json_object_get(c, "accelerator")))
		json_object_set_new(c, "accelerator", json_string(gpu ? "gpu" : "cpu"));
	if (!json_is_string(json_object_get(c, "instanceType")))
		json_object_set_new(c, "instanceType",
				    json_string(cfg->resources.instance_type ?
							cfg->resources.instance_type :
						gpu ? "gpu" :
						      "cpu"));
	if (!json_is_string(json_object_get(c, "instanceSize"))) {
		char s[16];
		snprintf(s, sizeof(s), "x%u", gpu ? cfg->resources.gpus : 1u);
		json_object_set_new(c, "instanceSize", json_string(s));
	}
	json_t *sc = json_object_get(c, "scaling");
	if (!json_is_object(sc)) {
		sc = json_object();
		json_object_set_new(c, "scaling", sc);
	}
	json_object_set_new(sc, "minReplica", json_integer(cfg->scaling.min_replica));
	json_object_set_new(sc, "maxReplica", json_integer(cfg->scaling.max_replica));
	/* As sent when sent (0 stays "never"), else floe's, in minutes. */
	if (!json_is_integer(json_object_get(sc, "scaleToZeroTimeout")))
		json_object_set_new(
			sc, "scaleToZeroTimeout",
			json_integer(stz_minutes(cfg->scaling.scale_to_zero_timeout_ms)));
	/* Not filled in for an API endpoint: sent back in a PUT it would then
	 * conflict with floe.scaling.target_concurrency. */
	if (!body && !json_is_object(json_object_get(sc, "measure")))
		json_object_set_new(sc, "measure",
				    json_pack("{s:I}", "pendingRequests",
					      (json_int_t)cfg->scaling.target_concurrency));
	return c;
}

json_t *floe_hf_endpoint_json(const json_t *body, const struct floe_endpoint_config *cfg,
			      const struct floe_hf_status *st)
{
	static const struct floe_hf_status none = { 0 };
	if (!st)
		st = &none;
	char created[32], updated[32];
	floe_hf_time_format(st->created_ms, created);
	floe_hf_time_format(st->updated_ms, updated);
	json_t *status = json_pack("{s:s, s:s, s:o, s:I, s:I, s:s, s:s}", "state",
				   st->state ? st->state : FLOE_HF_STATE_PENDING, "message",
				   st->message ? st->message : "", "url",
				   st->url ? json_string(st->url) : json_null(), "readyReplica",
				   (json_int_t)st->ready, "targetReplica", (json_int_t)st->target,
				   "createdAt", created, "updatedAt", updated);
	json_t *floe = NULL;
	if (!body)
		floe = floe_of(cfg);
	else if (json_is_object(member(body, "floe")))
		floe = json_deep_copy(member(body, "floe"));
	else
		floe = json_object();
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:s, s:s}, s:o, s:o}", "name",
			 cfg->name, "namespace", cfg->ns ? cfg->ns : "default", "type",
			 floe_hf_type_name(cfg->access), "healthRoute",
			 cfg->health_route ? cfg->health_route : "/", "model",
			 model_json(body, cfg), "compute", compute_json(body, cfg), "provider",
			 "vendor", "local", "region", st->region ? st->region : "local", "status",
			 status, "floe", floe);
}
