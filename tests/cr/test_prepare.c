/* snap_prepare of the wl-http server with each probe kind and warm-up, its failures, hooks and progress reports. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crtest.h"
#include "crtest_http.h"
#include "crtest_util.h"

H_SUITE(prepare);

#define PREPARE_TIMEOUT	 (60 * 1000)
#define REAP_TIMEOUT_MS	 (10 * 1000)
#define WL_HTTP_INIT_MS	 "150"
#define NEVER_READY_MS	 "600000"
#define SHORT_TIMEOUT_MS 500

/*
 * A port of its own for each server of this run, below the usual
 * ephemeral range (32768-60999) so no client connection holds it.
 */
static int next_port(void)
{
	static int k;

	return 10000 + (int)(getpid() % 1000) * 20 + (k++ % 20);
}

/* The token wl-http printed at start-up (in the log), so a restored answer can be told from a fresh start. */
static void log_token(const char *log, char *token, size_t len)
{
	char *text = h_read_file(log, NULL), *p;

	cr_assert(text, "no log %s: %m", log);
	p = strstr(text, "token=");
	cr_assert(p, "no token in the log of wl-http:\n%s", text);
	p += 6;
	snprintf(token, len, "%.*s", (int)strcspn(p, " \n"), p);
	free(text);
}

/* The body wl-http must answer: that instance's state intact, @count requests answered. */
static void expect_body(const char *body, pid_t pid, const char *token, unsigned count)
{
	char want[256];

	snprintf(want, sizeof(want), "wl-http pid=%d token=%s state=ok count=%u\n", (int)pid, token, count);
	cr_expect(strcmp(body, want) == 0, "wl-http answered\n  %s instead of\n  %s", body, want);
}

static void expect_gone(pid_t pid, const char *what)
{
	cr_expect(kill(pid, 0) && errno == ESRCH, "pid %d is still there %s", (int)pid, what);
}

static void expect_no_children(const char *what)
{
	pid_t kids[16];
	int n = h_children(kids, 16);

	cr_expect(n == 0, "%d processes are left %s (first: pid %d)", n, what, n > 0 ? (int)kids[0] : 0);
}

struct prep {
	char work[PATH_MAX], imgdir[PATH_MAX], log[PATH_MAX + 16], wl[PATH_MAX];
	char portstr[16];
	int port;
	snap_ctx *ctx;
};

static void prep_init(struct prep *p)
{
	memset(p, 0, sizeof(*p));
	H_OK(h_tmpdir(p->work, "prep"));
	H_OK(h_tmpdir(p->imgdir, "img"));
	snprintf(p->log, sizeof(p->log), "%s/log", p->work);
	h_workload_path("wl-http", p->wl);
	p->port = next_port();
	snprintf(p->portstr, sizeof(p->portstr), "%d", p->port);
	cr_assert(h_ctx_new(&p->ctx) == 0, "no context");
}

/* snap_prepare of wl-http with @ready, and @warmups GETs of / when non-zero. */
static int prepare_http(struct prep *p, const char *ready, unsigned warmups, unsigned flags,
			const struct snap_hook *hooks, size_t nr_hooks, const char *ready_file, pid_t *ret_pid)
{
	const char *argv[] = { p->wl, p->portstr, WL_HTTP_INIT_MS, ready_file, NULL };
	char url[64];
	struct snap_dump_opts d = {
		.size = sizeof(d), .images_dir = p->imgdir, .flags = flags, .hooks = hooks, .nr_hooks = nr_hooks
	};
	struct snap_prepare_opts o = { .size = sizeof(o),
				       .argv = argv,
				       .ready = ready,
				       .timeout_ms = PREPARE_TIMEOUT,
				       .log_file = p->log,
				       .dump = &d };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", p->port);
	if (warmups) {
		o.warmup_url = url;
		o.warmup_count = warmups;
	}
	return snap_prepare(p->ctx, &o, ret_pid);
}

