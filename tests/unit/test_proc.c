/* Unit tests of the /proc parsers on fixed samples, plus live checks against the test process itself. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

/* A read-only stream over @len bytes of @s (which may hold NULs). */
static FILE *text_n(const char *s, size_t len)
{
	FILE *f = fmemopen((void *)s, len, "r");

	cr_assert_not_null(f, "fmemopen: %s", strerror(errno));
	return f;
}

static FILE *text(const char *s)
{
	return text_n(s, strlen(s));
}

/* Parses @s as maps/smaps text; returns the parser's result. */
static int parse_maps_text_n(const char *s, size_t len, struct proc_vma_list *out, int *bad_line)
{
	FILE *f = text_n(s, len);
	int r = proc_parse_maps(f, out, bad_line);

	fclose(f);
	return r;
}

static int parse_maps_text(const char *s, struct proc_vma_list *out, int *bad_line)
{
	return parse_maps_text_n(s, strlen(s), out, bad_line);
}

/* The per-VMA lines smaps prints before VmFlags on 6.x kernels. */
#define SMAPS_KEYS(kb)                    \
	"Size:               " kb " kB\n" \
	"KernelPageSize:        4 kB\n"   \
	"MMUPageSize:           4 kB\n"   \
	"Rss:                " kb " kB\n" \
	"Pss:                " kb " kB\n" \
	"Pss_Dirty:             0 kB\n"   \
	"Shared_Clean:          0 kB\n"   \
	"Shared_Dirty:          0 kB\n"   \
	"Private_Clean:      " kb " kB\n" \
	"Private_Dirty:         0 kB\n"   \
	"Referenced:         " kb " kB\n" \
	"Anonymous:             0 kB\n"   \
	"KSM:                   0 kB\n"   \
	"LazyFree:              0 kB\n"   \
	"AnonHugePages:         0 kB\n"   \
	"ShmemPmdMapped:        0 kB\n"   \
	"FilePmdMapped:         0 kB\n"   \
	"Shared_Hugetlb:        0 kB\n"   \
	"Private_Hugetlb:       0 kB\n"   \
	"Swap:                  0 kB\n"   \
	"SwapPss:               0 kB\n"   \
	"Locked:                0 kB\n"   \
	"THPeligible:           0\n"      \
	"ProtectionKey:         0\n"

static const char smaps_sample[] =
	"55aa58a31000-55aa58a33000 r--p 00000000 fe:00 247498                     "
	"/usr/bin/head\n" SMAPS_KEYS(
		"   8") "VmFlags: rd mr mw me \n"
			"55aa58a33000-55aa58a39000 r-xp 00002000 fe:00 247498               "
			"      /usr/bin/head\n" SMAPS_KEYS("  24") "VmFlags: rd ex mr mw me \n"
								   "55aa86d95000-55aa86db6000 rw-p 00000000 00:00 0    "
								   "                      [heap]\n" SMAPS_KEYS(" 132") "VmFlags: rd wr mr mw me ac \n"
														       "7fce095bc000-7fce095bf000 rw-p 00000000 00:00 0 \n" SMAPS_KEYS("  12") "VmFlags: rd wr mr mw me ac nr \n"
																							       "7fce095c0000-7fce095c2000 rw-s 00000000 00:01 4099                       /memfd:jit (deleted)\n" SMAPS_KEYS("   8") "VmFlags: rd wr sh mr mw me ms \n"
																																						    "7fce095c2000-7fce095c3000 r--p 1a2b3c000 103:0a 1234                     /home/user/My Files/data  set.bin\n" SMAPS_KEYS("   4") "VmFlags: rd mr mw me sr \n"
																																																						      "7fce095c3000-7fce095c4000 rw-p 00000000 fe:00 5678                       /tmp/new\\012line\n" SMAPS_KEYS("   4") "VmFlags: rd wr mr mw me dc dd wf \n"
																																																																					"7fce095c4000-7fce095c8000 rw-p 00000000 00:00 0                          [anon:jit cache]\n" SMAPS_KEYS("  16") "VmFlags: rd wr mr mw me ac hg mg lo xx sl \n"
																																																																																			 "7fce095c8000-7fce095c9000 rw-s 00000000 00:01 6                          [anon_shmem:ring]\n" SMAPS_KEYS(
																																																																																				 "   4") "VmFlags: rd wr sh mr mw me ms nh rr um uw \n"
																																																																																					 "7fed2ab6f000-7fed2ab73000 r--p 00000000 00:00 0                          [vvar]\n" SMAPS_KEYS(
																																																																																						 "   0") "VmFlags: rd mr pf io de dd \n"
																																																																																							 "7fed2ab73000-7fed2ab75000 r--p 00000000 00:00 0                          [vvar_vclock]\n" SMAPS_KEYS("   0") "VmFlags: rd mr pf io de dd \n"
																																																																																																				       "7fed2ab75000-7fed2ab77000 r-xp 00000000 00:00 0                          [vdso]\n" SMAPS_KEYS(
																																																																																																					       "   8") "VmFlags: rd ex mr mw me de \n"
																																																																																																						       "7ffee52a7000-7ffee52c8000 rw-p 00000000 00:00 0                          [stack]\n" SMAPS_KEYS("  20") "VmFlags: rd wr mr mw me gd ac \n"
																																																																																																																			       "7fff00000000-7fff00200000 rw-s 00000000 00:0f 31337                      /anon_hugepage (deleted)\n" SMAPS_KEYS(
																																																																																																																				       "2048") "VmFlags: rd wr sh mr mw me ms de ht \n"
																																																																																																																					       "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n" SMAPS_KEYS(
																																																																																																																						       "   0") "VmFlags: ex \n";

struct want_vma {
	uint64_t start, end;
	uint32_t prot;
	bool shared;
	uint64_t pgoff;
	uint32_t major, minor;
	uint64_t ino;
	const char *path;
	bool deleted;
	uint32_t vmflags;
};

#define R PROT_READ
#define W PROT_WRITE
#define X PROT_EXEC

