/*
 * Integration-test harness (see harness.h). Library code only: no main and
 * no criterion tests, since every itest_* executable links it.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "xalloc.h"

#define HEALTH_WAIT_MS 15000
#define STOP_WAIT_MS 15000
#define LEFTOVER_WAIT_MS 5000
#define DEFAULT_HTTP_TIMEOUT_MS 30000L
#define MAX_REGISTERED 16

/* ------------------------------------------------------------------ */
/* Basics */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	/* curl_global_init is not thread-safe: done once, before any thread. */
	curl_global_init(CURL_GLOBAL_ALL);
	/* A server closing on us must show as EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
}

static void ensure_init(void)
{
	pthread_once(&init_once, global_init);
}

int64_t harness_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

char *harness_mkdtemp(void)
{
	char *path = xstrdup("/tmp/floe-itest-XXXXXX");
	if (!mkdtemp(path)) {
		cr_assert_fail("mkdtemp: %s", strerror(errno));
	}
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void harness_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int harness_write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			close(fd);
			return err;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0)
		return -errno;
	return 0;
}

char *harness_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct floe_buf b = FLOE_BUF_INIT;
	char tmp[8192];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		floe_buf_append(&b, tmp, (size_t)n);
	}
	close(fd);
	if (!b.data)
		floe_buf_append(&b, "", 0);
	if (len)
		*len = b.len;
	return floe_buf_steal(&b, NULL);
}

int harness_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
	socklen_t sl = sizeof(sa);
	cr_assert(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static const char *build_dir(void)
{
	const char *d = getenv("FLOE_BUILD_DIR");
	cr_assert(d && *d, "FLOE_BUILD_DIR is not set (meson test sets it)");
	return d;
}

static bool keep_tmp(void)
{
	const char *k = getenv("FLOE_TEST_KEEP");
	return k && *k && strcmp(k, "0") != 0;
}

/* Decode a wait status the way a shell does. */
static int exit_code_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/*
 * fork + exec with stdout/stderr to log_path. The child dies with the test
 * worker (PDEATHSIG), so a criterion timeout cannot leak a floed; ignored
 * signals (our SIGPIPE) are reset because exec keeps them ignored.
 */
