/*
 * Kernel ABI that the build machine's headers (Linux 6.1 on Debian 12) lack:
 * each definition names the kernel version that added it. Included by the
 * engine and the blobs, so it uses only fixed-width types.
 */
#ifndef SNAP_COMPAT_H
#define SNAP_COMPAT_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Linux 6.11: mmap() type of memory the kernel may zero at any time (the vDSO getrandom state). */
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

/* Linux 6.7: PAGEMAP_SCAN ioctl on /proc/PID/pagemap. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED  (1 << 0)
#define PAGE_IS_WRITTEN	   (1 << 1)
#define PAGE_IS_FILE	   (1 << 2)
#define PAGE_IS_PRESENT	   (1 << 3)
#define PAGE_IS_SWAPPED	   (1 << 4)
#define PAGE_IS_PFNZERO	   (1 << 5)
#define PAGE_IS_HUGE	   (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* Linux 6.15: timer_create() with a given id, for restoring POSIX timers. */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS	77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON	1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

/* Linux 6.18: PR_SET_THP_DISABLE flag, reported in bit 1 of PR_GET_THP_DISABLE. */
#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

/* Linux 6.7: userfaultfd asynchronous write-protect. */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* Linux 6.3: memfd execute permission control. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#define MFD_EXEC	0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#endif
