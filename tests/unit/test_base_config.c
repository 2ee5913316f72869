/*
 * Config loader: defaults, every error shape with its FILE:LINE, durations,
 * HOST:PORT, presets and placeholders, env merge, the embedded default,
 * examples/floe.yaml, and the equal/dup pair reload relies on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define BINDIR "/opt/floe/bin"
/* sha256("test"), the example */
#define SHA_TEST "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static char presets_dir[4096];
static char source_dir[4096];

/* meson test sets FLOE_SOURCE_DIR; run by hand, fall back to the build's. */
static void find_dirs(void)
{
	const char *src = getenv("FLOE_SOURCE_DIR");
	if (src && src[0]) {
		snprintf(source_dir, sizeof(source_dir), "%s", src);
	} else {
		snprintf(source_dir, sizeof(source_dir), "%s", FLOE_PRESETS_DIR);
		char *slash = strrchr(source_dir, '/');
		if (slash)
			*slash = '\0';
	}
	snprintf(presets_dir, sizeof(presets_dir), "%s/images", source_dir);
}

static struct floe_config_env env_for(const char *dir)
{
	struct floe_config_env env = { .presets_dir = dir, .bindir = BINDIR };
	return env;
}

static struct floe_config *load_with(const char *yaml, const char *dir)
{
	struct floe_config_env env = env_for(dir);
	struct floe_config *cfg = NULL;
	floe_error err;
	floe_error_clear(&err);
	int r = floe_config_load_string(yaml, strlen(yaml), "t.yaml", &env, &cfg, &err);
	cr_assert_eq(r, 0, "load failed: %s", err.msg);
	cr_assert_not_null(cfg);
	return cfg;
}

static struct floe_config *load(const char *yaml)
{
	return load_with(yaml, presets_dir);
}

/* The load must fail with exactly this message; *out stays untouched. */
static void expect_error_with(const char *yaml, const char *dir, const char *msg)
{
	struct floe_config_env env = env_for(dir);
	struct floe_config *sentinel = (struct floe_config *)&env;
	struct floe_config *cfg = sentinel;
	floe_error err;
	floe_error_clear(&err);
	int r = floe_config_load_string(yaml, strlen(yaml), "t.yaml", &env, &cfg, &err);
	cr_expect_lt(r, 0, "loaded but should fail with: %s\n--- yaml:\n%s", msg, yaml);
	cr_expect_eq(cfg, sentinel, "out written on failure");
	cr_expect_str_eq(err.msg, msg, "got:  %s\nwant: %s\n--- yaml:\n%s", err.msg, msg, yaml);
	if (r == 0 && cfg != sentinel)
		floe_config_free(cfg);
}

static void expect_error(const char *yaml, const char *msg)
{
	expect_error_with(yaml, presets_dir, msg);
}

TestSuite(config, .init = find_dirs);

/* ---------------------------------------------------------------- defaults */

Test(config, top_level_defaults)
{
	struct floe_config *cfg = load("{}\n");
	cr_expect_str_eq(cfg->path, "t.yaml");
	cr_expect_str_eq(cfg->listen_host, "127.0.0.1");
	cr_expect_eq(cfg->listen_port, 8080);
	cr_expect_str_eq(cfg->api_host, "127.0.0.1");
	cr_expect_eq(cfg->api_port, 8081);
	cr_expect_str_eq(cfg->data_dir, "/var/lib/floe");
	cr_expect_str_eq(cfg->log_level, "info");
	cr_expect_eq(cfg->log_json, false);
	cr_expect_eq(cfg->shutdown_grace_ms, 30000);
	cr_expect_eq(cfg->replica_log_max_bytes, 10485760);
	cr_expect_eq(cfg->max_header_bytes, 65536);
	cr_expect_eq(cfg->max_body_bytes, 32u * 1024 * 1024);
	cr_expect_eq(cfg->header_timeout_ms, 10000);
	cr_expect_eq(cfg->n_endpoints, 0);
	floe_config_free(cfg);
}

Test(config, empty_file_is_all_defaults)
{
	struct floe_config *cfg = load("# nothing but a comment\n");
	cr_expect_eq(cfg->listen_port, 8080);
	cr_expect_str_eq(cfg->data_dir, "/var/lib/floe");
	cr_expect_eq(cfg->n_endpoints, 0);
	floe_config_free(cfg);
}

Test(config, endpoint_defaults_from_sim_preset)
{
	struct floe_config *cfg = load("endpoints:\n"
				       "  - name: a\n"
				       "    engine: sim\n");
	cr_assert_eq(cfg->n_endpoints, 1);
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_expect_str_eq(ep->name, "a");
	cr_expect_str_eq(ep->engine, "sim");
	cr_expect_null(ep->model);
	cr_assert_eq(ep->argc, 3);
	cr_expect_str_eq(ep->argv[0], BINDIR "/floe-sim");
	cr_expect_str_eq(ep->argv[1], "--port");
	cr_expect_str_eq(ep->argv[2], "8000");
	cr_expect_null(ep->argv[3]);
	cr_expect_eq(ep->n_env, 0);
	cr_expect_eq(ep->port, 8000);
	cr_expect_str_eq(ep->health_route, "/health");
	cr_expect_eq(ep->ready, FLOE_READY_HTTP);
	cr_expect_eq(ep->start_timeout_ms, 60000);
	cr_expect_eq(ep->stop_grace_ms, 10000);
	cr_expect_eq(ep->queue_size, 1024);
	cr_expect_eq(ep->max_hold_ms, 300000);
	cr_expect_eq(ep->scaling.min_replica, 0);
	cr_expect_eq(ep->scaling.max_replica, 1);
	cr_expect_eq(ep->scaling.scale_to_zero_timeout_ms, 15 * 60 * 1000);
	cr_expect_eq(ep->scaling.target_concurrency, 4);
	cr_expect_eq(ep->line, 2);
	floe_config_free(cfg);
}

Test(config, custom_endpoint_defaults)
{
	struct floe_config *cfg = load("endpoints:\n"
				       "  - name: c\n"
				       "    engine: custom\n"
				       "    command: [/usr/bin/my-server, --listen, \"{port}\"]\n"
				       "    port: 9000\n");
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_assert_eq(ep->argc, 3);
	cr_expect_str_eq(ep->argv[2], "9000");
	cr_expect_str_eq(ep->health_route, "/health");
	cr_expect_eq(ep->ready, FLOE_READY_HTTP);
	cr_expect_eq(ep->start_timeout_ms, 10 * 60 * 1000);
	floe_config_free(cfg);
}

Test(config, every_key_set)
{
	struct floe_config *cfg = load("listen: 0.0.0.0:9080\n"
				       "api_listen: '[::1]:9081'\n"
				       "data_dir: /srv/floe\n"
				       "log_level: debug\n"
				       "log_format: json\n"
				       "shutdown_grace: 1500ms\n"
				       "replica_log_max_bytes: 4096\n"
				       "limits:\n"
				       "  max_header_bytes: 1048576\n"
				       "  max_body_bytes: 1\n"
				       "  header_timeout: 100ms\n"
				       "endpoints:\n"
				       "  - name: x-1\n"
				       "    engine: custom\n"
				       "    model: m\n"
				       "    command: [srv, --model, \"{model}\"]\n"
				       "    args: [--port, \"{port}\"]\n"
				       "    env: {A: '1', B: two}\n"
				       "    port: 65535\n"
				       "    health_route: /ready\n"
				       "    ready: tcp\n"
				       "    start_timeout: 2h\n"
				       "    stop_grace: 0s\n"
				       "    queue_size: 1000000\n"
				       "    max_hold: 1s\n"
				       "    scaling:\n"
				       "      min_replica: 3\n"
				       "      max_replica: 1024\n"
				       "      scale_to_zero_timeout: 1s\n"
				       "      target_concurrency: 1\n"
				       /* tokens: 0.0.0.0 is allowed (issue 5) */
				       "auth:\n"
				       "  tokens:\n"
				       "    - namespace: ops\n"
				       "      sha256: " SHA_TEST "\n");
	cr_expect_str_eq(cfg->listen_host, "0.0.0.0");
	cr_expect_eq(cfg->auth.n_tokens, 1);
	cr_expect_eq(cfg->listen_port, 9080);
	cr_expect_str_eq(cfg->api_host, "::1");
	cr_expect_eq(cfg->api_port, 9081);
	cr_expect_str_eq(cfg->data_dir, "/srv/floe");
	cr_expect_str_eq(cfg->log_level, "debug");
	cr_expect_eq(cfg->log_json, true);
	cr_expect_eq(cfg->shutdown_grace_ms, 1500);
	cr_expect_eq(cfg->replica_log_max_bytes, 4096);
	cr_expect_eq(cfg->max_header_bytes, 1048576);
	cr_expect_eq(cfg->max_body_bytes, 1);
	cr_expect_eq(cfg->header_timeout_ms, 100);
	cr_assert_eq(cfg->n_endpoints, 1);
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_expect_str_eq(ep->name, "x-1");
	cr_expect_str_eq(ep->engine, "custom");
	cr_expect_str_eq(ep->model, "m");
	cr_assert_eq(ep->argc, 5);
	const char *want[] = { "srv", "--model", "m", "--port", "65535" };
	for (size_t i = 0; i < 5; i++)
		cr_expect_str_eq(ep->argv[i], want[i]);
	cr_assert_eq(ep->n_env, 2);
	cr_expect_str_eq(ep->env[0].key, "A");
	cr_expect_str_eq(ep->env[0].value, "1");
	cr_expect_str_eq(ep->env[1].key, "B");
	cr_expect_str_eq(ep->env[1].value, "two");
	cr_expect_eq(ep->port, 65535);
	cr_expect_str_eq(ep->health_route, "/ready");
	cr_expect_eq(ep->ready, FLOE_READY_TCP);
	cr_expect_eq(ep->start_timeout_ms, 2 * 3600 * 1000);
	cr_expect_eq(ep->stop_grace_ms, 0);
	cr_expect_eq(ep->queue_size, 1000000);
	cr_expect_eq(ep->max_hold_ms, 1000);
	cr_expect_eq(ep->scaling.min_replica, 3);
	cr_expect_eq(ep->scaling.max_replica, 1024);
	cr_expect_eq(ep->scaling.scale_to_zero_timeout_ms, 1000);
	cr_expect_eq(ep->scaling.target_concurrency, 1);
	cr_expect_eq(ep->line, 13);
	floe_config_free(cfg);
}

