/*
 * Sockets created inside another network namespace.
 *
 * A socket belongs to the network namespace it was created in, for its whole
 * life, whatever namespace the thread later moves to. So floed reaches a
 * replica's 127.0.0.1:PORT by switching this thread into the replica's
 * namespace just long enough to call socket(), then switching back; the fd is
 * then used from floed's own namespace (uv_tcp_open + uv_tcp_connect).
 *
 * setns(CLONE_NEWNET) is per thread and allowed in a multi-threaded process
 * (unlike user or mount namespaces), and needs CAP_SYS_ADMIN, which floed has
 * as it creates the namespaces in the first place.
 */
#define LOG_TAG "netns"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

/* This thread's own network namespace, opened on first use. Per thread,
 * because setns() is per thread: each thread returns to where it started. */
static _Thread_local int home_netns_fd = -1;

static int open_home(void)
{
	if (home_netns_fd < 0) {
		int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		home_netns_fd = fd;
	}
	return 0;
}

static void go_home(void)
{
	if (setns(home_netns_fd, CLONE_NEWNET) < 0) {
		/* Every later socket, listener and connection of this thread
		 * would silently live in a replica's namespace: stop here. */
		log_perror("cannot return to floed's network namespace");
		abort();
	}
}

int floe_netns_new(void)
{
	int rc = open_home();
	if (rc < 0)
		return rc;
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	rc = ns < 0 ? -errno : 0;
	if (rc == 0) {
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
		    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0))
			rc = -errno;
		if (s >= 0)
			close(s);
	}
	go_home();
	if (rc < 0) {
		if (ns >= 0)
			close(ns);
		return rc;
	}
	return ns;
}

int floe_netns_socket(int netns_fd, int domain, int type)
{
	if (netns_fd < 0)
		return -EBADF;
	int orc = open_home();
	if (orc < 0)
		return orc;

	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc = fd < 0 ? -errno : fd;
	go_home();
	return rc;
}
