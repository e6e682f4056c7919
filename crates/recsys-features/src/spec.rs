//! What to turn into features: [`FeatureSpec`], [`ColumnSpec`], [`ColumnKind`], [`Bucketing`].
//!
//! The command-line syntax is documented on [`FeatureSpec`].

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::columns::RecordColumns;
use crate::error::{FeaturesError, Result};

/// How a numeric column is cut into buckets; each bucket is one categorical feature.
///
/// The bucket of a value `v` is the number of edges `<= v` (numpy's
/// `searchsorted(edges, v, side="right")`), so `k` edges give buckets `0..=k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Bucketing {
    /// `q` buckets of (roughly) equal population; the `q - 1` edges are learned from the data
    /// when the dataset is built (see [`crate::quantile_edges`] for the exact rule). Feature
    /// values are named `q0`, `q1`, … (`price:q3`).
    Quantiles(usize),
    /// Fixed edges (finite, non-decreasing). Feature values are named `b0`, `b1`, …
    /// (`price:b2`).
    Edges(Vec<f64>),
}

/// How the text of a column becomes feature values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ColumnKind {
    /// The whole (trimmed) value is one feature: `brand:Nike`.
    Categorical,
    /// The value is a list split at `separator`, each (trimmed, non-empty) part a feature:
    /// `red|blue` → `tags:red`, `tags:blue`.
    ///
    /// With `weighted`, each part may end in `:weight` (`red:0.7|blue:0.3`), split at the
    /// part's last `:`. A part without `:` has weight 1; a part whose weight does not parse
    /// as a finite number `> 0` is skipped.
    MultiValued {
        /// The list separator.
        separator: char,
        /// Whether parts carry `:weight` suffixes.
        weighted: bool,
    },
    /// The value is a number, bucketed.
    Numeric(Bucketing),
}

/// One column of records that becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column name, as understood by [`RecordColumns`].
    pub name: String,
    /// How its values become features.
    pub kind: ColumnKind,
    /// Multiplies the weight of every feature from this column; finite and `> 0`.
    pub weight: f32,
}

impl ColumnSpec {
    /// A categorical column with weight 1.
    pub fn categorical(name: impl Into<String>) -> Self {
        Self::with_kind(name, ColumnKind::Categorical)
    }

    /// A multi-valued column (`red|blue` for separator `|`) with weight 1.
    pub fn multi_valued(name: impl Into<String>, separator: char) -> Self {
        Self::with_kind(
            name,
            ColumnKind::MultiValued {
                separator,
                weighted: false,
            },
        )
    }

    /// A weighted multi-valued column (`red:0.7|blue:0.3` for separator `|`) with weight 1.
    pub fn weighted_multi_valued(name: impl Into<String>, separator: char) -> Self {
        Self::with_kind(
            name,
            ColumnKind::MultiValued {
                separator,
                weighted: true,
            },
        )
    }

    /// A numeric column cut into `quantiles` buckets of equal population, weight 1.
    pub fn quantiles(name: impl Into<String>, quantiles: usize) -> Self {
        Self::with_kind(name, ColumnKind::Numeric(Bucketing::Quantiles(quantiles)))
    }

    /// A numeric column cut at fixed `edges`, weight 1.
    pub fn edges(name: impl Into<String>, edges: Vec<f64>) -> Self {
        Self::with_kind(name, ColumnKind::Numeric(Bucketing::Edges(edges)))
    }

    /// A column of the given kind with weight 1.
    pub fn with_kind(name: impl Into<String>, kind: ColumnKind) -> Self {
        ColumnSpec {
            name: name.into(),
            kind,
            weight: 1.0,
        }
    }

    /// The same column with another weight.
    pub fn with_weight(mut self, weight: f32) -> Self {
        self.weight = weight;
        self
    }

