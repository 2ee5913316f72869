/*
 * Snapshots in the replica lifecycle: when to dump, how a cold start
 * restores, what happens when a snapshot is bad, and the warm pool.
 *
 *  - Dump: the first fresh replica of an endpoint without a snapshot, once
 *    ready, gets the optional warm-up request, then is dumped (leaving it
 *    running) the first moment it has no request in flight: an idle engine
 *    snapshots cleanly, with no half-answered request in the image. It is
 *    not taken out of routing to get there (a long stream would stall
 *    everyone else); only during the dump itself do new requests wait or go
 *    to another replica. A failed dump is retried after DUMP_RETRY_MS by the
 *    next fresh replica.
 *  - Restore: a cold start with a usable snapshot restores it into fresh
 *    namespaces (CRIU on the thread pool). A failed restore, or a restored
 *    replica that dies before it is ready, quarantines the snapshot and
 *    starts the engine fresh for the held requests; the next fresh replica
 *    takes a new snapshot.
 *  - Warm pool: warm_pool.size replicas restored, then frozen in their own
 *    cgroup. A cold start thaws one (milliseconds) and the pool refills in
 *    the background, within warm_pool_memory.
 *
 * CRIU calls and file I/O run on libuv's thread pool; the loop only keeps
 * the bookkeeping. A job holds a reference on its replica (refs) and on its
 * endpoint (snap_jobs) so neither is freed under it.
 */
#define LOG_TAG "snapshot"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "runtime-internal.h"
#include "sha256.h"
#include "xalloc.h"

#define DUMP_RETRY_MS (5 * 60 * 1000)
#define POOL_MAX_FAILURES 3
#define FREEZE_TIMEOUT_MS 2000
#define THAW_TIMEOUT_MS 1000

static bool snapshots_on(struct endpoint *ep)
{
	return ep->act->criu.snapshots && ep->cfg->snapshot.enabled;
}

static double ms_since(uint64_t t0_ns)
{
	return (double)(floe_now_ns() - t0_ns) / 1e6;
}

/* --- set-up --------------------------------------------------------------- */

void floe__snap_register_metrics(struct floe_activator *a)
{
	static const char *const l_ep[] = { "endpoint", NULL };
	static const char *const l_ep_op[] = { "endpoint", "op", "result", NULL };
	a->m.snapshot_bytes = floe_metrics_family(
		a->metrics, FLOE_GAUGE, "floe_snapshot_bytes",
		"Size of the endpoint's current snapshot images (0: none).", l_ep, NULL, 0);
	a->m.snapshot_ops = floe_metrics_family(
		a->metrics, FLOE_COUNTER, "floe_snapshot_operations_total",
		"Snapshot dumps and restores, by result (ok, failed).", l_ep_op, NULL, 0);
	a->m.restore_duration = floe_metrics_family(
		a->metrics, FLOE_HISTOGRAM, "floe_snapshot_restore_seconds",
		"Time CRIU took to restore a replica (the process exists, not yet probed).", l_ep,
		floe_metrics_latency_buckets, floe_metrics_latency_buckets_len);
}

static void count_op(struct endpoint *ep, const char *op, bool ok)
{
	const char *lv[] = { ep->cfg->name, op, ok ? "ok" : "failed" };
	floe_metric_inc(floe_metric_get(ep->act->m.snapshot_ops, lv));
}

static void set_snap(struct endpoint *ep, struct floe_snapshot_meta *m)
{
	if (ep->snap) {
		floe_snapshot_meta_free(ep->snap);
		free(ep->snap);
	}
	ep->snap = m;
	const char *lv[] = { ep->cfg->name };
	floe_metric_set(floe_metric_get(ep->act->m.snapshot_bytes, lv),
			m ? (double)m->image_bytes : 0);
}

/* On a GPU host without NVIDIA's cuda-checkpoint, CRIU's CUDA plugin gets
 * floe-cuda-checkpoint (next to floed) under that name, first in the PATH
 * that criu inherits from floed. */
static void provide_cuda_checkpoint(struct floe_activator *a)
{
	if (access("/dev/nvidiactl", F_OK) != 0)
		return;
	char found[PATH_MAX];
	if (floe_find_executable("cuda-checkpoint", NULL, found, sizeof(found)) == 0)
		return; /* NVIDIA's own */
	const char *path = getenv("PATH");
	char *tool = xstrdup(a->init_path); /* BINDIR/floe-init */
	char *slash = strrchr(tool, '/');
	if (slash)
		slash[1] = '\0';
	char *ours = xasprintf("%sfloe-cuda-checkpoint", slash ? tool : "");
	char *bin = xasprintf("%s/run/bin", a->data_dir);
	char *link = xasprintf("%s/cuda-checkpoint", bin);
	if (access(ours, X_OK) == 0 && floe_mkdir_p(bin, 0700) == 0) {
		unlink(link);
		if (symlink(ours, link) == 0) {
			char *np = xasprintf("%s:%s", bin, path ? path : "/usr/bin:/bin");
			setenv("PATH", np, 1);
			free(np);
			log_info(
				"GPU checkpointing through %s (NVIDIA's cuda-checkpoint not in PATH)",
				ours);
		}
	}
	free(tool);
	free(ours);
	free(bin);
	free(link);
}

