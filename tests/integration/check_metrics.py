#!/usr/bin/python3
"""Check floed's /metrics text with a real Prometheus parser.

usage: check_metrics.py FILE [--expect SERIES=VALUE]... [--min SERIES=VALUE]...

FILE is the exposition text ("-": stdin). It is parsed with
prometheus_client.parser.text_string_to_metric_families (Debian package
python3-prometheus-client, installed by scripts/deps), then checked:

- it parses, every family is typed, no family is declared twice;
- the families of floed's contract are there with their type and labels:
  floe_requests_total counter {endpoint, code}, floe_request_duration_seconds
  histogram {endpoint}, floe_cold_starts_total counter {endpoint, kind},
  floe_cold_start_duration_seconds histogram {endpoint, kind}, floe_replicas
  gauge {endpoint, state} (every endpoint: one sample each for starting,
  ready and draining), floe_queue_depth gauge {endpoint}, floe_endpoint_info
  gauge {endpoint, namespace, type}, floe_autoscaler_desired_replicas and
  floe_autoscaler_actual_replicas gauges {endpoint};
- values are consistent: counts are whole and non-negative, histogram
  buckets are cumulative up to +Inf == _count, _sum >= 0; per endpoint the
  requests counted by code add up to the duration histogram's _count; per
  endpoint and kind, cold starts equal the cold-start histogram's _count;
  floe_endpoint_info is 1, once per endpoint, and the autoscaler gauges
  have exactly its endpoints, each of which also has floe_replicas;
- --expect SERIES=VALUE: the sample SERIES (name{label="value",...}, labels
  as a whole set, in any order) is present and equals VALUE;
  --min SERIES=VALUE: present and at least VALUE.

Prints one line per problem and exits 1 if there is any, 2 on bad usage or
a missing module; prints a one-line summary and exits 0 otherwise.
"""

import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("check_metrics: python3 module prometheus_client is missing "
          "(Debian: apt-get install python3-prometheus-client; scripts/deps installs it)")
    sys.exit(2)

# name in the text -> (type, labels of the plain samples; histograms add le)
REQUIRED = {
    "floe_requests_total": ("counter", {"endpoint", "code"}),
    "floe_request_duration_seconds": ("histogram", {"endpoint"}),
    "floe_cold_starts_total": ("counter", {"endpoint", "kind"}),
    "floe_cold_start_duration_seconds": ("histogram", {"endpoint", "kind"}),
    "floe_replicas": ("gauge", {"endpoint", "state"}),
    "floe_queue_depth": ("gauge", {"endpoint"}),
    "floe_endpoint_info": ("gauge", {"endpoint", "namespace", "type"}),
    "floe_autoscaler_desired_replicas": ("gauge", {"endpoint"}),
    "floe_autoscaler_actual_replicas": ("gauge", {"endpoint"}),
}
LABEL_VALUES = {
    ("floe_cold_starts_total", "kind"): {"fresh", "restore", "warm_pool"},
    ("floe_cold_start_duration_seconds", "kind"): {"fresh", "restore", "warm_pool"},
    ("floe_replicas", "state"): {"starting", "ready", "draining", "warm_pool"},
    ("floe_endpoint_info", "type"): {"public", "authenticated", "private"},
}
SERIES_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')

problems = []


def problem(msg):
    problems.append(msg)


def parse_series(text):
    """'name{a="x",b="y"}' -> (name, frozenset of (label, value))."""
    m = SERIES_RE.match(text.strip())
    if not m:
        raise ValueError("not a series: %r" % text)
    labels = {}
    body = m.group(2) or ""
    pos = 0
    while pos < len(body):
        lm = LABEL_RE.match(body, pos)
        if not lm or lm.end() == pos:
            raise ValueError("bad labels in %r" % text)
        labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                     lm.group(2))
        pos = lm.end()
    return m.group(1), frozenset(labels.items())


def family_key(fam):
    """The name the text uses: the parser drops a counter's _total."""
    if fam.type == "counter" and fam.name + "_total" in REQUIRED:
        return fam.name + "_total"
    return fam.name


def whole(v):
    return v >= 0 and not math.isinf(v) and v == int(v)


def check_raw(text):
    """What the parser forgives: a family declared twice is merged by it."""
    seen = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) != 4:
                problem("line %d: malformed TYPE line: %s" % (n, line))
                continue
            if parts[2] in seen:
                problem("line %d: family %s declared again (first at line %d)"
                        % (n, parts[2], seen[parts[2]]))
            seen[parts[2]] = n


