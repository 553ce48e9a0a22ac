/*
 * Workload: two threads besides the main one, each with state of its own:
 * blocked signals pending for it alone (a standard one by tgkill, a
 * real-time one queued several times with distinct values, and for B the
 * expiry of a SIGEV_THREAD_ID timer), a seccomp filter of its own on top
 * of the one all threads share (each answers getsid with another errno),
 * scheduling policy and nice value, CPU affinity, I/O priority, timer
 * slack, name and sigaltstack, and B its own uids (set by the system call,
 * for B alone); an armed SIGEV_THREAD_ID timer aims at B, and one aimed
 * at A counted 5 overruns in its last delivery to A.
 * After go each thread in turn checks its own state, then the armed timer
 * is made to fire and must reach B.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/ioprio.h>
#include <linux/seccomp.h>

#include "wl.h"

#define SHARED_ERRNO EDOM /* getpgid in every thread */
#define CAPGET_ERRNO EXFULL
#define MAIN_SLACK   111111
#define HOUR	     3600
#define OVERRUNS     5

struct sched_attr_v1 {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* What one thread sets up for itself and checks after go. */
struct thr {
	const char *name;
	pthread_t pt;
	pid_t tid;
	int policy, nice;
	int cpu; /* the one CPU it may run on */
	int ioprio;
	unsigned long slack;
	int getsid_errno;
	uid_t uid;	  /* its own real, effective and saved uid */
	int std_sig;	  /* blocked, sent by tgkill from the main thread */
	int rt_sig;	  /* blocked, queued three times */
	int rt_values[3]; /* its si_value each time */
	int timer_sig;	  /* B: the expired SIGEV_THREAD_ID timer's signal, else 0 */
	sigset_t blocked; /* what it blocks */
	char altstack[8192];
	/* Set by the handler of std_sig. */
	volatile sig_atomic_t handled;
	siginfo_t handled_info;
};

static struct thr threads[2] = {
	{ .name = "wl-ta",
	  .policy = SCHED_BATCH,
	  .nice = 5,
	  .ioprio = IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 2,
	  .slack = 222222,
	  .getsid_errno = ECHRNG,
	  .std_sig = SIGUSR1,
	  .rt_values = { 201, 202, 203 } },
	{ .name = "wl-tb",
	  .policy = SCHED_OTHER,
	  .nice = 3,
	  .ioprio = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
	  .slack = 333333,
	  .getsid_errno = EL2NSYNC,
	  .uid = 2000,
	  .std_sig = SIGUSR2,
	  .rt_values = { 211, 212, 213 } },
};
static atomic_int setup_done, turn = -1, checked;
static timer_t armed_timer, fired_timer, overrun_timer;
static int armed_sig, fired_sig;

static int rt(int n)
{
	return SIGRTMIN + n;
}

static struct thr *self_thr(void)
{
	for (int i = 0; i < 2; i++)
		if (threads[i].tid == gettid())
			return &threads[i];
	return NULL;
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	struct thr *t = self_thr();

	(void)sig;
	(void)uc;
	if (t) {
		t->handled_info = *si;
		t->handled++;
	}
}

/* A filter answering @nr with @err, allowing everything else. */
static int install(long nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static int ncpus(void)
{
	cpu_set_t all;

	if (sched_getaffinity(0, sizeof(all), &all))
		return 1;
	return CPU_COUNT(&all);
}

static int nth_cpu(int n)
{
	cpu_set_t all;
	int seen = 0;

	sched_getaffinity(0, sizeof(all), &all);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all) && seen++ == n)
			return c;
	return 0;
}

