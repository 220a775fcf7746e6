//! Tests of `scalegemm_verify::metrics`: hand-computed values, the algebraic properties of
//! `calc_diff`, bound checks with leading dimensions, special values, shape errors.

use half::bf16;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_verify::metrics::{
    calc_diff, compare, compare_bf16, compare_f32, max_abs_error, max_rel_error, sqnr_db, Bound,
    Comparison,
};
use scalegemm_verify::Error;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-3.0..3.0)).collect()
}

/// Flat `[1, n]` comparison with a scalar bound.
fn flat(x: &[f64], y: &[f64], bound: f64) -> Comparison {
    compare(x, x.len(), y, y.len(), [1, x.len()], &Bound::Scalar(bound)).unwrap()
}

// ---------------------------------------------------------------------------------------
// Hand-computed values
// ---------------------------------------------------------------------------------------

#[test]
fn calc_diff_hand_computed() {
    // Σxy = 1 + 4 + 12 = 17, Σx² = 14, Σy² = 21: 1 − 34/35 = 1/35 (= ‖x−y‖² / 35).
    let x = [1.0, 2.0, 3.0];
    let y = [1.0, 2.0, 4.0];
    assert!(close(calc_diff(&x, &y).unwrap(), 1.0 / 35.0, 1e-15));
    // Orthogonal: 1. Opposite: 2. One side zero: 1.
    assert_eq!(calc_diff(&[1.0, 0.0], &[0.0, 1.0]).unwrap(), 1.0);
    assert_eq!(calc_diff(&[1.0, -2.0], &[-1.0, 2.0]).unwrap(), 2.0);
    assert_eq!(calc_diff(&[0.0, 0.0], &[1.0, 2.0]).unwrap(), 1.0);
    // x = (3, 4), y = (4, 3): Σxy = 24, Σx² + Σy² = 50: 1 − 48/50 = 0.04.
    assert!(close(
        calc_diff(&[3.0, 4.0], &[4.0, 3.0]).unwrap(),
        0.04,
        1e-15
    ));
}

#[test]
fn calc_diff_all_zero_and_empty_is_zero() {
    assert_eq!(
        calc_diff(&[0.0, 0.0, -0.0], &[0.0, -0.0, 0.0]).unwrap(),
        0.0
    );
    assert_eq!(calc_diff(&[], &[]).unwrap(), 0.0);
}

