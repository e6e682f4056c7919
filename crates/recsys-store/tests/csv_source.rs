//! CsvSource, read_pairs and write_csv_dir against small fixture files.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use recsys_features::{
    ExternalId, InMemorySource, InteractionRecord, ProductRecord, RecordSource, SourceError,
    UserRecord,
};
use recsys_store::{read_pairs, write_csv_dir, CsvSource, StoreError};

mod common;
use common::{attrs, TempDir};

/// Writes `text` gzip-compressed as `name` in `dir`.
fn write_gz(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.0.join(name);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    path
}

const USERS: &str = "user_id,city,age_group\n1,Paris,25-34\n2,,55+\nu-3, Berlin ,\n";
const PRODUCTS: &str = "product_id,name,price,image,category\n\
    10,\"Blue Shirt, linen\",19.99,10.jpg,shirts\n\
    11,Red Dress,,11.jpg,\n";
const INTERACTIONS: &str = "user_id,product_id,interaction_type,weight,timestamp\n\
    1,10,view,1,2017-09-09T22:30:46Z\n\
    2,11,purchase,5.5,1504996246\n\
    u-3,10,,,\n";

fn fixture() -> TempDir {
    let dir = TempDir::new("test");
    dir.write("users.csv", USERS);
    dir.write("products.csv", PRODUCTS);
    dir.write("user_product_interactions.csv", INTERACTIONS);
    dir
}

fn expected() -> InMemorySource {
    InMemorySource {
        users: vec![
            UserRecord {
                user_id: 1.into(),
                attributes: attrs(&[("city", "Paris"), ("age_group", "25-34")]),
            },
            UserRecord {
                user_id: 2.into(),
                attributes: attrs(&[("age_group", "55+")]),
            },
            UserRecord {
                user_id: "u-3".into(),
                attributes: attrs(&[("city", "Berlin")]),
            },
        ],
        products: vec![
            ProductRecord {
                product_id: 10.into(),
                name: Some("Blue Shirt, linen".into()),
                price: Some(19.99),
                image: Some("10.jpg".into()),
                attributes: attrs(&[("category", "shirts")]),
            },
            ProductRecord {
                product_id: 11.into(),
                name: Some("Red Dress".into()),
                price: None,
                image: Some("11.jpg".into()),
                attributes: attrs(&[]),
            },
        ],
        interactions: vec![
            InteractionRecord {
                user_id: 1.into(),
                product_id: 10.into(),
                interaction_type: Some("view".into()),
                weight: Some(1.0),
                timestamp: Some(1_504_996_246),
            },
            InteractionRecord {
                user_id: 2.into(),
                product_id: 11.into(),
                interaction_type: Some("purchase".into()),
                weight: Some(5.5),
                timestamp: Some(1_504_996_246),
            },
            InteractionRecord {
                user_id: "u-3".into(),
                product_id: 10.into(),
                interaction_type: None,
                weight: None,
                timestamp: None,
            },
        ],
    }
}

#[test]
fn reads_plain_files() {
    let dir = fixture();
    let data = InMemorySource::collect_from(CsvSource::open(&dir.0).unwrap()).unwrap();
    assert_eq!(data, expected());
}

#[test]
fn reads_gzip_files_and_explicit_paths() {
    let dir = TempDir::new("test");
    let users = write_gz(&dir, "users.csv.gz", USERS);
    let products = write_gz(&dir, "products.csv.gz", PRODUCTS);
    let interactions = write_gz(&dir, "user_product_interactions.csv.gz", INTERACTIONS);
    let data = InMemorySource::collect_from(CsvSource::open(&dir.0).unwrap()).unwrap();
    assert_eq!(data, expected());

    // Explicit paths, any names; gzip is recognised by content.
    let renamed = dir.0.join("people.data");
    std::fs::rename(&users, &renamed).unwrap();
    let source = CsvSource::from_paths(&renamed, &products, &interactions).unwrap();
    assert_eq!(source.users_path(), renamed);
    let data = InMemorySource::collect_from(source).unwrap();
    assert_eq!(data, expected());
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let dir = fixture();
    dir.write("users.csv", "\u{feff}user_id,city\r\n1,Paris\r\n");
    let users: Vec<_> = CsvSource::open(&dir.0)
        .unwrap()
        .users()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, ExternalId::Int(1));
    assert_eq!(users[0].attributes["city"], "Paris");
}