static void nap(void)
{
	struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

static const char *setup_thread(struct thr *t)
{
	struct sched_attr_v1 sa = { .size = sizeof(sa), .policy = (uint32_t)t->policy, .nice = t->nice };
	stack_t ss = { .ss_sp = t->altstack, .ss_size = sizeof(t->altstack) };
	cpu_set_t one;

	if (syscall(SYS_sched_setattr, 0, &sa, 0))
		return "sched_setattr";
	CPU_ZERO(&one);
	CPU_SET(t->cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return "sched_setaffinity";
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, t->ioprio))
		return "ioprio_set";
	if (prctl(PR_SET_TIMERSLACK, t->slack, 0, 0, 0))
		return "PR_SET_TIMERSLACK";
	if (prctl(PR_SET_NAME, t->name, 0, 0, 0))
		return "PR_SET_NAME";
	if (sigaltstack(&ss, NULL))
		return "sigaltstack";
	if (pthread_sigmask(SIG_BLOCK, &t->blocked, NULL))
		return "pthread_sigmask";
	if (install(SYS_getsid, t->getsid_errno))
		return "installing its seccomp filter";
	/* The system call, not glibc's setresuid(), which changes every thread. */
	if (t->uid && syscall(SYS_setresuid, t->uid, t->uid, t->uid))
		return "setresuid";
	return NULL;
}

static void check_thread(struct thr *t);
static timer_t thread_timer(pid_t tid, clockid_t clock, int sig, int value);

/*
 * A: a periodic timer aimed at itself, expired 5.5 intervals ago; taking
 * its signal counts 5 overruns, which only A can take again.
 */
static const char *setup_overrun(struct thr *t)
{
	struct timespec now, wait = { 10, 0 };
	struct itimerspec v = { { HOUR, 0 }, { 0, 0 } };
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, rt(7));
	if (pthread_sigmask(SIG_BLOCK, &one, NULL))
		return "pthread_sigmask";
	overrun_timer = thread_timer(t->tid, CLOCK_REALTIME, rt(7), 0x7a);
	clock_gettime(CLOCK_REALTIME, &now);
	v.it_value.tv_sec = now.tv_sec - 11 * HOUR / 2;
	v.it_value.tv_nsec = now.tv_nsec;
	if (timer_settime(overrun_timer, TIMER_ABSTIME, &v, NULL))
		return "timer_settime";
	if (sigtimedwait(&one, NULL, &wait) != rt(7))
		return "waiting for the overrun timer's signal";
	if (timer_getoverrun(overrun_timer) != OVERRUNS)
		return "counting overruns";
	return NULL;
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	const char *err;

	t->tid = gettid();
	err = setup_thread(t);
	if (!err && t == &threads[0])
		err = setup_overrun(t);
	if (err)
		wl_die("%s: %s failed: %m", t->name, err);
	atomic_fetch_add(&setup_done, 1);
	/* Each thread checks in its turn, so that the failure count is not raced for. */
	while (atomic_load(&turn) != (int)(t - threads))
		nap();
	check_thread(t);
	atomic_store(&checked, 1);
	/* B stays to receive the armed timer's signal. */
	if (t == &threads[1]) {
		struct timespec ten = { 10, 0 };
		sigset_t one;
		siginfo_t si;
		int sig;

		while (atomic_load(&turn) != 2)
			nap();
		sigemptyset(&one);
		sigaddset(&one, armed_sig);
		sig = sigtimedwait(&one, &si, &ten);
		wl_expect(sig == armed_sig && si.si_code == SI_TIMER && si.si_value.sival_int == 0x5b,
			  "%s: the re-armed SIGEV_THREAD_ID timer's signal: %d (code %d, value %#x), expected %d",
			  t->name, sig, si.si_code, si.si_value.sival_int, armed_sig);
	}
	return NULL;
}

static timer_t thread_timer(pid_t tid, clockid_t clock, int sig, int value)
{
	struct sigevent ev = { 0 };
	timer_t id;

	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = value;
	ev._sigev_un._tid = tid;
	if (timer_create(clock, &ev, &id))
		wl_die("timer_create for tid %d failed: %m", tid);
	return id;
}

static void queue_to(pid_t tid, int sig, int value)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &si))
		wl_die("queueing signal %d to tid %d failed: %m", sig, tid);
}

