/* Reading and writing image files: the only code that touches image bytes. */
#ifndef SNAP_IMAGE_H
#define SNAP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ctx.h"
#include "images/core.pb-c.h"
#include "images/fdinfo.pb-c.h"
#include "images/filedata.pb-c.h"
#include "images/inventory.pb-c.h"
#include "images/mm.pb-c.h"
#include "images/pagemap.pb-c.h"
#include "images/pipe.pb-c.h"
#include "images/pstree.pb-c.h"
#include "images/sk.pb-c.h"

/*
 * A framed image file is:
 *   header   struct img_header (16 bytes, little endian)
 *   records  u32 length | protobuf payload, length <= IMG_MAX_RECORD
 *   trailer  u32 IMG_TRAILER_MARK | u64 XXH3-64 of every byte before the trailer
 * The trailer makes each framed file self-checking (truncation included);
 * inventory.img additionally records size and digest of every other file,
 * raw page files included.
 */
#define IMG_MAGIC	   0x50414e53u /* "SNAP" */
#define IMG_FORMAT_VERSION 1u
#define IMG_MAX_RECORD	   (16u << 20)
#define IMG_TRAILER_MARK   0xffffffffu
#define IMG_INVENTORY	   "inventory.img"

enum img_kind {
	IMG_KIND_INVENTORY = 1,
	IMG_KIND_PSTREE = 2,
	IMG_KIND_CORE = 3,
	IMG_KIND_MM = 4,
	IMG_KIND_PAGEMAP = 5,
	IMG_KIND_FILES = 6,
	IMG_KIND_PAGES = 7,	     /* raw page data: no header, no records */
	IMG_KIND_OPEN_FILES = 8,     /* open file descriptions of the whole dump */
	IMG_KIND_PIPES = 9,	     /* pipes and FIFOs with their unread data */
	IMG_KIND_FILE_CONTENTS = 10, /* deleted files and memfds */
	IMG_KIND_FILE_DATA = 11,     /* raw bytes of those: no header, no records */
};

struct img_header {
	uint32_t magic;
	uint32_t kind;
	uint32_t version;
	uint32_t reserved;
};

/* Image file names; one place for the naming scheme. */
#define IMG_NAME_MAX 64
void img_name(char out[IMG_NAME_MAX], enum img_kind kind, int pid);

/*
 * A dump directory being written. Each file written through it is recorded
 * (name, size, digest) for the inventory, which img_dir_finish writes last.
 */
struct img_dir;

int img_dir_create(struct snap_ctx *ctx, const char *path, struct img_dir **ret);
/*
 * Writes inventory.img from @inv (its files list and format version are
 * filled in here; the caller's list is put back afterwards) and closes,
 * also on failure, when it behaves like img_dir_abort.
 */
int img_dir_finish(struct snap_ctx *ctx, struct img_dir *dir, InventoryEntry *inv);
/*
 * Closes without writing an inventory, removing the files written through
 * @dir so that a later dump into the same directory starts clean. Writers
 * must be closed first.
 */
void img_dir_abort(struct img_dir *dir);
int img_dir_fd(const struct img_dir *dir);

struct img_writer;
int img_writer_open(struct snap_ctx *ctx, struct img_dir *dir, enum img_kind kind, int pid, struct img_writer **ret);
int img_write_msg(struct snap_ctx *ctx, struct img_writer *w, const ProtobufCMessage *msg);
int img_writer_close(struct snap_ctx *ctx, struct img_writer *w); /* records the digest */

/* Raw page file: appended with large writes, digest computed on the way. */
struct img_pages_writer;
int img_pages_open(struct snap_ctx *ctx, struct img_dir *dir, int pid, struct img_pages_writer **ret);
/* Appends @len bytes (multiple of the page size); *ret_offset = where they start. */
int img_pages_write(struct snap_ctx *ctx, struct img_pages_writer *w, const void *buf, size_t len,
		    uint64_t *ret_offset);
int img_pages_close(struct snap_ctx *ctx, struct img_pages_writer *w);
const char *img_pages_name(const struct img_pages_writer *w);
/*
 * Any raw kind (IMG_KIND_FILE_DATA): the same writer, with writes of any
 * length; @pid is ignored for kinds named once per dump.
 */
