/* aarch64 rt_sigreturn frame: what the kernel reads back when a signal handler returns. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ucontext.h>

#include "arch.h"

/*
 * Kernel ABI. struct sigcontext and its records come from the uapi
 * <asm/sigcontext.h> (glibc's <signal.h> includes it); the uapi struct
 * ucontext is not visible beside glibc, so it is spelled out here and
 * checked against glibc's ucontext_t, which mirrors it.
 */
struct a64_stack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

struct a64_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct a64_stack uc_stack;
	uint64_t uc_sigmask;
	uint8_t unused[1024 / 8 - 8]; /* room for glibc's 1024-bit sigset_t */
	struct sigcontext uc_mcontext;
};

/* What sys_rt_sigreturn reads at sp (arch/arm64/kernel/signal.c). */
struct a64_rt_sigframe {
	uint8_t info[128];
	struct a64_ucontext uc;
};

/* The kernel links signal frames into the frame-pointer chain with one of these above the frame. */
struct a64_frame_record {
	uint64_t fp;
	uint64_t lr;
};

#define FPSIMD_SIZE 528u /* struct user_fpsimd_state, the image's form */

_Static_assert(sizeof(struct fpsimd_context) == 0x210, "fpsimd_context");
_Static_assert(offsetof(struct sigcontext, __reserved) == 288, "sigcontext.__reserved");
_Static_assert(offsetof(struct a64_ucontext, uc_stack) == offsetof(ucontext_t, uc_stack), "ucontext.uc_stack");
_Static_assert(offsetof(struct a64_ucontext, uc_sigmask) == offsetof(ucontext_t, uc_sigmask), "ucontext.uc_sigmask");
_Static_assert(offsetof(struct a64_ucontext, uc_mcontext) == offsetof(ucontext_t, uc_mcontext), "ucontext.uc_mcontext");
_Static_assert(offsetof(struct a64_ucontext, uc_mcontext) == 176, "ucontext.uc_mcontext");
_Static_assert(sizeof(struct a64_ucontext) == sizeof(ucontext_t), "ucontext");
_Static_assert(offsetof(struct a64_rt_sigframe, uc) == 128, "rt_sigframe.uc");
_Static_assert(sizeof(struct a64_rt_sigframe) % 16 == 0, "rt_sigframe keeps the stack 16-byte aligned");

size_t arch_sigframe_size(const ThreadCoreEntry *tc)
{
	return sizeof(struct a64_rt_sigframe) + sizeof(struct a64_frame_record);
}

int arch_build_sigframe(struct snap_ctx *ctx, const ThreadCoreEntry *tc, void *buf, size_t size, uint64_t frame_addr,
			uint64_t *ret_sp, uint64_t ret_tls[2])
{
	const Aarch64Thread *a = tc->aarch64;
	struct a64_rt_sigframe *f = buf;
	struct sigcontext *sc = &f->uc.uc_mcontext;
	struct fpsimd_context *fp = (struct fpsimd_context *)sc->__reserved;
	struct _aarch64_ctx *end = (struct _aarch64_ctx *)(fp + 1);
	struct a64_frame_record *rec = (struct a64_frame_record *)(f + 1);

	/* rt_sigreturn reads the frame at sp and refuses an sp that is not 16-byte aligned. */
	if (size < arch_sigframe_size(tc) || (frame_addr & 15))
		return snap_fail(ctx, -EINVAL, "tid %d: no room for the signal frame", tc->tid);
	if (!a || a->n_regs != 31 || a->fpsimd.len != FPSIMD_SIZE)
		return snap_fail(ctx, -EINVAL, "tid %d: image holds no usable aarch64 registers", tc->tid);
	memset(buf, 0, size);

	memcpy(sc->regs, a->regs, sizeof(sc->regs));
	sc->sp = a->sp;
	sc->pc = a->pc;
	sc->pstate = a->pstate;

	/*
	 * The kernel prepares a restart (x0 = orig_x0, pc back onto the svc)
	 * before a stopped thread is reported to ptrace and marks it as out
	 * of its syscall, so images normally hold registers that restart by
	 * themselves. A thread seen before that point still has the
	 * -ERESTART* code in x0; rt_sigreturn disables the kernel's restart
	 * logic, so do what it would have done with no handler to run. A
	 * restart block (nanosleep, poll timeouts) is kernel state we do not
	 * have; x8 still names the original call, which starts over.
	 */
	if (a->has_syscall_nr && a->syscall_nr >= 0 && aarch64_is_restart((int64_t)a->regs[0])) {
		if (!a->has_orig_x0)
			return snap_fail(ctx, -EINVAL, "tid %d: interrupted syscall cannot be restarted", tc->tid);
		sc->regs[0] = a->orig_x0;
		sc->pc = a->pc - 4;
	}

	/* user_fpsimd_state is vregs[32], fpsr, fpcr: the record holds the same fields in another order. */
	fp->head.magic = FPSIMD_MAGIC;
	fp->head.size = sizeof(*fp);
	memcpy(fp->vregs, a->fpsimd.data, sizeof(fp->vregs));
	memcpy(&fp->fpsr, a->fpsimd.data + sizeof(fp->vregs), sizeof(fp->fpsr));
	memcpy(&fp->fpcr, a->fpsimd.data + sizeof(fp->vregs) + 4, sizeof(fp->fpcr));
	end->magic = 0;
	end->size = 0;

	rec->fp = a->regs[29];
	rec->lr = a->regs[30];

	f->uc.uc_sigmask = tc->blocked;
	if (tc->has_altstack_sp && tc->altstack_size) {
		f->uc.uc_stack.ss_sp = tc->altstack_sp;
		f->uc.uc_stack.ss_size = tc->altstack_size;
		f->uc.uc_stack.ss_flags = (int32_t)(tc->altstack_flags & ~SS_ONSTACK);
	} else {
		f->uc.uc_stack.ss_flags = SS_DISABLE;
	}

	*ret_sp = frame_addr;
	ret_tls[0] = a->tls;
	ret_tls[1] = 0;
	return 0;
}

__attribute__((noreturn)) void arch_jump(uint64_t entry, uint64_t sp, uint64_t arg)
{
	register uint64_t x0 __asm__("x0") = arg;
	register uint64_t x16 __asm__("x16") = entry;

	__asm__ volatile("mov sp, %0\n\t"
			 "br %1\n\t"
			 :
			 : "r"(sp), "r"(x16), "r"(x0)
			 : "memory");
	__builtin_unreachable();
}
