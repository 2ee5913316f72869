/*
 * Usage records (see record.h for the wire format).
 *
 * Encoding goes through msgpack-c's packer, writing straight into the
 * caller's floe_buf. Decoding does not use msgpack-c: an export decodes
 * every record of the ledger (millions for a month), and msgpack_unpack_next
 * builds an object tree in a zone for each payload and leaves us to walk it
 * again to map the keys. A zero-copy cursor over the bytes does one pass and
 * no allocation. Measured by scripts/bench/ledger (its "decode" line) on the
 * 7.4 M records of its synthetic month, 2-core VM: the cursor decodes a
 * record, fields mapped and checked, in 52-59 ns; msgpack_unpack_next with
 * a reused msgpack_unpacked takes 129-154 ns just to build the tree, before
 * any field is looked at.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "record.h"

static const char *const kind_names[] = { "start", "state", "answers", "tick" };
static const char *const state_names[] = { "initializing", "running", "draining", "warm_pool",
					   "stopped" };

const char *floe_record_state_name(enum floe_meter_state s)
{
	return (unsigned)s <= FLOE_METER_STOPPED ? state_names[s] : "?";
}

/* ---- encoding ------------------------------------------------------------ */

static int buf_write(void *data, const char *buf, size_t len)
{
	floe_buf_append(data, buf, len);
	return 0;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_str(msgpack_packer *pk, const char *key, struct floe_str v)
{
	pack_cstr(pk, key);
	msgpack_pack_str(pk, v.len);
	if (v.len)
		msgpack_pack_str_body(pk, v.p, v.len);
}

static bool str_ok(struct floe_str s)
{
	return s.len <= FLOE_RECORD_MAX_STR && (s.len == 0 || s.p);
}

int floe_record_encode(const struct floe_record *rec, struct floe_buf *out)
{
	/* Validate everything first, so that out is untouched on -EINVAL. */
	switch (rec->kind) {
	case FLOE_RECORD_START:
		if (!str_ok(rec->instance) || !str_ok(rec->ns) || !str_ok(rec->endpoint) ||
		    !str_ok(rec->instance_type) || !str_ok(rec->currency) ||
		    (unsigned)rec->state >= FLOE_METER_NSTATES ||
		    (rec->rounding != FLOE_ROUND_MINUTE && rec->rounding != FLOE_ROUND_SECOND))
			return -EINVAL;
		break;
	case FLOE_RECORD_STATE:
		if ((unsigned)rec->state > FLOE_METER_STOPPED)
			return -EINVAL;
		break;
	case FLOE_RECORD_ANSWERS: break;
	case FLOE_RECORD_TICK:
		if (!str_ok(rec->instance))
			return -EINVAL;
		break;
	default: return -EINVAL;
	}

	msgpack_packer pk;
	msgpack_packer_init(&pk, out, buf_write);
	unsigned n_answer_states = 0;
	if (rec->kind == FLOE_RECORD_ANSWERS)
		for (int s = 0; s < FLOE_METER_NSTATES; s++)
			for (int c = 0; c < 5; c++)
				if (rec->requests[s][c]) {
					n_answer_states++;
					break;
				}
	static const unsigned n_fields[] = { 11, 3, 4, 3 };
	msgpack_pack_map(&pk, n_fields[rec->kind]);
	pack_cstr(&pk, "k");
	pack_cstr(&pk, kind_names[rec->kind]);
	pack_cstr(&pk, "t");
	msgpack_pack_uint64(&pk, rec->t_ms);
	switch (rec->kind) {
	case FLOE_RECORD_START:
		pack_str(&pk, "instance", rec->instance);
		pack_str(&pk, "ns", rec->ns);
		pack_str(&pk, "endpoint", rec->endpoint);
		pack_str(&pk, "itype", rec->instance_type);
		pack_cstr(&pk, "gpus");
		msgpack_pack_uint32(&pk, rec->gpus);
		pack_str(&pk, "cur", rec->currency);
		pack_cstr(&pk, "round");
		pack_cstr(&pk, rec->rounding == FLOE_ROUND_SECOND ? "second" : "minute");
		pack_cstr(&pk, "prices");
		msgpack_pack_array(&pk, FLOE_METER_NSTATES);
		for (int s = 0; s < FLOE_METER_NSTATES; s++)
			msgpack_pack_uint64(&pk, rec->prices.per_hour_micro[s]);
		pack_cstr(&pk, "state");
		pack_cstr(&pk, state_names[rec->state]);
		break;
	case FLOE_RECORD_STATE:
		pack_cstr(&pk, "state");
		pack_cstr(&pk, state_names[rec->state]);
		break;
	case FLOE_RECORD_ANSWERS:
		pack_cstr(&pk, "minute");
		msgpack_pack_uint64(&pk, rec->minute);
		pack_cstr(&pk, "req");
		msgpack_pack_array(&pk, n_answer_states);
		for (int s = 0; s < FLOE_METER_NSTATES; s++) {
			bool any = false;
			for (int c = 0; c < 5; c++)
				any |= rec->requests[s][c] != 0;
			if (!any)
				continue;
			msgpack_pack_array(&pk, 6);
			msgpack_pack_uint32(&pk, (uint32_t)s);
			for (int c = 0; c < 5; c++)
				msgpack_pack_uint32(&pk, rec->requests[s][c]);
		}
		break;
	case FLOE_RECORD_TICK: pack_str(&pk, "instance", rec->instance); break;
	}
	return 0;
}

/* ---- decoding: a bounds-checked cursor ----------------------------------- */

struct cursor {
	const unsigned char *p, *end;
};

#define MAX_DEPTH 16 /* nesting of skipped unknown values */
/* The readers below run several times per field of every record: inlined,
 * the decode went from ~70 to ~57 ns per record (ledger_bench's decode line). */
#define INLINE inline __attribute__((always_inline))

static INLINE bool need(const struct cursor *c, size_t n)
{
	return (size_t)(c->end - c->p) >= n;
}

static INLINE uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* A length of n bytes (1, 2 or 4) after the type byte. */
static INLINE bool take_len(struct cursor *c, int n, uint32_t *len)
{
	if (!need(c, (size_t)n))
		return false;
	*len = (uint32_t)be(c->p, n);
	c->p += n;
	return true;
}

static INLINE bool get_uint(struct cursor *c, uint64_t *v)
{
	if (!need(c, 1))
		return false;
	unsigned char t = *c->p++;
	int n;
	if (t <= 0x7f) {
		*v = t;
		return true;
	}
	switch (t) {
	case 0xcc: n = 1; break;
	case 0xcd: n = 2; break;
	case 0xce: n = 4; break;
	case 0xcf: n = 8; break;
	default: return false;
	}
	if (!need(c, (size_t)n))
		return false;
	*v = be(c->p, n);
	c->p += n;
	return true;
}

static INLINE bool get_u32(struct cursor *c, uint32_t *v)
{
	uint64_t x;
	if (!get_uint(c, &x) || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

static INLINE bool get_str(struct cursor *c, struct floe_str *s)
{
	if (!need(c, 1))
		return false;
	unsigned char t = *c->p++;
	uint32_t len;
	if ((t & 0xe0) == 0xa0)
		len = t & 0x1f;
	else if (t == 0xd9 ? !take_len(c, 1, &len) :
		 t == 0xda ? !take_len(c, 2, &len) :
		 t == 0xdb ? !take_len(c, 4, &len) :
			     true)
		return false;
	if (!need(c, len))
		return false;
	s->p = (const char *)c->p;
	s->len = len;
	c->p += len;
	return true;
}

static INLINE bool get_field_str(struct cursor *c, struct floe_str *s)
{
	return get_str(c, s) && s->len <= FLOE_RECORD_MAX_STR;
}

static INLINE bool get_array(struct cursor *c, uint32_t *n)
{
	if (!need(c, 1))
		return false;
	unsigned char t = *c->p++;
	if ((t & 0xf0) == 0x90) {
		*n = t & 0x0f;
		return true;
	}
	return t == 0xdc ? take_len(c, 2, n) : t == 0xdd ? take_len(c, 4, n) : false;
}

static INLINE bool get_map(struct cursor *c, uint32_t *n)
{
	if (!need(c, 1))
		return false;
	unsigned char t = *c->p++;
	if ((t & 0xf0) == 0x80) {
		*n = t & 0x0f;
		return true;
	}
	return t == 0xde ? take_len(c, 2, n) : t == 0xdf ? take_len(c, 4, n) : false;
}

/* Skip one value of any type (an unknown field's). */
static bool skip(struct cursor *c, int depth)
{
	if (depth > MAX_DEPTH || !need(c, 1))
		return false;
	unsigned char t = *c->p;
	uint32_t n = 0;
	uint64_t items = 0; /* nested values to skip */
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
		c->p++;
		return true;
	}
	if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf) {
		if (!get_map(c, &n))
			return false;
		items = 2 * (uint64_t)n;
	} else if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
		if (!get_array(c, &n))
			return false;
		items = n;
	} else {
		c->p++;
		size_t fixed = 0;
		switch (t) {
		case 0xc4:
		case 0xd9:
			if (!take_len(c, 1, &n))
				return false;
			break;
		case 0xc5:
		case 0xda:
			if (!take_len(c, 2, &n))
				return false;
			break;
		case 0xc6:
		case 0xdb:
			if (!take_len(c, 4, &n))
				return false;
			break;
		case 0xc7:
			if (!take_len(c, 1, &n))
				return false;
			fixed = 1;
			break;
		case 0xc8:
			if (!take_len(c, 2, &n))
				return false;
			fixed = 1;
			break;
		case 0xc9:
			if (!take_len(c, 4, &n))
				return false;
			fixed = 1;
			break;
		case 0xca: fixed = 4; break;
		case 0xcb: fixed = 8; break;
		case 0xcc:
		case 0xd0: fixed = 1; break;
		case 0xcd:
		case 0xd1: fixed = 2; break;
		case 0xce:
		case 0xd2: fixed = 4; break;
		case 0xcf:
		case 0xd3: fixed = 8; break;
		case 0xd4: fixed = 2; break;
		case 0xd5: fixed = 3; break;
		case 0xd6: fixed = 5; break;
		case 0xd7: fixed = 9; break;
		case 0xd8: fixed = 17; break;
		default:
			if ((t & 0xe0) == 0xa0) {
				n = t & 0x1f;
				break;
			}
			return false; /* 0xc1: never used */
		}
		if (!need(c, (size_t)n + fixed))
			return false;
		c->p += (size_t)n + fixed;
		return true;
	}
	/* Every value takes at least one byte: a count above what is left is
	 * garbage, rejected before looping over it. */
	if (items > (uint64_t)(c->end - c->p))
		return false;
	for (uint64_t i = 0; i < items; i++)
		if (!skip(c, depth + 1))
			return false;
	return true;
}

