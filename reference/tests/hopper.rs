//! Tests of the Hopper `wgmma` accumulation model (`scalegemm_reference::hopper`):
//! hand-worked single steps, an independent f64 re-derivation of the MMA-Sim rules, the
//! published error behaviour with and without promotion, and the error bound.

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_reference::format::{bf16 as bf16_fmt, e4m3};
use scalegemm_reference::gemm::{
    gemm, Fp8Operand, Fp8Recipe, MatView, OutBuf, OutView, Scales, FP8_GRAN_K,
};
use scalegemm_reference::hopper::*;
use scalegemm_reference::Error;

const NAN_BITS: u32 = 0x7FFF_FFFF;

/// E4M3 code of an exactly representable value.
fn c8(x: f32) -> u8 {
    let c = e4m3::encode(x);
    assert_eq!(e4m3::decode(c), x, "{x} is not an E4M3 value");
    c
}

fn p2(e: i32) -> f32 {
    2f32.powi(e)
}

/// A step with the listed products `a[i]·b[i]` and zeros elsewhere.
fn step(acc: f32, pairs: &[(f32, f32)]) -> f32 {
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    for (i, &(x, y)) in pairs.iter().enumerate() {
        a[i] = c8(x);
        b[i] = c8(y);
    }
    fp8_mma_step(acc, &a, &b)
}

#[test]
fn fp8_step_same_sign() {
    assert_eq!(step(0.0, &[(1.0, 1.0); 32]), 32.0);
    assert_eq!(step(1.0, &[(1.0, 1.0); 32]), 33.0);
    assert_eq!(step(0.0, &[(448.0, 448.0); 32]), 32.0 * 200704.0);
    // 31 + 2^-12 is aligned exactly (quantum 2^-13 at E = 0), then truncated to 13
    // mantissa bits at exponent 4 (quantum 2^-9): toward zero, either sign.
    let mut v = vec![(1.0, 1.0); 31];
    v.push((p2(-6), p2(-6)));
    assert_eq!(step(0.0, &v), 31.0);
    v.iter_mut().for_each(|p| p.0 = -p.0);
    assert_eq!(step(0.0, &v), -31.0);
    // 1 + 2^-12 + 2^-13 fits 13 mantissa bits; 2 + 2^-13 does not and loses 2^-13
    assert_eq!(
        step(1.0, &[(p2(-6), p2(-6)), (p2(-6), p2(-7))]),
        1.0 + p2(-12) + p2(-13)
    );
    assert_eq!(step(0.0, &[(1.0, 1.0), (1.0, 1.0), (p2(-6), p2(-7))]), 2.0);
}

#[test]
fn fp8_step_far_below_is_truncated_away() {
    // acc = 1 sets E = 0; 2^-14 products are below the 2^-13 quantum: all lost.
    assert_eq!(step(1.0, &[(p2(-7), p2(-7)); 32]), 1.0); // exact: 1 + 2^-9
    assert_eq!(step(1.0, &[(p2(-6), p2(-6))]), 1.0 + p2(-12)); // 2^-12 is kept
                                                               // the accumulator takes part in the max exponent: 1024 sets E = 10, quantum 2^-3
    assert_eq!(step(1024.0, &[(p2(-6), 1.0); 32]), 1024.0); // exact: 1024.5
    assert_eq!(step(1024.0, &[(1.0, 1.0); 32]), 1056.0);
    // a product far above truncates the accumulator: at E = 16 the quantum is 8, so
    // an accumulator of 1 + 2^-10 is lost entirely, and 15 becomes 8 (kept by the
    // final truncation at exponent 16; at exponent 17 it would be lost again)
    assert_eq!(step(1.0 + p2(-10), &[(448.0, 448.0)]), 200704.0);
    assert_eq!(step(15.0, &[(256.0, 256.0)]), 65544.0);
    assert_eq!(step(15.0, &[(448.0, 448.0)]), 200704.0);
    // the accumulator itself is cut to 13 fraction bits even with no products
    assert_eq!(step(1.0 + p2(-20), &[]), 1.0);
    assert_eq!(step(-(1.0 + p2(-20)), &[]), -1.0);
    assert_eq!(step(1.0 + p2(-13), &[]), 1.0 + p2(-13));
}

#[test]
fn fp8_step_cancellation_and_zeros() {
    // 448·448 − 448·448 + 2^-9·1: E = 16, the small product is truncated: +0, not 2^-9
    let r = step(0.0, &[(448.0, 448.0), (-448.0, 448.0), (p2(-9), 1.0)]);
    assert_eq!(r.to_bits(), 0);
    // exact cancellation gives +0 whatever the signs
    assert_eq!(step(0.0, &[(1.0, 1.0), (-1.0, 1.0)]).to_bits(), 0);
    assert_eq!(step(-1.0, &[(1.0, 1.0)]).to_bits(), 0);
    assert_eq!(step(-0.0, &[]).to_bits(), 0);
    assert_eq!(step(-0.0, &[(-0.0, 1.0), (0.0, -448.0)]).to_bits(), 0);
    // a negative accumulator with a smaller positive product
    assert_eq!(step(-2.0, &[(1.0, 0.5)]), -1.5);
    // an f32 subnormal accumulator below 2^-139 truncates to +0
    assert_eq!(step(p2(-140), &[]).to_bits(), 0);
    assert_eq!(step(-p2(-140), &[]).to_bits(), 0);
}

