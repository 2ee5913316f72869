/*
 * The usage ledger: crash-safe, append-only segment files of msgpack
 * records, each keyed by (replica, minute, seq).
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
 * The key is (replica, minute, seq). Sequence rule (the writer's contract,
 * not checked by it): per replica, seq strictly increases from one append
 * to the next (floed starts at 1 and adds 1), except that after a failed
 * append or commit (see below) the records appended since the last
 * successful commit are appended again, in their original order. So a
 * copy of a record can only follow a record with the same or a higher seq
 * of its replica, and readers treat a record whose seq is <= the highest
 * seq already read for its replica as a duplicate: each (replica, seq) is
 * returned once, the first copy in ledger order. minute is stored and
 * returned but plays no part in that.
 *
 * Durability: floe_ledger_append() write(2)s the frame to the segment (it
 * survives a kill -9 of the process, not a power loss); floe_ledger_commit()
 * fsyncs it. Records are numbered 1, 2, ... in append order from each
 * floe_ledger_open() (a number identifies a record within one open only;
 * counting the records already stored would mean reading every segment);
 * floe_ledger_committed() is the highest number known durable. A record is
 * reported committed only after an fsync that followed its write succeeded.
 *
 * Errors (ENOSPC, EFBIG, EIO): append and commit return -errno and count it
 * (floe_ledger_errors()). A failed append leaves no partial frame: the file
 * is truncated back to the end of the last whole record (if even that fails,
 * the segment is abandoned and the next append starts a new one). After a
 * failed commit (or an abandoned segment), every record appended since the
 * last successful commit is discarded: it is never reported committed; the
 * caller appends the whole discarded batch again, in order (the sequence
 * rule makes readers drop any copy that did reach the disk). A discarded
 * record's number is never reused, so floe_ledger_committed() may later
 * pass it: the error return is what tells the caller which batch to append
 * again. On Linux a failed fsync may drop the dirty pages, so retrying the
 * fsync would not be enough.
 *
 * Recovery (floe_ledger_open): only the newest segment is read (a writer
 * commits a segment before it starts the next, so older ones hold nothing
 * uncommitted; open() of a year of segments reads one file). Its torn tail
 * (short header, short payload, bad length or CRC mismatch with no valid
 * record after it) is truncated and the segment fsynced, with a warning
 * naming file and offset. Damage anywhere else (a bad frame followed by
 * valid ones, or anything in an older segment) is never truncated: readers
 * report it (file, offset, length), skip it by scanning forward for the next
 * offset where a whole valid frame parses, and flag the read incomplete.
 * open() reports only what it finds in the newest segment; damage in older
 * segments is found by floe_ledger_read().
 *
 * Memory: the writer keeps nothing per record or per replica. A read keeps
 * a 1 MiB window of the segment it reads and a map replica -> highest seq:
 * O(distinct replicas), 32 to 64 bytes of slots + the name + 1 each
 * (700 k replicas with 20-byte names: ~50 MB), nothing per record.
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
	/* Set by readers, ignored by append: the replica's number in this read,
	 * 0, 1, 2, ... in order of first appearance, so that a caller can keep
	 * per-replica state in an array instead of a second map by name. */
	uint32_t index;
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
	uint64_t records;     /* records returned (each (replica, seq) once) */
	uint64_t duplicates;  /* skipped: seq <= the highest read for the replica */
	uint64_t segments;    /* segments read (open: 1, the newest, or 0) */
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
 * Open (or create) the ledger in opts->dir for writing and recover its
 * newest segment (see above). If recovery is non-NULL it receives what was
 * found in that segment: its records, damage and torn tail (release with
 * floe_ledger_reader_destroy). Record numbers start again at 1. Returns 0
 * or -errno with err set.
 */
int floe_ledger_open(const floe_ledger_options *opts, floe_ledger **out,
		     floe_ledger_reader *recovery, floe_error *err);

/**
 * Append one record; the caller keeps to the sequence rule above (a record
 * that breaks it is stored but readers skip it as a duplicate). payload: len
 * (>= 1) bytes of msgpack built by the caller, copied. Returns 0 and sets
 * *recno (may be NULL) when written, -EINVAL for a bad key or empty payload,
 * -EMSGSIZE when the record is over FLOE_LEDGER_MAX_PAYLOAD, or -errno of a
 * failed write/fsync/create (see the error rules above: the records since
 * the last commit are then discarded and must be appended again).
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

/** Commit (errors are logged) and free. NULL is a no-op. */
void floe_ledger_close(floe_ledger *lg);

/**
 * Read every record of the ledger in dir, across segments in order, each
 * (replica, seq) once (see the sequence rule), calling cb. Does not modify
 * files; safe while a writer appends (it sees a prefix of the newest
 * segment, and reports a record being written as a torn tail). rd
 * (required) receives the report; release it with
 * floe_ledger_reader_destroy. Returns 0, cb's non-zero return, or -errno
 * with err set (a missing dir is an empty ledger; -EOVERFLOW past 4 GiB of
 * distinct replica names).
 */
int floe_ledger_read(const char *dir, floe_ledger_record_cb cb, void *opaque,
		     floe_ledger_reader *rd, floe_error *err);

/**
 * floe_ledger_read() of the segments whose day (in the file name) is
 * <= last_day ("YYYY-MM-DD"; NULL: all); the later ones are not opened. A
 * segment's day is the writer's UTC day when the segment was created, and
 * a writer rotates when the day changes, so every record appended (by the
 * writer's clock) after last_day is left out, and every record appended on
 * or before it is read, unless the writer's clock went back across
 * midnight (it then keeps writing to the newest day). A record's own time
 * may precede its append (floed writes answers after their minute ends):
 * callers pick last_day with a margin.
 */
int floe_ledger_read_until(const char *dir, const char *last_day, floe_ledger_record_cb cb,
			   void *opaque, floe_ledger_reader *rd, floe_error *err);

/**
 * floe_ledger_read with the file reading, checksums and dedupe on a second
 * thread, while cb runs on the caller's thread (records in the same order,
 * the same report). For callers that do real work per record (the export):
 * on two cores the read then costs next to nothing. Falls back to
 * floe_ledger_read when no thread can be created.
 */
int floe_ledger_read_pipelined(const char *dir, floe_ledger_record_cb cb, void *opaque,
			       floe_ledger_reader *rd, floe_error *err);

/** Free what a reader report owns and zero it. */
void floe_ledger_reader_destroy(floe_ledger_reader *rd);

#endif
