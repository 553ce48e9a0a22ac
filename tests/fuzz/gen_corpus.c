/* Writes seed inputs for fuzz_image: every file of a small real dump, in each mode the target knows. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

/* Must match fuzz_image.c. */
#define MODE_INVENTORY 0x10
#define MODE_TRAILER   0x20

static const char *const names[] = {
	"inventory.img", "pstree.img",	   "core-1.img",	"mm-1.img",  "pagemap-1.img", "files-1.img",
	"pages-1.img",	 "open-files.img", "file-contents.img", "pipes.img", "file-data.img",
};

static int fail(snap_ctx *ctx, const char *what)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, snap_error(ctx));
	return 1;
}

static int write_dump(snap_ctx *ctx, const char *dir)
{
	long page = sysconf(_SC_PAGESIZE);
	struct img_dir *d;
	struct img_writer *w;
	struct img_pages_writer *pw;
	uint64_t off;
	uint8_t *pages;
	int r = 0;

	if (img_dir_create(ctx, dir, &d) < 0)
		return -1;

	int32_t threads[] = { 1, 2 };
	PstreeEntry ps = PSTREE_ENTRY__INIT;
	ps.pid = 1, ps.ppid = 0, ps.pgid = 1, ps.sid = 1, ps.n_threads = 2, ps.threads = threads;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_PSTREE, 0, &w);
	r = r ?: img_write_msg(ctx, w, &ps.base);
	r = r ?: img_writer_close(ctx, w);

	SigactionEntry sa = SIGACTION_ENTRY__INIT;
	SigactionEntry *sap = &sa;
	sa.sig = 10, sa.handler = 0x401234, sa.flags = 0x14000000, sa.restorer = 0x7f0000001000, sa.mask = 1;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	tc.comm = "seed", tc.umask = 022, tc.n_sigactions = 1, tc.sigactions = &sap, tc.personality = 0;
	tc.has_exit_signal = 1, tc.exit_signal = 17;
	X86Gpregs gp = X86_GPREGS__INIT;
	gp.ip = 0x401000, gp.sp = 0x7ffd0000, gp.cs = 0x33, gp.ss = 0x2b, gp.flags = 0x246;
	uint8_t xsave[64] = { 0x7f, 0x03 };
	X86Thread x86 = X86_THREAD__INIT;
	x86.gpregs = &gp, x86.xsave.len = sizeof(xsave), x86.xsave.data = xsave, x86.xcr0 = 7;
	RseqEntry rs = RSEQ_ENTRY__INIT;
	rs.addr = 0x7f0000002000, rs.len = 32, rs.signature = 0x53053053;
	ThreadCoreEntry t = THREAD_CORE_ENTRY__INIT;
	t.tid = 1, t.blocked = 0, t.rseq = &rs, t.comm = "seed", t.has_altstack_sp = 1, t.altstack_sp = 0x1000;
	t.arch_case = THREAD_CORE_ENTRY__ARCH_X86, t.x86 = &x86;
	uint64_t regs[31] = { 0 };
	uint8_t fpsimd[32] = { 0 };
	Aarch64Thread a = AARCH64_THREAD__INIT;
	a.n_regs = 31, a.regs = regs, a.sp = 0x7ffd0000, a.pc = 0x400000, a.fpsimd.len = 32, a.fpsimd.data = fpsimd;
	a.has_syscall_nr = 1, a.syscall_nr = -1;
	ThreadCoreEntry t2 = THREAD_CORE_ENTRY__INIT;
	t2.tid = 2, t2.comm = "seed-2", t2.arch_case = THREAD_CORE_ENTRY__ARCH_AARCH64, t2.aarch64 = &a;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_CORE, 1, &w);
	r = r ?: img_write_msg(ctx, w, &tc.base);
	r = r ?: img_write_msg(ctx, w, &t.base);
	r = r ?: img_write_msg(ctx, w, &t2.base);
	r = r ?: img_writer_close(ctx, w);

	uint64_t auxv[] = { 6, 4096, 0, 0 };
	MmEntry mm = MM_ENTRY__INIT;
	mm.start_code = 0x400000, mm.end_code = 0x401000, mm.brk = 0x600000, mm.n_auxv = 4, mm.auxv = auxv;
	mm.exe = "/bin/seed", mm.nr_vmas = 2;
	VmaEntry v1 = VMA_ENTRY__INIT, v2 = VMA_ENTRY__INIT;
	v1.start = 0x400000, v1.end = 0x401000, v1.kind = VMA_KIND__VMA_FILE_PRIVATE, v1.prot = 5, v1.flags = 2;
	v1.path = "/bin/seed", v1.has_file_dev = 1, v1.file_dev = 0x801, v1.has_file_ino = 1, v1.file_ino = 99;
	v1.has_file_size = 1, v1.file_size = 4096, v1.has_file_mtime_ns = 1, v1.file_mtime_ns = -1;
	v2.start = 0x7ffd0000, v2.end = 0x7ffd1000, v2.kind = VMA_KIND__VMA_ANON_PRIVATE, v2.prot = 3, v2.flags = 0x22;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_MM, 1, &w);
	r = r ?: img_write_msg(ctx, w, &mm.base);
	r = r ?: img_write_msg(ctx, w, &v1.base);
	r = r ?: img_write_msg(ctx, w, &v2.base);
	r = r ?: img_writer_close(ctx, w);

	pages = calloc(1, (size_t)page);
	if (!pages)
		return -1;
	memcpy(pages, "seed page", 9);
	r = r ?: img_pages_open(ctx, d, 1, &pw);
	r = r ?: img_pages_write(ctx, pw, pages, (size_t)page, &off);
	r = r ?: img_pages_close(ctx, pw);
	free(pages);

	PagemapHead ph = PAGEMAP_HEAD__INIT;
	ph.pages_file = "pages-1.img", ph.nr_pages = 1;
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;
	pe.vaddr = 0x7ffd0000, pe.nr_pages = 1, pe.offset = 0;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_PAGEMAP, 1, &w);
	r = r ?: img_write_msg(ctx, w, &ph.base);
	r = r ?: img_write_msg(ctx, w, &pe.base);
	r = r ?: img_writer_close(ctx, w);

	FsEntry fs = FS_ENTRY__INIT;
	fs.cwd = "/tmp", fs.root = "/", fs.nr_fds = 1;
	FdEntry fe = FD_ENTRY__INIT;
	fe.fd = 1, fe.file_id = 1, fe.cloexec = 1;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_FILES, 1, &w);
	r = r ?: img_write_msg(ctx, w, &fs.base);
	r = r ?: img_write_msg(ctx, w, &fe.base);
	r = r ?: img_writer_close(ctx, w);

	/* One file of most kinds, with the parts that point at each other (pipes, contents, peers). */
	RegFileEntry reg = REG_FILE_ENTRY__INIT;
	reg.path = "/tmp/out", reg.pos = 5, reg.has_size = 1, reg.size = 5;
	FileEntry f1 = FILE_ENTRY__INIT, f2 = FILE_ENTRY__INIT, f3 = FILE_ENTRY__INIT, f4 = FILE_ENTRY__INIT;
	f1.id = 1, f1.kind = FILE_KIND__FILE_REG, f1.flags = 01, f1.body_case = FILE_ENTRY__BODY_REG, f1.reg = &reg;
	f2.id = 2, f2.kind = FILE_KIND__FILE_PIPE, f2.body_case = FILE_ENTRY__BODY_PIPE_ID, f2.pipe_id = 77;
	uint8_t name[] = "\0seed";
	UnixMsgEntry um = UNIX_MSG_ENTRY__INIT;
	UnixMsgEntry *ump = &um;
	um.data.len = 3, um.data.data = (uint8_t *)"abc";
	UnixSkEntry u = UNIX_SK_ENTRY__INIT;
	u.ino = 10, u.type = 2, u.state = 7, u.has_name = 1, u.name.len = 5, u.name.data = name, u.n_queue = 1;
	u.queue = &ump;
	f3.id = 3, f3.kind = FILE_KIND__FILE_UNIX, f3.body_case = FILE_ENTRY__BODY_UNIX_SK, f3.unix_sk = &u;
	uint8_t lo[4] = { 127, 0, 0, 1 };
	TcpRepairEntry tr = TCP_REPAIR_ENTRY__INIT;
	tr.send_queue.len = 2, tr.send_queue.data = (uint8_t *)"hi", tr.unsent = 1, tr.mss = 65483;
	InetSkEntry in = INET_SK_ENTRY__INIT;
	in.family = 2, in.type = 1, in.protocol = 6, in.state = 1, in.src_addr.len = 4, in.src_addr.data = lo;
	in.src_port = 80, in.has_dst_addr = 1, in.dst_addr.len = 4, in.dst_addr.data = lo, in.has_dst_port = 1;
	in.dst_port = 5000, in.repair = &tr;
	f4.id = 4, f4.kind = FILE_KIND__FILE_INET, f4.body_case = FILE_ENTRY__BODY_INET_SK, f4.inet_sk = &in;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_OPEN_FILES, 0, &w);
	r = r ?: img_write_msg(ctx, w, &f1.base);
	r = r ?: img_write_msg(ctx, w, &f2.base);
	r = r ?: img_write_msg(ctx, w, &f3.base);
	r = r ?: img_write_msg(ctx, w, &f4.base);
	r = r ?: img_writer_close(ctx, w);

	PipeEntry pe1 = PIPE_ENTRY__INIT;
	pe1.id = 77, pe1.capacity = 65536, pe1.data.len = 4, pe1.data.data = (uint8_t *)"pipe";
	r = r ?: img_writer_open(ctx, d, IMG_KIND_PIPES, 0, &w);
	r = r ?: img_write_msg(ctx, w, &pe1.base);
	r = r ?: img_writer_close(ctx, w);

	FileDataRun run = FILE_DATA_RUN__INIT;
	FileDataRun *runp = &run;
	run.offset = 0, run.len = 4, run.data_off = 0;
	FileContentEntry ce = FILE_CONTENT_ENTRY__INIT;
	ce.id = 1, ce.size = 4, ce.mode = 0600, ce.n_runs = 1, ce.runs = &runp, ce.memfd_name = "seed";
	ce.has_seals = 1, ce.seals = 1;
	r = r ?: img_writer_open(ctx, d, IMG_KIND_FILE_CONTENTS, 0, &w);
	r = r ?: img_write_msg(ctx, w, &ce.base);
	r = r ?: img_writer_close(ctx, w);

	r = r ?: img_raw_open(ctx, d, IMG_KIND_FILE_DATA, 0, &pw);
	r = r ?: img_pages_write(ctx, pw, "data", 4, NULL);
	r = r ?: img_pages_close(ctx, pw);

	if (r < 0) {
		img_dir_abort(d);
		return r;
	}
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	inv.arch = (char *)(img_host_arch() ?: "unknown");
	inv.page_size = (uint32_t)page, inv.kernel_release = "6.1.0", inv.boot_id = "seed", inv.root_pid = 1;
	return img_dir_finish(ctx, d, &inv);
}

