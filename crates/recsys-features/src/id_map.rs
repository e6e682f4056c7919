//! [`IdMap`]: external ids ⇄ dense indices.

use std::collections::HashMap;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::FeaturesError;
use crate::records::ExternalId;

/// A bijection between external ids and dense indices `0..len()`, in insertion order.
///
/// Indices are stable: once an id has an index it keeps it, and new ids get the next index.
/// Lookups are O(1) both ways (a `Vec` one way, a `HashMap` the other).
///
/// Serialised as the plain list of ids in index order (for JSON: `[17, "P-2", 40]`);
/// deserialising rejects duplicate or empty ids, and text ids that are canonical integers
/// (`Str("42")`: that id is `Int(42)`, so the map would hold one id twice or miss it).
///
/// ```
/// use recsys_features::{ExternalId, IdMap};
///
/// let mut users = IdMap::new();
/// assert_eq!(users.get_or_insert(ExternalId::from("u1")), 0);
/// assert_eq!(users.get_or_insert(ExternalId::from(42)), 1);
/// assert_eq!(users.get_or_insert(ExternalId::from("42")), 1); // "42" and 42 are one id
/// assert_eq!(users.index(&ExternalId::from("u1")), Some(0));
/// assert_eq!(users.id(1), Some(&ExternalId::Int(42)));
/// assert_eq!(users.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<ExternalId>")]
pub struct IdMap {
    ids: Vec<ExternalId>,
    index_by_id: HashMap<ExternalId, usize>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        IdMap::default()
    }

    /// The index of `id`, inserting it with the next free index if it is new.
    ///
    /// The map does not judge ids; callers that must refuse empty ids check
    /// [`ExternalId::is_empty`] first (the dataset builder does).
    pub fn get_or_insert(&mut self, id: ExternalId) -> usize {
        if let Some(&index) = self.index_by_id.get(&id) {
            return index;
        }
        let index = self.ids.len();
        self.index_by_id.insert(id.clone(), index);
        self.ids.push(id);
        index
    }

    /// The index of `id`, if registered.
    #[inline]
    pub fn index(&self, id: &ExternalId) -> Option<usize> {
        self.index_by_id.get(id).copied()
    }

    /// The id at `index`, if `index < len()`.
    #[inline]
    pub fn id(&self, index: usize) -> Option<&ExternalId> {
        self.ids.get(index)
    }

    /// True when `id` is registered.
    pub fn contains(&self, id: &ExternalId) -> bool {
        self.index_by_id.contains_key(id)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id is registered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `(index, id)` pairs in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (usize, &ExternalId)> + '_ {
        self.ids.iter().enumerate()
    }

    /// All ids in index order.
    pub fn ids(&self) -> &[ExternalId] {
        &self.ids
    }
}

impl Serialize for IdMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.ids.serialize(serializer)
    }
}

impl TryFrom<Vec<ExternalId>> for IdMap {
    type Error = FeaturesError;

    /// Builds a map from ids in index order; refuses duplicates, empty ids and text ids
    /// that are canonical integers.
    fn try_from(ids: Vec<ExternalId>) -> Result<Self, FeaturesError> {
        let mut index_by_id = HashMap::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            if id.is_empty() {
                return Err(FeaturesError::Corrupt {
                    what: "id map",
                    reason: format!("empty id at index {index}"),
                });
            }
            if let ExternalId::Str(text) = id {
                if text.parse::<i64>().is_ok_and(|v| v.to_string() == *text) {
                    return Err(FeaturesError::Corrupt {
                        what: "id map",
                        reason: format!(
                            "the text id \"{text}\" at index {index} is an integer id stored as text"
                        ),
                    });
                }
            }
            if let Some(first) = index_by_id.insert(id.clone(), index) {
                return Err(FeaturesError::Corrupt {
                    what: "id map",
                    reason: format!("id \"{id}\" appears at indices {first} and {index}"),
                });
            }
        }
        Ok(IdMap { ids, index_by_id })
    }
}

impl FromIterator<ExternalId> for IdMap {
    /// Inserts the ids in order; repeated ids keep their first index.
    fn from_iter<T: IntoIterator<Item = ExternalId>>(iter: T) -> Self {
        let mut map = IdMap::new();
        for id in iter {
            map.get_or_insert(id);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_id() -> impl Strategy<Value = ExternalId> {
        prop_oneof![
            (-50i64..50).prop_map(ExternalId::from),
            "[a-c0-9]{1,3}".prop_map(ExternalId::from),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_both_ways(ids in proptest::collection::vec(arb_id(), 0..60)) {
            let mut map = IdMap::new();
            let indices: Vec<usize> = ids.iter().map(|id| map.get_or_insert(id.clone())).collect();
            for (id, &index) in ids.iter().zip(&indices) {
                prop_assert_eq!(map.index(id), Some(index));
                prop_assert_eq!(map.id(index), Some(id));
            }
            for (index, id) in map.iter() {
                prop_assert_eq!(map.index(id), Some(index));
            }
            // Indices are dense and in first-seen order.
            let mut seen = std::collections::HashSet::new();
            let first_seen: Vec<&ExternalId> = ids.iter().filter(|id| seen.insert(*id)).collect();
            prop_assert_eq!(map.len(), first_seen.len());
            for (index, id) in first_seen.into_iter().enumerate() {
                prop_assert_eq!(map.id(index), Some(id));
            }
            prop_assert_eq!(map.id(map.len()), None);
            // Serde round trip keeps everything.
            let json = serde_json::to_string(&map).unwrap();
            let back: IdMap = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, map);
        }
    }

    #[test]
    fn text_and_integer_ids_are_one_entry() {
        let mut map = IdMap::new();
        let a = map.get_or_insert(ExternalId::from("7"));
        let b = map.get_or_insert(ExternalId::from(7));
        assert_eq!(a, b);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn serialises_as_a_plain_list() {
        let map: IdMap = vec![ExternalId::from(17), ExternalId::from("P-2")]
            .into_iter()
            .collect();
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"[17,"P-2"]"#);
    }

    #[test]
    fn deserialising_refuses_duplicates_and_empty_ids() {
        let err = serde_json::from_str::<IdMap>(r#"[1, "a", 1]"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("id \"1\" appears at indices 0 and 2"),
            "{err}"
        );
        let err = serde_json::from_str::<IdMap>(r#"["a", ""]"#).unwrap_err();
        assert!(err.to_string().contains("empty id at index 1"), "{err}");
        let map = IdMap::from_iter([ExternalId::Str("42".into()), ExternalId::Int(42)]);
        assert_eq!(map.len(), 2, "the map itself does not judge ids");
        let err = IdMap::try_from(map.ids().to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("integer id stored as text"),
            "{err}"
        );
        // "42" read back from text is the integer id 42.
        let map: IdMap = serde_json::from_str(r#"["42"]"#).unwrap();
        assert_eq!(map.index(&ExternalId::Int(42)), Some(0));
    }
}
