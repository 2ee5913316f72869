/*
 * Per-replica cgroups with a freezer: plain, blocking file I/O on cgroupfs.
 *
 * cgroup v1 freezer (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst):
 * write FROZEN or THAWED to freezer.state; reading it says THAWED, FREEZING
 * or FROZEN, and the read itself is what moves FREEZING to FROZEN once every
 * task is in the refrigerator (update_if_frozen), so polling by reading is
 * the documented way to wait. Frozen v1 tasks do not even act on SIGKILL.
 *
 * cgroup v2 (Documentation/admin-guide/cgroup-v2.rst, "Core Interface
 * Files"): write 1 or 0 to cgroup.freeze; cgroup.events says "frozen 1" once
 * every task is frozen. Frozen v2 tasks can still be killed.
 */
#define LOG_TAG "cgroup"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "error.h"
#include "fsutil.h"
#include "log.h"
#include "xalloc.h"

#define ADD_TREE_MAX_PASSES 8
#define POLL_FIRST_US 100
#define POLL_MAX_US 5000
/* v1 only, directly under the freezer mount: shared by every floed on the host. */
#define PIN_NAME "floe-freezer-pin"

struct floe_cgroup {
	int version; /* 1: v1 freezer, 2: v2 core */
	char *path;  /* the cgroup's directory */
	char *pin;   /* v1: the pin cgroup (see ensure_pin), else NULL */
};

/* Where freezing happens on this host, as read from mountinfo. */
struct hier {
	int version;
	char *mount;  /* the hierarchy's mount point */
	char *parent; /* the floe parent cgroup's directory */
};

static char parent_name[NAME_MAX + 1] = "floe";
static int forced_version;

static void hier_free(struct hier *h)
{
	free(h->mount);
	free(h->parent);
	h->mount = h->parent = NULL;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const char *p = s; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	}
	return true;
}

int floe_cgroup_set_parent(const char *name)
{
	if (!name || !valid_name(name))
		return -EINVAL;
	snprintf(parent_name, sizeof(parent_name), "%s", name);
	return 0;
}

