/*
 * The restorer's part of process and thread attributes: POSIX timers and
 * itimers, pending signals, resource limits, prctl state, scheduling,
 * credentials and seccomp filters, in the order restorer/restorer.h gives.
 */
#include <stdbool.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <linux/signal.h>

#include "restorer-attrs.h"
#include "rt.h"

#define K_TIMER_ABSTIME	     1
#define K_CLOCK_MONOTONIC    1
#define K_SI_TIMER	     (-2)
#define K_SIGEV_THREAD_ID    4
#define K_IOPRIO_WHO_PROCESS 1
#define NSEC_PER_SEC	     1000000000ll
/* A timer armed in the past expires at once; waiting longer than this means something is wrong. */
#define FIRE_TIMEOUT_NS (2 * NSEC_PER_SEC)

/* Kernel ABI structs (64-bit CPUs). */
struct k_timespec {
	int64_t sec, nsec;
};

struct k_itimerspec {
	struct k_timespec interval, value;
};

struct k_itimerval {
	struct {
		int64_t sec, usec;
	} interval, value;
};

struct k_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};

struct k_sock_fprog {
	uint16_t len;
	uint16_t pad[3];
	uint64_t filter;
};

struct k_rlimit64 {
	uint64_t cur, max;
};

/* Reports "restorer: @what @value failed: error N" to the engine and ends the process. */
__attribute__((noreturn)) static void fail(const struct restorer_args *a, const char *what, long value, long err)
{
	char msg[256];
	size_t n = rt_format(msg, sizeof(msg), "restorer: %s %ld failed: error %ld", what, value, -err);

	sys_write(a->status_fd, msg, n < sizeof(msg) ? n : sizeof(msg) - 1);
	sys_exit_group(1);
}

static int64_t clock_now(const struct restorer_args *a, int32_t clock)
{
	struct k_timespec ts;
	long r = sys2(__NR_clock_gettime, clock, &ts);

	if (r)
		fail(a, "clock_gettime of clock", clock, r);
	return ts.sec * NSEC_PER_SEC + ts.nsec;
}

static struct k_timespec ts_of(int64_t ns)
{
	return (struct k_timespec){ ns / NSEC_PER_SEC, ns % NSEC_PER_SEC };
}

/* ---- POSIX timers and itimers ---- */

static void create_timers(const struct restorer_args *a, const struct restorer_attrs *at)
{
	const struct restorer_posix_timer *t = (const void *)at->timers;
	long r;

	if (!at->nr_timers)
		return;
	/* Linux 6.15: timer_create() takes the id to use from its timer_t argument. */
	if (at->timer_ids_prctl &&
	    (r = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0)))
		fail(a, "PR_TIMER_CREATE_RESTORE_IDS", 1, r);
	for (uint32_t i = 0; i < at->nr_timers; i++) {
		struct k_sigevent ev = {
			.value = t[i].sigval,
			.signo = t[i].signo,
			.notify = t[i].notify,
			.tid = t[i].notify_tid,
		};
		int32_t id = t[i].id;

		r = sys3(__NR_timer_create, t[i].clock_id, &ev, &id);
		if (r)
			fail(a, "timer_create of timer", t[i].id, r);
		if (id != t[i].id)
			fail(a, "timer_create gave another id to timer", t[i].id, -22);
	}
	if (at->timer_ids_prctl &&
	    (r = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0)))
		fail(a, "PR_TIMER_CREATE_RESTORE_IDS", 0, r);
}

static void timer_set(const struct restorer_args *a, const struct restorer_posix_timer *t, int flags, int64_t value,
		      int64_t interval)
{
	struct k_itimerspec v = { ts_of(interval), ts_of(value) };
	long r = sys4(__NR_timer_settime, t->id, flags, &v, 0);

	if (r)
		fail(a, "timer_settime of timer", t->id, r);
}

/*
 * Waits until a timer armed in the past has expired. Until then it reads
 * 1 ns left; afterwards 0 (one-shot) or the time to its next expiry.
 */
