/* Parasite commands of the attributes dump (parasite/attrs.c). */
#ifndef SNAP_PARASITE_PARASITE_ATTRS_H
#define SNAP_PARASITE_PARASITE_ATTRS_H

#include "protocol.h"

/* PARASITE_CMD_DUMP_ATTRS: fills sh->attrs; 0 or -errno of the failing call. */
long parasite_dump_attrs(struct parasite_shared *sh);
/* The calling thread's credentials; 0 or -errno. */
long parasite_dump_creds(struct parasite_creds *c);

#endif
