/*
 * floe's observability routes on the control plane (issue 5, floe
 * extensions; the contract is in floe__replicas_route's and
 * floe__logs_route's comments in control-internal.h):
 *
 *   GET /v2/endpoint/{ns}/{name}/replicas                  {"items":[Replica...]}
 *   GET /v2/endpoint/{ns}/{name}/logs?replica=&tail=&follow=1   text/plain
 *
 * endpoints.c has checked the namespace and that the endpoint is served.
 *
 * A log read runs on the thread pool (a tail may span two 10 MiB files).
 * For a live replica the files are opened here, on the loop, on the same
 * turn as the follower is attached: the tail then reads exactly the bytes
 * written before the follower's first chunk, even if the file is rotated
 * while the read runs (the open descriptors keep the old inodes).
 *
 * A follow is a chunked response (a struct ctl_stream) that lives until
 * the replica's output ends (floe_log_follower's on_end) or the client goes
 * away. The engine is never slowed for a reader: while the client's socket
 * is full, output waits in memory (up to LAG_MAX, then the follow ends with
 * a note; the file still has everything), and goes out on on_writable.
 */
#define LOG_TAG "control"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "activator.h"
#include "control-internal.h"
#include "hf.h"
#include "log.h"
#include "xalloc.h"

#define TEXT_TYPE "text/plain; charset=utf-8"
#define TAIL_DEFAULT 100
#define TAIL_MAX 100000
/* A follower's output that waits while its tail is read, and while its
 * client reads too slowly; past these the follow ends (the file keeps
 * everything for a new request with tail). */
#define PENDING_MAX (4u * 1024 * 1024)
#define LAG_MAX (4u * 1024 * 1024)
#define READ_BLOCK 65536

/* --- shared --------------------------------------------------------------- */

/* RFC 3339 UTC with milliseconds, as the Hugging Face routes write times;
 * null for 0 (not yet). */
static json_t *time_json(uint64_t unix_ms)
{
	if (unix_ms == 0)
		return json_null();
	char out[32];
	floe_hf_time_format(unix_ms, out);
	return json_string(out);
}

/* The query string of msg's target, or NULL. */
static const char *query_of(struct floe_http_msg *msg)
{
	const char *q = strchr(floe_http_msg_url(msg), '?');
	return q ? q + 1 : NULL;
}

/* --- GET .../replicas ----------------------------------------------------- */

void floe__replicas_route(struct floe_conn *c, struct floe_http_msg *msg, const char *name)
{
	struct floe_control *ctl = c->server->data;
	struct floe_replica_info *v;
	int n = floe_activator_replicas(ctl->act, name, &v);
	if (n < 0) {
		floe_conn_error(c, 404, "not_found", "no such endpoint", NULL);
		return;
	}
	json_t *items = json_array();
	for (int i = 0; i < n; i++) {
		const struct floe_replica_info *r = &v[i];
		json_t *cold = json_object();
		json_object_set_new(cold, "kind", json_string(r->cold_kind));
		json_object_set_new(cold, "seconds",
				    r->cold_seconds >= 0 ? json_real(r->cold_seconds) :
							   json_null());
		json_t *o = json_object();
		json_object_set_new(o, "id", json_string(r->id));
		json_object_set_new(o, "state", json_string(r->state));
		json_object_set_new(o, "pid", r->pid > 0 ? json_integer(r->pid) : json_null());
		json_object_set_new(o, "coldStart", cold);
		json_object_set_new(o, "startedAt", time_json(r->started_ms));
		json_object_set_new(o, "readyAt", time_json(r->ready_ms));
		json_object_set_new(o, "uptimeSeconds", json_real(r->uptime_seconds));
		json_object_set_new(o, "inFlight", json_integer(r->in_flight));
		json_object_set_new(o, "gpus", json_integer(r->gpus));
		json_object_set_new(o, "snapshot",
				    r->snapshot[0] ? json_string(r->snapshot) : json_null());
		json_array_append_new(items, o);
	}
	free(v);
	json_t *body = json_object();
	json_object_set_new(body, "items", items);
	/* Nine digits: 1.523, not jansson's default 1.5229999999999999. */
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(body);
	floe__ctl_respond(c, 200, "application/json", NULL, text, strlen(text),
			  msg->method == HTTP_HEAD);
	free(text);
}

/* --- GET .../logs ---------------------------------------------------------- */

