/*
 * The Hugging Face shaped endpoint routes against the real floed, for
 * endpoints of the config file: list and describe, wait the way
 * huggingface_hub's wait() does (state, then GET {url}{healthRoute}),
 * pause, resume, scale to zero, and the refusals.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TestSuite(endpoint_api, .init = harness_test_init, .fini = harness_test_fini, .timeout = 180);

#define EP_YAML                                                       \
	"endpoints:\n"                                                \
	"  - name: chat\n"                                            \
	"    engine: sim\n"                                           \
	"    model: chat\n"                                           \
	"    args: [\"--model\", \"chat\", \"--init-ms\", \"500\"]\n" \
	"    snapshot: {enabled: false}\n"                            \
	"    scaling: {scale_to_zero_timeout: 10m}\n"
#define COLD(ep) "floe_cold_starts_total{endpoint=\"" ep "\",kind=\"fresh\"}"

/* method path [body] on the control plane as token (NULL: none): status, JSON in *out. */
static long call(struct floed *f, const char *method, const char *path, const char *token,
		 json_t **out)
{
	struct http_req req = { .method = method,
				.url = floed_api_url(f, path),
				.bearer = token,
				.body = strcmp(method, "POST") == 0 ? "" : NULL };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (out)
		*out = http_json(&r);
	http_resp_free(&r);
	return st;
}

