/* floed: the floe daemon. Argument parsing only; see daemon.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: floed [--config FILE] [--listen HOST:PORT] [--api-listen HOST:PORT]\n"
		"             [--data-dir DIR] [--log-level error|warn|info|debug]\n"
		"             [--presets-dir DIR] [--check]\n"
		"\n"
		"Serves inference engines as scale-to-zero endpoints.\n"
		"  --config FILE      YAML configuration (default: the embedded demo configuration)\n"
		"  --listen           data plane address (default 127.0.0.1:8080)\n"
		"  --api-listen       control plane address (default 127.0.0.1:8081)\n"
		"  --data-dir DIR     state and replica logs (default /var/lib/floe)\n"
		"  --presets-dir DIR  engine presets (default %s)\n"
		"  --check            validate the configuration and exit\n",
		FLOE_PRESETS_DIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "api-listen", required_argument, NULL, 'a' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "presets-dir", required_argument, NULL, 'p' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct floe_daemon_opts opts = { 0 };
	int ch;
	while ((ch = getopt_long(argc, argv, "c:l:a:d:L:p:ChV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': opts.config_path = optarg; break;
		case 'l': opts.listen = optarg; break;
		case 'a': opts.api_listen = optarg; break;
		case 'd': opts.data_dir = optarg; break;
		case 'L': opts.log_level = optarg; break;
		case 'p': opts.presets_dir = optarg; break;
		case 'C': opts.check_only = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("floed %s\n", FLOE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "floed: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return floe_daemon_run(&opts);
}
