/* Memory of a process: which areas exist, which pages hold data, and putting them back. */
#ifndef SNAP_MEM_H
#define SNAP_MEM_H

#include <stdint.h>

#include "image.h"
#include "task.h"

/* Dump: refuses areas this version cannot restore, naming pid, address and kind. */
int mem_check_vmas(struct snap_ctx *ctx, struct dump_task *t);
/* Dump, once the files of the tree are collected: refuses a memfd that is both mapped shared and open. */
int mem_check_memfd_fds(struct snap_ctx *ctx, const struct dump_task *t);
/* Shared memory objects already dumped in this tree. */
#define SHMEM_SET_MAX 4096
struct shmem_set {
	uint64_t ids[SHMEM_SET_MAX];
	size_t nr;
};

/*
 * Dump: writes mm-PID.img, pagemap-PID.img and pages-PID.img. The content
 * of a shared memory object goes with the first process that maps it;
 * pages still shared copy-on-write with @parent (if any) are not stored.
 */
int mem_dump(struct snap_ctx *ctx, struct dump_task *t, struct img_dir *dir, struct shmem_set *shmem,
	     const struct dump_task *parent);

/* Restore: the memory part of one process's image. */
struct mem_image {
	MmEntry *mm;
	VmaEntry **vmas;
	size_t nr_vmas;
	PagemapHead *head;
	PagemapEntry **pages;
	size_t nr_pages;
	uint64_t pages_size; /* bytes in the page file */
	/* SNAP_RESTORE_MAP_PAGES (mem-map.c): page runs the restorer maps from the page file instead. */
	struct mem_map_run *map_runs; /* by address */
	size_t nr_map_runs;
	bool *run_mapped; /* per page run: part of a mapped run, not filled */
	int map_fd;	  /* the page file, kept open for the restorer; valid while nr_map_runs */
};

/* Stored pages mapped copy-on-write from the page file at @start, from @offset in it. */
struct mem_map_run {
	uint64_t start, len, offset;
	uint32_t prot, flags; /* the area's protection and MAP_NORESERVE */
};

int mem_image_read(struct snap_ctx *ctx, struct img_set *set, int pid, struct mem_image *ret);
void mem_image_free(struct mem_image *mi);
/* Everything that can be checked before a process exists: layout, page runs, mapped files. */
int mem_image_validate(struct snap_ctx *ctx, const struct mem_image *mi);

/* The image area holding @addr, or NULL. */
const VmaEntry *mem_find_vma(const struct mem_image *mi, uint64_t addr);
/* Whether a page run's data is in this process's page file (not shared memory, not inherited). */
bool mem_run_has_data(const PagemapEntry *pe);
/* Sets ret[i] for each (validated) area i that has pages to fill. */
void mem_vmas_with_pages(const struct mem_image *mi, bool *ret);
/* Whether the restorer moves this area from a premapped copy (kernel areas are handled apart). */
bool mem_vma_premapped(const VmaEntry *v);

/* Files up to this size mapped shared and writable are saved whole in the image (VmaEntry.file_content). */
#define MEM_SAVED_FILE_MAX (1u << 20)

/* True for an area through which the process writes its file (shared, writable). */
bool mem_vma_writes_file(const VmaEntry *v);

/* Opens the file of file-backed area @v for mapping, making it again from the image if it is gone. */
int mem_open_mapped_file(struct snap_ctx *ctx, const VmaEntry *v);
/* Protection to premap with: writable if pages will be filled in. */
uint32_t mem_premap_prot(const VmaEntry *v, bool has_pages);

/*
 * In the new process: maps @v at @addr (its premap place); @fd is its file
 * or -1; a shared memory area becomes a second mapping of the object the
 * engine made at @shmem_src.
 */
int mem_premap_one(struct snap_ctx *ctx, const VmaEntry *v, uint64_t addr, uint32_t prot, int fd, uint64_t shmem_src);
/*
 * Fills premapped areas from the page file with large preadv() calls.
 * @premap_of gives, for each vma index, where it is premapped.
 */
int mem_fill(struct snap_ctx *ctx, const struct mem_image *mi, const uint64_t *premap_of, int pages_fd);

#endif
