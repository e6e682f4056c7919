//! [`FeatureVocabulary`]: feature names ⇄ feature indices, plus the numeric bucket edges
//! learned at build time; and the rules that turn a record into a feature row.
//!
//! The rules are documented on [`FeatureVocabulary`].

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::columns::RecordColumns;
use crate::error::{FeaturesError, Result};
use crate::spec::{Bucketing, ColumnKind, FeatureSpec};

/// One feature (one column of a feature matrix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Feature {
    /// The identity feature of row `row` (a user's or an item's own feature).
    Identity(usize),
    /// A column value: `column` is the position in [`FeatureSpec::columns`], `value` the
    /// non-empty value text (a bucket name such as `q3` for numeric columns).
    Value(usize, String),
}

/// A sparse feature row: `(feature index, weight)` pairs, sorted by index, no repeats.
pub type FeatureRow = Vec<(usize, f32)>;

/// `numpy.quantile(values, [k / q for k in range(1, q)])` with numpy's default `linear`
/// method, over the finite entries of `values` (non-finite entries are ignored). Returns
/// `q - 1` non-decreasing edges; none when `q <= 1` or no value is finite.
///
/// Exactly as numpy ≥ 1.22 computes it, so a Python script reproduces the same edges bit for
/// bit: sort the `n` values `x`; for each probability `p = k / q` (computed as
/// `k as f64 / q as f64`, i.e. Python's `k / q`, *not* `np.linspace`), let
/// `h = (n - 1) * p`; if `h >= n - 1` the edge is `x[n-1]`; otherwise with `i = floor(h)`,
/// `g = h - i`, `d = x[i+1] - x[i]`, the edge is `x[i] + d * g` when `g < 0.5` and
/// `x[i+1] - d * (1 - g)` otherwise (numpy's `_lerp`).
///
/// ```
/// use recsys_features::quantile_edges;
///
/// // numpy.quantile([1, 2, 3, 4], [0.25, 0.5, 0.75]) == [1.75, 2.5, 3.25]
/// assert_eq!(quantile_edges(&[4.0, 1.0, 3.0, 2.0], 4), vec![1.75, 2.5, 3.25]);
/// assert_eq!(quantile_edges(&[f64::NAN, 5.0], 2), vec![5.0]);
/// assert!(quantile_edges(&[], 4).is_empty());
/// ```
pub fn quantile_edges(values: &[f64], quantiles: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() || quantiles <= 1 {
        return Vec::new();
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    let last = (n - 1) as f64;
    (1..quantiles)
        .map(|k| {
            let p = k as f64 / quantiles as f64;
            let h = last * p;
            if h >= last {
                return sorted[n - 1];
            }
            let i = h.floor();
            let g = h - i;
            let (a, b) = (sorted[i as usize], sorted[i as usize + 1]);
            let d = b - a;
            if g >= 0.5 {
                b - d * (1.0 - g)
            } else {
                a + d * g
            }
        })
        .collect()
}

/// The bucket of `value`: the number of `edges` that are `<= value` (numpy's
/// `searchsorted(edges, value, side="right")`; `edges` must be sorted).
///
/// ```
/// use recsys_features::bucket_index;
///
/// let edges = [10.0, 20.0, 20.0, 30.0];
/// assert_eq!(bucket_index(&edges, 5.0), 0);
/// assert_eq!(bucket_index(&edges, 10.0), 1);
/// assert_eq!(bucket_index(&edges, 20.0), 3);
/// assert_eq!(bucket_index(&edges, 99.0), 4);
/// ```
pub fn bucket_index(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|&e| e <= value)
}

/// What one column of one record holds, before bucket edges are known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnContent {
    /// Nothing usable.
    Absent,
    /// Text values with their weights (column weight already applied).
    Values(Vec<(String, f32)>),
    /// A finite number to bucket.
    Number(f64),
}