static bool str_eq(struct floe_str s, const char *lit, size_t n)
{
	return s.len == n && memcmp(s.p, lit, n) == 0;
}
#define STR_IS(s, lit) str_eq((s), lit, sizeof(lit) - 1)

static bool get_state(struct cursor *c, enum floe_meter_state *st)
{
	struct floe_str s;
	if (!get_str(c, &s))
		return false;
	for (int i = 0; i <= FLOE_METER_STOPPED; i++)
		if (str_eq(s, state_names[i], strlen(state_names[i]))) {
			*st = (enum floe_meter_state)i;
			return true;
		}
	return false;
}

enum field {
	F_K,
	F_T,
	F_INSTANCE,
	F_NS,
	F_ENDPOINT,
	F_ITYPE,
	F_GPUS,
	F_CUR,
	F_ROUND,
	F_PRICES,
	F_STATE,
	F_MINUTE,
	F_REQ,
	F_UNKNOWN,
};

static enum field field_of(struct floe_str k)
{
	switch (k.len) {
	case 1: return k.p[0] == 'k' ? F_K : k.p[0] == 't' ? F_T : F_UNKNOWN;
	case 2: return STR_IS(k, "ns") ? F_NS : F_UNKNOWN;
	case 3: return STR_IS(k, "cur") ? F_CUR : STR_IS(k, "req") ? F_REQ : F_UNKNOWN;
	case 4: return STR_IS(k, "gpus") ? F_GPUS : F_UNKNOWN;
	case 5:
		return STR_IS(k, "itype") ? F_ITYPE :
		       STR_IS(k, "round") ? F_ROUND :
		       STR_IS(k, "state") ? F_STATE :
					    F_UNKNOWN;
	case 6: return STR_IS(k, "prices") ? F_PRICES : STR_IS(k, "minute") ? F_MINUTE : F_UNKNOWN;
	case 8:
		return STR_IS(k, "instance") ? F_INSTANCE :
		       STR_IS(k, "endpoint") ? F_ENDPOINT :
					       F_UNKNOWN;
	default: return F_UNKNOWN;
	}
}

