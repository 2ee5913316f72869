/*
 * Integration-test harness: runs the real floed (and floe-sim engines) on
 * ephemeral loopback ports and talks to them with libcurl, raw sockets and
 * /proc.
 *
 * Every helper is bounded in time: HTTP calls carry curl timeouts, waits
 * poll against a deadline, process stops escalate to SIGKILL by PID.
 *
 * Cleanup: put harness_test_init/harness_test_fini in the suite
 * (TestSuite(x, .init = harness_test_init, .fini = harness_test_fini)).
 * Every floed and sim started by the harness is registered; the fini stops
 * whatever the test did not stop itself (a test that aborted on a failed
 * assertion), printing floed's log tail first, and removes temp dirs.
 * Processes are started with PR_SET_PDEATHSIG so that a test worker killed
 * by a criterion timeout takes its floed with it.
 *
 * Functions that assert (cr_assert) say so; they must run on the test's
 * main thread.
 */
#ifndef FLOE_TEST_HARNESS_H
#define FLOE_TEST_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"

/* ------------------------------------------------------------------ */
/* Time and polling */

/** Monotonic clock, milliseconds. */
int64_t harness_now_ms(void);
/** Sleep for ms milliseconds (restarts on EINTR). */
void harness_sleep_ms(int ms);

/**
 * Evaluate cond every 50 ms until it holds or timeout_ms passes; the value
 * is whether it held (cond is evaluated once more at the deadline).
 */
#define WAIT_UNTIL(cond, timeout_ms)                                        \
	({                                                                  \
		int64_t wait__deadline = harness_now_ms() + (timeout_ms);   \
		bool wait__ok;                                              \
		for (;;) {                                                  \
			wait__ok = (cond);                                  \
			if (wait__ok || harness_now_ms() >= wait__deadline) \
				break;                                      \
			harness_sleep_ms(50);                               \
		}                                                           \
		wait__ok;                                                   \
	})

/** Suite hooks: see the file comment. */
void harness_test_init(void);
void harness_test_fini(void);

/** A fresh directory under /tmp (allocated path; removed by the caller). */
char *harness_mkdtemp(void);
/** rm -rf path (no symlink following). */
void harness_rmtree(const char *path);
/** Write a whole file. Returns 0 or -errno. */
int harness_write_file(const char *path, const char *text, size_t len);
/** Read a whole file (NUL-terminated, caller frees), NULL on error. */
char *harness_read_file(const char *path, size_t *len);
/** An unused loopback TCP port (bind port 0, read it, close). Asserts. */
int harness_free_port(void);

/* ------------------------------------------------------------------ */
/* floed */

/**
 * Config snippets: an endpoint NAME of the sim engine started with
 * --model NAME (so its bodies equal a direct sim_start(NAME)) and extra
 * args (a string of `, "--flag", "value"` items); and one of the echo
 * engine (see floed_start) on port 9000 inside its namespace.
 */
#define HARNESS_SIM_EP(name, extra_args) \
	"  - name: " name "\n"           \
	"    engine: sim\n"              \
	"    args: [\"--model\", \"" name "\"" extra_args "]\n"
#define HARNESS_ECHO_EP(name)                                            \
	"  - name: " name "\n"                                           \
	"    engine: custom\n"                                           \
	"    command: [\"/usr/bin/python3\", \"@ECHO_PY@\", \"9000\"]\n" \
	"    port: 9000\n"                                               \
	"    health_route: /health\n"

struct floed {
	pid_t pid;
	int port;          /* data plane, 127.0.0.1 */
	int api_port;      /* control plane, 127.0.0.1 */
	char *dir;         /* temp dir holding everything below; removed on stop */
	char *config_path; /* DIR/floed.yaml */
	char *data_dir;    /* DIR/data */
	char *log_path;    /* DIR/floed.log: floed's stdout and stderr */
	char *echo_py;     /* DIR/echo.py: see floed_start */
	char *yaml;        /* the yaml last written (floed_start, floed_reload), or NULL */
	bool exited;
	int exit_code; /* once exited: 0..255, or 128+signal */
};

