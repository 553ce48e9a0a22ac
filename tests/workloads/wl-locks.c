/*
 * Workload: file locks of every kind held through its fds: an exclusive
 * and a shared flock, a POSIX write lock on a range and a read lock to
 * the end of the file, and OFD write and read locks. After go a child
 * process probes from outside that each is held, and only where it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

static int open_ctl(const char *name, int flags)
{
	char path[PATH_MAX];
	int fd;

	wl_path(path, name);
	fd = open(path, flags | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("cannot open %s: %m", path);
	if (ftruncate(fd, 1000) && (flags & O_ACCMODE) != O_RDONLY)
		wl_die("cannot size %s: %m", path);
	return fd;
}

static void lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	if (fcntl(fd, cmd, &fl))
		wl_die("fcntl lock %d..+%lld failed: %m", (int)start, (long long)len);
}

static void setup(void)
{
	int fd;

	fd = open_ctl("exclusive", O_RDWR);
	if (flock(fd, LOCK_EX))
		wl_die("flock failed: %m");
	fd = open_ctl("shared", O_RDONLY);
	if (flock(fd, LOCK_SH))
		wl_die("flock failed: %m");
	fd = open_ctl("posix", O_RDWR);
	lock(fd, F_SETLK, F_WRLCK, 10, 10);
	lock(fd, F_SETLK, F_RDLCK, 100, 0);
	fd = open_ctl("ofd", O_RDWR);
	lock(fd, F_OFD_SETLK, F_WRLCK, 0, 100);
	lock(fd, F_OFD_SETLK, F_RDLCK, 200, 100);
}

/* In the child: what does a lock test of @type on [start, start+len) find? */
static void probe(const char *name, int cmd, short type, off_t start, off_t len, short want_type, off_t want_start,
		  off_t want_len, pid_t want_pid)
{
	char path[PATH_MAX];
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	int fd;

	wl_path(path, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, cmd, &fl)) {
		wl_fail("%s: lock test failed: %m", name);
	} else if (fl.l_type != want_type) {
		wl_fail("%s: a %s test at %lld finds type %d, expected %d", name, type == F_WRLCK ? "write" : "read",
			(long long)start, fl.l_type, want_type);
	} else if (want_type != F_UNLCK) {
		wl_expect(fl.l_start == want_start && fl.l_len == want_len && fl.l_pid == want_pid,
			  "%s: the lock found at %lld is %lld+%lld of pid %d, expected %lld+%lld of pid %d", name,
			  (long long)start, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid, (long long)want_start,
			  (long long)want_len, want_pid);
	}
	if (fd >= 0)
		close(fd);
}

static void probe_flock(const char *name, int op, bool want_ok)
{
	char path[PATH_MAX];
	int fd, r;

	wl_path(path, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd >= 0 ? flock(fd, op | LOCK_NB) : -1;
	wl_expect(want_ok ? r == 0 : (r == -1 && errno == EWOULDBLOCK), "%s: flock(%s) %s", name,
		  op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", r ? "is refused" : "succeeds");
	if (fd >= 0)
		close(fd);
}

static void check(void)
{
	pid_t parent = getpid(), child;
	int status;

	child = fork();
	if (child < 0) {
		wl_fail("fork failed: %m");
		return;
	}
	if (child == 0) {
		probe_flock("exclusive", LOCK_SH, false);
		probe_flock("shared", LOCK_SH, true);
		probe_flock("shared", LOCK_EX, false);
		probe("posix", F_GETLK, F_RDLCK, 15, 1, F_WRLCK, 10, 10, parent);
		probe("posix", F_GETLK, F_WRLCK, 500, 1, F_RDLCK, 100, 0, parent);
		probe("posix", F_GETLK, F_RDLCK, 500, 1, F_UNLCK, 0, 0, 0);
		probe("posix", F_GETLK, F_WRLCK, 30, 50, F_UNLCK, 0, 0, 0);
		probe("ofd", F_OFD_GETLK, F_RDLCK, 99, 1, F_WRLCK, 0, 100, -1);
		probe("ofd", F_OFD_GETLK, F_WRLCK, 250, 10, F_RDLCK, 200, 100, -1);
		probe("ofd", F_OFD_GETLK, F_RDLCK, 250, 10, F_UNLCK, 0, 0, 0);
		probe("ofd", F_OFD_GETLK, F_WRLCK, 100, 100, F_UNLCK, 0, 0, 0);
		_exit(wl_failures() ? 1 : 0);
	}
	if (waitpid(child, &status, 0) != child)
		wl_fail("waitpid failed: %m");
	else
		wl_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the probing child found locks missing");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "");
	setup();
	wl_ready();
	wl_wait_go();
	check();
	return wl_finish();
}
