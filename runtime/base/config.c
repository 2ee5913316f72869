/*
 * Configuration loading: YAML (libyaml's document API) walked against
 * declarative tables, one per section. Each table row is a key, its type,
 * its range, its default (written as it would be in YAML and parsed by the
 * same code as a user's value) and where the value goes (an offset in the
 * section's struct, or a setter). Every error is "FILE:LINE: PATH: message"
 * with the line taken from libyaml's marks, and a failed load frees all it
 * built.
 */
#define LOG_TAG "config"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "sha256.h"
#include "xalloc.h"

#ifndef FLOE_PRESETS_DIR
#define FLOE_PRESETS_DIR "/usr/share/floe/images"
#endif

/* A config file is small; anything bigger is a mistake (or an attack on
 * the parser), refused before libyaml sees it. */
#define CONFIG_MAX_BYTES (16u * 1024 * 1024)

#define MS_PER_S UINT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)

#define MAX_FIELDS 32
#define PATH_MAX_LEN 256

static const char *const placeholder_names[] = { "port", "model", "bindir", NULL };

/* ------------------------------------------------------------------------
 * Loader state and errors
 * ------------------------------------------------------------------------ */

struct preset_cache {
	struct floe_preset *preset; /* raw template: {bindir} not yet expanded */
	char *file;                 /* its path, for messages */
};

struct loader {
	const char *name; /* file name in messages */
	yaml_document_t *doc;
	floe_error *err;
	/* config loads only */
	const char *presets_dir;
	const char *bindir; /* NULL until needed, then env's or /proc/self/exe's */
	char *bindir_owned;
	struct preset_cache *presets;
	size_t n_presets;
};

#define LINE(node) ((int)(node)->start_mark.line + 1)

static int lerr(const struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int lerr(const struct loader *L, int line, const char *fmt, ...)
{
	char msg[FLOE_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return floe_error_set(L->err, -EINVAL, "%s:%d: %s", L->name, line, msg);
}

/* "endpoints[0].scaling" + "max_replica"; the top level has an empty path. */
static void path_join(char *out, const char *path, const char *key)
{
	if (path[0])
		snprintf(out, PATH_MAX_LEN, "%s.%s", path, key);
	else
		snprintf(out, PATH_MAX_LEN, "%s", key);
}

/* "PATH: " or "" at the top level, for messages about a section. */
static const char *path_prefix(const char *path, char *buf)
{
	if (!path[0])
		return "";
	snprintf(buf, PATH_MAX_LEN + 2, "%s: ", path);
	return buf;
}

/* ------------------------------------------------------------------------
 * Small parsers (public: durations and HOST:PORT)
 * ------------------------------------------------------------------------ */

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return 0;
}

int floe_duration_parse(const char *text, uint64_t *ms_out)
{
	if (!text)
		return -EINVAL;
	const char *end;
	uint64_t v;
	if (parse_u64(text, &end, &v) < 0)
		return -EINVAL;
	uint64_t mult;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = MS_PER_S;
	else if (strcmp(end, "m") == 0)
		mult = MS_PER_M;
	else if (strcmp(end, "h") == 0)
		mult = MS_PER_H;
	else if (strcmp(end, "d") == 0)
		mult = MS_PER_D;
	else
		return -EINVAL; /* bare integers too: seconds or milliseconds? */
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*ms_out = v * mult;
	return 0;
}

/* Format a millisecond count the way a user would write it. */
static void duration_format(uint64_t ms, char *out, size_t size)
{
	if (ms == 0)
		snprintf(out, size, "0s");
	else if (ms % MS_PER_D == 0)
		snprintf(out, size, "%" PRIu64 "d", ms / MS_PER_D);
	else if (ms % MS_PER_H == 0)
		snprintf(out, size, "%" PRIu64 "h", ms / MS_PER_H);
	else if (ms % MS_PER_M == 0)
		snprintf(out, size, "%" PRIu64 "m", ms / MS_PER_M);
	else if (ms % MS_PER_S == 0)
		snprintf(out, size, "%" PRIu64 "s", ms / MS_PER_S);
	else
		snprintf(out, size, "%" PRIu64 "ms", ms);
}

int floe_amount_parse(const char *text, uint64_t *micro_out)
{
	/* Prices are money: parsed as decimal digits, never through a binary
	 * float, so "0.1" is exactly 100000 millionths. */
	if (!text)
		return -EINVAL;
	const char *end;
	uint64_t whole, frac = 0;
	if (parse_u64(text, &end, &whole) < 0 || whole > UINT64_C(1000000000000))
		return -EINVAL;
	if (*end == '.') {
		const char *p = end + 1;
		int digits = 0;
		for (; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits == 6)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (digits == 0)
			return -EINVAL;
		for (; digits < 6; digits++)
			frac *= 10;
		end = p;
	}
	if (*end)
		return -EINVAL;
	*micro_out = whole * 1000000 + frac;
	return 0;
}

static bool is_name_host(const char *s, size_t n)
{
	/* A DNS name or dotted IPv4: letters, digits, '-', '.'. */
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static bool is_ipv6_literal(const char *s, size_t n)
{
	/* Inside brackets: hex digits, ':' and '.' (IPv4-mapped), an optional
	 * %zone. inet_pton does the real check when the daemon binds. */
	if (n < 2)
		return false;
	bool colon = false, zone = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (zone) {
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
				return false;
			continue;
		}
		if (c == ':')
			colon = true;
		else if (c == '%' && i > 0)
			zone = true;
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			   (c >= 'A' && c <= 'F') || c == '.'))
			return false;
	}
	return colon;
}

int floe_hostport_parse(const char *text, char **host, uint16_t *port)
{
	if (!text)
		return -EINVAL;
	const char *h, *colon;
	size_t hlen;
	if (text[0] == '[') {
		const char *rb = strchr(text, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = text + 1;
		hlen = (size_t)(rb - h);
		if (!is_ipv6_literal(h, hlen))
			return -EINVAL;
		colon = rb + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		h = text;
		hlen = (size_t)(colon - text);
		/* An unbracketed IPv6 address is ambiguous ("::1:8080"). */
		if (!is_name_host(h, hlen))
			return -EINVAL;
	}
	const char *end;
	uint64_t p;
	if (parse_u64(colon + 1, &end, &p) < 0 || *end || p < 1 || p > 65535)
		return -EINVAL;
	*host = xstrndup(h, hlen);
	*port = (uint16_t)p;
	return 0;
}

/* ------------------------------------------------------------------------
 * Validators for strings
 * ------------------------------------------------------------------------ */

static const char *check_endpoint_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return "must be 1 to 63 characters of [a-z0-9-], starting with a letter or digit";
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
		if (!ok)
			return "must be 1 to 63 characters of [a-z0-9-], starting with a letter or digit";
	}
	return NULL;
}

/* Preset names become file names: [a-z0-9]+ keeps '/' and ".." out. */
static bool is_preset_name(const char *s)
{
	if (!s[0] || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

static const char *check_engine(const char *s)
{
	return is_preset_name(s) ? NULL : "must be a preset name ([a-z0-9]+) or custom";
}

static const char *check_route(const char *s)
{
	if (s[0] != '/')
		return "must start with '/'";
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must not contain spaces or control characters";
	return NULL;
}

/* Instance types appear in CSV files and price tables: keep them plain. */
static const char *check_instance_type(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return "must be 1 to 63 characters of [a-z0-9._-], starting with a letter or digit";
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '-' || c == '.' || c == '_'));
		if (!ok)
			return "must be 1 to 63 characters of [a-z0-9._-], starting with a letter or digit";
	}
	return NULL;
}

static const char *check_currency(const char *s)
{
	if (strlen(s) != 3 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' ||
	    s[2] > 'Z')
		return "must be an ISO 4217 code: three capital letters (USD, EUR)";
	return NULL;
}

static const char *check_nonempty(const char *s)
{
	return s[0] ? NULL : "must not be empty";
}

