//! The three collections' documents: records ⇄ BSON, with one canonical BSON type per id.

use mongodb::bson::{doc, Bson, DateTime, Document};
use recsys_features::{
    Attributes, ExternalId, InteractionRecord, ProductRecord, SourceError, UserRecord,
};

use crate::parse_timestamp;

/// Name of the users collection.
pub const USERS: &str = "users";
/// Name of the products collection.
pub const PRODUCTS: &str = "products";
/// Name of the interactions collection.
pub const INTERACTIONS: &str = "user_product_interactions";

/// The BSON value an id is stored and queried as: [`ExternalId::Int`] → `Int64`,
/// [`ExternalId::Str`] → `String`. Always use this, never a hand-made value, so a query finds
/// what an import wrote (the seed system stored ids as numbers and queried them as text).
pub fn id_to_bson(id: &ExternalId) -> Bson {
    match id {
        ExternalId::Int(v) => Bson::Int64(*v),
        ExternalId::Str(s) => Bson::String(s.clone()),
    }
}

/// Reads an id written by [`id_to_bson`] or by another tool: integers of any width (servers
/// may return a small Int64 as Int32) and strings (normalised like [`ExternalId::parse`]).
pub fn id_from_bson(value: &Bson) -> Option<ExternalId> {
    match value {
        Bson::Int64(v) => Some(ExternalId::Int(*v)),
        Bson::Int32(v) => Some(ExternalId::Int(i64::from(*v))),
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(ExternalId::Int(*v as i64)),
        Bson::String(s) if !s.trim().is_empty() => Some(ExternalId::parse(s)),
        _ => None,
    }
}

/// Field names that cannot hold an attribute in MongoDB (`_id`, `$…`, dotted paths).
pub(crate) fn check_attribute_name(name: &str) -> Result<(), &'static str> {
    if name == "_id" {
        Err("_id is the document key")
    } else if name.starts_with('$') {
        Err("MongoDB field names cannot start with $")
    } else if name.contains('.') {
        Err("MongoDB field names with a dot are ambiguous in queries")
    } else if name.contains('\0') {
        Err("MongoDB field names cannot contain NUL")
    } else {
        Ok(())
    }
}

fn push_attributes(doc: &mut Document, attributes: &Attributes) {
    for (name, value) in attributes {
        doc.insert(name.clone(), Bson::String(value.clone()));
    }
}

/// The `_id` of a user or product document: the id as JSON text (`42`, `"P-1"`).
///
/// Always a string, because compatible servers only use their primary key for string (or
/// ObjectId) `_id`s (FerretDB 1.x scans the whole collection for an integer `_id`); JSON
/// keeps integer and text ids apart. Queries by id go through the `user_id` /
/// `product_id` fields, which hold the canonical BSON type ([`id_to_bson`]).
pub(crate) fn record_key(id: &ExternalId) -> String {
    match id {
        ExternalId::Int(v) => v.to_string(),
        // Serialising a string to JSON cannot fail.
        ExternalId::Str(s) => serde_json::to_string(s).unwrap_or_default(),
    }
}

pub(crate) fn user_document(user: &UserRecord) -> Document {
    let id = id_to_bson(&user.user_id);
    let mut doc = doc! { "_id": record_key(&user.user_id), "user_id": id };
    push_attributes(&mut doc, &user.attributes);
    doc
}

pub(crate) fn product_document(product: &ProductRecord) -> Document {
    let id = id_to_bson(&product.product_id);
    let mut doc = doc! { "_id": record_key(&product.product_id), "product_id": id };
    if let Some(name) = &product.name {
        doc.insert("name", name.clone());
    }
    if let Some(price) = product.price {
        doc.insert("price", price);
    }
    if let Some(image) = &product.image {
        doc.insert("image", image.clone());
    }
    push_attributes(&mut doc, &product.attributes);
    doc
}

/// The deterministic `_id` of an interaction: the JSON text of
/// `[user_id, product_id, interaction_type, timestamp]`, plus `#n` for the n-th (n ≥ 2)
/// repetition of the same key in one import. Re-importing the same rows therefore upserts
/// onto the same documents.
pub(crate) fn interaction_key(interaction: &InteractionRecord, occurrence: u32) -> String {
    let key = (
        &interaction.user_id,
        &interaction.product_id,
        &interaction.interaction_type,
        interaction.timestamp,
    );
    // Serialising ids, strings, options and integers to JSON cannot fail.
    let mut text = serde_json::to_string(&key).unwrap_or_default();
    if occurrence > 1 {
        text.push('#');
        text.push_str(&occurrence.to_string());
    }
    text
}

