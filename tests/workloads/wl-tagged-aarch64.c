/* Workload (aarch64): the tagged address ABI across C/R; system calls take pointers with a tag in their top byte only
 * with it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "wl.h"

/*
 * Usage: wl-tagged CTLDIR
 * Turns on PR_TAGGED_ADDR_ENABLE, then after go checks that it is still on
 * and that uname() still takes a tagged pointer (without the ABI the
 * kernel refuses it with EFAULT, which is checked first). A kernel without
 * the ABI leaves nothing to check.
 */

static struct utsname uts;

static long uname_at(void *p)
{
	return syscall(SYS_uname, p);
}

int main(int argc, char **argv)
{
	void *tagged = (void *)((uintptr_t)&uts | 0x2aull << 56);
	long ctrl;

	wl_init(argc, argv, 0, "");
	if (uname_at(tagged) == 0 || errno != EFAULT)
		wl_die("uname() with a tagged pointer did not fail with EFAULT before the ABI was on");
	if (prctl(PR_SET_TAGGED_ADDR_CTRL, PR_TAGGED_ADDR_ENABLE, 0, 0, 0) != 0) {
		fprintf(stderr, "%s: no tagged address ABI here (%m): nothing to check\n", wl_name);
		wl_ready();
		wl_wait_go();
		return wl_finish();
	}
	if (uname_at(tagged) != 0)
		wl_die("uname() with a tagged pointer failed with the ABI on: %m");
	fprintf(stderr, "%s: tagged address ABI on\n", wl_name);

	wl_ready();
	wl_wait_go();

	ctrl = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
	wl_expect(ctrl == PR_TAGGED_ADDR_ENABLE, "tagged address control is %#lx, expected %#lx", ctrl,
		  (long)PR_TAGGED_ADDR_ENABLE);
	wl_expect(uname_at(tagged) == 0, "uname() with a tagged pointer fails: %m");
	return wl_finish();
}
