/* snapcr: the command-line tool; it only parses arguments and calls the public API. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap/snap.h"

static void usage(FILE *f)
{
	fprintf(f, "usage:\n"
		   "  snapcr dump -t PID -D DIR [--leave-running] [--tcp-established | --tcp-close] [--shell-job]\n"
		   "              [--stats FILE] [--hook STAGE=COMMAND]... [-v]\n"
		   "  snapcr restore -D DIR [-d] [--shell-job] [--pidfile FILE] [--stats FILE] [--pidns]\n"
		   "              [--netns | --netns-path PATH] [--map-pages] [--hook STAGE=COMMAND]... [-v]\n"
		   "  snapcr prepare -D DIR --ready PROBE [--warmup URL [--warmup-count N]] [--timeout SECONDS]\n"
		   "              [--log FILE] [dump options] -- CMD [ARGS...]\n"
		   "      PROBE: tcp:HOST:PORT | http://HOST[:PORT][/PATH] | file:PATH\n"
		   "      STAGE: pre-dump | post-dump | pre-restore | post-restore\n"
		   "  snapcr check\n"
		   "  snapcr show DIR|FILE\n");
}

static void log_stderr(void *opaque, enum snap_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	(void)opaque;
	fprintf(stderr, "snapcr: %s: %s\n", names[level], msg);
}

static int fail(snap_ctx *ctx, const char *what)
{
	fprintf(stderr, "snapcr: %s failed: %s\n", what, snap_error(ctx));
	return 1;
}

enum {
	OPT_LEAVE_RUNNING = 256,
	OPT_STATS,
	OPT_PIDFILE,
	OPT_TCP_ESTABLISHED,
	OPT_TCP_CLOSE,
	OPT_PIDNS,
	OPT_NETNS,
	OPT_NETNS_PATH,
	OPT_HOOK,
	OPT_READY,
	OPT_WARMUP,
	OPT_WARMUP_COUNT,
	OPT_TIMEOUT,
	OPT_LOG,
	OPT_SHELL_JOB,
	OPT_MAP_PAGES,
};

#define MAX_HOOKS 64

static struct snap_hook hooks[MAX_HOOKS];
static size_t nr_hooks;

/* --hook STAGE=COMMAND, for a command that runs the stages in @allowed (bit per stage). */
static int add_hook(const char *arg, unsigned allowed)
{
	const char *eq = strchr(arg, '=');
	enum snap_hook_stage stage;
	char name[32];

	if (!eq || (size_t)(eq - arg) >= sizeof(name) || !eq[1]) {
		fprintf(stderr, "snapcr: --hook wants STAGE=COMMAND, not '%s'\n", arg);
		return -1;
	}
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	if (snap_hook_stage_parse(name, &stage) || !(allowed & (1u << stage))) {
		fprintf(stderr, "snapcr: --hook: no stage '%s' in this command\n", name);
		return -1;
	}
	if (nr_hooks == MAX_HOOKS) {
		fprintf(stderr, "snapcr: more than %d hooks\n", MAX_HOOKS);
		return -1;
	}
	hooks[nr_hooks++] = (struct snap_hook){ stage, eq + 1 };
	return 0;
}

#define DUMP_HOOKS    ((1u << SNAP_HOOK_PRE_DUMP) | (1u << SNAP_HOOK_POST_DUMP))
#define RESTORE_HOOKS ((1u << SNAP_HOOK_PRE_RESTORE) | (1u << SNAP_HOOK_POST_RESTORE))

/* Whether a progress line is on the terminal, to be cleared. */
static int progress_shown;

/* One updating line on stderr; set only when stderr is a terminal. */
static void show_progress(void *opaque, enum snap_stage stage, uint64_t done, uint64_t total)
{
	(void)opaque;
	fprintf(stderr, "\rsnapcr: %s %.1f / %.1f MiB (%d%%)\033[K", snap_stage_name(stage), done / 1048576.0,
		total / 1048576.0, total ? (int)(done * 100 / total) : 100);
	fflush(stderr);
	progress_shown = 1;
}