pub(crate) fn interaction_document(interaction: &InteractionRecord, key: String) -> Document {
    let mut doc = doc! {
        "_id": key,
        "user_id": id_to_bson(&interaction.user_id),
        "product_id": id_to_bson(&interaction.product_id),
    };
    if let Some(kind) = &interaction.interaction_type {
        doc.insert("interaction_type", kind.clone());
    }
    if let Some(weight) = interaction.weight {
        doc.insert("weight", f64::from(weight));
    }
    if let Some(ts) = interaction.timestamp {
        doc.insert("timestamp", DateTime::from_millis(ts.saturating_mul(1000)));
    }
    doc
}

/// Reads documents of one collection, naming collection, document and field in errors.
pub(crate) struct DocReader<'a> {
    pub(crate) namespace: &'a str,
}

impl DocReader<'_> {
    fn error(&self, doc: &Document, field: &str, message: String) -> SourceError {
        let id = doc
            .get("_id")
            .or_else(|| doc.get("product_id"))
            .or_else(|| doc.get("user_id"))
            .map_or_else(|| "?".to_string(), |v| v.to_string());
        SourceError::new(
            format!("mongodb {} document {id} field {field}", self.namespace),
            message,
        )
    }

    fn id(&self, doc: &Document, field: &str) -> Result<ExternalId, SourceError> {
        match doc.get(field) {
            None | Some(Bson::Null) => Err(self.error(doc, field, format!("missing {field}"))),
            Some(value) => id_from_bson(value).ok_or_else(|| {
                self.error(
                    doc,
                    field,
                    format!("invalid {field} {value}: not an integer or a non-empty string"),
                )
            }),
        }
    }

    fn text(&self, doc: &Document, field: &str) -> Result<Option<String>, SourceError> {
        match doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(value) => attribute_text(value).map(Some).ok_or_else(|| {
                self.error(doc, field, format!("invalid {field} {value}: not text"))
            }),
        }
    }

    fn number(&self, doc: &Document, field: &str) -> Result<Option<f64>, SourceError> {
        let value = match doc.get(field) {
            None | Some(Bson::Null) => return Ok(None),
            Some(Bson::Double(v)) => *v,
            Some(Bson::Int32(v)) => f64::from(*v),
            Some(Bson::Int64(v)) => *v as f64,
            Some(Bson::String(s)) => s.trim().parse::<f64>().map_err(|_| {
                self.error(doc, field, format!("invalid {field} {s:?}: not a number"))
            })?,
            Some(other) => {
                return Err(self.error(
                    doc,
                    field,
                    format!("invalid {field} {other}: not a number"),
                ))
            }
        };
        if value.is_finite() {
            Ok(Some(value))
        } else {
            Err(self.error(
                doc,
                field,
                format!("invalid {field} {value}: must be a finite number"),
            ))
        }
    }

    fn attributes(&self, doc: &Document, skip: &[&str]) -> Result<Attributes, SourceError> {
        let mut attributes = Attributes::new();
        for (name, value) in doc {
            if name == "_id" || skip.contains(&name.as_str()) || matches!(value, Bson::Null) {
                continue;
            }
            let text = attribute_text(value).ok_or_else(|| {
                self.error(
                    doc,
                    name,
                    format!("attribute {name} = {value} is not text or a number"),
                )
            })?;
            if !text.is_empty() {
                attributes.insert(name.clone(), text);
            }
        }
        Ok(attributes)
    }

    pub(crate) fn user(&self, doc: &Document) -> Result<UserRecord, SourceError> {
        Ok(UserRecord {
            user_id: self.id(doc, "user_id")?,
            attributes: self.attributes(doc, &["user_id"])?,
        })
    }

    /// A number that must be `>= 0` when present (the CSV reader's rule for prices and
    /// weights).
    fn non_negative(&self, doc: &Document, field: &str) -> Result<Option<f64>, SourceError> {
        match self.number(doc, field)? {
            Some(v) if v < 0.0 => {
                Err(self.error(doc, field, format!("invalid {field} {v}: must be >= 0")))
            }
            v => Ok(v),
        }
    }

    pub(crate) fn product(&self, doc: &Document) -> Result<ProductRecord, SourceError> {
        Ok(ProductRecord {
            product_id: self.id(doc, "product_id")?,
            name: self.text(doc, "name")?,
            price: self.non_negative(doc, "price")?,
            image: self.text(doc, "image")?,
            attributes: self.attributes(doc, &["product_id", "name", "price", "image"])?,
        })
    }

    pub(crate) fn interaction(&self, doc: &Document) -> Result<InteractionRecord, SourceError> {
        let weight = self.non_negative(doc, "weight")?.map(|w| w as f32);
        let timestamp = match doc.get("timestamp") {
            None | Some(Bson::Null) => None,
            Some(Bson::DateTime(t)) => Some(t.timestamp_millis().div_euclid(1000)),
            Some(Bson::Int64(v)) => Some(*v),
            Some(Bson::Int32(v)) => Some(i64::from(*v)),
            Some(Bson::String(s)) => {
                Some(parse_timestamp(s).map_err(|e| self.error(doc, "timestamp", e.to_string()))?)
            }
            Some(other) => {
                return Err(self.error(
                    doc,
                    "timestamp",
                    format!("invalid timestamp {other}: not a date or Unix seconds"),
                ))
            }
        };
        Ok(InteractionRecord {
            user_id: self.id(doc, "user_id")?,
            product_id: self.id(doc, "product_id")?,
            interaction_type: self.text(doc, "interaction_type")?,
            weight,
            timestamp,
        })
    }
}

