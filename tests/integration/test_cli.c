/*
 * The floe CLI driven as a user drives it: the built $FLOE_BUILD_DIR/floe
 * is fork/exec'd with its stdout, stderr and exit code captured, against a
 * real floed (or against none, or, for what only a client can show, such as
 * the Authorization header it sends, a one-shot socket that records the
 * request).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "harness.h"
#include "sha256.h"
#include "xalloc.h"

TestSuite(cli, .init = harness_test_init, .fini = harness_test_fini, .timeout = 240);

#define ZEROS64 "0000000000000000000000000000000000000000000000000000000000000000"
#define CSV_HEADER                                                                             \
	"period_start,period_end,namespace,endpoint,replica,instance_type,gpus,state,seconds," \
	"billable_seconds,requests,unit_price_per_hour,cost,currency"
#define DUMP_OK(ep) "floe_snapshot_operations_total{endpoint=\"" ep "\",op=\"dump\",result=\"ok\"}"
#define READY(ep) "floe_replicas{endpoint=\"" ep "\",state=\"ready\"}"
#define LS_HEADER "KEY  ENDPOINT  CREATED  SIZE  RESTORES  LAST RESTORE\n"

struct run {
	int code; /* exit code, 128+signal, -1: killed at the deadline */
	char *out;
	char *err;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/*
 * Run floe with args (NULL-terminated), FLOE_URL set to url (unset when
 * NULL) and FLOE_TOKEN set to token (unset when NULL), in directory cwd
 * (NULL: inherited). Captures stdout and stderr separately. At most 60 s,
 * then SIGKILL.
 */
