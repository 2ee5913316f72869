/*
 * The configuration floed runs without --config: one demo endpoint of the
 * reference engine that starts on the first request and scales back to
 * zero after five idle minutes. Kept in YAML (not a C struct) so it goes
 * through the same loader and checks as a user's file.
 */
#include "config.h"

const char floe_config_default_yaml[] = "# floed's embedded default configuration\n"
					"listen: 127.0.0.1:8080\n"
					"api_listen: 127.0.0.1:8081\n"
					"endpoints:\n"
					"  - name: demo\n"
					"    engine: sim\n"
					"    args: [\"--init-ms\", \"2000\"]\n"
					"    scaling:\n"
					"      min_replica: 0\n"
					"      max_replica: 2\n"
					"      scale_to_zero_timeout: 5m\n"
					"      target_concurrency: 4\n";
