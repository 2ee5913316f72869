/*
 * libFuzzer target for runtime/base/config: arbitrary bytes go to
 * floe_config_load_string as a config file named "fuzz.yaml", with the
 * source tree's images/ as the presets directory (so "engine: sim" and the
 * other shipped presets resolve as they do for floed).
 *
 * Invariants (a violation aborts, which libFuzzer reports as a crash):
 * - no crash, leak or undefined behaviour (build with ASan + UBSan);
 * - on failure: the return value is negative and equals err.code; *out is
 *   untouched; err.msg is "fuzz.yaml:N: message" with 1 <= N <= the number
 *   of lines the input can have, and a non-empty message;
 * - on success: err is clear; every endpoint has a valid, unique name
 *   (found by floe_config_endpoint), a non-empty NULL-terminated argv, a
 *   health route starting with '/', and scaling within its documented
 *   bounds; floe_endpoint_config_dup gives a deep copy that
 *   floe_endpoint_config_equal finds equal to the original, and a copy with
 *   a changed argument is not equal;
 * - loading the same bytes twice gives the same verdict and equal endpoints.
 *
 * Presets: $FLOE_SOURCE_DIR/images, else the source tree that scripts/fuzz
 * compiled in (-DFUZZ_SOURCE_DIR), else ./images.
 *
 * Build and run: see tests/fuzz/README.md or scripts/fuzz config.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "xalloc.h"

#define NAME "fuzz.yaml"
#define BINDIR "/opt/floe/bin"

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

#define CHECK(cond, ...)                                                                    \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz_config: %s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                                           \
			fprintf(stderr, __VA_ARGS__);                                       \
			fputc('\n', stderr);                                                \
			abort();                                                            \
		}                                                                           \
	} while (0)

static char *presets_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *src = getenv("FLOE_SOURCE_DIR");
	if (!src || !src[0])
		src = FUZZ_SOURCE_DIR;
	presets_dir = xasprintf("%s/images", src);
	/* Without the presets every "engine: sim" fails as unknown and the
	 * fuzzer never gets past endpoint resolution: refuse to run blind. */
	char *probe = xasprintf("%s/sim.yaml", presets_dir);
	struct stat st;
	if (stat(probe, &st) < 0) {
		fprintf(stderr, "fuzz_config: no presets at %s (set FLOE_SOURCE_DIR)\n",
			presets_dir);
		exit(1);
	}
	free(probe);
	return 0;
}

/*
 * The most lines libyaml can count in the input: it breaks lines at LF,
 * CR, NEL (U+0085) and U+2028/U+2029, and decodes UTF-16 when the input
 * starts with its BOM (then every pair of bytes may be a break). At the
 * end of the stream it forces a line break when the last line has no
 * newline, so an error there is on the line after the last one.
 */
static size_t max_lines(const uint8_t *d, size_t len)
{
	if (len >= 2 && ((d[0] == 0xff && d[1] == 0xfe) || (d[0] == 0xfe && d[1] == 0xff)))
		return len / 2 + 1;
	size_t n = 1;
	if (len > 0 && d[len - 1] != '\n' && d[len - 1] != '\r')
		n++;
	for (size_t i = 0; i < len; i++) {
		if (d[i] == '\n' || d[i] == '\r')
			n++;
		else if (d[i] == 0xc2 && i + 1 < len && d[i + 1] == 0x85)
			n++;
		else if (d[i] == 0xe2 && i + 2 < len && d[i + 1] == 0x80 &&
			 (d[i + 2] == 0xa8 || d[i + 2] == 0xa9))
			n++;
	}
	return n;
}

static void check_error(const uint8_t *data, size_t len, int r, const floe_error *err)
{
	CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL, "err.msg not terminated");
	CHECK(err->code == r, "returned %d, err.code %d (%s)", r, err->code, err->msg);
	static const char prefix[] = NAME ":";
	CHECK(strncmp(err->msg, prefix, sizeof(prefix) - 1) == 0,
	      "message does not start with \"" NAME ":\": %s", err->msg);
	const char *p = err->msg + sizeof(prefix) - 1;
	char *end;
	long line = strtol(p, &end, 10);
	CHECK(end > p && p[0] >= '1' && p[0] <= '9', "no line number: %s", err->msg);
	CHECK(end[0] == ':' && end[1] == ' ' && end[2] != '\0', "no \": message\" after %ld: %s",
	      line, err->msg);
	size_t most = max_lines(data, len);
	CHECK(line >= 1 && (size_t)line <= most, "line %ld outside 1..%zu: %s", line, most,
	      err->msg);
}

