/*
 * Usage records: every kind round-trips; truncated and bit-flipped payloads
 * are refused or decode to a well-formed record (never a crash or a read
 * out of bounds: run this under ASan); unknown fields are skipped.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "record.h"

#define S(lit) ((struct floe_str){ lit, sizeof(lit) - 1 })

static struct floe_record start_rec(void)
{
	struct floe_record r = {
		.kind = FLOE_RECORD_START,
		.t_ms = UINT64_C(1795860030123),
		.instance = S("5f2c9a1e"),
		.ns = S("team-a"),
		.endpoint = S("chat"),
		.instance_type = S("nvidia-h100"),
		.currency = S("USD"),
		.gpus = 2,
		.rounding = FLOE_ROUND_SECOND,
		.prices = { { 1200000, 3600000, 3600001, UINT64_C(98765432100000) } },
		.state = FLOE_METER_WARM_POOL,
	};
	return r;
}

static struct floe_record state_rec(void)
{
	return (struct floe_record){ .kind = FLOE_RECORD_STATE,
				     .t_ms = UINT64_C(1795860050000),
				     .state = FLOE_METER_STOPPED };
}

static struct floe_record answers_rec(void)
{
	struct floe_record r = { .kind = FLOE_RECORD_ANSWERS,
				 .t_ms = UINT64_C(1795860060001),
				 .minute = UINT64_C(29931000) };
	r.requests[FLOE_METER_RUNNING][1] = 70000;
	r.requests[FLOE_METER_RUNNING][4] = 3;
	r.requests[FLOE_METER_DRAINING][0] = 1;
	r.requests[FLOE_METER_DRAINING][3] = UINT32_MAX;
	return r;
}

static struct floe_record tick_rec(void)
{
	return (struct floe_record){ .kind = FLOE_RECORD_TICK, .t_ms = 7, .instance = S("i") };
}

static bool str_eq(struct floe_str a, struct floe_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* How many fields of a and b differ (0: the same record). */
static int diff(const struct floe_record *a, const struct floe_record *b)
{
	int n = 0;
	n += a->kind != b->kind;
	n += a->t_ms != b->t_ms;
	n += !str_eq(a->instance, b->instance);
	n += !str_eq(a->ns, b->ns);
	n += !str_eq(a->endpoint, b->endpoint);
	n += !str_eq(a->instance_type, b->instance_type);
	n += !str_eq(a->currency, b->currency);
	n += a->gpus != b->gpus;
	n += a->rounding != b->rounding;
	n += memcmp(&a->prices, &b->prices, sizeof(a->prices)) != 0;
	n += a->state != b->state;
	n += a->minute != b->minute;
	n += memcmp(a->requests, b->requests, sizeof(a->requests)) != 0;
	return n;
}

static struct floe_record (*const makers[])(void) = { start_rec, state_rec, answers_rec, tick_rec };

Test(record, every_kind_round_trips)
{
	for (size_t k = 0; k < 4; k++) {
		struct floe_record in = makers[k](), out;
		struct floe_buf b = FLOE_BUF_INIT;
		cr_assert_eq(floe_record_encode(&in, &b), 0);
		cr_assert_eq(floe_record_decode(b.data, b.len, &out), 0, "kind %zu", k);
		cr_expect_eq(diff(&in, &out), 0, "kind %zu differs after a round trip", k);
		/* Decoded strings point into the payload: zero copies. */
		if (in.instance.len)
			cr_expect(out.instance.p >= b.data && out.instance.p < b.data + b.len);
		floe_buf_destroy(&b);
	}
}