static const char *check_env_name(const char *s)
{
	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return "is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)";
	for (const char *p = s + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return "is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)";
	return NULL;
}

/*
 * Placeholders are "{" [a-z_]+ "}"; any other brace is literal, so JSON
 * arguments ('{"max_tokens": 8}') pass through untouched. Calls fn for each
 * placeholder; stops at the first non-zero return.
 */
static int placeholders_each(const char *s, int (*fn)(const char *name, size_t n, void *arg),
			     void *arg)
{
	for (const char *p = s; *p; p++) {
		if (*p != '{')
			continue;
		const char *q = p + 1;
		while ((*q >= 'a' && *q <= 'z') || *q == '_')
			q++;
		if (q > p + 1 && *q == '}') {
			int r = fn(p + 1, (size_t)(q - p - 1), arg);
			if (r)
				return r;
			p = q;
		}
	}
	return 0;
}

static int placeholder_index(const char *name, size_t n)
{
	for (int i = 0; placeholder_names[i]; i++)
		if (strlen(placeholder_names[i]) == n && memcmp(placeholder_names[i], name, n) == 0)
			return i;
	return -1;
}

struct unknown_ph {
	char name[64];
};

static int find_unknown_ph(const char *name, size_t n, void *arg)
{
	if (placeholder_index(name, n) >= 0)
		return 0;
	struct unknown_ph *u = arg;
	snprintf(u->name, sizeof(u->name), "%.*s", (int)n, name);
	return 1;
}

static const char *check_placeholders(const char *s)
{
	static __thread char why[160];
	struct unknown_ph u;
	if (placeholders_each(s, find_unknown_ph, &u) == 0)
		return NULL;
	snprintf(why, sizeof(why), "unknown placeholder '{%s}' (known: {port}, {model}, {bindir})",
		 u.name);
	return why;
}

static int uses_model_ph(const char *name, size_t n, void *arg)
{
	(void)arg;
	return placeholder_index(name, n) == 1;
}

/* ------------------------------------------------------------------------
 * The tables
 * ------------------------------------------------------------------------ */

enum ftype {
	T_STRING,   /* char * at off */
	T_UINT,     /* unsigned integer of width bytes at off, in [min, max] */
	T_DURATION, /* uint64_t milliseconds at off, in [min, max] (max 0: none) */
	T_HOSTPORT, /* char *host at off, uint16_t port at off2 */
	T_CHOICE,   /* one of choices: set_choice(base, index), or the string at off */
	T_STRLIST,  /* char ** (NULL-terminated) at off; min 1: must not be empty */
	T_STRMAP,   /* struct floe_kv * at off, size_t count at off2 */
	T_SECTION,  /* a nested mapping: sub's fields at base + off */
	T_CUSTOM,   /* parse(L, node, base, path) */
	T_BOOL,     /* bool at off: true or false */
};

struct field {
	const char *key;
	enum ftype type;
	bool required;
	bool optional;   /* T_SECTION: when absent, left zeroed (no defaults, no required keys) */
	const char *def; /* default, as it would be written in YAML; NULL: none */
	uint64_t min, max;
	unsigned width;
	size_t off, off2;
	const char *const *choices;
	void (*set_choice)(void *base, unsigned idx);
	const char *(*check)(const char *value); /* strings, list items, map keys */
	const struct section *sub;
	int (*parse)(struct loader *L, yaml_node_t *node, void *base, const char *path);
};

struct seen {
	uint32_t mask;
	int line[MAX_FIELDS]; /* line of each given value */
	int map_line;         /* line of the section itself */
};

struct section {
	const struct field *fields;
	size_t n_fields;
	/* cross-field checks, after defaults */
	int (*validate)(struct loader *L, void *base, const struct seen *seen, const char *path);
};

#define FLD_UINT(k, T, m, d, lo, hi)                                      \
	{                                                                 \
		.key = k, .type = T_UINT, .def = d, .min = lo, .max = hi, \
		.width = sizeof(((T *)0)->m), .off = offsetof(T, m)       \
	}
#define FLD_DUR(k, T, m, d, lo)                                                          \
	{                                                                                \
		.key = k, .type = T_DURATION, .def = d, .min = lo, .off = offsetof(T, m) \
	}
#define FLD_STR(k, T, m, d, chk)                                                          \
	{                                                                                 \
		.key = k, .type = T_STRING, .def = d, .check = chk, .off = offsetof(T, m) \
	}

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const ready_kinds[] = { "http", "tcp", NULL }; /* enum floe_ready_kind order */

static void set_log_format(void *base, unsigned idx)
{
	((struct floe_config *)base)->log_json = idx == 1;
}

/* limits: fields live directly in struct floe_config */
static const struct field limits_fields[] = {
	FLD_UINT("max_header_bytes", struct floe_config, max_header_bytes, "65536", 1024, 1048576),
	FLD_UINT("max_body_bytes", struct floe_config, max_body_bytes, "33554432", 1, UINT64_MAX),
	FLD_DUR("header_timeout", struct floe_config, header_timeout_ms, "10s", 100),
};
static const struct section limits_section = { limits_fields,
					       sizeof(limits_fields) / sizeof(limits_fields[0]),
					       NULL };

static int scaling_validate(struct loader *L, void *base, const struct seen *seen,
			    const char *path);

static const struct field scaling_fields[] = {
	FLD_UINT("min_replica", struct floe_scaling, min_replica, "0", 0, 1024),
	FLD_UINT("max_replica", struct floe_scaling, max_replica, "1", 1, 1024),
	FLD_DUR("scale_to_zero_timeout", struct floe_scaling, scale_to_zero_timeout_ms, "15m",
		MS_PER_S),
	FLD_UINT("target_concurrency", struct floe_scaling, target_concurrency, "4", 1, 1000000),
};
static const struct section scaling_section = { scaling_fields,
						sizeof(scaling_fields) / sizeof(scaling_fields[0]),
						scaling_validate };

#define FLD_BOOL(k, T, m, d)                                              \
	{                                                                 \
		.key = k, .type = T_BOOL, .def = d, .off = offsetof(T, m) \
	}

static const char *const http_methods[] = { "GET", "POST", "PUT", NULL };

static const struct field warmup_fields[] = {
	{ .key = "method",
	  .type = T_CHOICE,
	  .def = "POST",
	  .choices = http_methods,
	  .off = offsetof(struct floe_snapshot_config, warmup_method) },
	{ .key = "path",
	  .type = T_STRING,
	  .required = true,
	  .check = check_route,
	  .off = offsetof(struct floe_snapshot_config, warmup_path) },
	FLD_STR("body", struct floe_snapshot_config, warmup_body, NULL, NULL),
	FLD_DUR("timeout", struct floe_snapshot_config, warmup_timeout_ms, "60s", 100),
};
static const struct section warmup_section = { warmup_fields,
					       sizeof(warmup_fields) / sizeof(warmup_fields[0]),
					       NULL };

static const struct field snapshot_fields[] = {
	FLD_BOOL("enabled", struct floe_snapshot_config, enabled, "true"),
	FLD_BOOL("lazy_pages", struct floe_snapshot_config, lazy_pages, "false"),
	{ .key = "warmup", .type = T_SECTION, .optional = true, .sub = &warmup_section, .off = 0 },
};
static const struct section snapshot_section = {
	snapshot_fields, sizeof(snapshot_fields) / sizeof(snapshot_fields[0]), NULL
};

static const struct field warm_pool_fields[] = {
	FLD_UINT("size", struct floe_endpoint_config, warm_pool_size, "0", 0, 64),
};
static const struct section warm_pool_section = {
	warm_pool_fields, sizeof(warm_pool_fields) / sizeof(warm_pool_fields[0]), NULL
};

static const struct field resources_fields[] = {
	FLD_STR("instance_type", struct floe_resources_config, instance_type, NULL,
		check_instance_type),
	FLD_UINT("gpus", struct floe_resources_config, gpus, "0", 0, 64),
};
static const struct section resources_section = {
	resources_fields, sizeof(resources_fields) / sizeof(resources_fields[0]), NULL
};

static const char *const roundings[] = { "minute", "second", NULL };

static void set_rounding(void *base, unsigned idx)
{
	((struct floe_billing_config *)base)->round_second = idx == 1;
}

static int parse_prices(struct loader *L, yaml_node_t *node, void *base, const char *path);
static int billing_validate(struct loader *L, void *base, const struct seen *seen,
			    const char *path);

static const struct field billing_fields[] = {
	FLD_STR("currency", struct floe_billing_config, currency, "USD", check_currency),
	{ .key = "rounding",
	  .type = T_CHOICE,
	  .def = "minute",
	  .choices = roundings,
	  .set_choice = set_rounding },
	FLD_DUR("commit_interval", struct floe_billing_config, commit_interval_ms, "1s", 10),
	FLD_DUR("max_export_range", struct floe_billing_config, max_export_range_ms, "366d",
		MS_PER_M),
	{ .key = "prices", .type = T_CUSTOM, .parse = parse_prices },
};
static const struct section billing_section = { billing_fields,
						sizeof(billing_fields) / sizeof(billing_fields[0]),
						billing_validate };

/* An endpoint is parsed into a stage; resolution against its preset then
 * builds the final struct floe_endpoint_config. */
struct ep_stage {
	struct floe_endpoint_config ep;
	char **command;
	char **args;
	struct floe_kv *env;
	size_t n_env;
};

static void set_ep_ready(void *base, unsigned idx)
{
	((struct ep_stage *)base)->ep.ready = (enum floe_ready_kind)idx;
}

/* enum floe_endpoint_access order */
static const char *const endpoint_types[] = { "public", "authenticated", "private", NULL };

static void set_ep_access(void *base, unsigned idx)
{
	((struct ep_stage *)base)->ep.access = (enum floe_endpoint_access)idx;
}

static const struct field endpoint_fields[] = {
	{ .key = "name",
	  .type = T_STRING,
	  .required = true,
	  .check = check_endpoint_name,
	  .off = offsetof(struct ep_stage, ep.name) },
	{ .key = "engine",
	  .type = T_STRING,
	  .required = true,
	  .check = check_engine,
	  .off = offsetof(struct ep_stage, ep.engine) },
	FLD_STR("namespace", struct ep_stage, ep.ns, "default", check_endpoint_name),
	{ .key = "type",
	  .type = T_CHOICE,
	  .def = "public",
	  .choices = endpoint_types,
	  .set_choice = set_ep_access },
	FLD_STR("model", struct ep_stage, ep.model, NULL, check_nonempty),
	{ .key = "command",
	  .type = T_STRLIST,
	  .min = 1,
	  .check = check_placeholders,
	  .off = offsetof(struct ep_stage, command) },
	{ .key = "args",
	  .type = T_STRLIST,
	  .check = check_placeholders,
	  .off = offsetof(struct ep_stage, args) },
	{ .key = "env",
	  .type = T_STRMAP,
	  .check = check_env_name,
	  .off = offsetof(struct ep_stage, env),
	  .off2 = offsetof(struct ep_stage, n_env) },
	/* port, health_route, ready, start_timeout: defaults come from the preset */
	FLD_UINT("port", struct ep_stage, ep.port, NULL, 1, 65535),
	FLD_STR("health_route", struct ep_stage, ep.health_route, NULL, check_route),
	{ .key = "ready", .type = T_CHOICE, .choices = ready_kinds, .set_choice = set_ep_ready },
	FLD_DUR("start_timeout", struct ep_stage, ep.start_timeout_ms, NULL, MS_PER_S),
	FLD_DUR("stop_grace", struct ep_stage, ep.stop_grace_ms, "10s", 0),
	FLD_UINT("queue_size", struct ep_stage, ep.queue_size, "1024", 1, 1000000),
	FLD_DUR("max_hold", struct ep_stage, ep.max_hold_ms, "300s", MS_PER_S),
	{ .key = "scaling",
	  .type = T_SECTION,
	  .sub = &scaling_section,
	  .off = offsetof(struct ep_stage, ep.scaling) },
	{ .key = "snapshot",
	  .type = T_SECTION,
	  .sub = &snapshot_section,
	  .off = offsetof(struct ep_stage, ep.snapshot) },
	{ .key = "warm_pool",
	  .type = T_SECTION,
	  .sub = &warm_pool_section,
	  .off = offsetof(struct ep_stage, ep) },
	{ .key = "resources",
	  .type = T_SECTION,
	  .sub = &resources_section,
	  .off = offsetof(struct ep_stage, ep.resources) },
};
static const struct section endpoint_section = {
	endpoint_fields, sizeof(endpoint_fields) / sizeof(endpoint_fields[0]), NULL
};

/* auth: tokens are parsed into a stage, the hash decoded by a custom field
 * whose messages never echo the value (it could be a pasted token). */
static int parse_tokens(struct loader *L, yaml_node_t *node, void *base, const char *path);
static int parse_token_sha256(struct loader *L, yaml_node_t *node, void *base, const char *path);

static const char *check_namespace(const char *s)
{
	return floe_auth_namespace_valid(s) ?
		       NULL :
		       "must be 1 to 63 characters of [a-z0-9-], starting with a letter or digit";
}

static const struct field token_fields[] = {
	{ .key = "namespace",
	  .type = T_STRING,
	  .required = true,
	  .check = check_namespace,
	  .off = offsetof(struct floe_auth_token, ns) },
	{ .key = "sha256", .type = T_CUSTOM, .required = true, .parse = parse_token_sha256 },
};
static const struct section token_section = { token_fields,
					      sizeof(token_fields) / sizeof(token_fields[0]),
					      NULL };

static const struct field auth_fields[] = {
	{ .key = "tokens", .type = T_CUSTOM, .parse = parse_tokens },
};
static const struct section auth_section = { auth_fields,
					     sizeof(auth_fields) / sizeof(auth_fields[0]), NULL };

static int parse_endpoints(struct loader *L, yaml_node_t *node, void *base, const char *path);

static const struct field top_fields[] = {
	{ .key = "listen",
	  .type = T_HOSTPORT,
	  .def = "127.0.0.1:8080",
	  .off = offsetof(struct floe_config, listen_host),
	  .off2 = offsetof(struct floe_config, listen_port) },
	{ .key = "api_listen",
	  .type = T_HOSTPORT,
	  .def = "127.0.0.1:8081",
	  .off = offsetof(struct floe_config, api_host),
	  .off2 = offsetof(struct floe_config, api_port) },
	FLD_STR("data_dir", struct floe_config, data_dir, "/var/lib/floe", check_nonempty),
	{ .key = "log_level",
	  .type = T_CHOICE,
	  .def = "info",
	  .choices = log_levels,
	  .off = offsetof(struct floe_config, log_level) },
	{ .key = "log_format",
	  .type = T_CHOICE,
	  .def = "text",
	  .choices = log_formats,
	  .set_choice = set_log_format },
	FLD_DUR("shutdown_grace", struct floe_config, shutdown_grace_ms, "30s", 0),
	FLD_UINT("replica_log_max_bytes", struct floe_config, replica_log_max_bytes, "10485760",
		 4096, UINT64_MAX),
	FLD_UINT("warm_pool_memory", struct floe_config, warm_pool_memory, "0", 0, UINT64_MAX),
	{ .key = "limits", .type = T_SECTION, .sub = &limits_section, .off = 0 },
	{ .key = "billing",
	  .type = T_SECTION,
	  .sub = &billing_section,
	  .off = offsetof(struct floe_config, billing) },
	{ .key = "auth",
	  .type = T_SECTION,
	  .sub = &auth_section,
	  .off = offsetof(struct floe_config, auth) },
	{ .key = "endpoints", .type = T_CUSTOM, .parse = parse_endpoints },
};
static int top_validate(struct loader *L, void *base, const struct seen *seen, const char *path);

static const struct section top_section = { top_fields, sizeof(top_fields) / sizeof(top_fields[0]),
					    top_validate };

static void set_preset_ready(void *base, unsigned idx)
{
	((struct floe_preset *)base)->ready = (enum floe_ready_kind)idx;
}

static const struct field preset_fields[] = {
	{ .key = "name",
	  .type = T_STRING,
	  .required = true,
	  .check = check_engine,
	  .off = offsetof(struct floe_preset, name) },
	FLD_STR("description", struct floe_preset, description, NULL, NULL),
	{ .key = "command",
	  .type = T_STRLIST,
	  .required = true,
	  .min = 1,
	  .check = check_placeholders,
	  .off = offsetof(struct floe_preset, command) },
	{ .key = "port",
	  .type = T_UINT,
	  .required = true,
	  .min = 1,
	  .max = 65535,
	  .width = sizeof(uint16_t),
	  .off = offsetof(struct floe_preset, port) },
	FLD_STR("health_route", struct floe_preset, health_route, "/health", check_route),
	{ .key = "ready",
	  .type = T_CHOICE,
	  .def = "http",
	  .choices = ready_kinds,
	  .set_choice = set_preset_ready },
	FLD_DUR("start_timeout", struct floe_preset, start_timeout_ms, "10m", MS_PER_S),
	{ .key = "env",
	  .type = T_STRMAP,
	  .check = check_env_name,
	  .off = offsetof(struct floe_preset, env),
	  .off2 = offsetof(struct floe_preset, n_env) },
};
static const struct section preset_section = { preset_fields,
					       sizeof(preset_fields) / sizeof(preset_fields[0]),
					       NULL };

/* ------------------------------------------------------------------------
 * The table walker
 * ------------------------------------------------------------------------ */

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

/* YAML 1.1's null: a plain ~, null or empty scalar. */
static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)n->data.scalar.value;
	return !v[0] || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static const char *type_desc(const struct field *f, char *buf, size_t size)
{
	switch (f->type) {
	case T_STRING: return "a string";
	case T_UINT: return "a non-negative integer";
	case T_DURATION: return "a duration (e.g. 1500ms, 30s, 15m, 2h)";
	case T_HOSTPORT: return "HOST:PORT";
	case T_CHOICE: {
		size_t n = (size_t)snprintf(buf, size, "one of ");
		for (int i = 0; f->choices[i] && n < size; i++)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
					      f->choices[i]);
		return buf;
	}
	case T_STRLIST: return "a list of strings";
	case T_STRMAP: return "a mapping of strings";
	case T_SECTION: return "a mapping";
	case T_CUSTOM: return "a list";
	case T_BOOL: return "true or false";
	}
	return "a value";
}

