/*
 * Integration tests for floe-sim, the reference engine: each test starts the real binary on an
 * ephemeral loopback port and talks to it with libcurl (or a raw socket, where the exact bytes on
 * the wire matter). Every process a test starts is stopped by PID in the suite's fini, also when
 * the test fails.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- processes ------------------------------------------------------------------------------ */

struct sim {
	pid_t pid;
	int port;
	char log[64];
};

static struct sim sims[4];
static int nsims;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A port nobody listens on: bind port 0, read it back, release it. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static const char *sim_binary(void)
{
	static char path[4096];
	const char *dir = getenv("FLOE_BUILD_DIR");
	snprintf(path, sizeof(path), "%s/floe-sim", dir && *dir ? dir : "./build-sim");
	return path;
}

/* Starts floe-sim with extra arguments (NULL-terminated); its stderr goes to s->log. */
static struct sim *sim_spawn(const char *const extra[])
{
	cr_assert_lt(nsims, 4);
	struct sim *s = &sims[nsims];
	s->port = free_port();
	snprintf(s->log, sizeof(s->log), "/tmp/itest-sim-%d-%d.log", (int)getpid(), nsims);
	char port[16];
	snprintf(port, sizeof(port), "%d", s->port);
	const char *argv[32] = { sim_binary(), "--port", port, "--host", "127.0.0.1" };
	int argc = 5;
	for (int i = 0; extra && extra[i]; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* The engine dies with the test process, even if criterion kills it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	nsims++;
	return s;
}

static bool sim_alive(struct sim *s)
{
	if (s->pid <= 0)
		return false;
	if (waitpid(s->pid, NULL, WNOHANG) == 0)
		return true;
	s->pid = 0; /* reaped: never signal a recycled PID */
	return false;
}

/* SIGTERM, then wait (up to 10 s) for the exit status; -1 if it had to be killed. */
static int sim_stop(struct sim *s)
{
	int status = 0;
	cr_assert_gt(s->pid, 0, "floe-sim already exited");
	kill(s->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(s->pid, &status, WNOHANG);
		if (r == s->pid) {
			s->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		sleep_ms(10);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
	return -1;
}

static bool log_contains(struct sim *s, const char *needle)
{
	static char buf[1 << 20];
	FILE *f = fopen(s->log, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, needle) != NULL;
}

/* The end of every test: each engine still running stops on SIGTERM with status 0, and its log
 * has no sanitizer report (the suite also runs under ASan and UBSan). */
static void sims_stop_clean(void)
{
	for (int i = 0; i < nsims; i++) {
		struct sim *s = &sims[i];
		if (s->pid > 0)
			cr_assert_eq(sim_stop(s), 0, "floe-sim %d did not exit cleanly", i);
		cr_assert_not(log_contains(s, "runtime error"), "UBSan report in %s", s->log);
		cr_assert_not(log_contains(s, "Sanitizer"), "ASan report in %s", s->log);
	}
}

static void suite_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	nsims = 0;
}

static void suite_fini(void)
{
	for (int i = 0; i < nsims; i++) {
		if (getenv("SIM_TEST_KEEP_LOGS")) {
			char cmd[128];
			snprintf(cmd, sizeof(cmd), "cat %s >&2", sims[i].log);
			if (system(cmd)) {
			}
		}
		if (sims[i].pid > 0) {
			kill(sims[i].pid, SIGKILL);
			waitpid(sims[i].pid, NULL, 0);
			sims[i].pid = 0;
		}
		unlink(sims[i].log);
	}
	nsims = 0;
	curl_global_cleanup();
}

TestSuite(sim, .init = suite_init, .fini = suite_fini, .timeout = 60);

/* ---- HTTP through libcurl ------------------------------------------------------------------- */

struct resp {
	long status;
	char *body, *headers;
	size_t len, hlen;
	double t_start, t_first_event, t_last_event;
	int events;
	long connects;
};

static void resp_free(struct resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Records when SSE events arrive: the time of the first and of the last "data:" line. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb;
	int ev = 0;
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(data + i, "data:", 5) == 0)
			ev++;
	if (ev) {
		double t = now_ms() - r->t_start;
		if (r->events == 0)
			r->t_first_event = t;
		r->t_last_event = t;
		r->events += ev;
	}
	append(&r->body, &r->len, data, n);
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	append(&r->headers, &r->hlen, data, size * nmemb);
	return size * nmemb;
}

/* One request on a (possibly reused) curl handle. Returns the status, 0 if none came. */
static long http_on(CURL *h, struct sim *s, const char *method, const char *path, const char *body,
		    struct resp *r)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	memset(r, 0, sizeof(*r));
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	append(&r->body, &r->len, "", 0);
	r->t_start = now_ms();
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK)
		return r->status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
	return r->status;
}

