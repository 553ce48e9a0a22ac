/*
 * Workload: files shared between the processes of a tree, as a pre-fork
 * server has them. After go every process uses them and checks what only
 * one shared object (not a copy per process) can give.
 *
 *   root ── a          pipe root->a with 3000 bytes unread; a seqpacket socketpair root<->a
 *    │                 with messages queued both ways; one description of a file (one offset)
 *    │                 written by both; an eventfd and an epoll set watching it, both shared;
 *    │                 a memfd, each with a description of its own (one inode after restore)
 *    ├── w1, w2, w3    a TCP listener the root made and closed: each worker accepts one client
 *    ├── c1            the write end of a pipe made by the root, which closed it: 1000 bytes unread
 *    └── c2            its read end
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

#define P1_BYTES    3000
#define P2_BYTES    1000
#define SEED_P1	    0x5a1e
#define SEED_P2	    0x51b
#define EPOLL_DATA  0xfeedull
#define EPOLL2_DATA 0xbeefull
#define WORKERS	    3

static int p1[2], sp[2], file_fd, efd = -1, epfd = -1, lsn, p2[2], ready_pipe[2], efd2 = -1, epfd2 = -1;
/* argv[2] "no-eventfd": kernels whose fdinfo cannot tell an eventfd's state (Linux 6.1) leave them out. */
static bool with_eventfd = true;
static int mfd;
#define SEED_MEMFD  0x3e3f
#define MEMFD_BYTES 2048
static pid_t a_pid, workers[WORKERS], c1_pid, c2_pid;
static struct stat lsn_st, p2_st;

/* Blocks until @len bytes came or @fd ends; a bounded wait, so that a lost writer fails instead of hanging. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 20000) != 1)
			return -2;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Whether this process holds any fd to the inode of @st (it must not once restored). */
static bool holds(const struct stat *st)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false;

	while (d && (de = readdir(d))) {
		struct stat o;
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (!fstat(fd, &o) && o.st_dev == st->st_dev && o.st_ino == st->st_ino)
			found = true;
	}
	if (d)
		closedir(d);
	return found;
}

static void expect_msg(int fd, const char *want, const char *who)
{
	char buf[64] = "";
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	wl_expect(n == (ssize_t)strlen(want) && !memcmp(buf, want, strlen(want)),
		  "%s: message \"%.*s\" (%zd bytes), expected \"%s\"", who, n > 0 ? (int)n : 0, buf, n, want);
}

static void send_msg(int fd, const char *msg)
{
	if (send(fd, msg, strlen(msg), 0) != (ssize_t)strlen(msg))
		wl_fail("cannot send \"%s\": %m", msg);
}

static void child_ready(void)
{
	char c = 'r';

	if (write(ready_pipe[1], &c, 1) != 1)
		wl_die("cannot report ready: %m");
	close(ready_pipe[1]);
	close(ready_pipe[0]);
}

/* The root's first child: the other end of everything the root keeps. */
static void run_a(void)
{
	uint64_t one = 2, val;
	struct epoll_event ev;
	uint8_t buf[P1_BYTES + 8];
	ssize_t n;
	off_t off;

	close(p1[1]);
	close(sp[0]);
	close(epfd2);
	{
		/* A description of our own of the root's memfd. */
		char path[64];
		int own;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
		own = open(path, O_RDWR);
		if (own < 0)
			wl_die("a: cannot open the memfd again: %m");
		close(mfd);
		mfd = own;
	}
	/* Before ready: 50 bytes through the shared file, 2 onto the eventfd, one message to the root. */
	memset(buf, 'a', 50);
	if (write(file_fd, buf, 50) != 50 || (with_eventfd && write(efd, &one, sizeof(one)) != sizeof(one)))
		wl_die("a: cannot write: %m");
	send_msg(sp[1], "a-before");
	child_ready();
	wl_wait_go();

	expect_msg(sp[1], "root-before-1", "a");
	expect_msg(sp[1], "root-before-2", "a");
	n = read_full(p1[0], buf, sizeof(buf));
	wl_expect(n == P1_BYTES + 1, "a: read %zd bytes from the root's pipe, expected %d and then its end", n,
		  P1_BYTES + 1);
	if (n == P1_BYTES + 1) {
		wl_expect_data("the pipe's unread data", buf, P1_BYTES, SEED_P1);
		wl_expect(buf[P1_BYTES] == 'X', "a: the root's byte after go is %#x", buf[P1_BYTES]);
	}
	/* The root wrote 10 bytes at the shared offset: ours moved with it. */
	expect_msg(sp[1], "wrote", "a");
	off = lseek(file_fd, 0, SEEK_CUR);
	wl_expect(off == 160, "a: the shared file offset is %lld, expected 160 (100 + 50 + the root's 10)",
		  (long long)off);
	memset(buf, 'A', 10);
	wl_expect(write(file_fd, buf, 10) == 10, "a: cannot write the file: %m");
	/* What the root wrote into the memfd through its description shows through ours: one inode. */
	wl_expect(pread(mfd, buf, MEMFD_BYTES, 0) == MEMFD_BYTES && !memcmp(buf, "ROOT", 4),
		  "a: the memfd does not hold what the root wrote (\"%.4s\")", buf);
	wl_expect_data("the memfd's tail", buf + 8, MEMFD_BYTES - 8, SEED_MEMFD);
	if (!with_eventfd) {
		send_msg(sp[1], "evdone");
		expect_msg(sp[1], "bye", "a");
		exit(wl_finish());
	}
	/* The epoll set we share with the root sees the eventfd we share with it. */
	n = epoll_wait(epfd, &ev, 1, 0);
	wl_expect(n == 1 && ev.data.u64 == EPOLL_DATA && (ev.events & EPOLLIN),
		  "a: the shared epoll reported %zd events (data %#llx), expected the eventfd's", n,
		  (unsigned long long)ev.data.u64);
	val = 3;
	wl_expect(write(efd, &val, sizeof(val)) == sizeof(val), "a: cannot add to the eventfd: %m");
	/* The root's epoll watches an eventfd only we still hold. */
	val = 1;
	wl_expect(write(efd2, &val, sizeof(val)) == sizeof(val), "a: cannot add to the second eventfd: %m");
	send_msg(sp[1], "evdone");
	/* Our eventfd must stay open until the root looked at its epoll: the registration dies with the file. */
	expect_msg(sp[1], "bye", "a");
	exit(wl_finish());
}

