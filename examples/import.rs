//! Imports the recsys CSV files (plain or .gz) into MongoDB, validated and idempotent, and
//! optionally loads them back into a training dataset.
//!
//! ```text
//! eval "$(scripts/db.sh start)"
//! cargo run --release -p recsys-examples --example import -- ../shared/data/completejourney-seed --load
//! cargo run --release -p recsys-examples --example import -- DIR --skip-bad-rows rejects.csv
//! cargo run --release -p recsys-examples --example import -- --demo   # the demo shop
//! cargo run --release -p recsys-examples --example import -- --load-only  # read back only
//! ```
//!
//! Default: any invalid row (missing id, bad number or timestamp, wrong column count, unknown
//! user/product, …) fails the import with file, line, column and value, and nothing is
//! written. `--skip-bad-rows FILE` imports the valid rows and writes the others to FILE.
//! Running the same import twice changes nothing; an interrupted import can simply be rerun
//! (what is already there is read once, only missing and changed rows are written); a row
//! changed in the files is updated. No database call waits longer than `--op-timeout`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recsys::features::{ColumnSpec, Dataset, FeatureSpec};
use recsys::store::mongo::{
    import_csv, BadRows, ConnectOptions, ImportOptions, ImportPhase, ImportProgress, MongoStore,
};
use recsys::store::{CountingSource, CsvSource, StoreError};

#[derive(Parser, Debug)]
#[command(about = "Validated, idempotent import of the recsys CSV files into MongoDB")]
struct Args {
    /// Folder with users.csv, products.csv and user_product_interactions.csv (each may be
    /// .csv.gz). With --demo: where the demo shop's CSV files are written first
    /// [default: target/demo-data].
    #[arg(required_unless_present_any = ["demo", "load_only"])]
    dir: Option<PathBuf>,
    /// Generate the seeded demo shop (the quickstart's data) as CSV files, then import them.
    #[arg(long)]
    demo: bool,
    /// MongoDB URI (default: $MONGODB_URI).
    #[arg(long)]
    uri: Option<String>,
    /// Database name (default: the URI's, else "recsys").
    #[arg(long)]
    database: Option<String>,
    /// Import the valid rows and write the invalid ones to this CSV file.
    #[arg(long, value_name = "REJECTS_CSV")]
    skip_bad_rows: Option<PathBuf>,
    /// Documents per insert command (a command also ends at 8 MiB); one batch is written
    /// while the next is read.
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// Seconds to wait for the server to answer when connecting.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Seconds to wait for any one database operation (a batch, one cursor batch) before
    /// failing with an error naming it.
    #[arg(long, default_value_t = 120)]
    op_timeout: u64,
    /// Drop the database first (a clean benchmark run).
    #[arg(long)]
    drop: bool,
    /// Afterwards, stream the collections back into a training dataset and report its size.
    #[arg(long)]
    load: bool,
    /// Only stream the collections of the database back into a training dataset (no CSV
    /// is read, nothing is written): the load's speed on its own.
    #[arg(long, conflicts_with_all = ["dir", "demo", "drop", "skip_bad_rows"])]
    load_only: bool,
    /// With --load: also time the in-database `$group` popularity count (fast on MongoDB,
    /// slow on FerretDB 1.x, which groups in its own process).
    #[arg(long)]
    db_popularity: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        if let Some(StoreError::InvalidInput { errors, total }) = e.downcast_ref::<StoreError>() {
            eprintln!("invalid rows ({total} in all; nothing was written):");
            for error in errors {
                eprintln!("  {error}");
            }
            if *total > errors.len() {
                eprintln!("  … and {} more", total - errors.len());
            }
            eprintln!("(--skip-bad-rows REJECTS_CSV imports the valid rows and lists the others)");
        }
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let uri = match args
        .uri
        .clone()
        .or_else(|| std::env::var("MONGODB_URI").ok())
    {
        Some(uri) if !uri.trim().is_empty() => uri.trim().to_string(),
        _ => return Err(StoreError::MissingUri.into()),
    };
    let options = ConnectOptions {
        database: args.database.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        operation_timeout: Duration::from_secs(args.op_timeout.max(1)),
    };
    let store = MongoStore::connect_with(&uri, &options)?;
    eprintln!(
        "connected to {} database {}",
        store.uri(),
        store.database_name()
    );
    if args.drop {
        store.drop_database()?;
    }
    if !args.load_only {
        import(&store, &args)?;
    }
    if args.load || args.load_only {
        let start = Instant::now();
        // Popularity is counted while the interactions stream through.
        let mut mongo = CountingSource::new(store.source());
        let user_spec = FeatureSpec::identity_only()
            .with_column(ColumnSpec::categorical("age_group"))
            .with_column(ColumnSpec::categorical("income"));
        let item_spec = FeatureSpec::identity_only()
            .with_column(ColumnSpec::categorical("department"))
            .with_column(ColumnSpec::categorical("category"))
            .with_column(ColumnSpec::categorical("brand"));
        let dataset = Dataset::from_source(&mut mongo, user_spec, item_spec)?;
        let seconds = start.elapsed().as_secs_f64();
        let interactions = dataset.interaction_log().len();
        let rows = dataset.n_users() + dataset.n_items() + interactions;
        println!(
            "load: {} users, {} items, {interactions} interactions into a dataset in {seconds:.2}s \
             ({:.0} rows/s)",
            dataset.n_users(),
            dataset.n_items(),
            rows as f64 / seconds.max(1e-9)
        );
        let popular = mongo.popularity();
        let Some((top, count)) = popular.first() else {
            bail!("no interactions in the database after the import");
        };
        println!(
            "popularity (counted while loading): {} products; top {top} with {count}",
            popular.len()
        );
        if args.db_popularity {
            let start = Instant::now();
            let in_db = store.popularity()?;
            println!(
                "popularity ($group in the database): {} products in {:.2}s, same counts: {}",
                in_db.len(),
                start.elapsed().as_secs_f64(),
                in_db == popular
            );
        }
    }
    if let Some(kib) = peak_memory_kib() {
        println!("peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
}

fn show(bar: &ProgressBar, p: &ImportProgress) {
    let phase = match p.phase {
        ImportPhase::Validate => "validating",
        ImportPhase::ReadExisting => "reading existing",
        ImportPhase::Write => "writing",
    };
    match p.total {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:40} [{bar:30.cyan/blue}] {pos}/{len} {per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
            }
        }
        None => {
            if bar.length().is_some() {
                bar.unset_length();
            }
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:40} {pos} rows {per_sec}")
                    .expect("valid template"),
            );
        }
    }
    bar.set_message(format!("{phase} {}", p.collection));
    bar.set_position(p.rows);
}

