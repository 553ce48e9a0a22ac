/* placeholder */
typedef int placeholder_t_regs;