static bool is_endpoint_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 63 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static void check_endpoint(const struct floe_config *cfg, const struct floe_endpoint_config *ep)
{
	CHECK(ep->name && is_endpoint_name(ep->name), "bad endpoint name [%s]",
	      ep->name ? ep->name : "(null)");
	CHECK(floe_config_endpoint(cfg, ep->name) == ep, "lookup of %s finds another endpoint",
	      ep->name);
	CHECK(ep->engine && ep->engine[0], "%s: no engine", ep->name);
	CHECK(ep->argv && ep->argc > 0, "%s: empty argv", ep->name);
	for (size_t i = 0; i < ep->argc; i++)
		CHECK(ep->argv[i] != NULL, "%s: argv[%zu] is NULL (argc %zu)", ep->name, i,
		      ep->argc);
	CHECK(ep->argv[ep->argc] == NULL, "%s: argv not NULL-terminated", ep->name);
	CHECK(ep->argv[0][0] != '\0', "%s: argv[0] is empty", ep->name);
	CHECK(ep->n_env == 0 || ep->env, "%s: %zu env entries, no array", ep->name, ep->n_env);
	for (size_t i = 0; i < ep->n_env; i++) {
		CHECK(ep->env[i].key && ep->env[i].key[0] && ep->env[i].value,
		      "%s: env[%zu] incomplete", ep->name, i);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(ep->env[i].key, ep->env[j].key) != 0, "%s: env key %s twice",
			      ep->name, ep->env[i].key);
	}
	CHECK(ep->port >= 1, "%s: port 0", ep->name);
	CHECK(ep->health_route && ep->health_route[0] == '/', "%s: health_route [%s]", ep->name,
	      ep->health_route ? ep->health_route : "(null)");
	CHECK(ep->ready == FLOE_READY_HTTP || ep->ready == FLOE_READY_TCP, "%s: ready %d", ep->name,
	      (int)ep->ready);
	CHECK(ep->queue_size >= 1, "%s: queue_size 0", ep->name);
	const struct floe_scaling *s = &ep->scaling;
	CHECK(s->max_replica >= 1 && s->max_replica >= s->min_replica,
	      "%s: min_replica %u, max_replica %u", ep->name, s->min_replica, s->max_replica);
	CHECK(s->target_concurrency >= 1, "%s: target_concurrency 0", ep->name);
	CHECK(ep->line >= 1, "%s: line %d", ep->name, ep->line);

	/* The runtime keeps a deep copy across reloads and compares with equal. */
	CHECK(floe_endpoint_config_equal(ep, ep), "%s: not equal to itself", ep->name);
	struct floe_endpoint_config *d = floe_endpoint_config_dup(ep);
	CHECK(d && d != ep, "%s: dup returned %p", ep->name, (void *)d);
	CHECK(floe_endpoint_config_equal(ep, d) && floe_endpoint_config_equal(d, ep),
	      "%s: dup is not equal to the original", ep->name);
	CHECK(d->argc == ep->argc && d->argv != ep->argv && d->argv[d->argc] == NULL,
	      "%s: dup's argv is not a copy", ep->name);
	for (size_t i = 0; i < ep->argc; i++)
		CHECK(d->argv[i] != ep->argv[i], "%s: dup shares argv[%zu]", ep->name, i);
	CHECK(d->name != ep->name && d->health_route != ep->health_route &&
		      (ep->n_env == 0 || d->env != ep->env),
	      "%s: dup shares strings", ep->name);
	/* A changed argument changes the process: equal must see it. */
	char *arg = d->argv[d->argc - 1];
	d->argv[d->argc - 1] = xasprintf("%s-", arg);
	free(arg);
	CHECK(!floe_endpoint_config_equal(ep, d), "%s: equal misses a changed argument", ep->name);
	floe_endpoint_config_free(d);
}

static void check_config(const struct floe_config *cfg)
{
	CHECK(cfg->path && strcmp(cfg->path, NAME) == 0, "path [%s]",
	      cfg->path ? cfg->path : "(null)");
	CHECK(cfg->listen_host && cfg->listen_port >= 1, "listen unset");
	CHECK(cfg->api_host && cfg->api_port >= 1, "api_listen unset");
	CHECK(cfg->data_dir && cfg->data_dir[0], "data_dir unset");
	CHECK(cfg->log_level, "log_level unset");
	CHECK(cfg->max_header_bytes >= 1024, "max_header_bytes %u", cfg->max_header_bytes);
	CHECK(cfg->n_endpoints == 0 || cfg->endpoints, "%zu endpoints, no array", cfg->n_endpoints);
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		check_endpoint(cfg, &cfg->endpoints[i]);
}

static int load(const uint8_t *data, size_t len, struct floe_config **out, floe_error *err)
{
	struct floe_config_env env = { .presets_dir = presets_dir, .bindir = BINDIR };
	/* Garbage in err first: the loader must clear or set it, not append. */
	memset(err, 'x', sizeof(*err));
	err->code = 12345;
	return floe_config_load_string((const char *)data, len, NAME, &env, out, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* A sentinel, not NULL: "untouched" also means not set to NULL. */
	struct floe_config *const sentinel = (struct floe_config *)&presets_dir;
	struct floe_config *cfg = sentinel;
	floe_error err;
	int r = load(data, len, &cfg, &err);
	if (r < 0) {
		CHECK(cfg == sentinel, "*out written on failure (%d: %s)", r, err.msg);
		check_error(data, len, r, &err);
	} else {
		CHECK(r == 0, "returned %d", r);
		CHECK(cfg != sentinel && cfg != NULL, "success without a config");
		CHECK(err.code == 0, "success with err.code %d: %.200s", err.code, err.msg);
		check_config(cfg);
	}

	/* The same bytes load the same way (no state leaks between loads). */
	struct floe_config *again = sentinel;
	floe_error err2;
	int r2 = load(data, len, &again, &err2);
	CHECK(r2 == r, "second load returned %d, first %d", r2, r);
	if (r < 0) {
		CHECK(strcmp(err.msg, err2.msg) == 0, "messages differ: [%s] [%s]", err.msg,
		      err2.msg);
		return 0;
	}
	CHECK(again->n_endpoints == cfg->n_endpoints, "second load: %zu endpoints, first %zu",
	      again->n_endpoints, cfg->n_endpoints);
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		CHECK(floe_endpoint_config_equal(&cfg->endpoints[i], &again->endpoints[i]),
		      "second load: endpoint %zu differs", i);
	floe_config_free(again);
	floe_config_free(cfg);
	return 0;
}