static pid_t restore_http(struct prep *p, const struct snap_hook *hooks, size_t nr_hooks)
{
	struct snap_restore_opts o = {
		.size = sizeof(o), .images_dir = p->imgdir, .hooks = hooks, .nr_hooks = nr_hooks
	};
	pid_t pid = 0;
	int r = snap_restore(p->ctx, &o, &pid);

	cr_assert(r == 0, "restore of the prepared wl-http failed: %s", snap_error(p->ctx));
	return pid;
}

/* GET / must show @count requests, GET /exit the next one, then the server ends with status 0. */
static void finish_http(struct prep *p, pid_t pid, const char *token, unsigned count)
{
	char body[512], desc[128];
	int status;

	status = http_get(p->port, "/", body, sizeof(body));
	cr_assert(status == 200, "GET / of wl-http pid %d: %d (%s)", (int)pid, status,
		  status < 0 ? strerror(-status) : "");
	expect_body(body, pid, token, count);
	status = http_get(p->port, "/exit", body, sizeof(body));
	cr_expect(status == 200, "GET /exit of wl-http pid %d: %d", (int)pid, status);
	H_OK(h_wait_pid(pid, REAP_TIMEOUT_MS, &status));
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wl-http %s",
		  h_describe_status(status, desc, sizeof(desc)));
}

/* Prepare with @ready (and warm-ups), restore, and check that the restored server is the prepared one. */
static void prepare_restore(const char *kind, unsigned warmups, unsigned counted_probes)
{
	char ready[PATH_MAX + 32], ready_file[PATH_MAX + 16], token[64];
	struct prep p;
	pid_t pid = 0, restored;
	int r;

	prep_init(&p);
	snprintf(ready_file, sizeof(ready_file), "%s/ready", p.work);
	if (!strcmp(kind, "tcp"))
		snprintf(ready, sizeof(ready), "tcp:127.0.0.1:%d", p.port);
	else if (!strcmp(kind, "http"))
		snprintf(ready, sizeof(ready), "http://localhost:%d/", p.port);
	else
		snprintf(ready, sizeof(ready), "file:%s", ready_file);
	r = prepare_http(&p, ready, warmups, 0, NULL, 0, !strcmp(kind, "file") ? ready_file : NULL, &pid);
	cr_assert(r == 0, "prepare (%s) failed: %s", ready, snap_error(p.ctx));
	cr_assert(pid > 0, "prepare gave no pid");
	expect_gone(pid, "after prepare without leave-running");
	expect_no_children("after prepare");
	log_token(p.log, token, sizeof(token));

	restored = restore_http(&p, NULL, 0);
	cr_assert(restored == pid, "restored as pid %d, prepared as %d", (int)restored, (int)pid);
	finish_http(&p, pid, token, counted_probes + warmups + 1);
	snap_ctx_free(p.ctx);
}

