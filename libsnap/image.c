/* Image files: their names, framing and digests, writing a dump directory and validating one before restore. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

/* For XXH3_state_t on the stack: readers hash without allocating. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "image.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define HDR_SIZE     ((size_t)sizeof(struct img_header))
#define TRAILER_SIZE ((size_t)12)
/* Framed files are built here and written out whenever it fills. */
#define WRITE_BUF_SIZE ((size_t)1 << 20)
/*
 * Page files are hashed in reads of this size: large enough that syscalls
 * cost nothing, small enough that the bytes are still in cache when hashed.
 */
#define HASH_BUF_SIZE ((size_t)1 << 20)
/* Large files are hashed through a mapping of this size at a time: no copy out of the page cache. */
#define HASH_WINDOW_SIZE ((size_t)64 << 20)
/* inventory.img holds exactly one record. */
#define INVENTORY_MAX (HDR_SIZE + 4 + IMG_MAX_RECORD + TRAILER_SIZE)
/* Longest name quoted from an untrusted inventory in a message. */
#define QUOTE_MAX 80

_Static_assert(sizeof(struct img_header) == 16, "the header is 16 bytes on disk");

struct kind_row {
	struct img_kind_info info;
	const char *file; /* the whole name, or for per-pid files what precedes "<pid>.img" */
	bool per_pid;
};

/* The schema of every kind of file: img_name, the readers, the writers and show all follow it. */
static const struct kind_row kinds[] = {
	[IMG_KIND_INVENTORY] = { { "inventory", true, &inventory_entry__descriptor, NULL }, IMG_INVENTORY, false },
	[IMG_KIND_PSTREE] = { { "pstree", true, NULL, &pstree_entry__descriptor }, "pstree.img", false },
	[IMG_KIND_CORE] = { { "core", true, &task_core_entry__descriptor, &thread_core_entry__descriptor },
			    "core-",
			    true },
	[IMG_KIND_MM] = { { "mm", true, &mm_entry__descriptor, &vma_entry__descriptor }, "mm-", true },
	[IMG_KIND_PAGEMAP] = { { "pagemap", true, &pagemap_head__descriptor, &pagemap_entry__descriptor },
			       "pagemap-",
			       true },
	[IMG_KIND_FILES] = { { "files", true, &fs_entry__descriptor, &fd_entry__descriptor }, "files-", true },
	[IMG_KIND_PAGES] = { { "pages", false, NULL, NULL }, "pages-", true },
	[IMG_KIND_OPEN_FILES] = { { "open-files", true, NULL, &file_entry__descriptor }, "open-files.img", false },
	[IMG_KIND_PIPES] = { { "pipes", true, NULL, &pipe_entry__descriptor }, "pipes.img", false },
	[IMG_KIND_FILE_CONTENTS] = { { "file-contents", true, NULL, &file_content_entry__descriptor },
				     "file-contents.img",
				     false },
	[IMG_KIND_FILE_DATA] = { { "file-data", false, NULL, NULL }, "file-data.img", false },
};

static const struct kind_row *kind_row(unsigned kind)
{
	if (kind >= ARRAY_SIZE(kinds) || !kinds[kind].file)
		return NULL;
	return &kinds[kind];
}

const struct img_kind_info *img_kind_info(enum img_kind kind)
{
	const struct kind_row *k = kind_row(kind);

	return k ? &k->info : NULL;
}

/* What record @index of a file of @info must be; NULL if the schema has no room for it. */
static const ProtobufCMessageDescriptor *schema_desc(const struct img_kind_info *info, unsigned index)
{
	if (index == 0 && info->first)
		return info->first;
	return info->rest;
}

void img_name(char out[IMG_NAME_MAX], enum img_kind kind, int pid)
{
	const struct kind_row *k = kind_row(kind);

	if (!k)
		snprintf(out, IMG_NAME_MAX, "unknown-%u.img", (unsigned)kind);
	else if (k->per_pid)
		snprintf(out, IMG_NAME_MAX, "%s%d.img", k->file, pid);
	else
		snprintf(out, IMG_NAME_MAX, "%s", k->file);
}

int img_name_parse(const char *name, int *ret_pid)
{
	for (unsigned i = 0; i < ARRAY_SIZE(kinds); i++) {
		const struct kind_row *k = &kinds[i];
		const char *p;
		long pid = 0;

		if (!k->file)
			continue;
		if (!k->per_pid) {
			if (strcmp(name, k->file))
				continue;
			if (ret_pid)
				*ret_pid = 0;
			return (int)i;
		}
		if (strncmp(name, k->file, strlen(k->file)))
			continue;
		/* Only img_name's spelling: a name has one meaning, and one name per file. */
		p = name + strlen(k->file);
		if (*p < '1' || *p > '9')
			continue;
		for (; *p >= '0' && *p <= '9' && pid <= INT_MAX; p++)
			pid = pid * 10 + (*p - '0');
		if (pid > INT_MAX || strcmp(p, ".img"))
			continue;
		if (ret_pid)
			*ret_pid = (int)pid;
		return (int)i;
	}
	return -EINVAL;
}

const char *img_host_arch(void)
{
	/* The names uname(2) gives on the CPUs we support, which are also what inventories record. */
	static const char *const known[] = { "x86_64", "aarch64" };
	struct utsname u;

	if (uname(&u) < 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(u.machine, known[i]))
			return known[i];
	return NULL;
}

/*
 * A libxxhash built with runtime CPU dispatch (Debian's x86-64 one is)
 * also exports these, which pick AVX2 or AVX-512 code: on large files they
 * hash about twice as fast as the baseline SSE2 entry points. Weak, so
 * that a libxxhash without them still links, and then we use the baseline.
 */
