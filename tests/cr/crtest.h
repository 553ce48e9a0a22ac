/* Criterion glue of the C/R tests: the per-test fixture and an assertion that prints h_error(). */
#ifndef SNAP_TESTS_CRTEST_H
#define SNAP_TESTS_CRTEST_H

#include <criterion/criterion.h>

#include "harness.h"

/*
 * Every test of a suite gets h_setup() before and h_cleanup() after, also
 * when an assertion fails, so no process or temp dir outlives a test.
 */
#define H_SUITE(suite) TestSuite(suite, .init = h_setup, .fini = h_cleanup)

/* Asserts that a harness call returned 0, showing why it did not. */
#define H_OK(expr)                                                                         \
	do {                                                                               \
		int h_ok_r_ = (expr);                                                      \
		cr_assert(h_ok_r_ == 0, "%s failed (%d):\n%s", #expr, h_ok_r_, h_error()); \
	} while (0)

#endif