void floe__cgroup_force_version(int version)
{
	forced_version = version;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo (show_mountinfo). */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static bool has_option(const char *opts, const char *want)
{
	size_t n = strlen(want);
	for (const char *p = opts; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, want, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* floed's own v2 cgroup, from the "0::/path" line of /proc/self/cgroup. */
static char *own_v2_cgroup(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return NULL;
	char *line = NULL, *out = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strncmp(line, "0::/", 4) == 0) {
			out = xstrdup(line + 3);
			break;
		}
	}
	free(line);
	fclose(f);
	return out;
}

/*
 * The v2 directory of floed's own cgroup under a cgroup2 mount whose root is
 * mroot, or NULL when that mount does not show it (a bind mount of some other
 * subtree, or a cgroup namespace that hides it).
 */
static char *v2_dir_under(const char *mount, const char *mroot, const char *own)
{
	size_t rl = strlen(mroot);
	if (strcmp(mroot, "/") == 0)
		rl = 0;
	else if (strncmp(own, mroot, rl) != 0 || (own[rl] != '/' && own[rl] != '\0'))
		return NULL;
	const char *rel = own + rl;
	if (strcmp(rel, "/") == 0)
		rel = "";
	return xasprintf("%s%s", mount, rel);
}

/*
 * Find the freezing hierarchy: the first cgroup v1 mount with the freezer
 * controller, else the first cgroup2 mount that shows floed's own cgroup.
 * Paths are never guessed: a host may mount them anywhere. Returns 0 or
 * -ENOENT with why filled.
 */
static int find_hier(struct hier *h, char *why, size_t n)
{
	memset(h, 0, sizeof(*h));
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		int e = errno;
		snprintf(why, n, "open /proc/self/mountinfo: %s", strerror(e));
		return -e;
	}
	char *v1_mount = NULL, *v2_dir = NULL, *v2_mount = NULL;
	bool saw_v2 = false;
	char *own = NULL;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char *save = NULL, *field[6];
		int i;
		for (i = 0; i < 6; i++) {
			field[i] = strtok_r(i == 0 ? line : NULL, " \n", &save);
			if (!field[i])
				break;
		}
		if (i < 6)
			continue;
		char *tok;
		while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
			;
		char *fstype = tok ? strtok_r(NULL, " \n", &save) : NULL;
		char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
		if (!super)
			continue;
		unescape_octal(field[3]);
		unescape_octal(field[4]);
		if (!v1_mount && strcmp(fstype, "cgroup") == 0 && has_option(super, "freezer")) {
			v1_mount = xstrdup(field[4]);
		} else if (!v2_dir && strcmp(fstype, "cgroup2") == 0) {
			saw_v2 = true;
			if (!own)
				own = own_v2_cgroup();
			if (own && (v2_dir = v2_dir_under(field[4], field[3], own)))
				v2_mount = xstrdup(field[4]);
		}
	}
	free(line);
	fclose(f);

	int ret = 0;
	if (v1_mount && forced_version != 2) {
		h->version = 1;
		h->mount = v1_mount;
		h->parent = xasprintf("%s/%s", v1_mount, parent_name);
		v1_mount = NULL;
	} else if (v2_dir && forced_version != 1) {
		h->version = 2;
		h->mount = v2_mount;
		h->parent = xasprintf("%s/%s", v2_dir, parent_name);
		v2_mount = NULL;
	} else {
		ret = -ENOENT;
		if (saw_v2 && forced_version != 1)
			snprintf(
				why, n,
				"no cgroup freezer: the cgroup2 mount does not show floed's own cgroup %s",
				own ? own : "(none in /proc/self/cgroup)");
		else
			snprintf(why, n, "no cgroup freezer: /proc/self/mountinfo has no %s mount",
				 forced_version == 1 ? "cgroup v1 freezer" :
				 forced_version == 2 ? "cgroup2" :
						       "cgroup v1 freezer or cgroup2");
	}
	free(v1_mount);
	free(v2_mount);
	free(v2_dir);
	free(own);
	return ret;
}

static const char *state_file(int version)
{
	return version == 1 ? "freezer.state" : "cgroup.freeze";
}

int floe_cgroup_probe(char *desc, size_t n)
{
	char dummy[1];
	if (!desc || n == 0) {
		desc = dummy;
		n = sizeof(dummy);
	}
	struct hier h;
	cleanup_free char *sf = NULL;
	int r = find_hier(&h, desc, n);
	if (r < 0)
		return r;
	r = floe_mkdir_p(h.parent, 0755);
	if (r < 0) {
		snprintf(desc, n, "cannot create parent cgroup %s: %s", h.parent, strerror(-r));
		goto out;
	}
	sf = xasprintf("%s/%s", h.parent, state_file(h.version));
	if (access(sf, W_OK) != 0) {
		r = errno == ENOENT ? -ENOTSUP : -errno;
		snprintf(desc, n, "cannot freeze: %s: %s", sf, strerror(errno));
		goto out;
	}
	/* floe_cgroup_add_tree finds descendants there (CONFIG_PROC_CHILDREN). */
	char children[64];
	snprintf(children, sizeof(children), "/proc/self/task/%d/children", (int)gettid());
	if (access(children, R_OK) != 0) {
		r = errno == ENOENT ? -ENOTSUP : -errno;
		snprintf(desc, n, "cannot find a replica's processes: %s: %s", children,
			 strerror(errno));
		goto out;
	}
	snprintf(desc, n, "cgroup %s at %s, replicas under %s",
		 h.version == 1 ? "v1 freezer" : "v2", h.mount, h.parent);
out:
	hier_free(&h);
	return r;
}

