/* Unit tests of the fdinfo parsers of event objects (fixed samples and live ones) and of the dump's arena. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "arena.h"
#include "proc-fdinfo.h"

/* What 6.x kernels print, tabs and alignment spaces as they are. */
static const char eventfd_text[] = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\n"
				   "eventfd-count:                5\neventfd-id: 4\neventfd-semaphore: 1\n";

Test(fdinfo, eventfd)
{
	struct fdinfo_eventfd ev;
	int bad = -1;

	cr_assert_eq(fdinfo_parse_eventfd(eventfd_text, &ev, &bad), 0);
	cr_assert_eq(ev.count, 5);
	cr_assert(ev.semaphore);
	cr_assert_eq(fdinfo_parse_eventfd("eventfd-count: ffffffffffffffff\neventfd-semaphore: 0\n", &ev, NULL), 0);
	cr_assert_eq(ev.count, UINT64_MAX);
	cr_assert(!ev.semaphore);
	/* Before 6.6 there was no semaphore line: that is unknown, not "no". */
	cr_assert_eq(fdinfo_parse_eventfd("eventfd-count: 3\n", &ev, NULL), -ENOENT);
	cr_assert_eq(fdinfo_parse_eventfd("eventfd-count: 3x\neventfd-semaphore: 0\n", &ev, &bad), -EINVAL);
	cr_assert_eq(bad, 1);
	cr_assert_eq(fdinfo_parse_eventfd("eventfd-count: 1ffffffffffffffff\neventfd-semaphore: 0\n", &ev, NULL),
		     -EINVAL, "overflow");
	cr_assert_eq(fdinfo_parse_eventfd("eventfd-count: 3\neventfd-semaphore: 2\n", &ev, &bad), -EINVAL);
	cr_assert_eq(bad, 2);
}

Test(fdinfo, signalfd)
{
	uint64_t mask = 0;

	cr_assert_eq(fdinfo_parse_signalfd("pos:\t0\nsigmask:\t0000000800000200\n", &mask, NULL), 0);
	cr_assert_eq(mask, 0x0000000800000200ull);
	cr_assert_eq(fdinfo_parse_signalfd("pos:\t0\n", &mask, NULL), -ENOENT);
	cr_assert_eq(fdinfo_parse_signalfd("sigmask:\tzz\n", &mask, NULL), -EINVAL);
}

Test(fdinfo, timerfd)
{
	static const char text[] = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nclockid: 1\nticks: 7\n"
				   "settime flags: 01\nit_value: (3599, 999000123)\nit_interval: (3600, 0)\n";
	struct fdinfo_timerfd t;
	int bad = 0;

	cr_assert_eq(fdinfo_parse_timerfd(text, &t, NULL), 0);
	cr_assert_eq(t.clockid, 1);
	cr_assert_eq(t.ticks, 7);
	cr_assert_eq(t.settime_flags, 1);
	cr_assert_eq(t.value_sec, 3599);
	cr_assert_eq(t.value_nsec, 999000123);
	cr_assert_eq(t.interval_sec, 3600);
	cr_assert_eq(t.interval_nsec, 0);
	cr_assert_eq(fdinfo_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 0)\n", &t, NULL),
		     -ENOENT, "no it_interval");
	cr_assert_eq(
		fdinfo_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 09\nit_value: (0, 0)\nit_interval: (0, 0)\n",
				     &t, &bad),
		-EINVAL, "9 is not octal");
	cr_assert_eq(bad, 3);
	cr_assert_eq(
		fdinfo_parse_timerfd("clockid: 1\nticks: 0\nsettime flags: 0\nit_value: (0 0)\nit_interval: (0, 0)\n",
				     &t, &bad),
		-EINVAL);
	cr_assert_eq(bad, 4);
}

