/* Small checks shared by the C/R test files. */
#ifndef SNAP_TESTS_CRTEST_UTIL_H
#define SNAP_TESTS_CRTEST_UTIL_H

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Whether @s contains the decimal @n as a whole number (not inside a longer one). */
static inline bool contains_number(const char *s, long n)
{
	char num[32];
	size_t len = (size_t)snprintf(num, sizeof(num), "%ld", n);

	for (const char *p = strstr(s, num); p; p = strstr(p + 1, num)) {
		bool left = p == s || !isdigit((unsigned char)p[-1]);
		bool right = !isdigit((unsigned char)p[len]);

		if (left && right)
			return true;
	}
	return false;
}

/* Case-insensitive substring test. */
static inline bool contains_word(const char *s, const char *word)
{
	return strcasestr(s, word) != NULL;
}

/* Size of this process's address space, from /proc/self/statm (for tests that lower RLIMIT_AS below it). */
static inline rlim_t address_space_bytes(void)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%lu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

#endif
