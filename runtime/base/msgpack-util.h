/*
 * Small msgpack-c helpers shared by the files that keep maps of named
 * fields on disk (api/state.c, snapshotter/store.c). Header-only: only a
 * module that links msgpack includes it, so the base library itself does
 * not depend on msgpack.
 */
#ifndef FLOE_MSGPACK_UTIL_H
#define FLOE_MSGPACK_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

/** A NUL-terminated string as a msgpack str. */
static inline void floe_mp_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/** One map entry: key, string value. */
static inline void floe_mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	floe_mp_pack_str(pk, k);
	floe_mp_pack_str(pk, v);
}

/** One map entry: key, unsigned value. */
static inline void floe_mp_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	floe_mp_pack_str(pk, k);
	msgpack_pack_uint64(pk, v);
}

/** True when map key k is the string name. */
static inline bool floe_mp_key_is(const msgpack_object *k, const char *name)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
	       memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

#endif
