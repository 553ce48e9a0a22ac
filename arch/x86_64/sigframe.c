/* x86_64 rt_sigreturn frame: what the kernel reads back when a signal handler returns. */
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "arch.h"

/* Kernel ABI (arch/x86/include/uapi/asm/sigcontext.h, ucontext.h); own names to avoid glibc's. */
struct x86_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

struct x86_stack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

struct x86_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct x86_stack uc_stack;
	struct x86_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};

struct x86_rt_sigframe {
	uint64_t pretcode; /* popped by the handler's ret: rt_sigreturn finds the frame at sp - 8 */
	struct x86_ucontext uc;
	uint8_t info[128];
};

#define UC_FP_XSTATE	     0x1
#define UC_SIGCONTEXT_SS     0x2
#define UC_STRICT_RESTORE_SS 0x4
#define XSTATE_SW_MAGIC1     0x46505853u
#define XSTATE_SW_MAGIC2     0x46505845u
#define FX_SW_BYTES_OFFSET   464

#define ERESTARTSYS	      512
#define ERESTARTNOINTR	      513
#define ERESTARTNOHAND	      514
#define ERESTART_RESTARTBLOCK 516

static size_t align64(size_t v)
{
	return (v + 63) & ~(size_t)63;
}

static uint32_t xsave_user_size(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid_count(0xd, 0, &a, &b, &c, &d))
		return 576;
	return b;
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

size_t arch_sigframe_size(const ThreadCoreEntry *tc)
{
	size_t xs = xsave_user_size();

	if (tc->x86 && tc->x86->xsave.len > xs)
		xs = tc->x86->xsave.len;
	return align64(sizeof(struct x86_rt_sigframe)) + xs + 64;
}

int arch_build_sigframe(struct snap_ctx *ctx, const ThreadCoreEntry *tc, void *buf, size_t size, uint64_t frame_addr,
			uint64_t *ret_sp, uint64_t ret_tls[2])
{
	const X86Gpregs *g = tc->x86->gpregs;
	struct x86_rt_sigframe *f = buf;
	struct x86_sigcontext *sc = &f->uc.uc_mcontext;
	size_t fp_off = align64(sizeof(*f));
	uint32_t xstate_size = xsave_user_size();
	uint8_t *fp = (uint8_t *)buf + fp_off;
	uint32_t magic1 = XSTATE_SW_MAGIC1, magic2 = XSTATE_SW_MAGIC2, ext = xstate_size + 4;
	uint64_t xfeatures = xgetbv0();
	int64_t ax = (int64_t)g->ax;

	if (size < arch_sigframe_size(tc) || (frame_addr & 63))
		return snap_fail(ctx, -EINVAL, "tid %d: no room for the signal frame", tc->tid);
	memset(buf, 0, size);

	sc->r8 = g->r8, sc->r9 = g->r9, sc->r10 = g->r10, sc->r11 = g->r11;
	sc->r12 = g->r12, sc->r13 = g->r13, sc->r14 = g->r14, sc->r15 = g->r15;
	sc->di = g->di, sc->si = g->si, sc->bp = g->bp, sc->bx = g->bx;
	sc->dx = g->dx, sc->ax = g->ax, sc->cx = g->cx, sc->sp = g->sp;
	sc->ip = g->ip, sc->flags = g->flags;
	sc->cs = (uint16_t)g->cs, sc->ss = (uint16_t)g->ss;
	sc->fs = (uint16_t)g->fs, sc->gs = (uint16_t)g->gs;

	/*
	 * Frozen inside an interrupted system call: rt_sigreturn disables the
	 * kernel's restart logic, so do what it would have done with no handler
	 * to run. A restart block is kernel state we do not have, so such a
	 * call starts over with its arguments — except that a relative sleep
	 * which asked for the remaining time got it written to user memory
	 * when it was interrupted (and that memory is in the image): it sleeps
	 * just that. Others (poll, futex timeouts) wait their full time again.
	 */
	if ((int64_t)g->orig_ax >= 0) {
		switch (-ax) {
		case ERESTART_RESTARTBLOCK:
			if (g->orig_ax == __NR_nanosleep && g->si)
				sc->di = g->si; /* nanosleep(req, rem) -> nanosleep(rem, rem) */
			else if (g->orig_ax == __NR_clock_nanosleep && !(g->si & TIMER_ABSTIME) && g->r10)
				sc->dx = g->r10; /* clock_nanosleep(clk, 0, req, rem) -> (clk, 0, rem, rem) */
						 /* fall through */
		case ERESTARTSYS:
		case ERESTARTNOINTR:
		case ERESTARTNOHAND:
			sc->ax = g->orig_ax;
			sc->ip = g->ip - 2;
			break;
		}
	}

	memcpy(fp, tc->x86->xsave.data, tc->x86->xsave.len);
	/* The software-reserved bytes tell the kernel this is a full XSAVE frame. */
	memcpy(fp + FX_SW_BYTES_OFFSET, &magic1, 4);
	memcpy(fp + FX_SW_BYTES_OFFSET + 4, &ext, 4);
	memcpy(fp + FX_SW_BYTES_OFFSET + 8, &xfeatures, 8);
	memcpy(fp + FX_SW_BYTES_OFFSET + 16, &xstate_size, 4);
	memcpy(fp + xstate_size, &magic2, 4);
	sc->fpstate = frame_addr + fp_off;

	f->uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f->uc.uc_sigmask = tc->blocked;
	if (tc->has_altstack_sp && tc->altstack_size) {
		f->uc.uc_stack.ss_sp = tc->altstack_sp;
		f->uc.uc_stack.ss_size = tc->altstack_size;
		f->uc.uc_stack.ss_flags = (int32_t)(tc->altstack_flags & ~SS_ONSTACK);
	} else {
		f->uc.uc_stack.ss_flags = SS_DISABLE;
	}

	*ret_sp = frame_addr + sizeof(f->pretcode);
	ret_tls[0] = g->fs_base;
	ret_tls[1] = g->gs_base;
	return 0;
}

__attribute__((noreturn)) void arch_jump(uint64_t entry, uint64_t sp, uint64_t arg)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%1\n\t"
			 :
			 : "r"(sp), "r"(entry), "D"(arg)
			 : "memory");
	__builtin_unreachable();
}

/* The XSAVE area in the frame carries every register this backend saves. */
int arch_thread_restore_late(struct snap_ctx *ctx, pid_t tid, const ThreadCoreEntry *tc)
{
	(void)ctx, (void)tid, (void)tc;
	return 0;
}
