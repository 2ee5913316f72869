/*
 * The billing routes of the control plane:
 *
 *   GET /v2/billing/usage.csv?namespace=&from=&to=&granularity=&group_by=
 *   GET /v2/billing/summary?namespace=&from=&to=
 *
 * With tokens configured a token sees its namespace's usage only (the
 * namespace parameter defaults to it; another one is a 403).
 *
 * The query is checked on the loop (a bad one is a 400 at once); reading
 * and metering the ledger runs on the thread pool. The export meters this
 * floed's own live replicas up to the moment of the request.
 */
#define LOG_TAG "control"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "control-internal.h"
#include "export.h"
#include "log.h"
#include "usage.h"
#include "xalloc.h"

#define ALLOW_GET "Allow: GET, HEAD\r\n"

enum billing_op {
	OP_CSV,
	OP_SUMMARY
};

struct billing_job {
	struct ctl_job job; /* first: the pool's callbacks see a struct ctl_job */
	enum billing_op op;
	struct floe_export_query q;
	char *dir;
	char instance[16];
	uint64_t now_ms;
	/* results */
	int rc;
	floe_error err;
	struct floe_buf out;
	struct floe_export_report rep;
};

static void billing_run(struct ctl_job *job)
{
	struct billing_job *j = (struct billing_job *)job;
	if (j->op == OP_CSV)
		j->rc = floe_export_csv(j->dir, &j->q, j->instance, j->now_ms, &j->out, &j->rep,
					&j->err);
	else
		j->rc = floe_export_summary(j->dir, &j->q, j->instance, j->now_ms, &j->out, &j->rep,
					    &j->err);
}

/* "usage-2026-11-01T00:00:00Z-2026-12-01T00:00:00Z.csv" without colons,
 * which some file systems refuse. */
static void csv_filename(const struct floe_export_query *q, char *out, size_t size)
{
	char from[32], to[32];
	time_t f = (time_t)(q->from_ms / 1000), t = (time_t)(q->to_ms / 1000);
	struct tm tf, tt;
	gmtime_r(&f, &tf);
	gmtime_r(&t, &tt);
	strftime(from, sizeof(from), "%Y%m%dT%H%MZ", &tf);
	strftime(to, sizeof(to), "%Y%m%dT%H%MZ", &tt);
	snprintf(out, size, "floe-usage-%s-%s.csv", from, to);
}

static void billing_finish(struct ctl_job *job, int status)
{
	struct billing_job *j = (struct billing_job *)job;
	struct floe_conn *c = j->job.conn;
	if (status < 0) {
		if (c)
			floe_conn_error(c, 503, "shutting_down", uv_strerror(status), NULL);
	} else if (j->rc < 0) {
		log_error("billing export: %s", j->err.msg);
		if (c)
			floe_conn_error(c, 500, "internal_error", j->err.msg, NULL);
	} else if (c) {
		struct floe_buf headers = FLOE_BUF_INIT;
		char *incomplete = floe_export_incomplete_header(&j->rep);
		if (incomplete) {
			/* Never silently short: the client is told, and so is the log. */
			log_warn("billing export answered incomplete: %s", incomplete);
			floe_buf_printf(&headers, "Floe-Ledger-Incomplete: %s\r\n", incomplete);
			free(incomplete);
		}
		const char *type = "application/json";
		if (j->op == OP_CSV) {
			char name[96];
			csv_filename(&j->q, name, sizeof(name));
			floe_buf_printf(&headers,
					"Content-Disposition: attachment; filename=\"%s\"\r\n",
					name);
			/* RFC 4180 section 3: the optional header parameter. */
			type = "text/csv; charset=utf-8; header=present";
		}
		floe_buf_puts(&headers, "Cache-Control: no-store\r\n");
		floe__ctl_respond(c, 200, type, headers.data, j->out.data ? j->out.data : "",
				  j->out.len, j->job.head_only);
		floe_buf_destroy(&headers);
	}
	floe_export_report_destroy(&j->rep);
	floe_export_query_destroy(&j->q);
	floe_buf_destroy(&j->out);
	free(j->dir);
	free(j);
}

bool floe__billing_route(struct floe_conn *c, struct floe_http_msg *msg, const char *rest,
			 size_t rest_len, const char *query, const char *ns)
{
	enum billing_op op;
	if (rest_len == 9 && memcmp(rest, "usage.csv", 9) == 0)
		op = OP_CSV;
	else if (rest_len == 7 && memcmp(rest, "summary", 7) == 0)
		op = OP_SUMMARY;
	else
		return false;
	if (msg->method != HTTP_GET && msg->method != HTTP_HEAD) {
		floe__ctl_method_not_allowed(c, ALLOW_GET);
		return true;
	}
	struct floe_control *ctl = c->server->data;
	struct billing_job *j = xcalloc(1, sizeof(*j));
	j->op = op;
	j->now_ms = floe_wall_ms();
	floe_error_clear(&j->err);
	if (floe_export_query_parse(query, j->now_ms, floe_usage_max_export_range(ctl->usage),
				    &j->q, &j->err) < 0) {
		floe_conn_error(c, 400, "bad_request", j->err.msg, NULL);
		free(j);
		return true;
	}
	if (ns) {
		/* A token sees its own namespace's usage, and only that. */
		if (j->q.ns && strcmp(j->q.ns, ns) != 0) {
			floe_conn_error(c, 403, "forbidden",
					"namespace: your token is for another namespace", NULL);
			floe_export_query_destroy(&j->q);
			free(j);
			return true;
		}
		free(j->q.ns);
		j->q.ns = xstrdup(ns);
	}
	j->dir = xstrdup(floe_usage_dir(ctl->usage));
	snprintf(j->instance, sizeof(j->instance), "%s", floe_usage_instance(ctl->usage));
	floe_buf_init(&j->out);
	j->job.head_only = msg->method == HTTP_HEAD;
	j->job.run = billing_run;
	j->job.finish = billing_finish;
	floe__ctl_job_queue(c, &j->job);
	return true;
}