static pid_t spawn(char *const argv[], const char *log_path)
{
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int in = open("/dev/null", O_RDONLY);
		int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (in < 0 || out < 0)
			_exit(127);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		close_range(3, ~0U, 0);
		execv(argv[0], argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Wait for pid, at most timeout_ms. Returns the exit code or -1 if it runs on. */
static int wait_pid(pid_t pid, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return exit_code_of(status);
		if (r < 0 && errno != EINTR)
			return -2; /* not our child any more */
		if (harness_now_ms() >= deadline)
			return -1;
		harness_sleep_ms(20);
	}
}

/* ------------------------------------------------------------------ */
/* Registry, for cleanup after a failed assertion */

static struct floed *reg_floed[MAX_REGISTERED];
static struct sim *reg_sim[MAX_REGISTERED];

static void reg_add(void **arr, void *p)
{
	for (int i = 0; i < MAX_REGISTERED; i++) {
		if (!arr[i]) {
			arr[i] = p;
			return;
		}
	}
	cr_assert_fail("harness: too many processes registered");
}

static void reg_del(void **arr, void *p)
{
	for (int i = 0; i < MAX_REGISTERED; i++)
		if (arr[i] == p)
			arr[i] = NULL;
}

void harness_test_init(void)
{
	ensure_init();
}

void harness_test_fini(void)
{
	for (int i = 0; i < MAX_REGISTERED; i++) {
		struct floed *f = reg_floed[i];
		if (!f)
			continue;
		/* The test did not stop it itself: it aborted on a failure. */
		fprintf(stderr, "harness: test ended with floed (pid %d) running; its log:\n",
			(int)f->pid);
		floed_print_log(f, 80);
		floed_stop(f);
	}
	for (int i = 0; i < MAX_REGISTERED; i++)
		if (reg_sim[i])
			sim_stop(reg_sim[i]);
}

/* ------------------------------------------------------------------ */
/* floed */

/*
 * The echo engine for `engine: custom`: a threaded HTTP/1.1 server (keep-
 * alive, chunked request bodies) answering with what it received.
 */
static const char echo_py[] =
	"import http.server, json, sys, threading\n"
	"port = int(sys.argv[1])\n"
	"lock = threading.Lock()\n"
	"count = 0\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"    def body(self):\n"
	"        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():\n"
	"            data = b''\n"
	"            while True:\n"
	"                size = int(self.rfile.readline().split(b';')[0].strip(), 16)\n"
	"                if size == 0:\n"
	"                    while self.rfile.readline() not in (b'\\r\\n', b'\\n', b''):\n"
	"                        pass\n"
	"                    return data\n"
	"                data += self.rfile.read(size)\n"
	"                self.rfile.readline()\n"
	"        n = int(self.headers.get('Content-Length', '0') or 0)\n"
	"        return self.rfile.read(n) if n else b''\n"
	"    def handle_any(self):\n"
	"        global count\n"
	"        body = self.body()\n"
	"        extra = []\n"
	"        if self.path == '/health':\n"
	"            out = b'{\"status\":\"ok\"}'\n"
	"        else:\n"
	"            with lock:\n"
	"                count += 1\n"
	"                c = count\n"
	"            out = json.dumps({'method': self.command, 'path': self.path,\n"
	"                              'headers': [[k, v] for k, v in self.headers.items()],\n"
	"                              'body': body.decode('latin-1'), 'count': c}).encode()\n"
	"            if self.path.startswith('/hop'):\n"
	"                extra = [('Connection', 'X-Resp-Hop'), ('X-Resp-Hop', '1'),\n"
	"                         ('Keep-Alive', 'timeout=5'), ('X-Resp-End', '1')]\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Type', 'application/json')\n"
	"        self.send_header('Content-Length', str(len(out)))\n"
	"        for k, v in extra:\n"
	"            self.send_header(k, v)\n"
	"        self.end_headers()\n"
	"        self.wfile.write(out)\n"
	"    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any\n"
	"http.server.ThreadingHTTPServer.daemon_threads = True\n"
	"http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()\n";

/* Replace every occurrence of `from` in *s by `to`. */
static void replace_all(char **s, const char *from, const char *to)
{
	struct floe_buf out = FLOE_BUF_INIT;
	const char *p = *s;
	size_t fl = strlen(from);
	const char *hit;
	while ((hit = strstr(p, from))) {
		floe_buf_append(&out, p, (size_t)(hit - p));
		floe_buf_puts(&out, to);
		p = hit + fl;
	}
	floe_buf_puts(&out, p);
	free(*s);
	*s = floe_buf_steal(&out, NULL);
}

static const char *log_level(void)
{
	const char *level = getenv("FLOE_TEST_LOG_LEVEL");
	return level && *level ? level : "debug";
}

static void write_config(struct floed *f, const char *yaml)
{
	if (yaml != f->yaml) {
		free(f->yaml);
		f->yaml = xstrdup(yaml);
	}
	char *body = xstrdup(yaml);
	replace_all(&body, "@ECHO_PY@", f->echo_py);
	replace_all(&body, "@DIR@", f->dir);
	char *text = xasprintf("listen: 127.0.0.1:%d\n"
			       "api_listen: 127.0.0.1:%d\n"
			       "data_dir: %s\n"
			       "log_level: %s\n"
			       "%s",
			       f->port, f->api_port, f->data_dir, log_level(), body);
	int r = harness_write_file(f->config_path, text, strlen(text));
	cr_assert(r == 0, "write %s: %s", f->config_path, strerror(-r));
	free(text);
	free(body);
}

static void floed_free(struct floed *f)
{
	if (!keep_tmp())
		harness_rmtree(f->dir);
	else
		fprintf(stderr, "harness: kept %s\n", f->dir);
	free(f->dir);
	free(f->config_path);
	free(f->data_dir);
	free(f->log_path);
	free(f->echo_py);
	free(f->yaml);
	free(f);
}

struct floed *floed_start(const char *yaml)
{
	return floed_start_argv(yaml, NULL);
}

/* Spawn floed for f (ports and files already set). */
static void floed_spawn(struct floed *f, bool with_config, const char *const *extra_args)
{
	char *exe = xasprintf("%s/floed", build_dir());
	char listen[32], api[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
	snprintf(api, sizeof(api), "127.0.0.1:%d", f->api_port);
	char *argv[64];
	int n = 0;
	argv[n++] = exe;
	if (with_config) {
		argv[n++] = "--config";
		argv[n++] = f->config_path;
	}
	for (size_t i = 0; extra_args && extra_args[i] && n < 50; i++)
		argv[n++] = (char *)extra_args[i];
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--api-listen";
	argv[n++] = api;
	argv[n++] = "--data-dir";
	argv[n++] = f->data_dir;
	argv[n++] = "--log-level";
	argv[n++] = (char *)log_level();
	argv[n] = NULL;
	f->pid = spawn(argv, f->log_path);
	f->exited = false;
	free(exe);
}

static void wait_healthy(struct floed *f, const char *yaml, const char *const *extra_args);

static void pick_ports(struct floed *f)
{
	f->port = harness_free_port();
	do
		f->api_port = harness_free_port();
	while (f->api_port == f->port);
}

struct floed *floed_start_argv(const char *yaml, const char *const *extra_args)
{
	ensure_init();
	struct floed *f = xcalloc(1, sizeof(*f));
	f->dir = harness_mkdtemp();
	f->config_path = xasprintf("%s/floed.yaml", f->dir);
	f->data_dir = xasprintf("%s/data", f->dir);
	f->log_path = xasprintf("%s/floed.log", f->dir);
	f->echo_py = xasprintf("%s/echo.py", f->dir);
	cr_assert(harness_write_file(f->echo_py, echo_py, strlen(echo_py)) == 0);
	pick_ports(f);
	if (yaml)
		write_config(f, yaml);
	floed_spawn(f, yaml != NULL, extra_args);
	reg_add((void **)reg_floed, f);
	wait_healthy(f, yaml, extra_args);
	return f;
}

void floed_restart(struct floed *f)
{
	cr_assert(f->exited, "floed_restart: floed (pid %d) is still running", (int)f->pid);
	floed_spawn(f, true, NULL);
	wait_healthy(f, f->yaml, NULL);
}

/* Ready when the control plane answers /healthz (retrying on fresh ports
 * when the ones picked were taken meanwhile). */
static void wait_healthy(struct floed *f, const char *yaml, const char *const *extra_args)
{
	int64_t deadline = harness_now_ms() + HEALTH_WAIT_MS;
	long st = 0;
	int retries = 0;
	for (;;) {
		int code = floed_wait(f, 0);
		if (code >= 0) {
			/* A port picked as free can be taken by someone else
			 * before floed binds it: try fresh ones. */
			char *log = floed_read_log(f);
			bool in_use = strstr(log, "in use") != NULL;
			free(log);
			if (in_use && retries++ < 3) {
				fprintf(stderr,
					"harness: floed could not bind its ports, retrying\n");
				pick_ports(f);
				if (yaml)
					write_config(f, yaml);
				truncate(f->log_path, 0);
				floed_spawn(f, yaml != NULL, extra_args);
				continue;
			}
			floed_print_log(f, 60);
			cr_assert_fail("floed exited with %d before answering /healthz", code);
		}
		struct http_resp r;
		struct http_req req = { .url = floed_api_url(f, "/healthz"), .timeout_ms = 1000 };
		st = http_do(&req, &r);
		http_resp_free(&r);
		if (st == 200)
			break;
		if (harness_now_ms() >= deadline) {
			floed_print_log(f, 60);
			cr_assert_fail(
				"floed did not answer GET /healthz 200 within %d ms (last status %ld)",
				HEALTH_WAIT_MS, st);
		}
		harness_sleep_ms(50);
	}
}

struct floed *floed_start_with_tokens(struct harness_tokens *t, const char *yaml)
{
	char alice_hash[65], bob_hash[65];
	cr_assert_eq(floe_auth_token_new(t->alice, alice_hash), 0);
	cr_assert_eq(floe_auth_token_new(t->bob, bob_hash), 0);
	return floed_startf("auth:\n  tokens:\n    - {namespace: alice, sha256: %s}\n"
			    "    - {namespace: bob, sha256: %s}\n%s",
			    alice_hash, bob_hash, yaml);
}

struct floed *floed_startf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *yaml;
	if (vasprintf(&yaml, fmt, ap) < 0)
		abort();
	va_end(ap);
	struct floed *f = floed_start(yaml);
	free(yaml);
	return f;
}

void floed_reload(struct floed *f, const char *yaml)
{
	write_config(f, yaml);
	cr_assert(floed_signal(f, SIGHUP) == 0, "SIGHUP to floed failed");
}

int floed_signal(struct floed *f, int sig)
{
	if (f->exited)
		return -ESRCH;
	return kill(f->pid, sig) == 0 ? 0 : -errno;
}

int floed_wait(struct floed *f, int timeout_ms)
{
	if (f->exited)
		return f->exit_code;
	int code = wait_pid(f->pid, timeout_ms);
	if (code == -1)
		return -1;
	f->exited = true;
	f->exit_code = code;
	return code;
}

struct floed_exit floed_stop(struct floed *f)
{
	struct floed_exit e = { 0, 0 };
	pid_t pids[256];
	size_t n = 0;
	bool was_exited = f->exited;
	reg_del((void **)reg_floed, f);
	if (!f->exited) {
		n = floed_replica_pids(f, pids, 256);
		if (n > 256)
			n = 256;
		kill(f->pid, SIGTERM);
		e.code = floed_wait(f, STOP_WAIT_MS);
		if (e.code == -1) {
			fprintf(stderr,
				"harness: floed (pid %d) still running %d ms after SIGTERM, SIGKILL\n",
				(int)f->pid, STOP_WAIT_MS);
			kill(f->pid, SIGKILL);
			floed_wait(f, 5000);
			e.code = -1;
		}
	} else {
		e.code = f->exit_code;
	}
	int64_t deadline = harness_now_ms() + LEFTOVER_WAIT_MS;
	for (size_t i = 0; i < n; i++) {
		while (proc_alive(pids[i]) && harness_now_ms() < deadline)
			harness_sleep_ms(50);
		if (proc_alive(pids[i])) {
			e.leftover++;
			fprintf(stderr, "harness: replica process %d outlived floed, SIGKILL\n",
				(int)pids[i]);
			kill(pids[i], SIGKILL);
		}
	}
	/* An exit the test already collected (kill -9 tests) is its business. */
	if ((!was_exited && e.code != 0) || e.leftover)
		floed_print_log(f, 60);
	floed_free(f);
	return e;
}

static void print_tail(const char *title, const char *path, int lines)
{
	char *text = harness_read_file(path, NULL);
	if (!text)
		return;
	size_t len = strlen(text);
	const char *p = text + len;
	int seen = 0;
	while (p > text) {
		if (p[-1] == '\n' && p != text + len && ++seen >= lines)
			break;
		p--;
	}
	fprintf(stderr, "---- %s (%s), last %d lines ----\n%s%s---- end ----\n", title, path, lines,
		p, (len && text[len - 1] != '\n') ? "\n" : "");
	free(text);
}

void floed_print_log(struct floed *f, int lines)
{
	print_tail("floed log", f->log_path, lines);
	/* Engine logs: DATA_DIR/logs/ENDPOINT/ENDPOINT-N.log */
	char *logs = xasprintf("%s/logs", f->data_dir);
	DIR *d = opendir(logs);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *sub = xasprintf("%s/%s", logs, de->d_name);
			DIR *d2 = opendir(sub);
			if (d2) {
				struct dirent *de2;
				while ((de2 = readdir(d2))) {
					if (de2->d_name[0] == '.')
						continue;
					char *p = xasprintf("%s/%s", sub, de2->d_name);
					print_tail("engine log", p, 10);
					free(p);
				}
				closedir(d2);
			}
			free(sub);
		}
		closedir(d);
	}
	free(logs);
}

