/* The plan of which process of a restored tree creates each shared file (files-share.c), on made-up images. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "files.h"
#include "restore.h"

/*
 *   0 root ── 1 a ── 3 c
 *          └─ 2 b
 */
#define NR_TASKS 4
static const size_t parent[NR_TASKS] = { 0, 0, 0, 1 };

struct fake {
	struct restore_task tasks[NR_TASKS];
	PstreeEntry pe[NR_TASKS];
	FsEntry fs;
	FileEntry fe[16];
	FileEntry *files[16];
	size_t nr_files;
	UnixSkEntry unix_sk[8];
	uint64_t pending[1];
	EpollEntry ep;
	EpollTargetEntry target;
	EpollTargetEntry *targets[1];
	RegFileEntry reg[4];
	FdEntry fd[NR_TASKS][8];
	FdEntry *fds[NR_TASKS][8];
};

static FileEntry *add_file(struct fake *f, FileKind kind)
{
	FileEntry *fe = &f->fe[f->nr_files];

	file_entry__init(fe);
	fe->id = (uint32_t)++f->nr_files;
	fe->kind = kind;
	f->files[fe->id - 1] = fe;
	return fe;
}

/* Gives task @t fd @num on file @id. */
static void hold(struct fake *f, size_t t, int num, uint32_t id)
{
	struct files_image *fi = &f->tasks[t].files;
	FdEntry *e = &f->fd[t][fi->nr_fds];

	fd_entry__init(e);
	e->fd = num;
	e->file_id = id;
	f->fds[t][fi->nr_fds++] = e;
}

static void setup(struct fake *f)
{
	FileEntry *fe;

	memset(f, 0, sizeof(*f));
	fs_entry__init(&f->fs);
	f->fs.cwd = (char *)"/";
	f->fs.root = (char *)"/";
	/* 1, 2: the ends of one pipe, held by siblings b and c's... c is a's child: the root makes it. */
	fe = add_file(f, FILE_KIND__FILE_PIPE);
	fe->body_case = FILE_ENTRY__BODY_PIPE_ID;
	fe->pipe_id = 7;
	fe = add_file(f, FILE_KIND__FILE_PIPE);
	fe->body_case = FILE_ENTRY__BODY_PIPE_ID;
	fe->pipe_id = 7;
	/* 3: a regular file held by a and its child c: a makes it. */
	fe = add_file(f, FILE_KIND__FILE_REG);
	reg_file_entry__init(&f->reg[0]);
	f->reg[0].path = (char *)"/etc/hostname";
	fe->body_case = FILE_ENTRY__BODY_REG;
	fe->reg = &f->reg[0];
	/* 4: an epoll held by c only, watching 5, which nobody holds any more: c makes both. */
	fe = add_file(f, FILE_KIND__FILE_EPOLL);
	epoll_entry__init(&f->ep);
	epoll_target_entry__init(&f->target);
	f->target.tfd = 9;
	f->target.file_id = 5;
	f->targets[0] = &f->target;
	f->ep.targets = f->targets;
	f->ep.n_targets = 1;
	fe->body_case = FILE_ENTRY__BODY_EPOLL;
	fe->epoll = &f->ep;
	fe = add_file(f, FILE_KIND__FILE_EVENTFD);
	/* 6, 7: a socketpair between a and b: the root makes it. */
	for (int k = 0; k < 2; k++) {
		fe = add_file(f, FILE_KIND__FILE_UNIX);
		unix_sk_entry__init(&f->unix_sk[k]);
		f->unix_sk[k].ino = 100 + (uint64_t)k;
		f->unix_sk[k].has_peer_ino = 1;
		f->unix_sk[k].peer_ino = 101 - (uint64_t)k;
		fe->body_case = FILE_ENTRY__BODY_UNIX_SK;
		fe->unix_sk = &f->unix_sk[k];
	}
	/* 8: c's own file: c makes it. */
	fe = add_file(f, FILE_KIND__FILE_REG);
	fe->body_case = FILE_ENTRY__BODY_REG;
	fe->reg = &f->reg[0];
	/*
	 * 9: a unix listener held by c, with 11 (c's) waiting to be accepted;
	 * 10: what it accepted, held by a, connected to 12 (a's). One name: a
	 * makes them all, though no fd links the listener to a's two.
	 */
	for (int k = 0; k < 4; k++) {
		UnixSkEntry *u = &f->unix_sk[2 + k];

		fe = add_file(f, FILE_KIND__FILE_UNIX);
		unix_sk_entry__init(u);
		u->ino = 200 + (uint64_t)k;
		fe->body_case = FILE_ENTRY__BODY_UNIX_SK;
		fe->unix_sk = u;
		if (k < 2) {
			u->has_name = 1;
			u->name.data = (uint8_t *)"/tmp/x";
			u->name.len = 6;
		}
	}
	f->pending[0] = 202;
	f->unix_sk[2].pending = f->pending;
	f->unix_sk[2].n_pending = 1;
	f->unix_sk[3].has_peer_ino = 1;
	f->unix_sk[3].peer_ino = 203;

	for (size_t t = 0; t < NR_TASKS; t++) {
		pstree_entry__init(&f->pe[t]);
		f->pe[t].pid = 100 + (int)t;
		f->tasks[t].pstree = &f->pe[t];
		f->tasks[t].files.fs = &f->fs;
		f->tasks[t].files.files = f->files;
		f->tasks[t].files.nr_files = f->nr_files;
		f->tasks[t].files.fds = f->fds[t];
		f->tasks[t].files.data_fd = -1;
	}
	hold(f, 1, 0, 6); /* a */
	hold(f, 1, 3, 3);
	hold(f, 2, 4, 1); /* b */
	hold(f, 2, 5, 7);
	hold(f, 3, 3, 3); /* c */
	hold(f, 3, 4, 2);
	hold(f, 3, 6, 4);
	hold(f, 3, 40, 8);
	hold(f, 3, 7, 9);
	hold(f, 1, 7, 10);
	hold(f, 3, 8, 11);
	hold(f, 1, 8, 12);
}

