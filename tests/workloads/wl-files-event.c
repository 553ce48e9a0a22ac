/*
 * Workload: event objects. eventfds (a 64-bit counter; a semaphore),
 * a signalfd and its mask, timerfds (armed one-shot, an expired periodic
 * one not read yet, an absolute wall-clock one, a disarmed one), an inotify
 * instance with watches (and a gap in their numbers), and epolls watching
 * all of that: edge-triggered, one-shot already fired, a target whose fd
 * number was closed, and an epoll inside an epoll.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define BIG_COUNT 12345678901ull
#define HOUR	  3600

enum {
	D_EV = 0x1111,
	D_PIPE = 0x2222,
	D_TICK = 0x3333,
	D_ONESHOT = 0x4444,
	D_MOVED = 0x5555,
	D_INNER = 0x6666,
};

static int ev, sem, sfd, t_once, t_tick, t_abs, t_off, ino, ep, ep2, pp[2], sk[2], moved, moved_tfd;
static int wd_dir, wd_file, wd_sub;
static char wdir[PATH_MAX], wfile[PATH_MAX], wsub[PATH_MAX];

static void must(bool ok, const char *what)
{
	if (!ok)
		wl_die("%s: %m", what);
}

static void add(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };

	must(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) == 0, "epoll_ctl");
}

static void setup(void)
{
	struct itimerspec its = { 0 };
	struct epoll_event evs[16];
	struct pollfd pfd;
	struct timespec now;
	uint64_t one = 1;
	sigset_t mask;
	int fd, tmp;

	ev = eventfd(0, 0);
	must(ev >= 0 && write(ev, &(uint64_t){ BIG_COUNT }, 8) == 8, "eventfd");
	sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	must(sem >= 0, "eventfd semaphore");

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGRTMIN + 3);
	must(sigprocmask(SIG_BLOCK, &mask, NULL) == 0, "sigprocmask");
	sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	must(sfd >= 0, "signalfd");

	t_once = timerfd_create(CLOCK_MONOTONIC, 0);
	its.it_value.tv_sec = HOUR;
	must(t_once >= 0 && timerfd_settime(t_once, 0, &its, NULL) == 0, "timerfd one-shot");
	/* Expires once right away, then every hour: one expiration waits to be read. */
	t_tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	its.it_value = (struct timespec){ 0, 1000000 };
	its.it_interval.tv_sec = HOUR;
	must(t_tick >= 0 && timerfd_settime(t_tick, 0, &its, NULL) == 0, "timerfd periodic");
	pfd = (struct pollfd){ .fd = t_tick, .events = POLLIN };
	must(poll(&pfd, 1, 10000) == 1, "waiting for the periodic timer");
	t_abs = timerfd_create(CLOCK_REALTIME, 0);
	clock_gettime(CLOCK_REALTIME, &now);
	its = (struct itimerspec){ .it_value = { now.tv_sec + 2 * HOUR, 0 } };
	must(t_abs >= 0 && timerfd_settime(t_abs, TFD_TIMER_ABSTIME, &its, NULL) == 0, "timerfd absolute");
	t_off = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	must(t_off >= 0, "timerfd disarmed");

	/* Watches 1 and 2, then 3 made and removed (a gap), then 4. Not CTLDIR: ready and go appear there. */
	wl_path(wdir, "w");
	wl_path(wfile, "w/watched");
	wl_path(wsub, "sub");
	must(mkdir(wdir, 0700) == 0 && mkdir(wsub, 0700) == 0, "mkdir");
	fd = open(wfile, O_WRONLY | O_CREAT, 0600);
	must(fd >= 0 && close(fd) == 0, "create watched");
	ino = inotify_init1(IN_NONBLOCK);
	must(ino >= 0, "inotify_init1");
	wd_dir = inotify_add_watch(ino, wdir, IN_CREATE | IN_DELETE);
	wd_file = inotify_add_watch(ino, wfile, IN_MODIFY | IN_ONESHOT);
	tmp = inotify_add_watch(ino, "/", IN_ACCESS);
	must(wd_dir > 0 && wd_file > 0 && tmp > 0 && inotify_rm_watch(ino, tmp) == 0, "inotify watches");
	wd_sub = inotify_add_watch(ino, wsub, IN_ATTRIB);
	must(wd_sub > tmp, "inotify watch after the gap");
	{
		char drain[4096];

		/* The removal queued IN_IGNORED: read it, nothing may be pending at the dump. */
		while (read(ino, drain, sizeof(drain)) > 0)
			;
	}

	must(pipe(pp) == 0 && write(pp[1], "p", 1) == 1, "pipe");
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sk) == 0, "socketpair");
	ep = epoll_create1(0);
	must(ep >= 0, "epoll_create1");
	add(ep, ev, EPOLLIN, D_EV);
	add(ep, pp[0], EPOLLIN | EPOLLET, D_PIPE);
	add(ep, t_tick, EPOLLIN, D_TICK);
	add(ep, sk[0], EPOLLOUT | EPOLLONESHOT, D_ONESHOT);
	/* Registered as one fd number, then moved to another: the registration keeps the old number. */
	moved = eventfd(1, 0);
	moved_tfd = moved;
	add(ep, moved, EPOLLIN, D_MOVED);
	moved = dup(moved);
	must(moved >= 0 && close(moved_tfd) == 0, "dup");
	/* Fire the one-shot (and see the others once). */
	must(epoll_wait(ep, evs, 16, 1000) > 0, "epoll_wait");
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	must(ep2 >= 0, "epoll_create1");
	add(ep2, ep, EPOLLIN, D_INNER);
	(void)one;
}

