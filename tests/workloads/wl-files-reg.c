/*
 * Workload: files opened by path at chosen fd numbers with flags and
 * offsets, a description shared by two fds, a deleted file (sparse, with
 * a second description), a directory, O_PATH fds, /dev/null, /dev/zero,
 * /dev/urandom and two memfds with content and seals.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl.h"

enum {
	FD_RO = 17,	 /* data.txt read-only at offset 1234 */
	FD_APPEND = 40,	 /* log.txt O_WRONLY | O_APPEND */
	FD_RW = 100,	 /* rw.txt O_RDWR | O_NONBLOCK, close-on-exec */
	FD_DIRECT = 41,	 /* direct.dat O_RDWR | O_DIRECT at 4096 */
	FD_SHARED1 = 50, /* shared.txt, one description behind two fds */
	FD_SHARED2 = 55,
	FD_OTHER = 56, /* shared.txt again: a description of its own */
	FD_DEL = 60,   /* del.dat, deleted: sparse, at offset 4321 */
	FD_DEL2 = 61,  /* another description of it, read-only */
	FD_DIR = 62,
	FD_PATH = 63, /* O_PATH of data.txt */
	FD_LINK = 64, /* O_PATH | O_NOFOLLOW of a symlink */
	FD_NULL = 70,
	FD_ZERO = 71,
	FD_URANDOM = 72,
	FD_MEMFD = 80,	 /* sealed memfd */
	FD_MEMFD2 = 81,	 /* memfd without sealing, large and sparse */
	FD_TMPFILE = 90, /* O_TMPFILE in CTLDIR: never had a name */
};

#define DATA_SIZE   10000
#define DEL_HEAD    (100 * 1024)
#define DEL_TAIL_AT (1 << 20)
#define DEL_TAIL    4096
#define MEMFD_SIZE  (3 * 4096)
#define MEMFD2_SIZE (8 << 20)

static uint8_t buf[DEL_HEAD + DEL_TAIL];
static ino_t data_ino, dir_ino;
static off_t log_size;

static void place(int fd, int at)
{
	if (fd < 0)
		wl_die("open for fd %d: %m", at);
	if (fd != at) {
		if (dup3(fd, at, 0) < 0)
			wl_die("dup3 to %d: %m", at);
		close(fd);
	}
}

static void write_file(const char *name, size_t len, uint64_t seed)
{
	char path[PATH_MAX];
	int fd;

	wl_path(path, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	wl_fill(buf, len, seed);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd))
		wl_die("cannot write %s: %m", path);
}

static int direct_flag = O_DIRECT; /* 0 where the file system refuses O_DIRECT */

static int open_ctl(const char *name, int flags)
{
	char path[PATH_MAX];

	wl_path(path, name);
	return open(path, flags, 0644);
}