Test(record, the_wire_names_are_the_documented_ones)
{
	struct floe_record in = answers_rec();
	struct floe_buf b = FLOE_BUF_INIT;
	cr_assert_eq(floe_record_encode(&in, &b), 0);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	cr_assert_eq(msgpack_unpack_next(&u, b.data, b.len, NULL), MSGPACK_UNPACK_SUCCESS);
	msgpack_object_map *m = &u.data.via.map;
	cr_assert_eq(m->size, 4);
	const char *want[] = { "k", "t", "minute", "req" };
	for (int i = 0; i < 4; i++)
		cr_expect_eq(memcmp(m->ptr[i].key.via.str.ptr, want[i], strlen(want[i])), 0);
	cr_expect_eq(memcmp(m->ptr[0].val.via.str.ptr, "answers", 7), 0);
	msgpack_object_array *req = &m->ptr[3].val.via.array;
	cr_assert_eq(req->size, 2, "one entry per state with any count");
	cr_expect_eq(req->ptr[0].via.array.ptr[0].via.u64, FLOE_METER_RUNNING);
	cr_expect_eq(req->ptr[0].via.array.ptr[2].via.u64, 70000);
	cr_expect_eq(req->ptr[1].via.array.ptr[4].via.u64, UINT32_MAX);
	msgpack_unpacked_destroy(&u);
	floe_buf_destroy(&b);
}

Test(record, a_payload_cut_anywhere_is_refused)
{
	for (size_t k = 0; k < 4; k++) {
		struct floe_record in = makers[k](), out;
		struct floe_buf b = FLOE_BUF_INIT;
		cr_assert_eq(floe_record_encode(&in, &b), 0);
		for (size_t cut = 0; cut < b.len; cut++) {
			/* A copy of exactly cut bytes, so ASan sees any read past it. */
			char *p = malloc(cut ? cut : 1);
			memcpy(p, b.data, cut);
			cr_expect_eq(floe_record_decode(p, cut, &out), -EBADMSG,
				     "kind %zu cut at %zu of %zu decoded", k, cut, b.len);
			free(p);
		}
		floe_buf_destroy(&b);
	}
}

Test(record, a_flipped_bit_is_refused_or_changes_one_field_only)
{
	/* The record has no checksum of its own (the ledger frame's CRC32C is
	 * what catches corruption), so a flip inside a value may decode to a
	 * different value. What must never happen: a crash, a read out of
	 * bounds, or a flip that shifts the parse and garbles several fields. */
	int refused = 0, changed = 0, total = 0;
	for (size_t k = 0; k < 4; k++) {
		struct floe_record in = makers[k](), out;
		struct floe_buf b = FLOE_BUF_INIT;
		cr_assert_eq(floe_record_encode(&in, &b), 0);
		char *p = malloc(b.len);
		for (size_t i = 0; i < b.len; i++) {
			for (int bit = 0; bit < 8; bit++) {
				memcpy(p, b.data, b.len);
				p[i] ^= (char)(1 << bit);
				total++;
				int rc = floe_record_decode(p, b.len, &out);
				if (rc == -EBADMSG) {
					refused++;
					continue;
				}
				cr_assert_eq(rc, 0);
				int d = diff(&in, &out);
				cr_expect_leq(d, 1, "kind %zu byte %zu bit %d: %d fields changed",
					      k, i, bit, d);
				changed += d;
				/* What decoded is a record the encoder accepts. */
				struct floe_buf again = FLOE_BUF_INIT;
				cr_expect_eq(floe_record_encode(&out, &again), 0);
				floe_buf_destroy(&again);
			}
		}
		free(p);
		floe_buf_destroy(&b);
	}
	cr_expect_gt(refused, total / 4, "most structural flips are refused (%d of %d)", refused,
		     total);
}