static void clear_progress(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}

static snap_progress_fn progress_fn(void)
{
	return isatty(STDERR_FILENO) ? show_progress : NULL;
}

/* The options dump and prepare share; 0 once @c is taken into @o, else 2 (usage printed). */
static int dump_option(snap_ctx *ctx, int c, struct snap_dump_opts *o)
{
	switch (c) {
	case 'D':
		o->images_dir = optarg;
		return 0;
	case OPT_LEAVE_RUNNING:
		o->flags |= SNAP_DUMP_LEAVE_RUNNING;
		return 0;
	case OPT_TCP_ESTABLISHED:
		o->flags |= SNAP_DUMP_TCP_ESTABLISHED;
		return 0;
	case OPT_TCP_CLOSE:
		o->flags |= SNAP_DUMP_TCP_CLOSE;
		return 0;
	case OPT_SHELL_JOB:
		o->flags |= SNAP_DUMP_SHELL_JOB;
		return 0;
	case OPT_STATS:
		o->stats_file = optarg;
		return 0;
	case OPT_HOOK:
		return add_hook(optarg, DUMP_HOOKS) ? 2 : 0;
	case 'v':
		snap_set_log(ctx, SNAP_LOG_DEBUG, log_stderr, NULL);
		return 0;
	default:
		usage(stderr);
		return 2;
	}
}

static int cmd_dump(snap_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, OPT_LEAVE_RUNNING },
		{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
		{ "tcp-close", no_argument, NULL, OPT_TCP_CLOSE },
		{ "shell-job", no_argument, NULL, OPT_SHELL_JOB },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "hook", required_argument, NULL, OPT_HOOK },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct snap_dump_opts o = { .size = sizeof(o), .hooks = hooks, .progress = progress_fn() };
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:D:v", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.pid = (pid_t)strtol(optarg, &end, 10);
			if (*end || o.pid <= 0) {
				fprintf(stderr, "snapcr: bad pid '%s'\n", optarg);
				return 2;
			}
			break;
		default:
			r = dump_option(ctx, c, &o);
			if (r)
				return r;
		}
	}
	if (!o.pid || !o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	o.nr_hooks = nr_hooks;
	r = snap_dump(ctx, &o);
	clear_progress();
	return r ? fail(ctx, "dump") : 0;
}

