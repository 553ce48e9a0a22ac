/* Workload (aarch64): known values in v0-v31, FPCR, FPSR, x19-x28 and SVE z/p/ffr at a non-default vector length across
 * C/R. */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "wl-fpsimd-aarch64.h"
#include "wl.h"

/*
 * Usage: wl-fpsimd CTLDIR busy|sleep
 *   busy   loads z0-z31, p0-p15 and ffr as well (where the CPU has SVE) and
 *          spins without system calls until CTLDIR/flag holds a non-zero
 *          byte (it is mapped shared: the harness writes it after the
 *          dump), then waits for go as usual. While it spins, the address
 *          of its check counter is in CTLDIR/held: a harness that reads a
 *          non-zero count there (through /proc/PID/mem) knows every
 *          register is loaded and has been checked.
 *   sleep  polls for go with raw faccessat and sleeps 1 ms with a raw
 *          nanosleep in between, so a dump finds it inside a system call
 *          that must be restarted. System calls zero the SVE-only bits,
 *          so it holds the FP/SIMD part and the vector length only.
 * Where the CPU has SVE it first switches to a vector length other than
 * the default (with PR_SVE_VL_INHERIT): a restore must bring that back too.
 */

_Static_assert(offsetof(struct fp_state, fpcr) == ST_FPCR, "layout");
_Static_assert(offsetof(struct fp_state, fpsr) == ST_FPSR, "layout");
_Static_assert(offsetof(struct fp_state, gpr) == ST_GPR, "layout");
_Static_assert(offsetof(struct fp_state, sve) == ST_SVE, "layout");
_Static_assert(sizeof(struct fp_state) == ST_SIZE, "layout");
_Static_assert(offsetof(struct fp_ctl, snap) == CTL_SNAP, "layout");
_Static_assert(offsetof(struct fp_ctl, wait) == CTL_WAIT, "layout");
_Static_assert(offsetof(struct fp_ctl, sve) == CTL_SVE, "layout");
_Static_assert(offsetof(struct fp_ctl, sve_len) == CTL_SVE_LEN, "layout");
_Static_assert(offsetof(struct fp_ctl, exp_z) == CTL_EXP_Z, "layout");
_Static_assert(offsetof(struct fp_ctl, exp_p) == CTL_EXP_P, "layout");
_Static_assert(offsetof(struct fp_ctl, exp_ffr) == CTL_EXP_FFR, "layout");
_Static_assert(offsetof(struct fp_ctl, snap_z) == CTL_SNAP_Z, "layout");
_Static_assert(offsetof(struct fp_ctl, snap_p) == CTL_SNAP_P, "layout");
_Static_assert(offsetof(struct fp_ctl, snap_ffr) == CTL_SNAP_FFR, "layout");
_Static_assert(offsetof(struct fp_ctl, go_path) == CTL_GO_PATH, "layout");
_Static_assert(offsetof(struct fp_ctl, ready_tmp) == CTL_READY_TMP, "layout");
_Static_assert(offsetof(struct fp_ctl, ready) == CTL_READY, "layout");
_Static_assert(offsetof(struct fp_ctl, flag) == CTL_FLAG, "layout");
_Static_assert(offsetof(struct fp_ctl, iterations) == CTL_ITER, "layout");
_Static_assert(offsetof(struct fp_ctl, deadline) == CTL_DEADLINE, "layout");
_Static_assert(offsetof(struct fp_ctl, sleep_ts) == CTL_SLEEP_TS, "layout");

#define SEED_Z	 0x7a00000000000000ull
#define SEED_P	 0x7000000000000000ull
#define SEED_GPR 0x6770720000000000ull

/* Default NaN, flush-to-zero, round toward zero (default 0). */
#define TEST_FPCR 0x03c00000u
/* Sticky flags: saturation, input denormal, inexact, underflow, overflow, divide by zero, invalid. */
#define TEST_FPSR 0x0800009fu

static uint64_t cntvct(void)
{
	uint64_t v;

	__asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(v));
	return v;
}

static uint64_t cntfrq(void)
{
	uint64_t v;

	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
	return v;
}

/*
 * A vector length other than the one we started with (the default, which
 * the restoring engine has too), so that a lost one shows. Returns what
 * PR_SVE_GET_VL must say from now on.
 */