extern XXH64_hash_t XXH3_64bits_dispatch(const void *input, size_t len) __attribute__((weak));
extern XXH_errorcode XXH3_64bits_update_dispatch(XXH3_state_t *state, const void *input, size_t len)
	__attribute__((weak));

static void xxh_update(XXH3_state_t *st, const void *buf, size_t len)
{
	if (XXH3_64bits_update_dispatch)
		XXH3_64bits_update_dispatch(st, buf, len);
	else
		XXH3_64bits_update(st, buf, len);
}

uint64_t img_digest(const void *buf, size_t len)
{
	if (XXH3_64bits_dispatch)
		return XXH3_64bits_dispatch(buf, len);
	return XXH3_64bits(buf, len);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Writes all of @len bytes; regular files may still take them in pieces. */
static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		/* The kernel moves at most about 2 GiB per call anyway. */
		ssize_t n = write(fd, p, len < (1u << 30) ? len : (1u << 30));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly @len bytes from @off; -ENODATA if the file ends first. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len < (1u << 30) ? len : (1u << 30), (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- Writing ---- */

struct dir_file {
	char name[IMG_NAME_MAX];
	uint64_t size;
	uint64_t xxh3;
	bool done; /* closed without error: size and digest are final */
};

struct img_dir {
	int fd;
	size_t page_size;
	/* Every file created through this directory, so that abort removes exactly those. */
	struct dir_file *files;
	size_t nr_files, cap_files;
	unsigned nr_open; /* writers not closed yet */
};

/* What both writers share: the file, its running digest and its slot in the directory. */
struct out_file {
	struct img_dir *dir;
	size_t slot; /* in dir->files; SIZE_MAX for inventory.img, which lists the others */
	int fd;
	int err; /* first write error; the file is never recorded once set */
	uint64_t size;
	XXH3_state_t *xxh;
	char name[IMG_NAME_MAX];
};

int img_dir_create(struct snap_ctx *ctx, const char *path, struct img_dir **ret)
{
	struct img_dir *dir;
	struct stat st;
	long page_size = sysconf(_SC_PAGESIZE);
	int fd, r;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return snap_fail(ctx, -errno, "image directory %s: cannot create: %m", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return snap_fail(ctx, -errno, "image directory %s: cannot open: %m", path);
	/* Images hold memory contents: nobody else may read them, whatever the umask or an old mode. */
	if (fchmod(fd, 0700) < 0) {
		r = snap_fail(ctx, -errno, "image directory %s: cannot chmod 0700: %m", path);
		goto fail;
	}
	if (fstatat(fd, IMG_INVENTORY, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r = snap_fail(ctx, -EEXIST, "image directory %s already holds a dump (%s)", path, IMG_INVENTORY);
		goto fail;
	}
	if (errno != ENOENT) {
		r = snap_fail(ctx, -errno, "image directory %s: cannot look for %s: %m", path, IMG_INVENTORY);
		goto fail;
	}
	dir = calloc(1, sizeof(*dir));
	if (!dir) {
		r = snap_fail(ctx, -ENOMEM, "image directory %s: out of memory", path);
		goto fail;
	}
	dir->fd = fd;
	dir->page_size = page_size > 0 ? (size_t)page_size : 4096;
	*ret = dir;
	return 0;
fail:
	close(fd);
	return r;
}

int img_dir_fd(const struct img_dir *dir)
{
	return dir->fd;
}

static void dir_free(struct img_dir *dir)
{
	close(dir->fd);
	free(dir->files);
	free(dir);
}

void img_dir_abort(struct img_dir *dir)
{
	if (!dir)
		return;
	for (size_t i = 0; i < dir->nr_files; i++)
		unlinkat(dir->fd, dir->files[i].name, 0);
	dir_free(dir);
}

/* Creates file @name of @dir; @record: list it in the inventory once closed. */
static int out_open(struct snap_ctx *ctx, struct img_dir *dir, const char *name, bool record, struct out_file *o)
{
	*o = (struct out_file){ .dir = dir, .slot = SIZE_MAX, .fd = -1 };
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->xxh = XXH3_createState();
	if (!o->xxh || XXH3_64bits_reset(o->xxh) != XXH_OK) {
		XXH3_freeState(o->xxh);
		return snap_fail(ctx, -ENOMEM, "image %s: out of memory", name);
	}
	if (record && dir->nr_files == dir->cap_files) {
		size_t cap = dir->cap_files ? dir->cap_files * 2 : 16;
		struct dir_file *files = reallocarray(dir->files, cap, sizeof(*files));

		if (!files) {
			XXH3_freeState(o->xxh);
			return snap_fail(ctx, -ENOMEM, "image %s: out of memory", name);
		}
		dir->files = files;
		dir->cap_files = cap;
	}
	/* O_EXCL: never write over a file some earlier dump left, nor follow a planted symlink. */
	o->fd = openat(dir->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		XXH3_freeState(o->xxh);
		if (errno == EEXIST)
			return snap_fail(ctx, -EEXIST, "image %s: already exists in the image directory", name);
		return snap_fail(ctx, -errno, "image %s: cannot create: %m", name);
	}
	if (record) {
		o->slot = dir->nr_files++;
		dir->files[o->slot] = (struct dir_file){ 0 };
		snprintf(dir->files[o->slot].name, IMG_NAME_MAX, "%s", name);
	}
	dir->nr_open++;
	return 0;
}

/* Writes bytes already added to the digest. */
static int out_write(struct snap_ctx *ctx, struct out_file *o, const void *buf, size_t len)
{
	int r;

	if (o->err)
		return o->err;
	r = write_full(o->fd, buf, len);
	if (r < 0) {
		o->err = r;
		return snap_fail(ctx, r, "image %s: cannot write: %s", o->name, strerror(-r));
	}
	o->size += len;
	return 0;
}

/* Closes the file and, if all went well, records its size and digest for the inventory. */
static int out_close(struct snap_ctx *ctx, struct out_file *o)
{
	int r = o->err;

	if (close(o->fd) < 0 && !r)
		r = snap_fail(ctx, -errno, "image %s: cannot write: %m", o->name);
	if (!r && o->slot != SIZE_MAX) {
		struct dir_file *f = &o->dir->files[o->slot];

		f->size = o->size;
		f->xxh3 = XXH3_64bits_digest(o->xxh);
		f->done = true;
	}
	o->dir->nr_open--;
	XXH3_freeState(o->xxh);
	return r;
}

struct img_writer {
	struct out_file out;
	const struct img_kind_info *info;
	unsigned nr_records;
	uint8_t *buf;
	size_t len, cap;
};

/* Bytes are hashed as they enter the buffer, so the trailer can be hashed and written with them. */
static void writer_append(struct img_writer *w, const void *buf, size_t len)
{
	memcpy(w->buf + w->len, buf, len);
	xxh_update(w->out.xxh, buf, len);
	w->len += len;
}

static int writer_flush(struct snap_ctx *ctx, struct img_writer *w)
{
	int r = out_write(ctx, &w->out, w->buf, w->len);

	w->len = 0;
	return r;
}

static int writer_open(struct snap_ctx *ctx, struct img_dir *dir, enum img_kind kind, int pid, bool record,
		       struct img_writer **ret)
{
	struct img_header h = { htole32(IMG_MAGIC), htole32(kind), htole32(IMG_FORMAT_VERSION), 0 };
	char name[IMG_NAME_MAX];
	struct img_writer *w;
	int r;

	img_name(name, kind, pid);
	w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc(WRITE_BUF_SIZE);
	if (!w || !w->buf) {
		free(w);
		return snap_fail(ctx, -ENOMEM, "image %s: out of memory", name);
	}
	w->cap = WRITE_BUF_SIZE;
	w->info = img_kind_info(kind);
	r = out_open(ctx, dir, name, record, &w->out);
	if (r < 0) {
		free(w->buf);
		free(w);
		return r;
	}
	writer_append(w, &h, sizeof(h));
	*ret = w;
	return 0;
}

int img_writer_open(struct snap_ctx *ctx, struct img_dir *dir, enum img_kind kind, int pid, struct img_writer **ret)
{
	const struct img_kind_info *info = img_kind_info(kind);

	if (!info || !info->framed || kind == IMG_KIND_INVENTORY)
		return snap_fail(ctx, -EINVAL, "image kind %u: not one that img_writer_open writes", (unsigned)kind);
	if (kind_row(kind)->per_pid && pid <= 0)
		return snap_fail(ctx, -EINVAL, "%s image: bad pid %d", info->name, pid);
	return writer_open(ctx, dir, kind, pid, true, ret);
}

int img_write_msg(struct snap_ctx *ctx, struct img_writer *w, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *want = schema_desc(w->info, w->nr_records);
	uint8_t len_le[4];
	size_t size;

	if (w->out.err)
		return w->out.err;
	if (!want)
		return snap_fail(ctx, -EINVAL, "image %s: record %u: a %s image has no more records", w->out.name,
				 w->nr_records, w->info->name);
	if (msg->descriptor != want)
		return snap_fail(ctx, -EINVAL, "image %s: record %u is a %s, the schema wants a %s", w->out.name,
				 w->nr_records, msg->descriptor->name, want->name);
	/* Packing a message with a required string or message left NULL would crash. */
	if (!protobuf_c_message_check(msg))
		return snap_fail(ctx, -EINVAL, "image %s: record %u: %s has required fields unset", w->out.name,
				 w->nr_records, want->name);
	size = protobuf_c_message_get_packed_size(msg);
	if (size > IMG_MAX_RECORD)
		return snap_fail(ctx, -E2BIG, "image %s: record %u: %s is %zu bytes, over the limit of %u", w->out.name,
				 w->nr_records, want->name, size, IMG_MAX_RECORD);
	if (w->cap - w->len < 4 + size) {
		int r = writer_flush(ctx, w);

		if (r < 0)
			return r;
		if (w->cap < 4 + size) {
			uint8_t *buf = realloc(w->buf, 4 + size);

			if (!buf)
				return snap_fail(ctx, -ENOMEM, "image %s: out of memory", w->out.name);
			w->buf = buf;
			w->cap = 4 + size;
		}
	}
	put_le32(len_le, (uint32_t)size);
	writer_append(w, len_le, 4);
	if (protobuf_c_message_pack(msg, w->buf + w->len) != size) {
		/* The record is half in the digest already: the file cannot be finished. */
		w->out.err = -EINVAL;
		return snap_fail(ctx, -EINVAL, "image %s: record %u: %s packed to an unexpected size", w->out.name,
				 w->nr_records, want->name);
	}
	xxh_update(w->out.xxh, w->buf + w->len, size);
	w->len += size;
	w->nr_records++;
	return 0;
}

int img_writer_close(struct snap_ctx *ctx, struct img_writer *w)
{
	uint8_t trailer[TRAILER_SIZE];
	int r = 0;

	if (!w)
		return 0;
	if (!w->out.err) {
		put_le32(trailer, IMG_TRAILER_MARK);
		put_le64(trailer + 4, XXH3_64bits_digest(w->out.xxh));
		if (w->cap - w->len < sizeof(trailer))
			r = writer_flush(ctx, w);
		if (!r) {
			/* After this the state holds the whole-file digest the inventory lists. */
			writer_append(w, trailer, sizeof(trailer));
			r = writer_flush(ctx, w);
		}
	}
	r = out_close(ctx, &w->out) ?: r;
	free(w->buf);
	free(w);
	return r;
}

struct img_pages_writer {
	struct out_file out;
	size_t page_size; /* 1 for kinds whose writes may have any length */
};

int img_pages_open(struct snap_ctx *ctx, struct img_dir *dir, int pid, struct img_pages_writer **ret)
{
	return img_raw_open(ctx, dir, IMG_KIND_PAGES, pid, ret);
}

int img_raw_open(struct snap_ctx *ctx, struct img_dir *dir, enum img_kind kind, int pid, struct img_pages_writer **ret)
{
	const struct kind_row *k = kind_row(kind);
	char name[IMG_NAME_MAX];
	struct img_pages_writer *w;
	int r;

	if (!k || k->info.framed)
		return snap_fail(ctx, -EINVAL, "image kind %u: not a raw image", (unsigned)kind);
	img_name(name, kind, pid);
	if (k->per_pid && pid <= 0)
		return snap_fail(ctx, -EINVAL, "%s image: bad pid %d", k->info.name, pid);
	w = calloc(1, sizeof(*w));
	if (!w)
		return snap_fail(ctx, -ENOMEM, "image %s: out of memory", name);
	r = out_open(ctx, dir, name, true, &w->out);
	if (r < 0) {
		free(w);
		return r;
	}
	w->page_size = kind == IMG_KIND_PAGES ? dir->page_size : 1;
	*ret = w;
	return 0;
}

int img_pages_write(struct snap_ctx *ctx, struct img_pages_writer *w, const void *buf, size_t len, uint64_t *ret_offset)
{
	uint64_t off = w->out.size;
	int r;

	if (w->out.err)
		return w->out.err;
	/* Restore maps and preads page files: every run must start on a page boundary. */
	if (len % w->page_size)
		return snap_fail(ctx, -EINVAL, "image %s: %zu bytes is not a whole number of pages", w->out.name, len);
	r = out_write(ctx, &w->out, buf, len);
	if (r < 0)
		return r;
	xxh_update(w->out.xxh, buf, len);
	if (ret_offset)
		*ret_offset = off;
	return 0;
}

int img_pages_close(struct snap_ctx *ctx, struct img_pages_writer *w)
{
	int r;

	if (!w)
		return 0;
	r = out_close(ctx, &w->out);
	free(w);
	return r;
}

const char *img_pages_name(const struct img_pages_writer *w)
{
	return w->out.name;
}

static int cmp_dir_file(const void *a, const void *b)
{
	return strcmp(((const struct dir_file *)a)->name, ((const struct dir_file *)b)->name);
}

int img_dir_finish(struct snap_ctx *ctx, struct img_dir *dir, InventoryEntry *inv)
{
	size_t saved_n = inv->n_files;
	FileDigest **saved_files = inv->files;
	uint32_t saved_version = inv->format_version;
	struct img_writer *w = NULL;
	FileDigest *digests = NULL;
	FileDigest **ptrs = NULL;
	int r;

	if (dir->nr_open) {
		r = snap_fail(ctx, -EINVAL, "image directory: %u image files still open at the end of the dump",
			      dir->nr_open);
		goto fail;
	}
	for (size_t i = 0; i < dir->nr_files; i++) {
		if (!dir->files[i].done) {
			r = snap_fail(ctx, -EIO, "image %s: not written completely", dir->files[i].name);
			goto fail;
		}
	}
	/* Sorted, so that two dumps of the same tree list their files alike. */
	if (dir->nr_files)
		qsort(dir->files, dir->nr_files, sizeof(*dir->files), cmp_dir_file);
	digests = calloc(dir->nr_files + 1, sizeof(*digests));
	ptrs = calloc(dir->nr_files + 1, sizeof(*ptrs));
	if (!digests || !ptrs) {
		r = snap_fail(ctx, -ENOMEM, "image %s: out of memory", IMG_INVENTORY);
		goto fail;
	}
	for (size_t i = 0; i < dir->nr_files; i++) {
		file_digest__init(&digests[i]);
		digests[i].name = dir->files[i].name;
		digests[i].size = dir->files[i].size;
		digests[i].xxh3 = dir->files[i].xxh3;
		ptrs[i] = &digests[i];
	}
	inv->format_version = IMG_FORMAT_VERSION;
	inv->n_files = dir->nr_files;
	inv->files = ptrs;
	r = writer_open(ctx, dir, IMG_KIND_INVENTORY, 0, false, &w);
	if (r < 0)
		goto fail;
	r = img_write_msg(ctx, w, &inv->base);
	r = img_writer_close(ctx, w) ?: r;
	if (r < 0) {
		unlinkat(dir->fd, IMG_INVENTORY, 0);
		goto fail;
	}
	inv->n_files = saved_n;
	inv->files = saved_files;
	inv->format_version = saved_version;
	free(ptrs);
	free(digests);
	dir_free(dir);
	return 0;
fail:
	inv->n_files = saved_n;
	inv->files = saved_files;
	inv->format_version = saved_version;
	free(ptrs);
	free(digests);
	img_dir_abort(dir);
	return r;
}

/* ---- Reading ---- */

/* Opens a file of the image directory that must be a regular file; *ret_size is its size. */
/* Opens image @name as a regular file; *ret_st (if not NULL) gets its status. */
static int open_image(struct snap_ctx *ctx, int dirfd, const char *name, int *ret_fd, uint64_t *ret_size,
		      struct stat *ret_st)
{
	struct stat st;
	int fd;

	/* O_NOFOLLOW: what we check must be what the directory holds, not what a link points to. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return snap_fail(ctx, -ENOENT, "image %.*s: missing", QUOTE_MAX, name);
		return snap_fail(ctx, -errno, "image %.*s: cannot open: %m", QUOTE_MAX, name);
	}
	if (fstat(fd, &st) < 0) {
		int r = snap_fail(ctx, -errno, "image %.*s: cannot stat: %m", QUOTE_MAX, name);

		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return snap_fail(ctx, -EBADMSG, "image %.*s: not a regular file", QUOTE_MAX, name);
	}
	/* O_NONBLOCK only kept a planted FIFO from hanging the open; callers get a plain fd. */
	fcntl(fd, F_SETFL, 0);
	*ret_fd = fd;
	*ret_size = (uint64_t)st.st_size;
	if (ret_st)
		*ret_st = st;
	return 0;
}

/*
 * Hashes the first @size bytes of @fd through read-only mappings, a window at a time; restore checks every
 * page file this way, and reading them through a buffer cost a copy of each page (about a third of the
 * time). Returns 1 if mapping is not possible (the caller reads instead).
 */
static int digest_mapped(int fd, uint64_t size, XXH3_state_t *st)
{
	for (uint64_t off = 0; off < size; off += HASH_WINDOW_SIZE) {
		size_t len = size - off < HASH_WINDOW_SIZE ? (size_t)(size - off) : HASH_WINDOW_SIZE;
		void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, (off_t)off);

		if (p == MAP_FAILED)
			return off ? -errno : 1;
		xxh_update(st, p, len);
		munmap(p, len);
	}
	return 0;
}

int img_digest_fd(struct snap_ctx *ctx, int fd, const char *name, uint64_t *ret_size, uint64_t *ret_digest)
{
	XXH3_state_t st;
	uint64_t off = 0;
	struct stat sb;
	uint8_t *buf;
	int r = 0;

	/* A regular file that stays the size fstat says is hashed mapped; a file being cut short is read. */
	if (!fstat(fd, &sb) && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size >= HASH_BUF_SIZE) {
		XXH3_INITSTATE(&st);
		XXH3_64bits_reset(&st);
		r = digest_mapped(fd, (uint64_t)sb.st_size, &st);
		if (r < 0)
			return snap_fail(ctx, r, "image %.*s: cannot map it to check it: %m", QUOTE_MAX, name);
		if (r == 0) {
			*ret_size = (uint64_t)sb.st_size;
			*ret_digest = XXH3_64bits_digest(&st);
			return 0;
		}
		r = 0;
	}
	buf = malloc(HASH_BUF_SIZE);
	if (!buf)
		return snap_fail(ctx, -ENOMEM, "image %.*s: out of memory", QUOTE_MAX, name);
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	/* Only a hint that lets the kernel read ahead further; failing it costs nothing. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = pread(fd, buf, HASH_BUF_SIZE, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = snap_fail(ctx, -errno, "image %.*s: cannot read: %m", QUOTE_MAX, name);
			break;
		}
		if (n == 0)
			break;
		xxh_update(&st, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (r < 0)
		return r;
	*ret_size = off;
	*ret_digest = XXH3_64bits_digest(&st);
	return 0;
}

/*
 * Checks the framing of a whole framed file: header, trailer and its digest,
 * and that the record lengths tile exactly what lies between. *ret_kind is
 * the kind in the header, *ret_whole the digest of all of the file.
 */
static int frame_check(struct snap_ctx *ctx, const char *name, const uint8_t *buf, size_t size, int want,
		       enum img_kind *ret_kind, uint64_t *ret_whole)
{
	const struct img_kind_info *info;
	uint32_t magic, kind, version, reserved;
	XXH3_state_t st;
	size_t pos, end;
	unsigned index;

	if (size < HDR_SIZE)
		return snap_fail(ctx, -EBADMSG, "image %.*s: truncated (no header)", QUOTE_MAX, name);
	magic = get_le32(buf);
	kind = get_le32(buf + 4);
	version = get_le32(buf + 8);
	reserved = get_le32(buf + 12);
	if (magic != IMG_MAGIC)
		return snap_fail(ctx, -EBADMSG, "image %.*s: bad magic 0x%08x (not a libsnap image)", QUOTE_MAX, name,
				 magic);
	if (version != IMG_FORMAT_VERSION)
		return snap_fail(ctx, -EPROTONOSUPPORT, "image %.*s: format version %u, this build reads version %u",
				 QUOTE_MAX, name, version, IMG_FORMAT_VERSION);
	info = img_kind_info(kind);
	if (!info || !info->framed)
		return snap_fail(ctx, -EBADMSG, "image %.*s: unknown image kind %u", QUOTE_MAX, name, kind);
	if (want > 0 && kind != (unsigned)want)
		return snap_fail(ctx, -EBADMSG, "image %.*s: holds a %s image, expected %s", QUOTE_MAX, name,
				 info->name, img_kind_info(want)->name);
	if (reserved)
		return snap_fail(ctx, -EBADMSG, "image %.*s: reserved header field is %u, not 0", QUOTE_MAX, name,
				 reserved);
	if (size < HDR_SIZE + TRAILER_SIZE || get_le32(buf + size - TRAILER_SIZE) != IMG_TRAILER_MARK)
		return snap_fail(ctx, -EBADMSG, "image %.*s: truncated (no trailer)", QUOTE_MAX, name);
	end = size - TRAILER_SIZE;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	xxh_update(&st, buf, end);
	if (XXH3_64bits_digest(&st) != get_le64(buf + end + 4))
		return snap_fail(ctx, -EBADMSG, "image %.*s: digest mismatch (corrupted)", QUOTE_MAX, name);
	xxh_update(&st, buf + end, TRAILER_SIZE);
	/* The digest matched, so a bad length here was written so, not damaged on the way. */
	for (pos = HDR_SIZE, index = 0; pos < end; index++) {
		uint32_t len;

		if (end - pos < 4)
			return snap_fail(ctx, -EBADMSG, "image %.*s: record %u: truncated length", QUOTE_MAX, name,
					 index);
		len = get_le32(buf + pos);
		if (len > IMG_MAX_RECORD)
			return snap_fail(ctx, -EBADMSG, "image %.*s: record %u: length %u over the limit of %u",
					 QUOTE_MAX, name, index, len, IMG_MAX_RECORD);
		if (len > end - pos - 4)
			return snap_fail(ctx, -EBADMSG, "image %.*s: record %u: length %u beyond the end of the file",
					 QUOTE_MAX, name, index, len);
		pos += 4 + (size_t)len;
	}
	*ret_kind = (enum img_kind)kind;
	*ret_whole = XXH3_64bits_digest(&st);
	return 0;
}

struct img_reader {
	const struct img_kind_info *info;
	enum img_kind kind;
	uint8_t *buf;
	size_t pos, end; /* records lie in [pos, end) */
	unsigned index;	 /* of the next record */
	char name[NAME_MAX + 1];
};

/*
 * Loads and checks framed file @name. @want: the kind it must be, or 0 to
 * take it from a name spelled by img_name() or else from the header.
 */
static int reader_open(struct snap_ctx *ctx, int dirfd, const char *name, int want, const FileDigest *expect,
		       uint64_t max_size, struct img_reader **ret)
{
	struct img_reader *r = NULL;
	uint8_t *buf = NULL;
	enum img_kind kind;
	uint64_t size, whole;
	int fd, err;

	if (want <= 0)
		want = img_name_parse(name, NULL);
	if (want > 0 && !img_kind_info(want)->framed)
		return snap_fail(ctx, -EINVAL, "image %.*s: a raw page file has no records", QUOTE_MAX, name);
	err = open_image(ctx, dirfd, name, &fd, &size, NULL);
	if (err < 0)
		return err;
	if (expect && size != expect->size) {
		err = snap_fail(ctx, -EBADMSG, "image %.*s: %llu bytes, %s lists %llu (truncated or changed)",
				QUOTE_MAX, name, (unsigned long long)size, IMG_INVENTORY,
				(unsigned long long)expect->size);
		goto out;
	}
	if (size > max_size || size > SIZE_MAX / 2) {
		err = snap_fail(ctx, -EFBIG, "image %.*s: %llu bytes, too large", QUOTE_MAX, name,
				(unsigned long long)size);
		goto out;
	}
	buf = malloc(size ? size : 1);
	r = calloc(1, sizeof(*r));
	if (!buf || !r) {
		err = snap_fail(ctx, -ENOMEM, "image %.*s: out of memory", QUOTE_MAX, name);
		goto out;
	}
	err = pread_full(fd, buf, size, 0);
	if (err < 0) {
		err = snap_fail(ctx, err, "image %.*s: cannot read: %s", QUOTE_MAX, name,
				err == -ENODATA ? "it shrank while being read" : strerror(-err));
		goto out;
	}
	err = frame_check(ctx, name, buf, size, want, &kind, &whole);
	if (err < 0)
		goto out;
	if (expect && whole != expect->xxh3) {
		err = snap_fail(ctx, -EBADMSG, "image %.*s: digest differs from the one %s lists (replaced?)",
				QUOTE_MAX, name, IMG_INVENTORY);
		goto out;
	}
	r->kind = kind;
	r->info = img_kind_info(kind);
	r->buf = buf;
	r->pos = HDR_SIZE;
	r->end = size - TRAILER_SIZE;
	snprintf(r->name, sizeof(r->name), "%s", name);
	*ret = r;
	buf = NULL;
	r = NULL;
out:
	free(r);
	free(buf);
	close(fd);
	return err;
}

int img_reader_open_file(struct snap_ctx *ctx, int dirfd, const char *name, const FileDigest *expect,
			 struct img_reader **ret)
{
	return reader_open(ctx, dirfd, name, 0, expect, UINT64_MAX, ret);
}

int img_read_msg(struct snap_ctx *ctx, struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg)
{
	const ProtobufCMessageDescriptor *want = schema_desc(r->info, r->index);
	ProtobufCMessage *msg;
	uint32_t len;

	if (r->pos >= r->end)
		return 0;
	if (!want)
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: unexpected record after the %s", r->name,
				 r->index, r->info->first ? r->info->first->name : "header");
	if (desc != want)
		return snap_fail(ctx, -EINVAL, "image %s: record %u: read as a %s, but it is a %s", r->name, r->index,
				 desc->name, want->name);
	/* Checked when the file was loaded, and checked again: this is what keeps the unpack in bounds. */
	if (r->end - r->pos < 4)
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: truncated length", r->name, r->index);
	len = get_le32(r->buf + r->pos);
	if (len > IMG_MAX_RECORD || len > r->end - r->pos - 4)
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: bad length %u", r->name, r->index, len);
	msg = protobuf_c_message_unpack(desc, NULL, len, r->buf + r->pos + 4);
	if (!msg)
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: malformed %s", r->name, r->index, desc->name);
	if (msg->descriptor != desc) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: decoded as the wrong message", r->name, r->index);
	}
	r->pos += 4 + (size_t)len;
	r->index++;
	*ret_msg = msg;
	return 1;
}

int img_read_one(struct snap_ctx *ctx, struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage **ret_msg)
{
	int err = img_read_msg(ctx, r, desc, ret_msg);

	if (err == 0)
		return snap_fail(ctx, -EBADMSG, "image %s: missing %s record", r->name, desc->name);
	return err < 0 ? err : 0;
}

int img_read_next(struct snap_ctx *ctx, struct img_reader *r, ProtobufCMessage **ret_msg)
{
	const ProtobufCMessageDescriptor *want = schema_desc(r->info, r->index);

	if (r->pos >= r->end)
		return 0;
	if (!want)
		return snap_fail(ctx, -EBADMSG, "image %s: record %u: unexpected record after the %s", r->name,
				 r->index, r->info->first ? r->info->first->name : "header");
	return img_read_msg(ctx, r, want, ret_msg);
}

void img_reader_close(struct img_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

const char *img_reader_name(const struct img_reader *r)
{
	return r->name;
}

enum img_kind img_reader_kind(const struct img_reader *r)
{
	return r->kind;
}

int img_inventory_load(struct snap_ctx *ctx, int dirfd, InventoryEntry **ret)
{
	struct img_reader *r;
	ProtobufCMessage *msg;
	struct stat st;
	int err;

	/* Written last, so its absence says more than a missing file would. */
	if (fstatat(dirfd, IMG_INVENTORY, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return snap_fail(ctx, -ENOENT, "image %s: missing (not a complete dump)", IMG_INVENTORY);
	err = reader_open(ctx, dirfd, IMG_INVENTORY, IMG_KIND_INVENTORY, NULL, INVENTORY_MAX, &r);
	if (err < 0)
		return err;
	err = img_read_one(ctx, r, &inventory_entry__descriptor, &msg);
	if (err < 0)
		goto out;
	/* The schema has room for one record only, so this fails if there is a second. */
	err = img_read_next(ctx, r, &msg);
	if (err < 0) {
		protobuf_c_message_free_unpacked(msg, NULL);
		goto out;
	}
	*ret = (InventoryEntry *)msg;
out:
	img_reader_close(r);
	return err;
}

struct img_set {
	int dirfd;
	InventoryEntry *inv;
	FileDigest **by_name; /* inv->files sorted by name, for lookups */
};

static int cmp_digest_name(const void *a, const void *b)
{
	return strcmp((*(FileDigest *const *)a)->name, (*(FileDigest *const *)b)->name);
}

static const FileDigest *set_find(const struct img_set *set, const char *name)
{
	FileDigest key = { .name = (char *)name };
	const FileDigest *kp = &key;
	FileDigest **hit;

	if (!set->inv->n_files)
		return NULL;
	hit = bsearch(&kp, set->by_name, set->inv->n_files, sizeof(*set->by_name), cmp_digest_name);
	return hit ? *hit : NULL;
}

/* Names come from the image: only image names, so none can point outside the directory. */
static int check_listed_name(struct snap_ctx *ctx, const char *name)
{
	int kind;

	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return snap_fail(ctx, -EBADMSG, "image %s: lists \"%.*s\", which is not a plain file name",
				 IMG_INVENTORY, QUOTE_MAX, name);
	kind = img_name_parse(name, NULL);
	if (kind < 0)
		return snap_fail(ctx, -EBADMSG, "image %s: lists \"%.*s\", which is not an image file name",
				 IMG_INVENTORY, QUOTE_MAX, name);
	if (kind == IMG_KIND_INVENTORY)
		return snap_fail(ctx, -EBADMSG, "image %s: lists itself", IMG_INVENTORY);
	return 0;
}

/*
 * Restoring one snapshot again and again (the serverless case) re-hashed every page file each time: about
 * a quarter of a JVM's restore. A page file found intact is marked with this extended attribute: its
 * digest, inode, size and modification time. Any later write changes the time, so a file whose mark still
 * matches is the one that was checked, and is not hashed again. Marking is best effort (a read-only or
 * xattr-less file system is simply hashed every time).
 */
#define CHECKED_XATTR "user.libsnap.checked"

struct checked_mark {
	uint64_t xxh3;
	uint64_t ino;
	uint64_t size;
	int64_t mtime_ns;
};

/* The mark file @f would carry with status @st; the status is taken before hashing, so a write during it unmarks. */
static struct checked_mark checked_mark_of(const struct stat *st, const FileDigest *f)
{
	return (struct checked_mark){
		.xxh3 = f->xxh3,
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
	};
}

static bool checked_before(int fd, const struct stat *st, const FileDigest *f)
{
	struct checked_mark want = checked_mark_of(st, f), got;

	return fgetxattr(fd, CHECKED_XATTR, &got, sizeof(got)) == sizeof(got) && !memcmp(&want, &got, sizeof(got));
}

static void mark_checked(int fd, const struct stat *st, const FileDigest *f)
{
	struct checked_mark m = checked_mark_of(st, f);

	(void)fsetxattr(fd, CHECKED_XATTR, &m, sizeof(m), 0);
}

/* Checks that listed file @f is there with the listed size and digest, framing included. */
static int check_listed_file(struct snap_ctx *ctx, struct img_set *set, const FileDigest *f)
{
	struct img_reader *r;
	struct stat st;
	uint64_t size, digest;
	int fd, err;

	if (img_kind_info(img_name_parse(f->name, NULL))->framed) {
		err = reader_open(ctx, set->dirfd, f->name, 0, f, UINT64_MAX, &r);
		img_reader_close(err < 0 ? NULL : r);
		return err;
	}
	err = open_image(ctx, set->dirfd, f->name, &fd, &size, &st);
	if (err < 0)
		return err;
	if (size != f->size) {
		err = snap_fail(ctx, -EBADMSG, "image %s: %llu bytes, %s lists %llu (truncated or changed)", f->name,
				(unsigned long long)size, IMG_INVENTORY, (unsigned long long)f->size);
		goto out;
	}
	if (checked_before(fd, &st, f))
		goto out;
	err = img_digest_fd(ctx, fd, f->name, &size, &digest);
	if (err < 0)
		goto out;
	if (size != f->size)
		err = snap_fail(ctx, -EBADMSG, "image %s: changed while being checked", f->name);
	else if (digest != f->xxh3)
		err = snap_fail(ctx, -EBADMSG, "image %s: digest mismatch (corrupted)", f->name);
	else
		mark_checked(fd, &st, f);
out:
	close(fd);
	return err;
}

int img_set_open(struct snap_ctx *ctx, const char *path, struct img_set **ret)
{
	const char *arch = img_host_arch();
	long page_size = sysconf(_SC_PAGESIZE);
	struct img_set *set;
	InventoryEntry *inv;
	int err;

	set = calloc(1, sizeof(*set));
	if (!set)
		return snap_fail(ctx, -ENOMEM, "image directory %s: out of memory", path);
	set->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (set->dirfd < 0) {
		err = snap_fail(ctx, -errno, "image directory %s: cannot open: %m", path);
		free(set);
		return err;
	}
	err = img_inventory_load(ctx, set->dirfd, &set->inv);
	if (err < 0)
		goto fail;
	inv = set->inv;
	if (inv->format_version != IMG_FORMAT_VERSION) {
		err = snap_fail(ctx, -EPROTONOSUPPORT, "image %s: format version %u, this build reads version %u",
				IMG_INVENTORY, inv->format_version, IMG_FORMAT_VERSION);
		goto fail;
	}
	if (!arch) {
		err = snap_fail(ctx, -ENOEXEC, "image %s: this machine's architecture is not one libsnap knows",
				IMG_INVENTORY);
		goto fail;
	}
	if (strcmp(inv->arch, arch)) {
		err = snap_fail(ctx, -ENOEXEC, "image %s: dump of an %.*s machine, this one is %s", IMG_INVENTORY,
				QUOTE_MAX, inv->arch, arch);
		goto fail;
	}
	if ((long)inv->page_size != page_size) {
		err = snap_fail(ctx, -ENOEXEC, "image %s: page size %u, this machine's is %ld", IMG_INVENTORY,
				inv->page_size, page_size);
		goto fail;
	}
	for (size_t i = 0; i < inv->n_files; i++) {
		err = check_listed_name(ctx, inv->files[i]->name);
		if (err < 0)
			goto fail;
	}
	if (inv->n_files) {
		set->by_name = malloc(inv->n_files * sizeof(*set->by_name));
		if (!set->by_name) {
			err = snap_fail(ctx, -ENOMEM, "image %s: out of memory", IMG_INVENTORY);
			goto fail;
		}
		memcpy(set->by_name, inv->files, inv->n_files * sizeof(*set->by_name));
		qsort(set->by_name, inv->n_files, sizeof(*set->by_name), cmp_digest_name);
	}
	for (size_t i = 1; i < inv->n_files; i++) {
		if (!strcmp(set->by_name[i - 1]->name, set->by_name[i]->name)) {
			err = snap_fail(ctx, -EBADMSG, "image %s: lists %s twice", IMG_INVENTORY,
					set->by_name[i]->name);
			goto fail;
		}
	}
	for (size_t i = 0; i < inv->n_files; i++) {
		err = check_listed_file(ctx, set, inv->files[i]);
		if (err < 0)
			goto fail;
	}
	*ret = set;
	return 0;
fail:
	img_set_close(set);
	return err;
}

void img_set_close(struct img_set *set)
{
	if (!set)
		return;
	if (set->inv)
		inventory_entry__free_unpacked(set->inv, NULL);
	free(set->by_name);
	close(set->dirfd);
	free(set);
}

const InventoryEntry *img_set_inventory(const struct img_set *set)
{
	return set->inv;
}

int img_set_dirfd(const struct img_set *set)
{
	return set->dirfd;
}

int img_reader_open(struct snap_ctx *ctx, struct img_set *set, enum img_kind kind, int pid, struct img_reader **ret)
{
	const struct img_kind_info *info = img_kind_info(kind);
	char name[IMG_NAME_MAX];
	const FileDigest *f = NULL;

	if (!info || !info->framed)
		return snap_fail(ctx, -EINVAL, "image kind %u: not a framed image", (unsigned)kind);
	img_name(name, kind, pid);
	/* Only what the inventory lists was validated; anything else in the directory is not part of the dump. */
	if (kind != IMG_KIND_INVENTORY) {
		f = set_find(set, name);
		if (!f)
			return snap_fail(ctx, -ENOENT, "image %s: not listed in %s", name, IMG_INVENTORY);
	}
	return reader_open(ctx, set->dirfd, name, kind, f, kind == IMG_KIND_INVENTORY ? INVENTORY_MAX : UINT64_MAX,
			   ret);
}

/* Opens raw file @name of @set, which must be listed and of @kind. */
static int open_raw(struct snap_ctx *ctx, struct img_set *set, const char *name, enum img_kind kind, uint64_t *ret_size)
{
	const FileDigest *f = set_find(set, name);
	uint64_t size;
	int fd, err;

	if (!f)
		return snap_fail(ctx, -ENOENT, "image %.*s: not listed in %s", QUOTE_MAX, name, IMG_INVENTORY);
	if (img_name_parse(name, NULL) != (int)kind)
		return snap_fail(ctx, -EINVAL, "image %s: not a %s file", name, img_kind_info(kind)->name);
	err = open_image(ctx, set->dirfd, name, &fd, &size, NULL);
	if (err < 0)
		return err;
	if (size != f->size) {
		close(fd);
		return snap_fail(ctx, -EBADMSG, "image %s: %llu bytes, %s lists %llu (truncated or changed)", name,
				 (unsigned long long)size, IMG_INVENTORY, (unsigned long long)f->size);
	}
	if (ret_size)
		*ret_size = size;
	return fd;
}

int img_set_open_raw(struct snap_ctx *ctx, struct img_set *set, enum img_kind kind, int pid, uint64_t *ret_size)
{
	const struct img_kind_info *info = img_kind_info(kind);
	char name[IMG_NAME_MAX];

	if (!info || info->framed)
		return snap_fail(ctx, -EINVAL, "image kind %u: not a raw image", (unsigned)kind);
	img_name(name, kind, pid);
	return open_raw(ctx, set, name, kind, ret_size);
}

int img_set_open_pages(struct snap_ctx *ctx, struct img_set *set, const char *name, uint64_t *ret_size)
{
	return open_raw(ctx, set, name, IMG_KIND_PAGES, ret_size);
}