static void setup(void)
{
	struct sigaction sa;
	sigset_t all;

	armed_sig = rt(5);
	fired_sig = rt(6);
	threads[0].rt_sig = rt(2);
	threads[1].rt_sig = rt(3);
	threads[1].timer_sig = fired_sig;
	threads[0].cpu = nth_cpu(0);
	threads[1].cpu = nth_cpu(ncpus() - 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&all);
	for (int i = 0; i < 2; i++) {
		struct thr *t = &threads[i];

		sigemptyset(&t->blocked);
		sigaddset(&t->blocked, t->std_sig);
		sigaddset(&t->blocked, t->rt_sig);
		if (t->timer_sig)
			sigaddset(&t->blocked, t->timer_sig);
		if (sigaction(t->std_sig, &sa, NULL))
			wl_die("sigaction failed: %m");
	}
	sigaddset(&threads[1].blocked, armed_sig);
	/* The main thread blocks them all: nothing of the threads' may reach it. */
	sigorset(&all, &threads[0].blocked, &threads[1].blocked);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		wl_die("sigprocmask failed: %m");

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("PR_SET_NO_NEW_PRIVS failed: %m");
	/* Installed before the threads exist: one filter all of them share. */
	/*
	 * Two filters before the threads exist, which all of them share. The
	 * restorer itself calls capget in every thread: the engine must keep
	 * the filters suspended in the threads it creates too.
	 */
	if (install(SYS_getpgid, SHARED_ERRNO) || install(SYS_capget, CAPGET_ERRNO))
		wl_die("installing the shared seccomp filters failed: %m");
	if (prctl(PR_SET_TIMERSLACK, MAIN_SLACK, 0, 0, 0))
		wl_die("PR_SET_TIMERSLACK failed: %m");

	for (int i = 0; i < 2; i++)
		if (pthread_create(&threads[i].pt, NULL, thread_main, &threads[i]))
			wl_die("pthread_create failed");
	while (atomic_load(&setup_done) != 2)
		nap();
	/* B's change of credentials made the process non-dumpable; a restore must not do that after this. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		wl_die("PR_SET_DUMPABLE failed: %m");

	/* Signals for each thread alone, blocked there. */
	for (int i = 0; i < 2; i++) {
		struct thr *t = &threads[i];

		if (syscall(SYS_tgkill, getpid(), t->tid, t->std_sig))
			wl_die("tgkill failed: %m");
		for (int k = 0; k < 3; k++)
			queue_to(t->tid, t->rt_sig, t->rt_values[k]);
	}
	/* A one-shot timer for B that expired: its signal waits in B's queue. */
	{
		struct itimerspec soon = { { 0, 0 }, { 0, 1 } }, v;

		fired_timer = thread_timer(threads[1].tid, CLOCK_MONOTONIC, fired_sig, 0x6b);
		if (timer_settime(fired_timer, 0, &soon, NULL))
			wl_die("timer_settime failed: %m");
		do {
			nap();
			timer_gettime(fired_timer, &v);
		} while (v.it_value.tv_sec || v.it_value.tv_nsec);
	}
	/* An armed one for B, far off. */
	{
		struct itimerspec later = { { 0, 0 }, { 3600, 0 } };

		armed_timer = thread_timer(threads[1].tid, CLOCK_MONOTONIC, armed_sig, 0x5b);
		if (timer_settime(armed_timer, 0, &later, NULL))
			wl_die("timer_settime failed: %m");
	}
}

