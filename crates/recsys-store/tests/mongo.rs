//! MongoDB integration tests: import (validation, idempotence, resumption, skipping bad rows),
//! canonical id types, popularity and GridFS artifacts, against the server that
//! `scripts/db.sh start` brings up (each test in its own database, dropped at the end).
#![cfg(feature = "mongodb")]

mod common;

use common::{TempDir, TestDb};
use mongodb::bson::{doc, Bson, Document};
use recsys_features::{ExternalId, InMemorySource, RecordSource};
use recsys_store::mongo::{
    id_to_bson, import_csv, BadRows, CollectionSummary, ImportOptions, ImportPhase, ImportSummary,
    MongoStore, INTERACTIONS, PRODUCTS, USERS,
};
use recsys_store::{CsvSource, StoreError};

const USERS_CSV: &str = "user_id,city\n1,Paris\n2,\nu-3,Berlin\n";
const PRODUCTS_CSV: &str = "product_id,name,price,image,category\n\
    10,Shirt,19.99,10.jpg,shirts\n11,Dress,,11.jpg,dresses\nP-12,Hat,5,,\n";
const INTERACTIONS_CSV: &str = "user_id,product_id,interaction_type,weight,timestamp\n\
    1,10,view,1,2017-09-09T22:30:46Z\n\
    1,10,purchase,2,2017-09-09T22:40:00Z\n\
    2,11,view,,1504996246\n\
    u-3,P-12,,,\n\
    u-3,P-12,,,\n\
    2,10,cart,0.5,\n";

fn csv_dir(users: &str, products: &str, interactions: &str) -> TempDir {
    let dir = TempDir::new("mongo-test");
    dir.write("users.csv", users);
    dir.write("products.csv", products);
    dir.write("user_product_interactions.csv", interactions);
    dir
}

fn import(
    store: &MongoStore,
    dir: &TempDir,
    options: &ImportOptions,
) -> Result<ImportSummary, StoreError> {
    import_csv(
        store,
        &CsvSource::open(&dir.0).unwrap(),
        options,
        &mut |_| {},
    )
}

/// What an import did to one collection's rows: (inserted, updated, unchanged).
fn changes(c: &CollectionSummary) -> (u64, u64, u64) {
    (c.inserted, c.updated, c.unchanged)
}

fn counts(store: &MongoStore) -> [u64; 3] {
    [USERS, PRODUCTS, INTERACTIONS].map(|c| store.count(c).unwrap())
}

/// CI runs with RECSYS_REQUIRE_DB=1 (scripts/test.sh): then the database tests must not
/// skip silently.
#[test]
fn database_is_present_when_required() {
    if std::env::var("RECSYS_REQUIRE_DB").as_deref() != Ok("1") {
        eprintln!("RECSYS_REQUIRE_DB is not 1: the database tests may skip");
        return;
    }
    let uri = std::env::var("MONGODB_URI").expect(
        "RECSYS_REQUIRE_DB=1 but MONGODB_URI is not set: start the server with scripts/db.sh",
    );
    let store = MongoStore::connect(&uri)
        .unwrap_or_else(|e| panic!("RECSYS_REQUIRE_DB=1 but the database is not usable: {e}"));
    assert!(!store.database_name().is_empty());
}