static const struct want_vma smaps_want[] = {
	{ 0x55aa58a31000, 0x55aa58a33000, R, false, 0, 0xfe, 0, 247498, "/usr/bin/head", false, 0 },
	{ 0x55aa58a33000, 0x55aa58a39000, R | X, false, 0x2000, 0xfe, 0, 247498, "/usr/bin/head", false, 0 },
	{ 0x55aa86d95000, 0x55aa86db6000, R | W, false, 0, 0, 0, 0, "[heap]", false, 0 },
	{ 0x7fce095bc000, 0x7fce095bf000, R | W, false, 0, 0, 0, 0, NULL, false, VMF_NORESERVE },
	{ 0x7fce095c0000, 0x7fce095c2000, R | W, true, 0, 0, 1, 4099, "/memfd:jit", true, VMF_SHARED | VMF_MAYSHARE },
	{ 0x7fce095c2000, 0x7fce095c3000, R, false, 0x1a2b3c000, 0x103, 0xa, 1234, "/home/user/My Files/data  set.bin",
	  false, VMF_SEQREAD },
	{ 0x7fce095c3000, 0x7fce095c4000, R | W, false, 0, 0xfe, 0, 5678, "/tmp/new\nline", false,
	  VMF_DONTFORK | VMF_DONTDUMP | VMF_WIPEONFORK },
	{ 0x7fce095c4000, 0x7fce095c8000, R | W, false, 0, 0, 0, 0, "[anon:jit cache]", false,
	  VMF_HUGEPAGE | VMF_MERGEABLE | VMF_LOCKED },
	{ 0x7fce095c8000, 0x7fce095c9000, R | W, true, 0, 0, 1, 6, "[anon_shmem:ring]", false,
	  VMF_SHARED | VMF_MAYSHARE | VMF_NOHUGEPAGE | VMF_RANDREAD | VMF_UFFD_MISSING | VMF_UFFD_WP },
	{ 0x7fed2ab6f000, 0x7fed2ab73000, R, false, 0, 0, 0, 0, "[vvar]", false, VMF_PFNMAP | VMF_IO | VMF_DONTDUMP },
	{ 0x7fed2ab73000, 0x7fed2ab75000, R, false, 0, 0, 0, 0, "[vvar_vclock]", false,
	  VMF_PFNMAP | VMF_IO | VMF_DONTDUMP },
	{ 0x7fed2ab75000, 0x7fed2ab77000, R | X, false, 0, 0, 0, 0, "[vdso]", false, 0 },
	{ 0x7ffee52a7000, 0x7ffee52c8000, R | W, false, 0, 0, 0, 0, "[stack]", false, VMF_GROWSDOWN },
	{ 0x7fff00000000, 0x7fff00200000, R | W, true, 0, 0, 0xf, 31337, "/anon_hugepage", true,
	  VMF_SHARED | VMF_MAYSHARE | VMF_HUGETLB },
	{ 0xffffffffff600000, 0xffffffffff601000, X, false, 0, 0, 0, 0, "[vsyscall]", false, 0 },
};

#define N_WANT (sizeof(smaps_want) / sizeof(smaps_want[0]))

static void check_vma(const struct proc_vma *v, const struct want_vma *w, size_t i, bool with_flags)
{
	cr_expect_eq(v->start, w->start, "vma %zu start %#lx", i, (unsigned long)v->start);
	cr_expect_eq(v->end, w->end, "vma %zu end %#lx", i, (unsigned long)v->end);
	cr_expect_eq(v->prot, w->prot, "vma %zu prot %u", i, v->prot);
	cr_expect_eq(v->shared, w->shared, "vma %zu shared", i);
	cr_expect_eq(v->pgoff, w->pgoff, "vma %zu pgoff %#lx", i, (unsigned long)v->pgoff);
	cr_expect_eq(v->dev_major, w->major, "vma %zu major %#x", i, v->dev_major);
	cr_expect_eq(v->dev_minor, w->minor, "vma %zu minor %#x", i, v->dev_minor);
	cr_expect_eq(v->ino, w->ino, "vma %zu ino %lu", i, (unsigned long)v->ino);
	if (w->path)
		cr_expect(v->path && !strcmp(v->path, w->path), "vma %zu path \"%s\", want \"%s\"", i,
			  v->path ? v->path : "(null)", w->path);
	else
		cr_expect_null(v->path, "vma %zu has a path, want none", i);
	cr_expect_eq(v->deleted, w->deleted, "vma %zu deleted", i);
	cr_expect_eq(v->vmflags, with_flags ? w->vmflags : 0, "vma %zu vmflags %#x", i, v->vmflags);
}

Test(maps, smaps_sample_every_field)
{
	struct proc_vma_list l;
	int bad = -1;

	cr_assert_eq(parse_maps_text(smaps_sample, &l, &bad), 0, "bad line %d", bad);
	cr_assert_eq(bad, 0);
	cr_assert_eq(l.nr, N_WANT, "got %zu VMAs", l.nr);
	for (size_t i = 0; i < N_WANT; i++)
		check_vma(&l.v[i], &smaps_want[i], i, true);
	proc_vma_list_free(&l);
	cr_assert_eq(l.nr, 0);
	cr_assert_null(l.v);
}

/* The same areas as plain maps: no key lines, so no flags. */
Test(maps, plain_maps_has_no_vmflags)
{
	char *maps = malloc(sizeof(smaps_sample));
	const char *p = smaps_sample;
	char *o = maps;
	struct proc_vma_list l;
	int bad;

	/* Keep only VMA header lines (they start with a lowercase hex digit). */
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = (size_t)(nl - p) + 1;

		if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) {
			memcpy(o, p, n);
			o += n;
		}
		p += n;
	}
	*o = '\0';
	cr_assert_eq(parse_maps_text(maps, &l, &bad), 0, "bad line %d", bad);
	cr_assert_eq(l.nr, N_WANT);
	for (size_t i = 0; i < N_WANT; i++)
		check_vma(&l.v[i], &smaps_want[i], i, false);
	proc_vma_list_free(&l);
	free(maps);
}

Test(maps, last_line_without_newline)
{
	struct proc_vma_list l;
	int bad;

	cr_assert_eq(parse_maps_text("1000-2000 r--p 00000000 fe:00 12 /bin/x\n"
				     "3000-4000 rw-p 00000000 00:00 0",
				     &l, &bad),
		     0);
	cr_assert_eq(l.nr, 2);
	cr_expect_eq(l.v[1].start, 0x3000);
	cr_expect_eq(l.v[1].end, 0x4000);
	cr_expect_null(l.v[1].path);
	proc_vma_list_free(&l);
}

Test(maps, empty_input_is_an_empty_list)
{
	FILE *f = fopen("/dev/null", "re");
	struct proc_vma_list l = { .nr = 99 };
	int bad = -1;

	cr_assert_not_null(f);
	cr_assert_eq(proc_parse_maps(f, &l, &bad), 0);
	cr_expect_eq(l.nr, 0);
	cr_expect_eq(bad, 0);
	proc_vma_list_free(&l);
	fclose(f);
}

/* A backslash that is not the kernel's "\012" is part of the name (memfd names are arbitrary). */
Test(maps, only_newline_escape_is_decoded)
{
	struct proc_vma_list l;
	int bad;

	cr_assert_eq(
		parse_maps_text("1000-2000 rw-s 00000000 00:01 7 /memfd:a\\101\\01\\\\012z\\012 (deleted)\n", &l, &bad),
		0);
	cr_assert_eq(l.nr, 1);
	cr_expect_str_eq(l.v[0].path, "/memfd:a\\101\\01\\\nz\n");
	cr_expect(l.v[0].deleted);
	proc_vma_list_free(&l);
}