#[test]
fn fp8_step_denormal_products() {
    // 2^-9·2^-9 = 2^-18 has the unnormalised exponent -12 and significand 1/64
    assert_eq!(step(0.0, &[(p2(-9), p2(-9))]), p2(-18));
    assert_eq!(step(0.0, &[(p2(-9), p2(-9)); 32]), p2(-13));
    assert_eq!(
        step(0.0, &[(7.0 * p2(-9), 7.0 * p2(-9)); 32]),
        32.0 * 49.0 * p2(-18)
    );
    // with a 1.0 product (E = 0) a 2^-9 product is kept (e = -6), a 2^-18 one lost
    assert_eq!(
        step(0.0, &[(1.0, 1.0), (p2(-9), 1.0), (p2(-9), p2(-9))]),
        1.0 + p2(-9)
    );
    // with E = -6 a denormal product still fits: 2^-6 + 2^-18 = 2^-6(1 + 2^-12)
    assert_eq!(
        step(0.0, &[(p2(-6), 1.0), (p2(-9), p2(-9))]),
        p2(-6) + p2(-18)
    );
}

#[test]
fn fp8_step_nan_and_inf() {
    let (mut a, b) = ([c8(1.0); 32], [c8(1.0); 32]);
    a[3] = 0x7F;
    assert_eq!(fp8_mma_step(0.0, &a, &b).to_bits(), NAN_BITS);
    a[3] = 0xFF;
    assert_eq!(fp8_mma_step(5.0, &a, &b).to_bits(), NAN_BITS);
    let a = [c8(1.0); 32];
    assert_eq!(fp8_mma_step(f32::NAN, &a, &b).to_bits(), NAN_BITS);
    assert_eq!(fp8_mma_step(-f32::NAN, &a, &b).to_bits(), NAN_BITS);
    assert_eq!(fp8_mma_step(f32::INFINITY, &a, &b), f32::INFINITY);
    assert_eq!(fp8_mma_step(f32::NEG_INFINITY, &a, &b), f32::NEG_INFINITY);
    let mut a = a;
    a[0] = 0x7F;
    assert_eq!(fp8_mma_step(f32::INFINITY, &a, &b).to_bits(), NAN_BITS);
}

fn bstep(acc: f32, pairs: &[(f32, f32)]) -> f32 {
    let (mut a, mut b) = ([bf16::ZERO; 16], [bf16::ZERO; 16]);
    for (i, &(x, y)) in pairs.iter().enumerate() {
        a[i] = bf16::from_f32(x);
        b[i] = bf16::from_f32(y);
        assert!(x.is_nan() || a[i].to_f32() == x);
        assert!(y.is_nan() || b[i].to_f32() == y);
    }
    bf16_mma_step(acc, &a, &b)
}

#[test]
fn bf16_step_cases() {
    assert_eq!(bstep(0.0, &[(1.5, 3.0); 16]), 72.0);
    // 25 fraction bits: 2^-24 products are kept at E = 0, 2^-26 ones are lost
    assert_eq!(bstep(1.0, &[(p2(-12), p2(-12)); 16]), 1.0 + p2(-20));
    assert_eq!(bstep(1.0, &[(p2(-13), p2(-13)); 16]), 1.0);
    // then truncation to FP32's 23 bits: 1 + 2^-24 -> 1
    assert_eq!(bstep(0.0, &[(1.0, 1.0), (p2(-12), p2(-12))]), 1.0);
    assert_eq!(bstep(0.0, &[(-1.0, 1.0), (-p2(-12), p2(-12))]), -1.0);
    // cancellation, zero sign, overflow, NaN, inf
    assert_eq!(bstep(-0.0, &[(1.0, 2.0), (-2.0, 1.0)]).to_bits(), 0);
    assert_eq!(bstep(f32::MAX, &[(p2(64), p2(64))]), f32::INFINITY);
    assert_eq!(bstep(-f32::MAX, &[(-p2(64), p2(64))]), f32::NEG_INFINITY);
    assert_eq!(bstep(0.0, &[(f32::NAN, 1.0)]).to_bits(), NAN_BITS);
    assert_eq!(bstep(0.0, &[(f32::INFINITY, 0.0)]).to_bits(), NAN_BITS);
    assert_eq!(bstep(1.0, &[(f32::INFINITY, 2.0)]), f32::INFINITY);
    // subnormal BF16 inputs: 2^-130 · 2^10 with significand below 1
    assert_eq!(bstep(0.0, &[(p2(-130), p2(10))]), p2(-120));
}

