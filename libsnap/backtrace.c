/*
 * Where each thread was frozen, for diagnostics: libunwind's ptrace
 * unwinder walks the stopped thread's stack. A stack that cannot be
 * unwound yields fewer frames, never an error.
 */
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

#define BACKTRACE_MAX_FRAMES 16

void backtrace_collect(struct snap_ctx *ctx, struct dump_task *t, struct dump_thread *th)
{
	unw_cursor_t cursor;
	void *upt;

	if (!t->unwind_as) {
		t->unwind_as = unw_create_addr_space(&_UPT_accessors, 0);
		if (!t->unwind_as)
			return;
		/* The threads of one task share their code: unwind info is looked up once. */
		unw_set_caching_policy(t->unwind_as, UNW_CACHE_GLOBAL);
	}
	upt = _UPT_create(th->tid);
	if (!upt)
		return;
	th->backtrace = calloc(BACKTRACE_MAX_FRAMES, sizeof(*th->backtrace));
	if (th->backtrace && unw_init_remote(&cursor, t->unwind_as, upt) == 0) {
		do {
			unw_word_t ip = 0, off = 0;
			char name[128], *line = NULL;

			if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0)
				break;
			if (unw_get_proc_name(&cursor, name, sizeof(name), &off) == 0) {
				if (asprintf(&line, "0x%llx %s+0x%llx", (unsigned long long)ip, name,
					     (unsigned long long)off) < 0)
					line = NULL;
			} else if (asprintf(&line, "0x%llx ?", (unsigned long long)ip) < 0) {
				line = NULL;
			}
			if (!line)
				break;
			th->backtrace[th->nr_frames++] = line;
		} while (th->nr_frames < BACKTRACE_MAX_FRAMES && unw_step(&cursor) > 0);
	}
	_UPT_destroy(upt);
	snap_debug(ctx, "pid %d: tid %d frozen in %s", t->pid, th->tid,
		   th->nr_frames ? th->backtrace[0] : "(no frames)");
}

void backtrace_free(struct dump_thread *th)
{
	for (size_t i = 0; i < th->nr_frames; i++)
		free(th->backtrace[i]);
	free(th->backtrace);
	th->backtrace = NULL;
	th->nr_frames = 0;
}

void backtrace_task_free(struct dump_task *t)
{
	if (t->unwind_as)
		unw_destroy_addr_space(t->unwind_as);
	t->unwind_as = NULL;
}
