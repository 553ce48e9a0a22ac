/*
 * Workload: itimers (an expired ITIMER_REAL whose SIGALRM waits, virtual
 * and profiling ones running) and POSIX timers with gaps in their ids, on
 * four clocks, with signal, thread-directed and no notification, armed,
 * disarmed, expired with the signal pending, and one whose last delivery
 * counted 5 overruns. Timer slack rides along.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define HOUR	  3600
#define NR_TIMERS 8
#define OVERRUNS  5

enum {
	T_ARMED,
	T_GONE1,
	T_OVERRUN,
	T_GONE2,
	T_ONESHOT_PENDING,
	T_PERIODIC_PENDING,
	T_NONE,
	T_CPU,
	T_DISARMED,
	NR_CREATED
};

static timer_t ids[NR_CREATED];
static struct itimerspec before[NR_CREATED];
static struct itimerval itv_before[3];
static sigset_t used;
static char timers_before[8192];

static int rt(int n)
{
	return SIGRTMIN + n;
}

static timer_t make(clockid_t clock, int notify, int sig, int value)
{
	struct sigevent ev;
	timer_t id;

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = notify;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = value;
	if (notify == SIGEV_THREAD_ID)
		ev._sigev_un._tid = gettid();
	if (timer_create(clock, &ev, &id))
		wl_die("timer_create(clock %d) failed: %m", (int)clock);
	return id;
}

static void arm(timer_t id, int flags, time_t value, long value_ns, time_t interval)
{
	struct itimerspec v = { { interval, 0 }, { value, value_ns } };

	if (timer_settime(id, flags, &v, NULL))
		wl_die("timer_settime failed: %m");
}

/* The raw call: glibc's sigtimedwait() reports SI_TKILL as SI_USER. */
static int take(int sig, siginfo_t *si)
{
	struct timespec zero = { 0, 0 };
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, sig);
	memset(si, 0, sizeof(*si));
	return (int)syscall(SYS_rt_sigtimedwait, &one, si, &zero, _NSIG / 8);
}

static bool is_pending(int sig)
{
	sigset_t p;

	return !sigpending(&p) && sigismember(&p, sig);
}

static void wait_pending(int sig)
{
	const struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 10000 && !is_pending(sig); i++)
		nanosleep(&ms, NULL);
	if (!is_pending(sig))
		wl_die("signal %d never became pending", sig);
}

/* /proc/self/timers, its four-line blocks sorted: creation order decides the listing order. */
static void read_timers(char *out, size_t size)
{
	char lines[NR_TIMERS * 4][128], *blocks[NR_TIMERS];
	size_t n = 0, len = 0;
	FILE *f = fopen("/proc/self/timers", "re");

	out[0] = '\0';
	if (!f)
		return;
	while (n < NR_TIMERS * 4 && fgets(lines[n], sizeof(lines[n]), f))
		n++;
	fclose(f);
	for (size_t b = 0; b < n / 4; b++) {
		blocks[b] = lines[b * 4];
		/* Join the block's lines in place: each is short. */
		for (int k = 1; k < 4; k++)
			strncat(blocks[b], lines[b * 4 + k], sizeof(lines[0]) - strlen(blocks[b]) - 1);
	}
	for (size_t i = 1; i < n / 4; i++)
		for (size_t j = i; j > 0 && strcmp(blocks[j - 1], blocks[j]) > 0; j--) {
			char *t = blocks[j];

			blocks[j] = blocks[j - 1];
			blocks[j - 1] = t;
		}
	for (size_t b = 0; b < n / 4; b++)
		len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s", blocks[b]);
}

