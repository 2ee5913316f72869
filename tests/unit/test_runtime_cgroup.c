/*
 * Per-replica cgroups: real cgroupfs, real processes. Needs root.
 *
 * Every test runs once on the cgroup v1 freezer and once on cgroup v2
 * (floe__cgroup_force_version); a version this host does not mount is
 * skipped with a message. Each test process keeps its cgroups under its own
 * parent ("floe-test-PID") so that it never touches a floed's, and fini
 * thaws, kills and reaps every process it forked (by PID) and removes what
 * it created, also when an assertion failed half-way.
 *
 * The processes: a child that forks a grandchild (directly, or from a second
 * thread); each increments its own counter in shared memory every
 * millisecond, so "frozen" is checked by what a user would see: the counters
 * stop, and move again after a thaw.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "error.h"

#define FREEZE_TIMEOUT_MS 10000

struct shared {
	volatile unsigned long count[2]; /* [0] child, [1] grandchild */
};

static struct shared *shm;
static pid_t child = -1, grandchild = -1;
static struct floe_cgroup *cg;
static int cg_version;
static char parent_dir[PATH_MAX];
static char extra_dir[PATH_MAX]; /* a cgroup the test made or left behind itself */

static void setup(void)
{
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(shm != MAP_FAILED);
	/* Orphaned grandchildren come back to this process, so it can reap them by PID. */
	cr_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
}

static void write_state(const char *dir, const char *value)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", dir,
		 cg_version == 1 ? "freezer.state" : "cgroup.freeze");
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(value, f);
		fclose(f);
	}
}

/* PIDs listed in the children file of every thread of pid. */
static int children_of(pid_t pid, pid_t *out, int max)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s/children", dir, de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		int p;
		while (n < max && fscanf(f, "%d", &p) == 1)
			out[n++] = p;
		fclose(f);
	}
	closedir(d);
	return n;
}

static void teardown(void)
{
	/* Frozen v1 tasks ignore SIGKILL: thaw before killing. */
	if (cg)
		floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, NULL);
	if (extra_dir[0])
		write_state(extra_dir, cg_version == 1 ? "THAWED" : "0");
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (grandchild > 0) {
		kill(grandchild, SIGKILL);
		waitpid(grandchild, NULL, 0);
	}
	child = grandchild = -1;
	/* Orphans of the forking test came back here (subreaper): kill and reap each by PID. */
	pid_t orphans[256];
	for (int round = 0; round < 50; round++) {
		int n = children_of(getpid(), orphans, 256);
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			kill(orphans[i], SIGKILL);
			waitpid(orphans[i], NULL, 0);
		}
	}
	if (cg)
		floe_cgroup_destroy(cg);
	cg = NULL;
	if (extra_dir[0])
		rmdir(extra_dir);
	if (parent_dir[0]) {
		char leftover[PATH_MAX + 16];
		snprintf(leftover, sizeof(leftover), "%s/leftover", parent_dir);
		rmdir(leftover);
		rmdir(parent_dir);
	}
	munmap(shm, sizeof(*shm));
}

TestSuite(cgroup_v1, .init = setup, .fini = teardown);
TestSuite(cgroup_v2, .init = setup, .fini = teardown);
TestSuite(cgroup, .init = setup, .fini = teardown);

/* Use only this cgroup version and this process's own parent; skip if the host lacks it. */
static void use(int version)
{
	cg_version = version;
	floe__cgroup_force_version(version);
	char name[64];
	snprintf(name, sizeof(name), "floe-test-%d", (int)getpid());
	cr_assert_eq(floe_cgroup_set_parent(name), 0);
	char desc[1024];
	int r = floe_cgroup_probe(desc, sizeof(desc));
	if (r == -ENOENT)
		cr_skip_test("cgroup v%d cannot freeze here: %s", version, desc);
	cr_assert_eq(r, 0, "probe: %s", desc);
	const char *under = strstr(desc, "replicas under ");
	cr_assert(under != NULL, "%s", desc);
	snprintf(parent_dir, sizeof(parent_dir), "%s", under + strlen("replicas under "));
}

static void make_cgroup(const char *name)
{
	floe_error err = { 0 };
	int r = floe_cgroup_create(name, &cg, &err);
	cr_assert_eq(r, 0, "create %s: %s", name, err.msg);
	cr_assert(cg != NULL);
}