static void floe_runv_tok(struct run *r, const char *url, const char *token, const char *cwd,
			  const char *const *args)
{
	memset(r, 0, sizeof(*r));
	const char *build = getenv("FLOE_BUILD_DIR");
	cr_assert(build, "FLOE_BUILD_DIR is not set (run the tests through meson)");
	char *exe = xasprintf("%s/floe", build);
	char *exe_abs = realpath(exe, NULL);
	cr_assert(exe_abs, "%s: %s", exe, strerror(errno));
	free(exe);
	int po[2], pe[2];
	cr_assert(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
	size_t n = 0;
	while (args[n])
		n++;
	const char **argv = xcalloc(n + 2, sizeof(char *));
	argv[0] = "floe";
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = args[i];
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		if (url)
			setenv("FLOE_URL", url, 1);
		else
			unsetenv("FLOE_URL");
		if (token)
			setenv("FLOE_TOKEN", token, 1);
		else
			unsetenv("FLOE_TOKEN");
		if (cwd && chdir(cwd) != 0)
			_exit(126);
		execv(exe_abs, (char *const *)argv);
		_exit(127);
	}
	free(argv);
	free(exe_abs);
	close(po[1]);
	close(pe[1]);
	struct floe_buf out = FLOE_BUF_INIT, err = FLOE_BUF_INIT;
	struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
	int open_fds = 2;
	int64_t deadline = harness_now_ms() + 60000;
	bool killed = false;
	while (open_fds > 0) {
		int64_t left = deadline - harness_now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		int rc = poll(fds, 2, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[8192];
			ssize_t got = read(fds[i].fd, buf, sizeof(buf));
			if (got > 0) {
				floe_buf_append(i ? &err : &out, buf, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	r->code = killed ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	floe_buf_append(&out, "", 0);
	floe_buf_append(&err, "", 0);
	r->out = floe_buf_steal(&out, NULL);
	r->err = floe_buf_steal(&err, NULL);
	/* In a sanitizer build, floe's own leaks and UB show up here. */
	cr_expect(!strstr(r->err, "Sanitizer") && !strstr(r->err, "runtime error:"), "floe %s: %s",
		  args[0] ? args[0] : "", r->err);
}

static void floe_runv(struct run *r, const char *url, const char *cwd, const char *const *args)
{
	floe_runv_tok(r, url, NULL, cwd, args);
}

#define floe_run(r, url, ...)                                          \
	do {                                                           \
		const char *const run__args[] = { __VA_ARGS__, NULL }; \
		floe_runv((r), (url), NULL, run__args);                \
	} while (0)
#define floe_run_tok(r, url, token, ...)                               \
	do {                                                           \
		const char *const run__args[] = { __VA_ARGS__, NULL }; \
		floe_runv_tok((r), (url), (token), NULL, run__args);   \
	} while (0)

/* The control plane's base URL of f (no trailing slash). */
static char *api_base(struct floed *f)
{
	return xasprintf("http://127.0.0.1:%d", f->api_port);
}

/* Files in dir whose name contains needle (the export's temp files). */
static int count_files(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	cr_assert(d, "%s: %s", dir, strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, needle))
			n++;
	closedir(d);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* --- without floed ---------------------------------------------------------- */

Test(cli, version_and_help)
{
	struct run r;
	floe_run(&r, NULL, "--version");
	cr_expect_eq(r.code, 0, "--version: %d %s", r.code, r.err);
	cr_expect_str_eq(r.out, "floe " FLOE_VERSION "\n");
	cr_expect_str_empty(r.err);
	run_free(&r);

	floe_run(&r, NULL, "help");
	cr_expect_eq(r.code, 0, "help: %d %s", r.code, r.err);
	const char *want[] = { "usage: floe ", "billing export", "billing summary",
			       "snapshot ls",  "snapshot rm",    "FLOE_URL",
			       "FLOE_TOKEN",   "--url",          "--token" };
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		cr_expect(strstr(r.out, want[i]), "help does not mention %s:\n%s", want[i], r.out);
	run_free(&r);

	/* Help on one command, both ways, names every flag of its usage. */
	floe_run(&r, NULL, "help", "billing", "export");
	cr_expect_eq(r.code, 0);
	cr_expect(strncmp(r.out, "usage: floe billing export ", 27) == 0, "%s", r.out);
	const char *flags[] = { "--namespace",   "--from",     "--to",
				"--granularity", "--group-by", "-o, --output" };
	for (size_t i = 0; i < sizeof(flags) / sizeof(*flags); i++)
		cr_expect(strstr(r.out, flags[i]), "help billing export lacks %s", flags[i]);
	char *help_export = xstrdup(r.out);
	run_free(&r);
	floe_run(&r, NULL, "billing", "export", "--help");
	cr_expect_eq(r.code, 0);
	cr_expect_str_eq(r.out, help_export,
			 "billing export --help differs from help billing export");
	free(help_export);
	run_free(&r);
	floe_run(&r, NULL, "snapshot", "rm", "-h");
	cr_expect_eq(r.code, 0);
	cr_expect(strstr(r.out, "usage: floe snapshot rm KEY..."), "%s", r.out);
	run_free(&r);
}

Test(cli, usage_errors_exit_2_with_the_usage_line)
{
	struct run r;
	floe_run(&r, NULL, "frobnicate");
	cr_expect_eq(r.code, 2, "unknown command: exit %d", r.code);
	cr_expect(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
	cr_expect(strstr(r.err, "usage: floe "), "%s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);

	static const char *const no_args[] = { NULL };
	floe_runv(&r, NULL, NULL, no_args);
	cr_expect_eq(r.code, 2, "no command: exit %d", r.code);
	run_free(&r);

	floe_run(&r, NULL, "snapshot", "frob");
	cr_expect_eq(r.code, 2);
	cr_expect(strstr(r.err, "floe snapshot ls"), "subcommands not listed: %s", r.err);
	run_free(&r);

	/* Rejected before any request: no floed needed (none runs at this URL). */
	floe_run(&r, "http://127.0.0.1:1", "snapshot", "ls", "--bogus");
	cr_expect_eq(r.code, 2);
	cr_expect(strstr(r.err, "unknown option --bogus"), "%s", r.err);
	cr_expect(strstr(r.err, "usage: floe snapshot ls [--endpoint NAME] [--json]"), "%s", r.err);
	run_free(&r);

	floe_run(&r, "http://127.0.0.1:1", "billing", "export", "--granularity", "week");
	cr_expect_eq(r.code, 2);
	cr_expect(strstr(r.err, "usage: floe billing export"), "%s", r.err);
	run_free(&r);

	floe_run(&r, "http://127.0.0.1:1", "billing", "export", "--from");
	cr_expect_eq(r.code, 2, "--from without a value: exit %d", r.code);
	run_free(&r);

	floe_run(&r, "http://127.0.0.1:1", "snapshot", "rm");
	cr_expect_eq(r.code, 2, "rm without a key: exit %d", r.code);
	run_free(&r);

	floe_run(&r, NULL, "--url", "ftp://127.0.0.1:1", "snapshot", "ls");
	cr_expect_eq(r.code, 2, "ftp URL: exit %d", r.code);
	run_free(&r);
}

Test(cli, floed_not_running_exits_1_and_says_where_it_looked)
{
	int port = harness_free_port();
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	char *want = xasprintf("floe: cannot reach floed at %s: ", url);
	struct run r;
	floe_run(&r, url, "--token", "s3cr3t-token-xyz", "snapshot", "ls");
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s", r.err);
	cr_expect(!strstr(r.err, "s3cr3t"), "the token was printed: %s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);

	/* --url beats FLOE_URL; a trailing slash is fine. */
	char *slash = xasprintf("%s/", url);
	floe_run(&r, "http://127.0.0.1:1", "--url", slash, "snapshot", "ls");
	cr_expect_eq(r.code, 1);
	cr_expect(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s", r.err);
	run_free(&r);
	free(slash);

	/* A failed export to a file leaves neither the file nor a temp file. */
	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/usage.csv", dir);
	floe_run(&r, url, "billing", "export", "-o", file);
	cr_expect_eq(r.code, 1);
	cr_expect(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s", r.err);
	cr_expect(!exists(file), "%s exists after a failed export", file);
	cr_expect_eq(count_files(dir, "usage.csv"), 0, "a temp file was left in %s", dir);
	run_free(&r);
	harness_rmtree(dir);
	free(dir);
	free(file);
	free(want);
}

/* --- a one-shot HTTP server: what the client sends, and answers floed can
 * give that no test can make a real floed give on demand ----------------- */

struct one_shot {
	int fd;
	int port;
	const char *response; /* full HTTP response */
	struct floe_buf request;
	pthread_t thread;
};

static void *one_shot_main(void *arg)
{
	struct one_shot *s = arg;
	struct pollfd p = { s->fd, POLLIN, 0 };
	if (poll(&p, 1, 30000) <= 0)
		return NULL;
	int c = accept(s->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	char buf[4096];
	/* The head, then as much body as its Content-Length says. */
	size_t want = SIZE_MAX;
	while (s->request.len < want) {
		p.fd = c;
		if (poll(&p, 1, 30000) <= 0)
			break;
		ssize_t n = read(c, buf, sizeof(buf));
		if (n <= 0)
			break;
		floe_buf_append(&s->request, buf, (size_t)n); /* NUL-terminated */
		const char *end = strstr(s->request.data, "\r\n\r\n");
		if (end && want == SIZE_MAX) {
			const char *cl = strcasestr(s->request.data, "\r\nContent-Length:");
			size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
			want = (size_t)(end + 4 - s->request.data) + body;
		}
	}
	size_t len = strlen(s->response), off = 0;
	while (off < len) {
		ssize_t n = write(c, s->response + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(c);
	return NULL;
}

static void one_shot_start(struct one_shot *s, const char *response)
{
	memset(s, 0, sizeof(*s));
	s->response = response;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(s->fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	cr_assert(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(listen(s->fd, 4) == 0);
	cr_assert(getsockname(s->fd, (struct sockaddr *)&a, &alen) == 0);
	s->port = ntohs(a.sin_port);
	cr_assert(pthread_create(&s->thread, NULL, one_shot_main, s) == 0);
}

static void one_shot_stop(struct one_shot *s)
{
	pthread_join(s->thread, NULL);
	close(s->fd);
	floe_buf_append(&s->request, "", 0);
}

Test(cli, token_goes_in_the_header_and_never_in_the_output)
{
	static const char body[] =
		"{\"error\":{\"message\":\"token not valid\",\"type\":\"unauthorized\",\"code\":401}}";
	char *resp = xasprintf("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
			       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			       sizeof(body) - 1, body);
	struct one_shot s;
	one_shot_start(&s, resp);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	struct run r;
	floe_run(&r, url, "--token", "tok-5ecret-123", "snapshot", "ls", "--endpoint", "a b/c");
	one_shot_stop(&s);
	cr_expect(strstr(s.request.data, "GET /v2/snapshots?endpoint=a%20b%2Fc HTTP/1.1\r\n"),
		  "request: %s", s.request.data);
	cr_expect(strstr(s.request.data, "\r\nAuthorization: Bearer tok-5ecret-123\r\n"),
		  "no bearer token sent: %s", s.request.data);
	cr_expect_eq(r.code, 1);
	cr_expect_str_eq(r.err, "floe: token not valid (HTTP 401)\n");
	cr_expect(!strstr(r.out, "5ecret") && !strstr(r.err, "5ecret"));
	run_free(&r);
	floe_buf_destroy(&s.request);
	free(resp);
}

Test(cli, export_with_the_incomplete_header_warns_and_exits_3)
{
	/* The contract's answer for a damaged ledger; a real floed gives it in
	 * billing_export_of_a_damaged_ledger below. */
	static const char csv[] = CSV_HEADER "\r\n";
	char *resp =
		xasprintf("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n"
			  "Floe-Ledger-Incomplete: 1 damaged range(s): 2025-06-01.0.seg@96+40\r\n"
			  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			  sizeof(csv) - 1, csv);
	struct one_shot s;
	one_shot_start(&s, resp);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/out.csv", dir);
	struct run r;
	floe_run(&r, url, "billing", "export", "--from", "2025-06-01T00:00+02:00", "--to",
		 "2025-06-02", "--granularity", "hour", "--group-by", "replica", "--namespace",
		 "alice", "-o", file);
	one_shot_stop(&s);
	cr_expect(
		strstr(s.request.data,
		       "GET /v2/billing/usage.csv?namespace=alice&from=2025-06-01T00%3A00%2B02%3A00"
		       "&to=2025-06-02&granularity=hour&group_by=replica HTTP/1.1\r\n"),
		"request: %s", s.request.data);
	cr_expect_eq(r.code, 3, "exit %d", r.code);
	cr_expect_str_eq(r.err, "floe: warning: the ledger has damage; this export is incomplete: "
				"1 damaged range(s): 2025-06-01.0.seg@96+40\n");
	size_t len;
	char *got = harness_read_file(file, &len);
	cr_expect(got && strcmp(got, csv) == 0, "%s: %s", file, got ? got : "(missing)");
	free(got);
	run_free(&r);
	floe_buf_destroy(&s.request);
	harness_rmtree(dir);
	free(dir);
	free(file);
	free(resp);
}

/* --- against floed ------------------------------------------------------------ */

Test(cli, snapshot_ls_empty_and_errors_from_floed)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("plain", ""));
	char *url = api_base(f);
	struct run r;
	floe_run(&r, url, "snapshot", "ls");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect_str_eq(r.out, LS_HEADER);
	cr_expect_str_empty(r.err);
	run_free(&r);

	/* --json: floed's JSON, parseable. --url as a flag, FLOE_URL unset. */
	floe_run(&r, NULL, "--url", url, "snapshot", "ls", "--json");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	json_t *v = json_loads(r.out, 0, NULL);
	cr_expect(v && json_is_array(json_object_get(v, "items")) &&
			  json_array_size(json_object_get(v, "items")) == 0,
		  "--json output: %s", r.out);
	json_decref(v);
	run_free(&r);

	/* floed's error message, its status, exit 1. */
	floe_run(&r, url, "snapshot", "rm", ZEROS64);
	cr_expect_eq(r.code, 1);
	cr_expect_str_eq(r.err, "floe: no snapshot " ZEROS64 " (HTTP 404)\n");
	cr_expect_str_empty(r.out);
	run_free(&r);

	/* Prefixes: unknown, too short, not hex. */
	floe_run(&r, url, "snapshot", "rm", "deadbeef");
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "no snapshot matches 'deadbeef'"), "%s", r.err);
	run_free(&r);
	floe_run(&r, url, "snapshot", "rm", "abc");
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "not a snapshot key"), "%s", r.err);
	run_free(&r);
	floe_run(&r, url, "snapshot", "rm", "zzzzzzzzzz");
	cr_expect_eq(r.code, 1);
	run_free(&r);
	free(url);
	FLOED_STOP_OK(f);
}

/* Skip (with the reason floed gave) where this machine cannot snapshot. */
static void skip_without_criu(struct floed *f)
{
	char *log = floed_read_log(f);
	const char *why = log ? strstr(log, "snapshots unavailable") : NULL;
	if (why) {
		char line[256];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(why, "\n"), why);
		free(log);
		FLOED_STOP_OK(f);
		cr_skip_test("this machine has no usable CRIU (floed: %s)", line);
	}
	free(log);
}

static size_t n_inits(struct floed *f)
{
	pid_t p[16];
	return floed_inits(f, p, 16);
}

/* The first line of text containing needle, or NULL. */
static char *line_with(const char *text, const char *needle)
{
	const char *hit = strstr(text, needle);
	if (!hit)
		return NULL;
	const char *start = hit;
	while (start > text && start[-1] != '\n')
		start--;
	return xstrndup(start, strcspn(start, "\n"));
}

Test(cli, snapshot_ls_and_rm_by_prefix)
{
	struct floed *f =
		floed_start("endpoints:\n"
			    "  - name: snapcli\n"
			    "    engine: sim\n"
			    "    args: [\"--model\", \"snapcli\", \"--init-ms\", \"300\"]\n"
			    "    scaling:\n"
			    "      scale_to_zero_timeout: 1s\n");
	skip_without_criu(f);
	char *url = api_base(f);
	struct http_resp hr;
	http_get(floed_url(f, "/endpoints/snapcli/info"), &hr);
	cr_assert_eq(hr.status, 200, "cold start: %ld %s", hr.status, hr.error);
	http_resp_free(&hr);
	cr_assert(WAIT_UNTIL(floed_metric0(f, DUMP_OK("snapcli")) == 1, 30000),
		  "no snapshot taken");

	/* The key as the API gives it. */
	http_get(floed_api_url(f, "/v2/snapshots"), &hr);
	json_t *list = http_json(&hr);
	http_resp_free(&hr);
	const char *k = json_string_value(
		json_object_get(json_array_get(json_object_get(list, "items"), 0), "key"));
	cr_assert(k && strlen(k) == 64, "no key listed");
	char key[65];
	snprintf(key, sizeof(key), "%s", k);
	json_decref(list);

	struct run r;
	floe_run(&r, url, "snapshot", "ls");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, "KEY ", 4) == 0, "no header: %s", r.out);
	char prefix12[13];
	snprintf(prefix12, sizeof(prefix12), "%.12s", key);
	char *line = line_with(r.out, prefix12);
	cr_expect(line, "key %s not listed:\n%s", prefix12, r.out);
	if (line) {
		cr_expect(strstr(line, " snapcli "), "endpoint not on the line: %s", line);
		cr_expect(!strstr(line, key), "the full key shown: %s", line);
		cr_expect(strstr(line, "iB") || strstr(line, " B "), "no size: %s", line);
	}
	free(line);
	run_free(&r);

	floe_run(&r, url, "snapshot", "ls", "--json");
	cr_expect_eq(r.code, 0);
	json_t *v = json_loads(r.out, 0, NULL);
	cr_expect(v, "--json does not parse: %s", r.out);
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(v, "items"), 0), "key")),
			 key);
	json_decref(v);
	run_free(&r);

	floe_run(&r, url, "snapshot", "ls", "--endpoint", "someone-else");
	cr_expect_eq(r.code, 0);
	cr_expect_str_eq(r.out, LS_HEADER, "filter by endpoint: %s", r.out);
	run_free(&r);

	/* Delete by an 8-digit prefix (upper case is fine), once at zero. */
	cr_assert(WAIT_UNTIL(n_inits(f) == 0 && floed_metric0(f, READY("snapcli")) == 0, 15000),
		  "no scale to zero");
	char prefix8[9];
	for (int i = 0; i < 8; i++)
		prefix8[i] = (char)(key[i] >= 'a' && key[i] <= 'f' ? key[i] - 32 : key[i]);
	prefix8[8] = '\0';
	floe_run(&r, url, "snapshot", "rm", prefix8);
	cr_expect_eq(r.code, 0, "rm %s: exit %d %s", prefix8, r.code, r.err);
	char *deleted = xasprintf("deleted %s\n", key);
	cr_expect_str_eq(r.out, deleted);
	free(deleted);
	run_free(&r);

	floe_run(&r, url, "snapshot", "ls");
	cr_expect_eq(r.code, 0);
	cr_expect(!strstr(r.out, prefix12), "still listed after rm:\n%s", r.out);
	cr_expect_str_eq(r.out, LS_HEADER);
	run_free(&r);
	char *dir = xasprintf("%s/snapshots/%s", f->data_dir, key);
	cr_expect(!exists(dir), "%s still on disk", dir);
	free(dir);

	/* The same prefix again: nothing matches now. */
	floe_run(&r, url, "snapshot", "rm", prefix8);
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "no snapshot matches"), "%s", r.err);
	run_free(&r);
	free(url);
	FLOED_STOP_OK(f);
}

