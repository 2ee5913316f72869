/*
 * Allocation that never returns NULL: out of memory logs and aborts, so
 * callers do not thread ENOMEM through every path.
 */
#ifndef FLOE_XALLOC_H
#define FLOE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/** Duplicate s (NULL stays NULL). */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/** Allocate and format; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** For __attribute__((cleanup(...))): frees *(void **)p. */
void floe_cleanup_free(void *p);
/** For __attribute__((cleanup(...))): closes *(int *)p if >= 0. */
void floe_cleanup_close(int *fd);

#define cleanup_free __attribute__((cleanup(floe_cleanup_free)))
#define cleanup_close __attribute__((cleanup(floe_cleanup_close)))

#endif
