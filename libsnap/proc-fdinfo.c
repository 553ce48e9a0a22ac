/* Parsers of the kind-specific lines of /proc/PID/fdinfo/FD (eventfd, signalfd, timerfd, epoll, inotify, locks). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proc-fdinfo.h"

/* Calls @fn on each line of @text with its 1-based number; stops at the first non-zero return. */
static int for_each_line(const char *text, int (*fn)(void *opaque, const char *line, size_t len, int lineno),
			 void *opaque)
{
	int lineno = 0;

	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);
		int r = fn(opaque, text, len, ++lineno);

		if (r)
			return r;
		text += len + (nl ? 1 : 0);
	}
	return 0;
}

/* If @line starts with @key, the position right after it; else NULL. */
static const char *after_key(const char *line, size_t len, const char *key)
{
	size_t k = strlen(key);

	return len >= k && !memcmp(line, key, k) ? line + k : NULL;
}

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* An unsigned number in @base at *@pp (after blanks); advances *@pp. */
static bool take_u64(const char **pp, const char *end, int base, uint64_t *out)
{
	const char *p = skip_space(*pp, end);
	uint64_t v = 0;
	bool any = false;

	for (; p < end; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (d >= base || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
		any = true;
	}
	*pp = p;
	*out = v;
	return any;
}

static bool take_int(const char **pp, const char *end, int *out)
{
	const char *p = skip_space(*pp, end);
	bool neg = p < end && *p == '-';
	uint64_t v;

	if (neg)
		p++;
	if (!take_u64(&p, end, 10, &v) || v > (neg ? 2147483648ull : 2147483647ull))
		return false;
	*pp = p;
	*out = neg ? (int)(-(int64_t)v) : (int)v;
	return true;
}

/* Expects literal @lit (after blanks). */
static bool take_lit(const char **pp, const char *end, const char *lit)
{
	const char *p = skip_space(*pp, end);
	size_t n = strlen(lit);

	if ((size_t)(end - p) < n || memcmp(p, lit, n))
		return false;
	*pp = p + n;
	return true;
}

static bool at_end(const char *p, const char *end)
{
	return skip_space(p, end) == end;
}

struct line_state {
	int bad_line;
	unsigned seen;
	void *out;
};

#define FAIL_LINE(st, lineno) ((st)->bad_line = (lineno), -EINVAL)

static int eventfd_line(void *opaque, const char *line, size_t len, int lineno)
{
	struct line_state *st = opaque;
	struct fdinfo_eventfd *out = st->out;
	const char *end = line + len, *p;
	uint64_t v;

	if ((p = after_key(line, len, "eventfd-count:"))) {
		if (!take_u64(&p, end, 16, &v) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		out->count = v;
		st->seen |= 1;
	} else if ((p = after_key(line, len, "eventfd-semaphore:"))) {
		if (!take_u64(&p, end, 10, &v) || v > 1 || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		out->semaphore = v;
		st->seen |= 2;
	}
	return 0;
}

static int finish(struct line_state *st, int r, unsigned need, int *ret_bad_line)
{
	if (ret_bad_line)
		*ret_bad_line = st->bad_line;
	if (r)
		return r;
	return (st->seen & need) == need ? 0 : -ENOENT;
}

int fdinfo_parse_eventfd(const char *text, struct fdinfo_eventfd *out, int *ret_bad_line)
{
	struct fdinfo_eventfd v = { 0 };
	struct line_state st = { .out = &v };
	int r = finish(&st, for_each_line(text, eventfd_line, &st), 3, ret_bad_line);

	if (!r)
		*out = v;
	return r;
}

static int signalfd_line(void *opaque, const char *line, size_t len, int lineno)
{
	struct line_state *st = opaque;
	const char *end = line + len, *p;

	if ((p = after_key(line, len, "sigmask:"))) {
		if (!take_u64(&p, end, 16, st->out) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		st->seen |= 1;
	}
	return 0;
}

int fdinfo_parse_signalfd(const char *text, uint64_t *ret_sigmask, int *ret_bad_line)
{
	uint64_t v = 0;
	struct line_state st = { .out = &v };
	int r = finish(&st, for_each_line(text, signalfd_line, &st), 1, ret_bad_line);

	if (!r)
		*ret_sigmask = v;
	return r;
}

/* "(sec, nsec)" */
static bool take_pair(const char **pp, const char *end, uint64_t *a, uint64_t *b)
{
	return take_lit(pp, end, "(") && take_u64(pp, end, 10, a) && take_lit(pp, end, ",") &&
	       take_u64(pp, end, 10, b) && take_lit(pp, end, ")");
}

static int timerfd_line(void *opaque, const char *line, size_t len, int lineno)
{
	struct line_state *st = opaque;
	struct fdinfo_timerfd *out = st->out;
	const char *end = line + len, *p;
	uint64_t v;

	if ((p = after_key(line, len, "clockid:"))) {
		if (!take_int(&p, end, &out->clockid) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		st->seen |= 1;
	} else if ((p = after_key(line, len, "ticks:"))) {
		if (!take_u64(&p, end, 10, &out->ticks) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		st->seen |= 2;
	} else if ((p = after_key(line, len, "settime flags:"))) {
		if (!take_u64(&p, end, 8, &v) || v > UINT32_MAX || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		out->settime_flags = (uint32_t)v;
		st->seen |= 4;
	} else if ((p = after_key(line, len, "it_value:"))) {
		if (!take_pair(&p, end, &out->value_sec, &out->value_nsec) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		st->seen |= 8;
	} else if ((p = after_key(line, len, "it_interval:"))) {
		if (!take_pair(&p, end, &out->interval_sec, &out->interval_nsec) || !at_end(p, end))
			return FAIL_LINE(st, lineno);
		st->seen |= 16;
	}
	return 0;
}

int fdinfo_parse_timerfd(const char *text, struct fdinfo_timerfd *out, int *ret_bad_line)
{
	struct fdinfo_timerfd v = { 0 };
	struct line_state st = { .out = &v };
	int r = finish(&st, for_each_line(text, timerfd_line, &st), 31, ret_bad_line);

	if (!r)
		*out = v;
	return r;
}

/* A growing array of fixed-size items for the list parsers. */
struct list_state {
	struct line_state st;
	void *items;
	size_t nr, cap, item_size;
};

static void *list_add(struct list_state *ls)
{
	if (ls->nr == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 8;
		void *items = realloc(ls->items, cap * ls->item_size);

		if (!items)
			return NULL;
		ls->items = items;
		ls->cap = cap;
	}
	return memset((char *)ls->items + ls->nr++ * ls->item_size, 0, ls->item_size);
}

static int epoll_line(void *opaque, const char *line, size_t len, int lineno)
{
	struct list_state *ls = opaque;
	const char *end = line + len, *p;
	struct fdinfo_epoll_tfd *t;
	uint64_t v;

	if (!(p = after_key(line, len, "tfd:")))
		return 0;
	t = list_add(ls);
	if (!t)
		return -ENOMEM;
	if (!take_int(&p, end, &t->tfd) || t->tfd < 0 || !take_lit(&p, end, "events:") || !take_u64(&p, end, 16, &v) ||
	    v > UINT32_MAX)
		return FAIL_LINE(&ls->st, lineno);
	t->events = (uint32_t)v;
	if (!take_lit(&p, end, "data:") || !take_u64(&p, end, 16, &t->data))
		return FAIL_LINE(&ls->st, lineno);
	/* pos, ino and sdev came later (3.15); tolerate their absence, not their malformation. */
	if (take_lit(&p, end, "pos:") && !take_u64(&p, end, 10, &t->pos))
		return FAIL_LINE(&ls->st, lineno);
	if (take_lit(&p, end, "ino:") && !take_u64(&p, end, 16, &t->ino))
		return FAIL_LINE(&ls->st, lineno);
	if (take_lit(&p, end, "sdev:")) {
		if (!take_u64(&p, end, 16, &v) || v > UINT32_MAX)
			return FAIL_LINE(&ls->st, lineno);
		t->sdev = (uint32_t)v;
	}
	return 0;
}

static int finish_list(struct list_state *ls, int r, void **ret, size_t *ret_nr, int *ret_bad_line)
{
	if (ret_bad_line)
		*ret_bad_line = ls->st.bad_line;
	if (r) {
		free(ls->items);
		return r;
	}
	*ret = ls->items;
	*ret_nr = ls->nr;
	return 0;
}

int fdinfo_parse_epoll(const char *text, struct fdinfo_epoll_tfd **ret_tfds, size_t *ret_nr, int *ret_bad_line)
{
	struct list_state ls = { .item_size = sizeof(struct fdinfo_epoll_tfd) };

	return finish_list(&ls, for_each_line(text, epoll_line, &ls), (void **)ret_tfds, ret_nr, ret_bad_line);
}

/* "key:HEX" without a blank after the colon, as inotify lines print them. */
static bool take_hex_field(const char **pp, const char *end, const char *key, uint64_t max, uint64_t *out)
{
	return take_lit(pp, end, key) && take_u64(pp, end, 16, out) && *out <= max;
}

static int inotify_line(void *opaque, const char *line, size_t len, int lineno)
{
	struct list_state *ls = opaque;
	const char *end = line + len, *p;
	struct fdinfo_inotify_wd *w;
	uint64_t v;

	if (!(p = after_key(line, len, "inotify wd:")))
		return 0;
	w = list_add(ls);
	if (!w)
		return -ENOMEM;
	if (!take_u64(&p, end, 16, &v) || v > INT32_MAX)
		return FAIL_LINE(&ls->st, lineno);
	w->wd = (int)v;
	if (!take_hex_field(&p, end, "ino:", UINT64_MAX, &w->ino) || !take_hex_field(&p, end, "sdev:", UINT32_MAX, &v))
		return FAIL_LINE(&ls->st, lineno);
	w->sdev = (uint32_t)v;
	if (!take_hex_field(&p, end, "mask:", UINT32_MAX, &v))
		return FAIL_LINE(&ls->st, lineno);
	w->mask = (uint32_t)v;
	if (!take_hex_field(&p, end, "ignored_mask:", UINT32_MAX, &v))
		return FAIL_LINE(&ls->st, lineno);
	w->ignored_mask = (uint32_t)v;
	/* Without export support the kernel prints no handle at all. */
	if (at_end(p, end))
		return 0;
	if (!take_hex_field(&p, end, "fhandle-bytes:", FDINFO_FHANDLE_MAX, &v))
		return FAIL_LINE(&ls->st, lineno);
	w->fhandle_bytes = (uint32_t)v;
	if (!take_hex_field(&p, end, "fhandle-type:", INT32_MAX, &v) || !take_lit(&p, end, "f_handle:"))
		return FAIL_LINE(&ls->st, lineno);
	w->fhandle_type = (int)v;
	for (uint32_t i = 0; i < w->fhandle_bytes; i++) {
		int hi, lo;

		if (end - p < 2)
			return FAIL_LINE(&ls->st, lineno);
		hi = p[0] >= '0' && p[0] <= '9' ? p[0] - '0' : p[0] >= 'a' && p[0] <= 'f' ? p[0] - 'a' + 10 : -1;
		lo = p[1] >= '0' && p[1] <= '9' ? p[1] - '0' : p[1] >= 'a' && p[1] <= 'f' ? p[1] - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return FAIL_LINE(&ls->st, lineno);
		w->fhandle[i] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	if (!at_end(p, end))
		return FAIL_LINE(&ls->st, lineno);
	return 0;
}

int fdinfo_parse_inotify(const char *text, struct fdinfo_inotify_wd **ret_wds, size_t *ret_nr, int *ret_bad_line)
{
	struct list_state ls = { .item_size = sizeof(struct fdinfo_inotify_wd) };

	return finish_list(&ls, for_each_line(text, inotify_line, &ls), (void **)ret_wds, ret_nr, ret_bad_line);
}
