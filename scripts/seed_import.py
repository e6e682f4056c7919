#!/usr/bin/env python3
"""What the seed system did to load its data, timed for comparison with `examples/import.rs`.

pandas.read_csv of the three files + pymongo insert_many into a fresh database, with no
validation, no indexes and no upserts (so running it twice duplicates every row, ids keep
whatever dtype pandas guessed, and NaN prices are stored as NaN) -- the seed's pitfalls.

    scripts/bench_venv.sh                      # creates .venv-bench with pandas + pymongo
    .venv-bench/bin/python scripts/seed_import.py DIR [--uri URI] [--database NAME] [--rust-seconds S]

Prints rows, seconds, rows/s and peak memory; with --rust-seconds, the ratio to the Rust import.
"""
import argparse
import os
import resource
import sys
import time

import pandas as pd
import pymongo

FILES = [
    ("users", "users.csv"),
    ("products", "products.csv"),
    ("user_product_interactions", "user_product_interactions.csv"),
]


def find(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    sys.exit(f"{name}(.gz) not found in {directory}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--database", default="seed_bench")
    parser.add_argument("--keep-nan", action="store_true",
                        help="store pandas NaN as the seed did (FerretDB rejects it)")
    parser.add_argument("--rust-seconds", type=float, help="the Rust import's total seconds, for the ratio")
    args = parser.parse_args()
    if not args.uri:
        sys.exit("no MongoDB URI: pass --uri or set MONGODB_URI (scripts/db.sh start prints one)")

    client = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=5000)
    client.admin.command("ping")
    client.drop_database(args.database)
    db = client[args.database]

    total_rows = 0
    start = time.perf_counter()
    for collection, name in FILES:
        t = time.perf_counter()
        frame = pd.read_csv(find(args.dir, name))
        if not args.keep_nan:
            # The seed stored pandas' NaN for empty cells; FerretDB refuses NaN outright
            # ("NaN is not supported"), so by default empty cells become nulls.
            frame = frame.astype(object).where(frame.notna(), None)
        records = frame.to_dict("records")
        db[collection].insert_many(records)
        total_rows += len(records)
        seconds = time.perf_counter() - t
        print(f"{collection:<27} {len(records):>9} rows {seconds:8.2f}s {len(records) / seconds:10.0f} rows/s")
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"seed-style import: {total_rows} rows in {seconds:.2f}s ({total_rows / seconds:.0f} rows/s), "
          f"peak memory {peak_mib:.1f} MiB")
    if args.rust_seconds:
        print(f"ratio (Rust import time / seed import time): {args.rust_seconds / seconds:.2f}")
    client.drop_database(args.database)


if __name__ == "__main__":
    main()
