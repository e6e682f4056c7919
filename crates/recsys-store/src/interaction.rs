//! The rules an interaction obeys, wherever it comes from: a CSV row of the import or a live
//! event posted to the server. One function, [`interaction_from_fields`], turns the fields'
//! text into an [`InteractionRecord`] or names the bad field, so both paths accept and refuse
//! exactly the same values.

use recsys_features::{ExternalId, InteractionRecord};

use crate::table::parse_id;
use crate::timestamp::parse_timestamp_reason;

/// The fields of one interaction as text, before validation (a CSV row's cells, or a JSON
/// event's values written as text). `None` or blank text means absent; surrounding white
/// space is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InteractionFields<'a> {
    /// The user id (required).
    pub user_id: Option<&'a str>,
    /// The product id (required).
    pub product_id: Option<&'a str>,
    /// The kind of interaction (any text).
    pub interaction_type: Option<&'a str>,
    /// The weight: a finite number >= 0.
    pub weight: Option<&'a str>,
    /// ISO 8601 or integer Unix seconds (see [`parse_timestamp`](crate::parse_timestamp)).
    pub timestamp: Option<&'a str>,
}

/// Why one field of an interaction is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field: `user_id`, `product_id`, `weight` or `timestamp`.
    pub field: &'static str,
    /// What is wrong, quoting the value.
    pub message: String,
}

fn present(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|s| !s.is_empty())
}

fn id(field: &'static str, text: Option<&str>) -> Result<ExternalId, FieldError> {
    present(text).map(parse_id).ok_or_else(|| FieldError {
        field,
        message: format!("missing {field}"),
    })
}

/// Validates the fields of one interaction with the rules of the CSV import: ids are
/// required and normalised like [`ExternalId::parse`] (canonical integers become integer
/// ids); the weight, when present, is a finite number `>= 0`; the timestamp, when present,
/// is ISO 8601 or integer Unix seconds. The first bad field (in the order user, product,
/// weight, timestamp) is named in the error.
///
/// ```
/// use recsys_features::ExternalId;
/// use recsys_store::{interaction_from_fields, InteractionFields};
///
/// let fields = InteractionFields {
///     user_id: Some("42"),
///     product_id: Some(" P-1 "),
///     interaction_type: Some("view"),
///     weight: Some("0.5"),
///     timestamp: Some("2017-09-09T22:30:46Z"),
/// };
/// let record = interaction_from_fields(fields).unwrap();
/// assert_eq!(record.user_id, ExternalId::Int(42));
/// assert_eq!(record.product_id, ExternalId::Str("P-1".into()));
/// assert_eq!(record.timestamp, Some(1_504_996_246));
///
/// let bad = InteractionFields { weight: Some("-1"), ..fields };
/// let err = interaction_from_fields(bad).unwrap_err();
/// assert_eq!(err.field, "weight");
/// assert_eq!(err.message, "invalid weight \"-1\": must be >= 0");
/// ```
pub fn interaction_from_fields(
    fields: InteractionFields<'_>,
) -> Result<InteractionRecord, FieldError> {
    let user_id = id("user_id", fields.user_id)?;
    let product_id = id("product_id", fields.product_id)?;
    let weight = match present(fields.weight) {
        None => None,
        Some(text) => {
            let bad = |message: &str| FieldError {
                field: "weight",
                message: format!("invalid weight {text:?}: {message}"),
            };
            match text.parse::<f32>() {
                Err(_) => return Err(bad("not a number")),
                Ok(w) if !w.is_finite() => return Err(bad("must be a finite number")),
                Ok(w) if w < 0.0 => return Err(bad("must be >= 0")),
                Ok(w) => Some(w),
            }
        }
    };
    let timestamp = match present(fields.timestamp) {
        None => None,
        Some(text) => Some(parse_timestamp_reason(text).map_err(|reason| FieldError {
            field: "timestamp",
            message: format!(
                "invalid timestamp {text:?}: {reason} (expected ISO 8601 such as \
                 2017-09-09T22:30:46Z, or integer Unix seconds)"
            ),
        })?),
    };
    Ok(InteractionRecord {
        user_id,
        product_id,
        interaction_type: present(fields.interaction_type).map(str::to_string),
        weight,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(user: &'a str, product: &'a str) -> InteractionFields<'a> {
        InteractionFields {
            user_id: Some(user),
            product_id: Some(product),
            ..InteractionFields::default()
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = interaction_from_fields(fields(" ", "1")).unwrap_err();
        assert_eq!(
            (err.field, err.message.as_str()),
            ("user_id", "missing user_id")
        );
        let err = interaction_from_fields(InteractionFields {
            product_id: None,
            ..fields("1", "")
        })
        .unwrap_err();
        assert_eq!(err.field, "product_id");
        for (weight, message) in [
            ("x", "not a number"),
            ("NaN", "must be a finite number"),
            ("inf", "must be a finite number"),
            ("-0.5", "must be >= 0"),
        ] {
            let err = interaction_from_fields(InteractionFields {
                weight: Some(weight),
                ..fields("1", "2")
            })
            .unwrap_err();
            assert_eq!(err.field, "weight");
            assert!(err.message.ends_with(message), "{err}");
        }
        let err = interaction_from_fields(InteractionFields {
            timestamp: Some("2017-02-29"),
            ..fields("1", "2")
        })
        .unwrap_err();
        assert_eq!(err.field, "timestamp");
        assert!(err.message.contains("ISO 8601"), "{err}");
    }

    #[test]
    fn blank_optional_fields_are_absent() {
        let record = interaction_from_fields(InteractionFields {
            interaction_type: Some("  "),
            weight: Some(""),
            timestamp: Some(" "),
            ..fields("007", "-3")
        })
        .unwrap();
        assert_eq!(record.user_id, ExternalId::Str("007".into()));
        assert_eq!(record.product_id, ExternalId::Int(-3));
        assert_eq!(
            (record.interaction_type, record.weight, record.timestamp),
            (None, None, None)
        );
    }
}
