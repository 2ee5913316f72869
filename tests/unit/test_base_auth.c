/*
 * Tokens: the RFC 6750 header forms, the constant-time compare, which
 * namespace a token gives, single-user mode, fresh tokens, and the
 * loopback rule of single-user mode.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "sha256.h"

#define ALICE_TOKEN "floe_alice-secret-0123456789"
#define BOB_TOKEN "floe_bob-secret-9876543210"

static void hash_of(const char *token, uint8_t out[FLOE_SHA256_LEN])
{
	struct floe_sha256 h;
	floe_sha256_init(&h);
	floe_sha256_update(&h, token, strlen(token));
	floe_sha256_final(&h, out);
}

static struct floe_auth_token two_tokens[2] = {
	{ .ns = "alice", .line = 3 },
	{ .ns = "bob", .line = 5 },
};
static struct floe_auth_config two = { two_tokens, 2 };

static void setup(void)
{
	hash_of(ALICE_TOKEN, two_tokens[0].sha256);
	hash_of(BOB_TOKEN, two_tokens[1].sha256);
}

TestSuite(auth, .init = setup);

static const char *result_name(enum floe_auth_result r)
{
	switch (r) {
	case FLOE_AUTH_NO_TOKEN: return "NO_TOKEN";
	case FLOE_AUTH_BAD_TOKEN: return "BAD_TOKEN";
	case FLOE_AUTH_OK: return "OK";
	}
	return "?";
}

Test(auth, rfc6750_header_forms)
{
	static const struct {
		const char *header;
		enum floe_auth_result want;
		const char *ns;
	} cases[] = {
		{ NULL, FLOE_AUTH_NO_TOKEN, NULL },
		{ "", FLOE_AUTH_NO_TOKEN, NULL },
		{ "   ", FLOE_AUTH_NO_TOKEN, NULL },
		/* other schemes carry no Bearer credentials */
		{ "Basic YWxpY2U6c2VjcmV0", FLOE_AUTH_NO_TOKEN, NULL },
		{ "Token " ALICE_TOKEN, FLOE_AUTH_NO_TOKEN, NULL },
		{ "Bearer" ALICE_TOKEN, FLOE_AUTH_NO_TOKEN, NULL },
		{ "Bear " ALICE_TOKEN, FLOE_AUTH_NO_TOKEN, NULL },
		{ ALICE_TOKEN, FLOE_AUTH_NO_TOKEN, NULL },
		/* the scheme is case-insensitive; spaces around and between are fine */
		{ "Bearer " ALICE_TOKEN, FLOE_AUTH_OK, "alice" },
		{ "bearer " ALICE_TOKEN, FLOE_AUTH_OK, "alice" },
		{ "BEARER " ALICE_TOKEN, FLOE_AUTH_OK, "alice" },
		{ "bEaReR " ALICE_TOKEN, FLOE_AUTH_OK, "alice" },
		{ "Bearer    " ALICE_TOKEN, FLOE_AUTH_OK, "alice" },
		{ "  Bearer " ALICE_TOKEN "  ", FLOE_AUTH_OK, "alice" },
		{ "Bearer\t" ALICE_TOKEN "\t", FLOE_AUTH_OK, "alice" },
		{ "Bearer " BOB_TOKEN, FLOE_AUTH_OK, "bob" },
		/* Bearer without a usable token */
		{ "Bearer", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer ", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "bearer    ", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer " ALICE_TOKEN " extra", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer " ALICE_TOKEN ",", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer \"" ALICE_TOKEN "\"", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer =abc", FLOE_AUTH_BAD_TOKEN, NULL },
		/* well formed, but not a configured token */
		{ "Bearer " ALICE_TOKEN "x", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer floe_alice", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer FLOE_ALICE-SECRET-0123456789", FLOE_AUTH_BAD_TOKEN, NULL },
		{ "Bearer x", FLOE_AUTH_BAD_TOKEN, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *ns = "unset";
		enum floe_auth_result r = floe_auth_check(&two, cases[i].header, &ns);
		cr_expect_eq(r, cases[i].want, "[%s]: got %s, want %s",
			     cases[i].header ? cases[i].header : "(no header)", result_name(r),
			     result_name(cases[i].want));
		if (cases[i].ns)
			cr_expect(ns && strcmp(ns, cases[i].ns) == 0, "[%s]: namespace %s",
				  cases[i].header, ns ? ns : "(null)");
		else
			cr_expect_null(ns, "[%s]: namespace set on failure", cases[i].header);
	}
}

