/*
 * The persistent endpoint state: what the endpoint API created, kept in
 * DATA_DIR/state/endpoints.msgpack so floed restarts into the same
 * endpoints. The store does not interpret an endpoint's definition: it keeps
 * the API layer's JSON text as is, the state the user last asked for, and
 * the last status changes.
 *
 * File format (version 1): a msgpack map
 *   {"version": 1, "endpoints": [{"namespace", "name", "spec", "created_at_ms",
 *    "updated_at_ms", "desired", "history": [{"t_ms", "state", "message"}...]}...]}
 * followed by the 32-byte SHA-256 of the msgpack bytes. Entries are written
 * sorted by (namespace, name) and keys in a fixed order, so equal states
 * give byte-identical files. Unknown keys are skipped on load (a newer floed
 * may add fields); missing or mistyped ones make the file corrupt.
 *
 * All calls do blocking file I/O or none at all; none is thread-safe on
 * one struct floe_state: floed owns it on the loop thread and hands a save
 * to its thread pool, one save at a time (two concurrent saves never mix
 * their bytes, but which one lands last is unspecified).
 */
#ifndef FLOE_STATE_H
#define FLOE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

/** Longest namespace or endpoint name, in bytes (Hugging Face allows 32 characters). */
#define FLOE_STATE_NAME_MAX 63
/** Largest spec (the endpoint's definition as JSON text), in bytes. */
#define FLOE_STATE_SPEC_MAX (1u << 20)
/** Status changes kept per endpoint; recording one more drops the oldest. */
#define FLOE_STATE_HISTORY_MAX 32
/** Longest status name in a history event; floe_state_record truncates. */
#define FLOE_STATE_EVENT_STATE_MAX 63
/** Longest message in a history event; floe_state_record truncates. */
#define FLOE_STATE_EVENT_MESSAGE_MAX 1024
/** Largest state file floe_state_save writes and floe_state_load reads. */
#define FLOE_STATE_FILE_MAX (256u << 20)

/** What the user last asked of an endpoint; floed restarts into it. */
enum floe_state_desired {
	FLOE_STATE_RUNNING = 0,    /* "running": serve, scaling to zero when idle as configured */
	FLOE_STATE_PAUSED,         /* "paused": no replicas, requests answered 503, never woken */
	FLOE_STATE_SCALED_TO_ZERO, /* "scaledToZero": no replicas now, woken by a request */
};

/** The Hugging Face spelling of d ("running", "paused", "scaledToZero"). */
const char *floe_state_desired_name(enum floe_state_desired d);

/** Parse the Hugging Face spelling. Returns 0 or -EINVAL. */
int floe_state_desired_parse(const char *s, enum floe_state_desired *out);

/** One status change. Strings are owned by the event, never NULL. */
struct floe_state_event {
	uint64_t t_ms; /* wall clock, Unix milliseconds */
	char *state;   /* a Hugging Face status state ("initializing", "running", ...) */
	char *message; /* free text, may be "" */
};

/**
 * One endpoint. Strings are owned by the entry and never NULL; replace them
 * with free + xstrdup (or floe_state_entry_set_spec) and floe_state_save
 * checks them all. ns and name identify the entry: do not change them on an
 * entry inside a struct floe_state (remove and put instead).
 */
struct floe_state_entry {
	char *ns;        /* namespace, 1..FLOE_STATE_NAME_MAX bytes */
	char *name;      /* 1..FLOE_STATE_NAME_MAX bytes */
	char *spec_json; /* the definition as JSON text, opaque here; "" when unset */
	uint64_t created_at_ms, updated_at_ms; /* wall clock, Unix milliseconds */
	enum floe_state_desired desired;
	/* oldest first; at most FLOE_STATE_HISTORY_MAX */
	struct floe_state_event history[FLOE_STATE_HISTORY_MAX];
	size_t n_history;
};

/**
 * All endpoints. Caller memory: floe_state_init or floe_state_load fill it,
 * floe_state_destroy frees what it holds. The entries are individually
 * allocated, so an entry pointer stays valid until that entry is removed or
 * the state destroyed (adding others does not move it). Order is
 * unspecified in memory; saves sort.
 */
struct floe_state {
	struct floe_state_entry **entries;
	size_t n;
	size_t cap;
};

