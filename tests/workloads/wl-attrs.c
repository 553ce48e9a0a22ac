/*
 * Workload: resource limits, personality, scheduling policy, nice value,
 * CPU affinity, I/O priority, oom_score_adj and prctl state (dumpable,
 * parent-death signal, child subreaper, THP disable, timer slack).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/ioprio.h>
#include <linux/sched.h>

#include "wl.h"

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

struct sched_attr_v1 {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* Limits changed from what the harness gives; every other one must stay as it was too. */
static const struct {
	int res;
	rlim_t cur, max;
} limits[] = {
	{ RLIMIT_NOFILE, 200, 300 },
	{ RLIMIT_CORE, 1024, 8192 },
	{ RLIMIT_STACK, 6 << 20, 16 << 20 },
	{ RLIMIT_CPU, 1000, 2000 },
	{ RLIMIT_FSIZE, 1ul << 40, 1ul << 41 },
	{ RLIMIT_MSGQUEUE, 400000, 700000 },
	{ RLIMIT_LOCKS, 100, 200 },
	{ RLIMIT_SIGPENDING, 5000, 6000 },
	{ RLIMIT_MEMLOCK, 4 << 20, 6 << 20 },
	{ RLIMIT_RTTIME, 5000000, 9000000 },
};

#define PERSONALITY   (PER_LINUX | UNAME26 | ADDR_NO_RANDOMIZE)
#define NICE	      7
#define IOPRIO	      ((IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 6)
#define OOM_SCORE_ADJ 345
#define TIMER_SLACK   123456

static struct {
	struct rlimit rl[RLIM_NLIMITS];
	cpu_set_t cpus;
	int cpu;
	unsigned long thp;
	char release[65];
} before;

static int read_oom_score_adj(void)
{
	char buf[32] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC), n;

	if (fd < 0)
		return -10000;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -10000;
}

static void setup(void)
{
	struct sched_attr_v1 sa = {
		.size = sizeof(sa), .policy = SCHED_BATCH, .flags = SCHED_FLAG_RESET_ON_FORK, .nice = NICE
	};
	struct utsname u;
	char buf[16];
	int fd, n;

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl = { limits[i].cur, limits[i].max };

		if (setrlimit(limits[i].res, &rl))
			wl_die("setrlimit(%d) failed: %m", limits[i].res);
	}
	for (int i = 0; i < RLIM_NLIMITS; i++)
		if (getrlimit(i, &before.rl[i]))
			wl_die("getrlimit(%d) failed: %m", i);

	if (personality(PERSONALITY) < 0 || personality(0xffffffff) != PERSONALITY)
		wl_die("personality failed: %m");
	if (uname(&u))
		wl_die("uname failed: %m");
	snprintf(before.release, sizeof(before.release), "%s", u.release);

	if (syscall(SYS_sched_setattr, 0, &sa, 0))
		wl_die("sched_setattr(SCHED_BATCH, nice %d) failed: %m", NICE);
	/* One CPU: the highest we may use, so that it is not the default by chance. */
	if (sched_getaffinity(0, sizeof(before.cpus), &before.cpus))
		wl_die("sched_getaffinity failed: %m");
	for (int c = CPU_SETSIZE - 1; c >= 0; c--) {
		if (CPU_ISSET(c, &before.cpus)) {
			before.cpu = c;
			break;
		}
	}
	CPU_ZERO(&before.cpus);
	CPU_SET(before.cpu, &before.cpus);
	if (sched_setaffinity(0, sizeof(before.cpus), &before.cpus))
		wl_die("sched_setaffinity failed: %m");
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO))
		wl_die("ioprio_set failed: %m");

	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	n = snprintf(buf, sizeof(buf), "%d", OOM_SCORE_ADJ);
	if (fd < 0 || write(fd, buf, n) != n)
		wl_die("cannot set oom_score_adj: %m");
	close(fd);

	if (prctl(PR_SET_DUMPABLE, 0) || prctl(PR_SET_PDEATHSIG, SIGTERM) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_TIMERSLACK, TIMER_SLACK))
		wl_die("prctl failed: %m");
	/* Linux 6.18 has a flag for THP disable; older kernels take none. */
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_die("PR_SET_THP_DISABLE failed: %m");
	before.thp = (unsigned long)prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
}