/// The details of a product document, leniently: the id, `name`, `price` and `image`
/// (attributes are not read). A field of an unexpected type, an empty text and a
/// non-finite price count as absent, so a bad document never fails the caller (the
/// server's product details); only a document without a usable `product_id` is `None`.
/// Imports and training read documents strictly instead, with errors naming the field.
///
/// ```
/// use mongodb::bson::doc;
/// use recsys_store::mongo::product_details_lenient;
///
/// let doc = doc! { "product_id": 7_i32, "name": "Tea", "price": "2.5", "image": 3 };
/// let product = product_details_lenient(&doc).unwrap();
/// assert_eq!(product.product_id, 7.into());
/// assert_eq!((product.name.as_deref(), product.price, product.image), (Some("Tea"), Some(2.5), None));
/// assert!(product_details_lenient(&doc! { "name": "no id" }).is_none());
/// ```
pub fn product_details_lenient(doc: &Document) -> Option<ProductRecord> {
    let product_id = id_from_bson(doc.get("product_id")?)?;
    let text = |field: &str| match doc.get(field) {
        Some(Bson::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let price = match doc.get("price") {
        Some(Bson::Double(v)) => Some(*v),
        Some(Bson::Int32(v)) => Some(f64::from(*v)),
        Some(Bson::Int64(v)) => Some(*v as f64),
        Some(Bson::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|p| p.is_finite());
    Some(ProductRecord {
        product_id,
        name: text("name"),
        price,
        image: text("image"),
        attributes: Attributes::new(),
    })
}

/// A product document as a full record, leniently: [`product_details_lenient`] plus the
/// attributes — every other field (but `_id`) whose value is text, a number or a boolean, as
/// the strict reader of imports and training reads them (`null`, empty texts and other
/// values are skipped instead of failing). What a server needs to represent a product added
/// after training from its attributes; only a document without a usable `product_id` is
/// `None`.
///
/// ```
/// use mongodb::bson::doc;
/// use recsys_store::mongo::product_record_lenient;
///
/// let doc = doc! { "_id": "7", "product_id": 7_i64, "name": "Tea", "category": "drinks",
///                  "size": 250, "tags": ["a", "b"], "brand": "" };
/// let product = product_record_lenient(&doc).unwrap();
/// assert_eq!(product.name.as_deref(), Some("Tea"));
/// assert_eq!(product.attributes.get("category").map(String::as_str), Some("drinks"));
/// assert_eq!(product.attributes.get("size").map(String::as_str), Some("250"));
/// assert_eq!(product.attributes.len(), 2); // no _id, no array, no empty text
/// ```
pub fn product_record_lenient(doc: &Document) -> Option<ProductRecord> {
    let mut product = product_details_lenient(doc)?;
    for (name, value) in doc {
        if matches!(
            name.as_str(),
            "_id" | "product_id" | "name" | "price" | "image"
        ) {
            continue;
        }
        if let Some(text) = attribute_text(value).filter(|t| !t.is_empty()) {
            product.attributes.insert(name.clone(), text);
        }
    }
    Some(product)
}

/// Text of a scalar attribute value (documents written by other tools may hold numbers).
fn attribute_text(value: &Bson) -> Option<String> {
    match value {
        Bson::String(s) => Some(s.clone()),
        Bson::Int32(v) => Some(v.to_string()),
        Bson::Int64(v) => Some(v.to_string()),
        Bson::Double(v) if v.is_finite() => Some(v.to_string()),
        Bson::Boolean(v) => Some(v.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_canonical_bson_type() {
        assert_eq!(id_to_bson(&ExternalId::parse("42")), Bson::Int64(42));
        assert_eq!(id_to_bson(&42.into()), Bson::Int64(42));
        assert_eq!(id_to_bson(&"P-1".into()), Bson::String("P-1".into()));
        assert_eq!(id_from_bson(&Bson::Int32(42)), Some(ExternalId::Int(42)));
        assert_eq!(
            id_from_bson(&Bson::String("42".into())),
            Some(ExternalId::Int(42))
        );
        assert_eq!(id_from_bson(&Bson::String(" ".into())), None);
        assert_eq!(id_from_bson(&Bson::Double(1.5)), None);
    }

    #[test]
    fn record_keys_keep_integer_and_text_ids_apart() {
        assert_eq!(record_key(&42.into()), "42");
        assert_eq!(record_key(&ExternalId::Str("42".into())), "\"42\"");
        assert_eq!(record_key(&"P-1".into()), "\"P-1\"");
        assert_eq!(record_key(&"007".into()), "\"007\"");
    }

    #[test]
    fn records_round_trip_through_documents() {
        let reader = DocReader { namespace: "t.x" };
        let product = ProductRecord {
            product_id: "P-1".into(),
            name: Some("Shirt".into()),
            price: Some(19.99),
            image: None,
            attributes: [("category".to_string(), "shirts".to_string())].into(),
        };
        assert_eq!(
            reader.product(&product_document(&product)).unwrap(),
            product
        );
        let interaction = InteractionRecord {
            user_id: 1.into(),
            product_id: "P-1".into(),
            interaction_type: Some("view".into()),
            weight: Some(0.3),
            timestamp: Some(-1),
        };
        let key = interaction_key(&interaction, 1);
        assert_eq!(key, r#"[1,"P-1","view",-1]"#);
        assert_eq!(interaction_key(&interaction, 2), format!("{key}#2"));
        let doc = interaction_document(&interaction, key);
        assert_eq!(reader.interaction(&doc).unwrap(), interaction);
    }

    #[test]
    fn bad_documents_name_the_field_and_value() {
        let reader = DocReader {
            namespace: "db.products",
        };
        let doc = doc! { "product_id": 7_i64, "price": f64::NAN };
        let err = reader.product(&doc).unwrap_err();
        assert_eq!(err.location, "mongodb db.products document 7 field price");
        assert!(err.message.contains("NaN"), "{err}");
        let doc = doc! { "_id": "k", "product_id": 7_i32, "user_id": Bson::Null };
        let err = reader.interaction(&doc).unwrap_err();
        assert!(err.to_string().contains("missing user_id"), "{err}");
        // Negative prices and weights are refused, as by the CSV reader.
        let doc = doc! { "product_id": 7_i64, "price": -2.5 };
        let err = reader.product(&doc).unwrap_err();
        assert_eq!(err.location, "mongodb db.products document 7 field price");
        assert!(err.message.contains("must be >= 0"), "{err}");
        let doc = doc! { "_id": "k", "product_id": 7_i32, "user_id": 1_i32, "weight": -1_i32 };
        let err = reader.interaction(&doc).unwrap_err();
        assert!(
            err.message.contains("invalid weight -1: must be >= 0"),
            "{err}"
        );
        assert!(reader
            .product(&doc! { "product_id": 7_i64, "price": 0.0 })
            .is_ok());
    }

    #[test]
    fn lenient_product_details_never_fail() {
        let doc = doc! { "product_id": 7_i32, "name": "Tea", "price": f64::NAN, "image": 3 };
        let product = product_details_lenient(&doc).unwrap();
        assert_eq!(product.product_id, ExternalId::Int(7));
        assert_eq!(product.name.as_deref(), Some("Tea"));
        assert_eq!(product.price, None);
        assert_eq!(product.image, None);
        // The strict reader refuses the same document, naming the field.
        let reader = DocReader {
            namespace: "db.products",
        };
        assert!(reader.product(&doc).is_err());
        let doc = doc! { "product_id": "P-1", "price": 2_i64, "name": "  " };
        let product = product_details_lenient(&doc).unwrap();
        assert_eq!((product.price, product.name), (Some(2.0), None));
        assert!(product_details_lenient(&doc! { "name": "x" }).is_none());
        assert!(product_details_lenient(&doc! { "product_id": Bson::Null }).is_none());
    }
}