    /// Checks the name, the weight and the kind's parameters.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| FeaturesError::InvalidColumn {
            column: self.name.clone(),
            reason,
        };
        check_column_name(&self.name)?;
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(invalid(format!(
                "weight {} must be finite and > 0",
                self.weight
            )));
        }
        match &self.kind {
            ColumnKind::Categorical => {}
            ColumnKind::MultiValued {
                separator,
                weighted,
            } => {
                if *weighted && *separator == ':' {
                    return Err(invalid(
                        "a weighted multi-valued column cannot use `:` as separator \
                         (it introduces the weight)"
                            .into(),
                    ));
                }
            }
            ColumnKind::Numeric(Bucketing::Quantiles(q)) => {
                if *q == 0 {
                    return Err(invalid("quantile bucket count 0 must be >= 1".into()));
                }
            }
            ColumnKind::Numeric(Bucketing::Edges(edges)) => {
                if let Some(e) = edges.iter().find(|e| !e.is_finite()) {
                    return Err(invalid(format!("bucket edge {e} is not finite")));
                }
                if let Some(w) = edges.windows(2).find(|w| w[0] > w[1]) {
                    return Err(invalid(format!(
                        "bucket edges must be non-decreasing, but {} comes before {}",
                        w[0], w[1]
                    )));
                }
            }
        }
        Ok(())
    }

    /// Parses the [command-line syntax](FeatureSpec#command-line-syntax); returns whether
    /// the kind was given explicitly.
    fn parse_with_explicitness(text: &str) -> Result<(ColumnSpec, bool)> {
        let invalid = |reason: &str| FeaturesError::InvalidColumn {
            column: text.to_string(),
            reason: reason.to_string(),
        };
        let text_trimmed = text.trim();
        let (body, weight) = match text_trimmed.rsplit_once('*') {
            Some((body, w)) => {
                let weight = w
                    .trim()
                    .parse::<f32>()
                    .map_err(|_| invalid("the text after `*` must be a number (column weight)"))?;
                (body.trim(), weight)
            }
            None => (text_trimmed, 1.0),
        };
        let (name, kind_text) = match body.split_once(':') {
            Some((name, kind)) => (name.trim(), Some(kind.trim())),
            None => (body, None),
        };
        let kind = match kind_text {
            None => ColumnKind::Categorical,
            Some(k) => parse_kind(k).ok_or_else(|| {
                invalid(
                    "unknown column kind; use cat, multi, multi(<sep>), weighted, \
                     weighted(<sep>), q<N> or edges(<e1>;<e2>;…)",
                )
            })?,
        };
        let spec = ColumnSpec {
            name: name.to_string(),
            kind,
            weight,
        };
        spec.validate()?;
        Ok((spec, kind_text.is_some()))
    }
}

fn parse_kind(k: &str) -> Option<ColumnKind> {
    fn separator_in(args: &str) -> Option<char> {
        let mut chars = args.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
    fn call<'a>(k: &'a str, function: &str) -> Option<&'a str> {
        k.strip_prefix(function)?
            .strip_prefix('(')?
            .strip_suffix(')')
    }
    match k {
        "cat" => return Some(ColumnKind::Categorical),
        "multi" => {
            return Some(ColumnKind::MultiValued {
                separator: '|',
                weighted: false,
            })
        }
        "weighted" => {
            return Some(ColumnKind::MultiValued {
                separator: '|',
                weighted: true,
            })
        }
        _ => {}
    }
    if let Some(args) = call(k, "multi") {
        return Some(ColumnKind::MultiValued {
            separator: separator_in(args)?,
            weighted: false,
        });
    }
    if let Some(args) = call(k, "weighted") {
        return Some(ColumnKind::MultiValued {
            separator: separator_in(args)?,
            weighted: true,
        });
    }
    if let Some(args) = call(k, "edges") {
        let edges = args
            .split(';')
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| e.parse::<f64>().ok())
            .collect::<Option<Vec<f64>>>()?;
        return Some(ColumnKind::Numeric(Bucketing::Edges(edges)));
    }
    let q = k.strip_prefix('q')?.parse::<usize>().ok()?;
    Some(ColumnKind::Numeric(Bucketing::Quantiles(q)))
}

