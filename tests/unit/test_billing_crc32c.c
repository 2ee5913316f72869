/* CRC32C: known vectors and incremental == one-shot. */
#include <criterion/criterion.h>
#include <string.h>

#include "crc32c.h"

Test(billing_crc32c, known_vectors)
{
	unsigned char zeros[32] = { 0 }, ones[32];
	memset(ones, 0xff, sizeof(ones));
	cr_assert_eq(floe_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(floe_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);
	cr_assert_eq(floe_crc32c(0, ones, sizeof(ones)), 0x62A8AB43u); /* RFC 3720 B.4 */
	cr_assert_eq(floe_crc32c(0, "", 0), 0u);
}

Test(billing_crc32c, incremental_equals_one_shot)
{
	unsigned char buf[1000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	uint32_t whole = floe_crc32c(0, buf, sizeof(buf));
	/* Every split point, including unaligned starts of the 8-byte loop. */
	for (size_t cut = 0; cut <= sizeof(buf); cut++)
		cr_assert_eq(floe_crc32c(floe_crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut),
			     whole, "split at %zu", cut);
	for (size_t start = 0; start < 16; start++) {
		uint32_t c = 0;
		for (size_t i = start; i < sizeof(buf); i++)
			c = floe_crc32c(c, buf + i, 1);
		cr_assert_eq(c, floe_crc32c(0, buf + start, sizeof(buf) - start));
	}
}

/* The SSE4.2 path (where the CPU has it) and the tables agree at every
 * length and alignment. */
Test(billing_crc32c, hardware_equals_portable)
{
	unsigned char buf[300];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245 + 12345;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len++)
			cr_assert_eq(floe_crc32c(7, buf + off, len),
				     floe_crc32c_portable(7, buf + off, len), "off %zu len %zu",
				     off, len);
	cr_assert_eq(floe_crc32c_portable(0, "123456789", 9), 0xE3069283u);
}