Test(maps, deleted_suffix_only_at_end)
{
	struct proc_vma_list l;
	int bad;

	cr_assert_eq(parse_maps_text("1000-2000 r--p 00000000 fe:00 9 /a (deleted)/b\n"
				     "2000-3000 r--p 00000000 fe:00 9 / (deleted)\n",
				     &l, &bad),
		     0);
	cr_assert_eq(l.nr, 2);
	cr_expect_str_eq(l.v[0].path, "/a (deleted)/b");
	cr_expect_not(l.v[0].deleted);
	cr_expect_str_eq(l.v[1].path, "/");
	cr_expect(l.v[1].deleted);
	proc_vma_list_free(&l);
}

Test(maps, path_longer_than_read_chunk)
{
	size_t n = 600 * 1024;
	const char *head = "1000-2000 r--p 00000000 fe:00 9 /";
	char *s = malloc(strlen(head) + n + 64);
	struct proc_vma_list l;
	int bad;

	strcpy(s, head);
	memset(s + strlen(head), 'p', n);
	strcpy(s + strlen(head) + n, "\n3000-4000 rw-p 00000000 00:00 0 [heap]\n");
	cr_assert_eq(parse_maps_text(s, &l, &bad), 0, "bad line %d", bad);
	cr_assert_eq(l.nr, 2);
	cr_expect_eq(strlen(l.v[0].path), n + 1);
	cr_expect_str_eq(l.v[1].path, "[heap]");
	proc_vma_list_free(&l);
	free(s);
}

/* Many VMAs so that lines straddle the reader's chunk boundaries. */
Test(maps, many_vmas_across_chunks)
{
	const size_t n = 30000;
	size_t cap = n * 200, len = 0;
	char *s = malloc(cap);
	struct proc_vma_list l;
	int bad;

	for (size_t i = 0; i < n; i++) {
		uint64_t a = 0x10000000ull + i * 0x2000;

		len += (size_t)snprintf(s + len, cap - len, "%lx-%lx %s %08zx fe:01 %zu /lib/f%zu.so\nRss: 4 kB\n%s",
					(unsigned long)a, (unsigned long)a + 0x1000, i & 1 ? "rw-p" : "r-xs", i, i + 7,
					i, i % 3 ? "VmFlags: rd sh\n" : "");
	}
	cr_assert_eq(parse_maps_text_n(s, len, &l, &bad), 0, "bad line %d", bad);
	cr_assert_eq(l.nr, n);
	for (size_t i = 0; i < n; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/lib/f%zu.so", i);
		cr_assert_eq(l.v[i].start, 0x10000000ull + i * 0x2000, "vma %zu", i);
		cr_assert_eq(l.v[i].end, l.v[i].start + 0x1000, "vma %zu", i);
		cr_assert_eq(l.v[i].prot, i & 1 ? (uint32_t)(R | W) : (uint32_t)(R | X), "vma %zu", i);
		cr_assert_eq(l.v[i].shared, !(i & 1), "vma %zu", i);
		cr_assert_eq(l.v[i].pgoff, i, "vma %zu", i);
		cr_assert_eq(l.v[i].ino, i + 7, "vma %zu", i);
		cr_assert_str_eq(l.v[i].path, path, "vma %zu", i);
		cr_assert_eq(l.v[i].vmflags, i % 3 ? (uint32_t)VMF_SHARED : 0u, "vma %zu", i);
	}
	proc_vma_list_free(&l);
	free(s);
}

static void expect_bad(const char *s, size_t len, int line)
{
	struct proc_vma_list l = { .nr = 77 };
	int bad = -1;
	int r = parse_maps_text_n(s, len, &l, &bad);

	cr_expect_eq(r, -EINVAL, "r=%d for input \"%s\"", r, s);
	cr_expect_eq(bad, line, "bad line %d, want %d, for input \"%s\"", bad, line, s);
	cr_expect_eq(l.nr, 0, "list not empty after failure");
	cr_expect_null(l.v, "list not empty after failure");
}

#define GOOD_VMA "1000-2000 r--p 00000000 fe:00 12 /bin/x\nRss: 4 kB\nVmFlags: rd\n"