static void run_worker(int i)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int c, me;

	child_ready();
	wl_wait_go();
	c = accept(lsn, (struct sockaddr *)&sa, &len);
	wl_expect(c >= 0, "worker %d: accept on the inherited listener failed: %m", i);
	me = (int)getpid();
	if (c >= 0 && write(c, &me, sizeof(me)) != sizeof(me))
		wl_fail("worker %d: cannot answer: %m", i);
	if (c >= 0)
		close(c);
	wl_expect(!holds(&p2_st), "worker %d holds the siblings' pipe", i);
	exit(wl_finish());
}

/* What only the root and a share. */
static void close_roots(void)
{
	close(p1[1]);
	close(sp[0]);
	close(file_fd);
	close(efd);
	close(epfd);
	close(efd2);
	close(epfd2);
	close(mfd);
}

static void run_c1(void)
{
	uint8_t buf[2 * P2_BYTES];

	close_roots();
	close(p2[0]);
	wl_fill(buf, sizeof(buf), SEED_P2);
	if (write(p2[1], buf, P2_BYTES) != P2_BYTES)
		wl_die("c1: cannot write: %m");
	child_ready();
	wl_wait_go();
	wl_expect(write(p2[1], buf + P2_BYTES, P2_BYTES) == P2_BYTES, "c1: cannot write after go: %m");
	close(p2[1]);
	exit(wl_finish());
}

static void run_c2(void)
{
	uint8_t buf[2 * P2_BYTES + 8];
	ssize_t n;

	close_roots();
	close(p2[1]);
	child_ready();
	wl_wait_go();
	/* Everything c1 wrote, then the end: nobody else (the root) may hold the write end. */
	n = read_full(p2[0], buf, sizeof(buf));
	wl_expect(n == 2 * P2_BYTES, "c2: read %zd bytes and the end from its sibling's pipe, expected %d", n,
		  2 * P2_BYTES);
	if (n == 2 * P2_BYTES)
		wl_expect_data("the siblings' pipe", buf, (size_t)n, SEED_P2);
	exit(wl_finish());
}

