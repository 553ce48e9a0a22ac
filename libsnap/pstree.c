/*
 * The process tree at restore: reading pstree.img, then creating every
 * process with its pid under its parent, its session and group (with a
 * short-lived stand-in for a group whose leader has exited), and zombies
 * with their exit status; each live process then restores itself
 * (restore.c) and the engine walks each through its restorer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attrs.h"
#include "hooks.h"
#include "namespaces.h"
#include "restore.h"

/* A process that only exists to create a group whose leader had exited. */
struct standin {
	pid_t pid;
	size_t forker; /* task index: the first member's parent, in the member's session */
};

struct restore_tree {
	struct shmem_map *shmem; /* shared memory objects, made and filled by the engine */
	size_t nr_shmem;
	PstreeEntry **entries; /* parents before children; [0] is the root */
	size_t nr;
	size_t *parent;		    /* task index of each entry's parent; [0] unused */
	struct restore_task *tasks; /* parallel to entries; zombies have only pstree */
	struct standin *standins;
	size_t nr_standins;
};

static bool is_zombie(const PstreeEntry *pe)
{
	return pe->has_zombie && pe->zombie;
}

static ssize_t find_entry(const struct restore_tree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->entries[i]->pid == pid)
			return (ssize_t)i;
	return -1;
}

static void tree_free(struct restore_tree *tree)
{
	for (size_t k = 0; k < tree->nr_shmem; k++)
		if (tree->shmem[k].addr)
			munmap((void *)tree->shmem[k].addr, tree->shmem[k].size);
	free(tree->shmem);
	for (size_t i = 0; i < tree->nr; i++) {
		if (tree->tasks)
			restore_task_free(&tree->tasks[i]);
		protobuf_c_message_free_unpacked(&tree->entries[i]->base, NULL);
	}
	free(tree->entries);
	free(tree->parent);
	free(tree->tasks);
	free(tree->standins);
	memset(tree, 0, sizeof(*tree));
}

/* Whether @id (a session or group of the image) is the root's, inherited from outside the tree. */
static bool inherited(const struct restore_tree *tree, pid_t id, bool session)
{
	const PstreeEntry *root = tree->entries[0];
	pid_t root_id = session ? root->sid : root->pgid;

	return id == root_id && root_id != root->pid;
}

/* Who makes each group and session: a tree process, the root's inheritance, or a stand-in. */
static int plan_ids(struct snap_ctx *ctx, struct restore_tree *tree)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const PstreeEntry *pe = tree->entries[i];
		ssize_t leader;
		bool known = false;

		if (!inherited(tree, pe->sid, true) && find_entry(tree, pe->sid) < 0)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: the leader %d of its session has exited; not supported yet", pe->pid,
					 pe->sid);
		if (inherited(tree, pe->pgid, false))
			continue;
		leader = find_entry(tree, pe->pgid);
		if (leader >= 0) {
			if (tree->entries[leader]->sid != pe->sid)
				return snap_fail(ctx, -EINVAL,
						 "image pstree.img: pid %d is in group %d of another session", pe->pid,
						 pe->pgid);
			continue;
		}
		if (i == 0)
			return snap_fail(ctx, -EINVAL, "image pstree.img: the root's group %d has no leader", pe->pgid);
		for (size_t k = 0; k < tree->nr_standins; k++)
			known |= tree->standins[k].pid == pe->pgid;
		if (known)
			continue;
		if (tree->entries[tree->parent[i]]->sid != pe->sid)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: group %d lost its leader and pid %d's parent is in another session; "
					 "not supported yet",
					 pe->pid, pe->pgid, pe->pid);
		tree->standins[tree->nr_standins++] = (struct standin){ pe->pgid, tree->parent[i] };
	}
	return 0;
}

