/* Small file-system helpers. */
#ifndef FLOE_FSUTIL_H
#define FLOE_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** mkdir -p: create path and its missing parents with mode. Returns 0 or -errno. */
int floe_mkdir_p(const char *path, mode_t mode);

/** rm -rf: remove path and everything under it (no symlink is followed).
 *  A missing path is not an error. Returns 0 or the first -errno. */
int floe_rm_rf(const char *path);

/**
 * Replace path with data, atomically and durably: write a temp file of its
 * own (PATH.tmp.XXXXXX, so concurrent writers of one path never share one),
 * fsync it, rename over path, fsync the directory. A crash leaves either the
 * old or the new content, never a mix (and maybe a stale temp file, which
 * nothing reads). Returns 0 or -errno; no temp file is left on failure.
 */
int floe_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/** Read a whole (small) file into a malloc'd buffer. Returns 0 or -errno
 *  (-EFBIG past max bytes). */
int floe_read_file(const char *path, size_t max, char **data, size_t *len);

/** True when path is a regular file this process may execute. */
bool floe_is_executable(const char *path);

/**
 * Find name the way execvp would: the first DIR/name, DIR taken in order
 * from the colon-separated dirs (NULL: $PATH), that is an executable
 * regular file. Returns 0 with out filled, or -ENOENT (out empty).
 */
int floe_find_executable(const char *name, const char *dirs, char *out, size_t size);

/** Sum of the sizes of the regular files in dir (not recursive). */
int floe_dir_bytes(const char *dir, uint64_t *bytes);

#endif
