/* Workload: writes to stdout before and after C/R, so the file offset of fd 1 must survive. */
#include <string.h>
#include <unistd.h>

#include "wl.h"

/* write(2) straight to fd 1: stdio buffering would hide where the bytes went. */
static void put(const char *s)
{
	size_t len = strlen(s);
	ssize_t n = write(STDOUT_FILENO, s, len);

	if (n != (ssize_t)len)
		wl_fail("write of \"%.*s\" to stdout returned %zd: %m", (int)len - 1, s, n);
}

int main(int argc, char **argv)
{
	off_t pos;

	wl_init(argc, argv, 0, "");
	put("before\n");
	wl_ready();
	wl_wait_go();
	/* The harness opened stdout without O_APPEND, so only the offset puts "after" in place. */
	pos = lseek(STDOUT_FILENO, 0, SEEK_CUR);
	wl_expect(pos == 7, "stdout offset is %lld, expected 7", (long long)pos);
	put("after\n");
	return wl_finish();
}
