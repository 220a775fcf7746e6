//! Property tests of the reference (`scalegemm-reference`) drawn from the shared
//! strategies of `scalegemm_verify::strategy`: quantization error, non-finite input,
//! GEMM outputs bit for bit against an exact oracle written here from the bit layouts
//! (BigInt sums, integer rounding: no call into the reference's codecs or rounding),
//! and scale-layout / packing round trips.
//!
//! Case counts keep the whole file at a few seconds in the dev profile on 2 cores;
//! `PROPTEST_CASES=N` replaces every count for a longer run.

use num_bigint::{BigInt, BigUint, Sign};
use proptest::prelude::*;
use proptest::sample::select;
use scalegemm_reference::gemm::{gemm, MatView, OutBuf, OutView};
use scalegemm_reference::quant::{
    dequantize, from_tma_aligned_mn_major, from_tma_aligned_packed_ue8m0, pack_e2m1, pack_ue8m0,
    per_block_cast, per_channel_cast, per_token_cast, tma_aligned_ld, to_tma_aligned_mn_major,
    to_tma_aligned_packed_ue8m0, transpose_packed_e2m1, ue8m0_codes_of, unpack_e2m1, unpack_ue8m0,
    Elem, Quantized, ScaleRound,
};
use scalegemm_reference::Error as RefError;
use scalegemm_verify::strategy::{
    code_spec, code_spec_with_nan, edge_dim, fill, fp8_gemm_case, fp8_gemm_case_with, gemm_case,
    matrix, scale_spec, value_spec, value_spec_non_finite, Fp8GemmCase, Matrix, ShapeCap,
    ValueDist, ValueSpec,
};

/// `n` cases, or `$PROPTEST_CASES` when set.
fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Independent decoding: values as exact integers times powers of two
// ---------------------------------------------------------------------------------------

/// `(m, e)` with `x = m·2^e` exactly, for finite f32 `x`.
fn f32_dyadic(x: f32) -> (i64, i64) {
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xFF) as i64;
    let man = (bits & 0x7F_FFFF) as i64;
    let (m, e) = if exp == 0 {
        (man, -149)
    } else {
        (man | 0x80_0000, exp - 150)
    };
    (if bits >> 31 == 1 { -m } else { m }, e)
}

/// An E4M3 code's value in units of 2^-9 (an integer), `None` for NaN (`S.1111.111`).
fn e4m3_units(code: u8) -> Option<i64> {
    let exp = (code >> 3) & 0xF;
    let man = (code & 7) as i64;
    if exp == 15 && man == 7 {
        return None;
    }
    // subnormal: man·2^-9; normal: (8 + man)·2^(exp - 10) = ((8 + man) << (exp - 1))·2^-9
    let mag = if exp == 0 {
        man
    } else {
        (8 + man) << (exp - 1)
    };
    Some(if code & 0x80 != 0 { -mag } else { mag })
}

/// An E2M1 code's value (low nibble; bit 3 is the sign).
fn e2m1_value(code: u8) -> f64 {
    let v = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0][(code & 7) as usize];
    if code & 8 != 0 {
        -v
    } else {
        v
    }
}

fn code_value(elem: Elem, code: u8) -> f64 {
    match elem {
        Elem::E4M3 => e4m3_units(code).map_or(f64::NAN, |u| u as f64 / 512.0),
        Elem::E2M1 => e2m1_value(code),
    }
}

/// `(mantissa bits, smallest normal exponent, largest finite)` of a format.
fn format_params(elem: Elem) -> (i32, i32, f64) {
    match elem {
        Elem::E4M3 => (3, -6, 448.0),
        Elem::E2M1 => (1, 0, 6.0),
    }
}

/// Spacing of `elem`'s values around the magnitude `t >= 0`.
fn format_ulp(elem: Elem, t: f64) -> f64 {
    let (man, emin, _) = format_params(elem);
    let e = if t > 0.0 {
        (t.log2().floor() as i32).max(emin)
    } else {
        emin
    };
    2f64.powi(e - man)
}

/// Round to nearest even in `elem`, saturating at its largest value (`t >= 0`, exact f64).
fn rne_format(elem: Elem, t: f64) -> f64 {
    let (_, _, max) = format_params(elem);
    let ulp = format_ulp(elem, t);
    ((t / ulp).round_ties_even() * ulp).min(max)
}

// ---------------------------------------------------------------------------------------
// Exact oracle for the 1D2D GEMM
// ---------------------------------------------------------------------------------------

