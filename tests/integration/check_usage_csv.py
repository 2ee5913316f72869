#!/usr/bin/python3
"""Parse a floe usage CSV with Python's csv module and sum it up.

usage: check_usage_csv.py FILE

Checks what any consumer of the file may rely on (docs/billing.md):
- RFC 4180 as Python's csv module reads it, CRLF line ends, the documented
  header row, every row with every column;
- periods are half-open UTC intervals written YYYY-MM-DDTHH:MM:SSZ, start
  before end, whole minutes;
- seconds and billable_seconds have exactly 3 decimals, unit_price_per_hour
  and cost exactly 6, gpus and requests are whole numbers;
- on rows of one minute, cost is billable_seconds x unit_price_per_hour /
  3600 rounded half up to 6 decimals (exact decimal arithmetic);
- rows are sorted by period_start and no (period, group) key repeats.

Prints a JSON summary: {"rows", "total": {...}, "replicas": {REPLICA: {...}},
"endpoints": {ENDPOINT: {...}}} where each {...} has "ms", "billable_ms",
"cost_micro", "requests", "periods" (distinct period starts, sorted),
"states" ({STATE: ms}). Exits 1 with one line per problem.
"""

import csv
import datetime
import decimal
import json
import re
import sys

HEADER = ["period_start", "period_end", "namespace", "endpoint", "replica", "instance_type",
          "gpus", "state", "seconds", "billable_seconds", "requests", "unit_price_per_hour",
          "cost", "currency"]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MS3 = re.compile(r"^\d+\.\d{3}$")
MICRO6 = re.compile(r"^\d+\.\d{6}$")


def parse_stamp(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def to_units(text, places):
    """'12.345' -> 12345 (exactly)."""
    whole, frac = text.split(".")
    assert len(frac) == places
    return int(whole) * 10 ** places + int(frac)


def new_sum():
    return {"ms": 0, "billable_ms": 0, "cost_micro": 0, "requests": 0, "periods": set(),
            "states": {}}


def add(acc, row, ms, billable, cost):
    acc["ms"] += ms
    acc["billable_ms"] += billable
    acc["cost_micro"] += cost
    acc["requests"] += int(row["requests"])
    acc["periods"].add(row["period_start"])
    acc["states"][row["state"]] = acc["states"].get(row["state"], 0) + ms


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    raw = open(sys.argv[1], "rb").read()
    problems = []
    if raw and not raw.endswith(b"\r\n"):
        problems.append("the file does not end in CRLF")
    if b"\n" in raw.replace(b"\r\n", b""):
        problems.append("a line ends in a bare LF")
    rows = list(csv.reader(raw.decode("utf-8").splitlines(), strict=True))
    if not rows or rows[0] != HEADER:
        print("bad header row: %r" % (rows[0] if rows else None))
        return 1
    total = new_sum()
    replicas, endpoints = {}, {}
    keys = set()
    last_start = ""
    for n, values in enumerate(rows[1:], start=2):
        if len(values) != len(HEADER):
            problems.append("line %d: %d columns" % (n, len(values)))
            continue
        row = dict(zip(HEADER, values))
        for col in ("period_start", "period_end"):
            if not STAMP.match(row[col]):
                problems.append("line %d: %s %r" % (n, col, row[col]))
        if problems:
            continue
        start, end = parse_stamp(row["period_start"]), parse_stamp(row["period_end"])
        if not start < end or start.second or end.second:
            problems.append("line %d: period %s..%s" % (n, row["period_start"],
                                                         row["period_end"]))
        if row["period_start"] < last_start:
            problems.append("line %d: not sorted by period_start" % n)
        last_start = row["period_start"]
        for col, pat in (("seconds", MS3), ("billable_seconds", MS3),
                         ("unit_price_per_hour", MICRO6), ("cost", MICRO6)):
            if not pat.match(row[col]):
                problems.append("line %d: %s %r" % (n, col, row[col]))
        if not row["gpus"].isdigit() or not row["requests"].isdigit():
            problems.append("line %d: gpus/requests not whole numbers" % n)
        if problems:
            continue
        key = tuple(row[c] for c in HEADER[:8]) + (row["unit_price_per_hour"], row["currency"])
        if key in keys:
            problems.append("line %d: repeats the key of an earlier row" % n)
        keys.add(key)
        ms, billable = to_units(row["seconds"], 3), to_units(row["billable_seconds"], 3)
        price, cost = to_units(row["unit_price_per_hour"], 6), to_units(row["cost"], 6)
        if (end - start).total_seconds() == 60:
            want = (decimal.Decimal(billable) * price / 3600000).quantize(
                decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP)
            if want != cost:
                problems.append("line %d: cost %s, want %s micro" % (n, cost, want))
        add(total, row, ms, billable, cost)
        add(replicas.setdefault(row["replica"], new_sum()), row, ms, billable, cost)
        add(endpoints.setdefault(row["endpoint"], new_sum()), row, ms, billable, cost)
    if problems:
        print("\n".join(problems))
        return 1

    def out(acc):
        return dict(acc, periods=sorted(acc["periods"]))

    print(json.dumps({"rows": len(rows) - 1, "total": out(total),
                      "replicas": {k: out(v) for k, v in replicas.items()},
                      "endpoints": {k: out(v) for k, v in endpoints.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
