/* The snapcr tool as a user runs it: dump and restore with --stats, restore in the foreground, show, check. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "crtest.h"
#include "crtest_http.h"
#include "crtest_util.h"

H_SUITE(cli);

#define CLI_TIMEOUT_MS (60 * 1000)

/* Runs snapcr with @args; its output goes to WORK/TAG.out and WORK/TAG.err. */
static int snapcr(const char *work, const char *tag, const char *const *args, char **ret_out, char **ret_err)
{
	const char *argv[32] = { h_snapcr_path() };
	char out[PATH_MAX + 64], err[PATH_MAX + 64], desc[128];
	int status = 0, n = 1;

	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/%s.out", work, tag);
	snprintf(err, sizeof(err), "%s/%s.err", work, tag);
	H_OK(h_run_cmd(argv, out, err, CLI_TIMEOUT_MS, &status));
	*ret_out = h_read_file(out, NULL);
	*ret_err = h_read_file(err, NULL);
	cr_assert(*ret_out && *ret_err, "cannot read the output of snapcr %s", args[0]);
	cr_log_info("snapcr %s: %s", args[0], h_describe_status(status, desc, sizeof(desc)));
	return status;
}

static void expect_exit0(int status, const char *what, const char *err)
{
	char desc[128];

	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapcr %s %s; stderr:\n%s", what,
		  h_describe_status(status, desc, sizeof(desc)), err);
}

static void expect_stages(const char *path, const char *const *stages)
{
	char key[64], *json = h_read_file(path, NULL);

	cr_assert(json, "no stats file %s: %m", path);
	cr_expect(json[0] == '{', "%s is not a JSON object:\n%s", path, json);
	for (int i = 0; stages[i]; i++) {
		snprintf(key, sizeof(key), "\"%s\"", stages[i]);
		cr_expect(strstr(json, key), "%s lacks stage %s:\n%s", path, key, json);
	}
	free(json);
}

static void cli_dump(struct h_wl *w, const char *work, const char *imgdir)
{
	static const char *const dump_stages[] = { "freeze", "collect", "infect", "drain", "write", "cure", NULL };
	char pid[16], stats[PATH_MAX + 32], *out, *err;
	const char *args[] = { "dump", "-t", pid, "-D", imgdir, "--stats", stats, NULL };
	int status;

	snprintf(pid, sizeof(pid), "%d", (int)w->pid);
	snprintf(stats, sizeof(stats), "%s/dump.json", work);
	status = snapcr(work, "dump", args, &out, &err);
	expect_exit0(status, "dump", err);
	free(out);
	free(err);
	/* The default dump kills the original; its pid must be free for the restore. */
	cr_assert(h_wait_pid(w->pid, 10 * 1000, NULL) == 0, "pid %d still alive after snapcr dump", (int)w->pid);
	w->pid = 0;
	expect_stages(stats, dump_stages);
}

Test(cli, dump_restore_detached_stats_show)
{
	static const char *const restore_stages[] = { "read", "fork", "premap", "fill", "restorer", NULL };
	char work[PATH_MAX], imgdir[PATH_MAX], pidfile[PATH_MAX + 16], stats[PATH_MAX + 32], *out, *err, *pidtxt;
	const char *restore[] = { "restore", "-D", imgdir, "-d", "--pidfile", pidfile, "--stats", stats, NULL };
	const char *show[] = { "show", imgdir, NULL };
	struct h_wl w = { 0 };
	int status;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(work, "cli"));
	H_OK(h_tmpdir(imgdir, "img"));
	cli_dump(&w, work, imgdir);

	snprintf(pidfile, sizeof(pidfile), "%s/pidfile", work);
	snprintf(stats, sizeof(stats), "%s/restore.json", work);
	status = snapcr(work, "restore", restore, &out, &err);
	expect_exit0(status, "restore -d", err);
	free(out);
	free(err);
	/* snapcr has exited, so the restored process is ours now: we are its subreaper. */
	pidtxt = h_read_file(pidfile, NULL);
	cr_assert(pidtxt, "no pidfile %s: %m", pidfile);
	cr_assert(atoi(pidtxt) == w.orig_pid, "pidfile says %s, expected %d", pidtxt, (int)w.orig_pid);
	free(pidtxt);
	w.pid = w.orig_pid;
	expect_stages(stats, restore_stages);
	H_OK(h_finish(&w));

	status = snapcr(work, "show", show, &out, &err);
	expect_exit0(status, "show", err);
	cr_expect(strstr(out, "inventory.img"), "snapcr show does not mention inventory.img:\n%s", out);
	cr_expect(out[strspn(out, " \n\t")] == '{' || out[strspn(out, " \n\t")] == '[',
		  "snapcr show does not print JSON:\n%s", out);
	free(out);
	free(err);
}

Test(cli, restore_foreground_exit_status)
{
	char work[PATH_MAX], imgdir[PATH_MAX], *out, *err;
	const char *restore[] = { "restore", "-D", imgdir, NULL };
	struct h_wl w = { 0 };
	int status;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(work, "cli"));
	H_OK(h_tmpdir(imgdir, "img"));
	cli_dump(&w, work, imgdir);
	/* go before the restore: the restored workload checks at once and snapcr passes on its status. */
	H_OK(h_go(&w));
	status = snapcr(work, "restore", restore, &out, &err);
	expect_exit0(status, "restore (foreground)", err);
	free(out);
	free(err);
}

