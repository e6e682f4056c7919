//! Every query path against a brute-force reference (f64, sort everything), on seeded
//! random data; ties, zero rows, errors, the table's serialisation and its validation.

use std::sync::Arc;

use approx::abs_diff_eq;
use ndarray::Array2;
use proptest::prelude::*;
use recsys_similarity::{
    ExactCosine, Neighbour, NeighbourTable, QueryScratch, SimilarityError, SimilarityIndex,
    WithFallback,
};

const TOL: f64 = 1e-5;

/// splitmix64: a seeded stream of floats in `[-1, 1)`.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn float(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Random rows; about one in `dup_every` rows copies an earlier row exactly (forcing ties)
/// and row 1 (if any) is all zeros.
fn random_vectors(seed: u64, n: usize, dim: usize, dup_every: usize) -> Array2<f32> {
    let mut rng = Rng(seed);
    let mut v = Array2::from_shape_fn((n, dim), |_| rng.float());
    for i in 1..n {
        if dup_every > 0 && rng.below(dup_every) == 0 {
            let src = rng.below(i);
            let row = v.row(src).to_owned();
            v.row_mut(i).assign(&row);
        }
    }
    if n > 1 {
        v.row_mut(1).fill(0.0);
    }
    v
}

fn unit_f64(row: impl Iterator<Item = f32> + Clone) -> Vec<f64> {
    if row.clone().any(|x| !x.is_finite()) {
        return row.map(|_| 0.0).collect();
    }
    let norm = row.clone().map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
    row.map(|x| if norm > 0.0 { x as f64 / norm } else { 0.0 })
        .collect()
}

/// All candidates (not `self_item`, not excluded) ranked by similarity desc, index asc.
fn reference(
    vectors: &Array2<f32>,
    query: &[f32],
    self_item: Option<usize>,
    exclude: &dyn Fn(usize) -> bool,
) -> Vec<(usize, f64)> {
    let q = unit_f64(query.iter().copied());
    let mut all: Vec<(usize, f64)> = vectors
        .outer_iter()
        .enumerate()
        .filter(|&(j, _)| Some(j) != self_item && !exclude(j))
        .map(|(j, row)| {
            let u = unit_f64(row.iter().copied());
            (j, q.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>())
        })
        .collect();
    // `partial_cmp`: -0.0 and +0.0 are the same similarity.
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    all
}

/// `got` is a correct top-`k` of the ranked candidates `all`: right length, no self or
/// excluded item, no repeats, in rank order, the i-th similarity equal to the reference's
/// i-th best (so nothing better was missed) and to the reference similarity of that item;
/// the items themselves must match wherever the reference order is unambiguous (gap > 1e-4)
/// or exactly tied (duplicated vectors).
fn assert_top_k(got: &[Neighbour], all: &[(usize, f64)], k: usize, ctx: &str) {
    assert_eq!(got.len(), k.min(all.len()), "{ctx}: length");
    for (i, n) in got.iter().enumerate() {
        assert!(n.similarity.is_finite(), "{ctx}: NaN at {i}");
        let want = all.iter().find(|c| c.0 == n.item);
        let want = want.unwrap_or_else(|| panic!("{ctx}: item {} is not a candidate", n.item));
        assert!(
            abs_diff_eq!(n.similarity as f64, want.1, epsilon = TOL),
            "{ctx}: similarity of item {}: {} vs reference {}",
            n.item,
            n.similarity,
            want.1
        );
        assert!(
            abs_diff_eq!(n.similarity as f64, all[i].1, epsilon = TOL),
            "{ctx}: position {i}: {} vs reference {} (a better item was missed)",
            n.similarity,
            all[i].1
        );
        if i > 0 {
            let p = got[i - 1];
            assert!(
                p.similarity > n.similarity || (p.similarity == n.similarity && p.item < n.item),
                "{ctx}: not in rank order at {i}: {p:?} then {n:?}"
            );
        }
        let clear_before = i == 0 || all[i - 1].1 - all[i].1 > 1e-4 || all[i - 1].1 == all[i].1;
        let clear_after =
            i + 1 >= all.len() || all[i].1 - all[i + 1].1 > 1e-4 || all[i].1 == all[i + 1].1;
        let exact_tie_group_is_clean = all
            .iter()
            .filter(|c| (c.1 - all[i].1).abs() <= 1e-4)
            .all(|c| c.1 == all[i].1);
        if clear_before && clear_after && exact_tie_group_is_clean {
            assert_eq!(n.item, all[i].0, "{ctx}: item at position {i}");
        }
    }
}

