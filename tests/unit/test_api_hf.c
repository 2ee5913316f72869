/*
 * Hugging Face Inference Endpoints JSON <-> floe config: the bodies
 * huggingface_hub sends, every error path with its field path, RFC 7386
 * merge patches, and the Endpoint JSON of API and config-file endpoints.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hf.h"

#define BINDIR "/opt/floe/bin"

static char presets_dir[4096];
static struct floe_config_env env;

/* meson test sets FLOE_SOURCE_DIR; run by hand, fall back to the build's. */
static void setup(void)
{
	const char *src = getenv("FLOE_SOURCE_DIR");
	if (src && src[0])
		snprintf(presets_dir, sizeof(presets_dir), "%s/images", src);
	else
		snprintf(presets_dir, sizeof(presets_dir), "%s", FLOE_PRESETS_DIR);
	env.presets_dir = presets_dir;
	env.bindir = BINDIR;
}

TestSuite(hf, .init = setup);

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	cr_assert_not_null(v, "bad test JSON: %s: %s", je.text, text);
	return v;
}

static struct floe_endpoint_config *to_cfg(const char *body_text)
{
	json_t *body = J(body_text);
	struct floe_endpoint_config *cfg = NULL;
	floe_error err;
	int r = floe_hf_to_config(body, "alice", &env, &cfg, &err);
	cr_assert_eq(r, 0, "translation failed: %s\n--- body: %s", err.msg, body_text);
	cr_assert_not_null(cfg);
	json_decref(body);
	return cfg;
}

/* The translation must fail with -EINVAL and exactly msg; out untouched. */
static void expect_err(const char *body_text, const char *msg)
{
	json_t *body = J(body_text);
	struct floe_endpoint_config sentinel;
	struct floe_endpoint_config *cfg = &sentinel;
	floe_error err;
	int r = floe_hf_to_config(body, "alice", &env, &cfg, &err);
	cr_expect_eq(r, -EINVAL, "r=%d (%s), want -EINVAL\n--- body: %s", r, err.msg, body_text);
	cr_expect_eq(cfg, &sentinel, "out written on failure");
	cr_expect_str_eq(err.msg, msg, "\ngot:  %s\nwant: %s\n--- body: %s", err.msg, msg,
			 body_text);
	if (r == 0 && cfg != &sentinel)
		floe_endpoint_config_free(cfg);
	json_decref(body);
}

static const char *env_get(const struct floe_endpoint_config *c, const char *key)
{
	for (size_t i = 0; i < c->n_env; i++)
		if (!strcmp(c->env[i].key, key))
			return c->env[i].value;
	return NULL;
}

static bool argv_has(const struct floe_endpoint_config *c, const char *a, const char *b)
{
	for (size_t i = 0; i + 1 < c->argc; i++)
		if (!strcmp(c->argv[i], a) && !strcmp(c->argv[i + 1], b))
			return true;
	return false;
}

/* What huggingface_hub's create_inference_endpoint posts (HfApi builds this
 * payload: optional arguments it was not given are sent as null). */
#define HUB_BODY                                                                                 \
	"{\"accountId\": null,"                                                                  \
	" \"compute\": {\"accelerator\": \"gpu\", \"instanceSize\": \"x1\","                     \
	"   \"instanceType\": \"nvidia-a10g\","                                                  \
	"   \"scaling\": {\"maxReplica\": 2, \"minReplica\": 0, \"scaleToZeroTimeout\": null}}," \
	" \"model\": {\"framework\": \"pytorch\", \"repository\": \"openai-community/gpt2\","    \
	"   \"revision\": null, \"task\": \"text-generation\","                                  \
	"   \"image\": {\"huggingface\": {}}},"                                                  \
	" \"name\": \"my-endpoint\","                                                            \
	" \"provider\": {\"region\": \"us-east-1\", \"vendor\": \"aws\"},"                       \
	" \"type\": \"protected\"}"

/* A small body with one part replaced: "%s" is the model object. */
static struct floe_endpoint_config *with_model(const char *model)
{
	char body[4096];
	snprintf(body, sizeof(body),
		 "{\"name\": \"e\", \"type\": \"public\", \"compute\": {\"accelerator\": \"cpu\"},"
		 " \"model\": %s}",
		 model);
	return to_cfg(body);
}

static void model_err(const char *model, const char *msg)
{
	char body[4096];
	snprintf(body, sizeof(body), "{\"name\": \"e\", \"type\": \"public\", \"model\": %s}",
		 model);
	expect_err(body, msg);
}

#define SIM_MODEL "{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\"}}}"

static void compute_err(const char *compute, const char *msg)
{
	char body[4096];
	snprintf(body, sizeof(body),
		 "{\"name\": \"e\", \"type\": \"public\", \"compute\": %s, \"model\": " SIM_MODEL
		 "}",
		 compute);
	expect_err(body, msg);
}

static void floe_err(const char *floe, const char *msg)
{
	char body[4096];
	snprintf(body, sizeof(body),
		 "{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ", \"floe\": %s}",
		 floe);
	expect_err(body, msg);
}

static struct floe_endpoint_config *with_floe(const char *floe)
{
	char body[4096];
	snprintf(body, sizeof(body),
		 "{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ", \"floe\": %s}",
		 floe);
	return to_cfg(body);
}

/* ------------------------------------------------------------------------
 * Create bodies
 * ------------------------------------------------------------------------ */

Test(hf, hub_create_body)
{
	struct floe_endpoint_config *c = to_cfg(HUB_BODY);
	cr_expect_str_eq(c->name, "my-endpoint");
	cr_expect_str_eq(c->ns, "alice");
	cr_expect_eq(c->access, FLOE_ENDPOINT_AUTHENTICATED, "protected is authenticated");
	cr_expect_str_eq(c->engine, "tgi", "text-generation on the huggingface image: tgi");
	cr_expect_str_eq(c->model, "openai-community/gpt2");
	cr_expect_str_eq(c->argv[0], "text-generation-launcher");
	cr_expect(argv_has(c, "--model-id", "openai-community/gpt2"));
	cr_expect(argv_has(c, "--port", "8080"));
	cr_expect_eq(c->port, 8080);
	cr_expect_str_eq(c->health_route, "/health");
	cr_expect_str_eq(env_get(c, "HF_HUB_OFFLINE"), "1");
	cr_expect_str_eq(c->resources.instance_type, "nvidia-a10g");
	cr_expect_eq(c->resources.gpus, 1);
	cr_expect_eq(c->scaling.min_replica, 0);
	cr_expect_eq(c->scaling.max_replica, 2);
	cr_expect_eq(c->scaling.scale_to_zero_timeout_ms, 15 * 60 * 1000, "null: floe's 15m");
	cr_expect_eq(c->scaling.target_concurrency, 4);
	floe_endpoint_config_free(c);
}

