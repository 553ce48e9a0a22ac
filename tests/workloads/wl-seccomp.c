/*
 * Workload: no_new_privs and three seccomp filters whose order matters
 * (two answer the same call; the newest wins), one with
 * SECCOMP_FILTER_FLAG_LOG, and one that refuses tgkill and munmap, which
 * the engine itself uses around the parasite and the restorer.
 * With "dropped" it installs them as root without no_new_privs and then
 * drops CAP_SYS_ADMIN, so that its own credentials could not install them
 * again. With "strict" it enters seccomp strict mode after ready and
 * spins: a dump must refuse it and leave it spinning.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "wl.h"

struct rule {
	long nr;
	int err;
};

static void install(const struct rule *rules, int n, unsigned flags)
{
	struct sock_filter f[32];
	int k = 0;

	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)rules[i].nr, 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)rules[i].err);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { (unsigned short)k, f };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog))
		wl_die("installing a seccomp filter failed: %m");
}

static long status_value(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void expect_errno(long r, int err, const char *what)
{
	int e = errno;

	wl_expect(r == -1 && e == err, "%s returned %ld with errno %d, expected -1 with %d", what, r, e, err);
}

static bool no_sys_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	return !syscall(SYS_capget, &h, d) && !(d[0].effective & (1u << CAP_SYS_ADMIN)) &&
	       !(d[0].permitted & (1u << CAP_SYS_ADMIN));
}

static void drop_sys_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		wl_die("capget failed: %m");
	d[0].effective &= ~(1u << CAP_SYS_ADMIN);
	d[0].permitted &= ~(1u << CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &h, d) || !no_sys_admin())
		wl_die("dropping CAP_SYS_ADMIN failed: %m");
}

static void check(bool dropped)
{
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	errno = 0;
	expect_errno(syscall(SYS_getsid, 0), 12, "getsid (answered by the two newest filters)");
	errno = 0;
	expect_errno(syscall(SYS_getppid), 21, "getppid");
	errno = 0;
	expect_errno(syscall(SYS_tgkill, getpid(), gettid(), 0), 55, "tgkill");
	errno = 0;
	wl_expect(page != MAP_FAILED, "mmap failed: %m");
	expect_errno(munmap(page, 4096), 66, "munmap");
	wl_expect(status_value("Seccomp:") == 2, "Seccomp mode is %ld", status_value("Seccomp:"));
	wl_expect(status_value("Seccomp_filters:") == 3, "%ld seccomp filters, expected 3",
		  status_value("Seccomp_filters:"));
	wl_expect(status_value("NoNewPrivs:") == !dropped, "NoNewPrivs is %ld", status_value("NoNewPrivs:"));
	if (dropped)
		wl_expect(no_sys_admin(), "CAP_SYS_ADMIN came back");
}

int main(int argc, char **argv)
{
	static const struct rule first[] = { { SYS_getsid, 11 }, { SYS_getppid, 21 } };
	static const struct rule second[] = { { SYS_getsid, 12 } };
	static const struct rule third[] = { { SYS_tgkill, 55 }, { SYS_munmap, 66 } };
	const char *mode = argc > 2 ? argv[2] : "filters";
	bool dropped = !strcmp(mode, "dropped");

	wl_init(argc, argv, 0, "[filters|dropped|strict]");
	if (!strcmp(mode, "strict")) {
		wl_ready();
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
			wl_die("strict mode failed: %m");
		/* read(2) is one of the four calls left. */
		for (;;) {
			char c;

			if (read(STDIN_FILENO, &c, 1) < 0)
				break;
		}
		syscall(SYS_exit, WL_EXIT_CHECK_FAILED);
	}
	if (!dropped && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("PR_SET_NO_NEW_PRIVS failed: %m");
	install(first, 2, 0);
	install(second, 1, SECCOMP_FILTER_FLAG_LOG);
	install(third, 2, 0);
	if (dropped)
		drop_sys_admin();
	wl_ready();
	wl_wait_go();
	check(dropped);
	return wl_finish();
}
