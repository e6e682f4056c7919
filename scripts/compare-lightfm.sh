#!/usr/bin/env bash
# Compare recsys against LightFM 1.17 on the Complete Journey split.
#
# usage: scripts/compare-lightfm.sh [--quick] [--threads "1 2"] [--data DIR]
#                                   [--variants "a b c d cold kos"] [--epochs N]
#                                   [--out FILE] [--no-recsys]
#
#   variants: a b c d cold kos (scripts/lib/variants.sh says what each is)
#
# Creates/refreshes the LightFM venv at .venv-lightfm (idempotent), runs every variant
# with LightFM and — when it builds and prints JSON — with recsys'
# `cargo run --release -p recsys-examples --example evaluate -- <same flags> --json`,
# appends the raw JSON lines (plus "variant") to the results file (default
# target/compare-lightfm/results.jsonl, truncated at start) and prints one markdown table.
# --quick = 2 epochs (smoke test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data/completejourney-seed"
THREADS="1 2"
. "$ROOT/scripts/lib/variants.sh"
. "$ROOT/scripts/lib/lightfm-venv.sh"
. "$ROOT/scripts/lib/bench.sh"
VARIANTS="$VARIANTS_LIGHTFM"
EPOCHS=10
OUT="$ROOT/target/compare-lightfm/results.jsonl"
RUN_RECSYS=1
VENV="$ROOT/.venv-lightfm"
PYTHON="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) EPOCHS=2; shift ;;
    --no-recsys) RUN_RECSYS=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) bench_option "$@" || { echo "unknown argument: $1 (see --help)" >&2; exit 2; }
       shift "$BENCH_SHIFT" ;;
  esac
done

DATA="$(bench_data_dir "$DATA")" || exit 1

export OPENBLAS_NUM_THREADS=1

# ---------------------------------------------------------------- LightFM venv
ensure_lightfm_venv "$VENV" "$ROOT/scripts/requirements-lightfm.txt" "$PYTHON" || exit 1
PY="$VENV/bin/python"

bench_results "$OUT"

# Append one JSON line (the last JSON object line of the tool's stdout file) tagged
# with the variant; or an "unavailable" record when the tool printed no JSON object.
record() { # impl variant threads stdout-file logfile
  "$PY" -c '
import json, sys
impl, variant, threads, stdout, log, out, lib = sys.argv[1:8]
sys.path.insert(0, lib)
from bench_common import last_json
obj = last_json(stdout)
if obj is None or "precision_at_10" not in obj:
    obj = {"impl": impl, "threads": int(threads), "available": False, "log": log}
obj["variant"] = variant
obj["requested_threads"] = int(threads)
obj.setdefault("impl", impl)
with open(out, "a") as f:
    f.write(json.dumps(obj) + "\n")
' "$@" "$OUT" "$BENCH_PY_PATH"
}

RECSYS_OK=0
if [ "$RUN_RECSYS" = 1 ]; then
  echo ">> building recsys evaluate example" >&2
  if (cd "$ROOT" && cargo build --release -q -p recsys-examples --example evaluate) >"$LOGDIR/recsys-build.log" 2>&1; then
    RECSYS_OK=1
  else
    echo "   recsys: not available (build failed, see $LOGDIR/recsys-build.log)" >&2
  fi
fi

for v in $VARIANTS; do
  FLAGS="$(variant_flags "$v")"
  for t in $THREADS; do
    COMMON="--data $DATA --test-pairs $DATA/test_pairs.csv.gz --epochs $EPOCHS --threads $t --components 30 --learning-rate 0.05 --seed 42 $FLAGS"
    echo ">> [$v, $t thread(s)] lightfm $COMMON" >&2
    log="$LOGDIR/lightfm-$v-t$t.log"; json="$LOGDIR/lightfm-$v-t$t.json"
    EXTRA=""
    # the cold product_ids (for checking another implementation's split)
    [ "$v" = cold ] && EXTRA="--cold-items-out $(dirname "$OUT")/cold_items.txt"
    # shellcheck disable=SC2086
    "$PY" "$ROOT/scripts/lightfm_bench.py" $COMMON $EXTRA --json >"$json" 2>"$log" \
      || echo "   lightfm failed, see $log" >&2
    record lightfm "$v" "$t" "$json" "$log"
    if [ "$RECSYS_OK" = 1 ]; then
      echo ">> [$v, $t thread(s)] recsys" >&2
      log="$LOGDIR/recsys-$v-t$t.log"; json="$LOGDIR/recsys-$v-t$t.json"
      # shellcheck disable=SC2086
      (cd "$ROOT" && cargo run --release -q -p recsys-examples --example evaluate -- $COMMON --json) \
        >"$json" 2>"$log" || echo "   recsys: not available (failed, see $log)" >&2
      record recsys "$v" "$t" "$json" "$log"
    elif [ "$RUN_RECSYS" = 1 ]; then
      record recsys "$v" "$t" /dev/null "$LOGDIR/recsys-build.log"
    fi
  done
done

# ---------------------------------------------------------------- table
"$PY" - "$OUT" "$BENCH_PY_PATH" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_common import available as ok, fmt as f
rows = []
for l in open(sys.argv[1]):
    if not l.strip():
        continue
    r = json.loads(l)
    rows.append(r)
    # cold-start: also show the secondary protocol (all pairs of the cold items are positives)
    if "all_pairs_precision_at_10" in r:
        a = dict(r, variant=r["variant"] + " (all pairs)")
        for k in ("precision_at_10", "recall_at_10", "auc"):
            a[k] = r["all_pairs_" + k]
        rows.append(a)
def ratio(a, b):
    return "—" if a is None or b in (None, 0) else f"{a / b:.2f}×"
by = {}
order = []
for r in rows:
    key = (r["variant"], r.get("requested_threads", r.get("threads")))
    if key not in by:
        order.append(key)
    by.setdefault(key, {})[r["impl"]] = r
hdr = ["variant", "threads", "impl", "s/epoch", "P@10", "R@10", "AUC", "eval s", "1-user ms",
       "epoch ratio (LightFM÷recsys)", "eval ratio", "1-user ratio", "P@10 ratio (recsys÷LightFM)", "AUC Δ (recsys−LightFM)"]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join(["---"] * 3 + ["---:"] * (len(hdr) - 3)) + "|")
for key in order:
    v, t = key
    lf, rs = by[key].get("lightfm"), by[key].get("recsys")
    for impl, r in (("lightfm", lf), ("recsys", rs)):
        if r is None:
            continue
        if not ok(r):
            cells = [v, str(t), impl] + [f"{impl}: not available"] * 6 + ["—"] * 5
        else:
            cells = [v, str(t), impl, f(r["seconds_per_epoch"], 3), f(r["precision_at_10"]), f(r["recall_at_10"]),
                     f(r["auc"]), f(r.get("eval_seconds"), 3), f(r.get("score_one_user_ms"), 3)]
            if impl == "recsys" and ok(lf):
                cells += [ratio(lf["seconds_per_epoch"], r["seconds_per_epoch"]),
                          ratio(lf.get("eval_seconds"), r.get("eval_seconds")),
                          ratio(lf.get("score_one_user_ms"), r.get("score_one_user_ms")),
                          ratio(r["precision_at_10"], lf["precision_at_10"]),
                          f"{r['auc'] - lf['auc']:+.4f}"]
            else:
                cells += ["—"] * 5
        print("| " + " | ".join(cells) + " |")
EOF
echo "raw results: $OUT" >&2