Test(prepare, wl_http_nocr)
{
	struct prep p;
	char body[512], token[64];
	const char *argv[] = { p.wl, p.portstr, WL_HTTP_INIT_MS, NULL };
	int status = -1;
	pid_t pid;

	prep_init(&p);
	pid = fork();
	if (pid == 0) {
		int fd = open(p.log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 1);
		close_range(3, ~0u, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	cr_assert(pid > 0, "fork: %m");
	for (int i = 0; i < 1000 && (status = http_get(p.port, "/", body, sizeof(body))) < 0; i++)
		usleep(10000);
	cr_assert(status == 200, "wl-http never answered: %d", status);
	log_token(p.log, token, sizeof(token));
	expect_body(body, pid, token, 1);
	finish_http(&p, pid, token, 2);
	snap_ctx_free(p.ctx);
}

Test(prepare, tcp_probe_cr)
{
	/* A tcp: probe sends no request: the restored server has answered none. */
	prepare_restore("tcp", 0, 0);
}

Test(prepare, http_probe_warmup_cr)
{
	/* The probe's one 2xx and the three warm-ups were answered before the dump. */
	prepare_restore("http", 3, 1);
}

Test(prepare, file_probe_warmup_cr)
{
	prepare_restore("file", 2, 0);
}

Test(prepare, leave_running_then_restore)
{
	char ready[64], token[64], body[512];
	struct prep p;
	pid_t pid = 0, restored;
	int r, status;

	prep_init(&p);
	snprintf(ready, sizeof(ready), "tcp:127.0.0.1:%d", p.port);
	r = prepare_http(&p, ready, 2, SNAP_DUMP_LEAVE_RUNNING, NULL, 0, NULL, &pid);
	cr_assert(r == 0, "prepare --leave-running failed: %s", snap_error(p.ctx));
	log_token(p.log, token, sizeof(token));
	/* The original runs on and has answered the two warm-ups: it goes on counting. */
	status = http_get(p.port, "/", body, sizeof(body));
	cr_assert(status == 200, "the original did not answer: %d", status);
	expect_body(body, pid, token, 3);
	kill(pid, SIGKILL);
	H_OK(h_wait_pid(pid, REAP_TIMEOUT_MS, NULL));
	/* The restored one is the dumped state: it never saw the request above. */
	restored = restore_http(&p, NULL, 0);
	cr_assert(restored == pid);
	finish_http(&p, pid, token, 3);
	snap_ctx_free(p.ctx);
}

static void expect_prepare_fails(const char *const *argv, const char *ready, unsigned timeout_ms, const char *words)
{
	char imgdir[PATH_MAX];
	snap_ctx *ctx;
	struct snap_dump_opts d = { .size = sizeof(d), .images_dir = imgdir };
	struct snap_prepare_opts o = {
		.size = sizeof(o), .argv = argv, .ready = ready, .timeout_ms = timeout_ms, .dump = &d
	};
	pid_t pid = 0;
	int r;

	H_OK(h_tmpdir(imgdir, "img"));
	cr_assert(h_ctx_new(&ctx) == 0);
	r = snap_prepare(ctx, &o, &pid);
	cr_expect(r < 0, "prepare of %s succeeded", argv[0]);
	cr_expect(contains_word(snap_error(ctx), words), "the error does not say '%s':\n%s", words, snap_error(ctx));
	cr_log_info("prepare failed as expected: %s", snap_error(ctx));
	/* Everything it started was killed and reaped: it would be our child, we are a subreaper. */
	expect_no_children("after a failed prepare");
	snap_ctx_free(ctx);
}

Test(prepare, command_exits_early)
{
	/* The background sleep is in its session, orphaned when sh exits: it must be killed too. */
	const char *argv[] = { "/bin/sh", "-c", "sleep 1000 & exit 3", NULL };

	expect_prepare_fails(argv, "tcp:127.0.0.1:1", PREPARE_TIMEOUT, "exited with status 3 before it was ready");
}

Test(prepare, command_killed_by_signal)
{
	const char *argv[] = { "/bin/sh", "-c", "kill -SEGV $$", NULL };

	expect_prepare_fails(argv, "file:/nonexistent/never", PREPARE_TIMEOUT, "killed by signal 11");
}

Test(prepare, command_not_found)
{
	const char *argv[] = { "/nonexistent/command", NULL };

	expect_prepare_fails(argv, "file:/nonexistent/never", PREPARE_TIMEOUT, "cannot run /nonexistent/command");
}

Test(prepare, timeout_kills_tree_and_session)
{
	char wl[PATH_MAX], port[16], script[PATH_MAX + 128], ready[64];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };

	h_workload_path("wl-http", wl);
	snprintf(port, sizeof(port), "%d", next_port());
	snprintf(ready, sizeof(ready), "http://127.0.0.1:%s/", port);
	/* A child, a process in a session of its own (not in the command's), and the server that never gets ready. */
	snprintf(script, sizeof(script), "sleep 1000 & setsid sleep 1001 & exec %s %s %s", wl, port, NEVER_READY_MS);
	expect_prepare_fails(argv, ready, SHORT_TIMEOUT_MS, "was not ready");
}

Test(prepare, bad_probe_starts_nothing)
{
	const char *argv[] = { "/bin/sleep", "1000", NULL };

	expect_prepare_fails(argv, "udp:127.0.0.1:80", PREPARE_TIMEOUT, "a probe is");
	expect_prepare_fails(argv, "tcp:127.0.0.1", PREPARE_TIMEOUT, "no port");
}

/* ---- hooks ---- */

static char *hook_cmd(const char *work, const char *name)
{
	char *cmd;

	cr_assert(asprintf(&cmd, "echo \"$SNAP_STAGE $SNAP_PID $SNAP_IMAGES_DIR\" > %s/%s", work, name) > 0);
	return cmd;
}

static void expect_hook_saw(const char *work, const char *name, const char *stage, pid_t pid, const char *imgdir)
{
	char path[PATH_MAX + 32], want[PATH_MAX + 64], *got;

	snprintf(path, sizeof(path), "%s/%s", work, name);
	got = h_read_file(path, NULL);
	cr_assert(got, "the %s hook did not run (no %s)", stage, path);
	snprintf(want, sizeof(want), "%s %d %s\n", stage, (int)pid, imgdir);
	cr_expect(strcmp(got, want) == 0, "the %s hook saw '%s', expected '%s'", stage, got, want);
	free(got);
}

Test(prepare, hooks_see_stage_pid_and_images_dir)
{
	char ready[64], token[64];
	struct prep p;
	pid_t pid = 0, restored;
	char *pre_d, *post_d, *pre_r, *post_r;
	int r;

	prep_init(&p);
	pre_d = hook_cmd(p.work, "pre-dump");
	post_d = hook_cmd(p.work, "post-dump");
	pre_r = hook_cmd(p.work, "pre-restore");
	post_r = hook_cmd(p.work, "post-restore");
	struct snap_hook dump_hooks[] = { { SNAP_HOOK_PRE_DUMP, pre_d },
					  { SNAP_HOOK_POST_DUMP, post_d },
					  /* ignored by a dump */
					  { SNAP_HOOK_PRE_RESTORE, "exit 1" } };
	struct snap_hook restore_hooks[] = { { SNAP_HOOK_PRE_RESTORE, pre_r }, { SNAP_HOOK_POST_RESTORE, post_r } };

	snprintf(ready, sizeof(ready), "tcp:127.0.0.1:%d", p.port);
	r = prepare_http(&p, ready, 0, 0, dump_hooks, 3, NULL, &pid);
	cr_assert(r == 0, "prepare with hooks failed: %s", snap_error(p.ctx));
	expect_hook_saw(p.work, "pre-dump", "pre-dump", pid, p.imgdir);
	expect_hook_saw(p.work, "post-dump", "post-dump", pid, p.imgdir);
	log_token(p.log, token, sizeof(token));

	restored = restore_http(&p, restore_hooks, 2);
	expect_hook_saw(p.work, "pre-restore", "pre-restore", pid, p.imgdir);
	expect_hook_saw(p.work, "post-restore", "post-restore", pid, p.imgdir);
	finish_http(&p, restored, token, 1);
	free(pre_d);
	free(post_d);
	free(pre_r);
	free(post_r);
	snap_ctx_free(p.ctx);
}

/* The dump hook's view: it runs before the tree is seized, so the process is not traced by us. */
Test(prepare, failing_pre_dump_hook_leaves_process_untouched)
{
	static const struct snap_hook hooks[] = {
		{ SNAP_HOOK_PRE_DUMP, "grep -q '^TracerPid:[[:space:]]*0$' /proc/$SNAP_PID/status && exit 7" },
	};
	char imgdir[PATH_MAX];
	struct snap_dump_opts o = { .size = sizeof(o), .images_dir = imgdir, .hooks = hooks, .nr_hooks = 1 };
	struct h_wl w = { 0 };
	snap_ctx *ctx;
	int r;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	cr_assert(h_ctx_new(&ctx) == 0);
	o.pid = w.pid;
	r = snap_dump(ctx, &o);
	cr_expect(r < 0, "the dump went on after its pre-dump hook failed");
	cr_expect(strstr(snap_error(ctx), "exited with status 7"), "the error does not name the hook's status:\n%s",
		  snap_error(ctx));
	cr_expect(strstr(snap_error(ctx), "runs on"), "the error does not say what became of the process:\n%s",
		  snap_error(ctx));
	{
		char inv[PATH_MAX + 32];

		snprintf(inv, sizeof(inv), "%s/inventory.img", imgdir);
		cr_expect(access(inv, F_OK) != 0, "an inventory was written despite the failed pre-dump hook");
	}
	/* It runs on, and checks that its state is intact. */
	H_OK(h_finish(&w));
	snap_ctx_free(ctx);
}

Test(prepare, failing_post_dump_hook_keeps_complete_images)
{
	static const struct snap_hook hooks[] = { { SNAP_HOOK_POST_DUMP, "exit 9" } };
	char imgdir[PATH_MAX];
	struct snap_dump_opts o = { .size = sizeof(o), .images_dir = imgdir, .hooks = hooks, .nr_hooks = 1 };
	struct h_wl w = { 0 };
	snap_ctx *ctx;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	cr_assert(h_ctx_new(&ctx) == 0);
	o.pid = w.pid;
	cr_expect(snap_dump(ctx, &o) < 0, "the dump succeeded although its post-dump hook failed");
	cr_expect(strstr(snap_error(ctx), "post-dump hook 'exit 9' exited with status 9"), "error:\n%s",
		  snap_error(ctx));
	cr_expect(strstr(snap_error(ctx), "was killed"), "the error does not say the process was killed:\n%s",
		  snap_error(ctx));
	H_OK(h_wait_pid(w.pid, REAP_TIMEOUT_MS, NULL));
	w.pid = 0;
	/* As it says, the images are complete. */
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
	snap_ctx_free(ctx);
}

Test(prepare, failing_pre_restore_hook_creates_nothing)
{
	static const struct snap_hook hooks[] = { { SNAP_HOOK_PRE_RESTORE, "exit 5" } };
	char imgdir[PATH_MAX];
	struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir, .hooks = hooks, .nr_hooks = 1 };
	struct h_wl w = { 0 };
	snap_ctx *ctx;
	pid_t pid = 0;

	H_OK(h_start(&w, "wl-heap", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	cr_assert(h_ctx_new(&ctx) == 0);
	cr_expect(snap_restore(ctx, &o, &pid) < 0, "the restore went on after its pre-restore hook failed");
	cr_expect(strstr(snap_error(ctx), "pre-restore hook 'exit 5' exited with status 5"), "error:\n%s",
		  snap_error(ctx));
	expect_gone(w.orig_pid, "after a failed pre-restore hook");
	expect_no_children("after a failed pre-restore hook");
	/* Without the hook the same images restore. */
	H_OK(h_restore(&w, imgdir, NULL));
	H_OK(h_finish(&w));
	snap_ctx_free(ctx);
}

Test(prepare, failing_post_restore_hook_kills_the_tree)
{
	static const struct snap_hook hooks[] = { { SNAP_HOOK_POST_RESTORE, "kill -0 $SNAP_PID && exit 6" } };
	char imgdir[PATH_MAX];
	struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir, .hooks = hooks, .nr_hooks = 1 };
	struct h_wl w = { 0 };
	snap_ctx *ctx;
	pid_t pid = 0;

	H_OK(h_start(&w, "wl-tree", NULL));
	H_OK(h_tmpdir(imgdir, "img"));
	H_OK(h_dump(&w, imgdir, 0, NULL));
	cr_assert(h_ctx_new(&ctx) == 0);
	cr_expect(snap_restore(ctx, &o, &pid) < 0, "the restore succeeded although its post-restore hook failed");
	cr_expect(strstr(snap_error(ctx), "exited with status 6"), "error:\n%s", snap_error(ctx));
	cr_expect(strstr(snap_error(ctx), "killed"), "the error does not say what became of the process:\n%s",
		  snap_error(ctx));
	expect_gone(w.orig_pid, "after a failed post-restore hook");
	expect_no_children("after a failed post-restore hook");
	snap_ctx_free(ctx);
}

/* ---- progress ---- */

struct progress_log {
	unsigned calls, wrong_stage, backwards;
	uint64_t last_done, last_total, first_total;
	enum snap_stage stage;
};

static void on_progress(void *opaque, enum snap_stage stage, uint64_t done, uint64_t total)
{
	struct progress_log *l = opaque;

	if (!l->calls)
		l->first_total = total;
	l->calls++;
	l->wrong_stage += stage != l->stage;
	l->backwards += done < l->last_done || done > total;
	l->last_done = done;
	l->last_total = total;
}

static void expect_progress(const struct progress_log *l, const char *what, uint64_t bytes)
{
	cr_expect(l->calls >= 2, "%s: %u progress reports, expected a first and a last", what, l->calls);
	cr_expect(!l->wrong_stage, "%s: %u reports of another stage", what, l->wrong_stage);
	cr_expect(!l->backwards, "%s: done went backwards or past total %u times", what, l->backwards);
	cr_expect(l->last_done == l->last_total, "%s: last report %llu of %llu", what, (unsigned long long)l->last_done,
		  (unsigned long long)l->last_total);
	cr_expect(l->last_done == bytes, "%s: last report %llu bytes, the stats say %llu", what,
		  (unsigned long long)l->last_done, (unsigned long long)bytes);
	cr_expect(l->first_total > 0, "%s: the first report has no total", what);
}

Test(prepare, progress_of_dump_and_restore)
{
	static const char *const mib[] = { "64", NULL };
	struct progress_log dl = { .stage = SNAP_STAGE_DRAIN }, rl = { .stage = SNAP_STAGE_FILL };
	struct snap_dump_opts d = { .size = sizeof(d), .progress = on_progress, .progress_opaque = &dl };
	struct snap_restore_opts o = { .size = sizeof(o), .progress = on_progress, .progress_opaque = &rl };
	struct snap_stats st = { .size = sizeof(st) };
	char imgdir[PATH_MAX];
	struct h_wl w = { 0 };
	snap_ctx *ctx;
	pid_t pid = 0;
	int r;

	H_OK(h_start(&w, "wl-bench-mem", mib));
	H_OK(h_tmpdir(imgdir, "img"));
	cr_assert(h_ctx_new(&ctx) == 0);
	d.pid = w.pid;
	d.images_dir = imgdir;
	r = snap_dump(ctx, &d);
	cr_assert(r == 0, "dump: %s", snap_error(ctx));
	H_OK(h_wait_pid(w.pid, REAP_TIMEOUT_MS, NULL));
	w.pid = 0;
	snap_get_stats(ctx, &st);
	expect_progress(&dl, "dump", st.pages_bytes);
	cr_expect(dl.last_done >= (64ull << 20), "dump: %llu bytes reported for 64 MiB",
		  (unsigned long long)dl.last_done);

	o.images_dir = imgdir;
	r = snap_restore(ctx, &o, &pid);
	cr_assert(r == 0, "restore: %s", snap_error(ctx));
	w.pid = pid;
	snap_get_stats(ctx, &st);
	expect_progress(&rl, "restore", st.pages_bytes);
	/* The restore knows its total from the start. */
	cr_expect(rl.first_total == rl.last_total, "restore: total %llu at first, %llu at last",
		  (unsigned long long)rl.first_total, (unsigned long long)rl.last_total);
	H_OK(h_finish(&w));
	snap_ctx_free(ctx);
}