Test(maps, malformed_lines)
{
	const struct {
		const char *s;
		int line;
	} cases[] = {
		{ "Rss:   4 kB\n" GOOD_VMA, 1 },					   /* key before any VMA */
		{ GOOD_VMA "3000-4000 rwzp 00000000 00:00 0\n", 4 },			   /* bad perm letter */
		{ GOOD_VMA "3000-4000 rw-x 00000000 00:00 0\n", 4 },			   /* bad share letter */
		{ GOOD_VMA "3000-4000 rw- 00000000 00:00 0\n", 4 },			   /* perms too short */
		{ GOOD_VMA "3000 4000 rw-p 00000000 00:00 0\n", 4 },			   /* no '-' in range */
		{ GOOD_VMA "4000-3000 rw-p 00000000 00:00 0\n", 4 },			   /* end before start */
		{ GOOD_VMA "3000-3000 rw-p 00000000 00:00 0\n", 4 },			   /* empty range */
		{ GOOD_VMA "3g00-4000 rw-p 00000000 00:00 0\n", 4 },			   /* not hex */
		{ GOOD_VMA "3000-4000 rw-p 00000000 00:00\n", 4 },			   /* no inode */
		{ GOOD_VMA "3000-4000 rw-p 00000000 0000 0\n", 4 },			   /* no ':' in device */
		{ GOOD_VMA "3000-4000 rw-p 0000zz00 00:00 0\n", 4 },			   /* offset not hex */
		{ GOOD_VMA "3000-4000 rw-p 00000000 00:00 0x1\n", 4 },			   /* inode not decimal */
		{ GOOD_VMA "3000-4000 rw-p 00000000 00:00 99999999999999999999999\n", 4 }, /* inode overflow */
		{ GOOD_VMA "10000000000000000-10000000000000001 rw-p 0 00:00 0\n", 4 },	   /* 17 hex digits */
		{ GOOD_VMA "\n" GOOD_VMA, 4 },						   /* empty line */
		{ GOOD_VMA "Rss 4 kB\n", 4 },						   /* key without ':' */
		{ GOOD_VMA "VmFlags\n", 4 },						   /* lone word */
		{ GOOD_VMA " Rss: 4 kB\n", 4 },						   /* leading blank */
		{ GOOD_VMA "-1000-2000 r--p 00000000 fe:00 12\n", 4 },			   /* leading '-' */
		{ GOOD_VMA GOOD_VMA "garbage\n", 7 },					   /* plain text */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_bad(cases[i].s, strlen(cases[i].s), cases[i].line);
}

Test(maps, nul_byte_in_path_is_malformed)
{
	static const char s[] = GOOD_VMA "3000-4000 r--p 00000000 fe:00 12 /bin/a\0b\n";

	expect_bad(s, sizeof(s) - 1, 4);
}

Test(maps, vmflags_codes)
{
	cr_expect_eq(proc_parse_vmflags(""), 0);
	cr_expect_eq(proc_parse_vmflags("   "), 0);
	cr_expect_eq(proc_parse_vmflags("rd wr ex mr mw me ac"), 0);
	cr_expect_eq(proc_parse_vmflags("gd"), VMF_GROWSDOWN);
	cr_expect_eq(proc_parse_vmflags("gd sh ms dd dc hg nh mg lo io pf wf sr rr nr ht um uw "),
		     VMF_GROWSDOWN | VMF_SHARED | VMF_MAYSHARE | VMF_DONTDUMP | VMF_DONTFORK | VMF_HUGEPAGE |
			     VMF_NOHUGEPAGE | VMF_MERGEABLE | VMF_LOCKED | VMF_IO | VMF_PFNMAP | VMF_WIPEONFORK |
			     VMF_SEQREAD | VMF_RANDREAD | VMF_NORESERVE | VMF_HUGETLB | VMF_UFFD_MISSING | VMF_UFFD_WP);
	/* Unknown and longer codes are skipped, not mistaken for known prefixes. */
	cr_expect_eq(proc_parse_vmflags("ss sl bt er dw de ar sf mm zz gdx hgg s h"), 0);
	cr_expect_eq(proc_parse_vmflags("\tsh\t\tdd"), VMF_SHARED | VMF_DONTDUMP);
}

/* Fields 4..52 hold 1000 + field number unless a test needs a particular value. */
static const char stat_sample[] =
	"4242 (a) (b c) S "				     /* 1 pid, 2 comm, 3 state */
	"101 102 103 34816 -1 4194560 "			     /* 4 ppid .. 9 flags */
	"1010 1011 1012 1013 1014 1015 1016 1017 1018 1019 " /* 10..19 */
	"3 0 55015 3133440 380 18446744073709551615 "	     /* 20 num_threads .. 25 rsslim */
	"94810468839424 94810468859305 140727476429008 "     /* 26 start_code, 27 end_code, 28 start_stack */
	"1029 1030 0 0 0 0 0 0 0 "			     /* 29..37 */
	"17 1 0 0 0 0 0 "				     /* 38 exit_signal .. 44 */
	"94810468875312 94810468876928 94811031773184 "	     /* 45 start_data, 46 end_data, 47 start_brk */
	"140727476435592 140727476435612 140727476435613 140727476436971 " /* 48..51 arg/env */
	"256\n";							   /* 52 exit_code */

Test(stat, every_field)
{
	struct proc_stat st;

	cr_assert_eq(proc_parse_stat(stat_sample, &st), 0);
	cr_expect_eq(st.pid, 4242);
	cr_expect_str_eq(st.comm, "a) (b c");
	cr_expect_eq(st.state, 'S');
	cr_expect_eq(st.ppid, 101);
	cr_expect_eq(st.pgrp, 102);
	cr_expect_eq(st.session, 103);
	cr_expect_eq(st.tty_nr, 34816);
	cr_expect_eq(st.flags, 4194560ul);
	cr_expect_eq(st.num_threads, 3);
	cr_expect_eq(st.starttime, 55015ull);
	cr_expect_eq(st.start_code, 94810468839424ul);
	cr_expect_eq(st.end_code, 94810468859305ul);
	cr_expect_eq(st.start_stack, 140727476429008ul);
	cr_expect_eq(st.exit_signal, 17);
	cr_expect_eq(st.start_data, 94810468875312ul);
	cr_expect_eq(st.end_data, 94810468876928ul);
	cr_expect_eq(st.start_brk, 94811031773184ul);
	cr_expect_eq(st.arg_start, 140727476435592ul);
	cr_expect_eq(st.arg_end, 140727476435612ul);
	cr_expect_eq(st.env_start, 140727476435613ul);
	cr_expect_eq(st.env_end, 140727476436971ul);
	cr_expect_eq(st.exit_code, 256);
}

Test(stat, comm_with_parens_spaces_and_newline)
{
	char buf[1024];
	struct proc_stat st;
	const char *rest = strchr(stat_sample, ')') + strlen(") (b c)");

	snprintf(buf, sizeof(buf), "7 ()) ((\n x)%s", rest);
	cr_assert_eq(proc_parse_stat(buf, &st), 0);
	cr_expect_str_eq(st.comm, ")) ((\n x");
	cr_expect_eq(st.state, 'S');
	cr_expect_eq(st.exit_code, 256);

	snprintf(buf, sizeof(buf), "8 ()%s", rest);
	cr_assert_eq(proc_parse_stat(buf, &st), 0);
	cr_expect_str_eq(st.comm, "");
}

Test(stat, long_comm_is_truncated)
{
	char buf[1024], comm[200];
	struct proc_stat st;
	const char *rest = strchr(stat_sample, ')') + strlen(") (b c)");

	memset(comm, 'k', 150);
	comm[150] = '\0';
	snprintf(buf, sizeof(buf), "9 (%s)%s", comm, rest);
	cr_assert_eq(proc_parse_stat(buf, &st), 0);
	cr_expect_eq(strlen(st.comm), sizeof(st.comm) - 1);
	cr_expect_eq(st.ppid, 101);
}

Test(stat, extra_trailing_fields_are_accepted)
{
	char buf[1024];
	struct proc_stat st;

	snprintf(buf, sizeof(buf), "%.*s 53 54\n", (int)strlen(stat_sample) - 1, stat_sample);
	cr_assert_eq(proc_parse_stat(buf, &st), 0);
	cr_expect_eq(st.exit_code, 256);
}

Test(stat, malformed)
{
	char buf[1024];
	struct proc_stat st;
	const char *rest = strchr(stat_sample, ')') + strlen(") (b c)");
	const char *cases[] = {
		"",
		"4242",
		"4242 (cat",
		"4242 cat) S 1",
		"x (cat) S 1",
		"4242 (cat) S 1 2 3\n", /* too few fields */
		"4242 (cat)S 101",
		"4242 (cat) SS 101",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(proc_parse_stat(cases[i], &st), -EINVAL, "case %zu \"%s\"", i, cases[i]);

	/* A non-number deep in the line. */
	snprintf(buf, sizeof(buf), "4242 (x)%s", rest);
	*strstr(buf, "94810468859305") = 'z';
	cr_expect_eq(proc_parse_stat(buf, &st), -EINVAL);
	/* Cut after field 51. */
	snprintf(buf, sizeof(buf), "4242 (x)%s", rest);
	*strrchr(buf, ' ') = '\0';
	cr_expect_eq(proc_parse_stat(buf, &st), -EINVAL);
}

static const char status_sample[] = "Name:\ta) (b c\n"
				    "Umask:\t0027\n"
				    "State:\tS (sleeping)\n"
				    "Tgid:\t4242\n"
				    "Ngid:\t0\n"
				    "Pid:\t4243\n"
				    "PPid:\t101\n"
				    "TracerPid:\t99\n"
				    "Uid:\t1000\t1001\t1002\t1003\n"
				    "Gid:\t2000\t2001\t2002\t4294967295\n"
				    "FDSize:\t256\n"
				    "Groups:\t \n"
				    "NStgid:\t4242\t17\t1\n"
				    "NSpid:\t4243\t18\t2\n"
				    "NSpgid:\t4242\t17\t1\n"
				    "NSsid:\t3669\t0\t0\n"
				    "Kthread:\t0\n"
				    "VmPeak:\t    3060 kB\n"
				    "VmRSS:\t    1764 kB\n"
				    "untag_mask:\t0xffffffffffffffff\n"
				    "Threads:\t7\n"
				    "SigQ:\t0/96365\n"
				    "SigPnd:\t0000000000000100\n"
				    "ShdPnd:\t0000000000004000\n"
				    "SigBlk:\tfffffffe7ffbfeff\n"
				    "SigIgn:\t0000000000001000\n"
				    "SigCgt:\t0000000180014a07\n"
				    "CapInh:\t0000000000000001\n"
				    "CapPrm:\t000001fffeffffff\n"
				    "CapEff:\t000001fffefffffe\n"
				    "CapBnd:\t000001ffffffffff\n"
				    "CapAmb:\t0000000000000400\n"
				    "NoNewPrivs:\t0\n"
				    "Seccomp:\t2\n"
				    "Speculation_Store_Bypass:\tvulnerable\n"
				    "Cpus_allowed_list:\t0-1\n"
				    "voluntary_ctxt_switches:\t12\n"
				    "nonvoluntary_ctxt_switches:\t1\n";

static int parse_status_text(const char *s, struct proc_status *st)
{
	FILE *f = text(s);
	int r = proc_parse_status(f, st);

	fclose(f);
	return r;
}

Test(status, every_field)
{
	struct proc_status st;

	cr_assert_eq(parse_status_text(status_sample, &st), 0);
	cr_expect_eq(st.tgid, 4242);
	cr_expect_eq(st.pid, 4243);
	cr_expect_eq(st.ppid, 101);
	cr_expect_eq(st.tracer_pid, 99);
	cr_expect(st.has_umask);
	cr_expect_eq(st.umask, 027);
	cr_expect_eq(st.uid[0], 1000);
	cr_expect_eq(st.uid[1], 1001);
	cr_expect_eq(st.uid[2], 1002);
	cr_expect_eq(st.uid[3], 1003);
	cr_expect_eq(st.gid[0], 2000);
	cr_expect_eq(st.gid[1], 2001);
	cr_expect_eq(st.gid[2], 2002);
	cr_expect_eq(st.gid[3], 4294967295u);
	cr_expect_eq(st.threads, 7);
	cr_expect_eq(st.sig_pnd, 0x100ull);
	cr_expect_eq(st.shd_pnd, 0x4000ull);
	cr_expect_eq(st.sig_blk, 0xfffffffe7ffbfeffull);
	cr_expect_eq(st.sig_ign, 0x1000ull);
	cr_expect_eq(st.sig_cgt, 0x180014a07ull);
	cr_expect_eq(st.cap_inh, 1ull);
	cr_expect_eq(st.cap_prm, 0x1fffeffffffull);
	cr_expect_eq(st.cap_eff, 0x1fffefffffeull);
	cr_expect_eq(st.cap_bnd, 0x1ffffffffffull);
	cr_expect_eq(st.cap_amb, 0x400ull);
	cr_expect_eq(st.nspid_levels, 3);
	cr_expect_eq(st.state, 'S');
}

/* Replaces the line starting with @key in the sample (or drops it if @line is NULL). */
static char *status_with(const char *key, const char *line)
{
	char *s = malloc(sizeof(status_sample) + 256);
	const char *at = strstr(status_sample, key);
	const char *eol;

	cr_assert_not_null(at, "no %s in the sample", key);
	eol = strchr(at, '\n') + 1;
	sprintf(s, "%.*s%s%s", (int)(at - status_sample), status_sample, line ? line : "", eol);
	return s;
}

Test(status, umask_is_optional)
{
	char *s = status_with("Umask:", NULL);
	struct proc_status st;

	cr_assert_eq(parse_status_text(s, &st), 0);
	cr_expect_not(st.has_umask);
	cr_expect_eq(st.umask, 0);
	cr_expect_eq(st.pid, 4243);
	free(s);
}

Test(status, one_nspid_level)
{
	char *s = status_with("NSpid:", "NSpid:\t4243\n");
	struct proc_status st;

	cr_assert_eq(parse_status_text(s, &st), 0);
	cr_expect_eq(st.nspid_levels, 1);
	free(s);
}

Test(status, malformed)
{
	const struct {
		const char *key, *line;
	} cases[] = {
		{ "SigBlk:", NULL },				    /* required field missing */
		{ "Pid:", NULL },				    /* required field missing */
		{ "NSpid:", NULL },				    /* required field missing */
		{ "Uid:", "Uid:\t1000\t1001\t1002\n" },		    /* three ids */
		{ "Gid:", "Gid:\t1\t2\t3\t4\t5\n" },		    /* five ids */
		{ "Uid:", "Uid:\t1000\t1001\t1002\t4294967296\n" }, /* does not fit */
		{ "Umask:", "Umask:\t0028\n" },			    /* not octal */
		{ "SigCgt:", "SigCgt:\t00000001800g4a07\n" },	    /* not hex */
		{ "CapEff:", "CapEff:\t10000000000000000\n" },	    /* 17 digits */
		{ "Tgid:", "Tgid:\t-1\n" },
		{ "Pid:", "Pid:\t\n" },
		{ "NSpid:", "NSpid:\t\n" },
		{ "NSpid:", "NSpid:\t1 x\n" },
		{ "State:", "State:\n" },
		{ "Threads:", "Threads:\t7 kB\n" },
		{ "Kthread:", "no colon here\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = status_with(cases[i].key, cases[i].line);
		struct proc_status st;

		cr_expect_eq(parse_status_text(s, &st), -EINVAL, "case %zu (%s)", i, cases[i].key);
		free(s);
	}
}

static int parse_fdinfo_text(const char *s, struct proc_fdinfo *fi)
{
	FILE *f = text(s);
	int r = proc_parse_fdinfo(f, fi);

	fclose(f);
	return r;
}

Test(fdinfo, regular_file)
{
	struct proc_fdinfo fi;

	cr_assert_eq(parse_fdinfo_text("pos:\t1234567890123\nflags:\t0100002\nmnt_id:\t24\nino:\t3\n", &fi), 0);
	cr_expect_eq(fi.pos, 1234567890123ull);
	cr_expect_eq(fi.flags, 0100002u);
	cr_expect_eq(fi.mnt_id, 24);
	cr_expect_eq(fi.ino, 3u);
}

Test(fdinfo, eventfd_with_extra_lines)
{
	struct proc_fdinfo fi;

	cr_assert_eq(parse_fdinfo_text("pos:\t0\n"
				       "flags:\t02000002\n"
				       "mnt_id:\t17\n"
				       "ino:\t1038\n"
				       "eventfd-count:                3\n"
				       "eventfd-id: 1\n"
				       "eventfd-semaphore: 0\n",
				       &fi),
		     0);
	cr_expect_eq(fi.pos, 0u);
	cr_expect_eq(fi.flags, 02000002u);
	cr_expect_eq(fi.mnt_id, 17);
	cr_expect_eq(fi.ino, 1038u);
}

/* epoll and inotify lines carry "pos:" and "ino:" inside them; those are not ours. */
Test(fdinfo, epoll_and_inotify_lines_do_not_leak)
{
	struct proc_fdinfo fi;

	cr_assert_eq(parse_fdinfo_text("pos:\t5\n"
				       "flags:\t02\n"
				       "mnt_id:\t17\n"
				       "ino:\t1038\n"
				       "tfd:        3 events:       19 data:                3  pos:0 ino:40e sdev:10\n"
				       "inotify wd:1 ino:7 sdev:fe00000 mask:fff ignored_mask:0\n"
				       "lock:\t1: POSIX  ADVISORY  WRITE 5332 fe:00:3 0 EOF\n",
				       &fi),
		     0);
	cr_expect_eq(fi.pos, 5u);
	cr_expect_eq(fi.flags, 02u);
	cr_expect_eq(fi.ino, 1038u);
}

Test(fdinfo, ino_is_optional)
{
	struct proc_fdinfo fi;

	cr_assert_eq(parse_fdinfo_text("pos:\t7\nflags:\t0\nmnt_id:\t1\n", &fi), 0);
	cr_expect_eq(fi.pos, 7u);
	cr_expect_eq(fi.ino, 0u);
}

Test(fdinfo, malformed)
{
	const char *cases[] = {
		"flags:\t02\nmnt_id:\t17\n",		      /* no pos */
		"pos:\t0\nmnt_id:\t17\n",		      /* no flags */
		"pos:\t0\nflags:\t02\n",		      /* no mnt_id */
		"pos:\tabc\nflags:\t02\nmnt_id:\t17\n",	      /* pos not a number */
		"pos:\t0\nflags:\t09\nmnt_id:\t17\n",	      /* flags not octal */
		"pos:\t0\nflags:\t02\nmnt_id:\t-3\n",	      /* negative mnt_id */
		"pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\tx\n", /* ino not a number */
		"",
	};
	struct proc_fdinfo fi;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!*cases[i]) {
			FILE *f = fopen("/dev/null", "re");

			cr_expect_eq(proc_parse_fdinfo(f, &fi), -EINVAL, "empty fdinfo");
			fclose(f);
			continue;
		}
		cr_expect_eq(parse_fdinfo_text(cases[i], &fi), -EINVAL, "case %zu", i);
	}
}

Test(auxv, round_trip_stops_after_at_null)
{
	const unsigned long words[] = { AT_PAGESZ, 4096, AT_ENTRY, 0x401000, AT_RANDOM, ~0ul, AT_NULL, 0, 55, 66 };
	unsigned char raw[sizeof(words) + 1];
	uint64_t *vals;
	size_t nr;

	cr_assert_eq(proc_parse_auxv(words, sizeof(words), &vals, &nr), 0);
	cr_assert_eq(nr, 8);
	for (size_t i = 0; i < nr; i++)
		cr_expect_eq(vals[i], (uint64_t)words[i], "value %zu", i);
	free(vals);

	/* An unaligned copy parses the same. */
	memcpy(raw + 1, words, sizeof(words));
	cr_assert_eq(proc_parse_auxv(raw + 1, sizeof(words), &vals, &nr), 0);
	cr_assert_eq(nr, 8);
	cr_expect_eq(vals[5], (uint64_t)~0ul);
	free(vals);

	/* Just AT_NULL. */
	cr_assert_eq(proc_parse_auxv(words + 6, 2 * sizeof(unsigned long), &vals, &nr), 0);
	cr_expect_eq(nr, 2);
	cr_expect_eq(vals[0], 0u);
	free(vals);
}

Test(auxv, malformed)
{
	const unsigned long words[] = { AT_PAGESZ, 4096, AT_ENTRY, 0x401000, AT_NULL, 0 };
	uint64_t *vals = (uint64_t *)0x1;
	size_t nr = 99;

	cr_expect_eq(proc_parse_auxv(words, 4 * sizeof(unsigned long), &vals, &nr), -EINVAL); /* no AT_NULL */
	cr_expect_eq(proc_parse_auxv(words, sizeof(words) - 1, &vals, &nr), -EINVAL);	      /* torn */
	cr_expect_eq(proc_parse_auxv(words, sizeof(words) - sizeof(unsigned long), &vals, &nr), -EINVAL);
	cr_expect_eq(proc_parse_auxv(words, 0, &vals, &nr), -EINVAL);
	cr_expect_eq(proc_parse_auxv(words + 4, sizeof(unsigned long), &vals, &nr), -EINVAL); /* half a pair */
	/* Outputs are untouched on failure. */
	cr_expect_eq(vals, (uint64_t *)0x1);
	cr_expect_eq(nr, 99);
}

/* Live checks against the test process itself. */

static struct snap_ctx *new_ctx(void)
{
	snap_ctx *ctx;

	cr_assert_eq(snap_ctx_new(&ctx), 0);
	return ctx;
}

static const struct proc_vma *find_vma(const struct proc_vma_list *l, uintptr_t addr)
{
	for (size_t i = 0; i < l->nr; i++)
		if (addr >= l->v[i].start && addr < l->v[i].end)
			return &l->v[i];
	return NULL;
}

static __attribute__((noinline)) uintptr_t code_address(void)
{
	return (uintptr_t)__builtin_return_address(0);
}

Test(live, own_vmas)
{
	struct snap_ctx *ctx = new_ctx();
	struct proc_vma_list l;
	const struct proc_vma *v, *prev = NULL;
	uintptr_t here = code_address();
	int local = 1;
	char *exe;
	bool stack = false, vdso = false;

	cr_assert_eq(proc_read_vmas(ctx, getpid(), &l), 0, "%s", snap_error(ctx));
	cr_assert_gt(l.nr, 5);
	for (size_t i = 0; i < l.nr; i++) {
		v = &l.v[i];
		cr_expect_lt(v->start, v->end);
		if (prev)
			cr_expect_geq(v->start, prev->end, "VMAs out of order at %zu", i);
		prev = v;
		/* Every area has VmFlags with "rd"/"wr"/..., so smaps was read; check a known one. */
		if (v->path && !strcmp(v->path, "[stack]")) {
			stack = true;
			cr_expect(v->vmflags & VMF_GROWSDOWN, "[stack] without gd");
			cr_expect_eq(v->prot, (uint32_t)(R | W));
		}
		if (v->path && !strcmp(v->path, "[vdso]"))
			vdso = true;
	}
	cr_expect(stack, "no [stack] VMA");
	cr_expect(vdso, "no [vdso] VMA");

	/* This code runs from an executable area of our own binary. */
	v = find_vma(&l, here);
	cr_assert_not_null(v, "no VMA holds %#lx", (unsigned long)here);
	cr_expect(v->prot & PROT_EXEC);
	cr_assert_eq(proc_readlink(ctx, getpid(), "exe", &exe), 0, "%s", snap_error(ctx));
	cr_expect_str_eq(v->path, exe);
	cr_expect_not(v->deleted);
	free(exe);

	v = find_vma(&l, (uintptr_t)&local);
	cr_assert_not_null(v, "no VMA holds the stack variable");
	cr_expect_eq(v->prot & (R | W), (uint32_t)(R | W));
	proc_vma_list_free(&l);
	snap_ctx_free(ctx);
}

Test(live, named_anon_and_deleted_memfd)
{
	struct snap_ctx *ctx = new_ctx();
	struct proc_vma_list l;
	const struct proc_vma *v;
	void *anon, *shm;
	int fd;

	anon = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(anon, MAP_FAILED);
	/* Named anonymous memory needs CONFIG_ANON_VMA_NAME; skip the name check without it. */
	bool named = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, anon, 8192, "libsnap test") == 0;
	fd = memfd_create("snap\ntest", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(shm, MAP_FAILED);

	cr_assert_eq(proc_read_vmas(ctx, getpid(), &l), 0, "%s", snap_error(ctx));
	v = find_vma(&l, (uintptr_t)anon);
	cr_assert_not_null(v);
	cr_expect_eq(v->start, (uintptr_t)anon);
	cr_expect_eq(v->end, (uintptr_t)anon + 8192);
	cr_expect_eq(v->prot, (uint32_t)R);
	if (named)
		cr_expect_str_eq(v->path, "[anon:libsnap test]");

	v = find_vma(&l, (uintptr_t)shm);
	cr_assert_not_null(v);
	cr_expect(v->shared);
	cr_expect(v->deleted);
	cr_expect_str_eq(v->path, "/memfd:snap\ntest");
	cr_expect(v->vmflags & VMF_SHARED);
	cr_expect(v->vmflags & VMF_MAYSHARE);
	proc_vma_list_free(&l);
	munmap(anon, 8192);
	munmap(shm, 4096);
	close(fd);
	snap_ctx_free(ctx);
}

Test(live, stat_and_status)
{
	struct snap_ctx *ctx = new_ctx();
	struct proc_stat st;
	struct proc_status ss;
	sigset_t set, old;
	mode_t mask;
	char comm[16];
	uintptr_t here = code_address();

	cr_assert_eq(prctl(PR_GET_NAME, comm), 0);
	cr_assert_eq(prctl(PR_SET_NAME, "a) (b c"), 0);
	cr_assert_eq(proc_read_stat(ctx, getpid(), &st), 0, "%s", snap_error(ctx));
	prctl(PR_SET_NAME, comm);
	cr_expect_eq(st.pid, getpid());
	cr_expect_str_eq(st.comm, "a) (b c");
	cr_expect_eq(st.state, 'R');
	cr_expect_eq(st.ppid, getppid());
	cr_expect_eq(st.pgrp, getpgrp());
	cr_expect_eq(st.session, getsid(0));
	cr_expect_geq(st.num_threads, 1);
	cr_expect(here >= st.start_code && here < st.end_code, "code %#lx outside [%#lx, %#lx)", (unsigned long)here,
		  st.start_code, st.end_code);
	cr_expect_eq(st.exit_signal, SIGCHLD);

	mask = umask(0027);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	cr_assert_eq(proc_read_status(ctx, getpid(), &ss), 0, "%s", snap_error(ctx));
	sigprocmask(SIG_SETMASK, &old, NULL);
	umask(mask);
	cr_expect_eq(ss.pid, getpid());
	cr_expect_eq(ss.tgid, getpid());
	cr_expect_eq(ss.ppid, getppid());
	cr_expect_eq(ss.uid[0], getuid());
	cr_expect_eq(ss.uid[1], geteuid());
	cr_expect_eq(ss.gid[0], getgid());
	cr_expect(ss.has_umask);
	cr_expect_eq(ss.umask, 0027);
	cr_expect(ss.sig_blk & (1ull << (SIGUSR2 - 1)));
	cr_expect_geq(ss.threads, 1);
	cr_expect_geq(ss.nspid_levels, 1);
	cr_expect_eq(ss.state, 'R');
	snap_ctx_free(ctx);
}

Test(live, fdinfo_and_auxv)
{
	struct snap_ctx *ctx = new_ctx();
	struct proc_fdinfo fi;
	struct stat sb;
	char scratch[17];
	uint64_t *vals;
	size_t nr;
	bool pagesz = false, entry = false;
	int fd;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, scratch, sizeof(scratch)), 17);
	cr_assert_eq(fstat(fd, &sb), 0);
	cr_assert_eq(proc_read_fdinfo(ctx, getpid(), fd, &fi), 0, "%s", snap_error(ctx));
	cr_expect_eq(fi.pos, 17u);
	cr_expect_eq(fi.flags & (O_ACCMODE | O_CLOEXEC), (uint32_t)(O_RDONLY | O_CLOEXEC));
	cr_expect_gt(fi.mnt_id, 0);
	cr_expect_eq(fi.ino, (uint64_t)sb.st_ino);
	close(fd);

	cr_assert_eq(proc_read_auxv(ctx, getpid(), &vals, &nr), 0, "%s", snap_error(ctx));
	cr_assert_geq(nr, 2);
	cr_expect_eq(nr % 2, 0);
	cr_expect_eq(vals[nr - 2], (uint64_t)AT_NULL);
	for (size_t i = 0; i + 1 < nr; i += 2) {
		if (vals[i] == AT_PAGESZ) {
			pagesz = true;
			cr_expect_eq(vals[i + 1], (uint64_t)sysconf(_SC_PAGESIZE));
		}
		if (vals[i] == AT_ENTRY) {
			entry = true;
			cr_expect_eq(vals[i + 1], (uint64_t)getauxval(AT_ENTRY));
		}
	}
	cr_expect(pagesz && entry);
	free(vals);
	snap_ctx_free(ctx);
}

