/*
 * floe_ledger_read on two threads (see ledger.h): a reader thread runs
 * floe_ledger_read (file reads, CRC32C, the dedupe map) and copies each
 * record into a chunk; the caller's thread takes full chunks and runs the
 * callback. An export spends about a third of its time in the first half
 * and two thirds in the second, so on two cores the read disappears
 * behind the metering.
 *
 * A chunk holds records back to back:
 *     u32 index, u32 seq, u64 minute, u32 payload length, u16 name length,
 *     name bytes, payload bytes
 * Four chunks circulate: the reader waits when all four are full.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "xalloc.h"

#define CHUNK_BYTES (1u << 20)
#define CHUNKS 4
#define REC_HEAD (4 + 4 + 8 + 4 + 2)

struct chunk {
	size_t len;
	unsigned char *data;
};

struct pipe {
	const char *dir;
	floe_ledger_reader *rd;
	floe_error *err;
	int rc; /* floe_ledger_read's, once done */
	pthread_mutex_t mu;
	pthread_cond_t full_cv, free_cv;
	struct chunk chunks[CHUNKS];
	size_t head, n_full; /* ring of full chunks, in order */
	bool done;           /* the reader has finished (its last chunk is queued) */
	bool stop;           /* the consumer wants no more */
	struct chunk *cur;   /* being filled by the reader */
	unsigned char *free_list[CHUNKS];
	size_t n_free;
};

static void put(unsigned char *p, const void *v, size_t n)
{
	memcpy(p, v, n);
}

/* Hand the reader's current chunk over; wait for an empty one. */
static int publish(struct pipe *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->cur && p->cur->len) {
		p->n_full++;
		pthread_cond_signal(&p->full_cv);
	} else if (p->cur) {
		p->free_list[p->n_free++] = p->cur->data;
	}
	p->cur = NULL;
	while (!p->stop && (p->n_free == 0 || p->n_full == CHUNKS))
		pthread_cond_wait(&p->free_cv, &p->mu);
	int stop = p->stop;
	if (!stop) {
		struct chunk *c = &p->chunks[(p->head + p->n_full) % CHUNKS];
		c->data = p->free_list[--p->n_free];
		c->len = 0;
		p->cur = c;
	}
	pthread_mutex_unlock(&p->mu);
	return stop ? 1 : 0;
}

static int reader_cb(const floe_ledger_key *key, const void *payload, size_t len, void *opaque)
{
	struct pipe *p = opaque;
	size_t nlen = strlen(key->replica);
	size_t need = REC_HEAD + nlen + len;
	if (p->cur->len + need > CHUNK_BYTES && publish(p))
		return 1; /* the consumer stopped */
	unsigned char *o = p->cur->data + p->cur->len;
	uint32_t plen = (uint32_t)len;
	uint16_t nl = (uint16_t)nlen;
	put(o, &key->index, 4);
	put(o + 4, &key->seq, 4);
	put(o + 8, &key->minute, 8);
	put(o + 16, &plen, 4);
	put(o + 20, &nl, 2);
	memcpy(o + REC_HEAD, key->replica, nlen);
	memcpy(o + REC_HEAD + nlen, payload, len);
	p->cur->len += need;
	return 0;
}

static void *reader_main(void *arg)
{
	struct pipe *p = arg;
	int rc = publish(p); /* the first empty chunk */
	if (rc == 0)
		rc = floe_ledger_read(p->dir, reader_cb, p, p->rd, p->err);
	pthread_mutex_lock(&p->mu);
	if (p->cur && p->cur->len) {
		p->n_full++;
	} else if (p->cur) {
		p->free_list[p->n_free++] = p->cur->data;
	}
	p->cur = NULL;
	p->rc = rc;
	p->done = true;
	pthread_cond_signal(&p->full_cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Run cb over every record of chunk c; stops at cb's first non-zero. */
static int consume(const struct chunk *c, floe_ledger_record_cb cb, void *opaque)
{
	char name[FLOE_LEDGER_MAX_REPLICA + 1];
	for (size_t off = 0; off < c->len;) {
		const unsigned char *o = c->data + off;
		floe_ledger_key key;
		uint32_t plen;
		uint16_t nl;
		memcpy(&key.index, o, 4);
		memcpy(&key.seq, o + 4, 4);
		memcpy(&key.minute, o + 8, 8);
		memcpy(&plen, o + 16, 4);
		memcpy(&nl, o + 20, 2);
		memcpy(name, o + REC_HEAD, nl);
		name[nl] = '\0';
		key.replica = name;
		int rc = cb(&key, o + REC_HEAD + nl, plen, opaque);
		if (rc)
			return rc;
		off += REC_HEAD + nl + plen;
	}
	return 0;
}

int floe_ledger_read_pipelined(const char *dir, floe_ledger_record_cb cb, void *opaque,
			       floe_ledger_reader *rd, floe_error *err)
{
	struct pipe p = { .dir = dir, .rd = rd, .err = err };
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.full_cv, NULL);
	pthread_cond_init(&p.free_cv, NULL);
	for (int i = 0; i < CHUNKS; i++)
		p.free_list[p.n_free++] = xmalloc(CHUNK_BYTES);
	pthread_t th;
	int rc = pthread_create(&th, NULL, reader_main, &p);
	if (rc != 0) {
		/* No second thread: the plain read does the same work. */
		for (size_t i = 0; i < p.n_free; i++)
			free(p.free_list[i]);
		pthread_cond_destroy(&p.free_cv);
		pthread_cond_destroy(&p.full_cv);
		pthread_mutex_destroy(&p.mu);
		return floe_ledger_read(dir, cb, opaque, rd, err);
	}
	int cb_rc = 0;
	pthread_mutex_lock(&p.mu);
	for (;;) {
		while (p.n_full == 0 && !p.done)
			pthread_cond_wait(&p.full_cv, &p.mu);
		if (p.n_full == 0)
			break; /* done, and everything consumed */
		struct chunk c = p.chunks[p.head];
		pthread_mutex_unlock(&p.mu);
		if (cb_rc == 0)
			cb_rc = consume(&c, cb, opaque);
		pthread_mutex_lock(&p.mu);
		p.head = (p.head + 1) % CHUNKS;
		p.n_full--;
		p.free_list[p.n_free++] = c.data;
		if (cb_rc)
			p.stop = true;
		pthread_cond_signal(&p.free_cv);
	}
	pthread_mutex_unlock(&p.mu);
	pthread_join(th, NULL);
	for (size_t i = 0; i < p.n_free; i++)
		free(p.free_list[i]);
	pthread_cond_destroy(&p.free_cv);
	pthread_cond_destroy(&p.full_cv);
	pthread_mutex_destroy(&p.mu);
	if (p.rc < 0)
		return p.rc;
	return cb_rc;
}
