/*
 * Many copies of one snapshot at once: each restored into a PID namespace
 * of its own (same PIDs as in the image, an init of the engine's as PID 1)
 * and, for servers, a network namespace of its own where it answers on
 * the same 127.0.0.1 port as the original.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(namespaces);

#define WL_HTTP	   "wl-http-echo-pid"
#define WL_COMM	   "wl-http-echo-pi" /* what /proc/PID/comm shows: 15 characters */
#define MAX_COPIES 20

/* One answer of wl-http-echo-pid. */
struct answer {
	int pid;
	char init[17], now[17];
	unsigned long hits;
};

static int read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 10000) != 1)
			return -ETIMEDOUT;
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || (got += (size_t)n) == cap - 1)
			break;
	}
	buf[got] = '\0';
	return (int)got;
}

/*
 * GET / from 127.0.0.1:@port, seen from the network namespace @netns (a
 * path; NULL: ours). A forked child enters it, so this process stays where
 * it is. Returns 0 with the body, or why not (the child's errno).
 */
static int http_get(const char *netns, int port, char *body, size_t cap)
{
	int pipefd[2], status, r;
	char buf[4096], *b;
	pid_t child;

	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
		int nsfd, fd;
		ssize_t n;

		close(pipefd[0]);
		if (netns) {
			nsfd = open(netns, O_RDONLY | O_CLOEXEC);
			if (nsfd < 0 || setns(nsfd, CLONE_NEWNET))
				_exit(100 + errno);
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			_exit(100 + errno);
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != sizeof(req) - 1)
			_exit(100 + errno);
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			if (write(pipefd[1], buf, (size_t)n) != n)
				_exit(99);
		_exit(n < 0 ? 100 + errno : 0);
	}
	close(pipefd[1]);
	r = read_all(pipefd[0], buf, sizeof(buf));
	close(pipefd[0]);
	if (h_wait_pid(child, 10000, &status))
		return -ETIMEDOUT;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 100)
		return -(WEXITSTATUS(status) - 100);
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return r < 0 ? r : -EIO;
	b = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.0 200 ", 13) || !b)
		return -EPROTO;
	snprintf(body, cap, "%s", b + 4);
	return 0;
}

static void parse(const char *body, struct answer *a)
{
	cr_assert(sscanf(body, "pid %d init %16s now %16s hits %lu", &a->pid, a->init, a->now, &a->hits) == 4,
		  "malformed answer '%s'", body);
}

/* GET through the namespace of copy @init (its network namespace is its init's) and parse the answer. */
static void get_copy(pid_t init, int port, struct answer *a)
{
	char path[64], body[512];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)init);
	r = http_get(path, port, body, sizeof(body));
	cr_assert(r == 0, "copy with init %d: no answer on 127.0.0.1:%d in its namespace: %s", (int)init, port,
		  strerror(-r));
	parse(body, a);
}

/*
 * Processes named @comm in PID namespaces below ours (NSpid has more than
 * one pid): the copies' and nothing of other tests running on the machine.
 */
static int count_nested(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	cr_assert(d);
	while ((e = readdir(d))) {
		char path[300], *s, *name, *ns;

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		s = h_read_file(path, NULL);
		if (!s)
			continue;
		name = strstr(s, "Name:\t");
		ns = strstr(s, "\nNSpid:\t");
		if (name && ns && !strncmp(name + 6, comm, strlen(comm)) && name[6 + strlen(comm)] == '\n' &&
		    strchr(ns + 9, '\t') && strchr(ns + 9, '\t') < strchr(ns + 9, '\n'))
			n++;
		free(s);
	}
	closedir(d);
	return n;
}

/* Restores one copy through the library and returns what the caller gets: the init's pid. */
static pid_t restore_copy(const char *imgdir, unsigned flags, const char *netns)
{
	struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir, .flags = flags, .netns_path = netns };
	snap_ctx *ctx;
	pid_t pid = 0;
	int r;

	H_OK(h_ctx_new(&ctx));
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r == 0, "restore of a copy failed (%d): %s", r, snap_error(ctx));
	snap_ctx_free(ctx);
	cr_assert(pid > 0);
	return pid;
}

