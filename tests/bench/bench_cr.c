/*
 * Benchmark: per-stage dump and restore times of a process holding 1 MiB
 * to 1 GiB of random anonymous memory, a 64-thread process and a tree of
 * 16 processes; restores copying the pages or mapping them
 * (SNAP_RESTORE_MAP_PAGES); and many copies of one snapshot at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

/*
 * Usage: bench_cr [--reps N] [--json FILE] [CASE...]
 * A case is a size in MiB (wl-bench-mem with that much memory), threads64
 * (wl-threads with 64 threads) or tree16 (wl-prefork: a root and 15
 * workers over 64 MiB); default: 1 256 1024 threads64 tree16. For each, N
 * times (default 5): start it, dump it (killed), restore it through the
 * library, let it check itself, and record snap_get_stats() of both
 * operations. Prints the medians as a table and, with --json, writes them
 * to FILE. A case map:MIB restores with SNAP_RESTORE_MAP_PAGES instead;
 * copies:N:MIB[:map] dumps once and restores N copies one after the other
 * (each in its own PID namespace), reporting the time for all of them and
 * the private (anonymous) memory of their roots before they run on.
 */

#define MAX_SIZES 16
#define MAX_REPS  101

static const enum snap_stage dump_stages[] = { SNAP_STAGE_FREEZE, SNAP_STAGE_COLLECT, SNAP_STAGE_INFECT,
					       SNAP_STAGE_DRAIN,  SNAP_STAGE_WRITE,   SNAP_STAGE_CURE };
static const enum snap_stage restore_stages[] = { SNAP_STAGE_READ, SNAP_STAGE_FORK, SNAP_STAGE_PREMAP, SNAP_STAGE_FILL,
						  SNAP_STAGE_RESTORER };
#define NR_DUMP	   (sizeof(dump_stages) / sizeof(dump_stages[0]))
#define NR_RESTORE (sizeof(restore_stages) / sizeof(restore_stages[0]))

struct run {
	struct snap_stats dump, restore;
	uint64_t dump_ns, restore_ns; /* wall time of the library calls */
};

struct bench_case {
	char label[40];
	const char *workload;
	char arg[24];
	unsigned restore_flags; /* SNAP_RESTORE_MAP_PAGES or 0 */
	int copies;		/* copies:N:...: N, else 0 */
};

