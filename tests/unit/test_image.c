/* Unit tests of image.c and show.c: round trips, and every kind of damage rejected with a message naming the file. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

#define PID 42

struct fixture {
	snap_ctx *ctx;
	char dir[64];
};

static void fx_init(struct fixture *fx)
{
	cr_assert_eq(snap_ctx_new(&fx->ctx), 0);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/snap-test-image-XXXXXX");
	cr_assert_not_null(mkdtemp(fx->dir));
}

static void fx_fini(struct fixture *fx)
{
	DIR *d = opendir(fx->dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(fx->dir);
	snap_ctx_free(fx->ctx);
}

static char *path_of(const struct fixture *fx, const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", fx->dir, name);
	return buf;
}

static uint8_t *slurp(const struct fixture *fx, const char *name, size_t *ret_len)
{
	FILE *f = fopen(path_of(fx, name), "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "open %s", name);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n ? (size_t)n : 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

static void spit(const struct fixture *fx, const char *name, const void *buf, size_t len)
{
	FILE *f = fopen(path_of(fx, name), "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* The error of the last operation must name @name; then forget it. */
static void expect_error_names(struct fixture *fx, int r, const char *name, const char *what)
{
	cr_assert_lt(r, 0, "%s: expected a failure", what);
	cr_assert_not_null(strstr(snap_error(fx->ctx), name), "%s: error \"%s\" does not name %s", what,
			   snap_error(fx->ctx), name);
	snap_clear_error(fx->ctx);
}

static void write_msg(struct fixture *fx, struct img_writer *w, const void *msg)
{
	cr_assert_eq(img_write_msg(fx->ctx, w, msg), 0, "%s", snap_error(fx->ctx));
}

static uint8_t page_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 4096);
}

