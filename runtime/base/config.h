/*
 * floed configuration: the YAML file (or the embedded default), engine
 * presets from images/NAME.yaml, and the resolved per-endpoint settings.
 *
 * Loading is declarative (a table of key, type, range, default per section)
 * and every error names FILE:LINE. A loaded config is immutable; reload
 * builds a new one and the daemon diffs the two.
 */
#ifndef FLOE_CONFIG_H
#define FLOE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/** What "ready" means for an engine. */
enum floe_ready_kind {
	FLOE_READY_HTTP = 0, /* GET health_route answers 2xx (refused or non-2xx: not yet) */
	FLOE_READY_TCP = 1,  /* the port accepts a connection */
};

struct floe_kv {
	char *key;
	char *value;
};

/** An engine preset, from images/NAME.yaml. */
struct floe_preset {
	char *name;
	char *description; /* one line for humans (may be NULL) */
	/* argv template, NULL-terminated. Placeholders expanded at load:
	 * {port}, {model}, {bindir} (directory of the floed executable). */
	char **command;
	uint16_t port;
	char *health_route;
	enum floe_ready_kind ready;
	uint64_t start_timeout_ms;
	struct floe_kv *env; /* default environment, overridable per endpoint */
	size_t n_env;
};

struct floe_scaling {
	uint32_t min_replica;              /* default 0 */
	uint32_t max_replica;              /* default 1, >= max(1, min_replica) */
	uint64_t scale_to_zero_timeout_ms; /* default 15 min (Hugging Face's default) */
	uint32_t target_concurrency;       /* default 4, >= 1 */
};

/** CRIU snapshots of an endpoint's engine (issue 3). */
struct floe_snapshot_config {
	bool enabled; /* default true: restore cold starts from a snapshot when CRIU works here */
	bool lazy_pages; /* default false: restore pages on first touch (userfaultfd) */
	/* Warm-up request sent to a fresh replica before it is dumped, so that
	 * lazy initialisation is in the snapshot. method NULL: none. */
	char *warmup_method;
	char *warmup_path;          /* starts with '/' */
	char *warmup_body;          /* may be NULL */
	uint64_t warmup_timeout_ms; /* default 60 s */
};

/** What a replica of an endpoint runs on, for billing (and, later, placement). */
struct floe_resources_config {
	char *instance_type; /* NULL: "cpu" without GPUs, else the host's GPU model */
	uint32_t gpus;       /* default 0 */
};

/** Who may call an endpoint on the data plane (config key `type`; issue 5). */
enum floe_endpoint_access {
	FLOE_ENDPOINT_PUBLIC = 0,        /* "public": no token needed (default) */
	FLOE_ENDPOINT_AUTHENTICATED = 1, /* "authenticated": a token of its namespace */
	FLOE_ENDPOINT_PRIVATE = 2,       /* "private": a token of its namespace */
};

struct floe_endpoint_config {
	char *name;   /* [a-z0-9][a-z0-9-]{0,62}, unique */
	char *ns;     /* namespace its usage is billed to (default "default") */
	char *engine; /* preset name, or "custom" */
	char *model;  /* optional; fills {model} in presets */
	char **argv;  /* resolved: preset command (or custom command) + args, NULL-terminated */
	size_t argc;
	struct floe_kv *env; /* resolved: preset env overridden by endpoint env */
	size_t n_env;
	uint16_t port;      /* port inside the replica's network namespace */
	char *health_route; /* starts with '/' */
	enum floe_ready_kind ready;
	uint64_t start_timeout_ms; /* a replica not ready by then is failed (default: preset's, else 10 min) */
	uint64_t stop_grace_ms; /* SIGTERM to SIGKILL, default 10 s */
	uint32_t queue_size;    /* held requests per endpoint, default 1024 */
	uint64_t max_hold_ms;   /* longest a request is held, default 300 s */
	struct floe_scaling scaling;
	struct floe_snapshot_config snapshot;
	uint32_t warm_pool_size; /* frozen pre-restored replicas kept ready (default 0) */
	struct floe_resources_config resources;
	/* key `type`: who may call it on the data plane (default public) */
	enum floe_endpoint_access access;
	int line; /* line of this endpoint in its file, for messages */
};

/* Billable replica states, in the order of prices[] (enum floe_meter_state). */
#define FLOE_BILLING_NSTATES 4

/** Price per hour of one replica of an instance type, per state. */
struct floe_price {
	char *instance_type;
	uint64_t per_hour_micro[FLOE_BILLING_NSTATES]; /* millionths of the currency */
	int line;
};

/** The usage ledger and its prices (billing: in the config). */
struct floe_billing_config {
	char *currency;               /* three capital letters, default USD */
	bool round_second;            /* rounding: minute (default) or second */
	uint64_t commit_interval_ms;  /* ledger group commit, default 1 s */
	uint64_t max_export_range_ms; /* longest from..to of an export, default 366 days */
	struct floe_price *prices;
	size_t n_prices;
};

