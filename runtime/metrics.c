/*
 * Prometheus metrics registry, text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * A family owns its children twice over: a hash table keyed by the label
 * values (the request hot path looks a child up per request) and a doubly
 * linked list in creation order (what /metrics renders, and what makes
 * removal O(1) once the child is found). Children are allocated one by one,
 * so growing the table never moves them and callers may cache pointers.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "metrics"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

const double floe_metrics_latency_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300,
};
const size_t floe_metrics_latency_buckets_len =
	sizeof(floe_metrics_latency_buckets) / sizeof(floe_metrics_latency_buckets[0]);

struct floe_metric {
	struct floe_metric_family *fam;
	struct floe_metric *hnext;       /* hash chain */
	struct floe_metric *prev, *next; /* creation order */
	uint64_t hash;
	char **values;     /* fam->n_labels strings */
	double value;      /* counter, gauge */
	double sum;        /* histogram */
	uint64_t count;    /* histogram */
	uint64_t *buckets; /* histogram: n_bounds + 1 (+Inf), not cumulative */
};

struct floe_metric_family {
	struct floe_metric_family *next; /* registration order */
	enum floe_metric_type type;
	char *name;
	char *help;
	char **labels;
	size_t n_labels;
	double *bounds; /* histogram upper bounds, ascending, +Inf not stored */
	size_t n_bounds;

	struct floe_metric **table; /* power-of-two sized */
	size_t table_size;
	size_t n_children;
	struct floe_metric *first, *last;
};

struct floe_metrics {
	struct floe_metric_family *first, *last;
};

#define TABLE_INITIAL 16

/*
 * Families are registered once at start-up from constants in the daemon, so
 * a bad name or bucket list is a programming error: fail loudly and at once
 * rather than emit output that every scraper rejects.
 */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	abort();
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'. */
static bool valid_name(const char *s, bool colon)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

struct floe_metrics *floe_metrics_new(void)
{
	return xcalloc(1, sizeof(struct floe_metrics));
}

static void child_free(struct floe_metric *c, size_t n_labels)
{
	for (size_t i = 0; i < n_labels; i++)
		free(c->values[i]);
	free(c->values);
	free(c->buckets);
	free(c);
}

static void family_free(struct floe_metric_family *f)
{
	struct floe_metric *c = f->first;
	while (c) {
		struct floe_metric *next = c->next;
		child_free(c, f->n_labels);
		c = next;
	}
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->labels);
	free(f->bounds);
	free(f->table);
	free(f->name);
	free(f->help);
	free(f);
}

void floe_metrics_free(struct floe_metrics *m)
{
	if (!m)
		return;
	struct floe_metric_family *f = m->first;
	while (f) {
		struct floe_metric_family *next = f->next;
		family_free(f);
		f = next;
	}
	free(m);
}

struct floe_metric_family *floe_metrics_family(struct floe_metrics *m, enum floe_metric_type type,
					       const char *name, const char *help,
					       const char *const *labels, const double *buckets,
					       size_t n_buckets)
{
	if (!name || !valid_name(name, true))
		die("invalid metric name '%s'", name ? name : "(null)");
	for (struct floe_metric_family *o = m->first; o; o = o->next)
		if (strcmp(o->name, name) == 0)
			die("metric %s registered twice", name);
	if (type != FLOE_COUNTER && type != FLOE_GAUGE && type != FLOE_HISTOGRAM)
		die("metric %s: unknown type %d", name, (int)type);

	struct floe_metric_family *f = xcalloc(1, sizeof(*f));
	f->type = type;
	f->name = xstrdup(name);
	f->help = xstrdup(help ? help : "");

	size_t n = 0;
	while (labels && labels[n])
		n++;
	f->n_labels = n;
	f->labels = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		/* Names starting with "__" are reserved for Prometheus itself. */
		if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
			die("metric %s: invalid label name '%s'", name, labels[i]);
		if (type == FLOE_HISTOGRAM && strcmp(labels[i], "le") == 0)
			die("metric %s: a histogram cannot have a label 'le'", name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				die("metric %s: label '%s' given twice", name, labels[i]);
		f->labels[i] = xstrdup(labels[i]);
	}

	if (type == FLOE_HISTOGRAM) {
		/* An explicit trailing +Inf is accepted and dropped: it is always implied. */
		if (n_buckets > 0 && buckets[n_buckets - 1] == INFINITY)
			n_buckets--;
		f->bounds = xcalloc(n_buckets ? n_buckets : 1, sizeof(double));
		for (size_t i = 0; i < n_buckets; i++) {
			if (isnan(buckets[i]) || isinf(buckets[i]) ||
			    (i > 0 && !(buckets[i] > buckets[i - 1])))
				die("metric %s: bucket bounds must be finite and strictly ascending",
				    name);
			f->bounds[i] = buckets[i];
		}
		f->n_bounds = n_buckets;
	} else if (n_buckets > 0) {
		die("metric %s: buckets given for a non-histogram", name);
	}

	f->table_size = TABLE_INITIAL;
	f->table = xcalloc(f->table_size, sizeof(struct floe_metric *));

	if (m->last)
		m->last->next = f;
	else
		m->first = f;
	m->last = f;
	return f;
}