static const char *sget(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static bool ends_in_z(const char *s)
{
	return s && strlen(s) > 10 && s[strlen(s) - 1] == 'Z';
}

/* The state of chat, as a client polling GET /v2/endpoint/default/chat sees it. */
static char state_buf[64];
static const char *state_of(struct floed *f)
{
	json_t *o = NULL;
	if (call(f, "GET", "/v2/endpoint/default/chat", NULL, &o) != 200) {
		json_decref(o);
		return "?";
	}
	snprintf(state_buf, sizeof(state_buf), "%s", sget(o, "status", "state"));
	json_decref(o);
	return state_buf;
}

Test(endpoint_api, describe_wait_pause_resume_scale_to_zero)
{
	struct floed *f = floed_start(EP_YAML);
	json_t *o = NULL;
	cr_assert_eq(call(f, "GET", "/api/whoami-v2", NULL, &o), 200);
	cr_expect_str_eq(sget(o, "name", NULL), "default");
	cr_expect_str_eq(sget(o, "type", NULL), "user");
	json_decref(o);

	cr_assert_eq(call(f, "GET", "/v2/endpoint/default", NULL, &o), 200);
	json_t *items = json_object_get(o, "items");
	cr_assert_eq(json_array_size(items), 1);
	json_t *e = json_array_get(items, 0);
	cr_expect_str_eq(sget(e, "name", NULL), "chat");
	cr_expect(sget(e, "type", NULL));
	cr_expect_str_eq(sget(e, "healthRoute", NULL), "/health");
	cr_expect_str_eq(sget(e, "model", "repository"), "chat");
	cr_expect(json_is_string(json_object_get(json_object_get(e, "model"), "framework")));
	cr_expect(json_object_get(json_object_get(e, "model"), "revision"), "revision missing");
	cr_expect(json_is_string(json_object_get(json_object_get(e, "model"), "task")));
	cr_expect(json_is_object(json_object_get(e, "compute")));
	cr_expect_str_eq(sget(e, "provider", "vendor"), "local");
	cr_expect_str_eq(sget(e, "status", "state"), "scaledToZero");
	cr_expect(ends_in_z(sget(e, "status", "createdAt")) &&
		  ends_in_z(sget(e, "status", "updatedAt")));
	const char *url = sget(e, "status", "url");
	cr_assert(url && strstr(url, "/endpoints/chat"), "status.url %s", url ? url : "(none)");
	char *health = xasprintf("%s/health", url);
	json_decref(o);

	/* The health route answers, and never wakes the endpoint. */
	cr_expect_eq(http_status("GET", health, NULL), 503);
	harness_sleep_ms(300);
	cr_expect_eq(floed_metric0(f, COLD("chat")), 0, "a health check woke the endpoint");

	/* A request wakes it; wait() polls the state, then the health route. */
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/chat/generate"), "{\"inputs\":\"x\"}"),
		200);
	cr_assert(WAIT_UNTIL(strcmp(state_of(f), "running") == 0, 15000), "state %s", state_buf);
	cr_expect_eq(http_status("GET", health, NULL), 200);

	/* Pause: replicas go, requests get 503 at once and do not wake it. */
	cr_assert_eq(call(f, "POST", "/v2/endpoint/default/chat/pause", NULL, &o), 200);
	cr_expect_str_eq(sget(o, "status", "state"), "paused");
	json_decref(o);
	cr_assert(WAIT_UNTIL(
		floed_metric0(f, "floe_replicas{endpoint=\"chat\",state=\"ready\"}") == 0, 15000));
	struct http_resp r;
	http_post(floed_url(f, "/endpoints/chat/generate"), "{\"inputs\":\"x\"}", &r, NULL);
	http_assert_error(&r, 503, "paused");
	http_resp_free(&r);
	cr_expect_eq(floed_metric0(f, COLD("chat")), 1, "a paused endpoint was woken");

	/* Resume; resuming again is "already running" (huggingface_hub relies on it). */
	cr_assert_eq(call(f, "POST", "/v2/endpoint/default/chat/resume", NULL, &o), 200);
	json_decref(o);
	struct http_req rq = { .method = "POST",
			       .url = floed_api_url(f, "/v2/endpoint/default/chat/resume"),
			       .body = "" };
	http_do(&rq, &r);
	cr_expect_eq(r.status, 400);
	cr_expect(strstr(http_body(&r), "already running"), "%s", http_body(&r));
	http_resp_free(&r);
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/chat/generate"), "{\"inputs\":\"x\"}"),
		200);

	/* Scale to zero: the replica goes; the next request wakes it again. */
	cr_assert_eq(call(f, "POST", "/v2/endpoint/default/chat/scale-to-zero", NULL, NULL), 200);
	cr_assert(WAIT_UNTIL(strcmp(state_of(f), "scaledToZero") == 0, 15000), "state %s",
		  state_buf);
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/chat/generate"), "{\"inputs\":\"x\"}"),
		200);
	cr_expect_eq(floed_metric0(f, COLD("chat")), 3);

	/* The file owns its endpoints' definitions. */
	cr_expect_eq(call(f, "PUT", "/v2/endpoint/default/chat", NULL, NULL), 409);
	cr_expect_eq(call(f, "DELETE", "/v2/endpoint/default/chat", NULL, NULL), 409);
	cr_expect_eq(call(f, "POST", "/v2/endpoint/default", NULL, NULL), 400,
		     "an empty create body");
	cr_expect_eq(call(f, "GET", "/v2/endpoint/default/nope", NULL, NULL), 404);
	cr_expect_eq(call(f, "GET", "/v2/endpoint/other/chat", NULL, NULL), 404);
	cr_expect_eq(call(f, "POST", "/v2/endpoint/default/chat/explode", NULL, NULL), 404);
	cr_expect_eq(call(f, "GET", "/v2/endpoint/default/chat/pause", NULL, NULL), 405);
	cr_expect_eq(call(f, "GET", "/v2/endpoint/Bad..Name", NULL, NULL), 404);
	free(health);
	FLOED_STOP_OK(f);
}

/* With tokens: whoami names the token's namespace; another namespace is 403,
 * no token 401. */
