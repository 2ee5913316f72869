/*
 * The snapshot store on a real directory: a committed snapshot loads back
 * with its metadata; damage (truncated image, flipped metadata, a missing
 * file) is reported, never read as a good snapshot; quarantine keeps the
 * newest few; keys follow the engine's definition.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config.h"
#include "fsutil.h"
#include "store.h"
#include "xalloc.h"

static char data_dir[] = "/tmp/floe-store-XXXXXX";

static void setup(void)
{
	strcpy(data_dir, "/tmp/floe-store-XXXXXX");
	cr_assert_not_null(mkdtemp(data_dir));
	floe_error err = { 0 };
	cr_assert_eq(floe_snapstore_init(data_dir, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
	floe_rm_rf(data_dir);
}

static void write_file(const char *path, size_t size, char fill)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	char buf[4096];
	memset(buf, fill, sizeof(buf));
	for (size_t done = 0; done < size;) {
		size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);
		cr_assert_eq(write(fd, buf, n), (ssize_t)n);
		done += n;
	}
	close(fd);
}

static const char *KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* A fake dump: what CRIU leaves in images/ (names and sizes are what matter). */
static void commit_snapshot(const char *key)
{
	char *dir = NULL;
	floe_error err = { 0 };
	cr_assert_eq(floe_snapstore_begin(data_dir, key, &dir, &err), 0, "%s", err.msg);
	char *p = xasprintf("%s/images/inventory.img", dir);
	write_file(p, 88, 'i');
	free(p);
	p = xasprintf("%s/images/pages-1.img", dir);
	write_file(p, 3 * 4096, 'p');
	free(p);
	struct floe_snapshot_meta m = { 0 };
	snprintf(m.key, sizeof(m.key), "%s", key);
	snprintf(m.endpoint, sizeof(m.endpoint), "demo");
	snprintf(m.source_replica, sizeof(m.source_replica), "demo-1");
	snprintf(m.criu_version, sizeof(m.criu_version), "4.2.1");
	snprintf(m.kernel, sizeof(m.kernel), "%s", floe_kernel_release());
	m.stdio_ino = 424242;
	m.dump_ms = 17;
	cr_assert_eq(floe_snapstore_commit(data_dir, dir, &m, &err), 0, "%s", err.msg);
	floe_snapshot_meta_free(&m);
	free(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, committed_snapshot_loads_back)
{
	commit_snapshot(KEY);
	struct floe_snapshot_meta m;
	floe_error err = { 0 };
	cr_assert_eq(floe_snapstore_load(data_dir, KEY, &m, &err), 0, "%s", err.msg);
	cr_expect_str_eq(m.endpoint, "demo");
	cr_expect_str_eq(m.source_replica, "demo-1");
	cr_expect_str_eq(m.criu_version, "4.2.1");
	cr_expect_eq(m.stdio_ino, 424242);
	cr_expect_eq(m.dump_ms, 17);
	cr_expect_eq(m.n_files, 2);
	cr_expect_eq(m.image_bytes, 88 + 3 * 4096);
	cr_expect_eq(m.pages_bytes, 3 * 4096);
	floe_snapshot_meta_free(&m);
	/* nothing left behind in .tmp */
	char *tmp = xasprintf("%s/snapshots/.tmp", data_dir);
	uint64_t bytes = 1;
	floe_dir_bytes(tmp, &bytes);
	cr_expect_eq(bytes, 0);
	free(tmp);
}

Test(store, missing_snapshot_is_enoent)
{
	struct floe_snapshot_meta m;
	floe_error err = { 0 };
	cr_assert_eq(floe_snapstore_load(data_dir, KEY, &m, &err), -ENOENT);
}

Test(store, truncated_image_is_damage_not_a_snapshot)
{
	commit_snapshot(KEY);
	char *p = xasprintf("%s/snapshots/%s/images/pages-1.img", data_dir, KEY);
	cr_assert_eq(truncate(p, 4096), 0);
	struct floe_snapshot_meta m;
	floe_error err = { 0 };
	int rc = floe_snapstore_load(data_dir, KEY, &m, &err);
	cr_assert(rc < 0 && rc != -ENOENT, "rc %d", rc);
	cr_expect(strstr(err.msg, "pages-1.img") != NULL, "message names the file: %s", err.msg);
	free(p);
}

Test(store, missing_image_file_is_damage)
{
	commit_snapshot(KEY);
	char *p = xasprintf("%s/snapshots/%s/images/inventory.img", data_dir, KEY);
	cr_assert_eq(unlink(p), 0);
	struct floe_snapshot_meta m;
	floe_error err = { 0 };
	int rc = floe_snapstore_load(data_dir, KEY, &m, &err);
	cr_assert(rc < 0 && rc != -ENOENT, "rc %d", rc);
	free(p);
}

Test(store, every_flipped_metadata_bit_is_caught)
{
	commit_snapshot(KEY);
	char *p = xasprintf("%s/snapshots/%s/meta.msgpack", data_dir, KEY);
	char *orig;
	size_t len;
	cr_assert_eq(floe_read_file(p, 1 << 20, &orig, &len), 0);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			char *mut = xmalloc(len);
			memcpy(mut, orig, len);
			mut[i] ^= (char)(1 << bit);
			cr_assert_eq(floe_write_atomic(p, mut, len, 0600), 0);
			free(mut);
			struct floe_snapshot_meta m;
			floe_error err = { 0 };
			int rc = floe_snapstore_load(data_dir, KEY, &m, &err);
			cr_assert(rc < 0 && rc != -ENOENT, "byte %zu bit %d flipped: rc %d", i, bit,
				  rc);
		}
	}
	free(orig);
	free(p);
}