/*
 * CRIU's helpers (criu swrk) inherit floed's stdout and stderr, and `criu
 * check` prints "Looks good." on stdout (CRIU's pr_msg): a line in floed's
 * log that is not floed's (and not JSON under log_format: json). During
 * the probe fds 1 and 2 are a memory file; what landed there is logged
 * afterwards as floed's own debug lines. A record another thread writes
 * meanwhile lands there too and is logged the same way (the ledger
 * thread, at most, this early).
 */
static void criu_probe_quietly(struct floe_criu_caps *caps)
{
	int mem = memfd_create("floe-criu-probe", MFD_CLOEXEC);
	int out_fd = mem >= 0 ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3) : -1;
	int err_fd = out_fd >= 0 ? fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3) : -1;
	if (err_fd < 0 || dup2(mem, STDOUT_FILENO) < 0 || dup2(mem, STDERR_FILENO) < 0) {
		if (out_fd >= 0)
			dup2(out_fd, STDOUT_FILENO);
		if (err_fd >= 0)
			close(err_fd);
		if (out_fd >= 0)
			close(out_fd);
		if (mem >= 0)
			close(mem);
		floe_criu_probe(caps);
		return;
	}
	floe_criu_probe(caps);
	dup2(out_fd, STDOUT_FILENO);
	dup2(err_fd, STDERR_FILENO);
	close(out_fd);
	close(err_fd);
	char out[8192];
	ssize_t n = pread(mem, out, sizeof(out) - 1, 0);
	close(mem);
	out[n > 0 ? n : 0] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_debug("criu: %s", line);
}

void floe__snap_init(struct floe_activator *a, bool enabled)
{
	if (!enabled) {
		snprintf(a->criu.why, sizeof(a->criu.why), "snapshots disabled");
		return;
	}
	provide_cuda_checkpoint(a);
	criu_probe_quietly(&a->criu);
	if (!a->criu.snapshots) {
		log_warn("snapshots unavailable, cold starts will be fresh starts: %s",
			 a->criu.why);
		return;
	}
	floe_error err;
	floe_error_clear(&err);
	if (floe_snapstore_init(a->data_dir, &err) < 0) {
		log_error("snapshots disabled: %s", err.msg);
		a->criu.snapshots = false;
		snprintf(a->criu.why, sizeof(a->criu.why), "%s", err.msg);
		return;
	}
	/* Per data directory: two floeds on one host must not share (or clean
	 * up) each other's replica cgroups. */
	struct floe_sha256 h;
	uint8_t d[FLOE_SHA256_LEN];
	char hex[FLOE_SHA256_HEX_LEN + 1], parent[32];
	char *real = realpath(a->data_dir, NULL);
	floe_sha256_init(&h);
	floe_sha256_update(&h, real ? real : a->data_dir, strlen(real ? real : a->data_dir));
	floe_sha256_final(&h, d);
	floe_sha256_hex(d, hex);
	free(real);
	snprintf(parent, sizeof(parent), "floe-%.12s", hex);
	floe_cgroup_set_parent(parent);
	char desc[256];
	a->freezer = floe_cgroup_probe(desc, sizeof(desc)) == 0;
	if (a->freezer)
		floe_cgroup_cleanup_stale();
	log_info("snapshots: criu %s at %s; lazy pages %s; GPU checkpoint %s; warm pool %s",
		 a->criu.version, a->criu.path, a->criu.lazy_pages ? "yes" : "no",
		 a->criu.gpu ? "yes" : a->criu.gpu_why, a->freezer ? desc : "unavailable");
	if (!a->freezer)
		log_warn("warm pools disabled: %s", desc);
}

/* A snapshot from another kernel or CRIU may restore into a subtly broken
 * engine; it is not used, and the next fresh replica replaces it. */
static bool snapshot_trusted(struct endpoint *ep, const struct floe_snapshot_meta *m, char *why,
			     size_t n)
{
	if (strcmp(m->kernel, floe_kernel_release()) != 0) {
		snprintf(why, n, "taken on kernel %s, this is %s", m->kernel,
			 floe_kernel_release());
		return false;
	}
	if (strcmp(m->criu_version, ep->act->criu.version) != 0) {
		snprintf(why, n, "taken with criu %s, this is %s", m->criu_version,
			 ep->act->criu.version);
		return false;
	}
	return true;
}

static void quarantine_queue(struct endpoint *ep, const char *key, const char *reason);

/* At start and when the definition changes: this endpoint's key, and the
 * snapshot under it if there is a good one (small reads, on the loop). */
void floe__snap_endpoint_load(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	set_snap(ep, NULL);
	ep->snap_retry_ms = 0;
	ep->pool_failures = 0;
	floe_snapshot_key(ep->cfg, a->init_path, ep->snap_key);
	if (!snapshots_on(ep))
		return;
	struct floe_snapshot_meta *m = xcalloc(1, sizeof(*m));
	floe_error err;
	floe_error_clear(&err);
	int rc = floe_snapstore_load(a->data_dir, ep->snap_key, m, &err);
	char why[256];
	if (rc == 0 && !snapshot_trusted(ep, m, why, sizeof(why))) {
		snprintf(err.msg, sizeof(err.msg), "%s", why);
		floe_snapshot_meta_free(m);
		rc = -ESTALE;
	}
	if (rc < 0) {
		free(m);
		if (rc != -ENOENT) {
			log_ep_warn(ep->cfg->name,
				    "snapshot %.12s not used: %s; quarantined, the next fresh "
				    "replica takes a new one",
				    ep->snap_key, err.msg);
			quarantine_queue(ep, ep->snap_key, err.msg);
		}
		return;
	}
	log_ep_info(ep->cfg->name,
		    "snapshot %.12s (%.1f MiB, taken from %s) will serve cold starts", m->key,
		    (double)m->image_bytes / 1048576.0, m->source_replica);
	set_snap(ep, m);
}

