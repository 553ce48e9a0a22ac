/* Tests blob_relocate, the blobs generated at build time, and blobgen on good and bad ELF files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blob.h"
#include "parasite-blob.h"
#include "restorer-blob.h"

#define BLOBGEN	     SNAP_TEST_BUILD_DIR "/../blobgen"
#define PARASITE_ELF SNAP_TEST_BUILD_DIR "/../parasite/parasite.elf"
#define LIBSNAP_SRC  SNAP_TEST_SOURCE_DIR "/../libsnap"

extern char **environ;

static char tmpdir[] = "/tmp/test_blobgen.XXXXXX";
/* Paths handed out by tmp_path, freed with the directory so the sanitizer build sees no leak. */
static char *paths[128];
static int nr_paths;

static void make_tmpdir(void)
{
	char out[PATH_MAX];

	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	/* Outputs get a directory of their own so that "nothing left behind" is "directory empty". */
	snprintf(out, sizeof(out), "%s/out", tmpdir);
	cr_assert_eq(mkdir(out, 0755), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void remove_tmpdir(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	while (nr_paths)
		free(paths[--nr_paths]);
}

static char *tmp_path(const char *name)
{
	char *p;

	cr_assert_lt(nr_paths, 128);
	cr_assert_gt(asprintf(&p, "%s/%s", tmpdir, name), 0);
	paths[nr_paths++] = p;
	return p;
}

/*
 * Runs argv with stdout and stderr in log_path. Returns the exit status,
 * -ENOENT if the program does not exist, or -1 if it did not exit normally.
 */
static int run(char *const argv[], const char *log_path)
{
	posix_spawn_file_actions_t fa;
	int r, status;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static char *read_text(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	cr_assert_not_null(f, "cannot open %s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void *read_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct stat st;
	void *p;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fstat(fileno(f), &st), 0);
	p = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(p);
	cr_assert_eq(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = (size_t)st.st_size;
	return p;
}

/* Fills argv from a space-separated flag list as meson passes it; returns the next free slot. */
static int split_flags(char **argv, int argc, char *flags)
{
	char *save = NULL, *tok;

	for (tok = strtok_r(flags, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	return argc;
}

static void need_cc(void)
{
	char *argv[] = { "cc", "--version", NULL };

	if (run(argv, tmp_path("cc.log")) == -ENOENT)
		cr_skip_test("no cc on this machine");
}

static void cc_ok(char **argv)
{
	int r = run(argv, tmp_path("cc.log"));

	cr_assert_eq(r, 0, "%s failed (%d):\n%s", argv[0], r, read_text(tmp_path("cc.log")));
}

static int out_entries(void)
{
	DIR *d = opendir(tmp_path("out"));
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* blobgen on input must fail with a message naming input and containing what, and write nothing. */
static void expect_reject(const char *input, const char *what)
{
	char out_c[PATH_MAX], out_h[PATH_MAX];
	char *argv[] = { BLOBGEN, "--name", "tiny", (char *)input, out_c, out_h, NULL };
	const char *msg;
	int r;

	snprintf(out_c, sizeof(out_c), "%s/out/tiny-blob.c", tmpdir);
	snprintf(out_h, sizeof(out_h), "%s/out/tiny-blob.h", tmpdir);
	r = run(argv, tmp_path("blobgen.log"));
	msg = read_text(tmp_path("blobgen.log"));
	cr_assert_eq(r, 1, "blobgen on %s exited with %d, not 1:\n%s", input, r, msg);
	cr_assert(strstr(msg, input), "message does not name %s:\n%s", input, msg);
	if (what)
		cr_assert(strstr(msg, what), "message does not say '%s':\n%s", what, msg);
	cr_assert_eq(out_entries(), 0, "blobgen left files in %s/out", tmpdir);
}

TestSuite(blob, .init = make_tmpdir, .fini = remove_tmpdir);

Test(blob, relocate_copies_zero_fills_and_relocates)
{
	static const uint8_t bytes[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
	/* One pointer in the stored bytes, one in bss, one unaligned. */
	static const struct blob_reloc relocs[] = { { 8, 0x10 }, { 40, 0 }, { 49, 63 } };
	const struct blob_desc b = {
		.name = "synthetic",
		.bytes = bytes,
		.file_size = sizeof(bytes),
		.mem_size = 64,
		.relocs = relocs,
		.nr_relocs = 3,
	};
	const uint64_t load = 0x7f1234567000ull;
	uint8_t dst[64 + 16];
	uint64_t v;
	size_t i;

	/* Garbage first: blob_relocate must not rely on fresh memory being zero. */
	memset(dst, 0xa5, sizeof(dst));
	blob_relocate(&b, dst, load);

	for (i = 0; i < 8; i++)
		cr_assert_eq(dst[i], bytes[i]);
	memcpy(&v, dst + 8, 8);
	cr_assert_eq(v, load + 0x10);
	for (i = 16; i < 20; i++)
		cr_assert_eq(dst[i], bytes[i]);
	for (i = 20; i < 40; i++)
		cr_assert_eq(dst[i], 0, "bss byte %zu is 0x%x", i, dst[i]);
	memcpy(&v, dst + 40, 8);
	cr_assert_eq(v, load);
	cr_assert_eq(dst[48], 0);
	memcpy(&v, dst + 49, 8);
	cr_assert_eq(v, load + 63);
	for (i = 57; i < 64; i++)
		cr_assert_eq(dst[i], 0);
	for (i = 64; i < sizeof(dst); i++)
		cr_assert_eq(dst[i], 0xa5, "byte %zu past mem_size was written", i);
}

Test(blob, map_size_is_whole_pages)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct blob_desc b = { .mem_size = 4096 };

	cr_assert_eq(blob_map_size(&b), page);
	b.mem_size = page + 4096;
	cr_assert_eq(blob_map_size(&b), 2 * page);
	b.mem_size = 1;
	cr_assert_eq(blob_map_size(&b), page);
}

static void check_generated(const struct blob_desc *b, const char *name, size_t file_size, size_t mem_size,
			    uint64_t entry)
{
	const uint64_t load = 0x5500000000ull;
	uint8_t *buf;
	size_t i;

	cr_assert_str_eq(b->name, name);
	cr_assert_eq(b->file_size, file_size);
	cr_assert_eq(b->mem_size, mem_size);
	cr_assert_geq(b->mem_size, b->file_size);
	cr_assert_eq(b->mem_size % 4096, 0, "%s: mem_size is not whole 4 KiB pages", name);
	cr_assert_lt(entry, b->file_size, "%s: entry 0x%lx is not in the stored image", name, (unsigned long)entry);
	cr_assert(b->nr_relocs == 0 || b->relocs);
	cr_assert(b->file_size == 0 || b->bytes);

	for (i = 0; i < b->nr_relocs; i++) {
		cr_assert_leq(b->relocs[i].offset + 8, b->mem_size, "%s: relocation %zu at 0x%lx is outside the image",
			      name, i, (unsigned long)b->relocs[i].offset);
		cr_assert_eq(b->relocs[i].offset % 8, 0, "%s: relocation %zu is unaligned", name, i);
		cr_assert_geq(b->relocs[i].addend, 0);
		cr_assert_leq((uint64_t)b->relocs[i].addend, b->mem_size);
	}

	buf = malloc(b->mem_size);
	cr_assert_not_null(buf);
	blob_relocate(b, buf, load);
	for (i = 0; i < b->nr_relocs; i++) {
		uint64_t v;

		memcpy(&v, buf + b->relocs[i].offset, 8);
		cr_assert_eq(v, load + (uint64_t)b->relocs[i].addend);
	}
	free(buf);
}

Test(blob, generated_parasite)
{
	check_generated(&parasite_blob, "parasite", PARASITE_BLOB_FILE_SIZE, PARASITE_BLOB_MEM_SIZE,
			PARASITE_BLOB_OFF_parasite_entry);
}

Test(blob, generated_restorer)
{
	check_generated(&restorer_blob, "restorer", RESTORER_BLOB_FILE_SIZE, RESTORER_BLOB_MEM_SIZE,
			RESTORER_BLOB_OFF_restorer_entry);
}

Test(blob, blobgen_rejects_bad_arguments)
{
	char *no_name[] = { BLOBGEN, PARASITE_ELF, "a.c", "a.h", NULL };
	char *bad_name[] = {
		BLOBGEN, "--name", "not-an-identifier", PARASITE_ELF, tmp_path("out/a.c"), tmp_path("out/a.h"), NULL
	};

	cr_assert_eq(run(no_name, tmp_path("log")), 1);
	cr_assert(strstr(read_text(tmp_path("log")), "usage"));
	cr_assert_eq(run(bad_name, tmp_path("log")), 1);
	cr_assert(strstr(read_text(tmp_path("log")), "not-an-identifier"));
	cr_assert_eq(out_entries(), 0);
}

Test(blob, blobgen_rejects_missing_and_non_elf)
{
	static const char text[] = "#!/bin/sh\necho this is not an ELF file\n";

	expect_reject(tmp_path("does-not-exist.elf"), "cannot open");
	write_bytes(tmp_path("empty"), "", 0);
	expect_reject(tmp_path("empty"), "not an ELF");
	write_bytes(tmp_path("script"), text, sizeof(text) - 1);
	expect_reject(tmp_path("script"), "not an ELF");
	expect_reject(tmpdir, NULL);
}

Test(blob, blobgen_rejects_truncated_elf)
{
	size_t len, cuts[8], i;
	uint8_t *elf = read_bytes(PARASITE_ELF, &len);

	/* Cut inside the ident, the header, the program headers, the segments and the section headers. */
	cuts[0] = 4;
	cuts[1] = 20;
	cuts[2] = 63;
	cuts[3] = 100;
	cuts[4] = len / 4;
	cuts[5] = len / 2;
	cuts[6] = len - 64;
	cuts[7] = len - 1;
	for (i = 0; i < 8; i++) {
		write_bytes(tmp_path("cut.elf"), elf, cuts[i]);
		/* Below 100 bytes the ELF header itself is cut, and libelf words that its own way. */
		expect_reject(tmp_path("cut.elf"), cuts[i] >= 100 ? "truncated" : NULL);
	}
	/* The untruncated file is accepted, so the rejections above are due to the cuts. */
	write_bytes(tmp_path("whole.elf"), elf, len);
	{
		char *argv[] = {
			BLOBGEN, "--name", "parasite", tmp_path("whole.elf"), tmp_path("out/p.c"), tmp_path("out/p.h"),
			NULL
		};

		cr_assert_eq(run(argv, tmp_path("log")), 0, "%s", read_text(tmp_path("log")));
	}
	free(elf);
}

Test(blob, blobgen_rejects_symbol_relocations)
{
	static const char src[] = "extern int outside;\nint *tiny_get(void) { return &outside; }\n";
	char *cc[] = { "cc", "-shared", "-fPIC", "-O2", "-o", tmp_path("lib.so"), tmp_path("lib.c"), NULL };

	need_cc();
	write_bytes(tmp_path("lib.c"), src, sizeof(src) - 1);
	cc_ok(cc);
	/* R_X86_64_GLOB_DAT or R_AARCH64_GLOB_DAT: the GOT slot of the undefined symbol. */
	expect_reject(tmp_path("lib.so"), "_GLOB_DAT");
}

Test(blob, blobgen_rejects_program_with_interpreter)
{
	static const char src[] = "int main(void) { return 0; }\n";
	char *cc[] = { "cc", "-fpie", "-pie", "-o", tmp_path("prog"), tmp_path("prog.c"), NULL };

	need_cc();
	write_bytes(tmp_path("prog.c"), src, sizeof(src) - 1);
	cc_ok(cc);
	expect_reject(tmp_path("prog"), "PT_INTERP");
}

/*
 * The blob as the real ones are built: a pointer table (RELATIVE relocations),
 * a string pointer, bss, and exported functions.
 */
static const char tiny_src[] = "static int one(void) { return 11; }\n"
			       "static int two(void) { return 31; }\n"
			       "static int (*table[])(void) = { one, two };\n"
			       "static const char *const names[] = { \"one\", \"two\" };\n"
			       "static unsigned char space[10000];\n"
			       "int tiny_counter = 5;\n"
			       "int tiny_call(int i) { return table[i](); }\n"
			       "const char *tiny_name(int i) { return names[i]; }\n"
			       "void tiny_space_set(int i, int v) { space[i] = (unsigned char)v; }\n"
			       "int tiny_space_sum(void)\n"
			       "{\n"
			       "	int s = 0;\n"
			       "	for (unsigned int i = 0; i < sizeof(space); i++)\n"
			       "		s += space[i];\n"
			       "	return s;\n"
			       "}\n";

/* Maps the blob twice, writes it through one view and runs it through the other, as infect does. */
static const char driver_src[] =
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"#include <sys/mman.h>\n"
	"#include <unistd.h>\n"
	"#include \"tiny-blob.h\"\n"
	"int main(void)\n"
	"{\n"
	"	size_t len = blob_map_size(&tiny_blob);\n"
	"	int fd = memfd_create(\"tiny\", 0);\n"
	"	if (fd < 0 || ftruncate(fd, (off_t)len))\n"
	"		return 10;\n"
	"	unsigned char *rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);\n"
	"	unsigned char *rx = mmap(NULL, len, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);\n"
	"	if (rw == MAP_FAILED || rx == MAP_FAILED)\n"
	"		return 11;\n"
	"	memset(rw, 0xa5, len);\n"
	"	blob_relocate(&tiny_blob, rw, (uint64_t)(uintptr_t)rx);\n"
	"	int (*call)(int) = (int (*)(int))(rx + TINY_BLOB_OFF_tiny_call);\n"
	"	const char *(*name)(int) = (const char *(*)(int))(rx + TINY_BLOB_OFF_tiny_name);\n"
	"	int (*space_sum)(void) = (int (*)(void))(rx + TINY_BLOB_OFF_tiny_space_sum);\n"
	"	if (tiny_blob.nr_relocs < 4)\n"
	"		return 12;\n"
	"	if (call(0) != 11 || call(1) != 31)\n"
	"		return 13;\n"
	"	if (strcmp(name(0), \"one\") || strcmp(name(1), \"two\"))\n"
	"		return 14;\n"
	"	if (space_sum() != 0)\n"
	"		return 15;\n"
	"	if (*(int *)(rx + TINY_BLOB_OFF_tiny_counter) != 5)\n"
	"		return 16;\n"
	"	puts(\"ok\");\n"
	"	return 0;\n"
	"}\n";

Test(blob, blobgen_output_compiles_and_runs)
{
	char cflags[] = SNAP_TEST_BLOB_CFLAGS, ldflags[] = SNAP_TEST_BLOB_LDFLAGS;
	char *blob_cc[64] = { "cc" }, *blobgen[] = { BLOBGEN,
						     "--name",
						     "tiny",
						     tmp_path("tiny.elf"),
						     tmp_path("out/tiny-blob.c"),
						     tmp_path("out/tiny-blob.h"),
						     NULL };
	char *driver_cc[] = { "cc",
			      "-std=gnu11",
			      "-D_GNU_SOURCE",
			      "-Wall",
			      "-Wextra",
			      "-Werror",
			      "-I",
			      LIBSNAP_SRC,
			      "-I",
			      tmp_path("out"),
			      "-o",
			      tmp_path("driver"),
			      tmp_path("driver.c"),
			      tmp_path("out/tiny-blob.c"),
			      LIBSNAP_SRC "/blob.c",
			      NULL };
	char *driver[] = { tmp_path("driver"), NULL };
	size_t len1, len2;
	char *h, *c1, *c2;
	int n = 1, r;

	need_cc();
	write_bytes(tmp_path("tiny.c"), tiny_src, sizeof(tiny_src) - 1);
	write_bytes(tmp_path("driver.c"), driver_src, sizeof(driver_src) - 1);

	n = split_flags(blob_cc, n, cflags);
	n = split_flags(blob_cc, n, ldflags);
	/* Without an entry symbol ld leaves an undefined _start behind, which blobgen rejects. */
	blob_cc[n++] = "-Wl,-e,tiny_call";
	blob_cc[n++] = "-o";
	blob_cc[n++] = tmp_path("tiny.elf");
	blob_cc[n++] = tmp_path("tiny.c");
	blob_cc[n] = NULL;
	cr_assert_lt(n, 64);
	cc_ok(blob_cc);

	r = run(blobgen, tmp_path("blobgen.log"));
	cr_assert_eq(r, 0, "blobgen failed:\n%s", read_text(tmp_path("blobgen.log")));
	h = read_text(tmp_path("out/tiny-blob.h"));
	cr_assert(strstr(h, "#define TINY_BLOB_OFF_tiny_call 0x"), "%s", h);
	cr_assert(strstr(h, "#define TINY_BLOB_MEM_SIZE 0x"), "%s", h);
	cr_assert(strstr(h, "extern const struct blob_desc tiny_blob;"), "%s", h);
	cr_assert_null(strstr(h, "_one"), "a static function without the prefix was exported:\n%s", h);
	/* Only the two outputs: the temporary files are gone. */
	cr_assert_eq(out_entries(), 2);

	/* The same input must give the same output, or every build would recompile the engine. */
	c1 = read_bytes(tmp_path("out/tiny-blob.c"), &len1);
	cr_assert_eq(run(blobgen, tmp_path("blobgen.log")), 0);
	c2 = read_bytes(tmp_path("out/tiny-blob.c"), &len2);
	cr_assert(len1 == len2 && !memcmp(c1, c2, len1));
	free(c1);
	free(c2);

	cc_ok(driver_cc);
	r = run(driver, tmp_path("driver.log"));
	cr_assert_eq(r, 0, "the relocated blob misbehaved (exit %d):\n%s", r, read_text(tmp_path("driver.log")));
}