/* A field of a status file of /proc, as a number in @base. */
static unsigned long long status_file_field(const char *path, const char *key, int base)
{
	char line[256];
	unsigned long long v = ~0ull;
	FILE *f = fopen(path, "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoull(line + strlen(key), NULL, base);
	if (f)
		fclose(f);
	return v;
}

/* A field of /proc/thread-self/status. */
static unsigned long long status_field(const char *key, int base)
{
	return status_file_field("/proc/thread-self/status", key, base);
}

static uint64_t bit(int sig)
{
	return 1ull << (sig - 1);
}

static void check_seccomp(const char *who, int getsid_errno, long nr_filters)
{
	long r;

	errno = 0;
	r = getpgid(0);
	wl_expect(r == -1 && errno == SHARED_ERRNO, "%s: getpgid gave %ld, errno %d; expected errno %d", who, r, errno,
		  SHARED_ERRNO);
	errno = 0;
	r = getsid(0);
	if (getsid_errno)
		wl_expect(r == -1 && errno == getsid_errno, "%s: getsid gave %ld, errno %d; expected errno %d", who, r,
			  errno, getsid_errno);
	else
		wl_expect(r > 0, "%s: getsid gave %ld, errno %d; expected a session", who, r, errno);
	{
		struct {
			uint32_t version;
			int pid;
		} h = { 0x20080522, 0 };
		uint32_t d[6];

		errno = 0;
		r = syscall(SYS_capget, &h, d);
		wl_expect(r == -1 && errno == CAPGET_ERRNO, "%s: capget gave %ld, errno %d; expected errno %d", who, r,
			  errno, CAPGET_ERRNO);
	}
	r = (long)status_field("Seccomp_filters:", 10);
	wl_expect(r == nr_filters || r == -1, "%s: %ld seccomp filters, expected %ld", who, r, nr_filters);
}

static void check_sched(struct thr *t)
{
	struct sched_attr_v1 sa = { 0 };
	cpu_set_t cpus;
	long r;
	char name[16] = "";

	if (syscall(SYS_sched_getattr, 0, &sa, sizeof(sa), 0))
		wl_fail("%s: sched_getattr failed: %m", t->name);
	wl_expect(sa.policy == (uint32_t)t->policy && sa.nice == t->nice, "%s: policy %u nice %d, expected %d nice %d",
		  t->name, sa.policy, sa.nice, t->policy, t->nice);
	if (sched_getaffinity(0, sizeof(cpus), &cpus))
		wl_fail("%s: sched_getaffinity failed: %m", t->name);
	wl_expect(CPU_COUNT(&cpus) == 1 && CPU_ISSET(t->cpu, &cpus), "%s: affinity of %d CPUs, expected CPU %d only",
		  t->name, CPU_COUNT(&cpus), t->cpu);
	r = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	wl_expect(r == t->ioprio, "%s: I/O priority %#lx, expected %#x", t->name, r, t->ioprio);
	r = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	wl_expect(r == (long)t->slack, "%s: timer slack %ld, expected %lu", t->name, r, t->slack);
	prctl(PR_GET_NAME, name, 0, 0, 0);
	wl_expect(!strcmp(name, t->name), "%s: named %s", t->name, name);
	{
		stack_t ss;

		wl_expect(!sigaltstack(NULL, &ss) && ss.ss_sp == t->altstack && ss.ss_size == sizeof(t->altstack),
			  "%s: sigaltstack %p+%zu, expected %p+%zu", t->name, ss.ss_sp, ss.ss_size, (void *)t->altstack,
			  sizeof(t->altstack));
	}
}

/* The system call: glibc's sigtimedwait() reports SI_TKILL as SI_USER. */
static int take(const sigset_t *set, siginfo_t *si)
{
	struct timespec zero = { 0, 0 };

	return (int)syscall(SYS_rt_sigtimedwait, set, si, &zero, _NSIG / 8);
}

static void check_signals(struct thr *t)
{
	uint64_t want = bit(t->std_sig) | bit(t->rt_sig) | (t->timer_sig ? bit(t->timer_sig) : 0);
	uint64_t own = status_field("SigPnd:", 16);
	sigset_t one, mine = t->blocked;
	siginfo_t si;
	int sig;

	wl_expect(own == want, "%s: its own queue holds %#llx, expected %#llx", t->name, (unsigned long long)own,
		  (unsigned long long)want);
	/* Unblocked, the standard one reaches its handler, on this thread, with its siginfo. */
	sigemptyset(&one);
	sigaddset(&one, t->std_sig);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	wl_expect(t->handled == 1, "%s: unblocking signal %d ran its handler %d times", t->name, t->std_sig,
		  (int)t->handled);
	if (t->handled == 1)
		wl_expect(t->handled_info.si_code == SI_TKILL && t->handled_info.si_pid == getpid(),
			  "%s: signal %d came with code %d from pid %d", t->name, t->std_sig, t->handled_info.si_code,
			  t->handled_info.si_pid);
	pthread_sigmask(SIG_BLOCK, &one, NULL);
	/* The real-time ones in the order they were queued. */
	for (int k = 0; k < 3; k++) {
		memset(&si, 0, sizeof(si));
		sig = take(&mine, &si);
		wl_expect(sig == t->rt_sig && si.si_code == SI_QUEUE && si.si_value.sival_int == t->rt_values[k],
			  "%s: taken #%d: signal %d code %d value %d; expected %d SI_QUEUE %d", t->name, k, sig,
			  si.si_code, si.si_value.sival_int, t->rt_sig, t->rt_values[k]);
	}
	if (t->timer_sig) {
		memset(&si, 0, sizeof(si));
		sig = take(&mine, &si);
		wl_expect(sig == t->timer_sig && si.si_code == SI_TIMER && si.si_value.sival_int == 0x6b &&
				  si.si_timerid == (int)(intptr_t)fired_timer,
			  "%s: the expired timer's signal: %d code %d value %#x timer %d", t->name, sig, si.si_code,
			  si.si_value.sival_int, si.si_timerid);
	}
	sig = take(&mine, &si);
	wl_expect(sig < 0 && errno == EAGAIN, "%s: signal %d is pending beyond the expected ones", t->name, sig);
}

static void check_uids(const char *who, uid_t want)
{
	uid_t r = 1, e = 1, s = 1;

	syscall(SYS_getresuid, &r, &e, &s);
	wl_expect(r == want && e == want && s == want, "%s: uids %u/%u/%u, expected %u", who, r, e, s, want);
}

static void check_thread(struct thr *t)
{
	if (t == &threads[0]) {
		struct itimerspec v;

		wl_expect(timer_getoverrun(overrun_timer) == OVERRUNS, "%s: its timer counted %d overruns, expected %d",
			  t->name, timer_getoverrun(overrun_timer), OVERRUNS);
		wl_expect(!timer_gettime(overrun_timer, &v) && (v.it_value.tv_sec || v.it_value.tv_nsec) &&
				  v.it_value.tv_sec <= HOUR / 2 && v.it_interval.tv_sec == HOUR,
			  "%s: its overrun timer has %ld s left, interval %ld s", t->name, (long)v.it_value.tv_sec,
			  (long)v.it_interval.tv_sec);
	}
	check_uids(t->name, t->uid);
	check_sched(t);
	check_seccomp(t->name, t->getsid_errno, 3);
	check_signals(t);
}

/* /proc/self/timers names the thread a SIGEV_THREAD_ID timer signals. */
static void check_timer_target(void)
{
	char line[256], want[64];
	bool seen = false;
	FILE *f = fopen("/proc/self/timers", "re");

	snprintf(want, sizeof(want), "notify: signal/tid.%d", threads[1].tid);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)) && line[strlen(want)] == '\n')
			seen = true;
	if (f)
		fclose(f);
	wl_expect(seen, "/proc/self/timers names no timer aimed at tid %d", threads[1].tid);
}