/* A start record with unknown fields of every msgpack type mixed in. */
Test(record, unknown_fields_are_skipped)
{
	struct floe_record in = start_rec(), out;
	struct floe_buf b = FLOE_BUF_INIT;
	cr_assert_eq(floe_record_encode(&in, &b), 0);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* The original map has 11 entries (fixmap 0x8b): write a bigger map,
	 * the unknown entries, then the original entries. */
	cr_assert_eq((unsigned char)b.data[0], 0x8b);
	msgpack_pack_map(&pk, 11 + 8);
	msgpack_pack_str_with_body(&pk, "zone", 4);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_int64(&pk, -123456789);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_str_with_body(&pk, "bin", 3);
	msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
	msgpack_pack_str_with_body(&pk, "ext", 3);
	msgpack_pack_ext_with_body(&pk, "abcd", 4, 7);
	msgpack_pack_str_with_body(&pk, "f", 1);
	msgpack_pack_float(&pk, 2.5f);
	msgpack_pack_str_with_body(&pk, "neg", 3);
	msgpack_pack_int8(&pk, -3);
	msgpack_pack_str_with_body(&pk, "long", 4);
	char big[300];
	memset(big, 'x', sizeof(big));
	msgpack_pack_str_with_body(&pk, big, sizeof(big)); /* over MAX_STR: fine, unknown */
	msgpack_pack_str_with_body(&pk, "ext8", 4);
	msgpack_pack_ext_with_body(&pk, big, 20, 1);
	msgpack_pack_str_with_body(&pk, "", 0);
	msgpack_pack_nil(&pk);
	msgpack_sbuffer_write(&sb, b.data + 1, b.len - 1);
	cr_assert_eq(floe_record_decode(sb.data, sb.size, &out), 0);
	cr_expect_eq(diff(&in, &out), 0);
	msgpack_sbuffer_destroy(&sb);
	floe_buf_destroy(&b);
}

/* Pack a map from (key, packer) steps for the malformed cases. */
static int decode_map(void (*fill)(msgpack_packer *))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	fill(&pk);
	struct floe_record out;
	int rc = floe_record_decode(sb.data, sb.size, &out);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
	msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
	msgpack_pack_uint64(pk, v);
}

static void ok_state(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	kv_str(pk, "state", "draining");
	kv_uint(pk, "t", 5);
	kv_str(pk, "k", "state");
}
static void dup_key(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	kv_str(pk, "k", "state");
	kv_uint(pk, "t", 5);
	kv_str(pk, "state", "running");
	kv_uint(pk, "t", 6);
}
static void missing_t(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	kv_str(pk, "k", "state");
	kv_str(pk, "state", "running");
}
static void t_negative(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	kv_str(pk, "k", "state");
	msgpack_pack_str_with_body(pk, "t", 1);
	msgpack_pack_int64(pk, -5);
	kv_str(pk, "state", "running");
}
static void bad_state(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	kv_str(pk, "k", "state");
	kv_uint(pk, "t", 5);
	kv_str(pk, "state", "sleeping");
}
static void bad_kind(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	kv_str(pk, "k", "usage");
	kv_uint(pk, "t", 5);
}
static void trailing(msgpack_packer *pk)
{
	ok_state(pk);
	msgpack_pack_nil(pk);
}
static void not_a_map(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_nil(pk);
}
static void req_dup_state(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	kv_str(pk, "k", "answers");
	kv_uint(pk, "t", 5);
	kv_uint(pk, "minute", 1);
	msgpack_pack_str_with_body(pk, "req", 3);
	msgpack_pack_array(pk, 2);
	for (int i = 0; i < 2; i++) {
		msgpack_pack_array(pk, 6);
		for (int j = 0; j < 6; j++)
			msgpack_pack_uint32(pk, j == 0 ? 1 : 2);
	}
}
static void req_count_too_big(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	kv_str(pk, "k", "answers");
	kv_uint(pk, "t", 5);
	kv_uint(pk, "minute", 1);
	msgpack_pack_str_with_body(pk, "req", 3);
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 6);
	msgpack_pack_uint32(pk, 0);
	for (int j = 0; j < 5; j++)
		msgpack_pack_uint64(pk, j == 2 ? UINT64_C(1) << 32 : 1);
}
static void deep_unknown(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	kv_str(pk, "k", "state");
	kv_uint(pk, "t", 5);
	kv_str(pk, "state", "running");
	msgpack_pack_str_with_body(pk, "x", 1);
	for (int i = 0; i < 100; i++)
		msgpack_pack_array(pk, 1);
	msgpack_pack_nil(pk);
}

