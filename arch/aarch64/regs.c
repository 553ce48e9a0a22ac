/*
 * aarch64 registers, FP/SIMD and SVE state, TLS, PAC keys and the tagged
 * address ABI through ptrace regsets, and their image form.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#include "backend.h"

_Static_assert(sizeof(struct user_fpsimd_struct) == FPSIMD_SIZE, "NT_PRFPREG layout");
_Static_assert(sizeof(struct user_regs_struct) == 34 * 8, "NT_PRSTATUS layout");

/* PSTATE bits a user thread may not have (arch/arm64 valid_native_regs()). */
#define PSR_MODE_MASK  0x0000000fu /* must be EL0t */
#define PSR_MODE32_BIT 0x00000010u
#define PSR_DAIF_MASK  0x000003c0u
/* The branch-target type of the last indirect branch (FEAT_BTI). */
#define PSR_BTYPE_MASK 0x00000c00u

/* svc #0, little endian: the instruction every arm64 system call uses. */
const uint8_t arch_syscall_insn[] = { 0x01, 0x00, 0x00, 0xd4 };
const size_t arch_syscall_insn_len = sizeof(arch_syscall_insn);
const size_t arch_insn_align = 4;

const char *arch_name(void)
{
	return "aarch64";
}

int aarch64_get_regset(pid_t tid, unsigned type, void *buf, size_t len)
{
	struct iovec iov = { buf, len };

	if (ptrace(PTRACE_GETREGSET, tid, type, &iov))
		return -errno;
	/* A shorter answer means a kernel whose regset we do not understand. */
	return iov.iov_len == len ? 0 : -EIO;
}

int aarch64_set_regset(pid_t tid, unsigned type, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return ptrace(PTRACE_SETREGSET, tid, type, &iov) ? -errno : 0;
}

int arch_get_regs(pid_t tid, struct arch_regs *regs)
{
	int r = aarch64_get_regset(tid, NT_PRSTATUS, &regs->r, sizeof(regs->r));

	if (!r)
		r = aarch64_get_regset(tid, NT_ARM_SYSTEM_CALL, &regs->syscallno, sizeof(regs->syscallno));
	return r;
}

/*
 * At a syscall stop the kernel shows the stop's direction in x7 and puts
 * the thread's own x7 back when it resumes, dropping whatever we wrote:
 * the x7 read there is not the thread's, but writing it back is harmless.
 * The syscall number goes last so that it is ours, not the thread's
 * restart state, that decides whether the kernel restarts anything.
 */
int arch_set_regs(pid_t tid, const struct arch_regs *regs)
{
	int r = aarch64_set_regset(tid, NT_PRSTATUS, &regs->r, sizeof(regs->r));

	if (!r)
		r = aarch64_set_regset(tid, NT_ARM_SYSTEM_CALL, &regs->syscallno, sizeof(regs->syscallno));
	return r;
}

/* st->fpu holds NT_PRFPREG, then NT_ARM_SVE where the CPU has SVE. */
int arch_get_thread(struct snap_ctx *ctx, pid_t tid, struct arch_thread_state *st)
{
	uint8_t *fp, *sve;
	size_t sve_len;
	int r;

	r = arch_get_regs(tid, &st->regs);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read general registers: %s", tid, strerror(-r));
	/* Newer kernels append tpidr2_el0 (SME) to NT_ARM_TLS; 8 bytes ask for tpidr_el0 alone. */
	r = aarch64_get_regset(tid, NT_ARM_TLS, &st->regs.tls, sizeof(st->regs.tls));
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read the TLS register: %s", tid, strerror(-r));
	r = sve_get(ctx, tid, &sve, &sve_len);
	if (r)
		return r;
	fp = calloc(1, FPSIMD_SIZE + sve_len);
	if (!fp) {
		free(sve);
		return snap_fail(ctx, -ENOMEM, "tid %d: out of memory for FP/SIMD state", tid);
	}
	if (sve)
		memcpy(fp + FPSIMD_SIZE, sve, sve_len);
	free(sve);
	r = aarch64_get_regset(tid, NT_PRFPREG, fp, FPSIMD_SIZE);
	if (r) {
		free(fp);
		return snap_fail(ctx, r, "tid %d: cannot read FP/SIMD registers: %s", tid, strerror(-r));
	}
	st->fpu = fp;
	st->fpu_size = FPSIMD_SIZE + sve_len;
	r = pac_get(ctx, tid, &st->regs.pac);
	if (!r)
		r = tagged_addr_get(ctx, tid, &st->regs.tagged_addr_ctrl);
	return r;
}

