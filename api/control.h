/*
 * The control plane on api_listen (JSON unless noted):
 *
 *   GET    /healthz                    200 {"status":"ok"}
 *   GET    /metrics                    Prometheus text
 *   GET    /v2/snapshots/capabilities  what CRIU can do here (probed at start)
 *   GET    /v2/snapshots[?endpoint=N]  {"items":[...]} sorted by endpoint, then age
 *   GET    /v2/snapshots/KEY           one item (404 unknown or malformed KEY)
 *   DELETE /v2/snapshots/KEY           204; the runtime stops restoring from it
 *   GET    /api/whoami-v2, /v2/endpoint/..., /v2/provider/NS (endpoints.c: Hugging Face's shape;
 *          replicas.c: .../replicas and .../logs, floe's own)
 *   GET    /v2/billing/usage.csv       usage as RFC 4180 CSV (docs/billing.md)
 *   GET    /v2/billing/summary         usage per endpoint, JSON
 *
 * Auth: with auth.tokens configured, every /v2 route wants "Authorization:
 * Bearer TOKEN" (401 without it or with a wrong one) and shows only the
 * token's namespace: snapshots of its endpoints, its usage (403 for
 * another namespace's). /healthz and /metrics stay open, for probes and
 * Prometheus. Single-user (no tokens): nothing is asked.
 *
 * HEAD is accepted wherever GET is; other methods get 405 with Allow. Errors
 * are floe's JSON errors ({"error":{"message","type","code"}}). Reading and
 * removing snapshots, reading the ledger and reading replica logs touch the
 * disk, so they run on libuv's thread pool.
 */
#ifndef FLOE_CONTROL_H
#define FLOE_CONTROL_H

#include "metrics.h"
#include "server.h"

struct floe_activator;
struct floe_auth_config;
struct floe_config;
struct floe_registry;
struct floe_usage;

struct floe_control {
	struct floe_metrics *metrics; /* not owned */
	struct floe_activator *act;   /* not owned; NULL: the /v2/snapshots routes answer 404 */
	struct floe_usage *usage;     /* not owned; NULL: the /v2/billing routes answer 404 */
	/* Tokens of the running config (the daemon updates it on reload); NULL
	 * or none: single-user, nothing asked. */
	const struct floe_auth_config *auth;
	const char *data_url; /* the data plane, "http://HOST:PORT" (an endpoint's status.url) */
	uint64_t started_ms;  /* when floed started (Unix ms) */
	/* Endpoints created through the API (NULL: the API cannot create), the
	 * config file's (the daemon's current one), and how to serve a change:
	 * the daemon composes both and applies them. */
	struct floe_registry *registry;
	struct floe_config *const *file_cfg;
	void (*reapply)(void *arg);
	void *reapply_arg;
};

/** Handler for floe_server_listen; set server->data to a struct floe_control. */
extern const struct floe_server_handler floe_control_handler;

#endif