/// `(significand, exponent)` as MMA-Sim's `extract_significand_exponent`: significand
/// in [1, 2) for normal values, exponent clamped at `min_e` for subnormals; None for 0.
fn sig_exp(v: f64, min_e: i32) -> Option<(f64, i32)> {
    if v == 0.0 {
        return None;
    }
    let e = (((v.to_bits() >> 52) & 0x7FF) as i32 - 1023).max(min_e);
    Some((v / 2f64.powi(e), e))
}

/// An independent f64 transcription of the model for FP8 (`fused_dot_add` + the
/// `f32_e8m13` output), used as an oracle for the integer implementation.
fn oracle_fp8(acc: f32, a: &[u8; 32], b: &[u8; 32]) -> f32 {
    let mut terms: Vec<(f64, i32)> = Vec::new();
    if let Some(t) = sig_exp(acc as f64, -126) {
        terms.push(t);
    }
    for i in 0..32 {
        let (x, y) = (e4m3::decode(a[i]) as f64, e4m3::decode(b[i]) as f64);
        if let (Some((sx, ex)), Some((sy, ey))) = (sig_exp(x, -6), sig_exp(y, -6)) {
            terms.push((sx * sy, ex + ey));
        }
    }
    let Some(e_max) = terms.iter().map(|t| t.1).max() else {
        return 0.0;
    };
    let s: f64 = terms
        .iter()
        .map(|&(s, e)| (s * 2f64.powi(13 + e - e_max)).trunc() * 2f64.powi(-13))
        .sum();
    let v = s * 2f64.powi(e_max);
    match sig_exp(v, -126) {
        None => 0.0,
        Some((s, e)) => ((s * 8192.0).trunc() / 8192.0 * 2f64.powi(e)) as f32 + 0.0,
    }
}

fn random_code(r: &mut ChaCha8Rng) -> u8 {
    loop {
        let c: u8 = r.random();
        if c & 0x7F != 0x7F {
            return c;
        }
    }
}

#[test]
fn fp8_step_matches_f64_transcription() {
    let mut r = ChaCha8Rng::seed_from_u64(7);
    for t in 0..20_000 {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        let live = r.random_range(0..=32);
        for i in 0..live {
            a[i] = random_code(&mut r);
            b[i] = random_code(&mut r);
            if r.random_range(0..6) == 0 {
                a[i] = r.random_range(0..8u8) | if r.random() { 0x80 } else { 0 };
                // subnormal
            }
        }
        let acc = match t % 4 {
            0 => 0.0,
            1 => {
                f32::from_bits(r.random::<u32>() & 0x7FFF_FFFF)
                    * if r.random() { 1.0 } else { -1.0 }
            }
            _ => r.random_range(-1e6f32..1e6) * 2f32.powi(r.random_range(-30..10)),
        };
        if !acc.is_finite() {
            continue;
        }
        let got = fp8_mma_step(acc, &a, &b);
        let want = oracle_fp8(acc, &a, &b);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "acc {acc:e}, a {a:?}, b {b:?}"
        );
    }
}

/// An FP8 GEMM problem: codes (K-major), FP32 scales, recipes, optional C.
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<u8>,
    b: Vec<u8>,
    sa: Vec<f32>,
    sb: Vec<f32>,
    b_recipe: Fp8Recipe,
    c: Option<Vec<f32>>,
}

impl Problem {
    fn kb(&self) -> usize {
        self.k.div_ceil(FP8_GRAN_K)
    }

    /// Element (row, col) of blocks `kbs` by hand: each block four 32-steps into a fresh
    /// accumulator, then `fma(fl32(sa·sb), partial, final)` from `final = 0`.
    fn promoted_by_hand(&self, row: usize, col: usize, kbs: std::ops::Range<usize>) -> f32 {
        let (k, nkb) = (self.k, self.kb());
        let pad = |v: &[u8]| {
            let mut x = v.to_vec();
            x.resize(nkb * 128, 0);
            x
        };
        let ar = pad(&self.a[row * k..(row + 1) * k]);
        let br = pad(&self.b[col * k..(col + 1) * k]);
        let sb_row = match self.b_recipe {
            Fp8Recipe::PerToken => col,
            Fp8Recipe::PerBlock => col / 128,
        };
        let mut fin = 0.0f32;
        for kb in kbs {
            let mut acc = 0.0f32;
            for s in 0..4 {
                let k0 = kb * 128 + s * 32;
                acc = fp8_mma_step(
                    acc,
                    ar[k0..k0 + 32].try_into().unwrap(),
                    br[k0..k0 + 32].try_into().unwrap(),
                );
            }
            fin = (self.sa[row * nkb + kb] * self.sb[sb_row * nkb + kb]).mul_add(acc, fin);
        }
        fin
    }

    fn sb_rows(&self) -> usize {
        match self.b_recipe {
            Fp8Recipe::PerToken => self.n,
            Fp8Recipe::PerBlock => self.n.div_ceil(128),
        }
    }

