/*
 * Replica processes: real clone3 into new PID and network namespaces, the
 * real floe-init, real engines (sh, sleep, python3 -m http.server), a real
 * libuv loop. Every test ends with uv_loop_close() returning 0.
 *
 * Needs root (namespaces, setns) and FLOE_BUILD_DIR pointing at the build
 * root that holds floe-init (meson's test environment sets it).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "list.h"
#include "proc.h"

static char tmpdir[64];
static char init_path[4096];

static void setup(void)
{
	const char *build = getenv("FLOE_BUILD_DIR");
	cr_assert(build != NULL, "FLOE_BUILD_DIR must point at the build root (floe-init)");
	snprintf(init_path, sizeof(init_path), "%s/floe-init", build);
	cr_assert(access(init_path, X_OK) == 0, "%s: %s", init_path, strerror(errno));
	strcpy(tmpdir, "/tmp/floe-proc-XXXXXX");
	cr_assert(mkdtemp(tmpdir) != NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(proc, .init = setup, .fini = teardown);

static char *path_in_tmp(const char *name)
{
	static char paths[8][4096];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, 4096, "%s/%s", tmpdir, name);
	return p;
}

/* Whole file as a NUL-terminated string (NULL if it does not exist). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct floe_buf b = FLOE_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		floe_buf_append(&b, chunk, n);
	fclose(f);
	floe_buf_append(&b, "", 0);
	if (len)
		*len = b.len;
	return floe_buf_steal(&b, NULL);
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* --- one replica on a loop, with a watchdog ------------------------------ */

struct run {
	uv_loop_t loop;
	struct floe_proc p;
	uv_timer_t watchdog;
	uv_timer_t tick; /* optional per-test poller */
	void (*on_tick)(struct run *r);
	void (*on_exit)(struct run *r); /* optional, before close */
	int exit_calls;
	int status;
	int closed;
	int killed_by_watchdog;
	void *data;
};

static void on_closed(struct floe_proc *p)
{
	struct run *r = p->data;
	r->closed = 1;
	uv_close((uv_handle_t *)&r->watchdog, NULL);
	if (r->on_tick)
		uv_close((uv_handle_t *)&r->tick, NULL);
}

static void on_exit_close(struct floe_proc *p, int status)
{
	struct run *r = p->data;
	r->exit_calls++;
	r->status = status;
	cr_assert(p->exited, "exited is set before exit_cb");
	cr_assert_eq(p->exit_status, status);
	if (r->on_exit)
		r->on_exit(r);
	floe_proc_close(p, on_closed);
}

static void on_watchdog(uv_timer_t *t)
{
	struct run *r = container_of(t, struct run, watchdog);
	r->killed_by_watchdog = 1;
	floe_proc_signal(&r->p, SIGKILL);
}

static void on_tick(uv_timer_t *t)
{
	struct run *r = container_of(t, struct run, tick);
	if (!r->p.exited)
		r->on_tick(r);
}

static void run_start(struct run *r, char *const argv[], const struct floe_kv *env, size_t n_env,
		      const char *log, uint64_t log_max)
{
	cr_assert_eq(uv_loop_init(&r->loop), 0);
	struct floe_proc_spec spec = {
		.argv = argv,
		.env = env,
		.n_env = n_env,
		.init_path = init_path,
		.log_path = log,
		.log_max_bytes = log_max,
	};
	floe_error err = { 0 };
	int rc = floe_proc_spawn(&r->loop, &r->p, &spec, on_exit_close, &err);
	cr_assert_eq(rc, 0, "spawn: %s", err.msg);
	r->p.data = r;
	uv_timer_init(&r->loop, &r->watchdog);
	uv_timer_start(&r->watchdog, on_watchdog, 30000, 0);
	if (r->on_tick) {
		uv_timer_init(&r->loop, &r->tick);
		uv_timer_start(&r->tick, on_tick, 20, 20);
	}
}

