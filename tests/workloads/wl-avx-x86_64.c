/* Workload (x86_64): known values in every vector, mask, x87, MXCSR and callee-saved register across C/R. */
#include <cpuid.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wl-avx-x86_64.h"
#include "wl.h"

/*
 * Usage: wl-avx CTLDIR busy|sleep
 *   busy   busy-waits between polls, so a dump finds it in user code
 *   sleep  sleeps 1 ms with a raw nanosleep between polls, so a dump finds
 *          it inside a system call that must be restarted
 */

_Static_assert(offsetof(struct avx_state, k) == ST_K, "layout");
_Static_assert(offsetof(struct avx_state, mxcsr) == ST_MXCSR, "layout");
_Static_assert(offsetof(struct avx_state, fcw) == ST_FCW, "layout");
_Static_assert(offsetof(struct avx_state, fsw) == ST_FSW, "layout");
_Static_assert(offsetof(struct avx_state, ftw) == ST_FTW, "layout");
_Static_assert(offsetof(struct avx_state, st) == ST_ST, "layout");
_Static_assert(offsetof(struct avx_state, gpr) == ST_GPR, "layout");
_Static_assert(sizeof(struct avx_state) == ST_SIZE, "layout");
_Static_assert(offsetof(struct avx_ctl, snap) == CTL_SNAP, "layout");
_Static_assert(offsetof(struct avx_ctl, fxbuf) == CTL_FXBUF, "layout");
_Static_assert(offsetof(struct avx_ctl, x87_in) == CTL_X87_IN, "layout");
_Static_assert(offsetof(struct avx_ctl, mode) == CTL_MODE, "layout");
_Static_assert(offsetof(struct avx_ctl, wait) == CTL_WAIT, "layout");
_Static_assert(offsetof(struct avx_ctl, delay) == CTL_DELAY, "layout");
_Static_assert(offsetof(struct avx_ctl, go_path) == CTL_GO_PATH, "layout");
_Static_assert(offsetof(struct avx_ctl, ready_tmp) == CTL_READY_TMP, "layout");
_Static_assert(offsetof(struct avx_ctl, ready) == CTL_READY, "layout");
_Static_assert(offsetof(struct avx_ctl, iterations) == CTL_ITER, "layout");
_Static_assert(offsetof(struct avx_ctl, sleep_ts) == CTL_SLEEP_TS, "layout");
_Static_assert(offsetof(struct avx_ctl, now_ts) == CTL_NOW_TS, "layout");
_Static_assert(offsetof(struct avx_ctl, prev_ns) == CTL_PREV_NS, "layout");
_Static_assert(offsetof(struct avx_ctl, elapsed_ns) == CTL_ELAPSED_NS, "layout");
_Static_assert(offsetof(struct avx_ctl, limit_ns) == CTL_LIMIT_NS, "layout");

#define SEED_VEC 0x7665630000000000ull
#define SEED_K	 0x6b00000000000000ull
#define SEED_GPR 0x6770720000000000ull

/* Round toward zero, flush-to-zero, all exceptions masked (default 0x1f80). */
#define TEST_MXCSR 0xff80u
/* Double precision, round down, all exceptions masked (default 0x037f). */
#define TEST_FCW 0x067fu

static const char *const mode_names[] = { "SSE (xmm0-15)", "AVX (ymm0-15)", "AVX-512 (zmm0-31, k0-7)" };

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static int detect_mode(void)
{
	unsigned a, b, c, d;
	uint64_t xcr0;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
		return AVX_MODE_SSE;
	xcr0 = xgetbv0();
	if ((xcr0 & 0x6) != 0x6)
		return AVX_MODE_SSE;
	/* opmask, ZMM_Hi256 and Hi16_ZMM must all be enabled by the kernel. */
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX512F) && (xcr0 & 0xe0) == 0xe0)
		return AVX_MODE_AVX512;
	return AVX_MODE_AVX;
}

static void setup_expected(struct avx_ctl *ctl)
{
	static const double x87_in[8] = { 1.5,	    -2.25,	   3.14159265358979,  1e100,
					  -7.5e-20, 123456789.125, 2.718281828459045, -0.0 };
	unsigned nvec = ctl->mode == AVX_MODE_AVX512 ? 32 : 16;
	unsigned width = ctl->mode == AVX_MODE_AVX512 ? 64 : ctl->mode == AVX_MODE_AVX ? 32 : 16;

	for (unsigned i = 0; i < nvec; i++)
		wl_fill(ctl->exp.vec[i], width, SEED_VEC + i);
	if (ctl->mode == AVX_MODE_AVX512)
		for (unsigned i = 0; i < 8; i++)
			ctl->exp.k[i] = (uint16_t)wl_word(SEED_K, i) | 1; /* never all-zero */
	ctl->exp.mxcsr = TEST_MXCSR;
	ctl->exp.fcw = TEST_FCW;
	ctl->exp.fsw = 0; /* TOP = 0 after eight pushes; exact loads raise nothing */
	ctl->exp.ftw = 0xff;
	memcpy(ctl->x87_in, x87_in, sizeof(x87_in));
	/* ST(0) is the last value pushed; long double is the x87 80-bit format. */
	for (unsigned i = 0; i < 8; i++) {
		long double v = x87_in[7 - i];

		memcpy(ctl->exp.st[i], &v, 10);
	}
	for (unsigned i = 0; i < 6; i++)
		ctl->exp.gpr[i] = wl_word(SEED_GPR, i);
}