/* The copy's root, seen from here: the init's only child. Its pid inside is the last of NSpid. */
static void root_of(pid_t init, pid_t *ret_outer, pid_t *ret_inner)
{
	char path[96], *s, *ns;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	s = h_read_file(path, &len);
	if (!s || atoi(s) <= 0) {
		int status = 0;
		pid_t r = waitpid(init, &status, WNOHANG);

		cr_assert(0, "init %d has no child (%s)", (int)init,
			  r == init ? h_describe_status(status, (char[64]){ 0 }, 64) : "the init still runs");
	}
	*ret_outer = atoi(s);
	free(s);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)*ret_outer);
	s = h_read_file(path, &len);
	cr_assert(s && (ns = strstr(s, "\nNSpid:")), "no NSpid for %d", (int)*ret_outer);
	ns[strcspn(ns + 1, "\n") + 1] = '\0';
	*ret_inner = atoi(strrchr(ns, '\t') ? strrchr(ns, '\t') + 1 : ns);
	free(s);
}

static void kill_copy(pid_t init)
{
	int status;

	cr_assert(kill(init, SIGKILL) == 0, "init %d: %m", (int)init);
	H_OK(h_wait_pid(init, 10000, &status));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Starts the server, takes one answer from the original (hits 1), and dumps it (which kills it). */
static int start_and_dump(struct h_wl *w, char *imgdir, struct answer *orig)
{
	const char *const args[] = { "0", NULL };
	char body[512], *port;
	int p;

	H_OK(h_start(w, WL_HTTP, args));
	port = h_read_ctl(w, "port", NULL);
	cr_assert(port && (p = atoi(port)) > 0, "no port from " WL_HTTP);
	free(port);
	cr_assert(http_get(NULL, p, body, sizeof(body)) == 0, "the original does not answer");
	parse(body, orig);
	cr_assert(orig->pid == w->orig_pid && orig->hits == 1 && !strcmp(orig->init, orig->now), "original: '%s'",
		  body);
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(w, imgdir, 0, NULL));
	return p;
}

/* The check a copy's first answer must pass: it is the original, one request later. */
static void expect_copy(pid_t init, const struct answer *orig, const struct answer *a)
{
	cr_assert(a->pid == orig->pid, "copy %d: getpid() %d, the image's pid is %d", (int)init, a->pid, orig->pid);
	cr_assert(!strcmp(a->init, orig->init), "copy %d: init checksum %s, the original's %s", (int)init, a->init,
		  orig->init);
	cr_assert(!strcmp(a->now, orig->init), "copy %d: memory checksum %s now, %s at init", (int)init, a->now,
		  orig->init);
	cr_assert(a->hits == 2, "copy %d: %lu requests served, the original had served 1", (int)init, a->hits);
}

/* Untouched, the server answers with its pid and counts requests; go makes it check its memory and exit 0. */
Test(namespaces, http_nocr)
{
	struct h_wl w = { 0 };
	const char *const args[] = { "0", NULL };
	struct answer a, b;
	char body[512], *port;

	H_OK(h_start(&w, WL_HTTP, args));
	port = h_read_ctl(&w, "port", NULL);
	cr_assert(port);
	cr_assert(http_get(NULL, atoi(port), body, sizeof(body)) == 0);
	parse(body, &a);
	cr_assert(http_get(NULL, atoi(port), body, sizeof(body)) == 0);
	parse(body, &b);
	free(port);
	cr_assert(a.pid == w.pid && a.hits == 1 && b.hits == 2 && !strcmp(a.init, a.now) && !strcmp(a.init, b.init));
	H_OK(h_finish(&w));
}

/*
 * Three copies of one snapshot, restored one after the other without
 * ending the earlier ones: all run at once, each with the image's pid,
 * each answering on the same port in a network namespace of its own with
 * the state of the original, and each counting its own requests.
 */