int img_raw_open(struct snap_ctx *ctx, struct img_dir *dir, enum img_kind kind, int pid, struct img_pages_writer **ret);

/*
 * A dump directory being read. img_set_open reads and checks the inventory
 * (trailer digest, format version, arch, page size) and then checks the size
 * and digest of every file it lists, page files included, and that no listed
 * file is missing; any failure names the file.
 */
struct img_set;
int img_set_open(struct snap_ctx *ctx, const char *path, struct img_set **ret);
void img_set_close(struct img_set *set);
const InventoryEntry *img_set_inventory(const struct img_set *set);
int img_set_dirfd(const struct img_set *set);

/* Opens a validated framed file of @set; the whole file is held in memory. */
struct img_reader;
int img_reader_open(struct snap_ctx *ctx, struct img_set *set, enum img_kind kind, int pid, struct img_reader **ret);
/*
 * Reads the next record as @desc. Returns 1 and *ret_msg (free with
 * protobuf_c_message_free_unpacked(msg, NULL)), 0 at the end, <0 on a bad
 * record (message names file and record number).
 */
int img_read_msg(struct snap_ctx *ctx, struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg);
/* Like img_read_msg but a missing record is an error naming the file; returns 0 on success. */
int img_read_one(struct snap_ctx *ctx, struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg);
void img_reader_close(struct img_reader *r);
const char *img_reader_name(const struct img_reader *r);

/* Opens a page file listed in the inventory, read-only; the caller closes it. */
int img_set_open_pages(struct snap_ctx *ctx, struct img_set *set, const char *name, uint64_t *ret_size);
/* The same for a raw file of another kind, found by kind and pid. */
int img_set_open_raw(struct snap_ctx *ctx, struct img_set *set, enum img_kind kind, int pid, uint64_t *ret_size);

/* XXH3-64 of a buffer, the digest used everywhere. */
uint64_t img_digest(const void *buf, size_t len);

/*
 * The schema of each kind of file, so that show.c can print any image
 * without knowing the kinds. Framed files hold @first (if not NULL), then
 * any number of @rest (if not NULL); readers and writers enforce it.
 */
struct img_kind_info {
	const char *name; /* "core": used in messages and by show */
	bool framed;	  /* false only for raw page files */
	const ProtobufCMessageDescriptor *first;
	const ProtobufCMessageDescriptor *rest;
};

/* NULL for a kind that does not exist. */
const struct img_kind_info *img_kind_info(enum img_kind kind);
/*
 * The inverse of img_name(): returns the kind of a file name exactly as
 * img_name() spells it (*ret_pid = its pid, 0 for per-dump files), or
 * -EINVAL for any other name.
 */
int img_name_parse(const char *name, int *ret_pid);

/* This machine as inventories name it ("x86_64", "aarch64"); NULL if unknown. */
const char *img_host_arch(void);

/*
 * Reads inventory.img of @dirfd checking its framing and its one record
 * only: not the host, not the files it lists. For show and tools; restore
 * uses img_set_open.
 */
int img_inventory_load(struct snap_ctx *ctx, int dirfd, InventoryEntry **ret);

/*
 * Opens framed file @name of @dirfd outside any set. Its header must say the
 * kind its name says, or any kind for a name img_name() does not spell.
 * Checks header, trailer digest and record framing, and if @expect is not
 * NULL, that size and whole-file digest are those listed there.
 */
int img_reader_open_file(struct snap_ctx *ctx, int dirfd, const char *name, const FileDigest *expect,
			 struct img_reader **ret);
enum img_kind img_reader_kind(const struct img_reader *r);
/* Reads the next record as the kind's schema says it is; returns like img_read_msg. */
int img_read_next(struct snap_ctx *ctx, struct img_reader *r, ProtobufCMessage **ret_msg);

/* Size and XXH3-64 of the whole of @fd (from offset 0); @name is for messages. */
int img_digest_fd(struct snap_ctx *ctx, int fd, const char *name, uint64_t *ret_size, uint64_t *ret_digest);

#endif