/* --- billing (the routes of issue 4: GET /v2/billing/usage.csv, /summary) ---- */

Test(cli, billing_export_to_a_file_and_to_stdout)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("bill", ""));
	char *url = api_base(f);
	struct http_resp hr;
	http_get(floed_url(f, "/endpoints/bill/info"), &hr);
	cr_expect_eq(hr.status, 200);
	http_resp_free(&hr);

	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/usage.csv", dir);
	struct run r;
	floe_run(&r, url, "billing", "export", "--granularity", "minute", "--group-by", "replica",
		 "-o", file);
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect_str_empty(r.out, "CSV on stdout with -o: %s", r.out);
	size_t len;
	char *csv = harness_read_file(file, &len);
	cr_assert(csv, "%s not written", file);
	cr_expect(strncmp(csv, CSV_HEADER "\r\n", strlen(CSV_HEADER) + 2) == 0,
		  "first line of %s: %.200s", file, csv);
	cr_expect_eq(count_files(dir, "floe-"), 0, "temp file left behind");
	/* The mode any new file gets (not mkstemp's 0600). */
	mode_t mask = umask(0);
	umask(mask);
	struct stat st;
	cr_expect(stat(file, &st) == 0 && (st.st_mode & 0777) == (0666 & ~mask), "mode %o",
		  st.st_mode & 0777);
	run_free(&r);

	/* stdout gets the same bytes (same ledger, same query: same bytes, unless
	 * the period still running grew in between: compare the header only). */
	floe_run(&r, url, "billing", "export", "--granularity", "minute", "--group-by", "replica");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, CSV_HEADER "\r\n", strlen(CSV_HEADER) + 2) == 0, "%.200s", r.out);
	run_free(&r);

	/* A fixed past range is reproducible: byte-identical twice. */
	floe_run(&r, url, "billing", "export", "--from", "2024-01-01", "--to", "2024-01-02", "-o",
		 file);
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	char *again_out = NULL;
	run_free(&r);
	floe_run(&r, url, "billing", "export", "--from", "2024-01-01", "--to", "2024-01-02");
	cr_expect_eq(r.code, 0);
	again_out = r.out;
	r.out = NULL;
	free(csv);
	csv = harness_read_file(file, &len);
	cr_expect(csv && again_out && strcmp(csv, again_out) == 0, "file %s vs stdout %s", csv,
		  again_out);
	free(again_out);
	run_free(&r);
	free(csv);
	harness_rmtree(dir);
	free(dir);
	free(file);
	free(url);
	FLOED_STOP_OK(f);
}