static void check(void)
{
	struct itimerspec v, now = { { 0, 0 }, { 0, 1000000 } };
	uint64_t shared = 0;

	check_seccomp("main", 0, 2);
	check_uids("main", 0);
	wl_expect(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1, "dumpable is %d, expected 1",
		  prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	wl_expect(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == MAIN_SLACK, "main: timer slack %d",
		  prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
	wl_expect(status_field("SigPnd:", 16) == 0, "main: its own queue holds %#llx", status_field("SigPnd:", 16));
	{
		char line[256];
		FILE *f = fopen("/proc/self/status", "re");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "ShdPnd:", 7))
				shared = strtoull(line + 7, NULL, 16);
		if (f)
			fclose(f);
	}
	wl_expect(shared == 0, "the process-wide queue holds %#llx", (unsigned long long)shared);
	check_timer_target();
	wl_expect(!timer_gettime(armed_timer, &v) && v.it_value.tv_sec > 0 && v.it_value.tv_sec <= 3600,
		  "the armed timer has %ld s left", (long)v.it_value.tv_sec);
	for (int i = 0; i < 2; i++) {
		atomic_store(&checked, 0);
		atomic_store(&turn, i);
		while (!atomic_load(&checked))
			nap();
	}
	/* The armed timer, due now, must signal B. */
	atomic_store(&turn, 2);
	if (timer_settime(armed_timer, 0, &now, NULL))
		wl_fail("timer_settime failed: %m");
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i].pt, NULL);
}