Test(endpoint_api, tokens_reach_their_namespace)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk, "endpoints:\n"
		     "  - name: chat\n    engine: sim\n    namespace: alice\n");
	json_t *o = NULL;
	cr_expect_eq(call(f, "GET", "/api/whoami-v2", NULL, NULL), 401);
	cr_assert_eq(call(f, "GET", "/api/whoami-v2", tk.alice, &o), 200);
	cr_expect_str_eq(sget(o, "name", NULL), "alice");
	json_decref(o);
	cr_assert_eq(call(f, "GET", "/v2/endpoint/alice", tk.alice, &o), 200);
	cr_expect_eq(json_array_size(json_object_get(o, "items")), 1);
	json_decref(o);
	cr_expect_eq(call(f, "GET", "/v2/endpoint/alice", tk.bob, NULL), 403);
	cr_expect_eq(call(f, "POST", "/v2/endpoint/alice/chat/pause", tk.bob, NULL), 403);
	cr_assert_eq(call(f, "GET", "/v2/endpoint/bob", tk.bob, &o), 200);
	cr_expect_eq(json_array_size(json_object_get(o, "items")), 0);
	json_decref(o);
	cr_expect_eq(call(f, "GET", "/v2/provider/alice", NULL, NULL), 401);
	cr_expect_eq(call(f, "GET", "/v2/provider/alice", tk.bob, NULL), 403);
	cr_expect_eq(call(f, "GET", "/v2/provider/alice", tk.alice, NULL), 200);
	FLOED_STOP_OK(f);
}

/* MemTotal of /proc/meminfo, bytes. */
static long long mem_total(void)
{
	FILE *fp = fopen("/proc/meminfo", "re");
	long long kb = 0;
	cr_assert(fp);
	cr_assert_eq(fscanf(fp, "MemTotal: %lld kB", &kb), 1);
	fclose(fp);
	return kb * 1024;
}

/*
 * GET /v2/provider/{ns}: this machine's compute as the machine says it is
 * (CPUs, memory, GPUs: none on the CI machine), and Hugging Face's compute
 * items priced from billing.prices.
 */
Test(endpoint_api, provider_lists_this_machine)
{
	struct floed *f = floed_start("billing:\n  currency: EUR\n  prices:\n    cpu: 0.25\n");
	json_t *o = NULL;
	cr_assert_eq(call(f, "GET", "/v2/provider/default", NULL, &o), 200);
	json_t *cpu = json_object_get(o, "cpu");
	cr_expect_eq(json_integer_value(json_object_get(cpu, "count")),
		     sysconf(_SC_NPROCESSORS_ONLN));
	cr_expect_eq(json_integer_value(json_object_get(o, "memoryBytes")), mem_total());
	json_t *gpus = json_object_get(o, "gpus");
	cr_assert(json_is_array(gpus));
	if (access("/proc/driver/nvidia/gpus", F_OK) != 0)
		cr_expect_eq(json_array_size(gpus), 0,
			     "GPUs listed on a machine without the driver");
	json_t *items = json_object_get(o, "items");
	cr_assert_eq(json_array_size(items), 1 + json_array_size(gpus));
	json_t *it = json_array_get(items, 0);
	cr_expect_str_eq(sget(it, "accelerator", NULL), "cpu");
	cr_expect_str_eq(sget(it, "instanceType", NULL), "cpu");
	cr_expect_str_eq(sget(it, "currency", NULL), "EUR");
	cr_expect_str_eq(sget(it, "vendor", NULL), "local");
	cr_expect_eq(json_real_value(json_object_get(it, "pricePerHour")), 0.25);
	json_decref(o);
	cr_expect_eq(call(f, "POST", "/v2/provider/default", NULL, NULL), 405);
	cr_expect_eq(call(f, "GET", "/v2/provider/Bad_NS", NULL, NULL), 404);
	FLOED_STOP_OK(f);
}

/* method path body on the control plane: status, JSON in *out (may be NULL). */
static long send_json(struct floed *f, const char *method, const char *path, const char *body,
		      json_t **out)
{
	static const char *const hdrs[] = { "Content-Type: application/json", NULL };
	struct http_req req = { .method = method,
				.url = floed_api_url(f, path),
				.body = body,
				.headers = hdrs };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (out)
		*out = http_json(&r);
	http_resp_free(&r);
	return st;
}

