/*
 * Workload: holds one file descriptor the engine must refuse to dump, and
 * checks after go that it is still there and works: the refused dump must
 * have left it alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "wl.h"

/*
 * Usage: wl-files-refuse CTLDIR MODE [PATH]
 *   io_uring bpf perf userfaultfd fanotify pidfd netlink packet  one such fd
 *   lock       a file with flock(LOCK_EX) held
 *   tty        a pseudo-terminal master
 *   scm        a unix socket with a file descriptor in flight
 *   inotify-pending  an inotify instance with an event not read yet
 *   unix-outside PATH  a connection to the unix listener the test holds at PATH
 *   fifo-outside PATH  the write end of the FIFO at PATH, which the test holds open too
 *   udp-outside  a UDP socket on 127.0.0.1 (port in CTLDIR/udp-port) the test sends a datagram to
 */

static const char *mode;
static int fd = -1, peer = -1;
static char path[PATH_MAX];

static void must(bool ok, const char *what)
{
	if (!ok)
		wl_die("%s: %s: %m", mode, what);
}

static void setup(const char *arg)
{
	if (!strcmp(mode, "io_uring")) {
		struct io_uring_params p = { 0 };

		fd = (int)syscall(SYS_io_uring_setup, 4, &p);
	} else if (!strcmp(mode, "bpf")) {
		union bpf_attr a = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1 };

		fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	} else if (!strcmp(mode, "perf")) {
		struct perf_event_attr a = { .size = sizeof(a),
					     .type = PERF_TYPE_SOFTWARE,
					     .config = PERF_COUNT_SW_TASK_CLOCK,
					     .exclude_kernel = 1 };

		fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
	} else if (!strcmp(mode, "userfaultfd")) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	} else if (!strcmp(mode, "fanotify")) {
		fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
	} else if (!strcmp(mode, "pidfd")) {
		fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	} else if (!strcmp(mode, "netlink")) {
		struct sockaddr_nl nl = { .nl_family = AF_NETLINK };

		fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
		must(fd >= 0 && bind(fd, (struct sockaddr *)&nl, sizeof(nl)) == 0, "bind");
	} else if (!strcmp(mode, "packet")) {
		fd = socket(AF_PACKET, SOCK_DGRAM, 0);
	} else if (!strcmp(mode, "lock")) {
		wl_path(path, "locked");
		fd = open(path, O_RDWR | O_CREAT, 0600);
		must(fd >= 0 && flock(fd, LOCK_EX) == 0, "flock");
	} else if (!strcmp(mode, "tty")) {
		fd = posix_openpt(O_RDWR | O_NOCTTY);
	} else if (!strcmp(mode, "scm")) {
		int sv[2], passed = open("/dev/null", O_RDONLY);
		char c = 'f', cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { &c, 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)
		};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		must(passed >= 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passed, sizeof(int));
		must(sendmsg(sv[0], &mh, 0) == 1, "sendmsg");
		close(passed);
		fd = sv[1];
		peer = sv[0];
	} else if (!strcmp(mode, "inotify-pending")) {
		wl_path(path, "watched");
		must(mkdir(path, 0700) == 0, "mkdir");
		fd = inotify_init1(IN_NONBLOCK);
		must(fd >= 0 && inotify_add_watch(fd, path, IN_CREATE) > 0, "inotify");
		wl_path(path, "watched/new");
		must(close(open(path, O_WRONLY | O_CREAT, 0600)) == 0, "create");
	} else if (!strcmp(mode, "unix-outside")) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (!arg || strlen(arg) >= sizeof(sa.sun_path))
			wl_die("unix-outside needs the listener's path");
		strcpy(sa.sun_path, arg);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		must(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
	} else if (!strcmp(mode, "fifo-outside")) {
		if (!arg)
			wl_die("fifo-outside needs the FIFO's path");
		fd = open(arg, O_WRONLY);
	} else if (!strcmp(mode, "udp-outside")) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);
		char num[16];
		FILE *f;

		fd = socket(AF_INET, SOCK_DGRAM, 0);
		must(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
			     getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
		     "bind");
		snprintf(num, sizeof(num), "%d\n", ntohs(sa.sin_port));
		wl_path(path, "udp-port");
		f = fopen(path, "w");
		must(f && fputs(num, f) >= 0 && fclose(f) == 0, "udp-port");
	} else {
		wl_die("unknown mode %s", mode);
	}
	must(fd >= 0, "create");
}

static void check(void)
{
	struct stat st;

	wl_expect(fcntl(fd, F_GETFD) >= 0 && fstat(fd, &st) == 0, "%s: fd %d is gone: %m", mode, fd);
	if (!strcmp(mode, "pidfd")) {
		wl_expect(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0, "pidfd: does not work: %m");
	} else if (!strcmp(mode, "lock")) {
		int other = open(path, O_RDWR);

		wl_expect(other >= 0 && flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
			  "lock: the lock is no longer held");
	} else if (!strcmp(mode, "tty")) {
		wl_expect(ptsname(fd) != NULL, "tty: no terminal behind the master");
	} else if (!strcmp(mode, "scm")) {
		char c, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &c, 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)
		};
		struct cmsghdr *cm;

		wl_expect(recvmsg(fd, &mh, MSG_DONTWAIT) == 1 && (cm = CMSG_FIRSTHDR(&mh)) &&
				  cm->cmsg_type == SCM_RIGHTS,
			  "scm: the descriptor in flight is gone");
	} else if (!strcmp(mode, "inotify-pending")) {
		char buf[4096];

		wl_expect(read(fd, buf, sizeof(buf)) > 0, "inotify-pending: the pending event is gone");
	} else if (!strcmp(mode, "unix-outside")) {
		wl_expect(send(fd, "still here", 10, MSG_NOSIGNAL) == 10, "unix-outside: the connection is gone: %m");
	} else if (!strcmp(mode, "fifo-outside")) {
		wl_expect(write(fd, "still here", 10) == 10, "fifo-outside: the FIFO is gone: %m");
	} else if (!strcmp(mode, "udp-outside")) {
		char buf[8];

		wl_expect(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 1 && buf[0] == 'u',
			  "udp-outside: the datagram from outside is gone");
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "MODE [PATH]");
	mode = argv[2];
	signal(SIGPIPE, SIG_IGN);
	setup(argc > 3 ? argv[3] : NULL);
	wl_ready();
	wl_wait_go();
	check();
	(void)peer;
	return wl_finish();
}
