/*
 * wl-fpsimd (aarch64): v0-v31, FPCR, FPSR, x19-x28 and, where the CPU has
 * SVE, z0-z31, p0-p15, ffr and a non-default vector length, frozen in user
 * code and inside a system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(fpsimd);

static const char *const busy_args[] = { "busy", NULL };
static const char *const sleep_args[] = { "sleep", NULL };

/*
 * The busy spinner makes no system call once z, p and ffr are loaded, so
 * it cannot say so through a file: it names its check counter's address
 * in CTLDIR/held, and a non-zero count there means all is loaded.
 */
static int wait_held(struct h_wl *w)
{
	const struct timespec ms = { .tv_nsec = 1000 * 1000 };
	char *text = h_read_ctl(w, "held", NULL), path[64];
	unsigned long long addr;
	uint64_t count = 0;
	int fd, r = 0;

	if (!text)
		return h_fail(-errno, "%s: no CTLDIR/held: %m", w->name);
	addr = strtoull(text, NULL, 0);
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)w->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return h_fail(-errno, "cannot open %s: %m", path);
	for (int i = 0; i < H_READY_TIMEOUT_MS && !count; i++) {
		if (pread(fd, &count, sizeof(count), (off_t)addr) != sizeof(count)) {
			r = h_fail(-errno, "cannot read %s at %#llx: %m", path, addr);
			break;
		}
		if (!count)
			nanosleep(&ms, NULL);
	}
	close(fd);
	if (!r && !count)
		r = h_fail(-ETIMEDOUT, "%s (pid %d) never finished its first register check", w->name, (int)w->pid);
	return r;
}

/* The byte the busy spinner watches in its shared mapping of CTLDIR/flag. */
static int set_flag(struct h_wl *w)
{
	char path[PATH_MAX + 8];
	int fd;

	snprintf(path, sizeof(path), "%s/flag", w->ctldir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return h_fail(-errno, "cannot open %s: %m", path);
	if (pwrite(fd, "\1", 1, 0) != 1) {
		close(fd);
		return h_fail(-errno, "cannot write %s: %m", path);
	}
	close(fd);
	return 0;
}

/* On a CPU with SVE a run that held no SVE registers would prove nothing about them. */
static void expect_sve_held(struct h_wl *w)
{
	char *err;

	if (!(getauxval(AT_HWCAP) & HWCAP_SVE))
		return;
	err = h_read_ctl(w, "stderr", NULL);
	cr_assert(err && strstr(err, "z0-z31"), "the CPU has SVE but wl-fpsimd did not hold it:\n%s", err ? err : "");
	free(err);
}

enum how { NOCR, CR, LEAVE_RUNNING };

static void run_busy(enum how how)
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX];

	H_OK(h_start(&w, "wl-fpsimd", busy_args));
	H_OK(wait_held(&w));
	if (how != NOCR) {
		H_OK(h_tmpdir(imgdir, "img"));
		H_OK(h_dump(&w, imgdir, how == LEAVE_RUNNING ? SNAP_DUMP_LEAVE_RUNNING : 0, NULL));
		if (how == CR)
			H_OK(h_restore(&w, imgdir, NULL));
	}
	H_OK(set_flag(&w));
	H_OK(h_finish(&w));
	expect_sve_held(&w);
}

Test(fpsimd, busy_nocr)
{
	run_busy(NOCR);
}

Test(fpsimd, busy_cr)
{
	run_busy(CR);
}

/* The parasite's system calls zero the SVE-only bits: the cure must put them back. */
Test(fpsimd, busy_leave_running)
{
	run_busy(LEAVE_RUNNING);
}

Test(fpsimd, in_syscall_nocr)
{
	H_OK(h_run_nocr("wl-fpsimd", sleep_args, 0));
}

Test(fpsimd, in_syscall_cr)
{
	H_OK(h_run_cr("wl-fpsimd", sleep_args, 0));
}
