/*
 * Replica processes: clone3 into fresh PID + network namespaces, exec
 * floe-init there, watch the pidfd on the loop, pump the log pipe into a
 * size-capped file.
 *
 * Between clone3 and execve the child is a copy of a (possibly
 * multi-threaded) floed that glibc does not know was forked: it may only make
 * async-signal-safe calls, on data prepared by the parent. Nothing in it
 * allocates.
 *
 * PR_SET_PDEATHSIG fires when the *thread* that cloned the child exits, not
 * the process: spawn from the loop thread (which lives as long as floed),
 * never from a short-lived worker thread.
 */
#define LOG_TAG "proc"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "proc.h"
#include "xalloc.h"

extern char **environ;

/* Must match floe-init's forwarded set: they stay blocked across execve so a
 * signal sent before floe-init reaches sigwaitinfo() is queued, not lost
 * (PID 1 of a namespace discards default-disposition signals). */
static const int init_blocked[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD };

/* Everything the child needs, built before clone3. */
struct child_args {
	char **argv;
	char **envp;
	const char *init_path;
	const char *exec_fail_msg; /* "floe: exec PATH: " */
	size_t exec_fail_len;
	int log_w;
	int devnull;
	pid_t expect_ppid; /* our pid as /proc shows it, 0 when unknown */
	sigset_t mask;
};

static int sys_pidfd_send_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

/* Move fd off 0..2 so the child's dup2() onto stdio cannot clobber it. */
static int above_stdio(int fd)
{
	if (fd > 2)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int rc = nfd < 0 ? -errno : nfd;
	close(fd);
	return rc;
}

/* Our pid in the PID namespace of the /proc mount, which is what the child
 * will read back from /proc/self/stat. */
static pid_t proc_self_pid(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (pid_t)strtol(buf, NULL, 10);
}

/*
 * The child's parent, read from /proc/self/stat (async-signal-safe: open,
 * read, hand parsing). getppid() is no use here: PID 1 of a new PID
 * namespace always sees 0. procfs reports the parent in the namespace of the
 * /proc mount, i.e. floed's view.
 */
static pid_t child_read_ppid(void)
{
	char buf[512];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything, even ')'. */
	char *s = NULL;
	for (char *q = buf; *q; q++)
		if (*q == ')')
			s = q;
	if (!s || s[1] != ' ' || !s[2] || s[3] != ' ')
		return -1;
	pid_t ppid = 0;
	for (s += 4; *s >= '0' && *s <= '9'; s++)
		ppid = ppid * 10 + (*s - '0');
	return ppid;
}

static void child_fail(const struct child_args *a, int errnum)
{
	const char *name = strerrorname_np(errnum);
	if (write(2, a->exec_fail_msg, a->exec_fail_len) < 0 ||
	    write(2, name ? name : "error", strlen(name ? name : "error")) < 0 ||
	    write(2, "\n", 1) < 0) {
		/* nowhere left to report it */
	}
	_exit(127);
}

static __attribute__((noreturn)) void child_exec(const struct child_args *a)
{
	/* If floed dies, so does floe-init, and with PID 1 the namespace. Then
	 * close the race with a parent that died before the prctl. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(127);
	if (a->expect_ppid > 0 && child_read_ppid() != a->expect_ppid)
		_exit(127);

	/* Caught signals reset at execve anyway, but until then a floed
	 * (libuv) handler would run here and write into floed's own signal
	 * pipe; ignored ones (SIGPIPE) would survive execve. All signals are
	 * blocked since before clone3, so no handler can run meanwhile. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* glibc-reserved ones fail: fine */
	sigprocmask(SIG_SETMASK, &a->mask, NULL);

	setsid();
	if (dup2(a->log_w, 1) < 0 || dup2(a->log_w, 2) < 0 || dup2(a->devnull, 0) < 0)
		_exit(127);
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
		/* pre-5.9 kernels: close what a floed could plausibly hold */
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	}
	execve(a->init_path, a->argv, a->envp);
	child_fail(a, errno);
	_exit(127);
}

/* floed's environment with spec->env overriding, as a NULL-terminated
 * array of malloc'd strings. */