/* The fields each kind requires. */
#define BIT(f) (1u << (f))
static const unsigned kind_fields[] = {
	[FLOE_RECORD_START] = BIT(F_K) | BIT(F_T) | BIT(F_INSTANCE) | BIT(F_NS) | BIT(F_ENDPOINT) |
			      BIT(F_ITYPE) | BIT(F_GPUS) | BIT(F_CUR) | BIT(F_ROUND) |
			      BIT(F_PRICES) | BIT(F_STATE),
	[FLOE_RECORD_STATE] = BIT(F_K) | BIT(F_T) | BIT(F_STATE),
	[FLOE_RECORD_ANSWERS] = BIT(F_K) | BIT(F_T) | BIT(F_MINUTE) | BIT(F_REQ),
	[FLOE_RECORD_TICK] = BIT(F_K) | BIT(F_T) | BIT(F_INSTANCE),
};

static bool get_req(struct cursor *c, struct floe_record *rec)
{
	uint32_t n;
	if (!get_array(c, &n) || n > FLOE_METER_NSTATES)
		return false;
	unsigned seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t m, s;
		if (!get_array(c, &m) || m != 6 || !get_u32(c, &s) || s >= FLOE_METER_NSTATES ||
		    (seen & (1u << s)))
			return false;
		seen |= 1u << s;
		for (int k = 0; k < 5; k++)
			if (!get_u32(c, &rec->requests[s][k]))
				return false;
	}
	return true;
}

