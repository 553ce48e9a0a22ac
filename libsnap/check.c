/* snap_check: probes each kernel feature the engine uses. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/prctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch.h"
#include "compat.h"
#include "proc-fdinfo.h"
#include "ptrace.h"
#include "sockdiag.h"

static int probe_clone3(void)
{
	/* An empty clone_args is rejected with EINVAL by a kernel that has clone3. */
	return syscall(SYS_clone3, NULL, 0) < 0 && errno != ENOSYS;
}

static int probe_pidfd_getfd(void)
{
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0), ok, fd;

	if (pidfd < 0)
		return 0;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, pidfd, 0);
	ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	close(pidfd);
	return ok;
}

static int probe_mm_map(void)
{
	unsigned int size = 0;

	return prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) == 0 && size > 0;
}

static int probe_memfd(void)
{
	int fd = (int)syscall(SYS_memfd_create, "snap-check", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static int probe_process_vm_readv(void)
{
	long src = 42, dst = 0;
	struct iovec l = { &dst, sizeof(dst) }, r = { &src, sizeof(src) };

	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == sizeof(dst) && dst == 42;
}

static int probe_pagemap_pfn(void)
{
	static const char path[] = "/proc/self/pagemap";
	volatile long probe = 1;
	uint64_t ent = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	ok = pread(fd, &ent, 8, (off_t)((uintptr_t)&probe / (uintptr_t)sysconf(_SC_PAGESIZE) * 8)) == 8;
	close(fd);
	return ok && (ent >> 63) && (ent & ((1ull << 55) - 1));
}

static int probe_pagemap_scan(void)
{
	struct pm_scan_arg arg = { .size = sizeof(arg) };
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return 0;
	r = ioctl(fd, PAGEMAP_SCAN, &arg);
	close(fd);
	/* An empty range is fine (0) or refused for its arguments (EINVAL); ENOTTY means no such ioctl. */
	return r >= 0 || errno == EINVAL;
}

static int probe_userfaultfd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static int probe_timer_restore_ids(void)
{
	return prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) >= 0;
}

static int probe_kcmp(void)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0) == 0;
}

static int probe_vdso_syscall(void)
{
	return vdso_syscall_offset() >= 0;
}

static int probe_children(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	return access(path, R_OK) == 0;
}

static int probe_sock_diag(struct snap_ctx *ctx, int family)
{
	struct unix_diag_table ut = { 0 };
	struct inet_diag_table it = { 0 };
	int ok;

	if (family == AF_UNIX) {
		ok = !sockdiag_unix_load(ctx, &ut);
		unix_diag_table_free(&ut);
	} else {
		ok = !sockdiag_inet_load(ctx, AF_INET, IPPROTO_TCP, &it);
		inet_diag_table_free(&it);
		ok = ok && !sockdiag_inet_load(ctx, AF_INET, IPPROTO_UDP, &it);
		inet_diag_table_free(&it);
	}
	snap_clear_error(ctx);
	return ok;
}

static int probe_tcp_repair(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1, ok;

	if (fd < 0)
		return 0;
	ok = !setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
	close(fd);
	return ok;
}

static int probe_timerfd_ticks(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), ok;
	uint64_t ticks = 1;

	if (fd < 0)
		return 0;
	ok = !ioctl(fd, _IOW('T', 0, uint64_t), &ticks); /* TFD_IOC_SET_TICKS */
	close(fd);
	return ok;
}

static int probe_eventfd_fdinfo(void)
{
	int fd = eventfd(3, EFD_CLOEXEC | EFD_SEMAPHORE), ok = 0;
	struct fdinfo_eventfd ev;
	char path[64], buf[1024];
	int f;
	ssize_t n;

	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		n = read(f, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			ok = !fdinfo_parse_eventfd(buf, &ev, NULL) && ev.count == 3 && ev.semaphore;
		}
		close(f);
	}
	close(fd);
	return ok;
}

