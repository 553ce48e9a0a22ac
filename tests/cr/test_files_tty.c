/*
 * --shell-job: a workload attached to a pseudo-terminal the test owns (its
 * master side), started by a stand-in shell that leads the terminal's
 * session, is dumped with --shell-job and restored by snapcr run from that
 * shell, on that terminal; it must write to it, read what the test types,
 * and be the terminal's foreground group again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/close_range.h>
#include <termios.h>
#include <unistd.h>

#include "crtest.h"

H_SUITE(files_tty);

struct shell {
	pid_t pid;  /* the stand-in shell: session leader, the terminal is its controlling one */
	pid_t job;  /* the workload it started */
	int master; /* our side of the terminal */
	int cmd;    /* to the shell: 'w' reap the job, 'r' run snapcr restore DIR */
	int res;    /* from the shell: the job's pid, then wait statuses */
	char ctldir[PATH_MAX], imgdir[PATH_MAX];
	char out[8192]; /* everything the terminal showed */
	size_t out_len;
};

/* Takes what the terminal shows, waiting up to @ms for some. */
static void pump(struct shell *sh, int ms)
{
	struct pollfd p = { .fd = sh->master, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return;
	n = read(sh->master, sh->out + sh->out_len, sizeof(sh->out) - 1 - sh->out_len);
	if (n > 0)
		sh->out_len += (size_t)n;
	sh->out[sh->out_len] = '\0';
}

/* Whether @want shows on the terminal within a bounded wait. */
static bool shows(struct shell *sh, const char *want)
{
	for (int i = 0; i < 300 && !strstr(sh->out, want); i++)
		pump(sh, 100);
	return strstr(sh->out, want) != NULL;
}

static int read_res(struct shell *sh, int *ret)
{
	struct pollfd p = { .fd = sh->res, .events = POLLIN };

	/* The terminal is read on the way: one nobody reads blocks its writers. */
	for (int i = 0; i < 600; i++) {
		if (poll(&p, 1, 100) == 1)
			return read(sh->res, ret, sizeof(*ret)) == sizeof(*ret) ? 0 : -EIO;
		pump(sh, 0);
	}
	return -ETIMEDOUT;
}

__attribute__((noreturn)) static void shell_main(struct shell *sh, const char *slave, int cmd, int res)
{
	char path[PATH_MAX + 32], c;
	int tty, st;
	pid_t job;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTTOU, SIG_IGN);
	/* A session leader opening a terminal makes it its controlling one. */
	if (setsid() < 0 || (tty = open(slave, O_RDWR)) < 0)
		_exit(100);
	job = fork();
	if (job == 0) {
		const char *wl;
		char wlpath[PATH_MAX];

		setpgid(0, 0);
		snprintf(path, sizeof(path), "%s/stderr", sh->ctldir);
		st = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (dup2(tty, 0) < 0 || dup2(tty, 1) < 0 || st < 0 || dup2(st, 2) < 0)
			_exit(101);
		close_range(3, ~0u, 0);
		signal(SIGTTOU, SIG_DFL);
		wl = h_workload_path("wl-files-tty", wlpath);
		execl(wl, wl, sh->ctldir, (char *)NULL);
		_exit(102);
	}
	/* Job control as a shell does it: the job's group, in the foreground. */
	setpgid(job, job);
	tcsetpgrp(tty, job);
	if (write(res, &job, sizeof(job)) != sizeof(job))
		_exit(103);
	while (read(cmd, &c, 1) == 1) {
		pid_t p = c == 'w' ? job : fork();

		if (p == 0) {
			/* snapcr on the terminal, as from the shell's prompt; its complaints to a file. */
			snprintf(path, sizeof(path), "%s/snapcr.err", sh->ctldir);
			st = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (dup2(tty, 0) < 0 || dup2(tty, 1) < 0 || st < 0 || dup2(st, 2) < 0)
				_exit(104);
			close_range(3, ~0u, 0);
			execl(h_snapcr_path(), h_snapcr_path(), "restore", "-D", sh->imgdir, "--shell-job",
			      (char *)NULL);
			_exit(105);
		}
		if (p < 0 || waitpid(p, &st, 0) != p)
			st = -1;
		if (write(res, &st, sizeof(st)) != sizeof(st))
			_exit(106);
	}
	_exit(0);
}