static void teardown(struct fake *f)
{
	for (size_t t = 0; t < NR_TASKS; t++)
		files_share_put(f->tasks[t].files.share);
}

Test(files_share, nearest_common_ancestor_creates)
{
	static struct fake f;
	snap_ctx *ctx;

	cr_assert(snap_ctx_new(&ctx) == 0);
	setup(&f);
	cr_assert(files_share_plan(ctx, f.tasks, parent, NR_TASKS, 0) == 0, "%s", snap_error(ctx));
	for (size_t t = 0; t < NR_TASKS; t++)
		cr_assert(f.tasks[t].files.share == f.tasks[0].files.share && f.tasks[t].files.share_idx == t);
	/* file id -> task index that creates it */
	static const size_t want[] = { 0, 0, 0, 1, 3, 3, 0, 0, 3, 1, 1, 1, 1 };
	for (uint32_t id = 1; id <= f.nr_files; id++)
		cr_expect(files_share_creator(&f.tasks[0].files, id) == want[id],
			  "file %u is created by task %zu, expected %zu", id,
			  files_share_creator(&f.tasks[0].files, id), want[id]);
	/* Created fds sit above every number any process places (c's 40). */
	cr_expect(files_share_base(&f.tasks[0].files) == 41, "base %d", files_share_base(&f.tasks[0].files));
	teardown(&f);
	snap_ctx_free(ctx);
}

Test(files_share, terminal_needs_shell_job)
{
	static struct fake f;
	snap_ctx *ctx;

	cr_assert(snap_ctx_new(&ctx) == 0);
	setup(&f);
	f.reg[1] = f.reg[0];
	f.reg[1].path = (char *)"/dev/pts/9";
	f.reg[1].has_tty = f.reg[1].tty = 1;
	f.fe[7].kind = FILE_KIND__FILE_CHR;
	f.fe[7].reg = &f.reg[1];
	cr_assert(files_share_plan(ctx, f.tasks, parent, NR_TASKS, 0) == -EOPNOTSUPP);
	cr_expect(strstr(snap_error(ctx), "--shell-job") && strstr(snap_error(ctx), "/dev/pts/9"), "%s",
		  snap_error(ctx));
	for (size_t t = 0; t < NR_TASKS; t++)
		cr_expect(f.tasks[t].files.share == NULL, "a failed plan was left on task %zu", t);
	snap_ctx_free(ctx);
}

Test(files_share, images_disagree)
{
	static struct fake f;
	snap_ctx *ctx;

	cr_assert(snap_ctx_new(&ctx) == 0);
	setup(&f);
	f.tasks[2].files.nr_files--;
	cr_assert(files_share_plan(ctx, f.tasks, parent, NR_TASKS, 0) == -EINVAL);
	snap_ctx_free(ctx);
}