/* The body huggingface_hub's create_inference_endpoint sends (custom image:
 * floe's preset "sim" where Hugging Face would name a container). */
#define CREATE_BODY(name, min)                                                          \
	"{\"name\":\"" name "\",\"type\":\"protected\",\"accountId\":null,"             \
	"\"compute\":{\"accelerator\":\"cpu\",\"instanceType\":\"intel-icl\","          \
	"\"instanceSize\":\"x1\",\"scaling\":{\"minReplica\":" min ",\"maxReplica\":1," \
	"\"scaleToZeroTimeout\":15}},"                                                  \
	"\"model\":{\"repository\":\"" name "\",\"framework\":\"custom\",\"task\":"     \
	"\"text-generation\",\"revision\":null,\"image\":{\"custom\":{\"url\":\"sim\"," \
	"\"healthRoute\":\"/health\",\"port\":8000}},\"env\":{\"SIM_X\":\"1\"},"        \
	"\"secrets\":{\"HF_TOKEN\":\"hf_secret\"}},"                                    \
	"\"provider\":{\"region\":\"us-east-1\",\"vendor\":\"aws\"}}"

static char api_state_buf[64];
static const char *api_state(struct floed *f, const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/v2/endpoint/default/%s", name);
	json_t *o = NULL;
	snprintf(api_state_buf, sizeof(api_state_buf), "?");
	if (call(f, "GET", path, NULL, &o) == 200)
		snprintf(api_state_buf, sizeof(api_state_buf), "%s", sget(o, "status", "state"));
	json_decref(o);
	return api_state_buf;
}

/*
 * An endpoint created through the API the way huggingface_hub does it:
 * served at once, waited for like wait() (state running, then
 * GET {url}{healthRoute}), a chat completion through status.url, its
 * secrets never shown, pause kept across a restart, resume, an update that
 * merges, delete. Bad bodies get 400 with the field, a taken name 409.
 */