static char **build_envp(const struct floe_proc_spec *spec)
{
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	char **envp = xcalloc(n + spec->n_env + 1, sizeof(char *));
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
		int overridden = 0;
		for (size_t i = 0; i < spec->n_env; i++)
			if (strlen(spec->env[i].key) == klen &&
			    memcmp(spec->env[i].key, *e, klen) == 0)
				overridden = 1;
		if (!overridden)
			envp[k++] = xstrdup(*e);
	}
	for (size_t i = 0; i < spec->n_env; i++) {
		/* a key given twice: the last one wins, like a shell */
		int later = 0;
		for (size_t j = i + 1; j < spec->n_env; j++)
			if (strcmp(spec->env[i].key, spec->env[j].key) == 0)
				later = 1;
		if (!later)
			envp[k++] = xasprintf("%s=%s", spec->env[i].key, spec->env[i].value);
	}
	envp[k] = NULL;
	return envp;
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static int open_log(const char *path, uint64_t *size)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	struct stat st;
	*size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return fd;
}

/* One generation: LOG -> LOG.1 (replacing it), then a fresh LOG. */
static void log_rotate(struct floe_proc *p)
{
	char *old = xasprintf("%s.1", p->log_path);
	if (rename(p->log_path, old) < 0) {
		log_perror("rotate %s", p->log_path);
		/* keep the cap even so: start the current file over */
		if (p->log_fd >= 0 && ftruncate(p->log_fd, 0) == 0)
			p->log_bytes = 0;
		free(old);
		return;
	}
	free(old);
	if (p->log_fd >= 0)
		close(p->log_fd);
	p->log_fd = open_log(p->log_path, &p->log_bytes);
	if (p->log_fd < 0)
		log_error("reopen %s: %s", p->log_path, strerror(-p->log_fd));
}

static void log_append(struct floe_proc *p, const char *data, size_t len)
{
	/* Followers see the output even when the file cannot take it. A tap
	 * may detach itself (its client went away) but no other. */
	struct floe_list *pos, *tmp;
	floe_list_for_each_safe(pos, tmp, &p->taps) {
		struct floe_proc_tap *t = container_of(pos, struct floe_proc_tap, link);
		t->on_data(t, data, len);
	}
	while (len > 0) {
		size_t n = len;
		if (p->log_max_bytes > 0) {
			if (p->log_bytes + len > p->log_max_bytes && p->log_bytes > 0)
				log_rotate(p);
			if (p->log_bytes >= p->log_max_bytes)
				p->log_bytes = 0; /* rotation and truncation failed: no underflow */
			if (n > p->log_max_bytes - p->log_bytes)
				n = p->log_max_bytes - p->log_bytes;
		}
		if (p->log_fd < 0)
			return; /* nowhere to write: drop, but keep draining the pipe */
		ssize_t w = write(p->log_fd, data, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			log_perror("write %s", p->log_path);
			return;
		}
		p->log_bytes += (uint64_t)w;
		data += w;
		len -= (size_t)w;
	}
}

/* The read callback consumes each chunk before the next alloc, so one buffer
 * per thread (one loop per thread) serves every replica. */
static _Thread_local char log_chunk[65536];

static void on_log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = log_chunk;
	buf->len = sizeof(log_chunk);
}

static void on_log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct floe_proc *p = container_of((uv_pipe_t *)s, struct floe_proc, log_pipe);
	if (nread > 0) {
		log_append(p, buf->base, (size_t)nread);
	} else if (nread < 0) {
		/* EOF: every writer (the whole replica) is gone. */
		if (nread != UV_EOF)
			log_warn("log pipe of replica %d: %s", (int)p->pid,
				 uv_strerror((int)nread));
		uv_read_stop(s);
	}
}

/* Whatever the replica wrote before it died is in the pipe by now (all its
 * writers are gone once init is reaped): copy it out before closing, so
 * the log is complete when close_cb runs. */
