#define LOG_TAG "floed"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "activator.h"
#include "auth.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "server.h"
#include "usage.h"
#include "xalloc.h"

/* Idle keep-alive client connections are closed after this. */
#define CLIENT_IDLE_TIMEOUT_MS 75000

struct daemon {
	uv_loop_t *loop;
	const struct floe_daemon_opts *opts;
	struct floe_config_env env;
	struct floe_config *cfg;
	struct floe_metrics *metrics;
	struct floe_activator *act;
	struct floe_usage *usage;
	struct floe_registry *registry; /* endpoints created through the API */
	struct floe_control control;
	char *data_url;
	struct floe_server data;
	struct floe_server api;
	uv_signal_t sigterm, sigint, sighup;
	bool stopping;
	int exit_code;
	char bindir[PATH_MAX];
};

/* Replace *host and *port only when text parses, so the config stays whole. */
static int override_hostport(const char *flag, const char *text, char **host, uint16_t *port,
			     floe_error *err)
{
	char *h = NULL;
	uint16_t p;
	if (floe_hostport_parse(text, &h, &p) < 0)
		return floe_error_set(err, -EINVAL, "%s: expected HOST:PORT, got '%s'", flag, text);
	free(*host);
	*host = h;
	*port = p;
	return 0;
}

static int load_config(struct daemon *d, struct floe_config **out, floe_error *err)
{
	const struct floe_daemon_opts *o = d->opts;
	struct floe_config *cfg = NULL;
	int rc;
	if (o->config_path)
		rc = floe_config_load_file(o->config_path, &d->env, &cfg, err);
	else
		rc = floe_config_load_string(floe_config_default_yaml,
					     strlen(floe_config_default_yaml), "<embedded default>",
					     &d->env, &cfg, err);
	if (rc < 0)
		return rc;
	/* Command-line flags win over the file. */
	if ((o->listen && override_hostport("--listen", o->listen, &cfg->listen_host,
					    &cfg->listen_port, err) < 0) ||
	    (o->api_listen && override_hostport("--api-listen", o->api_listen, &cfg->api_host,
						&cfg->api_port, err) < 0)) {
		floe_config_free(cfg);
		return err->code;
	}
	/* The loader checked the file's addresses; the flags may have moved
	 * them off loopback, and without tokens that would serve everyone. */
	if ((o->listen && floe_auth_listen_check(&cfg->auth, "--listen", cfg->listen_host,
						 cfg->listen_port, err) < 0) ||
	    (o->api_listen && floe_auth_listen_check(&cfg->auth, "--api-listen", cfg->api_host,
						     cfg->api_port, err) < 0)) {
		floe_config_free(cfg);
		return err->code;
	}
	if (o->data_dir) {
		free(cfg->data_dir);
		cfg->data_dir = xstrdup(o->data_dir);
	}
	if (o->log_level) {
		free(cfg->log_level);
		cfg->log_level = xstrdup(o->log_level);
	}
	enum floe_log_level lvl;
	if (floe_log_level_parse(cfg->log_level, &lvl) < 0) {
		floe_config_free(cfg);
		return floe_error_set(err, -EINVAL,
				      "log level: expected error|warn|info|debug, got '%s'",
				      cfg->log_level);
	}
	*out = cfg;
	return 0;
}

/* Serve the file's endpoints and those created through the API: at start,
 * on reload, and after the API changed one (control.reapply). */
static void apply_endpoints(void *arg)
{
	struct daemon *d = arg;
	struct floe_config *served = floe_registry_compose(d->registry, d->cfg);
	floe_activator_apply(d->act, served);
	floe_registry_settle(d->registry, d->act);
	floe_config_free(served);
}

static void apply_log_settings(const struct floe_config *cfg)
{
	enum floe_log_level lvl = FLOE_LOG_INFO;
	floe_log_level_parse(cfg->log_level, &lvl);
	floe_log_init(lvl, cfg->log_json);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_activator_done(struct floe_activator *a, void *arg)
{
	struct daemon *d = arg;
	log_info("all replicas stopped; exiting");
	floe_usage_close(d->usage);
	floe_server_close_all(&d->data);
	floe_server_close_all(&d->api);
	uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&d->sighup, on_handle_closed);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (d->stopping) {
		log_warn("second %s: not waiting any longer", strsignal(signum));
		floe_server_close_all(&d->data);
		return;
	}
	d->stopping = true;
	log_info("%s: shutting down (grace %.1f s)", strsignal(signum),
		 (double)d->cfg->shutdown_grace_ms / 1000.0);
	floe_server_drain(&d->data);
	floe_activator_shutdown(d->act, d->cfg->shutdown_grace_ms, on_activator_done, d);
}

