//! Self-contained HTML reports with SVG plots (no script, no network, no plotting library):
//! line charts and histograms drawn from data, for `train --report DIR`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One epoch (sweep) of training: its number, loss estimate and held-out metrics.
#[derive(Debug, Clone, Copy)]
pub struct EpochPoint {
    /// Epochs trained so far.
    pub epoch: usize,
    /// Training loss estimate, if known.
    pub loss: Option<f64>,
    /// Held-out metrics after this epoch, if evaluated.
    pub held_out: Option<recsys::Metrics>,
}

/// One named series of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const W: f64 = 640.0;
const H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The frame of a chart: title, axes with ticks and labels; returns the SVG text so far and
/// the functions mapping data to pixels.
fn frame(
    title: &str,
    x_label: &str,
    y_label: &str,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> (String, impl Fn(f64) -> f64, impl Fn(f64) -> f64) {
    let sx = move |x: f64| LEFT + (x - x0) / (x1 - x0).max(f64::MIN_POSITIVE) * (W - LEFT - RIGHT);
    let sy =
        move |y: f64| H - BOTTOM - (y - y0) / (y1 - y0).max(f64::MIN_POSITIVE) * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" font-family="sans-serif" font-size="12">"#,
        t = escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    for t in ticks(y0, y1) {
        let y = sy(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for t in ticks(x0, x1) {
        let x = sx(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - BOTTOM + 18.0,
            label(t)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{}" y1="{b}" y2="{b}" stroke="#333"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" stroke="#333"/>"##,
        W - RIGHT,
        b = H - BOTTOM
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0,
        escape(x_label),
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label)
    );
    (s, sx, sy)
}

fn legend(s: &mut String, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 8.0 + 16.0 * i as f64;
        let x = W - RIGHT - 180.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{:.1}" width="12" height="4" fill="{c}"/><text x="{}" y="{:.1}">{}</text>"#,
            y - 4.0,
            x + 18.0,
            y + 1.0,
            escape(name),
            c = COLOURS[i % COLOURS.len()]
        );
    }
}

/// Bounds of all points (y from 0 unless negative values occur), padded when flat.
fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0f64, f64::MIN);
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    ((x0, x1), (y0, y1 * 1.05))
}

