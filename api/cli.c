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
 * Exit codes: 0 success, 1 an error (HTTP error, floed unreachable, I/O),
 * 2 a usage error, 3 an export that floed marked incomplete (ledger damage).
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

struct opt {
	const char *name;   /* long name, without "--" */
	char short_name;    /* 0: none */
	const char **value; /* takes an argument, stored here */
	bool *flag;         /* or a flag, set here */
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
		{ "url", 0, &cli->url, NULL },
		{ "token", 0, &cli->token, NULL },
		{ "json", 0, NULL, &cli->json },
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
		if (fwrite(data, 1, n, h->sink) != n) {
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

/*
 * method path (with its query) on the control plane. A 2xx body goes to
 * h->sink when set, else into h->body. Prints the error (floe: ...) and
 * returns EXIT_FAIL on a transport error, a write error, or a non-2xx status;
 * EXIT_OK otherwise. long_transfer: no overall time limit (exports).
 * h is initialised here; the caller destroys it.
 */
static int http_request(struct cli *cli, const char *method, const char *path, bool long_transfer,
			FILE *sink, struct http *h)
{
	memset(h, 0, sizeof(*h));
	h->sink = sink;
	h->easy = curl_easy_init();
	if (!h->easy) {
		errorf("cannot initialise libcurl");
		return EXIT_FAIL;
	}
	char *url = xasprintf("%s%s", cli->url, path);
	struct curl_slist *headers = NULL;
	char *auth = NULL;
	if (cli->token) {
		auth = xasprintf("Authorization: Bearer %s", cli->token);
		headers = curl_slist_append(headers, auth);
	}
	headers = curl_slist_append(headers, "Accept: application/json, text/csv");
	CURL *e = h->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "floe/" FLOE_VERSION);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, long_transfer ? 0L : REQUEST_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
	/* Only the schemes --url accepts, and no redirects: a redirect could
	 * carry the Authorization header to another host. */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	h->code = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &h->status);
	curl_slist_free_all(headers);
	if (auth) {
		/* The token leaves no copy behind in freed memory of ours. */
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(url);

	if (h->code != CURLE_OK) {
		size_t len = strlen(h->errbuf);
		while (len && h->errbuf[len - 1] == '\n')
			h->errbuf[--len] = '\0';
		const char *why = len ? h->errbuf : curl_easy_strerror(h->code);
		if (h->code == CURLE_WRITE_ERROR && h->sink_errno)
			errorf("cannot write the output: %s", strerror(h->sink_errno));
		else if (unreachable(h->code) ||
			 (h->code == CURLE_OPERATION_TIMEDOUT && !h->status))
			errorf("cannot reach floed at %s: %s", cli->url, why);
		else
			errorf("request to floed at %s failed: %s", cli->url, why);
		return EXIT_FAIL;
	}
	if (!status_ok(h->status)) {
		char *msg = error_message(h);
		errorf("%s (HTTP %ld)", msg, h->status);
		free(msg);
		return EXIT_FAIL;
	}
	return EXIT_OK;
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
		{ "namespace", 0, &a.ns, NULL },
		{ "from", 0, &a.from, NULL },
		{ "to", 0, &a.to, NULL },
		{ "granularity", 0, &a.granularity, NULL },
		{ "group-by", 0, &a.group_by, NULL },
		{ "output", 'o', &a.output, NULL },
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
		{ "namespace", 0, &a.ns, NULL },
		{ "from", 0, &a.from, NULL },
		{ "to", 0, &a.to, NULL },
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
		{ "endpoint", 0, &endpoint, NULL },
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
	"  --json                JSON output, for scripts (commands that have a table)\n"
	"  -h, --help            help for the command\n"
	"  --version             print the version\n"
	"Exit codes: 0 ok, 1 error, 2 usage error, 3 incomplete export (ledger damage).\n";

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
		fprintf(out, "  %-18s %s\n", name, c->summary);
		free(name);
	}
	fprintf(out, "  %-18s %s\n\n%s", "help [COMMAND]", "help on a command", global_help);
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