/* Late in the endpoint's teardown (the activator may be gone): memory only. */
void floe__snap_endpoint_free(struct endpoint *ep)
{
	if (ep->snap) {
		floe_snapshot_meta_free(ep->snap);
		free(ep->snap);
		ep->snap = NULL;
	}
}

bool floe__snap_restorable(struct endpoint *ep)
{
	return snapshots_on(ep) && ep->snap != NULL;
}

const struct floe_criu_caps *floe_activator_criu(const struct floe_activator *a)
{
	return &a->criu;
}

bool floe_activator_freezer(const struct floe_activator *a)
{
	return a->freezer;
}

const char *floe_activator_data_dir(const struct floe_activator *a)
{
	return a->data_dir;
}

/* --- quarantine ----------------------------------------------------------- */

struct quarantine_job {
	uv_work_t work;
	struct endpoint *ep;
	char key[FLOE_SNAPSHOT_KEY_LEN + 1];
	char *reason;
	floe_error err;
	int rc;
};

static void quarantine_work(uv_work_t *w)
{
	struct quarantine_job *j = container_of(w, struct quarantine_job, work);
	j->rc = floe_snapstore_quarantine(j->ep->act->data_dir, j->key, j->reason, &j->err);
}

static void quarantine_done(uv_work_t *w, int status)
{
	struct quarantine_job *j = container_of(w, struct quarantine_job, work);
	if (j->rc < 0 && j->rc != -ENOENT)
		log_ep_warn(j->ep->cfg->name, "%s", j->err.msg);
	j->ep->snap_jobs--;
	floe__endpoint_dispatch(j->ep);
	free(j->reason);
	free(j);
}

/* Stop using the snapshot under key (if it is still the current one) and
 * move it aside, with the reason next to it for whoever investigates. */
/* Move the snapshot aside off the loop: quarantine also trims older
 * quarantined snapshots, whole image directories. */
static void quarantine_queue(struct endpoint *ep, const char *key, const char *reason)
{
	struct quarantine_job *j = xcalloc(1, sizeof(*j));
	j->ep = ep;
	snprintf(j->key, sizeof(j->key), "%s", key);
	j->reason = xstrdup(reason);
	floe_error_clear(&j->err);
	ep->snap_jobs++;
	uv_queue_work(ep->act->loop, &j->work, quarantine_work, quarantine_done);
}

static void snapshot_quarantine(struct endpoint *ep, const char *key, const char *reason)
{
	if (!ep->snap || strcmp(ep->snap->key, key) != 0)
		return; /* already dealt with (several restores failed at once) */
	log_ep_error(ep->cfg->name,
		     "snapshot %.12s quarantined: %s; cold starts are fresh until a new "
		     "snapshot is taken",
		     key, reason);
	set_snap(ep, NULL);
	ep->snap_retry_ms = 0;
	quarantine_queue(ep, key, reason);
}

void floe_activator_snapshot_removed(struct floe_activator *a, const char *key)
{
	struct floe_list *pos;
	floe_list_for_each(pos, &a->endpoints) {
		struct endpoint *ep = container_of(pos, struct endpoint, link);
		if (ep->snap && strcmp(ep->snap->key, key) == 0) {
			log_ep_info(ep->cfg->name, "snapshot %.12s removed by the operator", key);
			set_snap(ep, NULL);
			ep->snap_retry_ms = 0;
		}
	}
}

/* --- restore statistics -------------------------------------------------- */

/* The endpoint's in-memory metadata is the truth; a copy goes to disk after
 * each restore so the control plane (and a restarted floed) sees counts. */
struct save_job {
	uv_work_t work;
	struct endpoint *ep;
	struct floe_snapshot_meta meta;
	floe_error err;
	int rc;
};

static void save_work(uv_work_t *w)
{
	struct save_job *j = container_of(w, struct save_job, work);
	j->rc = floe_snapstore_save_meta(j->ep->act->data_dir, &j->meta, &j->err);
}

static void save_done(uv_work_t *w, int status)
{
	struct save_job *j = container_of(w, struct save_job, work);
	if (j->rc < 0)
		log_ep_warn(j->ep->cfg->name, "%s", j->err.msg);
	j->ep->snap_jobs--;
	floe_snapshot_meta_free(&j->meta);
	struct endpoint *ep = j->ep;
	free(j);
	floe__endpoint_dispatch(ep);
}

static void save_stats(struct endpoint *ep)
{
	struct save_job *j = xcalloc(1, sizeof(*j));
	j->ep = ep;
	floe_error_clear(&j->err);
	floe_snapshot_meta_copy(&j->meta, ep->snap);
	ep->snap_jobs++;
	uv_queue_work(ep->act->loop, &j->work, save_work, save_done);
}