Test(store, quarantine_moves_it_aside_with_a_reason_and_keeps_eight)
{
	for (int i = 0; i < 10; i++) {
		char key[FLOE_SNAPSHOT_KEY_LEN + 1];
		snprintf(key, sizeof(key), "%.63s%x", KEY, i);
		commit_snapshot(key);
		floe_error err = { 0 };
		cr_assert_eq(floe_snapstore_quarantine(data_dir, key, "test reason", &err), 0, "%s",
			     err.msg);
		struct floe_snapshot_meta m;
		cr_assert_eq(floe_snapstore_load(data_dir, key, &m, &err), -ENOENT);
	}
	char *q = xasprintf("%s/snapshots/quarantine", data_dir);
	int n = 0;
	struct floe_snapshot_meta *all;
	size_t nall;
	cr_assert_eq(floe_snapstore_list(data_dir, &all, &nall), 0);
	cr_expect_eq(nall, 0, "quarantined snapshots are not listed as usable");
	free(all);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ls %s | wc -l", q);
	FILE *f = popen(cmd, "r");
	cr_assert_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	cr_expect_eq(n, 8);
	snprintf(cmd, sizeof(cmd), "cat %s/*/REASON | grep -c 'test reason'", q);
	f = popen(cmd, "r");
	cr_assert_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	cr_expect_eq(n, 8);
	free(q);
}

Test(store, remove_refuses_anything_but_a_key)
{
	commit_snapshot(KEY);
	floe_error err = { 0 };
	cr_expect_eq(floe_snapstore_remove(data_dir, "../../etc", &err), -ENOENT);
	cr_expect_eq(floe_snapstore_remove(data_dir, KEY, &err), 0, "%s", err.msg);
	cr_expect_eq(floe_snapstore_remove(data_dir, KEY, &err), -ENOENT);
}

static struct floe_endpoint_config *endpoint(const char *arg)
{
	static char *argv[4];
	static struct floe_kv env[1] = { { "A", "1" } };
	static struct floe_endpoint_config ep;
	memset(&ep, 0, sizeof(ep));
	argv[0] = "/bin/true";
	argv[1] = (char *)arg;
	argv[2] = NULL;
	ep.name = "demo";
	ep.engine = "custom";
	ep.argv = argv;
	ep.argc = 2;
	ep.env = env;
	ep.n_env = 1;
	ep.port = 8000;
	ep.health_route = "/health";
	return &ep;
}

Test(store, key_follows_the_engine_definition)
{
	char a[FLOE_SNAPSHOT_KEY_LEN + 1], b[FLOE_SNAPSHOT_KEY_LEN + 1];
	floe_snapshot_key(endpoint("--x"), "/bin/sh", a);
	floe_snapshot_key(endpoint("--x"), "/bin/sh", b);
	cr_expect_str_eq(a, b, "same definition, same key");
	cr_expect_eq(strlen(a), 64);
	floe_snapshot_key(endpoint("--y"), "/bin/sh", b);
	cr_expect_str_neq(a, b, "an argument changed");
	struct floe_endpoint_config *ep = endpoint("--x");
	ep->port = 8001;
	floe_snapshot_key(ep, "/bin/sh", b);
	cr_expect_str_neq(a, b, "the port changed");
	ep = endpoint("--x");
	ep->snapshot.warmup_path = "/generate";
	floe_snapshot_key(ep, "/bin/sh", b);
	cr_expect_str_neq(a, b, "the warm-up changed");
	ep = endpoint("--x");
	ep->name = "other";
	floe_snapshot_key(ep, "/bin/sh", b);
	cr_expect_str_neq(a, b, "another endpoint with the same engine has a snapshot of its own");
	/* A rebuilt binary: an absolute-path argument's file changes. */
	char path[] = "/tmp/floe-key-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "v1", 2), 2);
	floe_snapshot_key(endpoint(path), "/bin/sh", a);
	cr_assert_eq(write(fd, "v2", 2), 2);
	close(fd);
	floe_snapshot_key(endpoint(path), "/bin/sh", b);
	cr_expect_str_neq(a, b, "a file named by an argument changed");
	unlink(path);
}
