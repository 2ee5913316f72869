/* Intrusive doubly-linked lists (a node embedded in its owner, owner reached
 * with container_of), as in the kernel and h2o's h2o_linklist_t. */
#ifndef FLOE_LIST_H
#define FLOE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct floe_list {
	struct floe_list *prev, *next;
};

/** An empty list head, or an unlinked node, points to itself. */
static inline void floe_list_init(struct floe_list *l)
{
	l->prev = l->next = l;
}

static inline bool floe_list_empty(const struct floe_list *l)
{
	return l->next == l;
}

/** For nodes: true while linked into some list (nodes must be init'ed). */
static inline bool floe_list_linked(const struct floe_list *n)
{
	return n->next != n;
}

static inline void floe_list_insert_before(struct floe_list *pos, struct floe_list *n)
{
	n->prev = pos->prev;
	n->next = pos;
	pos->prev->next = n;
	pos->prev = n;
}

/** Append at the tail. */
static inline void floe_list_push(struct floe_list *head, struct floe_list *n)
{
	floe_list_insert_before(head, n);
}

/** Unlink a node (no-op if unlinked); it is left self-linked. */
static inline void floe_list_remove(struct floe_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	floe_list_init(n);
}

/** Remove and return the first node, or NULL. */
static inline struct floe_list *floe_list_shift(struct floe_list *head)
{
	if (floe_list_empty(head))
		return NULL;
	struct floe_list *n = head->next;
	floe_list_remove(n);
	return n;
}

#define floe_list_for_each(pos, head) \
	for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
/* Safe against removal of pos. */
#define floe_list_for_each_safe(pos, tmp, head)                          \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)

#endif