Test(hf, types)
{
	const char *names[] = { "public", "authenticated", "private", "protected" };
	enum floe_endpoint_access want[] = { FLOE_ENDPOINT_PUBLIC, FLOE_ENDPOINT_AUTHENTICATED,
					     FLOE_ENDPOINT_PRIVATE, FLOE_ENDPOINT_AUTHENTICATED };
	for (int i = 0; i < 4; i++) {
		char body[512];
		snprintf(body, sizeof(body),
			 "{\"name\": \"e\", \"type\": \"%s\", \"model\": " SIM_MODEL "}", names[i]);
		struct floe_endpoint_config *c = to_cfg(body);
		cr_expect_eq(c->access, want[i], "%s", names[i]);
		floe_endpoint_config_free(c);
	}
	cr_expect_str_eq(floe_hf_type_name(FLOE_ENDPOINT_PUBLIC), "public");
	cr_expect_str_eq(floe_hf_type_name(FLOE_ENDPOINT_AUTHENTICATED), "authenticated");
	cr_expect_str_eq(floe_hf_type_name(FLOE_ENDPOINT_PRIVATE), "private");
}

Test(hf, huggingface_image_by_task)
{
	const char *tasks[][2] = {
		{ "text-generation", "tgi" },     { "text2text-generation", "tgi" },
		{ "feature-extraction", "tei" },  { "sentence-embeddings", "tei" },
		{ "sentence-similarity", "tei" }, { "text-classification", "tgi" },
	};
	for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
		char model[512];
		snprintf(
			model, sizeof(model),
			"{\"repository\": \"m\", \"task\": \"%s\", \"image\": {\"huggingface\": {}}}",
			tasks[i][0]);
		struct floe_endpoint_config *c = with_model(model);
		cr_expect_str_eq(c->engine, tasks[i][1], "task %s", tasks[i][0]);
		floe_endpoint_config_free(c);
	}
	/* no image at all is the huggingface image */
	struct floe_endpoint_config *c = with_model("{\"repository\": \"m\"}");
	cr_expect_str_eq(c->engine, "tgi");
	floe_endpoint_config_free(c);
}

Test(hf, custom_url_preset_name)
{
	struct floe_endpoint_config *c = with_model(SIM_MODEL);
	cr_expect_str_eq(c->engine, "sim");
	cr_expect_str_eq(c->argv[0], BINDIR "/floe-sim");
	cr_expect_eq(c->port, 8000, "the preset's port");
	cr_expect_str_eq(c->health_route, "/health");
	cr_expect_eq(c->resources.gpus, 0);
	floe_endpoint_config_free(c);

	c = with_model("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\","
		       " \"port\": 9000, \"healthRoute\": \"/ready\"}}}");
	cr_expect_eq(c->port, 9000);
	cr_expect(argv_has(c, "--port", "9000"), "{port} follows the override");
	cr_expect_str_eq(c->health_route, "/ready");
	floe_endpoint_config_free(c);

	/* huggingface_hub's examples spell it health_route */
	c = with_model("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\","
		       " \"health_route\": \"/v1/models\", \"env\": {\"A\": \"1\"}}}}");
	cr_expect_str_eq(c->health_route, "/v1/models");
	cr_expect_str_eq(env_get(c, "A"), "1");
	floe_endpoint_config_free(c);
}

Test(hf, custom_url_executable_path)
{
	struct floe_endpoint_config *c =
		with_model("{\"repository\": \"m\", \"args\": [\"-c\", \"serve {port} {model}\"],"
			   " \"image\": {\"custom\": {\"url\": \"/bin/sh\", \"port\": 7000}}}");
	cr_expect_str_eq(c->engine, "custom");
	cr_expect_eq(c->argc, 3);
	cr_expect_str_eq(c->argv[0], "/bin/sh");
	cr_expect_str_eq(c->argv[1], "-c");
	cr_expect_str_eq(c->argv[2], "serve 7000 m");
	cr_expect_eq(c->port, 7000);
	cr_expect_str_eq(c->health_route, "/health", "custom's default");
	floe_endpoint_config_free(c);
}

Test(hf, engine_images_and_tensor_parallel)
{
	struct floe_endpoint_config *c =
		with_model("{\"repository\": \"/models/llama\", \"args\": [\"--dtype\", \"half\"],"
			   " \"image\": {\"vLLM\": {\"url\": \"vllm/vllm-openai:latest\","
			   " \"tensorParallelSize\": 2}}}");
	cr_expect_str_eq(c->engine, "vllm");
	cr_expect_str_eq(c->argv[0], "vllm");
	cr_expect_str_eq(c->argv[c->argc - 4], "--dtype", "model.args before the flag");
	cr_expect_str_eq(c->argv[c->argc - 2], "--tensor-parallel-size");
	cr_expect_str_eq(c->argv[c->argc - 1], "2");
	floe_endpoint_config_free(c);

	c = with_model("{\"repository\": \"m\", \"image\": {\"sGLang\": {\"tensorParallelSize\": 4,"
		       " \"port\": 31000}}}");
	cr_expect_str_eq(c->engine, "sglang");
	cr_expect(argv_has(c, "--tp-size", "4"));
	cr_expect(argv_has(c, "--port", "31000"));
	floe_endpoint_config_free(c);

	const char *kinds[][2] = { { "tgi", "tgi" },
				   { "tei", "tei" },
				   { "llamacpp", "llamacpp" },
				   { "vllm", "vllm" },
				   { "sglang", "sglang" } };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char model[256];
		snprintf(model, sizeof(model), "{\"repository\": \"m\", \"image\": {\"%s\": {}}}",
			 kinds[i][0]);
		c = with_model(model);
		cr_expect_str_eq(c->engine, kinds[i][1]);
		floe_endpoint_config_free(c);
	}
}