/**
 * Start floed. yaml is the rest of the config file: the harness writes
 * listen, api_listen, data_dir and log_level itself (on fresh loopback
 * ports and a fresh temp dir), then yaml (endpoints:, limits:, ...).
 * In yaml, "@ECHO_PY@" is replaced by the path of a small Python HTTP
 * server (args: PORT) that answers GET /health with 200 and every other
 * request with JSON {"method","path","headers":[[name,value]...],"body",
 * "count"} (count: requests seen, /health excluded); paths starting with
 * /hop add the response headers "Connection: X-Resp-Hop", "X-Resp-Hop: 1",
 * "Keep-Alive: timeout=5", "X-Resp-End: 1". "@DIR@" is replaced by the
 * temp dir.
 * Waits (15 s) until GET /healthz on the control plane answers 200.
 * Asserts on failure (printing floed's log). Never returns NULL.
 */
struct floed *floed_start(const char *yaml);
/**
 * Like floed_start, with more control: yaml NULL starts floed without
 * --config (its embedded default). extra_args (NULL-terminated, may be NULL)
 * follow --config; then come --listen, --api-listen, --data-dir and
 * --log-level with the harness's values (equal to those in the file).
 */
struct floed *floed_start_argv(const char *yaml, const char *const *extra_args);
/** floed_start with a printf-formatted yaml. */
struct floed *floed_startf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Two fresh tokens: alice's (namespace alice) and bob's (namespace bob). */
struct harness_tokens {
	char alice[64], bob[64];
};

/** floed_start with auth.tokens holding two tokens made here, into t, then yaml. */
struct floed *floed_start_with_tokens(struct harness_tokens *t, const char *yaml);

/**
 * Start floed again after it exited (a kill -9 test): same config, ports and
 * data dir. Waits for /healthz like floed_start; asserts on failure.
 */
void floed_restart(struct floed *f);

/** Rewrite the config file (same harness header, same ports) with yaml and send SIGHUP. */
void floed_reload(struct floed *f, const char *yaml);

/** kill(pid, sig). Returns 0 or -errno. */
int floed_signal(struct floed *f, int sig);

/**
 * Wait until floed exits, at most timeout_ms. Returns its exit code
 * (0..255, or 128+signal when killed by one), -1 if it still runs.
 */
int floed_wait(struct floed *f, int timeout_ms);

struct floed_exit {
	int code; /* exit code as floed_wait; -1: did not exit within 15 s of SIGTERM (then SIGKILLed) */
	int leftover; /* replica processes (floe-init and engines) still alive 5 s after floed exited */
};

/**
 * Stop floed: SIGTERM (unless it already exited), wait 15 s, SIGKILL by PID
 * if needed; then check that the replica processes seen just before the
 * stop are gone (killing leftovers by PID), remove the temp dir and free f.
 * Prints the log tail when the exit is not clean. Does not assert.
 */
struct floed_exit floed_stop(struct floed *f);

/** Stop and expect exit code 0 and no leftover replica processes. */
#define FLOED_STOP_OK(f)                                                            \
	do {                                                                        \
		struct floed_exit stop__e = floed_stop(f);                          \
		cr_expect_eq(stop__e.code, 0, "floed exit code %d", stop__e.code);  \
		cr_expect_eq(stop__e.leftover, 0, "%d replica processes left over", \
			     stop__e.leftover);                                     \
	} while (0)

/** Print the last `lines` lines of floed's log (and engine logs) to stderr. */
void floed_print_log(struct floed *f, int lines);
/** floed's log so far (caller frees). */
char *floed_read_log(struct floed *f);

/**
 * "http://127.0.0.1:PORT" + path on the data plane (floed_url) or the
 * control plane (floed_api_url). The string lives in a ring of 16 static
 * buffers: use it right away (main thread only).
 */
const char *floed_url(const struct floed *f, const char *path);
const char *floed_api_url(const struct floed *f, const char *path);

/** Result of a one-shot floed run (floed_run). */
struct floed_run {
	int code; /* exit code (0..255, 128+signal), -1: still running at the deadline (killed) */
	char *output;      /* stdout and stderr together */
	char *config_path; /* the config file written, or NULL */
};

/**
 * Run floed to completion: if config_text is not NULL it is written verbatim
 * to a temp file and passed with --config; extra_args (NULL-terminated, may
 * be NULL) follow. --listen/--api-listen on free ports and --data-dir are
 * added after them, so a floed that wrongly starts does not clash with
 * anything. Waits timeout_ms, then SIGKILLs. Does not assert.
 */