Test(endpoint_api, created_through_the_api_like_huggingface_hub)
{
	struct floed *f = floed_start("");
	json_t *o = NULL;
	cr_assert_eq(send_json(f, "POST", "/v2/endpoint/default", CREATE_BODY("api-ep", "1"), &o),
		     200, "create");
	cr_expect_str_eq(sget(o, "name", NULL), "api-ep");
	cr_expect_str_eq(sget(o, "type", NULL), "authenticated");
	char *dumped = json_dumps(o, 0);
	cr_expect_null(strstr(dumped, "hf_secret"), "a secret in the answer: %s", dumped);
	free(dumped);
	const char *u = sget(o, "status", "url");
	cr_assert(u);
	char *url = xstrdup(u);
	json_decref(o);

	/* wait(): poll the state until running, then the health route. */
	cr_assert(WAIT_UNTIL(strcmp(api_state(f, "api-ep"), "running") == 0, 20000), "state %s",
		  api_state_buf);
	char *health = xasprintf("%s/health", url);
	long hs = http_status("GET", health, NULL);
	cr_expect_eq(hs, 200, "GET %s: %ld", health, hs);
	char *chat_url = xasprintf("%s/v1/chat/completions", url);
	struct http_resp r;
	http_post(chat_url,
		  "{\"model\":\"api-ep\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		  &r, "Content-Type: application/json", NULL);
	cr_expect_eq(r.status, 200, "%s", http_body(&r));
	cr_expect(strstr(http_body(&r), "chat.completion"), "%s", http_body(&r));
	http_resp_free(&r);

	/* Refusals. */
	cr_expect_eq(send_json(f, "POST", "/v2/endpoint/default", CREATE_BODY("api-ep", "1"), NULL),
		     409);
	cr_expect_eq(send_json(f, "POST", "/v2/endpoint/default", CREATE_BODY("bad", "3"), &o),
		     400);
	const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
	cr_expect(m && strstr(m, "compute.scaling"), "message %s", m ? m : "(none)");
	json_decref(o);
	cr_expect_eq(send_json(f, "POST", "/v2/endpoint/default", "{not json", NULL), 400);
	cr_expect_eq(
		send_json(f, "PUT", "/v2/endpoint/default/api-ep", "{\"name\":\"other\"}", NULL),
		400, "a rename");

	/* Pause, kept across a restart. */
	cr_assert_eq(call(f, "POST", "/v2/endpoint/default/api-ep/pause", NULL, NULL), 200);
	floed_signal(f, SIGTERM);
	cr_assert_eq(floed_wait(f, 20000), 0);
	floed_restart(f);
	cr_expect_str_eq(api_state(f, "api-ep"), "paused");
	http_post(chat_url, "{}", &r, "Content-Type: application/json", NULL);
	cr_expect_eq(r.status, 503, "a paused endpoint answered %ld", r.status);
	http_resp_free(&r);
	cr_assert_eq(call(f, "POST", "/v2/endpoint/default/api-ep/resume", NULL, NULL), 200);
	cr_assert(WAIT_UNTIL(strcmp(api_state(f, "api-ep"), "running") == 0, 20000), "state %s",
		  api_state_buf);

	/* An update merges into what was sent before. */
	cr_assert_eq(send_json(f, "PUT", "/v2/endpoint/default/api-ep",
			       "{\"compute\":{\"scaling\":{\"maxReplica\":2}}}", &o),
		     200);
	json_t *sc = json_object_get(json_object_get(o, "compute"), "scaling");
	cr_expect_eq(json_integer_value(json_object_get(sc, "maxReplica")), 2);
	cr_expect_eq(json_integer_value(json_object_get(sc, "minReplica")), 1, "kept");
	cr_expect_str_eq(sget(o, "model", "repository"), "api-ep");
	json_decref(o);

	/* Delete: gone from the list, its replicas stop, requests get 404. */
	cr_assert_eq(call(f, "DELETE", "/v2/endpoint/default/api-ep", NULL, NULL), 200);
	cr_assert_eq(call(f, "GET", "/v2/endpoint/default", NULL, &o), 200);
	cr_expect_eq(json_array_size(json_object_get(o, "items")), 0);
	json_decref(o);
	cr_expect_eq(call(f, "GET", "/v2/endpoint/default/api-ep", NULL, NULL), 404);
	cr_assert(WAIT_UNTIL(
		floed_metric0(f, "floe_replicas{endpoint=\"api-ep\",state=\"ready\"}") == 0,
		20000));
	free(health);
	free(chat_url);
	free(url);
	FLOED_STOP_OK(f);
}

/* POST path on the data plane as token (NULL: none): the status; the
 * answer's JSON (the echo engine's) in *out, WWW-Authenticate in *www. */
static long data_post(struct floed *f, const char *path, const char *body, const char *token,
		      json_t **out, char **www)
{
	struct http_req req = { .url = floed_url(f, path), .body = body, .bearer = token };
	struct http_resp r;
	long st = http_do(&req, &r);
	if (out)
		*out = http_json(&r);
	if (www)
		*www = http_header(&r, "WWW-Authenticate");
	http_resp_free(&r);
	return st;
}

/* The Authorization header the echo engine received, or NULL. */
static const char *echoed_auth(json_t *echo)
{
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(echo, "headers"), i, h) {
		if (strcasecmp(json_string_value(json_array_get(h, 0)), "Authorization") == 0)
			return json_string_value(json_array_get(h, 1));
	}
	return NULL;
}

/*
 * The data plane's auth matrix (issue 5): `public` needs no token (and an
 * Authorization header is the engine's business, passed on); `authenticated`
 * wants a token of its namespace: 401 without one or with a bad one, 403
 * with another namespace's, and none of those wakes it or bills it; the
 * token is floe's and does not reach the engine. `private` answers
 * everyone without the right token exactly as a missing endpoint does, on
 * both routes (path and OpenAI model).
 */