static int read_tree(struct snap_ctx *ctx, struct img_set *set, struct restore_tree *tree, const struct ns_plan *ns)
{
	const InventoryEntry *inv = img_set_inventory(set);
	struct img_reader *rd;
	size_t cap = 0;
	int r;

	r = img_reader_open(ctx, set, IMG_KIND_PSTREE, 0, &rd);
	if (r)
		return r;
	for (;;) {
		ProtobufCMessage *msg;

		r = img_read_msg(ctx, rd, &pstree_entry__descriptor, &msg);
		if (r <= 0)
			break;
		r = 0;
		if (tree->nr == cap) {
			PstreeEntry **n = realloc(tree->entries, (cap = cap ? cap * 2 : 16) * sizeof(*n));

			if (!n || cap > (1u << 16)) {
				free(n ? n : NULL);
				tree->entries = n ? n : tree->entries;
				protobuf_c_message_free_unpacked(msg, NULL);
				r = snap_fail(ctx, -ENOMEM, "image pstree.img: too many processes");
				break;
			}
			tree->entries = n;
		}
		tree->entries[tree->nr++] = (PstreeEntry *)msg;
	}
	img_reader_close(rd);
	if (r)
		return r;
	if (!tree->nr || tree->entries[0]->pid != inv->root_pid || is_zombie(tree->entries[0]))
		return snap_fail(ctx, -EINVAL, "image pstree.img: the first process is not the root %d", inv->root_pid);

	tree->parent = calloc(tree->nr, sizeof(*tree->parent));
	tree->tasks = calloc(tree->nr, sizeof(*tree->tasks));
	tree->standins = calloc(tree->nr, sizeof(*tree->standins));
	if (!tree->parent || !tree->tasks || !tree->standins)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < tree->nr; i++) {
		PstreeEntry *pe = tree->entries[i];
		ssize_t p = i ? find_entry(tree, pe->ppid) : -1;

		if (pe->pid <= 0 || find_entry(tree, pe->pid) != (ssize_t)i)
			return snap_fail(ctx, -EINVAL, "image pstree.img: pid %d is invalid or repeated", pe->pid);
		if (i && (p < 0 || (size_t)p >= i || is_zombie(tree->entries[p])))
			return snap_fail(ctx, -EINVAL, "image pstree.img: pid %d's parent %d does not come before it",
					 pe->pid, pe->ppid);
		tree->parent[i] = i ? (size_t)p : 0;
		if (is_zombie(pe)) {
			if (pe->n_threads)
				return snap_fail(ctx, -EINVAL, "image pstree.img: zombie %d has threads", pe->pid);
			tree->tasks[i].pstree = pe;
			continue;
		}
		r = restore_task_read(ctx, set, pe, &tree->tasks[i]);
		if (!r)
			r = restore_check_specials(ctx, &tree->tasks[i]);
		if (r)
			return r;
	}
	r = plan_ids(ctx, tree);
	/* Every pid and tid we are going to take must be free (in a new PID namespace: not the init's). */
	for (size_t i = 0; !r && i < tree->nr; i++) {
		r = ns_check_pid(ctx, ns, tree->entries[i]->pid);
		for (size_t t = 1; !r && t < tree->tasks[i].nr_threads; t++)
			r = ns_check_pid(ctx, ns, tree->tasks[i].threads[t]->tid);
	}
	for (size_t k = 0; !r && k < tree->nr_standins; k++)
		r = ns_check_pid(ctx, ns, tree->standins[k].pid);
	return r;
}

/*
 * A new shared memory object: a memfd of the same name for one that was a
 * memfd (so it keeps its name in /proc/PID/maps: libsnap-app finds its
 * block by it), anonymous shared memory otherwise. MAP_FAILED on failure.
 */
static uint64_t pstree_shmem_map(const VmaEntry *ve, uint64_t size)
{
	const char *name = ve->path && !strncmp(ve->path, "/memfd:", 7) ? ve->path + 7 : NULL;
	void *p;
	int fd;

	if (!name)
		return (uint64_t)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return (uint64_t)MAP_FAILED;
	p = ftruncate(fd, (off_t)size) ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return (uint64_t)p;
}

/*
 * Shared memory objects: one mapping each in the engine, filled from the
 * page file of the process that stored it; every process of the tree
 * inherits it and maps it again where its image says.
 */