static long pick_vl(void)
{
	static const unsigned prefer[] = { 32, 16, 64, 128, 256 };
	long cur = prctl(PR_SVE_GET_VL, 0, 0, 0, 0), got;

	if (cur < 0)
		wl_die("PR_SVE_GET_VL: %m");
	cur &= PR_SVE_VL_LEN_MASK;
	for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]); i++) {
		if (prefer[i] == cur)
			continue;
		got = prctl(PR_SVE_SET_VL, prefer[i] | PR_SVE_VL_INHERIT, 0, 0, 0);
		if (got < 0)
			wl_die("PR_SVE_SET_VL %u: %m", prefer[i]);
		if ((got & PR_SVE_VL_LEN_MASK) == prefer[i])
			return prctl(PR_SVE_GET_VL, 0, 0, 0, 0);
	}
	/* The CPU offers one vector length only: keep it, with the inherit flag. */
	if (prctl(PR_SVE_SET_VL, cur | PR_SVE_VL_INHERIT, 0, 0, 0) < 0)
		wl_die("PR_SVE_SET_VL %ld: %m", cur);
	return prctl(PR_SVE_GET_VL, 0, 0, 0, 0);
}

static size_t align8(size_t v)
{
	return (v + 7) & ~(size_t)7;
}

static void setup_expected(struct fp_ctl *ctl, unsigned vl)
{
	struct fp_state *e = &ctl->exp;

	/* Word i of a stream depends on i only, so q_i is the low 16 bytes of z_i. */
	for (unsigned i = 0; i < 32; i++)
		wl_fill(e->q[i], 16, SEED_Z + i);
	e->fpcr = TEST_FPCR;
	e->fpsr = TEST_FPSR;
	for (unsigned i = 0; i < 10; i++)
		e->gpr[i] = wl_word(SEED_GPR, i);
	if (!ctl->sve)
		return;
	ctl->exp_z = e->sve;
	ctl->exp_p = ctl->exp_z + 32 * vl;
	ctl->exp_ffr = ctl->exp_p + 16 * (vl / 8);
	ctl->snap_z = ctl->snap.sve;
	ctl->snap_p = ctl->snap_z + 32 * vl;
	ctl->snap_ffr = ctl->snap_p + 16 * (vl / 8);
	ctl->sve_len = align8(32 * vl + 17 * (vl / 8));
	for (unsigned i = 0; i < 32; i++)
		wl_fill(ctl->exp_z + i * vl, vl, SEED_Z + i);
	wl_fill(ctl->exp_p, 16 * (vl / 8), SEED_P);
	/* FFR takes only a leading run of set bits (one bit per vector byte). */
	for (unsigned bit = 0; bit < vl / 2 + 1; bit++)
		ctl->exp_ffr[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

static void expect_bytes(const char *what, unsigned i, const uint8_t *got, const uint8_t *want, size_t len)
{
	for (size_t q = 0; q < len; q += 8) {
		uint64_t g = 0, w = 0;
		size_t n = len - q < 8 ? len - q : 8;

		memcpy(&g, got + q, n);
		memcpy(&w, want + q, n);
		if (g != w) {
			wl_fail("%s%u: bytes %zu-%zu are %#llx, expected %#llx", what, i, q, q + n - 1,
				(unsigned long long)g, (unsigned long long)w);
			return;
		}
	}
}

static void report_mismatch(const struct fp_ctl *ctl, unsigned vl)
{
	const struct fp_state *e = &ctl->exp, *s = &ctl->snap;

	for (unsigned i = 0; i < 32; i++)
		expect_bytes("v", i, s->q[i], e->q[i], 16);
	wl_expect(e->fpcr == s->fpcr, "FPCR is %#llx, expected %#llx", (unsigned long long)s->fpcr,
		  (unsigned long long)e->fpcr);
	wl_expect(e->fpsr == s->fpsr, "FPSR is %#llx, expected %#llx", (unsigned long long)s->fpsr,
		  (unsigned long long)e->fpsr);
	for (unsigned i = 0; i < 10; i++)
		wl_expect(e->gpr[i] == s->gpr[i], "x%u is %#llx, expected %#llx", 19 + i, (unsigned long long)s->gpr[i],
			  (unsigned long long)e->gpr[i]);
	if (!ctl->sve || ctl->wait != FP_WAIT_BUSY)
		return;
	for (unsigned i = 0; i < 32; i++)
		expect_bytes("z", i, ctl->snap_z + i * vl, ctl->exp_z + i * vl, vl);
	for (unsigned i = 0; i < 16; i++)
		expect_bytes("p", i, ctl->snap_p + i * (vl / 8), ctl->exp_p + i * (vl / 8), vl / 8);
	expect_bytes("ffr", 0, ctl->snap_ffr, ctl->exp_ffr, vl / 8);
}

/* CTLDIR/flag, one page of zeros mapped shared and read-only: the harness's write shows up in it. */
static const volatile uint8_t *map_flag(void)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	wl_path(path, "flag");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("cannot create %s: %m", path);
	if (ftruncate(fd, (off_t)wl_page_size()) != 0)
		wl_die("cannot size %s: %m", path);
	p = mmap(NULL, wl_page_size(), PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		wl_die("cannot map %s: %m", path);
	close(fd);
	return p;
}

static void write_ctl_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	wl_path(path, name);
	f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		wl_die("cannot write %s: %m", path);
}

int main(int argc, char **argv)
{
	char go[PATH_MAX], ready_tmp[PATH_MAX], ready[PATH_MAX], buf[64];
	bool has_sve = getauxval(AT_HWCAP) & HWCAP_SVE;
	long vl_conf = 0;
	unsigned vl = 0;
	struct fp_ctl *ctl;
	uint64_t r;

	wl_init(argc, argv, 1, "busy|sleep");
	ctl = aligned_alloc(16, sizeof(*ctl));
	if (!ctl)
		wl_die("out of memory");
	memset(ctl, 0, sizeof(*ctl));
	if (strcmp(argv[2], "busy") == 0)
		ctl->wait = FP_WAIT_BUSY;
	else if (strcmp(argv[2], "sleep") == 0)
		ctl->wait = FP_WAIT_SLEEP;
	else
		wl_die("unknown mode %s", argv[2]);
	if (has_sve) {
		vl_conf = pick_vl();
		if (vl_conf < 0)
			wl_die("PR_SVE_GET_VL: %m");
		vl = (unsigned)(vl_conf & PR_SVE_VL_LEN_MASK);
		ctl->sve = ctl->wait == FP_WAIT_BUSY;
	}
	setup_expected(ctl, vl);
	ctl->flag = map_flag();
	ctl->sleep_ts.tv_nsec = 1000 * 1000;
	ctl->deadline = cntvct() + cntfrq() * (WL_GO_TIMEOUT_MS / 1000);
	if (ctl->wait == FP_WAIT_BUSY) {
		snprintf(buf, sizeof(buf), "%#llx\n", (unsigned long long)(uintptr_t)&ctl->iterations);
		write_ctl_file("held", buf);
	}
	fprintf(stderr, "%s: holding v0-v31, FPCR, FPSR, x19-x28%s, waiting by %s\n", wl_name,
		ctl->sve ? ", z0-z31, p0-p15, ffr" : "", argv[2]);
	if (has_sve)
		fprintf(stderr, "%s: SVE vector length %u bytes, inherit flag %s\n", wl_name, vl,
			vl_conf & PR_SVE_VL_INHERIT ? "set" : "clear");

	/* The spinner publishes ready itself, once every register is loaded. */
	wl_path(go, "go");
	wl_path(ready_tmp, "ready.tmp");
	wl_path(ready, "ready");
	ctl->go_path = go;
	ctl->ready_tmp = ready_tmp;
	ctl->ready = ready;
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	write_ctl_file("ready.tmp", buf);

	r = wl_fpsimd_spin(ctl);
	switch (r) {
	case FP_RET_OK:
		break;
	case FP_RET_MISMATCH:
		wl_fail("registers changed after %llu checks", (unsigned long long)ctl->iterations);
		report_mismatch(ctl, vl);
		break;
	case FP_RET_TIMEOUT:
		fprintf(stderr, "%s: nothing happened in time, giving up\n", wl_name);
		return WL_EXIT_NO_GO;
	case FP_RET_READY:
		wl_die("cannot rename %s to %s", ready_tmp, ready);
	default:
		wl_fail("spinner returned %llu", (unsigned long long)r);
	}
	wl_expect(ctl->iterations > 0, "the spinner ended without a single check");
	if (has_sve) {
		long now = prctl(PR_SVE_GET_VL, 0, 0, 0, 0);

		wl_expect(now == vl_conf, "SVE vector length configuration is %#lx, expected %#lx", now, vl_conf);
	}
	if (ctl->wait == FP_WAIT_BUSY)
		wl_wait_go();
	return wl_finish();
}
