/*
 * Credentials: what the parasite read into the image, and the check that
 * the user running a restore holds at least what the image would grant.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#include "attrs.h"

static const char *const cap_names[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

static const char *cap_name(int cap)
{
	return cap < (int)(sizeof(cap_names) / sizeof(cap_names[0])) ? cap_names[cap] : "a capability unknown here";
}

int creds_check(struct snap_ctx *ctx, struct dump_task *t)
{
	const struct parasite_attrs *pa = t->attrs->pa;

	if (pa->creds.nr_groups > PARASITE_MAX_GROUPS)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d is in %u supplementary groups; at most %u are supported",
				 t->pid, pa->creds.nr_groups, PARASITE_MAX_GROUPS);
	for (size_t i = 1; i < t->nr_threads; i++)
		if (t->threads[i].info.creds.nr_groups > PARASITE_MAX_GROUPS)
			return snap_fail(ctx, -EOPNOTSUPP,
					 "pid %d: tid %d is in %u supplementary groups; at most %u are supported",
					 t->pid, t->threads[i].tid, t->threads[i].info.creds.nr_groups,
					 PARASITE_MAX_GROUPS);
	/* SUID_DUMP_ROOT comes only from an exec with fs.suid_dumpable = 2; prctl sets 0 or 1. */
	if (pa->dumpable > 1)
		return snap_fail(ctx, -EOPNOTSUPP, "pid %d is in dumpable mode %u, which cannot be set again", t->pid,
				 pa->dumpable);
	return 0;
}

bool creds_differ(const struct parasite_creds *a, const struct parasite_creds *b)
{
	return memcmp(a->uid, b->uid, sizeof(a->uid)) || memcmp(a->gid, b->gid, sizeof(a->gid)) ||
	       a->nr_groups != b->nr_groups || memcmp(a->groups, b->groups, a->nr_groups * sizeof(a->groups[0])) ||
	       a->cap_inh != b->cap_inh || a->cap_prm != b->cap_prm || a->cap_eff != b->cap_eff ||
	       a->cap_bnd != b->cap_bnd || a->cap_amb != b->cap_amb || a->secbits != b->secbits ||
	       a->no_new_privs != b->no_new_privs;
}

int creds_to_image(struct snap_ctx *ctx, const struct parasite_creds *pa, CredsEntry *ce, uint32_t **groups)
{
	*groups = calloc(pa->nr_groups ? pa->nr_groups : 1, sizeof(uint32_t));
	if (!*groups)
		return snap_fail(ctx, -ENOMEM, "out of memory");
	memcpy(*groups, pa->groups, pa->nr_groups * sizeof(uint32_t));
	ce->uid = pa->uid[0];
	ce->euid = pa->uid[1];
	ce->suid = pa->uid[2];
	ce->fsuid = pa->uid[3];
	ce->gid = pa->gid[0];
	ce->egid = pa->gid[1];
	ce->sgid = pa->gid[2];
	ce->fsgid = pa->gid[3];
	ce->groups = *groups;
	ce->n_groups = pa->nr_groups;
	ce->cap_inh = pa->cap_inh;
	ce->cap_prm = pa->cap_prm;
	ce->cap_eff = pa->cap_eff;
	ce->cap_bnd = pa->cap_bnd;
	ce->cap_amb = pa->cap_amb;
	ce->secbits = pa->secbits;
	ce->no_new_privs = pa->no_new_privs != 0;
	return 0;
}

struct own_caps {
	uint64_t eff, prm, inh, bnd;
	int last_cap;
};

/*
 * What of @c differs from this process's credentials, which the new
 * process starts with (RESTORER_CREDS_*), or -errno.
 */
static int creds_changes(const CredsEntry *c)
{
	uid_t uid[4];
	gid_t gid[4], *groups;
	int n, change = 0;
	long secbits;

	if (getresuid(&uid[0], &uid[1], &uid[2]) || getresgid(&gid[0], &gid[1], &gid[2]))
		return -errno;
	uid[3] = (uid_t)setfsuid((uid_t)-1);
	gid[3] = (gid_t)setfsgid((gid_t)-1);
	n = getgroups(0, NULL);
	if (n < 0)
		return -errno;
	groups = calloc((size_t)n + 1, sizeof(*groups));
	if (!groups)
		return -ENOMEM;
	n = getgroups(n, groups);
	if (n < 0 || (size_t)n != c->n_groups || (n && memcmp(groups, c->groups, (size_t)n * sizeof(*groups))))
		change |= RESTORER_CREDS_GROUPS;
	free(groups);
	if (gid[0] != c->gid || gid[1] != c->egid || gid[2] != c->sgid || gid[3] != c->fsgid)
		change |= RESTORER_CREDS_GIDS;
	if (uid[0] != c->uid || uid[1] != c->euid || uid[2] != c->suid || uid[3] != c->fsuid) {
		change |= RESTORER_CREDS_UIDS;
		/* Leaving uid 0 clears the capabilities the steps after it need, unless told not to. */
		if (!uid[0] || !uid[1] || !uid[2] || !uid[3])
			change |= RESTORER_CREDS_FIXUP;
	}
	secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (secbits < 0)
		return -errno;
	if ((uint32_t)secbits != c->secbits)
		change |= RESTORER_CREDS_SECBITS;
	return change;
}