static void count_forever(volatile unsigned long *counter)
{
	for (;;) {
		(*counter)++;
		usleep(1000);
	}
}

static void *thread_forks_grandchild(void *arg)
{
	int wfd = *(int *)arg;
	pid_t g = fork();
	if (g == 0) {
		/* Tied to this thread: it never ends while the child lives. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		count_forever(&shm->count[1]);
	}
	if (write(wfd, &g, sizeof(g)) != sizeof(g))
		_exit(3);
	for (;;)
		pause();
	return NULL;
}

/*
 * Fork the child, which forks the grandchild (from a second thread when
 * via_thread) and reports its PID through a pipe; wait until both count.
 */
static void spawn_family(bool via_thread)
{
	memset((void *)shm, 0, sizeof(*shm));
	int fds[2];
	cr_assert(pipe(fds) == 0);
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[0]);
		if (via_thread) {
			pthread_t t;
			if (pthread_create(&t, NULL, thread_forks_grandchild, &fds[1]) != 0)
				_exit(2);
		} else {
			pid_t g = fork();
			if (g == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				count_forever(&shm->count[1]);
			}
			if (write(fds[1], &g, sizeof(g)) != sizeof(g))
				_exit(3);
		}
		count_forever(&shm->count[0]);
	}
	close(fds[1]);
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	cr_assert(poll(&pfd, 1, 10000) == 1, "the child did not report its grandchild");
	pid_t g = -1;
	cr_assert(read(fds[0], &g, sizeof(g)) == sizeof(g));
	close(fds[0]);
	cr_assert(g > 0, "the child could not fork");
	grandchild = g;
	for (int i = 0; i < 10000 && (shm->count[0] == 0 || shm->count[1] == 0); i++)
		usleep(1000);
	cr_assert(shm->count[0] > 0 && shm->count[1] > 0, "child and grandchild never ran");
}

/* Both counters move within a generous bound (not a timing assertion: it only bounds a hang). */
static bool both_counting(void)
{
	unsigned long c0 = shm->count[0], c1 = shm->count[1];
	for (int i = 0; i < 5000; i++) {
		if (shm->count[0] != c0 && shm->count[1] != c1)
			return true;
		usleep(1000);
	}
	return false;
}

/* Neither counter moves across 50 ms. */
static bool both_still(void)
{
	unsigned long c0 = shm->count[0], c1 = shm->count[1];
	usleep(50 * 1000);
	return shm->count[0] == c0 && shm->count[1] == c1;
}

static bool in_procs(const char *dir, pid_t pid)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	int p;
	bool found = false;
	while (fscanf(f, "%d", &p) == 1)
		found |= p == pid;
	fclose(f);
	return found;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- probe ---- */

Test(cgroup, probe_finds_a_freezer_and_v1_wins)
{
	char desc[1024];
	cr_assert_eq(floe_cgroup_set_parent("floe-test-probe"), 0);
	int r = floe_cgroup_probe(desc, sizeof(desc));
	cr_assert_eq(r, 0, "no usable freezer on this machine: %s", desc);
	cr_assert(strncmp(desc, "cgroup v1 freezer at /", 22) == 0 ||
			  strncmp(desc, "cgroup v2 at /", 14) == 0,
		  "%s", desc);
	cr_assert(strstr(desc, "/floe-test-probe") != NULL, "%s", desc);
	snprintf(parent_dir, sizeof(parent_dir), "%s", strstr(desc, "replicas under ") + 15);
	cr_assert(exists(parent_dir), "probe did not create %s", parent_dir);

	/* Where both exist (floe's CI machines), the v1 freezer is the one used. */
	char d1[1024], d2[1024];
	floe__cgroup_force_version(1);
	int r1 = floe_cgroup_probe(d1, sizeof(d1));
	floe__cgroup_force_version(2);
	int r2 = floe_cgroup_probe(d2, sizeof(d2));
	floe__cgroup_force_version(0);
	if (r1 == 0 && r2 == 0) {
		cr_assert(strncmp(desc, "cgroup v1 freezer", 17) == 0, "%s", desc);
		cr_assert_str_eq(desc, d1);
		/* Created by the v2 probe: remove it here, fini knows only one parent. */
		rmdir(strstr(d2, "replicas under ") + 15);
	} else {
		cr_assert(r1 == 0 || r2 == 0, "%s / %s", d1, d2);
	}
}