/*
 * The text of a scalar node, or an error naming what was found instead.
 * Strings with a NUL byte (YAML's "\0") are refused: they would be cut
 * short in argv and in paths.
 */
static int scalar_text(struct loader *L, const struct field *f, yaml_node_t *n, const char *path,
		       const char **out)
{
	char desc[128];
	if (n->type != YAML_SCALAR_NODE)
		return lerr(L, LINE(n), "%s: expected %s, got %s", path,
			    type_desc(f, desc, sizeof(desc)), node_kind(n));
	if (is_null(n))
		return lerr(L, LINE(n), "%s: expected %s, got nothing", path,
			    type_desc(f, desc, sizeof(desc)));
	const char *v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length)
		return lerr(L, LINE(n), "%s: must not contain a NUL byte", path);
	*out = v;
	return 0;
}

static void store_uint(void *p, unsigned width, uint64_t v)
{
	switch (width) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static uint64_t width_max(unsigned width)
{
	return width >= 8 ? UINT64_MAX : (UINT64_C(1) << (width * 8)) - 1;
}

/*
 * Parse a scalar's text into its field. line < 0 means the text is a table
 * default: those are known good, and a bad one is a programming error.
 */
static int set_scalar(struct loader *L, const struct field *f, const char *v, void *base,
		      const char *path, int line)
{
	char *slot = (char *)base + f->off;
	char desc[128];
	switch (f->type) {
	case T_STRING: {
		const char *why = f->check ? f->check(v) : NULL;
		if (why && !v[0])
			return lerr(L, line, "%s: %s", path, why);
		if (why)
			return lerr(L, line, "%s: '%s' %s", path, v, why);
		free(*(char **)slot);
		*(char **)slot = xstrdup(v);
		return 0;
	}
	case T_UINT: {
		const char *end;
		uint64_t x = 0;
		int r = parse_u64(v, &end, &x);
		if (r == -EINVAL || (r == 0 && *end))
			return lerr(L, line, "%s: expected %s, got \"%s\"", path,
				    type_desc(f, desc, sizeof(desc)), v);
		uint64_t max =
			f->max && f->max < width_max(f->width) ? f->max : width_max(f->width);
		if (r == -ERANGE || x > max)
			return lerr(L, line, "%s: must be <= %" PRIu64, path, max);
		if (x < f->min)
			return lerr(L, line, "%s: must be >= %" PRIu64, path, f->min);
		store_uint(slot, f->width, x);
		return 0;
	}
	case T_DURATION: {
		uint64_t ms;
		char lim[32];
		if (floe_duration_parse(v, &ms) < 0)
			return lerr(L, line, "%s: expected %s, got \"%s\"", path,
				    type_desc(f, desc, sizeof(desc)), v);
		if (ms < f->min) {
			duration_format(f->min, lim, sizeof(lim));
			return lerr(L, line, "%s: must be >= %s", path, lim);
		}
		if (f->max && ms > f->max) {
			duration_format(f->max, lim, sizeof(lim));
			return lerr(L, line, "%s: must be <= %s", path, lim);
		}
		*(uint64_t *)slot = ms;
		return 0;
	}
	case T_HOSTPORT: {
		char *host;
		uint16_t port;
		if (floe_hostport_parse(v, &host, &port) < 0)
			return lerr(L, line, "%s: expected HOST:PORT, got \"%s\"", path, v);
		free(*(char **)slot);
		*(char **)slot = host;
		*(uint16_t *)((char *)base + f->off2) = port;
		return 0;
	}
	case T_CHOICE:
		for (unsigned i = 0; f->choices[i]; i++) {
			if (strcmp(v, f->choices[i]) != 0)
				continue;
			if (f->set_choice) {
				f->set_choice(base, i);
			} else {
				free(*(char **)slot);
				*(char **)slot = xstrdup(v);
			}
			return 0;
		}
		return lerr(L, line, "%s: expected %s, got \"%s\"", path,
			    type_desc(f, desc, sizeof(desc)), v);
	case T_BOOL:
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return lerr(L, line, "%s: expected %s, got \"%s\"", path,
				    type_desc(f, desc, sizeof(desc)), v);
		*(bool *)slot = v[0] == 't';
		return 0;
	default: abort(); /* not a scalar type */
	}
}

static int parse_section(struct loader *L, const struct section *sec, yaml_node_t *node, void *base,
			 const char *path, struct seen *seen);

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static void free_kv(struct floe_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

static int parse_strlist(struct loader *L, const struct field *f, yaml_node_t *n, void *base,
			 const char *path)
{
	char desc[128];
	if (n->type != YAML_SEQUENCE_NODE)
		return lerr(L, LINE(n), "%s: expected %s, got %s", path,
			    type_desc(f, desc, sizeof(desc)),
			    n->type == YAML_SCALAR_NODE ? (is_null(n) ? "nothing" : "a string") :
							  node_kind(n));
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count < f->min)
		return lerr(L, LINE(n), "%s: must not be empty", path);
	char **v = xcalloc(count + 1, sizeof(char *));
	static const struct field item_field = { .type = T_STRING };
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
		char ipath[PATH_MAX_LEN];
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		const char *text;
		int r = scalar_text(L, &item_field, item, ipath, &text);
		const char *why = r == 0 && f->check ? f->check(text) : NULL;
		/* A list that must not be empty is a command: its first item is
		 * the program, and "" would only fail later, at exec. */
		if (!why && r == 0 && f->min && i == 0 && !text[0])
			why = "must not be empty (it is the program to run)";
		if (why)
			r = lerr(L, LINE(item), "%s: %s", ipath, why);
		if (r < 0) {
			free_strv(v);
			return r;
		}
		v[i] = xstrdup(text);
	}
	char ***slot = (char ***)((char *)base + f->off);
	free_strv(*slot);
	*slot = v;
	return 0;
}