static void on_reload_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (d->stopping)
		return;
	floe_error err;
	floe_error_clear(&err);
	struct floe_config *cfg = NULL;
	if (load_config(d, &cfg, &err) < 0) {
		log_error("reload refused, keeping the running configuration: %s", err.msg);
		return;
	}
	/* A reload does not rebind: the new tokens must suit the addresses
	 * floed is bound to (dropping every token while on 0.0.0.0 would make
	 * it single-user for anyone). */
	if (floe_auth_listen_check(&cfg->auth, "listen (bound)", d->cfg->listen_host,
				   d->cfg->listen_port, &err) < 0 ||
	    floe_auth_listen_check(&cfg->auth, "api_listen (bound)", d->cfg->api_host,
				   d->cfg->api_port, &err) < 0) {
		log_error("reload refused, keeping the running configuration: %s", err.msg);
		floe_config_free(cfg);
		return;
	}
	if (strcmp(cfg->listen_host, d->cfg->listen_host) != 0 ||
	    cfg->listen_port != d->cfg->listen_port ||
	    strcmp(cfg->api_host, d->cfg->api_host) != 0 || cfg->api_port != d->cfg->api_port ||
	    strcmp(cfg->data_dir, d->cfg->data_dir) != 0)
		log_warn("reload: listen addresses and data_dir take effect only on restart");
	apply_log_settings(cfg);
	floe_usage_configure(d->usage, &cfg->billing);
	struct floe_config *old = d->cfg;
	d->cfg = cfg;
	d->control.auth = &cfg->auth;
	floe_activator_set_auth(d->act, &cfg->auth);
	apply_endpoints(d);
	floe_config_free(old);
	log_info("configuration reloaded (%zu endpoints)", cfg->n_endpoints);
}

static void find_bindir(struct daemon *d)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(d->bindir, sizeof(d->bindir), ".");
		return;
	}
	exe[n] = '\0';
	snprintf(d->bindir, sizeof(d->bindir), "%s", dirname(exe));
}

