/*
 * Shared by the files of the floe CLI (api/cli*.c; cli.c's header comment
 * says which does what), and by nothing else. The command files use what is
 * declared here and never each other.
 */
#ifndef FLOE_CLI_INTERNAL_H
#define FLOE_CLI_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"

#ifndef FLOE_VERSION
#define FLOE_VERSION "unknown"
#endif

/* The exit codes (floe help lists them). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_INCOMPLETE = 3,
	EXIT_TIMEOUT = 4,
	/* cli__parse_opts only: --help was printed, the command ends with 0. */
	EXIT_HELP_DONE = -1,
};

#define DEFAULT_URL "http://127.0.0.1:8081"

/* A row of the command table (cli.c). */
struct command;

struct cli {
	const char *url;   /* --url; after cli__parse_opts: base URL without a trailing '/' */
	const char *token; /* --token; after cli__parse_opts: NULL when none */
	bool json;
	const struct command *cmd; /* the command running, for its usage line */
	char *url_owned;
};

/* --- options (cli.c) ------------------------------------------------------------ */

/* The values of an option that may be given more than once (--env K=V...);
 * the strings are argv's. */
struct strv {
	const char **v;
	size_t n;
};

/* One option of a command; a table of them ends with a zeroed entry. */
struct opt {
	const char *name;   /* long name, without "--" */
	char short_name;    /* 0: none */
	const char **value; /* takes an argument, stored here */
	bool *flag;         /* or a flag, set here */
	struct strv *many;  /* or takes an argument each time, appended here */
};

/**
 * Parse argv (the arguments after the command words) against opts (may be
 * NULL) plus the global options, then resolve the URL and token (flags,
 * then FLOE_URL / FLOE_TOKEN, then DEFAULT_URL). Positionals (everything
 * that is not an option, and all after "--") are moved to the front of
 * argv; *npos gets their count. The values of many options are appended
 * with xrealloc: the caller frees their v.
 * Returns EXIT_OK, EXIT_USAGE (printed), or EXIT_HELP_DONE (--help printed).
 */
int cli__parse_opts(struct cli *cli, const struct opt *opts, int argc, char **argv, int *npos);

/** Whether value is one of a '|'-separated list of choices. */
bool cli__one_of(const char *value, const char *choices);

/**
 * Print "floe: MESSAGE" and the usage line of cmd (NULL: floe's own) on
 * stderr. Returns EXIT_USAGE.
 */
