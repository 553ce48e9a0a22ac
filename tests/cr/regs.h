/* Registers of a live thread read from outside with ptrace, for before/after comparisons in tests. */
#ifndef SNAP_TESTS_REGS_H
#define SNAP_TESTS_REGS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tregs {
	uint8_t gp[1024]; /* NT_PRSTATUS */
	size_t gp_len;
	uint8_t fp[32768]; /* the arch's full FPU/vector regset */
	size_t fp_len;
};

/*
 * PTRACE_SEIZE + PTRACE_INTERRUPT, reads both regsets, PTRACE_DETACH: the
 * thread runs on as before (an interrupted restartable syscall restarts).
 * Returns 0 or -errno with h_error() set.
 */
int tregs_read(pid_t tid, struct tregs *out);

/*
 * 0 if @a and @b hold the same registers, else -1 with the differences in
 * @why. The syscall return register may differ only where one of them
 * holds -ERESTART*: a stop inside a syscall may be seen before or after
 * the kernel prepared the restart.
 */
int tregs_compare(const struct tregs *a, const struct tregs *b, char *why, size_t len);

/* Per-CPU part, in regs-<cpu>.c. */
extern const unsigned tregs_arch_fp_note;
int tregs_arch_compare(const struct tregs *a, const struct tregs *b, char *why, size_t len);

/* True for the kernel's internal restart codes (-512 ... -516). */
static inline int tregs_is_restart(long long v)
{
	return v <= -512 && v >= -516;
}

#endif