/* Writes one file of every kind for PID, plus pstree.img and the inventory. */
static void write_sample(struct fixture *fx)
{
	long page = sysconf(_SC_PAGESIZE);
	struct img_dir *dir;
	struct img_writer *w;
	struct img_pages_writer *pw;
	uint64_t off;
	uint8_t *pages;

	cr_assert_eq(img_dir_create(fx->ctx, fx->dir, &dir), 0, "%s", snap_error(fx->ctx));

	/* pstree: two processes */
	int32_t threads[] = { PID, PID + 1 };
	PstreeEntry ps[2] = { PSTREE_ENTRY__INIT, PSTREE_ENTRY__INIT };
	ps[0].pid = PID, ps[0].ppid = 1, ps[0].pgid = PID, ps[0].sid = PID;
	ps[0].n_threads = 2, ps[0].threads = threads;
	ps[1].pid = PID + 10, ps[1].ppid = PID, ps[1].pgid = PID, ps[1].sid = PID;
	cr_assert_eq(img_writer_open(fx->ctx, dir, IMG_KIND_PSTREE, 0, &w), 0);
	write_msg(fx, w, &ps[0]);
	write_msg(fx, w, &ps[1]);
	cr_assert_eq(img_writer_close(fx->ctx, w), 0);

	/* core: task, then one x86 and one aarch64 thread */
	SigactionEntry sa[2] = { SIGACTION_ENTRY__INIT, SIGACTION_ENTRY__INIT };
	SigactionEntry *sap[2] = { &sa[0], &sa[1] };
	sa[0].sig = 1, sa[0].handler = 0x401000, sa[1].sig = 2, sa[1].flags = 0x4000000;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	tc.comm = "sample \"task\"\n";
	tc.umask = 022;
	tc.n_sigactions = 2, tc.sigactions = sap;
	tc.has_exit_signal = 1, tc.exit_signal = 17;
	X86Gpregs gp = X86_GPREGS__INIT;
	gp.ip = 0xdeadbeef, gp.sp = 0x7ffc0000;
	uint8_t xsave[] = { 0x00, 0x01, 0xab, 0xff };
	X86Thread x86 = X86_THREAD__INIT;
	x86.gpregs = &gp, x86.xsave.len = sizeof(xsave), x86.xsave.data = xsave, x86.xcr0 = 7;
	RseqEntry rseq = RSEQ_ENTRY__INIT;
	rseq.addr = 0x1000, rseq.len = 32, rseq.signature = 0x53053053;
	ThreadCoreEntry t0 = THREAD_CORE_ENTRY__INIT;
	t0.tid = PID, t0.blocked = 0x10, t0.rseq = &rseq, t0.comm = "main";
	t0.arch_case = THREAD_CORE_ENTRY__ARCH_X86, t0.x86 = &x86;
	uint64_t regs[31] = { 1, 2, 3 };
	uint8_t fpsimd[8] = { 9 };
	Aarch64Thread a64 = AARCH64_THREAD__INIT;
	a64.n_regs = 31, a64.regs = regs, a64.pc = 0x400000, a64.fpsimd.len = 8, a64.fpsimd.data = fpsimd;
	ThreadCoreEntry t1 = THREAD_CORE_ENTRY__INIT;
	t1.tid = PID + 1, t1.comm = "w\xc3\xa9rker\xff";
	t1.has_altstack_sp = 1, t1.altstack_sp = 0x5000;
	t1.arch_case = THREAD_CORE_ENTRY__ARCH_AARCH64, t1.aarch64 = &a64;
	cr_assert_eq(img_writer_open(fx->ctx, dir, IMG_KIND_CORE, PID, &w), 0);
	write_msg(fx, w, &tc);
	write_msg(fx, w, &t0);
	write_msg(fx, w, &t1);
	cr_assert_eq(img_writer_close(fx->ctx, w), 0);

	/* mm: two areas */
	uint64_t auxv[] = { 6, 4096, 0, 0 };
	MmEntry mm = MM_ENTRY__INIT;
	mm.start_code = 0x400000, mm.end_code = 0x401000, mm.n_auxv = 4, mm.auxv = auxv, mm.exe = "/bin/true";
	mm.nr_vmas = 2;
	VmaEntry v[2] = { VMA_ENTRY__INIT, VMA_ENTRY__INIT };
	v[0].start = 0x400000, v[0].end = 0x401000, v[0].kind = VMA_KIND__VMA_FILE_PRIVATE, v[0].prot = 5;
	v[0].path = "/bin/true", v[0].has_file_ino = 1, v[0].file_ino = 1234;
	v[1].start = 0x7ffc0000, v[1].end = 0x7ffc3000, v[1].kind = VMA_KIND__VMA_ANON_PRIVATE, v[1].prot = 3;
	cr_assert_eq(img_writer_open(fx->ctx, dir, IMG_KIND_MM, PID, &w), 0);
	write_msg(fx, w, &mm);
	write_msg(fx, w, &v[0]);
	write_msg(fx, w, &v[1]);
	cr_assert_eq(img_writer_close(fx->ctx, w), 0);

	/* pages: three pages in two writes */
	pages = malloc(3 * (size_t)page);
	for (size_t i = 0; i < 3 * (size_t)page; i++)
		pages[i] = page_byte(i);
	cr_assert_eq(img_pages_open(fx->ctx, dir, PID, &pw), 0);
	cr_assert_str_eq(img_pages_name(pw), "pages-42.img");
	cr_assert_eq(img_pages_write(fx->ctx, pw, pages, (size_t)page, &off), 0);
	cr_assert_eq(off, 0);
	cr_assert_lt(img_pages_write(fx->ctx, pw, pages, 100, &off), 0, "partial pages are refused");
	snap_clear_error(fx->ctx);
	cr_assert_eq(img_pages_write(fx->ctx, pw, pages + page, 2 * (size_t)page, &off), 0);
	cr_assert_eq(off, (uint64_t)page);
	cr_assert_eq(img_pages_close(fx->ctx, pw), 0);
	free(pages);

	/* pagemap */
	PagemapHead ph = PAGEMAP_HEAD__INIT;
	ph.pages_file = "pages-42.img", ph.nr_pages = 3;
	PagemapEntry pe[2] = { PAGEMAP_ENTRY__INIT, PAGEMAP_ENTRY__INIT };
	pe[0].vaddr = 0x7ffc0000, pe[0].nr_pages = 1, pe[0].offset = 0;
	pe[1].vaddr = 0x7ffc2000, pe[1].nr_pages = 2, pe[1].offset = (uint64_t)page;
	cr_assert_eq(img_writer_open(fx->ctx, dir, IMG_KIND_PAGEMAP, PID, &w), 0);
	write_msg(fx, w, &ph);
	write_msg(fx, w, &pe[0]);
	write_msg(fx, w, &pe[1]);
	cr_assert_eq(img_writer_close(fx->ctx, w), 0);

	/* files */
	FsEntry fs = FS_ENTRY__INIT;
	fs.cwd = "/", fs.root = "/", fs.nr_fds = 2;
	FdEntry fd[2] = { FD_ENTRY__INIT, FD_ENTRY__INIT };
	fd[0].fd = 0, fd[0].file_id = 1;
	fd[1].fd = 3, fd[1].file_id = 2, fd[1].cloexec = 1;
	cr_assert_eq(img_writer_open(fx->ctx, dir, IMG_KIND_FILES, PID, &w), 0);
	write_msg(fx, w, &fs);
	write_msg(fx, w, &fd[0]);
	write_msg(fx, w, &fd[1]);
	cr_assert_eq(img_writer_close(fx->ctx, w), 0);

	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	inv.arch = (char *)img_host_arch();
	cr_assert_not_null(inv.arch);
	inv.page_size = (uint32_t)page, inv.kernel_release = "6.1.0-test", inv.boot_id = "boot-id";
	inv.root_pid = PID, inv.dump_time_ns = 123456789;
	cr_assert_eq(img_dir_finish(fx->ctx, dir, &inv), 0, "%s", snap_error(fx->ctx));
	cr_assert_eq(inv.n_files, 0, "the caller's files list is put back");
	cr_assert_null(inv.files);
}

static const char *const sample_files[] = { "core-42.img",    "files-42.img", "mm-42.img",
					    "pagemap-42.img", "pages-42.img", "pstree.img" };

static void open_sample(struct fixture *fx, struct img_set **set)
{
	cr_assert_eq(img_set_open(fx->ctx, fx->dir, set), 0, "%s", snap_error(fx->ctx));
}

/* img_set_open must fail and name @name. */
static void expect_set_rejects(struct fixture *fx, const char *name, const char *what)
{
	struct img_set *set = NULL;
	int r = img_set_open(fx->ctx, fx->dir, &set);

	if (r == 0)
		img_set_close(set);
	expect_error_names(fx, r, name, what);
}

