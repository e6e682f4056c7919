#!/usr/bin/env bash
# Load benchmark of GET /similar-products: our Rust server vs the seed's Flask + LightFM.
#
# usage: scripts/bench-serve.sh [options]
#
#   --rust-url URL        also measure an already running Rust server (e.g. http://127.0.0.1:8002)
#   --rust-cmd "CMD"      start the Rust server with CMD (via bash, from the repo root, with
#                         MONGODB_URI and SERVE_BENCH_DATA exported) and stop it at the end;
#                         give a built binary, e.g. "target/release/examples/serve --port 8002",
#                         so that start-up is not a cargo build. Needs --rust-url (or
#                         --rust-port) to know where it listens.
#   --rust-port PORT      shorthand for --rust-url http://127.0.0.1:PORT
#   --rust-pid PID        the Rust server's pid for --soak (default: found from the port)
#   --no-flask            do not measure Flask (only the Rust server)
#   --flask-workers "2 1" gunicorn sync worker counts to measure (default "2 1"; 2 = one per core)
#   --flask-port PORT     default 8001
#   --flask-details "mongo memory"  how Flask gets product details (default both, one after
#                         the other): mongo = one find({product_id: {$in: ids}}) per request,
#                         as the seed did (label "flask"); memory = read once at start-up
#                         (label "flask-memdetails"), which isolates the web + model work from
#                         the database (on FerretDB 1.x the $in is a full collection scan)
#   --connections "1 16 64"  default "1 16 64"
#   --duration SECS       per wrk run, default 20
#   --soak                instead of the sweep: SECS (default 60) at 64 connections per server,
#                         sampling the server's RSS (its process and descendants, from
#                         /proc/PID/status) every second; reports min/max/last RSS and errors
#   --soak-duration SECS  default 60
#   --data DIR            default ../shared/data/completejourney-seed
#   --out DIR             default target/bench-serve (results.jsonl, rss-*.tsv, logs)
#   --retrain             redo the LightFM model and the request sample
#   --keep-db             leave the database running afterwards (default: stop it if this
#                         script started it; its data folder is kept either way)
#
# What it does, each step skipped when already done:
#   1. installs wrk from apt when missing (as root, or with sudo);
#   2. the LightFM venv .venv-lightfm (scripts/lib/lightfm-venv.sh, as for
#      scripts/compare-lightfm.sh) plus scripts/requirements-serve-bench.txt;
#   3. a database via scripts/db.sh with its own state and a persistent data folder
#      (RECSYS_DB_STATE / RECSYS_DB_DATA, default $HOME/.cache/recsys/serve-bench/db-state
#      and .../db; $MONGODB_URI is used instead when it answers), and the Complete Journey
#      data imported with examples/import unless users/products/interactions already hold
#      2,469 / 68,509 / 867,688 documents;
#   4. scripts/serve_bench_prepare.py: the pickled LightFM model and 1,000 request query
#      strings in $HOME/.cache/recsys/serve-bench (SERVE_BENCH_CACHE);
#   5. per server: a correctness check of 8 sample requests (warnings only), a 5 s warm-up
#      at 2 connections, then wrk (-t min(2,N) -cN -dSECS --latency -s scripts/loadtest.lua)
#      per connection count; prints one markdown table (and Rust ÷ Flask throughput ratios).
# Flask runs under gunicorn with sync workers and OPENBLAS_NUM_THREADS=1, restarted (and
# warmed up again) for every connection count; the Rust server runs throughout.
#
# Caveats: wrk is a closed-loop client, so its latency percentiles suffer from coordinated
# omission (a slow response delays the next request instead of being counted against it);
# they are comparable between servers measured the same way, not absolute service levels.
# wrk counts a response as a status error when its status is > 399. The machine's load
# average is recorded with every run: on a shared machine, compare runs of similar load.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/lib/lightfm-venv.sh"
DATA="$ROOT/../shared/data/completejourney-seed"
CACHE="${SERVE_BENCH_CACHE:-${HOME:-/root}/.cache/recsys/serve-bench}"
OUT="$ROOT/target/bench-serve"
VENV="$ROOT/.venv-lightfm"
PYTHON="${PYTHON:-python3}"
RUST_URL="" RUST_CMD="" RUST_PID=""
RUN_FLASK=1
FLASK_WORKERS="2 1"
FLASK_PORT=8001
FLASK_DETAILS="mongo memory"
CONNECTIONS="1 16 64"
DURATION=20
SOAK=0
SOAK_DURATION=60
RETRAIN=0
KEEP_DB=0

