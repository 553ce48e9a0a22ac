/* aarch64 tagged address ABI (PR_SET_TAGGED_ADDR_CTRL): whether system calls accept tagged pointers. */
#include <elf.h>
#include <errno.h>
#include <linux/prctl.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

#define MTE_BITS (PR_MTE_TCF_MASK | PR_MTE_TAG_MASK)

/*
 * A thread that turned the ABI on passes pointers with a tag in their top
 * byte to system calls; restored without it, those calls fail with EFAULT.
 * Memory tagging (MTE) is refused: the tags of its mappings are not dumped.
 * A kernel without the ABI has no regset, and then no thread can have it on.
 */
int tagged_addr_get(struct snap_ctx *ctx, pid_t tid, uint64_t *ret)
{
	int r = aarch64_get_regset(tid, NT_ARM_TAGGED_ADDR_CTRL, ret, sizeof(*ret));

	if (r == -EINVAL) {
		*ret = 0;
		return 0;
	}
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot read the tagged address control: %s", tid, strerror(-r));
	if (*ret & MTE_BITS)
		return snap_fail(
			ctx, -EOPNOTSUPP,
			"tid %d: uses memory tagging (MTE, tagged address control %#llx), which is not supported", tid,
			(unsigned long long)*ret);
	return 0;
}

int tagged_addr_set(struct snap_ctx *ctx, pid_t tid, uint64_t ctrl)
{
	int r;

	if (!ctrl)
		return 0; /* every thread the engine starts has it off */
	r = aarch64_set_regset(tid, NT_ARM_TAGGED_ADDR_CTRL, &ctrl, sizeof(ctrl));
	if (r)
		return snap_fail(ctx, r, "tid %d: cannot set the tagged address control to %#llx: %s", tid,
				 (unsigned long long)ctrl, strerror(-r));
	return 0;
}

/* The administrator may forbid the ABI (abi.tagged_addr_disabled); the kernel would then refuse it late. */
int tagged_addr_validate(struct snap_ctx *ctx, int tid, uint64_t ctrl)
{
	FILE *f;
	int disabled = 0;

	if (ctrl & ~(uint64_t)PR_TAGGED_ADDR_ENABLE)
		return snap_fail(ctx, -EINVAL, "tid %d: tagged address control %#llx has bits other than the ABI's",
				 tid, (unsigned long long)ctrl);
	if (!ctrl)
		return 0;
	f = fopen("/proc/sys/abi/tagged_addr_disabled", "re");
	if (!f)
		return snap_fail(ctx, -EOPNOTSUPP, "tid %d: uses the tagged address ABI, which this kernel lacks", tid);
	if (fscanf(f, "%d", &disabled) != 1)
		disabled = 1;
	fclose(f);
	if (disabled)
		return snap_fail(ctx, -EOPNOTSUPP,
				 "tid %d: uses the tagged address ABI, which abi.tagged_addr_disabled forbids here",
				 tid);
	return 0;
}
