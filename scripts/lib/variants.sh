# shellcheck shell=bash
# The benchmark variants on the Complete Journey split: one table for every script
# (scripts/bench-recsys.sh, scripts/compare-lightfm.sh). Source it, then
# `variant_flags NAME` prints the flags `evaluate` and scripts/lightfm_bench.py both take.
#
#   a       WARP, no features (pure CF)
#   b       BPR, no features (pure CF)
#   c       WARP hybrid: user id + demographics; item id + category, department, brand,
#           manufacturer_id, price (5 quantile buckets); rows L1-normalised, as LightFM
#   d       c without the item id feature (item metadata only)
#   cold    d trained without the training pairs of 10 % of the products, evaluated on them
#   kos     WARP-kOS (k 5, n 10, LightFM's defaults), no features
#   e       c with recsys' identity-anchored weighting (--metadata-weight 1) instead of L1
#   cold-e  cold with --metadata-weight 1
# e and cold-e are recsys-only (LightFM has no such weighting).

VARIANTS_ALL="a b c d cold kos e cold-e"
VARIANTS_LIGHTFM="a b c d cold kos"
VARIANT_DEMOGRAPHICS="age_group,income,home_ownership,marital_status,household_size,household_comp,kids_count"
VARIANT_ITEM_META="category,department,brand,manufacturer_id,price"

variant_flags() {
  local hybrid="--loss warp --user-features $VARIANT_DEMOGRAPHICS --item-features $VARIANT_ITEM_META --quantiles 5"
  case "$1" in
    a) echo "--loss warp" ;;
    b) echo "--loss bpr" ;;
    c) echo "$hybrid" ;;
    d) echo "$hybrid --no-identity" ;;
    cold) echo "$hybrid --no-identity --cold-start-items 0.1" ;;
    kos) echo "--loss warp-kos" ;;
    e) echo "$hybrid --metadata-weight 1" ;;
    cold-e) echo "$hybrid --no-identity --cold-start-items 0.1 --metadata-weight 1" ;;
    *) echo "unknown variant '$1' (one of: $VARIANTS_ALL)" >&2; return 1 ;;
  esac
}
