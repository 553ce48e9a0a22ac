/*
 * Signals, timers, credentials, seccomp, resource limits, scheduling,
 * prctl state, the root directory and file locks: each workload once
 * untouched and once dumped and restored, plus what must be refused.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_util.h"

H_SUITE(attrs);

Test(attrs, attrs_nocr)
{
	H_OK(h_run_nocr("wl-attrs", NULL, 0));
}

Test(attrs, attrs_cr)
{
	H_OK(h_run_cr("wl-attrs", NULL, 0));
}

Test(attrs, signals_nocr)
{
	H_OK(h_run_nocr("wl-signals", NULL, 0));
}

Test(attrs, signals_cr)
{
	H_OK(h_run_cr("wl-signals", NULL, 0));
}

Test(attrs, timers_nocr)
{
	H_OK(h_run_nocr("wl-timers", NULL, 0));
}

Test(attrs, timers_cr)
{
	H_OK(h_run_cr("wl-timers", NULL, 0));
}

Test(attrs, creds_nocr)
{
	H_OK(h_run_nocr("wl-creds", NULL, 0));
}

Test(attrs, creds_cr)
{
	H_OK(h_run_cr("wl-creds", NULL, 0));
}

Test(attrs, seccomp_nocr)
{
	H_OK(h_run_nocr("wl-seccomp", NULL, 0));
}

Test(attrs, seccomp_cr)
{
	H_OK(h_run_cr("wl-seccomp", NULL, 0));
}

Test(attrs, chroot_nocr)
{
	H_OK(h_run_nocr("wl-chroot", NULL, 0));
}

Test(attrs, chroot_cr)
{
	H_OK(h_run_cr("wl-chroot", NULL, 0));
}

Test(attrs, locks_nocr)
{
	H_OK(h_run_nocr("wl-locks", NULL, 0));
}

Test(attrs, locks_cr)
{
	H_OK(h_run_cr("wl-locks", NULL, 0));
}