Test(hf, scaling)
{
	struct floe_endpoint_config *c =
		to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		       " \"compute\": {\"scaling\": {\"minReplica\": 1, \"maxReplica\": 3,"
		       " \"scaleToZeroTimeout\": 30, \"metric\": \"pendingRequests\","
		       " \"measure\": {\"pendingRequests\": 1.5}}}}");
	cr_expect_eq(c->scaling.min_replica, 1);
	cr_expect_eq(c->scaling.max_replica, 3);
	cr_expect_eq(c->scaling.scale_to_zero_timeout_ms, 30 * 60 * 1000, "minutes");
	cr_expect_eq(c->scaling.target_concurrency, 2, "round(1.5)");
	floe_endpoint_config_free(c);

	c = to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		   " \"compute\": {\"scaling\": {\"scaleToZeroTimeout\": 0,"
		   " \"measure\": {\"pendingRequests\": 0.2}}}}");
	cr_expect_eq(c->scaling.scale_to_zero_timeout_ms, FLOE_HF_NEVER_MS, "0: never");
	cr_expect_eq(c->scaling.target_concurrency, 1, "at least 1");
	floe_endpoint_config_free(c);

	/* hardwareUsage is not something floe measures: ignored */
	c = to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		   " \"compute\": {\"scaling\": {\"metric\": \"hardwareUsage\","
		   " \"measure\": {\"hardwareUsage\": 80}}}}");
	cr_expect_eq(c->scaling.target_concurrency, 4);
	floe_endpoint_config_free(c);
}

Test(hf, compute_resources)
{
	struct floe_endpoint_config *c =
		to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		       " \"compute\": {\"accelerator\": \"gpu\", \"instanceType\": \"nvidia-l4\","
		       " \"instanceSize\": \"x4\"}}");
	cr_expect_eq(c->resources.gpus, 4);
	cr_expect_str_eq(c->resources.instance_type, "nvidia-l4");
	floe_endpoint_config_free(c);
	/* cpu: the size is a vCPU tier, no GPUs, any spelling */
	c = to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		   " \"compute\": {\"accelerator\": \"cpu\", \"instanceType\": \"intel-icl\","
		   " \"instanceSize\": \"large\"}}");
	cr_expect_eq(c->resources.gpus, 0);
	cr_expect_str_eq(c->resources.instance_type, "intel-icl");
	floe_endpoint_config_free(c);
	/* gpu without a size: one GPU */
	c = to_cfg("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		   " \"compute\": {\"accelerator\": \"gpu\"}}");
	cr_expect_eq(c->resources.gpus, 1);
	cr_expect_null(c->resources.instance_type);
	floe_endpoint_config_free(c);
}

Test(hf, command_args_env_secrets)
{
	/* model.command replaces the preset's command but keeps the rest of it */
	struct floe_endpoint_config *c =
		with_model("{\"repository\": \"gpt2\", \"image\": {\"tgi\": {}},"
			   " \"command\": [\"/usr/local/bin/my-tgi\", \"--port\", \"{port}\","
			   " \"--model\", \"{model}\"], \"args\": [\"--x\"]}");
	cr_expect_str_eq(c->engine, "custom");
	cr_expect_eq(c->argc, 6);
	cr_expect_str_eq(c->argv[0], "/usr/local/bin/my-tgi");
	cr_expect(argv_has(c, "--port", "8080"), "the preset's port");
	cr_expect(argv_has(c, "--model", "gpt2"));
	cr_expect_str_eq(c->argv[5], "--x");
	cr_expect_str_eq(c->health_route, "/health");
	cr_expect_eq(c->start_timeout_ms, 20 * 60 * 1000, "tgi's start_timeout");
	cr_expect_str_eq(env_get(c, "HF_HUB_OFFLINE"), "1", "the preset's environment");
	floe_endpoint_config_free(c);

	/* image env < model.env < secrets */
	c = with_model("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\","
		       " \"env\": {\"A\": \"image\", \"C\": \"image\"}}},"
		       " \"env\": {\"A\": \"env\", \"B\": \"env\"},"
		       " \"secrets\": {\"B\": \"s3cr3t\", \"HF_TOKEN\": \"hf_xyz\"}}");
	cr_expect_str_eq(env_get(c, "A"), "env");
	cr_expect_str_eq(env_get(c, "B"), "s3cr3t");
	cr_expect_str_eq(env_get(c, "C"), "image");
	cr_expect_str_eq(env_get(c, "HF_TOKEN"), "hf_xyz");
	floe_endpoint_config_free(c);
}

Test(hf, floe_extensions)
{
	struct floe_endpoint_config *c = with_floe(
		"{\"snapshot\": {\"enabled\": false, \"warmup\": {\"path\": \"/v1/completions\"}},"
		" \"warm_pool\": {\"size\": 2}, \"queue_size\": 5, \"max_hold\": \"20s\","
		" \"start_timeout\": \"2m\", \"resources\": {\"gpus\": 3,"
		" \"instance_type\": \"h200\"}, \"scaling\": {\"target_concurrency\": 9}}");
	cr_expect_not(c->snapshot.enabled);
	cr_expect_str_eq(c->snapshot.warmup_path, "/v1/completions");
	cr_expect_eq(c->warm_pool_size, 2);
	cr_expect_eq(c->queue_size, 5);
	cr_expect_eq(c->max_hold_ms, 20000);
	cr_expect_eq(c->start_timeout_ms, 120000);
	cr_expect_eq(c->resources.gpus, 3, "floe.resources overrides compute");
	cr_expect_str_eq(c->resources.instance_type, "h200");
	cr_expect_eq(c->scaling.target_concurrency, 9);
	floe_endpoint_config_free(c);
}

