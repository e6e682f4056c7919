//! The three record kinds of the recsys schema and the [`RecordSource`] trait that every data
//! source (in-memory, CSV, MongoDB) implements.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An external identifier as it appears in the data: an integer or a string.
///
/// Text that is a canonical decimal integer (`"42"`, `"-7"`; not `"042"` or `"+1"`) is
/// stored as [`ExternalId::Int`], so an id read from CSV as text and the same id stored as a
/// number in MongoDB are equal. (The seed system lost every user to this mismatch.)
///
/// Serialised untagged (a number or a string). Deserialising applies the same normalisation,
/// so the string `"42"` comes back as `Int(42)`; integers outside the `i64` range and other
/// non-string values are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum ExternalId {
    /// An integer id.
    Int(i64),
    /// Any other id.
    Str(String),
}

impl ExternalId {
    /// Normalises text: canonical integers become [`ExternalId::Int`]; surrounding white space
    /// is trimmed.
    pub fn parse(text: &str) -> ExternalId {
        let t = text.trim();
        if let Ok(v) = t.parse::<i64>() {
            if v.to_string() == t {
                return ExternalId::Int(v);
            }
        }
        ExternalId::Str(t.to_string())
    }

    /// True for the empty string id (never valid as a key).
    pub fn is_empty(&self) -> bool {
        matches!(self, ExternalId::Str(s) if s.is_empty())
    }
}

impl<'de> Deserialize<'de> for ExternalId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = ExternalId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string id")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ExternalId, E> {
                Ok(ExternalId::Int(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ExternalId, E> {
                i64::try_from(v)
                    .map(ExternalId::Int)
                    .map_err(|_| E::custom(format!("id {v} does not fit in an i64")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ExternalId, E> {
                Ok(ExternalId::parse(v))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

impl From<i64> for ExternalId {
    fn from(v: i64) -> Self {
        ExternalId::Int(v)
    }
}

impl From<&str> for ExternalId {
    fn from(v: &str) -> Self {
        ExternalId::parse(v)
    }
}

impl From<String> for ExternalId {
    fn from(v: String) -> Self {
        ExternalId::parse(&v)
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalId::Int(v) => write!(f, "{v}"),
            ExternalId::Str(s) => f.write_str(s),
        }
    }
}

/// Attribute columns kept as the text they were given in (empty values are absent).
pub type Attributes = BTreeMap<String, String>;

/// A user: id plus any attribute columns (city, age_group, user_type, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's external id.
    pub user_id: ExternalId,
    /// Attribute columns.
    pub attributes: Attributes,
}

/// A product: id, display fields and any attribute columns (category, brand, colour, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    /// The product's external id.
    pub product_id: ExternalId,
    /// Display name.
    pub name: Option<String>,
    /// Price; always finite when present.
    pub price: Option<f64>,
    /// Image file name.
    pub image: Option<String>,
    /// Attribute columns.
    pub attributes: Attributes,
}

/// One interaction of a user with a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionRecord {
    /// The user's external id.
    pub user_id: ExternalId,
    /// The product's external id.
    pub product_id: ExternalId,
    /// Kind of interaction (view, cart, purchase, …).
    pub interaction_type: Option<String>,
    /// Strength of the interaction; finite and >= 0 when present.
    pub weight: Option<f32>,
    /// Seconds since the Unix epoch (UTC).
    pub timestamp: Option<i64>,
}

/// A boxed, fallible record stream.
pub type RecordIter<'a, T> = Box<dyn Iterator<Item = Result<T, SourceError>> + 'a>;

/// Error from a data source: what failed and where (file/line/column or collection).
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SourceError {
    /// Where the error happened, e.g. `users.csv:17:3` or `mongodb users`.
    pub location: String,
    /// What went wrong, naming the offending value.
    pub message: String,
    /// The underlying error, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SourceError {
    /// An error without an underlying cause.
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        SourceError {
            location: location.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches an underlying cause.
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }
}

/// Anything that can stream users, products and interactions.
///
/// Implemented by [`InMemorySource`], by the CSV reader and by the MongoDB store of
/// `recsys-store`; the model never knows where its data came from.
pub trait RecordSource {
    /// All users.
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError>;
    /// All products.
    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError>;
    /// All interactions.
    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError>;
}

impl<S: RecordSource + ?Sized> RecordSource for &mut S {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        (**self).users()
    }
    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        (**self).products()
    }
    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        (**self).interactions()
    }
}

impl<S: RecordSource + ?Sized> RecordSource for Box<S> {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        (**self).users()
    }
    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        (**self).products()
    }
    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        (**self).interactions()
    }
}

/// Records held in memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InMemorySource {
    /// Users.
    pub users: Vec<UserRecord>,
    /// Products.
    pub products: Vec<ProductRecord>,
    /// Interactions.
    pub interactions: Vec<InteractionRecord>,
}

impl InMemorySource {
    /// Reads everything from another source into memory.
    pub fn collect_from<S: RecordSource>(mut source: S) -> Result<Self, SourceError> {
        // One statement per stream: each iterator borrows `source` until it is dropped.
        let users = source.users()?.collect::<Result<_, _>>()?;
        let products = source.products()?.collect::<Result<_, _>>()?;
        let interactions = source.interactions()?.collect::<Result<_, _>>()?;
        Ok(InMemorySource {
            users,
            products,
            interactions,
        })
    }
}

impl RecordSource for InMemorySource {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        Ok(Box::new(self.users.iter().cloned().map(Ok)))
    }
    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        Ok(Box::new(self.products.iter().cloned().map(Ok)))
    }
    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        Ok(Box::new(self.interactions.iter().cloned().map(Ok)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_text_and_numbers_agree() {
        assert_eq!(ExternalId::parse("42"), ExternalId::Int(42));
        assert_eq!(ExternalId::parse(" 42 "), ExternalId::from(42));
        assert_eq!(ExternalId::parse("042"), ExternalId::Str("042".into()));
        assert_eq!(ExternalId::parse("P-1"), ExternalId::Str("P-1".into()));
        assert_eq!(ExternalId::parse("-7").to_string(), "-7");
    }

    #[test]
    fn ids_deserialise_normalised() {
        let ids: Vec<ExternalId> = serde_json::from_str(r#"[42, "42", "042", " x "]"#).unwrap();
        assert_eq!(
            ids,
            vec![
                ExternalId::Int(42),
                ExternalId::Int(42),
                ExternalId::Str("042".into()),
                ExternalId::Str("x".into())
            ]
        );
        assert_eq!(serde_json::to_string(&ids).unwrap(), r#"[42,42,"042","x"]"#);
        assert!(serde_json::from_str::<ExternalId>("18446744073709551615").is_err());
        assert!(serde_json::from_str::<ExternalId>("1.5").is_err());
    }

    #[test]
    fn in_memory_round_trip() {
        let mut src = InMemorySource {
            users: vec![UserRecord {
                user_id: 1.into(),
                attributes: Attributes::new(),
            }],
            ..Default::default()
        };
        let copy = InMemorySource::collect_from(&mut src).unwrap();
        assert_eq!(copy, src);
    }
}
