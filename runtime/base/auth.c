/*
 * Token checks and token generation. The config holds SHA-256 hashes only,
 * so a leaked config file grants nothing; a presented token is hashed and
 * compared with every configured hash without data-dependent branches.
 * No function here logs: a token must never reach a log, even by mistake.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "auth.h"
#include "sha256.h"

#define TOKEN_PREFIX "floe_"
#define TOKEN_RANDOM_BYTES 32

bool floe_auth_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	/* volatile reads keep the compiler from turning the loop into an
	 * early-exit compare (it may otherwise prove the result is decided). */
	const volatile uint8_t *pa = a, *pb = b;
	unsigned diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(pa[i] ^ pb[i]);
	/* diff is 0..255: (diff - 1) >> 8 has its low bit set only for 0. */
	return (bool)(1u & ((diff - 1u) >> 8));
}

bool floe_auth_single_user(const struct floe_auth_config *cfg)
{
	return !cfg || cfg->n_tokens == 0;
}

bool floe_auth_namespace_valid(const char *ns)
{
	if (!ns)
		return false;
	size_t n = strlen(ns);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = ns[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)))
			return false;
	}
	return true;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" /
 * "~" / "+" / "/" ) *"=" */
static bool is_b64token(const char *s, size_t n)
{
	size_t i = 0;
	for (; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'))
			break;
	}
	if (i == 0)
		return false;
	while (i < n && s[i] == '=')
		i++;
	return i == n;
}

enum floe_auth_result floe_auth_check(const struct floe_auth_config *cfg, const char *authorization,
				      const char **ns)
{
	*ns = NULL;
	if (floe_auth_single_user(cfg)) {
		*ns = FLOE_AUTH_DEFAULT_NS;
		return FLOE_AUTH_OK;
	}
	if (!authorization)
		return FLOE_AUTH_NO_TOKEN;
	const char *p = authorization;
	while (is_ows(*p))
		p++;
	if (!*p)
		return FLOE_AUTH_NO_TOKEN; /* an empty header carries no credentials */
	const char *scheme = p;
	while (*p && !is_ows(*p))
		p++;
	/* Auth schemes are case-insensitive (RFC 9110 section 11.1). Another
	 * scheme is "no Bearer credentials", not a bad token (RFC 6750 section 3). */
	if ((size_t)(p - scheme) != 6 || strncasecmp(scheme, "Bearer", 6) != 0)
		return FLOE_AUTH_NO_TOKEN;
	while (is_ows(*p))
		p++;
	const char *tok = p;
	while (*p && !is_ows(*p))
		p++;
	size_t len = (size_t)(p - tok);
	while (is_ows(*p))
		p++;
	/* "Bearer" alone, "Bearer a b", or characters a token cannot hold. */
	if (*p || !is_b64token(tok, len))
		return FLOE_AUTH_BAD_TOKEN;

	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, tok, len);
	floe_sha256_final(&h, digest);
	explicit_bzero(&h, sizeof(h)); /* its block held the token */

	/* Every hash is compared, and the match is selected with a mask rather
	 * than a branch, so neither which token matched nor whether one did
	 * changes the work done. */
	size_t match = 0;
	unsigned found = 0;
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		unsigned eq = floe_auth_ct_equal(digest, cfg->tokens[i].sha256, FLOE_SHA256_LEN);
		size_t mask = (size_t)0 - (size_t)eq;
		match = (match & ~mask) | (i & mask);
		found |= eq;
	}
	explicit_bzero(digest, sizeof(digest));
	if (!found)
		return FLOE_AUTH_BAD_TOKEN;
	*ns = cfg->tokens[match].ns;
	return FLOE_AUTH_OK;
}

/* RFC 4648 section 5, without padding: 32 bytes -> 43 characters. */
static size_t base64url(const uint8_t *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

int floe_auth_token_new(char token[64], char sha256_hex[65])
{
	uint8_t rnd[TOKEN_RANDOM_BYTES];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		/* Blocks only until the kernel's pool is first initialised; a
		 * token from an uninitialised pool would be guessable. */
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			explicit_bzero(rnd, sizeof(rnd));
			return -e;
		}
		got += (size_t)n;
	}
	memcpy(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
	size_t len =
		strlen(TOKEN_PREFIX) + base64url(rnd, sizeof(rnd), token + strlen(TOKEN_PREFIX));
	explicit_bzero(rnd, sizeof(rnd));

	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, token, len);
	floe_sha256_final(&h, digest);
	explicit_bzero(&h, sizeof(h));
	floe_sha256_hex(digest, sha256_hex);
	return 0;
}

bool floe_auth_host_is_loopback(const char *host)
{
	if (!host)
		return false;
	/* The name only: other names could resolve anywhere, and resolving
	 * at load would make the check depend on DNS. */
	if (strcasecmp(host, "localhost") == 0)
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	/* A zone ("::1%lo") does not change which address it is. */
	char buf[64];
	size_t n = strcspn(host, "%");
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, host, n);
	buf[n] = '\0';
	struct in6_addr a6;
	if (inet_pton(AF_INET6, buf, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&a6))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

int floe_auth_listen_check(const struct floe_auth_config *auth, const char *what, const char *host,
			   uint16_t port, floe_error *err)
{
	if (!floe_auth_single_user(auth) || floe_auth_host_is_loopback(host))
		return 0;
	bool v6 = strchr(host, ':') != NULL;
	return floe_error_set(err, -EINVAL,
			      "%s: %s%s%s:%u is not a loopback address; without auth.tokens floed "
			      "serves everyone as the default namespace, so it listens only on "
			      "loopback (add auth.tokens, see docs/configuration.md)",
			      what, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port);
}
