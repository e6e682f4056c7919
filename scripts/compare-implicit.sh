#!/usr/bin/env bash
# Compare recsys' ALS against implicit 0.7.3's ALS on the Complete Journey split.
#
# usage: scripts/compare-implicit.sh [--quick] [--threads "1 2"] [--data DIR]
#                                    [--variants "cf tuned hybrid cold"] [--epochs N]
#                                    [--out FILE]
#
#   cf      collaborative ALS at implicit's defaults: regularization 0.01, implicit
#           alpha 1 (= recsys --alpha 0: every observed pair has confidence 1), 3 CG steps
#   tuned   collaborative ALS at the settings chosen on a validation split
#           (docs/benchmarks.md): recsys --alpha 1 --regularization 40 = implicit alpha 2
#   hybrid  recsys only (implicit has no features): ALS with user id; item id +
#           category,department,brand,manufacturer_id,price (5 quantile buckets), the
#           metadata weighing 0.5 in all next to the id (--metadata-weight 0.5)
#   cold    recsys only: ALS with user id + demographics and item metadata only (no item
#           id), the training pairs of 10 % of the products removed, evaluated on those
#           products (item cold start)
#
# Both libraries train on the same binary training pairs (every logged pair that is not a
# test pair). implicit (scripts/implicit_bench.py, in the venv .venv-implicit, created or
# refreshed idempotently) writes its factors; recsys' `evaluate --factors` scores them
# with the same metric code as recsys' own model (LightFM's definitions: precision@10 with
# training pairs excluded, AUC over each user's test items). recsys runs right after
# implicit for each thread count, so both see the same machine load. Raw JSON lines go to
# the results file (default target/compare-implicit/results.jsonl, truncated at start);
# one markdown table is printed. --quick = 2 iterations (smoke test). RECSYS_EVALUATE=PATH
# uses a prebuilt `evaluate` example instead of building one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data/completejourney-seed"
THREADS="1 2"
VARIANTS="cf tuned hybrid cold"
EPOCHS=10
OUT="$ROOT/target/compare-implicit/results.jsonl"
VENV="$ROOT/.venv-implicit"
PYTHON="${PYTHON:-python3}"
. "$ROOT/scripts/lib/bench.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) EPOCHS=2; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) bench_option "$@" || { echo "unknown argument: $1 (see --help)" >&2; exit 2; }
       shift "$BENCH_SHIFT" ;;
  esac
done

DATA="$(bench_data_dir "$DATA")" || exit 1

export OPENBLAS_NUM_THREADS=1

# ---------------------------------------------------------------- implicit venv
venv_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import implicit, implicit.cpu._als, scipy; assert implicit.__version__ == "0.7.3"' \
      >/dev/null 2>&1
}
if ! venv_ok; then
  echo ">> setting up implicit 0.7.3 venv in $VENV" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install -r "$ROOT/scripts/requirements-implicit.txt"
  venv_ok || { echo "error: implicit venv setup failed" >&2; exit 1; }
fi
PY="$VENV/bin/python"

# ---------------------------------------------------------------- variants
DEMOGRAPHICS="age_group,income,home_ownership,marital_status,household_size,household_comp,kids_count"
ITEM_META="category,department,brand,manufacturer_id,price"
# recsys flags, and implicit's (alpha, regularization) or "-" when implicit cannot run it
recsys_flags() {
  case "$1" in
    cf) echo "--alpha 0 --regularization 0.01" ;;
    tuned) echo "--alpha 1 --regularization 40" ;;
    hybrid) echo "--alpha 1 --regularization 40 --feature-cg-steps 10 --item-features $ITEM_META --quantiles 5 --metadata-weight 0.5" ;;
    cold) echo "--alpha 100 --regularization 30 --feature-cg-steps 10 --user-features $DEMOGRAPHICS --item-features $ITEM_META --quantiles 5 --no-identity --metadata-weight 1 --cold-start-items 0.1" ;;
    *) echo "unknown variant '$1' (cf tuned hybrid cold)" >&2; return 1 ;;
  esac
}
implicit_settings() {
  case "$1" in
    cf) echo "1 0.01" ;;
    tuned) echo "2 40" ;;
    *) echo "-" ;;
  esac
}

OUTDIR="$(dirname "$OUT")"
bench_results "$OUT"

# Append one JSON line (the last JSON object line of stdout-file), with extra fields
# merged in from the JSON object in extra-file (may be /dev/null), tagged with the variant;
# an "unavailable" record when there is no JSON object.
record() { # impl variant threads stdout-file extra-file logfile
  "$PY" -c '
import json, sys
impl, variant, threads, stdout, extra, log, out, lib = sys.argv[1:9]
sys.path.insert(0, lib)
from bench_common import last_json
obj = last_json(stdout)
if obj is None or "precision_at_10" not in obj:
    obj = {"available": False, "log": log}
timing = last_json(extra)
if timing:
    for k in ("seconds_per_epoch", "epoch_seconds", "fit_seconds", "implicit_version",
              "implicit_alpha", "regularization", "epochs", "components"):
        if k in timing:
            obj[k] = timing[k]
obj["impl"] = impl
obj["variant"] = variant
obj["requested_threads"] = int(threads)
with open(out, "a") as f:
    f.write(json.dumps(obj) + "\n")
' "$@" "$OUT" "$BENCH_PY_PATH"
}