#[test]
fn import_is_idempotent_and_keeps_every_row_once() {
    let Some(db) = TestDb::new("idempotent") else {
        return;
    };
    let dir = csv_dir(USERS_CSV, PRODUCTS_CSV, INTERACTIONS_CSV);
    let mut phases = Vec::new();
    let first = import_csv(
        &db.store,
        &CsvSource::open(&dir.0).unwrap(),
        &ImportOptions {
            batch_size: 2,
            ..ImportOptions::default()
        },
        &mut |p| phases.push((p.phase, p.collection)),
    )
    .unwrap();
    assert!(phases.contains(&(ImportPhase::Validate, INTERACTIONS)));
    assert!(phases.contains(&(ImportPhase::Write, INTERACTIONS)));
    assert_eq!((first.users.read, first.users.inserted), (3, 3));
    assert_eq!((first.products.read, first.products.inserted), (3, 3));
    // The repeated row `u-3,P-12,,,` is kept: both rows are present once each.
    assert_eq!(
        (first.interactions.read, first.interactions.inserted),
        (6, 6)
    );
    assert_eq!(counts(&db.store), [3, 3, 6]);

    let second = import(&db.store, &dir, &ImportOptions::default()).unwrap();
    for (name, c) in second.collections() {
        assert_eq!((c.inserted, c.updated), (0, 0), "{name}: {c:?}");
        assert_eq!(c.unchanged, c.read, "{name}");
    }
    assert_eq!(counts(&db.store), [3, 3, 6]);

    // A changed price is an update, nothing else moves.
    let changed = PRODUCTS_CSV.replace("19.99", "17.5");
    let dir = csv_dir(USERS_CSV, &changed, INTERACTIONS_CSV);
    let third = import(&db.store, &dir, &ImportOptions::default()).unwrap();
    assert_eq!((third.products.inserted, third.products.updated), (0, 1));
    assert_eq!(counts(&db.store), [3, 3, 6]);
    let loaded = InMemorySource::collect_from(db.store.source()).unwrap();
    let shirt = loaded
        .products
        .iter()
        .find(|p| p.product_id == 10.into())
        .unwrap();
    assert_eq!(shirt.price, Some(17.5));
}

