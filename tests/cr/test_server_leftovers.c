/*
 * State real servers hold that the service tests met first: the socket of a finished connection next to
 * its listener (Tomcat), and a small file mapped shared and writable that may change or vanish between
 * dump and restore (a JVM's hsperfdata file, removed by the next JVM that starts as stale).
 */
#include <limits.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(leftovers);

static const char *const finished_args[] = { "finished", NULL };
static const char *const shared_file_args[] = { "shared-file", NULL };

Test(leftovers, finished_connection_nocr)
{
	H_OK(h_run_nocr("wl-server-leftovers", finished_args, 0));
}

Test(leftovers, finished_connection_cr)
{
	H_OK(h_run_cr("wl-server-leftovers", finished_args, 0));
}

Test(leftovers, shared_file_nocr)
{
	H_OK(h_run_nocr("wl-server-leftovers", shared_file_args, 0));
}

/* Dumps the shared-file workload, does @between to its file, restores and lets it check. */
static void shared_file_cr(void (*between)(const char *path))
{
	struct h_wl w = { 0 };
	char imgdir[PATH_MAX], path[PATH_MAX + 16];

	H_OK(h_start(&w, "wl-server-leftovers", shared_file_args));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	snprintf(path, sizeof(path), "%s/shared-file", w.ctldir);
	between(path);
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
}

static void nothing(const char *path)
{
	(void)path;
}

static void touch(const char *path)
{
	struct timeval later[2];

	gettimeofday(&later[0], NULL);
	later[0].tv_sec += 100;
	later[1] = later[0];
	cr_assert(utimes(path, later) == 0, "utimes %s: %m", path);
}

static void remove_it(const char *path)
{
	cr_assert(unlink(path) == 0, "unlink %s: %m", path);
}

Test(leftovers, shared_file_cr)
{
	shared_file_cr(nothing);
}

/* The process's own writes change the file's times after the dump: that is no reason to refuse it. */
Test(leftovers, shared_file_touched_cr)
{
	shared_file_cr(touch);
}

/* Gone at restore: made again, with the content it had at dump, and mapped as the file it is. */
Test(leftovers, shared_file_removed_cr)
{
	shared_file_cr(remove_it);
}