Test(namespaces, copies_run_at_once)
{
	struct h_wl w = { 0 };
	struct answer orig, a[3], again;
	char imgdir[PATH_MAX], body[512];
	pid_t init[3];
	int port, status;

	port = start_and_dump(&w, imgdir, &orig);
	for (int i = 0; i < 3; i++)
		init[i] = restore_copy(imgdir, SNAP_RESTORE_PIDNS | SNAP_RESTORE_NETNS, NULL);
	for (int i = 0; i < 3; i++) {
		pid_t outer, inner;

		get_copy(init[i], port, &a[i]);
		expect_copy(init[i], &orig, &a[i]);
		root_of(init[i], &outer, &inner);
		cr_assert(inner == w.orig_pid && outer != w.orig_pid, "copy %d: root is %d outside, %d inside",
			  (int)init[i], (int)outer, (int)inner);
	}
	get_copy(init[0], port, &again);
	cr_assert(again.hits == 3, "copy %d: %lu requests after its second", (int)init[0], again.hits);
	get_copy(init[1], port, &again);
	cr_assert(again.hits == 3, "copy %d shares its count with another", (int)init[1]);
	/* The copies' ports are theirs: nothing listens here any more. */
	cr_assert(http_get(NULL, port, body, sizeof(body)) == -ECONNREFUSED, "something answers in our namespace");
	cr_assert(count_nested(WL_COMM) == 3);

	/* SIGTERM to the init is passed to the root; the init ends as the root did. */
	cr_assert(kill(init[0], SIGTERM) == 0);
	H_OK(h_wait_pid(init[0], 10000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM, "init %d: status 0x%x", (int)init[0],
		  status);
	/* SIGKILL to the init ends the whole copy. */
	kill_copy(init[1]);
	kill_copy(init[2]);
	cr_assert(count_nested(WL_COMM) == 0, "a process of a killed copy is left");
	cr_assert(count_nested("snap-init") == 0);
}

/* Twenty copies of one server restored back to back, all answering at once. */
Test(namespaces, twenty_copies)
{
	struct h_wl w = { 0 };
	struct answer orig, a;
	char imgdir[PATH_MAX];
	pid_t init[MAX_COPIES];
	int port;

	port = start_and_dump(&w, imgdir, &orig);
	for (int i = 0; i < MAX_COPIES; i++)
		init[i] = restore_copy(imgdir, SNAP_RESTORE_PIDNS | SNAP_RESTORE_NETNS, NULL);
	cr_assert(count_nested(WL_COMM) == MAX_COPIES);
	for (int i = 0; i < MAX_COPIES; i++) {
		get_copy(init[i], port, &a);
		expect_copy(init[i], &orig, &a);
	}
	for (int i = 0; i < MAX_COPIES; i++)
		kill_copy(init[i]);
	cr_assert(count_nested(WL_COMM) == 0);
}

/* snapcr restore -d --pidns --netns --pidfile: the pid file names the init, which stands for the copy. */
Test(namespaces, cli)
{
	struct h_wl w = { 0 };
	struct answer orig, a;
	char imgdir[PATH_MAX], dir[PATH_MAX], pidfile[PATH_MAX + 16], out[PATH_MAX + 16], err[PATH_MAX + 16], *s;
	pid_t init, outer, inner;
	int port, status;

	port = start_and_dump(&w, imgdir, &orig);
	H_OK(h_tmpdir(dir, "cli"));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	{
		const char *const argv[] = { h_snapcr_path(), "restore", "-D",	      imgdir,  "-d",
					     "--pidns",	      "--netns", "--pidfile", pidfile, NULL };

		H_OK(h_run_cmd(argv, out, err, 30000, &status));
		s = h_read_file(err, NULL);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapcr restore: status 0x%x: %s", status,
			  s ? s : "");
		free(s);
	}
	s = h_read_file(pidfile, NULL);
	cr_assert(s && (init = atoi(s)) > 0);
	free(s);
	root_of(init, &outer, &inner);
	cr_assert(inner == w.orig_pid);
	get_copy(init, port, &a);
	expect_copy(init, &orig, &a);
	kill_copy(init);
	cr_assert(count_nested(WL_COMM) == 0);
}

/* A process holding a network namespace of the test's, with lo up; its path is /proc/PID/ns/net. */
static pid_t netns_holder(void)
{
	int pipefd[2];
	char c;
	pid_t p;

	cr_assert(pipe2(pipefd, O_CLOEXEC) == 0);
	p = fork();
	cr_assert(p >= 0);
	if (p == 0) {
		struct ifreq ifr = { .ifr_name = "lo" };
		int fd;

		if (unshare(CLONE_NEWNET))
			_exit(1);
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
			_exit(2);
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) || write(pipefd[1], "x", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	cr_assert(read(pipefd[0], &c, 1) == 1, "the namespace holder failed");
	close(pipefd[0]);
	return p;
}

/*
 * --netns-path: the copy joins a namespace the test made and answers
 * there. A second copy in the same namespace cannot listen on the port,
 * which it learns only after its processes exist: the failed restore must
 * leave nothing, and the first copy must not notice.
 */
Test(namespaces, netns_path)
{
	struct h_wl w = { 0 };
	struct answer orig, a;
	char imgdir[PATH_MAX], path[64], body[512];
	struct snap_restore_opts o = { .size = sizeof(o), .flags = SNAP_RESTORE_PIDNS };
	pid_t holder, init, kids[16], pid = 0;
	snap_ctx *ctx;
	int port, r, nkids;

	port = start_and_dump(&w, imgdir, &orig);
	holder = netns_holder();
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)holder);
	init = restore_copy(imgdir, SNAP_RESTORE_PIDNS, path);
	cr_assert(http_get(path, port, body, sizeof(body)) == 0, "no answer in the joined namespace");
	parse(body, &a);
	expect_copy(init, &orig, &a);

	nkids = h_children(kids, 16);
	H_OK(h_ctx_new(&ctx));
	o.images_dir = imgdir;
	o.netns_path = path;
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r < 0, "a second listener on port %d in one namespace was restored", port);
	cr_assert(contains_number(snap_error(ctx), port), "the message does not name the port: %s", snap_error(ctx));
	cr_assert(h_children(kids, 16) == nkids, "a process is left after the failed restore");
	cr_assert(count_nested(WL_COMM) == 1, "the failed copy left a process");
	cr_assert(http_get(path, port, body, sizeof(body)) == 0);
	parse(body, &a);
	cr_assert(a.hits == 3, "the first copy was disturbed");

	/* A namespace that does not exist: refused before anything is made. */
	o.netns_path = "/proc/self/ns/no-such-namespace";
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r == -ENOENT && strstr(snap_error(ctx), o.netns_path), "%d %s", r, snap_error(ctx));
	o.netns_path = "/proc/self/ns/pid";
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r == -EINVAL && strstr(snap_error(ctx), "not a network namespace"), "%d %s", r, snap_error(ctx));
	cr_assert(h_children(kids, 16) == nkids);
	snap_ctx_free(ctx);
	kill_copy(init);
}

