/* File-system helpers on real files: executable lookup, atomic replace, rm -rf. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "fsutil.h"

static char dir[] = "/tmp/floe-fsutil-XXXXXX";

static void setup(void)
{
	strcpy(dir, "/tmp/floe-fsutil-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	floe_rm_rf(dir);
}

TestSuite(fsutil, .init = setup, .fini = teardown);

static void touch(const char *path, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(fsutil, find_executable_takes_the_first_executable_file_in_order)
{
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], p[PATH_MAX], dirs[3 * PATH_MAX];
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(c, sizeof(c), "%s/c", dir);
	cr_assert_eq(floe_mkdir_p(a, 0755), 0);
	cr_assert_eq(floe_mkdir_p(b, 0755), 0);
	cr_assert_eq(floe_mkdir_p(c, 0755), 0);
	snprintf(p, sizeof(p), "%s/tool", a);
	cr_assert_eq(mkdir(p, 0755), 0); /* a directory: not it */
	snprintf(p, sizeof(p), "%s/tool", b);
	touch(p, 0644); /* not executable: not it */
	snprintf(p, sizeof(p), "%s/tool", c);
	touch(p, 0755);
	snprintf(dirs, sizeof(dirs), "%s::%s:%s", a, b, c);
	char out[PATH_MAX];
	cr_assert_eq(floe_find_executable("tool", dirs, out, sizeof(out)), 0);
	cr_expect_str_eq(out, p);
	cr_expect(floe_is_executable(p));
	cr_expect_eq(floe_find_executable("absent", dirs, out, sizeof(out)), -ENOENT);
	cr_expect_str_eq(out, "");
}

Test(fsutil, write_atomic_replaces_the_whole_file)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/f", dir);
	cr_assert_eq(floe_write_atomic(p, "first version", 13, 0600), 0);
	cr_assert_eq(floe_write_atomic(p, "second", 6, 0600), 0);
	char *data;
	size_t len;
	cr_assert_eq(floe_read_file(p, 1024, &data, &len), 0);
	cr_expect_eq(len, 6);
	cr_expect_str_eq(data, "second");
	free(data);
	cr_expect_eq(floe_read_file(p, 3, &data, &len), -EFBIG);
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	cr_expect_neq(access(tmp, F_OK), 0, "temporary file left behind");
}

Test(fsutil, rm_rf_removes_a_tree_and_ignores_a_missing_path)
{
	char p[PATH_MAX], f[PATH_MAX + 8];
	snprintf(p, sizeof(p), "%s/x/y/z", dir);
	cr_assert_eq(floe_mkdir_p(p, 0755), 0);
	snprintf(f, sizeof(f), "%s/file", p);
	touch(f, 0644);
	snprintf(p, sizeof(p), "%s/x", dir);
	uint64_t bytes;
	cr_expect_eq(floe_rm_rf(p), 0);
	cr_expect_neq(access(p, F_OK), 0);
	cr_expect_eq(floe_rm_rf(p), 0, "a missing path is not an error");
	cr_expect_eq(floe_dir_bytes(dir, &bytes), 0);
	cr_expect_eq(bytes, 0);
}