#[test]
fn sources_can_be_read_again() {
    let dir = fixture();
    let mut source = CsvSource::open(&dir.0).unwrap();
    let first: Vec<_> = source.users().unwrap().collect::<Result<_, _>>().unwrap();
    let second: Vec<_> = source.users().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(first, second);
}

#[test]
fn missing_files_are_reported() {
    let dir = TempDir::new("test");
    dir.write("users.csv", USERS);
    let err = CsvSource::open(&dir.0).unwrap_err();
    assert!(
        matches!(&err, StoreError::FileNotFound { stem, .. } if stem == "products"),
        "{err}"
    );
    assert!(err.to_string().contains("products.csv.gz"), "{err}");

    let err = CsvSource::from_paths(dir.0.join("users.csv"), "nope.csv", "nope2.csv").unwrap_err();
    assert!(matches!(&err, StoreError::Io { path, .. } if path == Path::new("nope.csv")));
}

/// Everything the named stream yields, errors as text.
fn stream(dir: &TempDir, which: &str) -> Result<Vec<Result<(), String>>, SourceError> {
    let mut source = CsvSource::open(&dir.0).unwrap();
    let map = |r: Result<(), SourceError>| r.map_err(|e| e.to_string());
    Ok(match which {
        "users" => source.users()?.map(|r| map(r.map(drop))).collect(),
        "products" => source.products()?.map(|r| map(r.map(drop))).collect(),
        _ => source.interactions()?.map(|r| map(r.map(drop))).collect(),
    })
}

/// Writes `text` as `file` in an otherwise valid folder and streams that file's table.
fn stream_with(file: &str, text: &str) -> Result<Vec<Result<(), String>>, SourceError> {
    let dir = fixture();
    dir.write(file, text);
    let which = file.split(['.', '_']).next().unwrap();
    let which = if which == "user" {
        "interactions"
    } else {
        which
    };
    stream(&dir, which)
}

/// Writes `text` as `file` in an otherwise valid folder and returns the single error of its
/// stream, checking its location and that the message names `value`.
fn row_error(file: &str, text: &str, location: &str, value: &str) -> String {
    let rows = stream_with(file, text).unwrap();
    let errors: Vec<_> = rows.into_iter().filter_map(Result::err).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let err = errors.into_iter().next().unwrap();
    assert!(err.contains(location), "expected {location:?} in {err:?}");
    assert!(err.contains(value), "expected {value:?} in {err:?}");
    err
}

/// [`row_error`] of an interactions file whose one row has `value` in `column`; the message
/// must name `shown`.
fn interaction_cell_error(column: &str, value: &str, shown: &str) -> String {
    row_error(
        "user_product_interactions.csv",
        &format!("user_id,product_id,{column}\n1,10,{value}\n"),
        &format!("user_product_interactions.csv:2 column {column}"),
        shown,
    )
}

