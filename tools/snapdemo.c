/*
 * The main demo: a program with a slow initialization is started cold and
 * timed to its first answer, then snapshotted once initialized and
 * restored, again timed to its first answer. Uses only the public API.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snap/snap.h"

#define RUNS  3
#define QUERY 123456789ul

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "snapdemo: %s\n", what);
	exit(1);
}

static pid_t spawn(const char *app, const char *dir)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		closefrom(3);
		setsid();
		execl(app, app, dir, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void put_request(const char *dir)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/ans-%lu", dir, QUERY);
	unlink(path);
	snprintf(path, sizeof(path), "%s/req-%lu", dir, QUERY);
	f = fopen(path, "w");
	if (!f)
		die("cannot write a request");
	fclose(f);
}

/* Waits for the answer file; returns the answer. */
static unsigned long wait_answer(const char *dir, pid_t pid)
{
	char path[PATH_MAX + 64];
	unsigned long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/ans-%lu", dir, QUERY);
	while (!(f = fopen(path, "r"))) {
		struct timespec ts = { 0, 100000 };

		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("the demo app died");
		nanosleep(&ts, NULL);
	}
	if (fscanf(f, "%lu", &v) != 1)
		die("bad answer");
	fclose(f);
	return v;
}

static void wait_file(const char *dir, const char *name)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	while (access(path, F_OK)) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
}

static void end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	char self[PATH_MAX], app[PATH_MAX + 16], base[] = "/tmp/snapdemo.XXXXXX", dir[PATH_MAX / 2],
						 images[PATH_MAX / 2];
	double cold[RUNS], warm[RUNS], stage_ms[SNAP_STAGE__COUNT] = { 0 };
	unsigned long cold_answer = 0, warm_answer = 0;
	struct snap_stats st = { .size = sizeof(st) };
	snap_ctx *ctx;
	ssize_t n;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die("cannot find myself");
	self[n] = '\0';
	snprintf(app, sizeof(app), "%s/demo-app", dirname(self));
	if (!mkdtemp(base))
		die("cannot create a temporary directory");
	snprintf(dir, sizeof(dir), "%s/app", base);
	snprintf(images, sizeof(images), "%s/images", base);
	mkdir(dir, 0700);
	if (snap_ctx_new(&ctx))
		die("out of memory");

	printf("snapdemo: a program that initializes for a while (a 150M prime sieve), then answers\n"
	       "\"how many primes below %lu?\". Each time is from start to its first answer.\n\n",
	       QUERY);
	for (int i = 0; i < RUNS; i++) {
		double t0;
		pid_t pid;

		put_request(dir);
		t0 = now_ms();
		pid = spawn(app, dir);
		cold_answer = wait_answer(dir, pid);
		cold[i] = now_ms() - t0;
		end(pid);
		printf("  cold start %d: %8.1f ms\n", i + 1, cold[i]);
	}

	/* Snapshot once, right after initialization. */
	{
		struct snap_dump_opts o = { .size = sizeof(o), .images_dir = images };
		char ready[PATH_MAX + 16];

		snprintf(ready, sizeof(ready), "%s/ready", dir);
		unlink(ready);
		o.pid = spawn(app, dir);
		wait_file(dir, "ready");
		if (snap_dump(ctx, &o)) {
			fprintf(stderr, "snapdemo: dump failed: %s\n", snap_error(ctx));
			end(o.pid);
			return 1;
		}
		waitpid(o.pid, NULL, 0);
		printf("  snapshot taken after initialization\n");
	}

	for (int i = 0; i < RUNS; i++) {
		struct snap_restore_opts o = { .size = sizeof(o), .images_dir = images };
		double t0;
		pid_t pid;

		put_request(dir);
		t0 = now_ms();
		if (snap_restore(ctx, &o, &pid)) {
			fprintf(stderr, "snapdemo: restore failed: %s\n", snap_error(ctx));
			return 1;
		}
		warm_answer = wait_answer(dir, pid);
		warm[i] = now_ms() - t0;
		snap_get_stats(ctx, &st);
		for (int s = 0; s < SNAP_STAGE__COUNT; s++)
			stage_ms[s] += st.stage_ns[s] / 1e6 / RUNS;
		end(pid);
		printf("  restore %d:    %8.1f ms\n", i + 1, warm[i]);
	}
	qsort(cold, RUNS, sizeof(double), cmp_double);
	qsort(warm, RUNS, sizeof(double), cmp_double);

	printf("\n  %-28s %12s %12s\n", "", "cold start", "restore");
	printf("  %-28s %9.1f ms %9.1f ms\n", "time to first answer (median)", cold[RUNS / 2], warm[RUNS / 2]);
	printf("  %-28s %12lu %12lu\n", "answer", cold_answer, warm_answer);
	printf("\n  restore is %.1fx faster (%.1f%% less time)\n", cold[RUNS / 2] / warm[RUNS / 2],
	       100.0 * (1 - warm[RUNS / 2] / cold[RUNS / 2]));
	printf("  restore stages (mean ms):");
	for (int s = SNAP_STAGE_READ; s < SNAP_STAGE__COUNT; s++)
		printf(" %s %.1f", snap_stage_name(s), stage_ms[s]);
	printf("\n");
	snap_ctx_free(ctx);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
		if (system(cmd))
			fprintf(stderr, "snapdemo: could not remove %s\n", base);
	}
	return cold_answer == warm_answer ? 0 : 1;
}
