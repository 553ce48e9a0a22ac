/* wl-pac (aarch64): return addresses signed before the dump verify after the restore, under the same keys. */
#include "crtest.h"

H_SUITE(pac);

Test(pac, signed_frames_nocr)
{
	H_OK(h_run_nocr("wl-pac", NULL, 0));
}

Test(pac, signed_frames_cr)
{
	H_OK(h_run_cr("wl-pac", NULL, 0));
}