static void timer_wait_fired(const struct restorer_args *a, const struct restorer_posix_timer *t)
{
	int64_t deadline = clock_now(a, K_CLOCK_MONOTONIC) + FIRE_TIMEOUT_NS;

	for (;;) {
		struct k_itimerspec v;
		long r = sys2(__NR_timer_gettime, t->id, &v);

		if (r)
			fail(a, "timer_gettime of timer", t->id, r);
		if (v.value.sec || v.value.nsec != 1)
			return;
		if (clock_now(a, K_CLOCK_MONOTONIC) > deadline)
			fail(a, "waiting for the expiry of timer", t->id, -62 /* ETIME */);
		sys0(__NR_sched_yield);
	}
}

/*
 * The timer's expiry is pending: make it expire now, in the place the
 * signal queue had it, with its next expiry where it was.
 */
static void timer_fire(const struct restorer_args *a, const struct restorer_posix_timer *t)
{
	int64_t now = clock_now(a, t->clock_id), at;

	at = t->interval_ns ? now + (int64_t)t->value_ns - (int64_t)t->interval_ns : now;
	/* Absolute 0 would disarm it; a clock that started recently (CPU time) cannot go further back. */
	if (at < 1)
		at = 1;
	timer_set(a, t, K_TIMER_ABSTIME, at, (int64_t)t->interval_ns);
	timer_wait_fired(a, t);
}

/*
 * timer_getoverrun() tells how many expiries the last delivered signal
 * stood for; only a delivery sets it. So the timer expires overrun + 1
 * intervals in the past, and taking its signal forwards it by as many,
 * which leaves the next expiry value_ns from now.
 */
static void timer_take_overrun(const struct restorer_args *a, const struct restorer_posix_timer *t)
{
	int64_t iv = (int64_t)t->interval_ns, at = clock_now(a, t->clock_id) + (int64_t)t->value_ns;
	uint64_t set = 1ull << (t->signo - 1);
	struct k_timespec zero = { 0, 0 };
	uint8_t info[128];
	long r;

	at -= ((int64_t)t->overrun + 1) * iv;
	if (at < 1)
		fail(a, "the clock is too young to reproduce the overrun count of timer", t->id, -34 /* ERANGE */);
	timer_set(a, t, K_TIMER_ABSTIME, at, iv);
	timer_wait_fired(a, t);
	r = sys4(__NR_rt_sigtimedwait, &set, info, &zero, sizeof(set));
	if (r != t->signo)
		fail(a, "taking the expiry signal of timer", t->id, r < 0 ? r : -5);
	r = sys1(__NR_timer_getoverrun, t->id);
	if (r != t->overrun)
		fail(a, "reproducing the overrun count of timer", t->id, r < 0 ? r : -34);
}

static void itimer_set(const struct restorer_args *a, int which, const struct restorer_itimer *v)
{
	struct k_itimerval kv = { { (int64_t)v->interval_sec, (int64_t)v->interval_usec },
				  { (int64_t)v->value_sec, (int64_t)v->value_usec } };
	long r = sys3(__NR_setitimer, which, &kv, 0);

	if (r)
		fail(a, "setitimer", which, r);
}

/*
 * ITIMER_REAL expired and its SIGALRM is pending: since Linux 6.13 the
 * timer is rearmed only when that signal is taken, which an expiry
 * recreates and a queued copy does not.
 */
static void itimer_real_fire(const struct restorer_args *a, const struct restorer_attrs *at)
{
	struct restorer_itimer v = at->itimers[0];
	int64_t deadline = clock_now(a, K_CLOCK_MONOTONIC) + FIRE_TIMEOUT_NS;

	v.value_sec = 0;
	v.value_usec = 1;
	itimer_set(a, 0, &v);
	for (;;) {
		struct k_itimerval kv;
		long r = sys2(__NR_getitimer, 0, &kv);

		if (r)
			fail(a, "getitimer", 0, r);
		if (!kv.value.sec && !kv.value.usec)
			return;
		if (clock_now(a, K_CLOCK_MONOTONIC) > deadline)
			fail(a, "waiting for the expiry of ITIMER_REAL", 0, -62);
		sys0(__NR_sched_yield);
	}
}

/* ---- pending signals ---- */

/*
 * The entries of @at's list that @tid queues: the leader those of the
 * process-wide queue and its own, any other thread its own.
 */