static int parse_strmap(struct loader *L, const struct field *f, yaml_node_t *n, void *base,
			const char *path)
{
	char desc[128];
	if (n->type != YAML_MAPPING_NODE)
		return lerr(L, LINE(n), "%s: expected %s, got %s", path,
			    type_desc(f, desc, sizeof(desc)),
			    n->type == YAML_SCALAR_NODE ? (is_null(n) ? "nothing" : "a string") :
							  node_kind(n));
	size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	struct floe_kv *kv = xcalloc(count ? count : 1, sizeof(*kv));
	size_t used = 0;
	static const struct field str_field = { .type = T_STRING };
	int r = 0;
	for (size_t i = 0; i < count && r == 0; i++) {
		yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i];
		yaml_node_t *k = yaml_document_get_node(L->doc, pair->key);
		yaml_node_t *val = yaml_document_get_node(L->doc, pair->value);
		const char *key, *value;
		if ((r = scalar_text(L, &str_field, k, path, &key)) < 0)
			break;
		char kpath[PATH_MAX_LEN];
		path_join(kpath, path, key);
		const char *why = f->check ? f->check(key) : NULL;
		if (why) {
			r = lerr(L, LINE(k), "%s: '%s' %s", path, key, why);
			break;
		}
		for (size_t j = 0; j < used; j++) {
			if (strcmp(kv[j].key, key) == 0) {
				r = lerr(L, LINE(k), "%s: duplicate key", kpath);
				break;
			}
		}
		if (r < 0)
			break;
		if ((r = scalar_text(L, &str_field, val, kpath, &value)) < 0)
			break;
		kv[used].key = xstrdup(key);
		kv[used].value = xstrdup(value);
		used++;
	}
	if (r < 0) {
		free_kv(kv, used);
		return r;
	}
	struct floe_kv **slot = (struct floe_kv **)((char *)base + f->off);
	size_t *nslot = (size_t *)((char *)base + f->off2);
	free_kv(*slot, *nslot);
	*slot = kv;
	*nslot = used;
	return 0;
}

static int parse_field(struct loader *L, const struct field *f, yaml_node_t *n, void *base,
		       const char *path)
{
	switch (f->type) {
	case T_STRLIST: return parse_strlist(L, f, n, base, path);
	case T_STRMAP: return parse_strmap(L, f, n, base, path);
	case T_SECTION: {
		struct seen sub_seen;
		return parse_section(L, f->sub, n, (char *)base + f->off, path, &sub_seen);
	}
	case T_CUSTOM: return f->parse(L, n, base, path);
	default: {
		const char *text;
		int r = scalar_text(L, f, n, path, &text);
		return r < 0 ? r : set_scalar(L, f, text, base, path, LINE(n));
	}
	}
}

static int apply_defaults(struct loader *L, const struct section *sec, void *base,
			  struct seen *seen, const char *path)
{
	for (size_t i = 0; i < sec->n_fields; i++) {
		const struct field *f = &sec->fields[i];
		if (seen->mask & (UINT32_C(1) << i))
			continue;
		char fpath[PATH_MAX_LEN];
		path_join(fpath, path, f->key);
		if (f->required) {
			char pb[PATH_MAX_LEN + 2];
			return lerr(L, seen->map_line, "%smissing required key '%s'",
				    path_prefix(path, pb), f->key);
		}
		if (f->type == T_SECTION && f->optional)
			continue;
		if (f->type == T_SECTION) {
			/* an absent section still gets its defaults */
			struct seen sub_seen = { .map_line = seen->map_line };
			int r = apply_defaults(L, f->sub, (char *)base + f->off, &sub_seen, fpath);
			if (r == 0 && f->sub->validate)
				r = f->sub->validate(L, (char *)base + f->off, &sub_seen, fpath);
			if (r < 0)
				return r;
		} else if (f->def) {
			if (set_scalar(L, f, f->def, base, fpath, seen->map_line) < 0)
				abort(); /* a table default that does not parse */
		}
	}
	return 0;
}

