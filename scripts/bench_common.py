"""Helpers shared by the comparison scripts (scripts/lightfm_bench.py,
scripts/implicit_bench.py, scripts/compare-*.sh): reading the recsys CSV schema, progress
on stderr, and picking a tool's JSON result out of its captured stdout.

Standard library only, so it can be imported before numpy (the scripts set
OPENBLAS_NUM_THREADS first) and by any interpreter.
"""

import csv
import gzip
import json
import sys


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return open(path, newline="", encoding="utf-8")


def read_csv(path):
    with open_text(path) as f:
        return list(csv.DictReader(f))


def read_pairs(path, strip=False):
    """The (user_id, product_id) pairs of a CSV file, in file order (ids stripped of
    surrounding white space with ``strip``)."""
    with open_text(path) as f:
        reader = csv.DictReader(f)
        if strip:
            return [(r["user_id"].strip(), r["product_id"].strip()) for r in reader]
        return [(r["user_id"], r["product_id"]) for r in reader]


def dedupe(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def last_json(path):
    """The last line of the file at ``path`` that parses as a JSON object, or None (also
    when the file cannot be read)."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def available(r):
    """Whether a results-file record holds a measurement (not an "unavailable" record)."""
    return r is not None and r.get("available", True) and "precision_at_10" in r


def fmt(x, d=4):
    """A table cell: ``x`` with ``d`` decimals, or a dash for a missing value."""
    return "—" if x is None else f"{x:.{d}f}"