/// Extracts every column of `spec` from `record` (see [`FeatureVocabulary`] for the rules).
pub(crate) fn extract_columns(
    spec: &FeatureSpec,
    record: &impl RecordColumns,
) -> Vec<ColumnContent> {
    spec.columns
        .iter()
        .map(|column| {
            let Some(raw) = record.column(&column.name) else {
                return ColumnContent::Absent;
            };
            let scaled = |w: f32| {
                let w = w * column.weight;
                (w.is_finite() && w > 0.0).then_some(w)
            };
            match &column.kind {
                ColumnKind::Numeric(_) => match raw.as_number() {
                    Some(v) => ColumnContent::Number(v),
                    None => ColumnContent::Absent,
                },
                ColumnKind::Categorical => match (raw.as_text(), scaled(1.0)) {
                    (Some(text), Some(w)) => ColumnContent::Values(vec![(text.into_owned(), w)]),
                    _ => ColumnContent::Absent,
                },
                ColumnKind::MultiValued {
                    separator,
                    weighted,
                } => {
                    let Some(text) = raw.as_text() else {
                        return ColumnContent::Absent;
                    };
                    let values: Vec<(String, f32)> = text
                        .split(*separator)
                        .filter_map(|part| {
                            let (value, weight) = if *weighted {
                                split_weighted_part(part)?
                            } else {
                                (part.trim(), 1.0)
                            };
                            if value.is_empty() {
                                return None;
                            }
                            Some((value.to_string(), scaled(weight)?))
                        })
                        .collect();
                    if values.is_empty() {
                        ColumnContent::Absent
                    } else {
                        ColumnContent::Values(values)
                    }
                }
            }
        })
        .collect()
}

/// `"red:0.7"` → `("red", 0.7)`; `"red"` → `("red", 1.0)`; bad weight → `None`.
fn split_weighted_part(part: &str) -> Option<(&str, f32)> {
    match part.rsplit_once(':') {
        None => Some((part.trim(), 1.0)),
        Some((value, weight)) => {
            let weight = weight.trim().parse::<f32>().ok()?;
            (weight.is_finite() && weight > 0.0).then_some((value.trim(), weight))
        }
    }
}

/// Sorts by feature index and sums repeats ([`recsys_core::canonical_row`]).
pub(crate) fn canonical_row(mut row: FeatureRow) -> FeatureRow {
    recsys_core::canonical_row(&mut row);
    row
}

/// Applies the spec's row weighting: identity-anchored when
/// [`FeatureSpec::metadata_weight`] is set, else L1 when [`FeatureSpec::normalize`] is.
/// `identity` is the row's identity feature, if it has one.
pub(crate) fn weight_row(spec: &FeatureSpec, row: &mut [(usize, f32)], identity: Option<usize>) {
    if let Some(w) = spec.metadata_weight {
        let sum: f64 = row
            .iter()
            .filter(|(f, _)| Some(*f) != identity)
            .map(|&(_, v)| f64::from(v.abs()))
            .sum();
        for (f, v) in row.iter_mut() {
            if Some(*f) == identity {
                *v = 1.0;
            } else if sum > 0.0 && sum.is_finite() {
                *v = (f64::from(*v) / sum * f64::from(w)) as f32;
            }
        }
    } else if spec.normalize {
        normalize_l1(row);
    }
}

/// Divides a row by the sum of its absolute weights (computed in `f64`); empty rows stay
/// empty.
pub(crate) fn normalize_l1(row: &mut [(usize, f32)]) {
    let sum: f64 = row.iter().map(|&(_, w)| f64::from(w.abs())).sum();
    if sum > 0.0 && sum.is_finite() {
        for (_, w) in row.iter_mut() {
            *w = (f64::from(*w) / sum) as f32;
        }
    }
}