/* --- restore -------------------------------------------------------------- */

struct restore_job {
	uv_work_t work;
	struct replica *r;
	struct floe_snapshot_meta meta; /* a copy: the endpoint's may go meanwhile */
	char *data_dir;
	char *criu_path;
	char *work_dir;
	char *cg_name;
	int stdio_w;
	bool lazy, pool;
	/* results */
	struct floe_cgroup *cg;
	pid_t pid, lazy_pid;
	bool damaged;     /* the snapshot is to blame */
	bool post_failed; /* our post-restore hook failed: not the snapshot's fault */
	uint64_t ms;
	floe_error err;
	int rc;
};

static void restore_job_free(struct restore_job *j)
{
	floe_snapshot_meta_free(&j->meta);
	free(j->data_dir);
	free(j->criu_path);
	free(j->work_dir);
	free(j->cg_name);
	free(j);
}

static int restore_post(pid_t root, void *arg)
{
	struct restore_job *j = arg;
	/* The tasks exist and have not run: they enter the cgroup before they
	 * can fork anything that would escape it. */
	floe_error err;
	floe_error_clear(&err);
	if (floe_cgroup_add_tree(j->cg, root, &err) < 0) {
		/* A worker thread: the names come from the job's own copies (the
		 * replica is referenced, its id fixed; the endpoint's config may
		 * be replaced meanwhile). */
		log_replica_error(j->meta.endpoint, j->r->id, "not moved into its cgroup: %s",
				  err.msg);
		j->post_failed = true;
		return -1;
	}
	return 0;
}

static void restore_work(uv_work_t *w)
{
	struct restore_job *j = container_of(w, struct restore_job, work);
	uint64_t t0 = floe_now_ns();
	j->pid = j->lazy_pid = -1;
	j->rc = floe_snapstore_verify(j->data_dir, &j->meta, &j->err);
	if (j->rc < 0) {
		j->damaged = true;
		goto out;
	}
	j->rc = floe_mkdir_p(j->work_dir, 0700);
	if (j->rc < 0) {
		floe_error_set(&j->err, j->rc, "create %s: %s", j->work_dir, strerror(-j->rc));
		goto out;
	}
	if (j->pool) {
		j->rc = floe_cgroup_create(j->cg_name, &j->cg, &j->err);
		if (j->rc < 0)
			goto out;
	}
	/* A snapshot without its network namespace restores into a new one
	 * made here: loopback only, like every replica's. */
	int netns = -1;
	if (j->meta.external_netns) {
		netns = floe_netns_new();
		if (netns < 0) {
			j->rc = floe_error_set(&j->err, netns, "new network namespace: %s",
					       strerror(-netns));
			goto out;
		}
	}
	char *images = floe_snapstore_images(j->data_dir, j->meta.key);
	char key[64];
	snprintf(key, sizeof(key), "pipe:[%" PRIu64 "]", j->meta.stdio_ino);
	struct floe_criu_restore_req req = {
		.criu_path = j->criu_path,
		.images_dir = images,
		.work_dir = j->work_dir,
		.log_file = "restore.log",
		.stdio_fd = j->stdio_w,
		.stdio_key = key,
		.netns_fd = netns,
		.lazy_pages = j->lazy,
		.post_restore = j->pool ? restore_post : NULL,
		.arg = j,
	};
	j->rc = floe_criu_restore(&req, &j->pid, &j->lazy_pid, &j->err);
	free(images);
	if (netns >= 0)
		close(netns); /* the restored tree holds it now */
	if (j->rc < 0) {
		j->damaged = !j->post_failed;
		goto out;
	}
	if (j->pool) {
		j->rc = floe_cgroup_freeze(j->cg, FREEZE_TIMEOUT_MS, &j->err);
		if (j->rc < 0) {
			/* Half frozen tasks would not die: thaw, then kill. */
			floe_cgroup_thaw(j->cg, FREEZE_TIMEOUT_MS, NULL);
			kill(j->pid, SIGKILL);
			waitpid(j->pid, NULL, 0);
			j->pid = -1;
		}
	}
	if (j->rc == 0)
		floe_rm_rf(j->work_dir); /* kept when it failed: CRIU's log is there */
out:
	close(j->stdio_w);
	j->stdio_w = -1;
	if (j->rc < 0 && j->cg) {
		floe_cgroup_destroy(j->cg);
		j->cg = NULL;
	}
	j->ms = (floe_now_ns() - t0) / 1000000;
}

/* The lazy-pages daemon exits once every page is in: reap it from the loop. */
struct lazy_reaper {
	uv_poll_t poll;
	pid_t pid;
	int pidfd;
};

static void on_reaper_closed(uv_handle_t *h)
{
	struct lazy_reaper *lr = h->data;
	close(lr->pidfd);
	free(lr);
}

static void on_lazy_exit(uv_poll_t *h, int status, int events)
{
	struct lazy_reaper *lr = h->data;
	if (waitpid(lr->pid, NULL, WNOHANG) == 0)
		return;
	uv_poll_stop(h);
	uv_close((uv_handle_t *)h, on_reaper_closed);
}

