#!/usr/bin/env bash
# Warm retraining against training from scratch on Complete Journey (docs/benchmarks.md,
# "Warm retraining"). The newest NEW (default 1 %) of the interaction rows, by timestamp,
# are "new"; a base model is trained on the rest (the bundle keeps its optimiser state),
# then
#   warm:    `retrain --bundle base --data FULL --force --epochs K` for each K in WARM,
#            timed by its own report (training on all the data, not the gate's run);
#   scratch: `evaluate --data FULL --epochs E` for each E in SCRATCH (training time only).
# Both are evaluated on the fixed test pairs (never trained on). One thread.
#
# usage: scripts/bench-retrain.sh [DATA]   (default ../shared/data/completejourney-seed)
# env: NEW (0.01), WARM ("1 2 3"), SCRATCH ("2 4 6 10"), BASE_EPOCHS (10), OUT (target/bench-retrain),
#      BIN (the folder of the example binaries; default target/release/examples)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$(cd "${1:-$ROOT/../shared/data/completejourney-seed}" && pwd)"
NEW="${NEW:-0.01}"; WARM="${WARM:-1 2 3}"; SCRATCH="${SCRATCH:-2 4 6 10}"
BASE_EPOCHS="${BASE_EPOCHS:-10}"; OUT="${OUT:-$ROOT/target/bench-retrain}"
export OPENBLAS_NUM_THREADS=1
[[ -f "$DATA/test_pairs.csv.gz" ]] || { echo "no $DATA/test_pairs.csv.gz" >&2; exit 1; }
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release -q -p recsys-examples --example train --example retrain --example evaluate)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples"
fi
mkdir -p "$OUT/base-data"
for f in users.csv products.csv test_pairs.csv.gz; do ln -sf "$DATA/$f" "$OUT/base-data/$f"; done
python3 - "$DATA" "$OUT/base-data" "$NEW" <<'PY'
import csv, gzip, sys
src, dst, new = sys.argv[1], sys.argv[2], float(sys.argv[3])
with gzip.open(f"{src}/user_product_interactions.csv.gz", "rt", newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
t = header.index("timestamp")
order = sorted(range(len(rows)), key=lambda i: (rows[i][t], i))
cut = len(rows) - round(new * len(rows))
keep = set(order[:cut])
with gzip.open(f"{dst}/user_product_interactions.csv.gz", "wt", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(r for i, r in enumerate(rows) if i in keep)
print(f"base: {cut} of {len(rows)} rows (newest {len(rows) - cut} left out, from {rows[order[cut]][t]})", file=sys.stderr)
PY
FEATURES=(--user-features age_group,income,home_ownership,marital_status,household_size,household_comp,kids_count
          --item-features category,department,brand,manufacturer_id,price --quantiles 5 --threads 1 --seed 42)
"$BIN/train" --data "$OUT/base-data" "${FEATURES[@]}" --epochs "$BASE_EPOCHS" --keep-training-state \
    --out "$OUT/base.rsb" --quiet > "$OUT/base.txt" 2>&1
echo "| run | epochs | training s | P@10 | AUC |"
echo "|---|---:|---:|---:|---:|"
for e in $SCRATCH; do
  "$BIN/evaluate" --data "$DATA" "${FEATURES[@]}" --epochs "$e" --json > "$OUT/scratch-$e.json" 2> "$OUT/scratch-$e.err"
  python3 - "$OUT/scratch-$e.json" "$e" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"| scratch | {sys.argv[2]} | {sum(d['epoch_seconds']):.2f} | {d['precision_at_10']:.4f} | {d['auc']:.4f} |")
PY
done
for k in $WARM; do
  "$BIN/retrain" --bundle "$OUT/base.rsb" --data "$DATA" --epochs "$k" --force --out "$OUT/warm-$k.rsb" > "$OUT/warm-$k.txt" 2>&1
  python3 - "$OUT/warm-$k.txt" "warm" "$k" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
secs = float(re.search(r"final model: \d+ epochs on all the data in ([0-9.]+)s", text).group(1))
gate = float(re.search(r"candidate trained \d+ epochs in ([0-9.]+)s", text).group(1))
m = re.search(r"test pairs: .*?P@10 ([0-9.]+).*?AUC ([0-9.]+)", text)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {secs:.2f} (gate: {gate:.2f}) | {m.group(1)} | {m.group(2)} |")
PY
done