fn header_error(file: &str, text: &str, needle: &str) -> String {
    let err = stream_with(file, text).unwrap_err().to_string();
    assert!(err.contains(&format!("{file}:1")), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    err
}

#[test]
fn missing_or_empty_ids() {
    row_error(
        "users.csv",
        "user_id,city\n1,Paris\n ,Rome\n",
        "users.csv:3 column user_id",
        "missing user_id",
    );
    row_error(
        "products.csv",
        "product_id,name\n,Shirt\n",
        "products.csv:2 column product_id",
        "missing product_id",
    );
    row_error(
        "user_product_interactions.csv",
        "user_id,product_id\n1,10\n2,\n",
        "user_product_interactions.csv:3 column product_id",
        "missing product_id",
    );
}

#[test]
fn duplicate_ids() {
    row_error(
        "users.csv",
        "user_id\n1\n2\n01\n1\n",
        "users.csv:5 column user_id",
        "duplicate user_id 1 (first on line 2)",
    );
    row_error(
        "products.csv",
        "product_id\n10\n10\n",
        "products.csv:3 column product_id",
        "duplicate product_id 10",
    );
}

#[test]
fn bad_prices() {
    for (value, reason) in [
        ("abc", "not a number"),
        ("NaN", "finite"),
        ("inf", "finite"),
        ("-infinity", "finite"),
        ("1e999", "finite"),
        ("12,5", "not a number"),
    ] {
        let text = format!("product_id,price\n10,1.5\n11,\"{value}\"\n");
        let err = row_error(
            "products.csv",
            &text,
            "products.csv:3 column price",
            &format!("{value:?}"),
        );
        assert!(err.contains(reason), "{err}");
    }
}

#[test]
fn bad_weights() {
    for (value, reason) in [
        ("heavy", "not a number"),
        ("NaN", "finite"),
        ("inf", "finite"),
        ("-1", ">= 0"),
        ("-0.5", ">= 0"),
    ] {
        let err = interaction_cell_error("weight", value, value);
        assert!(err.contains(reason), "{err}");
    }
}

#[test]
fn bad_timestamps() {
    for value in ["yesterday", "2017-02-30", "2017-09-09T25:00:00Z", "1.5e9"] {
        let err = interaction_cell_error("timestamp", value, &format!("{value:?}"));
        assert!(err.contains("ISO 8601"), "{err}");
    }
}

#[test]
fn header_problems() {
    header_error(
        "users.csv",
        "user_id,city,city\n1,a,b\n",
        "duplicate column name \"city\" (columns 2 and 3)",
    );
    header_error(
        "users.csv",
        "id,city\n1,a\n",
        "missing required column \"user_id\"",
    );
    header_error(
        "products.csv",
        "name,price\nx,1\n",
        "missing required column \"product_id\"",
    );
    header_error(
        "users.csv",
        "user_id,,city\n1,,a\n",
        "column 2 of the header has an empty name",
    );
    header_error(
        "user_product_interactions.csv",
        "user_id,product_id,timestmap\n1,10,0\n",
        "unexpected column \"timestmap\"",
    );
    header_error("users.csv", "", "missing required column \"user_id\"");
}

#[test]
fn wrong_field_count_reports_the_row_and_goes_on() {
    let dir = fixture();
    dir.write(
        "users.csv",
        "user_id,city\n1,Paris\n2,Rome,extra\n3\n4,Oslo\n",
    );
    let rows = stream(&dir, "users").unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].is_ok() && rows[3].is_ok());
    let e1 = rows[1].as_ref().unwrap_err();
    assert!(
        e1.contains("users.csv:3") && e1.contains("row has 3 fields but the header has 2"),
        "{e1}"
    );
    let e2 = rows[2].as_ref().unwrap_err();
    assert!(
        e2.contains("users.csv:4") && e2.contains("row has 1 fields"),
        "{e2}"
    );
}

#[test]
fn invalid_utf8_names_the_cell() {
    let dir = fixture();
    std::fs::write(
        dir.0.join("users.csv"),
        b"user_id,city\n1,Par\xffis\n2,Rome\n",
    )
    .unwrap();
    let rows = stream(&dir, "users").unwrap();
    assert_eq!(rows.len(), 2);
    let err = rows[0].as_ref().unwrap_err();
    assert!(
        err.contains("users.csv:2 column city") && err.contains("UTF-8"),
        "{err}"
    );
    assert!(rows[1].is_ok());
}

#[test]
fn bad_gzip() {
    // Named .gz but not gzip at all.
    let dir = fixture();
    std::fs::remove_file(dir.0.join("users.csv")).unwrap();
    dir.write("users.csv.gz", USERS);
    let err = stream(&dir, "users").unwrap_err().to_string();
    assert!(
        err.contains("users.csv.gz") && err.contains("bad gzip"),
        "{err}"
    );

    // Corrupt stream after a valid start: the error ends the stream.
    let dir = fixture();
    std::fs::remove_file(dir.0.join("user_product_interactions.csv")).unwrap();
    let mut body = String::from("user_id,product_id\n");
    for i in 0..20_000 {
        body.push_str(&format!("{i},{}\n", i * 7919 % 10_007));
    }
    let path = write_gz(&dir, "user_product_interactions.csv.gz", &body);
    let mut bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    bytes.truncate(half);
    std::fs::write(&path, &bytes).unwrap();
    let rows = stream(&dir, "interactions").unwrap();
    let last = rows.last().unwrap().as_ref().unwrap_err();
    assert!(
        last.contains("user_product_interactions.csv.gz")
            && last.contains("corrupt gzip file")
            && last.contains("truncated"),
        "{last}"
    );
    assert!(rows[..rows.len() - 1].iter().all(Result::is_ok));
    assert!(rows.len() > 10 && rows.len() < 20_000, "{}", rows.len());

    // Garbage after the gzip magic bytes.
    let dir = fixture();
    std::fs::write(dir.0.join("products.csv"), b"\x1f\x8b\x08garbage").unwrap();
    let err = stream(&dir, "products").unwrap_err().to_string();
    assert!(
        err.contains("products.csv") && err.contains("corrupt gzip"),
        "{err}"
    );
}

