/*
 * The usage ledger: crash-safe, append-only segment files of msgpack
 * records, each with an idempotency key.
 *
 * On disk: a directory (floed uses DATA/ledger) of segment files named
 * YYYY-MM-DD.N.seg (UTC day of the clock when the segment was created; N
 * counts from 0 per day). Every open of the ledger for writing starts a new
 * segment at its first append, so an existing segment is never appended to;
 * a segment also rotates past segment_max_bytes and when the UTC day changes.
 * Segments are never rewritten, except that recovery truncates a torn tail
 * of the newest segment.
 *
 * A record is a frame:
 *     u32 LE  payload length (1 .. FLOE_LEDGER_MAX_PAYLOAD)
 *     u32 LE  CRC32C over the 4 length bytes and the payload
 *     payload one msgpack map {"replica": str, "minute": uint, "seq": uint,
 *             "data": bin}; "data" holds the caller's msgpack bytes as given.
 * The key (replica, minute, seq) is the idempotency key: the ledger stores a
 * key at most once, and readers return a key at most once.
 *
 * Durability: floe_ledger_append() write(2)s the frame to the segment (it
 * survives a kill -9 of the process, not a power loss); floe_ledger_commit()
 * fsyncs it. Records are numbered 1, 2, ... in append order across the life
 * of the ledger (numbers restart above the count of records found at open);
 * floe_ledger_committed() is the highest number known durable. A record is
 * reported committed only after an fsync that followed its write succeeded.
 *
 * Errors (ENOSPC, EFBIG, EIO): append and commit return -errno and count it
 * (floe_ledger_errors()). A failed append leaves no partial frame: the file
 * is truncated back to the end of the last whole record (if even that fails,
 * the segment is abandoned and the next append starts a new one). After a
 * failed commit (or an abandoned segment), every record appended since the
 * last successful commit is discarded: its key is forgotten and it is never
 * reported committed; the caller appends it again (the key makes that safe
 * even if a copy did reach the disk). A discarded record's number is never
 * reused, so floe_ledger_committed() may later pass it: the error return is
 * what tells the caller which batch to append again. On Linux a failed fsync may drop the
 * dirty pages, so retrying the fsync would not be enough.
 *
 * Recovery (floe_ledger_open): every segment is scanned in order. In the
 * newest segment a torn tail (short header, short payload, bad length or CRC
 * mismatch with no valid record after it) is truncated and fsynced, with a
 * warning naming file and offset. Any other damage (a bad frame followed by
 * valid ones, or in an older segment) is never truncated: it is reported
 * (file, offset, length), skipped by scanning forward for the next offset
 * where a whole valid frame parses, and readers flag the read incomplete.
 *
 * Memory: the writer keeps the key of every record loaded or appended in a
 * hash set, about 56 bytes plus the replica string per record (a month of
 * 1,000 replicas at one record per minute: ~43 M records, ~3 GB; fine for
 * now, to be bounded by day when metering lands).
 *
 * Threads: everything here blocks on file I/O; floed calls it from a worker
 * thread. One writer per ledger directory, and a floe_ledger is not
 * thread-safe by itself.
 */
#ifndef FLOE_LEDGER_H
#define FLOE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

#define FLOE_LEDGER_MAX_PAYLOAD (64u * 1024u) /* frame payload, bytes */
#define FLOE_LEDGER_MAX_REPLICA 255u          /* replica name, bytes */
#define FLOE_LEDGER_DEFAULT_SEGMENT_MAX (64ull * 1024 * 1024)

/** The idempotency key of a record. */
typedef struct floe_ledger_key {
	const char *replica; /* non-empty, at most FLOE_LEDGER_MAX_REPLICA bytes */
	uint64_t minute;     /* unix minute (seconds since the epoch / 60) */
	uint32_t seq;        /* distinguishes records of one replica and minute */
} floe_ledger_key;