Test(auth, b64token_alphabet_and_padding)
{
	/* Every character RFC 6750's b64token allows, then '=' padding. */
	static const char tok[] = "AZaz09-._~+/==";
	struct floe_auth_token t = { .ns = "pad" };
	hash_of(tok, t.sha256);
	struct floe_auth_config cfg = { &t, 1 };
	const char *ns = NULL;
	cr_expect_eq(floe_auth_check(&cfg, "Bearer AZaz09-._~+/==", &ns), FLOE_AUTH_OK);
	cr_expect(ns && strcmp(ns, "pad") == 0);
	cr_expect_eq(floe_auth_check(&cfg, "Bearer AZaz09-._~+/=x=", &ns), FLOE_AUTH_BAD_TOKEN,
		     "'=' only at the end");
	cr_expect_eq(floe_auth_check(&cfg, "Bearer AZaz09-._~+/=!", &ns), FLOE_AUTH_BAD_TOKEN);
}

Test(auth, namespace_points_into_the_config)
{
	const char *ns = NULL;
	cr_assert_eq(floe_auth_check(&two, "Bearer " BOB_TOKEN, &ns), FLOE_AUTH_OK);
	cr_expect_eq(ns, two_tokens[1].ns, "not the config's string");
	cr_assert_eq(floe_auth_check(&two, "Bearer " ALICE_TOKEN, &ns), FLOE_AUTH_OK);
	cr_expect_eq(ns, two_tokens[0].ns);
}

Test(auth, every_position_of_many_tokens_matches)
{
	/* The match is picked with a mask, not a branch: check it picks the
	 * right one wherever it is, first, middle or last. */
	enum {
		N = 9
	};
	struct floe_auth_token t[N];
	char tokens[N][32], names[N][8];
	for (int i = 0; i < N; i++) {
		snprintf(tokens[i], sizeof(tokens[i]), "tok-%d", i);
		snprintf(names[i], sizeof(names[i]), "ns-%d", i);
		t[i].ns = names[i];
		t[i].line = i + 1;
		hash_of(tokens[i], t[i].sha256);
	}
	struct floe_auth_config cfg = { t, N };
	for (int i = 0; i < N; i++) {
		char header[64];
		snprintf(header, sizeof(header), "Bearer %s", tokens[i]);
		const char *ns = NULL;
		cr_expect_eq(floe_auth_check(&cfg, header, &ns), FLOE_AUTH_OK, "%s", header);
		cr_expect(ns && strcmp(ns, names[i]) == 0, "%s: namespace %s", header,
			  ns ? ns : "(null)");
	}
	const char *ns = "unset";
	cr_expect_eq(floe_auth_check(&cfg, "Bearer tok-9", &ns), FLOE_AUTH_BAD_TOKEN);
	cr_expect_null(ns);
}

Test(auth, ct_equal_every_byte_position)
{
	uint8_t a[FLOE_SHA256_LEN], b[FLOE_SHA256_LEN];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 37 + 11);
	memcpy(b, a, sizeof(a));
	cr_expect(floe_auth_ct_equal(a, b, sizeof(a)));
	cr_expect(floe_auth_ct_equal(a, a, sizeof(a)));
	cr_expect(floe_auth_ct_equal(a, b, 0), "empty buffers are equal");
	for (size_t i = 0; i < sizeof(a); i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(b, a, sizeof(a));
			b[i] ^= (uint8_t)(1u << bit);
			cr_expect_not(floe_auth_ct_equal(a, b, sizeof(a)),
				      "differs at byte %zu bit %d", i, bit);
			cr_expect_not(floe_auth_ct_equal(b, a, sizeof(a)),
				      "differs at byte %zu bit %d", i, bit);
		}
		/* every bit of one byte at once (diff 0xff) */
		memcpy(b, a, sizeof(a));
		b[i] = (uint8_t)~a[i];
		cr_expect_not(floe_auth_ct_equal(a, b, sizeof(a)), "byte %zu inverted", i);
		/* a difference past n is not looked at */
		cr_expect(floe_auth_ct_equal(a, b, i), "only the first %zu bytes", i);
	}
}

Test(auth, single_user_mode)
{
	struct floe_auth_config none = { NULL, 0 };
	cr_expect(floe_auth_single_user(&none));
	cr_expect(floe_auth_single_user(NULL));
	cr_expect_not(floe_auth_single_user(&two));
	const char *headers[] = { NULL,          "",        "Bearer " ALICE_TOKEN,
				  "Bearer nope", "Basic x", "Bearer" };
	for (size_t i = 0; i < sizeof(headers) / sizeof(*headers); i++) {
		const char *ns = NULL;
		cr_expect_eq(floe_auth_check(&none, headers[i], &ns), FLOE_AUTH_OK, "[%s]",
			     headers[i] ? headers[i] : "(none)");
		cr_expect(ns && strcmp(ns, "default") == 0);
		ns = NULL;
		cr_expect_eq(floe_auth_check(NULL, headers[i], &ns), FLOE_AUTH_OK);
		cr_expect(ns && strcmp(ns, FLOE_AUTH_DEFAULT_NS) == 0);
	}
}