static pid_t spawn(void (*fn)(void))
{
	pid_t p = fork();

	if (p < 0)
		wl_die("fork: %m");
	if (p == 0)
		fn();
	return p;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	uint8_t buf[P1_BYTES];
	char path[PATH_MAX];
	pid_t seen[WORKERS];
	uint64_t five = 5, val = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EPOLL_DATA };
	int status, nchildren = 0;
	off_t off;

	wl_init(argc, argv, 0, "[no-eventfd]");
	with_eventfd = !(argc > 2 && !strcmp(argv[2], "no-eventfd"));
	if (pipe2(ready_pipe, O_CLOEXEC))
		wl_die("pipe: %m");

	/* root <-> a */
	wl_path(path, "shared.dat");
	if (pipe(p1) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
		wl_die("pipe/socketpair: %m");
	file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (file_fd < 0)
		wl_die("cannot create %s: %m", path);
	if (with_eventfd) {
		efd = eventfd(0, 0);
		epfd = epoll_create1(0);
		if (efd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev))
			wl_die("eventfd/epoll: %m");
		efd2 = eventfd(0, 0);
		epfd2 = epoll_create1(0);
		ev.data.u64 = EPOLL2_DATA;
		if (efd2 < 0 || epfd2 < 0 || epoll_ctl(epfd2, EPOLL_CTL_ADD, efd2, &ev) ||
		    write(efd, &five, sizeof(five)) != sizeof(five))
			wl_die("eventfd/epoll: %m");
	}
	memset(buf, 'r', 100);
	if (write(file_fd, buf, 100) != 100)
		wl_die("cannot write: %m");
	mfd = memfd_create("wl-files-share", 0);
	memcpy(buf, "zzzzzzzz", 8);
	wl_fill(buf + 8, MEMFD_BYTES - 8, SEED_MEMFD);
	if (mfd < 0 || write(mfd, buf, MEMFD_BYTES) != MEMFD_BYTES)
		wl_die("memfd: %m");

	a_pid = spawn(run_a);
	nchildren++;
	close(p1[0]);
	close(sp[1]);
	/* Only a holds it now; our epoll still watches it. */
	if (efd2 >= 0)
		close(efd2);
	efd2 = -1;

	/* Made after a was forked: a never holds them. */
	lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 8) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &salen) || fstat(lsn, &lsn_st))
		wl_die("listener: %m");
	if (pipe(p2) || fstat(p2[0], &p2_st))
		wl_die("pipe: %m");

	for (int i = 0; i < WORKERS; i++) {
		pid_t p = fork();

		if (p < 0)
			wl_die("fork: %m");
		if (p == 0) {
			close_roots();
			close(p2[0]);
			close(p2[1]);
			run_worker(i);
		}
		workers[i] = p;
		nchildren++;
	}
	close(lsn);
	c1_pid = spawn(run_c1);
	c2_pid = spawn(run_c2);
	nchildren += 2;
	close(p2[0]);
	close(p2[1]);

	/* Before ready: 3000 bytes into a's pipe, two messages to a. */
	wl_fill(buf, sizeof(buf), SEED_P1);
	if (write(p1[1], buf, sizeof(buf)) != sizeof(buf))
		wl_die("cannot fill the pipe: %m");
	send_msg(sp[0], "root-before-1");
	send_msg(sp[0], "root-before-2");
	close(ready_pipe[1]);
	for (int i = 0; i < nchildren; i++) {
		char c;

		if (read(ready_pipe[0], &c, 1) != 1)
			wl_die("a child died before it was ready");
	}
	close(ready_pipe[0]);
	/* a wrote its 50 bytes and its 2 before it was ready. */
	wl_ready();
	wl_wait_go();

	if (write(p1[1], "X", 1) != 1)
		wl_fail("root: cannot write to a's pipe: %m");
	close(p1[1]);
	expect_msg(sp[0], "a-before", "root");
	off = lseek(file_fd, 0, SEEK_CUR);
	wl_expect(off == 150, "root: the shared file offset is %lld, expected 150 (100 + a's 50)", (long long)off);
	memset(buf, 'R', 10);
	wl_expect(write(file_fd, buf, 10) == 10, "root: cannot write the file: %m");
	wl_expect(pwrite(mfd, "ROOT", 4, 0) == 4, "root: cannot write the memfd: %m");
	send_msg(sp[0], "wrote");
	expect_msg(sp[0], "evdone", "root");
	wl_expect(!with_eventfd || (read(efd, &val, sizeof(val)) == sizeof(val) && val == 10),
		  "root: the shared eventfd holds %llu, expected 10 (5 + a's 2 before and 3 after)",
		  (unsigned long long)val);
	{
		struct epoll_event got = { 0 };
		int n = with_eventfd ? epoll_wait(epfd2, &got, 1, 0) : 1;

		wl_expect(!with_eventfd || (n == 1 && got.data.u64 == EPOLL2_DATA),
			  "root: its epoll reported %d events (data %#llx), expected the eventfd only a holds", n,
			  (unsigned long long)got.data.u64);
		send_msg(sp[0], "bye");
	}
	off = lseek(file_fd, 0, SEEK_CUR);
	wl_expect(off == 170, "root: the shared file offset is %lld after a wrote, expected 170", (long long)off);

	/* Each worker accepts one client on the listener they share. */
	for (int i = 0; i < WORKERS; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), pid = 0;

		seen[i] = 0;
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa))) {
			wl_fail("root: cannot connect to the workers' listener: %m");
		} else if (read_full(c, &pid, sizeof(pid)) != sizeof(pid)) {
			wl_fail("root: no worker answered client %d", i);
		} else {
			seen[i] = pid;
			for (int k = 0; k < i; k++)
				wl_expect(seen[k] != pid, "root: worker %d answered twice", pid);
		}
		if (c >= 0)
			close(c);
	}
	for (int i = 0; i < WORKERS; i++) {
		bool found = false;

		for (int k = 0; k < WORKERS; k++)
			found |= seen[k] == workers[i];
		wl_expect(found, "root: worker %d accepted nobody", (int)workers[i]);
	}
	wl_expect(!holds(&lsn_st), "root holds the listener it closed");
	wl_expect(!holds(&p2_st), "root holds the siblings' pipe it closed");

	{
		pid_t all[] = { a_pid, workers[0], workers[1], workers[2], c1_pid, c2_pid };

		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
			if (waitpid(all[i], &status, 0) != all[i])
				wl_fail("root: cannot reap %d: %m", (int)all[i]);
			else
				wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
					  "root: child %d ended with status %#x", (int)all[i], status);
		}
	}
	return wl_finish();
}
