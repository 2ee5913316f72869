/*
 * libcriu calls for floe. Each call builds its own criu_opts (libcriu's
 * criu_local_* API), so calls on different threads do not share state.
 *
 * Options common to dump and restore, and why:
 *  - tcp_close: floed's pooled keep-alive connections and clients' requests
 *    live inside the replica's netns. They are not worth restoring (each
 *    restore is a new replica): CRIU dumps them as closed, and the restored
 *    engine sees EOF on them.
 *  - network lock skip: nothing outside the replica's own netns can reach it,
 *    and locking needs iptables/nftables tooling floe does not require.
 *  - cgroups ignored: a replica's cgroups (warm pool freezer) are floed's to
 *    manage, per replica; a restore must not recreate the dumped one's.
 */
#define LOG_TAG "criu"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criu.h"
#include "fsutil.h"
#include "log.h"

extern char **environ;

/* $FLOE_CRIU, else the first criu in PATH, /usr/local/sbin, /usr/sbin. */
static bool find_criu(char *out, size_t size)
{
	const char *env = getenv("FLOE_CRIU");
	if (env && *env) {
		snprintf(out, size, "%s", env);
		return floe_is_executable(out);
	}
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/local/sbin:/usr/sbin:/sbin", path ? path : "");
	return floe_find_executable("criu", dirs, out, size) == 0;
}

#ifdef FLOE_HAVE_CRIU

#include <criu/criu.h>

static criu_opts *opts_new(const char *criu_path, floe_error *err)
{
	criu_opts *o = NULL;
	if (criu_local_init_opts(&o) < 0 || !o) {
		floe_error_set(err, -ENOMEM, "libcriu: cannot allocate options");
		return NULL;
	}
	criu_local_set_service_binary(o, criu_path);
	criu_local_set_log_level(o, 4); /* a failed dump/restore must be explainable */
	criu_local_set_tcp_close(o, true);
	criu_local_set_network_lock(o, CRIU_NETWORK_LOCK_SKIP);
	criu_local_set_manage_cgroups(o, true);
	criu_local_set_manage_cgroups_mode(o, CRIU_CG_MODE_IGNORE);
	criu_local_set_file_locks(o, true);
	return o;
}

void floe_criu_probe(struct floe_criu_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	if (!find_criu(caps->path, sizeof(caps->path))) {
		snprintf(caps->why, sizeof(caps->why),
			 "criu not found (FLOE_CRIU, PATH, /usr/local/sbin, /usr/sbin); "
			 "scripts/install-criu builds it");
		snprintf(caps->gpu_why, sizeof(caps->gpu_why), "no CRIU");
		return;
	}
	floe_error err = { 0 };
	criu_opts *o = opts_new(caps->path, &err);
	if (!o) {
		snprintf(caps->why, sizeof(caps->why), "%s", err.msg);
		return;
	}
	int v = criu_local_get_version(o);
	if (v <= 0) {
		snprintf(caps->why, sizeof(caps->why), "%s does not answer (criu swrk)",
			 caps->path);
		goto out;
	}
	snprintf(caps->version, sizeof(caps->version), "%d.%d.%d", v / 10000, v / 100 % 100,
		 v % 100);
	if (v < FLOE_CRIU_MIN_VERSION) {
		snprintf(caps->why, sizeof(caps->why),
			 "criu %s is older than 4.2 (this kernel needs 4.2+); "
			 "scripts/install-criu builds a newer one",
			 caps->version);
		goto out;
	}
	int rc = criu_local_check(o);
	if (rc != 0) {
		snprintf(caps->why, sizeof(caps->why), "`%s check` failed (%d)", caps->path, rc);
		goto out;
	}
	caps->snapshots = true;
	struct criu_feature_check f = { .lazy_pages = true };
	caps->lazy_pages = criu_local_feature_check(o, &f, sizeof(f)) == 0 && f.lazy_pages;

	/* CRIU's CUDA plugin drives NVIDIA's cuda-checkpoint (the driver's
	 * cuCheckpointProcess* API): both must be there, and a GPU. */
	char plugin[PATH_MAX];
	const char *libs = getenv("CRIU_LIBS_DIR"); /* criu's own override */
	const char *plugin_dirs[] = { libs && *libs ? libs : "/usr/local/lib/criu",
				      "/usr/local/lib/criu", "/usr/lib/criu" };
	bool have_plugin = false;
	for (size_t i = 0; i < sizeof(plugin_dirs) / sizeof(plugin_dirs[0]); i++) {
		snprintf(plugin, sizeof(plugin), "%s/cuda_plugin.so", plugin_dirs[i]);
		if (access(plugin, R_OK) == 0)
			have_plugin = true;
	}
	char tool[PATH_MAX];
	bool have_tool = floe_find_executable("cuda-checkpoint", NULL, tool, sizeof(tool)) == 0;
	bool have_gpu = access("/dev/nvidiactl", F_OK) == 0;
	caps->gpu = have_plugin && have_tool && have_gpu;
	if (!caps->gpu)
		snprintf(caps->gpu_why, sizeof(caps->gpu_why), "%s",
			 !have_gpu    ? "no NVIDIA GPU (/dev/nvidiactl)" :
			 !have_plugin ? "CRIU's cuda_plugin.so not installed" :
					"cuda-checkpoint not in PATH");
out:
	criu_local_free_opts(o);
}

