/*
 * Workload (aarch64, built with -mbranch-protection=pac-ret): waits for go
 * 32 calls deep, so 32 return addresses signed before a dump must verify
 * after it; also checks what each pointer-authentication key signs and
 * which keys are enabled.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>

#include "wl.h"

/*
 * Usage: wl-pac CTLDIR
 * A restored process whose keys are not the dumped ones crashes on the
 * first return through a signed frame (SIGILL with FEAT_FPAC, else a
 * SIGSEGV at the mangled address); the signature checks say which key
 * differs. Without address authentication in the CPU only the call chain
 * is checked (the pac-ret instructions are no-ops there).
 */

#define DEPTH	32
#define PACIASP 0xd503233fu /* hint #25: sign lr with APIA, sp as modifier */

/* Pointers and modifiers to sign: with 7 or so PAC bits one signature may equal its pointer by chance. */
static const uint64_t ptrs[4] = { 0x0000aaaabbbb1000ull, 0x0000ffff12345670ull, 0x0000000000401000ull,
				  0x00007fedcba98760ull };
static const uint64_t mods[4] = { 0, 0x1234, 0xfedcba9876543210ull, 0x5a5a5a5a5a5a5a5aull };

enum { KEY_IA, KEY_IB, KEY_DA, KEY_DB, KEY_GA, NR_KEYS };
static const char *const key_names[NR_KEYS] = { "APIA", "APIB", "APDA", "APDB", "APGA" };

/* pacia1716 / pacib1716 are hints (no-ops without PAC); the others are encoded by hand for any -march. */
static uint64_t sign(int key, uint64_t ptr, uint64_t mod)
{
	register uint64_t x17 __asm__("x17") = ptr;
	register uint64_t x16 __asm__("x16") = mod;

	switch (key) {
	case KEY_IA:
		__asm__ volatile("hint #8" : "+r"(x17) : "r"(x16)); /* pacia1716 */
		break;
	case KEY_IB:
		__asm__ volatile("hint #10" : "+r"(x17) : "r"(x16)); /* pacib1716 */
		break;
	case KEY_DA:
		__asm__ volatile(".inst 0xdac10a11" : "+r"(x17) : "r"(x16)); /* pacda x17, x16 */
		break;
	case KEY_DB:
		__asm__ volatile(".inst 0xdac10e11" : "+r"(x17) : "r"(x16)); /* pacdb x17, x16 */
		break;
	case KEY_GA:
		__asm__ volatile(".inst 0x9ad03231" : "+r"(x17) : "r"(x16)); /* pacga x17, x17, x16 */
		break;
	}
	return x17;
}

static void sign_all(uint64_t out[NR_KEYS][4], bool has_ga)
{
	for (int k = 0; k < NR_KEYS; k++)
		for (int i = 0; i < 4; i++)
			out[k][i] = k == KEY_GA && !has_ga ? 0 : sign(k, ptrs[i], mods[i]);
}

static uint64_t rotr7(uint64_t v)
{
	return v >> 7 | v << 57;
}

/*
 * Each level keeps a signed return address on the stack across the wait
 * and works on the result after its call returns: a rotation, so that the
 * compiler can turn this neither into a tail call nor into a loop.
 */
static __attribute__((noinline, noclone)) uint64_t descend(unsigned depth, uint64_t acc)
{
	volatile uint64_t local = acc * 0x9e3779b97f4a7c15ull + depth;

	if (depth == 0) {
		wl_ready();
		wl_wait_go();
		return local;
	}
	return rotr7(descend(depth - 1, local)) ^ local;
}

static uint64_t descend_expected(void)
{
	uint64_t locals[DEPTH + 1], acc = 0, r;

	for (int d = DEPTH; d >= 0; d--)
		acc = locals[d] = acc * 0x9e3779b97f4a7c15ull + (uint64_t)d;
	r = locals[0];
	for (int d = 1; d <= DEPTH; d++)
		r = rotr7(r) ^ locals[d];
	return r;
}

/* The compiler must have signed descend's return address, or this test checks nothing. */
static bool signs_return_address(const void *fn)
{
	const uint32_t *insn = fn;

	for (int i = 0; i < 8; i++)
		if (insn[i] == PACIASP)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	unsigned long hwcap = getauxval(AT_HWCAP);
	bool has_pac = hwcap & HWCAP_PACA, has_ga = hwcap & HWCAP_PACG;
	uint64_t before[NR_KEYS][4], after[NR_KEYS][4], r;
	long enabled = 0, now;

	wl_init(argc, argv, 0, "");
	if (!signs_return_address((const void *)descend))
		wl_die("descend() does not start with paciasp: built without -mbranch-protection=pac-ret?");
	if (has_pac) {
		/* APDB off: a restore that enables every key again is caught. */
		if (prctl(PR_PAC_SET_ENABLED_KEYS, PR_PAC_APDBKEY, 0, 0, 0) != 0)
			wl_die("PR_PAC_SET_ENABLED_KEYS: %m");
		enabled = prctl(PR_PAC_GET_ENABLED_KEYS, 0, 0, 0, 0);
		if (enabled < 0)
			wl_die("PR_PAC_GET_ENABLED_KEYS: %m");
		sign_all(before, has_ga);
		for (int k = 0; k < NR_KEYS; k++) {
			bool signs = false;

			for (int i = 0; i < 4; i++)
				signs |= before[k][i] != ptrs[i];
			if ((k == KEY_DB) == signs && (k != KEY_GA || has_ga))
				wl_die("key %s %s, against its enabled state", key_names[k],
				       signs ? "signs" : "signs nothing");
		}
		fprintf(stderr, "%s: %d signed frames; keys APIA, APIB, APDA%s enabled, APDB disabled\n", wl_name,
			DEPTH, has_ga ? ", APGA" : "");
	} else {
		fprintf(stderr, "%s: no pointer authentication in this CPU: only the call chain is checked\n", wl_name);
	}

	r = descend(DEPTH, 0);
	wl_expect(r == descend_expected(), "the call chain returned %#llx, expected %#llx", (unsigned long long)r,
		  (unsigned long long)descend_expected());
	if (has_pac) {
		now = prctl(PR_PAC_GET_ENABLED_KEYS, 0, 0, 0, 0);
		wl_expect(now == enabled, "enabled keys are %#lx, expected %#lx", now, enabled);
		sign_all(after, has_ga);
		for (int k = 0; k < NR_KEYS; k++)
			for (int i = 0; i < 4; i++)
				if (after[k][i] != before[k][i]) {
					wl_fail("%s signs %#llx as %#llx, before the wait as %#llx", key_names[k],
						(unsigned long long)ptrs[i], (unsigned long long)after[k][i],
						(unsigned long long)before[k][i]);
					break;
				}
	}
	return wl_finish();
}