static void run_finish(struct run *r)
{
	uv_run(&r->loop, UV_RUN_DEFAULT);
	cr_assert_eq(r->exit_calls, 1, "exit_cb runs exactly once");
	cr_assert(r->closed, "close_cb ran");
	cr_assert_not(r->killed_by_watchdog, "the replica had to be killed by the watchdog");
	cr_assert_eq(uv_loop_close(&r->loop), 0, "loop closes cleanly");
}

/* Spawn, wait for exit and close; returns the wait status. */
static int run_engine(char *const argv[], const char *log, uint64_t log_max)
{
	struct run r = { 0 };
	run_start(&r, argv, NULL, 0, log, log_max);
	run_finish(&r);
	return r.status;
}

/* --- /proc helpers --------------------------------------------------------- */

static int read_link(const char *path, char *out, size_t size)
{
	ssize_t n = readlink(path, out, size - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

static void pid_ns_of(pid_t pid, char *out, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	cr_assert_eq(read_link(path, out, size), 0, "%s", path);
}

/* cmdline with NULs turned into spaces ("" for zombies and kernel threads). */
static void cmdline_of(pid_t pid, char *out, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\0')
			out[i] = ' ';
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
}

/* State letter and parent of pid from /proc/PID/stat; 0 when gone. */
static char stat_of(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *s = strrchr(buf, ')');
	char state = 0;
	int pp = 0;
	if (!s || sscanf(s + 1, " %c %d", &state, &pp) != 2)
		return 0;
	if (ppid)
		*ppid = pp;
	return state;
}

/* Gone, or a zombie waiting for a reaper outside the test's control. */
static int proc_gone(pid_t pid)
{
	char st = stat_of(pid, NULL);
	return st == 0 || st == 'Z';
}

/* Processes in PID namespace `ns` (a /proc/PID/ns/pid link): the one whose
 * cmdline equals `cmd` (0 if none), and how many there are in all. */
static pid_t find_in_ns(const char *ns, const char *cmd, int *count)
{
	DIR *d = opendir("/proc");
	cr_assert(d);
	pid_t found = 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], link[128];
		snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
		if (read_link(path, link, sizeof(link)) < 0 || strcmp(link, ns) != 0)
			continue;
		n++;
		if (cmd) {
			char cl[256];
			cmdline_of((pid_t)pid, cl, sizeof(cl));
			if (strcmp(cl, cmd) == 0)
				found = (pid_t)pid;
		}
	}
	closedir(d);
	if (count)
		*count = n;
	return found;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- tests ------------------------------------------------------------------ */

Test(proc, exit_code_and_log)
{
	char *log = path_in_tmp("engine.log");
	char *argv[] = { "/bin/sh", "-c", "echo hello; echo err >&2; exit 3", NULL };
	int status = run_engine(argv, log, 1 << 20);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 3);
	char *text = slurp(log, NULL);
	cr_assert(text);
	/* stdout and stderr share the pipe, in order; floe-init adds nothing */
	cr_assert_str_eq(text, "hello\nerr\n");
	free(text);
	struct stat st;
	cr_assert_eq(stat(log, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
}

static void record_netns(struct run *r)
{
	struct stat *st = r->data;
	cr_assert(r->p.netns_fd >= 0);
	cr_assert_eq(fstat(r->p.netns_fd, st), 0);
}

Test(proc, fresh_pid_and_network_namespaces)
{
	char *log = path_in_tmp("engine.log");
	char *argv[] = {
		"sh", "-c",
		"echo pid=$$; cat /proc/net/dev; echo stdin=$(cat)=; echo env=$FOO,$HOME_OVERRIDE",
		NULL
	};
	struct floe_kv env[] = { { "FOO", "bar" },
				 { "HOME_OVERRIDE", "x" },
				 { "HOME_OVERRIDE", "y" } };
	struct stat replica_ns;
	struct run r = { .data = &replica_ns, .on_exit = record_netns };
	run_start(&r, argv, env, 3, log, 1 << 20);
	run_finish(&r);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);

	char *text = slurp(log, NULL);
	cr_assert(text);
	/* floe-init is PID 1, the engine its first child. */
	cr_assert(strstr(text, "pid=2\n"), "engine's pid inside: [%s]", text);
	cr_assert(strstr(text, "stdin==\n"), "stdin is /dev/null: [%s]", text);
	cr_assert(strstr(text, "env=bar,y\n"), "spec env overrides, last wins: [%s]", text);

	/* Only loopback exists in there. */
	int ifaces = 0, lo = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *colon = strchr(line, ':');
		if (!colon || strchr(line, '|'))
			continue;
		ifaces++;
		while (*line == ' ')
			line++;
		if (strncmp(line, "lo:", 3) == 0)
			lo = 1;
	}
	cr_assert_eq(ifaces, 1, "only one interface in the replica's netns");
	cr_assert(lo);
	free(text);

	struct stat own_ns;
	cr_assert_eq(stat("/proc/self/ns/net", &own_ns), 0);
	cr_assert(replica_ns.st_ino != own_ns.st_ino || replica_ns.st_dev != own_ns.st_dev,
		  "the replica has its own network namespace");
}