/*
 * "tsync": the main thread and two threads with only the filter installed
 * before the threads existed. After go the main thread adds one with
 * SECCOMP_FILTER_FLAG_TSYNC, which the kernel allows only if every thread
 * still shares the main thread's filter: equal copies per thread fail.
 */
static atomic_int tsync_stage;

static void *tsync_thread(void *arg)
{
	long r;

	(void)arg;
	atomic_fetch_add(&setup_done, 1);
	while (atomic_load(&tsync_stage) != 1)
		nap();
	errno = 0;
	r = getsid(0);
	wl_expect(r == -1 && errno == ECHRNG, "tid %d: getsid after the synchronized filter gave %ld, errno %d",
		  gettid(), r, errno);
	return NULL;
}

static int run_tsync(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getsid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ECHRNG),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	pthread_t pt[2];
	long r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || install(SYS_getpgid, SHARED_ERRNO) ||
	    install(SYS_capget, CAPGET_ERRNO))
		wl_die("installing the shared seccomp filter failed: %m");
	for (int i = 0; i < 2; i++)
		if (pthread_create(&pt[i], NULL, tsync_thread, NULL))
			wl_die("pthread_create failed");
	while (atomic_load(&setup_done) != 2)
		nap();
	wl_ready();
	wl_wait_go();
	check_seccomp("main", 0, 2);
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	wl_expect(r == 0, "a filter for all threads (TSYNC) gave %ld (a tid: that thread does not share the filter)",
		  r);
	atomic_store(&tsync_stage, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(pt[i], NULL);
	return wl_finish();
}

/* "strict-thread": a thread in seccomp strict mode, spinning; a dump must refuse it, naming it. */
static void *strict_thread(void *arg)
{
	static volatile unsigned long spins;

	(void)arg;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
		wl_die("strict mode failed: %m");
	for (;;)
		spins++;
	return NULL;
}

static int run_strict_thread(void)
{
	pthread_t pt;
	char path[64];

	if (pthread_create(&pt, NULL, strict_thread, NULL))
		wl_die("pthread_create failed");
	/* Ready once the thread is in strict mode. */
	for (;;) {
		struct dirent *e;
		DIR *d = opendir("/proc/self/task");
		bool strict = false;

		while (d && (e = readdir(d)))
			if (atoi(e->d_name) > 0 && atoi(e->d_name) != getpid()) {
				snprintf(path, sizeof(path), "/proc/self/task/%d/status", atoi(e->d_name));
				strict = status_file_field(path, "Seccomp:", 10) == 1;
			}
		if (d)
			closedir(d);
		if (strict)
			break;
		nap();
	}
	wl_ready();
	wl_wait_go();
	return wl_finish();
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "[tsync|strict-thread]");
	if (argc > 2 && !strcmp(argv[2], "tsync"))
		return run_tsync();
	if (argc > 2 && !strcmp(argv[2], "strict-thread"))
		return run_strict_thread();
	setup();
	wl_ready();
	wl_wait_go();
	check();
	return wl_finish();
}