Test(config, planes_may_share_a_port_on_different_hosts)
{
	struct floe_config *cfg = load("listen: 127.0.0.1:9000\napi_listen: 127.0.0.2:9000\n");
	cr_expect_str_eq(cfg->api_host, "127.0.0.2");
	cr_expect_eq(cfg->api_port, 9000);
	floe_config_free(cfg);
}

Test(config, endpoint_overrides_preset_defaults)
{
	struct floe_config *cfg = load("endpoints:\n"
				       "  - name: a\n"
				       "    engine: sim\n"
				       "    port: 7000\n"
				       "    health_route: /healthz\n"
				       "    ready: tcp\n"
				       "    start_timeout: 5s\n");
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_expect_eq(ep->port, 7000);
	cr_expect_str_eq(ep->argv[2], "7000", "{port} follows the endpoint's port");
	cr_expect_str_eq(ep->health_route, "/healthz");
	cr_expect_eq(ep->ready, FLOE_READY_TCP);
	cr_expect_eq(ep->start_timeout_ms, 5000);
	floe_config_free(cfg);
}

Test(config, lookup_by_name)
{
	struct floe_config *cfg = load("endpoints:\n"
				       "  - {name: a, engine: sim}\n"
				       "  - {name: b, engine: sim}\n");
	cr_assert_eq(cfg->n_endpoints, 2);
	cr_expect_eq(floe_config_endpoint(cfg, "b"), &cfg->endpoints[1]);
	cr_expect_eq(floe_config_endpoint(cfg, "a"), &cfg->endpoints[0]);
	cr_expect_null(floe_config_endpoint(cfg, "c"));
	cr_expect_eq(cfg->endpoints[1].line, 3);
	floe_config_free(cfg);
}

/* ------------------------------------------------------ embedded & example */