static long http(struct sim *s, const char *method, const char *path, const char *body,
		 struct resp *r)
{
	CURL *h = curl_easy_init();
	long st = http_on(h, s, method, path, body, r);
	curl_easy_cleanup(h);
	return st;
}

/* Polls /health until 200 (10 s at most). */
static void sim_wait_ready(struct sim *s)
{
	for (int i = 0; i < 500; i++) {
		struct resp r;
		long st = http(s, "GET", "/health", NULL, &r);
		resp_free(&r);
		if (st == 200)
			return;
		cr_assert(sim_alive(s), "floe-sim exited before becoming ready");
		sleep_ms(20);
	}
	cr_assert_fail("floe-sim did not become ready");
}

static struct sim *sim_start(const char *const extra[])
{
	struct sim *s = sim_spawn(extra);
	sim_wait_ready(s);
	return s;
}

static json_t *parse_json(const struct resp *r)
{
	json_error_t err;
	json_t *j = json_loadb(r->body, r->len, 0, &err);
	cr_assert_not_null(j, "body is not JSON (%s): %s", err.text, r->body);
	return j;
}

static const char *jstr(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	cr_assert(json_is_string(v), "`%s` is not a string", key);
	return json_string_value(v);
}

static bool has_header(const struct resp *r, const char *line)
{
	return r->headers && strcasestr(r->headers, line) != NULL;
}

static int count_words(const char *s)
{
	int n = 0;
	bool in = false;
	for (; *s; s++) {
		bool sp = *s == ' ';
		n += !sp && !in;
		in = !sp;
	}
	return n;
}

/* Splits an SSE body into its data payloads; returns how many (at most max). */
static int sse_split(const char *body, char **out, int max)
{
	int n = 0;
	const char *p = body;
	while (*p && n < max) {
		cr_assert(strncmp(p, "data: ", 6) == 0, "event does not start with 'data: ': %.60s",
			  p);
		const char *end = strstr(p, "\n\n");
		cr_assert_not_null(end, "event not terminated by a blank line");
		out[n++] = strndup(p + 6, (size_t)(end - p - 6));
		p = end + 2;
	}
	cr_assert_eq(*p, '\0', "trailing bytes after the last event");
	return n;
}

/* ---- raw sockets ---------------------------------------------------------------------------- */

/* Sends req, then reads until the server closes (or 5 s pass). Returns the bytes (malloc'd). */
static char *raw_exchange(int port, const char *req, size_t len, bool *closed)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(write(fd, req, len), (ssize_t)len);
	char *out = NULL, buf[65536];
	size_t olen = 0;
	*closed = false;
	append(&out, &olen, "", 0);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			*closed = true;
		if (n <= 0)
			break;
		append(&out, &olen, buf, (size_t)n);
	}
	close(fd);
	return out;
}

/* A raw POST request with the right Content-Length (malloc'd). */
static char *raw_post(const char *path, const char *body)
{
	char *req = NULL;
	cr_assert(asprintf(&req, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
			   path, strlen(body), body) > 0);
	return req;
}