static void queue_pending(const struct restorer_args *a, const struct restorer_attrs *at, int32_t tid, bool leader)
{
	const struct restorer_siginfo *p = (const void *)at->pending;
	const struct restorer_posix_timer *t = (const void *)at->timers;
	long pid = sys0(__NR_getpid), r;

	for (uint32_t i = 0; i < at->nr_pending; i++) {
		int32_t sig;

		if (p[i].tid != tid && !(leader && !p[i].tid))
			continue;
		memcpy(&sig, p[i].info, sizeof(sig));
		if (p[i].queue) {
			/* Any si_code may be sent to oneself, kernel ones included. */
			if (p[i].tid)
				r = sys4(__NR_rt_tgsigqueueinfo, pid, p[i].tid, sig, p[i].info);
			else
				r = sys3(__NR_rt_sigqueueinfo, pid, sig, p[i].info);
			if (r)
				fail(a, "queueing pending signal", sig, r);
		}
		if (p[i].fire == RESTORER_FIRE_ITIMER_REAL)
			itimer_real_fire(a, at);
		else if (p[i].fire >= 0)
			timer_fire(a, &t[p[i].fire]);
	}
}

/* The words the threads meet at live in the argument area, which is writable. */
static void wait_at_least(const uint32_t *w, uint32_t want)
{
	for (;;) {
		uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);

		if (v >= want)
			return;
		sys6(__NR_futex, w, FUTEX_WAIT_PRIVATE, v, 0, 0, 0);
	}
}

static void add_and_wake(const uint32_t *w, uint32_t v)
{
	__atomic_add_fetch((uint32_t *)w, v, __ATOMIC_RELEASE);
	sys6(__NR_futex, w, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

/*
 * The overrun counts of the timers whose signal @tid takes: a thread
 * takes only from its own queue and the process-wide one.
 */
static void take_overruns(const struct restorer_args *a, const struct restorer_attrs *at, int32_t tid, bool leader)
{
	const struct restorer_posix_timer *t = (const void *)at->timers;

	for (uint32_t i = 0; i < at->nr_timers; i++) {
		int32_t to = t[i].notify & K_SIGEV_THREAD_ID ? t[i].notify_tid : 0;

		if (t[i].how == RESTORER_TIMER_OVERRUN && (to == tid || (leader && !to)))
			timer_take_overrun(a, &t[i]);
	}
}

/* ---- per-thread state ---- */

void restorer_thread_attrs(const struct restorer_args *a, const struct restorer_thread_attrs *th)
{
	struct restorer_sched_attr sa = th->sched;
	long r;

	/* Real-time threads have no slack (it reads 0, and 0 would mean "the default"). */
	if (th->timer_slack_ns && (r = sys_prctl(PR_SET_TIMERSLACK, (long)th->timer_slack_ns, 0, 0, 0)))
		fail(a, "PR_SET_TIMERSLACK", (long)th->timer_slack_ns, r);
	r = sys3(__NR_ioprio_set, K_IOPRIO_WHO_PROCESS, 0, th->ioprio);
	if (r)
		fail(a, "ioprio_set", th->ioprio, r);
	if (th->affinity_len && (r = sys3(__NR_sched_setaffinity, 0, th->affinity_len, th->affinity)))
		fail(a, "sched_setaffinity of thread", th->tid, r);
	/* Last: the policy may leave this thread little CPU time for the rest. */
	sa.size = sizeof(sa);
	r = sys3(__NR_sched_setattr, 0, &sa, 0);
	if (r)
		fail(a, "sched_setattr with policy", sa.policy, r);
}

static void install_seccomp(const struct restorer_args *a, const struct restorer_seccomp_filter *f, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct k_sock_fprog prog = { .len = (uint16_t)f[i].len, .filter = f[i].prog };
		long r = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, f[i].flags, &prog);

		if (r)
			fail(a, "installing seccomp filter", i, r);
	}
}

/* ---- credentials ---- */

static void set_caps(const struct restorer_args *a, uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};
	long r = sys2(__NR_capset, &hdr, data);

	if (r)
		fail(a, "capset with permitted set", (long)prm, r);
}

static uint64_t cur_caps(const struct restorer_args *a, int which)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	long r = sys2(__NR_capget, &hdr, data);

	if (r)
		fail(a, "capget", 0, r);
	if (which == 0)
		return data[0].effective | (uint64_t)data[1].effective << 32;
	return data[0].permitted | (uint64_t)data[1].permitted << 32;
}