struct logs_req {
	struct ctl_job job;       /* the exchange while the tail is read */
	struct ctl_stream stream; /* the exchange while following */
	struct floe_log_follower fol;
	struct floe_conn *conn; /* while following; NULL once the client is gone */
	char name[64];
	char id[80];        /* the replica; "" for "the newest file" (resolved on the pool) */
	char *log_dir;      /* DATA_DIR/logs/NAME */
	int fd_cur, fd_old; /* opened on the loop for a live replica, else -1 */
	uint64_t limit;     /* bytes of fd_cur before the follower's first chunk */
	uint32_t tail;
	bool follow;
	bool following;          /* the follower is attached (until on_end or unfollow) */
	bool ended;              /* on_end ran */
	bool overflow;           /* output lost: the follow ends with a note */
	bool chunked;            /* the client speaks HTTP/1.1: chunked, else EOF-delimited */
	bool in_cb;              /* inside a write: the client's going away is acted on after it */
	bool gone;               /* ... and it went away */
	bool blocked;            /* the client's socket is full: output waits in pending */
	struct floe_buf pending; /* output that came while the tail was read */
	/* results of the pool */
	int status;
	char err[300];
	struct floe_buf text; /* the tail */
};

static void logs_free(struct logs_req *l)
{
	floe_activator_log_unfollow(&l->fol);
	if (l->fd_cur >= 0)
		close(l->fd_cur);
	if (l->fd_old >= 0)
		close(l->fd_old);
	free(l->log_dir);
	floe_buf_destroy(&l->pending);
	floe_buf_destroy(&l->text);
	free(l);
}

/* Whether id names a replica of endpoint name ("NAME-N"), which also keeps
 * it from naming any other file. */
static bool replica_id_ok(const char *name, const char *id)
{
	size_t n = strlen(name);
	if (strncmp(id, name, n) != 0 || id[n] != '-' || !id[n + 1] || strlen(id) > 70)
		return false;
	for (const char *p = id + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* On the pool: the newest ID.log of the endpoint's log directory. */
static int newest_log(struct logs_req *l)
{
	DIR *d = opendir(l->log_dir);
	if (!d)
		return errno == ENOENT ? -ENOENT : -errno;
	struct dirent *de;
	struct timespec best = { 0, 0 };
	unsigned long best_seq = 0;
	bool any = false;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".log") != 0 ||
		    len - 4 >= sizeof(l->id))
			continue;
		char id[sizeof(l->id)];
		snprintf(id, sizeof(id), "%.*s", (int)(len - 4), de->d_name);
		struct stat st;
		if (!replica_id_ok(l->name, id) || fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		/* Newest written; replica numbers break ties (one second mtimes on
		 * some file systems). */
		unsigned long seq = strtoul(id + strlen(l->name) + 1, NULL, 10);
		bool newer = !any || st.st_mtim.tv_sec > best.tv_sec ||
			     (st.st_mtim.tv_sec == best.tv_sec &&
			      (st.st_mtim.tv_nsec > best.tv_nsec ||
			       (st.st_mtim.tv_nsec == best.tv_nsec && seq > best_seq)));
		if (newer) {
			any = true;
			best = st.st_mtim;
			best_seq = seq;
			snprintf(l->id, sizeof(l->id), "%s", id);
		}
	}
	closedir(d);
	return any ? 0 : -ENOENT;
}