static int count_substr(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int err = errno;
	if (rc < 0) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* ---- tests: routes -------------------------------------------------------------------------- */

Test(sim, health_and_info)
{
	struct sim *s = sim_start((const char *const[]){ "--model", "tiny-1", NULL });
	struct resp r;
	cr_assert_eq(http(s, "GET", "/health", NULL, &r), 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
	cr_assert(has_header(&r, "Content-Type: application/json"));
	resp_free(&r);

	cr_assert_eq(http(s, "GET", "/info", NULL, &r), 200);
	json_t *j = parse_json(&r);
	cr_assert_str_eq(jstr(j, "model_id"), "tiny-1");
	cr_assert(json_is_string(json_object_get(j, "version")));
	cr_assert_eq(json_integer_value(json_object_get(j, "pid")), s->pid);
	cr_assert_eq(json_integer_value(json_object_get(j, "port")), s->port);
	cr_assert_eq(json_integer_value(json_object_get(j, "init_ms")), 0);
	cr_assert_eq(json_integer_value(json_object_get(j, "rss_mib")), 0);
	cr_assert(json_is_string(json_object_get(j, "memory_checksum")));
	cr_assert(json_is_number(json_object_get(j, "uptime_s")));
	cr_assert_geq(json_integer_value(json_object_get(j, "requests_served")), 1);
	json_decref(j);
	resp_free(&r);
	cr_assert(log_contains(s, "listening on 127.0.0.1:"));
	sims_stop_clean();
}

Test(sim, keep_alive_reuses_the_connection)
{
	struct sim *s = sim_start(NULL);
	CURL *h = curl_easy_init();
	struct resp r;
	cr_assert_eq(http_on(h, s, "GET", "/health", NULL, &r), 200);
	cr_assert_eq(r.connects, 1);
	resp_free(&r);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(http_on(h, s, "POST", "/generate", "{\"inputs\":\"x\"}", &r), 200);
		cr_assert_eq(r.connects, 0, "request %d opened a new connection", i);
		resp_free(&r);
	}
	curl_easy_cleanup(h);
	sims_stop_clean();
}

Test(sim, generate_is_deterministic)
{
	struct sim *s = sim_start(NULL);
	const char *req =
		"{\"inputs\":\"What is deep learning?\",\"parameters\":{\"max_new_tokens\":5}}";
	struct resp a, b, c;
	cr_assert_eq(http(s, "POST", "/generate", req, &a), 200);
	cr_assert_eq(http(s, "POST", "/generate", req, &b), 200);
	cr_assert_str_eq(a.body, b.body, "same request, different bodies");
	json_t *j = parse_json(&a);
	const char *text = jstr(j, "generated_text");
	cr_assert_eq(count_words(text), 5, "expected 5 tokens in '%s'", text);
	cr_assert_eq(
		http(s, "POST", "/generate",
		     "{\"inputs\":\"Something else entirely\",\"parameters\":{\"max_new_tokens\":5}}",
		     &c),
		200);
	json_t *k = parse_json(&c);
	cr_assert_str_neq(text, jstr(k, "generated_text"), "different prompts, same text");
	json_decref(j);
	json_decref(k);
	resp_free(&a);
	resp_free(&b);
	resp_free(&c);
	sims_stop_clean();
}

Test(sim, generate_stream_sse)
{
	struct sim *s = sim_start(NULL);
	const char *req = "{\"inputs\":\"stream me\",\"parameters\":{\"max_new_tokens\":5}}";
	struct resp plain, r;
	cr_assert_eq(http(s, "POST", "/generate", req, &plain), 200);
	json_t *pj = parse_json(&plain);
	cr_assert_eq(http(s, "POST", "/generate_stream", req, &r), 200);
	cr_assert(has_header(&r, "Content-Type: text/event-stream"));
	cr_assert(has_header(&r, "Transfer-Encoding: chunked"));
	char *ev[16];
	int n = sse_split(r.body, ev, 16);
	cr_assert_eq(n, 5);
	char text[1024] = "";
	for (int i = 0; i < n; i++) {
		json_t *e = json_loads(ev[i], 0, NULL);
		cr_assert_not_null(e, "event %d is not JSON: %s", i, ev[i]);
		json_t *tok = json_object_get(e, "token");
		cr_assert(json_is_integer(json_object_get(tok, "id")));
		cr_assert(json_is_real(json_object_get(tok, "logprob")));
		cr_assert(json_is_false(json_object_get(tok, "special")));
		strcat(text, jstr(tok, "text"));
		json_t *gt = json_object_get(e, "generated_text");
		if (i < n - 1)
			cr_assert(json_is_null(gt), "event %d has generated_text", i);
		else
			cr_assert_str_eq(json_string_value(gt), text);
		cr_assert(json_is_null(json_object_get(e, "details")));
		json_decref(e);
		free(ev[i]);
	}
	cr_assert_str_eq(text, jstr(pj, "generated_text"), "stream and /generate disagree");
	json_decref(pj);
	resp_free(&plain);
	resp_free(&r);
	sims_stop_clean();
}

Test(sim, chat_completions)
{
	struct sim *s = sim_start(NULL);
	const char *req = "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":"
			  "\"hello there\"}],\"max_tokens\":4}";
	struct resp a, b;
	cr_assert_eq(http(s, "POST", "/v1/chat/completions", req, &a), 200);
	cr_assert_eq(http(s, "POST", "/v1/chat/completions", req, &b), 200);
	cr_assert_str_eq(a.body, b.body);
	json_t *j = parse_json(&a);
	cr_assert_eq(strncmp(jstr(j, "id"), "chatcmpl-", 9), 0);
	cr_assert_str_eq(jstr(j, "object"), "chat.completion");
	cr_assert_str_eq(jstr(j, "model"), "demo");
	cr_assert(json_is_integer(json_object_get(j, "created")));
	json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
	cr_assert_eq(json_integer_value(json_object_get(ch, "index")), 0);
	cr_assert_str_eq(jstr(ch, "finish_reason"), "length");
	json_t *msg = json_object_get(ch, "message");
	cr_assert_str_eq(jstr(msg, "role"), "assistant");
	cr_assert_eq(count_words(jstr(msg, "content")), 4);
	json_t *u = json_object_get(j, "usage");
	cr_assert_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 2);
	cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), 4);
	cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), 6);
	json_decref(j);
	resp_free(&a);
	resp_free(&b);
	sims_stop_clean();
}