fn check_column_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "the column name is empty"
    } else if name.trim() != name {
        "the column name has surrounding white space"
    } else if name.contains([':', ',', '*']) {
        "the column name may not contain `:`, `,` or `*`"
    } else {
        return Ok(());
    };
    Err(FeaturesError::InvalidColumn {
        column: name.to_string(),
        reason: reason.to_string(),
    })
}

impl FromStr for ColumnSpec {
    type Err = FeaturesError;

    /// Parses one column in the [command-line syntax](FeatureSpec#command-line-syntax).
    ///
    /// ```
    /// use recsys_features::{Bucketing, ColumnKind, ColumnSpec};
    ///
    /// let c: ColumnSpec = "tags:weighted(;)*0.5".parse().unwrap();
    /// assert_eq!(c.name, "tags");
    /// assert_eq!(c.kind, ColumnKind::MultiValued { separator: ';', weighted: true });
    /// assert_eq!(c.weight, 0.5);
    /// assert_eq!("price:q4".parse::<ColumnSpec>().unwrap().kind,
    ///            ColumnKind::Numeric(Bucketing::Quantiles(4)));
    /// assert!("price:q0".parse::<ColumnSpec>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self> {
        Self::parse_with_explicitness(text).map(|(spec, _)| spec)
    }
}

impl fmt::Display for ColumnSpec {
    /// Writes the command-line syntax; parsing it back gives the same column (except for a
    /// `,` separator, which a comma-separated list cannot hold).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.kind {
            ColumnKind::Categorical => {}
            ColumnKind::MultiValued {
                separator,
                weighted,
            } => {
                let kind = if *weighted { "weighted" } else { "multi" };
                write!(f, ":{kind}({separator})")?;
            }
            ColumnKind::Numeric(Bucketing::Quantiles(q)) => write!(f, ":q{q}")?,
            ColumnKind::Numeric(Bucketing::Edges(edges)) => {
                f.write_str(":edges(")?;
                for (i, e) in edges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")?;
            }
        }
        if self.weight != 1.0 {
            write!(f, "*{}", self.weight)?;
        }
        Ok(())
    }
}

/// Which features the users (or the items) get.
///
/// * `identity`: one feature per user/item (LightFM's identity features); with only this,
///   the model is pure collaborative filtering.
/// * `columns`: attribute columns turned into `column:value` features.
/// * `normalize`: scale every row to sum 1 (L1, LightFM's `normalize=True`), identity
///   feature included. Rows without any feature stay empty.
///
/// ```
/// use recsys_features::{ColumnSpec, FeatureSpec};
///
/// let spec = FeatureSpec::identity_only()
///     .with_column(ColumnSpec::categorical("brand"))
///     .with_column(ColumnSpec::multi_valued("tags", '|').with_weight(0.5))
///     .with_column(ColumnSpec::quantiles("price", 4))
///     .with_normalize(true);
/// spec.validate().unwrap();
///
/// let same = FeatureSpec::from_columns(&["brand,tags:multi*0.5", "price"], &["price"], 4, true, true)
///     .unwrap();
/// assert_eq!(same, spec);
/// ```
///
/// # Command-line syntax
///
/// [`FeatureSpec::from_columns`] and [`ColumnSpec`]'s `FromStr` read a compact syntax, one
/// column per comma-separated entry:
///
/// | text                     | meaning                                                     |
/// |--------------------------|-------------------------------------------------------------|
/// | `brand` or `brand:cat`   | categorical                                                 |
/// | `tags:multi`             | multi-valued, separator `\|` (`red\|blue`)                  |
/// | `tags:multi(;)`          | multi-valued, separator `;`                                 |
/// | `tags:weighted`          | weighted multi-valued, separator `\|` (`red:0.7\|blue:0.3`) |
/// | `tags:weighted(;)`       | weighted multi-valued, separator `;`                        |
/// | `price:q4`               | numeric, 4 quantile buckets                                 |
/// | `price:edges(10;50;100)` | numeric, buckets split at the given edges                   |
/// | any of these + `*2.5`    | column weight 2.5 (e.g. `brand*2`, `tags:multi*0.5`)        |
///
/// Column names may not be empty or contain `:`, `,`, `*` or surrounding white space, so a
/// feature name `column:value` always splits at its first `:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Give every row its own identity feature (indices `0..n_rows` at build time).
    pub identity: bool,
    /// Attribute columns, in the order their features are registered.
    pub columns: Vec<ColumnSpec>,
    /// L1-normalise every row.
    pub normalize: bool,
    /// Identity-anchored weighting, recsys' remedy for features that make a hybrid model
    /// worse than pure collaborative filtering: when set to `w`, a row's identity feature
    /// keeps weight 1 and its other features are rescaled to sum to `w` (their relative
    /// weights kept). Rows without an identity feature (cold start) get their features
    /// summing to `w` too. Takes precedence over [`normalize`](Self::normalize).
    ///
    /// Why: L1 normalisation divides the identity feature by `1 + n_features`, so every
    /// extra column slows down learning what is specific to a user or item, while features
    /// shared by thousands of rows (a department, an age group) collect most updates and
    /// pull every representation towards its group average. Anchoring keeps the
    /// collaborative signal at full strength and lets metadata act as a prior of bounded
    /// weight (docs/benchmarks.md shows both effects on Complete Journey).
    #[serde(default)]
    pub metadata_weight: Option<f32>,
}