    fn ops(&self) -> (Fp8Operand<'_>, Fp8Operand<'_>, Option<MatView<'_, f32>>) {
        let kb = self.kb();
        let a = Fp8Operand::new(
            MatView::k_major(&self.a, self.m, self.k, self.k).unwrap(),
            Scales::F32(MatView::k_major(&self.sa, self.m, kb, kb).unwrap()),
            Fp8Recipe::PerToken,
        )
        .unwrap();
        let b = Fp8Operand::new(
            MatView::k_major(&self.b, self.n, self.k, self.k).unwrap(),
            Scales::F32(MatView::k_major(&self.sb, self.sb_rows(), kb, kb).unwrap()),
            self.b_recipe,
        )
        .unwrap();
        let c = self
            .c
            .as_ref()
            .map(|c| MatView::k_major(c, self.m, self.n, self.n).unwrap());
        (a, b, c)
    }

    /// The exact reference's unrounded f64 output (within ~K·2^-53 relative).
    fn exact(&self) -> Vec<f64> {
        let (a, b, c) = self.ops();
        let mut d = vec![0.0f64; self.m * self.n];
        let mut out = OutView::new(OutBuf::F64(&mut d), self.m, self.n, self.n).unwrap();
        gemm(&a.into(), &b.into(), c, &mut out).unwrap();
        d
    }

    fn model(&self, promote: bool) -> Vec<f32> {
        let (a, b, c) = self.ops();
        let mut d = vec![0.0f32; self.m * self.n];
        let mut out = OutView::new(OutBuf::F32(&mut d), self.m, self.n, self.n).unwrap();
        if promote {
            hopper_fp8_gemm(&a, &b, c, &mut out).unwrap();
        } else {
            hopper_fp8_gemm_no_promotion(&a, &b, c, &mut out).unwrap();
        }
        d
    }
}

/// One output element over all-ones codes: K = `k`, per-token scales `sa` and `sb` in
/// every 128-K block, an optional C.
fn ones(k: usize, sa: f32, sb: f32, c: Option<f32>) -> Problem {
    Problem {
        m: 1,
        n: 1,
        k,
        a: vec![c8(1.0); k],
        b: vec![c8(1.0); k],
        sa: vec![sa; k.div_ceil(128)],
        sb: vec![sb; k.div_ceil(128)],
        b_recipe: Fp8Recipe::PerToken,
        c: c.map(|c| vec![c]),
    }
}

/// Same-sign data, K = 7168, unit scales: values in [0.5, 2).
fn same_sign_7168() -> Problem {
    let (m, n, k) = (4, 4, 7168);
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let mut codes =
        |len: usize| -> Vec<u8> { (0..len).map(|_| r.random_range(0x30..0x40u8)).collect() };
    Problem {
        m,
        n,
        k,
        a: codes(m * k),
        b: codes(n * k),
        sa: vec![1.0; m * k / 128],
        sb: vec![1.0; k / 128],
        b_recipe: Fp8Recipe::PerBlock,
        c: None,
    }
}

#[test]
fn published_error_behaviour_k7168() {
    let p = same_sign_7168();
    let exact = p.exact();
    let rel = |v: &[f32]| {
        v.iter()
            .zip(&exact)
            .map(|(&x, &e)| ((x as f64 - e) / e).abs())
            .fold(0.0f64, f64::max)
    };
    let min_rel = |v: &[f32]| {
        v.iter()
            .zip(&exact)
            .map(|(&x, &e)| ((x as f64 - e) / e).abs())
            .fold(f64::INFINITY, f64::min)
    };
    let no_promo = p.model(false);
    let promo = p.model(true);
    println!(
        "K=7168 same-sign: no promotion rel err {:.4e}..{:.4e}, promotion every 128: max {:.4e}",
        min_rel(&no_promo),
        rel(&no_promo),
        rel(&promo)
    );
    // truncation only loses magnitude: the model is below the exact value
    assert!(no_promo.iter().zip(&exact).all(|(&x, &e)| (x as f64) < e));
    assert!(
        min_rel(&no_promo) > 1e-2,
        "no promotion should lose several percent"
    );
    assert!(rel(&promo) < 1e-3);
    // and the promoted result is within the model's bound
    let (a, b, c) = p.ops();
    let bound = hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap();
    for i in 0..exact.len() {
        assert!((promo[i] as f64 - exact[i]).abs() <= bound[i]);
    }
}

fn random_scale(r: &mut ChaCha8Rng, ue8m0: bool) -> f32 {
    let e = r.random_range(-20..20);
    if ue8m0 {
        p2(e)
    } else {
        p2(e) * r.random_range(1.0f32..2.0)
    }
}