Test(cli, billing_bad_from_is_floeds_400_and_leaves_no_file)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("bill", ""));
	char *url = api_base(f);
	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/usage.csv", dir);
	struct run r;
	floe_run(&r, url, "billing", "export", "--from", "yesterday-ish", "-o", file);
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strncmp(r.err, "floe: ", 6) == 0 && strstr(r.err, "from") &&
			  strstr(r.err, "(HTTP 400)\n"),
		  "stderr: %s", r.err);
	cr_expect(!exists(file), "a failed export left %s", file);
	cr_expect_eq(count_files(dir, "usage.csv"), 0, "temp file left behind");
	run_free(&r);

	floe_run(&r, url, "billing", "summary", "--from", "2024-13-01");
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strstr(r.err, "from") && strstr(r.err, "(HTTP 400)"), "stderr: %s", r.err);
	run_free(&r);
	harness_rmtree(dir);
	free(dir);
	free(file);
	free(url);
	FLOED_STOP_OK(f);
}

Test(cli, billing_summary_table_and_json)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("summ", ""));
	char *url = api_base(f);
	struct http_resp hr;
	http_get(floed_url(f, "/endpoints/summ/info"), &hr);
	cr_expect_eq(hr.status, 200);
	http_resp_free(&hr);
	/* A commit round (1 s) puts the replica's start in the ledger. */
	harness_sleep_ms(1500);
	struct run r;
	floe_run(&r, url, "billing", "summary");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, "ENDPOINT", 8) == 0 && strstr(r.out, "REPLICAS") &&
			  strstr(r.out, "RUNNING") && strstr(r.out, "INITIALIZING") &&
			  strstr(r.out, "WARM POOL") && strstr(r.out, "REQUESTS") &&
			  strstr(r.out, "COST"),
		  "header: %s", r.out);
	cr_expect(strstr(r.out, "default/summ "), "endpoint not listed: %s", r.out);
	run_free(&r);

	floe_run(&r, url, "billing", "summary", "--json", "--namespace", "default");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	json_t *v = json_loads(r.out, 0, NULL);
	cr_expect(v && json_is_array(json_object_get(v, "endpoints")), "--json: %s", r.out);
	json_decref(v);
	run_free(&r);
	free(url);
	FLOED_STOP_OK(f);
}

/* The largest segment file (DATA/ledger/NAME.seg) (allocated path), or NULL. */
static char *largest_segment(struct floed *f, off_t *size)
{
	char *dir = xasprintf("%s/ledger", f->data_dir);
	DIR *d = opendir(dir);
	char *best = NULL;
	*size = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		struct stat st;
		if (n < 5 || strcmp(e->d_name + n - 4, ".seg") != 0 ||
		    fstatat(dirfd(d), e->d_name, &st, 0) != 0 || st.st_size <= *size)
			continue;
		*size = st.st_size;
		free(best);
		best = xasprintf("%s/%s", dir, e->d_name);
	}
	if (d)
		closedir(d);
	free(dir);
	return best;
}

Test(cli, billing_export_of_a_damaged_ledger)
{
	struct floed *f = floed_start("endpoints:\n" HARNESS_SIM_EP("dmg", ""));
	char *url = api_base(f);
	struct http_resp hr;
	http_get(floed_url(f, "/endpoints/dmg/info"), &hr);
	cr_expect_eq(hr.status, 200);
	http_resp_free(&hr);
	/* Records (start, state, ticks) in a segment, then a byte flipped in
	 * the first one, then more records after it: damage in the middle. */
	off_t size = 0;
	char *seg = NULL;
	cr_assert(WAIT_UNTIL((free(seg), seg = largest_segment(f, &size), size > 64), 10000),
		  "no ledger segment in %s/ledger", f->data_dir);
	int fd = open(seg, O_RDWR);
	cr_assert(fd >= 0, "%s: %s", seg, strerror(errno));
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 12), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, 12), 1);
	close(fd);
	off_t damaged_at = size;
	cr_assert(WAIT_UNTIL((free(seg), seg = largest_segment(f, &size), size > damaged_at + 16),
			     10000),
		  "no records after the damage");
	char *dir = harness_mkdtemp();
	char *file = xasprintf("%s/usage.csv", dir);
	struct run r;
	floe_run(&r, url, "billing", "export", "-o", file);
	cr_expect_eq(r.code, 3, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.err,
			  "floe: warning: the ledger has damage; this export is incomplete: ",
			  65) == 0 &&
			  strstr(r.err, ".seg@"),
		  "stderr: %s", r.err);
	size_t len;
	char *csv = harness_read_file(file, &len);
	cr_expect(csv && strncmp(csv, CSV_HEADER "\r\n", strlen(CSV_HEADER) + 2) == 0,
		  "the incomplete export is still written: %s", csv ? csv : "(missing)");
	free(csv);
	run_free(&r);
	harness_rmtree(dir);
	free(dir);
	free(file);
	free(seg);
	free(url);
	FLOED_STOP_OK(f);
}

/* --- floe token new (local: no floed) ------------------------------------- */

/* The token of `floe token new`'s first line ("token: TOKEN   (shown once...)"). */
static char *token_of(const char *out)
{
	static const char head[] = "token: ";
	cr_assert(strncmp(out, head, strlen(head)) == 0, "first line: %s", out);
	const char *t = out + strlen(head);
	return xstrndup(t, strcspn(t, " \n"));
}

static void sha256_hex_of(const char *s, char hex[65])
{
	struct floe_sha256 h;
	uint8_t d[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, s, strlen(s));
	floe_sha256_final(&h, d);
	floe_sha256_hex(d, hex);
}

Test(cli, token_new_prints_a_token_and_the_lines_to_paste)
{
	/* No floed anywhere: FLOE_URL points at nothing, or at nonsense. */
	struct run r;
	floe_run(&r, "http://127.0.0.1:1", "token", "new", "alice");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect_str_empty(r.err);
	char *tok = token_of(r.out);
	cr_expect_eq(strlen(tok), 48, "token %s", tok);
	cr_expect(strncmp(tok, "floe_", 5) == 0, "token %s", tok);
	char hex[65];
	sha256_hex_of(tok, hex);
	char *want = xasprintf("token: %s   (shown once: store it now; floed keeps only its hash)\n"
			       "add to floed's config under auth.tokens:\n"
			       "    - namespace: alice\n"
			       "      sha256: %s\n",
			       tok, hex);
	cr_expect_str_eq(r.out, want, "the hash printed is not sha256(token)");
	free(want);

	/* The lines, pasted under auth.tokens as printed, make floed's config
	 * accept exactly this token, as alice. */
	const char *paste = strstr(r.out, "    - namespace:");
	cr_assert(paste);
	char *yaml = xasprintf("auth:\n  tokens:\n%s", paste);
	struct floe_config *cfg = NULL;
	floe_error err;
	floe_error_clear(&err);
	cr_assert_eq(floe_config_load_string(yaml, strlen(yaml), "pasted.yaml", NULL, &cfg, &err),
		     0, "%s\n%s", err.msg, yaml);
	char *header = xasprintf("Bearer %s", tok);
	const char *ns = NULL;
	cr_expect_eq(floe_auth_check(&cfg->auth, header, &ns), FLOE_AUTH_OK);
	cr_expect(ns && strcmp(ns, "alice") == 0, "namespace %s", ns ? ns : "(null)");
	free(header);
	floe_config_free(cfg);
	free(yaml);

	/* A second call gives another token. */
	struct run r2;
	floe_run(&r2, "not a url", "token", "new", "alice");
	cr_expect_eq(r2.code, 0, "a FLOE_URL it does not use made it fail: %s", r2.err);
	char *tok2 = token_of(r2.out);
	cr_expect_str_neq(tok, tok2, "two calls gave the same token");
	free(tok2);
	run_free(&r2);
	free(tok);
	run_free(&r);
}