/* Closest key within two edits, for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 40 || lb > 40)
		return SIZE_MAX;
	size_t d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			size_t m = sub < del ? sub : del;
			m = m < ins ? m : ins;
			/* a swap of two letters counts as one edit ("prot") */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < m)
				m = d[i - 2][j - 2] + 1;
			d[i][j] = m;
		}
	}
	return d[la][lb];
}

/* The one key sharing the longest prefix (at least 4 characters) with key:
 * "max_headers" -> "max_header_bytes", "readiness" -> "ready". */
static const char *common_prefix_key(const struct section *sec, const char *key)
{
	const char *best = NULL;
	size_t best_n = 3;
	bool tie = false;
	for (size_t j = 0; j < sec->n_fields; j++) {
		const char *k = sec->fields[j].key;
		size_t n = 0;
		while (key[n] && key[n] == k[n])
			n++;
		if (n > best_n) {
			best_n = n;
			best = k;
			tie = false;
		} else if (n == best_n && best) {
			tie = true;
		}
	}
	return tie ? NULL : best;
}

static int parse_section(struct loader *L, const struct section *sec, yaml_node_t *node, void *base,
			 const char *path, struct seen *seen)
{
	char pb[PATH_MAX_LEN + 2];
	if (sec->n_fields > MAX_FIELDS)
		abort(); /* struct seen holds one bit per field */
	memset(seen, 0, sizeof(*seen));
	seen->map_line = LINE(node);
	if (node->type != YAML_MAPPING_NODE) {
		const char *got = node->type == YAML_SCALAR_NODE ?
					  (is_null(node) ? "nothing" : "a string") :
					  node_kind(node);
		if (!path[0])
			return lerr(L, LINE(node), "expected a mapping at the top level, got %s",
				    got);
		return lerr(L, LINE(node), "%s: expected a mapping, got %s", path, got);
	}
	yaml_node_pair_t *pair;
	for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(L->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(L->doc, pair->value);
		if (k->type != YAML_SCALAR_NODE || is_null(k))
			return lerr(L, LINE(k), "%skeys must be strings", path_prefix(path, pb));
		const char *key = (const char *)k->data.scalar.value;
		size_t i;
		for (i = 0; i < sec->n_fields; i++)
			if (strcmp(sec->fields[i].key, key) == 0)
				break;
		if (i == sec->n_fields) {
			const char *best = NULL;
			size_t best_d = 3;
			for (size_t j = 0; j < sec->n_fields; j++) {
				size_t d = edit_distance(key, sec->fields[j].key);
				if (d < best_d) {
					best_d = d;
					best = sec->fields[j].key;
				}
			}
			if (!best)
				best = common_prefix_key(sec, key);
			if (best)
				return lerr(L, LINE(k), "%sunknown key '%s' (did you mean '%s'?)",
					    path_prefix(path, pb), key, best);
			return lerr(L, LINE(k), "%sunknown key '%s'", path_prefix(path, pb), key);
		}
		char fpath[PATH_MAX_LEN];
		path_join(fpath, path, key);
		if (seen->mask & (UINT32_C(1) << i))
			return lerr(L, LINE(k), "%s: duplicate key (first at line %d)", fpath,
				    seen->line[i]);
		seen->mask |= UINT32_C(1) << i;
		seen->line[i] = LINE(k);
		int r = parse_field(L, &sec->fields[i], v, base, fpath);
		if (r < 0)
			return r;
	}
	int r = apply_defaults(L, sec, base, seen, path);
	if (r == 0 && sec->validate)
		r = sec->validate(L, base, seen, path);
	return r;
}

static int field_index(const struct section *sec, const char *key)
{
	for (size_t i = 0; i < sec->n_fields; i++)
		if (strcmp(sec->fields[i].key, key) == 0)
			return (int)i;
	abort();
}

/* The line of a key if given, else of its section. */
static int seen_line(const struct section *sec, const struct seen *seen, const char *key)
{
	int i = field_index(sec, key);
	return (seen->mask & (UINT32_C(1) << i)) ? seen->line[i] : seen->map_line;
}

static bool was_seen(const struct section *sec, const struct seen *seen, const char *key)
{
	return seen->mask & (UINT32_C(1) << field_index(sec, key));
}

static int scaling_validate(struct loader *L, void *base, const struct seen *seen, const char *path)
{
	struct floe_scaling *s = base;
	if (s->max_replica < s->min_replica) {
		char fpath[PATH_MAX_LEN];
		path_join(fpath, path, "max_replica");
		return lerr(L, seen_line(&scaling_section, seen, "max_replica"),
			    "%s: must be >= min_replica (%u)", fpath, s->min_replica);
	}
	return 0;
}

static bool is_wildcard(const char *host)
{
	return !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

/* Both planes on one socket would make the second bind fail at start-up;
 * say so here, with the line, instead. */
static int top_validate(struct loader *L, void *base, const struct seen *seen, const char *path)
{
	struct floe_config *c = base;
	if (c->listen_port == c->api_port &&
	    (!strcmp(c->listen_host, c->api_host) || is_wildcard(c->listen_host) ||
	     is_wildcard(c->api_host)))
		return lerr(L, seen_line(&top_section, seen, "api_listen"),
			    "api_listen: %s:%u is also the data plane's address (listen)",
			    c->api_host, (unsigned)c->api_port);
	/* Issue 5: without tokens everyone is the default namespace, which is
	 * safe only when no one else can connect. */
	floe_error e;
	if (floe_auth_listen_check(&c->auth, "listen", c->listen_host, c->listen_port, &e) < 0)
		return lerr(L, seen_line(&top_section, seen, "listen"), "%s", e.msg);
	if (floe_auth_listen_check(&c->auth, "api_listen", c->api_host, c->api_port, &e) < 0)
		return lerr(L, seen_line(&top_section, seen, "api_listen"), "%s", e.msg);
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* sha256: 64 hex digits, either case. Messages say what is wrong without
 * quoting the value: a token pasted here by mistake must not reach a log. */
static int parse_token_sha256(struct loader *L, yaml_node_t *node, void *base, const char *path)
{
	struct floe_auth_token *t = base;
	static const char want[] = "expected 64 hex digits (the SHA-256 of the token)";
	if (node->type != YAML_SCALAR_NODE || is_null(node))
		return lerr(L, LINE(node), "%s: %s, got %s", path, want,
			    node->type == YAML_SCALAR_NODE ? "nothing" : node_kind(node));
	const char *v = (const char *)node->data.scalar.value;
	size_t n = node->data.scalar.length;
	if (strncmp(v, "floe_", 5) == 0)
		return lerr(L, LINE(node),
			    "%s: this is a token, not its hash: put its SHA-256 here (floe token "
			    "new prints both) and keep the token itself out of the config",
			    path);
	if (n != FLOE_SHA256_HEX_LEN)
		return lerr(L, LINE(node), "%s: %s, got %zu characters", path, want, n);
	for (size_t i = 0; i < n; i++)
		if (hex_digit(v[i]) < 0)
			return lerr(L, LINE(node),
				    "%s: %s, got a non-hex character at position %zu", path, want,
				    i + 1);
	for (size_t i = 0; i < sizeof(t->sha256); i++)
		t->sha256[i] = (uint8_t)(hex_digit(v[2 * i]) << 4 | hex_digit(v[2 * i + 1]));
	return 0;
}

static void tokens_free(struct floe_auth_token *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].ns);
	free(t);
}

/* tokens: [{namespace: NS, sha256: HEX}, ...] */
static int parse_tokens(struct loader *L, yaml_node_t *node, void *base, const char *path)
{
	struct floe_auth_config *a = base;
	if (node->type != YAML_SEQUENCE_NODE)
		return lerr(L, LINE(node), "%s: expected a list of tokens, got %s", path,
			    node->type == YAML_SCALAR_NODE ?
				    (is_null(node) ? "nothing" : "a string") :
				    node_kind(node));
	size_t count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	struct floe_auth_token *tokens = xcalloc(count ? count : 1, sizeof(*tokens));
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < count && r == 0; i++) {
		yaml_node_t *item =
			yaml_document_get_node(L->doc, node->data.sequence.items.start[i]);
		char tpath[PATH_MAX_LEN];
		snprintf(tpath, sizeof(tpath), "%s[%zu]", path, i);
		struct floe_auth_token t = { 0 };
		struct seen seen;
		r = parse_section(L, &token_section, item, &t, tpath, &seen);
		t.line = seen.map_line;
		/* The same token twice is a mistake whatever the namespaces: a
		 * request could only ever be one of them. */
		for (size_t j = 0; r == 0 && j < n; j++)
			if (memcmp(tokens[j].sha256, t.sha256, sizeof(t.sha256)) == 0)
				r = lerr(L, seen_line(&token_section, &seen, "sha256"),
					 "%s.sha256: duplicate token (first at line %d)", tpath,
					 tokens[j].line);
		if (r < 0) {
			free(t.ns);
			break;
		}
		tokens[n++] = t;
	}
	if (r < 0) {
		tokens_free(tokens, n);
		return r;
	}
	tokens_free(a->tokens, a->n_tokens);
	a->tokens = tokens;
	a->n_tokens = n;
	return 0;
}

