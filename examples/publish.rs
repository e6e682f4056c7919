//! Publish a bundle file through the database, so every `serve --from-store` replica
//! switches to it: a bundle trained elsewhere, or an older one to roll back to.
//!
//! ```text
//! cargo run --release -p recsys-examples --example publish -- \
//!     --uri "$MONGODB_URI" --database shop target/shop.rsb
//! cargo run --release -p recsys-examples --example publish -- --uri "$MONGODB_URI" --current
//! ```
//!
//! The bundle is loaded and checked first (header, checksum, every part), so a damaged file
//! is refused here rather than by every replica.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use recsys::recommend::Bundle;
use recsys::store::mongo::redact_uri;

#[derive(Parser, Debug)]
#[command(about = "Publish a bundle as the current model of a database")]
struct Args {
    /// The bundle file to publish.
    #[arg(required_unless_present = "current")]
    bundle: Option<PathBuf>,
    /// MongoDB URI.
    #[arg(long, env = "MONGODB_URI")]
    uri: String,
    /// Database name (default: the URI's, else "recsys").
    #[arg(long)]
    database: Option<String>,
    /// Only print the current published model.
    #[arg(long, conflicts_with = "bundle")]
    current: bool,
}

fn main() -> ExitCode {
    recsys_examples::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    let redacted = redact_uri(&args.uri);
    let store = recsys_examples::connect_store(&args.uri, args.database.as_deref())?;
    if let Some(path) = &args.bundle {
        let started = Instant::now();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let bundle = Bundle::from_bytes(&bytes, path)
            .with_context(|| format!("checking {}", path.display()))?;
        let checked = started.elapsed();
        let started = Instant::now();
        let published = store
            .publish_model(&bundle.metadata().model_id, &bytes)
            .with_context(|| format!("publishing to {redacted}"))?;
        println!(
            "published model {} ({:.1} MiB; checked in {:.2}s, uploaded in {:.2}s) as the current model of {}",
            published.model_id,
            published.length as f64 / (1024.0 * 1024.0),
            checked.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            store.database_name()
        );
    } else {
        match store.current_model()? {
            Some(p) => println!(
                "current model of {}: {} ({} bytes, artifact {}, published at {} ms)",
                store.database_name(),
                p.model_id,
                p.length,
                p.artifact,
                p.published_at_millis
            ),
            None => println!("nothing is published in {}", store.database_name()),
        }
    }
    Ok(())
}