static void check_timer(int fd, const char *what, long min_s, long max_s, long interval_s)
{
	struct itimerspec its;

	if (timerfd_gettime(fd, &its)) {
		wl_fail("%s: timerfd_gettime: %m", what);
		return;
	}
	wl_expect((its.it_value.tv_sec > min_s || (its.it_value.tv_sec == min_s && its.it_value.tv_nsec > 0) ||
		   (min_s < 0)) &&
			  its.it_value.tv_sec <= max_s,
		  "%s: %lld.%09ld s left, expected more than %ld and at most %ld", what, (long long)its.it_value.tv_sec,
		  its.it_value.tv_nsec, min_s, max_s);
	wl_expect(its.it_interval.tv_sec == interval_s && its.it_interval.tv_nsec == 0,
		  "%s: interval %lld, expected %ld", what, (long long)its.it_interval.tv_sec, interval_s);
}

static bool has_event(const struct epoll_event *evs, int n, uint64_t data)
{
	for (int i = 0; i < n; i++)
		if (evs[i].data.u64 == data)
			return true;
	return false;
}

static void check(void)
{
	struct signalfd_siginfo si;
	struct epoll_event evs[16];
	struct inotify_event *ie;
	char ibuf[4096], path[PATH_MAX + 32], *fdinfo;
	uint64_t v = 0;
	int n, fd;

	/* Poll first: a lost counter would leave the read blocked forever. */
	wl_expect(poll(&(struct pollfd){ .fd = ev, .events = POLLIN }, 1, 0) == 1 && read(ev, &v, 8) == 8 &&
			  v == BIG_COUNT,
		  "eventfd counter %llu, expected %llu", (unsigned long long)v, BIG_COUNT);
	for (int i = 0; i < 3; i++)
		wl_expect(read(sem, &v, 8) == 8 && v == 1, "semaphore eventfd read %d: %llu", i, (unsigned long long)v);
	wl_expect(read(sem, &v, 8) < 0 && errno == EAGAIN, "semaphore eventfd: count above 3 or not O_NONBLOCK");

	wl_expect(read(sfd, &si, sizeof(si)) < 0 && errno == EAGAIN, "signalfd: a signal out of nowhere");
	raise(SIGUSR1);
	wl_expect(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1, "signalfd did not read SIGUSR1");
	kill(getpid(), SIGRTMIN + 3);
	wl_expect(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == (uint32_t)SIGRTMIN + 3,
		  "signalfd did not read SIGRTMIN+3");

	/* Epoll before the timers: reading the periodic one takes what epoll sees. */
	n = epoll_wait(ep2, evs, 16, 0);
	wl_expect(n == 1 && evs[0].data.u64 == D_INNER, "the outer epoll does not see the inner one ready (%d)", n);
	n = epoll_wait(ep, evs, 16, 0);
	wl_expect(n > 0, "epoll: nothing ready: %m");
	wl_expect(has_event(evs, n, D_TICK), "epoll: the timer is not ready");
	wl_expect(has_event(evs, n, D_MOVED), "epoll: the moved eventfd is not ready");
	wl_expect(!has_event(evs, n, D_ONESHOT), "epoll: a fired one-shot fired again");
	wl_expect(!has_event(evs, n, D_EV), "epoll: a read eventfd is ready");
	v = 5;
	wl_expect(write(ev, &v, 8) == 8, "eventfd write: %m");
	n = epoll_wait(ep, evs, 16, 0);
	wl_expect(has_event(evs, n, D_EV), "epoll: the eventfd registration is gone");
	snprintf(path, sizeof(path), "fdinfo/%d", ep);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	fd = open(path, O_RDONLY);
	fdinfo = calloc(1, 8192);
	wl_expect(fd >= 0 && fdinfo && read(fd, fdinfo, 8191) > 0, "cannot read %s", path);
	if (fdinfo) {
		char want[64];

		snprintf(want, sizeof(want), "tfd: %8d events:", moved_tfd);
		wl_expect(strstr(fdinfo, want) != NULL, "epoll: the moved target is not registered as fd %d:\n%s",
			  moved_tfd, fdinfo);
		snprintf(want, sizeof(want), "tfd: %8d events: %8x", pp[0], EPOLLIN | EPOLLET | EPOLLERR | EPOLLHUP);
		wl_expect(strstr(fdinfo, want) != NULL, "epoll: the edge-triggered pipe lost its events:\n%s", fdinfo);
	}
	free(fdinfo);
	if (fd >= 0)
		close(fd);

	check_timer(t_once, "one-shot timer", 0, HOUR, 0);
	check_timer(t_tick, "periodic timer", 0, HOUR, HOUR);
	check_timer(t_abs, "absolute timer", HOUR, 2 * HOUR, 0);
	check_timer(t_off, "disarmed timer", -1, 0, 0);
	v = 0;
	wl_expect(read(t_tick, &v, 8) == 8 && v == 1, "periodic timer: %llu expirations waiting, expected 1",
		  (unsigned long long)v);
	wl_expect(read(t_off, &v, 8) < 0 && errno == EAGAIN, "disarmed timer expired");

	/* inotify: same watch numbers, same masks. */
	wl_expect(inotify_add_watch(ino, wdir, IN_CREATE | IN_DELETE | IN_MASK_ADD) == wd_dir,
		  "inotify: the directory has another watch number");
	snprintf(path, sizeof(path), "%s/new", wdir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	fd = open(wfile, O_WRONLY);
	wl_expect(fd >= 0 && write(fd, "m", 1) == 1, "cannot modify %s", wfile);
	close(fd);
	chmod(wsub, 0755);
	n = (int)read(ino, ibuf, sizeof(ibuf));
	wl_expect(n > 0, "inotify: no events: %m");
	{
		bool created = false, modified = false, attrib = false;

		for (char *p = ibuf; n > 0 && p < ibuf + n; p += sizeof(*ie) + ie->len) {
			ie = (struct inotify_event *)p;
			created |= ie->wd == wd_dir && (ie->mask & IN_CREATE) && ie->len && !strcmp(ie->name, "new");
			modified |= ie->wd == wd_file && (ie->mask & IN_MODIFY);
			attrib |= ie->wd == wd_sub && (ie->mask & IN_ATTRIB);
		}
		wl_expect(created, "inotify: no IN_CREATE on watch %d", wd_dir);
		wl_expect(modified, "inotify: no IN_MODIFY on watch %d", wd_file);
		wl_expect(attrib, "inotify: no IN_ATTRIB on watch %d", wd_sub);
	}
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
