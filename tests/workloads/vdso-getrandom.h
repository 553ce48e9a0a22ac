/* Calls the vDSO's getrandom (Linux 6.11+) directly, as a libc that uses it would, for wl-app-self. */
#ifndef SNAP_TESTS_VDSO_GETRANDOM_H
#define SNAP_TESTS_VDSO_GETRANDOM_H

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/types.h>

typedef ssize_t (*vgetrandom_fn)(void *buf, size_t len, unsigned flags, void *state, size_t state_len);

struct vgetrandom {
	vgetrandom_fn fn; /* NULL on kernels without it */
	void *state;	  /* one opaque state, in memory mapped as the kernel says */
	size_t state_len;
};

/* The kernel's struct vgetrandom_opaque_params. */
struct vgetrandom_params {
	uint32_t size_of_opaque_state;
	uint32_t mmap_prot;
	uint32_t mmap_flags;
	uint32_t reserved[13];
};

/* The address of vDSO symbol @name, or NULL. */
static inline void *vdso_sym(const char *name)
{
	const ElfW(Ehdr) *eh = (const void *)getauxval(AT_SYSINFO_EHDR);
	const ElfW(Shdr) * sh;
	const ElfW(Phdr) * ph;
	uintptr_t base = (uintptr_t)eh, load = 0;

	if (!eh)
		return NULL;
	ph = (const void *)(base + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			load = ph[i].p_vaddr;
			break;
		}
	sh = (const void *)(base + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++) {
		const ElfW(Sym) * sym;
		const char *str;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		sym = (const void *)(base + sh[i].sh_offset);
		str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++)
			if (sym[k].st_shndx != SHN_UNDEF && !strcmp(str + sym[k].st_name, name))
				return (void *)(base + sym[k].st_value - load);
	}
	return NULL;
}

/* 0 with @v ready, or -ENOSYS where the vDSO has no getrandom (v->fn stays NULL). */
static inline int vgetrandom_init(struct vgetrandom *v)
{
	struct vgetrandom_params p = { 0 };
	vgetrandom_fn fn = (vgetrandom_fn)vdso_sym("__vdso_getrandom");
	void *m;

	memset(v, 0, sizeof(*v));
	if (!fn)
		fn = (vgetrandom_fn)vdso_sym("__kernel_getrandom");
	if (!fn || fn(NULL, 0, 0, &p, ~0ul) != 0 || !p.size_of_opaque_state)
		return -ENOSYS;
	m = mmap(NULL, p.size_of_opaque_state, (int)p.mmap_prot, (int)p.mmap_flags, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	v->fn = fn;
	v->state = m;
	v->state_len = p.size_of_opaque_state;
	return 0;
}

static inline int vgetrandom_read(struct vgetrandom *v, void *buf, size_t len)
{
	return v->fn(buf, len, 0, v->state, v->state_len) == (ssize_t)len ? 0 : -EIO;
}

#endif
