/*
 * floe-cuda-checkpoint: the command-line interface of NVIDIA's
 * cuda-checkpoint utility, on the CUDA driver's checkpoint API
 * (cuCheckpointProcess*, driver r555+), for hosts that have the driver but
 * not the utility.
 *
 * CRIU's CUDA plugin runs `cuda-checkpoint` from PATH to take a process's
 * GPU state into host memory before a dump and to put it back after a
 * restore; floed puts this program there under that name when the real one
 * is missing. Only what the plugin uses is implemented:
 *
 *   floe-cuda-checkpoint -h
 *   floe-cuda-checkpoint --get-state --pid PID        running|locked|checkpointed|failed
 *   floe-cuda-checkpoint --get-restore-tid --pid PID  the TID the driver restores through
 *   floe-cuda-checkpoint --action lock|checkpoint|restore|unlock --pid PID [--timeout MS]
 *
 * libcuda is opened at run time (dlopen), so building it needs no CUDA
 * toolkit and a machine without a GPU driver gets a clear error.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From cuda.h (CUDA 12.8+ / 13.0), declared here to need no toolkit. */
typedef int CUresult;
enum {
	CUDA_SUCCESS = 0
};
typedef enum {
	CU_PROCESS_STATE_RUNNING = 0,
	CU_PROCESS_STATE_LOCKED,
	CU_PROCESS_STATE_CHECKPOINTED,
	CU_PROCESS_STATE_FAILED,
} CUprocessState;
typedef struct {
	unsigned int timeoutMs;
	unsigned int reserved0;
	uint64_t reserved1[7];
} CUcheckpointLockArgs;

struct driver {
	CUresult (*init)(unsigned int flags);
	CUresult (*get_error_string)(CUresult r, const char **s);
	CUresult (*get_state)(int pid, CUprocessState *state);
	CUresult (*get_restore_tid)(int pid, int *tid);
	CUresult (*lock)(int pid, CUcheckpointLockArgs *args);
	CUresult (*checkpoint)(int pid, void *args);
	CUresult (*restore)(int pid, void *args);
	CUresult (*unlock)(int pid, void *args);
};

static const char usage[] =
	"usage: floe-cuda-checkpoint --get-state --pid PID\n"
	"       floe-cuda-checkpoint --get-restore-tid --pid PID\n"
	"       floe-cuda-checkpoint --action lock|checkpoint|restore|unlock --pid PID "
	"[--timeout MS]\n"
	"NVIDIA cuda-checkpoint's interface on the CUDA driver API (cuCheckpointProcess*).\n";

static int load(struct driver *d)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "floe-cuda-checkpoint: %s\n", dlerror());
		return -1;
	}
#define SYM(field, name)                                                                      \
	do {                                                                                  \
		*(void **)&d->field = dlsym(h, name);                                         \
		if (!d->field) {                                                              \
			fprintf(stderr,                                                       \
				"floe-cuda-checkpoint: %s missing: the driver is older than " \
				"r555\n",                                                     \
				name);                                                        \
			return -1;                                                            \
		}                                                                             \
	} while (0)
	SYM(init, "cuInit");
	SYM(get_error_string, "cuGetErrorString");
	SYM(get_state, "cuCheckpointProcessGetState");
	SYM(get_restore_tid, "cuCheckpointProcessGetRestoreThreadId");
	SYM(lock, "cuCheckpointProcessLock");
	SYM(checkpoint, "cuCheckpointProcessCheckpoint");
	SYM(restore, "cuCheckpointProcessRestore");
	SYM(unlock, "cuCheckpointProcessUnlock");
#undef SYM
	return 0;
}

static int check(const struct driver *d, CUresult r, const char *what, int pid)
{
	if (r == CUDA_SUCCESS)
		return 0;
	const char *s = NULL;
	d->get_error_string(r, &s);
	/* The plugin reads our stdout for its messages. */
	printf("%s of pid %d failed: %s (%d)\n", what, pid, s ? s : "unknown error", r);
	return 1;
}

int main(int argc, char **argv)
{
	const char *action = NULL;
	int pid = -1, get_state = 0, get_tid = 0;
	unsigned timeout = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 0;
		} else if (!strcmp(a, "--get-state")) {
			get_state = 1;
		} else if (!strcmp(a, "--get-restore-tid")) {
			get_tid = 1;
		} else if (!strcmp(a, "--action") && v) {
			action = argv[++i];
		} else if ((!strcmp(a, "--pid") || !strcmp(a, "-p")) && v) {
			pid = atoi(argv[++i]);
		} else if (!strcmp(a, "--timeout") && v) {
			timeout = (unsigned)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "floe-cuda-checkpoint: unknown argument '%s'\n%s", a,
				usage);
			return 2;
		}
	}
	if (pid <= 0 || get_state + get_tid + (action != NULL) != 1) {
		fputs(usage, stderr);
		return 2;
	}
	struct driver d;
	if (load(&d) < 0)
		return 1;
	if (check(&d, d.init(0), "cuInit", pid))
		return 1;
	if (get_state) {
		CUprocessState st;
		if (check(&d, d.get_state(pid, &st), "get state", pid))
			return 1;
		static const char *const names[] = { "running", "locked", "checkpointed",
						     "failed" };
		printf("%s\n", (unsigned)st < 4 ? names[st] : "unknown");
		return 0;
	}
	if (get_tid) {
		int tid = 0;
		if (check(&d, d.get_restore_tid(pid, &tid), "get restore tid", pid))
			return 1;
		printf("%d\n", tid);
		return 0;
	}
	if (!strcmp(action, "lock")) {
		CUcheckpointLockArgs args;
		memset(&args, 0, sizeof(args));
		args.timeoutMs = timeout;
		return check(&d, d.lock(pid, &args), "lock", pid);
	}
	if (!strcmp(action, "checkpoint"))
		return check(&d, d.checkpoint(pid, NULL), "checkpoint", pid);
	if (!strcmp(action, "restore"))
		return check(&d, d.restore(pid, NULL), "restore", pid);
	if (!strcmp(action, "unlock"))
		return check(&d, d.unlock(pid, NULL), "unlock", pid);
	fprintf(stderr, "floe-cuda-checkpoint: unknown action '%s'\n%s", action, usage);
	return 2;
}