static void reap_lazy_daemon(uv_loop_t *loop, pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		waitpid(pid, NULL, WNOHANG);
		return;
	}
	struct lazy_reaper *lr = xcalloc(1, sizeof(*lr));
	lr->pid = pid;
	lr->pidfd = fd;
	uv_poll_init(loop, &lr->poll, fd);
	lr->poll.data = lr;
	uv_poll_start(&lr->poll, UV_READABLE, on_lazy_exit);
}

static void pool_release(struct replica *r)
{
	r->ep->act->warm_bytes -= r->pool_bytes;
	r->pool_bytes = 0;
}

static void restore_done(uv_work_t *w, int status)
{
	struct restore_job *j = container_of(w, struct restore_job, work);
	struct replica *r = j->r;
	struct endpoint *ep = r->ep;
	struct floe_activator *a = ep->act;
	ep->snap_jobs--;
	if (j->lazy_pid > 0)
		reap_lazy_daemon(a->loop, j->lazy_pid);
	const char *lv[] = { ep->cfg->name };
	count_op(ep, "restore", j->rc == 0);
	if (j->rc == 0) {
		floe_metric_observe(floe_metric_get(a->m.restore_duration, lv),
				    (double)j->ms / 1000.0);
		if (ep->snap && strcmp(ep->snap->key, j->meta.key) == 0) {
			ep->snap->restores++;
			ep->snap->last_restore_ms = j->ms;
			save_stats(ep);
		}
		r->cg = j->cg;
		if (j->pool)
			r->pool_ready = true;
		char note[200];
		snprintf(note, sizeof(note),
			 "floe: replica %s restored from snapshot %.12s%s in %" PRIu64 " ms%s\n",
			 r->id, j->meta.key, j->lazy ? " (lazy pages)" : "", j->ms,
			 j->pool ? ", frozen in the warm pool" : "");
		floe__replica_restored(r, j->pid, note);
		if (j->pool && r->state == REPLICA_WARM) {
			ep->pool_failures = 0;
			log_replica_info(ep->cfg->name, r->id,
					 "ready in the warm pool (restored and frozen in %" PRIu64
					 " ms)",
					 j->ms);
		}
	} else {
		log_replica_error(ep->cfg->name, r->id, "restore failed: %s", j->err.msg);
		if (ep->snap && strcmp(ep->snap->key, j->meta.key) == 0) {
			ep->snap->restore_failures++;
			if (!j->damaged)
				save_stats(ep);
		}
		if (j->pool) {
			pool_release(r);
			ep->pool_failures++;
		}
		if (j->damaged)
			snapshot_quarantine(ep, j->meta.key, j->err.msg);
		floe_proc_abandon(&r->proc);
		floe__replica_restore_failed(r);
	}
	floe__replica_unref(r);
	restore_job_free(j);
	floe__endpoint_dispatch(ep);
}

static void restore_start(struct replica *r, bool pool)
{
	struct endpoint *ep = r->ep;
	struct floe_activator *a = ep->act;
	struct restore_job *j = xcalloc(1, sizeof(*j));
	floe_error_clear(&j->err);
	j->r = r;
	j->pool = pool;
	j->lazy = ep->cfg->snapshot.lazy_pages && a->criu.lazy_pages && !pool;
	floe_snapshot_meta_copy(&j->meta, ep->snap);
	snprintf(r->snap_key, sizeof(r->snap_key), "%s", ep->snap->key);
	j->data_dir = xstrdup(a->data_dir);
	j->criu_path = xstrdup(a->criu.path);
	j->work_dir = xasprintf("%s/run/%s", a->data_dir, r->id);
	j->cg_name = xstrdup(r->id);
	char *log_path = xasprintf("%s/logs/%s/%s.log", a->data_dir, ep->cfg->name, r->id);
	char *log_dir = xasprintf("%s/logs/%s", a->data_dir, ep->cfg->name);
	floe_mkdir_p(log_dir, 0750);
	free(log_dir);
	floe_error err;
	floe_error_clear(&err);
	int rc = floe_proc_prepare(a->loop, &r->proc, log_path, a->log_max_bytes,
				   floe__replica_on_exit, &j->stdio_w, &err);
	free(log_path);
	r->proc.data = r;
	if (rc < 0) {
		/* Not the snapshot's fault (no fds, a full disk): start fresh. */
		log_replica_error(ep->cfg->name, r->id, "restore not prepared: %s", err.msg);
		restore_job_free(j);
		if (pool) {
			pool_release(r);
			ep->pool_failures++; /* bounds the refill retrying from on_replica_gone */
		}
		floe__replica_restore_failed(r);
		return;
	}
	r->refs++;
	ep->snap_jobs++;
	log_replica_info(ep->cfg->name, r->id, "restoring from snapshot %.12s%s%s", ep->snap->key,
			 j->lazy ? " (lazy pages)" : "", pool ? " for the warm pool" : "");
	uv_queue_work(a->loop, &j->work, restore_work, restore_done);
}

void floe__snap_restore(struct replica *r)
{
	restore_start(r, false);
}

/* --- warm pool ------------------------------------------------------------ */