Test(hf, unknown_fields_are_ignored)
{
	struct floe_endpoint_config *c = to_cfg(
		"{\"name\": \"e\", \"type\": \"public\", \"accountId\": \"acc\", \"tags\": [\"x\"],"
		" \"route\": {\"domain\": \"d\"}, \"provider\": {\"vendor\": \"aws\"},"
		" \"cacheHttpResponses\": true, \"status\": {\"state\": \"running\"},"
		" \"compute\": {\"accelerator\": \"cpu\", \"future\": 1, \"scaling\": {\"x\": 2}},"
		" \"model\": {\"repository\": \"m\", \"fromCatalog\": false,"
		"   \"image\": {\"custom\": {\"url\": \"sim\", \"credentials\": {}}}}}");
	cr_expect_str_eq(c->engine, "sim");
	floe_endpoint_config_free(c);
}

Test(hf, config_json_step)
{
	json_t *body = J(HUB_BODY), *out = NULL;
	floe_error err;
	cr_assert_eq(floe_hf_config_json(body, "alice", &env, &out, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(out, "engine")), "tgi");
	cr_expect_str_eq(json_string_value(json_object_get(out, "namespace")), "alice");
	cr_expect_str_eq(json_string_value(json_object_get(out, "type")), "authenticated");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(out, "resources"), "gpus")),
		     1);
	json_decref(out);
	json_decref(body);
}

/* ------------------------------------------------------------------------
 * Errors: 400 with the Hugging Face field path
 * ------------------------------------------------------------------------ */

Test(hf, errors_top_level)
{
	expect_err("[1]", "body: expected a JSON object, got a list");
	expect_err("{\"type\": \"public\", \"model\": " SIM_MODEL "}", "name: required");
	expect_err("{\"name\": 5, \"type\": \"public\", \"model\": " SIM_MODEL "}",
		   "name: expected a string, got a number");
	expect_err("{\"name\": \"My_EP\", \"type\": \"public\", \"model\": " SIM_MODEL "}",
		   "name: 'My_EP' must be 1 to 63 characters of [a-z0-9-], starting with a letter "
		   "or digit");
	expect_err("{\"name\": \"e\", \"model\": " SIM_MODEL "}",
		   "type: required (public, authenticated or private)");
	expect_err("{\"name\": \"e\", \"type\": \"secret\", \"model\": " SIM_MODEL "}",
		   "type: expected public, authenticated or private, got \"secret\"");
	expect_err("{\"name\": \"e\", \"type\": \"public\"}",
		   "model: required (at least model.repository)");
	expect_err("{\"name\": \"e\", \"type\": \"public\", \"model\": \"gpt2\"}",
		   "model: expected an object, got a string");
	expect_err("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL
		   ", \"compute\": []}",
		   "compute: expected an object, got a list");
}

Test(hf, errors_compute)
{
	compute_err("{\"accelerator\": \"neuron\"}",
		    "compute.accelerator: expected cpu or gpu, got \"neuron\"");
	compute_err("{\"accelerator\": 1}", "compute.accelerator: expected a string, got a number");
	compute_err("{\"accelerator\": \"gpu\", \"instanceSize\": \"large\"}",
		    "compute.instanceSize: expected xN, the number of GPUs (x1, x2, x4...), got "
		    "\"large\"");
	compute_err("{\"accelerator\": \"gpu\", \"instanceSize\": \"x100\"}",
		    "compute.instanceSize: must be <= 64");
	compute_err("{\"instanceType\": \"NVIDIA A10G\"}",
		    "compute.instanceType: 'NVIDIA A10G' must be 1 to 63 characters of "
		    "[a-z0-9._-], starting with a letter or digit");
	compute_err("{\"scaling\": 3}", "compute.scaling: expected an object, got a number");
	compute_err("{\"scaling\": {\"minReplica\": \"2\"}}",
		    "compute.scaling.minReplica: expected an integer, got a string");
	compute_err("{\"scaling\": {\"maxReplica\": 1.5}}",
		    "compute.scaling.maxReplica: expected an integer, got a number");
	compute_err("{\"scaling\": {\"minReplica\": 3, \"maxReplica\": 2}}",
		    "compute.scaling.maxReplica: must be >= compute.scaling.minReplica (3)");
	/* maxReplica left to its default (1) is still the one to raise */
	compute_err("{\"scaling\": {\"minReplica\": 2}}",
		    "compute.scaling.maxReplica: must be >= compute.scaling.minReplica (2)");
	compute_err("{\"scaling\": {\"maxReplica\": 5000}}",
		    "compute.scaling.maxReplica: must be <= 1024");
	compute_err("{\"scaling\": {\"maxReplica\": 0}}",
		    "compute.scaling.maxReplica: must be >= 1");
	compute_err("{\"scaling\": {\"minReplica\": -1}}",
		    "compute.scaling.minReplica: expected a non-negative integer, got \"-1\"");
	compute_err("{\"scaling\": {\"scaleToZeroTimeout\": -5}}",
		    "compute.scaling.scaleToZeroTimeout: must be >= 0 (minutes; 0: never)");
	compute_err("{\"scaling\": {\"scaleToZeroTimeout\": \"15m\"}}",
		    "compute.scaling.scaleToZeroTimeout: expected an integer, got a string");
	compute_err("{\"scaling\": {\"measure\": {\"pendingRequests\": \"x\"}}}",
		    "compute.scaling.measure.pendingRequests: expected a number, got a string");
	compute_err("{\"scaling\": {\"measure\": {\"pendingRequests\": 0}}}",
		    "compute.scaling.measure.pendingRequests: must be > 0");
	compute_err("{\"scaling\": {\"measure\": {\"pendingRequests\": 5000000}}}",
		    "compute.scaling.measure.pendingRequests: must be <= 1000000");
}

