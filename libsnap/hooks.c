/* Hooks: the caller's shell commands run at the stages of dump and restore, with the stage, pid and images in their
 * environment. */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks.h"

extern char **environ;

static const char *const stage_names[SNAP_HOOK__COUNT] = {
	[SNAP_HOOK_PRE_DUMP] = "pre-dump",
	[SNAP_HOOK_POST_DUMP] = "post-dump",
	[SNAP_HOOK_PRE_RESTORE] = "pre-restore",
	[SNAP_HOOK_POST_RESTORE] = "post-restore",
};

const char *snap_hook_stage_name(enum snap_hook_stage stage)
{
	return (unsigned)stage < SNAP_HOOK__COUNT ? stage_names[stage] : NULL;
}

int snap_hook_stage_parse(const char *name, enum snap_hook_stage *ret_stage)
{
	for (int i = 0; i < SNAP_HOOK__COUNT; i++) {
		if (!strcmp(name, stage_names[i])) {
			*ret_stage = (enum snap_hook_stage)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool is_ours(const char *var)
{
	return !strncmp(var, "SNAP_STAGE=", 11) || !strncmp(var, "SNAP_PID=", 9) ||
	       !strncmp(var, "SNAP_IMAGES_DIR=", 16);
}

/* The caller's environment without SNAP_STAGE, SNAP_PID and SNAP_IMAGES_DIR, then @ours (3 entries). */
static char **hook_env(char *const ours[3])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 4, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!is_ours(environ[i]))
			env[k++] = environ[i];
	for (int i = 0; i < 3; i++)
		env[k++] = ours[i];
	return env;
}

static int hook_run_one(struct snap_ctx *ctx, const struct snap_hook *h, pid_t pid, const char *images_dir,
			const char *after)
{
	const char *stage = stage_names[h->stage];
	char *argv[] = { "/bin/sh", "-c", (char *)h->command, NULL };
	char v_stage[64], v_pid[32], *v_dir = NULL, **env = NULL;
	pid_t child;
	int st, r;

	snprintf(v_stage, sizeof(v_stage), "SNAP_STAGE=%s", stage);
	snprintf(v_pid, sizeof(v_pid), "SNAP_PID=%d", (int)pid);
	if (asprintf(&v_dir, "SNAP_IMAGES_DIR=%s", images_dir ? images_dir : "") >= 0)
		env = hook_env((char *const[]){ v_stage, v_pid, v_dir });
	if (!env) {
		free(v_dir);
		return snap_fail(ctx, -ENOMEM, "out of memory");
	}
	snap_debug(ctx, "%s hook: %s", stage, h->command);
	/* posix_spawn, not fork: the caller may have threads, and its memory may be large. */
	r = posix_spawn(&child, "/bin/sh", NULL, NULL, argv, env);
	free(env);
	free(v_dir);
	if (r)
		return snap_fail(ctx, -r, "%s hook '%s': cannot run /bin/sh: %s%s", stage, h->command, strerror(r),
				 after);
	while (waitpid(child, &st, 0) < 0) {
		if (errno != EINTR)
			return snap_fail(ctx, -errno, "%s hook '%s': cannot wait for it: %m%s", stage, h->command,
					 after);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		return snap_fail(ctx, -ECANCELED, "%s hook '%s' exited with status %d%s", stage, h->command,
				 WEXITSTATUS(st), after);
	return snap_fail(ctx, -ECANCELED, "%s hook '%s' was killed by signal %d (%s)%s", stage, h->command,
			 WTERMSIG(st), strsignal(WTERMSIG(st)), after);
}

int hooks_run(struct snap_ctx *ctx, const struct snap_hook *hooks, size_t nr, enum snap_hook_stage stage, pid_t pid,
	      const char *images_dir, const char *after)
{
	for (size_t i = 0; i < nr; i++) {
		int r;

		if (hooks[i].stage != stage)
			continue;
		if (!hooks[i].command)
			return snap_fail(ctx, -EINVAL, "%s hook %zu has no command", stage_names[stage], i);
		r = hook_run_one(ctx, &hooks[i], pid, images_dir, after ? after : "");
		if (r)
			return r;
	}
	return 0;
}