/// Correctly rounded (to nearest, ties to even) value of `n·2^e` in a binary format with
/// `man_bits` stored mantissa bits, smallest normal exponent `emin` and largest finite
/// value `max` (±inf beyond), returned as f64 (exact). Zero is `+0`.
fn round_dyadic(n: &BigInt, e: i64, man_bits: i64, emin: i64, max: f64) -> f64 {
    let (sign, mag) = (n.sign(), n.magnitude());
    if sign == Sign::NoSign {
        return 0.0;
    }
    let top = mag.bits() as i64 - 1 + e;
    let q = (top - man_bits).max(emin - man_bits);
    let mant: BigUint = if q <= e {
        mag << (e - q) as usize
    } else {
        let s = (q - e) as usize;
        let mut m: BigUint = mag >> s;
        let rem = mag - (&m << s);
        let half = BigUint::from(1u8) << (s - 1);
        if rem > half || (rem == half && m.bit(0)) {
            m += 1u8;
        }
        m
    };
    let mant = u64::try_from(mant).expect("at most man_bits + 2 bits");
    // two exact steps, so that 2^q never overflows or underflows on its own
    let (q1, q2) = (q / 2, q - q / 2);
    let v = mant as f64 * 2f64.powi(q1 as i32) * 2f64.powi(q2 as i32);
    let v = if v > max { f64::INFINITY } else { v };
    if sign == Sign::Minus {
        -v
    } else {
        v
    }
}

const BF16_MAX: f64 = 3.3895313892515355e38; // (2 - 2^-7)·2^127

/// The exact value of `D[i, j] = C[i, j] + Σ_k A[i,k]·B[j,k]` (with scales) as
/// `n·2^e`, or `None` when a NaN code is involved.
fn exact_element(
    case: &Fp8GemmCase,
    c: Option<&[f32]>,
    i: usize,
    j: usize,
) -> Option<(BigInt, i64)> {
    let (n, k, kb) = (case.n, case.k, case.kb());
    let mut terms: Vec<(i128, i64)> = Vec::with_capacity(kb + 1);
    for blk in 0..kb {
        let mut p: i64 = 0; // exact: |units| <= 229,376, 128 products < 2^43
        for kk in blk * 128..((blk + 1) * 128).min(k) {
            p += e4m3_units(case.a[i * k + kk])? * e4m3_units(case.b[j * k + kk])?;
        }
        let (ma, ea) = f32_dyadic(case.sfa[i * kb + blk]);
        let (mb, eb) = f32_dyadic(case.sfb[(j / 128) * kb + blk]);
        terms.push((ma as i128 * mb as i128 * p as i128, ea + eb - 18));
    }
    if let Some(c) = c {
        let (mc, ec) = f32_dyadic(c[i * n + j]);
        terms.push((mc as i128, ec));
    }
    let emin = terms
        .iter()
        .filter(|t| t.0 != 0)
        .map(|t| t.1)
        .min()
        .unwrap_or(0);
    let mut sum = BigInt::from(0);
    for (m, e) in terms {
        if m != 0 {
            sum += BigInt::from(m) << (e - emin) as usize;
        }
    }
    Some((sum, emin))
}

/// The dequantized operands as f64 (exact), row-major `[rows, K]`.
fn dequant_1d2d(case: &Fp8GemmCase) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k, kb) = (case.m, case.n, case.k, case.kb());
    let v = |code: u8| e4m3_units(code).map_or(f64::NAN, |u| u as f64 / 512.0);
    let a = (0..m * k)
        .map(|x| v(case.a[x]) * case.sfa[(x / k) * kb + (x % k) / 128] as f64)
        .collect();
    let b = (0..n * k)
        .map(|x| v(case.b[x]) * case.sfb[(x / k / 128) * kb + (x % k) / 128] as f64)
        .collect();
    (a, b)
}