Test(image, names)
{
	char name[IMG_NAME_MAX];
	int pid;

	img_name(name, IMG_KIND_INVENTORY, 5);
	cr_assert_str_eq(name, "inventory.img");
	img_name(name, IMG_KIND_PSTREE, 5);
	cr_assert_str_eq(name, "pstree.img");
	img_name(name, IMG_KIND_CORE, 123);
	cr_assert_str_eq(name, "core-123.img");
	img_name(name, IMG_KIND_MM, 5);
	cr_assert_str_eq(name, "mm-5.img");
	img_name(name, IMG_KIND_PAGEMAP, 5);
	cr_assert_str_eq(name, "pagemap-5.img");
	img_name(name, IMG_KIND_FILES, 5);
	cr_assert_str_eq(name, "files-5.img");
	img_name(name, IMG_KIND_PAGES, 2147483647);
	cr_assert_str_eq(name, "pages-2147483647.img");

	cr_assert_eq(img_name_parse("pages-2147483647.img", &pid), IMG_KIND_PAGES);
	cr_assert_eq(pid, 2147483647);
	cr_assert_eq(img_name_parse("core-7.img", &pid), IMG_KIND_CORE);
	cr_assert_eq(pid, 7);
	cr_assert_eq(img_name_parse("inventory.img", &pid), IMG_KIND_INVENTORY);
	cr_assert_eq(img_name_parse("pstree.img", NULL), IMG_KIND_PSTREE);
	const char *bad[] = { "core-0.img",    "core-07.img",
			      "core--7.img",   "core-2147483648.img",
			      "core-7.img.x",  "core-.img",
			      "../core-7.img", "core-7",
			      "x.img",	       "",
			      "pstree.img/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_lt(img_name_parse(bad[i], NULL), 0, "%s", bad[i]);

	cr_assert_null(img_kind_info(0));
	cr_assert_null(img_kind_info(99));
	cr_assert_eq(img_kind_info(IMG_KIND_MM)->first, &mm_entry__descriptor);
	cr_assert_eq(img_kind_info(IMG_KIND_MM)->rest, &vma_entry__descriptor);
	cr_assert_null(img_kind_info(IMG_KIND_INVENTORY)->rest);
	cr_assert_null(img_kind_info(IMG_KIND_PSTREE)->first);
	cr_assert_not(img_kind_info(IMG_KIND_PAGES)->framed);
}

Test(image, round_trip)
{
	struct fixture fx;
	struct img_set *set;
	struct img_reader *r;
	ProtobufCMessage *m;
	struct stat st;
	long page = sysconf(_SC_PAGESIZE);

	fx_init(&fx);
	write_sample(&fx);

	cr_assert_eq(stat(fx.dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(stat(path_of(&fx, "core-42.img"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(stat(path_of(&fx, "pages-42.img"), &st), 0);
	cr_assert_eq(st.st_size, 3 * page);

	open_sample(&fx, &set);
	const InventoryEntry *inv = img_set_inventory(set);
	cr_assert_eq(inv->format_version, IMG_FORMAT_VERSION);
	cr_assert_str_eq(inv->arch, img_host_arch());
	cr_assert_eq(inv->page_size, (uint32_t)page);
	cr_assert_str_eq(inv->kernel_release, "6.1.0-test");
	cr_assert_eq(inv->root_pid, PID);
	cr_assert_eq(inv->dump_time_ns, 123456789);
	cr_assert_eq(inv->n_files, 6);
	for (size_t i = 0; i < 6; i++)
		cr_assert_str_eq(inv->files[i]->name, sample_files[i], "files are listed sorted");

	/* pstree */
	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_PSTREE, 0, &r), 0, "%s", snap_error(fx.ctx));
	cr_assert_str_eq(img_reader_name(r), "pstree.img");
	cr_assert_eq(img_read_msg(fx.ctx, r, &pstree_entry__descriptor, &m), 1);
	PstreeEntry *ps = (PstreeEntry *)m;
	cr_assert_eq(ps->pid, PID);
	cr_assert_eq(ps->n_threads, 2);
	cr_assert_eq(ps->threads[1], PID + 1);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_msg(fx.ctx, r, &pstree_entry__descriptor, &m), 1);
	cr_assert_eq(((PstreeEntry *)m)->pid, PID + 10);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_msg(fx.ctx, r, &pstree_entry__descriptor, &m), 0);
	img_reader_close(r);

	/* core */
	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_CORE, PID, &r), 0, "%s", snap_error(fx.ctx));
	cr_assert_eq(img_read_one(fx.ctx, r, &task_core_entry__descriptor, &m), 0);
	TaskCoreEntry *tc = (TaskCoreEntry *)m;
	cr_assert_str_eq(tc->comm, "sample \"task\"\n");
	cr_assert_eq(tc->n_sigactions, 2);
	cr_assert_eq(tc->sigactions[0]->handler, 0x401000);
	cr_assert(tc->has_exit_signal);
	cr_assert_eq(tc->exit_signal, 17);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_msg(fx.ctx, r, &thread_core_entry__descriptor, &m), 1);
	ThreadCoreEntry *t = (ThreadCoreEntry *)m;
	cr_assert_eq(t->arch_case, THREAD_CORE_ENTRY__ARCH_X86);
	cr_assert_eq(t->x86->gpregs->ip, 0xdeadbeef);
	cr_assert_eq(t->x86->xsave.len, 4);
	cr_assert_eq(t->x86->xsave.data[2], 0xab);
	cr_assert_eq(t->rseq->signature, 0x53053053);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_msg(fx.ctx, r, &thread_core_entry__descriptor, &m), 1);
	t = (ThreadCoreEntry *)m;
	cr_assert_eq(t->arch_case, THREAD_CORE_ENTRY__ARCH_AARCH64);
	cr_assert_eq(t->aarch64->n_regs, 31);
	cr_assert_eq(t->aarch64->regs[2], 3);
	cr_assert_null(t->rseq);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_msg(fx.ctx, r, &thread_core_entry__descriptor, &m), 0);
	img_reader_close(r);

	/* mm, read generically */
	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_MM, PID, &r), 0, "%s", snap_error(fx.ctx));
	cr_assert_eq(img_reader_kind(r), IMG_KIND_MM);
	cr_assert_eq(img_read_next(fx.ctx, r, &m), 1);
	cr_assert_eq(m->descriptor, &mm_entry__descriptor);
	cr_assert_eq(((MmEntry *)m)->n_auxv, 4);
	cr_assert_str_eq(((MmEntry *)m)->exe, "/bin/true");
	protobuf_c_message_free_unpacked(m, NULL);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(img_read_next(fx.ctx, r, &m), 1);
		cr_assert_eq(m->descriptor, &vma_entry__descriptor);
		VmaEntry *v = (VmaEntry *)m;
		cr_assert_eq(v->kind, i == 0 ? VMA_KIND__VMA_FILE_PRIVATE : VMA_KIND__VMA_ANON_PRIVATE);
		cr_assert_eq(v->has_file_ino, i == 0);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	cr_assert_eq(img_read_next(fx.ctx, r, &m), 0);
	img_reader_close(r);

	/* pagemap and files: counts */
	enum img_kind kinds[] = { IMG_KIND_PAGEMAP, IMG_KIND_FILES };
	for (int k = 0; k < 2; k++) {
		int n = 0, ret;

		cr_assert_eq(img_reader_open(fx.ctx, set, kinds[k], PID, &r), 0, "%s", snap_error(fx.ctx));
		while ((ret = img_read_next(fx.ctx, r, &m)) == 1) {
			n++;
			protobuf_c_message_free_unpacked(m, NULL);
		}
		cr_assert_eq(ret, 0);
		cr_assert_eq(n, 3);
		img_reader_close(r);
	}

	/* pages */
	uint64_t size;
	int fd = img_set_open_pages(fx.ctx, set, "pages-42.img", &size);
	cr_assert_geq(fd, 0, "%s", snap_error(fx.ctx));
	cr_assert_eq(size, 3 * (uint64_t)page);
	uint8_t *buf = malloc(size);
	cr_assert_eq(pread(fd, buf, size, 0), (ssize_t)size);
	for (size_t i = 0; i < size; i++)
		cr_assert_eq(buf[i], page_byte(i));
	free(buf);
	close(fd);
	expect_error_names(&fx, img_set_open_pages(fx.ctx, set, "pages-43.img", &size), "pages-43.img",
			   "unlisted page file");

	/* not listed */
	expect_error_names(&fx, img_reader_open(fx.ctx, set, IMG_KIND_CORE, 43, &r), "core-43.img", "unlisted core");

	img_set_close(set);
	fx_fini(&fx);
}

