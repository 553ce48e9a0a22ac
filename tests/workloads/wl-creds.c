/*
 * Workload: credentials away from root's: distinct real, effective, saved
 * and fs uids and gids, supplementary groups, trimmed capability sets
 * (inheritable, ambient and bounding too), locked securebits and
 * no_new_privs. Every value must read back exactly: no more, no less.
 */
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#include "wl.h"

#define CAP(c)		 (1ull << (c))
#define INH		 (CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_KILL) | CAP(CAP_CHOWN))
#define AMB		 (CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_KILL))
#define EFF		 (CAP(CAP_KILL) | CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_SETPCAP))
#define PRM		 (EFF | CAP(CAP_CHOWN) | CAP(CAP_SETUID) | CAP(CAP_DAC_OVERRIDE))
#define DROPPED_BOUNDING (CAP(CAP_SYS_BOOT) | CAP(CAP_MKNOD) | CAP(CAP_AUDIT_CONTROL))
#define SECBITS		 (SECBIT_NO_SETUID_FIXUP | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED)

static const gid_t groups[] = { 10, 20, 30, 4242 };

struct creds {
	uid_t uid[4];
	gid_t gid[4];
	gid_t groups[64];
	int nr_groups;
	uint64_t eff, prm, inh, bnd, amb;
	long secbits, nnp;
};

static struct creds before;

static void caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
					       { (uint32_t)(eff >> 32), (uint32_t)(prm >> 32),
						 (uint32_t)(inh >> 32) } };

	if (syscall(SYS_capset, &h, d))
		wl_die("capset failed: %m");
}

static void read_creds(struct creds *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(c, 0, sizeof(*c));
	getresuid(&c->uid[0], &c->uid[1], &c->uid[2]);
	getresgid(&c->gid[0], &c->gid[1], &c->gid[2]);
	c->uid[3] = (uid_t)setfsuid((uid_t)-1);
	c->gid[3] = (gid_t)setfsgid((gid_t)-1);
	c->nr_groups = getgroups(64, c->groups);
	if (!syscall(SYS_capget, &h, d)) {
		c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
		c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
		c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	}
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;
		if (r)
			c->bnd |= CAP(cap);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			c->amb |= CAP(cap);
	}
	c->secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	c->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
}

static void setup(void)
{
	/* ready is written as uid 2003 (fs), go looked up as uid 2000 (real). */
	if (chmod(wl_ctldir, 0777))
		wl_die("chmod %s failed: %m", wl_ctldir);
	if (setgroups(sizeof(groups) / sizeof(groups[0]), groups))
		wl_die("setgroups failed: %m");
	if (setresgid(1000, 1001, 1002))
		wl_die("setresgid failed: %m");
	setfsgid(1003);
	/* Leaving uid 0 must keep the capabilities the next steps need. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0))
		wl_die("PR_SET_SECUREBITS failed: %m");
	if (setresuid(2000, 2001, 2002))
		wl_die("setresuid failed: %m");
	setfsuid(2003);
	read_creds(&before);
	caps_set(before.eff, before.prm, INH);
	for (int cap = 0; cap < 64; cap++)
		if ((AMB >> cap) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0))
			wl_die("raising ambient capability %d failed: %m", cap);
	for (int cap = 0; cap < 64; cap++)
		if ((DROPPED_BOUNDING >> cap) & 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			wl_die("dropping bounding capability %d failed: %m", cap);
	if (prctl(PR_SET_SECUREBITS, SECBITS, 0, 0, 0))
		wl_die("PR_SET_SECUREBITS failed: %m");
	caps_set(EFF, PRM, INH);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("PR_SET_NO_NEW_PRIVS failed: %m");
	read_creds(&before);
	if (before.eff != EFF || before.prm != PRM || before.inh != INH || before.amb != AMB ||
	    (before.bnd & DROPPED_BOUNDING) || before.secbits != SECBITS)
		wl_die("the credentials did not come out as set up");
}

static void check(void)
{
	struct creds now;

	read_creds(&now);
	for (int i = 0; i < 4; i++) {
		wl_expect(now.uid[i] == before.uid[i] && now.uid[i] == (uid_t)(2000 + i), "uid %d is %u, expected %u",
			  i, now.uid[i], 2000 + i);
		wl_expect(now.gid[i] == before.gid[i] && now.gid[i] == (gid_t)(1000 + i), "gid %d is %u, expected %u",
			  i, now.gid[i], 1000 + i);
	}
	wl_expect(now.nr_groups == (int)(sizeof(groups) / sizeof(groups[0])) && now.nr_groups == before.nr_groups &&
			  !memcmp(now.groups, before.groups, sizeof(gid_t) * (size_t)now.nr_groups),
		  "%d supplementary groups, expected %d", now.nr_groups, before.nr_groups);
	wl_expect(now.eff == EFF, "effective capabilities %#llx, expected %#llx", (unsigned long long)now.eff,
		  (unsigned long long)EFF);
	wl_expect(now.prm == PRM, "permitted capabilities %#llx, expected %#llx", (unsigned long long)now.prm,
		  (unsigned long long)PRM);
	wl_expect(now.inh == INH, "inheritable capabilities %#llx, expected %#llx", (unsigned long long)now.inh,
		  (unsigned long long)INH);
	wl_expect(now.amb == AMB, "ambient capabilities %#llx, expected %#llx", (unsigned long long)now.amb,
		  (unsigned long long)AMB);
	wl_expect(now.bnd == before.bnd, "bounding set %#llx, was %#llx", (unsigned long long)now.bnd,
		  (unsigned long long)before.bnd);
	wl_expect(now.secbits == SECBITS, "securebits %#lx, expected %#x", now.secbits, SECBITS);
	wl_expect(now.nnp == 1, "no_new_privs is %ld", now.nnp);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "");
	setup();
	wl_ready();
	wl_wait_go();
	check();
	return wl_finish();
}