impl Default for FeatureSpec {
    /// [`FeatureSpec::identity_only`], like LightFM's default.
    fn default() -> Self {
        FeatureSpec::identity_only()
    }
}

impl FeatureSpec {
    /// Identity features only, not normalised (pure collaborative filtering).
    pub fn identity_only() -> Self {
        FeatureSpec {
            identity: true,
            columns: Vec::new(),
            normalize: false,
            metadata_weight: None,
        }
    }

    /// No identity features, no columns, normalised; add columns with
    /// [`with_column`](Self::with_column). (A pure content model: rows are only their
    /// attributes.)
    pub fn attributes_only() -> Self {
        FeatureSpec {
            identity: false,
            columns: Vec::new(),
            normalize: true,
            metadata_weight: None,
        }
    }

    /// Appends a column.
    pub fn with_column(mut self, column: ColumnSpec) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets [`identity`](Self::identity).
    pub fn with_identity(mut self, identity: bool) -> Self {
        self.identity = identity;
        self
    }

    /// Sets [`normalize`](Self::normalize).
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Sets [`metadata_weight`](Self::metadata_weight) (identity-anchored weighting).
    pub fn with_metadata_weight(mut self, weight: Option<f32>) -> Self {
        self.metadata_weight = weight;
        self
    }

