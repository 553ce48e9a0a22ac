/*
 * The engine <-> parasite contract. The parasite lives in a memory area
 * shared with the engine (a memfd both map): [blob | struct parasite_shared
 * | daemon stack | thread stack]. It runs in two modes:
 * - daemon, in one thread: commands and acknowledgements travel over a
 *   SOCK_SEQPACKET socket; bulky results are written into struct
 *   parasite_shared, which the engine reads in place;
 * - thread, in each other thread, one at a time: it fills its
 *   struct parasite_thread_args and stops for the tracer.
 * blob_main's argument starts with the mode either way.
 */
#ifndef SNAP_PARASITE_PROTOCOL_H
#define SNAP_PARASITE_PROTOCOL_H

#include <stdint.h>

#define PARASITE_STACK_SIZE (64u << 10)
#define PARASITE_NSIG	    64

enum parasite_mode {
	PARASITE_MODE_DAEMON = 1,
	PARASITE_MODE_THREAD = 2,
};

enum parasite_cmd {
	PARASITE_CMD_DUMP_SIGACTIONS = 1, /* fills sigactions */
	PARASITE_CMD_DUMP_MISC = 2,	  /* fills misc and leader */
	PARASITE_CMD_FINI = 3,		  /* acknowledge, close the socket, trap */
	PARASITE_CMD_DUMP_ATTRS = 4,	  /* fills attrs (timer ids in attrs.timers[].id are input) */
};

struct parasite_cmd_msg {
	uint32_t cmd;
	uint32_t pad;
};

struct parasite_reply_msg {
	uint32_t cmd;
	int32_t ret; /* 0 or -errno of the failing syscall */
};

/* struct kernel_sigaction as rt_sigaction(2) sees it (sa_mask of 64 bits). */
struct parasite_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/* Process-wide state. */
struct parasite_misc {
	uint64_t brk; /* brk(0) */
	uint32_t personality;
	uint32_t pad;
};

/* Credentials, which the kernel keeps per thread. */
#define PARASITE_MAX_GROUPS 1024

struct parasite_creds {
	uint32_t uid[4], gid[4]; /* real, effective, saved, fs */
	uint32_t nr_groups;	 /* may exceed PARASITE_MAX_GROUPS: then only that many are listed */
	uint32_t groups[PARASITE_MAX_GROUPS];
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t last_cap; /* highest capability number the kernel knows */
	uint32_t secbits;
	uint32_t no_new_privs;
	uint32_t pad;
};

/* State only the thread itself can tell. */
struct parasite_thread_info {
	uint64_t clear_child_tid; /* PR_GET_TID_ADDRESS */
	uint64_t altstack_sp;
	uint64_t altstack_size;
	int32_t altstack_flags;
	int32_t ret;		 /* 0 or -errno */
	uint64_t timer_slack_ns; /* PR_GET_TIMERSLACK */
	struct parasite_creds creds;
};

/* Argument of thread mode. */
struct parasite_thread_args {
	uint32_t mode; /* PARASITE_MODE_THREAD */
	uint32_t pad;
	struct parasite_thread_info info;
};

/* What only the task itself can tell: credentials, prctl state, timers. */
#define PARASITE_MAX_TIMERS 512
#define PARASITE_NR_RLIMITS 16 /* RLIM_NLIMITS */

struct parasite_itimer {
	uint64_t value_sec, value_usec, interval_sec, interval_usec; /* struct itimerval */
};

struct parasite_posix_timer {
	int32_t id;						     /* in: from /proc/PID/timers */
	int32_t overrun;					     /* timer_getoverrun(2) */
	uint64_t interval_sec, interval_nsec, value_sec, value_nsec; /* struct itimerspec */
};

struct parasite_attrs {
	struct parasite_creds creds; /* of the thread the parasite runs in */
	uint32_t dumpable;
	uint32_t pdeathsig;
	uint32_t child_subreaper;
	uint32_t thp_disable;
	uint64_t timer_slack_ns; /* of the thread the parasite runs in */
	/* prlimit of another user's process needs CAP_SYS_RESOURCE; the process may read its own. */
	struct {
		uint64_t cur, max;
	} rlimits[PARASITE_NR_RLIMITS];
	struct parasite_itimer itimers[3]; /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
	uint32_t nr_timers;		   /* in */
	uint32_t pad2;
	struct parasite_posix_timer timers[PARASITE_MAX_TIMERS];
};

struct parasite_shared {
	uint32_t mode;					     /* PARASITE_MODE_DAEMON */
	int32_t sock_fd;				     /* the parasite's end, set by the engine */
	int32_t socks[2];				     /* socketpair(2) result of the injected call */
	struct parasite_sigaction sigactions[PARASITE_NSIG]; /* index = signal - 1 */
	struct parasite_misc misc;
	struct parasite_thread_info leader; /* the daemon's own thread */
	struct parasite_thread_args thread; /* for the thread being asked */
	char scratch[64];		    /* strings for injected calls */
	struct parasite_attrs attrs;
};

#endif