Test(image, reader_misuse)
{
	struct fixture fx;
	struct img_set *set;
	struct img_reader *r;
	ProtobufCMessage *m;

	fx_init(&fx);
	write_sample(&fx);
	open_sample(&fx, &set);

	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_CORE, PID, &r), 0);
	expect_error_names(&fx, img_read_msg(fx.ctx, r, &thread_core_entry__descriptor, &m), "core-42.img",
			   "reading record 0 as the wrong message");
	img_reader_close(r);

	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_INVENTORY, 0, &r), 0);
	cr_assert_eq(img_read_one(fx.ctx, r, &inventory_entry__descriptor, &m), 0);
	protobuf_c_message_free_unpacked(m, NULL);
	cr_assert_eq(img_read_next(fx.ctx, r, &m), 0);
	img_reader_close(r);

	/* pstree has records only of one kind; read past the end with read_one */
	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_PSTREE, 0, &r), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(img_read_one(fx.ctx, r, &pstree_entry__descriptor, &m), 0);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	int ret = img_read_one(fx.ctx, r, &pstree_entry__descriptor, &m);
	cr_assert_not_null(strstr(snap_error(fx.ctx), "missing pstree_entry record"), "%s", snap_error(fx.ctx));
	expect_error_names(&fx, ret, "pstree.img", "read_one at the end");
	img_reader_close(r);

	img_set_close(set);
	fx_fini(&fx);
}

Test(image, writer_enforces_schema)
{
	struct fixture fx;
	struct img_dir *dir;
	struct img_writer *w;
	VmaEntry v = VMA_ENTRY__INIT;
	MmEntry mm = MM_ENTRY__INIT;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;

	fx_init(&fx);
	cr_assert_eq(img_dir_create(fx.ctx, fx.dir, &dir), 0);
	cr_assert_eq(img_writer_open(fx.ctx, dir, IMG_KIND_MM, 5, &w), 0);
	expect_error_names(&fx, img_write_msg(fx.ctx, w, &v.base), "mm-5.img", "vma first");
	expect_error_names(&fx, img_write_msg(fx.ctx, w, &mm.base), "mm-5.img", "required fields unset");
	mm.exe = "";
	cr_assert_eq(img_write_msg(fx.ctx, w, &mm.base), 0);
	cr_assert_eq(img_writer_close(fx.ctx, w), 0);
	cr_assert_lt(img_writer_open(fx.ctx, dir, IMG_KIND_MM, 5, &w), 0, "files are never written twice");
	snap_clear_error(fx.ctx);
	cr_assert_lt(img_writer_open(fx.ctx, dir, IMG_KIND_INVENTORY, 0, &w), 0);
	cr_assert_lt(img_writer_open(fx.ctx, dir, IMG_KIND_PAGES, 5, &w), 0);
	snap_clear_error(fx.ctx);
	/* An inventory without its required strings is refused, and then the dump is gone. */
	cr_assert_lt(img_dir_finish(fx.ctx, dir, &inv), 0);
	snap_clear_error(fx.ctx);
	cr_assert_eq(access(path_of(&fx, "mm-5.img"), F_OK), -1);
	cr_assert_eq(access(path_of(&fx, "inventory.img"), F_OK), -1);
	fx_fini(&fx);
}