int arch_set_thread(struct snap_ctx *ctx, pid_t tid, const struct arch_thread_state *st)
{
	int r;

	if (st->fpu) {
		r = aarch64_set_regset(tid, NT_PRFPREG, st->fpu, FPSIMD_SIZE);
		if (r)
			return snap_fail(ctx, r, "tid %d: cannot write FP/SIMD registers: %s", tid, strerror(-r));
	}
	/* Every system call (the parasite's too) zeroes the SVE-only bits: they come back from here. */
	if (st->fpu && st->fpu_size > FPSIMD_SIZE) {
		r = sve_set(ctx, tid, (const uint8_t *)st->fpu + FPSIMD_SIZE, st->fpu_size - FPSIMD_SIZE);
		if (r)
			return r;
	}
	r = pac_set(ctx, tid, &st->regs.pac);
	if (!r)
		r = tagged_addr_set(ctx, tid, st->regs.tagged_addr_ctrl);
	if (r)
		return r;
	r = aarch64_set_regset(tid, NT_ARM_TLS, &st->regs.tls, sizeof(st->regs.tls));
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot write the TLS register: %s", tid, strerror(-r));
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

/*
 * Injected code starts at an instruction no branch aimed at: a stale
 * BTYPE from the frozen thread would fault on a guarded page (the vDSO).
 */
static void leave_thread_context(struct arch_regs *regs)
{
	regs->r.pstate &= ~(uint64_t)PSR_BTYPE_MASK;
	regs->syscallno = -1; /* not in a syscall: no restart fix-up on resume */
}

void arch_prepare_syscall(struct arch_regs *regs, uint64_t ip, long nr, const uint64_t args[6])
{
	leave_thread_context(regs);
	regs->r.pc = ip;
	regs->r.regs[8] = (uint64_t)nr;
	for (int i = 0; i < 6; i++)
		regs->r.regs[i] = args[i];
}

long arch_syscall_result(const struct arch_regs *regs)
{
	return (long)regs->r.regs[0];
}

void arch_prepare_call(struct arch_regs *regs, uint64_t ip, uint64_t sp, uint64_t arg)
{
	leave_thread_context(regs);
	regs->r.pc = ip;
	regs->r.sp = sp;
	regs->r.regs[0] = arg;
}

uint64_t arch_regs_sp(const struct arch_regs *regs)
{
	return regs->r.sp;
}

uint64_t arch_regs_ip(const struct arch_regs *regs)
{
	return regs->r.pc;
}

int arch_thread_to_image(struct snap_ctx *ctx, const struct arch_thread_state *st, ThreadCoreEntry *tc)
{
	const struct user_regs_struct *r = &st->regs.r;
	Aarch64Thread *a = calloc(1, sizeof(*a));
	uint64_t *gp = calloc(31, sizeof(*gp));
	uint8_t *fp = malloc(FPSIMD_SIZE);
	size_t sve_len = st->fpu_size > FPSIMD_SIZE ? st->fpu_size - FPSIMD_SIZE : 0;
	uint8_t *sve = sve_len ? malloc(sve_len) : NULL;
	int err;

	if (!a || !gp || !fp || (sve_len && !sve)) {
		free(a);
		free(gp);
		free(fp);
		free(sve);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	aarch64_thread__init(a);
	memcpy(gp, r->regs, 31 * sizeof(*gp));
	a->n_regs = 31;
	a->regs = gp;
	a->sp = r->sp;
	a->pc = r->pc;
	a->pstate = r->pstate;
	memcpy(fp, st->fpu, FPSIMD_SIZE);
	a->fpsimd.data = fp;
	a->fpsimd.len = FPSIMD_SIZE;
	if (sve) {
		memcpy(sve, (const uint8_t *)st->fpu + FPSIMD_SIZE, sve_len);
		a->sve.data = sve;
		a->sve.len = sve_len;
		a->has_sve = 1;
	}
	a->tls = st->regs.tls;
	/* orig_x0 is kernel-internal (no regset shows it): left unset. */
	a->has_syscall_nr = 1;
	a->syscall_nr = st->regs.syscallno;
	if (st->regs.tagged_addr_ctrl) {
		a->has_tagged_addr_ctrl = 1;
		a->tagged_addr_ctrl = st->regs.tagged_addr_ctrl;
	}
	tc->arch_case = THREAD_CORE_ENTRY__ARCH_AARCH64;
	tc->aarch64 = a;
	err = pac_to_image(ctx, &st->regs.pac, a);
	if (err)
		arch_thread_image_free(tc);
	return err;
}

void arch_thread_image_free(ThreadCoreEntry *tc)
{
	if (tc->arch_case != THREAD_CORE_ENTRY__ARCH_AARCH64 || !tc->aarch64)
		return;
	free(tc->aarch64->regs);
	free(tc->aarch64->fpsimd.data);
	free(tc->aarch64->sve.data);
	pac_image_free(tc->aarch64);
	free(tc->aarch64);
	tc->aarch64 = NULL;
	tc->arch_case = THREAD_CORE_ENTRY__ARCH__NOT_SET;
}

int arch_thread_validate(struct snap_ctx *ctx, const ThreadCoreEntry *tc)
{
	const Aarch64Thread *a = tc->aarch64;

	if (tc->arch_case != THREAD_CORE_ENTRY__ARCH_AARCH64 || !a)
		return snap_fail(ctx, -EINVAL, "tid %d: image holds no aarch64 registers", tc->tid);
	if (a->n_regs != 31 || !a->regs)
		return snap_fail(ctx, -EINVAL, "tid %d: %zu general registers instead of 31", tc->tid, a->n_regs);
	if (a->fpsimd.len != FPSIMD_SIZE || !a->fpsimd.data)
		return snap_fail(ctx, -EINVAL, "tid %d: FP/SIMD state of %zu bytes instead of %u", tc->tid,
				 a->fpsimd.len, FPSIMD_SIZE);
	/* rt_sigreturn would refuse these with a SIGSEGV in the restored process. */
	if (a->pstate & (PSR_MODE_MASK | PSR_MODE32_BIT | PSR_DAIF_MASK))
		return snap_fail(ctx, -EINVAL, "tid %d: pstate 0x%llx is not that of a 64-bit user thread", tc->tid,
				 (unsigned long long)a->pstate);
	if (a->pc & 3)
		return snap_fail(ctx, -EINVAL, "tid %d: pc 0x%llx is not instruction-aligned", tc->tid,
				 (unsigned long long)a->pc);
	/*
	 * Stopped inside a syscall whose restart the kernel had not prepared
	 * yet: restarting needs the original first argument, which only an
	 * image that recorded orig_x0 has.
	 */
	if (a->has_syscall_nr && a->syscall_nr >= 0 && aarch64_is_restart((int64_t)a->regs[0]) && !a->has_orig_x0)
		return snap_fail(ctx, -EINVAL,
				 "tid %d: interrupted syscall %lld cannot be restarted: its first argument is unknown",
				 tc->tid, (long long)a->syscall_nr);
	if (a->has_sve) {
		int r = sve_validate(ctx, tc->tid, a->sve.data, a->sve.len);

		if (r)
			return r;
	}
	if (a->has_tagged_addr_ctrl) {
		int r = tagged_addr_validate(ctx, tc->tid, a->tagged_addr_ctrl);

		if (r)
			return r;
	}
	return pac_validate(ctx, tc->tid, a);
}

/*
 * SVE: the signal frame could carry the registers (an SVE record), but
 * not the vector length nor its inherit flag; the regset sets all of it.
 * It goes in after the engine's last injected system call, which would
 * zero the SVE-only bits again. The PAC keys and the tagged address ABI
 * are not in any frame; until here the restored thread ran only engine
 * code, under the engine's keys.
 */
int arch_thread_restore_late(struct snap_ctx *ctx, pid_t tid, const ThreadCoreEntry *tc)
{
	const Aarch64Thread *a = tc->aarch64;
	struct aarch64_pac pac;
	int r;

	if (a->has_sve) {
		r = sve_set(ctx, tid, a->sve.data, a->sve.len);
		if (r)
			return r;
	}
	pac_from_image(a, &pac);
	r = pac_set(ctx, tid, &pac);
	if (!r && a->has_tagged_addr_ctrl)
		r = tagged_addr_set(ctx, tid, a->tagged_addr_ctrl);
	return r;
}

/* Reads a struct timespec of the stopped task; false if it is not one. */
static bool read_timespec(pid_t tid, uint64_t addr, int64_t ts[2])
{
	struct iovec local = { ts, 2 * sizeof(int64_t) }, remote = { (void *)addr, 2 * sizeof(int64_t) };

	return addr && process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)(2 * sizeof(int64_t)) &&
	       ts[0] >= 0 && ts[1] >= 0 && ts[1] < 1000000000;
}

/*
 * The kernel has already rewound an interrupted call when ptrace shows the
 * thread (pc on the svc, x0 back to the first argument), which loses the
 * one thing a sleep needs: how long was left. A relative sleep that asked
 * for it had it written to user memory when it was interrupted; if that
 * memory holds a valid time below the request, the image's call sleeps
 * just that. (A thread stopped just before an svc it has not yet made
 * would need stale memory that happens to look like a remaining time.)
 */
int arch_thread_dump_fixup(struct snap_ctx *ctx, pid_t tid, ThreadCoreEntry *tc)
{
	Aarch64Thread *a = tc->aarch64;
	uint8_t insn[4];
	struct iovec local = { insn, 4 }, remote = { (void *)a->pc, 4 };
	uint64_t *x = a->regs, req_reg, rem;
	int64_t req[2], left[2];

	(void)ctx;
	if (x[8] == SYS_nanosleep)
		req_reg = 0, rem = x[1];
	else if (x[8] == SYS_clock_nanosleep && !(x[1] & TIMER_ABSTIME))
		req_reg = 2, rem = x[3];
	else
		return 0;
	if (!rem || rem == x[req_reg] || process_vm_readv(tid, &local, 1, &remote, 1, 0) != 4 ||
	    memcmp(insn, arch_syscall_insn, 4))
		return 0;
	if (!read_timespec(tid, x[req_reg], req) || !read_timespec(tid, rem, left))
		return 0;
	if (left[0] < req[0] || (left[0] == req[0] && left[1] < req[1]))
		x[req_reg] = rem;
	return 0;
}