fn random_problem(r: &mut ChaCha8Rng, m: usize, n: usize, k: usize) -> Problem {
    let kb = k.div_ceil(128);
    let positive = r.random_range(0..3) == 0;
    let zeros = r.random_range(0..4) == 0;
    let narrow = r.random_range(0..3) == 0; // magnitudes in a narrow band
    let code = |r: &mut ChaCha8Rng| {
        if zeros && r.random_range(0..3) == 0 {
            return 0;
        }
        let c = if narrow {
            r.random_range(0x30..0x40u8)
        } else {
            random_code(r) & 0x7F
        };
        if positive || r.random() {
            c
        } else {
            c | 0x80
        }
    };
    let a = (0..m * k).map(|_| code(r)).collect();
    let b = (0..n * k).map(|_| code(r)).collect();
    let ue8m0 = r.random();
    let b_recipe = if r.random() {
        Fp8Recipe::PerBlock
    } else {
        Fp8Recipe::PerToken
    };
    let sb_rows = match b_recipe {
        Fp8Recipe::PerToken => n,
        Fp8Recipe::PerBlock => n.div_ceil(128),
    };
    let sa = (0..m * kb).map(|_| random_scale(r, ue8m0)).collect();
    let sb = (0..sb_rows * kb).map(|_| random_scale(r, ue8m0)).collect();
    let c = r.random_range(0..3).eq(&0).then(|| {
        (0..m * n)
            .map(|_| r.random_range(-1.0f32..1.0) * p2(r.random_range(-10..30)))
            .collect()
    });
    Problem {
        m,
        n,
        k,
        a,
        b,
        sa,
        sb,
        b_recipe,
        c,
    }
}

#[test]
fn bound_holds_on_random_cases() {
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let ks = [
        1, 5, 31, 32, 33, 100, 127, 128, 129, 255, 300, 512, 640, 1000,
    ];
    let (mut cases, mut worst, mut sum_ratio) = (0usize, 0.0f64, 0.0f64);
    let mut trial = 0;
    while cases < 10_000 {
        let k = ks[trial % ks.len()];
        trial += 1;
        let p = random_problem(&mut r, 16, 16, k);
        let exact = p.exact();
        let (a, b, c) = p.ops();
        let mut d32 = vec![0.0f32; 256];
        let mut dbf = vec![bf16::ZERO; 256];
        hopper_fp8_gemm(
            &a,
            &b,
            c,
            &mut OutView::new(OutBuf::F32(&mut d32), 16, 16, 16).unwrap(),
        )
        .unwrap();
        hopper_fp8_gemm(
            &a,
            &b,
            c,
            &mut OutView::new(OutBuf::Bf16(&mut dbf), 16, 16, 16).unwrap(),
        )
        .unwrap();
        let b32 = hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap();
        let bbf = hopper_fp8_error_bound(&a, &b, c, OutDtype::Bf16).unwrap();
        for i in 0..256 {
            // the f64 reference is within ~K·2^-53 relative of exact: far below the bound
            let slack = 1e-12 * exact[i].abs();
            let e32 = (d32[i] as f64 - exact[i]).abs();
            let ebf = (dbf[i].to_f64() - exact[i]).abs();
            assert!(b32[i].is_finite() && bbf[i].is_finite());
            assert!(
                e32 <= b32[i] + slack,
                "K={k} elem {i}: f32 err {e32:e} > bound {:e}",
                b32[i]
            );
            assert!(
                ebf <= bbf[i] + slack,
                "K={k} elem {i}: bf16 err {ebf:e} > bound {:e}",
                bbf[i]
            );
            assert_eq!(dbf[i], bf16_fmt::from_f32(d32[i]));
            if b32[i] > 0.0 {
                worst = worst.max(e32 / b32[i]);
                sum_ratio += e32 / b32[i];
            }
        }
        cases += 256;
    }
    println!(
        "bound: {cases} cases, worst err/bound {worst:.3}, mean {:.4}",
        sum_ratio / cases as f64
    );
}

#[test]
fn bound_catches_a_wrong_block() {
    let mut p = same_sign_7168();
    p.k = 512;
    p.a = p.a[..4 * 512].to_vec();
    p.b = p.b[..4 * 512].to_vec();
    p.sa = vec![1.0; 4 * 4];
    p.sb = vec![1.0; 4];
    let exact = p.exact();
    let (a, b, c) = p.ops();
    let bound = hopper_fp8_error_bound(&a, &b, c, OutDtype::Bf16).unwrap();
    let good = p.model(true);
    for i in 0..16 {
        assert!((good[i] as f64 - exact[i]).abs() <= bound[i]);
        // the bound is tight: a BF16 half-ulp plus a little
        assert!(bound[i] < 2.5 * p2(-8) as f64 * exact[i].abs());
    }
    // one wrong scale block of row 1 of A: the whole row leaves its bound
    p.sa[4 + 2] = 1.05;
    let wrong = p.model(true);
    for j in 0..4 {
        let i = 4 + j;
        assert!((bf16_fmt::from_f32(wrong[i]).to_f64() - exact[i]).abs() > bound[i]);
    }
    // and one wrong code (a single element) in row 2 of A is caught in that row
    let (good_code, i_code) = (p.a[2 * 512 + 300], 2 * 512 + 300);
    p.sa[4 + 2] = 1.0;
    p.a[i_code] = c8(e4m3::decode(good_code) * 4.0);
    let wrong = p.model(true);
    let (a, b, c) = p.ops();
    let b32 = hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap();
    for j in 0..4 {
        let i = 8 + j;
        let delta = 3.0 * e4m3::decode(good_code) as f64 * e4m3::decode(p.b[j * 512 + 300]) as f64;
        let err = (wrong[i] as f64 - exact[i]).abs();
        assert!(err >= delta - b32[i], "a wrong element shows in its output");
        assert!(err > b32[i], "and leaves the FP32 bound");
    }
}

