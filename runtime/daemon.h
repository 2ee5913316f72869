/* floed's daemon: configuration, the two listeners, signals, reload, shutdown. */
#ifndef FLOE_DAEMON_H
#define FLOE_DAEMON_H

struct floe_daemon_opts {
	const char *config_path; /* NULL: the embedded default */
	const char *listen;      /* overrides, or NULL */
	const char *api_listen;
	const char *data_dir;
	const char *log_level;
	const char *presets_dir;
	int check_only; /* validate the configuration and exit */
};

/** Run floed until SIGTERM/SIGINT. Returns the process exit code. */
int floe_daemon_run(const struct floe_daemon_opts *opts);

#endif