/** Options of floe_ledger_open(). Zeroed fields take the defaults. */
typedef struct floe_ledger_options {
	const char *dir;            /* ledger directory; created if missing */
	uint64_t segment_max_bytes; /* rotate past this size; 0: 64 MiB */
	/* Wall clock (unix seconds) that picks the segment's UTC day; NULL: time(). */
	time_t (*now)(void *opaque);
	void *now_opaque;
} floe_ledger_options;

/** One damaged byte range that a scan skipped. */
typedef struct floe_ledger_damage {
	char *file;      /* segment path (owned by the reader/ledger) */
	uint64_t offset; /* first damaged byte */
	uint64_t length; /* bytes skipped */
} floe_ledger_damage;

/**
 * Result of a scan. `incomplete` is true when damage was skipped (records
 * may be missing); a torn tail of the newest segment is not damage (those
 * records were never committed) and is reported in tail_* instead.
 */
typedef struct floe_ledger_reader {
	bool incomplete;
	size_t n_damaged;
	floe_ledger_damage *damaged;
	uint64_t records;    /* records returned (each key once) */
	uint64_t duplicates; /* records skipped because their key was seen */
	uint64_t segments;
	bool torn_tail;       /* newest segment ends in a partial/bad frame */
	char *tail_file;      /* its path (owned), NULL without a torn tail */
	uint64_t tail_offset; /* where the torn tail starts */
	uint64_t tail_bytes;  /* its length (already truncated when set by open) */
} floe_ledger_reader;

/**
 * Called once per stored record, in ledger order. payload (len bytes, the
 * caller's msgpack as appended) and key->replica are valid during the call
 * only. A non-zero return stops the scan and is returned by the reader.
 */
typedef int (*floe_ledger_record_cb)(const floe_ledger_key *key, const void *payload, size_t len,
				     void *opaque);

typedef struct floe_ledger floe_ledger;

/**
 * Open (or create) the ledger in opts->dir for writing and recover it (see
 * above). If recovery is non-NULL it receives what was found (release with
 * floe_ledger_reader_destroy). Returns 0 or -errno with err set.
 */
int floe_ledger_open(const floe_ledger_options *opts, floe_ledger **out,
		     floe_ledger_reader *recovery, floe_error *err);

/**
 * Append one record. payload: len (>= 1) bytes of msgpack built by the
 * caller, copied. Returns 0 and sets *recno (may be NULL) when written,
 * 1 when the key is already stored (nothing written, *recno untouched),
 * -EINVAL for a bad key or empty payload, -EMSGSIZE when the record is over
 * FLOE_LEDGER_MAX_PAYLOAD, or -errno of a failed write/fsync/create (see
 * the error rules above).
 */
int floe_ledger_append(floe_ledger *lg, const floe_ledger_key *key, const void *payload, size_t len,
		       uint64_t *recno);

/**
 * Make every record appended so far durable (fsync). Returns 0 or -errno;
 * on failure the records since the last successful commit are discarded.
 */
int floe_ledger_commit(floe_ledger *lg);

/** Highest record number known durable (0: none). */
uint64_t floe_ledger_committed(const floe_ledger *lg);

/** Highest record number appended (written, maybe not yet durable). */
uint64_t floe_ledger_appended(const floe_ledger *lg);

/** Write/fsync/create errors since open. */
uint64_t floe_ledger_errors(const floe_ledger *lg);

/** Whether key is stored (loaded at open or appended since). */
bool floe_ledger_contains(const floe_ledger *lg, const floe_ledger_key *key);

/** Commit (errors are logged) and free. NULL is a no-op. */
void floe_ledger_close(floe_ledger *lg);

/**
 * Read every record of the ledger in dir, across segments in order, each key
 * once, calling cb. Does not modify files. rd (required) receives the
 * report; release it with floe_ledger_reader_destroy. Returns 0, cb's
 * non-zero return, or -errno with err set (a missing dir is an empty ledger).
 */
int floe_ledger_read(const char *dir, floe_ledger_record_cb cb, void *opaque,
		     floe_ledger_reader *rd, floe_error *err);

/** Free what a reader report owns and zero it. */
void floe_ledger_reader_destroy(floe_ledger_reader *rd);

#endif