#[test]
fn import_interrupted_half_way_then_rerun_has_every_row_once() {
    let Some(db) = TestDb::new("resume") else {
        return;
    };
    // The "killed" run: everything up to the middle of the interactions file was written.
    let lines: Vec<&str> = INTERACTIONS_CSV.lines().collect();
    let half = lines[..4].join("\n") + "\n";
    let partial = csv_dir(USERS_CSV, PRODUCTS_CSV, &half);
    import(&db.store, &partial, &ImportOptions::default()).unwrap();
    assert_eq!(counts(&db.store), [3, 3, 3]);

    let full = csv_dir(USERS_CSV, PRODUCTS_CSV, INTERACTIONS_CSV);
    let rerun = import(&db.store, &full, &ImportOptions::default()).unwrap();
    assert_eq!(rerun.interactions.inserted, 3);
    assert_eq!(rerun.interactions.unchanged, 3);
    assert_eq!(counts(&db.store), [3, 3, 6]);
    let loaded = InMemorySource::collect_from(db.store.source()).unwrap();
    let from_csv = InMemorySource::collect_from(CsvSource::open(&full.0).unwrap()).unwrap();
    let key = |i: &recsys_features::InteractionRecord| format!("{i:?}");
    let mut a: Vec<String> = loaded.interactions.iter().map(key).collect();
    let mut b: Vec<String> = from_csv.interactions.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// Each bad input fails the import with file, line, column and value, writing nothing.
#[test]
fn bad_input_is_rejected_before_writing_anything() {
    let Some(db) = TestDb::new("reject") else {
        return;
    };
    let cases: Vec<(&str, String, String, String, &str, &str)> = vec![
        (
            "missing id",
            "user_id,city\n1,Paris\n,Lyon\n".into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id\n1,10\n".into(),
            "users.csv:3 column user_id",
            "missing user_id",
        ),
        (
            "NaN price",
            USERS_CSV.into(),
            "product_id,price\n10,NaN\n".into(),
            "user_id,product_id\n1,10\n".into(),
            "products.csv:2 column price",
            "\"NaN\"",
        ),
        (
            "unparsable weight",
            USERS_CSV.into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id,weight\n1,10,heavy\n".into(),
            "user_product_interactions.csv:2 column weight",
            "\"heavy\"",
        ),
        (
            "unparsable timestamp",
            USERS_CSV.into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id,timestamp\n1,10,yesterday\n".into(),
            "user_product_interactions.csv:2 column timestamp",
            "\"yesterday\"",
        ),
        (
            "duplicate header",
            "user_id,city,city\n1,a,b\n".into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id\n1,10\n".into(),
            "users.csv:1",
            "duplicate column name \"city\"",
        ),
        (
            "wrong column count",
            USERS_CSV.into(),
            "product_id,name\n10,Shirt\n11,Dress,extra\n".into(),
            "user_id,product_id\n1,10\n".into(),
            "products.csv:3",
            "3 fields but the header has 2",
        ),
        (
            "unknown user",
            USERS_CSV.into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id\n1,10\n99,10\n".into(),
            "user_product_interactions.csv:3 column user_id",
            "unknown user_id 99",
        ),
        (
            "unknown product",
            USERS_CSV.into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id\n1,10\n1,P-404\n".into(),
            "user_product_interactions.csv:3 column product_id",
            "unknown product_id P-404",
        ),
        (
            "attribute MongoDB cannot store",
            "user_id,a.b\n1,x\n".into(),
            PRODUCTS_CSV.into(),
            "user_id,product_id\n1,10\n".into(),
            "users.csv:1",
            "cannot be stored in MongoDB",
        ),
    ];
    for (name, users, products, interactions, location, value) in cases {
        let dir = csv_dir(&users, &products, &interactions);
        let err = import(&db.store, &dir, &ImportOptions::default())
            .map(|_| ())
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(location), "{name}: {text}");
        assert!(text.contains(value), "{name}: {text}");
        assert_eq!(
            counts(&db.store),
            [0, 0, 0],
            "{name}: something was written"
        );
    }

    // All invalid rows are counted, the first ones listed.
    let dir = csv_dir(
        "user_id\n1\n\n,\n,\n",
        PRODUCTS_CSV,
        "user_id,product_id\n7,10\n1,10\n",
    );
    match import(&db.store, &dir, &ImportOptions::default()) {
        Err(StoreError::InvalidInput { errors, total }) => {
            assert_eq!(total, 3, "{errors:?}");
            assert_eq!(errors.len(), 3);
            assert!(
                errors[2].to_string().contains("unknown user_id 7"),
                "{}",
                errors[2]
            );
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn skipping_bad_rows_writes_a_rejects_file() {
    let Some(db) = TestDb::new("skip") else {
        return;
    };
    let dir = csv_dir(
        USERS_CSV,
        "product_id,name,price\n10,Shirt,1\n11,Dress,NaN\nP-12,Hat,2\n",
        "user_id,product_id,weight\n1,10,1\n1,11,1\n99,10,1\n2,P-12,-1\n2,P-12,3\n",
    );
    let rejects = dir.0.join("out/rejects.csv");
    let options = ImportOptions {
        bad_rows: BadRows::Skip {
            rejects: rejects.clone(),
        },
        ..ImportOptions::default()
    };
    let summary = import(&db.store, &dir, &options).unwrap();
    assert_eq!(
        (
            summary.products.read,
            summary.products.inserted,
            summary.products.rejected
        ),
        (3, 2, 1)
    );
    // 1,11 refers to the rejected product; 99 is unknown; weight -1 is invalid.
    assert_eq!(
        (summary.interactions.read, summary.interactions.inserted),
        (5, 2)
    );
    assert_eq!(summary.interactions.rejected, 3);
    assert_eq!(summary.rejects.as_deref(), Some(rejects.as_path()));
    assert_eq!(counts(&db.store), [3, 2, 2]);

    let text = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "file,line,error,row");
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].contains(",3,")
            && lines[1].contains("NaN")
            && lines[1].ends_with("\"11,Dress,NaN\""),
        "{text}"
    );
    assert!(text.contains("unknown product_id 11"), "{text}");
    assert!(text.contains("unknown user_id 99"), "{text}");
    // Rows refused for an unknown id keep their original text.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unknown user_id 99") && l.ends_with(",\"99,10,1\"")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unknown product_id 11") && l.ends_with(",\"1,11,1\"")),
        "{text}"
    );
    assert!(text.contains("\"2,P-12,-1\""), "{text}");
}