int floe_cgroup_create(const char *name, struct floe_cgroup **out, floe_error *err)
{
	*out = NULL;
	if (!name || !valid_name(name))
		return floe_error_set(err, -EINVAL,
				      "bad cgroup name '%s': want [A-Za-z0-9_.-]+, not . or ..",
				      name ? name : "(null)");
	char why[512];
	struct hier h;
	int r = find_hier(&h, why, sizeof(why));
	if (r < 0)
		return floe_error_set(err, r, "%s", why);
	r = floe_mkdir_p(h.parent, 0755);
	if (r < 0) {
		floe_error_set(err, r, "mkdir %s: %s", h.parent, strerror(-r));
		hier_free(&h);
		return r;
	}
	char *path = xasprintf("%s/%s", h.parent, name);
	int version = h.version;
	if (mkdir(path, 0755) != 0) {
		r = floe_error_set(err, -errno, "mkdir %s: %s", path, strerror(errno));
		free(path);
		hier_free(&h);
		return r;
	}
	struct floe_cgroup *cg = xcalloc(1, sizeof(*cg));
	cg->version = version;
	cg->path = path;
	if (version == 1)
		cg->pin = xasprintf("%s/%s", h.mount, PIN_NAME);
	hier_free(&h);
	*out = cg;
	log_debug("created %s", path);
	return 0;
}

const char *floe_cgroup_path(const struct floe_cgroup *cg)
{
	return cg->path;
}

/* One write() per value: cgroupfs acts on each write call on its own. */
static int write_value(int fd, const char *path, const char *value, floe_error *err)
{
	size_t len = strlen(value);
	ssize_t w = write(fd, value, len);
	if (w < 0)
		return floe_error_set(err, -errno, "write %s to %s: %s", value, path,
				      strerror(errno));
	if ((size_t)w != len)
		return floe_error_set(err, -EIO, "write %s to %s: short write", value, path);
	return 0;
}

static int write_file(const char *path, const char *value, floe_error *err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "open %s: %s", path, strerror(errno));
	int r = write_value(fd, path, value, err);
	close(fd);
	return r;
}

/* Small file into buf (NUL-terminated). Returns the length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t n, floe_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "open %s: %s", path, strerror(errno));
	size_t len = 0;
	while (len + 1 < n) {
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return floe_error_set(err, -e, "read %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/*
 * Is cg in the wanted state? 1 yes, 0 not yet, or -errno. last receives what
 * the kernel said, for the timeout message. v1 has a third state, FREEZING,
 * that is neither; v2 only says frozen 0 or 1.
 */