/* Streams an OpenAI route and checks chunk framing; returns the concatenated text (malloc'd). */
static char *openai_stream(struct sim *s, const char *path, const char *req, bool chat)
{
	struct resp r;
	cr_assert_eq(http(s, "POST", path, req, &r), 200);
	cr_assert(has_header(&r, "Content-Type: text/event-stream"));
	char *ev[64];
	int n = sse_split(r.body, ev, 64);
	cr_assert_geq(n, 3);
	cr_assert_str_eq(ev[n - 1], "[DONE]");
	char *text = calloc(1, 4096);
	int finishes = 0;
	for (int i = 0; i < n - 1; i++) {
		json_t *e = json_loads(ev[i], 0, NULL);
		cr_assert_not_null(e, "chunk %d is not JSON: %s", i, ev[i]);
		cr_assert_str_eq(jstr(e, "object"),
				 chat ? "chat.completion.chunk" : "text_completion");
		json_t *ch = json_array_get(json_object_get(e, "choices"), 0);
		cr_assert_not_null(ch);
		const char *t = chat ? json_string_value(json_object_get(
					       json_object_get(ch, "delta"), "content")) :
				       jstr(ch, "text");
		if (chat && i == 0)
			cr_assert_str_eq(jstr(json_object_get(ch, "delta"), "role"), "assistant");
		if (t)
			strcat(text, t);
		if (!json_is_null(json_object_get(ch, "finish_reason")))
			finishes++;
		json_decref(e);
	}
	cr_assert_eq(finishes, 1, "exactly one chunk carries finish_reason");
	for (int i = 0; i < n; i++)
		free(ev[i]);
	resp_free(&r);
	return text;
}

Test(sim, chat_completions_stream)
{
	struct sim *s = sim_start(NULL);
	struct resp a;
	cr_assert_eq(
		http(s, "POST", "/v1/chat/completions",
		     "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hey\"}],"
		     "\"max_tokens\":6}",
		     &a),
		200);
	json_t *j = parse_json(&a);
	const char *want =
		jstr(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
		     "content");
	char *got =
		openai_stream(s, "/v1/chat/completions",
			      "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":"
			      "\"hey\"}],\"max_tokens\":6,\"stream\":true}",
			      true);
	cr_assert_str_eq(got, want, "streamed and non-streamed text differ");
	free(got);
	json_decref(j);
	resp_free(&a);
	sims_stop_clean();
}

Test(sim, completions_both_ways)
{
	struct sim *s = sim_start(NULL);
	struct resp a;
	cr_assert_eq(http(s, "POST", "/v1/completions", "{\"prompt\":\"Once upon a time\"}", &a),
		     200);
	json_t *j = parse_json(&a);
	cr_assert_eq(strncmp(jstr(j, "id"), "cmpl-", 5), 0);
	cr_assert_str_eq(jstr(j, "object"), "text_completion");
	cr_assert_str_eq(jstr(j, "model"), "floe-sim");
	json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
	/* No max_tokens: the default 16 tokens, ending naturally. */
	cr_assert_eq(count_words(jstr(ch, "text")), 16);
	cr_assert_str_eq(jstr(ch, "finish_reason"), "stop");
	cr_assert_eq(
		json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")),
		4);
	char *got = openai_stream(s, "/v1/completions",
				  "{\"prompt\":\"Once upon a time\",\"stream\":true}", false);
	cr_assert_str_eq(got, jstr(ch, "text"));
	free(got);
	json_decref(j);
	resp_free(&a);
	sims_stop_clean();
}

