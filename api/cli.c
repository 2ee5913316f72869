/*
 * floe: the command-line client of floed's control plane.
 *
 *     floe [--url URL] [--token TOKEN] [--json] COMMAND [SUBCOMMAND] [ARGS...]
 *
 * Commands live in one table (name, subcommand, handler, usage, help), so
 * that issue 5's `endpoint ...`, `replicas` and `token new` slot in as rows.
 * Each handler parses its own options with parse_opts(), which also accepts
 * the global ones (--url, --token, --json, --help) anywhere on the line.
 *
 * Exit codes: 0 success, 1 an error (HTTP error, floed unreachable, I/O,
 * an endpoint that failed), 2 a usage error, 3 an export that floed marked
 * incomplete (ledger damage), 4 a wait that timed out.
 *
 * The token (--token or FLOE_TOKEN) is sent as `Authorization: Bearer` and
 * never printed: not in errors, not in help, not in --json output.
 */
#define LOG_TAG "cli"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "auth.h"
#include "buf.h"
#include "xalloc.h"

#ifndef FLOE_VERSION
#define FLOE_VERSION "unknown"
#endif

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_INCOMPLETE = 3,
	EXIT_TIMEOUT = 4,
	/* parse_opts only: --help was printed, the command ends with 0. */
	EXIT_HELP_DONE = -1,
};

#define DEFAULT_URL "http://127.0.0.1:8081"
#define CONNECT_TIMEOUT_S 5L
/* Whole-request limit for everything but exports, which may be large. */
#define REQUEST_TIMEOUT_S 60L
/* An error body is a small JSON object; more is kept no longer. */
#define ERROR_BODY_MAX 65536
#define SNAP_KEY_LEN 64
#define SNAP_PREFIX_MIN 8
#define SNAP_KEY_SHOWN 12
#define INCOMPLETE_HEADER "Floe-Ledger-Incomplete"

struct command;

struct cli {
	const char *url;   /* --url; after cli_resolve: base URL without a trailing '/' */
	const char *token; /* --token; after cli_resolve: NULL when none */
	bool json;
	const struct command *cmd; /* the command running, for its usage line */
	char *url_owned;
};

struct command {
	const char *name;
	const char *sub; /* NULL: a command without subcommands */
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *usage;   /* after "floe " */
	const char *summary; /* one line for `floe help` */
	const char *help;    /* option and argument lines for `floe help COMMAND` */
};