int floe_record_decode(const void *payload, size_t len, struct floe_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	struct cursor c = { payload, (const unsigned char *)payload + len };
	uint32_t n;
	if (!payload || !get_map(&c, &n))
		return -EBADMSG;
	unsigned have = 0;
	bool kind_known = false;
	for (uint32_t i = 0; i < n; i++) {
		struct floe_str key;
		if (!get_str(&c, &key))
			return -EBADMSG;
		enum field f = field_of(key);
		if (f == F_UNKNOWN) {
			if (!skip(&c, 0))
				return -EBADMSG;
			continue;
		}
		if (have & BIT(f))
			return -EBADMSG; /* given twice */
		have |= BIT(f);
		bool ok;
		switch (f) {
		case F_K: {
			struct floe_str k;
			ok = get_str(&c, &k);
			for (int j = 0; ok && j < 4 && !kind_known; j++)
				if (str_eq(k, kind_names[j], strlen(kind_names[j]))) {
					rec->kind = (enum floe_record_kind)j;
					kind_known = true;
				}
			ok = ok && kind_known;
			break;
		}
		case F_T: ok = get_uint(&c, &rec->t_ms); break;
		case F_INSTANCE: ok = get_field_str(&c, &rec->instance); break;
		case F_NS: ok = get_field_str(&c, &rec->ns); break;
		case F_ENDPOINT: ok = get_field_str(&c, &rec->endpoint); break;
		case F_ITYPE: ok = get_field_str(&c, &rec->instance_type); break;
		case F_CUR: ok = get_field_str(&c, &rec->currency); break;
		case F_GPUS: ok = get_u32(&c, &rec->gpus); break;
		case F_ROUND: {
			struct floe_str r;
			ok = get_str(&c, &r);
			if (ok && STR_IS(r, "minute"))
				rec->rounding = FLOE_ROUND_MINUTE;
			else if (ok && STR_IS(r, "second"))
				rec->rounding = FLOE_ROUND_SECOND;
			else
				ok = false;
			break;
		}
		case F_PRICES: {
			uint32_t m;
			ok = get_array(&c, &m) && m == FLOE_METER_NSTATES;
			for (int s = 0; ok && s < FLOE_METER_NSTATES; s++)
				ok = get_uint(&c, &rec->prices.per_hour_micro[s]);
			break;
		}
		case F_STATE: ok = get_state(&c, &rec->state); break;
		case F_MINUTE: ok = get_uint(&c, &rec->minute); break;
		case F_REQ: ok = get_req(&c, rec); break;
		default: ok = false; break;
		}
		if (!ok)
			return -EBADMSG;
	}
	/* Fields known to other kinds only are tolerated like unknown ones. */
	if (c.p != c.end || !kind_known ||
	    (have & kind_fields[rec->kind]) != kind_fields[rec->kind])
		return -EBADMSG;
	if (rec->kind == FLOE_RECORD_START && rec->state >= FLOE_METER_NSTATES)
		return -EBADMSG; /* a replica starts in a billable state */
	return 0;
}
