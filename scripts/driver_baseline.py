"""Raw-driver baselines for the import and the load (run by scripts/bench-driver.sh).

  insert  copies the documents `import` wrote into --source (read once, untimed, exactly as
          stored: same _id keys, fields and types) into --target with pymongo: the target is
          dropped, the source's indexes are created on it, then each collection is written
          with unordered insert_many in batches of --batch; rows/s per collection and overall
  read    reads the three collections of --database back with the projections MongoSource
          uses (users and products without _id; interactions user_id, product_id,
          interaction_type, weight, timestamp), cursor batches of --batch; rows/s

Every mode prints one JSON line.
"""

import argparse
import json
import time

COLLECTIONS = ["users", "products", "user_product_interactions"]
PROJECTIONS = {
    "users": {"_id": 0},
    "products": {"_id": 0},
    "user_product_interactions": {
        "_id": 0,
        "user_id": 1,
        "product_id": 1,
        "interaction_type": 1,
        "weight": 1,
        "timestamp": 1,
    },
}


def client(uri):
    import pymongo

    return pymongo.MongoClient(uri, tz_aware=True)


def insert(args):
    from pymongo import IndexModel

    c = client(args.uri)
    source, target = c[args.source], c[args.target]
    c.drop_database(args.target)
    result = {"mode": "insert", "batch": args.batch, "collections": {}}
    total_rows, total_seconds = 0, 0.0
    for name in COLLECTIONS:
        docs = list(source[name].find({}))
        indexes = [
            IndexModel(list(spec["key"].items()), unique=bool(spec.get("unique", False)))
            for spec in source[name].list_indexes()
            if spec["name"] != "_id_"
        ]
        target.create_collection(name)
        if indexes:
            target[name].create_indexes(indexes)
        started = time.perf_counter()
        for i in range(0, len(docs), args.batch):
            target[name].insert_many(docs[i : i + args.batch], ordered=False)
        seconds = time.perf_counter() - started
        result["collections"][name] = {
            "rows": len(docs),
            "seconds": round(seconds, 3),
            "rows_per_second": round(len(docs) / seconds) if seconds else None,
            "indexes": [list(m.document["key"].keys()) for m in indexes],
        }
        total_rows += len(docs)
        total_seconds += seconds
    result["rows"] = total_rows
    result["seconds"] = round(total_seconds, 3)
    result["rows_per_second"] = round(total_rows / total_seconds)
    if args.drop:
        c.drop_database(args.target)
    print(json.dumps(result))


def read(args):
    db = client(args.uri)[args.database]
    result = {"mode": "read", "batch": args.batch, "collections": {}}
    started_all = time.perf_counter()
    total = 0
    for name in COLLECTIONS:
        started = time.perf_counter()
        n = 0
        for _ in db[name].find({}, PROJECTIONS[name], batch_size=args.batch):
            n += 1
        seconds = time.perf_counter() - started
        result["collections"][name] = {
            "rows": n,
            "seconds": round(seconds, 3),
            "rows_per_second": round(n / seconds) if seconds else None,
        }
        total += n
    seconds = time.perf_counter() - started_all
    result["rows"] = total
    result["seconds"] = round(seconds, 3)
    result["rows_per_second"] = round(total / seconds)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["insert", "read"])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--source", help="insert: the database `import` wrote")
    parser.add_argument("--target", help="insert: the database to write (dropped first)")
    parser.add_argument("--database", help="read: the database to read")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--drop", action="store_true", help="insert: drop --target afterwards")
    args = parser.parse_args()
    if args.mode == "insert":
        if not (args.source and args.target):
            parser.error("insert needs --source and --target")
        insert(args)
    else:
        if not args.database:
            parser.error("read needs --database")
        read(args)


if __name__ == "__main__":
    main()