static int make_shmem(struct snap_ctx *ctx, struct img_set *set, struct restore_tree *tree)
{
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
	size_t cap = 0;

	for (size_t i = 0; i < tree->nr; i++) {
		const struct mem_image *mi = &tree->tasks[i].mem;

		for (size_t v = 0; v < mi->nr_vmas; v++) {
			const VmaEntry *ve = mi->vmas[v];
			struct shmem_map *m = NULL;

			if (ve->kind != VMA_KIND__VMA_ANON_SHARED)
				continue;
			for (size_t k = 0; k < tree->nr_shmem; k++)
				if (tree->shmem[k].id == ve->shmem_id)
					m = &tree->shmem[k];
			if (m) {
				if (m->size != ve->shmem_size)
					return snap_fail(ctx, -EINVAL,
							 "image mm-%d.img: shared memory object %llu has two sizes",
							 tree->entries[i]->pid, (unsigned long long)ve->shmem_id);
				continue;
			}
			if (tree->nr_shmem == cap) {
				struct shmem_map *n = realloc(tree->shmem, (cap = cap ? cap * 2 : 8) * sizeof(*n));

				if (!n)
					return snap_fail(ctx, -ENOMEM, "out of memory");
				tree->shmem = n;
			}
			m = &tree->shmem[tree->nr_shmem++];
			*m = (struct shmem_map){ ve->shmem_id, 0, ve->shmem_size };
			m->addr = pstree_shmem_map(ve, m->size);
			if (m->addr == (uint64_t)MAP_FAILED) {
				m->addr = 0;
				return snap_fail(ctx, -errno, "cannot create shared memory of %llu bytes: %m",
						 (unsigned long long)m->size);
			}
		}
	}
	for (size_t i = 0; i < tree->nr; i++) {
		const struct mem_image *mi = &tree->tasks[i].mem;
		int fd = -1, r = 0;

		for (size_t p = 0; !r && p < mi->nr_pages; p++) {
			const PagemapEntry *pe = mi->pages[p];
			uint64_t len = (uint64_t)pe->nr_pages * ps;
			struct shmem_map *m = NULL;

			if (!pe->has_shmem_id)
				continue;
			for (size_t k = 0; k < tree->nr_shmem; k++)
				if (tree->shmem[k].id == pe->shmem_id)
					m = &tree->shmem[k];
			if (!m || pe->vaddr > m->size || len > m->size - pe->vaddr) {
				r = snap_fail(ctx, -EINVAL, "image %s: run %zu lies outside any shared memory object",
					      mi->head->pages_file, p);
				break;
			}
			if (fd < 0) {
				fd = img_set_open_pages(ctx, set, mi->head->pages_file, NULL);
				if (fd < 0)
					return fd;
			}
			for (uint64_t done = 0; !r && done < len;) {
				ssize_t got = pread(fd, (void *)(m->addr + pe->vaddr + done), len - done,
						    (off_t)(pe->offset + done));

				if (got <= 0)
					r = snap_fail(ctx, got < 0 ? -errno : -EIO,
						      "image %s: cannot read shared memory run %zu",
						      mi->head->pages_file, p);
				done += got > 0 ? (uint64_t)got : 0;
			}
			ctx->stats.pages_bytes += len;
		}
		if (fd >= 0)
			close(fd);
		if (r)
			return r;
	}
	for (size_t i = 0; i < tree->nr; i++) {
		tree->tasks[i].shmem = tree->shmem;
		tree->tasks[i].nr_shmem = tree->nr_shmem;
	}
	return 0;
}

/* ---- in the new processes ---- */

