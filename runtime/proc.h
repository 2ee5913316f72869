/*
 * Replica processes: an engine command started in fresh PID and network
 * namespaces (only loopback up), under floe-init as PID 1, its stdout and
 * stderr captured through pipes into a size-capped log file, its exit
 * reported on the libuv loop through a pidfd.
 *
 * Replicas never outlive floed: floe-init gets PR_SET_PDEATHSIG(SIGKILL),
 * and when a PID namespace's init dies the kernel kills everything in it.
 */
#ifndef FLOE_PROC_H
#define FLOE_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "config.h"
#include "error.h"
#include "list.h"

struct floe_proc;
struct floe_proc_tap;

/** Called once on the loop when the replica's init has exited and been reaped.
 *  status is the waitpid() status. The callback may call floe_proc_close(). */
typedef void (*floe_proc_exit_cb)(struct floe_proc *p, int status);
typedef void (*floe_proc_close_cb)(struct floe_proc *p);

struct floe_proc_spec {
	char *const *argv; /* engine argv, NULL-terminated; argv[0] absolute or found in PATH */
	const struct floe_kv *env; /* added to floed's environment (overriding) */
	size_t n_env;
	const char *init_path;  /* the floe-init executable */
	const char *log_path;   /* engine stdout+stderr go here (created 0640, appended) */
	uint64_t log_max_bytes; /* past this the file is rotated to LOG_PATH.1 (one generation) */
};

/** Caller-owned (embed it); fields are read-only for callers. */
struct floe_proc {
	uv_loop_t *loop;
	pid_t pid; /* floe-init, as seen from floed's PID namespace */
	int pidfd;
	int netns_fd; /* the replica's network namespace (O_RDONLY of /proc/PID/ns/net) */
	int exited;   /* set before exit_cb runs */
	int exit_status;
	uint64_t stdio_ino; /* inode of the engine's stdout/stderr pipe (CRIU's inherit-fd key) */
	void *data;         /* for the caller */
	/* private */
	uv_poll_t pidfd_poll;
	uv_pipe_t log_pipe;
	int log_fd;
	int log_r; /* pipe read end until the loop watches it */
	char *log_path;
	uint64_t log_bytes;
	uint64_t log_max_bytes;
	int pending_closes;
	floe_proc_exit_cb exit_cb;
	floe_proc_close_cb close_cb;
	struct floe_list taps; /* struct floe_proc_tap, while watching */
	bool watching;         /* the log pipe is read; taps may attach */
};

/**
 * A reader of a replica's log output as floed captures it (log follow).
 * Caller memory: set on_data, on_end and data, then floe_proc_tap_add.
 * on_data gets each chunk of output (and floed's note lines) as it is
 * appended to the log file, the file being written after the call.
 * on_end runs once the output has ended for good (the process exited and
 * the pipe is drained and closed), from the loop's close phase, never from
 * inside another floe_proc call; the tap is detached by then and the
 * callback may free it.
 */
struct floe_proc_tap {
	void (*on_data)(struct floe_proc_tap *t, const char *data, size_t len);
	void (*on_end)(struct floe_proc_tap *t);
	void *data; /* for the caller */
	/* private */
	struct floe_list link;
	struct floe_proc *proc; /* NULL when detached */
};

/**
 * Start a replica. On success returns 0; exit_cb will run exactly once, on
 * the loop, after the process tree is gone. On failure returns a negative
 * errno with err set, and nothing is left running.
 */
int floe_proc_spawn(uv_loop_t *loop, struct floe_proc *p, const struct floe_proc_spec *spec,
		    floe_proc_exit_cb exit_cb, floe_error *err);

/*
 * A replica restored from a snapshot (by CRIU, on a worker thread) instead of
 * spawned, in three steps:
 *   floe_proc_prepare (loop): log file and pipe; *stdio_w is the pipe's write
 *       end for CRIU to hand the restored engine as its stdout/stderr;
 *   the restore itself (thread pool), then close *stdio_w;
 *   floe_proc_attach (loop) with the restored tree's root, a child of floed;
 *       from then on it is like a spawned replica (exit_cb, signal, close).
 *   Or floe_proc_abandon when the restore failed.
 */
int floe_proc_prepare(uv_loop_t *loop, struct floe_proc *p, const char *log_path,
		      uint64_t log_max_bytes, floe_proc_exit_cb exit_cb, int *stdio_w,
		      floe_error *err);
/** On failure the process is killed and reaped, and p released. */
int floe_proc_attach(struct floe_proc *p, pid_t pid, floe_error *err);
void floe_proc_abandon(struct floe_proc *p);

/**
 * Attach t to p's output. Returns 0, or -ESRCH when p's output cannot be
 * followed (no process watched yet, as during a CRIU restore, or its
 * output already ended): then read the file only.
 */
int floe_proc_tap_add(struct floe_proc *p, struct floe_proc_tap *t);

/** Detach t (a no-op when it is not attached, e.g. after on_end). */
void floe_proc_tap_remove(struct floe_proc_tap *t);

/**
 * Where the output goes now: the log file's path (owned by p, valid until
 * the next rotation or close; NULL when there is none) and its size, which
 * is the offset the next output is written at. With floe_proc_tap_add on
 * the same loop turn, the file up to *offset plus the taps' chunks are the
 * whole output, nothing missing or twice.
 */
const char *floe_proc_log_file(const struct floe_proc *p, uint64_t *offset);

/** Append a line of floed's own to the replica's log (where it came from). */
void floe_proc_log_note(struct floe_proc *p, const char *line);

/** Send sig to the engine (floe-init forwards it; SIGKILL kills the whole namespace).
 *  Returns 0 or -errno (-ESRCH once exited). */
int floe_proc_signal(struct floe_proc *p, int sig);

/** Release handles and fds. Call after exit_cb (or from it). close_cb runs when done;
 *  only then may the memory holding p be freed. Whatever the replica wrote before it
 *  died is in the log file by then. Called before exit_cb (misuse: send SIGKILL and
 *  wait for exit_cb instead), it SIGKILLs the replica and reaps it synchronously,
 *  blocking the loop until the namespace is gone; exit_cb then never runs. */
void floe_proc_close(struct floe_proc *p, floe_proc_close_cb close_cb);

/**
 * A new network namespace with loopback up, made on the calling thread
 * (which returns to its own namespace). Returns an O_RDONLY fd of it or
 * -errno. Any thread may call it: setns is per thread.
 */
int floe_netns_new(void);

/**
 * Create a socket inside the network namespace netns_fd (setns on this thread
 * and back). Returns the fd (non-blocking, close-on-exec) or -errno.
 */
int floe_netns_socket(int netns_fd, int domain, int type);

#endif