fn ctx(seed: u64, what: &str, query: usize, k: usize) -> String {
    format!("seed {seed}, {what}, query {query}, k {k}")
}

fn indexes(vectors: &Array2<f32>) -> Vec<(&'static str, ExactCosine)> {
    vec![
        ("detected kernel", ExactCosine::new(vectors.view())),
        (
            "portable kernel",
            ExactCosine::new(vectors.view()).force_portable_kernel(),
        ),
    ]
}

#[test]
fn exact_single_batch_and_scratch_match_the_reference() {
    for seed in [1u64, 2, 3] {
        // 2,100 items: several scan chunks of 1,024 and a partial last panel.
        let (n, dim) = (2_100 + seed as usize, 30);
        let vectors = random_vectors(seed, n, dim, 50);
        let exclude = |j: usize| j % 7 == 3;
        for (name, index) in indexes(&vectors) {
            let mut scratch = QueryScratch::new();
            let mut out = Vec::new();
            let queries: Vec<usize> = (0..n).step_by(97).chain([0, 1, n - 1]).collect();
            for k in [0, 1, 10, 50] {
                let batch = index.similar_batch(&queries, k, &exclude).unwrap();
                for (&q, from_batch) in queries.iter().zip(&batch) {
                    let c = ctx(seed, name, q, k);
                    let all = reference(
                        &vectors,
                        vectors.row(q).as_slice().unwrap(),
                        Some(q),
                        &exclude,
                    );
                    let single = index.similar(q, k, &exclude).unwrap();
                    assert_top_k(&single, &all, k, &c);
                    assert_eq!(&single, from_batch, "{c}: batch differs from single");
                    index
                        .similar_into(q, k, &exclude, &mut scratch, &mut out)
                        .unwrap();
                    assert_eq!(single, out, "{c}: scratch differs from single");
                }
            }
        }
    }
}

#[test]
fn similar_to_vector_matches_the_reference() {
    let seed = 11;
    let vectors = random_vectors(seed, 1_500, 17, 0);
    let mut rng = Rng(seed + 100);
    for (name, index) in indexes(&vectors) {
        for q in 0..5 {
            let query: Vec<f32> = (0..17).map(|_| rng.float() * 100.0).collect();
            let all = reference(&vectors, &query, None, &|_| false);
            let got = index.similar_to_vector(&query, 25, &|_| false).unwrap();
            assert_top_k(&got, &all, 25, &ctx(seed, name, q, 25));
        }
    }
}

#[test]
fn dense_similarities_match_the_reference_and_the_top_k() {
    let seed = 5;
    let vectors = random_vectors(seed, 300, 9, 10);
    let index = ExactCosine::new(vectors.view());
    let mut sims = Vec::new();
    for q in [0, 1, 150, 299] {
        index.similarities(q, &mut sims).unwrap();
        assert_eq!(sims.len(), 300);
        let all = reference(&vectors, vectors.row(q).as_slice().unwrap(), None, &|_| {
            false
        });
        for &(j, want) in &all {
            assert!(
                abs_diff_eq!(sims[j] as f64, want, epsilon = TOL),
                "seed {seed} query {q} item {j}: {} vs {want}",
                sims[j]
            );
            assert_eq!(
                sims[j],
                index.similarity(q, j).unwrap(),
                "seed {seed} {q} {j}"
            );
            assert_eq!(
                sims[j],
                index.similarity(j, q).unwrap(),
                "seed {seed}: symmetric"
            );
        }
        let mut seen = Vec::new();
        index
            .for_each_similarity(q, &mut |j, s| seen.push((j, s)))
            .unwrap();
        assert_eq!(seen.len(), 299);
        assert!(seen.iter().all(|&(j, s)| j != q && s == sims[j]));
        // The top-k reports exactly the dense values.
        for n in index.similar(q, 20, &|_| false).unwrap() {
            assert_eq!(n.similarity, sims[n.item]);
        }
    }
}

