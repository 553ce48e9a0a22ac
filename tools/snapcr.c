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
	fprintf(f,
		"usage:\n"
		"  snapcr dump -t PID -D DIR [--leave-running] [--tcp-established | --tcp-close] [--stats FILE] [-v]\n"
		"  snapcr restore -D DIR [-d] [--pidfile FILE] [--stats FILE] [--pidns] [--netns | --netns-path PATH] "
		"[--map-pages] [-v]\n"
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
	OPT_MAP_PAGES
};

static int cmd_dump(snap_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, OPT_LEAVE_RUNNING },
		{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
		{ "tcp-close", no_argument, NULL, OPT_TCP_CLOSE },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct snap_dump_opts o = { .size = sizeof(o) };
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "t:D:v", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.pid = (pid_t)strtol(optarg, &end, 10);
			if (*end || o.pid <= 0) {
				fprintf(stderr, "snapcr: bad pid '%s'\n", optarg);
				return 2;
			}
			break;
		case 'D':
			o.images_dir = optarg;
			break;
		case OPT_LEAVE_RUNNING:
			o.flags |= SNAP_DUMP_LEAVE_RUNNING;
			break;
		case OPT_TCP_ESTABLISHED:
			o.flags |= SNAP_DUMP_TCP_ESTABLISHED;
			break;
		case OPT_TCP_CLOSE:
			o.flags |= SNAP_DUMP_TCP_CLOSE;
			break;
		case OPT_STATS:
			o.stats_file = optarg;
			break;
		case 'v':
			snap_set_log(ctx, SNAP_LOG_DEBUG, log_stderr, NULL);
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.pid || !o.images_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	return snap_dump(ctx, &o) ? fail(ctx, "dump") : 0;
}

static int cmd_restore(snap_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "detach", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "pidns", no_argument, NULL, OPT_PIDNS },
		{ "netns", no_argument, NULL, OPT_NETNS },
		{ "netns-path", required_argument, NULL, OPT_NETNS_PATH },
		{ "map-pages", no_argument, NULL, OPT_MAP_PAGES },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct snap_restore_opts o = { .size = sizeof(o) };
	int c, status;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "D:dv", opts, NULL)) != -1) {
		switch (c) {
		case 'D':
			o.images_dir = optarg;
			break;
		case 'd':
			o.flags |= SNAP_RESTORE_DETACH;
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
	if (snap_restore(ctx, &o, &pid))
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