char *floed_read_log(struct floed *f)
{
	char *s = harness_read_file(f->log_path, NULL);
	return s ? s : xstrdup("");
}

static const char *url_ring(int port, const char *path)
{
	static char ring[16][2048];
	static unsigned next;
	char *b = ring[next++ % 16];
	snprintf(b, sizeof(ring[0]), "http://127.0.0.1:%d%s", port, path);
	return b;
}

const char *floed_url(const struct floed *f, const char *path)
{
	return url_ring(f->port, path);
}

const char *floed_api_url(const struct floed *f, const char *path)
{
	return url_ring(f->api_port, path);
}

void floed_run(const char *config_text, const char *const *extra_args, int timeout_ms,
	       struct floed_run *out)
{
	ensure_init();
	memset(out, 0, sizeof(*out));
	char *dir = harness_mkdtemp();
	char *log = xasprintf("%s/out.log", dir);
	char *data = xasprintf("%s/data", dir);
	char *listen = xasprintf("127.0.0.1:%d", harness_free_port());
	char *api = xasprintf("127.0.0.1:%d", harness_free_port());
	char *exe = xasprintf("%s/floed", build_dir());
	char *argv[64];
	int n = 0;
	argv[n++] = exe;
	if (config_text) {
		out->config_path = xasprintf("%s/floed.yaml", dir);
		harness_write_file(out->config_path, config_text, strlen(config_text));
		argv[n++] = "--config";
		argv[n++] = out->config_path;
	}
	for (size_t i = 0; extra_args && extra_args[i] && n < 50; i++)
		argv[n++] = (char *)extra_args[i];
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--api-listen";
	argv[n++] = api;
	argv[n++] = "--data-dir";
	argv[n++] = data;
	argv[n] = NULL;
	pid_t pid = spawn(argv, log);
	out->code = wait_pid(pid, timeout_ms);
	if (out->code == -1) {
		kill(pid, SIGKILL);
		wait_pid(pid, 5000);
	}
	out->output = harness_read_file(log, NULL);
	if (!out->output)
		out->output = xstrdup("");
	harness_rmtree(dir);
	free(dir);
	free(log);
	free(data);
	free(listen);
	free(api);
	free(exe);
}

