/* snap_show: prints image files as JSON, generically from their protobuf-c descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

/* Output is gathered here and written in large pieces. */
#define OUT_BUF_SIZE ((size_t)1 << 16)

struct json_out {
	struct snap_ctx *ctx;
	int fd;
	int err; /* first write error; everything after it is dropped */
	size_t len;
	char buf[OUT_BUF_SIZE];
};

static int out_flush(struct json_out *o)
{
	const char *p = o->buf;
	size_t left = o->len;

	if (o->err)
		return o->err;
	while (left) {
		ssize_t n = write(o->fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			o->err = snap_fail(o->ctx, n < 0 ? -errno : -EIO, "show: cannot write the output: %s",
					   n < 0 ? strerror(errno) : "nothing written");
			return o->err;
		}
		p += n;
		left -= (size_t)n;
	}
	o->len = 0;
	return 0;
}

static void out_bytes(struct json_out *o, const void *buf, size_t len)
{
	const char *p = buf;

	while (len && !o->err) {
		size_t n = OUT_BUF_SIZE - o->len;

		if (n > len)
			n = len;
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		p += n;
		len -= n;
		if (o->len == OUT_BUF_SIZE)
			out_flush(o);
	}
}

static void out_str(struct json_out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) out_fmt(struct json_out *o, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Length of the well-formed UTF-8 sequence at @s, 0 if there is none (overlongs and surrogates included). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	/* The string ends in a NUL, which is no continuation byte: this never reads past it. */
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * Image strings are paths and names: bytes, not necessarily UTF-8. Valid
 * UTF-8 is copied, and each other byte becomes the code point of its value,
 * so that the output is always valid JSON.
 */
static void out_json_string(struct json_out *o, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	out_bytes(o, "\"", 1);
	while (*s) {
		size_t n = utf8_len(s);

		if (*s == '"' || *s == '\\') {
			out_bytes(o, "\\", 1);
			out_bytes(o, s, 1);
		} else if (*s == '\n') {
			out_str(o, "\\n");
		} else if (*s == '\t') {
			out_str(o, "\\t");
		} else if (*s < 0x20 || *s == 0x7f || n == 0) {
			out_fmt(o, "\\u%04x", *s);
		} else {
			out_bytes(o, s, n);
			s += n;
			continue;
		}
		s++;
	}
	out_bytes(o, "\"", 1);
}

static void out_hex(struct json_out *o, const uint8_t *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[256];
	size_t n = 0;

	out_bytes(o, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		tmp[n++] = digits[data[i] >> 4];
		tmp[n++] = digits[data[i] & 15];
		if (n == sizeof(tmp)) {
			out_bytes(o, tmp, n);
			n = 0;
		}
	}
	out_bytes(o, tmp, n);
	out_bytes(o, "\"", 1);
}

static void out_double(struct json_out *o, double v)
{
	/* JSON has no NaN or infinity. */
	if (isnan(v))
		out_str(o, "\"nan\"");
	else if (isinf(v))
		out_str(o, v < 0 ? "\"-inf\"" : "\"inf\"");
	else
		out_fmt(o, "%.17g", v);
}

/* Size of one element of a repeated field of type @t, as protobuf-c lays out its arrays. */
static size_t elt_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return sizeof(int32_t);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static void show_message(struct json_out *o, const ProtobufCMessage *m);

static void show_value(struct json_out *o, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		out_fmt(o, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		out_fmt(o, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		out_fmt(o, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		out_fmt(o, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		out_double(o, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		out_double(o, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		out_str(o, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);

		/* protobuf-c keeps values the schema does not name: show the number then. */
		if (ev)
			out_json_string(o, ev->name);
		else
			out_fmt(o, "%d", v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		if (s)
			out_json_string(o, s);
		else
			out_str(o, "null");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		out_hex(o, b->data, b->data ? b->len : 0);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		if (m)
			show_message(o, m);
		else
			out_str(o, "null");
		break;
	}
	default:
		out_str(o, "null");
		break;
	}
}

/* Whether a non-repeated field holds a value, by the same rules protobuf-c packs by. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->label != PROTOBUF_C_LABEL_OPTIONAL)
		return true;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
		const void *ptr = *(const void *const *)(base + f->offset);

		return ptr && ptr != f->default_value;
	}
	return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
}

static void show_message(struct json_out *o, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	bool first = true;

	out_bytes(o, "{", 1);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *member = base + f->offset;

		if (f->label != PROTOBUF_C_LABEL_REPEATED && !field_present(m, f))
			continue;
		if (!first)
			out_bytes(o, ",", 1);
		first = false;
		out_json_string(o, f->name);
		out_bytes(o, ":", 1);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(const char *const *)member;

			out_bytes(o, "[", 1);
			for (size_t j = 0; arr && j < n; j++) {
				if (j)
					out_bytes(o, ",", 1);
				show_value(o, f, arr + j * elt_size(f->type));
			}
			out_bytes(o, "]", 1);
		} else {
			show_value(o, f, member);
		}
	}
	out_bytes(o, "}", 1);
}

/* Prints the records of @r as {"kind":...,"records":[...]}, one record a line. */
static int show_records(struct json_out *o, struct img_reader *r)
{
	const struct img_kind_info *info = img_kind_info(img_reader_kind(r));
	ProtobufCMessage *msg;
	unsigned n = 0;
	int err;

	out_str(o, "{\"kind\":");
	out_json_string(o, info->name);
	out_str(o, ",\"records\":[");
	while ((err = img_read_next(o->ctx, r, &msg)) > 0) {
		out_str(o, n++ ? ",\n" : "\n");
		show_message(o, msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (err < 0)
		return err;
	/* Each kind with a leading record has it; a reader for restore would stop here too. */
	if (info->first && n == 0)
		return snap_fail(o->ctx, -EBADMSG, "image %s: missing %s record", img_reader_name(r),
				 info->first->name);
	out_str(o, n ? "\n]}" : "]}");
	return o->err;
}

/* A raw file (page data, file data): its kind, size and digest. */
static void show_pages(struct json_out *o, const char *kind, uint64_t size, uint64_t digest)
{
	out_fmt(o, "{\"kind\":\"%s\",\"size\":%" PRIu64 ",\"xxh3\":\"0x%016" PRIx64 "\"}", kind, size, digest);
}

static int cmp_digest_name(const void *a, const void *b)
{
	return strcmp((*(FileDigest *const *)a)->name, (*(FileDigest *const *)b)->name);
}

/* A whole dump: validated as restore validates it, then every file under its name. */
static int show_dir(struct json_out *o, const char *path)
{
	const InventoryEntry *inv;
	struct img_reader *r = NULL;
	struct img_set *set;
	FileDigest **sorted = NULL;
	int err, pid;

	err = img_set_open(o->ctx, path, &set);
	if (err < 0)
		return err;
	inv = img_set_inventory(set);
	if (inv->n_files) {
		sorted = malloc(inv->n_files * sizeof(*sorted));
		if (!sorted) {
			err = snap_fail(o->ctx, -ENOMEM, "show %s: out of memory", path);
			goto out;
		}
		memcpy(sorted, inv->files, inv->n_files * sizeof(*sorted));
		qsort(sorted, inv->n_files, sizeof(*sorted), cmp_digest_name);
	}
	out_str(o, "{\n");
	out_json_string(o, IMG_INVENTORY);
	out_str(o, ":");
	err = img_reader_open(o->ctx, set, IMG_KIND_INVENTORY, 0, &r);
	if (err < 0)
		goto out;
	err = show_records(o, r);
	img_reader_close(r);
	if (err < 0)
		goto out;
	for (size_t i = 0; i < inv->n_files; i++) {
		const FileDigest *f = sorted[i];
		int kind = img_name_parse(f->name, &pid);

		out_str(o, ",\n");
		out_json_string(o, f->name);
		out_str(o, ":");
		/* img_set_open accepted only image names, so the kind is known. */
		if (!img_kind_info(kind)->framed) {
			show_pages(o, img_kind_info(kind)->name, f->size, f->xxh3);
			continue;
		}
		err = img_reader_open(o->ctx, set, kind, pid, &r);
		if (err < 0)
			goto out;
		err = show_records(o, r);
		img_reader_close(r);
		if (err < 0)
			goto out;
	}
	out_str(o, "\n}\n");
	err = o->err;
out:
	free(sorted);
	img_set_close(set);
	return err;
}

/*
 * One file. Its own framing is always checked; if its directory has an
 * inventory, the file must be listed there with the same size and digest.
 */
static int show_file(struct json_out *o, const char *path)
{
	InventoryEntry *inv = NULL;
	const FileDigest *listed = NULL;
	struct img_reader *r;
	char *real, *name;
	const char *dir;
	struct stat st;
	int dirfd, err;

	/* Resolved, so that the inventory consulted is the one beside the file itself. */
	real = realpath(path, NULL);
	if (!real)
		return snap_fail(o->ctx, -errno, "show %s: %m", path);
	name = strrchr(real, '/');
	*name++ = '\0';
	dir = real[0] ? real : "/";
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		err = snap_fail(o->ctx, -errno, "show %s: cannot open its directory: %m", path);
		free(real);
		return err;
	}
	if (strcmp(name, IMG_INVENTORY) && fstatat(dirfd, IMG_INVENTORY, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		err = img_inventory_load(o->ctx, dirfd, &inv);
		if (err < 0)
			goto out;
		for (size_t i = 0; i < inv->n_files && !listed; i++)
			if (!strcmp(inv->files[i]->name, name))
				listed = inv->files[i];
		if (!listed) {
			err = snap_fail(o->ctx, -ENOENT, "image %s: not listed in %s/%s", name, dir, IMG_INVENTORY);
			goto out;
		}
	}
	if (img_name_parse(name, NULL) > 0 && !img_kind_info(img_name_parse(name, NULL))->framed) {
		uint64_t size, digest;
		int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

		if (fd < 0) {
			err = snap_fail(o->ctx, -errno, "image %s: cannot open: %m", name);
			goto out;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			err = snap_fail(o->ctx, -EBADMSG, "image %s: not a regular file", name);
			close(fd);
			goto out;
		}
		err = img_digest_fd(o->ctx, fd, name, &size, &digest);
		close(fd);
		if (err < 0)
			goto out;
		if (listed && (size != listed->size || digest != listed->xxh3)) {
			err = snap_fail(o->ctx, -EBADMSG, "image %s: %s (corrupted)", name,
					size != listed->size ? "size differs from the inventory's" : "digest mismatch");
			goto out;
		}
		show_pages(o, img_kind_info(img_name_parse(name, NULL))->name, size, digest);
	} else {
		err = img_reader_open_file(o->ctx, dirfd, name, listed, &r);
		if (err < 0)
			goto out;
		err = show_records(o, r);
		img_reader_close(r);
		if (err < 0)
			goto out;
	}
	out_str(o, "\n");
	err = o->err;
out:
	if (inv)
		inventory_entry__free_unpacked(inv, NULL);
	close(dirfd);
	free(real);
	return err;
}

int snap_show(snap_ctx *ctx, const char *path, int fd)
{
	struct json_out *o;
	struct stat st;
	int err;

	if (stat(path, &st) < 0)
		return snap_fail(ctx, -errno, "show %s: %m", path);
	o = malloc(sizeof(*o));
	if (!o)
		return snap_fail(ctx, -ENOMEM, "show %s: out of memory", path);
	o->ctx = ctx;
	o->fd = fd;
	o->err = 0;
	o->len = 0;
	err = S_ISDIR(st.st_mode) ? show_dir(o, path) : show_file(o, path);
	/* What was printed before a failure still goes out: it shows how far the file was good. */
	err = out_flush(o) ?: err;
	free(o);
	return err;
}
