/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
 * ext4 and the floe usage ledger's record frames.
 */
#ifndef FLOE_CRC32C_H
#define FLOE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/**
 * Extend crc over len bytes of buf. Start with crc = 0; feeding the result
 * back in continues the checksum, so floe_crc32c(floe_crc32c(0, a, n), b, m)
 * equals the one-shot checksum of a followed by b.
 * Known vector: floe_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t floe_crc32c(uint32_t crc, const void *buf, size_t len);

/** The same checksum, always table-driven (what floe_crc32c uses without SSE4.2; for tests). */
uint32_t floe_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