#[test]
fn duplicated_vectors_tie_by_lower_index_everywhere() {
    let seed = 21;
    let mut rng = Rng(seed);
    let bases: Vec<Vec<f32>> = (0..5)
        .map(|_| (0..12).map(|_| rng.float()).collect())
        .collect();
    let n = 45;
    let vectors = Array2::from_shape_fn((n, 12), |(i, d)| bases[i % 5][d]);
    let exact = ExactCosine::new(vectors.view());
    let table = NeighbourTable::build(&exact, 20).unwrap();
    let queries: Vec<usize> = (0..n).collect();
    let batch = exact.similar_batch(&queries, 20, &|_| false).unwrap();
    for (q, from_batch) in batch.iter().enumerate() {
        let all = reference(
            &vectors,
            vectors.row(q).as_slice().unwrap(),
            Some(q),
            &|_| false,
        );
        let want: Vec<usize> = all.iter().take(20).map(|c| c.0).collect();
        // The 8 other copies of the same vector come first, in index order.
        let copies: Vec<usize> = (0..n).filter(|&j| j % 5 == q % 5 && j != q).collect();
        assert_eq!(&want[..8], &copies[..], "seed {seed} query {q}: reference");
        for (what, got) in [
            ("single", exact.similar(q, 20, &|_| false).unwrap()),
            ("batch", from_batch.clone()),
            ("table", table.similar(q, 20, &|_| false).unwrap()),
        ] {
            let items: Vec<usize> = got.iter().map(|n| n.item).collect();
            assert_eq!(items, want, "seed {seed} query {q} {what}");
        }
    }
}

#[test]
fn table_rows_are_the_exact_top_k() {
    for seed in [31u64, 32] {
        let vectors = random_vectors(seed, 1_200, 30, 40);
        for (name, exact) in indexes(&vectors) {
            for k in [1usize, 20] {
                let table = NeighbourTable::build(&exact, k).unwrap();
                assert_eq!(table.k(), k);
                assert_eq!(table.row_len(), k);
                assert_eq!(table.size_in_bytes(), 1_200 * k * 8);
                for q in (0..1_200).step_by(13).chain([1, 1_199]) {
                    let c = ctx(seed, name, q, k);
                    let all = reference(
                        &vectors,
                        vectors.row(q).as_slice().unwrap(),
                        Some(q),
                        &|_| false,
                    );
                    let stored: Vec<Neighbour> = table.neighbours(q).unwrap().collect();
                    assert_top_k(&stored, &all, k, &c);
                    assert_eq!(stored, exact.similar(q, k, &|_| false).unwrap(), "{c}");
                }
            }
        }
    }
}

#[test]
fn table_build_does_not_depend_on_the_thread_count_and_reports_progress() {
    let seed = 41;
    let vectors = random_vectors(seed, 700, 10, 20);
    let exact = ExactCosine::new(vectors.view());
    let build = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let last = std::sync::Mutex::new(Vec::new());
        let table = pool.install(|| {
            NeighbourTable::build_with_progress(&exact, 15, &|done, total| {
                last.lock().unwrap().push((done, total))
            })
            .unwrap()
        });
        let mut calls = last.into_inner().unwrap();
        calls.sort();
        assert_eq!(calls.last(), Some(&(700, 700)), "seed {seed}: progress");
        table
    };
    assert_eq!(build(1), build(2), "seed {seed}");
}