/* An HTTP client on the loop that reaches 127.0.0.1:8000 inside a replica's
 * network namespace, retrying while the server is still starting. */
struct client {
	uv_loop_t *loop;
	struct floe_proc *p;
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_write_t wr;
	uv_timer_t retry;
	struct floe_buf resp;
	int attempts;
	int done;
};

static void client_try(struct client *c);

static void on_retry(uv_timer_t *t)
{
	client_try(container_of(t, struct client, retry));
}

static void on_refused_closed(uv_handle_t *h)
{
	struct client *c = container_of((uv_tcp_t *)h, struct client, tcp);
	cr_assert(c->attempts < 400, "the server in the replica never accepted");
	uv_timer_start(&c->retry, on_retry, 25, 0);
}

static void on_client_done(uv_handle_t *h)
{
	struct client *c = container_of((uv_tcp_t *)h, struct client, tcp);
	c->done = 1;
	uv_close((uv_handle_t *)&c->retry, NULL);
	floe_proc_signal(c->p, SIGTERM);
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[4096];
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = container_of((uv_tcp_t *)s, struct client, tcp);
	if (nread > 0)
		floe_buf_append(&c->resp, buf->base, (size_t)nread);
	else if (nread < 0)
		uv_close((uv_handle_t *)s, on_client_done);
}

static void on_written(uv_write_t *w, int status)
{
	cr_assert_eq(status, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct client *c = container_of(req, struct client, conn);
	if (status < 0) {
		cr_assert_eq(status, UV_ECONNREFUSED, "connect: %s", uv_strerror(status));
		uv_close((uv_handle_t *)&c->tcp, on_refused_closed);
		return;
	}
	static char get[] = "GET /id.txt HTTP/1.0\r\nHost: replica\r\n\r\n";
	uv_buf_t b = uv_buf_init(get, sizeof(get) - 1);
	cr_assert_eq(uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written), 0);
	cr_assert_eq(uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read), 0);
}

static void client_try(struct client *c)
{
	c->attempts++;
	int fd = floe_netns_socket(c->p->netns_fd, AF_INET, SOCK_STREAM);
	cr_assert(fd >= 0, "floe_netns_socket: %s", strerror(-fd));
	cr_assert_eq(uv_tcp_init(c->loop, &c->tcp), 0);
	cr_assert_eq(uv_tcp_open(&c->tcp, fd), 0);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 8000, &sa);
	cr_assert_eq(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&sa, on_connect), 0);
}

struct http_replica {
	struct floe_proc p;
	struct client c;
	int exited;
	int closed;
	int status;
};

static uv_timer_t http_watchdog;
static int http_open, http_watchdog_fired;

