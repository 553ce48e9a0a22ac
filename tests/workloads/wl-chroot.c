/*
 * Workload: a root directory other than "/" (CTLDIR, entered with
 * chroot), the working directory inside it, and a file opened there.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl.h"

static const char marker[] = "inside the new root\n";
static struct stat root_before;
static int data_fd;

static void setup(void)
{
	char path[PATH_MAX];
	int fd;

	wl_path(path, "marker");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, marker, strlen(marker)) != (ssize_t)strlen(marker) || close(fd))
		wl_die("cannot write %s: %m", path);
	if (stat(wl_ctldir, &root_before))
		wl_die("stat %s failed: %m", wl_ctldir);
	if (chroot(wl_ctldir) || chdir("/"))
		wl_die("chroot %s failed: %m", wl_ctldir);
	/* ready and go are now at the top of the new root. */
	wl_ctldir = "";
	data_fd = open("/marker", O_RDONLY | O_CLOEXEC);
	if (data_fd < 0 || lseek(data_fd, 3, SEEK_SET) != 3)
		wl_die("cannot open /marker: %m");
}

static void check(void)
{
	char cwd[PATH_MAX], buf[64] = "";
	struct stat st, up;
	ssize_t n;
	int fd;

	if (stat("/", &st) || stat("/..", &up))
		wl_fail("stat / failed: %m");
	else
		wl_expect(st.st_dev == root_before.st_dev && st.st_ino == root_before.st_ino && up.st_ino == st.st_ino,
			  "/ is inode %lu (.. %lu), expected %lu", (unsigned long)st.st_ino, (unsigned long)up.st_ino,
			  (unsigned long)root_before.st_ino);
	wl_expect(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, "/"), "cwd is %s, expected /", cwd);
	fd = open("/marker", O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	wl_expect(n == (ssize_t)strlen(marker) && !memcmp(buf, marker, (size_t)n), "/marker reads \"%.*s\"",
		  (int)(n > 0 ? n : 0), buf);
	if (fd >= 0)
		close(fd);
	n = read(data_fd, buf, 5);
	wl_expect(n == 5 && !memcmp(buf, marker + 3, 5), "the open /marker reads \"%.*s\" at offset 3",
		  (int)(n > 0 ? n : 0), buf);
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
