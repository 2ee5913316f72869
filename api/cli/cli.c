/*
 * floe: the command-line client of floed's control plane.
 *
 *     floe [--url URL] [--token TOKEN] [--json] COMMAND [SUBCOMMAND] [ARGS...]
 *
 * Commands live in one table (name, subcommand, handler, usage, help), so
 * that issue 5's `endpoint ...`, `replicas` and `token new` slot in as rows.
 * Each handler parses its own options with cli__parse_opts(), which also
 * accepts the global ones (--url, --token, --json, --help) anywhere on the
 * line.
 *
 * Exit codes: 0 success, 1 an error (HTTP error, floed unreachable, I/O,
 * an endpoint that failed), 2 a usage error, 3 an export that floed marked
 * incomplete (ledger damage), 4 a wait that timed out.
 *
 * The token (--token or FLOE_TOKEN) is sent as `Authorization: Bearer` and
 * never printed: not in errors, not in help, not in --json output.
 *
 * The files: this one has the command line (global options, option
 * parsing, the command table, help, exit codes); format.c what is
 * printed (errors, tables, units); http.c the requests to floed (over
 * libcurl) and their errors; endpoint-common.c and wait.c what the
 * endpoint commands share. The commands: billing.c (billing export and
 * summary), snapshot.c (snapshot ls and rm), token.c (token new),
 * endpoint.c (endpoint ls, describe, wait, pause, resume,
 * scale-to-zero, delete), endpoint-write.c (endpoint create and
 * update), replicas.c (replicas, endpoint logs). cli-internal.h is what
 * they share; the command files never use each other.
 */
#define LOG_TAG "cli"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cli-internal.h"
#include "xalloc.h"

struct command {
	const char *name;
	const char *sub; /* NULL: a command without subcommands */
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *usage;   /* after "floe " */
	const char *summary; /* one line for `floe help` */
	const char *help;    /* option and argument lines for `floe help COMMAND` */
};

int cli__usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("floe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "usage: floe %s\n", cmd->usage);
	else
		fputs("usage: floe [--url URL] [--token TOKEN] [--json] COMMAND ...\n"
		      "Run 'floe help' for the list of commands.\n",
		      stderr);
	return EXIT_USAGE;
}

/* --- option parsing ----------------------------------------------------------- */

static void strv_push(struct strv *sv, const char *s)
{
	sv->v = xrealloc(sv->v, (sv->n + 1) * sizeof(*sv->v));
	sv->v[sv->n++] = s;
}

/*
 * Resolve the URL and token: flags first, then FLOE_URL / FLOE_TOKEN, then
 * the default URL. A URL must be http(s); a token may not hold control
 * characters (it goes into a header line). Returns EXIT_OK or EXIT_USAGE.
 */