/*
 * Ids first, with SECBIT_NO_SETUID_FIXUP so that leaving uid 0 keeps the
 * capabilities the steps after it need; then ambient (needs the cap in
 * permitted and inheritable), bounding and securebits (need CAP_SETPCAP),
 * and the final capability sets last. What is as the engine's already is
 * left alone, so that a restore without those privileges can still work.
 */
static void restore_creds(const struct restorer_args *a, const struct restorer_creds *c)
{
	long r;

	if ((c->change & RESTORER_CREDS_GROUPS) && (r = sys2(__NR_setgroups, c->nr_groups, c->groups)))
		fail(a, "setgroups with groups", c->nr_groups, r);
	if (c->change & RESTORER_CREDS_GIDS) {
		r = sys3(__NR_setresgid, c->gid[0], c->gid[1], c->gid[2]);
		if (r)
			fail(a, "setresgid to", c->gid[0], r);
		sys1(__NR_setfsgid, c->gid[3]);
		if ((uint32_t)sys1(__NR_setfsgid, -1) != c->gid[3])
			fail(a, "setfsgid to", c->gid[3], -1);
	}
	if (c->change & RESTORER_CREDS_UIDS) {
		if ((c->change & RESTORER_CREDS_FIXUP) &&
		    (r = sys_prctl(PR_SET_SECUREBITS, 1 << 2 /* SECBIT_NO_SETUID_FIXUP */, 0, 0, 0)))
			fail(a, "PR_SET_SECUREBITS", 1 << 2, r);
		r = sys3(__NR_setresuid, c->uid[0], c->uid[1], c->uid[2]);
		if (r)
			fail(a, "setresuid to", c->uid[0], r);
		sys1(__NR_setfsuid, c->uid[3]);
		if ((uint32_t)sys1(__NR_setfsuid, -1) != c->uid[3])
			fail(a, "setfsuid to", c->uid[3], -1);
	}

	set_caps(a, cur_caps(a, 0), cur_caps(a, 1), c->cap_inh);
	r = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (r)
		fail(a, "clearing the ambient set", 0, r);
	for (uint32_t cap = 0; cap <= c->last_cap && cap < 64; cap++) {
		if ((c->cap_amb >> cap) & 1) {
			r = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
			if (r)
				fail(a, "raising ambient capability", cap, r);
		}
	}
	for (uint32_t cap = 0; cap <= c->last_cap && cap < 64; cap++) {
		if (!((c->cap_bnd >> cap) & 1) && sys_prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) {
			r = sys_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
			if (r)
				fail(a, "dropping bounding capability", cap, r);
		}
	}
	if ((c->change & (RESTORER_CREDS_SECBITS | RESTORER_CREDS_FIXUP)) &&
	    (r = sys_prctl(PR_SET_SECUREBITS, c->secbits, 0, 0, 0)))
		fail(a, "PR_SET_SECUREBITS", c->secbits, r);
	set_caps(a, c->cap_eff, c->cap_prm, c->cap_inh);
}

/* ---- all of it ---- */

