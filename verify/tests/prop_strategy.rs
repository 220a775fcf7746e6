//! Tests of the strategies themselves (`scalegemm_verify::strategy`): caps respected,
//! edges reached, data local in the coordinates (what makes shrinking keep a failing
//! element), distributions as documented, shrinking ending on small cases, and the
//! `fp8_gemm_nt` dump writer.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestError, TestRng, TestRunner};
use safetensors::{Dtype, SafeTensors};
use scalegemm_reference::quant::{Elem, ScaleRound};
use scalegemm_verify::strategy::{
    code_spec, code_spec_with_nan, edge_dim, fill, fp8_gemm_case, fp8_gemm_case_with, gemm_case,
    gemm_case_with, gemm_shape, matrix, scale_spec, value_spec, value_spec_non_finite,
    write_fp8_gemm_case, CaseDesc, CodeDist, Fp8GemmTensors, Fp8Origin, ScaleDist, ShapeCap,
    ValueDist, ValueSpec, EDGE_DIMS,
};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    )
}

/// Draws `n` values of `s` (no shrinking).
fn sample<S: Strategy>(s: &S, n: usize) -> Vec<S::Value> {
    let mut r = runner(1);
    (0..n)
        .map(|_| s.new_tree(&mut r).unwrap().current())
        .collect()
}

#[test]
fn edge_dim_stays_in_range_and_reaches_every_edge() {
    for max in [1usize, 7, 20, 129, 1088, 5000] {
        let seen: BTreeSet<usize> = sample(&edge_dim(max), 4000).into_iter().collect();
        assert!(
            seen.iter().all(|&d| (1..=max).contains(&d)),
            "max {max}: {seen:?}"
        );
        for e in EDGE_DIMS.iter().filter(|&&e| e <= max) {
            assert!(seen.contains(e), "max {max}: edge {e} never drawn");
        }
        if max >= 1088 {
            for d in [32, 33, 31, 64, 63, 65, 256, 255, 257, 512, 2048] {
                assert!(d > max || seen.contains(&d), "max {max}: {d} never drawn");
            }
        }
    }
}