void floed_run_free(struct floed_run *r)
{
	free(r->output);
	free(r->config_path);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------ */
/* HTTP */

struct upload {
	const char *data;
	size_t len, off, chunk;
};

static void resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof(*r));
	floe_buf_init(&r->head);
	floe_buf_init(&r->body);
	atomic_init(&r->bytes, 0);
	atomic_init(&r->abort, false);
}

static size_t write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct http_resp *r = ud;
	size_t len = sz * nm;
	if (atomic_load(&r->abort))
		return 0; /* CURLE_WRITE_ERROR: the client goes away */
	if (r->n_chunks == r->cap_chunks) {
		r->cap_chunks = r->cap_chunks ? r->cap_chunks * 2 : 64;
		r->chunks = xrealloc(r->chunks, r->cap_chunks * sizeof(*r->chunks));
	}
	r->chunks[r->n_chunks++] = (struct http_chunk){ harness_now_ms(), r->body.len, len };
	floe_buf_append(&r->body, p, len);
	atomic_fetch_add(&r->bytes, len);
	return len;
}

static size_t header_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct http_resp *r = ud;
	size_t len = sz * nm;
	/* A new status line starts a new head (after 100 Continue). */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
		floe_buf_reset(&r->head);
	floe_buf_append(&r->head, p, len);
	return len;
}

static int xferinfo_cb(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a;
	(void)b;
	(void)c;
	(void)d;
	struct http_resp *r = ud;
	return atomic_load(&r->abort) ? 1 : 0;
}

static size_t read_cb(char *buf, size_t sz, size_t nm, void *ud)
{
	struct upload *u = ud;
	size_t max = sz * nm;
	size_t k = u->len - u->off;
	if (k > u->chunk)
		k = u->chunk;
	if (k > max)
		k = max;
	memcpy(buf, u->data + u->off, k);
	u->off += k;
	return k;
}

