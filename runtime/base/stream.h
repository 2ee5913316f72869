/*
 * Writing to a libuv stream without holding on to the caller's buffers: the
 * write is tried at once (most small responses fit the socket buffer), and
 * only what the kernel did not take is copied and queued.
 */
#ifndef FLOE_STREAM_H
#define FLOE_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

/** One queued write; the callback reaches it with container_of(req, ...) and frees it. */
struct floe_write {
	uv_write_t req;
	void *owner; /* the caller's object */
	size_t len;  /* bytes in data */
	char data[];
};

/**
 * Write bufs to s. When queued (the caller's count of bytes still in flight
 * on s) is 0 the write is tried synchronously first, since order is only
 * safe then. What remains is copied into one struct floe_write and queued
 * with cb, which must free() it.
 * Returns the number of bytes queued (0 when all went out now), or a
 * negative libuv error (nothing queued).
 */
ssize_t floe_stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, size_t queued,
			  void *owner, uv_write_cb cb);

/** The floe_write of a request passed to a uv_write_cb. */
static inline struct floe_write *floe_write_of(uv_write_t *req)
{
	return (struct floe_write *)((char *)req - offsetof(struct floe_write, req));
}

#endif
