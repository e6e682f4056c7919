//! [`MongoSource`]: the three collections streamed as a [`RecordSource`].

use mongodb::bson::{doc, Document};
use recsys_features::{
    InteractionRecord, ProductRecord, RecordIter, RecordSource, SourceError, UserRecord,
};

use super::schema::{DocReader, INTERACTIONS, PRODUCTS, USERS};
use super::MongoStore;

/// Default number of documents per cursor batch.
const DEFAULT_BATCH_SIZE: u32 = 10_000;

/// Streams `users`, `products` and `user_product_interactions` as a [`RecordSource`], in
/// cursor batches of [`batch_size`](Self::batch_size) documents with projections (the
/// interaction `_id` key is never sent). Feed it to
/// [`Dataset::from_source`](recsys_features::Dataset::from_source) to train from the
/// database. A document that does not fit the schema comes out of the iterator as a
/// [`SourceError`] naming collection, document id and field; a lost connection, or no
/// answer within the store's operation timeout, ends the stream with an error. The cursor
/// is read on a helper thread, so decoding the next batch overlaps with using this one.
#[derive(Clone, Debug)]
pub struct MongoSource {
    store: MongoStore,
    batch_size: u32,
}

impl MongoSource {
    pub(crate) fn new(store: MongoStore) -> MongoSource {
        MongoSource {
            store,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Sets the cursor batch size (documents per round trip; at least 1).
    pub fn batch_size(mut self, batch_size: u32) -> MongoSource {
        self.batch_size = batch_size.max(1);
        self
    }

    fn stream<'a, T: 'a, F>(
        &'a self,
        collection: &'static str,
        projection: Document,
        read: F,
    ) -> Result<RecordIter<'a, T>, SourceError>
    where
        F: Fn(&DocReader<'_>, &Document) -> Result<T, SourceError> + 'a,
    {
        let namespace = format!("{}.{collection}", self.store.database_name());
        let documents = self.store.stream(
            collection,
            Some(projection),
            self.batch_size,
            format!("read {collection}"),
        );
        Ok(Box::new(documents.map(move |d| {
            let reader = DocReader {
                namespace: &namespace,
            };
            match d {
                Ok(d) => read(&reader, &d),
                Err(e) => Err(SourceError::from(e)),
            }
        })))
    }
}

impl RecordSource for MongoSource {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        self.stream(USERS, doc! { "_id": 0 }, |r, d| r.user(d))
    }

    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        self.stream(PRODUCTS, doc! { "_id": 0 }, |r, d| r.product(d))
    }

    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        let projection = doc! {
            "_id": 0, "user_id": 1, "product_id": 1, "interaction_type": 1, "weight": 1,
            "timestamp": 1,
        };
        self.stream(INTERACTIONS, projection, |r, d| r.interaction(d))
    }
}