/* Configure e for req; *hl and *up belong to the caller until the transfer ends. */
static void easy_setup(CURL *e, const struct http_req *req, struct http_resp *resp,
		       struct upload *up, struct curl_slist **hl)
{
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_HTTP_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, resp);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, resp->error);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);

	/* No Expect: 100-continue: bodies go out at once (floed is tested on
	 * what it does with them, not on curl's 1 s wait). */
	*hl = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; req->headers && req->headers[i]; i++)
		*hl = curl_slist_append(*hl, req->headers[i]);
	if (req->bearer) {
		char auth[256];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", req->bearer);
		*hl = curl_slist_append(*hl, auth);
	}

	if (req->body) {
		size_t len = req->body_len ? req->body_len : strlen(req->body);
		if (req->chunked) {
			*up = (struct upload){ req->body, len, 0,
					       req->chunk_size ? req->chunk_size : 7 };
			*hl = curl_slist_append(*hl, "Transfer-Encoding: chunked");
			curl_easy_setopt(e, CURLOPT_POST, 1L);
			curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
			curl_easy_setopt(e, CURLOPT_READDATA, up);
		} else {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
		}
		if (req->method && strcmp(req->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (req->method && strcmp(req->method, "GET") != 0) {
		if (strcmp(req->method, "POST") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		} else {
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hl);
	resp->t_start_ms = harness_now_ms();
}

static void easy_finish(CURL *e, CURLcode code, struct http_resp *resp)
{
	resp->t_end_ms = harness_now_ms();
	resp->code = code;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &resp->num_connects);
	if (!resp->body.data)
		floe_buf_append(&resp->body, "", 0);
	if (!resp->head.data)
		floe_buf_append(&resp->head, "", 0);
}

long http_do(const struct http_req *req, struct http_resp *resp)
{
	ensure_init();
	CURL *e = req->easy;
	if (e)
		curl_easy_reset(e); /* keeps the connection cache: that is the point */
	else
		e = curl_easy_init();
	struct upload up;
	struct curl_slist *hl = NULL;
	resp_init(resp);
	easy_setup(e, req, resp, &up, &hl);
	CURLcode code = curl_easy_perform(e);
	easy_finish(e, code, resp);
	/* The handle keeps a pointer to the list until reset or cleanup. */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	if (!req->easy)
		curl_easy_cleanup(e);
	return resp->status;
}

long http_get(const char *url, struct http_resp *resp)
{
	struct http_req req = { .url = url };
	return http_do(&req, resp);
}

long http_post(const char *url, const char *body, struct http_resp *resp, ...)
{
	const char *headers[32];
	size_t n = 0;
	va_list ap;
	va_start(ap, resp);
	const char *h;
	while ((h = va_arg(ap, const char *)) && n < 31)
		headers[n++] = h;
	va_end(ap);
	headers[n] = NULL;
	struct http_req req = { .method = "POST",
				.url = url,
				.body = body ? body : "",
				.headers = headers };
	return http_do(&req, resp);
}

long http_status(const char *method, const char *url, const char *body)
{
	static const char *const json[] = { "Content-Type: application/json", NULL };
	struct http_req req = { .method = method,
				.url = url,
				.body = body,
				.headers = body ? json : NULL };
	struct http_resp r;
	long st = http_do(&req, &r);
	http_resp_free(&r);
	return st;
}

void http_resp_free(struct http_resp *resp)
{
	floe_buf_destroy(&resp->head);
	floe_buf_destroy(&resp->body);
	free(resp->chunks);
	resp->chunks = NULL;
	resp->n_chunks = resp->cap_chunks = 0;
}

/* Calls fn(name, name_len, value, value_len) for each header line of the head. */
static void each_header(const struct http_resp *resp,
			void (*fn)(void *, const char *, size_t, const char *, size_t), void *ud)
{
	const char *p = resp->head.data;
	const char *end = p ? p + resp->head.len : NULL;
	while (p && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon && memcmp(p, "HTTP/", 5) != 0) {
			const char *v = colon + 1;
			const char *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			fn(ud, p, (size_t)(colon - p), v, (size_t)(ve - v));
		}
		p = eol + 1;
	}
}

struct hdr_find {
	const char *name;
	char *value;
	int count;
};

static void hdr_find_cb(void *ud, const char *n, size_t nl, const char *v, size_t vl)
{
	struct hdr_find *h = ud;
	if (strlen(h->name) == nl && strncasecmp(h->name, n, nl) == 0) {
		free(h->value);
		h->value = xstrndup(v, vl);
		h->count++;
	}
}

char *http_header(const struct http_resp *resp, const char *name)
{
	struct hdr_find h = { name, NULL, 0 };
	each_header(resp, hdr_find_cb, &h);
	return h.value;
}

int http_header_count(const struct http_resp *resp, const char *name)
{
	struct hdr_find h = { name, NULL, 0 };
	each_header(resp, hdr_find_cb, &h);
	free(h.value);
	return h.count;
}

json_t *http_json(const struct http_resp *resp)
{
	if (!resp->body.data)
		return NULL;
	return json_loadb(resp->body.data, resp->body.len, 0, NULL);
}

const char *http_body(const struct http_resp *resp)
{
	return resp->body.data ? resp->body.data : "";
}

void http_assert_error(const struct http_resp *resp, long status, const char *type)
{
	cr_assert_eq(resp->status, status, "expected status %ld, got %ld (curl: %s) body: %.300s",
		     status, resp->status, resp->error, http_body(resp));
	char *ct = http_header(resp, "Content-Type");
	cr_assert(ct && strncasecmp(ct, "application/json", 16) == 0,
		  "error Content-Type is %s, want application/json", ct ? ct : "(none)");
	free(ct);
	json_t *j = http_json(resp);
	cr_assert(j, "error body is not JSON: %.300s", http_body(resp));
	json_t *err = json_object_get(j, "error");
	cr_assert(json_is_object(err), "no \"error\" object in %.300s", http_body(resp));
	cr_assert(json_is_string(json_object_get(err, "message")), "error.message missing: %.300s",
		  http_body(resp));
	const char *t = json_string_value(json_object_get(err, "type"));
	cr_assert(t && strcmp(t, type) == 0, "error.type is %s, want %s", t ? t : "(none)", type);
	json_t *code = json_object_get(err, "code");
	cr_assert(json_is_integer(code) && json_integer_value(code) == status,
		  "error.code is not %ld: %.300s", status, http_body(resp));
	json_decref(j);
}

void http_multi(const struct http_req *reqs, size_t n, struct http_resp *resps)
{
	ensure_init();
	CURLM *m = curl_multi_init();
	CURL **easies = xcalloc(n, sizeof(*easies));
	struct upload *ups = xcalloc(n, sizeof(*ups));
	struct curl_slist **hls = xcalloc(n, sizeof(*hls));
	long max_timeout = 0;
	for (size_t i = 0; i < n; i++) {
		easies[i] = curl_easy_init();
		resp_init(&resps[i]);
		easy_setup(easies[i], &reqs[i], &resps[i], &ups[i], &hls[i]);
		curl_easy_setopt(easies[i], CURLOPT_PRIVATE, (void *)(uintptr_t)i);
		curl_multi_add_handle(m, easies[i]);
		long t = reqs[i].timeout_ms > 0 ? reqs[i].timeout_ms : DEFAULT_HTTP_TIMEOUT_MS;
		if (t > max_timeout)
			max_timeout = t;
	}
	/* Each transfer has its own timeout; this deadline is a backstop. */
	int64_t deadline = harness_now_ms() + max_timeout + 10000;
	int running = 1;
	while (running && harness_now_ms() < deadline) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			void *priv;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			size_t i = (size_t)(uintptr_t)priv;
			easy_finish(msg->easy_handle, msg->data.result, &resps[i]);
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 200, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		if (!resps[i].t_end_ms) /* backstop hit: mark as failed */
			easy_finish(easies[i], CURLE_OPERATION_TIMEDOUT, &resps[i]);
		curl_multi_remove_handle(m, easies[i]);
		curl_easy_cleanup(easies[i]);
		curl_slist_free_all(hls[i]);
	}
	curl_multi_cleanup(m);
	free(easies);
	free(ups);
	free(hls);
}

struct http_bg {
	pthread_t thread;
	struct http_req req;
	char *url, *body, *method;
	char **headers;
	struct http_resp resp;
	atomic_bool done;
	bool joined;
};

static void *bg_main(void *arg)
{
	struct http_bg *bg = arg;
	CURL *e = curl_easy_init();
	struct upload up;
	struct curl_slist *hl = NULL;
	easy_setup(e, &bg->req, &bg->resp, &up, &hl);
	CURLcode code = curl_easy_perform(e);
	easy_finish(e, code, &bg->resp);
	curl_easy_cleanup(e);
	curl_slist_free_all(hl);
	atomic_store(&bg->done, true);
	return NULL;
}

