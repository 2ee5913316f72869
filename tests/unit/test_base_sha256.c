/* SHA-256 against FIPS 180-4 / NIST test vectors, fed whole and byte by byte. */
#include <string.h>

#include <criterion/criterion.h>

#include "sha256.h"

static void hex_of(const void *data, size_t len, size_t step, char *hex)
{
	struct floe_sha256 s;
	uint8_t d[FLOE_SHA256_LEN];
	floe_sha256_init(&s);
	for (size_t off = 0; off < len; off += step)
		floe_sha256_update(&s, (const char *)data + off,
				   len - off < step ? len - off : step);
	floe_sha256_final(&s, d);
	floe_sha256_hex(d, hex);
}

static void check(const char *msg, size_t len, const char *want)
{
	char hex[FLOE_SHA256_HEX_LEN + 1];
	size_t steps[] = { len ? len : 1, 1, 3, 63, 64, 65 };
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		hex_of(msg, len, steps[i], hex);
		cr_assert_str_eq(hex, want, "len %zu step %zu", len, steps[i]);
	}
}

Test(sha256, nist_vectors)
{
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	check(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check("test", 4, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

Test(sha256, million_a)
{
	static char a[1000000];
	memset(a, 'a', sizeof(a));
	char hex[FLOE_SHA256_HEX_LEN + 1];
	hex_of(a, sizeof(a), 4096, hex);
	cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