Test(image, dir_create_and_abort)
{
	struct fixture fx;
	struct img_dir *dir;
	struct img_writer *w;
	PstreeEntry ps = PSTREE_ENTRY__INIT;
	struct stat st;

	fx_init(&fx);
	chmod(fx.dir, 0755);
	cr_assert_eq(img_dir_create(fx.ctx, fx.dir, &dir), 0);
	cr_assert_eq(stat(fx.dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700, "an existing directory is made private");
	cr_assert_eq(img_writer_open(fx.ctx, dir, IMG_KIND_PSTREE, 0, &w), 0);
	cr_assert_eq(img_write_msg(fx.ctx, w, &ps.base), 0);
	cr_assert_eq(img_writer_close(fx.ctx, w), 0);
	cr_assert_eq(access(path_of(&fx, "pstree.img"), F_OK), 0);
	img_dir_abort(dir);
	cr_assert_eq(access(path_of(&fx, "pstree.img"), F_OK), -1, "abort removes what it wrote");

	/* A fresh subdirectory is created 0700. */
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/sub", fx.dir);
	cr_assert_eq(img_dir_create(fx.ctx, sub, &dir), 0);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	img_dir_abort(dir);
	rmdir(sub);

	/* A directory holding a dump is refused. */
	write_sample(&fx);
	expect_error_names(&fx, img_dir_create(fx.ctx, fx.dir, &dir), fx.dir, "dir with an inventory");
	fx_fini(&fx);
}

Test(image, truncated_framed_file)
{
	struct fixture fx;
	size_t len;
	uint8_t *orig;

	fx_init(&fx);
	write_sample(&fx);
	orig = slurp(&fx, "pstree.img", &len);
	cr_assert_gt(len, 28);
	int dirfd = open(fx.dir, O_RDONLY | O_DIRECTORY);
	for (size_t n = 0; n < len; n++) {
		struct img_reader *r;
		int ret;

		spit(&fx, "pstree.img", orig, n);
		expect_set_rejects(&fx, "pstree.img", "truncated pstree.img");
		/* Without the inventory, the trailer alone must notice. */
		ret = img_reader_open_file(fx.ctx, dirfd, "pstree.img", NULL, &r);
		if (ret == 0)
			img_reader_close(r);
		expect_error_names(&fx, ret, "pstree.img", "truncated pstree.img, no inventory");
	}
	spit(&fx, "pstree.img", orig, len);
	struct img_set *set;
	open_sample(&fx, &set);
	img_set_close(set);
	close(dirfd);
	free(orig);
	fx_fini(&fx);
}

Test(image, truncated_pages_and_inventory)
{
	struct fixture fx;
	size_t len;
	uint8_t *orig;

	fx_init(&fx);
	write_sample(&fx);
	orig = slurp(&fx, "pages-42.img", &len);
	size_t cuts[] = { 0, 1, len / 2, len - 1 };
	for (size_t i = 0; i < 4; i++) {
		spit(&fx, "pages-42.img", orig, cuts[i]);
		expect_set_rejects(&fx, "pages-42.img", "truncated pages");
	}
	spit(&fx, "pages-42.img", orig, len);
	free(orig);

	orig = slurp(&fx, "inventory.img", &len);
	for (size_t n = 0; n < len; n++) {
		spit(&fx, "inventory.img", orig, n);
		expect_set_rejects(&fx, "inventory.img", "truncated inventory");
	}
	free(orig);
	fx_fini(&fx);
}

Test(image, flipped_byte_framed)
{
	struct fixture fx;
	size_t len;
	uint8_t *orig;
	int dirfd;

	fx_init(&fx);
	write_sample(&fx);
	dirfd = open(fx.dir, O_RDONLY | O_DIRECTORY);
	const char *names[] = { "core-42.img", "inventory.img" };
	for (int k = 0; k < 2; k++) {
		orig = slurp(&fx, names[k], &len);
		for (size_t i = 0; i < len; i++) {
			struct img_reader *r;
			int ret;

			orig[i] ^= 0xff;
			spit(&fx, names[k], orig, len);
			orig[i] ^= 0xff;
			expect_set_rejects(&fx, names[k], "flipped byte");
			ret = img_reader_open_file(fx.ctx, dirfd, names[k], NULL, &r);
			if (ret == 0)
				img_reader_close(r);
			expect_error_names(&fx, ret, names[k], "flipped byte, framing only");
		}
		spit(&fx, names[k], orig, len);
		free(orig);
	}
	close(dirfd);
	fx_fini(&fx);
}

Test(image, flipped_byte_pages)
{
	struct fixture fx;
	size_t len;
	uint8_t *orig;

	fx_init(&fx);
	write_sample(&fx);
	orig = slurp(&fx, "pages-42.img", &len);
	for (size_t i = 0; i < len; i += (i < 64 || i > len - 64) ? 1 : 397) {
		orig[i] ^= 0x01;
		spit(&fx, "pages-42.img", orig, len);
		orig[i] ^= 0x01;
		expect_set_rejects(&fx, "pages-42.img", "flipped page byte");
	}
	free(orig);
	fx_fini(&fx);
}

Test(image, missing_files)
{
	struct fixture fx;

	fx_init(&fx);
	write_sample(&fx);
	char moved[128];
	snprintf(moved, sizeof(moved), "%s.moved", fx.dir);
	cr_assert_eq(rename(path_of(&fx, "mm-42.img"), moved), 0);
	expect_set_rejects(&fx, "mm-42.img", "missing mm");
	cr_assert_eq(rename(moved, path_of(&fx, "mm-42.img")), 0);
	unlink(path_of(&fx, "pages-42.img"));
	expect_set_rejects(&fx, "pages-42.img", "missing pages");
	unlink(path_of(&fx, "inventory.img"));
	expect_set_rejects(&fx, "inventory.img", "missing inventory");
	fx_fini(&fx);
}

/* ---- Hand-built files, for damage that a correct trailer and inventory do not catch ---- */

struct bytes {
	uint8_t *p;
	size_t len;
};

static void put(struct bytes *b, const void *data, size_t len)
{
	b->p = realloc(b->p, b->len + len);
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void put32(struct bytes *b, uint32_t v)
{
	uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };

	put(b, le, 4);
}

static void put_record(struct bytes *b, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *tmp = malloc(n + 1);

	protobuf_c_message_pack(m, tmp);
	put32(b, (uint32_t)n);
	put(b, tmp, n);
	free(tmp);
}

static void put_header(struct bytes *b, uint32_t magic, uint32_t kind, uint32_t version)
{
	put32(b, magic);
	put32(b, kind);
	put32(b, version);
	put32(b, 0);
}

static void put_trailer(struct bytes *b)
{
	uint64_t d = img_digest(b->p, b->len);

	put32(b, IMG_TRAILER_MARK);
	put32(b, (uint32_t)d);
	put32(b, (uint32_t)(d >> 32));
}

/* Replaces file @name and lists its new size and digest in a new inventory.img, as if a dump had made it so. */
static void replace_listed(struct fixture *fx, const char *name, const struct bytes *file, const char *arch)
{
	InventoryEntry *inv;
	struct bytes ib = { 0 };
	int dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY);

	if (name)
		spit(fx, name, file->p, file->len);
	cr_assert_eq(img_inventory_load(fx->ctx, dirfd, &inv), 0, "%s", snap_error(fx->ctx));
	close(dirfd);
	for (size_t i = 0; name && i < inv->n_files; i++) {
		if (!strcmp(inv->files[i]->name, name)) {
			inv->files[i]->size = file->len;
			inv->files[i]->xxh3 = img_digest(file->p, file->len);
		}
	}
	char *own_arch = inv->arch;
	if (arch)
		inv->arch = (char *)arch;
	put_header(&ib, IMG_MAGIC, IMG_KIND_INVENTORY, IMG_FORMAT_VERSION);
	put_record(&ib, &inv->base);
	put_trailer(&ib);
	spit(fx, "inventory.img", ib.p, ib.len);
	free(ib.p);
	inv->arch = own_arch; /* ours to free, unlike @arch */
	inventory_entry__free_unpacked(inv, NULL);
}

