/* What the engine knows about one process while dumping it. */
#ifndef SNAP_TASK_H
#define SNAP_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/types.h>

#include "arch.h"
#include "compat.h"
#include "proc.h"
#include "../parasite/protocol.h"

struct parasite_ctl;
struct files_dump;

/* One descriptor of the process: its number and the open file description it refers to. */
struct dump_fd {
	int fd;
	uint32_t file_id; /* struct dump_file id (files.h) */
	bool cloexec;
};

struct dump_task {
	pid_t pid;
	bool seized;
	struct proc_stat stat;
	struct proc_status status;
	struct proc_vma_list vmas;
	struct arch_thread_state thread;
	uint64_t sigmask;
	bool has_rseq;
	struct __ptrace_rseq_configuration rseq; /* glibc <sys/ptrace.h> */
	uint64_t robust_head, robust_len;
	char *exe, *cwd, *root;
	uint64_t *auxv;
	size_t nr_auxv;
	struct dump_fd *fds;
	size_t nr_fds;
	unsigned flags;		   /* enum snap_dump_flags of the dump */
	struct files_dump *files;  /* the open file descriptions, shared by the fds */
	struct parasite_ctl *parasite;
	/* Copied out of the parasite's shared area before it goes away. */
	struct parasite_sigaction sigactions[PARASITE_NSIG];
	struct parasite_misc misc;
};

/* seize.c: freeze and release. */
int seize_task(struct snap_ctx *ctx, struct dump_task *t);
int seize_check_alone(struct snap_ctx *ctx, struct dump_task *t);
/* Detaches (the task runs on as before) or kills it. */
void seize_release(struct snap_ctx *ctx, struct dump_task *t, bool kill_it);

/* infect.c: the parasite. */
int infect(struct snap_ctx *ctx, struct dump_task *t);
int parasite_run(struct snap_ctx *ctx, struct dump_task *t, enum parasite_cmd cmd);
const struct parasite_shared *parasite_shared(const struct dump_task *t);
/* Removes the parasite and puts registers, FPU state and signal mask back. */
int cure(struct snap_ctx *ctx, struct dump_task *t);

/* files.c */
int files_collect(struct snap_ctx *ctx, struct dump_task *t);

void dump_task_free(struct dump_task *t);

#endif