/// The features of one side (users or items): their names and indices, the spec they come
/// from and the bucket edges learned when the dataset was built.
///
/// Index order: when the dataset is built, identity features first (row `r` ↦ feature `r`,
/// exactly like LightFM's `Dataset`), then column values in first-seen order (rows in
/// registration order, columns in spec order, values in text order). Rows and values added
/// after the build are appended (a new row's identity feature, then its new values), so
/// existing indices never change.
///
/// Serialised as `{spec, bucket_edges, features}`; lookups are rebuilt on load and the data
/// is checked for consistency.
///
/// # From record to feature row
///
/// For each column of the [`FeatureSpec`], in order, the record's value
/// ([`RecordColumns::column`]) becomes zero or more `(value, weight)` pairs:
///
/// * **Categorical**: the trimmed text (numbers formatted, see
///   [`ColumnValue::as_text`](crate::ColumnValue::as_text)), weight 1.
/// * **Multi-valued**: the text split at the separator, each part trimmed; empty parts are
///   skipped. Weighted columns split each part at its last `:` into value and weight; a part
///   without `:` has weight 1, a part whose weight is not a finite number `> 0` is skipped.
/// * **Numeric**: the value parsed as a finite `f64`
///   ([`ColumnValue::as_number`](crate::ColumnValue::as_number)), then bucketed:
///   `bucket = bucket_index(edges, value)` and the value is named `q{bucket}` (quantiles) or
///   `b{bucket}` (fixed edges).
///
/// Absent, empty and unparsable values give nothing: no feature is ever named `""` or
/// `column:`. Each weight is multiplied by the column weight (pairs whose product is not
/// finite and `> 0` are dropped). The feature is `column:value`. A row lists each feature
/// once (repeats within a row are summed), sorted by index. With `normalize`, the row,
/// identity feature included, is divided by its sum (L1); an empty row stays empty.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVocabulary {
    spec: FeatureSpec,
    /// Per column: `Some(edges)` for numeric columns.
    bucket_edges: Vec<Option<Vec<f64>>>,
    features: Vec<Feature>,
    /// Per column: value text → feature index.
    index_by_value: Vec<HashMap<String, usize>>,
    /// Row → its identity feature index.
    identity_features: Vec<usize>,
}

impl FeatureVocabulary {
    /// An empty vocabulary for `spec`, with the edges of numeric columns learned from
    /// `numeric_values[c]` (all observed values of column `c`; ignored for non-numeric
    /// columns).
    pub(crate) fn with_learned_edges(spec: FeatureSpec, numeric_values: &[Vec<f64>]) -> Self {
        let bucket_edges = spec
            .columns
            .iter()
            .enumerate()
            .map(|(c, column)| match &column.kind {
                ColumnKind::Numeric(Bucketing::Quantiles(q)) => Some(quantile_edges(
                    numeric_values.get(c).map_or(&[][..], |v| v.as_slice()),
                    *q,
                )),
                ColumnKind::Numeric(Bucketing::Edges(edges)) => Some(edges.clone()),
                _ => None,
            })
            .collect();
        let index_by_value = vec![HashMap::new(); spec.columns.len()];
        FeatureVocabulary {
            spec,
            bucket_edges,
            features: Vec::new(),
            index_by_value,
            identity_features: Vec::new(),
        }
    }

    /// The spec these features come from.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Number of features (the column count of the feature matrix).
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when there are no features.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The feature at `index`.
    pub fn feature(&self, index: usize) -> Option<&Feature> {
        self.features.get(index)
    }

    /// All features in index order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The column of every feature, in index order: `Some(c)` for a value of column `c`
    /// (its position in [`FeatureSpec::columns`]), `None` for identity features — the
    /// grouping `recsys_core::ContentModel::fit` takes.
    pub fn feature_columns(&self) -> Vec<Option<usize>> {
        self.features
            .iter()
            .map(|f| match f {
                Feature::Identity(_) => None,
                Feature::Value(c, _) => Some(*c),
            })
            .collect()
    }

    /// The index of the feature `column:value` (`value` as stored: trimmed text or a bucket
    /// name such as `q3`).
    pub fn value_index(&self, column: &str, value: &str) -> Option<usize> {
        let (c, _) = self.spec.column(column)?;
        self.index_by_value[c].get(value).copied()
    }

    /// The identity feature of `row`, when identity features are on and the row exists.
    pub fn identity_index(&self, row: usize) -> Option<usize> {
        self.identity_features.get(row).copied()
    }