def check_histogram(key, fam, want_labels):
    groups = {}
    for s in fam.samples:
        base = {k: v for k, v in s.labels.items() if k != "le"}
        g = groups.setdefault(frozenset(base.items()), {"buckets": [], "sum": None, "count": None})
        if s.name == key + "_bucket":
            if "le" not in s.labels:
                problem("%s: bucket without le %s" % (key, s.labels))
                continue
            g["buckets"].append((float(s.labels["le"]), s.labels["le"], s.value))
        elif s.name == key + "_sum":
            g["sum"] = s.value
        elif s.name == key + "_count":
            g["count"] = s.value
        else:
            problem("%s: unexpected sample %s" % (key, s.name))
        if set(base) != want_labels:
            problem("%s: sample %s has labels %s, want %s"
                    % (key, s.name, sorted(s.labels), sorted(want_labels)))
    counts = {}
    for labels, g in groups.items():
        where = "%s%s" % (key, dict(labels))
        b = g["buckets"]
        if not b or g["sum"] is None or g["count"] is None:
            problem("%s: needs _bucket, _sum and _count" % where)
            continue
        les = [x[0] for x in b]
        if les != sorted(les) or len(set(les)) != len(les):
            problem("%s: bucket bounds not increasing: %s" % (where, [x[1] for x in b]))
        if not math.isinf(les[-1]):
            problem("%s: last bucket is le=%s, want +Inf" % (where, b[-1][1]))
        vals = [x[2] for x in b]
        if any(not whole(v) for v in vals) or vals != sorted(vals):
            problem("%s: bucket counts not cumulative whole numbers: %s" % (where, vals))
        if vals[-1] != g["count"]:
            problem("%s: +Inf bucket %g != _count %g" % (where, vals[-1], g["count"]))
        if not whole(g["count"]):
            problem("%s: _count %g" % (where, g["count"]))
        if g["sum"] < 0 or math.isnan(g["sum"]):
            problem("%s: _sum %g" % (where, g["sum"]))
        counts[labels] = g["count"]
    return counts


