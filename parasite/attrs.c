/* Parasite side of the attributes dump: credentials, prctl state and timers, as only the task can read them. */
#include <linux/capability.h>
#include <linux/prctl.h>

#include "parasite-attrs.h"
#include "rt.h"

/* Kernel ABI structs of getitimer(2) and timer_gettime(2) on 64-bit CPUs. */
struct k_timeval {
	int64_t sec, usec;
};

struct k_itimerval {
	struct k_timeval interval, value;
};

struct k_timespec {
	int64_t sec, nsec;
};

struct k_itimerspec {
	struct k_timespec interval, value;
};

long parasite_dump_creds(struct parasite_creds *at)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	long r;

	r = sys3(__NR_getresuid, &at->uid[0], &at->uid[1], &at->uid[2]);
	if (!r)
		r = sys3(__NR_getresgid, &at->gid[0], &at->gid[1], &at->gid[2]);
	if (r)
		return r;
	/* An invalid id changes nothing and returns the current one. */
	at->uid[3] = (uint32_t)sys1(__NR_setfsuid, -1);
	at->gid[3] = (uint32_t)sys1(__NR_setfsgid, -1);

	r = sys2(__NR_getgroups, 0, 0);
	if (r < 0)
		return r;
	at->nr_groups = (uint32_t)r;
	if (r > 0 && r <= PARASITE_MAX_GROUPS) {
		r = sys2(__NR_getgroups, r, at->groups);
		if (r < 0)
			return r;
		at->nr_groups = (uint32_t)r;
	}

	r = sys2(__NR_capget, &hdr, data);
	if (r)
		return r;
	at->cap_eff = data[0].effective | (uint64_t)data[1].effective << 32;
	at->cap_prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	at->cap_inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	at->cap_bnd = at->cap_amb = 0;
	/* The bounding set answers for every capability the kernel knows, and EINVAL past the last. */
	for (int cap = 0; cap < 64; cap++) {
		r = sys_prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (r < 0)
			break;
		at->last_cap = (uint32_t)cap;
		if (r)
			at->cap_bnd |= 1ull << cap;
		r = sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
		if (r < 0)
			return r;
		if (r)
			at->cap_amb |= 1ull << cap;
	}
	r = sys_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (r < 0)
		return r;
	at->secbits = (uint32_t)r;
	r = sys_prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	if (r < 0)
		return r;
	at->no_new_privs = (uint32_t)r;
	return 0;
}

static long dump_prctl(struct parasite_attrs *at)
{
	int v = 0;
	long r;

	r = sys_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (r < 0)
		return r;
	at->dumpable = (uint32_t)r;
	r = sys_prctl(PR_GET_PDEATHSIG, (long)&v, 0, 0, 0);
	if (r < 0)
		return r;
	at->pdeathsig = (uint32_t)v;
	v = 0;
	r = sys_prctl(PR_GET_CHILD_SUBREAPER, (long)&v, 0, 0, 0);
	if (r < 0)
		return r;
	at->child_subreaper = (uint32_t)v;
	r = sys_prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (r < 0)
		return r;
	at->thp_disable = (uint32_t)r;
	r = sys_prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (r < 0)
		return r;
	at->timer_slack_ns = (uint64_t)r;
	for (int i = 0; i < PARASITE_NR_RLIMITS; i++) {
		r = sys4(__NR_prlimit64, 0, i, 0, &at->rlimits[i]);
		if (r)
			return r;
	}
	return 0;
}

static long dump_timers(struct parasite_attrs *at)
{
	long r;

	for (int which = 0; which < 3; which++) {
		struct k_itimerval v;

		r = sys2(__NR_getitimer, which, &v);
		if (r)
			return r;
		at->itimers[which] = (struct parasite_itimer){ (uint64_t)v.value.sec, (uint64_t)v.value.usec,
							       (uint64_t)v.interval.sec, (uint64_t)v.interval.usec };
	}
	if (at->nr_timers > PARASITE_MAX_TIMERS)
		return -7; /* E2BIG */
	for (uint32_t i = 0; i < at->nr_timers; i++) {
		struct parasite_posix_timer *t = &at->timers[i];
		struct k_itimerspec v;

		r = sys2(__NR_timer_gettime, t->id, &v);
		if (r)
			return r;
		t->value_sec = (uint64_t)v.value.sec;
		t->value_nsec = (uint64_t)v.value.nsec;
		t->interval_sec = (uint64_t)v.interval.sec;
		t->interval_nsec = (uint64_t)v.interval.nsec;
		r = sys1(__NR_timer_getoverrun, t->id);
		if (r < 0)
			return r;
		t->overrun = (int32_t)r;
	}
	return 0;
}

long parasite_dump_attrs(struct parasite_shared *sh)
{
	long r = parasite_dump_creds(&sh->attrs.creds);

	if (!r)
		r = dump_prctl(&sh->attrs);
	if (!r)
		r = dump_timers(&sh->attrs);
	return r;
}