static void setup(void)
{
	struct itimerval real = { { HOUR, 0 }, { 0, 1 } }, virt = { { 2000, 0 }, { 5000, 0 } },
			 prof = { { 3000, 0 }, { 6000, 0 } };
	int sigs[] = { SIGALRM, rt(4), rt(5), rt(6), rt(7), rt(8), rt(9), rt(10) };
	struct timespec now;
	siginfo_t si;

	sigemptyset(&used);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&used, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &used, NULL))
		wl_die("sigprocmask failed: %m");

	ids[T_ARMED] = make(CLOCK_REALTIME, SIGEV_SIGNAL, rt(4), 0xa0);
	ids[T_GONE1] = make(CLOCK_REALTIME, SIGEV_SIGNAL, rt(4), 0);
	ids[T_OVERRUN] = make(CLOCK_REALTIME, SIGEV_SIGNAL, rt(6), 0xa2);
	ids[T_GONE2] = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, rt(4), 0);
	ids[T_ONESHOT_PENDING] = make(CLOCK_MONOTONIC, SIGEV_THREAD_ID, rt(7), 0xa4);
	ids[T_PERIODIC_PENDING] = make(CLOCK_BOOTTIME, SIGEV_SIGNAL, rt(8), 0xa5);
	ids[T_NONE] = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0);
	ids[T_CPU] = make(CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, rt(9), 0xa7);
	ids[T_DISARMED] = make(CLOCK_REALTIME, SIGEV_SIGNAL, rt(10), 0xa8);
	/* Gaps in the ids. */
	if (timer_delete(ids[T_GONE1]) || timer_delete(ids[T_GONE2]))
		wl_die("timer_delete failed: %m");

	arm(ids[T_ARMED], 0, 3000, 0, 1000);
	/* Expired 5.5 intervals ago: taking its signal counts 5 overruns and moves it half an hour ahead. */
	clock_gettime(CLOCK_REALTIME, &now);
	arm(ids[T_OVERRUN], TIMER_ABSTIME, now.tv_sec - 11 * HOUR / 2, now.tv_nsec, HOUR);
	wait_pending(rt(6));
	if (take(rt(6), &si) != rt(6) || timer_getoverrun(ids[T_OVERRUN]) != OVERRUNS)
		wl_die("timer %ld: expected %d overruns, got %d", (long)ids[T_OVERRUN], OVERRUNS,
		       timer_getoverrun(ids[T_OVERRUN]));
	arm(ids[T_ONESHOT_PENDING], 0, 0, 1, 0);
	wait_pending(rt(7));
	arm(ids[T_PERIODIC_PENDING], 0, 0, 1, 2 * HOUR);
	wait_pending(rt(8));
	arm(ids[T_NONE], 0, 4000, 0, 0);
	arm(ids[T_CPU], 0, 7000, 0, 500);

	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL) ||
	    setitimer(ITIMER_PROF, &prof, NULL))
		wl_die("setitimer failed: %m");
	wait_pending(SIGALRM);
	if (prctl(PR_SET_TIMERSLACK, 777777))
		wl_die("PR_SET_TIMERSLACK failed: %m");

	for (int i = 0; i < NR_CREATED; i++)
		if (i != T_GONE1 && i != T_GONE2 && timer_gettime(ids[i], &before[i]))
			wl_die("timer_gettime failed: %m");
	for (int i = 0; i < 3; i++)
		getitimer(i, &itv_before[i]);
	read_timers(timers_before, sizeof(timers_before));
}

static long long ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

static long long us(const struct timeval *tv)
{
	return tv->tv_sec * 1000000ll + tv->tv_usec;
}

/* Running: less left than before but some, the same interval. */
static void expect_running(int which, const struct itimerspec *was, const char *what)
{
	struct itimerspec v;

	if (timer_gettime(ids[which], &v)) {
		wl_fail("%s: timer %ld is gone: %m", what, (long)ids[which]);
		return;
	}
	wl_expect(ns(&v.it_value) > 0 && ns(&v.it_value) <= ns(&was->it_value), "%s: %lld ns left, had %lld", what,
		  ns(&v.it_value), ns(&was->it_value));
	wl_expect(ns(&v.it_interval) == ns(&was->it_interval), "%s: interval %lld ns, was %lld", what,
		  ns(&v.it_interval), ns(&was->it_interval));
}

static void expect_timer_signal(int which, int sig, int value, const char *what)
{
	siginfo_t si;

	if (take(sig, &si) != sig) {
		wl_fail("%s: signal %d is not pending", what, sig);
		return;
	}
	wl_expect(si.si_code == SI_TIMER && si.si_timerid == (int)(long)ids[which] && si.si_value.sival_int == value,
		  "%s: siginfo code %d timer %d value %#x, expected SI_TIMER, %ld, %#x", what, si.si_code,
		  si.si_timerid, si.si_value.sival_int, (long)ids[which], value);
}

static uint64_t status_mask(const char *key)
{
	char line[256];
	uint64_t v = ~0ull;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoull(line + strlen(key), NULL, 16);
	if (f)
		fclose(f);
	return v;
}