/// A quote never closed swallows the rest of the file: even when skipping bad rows, the
/// import must stop with the line of the quote instead of dropping the following rows.
#[test]
fn an_unterminated_quote_stops_the_import_even_when_skipping_bad_rows() {
    let Some(db) = TestDb::new("open_quote") else {
        return;
    };
    let mut products = String::from("product_id,name,price\n10,Shirt,1\n11,\"Dress,2\n");
    for i in 0..15 {
        products.push_str(&format!("{},Hat {i},3\n", 20 + i));
    }
    let dir = csv_dir(USERS_CSV, &products, "user_id,product_id\n1,10\n");
    let options = ImportOptions {
        bad_rows: BadRows::Skip {
            rejects: dir.0.join("rejects.csv"),
        },
        ..ImportOptions::default()
    };
    let err = import(&db.store, &dir, &options).unwrap_err().to_string();
    assert!(
        err.contains("products.csv:3") && err.contains("unterminated quote"),
        "{err}"
    );
    assert_eq!(counts(&db.store), [0, 0, 0]);
}

/// A shop with `users` users, `products` products and `interactions` interactions (every
/// fifth one a repeat of the one before, to exercise repeated keys).
fn shop(users: usize, products: usize, interactions: usize) -> (String, String, String) {
    let mut u = String::from("user_id,city\n");
    for i in 1..=users {
        u.push_str(&format!("{i},city-{}\n", i % 7));
    }
    let mut p = String::from("product_id,name,price,category\n");
    for i in 0..products {
        p.push_str(&format!("P-{i},Product {i},{}.5,cat-{}\n", i % 50, i % 9));
    }
    let mut x = String::from("user_id,product_id,interaction_type,weight,timestamp\n");
    let mut last = String::new();
    for i in 0..interactions {
        let row = if i % 5 == 4 {
            last.clone()
        } else {
            let kind = ["view", "cart", "purchase"][i % 3];
            format!(
                "{},P-{},{kind},{},{}\n",
                1 + (i * 7) % users,
                (i * 13) % products,
                1 + i % 3,
                1_500_000_000 + i
            )
        };
        x.push_str(&row);
        last = row;
    }
    (u, p, x)
}

/// The first `n` data rows of a CSV text (with its header).
fn prefix(text: &str, n: usize) -> String {
    text.lines().take(n + 1).map(|l| format!("{l}\n")).collect()
}

/// Every document of a collection, as sorted debug text of its records, checked against
/// the CSV folder's records: same rows, each exactly once.
fn assert_same_rows(store: &MongoStore, dir: &TempDir) {
    let loaded = InMemorySource::collect_from(store.source()).unwrap();
    let csv = InMemorySource::collect_from(CsvSource::open(&dir.0).unwrap()).unwrap();
    fn sorted<T: std::fmt::Debug>(rows: &[T]) -> Vec<String> {
        let mut rows: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
        rows.sort();
        rows
    }
    assert_eq!(sorted(&loaded.users), sorted(&csv.users));
    assert_eq!(sorted(&loaded.products), sorted(&csv.products));
    assert_eq!(sorted(&loaded.interactions), sorted(&csv.interactions));
    // Ids are unique in the database too (no duplicate documents of one row).
    for (collection, field) in [(USERS, "user_id"), (PRODUCTS, "product_id")] {
        let ids: Vec<String> = store
            .database()
            .collection::<Document>(collection)
            .find(doc! {})
            .run()
            .unwrap()
            .map(|d| d.unwrap().get(field).unwrap().to_string())
            .collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{collection}");
    }
}

