/* wl-tagged (aarch64): a thread that turned the tagged address ABI on has it on after a restore. */
#include "crtest.h"

H_SUITE(tagged_addr);

Test(tagged_addr, abi_on_nocr)
{
	H_OK(h_run_nocr("wl-tagged", NULL, 0));
}

Test(tagged_addr, abi_on_cr)
{
	H_OK(h_run_cr("wl-tagged", NULL, 0));
}