static void sample_core_records(struct bytes *b)
{
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;

	tc.comm = "x";
	put_record(b, &tc.base);
}

Test(image, bad_framing_with_valid_digests)
{
	struct fixture fx;

	fx_init(&fx);
	write_sample(&fx);

	/* The replacement itself is accepted: only the damage below is what fails. */
	struct bytes good = { 0 };
	put_header(&good, IMG_MAGIC, IMG_KIND_CORE, IMG_FORMAT_VERSION);
	sample_core_records(&good);
	put_trailer(&good);
	replace_listed(&fx, "core-42.img", &good, NULL);
	struct img_set *set;
	open_sample(&fx, &set);
	img_set_close(set);
	free(good.p);

	struct {
		const char *what, *expect;
		uint32_t magic, kind, version, len;
		bool second;
	} cases[] = {
		{ "length beyond the end", "record 0", IMG_MAGIC, IMG_KIND_CORE, IMG_FORMAT_VERSION, 100, false },
		{ "second length beyond the end", "record 1", IMG_MAGIC, IMG_KIND_CORE, IMG_FORMAT_VERSION, 5, true },
		{ "oversized length", "limit", IMG_MAGIC, IMG_KIND_CORE, IMG_FORMAT_VERSION, IMG_MAX_RECORD + 1,
		  false },
		{ "wrong magic", "magic", 0x12345678, IMG_KIND_CORE, IMG_FORMAT_VERSION, 0, false },
		{ "wrong version", "version 2", IMG_MAGIC, IMG_KIND_CORE, 2, 0, false },
		{ "wrong kind", "holds a mm image", IMG_MAGIC, IMG_KIND_MM, IMG_FORMAT_VERSION, 0, false },
		{ "unknown kind", "unknown image kind", IMG_MAGIC, 77, IMG_FORMAT_VERSION, 0, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bytes b = { 0 };

		put_header(&b, cases[i].magic, cases[i].kind, cases[i].version);
		if (cases[i].second)
			sample_core_records(&b);
		if (cases[i].len) {
			put32(&b, cases[i].len);
			put(&b, "abc", 3);
		} else {
			sample_core_records(&b);
		}
		put_trailer(&b);
		replace_listed(&fx, "core-42.img", &b, NULL);
		struct img_set *s = NULL;
		int ret = img_set_open(fx.ctx, fx.dir, &s);
		cr_assert_lt(ret, 0, "%s: accepted", cases[i].what);
		cr_assert_not_null(strstr(snap_error(fx.ctx), cases[i].expect), "%s: \"%s\"", cases[i].what,
				   snap_error(fx.ctx));
		expect_error_names(&fx, ret, "core-42.img", cases[i].what);
		free(b.p);
	}

	/* A well-framed record that is not a valid message. */
	struct bytes b = { 0 };
	put_header(&b, IMG_MAGIC, IMG_KIND_CORE, IMG_FORMAT_VERSION);
	sample_core_records(&b);
	put32(&b, 3);
	put(&b, "\xff\xff\xff", 3);
	put_trailer(&b);
	replace_listed(&fx, "core-42.img", &b, NULL);
	free(b.p);
	open_sample(&fx, &set);
	struct img_reader *r;
	ProtobufCMessage *m;
	cr_assert_eq(img_reader_open(fx.ctx, set, IMG_KIND_CORE, PID, &r), 0, "%s", snap_error(fx.ctx));
	cr_assert_eq(img_read_one(fx.ctx, r, &task_core_entry__descriptor, &m), 0);
	protobuf_c_message_free_unpacked(m, NULL);
	int ret = img_read_msg(fx.ctx, r, &thread_core_entry__descriptor, &m);
	cr_assert_not_null(strstr(snap_error(fx.ctx), "record 1"), "%s", snap_error(fx.ctx));
	expect_error_names(&fx, ret, "core-42.img", "malformed record");
	img_reader_close(r);
	img_set_close(set);

	/* A second record in the inventory. */
	struct bytes ib = { 0 };
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	inv.format_version = IMG_FORMAT_VERSION, inv.arch = (char *)img_host_arch(), inv.page_size = 4096;
	inv.kernel_release = inv.boot_id = "";
	put_header(&ib, IMG_MAGIC, IMG_KIND_INVENTORY, IMG_FORMAT_VERSION);
	put_record(&ib, &inv.base);
	put_record(&ib, &inv.base);
	put_trailer(&ib);
	spit(&fx, "inventory.img", ib.p, ib.len);
	free(ib.p);
	expect_set_rejects(&fx, "inventory.img", "two inventory records");
	fx_fini(&fx);
}

Test(image, inventory_checks)
{
	struct fixture fx;

	fx_init(&fx);
	write_sample(&fx);
	replace_listed(&fx, NULL, NULL, "sparc64");
	struct img_set *s;
	int ret = img_set_open(fx.ctx, fx.dir, &s);
	cr_assert_not_null(strstr(snap_error(fx.ctx), "sparc64"), "%s", snap_error(fx.ctx));
	expect_error_names(&fx, ret, "inventory.img", "wrong arch");
	replace_listed(&fx, NULL, NULL, img_host_arch());
	open_sample(&fx, &s);
	img_set_close(s);

	/* Names that could leave the directory, or that are no image name. */
	const char *bad[] = { "../core-42.img", "..",	      ".", "", "sub/pages-1.img", "core-042.img",
			      "inventory.img",	"core-42.img" /* a duplicate */ };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int dirfd = open(fx.dir, O_RDONLY | O_DIRECTORY);
		InventoryEntry *inv;
		struct bytes ib = { 0 };

		cr_assert_eq(img_inventory_load(fx.ctx, dirfd, &inv), 0);
		close(dirfd);
		FileDigest extra = FILE_DIGEST__INIT;
		extra.name = (char *)bad[i];
		FileDigest **files = malloc((inv->n_files + 1) * sizeof(*files));
		memcpy(files, inv->files, inv->n_files * sizeof(*files));
		files[inv->n_files] = &extra;
		InventoryEntry copy = *inv;
		copy.n_files = inv->n_files + 1;
		copy.files = files;
		put_header(&ib, IMG_MAGIC, IMG_KIND_INVENTORY, IMG_FORMAT_VERSION);
		put_record(&ib, &copy.base);
		put_trailer(&ib);
		inventory_entry__free_unpacked(inv, NULL);
		free(files);
		/* Keep the good inventory to restore it after. */
		size_t glen;
		uint8_t *good = slurp(&fx, "inventory.img", &glen);
		spit(&fx, "inventory.img", ib.p, ib.len);
		free(ib.p);
		expect_set_rejects(&fx, "inventory.img", bad[i]);
		spit(&fx, "inventory.img", good, glen);
		free(good);
	}
	fx_fini(&fx);
}