/// FerretDB 1.24 never answers an `update` with more than 100 replacements of existing
/// documents; an import rerun over a partly written collection used to send one per batch
/// (up to the batch size) and hang. Rerunning after an interruption that left hundreds of
/// rows in every collection must complete, write only what is missing or changed, and
/// leave exactly the files' rows.
#[test]
fn rerun_after_an_interrupted_import_with_hundreds_of_existing_rows_completes() {
    let Some(db) = TestDb::new("rerun_many") else {
        return;
    };
    let (users, products, interactions) = shop(400, 300, 2_000);
    // The interrupted run: users complete, products and interactions partly written (the
    // first 1,300 interactions with the 220 products written).
    let written: String = interactions
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1).unwrap()[2..].parse::<usize>().unwrap() < 220)
        .take(1_300)
        .map(|l| format!("{l}\n"))
        .collect();
    let header = interactions.lines().next().unwrap();
    let partial = csv_dir(
        &users,
        &prefix(&products, 220),
        &format!("{header}\n{written}"),
    );
    import(&db.store, &partial, &ImportOptions::default()).unwrap();
    assert_eq!(counts(&db.store), [400, 220, 1_300]);

    // One product and one interaction changed since: they are updated, not duplicated.
    let products = products.replace("P-7,Product 7,7.5,", "P-7,Product 7,99.25,");
    let interactions = interactions.replacen(",cart,2,1500000001", ",cart,5,1500000001", 1);
    let full = csv_dir(&users, &products, &interactions);
    let rerun = import(&db.store, &full, &ImportOptions::default()).unwrap();
    assert_eq!(changes(&rerun.users), (0, 0, 400));
    assert_eq!(changes(&rerun.products), (80, 1, 219));
    assert_eq!(changes(&rerun.interactions), (700, 1, 1_299));
    assert_eq!(counts(&db.store), [400, 300, 2_000]);
    assert_same_rows(&db.store, &full);

    // A plain second import of the same files completes and changes nothing.
    let again = import(&db.store, &full, &ImportOptions::default()).unwrap();
    for (name, c) in again.collections() {
        assert_eq!(changes(c), (0, 0, c.read), "{name}");
    }
    assert_eq!(counts(&db.store), [400, 300, 2_000]);
    assert_same_rows(&db.store, &full);

    // Every product changed: 300 replacements, sent in several small commands.
    let renamed = csv_dir(
        &users,
        &products.replace(",Product ", ",Item "),
        &interactions,
    );
    let third = import(&db.store, &renamed, &ImportOptions::default()).unwrap();
    assert_eq!(changes(&third.products), (0, 300, 0));
    assert_eq!(counts(&db.store), [400, 300, 2_000]);
    assert_same_rows(&db.store, &renamed);
}