struct http_bg *http_bg_start(const struct http_req *req)
{
	ensure_init();
	cr_assert(!req->easy, "http_bg_start: req->easy must be NULL");
	struct http_bg *bg = xcalloc(1, sizeof(*bg));
	bg->req = *req;
	bg->url = xstrdup(req->url);
	bg->req.url = bg->url;
	if (req->body) {
		size_t len = req->body_len ? req->body_len : strlen(req->body);
		bg->body = xmalloc(len + 1);
		memcpy(bg->body, req->body, len);
		bg->body[len] = 0;
		bg->req.body = bg->body;
		bg->req.body_len = len;
	}
	if (req->method) {
		bg->method = xstrdup(req->method);
		bg->req.method = bg->method;
	}
	size_t nh = 0;
	while (req->headers && req->headers[nh])
		nh++;
	bg->headers = xcalloc(nh + 1, sizeof(char *));
	for (size_t i = 0; i < nh; i++)
		bg->headers[i] = xstrdup(req->headers[i]);
	bg->req.headers = (const char *const *)bg->headers;
	resp_init(&bg->resp);
	atomic_init(&bg->done, false);
	int r = pthread_create(&bg->thread, NULL, bg_main, bg);
	cr_assert(r == 0, "pthread_create: %s", strerror(r));
	return bg;
}

size_t http_bg_bytes(struct http_bg *bg)
{
	return atomic_load(&bg->resp.bytes);
}

bool http_bg_done(struct http_bg *bg)
{
	return atomic_load(&bg->done);
}

void http_bg_abort(struct http_bg *bg)
{
	atomic_store(&bg->resp.abort, true);
}

struct http_resp *http_bg_wait(struct http_bg *bg, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	while (!atomic_load(&bg->done)) {
		if (harness_now_ms() >= deadline)
			return NULL;
		harness_sleep_ms(20);
	}
	if (!bg->joined) {
		pthread_join(bg->thread, NULL);
		bg->joined = true;
	}
	return &bg->resp;
}

void http_bg_free(struct http_bg *bg)
{
	if (!bg)
		return;
	if (!bg->joined) {
		atomic_store(&bg->resp.abort, true);
		pthread_join(bg->thread, NULL);
	}
	http_resp_free(&bg->resp);
	for (size_t i = 0; bg->headers[i]; i++)
		free(bg->headers[i]);
	free(bg->headers);
	free(bg->url);
	free(bg->body);
	free(bg->method);
	free(bg);
}

/* ------------------------------------------------------------------ */
/* Raw sockets */

int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int raw_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct raw_parse {
	struct raw_resp *out;
	bool in_value;
};

static int rp_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct raw_parse *rp = p->data;
	if (rp->in_value) {
		floe_buf_puts(&rp->out->head, "\n");
		rp->in_value = false;
	}
	floe_buf_append(&rp->out->head, at, len);
	return 0;
}

static int rp_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct raw_parse *rp = p->data;
	if (!rp->in_value) {
		floe_buf_puts(&rp->out->head, ": ");
		rp->in_value = true;
	}
	floe_buf_append(&rp->out->head, at, len);
	return 0;
}

static int rp_headers_complete(llhttp_t *p)
{
	struct raw_parse *rp = p->data;
	if (rp->in_value)
		floe_buf_puts(&rp->out->head, "\n");
	rp->in_value = false;
	rp->out->status = p->status_code;
	return 0;
}

static int rp_body(llhttp_t *p, const char *at, size_t len)
{
	struct raw_parse *rp = p->data;
	floe_buf_append(&rp->out->body, at, len);
	return 0;
}

static int rp_message_complete(llhttp_t *p)
{
	struct raw_parse *rp = p->data;
	rp->out->complete = true;
	return HPE_PAUSED; /* only the first response matters */
}

/* Parse the first response in out->data with llhttp. */
static void raw_parse(struct raw_resp *out)
{
	llhttp_settings_t s;
	llhttp_settings_init(&s);
	s.on_header_field = rp_header_field;
	s.on_header_value = rp_header_value;
	s.on_headers_complete = rp_headers_complete;
	s.on_body = rp_body;
	s.on_message_complete = rp_message_complete;
	llhttp_t p;
	llhttp_init(&p, HTTP_RESPONSE, &s);
	struct raw_parse rp = { out, false };
	p.data = &rp;
	floe_buf_reset(&out->head);
	floe_buf_reset(&out->body);
	out->status = 0;
	out->complete = false;
	out->parse_error = false;
	if (!out->data.len)
		return;
	llhttp_errno_t err = llhttp_execute(&p, out->data.data, out->data.len);
	if (err == HPE_OK && out->closed && !out->complete)
		err = llhttp_finish(&p); /* a body delimited by the close */
	if (err != HPE_OK && err != HPE_PAUSED)
		out->parse_error = true;
	if (!out->status && p.status_code)
		out->status = p.status_code;
}

void raw_read(int fd, int timeout_ms, struct raw_resp *out)
{
	memset(out, 0, sizeof(*out));
	int64_t deadline = harness_now_ms() + timeout_ms;
	char buf[16384];
	for (;;) {
		int64_t left = deadline - harness_now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { fd, POLLIN, 0 };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* EOF, or a reset (the server closed with our bytes unread). */
			out->closed = true;
			break;
		}
		floe_buf_append(&out->data, buf, (size_t)n);
	}
	if (!out->data.data)
		floe_buf_append(&out->data, "", 0);
	raw_parse(out);
	if (!out->body.data)
		floe_buf_append(&out->body, "", 0);
	if (!out->head.data)
		floe_buf_append(&out->head, "", 0);
}

int raw_exchange(int port, const void *data, size_t len, int timeout_ms, struct raw_resp *out)
{
	ensure_init();
	int fd = raw_connect(port);
	cr_assert(fd >= 0, "connect to 127.0.0.1:%d: %s", port, strerror(-fd));
	/* A send error is fine: the server may refuse before reading it all. */
	raw_send(fd, data, len);
	raw_read(fd, timeout_ms, out);
	close(fd);
	return out->status;
}

void raw_resp_free(struct raw_resp *r)
{
	floe_buf_destroy(&r->data);
	floe_buf_destroy(&r->body);
	floe_buf_destroy(&r->head);
}

/* ------------------------------------------------------------------ */
/* Metrics */

char *metrics_scrape(const struct floed *f)
{
	struct http_resp r;
	struct http_req req = { .url = floed_api_url(f, "/metrics"), .timeout_ms = 5000 };
	long st = http_do(&req, &r);
	char *out = NULL;
	if (st == 200)
		out = floe_buf_steal(&r.body, NULL);
	http_resp_free(&r);
	return out;
}