#[test]
fn split_k_sums_the_splits_in_order() {
    let mut r = ChaCha8Rng::seed_from_u64(11);
    // 5 blocks (K = 600, the last one partial)
    let p = random_problem(&mut r, 6, 140, 600);
    let (a, b, c) = p.ops();
    let pairs: Vec<(usize, usize)> = (0..6)
        .flat_map(|row| (0..140).step_by(13).map(move |col| (row, col)))
        .collect();
    let sample = |pr| hopper_fp8_sample(&a, &b, c, pr, &pairs).unwrap();
    let per_block = sample(Promotion::PerBlock);
    assert_eq!(sample(Promotion::SplitK(1)), per_block);
    assert_eq!(sample(Promotion::SplitK(0)), per_block, "0 splits act as 1");
    // more splits than blocks: one block each
    assert_eq!(sample(Promotion::SplitK(9)), sample(Promotion::SplitK(5)));
    let exact = p.exact();
    let bounds = hopper_fp8_error_bound_sample(&a, &b, c, OutDtype::F32, &pairs).unwrap();
    // by hand: blocks {0, 1} and {2, 3, 4} (s·5/2), each promoted from 0, then added
    let two = sample(Promotion::SplitK(2));
    let mut differs = 0;
    for (i, &(row, col)) in pairs.iter().enumerate() {
        let mut want = p.promoted_by_hand(row, col, 0..2) + p.promoted_by_hand(row, col, 2..5);
        if let Some(c) = &p.c {
            want += c[row * 140 + col];
        }
        assert_eq!(two[i].to_bits(), want.to_bits(), "({row}, {col})");
        differs += usize::from(two[i].to_bits() != per_block[i].to_bits());
        // the per-block bound covers any summation order
        for v in [two[i], sample(Promotion::SplitK(5))[i]] {
            let e = exact[row * 140 + col];
            assert!((v as f64 - e).abs() <= bounds[i], "({row}, {col})");
        }
    }
    // the order is visible: some elements round differently from the unsplit sum
    assert!(
        differs > 0,
        "SplitK(2) equals PerBlock everywhere: the test cannot tell"
    );
    // the full-matrix entry point agrees with the sampled one
    let mut full = vec![0.0f32; 6 * 140];
    let mut out = OutView::new(OutBuf::F32(&mut full), 6, 140, 140).unwrap();
    hopper_fp8_gemm_split(&a, &b, c, &mut out, 2).unwrap();
    for (i, &(row, col)) in pairs.iter().enumerate() {
        assert_eq!(full[row * 140 + col].to_bits(), two[i].to_bits());
    }
}

#[test]
fn sample_matches_full_and_promotion_order() {
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let p = random_problem(&mut r, 9, 130, 300);
    let (a, b, c) = p.ops();
    let full = p.model(true);
    let pairs: Vec<(usize, usize)> = (0..50)
        .map(|_| (r.random_range(0..9), r.random_range(0..130)))
        .collect();
    let s = hopper_fp8_sample(&a, &b, c, Promotion::PerBlock, &pairs).unwrap();
    let bs = hopper_fp8_error_bound_sample(&a, &b, c, OutDtype::F32, &pairs).unwrap();
    let bf = hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap();
    for (i, &(row, col)) in pairs.iter().enumerate() {
        assert_eq!(s[i].to_bits(), full[row * 130 + col].to_bits());
        assert_eq!(bs[i], bf[row * 130 + col]);
    }
    // the promotion order by hand for one element: blocks of four 32-steps, then
    // fma(fl32(sa·sb), partial, final), then + C
    let (row, col) = (3, 129);
    let mut fin = p.promoted_by_hand(row, col, 0..3);
    if let Some(c) = &p.c {
        fin += c[row * 130 + col];
    }
    assert_eq!(fin.to_bits(), full[row * 130 + col].to_bits());
}