static void log_drain(struct floe_proc *p)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&p->log_pipe, &fd) != 0)
		return;
	for (;;) {
		ssize_t n = read(fd, log_chunk, sizeof(log_chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		log_append(p, log_chunk, (size_t)n);
	}
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
	struct floe_proc *p = container_of(h, struct floe_proc, pidfd_poll);
	int wstatus = 0;
	pid_t w;
	do
		w = waitpid(p->pid, &wstatus, WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w == 0)
		return; /* not reapable yet: wait for the next wakeup */
	if (w < 0) {
		/* Someone reaped it behind our back (waitpid(-1) elsewhere). */
		log_warn("replica %d: waitpid: %s (status unknown)", (int)p->pid, strerror(errno));
		wstatus = 255 << 8;
	}
	uv_poll_stop(h);
	p->exited = 1;
	p->exit_status = wstatus;
	if (p->exit_cb)
		p->exit_cb(p, wstatus);
}

/* Bring loopback up from here too, so that when spawn returns a connect to
 * the replica's 127.0.0.1 is refused (nothing listening yet), never
 * ENETUNREACH (floe-init not there yet). An ioctl acts on the namespace of
 * the socket it is made on. floe-init does the same, for when it runs
 * without us; setting IFF_UP twice is harmless. */
static void loopback_up(struct floe_proc *p)
{
	int fd = floe_netns_socket(p->netns_fd, AF_INET, SOCK_DGRAM);
	if (fd < 0) {
		log_warn("replica %d: socket in its netns: %s", (int)p->pid, strerror(-fd));
		return;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	if (rc < 0)
		log_warn("replica %d: bring up loopback: %s", (int)p->pid, strerror(errno));
	close(fd);
}

/* Kill and reap synchronously: for spawn failures and a close before exit. */
static void kill_and_reap(struct floe_proc *p)
{
	int wstatus = 255 << 8;
	sys_pidfd_send_signal(p->pidfd, SIGKILL);
	while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	p->exited = 1;
	p->exit_status = wstatus;
}

static void proc_reset(struct floe_proc *p, uv_loop_t *loop, uint64_t log_max_bytes,
		       floe_proc_exit_cb exit_cb)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->pid = -1;
	p->pidfd = -1;
	p->netns_fd = -1;
	p->log_fd = -1;
	p->log_r = -1;
	p->exit_cb = exit_cb;
	p->log_max_bytes = log_max_bytes;
	floe_list_init(&p->taps);
}

/* The log file and the pipe the engine writes into. *log_w is blocking and
 * close-on-exec; the read end (p->log_r) is non-blocking, for libuv. */
static int open_log_pipe(struct floe_proc *p, const char *log_path, int *log_w, floe_error *err)
{
	int rc;
	int pipefd[2] = { -1, -1 };
	p->log_path = xstrdup(log_path);
	rc = open_log(p->log_path, &p->log_bytes);
	if (rc < 0)
		return floe_error_set(err, rc, "open log %s: %s", p->log_path, strerror(-rc));
	p->log_fd = rc;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return floe_error_set(err, -errno, "log pipe: %s", strerror(errno));
	pipefd[0] = above_stdio(pipefd[0]);
	pipefd[1] = above_stdio(pipefd[1]);
	if (pipefd[0] < 0 || pipefd[1] < 0) {
		rc = pipefd[0] < 0 ? pipefd[0] : pipefd[1];
		floe_error_set(err, rc, "log pipe: %s", strerror(-rc));
		goto fail;
	}
	struct stat st;
	if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0 || fstat(pipefd[0], &st) < 0) {
		rc = floe_error_set(err, -errno, "log pipe: %s", strerror(errno));
		goto fail;
	}
	p->stdio_ino = (uint64_t)st.st_ino;
	p->log_r = pipefd[0];
	*log_w = pipefd[1];
	return 0;
fail:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

/* Undo a spawn or restore that did not get as far as watching the process. */
static void release_unwatched(struct floe_proc *p)
{
	if (p->log_r >= 0)
		close(p->log_r);
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->log_fd >= 0)
		close(p->log_fd);
	free(p->log_path);
	p->log_path = NULL;
	p->log_r = p->netns_fd = p->pidfd = p->log_fd = -1;
}

/* The process exists (p->pid, p->pidfd): find its netns and start watching
 * its exit and its log pipe. On failure it is killed and reaped. */
