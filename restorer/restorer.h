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

#define RESTORER_STACK_SIZE (64u << 10)
#define RESTORER_THREAD_STACK_SIZE (16u << 10)
#define RESTORER_NSIG 64

/* One memory area premapped (and filled) by the engine, to be moved into place. */
struct restorer_vma {
	uint64_t start, end; /* final place */
	uint64_t premap;     /* where it is now */
	uint32_t prot;	     /* final protection */
	uint32_t premap_prot;
	uint64_t madv; /* bit n set: madvise(start, len, n) once in place */
};

/* A kernel-provided area ([vdso], [vvar], [vvar_vclock]) of the new process. */
struct restorer_special {
	uint64_t cur;	  /* where the engine's copy of it is */
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
	int32_t pdeathsig; /* the engine sets SIGKILL until it traces the process; this is the image's */
	uint32_t pad;
	uint64_t threads; /* struct restorer_thread[nr_threads]; [0] is the leader */

	uint64_t vmas; /* struct restorer_vma[nr_vmas] */
	uint32_t nr_vmas;
	uint32_t nr_unmap;
	uint64_t unmap; /* struct restorer_range[nr_unmap]: everything of the engine's */
	uint64_t special; /* struct restorer_special[nr_special] */
	uint32_t nr_special;
	uint32_t nr_sigactions;

	struct prctl_mm_map mm; /* auxv points into this region */

	struct restorer_sigaction sigactions[RESTORER_NSIG]; /* index = signal - 1 */

};

#endif
