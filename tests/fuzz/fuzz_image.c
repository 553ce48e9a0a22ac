/* libFuzzer target: any bytes as one image file, read by everything that reads images (validation, readers, show). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

/*
 * Input layout: one mode byte, then the file. Mode bits:
 *   0-3  which file it is: inventory.img, pstree.img, core-1.img, mm-1.img,
 *        pagemap-1.img, files-1.img, pages-1.img, open-files.img, pipes.img,
 *        file-contents.img, file-data.img, or a name that is no image
 *   4    also write an inventory.img listing it with its true size and digest
 *   5    append a valid trailer, so that mutations get past the digest and
 *        reach the record parser
 */
#define MODE_KIND      0x0f
#define MODE_INVENTORY 0x10
#define MODE_TRAILER   0x20

static const char *const names[] = {
	"inventory.img", "pstree.img",	   "core-1.img",	"mm-1.img",  "pagemap-1.img", "files-1.img",
	"pages-1.img",	 "open-files.img", "file-contents.img", "pipes.img", "file-data.img", "blob.img",
};

/* The harness, unlike the library, may keep state across runs: the directory and /dev/null. */
static char dir[64];
static int dir_fd = -1;
static int devnull = -1;

static void write_file(const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		abort();
	if ((alen && write(fd, a, alen) != (ssize_t)alen) || (blen && write(fd, b, blen) != (ssize_t)blen))
		abort();
	close(fd);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void make_trailer(uint8_t trailer[12], uint64_t digest)
{
	put_le32(trailer, IMG_TRAILER_MARK);
	put_le32(trailer + 4, (uint32_t)digest);
	put_le32(trailer + 8, (uint32_t)(digest >> 32));
}

/* An inventory that lists @name as the only file, as a correct dump would write it. */
static void write_inventory(const char *name, uint64_t size, uint64_t digest)
{
	FileDigest fd = FILE_DIGEST__INIT;
	FileDigest *fdp = &fd;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	uint8_t trailer[12];
	uint8_t *buf;
	size_t len;

	fd.name = (char *)name;
	fd.size = size;
	fd.xxh3 = digest;
	inv.format_version = IMG_FORMAT_VERSION;
	inv.arch = (char *)(img_host_arch() ?: "unknown");
	inv.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	inv.kernel_release = "fuzz";
	inv.boot_id = "fuzz";
	inv.root_pid = 1;
	inv.n_files = 1;
	inv.files = &fdp;
	len = protobuf_c_message_get_packed_size(&inv.base);
	buf = malloc(20 + len);
	put_le32(buf, IMG_MAGIC);
	put_le32(buf + 4, IMG_KIND_INVENTORY);
	put_le32(buf + 8, IMG_FORMAT_VERSION);
	put_le32(buf + 12, 0);
	put_le32(buf + 16, (uint32_t)len);
	protobuf_c_message_pack(&inv.base, buf + 20);
	make_trailer(trailer, img_digest(buf, 20 + len));
	write_file(IMG_INVENTORY, buf, 20 + len, trailer, sizeof(trailer));
	free(buf);
}

static void read_all(snap_ctx *ctx, struct img_reader *r)
{
	ProtobufCMessage *msg;

	while (img_read_next(ctx, r, &msg) > 0)
		protobuf_c_message_free_unpacked(msg, NULL);
	img_reader_close(r);
}

/* What restore does: validate the set, then read every file it lists. */
static void read_set(snap_ctx *ctx)
{
	struct img_set *set;
	struct img_reader *r;
	const InventoryEntry *inv;

	if (img_set_open(ctx, dir, &set) < 0)
		return;
	inv = img_set_inventory(set);
	for (size_t i = 0; i < inv->n_files; i++) {
		int pid, kind = img_name_parse(inv->files[i]->name, &pid);
		uint64_t size;

		if (!img_kind_info(kind)->framed) {
			int fd = kind == IMG_KIND_PAGES ? img_set_open_pages(ctx, set, inv->files[i]->name, &size)
							: img_set_open_raw(ctx, set, kind, pid, &size);

			if (fd >= 0)
				close(fd);
		} else if (img_reader_open(ctx, set, kind, pid, &r) == 0) {
			read_all(ctx, r);
		}
	}
	img_set_close(set);
}

static void cleanup(void)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dir_fd, names[i], 0);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t trailer[12];
	char path[128];
	const char *name;
	InventoryEntry *inv;
	struct img_reader *r;
	snap_ctx *ctx;
	unsigned mode;

	if (size < 1)
		return 0;
	if (dir_fd < 0) {
		snprintf(dir, sizeof(dir), "/tmp/snap-fuzz-image-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (dir_fd < 0 || devnull < 0)
			abort();
		atexit(cleanup);
	}
	mode = data[0];
	data++;
	size--;
	if ((mode & MODE_KIND) >= sizeof(names) / sizeof(names[0]))
		return 0;
	name = names[mode & MODE_KIND];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dir_fd, names[i], 0);

	if (mode & MODE_TRAILER) {
		make_trailer(trailer, img_digest(data, size));
		write_file(name, data, size, trailer, sizeof(trailer));
	} else {
		write_file(name, data, size, NULL, 0);
	}
	if ((mode & MODE_INVENTORY) && strcmp(name, IMG_INVENTORY)) {
		uint64_t whole = img_digest(data, size);

		if (mode & MODE_TRAILER) {
			/* The digest of the file as written: data then trailer. */
			uint8_t *tmp = malloc(size + sizeof(trailer));

			memcpy(tmp, data, size);
			memcpy(tmp + size, trailer, sizeof(trailer));
			whole = img_digest(tmp, size + sizeof(trailer));
			free(tmp);
			write_inventory(name, size + sizeof(trailer), whole);
		} else {
			write_inventory(name, size, whole);
		}
	}

	if (snap_ctx_new(&ctx) < 0)
		abort();
	read_set(ctx);
	snap_clear_error(ctx);
	if (img_reader_open_file(ctx, dir_fd, name, NULL, &r) == 0)
		read_all(ctx, r);
	snap_clear_error(ctx);
	if (img_inventory_load(ctx, dir_fd, &inv) == 0)
		inventory_entry__free_unpacked(inv, NULL);
	snap_clear_error(ctx);
	snap_show(ctx, dir, devnull);
	snap_clear_error(ctx);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snap_show(ctx, path, devnull);
	snap_ctx_free(ctx);
	return 0;
}