void floed_run(const char *config_text, const char *const *extra_args, int timeout_ms,
	       struct floed_run *out);
void floed_run_free(struct floed_run *r);

/* ------------------------------------------------------------------ */
/* HTTP over libcurl */

struct http_req {
	const char *method; /* NULL: GET, or POST when body is set */
	const char *url;
	const char *body;           /* NULL: no body */
	size_t body_len;            /* 0: strlen(body) */
	const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
	const char *bearer;         /* a token sent as Authorization: Bearer, or NULL */
	bool chunked;               /* send the body with Transfer-Encoding: chunked */
	size_t chunk_size;          /* chunked: bytes per chunk (default 7) */
	long timeout_ms;            /* whole transfer; default 30000 */
	CURL *easy;                 /* reuse this handle (keep-alive); NULL: a fresh one */
};

struct http_chunk {
	int64_t t_ms; /* arrival, harness_now_ms() */
	size_t off;   /* offset in body */
	size_t len;
};

struct http_resp {
	CURLcode code;        /* CURLE_OK, or the transport error */
	long status;          /* 0 when no response head arrived */
	struct floe_buf head; /* header lines of the last response head, CRLF included */
	struct floe_buf body;
	struct http_chunk *chunks; /* one per write callback */
	size_t n_chunks, cap_chunks;
	int64_t t_start_ms;
	int64_t t_end_ms;
	long num_connects; /* CURLINFO_NUM_CONNECTS: new connections this transfer made */
	char error[CURL_ERROR_SIZE];
	atomic_size_t bytes; /* body bytes so far (readable from another thread) */
	atomic_bool abort;   /* set to make the transfer abort (client goes away) */
};

/** Perform req; returns resp->status (0 on transport failure). resp is initialised here. */
long http_do(const struct http_req *req, struct http_resp *resp);
/** GET url. */
long http_get(const char *url, struct http_resp *resp);
/** POST body; extra header lines follow, NULL-terminated. */
long http_post(const char *url, const char *body, struct http_resp *resp, ...)
	__attribute__((sentinel));
void http_resp_free(struct http_resp *resp);
/** Do a request, free the response, return its status (0 on transport failure). */
long http_status(const char *method, const char *url, const char *body);

/** Value of the last header `name` (case-insensitive), trimmed, allocated; NULL if absent. */
char *http_header(const struct http_resp *resp, const char *name);
/** Number of header lines named `name`. */
int http_header_count(const struct http_resp *resp, const char *name);
/** Parse the body as JSON (NULL if not JSON). */
json_t *http_json(const struct http_resp *resp);
/** The body as a NUL-terminated string ("" if empty). */
const char *http_body(const struct http_resp *resp);

/**
 * Assert resp is a floed JSON error: status, Content-Type application/json,
 * {"error":{"message":string,"type":type,"code":status}}. Asserts.
 */
void http_assert_error(const struct http_resp *resp, long status, const char *type);

/** Run n requests concurrently (curl multi); resps[i] is initialised here. */
void http_multi(const struct http_req *reqs, size_t n, struct http_resp *resps);

/** A request running on its own thread. */
struct http_bg;
/** Start req in the background (req's strings are copied; req->easy must be NULL). */
struct http_bg *http_bg_start(const struct http_req *req);
/** Body bytes received so far. */
size_t http_bg_bytes(struct http_bg *bg);
bool http_bg_done(struct http_bg *bg);
/** Make the client give up (closes its connection). */
void http_bg_abort(struct http_bg *bg);
/** Wait for the request to end (at most timeout_ms); its response, or NULL if still running. */
struct http_resp *http_bg_wait(struct http_bg *bg, int timeout_ms);
/** Abort if still running, join, free. */
void http_bg_free(struct http_bg *bg);

/* ------------------------------------------------------------------ */
/* Raw sockets: exact bytes, for malformed HTTP */

struct raw_resp {
	int status;           /* status code of the first response (llhttp), 0 if none parsed */
	bool complete;        /* the first response was complete */
	bool closed;          /* the server closed (EOF or reset) within the timeout */
	bool parse_error;     /* what came back is not valid HTTP */
	struct floe_buf data; /* every byte received */
	struct floe_buf body; /* the first response's body */
	struct floe_buf head; /* "name: value\n" lines of the first response */
};

