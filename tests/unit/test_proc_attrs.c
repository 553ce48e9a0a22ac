/* Unit tests of the /proc parsers the attributes use: POSIX timers, lock lines, /proc/locks, status Seccomp. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

static FILE *text(const char *s)
{
	FILE *f = fmemopen((void *)s, strlen(s), "r");

	cr_assert_not_null(f, "fmemopen: %s", strerror(errno));
	return f;
}

static int timers_of(const char *s, struct proc_posix_timer **v, size_t *n, int *bad)
{
	FILE *f = text(s);
	int r = proc_parse_posix_timers(f, v, n, bad);

	fclose(f);
	return r;
}

Test(posix_timers, every_kind)
{
	static const char sample[] = "ID: 4713\n"
				     "signal: 14/0000000000001269\n"
				     "notify: signal/pid.15995\n"
				     "ClockID: -6\n"
				     "ID: 4712\n"
				     "signal: 10/1234567890abcdef\n"
				     "notify: signal/tid.15996\n"
				     "ClockID: 0\n"
				     "ID: 0\n"
				     "signal: 0/0000000000000000\n"
				     "notify: none/pid.15995\n"
				     "ClockID: 7\n";
	struct proc_posix_timer *v = NULL;
	size_t n = 0;
	int bad = -1;

	cr_assert_eq(timers_of(sample, &v, &n, &bad), 0);
	cr_assert_eq(n, 3);
	cr_expect(v[0].id == 4713 && v[0].signo == 14 && v[0].sigval == 0x1269 && v[0].notify == PROC_SIGEV_SIGNAL &&
		  v[0].target == 15995 && v[0].clock_id == -6);
	cr_expect(v[1].id == 4712 && v[1].signo == 10 && v[1].sigval == 0x1234567890abcdefull &&
		  v[1].notify == (PROC_SIGEV_SIGNAL | PROC_SIGEV_THREAD_ID) && v[1].target == 15996 &&
		  v[1].clock_id == 0);
	cr_expect(v[2].id == 0 && v[2].notify == PROC_SIGEV_NONE && v[2].clock_id == 7);
	free(v);
}

Test(posix_timers, empty)
{
	struct proc_posix_timer *v = NULL;
	size_t n = 1;
	int bad;

	cr_assert_eq(timers_of("", &v, &n, &bad), 0);
	cr_expect_eq(n, 0);
	free(v);
}

Test(posix_timers, malformed)
{
	static const struct {
		const char *text;
		int line;
	} cases[] = {
		{ "ID: x\n", 1 },
		{ "ID: 1\nsignal: 99/0\nnotify: signal/pid.1\nClockID: 0\n", 2 },
		{ "ID: 1\nsignal: 10/zz\nnotify: signal/pid.1\nClockID: 0\n", 2 },
		{ "ID: 1\nsignal: 10/0\nnotify: bogus/pid.1\nClockID: 0\n", 3 },
		{ "ID: 1\nsignal: 10/0\nnotify: signal/xid.1\nClockID: 0\n", 3 },
		{ "ID: 1\nsignal: 10/0\nnotify: signal/pid.1\nClockID: -\n", 4 },
		{ "ID: 1\nsignal: 10/0\nnotify: signal/pid.1\n", 4 },
		{ "ID: 1\nnotify: signal/pid.1\n", 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proc_posix_timer *v = NULL;
		size_t n = 0;
		int bad = 0;

		cr_expect_eq(timers_of(cases[i].text, &v, &n, &bad), -EINVAL, "case %zu parsed", i);
		cr_expect_eq(bad, cases[i].line, "case %zu: bad line %d, expected %d", i, bad, cases[i].line);
	}
}

/* The kernel's own listing of this process's timers parses, ids and all. */
Test(posix_timers, live)
{
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 3 };
	struct proc_posix_timer *v = NULL;
	timer_t id;
	size_t n = 0;
	FILE *f;
	int bad;

	ev.sigev_value.sival_ptr = (void *)0x5eed;
	cr_assert_eq(timer_create(CLOCK_MONOTONIC, &ev, &id), 0);
	f = fopen("/proc/self/timers", "re");
	cr_assert_not_null(f);
	cr_assert_eq(proc_parse_posix_timers(f, &v, &n, &bad), 0, "bad line %d", bad);
	fclose(f);
	cr_assert_geq(n, 1);
	cr_expect(v[0].id == (int)(long)id && v[0].signo == SIGRTMIN + 3 && v[0].sigval == 0x5eed &&
		  v[0].target == getpid() && v[0].clock_id == CLOCK_MONOTONIC);
	free(v);
	timer_delete(id);
}

static int fd_locks_of(const char *s, struct proc_file_lock **v, size_t *n, int *bad)
{
	FILE *f = text(s);
	int r = proc_parse_fd_locks(f, v, n, bad);

	fclose(f);
	return r;
}

