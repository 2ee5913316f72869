/*
 * Hugging Face Inference Endpoints (v2 API) JSON <-> floe endpoint config
 * (issue 5). Pure translation, no I/O beyond reading presets (and checking
 * that a custom executable exists): the routes call it.
 *
 * Create/update body -> config. The body is turned into a JSON object of
 * floe's own endpoint keys, wrapped as the YAML text `endpoints: [JSON]`
 * (JSON is YAML flow style) and loaded by floe_config_load_string, so every
 * rule, default and preset of a config-file endpoint applies unchanged. A
 * loader error is mapped back to the Hugging Face field it came from.
 *
 * The mapping (JSON null is the same as an absent field everywhere):
 *
 *   name                          -> name (required)
 *   (the URL's namespace)         -> namespace
 *   type                          -> type: public | authenticated | private
 *                                    (required; "protected", huggingface_hub's
 *                                    older name, is taken as authenticated)
 *   compute.accelerator           -> "cpu" (default) or "gpu"; anything else: 400
 *   compute.instanceType          -> resources.instance_type
 *   compute.instanceSize          -> with gpu: "xN" -> resources.gpus = N (absent: 1);
 *                                    with cpu: ignored (resources.gpus = 0)
 *   compute.scaling.minReplica    -> scaling.min_replica
 *   compute.scaling.maxReplica    -> scaling.max_replica
 *   compute.scaling.scaleToZeroTimeout (minutes)
 *                                 -> scaling.scale_to_zero_timeout = N minutes;
 *                                    0 = never: FLOE_HF_NEVER_MS; absent: floe's 15m
 *   compute.scaling.measure.pendingRequests (number > 0)
 *                                 -> scaling.target_concurrency = max(1, round(x))
 *   compute.scaling.metric, measure.hardwareUsage: ignored (floe scales on
 *                                    requests in flight)
 *   model.repository              -> model (required, fills {model})
 *   model.framework, revision, task: returned only (task picks the preset
 *                                    of image "huggingface")
 *   model.image (default {"huggingface":{}}), exactly one of:
 *     {"huggingface": {}}         -> preset tei for task feature-extraction,
 *                                    sentence-embeddings, sentence-similarity;
 *                                    tgi otherwise
 *     {"custom": {url, healthRoute|health_route, port, env}}
 *                                 -> url is a preset name ("sim") -> engine url,
 *                                    or an absolute path to an executable ->
 *                                    engine custom, command [url], port required;
 *                                    a container image reference is a 400
 *     {"vLLM"|"sGLang"|"tgi"|"tei"|"llamacpp": {url, port, healthRoute, env,
 *       tensorParallelSize}}      -> presets vllm, sglang, tgi, tei, llamacpp
 *                                    ("vllm" and "sglang" spelled so too); url
 *                                    (a container image there) is ignored;
 *                                    tensorParallelSize N -> args
 *                                    "--tensor-parallel-size N" (vLLM),
 *                                    "--tp-size N" (SGLang), else 400
 *     healthRoute/health_route -> health_route, port -> port, env -> env
 *   model.command (list)          -> the whole argv: engine custom, keeping the
 *                                    preset's port, health route, readiness,
 *                                    start timeout and environment
 *   model.args (list)             -> args (before tensorParallelSize's flags)
 *   model.env, model.secrets      -> env, over the image's env; secrets win and
 *                                    are never returned ("***")
 *   floe                          -> floe's own keys, as in a config file:
 *                                    snapshot, warm_pool, resources, scaling
 *                                    (target_concurrency), start_timeout,
 *                                    stop_grace, queue_size, max_hold, ready.
 *                                    They override what the Hugging Face
 *                                    fields derive (resources), except keys a
 *                                    Hugging Face field names (name, namespace,
 *                                    type, engine, model, command, args, env,
 *                                    port, health_route, scaling.min_replica,
 *                                    max_replica, scale_to_zero_timeout): 400,
 *                                    as is target_concurrency together with
 *                                    measure.pendingRequests. Unknown floe keys:
 *                                    400 (did you mean).
 *   anything else (provider, accountId, route, tags, ...): ignored.
 *
 * Errors: -EINVAL, message "FIELD.PATH: what is wrong", e.g.
 * "compute.scaling.maxReplica: must be >= compute.scaling.minReplica (2)":
 * the route's 400. -EIO: a broken preset file on this host (a 500).
 */