Test(live, list_ids)
{
	struct snap_ctx *ctx = new_ctx();
	bool found = false;
	int *ids, fd;
	size_t nr;

	cr_assert_eq(proc_list_ids(ctx, getpid(), "task", &ids, &nr), 0, "%s", snap_error(ctx));
	for (size_t i = 0; i < nr; i++) {
		if (ids[i] == gettid())
			found = true;
		if (i)
			cr_expect_lt(ids[i - 1], ids[i]);
	}
	cr_expect(found, "task lacks our tid %d", gettid());
	free(ids);

	/* A high fd sorts after the low ones whatever order readdir gives. */
	fd = fcntl(0, F_DUPFD_CLOEXEC, 1000);
	cr_assert_geq(fd, 1000);
	cr_assert_eq(proc_list_ids(ctx, getpid(), "fd", &ids, &nr), 0, "%s", snap_error(ctx));
	cr_assert_geq(nr, 2);
	cr_expect_eq(ids[nr - 1], fd);
	for (size_t i = 1; i < nr; i++)
		cr_expect_lt(ids[i - 1], ids[i]);
	free(ids);
	close(fd);
	snap_ctx_free(ctx);
}

/* A link target far longer than readlink's first buffer. */
Test(live, readlink_long_path)
{
	struct snap_ctx *ctx = new_ctx();
	char dir[4096], name[64];
	char *got;
	int fd;

	strcpy(dir, "/tmp/snap-proc-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	const size_t base = strlen(dir);
	for (int i = 0; i < 12; i++) {
		size_t len = strlen(dir);

		dir[len] = '/';
		memset(dir + len + 1, 'a' + i, 200);
		dir[len + 201] = '\0';
		cr_assert_eq(mkdir(dir, 0700), 0, "mkdir: %s", strerror(errno));
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	snprintf(name, sizeof(name), "fd/%d", fd);
	cr_assert_eq(proc_readlink(ctx, getpid(), name, &got), 0, "%s", snap_error(ctx));
	cr_expect_str_eq(got, dir);
	free(got);
	close(fd);
	while (strlen(dir) > base) {
		rmdir(dir);
		*strrchr(dir, '/') = '\0';
	}
	rmdir(dir);
	snap_ctx_free(ctx);
}

Test(live, missing_pid_names_pid_and_file)
{
	struct snap_ctx *ctx = new_ctx();
	struct proc_vma_list l = { 0 };
	struct proc_stat st;
	char *s;
	int *ids;
	size_t nr;

	cr_expect_eq(proc_read_vmas(ctx, INT_MAX, &l), -ENOENT);
	cr_expect_str_eq(snap_error(ctx),
			 "pid 2147483647: cannot open /proc/2147483647/smaps: No such file or directory");
	cr_expect_eq(l.nr, 0);

	snap_clear_error(ctx);
	cr_expect_eq(proc_read_stat(ctx, INT_MAX, &st), -ENOENT);
	cr_expect_str_eq(snap_error(ctx),
			 "pid 2147483647: cannot open /proc/2147483647/stat: No such file or directory");

	snap_clear_error(ctx);
	cr_expect_eq(proc_readlink(ctx, INT_MAX, "exe", &s), -ENOENT);
	cr_expect(strstr(snap_error(ctx), "pid 2147483647") && strstr(snap_error(ctx), "/proc/2147483647/exe"), "%s",
		  snap_error(ctx));

	snap_clear_error(ctx);
	cr_expect_eq(proc_list_ids(ctx, INT_MAX, "task", &ids, &nr), -ENOENT);
	cr_expect(strstr(snap_error(ctx), "/proc/2147483647/task"), "%s", snap_error(ctx));

	snap_clear_error(ctx);
	cr_expect_eq(proc_read_fdinfo(ctx, getpid(), 999999, &(struct proc_fdinfo){ 0 }), -ENOENT);
	cr_expect(strstr(snap_error(ctx), "fdinfo/999999"), "%s", snap_error(ctx));
	snap_ctx_free(ctx);
}

/*
 * Not a test: a measurement run by hand, skipped unless SNAP_BENCH is set.
 *   SNAP_BENCH=1 build/tests/test_proc --filter 'bench/smaps_20000_vmas' --verbose
 * It maps 20000 pages with alternating protections (20000 VMAs) and times
 * reading smaps through proc_read_vmas, and parsing an in-memory copy alone.
 */
Test(bench, smaps_20000_vmas)
{
	const size_t n = 20000;
	long page = sysconf(_SC_PAGESIZE);
	struct snap_ctx *ctx;
	struct proc_vma_list l;
	uint64_t best_read = UINT64_MAX, best_parse = UINT64_MAX;
	char *copy = NULL;
	size_t copy_len = 0;
	char *area;
	FILE *f;
	int bad;

	if (!getenv("SNAP_BENCH"))
		cr_skip_test("set SNAP_BENCH=1 to measure");
	ctx = new_ctx();
	area = mmap(NULL, n * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(area, MAP_FAILED);
	for (size_t i = 1; i < n; i += 2)
		cr_assert_eq(mprotect(area + i * page, page, PROT_READ | PROT_WRITE), 0);

	for (int iter = 0; iter < 10; iter++) {
		uint64_t t = snap_now_ns();

		cr_assert_eq(proc_read_vmas(ctx, getpid(), &l), 0, "%s", snap_error(ctx));
		t = snap_now_ns() - t;
		if (t < best_read)
			best_read = t;
		cr_assert_geq(l.nr, n);
		proc_vma_list_free(&l);
	}

	f = proc_fopen(getpid(), "smaps");
	cr_assert_not_null(f);
	{
		FILE *m = open_memstream(&copy, &copy_len);
		char buf[65536];
		size_t k;

		while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, k, m);
		fclose(m);
	}
	fclose(f);
	for (int iter = 0; iter < 10; iter++) {
		FILE *m = text_n(copy, copy_len);
		uint64_t t = snap_now_ns();

		cr_assert_eq(proc_parse_maps(m, &l, &bad), 0);
		t = snap_now_ns() - t;
		fclose(m);
		if (t < best_parse)
			best_parse = t;
		proc_vma_list_free(&l);
	}
	fprintf(stderr, "smaps of %zu+ VMAs (%zu bytes): proc_read_vmas %.2f ms, parse only %.2f ms\n", n, copy_len,
		best_read / 1e6, best_parse / 1e6);
	free(copy);
	munmap(area, n * page);
	snap_ctx_free(ctx);
}