Test(cgroup, default_parent_is_floe)
{
	char desc[1024];
	int r = floe_cgroup_probe(desc, sizeof(desc));
	cr_assert_eq(r, 0, "%s", desc);
	char name[64];
	snprintf(name, sizeof(name), "unit-%d", (int)getpid());
	make_cgroup(name);
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "/floe/%s", name);
	const char *path = floe_cgroup_path(cg);
	cr_assert(strlen(path) > strlen(want) &&
			  strcmp(path + strlen(path) - strlen(want), want) == 0,
		  "%s", path);
	cr_assert(exists(path));
	cr_assert_eq(floe_cgroup_destroy(cg), 0);
	cg = NULL;
	cr_assert(!exists(path));
}

static void probe_names_version(int version)
{
	use(version);
	char desc[1024];
	cr_assert_eq(floe_cgroup_probe(desc, sizeof(desc)), 0);
	cr_assert(strncmp(desc, version == 1 ? "cgroup v1 freezer at /" : "cgroup v2 at /",
			  version == 1 ? 22 : 14) == 0,
		  "%s", desc);
	cr_assert(exists(parent_dir));
}

Test(cgroup_v1, probe_names_version)
{
	probe_names_version(1);
}

Test(cgroup_v2, probe_names_version)
{
	probe_names_version(2);
}

/* ---- names ---- */

Test(cgroup, bad_names_are_rejected)
{
	cr_assert_eq(floe_cgroup_set_parent("floe-test-names"), 0);
	const char *bad[] = { "../x", "", ".", "..", "a/b", "a b", "x\n", "/abs" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		floe_error err = { 0 };
		struct floe_cgroup *c = (struct floe_cgroup *)1;
		cr_assert_eq(floe_cgroup_create(bad[i], &c, &err), -EINVAL, "'%s'", bad[i]);
		cr_assert_eq(err.code, -EINVAL);
		cr_assert(strstr(err.msg, "bad cgroup name") != NULL, "%s", err.msg);
		cr_assert_null(c);
	}
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	struct floe_cgroup *c = NULL;
	cr_assert_eq(floe_cgroup_create(long_name, &c, NULL), -EINVAL);
	cr_assert_eq(floe_cgroup_set_parent("../x"), -EINVAL);
	cr_assert_eq(floe_cgroup_set_parent(""), -EINVAL);
	cr_assert_eq(floe_cgroup_set_parent(".."), -EINVAL);
}

static void create_twice(int version)
{
	use(version);
	make_cgroup("twice");
	struct floe_cgroup *again = NULL;
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_create("twice", &again, &err), -EEXIST);
	cr_assert_null(again);
	cr_assert(strstr(err.msg, floe_cgroup_path(cg)) != NULL, "%s", err.msg);
}

Test(cgroup_v1, create_existing_fails)
{
	create_twice(1);
}

Test(cgroup_v2, create_existing_fails)
{
	create_twice(2);
}

/* ---- add_tree ---- */

static void add_tree_moves_family(int version, bool via_thread)
{
	use(version);
	make_cgroup("family");
	spawn_family(via_thread);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	cr_assert(in_procs(floe_cgroup_path(cg), child), "child %d not moved", (int)child);
	cr_assert(in_procs(floe_cgroup_path(cg), grandchild), "grandchild %d not moved",
		  (int)grandchild);
	cr_assert(!in_procs(floe_cgroup_path(cg), getpid()), "the caller was moved too");
}

Test(cgroup_v1, add_tree_moves_child_and_grandchild)
{
	add_tree_moves_family(1, false);
}

Test(cgroup_v2, add_tree_moves_child_and_grandchild)
{
	add_tree_moves_family(2, false);
}

/* The grandchild is listed under the forking thread's children file only. */
Test(cgroup_v1, add_tree_follows_children_of_threads)
{
	add_tree_moves_family(1, true);
}

Test(cgroup_v2, add_tree_follows_children_of_threads)
{
	add_tree_moves_family(2, true);
}

/*
 * A tree that forks all the time (a new short-lived grandchild every 0.5 ms):
 * once add_tree returns and the cgroup is frozen, every live process of the
 * tree is inside, whatever forked while the tree was walked.
 */
static void fork_storm(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		shm->count[0]++;
		pid_t g = fork();
		if (g == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			shm->count[1]++;
			usleep(3000);
			_exit(0);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		usleep(500);
	}
}

