/* Parsers for the /proc files libsnap reads, and thin openers that name the pid on failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proc.h"

/* "/proc/" + pid + "/" + a name such as "fdinfo/2147483647" fits with room to spare. */
#define PROC_PATH_MAX 128

/*
 * smaps of a big process is tens of megabytes; reading it in large chunks
 * keeps the number of read() calls (each one walks the VMA tree) low.
 */
#define LINE_CHUNK (256 * 1024)

/* Splits a FILE into NUL-terminated lines without a lock or a copy per line. */
struct line_reader {
	FILE *f;
	char *buf;
	size_t cap, pos, len;
	bool eof;
};

static void line_reader_free(struct line_reader *lr)
{
	free(lr->buf);
	lr->buf = NULL;
}

/*
 * Returns 1 with *ret_line / *ret_len set (the '\n' replaced by a NUL), 0 at
 * end of file, or a negative errno. The line stays valid until the next call.
 */
static int line_reader_next(struct line_reader *lr, char **ret_line, size_t *ret_len)
{
	if (!lr->buf) {
		lr->buf = malloc(LINE_CHUNK);
		if (!lr->buf)
			return -ENOMEM;
		lr->cap = LINE_CHUNK;
	}
	for (;;) {
		char *line = lr->buf + lr->pos;
		size_t avail = lr->len - lr->pos;
		char *nl = memchr(line, '\n', avail);
		size_t n;

		if (nl || (lr->eof && avail)) {
			/* A last line without '\n' still gets its NUL: cap > len always holds. */
			n = nl ? (size_t)(nl - line) : avail;
			line[n] = '\0';
			lr->pos += nl ? n + 1 : n;
			*ret_line = line;
			*ret_len = n;
			return 1;
		}
		if (lr->eof)
			return 0;

		if (lr->pos) {
			memmove(lr->buf, line, avail);
			lr->len = avail;
			lr->pos = 0;
		}
		/* Keep one byte spare for the NUL of an unterminated last line. */
		if (lr->cap - lr->len < 2) {
			size_t cap = lr->cap * 2;
			char *b = realloc(lr->buf, cap);

			if (!b)
				return -ENOMEM;
			lr->buf = b;
			lr->cap = cap;
		}
		n = fread(lr->buf + lr->len, 1, lr->cap - lr->len - 1, lr->f);
		if (n == 0) {
			if (ferror(lr->f))
				return errno ? -errno : -EIO;
			lr->eof = true;
		}
		lr->len += n;
	}
}

static inline int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses 1..16 hex digits at *pp; false if there are none or too many. */
static bool take_hex(const char **pp, const char *end, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	int d, n = 0;

	while (p < end && (d = hex_val(*p)) >= 0) {
		if (++n > 16)
			return false;
		v = (v << 4) | (uint64_t)d;
		p++;
	}
	if (!n)
		return false;
	*pp = p;
	*out = v;
	return true;
}

/* Parses an unsigned decimal at *pp; false if there is none or it overflows. */
static bool take_dec(const char **pp, const char *end, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (p == end || *p < '0' || *p > '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		p++;
	}
	*pp = p;
	*out = v;
	return true;
}

static bool take_char(const char **pp, const char *end, char c)
{
	if (*pp == end || **pp != c)
		return false;
	(*pp)++;
	return true;
}

/* At least one blank; the kernel writes one, people writing fixtures may write more. */
static bool take_blanks(const char **pp, const char *end)
{
	const char *p = *pp;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == *pp)
		return false;
	*pp = p;
	return true;
}

static const struct {
	char code[2];
	uint32_t bit;
} vmflag_codes[] = {
	{ { 'g', 'd' }, VMF_GROWSDOWN },  { { 's', 'h' }, VMF_SHARED },	      { { 'm', 's' }, VMF_MAYSHARE },
	{ { 'd', 'd' }, VMF_DONTDUMP },	  { { 'd', 'c' }, VMF_DONTFORK },     { { 'h', 'g' }, VMF_HUGEPAGE },
	{ { 'n', 'h' }, VMF_NOHUGEPAGE }, { { 'm', 'g' }, VMF_MERGEABLE },    { { 'l', 'o' }, VMF_LOCKED },
	{ { 'i', 'o' }, VMF_IO },	  { { 'p', 'f' }, VMF_PFNMAP },	      { { 'w', 'f' }, VMF_WIPEONFORK },
	{ { 's', 'r' }, VMF_SEQREAD },	  { { 'r', 'r' }, VMF_RANDREAD },     { { 'n', 'r' }, VMF_NORESERVE },
	{ { 'h', 't' }, VMF_HUGETLB },	  { { 'u', 'm' }, VMF_UFFD_MISSING }, { { 'u', 'w' }, VMF_UFFD_WP },
	{ { 'd', 'p' }, VMF_DROPPABLE },
};

uint32_t proc_parse_vmflags(const char *s)
{
	uint32_t flags = 0;

	for (;;) {
		const char *tok;
		size_t i;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return flags;
		tok = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		/* Codes the kernel adds later are longer or unknown: skip them. */
		if (s - tok != 2)
			continue;
		for (i = 0; i < sizeof(vmflag_codes) / sizeof(vmflag_codes[0]); i++) {
			if (vmflag_codes[i].code[0] == tok[0] && vmflag_codes[i].code[1] == tok[1]) {
				flags |= vmflag_codes[i].bit;
				break;
			}
		}
	}
}