void restorer_attrs_process(const struct restorer_args *a)
{
	const struct restorer_attrs *at = (const void *)a->attrs;
	const struct restorer_posix_timer *t = (const void *)at->timers;
	const struct restorer_rlimit *rl = (const void *)at->rlimits;
	long r;

	/* Now that the memory is in place: READ_IMPLIES_EXEC would have changed how it was mapped. */
	sys1(__NR_personality, at->personality);
	r = sys1(__NR_personality, 0xffffffff);
	if (r != (long)at->personality)
		fail(a, "personality", at->personality, r < 0 ? r : -22);

	/* Timers before the signals: their expiries take their places in the queues. */
	create_timers(a, at);
	take_overruns(a, at, ((const struct restorer_thread *)a->threads)->tid, true);
	queue_pending(a, at, ((const struct restorer_thread *)a->threads)->tid, true);
	add_and_wake(&at->queue_phase, 1);
	/*
	 * A timer armed before a thread's queue is done could put its expiry
	 * ahead of older signals; limits (RLIMIT_NICE, RLIMIT_SIGPENDING) must
	 * not stop what the threads set before.
	 */
	wait_at_least(&at->queued, a->nr_threads - 1);
	for (uint32_t i = 0; i < at->nr_timers; i++)
		if (t[i].how == RESTORER_TIMER_ARM && t[i].value_ns)
			timer_set(a, &t[i], 0, (int64_t)t[i].value_ns, (int64_t)t[i].interval_ns);
	if (!(at->itimers[0].value_sec == 0 && at->itimers[0].value_usec == 0 &&
	      (at->itimers[0].interval_sec || at->itimers[0].interval_usec)))
		itimer_set(a, 0, &at->itimers[0]);

	/* After the queueing, which RLIMIT_SIGPENDING counts; raising limits needs our privileges. */
	for (uint32_t i = 0; i < at->nr_rlimits; i++) {
		struct k_rlimit64 v = { rl[i].cur, rl[i].max };

		r = sys4(__NR_prlimit64, 0, rl[i].resource, &v, 0);
		if (r)
			fail(a, "setting resource limit", rl[i].resource, r);
	}
	r = sys_prctl(PR_SET_CHILD_SUBREAPER, at->child_subreaper, 0, 0, 0);
	if (r)
		fail(a, "PR_SET_CHILD_SUBREAPER", at->child_subreaper, r);
	r = sys_prctl(PR_SET_THP_DISABLE, at->thp_disable & 1, at->thp_disable & ~1u, 0, 0);
	if (r)
		fail(a, "PR_SET_THP_DISABLE", at->thp_disable, r);
}

void restorer_attrs_thread(const struct restorer_args *a, int32_t tid)
{
	const struct restorer_attrs *at = (const void *)a->attrs;
	const struct restorer_thread_attrs *th = NULL, *all = (const void *)at->threads;
	bool leader = tid == ((const struct restorer_thread *)a->threads)->tid;
	const struct restorer_creds *creds;
	long r;

	for (uint32_t i = 0; i < at->nr_threads; i++)
		if (all[i].tid == tid)
			th = &all[i];
	if (th)
		restorer_thread_attrs(a, th);
	/* Its own queue once the leader made the timers (and before it sets the limits). */
	if (!leader) {
		wait_at_least(&at->queue_phase, 1);
		take_overruns(a, at, tid, false);
		queue_pending(a, at, tid, false);
		add_and_wake(&at->queued, 1);
	}
	if (th && th->seccomp_before_creds)
		install_seccomp(a, (const void *)th->seccomp, th->nr_seccomp);
	/* Credentials belong to the thread: every one sets its own. */
	creds = th && th->has_creds ? &th->creds : &at->creds;
	restore_creds(a, creds);
	if (!leader)
		add_and_wake(&at->creds_done, 1);
	/*
	 * A credential change of any thread resets dumpable, which belongs to
	 * the process: set once all are done. The death signal is per thread.
	 */
	if (leader) {
		wait_at_least(&at->creds_done, a->nr_threads - 1);
		r = sys_prctl(PR_SET_DUMPABLE, at->dumpable, 0, 0, 0);
		if (r)
			fail(a, "PR_SET_DUMPABLE", at->dumpable, r);
	}
	r = sys_prctl(PR_SET_PDEATHSIG, leader ? at->pdeathsig : 0, 0, 0, 0);
	if (r)
		fail(a, "PR_SET_PDEATHSIG", at->pdeathsig, r);
	/* CPU-time itimers last: every instruction from here on counts. */
	if (leader) {
		itimer_set(a, 1, &at->itimers[1]);
		itimer_set(a, 2, &at->itimers[2]);
	}
	if (creds->no_new_privs && (r = sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)))
		fail(a, "PR_SET_NO_NEW_PRIVS", 1, r);
	/* The engine keeps them suspended (PTRACE_O_SUSPEND_SECCOMP) until it lets the process go. */
	if (th && !th->seccomp_before_creds)
		install_seccomp(a, (const void *)th->seccomp, th->nr_seccomp);
}

void restorer_attrs_before_threads(const struct restorer_args *a)
{
	const struct restorer_attrs *at = (const void *)a->attrs;

	/*
	 * With the engine's credentials (it holds CAP_SYS_ADMIN when there are
	 * filters), and suspended by it (PTRACE_O_SUSPEND_SECCOMP, which the
	 * threads inherit) until it lets the process go.
	 */
	if (at)
		install_seccomp(a, (const void *)at->shared_seccomp, at->nr_shared_seccomp);
}