/*
 * pid's cgroup in the hierarchy under test, from /proc/PID/cgroup (NULL when
 * pid is gone). Not cgroup.procs: that one leaves out a process that has
 * begun to exit, which still shows up in its parent's children file.
 */
static char *cgroup_of(pid_t pid, char *buf, size_t n)
{
	char path[64], line[1024];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *found = NULL;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *first = strchr(line, ':');
		char *second = first ? strchr(first + 1, ':') : NULL;
		if (!second)
			continue;
		*second = '\0';
		bool match = cg_version == 1 ?
				     strcmp(first + 1, "freezer") == 0 :
				     first == line + 1 && line[0] == '0' && second == first + 1;
		if (match) {
			snprintf(buf, n, "%s", second + 1);
			found = buf;
		}
	}
	fclose(f);
	return found;
}

/* Has pid begun to exit (PF_EXITING in /proc/PID/stat's flags, or gone)? */
static bool exiting(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "(comm)": state ppid pgrp session tty_nr tpgid flags */
	char *p = strrchr(buf, ')');
	unsigned flags = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %u", &flags) != 1)
		return true;
	return (flags & 0x4) != 0; /* PF_EXITING */
}

static void add_tree_forking(int version)
{
	use(version);
	make_cgroup("storm");
	memset((void *)shm, 0, sizeof(*shm));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0)
		fork_storm();
	for (int i = 0; i < 10000 && shm->count[1] < 20; i++)
		usleep(1000);
	cr_assert(shm->count[1] >= 20, "the child does not fork");

	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "/%s/storm", strrchr(parent_dir, '/') + 1);
	int checked = 0;
	for (int round = 0; round < 5; round++) {
		cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
		cr_assert(in_procs(floe_cgroup_path(cg), child));
		pid_t kids[256];
		int n = children_of(child, kids, 256);
		for (int i = 0; i < n; i++) {
			char buf[1024];
			const char *in = cgroup_of(kids[i], buf, sizeof(buf));
			if (!in)
				continue; /* reaped meanwhile */
			bool inside = strlen(in) >= strlen(want) &&
				      strcmp(in + strlen(in) - strlen(want), want) == 0;
			/* v1 shows an exiting task in the root cgroup (proc_cgroup_show). */
			if (!inside && exiting(kids[i]))
				continue;
			cr_assert(inside,
				  "grandchild %d forked during the walk is in %s, not in ...%s",
				  (int)kids[i], in, want);
			checked++;
		}
		cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
		usleep(2000);
	}
	cr_assert(checked > 0, "no live grandchild was ever seen: the test proved nothing");
}

Test(cgroup_v1, add_tree_catches_a_forking_tree)
{
	add_tree_forking(1);
}

Test(cgroup_v2, add_tree_catches_a_forking_tree)
{
	add_tree_forking(2);
}

static void add_tree_missing_pid(int version)
{
	use(version);
	make_cgroup("missing");
	pid_t p = fork();
	cr_assert(p >= 0);
	if (p == 0)
		_exit(0);
	cr_assert_eq(waitpid(p, NULL, 0), p);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, p, &err), -ESRCH);
	cr_assert(strstr(err.msg, "no such process") != NULL, "%s", err.msg);
}

Test(cgroup_v1, add_tree_of_missing_pid_fails)
{
	add_tree_missing_pid(1);
}

Test(cgroup_v2, add_tree_of_missing_pid_fails)
{
	add_tree_missing_pid(2);
}

/* ---- freeze / thaw ---- */

static void freeze_and_thaw(int version)
{
	use(version);
	make_cgroup("freeze");
	spawn_family(false);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	cr_assert(!floe_cgroup_frozen(cg));

	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(floe_cgroup_frozen(cg));
	cr_assert(both_still(), "counters moved while frozen: %lu %lu", shm->count[0],
		  shm->count[1]);
	cr_assert(floe_cgroup_frozen(cg));

	cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(!floe_cgroup_frozen(cg));
	cr_assert(both_counting(), "counters did not move after thaw");

	/* And once more: a warm-pool replica is frozen and thawed many times. */
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(both_still());
	cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(both_counting());
}

