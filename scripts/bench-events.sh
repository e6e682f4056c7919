#!/usr/bin/env bash
# Live-event benchmarks (docs/benchmarks.md): POST /events ingestion against a pymongo
# baseline doing the same writes (run before and after the server's rounds), event ->
# visible on the same and on another replica,
# fold-in latency. Each round uses fresh databases with the import's indexes.
#
# usage: scripts/bench-events.sh BUNDLE [SERVE_BINARY]
#   BUNDLE        a bundle trained on the demo shop (examples/train.rs), e.g. target/demo-mongo.rsb
#   SERVE_BINARY  default target/release/examples/serve
# env: MONGODB_URI (scripts/db.sh start), ROUNDS (default 3), EVENTS (default 10000),
#      PORT (default 8091; PORT+1 for the second replica)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="${1:?usage: scripts/bench-events.sh BUNDLE [SERVE_BINARY]}"
SERVE="${2:-$REPO/target/release/examples/serve}"
: "${MONGODB_URI:?set MONGODB_URI (eval \"\$(scripts/db.sh start)\")}"
ROUNDS="${ROUNDS:-3}"; EVENTS="${EVENTS:-10000}"; PORT="${PORT:-8091}"
VENV="$REPO/.venv-events"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet pymongo==4.20.1 dnspython==2.9.2
PY=("$VENV/bin/python" "$REPO/scripts/events_bench.py" --uri "$MONGODB_URI")
BASE="${MONGODB_URI%/}"
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; PIDS=(); }
trap stop EXIT
wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }
for round in $(seq "$ROUNDS"); do
  # The baseline runs before and after the server's rounds (FerretDB slows as its files
  # grow): compare the server with both.
  "${PY[@]}" baseline --database recsys_events_baseline --events "$EVENTS"
  "${PY[@]}" prepare --database recsys_events_bench
  "$SERVE" --bundle "$BUNDLE" --port "$PORT" --mongodb-uri "$BASE/recsys_events_bench" >/dev/null 2>&1 &
  PIDS+=($!); wait_up "$PORT"
  "${PY[@]}" ingest --server "127.0.0.1:$PORT" --pid "${PIDS[0]}" --events "$EVENTS" --threads 1
  "${PY[@]}" ingest --server "127.0.0.1:$PORT" --pid "${PIDS[0]}" --events "$EVENTS" --threads 4
  "${PY[@]}" baseline --database recsys_events_baseline --events "$EVENTS"
  "$SERVE" --bundle "$BUNDLE" --port "$((PORT + 1))" --mongodb-uri "$BASE/recsys_events_bench" >/dev/null 2>&1 &
  PIDS+=($!); wait_up "$((PORT + 1))"
  "${PY[@]}" visible --server "127.0.0.1:$PORT" --other "127.0.0.1:$((PORT + 1))" --trials 30
  "${PY[@]}" foldin --server "127.0.0.1:$PORT" --users 200 --requests 3000
  stop
done
"${PY[@]}" prepare --database recsys_events_bench >/dev/null