static void check(void)
{
	struct sched_attr_v1 sa = { 0 };
	struct utsname u;
	cpu_set_t cpus;
	int v = -1;
	long r;

	for (int i = 0; i < RLIM_NLIMITS; i++) {
		struct rlimit rl;

		if (getrlimit(i, &rl))
			wl_fail("getrlimit(%d) failed: %m", i);
		else
			wl_expect(rl.rlim_cur == before.rl[i].rlim_cur && rl.rlim_max == before.rl[i].rlim_max,
				  "resource limit %d is %llu/%llu, was %llu/%llu", i, (unsigned long long)rl.rlim_cur,
				  (unsigned long long)rl.rlim_max, (unsigned long long)before.rl[i].rlim_cur,
				  (unsigned long long)before.rl[i].rlim_max);
	}
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl = { 0, 0 };

		getrlimit(limits[i].res, &rl);
		wl_expect(rl.rlim_cur == limits[i].cur && rl.rlim_max == limits[i].max,
			  "resource limit %d is %llu/%llu, expected %llu/%llu", limits[i].res,
			  (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			  (unsigned long long)limits[i].cur, (unsigned long long)limits[i].max);
	}

	r = personality(0xffffffff);
	wl_expect(r == PERSONALITY, "personality is %#lx, expected %#x", r, PERSONALITY);
	wl_expect(!uname(&u) && !strcmp(u.release, before.release) && !strncmp(u.release, "2.6.", 4),
		  "uname says release %s, was %s (UNAME26)", u.release, before.release);

	if (syscall(SYS_sched_getattr, 0, &sa, sizeof(sa), 0)) {
		wl_fail("sched_getattr failed: %m");
	} else {
		wl_expect(sa.policy == SCHED_BATCH, "scheduling policy is %u, expected SCHED_BATCH", sa.policy);
		wl_expect(sa.nice == NICE, "nice value is %d, expected %d", sa.nice, NICE);
		wl_expect(sa.flags & SCHED_FLAG_RESET_ON_FORK, "SCHED_FLAG_RESET_ON_FORK is lost (flags %#llx)",
			  (unsigned long long)sa.flags);
	}
	errno = 0;
	r = getpriority(PRIO_PROCESS, 0);
	wl_expect(r == NICE && !errno, "getpriority gives %ld, expected %d", r, NICE);
	if (sched_getaffinity(0, sizeof(cpus), &cpus))
		wl_fail("sched_getaffinity failed: %m");
	else
		wl_expect(CPU_EQUAL(&cpus, &before.cpus), "CPU affinity is %d CPUs, expected only CPU %d",
			  CPU_COUNT(&cpus), before.cpu);
	r = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	wl_expect(r == IOPRIO, "I/O priority is %#lx, expected %#x", r, IOPRIO);
	v = read_oom_score_adj();
	wl_expect(v == OOM_SCORE_ADJ, "oom_score_adj is %d, expected %d", v, OOM_SCORE_ADJ);

	r = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	wl_expect(r == 0, "dumpable is %ld, expected 0", r);
	v = -1;
	prctl(PR_GET_PDEATHSIG, &v);
	wl_expect(v == SIGTERM, "parent-death signal is %d, expected SIGTERM", v);
	v = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &v);
	wl_expect(v == 1, "child subreaper is %d, expected 1", v);
	r = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	wl_expect(r == (long)before.thp && (r & 1), "THP disable is %ld, was %lu", r, before.thp);
	r = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	wl_expect(r == TIMER_SLACK, "timer slack is %ld, expected %d", r, TIMER_SLACK);
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