static void http_closed(struct floe_proc *p)
{
	container_of(p, struct http_replica, p)->closed = 1;
	if (--http_open == 0)
		uv_close((uv_handle_t *)&http_watchdog, NULL);
}

static void on_http_watchdog(uv_timer_t *t)
{
	struct http_replica *reps = t->data;
	http_watchdog_fired = 1;
	for (int i = 0; i < 2; i++)
		floe_proc_signal(&reps[i].p, SIGKILL);
}

static void http_exited(struct floe_proc *p, int status)
{
	struct http_replica *h = container_of(p, struct http_replica, p);
	h->exited++;
	h->status = status;
	floe_proc_close(p, http_closed);
}

Test(proc, replicas_listen_on_the_same_port_each_in_its_own_netns)
{
	uv_loop_t loop;
	cr_assert_eq(uv_loop_init(&loop), 0);
	struct http_replica reps[2];
	memset(reps, 0, sizeof(reps));
	const char *names[2] = { "a", "b" };
	http_open = 2;
	uv_timer_init(&loop, &http_watchdog);
	http_watchdog.data = reps;
	uv_timer_start(&http_watchdog, on_http_watchdog, 30000, 0);

	for (int i = 0; i < 2; i++) {
		char *dir = path_in_tmp(names[i]);
		cr_assert_eq(mkdir(dir, 0755), 0);
		char file[4200];
		snprintf(file, sizeof(file), "%s/id.txt", dir);
		FILE *f = fopen(file, "w");
		cr_assert(f);
		fprintf(f, "replica-%s\n", names[i]);
		fclose(f);

		char *argv[] = { "python3",   "-m",          "http.server", "8000", "--bind",
				 "127.0.0.1", "--directory", dir,           NULL };
		char logname[16];
		snprintf(logname, sizeof(logname), "%s.log", names[i]);
		struct floe_proc_spec spec = {
			.argv = argv,
			.init_path = init_path,
			.log_path = path_in_tmp(logname),
			.log_max_bytes = 1 << 20,
		};
		floe_error err = { 0 };
		cr_assert_eq(floe_proc_spawn(&loop, &reps[i].p, &spec, http_exited, &err), 0, "%s",
			     err.msg);

		struct client *c = &reps[i].c;
		c->loop = &loop;
		c->p = &reps[i].p;
		uv_timer_init(&loop, &c->retry);
		client_try(c);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_not(http_watchdog_fired, "the replicas had to be killed by the watchdog");

	for (int i = 0; i < 2; i++) {
		struct http_replica *h = &reps[i];
		cr_assert(h->c.done);
		cr_assert_eq(h->exited, 1);
		cr_assert(h->closed);
		char want[32];
		snprintf(want, sizeof(want), "\r\n\r\nreplica-%s\n", names[i]);
		floe_buf_append(&h->c.resp, "", 0);
		cr_assert(strncmp(h->c.resp.data, "HTTP/1.0 200", 12) == 0, "response: [%s]",
			  h->c.resp.data);
		cr_assert(strstr(h->c.resp.data, want), "replica %s answered its own file: [%s]",
			  names[i], h->c.resp.data);
		/* python dies of the SIGTERM floe-init forwarded to it */
		cr_assert(WIFEXITED(h->status) && WEXITSTATUS(h->status) == 128 + SIGTERM,
			  "status %#x", h->status);
		floe_buf_destroy(&h->c.resp);
	}
	cr_assert_eq(uv_loop_close(&loop), 0);
}

static void term_when_ready(struct run *r)
{
	char *text = slurp(path_in_tmp("engine.log"), NULL);
	if (text && strstr(text, "ready\n") && !r->data) {
		cr_assert_eq(floe_proc_signal(&r->p, SIGTERM), 0);
		r->data = r; /* sent */
	}
	free(text);
}

Test(proc, sigterm_reaches_the_engine)
{
	char *argv[] = { "sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
			 NULL };
	struct run r = { .on_tick = term_when_ready };
	run_start(&r, argv, NULL, 0, path_in_tmp("engine.log"), 1 << 20);
	run_finish(&r);
	cr_assert(r.data, "SIGTERM was sent");
	cr_assert(WIFEXITED(r.status), "status %#x", r.status);
	cr_assert_eq(WEXITSTATUS(r.status), 7, "the engine's trap ran");
	cr_assert_eq(floe_proc_signal(&r.p, SIGTERM), -ESRCH, "no signals once exited");
}

Test(proc, sigterm_right_after_spawn_is_not_lost)
{
	/* Sent before floe-init can have set up anything: it must stay
	 * pending across execve and be forwarded, not be dropped by PID 1. */
	char *argv[] = { "sleep", "1000", NULL };
	struct run r = { 0 };
	run_start(&r, argv, NULL, 0, path_in_tmp("engine.log"), 1 << 20);
	cr_assert_eq(floe_proc_signal(&r.p, SIGTERM), 0);
	run_finish(&r);
	cr_assert(WIFEXITED(r.status), "status %#x", r.status);
	cr_assert_eq(WEXITSTATUS(r.status), 128 + SIGTERM);
}

struct orphan_state {
	char ns[128];
	pid_t orphan, bg;
	int phase;
};

static void orphan_tick(struct run *r)
{
	struct orphan_state *o = r->data;
	if (o->phase == 0) {
		if (!o->orphan)
			o->orphan = find_in_ns(o->ns, "sleep 999", NULL);
		if (!o->bg)
			o->bg = find_in_ns(o->ns, "sleep 1000", NULL);
		pid_t ppid = 0;
		/* wait until its subshell is gone and floe-init adopted it */
		if (o->orphan && o->bg && stat_of(o->orphan, &ppid) && ppid == r->p.pid) {
			cr_assert_eq(kill(o->orphan, SIGKILL), 0);
			o->phase = 1;
		}
	} else if (o->phase == 1 && stat_of(o->orphan, NULL) == 0) {
		/* reaped (a zombie would still be listed): let the engine exit */
		FILE *f = fopen(path_in_tmp("go"), "w");
		cr_assert(f);
		fclose(f);
		o->phase = 2;
	}
}

Test(proc, orphans_are_reaped_and_the_namespace_dies_with_init)
{
	char script[512];
	snprintf(script, sizeof(script),
		 "(sleep 999 &); sleep 1000 & while [ ! -e %s ]; do sleep 0.05; done; exit 0",
		 path_in_tmp("go"));
	char *argv[] = { "sh", "-c", script, NULL };
	struct orphan_state o = { 0 };
	struct run r = { .on_tick = orphan_tick, .data = &o };
	run_start(&r, argv, NULL, 0, path_in_tmp("engine.log"), 1 << 20);
	pid_ns_of(r.p.pid, o.ns, sizeof(o.ns));
	run_finish(&r);

	cr_assert_eq(o.phase, 2, "the orphan was adopted and reaped by floe-init");
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x", r.status);
	/* The engine left `sleep 1000` running; the kernel killed it with PID 1. */
	cr_assert(o.bg > 0);
	cr_assert_eq(stat_of(o.bg, NULL), 0, "the engine's background child is gone");
	int left = -1;
	find_in_ns(o.ns, NULL, &left);
	cr_assert_eq(left, 0, "nothing is left in the replica's PID namespace");
}

static void floed_child(int wfd, const char *log)
{
	uv_loop_t loop;
	struct floe_proc p;
	char *argv[] = { "sleep", "1000", NULL };
	struct floe_proc_spec spec = {
		.argv = argv,
		.init_path = init_path,
		.log_path = log,
		.log_max_bytes = 1 << 20,
	};
	floe_error err = { 0 };
	pid_t pid = -1;
	if (uv_loop_init(&loop) == 0 && floe_proc_spawn(&loop, &p, &spec, NULL, &err) == 0)
		pid = p.pid;
	if (write(wfd, &pid, sizeof(pid)) != sizeof(pid) || pid < 0)
		_exit(1);
	uv_run(&loop, UV_RUN_DEFAULT); /* until killed */
	_exit(0);
}

Test(proc, replicas_die_with_floed)
{
	int pfd[2];
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t floed = fork();
	cr_assert(floed >= 0);
	if (floed == 0) {
		close(pfd[0]);
		floed_child(pfd[1], path_in_tmp("engine.log"));
	}
	close(pfd[1]);
	struct pollfd pl = { .fd = pfd[0], .events = POLLIN };
	cr_assert_eq(poll(&pl, 1, 10000), 1, "the stand-in floed reported its replica");
	pid_t init_pid = -1;
	cr_assert_eq(read(pfd[0], &init_pid, sizeof(init_pid)), (ssize_t)sizeof(init_pid));
	close(pfd[0]);
	cr_assert(init_pid > 0, "spawn in the stand-in floed failed");

	char ns[128];
	pid_ns_of(init_pid, ns, sizeof(ns));
	pid_t sleeper = 0;
	for (double t0 = now_s(); !sleeper && now_s() - t0 < 10; usleep(20000))
		sleeper = find_in_ns(ns, "sleep 1000", NULL);
	cr_assert(sleeper > 0, "the engine started");

	cr_assert_eq(kill(floed, SIGKILL), 0);
	int st;
	cr_assert_eq(waitpid(floed, &st, 0), floed);

	int gone = 0;
	for (double t0 = now_s(); !gone && now_s() - t0 < 10; usleep(20000))
		gone = proc_gone(init_pid) && proc_gone(sleeper);
	cr_assert(gone, "floe-init %d and its engine %d outlived floed", init_pid, sleeper);
}

Test(proc, log_is_capped_with_one_rotated_generation)
{
	char *log = path_in_tmp("engine.log");
	char old[4200];
	snprintf(old, sizeof(old), "%s.1", log);
	char *argv[] = { "sh", "-c", "head -c 102400 /dev/zero | tr '\\0' x", NULL };
	int status = run_engine(argv, log, 16384);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	off_t cur = file_size(log), prev = file_size(old);
	cr_assert(cur > 0 && cur <= 16384, "LOG is %lld bytes", (long long)cur);
	cr_assert(prev > 0 && prev <= 16384, "LOG.1 is %lld bytes", (long long)prev);
	size_t len;
	char *text = slurp(old, &len);
	cr_assert(text);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(text[i], 'x', "engine output only");
	free(text);
}

Test(proc, engine_exec_failure)
{
	char *log = path_in_tmp("engine.log");
	char *argv[] = { "/nonexistent/engine", "--port", "8000", NULL };
	int status = run_engine(argv, log, 1 << 20);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 127, "status %#x", status);
	char *text = slurp(log, NULL);
	cr_assert(text);
	cr_assert(strstr(text, "floe-init: exec /nonexistent/engine: No such file or directory"),
		  "log says why: [%s]", text);
	free(text);
}