#[test]
fn gemm_shape_respects_the_cap() {
    for cap in [ShapeCap::TINY, ShapeCap::CPU, ShapeCap::REFERENCE] {
        let shapes = sample(&gemm_shape(cap), 2000);
        for &(m, n, k) in &shapes {
            assert!(
                m <= cap.max_m && n <= cap.max_n && k <= cap.max_k,
                "{cap:?}: {m} {n} {k}"
            );
            assert!(m * n * k <= cap.max_mnk, "{cap:?}: {m} {n} {k}");
        }
        let ks: BTreeSet<usize> = shapes.iter().map(|s| s.2).collect();
        assert!(
            ks.contains(&1) && ks.contains(&cap.max_k.min(128)),
            "{cap:?}: {ks:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A smaller shape from the same description is the top-left corner of the bigger
    /// one (planted values aside): shrinking keeps elements where they were.
    #[test]
    fn data_is_local_in_the_coordinates(
        case in gemm_case(ShapeCap::CPU),
        dm in 0usize..4, dk in 0usize..4,
    ) {
        let CaseDesc { m, n, k, .. } = case.desc;
        let small = CaseDesc { m: m.saturating_sub(dm).max(1), k: k.saturating_sub(dk).max(1), ..case.desc }.build();
        for i in 0..small.m {
            for j in 0..small.k {
                prop_assert_eq!(small.a[i * small.k + j].to_bits(), case.a[i * k + j].to_bits());
            }
        }
        prop_assert_eq!(small.n, n);
        prop_assert_eq!(case.desc.build(), case);
    }

    /// Finite specs give finite values; each distribution keeps its promises.
    #[test]
    fn distributions_as_documented(mat in matrix(200, 600, 1 << 15, value_spec())) {
        let (rows, cols, x) = (mat.rows, mat.cols, &mat.data);
        prop_assert_eq!(x.len(), rows * cols);
        prop_assert!(x.iter().all(|v| v.is_finite()));
        let zero_tiles = mat.desc.spec.zero_tiles.is_some();
        match mat.desc.spec.dist {
            ValueDist::SmallInts => prop_assert!(x.iter().all(|v| v.fract() == 0.0 && v.abs() <= 4.0)),
            ValueDist::AllEqualMax { signed } => prop_assert!(x.iter().all(|v| v.abs() == 448.0 || (zero_tiles && *v == 0.0)) && (signed || x.iter().all(|v| *v >= 0.0))),
            ValueDist::RoundingBoundaries { elem, log2_scale } | ValueDist::Subnormals { elem, log2_scale } => {
                let pin = elem.max_finite() * 2f32.powi(log2_scale as i32);
                for i in 0..rows {
                    for j in 0..cols {
                        let v = x[i * cols + j].abs();
                        if j % 32 == 0 {
                            prop_assert!(v == pin || (zero_tiles && v == 0.0), "pin [{}, {}] = {}", i, j, v);
                        } else {
                            prop_assert!(v < pin, "[{}, {}] = {} above the pin {}", i, j, v, pin);
                        }
                    }
                }
            }
            ValueDist::ChannelOutliers { log2_scale, factor, .. } => {
                // outlier columns are whole columns: their largest value is far above the bulk's
                let bulk = 2f32.powi(log2_scale as i32);
                prop_assert!(x.iter().all(|v| v.abs() < 12.0 * bulk * factor as f32));
            }
            _ => {}
        }
    }

    /// Non-finite specs plant exactly one NaN or inf, where they say.
    #[test]
    fn planted_value_is_the_only_non_finite(mat in matrix(200, 600, 1 << 15, value_spec_non_finite())) {
        let p = mat.desc.spec.planted.unwrap();
        let (i, j) = p.position(mat.rows, mat.cols);
        let bad: Vec<usize> = (0..mat.data.len()).filter(|&x| !mat.data[x].is_finite()).collect();
        prop_assert_eq!(bad, vec![i * mat.cols + j]);
        let v = mat.data[i * mat.cols + j];
        prop_assert!(v.to_bits() == p.value.value().to_bits() || (v.is_nan() && p.value.value().is_nan()));
    }

    /// Quantized cases have the 1D2D shapes, no NaN code unless planted, finite positive
    /// scales, powers of two where the distribution says so.
    #[test]
    fn fp8_cases_as_documented(
        case in prop_oneof![
            fp8_gemm_case(ShapeCap::CPU),
            fp8_gemm_case_with(ShapeCap::CPU, code_spec_with_nan(), code_spec(), scale_spec(), scale_spec()),
        ],
    ) {
        let Fp8Origin::Generated(desc) = case.origin else { panic!("generated") };
        let (m, n, k, kb) = (case.m, case.n, case.k, case.kb());
        prop_assert_eq!((case.a.len(), case.b.len()), (m * k, n * k));
        prop_assert_eq!((case.sfa.len(), case.sfb.len()), (m * kb, n.div_ceil(128) * kb));
        let nan_a = case.a.iter().filter(|&&c| c & 0x7F == 0x7F).count();
        prop_assert_eq!(nan_a, desc.a.nan_at.is_some() as usize);
        prop_assert!(case.b.iter().all(|&c| c & 0x7F != 0x7F));
        for (spec, s) in [(desc.sfa, &case.sfa), (desc.sfb, &case.sfb)] {
            prop_assert!(s.iter().all(|v| v.is_finite() && *v > 0.0));
            if spec.is_ue8m0() {
                prop_assert!(s.iter().all(|v| v.to_bits() & 0x7F_FFFF == 0 || v.to_bits() == 0x40_0000));
            }
            if let Some(h) = spec.huge {
                prop_assert!(s.contains(&2f32.powi(h.log2 as i32)));
            }
            if spec.dist == ScaleDist::LogUniform {
                prop_assert!(s.iter().all(|v| (1e-30..=1e30).contains(v) || spec.huge.is_some()));
            }
        }
        if desc.a.dist == CodeDist::Max && desc.a.nan_at.is_none() {
            prop_assert!(case.a.iter().all(|&c| c & 0x7F == 0x7E));
        }
        prop_assert!(case.a_operand().is_ok() && case.b_operand().is_ok());
        prop_assert_eq!(desc.build(), case);
    }
}

/// Runs `property` until it fails and returns the shrunk failing value.
fn shrunk<S: Strategy>(s: S, property: impl Fn(&S::Value) -> bool) -> S::Value
where
    S::Value: std::fmt::Debug,
{
    let mut r = runner(2000);
    match r.run(&s, |v| {
        prop_assert!(property(&v));
        Ok(())
    }) {
        Err(TestError::Fail(_, v)) => v,
        other => panic!("the property should fail: {other:?}"),
    }
}

#[test]
fn shrinking_a_shape_bug_ends_on_a_small_case() {
    // "fails whenever K > 128" (a kernel that mishandles a second scale block)
    let case = shrunk(gemm_case(ShapeCap::CPU), |c| c.k <= 128);
    assert_eq!((case.m, case.n, case.k), (1, 1, 129), "{case:?}");
    assert_eq!(case.desc.a.dist, ValueDist::SmallInts, "{case:?}");
    assert_eq!(case.desc.b.dist, ValueDist::SmallInts, "{case:?}");
    assert!(format!("{case:?}").len() < 2000);
    // "fails when M is not a multiple of 16 and N > 16"
    let case = shrunk(gemm_case(ShapeCap::CPU), |c| c.m % 16 == 0 || c.n <= 16);
    assert_eq!((case.m, case.n, case.k), (1, 17, 1), "{case:?}");
}

#[test]
fn shrinking_a_planted_nan_ends_on_one_element() {
    // "fails when A holds a NaN"
    let case = shrunk(
        gemm_case_with(ShapeCap::CPU, value_spec_non_finite(), value_spec()),
        |c| c.a.iter().all(|v| !v.is_nan()),
    );
    assert_eq!((case.m, case.n, case.k), (1, 1, 1), "{case:?}");
    assert!(case.a[0].is_nan());
    assert_eq!(case.desc.a.dist, ValueDist::SmallInts, "{case:?}");
}

#[test]
fn shrinking_keeps_a_value_dependent_failure() {
    // "fails when some |a| > 1000": shrinking keeps a big element and cuts the shape
    // down to it (the data does not change under the shrinking of a dimension)
    let big = |v: &f32| v.abs() > 1000.0;
    for _ in 0..3 {
        let case = shrunk(
            gemm_case_with(
                ShapeCap::CPU,
                Just(ValueSpec::plain(ValueDist::HeavyTailed { log2_scale: 4 })),
                value_spec(),
            ),
            |c| !c.a.iter().any(big),
        );
        let (m, k) = (case.m, case.k);
        assert_eq!(case.n, 1, "{case:?}");
        // locally minimal: dropping the last row or the last column removes every big value
        assert!(case.a[(m - 1) * k..].iter().any(big), "{case:?}");
        assert!((0..m).any(|i| big(&case.a[i * k + k - 1])), "{case:?}");
    }
}

#[test]
fn shrinking_a_huge_scale_bug_ends_on_a_small_case() {
    // "fails when a scale of A is above 2^100"
    let limit = 2f32.powi(100);
    let case = shrunk(fp8_gemm_case(ShapeCap::CPU), |c| {
        c.sfa.iter().all(|&s| s <= limit)
    });
    assert_eq!((case.n, case.k), (1, 1), "{case:?}");
    // only the last row's scale is huge: M is the smallest that fails
    assert!(case.sfa[case.m - 1] > limit, "{case:?}");
    assert!(
        case.sfa[..case.m - 1].iter().all(|&s| s <= limit),
        "{case:?}"
    );
}

#[test]
fn quantize_1d2d_gives_reference_operands() {
    let case = CaseDesc {
        m: 7,
        n: 129,
        k: 576,
        a: ValueSpec::plain(ValueDist::ChannelOutliers {
            log2_scale: 0,
            factor: 100,
            period: 4,
        }),
        b: ValueSpec::plain(ValueDist::RoundingBoundaries {
            elem: Elem::E4M3,
            log2_scale: 0,
        }),
        seed: 1,
    }
    .build();
    for round in [ScaleRound::Fp32, ScaleRound::Ue8m0] {
        let q = case.quantize_1d2d(round).unwrap();
        assert_eq!((q.sfa.len(), q.sfb.len()), (7 * 5, 2 * 5));
        // the boundary distribution pins every block: B's scales are exactly 1
        assert!(q.sfb.iter().all(|&s| s == 1.0), "{:?}", q.sfb);
        assert!(q.a_operand().is_ok() && q.b_operand().is_ok());
        assert!(matches!(q.origin, Fp8Origin::Quantized { round: r, .. } if r == round));
    }
    // NaN input: the reference refuses
    let bad = CaseDesc {
        a: value_spec_sample_non_finite(),
        ..case.desc
    }
    .build();
    assert!(bad.quantize_1d2d(ScaleRound::Fp32).is_err());
    // large cases print a summary, not every value
    assert!(format!("{case:?}").len() < 2000);
}

fn value_spec_sample_non_finite() -> ValueSpec {
    sample(&value_spec_non_finite(), 1).pop().unwrap()
}

#[test]
fn fill_is_deterministic_and_stream_separated() {
    let spec = ValueSpec::plain(ValueDist::Normal { log2_scale: 0 });
    assert_eq!(fill(5, 9, &spec, 3, 1), fill(5, 9, &spec, 3, 1));
    assert_ne!(fill(5, 9, &spec, 3, 1), fill(5, 9, &spec, 3, 2));
    assert_ne!(fill(5, 9, &spec, 3, 1), fill(5, 9, &spec, 4, 1));
    let z = ValueSpec {
        zero_tiles: Some(1),
        ..spec
    };
    assert!(fill(130, 260, &z, 3, 1).iter().all(|&v| v == 0.0));
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("scalegemm-prop-{}-{name}", std::process::id()))
}

#[test]
fn dump_writer_writes_the_fp8_gemm_nt_format() {
    let case = sample(&fp8_gemm_case(ShapeCap::CPU), 1).pop().unwrap();
    let (m, n, k, kb) = (case.m, case.n, case.k, case.kb());
    let c: Vec<f32> = (0..m * n).map(|x| x as f32 - 3.5).collect();
    for with_c in [false, true] {
        let path = temp_path(&format!("dump-{with_c}.safetensors"));
        case.write_dump(&path, with_c.then_some(&c[..])).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta.len(), 1);
        assert_eq!(meta["op"], "fp8_gemm_nt");
        let mut names = st.names();
        names.sort();
        let want: Vec<&str> = if with_c {
            vec!["a", "b", "c", "sfa", "sfb"]
        } else {
            vec!["a", "b", "sfa", "sfb"]
        };
        assert_eq!(names, want);
        let f32s = |d: &[u8]| {
            d.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        };
        let t = st.tensor("a").unwrap();
        assert_eq!((t.dtype(), t.shape()), (Dtype::F8_E4M3, &[m, k][..]));
        assert_eq!(t.data(), &case.a[..]);
        let t = st.tensor("b").unwrap();
        assert_eq!((t.dtype(), t.shape()), (Dtype::F8_E4M3, &[n, k][..]));
        assert_eq!(t.data(), &case.b[..]);
        let t = st.tensor("sfa").unwrap();
        assert_eq!((t.dtype(), t.shape()), (Dtype::F32, &[m, kb][..]));
        assert_eq!(f32s(t.data()), case.sfa);
        let t = st.tensor("sfb").unwrap();
        assert_eq!(
            (t.dtype(), t.shape()),
            (Dtype::F32, &[n.div_ceil(128), kb][..])
        );
        assert_eq!(f32s(t.data()), case.sfb);
        if with_c {
            let t = st.tensor("c").unwrap();
            assert_eq!((t.dtype(), t.shape()), (Dtype::F32, &[m, n][..]));
            assert_eq!(f32s(t.data()), c);
        }
    }
}

