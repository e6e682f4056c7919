//! Shared helpers for the example binaries: the epoch progress bar, product look-up and
//! metric formatting. The real work lives in `recsys::experiment`.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recsys::{EpochReport, ExternalId, Metrics, ProductRecord};

/// A progress bar over training epochs on stderr (epoch, loss estimate, elapsed time);
/// hidden when `hidden` is set or stderr is not a terminal.
pub fn epoch_progress(epochs: usize, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "training [{bar:30.cyan/blue}] epoch {pos}/{len}  {msg}  elapsed {elapsed_precise}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Advances `bar` after an epoch and shows its loss estimate.
pub fn on_epoch(bar: &ProgressBar, report: &EpochReport) {
    bar.set_message(format!(
        "loss {:.4} ({:.2}s/epoch)",
        report.loss,
        report.elapsed.as_secs_f64()
    ));
    bar.inc(1);
}

/// Product records by id, for display.
pub struct Catalogue<'a> {
    by_id: HashMap<&'a ExternalId, &'a ProductRecord>,
}

impl<'a> Catalogue<'a> {
    /// Indexes `products` by id.
    pub fn new(products: &'a [ProductRecord]) -> Self {
        Catalogue {
            by_id: products.iter().map(|p| (&p.product_id, p)).collect(),
        }
    }

    /// The product with this id.
    pub fn get(&self, id: &ExternalId) -> Option<&'a ProductRecord> {
        self.by_id.get(id).copied()
    }

    /// `name (category, price)` or the bare id when the product is unknown.
    pub fn describe(&self, id: &ExternalId) -> String {
        let Some(p) = self.get(id) else {
            return format!("product {id}");
        };
        let name = p.name.clone().unwrap_or_else(|| format!("product {id}"));
        let mut details: Vec<String> = ["category", "price_range"]
            .iter()
            .filter_map(|c| p.attributes.get(*c).cloned())
            .collect();
        if let Some(price) = p.price {
            details.push(format!("{price:.2}"));
        }
        format!("{name:<34} {}", details.join(", "))
    }

    /// The value of attribute `column` of the product with this id.
    pub fn attribute(&self, id: &ExternalId, column: &str) -> Option<&'a str> {
        self.get(id)?.attributes.get(column).map(String::as_str)
    }
}

/// One line: `P@k, R@k, AUC, MRR, NDCG@k`.
pub fn metrics_line(m: &Metrics) -> String {
    format!(
        "P@{k} {:.4}  R@{k} {:.4}  AUC {:.4}  MRR {:.4}  NDCG@{k} {:.4}  ({} users)",
        m.precision_at_k,
        m.recall_at_k,
        m.auc,
        m.reciprocal_rank,
        m.ndcg_at_k,
        m.n_users,
        k = m.k
    )
}
