#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "xalloc.h"

ssize_t floe_stream_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, size_t queued,
			  void *owner, uv_write_cb cb)
{
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	if (total == 0)
		return 0;
	size_t skip = 0;
	if (queued == 0) {
		int r = uv_try_write(s, bufs, n);
		if (r < 0 && r != UV_EAGAIN)
			return r;
		if (r > 0)
			skip = (size_t)r;
		if (skip == total)
			return 0;
	}
	struct floe_write *w = xmalloc(sizeof(*w) + total - skip);
	w->owner = owner;
	w->len = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t len = bufs[i].len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(w->data + w->len, bufs[i].base + skip, len - skip);
		w->len += len - skip;
		skip = 0;
	}
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	int r = uv_write(&w->req, s, &b, 1, cb);
	if (r < 0) {
		free(w);
		return r;
	}
	return (ssize_t)w->len;
}