static int billing_validate(struct loader *L, void *base, const struct seen *seen, const char *path)
{
	struct floe_billing_config *b = base;
	/* The interval bounds what a crash loses; past a minute it is no
	 * longer "at most the last moment". */
	if (b->commit_interval_ms > MS_PER_M)
		return lerr(L, seen_line(&billing_section, seen, "commit_interval"),
			    "%s.commit_interval: must be at most 1m", path);
	return 0;
}

static void prices_free(struct floe_price *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].instance_type);
	free(p);
}

static const char *const billable_states[] = { "initializing", "running", "draining", "warm_pool",
					       NULL };

/* One price: an amount for every state, or a mapping of state -> amount
 * (states left out cost 0; floed says so at start). */
static int parse_price(struct loader *L, yaml_node_t *val, struct floe_price *pr, const char *path)
{
	static const struct field amount_field = { .key = "price", .type = T_STRING };
	const char *text;
	if (val->type != YAML_MAPPING_NODE) {
		uint64_t micro;
		int r = scalar_text(L, &amount_field, val, path, &text);
		if (r < 0)
			return r;
		if (floe_amount_parse(text, &micro) < 0)
			return lerr(
				L, LINE(val),
				"%s: expected a price per hour such as 4.50 (at most 6 decimals), got \"%s\"",
				path, text);
		for (int s = 0; s < FLOE_BILLING_NSTATES; s++)
			pr->per_hour_micro[s] = micro;
		return 0;
	}
	uint32_t given = 0;
	for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
		char kpath[PATH_MAX_LEN];
		const char *key;
		int r = scalar_text(L, &amount_field, k, path, &key);
		if (r < 0)
			return r;
		path_join(kpath, path, key);
		int s = 0;
		while (billable_states[s] && strcmp(billable_states[s], key) != 0)
			s++;
		if (!billable_states[s])
			return lerr(
				L, LINE(k),
				"%s: unknown state (known: initializing, running, draining, warm_pool)",
				kpath);
		if (given & (1u << s))
			return lerr(L, LINE(k), "%s: duplicate key", kpath);
		given |= 1u << s;
		uint64_t micro;
		if ((r = scalar_text(L, &amount_field, v, kpath, &text)) < 0)
			return r;
		if (floe_amount_parse(text, &micro) < 0)
			return lerr(
				L, LINE(v),
				"%s: expected a price per hour such as 4.50 (at most 6 decimals), got \"%s\"",
				kpath, text);
		pr->per_hour_micro[s] = micro;
	}
	return 0;
}

/* prices: {INSTANCE_TYPE: PRICE | {STATE: PRICE, ...}, ...} */
static int parse_prices(struct loader *L, yaml_node_t *node, void *base, const char *path)
{
	struct floe_billing_config *b = base;
	if (node->type != YAML_MAPPING_NODE)
		return lerr(L, LINE(node),
			    "%s: expected a mapping of instance type to price per hour, got %s",
			    path, node->type == YAML_SCALAR_NODE ? "a string" : node_kind(node));
	size_t count = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
	struct floe_price *prices = xcalloc(count ? count : 1, sizeof(*prices));
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < count && r == 0; i++) {
		yaml_node_pair_t *p = &node->data.mapping.pairs.start[i];
		yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
		static const struct field key_field = { .key = "instance type", .type = T_STRING };
		const char *type;
		char kpath[PATH_MAX_LEN];
		if ((r = scalar_text(L, &key_field, k, path, &type)) < 0)
			break;
		path_join(kpath, path, type);
		const char *why = check_instance_type(type);
		if (why) {
			r = lerr(L, LINE(k), "%s: instance type %s", kpath, why);
			break;
		}
		for (size_t j = 0; j < n && r == 0; j++)
			if (strcmp(prices[j].instance_type, type) == 0)
				r = lerr(L, LINE(k),
					 "%s: duplicate instance type (first at line %d)", kpath,
					 prices[j].line);
		if (r < 0)
			break;
		prices[n].instance_type = xstrdup(type);
		prices[n].line = LINE(k);
		n++;
		r = parse_price(L, v, &prices[n - 1], kpath);
	}
	if (r < 0) {
		prices_free(prices, n);
		return r;
	}
	prices_free(b->prices, b->n_prices);
	b->prices = prices;
	b->n_prices = n;
	return 0;
}

const struct floe_price *floe_billing_price(const struct floe_billing_config *b,
					    const char *instance_type)
{
	for (size_t i = 0; b && instance_type && i < b->n_prices; i++)
		if (strcmp(b->prices[i].instance_type, instance_type) == 0)
			return &b->prices[i];
	return NULL;
}

/* ------------------------------------------------------------------------
 * YAML documents
 * ------------------------------------------------------------------------ */

static int line_of_offset(const char *text, size_t len, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off && i < len; i++)
		line += text[i] == '\n';
	return line;
}

static int yaml_syntax_error(struct loader *L, yaml_parser_t *p, const char *text, size_t len)
{
	const char *problem = p->problem ? p->problem : "cannot parse";
	int line = p->error == YAML_READER_ERROR ? line_of_offset(text, len, p->problem_offset) :
						   (int)p->problem_mark.line + 1;
	if (p->context)
		return lerr(L, line, "YAML syntax error: %s (%s at line %d)", problem, p->context,
			    (int)p->context_mark.line + 1);
	return lerr(L, line, "YAML syntax error: %s", problem);
}

/*
 * Load exactly one YAML document from text into doc. On success the caller
 * deletes doc; *root is NULL for an empty document.
 */
static int yaml_load_one(struct loader *L, const char *text, size_t len, yaml_document_t *doc,
			 yaml_node_t **root)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return floe_error_set(L->err, -ENOMEM, "%s: cannot initialise the YAML parser",
				      L->name);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	int r = 0;
	if (!yaml_parser_load(&parser, doc)) {
		r = yaml_syntax_error(L, &parser, text, len);
		yaml_parser_delete(&parser);
		return r;
	}
	*root = yaml_document_get_root_node(doc);
	if (*root) {
		/* A second document would be silently ignored: refuse it. */
		yaml_document_t next;
		if (!yaml_parser_load(&parser, &next)) {
			r = yaml_syntax_error(L, &parser, text, len);
		} else {
			yaml_node_t *nr = yaml_document_get_root_node(&next);
			if (nr)
				r = lerr(L, (int)next.start_mark.line + 1,
					 "only one YAML document is allowed");
			yaml_document_delete(&next);
		}
		if (r < 0)
			yaml_document_delete(doc);
	}
	yaml_parser_delete(&parser);
	return r;
}

static int read_file(const char *path, char **text, size_t *len, floe_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
	struct floe_buf b = FLOE_BUF_INIT;
	int r = 0;
	for (;;) {
		floe_buf_reserve(&b, 65536);
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = floe_error_set(err, -errno, "%s: cannot read: %s", path,
					   strerror(errno));
			break;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		b.data[b.len] = '\0';
		if (b.len > CONFIG_MAX_BYTES) {
			r = floe_error_set(err, -EFBIG, "%s: larger than %u bytes", path,
					   CONFIG_MAX_BYTES);
			break;
		}
	}
	close(fd);
	if (r < 0) {
		floe_buf_destroy(&b);
		return r;
	}
	if (!b.data)
		floe_buf_puts(&b, "");
	*text = floe_buf_steal(&b, len);
	return 0;
}

/* ------------------------------------------------------------------------
 * Presets
 * ------------------------------------------------------------------------ */

void floe_preset_free(struct floe_preset *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->description);
	free_strv(p->command);
	free(p->health_route);
	free_kv(p->env, p->n_env);
	free(p);
}

/*
 * Load NAME.yaml, keeping placeholders as written. -ENOENT (with err set)
 * when there is no such file, so the config loader can list the presets.
 */
static int preset_load_raw(const char *dir, const char *name, struct floe_preset **out,
			   char **file_out, floe_error *err)
{
	if (!is_preset_name(name))
		return floe_error_set(err, -EINVAL, "invalid preset name '%s' (expected [a-z0-9]+)",
				      name);
	char *file = xasprintf("%s/%s.yaml", dir, name);
	char *text;
	size_t len;
	int r = read_file(file, &text, &len, err);
	if (r < 0) {
		free(file);
		return r;
	}
	yaml_document_t doc;
	yaml_node_t *root;
	struct loader L = { .name = file, .doc = &doc, .err = err };
	r = yaml_load_one(&L, text, len, &doc, &root);
	if (r < 0) {
		free(text);
		free(file);
		return r;
	}
	struct floe_preset *p = xcalloc(1, sizeof(*p));
	struct seen seen;
	if (!root)
		r = lerr(&L, 1, "empty preset file");
	else
		r = parse_section(&L, &preset_section, root, p, "", &seen);
	if (r == 0 && strcmp(p->name, name) != 0)
		r = lerr(&L, seen_line(&preset_section, &seen, "name"),
			 "name: '%s' does not match the file name (expected '%s')", p->name, name);
	yaml_document_delete(&doc);
	free(text);
	if (r < 0) {
		floe_preset_free(p);
		free(file);
		return r;
	}
	*out = p;
	if (file_out)
		*file_out = file;
	else
		free(file);
	return 0;
}

