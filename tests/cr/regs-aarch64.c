/* aarch64 part of the test register helper: which regsets, and what counts as equal. */
#include <asm/ptrace.h>
#include <elf.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "regs.h"

const unsigned tregs_arch_fp_note = NT_PRFPREG;

int tregs_arch_compare(const struct tregs *a, const struct tregs *b, char *why, size_t len)
{
	const struct user_pt_regs *ra = (const void *)a->gp, *rb = (const void *)b->gp;
	const struct user_fpsimd_state *fa = (const void *)a->fp, *fb = (const void *)b->fp;
	size_t n = 0;
	int bad = 0;

	why[0] = '\0';
	for (int i = 0; i < 31; i++) {
		if (ra->regs[i] == rb->regs[i])
			continue;
		/* x0 carries the syscall return value. */
		if (i == 0 && (tregs_is_restart((long long)ra->regs[0]) || tregs_is_restart((long long)rb->regs[0])))
			continue;
		bad = 1;
		if (n < len)
			n += snprintf(why + n, len - n, "x%d %#llx -> %#llx; ", i, (unsigned long long)ra->regs[i],
				      (unsigned long long)rb->regs[i]);
	}
	if (ra->sp != rb->sp || ra->pc != rb->pc || ra->pstate != rb->pstate) {
		bad = 1;
		if (n < len)
			n += snprintf(why + n, len - n, "sp/pc/pstate %#llx/%#llx/%#llx -> %#llx/%#llx/%#llx; ",
				      (unsigned long long)ra->sp, (unsigned long long)ra->pc,
				      (unsigned long long)ra->pstate, (unsigned long long)rb->sp,
				      (unsigned long long)rb->pc, (unsigned long long)rb->pstate);
	}
	for (int i = 0; i < 32; i++)
		if (memcmp(&fa->vregs[i], &fb->vregs[i], sizeof(fa->vregs[i])) != 0) {
			bad = 1;
			if (n < len)
				n += snprintf(why + n, len - n, "v%d differs; ", i);
		}
	if (fa->fpsr != fb->fpsr || fa->fpcr != fb->fpcr) {
		bad = 1;
		if (n < len)
			n += snprintf(why + n, len - n, "fpsr/fpcr %#x/%#x -> %#x/%#x; ", fa->fpsr, fa->fpcr, fb->fpsr,
				      fb->fpcr);
	}
	return bad ? -1 : 0;
}