static void check(void)
{
	char timers_now[8192];
	struct itimerspec v;
	struct itimerval iv;
	siginfo_t si;
	long r;

	read_timers(timers_now, sizeof(timers_now));
	wl_expect(!strcmp(timers_now, timers_before), "/proc/self/timers differs:\n%s\nwas:\n%s", timers_now,
		  timers_before);
	wl_expect(timer_gettime(ids[T_GONE1], &v) && errno == EINVAL, "deleted timer %ld exists", (long)ids[T_GONE1]);
	wl_expect(timer_gettime(ids[T_GONE2], &v) && errno == EINVAL, "deleted timer %ld exists", (long)ids[T_GONE2]);

	expect_running(T_ARMED, &before[T_ARMED], "armed timer");
	expect_running(T_OVERRUN, &before[T_OVERRUN], "overrun timer");
	r = timer_getoverrun(ids[T_OVERRUN]);
	wl_expect(r == OVERRUNS, "timer %ld: overrun %ld, expected %d", (long)ids[T_OVERRUN], r, OVERRUNS);
	expect_running(T_NONE, &before[T_NONE], "SIGEV_NONE timer");
	expect_running(T_CPU, &before[T_CPU], "CPU-time timer");
	expect_running(T_PERIODIC_PENDING, &before[T_PERIODIC_PENDING], "periodic timer with a pending expiry");
	wl_expect(!timer_gettime(ids[T_DISARMED], &v) && !ns(&v.it_value) && !ns(&v.it_interval),
		  "disarmed timer is armed");
	wl_expect(!timer_gettime(ids[T_ONESHOT_PENDING], &v) && !ns(&v.it_value), "expired one-shot timer is armed");

	/* Thread-directed expiries wait in the thread's own queue, the others in the process-wide one. */
	wl_expect(status_mask("SigPnd:") == 1ull << (rt(7) - 1), "the thread's own queue holds %#llx",
		  (unsigned long long)status_mask("SigPnd:"));
	wl_expect(status_mask("ShdPnd:") == (1ull << (rt(8) - 1) | 1ull << (SIGALRM - 1)),
		  "the process-wide queue holds %#llx", (unsigned long long)status_mask("ShdPnd:"));
	expect_timer_signal(T_ONESHOT_PENDING, rt(7), 0xa4, "pending one-shot expiry");
	expect_timer_signal(T_PERIODIC_PENDING, rt(8), 0xa5, "pending periodic expiry");
	expect_running(T_PERIODIC_PENDING, &before[T_PERIODIC_PENDING], "periodic timer after its expiry");
	/* A timer that never ran still signals as created. */
	arm(ids[T_DISARMED], 0, 0, 1, 0);
	wait_pending(rt(10));
	expect_timer_signal(T_DISARMED, rt(10), 0xa8, "disarmed timer, once armed");

	/* ITIMER_REAL expired with its SIGALRM waiting; taking it rearms it. */
	getitimer(ITIMER_REAL, &iv);
	wl_expect(!us(&iv.it_value) && us(&iv.it_interval) == HOUR * 1000000ll,
		  "ITIMER_REAL is %lld/%lld us, expected expired with a 1 h interval", us(&iv.it_value),
		  us(&iv.it_interval));
	wl_expect(take(SIGALRM, &si) == SIGALRM && si.si_code == SI_KERNEL, "no SIGALRM from ITIMER_REAL pending");
	getitimer(ITIMER_REAL, &iv);
	wl_expect(us(&iv.it_value) > 0 && us(&iv.it_value) <= HOUR * 1000000ll, "ITIMER_REAL was not rearmed: %lld us",
		  us(&iv.it_value));
	for (int which = ITIMER_VIRTUAL; which <= ITIMER_PROF; which++) {
		getitimer(which, &iv);
		wl_expect(us(&iv.it_value) > 0 && us(&iv.it_value) <= us(&itv_before[which].it_value) &&
				  us(&iv.it_interval) == us(&itv_before[which].it_interval),
			  "itimer %d is %lld/%lld us, was %lld/%lld", which, us(&iv.it_value), us(&iv.it_interval),
			  us(&itv_before[which].it_value), us(&itv_before[which].it_interval));
	}
	r = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	wl_expect(r == 777777, "timer slack is %ld, expected 777777", r);
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