static int state_reached(struct floe_cgroup *cg, bool want_frozen, char *last, size_t n,
			 floe_error *err)
{
	char buf[256];
	cleanup_free char *path =
		xasprintf("%s/%s", cg->path, cg->version == 1 ? "freezer.state" : "cgroup.events");
	ssize_t r = read_file(path, buf, sizeof(buf), err);
	if (r < 0)
		return (int)r;
	if (cg->version == 1) {
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(last, n, "freezer.state %s", buf);
		return strcmp(buf, want_frozen ? "FROZEN" : "THAWED") == 0;
	}
	const char *p = strstr(buf, "frozen ");
	if (!p || (p != buf && p[-1] != '\n'))
		return floe_error_set(err, -EIO, "%s: no 'frozen' line", path);
	int frozen = p[7] == '1';
	snprintf(last, n, "cgroup.events frozen %d", frozen);
	return frozen == want_frozen;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Poll until the state is reached: no notification exists for v1, and for
 * the warm pool a thaw is usually reported at the first read, so short
 * sleeps (100 us, doubling to 5 ms) cost less than setting up inotify.
 */
static int set_state(struct floe_cgroup *cg, bool frozen, unsigned timeout_ms, floe_error *err)
{
	cleanup_free char *path = xasprintf("%s/%s", cg->path, state_file(cg->version));
	const char *value =
		cg->version == 1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0");
	int r = write_file(path, value, err);
	if (r < 0)
		return r;
	long long deadline = now_us() + (long long)timeout_ms * 1000;
	long delay = POLL_FIRST_US;
	char last[64] = "";
	for (;;) {
		r = state_reached(cg, frozen, last, sizeof(last), err);
		if (r < 0)
			return r;
		if (r > 0)
			return 0;
		long long left = deadline - now_us();
		if (left <= 0)
			return floe_error_set(err, -ETIMEDOUT, "%s %s: still %s after %u ms",
					      frozen ? "freeze" : "thaw", cg->path, last,
					      timeout_ms);
		long sleep_us = delay < left ? delay : (long)left;
		struct timespec ts = { sleep_us / 1000000, (sleep_us % 1000000) * 1000 };
		nanosleep(&ts, NULL); /* EINTR: the deadline check copes */
		delay = delay * 2 > POLL_MAX_US ? POLL_MAX_US : delay * 2;
	}
}

/*
 * v1 only. The legacy freezer flips a static key (freezer_active) when the
 * first cgroup on the host freezes and when the last one thaws, and patching
 * kernel text takes about 2 ms (measured on kernel 6.18 in a 2-core VM): a
 * warm pool of one replica would pay it on every thaw, which is the whole
 * budget. An empty cgroup kept frozen holds the key on, so thaws cost tens of
 * microseconds. Empty, it holds no task and no memory; best effort.
 */
static void ensure_pin(const struct floe_cgroup *cg)
{
	char state[64];
	cleanup_free char *sf = xasprintf("%s/freezer.state", cg->pin);
	if (read_file(sf, state, sizeof(state), NULL) >= 0 && strncmp(state, "FROZEN", 6) == 0)
		return;
	floe_error err;
	if (mkdir(cg->pin, 0755) != 0 && errno != EEXIST)
		log_debug("no freezer pin: mkdir %s: %s", cg->pin, strerror(errno));
	else if (write_file(sf, "FROZEN", &err) < 0)
		log_debug("no freezer pin: %s", err.msg);
}

int floe_cgroup_freeze(struct floe_cgroup *cg, unsigned timeout_ms, floe_error *err)
{
	if (cg->pin)
		ensure_pin(cg);
	return set_state(cg, true, timeout_ms, err);
}

int floe_cgroup_thaw(struct floe_cgroup *cg, unsigned timeout_ms, floe_error *err)
{
	return set_state(cg, false, timeout_ms, err);
}

bool floe_cgroup_frozen(struct floe_cgroup *cg)
{
	char last[64];
	return state_reached(cg, true, last, sizeof(last), NULL) == 1;
}

struct pidset {
	pid_t *v;
	size_t n, cap;
};

static bool pidset_has(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i] == pid)
			return true;
	}
	return false;
}

static void pidset_add(struct pidset *s, pid_t pid)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = pid;
}

/* Whole file (NUL-terminated, caller frees) or NULL with errno set. */
static char *slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 256;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = errno;
			close(fd);
			if (r < 0) {
				free(buf);
				errno = e;
				return NULL;
			}
			buf[len] = '\0';
			return buf;
		}
		len += (size_t)r;
	}
}

/*
 * Append pid's children to queue. A child may be forked by any thread, and
 * the kernel lists it under that thread only: walk every task. A process or
 * thread that is gone has no children to add.
 */
static void add_children(pid_t pid, struct pidset *queue)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		cleanup_free char *path = xasprintf("%s/%s/children", dir, de->d_name);
		cleanup_free char *list = slurp(path);
		if (!list)
			continue;
		for (char *p = list, *end;; p = end) {
			long child = strtol(p, &end, 10);
			if (end == p)
				break;
			if (child > 0 && !pidset_has(queue, (pid_t)child))
				pidset_add(queue, (pid_t)child);
		}
	}
	closedir(d);
}

/*
 * The children files are only exact while the tree holds still (see
 * proc(5)): a fork racing with the read can be missed. Moving a process
 * first and reading its children after is what makes a pass sound: once a
 * process is in cg, whatever it forks is born in cg. A further pass then
 * catches what the reads missed; the walk ends when a pass moves nothing.
 */
