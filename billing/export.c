/*
 * The usage export (see export.h for the output and the rules).
 *
 * One pass over the ledger. Every string dimension (namespace, endpoint,
 * instance type, currency, instance) is interned once into an integer id;
 * replicas live in a table of their own keyed by ledger name. A replica's
 * events are kept only until its stopped record: it is metered then, its
 * rows folded into the aggregate, its events freed. The aggregate is keyed
 * by integers only: (period, group, state), where a group is the tuple of a
 * replica's dimensions and prices (or the replica itself with
 * group_by=replica). Strings are compared once, at the end, to rank them;
 * rows are then sorted by those ranks. Money and time are integers
 * throughout (ms, micro-currency): no float ever touches a bill.
 */
#define LOG_TAG "export"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "meter.h"
#include "record.h"
#include "xalloc.h"

#define MINUTE_MS UINT64_C(60000)
#define HOUR_MS UINT64_C(3600000)
#define DAY_MS UINT64_C(86400000)
#define NONE UINT32_MAX

/* ---- UTC calendar arithmetic (no time zone, no libc) ---------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

void floe_export_time_format(uint64_t ms, char out[21])
{
	uint64_t secs = ms / 1000;
	int64_t y;
	unsigned mo, d;
	civil_from_days((int64_t)(secs / 86400), &y, &mo, &d);
	unsigned sod = (unsigned)(secs % 86400);
	snprintf(out, 21, "%04lld-%02u-%02uT%02u:%02u:%02uZ", (long long)y, mo, d, sod / 3600,
		 sod / 60 % 60, sod % 60);
}

/* n decimal digits at *p, advancing it. */
static bool digits(const char **p, int n, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		*v = *v * 10 + (unsigned)(c - '0');
	}
	*p += n;
	return true;
}

int floe_export_time_parse(const char *s, uint64_t *ms)
{
	const char *p = s;
	unsigned y, mo, d, h = 0, mi = 0, sec = 0;
	if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return -EINVAL;
	int64_t offset_min = 0;
	if (*p) {
		if (*p != 'T' && *p != 't')
			return -EINVAL;
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || h > 23 || mi > 59)
			return -EINVAL;
		if (*p == ':' && (p++, !digits(&p, 2, &sec) || sec > 59))
			return -EINVAL; /* no leap seconds: Unix time has none */
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '+' ? 1 : -1;
			unsigned oh, om;
			if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 ||
			    om > 59)
				return -EINVAL;
			offset_min = sign * (int64_t)(oh * 60 + om);
		} else {
			return -EINVAL;
		}
		if (*p)
			return -EINVAL;
	}
	int64_t t =
		(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60;
	if (t < 0)
		return -EINVAL;
	*ms = (uint64_t)t * 1000;
	return sec ? -EDOM : 0;
}

/* ---- query ------------------------------------------------------------- */

static const char time_forms[] =
	"YYYY-MM-DD, YYYY-MM-DDTHH:MMZ, YYYY-MM-DDTHH:MM:SSZ, or with a +HH:MM/-HH:MM offset";

static int parse_time_param(const char *name, const char *v, uint64_t *ms, floe_error *err)
{
	int rc = floe_export_time_parse(v, ms);
	if (rc == -EDOM)
		return floe_error_set(err, -EINVAL, "%s: '%s' is not on a whole minute", name, v);
	if (rc < 0)
		return floe_error_set(err, -EINVAL, "%s: '%s' is not a UTC date-time (%s)", name, v,
				      time_forms);
	return 0;
}

/* 00:00 UTC on the first day of the month of t (ms), or of the month
 * before when t is exactly that instant. */
static uint64_t month_start_before(uint64_t t)
{
	int64_t y;
	unsigned m, d;
	civil_from_days((int64_t)(t / DAY_MS), &y, &m, &d);
	uint64_t start = (uint64_t)days_from_civil(y, m, 1) * DAY_MS;
	if (start == t) {
		if (--m == 0) {
			m = 12;
			y--;
		}
		start = (uint64_t)days_from_civil(y, m, 1) * DAY_MS;
	}
	return start;
}

int floe_export_query_parse(const char *query, uint64_t now_ms, uint64_t max_range_ms,
			    struct floe_export_query *q, floe_error *err)
{
	memset(q, 0, sizeof(*q));
	q->granularity = FLOE_EXPORT_DAY;
	q->group_by = FLOE_EXPORT_BY_ENDPOINT;
	enum {
		P_NS,
		P_FROM,
		P_TO,
		P_GRAN,
		P_GROUP,
		P_N
	};
	static const char *const names[P_N] = { "namespace", "from", "to", "granularity",
						"group_by" };
	char *val[P_N] = { 0 };
	int rc = 0;
	const char *p = query ? query : "";
	while (*p && rc == 0) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t nlen = eq ? (size_t)(eq - p) : len;
		char *name = floe_http_pct_decode(p, nlen);
		char *v = eq ? floe_http_pct_decode(eq + 1, len - nlen - 1) : xstrdup("");
		if (!name || !v) {
			rc = floe_error_set(err, -EINVAL, "%.*s: bad percent-encoding", (int)nlen,
					    p);
		} else {
			for (int i = 0; i < P_N; i++) {
				if (strcmp(name, names[i]) != 0)
					continue;
				if (val[i]) {
					rc = floe_error_set(err, -EINVAL, "%s: given twice",
							    names[i]);
				} else {
					val[i] = v;
					v = NULL;
				}
				break;
			}
		}
		free(name);
		free(v);
		p += len;
		if (*p == '&')
			p++;
	}
	if (rc == 0 && val[P_GRAN]) {
		if (strcmp(val[P_GRAN], "minute") == 0)
			q->granularity = FLOE_EXPORT_MINUTE;
		else if (strcmp(val[P_GRAN], "hour") == 0)
			q->granularity = FLOE_EXPORT_HOUR;
		else if (strcmp(val[P_GRAN], "day") == 0)
			q->granularity = FLOE_EXPORT_DAY;
		else
			rc = floe_error_set(err, -EINVAL,
					    "granularity: '%s' is not minute, hour or day",
					    val[P_GRAN]);
	}
	if (rc == 0 && val[P_GROUP]) {
		if (strcmp(val[P_GROUP], "endpoint") == 0)
			q->group_by = FLOE_EXPORT_BY_ENDPOINT;
		else if (strcmp(val[P_GROUP], "replica") == 0)
			q->group_by = FLOE_EXPORT_BY_REPLICA;
		else
			rc = floe_error_set(err, -EINVAL,
					    "group_by: '%s' is not endpoint or replica",
					    val[P_GROUP]);
	}
	if (rc == 0 && val[P_TO])
		rc = parse_time_param("to", val[P_TO], &q->to_ms, err);
	else if (rc == 0)
		q->to_ms = (now_ms + MINUTE_MS - 1) / MINUTE_MS * MINUTE_MS;
	if (rc == 0 && val[P_FROM])
		rc = parse_time_param("from", val[P_FROM], &q->from_ms, err);
	else if (rc == 0)
		q->from_ms = month_start_before(q->to_ms);
	if (rc == 0 && q->to_ms <= q->from_ms) {
		char f[21], t[21];
		floe_export_time_format(q->from_ms, f);
		floe_export_time_format(q->to_ms, t);
		rc = floe_error_set(err, -EINVAL, "to: %s%s is not after from (%s)", t,
				    val[P_TO] ? "" : " (the default: now)", f);
	}
	if (rc == 0 && max_range_ms && q->to_ms - q->from_ms > max_range_ms)
		rc = floe_error_set(err, -EINVAL,
				    "to: the range from %s is %llu minutes, over the maximum of "
				    "%llu (billing.max_export_range)",
				    val[P_FROM] ? val[P_FROM] : "(default)",
				    (unsigned long long)((q->to_ms - q->from_ms) / MINUTE_MS),
				    (unsigned long long)(max_range_ms / MINUTE_MS));
	if (rc == 0 && val[P_NS] && val[P_NS][0]) {
		q->ns = val[P_NS];
		val[P_NS] = NULL;
	}
	for (int i = 0; i < P_N; i++)
		free(val[i]);
	if (rc < 0)
		floe_export_query_destroy(q);
	return rc;
}

