/*
 * The CLI's HTTP client, over libcurl: one request at a time, the token as
 * Authorization: Bearer, no redirects; and the report of a request that
 * failed, in the words of floed's JSON error when there is one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

#define CONNECT_TIMEOUT_S 5L
/* Whole-request limit for everything but exports, which may be large. */
#define REQUEST_TIMEOUT_S 60L
/* An error body is a small JSON object; more is kept no longer. */
#define ERROR_BODY_MAX 65536

#define INCOMPLETE_HEADER "Floe-Ledger-Incomplete"

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

void cli__http_destroy(struct http *h)
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

void cli__query_add(struct floe_buf *path, const char *name, const char *value)
{
	if (!value)
		return;
	char *enc = curl_easy_escape(NULL, value, (int)strlen(value));
	floe_buf_printf(path, "%c%s=%s", strchr(path->data ? path->data : "", '?') ? '&' : '?',
			name, enc);
	curl_free(enc);
}

volatile sig_atomic_t cli__interrupted;

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
	return cli__interrupted ? 1 : 0; /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

void cli__http_report(struct cli *cli, const struct http *h)
{
	if (h->code != CURLE_OK) {
		char eb[CURL_ERROR_SIZE];
		snprintf(eb, sizeof(eb), "%s", h->errbuf);
		size_t len = strlen(eb);
		while (len && eb[len - 1] == '\n')
			eb[--len] = '\0';
		const char *why = len ? eb : curl_easy_strerror(h->code);
		if (h->code == CURLE_WRITE_ERROR && h->sink_errno)
			cli__errorf("cannot write the output: %s", strerror(h->sink_errno));
		else if (unreachable(h->code) ||
			 (h->code == CURLE_OPERATION_TIMEDOUT && !h->status))
			cli__errorf("cannot reach floed at %s: %s", cli->url, why);
		else
			cli__errorf("request to floed at %s failed: %s", cli->url, why);
		return;
	}
	char *msg = error_message(h);
	cli__errorf("%s (HTTP %ld)", msg, h->status);
	free(msg);
}

int cli__http_perform(struct cli *cli, const char *method, const char *path, const struct req *rq,
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
		cli__errorf("cannot initialise libcurl");
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
		if (!rq->quiet && !(h->code == CURLE_ABORTED_BY_CALLBACK && cli__interrupted))
			cli__http_report(cli, h);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cli__http_request(struct cli *cli, const char *method, const char *path, bool long_transfer,
		      FILE *sink, struct http *h)
{
	struct req rq = { .sink = sink, .long_transfer = long_transfer };
	return cli__http_perform(cli, method, path, &rq, h);
}

int cli__http_get_json(struct cli *cli, const char *path, json_t **out, char **raw)
{
	struct http h;
	*out = NULL;
	int rc = cli__http_request(cli, "GET", path, false, NULL, &h);
	if (rc == EXIT_OK) {
		json_error_t jerr;
		*out = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, &jerr);
		if (!*out) {
			cli__errorf("floed at %s answered %s with a body that is not JSON: %s",
				    cli->url, path, jerr.text);
			rc = EXIT_FAIL;
		} else if (raw) {
			*raw = floe_buf_steal(&h.body, NULL);
		}
	}
	cli__http_destroy(&h);
	return rc;
}

int cli__http_json(struct cli *cli, const char *method, const char *path, const char *body,
		   bool quiet, json_t **out, char **raw, long *status)
{
	struct http h;
	struct req rq = { .body = body, .quiet = quiet };
	*out = NULL;
	if (raw)
		*raw = NULL;
	int rc = cli__http_perform(cli, method, path, &rq, &h);
	if (status)
		*status = h.status;
	if (rc == EXIT_OK) {
		json_error_t jerr;
		*out = json_loadb(h.body.data ? h.body.data : "", h.body.len, 0, &jerr);
		if (!*out) {
			if (!quiet)
				cli__errorf(
					"floed at %s answered %s %s with a body that is not JSON: %s",
					cli->url, method, path, jerr.text);
			rc = EXIT_FAIL;
		} else if (raw) {
			floe_buf_append(&h.body, "", 0);
			*raw = floe_buf_steal(&h.body, NULL);
		}
	}
	cli__http_destroy(&h);
	return rc;
}