int floe_daemon_run(const struct floe_daemon_opts *opts)
{
	struct daemon d = { 0 };
	d.opts = opts;
	find_bindir(&d);
	d.env.bindir = d.bindir;
	d.env.presets_dir = opts->presets_dir ? opts->presets_dir : FLOE_PRESETS_DIR;

	floe_error err;
	floe_error_clear(&err);
	if (load_config(&d, &d.cfg, &err) < 0) {
		fprintf(stderr, "floed: %s\n", err.msg);
		return 1;
	}
	if (opts->check_only) {
		printf("%s: ok (%zu endpoints)\n", d.cfg->path, d.cfg->n_endpoints);
		floe_config_free(d.cfg);
		return 0;
	}
	apply_log_settings(d.cfg);
	int rc = floe_mkdir_p(d.cfg->data_dir, 0750);
	if (rc < 0) {
		fprintf(stderr, "floed: data directory %s: %s\n", d.cfg->data_dir, strerror(-rc));
		floe_config_free(d.cfg);
		return 1;
	}
	/* A client that disappears must cost us an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);

	char *init_path = xasprintf("%s/floe-init", d.bindir);
	if (access(init_path, X_OK) != 0) {
		fprintf(stderr, "floed: %s: %s (it must sit next to floed)\n", init_path,
			strerror(errno));
		free(init_path);
		floe_config_free(d.cfg);
		return 1;
	}

	d.loop = uv_default_loop();
	d.metrics = floe_metrics_new();
	if (floe_usage_open(d.loop, d.cfg->data_dir, d.metrics, &d.cfg->billing, &d.usage, &err) <
	    0) {
		/* Serving without metering would hand out unbillable time. */
		fprintf(stderr, "floed: %s\n", err.msg);
		free(init_path);
		floe_metrics_free(d.metrics);
		floe_config_free(d.cfg);
		return 1;
	}
	if (floe_registry_open(d.loop, d.cfg->data_dir, &d.env, &d.registry, &err) < 0) {
		/* A state file of a newer floed, or one that cannot be read: its
		 * endpoints must not silently disappear. */
		fprintf(stderr, "floed: %s\n", err.msg);
		free(init_path);
		floe_usage_close(d.usage);
		uv_run(d.loop, UV_RUN_DEFAULT);
		floe_usage_free(d.usage);
		floe_metrics_free(d.metrics);
		floe_config_free(d.cfg);
		return 1;
	}
	struct floe_activator_opts aopts = {
		.data_dir = d.cfg->data_dir,
		.init_path = init_path,
		.replica_log_max_bytes = d.cfg->replica_log_max_bytes,
		.warm_pool_memory = d.cfg->warm_pool_memory,
		.snapshots = true,
		.usage = d.usage,
		.on_status = floe_registry_on_status,
		.status_arg = d.registry,
	};
	d.act = floe_activator_new(d.loop, d.metrics, &aopts);
	floe_activator_set_auth(d.act, &d.cfg->auth);
	free(init_path);
	d.control.metrics = d.metrics;
	d.control.act = d.act;
	d.control.usage = d.usage;
	d.control.registry = d.registry;
	d.control.file_cfg = &d.cfg;
	d.control.reapply = apply_endpoints;
	d.control.reapply_arg = &d;
	d.control.auth = &d.cfg->auth;

	struct floe_server_limits limits = {
		.max_head_bytes = d.cfg->max_header_bytes,
		.max_body_bytes = d.cfg->max_body_bytes,
		.header_timeout_ms = d.cfg->header_timeout_ms,
		.idle_timeout_ms = CLIENT_IDLE_TIMEOUT_MS,
	};
	if (floe_server_listen(&d.data, d.loop, "data", d.cfg->listen_host, d.cfg->listen_port,
			       &floe_activator_handler, &limits, &err) < 0 ||
	    floe_server_listen(&d.api, d.loop, "api", d.cfg->api_host, d.cfg->api_port,
			       &floe_control_handler, &limits, &err) < 0) {
		fprintf(stderr, "floed: %s\n", err.msg);
		return 1;
	}
	d.data.data = d.act;
	d.api.data = &d.control;
	/* What clients are told to call: a wildcard address is not one. */
	const char *host = d.cfg->listen_host;
	if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		host = !strcmp(host, "::") ? "::1" : "127.0.0.1";
	d.data_url = strchr(host, ':') ?
			     xasprintf("http://[%s]:%u", host, floe_server_port(&d.data)) :
			     xasprintf("http://%s:%u", host, floe_server_port(&d.data));
	d.control.data_url = d.data_url;
	d.control.started_ms = floe_wall_ms();

	uv_signal_init(d.loop, &d.sigterm);
	uv_signal_init(d.loop, &d.sigint);
	uv_signal_init(d.loop, &d.sighup);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	uv_signal_start(&d.sigterm, on_stop_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_stop_signal, SIGINT);
	uv_signal_start(&d.sighup, on_reload_signal, SIGHUP);

	log_info("floed %s: data plane http://%s:%u, control plane http://%s:%u, data dir %s",
		 FLOE_VERSION, d.cfg->listen_host, floe_server_port(&d.data), d.cfg->api_host,
		 floe_server_port(&d.api), d.cfg->data_dir);
	apply_endpoints(&d);

	uv_run(d.loop, UV_RUN_DEFAULT);

	floe_activator_free(d.act);
	floe_usage_close(d.usage);      /* already done unless the loop ended another way */
	uv_run(d.loop, UV_RUN_DEFAULT); /* let the close callbacks run */
	floe_usage_free(d.usage);       /* waits for the last commit */
	floe_registry_free(d.registry);
	floe_metrics_free(d.metrics);
	free(d.data_url);
	floe_config_free(d.cfg);
	int close_rc = uv_loop_close(d.loop);
	if (close_rc != 0)
		log_warn("event loop closed with handles still open");
	log_info("bye");
	return d.exit_code;
}