static int watch(struct floe_proc *p, floe_error *err)
{
	int rc;
	char nspath[64];
	snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", p->pid);
	p->netns_fd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (p->netns_fd < 0 && errno != ENOENT) {
		rc = floe_error_set(err, -errno, "open %s: %s", nspath, strerror(errno));
		goto fail_kill;
	}
	/* ENOENT: it already died (exec of floe-init failed). Not a start
	 * failure: exit_cb reports it, and the log says why. */
	if (p->netns_fd >= 0)
		loopback_up(p);

	rc = uv_poll_init(p->loop, &p->pidfd_poll, p->pidfd);
	if (rc < 0) {
		floe_error_set(err, rc, "watch pidfd: %s", uv_strerror(rc));
		goto fail_kill;
	}
	/* Cannot fail on a fresh, valid, non-blocking pipe fd that the loop has
	 * never seen, and an initialised handle cannot be undone synchronously. */
	uv_pipe_init(p->loop, &p->log_pipe, 0);
	rc = uv_pipe_open(&p->log_pipe, p->log_r);
	if (rc < 0) {
		log_error("uv_pipe_open on a fresh pipe: %s", uv_strerror(rc));
		abort();
	}
	p->log_r = -1; /* the handle owns it now */
	uv_read_start((uv_stream_t *)&p->log_pipe, on_log_alloc, on_log_read);
	uv_poll_start(&p->pidfd_poll, UV_READABLE, on_pidfd);
	p->watching = true;
	return 0;

fail_kill:
	kill_and_reap(p);
	release_unwatched(p);
	return rc;
}

int floe_proc_spawn(uv_loop_t *loop, struct floe_proc *p, const struct floe_proc_spec *spec,
		    floe_proc_exit_cb exit_cb, floe_error *err)
{
	proc_reset(p, loop, spec->log_max_bytes, exit_cb);
	if (!spec->argv || !spec->argv[0] || !spec->init_path || !spec->log_path)
		return floe_error_set(err, -EINVAL,
				      "replica spec needs argv, init_path and log_path");

	int rc;
	int log_w = -1;
	int devnull = -1;
	struct child_args a;
	memset(&a, 0, sizeof(a));

	rc = open_log_pipe(p, spec->log_path, &log_w, err);
	if (rc < 0)
		goto fail;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		rc = floe_error_set(err, -errno, "open /dev/null: %s", strerror(errno));
		goto fail;
	}
	devnull = above_stdio(devnull);
	if (devnull < 0) {
		rc = floe_error_set(err, devnull, "open /dev/null: %s", strerror(-devnull));
		goto fail;
	}

	size_t argc = 0;
	while (spec->argv[argc])
		argc++;
	a.argv = xcalloc(argc + 3, sizeof(char *));
	a.argv[0] = "floe-init";
	a.argv[1] = "--";
	for (size_t i = 0; i < argc; i++)
		a.argv[i + 2] = spec->argv[i];
	a.envp = build_envp(spec);
	a.init_path = spec->init_path;
	char *msg = xasprintf("floe: exec %s: ", spec->init_path);
	a.exec_fail_msg = msg;
	a.exec_fail_len = strlen(msg);
	a.log_w = log_w;
	a.devnull = devnull;
	a.expect_ppid = proc_self_pid();
	sigemptyset(&a.mask);
	for (size_t i = 0; i < sizeof(init_blocked) / sizeof(init_blocked[0]); i++)
		sigaddset(&a.mask, init_blocked[i]);

	/* Block everything so no floed handler runs in the child before it
	 * resets dispositions. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNET;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0)
		child_exec(&a);
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	/* argv strings belong to the spec; the rest is ours. */
	free(a.argv);
	free_strv(a.envp);
	free(msg);
	close(log_w);
	log_w = -1;
	close(devnull);
	devnull = -1;

	if (pid < 0) {
		rc = floe_error_set(err, -clone_errno,
				    "clone3 (new PID and network namespaces): %s",
				    strerror(clone_errno));
		goto fail;
	}
	p->pid = (pid_t)pid;
	p->pidfd = pidfd;
	rc = watch(p, err);
	if (rc < 0)
		return rc;
	log_debug("replica %d started: %s", p->pid, spec->argv[0]);
	return 0;

