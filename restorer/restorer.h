/*
 * The engine <-> restorer contract. The engine maps the restorer blob into
 * a hole that neither its own layout nor the restored one uses, follows it
 * with struct restorer_args and the arrays it points to, and jumps in. All
 * pointers are addresses inside that region.
 */
#ifndef SNAP_RESTORER_H
#define SNAP_RESTORER_H

#include <stdint.h>
#include <linux/prctl.h>

#define RESTORER_STACK_SIZE	   (64u << 10)
#define RESTORER_THREAD_STACK_SIZE (16u << 10)
#define RESTORER_NSIG		   64

/* One memory area premapped (and filled) by the engine, to be moved into place. */
struct restorer_vma {
	uint64_t start, end; /* final place */
	uint64_t premap;     /* where it is now */
	uint32_t prot;	     /* final protection */
	uint32_t premap_prot;
	uint64_t madv; /* bit n set: madvise(start, len, n) once in place */
};

/*
 * Stored pages mapped copy-on-write from the page file (SNAP_RESTORE_MAP_PAGES)
 * over their area once it is in place: mremap moves one VMA at a time, so
 * areas are moved whole first and split by these mappings afterwards.
 */
struct restorer_map_run {
	uint64_t start, len;
	uint64_t offset; /* in the page file */
	uint32_t prot;	 /* the area's final protection */
	uint32_t flags;	 /* MAP_NORESERVE if its area has it */
};

/* A kernel-provided area ([vdso], [vvar], [vvar_vclock]) of the new process. */
struct restorer_special {
	uint64_t cur; /* where the engine's copy of it is */
	uint64_t len;
	uint64_t scratch; /* parked here while the old layout is torn down */
	uint64_t target;  /* final place, or 0 to drop it */
};

struct restorer_range {
	uint64_t start, end;
};

/* struct kernel_sigaction for rt_sigaction(2) with an 8-byte mask. */
struct restorer_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/*
 * Attributes (restorer/attrs.c), applied in this order after the memory
 * and the task's registrations are in place: the seccomp filters every
 * thread shares (by the leader, before it creates the others, under the
 * engine's PTRACE_O_SUSPEND_SECCOMP); then in the leader personality,
 * POSIX timers and itimer values, the pending signals of the process and
 * its own, while each other thread sets its scheduling and queues its own
 * signals; resource limits, prctl state; then in every thread its
 * scheduling, credentials, the prctl state that a credential change
 * resets, CPU-time itimers, and its own seccomp filters last.
 */
/* What differs from the credentials the new process starts with (the engine's): only that is set. */
enum {
	RESTORER_CREDS_GROUPS = 1 << 0,
	RESTORER_CREDS_GIDS = 1 << 1,
	RESTORER_CREDS_UIDS = 1 << 2,
	RESTORER_CREDS_SECBITS = 1 << 3,
	RESTORER_CREDS_FIXUP = 1 << 4, /* SECBIT_NO_SETUID_FIXUP while leaving uid 0 */
};

struct restorer_creds {
	uint32_t uid[4], gid[4]; /* real, effective, saved, fs */
	uint64_t groups;	 /* uint32_t[nr_groups] */
	uint32_t nr_groups;
	uint32_t secbits;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t last_cap; /* capabilities 0..last_cap exist on this kernel */
	uint32_t no_new_privs;
	uint32_t change; /* RESTORER_CREDS_* */
	uint32_t pad;
};

struct restorer_rlimit {
	uint32_t resource, pad;
	uint64_t cur, max;
};

struct restorer_itimer {
	uint64_t value_sec, value_usec, interval_sec, interval_usec;
};

enum {
	RESTORER_TIMER_ARM = 0,	    /* timer_settime(value, interval); value 0 leaves it disarmed */
	RESTORER_TIMER_FIRED = 1,   /* a pending signal entry makes it expire */
	RESTORER_TIMER_OVERRUN = 2, /* expire it in the past and take the signal: overrun, then arm */
};

struct restorer_posix_timer {
	int32_t id, clock_id;
	int32_t notify, signo;
	int32_t notify_tid, overrun;
	uint64_t sigval;
	uint64_t value_ns, interval_ns; /* value 0: disarmed */
	uint32_t how;			/* RESTORER_TIMER_* */
	uint32_t pad;
};

/*
 * One entry of a signal queue, in queue order. An expiry of a timer is not
 * queued as a copy but made by the timer itself (it fires at once), so
 * that its delivery rearms the timer and counts overruns as it would have.
 */
