/*
 * Per-replica cgroups with a freezer, for the warm pool (issue 3): replicas
 * restored from a snapshot are kept frozen, holding memory but using no CPU,
 * and a cold request thaws one in milliseconds.
 *
 * Two hierarchies can freeze: cgroup v1's freezer controller (freezer.state)
 * and the cgroup v2 core (cgroup.freeze, cgroup.events). Which one is used is
 * read from /proc/self/mountinfo on every call that needs it; a v1 freezer
 * mount wins when both exist (hybrid hosts mount v2 at /sys/fs/cgroup/unified
 * as well, where floed's processes sit in the root cgroup).
 *
 * Replica cgroups live under a parent cgroup, "floe" by default:
 *   v1: <freezer mount>/floe/<name>
 *   v2: <v2 mount>/<floed's own cgroup>/floe/<name>. floed's own cgroup has
 *       no controllers enabled for its children (it holds processes, so the v2
 *       "no internal processes" rule forbids it), and freezing needs none.
 *
 * Every call is blocking file I/O on cgroupfs: run it off the event loop
 * (thaw is the exception worth running inline: it is a write and one read).
 * Needs root, or write access to the parent cgroup.
 */
#ifndef FLOE_CGROUP_H
#define FLOE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/** One replica's cgroup (opaque). Created by floe_cgroup_create, freed by floe_cgroup_destroy. */
struct floe_cgroup;

/**
 * Can this host freeze cgroups? Detects the hierarchy from /proc/self/mountinfo,
 * creates the parent cgroup if missing, checks that it has the freeze file and
 * that /proc/PID/task/TID/children exists (floe_cgroup_add_tree walks it).
 * desc (n bytes, may be NULL when n is 0) receives one line for the log: on
 * success "cgroup v1 freezer at /sys/fs/cgroup/freezer, replicas under
 * /sys/fs/cgroup/freezer/floe" or "cgroup v2 at ..., replicas under ...";
 * on failure why not.
 * Returns 0 when freezing works here, else -errno (-ENOENT: no freezing
 * hierarchy mounted; -EACCES: the parent cannot be created; -ENOTSUP: the
 * kernel lacks the freeze file or the children file).
 */
int floe_cgroup_probe(char *desc, size_t n);

/**
 * Use parent name instead of "floe" for every later call ([A-Za-z0-9_.-]+,
 * not "." or ".."). Two floeds on one host (or a test next to a floed) keep
 * apart this way: floe_cgroup_cleanup_stale of one must not thaw the other's
 * warm pool. Call it once at start, before any other floe_cgroup_ function:
 * it is not synchronised with them. Returns 0 or -EINVAL.
 */
int floe_cgroup_set_parent(const char *name);

/**
 * Tests only: 1 uses only a cgroup v1 freezer mount, 2 only a cgroup v2
 * mount, 0 (the default) detects with v1 winning. Same rule as
 * floe_cgroup_set_parent: call before the other functions.
 */
void floe__cgroup_force_version(int version);

/**
 * Create the cgroup PARENT/name (the parent is created on demand).
 * name: [A-Za-z0-9_.-]+, at most 255 bytes, not "." or "..".
 * On success *out owns the new cgroup (release with floe_cgroup_destroy).
 * Returns 0; -EINVAL for a bad name; -EEXIST when a cgroup of that name is
 * already there (a leftover: see floe_cgroup_cleanup_stale); -ENOENT when
 * no freezing hierarchy is mounted; other -errno from mkdir. err says which
 * file failed.
 */
int floe_cgroup_create(const char *name, struct floe_cgroup **out, floe_error *err);

/**
 * Move pid and all its descendants (children of any of its threads,
 * recursively) into cg. Writes each process to cgroup.procs, which moves all
 * its threads with it. Tasks that fork meanwhile are handled by walking the
 * tree again until a pass finds nothing new to move (at most 8 passes).
 * Processes that exit during the walk are skipped.
 * Returns 0; -ESRCH when pid itself does not exist; -EAGAIN when the tree
 * still grew on the last pass; other -errno from writing cgroup.procs.
 */
int floe_cgroup_add_tree(struct floe_cgroup *cg, pid_t pid, floe_error *err);

/**
 * Freeze every task in cg and wait until the kernel reports the cgroup frozen
 * (v1 freezer.state reads FROZEN, v2 cgroup.events says "frozen 1"), polling
 * with sleeps from 100 us doubling to 5 ms. Returns 0, or -ETIMEDOUT after
 * timeout_ms: the cgroup is then left freezing (some tasks may be frozen
 * already; a task in uninterruptible sleep can hold it up); call
 * floe_cgroup_thaw to undo or floe_cgroup_freeze again to keep waiting.
 * Other -errno when the state files cannot be written or read.
 * On cgroup v1 it also keeps an empty cgroup "floe-freezer-pin" frozen under
 * the freezer mount (created once, shared by every floed, never removed):
 * without one, thawing the last frozen cgroup of the host costs about 2 ms of
 * kernel text patching.
 */
int floe_cgroup_freeze(struct floe_cgroup *cg, unsigned timeout_ms, floe_error *err);

/**
 * Thaw cg and wait until the kernel reports it thawed (same polling as
 * floe_cgroup_freeze; the kernel usually reports it at the first read).
 * Returns 0, -ETIMEDOUT after timeout_ms, or -errno from the state files.
 */
int floe_cgroup_thaw(struct floe_cgroup *cg, unsigned timeout_ms, floe_error *err);

/**
 * The kernel's view right now: true when cg is completely frozen (v1 FROZEN,
 * not FREEZING; v2 "frozen 1"). False when thawed, still freezing, or the
 * state cannot be read.
 */
bool floe_cgroup_frozen(struct floe_cgroup *cg);

/** The cgroup's directory, e.g. "/sys/fs/cgroup/freezer/floe/r1". Owned by cg. */
const char *floe_cgroup_path(const struct floe_cgroup *cg);

/**
 * Remove cg's directory and free cg (always, whatever the result). The
 * replica's processes must have exited (reap them first). Tasks still
 * inside: thaws the cgroup (frozen tasks cannot act on signals under v1),
 * leaves the directory and returns -EBUSY. A directory already gone counts as
 * removed. Other failures are logged and returned as -errno.
 */
int floe_cgroup_destroy(struct floe_cgroup *cg);

/**
 * At floed's start: remove every child cgroup of the parent, left by a floed
 * that crashed. Children that still hold tasks cannot be removed: they are
 * thawed (so that their processes can run and exit) and logged, not killed.
 * Quiet when no freezing hierarchy or no parent exists.
 */
void floe_cgroup_cleanup_stale(void);

#endif