int floe_cgroup_add_tree(struct floe_cgroup *cg, pid_t pid, floe_error *err)
{
	cleanup_free char *procs = xasprintf("%s/cgroup.procs", cg->path);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return floe_error_set(err, -errno, "open %s: %s", procs, strerror(errno));
	struct pidset moved = { 0 }, queue = { 0 };
	int r = 0;
	for (int pass = 0; pass < ADD_TREE_MAX_PASSES; pass++) {
		size_t fresh = 0;
		queue.n = 0;
		pidset_add(&queue, pid);
		for (size_t i = 0; i < queue.n; i++) {
			pid_t p = queue.v[i];
			if (!pidset_has(&moved, p)) {
				char value[16];
				snprintf(value, sizeof(value), "%d", (int)p);
				r = write_value(fd, procs, value, err);
				if (r == -ESRCH && p == pid && pass == 0) {
					floe_error_set(err, -ESRCH, "add %d to %s: no such process",
						       (int)pid, cg->path);
					goto out;
				}
				if (r == -ESRCH) { /* exited meanwhile: nothing to move */
					r = 0;
					continue;
				}
				if (r < 0)
					goto out;
				pidset_add(&moved, p);
				fresh++;
			}
			add_children(p, &queue);
		}
		if (fresh == 0) {
			log_debug("moved %zu processes of %d into %s in %d passes", moved.n,
				  (int)pid, cg->path, pass + 1);
			goto out;
		}
	}
	r = floe_error_set(err, -EAGAIN,
			   "add %d to %s: the process tree still grew after %d passes", (int)pid,
			   cg->path, ADD_TREE_MAX_PASSES);
out:
	close(fd);
	free(moved.v);
	free(queue.v);
	return r;
}

int floe_cgroup_destroy(struct floe_cgroup *cg)
{
	if (!cg)
		return 0;
	int r = 0;
	if (rmdir(cg->path) != 0) {
		r = -errno;
		if (r == -ENOENT) {
			r = 0;
		} else if (r == -EBUSY) {
			/* Under v1 frozen tasks ignore even SIGKILL: let them run so they can exit. */
			floe_error err;
			if (floe_cgroup_thaw(cg, 1000, &err) < 0)
				log_warn("%s still has tasks and cannot be thawed: %s", cg->path,
					 err.msg);
			else
				log_warn("%s still has tasks: thawed, left in place", cg->path);
		} else {
			log_error("rmdir %s: %s", cg->path, strerror(-r));
		}
	}
	free(cg->path);
	free(cg->pin);
	free(cg);
	return r;
}

void floe_cgroup_cleanup_stale(void)
{
	char why[512];
	struct hier h;
	if (find_hier(&h, why, sizeof(why)) < 0) {
		log_debug("no stale cgroups to look for: %s", why);
		return;
	}
	DIR *d = opendir(h.parent);
	if (!d) {
		if (errno != ENOENT)
			log_warn("cannot look for stale cgroups: opendir %s: %s", h.parent,
				 strerror(errno));
		hier_free(&h);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		cleanup_free char *path = xasprintf("%s/%s", h.parent, de->d_name);
		if (rmdir(path) == 0) {
			log_info("removed stale cgroup %s", path);
			continue;
		}
		if (errno != EBUSY) {
			log_warn("cannot remove stale cgroup %s: %s", path, strerror(errno));
			continue;
		}
		/* A crashed floed's replica, possibly frozen: thaw so that it can exit. */
		cleanup_free char *sf = xasprintf("%s/%s", path, state_file(h.version));
		floe_error err;
		if (write_file(sf, h.version == 1 ? "THAWED" : "0", &err) < 0)
			log_warn("stale cgroup %s still has tasks and cannot be thawed: %s", path,
				 err.msg);
		else
			log_warn("stale cgroup %s still has tasks: thawed, left in place", path);
	}
	closedir(d);
	hier_free(&h);
}
