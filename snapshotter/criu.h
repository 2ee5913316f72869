/*
 * CRIU through libcriu: what this machine can do, and the two operations
 * floe needs (dump a replica's process tree leaving it running; restore one
 * as a child of the caller, in fresh PID and network namespaces).
 *
 * Every call here blocks (libcriu forks `criu swrk` and waits for it): run
 * them on libuv's thread pool, never on the event loop. They are safe to
 * call from several threads at once (each call has its own libcriu options).
 */
#ifndef FLOE_CRIU_H
#define FLOE_CRIU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/** What floed found at start (floe_criu_probe). */
struct floe_criu_caps {
	bool snapshots;   /* criu found, new enough, `criu check` passed */
	bool lazy_pages;  /* userfaultfd lazy restore works */
	bool gpu;         /* CRIU's CUDA plugin and cuda-checkpoint are there, and an NVIDIA GPU */
	char version[32]; /* "4.2.1" */
	char path[256];   /* the criu binary */
	char why[256]; /* !snapshots: why not ("criu not found", "criu 3.17 is older than 4.2") */
	char gpu_why[160];
};

/** The oldest CRIU that works on the kernels floe targets (6.16+ broke 4.1). */
#define FLOE_CRIU_MIN_VERSION 40200 /* libcriu's encoding: major*10000 + minor*100 + sub */

/**
 * Find criu ($FLOE_CRIU, else PATH, /usr/local/sbin, /usr/sbin), check its
 * version and run its own feature check. Never fails: caps says what works.
 */
void floe_criu_probe(struct floe_criu_caps *caps);

struct floe_criu_dump_req {
	const char *criu_path;
	pid_t pid;            /* root of the tree (a replica's floe-init), as floed sees it */
	int images_dir_fd;    /* empty directory for the images; CRIU's log goes here too */
	uint64_t netns_ino;   /* the tree's network namespace, left out of the images (0: dumped) */
	const char *log_file; /* name inside images_dir */
};

/** The key external network namespaces are dumped and restored under. */
#define FLOE_CRIU_NETNS_KEY "floe-netns"

/**
 * Dump the process tree rooted at req->pid and leave it running. With
 * netns_ino, the network namespace is external: not dumped, and restored
 * into one the caller makes (a replica's netns holds only loopback, which
 * is quicker to create than to have CRIU replay with ip(8)). The tree is
 * frozen for the duration. Established TCP connections are not dumped (a
 * restored engine sees them closed). Returns 0 or a negative errno with err
 * set (the message points at CRIU's log).
 */
int floe_criu_dump(const struct floe_criu_dump_req *req, floe_error *err);

struct floe_criu_restore_req {
	const char *criu_path;
	const char *images_dir; /* a snapshot's images */
	const char *work_dir;   /* scratch: CRIU's log, the lazy-pages socket */
	const char *log_file;   /* name inside work_dir */
	int stdio_fd;           /* becomes the restored engine's stdout/stderr pipe */
	const char *stdio_key;  /* "pipe:[INODE]" of that pipe at dump time */
	int netns_fd;           /* the network namespace to restore into (when dumped without) */
	bool lazy_pages;        /* serve memory on first touch from a lazy-pages daemon */
	/* Called while the restored tasks exist but have not run yet (root pid as
	 * floed sees it); a negative return aborts the restore. May be NULL. */
	int (*post_restore)(pid_t root, void *arg);
	void *arg;
};

/**
 * Restore a tree as a child of the calling thread (so PR_SET_PDEATHSIG
 * restored from the image fires when floed goes). Returns 0 and the root's
 * pid, or a negative errno with err set. With lazy_pages, *lazy_pid is the
 * lazy-pages daemon, which exits once every page has been copied in: the
 * caller reaps it (waitpid) off the loop. Otherwise *lazy_pid is -1.
 */
int floe_criu_restore(const struct floe_criu_restore_req *req, pid_t *pid, pid_t *lazy_pid,
		      floe_error *err);

#endif