/* The directory of the running executable, for {bindir}. */
static char *self_bindir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return xstrdup(".");
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (slash == buf)
		return xstrdup("/");
	if (slash)
		*slash = '\0';
	return xstrdup(buf);
}

struct expand_ctx {
	const char *value[3]; /* indexed like placeholder_names; NULL: leave as is */
};

/* Replace known placeholders that have a value; keep the others verbatim. */
static char *expand(const char *s, const struct expand_ctx *c)
{
	struct floe_buf b = FLOE_BUF_INIT;
	const char *p = s;
	while (*p) {
		if (*p == '{') {
			const char *q = p + 1;
			while ((*q >= 'a' && *q <= 'z') || *q == '_')
				q++;
			if (q > p + 1 && *q == '}') {
				int i = placeholder_index(p + 1, (size_t)(q - p - 1));
				if (i >= 0 && c->value[i]) {
					floe_buf_puts(&b, c->value[i]);
					p = q + 1;
					continue;
				}
				floe_buf_append(&b, p, (size_t)(q - p + 1));
				p = q + 1;
				continue;
			}
		}
		floe_buf_append(&b, p, 1);
		p++;
	}
	if (!b.data)
		floe_buf_puts(&b, "");
	return floe_buf_steal(&b, NULL);
}

int floe_preset_load(const char *presets_dir, const char *name, const char *bindir,
		     struct floe_preset **out, floe_error *err)
{
	struct floe_preset *p;
	int r = preset_load_raw(presets_dir ? presets_dir : FLOE_PRESETS_DIR, name, &p, NULL, err);
	if (r < 0)
		return r;
	char *own = bindir ? NULL : self_bindir();
	struct expand_ctx c = { .value = { NULL, NULL, bindir ? bindir : own } };
	for (char **a = p->command; *a; a++) {
		char *e = expand(*a, &c);
		free(*a);
		*a = e;
	}
	free(own);
	*out = p;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "custom, llamacpp, sglang, ...": what engine names would have worked. */
static char *preset_names(const char *dir)
{
	char **names = xcalloc(1, sizeof(char *));
	size_t n = 0;
	names[n++] = xstrdup("custom");
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l <= 5 || strcmp(de->d_name + l - 5, ".yaml") != 0)
				continue;
			char *stem = xstrndup(de->d_name, l - 5);
			if (!is_preset_name(stem) || !strcmp(stem, "custom")) {
				free(stem);
				continue;
			}
			names = xrealloc(names, (n + 1) * sizeof(char *));
			names[n++] = stem;
		}
		closedir(d);
	}
	int open_errno = d ? 0 : errno;
	qsort(names, n, sizeof(char *), cmp_str);
	struct floe_buf b = FLOE_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		floe_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
		free(names[i]);
	}
	free(names);
	/* A missing presets directory is an install problem: say so. */
	if (open_errno)
		floe_buf_printf(&b, "; cannot read %s: %s", dir, strerror(open_errno));
	return floe_buf_steal(&b, NULL);
}

/* The preset of an engine, loaded once per config load. */
static int get_preset(struct loader *L, const char *engine, int engine_line, const char *path,
		      const struct floe_preset **out)
{
	for (size_t i = 0; i < L->n_presets; i++) {
		if (strcmp(L->presets[i].preset->name, engine) == 0) {
			*out = L->presets[i].preset;
			return 0;
		}
	}
	struct floe_preset *p;
	char *file;
	int r = preset_load_raw(L->presets_dir, engine, &p, &file, L->err);
	if (r == -ENOENT) {
		char *names = preset_names(L->presets_dir);
		r = lerr(L, engine_line, "%s.engine: unknown engine '%s' (presets: %s)", path,
			 engine, names);
		free(names);
		return r;
	}
	if (r < 0) {
		/* The message already starts with the preset's FILE:LINE; say who used it. */
		size_t len = strlen(L->err->msg);
		snprintf(L->err->msg + len, sizeof(L->err->msg) - len,
			 " (engine '%s' of %s at %s:%d)", engine, path, L->name, engine_line);
		return r;
	}
	L->presets = xrealloc(L->presets, (L->n_presets + 1) * sizeof(*L->presets));
	L->presets[L->n_presets].preset = p;
	L->presets[L->n_presets].file = file;
	L->n_presets++;
	*out = p;
	return 0;
}

/* ------------------------------------------------------------------------
 * Endpoints
 * ------------------------------------------------------------------------ */

static void endpoint_destroy(struct floe_endpoint_config *ep)
{
	free(ep->name);
	free(ep->ns);
	free(ep->engine);
	free(ep->model);
	free(ep->resources.instance_type);
	free_strv(ep->argv);
	free_kv(ep->env, ep->n_env);
	free(ep->health_route);
	free(ep->snapshot.warmup_method);
	free(ep->snapshot.warmup_path);
	free(ep->snapshot.warmup_body);
	memset(ep, 0, sizeof(*ep));
}

static void stage_destroy(struct ep_stage *st)
{
	endpoint_destroy(&st->ep);
	free_strv(st->command);
	free_strv(st->args);
	free_kv(st->env, st->n_env);
}

static bool strv_uses_model(char *const *v)
{
	for (; v && *v; v++)
		if (placeholders_each(*v, uses_model_ph, NULL))
			return true;
	return false;
}

static bool strv_uses_bindir(char *const *v)
{
	for (; v && *v; v++)
		if (strstr(*v, "{bindir}"))
			return true;
	return false;
}

/*
 * Turn a parsed stage into the final endpoint: preset defaults for what
 * the endpoint left out, argv = command + args with placeholders expanded,
 * env = preset env overridden by the endpoint's.
 */
static int endpoint_resolve(struct loader *L, struct ep_stage *st, const struct seen *seen,
			    const char *path)
{
	const struct section *S = &endpoint_section;
	struct floe_endpoint_config *ep = &st->ep;
	const struct floe_preset *preset = NULL;
	char *const *tmpl;
	ep->line = seen->map_line;

	if (strcmp(ep->engine, "custom") == 0) {
		if (!st->command)
			return lerr(L, seen->map_line, "%s: engine 'custom' needs 'command'", path);
		if (!was_seen(S, seen, "port"))
			return lerr(L, seen->map_line, "%s: engine 'custom' needs 'port'", path);
		if (!ep->health_route)
			ep->health_route = xstrdup("/health");
		if (!was_seen(S, seen, "ready"))
			ep->ready = FLOE_READY_HTTP;
		if (!was_seen(S, seen, "start_timeout"))
			ep->start_timeout_ms = 10 * MS_PER_M;
		tmpl = st->command;
	} else {
		if (st->command)
			return lerr(
				L, seen_line(S, seen, "command"),
				"%s.command: not allowed with engine '%s' (the preset gives the "
				"command; add flags with args)",
				path, ep->engine);
		int r = get_preset(L, ep->engine, seen_line(S, seen, "engine"), path, &preset);
		if (r < 0)
			return r;
		if (!was_seen(S, seen, "port"))
			ep->port = preset->port;
		if (!ep->health_route)
			ep->health_route = xstrdup(preset->health_route);
		if (!was_seen(S, seen, "ready"))
			ep->ready = preset->ready;
		if (!was_seen(S, seen, "start_timeout"))
			ep->start_timeout_ms = preset->start_timeout_ms;
		tmpl = preset->command;
	}

	if (!ep->model && (strv_uses_model(tmpl) || strv_uses_model(st->args))) {
		if (preset && strv_uses_model(tmpl))
			return lerr(L, seen->map_line,
				    "%s: engine '%s' needs 'model' (its command uses {model})",
				    path, ep->engine);
		return lerr(L, seen->map_line,
			    "%s: 'model' is not set but the command uses {model}", path);
	}
	if (!L->bindir && (strv_uses_bindir(tmpl) || strv_uses_bindir(st->args)))
		L->bindir = L->bindir_owned = self_bindir();

	char port[8];
	snprintf(port, sizeof(port), "%u", (unsigned)ep->port);
	struct expand_ctx c = { .value = { port, ep->model, L->bindir } };
	size_t nt = strv_len(tmpl), na = strv_len(st->args);
	ep->argv = xcalloc(nt + na + 1, sizeof(char *));
	for (size_t i = 0; i < nt; i++)
		ep->argv[ep->argc++] = expand(tmpl[i], &c);
	for (size_t i = 0; i < na; i++)
		ep->argv[ep->argc++] = expand(st->args[i], &c);

	size_t np = preset ? preset->n_env : 0;
	ep->env = xcalloc(np + st->n_env + 1, sizeof(struct floe_kv));
	for (size_t i = 0; i < np; i++) {
		ep->env[i].key = xstrdup(preset->env[i].key);
		ep->env[i].value = xstrdup(preset->env[i].value);
	}
	ep->n_env = np;
	for (size_t i = 0; i < st->n_env; i++) {
		size_t j;
		for (j = 0; j < ep->n_env; j++)
			if (strcmp(ep->env[j].key, st->env[i].key) == 0)
				break;
		if (j == ep->n_env) {
			ep->env[j].key = xstrdup(st->env[i].key);
			ep->n_env++;
		} else {
			free(ep->env[j].value);
		}
		ep->env[j].value = xstrdup(st->env[i].value);
	}
	return 0;
}