def check_plain(key, fam, want_labels):
    values = {}
    for s in fam.samples:
        if s.name != key:
            problem("%s: unexpected sample %s%s" % (key, s.name, s.labels))
            continue
        if set(s.labels) != want_labels:
            problem("%s: sample has labels %s, want %s"
                    % (key, sorted(s.labels), sorted(want_labels)))
            continue
        for label in want_labels:
            allowed = LABEL_VALUES.get((key, label))
            if allowed is not None and s.labels[label] not in allowed:
                problem("%s: %s=%r, want one of %s"
                        % (key, label, s.labels[label], sorted(allowed)))
        if key == "floe_requests_total" and not re.fullmatch(r"[1-5][0-9][0-9]", s.labels["code"]):
            problem("%s: code=%r is not an HTTP status" % (key, s.labels["code"]))
        if not whole(s.value):
            problem("%s%s: value %g is not a whole non-negative number" % (key, s.labels, s.value))
        values[frozenset(s.labels.items())] = s.value
    return values


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2])
        return 2
    path, rest = argv[1], argv[2:]
    expects = []
    i = 0
    while i < len(rest):
        if rest[i] not in ("--expect", "--min") or i + 1 >= len(rest) or "=" not in rest[i + 1]:
            print("check_metrics: bad argument %r" % rest[i])
            return 2
        series, _, value = rest[i + 1].rpartition("=")
        try:
            expects.append((rest[i], parse_series(series), series, float(value)))
        except ValueError as e:
            print("check_metrics: %s" % e)
            return 2
        i += 2

    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    check_raw(text)
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        print("check_metrics: the Prometheus parser rejects the text: %r" % e)
        return 1

    by_key = {}
    samples = {}
    for fam in families:
        key = family_key(fam)
        if fam.type == "unknown":
            problem("%s: untyped family (a sample outside its declared family?)" % key)
        if key in by_key:
            problem("%s: family appears twice" % key)
        by_key[key] = fam
        for s in fam.samples:
            sk = (s.name, frozenset(s.labels.items()))
            if sk in samples:
                problem("%s%s: sample appears twice" % (s.name, s.labels))
            samples[sk] = s.value

    found = {}
    for key, (typ, labels) in REQUIRED.items():
        fam = by_key.get(key)
        if fam is None:
            problem("%s: family missing" % key)
            continue
        if fam.type != typ:
            problem("%s: type %s, want %s" % (key, fam.type, typ))
            continue
        if typ == "histogram":
            found[key] = check_histogram(key, fam, labels)
        else:
            found[key] = check_plain(key, fam, labels)

    def per(values, label_names):
        out = {}
        for labels, v in values.items():
            d = dict(labels)
            k = tuple(d.get(n) for n in label_names)
            out[k] = out.get(k, 0) + v
        return out

    if "floe_requests_total" in found and "floe_request_duration_seconds" in found:
        by_code = per(found["floe_requests_total"], ["endpoint"])
        durations = per(found["floe_request_duration_seconds"], ["endpoint"])
        for ep in sorted(set(by_code) | set(durations), key=str):
            if by_code.get(ep, 0) != durations.get(ep, 0):
                problem("endpoint %r: floe_requests_total adds up to %g, "
                        "floe_request_duration_seconds_count is %g"
                        % (ep[0], by_code.get(ep, 0), durations.get(ep, 0)))
    if "floe_cold_starts_total" in found and "floe_cold_start_duration_seconds" in found:
        starts = per(found["floe_cold_starts_total"], ["endpoint", "kind"])
        durations = per(found["floe_cold_start_duration_seconds"], ["endpoint", "kind"])
        for k in sorted(set(starts) | set(durations), key=str):
            if starts.get(k, 0) != durations.get(k, 0):
                problem("endpoint %r kind %r: floe_cold_starts_total %g, "
                        "floe_cold_start_duration_seconds_count %g"
                        % (k[0], k[1], starts.get(k, 0), durations.get(k, 0)))
    if "floe_replicas" in found:
        states = {}
        for labels in found["floe_replicas"]:
            d = dict(labels)
            states.setdefault(d["endpoint"], []).append(d["state"])
        for ep, st in sorted(states.items()):
            if sorted(st) != ["draining", "ready", "starting", "warm_pool"]:
                problem("floe_replicas{endpoint=%r}: states %s, want starting, ready, draining, "
                        "warm_pool"
                        % (ep, sorted(st)))
        if "floe_queue_depth" in found:
            queued = {dict(k)["endpoint"] for k in found["floe_queue_depth"]}
            if queued != set(states):
                problem("floe_queue_depth has endpoints %s, floe_replicas %s"
                        % (sorted(queued), sorted(states)))

    if "floe_endpoint_info" in found:
        info = {}
        for labels, v in found["floe_endpoint_info"].items():
            d = dict(labels)
            if v != 1:
                problem("floe_endpoint_info%s is %g, want 1" % (d, v))
            if not d["namespace"]:
                problem("floe_endpoint_info%s: empty namespace" % d)
            if d["endpoint"] in info:
                problem("floe_endpoint_info: endpoint %r twice (%s and %s)"
                        % (d["endpoint"], info[d["endpoint"]], d))
            info[d["endpoint"]] = d
        for key in ("floe_autoscaler_desired_replicas", "floe_autoscaler_actual_replicas"):
            if key in found:
                eps = {dict(k)["endpoint"] for k in found[key]}
                if eps != set(info):
                    problem("%s has endpoints %s, floe_endpoint_info %s"
                            % (key, sorted(eps), sorted(info)))
        if "floe_replicas" in found:
            with_replicas = {dict(k)["endpoint"] for k in found["floe_replicas"]}
            for ep in sorted(set(info) - with_replicas):
                problem("endpoint %r has floe_endpoint_info but no floe_replicas" % ep)

    for how, (name, labels), text_series, want in expects:
        got = samples.get((name, labels))
        if got is None:
            problem("%s: absent (want %s %g)" % (text_series, "=" if how == "--expect" else ">=", want))
        elif how == "--expect" and got != want:
            problem("%s is %g, want %g" % (text_series, got, want))
        elif how == "--min" and not got >= want:
            problem("%s is %g, want at least %g" % (text_series, got, want))

    for p in problems:
        print("check_metrics: " + p)
    if problems:
        return 1
    print("check_metrics: ok: %d families, %d samples, %d expectations"
          % (len(families), len(samples), len(expects)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
