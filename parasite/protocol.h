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
#define PARASITE_NSIG 64

enum parasite_mode {
	PARASITE_MODE_DAEMON = 1,
	PARASITE_MODE_THREAD = 2,
};

enum parasite_cmd {
	PARASITE_CMD_DUMP_SIGACTIONS = 1, /* fills sigactions */
	PARASITE_CMD_DUMP_MISC = 2,	  /* fills misc and leader */
	PARASITE_CMD_FINI = 3,		  /* acknowledge, close the socket, trap */
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

/* State only the thread itself can tell. */
struct parasite_thread_info {
	uint64_t clear_child_tid; /* PR_GET_TID_ADDRESS */
	uint64_t altstack_sp;
	uint64_t altstack_size;
	int32_t altstack_flags;
	int32_t ret; /* 0 or -errno */
};

/* Argument of thread mode. */
struct parasite_thread_args {
	uint32_t mode; /* PARASITE_MODE_THREAD */
	uint32_t pad;
	struct parasite_thread_info info;
};

struct parasite_shared {
	uint32_t mode;	   /* PARASITE_MODE_DAEMON */
	int32_t sock_fd;   /* the parasite's end, set by the engine */
	int32_t socks[2];  /* socketpair(2) result of the injected call */
	struct parasite_sigaction sigactions[PARASITE_NSIG]; /* index = signal - 1 */
	struct parasite_misc misc;
	struct parasite_thread_info leader; /* the daemon's own thread */
	struct parasite_thread_args thread; /* for the thread being asked */
	char scratch[64];  /* strings for injected calls */
};

#endif