static double norm2(json_t *vec)
{
	double sum = 0;
	size_t i;
	json_t *x;
	cr_assert_eq(json_array_size(vec), 32);
	json_array_foreach(vec, i, x) {
		cr_assert(json_is_number(x));
		sum += json_number_value(x) * json_number_value(x);
	}
	return sum;
}

/* Decodes base64 into out; returns the byte count, or 0 on a bad string. */
static size_t unbase64(const char *s, unsigned char *out, size_t max)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (; *s && *s != '='; s++) {
		const char *p = strchr(tab, *s);
		if (!p)
			return 0;
		acc = acc << 6 | (uint32_t)(p - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == max)
				return 0;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

Test(sim, embeddings)
{
	struct sim *s = sim_start(NULL);
	struct resp a, b;
	cr_assert_eq(http(s, "POST", "/embed", "{\"inputs\":[\"alpha\",\"beta\"]}", &a), 200);
	json_t *j = parse_json(&a);
	cr_assert(json_is_array(j));
	cr_assert_eq(json_array_size(j), 2);
	double n0 = norm2(json_array_get(j, 0)), n1 = norm2(json_array_get(j, 1));
	cr_assert(n0 > 0.999 && n0 < 1.001, "not normalised: %f", n0);
	cr_assert(n1 > 0.999 && n1 < 1.001, "not normalised: %f", n1);
	cr_assert_not(json_equal(json_array_get(j, 0), json_array_get(j, 1)));

	cr_assert_eq(
		http(s, "POST", "/v1/embeddings", "{\"input\":\"alpha\",\"model\":\"e5\"}", &b),
		200);
	json_t *o = parse_json(&b);
	cr_assert_str_eq(jstr(o, "object"), "list");
	cr_assert_str_eq(jstr(o, "model"), "e5");
	json_t *d0 = json_array_get(json_object_get(o, "data"), 0);
	cr_assert_str_eq(jstr(d0, "object"), "embedding");
	cr_assert_eq(json_integer_value(json_object_get(d0, "index")), 0);
	/* The same text gives the same vector on both routes. */
	cr_assert(json_equal(json_object_get(d0, "embedding"), json_array_get(j, 0)));
	cr_assert(json_is_integer(json_object_get(json_object_get(o, "usage"), "prompt_tokens")));

	/* encoding_format "base64" (the openai clients' default): little-endian float32 bytes. */
	struct resp c;
	cr_assert_eq(http(s, "POST", "/v1/embeddings",
			  "{\"input\":[\"alpha\"],\"encoding_format\":\"base64\"}", &c),
		     200);
	json_t *e = parse_json(&c);
	const char *b64 = jstr(json_array_get(json_object_get(e, "data"), 0), "embedding");
	unsigned char raw[32 * 4];
	cr_assert_eq(unbase64(b64, raw, sizeof(raw)), sizeof(raw));
	for (int d = 0; d < 32; d++) {
		uint32_t u = raw[d * 4] | raw[d * 4 + 1] << 8 | raw[d * 4 + 2] << 16 |
			     (uint32_t)raw[d * 4 + 3] << 24;
		float f;
		memcpy(&f, &u, 4);
		double want = json_number_value(json_array_get(json_array_get(j, 0), d));
		cr_assert(f - want < 1e-6 && want - f < 1e-6, "dimension %d: %f vs %f", d, f, want);
	}
	json_decref(e);
	resp_free(&c);
	json_decref(j);
	json_decref(o);
	resp_free(&a);
	resp_free(&b);
	sims_stop_clean();
}

Test(sim, metrics)
{
	struct sim *s = sim_start(NULL);
	struct resp r;
	cr_assert_eq(http(s, "GET", "/metrics", NULL, &r), 200);
	cr_assert(has_header(&r, "Content-Type: text/plain"));
	cr_assert_not_null(strstr(r.body, "# TYPE sim_queue_size gauge\nsim_queue_size 0\n"));
	cr_assert_not_null(
		strstr(r.body, "# TYPE sim_running_requests gauge\nsim_running_requests 0\n"));
	cr_assert_not_null(
		strstr(r.body, "# TYPE sim_requests_total counter\nsim_requests_total "));
	resp_free(&r);
	sims_stop_clean();
}

Test(sim, max_running_queues_and_disconnect_aborts)
{
	struct sim *s =
		sim_start((const char *const[]){ "--token-ms", "100", "--max-running", "1", NULL });
	/* Two long generations (50 tokens, 5 s): one runs, one waits for the slot. */
	char *req =
		raw_post("/generate", "{\"inputs\":\"a\",\"parameters\":{\"max_new_tokens\":50}}");
	int a = connect_to(s->port), b = connect_to(s->port);
	cr_assert(a >= 0 && b >= 0);
	cr_assert_eq(write(a, req, strlen(req)), (ssize_t)strlen(req));
	cr_assert_eq(write(b, req, strlen(req)), (ssize_t)strlen(req));
	bool seen = false;
	struct resp r;
	for (int i = 0; i < 200 && !seen; i++) {
		http(s, "GET", "/metrics", NULL, &r);
		seen = strstr(r.body, "\nsim_running_requests 1\n") &&
		       strstr(r.body, "\nsim_queue_size 1\n");
		resp_free(&r);
		if (!seen)
			sleep_ms(10);
	}
	cr_assert(seen, "expected one running and one queued request");
	free(req);
	/* Clients that go away: their requests are dropped, running and queued. */
	close(a);
	close(b);
	bool idle = false;
	for (int i = 0; i < 200 && !idle; i++) {
		http(s, "GET", "/metrics", NULL, &r);
		idle = strstr(r.body, "\nsim_running_requests 0\n") &&
		       strstr(r.body, "\nsim_queue_size 0\n");
		resp_free(&r);
		if (!idle)
			sleep_ms(10);
	}
	cr_assert(idle, "abandoned requests still counted");
	sims_stop_clean();
}

/* ---- tests: errors and protocol ------------------------------------------------------------- */

static void expect_error(struct sim *s, const char *method, const char *path, const char *body,
			 long status)
{
	struct resp r;
	cr_assert_eq(http(s, method, path, body, &r), status, "%s %s", method, path);
	json_t *j = parse_json(&r);
	cr_assert_not_null(json_object_get(j, "error"), "%s %s: no error in %s", method, path,
			   r.body);
	json_decref(j);
	resp_free(&r);
}

Test(sim, error_statuses)
{
	struct sim *s = sim_start(NULL);
	expect_error(s, "GET", "/nope", NULL, 404);
	expect_error(s, "POST", "/v1/nope", "{}", 404);
	expect_error(s, "GET", "/generate", NULL, 405);
	expect_error(s, "POST", "/health", "{}", 405);
	expect_error(s, "DELETE", "/v1/chat/completions", NULL, 405);
	expect_error(s, "POST", "/generate", "{not json", 400);
	expect_error(s, "POST", "/generate", "[1,2]", 400);
	expect_error(s, "POST", "/generate", "{\"parameters\":{}}", 400);
	expect_error(s, "POST", "/generate",
		     "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":0}}", 400);
	expect_error(s, "POST", "/v1/chat/completions", "{\"model\":\"m\"}", 400);
	expect_error(s, "POST", "/v1/chat/completions", "{\"messages\":[{\"content\":\"x\"}]}",
		     400);
	expect_error(s, "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":\"many\"}",
		     400);
	expect_error(s, "POST", "/embed", "{\"inputs\":[1]}", 400);
	expect_error(s, "POST", "/v1/embeddings", "{}", 400);

	struct resp r;
	cr_assert_eq(http(s, "GET", "/generate", NULL, &r), 405);
	cr_assert(has_header(&r, "Allow: POST"));
	resp_free(&r);

	/* Over 8 MiB: 413. */
	size_t big = 9u << 20;
	char *body = malloc(big + 1);
	memset(body, 'a', big);
	body[big] = '\0';
	expect_error(s, "POST", "/generate", body, 413);
	free(body);
	/* And it still serves. */
	cr_assert_eq(http(s, "GET", "/health", NULL, &r), 200);
	resp_free(&r);
	sims_stop_clean();
}

