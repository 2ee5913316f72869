/*
 * The snapshot store: CRIU images and their metadata in the data directory.
 *
 *   DATA/snapshots/KEY/images/      CRIU's image files
 *   DATA/snapshots/KEY/meta.msgpack metadata (struct floe_snapshot_meta)
 *   DATA/snapshots/.tmp/KEY.N/      dumps in progress (removed at start)
 *   DATA/snapshots/quarantine/KEY.T/ snapshots that failed to restore
 *
 * KEY is floe_snapshot_key()'s hash of everything that defines the engine
 * process, so a changed endpoint never finds an old snapshot. A snapshot
 * appears under its key only complete: images are dumped into .tmp, the
 * metadata is written last (fsync'd), and the directory is renamed into
 * place. Everything here does file I/O: call it off the event loop, except
 * where noted.
 */
#ifndef FLOE_STORE_H
#define FLOE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

#define FLOE_SNAPSHOT_KEY_LEN 64

struct floe_snapshot_file {
	char name[64]; /* inside images/ */
	uint64_t size;
};

struct floe_snapshot_meta {
	char key[FLOE_SNAPSHOT_KEY_LEN + 1];
	char endpoint[64];
	char source_replica[80];
	char criu_version[32];
	char kernel[65];        /* uname -r where it was taken */
	uint64_t created_at_ms; /* Unix time */
	uint64_t image_bytes;
	uint64_t pages_bytes; /* memory pages among them: what a restored replica holds */
	uint64_t dump_ms;     /* how long the engine was frozen */
	uint64_t stdio_ino;   /* inode of the engine's stdout pipe at dump (CRIU inherit-fd key) */
	bool external_netns; /* the network namespace is not in the images: restore into a new one */
	uint32_t restores;
	uint32_t restore_failures;
	uint64_t last_restore_ms; /* duration of the latest restore */
	struct floe_snapshot_file *files;
	size_t n_files;
};

void floe_snapshot_meta_free(struct floe_snapshot_meta *m);
void floe_snapshot_meta_copy(struct floe_snapshot_meta *dst, const struct floe_snapshot_meta *src);

/**
 * The key of an endpoint's engine: SHA-256 over its name, command, environment,
 * port, readiness, warm-up request and the identity (device, inode, size,
 * mtime) of floe-init, of the executable and of every argument that names
 * an existing file (a script, weights). floed's own inherited environment
 * is not part of it. Does a few stat()s.
 */
void floe_snapshot_key(const struct floe_endpoint_config *cfg, const char *init_path,
		       char key[FLOE_SNAPSHOT_KEY_LEN + 1]);

/** True for a well-formed key: exactly 64 lowercase hex digits (safe as a path part). */
bool floe_snapshot_key_valid(const char *s, size_t n);

/** Create DATA/snapshots (and its .tmp and quarantine), removing leftover .tmp dumps. */
int floe_snapstore_init(const char *data_dir, floe_error *err);

/** DATA/snapshots/KEY and DATA/snapshots/KEY/images (malloc'd). No I/O. */
char *floe_snapstore_dir(const char *data_dir, const char *key);
char *floe_snapstore_images(const char *data_dir, const char *key);

/** A fresh DATA/snapshots/.tmp/KEY.N/ with an empty images/ inside; *dir is malloc'd. */
int floe_snapstore_begin(const char *data_dir, const char *key, char **dir, floe_error *err);

/**
 * Finish a dump in tmp_dir: record the image files and sizes in meta, write
 * meta.msgpack durably, and move tmp_dir to DATA/snapshots/KEY (replacing
 * an older one). On failure tmp_dir is removed.
 */
int floe_snapstore_commit(const char *data_dir, const char *tmp_dir,
			  struct floe_snapshot_meta *meta, floe_error *err);

/**
 * Read DATA/snapshots/KEY and check it: metadata parses, every image file
 * listed is there with its recorded size. -ENOENT when there is none; other
 * errors (with err saying what is wrong) mean a damaged snapshot.
 */
int floe_snapstore_load(const char *data_dir, const char *key, struct floe_snapshot_meta *meta,
			floe_error *err);

/** Re-check the image files against meta (sizes): cheap, run before each restore. */
int floe_snapstore_verify(const char *data_dir, const struct floe_snapshot_meta *meta,
			  floe_error *err);

/** Rewrite meta.msgpack (restore statistics). */
int floe_snapstore_save_meta(const char *data_dir, const struct floe_snapshot_meta *meta,
			     floe_error *err);

/** Move DATA/snapshots/KEY to quarantine/KEY.UNIXTIME with a REASON file;
 *  at most 8 quarantined snapshots are kept (oldest go). */
int floe_snapstore_quarantine(const char *data_dir, const char *key, const char *reason,
			      floe_error *err);

/** Remove DATA/snapshots/KEY. -ENOENT when there is none. */
int floe_snapstore_remove(const char *data_dir, const char *key, floe_error *err);

/** Every loadable snapshot (damaged ones are skipped with a warning). */
int floe_snapstore_list(const char *data_dir, struct floe_snapshot_meta **metas, size_t *n);

/** This machine's kernel release (uname -r), for meta.kernel checks. */
const char *floe_kernel_release(void);

#endif
