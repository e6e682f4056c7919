#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's:
#   1. installs the system packages the build needs (OpenBLAS for ndarray-linalg),
#   2. starts a real MongoDB-compatible server (scripts/db.sh: $MONGODB_URI, a mongod on
#      PATH, or FerretDB built from the Go module proxy) and stops it again on exit,
#   3. runs every test of the workspace against it (RECSYS_REQUIRE_DB=1 makes the
#      database tests fail instead of skip when no server answers).
# Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# ---- 1. system packages --------------------------------------------------------------
missing=()
for pkg in libopenblas-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# BLAS threads would fight rayon's.
export OPENBLAS_NUM_THREADS=1

# ---- 2. database -----------------------------------------------------------------------
if [ -x scripts/db.sh ]; then
  eval "$(scripts/db.sh start)"
  trap 'scripts/db.sh stop >&2 || true' EXIT
  export RECSYS_REQUIRE_DB=1
  log "database: ${MONGODB_URI%%@*}…"
else
  log "scripts/db.sh not present: database tests will skip"
fi

# ---- 3. tests --------------------------------------------------------------------------
cargo test --workspace "$@"