/* --- output helpers --------------------------------------------------------- */

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("floe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int usage_error(const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const struct command *cmd, const char *fmt, ...)
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

/* The values of an option that may be given more than once (--env K=V...);
 * the strings are argv's. */
struct strv {
	const char **v;
	size_t n;
};

static void strv_push(struct strv *sv, const char *s)
{
	sv->v = xrealloc(sv->v, (sv->n + 1) * sizeof(*sv->v));
	sv->v[sv->n++] = s;
}

struct opt {
	const char *name;   /* long name, without "--" */
	char short_name;    /* 0: none */
	const char **value; /* takes an argument, stored here */
	bool *flag;         /* or a flag, set here */
	struct strv *many;  /* or takes an argument each time, appended here */
};

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
		return usage_error(cli->cmd, "the URL must start with http:// or https://: %s",
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
			return usage_error(cli->cmd, "the token contains control characters");
	return EXIT_OK;
}

static void print_command_help(FILE *out, const struct command *cmd);

/*
 * Parse argv (the arguments after the command words) against opts plus the
 * global options. Positionals (everything that is not an option, and all
 * after "--") are moved to the front of argv; *npos gets their count.
 * Returns EXIT_OK, EXIT_USAGE (printed), or EXIT_HELP_DONE (--help printed).
 */
static int parse_opts(struct cli *cli, const struct opt *opts, int argc, char **argv, int *npos)
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
			return usage_error(cli->cmd, "unknown option %s", a);
		if (o->flag) {
			if (inline_val)
				return usage_error(cli->cmd, "option --%s takes no value", o->name);
			*o->flag = true;
			continue;
		}
		if (!inline_val) {
			if (i + 1 >= argc)
				return usage_error(cli->cmd, "option %s needs a value", a);
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

/* A value that must be one of a '|'-separated list. */
static bool one_of(const char *value, const char *choices)
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

/* --- HTTP ----------------------------------------------------------------------- */

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

static bool status_ok(long st)
{
	return st >= 200 && st < 300;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http *h = ud;
	size_t n = size * nmemb;
	if (!h->status)
		curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
	if (status_ok(h->status) && h->sink) {
		if (fwrite(data, 1, n, h->sink) != n || (h->flush && fflush(h->sink) != 0)) {
			h->sink_errno = errno ? errno : EIO;
			return 0; /* makes curl stop with CURLE_WRITE_ERROR */
		}
		return n;
	}
	if (!status_ok(h->status) && h->body.len >= ERROR_BODY_MAX)
		return n;
	floe_buf_append(&h->body, data, n);
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http *h = ud;
	size_t n = size * nmemb;
	/* A new head (after a 100 Continue, say): only the last one counts. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		free(h->incomplete);
		h->incomplete = NULL;
		h->status = 0;
		return n;
	}
	size_t name_len = strlen(INCOMPLETE_HEADER);
	if (n > name_len && data[name_len] == ':' &&
	    strncasecmp(data, INCOMPLETE_HEADER, name_len) == 0) {
		const char *v = data + name_len + 1;
		size_t len = n - name_len - 1;
		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && isspace((unsigned char)v[len - 1]))
			len--;
		free(h->incomplete);
		h->incomplete = xstrndup(v, len);
	}
	return n;
}

static void http_destroy(struct http *h)
{
	if (h->easy)
		curl_easy_cleanup(h->easy);
	floe_buf_destroy(&h->body);
	free(h->incomplete);
	memset(h, 0, sizeof(*h));
}

/* The message of floed's JSON error body, else the body's first line, else
 * the reason phrase curl saw; allocated. */
static char *error_message(const struct http *h)
{
	const char *msg = NULL;
	json_t *v = h->body.len ? json_loadb(h->body.data, h->body.len, 0, NULL) : NULL;
	json_t *e = json_object_get(v, "error");
	msg = json_string_value(json_object_get(e, "message"));
	if (!msg)
		msg = json_string_value(e); /* {"error":"..."}, as some servers answer */
	char *out;
	if (msg && msg[0]) {
		out = xstrdup(msg);
	} else if (h->body.len) {
		size_t len = strcspn(h->body.data, "\r\n");
		out = xstrndup(h->body.data, len > 200 ? 200 : len);
	} else {
		out = xstrdup("request failed");
	}
	json_decref(v);
	return out;
}

/* Transport errors that mean no answer could be asked for at all. */
static bool unreachable(CURLcode code)
{
	switch (code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION: return true;
	default: return false;
	}
}

/* Append "&name=value" (or "?name=value" first) with the value percent-encoded. */
static void query_add(struct floe_buf *path, const char *name, const char *value)
{
	if (!value)
		return;
	char *enc = curl_easy_escape(NULL, value, (int)strlen(value));
	floe_buf_printf(path, "%c%s=%s", strchr(path->data ? path->data : "", '?') ? '&' : '?',
			name, enc);
	curl_free(enc);
}

/* Set by SIGINT while a stream runs (logs): the transfer ends, quietly. */
static volatile sig_atomic_t interrupted;

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	return interrupted ? 1 : 0; /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

/* How one request is made (all fields optional). */
struct req {
	const char *body;    /* a JSON request body, or NULL */
	FILE *sink;          /* a 2xx body goes here, else into h->body */
	bool flush;          /* flush sink after each piece that arrives */
	bool quiet;          /* print nothing: the caller looks at h (http_report) */
	bool long_transfer;  /* no overall time limit (exports, logs) */
	long timeout_ms;     /* overall limit; 0: REQUEST_TIMEOUT_S */
	const char *abs_url; /* this URL instead of cli->url + path (the data plane) */
};

/* Print the error of a request that failed (h as http_perform left it). */
static void http_report(struct cli *cli, const struct http *h)
{
	if (h->code != CURLE_OK) {
		char eb[CURL_ERROR_SIZE];
		snprintf(eb, sizeof(eb), "%s", h->errbuf);
		size_t len = strlen(eb);
		while (len && eb[len - 1] == '\n')
			eb[--len] = '\0';
		const char *why = len ? eb : curl_easy_strerror(h->code);
		if (h->code == CURLE_WRITE_ERROR && h->sink_errno)
			errorf("cannot write the output: %s", strerror(h->sink_errno));
		else if (unreachable(h->code) ||
			 (h->code == CURLE_OPERATION_TIMEDOUT && !h->status))
			errorf("cannot reach floed at %s: %s", cli->url, why);
		else
			errorf("request to floed at %s failed: %s", cli->url, why);
		return;
	}
	char *msg = error_message(h);
	errorf("%s (HTTP %ld)", msg, h->status);
	free(msg);
}

/*
 * method path (with its query) on the control plane, or rq->abs_url. A 2xx
 * body goes to rq->sink when set, else into h->body. Returns EXIT_OK, or
 * EXIT_FAIL on a transport error, a write error, or a non-2xx status
 * (printed unless rq->quiet). h is initialised here; the caller destroys it.
 */
static int http_perform(struct cli *cli, const char *method, const char *path, const struct req *rq,
			struct http *h)
{
	static const struct req none = { 0 };
	if (!rq)
		rq = &none;
	memset(h, 0, sizeof(*h));
	h->sink = rq->sink;
	h->flush = rq->flush;
	h->easy = curl_easy_init();
	if (!h->easy) {
		errorf("cannot initialise libcurl");
		return EXIT_FAIL;
	}
	char *url = rq->abs_url ? xstrdup(rq->abs_url) : xasprintf("%s%s", cli->url, path);
	struct curl_slist *headers = NULL;
	char *auth = NULL;
	if (cli->token) {
		auth = xasprintf("Authorization: Bearer %s", cli->token);
		headers = curl_slist_append(headers, auth);
	}
	headers = curl_slist_append(headers, "Accept: application/json, text/csv, text/plain");
	bool has_body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
	if (rq->body)
		headers = curl_slist_append(headers, "Content-Type: application/json");
	CURL *e = h->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
	if (has_body || rq->body) {
		/* An empty body still says Content-Length: 0. */
		const char *b = rq->body ? rq->body : "";
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(b));
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, b);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "floe/" FLOE_VERSION);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	if (rq->long_transfer)
		curl_easy_setopt(e, CURLOPT_TIMEOUT, 0L);
	else if (rq->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
	else
		curl_easy_setopt(e, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	/* Only the schemes --url accepts, and no redirects: a redirect could
	 * carry the Authorization header to another host. */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	h->code = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &h->status);
	curl_slist_free_all(headers);
	if (auth) {
		/* The token leaves no copy behind in freed memory of ours. */
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(url);

	if (h->code != CURLE_OK || !status_ok(h->status)) {
		if (!rq->quiet && !(h->code == CURLE_ABORTED_BY_CALLBACK && interrupted))
			http_report(cli, h);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* The request of the billing and snapshot commands. */
static int http_request(struct cli *cli, const char *method, const char *path, bool long_transfer,
			FILE *sink, struct http *h)
{
	struct req rq = { .sink = sink, .long_transfer = long_transfer };
	return http_perform(cli, method, path, &rq, h);
}

/* GET path and parse the 2xx body as JSON (caller decrefs). Errors printed. */
static int http_get_json(struct cli *cli, const char *path, json_t **out, char **raw)
{
	struct http h;
	*out = NULL;
	int rc = http_request(cli, "GET", path, false, NULL, &h);
	if (rc == EXIT_OK) {
		json_error_t jerr;
		*out = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, &jerr);
		if (!*out) {
			errorf("floed at %s answered %s with a body that is not JSON: %s", cli->url,
			       path, jerr.text);
			rc = EXIT_FAIL;
		} else if (raw) {
			*raw = floe_buf_steal(&h.body, NULL);
		}
	}
	http_destroy(&h);
	return rc;
}

/* --- tables ------------------------------------------------------------------- */

struct table {
	size_t ncols;
	const char *const *head;
	const bool *right; /* right-aligned columns (numbers) */
	char **cells;      /* nrows * ncols, owned */
	size_t nrows;
};

static void table_add(struct table *t, ...)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	va_list ap;
	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = va_arg(ap, char *); /* takes ownership */
	va_end(ap);
	t->nrows++;
}

static void table_print(struct table *t, FILE *out)
{
	size_t width[16] = { 0 };
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = strlen(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t w = strlen(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		struct floe_buf line = FLOE_BUF_INIT;
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
			bool last = c + 1 == t->ncols;
			if (t->right[c])
				floe_buf_printf(&line, "%*s", (int)width[c], cell);
			else
				floe_buf_printf(&line, "%-*s", last ? 0 : (int)width[c], cell);
			if (!last)
				floe_buf_puts(&line, "  ");
		}
		while (line.len && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		fprintf(out, "%s\n", line.data ? line.data : "");
		floe_buf_destroy(&line);
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* Bytes for people: "512 B", "3.4 KiB", "120.5 MiB", "2.31 GiB". */
static char *human_bytes(json_int_t n)
{
	double v = (double)n;
	if (n < 1024)
		return xasprintf("%lld B", (long long)n);
	if (n < 1024 * 1024)
		return xasprintf("%.1f KiB", v / 1024);
	if (n < 1024LL * 1024 * 1024)
		return xasprintf("%.1f MiB", v / (1024 * 1024));
	return xasprintf("%.2f GiB", v / (1024.0 * 1024 * 1024));
}

/* Milliseconds for people: "12.3s", "4m05s", "2h03m10s". */
static char *human_ms(json_int_t ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		return xasprintf("%lld.%llds", (long long)(ms / 1000),
				 (long long)(ms % 1000 / 100));
	long long s = (long long)(ms / 1000);
	if (s < 3600)
		return xasprintf("%lldm%02llds", s / 60, s % 60);
	return xasprintf("%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The whole of a JSON body printed as floed sent it, with a final newline. */
static int print_raw_json(const char *raw)
{
	size_t n = strlen(raw);
	fputs(raw, stdout);
	if (!n || raw[n - 1] != '\n')
		fputc('\n', stdout);
	return EXIT_OK;
}

/* --- billing ------------------------------------------------------------------ */

/* Where an export is written until it is complete; removed on a fatal signal. */
static char export_tmp[PATH_MAX];
static volatile sig_atomic_t export_tmp_set;

static void on_fatal_signal(int sig)
{
	if (export_tmp_set)
		unlink(export_tmp); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void warn_incomplete(const char *value)
{
	fprintf(stderr, "floe: warning: the ledger has damage; this export is incomplete: %s\n",
		value);
}

/* The query of the billing routes (namespace, from, to) plus extras. */
struct billing_args {
	const char *ns, *from, *to, *granularity, *group_by, *output;
};

static void billing_query(struct floe_buf *path, const struct billing_args *a)
{
	query_add(path, "namespace", a->ns);
	query_add(path, "from", a->from);
	query_add(path, "to", a->to);
	query_add(path, "granularity", a->granularity);
	query_add(path, "group_by", a->group_by);
}

/* fsync the directory holding path, so that the rename survives a crash
 * (best effort: some file systems refuse fsync on a directory). */
static void fsync_parent(const char *path)
{
	char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
}

/*
 * Export into something that is not a regular file (/dev/stdout, a FIFO, a
 * device): there is nothing to replace atomically, and a rename would put a
 * regular file in the device's place. Written through, like stdout.
 */
static int export_to_special(struct cli *cli, const char *path, const char *file)
{
	FILE *out = fopen(file, "w");
	if (!out) {
		errorf("cannot write %s: %s", file, strerror(errno));
		return EXIT_FAIL;
	}
	struct http h;
	int rc = http_request(cli, "GET", path, true, out, &h);
	if (fclose(out) != 0 && rc == EXIT_OK) {
		errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	http_destroy(&h);
	return rc;
}

/*
 * Export into a regular file, atomically: into a temp file next to it, then
 * fsync and rename, so that a failed or interrupted export leaves the old
 * file (or none) and never half a file. A symlink is followed: its target is
 * replaced, the link stays.
 */
static int export_to_file(struct cli *cli, const char *path, const char *file)
{
	struct stat st;
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
		return export_to_special(cli, path, file);
	char *real = realpath(file, NULL); /* NULL when it does not exist yet */
	const char *target = real ? real : file;
	char *copy = xstrdup(target);
	char *base = xstrdup(basename(copy));
	free(copy);
	copy = xstrdup(target);
	int n = snprintf(export_tmp, sizeof(export_tmp), "%s/.%s.floe-XXXXXX", dirname(copy), base);
	free(copy);
	free(base);
	int rc = EXIT_OK;
	if (n < 0 || (size_t)n >= sizeof(export_tmp)) {
		errorf("cannot write %s: the path is too long", file);
		free(real);
		return EXIT_FAIL;
	}
	int fd = mkstemp(export_tmp);
	if (fd < 0) {
		errorf("cannot create a temporary file next to %s: %s", file, strerror(errno));
		free(real);
		return EXIT_FAIL;
	}
	export_tmp_set = 1;
	/* mkstemp makes 0600; the export gets the mode any new file would. */
	mode_t mask = umask(0);
	umask(mask);
	(void)fchmod(fd, 0666 & ~mask);
	FILE *out = fdopen(fd, "w");
	if (!out) {
		errorf("cannot write %s: %s", export_tmp, strerror(errno));
		close(fd);
		unlink(export_tmp);
		export_tmp_set = 0;
		free(real);
		return EXIT_FAIL;
	}
	struct http h;
	rc = http_request(cli, "GET", path, true, out, &h);
	if (rc == EXIT_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0)) {
		errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (fclose(out) != 0 && rc == EXIT_OK) {
		errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && rename(export_tmp, target) != 0) {
		errorf("cannot rename %s to %s: %s", export_tmp, target, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc != EXIT_OK)
		unlink(export_tmp);
	else
		fsync_parent(target);
	export_tmp_set = 0;
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	http_destroy(&h);
	free(real);
	return rc;
}

static int export_to_stdout(struct cli *cli, const char *path)
{
	struct http h;
	int rc = http_request(cli, "GET", path, true, stdout, &h);
	if (rc == EXIT_OK && fflush(stdout) != 0) {
		errorf("cannot write the output: %s", strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	http_destroy(&h);
	return rc;
}

static int cmd_billing_export(struct cli *cli, int argc, char **argv)
{
	struct billing_args a = { 0 };
	const struct opt opts[] = {
		{ "namespace", 0, &a.ns, NULL, NULL },
		{ "from", 0, &a.from, NULL, NULL },
		{ "to", 0, &a.to, NULL, NULL },
		{ "granularity", 0, &a.granularity, NULL, NULL },
		{ "group-by", 0, &a.group_by, NULL, NULL },
		{ "output", 'o', &a.output, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	if (a.granularity && !one_of(a.granularity, "minute|hour|day"))
		return usage_error(cli->cmd, "--granularity must be minute, hour or day, not '%s'",
				   a.granularity);
	if (a.group_by && !one_of(a.group_by, "endpoint|replica"))
		return usage_error(cli->cmd, "--group-by must be endpoint or replica, not '%s'",
				   a.group_by);
	if (a.output && !a.output[0])
		return usage_error(cli->cmd, "-o needs a file name (or - for stdout)");
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/billing/usage.csv");
	billing_query(&path, &a);
	if (a.output && strcmp(a.output, "-") != 0)
		rc = export_to_file(cli, path.data, a.output);
	else
		rc = export_to_stdout(cli, path.data);
	floe_buf_destroy(&path);
	return rc;
}

static json_int_t json_int_of(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int cmd_billing_summary(struct cli *cli, int argc, char **argv)
{
	struct billing_args a = { 0 };
	const struct opt opts[] = {
		{ "namespace", 0, &a.ns, NULL, NULL },
		{ "from", 0, &a.from, NULL, NULL },
		{ "to", 0, &a.to, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/billing/summary");
	billing_query(&path, &a);
	json_t *v;
	char *raw = NULL;
	rc = http_get_json(cli, path.data, &v, &raw);
	floe_buf_destroy(&path);
	if (rc)
		return rc;
	json_t *eps = json_object_get(v, "endpoints");
	if (cli->json) {
		print_raw_json(raw);
	} else if (!json_is_array(eps)) {
		errorf("floed's summary has no endpoints list");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "ENDPOINT",     "REPLICAS",  "RUNNING",
						    "INITIALIZING", "WARM POOL", "REQUESTS",
						    "COST" };
		static const bool right[] = { false, true, true, true, true, true, true };
		struct table t = { 7, head, right, NULL, 0 };
		/* Across namespaces, an endpoint is named NAMESPACE/NAME. */
		bool all = !json_is_string(json_object_get(v, "namespace"));
		size_t i;
		json_t *ep;
		json_array_foreach(eps, i, ep) {
			json_t *ms = json_object_get(ep, "ms");
			json_t *req = json_object_get(ep, "requests");
			json_int_t requests = 0;
			const char *k;
			json_t *cnt;
			json_object_foreach(req, k, cnt)
				requests += json_integer_value(cnt);
			table_add(&t,
				  all ? xasprintf("%s/%s", jstr(ep, "namespace"),
						  jstr(ep, "endpoint")) :
					xstrdup(jstr(ep, "endpoint")),
				  xasprintf("%lld", (long long)json_int_of(ep, "replicas")),
				  human_ms(json_int_of(ms, "running")),
				  human_ms(json_int_of(ms, "initializing")),
				  human_ms(json_int_of(ms, "warm_pool")),
				  xasprintf("%lld", (long long)requests),
				  xasprintf("%s %s", jstr(ep, "cost"), jstr(ep, "currency")));
		}
		table_print(&t, stdout);
	}
	/* Damage is said on stderr even with --json, where "incomplete" says it too. */
	if (rc == EXIT_OK && json_is_true(json_object_get(v, "incomplete"))) {
		struct floe_buf d = FLOE_BUF_INIT;
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(v, "damaged"), i, r) {
			floe_buf_printf(&d, "%s%s@%lld+%lld", i ? ", " : "", jstr(r, "file"),
					(long long)json_int_of(r, "offset"),
					(long long)json_int_of(r, "length"));
		}
		warn_incomplete(d.data ? d.data : "damaged ranges not listed");
		floe_buf_destroy(&d);
		rc = EXIT_INCOMPLETE;
	}
	free(raw);
	json_decref(v);
	return rc;
}

/* --- snapshots ---------------------------------------------------------------- */

static int cmd_snapshot_ls(struct cli *cli, int argc, char **argv)
{
	const char *endpoint = NULL;
	const struct opt opts[] = {
		{ "endpoint", 0, &endpoint, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/snapshots");
	query_add(&path, "endpoint", endpoint);
	json_t *v;
	char *raw = NULL;
	rc = http_get_json(cli, path.data, &v, &raw);
	floe_buf_destroy(&path);
	if (rc)
		return rc;
	json_t *items = json_object_get(v, "items");
	if (cli->json) {
		print_raw_json(raw);
	} else if (!json_is_array(items)) {
		errorf("floed's snapshot list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "KEY",  "ENDPOINT", "CREATED",
						    "SIZE", "RESTORES", "LAST RESTORE" };
		static const bool right[] = { false, false, false, true, true, true };
		struct table t = { 6, head, right, NULL, 0 };
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			json_t *last = json_object_get(it, "last_restore_ms");
			table_add(
				&t, xasprintf("%.*s", SNAP_KEY_SHOWN, jstr(it, "key")),
				xstrdup(jstr(it, "endpoint")), xstrdup(jstr(it, "created_at")),
				human_bytes(json_int_of(it, "image_bytes")),
				xasprintf("%lld", (long long)json_int_of(it, "restores")),
				json_is_integer(last) ?
					xasprintf("%lld ms", (long long)json_integer_value(last)) :
					xstrdup("-"));
		}
		table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

/*
 * Resolve each argument to a full key: a 64-hex key as is, a prefix of at
 * least 8 hex digits through the list (it must match exactly one). All are
 * resolved before anything is deleted, so a typo deletes nothing.
 */
static int resolve_keys(struct cli *cli, int n, char **args, char (*keys)[SNAP_KEY_LEN + 1])
{
	json_t *list = NULL;
	int rc = EXIT_OK;
	for (int i = 0; i < n; i++) {
		size_t len = strlen(args[i]);
		if (len < SNAP_PREFIX_MIN || len > SNAP_KEY_LEN || !is_hex(args[i])) {
			errorf("'%s' is not a snapshot key (64 hex digits) or a prefix of one of "
			       "at least %d",
			       args[i], SNAP_PREFIX_MIN);
			rc = EXIT_FAIL;
			continue;
		}
		char want[SNAP_KEY_LEN + 1];
		for (size_t k = 0; k <= len; k++)
			want[k] = (char)tolower((unsigned char)args[i][k]);
		if (len == SNAP_KEY_LEN) {
			memcpy(keys[i], want, sizeof(want));
			continue;
		}
		if (!list && (rc = http_get_json(cli, "/v2/snapshots", &list, NULL)) != EXIT_OK)
			return rc;
		struct floe_buf cands = FLOE_BUF_INIT;
		int matches = 0;
		size_t k;
		json_t *it;
		json_array_foreach(json_object_get(list, "items"), k, it) {
			const char *key = jstr(it, "key");
			if (strlen(key) != SNAP_KEY_LEN || strncmp(key, want, len) != 0)
				continue;
			if (matches++ == 0)
				snprintf(keys[i], SNAP_KEY_LEN + 1, "%s", key);
			floe_buf_printf(&cands, "\n  %s  %s", key, jstr(it, "endpoint"));
		}
		if (matches == 0) {
			errorf("no snapshot matches '%s'", args[i]);
			rc = EXIT_FAIL;
		} else if (matches > 1) {
			errorf("'%s' is ambiguous: %d snapshots match:%s", args[i], matches,
			       cands.data);
			rc = EXIT_FAIL;
		}
		floe_buf_destroy(&cands);
	}
	json_decref(list);
	return rc;
}

static int cmd_snapshot_rm(struct cli *cli, int argc, char **argv)
{
	int npos, rc = parse_opts(cli, NULL, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos == 0)
		return usage_error(cli->cmd, "which snapshot? give a key or a prefix");
	char(*keys)[SNAP_KEY_LEN + 1] = xcalloc((size_t)npos, sizeof(*keys));
	rc = resolve_keys(cli, npos, argv, keys);
	bool failed = false;
	for (int i = 0; rc == EXIT_OK && i < npos; i++) {
		/* The same snapshot named twice is deleted once. */
		bool dup = false;
		for (int j = 0; j < i; j++)
			dup = dup || strcmp(keys[i], keys[j]) == 0;
		if (dup)
			continue;
		/* Each key is its own request: a failure is reported and the
		 * rest are still deleted; the exit code says one failed. */
		char *path = xasprintf("/v2/snapshots/%s", keys[i]);
		struct http h;
		if (http_request(cli, "DELETE", path, false, NULL, &h) == EXIT_OK)
			printf("deleted %s\n", keys[i]);
		else
			failed = true;
		http_destroy(&h);
		free(path);
	}
	if (rc == EXIT_OK && failed)
		rc = EXIT_FAIL;
	free(keys);
	return rc;
}

/* --- tokens ------------------------------------------------------------------- */

/*
 * token new NAMESPACE: a fresh token and the config lines that make floed
 * accept it. Local only: floed keeps hashes, so it has nothing to ask.
 */
static int cmd_token_new(struct cli *cli, int argc, char **argv)
{
	/* Nothing is sent, so a FLOE_URL meant for other commands must not
	 * fail this one (an explicit --url is still checked). */
	if (!cli->url)
		cli->url = DEFAULT_URL;
	int npos, rc = parse_opts(cli, NULL, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos == 0)
		return usage_error(cli->cmd, "which namespace? give one, such as alice");
	if (npos > 1)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
	const char *ns = argv[0];
	if (!floe_auth_namespace_valid(ns))
		return usage_error(cli->cmd,
				   "'%s' is not a namespace: 1 to 63 characters of [a-z0-9-], "
				   "starting with a letter or digit",
				   ns);
	char token[64], hex[65];
	int r = floe_auth_token_new(token, hex);
	if (r < 0) {
		errorf("cannot get random bytes for a token: %s", strerror(-r));
		return EXIT_FAIL;
	}
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "namespace", ns, "token", token, "sha256",
				      hex);
		char *text = json_dumps(o, JSON_COMPACT);
		printf("%s\n", text);
		explicit_bzero(text, strlen(text));
		free(text);
		json_decref(o); /* jansson keeps its own copy of the token: gone with it */
	} else {
		printf("token: %s   (shown once: store it now; floed keeps only its hash)\n"
		       "add to floed's config under auth.tokens:\n"
		       "    - namespace: %s\n"
		       "      sha256: %s\n",
		       token, ns, hex);
	}
	explicit_bzero(token, sizeof(token));
	return EXIT_OK;
}

/* --- endpoints (the Hugging Face shaped API, issue 5) --------------------------- */

/* The value at a dotted path of objects ("status.state"), or NULL. */
static json_t *jpath(json_t *o, const char *path)
{
	while (o && *path) {
		size_t n = strcspn(path, ".");
		char key[64];
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = json_object_get(o, key);
		path += n + (path[n] == '.');
	}
	return o;
}

static const char *jpstr(json_t *o, const char *path, const char *dflt)
{
	const char *s = json_string_value(jpath(o, path));
	return s ? s : dflt;
}

/* A path segment percent-encoded (names are [a-z0-9-], but a typo such as
 * "a/b" must stay one segment, for floed's 404 to name it). Allocated. */
static char *seg_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, (int)strlen(s));
	char *out = xstrdup(e ? e : "");
	curl_free(e);
	return out;
}

/* "/v2/endpoint/NS[/NAME[/SUFFIX]]", allocated. */
static char *ep_path(const char *ns, const char *name, const char *suffix)
{
	char *ens = seg_escape(ns);
	char *ename = name ? seg_escape(name) : NULL;
	char *p = xasprintf("/v2/endpoint/%s%s%s%s%s", ens, ename ? "/" : "", ename ? ename : "",
			    suffix ? "/" : "", suffix ? suffix : "");
	free(ens);
	free(ename);
	return p;
}

/*
 * method path [body] -> parsed 2xx JSON (*out, caller decrefs) and, when raw
 * is not NULL, the body as sent (caller frees). Errors are printed unless
 * quiet; *status (may be NULL) gets the HTTP status (0: no answer).
 */
static int http_json(struct cli *cli, const char *method, const char *path, const char *body,
		     bool quiet, json_t **out, char **raw, long *status)
{
	struct http h;
	struct req rq = { .body = body, .quiet = quiet };
	*out = NULL;
	if (raw)
		*raw = NULL;
	int rc = http_perform(cli, method, path, &rq, &h);
	if (status)
		*status = h.status;
	if (rc == EXIT_OK) {
		json_error_t jerr;
		*out = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, &jerr);
		if (!*out) {
			if (!quiet)
				errorf("floed at %s answered %s %s with a body that is not JSON: %s",
				       cli->url, method, path, jerr.text);
			rc = EXIT_FAIL;
		} else if (raw) {
			floe_buf_append(&h.body, "", 0);
			*raw = floe_buf_steal(&h.body, NULL);
		}
	}
	http_destroy(&h);
	return rc;
}

/*
 * The namespace to work in: --namespace, else the token's (GET
 * /api/whoami-v2, as huggingface_hub does), else "default" (a floed that
 * has no whoami route). Allocated in *out.
 */
static int resolve_ns(struct cli *cli, const char *given, char **out)
{
	if (given) {
		if (!given[0])
			return usage_error(cli->cmd, "--namespace needs a value");
		*out = xstrdup(given);
		return EXIT_OK;
	}
	json_t *v;
	long st;
	struct http h;
	struct req rq = { .quiet = true };
	int rc = http_perform(cli, "GET", "/api/whoami-v2", &rq, &h);
	st = h.status;
	if (rc != EXIT_OK) {
		if (h.code == CURLE_OK && st == 404) {
			*out = xstrdup("default");
			rc = EXIT_OK;
		} else {
			http_report(cli, &h);
		}
		http_destroy(&h);
		return rc;
	}
	v = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, NULL);
	const char *name = json_string_value(json_object_get(v, "name"));
	*out = xstrdup(name && name[0] ? name : "default");
	json_decref(v);
	http_destroy(&h);
	return EXIT_OK;
}

/* The kind of model.image ("custom", "vLLM", ...): its one key, or NULL. */
static const char *image_kind(json_t *ep)
{
	json_t *img = jpath(ep, "model.image");
	void *it = json_is_object(img) ? json_object_iter(img) : NULL;
	return it ? json_object_iter_key(it) : NULL;
}

/* The engine as --engine takes it: a custom image's url (a preset such as
 * sim, or a path), else the kind in lower case (vllm, tgi, huggingface). */
static char *engine_of(json_t *ep)
{
	const char *kind = image_kind(ep);
	if (!kind)
		return xstrdup("-");
	if (strcmp(kind, "custom") == 0) {
		const char *url = json_string_value(
			json_object_get(json_object_get(jpath(ep, "model.image"), kind), "url"));
		return xstrdup(url ? url : "custom");
	}
	char *k = xstrdup(kind);
	for (char *p = k; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}

static char *int_or_dash(json_t *v)
{
	return json_is_integer(v) ? xasprintf("%lld", (long long)json_integer_value(v)) :
				    xstrdup("-");
}

/* "k1=v1, k2=v2" of a JSON object of strings; "-" when empty. Allocated. */
static char *kv_list(json_t *o)
{
	struct floe_buf b = FLOE_BUF_INIT;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		floe_buf_printf(&b, "%s%s=%s", b.len ? ", " : "", k,
				json_is_string(v) ? json_string_value(v) : "?");
	}
	if (!b.len)
		floe_buf_puts(&b, "-");
	return floe_buf_steal(&b, NULL);
}

/* The readable view of one Endpoint JSON (describe, and after a write). */
static void print_endpoint(json_t *ep, FILE *out)
{
	json_t *sc = jpath(ep, "compute.scaling");
	json_t *stz = json_object_get(sc, "scaleToZeroTimeout");
	json_t *pend = jpath(sc, "measure.pendingRequests");
	char *engine = engine_of(ep);
	char *ready = int_or_dash(jpath(ep, "status.readyReplica"));
	char *target = int_or_dash(jpath(ep, "status.targetReplica"));
	char *minr = int_or_dash(json_object_get(sc, "minReplica"));
	char *maxr = int_or_dash(json_object_get(sc, "maxReplica"));
	char *env = kv_list(jpath(ep, "model.env"));
	char *secrets = kv_list(jpath(ep, "model.secrets"));
	char *stz_text = !json_is_integer(stz) ? xstrdup("-") :
			 json_integer_value(stz) == 0 ?
						 xstrdup("never") :
						 xasprintf("after %lld min idle",
							   (long long)json_integer_value(stz));
	char *pend_text = json_is_number(pend) ? xasprintf(", %g pending requests per replica",
							   json_number_value(pend)) :
						 xstrdup("");
	const char *msg = jpstr(ep, "status.message", "");
	fprintf(out,
		"name:          %s\n"
		"namespace:     %s\n"
		"state:         %s\n",
		jpstr(ep, "name", "?"), jpstr(ep, "namespace", "?"),
		jpstr(ep, "status.state", "?"));
	if (msg[0])
		fprintf(out, "message:       %s\n", msg);
	fprintf(out,
		"url:           %s\n"
		"type:          %s\n"
		"model:         %s (revision %s, task %s, framework %s)\n"
		"engine:        %s (health route %s)\n"
		"env:           %s\n"
		"secrets:       %s\n"
		"compute:       %s %s %s\n"
		"scaling:       min %s, max %s replicas; scale to zero %s%s\n"
		"replicas:      %s ready of %s\n"
		"created:       %s\n"
		"updated:       %s\n",
		jpstr(ep, "status.url", "-"), jpstr(ep, "type", "?"),
		jpstr(ep, "model.repository", "?"), jpstr(ep, "model.revision", "-"),
		jpstr(ep, "model.task", "")[0] ? jpstr(ep, "model.task", "") : "-",
		jpstr(ep, "model.framework", "-"), engine, jpstr(ep, "healthRoute", "/"), env,
		secrets, jpstr(ep, "compute.accelerator", "-"),
		jpstr(ep, "compute.instanceType", "-"), jpstr(ep, "compute.instanceSize", "-"),
		minr, maxr, stz_text, pend_text, ready, target, jpstr(ep, "status.createdAt", "-"),
		jpstr(ep, "status.updatedAt", "-"));
	free(engine);
	free(ready);
	free(target);
	free(minr);
	free(maxr);
	free(env);
	free(secrets);
	free(stz_text);
	free(pend_text);
}

/* An Endpoint answer: the raw JSON with --json, else the view. */
static void show_endpoint(struct cli *cli, json_t *ep, const char *raw)
{
	if (cli->json)
		print_raw_json(raw);
	else
		print_endpoint(ep, stdout);
}

/* NAME, the one positional of most endpoint commands. */
static int one_name(struct cli *cli, int npos, char **argv, const char **name)
{
	if (npos == 0)
		return usage_error(cli->cmd, "which endpoint? give its NAME");
	if (npos > 1)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
	if (!argv[0][0])
		return usage_error(cli->cmd, "the endpoint NAME is empty");
	*name = argv[0];
	return EXIT_OK;
}

static int cmd_endpoint_ls(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = ep_path(ns, NULL, NULL);
	json_t *v;
	char *raw;
	rc = http_json(cli, "GET", path, NULL, false, &v, &raw, NULL);
	free(path);
	free(ns);
	if (rc)
		return rc;
	json_t *items = json_object_get(v, "items");
	if (cli->json) {
		print_raw_json(raw);
	} else if (!json_is_array(items)) {
		errorf("floed's endpoint list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "NAME",   "STATE", "READY/TARGET",
						    "ENGINE", "TYPE",  "URL" };
		static const bool right[] = { false, false, true, false, false, false };
		struct table t = { 6, head, right, NULL, 0 };
		size_t i;
		json_t *ep;
		json_array_foreach(items, i, ep) {
			char *ready = int_or_dash(jpath(ep, "status.readyReplica"));
			char *target = int_or_dash(jpath(ep, "status.targetReplica"));
			table_add(&t, xstrdup(jpstr(ep, "name", "?")),
				  xstrdup(jpstr(ep, "status.state", "?")),
				  xasprintf("%s/%s", ready, target), engine_of(ep),
				  xstrdup(jpstr(ep, "type", "?")),
				  xstrdup(jpstr(ep, "status.url", "-")));
			free(ready);
			free(target);
		}
		table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}

static int cmd_endpoint_describe(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = ep_path(ns, name, NULL);
	json_t *v;
	char *raw;
	rc = http_json(cli, "GET", path, NULL, false, &v, &raw, NULL);
	if (rc == EXIT_OK)
		show_endpoint(cli, v, raw);
	free(raw);
	json_decref(v);
	free(path);
	free(ns);
	return rc;
}

/* --- wait ------------------------------------------------------------------------ */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Between two polls of the state (huggingface_hub's wait() polls every 5 s;
 * a terminal is more impatient, and a GET costs floed next to nothing). */
#define WAIT_POLL_S 0.5
/* One poll's request may take this long at most. */
#define WAIT_REQUEST_MS 10000L

/* What wait has already said about a replica, to say only what changed. */
struct seen_replica {
	char id[96];
	char what[96];
};

struct wait_state {
	struct cli *cli;
	const char *name;
	double t0;
	bool replicas_route; /* false once floed has shown it has no replicas route */
	struct seen_replica seen[16];
	size_t n_seen;
};

/* The cold-start phase, from the replicas route when floed has it: each
 * replica's state and kind of start as they change. Never wakes anything
 * (a control-plane GET). */
static void wait_show_replicas(struct wait_state *w, const char *path)
{
	if (!w->replicas_route)
		return;
	json_t *v;
	long st;
	if (http_json(w->cli, "GET", path, NULL, true, &v, NULL, &st) != EXIT_OK) {
		if (st == 404 || st == 405)
			w->replicas_route = false;
		return;
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(v, "items"), i, r) {
		const char *id = jpstr(r, "id", "?");
		const char *state = jpstr(r, "state", "?");
		const char *kind = jpstr(r, "coldStart.kind", NULL);
		json_t *secs = jpath(r, "coldStart.seconds");
		char what[96];
		if (json_is_number(secs))
			snprintf(what, sizeof(what), "%s after a %s start of %.2fs", state,
				 kind ? kind : "?", json_number_value(secs));
		else
			snprintf(what, sizeof(what), "%s%s%s%s", state, kind ? " (" : "",
				 kind ? kind : "", kind ? " start)" : "");
		size_t k;
		for (k = 0; k < w->n_seen && strcmp(w->seen[k].id, id) != 0; k++)
			;
		if (k < w->n_seen && strcmp(w->seen[k].what, what) == 0)
			continue;
		if (k == w->n_seen) {
			if (k == sizeof(w->seen) / sizeof(w->seen[0]))
				continue;
			w->n_seen++;
			snprintf(w->seen[k].id, sizeof(w->seen[k].id), "%s", id);
		}
		snprintf(w->seen[k].what, sizeof(w->seen[k].what), "%s", what);
		fprintf(stderr, "%s:   replica %s: %s (%.1fs)\n", w->name, id, what,
			mono_s() - w->t0);
	}
	json_decref(v);
}

/* GET {url}{healthRoute} the way huggingface_hub joins them. Its status, 0
 * when there was no answer. */
static long health_status(struct cli *cli, const char *url, const char *route, double left_s)
{
	size_t n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	while (*route == '/')
		route++;
	char *full = xasprintf("%.*s/%s", (int)n, url, route);
	struct http h;
	long ms = WAIT_REQUEST_MS;
	if (left_s > 0 && left_s * 1000 < ms)
		ms = (long)(left_s * 1000) + 1000;
	struct req rq = { .quiet = true, .abs_url = full, .timeout_ms = ms };
	http_perform(cli, "GET", NULL, &rq, &h);
	long st = h.code == CURLE_OK ? h.status : 0;
	http_destroy(&h);
	free(full);
	return st;
}

/*
 * Wait for ns/name the way huggingface_hub's InferenceEndpoint.wait() does:
 * poll the Endpoint until its state is running and status.url is set, then
 * GET {url}{healthRoute} until it answers 200. Both are requests that never
 * wake an endpoint, so a scaled-to-zero endpoint stays at zero (and the wait
 * times out). Progress on stderr. timeout_s < 0: no limit.
 * Returns EXIT_OK (ready), EXIT_FAIL (failed, gone, floed unreachable) or
 * EXIT_TIMEOUT. *last (may be NULL) gets the last Endpoint seen and its raw
 * JSON in *last_raw.
 */
static int wait_ready(struct cli *cli, const char *ns, const char *name, double timeout_s,
		      json_t **last, char **last_raw)
{
	struct wait_state w = { .cli = cli, .name = name, .t0 = mono_s(), .replicas_route = true };
	char *path = ep_path(ns, name, NULL);
	char *rpath = ep_path(ns, name, "replicas");
	char last_state[64] = "";
	bool said_health = false;
	json_t *ep = NULL;
	char *raw = NULL;
	int rc;
	for (;;) {
		double elapsed = mono_s() - w.t0;
		json_decref(ep);
		free(raw);
		rc = http_json(cli, "GET", path, NULL, false, &ep, &raw, NULL);
		if (rc != EXIT_OK)
			break;
		const char *state = jpstr(ep, "status.state", "?");
		const char *msg = jpstr(ep, "status.message", "");
		elapsed = mono_s() - w.t0;
		if (strcmp(state, last_state) != 0) {
			fprintf(stderr, "%s: %s (%.1fs)%s%s\n", name, state, elapsed,
				msg[0] ? ": " : "", msg);
			if (strcmp(state, "scaledToZero") == 0)
				fprintf(stderr,
					"%s:   scaled to zero: it starts on its next request "
					"(waiting does not wake it)\n",
					name);
			else if (strcmp(state, "paused") == 0)
				fprintf(stderr, "%s:   paused: it starts once resumed\n", name);
			snprintf(last_state, sizeof(last_state), "%s", state);
		}
		if (strcmp(state, "failed") == 0 || strcmp(state, "updateFailed") == 0) {
			errorf("%s %s: %s", name, state, msg[0] ? msg : "no message from floed");
			rc = EXIT_FAIL;
			break;
		}
		/* Before the health check, so that the replica's start is shown
		 * even when the endpoint turns ready on this round. */
		if (strcmp(state, "initializing") == 0 || strcmp(state, "updating") == 0 ||
		    strcmp(state, "pending") == 0 || strcmp(state, "running") == 0)
			wait_show_replicas(&w, rpath);
		double left = timeout_s < 0 ? -1 : timeout_s - elapsed;
		const char *url = jpstr(ep, "status.url", NULL);
		if (strcmp(state, "running") == 0 && url && url[0]) {
			const char *route = jpstr(ep, "healthRoute", "/");
			long hs = health_status(cli, url, route, left);
			if (hs == 200) {
				fprintf(stderr, "%s: ready (%.1fs)\n", name, mono_s() - w.t0);
				rc = EXIT_OK;
				break;
			}
			if (hs == 401 || hs == 403) {
				errorf("%s: GET %s%s answered %ld: give a token of namespace %s "
				       "(--token or FLOE_TOKEN)",
				       name, url, route, hs, ns);
				rc = EXIT_FAIL;
				break;
			}
			if (!said_health) {
				fprintf(stderr, "%s:   health route %s answers %ld (%.1fs)\n", name,
					route, hs, mono_s() - w.t0);
				said_health = true;
			}
		}
		elapsed = mono_s() - w.t0;
		if (timeout_s >= 0 && elapsed >= timeout_s) {
			errorf("%s is not ready after %.1fs (state %s); exit 4", name, elapsed,
			       state);
			rc = EXIT_TIMEOUT;
			break;
		}
		double nap = WAIT_POLL_S;
		if (timeout_s >= 0 && timeout_s - elapsed < nap)
			nap = timeout_s - elapsed;
		sleep_s(nap);
	}
	free(path);
	free(rpath);
	if (last) {
		*last = ep;
		*last_raw = raw;
	} else {
		json_decref(ep);
		free(raw);
	}
	return rc;
}

/* --timeout S: seconds (a decimal number >= 0); -1 when not given. */
static int parse_timeout(struct cli *cli, const char *text, double *out)
{
	*out = -1;
	if (!text)
		return EXIT_OK;
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (!text[0] || *end || errno || !(v >= 0) || v > 1e9)
		return usage_error(cli->cmd, "--timeout takes seconds (a number >= 0), not '%s'",
				   text);
	*out = v;
	return EXIT_OK;
}

static int cmd_endpoint_wait(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *timeout = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ "timeout", 0, &timeout, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	double t;
	if ((rc = parse_timeout(cli, timeout, &t)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	json_t *ep = NULL;
	char *raw = NULL;
	rc = wait_ready(cli, ns, name, t, &ep, &raw);
	/* Ready: the URL to send requests to (URL=$(floe endpoint wait NAME)). */
	if (rc == EXIT_OK) {
		if (cli->json)
			print_raw_json(raw);
		else
			printf("%s\n", jpstr(ep, "status.url", ""));
	}
	json_decref(ep);
	free(raw);
	free(ns);
	return rc;
}

/* --- create and update -------------------------------------------------------------- */

struct ep_args {
	const char *ns, *engine, *repository, *revision, *task, *framework, *type;
	const char *min_replica, *max_replica, *stz, *threshold;
	const char *accelerator, *instance_type, *instance_size;
	const char *port, *health_route, *from_file, *timeout;
	struct strv env, secrets, command, args;
	bool wait;
};

static void ep_args_destroy(struct ep_args *a)
{
	free(a->env.v);
	free(a->secrets.v);
	free(a->command.v);
	free(a->args.v);
}

/* Whether any option that goes into the body was given. */
static bool ep_args_any_field(const struct ep_args *a)
{
	return a->engine || a->repository || a->revision || a->task || a->framework || a->type ||
	       a->min_replica || a->max_replica || a->stz || a->threshold || a->accelerator ||
	       a->instance_type || a->instance_size || a->port || a->health_route || a->env.n ||
	       a->secrets.n || a->command.n || a->args.n;
}

/* obj[key] as an object, created when missing (borrowed). */
static json_t *jobj(json_t *obj, const char *key)
{
	json_t *o = json_object_get(obj, key);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(obj, key, o);
	}
	return o;
}

/* An integer option into obj[key]; a usage error when it is not one. Range
 * checks are floed's (its 400 names the field). */
static int put_int(struct cli *cli, json_t *obj, const char *key, const char *opt, const char *text)
{
	if (!text)
		return EXIT_OK;
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (!text[0] || *end || errno)
		return usage_error(cli->cmd, "--%s takes an integer, not '%s'", opt, text);
	json_object_set_new(obj, key, json_integer((json_int_t)v));
	return EXIT_OK;
}

/* K=V options into obj (created under parent[key] when there are any). */
static int put_kv(struct cli *cli, json_t *parent, const char *key, const char *opt,
		  const struct strv *sv)
{
	if (!sv->n)
		return EXIT_OK;
	json_t *o = jobj(parent, key);
	for (size_t i = 0; i < sv->n; i++) {
		const char *eq = strchr(sv->v[i], '=');
		if (!eq || eq == sv->v[i])
			/* Never quote the value: it may be a secret. */
			return usage_error(cli->cmd, "--%s takes KEY=VALUE", opt);
		char *k = xstrndup(sv->v[i], (size_t)(eq - sv->v[i]));
		json_object_set_new(o, k, json_string(eq + 1));
		free(k);
	}
	return EXIT_OK;
}

static json_t *strv_json(const struct strv *sv)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

/*
 * --engine -> the kind of model.image (and its url). The engines Hugging
 * Face names have their own image kind; anything else (sim, another preset
 * of floe's images/, an absolute path to an executable) is a custom image
 * whose url floed reads as a preset or a path.
 */
static const char *engine_kind(const char *engine, const char **url)
{
	static const char *const kinds[][2] = {
		{ "vllm", "vLLM" }, { "sglang", "sGLang" },     { "tgi", "tgi" },
		{ "tei", "tei" },   { "llamacpp", "llamacpp" }, { "huggingface", "huggingface" },
	};
	*url = NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcasecmp(engine, kinds[i][0]) == 0)
			return kinds[i][1];
	*url = engine;
	return "custom";
}

/*
 * The Hugging Face body of create (everything needed) or the merge patch of
 * update (only what was given). old_kind: update's current image kind, so
 * that --port alone patches the image there is, and --engine of another
 * kind removes the old one (a JSON null in a merge patch deletes).
 */
static int build_body(struct cli *cli, const struct ep_args *a, const char *name, bool create,
		      const char *old_kind, json_t **out)
{
	json_t *b = json_object();
	json_t *compute = json_object(), *scaling = json_object(), *model = json_object();
	int rc = EXIT_OK;
	*out = NULL;
	if (create)
		json_object_set_new(b, "name", json_string(name));
	if (a->type || create)
		json_object_set_new(b, "type", json_string(a->type ? a->type : "authenticated"));
	if (a->accelerator)
		json_object_set_new(compute, "accelerator", json_string(a->accelerator));
	if (a->instance_type)
		json_object_set_new(compute, "instanceType", json_string(a->instance_type));
	if (a->instance_size)
		json_object_set_new(compute, "instanceSize", json_string(a->instance_size));
	if ((rc = put_int(cli, scaling, "minReplica", "min-replica", a->min_replica)) ||
	    (rc = put_int(cli, scaling, "maxReplica", "max-replica", a->max_replica)) ||
	    (rc = put_int(cli, scaling, "scaleToZeroTimeout", "scale-to-zero-timeout", a->stz)))
		goto out;
	if (a->threshold) {
		char *end;
		double v = strtod(a->threshold, &end);
		if (!a->threshold[0] || *end) {
			rc = usage_error(cli->cmd, "--scaling-threshold takes a number, not '%s'",
					 a->threshold);
			goto out;
		}
		json_object_set_new(jobj(scaling, "measure"), "pendingRequests", json_real(v));
	}
	if (a->repository || create)
		json_object_set_new(model, "repository",
				    json_string(a->repository ? a->repository : name));
	if (a->revision)
		json_object_set_new(model, "revision", json_string(a->revision));
	if (a->task)
		json_object_set_new(model, "task", json_string(a->task));
	if (a->framework)
		json_object_set_new(model, "framework", json_string(a->framework));
	if (a->engine || a->port || a->health_route) {
		const char *url = NULL;
		const char *kind = a->engine ? engine_kind(a->engine, &url) :
				   old_kind  ? old_kind :
					       "huggingface";
		json_t *image = json_object();
		json_t *inner = json_object();
		if (url)
			json_object_set_new(inner, "url", json_string(url));
		if ((rc = put_int(cli, inner, "port", "port", a->port))) {
			json_decref(image);
			json_decref(inner);
			goto out;
		}
		if (a->health_route)
			json_object_set_new(inner, "healthRoute", json_string(a->health_route));
		if (old_kind && strcmp(old_kind, kind) != 0)
			json_object_set_new(image, old_kind, json_null());
		json_object_set_new(image, kind, inner);
		json_object_set_new(model, "image", image);
	}
	if ((rc = put_kv(cli, model, "env", "env", &a->env)) ||
	    (rc = put_kv(cli, model, "secrets", "secret", &a->secrets)))
		goto out;
	if (a->command.n)
		json_object_set_new(model, "command", strv_json(&a->command));
	if (a->args.n)
		json_object_set_new(model, "args", strv_json(&a->args));
out:
	if (json_object_size(scaling))
		json_object_set(compute, "scaling", scaling);
	if (json_object_size(compute))
		json_object_set(b, "compute", compute);
	if (json_object_size(model))
		json_object_set(b, "model", model);
	json_decref(scaling);
	json_decref(compute);
	json_decref(model);
	if (rc != EXIT_OK)
		json_decref(b);
	else
		*out = b;
	return rc;
}

/* --from-file FILE (- for stdin): a JSON object, sent as it is. */
static int read_body_file(struct cli *cli, const char *file, json_t **out)
{
	json_error_t jerr;
	json_t *v = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) :
					     json_load_file(file, 0, &jerr);
	*out = NULL;
	if (!v) {
		errorf("%s: %s (line %d, column %d)", strcmp(file, "-") ? file : "stdin", jerr.text,
		       jerr.line, jerr.column);
		return EXIT_FAIL;
	}
	if (!json_is_object(v)) {
		errorf("%s: expected a JSON object (an Endpoint body)", file);
		json_decref(v);
		return EXIT_FAIL;
	}
	*out = v;
	return EXIT_OK;
}

/* The options of create and update, into a (out: 25 entries, the last zero). */
#define EP_WRITE_NOPTS 25
static void ep_write_opts(struct ep_args *a, struct opt *out)
{
	const struct opt o[EP_WRITE_NOPTS] = {
		{ "namespace", 0, &a->ns, NULL, NULL },
		{ "engine", 0, &a->engine, NULL, NULL },
		{ "repository", 0, &a->repository, NULL, NULL },
		{ "repo", 0, &a->repository, NULL, NULL }, /* hf endpoints deploy's name */
		{ "revision", 0, &a->revision, NULL, NULL },
		{ "task", 0, &a->task, NULL, NULL },
		{ "framework", 0, &a->framework, NULL, NULL },
		{ "type", 0, &a->type, NULL, NULL },
		{ "min-replica", 0, &a->min_replica, NULL, NULL },
		{ "max-replica", 0, &a->max_replica, NULL, NULL },
		{ "scale-to-zero-timeout", 0, &a->stz, NULL, NULL },
		{ "scaling-threshold", 0, &a->threshold, NULL, NULL },
		{ "accelerator", 0, &a->accelerator, NULL, NULL },
		{ "instance-type", 0, &a->instance_type, NULL, NULL },
		{ "instance-size", 0, &a->instance_size, NULL, NULL },
		{ "port", 0, &a->port, NULL, NULL },
		{ "health-route", 0, &a->health_route, NULL, NULL },
		{ "env", 0, NULL, NULL, &a->env },
		{ "secret", 0, NULL, NULL, &a->secrets },
		{ "command", 0, NULL, NULL, &a->command },
		{ "arg", 0, NULL, NULL, &a->args },
		{ "from-file", 0, &a->from_file, NULL, NULL },
		{ "wait", 0, NULL, &a->wait, NULL },
		{ "timeout", 0, &a->timeout, NULL, NULL },
		{ 0 },
	};
	memcpy(out, o, sizeof(o));
}

/* Option checks both share; EXIT_OK or a usage error. */
static int ep_args_check(struct cli *cli, const struct ep_args *a)
{
	if (a->type && !one_of(a->type, "public|authenticated|private|protected"))
		return usage_error(cli->cmd,
				   "--type must be public, authenticated or private, not '%s'",
				   a->type);
	if (a->engine && (!a->engine[0] || strcmp(a->engine, "custom") == 0))
		return usage_error(
			cli->cmd,
			"--engine takes vllm, tgi, sglang, tei, llamacpp, huggingface, "
			"a floe preset such as sim, or an absolute path to an executable");
	if (a->from_file && ep_args_any_field(a))
		return usage_error(cli->cmd, "--from-file sends the file as it is: put the other "
					     "fields in the file");
	if (a->timeout && !a->wait)
		return usage_error(cli->cmd, "--timeout goes with --wait");
	return EXIT_OK;
}

/* After a create or update: wait when asked, then show the endpoint. */
static int ep_write_finish(struct cli *cli, const char *ns, const char *name, json_t *ep,
			   const char *raw, const struct ep_args *a)
{
	if (!a->wait) {
		show_endpoint(cli, ep, raw);
		return EXIT_OK;
	}
	double t;
	int rc = parse_timeout(cli, a->timeout, &t);
	if (rc != EXIT_OK)
		return rc;
	json_t *last = NULL;
	char *last_raw = NULL;
	rc = wait_ready(cli, ns, name, t, &last, &last_raw);
	if (last)
		show_endpoint(cli, last, last_raw);
	json_decref(last);
	free(last_raw);
	return rc;
}

static int cmd_endpoint_create(struct cli *cli, int argc, char **argv)
{
	struct ep_args a = { 0 };
	struct opt opts[EP_WRITE_NOPTS];
	ep_write_opts(&a, opts);
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	json_t *body = NULL, *ep = NULL;
	char *ns = NULL, *raw = NULL, *text = NULL;
	const char *name = NULL;
	if (rc) {
		rc = rc == EXIT_HELP_DONE ? EXIT_OK : rc;
		goto out;
	}
	if ((rc = ep_args_check(cli, &a)) != EXIT_OK)
		goto out;
	if (a.timeout) {
		double t;
		if ((rc = parse_timeout(cli, a.timeout, &t)) != EXIT_OK)
			goto out;
	}
	if (a.from_file) {
		if (npos > 1) {
			rc = usage_error(cli->cmd, "unexpected argument '%s'", argv[1]);
			goto out;
		}
		if ((rc = read_body_file(cli, a.from_file, &body)) != EXIT_OK)
			goto out;
		name = json_string_value(json_object_get(body, "name"));
		if (npos == 1 && (!name || strcmp(name, argv[0]) != 0)) {
			rc = usage_error(cli->cmd, "NAME '%s' is not the name in %s ('%s')",
					 argv[0], a.from_file, name ? name : "none");
			goto out;
		}
		if (!name && a.wait) {
			rc = usage_error(cli->cmd, "--wait needs the body's name");
			goto out;
		}
	} else {
		if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
			goto out;
		if ((rc = build_body(cli, &a, name, true, NULL, &body)) != EXIT_OK)
			goto out;
	}
	if ((rc = resolve_ns(cli, a.ns, &ns)) != EXIT_OK)
		goto out;
	char *path = ep_path(ns, NULL, NULL);
	text = json_dumps(body, JSON_COMPACT);
	rc = http_json(cli, "POST", path, text, false, &ep, &raw, NULL);
	free(path);
	if (rc == EXIT_OK) {
		if (!name)
			name = jpstr(ep, "name", "?");
		rc = ep_write_finish(cli, ns, name, ep, raw, &a);
	}
out:
	if (text) {
		/* It may hold secrets. */
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(body);
	json_decref(ep);
	free(raw);
	free(ns);
	ep_args_destroy(&a);
	return rc;
}

static int cmd_endpoint_update(struct cli *cli, int argc, char **argv)
{
	struct ep_args a = { 0 };
	struct opt opts[EP_WRITE_NOPTS];
	ep_write_opts(&a, opts);
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	json_t *body = NULL, *ep = NULL, *cur = NULL;
	char *ns = NULL, *raw = NULL, *text = NULL, *path = NULL;
	const char *name = NULL;
	if (rc) {
		rc = rc == EXIT_HELP_DONE ? EXIT_OK : rc;
		goto out;
	}
	if ((rc = ep_args_check(cli, &a)) != EXIT_OK ||
	    (rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		goto out;
	if (!a.from_file && !ep_args_any_field(&a)) {
		rc = usage_error(cli->cmd, "nothing to change: give at least one field option");
		goto out;
	}
	if (a.timeout) {
		double t;
		if ((rc = parse_timeout(cli, a.timeout, &t)) != EXIT_OK)
			goto out;
	}
	if ((rc = resolve_ns(cli, a.ns, &ns)) != EXIT_OK)
		goto out;
	path = ep_path(ns, name, NULL);
	if (a.from_file) {
		if ((rc = read_body_file(cli, a.from_file, &body)) != EXIT_OK)
			goto out;
	} else {
		/* The image options patch the image the endpoint has. */
		const char *old_kind = NULL;
		if (a.engine || a.port || a.health_route) {
			if ((rc = http_json(cli, "GET", path, NULL, false, &cur, NULL, NULL)) !=
			    EXIT_OK)
				goto out;
			old_kind = image_kind(cur);
		}
		if ((rc = build_body(cli, &a, name, false, old_kind, &body)) != EXIT_OK)
			goto out;
	}
	text = json_dumps(body, JSON_COMPACT);
	rc = http_json(cli, "PUT", path, text, false, &ep, &raw, NULL);
	if (rc == EXIT_OK)
		rc = ep_write_finish(cli, ns, name, ep, raw, &a);
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(body);
	json_decref(cur);
	json_decref(ep);
	free(raw);
	free(path);
	free(ns);
	ep_args_destroy(&a);
	return rc;
}

/* --- pause, resume, scale-to-zero, delete --------------------------------------------- */

/* POST .../ACTION or DELETE: one request, one line (or floed's JSON). */
static int ep_simple(struct cli *cli, int argc, char **argv, const char *method, const char *action,
		     const char *done)
{
	const char *ns_opt = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = ep_path(ns, name, action);
	json_t *v;
	char *raw;
	rc = http_json(cli, method, path, NULL, false, &v, &raw, NULL);
	if (rc == EXIT_OK) {
		if (cli->json)
			print_raw_json(raw);
		else if (jpstr(v, "status.state", NULL))
			printf("%s: %s\n", name, jpstr(v, "status.state", ""));
		else
			printf("%s %s\n", done, name);
	}
	json_decref(v);
	free(raw);
	free(path);
	free(ns);
	return rc;
}

static int cmd_endpoint_pause(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "pause", "paused");
}

static int cmd_endpoint_resume(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "resume", "resumed");
}

static int cmd_endpoint_scale_to_zero(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "POST", "scale-to-zero", "scaled to zero");
}

static int cmd_endpoint_delete(struct cli *cli, int argc, char **argv)
{
	return ep_simple(cli, argc, argv, "DELETE", NULL, "deleted");
}

/* --- logs and replicas ------------------------------------------------------------ */

static void on_interrupt(int sig)
{
	interrupted = 1;
}

static int cmd_endpoint_logs(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *replica = NULL, *tail = NULL, *name;
	bool follow = false;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ "replica", 0, &replica, NULL, NULL },
		{ "tail", 0, &tail, NULL, NULL },
		{ "follow", 'f', NULL, &follow, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	if (tail) {
		char *end;
		errno = 0;
		long long n = strtoll(tail, &end, 10);
		if (!tail[0] || *end || errno || n < 0)
			return usage_error(cli->cmd, "--tail takes a number of lines, not '%s'",
					   tail);
	}
	if (replica && !replica[0])
		return usage_error(cli->cmd, "--replica needs an id (see floe replicas NAME)");
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	struct floe_buf path = FLOE_BUF_INIT;
	char *p = ep_path(ns, name, "logs");
	floe_buf_puts(&path, p);
	free(p);
	query_add(&path, "replica", replica);
	query_add(&path, "tail", tail);
	query_add(&path, "follow", follow ? "1" : NULL);
	/* Ctrl-C ends a follow: the transfer stops (within about a second, at
	 * curl's next progress call) and floe exits 0. */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	struct http h;
	struct req rq = { .sink = stdout, .flush = true, .long_transfer = true };
	rc = http_perform(cli, "GET", path.data, &rq, &h);
	if (interrupted)
		rc = EXIT_OK;
	sigaction(SIGINT, &old, NULL);
	http_destroy(&h);
	floe_buf_destroy(&path);
	free(ns);
	return rc;
}

/* Seconds for people, as human_ms. */
static char *human_s(json_t *v)
{
	if (!json_is_number(v))
		return xstrdup("-");
	return human_ms((json_int_t)(json_number_value(v) * 1000));
}

static int cmd_replicas(struct cli *cli, int argc, char **argv)
{
	const char *ns_opt = NULL, *name;
	const struct opt opts[] = {
		{ "namespace", 0, &ns_opt, NULL, NULL },
		{ 0 },
	};
	int npos, rc = parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if ((rc = one_name(cli, npos, argv, &name)) != EXIT_OK)
		return rc;
	char *ns;
	if ((rc = resolve_ns(cli, ns_opt, &ns)) != EXIT_OK)
		return rc;
	char *path = ep_path(ns, name, "replicas");
	json_t *v;
	char *raw;
	rc = http_json(cli, "GET", path, NULL, false, &v, &raw, NULL);
	free(path);
	free(ns);
	if (rc)
		return rc;
	json_t *items = json_object_get(v, "items");
	if (cli->json) {
		print_raw_json(raw);
	} else if (!json_is_array(items)) {
		errorf("floed's replica list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "ID",     "STATE",     "PID", "COLD START",
						    "UPTIME", "IN FLIGHT", "GPUS" };
		static const bool right[] = { false, false, true, false, true, true, true };
		struct table t = { 7, head, right, NULL, 0 };
		size_t i;
		json_t *r;
		json_array_foreach(items, i, r) {
			json_t *secs = jpath(r, "coldStart.seconds");
			char *secs_text = human_s(secs);
			table_add(&t, xstrdup(jpstr(r, "id", "?")), xstrdup(jpstr(r, "state", "?")),
				  int_or_dash(json_object_get(r, "pid")),
				  xasprintf("%s %s", jpstr(r, "coldStart.kind", "-"), secs_text),
				  human_s(json_object_get(r, "uptimeSeconds")),
				  int_or_dash(json_object_get(r, "inFlight")),
				  int_or_dash(json_object_get(r, "gpus")));
			free(secs_text);
		}
		table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}

/* --- help, version, dispatch -------------------------------------------------- */

static const struct command commands[] = {
	{ "billing", "export", cmd_billing_export,
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
	{ "billing", "summary", cmd_billing_summary,
	  "billing summary [--namespace NS] [--from T] [--to T] [--json]",
	  "usage and cost per endpoint (GET /v2/billing/summary)",
	  "  --namespace NS        only this namespace (default: all)\n"
	  "  --from T, --to T      as for billing export\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "Exits 3 (after the output) when the summary is incomplete (ledger damage).\n" },
	{ "snapshot", "ls", cmd_snapshot_ls, "snapshot ls [--endpoint NAME] [--json]",
	  "list CRIU snapshots (GET /v2/snapshots)",
	  "  --endpoint NAME       only this endpoint's snapshots\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "KEY shows the first 12 of 64 hex digits; SIZE is the image size; LAST RESTORE\n"
	  "is how long the last restore took.\n" },
	{ "snapshot", "rm", cmd_snapshot_rm, "snapshot rm KEY...",
	  "delete snapshots (DELETE /v2/snapshots/KEY)",
	  "  KEY                   a full key (64 hex digits) or a unique prefix of at least 8;\n"
	  "                        every KEY is resolved before any is deleted\n" },
	{ "endpoint", "ls", cmd_endpoint_ls, "endpoint ls [--namespace NS] [--json]",
	  "list endpoints (GET /v2/endpoint/NS)",
	  "  --namespace NS        the namespace (default: the token's, from GET\n"
	  "                        /api/whoami-v2; without tokens: default)\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "ENGINE is what --engine takes: a custom image's preset or path (sim), else the\n"
	  "image kind (vllm, tgi, huggingface).\n" },
	{ "endpoint", "describe", cmd_endpoint_describe,
	  "endpoint describe NAME [--namespace NS] [--json]",
	  "show one endpoint (GET /v2/endpoint/NS/NAME)",
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                the Endpoint JSON as floed sends it\n" },
	{ "endpoint", "create", cmd_endpoint_create,
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
	{ "endpoint", "update", cmd_endpoint_update,
	  "endpoint update NAME [OPTIONS] [--wait [--timeout S]]\n"
	  "       floe endpoint update NAME --from-file FILE.json [--wait [--timeout S]]",
	  "change an endpoint: only the fields given (PUT, a merge patch)",
	  "OPTIONS are those of endpoint create (see floe help endpoint create); only\n"
	  "those given are sent (an RFC 7386 merge patch): --port and --health-route\n"
	  "change the image the endpoint has, --engine of another kind replaces it,\n"
	  "--env K=V adds or changes K and keeps the others.\n"
	  "  --from-file FILE      send FILE, a merge patch, as it is\n"
	  "  --wait, --timeout S   as for create\n" },
	{ "endpoint", "pause", cmd_endpoint_pause, "endpoint pause NAME [--namespace NS] [--json]",
	  "pause: replicas drain, requests get 503 and never wake it",
	  "  --namespace NS        as for endpoint ls\n" },
	{ "endpoint", "resume", cmd_endpoint_resume,
	  "endpoint resume NAME [--namespace NS] [--json]", "resume a paused endpoint",
	  "  --namespace NS        as for endpoint ls\n"
	  "A running endpoint is floed's 400 \"endpoint is already running\" (exit 1).\n" },
	{ "endpoint", "scale-to-zero", cmd_endpoint_scale_to_zero,
	  "endpoint scale-to-zero NAME [--namespace NS] [--json]",
	  "stop its replicas now; the next request starts one",
	  "  --namespace NS        as for endpoint ls\n" },
	{ "endpoint", "delete", cmd_endpoint_delete,
	  "endpoint delete NAME [--namespace NS] [--json]",
	  "delete an endpoint (asks nothing: meant for scripts)",
	  "  --namespace NS        as for endpoint ls\n"
	  "Deletes at once, without a question; its replicas drain.\n" },
	{ "endpoint", "wait", cmd_endpoint_wait,
	  "endpoint wait NAME [--timeout S] [--namespace NS] [--json]",
	  "wait until an endpoint is ready, without waking it",
	  "  --timeout S           give up after S seconds: exit 4 (default: no limit)\n"
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                when ready, the Endpoint JSON instead of its URL\n"
	  "Polls the state until running with a URL, then GET {url}{healthRoute} until\n"
	  "200, as huggingface_hub's wait() does; neither wakes a scaled-to-zero endpoint.\n"
	  "Progress on stderr; the URL on stdout when ready. Exit 0 ready, 1 failed,\n"
	  "4 timed out.\n" },
	{ "endpoint", "logs", cmd_endpoint_logs,
	  "endpoint logs NAME [--replica ID] [--tail N] [-f|--follow] [--namespace NS]",
	  "print an engine's output (GET /v2/endpoint/NS/NAME/logs)",
	  "  --replica ID          this replica (see floe replicas; default: the newest)\n"
	  "  --tail N              the last N lines (floed's default: 100)\n"
	  "  -f, --follow          then keep printing as the engine writes, until its\n"
	  "                        process ends; Ctrl-C stops (exit 0)\n"
	  "  --namespace NS        as for endpoint ls\n" },
	{ "replicas", NULL, cmd_replicas, "replicas NAME [--namespace NS] [--json]",
	  "list an endpoint's live replicas (GET /v2/endpoint/NS/NAME/replicas)",
	  "  --namespace NS        as for endpoint ls\n"
	  "  --json                floed's JSON as it is, instead of the table\n"
	  "COLD START is the kind of start (fresh, restore, warm_pool) and how long it\n"
	  "took (- while starting); UPTIME counts from when floed began starting it.\n" },
	{ "token", "new", cmd_token_new, "token new NAMESPACE [--json]",
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
	return usage_error(NULL, "no help for '%s%s%s': unknown command", argv[0],
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
				return usage_error(NULL, "option %s needs a value", a);
			*dst = argv[++i];
			continue;
		}
		return usage_error(NULL, "unknown option %s", a);
	}
	if (i >= argc)
		return usage_error(NULL, "no command given");
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
			return usage_error(NULL, "unknown command '%s'", name);
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
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		errorf("cannot initialise libcurl");
		return EXIT_FAIL;
	}
	int rc = cmd->run(&cli, argc - i - used, argv + i + used);
	curl_global_cleanup();
	free(cli.url_owned);
	/* A table that could not be written (a full disk, a closed pipe) is an error. */
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		errorf("cannot write the output: %s", strerror(errno));
		rc = EXIT_FAIL;
	}
	return rc;
}