#[test]
fn calc_diff_nonfinite_is_nan() {
    assert!(calc_diff(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap().is_nan());
    assert!(calc_diff(&[1.0, f64::INFINITY], &[1.0, f64::INFINITY])
        .unwrap()
        .is_nan());
    assert!(calc_diff(&[f64::NAN], &[f64::NAN]).unwrap().is_nan());
}

#[test]
fn calc_diff_survives_extreme_magnitudes() {
    // Squares of 1e-300 underflow to 0 and squares of 1e300 overflow: the rescaling by a
    // power of two keeps the answer 1/35.
    for s in [1e-300, 1e-160, 1e160, 1e300, 5e-324 * 4.0] {
        let x = [1.0 * s, 2.0 * s, 3.0 * s];
        let y = [1.0 * s, 2.0 * s, 4.0 * s];
        assert!(
            close(calc_diff(&x, &y).unwrap(), 1.0 / 35.0, 1e-12),
            "scale {s:e}: {}",
            calc_diff(&x, &y).unwrap()
        );
        assert!(close(sqnr_db(&x, &y).unwrap(), 10.0 * 21f64.log10(), 1e-12));
    }
}

#[test]
fn sqnr_hand_computed() {
    // Σy² = 21, Σ(x−y)² = 1.
    let x = [1.0, 2.0, 3.0];
    let y = [1.0, 2.0, 4.0];
    assert!(close(sqnr_db(&x, &y).unwrap(), 10.0 * 21f64.log10(), 1e-15));
    assert!(close(
        sqnr_db(&x, &y).unwrap(),
        13.222_192_947_339_193,
        1e-14
    ));
    // Noise power = signal power: 0 dB; 10× less noise power: 10 dB.
    assert_eq!(sqnr_db(&[0.0, 0.0], &[1.0, 0.0]).unwrap(), 0.0);
    assert!(close(
        sqnr_db(&[1.1, 0.0, 0.0], &[1.0, 0.0, 0.0]).unwrap(),
        20.0,
        1e-12
    ));
    assert!(close(
        sqnr_db(&[1.0, 0.0], &[0.0, 1.0]).unwrap(),
        -10.0 * 2f64.log10(),
        1e-15
    ));
    // Identical (zeros included): +inf; zero reference, nonzero candidate: −inf.
    assert_eq!(sqnr_db(&x, &x).unwrap(), f64::INFINITY);
    assert_eq!(sqnr_db(&[0.0], &[0.0]).unwrap(), f64::INFINITY);
    assert_eq!(sqnr_db(&[1.0], &[0.0]).unwrap(), f64::NEG_INFINITY);
    assert!(sqnr_db(&[f64::NAN], &[1.0]).unwrap().is_nan());
}

#[test]
fn max_abs_and_rel_hand_computed() {
    let x = [1.0, 2.5, -3.0, 10.0];
    let y = [1.0, 2.0, -2.0, 9.0];
    assert_eq!(max_abs_error(&x, &y).unwrap(), 1.0); // |−3 − (−2)| and |10 − 9|
    assert_eq!(max_rel_error(&x, &y).unwrap(), 0.5); // 1 / |−2|
    assert_eq!(max_abs_error(&[], &[]).unwrap(), 0.0);
    assert_eq!(max_rel_error(&[], &[]).unwrap(), 0.0);
    // Zero reference: 0 if the candidate is zero, +inf otherwise.
    assert_eq!(max_rel_error(&[0.0, 1.0], &[0.0, 1.0]).unwrap(), 0.0);
    assert_eq!(max_rel_error(&[-0.0], &[0.0]).unwrap(), 0.0);
    assert_eq!(max_rel_error(&[1e-30], &[0.0]).unwrap(), f64::INFINITY);
    // Special values: agreement 0, mismatch +inf (never NaN).
    assert_eq!(
        max_abs_error(&[f64::NAN, f64::INFINITY], &[f64::NAN, f64::INFINITY]).unwrap(),
        0.0
    );
    assert_eq!(max_abs_error(&[1.0], &[f64::NAN]).unwrap(), f64::INFINITY);
    assert_eq!(
        max_rel_error(&[1.0], &[f64::INFINITY]).unwrap(),
        f64::INFINITY
    );
    assert_eq!(max_rel_error(&[1.0], &[f64::NAN]).unwrap(), f64::INFINITY);
}

/// Asserts that `r` is the shape error of the flat metric `what` for a candidate of
/// `x_len` and a reference of `y_len` elements.
fn assert_len_error<T: std::fmt::Debug>(
    r: Result<T, Error>,
    what: &str,
    x_len: usize,
    y_len: usize,
) {
    match r {
        Err(Error::Shape {
            tensor,
            expected,
            got,
        }) => {
            assert_eq!(tensor, format!("{what}: reference"));
            assert!(
                expected.starts_with(&format!("{x_len} elements")),
                "{expected}"
            );
            assert_eq!(got, format!("{y_len} elements"));
        }
        other => panic!("{what}: expected Error::Shape, got {other:?}"),
    }
}

#[test]
fn calc_diff_errors_on_length_mismatch() {
    assert_len_error(calc_diff(&[1.0, 2.0], &[1.0]), "calc_diff", 2, 1);
    assert_len_error(calc_diff(&[], &[1.0]), "calc_diff", 0, 1);
}

#[test]
fn sqnr_db_errors_on_length_mismatch() {
    assert_len_error(sqnr_db(&[1.0], &[1.0, 2.0, 3.0]), "sqnr_db", 1, 3);
}

#[test]
fn max_abs_error_errors_on_length_mismatch() {
    assert_len_error(max_abs_error(&[1.0, 2.0], &[1.0]), "max_abs_error", 2, 1);
}

#[test]
fn max_rel_error_errors_on_length_mismatch() {
    assert_len_error(max_rel_error(&[1.0, 2.0], &[]), "max_rel_error", 2, 0);
    // The message names the function and both lengths.
    let msg = max_rel_error(&[1.0, 2.0], &[]).unwrap_err().to_string();
    assert!(
        msg.contains("max_rel_error") && msg.contains('2') && msg.contains('0'),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// Properties of calc_diff on random data
// ---------------------------------------------------------------------------------------

#[test]
fn calc_diff_identities() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for n in [1, 2, 17, 1000, 100_003] {
        let x = random_vec(&mut rng, n);
        let y: Vec<f64> = x
            .iter()
            .map(|v| v + rng.random_range(-0.01..0.01))
            .collect();
        let neg: Vec<f64> = x.iter().map(|v| -v).collect();
        assert_eq!(calc_diff(&x, &x).unwrap(), 0.0, "n = {n}");
        assert_eq!(calc_diff(&x, &neg).unwrap(), 2.0, "n = {n}");
        assert_eq!(
            calc_diff(&x, &y).unwrap(),
            calc_diff(&y, &x).unwrap(),
            "symmetry, n = {n}"
        );
        let d = calc_diff(&x, &y).unwrap();
        // Power-of-two scaling is exact, so is the invariance.
        for s in [0.25, 8.0, 2f64.powi(-40)] {
            let xs: Vec<f64> = x.iter().map(|v| v * s).collect();
            let ys: Vec<f64> = y.iter().map(|v| v * s).collect();
            assert_eq!(calc_diff(&xs, &ys).unwrap(), d, "scale {s}, n = {n}");
        }
        // Other factors: equal up to rounding of the products (absolute ~1e-16).
        for a in [3.7, -0.013, 1e5] {
            let xs: Vec<f64> = x.iter().map(|v| v * a).collect();
            let ys: Vec<f64> = y.iter().map(|v| v * a).collect();
            let ds = calc_diff(&xs, &ys).unwrap();
            assert!((ds - d).abs() < 1e-14, "a = {a}, n = {n}: {ds} vs {d}");
        }
        // The equivalent form ‖x − y‖² / (‖x‖² + ‖y‖²).
        let num: f64 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f64 = x.iter().chain(&y).map(|a| a * a).sum();
        assert!(
            (d - num / den).abs() < 1e-14,
            "n = {n}: {d} vs {}",
            num / den
        );
    }
}

#[test]
fn calc_diff_compensated_sum_keeps_precision() {
    // One large element followed by many tiny ones, where a plain running sum drops the
    // tiny contributions: x = (1, ε, ε, …), y = (1, 0, 0, …) with n ε² ≈ 1e-12.
    let n = 1_000_000;
    let eps = 1e-9;
    let mut x = vec![eps; n + 1];
    let mut y = vec![0.0; n + 1];
    x[0] = 1.0;
    y[0] = 1.0;
    // ‖x−y‖² = n ε², ‖x‖² + ‖y‖² = 2 + n ε².
    let expect = (n as f64 * eps * eps) / (2.0 + n as f64 * eps * eps);
    let got = calc_diff(&x, &y).unwrap();
    assert!(
        (got - expect).abs() < 1e-3 * expect,
        "got {got:e}, expected {expect:e}"
    );
}

// ---------------------------------------------------------------------------------------
// compare(): bound checks, coordinates, leading dimensions
// ---------------------------------------------------------------------------------------

/// A [3, 4] reference with ld_y = 5, candidate with ld_x = 6; padding filled with garbage
/// that must never be read as data.
fn strided_case() -> (Vec<f64>, Vec<f64>) {
    let (rows, cols, ld_x, ld_y) = (3, 4, 6, 5);
    let mut y = vec![f64::NAN; (rows - 1) * ld_y + cols];
    let mut x = vec![1e30; rows * ld_x]; // longer than needed: allowed
    for r in 0..rows {
        for c in 0..cols {
            let v = (r * cols + c) as f64 + 1.0;
            y[r * ld_y + c] = v;
            x[r * ld_x + c] = v;
        }
    }
    x[ld_x + 2] += 1.0; // (1, 2): diff 1
    x[2 * ld_x] -= 3.0; // (2, 0): diff 3
    x[2 * ld_x + 3] += 0.625; // (2, 3): diff 0.625
    x[ld_x + 1] += 0.25; // (1, 1): diff 0.25, inside
    (x, y)
}

#[test]
fn first_and_worst_mismatch_with_leading_dimensions() {
    let (x, y) = strided_case();
    let r = compare(&x, 6, &y, 5, [3, 4], &Bound::Scalar(0.5)).unwrap();
    assert_eq!((r.rows, r.cols, r.len()), (3, 4, 12));
    assert_eq!(r.outside_bound, 3);
    assert!(!r.within_bound());
    let first = r.first_mismatch.unwrap();
    assert_eq!((first.row, first.col), (1, 2));
    assert_eq!((first.candidate, first.reference), (8.0, 7.0));
    assert_eq!((first.diff, first.bound), (1.0, 0.5));
    assert_eq!(first.ratio(), 2.0);
    let worst = r.worst.unwrap();
    assert_eq!(
        (worst.row, worst.col, worst.diff, worst.ratio()),
        (2, 0, 3.0, 6.0)
    );
    assert_eq!((r.max_abs, r.max_abs_at), (3.0, Some((2, 0))));
    assert_eq!((r.max_rel, r.max_rel_at), (1.0 / 3.0, Some((2, 0))));
    assert_eq!(
        r.nan_mismatches + r.inf_mismatches + r.nonfinite_agreements,
        0
    );

    // The global numbers equal the flat functions on the logical elements, bit for bit.
    let take = |v: &[f64], ld: usize| -> Vec<f64> {
        (0..3)
            .flat_map(|r| v[r * ld..r * ld + 4].to_vec())
            .collect()
    };
    let (xf, yf) = (take(&x, 6), take(&y, 5));
    assert_eq!(r.calc_diff, calc_diff(&xf, &yf).unwrap());
    assert_eq!(r.sqnr_db, sqnr_db(&xf, &yf).unwrap());
    assert_eq!(r.finite_calc_diff, r.calc_diff);
    assert_eq!(r.max_abs, max_abs_error(&xf, &yf).unwrap());
    assert_eq!(r.max_rel, max_rel_error(&xf, &yf).unwrap());
    // Σ(x−y)² = 1 + 9 + 0.390625 + 0.0625.
    let dd = 1.0 + 9.0 + 0.390625 + 0.0625;
    let yy: f64 = (1..=12).map(|v| (v * v) as f64).sum();
    assert!(close(r.sqnr_db, 10.0 * (yy / dd).log10(), 1e-14));

    let line = r.to_string();
    assert!(line.starts_with("[3x4] calc_diff "), "{line}");
    assert!(line.contains("outside 3/12"), "{line}");
    assert!(line.contains("first@(1,2)"), "{line}");
    assert!(line.contains("worst 6.000x@(2,0)"), "{line}");
    println!("{line}");
}

#[test]
fn per_element_closure_and_tolerance_bounds() {
    let (x, y) = strided_case();
    // Per-element bounds with their own leading dimension 7; (1, 2) gets a loose bound.
    let mut b = vec![0.5; 2 * 7 + 4];
    b[7 + 2] = 1.5;
    b[7 + 1] = 0.0; // (1, 1): diff 0.25 > 0 → outside now, and first
    let r = compare(
        &x,
        6,
        &y,
        5,
        [3, 4],
        &Bound::PerElement { values: &b, ld: 7 },
    )
    .unwrap();
    assert_eq!(r.outside_bound, 3);
    let first = r.first_mismatch.unwrap();
    assert_eq!((first.row, first.col, first.bound), (1, 1, 0.0));
    let worst = r.worst.unwrap();
    assert_eq!((worst.row, worst.col), (1, 1)); // 0.25 / 0 = inf
    assert_eq!(worst.ratio(), f64::INFINITY);

    // A closure of (row, col, reference): bound 1 on row 2, 0.5 elsewhere.
    let f = |r: usize, _c: usize, _y: f64| if r == 2 { 1.0 } else { 0.5 };
    let r = compare(&x, 6, &y, 5, [3, 4], &Bound::Fn(&f)).unwrap();
    assert_eq!(r.outside_bound, 2); // (1, 2) and (2, 0)
    assert_eq!(r.worst.unwrap().ratio(), 3.0);

    // numpy.isclose-style: atol + rtol |y|. (2, 0) has y = 9, diff 3: 0.1 + 0.3·9 = 2.8.
    let tol = Bound::Tolerance {
        atol: 0.1,
        rtol: 0.3,
    };
    let r = compare(&x, 6, &y, 5, [3, 4], &tol).unwrap();
    // (1, 2): y = 7, bound 2.2, diff 1: in. (2, 3): y = 12, diff 0.625: in.
    assert_eq!(r.outside_bound, 1);
    let first = r.first_mismatch.unwrap();
    assert_eq!((first.row, first.col), (2, 0));
    assert!(close(first.bound, 2.8, 1e-15));

    // An infinite bound accepts every finite difference.
    let r = compare(&x, 6, &y, 5, [3, 4], &Bound::Scalar(f64::INFINITY)).unwrap();
    assert!(r.within_bound());
    assert_eq!(r.worst.unwrap().ratio(), 0.0);
}

#[test]
fn exact_match_report() {
    let x = [1.5, -2.0, 0.0, 4.0];
    let r = compare(&x, 2, &x, 2, [2, 2], &Bound::Scalar(0.0)).unwrap();
    assert_eq!(r.calc_diff, 0.0);
    assert_eq!(r.sqnr_db, f64::INFINITY);
    assert_eq!((r.max_abs, r.max_rel, r.outside_bound), (0.0, 0.0, 0));
    assert_eq!(r.first_mismatch, None);
    let w = r.worst.unwrap();
    assert_eq!((w.row, w.col, w.ratio()), (0, 0, 0.0));
    assert!(r.within_bound());
}

#[test]
fn empty_shapes_are_fine() {
    for shape in [[0, 5], [4, 0], [0, 0]] {
        let r = compare(&[], 0, &[], 0, shape, &Bound::Scalar(1.0)).unwrap();
        assert!(r.is_empty());
        assert_eq!((r.calc_diff, r.max_abs, r.outside_bound), (0.0, 0.0, 0));
        assert_eq!(
            (r.worst, r.first_mismatch, r.max_abs_at),
            (None, None, None)
        );
    }
}

#[test]
fn zero_cols_with_rows_is_empty() {
    // rows > 0 with cols == 0 and ld >= 1: nothing is read (an early empty result), even
    // with empty slices and a zero bound.
    let r = compare(&[], 1, &[], 1, [10, 0], &Bound::Scalar(0.0)).unwrap();
    assert!(r.is_empty());
    assert_eq!((r.rows, r.cols, r.len()), (10, 0, 0));
    assert_eq!((r.calc_diff, r.finite_calc_diff), (0.0, 0.0));
    assert_eq!(
        (r.sqnr_db, r.finite_sqnr_db),
        (f64::INFINITY, f64::INFINITY)
    );
    assert_eq!((r.max_abs, r.max_rel, r.outside_bound), (0.0, 0.0, 0));
    assert_eq!(
        (r.worst, r.first_mismatch, r.max_abs_at, r.max_rel_at),
        (None, None, None, None)
    );
    assert_eq!(
        (r.nan_mismatches, r.inf_mismatches, r.nonfinite_agreements),
        (0, 0, 0)
    );
    assert!(r.within_bound());
    let r32 = compare_f32(&[], 1, &[], 1, [10, 0], &Bound::Scalar(0.0)).unwrap();
    assert_eq!(r32, r);
    let r16 = compare_bf16(&[], 1, &[], 1, [10, 0], &Bound::Scalar(0.0)).unwrap();
    assert_eq!(r16, r);
}

#[test]
fn nan_and_inf_mismatch_counting() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    // (NaN, NaN) agree; (1, NaN) NaN mismatch; (inf, inf) agree; (−inf, inf) inf
    // mismatch; (NaN, 1) NaN mismatch; (inf, 3) inf mismatch; (2, 2) finite; (−inf, −inf)
    // agree; (5, −inf) inf mismatch; (3, 2.5) finite.
    let x = [nan, 1.0, inf, -inf, nan, inf, 2.0, -inf, 5.0, 3.0];
    let y = [nan, nan, inf, inf, 1.0, 3.0, 2.0, -inf, -inf, 2.5];
    let r = compare(&x, 5, &y, 5, [2, 5], &Bound::Scalar(inf)).unwrap();
    assert_eq!(r.nan_mismatches, 2);
    assert_eq!(r.inf_mismatches, 3);
    assert_eq!(r.nonfinite_agreements, 3);
    // Mismatches are outside even an infinite bound; agreements are not.
    assert_eq!(r.outside_bound, 5);
    let first = r.first_mismatch.unwrap();
    assert_eq!((first.row, first.col, first.diff), (0, 1, inf));
    assert_eq!((r.max_abs, r.max_abs_at), (inf, Some((0, 1))));
    assert_eq!((r.max_rel, r.max_rel_at), (inf, Some((0, 1))));
    let w = r.worst.unwrap();
    assert_eq!((w.row, w.col, w.ratio()), (0, 1, inf));
    // Global metrics are NaN; over the finite pairs (2, 2) and (3, 2.5) they are not.
    assert!(r.calc_diff.is_nan() && r.sqnr_db.is_nan());
    let fd = calc_diff(&[2.0, 3.0], &[2.0, 2.5]).unwrap();
    assert_eq!(r.finite_calc_diff, fd);
    assert_eq!(r.finite_sqnr_db, sqnr_db(&[2.0, 3.0], &[2.0, 2.5]).unwrap());
    let line = r.to_string();
    assert!(
        line.contains("nan_mismatch 2 inf_mismatch 3 nonfinite_agree 3"),
        "{line}"
    );
    println!("{line}");

    // Only agreements: no error at all, but calc_diff is still NaN (DeepGEMM's formula).
    let r = flat(&[nan, inf, 1.0], &[nan, inf, 1.0], 0.0);
    assert_eq!(
        (r.outside_bound, r.nonfinite_agreements, r.max_abs),
        (0, 2, 0.0)
    );
    assert!(r.calc_diff.is_nan());
    assert_eq!(r.finite_calc_diff, 0.0);
}

#[test]
fn f32_and_bf16_candidates_widen_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let y = random_vec(&mut rng, 64);
    let x32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let x16: Vec<bf16> = y.iter().map(|&v| bf16::from_f64(v)).collect();
    let w32: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let w16: Vec<f64> = x16.iter().map(|v| v.to_f64()).collect();
    let b = Bound::Scalar(1e-3);
    let r32 = compare_f32(&x32, 8, &y, 8, [8, 8], &b).unwrap();
    let r16 = compare_bf16(&x16, 8, &y, 8, [8, 8], &b).unwrap();
    assert_eq!(r32, compare(&w32, 8, &y, 8, [8, 8], &b).unwrap());
    assert_eq!(r16, compare(&w16, 8, &y, 8, [8, 8], &b).unwrap());
    assert!(r32.within_bound() && r32.calc_diff < 1e-14);
    assert!(r16.calc_diff > 1e-7 && r16.calc_diff < 1e-4, "{r16}");
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn bad_shapes_and_bounds_are_errors() {
    let v = vec![0.0; 12];
    let s = Bound::Scalar(1.0);
    // ld < cols.
    let e = compare(&v, 3, &v, 4, [3, 4], &s).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Stride {
                tensor: "candidate",
                ..
            }
        ),
        "{e}"
    );
    let e = compare(&v, 4, &v, 2, [3, 4], &s).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Stride {
                tensor: "reference",
                ..
            }
        ),
        "{e}"
    );
    // Too short for (rows − 1)·ld + cols = 2·5 + 4 = 14.
    let e = compare(&v, 5, &v, 4, [3, 4], &s).unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref tensor, .. } if tensor == "candidate"),
        "{e}"
    );
    assert!(e.to_string().contains("at least 14"), "{e}");
    let e = compare(&v, 4, &v[..11], 4, [3, 4], &s).unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref tensor, .. } if tensor == "reference"),
        "{e}"
    );
    // Overflowing span.
    let e = compare(&v, usize::MAX, &v, 4, [3, 4], &s).unwrap_err();
    assert!(matches!(e, Error::Stride { .. }), "{e}");
    // Per-element bound too short / wrong ld.
    let b = vec![1.0; 11];
    let e = compare(
        &v,
        4,
        &v,
        4,
        [3, 4],
        &Bound::PerElement { values: &b, ld: 4 },
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref tensor, .. } if tensor == "bound"),
        "{e}"
    );
    let e = compare(
        &v,
        4,
        &v,
        4,
        [3, 4],
        &Bound::PerElement { values: &b, ld: 3 },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Stride {
                tensor: "bound",
                ..
            }
        ),
        "{e}"
    );
    // Bad bound values.
    for bad in [-1.0, f64::NAN] {
        let e = compare(&v, 4, &v, 4, [3, 4], &Bound::Scalar(bad)).unwrap_err();
        assert!(matches!(e, Error::Argument { name: "bound", .. }), "{e}");
        let e = compare(
            &v,
            4,
            &v,
            4,
            [3, 4],
            &Bound::Tolerance {
                atol: bad,
                rtol: 0.0,
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Argument { name: "atol", .. }), "{e}");
        let e = compare(
            &v,
            4,
            &v,
            4,
            [3, 4],
            &Bound::Tolerance {
                atol: 0.0,
                rtol: bad,
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Argument { name: "rtol", .. }), "{e}");
    }
    let e = compare(
        &v,
        4,
        &v,
        4,
        [3, 4],
        &Bound::Tolerance {
            atol: f64::INFINITY,
            rtol: 0.0,
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Argument { name: "atol", .. }), "{e}");
    let mut b = vec![1.0; 12];
    b[6] = f64::NAN; // (1, 2)
    b[9] = -0.5;
    let e = compare(
        &v,
        4,
        &v,
        4,
        [3, 4],
        &Bound::PerElement { values: &b, ld: 4 },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Bound { row: 1, col: 2, .. }), "{e}");
    let f = |r: usize, c: usize, _: f64| if (r, c) == (2, 1) { -1.0 } else { 0.0 };
    let e = compare(&v, 4, &v, 4, [3, 4], &Bound::Fn(&f)).unwrap_err();
    assert!(
        matches!(e, Error::Bound { row: 2, col: 1, value } if value == -1.0),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn naive_calc_diff(x: &[f64], y: &[f64]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = x.iter().chain(y).map(|a| a * a).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// calc_diff is in [0, 2] (up to rounding), symmetric, invariant under power-of-two
    /// scaling, equal to ‖x−y‖²/(‖x‖²+‖y‖²), and compare() reports the same number.
    #[test]
    fn calc_diff_properties(
        pairs in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 1..200),
        k in -30i32..30,
    ) {
        let (x, y): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let d = calc_diff(&x, &y).unwrap();
        prop_assert!((-1e-12..=2.0 + 1e-12).contains(&d), "{}", d);
        prop_assert_eq!(d, calc_diff(&y, &x).unwrap());
        let s = 2f64.powi(k);
        let xs: Vec<f64> = x.iter().map(|v| v * s).collect();
        let ys: Vec<f64> = y.iter().map(|v| v * s).collect();
        prop_assert_eq!(calc_diff(&xs, &ys).unwrap(), d);
        prop_assert!((d - naive_calc_diff(&x, &y)).abs() < 1e-12);
        let r = compare(&x, x.len(), &y, y.len(), [1, x.len()], &Bound::Scalar(0.0)).unwrap();
        prop_assert_eq!(r.calc_diff, d);
    }

    /// The bound check over a strided matrix agrees with a naive scan: count, first
    /// (row-major), worst ratio, max abs.
    #[test]
    fn bound_check_matches_naive_scan(
        rows in 1usize..8,
        cols in 1usize..8,
        pad_x in 0usize..3,
        pad_y in 0usize..3,
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (ld_x, ld_y) = (cols + pad_x, cols + pad_y);
        let x: Vec<f64> = (0..rows * ld_x).map(|_| rng.random_range(-2.0..2.0)).collect();
        let y: Vec<f64> = (0..rows * ld_y).map(|_| rng.random_range(-2.0..2.0)).collect();
        let bounds: Vec<f64> = (0..rows * cols).map(|_| rng.random_range(0.0..2.0)).collect();
        let r = compare(&x, ld_x, &y, ld_y, [rows, cols],
            &Bound::PerElement { values: &bounds, ld: cols }).unwrap();
        let mut count = 0;
        let mut first = None;
        let mut worst = (f64::NEG_INFINITY, (0, 0));
        let mut max_abs = 0.0f64;
        for i in 0..rows {
            for j in 0..cols {
                let d = (x[i * ld_x + j] - y[i * ld_y + j]).abs();
                let b = bounds[i * cols + j];
                if d > b {
                    count += 1;
                    first.get_or_insert((i, j));
                }
                let ratio = if d == 0.0 { 0.0 } else { d / b };
                if ratio > worst.0 {
                    worst = (ratio, (i, j));
                }
                max_abs = max_abs.max(d);
            }
        }
        prop_assert_eq!(r.outside_bound, count);
        prop_assert_eq!(r.first_mismatch.map(|e| (e.row, e.col)), first);
        let w = r.worst.unwrap();
        prop_assert_eq!(((w.row, w.col), w.ratio()), (worst.1, worst.0));
        prop_assert_eq!(r.max_abs, max_abs);
    }
}
