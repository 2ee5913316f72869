/*
 * Helper of the ledger kill test: appends records with keys (WRITER, 1,
 * seq = 1, 2, ...) forever, commits every N records (and at least every
 * 2 ms), and after each successful commit prints the highest committed seq
 * on its own line, flushed: the "acknowledged" stream the test checks after
 * SIGKILLing it. Before its first commit and every third one after, it appends the whole batch since
 * the last commit a second time, in order, as floed does after a commit
 * that failed although its records reached the disk: readers must return
 * each seq once. Usage: ledger_writer DIR WRITER [N]
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "ledger.h"
#include "log.h"

static int append_seq(floe_ledger *lg, const char *writer, uint32_t seq)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "seq", 3);
	msgpack_pack_uint32(&pk, seq);
	floe_ledger_key key = { .replica = writer, .minute = 1, .seq = seq };
	int rc = floe_ledger_append(lg, &key, sb.data, sb.size, NULL);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 0)
		fprintf(stderr, "append %u: %d\n", seq, rc);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s DIR WRITER [N]\n", argv[0]);
		return 2;
	}
	unsigned every = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
	floe_log_init(FLOE_LOG_ERROR, false); /* one open per kill: keep the test's output short */
	floe_ledger_options opts = { .dir = argv[1] };
	floe_ledger *lg;
	floe_error err;
	if (floe_ledger_open(&opts, &lg, NULL, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	uint64_t last_commit = floe_now_ms();
	uint32_t acked = 0;
	unsigned commits = 0;
	for (uint32_t seq = 1;; seq++) {
		if (append_seq(lg, argv[2], seq) != 0)
			return 1;
		if (seq % every == 0 || floe_now_ms() - last_commit >= 2) {
			/* The first one too: any run that commits at all re-appends. */
			if (commits++ % 3 == 0)
				for (uint32_t s = acked + 1; s <= seq; s++)
					if (append_seq(lg, argv[2], s) != 0)
						return 1;
			if (floe_ledger_commit(lg) != 0) {
				fprintf(stderr, "commit %u failed\n", seq);
				return 1;
			}
			acked = seq;
			last_commit = floe_now_ms();
			printf("%u\n", seq);
			fflush(stdout);
			/* Spread the run over time so kills land at every stage. */
			nanosleep(&(struct timespec){ 0, 500 * 1000 }, NULL);
		}
	}
}
