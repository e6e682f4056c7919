#!/usr/bin/env python3
"""implicit 0.7.3 side of the recsys <-> implicit ALS comparison (scripts/compare-implicit.sh).

Trains implicit's CPU ``AlternatingLeastSquares`` on the recsys CSV schema with the fixed
held-out split and WRITES ITS FACTORS; it computes no metric. recsys' ``evaluate`` example
then scores the factors (``--factors DIR``) with the same metric code as recsys' own models
(LightFM's definitions), so both libraries are measured by one implementation.

Data: train = every distinct (user_id, product_id) pair of
user_product_interactions.csv.gz that is not in the test-pairs file, as a binary
user x item CSR matrix (float32 ones; the ``weight`` column is ignored), which is what
recsys trains on without ``--weighted``. Ids are indexed in order of first appearance;
users or items that never occur in training have no row in the output files (recsys then
scores them with a zero vector, which is what implicit's factors are for them too).

implicit's confidence is ``alpha * r`` (so ``alpha = 1`` on binary data gives every observed
pair confidence 1); recsys' is ``1 + alpha * w``: recsys ``--alpha a`` equals implicit
``--alpha (1 + a)`` on binary data.

Output (``--out-dir DIR``): DIR/user_factors.csv and DIR/item_factors.csv (a header line,
then ``id,f0,...,f(k-1)``), and one JSON object on stdout with the timing:
``seconds_per_epoch`` is the mean of implicit's per-iteration times (its fit callback:
one user and one item solve, as recsys' sweep), ``fit_seconds`` the whole ``fit`` call.
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import implicit  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402

from bench_common import dedupe, log, read_pairs  # noqa: E402


def write_factors(path, ids, factors):
    with open(path, "w") as f:
        f.write("id," + ",".join(f"f{j}" for j in range(factors.shape[1])) + "\n")
        for i, row in zip(ids, factors):
            f.write(i + "," + ",".join(f"{v:.9g}" for v in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--test-pairs", default=None, help="default: DATA/test_pairs.csv.gz")
    ap.add_argument("--components", type=int, default=30)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0, help="implicit's alpha (confidence = alpha * r)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()

    test_path = args.test_pairs or os.path.join(args.data, "test_pairs.csv.gz")
    t0 = time.perf_counter()
    inter = dedupe(read_pairs(os.path.join(args.data, "user_product_interactions.csv.gz"), strip=True))
    test = set(read_pairs(test_path, strip=True))
    train = [p for p in inter if p not in test]
    users = dedupe([u for u, _ in train])
    items = dedupe([i for _, i in train])
    uix = {u: n for n, u in enumerate(users)}
    iix = {i: n for n, i in enumerate(items)}
    rows = np.fromiter((uix[u] for u, _ in train), dtype=np.int32, count=len(train))
    cols = np.fromiter((iix[i] for _, i in train), dtype=np.int32, count=len(train))
    user_items = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (rows, cols)), shape=(len(users), len(items))
    )
    load_seconds = time.perf_counter() - t0
    log(f"loaded {len(users)} users x {len(items)} items, {user_items.nnz} train pairs in {load_seconds:.1f}s")

    model = AlternatingLeastSquares(
        factors=args.components,
        regularization=args.regularization,
        alpha=args.alpha,
        iterations=args.iterations,
        num_threads=args.threads,
        random_state=args.seed,
    )
    epoch_seconds = []
    t0 = time.perf_counter()
    model.fit(user_items, show_progress=False, callback=lambda it, elapsed, loss: epoch_seconds.append(elapsed))
    fit_seconds = time.perf_counter() - t0

    os.makedirs(args.out_dir, exist_ok=True)
    write_factors(os.path.join(args.out_dir, "user_factors.csv"), users, np.asarray(model.user_factors))
    write_factors(os.path.join(args.out_dir, "item_factors.csv"), items, np.asarray(model.item_factors))
    print(json.dumps({
        "impl": "implicit",
        "implicit_version": implicit.__version__,
        "numpy_version": np.__version__,
        "threads": args.threads,
        "components": args.components,
        "epochs": args.iterations,
        "regularization": args.regularization,
        "implicit_alpha": args.alpha,
        "seed": args.seed,
        "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else 0.0,
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
        "fit_seconds": fit_seconds,
        "load_seconds": load_seconds,
        "n_train": int(user_items.nnz),
    }))


if __name__ == "__main__":
    main()
