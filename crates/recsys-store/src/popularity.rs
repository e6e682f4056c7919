//! Popularity counted while loading: a [`RecordSource`] wrapper that counts interactions per
//! product as they stream through, for the popularity fallback, at no extra pass.

use std::collections::HashMap;

use recsys_features::{
    ExternalId, InteractionRecord, ProductRecord, RecordIter, RecordSource, SourceError, UserRecord,
};

/// Wraps any source; every interaction streamed through
/// [`interactions`](RecordSource::interactions) is counted for its product.
///
/// ```
/// use recsys_features::{InMemorySource, InteractionRecord, RecordSource};
/// use recsys_store::CountingSource;
///
/// let click = |u: i64, p: i64| InteractionRecord {
///     user_id: u.into(), product_id: p.into(), interaction_type: None, weight: None, timestamp: None,
/// };
/// let data = InMemorySource { interactions: vec![click(1, 7), click(2, 7), click(1, 8)], ..Default::default() };
/// let mut source = CountingSource::new(data);
/// assert_eq!(source.interactions().unwrap().count(), 3);
/// assert_eq!(source.popularity(), vec![(7.into(), 2), (8.into(), 1)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CountingSource<S> {
    inner: S,
    counts: HashMap<ExternalId, u64>,
}

impl<S> CountingSource<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingSource {
            inner,
            counts: HashMap::new(),
        }
    }

    /// Interactions per product seen by the last (or current) interactions stream, most
    /// popular first, ties by id.
    pub fn popularity(&self) -> Vec<(ExternalId, u64)> {
        let mut counts: Vec<(ExternalId, u64)> =
            self.counts.iter().map(|(id, n)| (id.clone(), *n)).collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    }

    /// The wrapped source.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: RecordSource> RecordSource for CountingSource<S> {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        self.inner.users()
    }

    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        self.inner.products()
    }

    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        let CountingSource { inner, counts } = self;
        counts.clear();
        let stream = inner.interactions()?;
        Ok(Box::new(stream.inspect(move |row| {
            if let Ok(interaction) = row {
                *counts.entry(interaction.product_id.clone()).or_default() += 1;
            }
        })))
    }
}