Test(hf, errors_model)
{
	model_err("{\"image\": {\"huggingface\": {}}}",
		  "model.repository: required (fills {model} in the preset)");
	model_err("{\"repository\": \"\"}",
		  "model.repository: required (fills {model} in the preset)");
	model_err("{\"repository\": \"m\", \"task\": 5}",
		  "model.task: expected a string, got a number");
	model_err("{\"repository\": \"m\", \"revision\": []}",
		  "model.revision: expected a string, got a list");
	model_err("{\"repository\": \"m\", \"image\": \"tgi\"}",
		  "model.image: expected an object, got a string");
	model_err("{\"repository\": \"m\", \"image\": {\"tgi\": {}, \"tei\": {}}}",
		  "model.image: expected exactly one of huggingface, custom, vLLM, sGLang, tgi, "
		  "tei, llamacpp, got 2 keys");
	model_err("{\"repository\": \"m\", \"image\": {\"docker\": {}}}",
		  "model.image: unknown image 'docker' (expected one of huggingface, custom, vLLM, "
		  "sGLang, tgi, tei, llamacpp)");
	model_err("{\"repository\": \"m\", \"image\": {\"tgi\": 3}}",
		  "model.image: tgi: expected an object, got a number");
	model_err("{\"repository\": \"m\", \"args\": [\"--x\", 3]}",
		  "model.args[1]: expected a string, got a number");
	model_err("{\"repository\": \"m\", \"args\": \"--x\"}",
		  "model.args: expected a list of strings, got a string");
	model_err("{\"repository\": \"m\", \"args\": [\"{nope}\"]}",
		  "model.args[0]: unknown placeholder '{nope}' (known: {port}, {model}, {bindir})");
	model_err("{\"repository\": \"m\", \"command\": []}", "model.command: must not be empty");
	model_err(
		"{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"/bin/sh\","
		" \"port\": 80}}, \"command\": [\"x\", \"{bad}\"]}",
		"model.command[1]: unknown placeholder '{bad}' (known: {port}, {model}, {bindir})");
	model_err("{\"repository\": \"m\", \"env\": {\"BAD-NAME\": \"x\"}}",
		  "model.env: 'BAD-NAME' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
	model_err("{\"repository\": \"m\", \"env\": {\"N\": 1}}",
		  "model.env.N: expected a string, got a number");
	/* a secret's value is never in a message */
	model_err("{\"repository\": \"m\", \"secrets\": {\"TOKEN\": 5}}",
		  "model.secrets.TOKEN: expected a string, got a number");
	model_err("{\"repository\": \"m\", \"secrets\": {\"1TOKEN\": \"hf_secret\"}}",
		  "model.secrets: '1TOKEN' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
}

Test(hf, errors_image)
{
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {}}}",
		  "model.image.custom.url: required: a floe engine preset (such as sim) or an "
		  "absolute path to an executable");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": "
		  "\"ghcr.io/huggingface/text-generation-inference:1.4\"}}}",
		  "model.image.custom.url: expected a floe engine preset (such as sim) or an "
		  "absolute path to an executable, got "
		  "\"ghcr.io/huggingface/text-generation-inference:1.4\" (floe runs no container "
		  "images)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"bin/engine\"}}}",
		  "model.image.custom.url: expected a floe engine preset (such as sim) or an "
		  "absolute path to an executable, got \"bin/engine\" (floe runs no container "
		  "images)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"custom\"}}}",
		  "model.image.custom.url: expected a floe engine preset (such as sim) or an "
		  "absolute path to an executable, got \"custom\" (floe runs no container "
		  "images)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": "
		  "\"/nonexistent/engine\", \"port\": 80}}}",
		  "model.image.custom.url: '/nonexistent/engine' is not an executable file (No "
		  "such file or directory)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"/etc/passwd\","
		  " \"port\": 80}}}",
		  "model.image.custom.url: '/etc/passwd' is not an executable file");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"/bin/sh\"}}}",
		  "model.image.custom: port is required when url is an executable (the port it "
		  "listens on)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"nosuch\"}}}",
		  "model.image.custom.url: unknown engine 'nosuch' (presets: custom, llamacpp, "
		  "sglang, sim, tei, tgi, vllm)");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\", \"port\": "
		  "70000}}}",
		  "model.image.custom.port: must be <= 65535");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\", \"port\": "
		  "\"80\"}}}",
		  "model.image.custom.port: expected an integer, got a string");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\","
		  " \"healthRoute\": \"health\"}}}",
		  "model.image.custom.healthRoute: 'health' must start with '/'");
	model_err("{\"repository\": \"m\", \"image\": {\"tgi\": {\"health_route\": \"x y\"}}}",
		  "model.image.tgi.health_route: 'x y' must start with '/'");
	model_err("{\"repository\": \"m\", \"image\": {\"custom\": {\"url\": \"sim\","
		  " \"healthRoute\": \"/a\", \"health_route\": \"/b\"}}}",
		  "model.image.custom: give healthRoute or health_route, not both");
	model_err("{\"repository\": \"m\", \"image\": {\"tei\": {\"tensorParallelSize\": 2}}}",
		  "model.image.tei.tensorParallelSize: not supported by tei");
	model_err("{\"repository\": \"m\", \"image\": {\"tgi\": {\"tensorParallelSize\": 2}}}",
		  "model.image.tgi.tensorParallelSize: not supported by tgi");
	model_err("{\"repository\": \"m\", \"image\": {\"vLLM\": {\"tensorParallelSize\": 0}}}",
		  "model.image.vLLM.tensorParallelSize: must be >= 1");
	model_err("{\"repository\": \"m\", \"image\": {\"vLLM\": {\"url\": 5}}}",
		  "model.image.vLLM.url: expected a string, got a number");
	model_err("{\"repository\": \"m\", \"image\": {\"tgi\": {\"port\": 0}}}",
		  "model.image.tgi.port: must be >= 1");
}

