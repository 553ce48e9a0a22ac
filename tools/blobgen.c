/* Turns a linked blob ELF into C source holding its image, relocations and symbol offsets. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The blob is linked with -z max-page-size=4096 and loaded 4 KiB aligned. */
#define BLOB_PAGE 4096ul

/* Far above any real blob; only here so a corrupt header cannot make us allocate gigabytes. */
#define BLOB_MAX_SPAN (64ul << 20)

#define RELA_SIZE sizeof(Elf64_Rela)

struct reloc {
	uint64_t offset;
	int64_t addend;
};

struct sym {
	char *name;
	uint64_t value;
};

struct blob {
	const char *path;
	const char *name;
	Elf *elf;
	size_t raw_size;
	unsigned int machine;
	unsigned int relative_type;

	uint8_t *image;
	uint64_t span; /* end of the last loaded byte, before page rounding */
	uint64_t file_size;
	uint64_t mem_size;

	struct reloc *relocs;
	size_t nr_relocs;

	/* Address ranges of the SHT_RELA sections read, to check DT_RELA against. */
	struct range {
		uint64_t start, end;
	} * rela_ranges;
	size_t nr_rela_ranges;

	struct sym *syms;
	size_t nr_syms;
};

static const char *prog = "blobgen";

static int fail(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every error goes through here so that each message names the file at fault. */
static int fail(const char *path, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: ", prog, path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static int fail_elf(const struct blob *b, const char *what)
{
	return fail(b->path, "%s: %s", what, elf_errmsg(-1));
}

/* Grows *arr by one element of size sz; keeps the old array on failure. */
static void *push(void *arr, size_t *nr, size_t sz)
{
	void *n = realloc(arr, (*nr + 1) * sz);

	if (n)
		(*nr)++;
	return n;
}

static const char *reloc_type_name(unsigned int machine, unsigned int type)
{
#define T(x)          \
	{             \
		x, #x \
	}
	static const struct {
		unsigned int type;
		const char *name;
	} x86[] = {
		T(R_X86_64_NONE), T(R_X86_64_64), T(R_X86_64_PC32),
		T(R_X86_64_GOT32), T(R_X86_64_PLT32), T(R_X86_64_COPY),
		T(R_X86_64_GLOB_DAT), T(R_X86_64_JUMP_SLOT), T(R_X86_64_RELATIVE),
		T(R_X86_64_GOTPCREL), T(R_X86_64_32), T(R_X86_64_32S),
		T(R_X86_64_DTPMOD64), T(R_X86_64_DTPOFF64), T(R_X86_64_TPOFF64),
		T(R_X86_64_TPOFF32), T(R_X86_64_IRELATIVE),
	}, a64[] = {
		T(R_AARCH64_NONE), T(R_AARCH64_ABS64), T(R_AARCH64_ABS32),
		T(R_AARCH64_COPY), T(R_AARCH64_GLOB_DAT), T(R_AARCH64_JUMP_SLOT),
		T(R_AARCH64_RELATIVE), T(R_AARCH64_TLS_DTPMOD),
		T(R_AARCH64_TLS_DTPREL), T(R_AARCH64_TLS_TPREL),
		T(R_AARCH64_TLSDESC), T(R_AARCH64_IRELATIVE),
	};
#undef T
	size_t i;

	if (machine == EM_X86_64) {
		for (i = 0; i < sizeof(x86) / sizeof(x86[0]); i++)
			if (x86[i].type == type)
				return x86[i].name;
	} else {
		for (i = 0; i < sizeof(a64) / sizeof(a64[0]); i++)
			if (a64[i].type == type)
				return a64[i].name;
	}
	return "unknown relocation type";
}

static bool table_in_file(const struct blob *b, uint64_t off, uint64_t entsize, uint64_t nr)
{
	return !nr || (off <= b->raw_size && (b->raw_size - off) / nr >= entsize);
}

static int check_header(struct blob *b)
{
	size_t phnum, shnum;
	GElf_Ehdr eh;

	if (elf_kind(b->elf) != ELF_K_ELF)
		return fail(b->path, "not an ELF file");
	if (!gelf_getehdr(b->elf, &eh))
		return fail_elf(b, "truncated or malformed ELF header");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return fail(b->path, "not a 64-bit ELF file");
	/* The image bytes are copied as they are, so they must already be in the target's order. */
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(b->path, "not a little-endian ELF file");
	if (eh.e_type != ET_DYN)
		return fail(b->path, "ELF type %u is not ET_DYN: link the blob with -static-pie",
			    (unsigned int)eh.e_type);

	/*
	 * libelf quietly counts zero headers when their table is cut off, so
	 * the counts in the ELF header are checked too (they are lower bounds
	 * when the real count is kept in section 0 for very large tables).
	 */
	if (elf_getphdrnum(b->elf, &phnum) || elf_getshdrnum(b->elf, &shnum))
		return fail_elf(b, "cannot count program or section headers");
	if (!table_in_file(b, eh.e_phoff, eh.e_phentsize, eh.e_phnum) ||
	    !table_in_file(b, eh.e_phoff, eh.e_phentsize, phnum))
		return fail(b->path, "program headers lie outside the file: truncated?");
	if (!table_in_file(b, eh.e_shoff, eh.e_shentsize, eh.e_shnum ? eh.e_shnum : eh.e_shoff != 0) ||
	    !table_in_file(b, eh.e_shoff, eh.e_shentsize, shnum))
		return fail(b->path, "section headers lie outside the file: truncated?");

	b->machine = eh.e_machine;
	if (eh.e_machine == EM_X86_64)
		b->relative_type = R_X86_64_RELATIVE;
	else if (eh.e_machine == EM_AARCH64)
		b->relative_type = R_AARCH64_RELATIVE;
	else
		return fail(b->path, "machine %u is neither x86_64 nor aarch64", (unsigned int)eh.e_machine);
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Lays every PT_LOAD segment out at its p_vaddr in one zero-filled image. */
static int load_segments(struct blob *b, const uint8_t *raw)
{
	struct range *loads = NULL;
	size_t nr_loads = 0, phnum, i;
	uint64_t file_end = 0;
	int r = -1;

	if (elf_getphdrnum(b->elf, &phnum))
		return fail_elf(b, "cannot read program headers");

	for (i = 0; i < phnum; i++) {
		struct range *n;
		GElf_Phdr ph;

		if (!gelf_getphdr(b->elf, (int)i, &ph)) {
			fail_elf(b, "cannot read program header");
			goto out;
		}
		if (ph.p_type == PT_INTERP) {
			fail(b->path, "has PT_INTERP: a blob has no dynamic loader to run it");
			goto out;
		}
		if (ph.p_type == PT_TLS) {
			fail(b->path, "has PT_TLS: a blob cannot have thread-local storage");
			goto out;
		}
		if (ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;

		if (ph.p_filesz > ph.p_memsz || ph.p_offset > b->raw_size || b->raw_size - ph.p_offset < ph.p_filesz) {
			fail(b->path,
			     "segment %zu (offset 0x%" PRIx64 ", %" PRIu64 " bytes) lies outside the file: truncated?",
			     i, (uint64_t)ph.p_offset, (uint64_t)ph.p_filesz);
			goto out;
		}
		if (ph.p_vaddr > BLOB_MAX_SPAN || ph.p_memsz > BLOB_MAX_SPAN - ph.p_vaddr) {
			fail(b->path,
			     "segment %zu at 0x%" PRIx64 " of 0x%" PRIx64 " bytes: the image would exceed %lu MiB", i,
			     (uint64_t)ph.p_vaddr, (uint64_t)ph.p_memsz, BLOB_MAX_SPAN >> 20);
			goto out;
		}
		/* Code counting on more alignment (ADRP, aligned data) would break at a 4 KiB aligned address. */
		if (ph.p_align > BLOB_PAGE) {
			fail(b->path,
			     "segment %zu needs %" PRIu64 "-byte alignment, but the blob is only"
			     " loaded %lu-byte aligned: link with -z max-page-size=%lu",
			     i, (uint64_t)ph.p_align, BLOB_PAGE, BLOB_PAGE);
			goto out;
		}

		n = push(loads, &nr_loads, sizeof(*loads));
		if (!n) {
			fail(b->path, "out of memory");
			goto out;
		}
		loads = n;
		loads[nr_loads - 1] = (struct range){ ph.p_vaddr, ph.p_vaddr + ph.p_memsz };
		if (ph.p_vaddr + ph.p_memsz > b->span)
			b->span = ph.p_vaddr + ph.p_memsz;
	}
	if (!nr_loads) {
		fail(b->path, "has no loadable segment");
		goto out;
	}

	/* Overlapping segments would make the flattened image depend on copy order. */
	qsort(loads, nr_loads, sizeof(*loads), cmp_range);
	for (i = 1; i < nr_loads; i++) {
		if (loads[i].start < loads[i - 1].end) {
			fail(b->path, "loadable segments at 0x%" PRIx64 " and 0x%" PRIx64 " overlap",
			     loads[i - 1].start, loads[i].start);
			goto out;
		}
	}

	b->image = calloc(1, b->span);
	if (!b->image) {
		fail(b->path, "out of memory");
		goto out;
	}
	for (i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(b->elf, (int)i, &ph) || ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;
		memcpy(b->image + ph.p_vaddr, raw + ph.p_offset, ph.p_filesz);
		if (ph.p_vaddr + ph.p_filesz > file_end)
			file_end = ph.p_vaddr + ph.p_filesz;
	}

	/* Zeros at the end need not be stored: blob_relocate zero-fills up to mem_size anyway. */
	while (file_end && !b->image[file_end - 1])
		file_end--;
	b->file_size = file_end;
	b->mem_size = (b->span + BLOB_PAGE - 1) & ~(BLOB_PAGE - 1);
	r = 0;
out:
	free(loads);
	return r;
}

/* Returns the data of a section after checking that the file really holds it. */
static Elf_Data *section_data(struct blob *b, Elf_Scn *scn, const GElf_Shdr *sh, const char *sname)
{
	Elf_Data *d;

	if (sh->sh_type != SHT_NOBITS && (sh->sh_offset > b->raw_size || b->raw_size - sh->sh_offset < sh->sh_size)) {
		fail(b->path, "section %s lies outside the file: truncated?", sname);
		return NULL;
	}
	d = elf_getdata(scn, NULL);
	if (!d) {
		fail(b->path, "cannot read section %s: %s", sname, elf_errmsg(-1));
		return NULL;
	}
	return d;
}

static int read_relocs(struct blob *b, Elf_Scn *scn, const GElf_Shdr *sh, const char *sname)
{
	Elf_Data *d = section_data(b, scn, sh, sname);
	struct range *nr;
	size_t i, n;

	if (!d)
		return -1;
	n = d->d_size / RELA_SIZE;
	if (d->d_size % RELA_SIZE)
		return fail(b->path, "section %s: size %zu is not a multiple of %zu", sname, (size_t)d->d_size,
			    RELA_SIZE);

	nr = push(b->rela_ranges, &b->nr_rela_ranges, sizeof(*nr));
	if (!nr)
		return fail(b->path, "out of memory");
	b->rela_ranges = nr;
	b->rela_ranges[b->nr_rela_ranges - 1] = (struct range){ sh->sh_addr, sh->sh_addr + sh->sh_size };

	for (i = 0; i < n; i++) {
		unsigned int type;
		struct reloc *rs;
		GElf_Rela rela;

		if (!gelf_getrela(d, (int)i, &rela))
			return fail(b->path, "section %s: cannot read relocation %zu: %s", sname, i, elf_errmsg(-1));
		type = GELF_R_TYPE(rela.r_info);
		if (type != b->relative_type)
			return fail(b->path,
				    "section %s: relocation %s (%u) at offset 0x%" PRIx64
				    ": only %s is supported; the blob must not refer to anything outside itself",
				    sname, reloc_type_name(b->machine, type), type, (uint64_t)rela.r_offset,
				    reloc_type_name(b->machine, b->relative_type));
		if (GELF_R_SYM(rela.r_info))
			return fail(b->path, "section %s: relative relocation at offset 0x%" PRIx64 " names symbol %u",
				    sname, (uint64_t)rela.r_offset, (unsigned int)GELF_R_SYM(rela.r_info));
		if (rela.r_offset > b->span || b->span - rela.r_offset < sizeof(uint64_t))
			return fail(b->path,
				    "section %s: relocation at offset 0x%" PRIx64 " is outside the image (0x%" PRIx64
				    " bytes)",
				    sname, (uint64_t)rela.r_offset, b->span);
		/* A pointer that would not point into the blob can only be a link error. */
		if (rela.r_addend < 0 || (uint64_t)rela.r_addend > b->span)
			return fail(b->path,
				    "section %s: relocation at offset 0x%" PRIx64 " points to %s0x%" PRIx64
				    ", outside the image (0x%" PRIx64 " bytes)",
				    sname, (uint64_t)rela.r_offset, rela.r_addend < 0 ? "-" : "",
				    rela.r_addend < 0 ? -(uint64_t)rela.r_addend : (uint64_t)rela.r_addend, b->span);

		rs = push(b->relocs, &b->nr_relocs, sizeof(*rs));
		if (!rs)
			return fail(b->path, "out of memory");
		b->relocs = rs;
		b->relocs[b->nr_relocs - 1] = (struct reloc){ rela.r_offset, rela.r_addend };
	}
	return 0;
}

static bool is_c_identifier(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/*
 * Rejects undefined symbols and collects the exported ones from one symbol
 * table. Only .symtab is searched for exports: hidden symbols, which every
 * blob symbol is, never reach .dynsym.
 */
static int read_symbols(struct blob *b, Elf_Scn *scn, const GElf_Shdr *sh, const char *sname, bool exports)
{
	Elf_Data *d = section_data(b, scn, sh, sname);
	size_t prefix_len = strlen(b->name) + 1;
	size_t i, n, esz;

	if (!d)
		return -1;
	esz = gelf_fsize(b->elf, ELF_T_SYM, 1, EV_CURRENT);
	n = d->d_size / esz;

	/* Entry 0 is the reserved null symbol, undefined by definition. */
	for (i = 1; i < n; i++) {
		const char *name;
		unsigned int type;
		struct sym *s;
		GElf_Sym sym;
		size_t j;

		if (!gelf_getsym(d, (int)i, &sym))
			return fail(b->path, "section %s: cannot read symbol %zu: %s", sname, i, elf_errmsg(-1));
		name = elf_strptr(b->elf, sh->sh_link, sym.st_name);
		if (!name)
			return fail(b->path, "section %s: symbol %zu has a bad name: %s", sname, i, elf_errmsg(-1));
		type = GELF_ST_TYPE(sym.st_info);

		if (sym.st_shndx == SHN_UNDEF)
			return fail(b->path,
				    "undefined symbol '%s': the blob must not refer to anything outside itself", name);
		if (!exports || strncmp(name, b->name, prefix_len - 1) || name[prefix_len - 1] != '_')
			continue;
		/* Its address is the resolver's, which nothing in a blob would ever run. */
		if (type == STT_GNU_IFUNC)
			return fail(b->path, "symbol '%s' is an ifunc: blobs cannot export those", name);
		if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE)
			continue;
		/* Compiler clones and function-local statics (foo.part.0, x.1) cannot be macro names anyway. */
		if (!is_c_identifier(name))
			continue;
		if (sym.st_shndx == SHN_ABS || sym.st_shndx == SHN_COMMON)
			return fail(b->path, "symbol '%s' is not inside the image (absolute or common)", name);
		if (sym.st_value > b->span)
			return fail(b->path, "symbol '%s' at 0x%" PRIx64 " is outside the image (0x%" PRIx64 " bytes)",
				    name, (uint64_t)sym.st_value, b->span);

		for (j = 0; j < b->nr_syms; j++)
			if (!strcmp(b->syms[j].name, name))
				break;
		if (j < b->nr_syms) {
			/* The same static name in two files: no way to tell which one is meant. */
			if (b->syms[j].value != sym.st_value)
				return fail(b->path, "symbol '%s' is defined twice (0x%" PRIx64 " and 0x%" PRIx64 ")",
					    name, b->syms[j].value, (uint64_t)sym.st_value);
			continue;
		}

		s = push(b->syms, &b->nr_syms, sizeof(*s));
		if (!s)
			return fail(b->path, "out of memory");
		b->syms = s;
		b->syms[b->nr_syms - 1] = (struct sym){ strdup(name), sym.st_value };
		if (!b->syms[b->nr_syms - 1].name)
			return fail(b->path, "out of memory");
	}
	return 0;
}

static bool rela_covered(const struct blob *b, uint64_t start, uint64_t size)
{
	uint64_t end = start + size;
	bool progress = true;

	/* The ranges are few; walk them until [start, end) is used up or nothing more fits. */
	while (start < end && progress) {
		size_t i;

		progress = false;
		for (i = 0; i < b->nr_rela_ranges; i++) {
			if (b->rela_ranges[i].start <= start && start < b->rela_ranges[i].end) {
				start = b->rela_ranges[i].end;
				progress = true;
			}
		}
	}
	return start >= end;
}

/*
 * What the dynamic table tells a loader to do must be exactly what we do:
 * no REL or RELR relocations, no libraries, and no RELA range that lies
 * outside the sections we read (e.g. section headers edited after linking).
 */
static int check_dynamic(struct blob *b, Elf_Scn *scn, const GElf_Shdr *sh, const char *sname)
{
	uint64_t rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0, pltrel = DT_RELA;
	Elf_Data *d = section_data(b, scn, sh, sname);
	size_t i, n;

	if (!d)
		return -1;
	n = d->d_size / gelf_fsize(b->elf, ELF_T_DYN, 1, EV_CURRENT);
	for (i = 0; i < n; i++) {
		GElf_Dyn dyn;

		if (!gelf_getdyn(d, (int)i, &dyn))
			return fail(b->path, "section %s: cannot read entry %zu: %s", sname, i, elf_errmsg(-1));
		switch (dyn.d_tag) {
		case DT_NULL:
			i = n;
			break;
		case DT_NEEDED:
			return fail(b->path, "needs a shared library: a blob must be self-contained");
		case DT_REL:
		case DT_RELR:
			return fail(b->path, "has %s relocations: only RELA is supported",
				    dyn.d_tag == DT_REL ? "REL" : "RELR (-z pack-relative-relocs)");
		case DT_RELA:
			rela = dyn.d_un.d_ptr;
			break;
		case DT_RELASZ:
			relasz = dyn.d_un.d_val;
			break;
		case DT_JMPREL:
			jmprel = dyn.d_un.d_ptr;
			break;
		case DT_PLTRELSZ:
			pltrelsz = dyn.d_un.d_val;
			break;
		case DT_PLTREL:
			pltrel = dyn.d_un.d_val;
			break;
		}
	}
	if (pltrelsz && pltrel != DT_RELA)
		return fail(b->path, "PLT relocations are not RELA");
	if ((relasz && !rela_covered(b, rela, relasz)) || (pltrelsz && !rela_covered(b, jmprel, pltrelsz)))
		return fail(b->path, "the dynamic table lists relocations outside any relocation section");
	return 0;
}

/*
 * Two passes over the sections: relocations and the dynamic table first,
 * because a symbol relocation says more about what went wrong than the
 * undefined symbol it refers to.
 */
static int read_sections(struct blob *b)
{
	bool have_symtab = false;
	size_t shstrndx;
	int pass;

	if (elf_getshdrstrndx(b->elf, &shstrndx))
		return fail_elf(b, "cannot read section headers");

	for (pass = 0; pass < 2; pass++) {
		Elf_Scn *scn = NULL, *dynamic = NULL;
		GElf_Shdr dyn_sh = { 0 };

		while ((scn = elf_nextscn(b->elf, scn))) {
			const char *sname;
			GElf_Shdr sh;
			int r = 0;

			if (!gelf_getshdr(scn, &sh))
				return fail_elf(b, "cannot read section header");
			sname = elf_strptr(b->elf, shstrndx, sh.sh_name);
			if (!sname)
				sname = "(unnamed)";

			if (pass == 0) {
				if (sh.sh_type == SHT_REL || sh.sh_type == SHT_RELR)
					return fail(b->path, "section %s has %s relocations: only RELA is supported",
						    sname, sh.sh_type == SHT_REL ? "REL" : "RELR");
				/* Non-allocated RELA sections are link-time leftovers (--emit-relocs), not for the
				 * loader. */
				if (sh.sh_type == SHT_RELA && (sh.sh_flags & SHF_ALLOC))
					r = read_relocs(b, scn, &sh, sname);
				if (sh.sh_type == SHT_DYNAMIC) {
					dynamic = scn;
					dyn_sh = sh;
				}
			} else if (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM) {
				have_symtab |= sh.sh_type == SHT_SYMTAB;
				r = read_symbols(b, scn, &sh, sname, sh.sh_type == SHT_SYMTAB);
			}
			if (r)
				return r;
		}
		/* Only now are all RELA sections known to check the table against. */
		if (dynamic && check_dynamic(b, dynamic, &dyn_sh, ".dynamic"))
			return -1;
	}
	if (!have_symtab)
		return fail(b->path, "has no .symtab: the blob must not be stripped");
	if (!b->nr_syms)
		return fail(b->path, "defines no symbol starting with '%s_': nothing to export", b->name);
	return 0;
}

static int cmp_sym(const void *a, const void *b)
{
	return strcmp(((const struct sym *)a)->name, ((const struct sym *)b)->name);
}

/* Reads and checks the whole input, so that no output is started for a bad blob. */
static int read_blob(struct blob *b)
{
	uint8_t *raw = NULL;
	struct stat st;
	size_t got = 0;
	int fd, r = -1;

	fd = open(b->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(b->path, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fail(b->path, "not a regular file");
		goto out;
	}
	b->raw_size = (size_t)st.st_size;
	/* One spare byte so that an empty file still gets a buffer. */
	raw = malloc(b->raw_size + 1);
	if (!raw) {
		fail(b->path, "out of memory");
		goto out;
	}
	while (got < b->raw_size) {
		ssize_t n = read(fd, raw + got, b->raw_size - got);

		if (n <= 0) {
			fail(b->path, "cannot read: %s", n ? strerror(errno) : "file shrank");
			goto out;
		}
		got += (size_t)n;
	}

	b->elf = elf_memory((char *)raw, b->raw_size);
	if (!b->elf) {
		fail_elf(b, "not a valid ELF file");
		goto out;
	}
	if (check_header(b) || load_segments(b, raw) || read_sections(b))
		goto out;
	qsort(b->syms, b->nr_syms, sizeof(*b->syms), cmp_sym);
	r = 0;
out:
	if (b->elf)
		elf_end(b->elf);
	b->elf = NULL;
	free(raw);
	close(fd);
	return r;
}

static void write_h(FILE *f, const struct blob *b, const char *upper)
{
	size_t i;

	fprintf(f, "/* Offsets and sizes of the %s blob; generated by blobgen from %s, do not edit. */\n", b->name,
		b->path);
	fprintf(f, "#ifndef SNAP_GEN_%s_BLOB_H\n#define SNAP_GEN_%s_BLOB_H\n\n", upper, upper);
	fprintf(f, "#include \"blob.h\"\n\n");
	fprintf(f, "extern const struct blob_desc %s_blob;\n\n", b->name);
	fprintf(f, "#define %s_BLOB_FILE_SIZE 0x%" PRIx64 "ul\n", upper, b->file_size);
	fprintf(f, "#define %s_BLOB_MEM_SIZE 0x%" PRIx64 "ul\n", upper, b->mem_size);
	for (i = 0; i < b->nr_syms; i++)
		fprintf(f, "#define %s_BLOB_OFF_%s 0x%" PRIx64 "ul\n", upper, b->syms[i].name, b->syms[i].value);
	fprintf(f, "\n#endif\n");
}

static void write_c(FILE *f, const struct blob *b, const char *upper, const char *h_base)
{
	size_t i;

	fprintf(f, "/* Image and relocations of the %s blob; generated by blobgen from %s, do not edit. */\n", b->name,
		b->path);
	fprintf(f, "#include <stdint.h>\n\n#include \"%s\"\n\n", h_base);

	/* Empty arrays are not standard C, so an empty part is a NULL pointer instead. */
	if (b->file_size) {
		fprintf(f,
			"static const uint8_t %s_blob_bytes[%s_BLOB_FILE_SIZE]"
			" __attribute__((aligned(16))) = {",
			b->name, upper);
		for (i = 0; i < b->file_size; i++)
			fprintf(f, "%s0x%02x,", i % 16 ? " " : "\n\t", b->image[i]);
		fprintf(f, "\n};\n\n");
	}
	if (b->nr_relocs) {
		fprintf(f, "static const struct blob_reloc %s_blob_relocs[%zu] = {\n", b->name, b->nr_relocs);
		for (i = 0; i < b->nr_relocs; i++)
			fprintf(f, "\t{ 0x%" PRIx64 ", 0x%" PRIx64 " },\n", b->relocs[i].offset,
				(uint64_t)b->relocs[i].addend);
		fprintf(f, "};\n\n");
	}

	fprintf(f, "const struct blob_desc %s_blob = {\n", b->name);
	fprintf(f, "\t.name = \"%s\",\n", b->name);
	if (b->file_size)
		fprintf(f, "\t.bytes = %s_blob_bytes,\n", b->name);
	else
		fprintf(f, "\t.bytes = NULL,\n");
	fprintf(f, "\t.file_size = %s_BLOB_FILE_SIZE,\n", upper);
	fprintf(f, "\t.mem_size = %s_BLOB_MEM_SIZE,\n", upper);
	if (b->nr_relocs)
		fprintf(f, "\t.relocs = %s_blob_relocs,\n", b->name);
	else
		fprintf(f, "\t.relocs = NULL,\n");
	fprintf(f, "\t.nr_relocs = %zu,\n};\n", b->nr_relocs);
}

struct out {
	const char *path;
	char *tmp;
	FILE *f;
};

/* Outputs are written under a temporary name next to the final one: a failure never leaves half a file. */
static int out_open(struct out *o)
{
	mode_t mask;
	int fd;

	if (asprintf(&o->tmp, "%s.tmpXXXXXX", o->path) < 0) {
		o->tmp = NULL;
		return fail(o->path, "out of memory");
	}
	fd = mkstemp(o->tmp);
	if (fd < 0) {
		fail(o->path, "cannot create %s: %s", o->tmp, strerror(errno));
		free(o->tmp);
		o->tmp = NULL;
		return -1;
	}
	/* mkstemp makes the file 0600; a build output should get the usual mode. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) || !(o->f = fdopen(fd, "w"))) {
		fail(o->path, "cannot open %s: %s", o->tmp, strerror(errno));
		close(fd);
		return -1;
	}
	return 0;
}

static int out_close(struct out *o)
{
	int r = 0;

	if (ferror(o->f))
		r = -1;
	if (fclose(o->f))
		r = -1;
	o->f = NULL;
	if (r)
		return fail(o->path, "cannot write %s: %s", o->tmp, strerror(errno));
	return 0;
}

static void out_discard(struct out *o)
{
	if (o->f)
		fclose(o->f);
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	o->f = NULL;
	o->tmp = NULL;
}

static int write_outputs(const struct blob *b, const char *c_path, const char *h_path)
{
	struct out c = { .path = c_path }, h = { .path = h_path };
	char upper[256], *h_copy;
	const char *h_base;
	int r = -1;
	size_t i;

	for (i = 0; b->name[i]; i++)
		upper[i] = (char)toupper((unsigned char)b->name[i]);
	upper[i] = '\0';

	h_copy = strdup(h_path);
	if (!h_copy)
		return fail(h_path, "out of memory");
	h_base = basename(h_copy);

	if (out_open(&h) || out_open(&c))
		goto out;
	write_h(h.f, b, upper);
	write_c(c.f, b, upper, h_base);
	if (out_close(&h) || out_close(&c))
		goto out;

	if (rename(h.tmp, h_path)) {
		fail(h_path, "cannot rename %s: %s", h.tmp, strerror(errno));
		goto out;
	}
	if (rename(c.tmp, c_path)) {
		fail(c_path, "cannot rename %s: %s", c.tmp, strerror(errno));
		/* Half a pair is worse than none: the .c decides what the .h promises. */
		unlink(h_path);
		goto out;
	}
	r = 0;
out:
	out_discard(&h);
	out_discard(&c);
	free(h_copy);
	return r;
}

static void blob_free(struct blob *b)
{
	size_t i;

	for (i = 0; i < b->nr_syms; i++)
		free(b->syms[i].name);
	free(b->syms);
	free(b->relocs);
	free(b->rela_ranges);
	free(b->image);
}

static int usage(void)
{
	fprintf(stderr, "usage: %s --name NAME INPUT.elf OUT.c OUT.h\n", prog);
	return 1;
}

int main(int argc, char **argv)
{
	struct blob b = { 0 };
	int r;

	if (argc != 6 || strcmp(argv[1], "--name"))
		return usage();
	b.name = argv[2];
	b.path = argv[3];
	/* The name becomes part of C identifiers and macro names. */
	if (!is_c_identifier(b.name) || strlen(b.name) >= 200) {
		fprintf(stderr, "%s: '%s' is not usable as a blob name (a C identifier)\n", prog, b.name);
		return 1;
	}
	if (elf_version(EV_CURRENT) == EV_NONE) {
		fprintf(stderr, "%s: libelf is too old: %s\n", prog, elf_errmsg(-1));
		return 1;
	}

	r = read_blob(&b);
	if (!r)
		r = write_outputs(&b, argv[4], argv[5]);
	blob_free(&b);
	return r ? 1 : 0;
}
