/* wl-avx (x86_64): every vector, mask, x87 and MXCSR register, frozen in user code and inside a syscall. */
#include "crtest.h"

H_SUITE(avx);

static const char *const busy_args[] = { "busy", NULL };
static const char *const sleep_args[] = { "sleep", NULL };

Test(avx, busy_nocr)
{
	H_OK(h_run_nocr("wl-avx", busy_args, 0));
}

Test(avx, busy_cr)
{
	H_OK(h_run_cr("wl-avx", busy_args, 0));
}

Test(avx, in_syscall_nocr)
{
	H_OK(h_run_nocr("wl-avx", sleep_args, 0));
}

Test(avx, in_syscall_cr)
{
	H_OK(h_run_cr("wl-avx", sleep_args, 0));
}
