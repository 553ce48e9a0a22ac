/* A position-independent blob (parasite, restorer) as blobgen emits it, and how to place it. */
#ifndef SNAP_BLOB_H
#define SNAP_BLOB_H

#include <stddef.h>
#include <stdint.h>

/*
 * One pointer inside the blob that must hold load address + addend. blobgen
 * only lets RELATIVE relocations through, so this is all a blob ever needs.
 */
struct blob_reloc {
	uint64_t offset;
	int64_t addend;
};

/*
 * A linked blob flattened to one image that starts at offset 0. Only the
 * first file_size bytes are stored; the rest up to mem_size is zero (bss and
 * trailing zeros). Offsets of symbols come from the generated header.
 */
struct blob_desc {
	const char *name;
	const uint8_t *bytes;
	size_t file_size;
	size_t mem_size;
	const struct blob_reloc *relocs;
	size_t nr_relocs;
};

/*
 * Writes the blob to dst, ready to run at load_addr. dst and load_addr may be
 * two mappings of the same memory (ours and the target's), which is why the
 * address the code will run at is passed apart from where we write it.
 * dst must hold mem_size bytes; load_addr must be page aligned (aarch64 ADRP).
 */
void blob_relocate(const struct blob_desc *b, void *dst, uint64_t load_addr);

/* Bytes to map for the blob: mem_size rounded up to this machine's page size. */
size_t blob_map_size(const struct blob_desc *b);

#endif