#ifndef FLOE_HF_H
#define FLOE_HF_H

#include <jansson.h>
#include <stdint.h>

#include "activator.h"
#include "config.h"
#include "error.h"

/* Hugging Face's endpoint states (status.state). */
#define FLOE_HF_STATE_PENDING "pending"
#define FLOE_HF_STATE_INITIALIZING "initializing"
#define FLOE_HF_STATE_UPDATING "updating"
#define FLOE_HF_STATE_UPDATE_FAILED "updateFailed"
#define FLOE_HF_STATE_RUNNING "running"
#define FLOE_HF_STATE_PAUSED "paused"
#define FLOE_HF_STATE_FAILED "failed"
#define FLOE_HF_STATE_SCALED_TO_ZERO "scaledToZero"

/** scaleToZeroTimeout 0 ("never") as floe's scale_to_zero_timeout: 100 years. */
#define FLOE_HF_NEVER_MS (UINT64_C(36500) * 24 * 60 * 60 * 1000)

/** What the routes know of an endpoint's life, for its status object. */
struct floe_hf_status {
	const char *state;               /* one of FLOE_HF_STATE_*; NULL: pending */
	const char *message;             /* NULL: "" */
	const char *url;                 /* data-plane URL; NULL: null */
	const char *region;              /* provider.region; NULL: "local" */
	uint32_t ready, target;          /* readyReplica, targetReplica */
	uint64_t created_ms, updated_ms; /* Unix milliseconds */
};

/** The Hugging Face name of a served endpoint's state (FLOE_HF_STATE_*). */
const char *floe_hf_state_name(enum floe_endpoint_state s);

/** "public", "authenticated" or "private". */
const char *floe_hf_type_name(enum floe_endpoint_access access);

/**
 * The floe endpoint keys a create body stands for, as a new JSON object
 * (the first step of floe_hf_to_config; useful to log or test). env is
 * needed only when model.command replaces a preset's command (its port,
 * health route and environment are kept) and may be NULL otherwise.
 * Returns 0 and *out (caller's reference), or -EINVAL with err set. The
 * object may still be refused by the loader.
 */
int floe_hf_config_json(const json_t *body, const char *ns, const struct floe_config_env *env,
			json_t **out, floe_error *err);

/**
 * Translate a create body (or a merged update body) into an endpoint of
 * namespace ns, through the config loader. Returns 0 and *out (free with
 * floe_endpoint_config_free), or a negative code with err set (-EINVAL:
 * the message starts with the Hugging Face field path; -EIO: a broken
 * preset on this host). *out is untouched on failure.
 */
int floe_hf_to_config(const json_t *body, const char *ns, const struct floe_config_env *env,
		      struct floe_endpoint_config **out, floe_error *err);

/**
 * RFC 7386 JSON merge patch: objects merge recursively, null removes a
 * member, anything else replaces. Neither argument is changed; returns a
 * new reference (a PUT stores it, then passes it to floe_hf_to_config).
 */
json_t *floe_hf_merge(const json_t *stored, const json_t *patch);

/**
 * The Endpoint JSON the API returns (new reference). body: the stored
 * create/merged body, or NULL for a config-file endpoint (rendered from
 * cfg alone). st may be NULL (pending, no URL, zero times). Secrets are
 * never included: each model.secrets value reads "***", and a config-file
 * endpoint's env values all read "***" (a config has no notion of which
 * are secret).
 */
json_t *floe_hf_endpoint_json(const json_t *body, const struct floe_endpoint_config *cfg,
			      const struct floe_hf_status *st);

/** Format Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.sssZ" (UTC) into out. */
void floe_hf_time_format(uint64_t ms, char out[32]);

#endif