struct result {
	const char *label;
	double dump_ms[NR_DUMP], restore_ms[NR_RESTORE];
	double dump_total_ms, restore_total_ms;
	double pages_mib, drain_gibs, fill_gibs;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double gib_per_s(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (1024.0 * 1024 * 1024) / ((double)ns / 1e9) : 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* h_restore() with restore flags; the root keeps its pid (no PID namespace). */
static int restore_flags(struct h_wl *w, const char *imgdir, snap_ctx *ctx, unsigned flags, uint64_t *ret_ns)
{
	struct snap_restore_opts o = { .size = sizeof(o), .images_dir = imgdir, .flags = flags };
	uint64_t t0 = now_ns();
	pid_t pid = 0;
	int r = snap_restore(ctx, &o, &pid);

	*ret_ns = now_ns() - t0;
	if (r < 0)
		return h_fail(r, "restore of %s from %s failed: %s", w->name, imgdir, snap_error(ctx));
	if (pid != w->orig_pid)
		return h_fail(-EPROTO, "restore returned pid %d, not %d", (int)pid, (int)w->orig_pid);
	w->pid = pid;
	return 0;
}

/* Private (anonymous) memory of the copy whose init is @init: its root, the init's only child. */
static long copy_anon_kb(pid_t init)
{
	char path[96], *s;
	long kb = 0;
	int root;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	s = h_read_file(path, NULL);
	root = s ? atoi(s) : 0;
	free(s);
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", root);
	s = root > 0 ? h_read_file(path, NULL) : NULL;
	if (s && strstr(s, "\nAnonymous:"))
		kb = atol(strstr(s, "\nAnonymous:") + 11);
	free(s);
	return kb;
}

#define MAX_COPIES 64

/*
 * copies:N:MIB: one dump, then N restores into PID namespaces one after
 * the other; every copy then checks its memory. Prints the times.
 */
static int copies_run(const struct bench_case *c)
{
	char imgdir[PATH_MAX];
	const char *const args[] = { c->arg, NULL };
	struct h_wl w = { .ready_timeout_ms = 300 * 1000, .exit_timeout_ms = 300 * 1000 };
	pid_t init[MAX_COPIES];
	double each[MAX_COPIES];
	uint64_t t0, total;
	long anon_kb = 0;
	int r, n = 0;

	r = h_start(&w, c->workload, args);
	if (r == 0)
		r = h_tmpdir(imgdir, "bench-img");
	if (r == 0)
		r = h_dump(&w, imgdir, 0, NULL);
	if (r < 0)
		return r;
	t0 = now_ns();
	for (; n < c->copies && r == 0; n++) {
		struct snap_restore_opts o = { .size = sizeof(o),
					       .images_dir = imgdir,
					       .flags = SNAP_RESTORE_PIDNS | c->restore_flags };
		snap_ctx *ctx = NULL;
		uint64_t t1 = now_ns();

		r = h_ctx_new(&ctx);
		if (r == 0 && (r = snap_restore(ctx, &o, &init[n])) < 0)
			h_fail(r, "copy %d: %s", n, snap_error(ctx));
		each[n] = (now_ns() - t1) / 1e6;
		snap_ctx_free(ctx);
		if (r < 0)
			return r;
	}
	total = now_ns() - t0;
	for (int i = 0; i < n; i++)
		anon_kb += copy_anon_kb(init[i]);
	r = h_go(&w);
	for (int i = 0; i < n && r == 0; i++) {
		int st;

		r = h_wait_pid(init[i], 300 * 1000, &st);
		if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			r = h_fail(-EPROTO, "copy %d: %s", i, h_describe_status(st, (char[64]){ 0 }, 64));
	}
	if (r == 0)
		printf("%-22s | %2d copies: %9.2f ms in all, median %8.2f ms each, %7.1f MiB private memory in all\n",
		       c->label, n, total / 1e6, median(each, n), anon_kb / 1024.0);
	fflush(stdout);
	return r;
}

static int one_run(const struct bench_case *c, struct run *out)
{
	char imgdir[PATH_MAX];
	const char *const args[] = { c->arg, NULL };
	/* Filling and verifying 1 GiB takes seconds, more on a slow machine. */
	struct h_wl w = { .ready_timeout_ms = 300 * 1000, .exit_timeout_ms = 300 * 1000 };
	snap_ctx *ctx = NULL;
	int r;

	r = h_start(&w, c->workload, args);
	if (r == 0)
		r = h_tmpdir(imgdir, "bench-img");
	if (r == 0)
		r = h_ctx_new(&ctx);
	if (r == 0)
		r = h_dump(&w, imgdir, 0, ctx);
	if (r == 0) {
		out->dump_ns = h_last_lib_ns();
		out->dump.size = sizeof(out->dump);
		r = snap_get_stats(ctx, &out->dump);
		if (r < 0)
			h_fail(r, "snap_get_stats after dump: %s", strerror(-r));
	}
	snap_ctx_free(ctx);
	ctx = NULL;
	if (r == 0)
		r = h_ctx_new(&ctx);
	if (r == 0)
		r = c->restore_flags ? restore_flags(&w, imgdir, ctx, c->restore_flags, &out->restore_ns)
				     : h_restore(&w, imgdir, ctx);
	if (r == 0) {
		out->restore_ns = c->restore_flags ? out->restore_ns : h_last_lib_ns();
		out->restore.size = sizeof(out->restore);
		r = snap_get_stats(ctx, &out->restore);
		if (r < 0)
			h_fail(r, "snap_get_stats after restore: %s", strerror(-r));
	}
	snap_ctx_free(ctx);
	/* The restored process must still hold exactly what was dumped. */
	if (r == 0)
		r = h_finish(&w);
	return r;
}

static void summarize(const char *label, const struct run *runs, int n, struct result *res)
{
	double v[MAX_REPS];

	res->label = label;
	for (size_t s = 0; s < NR_DUMP; s++) {
		for (int i = 0; i < n; i++)
			v[i] = runs[i].dump.stage_ns[dump_stages[s]] / 1e6;
		res->dump_ms[s] = median(v, n);
	}
	for (size_t s = 0; s < NR_RESTORE; s++) {
		for (int i = 0; i < n; i++)
			v[i] = runs[i].restore.stage_ns[restore_stages[s]] / 1e6;
		res->restore_ms[s] = median(v, n);
	}
	for (int i = 0; i < n; i++)
		v[i] = runs[i].dump_ns / 1e6;
	res->dump_total_ms = median(v, n);
	for (int i = 0; i < n; i++)
		v[i] = runs[i].restore_ns / 1e6;
	res->restore_total_ms = median(v, n);
	for (int i = 0; i < n; i++)
		v[i] = runs[i].dump.pages_bytes / (1024.0 * 1024);
	res->pages_mib = median(v, n);
	/* Rates per run, then the median: a slow outlier moves neither. */
	for (int i = 0; i < n; i++)
		v[i] = gib_per_s(runs[i].dump.pages_bytes, runs[i].dump.stage_ns[SNAP_STAGE_DRAIN]);
	res->drain_gibs = median(v, n);
	for (int i = 0; i < n; i++)
		v[i] = gib_per_s(runs[i].restore.pages_bytes, runs[i].restore.stage_ns[SNAP_STAGE_FILL]);
	res->fill_gibs = median(v, n);
}

static void print_table(const struct result *res, int nr, int reps)
{
	printf("\nmedian of %d runs, milliseconds (rates in GiB/s of page data)\n", reps);
	printf("%12s |", "case");
	for (size_t s = 0; s < NR_DUMP; s++)
		printf(" %8s", snap_stage_name(dump_stages[s]));
	printf(" %9s |", "dump");
	for (size_t s = 0; s < NR_RESTORE; s++)
		printf(" %8s", snap_stage_name(restore_stages[s]));
	printf(" %9s | %7s %7s\n", "restore", "drain/s", "fill/s");
	for (int i = 0; i < nr; i++) {
		const struct result *r = &res[i];

		printf("%12s |", r->label);
		for (size_t s = 0; s < NR_DUMP; s++)
			printf(" %8.2f", r->dump_ms[s]);
		printf(" %9.2f |", r->dump_total_ms);
		for (size_t s = 0; s < NR_RESTORE; s++)
			printf(" %8.2f", r->restore_ms[s]);
		printf(" %9.2f | %7.2f %7.2f\n", r->restore_total_ms, r->drain_gibs, r->fill_gibs);
	}
	fflush(stdout);
}

static int write_json(const char *path, const struct result *res, int nr, int reps)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"benchmark\": \"dump-restore\",\n  \"reps\": %d,\n  \"statistic\": \"median\",\n", reps);
	fprintf(f, "  \"results\": [");
	for (int i = 0; i < nr; i++) {
		const struct result *r = &res[i];

		fprintf(f, "%s\n    {\n      \"case\": \"%s\",\n", i ? "," : "", r->label);
		fprintf(f, "      \"pages_mib\": %.3f,\n      \"dump_ms\": {", r->pages_mib);
		for (size_t s = 0; s < NR_DUMP; s++)
			fprintf(f, "\"%s\": %.3f, ", snap_stage_name(dump_stages[s]), r->dump_ms[s]);
		fprintf(f, "\"total\": %.3f},\n      \"restore_ms\": {", r->dump_total_ms);
		for (size_t s = 0; s < NR_RESTORE; s++)
			fprintf(f, "\"%s\": %.3f, ", snap_stage_name(restore_stages[s]), r->restore_ms[s]);
		fprintf(f, "\"total\": %.3f},\n      \"drain_gib_per_s\": %.3f,\n      \"fill_gib_per_s\": %.3f\n    }",
			r->restore_total_ms, r->drain_gibs, r->fill_gibs);
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f) == 0 ? 0 : -errno;
}

