/* Unit tests of the aarch64 backend's image checks: SVE, PAC and tagged-address state that restore must refuse before
 * creating anything. */
#include <asm/ptrace.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch.h"

#define TID	     4242
#define FPSIMD_BYTES 528

static snap_ctx *ctx;
static uint64_t regs[31];
static uint8_t fpsimd[FPSIMD_BYTES];
static Aarch64Thread a;
static ThreadCoreEntry tc;
static uint8_t *sve;

static void setup(void)
{
	cr_assert_eq(snap_ctx_new(&ctx), 0);
	aarch64_thread__init(&a);
	a.n_regs = 31, a.regs = regs, a.pc = 0x400000, a.fpsimd.len = sizeof(fpsimd), a.fpsimd.data = fpsimd;
	thread_core_entry__init(&tc);
	tc.tid = TID, tc.comm = "t", tc.arch_case = THREAD_CORE_ENTRY__ARCH_AARCH64, tc.aarch64 = &a;
}

static void teardown(void)
{
	snap_ctx_free(ctx);
	free(sve);
	sve = NULL;
}

TestSuite(arch_aarch64, .init = setup, .fini = teardown);

static bool has(unsigned long hwcap)
{
	return getauxval(AT_HWCAP) & hwcap;
}

/* NT_ARM_SVE bytes as the kernel would give them for @vl and @flags, registers zero. */
static void set_sve(unsigned vl, unsigned flags)
{
	struct user_sve_header h = { .vl = (uint16_t)vl, .max_vl = 256, .flags = (uint16_t)flags };

	h.size = SVE_PT_SIZE(sve_vq_from_vl(vl), flags);
	h.max_size = h.size;
	free(sve);
	sve = calloc(1, h.size);
	cr_assert_not_null(sve);
	memcpy(sve, &h, sizeof(h));
	a.has_sve = 1, a.sve.data = sve, a.sve.len = h.size;
}

static unsigned own_vl(void)
{
	return (unsigned)(prctl(PR_SVE_GET_VL, 0, 0, 0, 0) & PR_SVE_VL_LEN_MASK);
}

/* Refused with @err, the message naming the thread and saying @what. */
static void expect_refused(int err, const char *what)
{
	int r;

	snap_clear_error(ctx); /* the first error of an operation would stay */
	r = arch_thread_validate(ctx, &tc);
	cr_assert_eq(r, err, "validate returned %d, expected %d (%s)", r, err, snap_error(ctx));
	cr_assert(strstr(snap_error(ctx), "tid 4242"), "message does not name the thread: %s", snap_error(ctx));
	cr_assert(strstr(snap_error(ctx), what), "message does not say '%s': %s", what, snap_error(ctx));
}

Test(arch_aarch64, plain_image_passes)
{
	cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "%s", snap_error(ctx));
}

Test(arch_aarch64, sve_at_own_vector_length)
{
	if (!has(HWCAP_SVE)) {
		set_sve(16, SVE_PT_REGS_SVE);
		expect_refused(-EOPNOTSUPP, "no SVE");
		return;
	}
	set_sve(own_vl(), SVE_PT_REGS_SVE | SVE_PT_VL_INHERIT);
	cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "%s", snap_error(ctx));
	set_sve(own_vl(), SVE_PT_REGS_FPSIMD);
	cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "%s", snap_error(ctx));
}

/* Whether the kernel lets a task switch to @vl, asked in a child so that ours stays as it is. */
static bool vl_offered(unsigned vl)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit((prctl(PR_SVE_SET_VL, vl, 0, 0, 0) & PR_SVE_VL_LEN_MASK) == vl ? 0 : 1);
	cr_assert(pid > 0 && waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Not the engine's own vector length: the check must ask the kernel, and agree with it. */
Test(arch_aarch64, sve_at_other_vector_lengths)
{
	if (!has(HWCAP_SVE))
		return;
	for (unsigned vl = 16; vl <= 256; vl += 16) {
		if (vl == own_vl())
			continue;
		set_sve(vl, SVE_PT_REGS_SVE);
		if (vl_offered(vl))
			cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "vl %u: %s", vl, snap_error(ctx));
		else
			expect_refused(-EOPNOTSUPP, "does not offer");
	}
}