Test(cli, token_new_json)
{
	struct run r;
	floe_run(&r, NULL, "token", "new", "team-b", "--json");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	json_error_t jerr;
	json_t *v = json_loads(r.out, 0, &jerr);
	cr_assert(json_is_object(v), "not a JSON object: %s (%s)", r.out, jerr.text);
	cr_expect_eq(json_object_size(v), 3, "%s", r.out);
	const char *ns = json_string_value(json_object_get(v, "namespace"));
	const char *tok = json_string_value(json_object_get(v, "token"));
	const char *sha = json_string_value(json_object_get(v, "sha256"));
	cr_assert(ns && tok && sha, "%s", r.out);
	cr_expect_str_eq(ns, "team-b");
	char hex[65];
	sha256_hex_of(tok, hex);
	cr_expect_str_eq(sha, hex, "sha256 is not sha256(token)");
	char *first = xstrdup(tok);
	json_decref(v);
	run_free(&r);

	floe_run(&r, NULL, "--json", "token", "new", "team-b");
	cr_assert_eq(r.code, 0);
	v = json_loads(r.out, 0, &jerr);
	tok = json_string_value(json_object_get(v, "token"));
	cr_assert(tok, "%s", r.out);
	cr_expect_str_neq(tok, first, "two calls gave the same token");
	json_decref(v);
	free(first);
	run_free(&r);
}

