/*
 * API tokens (issue 5): each token belongs to a namespace; floed keeps only
 * SHA-256 hashes of tokens (auth.tokens in the config) and checks a
 * request's "Authorization: Bearer TOKEN" against all of them in constant
 * time. With no tokens configured floed is single-user: everything is the
 * namespace "default", no token is asked, and it listens only on loopback.
 *
 * Nothing here logs, and nothing keeps a copy of a token.
 */
#ifndef FLOE_AUTH_H
#define FLOE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/** The namespace of everything in single-user mode. */
#define FLOE_AUTH_DEFAULT_NS "default"

/** "floe_" + 43 characters of base64url (32 random bytes), plus NUL. */
#define FLOE_AUTH_TOKEN_LEN 48

enum floe_auth_result {
	/* No Bearer credentials: no Authorization header, an empty one, or
	 * another scheme (Basic, ...). RFC 6750 section 3: answer 401 with
	 * `WWW-Authenticate: Bearer` and no error code. */
	FLOE_AUTH_NO_TOKEN,
	/* Bearer credentials that are malformed (no token, a space inside,
	 * characters outside b64token) or match no configured hash: 401 with
	 * error="invalid_token". */
	FLOE_AUTH_BAD_TOKEN,
	FLOE_AUTH_OK,
};

/**
 * Check an Authorization header value (NULL: no header). The form is
 * "Bearer TOKEN" (RFC 6750 section 2.1): the scheme in any case, one or more
 * spaces, a b64token; spaces or tabs around it are ignored. TOKEN is hashed
 * with SHA-256 and compared with EVERY configured hash in constant time (no
 * early exit, no memcmp), so the time taken says nothing about which hash
 * matched, or whether one did.
 *
 * Returns FLOE_AUTH_OK with *ns pointing into cfg (valid while cfg lives),
 * else FLOE_AUTH_NO_TOKEN or FLOE_AUTH_BAD_TOKEN with *ns set to NULL. With
 * no tokens configured (cfg NULL or empty): FLOE_AUTH_OK and *ns "default",
 * whatever the header says (single-user mode).
 */
enum floe_auth_result floe_auth_check(const struct floe_auth_config *cfg, const char *authorization,
				      const char **ns);

/** True when no tokens are configured (cfg may be NULL): single-user mode. */
bool floe_auth_single_user(const struct floe_auth_config *cfg);

/**
 * Constant-time equality of two n-byte buffers: reads every byte of both
 * whatever they hold. Returns true when equal.
 */
bool floe_auth_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/**
 * A fresh token: "floe_" + 43 characters of base64url (no padding) of 32
 * bytes from getrandom(2), NUL-terminated in token, and the lower-case hex
 * of its SHA-256 in sha256_hex. Returns 0, or -errno when getrandom fails
 * (nothing written then).
 */
int floe_auth_token_new(char token[64], char sha256_hex[65]);

/** True when ns is a valid namespace: [a-z0-9][a-z0-9-]{0,62}. */
bool floe_auth_namespace_valid(const char *ns);

/** True when host (as floe_hostport_parse gives it) is loopback: 127.0.0.0/8, ::1
 * (also ::ffff:127.x.y.z), or the name localhost. */
bool floe_auth_host_is_loopback(const char *host);

/**
 * The single-user listen rule: with no tokens in auth, host must be loopback.
 * what names the setting in the message ("listen", "--api-listen"). Returns
 * 0, or -EINVAL with err set to "WHAT: HOST:PORT is not a loopback address;
 * without auth.tokens ...". The config loader runs it for listen and
 * api_listen; floed runs it again after its --listen / --api-listen flags.
 */
int floe_auth_listen_check(const struct floe_auth_config *auth, const char *what, const char *host,
			   uint16_t port, floe_error *err);

#endif