static int open_ro(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

/* Open ID.log and ID.log.1 of a stopped replica (on the pool). */
static void open_files(struct logs_req *l)
{
	if (!l->id[0] && newest_log(l) < 0) {
		l->status = 404;
		snprintf(l->err, sizeof(l->err), "endpoint %s has no replica log yet", l->name);
		return;
	}
	char *path = xasprintf("%s/%s.log", l->log_dir, l->id);
	char *old = xasprintf("%s.1", path);
	l->fd_cur = open_ro(path);
	l->fd_old = open_ro(old);
	free(path);
	free(old);
	if (l->fd_cur < 0 && l->fd_old < 0) {
		l->status = 404;
		snprintf(l->err, sizeof(l->err), "no log of replica %s of endpoint %s", l->id,
			 l->name);
	}
	l->limit = UINT64_MAX;
}

/*
 * The two files as one: the previous rotation (old, whole) then the current
 * one up to cur_len. Read len bytes at virtual offset off into buf.
 */
struct vfile {
	int fd_old, fd_cur;
	uint64_t old_len, cur_len;
};

static int vread(const struct vfile *v, uint64_t off, char *buf, size_t len)
{
	while (len > 0) {
		int fd = off < v->old_len ? v->fd_old : v->fd_cur;
		uint64_t foff = off < v->old_len ? off : off - v->old_len;
		uint64_t left = off < v->old_len ? v->old_len - off : v->old_len + v->cur_len - off;
		size_t n = len < left ? len : (size_t)left;
		ssize_t r = pread(fd, buf, n, (off_t)foff);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* truncated under us: the sizes were taken first */
		off += (uint64_t)r;
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

static uint64_t fd_size(int fd)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/*
 * The last n lines, as tail(1) counts them: a final line without its
 * newline is a line. Scan back for the start, then read forward.
 */
static int read_tail(const struct vfile *v, uint32_t n, struct floe_buf *out)
{
	uint64_t total = v->old_len + v->cur_len;
	if (n == 0 || total == 0)
		return 0;
	char *block = xmalloc(READ_BLOCK);
	uint64_t start = 0, pos = total;
	uint32_t seen = 0;
	bool first = true, found = false;
	int rc = 0;
	while (pos > 0 && !found) {
		size_t len = pos > READ_BLOCK ? READ_BLOCK : (size_t)pos;
		pos -= len;
		rc = vread(v, pos, block, len);
		if (rc < 0)
			break;
		for (size_t i = len; i-- > 0;) {
			if (first) {
				first = false;
				if (block[i] == '\n')
					continue; /* ends the last line */
			}
			if (block[i] == '\n' && ++seen == n) {
				start = pos + i + 1;
				found = true;
				break;
			}
		}
	}
	free(block);
	if (rc < 0)
		return rc;
	floe_buf_reserve(out, (size_t)(total - start) + 1);
	rc = vread(v, start, out->data, (size_t)(total - start));
	if (rc == 0)
		out->len = (size_t)(total - start);
	out->data[out->len] = '\0';
	return rc;
}

static void logs_work(struct ctl_job *j)
{
	struct logs_req *l = container_of(j, struct logs_req, job);
	if (l->fd_cur < 0 && l->fd_old < 0)
		open_files(l);
	if (l->status)
		return;
	uint64_t cur = fd_size(l->fd_cur);
	struct vfile v = { .fd_old = l->fd_old,
			   .fd_cur = l->fd_cur,
			   .old_len = fd_size(l->fd_old),
			   .cur_len = cur < l->limit ? cur : l->limit };
	int rc = read_tail(&v, l->tail, &l->text);
	if (rc < 0) {
		l->status = 500;
		snprintf(l->err, sizeof(l->err), "cannot read the log of replica %s: %s", l->id,
			 strerror(-rc));
		return;
	}
	l->status = 200;
}

/* --- following -------------------------------------------------------------- */

/* Write one piece of the body (a chunk when chunked). False when the
 * client went away meanwhile (l->gone). */
static bool follow_write(struct logs_req *l, const char *data, size_t len)
{
	if (len == 0)
		return true;
	char size[24];
	int sn = snprintf(size, sizeof(size), "%zx\r\n", len);
	uv_buf_t b[3] = { uv_buf_init(size, (unsigned)sn), uv_buf_init((char *)data, (unsigned)len),
			  uv_buf_init("\r\n", 2) };
	l->in_cb = true;
	bool room =
		l->chunked ? floe_conn_writev(l->conn, b, 3) : floe_conn_writev(l->conn, &b[1], 1);
	l->in_cb = false;
	l->blocked = !room;
	return !l->gone;
}

/*
 * The response is complete: the last chunk, and the exchange ends. A follow
 * cut short (keep_alive false) closes the connection once written, which
 * also keeps floe_conn_finish from starting the client's next request from
 * inside the replica's log pump. Frees l.
 */
static void follow_end(struct logs_req *l, bool keep_alive)
{
	floe_activator_log_unfollow(&l->fol);
	struct floe_conn *c = l->conn;
	if (c && !l->gone) {
		l->in_cb = true;
		if (l->blocked)
			follow_write(l, l->pending.data, l->pending.len);
		if (!l->gone && l->chunked)
			floe_conn_write(c, "0\r\n\r\n", 5);
		l->in_cb = false;
		if (!l->gone) {
			c->exchange = NULL;
			floe_conn_finish(c, keep_alive && l->chunked);
		}
	}
	logs_free(l);
}

static void follow_cut(struct logs_req *l, const char *why)
{
	char note[200];
	int n = snprintf(note, sizeof(note), "\n[floe: follow ended: %s]\n", why);
	log_replica_info(l->name, l->id, "log follow ended: %s", why);
	follow_write(l, note, (size_t)n);
	follow_end(l, false);
}

static void on_follow_data(struct floe_log_follower *f, const char *data, size_t len)
{
	struct logs_req *l = f->data;
	if (!l->conn) {
		/* The tail is still being read: keep what comes meanwhile. */
		if (l->pending.len + len > PENDING_MAX) {
			l->overflow = true;
			floe_activator_log_unfollow(&l->fol);
			l->following = false;
			return;
		}
		floe_buf_append(&l->pending, data, len);
		return;
	}
	if (l->blocked) {
		if (l->pending.len + len > LAG_MAX) {
			floe_buf_reset(&l->pending);
			follow_cut(l, "the client fell 4 MiB behind; ask again with tail");
			return;
		}
		floe_buf_append(&l->pending, data, len);
		return;
	}
	if (!follow_write(l, data, len))
		logs_free(l);
}

/* The client caught up: what waited goes out. */
static void on_follow_writable(struct floe_conn *c, struct ctl_stream *s)
{
	struct logs_req *l = container_of(s, struct logs_req, stream);
	(void)c;
	if (!l->blocked)
		return;
	l->blocked = false; /* follow_write says again if it fills up */
	struct floe_buf out = l->pending;
	floe_buf_init(&l->pending);
	bool alive = follow_write(l, out.data, out.len);
	floe_buf_destroy(&out);
	if (!alive)
		logs_free(l);
}

static void on_follow_end(struct floe_log_follower *f)
{
	struct logs_req *l = f->data;
	l->following = false;
	l->ended = true;
	/* The replica's output is over, and so is the response; while the tail
	 * is still being read, logs_done answers. */
	if (l->conn)
		follow_end(l, true);
}

/* The client went away while following (control.c's on_abort). */
static void on_follow_gone(struct ctl_stream *s)
{
	struct logs_req *l = container_of(s, struct logs_req, stream);
	l->gone = true;
	if (!l->in_cb)
		logs_free(l);
}

/* --- answering ---------------------------------------------------------------- */

static void logs_done(struct ctl_job *j, int status)
{
	struct logs_req *l = container_of(j, struct logs_req, job);
	struct floe_conn *c = j->conn;
	if (status < 0) {
		l->status = 503;
		snprintf(l->err, sizeof(l->err), "log read not run: %s", uv_strerror(status));
	}
	if (!c) {
		logs_free(l);
		return;
	}
	if (l->status != 200) {
		if (l->status >= 500)
			log_ep_warn(l->name, "%s", l->err);
		floe_conn_error(c, l->status, l->status == 404 ? "not_found" : "internal_error",
				l->err, NULL);
		logs_free(l);
		return;
	}
	char extra[160];
	snprintf(extra, sizeof(extra), "X-Floe-Replica: %s\r\nCache-Control: no-store\r\n", l->id);
	if (!l->following) {
		/* Not followed (or its output ended meanwhile): one whole answer.
		 * After an overflow the file has it all: a new request gets it. */
		floe_buf_append(&l->text, l->pending.data ? l->pending.data : "", l->pending.len);
		if (l->overflow) {
			static const char note[] =
				"\n[floe: follow ended: output came faster than it could be "
				"held; ask again with tail]\n";
			floe_buf_append(&l->text, note, sizeof(note) - 1);
		}
		floe__ctl_respond(c, 200, TEXT_TYPE, extra, l->text.data ? l->text.data : "",
				  l->text.len, j->head_only);
		logs_free(l);
		return;
	}
	/* Following: the exchange is the stream from here on, so that a client
	 * leaving during the first write is seen (on_follow_gone). */
	l->conn = c;
	l->stream.on_writable = on_follow_writable;
	l->stream.on_gone = on_follow_gone;
	floe__ctl_stream_start(c, &l->stream);
	struct floe_buf head = FLOE_BUF_INIT;
	floe_buf_printf(&head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s%s\r\n", TEXT_TYPE, extra,
			l->chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
	l->in_cb = true;
	floe_conn_write(c, head.data, head.len);
	l->in_cb = false;
	floe_buf_destroy(&head);
	/* The tail and what came while it was read; what the socket does not
	 * take now waits for on_writable. */
	floe_buf_append(&l->text, l->pending.data ? l->pending.data : "", l->pending.len);
	floe_buf_reset(&l->pending);
	if (l->gone || !follow_write(l, l->text.data, l->text.len)) {
		logs_free(l);
		return;
	}
	floe_buf_destroy(&l->text);
}

/* Parse replica, tail and follow into l; false after answering 400. */
static bool logs_params(struct floe_conn *c, struct floe_http_msg *msg, struct logs_req *l)
{
	const char *query = query_of(msg);
	char *v;
	int rc = floe_http_query_param(query, "tail", &v);
	l->tail = TAIL_DEFAULT;
	if (rc != 0) {
		char *end = NULL;
		unsigned long n = v && v[0] >= '0' && v[0] <= '9' ? strtoul(v, &end, 10) : 0;
		bool ok = rc > 0 && end && !*end && n <= TAIL_MAX;
		free(v);
		if (!ok) {
			floe_conn_error(c, 400, "bad_request",
					"tail: a number of lines from 0 to 100000", NULL);
			return false;
		}
		l->tail = (uint32_t)n;
	}
	rc = floe_http_query_param(query, "follow", &v);
	if (rc != 0) {
		bool yes = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
		bool no = v && (strcmp(v, "0") == 0 || strcmp(v, "false") == 0);
		free(v);
		if (!yes && !no) {
			floe_conn_error(c, 400, "bad_request", "follow: 1, true, 0 or false", NULL);
			return false;
		}
		l->follow = yes;
	}
	rc = floe_http_query_param(query, "replica", &v);
	if (rc < 0) {
		floe_conn_error(c, 400, "bad_request", "replica: not valid percent-encoding", NULL);
		return false;
	}
	if (v && v[0] && !replica_id_ok(l->name, v)) {
		char m[200];
		snprintf(m, sizeof(m), "no replica '%.80s' of endpoint %s", v, l->name);
		free(v);
		floe_conn_error(c, 404, "not_found", m, NULL);
		return false;
	}
	if (v)
		snprintf(l->id, sizeof(l->id), "%s", v);
	free(v);
	return true;
}

void floe__logs_route(struct floe_conn *c, struct floe_http_msg *msg, const char *name)
{
	struct floe_control *ctl = c->server->data;
	struct logs_req *l = xcalloc(1, sizeof(*l));
	l->fd_cur = l->fd_old = -1;
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (!logs_params(c, msg, l)) {
		free(l);
		return;
	}
	bool head_only = msg->method == HTTP_HEAD;
	if (head_only)
		l->follow = false; /* a HEAD has no body to stream */
	l->chunked = msg->major == 1 && msg->minor >= 1;
	l->log_dir = xasprintf("%s/logs/%s", floe_activator_data_dir(ctl->act), name);
	l->fol.on_data = on_follow_data;
	l->fol.on_end = on_follow_end;
	l->fol.data = l;

	struct floe_replica_log info;
	int rc = floe_activator_replica_log(ctl->act, name, l->id[0] ? l->id : NULL,
					    l->follow ? &l->fol : NULL, &info);
	if (rc == -ENOENT) {
		logs_free(l);
		floe_conn_error(c, 404, "not_found", "no such endpoint", NULL);
		return;
	}
	if (rc == 0) {
		/* Live: its files as they are on this turn (see the file comment). */
		snprintf(l->id, sizeof(l->id), "%s", info.id);
		l->following = info.following;
		l->limit = info.following ? info.offset : UINT64_MAX;
		l->fd_cur = open_ro(info.path);
		char *old = xasprintf("%s.1", info.path);
		l->fd_old = open_ro(old);
		free(old);
		free(info.path);
		if (l->fd_cur < 0 && l->fd_old < 0) {
			/* Both gone (an operator cleaning up): nothing but what comes. */
			l->fd_cur = open_ro("/dev/null");
			l->limit = 0;
		}
	}
	/* else -ESRCH: no live replica by that id; the pool looks for its file. */
	l->job.head_only = head_only;
	l->job.run = logs_work;
	l->job.finish = logs_done;
	floe__ctl_job_queue(c, &l->job);
}