while [ $# -gt 0 ]; do
  case "$1" in
    --rust-url) RUST_URL="${2%/}"; shift ;;
    --rust-port) RUST_URL="http://127.0.0.1:$2"; shift ;;
    --rust-cmd) RUST_CMD="$2"; shift ;;
    --rust-pid) RUST_PID="$2"; shift ;;
    --no-flask) RUN_FLASK=0 ;;
    --flask-workers) FLASK_WORKERS="$2"; shift ;;
    --flask-port) FLASK_PORT="$2"; shift ;;
    --flask-details) FLASK_DETAILS="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --duration) DURATION="${2%s}"; shift ;;
    --soak) SOAK=1 ;;
    --soak-duration) SOAK_DURATION="${2%s}"; shift ;;
    --data) DATA="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --retrain) RETRAIN=1 ;;
    --keep-db) KEEP_DB=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo ">> $*" >&2; }
die() { echo "bench-serve.sh: error: $*" >&2; exit 1; }

[ -n "$RUST_CMD" ] && [ -z "$RUST_URL" ] && die "--rust-cmd needs --rust-url or --rust-port"
[ "$RUN_FLASK" = 1 ] || [ -n "$RUST_URL" ] || die "nothing to measure (--no-flask without --rust-url)"
for f in users.csv products.csv user_product_interactions.csv.gz test_pairs.csv.gz; do
  [ -f "$DATA/$f" ] || die "$DATA/$f not found; pass --data DIR (the Complete Journey folder)"
done
DATA="$(cd "$DATA" && pwd)"
mkdir -p "$OUT/logs" "$CACHE"
OUT="$(cd "$OUT" && pwd)"
export OPENBLAS_NUM_THREADS=1

# ------------------------------------------------------------------ cleanup of what we start
STARTED_PIDS=()
DB_STARTED=0
# children of a pid (from /proc, no extra tools)
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr '\n' ' '; }
# stops one process we started and its children (gunicorn: SIGINT = quick shutdown, the
# workers stop even in the middle of a request; then SIGKILL after 10 s), and forgets it
stop_pid() {
  local pid="$1" keep=() p kids
  kids="$(children "$pid")"
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    local alive=0
    for p in $pid $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in $pid $kids; do kill -9 "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
  for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  STARTED_PIDS=("${keep[@]}")
}
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  if [ "$DB_STARTED" = 1 ] && [ "$KEEP_DB" = 0 ]; then
    "$ROOT/scripts/db.sh" stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ 1. wrk
if ! command -v wrk >/dev/null; then
  say "installing wrk from apt"
  if [ "$(id -u)" = 0 ]; then APT=(apt-get); elif command -v sudo >/dev/null; then APT=(sudo apt-get); else
    die "wrk is missing and neither root nor sudo is available: install the Debian package wrk"
  fi
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q wrk >/dev/null ||
    { "${APT[@]}" update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q wrk >/dev/null; } ||
    die "apt-get install wrk failed"
fi

# ------------------------------------------------------------------ 2. venv
ensure_lightfm_venv "$VENV" "$ROOT/scripts/requirements-lightfm.txt" "$PYTHON" || die "LightFM venv setup failed"
PY="$VENV/bin/python"
if ! "$PY" "$ROOT/scripts/bench_serve/requirements_ok.py" "$ROOT/scripts/requirements-serve-bench.txt" >/dev/null 2>&1
then
  say "installing scripts/requirements-serve-bench.txt into $VENV"
  "$PY" -m pip --disable-pip-version-check -q install -r "$ROOT/scripts/requirements-serve-bench.txt"
fi

# ------------------------------------------------------------------ 3. database + import
export RECSYS_DB_STATE="${RECSYS_DB_STATE:-$CACHE/db-state}"
export RECSYS_DB_DATA="${RECSYS_DB_DATA:-$CACHE/db}"
if [ -z "${MONGODB_URI:-}" ] && ! "$ROOT/scripts/db.sh" status >/dev/null 2>&1; then DB_STARTED=1; fi
eval "$("$ROOT/scripts/db.sh" start)"
export MONGODB_URI
counts() {
  "$PY" "$ROOT/scripts/bench_serve/db_counts.py"
}
EXPECTED="2469 68509 867688"
have="$(counts)"
if [ "$have" != "$EXPECTED" ]; then
  say "importing $DATA (have users/products/interactions: $have; want $EXPECTED)"
  t0=$SECONDS
  (cd "$ROOT" && cargo run --release -q -p recsys-examples --example import -- "$DATA" --quiet) \
    >"$OUT/logs/import.log" 2>&1 || { tail -20 "$OUT/logs/import.log" >&2; die "import failed"; }
  say "import took $((SECONDS - t0)) s (log: $OUT/logs/import.log)"
  have="$(counts)"
  [ "$have" = "$EXPECTED" ] || die "after the import the collections hold $have, want $EXPECTED"