/// Peak resident memory of this process (Linux), in KiB.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads the CSV folder of `args` (or the generated demo shop) and imports it into `store`,
/// printing a table of what each collection got.
fn import(store: &MongoStore, args: &Args) -> anyhow::Result<()> {
    let dir = match (&args.dir, args.demo) {
        (Some(dir), false) => dir.clone(),
        (dir, true) => {
            let dir = dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/demo-data"));
            let shop = recsys::demo::generate(&recsys::demo::DemoConfig::default());
            recsys::demo::write_csv(&shop, &dir)
                .with_context(|| format!("writing the demo shop to {}", dir.display()))?;
            eprintln!("wrote the demo shop's CSV files to {}", dir.display());
            dir
        }
        (None, false) => unreachable!("clap requires DIR unless --demo"),
    };
    let source = CsvSource::open(&dir)
        .with_context(|| format!("reading the CSV folder {}", dir.display()))?;

    let import_options = ImportOptions {
        batch_size: args.batch_size,
        bad_rows: match &args.skip_bad_rows {
            Some(path) => BadRows::Skip {
                rejects: path.clone(),
            },
            None => BadRows::Reject,
        },
    };
    let bar = progress_bar(args.quiet);
    let summary = import_csv(store, &source, &import_options, &mut |p| show(&bar, p))?;
    bar.finish_and_clear();

    println!(
        "{:<27} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "collection", "read", "inserted", "updated", "unchanged", "rejected", "rows/s"
    );
    for (name, c) in summary.collections() {
        println!(
            "{name:<27} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11.0}",
            c.read,
            c.inserted,
            c.updated,
            c.unchanged,
            c.rejected,
            c.rows_per_second()
        );
    }
    let read: u64 = summary.collections().iter().map(|(_, c)| c.read).sum();
    println!(
        "import: {read} rows in {:.2}s ({:.0} rows/s; validation {:.2}s)",
        summary.total_seconds,
        read as f64 / summary.total_seconds.max(1e-9),
        summary.validate_seconds
    );
    if let Some(rejects) = &summary.rejects {
        let rejected: u64 = summary.collections().iter().map(|(_, c)| c.rejected).sum();
        println!("rejected rows: {rejected}, listed in {}", rejects.display());
    }

    Ok(())
}
