//! Helpers shared by the integration tests: attributes, temporary folders and per-test
//! databases.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use recsys_features::Attributes;

#[cfg(feature = "mongodb")]
use recsys_store::mongo::MongoStore;

/// Attributes from `(column, value)` pairs.
pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "recsys-store-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database of its own for one test, dropped on drop.
#[cfg(feature = "mongodb")]
pub struct TestDb {
    pub store: MongoStore,
}

#[cfg(feature = "mongodb")]
impl TestDb {
    /// Connects to `MONGODB_URI` with a database named after the test; `None` (after a
    /// message on stderr) when the variable is unset, so plain `cargo test` passes.
    pub fn new(test: &str) -> Option<TestDb> {
        let Some(uri) = std::env::var("MONGODB_URI")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            eprintln!("skipping {test}: MONGODB_URI not set (run scripts/test.sh)");
            return None;
        };
        let store = MongoStore::connect(uri.trim())
            .unwrap_or_else(|e| panic!("MONGODB_URI is set but unusable: {e}"));
        let name = format!("rs_{}_{}", std::process::id(), test);
        let name: String = name.chars().take(60).collect();
        let store = store.with_database(&name);
        store.drop_database().unwrap();
        Some(TestDb { store })
    }
}

#[cfg(feature = "mongodb")]
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Err(e) = self.store.drop_database() {
            eprintln!("could not drop test database: {e}");
        }
    }
}
