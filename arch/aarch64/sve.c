/* aarch64 SVE state (vector length, Z, P and FFR registers) through the NT_ARM_SVE regset. */
#include <asm/ptrace.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"

/* The kernel's limit (VL_ARCH_MAX): 2048 bits. The uapi SVE_VL_MAX leaves room beyond it. */
#define SVE_ARCH_MAX_VL 256u
#define SVE_KNOWN_FLAGS (SVE_PT_REGS_MASK | SVE_PT_VL_INHERIT)

_Static_assert(SVE_PT_FPSIMD_SIZE(1, SVE_PT_REGS_FPSIMD) == FPSIMD_SIZE, "user_fpsimd_state");

static bool vl_valid(unsigned vl)
{
	return sve_vl_valid(vl) && vl <= SVE_ARCH_MAX_VL;
}

/* What the kernel reports as size for @vl and @flags (the header included). */
static size_t sve_size(unsigned vl, unsigned flags)
{
	return SVE_PT_SIZE(sve_vq_from_vl(vl), flags);
}

int sve_get(struct snap_ctx *ctx, pid_t tid, uint8_t **ret, size_t *ret_len)
{
	struct user_sve_header h;
	uint8_t *buf;
	int r;

	*ret = NULL;
	*ret_len = 0;
	if (!(getauxval(AT_HWCAP) & HWCAP_SVE))
		return 0;
	r = aarch64_get_regset(tid, NT_ARM_SVE, &h, sizeof(h));
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read the SVE header: %s", tid, strerror(-r));
	if (!vl_valid(h.vl) || h.size != sve_size(h.vl, h.flags))
		return snap_fail(ctx, -EIO,
				 "tid %d: SVE state of %u bytes for vector length %u, flags %#x, is not understood",
				 tid, h.size, h.vl, h.flags);
	buf = malloc(h.size);
	if (!buf)
		return snap_fail(ctx, -ENOMEM, "tid %d: out of memory for SVE state", tid);
	r = aarch64_get_regset(tid, NT_ARM_SVE, buf, h.size);
	if (!r && memcmp(buf, &h, sizeof(h)))
		r = -EIO; /* the thread is stopped: nothing may change between the reads */
	if (r) {
		free(buf);
		return snap_fail(ctx, r, "tid %d: cannot read the SVE registers: %s", tid, strerror(-r));
	}
	*ret = buf;
	*ret_len = h.size;
	return 0;
}

/*
 * The kernel sets the vector length (and the inherit flag) from the
 * header, then the registers. It rounds a vector length it does not
 * support down to one it does, so the result is read back.
 */
int sve_set(struct snap_ctx *ctx, pid_t tid, const uint8_t *buf, size_t len)
{
	struct user_sve_header want, now;
	int r;

	memcpy(&want, buf, sizeof(want));
	r = aarch64_set_regset(tid, NT_ARM_SVE, buf, len);
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot write the SVE state (vector length %u): %s", tid, want.vl,
				 strerror(-r));
	r = aarch64_get_regset(tid, NT_ARM_SVE, &now, sizeof(now));
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read back the SVE header: %s", tid, strerror(-r));
	if (now.vl != want.vl || (now.flags & SVE_PT_VL_INHERIT) != (want.flags & SVE_PT_VL_INHERIT))
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: SVE vector length %u (flags %#x) became %u (flags %#x)",
				 tid, want.vl, want.flags, now.vl, now.flags);
	return 0;
}

/*
 * Whether this CPU and kernel offer vector length @vl. Only a task can
 * ask for its own, so a throwaway child asks (vfork: nothing is copied);
 * the engine keeps its own vector length.
 */
static bool vl_supported(unsigned vl)
{
	long own = prctl(PR_SVE_GET_VL, 0, 0, 0, 0);
	int status;
	pid_t pid;

	if (own >= 0 && (own & PR_SVE_VL_LEN_MASK) == (long)vl)
		return true;
	pid = vfork();
	if (pid == 0) {
		long got = prctl(PR_SVE_SET_VL, vl, 0, 0, 0);

		_exit(got >= 0 && (got & PR_SVE_VL_LEN_MASK) == (long)vl ? 0 : 1);
	}
	if (pid < 0)
		return false;
	while (waitpid(pid, &status, __WALL) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int sve_validate(struct snap_ctx *ctx, int tid, const uint8_t *buf, size_t len)
{
	struct user_sve_header h;

	if (len < sizeof(h) || !buf)
		return snap_fail(ctx, -EINVAL, "tid %d: SVE state of %zu bytes is truncated", tid, len);
	memcpy(&h, buf, sizeof(h));
	if (!vl_valid(h.vl))
		return snap_fail(ctx, -EINVAL, "tid %d: SVE vector length %u is not a valid one", tid, h.vl);
	if (h.flags & ~SVE_KNOWN_FLAGS)
		return snap_fail(ctx, -EINVAL, "tid %d: unknown SVE flags %#x", tid, h.flags);
	if (h.size != len || len != sve_size(h.vl, h.flags))
		return snap_fail(ctx, -EINVAL, "tid %d: SVE state of %zu bytes (header says %u) for vector length %u",
				 tid, len, h.size, h.vl);
	if (!(getauxval(AT_HWCAP) & HWCAP_SVE))
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: the image holds SVE state, but this CPU has no SVE", tid);
	if (!vl_supported(h.vl))
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: this CPU does not offer the SVE vector length of %u bytes",
				 tid, h.vl);
	return 0;
}