void floe_export_query_destroy(struct floe_export_query *q)
{
	if (!q)
		return;
	free(q->ns);
	memset(q, 0, sizeof(*q));
}

/* ---- interned strings -------------------------------------------------- */

struct sref {
	uint64_t hash;
	uint32_t off, len;
};

struct strtab {
	char *arena;
	size_t arena_len, arena_cap;
	struct sref *refs;
	uint32_t n, cap;
	/* (hash >> 32) << 32 | (id + 1); 0: empty. The hash bits in the slot
	 * spare a visit to refs (a cache miss in a table of a month's
	 * replicas) for every slot probed that is not the one. */
	uint64_t *slots;
	size_t n_slots; /* power of two */
	size_t n_live;  /* ids in slots (strtab_del takes an id out, keeps its string) */
};

static uint64_t mix64(uint64_t h)
{
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static const char *str_of(const struct strtab *t, uint32_t id)
{
	return t->arena + t->refs[id].off;
}

static void strtab_rehash(struct strtab *t)
{
	size_t ns = t->n_slots ? t->n_slots * 2 : 256;
	uint64_t *slots = xcalloc(ns, sizeof(*slots));
	for (size_t j = 0; j < t->n_slots; j++) {
		if (!t->slots[j])
			continue;
		uint64_t h = t->refs[(uint32_t)t->slots[j] - 1].hash;
		size_t i = h & (ns - 1);
		while (slots[i])
			i = (i + 1) & (ns - 1);
		slots[i] = t->slots[j];
	}
	free(t->slots);
	t->slots = slots;
	t->n_slots = ns;
}

/* The id of p[0..len); NONE when absent and !add. *added: it was new. */
static uint32_t strtab_get(struct strtab *t, const char *p, size_t len, bool add, bool *added)
{
	if (added)
		*added = false;
	if (!t->n_slots) {
		if (!add)
			return NONE;
		strtab_rehash(t);
	}
	uint64_t h = floe_hash_bytes(p, len), tag = (h >> 32) << 32;
	size_t i = h & (t->n_slots - 1);
	for (; t->slots[i]; i = (i + 1) & (t->n_slots - 1)) {
		if ((t->slots[i] & 0xffffffff00000000ull) != tag)
			continue;
		uint32_t id = (uint32_t)t->slots[i] - 1;
		const struct sref *r = &t->refs[id];
		if (r->len == len && memcmp(t->arena + r->off, p, len) == 0)
			return id;
	}
	if (!add)
		return NONE;
	if (t->arena_len + len + 1 > t->arena_cap) {
		while (t->arena_len + len + 1 > t->arena_cap)
			t->arena_cap = t->arena_cap ? t->arena_cap * 2 : 4096;
		t->arena = xrealloc(t->arena, t->arena_cap);
	}
	memcpy(t->arena + t->arena_len, p, len);
	t->arena[t->arena_len + len] = '\0';
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->refs = xrealloc(t->refs, t->cap * sizeof(*t->refs));
	}
	uint32_t id = t->n++;
	t->refs[id] = (struct sref){ h, (uint32_t)t->arena_len, (uint32_t)len };
	t->arena_len += len + 1;
	t->slots[i] = tag | (id + 1);
	t->n_live++;
	if (added)
		*added = true;
	if (2 * t->n_live > t->n_slots)
		strtab_rehash(t);
	return id;
}