/// A server that accepts connections and answers the handshake but never answers any other
/// command: every operation must fail with a timeout naming it, never hang.
#[test]
fn a_server_that_stops_answering_gives_a_timeout_naming_the_operation() {
    use recsys_store::mongo::ConnectOptions;
    use std::time::{Duration, Instant};

    let uri = silent_server::start();
    let options = ConnectOptions {
        timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_millis(400),
        ..ConnectOptions::default()
    };
    let store = MongoStore::connect_with(&uri, &options).unwrap();
    let start = Instant::now();
    let err = store.count(PRODUCTS).unwrap_err();
    assert!(matches!(err, StoreError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("count products"), "{err}");
    let err = InMemorySource::collect_from(store.source()).unwrap_err();
    assert!(err.to_string().contains("read users"), "{err}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    let dir = csv_dir(USERS_CSV, PRODUCTS_CSV, INTERACTIONS_CSV);
    let err = import(&store, &dir, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("existing documents of users"),
        "{err}"
    );
    let err = store.put_artifact("m", b"bytes").unwrap_err();
    assert!(err.to_string().contains("upload artifact"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

/// A minimal wire-protocol server on loopback: answers `hello`/`isMaster`/`ping` (OP_MSG
/// and the legacy OP_QUERY handshake) and never answers anything else.
mod silent_server {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use mongodb::bson::{doc, Document};

    pub fn start() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
        format!("mongodb://127.0.0.1:{port}/silent?directConnection=true")
    }

    fn hello() -> Document {
        doc! {
            "ok": 1.0, "isWritablePrimary": true, "ismaster": true, "helloOk": true,
            "maxWireVersion": 17_i32, "minWireVersion": 0_i32, "maxBsonObjectSize": 16_777_216_i32,
            "maxMessageSizeBytes": 48_000_000_i32, "maxWriteBatchSize": 100_000_i32,
            "localTime": mongodb::bson::DateTime::now(), "connectionId": 1_i32,
        }
    }

    fn serve(mut stream: TcpStream) {
        loop {
            let mut header = [0u8; 16];
            if stream.read_exact(&mut header).is_err() {
                return;
            }
            let int = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let (length, request_id, opcode) =
                (int(&header[0..]), int(&header[4..]), int(&header[12..]));
            let mut body = vec![0u8; length as usize - 16];
            if stream.read_exact(&mut body).is_err() {
                return;
            }
            let command = match opcode {
                // OP_MSG: flags, then a kind-0 section with the command document.
                2013 => Document::from_reader(&body[5..]).ok(),
                // OP_QUERY: flags, cstring collection name, skip, limit, query document.
                2004 => {
                    let end = body[4..].iter().position(|&b| b == 0).unwrap() + 5;
                    Document::from_reader(&body[end + 8..]).ok()
                }
                _ => None,
            };
            let Some(command) = command else { return };
            let name = command
                .keys()
                .next()
                .cloned()
                .unwrap_or_default()
                .to_lowercase();
            if !["hello", "ismaster", "ping"].contains(&name.as_str()) {
                continue; // never answer
            }
            let mut reply_doc = Vec::new();
            hello().to_writer(&mut reply_doc).unwrap();
            let mut reply = Vec::new();
            if opcode == 2013 {
                let total = 16 + 4 + 1 + reply_doc.len();
                reply.extend((total as i32).to_le_bytes());
                reply.extend(1_i32.to_le_bytes());
                reply.extend(request_id.to_le_bytes());
                reply.extend(2013_i32.to_le_bytes());
                reply.extend(0_i32.to_le_bytes());
                reply.push(0);
            } else {
                let total = 16 + 20 + reply_doc.len();
                reply.extend((total as i32).to_le_bytes());
                reply.extend(1_i32.to_le_bytes());
                reply.extend(request_id.to_le_bytes());
                reply.extend(1_i32.to_le_bytes()); // OP_REPLY
                reply.extend(0_i32.to_le_bytes()); // flags
                reply.extend(0_i64.to_le_bytes()); // cursor id
                reply.extend(0_i32.to_le_bytes()); // starting from
                reply.extend(1_i32.to_le_bytes()); // number returned
            }
            reply.extend(reply_doc);
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

#[test]
fn ids_are_stored_with_one_canonical_bson_type() {
    let Some(db) = TestDb::new("idtypes") else {
        return;
    };
    let dir = csv_dir(USERS_CSV, PRODUCTS_CSV, INTERACTIONS_CSV);
    import(&db.store, &dir, &ImportOptions::default()).unwrap();
    let users = db.store.database().collection::<Document>(USERS);
    // "1" in the CSV is the integer 1: found by Int64, not by the string "1".
    let one = users
        .find_one(doc! { "user_id": Bson::Int64(1) })
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(one.get_str("_id").unwrap(), "1");
    // (Compatible servers may hand a small Int64 back as Int32; both are integers.)
    assert!(matches!(
        one.get("user_id"),
        Some(Bson::Int64(1)) | Some(Bson::Int32(1))
    ));
    assert!(users
        .find_one(doc! { "user_id": "1" })
        .run()
        .unwrap()
        .is_none());
    let text = users
        .find_one(doc! { "user_id": id_to_bson(&"u-3".into()) })
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(text.get_str("city").unwrap(), "Berlin");
    // Interactions reference ids the same way; product_id is indexed for such lookups.
    let interactions = db.store.database().collection::<Document>(INTERACTIONS);
    let n = interactions
        .count_documents(doc! { "product_id": id_to_bson(&ExternalId::parse("10")) })
        .run()
        .unwrap();
    assert_eq!(n, 3);
    // Timestamps are BSON dates, weights doubles.
    let first = interactions
        .find_one(doc! { "user_id": 1_i64, "interaction_type": "view" })
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.get_datetime("timestamp").unwrap().timestamp_millis(),
        1_504_996_246_000
    );
    assert_eq!(first.get_f64("weight").unwrap(), 1.0);
}

#[test]
fn popularity_is_counted_in_the_database() {
    let Some(db) = TestDb::new("popularity") else {
        return;
    };
    let dir = csv_dir(USERS_CSV, PRODUCTS_CSV, INTERACTIONS_CSV);
    import(&db.store, &dir, &ImportOptions::default()).unwrap();
    let popular = db.store.popularity().unwrap();
    assert_eq!(
        popular,
        vec![(10.into(), 3), ("P-12".into(), 2), (11.into(), 1)]
    );
}

#[test]
fn source_reports_documents_that_do_not_fit_the_schema() {
    let Some(db) = TestDb::new("baddoc") else {
        return;
    };
    let products = db.store.database().collection::<Document>(PRODUCTS);
    products
        .insert_one(doc! { "_id": "5", "product_id": 5_i64, "price": "cheap" })
        .run()
        .unwrap();
    let mut source = db.store.source();
    let err = source.products().unwrap().next().unwrap().unwrap_err();
    assert!(err.location.contains("products"), "{err}");
    assert!(err.location.contains("field price"), "{err}");
    assert!(err.message.contains("\"cheap\""), "{err}");
}

#[test]
fn artifacts_round_trip_through_gridfs() {
    let Some(db) = TestDb::new("artifacts") else {
        return;
    };
    let store = &db.store;
    // Larger than one 255 KiB GridFS chunk, not a multiple of it.
    let big: Vec<u8> = (0..700_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    store.put_artifact("model.recsys", &big).unwrap();
    assert_eq!(store.get_artifact("model.recsys").unwrap(), big);

    store.put_artifact("model.recsys", b"v2").unwrap();
    assert_eq!(store.get_artifact("model.recsys").unwrap(), b"v2");
    store.put_artifact("empty", b"").unwrap();
    assert_eq!(store.get_artifact("empty").unwrap(), b"");
    let list = store.list_artifacts().unwrap();
    let names: Vec<(&str, u64)> = list.iter().map(|a| (a.name.as_str(), a.length)).collect();
    assert_eq!(names, [("empty", 0), ("model.recsys", 2)]);

    assert!(store.delete_artifact("model.recsys").unwrap());
    assert!(!store.delete_artifact("model.recsys").unwrap());
    match store.get_artifact("model.recsys") {
        Err(StoreError::ArtifactNotFound { name, .. }) => assert_eq!(name, "model.recsys"),
        other => panic!("expected ArtifactNotFound, got {other:?}"),
    }
}

/// Publishing uploads the bytes, then moves the `current` pointer; a second model moves it
/// again; the downloaded bytes are the published ones; bad ids and inconsistent pointers
/// are errors naming the problem.
#[test]
fn models_are_published_behind_one_current_pointer() {
    let Some(db) = TestDb::new("publish") else {
        return;
    };
    let store = &db.store;
    assert_eq!(
        store.current_model().unwrap(),
        None,
        "nothing published yet"
    );
    let v1: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let p1 = store.publish_model("0a1b2c3d", &v1).unwrap();
    assert_eq!(p1.artifact, "model-0a1b2c3d.rsb");
    assert_eq!(p1.length, v1.len() as u64);
    let current = store.current_model().unwrap().unwrap();
    assert_eq!(current, p1);
    assert_eq!(store.download_model(&current).unwrap(), v1);

    let p2 = store.publish_model("ffff0000", b"second model").unwrap();
    let current = store.current_model().unwrap().unwrap();
    assert_eq!(current.model_id, "ffff0000");
    assert!(current.published_at_millis >= p1.published_at_millis);
    assert_eq!(store.download_model(&p2).unwrap(), b"second model");
    // The earlier model's artifact stays (a replica may still be downloading it).
    assert_eq!(store.download_model(&p1).unwrap(), v1);

    let err = store.publish_model("../x", b"x").unwrap_err().to_string();
    assert!(err.contains("model id"), "{err}");
    let wrong = recsys_store::mongo::PublishedModel {
        length: 5,
        ..p2.clone()
    };
    let err = store.download_model(&wrong).unwrap_err().to_string();
    assert!(err.contains("12 bytes, the pointer says 5"), "{err}");
    store
        .database()
        .collection::<mongodb::bson::Document>(recsys_store::mongo::MODELS)
        .replace_one(doc! { "_id": "current" }, doc! { "model_id": "x" })
        .run()
        .unwrap();
    let err = store.current_model().unwrap_err().to_string();
    assert!(err.contains("lacks"), "{err}");
}

#[test]
fn connects_from_env_and_names_missing_uri() {
    match std::env::var("MONGODB_URI") {
        Ok(uri) => {
            let store = MongoStore::from_env().unwrap();
            assert_eq!(store.uri(), recsys_store::mongo::redact_uri(uri.trim()));
        }
        Err(_) => {
            eprintln!("skipping connects_from_env: MONGODB_URI not set (run scripts/test.sh)");
        }
    }
}
