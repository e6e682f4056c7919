//! The product lookup: what a shop front needs to show a recommended item.

use recsys_features::{ExternalId, IdMap, ProductRecord};
use serde::{Deserialize, Serialize};

/// Display details of one product (all optional: the data may not have them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// Product name.
    pub name: Option<String>,
    /// Unit price; never NaN or infinite (such prices are stored as `None`).
    pub price: Option<f64>,
    /// Image file name (relative to the shop's image folder).
    pub image: Option<String>,
}

impl ProductInfo {
    /// The details of a product record (a non-finite price becomes `None`, an empty name or
    /// image `None`).
    pub fn from_record(record: &ProductRecord) -> Self {
        let non_empty = |s: &Option<String>| s.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        ProductInfo {
            name: non_empty(&record.name),
            price: record.price.filter(|p| p.is_finite()),
            image: non_empty(&record.image),
        }
    }
}

/// Product details by dense item index (the model's item order).
///
/// ```
/// use recsys_features::{ExternalId, IdMap, ProductRecord};
/// use recsys_recommend::ProductCatalog;
///
/// let mut items = IdMap::new();
/// items.get_or_insert(ExternalId::Int(7));
/// items.get_or_insert(ExternalId::Int(9));
/// let record = ProductRecord {
///     product_id: ExternalId::Int(9),
///     name: Some("Red scarf".into()),
///     price: Some(f64::NAN),
///     image: Some("9.jpg".into()),
///     attributes: Default::default(),
/// };
/// let catalog = ProductCatalog::from_records(&items, [record]);
/// assert_eq!(catalog.get(1).unwrap().name.as_deref(), Some("Red scarf"));
/// assert_eq!(catalog.get(1).unwrap().price, None); // NaN is never served
/// assert_eq!(catalog.get(0).unwrap().name, None); // no record: no details
/// assert_eq!(catalog.known(), 1);
/// ```
///
/// Deserialising refuses a catalogue with a NaN or infinite price ([`ProductCatalog::validate`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CatalogData")]
pub struct ProductCatalog {
    products: Vec<ProductInfo>,
}

/// The serialised form of [`ProductCatalog`], before validation.
#[derive(Deserialize)]
struct CatalogData {
    products: Vec<ProductInfo>,
}

impl TryFrom<CatalogData> for ProductCatalog {
    type Error = String;

    fn try_from(d: CatalogData) -> Result<Self, String> {
        let catalog = ProductCatalog {
            products: d.products,
        };
        catalog.validate()?;
        Ok(catalog)
    }
}

impl ProductCatalog {
    /// Deserialises like the `Deserialize` impl, but returns a catalogue that decodes and is
    /// invalid as `Ok(Err(reason))` (postcard drops error messages).
    pub(crate) fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Result<Self, String>, D::Error> {
        Ok(ProductCatalog::try_from(CatalogData::deserialize(d)?))
    }

    /// Checks that every price is finite (answers are JSON, which has no NaN). Catalogues
    /// built by [`ProductCatalog::from_records`] always are; [`ProductCatalog::from_infos`]
    /// takes the caller's word for it.
    pub fn validate(&self) -> Result<(), String> {
        match self
            .products
            .iter()
            .position(|p| p.price.is_some_and(|v| !v.is_finite()))
        {
            Some(item) => Err(format!(
                "item {item} has the price {:?}, which is not finite",
                self.products[item].price
            )),
            None => Ok(()),
        }
    }

    /// A catalogue with one (empty) entry per item of `items`, filled from the records
    /// whose id is in `items`; records of unknown products are ignored.
    pub fn from_records<I>(items: &IdMap, records: I) -> Self
    where
        I: IntoIterator<Item = ProductRecord>,
    {
        let mut products = vec![ProductInfo::default(); items.len()];
        for record in records {
            if let Some(i) = items.index(&record.product_id) {
                products[i] = ProductInfo::from_record(&record);
            }
        }
        ProductCatalog { products }
    }

    /// A catalogue from details already in item order.
    pub fn from_infos(products: Vec<ProductInfo>) -> Self {
        ProductCatalog { products }
    }

    /// Details of item `item`, if it is in range.
    pub fn get(&self, item: usize) -> Option<&ProductInfo> {
        self.products.get(item)
    }

    /// Number of entries (= number of items).
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// True when the catalogue has no entries.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Number of entries with at least one detail.
    pub fn known(&self) -> usize {
        self.products
            .iter()
            .filter(|p| **p != ProductInfo::default())
            .count()
    }

    /// Details of a product by external id.
    pub fn by_id<'a>(&'a self, items: &IdMap, id: &ExternalId) -> Option<&'a ProductInfo> {
        items.index(id).and_then(|i| self.get(i))
    }
}
