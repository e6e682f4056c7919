#!/usr/bin/env python3
"""Prepares the Flask side of scripts/bench-serve.sh: a trained LightFM model and a request sample.

    .venv-lightfm/bin/python scripts/serve_bench_prepare.py --data DIR [--out-dir DIR] [--force]

Writes, into --out-dir (default $HOME/.cache/recsys/serve-bench):

* ``lightfm.pkl`` -- a pickled dict: ``model`` (LightFM 1.17), ``user_id_map`` /
  ``item_id_map`` (id string -> index, from ``lightfm.data.Dataset``), ``item_ids``
  (index -> id string), ``user_features`` / ``item_features`` (CSR float32),
  ``popular`` (item indices, most train interactions first) and ``meta``.
  The model is variant c of scripts/compare-lightfm.sh: WARP, 30 components, learning
  rate 0.05, 10 epochs, seed 42, trained on every interaction NOT in test_pairs.csv.gz,
  user id + demographics and item id + category, department, brand, manufacturer_id,
  price (5 quantile buckets), rows L1-normalised. The dataset is built with the helpers
  of scripts/lightfm_bench.py (imported, not copied), so it is the benchmarked model.
* ``requests.txt`` -- 1,000 query strings for ``/similar-products``, one per line, from a
  fixed numpy RandomState(42) draw of real (user, product) interaction pairs: about 85 %
  ``productId=P&userId=U``, 10 % with a userId that does not exist (10000000 + k, to
  exercise the similar-products-only fallback) and 5 % without userId.

Both files are kept when they exist (training takes a couple of minutes); --force redoes them.
"""

import argparse
import os
import pickle
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from lightfm import LightFM  # noqa: E402
from lightfm.data import Dataset  # noqa: E402

import lightfm_bench as lb  # noqa: E402  (dataset-building helpers of the LightFM comparison)

USER_FEATURES = "age_group,income,home_ownership,marital_status,household_size,household_comp,kids_count"
ITEM_FEATURES = "category,department,brand,manufacturer_id,price"
QUANTILES = 5
PARAMS = dict(no_components=30, learning_rate=0.05, loss="warp", random_state=42)
EPOCHS = 10
SAMPLE_SIZE = 1000
SAMPLE_SEED = 42
UNKNOWN_USER_FRACTION = 0.10
MISSING_USER_FRACTION = 0.05
UNKNOWN_USER_BASE = 10_000_000


def build(data):
    """The variant-c dataset, exactly as lightfm_bench.main() builds it."""
    users = lb.read_csv(os.path.join(data, "users.csv"))
    products = lb.read_csv(os.path.join(data, "products.csv"))
    inter = lb.dedupe(lb.read_pairs(os.path.join(data, "user_product_interactions.csv.gz")))
    test = lb.dedupe(lb.read_pairs(os.path.join(data, "test_pairs.csv.gz")))
    test_set = set(test)
    train = [p for p in inter if p not in test_set]
    user_ids = lb.dedupe([r["user_id"] for r in users] + [u for u, _ in inter] + [u for u, _ in test])
    item_ids = lb.dedupe([r["product_id"] for r in products] + [i for _, i in inter] + [i for _, i in test])
    ucols, icols = lb.split_cols(USER_FEATURES), lb.split_cols(ITEM_FEATURES)
    uvocab, urows = lb.row_features(users, "user_id", ucols, set(), QUANTILES)
    ivocab, irows = lb.row_features(products, "product_id", icols, {"price"}, QUANTILES)
    ds = Dataset(user_identity_features=True, item_identity_features=True)
    ds.fit(users=user_ids, items=item_ids, user_features=uvocab, item_features=ivocab)
    train_m, _ = ds.build_interactions(train)
    train_m = sp.coo_matrix(train_m, dtype=np.float32)
    train_m.data[:] = 1.0
    uf = lb.l1_normalise(ds.build_user_features(urows, normalize=False))
    itf = lb.l1_normalise(ds.build_item_features(irows, normalize=False))
    return ds, train_m, uf, itf, inter


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="the Complete Journey folder (recsys CSV schema)")
    ap.add_argument("--out-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "recsys", "serve-bench"))
    ap.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    ap.add_argument("--force", action="store_true", help="retrain and redraw even if the files exist")
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, "lightfm.pkl")
    sample_path = os.path.join(args.out_dir, "requests.txt")
    if not args.force and os.path.exists(model_path) and os.path.exists(sample_path):
        lb.log(f"prepare: {model_path} and {sample_path} exist (--force to redo)")
        return

    t0 = time.perf_counter()
    ds, train_m, uf, itf, inter = build(args.data)
    uid_map, _, iid_map, _ = ds.mapping()
    lb.log(f"prepare: dataset in {time.perf_counter() - t0:.1f}s: {len(uid_map)} users, "
           f"{len(iid_map)} items, {train_m.nnz} train pairs; features {uf.shape} / {itf.shape}")

    model = LightFM(**PARAMS)
    t = time.perf_counter()
    for e in range(EPOCHS):
        model.fit_partial(train_m, user_features=uf, item_features=itf, epochs=1, num_threads=args.threads)
        lb.log(f"  epoch {e + 1}/{EPOCHS}")
    train_seconds = time.perf_counter() - t

    item_ids = [None] * len(iid_map)
    for k, v in iid_map.items():
        item_ids[v] = k
    counts = np.bincount(train_m.col, minlength=len(iid_map))
    popular = np.argsort(-counts, kind="stable")[:1000].astype(np.int64)

    bundle = {
        "model": model,
        "user_id_map": dict(uid_map),
        "item_id_map": dict(iid_map),
        "item_ids": item_ids,
        "user_features": uf,
        "item_features": itf,
        "popular": popular,
        "meta": {"params": PARAMS, "epochs": EPOCHS, "user_features": USER_FEATURES,
                 "item_features": ITEM_FEATURES, "quantiles": QUANTILES, "data": os.path.abspath(args.data),
                 "train_seconds": round(train_seconds, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    tmp = model_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(bundle, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, model_path)
    lb.log(f"prepare: trained in {train_seconds:.1f}s, wrote {model_path} "
           f"({os.path.getsize(model_path) / 1e6:.1f} MB)")

    rng = np.random.RandomState(SAMPLE_SEED)
    picks = rng.choice(len(inter), size=SAMPLE_SIZE, replace=False)
    kinds = rng.random_sample(SAMPLE_SIZE)
    lines = []
    for k, (j, r) in enumerate(zip(picks, kinds)):
        user, product = inter[int(j)]
        if r < MISSING_USER_FRACTION:
            lines.append(f"productId={product}")
        elif r < MISSING_USER_FRACTION + UNKNOWN_USER_FRACTION:
            lines.append(f"productId={product}&userId={UNKNOWN_USER_BASE + k}")
        else:
            lines.append(f"productId={product}&userId={user}")
    tmp = sample_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, sample_path)
    lb.log(f"prepare: wrote {len(lines)} requests to {sample_path}")


if __name__ == "__main__":
    main()