#[test]
fn zero_and_non_finite_rows_are_similar_to_nothing() {
    let vectors = ndarray::array![
        [0.0f32, 0.0, 0.0],
        [1.0, 2.0, 3.0],
        [f32::NAN, 1.0, 1.0],
        [f32::INFINITY, 0.0, 0.0],
        [1e30, 1e30, 0.0],
        [1e-40, 1e-40, 0.0],
        [-1.0, -2.0, -3.0],
    ];
    let index = ExactCosine::new(vectors.view());
    let mut sims = Vec::new();
    for zero in [0, 2, 3] {
        index.similarities(zero, &mut sims).unwrap();
        assert!(sims.iter().all(|&s| s == 0.0), "row {zero}: {sims:?}");
        // All ties at 0: the answer is the lowest indices.
        let got: Vec<usize> = index
            .similar(zero, 3, &|_| false)
            .unwrap()
            .iter()
            .map(|n| n.item)
            .collect();
        assert_eq!(
            got,
            [0, 1, 2, 3]
                .into_iter()
                .filter(|&j| j != zero)
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    // Huge and tiny finite rows are normalised, not overflowed or flushed to zero.
    assert!((index.similarity(4, 5).unwrap() - 1.0).abs() < 1e-6);
    assert!((index.similarity(1, 6).unwrap() + 1.0).abs() < 1e-6);
    for q in 0..7 {
        index.similarities(q, &mut sims).unwrap();
        assert!(sims
            .iter()
            .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
    }
    for v in [[0.0f32, 0.0, 0.0], [f32::NAN, 0.0, 1.0]] {
        let got = index.similar_to_vector(&v, 10, &|_| false).unwrap();
        assert_eq!(got.len(), 7);
        assert!(got.iter().all(|n| n.similarity == 0.0));
        assert_eq!(
            got.iter().map(|n| n.item).collect::<Vec<_>>(),
            (0..7).collect::<Vec<_>>()
        );
    }
    let table = NeighbourTable::build(&index, 3).unwrap();
    assert!(table.as_parts().1.iter().all(|s| s.is_finite()));
}

#[test]
fn k_zero_k_too_large_all_excluded_and_tiny_indexes() {
    let vectors = random_vectors(51, 10, 4, 0);
    let index = ExactCosine::new(vectors.view());
    assert!(index.similar(3, 0, &|_| false).unwrap().is_empty());
    assert_eq!(index.similar(3, 100, &|_| false).unwrap().len(), 9);
    assert!(index.similar(3, 5, &|_| true).unwrap().is_empty());
    assert!(index
        .similar_batch(&[1, 2], 5, &|_| true)
        .unwrap()
        .iter()
        .all(Vec::is_empty));
    assert!(index.similar_batch(&[], 5, &|_| false).unwrap().is_empty());
    let table = NeighbourTable::build(&index, 100).unwrap();
    assert_eq!((table.k(), table.row_len()), (100, 9));
    assert_eq!(table.similar(3, 100, &|j| j < 5).unwrap().len(), 5);

    let empty = ExactCosine::new(Array2::<f32>::zeros((0, 4)).view());
    assert!(empty.is_empty());
    assert!(empty
        .similar_to_vector(&[1.0; 4], 3, &|_| false)
        .unwrap()
        .is_empty());
    let t = NeighbourTable::build(&empty, 5).unwrap();
    assert!(t.is_empty() && t.size_in_bytes() == 0);

    let one = ExactCosine::new(Array2::<f32>::ones((1, 4)).view());
    assert!(one.similar(0, 3, &|_| false).unwrap().is_empty());
    assert_eq!(NeighbourTable::build(&one, 5).unwrap().row_len(), 0);

    let no_dims = ExactCosine::new(Array2::<f32>::zeros((3, 0)).view());
    let got = no_dims.similar(0, 5, &|_| false).unwrap();
    assert_eq!(
        got,
        vec![
            Neighbour {
                item: 1,
                similarity: 0.0
            },
            Neighbour {
                item: 2,
                similarity: 0.0
            }
        ]
    );
}

#[test]
fn bad_items_and_dimensions_are_errors() {
    let vectors = random_vectors(61, 10, 4, 0);
    let exact = ExactCosine::new(vectors.view());
    let table = NeighbourTable::build(&exact, 3).unwrap();
    let both = WithFallback::new(table.clone(), exact.clone()).unwrap();
    fn out_of_range<T>(r: Result<T, SimilarityError>) -> bool {
        matches!(
            r,
            Err(SimilarityError::ItemOutOfRange { index: 10, len: 10 })
        )
    }
    let indexes: [&dyn SimilarityIndex; 3] = [&exact, &table, &both];
    for index in indexes {
        assert!(out_of_range(index.similar(10, 3, &|_| false)));
        assert!(out_of_range(index.for_each_similarity(10, &mut |_, _| {})));
    }
    assert!(out_of_range(exact.similarities(10, &mut Vec::new())));
    assert!(out_of_range(exact.similarity(0, 10)));
    assert!(out_of_range(exact.similar_batch(&[0, 10], 3, &|_| false)));
    assert!(out_of_range(exact.unit_vector(10, &mut Vec::new())));
    assert!(out_of_range(table.neighbours(10).map(|_| ())));
    for index in [&exact as &dyn SimilarityIndex, &both] {
        let err = index
            .similar_to_vector(&[1.0; 5], 3, &|_| false)
            .unwrap_err();
        assert!(
            matches!(
                err,
                SimilarityError::DimensionMismatch {
                    expected: 4,
                    found: 5
                }
            ),
            "{err}"
        );
    }
    assert!(matches!(
        exact.vector_similarities(&[1.0; 3], &mut Vec::new()),
        Err(SimilarityError::DimensionMismatch {
            expected: 4,
            found: 3
        })
    ));
    assert!(matches!(
        table.similar_to_vector(&[1.0; 4], 3, &|_| false),
        Err(SimilarityError::Unsupported(_))
    ));
    let other = ExactCosine::new(random_vectors(61, 11, 4, 0).view());
    assert!(matches!(
        WithFallback::new(table, other),
        Err(SimilarityError::Mismatch {
            table: 10,
            exact: 11
        })
    ));
}

#[test]
fn table_serde_round_trip() {
    let vectors = random_vectors(71, 200, 8, 10);
    let table = NeighbourTable::build(&ExactCosine::new(vectors.view()), 7).unwrap();
    let json = serde_json::to_string(&table).unwrap();
    let back: NeighbourTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, table);
}

#[test]
fn corrupt_tables_are_refused() {
    let vectors = random_vectors(81, 6, 3, 0);
    let table = NeighbourTable::build(&ExactCosine::new(vectors.view()), 2).unwrap();
    let good: serde_json::Value = serde_json::to_value(&table).unwrap();
    let (items, sims) = table.as_parts();
    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 8] = [
        ("format version", &|v| v["format"] = 2.into()),
        ("out of range", &|v| v["items"][0] = 6.into()),
        ("lists the item itself", &|v| v["items"][0] = 0.into()),
        ("need 12 entries", &|v| {
            v["items"].as_array_mut().unwrap().pop();
        }),
        ("need", &|v| v["n_items"] = 7.into()),
        ("not a finite value", &|v| v["similarities"][3] = 1.5.into()),
        ("rank order", &|v| v["similarities"][0] = (-1.0).into()),
        // Same item twice with different similarities: still in rank order.
        ("repeats item", &|v| v["items"][1] = v["items"][0].clone()),
    ];
    for (expected, edit) in cases {
        let mut bad = good.clone();
        edit(&mut bad);
        let err = serde_json::from_value::<NeighbourTable>(bad).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?}, got {err}"
        );
    }
    // Construction from parts applies the same checks (NaN cannot travel through JSON).
    let mut nan = sims.to_vec();
    nan[2] = f32::NAN;
    let err = NeighbourTable::from_parts(6, 2, items.to_vec(), nan).unwrap_err();
    assert!(matches!(err, SimilarityError::InvalidTable(_)), "{err}");
    assert_eq!(
        NeighbourTable::from_parts(6, 2, items.to_vec(), sims.to_vec()).unwrap(),
        table
    );
}