Test(hf, errors_floe)
{
	floe_err("[]", "floe: expected an object, got a list");
	floe_err("{\"namespace\": \"bob\"}", "floe.namespace: not allowed here (it comes from the "
					     "endpoint URL)");
	floe_err("{\"engine\": \"vllm\"}", "floe.engine: not allowed here (set model.image)");
	floe_err("{\"env\": {}}", "floe.env: not allowed here (set model.env or model.secrets)");
	floe_err("{\"scaling\": {\"min_replica\": 1}}",
		 "floe.scaling.min_replica: not allowed here (set compute.scaling.minReplica)");
	floe_err("{\"scaling\": 4}", "floe.scaling: expected an object, got a number");
	floe_err("{\"scaling\": {\"target_concurrency\": 0}}",
		 "floe.scaling.target_concurrency: must be >= 1");
	floe_err("{\"scaling\": {\"target\": 3}}",
		 "floe.scaling: unknown key 'target' (did you mean 'target_concurrency'?)");
	floe_err("{\"snapshot\": {\"enabeld\": false}}",
		 "floe.snapshot: unknown key 'enabeld' (did you mean 'enabled'?)");
	floe_err("{\"snapshot\": {\"warmup\": {\"path\": \"x\"}}}",
		 "floe.snapshot.warmup.path: 'x' must start with '/'");
	floe_err("{\"snapshot\": {\"enabled\": \"maybe\"}}",
		 "floe.snapshot.enabled: expected true or false, got \"maybe\"");
	floe_err("{\"bogus\": 1}", "floe: unknown key 'bogus'");
	floe_err("{\"queue_sise\": 1}",
		 "floe: unknown key 'queue_sise' (did you mean 'queue_size'?)");
	floe_err("{\"queue_size\": 0}", "floe.queue_size: must be >= 1");
	floe_err("{\"max_hold\": 30}",
		 "floe.max_hold: expected a duration (e.g. 1500ms, 30s, 15m, 2h), got \"30\"");
	floe_err("{\"resources\": {\"gpus\": 100}}", "floe.resources.gpus: must be <= 64");
	floe_err("{\"warm_pool\": {\"size\": 65}}", "floe.warm_pool.size: must be <= 64");
	expect_err("{\"name\": \"e\", \"type\": \"public\", \"model\": " SIM_MODEL ","
		   " \"compute\": {\"scaling\": {\"measure\": {\"pendingRequests\": 2}}},"
		   " \"floe\": {\"scaling\": {\"target_concurrency\": 3}}}",
		   "floe.scaling.target_concurrency: conflicts with "
		   "compute.scaling.measure.pendingRequests (set one of them)");
}

Test(hf, errors_without_err_or_env)
{
	/* err may be NULL; env NULL uses the built-in presets directory */
	json_t *body = J("{\"name\": \"e\"}");
	struct floe_endpoint_config *c = NULL;
	cr_expect_eq(floe_hf_to_config(body, "alice", &env, &c, NULL), -EINVAL);
	cr_expect_null(c);
	json_decref(body);
}

/* ------------------------------------------------------------------------
 * Merge patch (RFC 7386 appendix A) and PUT
 * ------------------------------------------------------------------------ */

Test(hf, merge_rfc7386_examples)
{
	const char *cases[][3] = {
		{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"a\":null}", "{}" },
		{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}" },
		{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}" },
		{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		  "{\"a\":{\"b\":\"d\"}}" },
		{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}" },
		{ "[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]" },
		{ "{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]" },
		{ "{\"a\":\"foo\"}", "null", "null" },
		{ "{\"a\":\"foo\"}", "\"bar\"", "\"bar\"" },
		{ "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}" },
		{ "[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}" },
		{ "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *target = J(cases[i][0]), *patch = J(cases[i][1]), *want = J(cases[i][2]);
		json_t *t0 = json_deep_copy(target), *p0 = json_deep_copy(patch);
		json_t *got = floe_hf_merge(target, patch);
		char *gs = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		cr_expect(json_equal(got, want), "case %zu: %s + %s = %s, want %s", i, cases[i][0],
			  cases[i][1], gs, cases[i][2]);
		cr_expect(json_equal(target, t0) && json_equal(patch, p0),
			  "case %zu: input changed", i);
		free(gs);
		json_decref(got);
		json_decref(target);
		json_decref(patch);
		json_decref(want);
		json_decref(t0);
		json_decref(p0);
	}
}

Test(hf, put_is_a_partial_update)
{
	json_t *stored = J(HUB_BODY);
	/* what huggingface_hub's update_inference_endpoint(max_replica=4) sends */
	json_t *patch = J("{\"compute\": {\"scaling\": {\"maxReplica\": 4}}}");
	json_t *merged = floe_hf_merge(stored, patch);
	struct floe_endpoint_config *c = NULL;
	floe_error err;
	cr_assert_eq(floe_hf_to_config(merged, "alice", &env, &c, &err), 0, "%s", err.msg);
	cr_expect_eq(c->scaling.max_replica, 4);
	cr_expect_eq(c->scaling.min_replica, 0, "untouched");
	cr_expect_eq(c->resources.gpus, 1, "untouched");
	cr_expect_str_eq(c->engine, "tgi", "untouched");
	cr_expect_str_eq(
		json_string_value(json_object_get(json_object_get(merged, "model"), "repository")),
		"openai-community/gpt2");
	floe_endpoint_config_free(c);
	json_decref(patch);

	/* a patch that breaks a rule is refused with the field's path */
	patch = J("{\"compute\": {\"scaling\": {\"minReplica\": 5}}}");
	json_t *bad = floe_hf_merge(merged, patch);
	c = NULL;
	cr_expect_eq(floe_hf_to_config(bad, "alice", &env, &c, &err), -EINVAL);
	cr_expect_str_eq(err.msg,
			 "compute.scaling.maxReplica: must be >= compute.scaling.minReplica (5)");
	json_decref(bad);
	json_decref(patch);

	/* null removes: the image falls back to the huggingface one */
	patch = J("{\"model\": {\"image\": null, \"task\": \"feature-extraction\"}}");
	json_t *m2 = floe_hf_merge(merged, patch);
	cr_assert_eq(floe_hf_to_config(m2, "alice", &env, &c, &err), 0, "%s", err.msg);
	cr_expect_str_eq(c->engine, "tei");
	floe_endpoint_config_free(c);
	json_decref(m2);
	json_decref(patch);
	json_decref(merged);
	json_decref(stored);
}

/* ------------------------------------------------------------------------
 * Endpoint JSON
 * ------------------------------------------------------------------------ */

static json_t *path(json_t *root, const char *p)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", p);
	json_t *v = root;
	for (char *save, *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save))
		v = json_object_get(v, seg);
	return v;
}