Test(cli, dump_missing_pid_fails)
{
	char work[PATH_MAX], imgdir[PATH_MAX], pid[16], *out, *err;
	const char *args[] = { "dump", "-t", pid, "-D", imgdir, NULL };
	pid_t missing = h_unused_pid();
	int status;

	cr_assert(missing > 0, "no free pid found");
	snprintf(pid, sizeof(pid), "%d", (int)missing);
	H_OK(h_tmpdir(work, "cli"));
	H_OK(h_tmpdir(imgdir, "img"));
	status = snapcr(work, "dump", args, &out, &err);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "snapcr dump of missing pid %d exited 0",
		  (int)missing);
	cr_expect(contains_number(err, missing), "snapcr's error does not name pid %d:\n%s", (int)missing, err);
	free(out);
	free(err);
}

Test(cli, check)
{
	char work[PATH_MAX], *out, *err;
	const char *args[] = { "check", NULL };
	int status;

	H_OK(h_tmpdir(work, "cli"));
	status = snapcr(work, "check", args, &out, &err);
	expect_exit0(status, "check", err);
	free(out);
	free(err);
}

/* snapcr prepare of wl-http with warm-up and hooks, then snapcr restore -d with a hook: the snapshot answers. */
Test(cli, prepare_warmup_hooks_restore)
{
	char work[PATH_MAX], imgdir[PATH_MAX], wl[PATH_MAX], port[16], url[64], log[PATH_MAX + 8];
	char pre[PATH_MAX + 64], post[PATH_MAX + 64], pidfile[PATH_MAX + 16], stats[PATH_MAX + 16], want[64], body[512];
	char *out, *err, *txt;
	const char *prepare[] = { "prepare", "-D",    imgdir, "--ready", url,	"--warmup", url, "--warmup-count",
				  "2",	     "--log", log,    "--stats", stats, "--hook",   pre, "--",
				  wl,	     port,    "150",  NULL };
	const char *restore[] = { "restore", "-D", imgdir, "-d", "--pidfile", pidfile, "--hook", post, NULL };
	int status, p = 10000 + (int)(getpid() % 1000) * 20 + 19;
	pid_t pid;

	H_OK(h_tmpdir(work, "cli"));
	H_OK(h_tmpdir(imgdir, "img"));
	h_workload_path("wl-http", wl);
	snprintf(port, sizeof(port), "%d", p);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", p);
	snprintf(log, sizeof(log), "%s/log", work);
	snprintf(stats, sizeof(stats), "%s/dump.json", work);
	snprintf(pidfile, sizeof(pidfile), "%s/pid", work);
	snprintf(pre, sizeof(pre), "pre-dump=echo $SNAP_STAGE $SNAP_PID > %s/pre", work);
	snprintf(post, sizeof(post), "post-restore=echo $SNAP_STAGE $SNAP_PID > %s/post", work);

	status = snapcr(work, "prepare", prepare, &out, &err);
	expect_exit0(status, "prepare", err);
	pid = (pid_t)atoi(out);
	cr_assert(pid > 0, "snapcr prepare printed no pid:\n%s", out);
	free(out);
	free(err);
	cr_expect(kill(pid, 0) && errno == ESRCH, "pid %d still runs after snapcr prepare", (int)pid);
	snprintf(want, sizeof(want), "pre-dump %d\n", (int)pid);
	snprintf(pre, sizeof(pre), "%s/pre", work);
	txt = h_read_file(pre, NULL);
	cr_expect(txt && !strcmp(txt, want), "the pre-dump hook wrote '%s', expected '%s'", txt ? txt : "(nothing)",
		  want);
	free(txt);
	expect_stages(stats, (const char *const[]){ "freeze", "drain", "write", NULL });

	status = snapcr(work, "restore", restore, &out, &err);
	expect_exit0(status, "restore -d", err);
	free(out);
	free(err);
	snprintf(want, sizeof(want), "post-restore %d\n", (int)pid);
	snprintf(post, sizeof(post), "%s/post", work);
	txt = h_read_file(post, NULL);
	cr_expect(txt && !strcmp(txt, want), "the post-restore hook wrote '%s', expected '%s'", txt ? txt : "(nothing)",
		  want);
	free(txt);
	/* The probe's request and two warm-ups were answered before the dump; this is the fourth. */
	status = http_get(p, "/exit", body, sizeof(body));
	cr_assert(status == 200, "the restored wl-http did not answer: %d", status);
	cr_expect(strstr(body, "state=ok count=4\n"), "the restored wl-http answered: %s", body);
	H_OK(h_wait_pid(pid, 10 * 1000, &status));
}

Test(cli, prepare_command_exits)
{
	char work[PATH_MAX], imgdir[PATH_MAX], *out, *err;
	const char *args[] = { "prepare", "-D",	     imgdir, "--ready", "tcp:127.0.0.1:1",
			       "--",	  "/bin/sh", "-c",   "exit 3",	NULL };
	int status;

	H_OK(h_tmpdir(work, "cli"));
	H_OK(h_tmpdir(imgdir, "img"));
	status = snapcr(work, "prepare", args, &out, &err);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "snapcr prepare of a failing command: status %d",
		  status);
	cr_expect(strstr(err, "exited with status 3 before it was ready"), "stderr:\n%s", err);
	free(out);
	free(err);
}

Test(cli, hook_usage_errors)
{
	char work[PATH_MAX], *out, *err;
	const char *wrong_stage[] = { "dump", "-t", "1", "-D", "/nonexistent", "--hook", "pre-restore=true", NULL };
	const char *no_command[] = { "restore", "-D", "/nonexistent", "--hook", "post-restore", NULL };
	int status;

	H_OK(h_tmpdir(work, "cli"));
	status = snapcr(work, "dump", wrong_stage, &out, &err);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "a pre-restore hook on dump: status %d", status);
	cr_expect(strstr(err, "pre-restore"), "stderr:\n%s", err);
	free(out);
	free(err);
	status = snapcr(work, "restore", no_command, &out, &err);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "--hook without a command: status %d", status);
	free(out);
	free(err);
}
