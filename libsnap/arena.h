/* A bump allocator for the image messages of one dump: everything in it is freed at once. */
#ifndef SNAP_ARENA_H
#define SNAP_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
	struct arena_block *head;
};

/* Zeroed memory for @size bytes, aligned for any type; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);
void *arena_memdup(struct arena *a, const void *p, size_t size);
char *arena_strdup(struct arena *a, const char *s);
/*
 * Appends @item to the array of pointers *@arr holding *@nr items; the
 * array moves when it grows (the old one stays in the arena). Returns 0 or
 * -ENOMEM.
 */
int arena_push(struct arena *a, void ***arr, size_t *nr, void *item);
void arena_free(struct arena *a);

#endif