#[test]
fn nan_inputs_and_errors() {
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let mut p = random_problem(&mut r, 3, 4, 200);
    p.a[200 + 17] = 0x7F; // row 1 of A
    let d = p.model(true);
    let (a, b, c) = p.ops();
    let bound = hopper_fp8_error_bound(&a, &b, c, OutDtype::Bf16).unwrap();
    for i in 0..12 {
        assert_eq!(d[i].is_nan(), i / 4 == 1);
        assert_eq!(bound[i].is_infinite(), i / 4 == 1);
    }
    // errors: K mismatch, per-block A, D shape, pair out of range, non-uniform scales
    let q = random_problem(&mut r, 3, 4, 100);
    let (qa, _, _) = q.ops();
    let mut out = vec![0.0f32; 12];
    let mut ov = OutView::new(OutBuf::F32(&mut out), 3, 4, 4).unwrap();
    assert!(matches!(
        hopper_fp8_gemm(&qa, &b, None, &mut ov),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        hopper_fp8_gemm(&b, &a, None, &mut ov),
        Err(Error::Argument { .. }) | Err(Error::Shape { .. })
    ));
    let mut out2 = vec![0.0f32; 12];
    let mut ov2 = OutView::new(OutBuf::F32(&mut out2), 4, 3, 3).unwrap();
    assert!(matches!(
        hopper_fp8_gemm(&a, &b, c, &mut ov2),
        Err(Error::Shape { .. })
    ));
    // ... also when only one dimension of D is wrong
    for (rows, cols) in [(3, 3), (4, 4)] {
        let mut buf = vec![0.0f32; rows * cols];
        let mut ov3 = OutView::new(OutBuf::F32(&mut buf), rows, cols, cols).unwrap();
        assert!(
            matches!(
                hopper_fp8_gemm(&a, &b, c, &mut ov3),
                Err(Error::Shape { .. })
            ),
            "[{rows}, {cols}]"
        );
    }
    assert!(matches!(
        hopper_fp8_sample(&a, &b, c, Promotion::PerBlock, &[(3, 0)]),
        Err(Error::Argument { .. })
    ));
    p.sa[0] = 1.0;
    p.sa[1] = 2.0;
    let (a, b, c) = p.ops();
    assert!(matches!(
        hopper_fp8_gemm_no_promotion(&a, &b, c, &mut ov),
        Err(Error::Argument { .. })
    ));
    // a per-block A is rejected by name
    let pb = Fp8Operand::new(
        MatView::k_major(&p.a, 3, 200, 200).unwrap(),
        Scales::F32(MatView::k_major(&p.sa[..2], 1, 2, 2).unwrap()),
        Fp8Recipe::PerBlock,
    )
    .unwrap();
    assert!(matches!(
        hopper_fp8_gemm(&pb, &b, c, &mut ov),
        Err(Error::Argument { name: "a", .. })
    ));
}

/// Zero-stride views describe shapes far larger than their buffers: the model refuses a
/// shape whose output `[M, N]` would overflow `usize` (here 2^33 × 2^33, while each
/// operand, 2^33 × 128, still fits) with an error before allocating anything.
#[test]
fn huge_zero_stride_shapes_are_refused() {
    let codes = [0x38u8; 1];
    let scales = [1.0f32; 1];
    let huge = 1usize << 33;
    let view = |rows| MatView::strided(&codes[..], rows, 128, 0, 0).unwrap();
    let sview = |rows| MatView::strided(&scales[..], rows, 1, 0, 0).unwrap();
    let a = Fp8Operand::new(view(huge), Scales::F32(sview(huge)), Fp8Recipe::PerToken).unwrap();
    let b = Fp8Operand::new(
        view(huge),
        Scales::F32(sview(huge.div_ceil(128))),
        Fp8Recipe::PerBlock,
    )
    .unwrap();
    let r = hopper_fp8_error_bound(&a, &b, None, OutDtype::Bf16);
    assert!(matches!(r, Err(Error::Shape { tensor: "d", .. })), "{r:?}");
    let r = hopper_fp8_sample(&a, &b, None, Promotion::PerBlock, &[(0, 0)]);
    assert!(matches!(r, Err(Error::Shape { tensor: "d", .. })), "{r:?}");
}

/// Zero products take no part in the alignment: a `0 · 2^100` (or `0 · 448`) product
/// must not set the exponent the tiny real product is aligned to.
#[test]
fn zero_products_do_not_set_the_alignment() {
    assert_eq!(bstep(0.0, &[(0.0, p2(100)), (p2(-40), p2(-40))]), p2(-80));
    assert_eq!(bstep(0.0, &[(p2(100), 0.0), (p2(-40), p2(-40))]), p2(-80));
    assert_eq!(step(0.0, &[(0.0, 448.0), (p2(-9), p2(-9))]), p2(-18));
    assert_eq!(step(0.0, &[(448.0, 0.0), (p2(-9), p2(-9))]), p2(-18));
}

/// The sign of a product is the XOR of the signs: negative × negative is positive.
#[test]
fn negative_times_negative_is_positive() {
    assert_eq!(bstep(0.0, &[(-1.5, -2.0), (1.0, 1.0)]), 4.0);
    assert_eq!(bstep(1.0, &[(-1.0, -1.0); 16]), 17.0);
    assert_eq!(step(0.0, &[(-1.5, -2.0), (1.0, 1.0)]), 4.0);
    assert_eq!(step(1.0, &[(-1.0, -1.0); 32]), 33.0);
}