struct replica *floe__snap_take_warm(struct endpoint *ep)
{
	struct floe_list *pos;
	floe_list_for_each(pos, &ep->replicas) {
		struct replica *r = container_of(pos, struct replica, link);
		if (r->state != REPLICA_WARM || !r->pool_ready)
			continue;
		uint64_t t0 = floe_now_ns();
		floe_error err;
		floe_error_clear(&err);
		if (floe_cgroup_thaw(r->cg, THAW_TIMEOUT_MS, &err) < 0) {
			log_replica_error(ep->cfg->name, r->id,
					  "thaw from the warm pool failed: %s", err.msg);
			floe__replica_drain(r);
			continue;
		}
		r->pool = r->pool_ready = false;
		pool_release(r);
		r->kind = COLD_WARM_POOL;
		r->spawned_ns = t0;
		floe__endpoint_set_state(ep, r, REPLICA_STARTING);
		log_replica_info(ep->cfg->name, r->id, "thawed from the warm pool in %.2f ms",
				 ms_since(t0));
		/* The refill waits for this replica's first answer (or its end):
		 * a CRIU restore started now would compete with the request that
		 * woke the endpoint for the CPU (scripts/bench/snapshot: thaw to
		 * first byte 8 / 23 / 52 ms for 64 / 512 / 2048 MiB engines with
		 * an immediate refill). */
		r->pool_refill = true;
		floe__replica_probe_now(r);
		return r;
	}
	return NULL;
}

void floe__snap_refill(struct endpoint *ep)
{
	struct floe_activator *a = ep->act;
	if (!a->freezer || !floe__snap_restorable(ep) || ep->removed || ep->paused ||
	    a->shutting_down || ep->pool_failures >= POOL_MAX_FAILURES)
		return;
	/* A restored replica holds about its memory pages. */
	uint64_t bytes = ep->snap->pages_bytes ? ep->snap->pages_bytes : ep->snap->image_bytes;
	while (ep->n_warm < ep->cfg->warm_pool_size) {
		if (a->warm_pool_memory && a->warm_bytes + bytes > a->warm_pool_memory) {
			log_ep_warn(ep->cfg->name,
				    "warm pool at %u of %u: warm_pool_memory (%" PRIu64
				    " MiB) is used up",
				    ep->n_warm, ep->cfg->warm_pool_size, a->warm_pool_memory >> 20);
			return;
		}
		struct replica *r = floe__replica_new_pooled(ep);
		r->pool = true;
		r->pool_bytes = bytes;
		a->warm_bytes += bytes;
		restore_start(r, true);
	}
}

/* --- dump ----------------------------------------------------------------- */

struct dump_job {
	uv_work_t work;
	struct replica *r;
	struct floe_snapshot_meta meta;
	char *data_dir;
	char *criu_path;
	char *log_dir; /* a failed dump's CRIU log is kept here */
	pid_t pid;
	uint64_t netns_ino;
	floe_error err;
	int rc;
};

static void dump_work(uv_work_t *w)
{
	struct dump_job *j = container_of(w, struct dump_job, work);
	char *dir = NULL;
	j->rc = floe_snapstore_begin(j->data_dir, j->meta.key, &dir, &j->err);
	if (j->rc < 0)
		return;
	char *images = xasprintf("%s/images", dir);
	int fd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		j->rc = floe_error_set(&j->err, -errno, "open %s: %s", images, strerror(errno));
		goto fail;
	}
	struct floe_criu_dump_req req = {
		.criu_path = j->criu_path,
		.pid = j->pid,
		.images_dir_fd = fd,
		.netns_ino = j->netns_ino,
		.log_file = "dump.log",
	};
	uint64_t t0 = floe_now_ns();
	j->rc = floe_criu_dump(&req, &j->err);
	j->meta.dump_ms = (floe_now_ns() - t0) / 1000000;
	close(fd);
	if (j->rc < 0) {
		char *keep = xasprintf("%s/%s.dump.log", j->log_dir, j->meta.source_replica);
		char *log = xasprintf("%s/dump.log", images);
		if (rename(log, keep) == 0)
			floe_error_set(&j->err, j->rc, "criu dump failed; its log: %s", keep);
		free(keep);
		free(log);
		goto fail;
	}
	char *log = xasprintf("%s/dump.log", images);
	unlink(log); /* not part of the snapshot */
	free(log);
	j->meta.created_at_ms = (uint64_t)time(NULL) * 1000;
	j->rc = floe_snapstore_commit(j->data_dir, dir, &j->meta, &j->err);
	free(images);
	free(dir);
	if (j->rc < 0)
		return;
	/* Snapshots of this endpoint's earlier definitions are of no use now. */
	struct floe_snapshot_meta *all;
	size_t n;
	if (floe_snapstore_list(j->data_dir, &all, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(all[i].endpoint, j->meta.endpoint) == 0 &&
			    strcmp(all[i].key, j->meta.key) != 0)
				floe_snapstore_remove(j->data_dir, all[i].key, NULL);
			floe_snapshot_meta_free(&all[i]);
		}
		free(all);
	}
	return;
fail:
	free(images);
	floe_rm_rf(dir);
	free(dir);
}

