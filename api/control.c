#define LOG_TAG "control"

#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"

static void respond(struct floe_conn *c, int status, const char *content_type, const char *body,
		    size_t len, bool head_only)
{
	bool keep_alive = floe_conn_keep_alive(c);
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
			 status, floe_http_reason(status), content_type, len,
			 keep_alive ? "" : "Connection: close\r\n");
	uv_buf_t b[2] = { uv_buf_init(head, (unsigned)n),
			  uv_buf_init((char *)body, head_only ? 0 : (unsigned)len) };
	floe_conn_writev(c, b, 2);
	floe_conn_finish(c, keep_alive);
}

static bool path_is(const struct floe_http_msg *msg, const char *path)
{
	const char *url = floe_http_msg_url(msg);
	size_t len = strlen(path);
	return strncmp(url, path, len) == 0 && (url[len] == '\0' || url[len] == '?');
}

static void control_on_head(struct floe_conn *c, struct floe_http_msg *msg)
{
	struct floe_control *ctl = c->server->data;
	bool get = msg->method == HTTP_GET || msg->method == HTTP_HEAD;
	bool head_only = msg->method == HTTP_HEAD;
	/* Answer once the (normally empty) request body has been read, so the
	 * connection stays in step for keep-alive; here we answer at once and
	 * floe_conn_finish closes the connection if a body is still coming. */
	if (path_is(msg, "/healthz")) {
		if (!get) {
			floe_conn_error(c, 405, "method_not_allowed", "use GET",
					"Allow: GET, HEAD\r\n");
			return;
		}
		respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15, head_only);
		return;
	}
	if (path_is(msg, "/metrics")) {
		if (!get) {
			floe_conn_error(c, 405, "method_not_allowed", "use GET",
					"Allow: GET, HEAD\r\n");
			return;
		}
		struct floe_buf out = FLOE_BUF_INIT;
		floe_metrics_render(ctl->metrics, &out);
		respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
			out.data ? out.data : "", out.len, head_only);
		floe_buf_destroy(&out);
		return;
	}
	floe_conn_error(c, 404, "not_found", "no such route on the control plane", NULL);
}

const struct floe_server_handler floe_control_handler = {
	.on_head = control_on_head,
};