/** An empty state. */
void floe_state_init(struct floe_state *st);

/** Free every entry; st becomes empty (and may be reused after floe_state_init). */
void floe_state_destroy(struct floe_state *st);

/**
 * Load DATA_DIR/state/endpoints.msgpack into st (overwritten: pass one that
 * holds nothing). Also removes temp files a crashed save left in
 * DATA_DIR/state, so call it before any save of the same data_dir starts.
 *
 * - Missing file (or data_dir, or its state/): st empty, returns 0.
 * - Corrupt file (bad trailer, bad msgpack, a missing or mistyped field,
 *   out-of-range values, duplicate endpoints, larger than
 *   FLOE_STATE_FILE_MAX): the file is moved to
 *   DATA_DIR/state/corrupt/endpoints.UNIX_MS.msgpack, with the reason in
 *   endpoints.UNIX_MS.msgpack.REASON beside it (the newest 8 are kept), st is
 *   empty, *set_aside is true, and it returns 0; err (code -EIO) then holds
 *   what to log: the reason and where the file went. Nothing of a corrupt
 *   file is ever loaded.
 * - A file of a later format version (valid trailer, "version" > 1):
 *   returns -ENOTSUP and leaves the file alone (not corrupt, only newer:
 *   an older floed must not drop its endpoints).
 * - I/O errors other than ENOENT (unreadable file, state/ not a directory,
 *   a corrupt file that cannot be moved aside): -errno with err set.
 *
 * set_aside may be NULL. On every error return st is empty.
 */
int floe_state_load(const char *data_dir, struct floe_state *st, bool *set_aside, floe_error *err);

/**
 * Write st to DATA_DIR/state/endpoints.msgpack, atomically and durably:
 * create DATA_DIR/state (0700) if needed, write a temp file in it, fsync,
 * rename over the old file, fsync the directory. A crash or a failure leaves
 * the old file or the new one, never a mix, and no temp file behind a failed
 * save. Returns 0, -EINVAL (an entry breaks the limits above: err names it;
 * nothing is written), -EFBIG (past FLOE_STATE_FILE_MAX) or -errno of the
 * failing file operation (err says which).
 */
int floe_state_save(const char *data_dir, const struct floe_state *st, floe_error *err);

/**
 * floe_state_save in two halves, so that the file I/O can run on another
 * thread than the one owning st: encode appends the file's bytes to out
 * (same checks and errors as floe_state_save, nothing touched on disk);
 * write puts len bytes at data in place, atomically and durably, and needs
 * nothing of st. Two writes may run at once; the caller orders them.
 */
int floe_state_encode(const struct floe_state *st, struct floe_buf *out, floe_error *err);
int floe_state_write(const char *data_dir, const void *data, size_t len, floe_error *err);

/** The entry ns/name, or NULL. */
struct floe_state_entry *floe_state_find(struct floe_state *st, const char *ns, const char *name);

/**
 * Find ns/name, or add it: a new entry has spec_json "", desired
 * FLOE_STATE_RUNNING, zero timestamps and no history. Returns NULL with err
 * set (-EINVAL) when ns or name is empty or longer than FLOE_STATE_NAME_MAX.
 */
struct floe_state_entry *floe_state_put(struct floe_state *st, const char *ns, const char *name,
					floe_error *err);

/** Remove and free ns/name. Returns false when there was none. */
bool floe_state_remove(struct floe_state *st, const char *ns, const char *name);

/**
 * Replace e's spec with a copy of the len bytes at json. Returns 0, or
 * -EINVAL with err set (e unchanged) when they hold a NUL or are more than
 * FLOE_STATE_SPEC_MAX bytes. The JSON itself is not checked.
 */
int floe_state_entry_set_spec(struct floe_state_entry *e, const char *json, size_t len,
			      floe_error *err);

/**
 * Append a status change to e's history, dropping the oldest beyond
 * FLOE_STATE_HISTORY_MAX. state and message (NULL: "") are copied,
 * truncated to FLOE_STATE_EVENT_STATE_MAX and FLOE_STATE_EVENT_MESSAGE_MAX
 * bytes on a UTF-8 character boundary. Does not touch updated_at_ms.
 */
void floe_state_record(struct floe_state_entry *e, uint64_t t_ms, const char *state,
		       const char *message);

#endif
