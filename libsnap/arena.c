/* A bump allocator for the image messages of one dump: everything in it is freed at once. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define BLOCK_SIZE ((size_t)64 << 10)
#define ALIGN	   ((size_t)16)

struct arena_block {
	struct arena_block *next;
	size_t used, size;
	_Alignas(16) unsigned char data[];
};

void *arena_alloc(struct arena *a, size_t size)
{
	struct arena_block *b = a->head;
	size_t need = (size + ALIGN - 1) & ~(ALIGN - 1);
	void *p;

	if (need < size)
		return NULL;
	if (!b || b->size - b->used < need) {
		/* Big items get a block of their own, so the current block stays in use. */
		size_t bsize = need > BLOCK_SIZE / 4 ? need : BLOCK_SIZE;

		if (bsize > SIZE_MAX - sizeof(*b))
			return NULL;
		b = malloc(sizeof(*b) + bsize);
		if (!b)
			return NULL;
		b->used = 0;
		b->size = bsize;
		if (bsize == need && a->head) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	p = b->data + b->used;
	b->used += need;
	memset(p, 0, size);
	return p;
}

void *arena_memdup(struct arena *a, const void *p, size_t size)
{
	void *q = arena_alloc(a, size ? size : 1);

	if (q && size)
		memcpy(q, p, size);
	return q;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_memdup(a, s, strlen(s) + 1);
}

int arena_push(struct arena *a, void ***arr, size_t *nr, void *item)
{
	size_t n = *nr;

	/* Capacity is implied by the count: powers of two from 4. */
	if (n < 4 ? n == 0 : !(n & (n - 1))) {
		size_t cap = n < 4 ? 4 : n * 2;
		void **grown = arena_alloc(a, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		if (n)
			memcpy(grown, *arr, n * sizeof(*grown));
		*arr = grown;
	}
	(*arr)[n] = item;
	*nr = n + 1;
	return 0;
}

void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *b = a->head;

		a->head = b->next;
		free(b);
	}
}
