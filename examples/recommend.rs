//! Load a bundle written by the `train` example and print recommendations with reasons.
//!
//! ```text
//! cargo run --release -p recsys-examples --example recommend -- --bundle target/cj.rsb --user 1
//! cargo run --release -p recsys-examples --example recommend -- --bundle target/cj.rsb \
//!     --user 1 --product 1082185 -n 5          # the seed's "similar products" page
//! cargo run --release -p recsys-examples --example recommend -- --bundle target/cj.rsb \
//!     --user new-42 --attr age_group=25-34 --attr income=50-74K   # cold start
//! cargo run --release -p recsys-examples --example recommend -- --bundle target/cj.rsb --info
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use recsys::{Attributes, Bundle, ExternalId, Request};
use recsys_examples::split_list;

#[derive(Parser, Debug)]
#[command(about = "Recommendations from a saved bundle, with the reason for each item")]
struct Args {
    /// The bundle file.
    #[arg(long, value_name = "FILE", default_value = "target/recsys/bundle.rsb")]
    bundle: PathBuf,
    /// The user (known to the model, or new with --attr).
    #[arg(long)]
    user: Option<String>,
    /// The product being viewed (boosts similar products, is never recommended).
    #[arg(long)]
    product: Option<String>,
    /// How many items.
    #[arg(short, long, default_value_t = 10)]
    n: usize,
    /// Comma-separated product ids never to recommend.
    #[arg(long, value_name = "IDS", default_value = "")]
    exclude: String,
    /// Also recommend what the user already has.
    #[arg(long)]
    include_seen: bool,
    /// A user attribute `column=value` for a user unknown to the model (repeatable).
    #[arg(long = "attr", value_name = "COLUMN=VALUE")]
    attributes: Vec<String>,
    /// Weight of the similarity to --product.
    #[arg(long, default_value_t = recsys::recommend::DEFAULT_BOOST)]
    boost: f32,
    /// Print the bundle's metadata and exit.
    #[arg(long)]
    info: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    recsys_examples::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    // Written through a handle so a closed pipe (`| head`) is an error we can see, not a
    // panic inside println!.
    let mut out = std::io::stdout().lock();
    if args.info {
        let metadata = Bundle::read_metadata(&args.bundle)?;
        writeln!(out, "{}", serde_json::to_string_pretty(&metadata)?)?;
        return Ok(());
    }
    let started = Instant::now();
    let bundle = Bundle::load(&args.bundle).with_context(|| {
        format!(
            "loading {} (write one with: cargo run --release -p recsys-examples --example train)",
            args.bundle.display()
        )
    })?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let user = args.user.as_deref().map(ExternalId::parse);
    let product = args.product.as_deref().map(ExternalId::parse);
    let exclude: Vec<ExternalId> = split_list(&args.exclude)
        .iter()
        .map(|s| ExternalId::parse(s))
        .collect();
    let mut attributes = Attributes::new();
    for pair in &args.attributes {
        let Some((column, value)) = pair.split_once('=') else {
            bail!("--attr {pair:?}: expected COLUMN=VALUE");
        };
        attributes.insert(column.trim().to_string(), value.trim().to_string());
    }

    let mut request = Request::new(args.n).boost(args.boost).exclude(&exclude);
    if let Some(u) = &user {
        request = request.user(u);
    }
    if let Some(p) = &product {
        request = request.product(p);
    }
    if !attributes.is_empty() {
        request = request.user_attributes(&attributes);
    }
    if args.include_seen {
        request = request.include_seen();
    }
    let started = Instant::now();
    let answer = bundle.recommender().recommend(&request)?;
    let recommend_ms = started.elapsed().as_secs_f64() * 1e3;

    if args.json {
        let items: Vec<serde_json::Value> = answer
            .items
            .iter()
            .map(|r| {
                let info = bundle.products().get(r.item).cloned().unwrap_or_default();
                serde_json::json!({
                    "product_id": r.product_id,
                    "name": info.name,
                    "price": info.price,
                    "image": info.image,
                    "score": r.score,
                    "reason": r.reason.to_string(),
                })
            })
            .collect();
        let answer_json = serde_json::json!({
            "strategy": answer.strategy,
            "items": items,
            "notes": answer.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "model_id": bundle.metadata().model_id,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&answer_json)?)?;
        return Ok(());
    }

    writeln!(
        out,
        "bundle {} (model {}, {} products) loaded in {load_ms:.0} ms; answered in {recommend_ms:.2} ms",
        args.bundle.display(),
        bundle.metadata().model_id,
        bundle.items().len()
    )?;
    if let Some(p) = &product {
        if let Some(info) = bundle.product(p) {
            writeln!(
                out,
                "viewing {p}: {}",
                info.name.as_deref().unwrap_or("(no name)")
            )?;
        }
    }
    writeln!(out, "strategy: {:?}", answer.strategy)?;
    for note in &answer.notes {
        writeln!(out, "note: {note}")?;
    }
    for (rank, r) in answer.items.iter().enumerate() {
        let info = bundle.products().get(r.item).cloned().unwrap_or_default();
        let price = info
            .price
            .map_or_else(|| "-".to_string(), |p| format!("{p:.2}"));
        writeln!(
            out,
            "{:>3}. {:<10} {:<44} {:>8}  score {:>8.3}  {}",
            rank + 1,
            r.product_id.to_string(),
            truncate(info.name.as_deref().unwrap_or("(no name)"), 44),
            price,
            r.score,
            r.reason
        )?;
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}
