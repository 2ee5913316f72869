/*
 * The control plane on api_listen: GET /healthz and GET /metrics (the later
 * endpoint API of Hugging Face Inference Endpoints grows here).
 */
#ifndef FLOE_CONTROL_H
#define FLOE_CONTROL_H

#include "metrics.h"
#include "server.h"

struct floe_control {
	struct floe_metrics *metrics; /* not owned */
};

/** Handler for floe_server_listen; set server->data to a struct floe_control. */
extern const struct floe_server_handler floe_control_handler;

#endif