static int emit(const char *out, const char *name, unsigned mode, const uint8_t *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s-%02x", out, name, mode);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	fputc((int)mode, f);
	fwrite(buf, 1, len, f);
	return fclose(f);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/snap-fuzz-seeds-XXXXXX";
	snap_ctx *ctx;
	int ret = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	if (snap_ctx_new(&ctx) < 0 || !mkdtemp(dir))
		return 1;
	if (write_dump(ctx, dir) < 0)
		return fail(ctx, "writing the sample dump");
	for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		char path[512];
		struct stat st;
		uint8_t *buf;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
		if (stat(path, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1)) || !(f = fopen(path, "rb"))) {
			perror(path);
			return 1;
		}
		if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
			ret = 1;
		fclose(f);
		/* As written, with and without its inventory; and without the trailer, for the target to add. */
		for (unsigned inv = 0; inv < 2; inv++) {
			unsigned mode = k | (inv ? MODE_INVENTORY : 0);
			bool framed = img_kind_info(img_name_parse(names[k], NULL))->framed;

			if (emit(argv[1], names[k], mode, buf, (size_t)st.st_size) < 0)
				ret = 1;
			if (framed && emit(argv[1], names[k], mode | MODE_TRAILER, buf, (size_t)st.st_size - 12) < 0)
				ret = 1;
		}
		free(buf);
		unlink(path);
	}
	rmdir(dir);

	/* An inventory listing nothing: the one fuzzed file that can pass the whole of img_set_open. */
	struct img_dir *d;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	inv.arch = (char *)(img_host_arch() ?: "unknown");
	inv.page_size = (uint32_t)sysconf(_SC_PAGESIZE), inv.kernel_release = "", inv.boot_id = "";
	if (!mkdtemp(strcpy(dir, "/tmp/snap-fuzz-seeds-XXXXXX")) || img_dir_create(ctx, dir, &d) < 0 ||
	    img_dir_finish(ctx, d, &inv) < 0)
		return fail(ctx, "writing an empty dump");
	char path[512];
	struct stat st;
	uint8_t buf[256];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", dir, IMG_INVENTORY);
	if (stat(path, &st) < 0 || (size_t)st.st_size > sizeof(buf) || !(f = fopen(path, "rb")))
		return 1;
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		ret = 1;
	fclose(f);
	if (emit(argv[1], "inventory-empty.img", 0, buf, (size_t)st.st_size) < 0 ||
	    emit(argv[1], "inventory-empty.img", MODE_TRAILER, buf, (size_t)st.st_size - 12) < 0)
		ret = 1;
	unlink(path);
	rmdir(dir);
	snap_ctx_free(ctx);
	return ret;
}
