//! `scripts/db.sh redact` and `redact_uri` hide the same part of a URI: everything from the
//! first `:` after the scheme to the last `@`, whatever the password contains.
#![cfg(feature = "mongodb")]

use std::path::Path;
use std::process::Command;

use recsys_store::mongo::redact_uri;

const CASES: [(&str, &str); 9] = [
    ("mongodb://bob:pa/ss@h:1/db", "mongodb://bob:***@h:1/db"),
    ("mongodb://bob:pa?ss@h/db", "mongodb://bob:***@h/db"),
    ("mongodb://bob:p@ss@h/db", "mongodb://bob:***@h/db"),
    (
        "mongodb://bob:a/b?c@d:e@h/db?x=1",
        "mongodb://bob:***@h/db?x=1",
    ),
    (
        "mongodb://bob:s3cr:t@db:27017/x",
        "mongodb://bob:***@db:27017/x",
    ),
    ("mongodb://u:p%40x@h1,h2/", "mongodb://u:***@h1,h2/"),
    ("mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/"),
    ("mongodb://u@h/db", "mongodb://u@h/db"),
    ("mongodb://h/db?a=b@c", "mongodb://h/db?a=b@c"),
];

#[test]
fn rust_redacts_every_password() {
    for (uri, redacted) in CASES {
        assert_eq!(redact_uri(uri), redacted, "{uri}");
    }
}

#[test]
fn db_sh_redacts_like_rust() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/db.sh");
    for (uri, redacted) in CASES {
        let out = Command::new("bash")
            .arg(&script)
            .args(["redact", uri])
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{uri}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            redacted,
            "{uri}"
        );
    }
}