int floe_criu_dump(const struct floe_criu_dump_req *req, floe_error *err)
{
	criu_opts *o = opts_new(req->criu_path, err);
	if (!o)
		return err->code;
	criu_local_set_pid(o, req->pid);
	criu_local_set_images_dir_fd(o, req->images_dir_fd);
	criu_local_set_log_file(o, req->log_file);
	criu_local_set_leave_running(o, true);
	if (req->netns_ino) {
		char ext[64];
		snprintf(ext, sizeof(ext), "net[%" PRIu64 "]:" FLOE_CRIU_NETNS_KEY, req->netns_ino);
		criu_local_add_external(o, ext);
	}
	int rc = criu_local_dump(o);
	criu_local_free_opts(o);
	if (rc < 0)
		return floe_error_set(err, rc == -EBADE ? -EIO : rc,
				      "criu dump of pid %d failed (%s); see its log %s",
				      (int)req->pid, strerror(rc == -EBADE ? EIO : -rc),
				      req->log_file);
	return 0;
}

/* Thread-local: libcriu's notify callback has no user argument, and the
 * callback runs on the thread that called criu_local_restore_child. */
static _Thread_local const struct floe_criu_restore_req *notify_req;
static _Thread_local pid_t notify_root;

static int on_notify(char *action, criu_notify_arg_t na)
{
	bool post = strcmp(action, "post-restore") == 0;
	if (post || strcmp(action, "setup-namespaces") == 0)
		notify_root = criu_notify_pid(na);
	if (!post || !notify_req || !notify_req->post_restore)
		return 0;
	return notify_req->post_restore(notify_root, notify_req->arg) < 0 ? -1 : 0;
}

/* The lazy-pages daemon serves page faults of the restored tree from the
 * images, then copies the rest in the background and exits. Restore
 * connects to it through work_dir/lazy-pages.socket, so it must be
 * listening first: --status-fd says when. */