Test(proc, init_exec_failure)
{
	char *log = path_in_tmp("engine.log");
	strcpy(init_path, "/nonexistent/floe-init");
	char *argv[] = { "true", NULL };
	int status = run_engine(argv, log, 1 << 20);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 127, "status %#x", status);
	char *text = slurp(log, NULL);
	cr_assert(text);
	cr_assert(strstr(text, "exec /nonexistent/floe-init: ENOENT"), "log says why: [%s]", text);
	free(text);
}

Test(proc, bad_spec_and_unwritable_log_are_refused)
{
	uv_loop_t loop;
	cr_assert_eq(uv_loop_init(&loop), 0);
	struct floe_proc p;
	char *argv[] = { "true", NULL };
	struct floe_proc_spec spec = {
		.argv = argv,
		.init_path = init_path,
		.log_path = "/nonexistent/dir/x.log",
	};
	floe_error err = { 0 };
	cr_assert_eq(floe_proc_spawn(&loop, &p, &spec, NULL, &err), -ENOENT);
	cr_assert(strstr(err.msg, "/nonexistent/dir/x.log"), "%s", err.msg);
	spec.argv = NULL;
	cr_assert_eq(floe_proc_spawn(&loop, &p, &spec, NULL, &err), -EINVAL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

static void closed_early(struct floe_proc *p)
{
	*(int *)p->data = 1;
}

static void never_exit_cb(struct floe_proc *p, int status)
{
	cr_assert_fail("exit_cb after close");
}

Test(proc, close_while_running_kills_and_reaps)
{
	uv_loop_t loop;
	cr_assert_eq(uv_loop_init(&loop), 0);
	struct floe_proc p;
	char *argv[] = { "sleep", "1000", NULL };
	struct floe_proc_spec spec = {
		.argv = argv,
		.init_path = init_path,
		.log_path = path_in_tmp("engine.log"),
	};
	floe_error err = { 0 };
	cr_assert_eq(floe_proc_spawn(&loop, &p, &spec, never_exit_cb, &err), 0, "%s", err.msg);
	int closed = 0;
	p.data = &closed;
	pid_t pid = p.pid;
	floe_proc_close(&p, closed_early);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert(closed);
	cr_assert_eq(stat_of(pid, NULL), 0, "killed and reaped");
	cr_assert_eq(uv_loop_close(&loop), 0);
}

/* Connect a non-blocking socket to 127.0.0.1:port; 0 or -errno. */
static int connect_loopback(int fd, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	struct pollfd pl = { .fd = fd, .events = POLLOUT };
	cr_assert_eq(poll(&pl, 1, 10000), 1);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl), 0);
	return -soerr;
}