/*
 * Puts an orphan into the copy of @init: a process forked into its PID
 * namespace forks one that waits, then exits, so that the waiting one is
 * reparented to the init. Returns the orphan's pid as seen from here.
 */
static pid_t make_orphan(pid_t init, pid_t root_outer)
{
	char path[96], *s, *tok, *save;
	pid_t helper, orphan = 0;
	int status;

	helper = fork();
	cr_assert(helper >= 0);
	if (helper == 0) {
		pid_t child;
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWPID))
			_exit(1);
		child = fork();
		if (child == 0) {
			if (fork() == 0) {
				for (;;)
					pause();
			}
			_exit(0);
		}
		_exit(child > 0 && waitpid(child, &status, 0) == child ? 0 : 2);
	}
	H_OK(h_wait_pid(helper, 10000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "could not fork into the copy: 0x%x", status);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	s = h_read_file(path, NULL);
	cr_assert(s);
	for (tok = strtok_r(s, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (atoi(tok) != root_outer)
			orphan = atoi(tok);
	free(s);
	cr_assert(orphan > 0, "the orphan was not reparented to the init %d", (int)init);
	return orphan;
}

/* Whether @pid is gone for good, reaped, within 10 s (a zombie nobody reaps stays). */
static bool reaped_soon(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 1000; i++) {
		if (access(path, F_OK) && errno == ENOENT)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * --pidns alone, for a workload without sockets: two copies of wl-heap at
 * once, both with the image's pid; go makes each check its memory, and
 * each init ends with its root's exit status 0.
 */
Test(namespaces, heap_twice)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t init[2];
	int status;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	for (int i = 0; i < 2; i++)
		init[i] = restore_copy(imgdir, SNAP_RESTORE_PIDNS, NULL);
	for (int i = 0; i < 2; i++) {
		pid_t outer, inner, orphan;
		char own[64] = "", theirs[64] = "", path[64];

		root_of(init[i], &outer, &inner);
		cr_assert(inner == w.orig_pid, "copy %d: root is %d inside", (int)init[i], (int)inner);
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)outer);
		cr_assert(readlink("/proc/self/ns/pid", own, sizeof(own) - 1) > 0 &&
			  readlink(path, theirs, sizeof(theirs) - 1) > 0 && strcmp(own, theirs));
		/* Without --netns the copy stays in ours. */
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)outer);
		memset(own, 0, sizeof(own));
		memset(theirs, 0, sizeof(theirs));
		cr_assert(readlink("/proc/self/ns/net", own, sizeof(own) - 1) > 0 &&
			  readlink(path, theirs, sizeof(theirs) - 1) > 0 && !strcmp(own, theirs));
		/* The init reaps an orphan of its copy once it ends. */
		orphan = make_orphan(init[i], outer);
		cr_assert(kill(orphan, SIGKILL) == 0);
		cr_assert(reaped_soon(orphan), "copy %d: orphan %d was not reaped", (int)init[i], (int)orphan);
	}
	H_OK(h_go(&w));
	for (int i = 0; i < 2; i++) {
		H_OK(h_wait_pid(init[i], 60000, &status));
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "copy %d: %s", (int)init[i],
			  h_describe_status(status, (char[64]){ 0 }, 64));
	}
}