static pid_t start_lazy_daemon(const struct floe_criu_restore_req *req, floe_error *err)
{
	int st[2];
	if (pipe2(st, O_CLOEXEC) < 0) {
		floe_error_set(err, -errno, "pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, st[1], 3); /* dup2 clears close-on-exec */
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	char *argv[] = { (char *)req->criu_path,
			 "lazy-pages",
			 "--images-dir",
			 (char *)req->images_dir,
			 "--work-dir",
			 (char *)req->work_dir,
			 "-o",
			 "lazy-pages.log",
			 "-v4",
			 "--status-fd",
			 "3",
			 NULL };
	pid_t pid;
	int rc = posix_spawn(&pid, req->criu_path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(st[1]);
	if (rc != 0) {
		close(st[0]);
		floe_error_set(err, -rc, "spawn criu lazy-pages: %s", strerror(rc));
		return -1;
	}
	struct pollfd p = { .fd = st[0], .events = POLLIN };
	char c = 1;
	int n = poll(&p, 1, 10000);
	ssize_t got = n > 0 ? read(st[0], &c, 1) : -1;
	close(st[0]);
	if (got != 1 || c != '\0') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		floe_error_set(err, -EIO, "criu lazy-pages did not start; see %s/lazy-pages.log",
			       req->work_dir);
		return -1;
	}
	return pid;
}

int floe_criu_restore(const struct floe_criu_restore_req *req, pid_t *pid, pid_t *lazy_pid,
		      floe_error *err)
{
	*pid = -1;
	*lazy_pid = -1;
	int images_fd = -1, work_fd = -1, stdio_fd = -1, netns_fd = -1, rc;
	criu_opts *o = opts_new(req->criu_path, err);
	if (!o)
		return err->code;
	images_fd = open(req->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (images_fd < 0) {
		rc = floe_error_set(err, -errno, "open %s: %s", req->images_dir, strerror(errno));
		goto out;
	}
	work_fd = open(req->work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work_fd < 0) {
		rc = floe_error_set(err, -errno, "open %s: %s", req->work_dir, strerror(errno));
		goto out;
	}
	criu_local_set_images_dir_fd(o, images_fd);
	criu_local_set_work_dir_fd(o, work_fd);
	criu_local_set_log_file(o, req->log_file);
	if (req->stdio_fd >= 0) {
		/* criu swrk is forked from this thread and takes the fd by
		 * number from its own table: it must survive exec. Anything
		 * else forked meanwhile closes it (replica spawns close_range;
		 * CRIU closes every fd a restored task did not have). */
		stdio_fd = fcntl(req->stdio_fd, F_DUPFD, 3);
		if (stdio_fd < 0) {
			rc = floe_error_set(err, -errno, "dup: %s", strerror(errno));
			goto out;
		}
		criu_local_add_inherit_fd(o, stdio_fd, req->stdio_key);
	}
	if (req->netns_fd >= 0) {
		netns_fd = fcntl(req->netns_fd, F_DUPFD, 3); /* inherited, as above */
		if (netns_fd < 0) {
			rc = floe_error_set(err, -errno, "dup: %s", strerror(errno));
			goto out;
		}
		criu_local_add_inherit_fd(o, netns_fd, FLOE_CRIU_NETNS_KEY);
	}
	if (req->lazy_pages) {
		char conf[PATH_MAX];
		snprintf(conf, sizeof(conf), "%s/criu.conf", req->work_dir);
		FILE *f = fopen(conf, "we");
		if (!f || fputs("lazy-pages\n", f) < 0 || fclose(f) != 0) {
			rc = floe_error_set(err, -errno, "write %s: %s", conf, strerror(errno));
			goto out;
		}
		/* libcriu has no setter for lazy_pages; CRIU reads it from a
		 * per-request configuration file. */
		criu_local_set_config_file(o, conf);
		*lazy_pid = start_lazy_daemon(req, err);
		if (*lazy_pid < 0) {
			rc = err->code;
			goto out;
		}
	}
	notify_req = req;
	notify_root = -1;
	/* Always: the root pid it reports is ours to reap if CRIU fails later. */
	criu_local_set_notify_cb(o, on_notify);
	rc = criu_local_restore_child(o);
	notify_req = NULL;
	if (rc <= 0 && notify_root > 0) {
		/* CRIU made the root (a child of this process: it restores as
		 * our sibling's sibling) and then gave up: CRIU killed the tree,
		 * the zombie is ours. */
		kill(notify_root, SIGKILL);
		while (waitpid(notify_root, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (rc <= 0) {
		int e = rc == -EBADE || rc == 0 ? EIO : -rc;
		rc = floe_error_set(err, -e, "criu restore from %s failed (%s); see %s/%s",
				    req->images_dir, strerror(e), req->work_dir, req->log_file);
		if (*lazy_pid > 0) {
			kill(*lazy_pid, SIGKILL);
			waitpid(*lazy_pid, NULL, 0);
			*lazy_pid = -1;
		}
		goto out;
	}
	*pid = rc;
	rc = 0;
out:
	if (stdio_fd >= 0)
		close(stdio_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	if (images_fd >= 0)
		close(images_fd);
	if (work_fd >= 0)
		close(work_fd);
	criu_local_free_opts(o);
	return rc;
}

#else /* !FLOE_HAVE_CRIU */

void floe_criu_probe(struct floe_criu_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	find_criu(caps->path, sizeof(caps->path));
	snprintf(caps->why, sizeof(caps->why),
		 "floed was built without libcriu (scripts/install-criu, then rebuild)");
	snprintf(caps->gpu_why, sizeof(caps->gpu_why), "no CRIU");
}

int floe_criu_dump(const struct floe_criu_dump_req *req, floe_error *err)
{
	return floe_error_set(err, -ENOTSUP, "floed was built without libcriu");
}

int floe_criu_restore(const struct floe_criu_restore_req *req, pid_t *pid, pid_t *lazy_pid,
		      floe_error *err)
{
	*pid = *lazy_pid = -1;
	return floe_error_set(err, -ENOTSUP, "floed was built without libcriu");
}

#endif