Test(proc, netns_socket_lives_in_the_replica_and_its_cost)
{
	char *argv[] = { "sleep", "1000", NULL };
	struct run r = { 0 };
	run_start(&r, argv, NULL, 0, path_in_tmp("engine.log"), 1 << 20);
	cr_assert(r.p.netns_fd >= 0);
	cr_assert_eq(floe_netns_socket(-1, AF_INET, SOCK_STREAM), -EBADF);

	/* A listener in our own namespace is reachable from our sockets and
	 * not from one made in the replica: its loopback is another one. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	uint16_t port = ntohs(sa.sin_port);
	int own = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect_loopback(own, port), 0);
	close(own);
	int fd = floe_netns_socket(r.p.netns_fd, AF_INET, SOCK_STREAM);
	cr_assert(fd >= 0, "%s", strerror(-fd));
	cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	cr_assert_eq(connect_loopback(fd, port), -ECONNREFUSED);
	close(fd);
	close(lfd);

	struct stat before, after;
	cr_assert_eq(stat("/proc/thread-self/ns/net", &before), 0);
	enum {
		N = 10000
	};
	double t0 = now_s();
	for (int i = 0; i < N; i++) {
		fd = floe_netns_socket(r.p.netns_fd, AF_INET, SOCK_STREAM);
		cr_assert(fd >= 0, "%s", strerror(-fd));
		close(fd);
	}
	double per_call = (now_s() - t0) / N * 1e6;
	cr_assert_eq(stat("/proc/thread-self/ns/net", &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino, "the thread is back in its own namespace");
	t0 = now_s();
	for (int i = 0; i < N; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		cr_assert(fd >= 0);
		close(fd);
	}
	double plain = (now_s() - t0) / N * 1e6;
	/* figures for the report, not assertions */
	fprintf(stderr,
		"floe_netns_socket: %.2f us per call (setns, socket, setns, plus close); "
		"plain socket+close: %.2f us\n",
		per_call, plain);

	cr_assert_eq(floe_proc_signal(&r.p, SIGKILL), 0);
	run_finish(&r);
	cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL, "status %#x", r.status);
}