    /// The name `column:value` of a value feature; `None` for identity features (their name
    /// is their row's external id, see [`Dataset::item_feature_name`](crate::Dataset)) and
    /// out-of-range indices.
    pub fn feature_name(&self, index: usize) -> Option<String> {
        match self.features.get(index)? {
            Feature::Identity(_) => None,
            Feature::Value(c, value) => Some(format!("{}:{}", self.spec.columns[*c].name, value)),
        }
    }

    /// Categorical columns with a value that contains `|` or `;`, the separators a
    /// multi-valued column splits at: such a column may have been meant as `name:multi`
    /// (or `name:multi(;)`). One `(column, first such value, separator)` per column, in
    /// column order.
    pub fn possibly_multi_valued(&self) -> Vec<(String, String, char)> {
        let mut found: Vec<Option<(String, char)>> = vec![None; self.spec.columns.len()];
        for feature in &self.features {
            let Feature::Value(c, value) = feature else {
                continue;
            };
            if found[*c].is_some() || self.spec.columns[*c].kind != ColumnKind::Categorical {
                continue;
            }
            if let Some(separator) = value.chars().find(|ch| matches!(ch, '|' | ';')) {
                found[*c] = Some((value.clone(), separator));
            }
        }
        found
            .into_iter()
            .enumerate()
            .filter_map(|(c, f)| f.map(|(v, sep)| (self.spec.columns[c].name.clone(), v, sep)))
            .collect()
    }

    /// The bucket edges of numeric column `column` (learned quantile edges or the fixed
    /// ones).
    pub fn bucket_edges(&self, column: &str) -> Option<&[f64]> {
        let (c, _) = self.spec.column(column)?;
        self.bucket_edges[c].as_deref()
    }

    /// The feature row of a record that was not registered (cold start): its column values
    /// looked up in this vocabulary; unknown values are skipped, there is no identity
    /// feature, and the row is L1-normalised when the spec says so. Empty when no value is
    /// known.
    pub fn feature_row(&self, record: &impl RecordColumns) -> FeatureRow {
        let contents = extract_columns(&self.spec, record);
        let mut row = canonical_row(self.lookup_values(&contents));
        weight_row(&self.spec, &mut row, None);
        row
    }

    /// Feature indices of known values (nothing is registered).
    pub(crate) fn lookup_values(&self, contents: &[ColumnContent]) -> FeatureRow {
        let mut row = Vec::new();
        self.for_each_value(contents, |c, value, w| {
            if let Some(&f) = self.index_by_value[c].get(value) {
                row.push((f, w));
            }
        });
        row
    }

    /// Feature indices of all values, registering new ones.
    pub(crate) fn register_values(&mut self, contents: &[ColumnContent]) -> FeatureRow {
        let mut pairs: Vec<(usize, String, f32)> = Vec::new();
        self.for_each_value(contents, |c, value, w| {
            pairs.push((c, value.to_string(), w))
        });
        pairs
            .into_iter()
            .map(|(c, value, w)| {
                let next = self.features.len();
                let f = match self.index_by_value[c].get(&value) {
                    Some(&f) => f,
                    None => {
                        self.index_by_value[c].insert(value.clone(), next);
                        self.features.push(Feature::Value(c, value));
                        next
                    }
                };
                (f, w)
            })
            .collect()
    }

    /// Appends the identity feature of the next row and returns its index.
    pub(crate) fn register_identity(&mut self) -> usize {
        let f = self.features.len();
        self.features
            .push(Feature::Identity(self.identity_features.len()));
        self.identity_features.push(f);
        f
    }

    /// Calls `each(column, value, weight)` for every value in `contents`, bucketing numbers.
    fn for_each_value(&self, contents: &[ColumnContent], mut each: impl FnMut(usize, &str, f32)) {
        for (c, content) in contents.iter().enumerate() {
            match content {
                ColumnContent::Absent => {}
                ColumnContent::Values(values) => {
                    for (value, w) in values {
                        each(c, value, *w);
                    }
                }
                ColumnContent::Number(v) => {
                    let (Some(edges), ColumnKind::Numeric(bucketing)) =
                        (&self.bucket_edges[c], &self.spec.columns[c].kind)
                    else {
                        continue;
                    };
                    let prefix = match bucketing {
                        Bucketing::Quantiles(_) => 'q',
                        Bucketing::Edges(_) => 'b',
                    };
                    let name = format!("{prefix}{}", bucket_index(edges, *v));
                    each(c, &name, self.spec.columns[c].weight);
                }
            }
        }
    }
}