Test(record, malformed_payloads_are_refused)
{
	cr_expect_eq(decode_map(ok_state), 0, "the control case decodes");
	cr_expect_eq(decode_map(dup_key), -EBADMSG, "a key twice");
	cr_expect_eq(decode_map(missing_t), -EBADMSG, "no t");
	cr_expect_eq(decode_map(t_negative), -EBADMSG, "t negative");
	cr_expect_eq(decode_map(bad_state), -EBADMSG, "unknown state");
	cr_expect_eq(decode_map(bad_kind), -EBADMSG, "unknown kind");
	cr_expect_eq(decode_map(trailing), -EBADMSG, "trailing bytes");
	cr_expect_eq(decode_map(not_a_map), -EBADMSG, "not a map");
	cr_expect_eq(decode_map(req_dup_state), -EBADMSG, "a state twice in req");
	cr_expect_eq(decode_map(req_count_too_big), -EBADMSG, "a count over 32 bits");
	cr_expect_eq(decode_map(deep_unknown), -EBADMSG, "nesting past the limit");
	struct floe_record out;
	cr_expect_eq(floe_record_decode("", 0, &out), -EBADMSG);
	/* A fixmap claiming 15 entries with no bytes behind it. */
	cr_expect_eq(floe_record_decode("\x8f", 1, &out), -EBADMSG);
	/* A map32 claiming 4 billion entries. */
	cr_expect_eq(floe_record_decode("\xdf\xff\xff\xff\xff\xa1x\xdd\xff\xff\xff\xff", 12, &out),
		     -EBADMSG);
}

Test(record, a_start_in_a_non_billable_state_is_refused)
{
	struct floe_record in = start_rec(), out;
	in.state = FLOE_METER_STOPPED;
	struct floe_buf b = FLOE_BUF_INIT;
	cr_expect_eq(floe_record_encode(&in, &b), -EINVAL);
	cr_expect_eq(b.len, 0, "nothing written on -EINVAL");
	/* Written by hand (another writer): the decoder refuses it too. */
	in.state = FLOE_METER_RUNNING;
	cr_assert_eq(floe_record_encode(&in, &b), 0);
	char *pos = memmem(b.data, b.len, "\xa7running", 8);
	cr_assert_not_null(pos);
	struct floe_buf c = FLOE_BUF_INIT;
	floe_buf_append(&c, b.data, (size_t)(pos - b.data));
	floe_buf_append(&c, "\xa7stopped", 8);
	floe_buf_append(&c, pos + 8, b.len - (size_t)(pos - b.data) - 8);
	cr_expect_eq(floe_record_decode(c.data, c.len, &out), -EBADMSG);
	floe_buf_destroy(&b);
	floe_buf_destroy(&c);
}

Test(record, encode_refuses_fields_out_of_range)
{
	struct floe_buf b = FLOE_BUF_INIT;
	char big[FLOE_RECORD_MAX_STR + 1];
	memset(big, 'e', sizeof(big));
	struct floe_record r = start_rec();
	r.endpoint = (struct floe_str){ big, sizeof(big) };
	cr_expect_eq(floe_record_encode(&r, &b), -EINVAL);
	r.endpoint.len = FLOE_RECORD_MAX_STR;
	cr_expect_eq(floe_record_encode(&r, &b), 0, "255 bytes is the limit, allowed");
	struct floe_record out;
	cr_expect_eq(floe_record_decode(b.data, b.len, &out), 0);
	cr_expect_eq(out.endpoint.len, FLOE_RECORD_MAX_STR);
	floe_buf_reset(&b);
	r = state_rec();
	r.state = (enum floe_meter_state)9;
	cr_expect_eq(floe_record_encode(&r, &b), -EINVAL);
	r = tick_rec();
	r.kind = (enum floe_record_kind)7;
	cr_expect_eq(floe_record_encode(&r, &b), -EINVAL);
	cr_expect_eq(b.len, 0);
	floe_buf_destroy(&b);
}

Test(record, state_names)
{
	cr_expect_str_eq(floe_record_state_name(FLOE_METER_INITIALIZING), "initializing");
	cr_expect_str_eq(floe_record_state_name(FLOE_METER_WARM_POOL), "warm_pool");
	cr_expect_str_eq(floe_record_state_name(FLOE_METER_STOPPED), "stopped");
}