static int parse_case(const char *name, struct bench_case *c)
{
	char *end;
	unsigned long mib;

	if (!strcmp(name, "threads64")) {
		*c = (struct bench_case){ "threads64", "wl-threads", "64" };
		return 0;
	}
	if (!strcmp(name, "tree16")) {
		*c = (struct bench_case){ "tree16", "wl-prefork", "15" };
		return 0;
	}
	*c = (struct bench_case){ .workload = "wl-bench-mem" };
	if (!strncmp(name, "copies:", 7)) {
		c->copies = (int)strtol(name + 7, &end, 10);
		if (*end != ':' || c->copies < 1 || c->copies > MAX_COPIES)
			return -1;
		name = end + 1;
	}
	if (!strncmp(name, "map:", 4)) {
		c->restore_flags = SNAP_RESTORE_MAP_PAGES;
		name += 4;
	}
	mib = strtoul(name, &end, 10);
	if (!strcmp(end, ":map") && c->copies)
		c->restore_flags = SNAP_RESTORE_MAP_PAGES;
	else if (*end)
		return -1;
	if (!mib)
		return -1;
	snprintf(c->label, sizeof(c->label), "%lu MiB%s", mib, c->restore_flags ? " map" : "");
	snprintf(c->arg, sizeof(c->arg), "%lu", mib);
	return 0;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--reps N] [--json FILE] [[map:]MIB|copies:N:MIB[:map]|threads64|tree16...]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	static struct run runs[MAX_REPS];
	static struct result res[MAX_SIZES];
	static struct bench_case cases[MAX_SIZES];
	const char *defaults[] = { "1", "256", "1024", "threads64", "tree16" };
	int nr_sizes = 0, nr_res = 0, reps = 5, r = 0;
	const char *json = NULL;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			reps = (int)strtol(argv[++i], &end, 10);
			if (*end || reps < 1 || reps > MAX_REPS)
				usage(argv[0]);
		} else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
			json = argv[++i];
		} else if (argv[i][0] != '-' && nr_sizes < MAX_SIZES) {
			if (parse_case(argv[i], &cases[nr_sizes++]))
				usage(argv[0]);
		} else {
			usage(argv[0]);
		}
	}
	if (!nr_sizes)
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			parse_case(defaults[i], &cases[nr_sizes++]);

	h_set_lib_timeout(600);
	for (int s = 0; s < nr_sizes && r == 0; s++) {
		if (cases[s].copies) {
			h_setup();
			r = copies_run(&cases[s]);
			h_cleanup();
			if (r < 0)
				fprintf(stderr, "%s: %s\n", cases[s].label, h_error());
			continue;
		}
		for (int i = 0; i < reps && r == 0; i++) {
			/* One rep at a time owns the machine; its images go right after. */
			h_setup();
			r = one_run(&cases[s], &runs[i]);
			h_cleanup();
			if (r < 0)
				fprintf(stderr, "%s, run %d: %s\n", cases[s].label, i + 1, h_error());
			else
				fprintf(stderr, "%s, run %d: dump %.1f ms, restore %.1f ms\n", cases[s].label, i + 1,
					runs[i].dump_ns / 1e6, runs[i].restore_ns / 1e6);
		}
		if (r == 0)
			summarize(cases[s].label, runs, reps, &res[nr_res++]);
	}
	if (r < 0)
		return 1;
	if (nr_res)
		print_table(res, nr_res, reps);
	if (json) {
		r = write_json(json, res, nr_res, reps);
		if (r < 0) {
			fprintf(stderr, "cannot write %s: %s\n", json, strerror(-r));
			return 1;
		}
	}
	return 0;
}