if [ -n "${RECSYS_EVALUATE:-}" ]; then
  EVALUATE=("$RECSYS_EVALUATE")   # a prebuilt evaluate example
else
  echo ">> building recsys evaluate example" >&2
  (cd "$ROOT" && cargo build --release -q -p recsys-examples --example evaluate) >"$LOGDIR/recsys-build.log" 2>&1 \
    || { echo "error: recsys build failed, see $LOGDIR/recsys-build.log" >&2; exit 1; }
  EVALUATE=("cargo" "run" "--release" "-q" "-p" "recsys-examples" "--example" "evaluate" "--")
fi

for v in $VARIANTS; do
  FLAGS="$(recsys_flags "$v")"
  SETTINGS="$(implicit_settings "$v")"
  for t in $THREADS; do
    COMMON="--data $DATA --test-pairs $DATA/test_pairs.csv.gz --epochs $EPOCHS --threads $t --components 30 --seed 42"
    if [ "$SETTINGS" != "-" ]; then
      read -r IALPHA IREG <<<"$SETTINGS"
      echo ">> [$v, $t thread(s)] implicit alpha $IALPHA regularization $IREG" >&2
      fdir="$OUTDIR/factors-$v-t$t"; log="$LOGDIR/implicit-$v-t$t.log"; timing="$LOGDIR/implicit-$v-t$t.timing.json"
      json="$LOGDIR/implicit-$v-t$t.json"
      if "$PY" "$ROOT/scripts/implicit_bench.py" --data "$DATA" --test-pairs "$DATA/test_pairs.csv.gz" \
          --components 30 --iterations "$EPOCHS" --threads "$t" --seed 42 \
          --alpha "$IALPHA" --regularization "$IREG" --out-dir "$fdir" >"$timing" 2>"$log"; then
        # shellcheck disable=SC2086
        (cd "$ROOT" && "${EVALUATE[@]}" $COMMON --factors "$fdir" --json) >"$json" 2>>"$log" \
          || echo "   evaluating implicit's factors failed, see $log" >&2
      else
        echo "   implicit failed, see $log" >&2
        : > "$json"
      fi
      record implicit "$v" "$t" "$json" "$timing" "$log"
    fi
    echo ">> [$v, $t thread(s)] recsys --model als $FLAGS" >&2
    log="$LOGDIR/recsys-$v-t$t.log"; json="$LOGDIR/recsys-$v-t$t.json"
    # shellcheck disable=SC2086
    (cd "$ROOT" && "${EVALUATE[@]}" $COMMON --model als $FLAGS --json) >"$json" 2>"$log" \
      || echo "   recsys failed, see $log" >&2
    record recsys "$v" "$t" "$json" /dev/null "$log"
  done
done

# ---------------------------------------------------------------- table
"$PY" - "$OUT" "$BENCH_PY_PATH" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_common import available as ok, fmt as f
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by, order = {}, []
for r in rows:
    key = (r["variant"], r["requested_threads"])
    if key not in by:
        order.append(key)
    by.setdefault(key, {})[r["impl"]] = r
hdr = ["variant", "threads", "impl", "settings", "s/iteration", "P@10", "R@10", "AUC",
       "speed-up (implicit ÷ recsys)", "P@10 Δ (recsys − implicit)", "AUC Δ"]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join(["---"] * 4 + ["---:"] * (len(hdr) - 4)) + "|")
for key in order:
    v, t = key
    im, rs = by[key].get("implicit"), by[key].get("recsys")
    if im is None:
        print("| " + " | ".join([v, str(t), "implicit", "—", "no features: cannot run"] + ["—"] * 6) + " |")
    for impl, r in (("implicit", im), ("recsys", rs)):
        if r is None:
            continue
        if not ok(r):
            print("| " + " | ".join([v, str(t), impl, "—", "not available (see log)"] + ["—"] * 6) + " |")
            continue
        if impl == "implicit":
            settings = f"alpha {r.get('implicit_alpha')}, reg {r.get('regularization')}"
        else:
            settings = f"alpha {r.get('alpha')}, reg {r.get('regularization'):.4g}"
            if r.get("cold_items"):
                settings += f", {r['cold_items']} cold items"
        cells = [v, str(t), impl, settings, f(r["seconds_per_epoch"], 3), f(r["precision_at_10"]),
                 f(r["recall_at_10"]), f(r["auc"])]
        if impl == "recsys" and ok(im):
            cells += [f"{im['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}×",
                      f"{r['precision_at_10'] - im['precision_at_10']:+.4f}",
                      f"{r['auc'] - im['auc']:+.4f}"]
        else:
            cells += ["—"] * 3
        print("| " + " | ".join(cells) + " |")
EOF
echo "raw results: $OUT" >&2
