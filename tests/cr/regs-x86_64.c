/* x86_64 part of the test register helper: which regsets, and what counts as equal. */
#include <cpuid.h>
#include <elf.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/user.h>

#include "regs.h"

const unsigned tregs_arch_fp_note = NT_X86_XSTATE;

#define XSAVE_HDR_OFF 512
#define XSAVE_HDR_LEN 64

static const char *const gp_names[] = {
	"r15", "r14",	   "r13", "r12", "rbp",	   "rbx", "r11", "r10",	    "r9",      "r8", "rax", "rcx", "rdx", "rsi",
	"rdi", "orig_rax", "rip", "cs",	 "eflags", "rsp", "ss",	 "fs_base", "gs_base", "ds", "es",  "fs",  "gs",
};
_Static_assert(sizeof(gp_names) / sizeof(gp_names[0]) == sizeof(struct user_regs_struct) / 8, "user_regs_struct");

/* Names the XSAVE component holding byte @off (standard format, offsets from CPUID 0xd). */
static const char *xstate_part(size_t off)
{
	static const char *const names[] = { [2] = "AVX (ymm upper halves)",
					     [5] = "AVX-512 opmask",
					     [6] = "AVX-512 ZMM_Hi256",
					     [7] = "AVX-512 Hi16_ZMM",
					     [9] = "PKRU" };
	unsigned eax, ebx, ecx, edx;

	if (off < 160)
		return off >= 24 && off < 28 ? "MXCSR" : "x87";
	if (off < 416)
		return "SSE (xmm)";
	if (off < XSAVE_HDR_OFF)
		return "legacy area reserved bytes";
	if (off < XSAVE_HDR_OFF + XSAVE_HDR_LEN)
		return "XSAVE header";
	for (unsigned i = 2; i < 32; i++) {
		if (!__get_cpuid_count(0xd, i, &eax, &ebx, &ecx, &edx) || !eax)
			continue;
		if (off >= ebx && off < (size_t)ebx + eax)
			return i < sizeof(names) / sizeof(names[0]) && names[i] ? names[i] : "another component";
	}
	return "unknown component";
}

int tregs_arch_compare(const struct tregs *a, const struct tregs *b, char *why, size_t len)
{
	const unsigned long long *ga = (const void *)a->gp, *gb = (const void *)b->gp;
	size_t n = 0, nr = a->gp_len / 8, rax = offsetof(struct user_regs_struct, rax) / 8;
	int bad = 0;

	why[0] = '\0';
	for (size_t i = 0; i < nr && i < sizeof(gp_names) / sizeof(gp_names[0]); i++) {
		if (ga[i] == gb[i])
			continue;
		if (i == rax && (tregs_is_restart((long long)ga[i]) || tregs_is_restart((long long)gb[i])))
			continue;
		bad = 1;
		if (n < len)
			n += snprintf(why + n, len - n, "%s %#llx -> %#llx; ", gp_names[i], ga[i], gb[i]);
	}
	/*
	 * The XSAVE header (XSTATE_BV, XCOMP_BV) is skipped: whether a component
	 * in its initial state is flagged there depends on who last wrote the
	 * registers, while its contents (init values filled in by the kernel)
	 * are compared like every other byte.
	 */
	for (size_t i = 0; i < a->fp_len; i++) {
		if (i == XSAVE_HDR_OFF) {
			i += XSAVE_HDR_LEN - 1;
			continue;
		}
		if (a->fp[i] == b->fp[i])
			continue;
		bad = 1;
		if (n < len)
			n += snprintf(why + n, len - n, "xstate byte %zu (%s) %#x -> %#x; ", i, xstate_part(i),
				      a->fp[i], b->fp[i]);
		break;
	}
	return bad ? -1 : 0;
}