Test(cli, token_new_usage_errors_exit_2)
{
	static const char *const bad[] = { "Alice", "-a", "a_b", "a/b", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct run r;
		floe_run(&r, NULL, "token", "new", "--", bad[i]);
		cr_expect_eq(r.code, 2, "'%s': exit %d", bad[i], r.code);
		cr_expect(strstr(r.err, "is not a namespace"), "'%s': %s", bad[i], r.err);
		cr_expect(strstr(r.err, "usage: floe token new NAMESPACE"), "%s", r.err);
		cr_expect_str_empty(r.out, "a token was printed for '%s'", bad[i]);
		run_free(&r);
	}
	struct run r;
	floe_run(&r, NULL, "token", "new");
	cr_expect_eq(r.code, 2);
	cr_expect_str_empty(r.out);
	run_free(&r);
	floe_run(&r, NULL, "token", "new", "a", "b");
	cr_expect_eq(r.code, 2);
	cr_expect(strstr(r.err, "unexpected argument 'b'"), "%s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);
	floe_run(&r, NULL, "token");
	cr_expect_eq(r.code, 2);
	cr_expect(strstr(r.err, "floe token new NAMESPACE"), "%s", r.err);
	run_free(&r);
	floe_run(&r, NULL, "help");
	cr_expect(strstr(r.out, "token new"), "help does not list token new:\n%s", r.out);
	run_free(&r);
}

/* --- floe endpoint ... and floe replicas (issue 5) --------------------------- */

#define COLD(ep) "floe_cold_starts_total{endpoint=\"" ep "\",kind=\"fresh\"}"

/* status.state of ns/name through the API ("?" when it cannot be read). */
static char ep_state_buf[64];
static const char *ep_state(struct floed *f, const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/v2/endpoint/default/%s", name);
	struct http_resp hr;
	http_get(floed_api_url(f, path), &hr);
	json_t *o = hr.status == 200 ? http_json(&hr) : NULL;
	const char *s = json_string_value(json_object_get(json_object_get(o, "status"), "state"));
	snprintf(ep_state_buf, sizeof(ep_state_buf), "%s", s ? s : "?");
	json_decref(o);
	http_resp_free(&hr);
	return ep_state_buf;
}

Test(cli, endpoint_usage_errors_exit_2_before_any_request)
{
	/* Nothing listens at this URL: each is refused before a request. */
	static const char *const bad[][8] = {
		{ "endpoint", "describe", NULL },
		{ "endpoint", "create", NULL },
		{ "endpoint", "create", "x", "--min-replica", "two", NULL },
		{ "endpoint", "create", "x", "--env", "NOVALUE", NULL },
		{ "endpoint", "create", "x", "--type", "secret", NULL },
		{ "endpoint", "create", "x", "--timeout", "5", NULL },
		{ "endpoint", "create", "x", "--wait", "--timeout", "soon", NULL },
		{ "endpoint", "create", "x", "--engine", "custom", NULL },
		{ "endpoint", "create", "x", "--from-file", "b.json", "--port", "1", NULL },
		{ "endpoint", "update", "x", NULL },
		{ "endpoint", "wait", "a", "b", NULL },
		{ "endpoint", "logs", "x", "--tail", "-3", NULL },
		{ "endpoint", "frob", "x", NULL },
		{ "replicas", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct run r;
		floe_runv(&r, "http://127.0.0.1:1", NULL, bad[i]);
		cr_expect_eq(r.code, 2, "floe %s %s %s %s: exit %d: %s", bad[i][0], bad[i][1],
			     bad[i][2] ? bad[i][2] : "", bad[i][2] && bad[i][3] ? bad[i][3] : "",
			     r.code, r.err);
		cr_expect(strstr(r.err, "usage:"), "no usage line: %s", r.err);
		cr_expect_str_empty(r.out);
		run_free(&r);
	}
	/* A secret's value is never quoted back, not even in a usage error. */
	struct run r;
	floe_run(&r, "http://127.0.0.1:1", "endpoint", "create", "x", "--secret", "s3cretvalue");
	cr_expect_eq(r.code, 2);
	cr_expect(!strstr(r.err, "s3cretvalue"), "%s", r.err);
	run_free(&r);

	floe_run(&r, NULL, "help");
	const char *want[] = { "endpoint ls",
			       "endpoint describe",
			       "endpoint create",
			       "endpoint update",
			       "endpoint pause",
			       "endpoint resume",
			       "endpoint scale-to-zero",
			       "endpoint delete",
			       "endpoint wait",
			       "endpoint logs",
			       "replicas" };
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		cr_expect(strstr(r.out, want[i]), "help does not list %s:\n%s", want[i], r.out);
	cr_expect(strstr(r.out, "4 endpoint wait timed out"), "%s", r.out);
	run_free(&r);
	floe_run(&r, NULL, "help", "endpoint", "create");
	cr_expect_eq(r.code, 0);
	const char *flags[] = { "--engine",       "--repository",  "--revision",
				"--task",         "--framework",   "--type",
				"--min-replica",  "--max-replica", "--scale-to-zero-timeout",
				"--env",          "--secret",      "--port",
				"--health-route", "--command",     "--arg",
				"--from-file",    "--wait",        "--timeout" };
	for (size_t i = 0; i < sizeof(flags) / sizeof(*flags); i++)
		cr_expect(strstr(r.out, flags[i]), "help endpoint create lacks %s", flags[i]);
	run_free(&r);
}

/* The body of a request the one-shot server recorded, parsed. */
static json_t *request_body(const struct one_shot *s)
{
	const char *b = strstr(s->request.data, "\r\n\r\n");
	cr_assert(b, "no request head: %s", s->request.data);
	json_error_t jerr;
	json_t *v = json_loads(b + 4, 0, &jerr);
	cr_assert(v, "the body is not JSON (%s): %s", jerr.text, b + 4);
	return v;
}

#define ONE_EP_JSON                                                                      \
	"{\"name\":\"chat\",\"namespace\":\"team\",\"type\":\"public\","                 \
	"\"healthRoute\":\"/healthz\",\"model\":{\"repository\":\"org/m\","              \
	"\"image\":{\"vLLM\":{\"port\":8001}},\"secrets\":{\"HF\":\"***\"}},"            \
	"\"compute\":{\"scaling\":{\"minReplica\":0,\"maxReplica\":2}},"                 \
	"\"status\":{\"state\":\"scaledToZero\",\"message\":\"\",\"url\":null,"          \
	"\"readyReplica\":0,\"targetReplica\":0,\"createdAt\":\"2026-01-01T00:00:00Z\"," \
	"\"updatedAt\":\"2026-01-01T00:00:00Z\"}}"

Test(cli, endpoint_create_sends_hugging_faces_body_and_update_a_merge_patch)
{
	char *resp = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			       strlen(ONE_EP_JSON), ONE_EP_JSON);
	struct one_shot s;
	one_shot_start(&s, resp);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	struct run r;
	floe_run(&r, url, "endpoint", "create", "chat", "--namespace", "team", "--engine", "vllm",
		 "--repo", "org/m", "--revision", "abc", "--task", "text-generation", "--framework",
		 "pytorch", "--type", "public", "--min-replica", "0", "--max-replica", "2",
		 "--scale-to-zero-timeout", "15", "--scaling-threshold", "1.5", "--env", "A=1",
		 "--env", "B=x=y", "--secret", "HF=s3cr3t-hf", "--port", "8001", "--health-route",
		 "/healthz", "--arg", "--dtype", "--arg", "bf16", "--accelerator", "gpu",
		 "--instance-size", "x2");
	one_shot_stop(&s);
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(s.request.data, "POST /v2/endpoint/team HTTP/1.1\r\n", 33) == 0,
		  "request: %s", s.request.data);
	cr_expect(strcasestr(s.request.data, "\r\nContent-Type: application/json\r\n"), "%s",
		  s.request.data);
	json_t *got = request_body(&s);
	json_t *want = json_loads(
		"{\"name\":\"chat\",\"type\":\"public\","
		"\"compute\":{\"accelerator\":\"gpu\",\"instanceSize\":\"x2\",\"scaling\":"
		"{\"minReplica\":0,\"maxReplica\":2,\"scaleToZeroTimeout\":15,"
		"\"measure\":{\"pendingRequests\":1.5}}},"
		"\"model\":{\"repository\":\"org/m\",\"revision\":\"abc\",\"task\":"
		"\"text-generation\",\"framework\":\"pytorch\",\"image\":{\"vLLM\":"
		"{\"port\":8001,\"healthRoute\":\"/healthz\"}},\"env\":{\"A\":\"1\",\"B\":\"x=y\"},"
		"\"secrets\":{\"HF\":\"s3cr3t-hf\"},\"args\":[\"--dtype\",\"bf16\"]}}",
		0, NULL);
	cr_assert(want);
	char *g = json_dumps(got, JSON_SORT_KEYS);
	cr_expect(json_equal(got, want), "body sent: %s", g);
	free(g);
	json_decref(want);
	json_decref(got);
	/* The view of floed's answer; the secret is not in it. */
	cr_expect(strstr(r.out, "state:         scaledToZero\n"), "%s", r.out);
	cr_expect(strstr(r.out, "engine:        vllm (health route /healthz)\n"), "%s", r.out);
	cr_expect(!strstr(r.out, "s3cr3t") && !strstr(r.err, "s3cr3t"));
	run_free(&r);
	floe_buf_destroy(&s.request);

	/* A sim custom image: the preset goes in custom.url; the defaults are
	 * authenticated and the repository named like the endpoint. */
	one_shot_start(&s, resp);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	floe_run(&r, url, "endpoint", "create", "chat", "--namespace", "team", "--engine", "sim",
		 "--command", "/usr/bin/env", "--command", "floe-sim");
	one_shot_stop(&s);
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	got = request_body(&s);
	want = json_loads("{\"name\":\"chat\",\"type\":\"authenticated\",\"model\":{"
			  "\"repository\":\"chat\",\"image\":{\"custom\":{\"url\":\"sim\"}},"
			  "\"command\":[\"/usr/bin/env\",\"floe-sim\"]}}",
			  0, NULL);
	g = json_dumps(got, JSON_SORT_KEYS);
	cr_expect(json_equal(got, want), "body sent: %s", g);
	free(g);
	json_decref(want);
	json_decref(got);
	run_free(&r);
	floe_buf_destroy(&s.request);

	/* update sends only what was given. */
	one_shot_start(&s, resp);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	floe_run(&r, url, "endpoint", "update", "chat", "--namespace", "team", "--max-replica", "3",
		 "--env", "C=3");
	one_shot_stop(&s);
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strncmp(s.request.data, "PUT /v2/endpoint/team/chat HTTP/1.1\r\n", 37) == 0,
		  "request: %s", s.request.data);
	got = request_body(&s);
	want = json_loads("{\"compute\":{\"scaling\":{\"maxReplica\":3}},"
			  "\"model\":{\"env\":{\"C\":\"3\"}}}",
			  0, NULL);
	g = json_dumps(got, JSON_SORT_KEYS);
	cr_expect(json_equal(got, want), "patch sent: %s", g);
	free(g);
	json_decref(want);
	json_decref(got);
	run_free(&r);
	floe_buf_destroy(&s.request);
	free(resp);
}