Test(fdinfo, epoll)
{
	static const char text[] = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n"
				   "tfd:        3 events: 80000019 data:             1234  pos:0 ino:40e sdev:10\n"
				   "tfd:      105 events:       1c data: ffffffffffffffff  pos:77 ino:1 sdev:fe00000\n"
				   "tfd:        7 events:        1 data:                0\n";
	struct fdinfo_epoll_tfd *t = NULL;
	size_t nr = 0;
	int bad = 0;

	cr_assert_eq(fdinfo_parse_epoll(text, &t, &nr, NULL), 0);
	cr_assert_eq(nr, 3);
	cr_assert_eq(t[0].tfd, 3);
	cr_assert_eq(t[0].events, 0x80000019u);
	cr_assert_eq(t[0].data, 0x1234);
	cr_assert_eq(t[0].ino, 0x40e);
	cr_assert_eq(t[0].sdev, 0x10);
	cr_assert_eq(t[1].tfd, 105);
	cr_assert_eq(t[1].data, UINT64_MAX);
	cr_assert_eq(t[1].pos, 77);
	cr_assert_eq(t[1].sdev, 0xfe00000u);
	cr_assert_eq(t[2].tfd, 7, "the old format without pos, ino and sdev");
	free(t);
	cr_assert_eq(fdinfo_parse_epoll("pos:\t0\n", &t, &nr, NULL), 0);
	cr_assert_eq(nr, 0);
	free(t);
	cr_assert_eq(fdinfo_parse_epoll("pos:\t0\ntfd: 3 events: 1 data: zz\n", &t, &nr, &bad), -EINVAL);
	cr_assert_eq(bad, 2);
	cr_assert_eq(fdinfo_parse_epoll("tfd: 3 events: 1ffffffff data: 0\n", &t, &nr, NULL), -EINVAL,
		     "events overflow");
	cr_assert_eq(fdinfo_parse_epoll("tfd: 3 events: 1 data: 0 pos:x\n", &t, &nr, NULL), -EINVAL);
}

Test(fdinfo, inotify)
{
	static const char text[] = "pos:\t0\nflags:\t00\nmnt_id:\t17\nino:\t1038\n"
				   "inotify wd:2 ino:35d sdev:fe00000 mask:80000002 ignored_mask:0 fhandle-bytes:8 "
				   "fhandle-type:1 f_handle:5d03000000000000\n"
				   "inotify wd:1 ino:3c51a sdev:fe00000 mask:300 ignored_mask:0\n";
	struct fdinfo_inotify_wd *w = NULL;
	size_t nr = 0;
	int bad = 0;

	cr_assert_eq(fdinfo_parse_inotify(text, &w, &nr, NULL), 0);
	cr_assert_eq(nr, 2);
	cr_assert_eq(w[0].wd, 2);
	cr_assert_eq(w[0].ino, 0x35d);
	cr_assert_eq(w[0].sdev, 0xfe00000u);
	cr_assert_eq(w[0].mask, 0x80000002u);
	cr_assert_eq(w[0].fhandle_bytes, 8);
	cr_assert_eq(w[0].fhandle_type, 1);
	cr_assert_eq(w[0].fhandle[0], 0x5d);
	cr_assert_eq(w[0].fhandle[1], 0x03);
	cr_assert_eq(w[1].wd, 1);
	cr_assert_eq(w[1].fhandle_bytes, 0, "no handle printed");
	free(w);
	cr_assert_eq(fdinfo_parse_inotify("inotify wd:1 ino:1 sdev:0 mask:1 ignored_mask:0 fhandle-bytes:4 "
					  "fhandle-type:1 f_handle:0102\n",
					  &w, &nr, &bad),
		     -EINVAL, "handle shorter than its length");
	cr_assert_eq(bad, 1);
	cr_assert_eq(fdinfo_parse_inotify("inotify wd:1 ino:1 sdev:0 mask:1 ignored_mask:0 fhandle-bytes:81 "
					  "fhandle-type:1 f_handle:00\n",
					  &w, &nr, NULL),
		     -EINVAL, "handle longer than any");
	cr_assert_eq(fdinfo_parse_inotify("inotify wd:1 ino:1 sdev:0\n", &w, &nr, NULL), -EINVAL, "line cut short");
}

