#!/usr/bin/env bash
# recsys on the Complete Journey split, the variants of the LightFM comparison, 1 and 2
# threads: prints one markdown table (the one in docs/benchmarks.md) and keeps the raw JSON.
#
# usage: scripts/bench-recsys.sh [--data DIR] [--threads "1 2"] [--variants "a b c d cold kos e cold-e"]
#                                [--epochs N] [--out FILE]
#   variants: a b c d cold kos e cold-e, all by default (scripts/lib/variants.sh says
#   what each is)
# For LightFM itself use scripts/compare-lightfm.sh (same flags, same split).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data/completejourney-seed"
THREADS="1 2"
. "$ROOT/scripts/lib/variants.sh"
. "$ROOT/scripts/lib/bench.sh"
VARIANTS="$VARIANTS_ALL"
EPOCHS=10
OUT="$ROOT/target/bench-recsys/results.jsonl"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) bench_option "$@" || { echo "unknown argument: $1 (see --help)" >&2; exit 2; }
       shift "$BENCH_SHIFT" ;;
  esac
done
[ -f "$DATA/test_pairs.csv.gz" ] || { echo "error: no Complete Journey data in '$DATA' (pass --data DIR)" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=1
cd "$ROOT"
cargo build --release -q -p recsys-examples --example evaluate
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
for v in $VARIANTS; do
  for t in $THREADS; do
    # shellcheck disable=SC2046
    "${CARGO_TARGET_DIR:-target}/release/examples/evaluate" --data "$DATA" $(variant_flags "$v") --epochs "$EPOCHS" --threads "$t" --seed 42 --json \
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