    /// The column called `name` with its position.
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnSpec)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }

    /// Checks every column and that no column name repeats.
    pub fn validate(&self) -> Result<()> {
        if let Some(w) = self.metadata_weight {
            if !(w.is_finite() && w >= 0.0) {
                return Err(FeaturesError::InvalidColumn {
                    column: "metadata_weight".into(),
                    reason: format!("{w} must be finite and >= 0"),
                });
            }
        }
        let mut seen = HashSet::new();
        for column in &self.columns {
            column.validate()?;
            if !seen.insert(column.name.as_str()) {
                return Err(FeaturesError::InvalidColumn {
                    column: column.name.clone(),
                    reason: "the column is listed twice".into(),
                });
            }
        }
        Ok(())
    }

    /// The spec of parsed command-line columns, validated.
    fn checked(identity: bool, columns: Vec<ColumnSpec>, normalize: bool) -> Result<FeatureSpec> {
        let spec = FeatureSpec {
            identity,
            columns,
            normalize,
            metadata_weight: None,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Parses a command-line column list such as `--item-features category,brand,price`.
    ///
    /// Every entry of `list` may itself hold several comma-separated columns in the
    /// [command-line syntax](FeatureSpec#command-line-syntax). A column given by its bare
    /// name is categorical, unless it is named in `numeric_columns` (also comma-separable),
    /// in which case it is numeric with `quantiles` quantile buckets. A name in
    /// `numeric_columns` that is not in `list`, or whose kind is given explicitly as
    /// non-numeric, is an error (it is probably a typo).
    pub fn from_columns(
        list: &[&str],
        numeric_columns: &[&str],
        quantiles: usize,
        identity: bool,
        normalize: bool,
    ) -> Result<FeatureSpec> {
        let numeric: Vec<&str> = split_list(numeric_columns).collect();
        let mut columns = Vec::new();
        for entry in split_list(list) {
            let (mut column, explicit) = ColumnSpec::parse_with_explicitness(entry)?;
            if numeric.contains(&column.name.as_str()) {
                match (&column.kind, explicit) {
                    (ColumnKind::Numeric(_), true) => {}
                    (_, false) => {
                        column.kind = ColumnKind::Numeric(Bucketing::Quantiles(quantiles));
                    }
                    (_, true) => {
                        return Err(FeaturesError::InvalidColumn {
                            column: entry.to_string(),
                            reason: "listed as numeric but given a non-numeric kind".into(),
                        })
                    }
                }
            }
            columns.push(column);
        }
        if let Some(missing) = numeric
            .iter()
            .find(|n| !columns.iter().any(|c| c.name == **n))
        {
            return Err(FeaturesError::InvalidColumn {
                column: missing.to_string(),
                reason: "listed as numeric but not among the feature columns".into(),
            });
        }
        FeatureSpec::checked(identity, columns, normalize)
    }

    /// Like [`from_columns`](Self::from_columns), but columns given by bare name are made
    /// numeric (with `quantiles` buckets) when [`detect_numeric_columns`] says so for
    /// `records`.
    pub fn from_columns_detecting_numeric<R: RecordColumns>(
        list: &[&str],
        records: impl IntoIterator<Item = R>,
        quantiles: usize,
        identity: bool,
        normalize: bool,
    ) -> Result<FeatureSpec> {
        let mut parsed = Vec::new();
        for entry in split_list(list) {
            parsed.push(ColumnSpec::parse_with_explicitness(entry)?);
        }
        let bare: Vec<&str> = parsed
            .iter()
            .filter(|(_, explicit)| !explicit)
            .map(|(c, _)| c.name.as_str())
            .collect();
        let numeric = detect_numeric_columns(records, &bare);
        let columns = parsed
            .iter()
            .map(|(column, _)| {
                let mut column = column.clone();
                if numeric.contains(&column.name) {
                    column.kind = ColumnKind::Numeric(Bucketing::Quantiles(quantiles));
                }
                column
            })
            .collect();
        FeatureSpec::checked(identity, columns, normalize)
    }
}

fn split_list<'a>(list: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    list.iter()
        .flat_map(|entry| entry.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The columns among `columns` that look numeric in `records`: at least one non-empty value,
/// and every non-empty (trimmed) value parses as a finite `f64` (a product's `price` always
/// qualifies when present). Returned in the order of `columns`. One pass over `records`.
///
/// Beware of codes that look like numbers (zip codes, years as categories): list those
/// explicitly as `:cat`.
///
/// ```
/// use recsys_features::{detect_numeric_columns, Attributes};
///
/// let rows: Vec<Attributes> = vec![
///     [("age".to_string(), "31".to_string()), ("city".to_string(), "Oslo".to_string())].into(),
///     [("age".to_string(), "".to_string()), ("city".to_string(), "7".to_string())].into(),
/// ];
/// assert_eq!(detect_numeric_columns(&rows, &["age", "city", "missing"]), vec!["age"]);
/// ```
pub fn detect_numeric_columns<R: RecordColumns>(
    records: impl IntoIterator<Item = R>,
    columns: &[&str],
) -> Vec<String> {
    // Per column: (has a non-empty value, every non-empty value is numeric).
    let mut state = vec![(false, true); columns.len()];
    for record in records {
        for (column, (seen, numeric)) in columns.iter().zip(state.iter_mut()) {
            if !*numeric {
                continue;
            }
            if let Some(value) = record.column(column) {
                if value.as_text().is_some() {
                    *seen = true;
                    *numeric = value.as_number().is_some();
                }
            }
        }
    }
    columns
        .iter()
        .zip(state)
        .filter(|(_, (seen, numeric))| *seen && *numeric)
        .map(|(c, _)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Attributes, ExternalId, ProductRecord};

    #[test]
    fn parses_every_kind() {
        let spec = FeatureSpec::from_columns(
            &[
                "category, brand:cat",
                "tags:multi,moods:multi(;),mix:weighted,mix2:weighted(/)",
                "price:q5*2,size:edges(1;2.5;10)",
            ],
            &[],
            4,
            false,
            true,
        )
        .unwrap();
        let kinds: Vec<String> = spec.columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            kinds,
            vec![
                "category",
                "brand",
                "tags:multi(|)",
                "moods:multi(;)",
                "mix:weighted(|)",
                "mix2:weighted(/)",
                "price:q5*2",
                "size:edges(1;2.5;10)"
            ]
        );
        for c in &spec.columns {
            assert_eq!(&c.to_string().parse::<ColumnSpec>().unwrap(), c);
        }
        assert!(!spec.identity && spec.normalize);
    }

    #[test]
    fn numeric_list_applies_to_bare_names_only() {
        let spec = FeatureSpec::from_columns(&["brand,price"], &["price"], 3, true, false).unwrap();
        assert_eq!(spec.columns[1], ColumnSpec::quantiles("price", 3));
        let spec = FeatureSpec::from_columns(&["price:q7"], &["price"], 3, true, false).unwrap();
        assert_eq!(spec.columns[0], ColumnSpec::quantiles("price", 7));
        let err = FeatureSpec::from_columns(&["price:multi"], &["price"], 3, true, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("price:multi"), "{err}");
        let err = FeatureSpec::from_columns(&["brand"], &["prise"], 3, true, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`prise`") && err.contains("not among the feature columns"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_columns_naming_them() {
        for (text, needle) in [
            ("brand,brand", "listed twice"),
            ("a:b:c", "unknown column kind"),
            ("price:q0", "bucket count 0"),
            ("size:edges(3;1)", "non-decreasing"),
            ("brand*0", "weight 0"),
            ("brand*x", "column weight"),
            ("tags:weighted(:)", "cannot use `:`"),
            (":cat", "name is empty"),
        ] {
            let err = FeatureSpec::from_columns(&[text], &[], 4, true, true)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(FeatureSpec::identity_only()
            .with_column(ColumnSpec::edges("x", vec![f64::NAN]))
            .validate()
            .is_err());
    }

    #[test]
    fn detects_numeric_columns_from_products() {
        let product = |price: Option<f64>, size: &str, brand: &str| ProductRecord {
            product_id: ExternalId::from(1),
            name: None,
            price,
            image: None,
            attributes: Attributes::from([
                ("size".to_string(), size.to_string()),
                ("brand".to_string(), brand.to_string()),
            ]),
        };
        let products = vec![
            product(Some(3.0), " 10 ", "7"),
            product(None, "", "Nike"),
            product(Some(5.5), "1e2", "8"),
        ];
        assert_eq!(
            detect_numeric_columns(&products, &["price", "size", "brand", "name"]),
            vec!["price", "size"]
        );
        let spec = FeatureSpec::from_columns_detecting_numeric(
            &["price,size:cat,brand"],
            &products,
            4,
            true,
            true,
        )
        .unwrap();
        assert_eq!(spec.columns[0], ColumnSpec::quantiles("price", 4));
        assert_eq!(spec.columns[1], ColumnSpec::categorical("size"));
        assert_eq!(spec.columns[2], ColumnSpec::categorical("brand"));
    }

    #[test]
    fn spec_serde_round_trip() {
        let spec = FeatureSpec::from_columns(&["a,b:weighted*2,c:edges(1;2)"], &[], 4, true, true)
            .unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<FeatureSpec>(&json).unwrap(), spec);
    }
}