/// A line chart of `series` (non-finite points are skipped).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (xr, yr) = bounds(series);
    let (mut s, sx, sy) = frame(title, x_label, y_label, xr, yr);
    for (i, se) in series.iter().enumerate() {
        let path: Vec<String> = se
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let c = COLOURS[i % COLOURS.len()];
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        if path.len() <= 60 {
            for p in &path {
                let (x, y) = p.split_once(',').expect("x,y");
                let _ = write!(s, r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{c}"/>"#);
            }
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut s, &names);
    s.push_str("</svg>");
    s
}

/// Overlaid histograms of `samples` (one per name), `bins` equal bins over their common
/// range, each normalised to a share of its own samples.
pub fn histogram(title: &str, x_label: &str, samples: &[(&str, &[f32])], bins: usize) -> String {
    let values = || {
        samples
            .iter()
            .flat_map(|(_, v)| v.iter())
            .filter(|v| v.is_finite())
    };
    let lo = values().fold(f32::MAX, |a, &b| a.min(b)) as f64;
    let hi = values().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let (lo, hi) = if lo <= hi {
        (lo, hi.max(lo + 1e-9))
    } else {
        (0.0, 1.0)
    };
    let width = (hi - lo) / bins as f64;
    let series: Vec<Series> = samples
        .iter()
        .map(|(name, v)| {
            let mut counts = vec![0usize; bins];
            let finite: Vec<f64> = v
                .iter()
                .filter(|x| x.is_finite())
                .map(|&x| x as f64)
                .collect();
            for x in &finite {
                counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
            }
            let n = finite.len().max(1) as f64;
            let points = counts
                .iter()
                .enumerate()
                .map(|(b, &c)| (lo + (b as f64 + 0.5) * width, c as f64 / n))
                .collect();
            Series::new(format!("{name} ({} scores)", finite.len()), points)
        })
        .collect();
    line_chart(title, x_label, "share of scores", &series)
}

/// `(k, value)` points.
pub type Curve = Vec<(f64, f64)>;

/// Mean precision and recall at every `k` in `1..=max_k` from LightFM-style ranks (`ranks`
/// aligned with `test.iter()`; rank 0 is the top), over users with test items.
pub fn precision_recall_curve(
    test: &recsys::Interactions,
    ranks: &[f32],
    max_k: usize,
) -> (Curve, Curve) {
    let mut per_user: Vec<Vec<f32>> = vec![Vec::new(); test.n_users()];
    for (entry, &r) in test.iter().zip(ranks) {
        per_user[entry.user].push(r);
    }
    let users: Vec<&Vec<f32>> = per_user.iter().filter(|r| !r.is_empty()).collect();
    let n = users.len().max(1) as f64;
    let (mut precision, mut recall) = (Vec::new(), Vec::new());
    for k in 1..=max_k {
        let (mut p, mut r) = (0.0, 0.0);
        for ranks in &users {
            let hits = ranks.iter().filter(|&&x| x < k as f32).count() as f64;
            p += hits / k as f64;
            r += hits / ranks.len() as f64;
        }
        precision.push((k as f64, p / n));
        recall.push((k as f64, r / n));
    }
    (precision, recall)
}

/// An HTML document under construction, with its figures also kept as SVG files.
#[derive(Debug, Default)]
pub struct Html {
    body: String,
    figures: Vec<(String, String)>,
}

impl Html {
    /// A heading.
    pub fn heading(&mut self, text: &str) {
        let _ = write!(self.body, "<h2>{}</h2>", escape(text));
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) {
        let _ = write!(self.body, "<p>{}</p>", escape(text));
    }

    /// An SVG figure, also written as `<name>.svg` by [`Html::write`].
    pub fn figure(&mut self, name: &str, svg: &str) {
        let _ = write!(self.body, "<figure>{svg}</figure>");
        self.figures.push((name.to_string(), svg.to_string()));
    }

    /// Writes `dir/report.html` and each figure as `dir/<name>.svg`; returns the page's
    /// path.
    pub fn write(&self, dir: &Path, title: &str) -> anyhow::Result<PathBuf> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, svg) in &self.figures {
            let path = dir.join(format!("{name}.svg"));
            std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        }
        let path = dir.join("report.html");
        std::fs::write(&path, self.finish(title))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A two-column table of facts.
    pub fn facts(&mut self, rows: &[(&str, String)]) {
        self.body.push_str("<table>");
        for (k, v) in rows {
            let _ = write!(
                self.body,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(k),
                escape(v)
            );
        }
        self.body.push_str("</table>");
    }

    /// The whole document.
    pub fn finish(&self, title: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>body{{font-family:sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#222}}\
             figure{{margin:1em 0}}svg{{width:100%;height:auto;border:1px solid #eee}}\
             th{{text-align:left;padding-right:1em;font-weight:normal;color:#555}}</style></head>\
             <body><h1>{t}</h1>{}</body></html>\n",
            self.body,
            t = escape(title)
        )
    }
}

/// Writes `dir/report.html` for `model` (described by `description`) evaluated on
/// `experiment`'s test set — loss and held-out precision/AUC per epoch from `curve`,
/// precision and recall at k = 1…50 against popularity (among the cold items only in an
/// item cold-start experiment), the popularity long tail and catalogue coverage, scores of
/// products without training interactions against the others — and returns its path.
#[allow(clippy::too_many_arguments)]
pub fn training_report(
    dir: &Path,
    description: &str,
    experiment: &recsys::Experiment,
    model: &dyn recsys::Scorer,
    curve: &[EpochPoint],
    k: usize,
    threads: usize,
) -> anyhow::Result<PathBuf> {
    use recsys::core::rank_test_items;
    let train = experiment.train();
    let mut html = Html::default();
    html.facts(&[
        ("model", description.to_string()),
        (
            "data",
            experiment.dataset().n_users().to_string()
                + " users, "
                + &experiment.dataset().n_items().to_string()
                + " products",
        ),
        ("training interactions", train.len().to_string()),
        (
            "held-out interactions",
            experiment.test().map_or(0, |t| t.len()).to_string(),
        ),
    ]);

    html.heading("Training");
    let loss: Vec<(f64, f64)> = curve
        .iter()
        .filter_map(|p| p.loss.map(|l| (p.epoch as f64, l)))
        .collect();
    if loss.is_empty() {
        html.paragraph("No training loss was recorded for this model.");
    } else {
        html.figure(
            "loss",
            &line_chart(
                "Training loss per epoch",
                "epoch",
                "loss estimate",
                &[Series::new("loss", loss)],
            ),
        );
    }
    let metric = |f: fn(&recsys::Metrics) -> f64| -> Vec<(f64, f64)> {
        curve
            .iter()
            .filter_map(|p| p.held_out.as_ref().map(|m| (p.epoch as f64, f(m))))
            .collect()
    };
    let (precision, auc) = (metric(|m| m.precision_at_k), metric(|m| m.auc));
    if precision.is_empty() {
        html.paragraph(
            "Held-out metrics were not computed after each epoch (train --report does).",
        );
    } else {
        html.figure(
            "held-out-per-epoch",
            &line_chart(
                &format!("Held-out precision@{k} and AUC per epoch"),
                "epoch",
                "metric",
                &[
                    Series::new(format!("precision@{k}"), precision),
                    Series::new("AUC", auc),
                ],
            ),
        );
    }

    let popularity = experiment.popularity();
    if let Some(test) = experiment.test().filter(|t| !t.is_empty()) {
        html.heading("Ranking quality");
        let options = experiment.eval_options(k, threads);
        let model_ranks = rank_test_items(model, test, Some(train), &options)?;
        let pop_ranks = rank_test_items(&popularity, test, Some(train), &options)?;
        let (mp, mr) = precision_recall_curve(test, &model_ranks, 50);
        let (pp, pr) = precision_recall_curve(test, &pop_ranks, 50);
        html.figure(
            "precision-at-k",
            &line_chart(
                "Precision at k",
                "k",
                "precision",
                &[Series::new("model", mp), Series::new("popularity", pp)],
            ),
        );
        html.figure(
            "recall-at-k",
            &line_chart(
                "Recall at k",
                "k",
                "recall",
                &[Series::new("model", mr), Series::new("popularity", pr)],
            ),
        );
    }

    html.heading("Catalogue");
    let counts = train.item_counts();
    let mut sorted: Vec<u32> = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let total: f64 = sorted.iter().map(|&c| f64::from(c)).sum::<f64>().max(1.0);
    let n_items = sorted.len().max(1) as f64;
    let step = (sorted.len() / 400).max(1);
    let mut cumulative = 0.0;
    let mut tail = vec![(0.0, 0.0)];
    for (i, &c) in sorted.iter().enumerate() {
        cumulative += f64::from(c);
        if (i + 1) % step == 0 || i + 1 == sorted.len() {
            tail.push(((i + 1) as f64 / n_items * 100.0, cumulative / total * 100.0));
        }
    }
    html.figure(
        "long-tail",
        &line_chart(
            "Popularity long tail",
            "% of products, most popular first",
            "% of training interactions",
            &[Series::new("cumulative share", tail)],
        ),
    );
    // Coverage: the share of the catalogue that appears in anybody's top 10.
    let users: Vec<usize> = (0..train.n_users()).collect();
    let sample: Vec<usize> = users
        .iter()
        .copied()
        .step_by((users.len() / 2000).max(1))
        .collect();
    let covered = |scorer: &dyn recsys::Scorer| -> anyhow::Result<f64> {
        let mut seen = vec![false; counts.len()];
        for &u in &sample {
            for (i, _) in experiment.recommend(scorer, u, 10)? {
                seen[i] = true;
            }
        }
        Ok(seen.iter().filter(|&&s| s).count() as f64 / n_items * 100.0)
    };
    let (model_cover, pop_cover) = (covered(model)?, covered(&popularity)?);
    html.paragraph(&format!(
        "Catalogue coverage of the top 10 over {} users: the model recommends {:.1} % of the          products at least once, popularity {:.1} %.",
        sample.len(),
        model_cover,
        pop_cover
    ));

    // Scores of products without training interactions (cold) against the others.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut scores = Vec::new();
    for &u in sample.iter().take(200) {
        recsys::Scorer::score_all(model, recsys::UserQuery::Known(u), &mut scores)?;
        for (i, &s) in scores
            .iter()
            .enumerate()
            .step_by((scores.len() / 500).max(1))
        {
            if counts[i] == 0 {
                cold.push(s)
            } else {
                warm.push(s)
            }
        }
    }
    if cold.is_empty() {
        html.paragraph("Every product has training interactions: no cold-start scores to show.");
    } else {
        html.figure(
            "cold-and-warm-scores",
            &histogram(
                "Scores of products without interactions (cold) and with (warm)",
                "score",
                &[("warm", &warm), ("cold", &cold)],
                40,
            ),
        );
    }

    html.write(dir, "recsys training report")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(3.0, 47.0);
        assert!(
            t.first().unwrap() >= &3.0 && t.last().unwrap() <= &47.0,
            "{t:?}"
        );
        assert!(t.len() >= 4 && t.len() <= 6, "{t:?}");
        assert_eq!(ticks(2.0, 2.0), vec![2.0]);
    }

    /// A chart draws one polyline per series through its points, escapes text, and skips
    /// non-finite points instead of writing NaN into the SVG.
    #[test]
    fn a_line_chart_draws_each_series() {
        let svg = line_chart(
            "P<k>",
            "k",
            "precision",
            &[
                Series::new("model", vec![(1.0, 0.5), (2.0, 0.25), (3.0, f64::NAN)]),
                Series::new("popular & co", vec![(1.0, 0.1), (2.0, 0.1)]),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("P&lt;k&gt;") && svg.contains("popular &amp; co"));
        assert!(!svg.contains("NaN"));
        // The model's first point is at the left edge and at the top of its range.
        assert!(svg.contains(&format!("{:.1},", LEFT)), "{svg}");
    }

    /// Precision and recall at k from ranks agree with counting by hand.
    #[test]
    fn precision_and_recall_curves_count_hits_per_user() {
        // User 0: test items ranked 0 and 3; user 2: one item ranked 1; user 1: none.
        let test = recsys::Interactions::from_pairs(3, 6, [(0, 1), (0, 4), (2, 5)]).unwrap();
        let ranks = [0.0, 3.0, 1.0];
        let (p, r) = precision_recall_curve(&test, &ranks, 4);
        let at = |v: &[(f64, f64)], k: usize| v[k - 1].1;
        assert_eq!(at(&p, 1), (1.0 + 0.0) / 2.0);
        assert_eq!(at(&r, 1), (0.5 + 0.0) / 2.0);
        assert_eq!(at(&p, 2), (0.5 + 0.5) / 2.0);
        assert_eq!(at(&r, 4), 1.0);
        assert_eq!(at(&p, 4), (2.0 / 4.0 + 1.0 / 4.0) / 2.0);
    }

    #[test]
    fn histograms_are_shares_of_each_sample() {
        let a = [0.0f32, 0.1, 0.9, 1.0];
        let b = [0.5f32; 3];
        let svg = histogram("scores", "score", &[("warm", &a), ("cold", &b)], 4);
        assert!(svg.contains("warm (4 scores)") && svg.contains("cold (3 scores)"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    /// A whole report on a small demo experiment: every section is there, each chart has
    /// its series, nothing non-finite is written, and products without interactions get
    /// their histogram when the split leaves some.
    #[test]
    fn a_training_report_has_every_section() {
        use recsys::experiment::{Experiment, ExperimentConfig, Split};
        let mut shop = recsys::demo::generate(&recsys::demo::DemoConfig {
            users: 150,
            products: 80,
            interactions: 2000,
            ..Default::default()
        });
        let split = Split::Random {
            test_fraction: 0.2,
            seed: 3,
        };
        let e = Experiment::load(&mut shop, &ExperimentConfig::collaborative(), split).unwrap();
        let params = recsys::Hyperparameters::builder()
            .loss(recsys::Loss::Warp)
            .build()
            .unwrap();
        let (model, training) = e.fit(params, 3, 1, |_| {}).unwrap();
        let curve: Vec<EpochPoint> = training
            .epochs
            .iter()
            .map(|r| EpochPoint {
                epoch: r.total_epochs,
                loss: Some(r.loss),
                held_out: None,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("recsys-report-{}", std::process::id()));
        let path = training_report(&dir, "hybrid <test>", &e, &model, &curve, 5, 1).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        for heading in ["Training", "Ranking quality", "Catalogue"] {
            assert!(html.contains(&format!("<h2>{heading}</h2>")), "{heading}");
        }
        assert!(html.contains("hybrid &lt;test&gt;"));
        assert!(html.contains("Held-out metrics were not computed"));
        // Loss, precision at k, recall at k (2 series each), the long tail.
        assert_eq!(
            html.matches("<svg").count(),
            4 + usize::from(html.contains("cold ("))
        );
        assert_eq!(
            html.matches("<polyline").count(),
            1 + 2 + 2 + 1 + 2 * usize::from(html.contains("cold ("))
        );
        assert!(!html.contains("NaN") && !html.contains("inf"));
        assert!(html.contains("Catalogue coverage of the top 10"));
        let svg = std::fs::read_to_string(dir.join("precision-at-k.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Precision at k"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
