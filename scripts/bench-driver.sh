#!/usr/bin/env bash
# The import and the load against the raw driver, side by side in one run
# (docs/benchmarks.md, "Import and load against the raw driver").
#
# Each round: `import --drop` writes a data folder into one database; pymongo
# (scripts/driver_baseline.py) writes the very documents `import` stored (same keys, fields,
# types) into a second database with the same indexes, unordered insert_many in batches of
# 10,000 (import's default, and the issue's baseline) and of 1,000; then the first database
# is read back by `import --load-only` (MongoSource into a training Dataset), by pymongo
# with MongoSource's projections, and by `import --load-only` again. The table gives
# recsys' rows/s as a share of the driver's (batches of 10,000).
#
# usage: scripts/bench-driver.sh [DATA]   (default ../shared/data/completejourney-seed)
# env: MONGODB_URI (scripts/db.sh start), ROWS (interaction rows taken from DATA, default
#      100000), ROUNDS (default 2), IMPORT (the import binary; default: built here)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$(cd "${1:-$ROOT/../shared/data/completejourney-seed}" && pwd)"
: "${MONGODB_URI:?set MONGODB_URI (eval \"\$(scripts/db.sh start)\")}"
ROWS="${ROWS:-100000}"; ROUNDS="${ROUNDS:-2}"
OUT="$ROOT/target/bench-driver"
if [[ -z "${IMPORT:-}" ]]; then
  (cd "$ROOT" && cargo build --release -q -p recsys-examples --example import)
  IMPORT="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/import"
fi
VENV="$ROOT/.venv-events"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet pymongo==4.20.1 dnspython==2.9.2
PY=("$VENV/bin/python" "$ROOT/scripts/driver_baseline.py" --uri "$MONGODB_URI")

mkdir -p "$OUT/data"
cp "$DATA/users.csv" "$DATA/products.csv" "$OUT/data/"
interactions="$DATA/user_product_interactions.csv.gz"
[[ -f "$interactions" ]] || interactions="$DATA/user_product_interactions.csv"
{ if [[ "$interactions" == *.gz ]]; then zcat "$interactions"; else cat "$interactions"; fi; } \
  | head -n "$((ROWS + 1))" > "$OUT/data/user_product_interactions.csv" || true

: > "$OUT/results.jsonl"
tag() { python3 -c "import json,sys; d=json.load(sys.stdin); d['round']=$1; print(json.dumps(d))"; }
for round in $(seq "$ROUNDS"); do
  "$IMPORT" "$OUT/data" --uri "$MONGODB_URI" --database bench_driver_ours --drop --quiet \
    > "$OUT/import-$round.txt"
  for batch in 1000 10000; do
    "${PY[@]}" insert --source bench_driver_ours --target bench_driver_raw --batch "$batch" --drop \
      | tag "$round" >> "$OUT/results.jsonl"
  done
  # The load, both ways, on the same database: ours, the driver's, ours again.
  "$IMPORT" --load-only --uri "$MONGODB_URI" --database bench_driver_ours --quiet > "$OUT/load-$round-a.txt"
  "${PY[@]}" read --database bench_driver_ours --batch 10000 | tag "$round" >> "$OUT/results.jsonl"
  "$IMPORT" --load-only --uri "$MONGODB_URI" --database bench_driver_ours --quiet > "$OUT/load-$round-b.txt"
  python3 - "$OUT/import-$round.txt" "$OUT/load-$round-a.txt" "$OUT/load-$round-b.txt" "$round" >> "$OUT/results.jsonl" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
rows = {}
for name in ["users", "products", "user_product_interactions"]:
    m = re.search(rf"^{name}\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+\d+\s+(\d+)$", text, re.M)
    rows[name] = {"rows": int(m.group(1)), "inserted": int(m.group(2)), "rows_per_second": int(m.group(3))}
imp = re.search(r"^import: (\d+) rows in ([0-9.]+)s \((\d+) rows/s; validation ([0-9.]+)s\)", text, re.M)
loads = []
for path in sys.argv[2:4]:
    load = re.search(r"^load: .* in ([0-9.]+)s \((\d+) rows/s\)", open(path).read(), re.M)
    loads.append(int(load.group(2)))
print(json.dumps({"mode": "recsys", "round": int(sys.argv[4]), "collections": rows,
                  "import_rows": int(imp.group(1)), "import_seconds": float(imp.group(2)),
                  "import_rows_per_second": int(imp.group(3)), "validation_seconds": float(imp.group(4)),
                  "load_rows_per_second": loads}))
PY
done

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
names = ["users", "products", "user_product_interactions"]
print("| round | measurement | users | products | interactions | all three, rows/s | recsys ÷ driver |")
print("|---|---|---:|---:|---:|---:|---:|")
for r in sorted({d["round"] for d in runs}):
    ours = next(d for d in runs if d["round"] == r and d["mode"] == "recsys")
    ins = {d["batch"]: d for d in runs if d["round"] == r and d["mode"] == "insert"}
    rd = next(d for d in runs if d["round"] == r and d["mode"] == "read")
    # import's write pass alone: rows / sum of per-collection seconds
    w_rows = sum(ours["collections"][n]["rows"] for n in names)
    w_secs = sum(ours["collections"][n]["rows"] / ours["collections"][n]["rows_per_second"] for n in names)
    write = w_rows / w_secs
    cells = " | ".join(f"{ours['collections'][n]['rows_per_second']:,}" for n in names)
    print(f"| {r} | `import` write pass | {cells} | {write:,.0f} | {write / ins[10000]['rows_per_second']:.0%} |")
    print(f"| {r} | `import` as a whole: validation ({ours['validation_seconds']:.2f} s), indexes, reading what is there, writes | | | | {ours['import_rows_per_second']:,} | {ours['import_rows_per_second'] / ins[10000]['rows_per_second']:.0%} |")
    for b, d in sorted(ins.items(), reverse=True):
        cells = " | ".join(f"{d['collections'][n]['rows_per_second']:,}" for n in names)
        print(f"| {r} | pymongo `insert_many` of the same documents, same indexes, batches of {b:,} | {cells} | {d['rows_per_second']:,} | |")
    a, b = ours["load_rows_per_second"]
    print(f"| {r} | `import --load-only`: MongoSource → `Dataset` (before / after the driver's read) | | | | {a:,} / {b:,} | {a / rd['rows_per_second']:.0%} / {b / rd['rows_per_second']:.0%} |")
    cells = " | ".join(f"{rd['collections'][n]['rows_per_second']:,}" for n in names)
    print(f"| {r} | pymongo `find`, same projections, batches of 10,000 | {cells} | {rd['rows_per_second']:,} | |")
PY