/// The per-element bound on a block worked by hand from the module docs' derivation:
/// `M = N = 1`, `K = 128`, every code 1.0, scales `s`, optional C, both output dtypes.
/// Per step of 32 unit products (accumulated magnitude `cum` before the step): the
/// alignment quantum `2^(e_hat - 13)` (0 for the first step), plus `2^-13` of the
/// magnitude after the step, plus `2^-139`; steps 0..3 give `1, 3, 5, 6` times `2^-8`.
#[test]
fn bound_of_a_unit_block_is_the_derived_value() {
    let u = p2(-24) as f64;
    let gamma1 = 1.001 * u / (1.0 - u);
    let e_blk = 15.0 * p2(-8) as f64 + 4.0 * 2f64.powi(-139);
    for (s_each, c) in [
        (1.0f32, None),
        (1.0, Some(-100.0f32)),
        (0.5, Some(3.0)),
        (p2(-126), None), // the f32-subnormal term dominates
        (p2(-126), Some(p2(-140))),
        // Large but finite: exact ≈ 2^107 and the bound ≈ 2^84 must stay finite (their
        // product overflows; only their sum is tested against f32::MAX).
        (p2(50), None),
        (p2(50), Some(-3e32)),
    ] {
        let p = ones(128, s_each, s_each, c);
        let s = s_each as f64 * s_each as f64;
        let (x, cv) = (128.0, c.unwrap_or(0.0) as f64);
        let mut want = s * e_blk
            + (u + gamma1 * (1.0 + u)) * s * (x + e_blk)
            + 2.0 * 2f64.powi(-149) * (1.0 + x + e_blk);
        let exact = (s * x + cv).abs() + 1e-12 * (s * x + cv.abs());
        if c.is_some() {
            want += u * (exact + want);
        }
        let want_bf16 = want + 2f64.powi(-8) * (exact + want) + 2f64.powi(-134);
        let (a, b, cview) = p.ops();
        for (out, want) in [(OutDtype::F32, want), (OutDtype::Bf16, want_bf16)] {
            let want = want * (1.0 + 1e-9);
            let got = hopper_fp8_error_bound(&a, &b, cview, out).unwrap()[0];
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "s {s_each:e}, c {c:?}, {out:?}: bound {got:e}, derived {want:e}"
            );
            let got = hopper_fp8_error_bound_sample(&a, &b, cview, out, &[(0, 0)]).unwrap()[0];
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "sample: {got:e} vs {want:e}"
            );
        }
    }
}

/// An infinite accumulator stays infinite through a BF16 step whose products are zero or
/// finite (IEEE: ±inf + finite = ±inf), never NaN.
#[test]
fn bf16_step_keeps_an_infinite_accumulator() {
    let zeros = [bf16::ZERO; BF16_STEP_K];
    let ones = [bf16::ONE; BF16_STEP_K];
    let minus = [bf16::NEG_ONE; BF16_STEP_K];
    assert_eq!(bf16_mma_step(f32::INFINITY, &zeros, &zeros), f32::INFINITY);
    assert_eq!(
        bf16_mma_step(f32::NEG_INFINITY, &zeros, &ones),
        f32::NEG_INFINITY
    );
    assert_eq!(bf16_mma_step(f32::INFINITY, &ones, &minus), f32::INFINITY);
    assert_eq!(
        bf16_mma_step(f32::NEG_INFINITY, &ones, &ones),
        f32::NEG_INFINITY
    );
    assert!(bf16_mma_step(f32::INFINITY, &[bf16::INFINITY; BF16_STEP_K], &minus).is_nan());
}

/// Without promotion the one accumulator is scaled once at the end, by fl32(sa·sb): all-ones
/// codes over K = 256 (two uniform blocks) give 256 · 0.5 · 0.25 = 32, as the promoted model.
#[test]
fn no_promotion_scales_the_single_accumulator() {
    let p = ones(256, 0.5, 0.25, None);
    assert_eq!(p.model(false), vec![32.0]);
    assert_eq!(p.model(true), vec![32.0]);
}

/// NaN × NaN in one product is NaN (not cancelled), and an empty output has an empty bound.
#[test]
fn nan_times_nan_and_empty_bounds() {
    let mut p = ones(128, 1.0, 1.0, None);
    p.a[5] = 0x7F;
    p.b[5] = 0x7F;
    assert!(p.model(true)[0].is_nan());
    let (a, b, c) = p.ops();
    assert!(hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap()[0].is_infinite());
    let empty = Problem {
        m: 1,
        n: 0,
        k: 128,
        a: vec![c8(1.0); 128],
        b: vec![],
        sa: vec![1.0],
        sb: vec![],
        b_recipe: Fp8Recipe::PerToken,
        c: None,
    };
    let (a, b, c) = empty.ops();
    assert_eq!(
        hopper_fp8_error_bound(&a, &b, c, OutDtype::F32).unwrap(),
        Vec::<f64>::new()
    );
}