static void dump_done(uv_work_t *w, int status)
{
	struct dump_job *j = container_of(w, struct dump_job, work);
	struct replica *r = j->r;
	struct endpoint *ep = r->ep;
	ep->snap_jobs--;
	ep->snap_busy = false;
	r->dumping = false;
	r->snap_wait = false;
	count_op(ep, "dump", j->rc == 0);
	if (j->rc == 0 && strcmp(j->meta.key, ep->snap_key) == 0) {
		log_replica_info(ep->cfg->name, r->id,
				 "gave snapshot %.12s: %.1f MiB, engine frozen %" PRIu64 " ms",
				 j->meta.key, (double)j->meta.image_bytes / 1048576.0,
				 j->meta.dump_ms);
		struct floe_snapshot_meta *m = xcalloc(1, sizeof(*m));
		*m = j->meta;
		j->meta.files = NULL;
		set_snap(ep, m);
	} else if (j->rc < 0) {
		log_replica_error(ep->cfg->name, r->id,
				  "snapshot failed, cold starts stay fresh (next attempt in %d "
				  "min): %s",
				  DUMP_RETRY_MS / 60000, j->err.msg);
		ep->snap_retry_ms = floe_now_ms() + DUMP_RETRY_MS;
	}
	/* After the lines above: a stop asked for during the dump happens now. */
	floe__replica_dump_done(r);
	floe__replica_unref(r);
	floe_snapshot_meta_free(&j->meta);
	free(j->data_dir);
	free(j->criu_path);
	free(j->log_dir);
	free(j);
	floe__snap_refill(ep);
	floe__endpoint_dispatch(ep);
}

void floe__snap_on_idle(struct replica *r)
{
	struct endpoint *ep = r->ep;
	struct floe_activator *a = ep->act;
	if (!r->snap_wait || r->dumping || r->in_flight > 0)
		return;
	if (r->state != REPLICA_READY || ep->removed || a->shutting_down) {
		r->snap_wait = false;
		ep->snap_busy = false;
		floe__endpoint_dispatch(ep);
		return;
	}
	/* floed's own idle keep-alive connections would be dumped as closed
	 * sockets the engine then has to notice: close them first. */
	floe__replica_close_idle(r);
	r->dumping = true;
	struct dump_job *j = xcalloc(1, sizeof(*j));
	floe_error_clear(&j->err);
	j->r = r;
	j->pid = r->proc.pid;
	j->data_dir = xstrdup(a->data_dir);
	j->criu_path = xstrdup(a->criu.path);
	j->log_dir = xasprintf("%s/logs/%s", a->data_dir, ep->cfg->name);
	snprintf(j->meta.key, sizeof(j->meta.key), "%s", ep->snap_key);
	snprintf(j->meta.endpoint, sizeof(j->meta.endpoint), "%s", ep->cfg->name);
	snprintf(j->meta.source_replica, sizeof(j->meta.source_replica), "%s", r->id);
	snprintf(j->meta.criu_version, sizeof(j->meta.criu_version), "%s", a->criu.version);
	snprintf(j->meta.kernel, sizeof(j->meta.kernel), "%s", floe_kernel_release());
	j->meta.stdio_ino = r->proc.stdio_ino;
	struct stat ns;
	if (fstat(r->proc.netns_fd, &ns) == 0) {
		j->netns_ino = (uint64_t)ns.st_ino;
		j->meta.external_netns = true;
	}
	r->refs++;
	ep->snap_jobs++;
	log_replica_info(ep->cfg->name, r->id, "being snapshotted");
	uv_queue_work(a->loop, &j->work, dump_work, dump_done);
}

/* --- warm-up -------------------------------------------------------------- */

/* One request straight to the replica (not through the proxy: it is not a
 * user's), before the dump, so the engine's lazy initialisation is done in
 * the snapshot rather than in every restored replica. */
struct warmup {
	struct replica *r;
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	uv_timer_t timer;
	struct floe_http_parser parser;
	struct floe_buf req;
	int status;
	bool done;
	int closes;
	uint64_t t0_ns;
};

static void warmup_closed(uv_handle_t *h)
{
	struct warmup *wu = h->data;
	if (--wu->closes > 0)
		return;
	floe_http_parser_destroy(&wu->parser);
	floe_buf_destroy(&wu->req);
	free(wu);
}

static void warmup_finish(struct warmup *wu, bool ok, const char *why)
{
	if (wu->done)
		return;
	wu->done = true;
	struct replica *r = wu->r;
	struct endpoint *ep = r->ep;
	wu->closes = 2;
	uv_close((uv_handle_t *)&wu->tcp, warmup_closed);
	uv_close((uv_handle_t *)&wu->timer, warmup_closed);
	ep->snap_jobs--;
	if (!ok) {
		log_replica_warn(ep->cfg->name, r->id,
				 "warm-up request failed (%s): no snapshot; next attempt in %d "
				 "min",
				 why, DUMP_RETRY_MS / 60000);
		ep->snap_busy = false;
		ep->snap_retry_ms = floe_now_ms() + DUMP_RETRY_MS;
	} else {
		log_replica_info(ep->cfg->name, r->id, "warm-up answered %d in %.0f ms", wu->status,
				 ms_since(wu->t0_ns));
		r->snap_wait = true;
		floe__snap_on_idle(r);
	}
	floe__replica_unref(r);
	floe__endpoint_dispatch(ep);
}

static int warmup_on_head(void *ud, struct floe_http_msg *msg)
{
	((struct warmup *)ud)->status = msg->status;
	return 0;
}