/*
 * FNV-1a over each value prefixed with its length, so ("a", "bc") and
 * ("ab", "c") hash apart without a separator byte that a value could contain.
 */
static uint64_t hash_values(const char *const *values, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(values[i]);
		for (size_t k = 0; k < sizeof(len); k++) {
			h ^= (unsigned char)(len >> (8 * k));
			h *= 0x100000001b3ULL;
		}
		for (size_t k = 0; k < len; k++) {
			h ^= (unsigned char)values[i][k];
			h *= 0x100000001b3ULL;
		}
	}
	return h;
}

static bool values_equal(const struct floe_metric *c, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c->values[i], values[i]) != 0)
			return false;
	return true;
}

static void table_grow(struct floe_metric_family *f)
{
	size_t size = f->table_size * 2;
	struct floe_metric **t = xcalloc(size, sizeof(*t));
	for (struct floe_metric *c = f->first; c; c = c->next) {
		size_t b = c->hash & (size - 1);
		c->hnext = t[b];
		t[b] = c;
	}
	free(f->table);
	f->table = t;
	f->table_size = size;
}

static struct floe_metric *lookup(struct floe_metric_family *f, const char *const *values,
				  uint64_t hash)
{
	for (struct floe_metric *c = f->table[hash & (f->table_size - 1)]; c; c = c->hnext)
		if (c->hash == hash && values_equal(c, values, f->n_labels))
			return c;
	return NULL;
}

struct floe_metric *floe_metric_get(struct floe_metric_family *f, const char *const *values)
{
	assert(values || f->n_labels == 0);
	for (size_t i = 0; i < f->n_labels; i++)
		assert(values[i]);
	uint64_t hash = hash_values(values, f->n_labels);
	struct floe_metric *c = lookup(f, values, hash);
	if (c)
		return c;

	c = xcalloc(1, sizeof(*c));
	c->fam = f;
	c->hash = hash;
	c->values = xcalloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
	for (size_t i = 0; i < f->n_labels; i++)
		c->values[i] = xstrdup(values[i]);
	if (f->type == FLOE_HISTOGRAM)
		c->buckets = xcalloc(f->n_bounds + 1, sizeof(uint64_t));

	/* Load factor 3/4: chains stay short, and growth is amortised O(1). */
	if (f->n_children + 1 > f->table_size / 4 * 3)
		table_grow(f);
	size_t b = hash & (f->table_size - 1);
	c->hnext = f->table[b];
	f->table[b] = c;

	c->prev = f->last;
	if (f->last)
		f->last->next = c;
	else
		f->first = c;
	f->last = c;
	f->n_children++;
	return c;
}

static void unlink_child(struct floe_metric_family *f, struct floe_metric *c)
{
	struct floe_metric **pp = &f->table[c->hash & (f->table_size - 1)];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;

	if (c->prev)
		c->prev->next = c->next;
	else
		f->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		f->last = c->prev;
	f->n_children--;
	child_free(c, f->n_labels);
}

void floe_metric_remove(struct floe_metric_family *f, const char *const *values)
{
	assert(values || f->n_labels == 0);
	struct floe_metric *c = lookup(f, values, hash_values(values, f->n_labels));
	if (c)
		unlink_child(f, c);
}

void floe_metric_remove_matching(struct floe_metric_family *f, const char *label, const char *value)
{
	size_t idx = 0;
	while (idx < f->n_labels && strcmp(f->labels[idx], label) != 0)
		idx++;
	if (idx == f->n_labels) {
		log_warn("remove from %s: no label '%s'", f->name, label);
		return;
	}
	struct floe_metric *c = f->first;
	while (c) {
		struct floe_metric *next = c->next;
		if (strcmp(c->values[idx], value) == 0)
			unlink_child(f, c);
		c = next;
	}
}

void floe_metric_inc(struct floe_metric *c)
{
	assert(c->fam->type == FLOE_COUNTER || c->fam->type == FLOE_GAUGE);
	c->value += 1;
}

void floe_metric_add(struct floe_metric *c, double v)
{
	assert(c->fam->type == FLOE_COUNTER || c->fam->type == FLOE_GAUGE);
	/*
	 * A counter that goes down reads as a process restart to rate(); drop
	 * the sample (a negative duration from a clock step, say) rather than
	 * corrupt the series or abort the daemon.
	 */
	if (c->fam->type == FLOE_COUNTER && !(v >= 0)) {
		log_warn("counter %s: ignoring add of %g", c->fam->name, v);
		return;
	}
	c->value += v;
}

void floe_metric_set(struct floe_metric *g, double v)
{
	assert(g->fam->type == FLOE_GAUGE);
	g->value = v;
}

