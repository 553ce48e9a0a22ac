/*
 * Workload: signal actions, blocked mask, umask, cwd and the kernel's per-thread
 * registrations (sigaltstack, robust list, clear_child_tid, rseq, comm, brk);
 * waits by polling or in sigsuspend.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl.h"

/*
 * Usage: wl-sleep CTLDIR [poll|suspend]
 *   poll     waits with wl_wait_go() (the default)
 *   suspend  blocks in sigsuspend() and looks for go each time SIGUSR1
 *            arrives, so its registers stay put while it waits (the
 *            leave-running test compares them across a dump)
 */

#define MAX_SIG 65

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
}

static void on_term(int sig)
{
	(void)sig;
}

static void on_chld(int sig)
{
	(void)sig;
}

struct action {
	int sig;
	void *handler; /* sa_handler or sa_sigaction, or SIG_IGN */
	int flags;
	int mask[3]; /* signals in sa_mask, 0-terminated */
};

static struct action actions[9];
static unsigned nr_actions;
/* What sigaction() reported right after setting, for every signal. */
static struct sigaction before[MAX_SIG];
/* glibc keeps a few real-time signals for itself and refuses them. */
static bool usable[MAX_SIG];
static sigset_t blocked;
static char cwd_before[PATH_MAX];

/* Kernel state of the thread, as it was before the wait. */
static struct {
	stack_t altstack;
	void *robust_head;
	size_t robust_len;
	int *tid_address;
	void *brk;
	char comm[16];
} kstate;

static void setup_kernel_state(void)
{
	static char altstack_mem[64 << 10];
	stack_t ss = { .ss_sp = altstack_mem, .ss_size = sizeof(altstack_mem) };

	if (sigaltstack(&ss, NULL) || sigaltstack(NULL, &kstate.altstack))
		wl_die("sigaltstack failed: %m");
	if (syscall(SYS_get_robust_list, 0, &kstate.robust_head, &kstate.robust_len) || !kstate.robust_head)
		wl_die("get_robust_list failed: %m");
	if (prctl(PR_GET_TID_ADDRESS, &kstate.tid_address) || !kstate.tid_address)
		wl_die("PR_GET_TID_ADDRESS failed: %m");
	if (prctl(PR_SET_NAME, "wl-sleep-named") || prctl(PR_GET_NAME, kstate.comm))
		wl_die("PR_SET_NAME failed: %m");
	/* Move the break so that a brk lost at restore shows. */
	if (sbrk(3 * 4096) == (void *)-1)
		wl_die("sbrk failed: %m");
	kstate.brk = sbrk(0);
	if (!__rseq_size)
		wl_die("glibc registered no rseq area");
}

static void check_kernel_state(void)
{
	void *head = NULL, *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	size_t len = 0;
	int *tid_address = NULL;
	char comm[16] = "";
	stack_t ss;

	if (sigaltstack(NULL, &ss))
		wl_fail("sigaltstack cannot be read: %m");
	else
		wl_expect(ss.ss_sp == kstate.altstack.ss_sp && ss.ss_size == kstate.altstack.ss_size &&
				  ss.ss_flags == kstate.altstack.ss_flags,
			  "sigaltstack is %p/%zu/%d, was %p/%zu/%d", ss.ss_sp, ss.ss_size, ss.ss_flags,
			  kstate.altstack.ss_sp, kstate.altstack.ss_size, kstate.altstack.ss_flags);
	if (syscall(SYS_get_robust_list, 0, &head, &len))
		wl_fail("get_robust_list failed: %m");
	else
		wl_expect(head == kstate.robust_head && len == kstate.robust_len, "robust list is %p/%zu, was %p/%zu",
			  head, len, kstate.robust_head, kstate.robust_len);
	if (prctl(PR_GET_TID_ADDRESS, &tid_address))
		wl_fail("PR_GET_TID_ADDRESS failed: %m");
	else
		wl_expect(tid_address == kstate.tid_address, "clear_child_tid is %p, was %p", (void *)tid_address,
			  (void *)kstate.tid_address);
	if (prctl(PR_GET_NAME, comm))
		wl_fail("PR_GET_NAME failed: %m");
	else
		wl_expect(!strcmp(comm, kstate.comm), "comm is \"%s\", was \"%s\"", comm, kstate.comm);
	wl_expect(sbrk(0) == kstate.brk, "brk is %p, was %p", sbrk(0), kstate.brk);
	wl_expect(sbrk(4096) != (void *)-1, "the heap cannot grow: %m");
	/*
	 * Registering the same area again fails with EBUSY only if the kernel
	 * still has it. glibc registers 32 bytes while __rseq_size may give
	 * the feature size: a length other than the registered one is EINVAL.
	 */
	errno = 0;
	if (syscall(SYS_rseq, area, __rseq_size, 0, RSEQ_SIG) == -1 && errno == EINVAL)
		syscall(SYS_rseq, area, 32, 0, RSEQ_SIG);
	wl_expect(errno == EBUSY, "the rseq area at %p is not registered (rseq: %m)", area);
}

static void set_action(int sig, void *handler, int flags, int m0, int m1)
{
	struct action *a = &actions[nr_actions++];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	a->sig = sig;
	a->handler = handler;
	a->flags = flags;
	a->mask[0] = m0;
	a->mask[1] = m1;
	sigemptyset(&sa.sa_mask);
	if (m0)
		sigaddset(&sa.sa_mask, m0);
	if (m1)
		sigaddset(&sa.sa_mask, m1);
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))handler;
	else
		sa.sa_handler = (void (*)(int))handler;
	sa.sa_flags = flags;
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction(%d) failed: %m", sig);
}

