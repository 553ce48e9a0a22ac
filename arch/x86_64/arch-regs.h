/* x86_64 register set as PTRACE_GETREGSET NT_PRSTATUS returns it. */
#ifndef SNAP_ARCH_REGS_H
#define SNAP_ARCH_REGS_H

#include <sys/user.h>

struct arch_regs {
	struct user_regs_struct r;
};

#endif