fi

# ------------------------------------------------------------------ 4. model + request sample
PREP=("$PY" "$ROOT/scripts/serve_bench_prepare.py" --data "$DATA" --out-dir "$CACHE")
[ "$RETRAIN" = 1 ] && PREP+=(--force)
"${PREP[@]}" 2>"$OUT/logs/prepare.log" || { tail -20 "$OUT/logs/prepare.log" >&2; die "prepare failed"; }
REQUESTS="$CACHE/requests.txt"
export SERVE_BENCH_MODEL="$CACHE/lightfm.pkl" SERVE_BENCH_DATA="$DATA"

# ------------------------------------------------------------------ helpers
port_of() { local rest="${1#*://}"; rest="${rest%%/*}"; echo "${rest##*:}"; }
wait_http() { # url seconds pid
  local deadline=$((SECONDS + $2))
  until curl -sS --max-time 10 -o /dev/null "$1/similar-products?n=1" 2>/dev/null; do   # any HTTP answer
    [ -z "$3" ] || kill -0 "$3" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# pids whose listening TCP socket is on PORT (from /proc/net/tcp*, no extra tools)
listen_pids() {
  local hex inodes pid fd
  hex="$(printf '%04X' "$1")"
  inodes="$(awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)"
  [ -n "$inodes" ] || return 0
  for pid in /proc/[0-9]*; do
    for fd in "$pid"/fd/*; do
      local link
      link="$(readlink "$fd" 2>/dev/null)" || continue
      case "$link" in socket:\[*\]) grep -qx "${link:8:-1}" <<<"$inodes" && { echo "${pid#/proc/}"; break; } ;; esac
    done
  done
}
# the root of a set of pids: the one whose parent is not in the set (gunicorn: the master)
root_pid() {
  local pids=" $* " p pp
  for p in "$@"; do
    pp="$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)" || continue
    [[ "$pids" == *" $pp "* ]] || { echo "$p"; return; }
  done
}
# RSS in kB of PID and all its descendants
tree_rss() {
  local all="$1" frontier="$1" next p kb=0
  while [ -n "$frontier" ]; do
    next=""
    for p in $frontier; do
      next+=" $(cat /proc/"$p"/task/*/children 2>/dev/null | tr '\n' ' ')"
    done
    frontier="$(echo $next)"
    all+=" $frontier"
  done
  for p in $all; do
    local v
    v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)" || true
    kb=$((kb + ${v:-0}))
  done
  echo "$kb $(echo $all | wc -w)"
}

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# A few sample requests (known users, no userId, an unknown user, no ids at all, an unknown
# product) should answer 200 with a JSON list of n {name, price, image, product_id}.
# Problems are printed as warnings (the load test still runs).
check() { # label url
  "$PY" "$ROOT/scripts/bench_serve/check_requests.py" "$1" "$2" "$REQUESTS" >&2 || true
}

run_wrk() { # label workers url connections duration
  local label="$1" workers="$2" url="$3" c="$4" d="$5" t log
  t=$((c < 2 ? c : 2))
  log="$OUT/logs/wrk-$label-w$workers-c$c-d$d.txt"
  local la
  la="$(load1)"
  wrk -t"$t" -c"$c" -d"${d}s" --timeout 60s --latency -s "$ROOT/scripts/loadtest.lua" "$url" -- "$REQUESTS" >"$log" 2>&1 ||
    { cat "$log" >&2; die "wrk failed against $url"; }
  local json
  json="$(sed -n 's/^WRK_JSON //p' "$log")"
  [ -n "$json" ] || { cat "$log" >&2; die "no WRK_JSON line in $log"; }
  "$PY" "$ROOT/scripts/bench_serve/record_wrk.py" \
    "$json" "$label" "$workers" "$c" "$la" "$([ "$SOAK" = 1 ] && echo soak || echo sweep)" >>"$RESULTS"
  tail -n1 "$RESULTS"
}