/* The terminal, the shell, and the job on it up to ready. */
static void start(struct shell *sh)
{
	int cmd[2], res[2], job;
	char ready[PATH_MAX + 16], err[PATH_MAX + 16], *slave;

	memset(sh, 0, sizeof(*sh));
	H_OK(h_tmpdir(sh->ctldir, "tty"));
	H_OK(h_tmpdir(sh->imgdir, "img"));
	sh->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert(sh->master >= 0 && !grantpt(sh->master) && !unlockpt(sh->master), "no pseudo-terminal: %m");
	slave = ptsname(sh->master);
	cr_assert(slave, "ptsname: %m");
	cr_assert(!pipe2(cmd, O_CLOEXEC) && !pipe2(res, O_CLOEXEC));
	sh->pid = fork();
	cr_assert(sh->pid >= 0);
	if (sh->pid == 0) {
		close(cmd[1]);
		close(res[0]);
		shell_main(sh, slave, cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	sh->cmd = cmd[1];
	sh->res = res[0];
	H_OK(read_res(sh, &job));
	sh->job = job;
	snprintf(ready, sizeof(ready), "%s/ready", sh->ctldir);
	for (int i = 0; i < 1000 && access(ready, F_OK); i++)
		pump(sh, 10);
	snprintf(err, sizeof(err), "%s/stderr", sh->ctldir);
	cr_assert(!access(ready, F_OK), "the job never became ready; stderr:\n%s", h_read_file(err, NULL) ?: "?");
	cr_assert(shows(sh, "before"), "the job's \"before\" never showed on the terminal: \"%s\"", sh->out);
}

/* Go, type ping, see the answer; *ret_status is what the shell saw of @c's process. */
static void go_and_talk(struct shell *sh, char c, int *ret_status)
{
	char path[PATH_MAX + 16], pong[32];
	int fd;

	snprintf(path, sizeof(path), "%s/go", sh->ctldir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_expect(shows(sh, "after-go"), "no \"after-go\" on the terminal: \"%s\"", sh->out);
	cr_assert(write(sh->master, "ping\n", 5) == 5);
	snprintf(pong, sizeof(pong), "pong %d", (int)sh->job);
	cr_expect(shows(sh, pong), "no \"%s\" on the terminal: \"%s\"", pong, sh->out);
	if (c == 'w')
		cr_assert(write(sh->cmd, &c, 1) == 1);
	H_OK(read_res(sh, ret_status));
}

static void stop(struct shell *sh)
{
	int st;

	close(sh->cmd);
	close(sh->res);
	kill(sh->job, SIGKILL);
	waitpid(sh->pid, &st, 0);
	close(sh->master);
}

static void expect_ok(struct shell *sh, int status, const char *who)
{
	char desc[64], path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", sh->ctldir, strcmp(who, "snapcr") ? "stderr" : "snapcr.err");
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %s; %s:\n%s\njob's stderr:\n%s", who,
		  h_describe_status(status, desc, sizeof(desc)), path, h_read_file(path, NULL) ?: "?",
		  h_read_file(strcat(strcpy(path, sh->ctldir), "/stderr"), NULL) ?: "?");
}

Test(files_tty, shell_job_nocr)
{
	struct shell sh;
	int st;

	start(&sh);
	go_and_talk(&sh, 'w', &st);
	expect_ok(&sh, st, "the job");
	stop(&sh);
}

Test(files_tty, shell_job_cr)
{
	struct snap_dump_opts d = { .size = sizeof(d) };
	struct snap_restore_opts r = { .size = sizeof(r) };
	struct shell sh;
	snap_ctx *ctx;
	pid_t pid;
	char c = 'w';
	int st;

	start(&sh);
	H_OK(h_ctx_new(&ctx));
	d.pid = sh.job;
	d.images_dir = sh.imgdir;
	/* Without --shell-job the terminal is refused, naming it; the job runs on. */
	cr_assert(snap_dump(ctx, &d) < 0, "a dump of a process on a terminal succeeded without --shell-job");
	cr_expect(strstr(snap_error(ctx), "terminal") && strstr(snap_error(ctx), "--shell-job"), "%s", snap_error(ctx));
	cr_assert(kill(sh.job, 0) == 0, "the job died of the refused dump");
	d.flags = SNAP_DUMP_SHELL_JOB;
	cr_assert(snap_dump(ctx, &d) == 0, "dump --shell-job: %s", snap_error(ctx));
	cr_assert(write(sh.cmd, &c, 1) == 1);
	H_OK(read_res(&sh, &st));
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the dumped job ended with %#x", st);

	/* Restores that must fail before creating anything: no --shell-job, or no terminal to give. */
	r.images_dir = sh.imgdir;
	cr_expect(snap_restore(ctx, &r, &pid) < 0, "a restore of a shell job without --shell-job succeeded");
	cr_expect(strstr(snap_error(ctx), "--shell-job"), "%s", snap_error(ctx));
	if (!isatty(0) && !isatty(1) && !isatty(2)) {
		r.flags = SNAP_RESTORE_SHELL_JOB;
		cr_expect(snap_restore(ctx, &r, &pid) == -ENOTTY, "a --shell-job restore without a terminal: %s",
			  snap_error(ctx));
		cr_log_info("refused as it should: %s", snap_error(ctx));
	}
	cr_expect(kill(sh.job, 0) < 0 && errno == ESRCH, "a failed restore left pid %d", (int)sh.job);
	snap_ctx_free(ctx);

	/* snapcr restore --shell-job from the shell, on the terminal: it stays the job's parent. */
	c = 'r';
	cr_assert(write(sh.cmd, &c, 1) == 1);
	go_and_talk(&sh, 'r', &st);
	expect_ok(&sh, st, "snapcr");
	stop(&sh);
}

/* A session leader on its terminal (a shell itself) is no shell job: refused even with --shell-job, left running. */
Test(files_tty, session_leader_refused)
{
	struct snap_dump_opts d = { .size = sizeof(d), .flags = SNAP_DUMP_SHELL_JOB };
	char imgdir[PATH_MAX], *slave;
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), sync[2];
	snap_ctx *ctx;
	pid_t leader;
	char c;

	cr_assert(master >= 0 && !grantpt(master) && !unlockpt(master) && (slave = ptsname(master)));
	cr_assert(!pipe2(sync, O_CLOEXEC));
	H_OK(h_tmpdir(imgdir, "img"));
	leader = fork();
	cr_assert(leader >= 0);
	if (leader == 0) {
		int tty;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (setsid() < 0 || (tty = open(slave, O_RDWR)) < 0 || dup2(tty, 0) < 0 || dup2(tty, 1) < 0 ||
		    dup2(tty, 2) < 0)
			_exit(100);
		/* Closed by the exec, which the test waits for. */
		close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
		/* A program of its own: the test's memory (Criterion's arena) is no part of it. */
		execl("/bin/sleep", "sleep", "600", (char *)NULL);
		_exit(102);
	}
	close(sync[1]);
	cr_assert(read(sync[0], &c, 1) == 0, "the session leader did not start");
	close(sync[0]);
	H_OK(h_ctx_new(&ctx));
	d.pid = leader;
	d.images_dir = imgdir;
	cr_assert(snap_dump(ctx, &d) < 0, "a session leader on its terminal was dumped as a shell job");
	cr_log_info("refused as it should: %s", snap_error(ctx));
	cr_expect(strstr(snap_error(ctx), "session leader"), "%s", snap_error(ctx));
	cr_expect(kill(leader, 0) == 0, "the refused dump did not leave it running");
	snap_ctx_free(ctx);
	kill(leader, SIGKILL);
	waitpid(leader, NULL, 0);
	close(master);
}