Test(sim, pipelined_requests_answered_in_order)
{
	struct sim *s = sim_start((const char *const[]){ "--token-ms", "20", NULL });
	const char req[] = "POST /generate HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n"
			   "{\"inputs\":\"a b\",\"parameters\":{\"max_new_tokens\":3}}"
			   "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
			   "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
			   "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
	bool closed;
	char *out = raw_exchange(s->port, req, sizeof(req) - 1, &closed);
	cr_assert(closed, "Connection: close was not honoured");
	const char *p1 = strstr(out, "{\"generated_text\":");
	const char *p2 = strstr(out, "{\"status\":\"ok\"}");
	const char *p3 = strstr(out, "HTTP/1.1 404 ");
	cr_assert(p1 && p2 && p3, "missing responses: %s", out);
	cr_assert(p1 < p2 && p2 < p3, "responses out of order: %s", out);
	/* Nothing is answered after the request that asked to close. */
	cr_assert_eq(count_substr(out, "HTTP/1.1 "), 3, "%s", out);
	free(out);
	sims_stop_clean();
}

Test(sim, http10_chunked_head_and_malformed)
{
	struct sim *s = sim_start(NULL);
	bool closed;
	char *out;
	/* HTTP/1.0 without keep-alive: answered, then closed. */
	const char r10[] = "GET /health HTTP/1.0\r\n\r\n";
	out = raw_exchange(s->port, r10, sizeof(r10) - 1, &closed);
	cr_assert(closed);
	cr_assert_eq(strncmp(out, "HTTP/1.1 200 ", 13), 0, "%s", out);
	cr_assert_not_null(strstr(out, "{\"status\":\"ok\"}"));
	free(out);

	/* A chunked request body, then Connection: close. */
	const char chunked[] =
		"POST /generate HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
		"Connection: close\r\n\r\n"
		"a\r\n{\"inputs\":\r\n"
		"f\r\n\"a b\",\"paramete\r\n"
		"19\r\nrs\":{\"max_new_tokens\":2}}\r\n"
		"0\r\n\r\n";
	out = raw_exchange(s->port, chunked, sizeof(chunked) - 1, &closed);
	cr_assert(closed);
	cr_assert_eq(strncmp(out, "HTTP/1.1 200 ", 13), 0, "%s", out);
	struct resp plain;
	cr_assert_eq(http(s, "POST", "/generate",
			  "{\"inputs\":\"a b\",\"parameters\":{\"max_new_tokens\":2}}", &plain),
		     200);
	cr_assert_not_null(strstr(out, plain.body), "chunked body gave a different answer");
	resp_free(&plain);
	free(out);

	/* HEAD: the headers of GET, no body. */
	const char head[] = "HEAD /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	out = raw_exchange(s->port, head, sizeof(head) - 1, &closed);
	cr_assert_not_null(strstr(out, "Content-Length: 15\r\n"));
	cr_assert_null(strstr(out, "status"), "HEAD response has a body: %s", out);
	free(out);

	/* Malformed HTTP and request smuggling shapes: 400 and the connection closes. */
	const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"GET /health HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /generate HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"POST /generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = raw_exchange(s->port, bad[i], strlen(bad[i]), &closed);
		cr_assert_eq(strncmp(out, "HTTP/1.1 400 ", 13), 0, "case %zu: %s", i, out);
		cr_assert(closed, "case %zu: connection left open", i);
		free(out);
	}
	struct resp r;
	cr_assert_eq(http(s, "GET", "/health", NULL, &r), 200);
	resp_free(&r);
	sims_stop_clean();
}

