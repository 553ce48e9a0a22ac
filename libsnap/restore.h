/* Restore, shared between the tree (pstree.c) and one process (restore.c). */
#ifndef SNAP_RESTORE_H
#define SNAP_RESTORE_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "files.h"
#include "image.h"
#include "mem.h"

/* A shared memory object the engine made and filled; the tree's processes map it again. */
struct shmem_map {
	uint64_t id;   /* shmem_id of the image */
	uint64_t addr; /* the engine's mapping, inherited through fork */
	uint64_t size;
};

/* Child -> engine records on the status pipe. */
enum { STATUS_STATS = 'S', STATUS_ERROR = 'E' };
#define STATUS_MSG_MAX 1024

struct child_stats {
	int32_t pid;
	uint32_t pad;
	uint64_t premap_ns, fill_ns, pages_bytes, vmas;
	uint64_t region, region_len; /* what the engine unmaps once the restorer is done */
};

/* Where a new process put its memory before entering the restorer. */
struct restore_layout {
	uint64_t region, region_len; /* everything of ours: restorer, args, stack, scratch, premapped areas */
	uint64_t blob, args, args_len, stack_top, scratch;
	uint64_t *premap_of;	  /* per image vma: where it is premapped */
	uint32_t *premap_prot_of; /* per image vma: the protection it is premapped with */
	bool *inherited_of;	  /* per image vma: taken over from the parent, outside our region */
	struct child_stats stats;
};

/* Everything one process's images say, read and validated. */
struct restore_task {
	struct restore_layout *layout; /* set in the new process by restore_task_premap() */
	const struct shmem_map *shmem; /* the tree's, owned by it */
	size_t nr_shmem;
	PstreeEntry *pstree; /* owned by the tree */
	TaskCoreEntry *core;
	ThreadCoreEntry **threads; /* [0] is the leader; order as in pstree.img */
	size_t nr_threads;
	struct mem_image mem;
	struct files_image files;
};

/*
 * Shared by the engine and every process of the tree being created (a
 * MAP_SHARED mapping inherited through fork): barriers for the steps that
 * need all processes to exist, and the engine's go for each process once
 * it traces it. Futex words, so no process spins.
 */
enum restore_barrier {
	BARRIER_ALL_EXIST,    /* every process and stand-in is forked */
	BARRIER_LEADERS_DONE, /* group leaders have made their groups */
	BARRIER_GROUPS_DONE,  /* everyone is in its group: stand-ins and zombies may go */
	BARRIER__COUNT
};

struct restore_ctl {
	_Atomic uint32_t barrier[BARRIER__COUNT];
	uint32_t participants;
	/* Memory filled so far by all processes, for progress reports. */
	_Atomic uint64_t fill_bytes;
	_Atomic uint32_t go[]; /* per task index */
};

/*
 * SNAP_RESTORE_MAP_PAGES, once every task of the tree is read: which
 * stored pages of each the restorer maps from its page file (mem-map.c).
 * @max_map_count: the kernel's VMA limit per process, 0 to read vm.max_map_count.
 */
int restore_map_pages_plan(struct snap_ctx *ctx, struct restore_task *tasks, const size_t *parent, size_t nr,
			   uint64_t max_map_count);
/* Reads and validates the images of the process @pe describes. */
int restore_task_read(struct snap_ctx *ctx, struct img_set *set, PstreeEntry *pe, struct restore_task *rt);
void restore_task_free(struct restore_task *rt);
/* The kernel areas of this process (which the new one inherits) must match the image's. */
int restore_check_specials(struct snap_ctx *ctx, const struct restore_task *rt);
/* Fails naming @pid (and what has it) if a process or thread has it. */
int restore_pid_in_use(struct snap_ctx *ctx, pid_t pid);

/* Reports the context's error to the engine, errno first, and ends the process. */
__attribute__((noreturn)) void restore_child_fail(struct snap_ctx *ctx, int status_fd, int err);
/* Waits at @b until @ctl->participants have arrived. */
void restore_barrier(struct restore_ctl *ctl, enum restore_barrier b);

/*
 * In the new process, before it forks its children (which inherit what it
 * premapped, pages shared copy-on-write included): premap and fill its
 * memory, taking over @parent's premapped areas where the image says
 * their pages are inherited. Fails through restore_child_fail().
 */
void restore_task_premap(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt,
			 const struct restore_task *parent, int status_fd);
/*
 * Then, once the tree steps are done: open its files, report STATS, wait
 * for the engine's go at ctl->go[@index], and enter the restorer.
 */
__attribute__((noreturn)) void restore_task_child(struct snap_ctx *ctx, struct img_set *set, struct restore_task *rt,
						  int status_fd, struct restore_ctl *ctl, size_t index);

/*
 * Reads status records until one arrives: 1 with *cs for STATS and the
 * sender's pid in our namespace in *ret_sender (@fd needs SO_PASSCRED),
 * <0 for an error (in ctx), 0 if every writer is gone.
 */
int restore_read_status(struct snap_ctx *ctx, int fd, struct child_stats *cs, pid_t *ret_sender);
/* In the engine: steps the traced process (@pid: ours for it) through its restorer and removes it. */
int restore_task_finish(struct snap_ctx *ctx, const struct restore_task *rt, pid_t pid, uint64_t region,
			uint64_t region_len, int status_fd);

#endif
