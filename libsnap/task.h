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
struct task_attrs;
struct files_dump;

/* One descriptor of the process: its number and the open file description it refers to. */
struct dump_fd {
	int fd;
	uint32_t file_id; /* struct dump_file id (files.h) */
	bool cloexec;
};

/* One thread of a task, frozen. */
struct dump_thread {
	pid_t tid;
	bool seized;  /* ours to release */
	bool stopped; /* in a ptrace stop we caused */
	struct arch_thread_state state;
	uint64_t sigmask;
	bool has_rseq;
	struct __ptrace_rseq_configuration rseq; /* glibc <sys/ptrace.h> */
	uint64_t robust_head, robust_len;
	char comm[16];
	struct parasite_thread_info info; /* from the parasite */
	char **backtrace;		  /* "0x... symbol+off" lines, diagnostics only */
	size_t nr_frames;
};

struct dump_task {
	pid_t pid;
	bool zombie;		     /* exited, waiting for its parent: only its ids and status are dumped */
	int exit_status;	     /* a zombie's wait status */
	struct dump_thread *threads; /* threads[0] is the leader (tid == pid) */
	size_t nr_threads, cap_threads;
	struct proc_stat stat;
	struct proc_status status;
	struct proc_vma_list vmas;
	char *exe, *cwd, *root;
	uint64_t *auxv;
	size_t nr_auxv;
	struct dump_fd *fds;
	size_t nr_fds;
	unsigned flags;		  /* enum snap_dump_flags of the dump */
	struct files_dump *files; /* the open file descriptions, shared by the fds */
	struct parasite_ctl *parasite;
	void *unwind_as; /* libunwind address space shared by the threads' backtraces */
	/* Copied out of the parasite's shared area before it goes away. */
	struct parasite_sigaction sigactions[PARASITE_NSIG];
	struct parasite_misc misc;
	struct task_attrs *attrs; /* attrs.h: signals, timers, credentials, limits, locks */
};

/* The processes being dumped: tasks[0] is the root, parents come before their children. */
struct dump_tree {
	struct dump_task *tasks;
	size_t nr, cap;
};

/*
 * seize.c: freezes the root and every descendant, each with all its
 * threads; a frozen process cannot fork, and threads are listed again
 * until no new one appears. Zombies are recorded, not seized. Refuses a
 * process whose session or group belongs to a process outside the tree
 * (the root's own excepted).
 */
int seize_tree(struct snap_ctx *ctx, struct dump_tree *tree, pid_t root);
void dump_tree_free(struct dump_tree *tree);
/* Detaches every thread (the task runs on as before) or kills the task. */
void seize_release(struct snap_ctx *ctx, struct dump_task *t, bool kill_it);
static inline struct dump_thread *task_leader(struct dump_task *t)
{
	return &t->threads[0];
}

/* infect.c: the parasite. */
int infect(struct snap_ctx *ctx, struct dump_task *t);
int parasite_run(struct snap_ctx *ctx, struct dump_task *t, enum parasite_cmd cmd);
/* Runs the parasite in thread mode in @th (not the leader): fills th->info. */
int parasite_run_thread(struct snap_ctx *ctx, struct dump_task *t, struct dump_thread *th);
const struct parasite_shared *parasite_shared(const struct dump_task *t);
/* Removes the parasite and puts registers, FPU state and signal mask back. */
int cure(struct snap_ctx *ctx, struct dump_task *t);

/* backtrace.c: where each thread was frozen, through libunwind's ptrace unwinder. */
void backtrace_collect(struct snap_ctx *ctx, struct dump_task *t, struct dump_thread *th);
void backtrace_free(struct dump_thread *th);
void backtrace_task_free(struct dump_task *t);

/* files.c */
int files_collect(struct snap_ctx *ctx, struct dump_task *t);

void dump_task_free(struct dump_task *t);

#endif