/*
 * A restore into namespaces that fails once the init and the root exist
 * (premap under a small address-space limit) leaves nothing: no init, no
 * process of the image; a restore without the limit then works.
 */
Test(namespaces, failure_leaves_nothing)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t child, init;
	int status;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		struct rlimit lim = { address_space_bytes() + (64u << 20), RLIM_INFINITY };
		struct snap_restore_opts o = { .size = sizeof(o),
					       .images_dir = imgdir,
					       .flags = SNAP_RESTORE_PIDNS | SNAP_RESTORE_NETNS };
		snap_ctx *ctx;
		pid_t pid = 0;
		int r;

		if (snap_ctx_new(&ctx))
			_exit(10);
		/* Only the soft limit: the image's hard one must stay within ours, or validation refuses it first. */
		if (setrlimit(RLIMIT_AS, &lim))
			_exit(10);
		r = snap_restore(ctx, &o, &pid);
		fprintf(stderr, "restore under RLIMIT_AS: %d %s\n", r, snap_error(ctx));
		if (r == 0)
			_exit(11);
		if (waitpid(-1, NULL, WNOHANG | __WALL) != -1 || errno != ECHILD)
			_exit(12);
		if (count_nested("wl-heap") || count_nested("snap-init"))
			_exit(13);
		if (!contains_number(snap_error(ctx), w.orig_pid))
			_exit(14);
		_exit(0);
	}
	H_OK(h_wait_pid(child, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "restore under a small RLIMIT_AS did not fail cleanly (child status 0x%x: 11 succeeded, 12 a child "
		  "left, 13 a process left, 14 message)",
		  status);
	cr_assert(count_nested("wl-heap") == 0 && count_nested("snap-init") == 0);

	init = restore_copy(imgdir, SNAP_RESTORE_PIDNS | SNAP_RESTORE_NETNS, NULL);
	H_OK(h_go(&w));
	H_OK(h_wait_pid(init, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Two copies at once of @name, restored with --pidns; go makes each check
 * itself, and each init ends with the root's status. @root_parent: the
 * root checks its parent, which in a copy is the init (1), so that check
 * alone, and nothing else, must fail in each copy.
 */
static void twice_in_pidns(const char *name, const char *const *args, bool root_parent)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], want[96], *err, *p;
	pid_t init[2];
	int status, fails = 0;

	H_OK(h_start(&w, name, args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	for (int i = 0; i < 2; i++)
		init[i] = restore_copy(imgdir, SNAP_RESTORE_PIDNS, NULL);
	H_OK(h_go(&w));
	for (int i = 0; i < 2; i++) {
		H_OK(h_wait_pid(init[i], 60000, &status));
		err = h_read_ctl(&w, "stderr", NULL);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == (root_parent ? 1 : 0), "%s copy %d: %s: %s", name,
			  (int)init[i], h_describe_status(status, (char[64]){ 0 }, 64), err);
		free(err);
	}
	if (!root_parent)
		return;
	snprintf(want, sizeof(want), "FAIL: pid %d: parent 1, was %d\n", (int)w.orig_pid, (int)getpid());
	err = h_read_ctl(&w, "stderr", NULL);
	cr_assert(err);
	for (p = strstr(err, "FAIL"); p; p = strstr(p + 1, "FAIL")) {
		cr_assert(!strncmp(p, want, strlen(want)), "unexpected failure in a copy: %s", err);
		fails++;
	}
	cr_assert(fails == 2, "%d failures, expected the root's parent in each copy: %s", fails, err);
	free(err);
}

/* Threads get their tids inside too; the engine follows them by the ids it sees outside. */
Test(namespaces, threads_in_pidns)
{
	static const char *const threads64[] = { "64", NULL };
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];
	pid_t init;
	int status;

	/* Once only: its unix listener is bound to a path, and the file system is not the copy's own. */
	H_OK(h_start(&w, "wl-threads", threads64));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	init = restore_copy(imgdir, SNAP_RESTORE_PIDNS, NULL);
	H_OK(h_go(&w));
	H_OK(h_wait_pid(init, 60000, &status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wl-threads: %s",
		  h_describe_status(status, (char[64]){ 0 }, 64));
}

/* A tree with sessions, groups (one made by a stand-in) and zombies, twice, each with our init as reaper. */
Test(namespaces, tree_twice)
{
	twice_in_pidns("wl-tree", NULL, true);
}

/* Shared memory and copy-on-write pages shared between the processes of each copy, never between copies. */
Test(namespaces, shm_tree_twice)
{
	twice_in_pidns("wl-shm-tree", NULL, false);
}
