# shellcheck shell=bash
# What the Complete Journey benchmark scripts (scripts/bench-recsys.sh,
# scripts/compare-lightfm.sh, scripts/compare-implicit.sh) share. Source it, then:
#
#   bench_option ARG [VALUE]   takes one of the common options --data DIR, --threads LIST,
#                              --variants LIST, --epochs N, --out FILE into DATA, THREADS,
#                              VARIANTS, EPOCHS, OUT and sets BENCH_SHIFT to the number of
#                              words it used; returns 1 (and sets nothing) for any other ARG
#   bench_data_dir DIR         prints DIR as an absolute path, or explains on stderr that
#                              it is not a complete Complete Journey split and returns 1
#   bench_results FILE         creates FILE's folder and its logs/ folder (LOGDIR),
#                              truncates FILE
#   BENCH_PY_PATH              prepend to a Python snippet's sys.path to import
#                              scripts/bench_common.py

BENCH_PY_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bench_option() {
  case "$1" in
    --data) DATA="$2" ;;
    --threads) THREADS="$2" ;;
    --variants) VARIANTS="$2" ;;
    --epochs) EPOCHS="$2" ;;
    --out) OUT="$2" ;;
    *) return 1 ;;
  esac
  # shellcheck disable=SC2034 # read by the sourcing script
  BENCH_SHIFT=2
}

bench_data_dir() {
  if [ ! -f "$1/user_product_interactions.csv.gz" ] || [ ! -f "$1/test_pairs.csv.gz" ]; then
    echo "error: data directory '$1' not found or incomplete (need users.csv, products.csv," >&2
    echo "       user_product_interactions.csv.gz, test_pairs.csv.gz); pass --data DIR" >&2
    return 1
  fi
  (cd "$1" && pwd)
}

bench_results() {
  mkdir -p "$(dirname "$1")"
  : > "$1"
  LOGDIR="$(dirname "$1")/logs"
  mkdir -p "$LOGDIR"
}
