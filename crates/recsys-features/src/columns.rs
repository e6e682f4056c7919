//! The one place that decides which value a record has in a named column.

use std::borrow::Cow;

use crate::records::{Attributes, ProductRecord, UserRecord};

/// The value of one column of one record, before any feature processing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnValue<'a> {
    /// Text as given (not yet trimmed).
    Text(&'a str),
    /// A typed number (a product's `price`).
    Number(f64),
}

impl ColumnValue<'_> {
    /// The value as text: text is trimmed; numbers use Rust's shortest round-trip formatting
    /// (`19.99`, `20`, `0.1`). `None` when the trimmed text is empty or the number is not
    /// finite.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match *self {
            ColumnValue::Text(t) => {
                let t = t.trim();
                (!t.is_empty()).then_some(Cow::Borrowed(t))
            }
            ColumnValue::Number(v) => v.is_finite().then(|| Cow::Owned(v.to_string())),
        }
    }

    /// The value as a finite number: text is trimmed and parsed with Rust's `f64` parser
    /// (which accepts `3`, `-2.5`, `1e3`; not `1,5` or `1_000`). `None` when empty,
    /// unparsable, infinite or NaN.
    pub fn as_number(&self) -> Option<f64> {
        let v = match *self {
            ColumnValue::Text(t) => t.trim().parse::<f64>().ok()?,
            ColumnValue::Number(v) => v,
        };
        v.is_finite().then_some(v)
    }
}

/// Records whose columns can be turned into features.
///
/// * [`ProductRecord`]: the column names `name`, `price` and `image` read the typed fields
///   (`price` as a [`ColumnValue::Number`]); every other name reads `attributes`.
/// * [`UserRecord`]: every name reads `attributes`.
/// * [`Attributes`]: the map itself (what a cold-start user brings).
pub trait RecordColumns {
    /// The value of `column`, or `None` when the record has no such column.
    fn column(&self, column: &str) -> Option<ColumnValue<'_>>;
}

impl<T: RecordColumns + ?Sized> RecordColumns for &T {
    fn column(&self, column: &str) -> Option<ColumnValue<'_>> {
        (**self).column(column)
    }
}

impl RecordColumns for Attributes {
    fn column(&self, column: &str) -> Option<ColumnValue<'_>> {
        self.get(column).map(|v| ColumnValue::Text(v))
    }
}

impl RecordColumns for UserRecord {
    fn column(&self, column: &str) -> Option<ColumnValue<'_>> {
        self.attributes.column(column)
    }
}

impl RecordColumns for ProductRecord {
    fn column(&self, column: &str) -> Option<ColumnValue<'_>> {
        match column {
            "name" => self.name.as_deref().map(ColumnValue::Text),
            "price" => self.price.map(ColumnValue::Number),
            "image" => self.image.as_deref().map(ColumnValue::Text),
            other => self.attributes.column(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ExternalId;

    #[test]
    fn product_columns_read_typed_fields_first() {
        let mut attributes = Attributes::new();
        attributes.insert("brand".into(), " Nike ".into());
        attributes.insert("price".into(), "999".into()); // shadowed by the typed field
        let p = ProductRecord {
            product_id: ExternalId::from(1),
            name: Some("Shoe".into()),
            price: Some(20.0),
            image: None,
            attributes,
        };
        assert_eq!(p.column("name"), Some(ColumnValue::Text("Shoe")));
        assert_eq!(p.column("price"), Some(ColumnValue::Number(20.0)));
        assert_eq!(p.column("price").unwrap().as_text().unwrap(), "20");
        assert_eq!(p.column("image"), None);
        assert_eq!(p.column("brand").unwrap().as_text().unwrap(), "Nike");
        assert_eq!(p.column("colour"), None);
    }

    #[test]
    fn empty_and_unparsable_values_are_absent() {
        assert_eq!(ColumnValue::Text("  ").as_text(), None);
        assert_eq!(ColumnValue::Text(" 2.5 ").as_number(), Some(2.5));
        assert_eq!(ColumnValue::Text("abc").as_number(), None);
        assert_eq!(ColumnValue::Text("inf").as_number(), None);
        assert_eq!(ColumnValue::Number(f64::NAN).as_text(), None);
    }
}
