/*
 * floe snapshot ls and floe snapshot rm: floed's CRIU snapshots, named by
 * their key or a unique prefix of it.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

#define SNAP_KEY_LEN 64
#define SNAP_PREFIX_MIN 8
#define SNAP_KEY_SHOWN 12

/* Bytes for people: "512 B", "3.4 KiB", "120.5 MiB", "2.31 GiB". */
static char *human_bytes(json_int_t n)
{
	double v = (double)n;
	if (n < 1024)
		return xasprintf("%lld B", (long long)n);
	if (n < 1024 * 1024)
		return xasprintf("%.1f KiB", v / 1024);
	if (n < 1024LL * 1024 * 1024)
		return xasprintf("%.1f MiB", v / (1024 * 1024));
	return xasprintf("%.2f GiB", v / (1024.0 * 1024 * 1024));
}

int cli__cmd_snapshot_ls(struct cli *cli, int argc, char **argv)
{
	const char *endpoint = NULL;
	const struct opt opts[] = {
		{ "endpoint", 0, &endpoint, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/snapshots");
	cli__query_add(&path, "endpoint", endpoint);
	json_t *v;
	char *raw = NULL;
	rc = cli__http_get_json(cli, path.data, &v, &raw);
	floe_buf_destroy(&path);
	if (rc)
		return rc;
	json_t *items = json_object_get(v, "items");
	if (cli->json) {
		cli__print_raw_json(raw);
	} else if (!json_is_array(items)) {
		cli__errorf("floed's snapshot list has no items array");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "KEY",  "ENDPOINT", "CREATED",
						    "SIZE", "RESTORES", "LAST RESTORE" };
		static const bool right[] = { false, false, false, true, true, true };
		struct table t = { 6, head, right, NULL, 0 };
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			json_t *last = json_object_get(it, "last_restore_ms");
			cli__table_add(
				&t, xasprintf("%.*s", SNAP_KEY_SHOWN, cli__jstr(it, "key")),
				xstrdup(cli__jstr(it, "endpoint")),
				xstrdup(cli__jstr(it, "created_at")),
				human_bytes(cli__json_int_of(it, "image_bytes")),
				xasprintf("%lld", (long long)cli__json_int_of(it, "restores")),
				json_is_integer(last) ?
					xasprintf("%lld ms", (long long)json_integer_value(last)) :
					xstrdup("-"));
		}
		cli__table_print(&t, stdout);
	}
	free(raw);
	json_decref(v);
	return rc;
}

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

/*
 * Resolve each argument to a full key: a 64-hex key as is, a prefix of at
 * least 8 hex digits through the list (it must match exactly one). All are
 * resolved before anything is deleted, so a typo deletes nothing.
 */
static int resolve_keys(struct cli *cli, int n, char **args, char (*keys)[SNAP_KEY_LEN + 1])
{
	json_t *list = NULL;
	int rc = EXIT_OK;
	for (int i = 0; i < n; i++) {
		size_t len = strlen(args[i]);
		if (len < SNAP_PREFIX_MIN || len > SNAP_KEY_LEN || !is_hex(args[i])) {
			cli__errorf(
				"'%s' is not a snapshot key (64 hex digits) or a prefix of one of "
				"at least %d",
				args[i], SNAP_PREFIX_MIN);
			rc = EXIT_FAIL;
			continue;
		}
		char want[SNAP_KEY_LEN + 1];
		for (size_t k = 0; k <= len; k++)
			want[k] = (char)tolower((unsigned char)args[i][k]);
		if (len == SNAP_KEY_LEN) {
			memcpy(keys[i], want, sizeof(want));
			continue;
		}
		if (!list &&
		    (rc = cli__http_get_json(cli, "/v2/snapshots", &list, NULL)) != EXIT_OK)
			return rc;
		struct floe_buf cands = FLOE_BUF_INIT;
		int matches = 0;
		size_t k;
		json_t *it;
		json_array_foreach(json_object_get(list, "items"), k, it) {
			const char *key = cli__jstr(it, "key");
			if (strlen(key) != SNAP_KEY_LEN || strncmp(key, want, len) != 0)
				continue;
			if (matches++ == 0)
				snprintf(keys[i], SNAP_KEY_LEN + 1, "%s", key);
			floe_buf_printf(&cands, "\n  %s  %s", key, cli__jstr(it, "endpoint"));
		}
		if (matches == 0) {
			cli__errorf("no snapshot matches '%s'", args[i]);
			rc = EXIT_FAIL;
		} else if (matches > 1) {
			cli__errorf("'%s' is ambiguous: %d snapshots match:%s", args[i], matches,
				    cands.data);
			rc = EXIT_FAIL;
		}
		floe_buf_destroy(&cands);
	}
	json_decref(list);
	return rc;
}

int cli__cmd_snapshot_rm(struct cli *cli, int argc, char **argv)
{
	int npos, rc = cli__parse_opts(cli, NULL, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos == 0)
		return cli__usage_error(cli->cmd, "which snapshot? give a key or a prefix");
	char(*keys)[SNAP_KEY_LEN + 1] = xcalloc((size_t)npos, sizeof(*keys));
	rc = resolve_keys(cli, npos, argv, keys);
	bool failed = false;
	for (int i = 0; rc == EXIT_OK && i < npos; i++) {
		/* The same snapshot named twice is deleted once. */
		bool dup = false;
		for (int j = 0; j < i; j++)
			dup = dup || strcmp(keys[i], keys[j]) == 0;
		if (dup)
			continue;
		/* Each key is its own request: a failure is reported and the
		 * rest are still deleted; the exit code says one failed. */
		char *path = xasprintf("/v2/snapshots/%s", keys[i]);
		struct http h;
		if (cli__http_request(cli, "DELETE", path, false, NULL, &h) == EXIT_OK)
			printf("deleted %s\n", keys[i]);
		else
			failed = true;
		cli__http_destroy(&h);
		free(path);
	}
	if (rc == EXIT_OK && failed)
		rc = EXIT_FAIL;
	free(keys);
	return rc;
}
