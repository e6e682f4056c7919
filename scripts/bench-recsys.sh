#!/usr/bin/env bash
# recsys on the Complete Journey split, the variants of the LightFM comparison, 1 and 2
# threads: prints one markdown table (the one in docs/benchmarks.md) and keeps the raw JSON.
#
# usage: scripts/bench-recsys.sh [--data DIR] [--threads "1 2"] [--variants "a b c d cold e"]
#                                [--epochs N] [--out FILE]
#   a  WARP, no features            b  BPR, no features
#   c  WARP hybrid (user id + demographics; item id + category, department, brand,
#      manufacturer_id, price in 5 quantile buckets; rows L1-normalised, as LightFM)
#   d  WARP, item metadata only (no item id) + user id + demographics
#   cold  d trained without the training pairs of 10 % of the products, evaluated on them
#   e  c with identity-anchored weighting (--metadata-weight 1) instead of L1
#   cold-e  cold with --metadata-weight 1
#   kos  WARP-kOS (k 5, n 10), no features
# For LightFM itself use scripts/compare-lightfm.sh (same flags, same split).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data/completejourney-seed"
THREADS="1 2"
VARIANTS="a b c d cold e cold-e"
EPOCHS=10
OUT="$ROOT/target/bench-recsys/results.jsonl"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --variants) VARIANTS="$2"; shift ;;
    --epochs) EPOCHS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$DATA/test_pairs.csv.gz" ] || { echo "error: no Complete Journey data in '$DATA' (pass --data DIR)" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=1
DEMO=age_group,income,home_ownership,marital_status,household_size,household_comp,kids_count
META=category,department,brand,manufacturer_id,price
flags() {
  case "$1" in
    a) echo "--loss warp" ;;
    b) echo "--loss bpr" ;;
    c) echo "--loss warp --user-features $DEMO --item-features $META" ;;
    d) echo "--loss warp --user-features $DEMO --item-features $META --no-identity" ;;
    cold) echo "--loss warp --user-features $DEMO --item-features $META --no-identity --cold-start-items 0.1" ;;
    e) echo "--loss warp --user-features $DEMO --item-features $META --metadata-weight 1" ;;
    cold-e) echo "--loss warp --user-features $DEMO --item-features $META --no-identity --cold-start-items 0.1 --metadata-weight 1" ;;
    kos) echo "--loss warp-kos" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
cd "$ROOT"
cargo build --release -q -p recsys-examples --example evaluate
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
for v in $VARIANTS; do
  for t in $THREADS; do
    # shellcheck disable=SC2046
    target/release/examples/evaluate --data "$DATA" $(flags "$v") --epochs "$EPOCHS" --threads "$t" --seed 42 --json \
      | python3 -c "import json,sys; d=json.load(sys.stdin); d['variant']='$v'; print(json.dumps(d))" >> "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| variant | threads | s/epoch | P@10 | R@10 | AUC | full eval s | 1 user × all items ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for d in rows:
    print(f"| {d['variant']} | {d['threads']} | {d['seconds_per_epoch']:.3f} | {d['precision_at_10']:.4f} | "
          f"{d['recall_at_10']:.4f} | {d['auc']:.4f} | {d['eval_seconds']:.2f} | {d['score_one_user_ms']:.3f} |")
PY