static int cmd_restore(snap_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "detach", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "shell-job", no_argument, NULL, OPT_SHELL_JOB },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "pidns", no_argument, NULL, OPT_PIDNS },
		{ "netns", no_argument, NULL, OPT_NETNS },
		{ "netns-path", required_argument, NULL, OPT_NETNS_PATH },
		{ "hook", required_argument, NULL, OPT_HOOK },
		{ "map-pages", no_argument, NULL, OPT_MAP_PAGES },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct snap_restore_opts o = { .size = sizeof(o), .hooks = hooks, .progress = progress_fn() };
	int c, status, r;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "D:dv", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o.images_dir = optarg;
			break;
		case 'd':
			o.flags |= SNAP_RESTORE_DETACH;
			break;
		case OPT_SHELL_JOB:
			o.flags |= SNAP_RESTORE_SHELL_JOB;
			break;
		case OPT_PIDFILE:
			o.pidfile = optarg;
			break;
		case OPT_STATS:
			o.stats_file = optarg;
			break;
		case OPT_PIDNS:
			o.flags |= SNAP_RESTORE_PIDNS;
			break;
		case OPT_NETNS:
			o.flags |= SNAP_RESTORE_NETNS;
			break;
		case OPT_NETNS_PATH:
			o.netns_path = optarg;
			break;
		case OPT_HOOK:
			if (add_hook(optarg, RESTORE_HOOKS))
				return 2;
			break;
		case OPT_MAP_PAGES:
			o.flags |= SNAP_RESTORE_MAP_PAGES;
			break;
		case 'v':
			snap_set_log(ctx, SNAP_LOG_DEBUG, log_stderr, NULL);
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	o.nr_hooks = nr_hooks;
	r = snap_restore(ctx, &o, &pid);
	clear_progress();
	if (r)
		return fail(ctx, "restore");
	if (o.flags & SNAP_RESTORE_DETACH)
		return 0;
	/* Stay its parent and report how it ended, as a shell would. */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("snapcr: waitpid");
			return 1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static int cmd_prepare(snap_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "ready", required_argument, NULL, OPT_READY },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "warmup-count", required_argument, NULL, OPT_WARMUP_COUNT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "leave-running", no_argument, NULL, OPT_LEAVE_RUNNING },
		{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
		{ "tcp-close", no_argument, NULL, OPT_TCP_CLOSE },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "hook", required_argument, NULL, OPT_HOOK },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct snap_dump_opts d = { .size = sizeof(d), .hooks = hooks, .progress = progress_fn() };
	struct snap_prepare_opts o = { .size = sizeof(o), .dump = &d };
	double secs;
	char *end;
	long n;
	int c, r;
	pid_t pid;

	/* "+": options end at the command, whose own options are its business. */
	while ((c = getopt_long(argc, argv, "+D:v", opts, NULL)) != -1) {
		switch (c) {
		case OPT_READY:
			o.ready = optarg;
			break;
		case OPT_WARMUP:
			o.warmup_url = optarg;
			break;
		case OPT_WARMUP_COUNT:
			n = strtol(optarg, &end, 10);
			if (*end || n <= 0 || n > 1000000) {
				fprintf(stderr, "snapcr: bad --warmup-count '%s'\n", optarg);
				return 2;
			}
			o.warmup_count = (unsigned)n;
			break;
		case OPT_TIMEOUT:
			secs = strtod(optarg, &end);
			if (*end || !(secs > 0) || secs > 86400 * 7) {
				fprintf(stderr, "snapcr: bad --timeout '%s' (seconds)\n", optarg);
				return 2;
			}
			o.timeout_ms = (unsigned)(secs * 1000 + 0.5) ? (unsigned)(secs * 1000 + 0.5) : 1;
			break;
		case OPT_LOG:
			o.log_file = optarg;
			break;
		default:
			r = dump_option(ctx, c, &d);
			if (r)
				return r;
		}
	}
	if (!d.images_dir || !o.ready || optind >= argc || (o.warmup_count && !o.warmup_url)) {
		usage(stderr);
		return 2;
	}
	d.nr_hooks = nr_hooks;
	o.argv = (const char *const *)(argv + optind);
	r = snap_prepare(ctx, &o, &pid);
	clear_progress();
	if (r)
		return fail(ctx, "prepare");
	/* The pid it has in the images (and, with --leave-running, still runs as). */
	printf("%d\n", pid);
	return 0;
}

static void print_feature(void *opaque, const struct snap_feature *f)
{
	(void)opaque;
	printf("%-18s %-8s %s%s\n", f->name, f->present ? "present" : "MISSING", f->what,
	       f->required ? "" : " (optional)");
}

int main(int argc, char **argv)
{
	snap_ctx *ctx;
	int r;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (snap_ctx_new(&ctx)) {
		fprintf(stderr, "snapcr: out of memory\n");
		return 1;
	}
	snap_set_log(ctx, SNAP_LOG_WARN, log_stderr, NULL);
	if (!strcmp(argv[1], "dump")) {
		r = cmd_dump(ctx, argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "prepare")) {
		r = cmd_prepare(ctx, argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "restore")) {
		r = cmd_restore(ctx, argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "check")) {
		r = snap_check(ctx, print_feature, NULL) ? fail(ctx, "check") : 0;
	} else if (!strcmp(argv[1], "show") && argc == 3) {
		r = snap_show(ctx, argv[2], STDOUT_FILENO) ? fail(ctx, "show") : 0;
	} else {
		usage(stderr);
		r = 2;
	}
	snap_ctx_free(ctx);
	return r;
}
