#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's:
#   1. installs the system packages the build and the tests need (OpenBLAS for
#      ndarray-linalg; Chromium for the storefront's browser test),
#   2. starts a real MongoDB-compatible server (scripts/db.sh: $MONGODB_URI, a mongod on
#      PATH, or FerretDB built from the Go module proxy) and stops it again on exit,
#   3. checks that the quickstart (the README's first command) binds no system library,
#   4. runs every test of the workspace against it (RECSYS_REQUIRE_DB=1 makes the
#      database tests fail instead of skip when no server answers).
# Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# ---- 1. system packages --------------------------------------------------------------
missing=()
for pkg in libopenblas-dev pkg-config chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The storefront's browser test (crates/recsys-server/tests/browser.rs) fails instead of
# skipping when no Chromium is found.
export RECSYS_REQUIRE_BROWSER=1

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

# ---- 3. the README's first command needs nothing beyond cargo --------------------------
# The quickstart's dependency graph must not bind a system library (no `*-sys`/`*-src`
# crate: LAPACK stays behind recsys-core's `lapack` feature, which the examples leave off).
sys_crates=$(cargo tree -q -p recsys-examples -e normal,build --prefix none --format '{p}' \
  | awk '{print $1}' | grep -E -- '-(sys|src)$' | sort -u || true)
if [ -n "$sys_crates" ]; then
  log "the quickstart would need system libraries, through: $sys_crates"
  exit 1
fi

# ---- 4. tests --------------------------------------------------------------------------
cargo test --workspace "$@"