void proc_vma_list_free(struct proc_vma_list *l)
{
	size_t i;

	for (i = 0; i < l->nr; i++)
		free(l->v[i].path);
	free(l->v);
	*l = (struct proc_vma_list){ 0 };
}

static int vma_list_push(struct proc_vma_list *l, const struct proc_vma *vma)
{
	if (l->nr == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct proc_vma *v = reallocarray(l->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->nr++] = *vma;
	return 0;
}

/*
 * Copies a path as the kernel printed it. seq_file_path() escapes only '\n'
 * (as "\012") in these paths and prints a backslash as itself, so only that
 * one sequence is decoded: decoding every \ooo would corrupt real names that
 * contain a backslash, such as memfd names, which are arbitrary.
 */
static char *unescape_path(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, j = 0;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && len - i >= 4 && !memcmp(s + i + 1, "012", 3)) {
			out[j++] = '\n';
			i += 3;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

#define DELETED_SUFFIX " (deleted)"

/* Parses "start-end perms offset major:minor inode [path]"; 0, -EINVAL or -ENOMEM. */
static int parse_vma_header(const char *p, const char *end, struct proc_vma *vma)
{
	uint64_t major, minor;
	size_t len;

	*vma = (struct proc_vma){ 0 };
	if (!take_hex(&p, end, &vma->start) || !take_char(&p, end, '-') || !take_hex(&p, end, &vma->end) ||
	    vma->start >= vma->end || !take_blanks(&p, end))
		return -EINVAL;

	if (end - p < 4)
		return -EINVAL;
	if ((p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') || (p[2] != 'x' && p[2] != '-') ||
	    (p[3] != 's' && p[3] != 'p'))
		return -EINVAL;
	vma->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
	vma->shared = p[3] == 's';
	p += 4;

	if (!take_blanks(&p, end) || !take_hex(&p, end, &vma->pgoff) || !take_blanks(&p, end) ||
	    !take_hex(&p, end, &major) || !take_char(&p, end, ':') || !take_hex(&p, end, &minor) ||
	    major > UINT32_MAX || minor > UINT32_MAX || !take_blanks(&p, end) || !take_dec(&p, end, &vma->ino))
		return -EINVAL;
	vma->dev_major = (uint32_t)major;
	vma->dev_minor = (uint32_t)minor;

	if (p == end)
		return 0;
	/* The kernel pads to a column; an unnamed area ends in one blank. */
	if (!take_blanks(&p, end))
		return -EINVAL;
	len = (size_t)(end - p);
	if (!len)
		return 0;
	/* A NUL would silently cut the path short; the kernel never prints one. */
	if (memchr(p, '\0', len))
		return -EINVAL;
	if (len > sizeof(DELETED_SUFFIX) - 1 &&
	    !memcmp(end - (sizeof(DELETED_SUFFIX) - 1), DELETED_SUFFIX, sizeof(DELETED_SUFFIX) - 1)) {
		vma->deleted = true;
		len -= sizeof(DELETED_SUFFIX) - 1;
	}
	vma->path = unescape_path(p, len);
	return vma->path ? 0 : -ENOMEM;
}

static inline bool is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int proc_parse_maps(FILE *f, struct proc_vma_list *out, int *ret_bad_line)
{
	struct line_reader lr = { .f = f };
	struct proc_vma_list vmas = { 0 };
	int lineno = 0, r;
	char *line;
	size_t len;

	*ret_bad_line = 0;
	while ((r = line_reader_next(&lr, &line, &len)) > 0) {
		const char *p = line, *end = line + len;
		bool all_hex = true;

		lineno++;
		/*
		 * One scan of the first word tells the two line kinds apart:
		 * "7f12-7f34 ..." (all hex, then '-') starts a VMA, "Word:"
		 * is a key of the VMA above.
		 */
		while (p < end && is_word_char(*p)) {
			if (hex_val(*p) < 0)
				all_hex = false;
			p++;
		}
		if (p == line || p == end)
			goto bad;
		if (*p == '-' && all_hex) {
			struct proc_vma vma;

			r = parse_vma_header(line, end, &vma);
			if (r == -EINVAL)
				goto bad;
			if (r < 0)
				goto fail;
			r = vma_list_push(&vmas, &vma);
			if (r < 0) {
				free(vma.path);
				goto fail;
			}
		} else if (*p == ':') {
			if (!vmas.nr)
				goto bad;
			if (p - line == 7 && !memcmp(line, "VmFlags", 7))
				vmas.v[vmas.nr - 1].vmflags = proc_parse_vmflags(p + 1);
		} else {
			goto bad;
		}
	}
	if (r < 0)
		goto fail;
	line_reader_free(&lr);
	*out = vmas;
	return 0;

bad:
	r = -EINVAL;
	*ret_bad_line = lineno;
fail:
	line_reader_free(&lr);
	proc_vma_list_free(&vmas);
	*out = (struct proc_vma_list){ 0 };
	return r;
}

/* Parses one space-separated number of /proc/PID/stat; negative values wrap as in C. */
static bool stat_field(const char **pp, const char *end, unsigned long long *out)
{
	const char *p = *pp;
	bool neg = false;
	uint64_t v;

	while (p < end && *p == ' ')
		p++;
	if (take_char(&p, end, '-'))
		neg = true;
	if (!take_dec(&p, end, &v))
		return false;
	if (p < end && *p != ' ' && *p != '\n')
		return false;
	*out = neg ? -(unsigned long long)v : v;
	*pp = p;
	return true;
}

int proc_parse_stat(const char *buf, struct proc_stat *out)
{
	/* Field numbers as in proc(5); index 0..2 unused (pid, comm, state). */
	unsigned long long f[53];
	const char *open, *close, *p, *end = buf + strlen(buf);
	struct proc_stat st = { 0 };
	uint64_t pid;
	size_t n;
	int i;

	p = buf;
	if (!take_dec(&p, end, &pid) || pid > INT_MAX || *p != ' ')
		return -EINVAL;
	/* comm is arbitrary bytes, so only the last ')' can end it. */
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (open != p + 1 || !close || close < open)
		return -EINVAL;
	n = (size_t)(close - open - 1);
	if (n >= sizeof(st.comm))
		n = sizeof(st.comm) - 1;
	memcpy(st.comm, open + 1, n);
	st.comm[n] = '\0';

	p = close + 1;
	if (p[0] != ' ' || !p[1] || p[1] == ' ' || p[1] == '\n' || (p[2] != ' '))
		return -EINVAL;
	st.state = p[1];
	p += 2;
	for (i = 4; i <= 52; i++)
		if (!stat_field(&p, end, &f[i]))
			return -EINVAL;
	/* Later kernels may append fields: accept them without looking. */

	st.pid = (pid_t)pid;
	st.ppid = (pid_t)f[4];
	st.pgrp = (pid_t)f[5];
	st.session = (pid_t)f[6];
	st.tty_nr = (int)f[7];
	st.flags = (unsigned long)f[9];
	st.num_threads = (long)f[20];
	st.starttime = f[22];
	st.start_code = (unsigned long)f[26];
	st.end_code = (unsigned long)f[27];
	st.start_stack = (unsigned long)f[28];
	st.exit_signal = (int)f[38];
	st.start_data = (unsigned long)f[45];
	st.end_data = (unsigned long)f[46];
	st.start_brk = (unsigned long)f[47];
	st.arg_start = (unsigned long)f[48];
	st.arg_end = (unsigned long)f[49];
	st.env_start = (unsigned long)f[50];
	st.env_end = (unsigned long)f[51];
	st.exit_code = (int)f[52];
	*out = st;
	return 0;
}

/* Parses exactly @n numbers in @base separated by blanks, then end of line. */
static bool take_numbers(const char *p, const char *end, int base, uint64_t *vals, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (i && !take_blanks(&p, end))
			return false;
		if (!(base == 16 ? take_hex(&p, end, &vals[i]) : take_dec(&p, end, &vals[i])))
			return false;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p == end;
}

static bool take_octal(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (p == end)
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '7' || v >> 61)
			return false;
		v = (v << 3) | (uint64_t)(*p - '0');
	}
	*out = v;
	return true;
}

/* Splits "Key:\tvalue" into key and trimmed value; false if there is no ':'. */
static bool split_key(char *line, size_t len, const char **key, size_t *key_len, const char **val, const char **val_end)
{
	char *colon = memchr(line, ':', len);
	const char *p, *end = line + len;

	if (!colon)
		return false;
	*key = line;
	*key_len = (size_t)(colon - line);
	p = colon + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*val = p;
	*val_end = end;
	return true;
}

enum status_key {
	SK_STATE,
	SK_TGID,
	SK_PID,
	SK_PPID,
	SK_TRACERPID,
	SK_UMASK,
	SK_UID,
	SK_GID,
	SK_THREADS,
	SK_SIGPND,
	SK_SHDPND,
	SK_SIGBLK,
	SK_SIGIGN,
	SK_SIGCGT,
	SK_CAPINH,
	SK_CAPPRM,
	SK_CAPEFF,
	SK_CAPBND,
	SK_CAPAMB,
	SK_NSPID,
	SK_SECCOMP,
	SK__COUNT,
};

static const char *const status_keys[SK__COUNT] = {
	[SK_STATE] = "State",	      [SK_TGID] = "Tgid",     [SK_PID] = "Pid",	      [SK_PPID] = "PPid",
	[SK_TRACERPID] = "TracerPid", [SK_UMASK] = "Umask",   [SK_UID] = "Uid",	      [SK_GID] = "Gid",
	[SK_THREADS] = "Threads",     [SK_SIGPND] = "SigPnd", [SK_SHDPND] = "ShdPnd", [SK_SIGBLK] = "SigBlk",
	[SK_SIGIGN] = "SigIgn",	      [SK_SIGCGT] = "SigCgt", [SK_CAPINH] = "CapInh", [SK_CAPPRM] = "CapPrm",
	[SK_CAPEFF] = "CapEff",	      [SK_CAPBND] = "CapBnd", [SK_CAPAMB] = "CapAmb", [SK_NSPID] = "NSpid",
	[SK_SECCOMP] = "Seccomp",
};

/*
 * Umask is absent for tasks without an fs_struct (zombies), Seccomp on
 * kernels without CONFIG_SECCOMP; everything else is always printed.
 */
#define STATUS_OPTIONAL (1u << SK_UMASK | 1u << SK_SECCOMP)

/*
 * Parses status text. On -EINVAL, *ret_bad_line is the malformed line, or 0
 * with *ret_missing naming a field the file lacks.
 */
static int parse_status(FILE *f, struct proc_status *out, int *ret_bad_line, const char **ret_missing)
{
	struct line_reader lr = { .f = f };
	struct proc_status st = { 0 };
	uint32_t seen = 0;
	int lineno = 0, r, k;
	char *line;
	size_t len;

	*ret_bad_line = 0;
	*ret_missing = NULL;
	while ((r = line_reader_next(&lr, &line, &len)) > 0) {
		const char *key, *val, *vend;
		uint64_t v[4];
		size_t klen;

		lineno++;
		if (!split_key(line, len, &key, &klen, &val, &vend))
			goto bad;
		for (k = 0; k < SK__COUNT; k++)
			if (strlen(status_keys[k]) == klen && !memcmp(key, status_keys[k], klen))
				break;
		if (k == SK__COUNT)
			continue;
		seen |= 1u << k;

		switch (k) {
		case SK_STATE:
			if (val == vend)
				goto bad;
			st.state = *val;
			break;
		case SK_UMASK:
			if (!take_octal(val, vend, &v[0]) || v[0] > 0777)
				goto bad;
			st.umask = (uint32_t)v[0];
			st.has_umask = true;
			break;
		case SK_UID:
		case SK_GID:
			if (!take_numbers(val, vend, 10, v, 4))
				goto bad;
			for (int i = 0; i < 4; i++) {
				if (v[i] > UINT32_MAX)
					goto bad;
				(k == SK_UID ? st.uid : st.gid)[i] = (uint32_t)v[i];
			}
			break;
		case SK_SECCOMP:
			if (!take_numbers(val, vend, 10, &v[0], 1) || v[0] > 2)
				goto bad;
			st.seccomp = (int)v[0];
			break;
		case SK_NSPID: {
			const char *p = val;

			st.nspid_levels = 0;
			while (p < vend) {
				if (!take_dec(&p, vend, &v[0]) || (p < vend && !take_blanks(&p, vend)))
					goto bad;
				st.nspid_levels++;
			}
			if (!st.nspid_levels)
				goto bad;
			break;
		}
		case SK_SIGPND:
		case SK_SHDPND:
		case SK_SIGBLK:
		case SK_SIGIGN:
		case SK_SIGCGT:
		case SK_CAPINH:
		case SK_CAPPRM:
		case SK_CAPEFF:
		case SK_CAPBND:
		case SK_CAPAMB: {
			uint64_t *dst[] = {
				[SK_SIGPND] = &st.sig_pnd, [SK_SHDPND] = &st.shd_pnd, [SK_SIGBLK] = &st.sig_blk,
				[SK_SIGIGN] = &st.sig_ign, [SK_SIGCGT] = &st.sig_cgt, [SK_CAPINH] = &st.cap_inh,
				[SK_CAPPRM] = &st.cap_prm, [SK_CAPEFF] = &st.cap_eff, [SK_CAPBND] = &st.cap_bnd,
				[SK_CAPAMB] = &st.cap_amb,
			};

			if (!take_numbers(val, vend, 16, dst[k], 1))
				goto bad;
			break;
		}
		default: /* Tgid, Pid, PPid, TracerPid, Threads */
			if (!take_numbers(val, vend, 10, v, 1) || v[0] > INT_MAX)
				goto bad;
			if (k == SK_TGID)
				st.tgid = (pid_t)v[0];
			else if (k == SK_PID)
				st.pid = (pid_t)v[0];
			else if (k == SK_PPID)
				st.ppid = (pid_t)v[0];
			else if (k == SK_TRACERPID)
				st.tracer_pid = (pid_t)v[0];
			else
				st.threads = (int)v[0];
			break;
		}
	}
	line_reader_free(&lr);
	if (r < 0)
		return r;
	for (k = 0; k < SK__COUNT; k++) {
		if (!(seen & (1u << k)) && !(STATUS_OPTIONAL & (1u << k))) {
			*ret_missing = status_keys[k];
			return -EINVAL;
		}
	}
	*out = st;
	return 0;
bad:
	line_reader_free(&lr);
	*ret_bad_line = lineno;
	return -EINVAL;
}

int proc_parse_status(FILE *f, struct proc_status *out)
{
	const char *missing;
	int bad_line;

	return parse_status(f, out, &bad_line, &missing);
}

#define FDI_POS	     (1u << 0)
#define FDI_FLAGS    (1u << 1)
#define FDI_MNT_ID   (1u << 2)
#define FDI_REQUIRED (FDI_POS | FDI_FLAGS | FDI_MNT_ID)

/*
 * Parses fdinfo text; lines of other fd kinds (eventfd-count, tfd, inotify,
 * lock, ...) are not ours to judge and are skipped. "ino" is optional
 * because kernels before 5.14 do not print it.
 */
static int parse_fdinfo(FILE *f, struct proc_fdinfo *out, int *ret_bad_line)
{
	struct line_reader lr = { .f = f };
	struct proc_fdinfo fi = { 0 };
	uint32_t seen = 0;
	int lineno = 0, r;
	char *line;
	size_t len;

	*ret_bad_line = 0;
	while ((r = line_reader_next(&lr, &line, &len)) > 0) {
		const char *key, *val, *vend;
		size_t klen;
		uint64_t v;

		lineno++;
		if (!split_key(line, len, &key, &klen, &val, &vend))
			continue;
		if (klen == 3 && !memcmp(key, "pos", 3)) {
			if (!take_numbers(val, vend, 10, &v, 1))
				goto bad;
			fi.pos = v;
			seen |= FDI_POS;
		} else if (klen == 5 && !memcmp(key, "flags", 5)) {
			if (!take_octal(val, vend, &v) || v > UINT32_MAX)
				goto bad;
			fi.flags = (uint32_t)v;
			seen |= FDI_FLAGS;
		} else if (klen == 6 && !memcmp(key, "mnt_id", 6)) {
			if (!take_numbers(val, vend, 10, &v, 1) || v > INT_MAX)
				goto bad;
			fi.mnt_id = (int)v;
			seen |= FDI_MNT_ID;
		} else if (klen == 3 && !memcmp(key, "ino", 3)) {
			if (!take_numbers(val, vend, 10, &v, 1))
				goto bad;
			fi.ino = v;
		}
	}
	line_reader_free(&lr);
	if (r < 0)
		return r;
	if ((seen & FDI_REQUIRED) != FDI_REQUIRED)
		return -EINVAL;
	*out = fi;
	return 0;
bad:
	line_reader_free(&lr);
	*ret_bad_line = lineno;
	return -EINVAL;
}

int proc_parse_fdinfo(FILE *f, struct proc_fdinfo *out)
{
	int bad_line;

	return parse_fdinfo(f, out, &bad_line);
}

int proc_parse_auxv(const void *buf, size_t len, uint64_t **ret_vals, size_t *ret_nr)
{
	const size_t pair = 2 * sizeof(unsigned long);
	const unsigned char *b = buf;
	uint64_t *vals;
	size_t i, n;

	if (len % pair)
		return -EINVAL;
	for (n = 0; n < len / pair; n++) {
		unsigned long type;

		/* The blob may come from an unaligned image buffer. */
		memcpy(&type, b + n * pair, sizeof(type));
		if (type == 0 /* AT_NULL */)
			break;
	}
	if (n == len / pair)
		return -EINVAL;
	n++;

	vals = calloc(2 * n, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (i = 0; i < 2 * n; i++) {
		unsigned long v;

		memcpy(&v, b + i * sizeof(v), sizeof(v));
		vals[i] = v;
	}
	*ret_vals = vals;
	*ret_nr = 2 * n;
	return 0;
}

static void proc_path(char *buf, pid_t pid, const char *name)
{
	snprintf(buf, PROC_PATH_MAX, "/proc/%d/%s", (int)pid, name);
}

FILE *proc_fopen(pid_t pid, const char *name)
{
	char path[PROC_PATH_MAX];

	proc_path(path, pid, name);
	return fopen(path, "re");
}

static int fail_open(struct snap_ctx *ctx, int err, pid_t pid, const char *name)
{
	return snap_fail(ctx, err, "pid %d: cannot open /proc/%d/%s: %s", (int)pid, (int)pid, name, strerror(-err));
}

static int fail_read(struct snap_ctx *ctx, int err, pid_t pid, const char *name)
{
	return snap_fail(ctx, err, "pid %d: cannot read /proc/%d/%s: %s", (int)pid, (int)pid, name, strerror(-err));
}

int proc_read_vmas(struct snap_ctx *ctx, pid_t pid, struct proc_vma_list *ret_vmas)
{
	struct proc_vma_list vmas;
	int r, bad_line;
	FILE *f;

	/* smaps rather than maps: only smaps carries VmFlags. */
	f = proc_fopen(pid, "smaps");
	if (!f)
		return fail_open(ctx, -errno, pid, "smaps");
	r = proc_parse_maps(f, &vmas, &bad_line);
	fclose(f);
	if (r == -EINVAL && bad_line)
		return snap_fail(ctx, r, "pid %d: malformed smaps line %d", (int)pid, bad_line);
	if (r < 0)
		return fail_read(ctx, r, pid, "smaps");
	*ret_vmas = vmas;
	return 0;
}

/* Reads a whole /proc file into a malloc'd, NUL-terminated buffer. */
static int read_whole(struct snap_ctx *ctx, pid_t pid, const char *name, char **ret_buf, size_t *ret_len)
{
	char path[PROC_PATH_MAX];
	size_t len = 0, cap = 4096;
	char *buf = NULL;
	int fd, r;

	proc_path(path, pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_open(ctx, -errno, pid, name);
	for (;;) {
		ssize_t n;

		if (!buf || cap - len < 2) {
			char *b;

			if (buf)
				cap *= 2;
			b = realloc(buf, cap);
			if (!b) {
				r = snap_fail(ctx, -ENOMEM, "pid %d: out of memory reading /proc/%d/%s", (int)pid,
					      (int)pid, name);
				goto fail;
			}
			buf = b;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = fail_read(ctx, -errno, pid, name);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
fail:
	close(fd);
	free(buf);
	return r;
}

int proc_read_stat(struct snap_ctx *ctx, pid_t pid, struct proc_stat *ret)
{
	char *buf;
	size_t len;
	int r;

	r = read_whole(ctx, pid, "stat", &buf, &len);
	if (r < 0)
		return r;
	r = proc_parse_stat(buf, ret);
	free(buf);
	if (r < 0)
		return snap_fail(ctx, r, "pid %d: malformed /proc/%d/stat", (int)pid, (int)pid);
	return 0;
}

int proc_read_status(struct snap_ctx *ctx, pid_t pid, struct proc_status *ret)
{
	const char *missing;
	int r, bad_line;
	FILE *f;

	f = proc_fopen(pid, "status");
	if (!f)
		return fail_open(ctx, -errno, pid, "status");
	r = parse_status(f, ret, &bad_line, &missing);
	fclose(f);
	if (r == -EINVAL && bad_line)
		return snap_fail(ctx, r, "pid %d: malformed status line %d", (int)pid, bad_line);
	if (r == -EINVAL && missing)
		return snap_fail(ctx, r, "pid %d: /proc/%d/status has no %s line", (int)pid, (int)pid, missing);
	if (r < 0)
		return fail_read(ctx, r, pid, "status");
	return 0;
}

int proc_read_fdinfo(struct snap_ctx *ctx, pid_t pid, int fd, struct proc_fdinfo *ret)
{
	char name[32];
	int r, bad_line;
	FILE *f;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	f = proc_fopen(pid, name);
	if (!f)
		return fail_open(ctx, -errno, pid, name);
	r = parse_fdinfo(f, ret, &bad_line);
	fclose(f);
	if (r == -EINVAL && bad_line)
		return snap_fail(ctx, r, "pid %d: malformed fdinfo of fd %d, line %d", (int)pid, fd, bad_line);
	if (r == -EINVAL)
		return snap_fail(ctx, r, "pid %d: fdinfo of fd %d lacks pos, flags or mnt_id", (int)pid, fd);
	if (r < 0)
		return fail_read(ctx, r, pid, name);
	return 0;
}

int proc_read_auxv(struct snap_ctx *ctx, pid_t pid, uint64_t **ret_vals, size_t *ret_nr)
{
	char *buf;
	size_t len;
	int r;

	r = read_whole(ctx, pid, "auxv", &buf, &len);
	if (r < 0)
		return r;
	r = proc_parse_auxv(buf, len, ret_vals, ret_nr);
	free(buf);
	if (r == -EINVAL)
		return snap_fail(ctx, r, "pid %d: malformed /proc/%d/auxv (%zu bytes, no AT_NULL or torn pair)",
				 (int)pid, (int)pid, len);
	if (r < 0)
		return snap_fail(ctx, r, "pid %d: out of memory parsing /proc/%d/auxv", (int)pid, (int)pid);
	return 0;
}

int proc_readlink(struct snap_ctx *ctx, pid_t pid, const char *name, char **ret)
{
	char path[PROC_PATH_MAX];
	size_t cap = 256;
	char *buf = NULL;

	proc_path(path, pid, name);
	for (;;) {
		char *b = realloc(buf, cap);
		ssize_t n;

		if (!b) {
			free(buf);
			return snap_fail(ctx, -ENOMEM, "pid %d: out of memory reading link /proc/%d/%s", (int)pid,
					 (int)pid, name);
		}
		buf = b;
		n = readlink(path, buf, cap);
		if (n < 0) {
			int r = -errno;

			free(buf);
			return snap_fail(ctx, r, "pid %d: cannot read link /proc/%d/%s: %s", (int)pid, (int)pid, name,
					 strerror(-r));
		}
		/* readlink truncates silently: only a result shorter than the buffer is whole. */
		if ((size_t)n < cap) {
			buf[n] = '\0';
			*ret = buf;
			return 0;
		}
		cap *= 2;
	}
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int proc_list_ids(struct snap_ctx *ctx, pid_t pid, const char *dir, int **ret_ids, size_t *ret_nr)
{
	char path[PROC_PATH_MAX];
	size_t nr = 0, cap = 0;
	int *ids = NULL, r;
	struct dirent *de;
	DIR *d;

	proc_path(path, pid, dir);
	d = opendir(path);
	if (!d)
		return fail_open(ctx, -errno, pid, dir);
	for (;;) {
		const char *p;
		uint64_t v;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				r = fail_read(ctx, -errno, pid, dir);
				goto fail;
			}
			break;
		}
		p = de->d_name;
		if (!take_dec(&p, p + strlen(p), &v) || *p || v > INT_MAX)
			continue;
		if (nr == cap) {
			int *n = reallocarray(ids, cap ? cap * 2 : 64, sizeof(*ids));

			if (!n) {
				r = snap_fail(ctx, -ENOMEM, "pid %d: out of memory listing /proc/%d/%s", (int)pid,
					      (int)pid, dir);
				goto fail;
			}
			ids = n;
			cap = cap ? cap * 2 : 64;
		}
		ids[nr++] = (int)v;
	}
	closedir(d);
	qsort(ids, nr, sizeof(*ids), cmp_int);
	*ret_ids = ids;
	*ret_nr = nr;
	return 0;
fail:
	closedir(d);
	free(ids);
	return r;
}

/* /proc/PID/timers: "ID:", "signal:", "notify:" and "ClockID:" lines, four per timer. */
static int parse_posix_timers(FILE *f, struct proc_posix_timer **ret, size_t *ret_nr, int *ret_bad_line)
{
	static const char *const keys[] = { "ID", "signal", "notify", "ClockID" };
	struct line_reader lr = { .f = f };
	struct proc_posix_timer *v = NULL, *cur = NULL;
	size_t nr = 0, cap = 0;
	int lineno = 0, next = 0, r;
	char *line;
	size_t len;

	*ret_bad_line = 0;
	while ((r = line_reader_next(&lr, &line, &len)) > 0) {
		const char *key, *val, *vend, *p;
		uint64_t n;
		size_t klen;
		bool neg;

		lineno++;
		if (!split_key(line, len, &key, &klen, &val, &vend) || strlen(keys[next]) != klen ||
		    memcmp(key, keys[next], klen))
			goto bad;
		p = val;
		switch (next) {
		case 0:
			if (nr == cap) {
				struct proc_posix_timer *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof(*v));

				if (!nv) {
					r = -ENOMEM;
					goto fail;
				}
				v = nv;
				cap = cap ? cap * 2 : 16;
			}
			cur = &v[nr++];
			memset(cur, 0, sizeof(*cur));
			if (!take_dec(&p, vend, &n) || p != vend || n > INT_MAX)
				goto bad;
			cur->id = (int)n;
			break;
		case 1: /* signo/sigev_value in hex */
			if (!take_dec(&p, vend, &n) || n > 64 || !take_char(&p, vend, '/') ||
			    !take_hex(&p, vend, &cur->sigval) || p != vend)
				goto bad;
			cur->signo = (int)n;
			break;
		case 2: { /* "signal/pid.N", "signal/tid.N", "none/pid.N" */
			const char *slash = memchr(p, '/', (size_t)(vend - p));

			if (!slash)
				goto bad;
			if (slash - p == 6 && !memcmp(p, "signal", 6))
				cur->notify = PROC_SIGEV_SIGNAL;
			else if (slash - p == 4 && !memcmp(p, "none", 4))
				cur->notify = PROC_SIGEV_NONE;
			else if (slash - p == 6 && !memcmp(p, "thread", 6))
				cur->notify = PROC_SIGEV_THREAD;
			else
				goto bad;
			p = slash + 1;
			if (vend - p > 4 && !memcmp(p, "tid.", 4))
				cur->notify |= PROC_SIGEV_THREAD_ID;
			else if (!(vend - p > 4 && !memcmp(p, "pid.", 4)))
				goto bad;
			p += 4;
			if (!take_dec(&p, vend, &n) || p != vend || n > INT_MAX)
				goto bad;
			cur->target = (int)n;
			break;
		}
		case 3:
			neg = take_char(&p, vend, '-');
			if (!take_dec(&p, vend, &n) || p != vend || n > (uint64_t)INT_MAX + neg)
				goto bad;
			cur->clock_id = neg ? (int)(-(int64_t)n) : (int)n;
			break;
		}
		next = (next + 1) % 4;
	}
	if (r < 0)
		goto fail;
	if (next)
		goto bad_end;
	line_reader_free(&lr);
	*ret = v;
	*ret_nr = nr;
	return 0;
bad_end:
	lineno++;
bad:
	r = -EINVAL;
	*ret_bad_line = lineno;
fail:
	line_reader_free(&lr);
	free(v);
	return r;
}

int proc_parse_posix_timers(FILE *f, struct proc_posix_timer **ret, size_t *ret_nr, int *ret_bad_line)
{
	return parse_posix_timers(f, ret, ret_nr, ret_bad_line);
}

int proc_read_posix_timers(struct snap_ctx *ctx, pid_t pid, struct proc_posix_timer **ret, size_t *ret_nr)
{
	int r, bad_line;
	FILE *f;

	f = proc_fopen(pid, "timers");
	if (!f)
		return fail_open(ctx, -errno, pid, "timers");
	r = parse_posix_timers(f, ret, ret_nr, &bad_line);
	fclose(f);
	if (r == -EINVAL)
		return snap_fail(ctx, r, "pid %d: malformed /proc/%d/timers line %d", (int)pid, (int)pid, bad_line);
	if (r < 0)
		return fail_read(ctx, r, pid, "timers");
	return 0;
}

/* Takes the next blank-separated word of [*pp, end). */
static bool take_word(const char **pp, const char *end, const char **ret_word, size_t *ret_len)
{
	const char *p = *pp, *w;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	w = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	if (p == w)
		return false;
	*ret_word = w;
	*ret_len = (size_t)(p - w);
	*pp = p;
	return true;
}

static bool word_is(const char *w, size_t len, const char *s)
{
	return strlen(s) == len && !memcmp(w, s, len);
}

/*
 * One lock as /proc/locks and the "lock:" lines of fdinfo print it:
 * "1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 10 19". Kinds other than
 * FLOCK, POSIX and OFDLCK (leases, delegations) keep their name only.
 */
static bool parse_lock(const char *p, const char *end, struct proc_file_lock *out)
{
	struct proc_file_lock l = { 0 };
	const char *w;
	size_t wl;
	uint64_t n;
	bool neg;

	if (!take_dec(&p, end, &n) || !take_char(&p, end, ':') || !take_word(&p, end, &w, &wl))
		return false;
	snprintf(l.kind_name, sizeof(l.kind_name), "%.*s", (int)wl, w);
	if (word_is(w, wl, "FLOCK"))
		l.kind = PROC_LOCK_FLOCK;
	else if (word_is(w, wl, "POSIX"))
		l.kind = PROC_LOCK_POSIX;
	else if (word_is(w, wl, "OFDLCK"))
		l.kind = PROC_LOCK_OFD;
	else {
		l.kind = PROC_LOCK_OTHER;
		*out = l;
		return true;
	}
	if (!take_word(&p, end, &w, &wl) || !(word_is(w, wl, "ADVISORY") || word_is(w, wl, "MANDATORY")))
		return false;
	if (!take_word(&p, end, &w, &wl))
		return false;
	if (word_is(w, wl, "WRITE"))
		l.write = true;
	else if (!word_is(w, wl, "READ"))
		return false;
	if (!take_blanks(&p, end))
		return false;
	neg = take_char(&p, end, '-');
	if (!take_dec(&p, end, &n) || n > INT_MAX)
		return false;
	l.pid = neg ? -(int)n : (int)n;
	if (!take_blanks(&p, end) || !take_hex(&p, end, &n) || n > UINT32_MAX || !take_char(&p, end, ':'))
		return false;
	l.dev_major = (uint32_t)n;
	if (!take_hex(&p, end, &n) || n > UINT32_MAX || !take_char(&p, end, ':'))
		return false;
	l.dev_minor = (uint32_t)n;
	if (!take_dec(&p, end, &l.ino) || !take_blanks(&p, end) || !take_dec(&p, end, &l.start) ||
	    !take_blanks(&p, end))
		return false;
	if (end - p >= 3 && !memcmp(p, "EOF", 3)) {
		l.to_eof = true;
		p += 3;
	} else if (!take_dec(&p, end, &l.end) || l.end < l.start) {
		return false;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p != end)
		return false;
	*out = l;
	return true;
}

/*
 * The lines of @f that hold a lock, parsed into a growing array. @fdinfo: fdinfo's "lock:\t..." lines only,
 * else every line is one (/proc/locks), whose waiters ("->") are left out.
 */
static int parse_lock_lines(FILE *f, bool fdinfo, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line)
{
	struct line_reader lr = { .f = f };
	struct proc_file_lock *v = NULL;
	size_t nr = 0, cap = 0;
	int lineno = 0, r;
	char *line;
	size_t len;

	*ret_bad_line = 0;
	while ((r = line_reader_next(&lr, &line, &len)) > 0) {
		const char *val = line, *vend = line + len, *key;
		size_t klen;

		lineno++;
		if (fdinfo && (!split_key(line, len, &key, &klen, &val, &vend) || klen != 4 || memcmp(key, "lock", 4)))
			continue;
		if (nr == cap) {
			struct proc_file_lock *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		if (!parse_lock(val, vend, &v[nr])) {
			r = -EINVAL;
			*ret_bad_line = lineno;
			goto fail;
		}
		if (fdinfo || !(v[nr].kind == PROC_LOCK_OTHER && !strcmp(v[nr].kind_name, "->")))
			nr++;
	}
	if (r < 0)
		goto fail;
	line_reader_free(&lr);
	*ret = v;
	*ret_nr = nr;
	return 0;
fail:
	line_reader_free(&lr);
	free(v);
	return r;
}

static int parse_fd_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line)
{
	return parse_lock_lines(f, true, ret, ret_nr, ret_bad_line);
}

int proc_parse_fd_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line)
{
	return parse_fd_locks(f, ret, ret_nr, ret_bad_line);
}

int proc_read_fd_locks(struct snap_ctx *ctx, pid_t pid, int fd, struct proc_file_lock **ret, size_t *ret_nr)
{
	char name[32];
	int r, bad_line;
	FILE *f;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	f = proc_fopen(pid, name);
	if (!f)
		return fail_open(ctx, -errno, pid, name);
	r = parse_fd_locks(f, ret, ret_nr, &bad_line);
	fclose(f);
	if (r == -EINVAL)
		return snap_fail(ctx, r, "pid %d: malformed lock line %d in fdinfo of fd %d", (int)pid, bad_line, fd);
	if (r < 0)
		return fail_read(ctx, r, pid, name);
	return 0;
}

/* /proc/locks: every lock of the system, one per line; waiters ("->") are left out. */
static int parse_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line)
{
	return parse_lock_lines(f, false, ret, ret_nr, ret_bad_line);
}

int proc_parse_locks(FILE *f, struct proc_file_lock **ret, size_t *ret_nr, int *ret_bad_line)
{
	return parse_locks(f, ret, ret_nr, ret_bad_line);
}

int proc_read_locks(struct snap_ctx *ctx, struct proc_file_lock **ret, size_t *ret_nr)
{
	FILE *f = fopen("/proc/locks", "re");
	int r, bad_line;

	if (!f)
		return snap_fail(ctx, -errno, "cannot open /proc/locks: %m");
	r = parse_locks(f, ret, ret_nr, &bad_line);
	fclose(f);
	if (r == -EINVAL)
		return snap_fail(ctx, r, "malformed /proc/locks line %d", bad_line);
	if (r < 0)
		return snap_fail(ctx, r, "cannot read /proc/locks: %s", strerror(-r));
	return 0;
}

int proc_read_file(struct snap_ctx *ctx, pid_t pid, const char *name, char **ret_buf, size_t *ret_len)
{
	return read_whole(ctx, pid, name, ret_buf, ret_len);
}
