/* x86_64 registers and XSAVE state through ptrace regsets, and their image form. */
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include "arch.h"

#define XSAVE_MAX_SIZE	     (64u << 10)
#define XSAVE_HDR_OFFSET     512 /* xstate_bv lives at the start of the XSAVE header */
#define XSAVE_LEGACY_AND_HDR 576

const uint8_t arch_syscall_insn[] = { 0x0f, 0x05 };
const size_t arch_syscall_insn_len = sizeof(arch_syscall_insn);
const size_t arch_insn_align = 1;

const char *arch_name(void)
{
	return "x86_64";
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* Size of the standard-format XSAVE area for the features enabled in XCR0. */
static uint32_t xsave_size_now(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid_count(0xd, 0, &a, &b, &c, &d))
		return 512 + 64;
	return b;
}

int arch_get_regs(pid_t tid, struct arch_regs *regs)
{
	struct iovec iov = { &regs->r, sizeof(regs->r) };

	return ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, &iov) ? -errno : 0;
}

int arch_set_regs(pid_t tid, const struct arch_regs *regs)
{
	struct iovec iov = { (void *)&regs->r, sizeof(regs->r) };

	return ptrace(PTRACE_SETREGSET, tid, NT_PRSTATUS, &iov) ? -errno : 0;
}

int arch_get_thread(struct snap_ctx *ctx, pid_t tid, struct arch_thread_state *st)
{
	struct iovec iov;
	void *buf;
	int r;

	r = arch_get_regs(tid, &st->regs);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read general registers: %s", tid, strerror(-r));
	buf = aligned_alloc(64, XSAVE_MAX_SIZE);
	if (!buf)
		return snap_fail(ctx, -ENOMEM, "tid %d: out of memory for XSAVE state", tid);
	iov.iov_base = buf;
	iov.iov_len = XSAVE_MAX_SIZE;
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov)) {
		r = -errno;
		free(buf);
		return snap_fail(ctx, r, "tid %d: cannot read XSAVE state: %s", tid, strerror(-r));
	}
	st->fpu = buf;
	st->fpu_size = iov.iov_len;
	return 0;
}

int arch_set_thread(struct snap_ctx *ctx, pid_t tid, const struct arch_thread_state *st)
{
	struct iovec iov = { st->fpu, st->fpu_size };
	int r;

	if (st->fpu && ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov)) {
		r = -errno;
		return snap_fail(ctx, r, "tid %d: cannot write XSAVE state: %s", tid, strerror(-r));
	}
	r = arch_set_regs(tid, &st->regs);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot write general registers: %s", tid, strerror(-r));
	return 0;
}

void arch_thread_state_free(struct arch_thread_state *st)
{
	free(st->fpu);
	st->fpu = NULL;
}

void arch_prepare_syscall(struct arch_regs *regs, uint64_t ip, long nr, const uint64_t args[6])
{
	struct user_regs_struct *r = &regs->r;

	r->rip = ip;
	r->rax = (uint64_t)nr;
	r->orig_rax = (uint64_t)-1; /* not in a syscall: no restart fix-up on resume */
	r->rdi = args[0];
	r->rsi = args[1];
	r->rdx = args[2];
	r->r10 = args[3];
	r->r8 = args[4];
	r->r9 = args[5];
}

long arch_syscall_result(const struct arch_regs *regs)
{
	return (long)regs->r.rax;
}

void arch_prepare_call(struct arch_regs *regs, uint64_t ip, uint64_t sp, uint64_t arg)
{
	regs->r.rip = ip;
	regs->r.rsp = sp;
	regs->r.rdi = arg;
	regs->r.orig_rax = (uint64_t)-1;
}

uint64_t arch_regs_sp(const struct arch_regs *regs)
{
	return regs->r.rsp;
}

uint64_t arch_regs_ip(const struct arch_regs *regs)
{
	return regs->r.rip;
}

int arch_thread_to_image(struct snap_ctx *ctx, const struct arch_thread_state *st, ThreadCoreEntry *tc)
{
	const struct user_regs_struct *r = &st->regs.r;
	X86Thread *x = calloc(1, sizeof(*x));
	X86Gpregs *g = calloc(1, sizeof(*g));
	uint8_t *xs = malloc(st->fpu_size);

	if (!x || !g || !xs) {
		free(x);
		free(g);
		free(xs);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	x86_thread__init(x);
	x86_gpregs__init(g);
	g->r15 = r->r15, g->r14 = r->r14, g->r13 = r->r13, g->r12 = r->r12;
	g->bp = r->rbp, g->bx = r->rbx, g->r11 = r->r11, g->r10 = r->r10;
	g->r9 = r->r9, g->r8 = r->r8, g->ax = r->rax, g->cx = r->rcx;
	g->dx = r->rdx, g->si = r->rsi, g->di = r->rdi, g->orig_ax = r->orig_rax;
	g->ip = r->rip, g->cs = r->cs, g->flags = r->eflags, g->sp = r->rsp;
	g->ss = r->ss, g->fs_base = r->fs_base, g->gs_base = r->gs_base;
	g->ds = r->ds, g->es = r->es, g->fs = r->fs, g->gs = r->gs;
	memcpy(xs, st->fpu, st->fpu_size);
	x->gpregs = g;
	x->xsave.data = xs;
	x->xsave.len = st->fpu_size;
	x->xcr0 = xgetbv0();
	tc->arch_case = THREAD_CORE_ENTRY__ARCH_X86;
	tc->x86 = x;
	return 0;
}

void arch_thread_image_free(ThreadCoreEntry *tc)
{
	if (tc->arch_case != THREAD_CORE_ENTRY__ARCH_X86 || !tc->x86)
		return;
	free(tc->x86->gpregs);
	free(tc->x86->xsave.data);
	free(tc->x86);
	tc->x86 = NULL;
	tc->arch_case = THREAD_CORE_ENTRY__ARCH__NOT_SET;
}

int arch_thread_validate(struct snap_ctx *ctx, const ThreadCoreEntry *tc)
{
	uint64_t xcr0 = xgetbv0(), xstate_bv;
	const X86Thread *x = tc->x86;

	if (tc->arch_case != THREAD_CORE_ENTRY__ARCH_X86 || !x || !x->gpregs)
		return snap_fail(ctx, -EINVAL, "tid %d: image holds no x86_64 registers", tc->tid);
	if (x->xsave.len < XSAVE_LEGACY_AND_HDR || x->xsave.len > XSAVE_MAX_SIZE)
		return snap_fail(ctx, -EINVAL, "tid %d: XSAVE area of %zu bytes is malformed", tc->tid, x->xsave.len);
	memcpy(&xstate_bv, x->xsave.data + XSAVE_HDR_OFFSET, sizeof(xstate_bv));
	if (xstate_bv & ~xcr0)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "tid %d: saved FPU state uses features 0x%llx this CPU has not enabled (XCR0 0x%llx)",
				 tc->tid, (unsigned long long)xstate_bv, (unsigned long long)xcr0);
	if (x->xsave.len > xsave_size_now())
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: XSAVE area of %zu bytes exceeds this CPU's %u", tc->tid,
				 x->xsave.len, xsave_size_now());
	return 0;
}

/* x86 keeps -ERESTART_RESTARTBLOCK visible: arch_build_sigframe() handles interrupted sleeps. */
int arch_thread_dump_fixup(struct snap_ctx *ctx, pid_t tid, ThreadCoreEntry *tc)
{
	(void)ctx;
	(void)tid;
	(void)tc;
	return 0;
}