#[test]
fn forwarding_impls_answer_like_the_index() {
    let vectors = random_vectors(91, 50, 5, 0);
    let exact = ExactCosine::new(vectors.view());
    let want = exact.similar(4, 5, &|_| false).unwrap();
    let by_ref: &ExactCosine = &exact;
    let boxed: Box<dyn SimilarityIndex> = Box::new(exact.clone());
    let shared: Arc<ExactCosine> = Arc::new(exact.clone());
    let shared_dyn: Arc<dyn SimilarityIndex> = shared.clone();
    fn ask(index: impl SimilarityIndex) -> Vec<Neighbour> {
        assert_eq!(index.len(), 50);
        assert!(!index.is_empty());
        index.similar(4, 5, &|_| false).unwrap()
    }
    assert_eq!(ask(by_ref), want);
    assert_eq!(ask(&boxed), want);
    assert_eq!(ask(boxed), want);
    assert_eq!(ask(shared), want);
    assert_eq!(ask(shared_dyn), want);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ExactCosine>();
    check::<NeighbourTable>();
    check::<WithFallback>();
    check::<QueryScratch>();
    check::<Neighbour>();
    check::<SimilarityError>();
    check::<Box<dyn SimilarityIndex>>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_path_agrees_with_the_reference(
        seed in any::<u64>(),
        n in 0usize..70,
        dim in 1usize..12,
        k in 0usize..80,
        table_k in 0usize..30,
        excluded in proptest::collection::vec(any::<bool>(), 70),
    ) {
        let vectors = random_vectors(seed, n, dim, 4);
        let exclude = |j: usize| excluded[j];
        let exact = ExactCosine::new(vectors.view());
        let table = NeighbourTable::build(&exact, table_k).unwrap();
        let both = WithFallback::new(table.clone(), exact.clone()).unwrap();
        let queries: Vec<usize> = (0..n).collect();
        let batch = exact.similar_batch(&queries, k, &exclude).unwrap();
        for (q, from_batch) in batch.iter().enumerate() {
            let c = format!("seed {seed} n {n} dim {dim} k {k} table_k {table_k} query {q}");
            let all = reference(&vectors, vectors.row(q).as_slice().unwrap(), Some(q), &exclude);
            let single = exact.similar(q, k, &exclude).unwrap();
            assert_top_k(&single, &all, k, &c);
            prop_assert_eq!(from_batch, &single, "{}", c);
            // The table answers a prefix of the exact answer; the pair answers all of it.
            let from_table = table.similar(q, k, &exclude).unwrap();
            prop_assert_eq!(&from_table[..], &single[..from_table.len()], "{}", c);
            let stored_left = table.neighbours(q).unwrap().filter(|nb| !exclude(nb.item)).count();
            prop_assert_eq!(from_table.len(), k.min(stored_left), "{}", c);
            prop_assert_eq!(both.similar(q, k, &exclude).unwrap(), single, "{}", c);
        }
    }
}