static int read_own_caps(struct snap_ctx *ctx, struct own_caps *oc)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return snap_fail(ctx, -errno, "cannot read our own capabilities: %m");
	if (prctl(PR_CAPBSET_READ, 0, 0, 0, 0) < 0)
		return snap_fail(ctx, -errno, "cannot read our own bounding set: %m");
	oc->eff = data[0].effective | (uint64_t)data[1].effective << 32;
	oc->prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	oc->inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	oc->bnd = 0;
	oc->last_cap = -1;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;
		oc->last_cap = cap;
		if (r)
			oc->bnd |= 1ull << cap;
	}
	return 0;
}

/* Fails naming the first capability of @extra, which @what of the image holds and we do not. */
static int refuse_caps(struct snap_ctx *ctx, int pid, uint64_t extra, const char *what)
{
	int cap = __builtin_ctzll(extra);

	return snap_fail(ctx, -EPERM,
			 "pid %d: its %s capabilities include %s (%d), which the user restoring it does not have", pid,
			 what, cap_name(cap), cap);
}

/* Fails unless we hold @cap, which setting the credentials of @pid needs for @why. */
static int need_cap(struct snap_ctx *ctx, const struct own_caps *oc, int cap, int pid, const char *why)
{
	if ((oc->eff >> cap) & 1)
		return 0;
	return snap_fail(ctx, -EPERM, "pid %d: setting its %s needs %s, which the user restoring it does not have", pid,
			 why, cap_name(cap));
}

int creds_validate(struct snap_ctx *ctx, const CredsEntry *c, int pid)
{
	struct own_caps oc;
	long secbits;
	int r, change;

	if (c->cap_eff & ~c->cap_prm || c->cap_amb & ~(c->cap_prm & c->cap_inh))
		return snap_fail(ctx, -EINVAL, "image core-%d.img: inconsistent capability sets", pid);
	if (c->n_groups > 65536)
		return snap_fail(ctx, -EINVAL, "image core-%d.img: %zu supplementary groups", pid, c->n_groups);
	r = read_own_caps(ctx, &oc);
	if (r)
		return r;
	/* Nothing the image grants may exceed what we hold: a restore is no way to gain privileges. */
	if (c->cap_prm & ~oc.prm)
		return refuse_caps(ctx, pid, c->cap_prm & ~oc.prm, "permitted");
	if (c->cap_bnd & ~oc.bnd)
		return refuse_caps(ctx, pid, c->cap_bnd & ~oc.bnd, "bounding");
	if (c->cap_inh & ~(oc.inh | oc.bnd))
		return refuse_caps(ctx, pid, c->cap_inh & ~(oc.inh | oc.bnd), "inheritable");
	change = creds_changes(c);
	if (change < 0)
		return snap_fail(ctx, change, "cannot read our own credentials: %s", strerror(-change));
	r = 0;
	if (change & RESTORER_CREDS_GROUPS)
		r = need_cap(ctx, &oc, CAP_SETGID, pid, "supplementary groups");
	if (!r && (change & RESTORER_CREDS_GIDS))
		r = need_cap(ctx, &oc, CAP_SETGID, pid, "group ids");
	if (!r && (change & RESTORER_CREDS_UIDS))
		r = need_cap(ctx, &oc, CAP_SETUID, pid, "user ids");
	if (!r && (change & (RESTORER_CREDS_SECBITS | RESTORER_CREDS_FIXUP)))
		r = need_cap(ctx, &oc, CAP_SETPCAP, pid, "securebits");
	if (!r && (oc.bnd & ~c->cap_bnd))
		r = need_cap(ctx, &oc, CAP_SETPCAP, pid, "bounding set");
	if (!r && (c->cap_inh & ~(oc.inh | oc.prm)))
		r = need_cap(ctx, &oc, CAP_SETPCAP, pid, "inheritable set");
	if (r)
		return r;
	/* The securebits the restorer changes must not be locked here. */
	secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if ((change & (RESTORER_CREDS_SECBITS | RESTORER_CREDS_FIXUP)) && (secbits < 0 || (secbits & SECURE_ALL_LOCKS)))
		return snap_fail(ctx, -EPERM,
				 "pid %d: our own securebits 0x%lx are locked; its credentials cannot be set", pid,
				 secbits);
	return 0;
}

int creds_fill_args(struct snap_ctx *ctx, const CredsEntry *c, struct restorer_creds *rc, uint32_t *groups)
{
	int r;

	struct own_caps oc;

	if (c->n_groups)
		memcpy(groups, c->groups, c->n_groups * sizeof(uint32_t));
	*rc = (struct restorer_creds){
		.uid = { c->uid, c->euid, c->suid, c->fsuid },
		.gid = { c->gid, c->egid, c->sgid, c->fsgid },
		.groups = (uint64_t)groups,
		.nr_groups = (uint32_t)c->n_groups,
		.secbits = c->secbits,
		.cap_inh = c->cap_inh,
		.cap_prm = c->cap_prm,
		.cap_eff = c->cap_eff,
		.cap_bnd = c->cap_bnd,
		.cap_amb = c->cap_amb,
		.no_new_privs = c->no_new_privs,
	};
	/* Validation checked the image's sets against ours, so ours tell which capabilities exist. */
	r = read_own_caps(ctx, &oc);
	if (r)
		return r;
	rc->last_cap = (uint32_t)oc.last_cap;
	r = creds_changes(c);
	if (r < 0)
		return snap_fail(ctx, r, "cannot read our own credentials: %s", strerror(-r));
	rc->change = (uint32_t)r;
	return 0;
}