static int warmup_on_complete(void *ud)
{
	struct warmup *wu = ud;
	char why[32];
	snprintf(why, sizeof(why), "status %d", wu->status);
	warmup_finish(wu, wu->status >= 200 && wu->status < 300, why);
	return 1;
}

static const struct floe_http_parser_cbs warmup_cbs = { .on_head = warmup_on_head,
							.on_complete = warmup_on_complete };

static void warmup_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[16384];
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void warmup_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct warmup *wu = s->data;
	if (wu->done)
		return;
	if (nread < 0) {
		if (nread == UV_EOF && floe_http_parser_finish(&wu->parser) == FLOE_HTTP_OK &&
		    wu->done)
			return;
		warmup_finish(wu, false,
			      nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
		return;
	}
	size_t used;
	if (floe_http_parser_execute(&wu->parser, buf->base, (size_t)nread, &used) ==
		    FLOE_HTTP_ERROR &&
	    !wu->done)
		warmup_finish(wu, false, "malformed response");
}

static void warmup_written(uv_write_t *w, int status)
{
	struct warmup *wu = w->data;
	if (status < 0)
		warmup_finish(wu, false, uv_strerror(status));
}

static void warmup_connected(uv_connect_t *c, int status)
{
	struct warmup *wu = c->data;
	if (wu->done)
		return;
	if (status < 0) {
		warmup_finish(wu, false, uv_strerror(status));
		return;
	}
	uv_buf_t b = uv_buf_init(wu->req.data, (unsigned)wu->req.len);
	wu->write.data = wu;
	if (uv_write(&wu->write, (uv_stream_t *)&wu->tcp, &b, 1, warmup_written) < 0 ||
	    uv_read_start((uv_stream_t *)&wu->tcp, warmup_alloc, warmup_read) < 0)
		warmup_finish(wu, false, "write");
}

static void warmup_timeout(uv_timer_t *t)
{
	warmup_finish(t->data, false, "timed out");
}

static void warmup_start(struct replica *r)
{
	struct endpoint *ep = r->ep;
	const struct floe_snapshot_config *sc = &ep->cfg->snapshot;
	struct warmup *wu = xcalloc(1, sizeof(*wu));
	wu->r = r;
	wu->t0_ns = floe_now_ns();
	size_t blen = sc->warmup_body ? strlen(sc->warmup_body) : 0;
	floe_buf_init(&wu->req);
	floe_buf_printf(&wu->req,
			"%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: floe-warmup\r\n"
			"Content-Type: application/json\r\nContent-Length: %zu\r\n"
			"Connection: close\r\n\r\n",
			sc->warmup_method, sc->warmup_path, blen);
	if (blen)
		floe_buf_append(&wu->req, sc->warmup_body, blen);
	floe_http_parser_init(&wu->parser, HTTP_RESPONSE, &warmup_cbs, wu, 64 * 1024, UINT64_MAX);
	uv_tcp_init(ep->act->loop, &wu->tcp);
	uv_timer_init(ep->act->loop, &wu->timer);
	wu->tcp.data = wu->timer.data = wu->connect.data = wu;
	r->refs++;
	ep->snap_jobs++;
	uv_timer_start(&wu->timer, warmup_timeout, sc->warmup_timeout_ms, 0);
	int fd = floe_netns_socket(r->proc.netns_fd, AF_INET, SOCK_STREAM);
	if (fd < 0 || uv_tcp_open(&wu->tcp, fd) < 0) {
		if (fd >= 0)
			close(fd);
		warmup_finish(wu, false, "socket");
		return;
	}
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", r->port, &addr);
	if (uv_tcp_connect(&wu->connect, &wu->tcp, (struct sockaddr *)&addr, warmup_connected) < 0)
		warmup_finish(wu, false, "connect");
}

void floe__snap_on_ready(struct replica *r)
{
	struct endpoint *ep = r->ep;
	if (!snapshots_on(ep) || ep->snap || ep->snap_busy || r->kind != COLD_FRESH ||
	    floe_now_ms() < ep->snap_retry_ms || ep->removed || ep->act->shutting_down)
		return;
	ep->snap_busy = true;
	if (ep->cfg->snapshot.warmup_method && ep->cfg->snapshot.warmup_path) {
		warmup_start(r);
		return;
	}
	r->snap_wait = true;
	floe__snap_on_idle(r);
}

/* --- exits ---------------------------------------------------------------- */

void floe__snap_on_answered(struct replica *r)
{
	if (!r->pool_refill)
		return;
	r->pool_refill = false;
	floe__snap_refill(r->ep);
}

void floe__snap_on_exit(struct replica *r, enum replica_state was)
{
	struct endpoint *ep = r->ep;
	r->pool_refill = false; /* refilled once it is gone (on_replica_gone) */
	if (r->pool_bytes)
		pool_release(r);
	if (was == REPLICA_STARTING && r->kind == COLD_RESTORE) {
		snapshot_quarantine(ep, r->snap_key,
				    "a replica restored from it exited before it was ready");
	} else if (was == REPLICA_WARM) {
		ep->pool_failures++;
	}
	if (r->snap_wait && !r->dumping) {
		r->snap_wait = false;
		ep->snap_busy = false;
	}
}
