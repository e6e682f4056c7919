#!/usr/bin/env python3
"""Request files for the live-events load test on Complete Journey (docs/benchmarks.md,
"Live events"): known.txt (1,000 productId/userId query strings of known users),
mixed.txt (the same with every fourth request from a new visitor) and events.json
(5 view events per visitor, one JSON array per visitor for POST /events).

usage: scripts/events_cj_requests.py [DATA_DIR] [OUT_DIR]
"""
import csv
import json
import os
import random
import sys

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/completejourney-seed"
out = sys.argv[2] if len(sys.argv) > 2 else "target/bench-events-cj"
os.makedirs(out, exist_ok=True)
with open(os.path.join(data, "users.csv"), newline="") as f:
    users = [r["user_id"] for r in csv.DictReader(f)]
with open(os.path.join(data, "products.csv"), newline="") as f:
    products = [r["product_id"] for r in csv.DictReader(f)]
rng = random.Random(7)
known = [f"productId={rng.choice(products)}&userId={rng.choice(users)}" for _ in range(1000)]
mixed, events = [], []
for i in range(1000):
    if i % 4 == 3:
        visitor = f"visitor-{i}"
        mixed.append(f"productId={rng.choice(products)}&userId={visitor}")
        events.append([
            {"user_id": visitor, "product_id": int(rng.choice(products)),
             "interaction_type": "view", "event_id": f"{visitor}-{j}"}
            for j in range(5)
        ])
    else:
        mixed.append(known[i])
with open(os.path.join(out, "known.txt"), "w") as f:
    f.write("\n".join(known) + "\n")
with open(os.path.join(out, "mixed.txt"), "w") as f:
    f.write("\n".join(mixed) + "\n")
with open(os.path.join(out, "events.json"), "w") as f:
    json.dump(events, f)
print(f"{out}: {len(known)} known, {len(mixed)} mixed requests, {len(events)} visitors")