static int cli_resolve(struct cli *cli)
{
	const char *url = cli->url ? cli->url : getenv("FLOE_URL");
	if (!url || !url[0])
		url = DEFAULT_URL;
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return cli__usage_error(cli->cmd, "the URL must start with http:// or https://: %s",
					url);
	free(cli->url_owned);
	cli->url_owned = xstrdup(url);
	size_t n = strlen(cli->url_owned);
	while (n > 0 && cli->url_owned[n - 1] == '/')
		cli->url_owned[--n] = '\0';
	cli->url = cli->url_owned;

	const char *token = cli->token ? cli->token : getenv("FLOE_TOKEN");
	cli->token = token && token[0] ? token : NULL;
	for (const char *p = cli->token; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			/* Say which source, never the value. */
			return cli__usage_error(cli->cmd, "the token contains control characters");
	return EXIT_OK;
}

static void print_command_help(FILE *out, const struct command *cmd);

int cli__parse_opts(struct cli *cli, const struct opt *opts, int argc, char **argv, int *npos)
{
	const struct opt globals[] = {
		{ "url", 0, &cli->url, NULL, NULL },
		{ "token", 0, &cli->token, NULL, NULL },
		{ "json", 0, NULL, &cli->json, NULL },
	};
	bool help = false;
	int np = 0;
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			argv[np++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = true;
			continue;
		}
		const struct opt *o = NULL;
		const char *inline_val = NULL;
		if (a[1] == '-') {
			const char *name = a + 2;
			size_t len = strcspn(name, "=");
			if (name[len] == '=')
				inline_val = name + len + 1;
			for (int pass = 0; pass < 2 && !o; pass++) {
				const struct opt *set = pass ? globals : opts;
				size_t n = pass ? sizeof(globals) / sizeof(*globals) : SIZE_MAX;
				for (size_t k = 0; k < n && set && set[k].name; k++)
					if (strlen(set[k].name) == len &&
					    strncmp(set[k].name, name, len) == 0)
						o = &set[k];
			}
		} else if (a[2] == '\0') {
			for (size_t k = 0; opts && opts[k].name && !o; k++)
				if (opts[k].short_name == a[1])
					o = &opts[k];
		}
		if (!o)
			return cli__usage_error(cli->cmd, "unknown option %s", a);
		if (o->flag) {
			if (inline_val)
				return cli__usage_error(cli->cmd, "option --%s takes no value",
							o->name);
			*o->flag = true;
			continue;
		}
		if (!inline_val) {
			if (i + 1 >= argc)
				return cli__usage_error(cli->cmd, "option %s needs a value", a);
			inline_val = argv[++i];
		}
		if (o->many)
			strv_push(o->many, inline_val);
		else
			*o->value = inline_val;
	}
	*npos = np;
	if (help) {
		print_command_help(stdout, cli->cmd);
		return EXIT_HELP_DONE;
	}
	return cli_resolve(cli);
}

bool cli__one_of(const char *value, const char *choices)
{
	size_t n = strlen(value);
	for (const char *p = choices; *p;) {
		size_t len = strcspn(p, "|");
		if (len == n && n > 0 && strncmp(p, value, n) == 0)
			return true;
		p += len + (p[len] == '|');
	}
	return false;
}

/* --- help, version, dispatch -------------------------------------------------- */

