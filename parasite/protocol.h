/*
 * The engine <-> parasite contract. The parasite lives in a memory area
 * shared with the engine (a memfd both map): [blob | struct parasite_shared
 * | stack]. Commands and acknowledgements travel over a SOCK_SEQPACKET
 * socket; bulky results are written into struct parasite_shared, which the
 * engine reads in place.
 */
#ifndef SNAP_PARASITE_PROTOCOL_H
#define SNAP_PARASITE_PROTOCOL_H

#include <stdint.h>

#define PARASITE_STACK_SIZE (64u << 10)
#define PARASITE_NSIG 64

enum parasite_cmd {
	PARASITE_CMD_DUMP_SIGACTIONS = 1, /* fills sigactions */
	PARASITE_CMD_DUMP_MISC = 2,	  /* fills misc */
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

struct parasite_misc {
	uint64_t clear_child_tid; /* PR_GET_TID_ADDRESS */
	uint64_t brk;		  /* brk(0) */
	uint64_t altstack_sp;
	uint64_t altstack_size;
	int32_t altstack_flags;
	uint32_t personality;
};

struct parasite_shared {
	int32_t sock_fd;   /* the parasite's end, set by the engine */
	int32_t socks[2];  /* socketpair(2) result of the injected call */
	int32_t pad;
	struct parasite_sigaction sigactions[PARASITE_NSIG]; /* index = signal - 1 */
	struct parasite_misc misc;
	char scratch[64];  /* strings for injected calls */
};

#endif