fail:
	if (log_w >= 0)
		close(log_w);
	if (devnull >= 0)
		close(devnull);
	release_unwatched(p);
	return rc;
}

int floe_proc_prepare(uv_loop_t *loop, struct floe_proc *p, const char *log_path,
		      uint64_t log_max_bytes, floe_proc_exit_cb exit_cb, int *stdio_w,
		      floe_error *err)
{
	proc_reset(p, loop, log_max_bytes, exit_cb);
	*stdio_w = -1;
	int rc = open_log_pipe(p, log_path, stdio_w, err);
	if (rc < 0)
		release_unwatched(p);
	return rc;
}

int floe_proc_attach(struct floe_proc *p, pid_t pid, floe_error *err)
{
	p->pid = pid;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0) {
		/* Our child, so not reaped yet: pidfd_open cannot miss it
		 * unless the kernel lacks it (< 5.3). Kill it by pid then. */
		int e = errno;
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		release_unwatched(p);
		return floe_error_set(err, -e, "pidfd_open %d: %s", (int)pid, strerror(e));
	}
	fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
	return watch(p, err);
}

void floe_proc_abandon(struct floe_proc *p)
{
	release_unwatched(p);
}

int floe_proc_tap_add(struct floe_proc *p, struct floe_proc_tap *t)
{
	if (!p->watching)
		return -ESRCH;
	t->proc = p;
	floe_list_push(&p->taps, &t->link);
	return 0;
}

void floe_proc_tap_remove(struct floe_proc_tap *t)
{
	if (!t->proc)
		return;
	floe_list_remove(&t->link);
	t->proc = NULL;
}

const char *floe_proc_log_file(const struct floe_proc *p, uint64_t *offset)
{
	*offset = p->log_bytes;
	return p->log_path;
}

/* The output has ended: tell every tap, one at a time (on_end may free it). */
static void taps_end(struct floe_proc *p)
{
	if (!p->taps.next)
		return; /* never reset: a replica that got no process */
	struct floe_list *n;
	while ((n = floe_list_shift(&p->taps))) {
		struct floe_proc_tap *t = container_of(n, struct floe_proc_tap, link);
		t->proc = NULL;
		t->on_end(t);
	}
}

void floe_proc_log_note(struct floe_proc *p, const char *line)
{
	if (p->log_fd >= 0)
		log_append(p, line, strlen(line));
}

int floe_proc_signal(struct floe_proc *p, int sig)
{
	if (p->exited || p->pidfd < 0)
		return -ESRCH;
	return sys_pidfd_send_signal(p->pidfd, sig);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct floe_proc *p;
	if (h->type == UV_POLL)
		p = container_of((uv_poll_t *)h, struct floe_proc, pidfd_poll);
	else
		p = container_of((uv_pipe_t *)h, struct floe_proc, log_pipe);
	if (--p->pending_closes > 0)
		return;
	/* The pipe's fd went with its handle; the poll does not own the pidfd. */
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	if (p->log_fd >= 0)
		close(p->log_fd);
	p->pidfd = p->netns_fd = p->log_fd = -1;
	free(p->log_path);
	p->log_path = NULL;
	/* Here, in the loop's close phase, rather than in floe_proc_close: a
	 * follower's on_end answers its client, which may start the next
	 * request on that connection, and that must not run inside the exit
	 * handling of the replica that called floe_proc_close. */
	taps_end(p);
	if (p->close_cb)
		p->close_cb(p);
}

void floe_proc_close(struct floe_proc *p, floe_proc_close_cb close_cb)
{
	p->close_cb = close_cb;
	if (!p->exited) {
		/* Misuse, handled safely: the contract is signal, wait for exit_cb,
		 * then close. This blocks the loop until the namespace is gone. */
		log_warn("replica %d closed while running: killing it", (int)p->pid);
		uv_poll_stop(&p->pidfd_poll);
		kill_and_reap(p);
	}
	log_drain(p);
	p->watching = false; /* no new followers: the output has ended */
	p->pending_closes = 2;
	uv_close((uv_handle_t *)&p->pidfd_poll, on_handle_closed);
	uv_close((uv_handle_t *)&p->log_pipe, on_handle_closed);
}