static int parse_endpoints(struct loader *L, yaml_node_t *node, void *base, const char *path)
{
	struct floe_config *cfg = base;
	if (node->type != YAML_SEQUENCE_NODE)
		return lerr(L, LINE(node), "%s: expected a list of endpoints, got %s", path,
			    node->type == YAML_SCALAR_NODE ?
				    (is_null(node) ? "nothing" : "a string") :
				    node_kind(node));
	size_t count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	cfg->endpoints = xcalloc(count ? count : 1, sizeof(*cfg->endpoints));
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item =
			yaml_document_get_node(L->doc, node->data.sequence.items.start[i]);
		char epath[PATH_MAX_LEN];
		snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
		struct ep_stage st;
		memset(&st, 0, sizeof(st));
		struct seen seen;
		int r = parse_section(L, &endpoint_section, item, &st, epath, &seen);
		if (r == 0)
			r = endpoint_resolve(L, &st, &seen, epath);
		for (size_t j = 0; r == 0 && j < i; j++) {
			if (strcmp(cfg->endpoints[j].name, st.ep.name) == 0)
				r = lerr(L, seen_line(&endpoint_section, &seen, "name"),
					 "%s.name: duplicate endpoint name '%s' (first at line %d)",
					 epath, st.ep.name, cfg->endpoints[j].line);
		}
		if (r < 0) {
			stage_destroy(&st);
			return r;
		}
		/* The final struct moves out of the stage; the stage-only parts go. */
		cfg->endpoints[cfg->n_endpoints++] = st.ep;
		memset(&st.ep, 0, sizeof(st.ep));
		stage_destroy(&st);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Config
 * ------------------------------------------------------------------------ */

void floe_config_free(struct floe_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->listen_host);
	free(cfg->api_host);
	free(cfg->data_dir);
	free(cfg->log_level);
	free(cfg->billing.currency);
	prices_free(cfg->billing.prices, cfg->billing.n_prices);
	tokens_free(cfg->auth.tokens, cfg->auth.n_tokens);
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		endpoint_destroy(&cfg->endpoints[i]);
	free(cfg->endpoints);
	free(cfg);
}

int floe_config_load_string(const char *text, size_t len, const char *name,
			    const struct floe_config_env *env, struct floe_config **out,
			    floe_error *err)
{
	floe_error local;
	if (!err)
		err = &local;
	floe_error_clear(err);
	if (!name)
		name = "<string>";
	yaml_document_t doc;
	yaml_node_t *root;
	struct loader L = {
		.name = name,
		.doc = &doc,
		.err = err,
		.presets_dir = env && env->presets_dir ? env->presets_dir : FLOE_PRESETS_DIR,
		.bindir = env ? env->bindir : NULL,
	};
	int r = yaml_load_one(&L, text, len, &doc, &root);
	if (r < 0)
		return r;
	struct floe_config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(name);
	struct seen seen;
	if (root) {
		r = parse_section(&L, &top_section, root, cfg, "", &seen);
	} else {
		/* An empty file: every default, no endpoints. */
		memset(&seen, 0, sizeof(seen));
		seen.map_line = 1;
		r = apply_defaults(&L, &top_section, cfg, &seen, "");
	}
	yaml_document_delete(&doc);
	for (size_t i = 0; i < L.n_presets; i++) {
		floe_preset_free(L.presets[i].preset);
		free(L.presets[i].file);
	}
	free(L.presets);
	free(L.bindir_owned);
	if (r < 0) {
		floe_config_free(cfg);
		return r;
	}
	*out = cfg;
	return 0;
}

int floe_config_load_file(const char *path, const struct floe_config_env *env,
			  struct floe_config **out, floe_error *err)
{
	char *text;
	size_t len;
	int r = read_file(path, &text, &len, err);
	if (r < 0)
		return r;
	r = floe_config_load_string(text, len, path, env, out, err);
	free(text);
	return r;
}

int floe_config_add_endpoint(struct floe_config *cfg, const struct floe_endpoint_config *ep)
{
	if (floe_config_endpoint(cfg, ep->name))
		return -EEXIST;
	cfg->endpoints = xrealloc(cfg->endpoints, (cfg->n_endpoints + 1) * sizeof(*cfg->endpoints));
	struct floe_endpoint_config *copy = floe_endpoint_config_dup(ep);
	cfg->endpoints[cfg->n_endpoints++] = *copy;
	free(copy); /* its contents now belong to cfg */
	return 0;
}

const struct floe_endpoint_config *floe_config_endpoint(const struct floe_config *cfg,
							const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		if (strcmp(cfg->endpoints[i].name, name) == 0)
			return &cfg->endpoints[i];
	return NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Environment as a set: reordering keys does not change the process. */
static bool env_eq(const struct floe_kv *a, size_t na, const struct floe_kv *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t j;
		for (j = 0; j < nb; j++)
			if (strcmp(a[i].key, b[j].key) == 0)
				break;
		if (j == nb || strcmp(a[i].value, b[j].value) != 0)
			return false;
	}
	return true;
}

bool floe_endpoint_config_equal(const struct floe_endpoint_config *a,
				const struct floe_endpoint_config *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	/* line is left out on purpose: moving an endpoint in the file changes nothing. */
	if (!str_eq(a->name, b->name) || !str_eq(a->ns, b->ns) || a->access != b->access ||
	    !str_eq(a->engine, b->engine) || !str_eq(a->model, b->model) || a->argc != b->argc)
		return false;
	for (size_t i = 0; i < a->argc; i++)
		if (!str_eq(a->argv[i], b->argv[i]))
			return false;
	return env_eq(a->env, a->n_env, b->env, b->n_env) && a->port == b->port &&
	       str_eq(a->health_route, b->health_route) && a->ready == b->ready &&
	       a->start_timeout_ms == b->start_timeout_ms && a->stop_grace_ms == b->stop_grace_ms &&
	       a->queue_size == b->queue_size && a->max_hold_ms == b->max_hold_ms &&
	       a->scaling.min_replica == b->scaling.min_replica &&
	       a->scaling.max_replica == b->scaling.max_replica &&
	       a->scaling.scale_to_zero_timeout_ms == b->scaling.scale_to_zero_timeout_ms &&
	       a->scaling.target_concurrency == b->scaling.target_concurrency &&
	       a->snapshot.enabled == b->snapshot.enabled &&
	       a->snapshot.lazy_pages == b->snapshot.lazy_pages &&
	       str_eq(a->snapshot.warmup_method, b->snapshot.warmup_method) &&
	       str_eq(a->snapshot.warmup_path, b->snapshot.warmup_path) &&
	       str_eq(a->snapshot.warmup_body, b->snapshot.warmup_body) &&
	       a->snapshot.warmup_timeout_ms == b->snapshot.warmup_timeout_ms &&
	       a->warm_pool_size == b->warm_pool_size &&
	       /* a replica is billed as what it started as */
	       str_eq(a->resources.instance_type, b->resources.instance_type) &&
	       a->resources.gpus == b->resources.gpus;
}

struct floe_endpoint_config *floe_endpoint_config_dup(const struct floe_endpoint_config *src)
{
	if (!src)
		return NULL;
	struct floe_endpoint_config *ep = xmalloc(sizeof(*ep));
	*ep = *src;
	ep->name = xstrdup(src->name);
	ep->ns = xstrdup(src->ns);
	ep->resources.instance_type = xstrdup(src->resources.instance_type);
	ep->engine = xstrdup(src->engine);
	ep->model = xstrdup(src->model);
	ep->health_route = xstrdup(src->health_route);
	ep->snapshot.warmup_method = xstrdup(src->snapshot.warmup_method);
	ep->snapshot.warmup_path = xstrdup(src->snapshot.warmup_path);
	ep->snapshot.warmup_body = xstrdup(src->snapshot.warmup_body);
	ep->argv = xcalloc(src->argc + 1, sizeof(char *));
	for (size_t i = 0; i < src->argc; i++)
		ep->argv[i] = xstrdup(src->argv[i]);
	ep->env = xcalloc(src->n_env + 1, sizeof(struct floe_kv));
	for (size_t i = 0; i < src->n_env; i++) {
		ep->env[i].key = xstrdup(src->env[i].key);
		ep->env[i].value = xstrdup(src->env[i].value);
	}
	return ep;
}

void floe_endpoint_config_free(struct floe_endpoint_config *ep)
{
	if (!ep)
		return;
	endpoint_destroy(ep);
	free(ep);
}