/* ---- tests: timing behaviour, initialisation, memory, signals -------------------------------- */

/* Tokens are written as their timers fire: with 200 ms per token the five events leave the engine
 * over 800 ms. The total has a hard lower bound (timers never fire early). The spread between the
 * first and the last arrival is checked against half its nominal value: a server that buffered
 * the stream delivers all events at once, while an honest one fails only if this test process is
 * kept off the CPU for over 400 ms. */
Test(sim, stream_is_incremental)
{
	struct sim *s = sim_start((const char *const[]){ "--token-ms", "200", NULL });
	struct resp r;
	cr_assert_eq(http(s, "POST", "/generate_stream",
			  "{\"inputs\":\"slow\",\"parameters\":{\"max_new_tokens\":5}}", &r),
		     200);
	cr_assert_eq(r.events, 5);
	cr_assert_geq(r.t_last_event - r.t_first_event, 400.0,
		      "events arrived together: first at %.0f ms, last at %.0f ms", r.t_first_event,
		      r.t_last_event);
	cr_assert_geq(r.t_last_event, 990.0);
	resp_free(&r);

	/* A non-streamed generation also takes tokens * token-ms. */
	double t0 = now_ms();
	cr_assert_eq(http(s, "POST", "/generate",
			  "{\"inputs\":\"slow\",\"parameters\":{\"max_new_tokens\":3}}", &r),
		     200);
	cr_assert_geq(now_ms() - t0, 590.0);
	resp_free(&r);
	sims_stop_clean();
}

