/*
 * SHA-256 (FIPS 180-4). Used where floe needs a name that changes whenever
 * its input does: snapshot keys, and token hashes compared in constant time.
 */
#ifndef FLOE_SHA256_H
#define FLOE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define FLOE_SHA256_LEN 32
#define FLOE_SHA256_HEX_LEN 64

struct floe_sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t block[64];
	size_t fill;
};

void floe_sha256_init(struct floe_sha256 *s);
void floe_sha256_update(struct floe_sha256 *s, const void *data, size_t len);
void floe_sha256_final(struct floe_sha256 *s, uint8_t out[FLOE_SHA256_LEN]);

/** Lower-case hex of a digest; hex must hold FLOE_SHA256_HEX_LEN + 1 bytes. */
void floe_sha256_hex(const uint8_t digest[FLOE_SHA256_LEN], char *hex);

#endif
