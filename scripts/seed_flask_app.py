#!/usr/bin/env python3
"""What the seed system served, as a minimal Flask app: the baseline of scripts/bench-serve.sh.

    GET /similar-products?productId=P&userId=U[&n=10]
      -> [{"name", "price", "image": "/image/<file>", "product_id"}, ...]   (best first)

score(item) = LightFM predict(user, every item, user/item features)
              + 0.25 * cosine(item representation, viewed product's representation),
the viewed product excluded, top n (default 10, at most 100). Missing or unknown userId:
the cosine term alone (similar products); missing or unknown productId: the model alone;
both: the most popular products (train interactions). Details come from MongoDB with one
``find({"product_id": {"$in": ids}})``; a NaN price becomes null so the JSON is valid.

Written to be a fair baseline, neither sabotaged nor tuned beyond the seed's approach:
the item representations are L2-normalised once at start-up (one row of cosines per
request, a 68,509 x 30 matrix-vector product, never the 18 GB dense N x N matrix), and
argpartition picks the top n.

Product details: SERVE_BENCH_DETAILS=mongo (the default, what the seed does) queries MongoDB
on every request. SERVE_BENCH_DETAILS=memory instead reads name/price/image of every product
from MongoDB once at start-up and serves them from a dict: not what the seed did, but on
FerretDB 1.x the per-request ``$in`` cannot use an index (it fetches and filters all 68,509
documents, seconds per request), so this variant is the one that measures the web and model
work rather than the database.

Configuration (environment):
  SERVE_BENCH_MODEL   the pickle of scripts/serve_bench_prepare.py
                      (default $HOME/.cache/recsys/serve-bench/lightfm.pkl)
  MONGODB_URI         the database (default mongodb://127.0.0.1:27017/)
  SERVE_BENCH_DB      database name (default: the URI's, else "recsys")
  SERVE_BENCH_DETAILS mongo (default) or memory, see above

Run under gunicorn, as scripts/bench-serve.sh does:
  OPENBLAS_NUM_THREADS=1 MONGODB_URI=... .venv-lightfm/bin/gunicorn -w 2 -b 127.0.0.1:8001 \
      --chdir scripts seed_flask_app:app
or ``python scripts/seed_flask_app.py [--port 8001]`` for the Flask development server.
"""

import math
import os
import pickle
import re

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pymongo  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

SIMILARITY_WEIGHT = 0.25
DEFAULT_N = 10
MAX_N = 100

MODEL_PATH = os.environ.get(
    "SERVE_BENCH_MODEL", os.path.join(os.path.expanduser("~"), ".cache", "recsys", "serve-bench", "lightfm.pkl")
)

with open(MODEL_PATH, "rb") as f:
    _bundle = pickle.load(f)
model = _bundle["model"]
user_id_map = _bundle["user_id_map"]
item_id_map = _bundle["item_id_map"]
item_ids = _bundle["item_ids"]
user_features = _bundle["user_features"]
item_features = _bundle["item_features"]
popular = _bundle["popular"]
all_items = np.arange(len(item_ids), dtype=np.int32)

_, _item_repr = model.get_item_representations(item_features)
_norms = np.linalg.norm(_item_repr, axis=1, keepdims=True)
item_unit = (_item_repr / np.where(_norms == 0, 1.0, _norms)).astype(np.float32)

_INT = re.compile(r"-?[0-9]+\Z")

DETAILS = os.environ.get("SERVE_BENCH_DETAILS", "mongo")
if DETAILS not in ("mongo", "memory"):
    raise SystemExit(f"SERVE_BENCH_DETAILS must be mongo or memory, not {DETAILS!r}")
PROJECTION = {"_id": 0, "product_id": 1, "name": 1, "price": 1, "image": 1}

app = Flask(__name__)
_collection = None


def products_collection():
    # Created on first use, i.e. in each gunicorn worker after the fork.
    global _collection
    if _collection is None:
        client = pymongo.MongoClient(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"))
        name = os.environ.get("SERVE_BENCH_DB")
        db = client[name] if name else client.get_default_database("recsys")
        _collection = db["products"]
    return _collection


def db_id(product_id):
    """The BSON value the importer stored the id as: integer ids as Int64, others as text."""
    return int(product_id) if _INT.match(product_id) else product_id


def top_n(scores, n):
    n = min(n, scores.shape[0])
    idx = np.argpartition(-scores, n - 1)[:n]
    return idx[np.argsort(-scores[idx], kind="stable")]


@app.get("/similar-products")
def similar_products():
    try:
        n = int(request.args.get("n", DEFAULT_N))
    except ValueError:
        return jsonify(error="n must be an integer"), 400
    if not 1 <= n <= MAX_N:
        return jsonify(error=f"n must be between 1 and {MAX_N}"), 400

    uidx = user_id_map.get(request.args.get("userId", ""))
    pidx = item_id_map.get(request.args.get("productId", ""))

    if uidx is None and pidx is None:
        best = popular[:n]
    else:
        if uidx is not None:
            scores = model.predict(uidx, all_items, user_features=user_features, item_features=item_features)
            if pidx is not None:
                scores = scores + SIMILARITY_WEIGHT * (item_unit @ item_unit[pidx])
        else:
            scores = item_unit @ item_unit[pidx]
        if pidx is not None:
            scores[pidx] = -np.inf
        best = top_n(scores, n)

    ids = [item_ids[i] for i in best]
    if _details_memory is not None:
        found = _details_memory
    else:
        found = {
            str(d["product_id"]): d
            for d in products_collection().find({"product_id": {"$in": [db_id(p) for p in ids]}}, PROJECTION)
        }
    out = []
    for p in ids:
        d = found.get(p)
        if d is None:
            continue
        price = d.get("price")
        if isinstance(price, float) and not math.isfinite(price):
            price = None
        image = d.get("image")
        out.append({
            "name": d.get("name"),
            "price": price,
            "image": f"/image/{image}" if image else None,
            "product_id": d["product_id"],
        })
    return jsonify(out)


_details_memory = None
if DETAILS == "memory":
    _details_memory = {str(d["product_id"]): d for d in products_collection().find({}, PROJECTION)}
    _collection = None  # a fresh client per worker (pymongo clients are not fork-safe)


@app.get("/health")
def health():
    return jsonify(ok=True, items=len(item_ids))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Flask development server for the seed baseline")
    ap.add_argument("--port", type=int, default=8001)
    app.run(host="127.0.0.1", port=ap.parse_args().port)