/** The price of instance_type, or NULL when the config has none (billed at 0). */
const struct floe_price *floe_billing_price(const struct floe_billing_config *b,
					    const char *instance_type);

/** One API token, stored as its hash (issue 5: auth). */
struct floe_auth_token {
	char *ns;           /* namespace: [a-z0-9][a-z0-9-]{0,62} */
	uint8_t sha256[32]; /* SHA-256 of the token; the token itself is never stored */
	int line;           /* line of this token in its file, for messages */
};

/** auth: the tokens floed accepts. None: single-user (namespace "default"). */
struct floe_auth_config {
	struct floe_auth_token *tokens; /* distinct hashes */
	size_t n_tokens;
};

struct floe_config {
	char *path;                 /* file it came from ("<embedded>" for the default) */
	char *listen_host;          /* default 127.0.0.1 */
	uint16_t listen_port;       /* default 8080 */
	char *api_host;             /* default 127.0.0.1 */
	uint16_t api_port;          /* default 8081 */
	char *data_dir;             /* default /var/lib/floe */
	char *log_level;            /* error|warn|info|debug, default info */
	bool log_json;              /* default false */
	uint32_t max_header_bytes;  /* default 64 KiB -> 431 */
	uint64_t max_body_bytes;    /* default 32 MiB -> 413 */
	uint64_t header_timeout_ms; /* default 10 s -> 408 */
	uint64_t shutdown_grace_ms; /* default 30 s: SIGTERM waits this long for in-flight requests */
	uint64_t replica_log_max_bytes; /* default 10 MiB per replica log file */
	uint64_t warm_pool_memory; /* bytes all warm pools may hold together; 0: no cap (default) */
	struct floe_billing_config billing;
	/* Without tokens, listen and api_listen must be loopback (checked at load). */
	struct floe_auth_config auth;
	struct floe_endpoint_config *endpoints;
	size_t n_endpoints;
};

/** Where the loader finds presets and what it substitutes for {bindir}. */
struct floe_config_env {
	const char *presets_dir; /* directory of NAME.yaml presets */
	const char *bindir;      /* directory of the floed executable */
};

/**
 * Parse a YAML config file. On success returns 0 and a new config in *out
 * (free with floe_config_free). On failure returns a negative code and err
 * holds "FILE:LINE: message"; *out is untouched.
 */
int floe_config_load_file(const char *path, const struct floe_config_env *env,
			  struct floe_config **out, floe_error *err);

/** Same, from a string; name stands for the file name in messages. */
int floe_config_load_string(const char *text, size_t len, const char *name,
			    const struct floe_config_env *env, struct floe_config **out,
			    floe_error *err);

/** The embedded default configuration (one demo endpoint of the sim engine). */
extern const char floe_config_default_yaml[];

/** Load one preset, images/NAME.yaml. Returns 0 or negative with err set. */
int floe_preset_load(const char *presets_dir, const char *name, const char *bindir,
		     struct floe_preset **out, floe_error *err);
void floe_preset_free(struct floe_preset *p);

void floe_config_free(struct floe_config *cfg);

/**
 * Append a copy of ep to cfg's endpoints (floed composes the endpoints of
 * the file with those created through the API). Returns 0, or -EEXIST when
 * cfg already has an endpoint of that name.
 */
int floe_config_add_endpoint(struct floe_config *cfg, const struct floe_endpoint_config *ep);

/** Find an endpoint by name, or NULL. */
const struct floe_endpoint_config *floe_config_endpoint(const struct floe_config *cfg,
							const char *name);

/**
 * True when two endpoint configs start the same engine process the same way
 * (reload keeps the running replicas of an endpoint whose definition is equal).
 */
bool floe_endpoint_config_equal(const struct floe_endpoint_config *a,
				const struct floe_endpoint_config *b);

/** Deep copy (the runtime keeps its own copy across reloads). */
struct floe_endpoint_config *floe_endpoint_config_dup(const struct floe_endpoint_config *src);
void floe_endpoint_config_free(struct floe_endpoint_config *ep);

/**
 * Parse a duration: a non-negative integer followed by ms, s, m, h or d
 * ("30s", "1500ms", "15m", "366d"). A bare integer is refused (ambiguous).
 * Returns 0 or -EINVAL.
 */
int floe_duration_parse(const char *text, uint64_t *ms_out);

/**
 * Parse a non-negative decimal amount with at most 6 decimals ("4.5",
 * "0.000125", "12") into millionths, exactly. Returns 0 or -EINVAL
 * (signs, exponents, more decimals, over 10^12).
 */
int floe_amount_parse(const char *text, uint64_t *micro_out);

/** Parse "HOST:PORT" (IPv4, [IPv6] or a name). Returns 0 or -EINVAL; *host is allocated. */
int floe_hostport_parse(const char *text, char **host, uint16_t *port);

#endif