int cli__usage_error(const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --- output (format.c) --------------------------------------------------------- */

/** Print "floe: MESSAGE" on stderr. */
void cli__errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A table printed in aligned columns, the header first. */
struct table {
	size_t ncols; /* 16 at most */
	const char *const *head;
	const bool *right; /* right-aligned columns (numbers) */
	char **cells;      /* nrows * ncols, owned */
	size_t nrows;
};

/** Add a row of t->ncols cells (char *, allocated); takes ownership of them. */
void cli__table_add(struct table *t, ...);

/** Print t to out, then free its cells and empty it. */
void cli__table_print(struct table *t, FILE *out);

/** Milliseconds for people: "12.3s", "4m05s", "2h03m10s". Allocated. */
char *cli__human_ms(json_int_t ms);

/** o[k] as a string, "" when it is not one (borrowed). */
const char *cli__jstr(json_t *o, const char *k);

/** o[k] as an integer, 0 when it is not one. */
json_int_t cli__json_int_of(json_t *o, const char *k);

/** The value at a dotted path of objects ("status.state"), or NULL (borrowed). */
json_t *cli__jpath(json_t *o, const char *path);

/** The string at a dotted path, or dflt (borrowed). */
const char *cli__jpstr(json_t *o, const char *path, const char *dflt);

/** An integer as text, "-" when v is not one. Allocated. */
char *cli__int_or_dash(json_t *v);

/** Print the whole of a JSON body as floed sent it, with a final newline. Returns EXIT_OK. */
int cli__print_raw_json(const char *raw);

/* --- HTTP (http.c) --------------------------------------------------------------- */

/* One request's answer. */
struct http {
	CURL *easy;
	long status;          /* 0 until a response head arrived */
	struct floe_buf body; /* the body of an error, or of a 2xx without a sink */
	FILE *sink;           /* a 2xx body goes here when set */
	bool flush;           /* flush sink after each piece (streams) */
	int sink_errno;       /* writing to sink failed with this */
	char *incomplete;     /* the Floe-Ledger-Incomplete value, or NULL */
	char errbuf[CURL_ERROR_SIZE];
	CURLcode code;
};

/* How one request is made (all fields optional). */
struct req {
	const char *body;    /* a JSON request body, or NULL */
	FILE *sink;          /* a 2xx body goes here, else into h->body */
	bool flush;          /* flush sink after each piece that arrives */
	bool quiet;          /* print nothing: the caller looks at h (cli__http_report) */
	bool long_transfer;  /* no overall time limit (exports, logs) */
	long timeout_ms;     /* overall limit; 0: the default of 60 s */
	const char *abs_url; /* this URL instead of cli->url + path (the data plane) */
};

/**
 * Set by a command's SIGINT handler while a stream runs (logs): the
 * transfer ends, and cli__http_perform says nothing of it.
 */
extern volatile sig_atomic_t cli__interrupted;

/**
 * method path (with its query) on the control plane, or rq->abs_url (rq may
 * be NULL). Sends the token as Authorization: Bearer, follows no redirects.
 * A 2xx body goes to rq->sink when set, else into h->body. Returns EXIT_OK,
 * or EXIT_FAIL on a transport error, a write error, or a non-2xx status
 * (printed unless rq->quiet). h is initialised here; the caller destroys it
 * with cli__http_destroy, whatever the result.
 */
int cli__http_perform(struct cli *cli, const char *method, const char *path, const struct req *rq,
		      struct http *h);

/** Print the error of a request that failed (h as cli__http_perform left it). */
void cli__http_report(struct cli *cli, const struct http *h);

/** Free what h holds. */
void cli__http_destroy(struct http *h);

/** cli__http_perform with a sink and long_transfer only (billing, snapshots). */
int cli__http_request(struct cli *cli, const char *method, const char *path, bool long_transfer,
		      FILE *sink, struct http *h);

/**
 * GET path and parse the 2xx body as JSON into *out (caller decrefs); *raw
 * (when raw is not NULL) gets the body as sent (caller frees). Errors
 * printed. Returns EXIT_OK or EXIT_FAIL.
 */
int cli__http_get_json(struct cli *cli, const char *path, json_t **out, char **raw);

/**
 * method path [body] -> parsed 2xx JSON (*out, caller decrefs) and, when raw
 * is not NULL, the body as sent (caller frees). Errors are printed unless
 * quiet; *status (may be NULL) gets the HTTP status (0: no answer).
 * Returns EXIT_OK or EXIT_FAIL.
 */
int cli__http_json(struct cli *cli, const char *method, const char *path, const char *body,
		   bool quiet, json_t **out, char **raw, long *status);

/** Append "&name=value" (or "?name=value" first) with the value percent-encoded;
 * nothing when value is NULL. */
void cli__query_add(struct floe_buf *path, const char *name, const char *value);

/* --- what the endpoint commands share (endpoint-common.c) ---------------------- */

/** "/v2/endpoint/NS[/NAME[/SUFFIX]]", NS and NAME percent-encoded. Allocated. */
char *cli__ep_path(const char *ns, const char *name, const char *suffix);

/**
 * The namespace to work in: given (--namespace), else the token's (GET
 * /api/whoami-v2, as huggingface_hub does), else "default" (a floed that
 * has no whoami route). Allocated in *out. Returns EXIT_OK, EXIT_USAGE or
 * EXIT_FAIL (printed).
 */
int cli__resolve_ns(struct cli *cli, const char *given, char **out);

/** NAME, the one positional of most endpoint commands, into *name. Returns
 * EXIT_OK or EXIT_USAGE (printed). */
int cli__one_name(struct cli *cli, int npos, char **argv, const char **name);

/** The kind of an Endpoint's model.image ("custom", "vLLM", ...): its one key,
 * or NULL (borrowed). */
const char *cli__image_kind(json_t *ep);

/**
 * The engine as --engine takes it: a custom image's url (a preset such as
 * sim, or a path), else the kind in lower case (vllm, tgi, huggingface).
 * Allocated.
 */
char *cli__engine_of(json_t *ep);

/** An Endpoint answer on stdout: raw with --json, else the readable view. */
void cli__show_endpoint(struct cli *cli, json_t *ep, const char *raw);

/* --- waiting until an endpoint is ready (wait.c) -------------------------------- */

/** --timeout S: seconds (a decimal number >= 0) into *out, -1 when text is
 * NULL. Returns EXIT_OK or EXIT_USAGE (printed). */
int cli__parse_timeout(struct cli *cli, const char *text, double *out);

/**
 * Wait for ns/name the way huggingface_hub's InferenceEndpoint.wait() does:
 * poll the Endpoint until its state is running and status.url is set, then
 * GET {url}{healthRoute} until it answers 200. Neither request wakes an
 * endpoint, so a scaled-to-zero endpoint stays at zero (and the wait times
 * out). Progress on stderr. timeout_s < 0: no limit.
 * Returns EXIT_OK (ready), EXIT_FAIL (failed, gone, floed unreachable) or
 * EXIT_TIMEOUT. *last (may be NULL) gets the last Endpoint seen and its raw
 * JSON in *last_raw (caller decrefs and frees).
 */
int cli__wait_ready(struct cli *cli, const char *ns, const char *name, double timeout_s,
		    json_t **last, char **last_raw);

/* --- the commands (rows of cli.c's table) ------------------------------------------ */

/*
 * Each runs one command: argv holds the words after the command's name,
 * which it parses with cli__parse_opts. Returns the exit code.
 */

/* billing.c */
int cli__cmd_billing_export(struct cli *cli, int argc, char **argv);
int cli__cmd_billing_summary(struct cli *cli, int argc, char **argv);
/** The handler of SIGINT, SIGTERM and SIGHUP: removes an export's temp file,
 * then dies of the signal. */
void cli__on_fatal_signal(int sig);

/* snapshot.c */
int cli__cmd_snapshot_ls(struct cli *cli, int argc, char **argv);
int cli__cmd_snapshot_rm(struct cli *cli, int argc, char **argv);

/* token.c */
int cli__cmd_token_new(struct cli *cli, int argc, char **argv);

/* endpoint.c */
int cli__cmd_endpoint_ls(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_describe(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_wait(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_pause(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_resume(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_scale_to_zero(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_delete(struct cli *cli, int argc, char **argv);

/* endpoint-write.c */
int cli__cmd_endpoint_create(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_update(struct cli *cli, int argc, char **argv);

/* replicas.c */
int cli__cmd_replicas(struct cli *cli, int argc, char **argv);
int cli__cmd_endpoint_logs(struct cli *cli, int argc, char **argv);

#endif