static void setup(void)
{
	char path[PATH_MAX], target[PATH_MAX];
	struct stat st;
	int fd;

	write_file("data.txt", DATA_SIZE, 1);
	write_file("log.txt", 100, 2);
	write_file("rw.txt", 5000, 3);
	write_file("direct.dat", 3 * 4096, 4);
	write_file("shared.txt", 2000, 5);

	place(open_ctl("data.txt", O_RDONLY), FD_RO);
	if (lseek(FD_RO, 1234, SEEK_SET) != 1234)
		wl_die("lseek: %m");
	place(open_ctl("log.txt", O_WRONLY | O_APPEND), FD_APPEND);
	if (write(FD_APPEND, "appended\n", 9) != 9)
		wl_die("write log: %m");
	log_size = 109;
	place(open_ctl("rw.txt", O_RDWR | O_NONBLOCK), FD_RW);
	if (fcntl(FD_RW, F_SETFD, FD_CLOEXEC) || lseek(FD_RW, 4999, SEEK_SET) != 4999)
		wl_die("rw.txt: %m");
	/* tmpfs takes O_DIRECT only since Linux 6.6: elsewhere the fd stands without it. */
	fd = open_ctl("direct.dat", O_RDWR | O_DIRECT);
	if (fd < 0 && errno == EINVAL) {
		fd = open_ctl("direct.dat", O_RDWR);
		direct_flag = 0;
	}
	place(fd, FD_DIRECT);
	if (lseek(FD_DIRECT, 4096, SEEK_SET) != 4096)
		wl_die("lseek: %m");
	place(open_ctl("shared.txt", O_RDWR), FD_SHARED1);
	if (dup2(FD_SHARED1, FD_SHARED2) != FD_SHARED2 || lseek(FD_SHARED1, 777, SEEK_SET) != 777)
		wl_die("shared.txt: %m");
	place(open_ctl("shared.txt", O_RDONLY), FD_OTHER);
	if (lseek(FD_OTHER, 5, SEEK_SET) != 5)
		wl_die("lseek: %m");

	/* Deleted: 100 KiB of data, a hole, 4 KiB at 1 MiB. */
	place(open_ctl("del.dat", O_RDWR | O_CREAT | O_TRUNC), FD_DEL);
	wl_fill(buf, sizeof(buf), 6);
	if (pwrite(FD_DEL, buf, DEL_HEAD, 0) != DEL_HEAD ||
	    pwrite(FD_DEL, buf + DEL_HEAD, DEL_TAIL, DEL_TAIL_AT) != DEL_TAIL)
		wl_die("del.dat: %m");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", FD_DEL);
	place(open(path, O_RDONLY), FD_DEL2);
	wl_path(path, "del.dat");
	if (unlink(path) || lseek(FD_DEL, 4321, SEEK_SET) != 4321 || lseek(FD_DEL2, 10, SEEK_SET) != 10)
		wl_die("del.dat: %m");

	wl_path(path, "");
	place(open(path, O_RDONLY | O_DIRECTORY), FD_DIR);
	if (fstat(FD_DIR, &st))
		wl_die("fstat: %m");
	dir_ino = st.st_ino;
	place(open_ctl("data.txt", O_PATH), FD_PATH);
	if (fstat(FD_PATH, &st))
		wl_die("fstat: %m");
	data_ino = st.st_ino;
	wl_path(target, "data.txt");
	wl_path(path, "link");
	if (symlink(target, path))
		wl_die("symlink: %m");
	place(open(path, O_PATH | O_NOFOLLOW), FD_LINK);

	place(open("/dev/null", O_WRONLY), FD_NULL);
	place(open("/dev/zero", O_RDONLY), FD_ZERO);
	place(open("/dev/urandom", O_RDONLY | O_NONBLOCK), FD_URANDOM);

	fd = memfd_create("wl-memfd", MFD_ALLOW_SEALING);
	place(fd, FD_MEMFD);
	wl_fill(buf, MEMFD_SIZE, 7);
	if (write(FD_MEMFD, buf, MEMFD_SIZE) != MEMFD_SIZE || lseek(FD_MEMFD, 99, SEEK_SET) != 99 ||
	    fcntl(FD_MEMFD, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		wl_die("memfd: %m");
	wl_path(path, "");
	place(open(path, O_TMPFILE | O_RDWR, 0600), FD_TMPFILE);
	wl_fill(buf, 5000, 9);
	if (write(FD_TMPFILE, buf, 5000) != 5000 || lseek(FD_TMPFILE, 123, SEEK_SET) != 123)
		wl_die("O_TMPFILE: %m");
	place(memfd_create("second", 0), FD_MEMFD2);
	wl_fill(buf, 4096, 8);
	if (ftruncate(FD_MEMFD2, MEMFD2_SIZE) || pwrite(FD_MEMFD2, buf, 4096, MEMFD2_SIZE - 4096) != 4096 ||
	    pwrite(FD_MEMFD2, "abc", 3, 0) != 3)
		wl_die("memfd2: %m");
}

static void expect_flags(int fd, int want, int mask)
{
	int fl = fcntl(fd, F_GETFL);

	wl_expect(fl >= 0 && (fl & mask) == want, "fd %d: flags 0%o, expected 0%o (mask 0%o)", fd, fl & mask, want,
		  mask);
}

static void expect_pos(int fd, off_t want)
{
	off_t at = lseek(fd, 0, SEEK_CUR);

	wl_expect(at == want, "fd %d: offset %lld, expected %lld", fd, (long long)at, (long long)want);
}

static void expect_link(int fd, const char *want)
{
	char path[64], link[PATH_MAX] = "";
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n > 0)
		link[n] = '\0';
	wl_expect(!strcmp(link, want), "fd %d: points to \"%s\", expected \"%s\"", fd, link, want);
}

static bool same_file(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

static void check(void)
{
	char path[PATH_MAX], want[PATH_MAX + 16];
	uint8_t small[64];
	struct stat st;
	int seals;

	/* Read-only data file: offset and the bytes from there. */
	expect_flags(FD_RO, O_RDONLY, O_ACCMODE | O_APPEND | O_NONBLOCK);
	expect_pos(FD_RO, 1234);
	wl_fill(buf, DATA_SIZE, 1);
	wl_expect(read(FD_RO, small, 16) == 16 && !memcmp(small, buf + 1234, 16), "data.txt: wrong bytes at 1234");

	/* Append: a write lands at the end whatever the offset. */
	expect_flags(FD_APPEND, O_WRONLY | O_APPEND, O_ACCMODE | O_APPEND);
	lseek(FD_APPEND, 0, SEEK_SET);
	wl_expect(write(FD_APPEND, "after\n", 6) == 6, "log.txt: write: %m");
	wl_expect(fstat(FD_APPEND, &st) == 0 && st.st_size == log_size + 6, "log.txt: size %lld after append",
		  (long long)st.st_size);

	expect_flags(FD_RW, O_RDWR | O_NONBLOCK, O_ACCMODE | O_NONBLOCK | O_APPEND);
	wl_expect(fcntl(FD_RW, F_GETFD) == FD_CLOEXEC, "fd %d: close-on-exec lost", FD_RW);
	wl_expect(fcntl(FD_RO, F_GETFD) == 0, "fd %d: close-on-exec appeared", FD_RO);
	expect_pos(FD_RW, 4999);
	expect_flags(FD_DIRECT, O_RDWR | direct_flag, O_ACCMODE | O_DIRECT);
	expect_pos(FD_DIRECT, 4096);

	/* One description behind two fds: one offset, moved by either. */
	wl_expect(same_file(FD_SHARED1, FD_SHARED2), "fds %d and %d no longer share their file", FD_SHARED1,
		  FD_SHARED2);
	wl_expect(!same_file(FD_SHARED1, FD_OTHER), "fds %d and %d share a file they did not", FD_SHARED1, FD_OTHER);
	expect_pos(FD_SHARED2, 777);
	lseek(FD_SHARED1, 100, SEEK_SET);
	expect_pos(FD_SHARED2, 100);
	expect_pos(FD_OTHER, 5);

	/* The deleted file: still deleted, same name, same content, holes and all. */
	wl_path(path, "del.dat");
	snprintf(want, sizeof(want), "%s (deleted)", path);
	expect_link(FD_DEL, want);
	expect_link(FD_DEL2, want);
	wl_expect(fstat(FD_DEL, &st) == 0 && st.st_nlink == 0 && st.st_size == DEL_TAIL_AT + DEL_TAIL,
		  "del.dat: nlink %lu size %lld", (unsigned long)st.st_nlink, (long long)st.st_size);
	wl_expect(access(path, F_OK) && errno == ENOENT, "del.dat exists again");
	expect_pos(FD_DEL, 4321);
	expect_pos(FD_DEL2, 10);
	expect_flags(FD_DEL2, O_RDONLY, O_ACCMODE);
	memset(buf, 0xaa, sizeof(buf));
	wl_expect(pread(FD_DEL2, buf, DEL_HEAD, 0) == DEL_HEAD, "del.dat: read: %m");
	wl_expect(pread(FD_DEL2, buf + DEL_HEAD, DEL_TAIL, DEL_TAIL_AT) == DEL_TAIL, "del.dat: read: %m");
	wl_expect_data("del.dat", buf, DEL_HEAD + DEL_TAIL, 6);
	wl_expect(pread(FD_DEL2, small, sizeof(small), DEL_TAIL_AT - 100) == sizeof(small) &&
			  wl_find_nonzero(small, sizeof(small)) == SIZE_MAX,
		  "del.dat: the hole is not zero");
	wl_expect(same_file(FD_DEL, FD_DEL) && !same_file(FD_DEL, FD_DEL2), "del.dat: descriptions merged");
	wl_expect(pwrite(FD_DEL, "Z", 1, 0) == 1 && pread(FD_DEL2, small, 1, 0) == 1 && small[0] == 'Z',
		  "del.dat: the two descriptions are not of one file");

	wl_expect(fstat(FD_DIR, &st) == 0 && S_ISDIR(st.st_mode) && st.st_ino == dir_ino, "directory fd lost");
	expect_flags(FD_PATH, O_PATH, O_PATH);
	wl_expect(fstat(FD_PATH, &st) == 0 && st.st_ino == data_ino, "O_PATH fd: another file");
	expect_flags(FD_LINK, O_PATH | O_NOFOLLOW, O_PATH | O_NOFOLLOW);
	wl_expect(fstat(FD_LINK, &st) == 0 && S_ISLNK(st.st_mode), "O_PATH fd of a symlink: not the symlink");

	expect_link(FD_NULL, "/dev/null");
	expect_flags(FD_NULL, O_WRONLY, O_ACCMODE);
	expect_link(FD_ZERO, "/dev/zero");
	memset(small, 1, sizeof(small));
	wl_expect(read(FD_ZERO, small, sizeof(small)) == sizeof(small) &&
			  wl_find_nonzero(small, sizeof(small)) == SIZE_MAX,
		  "/dev/zero does not read zeros");
	expect_link(FD_URANDOM, "/dev/urandom");
	expect_flags(FD_URANDOM, O_RDONLY | O_NONBLOCK, O_ACCMODE | O_NONBLOCK);
	wl_expect(read(FD_URANDOM, small, sizeof(small)) == sizeof(small), "/dev/urandom: read: %m");

	{
		char link[PATH_MAX] = "", proc[64];
		ssize_t n;

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", FD_TMPFILE);
		n = readlink(proc, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		wl_path(path, "#");
		wl_expect(!strncmp(link, path, strlen(path)) && strstr(link, " (deleted)"),
			  "O_TMPFILE: points to \"%s\"", link);
		expect_pos(FD_TMPFILE, 123);
		expect_flags(FD_TMPFILE, O_RDWR, O_ACCMODE);
		wl_expect(pread(FD_TMPFILE, buf, 5001, 0) == 5000, "O_TMPFILE: size changed");
		wl_expect_data("O_TMPFILE", buf, 5000, 9);
	}
	expect_link(FD_MEMFD, "/memfd:wl-memfd (deleted)");
	expect_pos(FD_MEMFD, 99);
	seals = fcntl(FD_MEMFD, F_GET_SEALS);
	wl_expect(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd seals 0x%x, expected 0x%x", seals,
		  F_SEAL_SHRINK | F_SEAL_GROW);
	wl_expect(ftruncate(FD_MEMFD, 10) && errno == EPERM, "memfd: a sealed memfd shrank");
	memset(buf, 0, MEMFD_SIZE);
	wl_expect(pread(FD_MEMFD, buf, MEMFD_SIZE + 10, 0) == MEMFD_SIZE, "memfd: size changed");
	wl_expect_data("memfd", buf, MEMFD_SIZE, 7);
	expect_link(FD_MEMFD2, "/memfd:second (deleted)");
	wl_expect(fcntl(FD_MEMFD2, F_GET_SEALS) == F_SEAL_SEAL, "memfd2: seals 0x%x", fcntl(FD_MEMFD2, F_GET_SEALS));
	wl_expect(fstat(FD_MEMFD2, &st) == 0 && st.st_size == MEMFD2_SIZE, "memfd2: size %lld", (long long)st.st_size);
	wl_expect(pread(FD_MEMFD2, small, 3, 0) == 3 && !memcmp(small, "abc", 3), "memfd2: head lost");
	wl_expect(pread(FD_MEMFD2, buf, 4096, MEMFD2_SIZE - 4096) == 4096, "memfd2: read: %m");
	wl_expect_data("memfd2 tail", buf, 4096, 8);
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
