/*
 * Workload: blocked pending signals in both queues (the thread's own and
 * the process-wide one), real-time signals queued several times, each
 * with its own siginfo. After go one is unblocked and must reach its
 * handler with its siginfo; the others are taken in the kernel's order.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl.h"

/* What siginfo fields the checks compare. */
struct want {
	int sig, code, errnum, value, pid_is_self;
};

static volatile sig_atomic_t handled;
static siginfo_t handled_info;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	handled_info = *si;
	handled++;
}

static int rt(int n)
{
	return SIGRTMIN + n;
}

/* rt_sigqueueinfo / rt_tgsigqueueinfo with a siginfo of our making. */
static void queue(int sig, int code, int errnum, int value, bool to_thread)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = code;
	si.si_errno = errnum;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (to_thread ? syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, &si)
		      : syscall(SYS_rt_sigqueueinfo, getpid(), sig, &si))
		wl_die("queueing signal %d failed: %m", sig);
}

static sigset_t used;

static void setup(void)
{
	struct sigaction sa;
	int sigs[] = { SIGUSR1, SIGUSR2, SIGWINCH, SIGHUP, rt(1), rt(2), rt(3) };

	sigemptyset(&used);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&used, sigs[i]);
		if (sigs[i] != SIGWINCH && sigaction(sigs[i], &sa, NULL))
			wl_die("sigaction(%d) failed: %m", sigs[i]);
	}
	if (sigprocmask(SIG_BLOCK, &used, NULL))
		wl_die("sigprocmask failed: %m");

	/* The thread's own queue. */
	if (syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1))
		wl_die("tgkill failed: %m");
	queue(rt(2), SI_QUEUE, 0, 201, true);
	queue(rt(2), SI_QUEUE, 0, 202, true);
	/* The process-wide queue; real-time signals in the order they were sent. */
	if (kill(getpid(), SIGUSR2))
		wl_die("kill failed: %m");
	queue(rt(1), SI_QUEUE, 0, 101, false);
	queue(rt(1), SI_QUEUE, 0, 102, false);
	queue(rt(1), SI_QUEUE, 0, 103, false);
	queue(rt(3), -60 /* a code of the program's own */, 77, 301, false);
	queue(SIGHUP, SI_QUEUE, 5, 401, false);
	/* Ignored by default, but blocked signals stay pending whatever their action. */
	if (kill(getpid(), SIGWINCH))
		wl_die("kill failed: %m");
}

static void expect_info(const siginfo_t *si, const struct want *w, const char *how)
{
	wl_expect(si->si_signo == w->sig, "%s: signal %d, expected %d", how, si->si_signo, w->sig);
	wl_expect(si->si_code == w->code, "%s: signal %d has si_code %d, expected %d", how, w->sig, si->si_code,
		  w->code);
	wl_expect(si->si_errno == w->errnum, "%s: signal %d has si_errno %d, expected %d", how, w->sig, si->si_errno,
		  w->errnum);
	if (w->pid_is_self)
		wl_expect(si->si_pid == getpid() && si->si_uid == getuid(), "%s: signal %d from pid %d uid %d", how,
			  w->sig, si->si_pid, si->si_uid);
	if (w->code == SI_QUEUE || w->code < -6)
		wl_expect(si->si_value.sival_int == w->value, "%s: signal %d carries %d, expected %d", how, w->sig,
			  si->si_value.sival_int, w->value);
}

/* The masks /proc/self/status shows for the two queues. */
static void pending_masks(uint64_t *own, uint64_t *shared)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	*own = *shared = ~0ull;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "SigPnd:", 7))
			*own = strtoull(line + 7, NULL, 16);
		else if (!strncmp(line, "ShdPnd:", 7))
			*shared = strtoull(line + 7, NULL, 16);
	}
	fclose(f);
}

/* The system call: glibc's sigtimedwait() reports SI_TKILL as SI_USER. */
static int take(siginfo_t *si)
{
	struct timespec zero = { 0, 0 };

	return (int)syscall(SYS_rt_sigtimedwait, &used, si, &zero, _NSIG / 8);
}

static uint64_t bit(int sig)
{
	return 1ull << (sig - 1);
}

static void check(void)
{
	/* The kernel takes the thread's queue first, lowest number first, each real-time one in order. */
	const struct want order[] = {
		{ SIGUSR1, SI_TKILL, 0, 0, 1 },	 { rt(2), SI_QUEUE, 0, 201, 1 }, { rt(2), SI_QUEUE, 0, 202, 1 },
		{ SIGHUP, SI_QUEUE, 5, 401, 1 }, { SIGWINCH, SI_USER, 0, 0, 1 }, { rt(1), SI_QUEUE, 0, 101, 1 },
		{ rt(1), SI_QUEUE, 0, 102, 1 },	 { rt(1), SI_QUEUE, 0, 103, 1 }, { rt(3), -60, 77, 301, 1 },
	};
	const struct want usr2 = { SIGUSR2, SI_USER, 0, 0, 1 };
	uint64_t own, shared;
	sigset_t one;

	pending_masks(&own, &shared);
	wl_expect(own == (bit(SIGUSR1) | bit(rt(2))), "the thread's own queue holds %#llx", (unsigned long long)own);
	wl_expect(shared == (bit(SIGUSR2) | bit(SIGHUP) | bit(SIGWINCH) | bit(rt(1)) | bit(rt(3))),
		  "the process-wide queue holds %#llx", (unsigned long long)shared);

	/* Unblocked, the signal reaches its handler with the siginfo it was sent with. */
	sigemptyset(&one);
	sigaddset(&one, SIGUSR2);
	if (sigprocmask(SIG_UNBLOCK, &one, NULL))
		wl_fail("sigprocmask failed: %m");
	wl_expect(handled == 1, "unblocking SIGUSR2 ran its handler %d times", (int)handled);
	if (handled == 1)
		expect_info(&handled_info, &usr2, "delivered");

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		siginfo_t si;
		char how[32];

		memset(&si, 0, sizeof(si));
		snprintf(how, sizeof(how), "taken #%zu", i);
		if (take(&si) < 0) {
			wl_fail("%s: no signal pending (expected %d): %m", how, order[i].sig);
			continue;
		}
		expect_info(&si, &order[i], how);
	}
	{
		siginfo_t si;
		int sig = take(&si);

		wl_expect(sig < 0 && errno == EAGAIN, "signal %d is pending beyond the expected ones", sig);
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