static bool is_base64url(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

Test(auth, token_new_is_fresh_and_accepted)
{
	enum {
		N = 16
	};
	char tokens[N][64], hexes[N][65];
	struct floe_auth_token t[N];
	char names[N][8];
	for (int i = 0; i < N; i++) {
		memset(tokens[i], 'X', sizeof(tokens[i]));
		cr_assert_eq(floe_auth_token_new(tokens[i], hexes[i]), 0);
		cr_expect_eq(strlen(tokens[i]), FLOE_AUTH_TOKEN_LEN, "%s", tokens[i]);
		cr_expect(strncmp(tokens[i], "floe_", 5) == 0, "%s", tokens[i]);
		cr_expect(is_base64url(tokens[i] + 5), "%s", tokens[i]);
		/* 32 bytes in 43 characters: the last one carries 4 bits, so it
		 * is one of the 16 characters with the low two bits clear. */
		cr_expect(strchr("AEIMQUYcgkosw048", tokens[i][47]) != NULL, "%s", tokens[i]);
		cr_expect_eq(strlen(hexes[i]), 64);
		uint8_t d[FLOE_SHA256_LEN];
		char want_hex[65];
		hash_of(tokens[i], d);
		floe_sha256_hex(d, want_hex);
		cr_expect_str_eq(hexes[i], want_hex, "the hash is not sha256(token)");
		for (int j = 0; j < i; j++) {
			cr_expect_str_neq(tokens[i], tokens[j], "token %d repeats %d", i, j);
			cr_expect_str_neq(hexes[i], hexes[j]);
		}
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		t[i].ns = names[i];
		t[i].line = i;
		memcpy(t[i].sha256, d, sizeof(d));
	}
	struct floe_auth_config cfg = { t, N };
	for (int i = 0; i < N; i++) {
		char header[80];
		snprintf(header, sizeof(header), "Bearer %s", tokens[i]);
		const char *ns = NULL;
		cr_expect_eq(floe_auth_check(&cfg, header, &ns), FLOE_AUTH_OK);
		cr_expect(ns && strcmp(ns, names[i]) == 0);
	}
	/* A fresh token is nobody's until it is configured. */
	char other[64], other_hex[65];
	cr_assert_eq(floe_auth_token_new(other, other_hex), 0);
	char header[80];
	snprintf(header, sizeof(header), "Bearer %s", other);
	const char *ns = NULL;
	cr_expect_eq(floe_auth_check(&cfg, header, &ns), FLOE_AUTH_BAD_TOKEN);
}

Test(auth, namespaces)
{
	const char *good[] = {
		"a",      "0",
		"alice",  "team-a",
		"a-",     "a--b",
		"9lives", "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz"
	};
	const char *bad[] = {
		NULL,  "",
		"-a",  "Alice",
		"a_b", "a.b",
		"a b", "a/b",
		"é",   "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz0"
	};
	cr_assert_eq(strlen(good[7]), 63);
	cr_assert_eq(strlen(bad[9]), 64);
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		cr_expect(floe_auth_namespace_valid(good[i]), "'%s' refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		cr_expect_not(floe_auth_namespace_valid(bad[i]), "'%s' accepted",
			      bad[i] ? bad[i] : "(null)");
}

Test(auth, loopback_hosts)
{
	const char *yes[] = { "127.0.0.1", "127.1.2.3",       "127.255.255.254",
			      "::1",       "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1",
			      "localhost", "LocalHost",       "::1%lo" };
	const char *no[] = { NULL,
			     "0.0.0.0",
			     "::",
			     "10.0.0.1",
			     "128.0.0.1",
			     "126.0.0.1",
			     "192.168.1.1",
			     "::2",
			     "fe80::1%lo",
			     "::ffff:10.0.0.1",
			     "example.com",
			     "localhost.example.com",
			     "127.0.0.1.nip.io",
			     "" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		cr_expect(floe_auth_host_is_loopback(yes[i]), "%s is loopback", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		cr_expect_not(floe_auth_host_is_loopback(no[i]), "%s is not loopback",
			      no[i] ? no[i] : "(null)");
}

Test(auth, listen_check)
{
	struct floe_auth_config none = { NULL, 0 };
	floe_error err;
	floe_error_clear(&err);
	cr_expect_eq(floe_auth_listen_check(&none, "listen", "127.0.0.1", 8080, &err), 0);
	cr_expect_eq(floe_auth_listen_check(&two, "listen", "0.0.0.0", 8080, &err), 0,
		     "with tokens any address is fine");
	cr_expect_eq(floe_auth_listen_check(&none, "--listen", "0.0.0.0", 8080, &err), -EINVAL);
	cr_expect_str_eq(err.msg,
			 "--listen: 0.0.0.0:8080 is not a loopback address; without auth.tokens "
			 "floed serves everyone as the default namespace, so it listens only on "
			 "loopback (add auth.tokens, see docs/configuration.md)");
	cr_expect_eq(floe_auth_listen_check(NULL, "api_listen", "::", 9, &err), -EINVAL);
	cr_expect(strncmp(err.msg, "api_listen: [::]:9 is not a loopback address;", 44) == 0, "%s",
		  err.msg);
}