static const struct command commands[] = {
	{ "billing", "export", cli__cmd_billing_export,
	  "billing export [--namespace NS] [--from T] [--to T] [--granularity minute|hour|day] "
	  "[--group-by endpoint|replica] [-o FILE]",
	  "write metered usage as CSV (GET /v2/billing/usage.csv)",
	  "  --namespace NS        only this namespace (default: all)\n"
	  "  --from T, --to T      the half-open range [from, to), ISO-8601 on a whole UTC\n"
	  "                        minute: 2025-06-01, 2025-06-01T10:00Z, 2025-06-01T10:00:00Z,\n"
	  "                        2025-06-01T12:00+02:00 (default: this month so far)\n"
	  "  --granularity G       minute, hour or day (default day)\n"
	  "  --group-by G          endpoint or replica (default endpoint)\n"
	  "  -o, --output FILE     write FILE (atomically: nothing is left on failure);\n"
	  "                        default or -: stdout\n"
	  "Exits 3 (after writing the CSV) when floed says the ledger has damage and the\n"
	  "export is incomplete (the Floe-Ledger-Incomplete response header).\n" },
	{ "billing", "summary", cli__cmd_billing_summary,
	  "billing summary [--namespace NS] [--from T] [--to T] [--json]",
	  "usage and cost per endpoint (GET /v2/billing/summary)",
	  "  --namespace NS        only this namespace (default: all)\n"
	  "  --from T, --to T      as for billing export\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "Exits 3 (after the output) when the summary is incomplete (ledger damage).\n" },
	{ "snapshot", "ls", cli__cmd_snapshot_ls, "snapshot ls [--endpoint NAME] [--json]",
	  "list CRIU snapshots (GET /v2/snapshots)",
	  "  --endpoint NAME       only this endpoint's snapshots\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "KEY shows the first 12 of 64 hex digits; SIZE is the image size; LAST RESTORE\n"
	  "is how long the last restore took.\n" },
	{ "snapshot", "rm", cli__cmd_snapshot_rm, "snapshot rm KEY...",
	  "delete snapshots (DELETE /v2/snapshots/KEY)",
	  "  KEY                   a full key (64 hex digits) or a unique prefix of at least 8;\n"
	  "                        every KEY is resolved before any is deleted\n" },
	{ "endpoint", "ls", cli__cmd_endpoint_ls, "endpoint ls [--namespace NS] [--json]",
	  "list endpoints (GET /v2/endpoint/NS)",
	  "  --namespace NS        the namespace (default: the token's, from GET\n"
	  "                        /api/whoami-v2; without tokens: default)\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "ENGINE is what --engine takes: a custom image's preset or path (sim), else the\n"
	  "image kind (vllm, tgi, huggingface).\n" },
	{ "endpoint", "describe", cli__cmd_endpoint_describe,
	  "endpoint describe NAME [--namespace NS] [--json]",
	  "show one endpoint (GET /v2/endpoint/NS/NAME)",
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                the Endpoint JSON as floed sends it\n" },
	{ "endpoint", "create", cli__cmd_endpoint_create,
	  "endpoint create NAME [OPTIONS] [--wait [--timeout S]]\n"
	  "       floe endpoint create [NAME] --from-file FILE.json [--wait [--timeout S]]",
	  "create an endpoint (POST /v2/endpoint/NS, Hugging Face's body)",
	  "Options (each maps to a field of Hugging Face's body):\n"
	  "  --engine E            vllm, tgi, sglang, tei, llamacpp, huggingface (model.image\n"
	  "                        of that kind), or a floe preset such as sim, or an absolute\n"
	  "                        path to an executable (model.image.custom.url)\n"
	  "  --repository R        model.repository (also --repo; default: NAME)\n"
	  "  --revision, --task, --framework   model.revision, model.task, model.framework\n"
	  "  --type T              public, authenticated or private (default authenticated)\n"
	  "  --min-replica N, --max-replica N  compute.scaling.minReplica, maxReplica\n"
	  "  --scale-to-zero-timeout MIN       minutes idle before scaling to zero (0: never)\n"
	  "  --scaling-threshold X compute.scaling.measure.pendingRequests\n"
	  "  --accelerator, --instance-type, --instance-size   compute.*\n"
	  "  --env K=V             model.env (repeatable)\n"
	  "  --secret K=V          model.secrets (repeatable; floed never shows them)\n"
	  "  --port P, --health-route /h       the engine's port and health route\n"
	  "  --command WORD        model.command, one word each (repeatable): the engine's argv\n"
	  "  --arg A               model.args (repeatable): arguments after the command\n"
	  "  --from-file FILE      send FILE (- for stdin), a JSON body, as it is\n"
	  "  --wait                then wait until it is ready, as endpoint wait does\n"
	  "  --timeout S           with --wait: give up after S seconds (exit 4)\n"
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                print floed's JSON instead of the view\n"
	  "A value floed refuses is its 400, naming the field (exit 1).\n" },
	{ "endpoint", "update", cli__cmd_endpoint_update,
	  "endpoint update NAME [OPTIONS] [--wait [--timeout S]]\n"
	  "       floe endpoint update NAME --from-file FILE.json [--wait [--timeout S]]",
	  "change an endpoint: only the fields given (PUT, a merge patch)",
	  "OPTIONS are those of endpoint create (see floe help endpoint create); only\n"
	  "those given are sent (an RFC 7386 merge patch): --port and --health-route\n"
	  "change the image the endpoint has, --engine of another kind replaces it,\n"
	  "--env K=V adds or changes K and keeps the others.\n"
	  "  --from-file FILE      send FILE, a merge patch, as it is\n"
	  "  --wait, --timeout S   as for create\n" },
	{ "endpoint", "pause", cli__cmd_endpoint_pause,
	  "endpoint pause NAME [--namespace NS] [--json]",
	  "pause: replicas drain, requests get 503 and never wake it",
	  "  --namespace NS        as for endpoint ls\n" },
	{ "endpoint", "resume", cli__cmd_endpoint_resume,
	  "endpoint resume NAME [--namespace NS] [--json]", "resume a paused endpoint",
	  "  --namespace NS        as for endpoint ls\n"
	  "A running endpoint is floed's 400 \"endpoint is already running\" (exit 1).\n" },
	{ "endpoint", "scale-to-zero", cli__cmd_endpoint_scale_to_zero,
	  "endpoint scale-to-zero NAME [--namespace NS] [--json]",
	  "stop its replicas now; the next request starts one",
	  "  --namespace NS        as for endpoint ls\n" },
	{ "endpoint", "delete", cli__cmd_endpoint_delete,
	  "endpoint delete NAME [--namespace NS] [--json]",
	  "delete an endpoint (asks nothing: meant for scripts)",
	  "  --namespace NS        as for endpoint ls\n"
	  "Deletes at once, without a question; its replicas drain.\n" },
	{ "endpoint", "wait", cli__cmd_endpoint_wait,
	  "endpoint wait NAME [--timeout S] [--namespace NS] [--json]",
	  "wait until an endpoint is ready, without waking it",
	  "  --timeout S           give up after S seconds: exit 4 (default: no limit)\n"
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                when ready, the Endpoint JSON instead of its URL\n"
	  "Polls the state until running with a URL, then GET {url}{healthRoute} until\n"
	  "200, as huggingface_hub's wait() does; neither wakes a scaled-to-zero endpoint.\n"
	  "Progress on stderr; the URL on stdout when ready. Exit 0 ready, 1 failed,\n"
	  "4 timed out.\n" },
	{ "endpoint", "logs", cli__cmd_endpoint_logs,
	  "endpoint logs NAME [--replica ID] [--tail N] [-f|--follow] [--namespace NS]",
	  "print an engine's output (GET /v2/endpoint/NS/NAME/logs)",
	  "  --replica ID          this replica (see floe replicas; default: the newest)\n"
	  "  --tail N              the last N lines (floed's default: 100)\n"
	  "  -f, --follow          then keep printing as the engine writes, until its\n"
	  "                        process ends; Ctrl-C stops (exit 0)\n"
	  "  --namespace NS        as for endpoint ls\n" },
	{ "replicas", NULL, cli__cmd_replicas, "replicas NAME [--namespace NS] [--json]",
	  "list an endpoint's live replicas (GET /v2/endpoint/NS/NAME/replicas)",
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "COLD START is the kind of start (fresh, restore, warm_pool) and how long it\n"
	  "took (- while starting); UPTIME counts from when floed began starting it.\n" },
	{ "token", "new", cli__cmd_token_new, "token new NAMESPACE [--json]",
	  "make an API token for a namespace (local: does not contact floed)",
	  "  NAMESPACE             [a-z0-9][a-z0-9-]{0,62}: the endpoints the token may manage\n"
	  "  --json                {\"namespace\",\"token\",\"sha256\"} instead of the text\n"
	  "Prints the token once and the lines to add under auth.tokens in floed's config\n"
	  "(its SHA-256: floed never stores the token). Reload floed (SIGHUP) to apply.\n" },
	{ 0 },
};

static const char global_help[] =
	"Global options (before or after the command):\n"
	"  --url URL             floed's control plane (env FLOE_URL, default " DEFAULT_URL ")\n"
	"  --token TOKEN         sent as Authorization: Bearer (env FLOE_TOKEN); never printed\n"
	"  --json                floed's JSON, for scripts (commands that talk to floed)\n"
	"  -h, --help            help for the command\n"
	"  --version             print the version\n"
	"Exit codes: 0 ok, 1 error, 2 usage error, 3 incomplete export (ledger damage),\n"
	"4 endpoint wait timed out.\n";

static void print_command_help(FILE *out, const struct command *cmd)
{
	fprintf(out, "usage: floe %s\n\n%s.\n\n%s\n%s", cmd->usage, cmd->summary, cmd->help,
		global_help);
}

static void print_help(FILE *out)
{
	fputs("usage: floe [--url URL] [--token TOKEN] [--json] COMMAND ...\n\n"
	      "floe talks to floed's control plane.\n\nCommands:\n",
	      out);
	for (const struct command *c = commands; c->name; c++) {
		char *name = xasprintf("%s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");
		fprintf(out, "  %-22s %s\n", name, c->summary);
		free(name);
	}
	fprintf(out, "  %-22s %s\n\n%s", "help [COMMAND]", "help on a command", global_help);
}

/* The subcommands of group name, for a usage message. */
static void print_group_usage(FILE *out, const char *name)
{
	fputs("usage:\n", out);
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			fprintf(out, "  floe %s\n", c->usage);
}

static bool group_exists(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return true;
	return false;
}

/* The command `name [sub]`; *used gets how many words it took (1 or 2). */
static const struct command *find_command(const char *name, const char *sub, int *used)
{
	for (const struct command *c = commands; c->name; c++) {
		if (strcmp(c->name, name) != 0)
			continue;
		if (!c->sub) {
			*used = 1;
			return c;
		}
		if (sub && strcmp(c->sub, sub) == 0) {
			*used = 2;
			return c;
		}
	}
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	if (argc == 0) {
		print_help(stdout);
		return EXIT_OK;
	}
	int used;
	const struct command *c = find_command(argv[0], argc > 1 ? argv[1] : NULL, &used);
	if (c && used == argc) {
		print_command_help(stdout, c);
		return EXIT_OK;
	}
	if (argc == 1 && group_exists(argv[0])) {
		print_group_usage(stdout, argv[0]);
		return EXIT_OK;
	}
	return cli__usage_error(NULL, "no help for '%s%s%s': unknown command", argv[0],
				argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	int i = 1;
	/* Global options before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--version") == 0) {
			printf("floe %s\n", FLOE_VERSION);
			return EXIT_OK;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_help(stdout);
			return EXIT_OK;
		}
		if (strcmp(a, "--json") == 0) {
			cli.json = true;
			continue;
		}
		const char **dst = strncmp(a, "--url", 5) == 0   ? &cli.url :
				   strncmp(a, "--token", 7) == 0 ? &cli.token :
								   NULL;
		size_t len = dst == &cli.url ? 5 : 7;
		if (dst && a[len] == '=') {
			*dst = a + len + 1;
			continue;
		}
		if (dst && a[len] == '\0') {
			if (i + 1 >= argc)
				return cli__usage_error(NULL, "option %s needs a value", a);
			*dst = argv[++i];
			continue;
		}
		return cli__usage_error(NULL, "unknown option %s", a);
	}
	if (i >= argc)
		return cli__usage_error(NULL, "no command given");
	const char *name = argv[i];
	if (strcmp(name, "help") == 0)
		return cmd_help(argc - i - 1, argv + i + 1);
	if (strcmp(name, "version") == 0) {
		printf("floe %s\n", FLOE_VERSION);
		return EXIT_OK;
	}
	const char *sub = i + 1 < argc ? argv[i + 1] : NULL;
	int used = 0;
	const struct command *cmd = find_command(name, sub, &used);
	if (!cmd) {
		if (!group_exists(name))
			return cli__usage_error(NULL, "unknown command '%s'", name);
		if (sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
			print_group_usage(stdout, name);
			return EXIT_OK;
		}
		if (sub)
			fprintf(stderr, "floe: unknown command '%s %s'\n", name, sub);
		else
			fprintf(stderr, "floe: '%s' needs a subcommand\n", name);
		print_group_usage(stderr, name);
		return EXIT_USAGE;
	}
	cli.cmd = cmd;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli__on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		cli__errorf("cannot initialise libcurl");
		return EXIT_FAIL;
	}
	int rc = cmd->run(&cli, argc - i - used, argv + i + used);
	curl_global_cleanup();
	free(cli.url_owned);
	/* A table that could not be written (a full disk, a closed pipe) is an error. */
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		cli__errorf("cannot write the output: %s", strerror(errno));
		rc = EXIT_FAIL;
	}
	return rc;
}