/* ---- show ---- */

static char *show_to_string(struct fixture *fx, const char *path, int *ret)
{
	char tmpl[] = "/tmp/snap-test-show-XXXXXX";
	int fd = mkstemp(tmpl);
	struct stat st;
	char *out;

	cr_assert_geq(fd, 0);
	unlink(tmpl);
	*ret = snap_show(fx->ctx, path, fd);
	cr_assert_eq(fstat(fd, &st), 0);
	out = calloc(1, (size_t)st.st_size + 1);
	cr_assert_eq(pread(fd, out, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	return out;
}

/* Brackets balance outside strings, strings close, and no control byte is raw: sane JSON. */
static void check_json_shape(const char *s)
{
	char stack[64];
	int depth = 0;
	bool in_str = false;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (in_str) {
			cr_assert_geq(c, 0x20, "raw control byte in a string");
			if (c == '\\')
				s++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			cr_assert_lt(depth, 64);
			stack[depth++] = (char)c;
		} else if (c == '}' || c == ']') {
			cr_assert_gt(depth, 0, "unbalanced %c", c);
			cr_assert_eq(stack[--depth], c == '}' ? '{' : '[');
		}
	}
	cr_assert_not(in_str, "unterminated string");
	cr_assert_eq(depth, 0, "unbalanced brackets");
}

static void expect_in(const char *out, const char *needle)
{
	cr_assert_not_null(strstr(out, needle), "\"%s\" missing from output:\n%s", needle, out);
}

Test(show, directory)
{
	struct fixture fx;
	char *out;
	int ret;

	fx_init(&fx);
	write_sample(&fx);
	out = show_to_string(&fx, fx.dir, &ret);
	cr_assert_eq(ret, 0, "%s", snap_error(fx.ctx));
	check_json_shape(out);
	cr_assert_eq(out[0], '{');
	expect_in(out, "\"inventory.img\":{\"kind\":\"inventory\",\"records\":[");
	for (size_t i = 0; i < 6; i++) {
		char key[64];

		snprintf(key, sizeof(key), "\"%s\":{\"kind\":", sample_files[i]);
		expect_in(out, key);
	}
	/* stable order: inventory first, then by name */
	cr_assert_lt(strstr(out, "\"inventory.img\""), strstr(out, "\"core-42.img\""));
	cr_assert_lt(strstr(out, "\"core-42.img\""), strstr(out, "\"pstree.img\""));
	expect_in(out, "\"kind\":\"core\"");
	expect_in(out, "\"comm\":\"sample \\\"task\\\"\\n\"");
	expect_in(out, "\"comm\":\"w\xc3\xa9rker\\u00ff\"");
	expect_in(out, "\"xsave\":\"0001abff\"");
	expect_in(out, "\"x86\":{\"gpregs\":{");
	expect_in(out, "\"kind\":\"VMA_FILE_PRIVATE\"");
	expect_in(out, "\"cloexec\":true");
	expect_in(out, "\"auxv\":[6,4096,0,0]");
	expect_in(out, "\"threads\":[42,43]");
	expect_in(out, "\"threads\":[]");
	expect_in(out, "\"exit_signal\":17");
	expect_in(out, "\"file_ino\":1234");
	expect_in(out, "\"arch\":\"");
	expect_in(out, "\"name\":\"pages-42.img\"");
	expect_in(out, "\"pages-42.img\":{\"kind\":\"pages\",\"size\":");
	expect_in(out, "\"xxh3\":\"0x");
	/* absent optional fields and unset oneof members are not printed */
	cr_assert_null(strstr(out, "\"orig_x0\""));
	char *t0 = strstr(out, "\"tid\":42");
	cr_assert_not_null(t0);
	char *eol = strchr(t0, '\n');
	cr_assert_not_null(eol);
	*eol = '\0';
	cr_assert_null(strstr(t0, "aarch64"), "unset oneof member printed");
	cr_assert_null(strstr(t0, "altstack_sp"), "absent optional printed");
	free(out);
	fx_fini(&fx);
}

Test(show, single_files)
{
	struct fixture fx;
	char *out;
	int ret;

	fx_init(&fx);
	write_sample(&fx);
	out = show_to_string(&fx, path_of(&fx, "pages-42.img"), &ret);
	cr_assert_eq(ret, 0, "%s", snap_error(fx.ctx));
	expect_in(out, "{\"kind\":\"pages\",\"size\":");
	check_json_shape(out);
	free(out);

	out = show_to_string(&fx, path_of(&fx, "mm-42.img"), &ret);
	cr_assert_eq(ret, 0, "%s", snap_error(fx.ctx));
	check_json_shape(out);
	expect_in(out, "{\"kind\":\"mm\",\"records\":[\n{\"start_code\":4194304,");
	free(out);

	/* listed in the inventory: a file with a valid trailer but another digest is refused */
	size_t len;
	uint8_t *orig = slurp(&fx, "pstree.img", &len);
	struct bytes b = { 0 };
	put_header(&b, IMG_MAGIC, IMG_KIND_PSTREE, IMG_FORMAT_VERSION);
	put_trailer(&b);
	spit(&fx, "pstree.img", b.p, b.len);
	out = show_to_string(&fx, path_of(&fx, "pstree.img"), &ret);
	free(out);
	expect_error_names(&fx, ret, "pstree.img", "show of a replaced file");
	/* without the inventory, the same file is fine on its own */
	unlink(path_of(&fx, "inventory.img"));
	out = show_to_string(&fx, path_of(&fx, "pstree.img"), &ret);
	cr_assert_eq(ret, 0, "%s", snap_error(fx.ctx));
	cr_assert_str_eq(out, "{\"kind\":\"pstree\",\"records\":[]}\n");
	free(out);
	free(b.p);

	/* a corrupted one is not */
	orig[20] ^= 0x40;
	spit(&fx, "pstree.img", orig, len);
	out = show_to_string(&fx, path_of(&fx, "pstree.img"), &ret);
	free(out);
	expect_error_names(&fx, ret, "pstree.img", "show of a corrupted file");
	free(orig);

	/* and a directory without an inventory is no dump */
	out = show_to_string(&fx, fx.dir, &ret);
	free(out);
	expect_error_names(&fx, ret, "inventory.img", "show of an incomplete dump");
	fx_fini(&fx);
}