Test(endpoint_api, data_plane_tokens)
{
	struct harness_tokens tk;
	struct floed *f = floed_start_with_tokens(
		&tk,
		"endpoints:\n" HARNESS_ECHO_EP(
			"pub") "    namespace: alice\n"
			       "    snapshot: {enabled: false}\n" HARNESS_ECHO_EP(
				       "auth") "    namespace: alice\n"
					       "    type: authenticated\n    snapshot: {enabled: false}\n"
					       "  - name: priv\n    engine: sim\n    model: priv-model\n    namespace: alice\n"
					       "    type: private\n    args: [\"--model\", \"priv-model\"]\n"
					       "    snapshot: {enabled: false}\n");

	/* public: open, and the engine's own Authorization passes through. */
	json_t *echo = NULL;
	cr_assert_eq(data_post(f, "/endpoints/pub/x", "{}", "engine-key-1", &echo, NULL), 200);
	cr_expect_str_eq(echoed_auth(echo), "Bearer engine-key-1");
	json_decref(echo);

	/* authenticated: every refusal, and nothing woke. */
	char *www = NULL;
	cr_assert_eq(data_post(f, "/endpoints/auth/x", "{}", NULL, NULL, &www), 401);
	cr_expect(www && strstr(www, "Bearer") && !strstr(www, "error="), "%s", www);
	free(www);
	cr_assert_eq(data_post(f, "/endpoints/auth/x", "{}", "floe_wrong", NULL, &www), 401);
	cr_expect(www && strstr(www, "invalid_token"), "%s", www);
	free(www);
	cr_assert_eq(data_post(f, "/endpoints/auth/x", "{}", tk.bob, NULL, NULL), 403);
	cr_expect_eq(floed_metric0(f, "floe_cold_starts_total{endpoint=\"auth\",kind=\"fresh\"}"),
		     0, "a refused request woke the endpoint");
	struct http_req sreq = { .url = floed_api_url(f, "/v2/billing/summary"),
				 .bearer = tk.alice };
	struct http_resp sr;
	cr_assert_eq(http_do(&sreq, &sr), 200);
	cr_expect(!strstr(http_body(&sr), "\"auth\""), "refused requests were billed: %s",
		  http_body(&sr));
	http_resp_free(&sr);

	/* ... and with alice's token it serves, without her token upstream. */
	cr_assert_eq(data_post(f, "/endpoints/auth/x", "{}", tk.alice, &echo, NULL), 200);
	cr_expect_null(echoed_auth(echo), "the token reached the engine: %s", echoed_auth(echo));
	json_decref(echo);

	/* private: indistinguishable from a missing endpoint without the token. */
	json_t *missing = NULL, *hidden = NULL;
	cr_assert_eq(data_post(f, "/endpoints/nope/generate", "{}", NULL, &missing, NULL), 404);
	cr_assert_eq(data_post(f, "/endpoints/priv/generate", "{}", NULL, &hidden, NULL), 404);
	json_t *m1 = json_object_get(json_object_get(missing, "error"), "message");
	json_t *m2 = json_object_get(json_object_get(hidden, "error"), "message");
	cr_expect(m1 && m2, "no error messages");
	char *want = xasprintf("endpoint 'priv' not found");
	cr_expect_str_eq(json_string_value(m2), want);
	free(want);
	json_decref(missing);
	json_decref(hidden);
	cr_assert_eq(data_post(f, "/endpoints/priv/generate", "{}", tk.bob, NULL, NULL), 404);
	const char *chat = "{\"model\":\"priv-model\",\"messages\":[{\"role\":\"user\","
			   "\"content\":\"hi\"}]}";
	cr_assert_eq(data_post(f, "/v1/chat/completions", chat, tk.bob, NULL, NULL), 404);
	cr_expect_eq(floed_metric0(f, "floe_cold_starts_total{endpoint=\"priv\",kind=\"fresh\"}"),
		     0, "a refused request woke the private endpoint");
	cr_assert_eq(data_post(f, "/v1/chat/completions", chat, tk.alice, NULL, NULL), 200);
	cr_assert_eq(data_post(f, "/endpoints/priv/generate", "{\"inputs\":\"x\"}", tk.alice, NULL,
			       NULL),
		     200);

	/* Tokens never reach floed's log. */
	char *log = floed_read_log(f);
	cr_expect(!strstr(log, tk.alice) && !strstr(log, tk.bob), "a token is in floed's log");
	free(log);
	FLOED_STOP_OK(f);
}

