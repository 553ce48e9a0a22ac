/*
 * Workload: pipes with unread data (a full default one, a 1 MiB one set by
 * F_SETPIPE_SZ), a pipe whose writer is closed (data, then end of file),
 * one whose reader is closed (EPIPE), a non-blocking empty one, a second
 * description of a pipe end, and a FIFO holding data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl.h"

#define BIG_SIZE  (1 << 20)
#define BIG_DATA  300000
#define SMALL	  100
#define FIFO_DATA 5000

static int full[2], big[2], eof_r, epipe_w, empty[2], reopened, fifo_rw, fifo_r, fifo_w;
static int full_size;
static uint8_t buf[BIG_SIZE];

static void must(bool ok, const char *what)
{
	if (!ok)
		wl_die("%s: %m", what);
}

/* Moves @fd to a number far from the low ones, so that the ends are not in creation order. */
static int move_to(int fd, int at)
{
	must(dup2(fd, at) == at, "dup2");
	close(fd);
	return at;
}

static void setup(void)
{
	char path[PATH_MAX], proc[64];
	int p[2];
	ssize_t n;

	/* A SIGPIPE would end the check of the reader-less pipe. */
	signal(SIGPIPE, SIG_IGN);

	must(pipe2(full, O_NONBLOCK) == 0, "pipe");
	full[0] = move_to(full[0], 33);
	full[1] = move_to(full[1], 20);
	wl_fill(buf, sizeof(buf), 11);
	while ((n = write(full[1], buf + full_size, 4096)) > 0)
		full_size += (int)n;
	must(errno == EAGAIN && full_size > 0, "filling a pipe");

	must(pipe(big) == 0, "pipe");
	must(fcntl(big[1], F_SETPIPE_SZ, BIG_SIZE) == BIG_SIZE, "F_SETPIPE_SZ");
	wl_fill(buf, BIG_DATA, 12);
	must(write(big[1], buf, BIG_DATA) == BIG_DATA, "write big");

	must(pipe(p) == 0, "pipe");
	wl_fill(buf, SMALL, 13);
	must(write(p[1], buf, SMALL) == SMALL, "write");
	close(p[1]);
	eof_r = p[0];

	must(pipe(p) == 0, "pipe");
	close(p[0]);
	epipe_w = p[1];

	must(pipe2(empty, O_NONBLOCK) == 0, "pipe");
	/* A second description of the read end: one pipe, two files. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", empty[0]);
	reopened = open(proc, O_RDONLY);
	must(reopened >= 0, "reopen");
	must(write(empty[1], "x", 1) == 1 && read(reopened, buf, 1) == 1, "pipe round trip");

	wl_path(path, "fifo");
	must(mkfifo(path, 0600) == 0, "mkfifo");
	fifo_rw = open(path, O_RDWR | O_NONBLOCK);
	fifo_r = open(path, O_RDONLY | O_NONBLOCK);
	fifo_w = open(path, O_WRONLY);
	must(fifo_rw >= 0 && fifo_r >= 0 && fifo_w >= 0, "open fifo");
	wl_fill(buf, FIFO_DATA, 14);
	must(write(fifo_w, buf, FIFO_DATA) == FIFO_DATA, "write fifo");
	/* The FIFO's file may go: its data lives in the open ends. */
}

static void read_all(int fd, size_t len, uint64_t seed, const char *what)
{
	size_t got = 0;

	memset(buf, 0, len);
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0) {
			wl_fail("%s: read returned %zd after %zu of %zu bytes: %m", what, n, got, len);
			return;
		}
		got += (size_t)n;
	}
	wl_expect_data(what, buf, len, seed);
}

static void check(void)
{
	char c;
	ssize_t n;

	/* Full: not a byte more fits, and what is there is what was written. */
	wl_expect(write(full[1], "y", 1) < 0 && errno == EAGAIN, "full pipe took another byte");
	wl_expect(fcntl(full[0], F_GETFL) & O_NONBLOCK, "full pipe: O_NONBLOCK lost");
	read_all(full[0], (size_t)full_size, 11, "full pipe");
	wl_expect(read(full[0], &c, 1) < 0 && errno == EAGAIN, "full pipe: more data than written");

	wl_expect(fcntl(big[0], F_GETPIPE_SZ) == BIG_SIZE, "big pipe: capacity %d, expected %d",
		  fcntl(big[0], F_GETPIPE_SZ), BIG_SIZE);
	read_all(big[0], BIG_DATA, 12, "big pipe");

	read_all(eof_r, SMALL, 13, "pipe without writer");
	n = read(eof_r, &c, 1);
	wl_expect(n == 0, "pipe without writer: read returned %zd after the data, expected end of file", n);

	n = write(epipe_w, "z", 1);
	wl_expect(n < 0 && errno == EPIPE, "pipe without reader: write returned %zd (%m), expected EPIPE", n);

	wl_expect(read(empty[0], &c, 1) < 0 && errno == EAGAIN, "empty pipe is not empty or blocks");
	wl_expect(!(fcntl(reopened, F_GETFL) & O_NONBLOCK), "reopened end: O_NONBLOCK appeared");
	wl_expect(write(empty[1], "q", 1) == 1 && read(reopened, &c, 1) == 1 && c == 'q',
		  "the second description of the read end is not on the same pipe");

	read_all(fifo_r, FIFO_DATA, 14, "fifo");
	wl_expect(write(fifo_w, "f", 1) == 1 && read(fifo_rw, &c, 1) == 1 && c == 'f',
		  "fifo ends are not on the same FIFO");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "");
	setup();
	wl_ready();
	wl_wait_go();
	check();
	return wl_finish();
}