/* Seizes a child of ours and asks for everything dump reads through ptrace. */
static int probe_ptrace(struct snap_ctx *ctx)
{
	struct arch_thread_state st = { 0 };
	struct __ptrace_rseq_configuration rseq;
	uint64_t mask;
	int status, ok = 0;
	pid_t pid = fork();

	if (pid < 0)
		return 0;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (!ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) && !ptrace(PTRACE_INTERRUPT, pid, 0, 0) &&
	    !ptrace_wait(pid, &status) && WIFSTOPPED(status)) {
		ok = !arch_get_thread(ctx, pid, &st) && !ptrace(PTRACE_GETSIGMASK, pid, sizeof(mask), &mask) &&
		     ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof(rseq), &rseq) > 0;
		arch_thread_state_free(&st);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, __WALL);
	snap_clear_error(ctx);
	return ok;
}

int snap_check(snap_ctx *ctx, void (*fn)(void *opaque, const struct snap_feature *f), void *opaque)
{
	struct snap_feature feats[] = {
		{ "ptrace", "PTRACE_SEIZE/INTERRUPT, register sets, signal mask and rseq configuration", 1,
		  probe_ptrace(ctx) },
		{ "clone3", "clone3() with set_tid, to restore with the same PID", 1, probe_clone3() },
		{ "pidfd_getfd", "pidfd_open() and pidfd_getfd(), to take the parasite's socket", 1,
		  probe_pidfd_getfd() },
		{ "memfd", "memfd_create(), for the parasite's shared memory", 1, probe_memfd() },
		{ "prctl_mm_map", "PR_SET_MM_MAP (CONFIG_CHECKPOINT_RESTORE)", 1, probe_mm_map() },
		{ "process_vm_readv", "process_vm_readv(), to drain memory in batches", 1, probe_process_vm_readv() },
		{ "pagemap_pfn", "/proc/PID/pagemap with page frame numbers, to skip zero pages", 0,
		  probe_pagemap_pfn() },
		{ "proc_children", "/proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)", 1, probe_children() },
		{ "vdso_syscall", "a system call instruction in the vDSO, for injected calls", 1,
		  probe_vdso_syscall() },
		{ "pagemap_scan", "PAGEMAP_SCAN ioctl (Linux 6.7), for faster dirty-page scans", 0,
		  probe_pagemap_scan() },
		{ "userfaultfd", "userfaultfd(), for lazy restore", 0, probe_userfaultfd() },
		{ "kcmp", "kcmp(), to find shared files and memory (dumps with fds need it)", 0, probe_kcmp() },
		{ "sock_diag_unix", "sock_diag for unix sockets (unix_diag), for unix sockets", 0,
		  probe_sock_diag(ctx, AF_UNIX) },
		{ "sock_diag_inet", "sock_diag for TCP and UDP (inet_diag, udp_diag), for inet sockets", 0,
		  probe_sock_diag(ctx, AF_INET) },
		{ "tcp_repair", "TCP_REPAIR (CAP_NET_ADMIN), for --tcp-established and --tcp-close", 0,
		  probe_tcp_repair() },
		{ "timerfd_ticks", "TFD_IOC_SET_TICKS, for timerfd expirations not read yet", 0,
		  probe_timerfd_ticks() },
		{ "eventfd_fdinfo", "an eventfd's counter and semaphore mode in fdinfo, for eventfds", 0,
		  probe_eventfd_fdinfo() },
		{ "timer_restore_ids", "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15), to restore POSIX timers with any ids",
		  0, probe_timer_restore_ids() },
	};
	int r = 0;

	snap_clear_error(ctx);
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
		if (fn)
			fn(opaque, &feats[i]);
		if (feats[i].required && !feats[i].present && !r)
			r = snap_fail(ctx, -ENOSYS, "required kernel feature missing: %s (%s)", feats[i].name,
				      feats[i].what);
	}
	return r;
}
