#!/usr/bin/env python3
"""LightFM 1.17 side of the recsys <-> LightFM comparison harness.

Trains LightFM on the recsys CSV schema (users.csv, products.csv,
user_product_interactions.csv.gz) with a fixed held-out split (test_pairs.csv.gz),
and reports accuracy and timing.  The flags mirror ``examples/evaluate.rs``.

Data split
----------
* train = every (user_id, product_id) pair of user_product_interactions.csv.gz that is
  NOT listed in the test-pairs file; test = the test-pairs file.  Duplicate pairs are
  collapsed.  Interactions are binary: every train (and test) pair has value 1
  (the ``weight`` column is ignored).
* Evaluation uses ``lightfm.evaluation`` (precision_at_k, recall_at_k with k=10,
  auc_score) with ``train_interactions=train`` so train pairs are excluded from the
  ranking; the per-user scores are averaged over users that have >= 1 test pair
  (LightFM's ``preserve_rows=False`` default).

Id mapping (``lightfm.data.Dataset``)
-------------------------------------
* Users: every ``user_id`` of users.csv in file order, then any user id seen only in the
  interactions / test pairs (first-appearance order).  Items: likewise with
  products.csv / ``product_id``.  Ids are kept as strings.

Features
--------
* With no ``--user-features`` and no ``--item-features`` the model is pure CF: no feature
  matrices are passed to LightFM at all (LightFM then uses implicit identity matrices).
* Otherwise both feature matrices are built with ``Dataset``:
  - identity features: ``user_identity_features`` is True unless ``--no-user-identity``;
    ``item_identity_features`` is True unless ``--no-identity`` (``--no-identity`` means
    "no ITEM identity": the item side then has ONLY metadata features, users keep their
    id feature).  Dataset places identity features first (feature index == id index),
    then the metadata features.
  - A metadata feature is the string ``column:value`` with weight 1.  Empty values
    (and, for numeric columns, non-finite values) give no feature.
  - Numeric columns are bucketed into ``--quantiles`` q buckets (default 5):
      edges  = numpy.quantile(finite float values of that column over ALL rows of the
               file, [1/q, 2/q, ..., (q-1)/q])          # default linear interpolation
      bucket = numpy.searchsorted(edges, v, side='right')   # 0 .. q-1
      name   = f"{column}:q{bucket}"   e.g. price:q0 .. price:q4
    Which columns are numeric: ``--numeric-columns`` (comma list), default ``price``.
    ``--numeric-columns auto`` instead treats every listed column whose non-empty values
    all parse as float as numeric (on this data that would also bucket
    ``manufacturer_id``, which is an identifier, so it is NOT the default).
  - Feature vocabulary order (after the identity block): for each listed column in the
    order given, its distinct feature names in order of first appearance in the file.
  - Rows are L1-normalised (each non-zero = 1 / number of features of the row,
    identity feature included), i.e. ``build_*_features(normalize=True)``.  The only
    difference: a row with no feature at all (14 products have no metadata, which
    matters with ``--no-identity``) is left all-zero instead of raising, so such an item
    has a zero embedding and zero bias.
* Feature matrices are converted once to CSR float32 (LightFM's native dtype) so that
  per-epoch and per-predict timings do not include conversion.

Cold-start items (``--cold-start-items F``)
-------------------------------------------
* Item indices are the Dataset mapping order (= products.csv order, which on this data
  is ascending numeric product_id).  n_cold = int(round(F * n_items));
  ``cold = numpy.random.RandomState(42).choice(n_items, size=n_cold, replace=False)``
  (an array of item indices, in the order drawn; ``--cold-items-out FILE`` writes the
  corresponding product_ids, one per line in that order, for other implementations).
* All TRAIN pairs whose item is cold are removed before training.  Intended to be run
  with the metadata-only settings (variant d: ``--no-identity`` + item metadata).
* Evaluation is restricted to the cold items: the test matrix, the train-exclusion
  matrix and the item-feature matrix are sliced to the cold item columns/rows (in the
  drawn order), so each user's test pairs are only those on cold items and the ranking
  is among cold items only; users with no cold test pair are skipped.  These are the
  primary keys (precision_at_10, recall_at_10, auc; n_test = cold test pairs).
* Secondary protocol, same model, reported as all_pairs_precision_at_10,
  all_pairs_recall_at_10, all_pairs_auc, all_pairs_n_test: every interaction (train +
  test) on a cold item is a positive, same cold-only ranking.

Timing
------
* seconds_per_epoch: mean wall time of ``fit_partial(..., epochs=1)`` calls, one per epoch.
* eval_seconds: wall time of one full ``precision_at_k`` call (k=10).
* score_one_user_ms: ``model.predict(user 0, all item indices)`` — 5 warm-up calls, then
  the median of 50 timed calls, in milliseconds.

With ``--json`` one JSON object is printed on stdout (progress goes to stderr).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from lightfm import LightFM  # noqa: E402
from lightfm.data import Dataset  # noqa: E402
from lightfm.evaluation import auc_score, precision_at_k, recall_at_k  # noqa: E402

from bench_common import dedupe, log, read_csv, read_pairs  # noqa: E402

COLD_START_SEED = 42


def split_cols(s):
    if not s:
        return []
    return [c.strip() for c in s.split(",") if c.strip()]


def parse_float(v):
    try:
        return float(v)
    except ValueError:
        return None


def column_is_numeric(rows, col):
    vals = [r.get(col, "") for r in rows]
    vals = [v for v in vals if v != ""]
    return bool(vals) and all(parse_float(v) is not None for v in vals)


def row_features(rows, id_col, cols, numeric_cols, q):
    """Return (vocabulary list, [(id, [feature names])]) for the given columns."""
    missing = [c for c in cols if rows and c not in rows[0]]
    if missing:
        raise SystemExit(f"unknown column(s) {missing} (have {list(rows[0].keys())})")
    vocab, seen = [], set()
    per_row = [[] for _ in rows]

    def add(i, name):
        per_row[i].append(name)
        if name not in seen:
            seen.add(name)
            vocab.append(name)

    for col in cols:
        if col in numeric_cols:
            vals = np.array(
                [parse_float(r[col]) if r[col] != "" else np.nan for r in rows], dtype=np.float64
            )
            finite = vals[np.isfinite(vals)]
            if finite.size == 0:
                continue
            edges = np.quantile(finite, [i / q for i in range(1, q)])
            log(f"  {col}: numeric, {q} quantile buckets, edges={edges.tolist()}")
            for i, v in enumerate(vals):
                if not np.isfinite(v):
                    continue
                add(i, f"{col}:q{int(np.searchsorted(edges, v, side='right'))}")
        else:
            for i, r in enumerate(rows):
                v = r[col]
                if v == "":
                    continue
                add(i, f"{col}:{v}")
    return vocab, [(r[id_col], f) for r, f in zip(rows, per_row)]


def l1_normalise(m):
    m = sp.csr_matrix(m, dtype=np.float32)
    sums = np.asarray(m.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    m = sp.diags(scale.astype(np.float32)) @ m
    return sp.csr_matrix(m, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dir with users.csv, products.csv, user_product_interactions.csv.gz")
    ap.add_argument("--test-pairs", default=None, help="default: DATA/test_pairs.csv.gz")
    ap.add_argument("--loss", default="warp", choices=["warp", "bpr", "logistic", "warp-kos"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--components", type=int, default=30)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--user-features", default="", help="comma-separated users.csv columns")
    ap.add_argument("--item-features", default="", help="comma-separated products.csv columns")
    ap.add_argument("--no-identity", action="store_true", help="no ITEM identity features")
    ap.add_argument("--no-user-identity", action="store_true", help="no USER identity features")
    ap.add_argument("--quantiles", type=int, default=5)
    ap.add_argument("--numeric-columns", default="price",
                    help="comma list of columns to bucket by quantile, or 'auto' (default: price)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--score-runs", type=int, default=50)
    ap.add_argument("--cold-start-items", type=float, default=None, metavar="FRACTION")
    ap.add_argument("--cold-items-out", default=None, help="write the cold product_ids here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    data = args.data
    test_path = args.test_pairs or os.path.join(data, "test_pairs.csv.gz")
    for p in ["users.csv", "products.csv", "user_product_interactions.csv.gz"]:
        if not os.path.exists(os.path.join(data, p)):
            raise SystemExit(f"missing {os.path.join(data, p)}")
    if not os.path.exists(test_path):
        raise SystemExit(f"missing {test_path}")

    t0 = time.perf_counter()
    users = read_csv(os.path.join(data, "users.csv"))
    products = read_csv(os.path.join(data, "products.csv"))
    inter = dedupe(read_pairs(os.path.join(data, "user_product_interactions.csv.gz")))
    test = dedupe(read_pairs(test_path))
    test_set = set(test)
    train = [p for p in inter if p not in test_set]

    user_ids = dedupe([r["user_id"] for r in users] + [u for u, _ in inter] + [u for u, _ in test])
    item_ids = dedupe([r["product_id"] for r in products] + [i for _, i in inter] + [i for _, i in test])

    ucols, icols = split_cols(args.user_features), split_cols(args.item_features)
    use_features = bool(ucols or icols or args.no_identity or args.no_user_identity)
    if args.no_identity and not icols:
        raise SystemExit("--no-identity needs --item-features (items would have no features)")
    if args.no_user_identity and not ucols:
        raise SystemExit("--no-user-identity needs --user-features")

    def numeric_set(rows, cols):
        if args.numeric_columns.strip() == "auto":
            return {c for c in cols if column_is_numeric(rows, c)}
        return set(split_cols(args.numeric_columns)) & set(cols)

    uvocab, urows = row_features(users, "user_id", ucols, numeric_set(users, ucols), args.quantiles)
    ivocab, irows = row_features(products, "product_id", icols, numeric_set(products, icols), args.quantiles)

    ds = Dataset(
        user_identity_features=not args.no_user_identity,
        item_identity_features=not args.no_identity,
    )
    ds.fit(users=user_ids, items=item_ids, user_features=uvocab, item_features=ivocab)
    uid_map, _, iid_map, _ = ds.mapping()
    n_users, n_items = len(uid_map), len(iid_map)

    cold_idx = None
    if args.cold_start_items is not None:
        n_cold = int(round(args.cold_start_items * n_items))
        cold_idx = np.random.RandomState(COLD_START_SEED).choice(n_items, size=n_cold, replace=False)
        if args.cold_items_out:
            inv = {v: k for k, v in iid_map.items()}
            with open(args.cold_items_out, "w") as f:
                for j in cold_idx:
                    f.write(f"{inv[int(j)]}\n")
        cold_mask = np.zeros(n_items, dtype=bool)
        cold_mask[cold_idx] = True
        cold_all = [(u, i) for (u, i) in inter if cold_mask[iid_map[i]]]
        train = [(u, i) for (u, i) in train if not cold_mask[iid_map[i]]]

    train_m, _ = ds.build_interactions(train)
    test_m, _ = ds.build_interactions(test)
    train_m = sp.coo_matrix(train_m, dtype=np.float32)
    test_m = sp.csr_matrix(test_m, dtype=np.float32)
    train_m.data[:] = 1.0
    test_m.data[:] = 1.0

    uf = itf = None
    if use_features:
        uf = l1_normalise(ds.build_user_features(urows, normalize=False))
        itf = l1_normalise(ds.build_item_features(irows, normalize=False))
        log(f"  user features {uf.shape} nnz={uf.nnz}; item features {itf.shape} nnz={itf.nnz}"
            f" ({int((np.diff(itf.indptr) == 0).sum())} empty item rows)")
    log(f"loaded in {time.perf_counter() - t0:.1f}s: {n_users} users, {n_items} items, "
        f"{train_m.nnz} train, {test_m.nnz} test")

    model = LightFM(
        no_components=args.components,
        learning_rate=args.learning_rate,
        loss=args.loss,
        random_state=args.seed,
    )
    epoch_times = []
    for e in range(args.epochs):
        t = time.perf_counter()
        model.fit_partial(train_m, user_features=uf, item_features=itf, epochs=1, num_threads=args.threads)
        epoch_times.append(time.perf_counter() - t)
        log(f"  epoch {e + 1}/{args.epochs}: {epoch_times[-1]:.3f}s")

    # Evaluation matrices (restricted to cold items for the cold-start experiment).
    ev_test, ev_train, ev_itf = test_m, sp.csr_matrix(train_m), itf
    if cold_idx is not None:
        if itf is None:
            raise SystemExit("--cold-start-items needs item features (use variant d settings)")
        ev_test = test_m[:, cold_idx].tocsr()
        ev_train = ev_train[:, cold_idx].tocsr()
        ev_itf = itf[cold_idx].tocsr()
        ev_test.eliminate_zeros()
    ev_kw = dict(user_features=uf, item_features=ev_itf, num_threads=args.threads)

    t = time.perf_counter()
    p = precision_at_k(model, ev_test, train_interactions=ev_train, k=args.k, **ev_kw)
    eval_seconds = time.perf_counter() - t
    r = recall_at_k(model, ev_test, train_interactions=ev_train, k=args.k, **ev_kw)
    a = auc_score(model, ev_test, train_interactions=ev_train, **ev_kw)

    extra = {}
    if cold_idx is not None:
        # Secondary protocol: every interaction (train + test) on a cold item is a
        # positive.  Reported as all_pairs_* keys; the primary keys use test pairs only.
        all_m = sp.csr_matrix(ds.build_interactions(cold_all)[0], dtype=np.float32)[:, cold_idx].tocsr()
        all_m.data[:] = 1.0
        extra = {
            "all_pairs_precision_at_10": float(np.mean(precision_at_k(
                model, all_m, train_interactions=ev_train, k=args.k, **ev_kw))),
            "all_pairs_recall_at_10": float(np.mean(recall_at_k(
                model, all_m, train_interactions=ev_train, k=args.k, **ev_kw))),
            "all_pairs_auc": float(np.mean(auc_score(model, all_m, train_interactions=ev_train, **ev_kw))),
            "all_pairs_n_test": int(all_m.nnz),
        }

    all_items = np.arange(n_items, dtype=np.int32)
    for _ in range(5):
        model.predict(0, all_items, user_features=uf, item_features=itf, num_threads=args.threads)
    ts = []
    for _ in range(args.score_runs):
        t = time.perf_counter()
        model.predict(0, all_items, user_features=uf, item_features=itf, num_threads=args.threads)
        ts.append(time.perf_counter() - t)

    out = {
        "impl": "lightfm",
        "loss": args.loss,
        "epochs": args.epochs,
        "threads": args.threads,
        "components": args.components,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "user_features": ucols,
        "item_features": icols,
        "item_identity": not args.no_identity,
        "user_identity": not args.no_user_identity,
        "precision_at_10": float(np.mean(p)),
        "recall_at_10": float(np.mean(r)),
        "auc": float(np.mean(a)),
        "seconds_per_epoch": float(np.mean(epoch_times)),
        "epoch_seconds": [round(x, 4) for x in epoch_times],
        "eval_seconds": eval_seconds,
        "score_one_user_ms": float(np.median(ts) * 1000.0),
        "n_users": n_users,
        "n_items": n_items,
        "n_train": int(train_m.nnz),
        "n_test": int(ev_test.nnz),
        "n_eval_users": int(len(p)),
    }
    if cold_idx is not None:
        out["cold_items"] = int(len(cold_idx))
        out["cold_start_items"] = args.cold_start_items
        out.update(extra)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