#[derive(Serialize)]
struct VocabularyRef<'a> {
    spec: &'a FeatureSpec,
    bucket_edges: &'a [Option<Vec<f64>>],
    features: &'a [Feature],
}

#[derive(Deserialize)]
struct VocabularyData {
    spec: FeatureSpec,
    bucket_edges: Vec<Option<Vec<f64>>>,
    features: Vec<Feature>,
}

impl Serialize for FeatureVocabulary {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        VocabularyRef {
            spec: &self.spec,
            bucket_edges: &self.bucket_edges,
            features: &self.features,
        }
        .serialize(serializer)
    }
}

impl FeatureVocabulary {
    /// Deserialises like the `Deserialize` impl, but returns a vocabulary that decodes and is
    /// inconsistent as `Ok(Err(reason))`, so that formats which drop error messages
    /// (postcard, in the artifact bundle) can still say what is wrong.
    pub fn deserialize_validated<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        Ok(FeatureVocabulary::try_from(VocabularyData::deserialize(
            deserializer,
        )?))
    }
}

impl<'de> Deserialize<'de> for FeatureVocabulary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let data = VocabularyData::deserialize(deserializer)?;
        FeatureVocabulary::try_from(data).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<VocabularyData> for FeatureVocabulary {
    type Error = FeaturesError;

    fn try_from(data: VocabularyData) -> Result<Self> {
        let corrupt = |reason: String| FeaturesError::Corrupt {
            what: "feature vocabulary",
            reason,
        };
        data.spec.validate()?;
        let n_columns = data.spec.columns.len();
        if data.bucket_edges.len() != n_columns {
            return Err(corrupt(format!(
                "{} bucket-edge lists for {} columns",
                data.bucket_edges.len(),
                n_columns
            )));
        }
        for (column, edges) in data.spec.columns.iter().zip(&data.bucket_edges) {
            let numeric = matches!(column.kind, ColumnKind::Numeric(_));
            match edges {
                Some(edges) if numeric => {
                    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] > w[1])
                    {
                        return Err(corrupt(format!(
                            "bucket edges of column `{}` are not finite and sorted: {edges:?}",
                            column.name
                        )));
                    }
                }
                None if !numeric => {}
                _ => {
                    return Err(corrupt(format!(
                        "column `{}` has bucket edges iff it is numeric is violated",
                        column.name
                    )))
                }
            }
        }
        let mut index_by_value = vec![HashMap::new(); n_columns];
        let mut identity_features = Vec::new();
        for (f, feature) in data.features.iter().enumerate() {
            match feature {
                Feature::Identity(row) => {
                    if !data.spec.identity || *row != identity_features.len() {
                        return Err(corrupt(format!(
                            "feature {f} is the identity of row {row}, expected {}",
                            if data.spec.identity {
                                format!("row {}", identity_features.len())
                            } else {
                                "no identity features".to_string()
                            }
                        )));
                    }
                    identity_features.push(f);
                }
                Feature::Value(c, value) => {
                    if *c >= n_columns || value.is_empty() {
                        return Err(corrupt(format!(
                            "feature {f} ({c}, {value:?}) names no column or has an empty value"
                        )));
                    }
                    if let Some(first) = index_by_value[*c].insert(value.clone(), f) {
                        return Err(corrupt(format!(
                            "feature `{}:{value}` appears at indices {first} and {f}",
                            data.spec.columns[*c].name
                        )));
                    }
                }
            }
        }
        Ok(FeatureVocabulary {
            spec: data.spec,
            bucket_edges: data.bucket_edges,
            features: data.features,
            index_by_value,
            identity_features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Attributes;
    use crate::spec::ColumnSpec;
    use approx::assert_relative_eq;
    use proptest::prelude::*;

    /// Textbook definition: the `p`-quantile of sorted `x` is at fractional position
    /// `(n - 1) p`, linearly interpolated.
    fn slow_quantile(values: &[f64], p: f64) -> f64 {
        let mut x = values.to_vec();
        x.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let h = (x.len() - 1) as f64 * p;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(x.len() - 1);
        x[lo] + (h - lo as f64) * (x[hi] - x[lo])
    }

    #[test]
    fn quantile_edges_match_numpy_outputs() {
        // Bit-exact values printed by numpy 2.4.6:
        // repr(np.quantile(x, [k / q for k in range(1, q)])).
        assert_eq!(
            quantile_edges(&[1.0, 2.0, 3.0, 4.0], 4),
            vec![1.75, 2.5, 3.25]
        );
        assert_eq!(
            quantile_edges(&[10.0, 20.0, 30.0], 3),
            vec![16.666666666666664, 23.333333333333332]
        );
        assert_eq!(
            quantile_edges(&[0.1, 0.7, 0.2, 5.3, 2.2, 9.9, 0.3], 5),
            vec![
                0.22000000000000003,
                0.46000000000000013,
                1.5999999999999996,
                4.680000000000002
            ]
        );
        // v = [(i * 37 % 101) * 0.37 + 0.01 * i for i in range(57)], q = 7.
        let v: Vec<f64> = (0..57)
            .map(|i| ((i * 37 % 101) as f64) * 0.37 + 0.01 * i as f64)
            .collect();
        let edges = quantile_edges(&v, 7);
        assert_eq!(
            edges,
            vec![
                4.949999999999999,
                11.120000000000001,
                16.07,
                21.09,
                26.11,
                31.13
            ]
        );
        // np.searchsorted(edges, [v[0], v[5], v[10]], side="right") == [0, 6, 4]
        assert_eq!(
            [v[0], v[5], v[10]].map(|x| bucket_index(&edges, x)),
            [0, 6, 4]
        );
        assert_eq!(quantile_edges(&[7.0], 4), vec![7.0, 7.0, 7.0]);
        assert_eq!(quantile_edges(&[1.0, 1.0, 1.0, 9.0], 2), vec![1.0]);
        assert!(quantile_edges(&[1.0, 2.0], 1).is_empty());
    }

    proptest! {
        #[test]
        fn quantile_edges_match_slow_reference(
            values in proptest::collection::vec(-1e6f64..1e6, 1..80),
            q in 1usize..12,
        ) {
            let edges = quantile_edges(&values, q);
            prop_assert_eq!(edges.len(), q - 1);
            prop_assert!(edges.windows(2).all(|w| w[0] <= w[1]), "{:?}", edges);
            for (k, e) in edges.iter().enumerate() {
                let expected = slow_quantile(&values, (k + 1) as f64 / q as f64);
                prop_assert!((e - expected).abs() <= 1e-9 * (1.0 + expected.abs()),
                    "k={} edge={} expected={}", k + 1, e, expected);
            }
            // searchsorted(side="right") = number of edges <= v, checked by counting.
            for &v in &values {
                prop_assert_eq!(bucket_index(&edges, v), edges.iter().filter(|&&e| e <= v).count());
            }
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn extraction_rules() {
        let spec = FeatureSpec::attributes_only()
            .with_column(ColumnSpec::categorical("brand").with_weight(2.0))
            .with_column(ColumnSpec::multi_valued("tags", '|'))
            .with_column(ColumnSpec::weighted_multi_valued("mix", '|'))
            .with_column(ColumnSpec::edges("size", vec![10.0, 20.0]));
        let record = attrs(&[
            ("brand", "  Nike "),
            ("tags", "red| |blue||"),
            ("mix", "a:0.5|b|c:x|d:-1|:3|e:0| f : 2 "),
            ("size", "15"),
        ]);
        let contents = extract_columns(&spec, &record);
        assert_eq!(
            contents,
            vec![
                ColumnContent::Values(vec![("Nike".into(), 2.0)]),
                ColumnContent::Values(vec![("red".into(), 1.0), ("blue".into(), 1.0)]),
                ColumnContent::Values(vec![
                    ("a".into(), 0.5),
                    ("b".into(), 1.0),
                    ("f".into(), 2.0)
                ]),
                ColumnContent::Number(15.0),
            ]
        );
        let empty = attrs(&[("brand", " "), ("tags", "|"), ("size", "big")]);
        assert!(extract_columns(&spec, &empty)
            .iter()
            .all(|c| *c == ColumnContent::Absent));
    }

    /// A categorical value holding `|` or `;` is reported once per column with the
    /// separator it holds; multi-valued and numeric columns never are.
    #[test]
    fn categorical_values_with_separators_are_reported_once_per_column() {
        let spec = FeatureSpec::identity_only()
            .with_column(ColumnSpec::categorical("tags"))
            .with_column(ColumnSpec::categorical("brand"))
            .with_column(ColumnSpec::multi_valued("colours", '|'))
            .with_column(ColumnSpec::categorical("size"));
        let mut vocab =
            FeatureVocabulary::with_learned_edges(spec, &[vec![], vec![], vec![], vec![]]);
        for record in [
            [
                ("tags", "red|blue"),
                ("brand", "A"),
                ("colours", "x|y"),
                ("size", "M"),
            ],
            [
                ("tags", "green|red"),
                ("brand", "B;C"),
                ("colours", "z"),
                ("size", "L"),
            ],
        ] {
            let contents = extract_columns(vocab.spec(), &attrs(&record));
            vocab.register_values(&contents);
        }
        assert_eq!(
            vocab.possibly_multi_valued(),
            vec![
                ("tags".to_string(), "red|blue".to_string(), '|'),
                ("brand".to_string(), "B;C".to_string(), ';'),
            ]
        );
    }

    #[test]
    fn register_then_lookup() {
        let spec = FeatureSpec::identity_only()
            .with_column(ColumnSpec::categorical("brand"))
            .with_column(ColumnSpec::quantiles("age", 2));
        let mut vocab = FeatureVocabulary::with_learned_edges(spec, &[vec![], vec![20.0, 40.0]]);
        assert_eq!(vocab.bucket_edges("age"), Some(&[30.0][..]));
        assert_eq!(vocab.register_identity(), 0);
        let contents = extract_columns(vocab.spec(), &attrs(&[("brand", "X"), ("age", "35")]));
        assert_eq!(vocab.register_values(&contents), vec![(1, 1.0), (2, 1.0)]);
        assert_eq!(vocab.feature_name(2).as_deref(), Some("age:q1"));
        assert_eq!(vocab.feature_name(0), None);
        assert_eq!(vocab.value_index("brand", "X"), Some(1));
        assert_eq!(vocab.identity_index(0), Some(0));
        assert_eq!(vocab.feature_columns(), vec![None, Some(0), Some(1)]);
        let unseen = attrs(&[("brand", "Y"), ("age", "31")]);
        assert_eq!(vocab.feature_row(&unseen), vec![(2, 1.0)]);

        let json = serde_json::to_string(&vocab).unwrap();
        let back: FeatureVocabulary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vocab);
        let broken = json.replace(r#"{"Identity":0}"#, r#"{"Identity":3}"#);
        let err = serde_json::from_str::<FeatureVocabulary>(&broken).unwrap_err();
        assert!(err.to_string().contains("identity of row 3"), "{err}");
    }

    #[test]
    fn rows_are_canonical_and_normalised() {
        let mut row = canonical_row(vec![(3, 1.0), (1, 2.0), (3, 1.0)]);
        assert_eq!(row, vec![(1, 2.0), (3, 2.0)]);
        normalize_l1(&mut row);
        assert_relative_eq!(row[0].1 + row[1].1, 1.0);
        let mut empty: FeatureRow = Vec::new();
        normalize_l1(&mut empty);
        assert!(empty.is_empty());
    }
}
