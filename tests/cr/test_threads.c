/* Multi-threaded processes: threads in mixed states, and threads that come and go during the dump. */
#include "crtest.h"

H_SUITE(threads);

static const char *const threads64[] = { "64", NULL };

Test(threads, mixed_64_nocr)
{
	H_OK(h_run_nocr("wl-threads", threads64, 0));
}

Test(threads, mixed_64_cr)
{
	H_OK(h_run_cr("wl-threads", threads64, 0));
}

Test(threads, churn_nocr)
{
	H_OK(h_run_nocr("wl-thread-churn", NULL, 0));
}

Test(threads, churn_cr)
{
	H_OK(h_run_cr("wl-thread-churn", NULL, 0));
}