/* The parsers on what this kernel prints for objects of our own. */
static char *own_fdinfo(int fd)
{
	static char buf[8192];
	char path[64];
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	cr_assert(f >= 0);
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	cr_assert(n > 0);
	buf[n] = '\0';
	return buf;
}

Test(fdinfo, live)
{
	struct itimerspec its = { .it_value = { 100, 0 }, .it_interval = { 7, 0 } };
	struct fdinfo_eventfd ev;
	struct fdinfo_timerfd t;
	struct fdinfo_epoll_tfd *tfds;
	struct fdinfo_inotify_wd *wds;
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = 0xabc };
	uint64_t mask;
	sigset_t set;
	size_t nr;
	int efd = eventfd(9, EFD_SEMAPHORE), sfd, tfd, ep, in;

	/* Linux 6.1 does not show an eventfd's counter and mode in fdinfo. */
	if (!strstr(own_fdinfo(efd), "eventfd-semaphore:"))
		cr_skip_test("this kernel's fdinfo does not show an eventfd's counter and mode");

	cr_assert_eq(fdinfo_parse_eventfd(own_fdinfo(efd), &ev, NULL), 0);
	cr_assert(ev.count == 9 && ev.semaphore);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sfd = signalfd(-1, &set, 0);
	cr_assert_eq(fdinfo_parse_signalfd(own_fdinfo(sfd), &mask, NULL), 0);
	cr_assert_eq(mask, 1ull << (SIGUSR2 - 1));
	tfd = timerfd_create(CLOCK_BOOTTIME, 0);
	cr_assert(tfd >= 0 && timerfd_settime(tfd, 0, &its, NULL) == 0);
	cr_assert_eq(fdinfo_parse_timerfd(own_fdinfo(tfd), &t, NULL), 0);
	cr_assert(t.clockid == CLOCK_BOOTTIME && t.interval_sec == 7 && t.value_sec <= 100 && t.ticks == 0);
	ep = epoll_create1(0);
	cr_assert(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e) == 0);
	cr_assert_eq(fdinfo_parse_epoll(own_fdinfo(ep), &tfds, &nr, NULL), 0);
	cr_assert(nr == 1 && tfds[0].tfd == efd && tfds[0].data == 0xabc && (tfds[0].events & EPOLLIN));
	free(tfds);
	in = inotify_init1(0);
	cr_assert(inotify_add_watch(in, "/", IN_CREATE) == 1);
	cr_assert_eq(fdinfo_parse_inotify(own_fdinfo(in), &wds, &nr, NULL), 0);
	cr_assert(nr == 1 && wds[0].wd == 1 && wds[0].mask == IN_CREATE);
	free(wds);
	close(efd);
	close(sfd);
	close(tfd);
	close(ep);
	close(in);
}

Test(arena, push_and_alloc)
{
	struct arena a = { 0 };
	void **v = NULL;
	size_t nr = 0;
	char *big;

	for (size_t i = 0; i < 1000; i++)
		cr_assert_eq(arena_push(&a, &v, &nr, (void *)(i + 1)), 0);
	cr_assert_eq(nr, 1000);
	for (size_t i = 0; i < 1000; i++)
		cr_assert_eq(v[i], (void *)(i + 1), "item %zu moved", i);
	big = arena_alloc(&a, 1 << 20);
	cr_assert_not_null(big);
	cr_assert_eq(big[12345], 0, "arena memory is zeroed");
	cr_assert_str_eq(arena_strdup(&a, "abc"), "abc");
	cr_assert_eq(((uintptr_t)arena_alloc(&a, 3)) % 16, 0, "aligned");
	arena_free(&a);
	cr_assert_null(a.head);
}