/// Runs the reference on `case` (with optional C) into BF16, F32 and F64 outputs and
/// checks every element: BF16 and F32 bit for bit against the oracle, F64 within the
/// documented bound `γ_{K+1}·(‖a‖₂‖b‖₂ + |c|)` of the exact value, and a naive f64
/// triple loop within twice that bound.
fn check_gemm(case: &Fp8GemmCase, c: Option<&[f32]>) -> Result<(), TestCaseError> {
    let (m, n, k) = (case.m, case.n, case.k);
    let a = case.a_operand().unwrap();
    let b = case.b_operand().unwrap();
    let cv = c.map(|c| MatView::k_major(c, m, n, n).unwrap());
    let mut d16 = vec![half::bf16::from_bits(0x5555); m * n];
    let mut d32 = vec![f32::from_bits(0x5555_5555); m * n];
    let mut d64 = vec![f64::from_bits(0x5555_5555_5555_5555); m * n];
    for out in [
        OutBuf::Bf16(&mut d16),
        OutBuf::F32(&mut d32),
        OutBuf::F64(&mut d64),
    ] {
        gemm(
            &a.into(),
            &b.into(),
            cv,
            &mut OutView::new(out, m, n, n).unwrap(),
        )
        .unwrap();
    }
    let (da, db) = dequant_1d2d(case);
    let u = f64::EPSILON / 2.0;
    let gamma = 1.01 * (k + 1) as f64 * u / (1.0 - (k + 1) as f64 * u);
    for i in 0..m {
        for j in 0..n {
            let x = i * n + j;
            let (got16, got32, got64) = (d16[x], d32[x], d64[x]);
            let Some((sum, e)) = exact_element(case, c, i, j) else {
                prop_assert!(
                    got16.is_nan() && got32.is_nan() && got64.is_nan(),
                    "[{i}, {j}]: NaN code, got {got16} {got32} {got64}"
                );
                continue;
            };
            let want16 = round_dyadic(&sum, e, 7, -126, BF16_MAX) as f32;
            let want32 = round_dyadic(&sum, e, 23, -126, f32::MAX as f64) as f32;
            prop_assert_eq!(
                got16.to_bits(),
                (want16.to_bits() >> 16) as u16,
                "BF16 [{}, {}]: got {}, exact {}",
                i,
                j,
                got16,
                want16
            );
            prop_assert_eq!(
                got32.to_bits(),
                want32.to_bits(),
                "F32 [{}, {}]: got {}, exact {}",
                i,
                j,
                got32,
                want32
            );
            let exact64 = round_dyadic(&sum, e, 52, -1022, f64::MAX);
            let (ar, br) = (&da[i * k..(i + 1) * k], &db[j * k..(j + 1) * k]);
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let cval = c.map_or(0.0, |c| c[x] as f64);
            let bound = gamma * (norm(ar) * norm(br) + cval.abs());
            // |exact64 - exact| <= ulp(exact)/2 on top of the bound
            let slack = exact64.abs() * u;
            prop_assert!(
                (got64 - exact64).abs() <= bound + slack,
                "F64 [{i}, {j}]: got {got64}, exact {exact64}, bound {bound}"
            );
            let naive: f64 = cval + ar.iter().zip(br).map(|(p, q)| p * q).sum::<f64>();
            prop_assert!(
                (naive - got64).abs() <= 2.0 * bound + slack,
                "naive [{i}, {j}]: naive {naive}, reference {got64}, bound {bound}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Quantization
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recipe {
    Token,
    Block,
    Channel,
}

const ROUNDS: [ScaleRound; 2] = [ScaleRound::Fp32, ScaleRound::Ue8m0];
const ELEMS: [Elem; 2] = [Elem::E4M3, Elem::E2M1];
const RECIPES: [Recipe; 3] = [Recipe::Token, Recipe::Block, Recipe::Channel];

/// The input of a cast: per-channel casts take the transpose (blocks run down the rows),
/// so the pinned columns of the boundary distributions become pinned rows.
fn cast_input(mat: &Matrix, recipe: Recipe) -> (Vec<f32>, usize, usize) {
    match recipe {
        Recipe::Channel => (mat.transposed(), mat.cols, mat.rows),
        _ => (mat.data.clone(), mat.rows, mat.cols),
    }
}

fn run_cast(
    recipe: Recipe,
    x: &[f32],
    rows: usize,
    cols: usize,
    g: usize,
    elem: Elem,
    round: ScaleRound,
) -> Result<Quantized, RefError> {
    match recipe {
        Recipe::Token => per_token_cast(x, rows, cols, g, elem, round),
        Recipe::Block => per_block_cast(x, rows, cols, g, elem, round),
        Recipe::Channel => per_channel_cast(x, rows, cols, g, elem, round),
    }
}

fn gran(recipe: Recipe, g: usize) -> (usize, usize) {
    match recipe {
        Recipe::Token => (1, g),
        Recipe::Block => (g, g),
        Recipe::Channel => (g, 1),
    }
}

/// The recipe's scale for a block's `amax`, computed independently: f32
/// `max(amax, 1e-4) / max_finite`, then for UE8M0 the smallest power of two >= it
/// (from the bits; the quotient is a normal f32 here).
fn expected_scale(amax: f32, elem: Elem, round: ScaleRound) -> f32 {
    let s = amax.max(1e-4) / format_params(elem).2 as f32;
    match round {
        ScaleRound::Fp32 => s,
        ScaleRound::Ue8m0 => {
            let bits = s.to_bits();
            let up = (bits & 0x7F_FFFF != 0) as u32;
            f32::from_bits(((bits >> 23) + up).min(254) << 23)
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every cast (per-token, per-block, per-channel; G 32 or 128; E4M3 or E2M1; FP32 or
    /// UE8M0 scales) on adversarial finite values: scales are the recipe's (finite,
    /// positive, powers of two for UE8M0), every code is valid, and every dequantized
    /// element is within half an ulp of the format (times the scale) of the input, plus
    /// the f32 rounding of `x·(1/scale)` (relative 2^-21); with a power-of-two scale the
    /// code is exactly the nearest-even one.
    #[test]
    fn cast_error_within_half_ulp(
        mat in matrix(300, 1088, 1 << 15, value_spec()),
        recipe in select(RECIPES.to_vec()),
        g in select(vec![128usize, 32]),
        elem in select(ELEMS.to_vec()),
        round in select(ROUNDS.to_vec()),
    ) {
        let (x, rows, cols) = cast_input(&mat, recipe);
        let q = run_cast(recipe, &x, rows, cols, g, elem, round).unwrap();
        let (gr, gc) = gran(recipe, g);
        prop_assert_eq!((q.rows, q.cols, q.gran), (rows, cols, (gr, gc)));
        prop_assert_eq!((q.scale_rows, q.scale_cols), (rows.div_ceil(gr), cols.div_ceil(gc)));
        // amax per block, independently
        let mut amax = vec![0f32; q.scales.len()];
        for (idx, v) in x.iter().enumerate() {
            let s = (idx / cols / gr) * q.scale_cols + (idx % cols) / gc;
            amax[s] = amax[s].max(v.abs());
        }
        for (s, (&scale, &am)) in q.scales.iter().zip(&amax).enumerate() {
            prop_assert!(scale.is_finite() && scale > 0.0, "scale {} = {}", s, scale);
            prop_assert_eq!(scale.to_bits(), expected_scale(am, elem, round).to_bits(),
                "scale {} for amax {}", s, am);
        }
        let deq = dequantize(&q).unwrap();
        for (idx, (&xv, &code)) in x.iter().zip(&q.codes).enumerate() {
            match elem {
                Elem::E4M3 => prop_assert!(code & 0x7F != 0x7F, "NaN code at {}", idx),
                Elem::E2M1 => prop_assert!(code <= 0xF, "E2M1 code {:#x} at {}", code, idx),
            }
            let s = q.scales[(idx / cols / gr) * q.scale_cols + (idx % cols) / gc] as f64;
            let t = (xv as f64).abs() / s;
            let got = code_value(elem, code) * s;
            prop_assert_eq!(got, deq[idx], "dequantize at {}", idx);
            let bound = s * (0.5 * format_ulp(elem, t * (1.0 + 2f64.powi(-21))) + t * 2f64.powi(-21));
            prop_assert!((got - xv as f64).abs() <= bound,
                "[{}, {}]: x = {}, scale {}, dequantized {}, bound {}",
                idx / cols, idx % cols, xv, s, got, bound);
            if s.log2().fract() == 0.0 {
                // x·(1/s) is exact (or far below the format's smallest subnormal)
                let want = rne_format(elem, t);
                prop_assert_eq!(code_value(elem, code).abs(), want,
                    "[{}, {}]: x = {}, scale {}: not the nearest-even code", idx / cols, idx % cols, xv, s);
            }
        }
    }

    /// A NaN or ±inf anywhere: every cast returns `NonFinite` naming that element.
    #[test]
    fn cast_rejects_non_finite(
        mat in matrix(300, 1088, 1 << 15, value_spec_non_finite()),
        recipe in select(RECIPES.to_vec()),
        g in select(vec![128usize, 32]),
        elem in select(ELEMS.to_vec()),
        round in select(ROUNDS.to_vec()),
    ) {
        let (x, rows, cols) = cast_input(&mat, recipe);
        let first = x.iter().position(|v| !v.is_finite()).expect("one planted");
        match run_cast(recipe, &x, rows, cols, g, elem, round) {
            Err(RefError::NonFinite { tensor, row, col, value }) => {
                prop_assert_eq!(tensor, "x");
                prop_assert_eq!((row, col), (first / cols, first % cols));
                prop_assert!(value.to_bits() == x[first].to_bits() || (value.is_nan() && x[first].is_nan()));
            }
            other => prop_assert!(false, "expected NonFinite, got {:?}", other),
        }
    }

    /// Arbitrary bit patterns (NaN and inf included, one element in ten non-finite on
    /// average) never panic: `NonFinite` for the first non-finite element, or a valid
    /// result.
    #[test]
    fn cast_arbitrary_bits_never_panic(
        (rows, cols, bits) in (1usize..=40, edge_dim(300)).prop_flat_map(|(r, c)| {
            let elem = prop_oneof![9 => any::<f32>().prop_filter("finite", |v| v.is_finite()).prop_map(f32::to_bits), 1 => any::<u32>()];
            (Just(r), Just(c), proptest::collection::vec(elem, r * c))
        }),
        recipe in select(RECIPES.to_vec()),
        g in select(vec![128usize, 32]),
        elem in select(ELEMS.to_vec()),
        round in select(ROUNDS.to_vec()),
    ) {
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let r = run_cast(recipe, &x, rows, cols, g, elem, round);
        match x.iter().position(|v| !v.is_finite()) {
            Some(first) => prop_assert!(
                matches!(r, Err(RefError::NonFinite { row, col, .. }) if (row, col) == (first / cols, first % cols)),
                "{:?}", r
            ),
            None => {
                let q = r.unwrap();
                prop_assert!(q.scales.iter().all(|s| s.is_finite() && *s > 0.0));
                prop_assert!(dequantize(&q).unwrap().iter().all(|v| v.is_finite()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------

/// An optional C for a case, drawn from the same seed.
fn c_for(m: usize, n: usize, seed: u64, with_c: bool) -> Option<Vec<f32>> {
    with_c.then(|| {
        let spec = ValueSpec::plain(ValueDist::HeavyTailed { log2_scale: 4 });
        fill(m, n, &spec, seed, 0xC)
    })
}

proptest! {
    #![proptest_config(cases(128))]

    /// Unquantized strategy cases, quantized with the 1D2D recipe (FP32 or UE8M0 scales)
    /// by the reference, multiplied by the reference: every BF16 and F32 output is the
    /// correctly rounded exact result, F64 within its documented bound.
    #[test]
    fn gemm_quantized_cases_exact(
        case in gemm_case(ShapeCap::CPU),
        round in select(ROUNDS.to_vec()),
        with_c in any::<bool>(),
    ) {
        let q = case.quantize_1d2d(round).unwrap();
        let c = c_for(case.m, case.n, case.desc.seed, with_c);
        check_gemm(&q, c.as_deref())?;
    }

    /// FP8 operands drawn directly, with scales from 1e-30 to 1e30, powers of two over
    /// the whole UE8M0 range and one huge scale: outputs overflow to ±inf and underflow
    /// to subnormals and zero exactly where the exact value does.
    #[test]
    fn gemm_scale_distributions_exact(
        case in fp8_gemm_case(ShapeCap::CPU),
        with_c in any::<bool>(),
    ) {
        let c = c_for(case.m, case.n, 7, with_c);
        check_gemm(&case, c.as_deref())?;
    }

    /// A NaN code in A (or B) makes exactly its row (or column) of D NaN.
    #[test]
    fn gemm_nan_code_propagates(
        case in prop_oneof![
            fp8_gemm_case_with(ShapeCap::CPU, code_spec_with_nan(), code_spec(), scale_spec(), scale_spec()),
            fp8_gemm_case_with(ShapeCap::CPU, code_spec(), code_spec_with_nan(), scale_spec(), scale_spec()),
        ],
    ) {
        check_gemm(&case, None)?;
    }
}

// ---------------------------------------------------------------------------------------
// Layouts and packing
// ---------------------------------------------------------------------------------------

/// `2^(code - 127)` as f32, from the bits.
fn ue8m0_value(code: u8) -> f32 {
    if code == 0 {
        f32::from_bits(0x0040_0000)
    } else {
        f32::from_bits((code as u32) << 23)
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// UE8M0 scales through DeepGEMM's packed TMA-aligned MN-major layout and back: the
    /// layout puts code `(b, i, 4w + t)` in byte `t` of word `b·ld·ceil(kb/4) + w·ld + i`
    /// with `ld` = mn rounded up to 4, zero padding; every step inverts.
    #[test]
    fn ue8m0_layout_round_trip(
        groups in 1usize..=3,
        mn in edge_dim(300),
        kb in 0usize..=13,
        seed in any::<u64>(),
    ) {
        let n = groups * mn * kb;
        let codes: Vec<u8> = (0..n as u64).map(|x| ((x.wrapping_mul(0x9E37_79B9) ^ seed) % 255) as u8).collect();
        let scales: Vec<f32> = codes.iter().map(|&c| ue8m0_value(c)).collect();
        prop_assert_eq!(ue8m0_codes_of(&scales).unwrap(), codes.clone());
        let packed = to_tma_aligned_packed_ue8m0(&scales, groups, mn, kb).unwrap();
        let (ld, words) = (mn.div_ceil(4) * 4, kb.div_ceil(4));
        prop_assert_eq!(tma_aligned_ld::<i32>(mn), ld);
        prop_assert_eq!(packed.len(), groups * words * ld);
        for b in 0..groups {
            for w in 0..words {
                for i in 0..ld {
                    let bytes = packed[b * ld * words + w * ld + i].to_le_bytes();
                    for (t, &byte) in bytes.iter().enumerate() {
                        let j = 4 * w + t;
                        let want = if i < mn && j < kb { codes[(b * mn + i) * kb + j] } else { 0 };
                        prop_assert_eq!(byte, want, "group {} row {} col {}", b, i, j);
                    }
                }
            }
        }
        let back = from_tma_aligned_packed_ue8m0(&packed, groups, mn, kb).unwrap();
        prop_assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            scales.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // row-major packing alone
        let rows = groups * mn;
        let p = pack_ue8m0(&codes, rows, kb).unwrap();
        prop_assert_eq!(unpack_ue8m0(&p, rows, kb).unwrap(), codes);
        // FP32 scales through the plain MN-major layout
        let t = to_tma_aligned_mn_major(&scales, groups, mn, kb).unwrap();
        prop_assert_eq!(from_tma_aligned_mn_major(&t, groups, mn, kb).unwrap(), scales);
    }

    /// The UE8M0 scales of real casts of strategy matrices pack and unpack to themselves.
    #[test]
    fn ue8m0_cast_scales_round_trip(
        mat in matrix(300, 1088, 1 << 15, value_spec()),
        recipe in select(RECIPES.to_vec()),
        g in select(vec![128usize, 32]),
    ) {
        let (x, rows, cols) = cast_input(&mat, recipe);
        let q = run_cast(recipe, &x, rows, cols, g, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
        let packed = to_tma_aligned_packed_ue8m0(&q.scales, 1, q.scale_rows, q.scale_cols).unwrap();
        let back = from_tma_aligned_packed_ue8m0(&packed, 1, q.scale_rows, q.scale_cols).unwrap();
        prop_assert_eq!(back, q.scales);
    }

    /// FP4 codes: pack/unpack is the identity, the packed transpose puts `(i, j)` at
    /// `(j, i)`, and transposing twice is the identity.
    #[test]
    fn fp4_pack_transpose_round_trip(
        rows in edge_dim(130).prop_map(|r| 2 * r.div_ceil(2)),
        cols in edge_dim(300).prop_map(|c| 2 * c.div_ceil(2)),
        seed in any::<u64>(),
    ) {
        let spec = ValueSpec::plain(ValueDist::Normal { log2_scale: 0 });
        let x = fill(rows, cols, &spec, seed, 0xF4);
        let q = per_token_cast(&x, rows, cols, 32, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
        let packed = pack_e2m1(&q.codes, rows, cols).unwrap();
        prop_assert_eq!(packed.len(), rows * cols / 2);
        prop_assert_eq!(&unpack_e2m1(&packed, rows, cols).unwrap(), &q.codes);
        let t = transpose_packed_e2m1(&packed, rows, cols).unwrap();
        let tc = unpack_e2m1(&t, cols, rows).unwrap();
        for i in 0..rows {
            for j in 0..cols {
                prop_assert_eq!(tc[j * rows + i], q.codes[i * cols + j]);
            }
        }
        prop_assert_eq!(transpose_packed_e2m1(&t, cols, rows).unwrap(), packed);
    }
}