#define MAX_LABELS 16

struct series {
	char name[256];
	char keys[MAX_LABELS][64];
	char vals[MAX_LABELS][256];
	int n;
};

/* Parse `name{k="v",...}` at *pp; leaves *pp after the '}' (or the name). */
static bool parse_series(const char **pp, struct series *s)
{
	const char *p = *pp;
	size_t i = 0;
	memset(s, 0, sizeof(*s));
	while (*p && *p != '{' && *p != ' ' && *p != '\t' && *p != '\n' && i < sizeof(s->name) - 1)
		s->name[i++] = *p++;
	if (*p == '{') {
		p++;
		for (;;) {
			while (*p == ' ' || *p == ',')
				p++;
			if (*p == '}') {
				p++;
				break;
			}
			if (!*p || *p == '\n' || s->n == MAX_LABELS)
				return false;
			size_t k = 0;
			while (*p && *p != '=' && *p != '\n' && k < 63)
				s->keys[s->n][k++] = *p++;
			if (*p++ != '=' || *p++ != '"')
				return false;
			size_t v = 0;
			while (*p && *p != '"' && *p != '\n') {
				char c = *p++;
				if (c == '\\' && *p) {
					c = *p++;
					if (c == 'n')
						c = '\n';
				}
				if (v < 255)
					s->vals[s->n][v++] = c;
			}
			if (*p++ != '"')
				return false;
			s->n++;
		}
	}
	*pp = p;
	return true;
}