/** Connect to 127.0.0.1:port (blocking, 5 s). Returns the fd or -errno. */
int raw_connect(int port);
/** Send all bytes (MSG_NOSIGNAL). Returns 0 or -errno (EPIPE/ECONNRESET when the server closed). */
int raw_send(int fd, const void *data, size_t len);
/**
 * Read from fd until the server closes or timeout_ms passes, parsing the
 * first response with llhttp (HTTP_RESPONSE). Initialises out.
 */
void raw_read(int fd, int timeout_ms, struct raw_resp *out);
/**
 * Connect, send bytes, raw_read(timeout_ms), close. Returns out->status.
 * Asserts that the connection could be made.
 */
int raw_exchange(int port, const void *data, size_t len, int timeout_ms, struct raw_resp *out);
void raw_resp_free(struct raw_resp *r);

/* ------------------------------------------------------------------ */
/* Prometheus /metrics */

/** GET /metrics on the control plane; the body (caller frees) or NULL. */
char *metrics_scrape(const struct floed *f);
/**
 * Value of one series in exposition text, e.g.
 * `floe_cold_starts_total{endpoint="demo",kind="fresh"}`. Labels match
 * regardless of order but as a whole set. -1 if absent.
 */
double metrics_find(const char *text, const char *series);
/** Scrape and find; -1 if absent or the scrape failed. */
double floed_metric(const struct floed *f, const char *series);
/** Like floed_metric, but absent counts as 0 (gauges and counters not yet exported). */
double floed_metric0(const struct floed *f, const char *series);
/** Whether the text has a sample of `family` (NAME, NAME_bucket/_sum/_count) or a # TYPE line for it. */
bool metrics_has_family(const char *text, const char *family);

/* ------------------------------------------------------------------ */
/* Processes via /proc */

/** Children of pid (all its threads). Returns the count, at most max stored. */
size_t proc_children(pid_t pid, pid_t *out, size_t max);
/** The process exists and is not a zombie. */
bool proc_alive(pid_t pid);
/** /proc/PID/comm equals name. */
bool proc_comm_is(pid_t pid, const char *name);
/** One of the process's argv entries equals arg. */
bool proc_cmdline_has(pid_t pid, const char *arg);

/** floed's floe-init children (one per replica). */
size_t floed_inits(const struct floed *f, pid_t *out, size_t max);
/** Children of floed's floe-init processes (the engines). */
size_t floed_engines(const struct floed *f, pid_t *out, size_t max);
/** Inits and engines together. */
size_t floed_replica_pids(const struct floed *f, pid_t *out, size_t max);
/** The engine whose argv has an entry equal to arg (e.g. a model name), 0 if none. */
pid_t floed_engine_with_arg(const struct floed *f, const char *arg);

/* ------------------------------------------------------------------ */
/* Direct floe-sim, for reference bodies */

struct sim {
	pid_t pid;
	int port;
	char *dir; /* temp dir with the log */
	char url[64];
};

/**
 * Start $FLOE_BUILD_DIR/floe-sim --port P --model MODEL --init-ms 0 plus
 * extra_args (NULL-terminated, may be NULL), wait (15 s) until GET /health
 * answers 200. Asserts.
 */
struct sim *sim_start(const char *model, const char *const *extra_args);
/** SIGTERM, wait, SIGKILL if needed, remove its dir, free. */
void sim_stop(struct sim *s);
/** POST body to the sim's path; the response body (allocated) or NULL on non-200. */
char *sim_post(struct sim *s, const char *path, const char *body, size_t *len);

/* ------------------------------------------------------------------ */
/* Response details floed adds */

/**
 * Find metric `name` in a Server-Timing value ("hold;dur=12, cold-start;
 * dur=480;desc=\"fresh\""). Returns true if present; *dur gets dur (or -1
 * without one), desc (if not NULL) the unquoted desc ("" without one).
 */
bool server_timing_get(const char *value, const char *name, double *dur, char *desc,
		       size_t desc_size);
/** N of "ENDPOINT-N" in an X-Floe-Replica value, -1 if it does not match. */
int replica_seq(const char *value, const char *endpoint);

#endif