static void report_mismatch(const struct avx_ctl *ctl)
{
	static const char *const gpr_names[] = { "rbx", "rbp", "r12", "r13", "r14", "r15" };
	const struct avx_state *e = &ctl->exp, *s = &ctl->snap;
	const char *prefix = ctl->mode == AVX_MODE_AVX512 ? "zmm" : ctl->mode == AVX_MODE_AVX ? "ymm" : "xmm";

	for (unsigned i = 0; i < 32; i++)
		for (unsigned q = 0; q < 8; q++) {
			uint64_t got, want;

			memcpy(&got, &s->vec[i][q * 8], 8);
			memcpy(&want, &e->vec[i][q * 8], 8);
			if (got != want) {
				wl_fail("%s%u: qword %u is %#llx, expected %#llx", prefix, i, q,
					(unsigned long long)got, (unsigned long long)want);
				break;
			}
		}
	for (unsigned i = 0; i < 8; i++)
		wl_expect(e->k[i] == s->k[i], "k%u is %#llx, expected %#llx", i, (unsigned long long)s->k[i],
			  (unsigned long long)e->k[i]);
	wl_expect(e->mxcsr == s->mxcsr, "MXCSR is %#x, expected %#x", s->mxcsr, e->mxcsr);
	wl_expect(e->fcw == s->fcw, "x87 control word is %#x, expected %#x", s->fcw, e->fcw);
	wl_expect(e->fsw == s->fsw, "x87 status word is %#x, expected %#x", s->fsw, e->fsw);
	wl_expect(e->ftw == s->ftw, "x87 abridged tag word is %#x, expected %#x", s->ftw, e->ftw);
	for (unsigned i = 0; i < 8; i++)
		wl_expect(memcmp(e->st[i], s->st[i], 16) == 0, "x87 ST(%u) differs", i);
	for (unsigned i = 0; i < 6; i++)
		wl_expect(e->gpr[i] == s->gpr[i], "%s is %#llx, expected %#llx", gpr_names[i],
			  (unsigned long long)s->gpr[i], (unsigned long long)e->gpr[i]);
}

int main(int argc, char **argv)
{
	char go[PATH_MAX], ready_tmp[PATH_MAX], ready[PATH_MAX], buf[32];
	struct avx_ctl *ctl;
	struct timespec now;
	uint64_t r;
	int fd, n;

	wl_init(argc, argv, 1, "busy|sleep");
	ctl = aligned_alloc(64, sizeof(*ctl));
	if (!ctl)
		wl_die("out of memory");
	memset(ctl, 0, sizeof(*ctl));
	if (strcmp(argv[2], "busy") == 0)
		ctl->wait = AVX_WAIT_BUSY;
	else if (strcmp(argv[2], "sleep") == 0)
		ctl->wait = AVX_WAIT_SLEEP;
	else
		wl_die("unknown mode %s", argv[2]);
	ctl->mode = detect_mode();
	ctl->delay = 200000;
	ctl->sleep_ts.tv_nsec = 1000 * 1000;
	ctl->limit_ns = (uint64_t)WL_GO_TIMEOUT_MS * 1000 * 1000;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ctl->prev_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	setup_expected(ctl);
	fprintf(stderr, "%s: holding %s, waiting by %s\n", wl_name, mode_names[ctl->mode], argv[2]);

	/* The spinner publishes ready itself, once every register is loaded. */
	wl_path(go, "go");
	wl_path(ready_tmp, "ready.tmp");
	wl_path(ready, "ready");
	ctl->go_path = go;
	ctl->ready_tmp = ready_tmp;
	ctl->ready = ready;
	fd = open(ready_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("cannot create %s: %m", ready_tmp);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, n) != n || close(fd) != 0)
		wl_die("cannot write %s: %m", ready_tmp);

	r = wl_avx_spin(ctl);
	switch (r) {
	case AVX_RET_OK:
		break;
	case AVX_RET_MISMATCH:
		wl_fail("registers changed after %llu polls", (unsigned long long)ctl->iterations);
		report_mismatch(ctl);
		break;
	case AVX_RET_TIMEOUT:
		fprintf(stderr, "%s: no go in time, giving up\n", wl_name);
		return WL_EXIT_NO_GO;
	case AVX_RET_READY:
		wl_die("cannot rename %s to %s", ready_tmp, ready);
	default:
		wl_fail("spinner returned %llu", (unsigned long long)r);
	}
	wl_expect(ctl->iterations > 0, "go seen without polling");
	return wl_finish();
}
