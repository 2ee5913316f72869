/*
 * Prometheus metrics: counter, gauge and histogram families with fixed
 * label names, children looked up by label values (hash table), rendered in
 * the text exposition format 0.0.4. Single-threaded: the loop thread only.
 */
#ifndef FLOE_METRICS_H
#define FLOE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct floe_metrics;       /* a registry */
struct floe_metric_family; /* one metric name, fixed label names */
struct floe_metric;        /* one child: a label-value tuple */

enum floe_metric_type {
	FLOE_COUNTER,
	FLOE_GAUGE,
	FLOE_HISTOGRAM
};

/**
 * Default histogram bounds for latencies in seconds: 5 ms to 300 s, since a
 * cold start (engine load, model download) can take minutes. Pass with
 * floe_metrics_latency_buckets_len to floe_metrics_family().
 */
extern const double floe_metrics_latency_buckets[];
extern const size_t floe_metrics_latency_buckets_len;

struct floe_metrics *floe_metrics_new(void);
/** Frees the registry, its families and children. */
void floe_metrics_free(struct floe_metrics *m);

/**
 * Register a family. labels: NULL-terminated array of label names (may be empty).
 * buckets/n_buckets: upper bounds for histograms (ascending, +Inf implied), else NULL/0.
 * Families render in registration order. The registry owns the family.
 */
struct floe_metric_family *floe_metrics_family(struct floe_metrics *m, enum floe_metric_type type,
					       const char *name, const char *help,
					       const char *const *labels, const double *buckets,
					       size_t n_buckets);

/**
 * The child for these label values (as many as the family has labels),
 * created at zero on first use. The pointer stays valid until the child is
 * removed or the registry freed, so callers may cache it.
 */
struct floe_metric *floe_metric_get(struct floe_metric_family *f, const char *const *values);

/** Remove the child for these label values (an endpoint went away). Cached pointers die. */
void floe_metric_remove(struct floe_metric_family *f, const char *const *values);
/** Remove every child whose label `label` equals value (all series of one endpoint). */
void floe_metric_remove_matching(struct floe_metric_family *f, const char *label,
				 const char *value);

void floe_metric_inc(struct floe_metric *c);               /* counter or gauge += 1 */
void floe_metric_add(struct floe_metric *c, double v);     /* counter (v >= 0) or gauge */
void floe_metric_set(struct floe_metric *g, double v);     /* gauge */
void floe_metric_observe(struct floe_metric *h, double v); /* histogram */
double floe_metric_value(const struct floe_metric *c); /* counter/gauge value; histogram count */

/** Append the whole registry in Prometheus text format to out. */
void floe_metrics_render(struct floe_metrics *m, struct floe_buf *out);

#endif
