/*
 * The engine's interface to the CPU backend (arch/<cpu>/): registers, FPU
 * state, injected system calls and the rt_sigreturn frame. Nothing outside
 * arch/ knows which CPU it runs on.
 */
#ifndef SNAP_ARCH_H
#define SNAP_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"
#include "images/core.pb-c.h"
#include "arch-regs.h" /* struct arch_regs for this CPU */

/* What one thread's CPU state is, as read through ptrace. */
struct arch_thread_state {
	struct arch_regs regs; /* general purpose, including TLS registers */
	void *fpu;	       /* malloc'd extended state (x86: XSAVE area; aarch64: FP/SIMD, then SVE) */
	size_t fpu_size;
};

const char *arch_name(void);

int arch_get_thread(struct snap_ctx *ctx, pid_t tid, struct arch_thread_state *st);
int arch_set_thread(struct snap_ctx *ctx, pid_t tid, const struct arch_thread_state *st);
void arch_thread_state_free(struct arch_thread_state *st);

/* Just the general registers (injection does not touch the FPU). */
int arch_get_regs(pid_t tid, struct arch_regs *regs);
int arch_set_regs(pid_t tid, const struct arch_regs *regs);

/* The system call instruction, to find one in the target's code. */
extern const uint8_t arch_syscall_insn[];
extern const size_t arch_syscall_insn_len;
extern const size_t arch_insn_align; /* instructions start at multiples of this */

/*
 * Sets @regs to run one system call @nr with @args at @ip, which holds a
 * system call instruction; the kernel's restart logic is disabled.
 */
void arch_prepare_syscall(struct arch_regs *regs, uint64_t ip, long nr, const uint64_t args[6]);
long arch_syscall_result(const struct arch_regs *regs);
/* Sets @regs to call a blob function at @ip with stack @sp and one argument. */
void arch_prepare_call(struct arch_regs *regs, uint64_t ip, uint64_t sp, uint64_t arg);
uint64_t arch_regs_sp(const struct arch_regs *regs);
uint64_t arch_regs_ip(const struct arch_regs *regs);

/* Image conversion. arch_thread_to_image allocates into @tc; free with arch_thread_image_free. */
int arch_thread_to_image(struct snap_ctx *ctx, const struct arch_thread_state *st, ThreadCoreEntry *tc);
void arch_thread_image_free(ThreadCoreEntry *tc);
/*
 * At dump, with the thread still frozen: corrects the image's registers
 * where the kernel's view lost something restore needs (aarch64: the
 * remaining time of an interrupted relative sleep).
 */
int arch_thread_dump_fixup(struct snap_ctx *ctx, pid_t tid, ThreadCoreEntry *tc);
/* Checks that this CPU and kernel can take the saved state; names the tid on failure. */
int arch_thread_validate(struct snap_ctx *ctx, const ThreadCoreEntry *tc);

/*
 * Restore: the frame that rt_sigreturn consumes to put the thread into its
 * saved registers. It is built in @buf (which will live at @frame_addr in
 * the restored process, @size bytes available, 64-byte aligned) and
 * *ret_sp is the stack pointer the restorer must set before rt_sigreturn.
 * A thread frozen inside an interrupted system call is set up to restart
 * it, as the kernel would had no signal arrived. *ret_tls gets the values
 * arch_blob_set_tls() needs (arch/<cpu>/blob-arch.h).
 */
size_t arch_sigframe_size(const ThreadCoreEntry *tc);
int arch_build_sigframe(struct snap_ctx *ctx, const ThreadCoreEntry *tc, void *buf, size_t size, uint64_t frame_addr,
			uint64_t *ret_sp, uint64_t ret_tls[2]);

/*
 * Restore, last step: state that rt_sigreturn cannot carry, set through
 * ptrace on the stopped thread @tid after its rt_sigreturn and after the
 * engine's last injected system call, right before it detaches.
 */
int arch_thread_restore_late(struct snap_ctx *ctx, pid_t tid, const ThreadCoreEntry *tc);

/* Jumps to @entry on stack @sp with @arg as the first argument; never returns. */
__attribute__((noreturn)) void arch_jump(uint64_t entry, uint64_t sp, uint64_t arg);

#endif
