/* Shared helper of the C/R workloads: the ready/go protocol, seeded data and failure reporting. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

const char *wl_ctldir;
const char *wl_name = "wl";
static unsigned failures;

void wl_init(int argc, char **argv, int min_args, const char *usage)
{
	const char *slash;

	if (argc > 0 && argv[0]) {
		slash = strrchr(argv[0], '/');
		wl_name = slash ? slash + 1 : argv[0];
	}
	if (argc < 2 + min_args) {
		fprintf(stderr, "usage: %s CTLDIR %s\n", wl_name, usage ? usage : "");
		exit(WL_EXIT_SETUP);
	}
	/* Absolute, because workloads may chdir (wl-sleep does). */
	wl_ctldir = realpath(argv[1], NULL);
	if (!wl_ctldir)
		wl_die("bad CTLDIR %s: %m", argv[1]);
	/* Messages must reach the file even if the process dies right after. */
	setvbuf(stderr, NULL, _IONBF, 0);
}

void wl_path(char *buf, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", wl_ctldir, name);

	if (n < 0 || n >= PATH_MAX)
		wl_die("path %s/%s too long", wl_ctldir, name);
}

void wl_ready(void)
{
	char tmp[PATH_MAX], path[PATH_MAX], buf[32];
	int fd, n;

	wl_path(tmp, "ready.tmp");
	wl_path(path, "ready");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("cannot create %s: %m", tmp);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, n) != n)
		wl_die("cannot write %s: %m", tmp);
	/* The fd is closed before ready appears, so it is not part of the dumped state. */
	if (close(fd) != 0)
		wl_die("cannot close %s: %m", tmp);
	if (rename(tmp, path) != 0)
		wl_die("cannot rename %s to %s: %m", tmp, path);
}

bool wl_go_exists(void)
{
	char path[PATH_MAX];

	wl_path(path, "go");
	return access(path, F_OK) == 0;
}

void wl_wait_go(void)
{
	const struct timespec ms = { .tv_sec = 0, .tv_nsec = 1000 * 1000 };

	/*
	 * Counting sleeps instead of reading a clock keeps the limit meaningful
	 * even if the clock jumps across a restore; each sleep lasts >= 1 ms.
	 */
	for (long i = 0; i < WL_GO_TIMEOUT_MS; i++) {
		if (wl_go_exists())
			return;
		nanosleep(&ms, NULL);
	}
	fprintf(stderr, "%s: no go after %d s, giving up\n", wl_name, WL_GO_TIMEOUT_MS / 1000);
	exit(WL_EXIT_NO_GO);
}

void wl_die(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	fprintf(stderr, "%s: setup failed: ", wl_name);
	errno = saved;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(WL_EXIT_SETUP);
}

void wl_fail(const char *fmt, ...)
{
	int saved = errno, len;
	char line[1024];
	va_list ap;

	failures++;
	/* Thousands of identical failures would only bury the first one. */
	if (failures > 50)
		return;
	/* One write per line: the processes of a tree, or copies of one, append to the same file. */
	len = snprintf(line, sizeof(line), "%s: FAIL: ", wl_name);
	errno = saved;
	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof(line) - (size_t)len - 1, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 2)
		len = (int)sizeof(line) - 2;
	line[len++] = '\n';
	fflush(stderr);
	if (write(STDERR_FILENO, line, (size_t)len) < 0)
		return; /* stderr is gone: nowhere left to say it */
}

unsigned wl_failures(void)
{
	return failures;
}

int wl_finish(void)
{
	if (failures) {
		fprintf(stderr, "%s: %u check(s) failed\n", wl_name, failures);
		return WL_EXIT_CHECK_FAILED;
	}
	fprintf(stderr, "%s: ok\n", wl_name);
	return WL_EXIT_OK;
}

/* The output function of splitmix64: the stream is mix(seed + (i + 1) * gamma). */
uint64_t wl_word(uint64_t seed, uint64_t i)
{
	uint64_t x = seed + (i + 1) * 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void wl_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t words = len / 8, i;
	uint64_t w;

	for (i = 0; i < words; i++) {
		w = wl_word(seed, i);
		memcpy(p + i * 8, &w, 8);
	}
	if (len % 8) {
		w = wl_word(seed, words);
		memcpy(p + words * 8, &w, len % 8);
	}
}

size_t wl_verify(const void *buf, size_t len, uint64_t seed)
{
	const unsigned char *p = buf;
	size_t words = len / 8, i, b;
	uint64_t w, got;

	for (i = 0; i < words; i++) {
		w = wl_word(seed, i);
		memcpy(&got, p + i * 8, 8);
		if (got != w)
			goto mismatch;
	}
	if (len % 8) {
		w = wl_word(seed, words);
		if (memcmp(p + words * 8, &w, len % 8) != 0)
			goto mismatch;
	}
	return SIZE_MAX;
mismatch:
	for (b = i * 8; b < len; b++)
		if (p[b] != ((const unsigned char *)&w)[b - i * 8])
			return b;
	return i * 8;
}

bool wl_expect_data(const char *what, const void *buf, size_t len, uint64_t seed)
{
	size_t off = wl_verify(buf, len, seed);

	if (off == SIZE_MAX)
		return true;
	wl_fail("%s (%zu bytes at %p): contents differ at offset %zu (address %p)", what, len, buf, off,
		(const void *)((const char *)buf + off));
	return false;
}

size_t wl_find_nonzero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		if (w)
			break;
	}
	for (; i < len; i++)
		if (p[i])
			return i;
	return SIZE_MAX;
}

uint64_t wl_hash(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

size_t wl_page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}