static void *handler_of(const struct sigaction *sa)
{
	return sa->sa_flags & SA_SIGINFO ? (void *)sa->sa_sigaction : (void *)sa->sa_handler;
}

static const struct action *action_of(int sig)
{
	for (unsigned i = 0; i < nr_actions; i++)
		if (actions[i].sig == sig)
			return &actions[i];
	return NULL;
}

static void check_action(int sig)
{
	const struct action *a = action_of(sig);
	struct sigaction now;

	if (sigaction(sig, NULL, &now) != 0) {
		wl_fail("sigaction(%d) cannot be read: %m", sig);
		return;
	}
	/* Exactly what it was, restorer included... */
	wl_expect(handler_of(&now) == handler_of(&before[sig]), "signal %d: handler %p, was %p", sig, handler_of(&now),
		  handler_of(&before[sig]));
	wl_expect(now.sa_flags == before[sig].sa_flags, "signal %d: sa_flags %#x, was %#x", sig, (unsigned)now.sa_flags,
		  (unsigned)before[sig].sa_flags);
	for (int s = 1; s < MAX_SIG; s++)
		wl_expect(sigismember(&now.sa_mask, s) == sigismember(&before[sig].sa_mask, s),
			  "signal %d: signal %d %s sa_mask", sig, s,
			  sigismember(&now.sa_mask, s) ? "was added to" : "is missing from");
	if (!a)
		return;
	/* ...and what was asked for, in case memory and kernel lost it alike. */
	wl_expect(handler_of(&now) == a->handler, "signal %d: handler %p, expected %p", sig, handler_of(&now),
		  a->handler);
	wl_expect((now.sa_flags & a->flags) == a->flags, "signal %d: sa_flags %#x lack %#x", sig,
		  (unsigned)now.sa_flags, (unsigned)a->flags);
	for (int i = 0; a->mask[i]; i++)
		wl_expect(sigismember(&now.sa_mask, a->mask[i]) == 1, "signal %d: sa_mask lacks signal %d", sig,
			  a->mask[i]);
}

static void setup(void)
{
	set_action(SIGUSR1, (void *)on_usr1, SA_RESTART, SIGUSR2, SIGTERM);
	set_action(SIGUSR2, (void *)on_info, SA_SIGINFO | SA_NODEFER, SIGINT, 0);
	set_action(SIGTERM, (void *)on_term, SA_RESETHAND | SA_RESTART, SIGQUIT, SIGRTMIN + 3);
	set_action(SIGHUP, (void *)SIG_IGN, 0, 0, 0);
	set_action(SIGCHLD, (void *)on_chld, SA_NOCLDSTOP, 0, 0);
	set_action(SIGRTMIN + 2, (void *)on_info, SA_SIGINFO | SA_RESTART, SIGUSR1, SIGRTMAX);
	/* The engine stops the task with SIGTRAP twice per cycle; the handler must survive it. */
	set_action(SIGTRAP, (void *)on_info, SA_SIGINFO, 0, 0);
	for (int s = 1; s < MAX_SIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (sigaction(s, NULL, &before[s]) == 0)
			usable[s] = true;
		else if (errno != EINVAL)
			wl_die("sigaction(%d) cannot be read: %m", s);
	}

	/* SIGUSR1 is blocked too: sigsuspend() opens it only while waiting. */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGQUIT);
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGWINCH);
	sigaddset(&blocked, SIGRTMIN + 5);
	sigaddset(&blocked, SIGRTMAX);
	if (sigprocmask(SIG_SETMASK, &blocked, NULL) != 0)
		wl_die("sigprocmask failed: %m");

	umask(027);
	if (chdir(wl_ctldir) != 0)
		wl_die("chdir(%s) failed: %m", wl_ctldir);
	if (!getcwd(cwd_before, sizeof(cwd_before)))
		wl_die("getcwd failed: %m");
}

static void check(void)
{
	char cwd[PATH_MAX];
	sigset_t now;
	mode_t mask;

	for (int s = 1; s < MAX_SIG; s++)
		if (usable[s])
			check_action(s);

	if (sigprocmask(SIG_SETMASK, NULL, &now) != 0)
		wl_fail("sigprocmask cannot be read: %m");
	else
		for (int s = 1; s < MAX_SIG; s++)
			wl_expect(sigismember(&now, s) == sigismember(&blocked, s), "signal %d is %sblocked", s,
				  sigismember(&now, s) ? "" : "not ");

	mask = umask(0);
	umask(mask);
	wl_expect(mask == 027, "umask is %03o, expected 027", (unsigned)mask);

	if (!getcwd(cwd, sizeof(cwd)))
		wl_fail("getcwd failed: %m");
	else
		wl_expect(strcmp(cwd, cwd_before) == 0, "cwd is %s, expected %s", cwd, cwd_before);
}

static void wait_suspended(void)
{
	sigset_t waitmask = blocked;

	sigdelset(&waitmask, SIGUSR1);
	/*
	 * A SIGUSR1 sent before sigsuspend stays pending (blocked), so none is
	 * missed; and go may be seen before the SIGUSR1 that follows it has
	 * been taken, so wait for that too (its handler must still work).
	 */
	while (!wl_go_exists() || !usr1_count)
		sigsuspend(&waitmask);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "poll";

	wl_init(argc, argv, 0, "[poll|suspend]");
	if (strcmp(mode, "poll") != 0 && strcmp(mode, "suspend") != 0)
		wl_die("unknown mode %s", mode);
	setup();
	setup_kernel_state();
	wl_ready();
	if (strcmp(mode, "suspend") == 0)
		wait_suspended();
	else
		wl_wait_go();
	check();
	check_kernel_state();
	if (strcmp(mode, "suspend") == 0)
		wl_expect(usr1_count > 0, "woke up without a SIGUSR1");
	return wl_finish();
}
