"""Live-event benchmarks for docs/benchmarks.md (run by scripts/bench-events.sh).

  prepare   drop --database and create the import's two interaction indexes (so the
            server writes into the same empty, indexed collection as the baseline)
  baseline  pymongo straight into the database: the writes POST /events makes (unordered
            insert_many of each batch into user_product_interactions, one recent_events
            document per batch with the pairs as one JSON string), with the same document
            shapes and indexes
  ingest    POST /events to a running server, batches of --batch unique events from
            --threads client threads; events/s, request latency, the server's CPU
  visible   event -> visible: on the replica that took it (post, then one GET) and on
            another replica (post to A, poll B every 5 ms until the strategy header says
            recent-activity)
  populate  live state for a load test: --users new users with 5 events each (ids live-N)
            and known users 1..1200 of the demo shop with 3 events each
  foldin    GET /recommendations for users unknown to the model with 5 live events each
            (1 client thread): latency percentiles

Every mode prints one JSON line.
"""

import argparse
import datetime
import http.client
import json
import os
import statistics
import threading
import time
import uuid


def percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[k]


def summary(ms):
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "n": len(ms),
    }


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Client:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def request(self, method, path, body=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, response.getheader("x-recsys-strategy"), data


def events(prefix, n, user=None):
    return [
        {
            "user_id": user if user is not None else f"{prefix}-u{i % 997}",
            "product_id": 10000 + (i * 7) % 600,
            "interaction_type": "view",
            "event_id": f"{prefix}-{i}",
        }
        for i in range(n)
    ]


def prepare(args):
    import pymongo

    client = pymongo.MongoClient(args.uri)
    client.drop_database(args.database)
    db = client[args.database]
    interactions = db["user_product_interactions"]
    interactions.create_index([("product_id", 1)])
    interactions.create_index([("user_id", 1), ("product_id", 1)])
    db["recent_events"].create_index([("at_ms", 1)])
    return client, db


def baseline(args):
    import pymongo

    client, db = prepare(args)
    interactions = db["user_product_interactions"]
    recent = db["recent_events"]
    run = uuid.uuid4().hex[:8]
    now = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    for b in range(args.events // args.batch):
        docs = []
        pairs = []
        for i in range(args.batch):
            n = b * args.batch + i
            user = f"{run}-u{n % 997}"
            product = 10000 + (n * 7) % 600
            docs.append(
                {
                    "_id": f'event:["{user}","{run}-{n}"]',
                    "user_id": user,
                    "product_id": product,
                    "interaction_type": "view",
                    "timestamp": now,
                }
            )
            pairs.append([user, product])
        interactions.insert_many(docs, ordered=False)
        recent.insert_one(
            {
                "_id": f"{run}:{b}",
                "writer": run,
                "sequence": b,
                "at_ms": int(time.time() * 1000),
                # as the server stores it: the (user, product) pairs as one JSON string
                "events": json.dumps(pairs, separators=(",", ":")),
            }
        )
    seconds = time.perf_counter() - started
    client.drop_database(args.database)
    print(
        json.dumps(
            {
                "mode": "baseline",
                "driver": f"pymongo {pymongo.version}",
                "events": args.events,
                "batch": args.batch,
                "seconds": round(seconds, 3),
                "events_per_s": round(args.events / seconds, 1),
            }
        )
    )


def ingest(args):
    run = uuid.uuid4().hex[:8]
    per_thread = args.events // args.threads // args.batch
    latencies = []
    errors = []
    lock = threading.Lock()

    def work(t):
        client = Client(args.server)
        mine = []
        for b in range(per_thread):
            body = json.dumps(events(f"{run}-{t}-{b}", args.batch))
            began = time.perf_counter()
            status, _, data = client.request("POST", "/events", body)
            mine.append((time.perf_counter() - began) * 1000)
            if status != 200:
                with lock:
                    errors.append((status, data[:200]))
        with lock:
            latencies.extend(mine)

    cpu_before = cpu_seconds(args.pid) if args.pid else None
    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    sent = per_thread * args.threads * args.batch
    result = {
        "mode": "ingest",
        "events": sent,
        "batch": args.batch,
        "threads": args.threads,
        "seconds": round(seconds, 3),
        "events_per_s": round(sent / seconds, 1),
        "errors": len(errors),
        "request": summary(latencies),
    }
    if cpu_before is not None:
        result["server_cpu_cores"] = round((cpu_seconds(args.pid) - cpu_before) / seconds, 2)
    if errors:
        result["first_error"] = str(errors[0])
    print(json.dumps(result))


def visible(args):
    run = uuid.uuid4().hex[:8]
    a = Client(args.server)
    b = Client(args.other) if args.other else None
    same, other = [], []
    for i in range(args.trials):
        user = f"{run}-v{i}"
        # One event on a product the demo model knows.
        body = json.dumps([{"user_id": user, "product_id": 10118, "event_id": f"{run}-{i}"}])
        began = time.perf_counter()
        status, _, data = a.request("POST", "/events", body)
        assert status == 200, data
        _, strategy, _ = a.request("GET", f"/recommendations/{user}?n=10")
        assert strategy == "recent-activity", strategy
        same.append((time.perf_counter() - began) * 1000)
        if b is not None:
            deadline = began + 10
            while True:
                _, strategy, _ = b.request("GET", f"/recommendations/{user}?n=10")
                if strategy == "recent-activity":
                    other.append((time.perf_counter() - began) * 1000)
                    break
                assert time.perf_counter() < deadline, "not visible on the other replica in 10 s"
                time.sleep(0.005)
    result = {"mode": "visible", "same_replica_post_and_get": summary(same)}
    if other:
        result["other_replica_from_post"] = summary(other)
    print(json.dumps(result))


def foldin(args):
    run = uuid.uuid4().hex[:8]
    client = Client(args.server)
    users = [f"{run}-f{i}" for i in range(args.users)]
    for i, user in enumerate(users):
        body = json.dumps(events(f"{run}-{i}", 5, user=user))
        status, _, data = client.request("POST", "/events", body)
        assert status == 200, data
    for user in users[:20]:  # warm-up
        client.request("GET", f"/recommendations/{user}?n=10")
    latencies = []
    for r in range(args.requests):
        user = users[r % len(users)]
        began = time.perf_counter()
        status, strategy, _ = client.request("GET", f"/recommendations/{user}?n=10")
        latencies.append((time.perf_counter() - began) * 1000)
        assert status == 200 and strategy == "recent-activity", strategy
    print(json.dumps({"mode": "foldin", "events_per_user": 5, "request": summary(latencies)}))


def populate(args):
    import random

    random.seed(3)
    client = Client(args.server)
    run = uuid.uuid4().hex[:8]
    pending = []

    def flush():
        status, _, data = client.request("POST", "/events", json.dumps(pending))
        assert status == 200, data
        pending.clear()

    users = [(f"live-{u}", 5) for u in range(args.users)] + [(u, 3) for u in range(1, 1201)]
    for user, n in users:
        for j in range(n):
            pending.append({"user_id": user, "product_id": 10000 + random.randint(0, 599), "event_id": f"{run}-{user}-{j}"})
            if len(pending) == args.batch:
                flush()
    if pending:
        flush()
    print(json.dumps({"mode": "populate", "users": len(users)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["prepare", "baseline", "ingest", "visible", "foldin", "populate"])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"))
    parser.add_argument("--database", default="recsys_events_baseline")
    parser.add_argument("--server", default="127.0.0.1:8091")
    parser.add_argument("--other", help="a second replica (visible)")
    parser.add_argument("--pid", type=int, help="the server's pid, for its CPU time (ingest)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    modes = {"prepare": prepare, "baseline": baseline, "ingest": ingest, "visible": visible, "foldin": foldin, "populate": populate}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