static void strtab_destroy(struct strtab *t)
{
	free(t->arena);
	free(t->refs);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* qsort_r (glibc, _GNU_SOURCE): exports run concurrently on the thread
 * pool, so the comparators take their table as context, not from a global. */
static int cmp_str_id(const void *a, const void *b, void *ctx)
{
	const struct strtab *t = ctx;
	const struct sref *x = &t->refs[*(const uint32_t *)a];
	const struct sref *y = &t->refs[*(const uint32_t *)b];
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(t->arena + x->off, t->arena + y->off, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ranks[id] = position of string id in byte order, for ids[0..n) (or all
 * when ids is NULL). */
static uint32_t *strtab_ranks(const struct strtab *t, uint32_t *ids, size_t n)
{
	uint32_t *ranks = xcalloc(t->n ? t->n : 1, sizeof(*ranks));
	uint32_t *own = NULL;
	if (!ids) {
		own = ids = xmalloc((t->n ? t->n : 1) * sizeof(*ids));
		for (uint32_t i = 0; i < t->n; i++)
			ids[i] = i;
		n = t->n;
	}
	if (n)
		qsort_r(ids, n, sizeof(*ids), cmp_str_id, (void *)t);
	for (size_t i = 0; i < n; i++)
		ranks[ids[i]] = (uint32_t)i;
	free(own);
	return ranks;
}

/* ---- the export's state ------------------------------------------------ */

struct replica {
	uint32_t last_seq;
	uint32_t inst_key; /* instance of its ledger name (after the last '@') */
	uint32_t inst;     /* instance of its start record */
	uint32_t group;    /* NONE: not billed in this export (no start, other namespace) */
	bool started, done;
	enum floe_meter_rounding rounding;
	uint64_t start_t, last_t; /* first and last event */
	struct floe_meter_event *ev;
	struct floe_meter_answers *ans;
	uint32_t n_ev, cap_ev, n_ans, cap_ans;
};

/* What rows are aggregated by, besides period and state. */
struct group {
	uint32_t ns, ep, itype, cur, gpus;
	uint32_t replica; /* NONE with group_by=endpoint */
	struct floe_meter_prices prices;
	uint64_t hash;
	uint32_t summary; /* its summary entry */
	uint32_t vis;     /* rank of (ns, ep, replica, itype, gpus) */
	/* The cells of its latest period: replicas of an endpoint end roughly
	 * in time order, so most additions skip the hash lookup. */
	uint64_t hot_period;
	uint32_t hot[FLOE_METER_NSTATES];
};

struct cell {
	uint64_t period; /* clipped period start */
	uint32_t group, state;
	uint64_t ms, billable, requests, cost;
	/* sort keys, filled before sorting */
	uint64_t price;
	uint32_t vis, cur;
};

struct summary {
	uint32_t ns, ep, cur;
	uint64_t replicas, ms[FLOE_METER_NSTATES], billable, requests[5], cost;
};

enum mode {
	MODE_CSV,
	MODE_SUMMARY
};

/* What a start signature (see start_sig) resolves to. */
struct start_sig {
	uint32_t inst;
	bool billed;       /* its namespace is exported */
	uint32_t group;    /* the shared group, NONE with group_by=replica */
	struct group tmpl; /* the group's values (replica NONE) */
};

struct exp {
	const struct floe_export_query *q;
	enum mode mode;
	uint64_t period_ms;
	uint32_t ns_filter; /* dims id of q->ns; NONE: all */

	struct strtab dims, names, insts, sigs;
	struct start_sig *sig; /* by sigs id */
	size_t cap_sig;
	struct floe_meter_row *rows; /* the metering buffer, reused for every replica */
	size_t cap_rows;
	struct replica *reps; /* by the reader's replica index */
	uint32_t n_reps;
	size_t cap_reps;
	uint64_t *inst_max_t; /* by insts id: latest t of any record of it */
	size_t cap_insts;

	struct group *groups;
	uint32_t n_groups, cap_groups;
	uint32_t *group_slots;
	size_t n_group_slots;

	struct cell *cells;
	size_t n_cells, cap_cells;
	uint32_t *cell_slots; /* group_by=endpoint: (period, group, state) -> cell + 1 */
	size_t n_cell_slots;

	struct summary *sums;
	uint32_t n_sums, cap_sums;

	uint64_t records, duplicates, orphans, undecodable, replicas;
	int error; /* -errno from metering (a bug if ever set) */
};

static uint64_t group_hash(const struct group *g)
{
	uint64_t h = mix64(((uint64_t)g->ns << 32 | g->ep) ^ 0x5bd1e995);
	h = mix64(h ^ ((uint64_t)g->itype << 32 | g->cur));
	h = mix64(h ^ ((uint64_t)g->gpus << 32 | g->replica));
	for (int s = 0; s < FLOE_METER_NSTATES; s++)
		h = mix64(h ^ g->prices.per_hour_micro[s]);
	return h;
}

static bool group_eq(const struct group *a, const struct group *b)
{
	return a->ns == b->ns && a->ep == b->ep && a->itype == b->itype && a->cur == b->cur &&
	       a->gpus == b->gpus && a->replica == b->replica &&
	       memcmp(&a->prices, &b->prices, sizeof(a->prices)) == 0;
}

static void group_slots_rehash(struct exp *x)
{
	size_t ns = x->n_group_slots ? x->n_group_slots * 2 : 256;
	uint32_t *slots = xcalloc(ns, sizeof(*slots));
	for (uint32_t g = 0; g < x->n_groups; g++) {
		size_t i = x->groups[g].hash & (ns - 1);
		while (slots[i])
			i = (i + 1) & (ns - 1);
		slots[i] = g + 1;
	}
	free(x->group_slots);
	x->group_slots = slots;
	x->n_group_slots = ns;
}

static uint32_t summary_of(struct exp *x, const struct group *g)
{
	/* Few entries (one per endpoint and currency), looked up once per group. */
	for (uint32_t i = 0; i < x->n_sums; i++)
		if (x->sums[i].ns == g->ns && x->sums[i].ep == g->ep && x->sums[i].cur == g->cur)
			return i;
	if (x->n_sums == x->cap_sums) {
		x->cap_sums = x->cap_sums ? x->cap_sums * 2 : 64;
		x->sums = xrealloc(x->sums, x->cap_sums * sizeof(*x->sums));
	}
	x->sums[x->n_sums] = (struct summary){ .ns = g->ns, .ep = g->ep, .cur = g->cur };
	return x->n_sums++;
}

/* The group of g's values: with group_by=replica one per replica, else
 * shared by every replica with the same dimensions and prices. */
static uint32_t group_get(struct exp *x, struct group *g)
{
	bool shared = g->replica == NONE;
	size_t i = 0;
	if (shared) {
		g->hash = group_hash(g);
		if (!x->n_group_slots)
			group_slots_rehash(x);
		for (i = g->hash & (x->n_group_slots - 1); x->group_slots[i];
		     i = (i + 1) & (x->n_group_slots - 1))
			if (group_eq(&x->groups[x->group_slots[i] - 1], g))
				return x->group_slots[i] - 1;
	}
	if (x->n_groups == x->cap_groups) {
		x->cap_groups = x->cap_groups ? x->cap_groups * 2 : 64;
		x->groups = xrealloc(x->groups, x->cap_groups * sizeof(*x->groups));
	}
	uint32_t id = x->n_groups++;
	g->summary = x->mode == MODE_SUMMARY ? summary_of(x, g) : NONE;
	g->hot_period = UINT64_MAX;
	for (int s = 0; s < FLOE_METER_NSTATES; s++)
		g->hot[s] = NONE;
	x->groups[id] = *g;
	if (shared) {
		x->group_slots[i] = id + 1;
		if (2 * (size_t)x->n_groups > x->n_group_slots)
			group_slots_rehash(x);
	}
	return id;
}

static void cell_slots_rehash(struct exp *x)
{
	size_t ns = x->n_cell_slots ? x->n_cell_slots * 2 : 1024;
	uint32_t *slots = xcalloc(ns, sizeof(*slots));
	for (size_t c = 0; c < x->n_cells; c++) {
		const struct cell *e = &x->cells[c];
		size_t i = mix64(e->period ^ ((uint64_t)e->group << 3 | e->state)) & (ns - 1);
		while (slots[i])
			i = (i + 1) & (ns - 1);
		slots[i] = (uint32_t)c + 1;
	}
	free(x->cell_slots);
	x->cell_slots = slots;
	x->n_cell_slots = ns;
}

static struct cell *cell_new(struct exp *x, uint64_t period, uint32_t group, uint32_t state)
{
	if (x->n_cells == x->cap_cells) {
		x->cap_cells = x->cap_cells ? x->cap_cells * 2 : 1024;
		x->cells = xrealloc(x->cells, x->cap_cells * sizeof(*x->cells));
	}
	struct cell *c = &x->cells[x->n_cells++];
	memset(c, 0, sizeof(*c));
	c->period = period;
	c->group = group;
	c->state = state;
	return c;
}

/* Add a replica's sums for one (period, state) to the aggregate. */
static void cell_add(struct exp *x, uint64_t period, uint32_t group, uint32_t state,
		     const struct cell *v)
{
	struct cell *c;
	struct group *g = &x->groups[group];
	if (g->replica != NONE) {
		/* A replica's cells are its own: nothing to look up. */
		c = cell_new(x, period, group, state);
	} else if (g->hot_period == period && g->hot[state] != NONE) {
		c = &x->cells[g->hot[state]];
	} else {
		if (!x->n_cell_slots)
			cell_slots_rehash(x);
		size_t i = mix64(period ^ ((uint64_t)group << 3 | state)) & (x->n_cell_slots - 1);
		c = NULL;
		for (; x->cell_slots[i]; i = (i + 1) & (x->n_cell_slots - 1)) {
			struct cell *e = &x->cells[x->cell_slots[i] - 1];
			if (e->period == period && e->group == group && e->state == state) {
				c = e;
				break;
			}
		}
		if (!c) {
			c = cell_new(x, period, group, state);
			x->cell_slots[i] = (uint32_t)x->n_cells;
			if (2 * x->n_cells > x->n_cell_slots)
				cell_slots_rehash(x);
			c = &x->cells[x->n_cells - 1];
		}
		if (g->hot_period != period) {
			g->hot_period = period;
			for (int s = 0; s < FLOE_METER_NSTATES; s++)
				g->hot[s] = NONE;
		}
		g->hot[state] = (uint32_t)(c - x->cells);
	}
	c->ms += v->ms;
	c->billable += v->billable;
	c->requests += v->requests;
	c->cost += v->cost;
}

/* Fold one replica's minute rows (time, then state order) into the
 * aggregate, keeping those in [from, to). */
static void fold(struct exp *x, struct replica *r, const struct floe_meter_row *rows, long n)
{
	const struct floe_export_query *q = x->q;
	struct group *g = &x->groups[r->group];
	bool any = false;
	if (x->mode == MODE_SUMMARY) {
		struct summary *s = &x->sums[g->summary];
		for (long i = 0; i < n; i++) {
			const struct floe_meter_row *row = &rows[i];
			if (row->minute_ms < q->from_ms || row->minute_ms >= q->to_ms)
				continue;
			any = true;
			s->ms[row->state] += row->ms;
			s->billable += row->billable_ms;
			s->cost += row->cost_micro;
			for (int c = 0; c < 5; c++)
				s->requests[c] += row->requests[c];
		}
		if (any)
			s->replicas++;
	} else {
		/* Rows come in time order: sum a period's rows per state, add the
		 * sums when the period changes. */
		struct cell acc[FLOE_METER_NSTATES];
		uint64_t period = UINT64_MAX, period_end = 0;
		for (long i = 0; i <= n; i++) {
			const struct floe_meter_row *row = i < n ? &rows[i] : NULL;
			if (row && (row->minute_ms < q->from_ms || row->minute_ms >= q->to_ms))
				continue;
			/* A division only when the period changes. */
			if (!row || row->minute_ms >= period_end) {
				uint64_t p = 0;
				if (row) {
					p = row->minute_ms - row->minute_ms % x->period_ms;
					period_end = p + x->period_ms;
					if (p < q->from_ms)
						p = q->from_ms;
				}
				if (period != UINT64_MAX)
					for (uint32_t s = 0; s < FLOE_METER_NSTATES; s++)
						if (acc[s].ms)
							cell_add(x, period, r->group, s, &acc[s]);
				if (!row)
					break;
				period = p;
				memset(acc, 0, sizeof(acc));
			}
			any = true;
			struct cell *a = &acc[row->state];
			a->ms += row->ms;
			a->billable += row->billable_ms;
			a->cost += row->cost_micro;
			for (int c = 0; c < 5; c++)
				a->requests += row->requests[c];
		}
	}
	if (any)
		x->replicas++;
}

/* Meter r up to end_ms (its timeline's end when it has no stopped event),
 * fold it in and free its events. */
static void finish(struct exp *x, struct replica *r, uint64_t end_ms)
{
	r->done = true;
	if (r->group != NONE && r->n_ev) {
		uint64_t last = r->ev[r->n_ev - 1].state == FLOE_METER_STOPPED ? r->last_t : end_ms;
		/* Nothing to meter for a life entirely outside [from, to). */
		if (r->start_t < x->q->to_ms && last > x->q->from_ms) {
			long n = floe_meter_replica_into(r->ev, r->n_ev, r->ans, r->n_ans, end_ms,
							 r->rounding, &x->groups[r->group].prices,
							 &x->rows, &x->cap_rows);
			if (n < 0)
				x->error = (int)n;
			else
				fold(x, r, x->rows, n);
		}
	}
	free(r->ev);
	free(r->ans);
	r->ev = NULL;
	r->ans = NULL;
	r->n_ev = r->cap_ev = r->n_ans = r->cap_ans = 0;
}

static void push_event(struct replica *r, uint64_t t, enum floe_meter_state st)
{
	if (r->n_ev && t < r->last_t)
		t = r->last_t; /* a wall clock stepped back: keep the order */
	if (r->n_ev == r->cap_ev) {
		r->cap_ev = r->cap_ev ? r->cap_ev * 2 : 4;
		r->ev = xrealloc(r->ev, r->cap_ev * sizeof(*r->ev));
	}
	r->ev[r->n_ev++] = (struct floe_meter_event){ t, st };
	r->last_t = t;
}

static void push_answers(struct replica *r, const struct floe_record *rec)
{
	for (int s = 0; s < FLOE_METER_NSTATES; s++) {
		const uint32_t *c = rec->requests[s];
		if (!(c[0] | c[1] | c[2] | c[3] | c[4]))
			continue;
		if (r->n_ans == r->cap_ans) {
			r->cap_ans = r->cap_ans ? r->cap_ans * 2 : 4;
			r->ans = xrealloc(r->ans, r->cap_ans * sizeof(*r->ans));
		}
		struct floe_meter_answers *a = &r->ans[r->n_ans++];
		a->minute_ms = rec->minute * MINUTE_MS;
		a->state = (enum floe_meter_state)s;
		memcpy(a->requests, c, sizeof(a->requests));
	}
}

static uint32_t inst_get(struct exp *x, const char *p, size_t len)
{
	uint32_t id = strtab_get(&x->insts, p, len, true, NULL);
	if (id >= x->cap_insts) {
		size_t cap = x->cap_insts ? x->cap_insts * 2 : 16;
		x->inst_max_t = xrealloc(x->inst_max_t, cap * sizeof(*x->inst_max_t));
		memset(x->inst_max_t + x->cap_insts, 0, (cap - x->cap_insts) * sizeof(uint64_t));
		x->cap_insts = cap;
	}
	return id;
}

/* Everything a start record says about billing, as bytes: replicas of one
 * endpoint repeat it, so one lookup of it replaces five string lookups. */
static size_t start_sig(const struct floe_record *rec, char *out)
{
	size_t n = 0;
	const struct floe_str *f[] = { &rec->instance, &rec->ns, &rec->endpoint,
				       &rec->instance_type, &rec->currency };
	for (int i = 0; i < 5; i++) {
		out[n++] = (char)f[i]->len; /* <= FLOE_RECORD_MAX_STR */
		memcpy(out + n, f[i]->p, f[i]->len);
		n += f[i]->len;
	}
	memcpy(out + n, &rec->gpus, sizeof(rec->gpus));
	n += sizeof(rec->gpus);
	memcpy(out + n, &rec->prices, sizeof(rec->prices));
	return n + sizeof(rec->prices);
}

static void on_start(struct exp *x, struct replica *r, const floe_ledger_key *key,
		     const struct floe_record *rec)
{
	r->started = true;
	r->start_t = rec->t_ms;
	char sig[5 * (1 + FLOE_RECORD_MAX_STR) + sizeof(rec->gpus) + sizeof(rec->prices)];
	bool added;
	uint32_t sid = strtab_get(&x->sigs, sig, start_sig(rec, sig), true, &added);
	if (added) {
		if (sid >= x->cap_sig) {
			x->cap_sig = x->cap_sig ? x->cap_sig * 2 : 64;
			x->sig = xrealloc(x->sig, x->cap_sig * sizeof(*x->sig));
		}
		struct start_sig *sv = &x->sig[sid];
		sv->inst = inst_get(x, rec->instance.p, rec->instance.len);
		sv->group = NONE;
		uint32_t ns =
			strtab_get(&x->dims, rec->ns.p, rec->ns.len, x->ns_filter == NONE, NULL);
		sv->billed = x->ns_filter == NONE || ns == x->ns_filter;
		if (sv->billed) {
			sv->tmpl = (struct group){
				.ns = ns,
				.ep = strtab_get(&x->dims, rec->endpoint.p, rec->endpoint.len, true,
						 NULL),
				.itype = strtab_get(&x->dims, rec->instance_type.p,
						    rec->instance_type.len, true, NULL),
				.cur = strtab_get(&x->dims, rec->currency.p, rec->currency.len,
						  true, NULL),
				.gpus = rec->gpus,
				.replica = NONE,
				.prices = rec->prices,
			};
			if (!(x->mode == MODE_CSV && x->q->group_by == FLOE_EXPORT_BY_REPLICA)) {
				struct group g = sv->tmpl;
				sv->group = group_get(x, &g);
			}
		}
	}
	const struct start_sig *sv = &x->sig[sid];
	r->inst = sv->inst;
	if (!sv->billed)
		return; /* another namespace: not billed here */
	if (sv->group != NONE) {
		r->group = sv->group;
	} else {
		struct group g = sv->tmpl;
		g.replica = strtab_get(&x->names, key->replica, strlen(key->replica), true, NULL);
		r->group = group_get(x, &g);
	}
	r->rounding = rec->rounding;
	push_event(r, rec->t_ms, rec->state);
}

static int on_record(const floe_ledger_key *key, const void *payload, size_t len, void *opaque)
{
	struct exp *x = opaque;
	/* The reader numbers replicas densely in order of first appearance and
	 * has already dropped copies of a (replica, seq): one array, no map. */
	uint32_t id = key->index;
	if (id >= x->n_reps) {
		if (id >= x->cap_reps) {
			size_t cap = x->cap_reps ? x->cap_reps * 2 : 1024;
			while (cap <= id)
				cap *= 2;
			x->reps = xrealloc(x->reps, cap * sizeof(*x->reps));
			x->cap_reps = cap;
		}
		for (uint32_t i = x->n_reps; i <= id; i++)
			x->reps[i] =
				(struct replica){ .group = NONE, .inst = NONE, .inst_key = NONE };
		x->n_reps = id + 1;
	}
	struct replica *r = &x->reps[id];
	if (r->inst_key == NONE) {
		size_t nlen = strlen(key->replica);
		const char *at = memrchr(key->replica, '@', nlen);
		const char *inst = at ? at + 1 : key->replica;
		r->inst_key = inst_get(x, inst, nlen - (size_t)(inst - key->replica));
	}
	struct floe_record rec;
	if (floe_record_decode(payload, len, &rec) < 0) {
		x->undecodable++;
		return 0;
	}
	x->records++;
	if (rec.t_ms > x->inst_max_t[r->inst_key])
		x->inst_max_t[r->inst_key] = rec.t_ms;
	switch (rec.kind) {
	case FLOE_RECORD_TICK: break;
	case FLOE_RECORD_START:
		if (r->started) {
			x->undecodable++; /* a second start under one name: not billable */
			break;
		}
		on_start(x, r, key, &rec);
		break;
	case FLOE_RECORD_STATE:
	case FLOE_RECORD_ANSWERS:
		/* Nothing of a replica follows its stopped (record.h); what does
		 * is, like records whose start was lost, not billable. */
		if (!r->started || r->done) {
			x->orphans++;
			break;
		}
		if (rec.kind == FLOE_RECORD_ANSWERS) {
			if (r->group != NONE)
				push_answers(r, &rec);
			break;
		}
		if (r->group != NONE)
			push_event(r, rec.t_ms, rec.state);
		if (rec.state == FLOE_METER_STOPPED)
			finish(x, r, rec.t_ms);
		break;
	}
	return 0;
}

static void exp_destroy(struct exp *x)
{
	for (uint32_t i = 0; i < x->n_reps; i++) {
		free(x->reps[i].ev);
		free(x->reps[i].ans);
	}
	free(x->reps);
	free(x->rows);
	free(x->inst_max_t);
	strtab_destroy(&x->dims);
	strtab_destroy(&x->names);
	strtab_destroy(&x->insts);
	strtab_destroy(&x->sigs);
	free(x->sig);
	free(x->groups);
	free(x->group_slots);
	free(x->cells);
	free(x->cell_slots);
	free(x->sums);
}

/* Read and meter the whole ledger into x's aggregate. */
static int exp_run(struct exp *x, const char *dir, const char *live_instance, uint64_t now_ms,
		   struct floe_export_report *rep, floe_error *err)
{
	const struct floe_export_query *q = x->q;
	memset(rep, 0, sizeof(*rep));
	x->period_ms = q->granularity == FLOE_EXPORT_MINUTE ? MINUTE_MS :
		       q->granularity == FLOE_EXPORT_HOUR   ? HOUR_MS :
							      DAY_MS;
	x->ns_filter = NONE;
	if (q->ns) {
		/* Intern the filter first: a start's namespace is then only looked
		 * up, never stored, for replicas of other namespaces. */
		x->ns_filter = strtab_get(&x->dims, q->ns, strlen(q->ns), true, NULL);
	}
	floe_ledger_reader rd;
	int rc = floe_ledger_read_pipelined(dir, on_record, x, &rd, err);
	if (rc < 0) {
		floe_ledger_reader_destroy(&rd);
		return rc;
	}
	uint32_t live = live_instance ? strtab_get(&x->insts, live_instance, strlen(live_instance),
						   false, NULL) :
					NONE;
	/* Timelines still open: the live floed's run to now; a crashed one's
	 * ended with its last record (its replicas died with it). */
	for (uint32_t i = 0; i < x->n_reps; i++) {
		struct replica *r = &x->reps[i];
		if (!r->started || r->done)
			continue;
		uint64_t end = now_ms;
		if (r->inst != live || live == NONE) {
			end = r->inst < x->cap_insts ? x->inst_max_t[r->inst] : 0;
			if (end < r->last_t)
				end = r->last_t;
		}
		finish(x, r, end);
	}
	rep->incomplete = rd.incomplete || x->orphans || x->undecodable;
	rep->n_damaged = rd.n_damaged;
	rep->damaged = rd.damaged;
	rd.damaged = NULL;
	rd.n_damaged = 0;
	rep->records = x->records;
	rep->duplicates = rd.duplicates + x->duplicates;
	rep->orphans = x->orphans;
	rep->undecodable = x->undecodable;
	rep->replicas = x->replicas;
	floe_ledger_reader_destroy(&rd);
	if (x->orphans)
		log_warn("%s: %llu record(s) of replicas whose start is missing: not billed", dir,
			 (unsigned long long)x->orphans);
	if (x->undecodable)
		log_warn("%s: %llu undecodable record(s) skipped", dir,
			 (unsigned long long)x->undecodable);
	if (x->error)
		return floe_error_set(err, x->error, "metering failed: %s", strerror(-x->error));
	return 0;
}

/* ---- output ------------------------------------------------------------ */

static char *put_u64(char *o, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = tmp[--n];
	return o;
}

/* v / 10^decimals with exactly that many decimals. */
static char *put_fixed(char *o, uint64_t v, int decimals, uint64_t scale)
{
	o = put_u64(o, v / scale);
	*o++ = '.';
	uint64_t frac = v % scale;
	for (int i = decimals - 1; i >= 0; i--) {
		o[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	return o + decimals;
}

/* An RFC 4180 field: quoted (quotes doubled) when it holds , " CR or LF. */
static char *put_field(char *o, const char *s, size_t len)
{
	bool quote = false;
	for (size_t i = 0; i < len && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (!quote) {
		memcpy(o, s, len);
		return o + len;
	}
	*o++ = '"';
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			*o++ = '"';
		*o++ = s[i];
	}
	*o++ = '"';
	return o;
}

static int cmp_cell(const void *a, const void *b)
{
	const struct cell *x = a, *y = b;
	if (x->period != y->period)
		return x->period < y->period ? -1 : 1;
	if (x->vis != y->vis)
		return x->vis < y->vis ? -1 : 1;
	if (x->state != y->state)
		return x->state < y->state ? -1 : 1;
	if (x->price != y->price)
		return x->price < y->price ? -1 : 1;
	return (x->cur > y->cur) - (x->cur < y->cur);
}

struct vis_key {
	uint32_t ns, ep, rep, itype, gpus, group;
};

static int cmp_vis(const void *a, const void *b)
{
	const struct vis_key *x = a, *y = b;
	const uint32_t *u = &x->ns, *v = &y->ns;
	for (int i = 0; i < 5; i++)
		if (u[i] != v[i])
			return u[i] < v[i] ? -1 : 1;
	return 0;
}

static bool vis_eq(const struct vis_key *x, const struct vis_key *y)
{
	return x->ns == y->ns && x->ep == y->ep && x->rep == y->rep && x->itype == y->itype &&
	       x->gpus == y->gpus;
}

static const char csv_header[] =
	"period_start,period_end,namespace,endpoint,replica,instance_type,gpus,state,seconds,"
	"billable_seconds,requests,unit_price_per_hour,cost,currency\r\n";

static void write_csv(struct exp *x, struct floe_buf *out, uint64_t *n_rows)
{
	const struct floe_export_query *q = x->q;
	uint32_t *dim_rank = strtab_ranks(&x->dims, NULL, 0);
	uint32_t *rep_rank = NULL;
	if (q->group_by == FLOE_EXPORT_BY_REPLICA && x->n_groups) {
		uint32_t *ids = xmalloc(x->n_groups * sizeof(*ids));
		for (uint32_t g = 0; g < x->n_groups; g++)
			ids[g] = x->groups[g].replica;
		rep_rank = strtab_ranks(&x->names, ids, x->n_groups);
		free(ids);
	}
	/* Rank groups by what a row shows of them; groups that differ only in
	 * prices or currency share a rank, their rows merge when equal. */
	struct vis_key *vk = xmalloc((x->n_groups ? x->n_groups : 1) * sizeof(*vk));
	for (uint32_t g = 0; g < x->n_groups; g++) {
		const struct group *gr = &x->groups[g];
		vk[g] = (struct vis_key){
			dim_rank[gr->ns],    dim_rank[gr->ep], rep_rank ? rep_rank[gr->replica] : 0,
			dim_rank[gr->itype], gr->gpus,         g
		};
	}
	if (x->n_groups)
		qsort(vk, x->n_groups, sizeof(*vk), cmp_vis);
	uint32_t rank = 0;
	for (uint32_t i = 0; i < x->n_groups; i++) {
		if (i && !vis_eq(&vk[i - 1], &vk[i]))
			rank++;
		x->groups[vk[i].group].vis = rank;
	}
	free(vk);
	for (size_t c = 0; c < x->n_cells; c++) {
		struct cell *e = &x->cells[c];
		const struct group *g = &x->groups[e->group];
		e->vis = g->vis;
		e->cur = dim_rank[g->cur];
		e->price = g->prices.per_hour_micro[e->state];
	}
	if (x->n_cells)
		qsort(x->cells, x->n_cells, sizeof(*x->cells), cmp_cell);

	floe_buf_append(out, csv_header, sizeof(csv_header) - 1);
	char ps[21] = "", pe[21] = "";
	uint64_t cur_period = UINT64_MAX;
	uint64_t rows = 0;
	for (size_t c = 0; c < x->n_cells;) {
		/* Merge equal rows (groups that differ in a price of another state). */
		struct cell sum = x->cells[c];
		size_t d = c + 1;
		for (; d < x->n_cells && cmp_cell(&x->cells[c], &x->cells[d]) == 0; d++) {
			sum.ms += x->cells[d].ms;
			sum.billable += x->cells[d].billable;
			sum.requests += x->cells[d].requests;
			sum.cost += x->cells[d].cost;
		}
		c = d;
		if (!sum.ms)
			continue;
		if (sum.period != cur_period) {
			cur_period = sum.period;
			uint64_t end = sum.period - sum.period % x->period_ms + x->period_ms;
			floe_export_time_format(sum.period, ps);
			floe_export_time_format(end < q->to_ms ? end : q->to_ms, pe);
		}
		const struct group *g = &x->groups[sum.group];
		const struct sref *ns = &x->dims.refs[g->ns], *ep = &x->dims.refs[g->ep],
				  *it = &x->dims.refs[g->itype], *cu = &x->dims.refs[g->cur];
		size_t rlen = g->replica != NONE ? x->names.refs[g->replica].len : 0;
		/* Worst case: every string quoted with every byte doubled. */
		floe_buf_reserve(out, 256 + 2 * (ns->len + ep->len + it->len + cu->len + rlen));
		char *o = out->data + out->len;
		memcpy(o, ps, 20);
		o[20] = ',';
		memcpy(o + 21, pe, 20);
		o[41] = ',';
		o += 42;
		o = put_field(o, x->dims.arena + ns->off, ns->len);
		*o++ = ',';
		o = put_field(o, x->dims.arena + ep->off, ep->len);
		*o++ = ',';
		if (g->replica != NONE)
			o = put_field(o, str_of(&x->names, g->replica), rlen);
		*o++ = ',';
		o = put_field(o, x->dims.arena + it->off, it->len);
		*o++ = ',';
		o = put_u64(o, g->gpus);
		*o++ = ',';
		const char *st = floe_record_state_name((enum floe_meter_state)sum.state);
		size_t stl = strlen(st);
		memcpy(o, st, stl);
		o += stl;
		*o++ = ',';
		o = put_fixed(o, sum.ms, 3, 1000);
		*o++ = ',';
		o = put_fixed(o, sum.billable, 3, 1000);
		*o++ = ',';
		o = put_u64(o, sum.requests);
		*o++ = ',';
		o = put_fixed(o, sum.price, 6, 1000000);
		*o++ = ',';
		o = put_fixed(o, sum.cost, 6, 1000000);
		*o++ = ',';
		o = put_field(o, x->dims.arena + cu->off, cu->len);
		*o++ = '\r';
		*o++ = '\n';
		out->len = (size_t)(o - out->data);
		rows++;
	}
	if (out->data)
		out->data[out->len] = '\0';
	*n_rows = rows;
	free(dim_rank);
	free(rep_rank);
}

static int cmp_sum(const void *a, const void *b, void *ctx)
{
	const uint32_t *sum_rank = ctx;
	const struct summary *x = a, *y = b;
	uint32_t u[3] = { sum_rank[x->ns], sum_rank[x->ep], sum_rank[x->cur] };
	uint32_t v[3] = { sum_rank[y->ns], sum_rank[y->ep], sum_rank[y->cur] };
	for (int i = 0; i < 3; i++)
		if (u[i] != v[i])
			return u[i] < v[i] ? -1 : 1;
	return 0;
}

static json_t *json_strn(const struct strtab *t, uint32_t id)
{
	return json_stringn(str_of(t, id), t->refs[id].len);
}

static void write_summary(struct exp *x, const struct floe_export_report *rep, struct floe_buf *out,
			  uint64_t *n_rows)
{
	const struct floe_export_query *q = x->q;
	uint32_t *rank = strtab_ranks(&x->dims, NULL, 0);
	if (x->n_sums)
		qsort_r(x->sums, x->n_sums, sizeof(*x->sums), cmp_sum, rank);
	char f[21], t[21];
	floe_export_time_format(q->from_ms, f);
	floe_export_time_format(q->to_ms, t);
	json_t *root = json_object();
	json_object_set_new(root, "from", json_string(f));
	json_object_set_new(root, "to", json_string(t));
	json_object_set_new(root, "namespace", q->ns ? json_string(q->ns) : json_null());
	json_object_set_new(root, "incomplete", json_boolean(rep->incomplete));
	json_t *dmg = json_array();
	for (size_t i = 0; i < rep->n_damaged; i++) {
		const char *slash = strrchr(rep->damaged[i].file, '/');
		json_array_append_new(dmg, json_pack("{s:s, s:I, s:I}", "file",
						     slash ? slash + 1 : rep->damaged[i].file,
						     "offset", (json_int_t)rep->damaged[i].offset,
						     "length", (json_int_t)rep->damaged[i].length));
	}
	json_object_set_new(root, "damaged", dmg);
	json_t *eps = json_array();
	uint64_t rows = 0;
	static const char *const classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	for (uint32_t i = 0; i < x->n_sums; i++) {
		const struct summary *s = &x->sums[i];
		if (!s->replicas)
			continue; /* every replica of it outside [from, to) */
		json_t *e = json_object();
		json_object_set_new(e, "namespace", json_strn(&x->dims, s->ns));
		json_object_set_new(e, "endpoint", json_strn(&x->dims, s->ep));
		json_object_set_new(e, "replicas", json_integer((json_int_t)s->replicas));
		json_t *ms = json_object();
		for (int st = 0; st < FLOE_METER_NSTATES; st++)
			json_object_set_new(ms, floe_record_state_name((enum floe_meter_state)st),
					    json_integer((json_int_t)s->ms[st]));
		json_object_set_new(e, "ms", ms);
		json_object_set_new(e, "billable_ms", json_integer((json_int_t)s->billable));
		json_t *req = json_object();
		for (int c = 0; c < 5; c++)
			json_object_set_new(req, classes[c],
					    json_integer((json_int_t)s->requests[c]));
		json_object_set_new(e, "requests", req);
		char cost[32];
		char *end = put_fixed(cost, s->cost, 6, 1000000);
		json_object_set_new(e, "cost", json_stringn(cost, (size_t)(end - cost)));
		json_object_set_new(e, "currency", json_strn(&x->dims, s->cur));
		json_array_append_new(eps, e);
		rows++;
	}
	json_object_set_new(root, "endpoints", eps);
	char *text = json_dumps(root, JSON_COMPACT);
	floe_buf_puts(out, text);
	free(text);
	json_decref(root);
	free(rank);
	*n_rows = rows;
}

static int export(enum mode mode, const char *dir, const struct floe_export_query *q,
		  const char *live_instance, uint64_t now_ms, struct floe_buf *out,
		  struct floe_export_report *rep, floe_error *err)
{
	struct exp x = { .q = q, .mode = mode };
	int rc = exp_run(&x, dir, live_instance, now_ms, rep, err);
	if (rc == 0 && mode == MODE_CSV)
		write_csv(&x, out, &rep->rows);
	else if (rc == 0)
		write_summary(&x, rep, out, &rep->rows);
	exp_destroy(&x);
	if (rc < 0)
		return floe_error_wrap(err, "usage export failed");
	return 0;
}

int floe_export_csv(const char *ledger_dir, const struct floe_export_query *q,
		    const char *live_instance, uint64_t now_ms, struct floe_buf *out,
		    struct floe_export_report *rep, floe_error *err)
{
	return export(MODE_CSV, ledger_dir, q, live_instance, now_ms, out, rep, err);
}

int floe_export_summary(const char *ledger_dir, const struct floe_export_query *q,
			const char *live_instance, uint64_t now_ms, struct floe_buf *out,
			struct floe_export_report *rep, floe_error *err)
{
	return export(MODE_SUMMARY, ledger_dir, q, live_instance, now_ms, out, rep, err);
}

void floe_export_report_destroy(struct floe_export_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n_damaged; i++)
		free(rep->damaged[i].file);
	free(rep->damaged);
	memset(rep, 0, sizeof(*rep));
}

char *floe_export_incomplete_header(const struct floe_export_report *rep)
{
	if (!rep || !rep->incomplete)
		return NULL;
	struct floe_buf b = FLOE_BUF_INIT;
	if (rep->n_damaged) {
		floe_buf_printf(&b, "%zu damaged range(s): ", rep->n_damaged);
		for (size_t i = 0; i < rep->n_damaged; i++) {
			const char *slash = strrchr(rep->damaged[i].file, '/');
			floe_buf_printf(&b, "%s%s@%llu+%llu", i ? ", " : "",
					slash ? slash + 1 : rep->damaged[i].file,
					(unsigned long long)rep->damaged[i].offset,
					(unsigned long long)rep->damaged[i].length);
		}
	}
	if (rep->orphans)
		floe_buf_printf(&b, "%s%llu record(s) of replicas whose start is missing",
				b.len ? "; " : "", (unsigned long long)rep->orphans);
	if (rep->undecodable)
		floe_buf_printf(&b, "%s%llu undecodable record(s)", b.len ? "; " : "",
				(unsigned long long)rep->undecodable);
	if (!b.len)
		floe_buf_puts(&b, "records may be missing");
	return floe_buf_steal(&b, NULL);
}