/* The states of GET .../history, comma-separated, oldest first. */
static char *history_states(struct floed *f, const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/v2/endpoint/default/%s/history", name);
	json_t *o = NULL;
	struct floe_buf b = FLOE_BUF_INIT;
	if (call(f, "GET", path, NULL, &o) == 200) {
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(o, "items"), i, ev) {
			const char *at = sget(ev, "at", NULL);
			cr_expect(ends_in_z(at), "history time %s", at ? at : "(none)");
			floe_buf_printf(&b, "%s%s", i ? "," : "", sget(ev, "state", NULL));
		}
	}
	json_decref(o);
	return b.data ? b.data : xstrdup("");
}

/*
 * PUT on a running endpoint: it says `updating` while a replica of the new
 * definition comes up by itself (no request needed; the running endpoint
 * stays up), then `running` again. A definition whose replicas cannot start
 * ends in `updateFailed`. Every state change is in the endpoint's history,
 * which survives a restart.
 */
Test(endpoint_api, update_replaces_replicas_and_history_is_kept)
{
	struct floed *f = floed_start("");
	cr_assert_eq(send_json(f, "POST", "/v2/endpoint/default", CREATE_BODY("upd", "0"), NULL),
		     200);
	cr_assert_eq(
		http_status("POST", floed_url(f, "/endpoints/upd/generate"), "{\"inputs\":\"x\"}"),
		200);
	cr_assert_str_eq(api_state(f, "upd"), "running");
	cr_assert_eq(send_json(f, "PUT", "/v2/endpoint/default/upd",
			       "{\"model\":{\"env\":{\"SIM_X\":\"2\"}}}", NULL),
		     200);
	/* No request is sent: the new replica starts because one was running. */
	cr_assert(WAIT_UNTIL(strcmp(api_state(f, "upd"), "running") == 0 &&
				     floed_metric0(f, COLD("upd")) == 2,
			     20000),
		  "state %s, cold starts %g", api_state_buf, floed_metric0(f, COLD("upd")));
	char *h = history_states(f, "upd");
	cr_expect(strstr(h, "pending,") == h, "history %s", h);
	cr_expect(strstr(h, "initializing,running,updating,running"), "history %s", h);
	free(h);

	/* A definition that cannot start: updateFailed, with the reason. */
	cr_assert_eq(send_json(f, "PUT", "/v2/endpoint/default/upd",
			       "{\"model\":{\"image\":{\"custom\":{\"url\":\"/bin/false\"}}}}",
			       NULL),
		     200);
	cr_assert(WAIT_UNTIL(strcmp(api_state(f, "upd"), "updateFailed") == 0, 20000), "state %s",
		  api_state_buf);
	json_t *o = NULL;
	cr_assert_eq(call(f, "GET", "/v2/endpoint/default/upd", NULL, &o), 200);
	const char *msg = sget(o, "status", "message");
	cr_expect(msg && strstr(msg, "failed"), "message %s", msg ? msg : "(none)");
	json_decref(o);

	/* The history is saved (off the loop): a restart keeps it. */
	h = history_states(f, "upd");
	floed_signal(f, SIGTERM);
	cr_assert_eq(floed_wait(f, 20000), 0);
	floed_restart(f);
	char *after = history_states(f, "upd");
	cr_expect(strncmp(after, h, strlen(h)) == 0, "before the restart %s, after %s", h, after);
	cr_expect(strstr(h, "updateFailed"), "history %s", h);
	free(after);
	free(h);
	cr_expect_eq(call(f, "POST", "/v2/endpoint/default/upd/history", NULL, NULL), 405);
	FLOED_STOP_OK(f);
}
