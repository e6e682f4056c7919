#!/usr/bin/env python3
"""Make a validation data set from a recsys CSV data set, for tuning without the test pairs.

usage: scripts/validation_split.py DATA OUT [--fraction 0.2] [--seed 7]

OUT gets users.csv and products.csv (symbolic links to DATA's), the interactions of DATA
minus its test pairs (user_product_interactions.csv.gz: the training data of the real
protocol) and test_pairs.csv.gz: a seeded random FRACTION of those training pairs
(distinct user_id,product_id pairs, sorted, each kept with probability FRACTION by
Python's random.Random(SEED)). `evaluate --data OUT` then trains on the rest of the
training pairs and evaluates on the validation pairs; the real test pairs are never seen.
"""

import argparse
import csv
import gzip
import os
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in ("users.csv", "products.csv"):
        link = os.path.join(args.out, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(os.path.join(args.data, name)), link)
    with gzip.open(os.path.join(args.data, "test_pairs.csv.gz"), "rt", newline="") as f:
        test = {(r["user_id"], r["product_id"]) for r in csv.DictReader(f)}
    with gzip.open(os.path.join(args.data, "user_product_interactions.csv.gz"), "rt", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if (r["user_id"], r["product_id"]) not in test]
    with gzip.open(os.path.join(args.out, "user_product_interactions.csv.gz"), "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    pairs = sorted({(r["user_id"], r["product_id"]) for r in rows})
    rng = random.Random(args.seed)
    held = [p for p in pairs if rng.random() < args.fraction]
    with gzip.open(os.path.join(args.out, "test_pairs.csv.gz"), "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "product_id"])
        w.writerows(held)
    print(f"{len(rows)} training interactions, {len(pairs)} pairs, {len(held)} held out for validation")


if __name__ == "__main__":
    main()