static bool ends_with_z(const char *s)
{
	return s && strlen(s) == 24 && s[strlen(s) - 1] == 'Z' && s[10] == 'T';
}

/* The fields huggingface_hub's InferenceEndpoint reads, and the issue's. */
static void check_required(json_t *j)
{
	static const char *const strings[] = { "name",
					       "namespace",
					       "type",
					       "healthRoute",
					       "model.repository",
					       "model.framework",
					       "model.task",
					       "provider.vendor",
					       "provider.region",
					       "status.state",
					       "status.message",
					       "status.createdAt",
					       "status.updatedAt",
					       "compute.accelerator",
					       "compute.instanceType",
					       "compute.instanceSize" };
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		cr_expect(json_is_string(path(j, strings[i])), "%s is not a string", strings[i]);
	static const char *const ints[] = { "status.readyReplica", "status.targetReplica",
					    "compute.scaling.minReplica",
					    "compute.scaling.maxReplica",
					    "compute.scaling.scaleToZeroTimeout" };
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		cr_expect(json_is_integer(path(j, ints[i])), "%s is not an integer", ints[i]);
	static const char *const objects[] = { "model",           "model.image",
					       "model.env",       "compute",
					       "compute.scaling", "provider",
					       "status",          "floe" };
	for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++)
		cr_expect(json_is_object(path(j, objects[i])), "%s is not an object", objects[i]);
	json_t *rev = path(j, "model.revision");
	cr_expect(json_is_null(rev) || json_is_string(rev), "model.revision");
	json_t *url = path(j, "status.url");
	cr_expect(json_is_null(url) || json_is_string(url), "status.url");
	cr_expect_str_eq(json_string_value(path(j, "provider.vendor")), "local");
	cr_expect(ends_with_z(json_string_value(path(j, "status.createdAt"))));
	cr_expect(ends_with_z(json_string_value(path(j, "status.updatedAt"))));
}

Test(hf, time_format)
{
	char t[32];
	floe_hf_time_format(1700000000123ull, t);
	cr_expect_str_eq(t, "2023-11-14T22:13:20.123Z");
	floe_hf_time_format(0, t);
	cr_expect_str_eq(t, "1970-01-01T00:00:00.000Z");
}

Test(hf, endpoint_json_of_api_endpoint)
{
	json_t *body = J("{\"name\": \"my-endpoint\", \"type\": \"protected\","
			 " \"compute\": {\"accelerator\": \"gpu\", \"instanceSize\": \"x1\","
			 "   \"instanceType\": \"nvidia-a10g\", \"scaling\": {\"maxReplica\": 2}},"
			 " \"model\": {\"repository\": \"gpt2\", \"framework\": \"pytorch\","
			 "   \"task\": \"text-generation\", \"image\": {\"tgi\": {}},"
			 "   \"env\": {\"MAX_TOKENS\": \"512\"},"
			 "   \"secrets\": {\"HF_TOKEN\": \"hf_TOPSECRET\"}},"
			 " \"floe\": {\"warm_pool\": {\"size\": 1}}}");
	struct floe_endpoint_config *c = NULL;
	floe_error err;
	cr_assert_eq(floe_hf_to_config(body, "alice", &env, &c, &err), 0, "%s", err.msg);
	struct floe_hf_status st = { .state = FLOE_HF_STATE_RUNNING,
				     .message = "Endpoint is running",
				     .url = "http://127.0.0.1:8080/endpoints/my-endpoint",
				     .region = "host1",
				     .ready = 1,
				     .target = 1,
				     .created_ms = 1700000000123ull,
				     .updated_ms = 1700000060000ull };
	json_t *j = floe_hf_endpoint_json(body, c, &st);
	cr_assert_not_null(j);
	check_required(j);
	cr_expect_str_eq(json_string_value(path(j, "name")), "my-endpoint");
	cr_expect_str_eq(json_string_value(path(j, "namespace")), "alice");
	cr_expect_str_eq(json_string_value(path(j, "type")), "authenticated");
	cr_expect_str_eq(json_string_value(path(j, "healthRoute")), "/health");
	cr_expect_str_eq(json_string_value(path(j, "model.repository")), "gpt2");
	cr_expect_str_eq(json_string_value(path(j, "model.framework")), "pytorch");
	cr_expect(json_is_null(path(j, "model.revision")));
	cr_expect_str_eq(json_string_value(path(j, "model.task")), "text-generation");
	cr_expect(json_is_object(path(j, "model.image.tgi")), "image as sent");
	cr_expect_str_eq(json_string_value(path(j, "model.env.MAX_TOKENS")), "512");
	cr_expect_str_eq(json_string_value(path(j, "model.secrets.HF_TOKEN")), "***");
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.minReplica")), 0, "default");
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.maxReplica")), 2);
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.scaleToZeroTimeout")), 15,
		     "default, in minutes");
	cr_expect_str_eq(json_string_value(path(j, "compute.instanceType")), "nvidia-a10g");
	cr_expect_str_eq(json_string_value(path(j, "provider.region")), "host1");
	cr_expect_str_eq(json_string_value(path(j, "status.state")), "running");
	cr_expect_str_eq(json_string_value(path(j, "status.url")),
			 "http://127.0.0.1:8080/endpoints/my-endpoint");
	cr_expect_eq(json_integer_value(path(j, "status.readyReplica")), 1);
	cr_expect_eq(json_integer_value(path(j, "status.targetReplica")), 1);
	cr_expect_str_eq(json_string_value(path(j, "status.createdAt")),
			 "2023-11-14T22:13:20.123Z");
	cr_expect_str_eq(json_string_value(path(j, "status.updatedAt")),
			 "2023-11-14T22:14:20.000Z");
	cr_expect_eq(json_integer_value(path(j, "floe.warm_pool.size")), 1, "floe as sent");
	char *text = json_dumps(j, 0);
	cr_expect_null(strstr(text, "TOPSECRET"), "a secret leaked: %s", text);
	free(text);
	/* the stored body still has it (floed needs it to restart the engine) */
	cr_expect_str_eq(json_string_value(path(body, "model.secrets.HF_TOKEN")), "hf_TOPSECRET");

	/* what a GET returns is a valid PUT body giving the same endpoint */
	json_object_del(json_object_get(j, "model"), "secrets");
	json_object_del(json_object_get(body, "model"), "secrets");
	struct floe_endpoint_config *c1 = NULL, *c2 = NULL;
	cr_assert_eq(floe_hf_to_config(body, "alice", &env, &c1, &err), 0, "%s", err.msg);
	json_t *merged = floe_hf_merge(body, j);
	cr_assert_eq(floe_hf_to_config(merged, "alice", &env, &c2, &err), 0, "%s", err.msg);
	cr_expect(floe_endpoint_config_equal(c1, c2), "GET then PUT changed the endpoint");
	floe_endpoint_config_free(c1);
	floe_endpoint_config_free(c2);
	json_decref(merged);
	json_decref(j);
	floe_endpoint_config_free(c);

	/* scaleToZeroTimeout 0 ("never") reads back as 0; no status: pending */
	json_decref(body);
	body = J("{\"name\": \"e\", \"type\": \"private\", \"model\": " SIM_MODEL ","
		 " \"compute\": {\"scaling\": {\"scaleToZeroTimeout\": 0}}}");
	cr_assert_eq(floe_hf_to_config(body, "alice", &env, &c, &err), 0, "%s", err.msg);
	j = floe_hf_endpoint_json(body, c, NULL);
	check_required(j);
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.scaleToZeroTimeout")), 0);
	cr_expect_str_eq(json_string_value(path(j, "type")), "private");
	cr_expect_str_eq(json_string_value(path(j, "status.state")), "pending");
	cr_expect(json_is_null(path(j, "status.url")));
	cr_expect_str_eq(json_string_value(path(j, "model.task")), "");
	cr_expect_str_eq(json_string_value(path(j, "model.framework")), "custom");
	json_decref(j);
	floe_endpoint_config_free(c);
	json_decref(body);
}