#define RESTORER_FIRE_NONE	  (-1)
#define RESTORER_FIRE_ITIMER_REAL (-2) /* queue the copy, then let ITIMER_REAL expire into it */
struct restorer_siginfo {
	int32_t tid;	/* 0: the process-wide queue */
	int32_t fire;	/* RESTORER_FIRE_*, or the index of the POSIX timer that fires instead */
	uint32_t queue; /* queue info as a copy */
	uint32_t pad;
	uint8_t info[128];
};

struct restorer_seccomp_filter {
	uint64_t prog; /* struct sock_filter[len] */
	uint32_t len;
	uint32_t flags;
};

/* struct sched_attr of sched_setattr(2), SCHED_ATTR_SIZE_VER1. */
struct restorer_sched_attr {
	uint32_t size;
	uint32_t policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

struct restorer_thread_attrs {
	int32_t tid;
	uint32_t ioprio;
	uint64_t timer_slack_ns;
	struct restorer_sched_attr sched;
	uint64_t affinity; /* CPU mask bytes */
	uint32_t affinity_len;
	uint32_t nr_seccomp;
	uint64_t seccomp; /* struct restorer_seccomp_filter[nr_seccomp], oldest first, after the shared ones */
	uint32_t seccomp_before_creds; /* the thread's restored credentials could not install them */
	uint32_t has_creds;	       /* its own credentials, else the process's (restorer_attrs.creds) */
	struct restorer_creds creds;
};

struct restorer_attrs {
	uint32_t personality;
	uint32_t dumpable, pdeathsig, child_subreaper, thp_disable;
	uint32_t nr_rlimits;
	uint64_t rlimits;		   /* struct restorer_rlimit[] */
	struct restorer_itimer itimers[3]; /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
	uint32_t nr_timers;
	uint32_t timer_ids_prctl; /* PR_TIMER_CREATE_RESTORE_IDS is there; else ids come linearly */
	uint64_t timers;	  /* struct restorer_posix_timer[] */
	uint32_t nr_pending;
	uint32_t nr_shared_seccomp; /* filters every thread has: installed by the leader before the others exist */
	uint64_t pending;	    /* struct restorer_siginfo[] */
	struct restorer_creds creds;
	uint32_t nr_threads;
	uint32_t pad;
	uint64_t threads;	 /* struct restorer_thread_attrs[]: [0] is the thread running the restorer */
	uint64_t shared_seccomp; /* struct restorer_seccomp_filter[nr_shared_seccomp], oldest first */
	/*
	 * A signal with a kernel's or tgkill's si_code may be queued only by
	 * the thread it is for: each thread queues its own. Written in the
	 * new process: the leader sets queue_phase to 1 once the timers exist
	 * and its own queues are done; every other thread counts itself into
	 * queued when its queue is done, and the leader waits for all of them
	 * before it arms the timers and sets the limits.
	 */
	uint32_t queue_phase, queued;
	uint32_t creds_done; /* threads other than the leader that set their credentials (they reset dumpable) */
	uint32_t pad3;
};

/* What each thread sets for itself before it returns into its registers. */
struct restorer_thread {
	int32_t tid;
	int32_t has_rseq;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_list_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	char comm[16];
	uint64_t tls[2];       /* arch_blob_set_tls() */
	uint64_t sigreturn_sp; /* frame built by arch_build_sigframe() */
	uint64_t stack_top;    /* the restorer's stack in this thread (not used by the leader) */
	uint64_t args;	       /* back to struct restorer_args, for failure reports */
};

struct restorer_args {
	int32_t status_fd; /* error text to the engine; closed on success */
	int32_t exe_fd;	   /* for PR_SET_MM_MAP, closed after use */
	uint32_t umask;
	uint32_t nr_threads;
	uint64_t threads; /* struct restorer_thread[nr_threads]; [0] is the leader */

	uint64_t vmas; /* struct restorer_vma[nr_vmas] */
	uint32_t nr_vmas;
	uint32_t nr_unmap;
	uint64_t unmap;	  /* struct restorer_range[nr_unmap]: everything of the engine's */
	uint64_t special; /* struct restorer_special[nr_special] */
	uint32_t nr_special;
	uint32_t nr_sigactions;

	struct prctl_mm_map mm; /* auxv points into this region */

	struct restorer_sigaction sigactions[RESTORER_NSIG]; /* index = signal - 1 */

	uint64_t attrs; /* struct restorer_attrs */

	uint64_t map_runs; /* struct restorer_map_run[nr_map_runs], by address, each inside one of vmas */
	uint32_t nr_map_runs;
	int32_t map_fd; /* the page file they come from; closed once mapped */
};

#endif