/// gzip bytes of `text`.
fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_trailing_data_and_truncation_name_the_file_and_the_problem() {
    let body = "user_id,city\n1,Paris\n2,Rome\n";
    for (garbage, what) in [
        (&b"x"[..], "trailing data"),
        (&b"\n\n\0\0\0\0\0\0\0\0\0\0\0\0"[..], "trailing data"),
        (&b"some text appended to the file\n"[..], "trailing data"),
    ] {
        let dir = fixture();
        std::fs::remove_file(dir.0.join("users.csv")).unwrap();
        let mut bytes = gzip(body);
        bytes.extend_from_slice(garbage);
        std::fs::write(dir.0.join("users.csv.gz"), &bytes).unwrap();
        let rows = stream(&dir, "users").unwrap();
        let last = rows.last().unwrap().as_ref().unwrap_err();
        assert!(
            last.contains("users.csv.gz") && last.contains(what) && last.contains("gzip"),
            "{garbage:?}: {last}"
        );
        assert!(!last.contains("unexpected end of file") || last.contains("truncated"));
    }

    // Truncated inside the 8-byte trailer and inside the data: "truncated", with the file.
    for cut in [3, 12] {
        let dir = fixture();
        std::fs::remove_file(dir.0.join("users.csv")).unwrap();
        let mut bytes = gzip(body);
        bytes.truncate(bytes.len() - cut);
        std::fs::write(dir.0.join("users.csv.gz"), &bytes).unwrap();
        let err = match stream(&dir, "users") {
            Ok(rows) => rows.into_iter().find_map(Result::err).expect("an error"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("users.csv.gz") && err.contains("gzip stream is truncated"),
            "cut {cut}: {err}"
        );
    }

    // Several members one after the other are one valid file (as `cat a.gz b.gz`).
    let dir = fixture();
    std::fs::remove_file(dir.0.join("users.csv")).unwrap();
    let mut bytes = gzip("user_id,city\n1,Paris\n");
    bytes.extend(gzip("2,Rome\n"));
    bytes.extend(gzip("3,Oslo\n"));
    std::fs::write(dir.0.join("users.csv.gz"), &bytes).unwrap();
    let rows = stream(&dir, "users").unwrap();
    assert_eq!(rows, vec![Ok(()), Ok(()), Ok(())]);
}

#[test]
fn unterminated_quote_names_the_line_where_it_opened_and_ends_the_file() {
    let mut text = String::from("product_id,name,price\n10,Shirt,1\n11,\"Dress,2\n");
    for i in 0..15 {
        text.push_str(&format!("{},Hat {i},3\n", 20 + i));
    }
    let dir = fixture();
    dir.write("products.csv", &text);
    let rows = stream(&dir, "products").unwrap();
    // The good row, then one error that ends the stream: the rest cannot be parsed.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].is_ok());
    let err = rows[1].as_ref().unwrap_err();
    assert!(
        err.contains("products.csv:3") && err.contains("unterminated quote"),
        "{err}"
    );
    assert!(err.contains("opened on line 3"), "{err}");
    assert!(!err.contains("fields"), "{err}");

    // A quote opened in a later field of a row that starts earlier, after blank lines.
    let dir = fixture();
    dir.write(
        "users.csv",
        "user_id,city\n\n1,Paris\n\n\n2,\"Rome\n3,Oslo\n4,Bern\n",
    );
    let rows = stream(&dir, "users").unwrap();
    let err = rows.last().unwrap().as_ref().unwrap_err();
    assert!(
        err.contains("users.csv:6") && err.contains("opened on line 6"),
        "{err}"
    );

    // In the header: the file cannot be read at all.
    let dir = fixture();
    dir.write("users.csv", "user_id,\"city\n1,Paris\n");
    let err = stream(&dir, "users").unwrap_err().to_string();
    assert!(
        err.contains("users.csv:1") && err.contains("unterminated quote"),
        "{err}"
    );

    // Closed quotes spanning lines are fine, and count their lines.
    let dir = fixture();
    dir.write(
        "users.csv",
        "user_id,city\n1,\"Paris\nFrance\"\n2,\"Ro\"\"me\"\n3\n",
    );
    let rows = stream(&dir, "users").unwrap();
    assert!(rows[0].is_ok() && rows[1].is_ok(), "{rows:?}");
    let err = rows[2].as_ref().unwrap_err();
    assert!(
        err.contains("users.csv:5") && err.contains("row has 1 fields"),
        "{err}"
    );
}

#[test]
fn line_numbers_count_blank_lines_and_crlf() {
    // A bad row on line 7, after two blank lines.
    row_error(
        "products.csv",
        "product_id,price\n10,1\n\n11,2\n\n12,3\n13,abc\n14,4\n",
        "products.csv:7 column price",
        "\"abc\"",
    );
    // Blank lines before the header and CRLF line ends.
    row_error(
        "products.csv",
        "\r\n\r\nproduct_id,price\r\n10,1\r\n\r\n11,x\r\n12,2\r\n",
        "products.csv:6 column price",
        "\"x\"",
    );
    // Wrong field counts too.
    let dir = fixture();
    dir.write("users.csv", "user_id,city\n\n\n1,Paris,extra\n");
    let rows = stream(&dir, "users").unwrap();
    let err = rows[0].as_ref().unwrap_err();
    assert!(
        err.contains("users.csv:4") && err.contains("row has 3 fields"),
        "{err}"
    );
}

#[test]
fn negative_prices_are_refused() {
    let err = row_error(
        "products.csv",
        "product_id,name,price\n10,Shirt,1.5\n11,Dress,-3\n12,Hat,0\n",
        "products.csv:3 column price",
        "\"-3\"",
    );
    assert!(err.contains(">= 0"), "{err}");
}

#[test]
fn plain_and_gzip_file_of_the_same_table_is_an_error() {
    let dir = fixture();
    write_gz(&dir, "users.csv.gz", USERS);
    let err = CsvSource::open(&dir.0).unwrap_err();
    assert!(matches!(err, StoreError::AmbiguousFile { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&dir.0.join("users.csv").display().to_string())
            && text.contains(&dir.0.join("users.csv.gz").display().to_string()),
        "{text}"
    );
}

#[test]
fn pairs_plain_and_gzip() {
    let dir = TempDir::new("test");
    let text = "user_id,product_id\n1,823721\n2,P-9\n";
    for path in [
        dir.write("pairs.csv", text),
        write_gz(&dir, "pairs.csv.gz", text),
    ] {
        let pairs = read_pairs(&path).unwrap();
        assert_eq!(
            pairs,
            vec![
                (ExternalId::Int(1), ExternalId::Int(823_721)),
                (ExternalId::Int(2), ExternalId::Str("P-9".into())),
            ]
        );
    }
    let path = dir.write("bad.csv", "user_id,product_id\n1,2\n3,\n");
    let err = read_pairs(&path).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(
        err.to_string().contains("bad.csv:3 column product_id"),
        "{err}"
    );
    let path = dir.write("bad2.csv", "user,product_id\n1,2\n");
    assert!(read_pairs(&path)
        .unwrap_err()
        .to_string()
        .contains("missing required column"));
    let err = read_pairs(dir.0.join("absent.csv")).unwrap_err();
    assert!(err.to_string().contains("absent.csv"), "{err}");
}

#[test]
fn write_then_read_round_trips() {
    let dir = TempDir::new("test");
    let mut data = expected();
    data.products[0].price = Some(0.1 + 0.2); // shortest round-trip formatting
    data.interactions[0].weight = Some(1.0 / 3.0);
    data.interactions[1].timestamp = Some(-1);
    write_csv_dir(&mut data, &dir.0).unwrap();
    let back = InMemorySource::collect_from(CsvSource::open(&dir.0).unwrap()).unwrap();
    assert_eq!(back, data);
}

#[test]
fn write_refuses_attribute_names_that_clash() {
    let dir = TempDir::new("test");
    let mut data = expected();
    data.products[0]
        .attributes
        .insert("price".into(), "cheap".into());
    let err = write_csv_dir(&mut data, &dir.0).unwrap_err();
    assert!(
        matches!(&err, StoreError::BadAttributeName { name, .. } if name == "price"),
        "{err}"
    );
}