soak() { # label workers url pid
  local label="$1" workers="$2" url="$3" pid="$4" rss="$OUT/rss-$1-w$2.tsv"
  if [ -z "$pid" ]; then
    # shellcheck disable=SC2046
    pid="$(root_pid $(listen_pids "$(port_of "$url")"))"
  fi
  [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || die "$label: no process found listening on $url (give --rust-pid)"
  say "$label: soak ${SOAK_DURATION}s at 64 connections, RSS of pid $pid and its descendants -> $rss"
  printf 'second\trss_kb\tprocesses\n' >"$rss"
  (
    s=0
    while kill -0 "$pid" 2>/dev/null; do
      printf '%d\t%s\n' "$s" "$(tree_rss "$pid" | tr ' ' '\t')" >>"$rss"
      s=$((s + 1)); sleep 1
    done
  ) &
  local sampler=$!
  STARTED_PIDS+=("$sampler")
  run_wrk "$label" "$workers" "$url" 64 "$SOAK_DURATION" >/dev/null
  sleep 1
  stop_pid "$sampler"
  "$PY" "$ROOT/scripts/bench_serve/add_rss.py" "$rss" "$RESULTS"
}

warm_up() { # label workers url
  # 2 connections (not more: a slow server would still be working through a queue of
  # warm-up requests when the measurement starts)
  say "$1: warm-up 5 s at 2 connections"
  run_wrk "$1-warmup" "$2" "$3" 2 5 >/dev/null
  sed -i '$d' "$RESULTS"   # the warm-up is not a result
}

measure_one() { # label workers url pid connections
  if [ "$SOAK" = 1 ]; then
    soak "$1" "$2" "$3" "$4"
  else
    say "$1 (workers $2): $5 connection(s), ${DURATION}s (load average $(load1))"
    run_wrk "$1" "$2" "$3" "$5" "$DURATION" >/dev/null
  fi
}

# ------------------------------------------------------------------ 5. measure
say "machine: $(nproc) cores; $(uptime)"
LEVELS="$CONNECTIONS"
[ "$SOAK" = 1 ] && LEVELS=64
if [ -n "$RUST_URL" ]; then
  rust_pid="$RUST_PID"
  if [ -n "$RUST_CMD" ]; then
    say "starting the Rust server: $RUST_CMD"
    (cd "$ROOT" && exec bash -c "exec $RUST_CMD") >"$OUT/logs/rust-server.log" 2>&1 &
    started=$!
    STARTED_PIDS+=("$started")
    wait_http "$RUST_URL" 300 "$started" || { tail -20 "$OUT/logs/rust-server.log" >&2; die "the Rust server did not answer at $RUST_URL"; }
  else
    wait_http "$RUST_URL" 5 "" || die "nothing answers at $RUST_URL/similar-products"
  fi
  check rust "$RUST_URL"
  warm_up rust 1 "$RUST_URL"
  for c in $LEVELS; do measure_one rust 1 "$RUST_URL" "$rust_pid" "$c"; done
fi
if [ "$RUN_FLASK" = 1 ]; then
  FLASK_URL="http://127.0.0.1:$FLASK_PORT"
  port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$FLASK_PORT") 2>/dev/null; }
  port_busy && die "port $FLASK_PORT is in use; pass --flask-port"
  for details in $FLASK_DETAILS; do
    case "$details" in mongo) label=flask ;; memory) label=flask-memdetails ;; *) die "--flask-details: mongo or memory, not $details" ;; esac
    first=1
    for w in $FLASK_WORKERS; do
      for c in $LEVELS; do
        # A fresh gunicorn per connection count: sync workers finish every queued request,
        # even of a client that is gone, so a slow run would spill into the next one.
        for _ in $(seq 1 300); do port_busy || break; sleep 0.1; done
        port_busy && die "port $FLASK_PORT is still in use after stopping the previous Flask"
        flog="$OUT/logs/$label-w$w-c$c.log"
        say "starting $label (gunicorn, $w sync worker(s), details: $details) on $FLASK_URL"
        SERVE_BENCH_DETAILS="$details" "$VENV/bin/gunicorn" --workers "$w" --worker-class sync \
          --bind "127.0.0.1:$FLASK_PORT" --timeout 300 --chdir "$ROOT/scripts" seed_flask_app:app >"$flog" 2>&1 &
        fpid=$!
        STARTED_PIDS+=("$fpid")
        wait_http "$FLASK_URL" 300 "$fpid" || { tail -20 "$flog" >&2; die "Flask did not start (log: $flog)"; }
        [ "$first" = 1 ] && check "$label" "$FLASK_URL"
        first=0
        warm_up "$label" "$w" "$FLASK_URL"
        measure_one "$label" "$w" "$FLASK_URL" "$fpid" "$c"
        stop_pid "$fpid"
      done
    done
  done
fi

# ------------------------------------------------------------------ table
"$PY" "$ROOT/scripts/bench_serve/table.py" "$RESULTS"
echo "raw results: $RESULTS; wrk output: $OUT/logs" >&2