static bool series_equal(const struct series *a, const struct series *b)
{
	if (strcmp(a->name, b->name) != 0 || a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		bool found = false;
		for (int j = 0; j < b->n && !found; j++)
			found = strcmp(a->keys[i], b->keys[j]) == 0 &&
				strcmp(a->vals[i], b->vals[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

double metrics_find(const char *text, const char *series)
{
	if (!text)
		return -1;
	struct series want, got;
	const char *q = series;
	if (!parse_series(&q, &want))
		return -1;
	const char *line = text;
	while (*line) {
		const char *eol = strchr(line, '\n');
		if (!eol)
			eol = line + strlen(line);
		if (*line != '#' && line != eol) {
			const char *p = line;
			if (parse_series(&p, &got) && series_equal(&want, &got)) {
				while (*p == ' ' || *p == '\t')
					p++;
				char *end;
				double v = strtod(p, &end);
				if (end != p)
					return v;
			}
		}
		line = *eol ? eol + 1 : eol;
	}
	return -1;
}

double floed_metric(const struct floed *f, const char *series)
{
	char *text = metrics_scrape(f);
	double v = metrics_find(text, series);
	free(text);
	return v;
}

double floed_metric0(const struct floed *f, const char *series)
{
	double v = floed_metric(f, series);
	return v < 0 ? 0 : v;
}

bool metrics_has_family(const char *text, const char *family)
{
	if (!text)
		return false;
	size_t fl = strlen(family);
	static const char *const suffixes[] = { "", "_bucket", "_sum", "_count", NULL };
	const char *line = text;
	while (*line) {
		const char *eol = strchr(line, '\n');
		if (!eol)
			eol = line + strlen(line);
		if (strncmp(line, "# TYPE ", 7) == 0) {
			if (strncmp(line + 7, family, fl) == 0 && line[7 + fl] == ' ')
				return true;
		} else if (*line != '#' && strncmp(line, family, fl) == 0) {
			const char *rest = line + fl;
			for (int i = 0; suffixes[i]; i++) {
				size_t sl = strlen(suffixes[i]);
				if (strncmp(rest, suffixes[i], sl) == 0 &&
				    (rest[sl] == '{' || rest[sl] == ' '))
					return true;
			}
		}
		line = *eol ? eol + 1 : eol;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* /proc */

size_t proc_children(pid_t pid, pid_t *out, size_t max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char cpath[128];
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		char *text = harness_read_file(cpath, NULL);
		if (!text)
			continue;
		char *p = text;
		for (;;) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n < max)
				out[n] = (pid_t)v;
			n++;
			p = end;
		}
		free(text);
	}
	closedir(d);
	return n;
}

bool proc_alive(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *text = harness_read_file(path, NULL);
	if (!text)
		return false;
	/* The state follows the last ')' (comm may hold anything). */
	char *rp = strrchr(text, ')');
	bool alive = rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X' && rp[2] != 'x';
	free(text);
	return alive;
}

bool proc_comm_is(pid_t pid, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	char *text = harness_read_file(path, NULL);
	if (!text)
		return false;
	text[strcspn(text, "\n")] = 0;
	bool is = strcmp(text, name) == 0;
	free(text);
	return is;
}

bool proc_cmdline_has(pid_t pid, const char *arg)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	size_t len;
	char *text = harness_read_file(path, &len);
	if (!text)
		return false;
	bool has = false;
	for (size_t off = 0; off < len && !has; off += strlen(text + off) + 1)
		has = strcmp(text + off, arg) == 0;
	free(text);
	return has;
}

/* A floe-init: by comm, or by the executable's name (comm can be renamed). */
static bool is_floe_init(pid_t pid)
{
	if (proc_comm_is(pid, "floe-init"))
		return true;
	char path[64], target[4096];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	return strcmp(base, "floe-init") == 0;
}

size_t floed_inits(const struct floed *f, pid_t *out, size_t max)
{
	if (f->exited)
		return 0;
	pid_t kids[512];
	size_t nk = proc_children(f->pid, kids, 512);
	if (nk > 512)
		nk = 512;
	size_t n = 0;
	for (size_t i = 0; i < nk; i++) {
		if (!is_floe_init(kids[i]) || !proc_alive(kids[i]))
			continue;
		if (n < max)
			out[n] = kids[i];
		n++;
	}
	return n;
}

size_t floed_engines(const struct floed *f, pid_t *out, size_t max)
{
	pid_t inits[256];
	size_t ni = floed_inits(f, inits, 256);
	if (ni > 256)
		ni = 256;
	size_t n = 0;
	for (size_t i = 0; i < ni; i++) {
		pid_t kids[64];
		size_t nk = proc_children(inits[i], kids, 64);
		for (size_t j = 0; j < nk && j < 64; j++) {
			if (!proc_alive(kids[j]))
				continue;
			if (n < max)
				out[n] = kids[j];
			n++;
		}
	}
	return n;
}

size_t floed_replica_pids(const struct floed *f, pid_t *out, size_t max)
{
	size_t n = floed_inits(f, out, max);
	if (n >= max)
		return n;
	return n + floed_engines(f, out + n, max - n);
}

pid_t floed_engine_with_arg(const struct floed *f, const char *arg)
{
	pid_t e[256];
	size_t n = floed_engines(f, e, 256);
	for (size_t i = 0; i < n && i < 256; i++)
		if (proc_cmdline_has(e[i], arg))
			return e[i];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Direct floe-sim */

struct sim *sim_start(const char *model, const char *const *extra_args)
{
	ensure_init();
	struct sim *s = xcalloc(1, sizeof(*s));
	s->dir = harness_mkdtemp();
	s->port = harness_free_port();
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
	char *exe = xasprintf("%s/floe-sim", build_dir());
	char port[16];
	snprintf(port, sizeof(port), "%d", s->port);
	char *argv[64];
	int n = 0;
	argv[n++] = exe;
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--model";
	argv[n++] = (char *)model;
	argv[n++] = "--init-ms";
	argv[n++] = "0";
	for (size_t i = 0; extra_args && extra_args[i] && n < 62; i++)
		argv[n++] = (char *)extra_args[i];
	argv[n] = NULL;
	char *log = xasprintf("%s/sim.log", s->dir);
	s->pid = spawn(argv, log);
	free(exe);
	reg_add((void **)reg_sim, s);

	char health[96];
	snprintf(health, sizeof(health), "%s/health", s->url);
	int64_t deadline = harness_now_ms() + HEALTH_WAIT_MS;
	for (;;) {
		int code = wait_pid(s->pid, 0);
		if (code >= 0) {
			print_tail("floe-sim log", log, 30);
			s->pid = 0;
			cr_assert_fail("floe-sim exited with %d before /health answered 200", code);
		}
		struct http_resp r;
		struct http_req req = { .url = health, .timeout_ms = 1000 };
		long st = http_do(&req, &r);
		http_resp_free(&r);
		if (st == 200)
			break;
		if (harness_now_ms() >= deadline) {
			print_tail("floe-sim log", log, 30);
			cr_assert_fail("floe-sim did not answer /health 200 within %d ms",
				       HEALTH_WAIT_MS);
		}
		harness_sleep_ms(30);
	}
	free(log);
	return s;
}

void sim_stop(struct sim *s)
{
	if (!s)
		return;
	reg_del((void **)reg_sim, s);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		if (wait_pid(s->pid, 5000) == -1) {
			kill(s->pid, SIGKILL);
			wait_pid(s->pid, 5000);
		}
	}
	if (!keep_tmp())
		harness_rmtree(s->dir);
	free(s->dir);
	free(s);
}

char *sim_post(struct sim *s, const char *path, const char *body, size_t *len)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", s->url, path);
	struct http_resp r;
	long st = http_post(url, body, &r, "Content-Type: application/json", NULL);
	char *out = NULL;
	if (st == 200)
		out = floe_buf_steal(&r.body, len);
	http_resp_free(&r);
	return out;
}

/* ------------------------------------------------------------------ */
/* Server-Timing, X-Floe-Replica */

bool server_timing_get(const char *value, const char *name, double *dur, char *desc,
		       size_t desc_size)
{
	if (!value)
		return false;
	size_t nl = strlen(name);
	const char *p = value;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *entry = p;
		/* The entry runs to the next ',' outside quotes. */
		bool q = false;
		while (*p && (q || *p != ',')) {
			if (*p == '"')
				q = !q;
			p++;
		}
		const char *end = p;
		const char *ne = entry;
		while (ne < end && *ne != ';' && *ne != ' ')
			ne++;
		if ((size_t)(ne - entry) != nl || strncmp(entry, name, nl) != 0)
			continue;
		if (dur)
			*dur = -1;
		if (desc && desc_size)
			desc[0] = 0;
		const char *a = ne;
		while (a < end) {
			while (a < end && (*a == ';' || *a == ' '))
				a++;
			const char *k = a;
			while (a < end && *a != '=' && *a != ';')
				a++;
			size_t kl = (size_t)(a - k);
			if (a >= end || *a != '=')
				continue;
			a++;
			char val[256];
			size_t vl = 0;
			if (a < end && *a == '"') {
				a++;
				while (a < end && *a != '"') {
					if (*a == '\\' && a + 1 < end)
						a++;
					if (vl < sizeof(val) - 1)
						val[vl++] = *a;
					a++;
				}
				if (a < end)
					a++;
			} else {
				while (a < end && *a != ';' && *a != ' ') {
					if (vl < sizeof(val) - 1)
						val[vl++] = *a;
					a++;
				}
			}
			val[vl] = 0;
			if (kl == 3 && strncasecmp(k, "dur", 3) == 0 && dur)
				*dur = strtod(val, NULL);
			else if (kl == 4 && strncasecmp(k, "desc", 4) == 0 && desc && desc_size)
				snprintf(desc, desc_size, "%s", val);
		}
		return true;
	}
	return false;
}

int replica_seq(const char *value, const char *endpoint)
{
	if (!value)
		return -1;
	size_t el = strlen(endpoint);
	if (strncmp(value, endpoint, el) != 0 || value[el] != '-')
		return -1;
	const char *d = value + el + 1;
	if (!*d)
		return -1;
	for (const char *c = d; *c; c++)
		if (*c < '0' || *c > '9')
			return -1;
	return atoi(d);
}