Test(sim, health_503_while_initialising)
{
	struct sim *s = sim_spawn((const char *const[]){ "--init-ms", "3000", NULL });
	struct resp r;
	long st = 0;
	for (int i = 0; i < 500 && st == 0; i++) {
		st = http(s, "GET", "/health", NULL, &r);
		if (st == 0) {
			resp_free(&r);
			sleep_ms(10);
		}
	}
	/* The first answer comes while initialising (the port opens at once). */
	cr_assert_eq(st, 503);
	cr_assert_str_eq(r.body, "{\"status\":\"initializing\"}");
	resp_free(&r);
	struct resp g, info;
	long gst = http(s, "POST", "/generate", "{\"inputs\":\"x\"}", &g);
	cr_assert_eq(http(s, "GET", "/info", NULL, &info), 200);
	json_t *j = parse_json(&info);
	/* Requests made while initialising get 503; /info says so. */
	if (json_is_false(json_object_get(j, "ready")))
		cr_assert_eq(gst, 503);
	json_decref(j);
	resp_free(&g);
	resp_free(&info);
	sim_wait_ready(s);
	cr_assert_eq(http(s, "POST", "/generate", "{\"inputs\":\"x\"}", &g), 200);
	resp_free(&g);
	cr_assert(log_contains(s, "ready on 127.0.0.1:"));
	sims_stop_clean();
}

Test(sim, listen_after_init_keeps_port_closed)
{
	struct sim *s = sim_spawn(
		(const char *const[]){ "--init-ms", "3000", "--listen-after-init", NULL });
	/* Wait for the start line, so the port is checked while the engine is initialising. */
	for (int i = 0; i < 500 && !log_contains(s, "initialising"); i++)
		sleep_ms(5);
	cr_assert(log_contains(s, "initialising"));
	int fd = connect_to(s->port);
	int err = errno;
	bool ready = log_contains(s, "ready on");
	if (fd >= 0)
		close(fd);
	if (!ready) {
		cr_assert_lt(fd, 0, "port open during initialisation");
		cr_assert_eq(err, ECONNREFUSED);
	}
	cr_assert(sim_alive(s));
	sim_wait_ready(s);
	sims_stop_clean();
}

Test(sim, rss_mib_fills_memory)
{
	struct sim *s = sim_start((const char *const[]){ "--rss-mib", "64", NULL });
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long rss_kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &rss_kb) == 1)
			break;
	fclose(f);
	cr_assert_geq(rss_kb, 64L * 1024, "VmRSS %ld kB", rss_kb);

	struct resp r;
	cr_assert_eq(http(s, "GET", "/info?verify=1", NULL, &r), 200);
	json_t *j = parse_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(j, "rss_mib")), 64);
	cr_assert_eq(strlen(jstr(j, "memory_checksum")), 16);
	cr_assert(json_is_true(json_object_get(j, "memory_verified")));
	json_decref(j);
	resp_free(&r);
	sims_stop_clean();
}

Test(sim, sigterm_exits_zero)
{
	struct sim *s = sim_start(NULL);
	cr_assert_eq(sim_stop(s), 0);
	cr_assert(log_contains(s, "stopped"));
	sims_stop_clean();
}

Test(sim, sigterm_finishes_inflight_stream)
{
	struct sim *s = sim_start((const char *const[]){ "--token-ms", "100", NULL });
	int fd = connect_to(s->port);
	cr_assert(fd >= 0);
	char *req = raw_post("/generate_stream",
			     "{\"inputs\":\"a\",\"parameters\":{\"max_new_tokens\":5}}");
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	free(req);
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char *out = NULL, buf[4096];
	size_t len = 0;
	append(&out, &len, "", 0);
	bool signalled = false, eof = false;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			eof = n == 0;
			break;
		}
		append(&out, &len, buf, (size_t)n);
		/* The first token is out: the request is in flight. */
		if (!signalled && strstr(out, "data:")) {
			kill(s->pid, SIGTERM);
			signalled = true;
		}
	}
	close(fd);
	cr_assert(signalled);
	cr_assert(eof, "connection not closed after the drained response");
	cr_assert_eq(count_substr(out, "data: "), 5, "stream cut short: %s", out);
	cr_assert(len >= 5 && strcmp(out + len - 5, "0\r\n\r\n") == 0, "no last chunk: %s", out);
	free(out);
	int rc = sim_stop(s);
	cr_assert_eq(rc, 0, "exit status %d", rc);
	sims_stop_clean();
}