Test(cli, endpoint_create_wait_ls_describe_update_pause_resume_delete)
{
	struct floed *f = floed_start("");
	char *url = api_base(f);
	struct run r;
	floe_run(&r, url, "endpoint", "create", "cli-ep", "--engine", "sim", "--min-replica", "1",
		 "--max-replica", "1", "--env", "SIM_X=1", "--secret", "HF_TOKEN=hf_s3cret",
		 "--wait", "--timeout", "60");
	cr_assert_eq(r.code, 0, "create --wait: exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.out, "name:          cli-ep\n"), "%s", r.out);
	cr_expect(strstr(r.out, "state:         running\n"), "%s", r.out);
	cr_expect(strstr(r.out, "secrets:       HF_TOKEN=***\n"), "%s", r.out);
	cr_expect(!strstr(r.out, "hf_s3cret") && !strstr(r.err, "hf_s3cret"));
	/* Progress: the states it went through, with the time, then ready. */
	cr_expect(strstr(r.err, "cli-ep: initializing (") || strstr(r.err, "cli-ep: running ("),
		  "no progress: %s", r.err);
	cr_expect(strstr(r.err, "cli-ep: ready ("), "no ready line: %s", r.err);
	run_free(&r);

	floe_run(&r, url, "endpoint", "ls");
	cr_expect_eq(r.code, 0, "ls: exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, "NAME    STATE    READY/TARGET  ENGINE  TYPE", 43) == 0,
		  "header: %s", r.out);
	char *line = line_with(r.out, "cli-ep ");
	cr_expect(line && strstr(line, " running ") && strstr(line, " 1/1 ") &&
			  strstr(line, " sim ") && strstr(line, " authenticated ") &&
			  strstr(line, "/endpoints/cli-ep"),
		  "ls line: %s", line ? line : r.out);
	free(line);
	run_free(&r);

	floe_run(&r, url, "endpoint", "describe", "cli-ep", "--json");
	cr_expect_eq(r.code, 0, "describe --json: exit %d: %s", r.code, r.err);
	json_t *v = json_loads(r.out, 0, NULL);
	cr_assert(v, "describe --json does not parse: %s", r.out);
	cr_expect_str_eq(json_string_value(json_object_get(v, "name")), "cli-ep");
	json_t *st = json_object_get(v, "status");
	cr_expect_str_eq(json_string_value(json_object_get(st, "state")), "running");
	cr_expect(json_is_string(json_object_get(st, "url")));
	cr_expect(json_is_string(json_object_get(v, "healthRoute")));
	json_t *sc = json_object_get(json_object_get(v, "compute"), "scaling");
	cr_expect_eq(json_integer_value(json_object_get(sc, "maxReplica")), 1);
	cr_expect_str_eq(
		json_string_value(json_object_get(
			json_object_get(json_object_get(v, "model"), "secrets"), "HF_TOKEN")),
		"***");
	json_decref(v);
	run_free(&r);

	/* update changes only what it is given. */
	floe_run(&r, url, "endpoint", "update", "cli-ep", "--max-replica", "3", "--json");
	cr_expect_eq(r.code, 0, "update: exit %d: %s", r.code, r.err);
	v = json_loads(r.out, 0, NULL);
	sc = json_object_get(json_object_get(v, "compute"), "scaling");
	cr_expect_eq(json_integer_value(json_object_get(sc, "maxReplica")), 3, "%s", r.out);
	cr_expect_eq(json_integer_value(json_object_get(sc, "minReplica")), 1, "%s", r.out);
	json_decref(v);
	run_free(&r);
	struct http_resp hr;
	http_get(floed_api_url(f, "/v2/endpoint/default/cli-ep"), &hr);
	v = http_json(&hr);
	sc = json_object_get(json_object_get(v, "compute"), "scaling");
	cr_expect_eq(json_integer_value(json_object_get(sc, "maxReplica")), 3);
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_object_get(json_object_get(v, "model"), "env"), "SIM_X")),
			 "1", "--env not kept by the update");
	json_decref(v);
	http_resp_free(&hr);

	/* pause: state paused, the data plane answers 503 and does not wake it. */
	floe_run(&r, url, "endpoint", "pause", "cli-ep");
	cr_expect_eq(r.code, 0, "pause: exit %d: %s", r.code, r.err);
	cr_expect_str_eq(r.out, "cli-ep: paused\n");
	run_free(&r);
	cr_expect_str_eq(ep_state(f, "cli-ep"), "paused");
	cr_assert(WAIT_UNTIL(floed_metric0(f, READY("cli-ep")) == 0, 15000));
	cr_expect_eq(http_status("POST", floed_url(f, "/endpoints/cli-ep/generate"),
				 "{\"inputs\":\"x\"}"),
		     503);

	/* resume; again is floed's "already running", exit 1. */
	floe_run(&r, url, "endpoint", "resume", "cli-ep");
	cr_expect_eq(r.code, 0, "resume: exit %d: %s", r.code, r.err);
	run_free(&r);
	floe_run(&r, url, "endpoint", "resume", "cli-ep");
	cr_expect_eq(r.code, 1, "resume twice: exit %d", r.code);
	cr_expect(strstr(r.err, "already running") && strstr(r.err, "(HTTP 400)\n"), "%s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);
	floe_run(&r, url, "endpoint", "wait", "cli-ep", "--timeout", "60");
	cr_expect_eq(r.code, 0, "wait after resume: exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.out, "/endpoints/cli-ep\n"), "wait prints the URL: %s", r.out);
	run_free(&r);

	/* A value floed refuses: its 400 names the field. */
	floe_run(&r, url, "endpoint", "create", "bad-ep", "--engine", "sim", "--min-replica", "3",
		 "--max-replica", "1");
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strstr(r.err, "compute.scaling.maxReplica") && strstr(r.err, "(HTTP 400)\n"),
		  "%s", r.err);
	run_free(&r);

	/* delete asks nothing; then describe is floed's 404. */
	floe_run(&r, url, "endpoint", "delete", "cli-ep");
	cr_expect_eq(r.code, 0, "delete: exit %d: %s", r.code, r.err);
	cr_expect_str_eq(r.out, "deleted cli-ep\n");
	run_free(&r);
	floe_run(&r, url, "endpoint", "describe", "cli-ep");
	cr_expect_eq(r.code, 1);
	cr_expect(strncmp(r.err, "floe: ", 6) == 0 && strstr(r.err, "(HTTP 404)\n"), "%s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);
	floe_run(&r, url, "endpoint", "ls");
	cr_expect_eq(r.code, 0);
	cr_expect(!strstr(r.out, "cli-ep"), "still listed: %s", r.out);
	run_free(&r);
	free(url);
	FLOED_STOP_OK(f);
}

Test(cli, endpoint_wait_on_a_scaled_to_zero_endpoint_times_out_without_waking_it)
{
	struct floed *f = floed_start("");
	char *url = api_base(f);
	struct run r;
	floe_run(&r, url, "endpoint", "create", "zero-ep", "--engine", "sim", "--json");
	cr_assert_eq(r.code, 0, "create: exit %d: %s", r.code, r.err);
	run_free(&r);
	/* One request wakes it; scale-to-zero stops it again. */
	cr_assert_eq(http_status("POST", floed_url(f, "/endpoints/zero-ep/generate"),
				 "{\"inputs\":\"x\"}"),
		     200);
	cr_assert_eq(floed_metric0(f, COLD("zero-ep")), 1);
	floe_run(&r, url, "endpoint", "scale-to-zero", "zero-ep");
	cr_expect_eq(r.code, 0, "scale-to-zero: exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, "zero-ep: ", 9) == 0, "%s", r.out);
	run_free(&r);
	cr_assert(WAIT_UNTIL(strcmp(ep_state(f, "zero-ep"), "scaledToZero") == 0, 15000),
		  "state %s", ep_state_buf);

	cr_assert(WAIT_UNTIL(n_inits(f) == 0, 15000), "the replica did not stop");

	floe_run(&r, url, "endpoint", "wait", "zero-ep", "--timeout", "2");
	cr_expect_eq(r.code, 4, "wait: exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.err, "zero-ep: scaledToZero ("), "%s", r.err);
	cr_expect(strstr(r.err, "floe: zero-ep is not ready after "), "%s", r.err);
	cr_expect_str_empty(r.out);
	run_free(&r);
	/* Not woken: no new cold start, no replica. */
	cr_expect_eq(floed_metric0(f, COLD("zero-ep")), 1, "wait woke the endpoint");
	cr_expect_eq(floed_metric0(f, READY("zero-ep")), 0);
	cr_expect_str_eq(ep_state(f, "zero-ep"), "scaledToZero");
	cr_expect_eq(n_inits(f), 0, "a replica process runs");

	/* create --wait on it (min 0) also times out, and says why. */
	floe_run(&r, url, "endpoint", "create", "zero-2", "--engine", "sim", "--wait", "--timeout",
		 "1");
	cr_expect_eq(r.code, 4, "create --wait: exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.err, "waiting does not wake it"), "%s", r.err);
	cr_expect(strstr(r.out, "state:         scaledToZero\n"), "%s", r.out);
	run_free(&r);
	cr_expect_eq(floed_metric0(f, COLD("zero-2")), 0);
	free(url);
	FLOED_STOP_OK(f);
}

/* An engine that prints a line for each request it gets (the logs route
 * streams what engines write). argv[1]: its port. */
static const char line_engine_py[] =
	"#!/usr/bin/python3\n"
	"import http.server, sys\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"    def do_GET(self):\n"
	"        if self.path != '/health':\n"
	"            print('engine got ' + self.path, flush=True)\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Length', '2')\n"
	"        self.end_headers()\n"
	"        self.wfile.write(b'ok')\n"
	"    do_POST = do_GET\n"
	"print('engine line 1', flush=True)\n"
	"print('engine line 2', flush=True)\n"
	"print('engine line 3', flush=True)\n"
	"http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

/* floe args in the background, stdout into a pipe (*out_fd, non-blocking). */
static pid_t floe_spawn(const char *url, const char *const *args, int *out_fd)
{
	const char *build = getenv("FLOE_BUILD_DIR");
	cr_assert(build);
	char *exe = xasprintf("%s/floe", build);
	int po[2];
	cr_assert(pipe2(po, O_CLOEXEC) == 0);
	size_t n = 0;
	while (args[n])
		n++;
	const char **argv = xcalloc(n + 2, sizeof(char *));
	argv[0] = "floe";
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = args[i];
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		setenv("FLOE_URL", url, 1);
		unsetenv("FLOE_TOKEN");
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	free(argv);
	free(exe);
	close(po[1]);
	fcntl(po[0], F_SETFL, O_NONBLOCK);
	*out_fd = po[0];
	return pid;
}

/* Whatever fd has now, appended to b (floe_buf keeps it NUL-terminated). */
static void drain_fd(int fd, struct floe_buf *b)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		floe_buf_append(b, buf, (size_t)n);
	floe_buf_append(b, "", 0); /* data is never NULL after this */
}

/* floe endpoint logs logs-ep prints needle. */
static bool logs_have(const char *url, const char *needle)
{
	struct run r;
	floe_run(&r, url, "endpoint", "logs", "logs-ep");
	bool yes = r.code == 0 && strstr(r.out, needle);
	run_free(&r);
	return yes;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(cli, replicas_and_logs)
{
	struct floed *f = floed_start("");
	char *url = api_base(f);
	char *engine = xasprintf("%s/line-engine.py", f->dir);
	cr_assert_eq(harness_write_file(engine, line_engine_py, strlen(line_engine_py)), 0);
	cr_assert_eq(chmod(engine, 0755), 0);
	char port[16];
	snprintf(port, sizeof(port), "%d", harness_free_port());
	struct run r;
	floe_run(&r, url, "endpoint", "create", "logs-ep", "--engine", engine, "--port", port,
		 "--arg", port, "--health-route", "/health", "--min-replica", "1", "--wait",
		 "--timeout", "60");
	cr_assert_eq(r.code, 0, "create --wait: exit %d: %s", r.code, r.err);
	run_free(&r);

	floe_run(&r, url, "replicas", "logs-ep");
	if (r.code == 1 && strstr(r.err, "(HTTP 405)")) {
		/* floed without the replicas and logs routes (obs-contract.md). */
		run_free(&r);
		free(engine);
		free(url);
		FLOED_STOP_OK(f);
		cr_assert(false, "floed has no replicas route yet (GET .../replicas answered 405)");
	}
	cr_expect_eq(r.code, 0, "replicas: exit %d: %s", r.code, r.err);
	cr_expect(strncmp(r.out, "ID ", 3) == 0 && strstr(r.out, "STATE") && strstr(r.out, "PID") &&
			  strstr(r.out, "COLD START") && strstr(r.out, "UPTIME") &&
			  strstr(r.out, "IN FLIGHT") && strstr(r.out, "GPUS"),
		  "header: %s", r.out);
	char *line = line_with(r.out, " ready ");
	cr_expect(line && strstr(line, " fresh "), "no ready replica with a fresh start: %s",
		  r.out);
	free(line);
	run_free(&r);
	floe_run(&r, url, "replicas", "logs-ep", "--json");
	cr_expect_eq(r.code, 0);
	json_t *v = json_loads(r.out, 0, NULL);
	json_t *items = json_object_get(v, "items");
	cr_assert_eq(json_array_size(items), 1, "%s", r.out);
	char *id = xstrdup(json_string_value(json_object_get(json_array_get(items, 0), "id")));
	json_int_t pid = json_integer_value(json_object_get(json_array_get(items, 0), "pid"));
	cr_expect(pid > 0 && kill((pid_t)pid, 0) == 0, "pid %lld is not alive", (long long)pid);
	json_decref(v);
	run_free(&r);

	/* --tail N: the last N lines, of the newest replica or the one named. */
	cr_assert(WAIT_UNTIL(logs_have(url, "engine line 3"), 10000),
		  "the engine's output is not in its log");
	floe_run(&r, url, "endpoint", "logs", "logs-ep", "--tail", "2", "--replica", id);
	cr_expect_eq(r.code, 0, "logs: exit %d: %s", r.code, r.err);
	cr_expect_eq(count_lines(r.out), 2, "--tail 2 gave: %s", r.out);
	run_free(&r);
	floe_run(&r, url, "endpoint", "logs", "logs-ep", "--replica", "nope-1");
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "(HTTP 404)"), "%s", r.err);
	run_free(&r);

	/* -f: a line the engine writes after floe started arrives while it
	 * runs; Ctrl-C ends it with exit 0. */
	const char *const fargs[] = { "endpoint", "logs", "logs-ep", "-f", "--tail", "0", NULL };
	int fd;
	pid_t fpid = floe_spawn(url, fargs, &fd);
	struct floe_buf got = FLOE_BUF_INIT;
	harness_sleep_ms(500);
	cr_expect_eq(http_status("GET", floed_url(f, "/endpoints/logs-ep/hello-from-cli"), NULL),
		     200);
	bool seen = WAIT_UNTIL((drain_fd(fd, &got), strstr(got.data, "engine got /hello-from-cli")),
			       10000);
	cr_expect(seen, "the line did not arrive: %s", got.data ? got.data : "");
	kill(fpid, SIGINT);
	int status = 0;
	bool ended = WAIT_UNTIL(waitpid(fpid, &status, WNOHANG) == fpid, 10000);
	if (!ended) {
		kill(fpid, SIGKILL);
		waitpid(fpid, &status, 0);
	}
	cr_expect(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "floe logs -f after Ctrl-C: ended %d status %#x", ended, status);
	close(fd);
	floe_buf_destroy(&got);
	free(id);
	free(engine);
	free(url);
	FLOED_STOP_OK(f);
}

Test(cli, endpoint_token_from_floe_token_reaches_floed_and_is_never_printed)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk, "endpoints:\n"
		     "  - name: alice-chat\n    engine: sim\n    namespace: alice\n");
	char *url = api_base(f);
	struct run r;
	/* The namespace comes from the token (whoami). */
	floe_run_tok(&r, url, tk.alice, "endpoint", "ls");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.out, "alice-chat "), "%s", r.out);
	cr_expect(!strstr(r.out, tk.alice) && !strstr(r.err, tk.alice), "the token was printed");
	run_free(&r);
	floe_run_tok(&r, url, tk.alice, "endpoint", "describe", "alice-chat", "--json");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(!strstr(r.out, tk.alice) && !strstr(r.err, tk.alice), "the token was printed");
	run_free(&r);
	/* bob's token sees none of alice's. */
	floe_run_tok(&r, url, tk.bob, "endpoint", "ls");
	cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(!strstr(r.out, "alice-chat"), "%s", r.out);
	run_free(&r);
	floe_run_tok(&r, url, tk.bob, "endpoint", "pause", "alice-chat", "--namespace", "alice");
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "(HTTP 403)"), "%s", r.err);
	cr_expect(!strstr(r.err, tk.bob), "the token was printed");
	run_free(&r);
	/* No token: floed's 401. */
	floe_run(&r, url, "endpoint", "ls");
	cr_expect_eq(r.code, 1);
	cr_expect(strstr(r.err, "(HTTP 401)"), "%s", r.err);
	run_free(&r);
	free(url);
	FLOED_STOP_OK(f);
}
