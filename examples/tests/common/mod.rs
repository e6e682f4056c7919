//! What the integration tests of this package share.

use std::path::{Path, PathBuf};

/// The example binary `name` of this build: `target/<profile>/examples/<name>`, next to the
/// `deps` folder holding this test. Fails when it is missing or older than a source file
/// it was built from (as its dep-info file lists them), which happens when only this test
/// target was built (`cargo test --test X` does not build the examples).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let rebuild = "build the examples first: `cargo test -p recsys-examples` builds them, \
                   or `cargo build -p recsys-examples --examples` \
                   with the same profile";
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "example binary {} is missing ({e}): {rebuild}",
                binary.display()
            )
        });
    let dep_info = profile_dir.join("examples").join(format!("{name}.d"));
    if let Ok(text) = std::fs::read_to_string(&dep_info) {
        for source in dep_info_sources(&text) {
            let changed = std::fs::metadata(&source).and_then(|m| m.modified());
            if let Ok(changed) = changed {
                assert!(
                    changed <= built,
                    "example binary {} is older than {}: {rebuild}",
                    binary.display(),
                    source.display()
                );
            }
        }
    }
    binary
}

/// The source files a Makefile-style dep-info file (`target: a b c`, spaces in paths
/// escaped with `\`) lists for its first target.
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let Some(line) = text.lines().next() else {
        return Vec::new();
    };
    let Some((_, deps)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    sources.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}
