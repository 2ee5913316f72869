/*
 * floe-init: PID 1 of a replica's PID namespace.
 *
 *     floe-init -- ENGINE [ARGS...]
 *
 * Brings loopback up in the (fresh) network namespace, starts the engine in
 * its own process group, forwards termination-style signals to that group,
 * reaps every child (PID 1 inherits the namespace's orphans) and exits with
 * the engine's status: its exit code, or 128+signal. When PID 1 of a PID
 * namespace exits the kernel kills whatever is left in it, so the engine's
 * exit ends the replica.
 *
 * Deliberately libc-only and tiny: it sits in every replica's process tree
 * and, in later issues, in every CRIU snapshot of one. It prints nothing
 * unless something fails (its stderr is the replica's log).
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals a supervisor sends to stop, reload or poke an engine. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	int rc = 0;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		rc = -errno;
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

static int status_to_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc) {
		fprintf(stderr, "usage: floe-init -- ENGINE [ARGS...]\n");
		return 2;
	}
	char **engine = argv + i;

	/* Handle signals synchronously: block them and take them with
	 * sigwaitinfo. Blocked signals are queued even though PID 1 of a
	 * namespace ignores default-disposition signals. floed already starts
	 * us with these blocked, so nothing sent early is lost. */
	sigset_t set, old;
	sigemptyset(&set);
	for (size_t k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++)
		sigaddset(&set, forwarded[k]);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);

	int rc = loopback_up();
	if (rc < 0) {
		fprintf(stderr, "floe-init: bring up loopback: %s\n", strerror(-rc));
		return 1;
	}

	pid_t engine_pid = fork();
	if (engine_pid < 0) {
		fprintf(stderr, "floe-init: fork: %s\n", strerror(errno));
		return 1;
	}
	if (engine_pid == 0) {
		/* Own process group, so a forwarded signal reaches the engine's
		 * helpers too (a shell's foreground child, worker processes). */
		setpgid(0, 0);
		sigdelset(&old, SIGCHLD);
		for (size_t k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++)
			sigdelset(&old, forwarded[k]);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(engine[0], engine);
		fprintf(stderr, "floe-init: exec %s: %s\n", engine[0], strerror(errno));
		_exit(127);
	}
	/* Also set it from this side: whichever runs first, the group exists
	 * before we forward a signal to it. EACCES after the exec is harmless. */
	setpgid(engine_pid, engine_pid);

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "floe-init: sigwaitinfo: %s\n", strerror(errno));
			return 1;
		}
		if (sig != SIGCHLD) {
			/* The group is gone once the engine and its helpers left;
			 * fall back to the engine itself (it may be a zombie). */
			if (kill(-engine_pid, sig) < 0 && errno == ESRCH)
				kill(engine_pid, sig);
			continue;
		}
		/* SIGCHLD coalesces: reap everything that is ready. */
		for (;;) {
			int status;
			pid_t w = waitpid(-1, &status, WNOHANG);
			if (w <= 0)
				break;
			if (w == engine_pid)
				return status_to_code(status);
		}
	}
}