void floe_metric_observe(struct floe_metric *h, double v)
{
	assert(h->fam->type == FLOE_HISTOGRAM);
	const struct floe_metric_family *f = h->fam;
	/* Buckets are "le": the first bound >= v. Few bounds: a linear scan beats bsearch. */
	size_t i = 0;
	while (i < f->n_bounds && !(v <= f->bounds[i]))
		i++;
	h->buckets[i]++; /* NaN lands in +Inf, as in the Go client */
	h->count++;
	h->sum += v;
}

double floe_metric_value(const struct floe_metric *c)
{
	if (c->fam->type == FLOE_HISTOGRAM)
		return (double)c->count;
	return c->value;
}

/* ---- rendering ---- */

/*
 * Integral values print as integers ("3", not "3.0" or "3e+00"); others use
 * the shortest %g that reads back to the same double. 2^53 bounds the range
 * where every integer is exact, so "%.0f" prints it digit for digit.
 */
static void put_number(struct floe_buf *out, double v)
{
	if (isnan(v)) {
		floe_buf_puts(out, "NaN");
		return;
	}
	if (isinf(v)) {
		floe_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		floe_buf_puts(out, "0"); /* also -0 */
		return;
	}
	/* Cast rather than floor(): no libm needed, and the range check comes first. */
	if (fabs(v) <= 9007199254740992.0 && v == (double)(long long)v) {
		floe_buf_printf(out, "%.0f", v);
		return;
	}
	char tmp[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	floe_buf_puts(out, tmp);
}

static void put_u64(struct floe_buf *out, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	floe_buf_append(out, tmp, (size_t)n);
}

/* HELP escapes backslash and newline; label values also the double quote. */
static void put_escaped(struct floe_buf *out, const char *s, bool quote)
{
	const char *run = s;
	for (const char *p = s; *p; p++) {
		const char *rep = NULL;
		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (quote && *p == '"')
			rep = "\\\"";
		if (rep) {
			floe_buf_append(out, run, (size_t)(p - run));
			floe_buf_append(out, rep, 2);
			run = p + 1;
		}
	}
	floe_buf_puts(out, run);
}

/*
 * name{l1="v1",...[,le="bound"]} — braces only when there is a label.
 * le is NULL for lines without the le label.
 */
static void put_series(struct floe_buf *out, const struct floe_metric_family *f,
		       const struct floe_metric *c, const char *suffix, const double *le)
{
	floe_buf_puts(out, f->name);
	if (suffix)
		floe_buf_puts(out, suffix);
	if (f->n_labels == 0 && !le) {
		floe_buf_append(out, " ", 1);
		return;
	}
	floe_buf_append(out, "{", 1);
	for (size_t i = 0; i < f->n_labels; i++) {
		if (i)
			floe_buf_append(out, ",", 1);
		floe_buf_puts(out, f->labels[i]);
		floe_buf_append(out, "=\"", 2);
		put_escaped(out, c->values[i], true);
		floe_buf_append(out, "\"", 1);
	}
	if (le) {
		if (f->n_labels)
			floe_buf_append(out, ",", 1);
		floe_buf_append(out, "le=\"", 4);
		put_number(out, *le);
		floe_buf_append(out, "\"", 1);
	}
	floe_buf_append(out, "} ", 2);
}

static const char *type_name(enum floe_metric_type t)
{
	switch (t) {
	case FLOE_COUNTER: return "counter";
	case FLOE_GAUGE: return "gauge";
	case FLOE_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

static void render_family(struct floe_buf *out, const struct floe_metric_family *f)
{
	floe_buf_puts(out, "# HELP ");
	floe_buf_puts(out, f->name);
	floe_buf_append(out, " ", 1);
	put_escaped(out, f->help, false);
	floe_buf_puts(out, "\n# TYPE ");
	floe_buf_puts(out, f->name);
	floe_buf_append(out, " ", 1);
	floe_buf_puts(out, type_name(f->type));
	floe_buf_append(out, "\n", 1);

	for (const struct floe_metric *c = f->first; c; c = c->next) {
		if (f->type != FLOE_HISTOGRAM) {
			put_series(out, f, c, NULL, NULL);
			put_number(out, c->value);
			floe_buf_append(out, "\n", 1);
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i <= f->n_bounds; i++) {
			double le = i < f->n_bounds ? f->bounds[i] : INFINITY;
			cum += c->buckets[i];
			put_series(out, f, c, "_bucket", &le);
			put_u64(out, cum);
			floe_buf_append(out, "\n", 1);
		}
		put_series(out, f, c, "_sum", NULL);
		put_number(out, c->sum);
		floe_buf_append(out, "\n", 1);
		put_series(out, f, c, "_count", NULL);
		put_u64(out, c->count);
		floe_buf_append(out, "\n", 1);
	}
}

void floe_metrics_render(struct floe_metrics *m, struct floe_buf *out)
{
	for (const struct floe_metric_family *f = m->first; f; f = f->next)
		render_family(out, f);
}
