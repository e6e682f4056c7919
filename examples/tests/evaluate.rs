//! The `evaluate` example's content-model flags on the demo shop written as CSV files:
//! `--cold-start-content auto` chooses its settings on a validation split and ranks the
//! held-out products with the content model; `--content-weight` adds the prior and says so
//! in the JSON; malformed values are refused before anything is loaded.
//!
//! An integration test of this package runs the example binary of the same build
//! (`cargo test -p recsys-examples` builds the examples first).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::example_binary;
use recsys::demo::{generate, DemoConfig};
use serde_json::Value;

/// The demo shop as a CSV folder (written once per test).
fn demo_csv(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "recsys-evaluate-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut data = generate(&DemoConfig {
        users: 200,
        products: 120,
        interactions: 4_000,
        seed: 5,
    });
    recsys::store::write_csv_dir(&mut data, &dir).expect("CSV files");
    dir
}

fn evaluate(data: &PathBuf, args: &[&str]) -> Output {
    Command::new(example_binary("evaluate"))
        .arg("--data")
        .arg(data)
        .args([
            "--test-fraction",
            "0.2",
            "--item-features",
            "category,brand,price",
            "--components",
            "8",
            "--epochs",
            "3",
            "--threads",
            "1",
            "--json",
        ])
        .args(args)
        .output()
        .expect("running evaluate")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "evaluate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn cold_start_content_chooses_its_settings_on_validation() {
    let data = demo_csv("cold");
    let out = json(&evaluate(
        &data,
        &["--cold-start-items", "0.2", "--cold-start-content", "auto"],
    ));
    let content = &out["cold_start_content"];
    assert_eq!(content["chosen_by"], "validation");
    let trials = content["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 20);
    // The chosen settings are the trial with the best validation AUC.
    let best = trials
        .iter()
        .map(|t| t["auc"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(content["validation_auc"].as_f64(), Some(best));
    // The demo's shoppers follow categories: the held-out products are ranked well above
    // chance from their metadata.
    let auc = out["auc"].as_f64().unwrap();
    assert!(auc > 0.6, "cold AUC {auc}");

    // Given settings are used as given.
    let given = json(&evaluate(
        &data,
        &["--cold-start-items", "0.2", "--cold-start-content", "3,1"],
    ));
    assert_eq!(given["cold_start_content"]["chosen_by"], "flag");
    assert_eq!(given["cold_start_content"]["smoothing"].as_f64(), Some(3.0));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_content_weight_changes_the_scores_and_bad_values_are_refused() {
    let data = demo_csv("prior");
    let plain = json(&evaluate(&data, &[]));
    assert!(plain["content_prior"].is_null());
    let prior = json(&evaluate(&data, &["--content-weight", "1"]));
    assert_eq!(prior["content_prior"]["weight"].as_f64(), Some(1.0));
    assert_ne!(plain["auc"], prior["auc"], "the prior changes the ranking");
    let auto = json(&evaluate(&data, &["--content-weight", "auto"]));
    assert_eq!(auto["content_prior"]["chosen_by"], "validation");
    assert_eq!(
        auto["content_prior"]["trials"].as_array().map(Vec::len),
        Some(10)
    );

    for (args, message) in [
        (&["--content-weight=-1"][..], "--content-weight -1"),
        (&["--cold-start-content", "0,1"][..], "smoothing"),
        (
            &["--cold-start-content", "auto"][..],
            "needs an item cold-start run",
        ),
    ] {
        let out = evaluate(&data, args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&data);
}