Test(config, embedded_default_loads)
{
	struct floe_config_env env = env_for(presets_dir);
	struct floe_config *cfg = NULL;
	floe_error err;
	int r = floe_config_load_string(floe_config_default_yaml, strlen(floe_config_default_yaml),
					"<embedded>", &env, &cfg, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	cr_expect_str_eq(cfg->listen_host, "127.0.0.1");
	cr_expect_eq(cfg->listen_port, 8080);
	cr_expect_eq(cfg->api_port, 8081);
	cr_assert_eq(cfg->n_endpoints, 1);
	const struct floe_endpoint_config *ep = floe_config_endpoint(cfg, "demo");
	cr_assert_not_null(ep);
	cr_expect_str_eq(ep->engine, "sim");
	cr_assert_eq(ep->argc, 5);
	cr_expect_str_eq(ep->argv[0], BINDIR "/floe-sim");
	cr_expect_str_eq(ep->argv[3], "--init-ms");
	cr_expect_str_eq(ep->argv[4], "2000");
	cr_expect_eq(ep->scaling.min_replica, 0);
	cr_expect_eq(ep->scaling.max_replica, 2);
	cr_expect_eq(ep->scaling.scale_to_zero_timeout_ms, 5 * 60 * 1000);
	cr_expect_eq(ep->scaling.target_concurrency, 4);
	floe_config_free(cfg);
}

Test(config, embedded_default_loads_with_compiled_in_presets)
{
	/* No env at all: presets from FLOE_PRESETS_DIR, {bindir} from /proc/self/exe. */
	struct floe_config *cfg = NULL;
	floe_error err;
	int r = floe_config_load_string(floe_config_default_yaml, strlen(floe_config_default_yaml),
					"<embedded>", NULL, &cfg, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	char want[4200];
	snprintf(want, sizeof(want), "%s/floe-sim", exe);
	cr_expect_str_eq(cfg->endpoints[0].argv[0], want);
	floe_config_free(cfg);
}

Test(config, example_file_loads)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/examples/floe.yaml", source_dir);
	struct floe_config_env env = env_for(presets_dir);
	struct floe_config *cfg = NULL;
	floe_error err;
	int r = floe_config_load_file(path, &env, &cfg, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	cr_expect_str_eq(cfg->path, path);
	cr_expect_gt(cfg->n_endpoints, 1);
	/* the example shows a preset endpoint of every engine plus a custom one */
	const char *engines[] = { "sim", "vllm", "tgi", "sglang", "tei", "llamacpp", "custom" };
	for (size_t e = 0; e < sizeof(engines) / sizeof(engines[0]); e++) {
		bool found = false;
		for (size_t i = 0; i < cfg->n_endpoints; i++)
			found |= strcmp(cfg->endpoints[i].engine, engines[e]) == 0;
		cr_expect(found, "examples/floe.yaml has no %s endpoint", engines[e]);
	}
	const struct floe_endpoint_config *demo = floe_config_endpoint(cfg, "demo");
	cr_assert_not_null(demo);
	cr_expect_str_eq(demo->argv[0], BINDIR "/floe-sim");
	floe_config_free(cfg);
}

Test(config, load_file_missing)
{
	struct floe_config_env env = env_for(presets_dir);
	struct floe_config *cfg = NULL;
	floe_error err;
	int r = floe_config_load_file("/nonexistent/floe.yaml", &env, &cfg, &err);
	cr_expect_eq(r, -ENOENT);
	cr_expect_null(cfg);
	cr_expect_str_eq(err.msg, "/nonexistent/floe.yaml: cannot open: No such file or directory");
}

Test(config, load_file_error_names_the_file)
{
	char path[] = "/tmp/floe-config-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *yaml = "listen: 127.0.0.1:8080\n"
			   "endpoints:\n"
			   "  - name: a\n"
			   "    engine: sim\n"
			   "    scaling: {max_replica: 0}\n";
	cr_assert_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	struct floe_config_env env = env_for(presets_dir);
	struct floe_config *cfg = NULL;
	floe_error err;
	int r = floe_config_load_file(path, &env, &cfg, &err);
	unlink(path);
	cr_expect_eq(r, -EINVAL);
	char want[512];
	snprintf(want, sizeof(want), "%s:5: endpoints[0].scaling.max_replica: must be >= 1", path);
	cr_expect_str_eq(err.msg, want);
}

/* ------------------------------------------------------------------ errors */

struct error_case {
	const char *yaml;
	const char *msg;
};

static void run_error_cases(const struct error_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_error(c[i].yaml, c[i].msg);
}

#define EP "endpoints:\n  - name: a\n    engine: sim\n" /* lines 1-3 */

Test(config, error_shapes_from_the_brief)
{
	static const struct error_case cases[] = {
		{ EP "    scaling:\n"
		     "      min_replica: 0\n"
		     "      max_replica: 0\n",
		  "t.yaml:6: endpoints[0].scaling.max_replica: must be >= 1" },
		{ "endpoints:\n"
		  "  - name: a\n"
		  "    engine: sim\n"
		  "  - name: b\n"
		  "    engine: sim\n"
		  "    prot: 80\n",
		  "t.yaml:6: endpoints[1]: unknown key 'prot' (did you mean 'port'?)" },
		{ "# comment\n"
		  "\n"
		  "listen: 8080\n",
		  "t.yaml:3: listen: expected HOST:PORT, got \"8080\"" },
		{ "endpoints:\n"
		  "  - name: a\n"
		  "    engine: vlm\n",
		  "t.yaml:3: endpoints[0].engine: unknown engine 'vlm' (presets: custom, llamacpp, "
		  "sglang, sim, tei, tgi, vllm)" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, unknown_keys)
{
	static const struct error_case cases[] = {
		{ "lisen: 127.0.0.1:1\n",
		  "t.yaml:1: unknown key 'lisen' (did you mean 'listen'?)" },
		{ "data_dir: /x\nzzz: 1\n", "t.yaml:2: unknown key 'zzz'" },
		{ "limits:\n  max_headers: 1\n",
		  "t.yaml:2: limits: unknown key 'max_headers' (did you mean 'max_header_bytes'?)" },
		{ EP "    scaling:\n      max_replicas: 2\n",
		  "t.yaml:5: endpoints[0].scaling: unknown key 'max_replicas' (did you mean "
		  "'max_replica'?)" },
		{ "1: x\n", "t.yaml:1: unknown key '1'" },
		{ "? [a]\n: x\n", "t.yaml:1: keys must be strings" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, wrong_types)
{
	static const struct error_case cases[] = {
		{ "listen: [127.0.0.1, 8080]\n",
		  "t.yaml:1: listen: expected HOST:PORT, got a list" },
		{ "data_dir: {a: b}\n", "t.yaml:1: data_dir: expected a string, got a mapping" },
		{ "data_dir:\n", "t.yaml:1: data_dir: expected a string, got nothing" },
		{ "data_dir: ''\n", "t.yaml:1: data_dir: must not be empty" },
		{ "replica_log_max_bytes: abc\n",
		  "t.yaml:1: replica_log_max_bytes: expected a non-negative integer, got \"abc\"" },
		{ "replica_log_max_bytes: -5000\n",
		  "t.yaml:1: replica_log_max_bytes: expected a non-negative integer, got \"-5000\"" },
		{ "replica_log_max_bytes: 1e6\n",
		  "t.yaml:1: replica_log_max_bytes: expected a non-negative integer, got \"1e6\"" },
		{ "replica_log_max_bytes: 0x1000\n",
		  "t.yaml:1: replica_log_max_bytes: expected a non-negative integer, got \"0x1000\"" },
		{ "replica_log_max_bytes: 99999999999999999999999\n",
		  "t.yaml:1: replica_log_max_bytes: must be <= 18446744073709551615" },
		{ "shutdown_grace: 30\n",
		  "t.yaml:1: shutdown_grace: expected a duration (e.g. 1500ms, 30s, 15m, 2h), got "
		  "\"30\"" },
		{ "shutdown_grace: [30s]\n",
		  "t.yaml:1: shutdown_grace: expected a duration (e.g. 1500ms, 30s, 15m, 2h), got a "
		  "list" },
		{ "log_level: loud\n",
		  "t.yaml:1: log_level: expected one of error, warn, info, debug, got \"loud\"" },
		{ "log_format: yaml\n",
		  "t.yaml:1: log_format: expected one of text, json, got \"yaml\"" },
		{ "limits: 5\n", "t.yaml:1: limits: expected a mapping, got a string" },
		{ "endpoints: {a: 1}\n",
		  "t.yaml:1: endpoints: expected a list of endpoints, got a mapping" },
		{ "endpoints:\n",
		  "t.yaml:1: endpoints: expected a list of endpoints, got nothing" },
		{ "endpoints:\n  - sim\n",
		  "t.yaml:2: endpoints[0]: expected a mapping, got a string" },
		{ EP "    args: --x\n",
		  "t.yaml:4: endpoints[0].args: expected a list of strings, got a string" },
		{ EP "    args: [--x, [1]]\n",
		  "t.yaml:4: endpoints[0].args[1]: expected a string, got a list" },
		{ EP "    args:\n      - --x\n      - {a: 1}\n",
		  "t.yaml:6: endpoints[0].args[1]: expected a string, got a mapping" },
		{ EP "    env: [A, B]\n",
		  "t.yaml:4: endpoints[0].env: expected a mapping of strings, got a list" },
		{ EP "    env:\n      A: [1]\n",
		  "t.yaml:5: endpoints[0].env.A: expected a string, got a list" },
		{ EP "    env:\n      A:\n",
		  "t.yaml:5: endpoints[0].env.A: expected a string, got nothing" },
		{ EP "    port: http\n",
		  "t.yaml:4: endpoints[0].port: expected a non-negative integer, got \"http\"" },
		{ EP "    ready: maybe\n",
		  "t.yaml:4: endpoints[0].ready: expected one of http, tcp, got \"maybe\"" },
		{ EP "    scaling: []\n",
		  "t.yaml:4: endpoints[0].scaling: expected a mapping, got a list" },
		{ "- listen\n", "t.yaml:1: expected a mapping at the top level, got a list" },
		{ "data_dir: /x\napi_listen: 127.0.0.1:8080\n",
		  "t.yaml:2: api_listen: 127.0.0.1:8080 is also the data plane's address (listen)" },
		{ "api_listen: 127.0.0.1:9000\nlisten: 0.0.0.0:9000\n",
		  "t.yaml:1: api_listen: 127.0.0.1:9000 is also the data plane's address (listen)" },
		{ "just text\n", "t.yaml:1: expected a mapping at the top level, got a string" },
		{ EP "    model: \"a\\0b\"\n",
		  "t.yaml:4: endpoints[0].model: must not contain a NUL byte" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, ranges)
{
	static const struct error_case cases[] = {
		{ "replica_log_max_bytes: 4095\n",
		  "t.yaml:1: replica_log_max_bytes: must be >= 4096" },
		{ "limits:\n  max_header_bytes: 1023\n",
		  "t.yaml:2: limits.max_header_bytes: must be >= 1024" },
		{ "limits:\n  max_header_bytes: 1048577\n",
		  "t.yaml:2: limits.max_header_bytes: must be <= 1048576" },
		{ "limits:\n  max_body_bytes: 0\n",
		  "t.yaml:2: limits.max_body_bytes: must be >= 1" },
		{ "limits:\n  header_timeout: 99ms\n",
		  "t.yaml:2: limits.header_timeout: must be >= 100ms" },
		{ EP "    port: 0\n", "t.yaml:4: endpoints[0].port: must be >= 1" },
		{ EP "    port: 65536\n", "t.yaml:4: endpoints[0].port: must be <= 65535" },
		{ EP "    queue_size: 0\n", "t.yaml:4: endpoints[0].queue_size: must be >= 1" },
		{ EP "    queue_size: 1000001\n",
		  "t.yaml:4: endpoints[0].queue_size: must be <= 1000000" },
		{ EP "    max_hold: 999ms\n", "t.yaml:4: endpoints[0].max_hold: must be >= 1s" },
		{ EP "    start_timeout: 0s\n",
		  "t.yaml:4: endpoints[0].start_timeout: must be >= 1s" },
		{ EP "    scaling:\n      max_replica: 1025\n",
		  "t.yaml:5: endpoints[0].scaling.max_replica: must be <= 1024" },
		{ EP "    scaling:\n      min_replica: 1025\n      max_replica: 1024\n",
		  "t.yaml:5: endpoints[0].scaling.min_replica: must be <= 1024" },
		{ EP "    scaling:\n      scale_to_zero_timeout: 500ms\n",
		  "t.yaml:5: endpoints[0].scaling.scale_to_zero_timeout: must be >= 1s" },
		{ EP "    scaling:\n      target_concurrency: 0\n",
		  "t.yaml:5: endpoints[0].scaling.target_concurrency: must be >= 1" },
		/* max below min: the line of max_replica, or of scaling when max is the default */
		{ EP "    scaling:\n      min_replica: 3\n      max_replica: 2\n",
		  "t.yaml:6: endpoints[0].scaling.max_replica: must be >= min_replica (3)" },
		{ EP "    scaling:\n      min_replica: 2\n",
		  "t.yaml:5: endpoints[0].scaling.max_replica: must be >= min_replica (2)" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, duplicates)
{
	static const struct error_case cases[] = {
		{ "listen: 127.0.0.1:1\n"
		  "api_listen: 127.0.0.1:2\n"
		  "listen: 127.0.0.1:3\n",
		  "t.yaml:3: listen: duplicate key (first at line 1)" },
		{ EP "    engine: vllm\n",
		  "t.yaml:4: endpoints[0].engine: duplicate key (first at line 3)" },
		{ EP "    scaling: {max_replica: 2, max_replica: 3}\n",
		  "t.yaml:4: endpoints[0].scaling.max_replica: duplicate key (first at line 4)" },
		{ EP "    env:\n      A: x\n      A: y\n",
		  "t.yaml:6: endpoints[0].env.A: duplicate key" },
		{ "endpoints:\n"
		  "  - name: a\n"
		  "    engine: sim\n"
		  "  - name: b\n"
		  "    engine: sim\n"
		  "  - engine: sim\n"
		  "    name: a\n",
		  "t.yaml:7: endpoints[2].name: duplicate endpoint name 'a' (first at line 2)" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, endpoint_rules)
{
	char long_name[100];
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	char yaml_long[256], msg_long[512];
	snprintf(yaml_long, sizeof(yaml_long), "endpoints:\n  - name: %s\n    engine: sim\n",
		 long_name);
	snprintf(msg_long, sizeof(msg_long),
		 "t.yaml:2: endpoints[0].name: '%s' must be 1 to 63 characters of [a-z0-9-], "
		 "starting with a letter or digit",
		 long_name);
	expect_error(yaml_long, msg_long);
	/* 63 characters is fine */
	long_name[63] = '\0';
	snprintf(yaml_long, sizeof(yaml_long), "endpoints:\n  - name: %s\n    engine: sim\n",
		 long_name);
	floe_config_free(load(yaml_long));

	static const struct error_case cases[] = {
		{ "endpoints:\n  - name: Demo\n    engine: sim\n",
		  "t.yaml:2: endpoints[0].name: 'Demo' must be 1 to 63 characters of [a-z0-9-], "
		  "starting with a letter or digit" },
		{ "endpoints:\n  - name: -a\n    engine: sim\n",
		  "t.yaml:2: endpoints[0].name: '-a' must be 1 to 63 characters of [a-z0-9-], "
		  "starting with a letter or digit" },
		{ "endpoints:\n  - name: a_b\n    engine: sim\n",
		  "t.yaml:2: endpoints[0].name: 'a_b' must be 1 to 63 characters of [a-z0-9-], "
		  "starting with a letter or digit" },
		{ "endpoints:\n  - engine: sim\n",
		  "t.yaml:2: endpoints[0]: missing required key 'name'" },
		{ "endpoints:\n  - name: a\n",
		  "t.yaml:2: endpoints[0]: missing required key 'engine'" },
		{ "endpoints:\n  - name: a\n    engine: ../etc\n",
		  "t.yaml:3: endpoints[0].engine: '../etc' must be a preset name ([a-z0-9]+) or custom" },
		{ "endpoints:\n  - name: a\n    engine: a/b\n",
		  "t.yaml:3: endpoints[0].engine: 'a/b' must be a preset name ([a-z0-9]+) or custom" },
		{ "endpoints:\n  - name: a\n    engine: custom\n    port: 80\n",
		  "t.yaml:2: endpoints[0]: engine 'custom' needs 'command'" },
		{ "endpoints:\n  - name: a\n    engine: custom\n    command: [x]\n",
		  "t.yaml:2: endpoints[0]: engine 'custom' needs 'port'" },
		{ "endpoints:\n  - name: a\n    engine: custom\n    command: []\n    port: 1\n",
		  "t.yaml:4: endpoints[0].command: must not be empty" },
		/* found by tests/fuzz/fuzz_config.c: an empty program loaded fine */
		{ "endpoints:\n  - name: a\n    engine: custom\n    command:\n      - \"\"\n      - x\n"
		  "    port: 1\n",
		  "t.yaml:5: endpoints[0].command[0]: must not be empty (it is the program to run)" },
		{ EP "    command: [x]\n",
		  "t.yaml:4: endpoints[0].command: not allowed with engine 'sim' (the preset gives the "
		  "command; add flags with args)" },
		{ "endpoints:\n  - name: a\n    engine: vllm\n",
		  "t.yaml:2: endpoints[0]: engine 'vllm' needs 'model' (its command uses {model})" },
		{ EP "    args: [--served-model-name, \"{model}\"]\n",
		  "t.yaml:2: endpoints[0]: 'model' is not set but the command uses {model}" },
		{ EP "    health_route: health\n",
		  "t.yaml:4: endpoints[0].health_route: 'health' must start with '/'" },
		{ EP "    health_route: /a b\n",
		  "t.yaml:4: endpoints[0].health_route: '/a b' must not contain spaces or control "
		  "characters" },
		{ EP "    model: ''\n", "t.yaml:4: endpoints[0].model: must not be empty" },
		{ EP "    args: [--a, \"{prot}\"]\n",
		  "t.yaml:4: endpoints[0].args[1]: unknown placeholder '{prot}' (known: {port}, "
		  "{model}, {bindir})" },
		{ EP "    env:\n      A-B: x\n",
		  "t.yaml:5: endpoints[0].env: 'A-B' is not a valid variable name "
		  "([A-Za-z_][A-Za-z0-9_]*)" },
		{ EP "    env:\n      1A: x\n",
		  "t.yaml:5: endpoints[0].env: '1A' is not a valid variable name "
		  "([A-Za-z_][A-Za-z0-9_]*)" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
	/* Only the program must not be empty: empty arguments are arguments. */
	floe_config_free(load("endpoints:\n  - name: a\n    engine: custom\n"
			      "    command: [x, \"\"]\n    args: [\"\"]\n    port: 1\n"));
}

Test(config, yaml_syntax_errors_have_lines)
{
	static const struct error_case cases[] = {
		{ "listen: 127.0.0.1:8080\n"
		  "endpoints:\n"
		  "  - name: a\n"
		  "   engine: sim\n",
		  "t.yaml:4: YAML syntax error: did not find expected '-' indicator (while parsing a "
		  "block collection at line 3)" },
		{ "listen: 127.0.0.1:8080\n"
		  "api_listen: [127.0.0.1\n"
		  "data_dir: /x\n",
		  "t.yaml:3: YAML syntax error: did not find expected ',' or ']' (while parsing a "
		  "flow sequence at line 2)" },
		{ "data_dir: /x\n"
		  "\tlisten: 1\n",
		  "t.yaml:2: YAML syntax error: found a tab character that violates indentation "
		  "(while scanning a plain scalar at line 1)" },
		{ "a: *nope\n", "t.yaml:1: YAML syntax error: found undefined alias" },
		{ "listen: 127.0.0.1:1\n"
		  "---\n"
		  "listen: 127.0.0.1:2\n",
		  "t.yaml:2: only one YAML document is allowed" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ------------------------------------------------- durations and hostports */

Test(config, durations)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t ms;
	} cases[] = {
		{ "30s", 0, 30000 },
		{ "1500ms", 0, 1500 },
		{ "15m", 0, 900000 },
		{ "2h", 0, 7200000 },
		{ "0s", 0, 0 },
		{ "0ms", 0, 0 },
		{ "007s", 0, 7000 },
		{ "18446744073709551615ms", 0, UINT64_MAX },
		{ "18446744073709551616ms", -EINVAL, 0 }, /* overflows the integer */
		{ "18446744073709552s", -EINVAL, 0 },     /* overflows once in ms */
		{ "5124095576030432h", -EINVAL, 0 },
		{ "30", -EINVAL, 0 }, /* bare integer: ambiguous */
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "1 s", -EINVAL, 0 },
		{ " 1s", -EINVAL, 0 },
		{ "1s ", -EINVAL, 0 },
		{ "1d", 0, 86400000 },
		{ "213503982335d", -EINVAL, 0 }, /* overflows once in ms */
		{ "1us", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },
		{ "1msx", -EINVAL, 0 },
		{ "1h30m", -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int rc = floe_duration_parse(cases[i].text, &ms);
		cr_expect_eq(rc, cases[i].rc, "\"%s\": rc %d, want %d", cases[i].text, rc,
			     cases[i].rc);
		if (cases[i].rc == 0)
			cr_expect_eq(ms, cases[i].ms, "\"%s\": %llu ms", cases[i].text,
				     (unsigned long long)ms);
		else
			cr_expect_eq(ms, 12345, "\"%s\": output written on error", cases[i].text);
	}
	cr_expect_eq(floe_duration_parse(NULL, NULL), -EINVAL);
}

Test(config, hostports)
{
	static const struct {
		const char *text;
		const char *host; /* NULL: refused */
		uint16_t port;
	} cases[] = {
		{ "127.0.0.1:8080", "127.0.0.1", 8080 },
		{ "0.0.0.0:1", "0.0.0.0", 1 },
		{ "[::1]:8080", "::1", 8080 },
		{ "[::]:65535", "::", 65535 },
		{ "[fe80::1%eth0]:80", "fe80::1%eth0", 80 },
		{ "[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80 },
		{ "localhost:8080", "localhost", 8080 },
		{ "my-host.example.com:443", "my-host.example.com", 443 },
		{ "8080", NULL, 0 },
		{ ":8080", NULL, 0 },
		{ "localhost", NULL, 0 },
		{ "localhost:", NULL, 0 },
		{ "localhost:0", NULL, 0 },
		{ "localhost:65536", NULL, 0 },
		{ "localhost:99999999999999999999999", NULL, 0 },
		{ "localhost:-1", NULL, 0 },
		{ "localhost:80x", NULL, 0 },
		{ "localhost: 80", NULL, 0 },
		{ "::1:8080", NULL, 0 },
		{ "[::1]", NULL, 0 },
		{ "[::1]8080", NULL, 0 },
		{ "[]:80", NULL, 0 },
		{ "[localhost]:80", NULL, 0 },
		{ "[::1:80", NULL, 0 },
		{ "a b:80", NULL, 0 },
		{ "a/b:80", NULL, 0 },
		{ "", NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = NULL;
		uint16_t port = 7;
		int rc = floe_hostport_parse(cases[i].text, &host, &port);
		if (cases[i].host) {
			cr_expect_eq(rc, 0, "\"%s\" refused", cases[i].text);
			if (rc == 0) {
				cr_expect_str_eq(host, cases[i].host, "\"%s\"", cases[i].text);
				cr_expect_eq(port, cases[i].port, "\"%s\"", cases[i].text);
			}
		} else {
			cr_expect_eq(rc, -EINVAL, "\"%s\" accepted", cases[i].text);
			cr_expect_null(host, "\"%s\": host written on error", cases[i].text);
			cr_expect_eq(port, 7, "\"%s\": port written on error", cases[i].text);
		}
		free(host);
	}
}

/* --------------------------------------------------- presets, placeholders */

Test(config, placeholder_expansion)
{
	struct floe_config *cfg =
		load("endpoints:\n"
		     "  - name: v\n"
		     "    engine: vllm\n"
		     "    model: /models/llama-3-8b\n"
		     "    port: 9000\n"
		     "    args: [--served-model-name, \"{model}\", --x, \"{port}{port}\",\n"
		     "           --dir, \"{bindir}/lib\", --json, '{\"max\": 1}', '{}', "
		     "'{port']\n");
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	const char *want[] = { "vllm",
			       "serve",
			       "/models/llama-3-8b",
			       "--host",
			       "127.0.0.1",
			       "--port",
			       "9000",
			       "--served-model-name",
			       "/models/llama-3-8b",
			       "--x",
			       "90009000",
			       "--dir",
			       BINDIR "/lib",
			       "--json",
			       "{\"max\": 1}",
			       "{}",
			       "{port" };
	size_t n = sizeof(want) / sizeof(want[0]);
	cr_assert_eq(ep->argc, n, "argc %zu", ep->argc);
	for (size_t i = 0; i < n; i++)
		cr_expect_str_eq(ep->argv[i], want[i], "argv[%zu]", i);
	cr_expect_null(ep->argv[n]);
	floe_config_free(cfg);
}

Test(config, model_is_not_expanded_twice)
{
	/* A model name that looks like a placeholder stays as written. */
	struct floe_config *cfg = load("endpoints:\n"
				       "  - name: v\n"
				       "    engine: llamacpp\n"
				       "    model: \"/m/{port}.gguf\"\n");
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_assert_eq(ep->argc, 7);
	cr_expect_str_eq(ep->argv[0], "llama-server");
	cr_expect_str_eq(ep->argv[2], "/m/{port}.gguf");
	cr_expect_str_eq(ep->argv[6], "8080");
	floe_config_free(cfg);
}

Test(config, shipped_presets)
{
	static const struct {
		const char *name;
		const char *argv0;
		uint16_t port;
		uint64_t start_timeout_ms;
	} cases[] = {
		{ "sim", BINDIR "/floe-sim", 8000, 60000 },
		{ "vllm", "vllm", 8000, 20 * 60000 },
		{ "tgi", "text-generation-launcher", 8080, 20 * 60000 },
		{ "sglang", "python3", 30000, 20 * 60000 },
		{ "tei", "text-embeddings-router", 8080, 10 * 60000 },
		{ "llamacpp", "llama-server", 8080, 10 * 60000 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct floe_preset *p = NULL;
		floe_error err;
		int r = floe_preset_load(presets_dir, cases[i].name, BINDIR, &p, &err);
		cr_assert_eq(r, 0, "%s: %s", cases[i].name, err.msg);
		cr_expect_str_eq(p->name, cases[i].name);
		cr_expect_not_null(p->description);
		cr_expect_str_eq(p->command[0], cases[i].argv0, "%s", cases[i].name);
		cr_expect_eq(p->port, cases[i].port, "%s", cases[i].name);
		cr_expect_str_eq(p->health_route, "/health");
		cr_expect_eq(p->ready, FLOE_READY_HTTP);
		cr_expect_eq(p->start_timeout_ms, cases[i].start_timeout_ms, "%s", cases[i].name);
		/* {port} is left for the endpoint; the last two words are --port {port} */
		size_t n = 0;
		while (p->command[n])
			n++;
		cr_assert_geq(n, 3);
		cr_expect_str_eq(p->command[n - 2], "--port", "%s", cases[i].name);
		cr_expect_str_eq(p->command[n - 1], "{port}", "%s", cases[i].name);
		floe_preset_free(p);
	}
}

Test(config, preset_load_refuses_bad_names)
{
	const char *bad[] = { "../etc/passwd", "a/b", "..", "", "Sim", "sim.yaml", "custom" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct floe_preset *p = NULL;
		floe_error err;
		int r = floe_preset_load(presets_dir, bad[i], BINDIR, &p, &err);
		cr_expect_lt(r, 0, "'%s' loaded", bad[i]);
		cr_expect_null(p);
		floe_preset_free(p);
	}
	struct floe_preset *p = NULL;
	floe_error err;
	cr_expect_eq(floe_preset_load(presets_dir, "nosuch", BINDIR, &p, &err), -ENOENT);
	cr_expect_eq(floe_preset_load(presets_dir, "a/b", BINDIR, &p, &err), -EINVAL);
	cr_expect_str_eq(err.msg, "invalid preset name 'a/b' (expected [a-z0-9]+)");
}

/* A presets directory of our own, for env merges and broken presets. */
static char tmp_presets[64];

static void write_preset(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s.yaml", tmp_presets, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void tmp_presets_setup(void)
{
	find_dirs();
	snprintf(tmp_presets, sizeof(tmp_presets), "/tmp/floe-presets-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp_presets));
	write_preset("eng",
		     "name: eng\n"
		     "description: test engine\n"
		     "command: [\"{bindir}/eng\", --model, \"{model}\", --port, \"{port}\"]\n"
		     "port: 1234\n"
		     "health_route: /up\n"
		     "ready: tcp\n"
		     "start_timeout: 90s\n"
		     "env:\n"
		     "  KEEP: preset\n"
		     "  OVERRIDE: preset\n"
		     "  EMPTY: ''\n");
	write_preset("minimal", "name: minimal\n"
				"command: [m]\n"
				"port: 5\n");
	write_preset("placeholder", "name: placeholder\n"
				    "command:\n"
				    "  - x\n"
				    "  - \"{modle}\"\n"
				    "port: 80\n");
	write_preset("unknownkey", "name: unknownkey\n"
				   "command: [x]\n"
				   "port: 80\n"
				   "readiness: http\n");
	write_preset("mismatch", "name: other\n"
				 "command: [x]\n"
				 "port: 80\n");
	write_preset("noport", "name: noport\n"
			       "command: [x]\n");
	write_preset("syntax", "name: syntax\n"
			       "command: [x\n");
	write_preset("empty", "");
	write_preset("cmdstring", "name: cmdstring\n"
				  "command: x --port {port}\n"
				  "port: 80\n");
}

static void tmp_presets_teardown(void)
{
	const char *names[] = { "eng",    "minimal", "placeholder", "unknownkey", "mismatch",
				"noport", "syntax",  "empty",       "cmdstring" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s.yaml", tmp_presets, names[i]);
		unlink(path);
	}
	rmdir(tmp_presets);
}

TestSuite(presets, .init = tmp_presets_setup, .fini = tmp_presets_teardown);

Test(presets, env_merge_and_preset_defaults)
{
	struct floe_config *cfg = load_with("endpoints:\n"
					    "  - name: a\n"
					    "    engine: eng\n"
					    "    model: mm\n"
					    "    env:\n"
					    "      NEW: endpoint\n"
					    "      OVERRIDE: endpoint\n",
					    tmp_presets);
	const struct floe_endpoint_config *ep = &cfg->endpoints[0];
	cr_assert_eq(ep->n_env, 4);
	/* preset order first, overridden in place, then the endpoint's new keys */
	cr_expect_str_eq(ep->env[0].key, "KEEP");
	cr_expect_str_eq(ep->env[0].value, "preset");
	cr_expect_str_eq(ep->env[1].key, "OVERRIDE");
	cr_expect_str_eq(ep->env[1].value, "endpoint");
	cr_expect_str_eq(ep->env[2].key, "EMPTY");
	cr_expect_str_eq(ep->env[2].value, "");
	cr_expect_str_eq(ep->env[3].key, "NEW");
	cr_expect_str_eq(ep->env[3].value, "endpoint");
	cr_expect_eq(ep->port, 1234);
	cr_expect_str_eq(ep->health_route, "/up");
	cr_expect_eq(ep->ready, FLOE_READY_TCP);
	cr_expect_eq(ep->start_timeout_ms, 90000);
	cr_assert_eq(ep->argc, 5);
	cr_expect_str_eq(ep->argv[0], BINDIR "/eng");
	cr_expect_str_eq(ep->argv[2], "mm");
	cr_expect_str_eq(ep->argv[4], "1234");
	floe_config_free(cfg);
}

Test(presets, preset_table_defaults)
{
	struct floe_preset *p = NULL;
	floe_error err;
	cr_assert_eq(floe_preset_load(tmp_presets, "minimal", BINDIR, &p, &err), 0, "%s", err.msg);
	cr_expect_null(p->description);
	cr_expect_str_eq(p->health_route, "/health");
	cr_expect_eq(p->ready, FLOE_READY_HTTP);
	cr_expect_eq(p->start_timeout_ms, 600000);
	cr_expect_eq(p->n_env, 0);
	floe_preset_free(p);
}

Test(presets, shared_preset_loaded_once_used_twice)
{
	struct floe_config *cfg = load_with("endpoints:\n"
					    "  - {name: a, engine: eng, model: one}\n"
					    "  - {name: b, engine: eng, model: two, port: 99}\n",
					    tmp_presets);
	cr_expect_str_eq(cfg->endpoints[0].argv[2], "one");
	cr_expect_str_eq(cfg->endpoints[1].argv[2], "two");
	cr_expect_str_eq(cfg->endpoints[1].argv[4], "99");
	cr_expect_str_eq(cfg->endpoints[0].argv[4], "1234");
	floe_config_free(cfg);
}

Test(presets, errors_name_the_preset_file)
{
	char want[1024];
	struct {
		const char *engine;
		const char *fmt; /* %s: the presets directory */
	} cases[] = {
		{ "placeholder",
		  "%s/placeholder.yaml:4: command[1]: unknown placeholder '{modle}' (known: {port}, "
		  "{model}, {bindir}) (engine 'placeholder' of endpoints[0] at t.yaml:3)" },
		{ "unknownkey",
		  "%s/unknownkey.yaml:4: unknown key 'readiness' (did you mean 'ready'?) (engine "
		  "'unknownkey' of endpoints[0] at t.yaml:3)" },
		{ "mismatch",
		  "%s/mismatch.yaml:1: name: 'other' does not match the file name (expected "
		  "'mismatch') (engine 'mismatch' of endpoints[0] at t.yaml:3)" },
		{ "noport",
		  "%s/noport.yaml:1: missing required key 'port' (engine 'noport' of endpoints[0] at "
		  "t.yaml:3)" },
		{ "syntax",
		  "%s/syntax.yaml:3: YAML syntax error: did not find expected ',' or ']' (while "
		  "parsing a flow sequence at line 2) (engine 'syntax' of endpoints[0] at t.yaml:3)" },
		{ "empty",
		  "%s/empty.yaml:1: empty preset file (engine 'empty' of endpoints[0] at t.yaml:3)" },
		{ "cmdstring",
		  "%s/cmdstring.yaml:2: command: expected a list of strings, got a string (engine "
		  "'cmdstring' of endpoints[0] at t.yaml:3)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml),
			 "endpoints:\n  - name: a\n    engine: %s\n    model: m\n",
			 cases[i].engine);
		snprintf(want, sizeof(want), cases[i].fmt, tmp_presets);
		expect_error_with(yaml, tmp_presets, want);
	}
}

Test(presets, unknown_engine_lists_this_directory)
{
	expect_error_with(
		"endpoints:\n  - name: a\n    engine: nope\n", tmp_presets,
		"t.yaml:3: endpoints[0].engine: unknown engine 'nope' (presets: cmdstring, "
		"custom, empty, eng, minimal, mismatch, noport, placeholder, syntax, "
		"unknownkey)");
}

Test(config, missing_presets_directory_is_named)
{
	expect_error_with("endpoints:\n  - name: a\n    engine: sim\n", "/nonexistent/presets",
			  "t.yaml:3: endpoints[0].engine: unknown engine 'sim' (presets: custom; "
			  "cannot read /nonexistent/presets: No such file or directory)");
}

/* ------------------------------------------------------------ equal / dup */

static const char *equal_base = "endpoints:\n"
				"  - name: a\n"
				"    engine: vllm\n"
				"    model: m\n"
				"    env: {A: '1', B: '2'}\n";

static struct floe_config *load_variant(const char *extra)
{
	char yaml[1024];
	snprintf(yaml, sizeof(yaml), "%s%s", equal_base, extra);
	return load(yaml);
}

Test(config, equal_ignores_position_and_env_order)
{
	struct floe_config *a = load(equal_base);
	struct floe_config *b = load("# moved down, keys reordered\n"
				     "endpoints:\n"
				     "  - {name: z, engine: sim}\n"
				     "  - env: {B: '2', A: '1'}\n"
				     "    model: m\n"
				     "    engine: vllm\n"
				     "    name: a\n"
				     "    scaling: {max_replica: 1}\n"
				     "    queue_size: 1024\n");
	const struct floe_endpoint_config *ea = floe_config_endpoint(a, "a");
	const struct floe_endpoint_config *eb = floe_config_endpoint(b, "a");
	cr_assert(ea && eb);
	cr_expect_neq(ea->line, eb->line);
	cr_expect(floe_endpoint_config_equal(ea, eb));
	cr_expect(floe_endpoint_config_equal(eb, ea));
	cr_expect(floe_endpoint_config_equal(ea, ea));
	cr_expect_not(floe_endpoint_config_equal(ea, NULL));
	cr_expect_not(floe_endpoint_config_equal(ea, floe_config_endpoint(b, "z")));
	floe_config_free(a);
	floe_config_free(b);
}

Test(config, equal_sees_every_serving_field)
{
	const char *variants[] = {
		"    args: [--x]\n",
		"    env: {A: '1', B: '3'}\n",
		"    port: 8001\n",
		"    health_route: /v1/models\n",
		"    ready: tcp\n",
		"    start_timeout: 21m\n",
		"    stop_grace: 11s\n",
		"    queue_size: 1\n",
		"    max_hold: 301s\n",
		"    scaling: {min_replica: 1}\n",
		"    scaling: {max_replica: 2}\n",
		"    scaling: {scale_to_zero_timeout: 16m}\n",
		"    scaling: {target_concurrency: 5}\n",
		"    type: private\n",
	};
	struct floe_config *base = load(equal_base);
	const struct floe_endpoint_config *eb = &base->endpoints[0];
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		char yaml[1024];
		/* env is in the base: a variant that sets it replaces the base's */
		if (strstr(variants[i], "env:"))
			snprintf(yaml, sizeof(yaml),
				 "endpoints:\n  - name: a\n    engine: vllm\n    model: m\n%s",
				 variants[i]);
		else
			snprintf(yaml, sizeof(yaml), "%s%s", equal_base, variants[i]);
		struct floe_config *v = load(yaml);
		cr_expect_not(floe_endpoint_config_equal(eb, &v->endpoints[0]), "variant: %s",
			      variants[i]);
		floe_config_free(v);
	}
	struct floe_config *m = load("endpoints:\n  - name: a\n    engine: vllm\n    model: m2\n"
				     "    env: {A: '1', B: '2'}\n");
	cr_expect_not(floe_endpoint_config_equal(eb, &m->endpoints[0]), "model changed");
	floe_config_free(m);
	struct floe_config *same = load_variant("    port: 8000\n    stop_grace: 10s\n");
	cr_expect(floe_endpoint_config_equal(eb, &same->endpoints[0]), "defaults written out");
	floe_config_free(same);
	floe_config_free(base);
}

Test(config, dup_is_deep_and_equal)
{
	struct floe_config *cfg = load_variant("    args: [--a, b]\n");
	const struct floe_endpoint_config *src = &cfg->endpoints[0];
	struct floe_endpoint_config *d = floe_endpoint_config_dup(src);
	cr_assert_not_null(d);
	cr_expect(floe_endpoint_config_equal(src, d));
	cr_expect_eq(d->line, src->line);
	cr_expect_neq(d->name, src->name);
	cr_expect_neq(d->argv, src->argv);
	cr_expect_neq(d->argv[0], src->argv[0]);
	cr_expect_neq(d->env, src->env);
	cr_expect_null(d->argv[d->argc]);
	floe_config_free(cfg); /* the copy outlives its source */
	cr_expect_str_eq(d->name, "a");
	cr_expect_str_eq(d->argv[0], "vllm");
	cr_expect_str_eq(d->argv[d->argc - 1], "b");
	cr_expect_str_eq(d->env[d->n_env - 1].key, "B");
	cr_expect_str_eq(d->env[d->n_env - 1].value, "2");
	floe_endpoint_config_free(d);
	floe_endpoint_config_free(NULL);
	cr_expect_null(floe_endpoint_config_dup(NULL));
	floe_config_free(NULL);
	floe_preset_free(NULL);
}

/* ----------------------------------------------------------------- billing */

Test(config, amounts_are_exact_decimals)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t micro;
	} cases[] = {
		{ "0", 0, 0 },
		{ "4.5", 0, 4500000 },
		{ "0.1", 0, 100000 },
		{ "0.000001", 0, 1 },
		{ "12.345678", 0, 12345678 },
		{ "1000000000000", 0, UINT64_C(1000000000000000000) },
		{ "1000000000001", -EINVAL, 0 },
		{ "0.0000001", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
		{ "1.", -EINVAL, 0 },
		{ ".5", -EINVAL, 0 },
		{ "1,5", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t micro = 7;
		int rc = floe_amount_parse(cases[i].text, &micro);
		cr_expect_eq(rc, cases[i].rc, "'%s': rc %d", cases[i].text, rc);
		if (rc == 0)
			cr_expect_eq(micro, cases[i].micro, "'%s': %" PRIu64, cases[i].text, micro);
	}
}

Test(config, billing_defaults_and_prices)
{
	struct floe_config *cfg = load("endpoints:\n  - name: a\n    engine: sim\n");
	cr_expect_str_eq(cfg->billing.currency, "USD");
	cr_expect_not(cfg->billing.round_second);
	cr_expect_eq(cfg->billing.commit_interval_ms, 1000);
	cr_expect_eq(cfg->billing.max_export_range_ms, UINT64_C(366) * 86400000);
	cr_expect_eq(cfg->billing.n_prices, 0);
	cr_expect_str_eq(cfg->endpoints[0].ns, "default");
	cr_expect_null(cfg->endpoints[0].resources.instance_type);
	cr_expect_eq(cfg->endpoints[0].resources.gpus, 0);
	floe_config_free(cfg);

	cfg = load("billing:\n"
		   "  currency: EUR\n"
		   "  rounding: second\n"
		   "  commit_interval: 250ms\n"
		   "  max_export_range: 31d\n"
		   "  prices:\n"
		   "    cpu: 0.06\n"
		   "    nvidia-h100:\n"
		   "      running: 4.5\n"
		   "      warm_pool: '0.4'\n"
		   "endpoints:\n  - name: a\n    engine: sim\n    namespace: team-a\n"
		   "    resources: {instance_type: nvidia-h100, gpus: 2}\n");
	cr_expect_str_eq(cfg->billing.currency, "EUR");
	cr_expect(cfg->billing.round_second);
	cr_expect_eq(cfg->billing.commit_interval_ms, 250);
	cr_expect_eq(cfg->billing.max_export_range_ms, UINT64_C(31) * 86400000);
	const struct floe_price *cpu = floe_billing_price(&cfg->billing, "cpu");
	cr_assert_not_null(cpu);
	for (int s = 0; s < FLOE_BILLING_NSTATES; s++)
		cr_expect_eq(cpu->per_hour_micro[s], 60000);
	const struct floe_price *h = floe_billing_price(&cfg->billing, "nvidia-h100");
	cr_assert_not_null(h);
	cr_expect_eq(h->per_hour_micro[0], 0, "a state left out costs 0");
	cr_expect_eq(h->per_hour_micro[1], 4500000);
	cr_expect_eq(h->per_hour_micro[2], 0);
	cr_expect_eq(h->per_hour_micro[3], 400000);
	cr_expect_null(floe_billing_price(&cfg->billing, "tpu"));
	cr_expect_str_eq(cfg->endpoints[0].ns, "team-a");
	cr_expect_str_eq(cfg->endpoints[0].resources.instance_type, "nvidia-h100");
	cr_expect_eq(cfg->endpoints[0].resources.gpus, 2);
	/* A replica is billed as what it started as: resources are part of
	 * the definition (a change restarts the replicas). */
	struct floe_endpoint_config *copy = floe_endpoint_config_dup(&cfg->endpoints[0]);
	cr_expect(floe_endpoint_config_equal(copy, &cfg->endpoints[0]));
	copy->resources.gpus = 1;
	cr_expect_not(floe_endpoint_config_equal(copy, &cfg->endpoints[0]));
	floe_endpoint_config_free(copy);
	floe_config_free(cfg);
}

Test(config, billing_errors_name_the_line)
{
	static const struct error_case cases[] = {
		{ "billing:\n  currency: usd\n",
		  "t.yaml:2: billing.currency: 'usd' must be an ISO 4217 code: three capital letters (USD, EUR)" },
		{ "billing:\n  rounding: hour\n",
		  "t.yaml:2: billing.rounding: expected one of minute, second, got \"hour\"" },
		{ "billing:\n  commit_interval: 2m\n",
		  "t.yaml:2: billing.commit_interval: must be at most 1m" },
		{ "billing:\n  prices:\n    cpu: 1e3\n",
		  "t.yaml:3: billing.prices.cpu: expected a price per hour such as 4.50 (at most 6 decimals), got \"1e3\"" },
		{ "billing:\n  prices:\n    cpu:\n      running: 1\n      idle: 2\n",
		  "t.yaml:5: billing.prices.cpu.idle: unknown state (known: initializing, running, draining, warm_pool)" },
		{ "billing:\n  prices:\n    cpu: 1\n    cpu: 2\n",
		  "t.yaml:4: billing.prices.cpu: duplicate instance type (first at line 3)" },
		{ "billing:\n  prices:\n    CPU: 1\n",
		  "t.yaml:3: billing.prices.CPU: instance type must be 1 to 63 characters of [a-z0-9._-], starting with a letter or digit" },
		{ "billing:\n  prices: [1, 2]\n",
		  "t.yaml:2: billing.prices: expected a mapping of instance type to price per hour, got a list" },
		{ EP "    namespace: Team\n",
		  "t.yaml:4: endpoints[0].namespace: 'Team' must be 1 to 63 characters of [a-z0-9-], starting with a letter or digit" },
		{ EP "    resources: {gpus: 65}\n",
		  "t.yaml:4: endpoints[0].resources.gpus: must be <= 64" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* -------------------------------------------------------------------- auth */

#define SHA_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

Test(config, auth_tokens)
{
	struct floe_config *cfg = load("{}\n");
	cr_expect_eq(cfg->auth.n_tokens, 0, "no tokens by default: single-user");
	floe_config_free(cfg);

	cfg = load(
		"auth:\n"
		"  tokens:\n"
		"    - namespace: alice\n"
		"      sha256: " SHA_TEST "\n"
		"    - sha256: 60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752\n"
		"      namespace: team-b\n"
		"    - {namespace: alice, sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c753}\n"
		"listen: 0.0.0.0:8080\n"
		"api_listen: '[::]:8081'\n");
	cr_assert_eq(cfg->auth.n_tokens, 3);
	const struct floe_auth_token *t = cfg->auth.tokens;
	cr_expect_str_eq(t[0].ns, "alice");
	cr_expect_eq(t[0].line, 3);
	cr_expect_eq(t[0].sha256[0], 0x9f);
	cr_expect_eq(t[0].sha256[1], 0x86);
	cr_expect_eq(t[0].sha256[31], 0x08);
	cr_expect_str_eq(t[1].ns, "team-b");
	cr_expect_eq(t[1].line, 5);
	cr_expect_eq(t[1].sha256[0], 0x60, "upper-case hex is accepted");
	cr_expect_eq(t[1].sha256[31], 0x52);
	cr_expect_str_eq(t[2].ns, "alice", "a namespace may have several tokens");
	cr_expect_eq(t[2].sha256[31], 0x53);
	cr_expect_str_eq(cfg->listen_host, "0.0.0.0");
	floe_config_free(cfg);

	/* An empty list is no tokens: single-user again. */
	cfg = load("auth:\n  tokens: []\n");
	cr_expect_eq(cfg->auth.n_tokens, 0);
	floe_config_free(cfg);
}

#define TOK(ns, sha) "    - namespace: " ns "\n      sha256: " sha "\n"

Test(config, auth_errors_name_the_line)
{
	static const struct error_case cases[] = {
		{ "auth:\n  tokens:\n" TOK("alice", "9f86d0"),
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got 6 characters" },
		{ "auth:\n  tokens:\n" TOK("alice", SHA_TEST "0"),
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got 65 characters" },
		{ "auth:\n  tokens:\n" TOK(
			  "alice",
			  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g"),
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got a non-hex character at position 64" },
		{ "auth:\n  tokens:\n" TOK("alice", "''"),
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got 0 characters" },
		{ "auth:\n  tokens:\n    - namespace: alice\n      sha256:\n",
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got nothing" },
		{ "auth:\n  tokens:\n    - namespace: alice\n      sha256: [1]\n",
		  "t.yaml:4: auth.tokens[0].sha256: expected 64 hex digits (the SHA-256 of the "
		  "token), got a list" },
		/* the token itself pasted: refused without being repeated */
		{ "auth:\n  tokens:\n" TOK("alice", "floe_Xq3sEcReT"),
		  "t.yaml:4: auth.tokens[0].sha256: this is a token, not its hash: put its SHA-256 "
		  "here (floe token new prints both) and keep the token itself out of the config" },
		{ "auth:\n  tokens:\n" TOK("alice", SHA_TEST) TOK("bob", SHA_B)
			  TOK("carol", SHA_TEST),
		  "t.yaml:8: auth.tokens[2].sha256: duplicate token (first at line 3)" },
		{ "auth:\n  tokens:\n" TOK("alice", SHA_TEST)
			  TOK("bob",
			      "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"),
		  "t.yaml:6: auth.tokens[1].sha256: duplicate token (first at line 3)" },
		{ "auth:\n  tokens:\n" TOK("Alice", SHA_TEST),
		  "t.yaml:3: auth.tokens[0].namespace: 'Alice' must be 1 to 63 characters of "
		  "[a-z0-9-], starting with a letter or digit" },
		{ "auth:\n  tokens:\n" TOK("-a", SHA_TEST),
		  "t.yaml:3: auth.tokens[0].namespace: '-a' must be 1 to 63 characters of "
		  "[a-z0-9-], starting with a letter or digit" },
		{ "auth:\n  tokens:\n    - sha256: " SHA_TEST "\n",
		  "t.yaml:3: auth.tokens[0]: missing required key 'namespace'" },
		{ "auth:\n  tokens:\n" TOK("alice", SHA_TEST) "    - namespace: bob\n",
		  "t.yaml:5: auth.tokens[1]: missing required key 'sha256'" },
		{ "auth:\n  tokens:\n" TOK("alice", SHA_TEST) "      sha265: x\n",
		  "t.yaml:5: auth.tokens[0]: unknown key 'sha265' (did you mean 'sha256'?)" },
		{ "auth:\n  tokens:\n    - " SHA_TEST "\n",
		  "t.yaml:3: auth.tokens[0]: expected a mapping, got a string" },
		{ "auth:\n  tokens: " SHA_TEST "\n",
		  "t.yaml:2: auth.tokens: expected a list of tokens, got a string" },
		{ "auth:\n  token: []\n",
		  "t.yaml:2: auth: unknown key 'token' (did you mean 'tokens'?)" },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

#define NOT_LOOPBACK                                                                    \
	" is not a loopback address; without auth.tokens floed serves everyone as the " \
	"default namespace, so it listens only on loopback (add auth.tokens, see "      \
	"docs/configuration.md)"

Test(config, single_user_listens_only_on_loopback)
{
	static const struct error_case cases[] = {
		{ "data_dir: /x\nlisten: 0.0.0.0:8080\n",
		  "t.yaml:2: listen: 0.0.0.0:8080" NOT_LOOPBACK },
		{ "api_listen: '[::]:9081'\n", "t.yaml:1: api_listen: [::]:9081" NOT_LOOPBACK },
		{ "listen: 127.0.0.1:8080\n\napi_listen: 10.1.2.3:8081\n",
		  "t.yaml:3: api_listen: 10.1.2.3:8081" NOT_LOOPBACK },
		{ "listen: my-host.example.com:80\n",
		  "t.yaml:1: listen: my-host.example.com:80" NOT_LOOPBACK },
		/* an empty token list is no tokens */
		{ "auth:\n  tokens: []\nlisten: 192.168.0.10:8080\n",
		  "t.yaml:3: listen: 192.168.0.10:8080" NOT_LOOPBACK },
	};
	run_error_cases(cases, sizeof(cases) / sizeof(cases[0]));

	/* Loopback in every spelling is fine without tokens. */
	const char *ok[] = { "listen: 127.0.0.1:1\napi_listen: 127.9.9.9:2\n",
			     "listen: localhost:1\napi_listen: '[::1]:2'\n",
			     "listen: '[::ffff:127.0.0.1]:1'\n" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		struct floe_config *cfg = load(ok[i]);
		cr_expect_eq(cfg->auth.n_tokens, 0);
		floe_config_free(cfg);
	}
}

Test(config, endpoint_type_public_by_default)
{
	struct floe_config *cfg = load("endpoints:\n"
				       "  - {name: a, engine: sim}\n"
				       "  - {name: b, engine: sim, type: authenticated}\n"
				       "  - {name: c, engine: sim, type: private}\n"
				       "  - {name: d, engine: sim, type: public}\n");
	cr_expect_eq(floe_config_endpoint(cfg, "a")->access, FLOE_ENDPOINT_PUBLIC);
	cr_expect_eq(floe_config_endpoint(cfg, "b")->access, FLOE_ENDPOINT_AUTHENTICATED);
	cr_expect_eq(floe_config_endpoint(cfg, "c")->access, FLOE_ENDPOINT_PRIVATE);
	cr_expect_eq(floe_config_endpoint(cfg, "d")->access, FLOE_ENDPOINT_PUBLIC);
	/* the copy keeps the type, and equal sees it */
	struct floe_endpoint_config *d = floe_endpoint_config_dup(floe_config_endpoint(cfg, "c"));
	cr_expect_eq(d->access, FLOE_ENDPOINT_PRIVATE);
	cr_expect(floe_endpoint_config_equal(d, floe_config_endpoint(cfg, "c")));
	d->access = FLOE_ENDPOINT_AUTHENTICATED;
	cr_expect_not(floe_endpoint_config_equal(d, floe_config_endpoint(cfg, "c")));
	floe_endpoint_config_free(d);
	floe_config_free(cfg);
	expect_error("endpoints:\n  - name: a\n    engine: sim\n    type: protected\n",
		     "t.yaml:4: endpoints[0].type: expected one of public, authenticated, private, "
		     "got \"protected\"");
	expect_error("endpoints:\n  - name: a\n    engine: sim\n    type: ~\n",
		     "t.yaml:4: endpoints[0].type: expected one of public, authenticated, private, "
		     "got nothing");
}