Test(fd_locks, every_kind)
{
	static const char sample[] = "pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t10969476\n"
				     "lock:\t1: POSIX  ADVISORY  WRITE 15995 fe:00:10969476 10 19\n"
				     "lock:\t2: POSIX  ADVISORY  READ 15995 fe:00:10969476 100 EOF\n"
				     "lock:\t3: FLOCK  ADVISORY  READ 15995 08:1f:42 0 EOF\n"
				     "lock:\t4: OFDLCK ADVISORY  WRITE -1 fe:00:10969505 0 99\n"
				     "lock:\t5: LEASE  ACTIVE    READ 15995 fe:00:10969505 0 EOF\n";
	struct proc_file_lock *v = NULL;
	size_t n = 0;
	int bad = 0;

	cr_assert_eq(fd_locks_of(sample, &v, &n, &bad), 0, "bad line %d", bad);
	cr_assert_eq(n, 5);
	cr_expect(v[0].kind == PROC_LOCK_POSIX && v[0].write && v[0].pid == 15995 && v[0].dev_major == 0xfe &&
		  v[0].dev_minor == 0 && v[0].ino == 10969476 && v[0].start == 10 && v[0].end == 19 && !v[0].to_eof);
	cr_expect(v[1].kind == PROC_LOCK_POSIX && !v[1].write && v[1].start == 100 && v[1].to_eof);
	cr_expect(v[2].kind == PROC_LOCK_FLOCK && !v[2].write && v[2].dev_major == 8 && v[2].dev_minor == 0x1f &&
		  v[2].ino == 42);
	cr_expect(v[3].kind == PROC_LOCK_OFD && v[3].write && v[3].pid == -1 && v[3].start == 0 && v[3].end == 99);
	cr_expect(v[4].kind == PROC_LOCK_OTHER && !strcmp(v[4].kind_name, "LEASE"));
	free(v);
}

Test(fd_locks, malformed)
{
	static const char *const cases[] = {
		"lock:\t1: POSIX  ADVISORY  SHOUT 1 fe:00:1 0 EOF\n",
		"lock:\t1: POSIX  ADVISORY  READ x fe:00:1 0 EOF\n",
		"lock:\t1: POSIX  ADVISORY  READ 1 fe00:1 0 EOF\n",
		"lock:\t1: POSIX  ADVISORY  READ 1 fe:00:1 9 3\n",
		"lock:\t1: POSIX  ADVISORY  READ 1 fe:00:1 0 EOF trailing\n",
		"lock:\t1: POSIX  BOGUS  READ 1 fe:00:1 0 EOF\n",
		"lock:\tPOSIX  ADVISORY  READ 1 fe:00:1 0 EOF\n",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proc_file_lock *v = NULL;
		size_t n = 0;
		int bad = 0;

		cr_expect_eq(fd_locks_of(cases[i], &v, &n, &bad), -EINVAL, "case %zu parsed", i);
		cr_expect_eq(bad, 1, "case %zu: bad line %d", i, bad);
	}
}

/* A lock this process takes shows in its own fdinfo and in /proc/locks as the parsers read them. */
Test(fd_locks, live)
{
	char path[] = "/tmp/snap-unit-lock-XXXXXX", name[64];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 10 };
	struct proc_file_lock *v = NULL;
	struct stat st;
	size_t n = 0;
	bool found = false;
	int fd = mkstemp(path), bad;
	FILE *f;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", fd);
	f = fopen(name, "re");
	cr_assert_not_null(f);
	cr_assert_eq(proc_parse_fd_locks(f, &v, &n, &bad), 0, "bad line %d", bad);
	fclose(f);
	cr_assert_eq(n, 1);
	cr_expect(v[0].kind == PROC_LOCK_OFD && v[0].write && v[0].start == 5 && v[0].end == 14 &&
		  v[0].ino == st.st_ino && v[0].dev_major == major(st.st_dev) && v[0].dev_minor == minor(st.st_dev));
	free(v);
	v = NULL;
	f = fopen("/proc/locks", "re");
	cr_assert_not_null(f);
	cr_assert_eq(proc_parse_locks(f, &v, &n, &bad), 0, "bad line %d", bad);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		found |= v[i].kind == PROC_LOCK_OFD && v[i].ino == st.st_ino && v[i].start == 5;
	cr_expect(found, "/proc/locks does not list our lock");
	free(v);
	close(fd);
}

Test(proc_locks, waiters_left_out)
{
	static const char sample[] = "1: POSIX  ADVISORY  WRITE 4241 fe:00:77 0 EOF\n"
				     "1: -> POSIX  ADVISORY  WRITE 4242 fe:00:77 0 EOF\n"
				     "2: FLOCK  ADVISORY  WRITE 4243 fe:00:78 0 EOF\n";
	struct proc_file_lock *v = NULL;
	size_t n = 0;
	int bad = 0;
	FILE *f = text(sample);

	cr_assert_eq(proc_parse_locks(f, &v, &n, &bad), 0, "bad line %d", bad);
	fclose(f);
	cr_assert_eq(n, 2);
	cr_expect(v[0].pid == 4241 && v[1].pid == 4243 && v[1].kind == PROC_LOCK_FLOCK);
	free(v);
}

Test(status, seccomp_mode)
{
	struct proc_status st;
	FILE *f = fopen("/proc/self/status", "re");

	cr_assert_not_null(f);
	cr_assert_eq(proc_parse_status(f, &st), 0);
	fclose(f);
	cr_expect_eq(st.seccomp, 0, "this test does not run under seccomp, yet Seccomp reads %d", st.seccomp);
}