Test(hf, endpoint_json_of_config_file_endpoint)
{
	static const char yaml[] = "endpoints:\n"
				   "  - name: chat\n"
				   "    namespace: bob\n"
				   "    type: authenticated\n"
				   "    engine: vllm\n"
				   "    model: /models/llama\n"
				   "    env: {HF_TOKEN: hf_CONFIGSECRET}\n"
				   "    scaling: {min_replica: 1, max_replica: 3,"
				   " scale_to_zero_timeout: 30s, target_concurrency: 8}\n"
				   "    resources: {gpus: 2, instance_type: h200}\n"
				   "  - name: demo\n"
				   "    engine: sim\n"
				   "  - name: own\n"
				   "    engine: custom\n"
				   "    command: [/usr/bin/my-engine, --port, '{port}']\n"
				   "    port: 9000\n";
	struct floe_config *cfg = NULL;
	floe_error err;
	cr_assert_eq(floe_config_load_string(yaml, strlen(yaml), "t.yaml", &env, &cfg, &err), 0,
		     "%s", err.msg);
	struct floe_hf_status st = { .state = FLOE_HF_STATE_SCALED_TO_ZERO,
				     .created_ms = 1000,
				     .updated_ms = 2000 };

	json_t *j = floe_hf_endpoint_json(NULL, floe_config_endpoint(cfg, "chat"), &st);
	check_required(j);
	cr_expect_str_eq(json_string_value(path(j, "name")), "chat");
	cr_expect_str_eq(json_string_value(path(j, "namespace")), "bob");
	cr_expect_str_eq(json_string_value(path(j, "type")), "authenticated");
	cr_expect_str_eq(json_string_value(path(j, "model.repository")), "/models/llama");
	cr_expect(json_is_object(path(j, "model.image.vLLM")), "the preset's Hugging Face name");
	cr_expect_eq(json_integer_value(path(j, "model.image.vLLM.port")), 8000);
	cr_expect_str_eq(json_string_value(path(j, "model.env.HF_TOKEN")), "***");
	cr_expect_str_eq(json_string_value(path(j, "compute.accelerator")), "gpu");
	cr_expect_str_eq(json_string_value(path(j, "compute.instanceType")), "h200");
	cr_expect_str_eq(json_string_value(path(j, "compute.instanceSize")), "x2");
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.minReplica")), 1);
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.maxReplica")), 3);
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.scaleToZeroTimeout")), 1,
		     "30s rounds up to a minute, never to 0 (never)");
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.measure.pendingRequests")), 8);
	cr_expect_str_eq(json_string_value(path(j, "status.state")), "scaledToZero");
	cr_expect_str_eq(json_string_value(path(j, "status.createdAt")),
			 "1970-01-01T00:00:01.000Z");
	cr_expect_eq(json_integer_value(path(j, "floe.resources.gpus")), 2);
	cr_expect_eq(json_is_true(path(j, "floe.snapshot.enabled")), true);
	cr_expect_str_eq(json_string_value(path(j, "floe.max_hold")), "300s");
	char *text = json_dumps(j, 0);
	cr_expect_null(strstr(text, "CONFIGSECRET"), "a config env value leaked: %s", text);
	free(text);
	json_decref(j);

	j = floe_hf_endpoint_json(NULL, floe_config_endpoint(cfg, "demo"), NULL);
	check_required(j);
	cr_expect_str_eq(json_string_value(path(j, "type")), "public");
	cr_expect_str_eq(json_string_value(path(j, "namespace")), "default");
	cr_expect_str_eq(json_string_value(path(j, "model.image.custom.url")), "sim");
	cr_expect_str_eq(json_string_value(path(j, "model.repository")), "");
	cr_expect_str_eq(json_string_value(path(j, "compute.accelerator")), "cpu");
	cr_expect_eq(json_integer_value(path(j, "compute.scaling.scaleToZeroTimeout")), 15);
	json_decref(j);

	j = floe_hf_endpoint_json(NULL, floe_config_endpoint(cfg, "own"), NULL);
	check_required(j);
	cr_expect_str_eq(json_string_value(path(j, "model.image.custom.url")),
			 "/usr/bin/my-engine");
	cr_expect_eq(json_integer_value(path(j, "model.image.custom.port")), 9000);
	json_decref(j);
	floe_config_free(cfg);
}
