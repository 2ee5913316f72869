/*
 * floe billing export (the usage CSV, written atomically) and floe billing
 * summary (usage and cost per endpoint).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "cli-internal.h"
#include "xalloc.h"

/* Where an export is written until it is complete; removed on a fatal signal. */
static char export_tmp[PATH_MAX];
static volatile sig_atomic_t export_tmp_set;

void cli__on_fatal_signal(int sig)
{
	if (export_tmp_set)
		unlink(export_tmp); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void warn_incomplete(const char *value)
{
	fprintf(stderr, "floe: warning: the ledger has damage; this export is incomplete: %s\n",
		value);
}

/* The query of the billing routes (namespace, from, to) plus extras. */
struct billing_args {
	const char *ns, *from, *to, *granularity, *group_by, *output;
};

static void billing_query(struct floe_buf *path, const struct billing_args *a)
{
	cli__query_add(path, "namespace", a->ns);
	cli__query_add(path, "from", a->from);
	cli__query_add(path, "to", a->to);
	cli__query_add(path, "granularity", a->granularity);
	cli__query_add(path, "group_by", a->group_by);
}

/* fsync the directory holding path, so that the rename survives a crash
 * (best effort: some file systems refuse fsync on a directory). */
static void fsync_parent(const char *path)
{
	char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
}

/*
 * Export into something that is not a regular file (/dev/stdout, a FIFO, a
 * device): there is nothing to replace atomically, and a rename would put a
 * regular file in the device's place. Written through, like stdout.
 */
static int export_to_special(struct cli *cli, const char *path, const char *file)
{
	FILE *out = fopen(file, "w");
	if (!out) {
		cli__errorf("cannot write %s: %s", file, strerror(errno));
		return EXIT_FAIL;
	}
	struct http h;
	int rc = cli__http_request(cli, "GET", path, true, out, &h);
	if (fclose(out) != 0 && rc == EXIT_OK) {
		cli__errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	cli__http_destroy(&h);
	return rc;
}

/*
 * Export into a regular file, atomically: into a temp file next to it, then
 * fsync and rename, so that a failed or interrupted export leaves the old
 * file (or none) and never half a file. A symlink is followed: its target is
 * replaced, the link stays.
 */
static int export_to_file(struct cli *cli, const char *path, const char *file)
{
	struct stat st;
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
		return export_to_special(cli, path, file);
	char *real = realpath(file, NULL); /* NULL when it does not exist yet */
	const char *target = real ? real : file;
	char *copy = xstrdup(target);
	char *base = xstrdup(basename(copy));
	free(copy);
	copy = xstrdup(target);
	int n = snprintf(export_tmp, sizeof(export_tmp), "%s/.%s.floe-XXXXXX", dirname(copy), base);
	free(copy);
	free(base);
	int rc = EXIT_OK;
	if (n < 0 || (size_t)n >= sizeof(export_tmp)) {
		cli__errorf("cannot write %s: the path is too long", file);
		free(real);
		return EXIT_FAIL;
	}
	int fd = mkstemp(export_tmp);
	if (fd < 0) {
		cli__errorf("cannot create a temporary file next to %s: %s", file, strerror(errno));
		free(real);
		return EXIT_FAIL;
	}
	export_tmp_set = 1;
	/* mkstemp makes 0600; the export gets the mode any new file would. */
	mode_t mask = umask(0);
	umask(mask);
	(void)fchmod(fd, 0666 & ~mask);
	FILE *out = fdopen(fd, "w");
	if (!out) {
		cli__errorf("cannot write %s: %s", export_tmp, strerror(errno));
		close(fd);
		unlink(export_tmp);
		export_tmp_set = 0;
		free(real);
		return EXIT_FAIL;
	}
	struct http h;
	rc = cli__http_request(cli, "GET", path, true, out, &h);
	if (rc == EXIT_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0)) {
		cli__errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (fclose(out) != 0 && rc == EXIT_OK) {
		cli__errorf("cannot write %s: %s", file, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && rename(export_tmp, target) != 0) {
		cli__errorf("cannot rename %s to %s: %s", export_tmp, target, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc != EXIT_OK)
		unlink(export_tmp);
	else
		fsync_parent(target);
	export_tmp_set = 0;
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	cli__http_destroy(&h);
	free(real);
	return rc;
}

static int export_to_stdout(struct cli *cli, const char *path)
{
	struct http h;
	int rc = cli__http_request(cli, "GET", path, true, stdout, &h);
	if (rc == EXIT_OK && fflush(stdout) != 0) {
		cli__errorf("cannot write the output: %s", strerror(errno));
		rc = EXIT_FAIL;
	}
	if (rc == EXIT_OK && h.incomplete) {
		warn_incomplete(h.incomplete);
		rc = EXIT_INCOMPLETE;
	}
	cli__http_destroy(&h);
	return rc;
}

int cli__cmd_billing_export(struct cli *cli, int argc, char **argv)
{
	struct billing_args a = { 0 };
	const struct opt opts[] = {
		{ "namespace", 0, &a.ns, NULL, NULL },
		{ "from", 0, &a.from, NULL, NULL },
		{ "to", 0, &a.to, NULL, NULL },
		{ "granularity", 0, &a.granularity, NULL, NULL },
		{ "group-by", 0, &a.group_by, NULL, NULL },
		{ "output", 'o', &a.output, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	if (a.granularity && !cli__one_of(a.granularity, "minute|hour|day"))
		return cli__usage_error(cli->cmd,
					"--granularity must be minute, hour or day, not '%s'",
					a.granularity);
	if (a.group_by && !cli__one_of(a.group_by, "endpoint|replica"))
		return cli__usage_error(
			cli->cmd, "--group-by must be endpoint or replica, not '%s'", a.group_by);
	if (a.output && !a.output[0])
		return cli__usage_error(cli->cmd, "-o needs a file name (or - for stdout)");
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/billing/usage.csv");
	billing_query(&path, &a);
	if (a.output && strcmp(a.output, "-") != 0)
		rc = export_to_file(cli, path.data, a.output);
	else
		rc = export_to_stdout(cli, path.data);
	floe_buf_destroy(&path);
	return rc;
}

int cli__cmd_billing_summary(struct cli *cli, int argc, char **argv)
{
	struct billing_args a = { 0 };
	const struct opt opts[] = {
		{ "namespace", 0, &a.ns, NULL, NULL },
		{ "from", 0, &a.from, NULL, NULL },
		{ "to", 0, &a.to, NULL, NULL },
		{ 0 },
	};
	int npos, rc = cli__parse_opts(cli, opts, argc, argv, &npos);
	if (rc)
		return rc == EXIT_HELP_DONE ? EXIT_OK : rc;
	if (npos)
		return cli__usage_error(cli->cmd, "unexpected argument '%s'", argv[0]);
	struct floe_buf path = FLOE_BUF_INIT;
	floe_buf_puts(&path, "/v2/billing/summary");
	billing_query(&path, &a);
	json_t *v;
	char *raw = NULL;
	rc = cli__http_get_json(cli, path.data, &v, &raw);
	floe_buf_destroy(&path);
	if (rc)
		return rc;
	json_t *eps = json_object_get(v, "endpoints");
	if (cli->json) {
		cli__print_raw_json(raw);
	} else if (!json_is_array(eps)) {
		cli__errorf("floed's summary has no endpoints list");
		rc = EXIT_FAIL;
	} else {
		static const char *const head[] = { "ENDPOINT",     "REPLICAS",  "RUNNING",
						    "INITIALIZING", "WARM POOL", "REQUESTS",
						    "COST" };
		static const bool right[] = { false, true, true, true, true, true, true };
		struct table t = { 7, head, right, NULL, 0 };
		/* Across namespaces, an endpoint is named NAMESPACE/NAME. */
		bool all = !json_is_string(json_object_get(v, "namespace"));
		size_t i;
		json_t *ep;
		json_array_foreach(eps, i, ep) {
			json_t *ms = json_object_get(ep, "ms");
			json_t *req = json_object_get(ep, "requests");
			json_int_t requests = 0;
			const char *k;
			json_t *cnt;
			json_object_foreach(req, k, cnt)
				requests += json_integer_value(cnt);
			cli__table_add(
				&t,
				all ? xasprintf("%s/%s", cli__jstr(ep, "namespace"),
						cli__jstr(ep, "endpoint")) :
				      xstrdup(cli__jstr(ep, "endpoint")),
				xasprintf("%lld", (long long)cli__json_int_of(ep, "replicas")),
				cli__human_ms(cli__json_int_of(ms, "running")),
				cli__human_ms(cli__json_int_of(ms, "initializing")),
				cli__human_ms(cli__json_int_of(ms, "warm_pool")),
				xasprintf("%lld", (long long)requests),
				xasprintf("%s %s", cli__jstr(ep, "cost"),
					  cli__jstr(ep, "currency")));
		}
		cli__table_print(&t, stdout);
	}
	/* Damage is said on stderr even with --json, where "incomplete" says it too. */
	if (rc == EXIT_OK && json_is_true(json_object_get(v, "incomplete"))) {
		struct floe_buf d = FLOE_BUF_INIT;
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(v, "damaged"), i, r) {
			floe_buf_printf(&d, "%s%s@%lld+%lld", i ? ", " : "", cli__jstr(r, "file"),
					(long long)cli__json_int_of(r, "offset"),
					(long long)cli__json_int_of(r, "length"));
		}
		warn_incomplete(d.data ? d.data : "damaged ranges not listed");
		floe_buf_destroy(&d);
		rc = EXIT_INCOMPLETE;
	}
	free(raw);
	json_decref(v);
	return rc;
}