void restore_barrier(struct restore_ctl *ctl, enum restore_barrier b)
{
	uint32_t v = atomic_fetch_add(&ctl->barrier[b], 1) + 1;

	if (v == ctl->participants) {
		syscall(SYS_futex, &ctl->barrier[b], FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		return;
	}
	while ((v = atomic_load(&ctl->barrier[b])) < ctl->participants)
		syscall(SYS_futex, &ctl->barrier[b], FUTEX_WAIT, v, NULL, NULL, 0);
}

static pid_t clone_with_pid(pid_t pid, uint64_t flags)
{
	/* With CLONE_PARENT the child's exit signal is the caller's (SIGCHLD), and clone3 wants 0 here. */
	struct clone_args ca = { .flags = flags,
				 .exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD,
				 .set_tid = (uint64_t)&pid,
				 .set_tid_size = 1 };

	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/* The group an image id stands for here: the root's inherited one is whatever the root has now. */
static pid_t actual_pgid(const struct restore_tree *tree, pid_t pgid)
{
	return inherited(tree, pgid, false) ? getpgid(tree->entries[0]->pid) : pgid;
}

/* Exits the way the zombie did: its parent will find the same wait status. */
__attribute__((noreturn)) static void become_zombie(int status)
{
	if (WIFSIGNALED(status)) {
		struct rlimit no_core = { 0, 0 };
		sigset_t one;

		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, WTERMSIG(status));
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		raise(WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

__attribute__((noreturn)) static void standin_main(struct restore_ctl *ctl)
{
	restore_barrier(ctl, BARRIER_ALL_EXIST);
	setpgid(0, 0);
	restore_barrier(ctl, BARRIER_LEADERS_DONE);
	restore_barrier(ctl, BARRIER_GROUPS_DONE);
	_exit(0);
}

__attribute__((noreturn)) static void tree_child(struct snap_ctx *ctx, struct img_set *set, struct restore_tree *tree,
						 size_t idx, int status_fd, struct restore_ctl *ctl)
{
	const PstreeEntry *pe = tree->entries[idx];
	pid_t me = pe->pid, target;
	int r = 0;

	/* Until the engine traces us, its death must end us too. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pe->sid == me && setsid() < 0)
		r = snap_fail(ctx, -errno, "cannot create session %d: %m", me);
	if (r)
		restore_child_fail(ctx, status_fd, r);
	/* Memory first: the children forked below inherit it, and keep what they share with us. */
	if (!is_zombie(pe))
		restore_task_premap(ctx, set, &tree->tasks[idx], idx ? &tree->tasks[tree->parent[idx]] : NULL,
				    status_fd);
	/* Then the files it creates for itself and its descendants, which the children forked below inherit. */
	if (!is_zombie(pe))
		r = files_share_create(ctx, &tree->tasks[idx].files);
	for (size_t k = 0; !r && k < tree->nr_standins; k++) {
		pid_t p;

		if (tree->standins[k].forker != idx)
			continue;
		p = clone_with_pid(tree->standins[k].pid, 0);
		if (p == 0)
			standin_main(ctl);
		if (p < 0)
			r = snap_fail(ctx, -errno, "cannot create stand-in %d for its group: %m",
				      tree->standins[k].pid);
	}
	for (size_t c = idx + 1; !r && c < tree->nr; c++) {
		pid_t p;

		if (tree->parent[c] != idx)
			continue;
		p = clone_with_pid(tree->entries[c]->pid, 0);
		if (p == 0)
			tree_child(ctx, set, tree, c, status_fd, ctl);
		if (p < 0)
			r = snap_fail(ctx, -errno, "cannot create child %d: %m", tree->entries[c]->pid);
	}
	if (r)
		restore_child_fail(ctx, status_fd, r);

	restore_barrier(ctl, BARRIER_ALL_EXIST);
	if (pe->pgid == me && pe->sid != me && setpgid(0, 0))
		r = snap_fail(ctx, -errno, "cannot create process group %d: %m", me);
	restore_barrier(ctl, BARRIER_LEADERS_DONE);
	target = actual_pgid(tree, pe->pgid);
	if (!r && pe->sid != me && getpgid(0) != target && setpgid(0, target))
		r = snap_fail(ctx, -errno, "cannot join process group %d: %m", pe->pgid);
	restore_barrier(ctl, BARRIER_GROUPS_DONE);
	if (r)
		restore_child_fail(ctx, status_fd, r);

	for (size_t k = 0; k < tree->nr_standins; k++)
		if (tree->standins[k].forker == idx)
			waitpid(tree->standins[k].pid, NULL, 0);
	if (is_zombie(pe))
		become_zombie(pe->exit_status);
	/* Our zombie children must be dead before we go on: nothing of theirs may arrive later. */
	for (size_t c = idx + 1; c < tree->nr; c++) {
		siginfo_t si;

		if (tree->parent[c] == idx && is_zombie(tree->entries[c]))
			while (waitid(P_PID, (id_t)tree->entries[c]->pid, &si, WEXITED | WNOWAIT) && errno == EINTR)
				;
	}
	restore_task_child(ctx, set, &tree->tasks[idx], status_fd, ctl, idx);
}

/* What the namespace init runs in the root it creates. */
struct root_args {
	struct snap_ctx *ctx;
	struct img_set *set;
	struct restore_tree *tree;
	int status_fd, engine_fd;
	struct restore_ctl *ctl;
};

static void root_main(void *arg)
{
	struct root_args *a = arg;

	close(a->engine_fd);
	tree_child(a->ctx, a->set, a->tree, 0, a->status_fd, a->ctl);
}

/* ---- in the engine ---- */

static void kill_tree(const struct restore_tree *tree)
{
	int st;

	for (size_t i = 0; i < tree->nr; i++)
		kill(tree->entries[i]->pid, SIGKILL);
	for (size_t k = 0; k < tree->nr_standins; k++)
		kill(tree->standins[k].pid, SIGKILL);
	/* Everything ends up our child: the root is, and we are the subreaper of the rest. */
	for (size_t i = 0; i < tree->nr; i++)
		while (waitpid(tree->entries[i]->pid, &st, __WALL) < 0 && errno == EINTR)
			;
	for (size_t k = 0; k < tree->nr_standins; k++)
		while (waitpid(tree->standins[k].pid, &st, __WALL) < 0 && errno == EINTR)
			;
}

static int write_pidfile(struct snap_ctx *ctx, const char *path, pid_t pid)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f, "%d\n", pid) < 0 || fclose(f))
		return snap_fail(ctx, -errno, "cannot write pid file %s: %m", path);
	return 0;
}

int snap_restore(snap_ctx *ctx, const struct snap_restore_opts *opts, pid_t *ret_pid)
{
	struct restore_tree tree = { 0 };
	struct child_stats *stats = NULL;
	struct img_set *set = NULL;
	struct restore_ctl *ctl = MAP_FAILED;
	size_t ctl_size = 0, live = 0, ready = 0;
	int status_pipe[2] = { -1, -1 }, old_subreaper = 0, one = 1, r;
	bool subreaper_set = false;
	pid_t root = -1, *host_pid = NULL;
	struct ns_plan *ns = NULL;
	uint64_t t0;

	snap_clear_error(ctx);
	snap_stats_reset(ctx);
	if (!opts || opts->size < offsetof(struct snap_restore_opts, stats_file) + sizeof(opts->stats_file))
		return snap_fail(ctx, -EINVAL, "snap_restore: options struct too small");
	if (!opts->images_dir)
		return snap_fail(ctx, -EINVAL, "snap_restore: no images directory given");
	ctx->progress_fn = OPTS_HAS(opts, progress_opaque) ? opts->progress : NULL;
	ctx->progress_opaque = OPTS_HAS(opts, progress_opaque) ? opts->progress_opaque : NULL;

	t0 = stage_begin();
	r = ns_plan_new(ctx, opts, &ns);
	if (!r)
		r = img_set_open(ctx, opts->images_dir, &set);
	if (!r)
		r = read_tree(ctx, set, &tree, ns);
	if (!r)
		r = files_share_plan(ctx, tree.tasks, tree.parent, tree.nr, opts->flags);
	if (!r && (opts->flags & SNAP_RESTORE_MAP_PAGES))
		r = restore_map_pages_plan(ctx, tree.tasks, tree.parent, tree.nr, 0);
	/* In a PID namespace the root's parent is the init, which outlives it. */
	if (!r && (opts->flags & SNAP_RESTORE_DETACH) && !ns_pidns(ns))
		attrs_detach(ctx, tree.tasks[0].core, tree.entries[0]->pid);
	stage_end(ctx, SNAP_STAGE_READ, t0);
	if (r)
		goto out;
	for (size_t i = 0; i < tree.nr; i++)
		live += !is_zombie(tree.entries[i]);
	/* Everything is read and checked, nothing is created yet. */
	if (OPTS_HAS(opts, nr_hooks)) {
		r = hooks_run(ctx, opts->hooks, opts->nr_hooks, SNAP_HOOK_PRE_RESTORE, tree.entries[0]->pid,
			      opts->images_dir, "; nothing was restored");
		if (r)
			goto out;
	}

	t0 = stage_begin();
	r = make_shmem(ctx, set, &tree);
	stage_end(ctx, SNAP_STAGE_FILL, t0);
	if (r)
		goto out;

	t0 = stage_begin();
	ctl_size = sizeof(*ctl) + tree.nr * sizeof(ctl->go[0]);
	ctl = mmap(NULL, ctl_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	stats = calloc(tree.nr, sizeof(*stats));
	host_pid = calloc(tree.nr, sizeof(*host_pid));
	if (ctl == MAP_FAILED || !stats || !host_pid) {
		r = snap_fail(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	ctl->participants = (uint32_t)(tree.nr + tree.nr_standins);
	if (ctx->progress_fn) {
		uint64_t total = 0;

		for (size_t i = 0; i < tree.nr; i++)
			for (size_t k = 0; !is_zombie(tree.entries[i]) && k < tree.tasks[i].mem.nr_pages; k++)
				if (mem_run_has_data(tree.tasks[i].mem.pages[k]))
					total += (uint64_t)tree.tasks[i].mem.pages[k]->nr_pages *
						 (uint64_t)sysconf(_SC_PAGESIZE);
		/* The new processes count what they fill here; we report it while waiting for them. */
		ctx->fill_counter = &ctl->fill_bytes;
		progress_begin(ctx, SNAP_STAGE_FILL, total);
	}
	/* Records of several processes must not run into each other: a datagram each. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, status_pipe) ||
	    setsockopt(status_pipe[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one))) {
		r = snap_fail(ctx, -errno, "cannot create the status socket: %m");
		goto out;
	}
	/* Orphans of a failed restore come back to us to be reaped. */
	prctl(PR_GET_CHILD_SUBREAPER, &old_subreaper);
	if (!old_subreaper && !prctl(PR_SET_CHILD_SUBREAPER, 1))
		subreaper_set = true;
	/*
	 * The new process runs our code (malloc, stdio) before its restorer,
	 * and a raw clone3 from a multi-threaded caller could leave it with
	 * locks another thread held. So a fork() (which glibc makes safe)
	 * first, and that single-threaded copy clones the root as our child
	 * (CLONE_PARENT), with its pid, then leaves.
	 */
	{
		pid_t helper = fork();
		int st;

		if (helper == 0) {
			struct root_args ra = { ctx, set, &tree, status_pipe[1], status_pipe[0], ctl };
			pid_t p;

			r = ns_enter_net(ctx, ns);
			if (!r && ns_pidns(ns))
				r = ns_spawn_init(ctx, ns, tree.entries[0]->pid, status_pipe[1], root_main, &ra);
			if (r < 0)
				ns_helper_fail(ctx, ns, r);
			if (ns_pidns(ns))
				_exit(0);
			p = clone_with_pid(tree.entries[0]->pid, CLONE_PARENT);

			if (p == 0) {
				close(status_pipe[0]);
				tree_child(ctx, set, &tree, 0, status_pipe[1], ctl);
			}
			_exit(p < 0 ? errno : 0);
		}
		root = -1;
		errno = ECHILD;
		if (helper > 0 && waitpid(helper, &st, 0) == helper && WIFEXITED(st)) {
			errno = WEXITSTATUS(st);
			if (!errno)
				root = tree.entries[0]->pid;
		}
	}
	if (root < 0 && (r = ns_helper_error(ctx, ns)))
		goto out;
	if (root < 0) {
		r = -errno;
		if (r == -EEXIST)
			r = snap_fail(ctx, r, "pid %d is in use; cannot restore with the same pid",
				      tree.entries[0]->pid);
		else
			r = snap_fail(ctx, r, "cannot create pid %d: %s", tree.entries[0]->pid, strerror(-r));
		goto out;
	}
	close(status_pipe[1]);
	status_pipe[1] = -1;
	stage_end(ctx, SNAP_STAGE_FORK, t0);

	/* Each process reports when it is ready for its restorer; trace it, then let it go. */
	while (!r && ready < live) {
		struct child_stats cs;
		ssize_t idx;
		pid_t sender;

		if (ctx->progress_fn) {
			struct pollfd pfd = { .fd = status_pipe[0], .events = POLLIN };

			for (int n; (n = poll(&pfd, 1, 100)) == 0 || (n < 0 && errno == EINTR);)
				progress_set(ctx, SNAP_STAGE_FILL, atomic_load(&ctl->fill_bytes), false);
		}
		r = restore_read_status(ctx, status_pipe[0], &cs, &sender);
		if (r == 0) {
			r = snap_fail(ctx, -ECHILD, "pid %d: the new processes ended before their restorers started",
				      tree.entries[0]->pid);
			break;
		}
		if (r < 0)
			break;
		r = 0;
		idx = find_entry(&tree, cs.pid);
		if (idx < 0 || is_zombie(tree.entries[idx])) {
			r = snap_fail(ctx, -EPROTO, "pid %d: unexpected status from it", cs.pid);
			break;
		}
		stats[idx] = cs;
		host_pid[idx] = sender;
		if (ptrace(PTRACE_SEIZE, sender, 0,
			   PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD |
				   attrs_ptrace_options(tree.tasks[idx].core, tree.tasks[idx].threads,
							tree.tasks[idx].nr_threads))) {
			r = snap_fail(ctx, -errno, "pid %d: cannot trace the new process: %m", cs.pid);
			break;
		}
		atomic_store(&ctl->go[idx], 1);
		syscall(SYS_futex, &ctl->go[idx], FUTEX_WAKE, 1, NULL, NULL, 0);
		ready++;
		ctx->stats.stage_ns[SNAP_STAGE_PREMAP] += cs.premap_ns;
		ctx->stats.stage_ns[SNAP_STAGE_FILL] += cs.fill_ns;
		ctx->stats.pages_bytes += cs.pages_bytes;
		ctx->stats.vmas += cs.vmas;
	}
	if (r)
		goto out;
	if (ctx->progress_fn) {
		progress_set(ctx, SNAP_STAGE_FILL, atomic_load(&ctl->fill_bytes), true);
		progress_end(ctx, SNAP_STAGE_FILL);
	}

	t0 = stage_begin();
	for (size_t i = 0; !r && i < tree.nr; i++)
		if (!is_zombie(tree.entries[i]))
			r = restore_task_finish(ctx, &tree.tasks[i], host_pid[i], stats[i].region, stats[i].region_len,
						status_pipe[0]);
	stage_end(ctx, SNAP_STAGE_RESTORER, t0);
	/* In a PID namespace the caller waits for and signals the init: it stands for the whole copy. */
	if (!r && ns_pidns(ns))
		root = ns_init_pid(ns);
	if (!r && opts->pidfile)
		r = write_pidfile(ctx, opts->pidfile, root);
	if (!r && OPTS_HAS(opts, nr_hooks))
		r = hooks_run(ctx, opts->hooks, opts->nr_hooks, SNAP_HOOK_POST_RESTORE, root, opts->images_dir,
			      "; the restored process was killed");
	if (!r)
		ns_release(ns);
out:
	ctx->fill_counter = NULL;
	if (r && root > 0 && ns_pidns(ns))
		ns_kill(ns, host_pid, tree.nr);
	else if (r && root > 0)
		kill_tree(&tree);
	if (subreaper_set)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	for (int i = 0; i < 2; i++)
		if (status_pipe[i] >= 0)
			close(status_pipe[i]);
	if (ctl != MAP_FAILED)
		munmap(ctl, ctl_size);
	free(stats);
	free(host_pid);
	ns_plan_free(ns);
	tree_free(&tree);
	if (set)
		img_set_close(set);
	if (!r) {
		*ret_pid = root;
		if (opts->stats_file)
			r = snap_stats_write_json(ctx, opts->stats_file);
	}
	return r;
}