Test(arch_aarch64, sve_invalid_vector_length)
{
	set_sve(16, SVE_PT_REGS_SVE);
	((struct user_sve_header *)sve)->vl = 24;
	expect_refused(-EINVAL, "not a valid");
	((struct user_sve_header *)sve)->vl = 272;
	expect_refused(-EINVAL, "not a valid");
}

Test(arch_aarch64, sve_size_mismatch)
{
	set_sve(32, SVE_PT_REGS_SVE);
	a.sve.len -= 16;
	expect_refused(-EINVAL, "SVE state of");
	set_sve(32, SVE_PT_REGS_SVE);
	((struct user_sve_header *)sve)->flags = SVE_PT_REGS_FPSIMD; /* the size of the other layout */
	expect_refused(-EINVAL, "SVE state of");
	a.sve.len = 8;
	expect_refused(-EINVAL, "truncated");
}

Test(arch_aarch64, sve_unknown_flags)
{
	set_sve(16, SVE_PT_REGS_SVE);
	((struct user_sve_header *)sve)->flags |= SVE_PT_VL_ONEXEC;
	expect_refused(-EINVAL, "unknown SVE flags");
}

Test(arch_aarch64, pac_keys)
{
	uint8_t keys[64] = { 1 }, gkey[16] = { 2 };

	a.has_pac_address_keys = 1, a.pac_address_keys.data = keys, a.pac_address_keys.len = sizeof(keys);
	a.has_pac_enabled_keys = 1, a.pac_enabled_keys = PR_PAC_APIAKEY | PR_PAC_APIBKEY;
	a.has_pac_generic_key = 1, a.pac_generic_key.data = gkey, a.pac_generic_key.len = sizeof(gkey);
	if (has(HWCAP_PACA) && has(HWCAP_PACG))
		cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "%s", snap_error(ctx));
	else if (!has(HWCAP_PACA))
		expect_refused(-EOPNOTSUPP, "no address authentication");
}

Test(arch_aarch64, pac_malformed)
{
	uint8_t keys[64] = { 1 }, gkey[16] = { 2 };

	a.has_pac_address_keys = 1, a.pac_address_keys.data = keys, a.pac_address_keys.len = 63;
	a.has_pac_enabled_keys = 1, a.pac_enabled_keys = PR_PAC_APIAKEY;
	expect_refused(-EINVAL, "63 bytes");
	a.pac_address_keys.len = sizeof(keys);
	a.pac_enabled_keys = PR_PAC_APGAKEY; /* the generic key cannot be turned off */
	expect_refused(-EINVAL, "enabled");
	a.has_pac_enabled_keys = 0;
	expect_refused(-EINVAL, "enabled");
	a.has_pac_address_keys = 0, a.has_pac_enabled_keys = 1, a.pac_enabled_keys = 0;
	expect_refused(-EINVAL, "without the keys");
	a.has_pac_enabled_keys = 0;
	a.has_pac_generic_key = 1, a.pac_generic_key.data = gkey, a.pac_generic_key.len = 8;
	expect_refused(-EINVAL, "8 bytes");
}

Test(arch_aarch64, tagged_addr_ctrl)
{
	a.has_tagged_addr_ctrl = 1, a.tagged_addr_ctrl = PR_TAGGED_ADDR_ENABLE | PR_MTE_TCF_SYNC;
	expect_refused(-EINVAL, "other than the ABI's");
	a.tagged_addr_ctrl = PR_TAGGED_ADDR_ENABLE;
	if (prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0) >= 0 && access("/proc/sys/abi/tagged_addr_disabled", F_OK) == 0)
		cr_assert_eq(arch_thread_validate(ctx, &tc), 0, "%s", snap_error(ctx));
}