#[test]
fn dump_writer_rejects_wrong_lengths() {
    let a = [0u8; 6];
    let sfa = [1.0f32; 2];
    let b = [0u8; 9];
    let sfb = [1.0f32; 1];
    let ok = Fp8GemmTensors {
        m: 2,
        n: 3,
        k: 3,
        a: &a,
        sfa: &sfa,
        b: &b,
        sfb: &sfb,
        c: None,
    };
    let path = temp_path("lengths.safetensors");
    write_fp8_gemm_case(&path, &ok).unwrap();
    std::fs::remove_file(&path).unwrap();
    for bad in [
        Fp8GemmTensors { a: &a[..5], ..ok },
        Fp8GemmTensors {
            sfa: &sfa[..1],
            ..ok
        },
        Fp8GemmTensors { b: &b[..8], ..ok },
        Fp8GemmTensors { sfb: &[], ..ok },
        Fp8GemmTensors {
            c: Some(&[0.0; 5]),
            ..ok
        },
    ] {
        let e = write_fp8_gemm_case(&path, &bad).unwrap_err();
        assert!(matches!(e, scalegemm_verify::Error::Shape { .. }), "{e}");
        assert!(!path.exists());
    }
    let e = write_fp8_gemm_case("/nonexistent-dir/x.safetensors", &ok).unwrap_err();
    assert!(matches!(e, scalegemm_verify::Error::Io { .. }), "{e}");
}

#[test]
fn value_trees_shrink_toward_simple_specs() {
    // a value tree's fully simplified value is the plainest spec
    let mut r = runner(1);
    for _ in 0..20 {
        let mut t = value_spec().new_tree(&mut r).unwrap();
        while t.simplify() {}
        assert_eq!(t.current(), ValueSpec::plain(ValueDist::SmallInts));
    }
}