/* v1: freezing leaves the shared pin cgroup frozen, so that a thaw never pays the static key flip. */
Test(cgroup_v1, freeze_pins_the_freezer)
{
	use(1);
	make_cgroup("pin");
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	char mount[PATH_MAX], path[PATH_MAX + 64], state[32] = "";
	snprintf(mount, sizeof(mount), "%s", parent_dir);
	*strrchr(mount, '/') = '\0';
	snprintf(path, sizeof(path), "%s/floe-freezer-pin/freezer.state", mount);
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	cr_assert(fgets(state, sizeof(state), f) != NULL);
	fclose(f);
	cr_assert_str_eq(state, "FROZEN\n");
}

Test(cgroup_v1, freeze_stops_and_thaw_resumes)
{
	freeze_and_thaw(1);
}

Test(cgroup_v2, freeze_stops_and_thaw_resumes)
{
	freeze_and_thaw(2);
}

/* A warm-pool slot may be frozen before its replica arrives. */
static void empty_cgroup_freezes(int version)
{
	use(version);
	make_cgroup("empty");
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(floe_cgroup_frozen(cg));
	cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(!floe_cgroup_frozen(cg));
}

Test(cgroup_v1, empty_cgroup_freezes_and_thaws)
{
	empty_cgroup_freezes(1);
}

Test(cgroup_v2, empty_cgroup_freezes_and_thaws)
{
	empty_cgroup_freezes(2);
}

/* ---- destroy ---- */

static void kill_after_thaw_then_destroy(int version)
{
	use(version);
	make_cgroup("destroy");
	spawn_family(false);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_cgroup_thaw(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);

	cr_assert_eq(kill(child, SIGKILL), 0);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	child = -1;
	cr_assert_eq(kill(grandchild, SIGKILL), 0);
	cr_assert_eq(waitpid(grandchild, NULL, 0), grandchild);
	grandchild = -1;

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", floe_cgroup_path(cg));
	int r = floe_cgroup_destroy(cg);
	cg = NULL;
	cr_assert_eq(r, 0);
	cr_assert(!exists(path), "%s still exists", path);
}

Test(cgroup_v1, killed_after_thaw_then_destroyed)
{
	kill_after_thaw_then_destroy(1);
}

Test(cgroup_v2, killed_after_thaw_then_destroyed)
{
	kill_after_thaw_then_destroy(2);
}

static void destroy_busy(int version)
{
	use(version);
	make_cgroup("busy");
	spawn_family(false);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(both_still());

	snprintf(extra_dir, sizeof(extra_dir), "%s", floe_cgroup_path(cg));
	int r = floe_cgroup_destroy(cg); /* frees cg either way */
	cg = NULL;
	cr_assert_eq(r, -EBUSY);
	cr_assert(exists(extra_dir));
	cr_assert(in_procs(extra_dir, child));
	cr_assert(both_counting(), "destroy left the tasks frozen");
}

Test(cgroup_v1, destroy_with_live_tasks_is_busy_and_thaws)
{
	destroy_busy(1);
}

Test(cgroup_v2, destroy_with_live_tasks_is_busy_and_thaws)
{
	destroy_busy(2);
}

/* ---- cleanup_stale ---- */

static void cleanup_stale(int version)
{
	use(version);
	char leftover[PATH_MAX + 16];
	snprintf(leftover, sizeof(leftover), "%s/leftover", parent_dir);
	cr_assert_eq(mkdir(leftover, 0755), 0, "%s: %s", leftover, strerror(errno));

	/* A crashed floed's frozen replica: cannot go, must be thawed. */
	make_cgroup("frozen-replica");
	spawn_family(false);
	floe_error err = { 0 };
	cr_assert_eq(floe_cgroup_add_tree(cg, child, &err), 0, "%s", err.msg);
	cr_assert_eq(floe_cgroup_freeze(cg, FREEZE_TIMEOUT_MS, &err), 0, "%s", err.msg);
	cr_assert(both_still());

	floe_cgroup_cleanup_stale();

	cr_assert(!exists(leftover), "%s was not removed", leftover);
	cr_assert(exists(floe_cgroup_path(cg)), "a cgroup with tasks cannot have gone");
	cr_assert(!floe_cgroup_frozen(cg));
	cr_assert(both_counting(), "the leftover replica was not thawed");
}

Test(cgroup_v1, cleanup_stale_removes_empty_and_thaws_busy)
{
	cleanup_stale(1);
}

Test(cgroup_v2, cleanup_stale_removes_empty_and_thaws_busy)
{
	cleanup_stale(2);
}
