//! Integration tests of `scalegemm_reference::gemm` against an exact integer oracle.
//!
//! The oracle (`common`) decodes every operand from its bits by itself (E4M3, E2M1,
//! UE8M0, BF16, FP32 → `m·2^e`), sums `c + Σ a_k·b_k` exactly as a BigInt and rounds
//! it to BF16/FP32 with integer shifts (RNE, subnormals, overflow). Every BF16/FP32
//! output element checked here must equal that bit for bit (an exact zero is `+0`);
//! F64 outputs must lie within the documented bound `γ_{K+1}·(Σ|a·b| + |c|)`.

mod common;

use common::{
    bf16_dy, e2m1, e4m3, exact_dot, f32_dy, f64_dy, round_bits, round_f32, ue8m0, Dy, Exact, Fmt,
};
use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_reference::gemm::{
    gemm, k_grouped_gemm, m_grouped_gemm_contiguous, m_grouped_gemm_masked, Fp4Group, Fp4Operand,
    Fp8Operand, Fp8Recipe, MGroupLayout, MatView, Operand, OutBuf, OutView, Scales,
};
use scalegemm_reference::Error;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

// ---------------------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------------------

/// A random finite E4M3 code; one in eight is a zero or subnormal code of either sign
/// (so `0x80`, negative zero, shows up often).
fn rand_e4m3(r: &mut ChaCha8Rng) -> u8 {
    if r.random_range(0..8) == 0 {
        return r.random_range(0..8u8) | if r.random() { 0x80 } else { 0 };
    }
    loop {
        let c: u8 = r.random();
        if c & 0x7F != 0x7F {
            return c;
        }
    }
}

/// A random positive normal f32 `(1.m)·2^e` with `e` in `lo..=hi` and a random mantissa.
fn rand_f32_scale(r: &mut ChaCha8Rng, lo: i32, hi: i32) -> f32 {
    let e = r.random_range(lo..=hi);
    f32::from_bits((((e + 127) as u32) << 23) | (r.random::<u32>() & 0x7F_FFFF))
}

/// A random power of two `2^e`, `e` in `lo..=hi` (normal f32 range).
fn rand_pow2(r: &mut ChaCha8Rng, lo: i32, hi: i32) -> f32 {
    f32::from_bits(((r.random_range(lo..=hi) + 127) as u32) << 23)
}

/// A random f32 with either sign and exponent in `lo..=hi`.
fn rand_f32_signed(r: &mut ChaCha8Rng, lo: i32, hi: i32) -> f32 {
    let x = rand_f32_scale(r, lo, hi);
    if r.random() {
        -x
    } else {
        x
    }
}

/// A random finite BF16 with exponent in `lo..=hi`; one in sixteen is ±0.
fn rand_bf16(r: &mut ChaCha8Rng, lo: i32, hi: i32) -> bf16 {
    let sign = if r.random() { 0x8000u16 } else { 0 };
    if r.random_range(0..16) == 0 {
        return bf16::from_bits(sign);
    }
    let e = r.random_range(lo..=hi);
    bf16::from_bits(sign | (((e + 127) as u16) << 7) | (r.random::<u16>() & 0x7F))
}

// ---------------------------------------------------------------------------------------
// Test-side operands: logical data, independent oracle values, crate views
// ---------------------------------------------------------------------------------------

/// Scale values of a quantized operand, row-major over the logical scale shape.
#[derive(Clone, Debug)]
enum Sc {
    F32(Vec<f32>),
    Ue8m0InF32(Vec<f32>),
    Ue8m0(Vec<u8>),
}

impl Sc {
    fn dy(&self, i: usize) -> Dy {
        match self {
            Sc::F32(v) | Sc::Ue8m0InF32(v) => f32_dy(v[i]).expect("finite scale"),
            Sc::Ue8m0(v) => ue8m0(v[i]).expect("UE8M0 code not NaN"),
        }
    }

    /// Crate scales, natural row-major `[rows, cols]`.
    fn view(&self, rows: usize, cols: usize) -> Scales<'_> {
        match self {
            Sc::F32(v) => Scales::F32(MatView::k_major(v, rows, cols, cols).unwrap()),
            Sc::Ue8m0InF32(v) => Scales::Ue8m0InF32(MatView::k_major(v, rows, cols, cols).unwrap()),
            Sc::Ue8m0(v) => Scales::Ue8m0(MatView::k_major(v, rows, cols, cols).unwrap()),
        }
    }
}

/// How FP8 scales are drawn.
#[derive(Clone, Copy, Debug)]
enum ScaleGen {
    /// FP32, `(1.m)·2^e` with e in -30..=30.
    WideF32,
    /// Powers of two held in FP32 (the UE8M0 recipe), 2^-40..=2^40.
    Ue8m0InF32,
    /// UE8M0 codes (2^-40..=2^40).
    Ue8m0Codes,
}

fn gen_scales(r: &mut ChaCha8Rng, n: usize, how: ScaleGen) -> Sc {
    match how {
        ScaleGen::WideF32 => Sc::F32((0..n).map(|_| rand_f32_scale(r, -30, 30)).collect()),
        ScaleGen::Ue8m0InF32 => Sc::Ue8m0InF32((0..n).map(|_| rand_pow2(r, -40, 40)).collect()),
        ScaleGen::Ue8m0Codes => Sc::Ue8m0((0..n).map(|_| r.random_range(87..=167u8)).collect()),
    }
}

/// An FP8 E4M3 operand: codes row-major `[rows, k]`, scales `[ceil(rows/g), ceil(k/128)]`.
#[derive(Clone, Debug)]
struct Fp8 {
    rows: usize,
    k: usize,
    codes: Vec<u8>,
    sc: Sc,
    recipe: Fp8Recipe,
}

impl Fp8 {
    fn gran(recipe: Fp8Recipe) -> usize {
        match recipe {
            Fp8Recipe::PerToken => 1,
            Fp8Recipe::PerBlock => 128,
        }
    }

    fn scale_shape(rows: usize, k: usize, recipe: Fp8Recipe) -> (usize, usize) {
        (rows.div_ceil(Self::gran(recipe)), k.div_ceil(128))
    }

    fn random(r: &mut ChaCha8Rng, rows: usize, k: usize, recipe: Fp8Recipe, how: ScaleGen) -> Fp8 {
        let codes = (0..rows * k).map(|_| rand_e4m3(r)).collect();
        let (sr, sc) = Self::scale_shape(rows, k, recipe);
        Fp8 {
            rows,
            k,
            codes,
            sc: gen_scales(r, sr * sc, how),
            recipe,
        }
    }

    /// Exact dequantized values, row-major `[rows, k]` (panics on a NaN code).
    fn values(&self) -> Vec<Dy> {
        let (g, kb) = (Self::gran(self.recipe), self.k.div_ceil(128));
        let mut out = Vec::with_capacity(self.rows * self.k);
        for i in 0..self.rows {
            for kk in 0..self.k {
                let s = self.sc.dy((i / g) * kb + kk / 128);
                out.push(
                    e4m3(self.codes[i * self.k + kk])
                        .expect("finite code")
                        .mul(s),
                );
            }
        }
        out
    }

    /// Contiguous K-major operand with natural scales.
    fn operand(&self) -> Operand<'_> {
        let (sr, sc) = Self::scale_shape(self.rows, self.k, self.recipe);
        let codes = MatView::k_major(&self.codes, self.rows, self.k, self.k).unwrap();
        Fp8Operand::new(codes, self.sc.view(sr, sc), self.recipe)
            .unwrap()
            .into()
    }
}

/// A BF16 operand, row-major `[rows, k]`.
struct Bf16Mat {
    rows: usize,
    k: usize,
    v: Vec<bf16>,
}

impl Bf16Mat {
    fn values(&self) -> Vec<Dy> {
        self.v
            .iter()
            .map(|x| bf16_dy(x.to_bits()).expect("finite"))
            .collect()
    }

    fn operand(&self) -> Operand<'_> {
        MatView::k_major(&self.v, self.rows, self.k, self.k)
            .unwrap()
            .into()
    }
}

// ---------------------------------------------------------------------------------------
// Outputs and the comparison against the oracle
// ---------------------------------------------------------------------------------------

const POISON_BF16: u16 = 0x7FFF; // a NaN payload the reference never writes
const POISON_F32: u32 = 0x7FBA_DBAD; // likewise
const POISON_F64: u64 = 0x7FF0_DEAD_BEEF_0001;

/// A poisoned output buffer `[rows, cols]` with leading dimension `ld`.
#[derive(Clone, Debug)]
enum Buf {
    Bf16(Vec<bf16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    Bf16,
    F32,
    F64,
}

struct Dout {
    buf: Buf,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl Dout {
    fn new(kind: Out, rows: usize, cols: usize, ld: usize) -> Dout {
        let len = rows * ld;
        let buf = match kind {
            Out::Bf16 => Buf::Bf16(vec![bf16::from_bits(POISON_BF16); len]),
            Out::F32 => Buf::F32(vec![f32::from_bits(POISON_F32); len]),
            Out::F64 => Buf::F64(vec![f64::from_bits(POISON_F64); len]),
        };
        Dout {
            buf,
            rows,
            cols,
            ld,
        }
    }

    fn view(&mut self) -> OutView<'_> {
        let (rows, cols, ld) = (self.rows, self.cols, self.ld);
        let buf = match &mut self.buf {
            Buf::Bf16(b) => OutBuf::Bf16(b),
            Buf::F32(b) => OutBuf::F32(b),
            Buf::F64(b) => OutBuf::F64(b),
        };
        OutView::new(buf, rows, cols, ld).unwrap()
    }

    fn kind(&self) -> Out {
        match self.buf {
            Buf::Bf16(_) => Out::Bf16,
            Buf::F32(_) => Out::F32,
            Buf::F64(_) => Out::F64,
        }
    }

    /// Raw bits of element (i, j).
    fn bits(&self, i: usize, j: usize) -> u64 {
        let x = i * self.ld + j;
        match &self.buf {
            Buf::Bf16(b) => b[x].to_bits() as u64,
            Buf::F32(b) => b[x].to_bits() as u64,
            Buf::F64(b) => b[x].to_bits(),
        }
    }

    fn get_f64(&self, i: usize, j: usize) -> f64 {
        let x = i * self.ld + j;
        match &self.buf {
            Buf::Bf16(b) => b[x].to_f64(),
            Buf::F32(b) => b[x] as f64,
            Buf::F64(b) => b[x],
        }
    }

    fn is_poison(&self, i: usize, j: usize) -> bool {
        self.bits(i, j)
            == match self.kind() {
                Out::Bf16 => POISON_BF16 as u64,
                Out::F32 => POISON_F32 as u64,
                Out::F64 => POISON_F64,
            }
    }

    /// Asserts every element of row `i` (all `ld` of them) still holds the poison.
    fn assert_row_untouched(&self, i: usize, what: &str) {
        for j in 0..self.ld {
            assert!(
                self.is_poison(i, j),
                "{what}: D[{i}, {j}] was written ({:#x})",
                self.bits(i, j)
            );
        }
    }

    /// Asserts the gap columns `cols..ld` of every row are untouched.
    fn assert_gaps_untouched(&self) {
        for i in 0..self.rows {
            for j in self.cols..self.ld {
                assert!(
                    self.is_poison(i, j),
                    "D[{i}, {j}] beyond the {} columns was written",
                    self.cols
                );
            }
        }
    }

    fn same_bits(&self, other: &Dout) -> bool {
        (0..self.rows).all(|i| (0..self.cols).all(|j| self.bits(i, j) == other.bits(i, j)))
    }
}

/// The oracle's view of one GEMM: exact values of A `[m, k]` and B `[n, k]`, row-major,
/// and C `[m, n]` row-major (logical) if present.
struct Oracle<'a> {
    a: &'a [Dy],
    b: &'a [Dy],
    c: Option<&'a [f32]>,
    m: usize,
    n: usize,
    k: usize,
}

impl<'a> Oracle<'a> {
    fn new(
        a: &'a [Dy],
        b: &'a [Dy],
        c: Option<&'a [f32]>,
        (m, n, k): (usize, usize, usize),
    ) -> Self {
        assert_eq!((a.len(), b.len()), (m * k, n * k));
        if let Some(c) = c {
            assert_eq!(c.len(), m * n);
        }
        Oracle { a, b, c, m, n, k }
    }

    fn exact(&self, i: usize, j: usize) -> Exact {
        let c = self.c.map(|c| f32_dy(c[i * self.n + j]).expect("finite C"));
        let k = self.k;
        exact_dot(&self.a[i * k..(i + 1) * k], &self.b[j * k..(j + 1) * k], c)
    }

    /// Compares D's element (di, j) with the exact value of (i, j).
    fn check_at(&self, d: &Dout, di: usize, i: usize, j: usize) {
        let ex = self.exact(i, j);
        match d.kind() {
            Out::Bf16 | Out::F32 => {
                let fmt = if d.kind() == Out::Bf16 {
                    Fmt::Bf16
                } else {
                    Fmt::F32
                };
                let want = round_bits(&ex, fmt) as u64;
                let got = d.bits(di, j);
                assert_eq!(
                    got,
                    want,
                    "{fmt:?} D[{di}, {j}] (problem element ({i}, {j})): got {:#x} = {}, want {:#x}; exact ≈ {:e}",
                    got,
                    d.get_f64(di, j),
                    want,
                    ex.approx_f64()
                );
            }
            Out::F64 => {
                let t = d.get_f64(di, j);
                let td = f64_dy(t).unwrap_or_else(|| panic!("F64 D[{di}, {j}] = {t} not finite"));
                let err = Exact::from_dy(td).sub(&ex).approx_f64().abs();
                let k = self.k;
                let mut mass: f64 = (0..k)
                    .map(|kk| self.a[i * k + kk].mul(self.b[j * k + kk]).to_f64().abs())
                    .sum();
                if let Some(c) = self.c {
                    mass += (c[i * self.n + j] as f64).abs();
                }
                let nu = (k + 1) as f64 * f64::EPSILON / 2.0;
                let bound = nu / (1.0 - nu) * mass * 1.000001;
                assert!(
                    err <= bound,
                    "F64 D[{di}, {j}]: |t − exact| = {err:e} > bound {bound:e} (t = {t:e})"
                );
            }
        }
    }

    /// Every element; D row i is problem row i.
    fn check_all(&self, d: &Dout) {
        assert_eq!((d.rows, d.cols), (self.m, self.n));
        for i in 0..self.m {
            for j in 0..self.n {
                self.check_at(d, i, i, j);
            }
        }
        d.assert_gaps_untouched();
    }
}

/// C stored in a non-trivial layout. Returns (buffer, view constructor data).
struct CMat {
    logical: Vec<f32>,
    buf: Vec<f32>,
    m: usize,
    n: usize,
    row_stride: usize,
    col_stride: usize,
}

impl CMat {
    /// `logical` `[m, n]` row-major, stored either transposed (`[n, m]` with ld m + 3) or
    /// row-major with ld n + 5, padding filled with NaN (never to be read).
    fn new(logical: Vec<f32>, m: usize, n: usize, transposed: bool) -> CMat {
        let (rs, cs, len) = if transposed {
            (1, m + 3, n * (m + 3))
        } else {
            (n + 5, 1, m * (n + 5))
        };
        let mut buf = vec![f32::NAN; len];
        for i in 0..m {
            for j in 0..n {
                buf[i * rs + j * cs] = logical[i * n + j];
            }
        }
        CMat {
            logical,
            buf,
            m,
            n,
            row_stride: rs,
            col_stride: cs,
        }
    }

    fn view(&self) -> MatView<'_, f32> {
        MatView::strided(&self.buf, self.m, self.n, self.row_stride, self.col_stride).unwrap()
    }
}

/// A C that makes the test hard: per element one of a random wide value, `−RN_f32(A·Bᵀ)`
/// (leaving only the product's rounding residue: massive cancellation), `+0`, `−0`.
fn adversarial_c(
    r: &mut ChaCha8Rng,
    av: &[Dy],
    bv: &[Dy],
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    let o = Oracle::new(av, bv, None, (m, n, k));
    let mut c = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            c.push(match r.random_range(0..4) {
                0 => rand_f32_signed(r, -40, 40),
                1 => -round_f32(&o.exact(i, j)),
                2 => 0.0,
                _ => -0.0,
            });
        }
    }
    c
}

// ---------------------------------------------------------------------------------------
// 1. FP8 1D2D and 1D1D
// ---------------------------------------------------------------------------------------

/// Runs one FP8 configuration over the shapes, both outputs, with and without C.
fn fp8_case(seed: u64, b_recipe: Fp8Recipe, how: ScaleGen) {
    let mut r = rng(seed);
    let shapes = [(7, 33, 1152), (7, 33, 200), (7, 129, 1152), (5, 129, 200)];
    for (si, &(m, n, k)) in shapes.iter().enumerate() {
        let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, how);
        let b = Fp8::random(&mut r, n, k, b_recipe, how);
        let (av, bv) = (a.values(), b.values());
        let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, si % 2 == 0);
        for with_c in [false, true] {
            for out in [Out::Bf16, Out::F32] {
                let mut d = Dout::new(out, m, n, n + 2);
                let cv = with_c.then(|| c.view());
                gemm(&a.operand(), &b.operand(), cv, &mut d.view()).unwrap();
                let o = Oracle::new(&av, &bv, with_c.then_some(&c.logical[..]), (m, n, k));
                o.check_all(&d);
            }
        }
    }
}

#[test]
fn fp8_1d2d_fp32_wide_scales_every_element_exact() {
    fp8_case(1, Fp8Recipe::PerBlock, ScaleGen::WideF32);
}

#[test]
fn fp8_1d2d_ue8m0_in_f32_scales_every_element_exact() {
    fp8_case(2, Fp8Recipe::PerBlock, ScaleGen::Ue8m0InF32);
}

#[test]
fn fp8_1d2d_ue8m0_code_scales_every_element_exact() {
    fp8_case(3, Fp8Recipe::PerBlock, ScaleGen::Ue8m0Codes);
}

#[test]
fn fp8_1d1d_fp32_wide_scales_every_element_exact() {
    fp8_case(4, Fp8Recipe::PerToken, ScaleGen::WideF32);
}

#[test]
fn fp8_1d1d_ue8m0_in_f32_scales_every_element_exact() {
    fp8_case(5, Fp8Recipe::PerToken, ScaleGen::Ue8m0InF32);
}

#[test]
fn fp8_f64_output_within_documented_bound() {
    let mut r = rng(6);
    let (m, n, k) = (7, 33, 1152);
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let (av, bv) = (a.values(), b.values());
    let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, true);
    for with_c in [false, true] {
        let mut d = Dout::new(Out::F64, m, n, n);
        gemm(
            &a.operand(),
            &b.operand(),
            with_c.then(|| c.view()),
            &mut d.view(),
        )
        .unwrap();
        Oracle::new(&av, &bv, with_c.then_some(&c.logical[..]), (m, n, k)).check_all(&d);
    }
}

/// Results around the output's subnormal range and its overflow threshold, where the
/// rounding of the final cast is most delicate (BF16 subnormals below 2^-126, overflow
/// to inf at 2^128 after rounding).
#[test]
fn fp8_outputs_in_subnormal_and_overflow_ranges() {
    let mut r = rng(7);
    let (m, n, k) = (6, 40, 256);
    // scales put |a·b| around 2^-150..2^-120 for some rows and 2^110..2^135 for others.
    for (lo, hi) in [(-80, -62), (46, 58)] {
        let mut a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
        let mut b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
        for sc in [&mut a.sc, &mut b.sc] {
            if let Sc::F32(v) = sc {
                v.iter_mut()
                    .for_each(|x| *x = rand_f32_scale(&mut r, lo, hi));
            }
        }
        let (av, bv) = (a.values(), b.values());
        let mut classes = [0usize; 3]; // zero-or-subnormal, normal, inf
        for out in [Out::Bf16, Out::F32] {
            let mut d = Dout::new(out, m, n, n);
            gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
            Oracle::new(&av, &bv, None, (m, n, k)).check_all(&d);
            for i in 0..m {
                for j in 0..n {
                    let x = d.get_f64(i, j).abs();
                    classes[if x.is_infinite() {
                        2
                    } else if x < 2f64.powi(-126) {
                        0
                    } else {
                        1
                    }] += 1;
                }
            }
        }
        if lo < 0 {
            assert!(
                classes[0] > 0,
                "no subnormal outputs exercised: {classes:?}"
            );
        } else {
            assert!(
                classes[2] > 0 && classes[1] > 0,
                "no overflow exercised: {classes:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Layouts NT/NN/TN/TT and TMA-aligned scales
// ---------------------------------------------------------------------------------------

/// Stores logical `[rows, cols]` row-major `v` K-major with leading dimension `ld`.
fn store_k_major<T: Copy>(v: &[T], rows: usize, cols: usize, ld: usize, fill: T) -> Vec<T> {
    let mut out = vec![fill; rows * ld];
    for i in 0..rows {
        out[i * ld..i * ld + cols].copy_from_slice(&v[i * cols..(i + 1) * cols]);
    }
    out
}

/// Stores logical `[rows, cols]` row-major `v` MN-major (as `[cols, rows]` with
/// leading dimension `ld >= rows`).
fn store_mn_major<T: Copy>(v: &[T], rows: usize, cols: usize, ld: usize, fill: T) -> Vec<T> {
    let mut out = vec![fill; cols * ld];
    for i in 0..rows {
        for j in 0..cols {
            out[j * ld + i] = v[i * cols + j];
        }
    }
    out
}

#[test]
fn fp8_layouts_nt_nn_tn_tt_strided_with_tma_aligned_scales() {
    let mut r = rng(20);
    for (b_recipe, out) in [
        (Fp8Recipe::PerBlock, Out::Bf16),
        (Fp8Recipe::PerToken, Out::F32),
    ] {
        let (m, n, k) = (9, 20, 256);
        let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
        let b = Fp8::random(&mut r, n, k, b_recipe, ScaleGen::WideF32);
        let (av, bv) = (a.values(), b.values());
        let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, false);
        let oracle = Oracle::new(&av, &bv, Some(&c.logical), (m, n, k));
        // The contiguous NT reference run.
        let mut d_nt = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d_nt.view()).unwrap();
        oracle.check_all(&d_nt);

        // Strided storages: A "N" with ld 384 for K = 256, A "T" [K, M] with ld M + 5,
        // B "T" [N, K] with ld K + 7, B "N" [K, N] with ld N + 3. NaN-code padding
        // (0x7F) would poison any element read by mistake.
        let a_n = store_k_major(&a.codes, m, k, 384, 0x7F);
        let a_t = store_mn_major(&a.codes, m, k, m + 5, 0x7F);
        let b_t = store_k_major(&b.codes, n, k, k + 7, 0x7F);
        let b_n = store_mn_major(&b.codes, n, k, n + 3, 0x7F);
        // Scales in the TMA-aligned MN-major layout: [ceil(K/128), round_up(rows, 4)].
        let (Sc::F32(sa), Sc::F32(sb)) = (&a.sc, &b.sc) else {
            unreachable!()
        };
        let kb = k / 128;
        let sa_tma = store_mn_major(sa, m, kb, m.next_multiple_of(4), f32::NAN);
        let sbr = Fp8::scale_shape(n, k, b_recipe).0;
        let sb_tma = store_mn_major(sb, sbr, kb, sbr.next_multiple_of(4), f32::NAN);
        let sfa = Scales::F32(MatView::mn_major(&sa_tma, m, kb, m.next_multiple_of(4)).unwrap());
        let sfb =
            Scales::F32(MatView::mn_major(&sb_tma, sbr, kb, sbr.next_multiple_of(4)).unwrap());

        let a_views = [
            ("N", MatView::k_major(&a_n, m, k, 384).unwrap()),
            ("T", MatView::mn_major(&a_t, m, k, m + 5).unwrap()),
        ];
        let b_views = [
            ("T", MatView::k_major(&b_t, n, k, k + 7).unwrap()),
            ("N", MatView::mn_major(&b_n, n, k, n + 3).unwrap()),
        ];
        let mut runs = 0;
        for (la, av_) in a_views {
            for (lb, bv_) in b_views {
                let ao: Operand = Fp8Operand::new(av_, sfa, Fp8Recipe::PerToken)
                    .unwrap()
                    .into();
                let bo: Operand = Fp8Operand::new(bv_, sfb, b_recipe).unwrap().into();
                let mut d = Dout::new(out, m, n, n + 1);
                gemm(&ao, &bo, Some(c.view()), &mut d.view()).unwrap();
                assert!(
                    d.same_bits(&d_nt),
                    "layout {la}{lb} differs from contiguous NT"
                );
                oracle.check_all(&d);
                runs += 1;
            }
        }
        assert_eq!(runs, 4);
    }
}

// ---------------------------------------------------------------------------------------
// 3. FP8 × FP4
// ---------------------------------------------------------------------------------------

#[test]
fn fp8_x_fp4_packed_e2m1_ue8m0_per_32_and_128() {
    let mut r = rng(30);
    let (m, n) = (5, 40);
    for k in [256usize, 96] {
        for group in [Fp4Group::G32, Fp4Group::G128] {
            for codes_as_u8 in [true, false] {
                let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
                let av = a.values();
                // FP4 codes [n, k], packed two per byte, low nibble = even k; ld = k/2 + 3.
                let nib: Vec<u8> = (0..n * k).map(|_| r.random_range(0..16u8)).collect();
                let ld = k / 2 + 3;
                let mut packed = vec![0xEEu8; n * ld];
                for i in 0..n {
                    for kk in (0..k).step_by(2) {
                        packed[i * ld + kk / 2] = nib[i * k + kk] | nib[i * k + kk + 1] << 4;
                    }
                }
                let w = match group {
                    Fp4Group::G32 => 32,
                    Fp4Group::G128 => 128,
                };
                assert_eq!(group.width(), w);
                let kg = k.div_ceil(w);
                let sb_codes: Vec<u8> = (0..n * kg).map(|_| r.random_range(100..=154u8)).collect();
                let sb_f32: Vec<f32> = sb_codes
                    .iter()
                    .map(|&c| ue8m0(c).unwrap().to_f64() as f32)
                    .collect();
                let scales = if codes_as_u8 {
                    Scales::Ue8m0(MatView::k_major(&sb_codes, n, kg, kg).unwrap())
                } else {
                    Scales::Ue8m0InF32(MatView::k_major(&sb_f32, n, kg, kg).unwrap())
                };
                let bo: Operand = Fp4Operand::new(&packed, n, k, ld, scales, group)
                    .unwrap()
                    .into();
                let bv: Vec<Dy> = (0..n * k)
                    .map(|x| e2m1(nib[x]).mul(ue8m0(sb_codes[(x / k) * kg + (x % k) / w]).unwrap()))
                    .collect();
                let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, true);
                for (with_c, out) in [(false, Out::Bf16), (true, Out::F32), (true, Out::Bf16)] {
                    let mut d = Dout::new(out, m, n, n);
                    gemm(&a.operand(), &bo, with_c.then(|| c.view()), &mut d.view()).unwrap();
                    Oracle::new(&av, &bv, with_c.then_some(&c.logical[..]), (m, n, k))
                        .check_all(&d);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. BF16 × BF16
// ---------------------------------------------------------------------------------------

#[test]
fn bf16_x_bf16_wide_exponents_both_outputs() {
    let mut r = rng(40);
    let (m, n, k) = (6, 35, 300);
    let a = Bf16Mat {
        rows: m,
        k,
        v: (0..m * k).map(|_| rand_bf16(&mut r, -40, 40)).collect(),
    };
    let b = Bf16Mat {
        rows: n,
        k,
        v: (0..n * k).map(|_| rand_bf16(&mut r, -40, 40)).collect(),
    };
    let (av, bv) = (a.values(), b.values());
    let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, false);
    for with_c in [false, true] {
        for out in [Out::Bf16, Out::F32, Out::F64] {
            let mut d = Dout::new(out, m, n, n + 3);
            gemm(
                &a.operand(),
                &b.operand(),
                with_c.then(|| c.view()),
                &mut d.view(),
            )
            .unwrap();
            Oracle::new(&av, &bv, with_c.then_some(&c.logical[..]), (m, n, k)).check_all(&d);
        }
    }
}

/// BF16 over its whole exponent range (subnormals included): outputs overflow to ±inf,
/// underflow to subnormals and zero of either sign.
#[test]
fn bf16_x_bf16_full_exponent_range_overflow_and_underflow() {
    let mut r = rng(41);
    let (m, n, k) = (8, 24, 64);
    for (lo, hi) in [(-133, -20), (20, 127), (-133, 127)] {
        let gen = |r: &mut ChaCha8Rng| {
            let x = rand_bf16(r, lo.max(-126), hi);
            if lo < -126 && r.random_range(0..4) == 0 {
                // a BF16 subnormal
                bf16::from_bits((x.to_bits() & 0x8000) | r.random_range(1..0x80u16))
            } else {
                x
            }
        };
        let a = Bf16Mat {
            rows: m,
            k,
            v: (0..m * k).map(|_| gen(&mut r)).collect(),
        };
        let b = Bf16Mat {
            rows: n,
            k,
            v: (0..n * k).map(|_| gen(&mut r)).collect(),
        };
        let (av, bv) = (a.values(), b.values());
        for out in [Out::Bf16, Out::F32] {
            let mut d = Dout::new(out, m, n, n);
            gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
            Oracle::new(&av, &bv, None, (m, n, k)).check_all(&d);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Adversarial exactness
// ---------------------------------------------------------------------------------------

/// A BF16 row vector from exact f64 values (each must be a BF16).
fn bf16_row(v: &[f64]) -> Vec<bf16> {
    v.iter()
        .map(|&x| {
            let b = bf16::from_f64(x);
            assert_eq!(b.to_f64(), x, "{x} is not a BF16");
            b
        })
        .collect()
}

/// One-element BF16 GEMM `Σ a_k·b_k` to `out`; returns the output bits.
fn bf16_dot(a: &[f64], b: &[f64], out: Out) -> u64 {
    let (a, b) = (bf16_row(a), bf16_row(b));
    let k = a.len();
    let mut d = Dout::new(out, 1, 1, 1);
    gemm(
        &MatView::k_major(&a, 1, k, k).unwrap().into(),
        &MatView::k_major(&b, 1, k, k).unwrap().into(),
        None,
        &mut d.view(),
    )
    .unwrap();
    let av: Vec<Dy> = a.iter().map(|x| bf16_dy(x.to_bits()).unwrap()).collect();
    let bv: Vec<Dy> = b.iter().map(|x| bf16_dy(x.to_bits()).unwrap()).collect();
    Oracle::new(&av, &bv, None, (1, 1, k)).check_all(&d);
    d.bits(0, 0)
}

fn p2(e: i32) -> f64 {
    2f64.powi(e)
}

#[test]
fn adversarial_tie_lost_by_f64_sum_rounds_correctly_bf16_gemm() {
    // F32 output: 1 + 2^-24 + 2^-80 must round up to 1 + 2^-23; the f64 sum is the
    // exact f32 tie 1 + 2^-24, which RNE takes down to 1.0.
    let naive = (1.0 + p2(-24) + p2(-80)) as f32;
    assert_eq!(naive, 1.0, "the f64 sum loses the sticky bit");
    let got = bf16_dot(&[1.0, p2(-24), p2(-80)], &[1.0, 1.0, 1.0], Out::F32);
    assert_eq!(got, (1.0f32 + f32::EPSILON).to_bits() as u64);

    // Mirror: 1 + 2^-23 + 2^-24 − 2^-80 lies just below the tie 1 + 3·2^-24 and must
    // round down to 1 + 2^-23 (the f64 sum is the tie, which RNE takes up to 1 + 2^-22).
    let naive = (1.0 + p2(-23) + p2(-24) - p2(-80)) as f32;
    assert_eq!(naive as f64, 1.0 + p2(-22));
    let got = bf16_dot(
        &[1.0, 1.0, p2(-24), -p2(-80)],
        &[1.0, p2(-23), 1.0, 1.0],
        Out::F32,
    );
    assert_eq!(got, (1.0f32 + f32::EPSILON).to_bits() as u64);

    // BF16 output: 1 + 2^-8 + 2^-80 → 1 + 2^-7 (the f64 sum is the BF16 tie 1 + 2^-8).
    let got = bf16_dot(&[1.0, p2(-8), p2(-80)], &[1.0, 1.0, 1.0], Out::Bf16);
    assert_eq!(got, bf16::from_f64(1.0 + p2(-7)).to_bits() as u64);
    // and its mirror: 1 + 2^-7 + 2^-8 − 2^-80 → 1 + 2^-7, not 1 + 2^-6.
    let got = bf16_dot(
        &[1.0, 1.0, p2(-8), -p2(-80)],
        &[1.0, p2(-7), 1.0, 1.0],
        Out::Bf16,
    );
    assert_eq!(got, bf16::from_f64(1.0 + p2(-7)).to_bits() as u64);
}

/// FP8 per-token A with three K blocks: block scales `sa`, code ±1.0 at k = 0, 128, 256
/// (sign from `signs`), zero elsewhere; B per-block, 1.0 at those positions.
fn fp8_three_block_dot(sa: [f32; 3], signs: [bool; 3], out: Out) -> u64 {
    let k = 384;
    let mut ac = vec![0u8; k];
    let mut bc = vec![0u8; k];
    for blk in 0..3 {
        ac[blk * 128] = if signs[blk] { 0xB8 } else { 0x38 }; // ∓1.0
        bc[blk * 128] = 0x38;
    }
    assert_eq!(e4m3(0x38), Some(Dy::new(8, -3)));
    let a = Fp8 {
        rows: 1,
        k,
        codes: ac,
        sc: Sc::F32(sa.to_vec()),
        recipe: Fp8Recipe::PerToken,
    };
    let b = Fp8 {
        rows: 1,
        k,
        codes: bc,
        sc: Sc::F32(vec![1.0; 3]),
        recipe: Fp8Recipe::PerBlock,
    };
    let mut d = Dout::new(out, 1, 1, 1);
    gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
    let (av, bv) = (a.values(), b.values());
    Oracle::new(&av, &bv, None, (1, 1, k)).check_all(&d);
    d.bits(0, 0)
}

#[test]
fn adversarial_tie_through_fp8_block_scales() {
    let one_ulp = (1.0f32 + f32::EPSILON).to_bits() as u64;
    let s = [1.0, p2(-24) as f32, p2(-80) as f32];
    assert_eq!(fp8_three_block_dot(s, [false; 3], Out::F32), one_ulp);
    // mirror: scales [1 + 2^-23, 2^-24, 2^-80], last code −1 → down to 1 + 2^-23.
    let s = [1.0 + f32::EPSILON, p2(-24) as f32, p2(-80) as f32];
    assert_eq!(
        fp8_three_block_dot(s, [false, false, true], Out::F32),
        one_ulp
    );
    // BF16 output: 1 + 2^-8 + 2^-80 → 1 + 2^-7.
    let s = [1.0, p2(-8) as f32, p2(-80) as f32];
    assert_eq!(
        fp8_three_block_dot(s, [false; 3], Out::Bf16),
        bf16::from_f64(1.0 + p2(-7)).to_bits() as u64
    );
}

#[test]
fn adversarial_total_cancellation_gives_positive_zero() {
    let mut r = rng(50);
    let (m, n, k) = (7, 33, 128);
    // Integer-valued codes |x| <= 8 and power-of-two scales: A·Bᵀ is exact in f32, so
    // C = −(A·Bᵀ) cancels it exactly.
    let ints: Vec<u8> = (0u8..=0xFF)
        .filter(|&c| {
            e4m3(c).is_some_and(|d| d.e >= 0 || d.m % (1 << -d.e) == 0)
                && e4m3(c).unwrap().to_f64().abs() <= 8.0
        })
        .collect();
    assert_eq!(ints.len(), 18); // ±0, ±1..=8
    let mk = |r: &mut ChaCha8Rng, rows: usize, recipe| {
        let codes = (0..rows * k)
            .map(|_| ints[r.random_range(0..ints.len())])
            .collect();
        let (sr, sc) = Fp8::scale_shape(rows, k, recipe);
        Fp8 {
            rows,
            k,
            codes,
            sc: Sc::Ue8m0InF32((0..sr * sc).map(|_| rand_pow2(r, -3, 3)).collect()),
            recipe,
        }
    };
    let a = mk(&mut r, m, Fp8Recipe::PerToken);
    let b = mk(&mut r, n, Fp8Recipe::PerBlock);
    let (av, bv) = (a.values(), b.values());
    let o = Oracle::new(&av, &bv, None, (m, n, k));
    let mut c = Vec::new();
    let mut nonzero = 0;
    for i in 0..m {
        for j in 0..n {
            let ex = o.exact(i, j);
            let f = round_f32(&ex);
            assert_eq!(
                Exact::from_dy(f32_dy(f).unwrap()).sub(&ex).n,
                0u32.into(),
                "not exact in f32"
            );
            nonzero += usize::from(f != 0.0);
            c.push(-f);
        }
    }
    assert!(nonzero > m * n / 2);
    let c = CMat::new(c, m, n, true);
    for out in [Out::Bf16, Out::F32] {
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d.view()).unwrap();
        for i in 0..m {
            for j in 0..n {
                assert_eq!(d.bits(i, j), 0, "D[{i}, {j}] is not +0");
            }
        }
        Oracle::new(&av, &bv, Some(&c.logical), (m, n, k)).check_all(&d);
    }

    // Row pairs that cancel inside the dot product: b = [y, −y, ...], a = [x, x, ...];
    // plus −0 codes everywhere in one A row and C = −0: every result is +0.
    let k = 256;
    let mut ac = vec![0u8; 2 * k];
    let mut bc = vec![0u8; 3 * k];
    for kk in (0..k).step_by(2) {
        let x = rand_e4m3(&mut r);
        ac[kk] = x;
        ac[kk + 1] = x;
        for j in 0..3 {
            let y = rand_e4m3(&mut r);
            bc[j * k + kk] = y;
            bc[j * k + kk + 1] = y ^ 0x80;
        }
    }
    ac[k..].iter_mut().for_each(|x| *x = 0x80);
    let a = Fp8 {
        rows: 2,
        k,
        codes: ac,
        sc: Sc::F32(vec![3.0, 0.75, 5.0, 1.5]),
        recipe: Fp8Recipe::PerToken,
    };
    let b = Fp8 {
        rows: 3,
        k,
        codes: bc,
        sc: Sc::F32(vec![7.0, 0.125]),
        recipe: Fp8Recipe::PerBlock,
    };
    let c = CMat::new(vec![-0.0; 6], 2, 3, false);
    for with_c in [false, true] {
        for out in [Out::Bf16, Out::F32] {
            let mut d = Dout::new(out, 2, 3, 3);
            gemm(
                &a.operand(),
                &b.operand(),
                with_c.then(|| c.view()),
                &mut d.view(),
            )
            .unwrap();
            for i in 0..2 {
                for j in 0..3 {
                    assert_eq!(d.bits(i, j), 0, "D[{i}, {j}] is not +0 (with_c {with_c})");
                }
            }
        }
    }
}

#[test]
fn adversarial_huge_cancellation_leaves_tiny_residue() {
    let mut r = rng(51);
    let (m, n, k) = (4, 12, 384);
    // Block 0 of A row i: random codes x_k with a huge scale S_i; block 1: the same codes
    // negated, same scale; block 2: random codes with a tiny scale. B is per-block with
    // identical blocks 0 and 1. The exact result is block 2 alone (~2^-100 against
    // partial sums ~2^100).
    let mut ac = vec![0u8; m * k];
    let mut sa = vec![0f32; m * 3];
    for i in 0..m {
        for kk in 0..128 {
            let x = rand_e4m3(&mut r);
            ac[i * k + kk] = x;
            ac[i * k + 128 + kk] = x ^ 0x80;
            ac[i * k + 256 + kk] = rand_e4m3(&mut r);
        }
        let big = rand_f32_scale(&mut r, 95, 100);
        sa[i * 3] = big;
        sa[i * 3 + 1] = big;
        sa[i * 3 + 2] = rand_f32_scale(&mut r, -100, -95);
    }
    let mut bc = vec![0u8; n * k];
    for j in 0..n {
        for kk in 0..128 {
            let y = rand_e4m3(&mut r);
            bc[j * k + kk] = y;
            bc[j * k + 128 + kk] = y;
            bc[j * k + 256 + kk] = rand_e4m3(&mut r);
        }
    }
    let a = Fp8 {
        rows: m,
        k,
        codes: ac,
        sc: Sc::F32(sa),
        recipe: Fp8Recipe::PerToken,
    };
    let b = Fp8 {
        rows: n,
        k,
        codes: bc,
        sc: Sc::F32(vec![1.0, 1.0, rand_f32_scale(&mut r, -5, 5)]),
        recipe: Fp8Recipe::PerBlock,
    };
    let (av, bv) = (a.values(), b.values());
    let o = Oracle::new(&av, &bv, None, (m, n, k));
    let mut tiny = 0;
    for out in [Out::Bf16, Out::F32, Out::F64] {
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
        o.check_all(&d);
        for i in 0..m {
            for j in 0..n {
                let v = d.get_f64(i, j).abs();
                tiny += usize::from(out != Out::F64 && v != 0.0 && v < 1e-20);
            }
        }
    }
    assert!(tiny > m * n, "residues not tiny: {tiny}");

    // The same structure through C: C = 2^100·u (f32), A row = [−1.0 at k = 0 with scale
    // C] + tiny block: exact result = tiny block.
    let huge = rand_f32_scale(&mut r, 100, 100);
    let k = 256;
    let mut ac = vec![0u8; k];
    ac[0] = 0xB8; // −1.0
    for x in &mut ac[128..] {
        *x = rand_e4m3(&mut r);
    }
    let a = Fp8 {
        rows: 1,
        k,
        codes: ac,
        sc: Sc::F32(vec![huge, rand_f32_scale(&mut r, -100, -100)]),
        recipe: Fp8Recipe::PerToken,
    };
    let mut bc: Vec<u8> = (0..k).map(|_| rand_e4m3(&mut r)).collect();
    bc[0] = 0x38;
    let b = Fp8 {
        rows: 1,
        k,
        codes: bc,
        sc: Sc::F32(vec![1.0, 1.0]),
        recipe: Fp8Recipe::PerBlock,
    };
    let (av, bv) = (a.values(), b.values());
    let c = CMat::new(vec![huge], 1, 1, false);
    for out in [Out::Bf16, Out::F32] {
        let mut d = Dout::new(out, 1, 1, 1);
        gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d.view()).unwrap();
        Oracle::new(&av, &bv, Some(&c.logical), (1, 1, k)).check_all(&d);
        let v = d.get_f64(0, 0).abs();
        assert!(v > 0.0 && v < 1e-20, "residue {v}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. Edge shapes
// ---------------------------------------------------------------------------------------

#[test]
fn edge_m1088_n2048_k2048_sampled_rows_columns_and_random_elements() {
    let mut r = rng(60);
    let (m, n, k) = (1088, 2048, 2048);
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let mut d = Dout::new(Out::Bf16, m, n, n);
    gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
    let (av, bv) = (a.values(), b.values());
    let o = Oracle::new(&av, &bv, None, (m, n, k));
    let mut elems: Vec<(usize, usize)> = Vec::new();
    for j in 0..n {
        elems.push((0, j));
        elems.push((m - 1, j));
    }
    for i in 0..m {
        elems.push((i, 0));
        elems.push((i, n - 1));
    }
    for _ in 0..300 {
        elems.push((r.random_range(0..m), r.random_range(0..n)));
    }
    for (i, j) in elems {
        o.check_at(&d, i, i, j);
    }
}

#[test]
fn edge_n576_and_n2112_not_multiples_of_128() {
    let mut r = rng(61);
    for n in [576, 2112] {
        let (m, k) = (3, 256);
        let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
        let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
        let (av, bv) = (a.values(), b.values());
        let mut d = Dout::new(Out::Bf16, m, n, n);
        gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
        Oracle::new(&av, &bv, None, (m, n, k)).check_all(&d);
    }
}

#[test]
fn edge_m7_n33_k1152_and_a_leading_stride_384() {
    let mut r = rng(62);
    // M = 7, N = 33, K = 1152 (9 blocks), every element.
    let (m, n, k) = (7, 33, 1152);
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let (av, bv) = (a.values(), b.values());
    let mut d = Dout::new(Out::F32, m, n, n);
    gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
    Oracle::new(&av, &bv, None, (m, n, k)).check_all(&d);

    // A [M, 256] with leading stride 384; the 128 padding bytes per row are NaN codes.
    let (m, n, k) = (7, 33, 256);
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let a384 = store_k_major(&a.codes, m, k, 384, 0xFF);
    let (sr, sc) = Fp8::scale_shape(m, k, Fp8Recipe::PerToken);
    let ao: Operand = Fp8Operand::new(
        MatView::k_major(&a384, m, k, 384).unwrap(),
        a.sc.view(sr, sc),
        Fp8Recipe::PerToken,
    )
    .unwrap()
    .into();
    let (av, bv) = (a.values(), b.values());
    let mut d = Dout::new(Out::Bf16, m, n, n);
    gemm(&ao, &b.operand(), None, &mut d.view()).unwrap();
    Oracle::new(&av, &bv, None, (m, n, k)).check_all(&d);
}

#[test]
fn edge_k0_gives_c_and_empty_shapes_write_nothing() {
    let mut r = rng(63);
    let (m, n) = (3, 5);
    let a = Fp8::random(&mut r, m, 0, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, 0, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let cl: Vec<f32> = (0..m * n)
        .map(|_| rand_f32_signed(&mut r, -126, 100))
        .collect();
    let c = CMat::new(cl.clone(), m, n, true);
    for out in [Out::Bf16, Out::F32] {
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d.view()).unwrap();
        Oracle::new(&[], &[], Some(&cl), (m, n, 0)).check_all(&d);
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
        (0..m).for_each(|i| (0..n).for_each(|j| assert_eq!(d.bits(i, j), 0)));
    }
    // M = 0: nothing to do, nothing written.
    let a = Fp8::random(&mut r, 0, 128, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, 128, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let mut d = Dout::new(Out::F32, 0, n, n);
    gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
}

// ---------------------------------------------------------------------------------------
// 7. Non-finite inputs
// ---------------------------------------------------------------------------------------

#[test]
fn nan_code_in_a_row_makes_that_d_row_nan_only() {
    let mut r = rng(70);
    let (m, n, k) = (6, 33, 384);
    let mut a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32);
    let bv = b.values();
    let clean = a.values();
    a.codes[2 * k + 200] = 0x7F;
    a.codes[4 * k + 5] = 0xFF;
    for out in [Out::Bf16, Out::F32, Out::F64] {
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), None, &mut d.view()).unwrap();
        let o = Oracle::new(&clean, &bv, None, (m, n, k));
        for i in 0..m {
            for j in 0..n {
                if i == 2 || i == 4 {
                    assert!(
                        d.get_f64(i, j).is_nan() && !d.is_poison(i, j),
                        "{out:?} D[{i}, {j}] not NaN"
                    );
                } else {
                    o.check_at(&d, i, i, j);
                }
            }
        }
    }
}

#[test]
fn bf16_inf_in_a_row_propagates_as_ieee() {
    let mut r = rng(71);
    let (m, n, k) = (4, 9, 64);
    let mut a = Bf16Mat {
        rows: m,
        k,
        v: (0..m * k).map(|_| rand_bf16(&mut r, -10, 10)).collect(),
    };
    let mut b = Bf16Mat {
        rows: n,
        k,
        v: (0..n * k).map(|_| rand_bf16(&mut r, -10, 10)).collect(),
    };
    let clean = a.values();
    // Row 1 of A gets +inf at k = 3. B[j][3]: positive for j < 4, negative for 4..8,
    // zero for j = 8 (inf·0 = NaN).
    a.v[k + 3] = bf16::INFINITY;
    for j in 0..n {
        b.v[j * k + 3] = match j {
            0..=3 => bf16::from_f32(1.5),
            4..=7 => bf16::from_f32(-0.25),
            _ => bf16::ZERO,
        };
    }
    let bv = b.values();
    // C: a NaN and an inf element in row 3 (IEEE: C + product).
    let mut cl: Vec<f32> = (0..m * n).map(|_| rand_f32_signed(&mut r, -5, 5)).collect();
    cl[3 * n] = f32::NAN;
    cl[3 * n + 1] = f32::NEG_INFINITY;
    let c = CMat::new(cl.clone(), m, n, false);
    for out in [Out::Bf16, Out::F32] {
        let mut d = Dout::new(out, m, n, n);
        gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d.view()).unwrap();
        let mut cfin = cl.clone();
        cfin[3 * n] = 0.0;
        cfin[3 * n + 1] = 0.0;
        let o = Oracle::new(&clean, &bv, Some(&cfin), (m, n, k));
        for i in 0..m {
            for j in 0..n {
                let v = d.get_f64(i, j);
                match (i, j) {
                    (1, 0..=3) => assert_eq!(v, f64::INFINITY, "D[1, {j}]"),
                    (1, 4..=7) => assert_eq!(v, f64::NEG_INFINITY, "D[1, {j}]"),
                    (1, _) => assert!(v.is_nan(), "D[1, {j}] = {v}"),
                    (3, 0) => assert!(v.is_nan(), "D[3, 0] = {v}"),
                    (3, 1) => assert_eq!(v, f64::NEG_INFINITY),
                    _ => o.check_at(&d, i, i, j),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 8. Grouped GEMMs
// ---------------------------------------------------------------------------------------

#[test]
fn m_grouped_contiguous_per_row_with_padding_empty_group_unsorted() {
    let mut r = rng(80);
    let (m, n, k, groups) = (40, 33, 256, 4);
    // group 2 is empty; rows in a shuffled order; -1 padding rows.
    let idx: Vec<i32> = (0..m)
        .map(|_| [0, 1, 3, -1][r.random_range(0..4)])
        .collect();
    assert!(idx.contains(&-1) && !idx.contains(&2));
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let bs: Vec<Fp8> = (0..groups)
        .map(|_| Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32))
        .collect();
    let av = a.values();
    let bvs: Vec<Vec<Dy>> = bs.iter().map(Fp8::values).collect();
    let bops: Vec<Operand> = bs.iter().map(Fp8::operand).collect();
    let cl: Vec<f32> = (0..m * n)
        .map(|_| rand_f32_signed(&mut r, -20, 20))
        .collect();
    let c = CMat::new(cl.clone(), m, n, true);
    for (with_c, out) in [(false, Out::Bf16), (true, Out::F32)] {
        let mut d = Dout::new(out, m, n, n + 1);
        m_grouped_gemm_contiguous(
            &a.operand(),
            &bops,
            MGroupLayout::PerRow(&idx),
            with_c.then(|| c.view()),
            &mut d.view(),
        )
        .unwrap();
        d.assert_gaps_untouched();
        for (i, &g) in idx.iter().enumerate() {
            if g < 0 {
                d.assert_row_untouched(i, "padding row");
                continue;
            }
            let o = Oracle::new(&av, &bvs[g as usize], with_c.then_some(&cl[..]), (m, n, k));
            (0..n).for_each(|j| o.check_at(&d, i, i, j));
        }
    }
}

#[test]
fn m_grouped_contiguous_psum_layout_align_128_and_1() {
    let mut r = rng(81);
    let (n, k) = (20, 128);
    // (ends, align, M): each group owns [round_up(prev_end, align), end); group 1 of the
    // first case is empty (its end is the aligned start), as DeepGEMM encodes it.
    let cases: [(&[i32], usize, usize); 2] = [(&[5, 128, 140], 128, 150), (&[3, 3, 10, 10], 1, 12)];
    for (ends, align, m) in cases {
        let groups = ends.len();
        let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
        let bs: Vec<Fp8> = (0..groups)
            .map(|_| Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32))
            .collect();
        let av = a.values();
        let bvs: Vec<Vec<Dy>> = bs.iter().map(Fp8::values).collect();
        let bops: Vec<Operand> = bs.iter().map(Fp8::operand).collect();
        let mut owner = vec![None; m];
        let mut prev = 0usize;
        for (g, &e) in ends.iter().enumerate() {
            let start = if g == 0 {
                0
            } else {
                prev.next_multiple_of(align)
            };
            for o in owner.iter_mut().take(e as usize).skip(start) {
                *o = Some(g);
            }
            prev = e as usize;
        }
        let owned = owner.iter().filter(|o| o.is_some()).count();
        assert!(owned > 0 && owned < m, "the case must leave rows untouched");
        for out in [Out::Bf16, Out::F32] {
            let mut d = Dout::new(out, m, n, n);
            m_grouped_gemm_contiguous(
                &a.operand(),
                &bops,
                MGroupLayout::Psum { ends, align },
                None,
                &mut d.view(),
            )
            .unwrap();
            for (i, g) in owner.iter().enumerate() {
                match g {
                    None => d.assert_row_untouched(i, "row outside every psum group"),
                    Some(g) => {
                        let o = Oracle::new(&av, &bvs[*g], None, (m, n, k));
                        (0..n).for_each(|j| o.check_at(&d, i, i, j));
                    }
                }
            }
        }
    }
}

#[test]
fn m_grouped_masked_rows_beyond_masked_m_untouched() {
    let mut r = rng(82);
    let (groups, max_m, n, k) = (3, 5, 33, 256);
    let masked = [0, max_m as i32, 3];
    let m = groups * max_m;
    let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, ScaleGen::WideF32);
    let bs: Vec<Fp8> = (0..groups)
        .map(|_| Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, ScaleGen::WideF32))
        .collect();
    let av = a.values();
    let bvs: Vec<Vec<Dy>> = bs.iter().map(Fp8::values).collect();
    let bops: Vec<Operand> = bs.iter().map(Fp8::operand).collect();
    let cl: Vec<f32> = (0..m * n)
        .map(|_| rand_f32_signed(&mut r, -20, 20))
        .collect();
    let c = CMat::new(cl.clone(), m, n, false);
    for (with_c, out) in [(false, Out::Bf16), (true, Out::F32), (true, Out::Bf16)] {
        let mut d = Dout::new(out, m, n, n);
        m_grouped_gemm_masked(
            &a.operand(),
            &bops,
            &masked,
            with_c.then(|| c.view()),
            &mut d.view(),
        )
        .unwrap();
        for g in 0..groups {
            for rr in 0..max_m {
                let i = g * max_m + rr;
                if rr >= masked[g] as usize {
                    d.assert_row_untouched(i, "row beyond masked_m");
                } else {
                    let o = Oracle::new(&av, &bvs[g], with_c.then_some(&cl[..]), (m, n, k));
                    (0..n).for_each(|j| o.check_at(&d, i, i, j));
                }
            }
        }
    }
}

#[test]
fn k_grouped_views_into_concatenated_buffers_accumulate_into_c() {
    let mut r = rng(83);
    let (m, n) = (6, 10);
    let ks = [128usize, 0, 384];
    let sum_k: usize = ks.iter().sum();
    let groups = ks.len();
    // A stored [sumK, M] (MN-major, ld M + 2), B stored [sumK, N] (MN-major, ld N);
    // per-token scales stored [Σ ceil(K_g/128), M] and [.., N], MN-major.
    let (lda, ldb) = (m + 2, n);
    let a_codes: Vec<u8> = (0..sum_k * lda).map(|_| rand_e4m3(&mut r)).collect();
    let b_codes: Vec<u8> = (0..sum_k * ldb).map(|_| rand_e4m3(&mut r)).collect();
    let kbs: usize = ks.iter().map(|k| k.div_ceil(128)).sum();
    let sfa: Vec<f32> = (0..kbs * m)
        .map(|_| rand_f32_scale(&mut r, -20, 20))
        .collect();
    let sfb: Vec<f32> = (0..kbs * n)
        .map(|_| rand_f32_scale(&mut r, -20, 20))
        .collect();
    let cl: Vec<f32> = (0..groups * m * n)
        .map(|_| rand_f32_signed(&mut r, -10, 30))
        .collect();
    assert!(cl.iter().all(|&x| x != 0.0));
    let mut a_ops = Vec::new();
    let mut b_ops = Vec::new();
    let mut vals = Vec::new();
    let (mut koff, mut kboff) = (0, 0);
    for &kg in &ks {
        let kb = kg.div_ceil(128);
        let av = MatView::mn_major(&a_codes[koff * lda..], m, kg, lda).unwrap();
        let bv = MatView::mn_major(&b_codes[koff * ldb..], n, kg, ldb).unwrap();
        let sa = Scales::F32(MatView::mn_major(&sfa[kboff * m..], m, kb, m).unwrap());
        let sb = Scales::F32(MatView::mn_major(&sfb[kboff * n..], n, kb, n).unwrap());
        a_ops.push(Operand::from(
            Fp8Operand::new(av, sa, Fp8Recipe::PerToken).unwrap(),
        ));
        b_ops.push(Operand::from(
            Fp8Operand::new(bv, sb, Fp8Recipe::PerToken).unwrap(),
        ));
        // independent values: element (i, kk) of group g is code[(koff + kk)·ld + i] ×
        // scale[(kboff + kk/128)·rows + i]
        let deq = |codes: &[u8], sf: &[f32], rows: usize, ld: usize| -> Vec<Dy> {
            let mut v = Vec::new();
            for i in 0..rows {
                for kk in 0..kg {
                    let s = f32_dy(sf[(kboff + kk / 128) * rows + i]).unwrap();
                    v.push(e4m3(codes[(koff + kk) * ld + i]).unwrap().mul(s));
                }
            }
            v
        };
        vals.push((deq(&a_codes, &sfa, m, lda), deq(&b_codes, &sfb, n, ldb)));
        koff += kg;
        kboff += kb;
    }
    let c = CMat::new(cl.clone(), groups * m, n, false);
    let mut d = Dout::new(Out::F32, groups * m, n, n);
    k_grouped_gemm(&a_ops, &b_ops, Some(c.view()), &mut d.view()).unwrap();
    for g in 0..groups {
        // the dense GEMM on this group's slice
        let cg = MatView::k_major(&cl[g * m * n..], m, n, n).unwrap();
        let mut dg = Dout::new(Out::F32, m, n, n);
        gemm(&a_ops[g], &b_ops[g], Some(cg), &mut dg.view()).unwrap();
        let (av, bv) = &vals[g];
        let o = Oracle::new(av, bv, Some(&cl[g * m * n..(g + 1) * m * n]), (m, n, ks[g]));
        for i in 0..m {
            for j in 0..n {
                assert_eq!(
                    d.bits(g * m + i, j),
                    dg.bits(i, j),
                    "group {g} D[{i}, {j}] vs dense gemm"
                );
                o.check_at(&d, g * m + i, i, j);
                if ks[g] == 0 {
                    assert_eq!(
                        d.bits(g * m + i, j),
                        cl[(g * m + i) * n + j].to_bits() as u64
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 9. Errors: typed, never a panic
// ---------------------------------------------------------------------------------------

fn ok_fp8(r: &mut ChaCha8Rng, rows: usize, k: usize, recipe: Fp8Recipe) -> Fp8 {
    Fp8::random(r, rows, k, recipe, ScaleGen::WideF32)
}

#[test]
fn errors_shapes_k_d_c_and_scale_shape_for_recipe() {
    let mut r = rng(90);
    let a = ok_fp8(&mut r, 4, 256, Fp8Recipe::PerToken);
    let b = ok_fp8(&mut r, 6, 256, Fp8Recipe::PerBlock);
    let b384 = ok_fp8(&mut r, 6, 384, Fp8Recipe::PerBlock);
    let mut d = Dout::new(Out::F32, 4, 6, 6);
    // K mismatch
    let e = gemm(&a.operand(), &b384.operand(), None, &mut d.view()).unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "b", .. }), "{e:?}");
    // D shape mismatch
    let mut d_bad = Dout::new(Out::F32, 4, 5, 6);
    let e = gemm(&a.operand(), &b.operand(), None, &mut d_bad.view()).unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "d", .. }), "{e:?}");
    // C shape mismatch
    let cbuf = vec![0f32; 64];
    let c = MatView::k_major(&cbuf, 6, 4, 4).unwrap();
    let e = gemm(&a.operand(), &b.operand(), Some(c), &mut d.view()).unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "c", .. }), "{e:?}");
    // ... also when only one dimension is wrong
    for (rows, cols) in [(4, 5), (3, 6)] {
        let c = MatView::k_major(&cbuf, rows, cols, cols).unwrap();
        let e = gemm(&a.operand(), &b.operand(), Some(c), &mut d.view()).unwrap_err();
        assert!(
            matches!(e, Error::Shape { tensor: "c", .. }),
            "[{rows}, {cols}]: {e:?}"
        );
    }
    // scale shapes that do not match the recipe
    let codes = MatView::k_major(&a.codes, 4, 256, 256).unwrap();
    let s = vec![1f32; 16];
    for (sr, sc, recipe) in [
        (1, 2, Fp8Recipe::PerToken), // per-block shape given to a per-token operand
        (4, 2, Fp8Recipe::PerBlock), // per-token shape given to a per-block operand
        (4, 3, Fp8Recipe::PerToken), // wrong number of K blocks
        (4, 1, Fp8Recipe::PerToken),
    ] {
        let sv = Scales::F32(MatView::k_major(&s, sr, sc, sc).unwrap());
        let e = Fp8Operand::new(codes, sv, recipe).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Shape {
                    tensor: "scales",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // FP4: odd K, wrong scale shape
    let packed = vec![0u8; 64];
    let sc = vec![127u8; 16];
    let e = Fp4Operand::new(
        &packed,
        2,
        7,
        8,
        Scales::Ue8m0(MatView::k_major(&sc, 2, 1, 1).unwrap()),
        Fp4Group::G32,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = Fp4Operand::new(
        &packed,
        2,
        64,
        32,
        Scales::Ue8m0(MatView::k_major(&sc, 2, 1, 1).unwrap()),
        Fp4Group::G32,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Shape {
                tensor: "scales",
                ..
            }
        ),
        "{e:?}"
    );
    // D must be untouched by every failed call
    for i in 0..4 {
        d.assert_row_untouched(i, "failed call");
    }
}

#[test]
fn errors_invalid_scale_values() {
    let mut r = rng(91);
    let a = ok_fp8(&mut r, 4, 256, Fp8Recipe::PerToken);
    let b = ok_fp8(&mut r, 6, 256, Fp8Recipe::PerBlock);
    let codes_a = MatView::k_major(&a.codes, 4, 256, 256).unwrap();
    // Non-power-of-two (and zero, negative, subnormal 2^-128) with Ue8m0InF32; the
    // scales are given MN-major, and the error index is the logical row-major index.
    let sub_2m128 = f32::from_bits(1 << 21); // 2^-128, an f32 subnormal
    for bad in [3.0f32, 0.0, -1.0, sub_2m128, 1.5 * 2f32.powi(127)] {
        let mut s = vec![1f32; 8];
        // logical (2, 1) → flat 5; stored MN-major [2, 4]: at 1·4 + 2 = 6
        s[6] = bad;
        let sv = Scales::Ue8m0InF32(MatView::mn_major(&s, 4, 2, 4).unwrap());
        let ao: Operand = Fp8Operand::new(codes_a, sv, Fp8Recipe::PerToken)
            .unwrap()
            .into();
        let mut d = Dout::new(Out::Bf16, 4, 6, 6);
        let e = gemm(&ao, &b.operand(), None, &mut d.view()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Scale {
                    tensor: "sfa",
                    index: 5,
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
        (0..4).for_each(|i| d.assert_row_untouched(i, "failed call"));
    }
    // the extremes 2^-127 (an f32 subnormal) and 2^127 are valid UE8M0 values
    let s = [f32::from_bits(1 << 22), 2f32.powi(127)].repeat(4); // 2^-127 (subnormal), 2^127
    let sv = Scales::Ue8m0InF32(MatView::k_major(&s, 4, 2, 2).unwrap());
    let ao: Operand = Fp8Operand::new(codes_a, sv, Fp8Recipe::PerToken)
        .unwrap()
        .into();
    let mut d = Dout::new(Out::F32, 4, 6, 6);
    gemm(&ao, &b.operand(), None, &mut d.view()).unwrap();
    // NaN / inf FP32 scales in B
    let codes_b = MatView::k_major(&b.codes, 6, 256, 256).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let s = [1.0, bad];
        let bo: Operand = Fp8Operand::new(
            codes_b,
            Scales::F32(MatView::k_major(&s, 1, 2, 2).unwrap()),
            Fp8Recipe::PerBlock,
        )
        .unwrap()
        .into();
        let mut d = Dout::new(Out::Bf16, 4, 6, 6);
        let e = gemm(&a.operand(), &bo, None, &mut d.view()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Scale {
                    tensor: "sfb",
                    index: 1,
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
    }
    // UE8M0 code 0xFF in FP4 scales and in FP8 scales
    let packed = vec![0x21u8; 6 * 128];
    let mut sc = vec![127u8; 6 * 8];
    sc[13] = 0xFF;
    let bo: Operand = Fp4Operand::new(
        &packed,
        6,
        256,
        128,
        Scales::Ue8m0(MatView::k_major(&sc, 6, 8, 8).unwrap()),
        Fp4Group::G32,
    )
    .unwrap()
    .into();
    let mut d = Dout::new(Out::Bf16, 4, 6, 6);
    let e = gemm(&a.operand(), &bo, None, &mut d.view()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Scale {
                tensor: "sfb",
                index: 13,
                ..
            }
        ),
        "{e:?}"
    );
    let sc8 = [127u8, 0xFF];
    let bo: Operand = Fp8Operand::new(
        codes_b,
        Scales::Ue8m0(MatView::k_major(&sc8, 1, 2, 2).unwrap()),
        Fp8Recipe::PerBlock,
    )
    .unwrap()
    .into();
    let e = gemm(&a.operand(), &bo, None, &mut d.view()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Scale {
                tensor: "sfb",
                index: 1,
                ..
            }
        ),
        "{e:?}"
    );
    // FP32 scales for FP4 are rejected at construction
    let f = vec![1f32; 48];
    let e = Fp4Operand::new(
        &packed,
        6,
        256,
        128,
        Scales::F32(MatView::k_major(&f, 6, 8, 8).unwrap()),
        Fp4Group::G32,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Argument { .. }), "{e:?}");
}

#[test]
fn errors_unsupported_operand_pairs() {
    let mut r = rng(92);
    let a_tok = ok_fp8(&mut r, 4, 128, Fp8Recipe::PerToken);
    let a_blk = ok_fp8(&mut r, 4, 128, Fp8Recipe::PerBlock);
    let b_blk = ok_fp8(&mut r, 6, 128, Fp8Recipe::PerBlock);
    let bf_a = vec![bf16::ONE; 4 * 128];
    let bf_b = vec![bf16::ONE; 6 * 128];
    let bfa: Operand = MatView::k_major(&bf_a, 4, 128, 128).unwrap().into();
    let bfb: Operand = MatView::k_major(&bf_b, 6, 128, 128).unwrap().into();
    let packed = vec![0x22u8; 6 * 64];
    let sc = vec![127u8; 6 * 4];
    let fp4 = |rows| -> Operand {
        Fp4Operand::new(
            &packed,
            rows,
            128,
            64,
            Scales::Ue8m0(MatView::k_major(&sc, rows, 4, 4).unwrap()),
            Fp4Group::G32,
        )
        .unwrap()
        .into()
    };
    let pairs: [(&str, Operand, Operand); 6] = [
        ("FP4 as A", fp4(4), b_blk.operand()),
        ("BF16 A, FP8 B", bfa, b_blk.operand()),
        ("FP8 A, BF16 B", a_tok.operand(), bfb),
        ("per-block A", a_blk.operand(), b_blk.operand()),
        ("per-block A, FP4 B", a_blk.operand(), fp4(6)),
        ("BF16 A, FP4 B", bfa, fp4(6)),
    ];
    for (what, a, b) in pairs {
        let mut d = Dout::new(Out::Bf16, 4, 6, 6);
        let e = gemm(&a, &b, None, &mut d.view()).unwrap_err();
        assert!(matches!(e, Error::Argument { .. }), "{what}: {e:?}");
        let e =
            m_grouped_gemm_contiguous(&a, &[b], MGroupLayout::PerRow(&[0; 4]), None, &mut d.view())
                .unwrap_err();
        assert!(
            matches!(e, Error::Argument { .. }),
            "{what} (grouped): {e:?}"
        );
        (0..4).for_each(|i| d.assert_row_untouched(i, what));
    }
}

#[test]
fn errors_views_out_of_bounds() {
    let data = vec![0u8; 100];
    let e = MatView::k_major(&data, 10, 11, 11).unwrap_err();
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    let e = MatView::k_major(&data, 4, 20, 19).unwrap_err(); // ld < cols
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    let e = MatView::mn_major(&data, 11, 10, 10).unwrap_err(); // ld < rows
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    let e = MatView::mn_major(&data, 10, 11, 10).unwrap_err(); // too short
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    let e = MatView::strided(&data, 2, 2, usize::MAX, 1).unwrap_err(); // overflow
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    assert!(MatView::k_major(&data, 10, 10, 10).is_ok());
    assert!(MatView::k_major(&data, 5, 10, 20).is_ok()); // last row ends at 4·20 + 10 = 90
                                                         // FP4 packed buffer too short / ld too small
    let sc = vec![127u8; 8];
    let e = Fp4Operand::new(
        &data,
        4,
        64,
        32,
        Scales::Ue8m0(MatView::k_major(&sc, 4, 2, 2).unwrap()),
        Fp4Group::G32,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    let e = Fp4Operand::new(
        &data,
        2,
        64,
        31,
        Scales::Ue8m0(MatView::k_major(&sc, 2, 2, 2).unwrap()),
        Fp4Group::G32,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
    // OutView too short, ld < cols
    let mut buf = vec![0f32; 20];
    let e = OutView::new(OutBuf::F32(&mut buf), 3, 7, 7).unwrap_err();
    assert!(matches!(e, Error::Stride { tensor: "d", .. }), "{e:?}");
    let e = OutView::new(OutBuf::F32(&mut buf), 2, 7, 6).unwrap_err();
    assert!(matches!(e, Error::Stride { tensor: "d", .. }), "{e:?}");
    assert!(OutView::new(OutBuf::F32(&mut buf), 2, 6, 14).is_ok()); // 14 + 6 = 20
    let mut bbuf = vec![bf16::ZERO; 5];
    let e = OutView::new(OutBuf::Bf16(&mut bbuf), 2, 3, 3).unwrap_err();
    assert!(matches!(e, Error::Stride { .. }), "{e:?}");
}

#[test]
fn errors_grouped_layouts() {
    let mut r = rng(93);
    let (m, n, k) = (8, 6, 128);
    let a = ok_fp8(&mut r, m, k, Fp8Recipe::PerToken);
    let bs: Vec<Fp8> = (0..2)
        .map(|_| ok_fp8(&mut r, n, k, Fp8Recipe::PerBlock))
        .collect();
    let bops: Vec<Operand> = bs.iter().map(Fp8::operand).collect();
    let mut d = Dout::new(Out::Bf16, m, n, n);
    let run = |layout: MGroupLayout, d: &mut Dout| {
        m_grouped_gemm_contiguous(&a.operand(), &bops, layout, None, &mut d.view())
    };
    // group index 2 (one past the last) and 5 with 2 groups (row 3), and -2
    let e = run(MGroupLayout::PerRow(&[0, 1, -1, 2, 0, 0, 0, 0]), &mut d).unwrap_err();
    assert!(matches!(e, Error::Group { index: 3, .. }), "{e:?}");
    let e = run(MGroupLayout::PerRow(&[0, 1, -1, 5, 0, 0, 0, 0]), &mut d).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Group {
                tensor: "grouped_layout",
                index: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let e = run(MGroupLayout::PerRow(&[0, 1, -1, 0, -2, 0, 0, 0]), &mut d).unwrap_err();
    assert!(matches!(e, Error::Group { index: 4, .. }), "{e:?}");
    let e = run(MGroupLayout::PerRow(&[0; 7]), &mut d).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    // psum: decreasing ends, end > M, negative end, wrong count, align 0
    for ends in [&[5, 3][..], &[3, 9], &[-1, 3]] {
        let e = run(MGroupLayout::Psum { ends, align: 1 }, &mut d).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Group {
                    tensor: "grouped_layout",
                    ..
                }
            ),
            "{ends:?}: {e:?}"
        );
    }
    // an end below the previous end rounded up to the alignment (DeepGEMM would
    // underflow its unsigned group size)
    let e = run(
        MGroupLayout::Psum {
            ends: &[3, 3],
            align: 4,
        },
        &mut d,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Group { index: 1, .. }), "{e:?}");
    let e = run(
        MGroupLayout::Psum {
            ends: &[3],
            align: 1,
        },
        &mut d,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = run(
        MGroupLayout::Psum {
            ends: &[3, 8],
            align: 0,
        },
        &mut d,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Group { .. }), "{e:?}");
    // zero groups
    let e = m_grouped_gemm_contiguous(
        &a.operand(),
        &[],
        MGroupLayout::PerRow(&[-1; 8]),
        None,
        &mut d.view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    // groups disagreeing on N
    let b_other = ok_fp8(&mut r, n + 1, k, Fp8Recipe::PerBlock);
    let e = m_grouped_gemm_contiguous(
        &a.operand(),
        &[bs[0].operand(), b_other.operand()],
        MGroupLayout::PerRow(&[0; 8]),
        None,
        &mut d.view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "b", .. }), "{e:?}");
    // masked: masked_m > max_m, negative, wrong count, A rows not a multiple of G
    let run_masked = |mm: &[i32], a: &Operand, d: &mut Dout| {
        m_grouped_gemm_masked(a, &bops, mm, None, &mut d.view())
    };
    let e = run_masked(&[4, 5], &a.operand(), &mut d).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Group {
                tensor: "masked_m",
                index: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = run_masked(&[-1, 2], &a.operand(), &mut d).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Group {
                tensor: "masked_m",
                index: 0,
                ..
            }
        ),
        "{e:?}"
    );
    let e = run_masked(&[1, 2, 3], &a.operand(), &mut d).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let a7 = ok_fp8(&mut r, 7, k, Fp8Recipe::PerToken);
    let mut d7 = Dout::new(Out::Bf16, 7, n, n);
    let e = run_masked(&[1, 2], &a7.operand(), &mut d7).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    // k-grouped: different group counts, disagreeing M, K mismatch inside a group
    let a_ops = [a.operand(), a.operand()];
    let e = k_grouped_gemm(
        &a_ops,
        &bops[..1],
        None,
        &mut Dout::new(Out::F32, 2 * m, n, n).view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = k_grouped_gemm(
        &[a.operand(), a7.operand()],
        &bops,
        None,
        &mut Dout::new(Out::F32, 2 * m, n, n).view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "a", .. }), "{e:?}");
    let b256 = ok_fp8(&mut r, n, 256, Fp8Recipe::PerBlock);
    let e = k_grouped_gemm(
        &a_ops,
        &[bops[0], b256.operand()],
        None,
        &mut Dout::new(Out::F32, 2 * m, n, n).view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { tensor: "b", .. }), "{e:?}");
    (0..m).for_each(|i| d.assert_row_untouched(i, "failed grouped call"));
}

/// A failing group must not leave earlier groups' rows written: every check (scale
/// values included) happens before the first write.
#[test]
fn errors_in_a_later_group_leave_d_untouched() {
    let mut r = rng(94);
    let (m, n, k) = (6, 5, 128);
    let a = ok_fp8(&mut r, m, k, Fp8Recipe::PerToken);
    let good = ok_fp8(&mut r, n, k, Fp8Recipe::PerBlock);
    let mut bad = ok_fp8(&mut r, n, k, Fp8Recipe::PerBlock);
    bad.sc = Sc::F32(vec![f32::NAN]);
    let bops = [good.operand(), bad.operand()];
    let mut d = Dout::new(Out::F32, m, n, n);
    let e = m_grouped_gemm_contiguous(
        &a.operand(),
        &bops,
        MGroupLayout::PerRow(&[0, 0, 0, 1, 1, 1]),
        None,
        &mut d.view(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Scale { tensor: "sfb", .. }), "{e:?}");
    (0..m).for_each(|i| d.assert_row_untouched(i, "contiguous, failed in group 1"));
    let e = m_grouped_gemm_masked(&a.operand(), &bops, &[3, 3], None, &mut d.view()).unwrap_err();
    assert!(matches!(e, Error::Scale { tensor: "sfb", .. }), "{e:?}");
    (0..m).for_each(|i| d.assert_row_untouched(i, "masked, failed in group 1"));
    let a3 = ok_fp8(&mut r, 3, k, Fp8Recipe::PerToken);
    let e = k_grouped_gemm(&[a3.operand(), a3.operand()], &bops, None, &mut d.view()).unwrap_err();
    assert!(matches!(e, Error::Scale { tensor: "sfb", .. }), "{e:?}");
    (0..m).for_each(|i| d.assert_row_untouched(i, "k-grouped, failed in group 1"));
}

// ---------------------------------------------------------------------------------------
// 10. Property test
// ---------------------------------------------------------------------------------------

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random small 1D2D problems with C: every element equals the oracle.
        #[test]
        fn fp8_1d2d_with_c_random_shapes_every_element_exact(
            m in 1usize..=9,
            n in 1usize..=9,
            k in 1usize..=300,
            seed in any::<u64>(),
            out_bf16 in any::<bool>(),
        ) {
            let mut r = rng(seed);
            let how = if seed % 3 == 0 { ScaleGen::Ue8m0InF32 } else { ScaleGen::WideF32 };
            let a = Fp8::random(&mut r, m, k, Fp8Recipe::PerToken, how);
            let b = Fp8::random(&mut r, n, k, Fp8Recipe::PerBlock, how);
            let (av, bv) = (a.values(), b.values());
            let c = CMat::new(adversarial_c(&mut r, &av, &bv, m, n, k), m, n, seed % 2 == 0);
            let out = if out_bf16 { Out::Bf16 } else { Out::F32 };
            let mut d = Dout::new(out, m, n, n + 1);
            gemm(&a.operand(), &b.operand(), Some(c.view()), &mut d.view()).unwrap();
            Oracle::new(&av, &bv, Some(&c.logical), (m, n, k)).check_all(&d);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle's own rounding, checked against correctly rounded hardware casts
// ---------------------------------------------------------------------------------------

/// `round_bits` against Rust's `f64 as f32` (IEEE RNE, subnormals, overflow to inf) and
/// `half::bf16::from_f32` (RNE on finite inputs), including every binade edge ± 1 ulp.
#[test]
fn oracle_rounding_matches_hardware_casts() {
    let mut r = rng(100);
    let mut xs: Vec<f64> = Vec::new();
    for e in -160..=130 {
        let p = p2(e);
        for x in [
            p,
            p * 1.5,
            p * (1.0 + p2(-24)),
            p * (1.0 + p2(-8)),
            p * (1.0 + 3.0 * p2(-25)),
        ] {
            xs.extend([x, x.next_up(), x.next_down()]);
        }
        for _ in 0..20 {
            xs.push(p * (1.0 + r.random::<f64>()));
        }
    }
    xs.extend([
        f32::MAX as f64,
        (f32::MAX as f64).next_up(),
        f32::MAX as f64 * (1.0 + p2(-25)),
    ]);
    for x in xs {
        for x in [x, -x] {
            let ex = Exact::from_dy(f64_dy(x).unwrap());
            assert_eq!(
                round_bits(&ex, Fmt::F32),
                (x as f32).to_bits(),
                "f32 of {x:e}"
            );
            let xf = x as f32;
            if xf.is_finite() && xf != 0.0 {
                let ef = Exact::from_dy(f32_dy(xf).unwrap());
                assert_eq!(
                    round_bits(&ef, Fmt::Bf16),
                    bf16::from_f32(xf).to_bits() as u32,
                    "bf16 of {xf:e}"
                );
            }
        }
    }
    // a value just above a BF16 tie that no f32 holds: 1 + 2^-8 + 2^-80 → 1 + 2^-7
    let ex = exact_dot(
        &[Dy::new(1, 0), Dy::new(1, -8), Dy::new(1, -80)],
        &[Dy::new(1, 0); 3],
        None,
    );
    assert_eq!(
        round_bits(&ex, Fmt::Bf16),
        bf16::from_f64(1.0 + p2(-7)).to_bits() as u32
    );
    assert_eq!(
        round_bits(&ex.sub(&Exact::from_dy(Dy::new(1, -79))), Fmt::Bf16),
        0x3F80
    );
}

/// Rows a grouped GEMM never reads (`-1` padding rows, rows `>= masked_m`) may hold
/// garbage scales and NaN codes, as DeepGEMM's uninitialised padding does; the used rows
/// equal a dense GEMM of just those rows.
#[test]
fn grouped_ignore_garbage_in_unread_rows() {
    let (m, n, k) = (4, 3, 128);
    let mut codes: Vec<u8> = (0..m * k).map(|i| (i % 97) as u8 & 0x77).collect();
    codes[k..2 * k].fill(0x7F); // NaN codes in row 1
    let sfa = [0.5f32, f32::NAN, 0.25, f32::INFINITY];
    let b_codes: Vec<u8> = (0..n * k).map(|i| (i % 89) as u8 & 0x3F).collect();
    let sfb = [2.0f32];
    let b = Operand::from(
        Fp8Operand::new(
            MatView::k_major(&b_codes, n, k, k).unwrap(),
            Scales::F32(MatView::k_major(&sfb, 1, 1, 1).unwrap()),
            Fp8Recipe::PerBlock,
        )
        .unwrap(),
    );
    fn a_of<'a>(codes: &'a [u8], sfa: &'a [f32], rows: usize, k: usize) -> Operand<'a> {
        Operand::from(
            Fp8Operand::new(
                MatView::k_major(codes, rows, k, k).unwrap(),
                Scales::F32(MatView::k_major(sfa, rows, 1, 1).unwrap()),
                Fp8Recipe::PerToken,
            )
            .unwrap(),
        )
    }
    let a = a_of(&codes, &sfa, m, k);
    // Expected rows 0 and 2 from a dense GEMM of those two rows.
    let used: Vec<u8> = [&codes[..k], &codes[2 * k..3 * k]].concat();
    let mut want = vec![0f32; 2 * n];
    gemm(
        &a_of(&used, &[sfa[0], sfa[2]], 2, k),
        &b,
        None,
        &mut OutView::new(OutBuf::F32(&mut want), 2, n, n).unwrap(),
    )
    .unwrap();
    let poison = f32::from_bits(0x7FC0_DEAD);
    let check = |d: &[f32]| {
        assert_eq!(&d[..n], &want[..n]);
        assert_eq!(&d[2 * n..3 * n], &want[n..]);
        for r in [1, 3] {
            assert!(d[r * n..(r + 1) * n]
                .iter()
                .all(|x| x.to_bits() == poison.to_bits()));
        }
    };
    let mut d = vec![poison; m * n];
    m_grouped_gemm_masked(
        &a,
        &[b, b],
        &[1, 1],
        None,
        &mut OutView::new(OutBuf::F32(&mut d), m, n, n).unwrap(),
    )
    .unwrap();
    check(&d);
    let mut d = vec![poison; m * n];
    m_grouped_gemm_contiguous(
        &a,
        &[b, b],
        MGroupLayout::PerRow(&[0, -1, 1, -1]),
        None,
        &mut OutView::new(OutBuf::F32(&mut d), m, n, n).unwrap(),
    )
    .unwrap();
    check(&d);
}

/// Logically huge problems from broadcast (stride-0) views or empty dimensions return
/// promptly: an error when the dequantized size overflows, nothing to do when N = 0.
#[test]
fn huge_logical_shapes_error_or_return_without_allocating() {
    let one = [bf16::ONE];
    let empty: [bf16; 0] = [];
    let a = MatView::strided(&one, 1 << 33, 1 << 33, 0, 0).unwrap();
    let b = MatView::k_major(&empty, 0, 1 << 33, 1 << 33).unwrap();
    let mut d = OutView::new(OutBuf::F32(&mut []), 1 << 33, 0, 0).unwrap();
    let e = gemm(&a.into(), &b.into(), None, &mut d).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let a = MatView::k_major(&empty, 1 << 40, 0, 0).unwrap();
    let b = MatView::k_major(&empty, 0, 0, 0).unwrap();
    let mut d = OutView::new(OutBuf::F32(&mut []), 1 << 40, 0, 0).unwrap();
    gemm(&a.into(), &b.into(), None, &mut d).unwrap();
}

/// `MatView::try_get` is `None` exactly outside `[rows, cols]`, also where the buffer
/// (a leading dimension past the columns, more rows stored) would still have an element.
#[test]
fn mat_view_try_get_is_none_outside_the_shape() {
    let data: Vec<u8> = (0..12).collect();
    let v = MatView::k_major(&data, 2, 3, 4).unwrap();
    assert_eq!(v.try_get(0, 0), Some(0));
    assert_eq!(v.try_get(1, 2), Some(6));
    assert_eq!(v.try_get(2, 0), None);
    assert_eq!(v.try_get(0, 3), None);
    assert_eq!(v.try_get(2, 3), None);
    assert_eq!(v.try_get(usize::MAX, 0), None);
    let t = MatView::mn_major(&data, 3, 2, 4).unwrap(); // (r, c) at c·4 + r
    assert_eq!(t.try_get(2, 1), Some(6));
    assert_eq!(t.try_get(3, 0), None);
    assert_eq!(t.try_get(0, 2), None);
}

/// A view needs every element up to its last: one element short is a stride error, the
/// exact length is accepted (the boundary of the bounds check).
#[test]
fn mat_view_strided_needs_its_last_element() {
    let data: Vec<u8> = (0..6).collect();
    // [2, 3] with strides (3, 1): the last element is at 1·3 + 2 = 5.
    let v = MatView::strided(&data, 2, 3, 3, 1).unwrap();
    assert_eq!(v.try_get(1, 2), Some(5));
    assert!(matches!(
        MatView::strided(&data[..5], 2, 3, 3, 1),
        Err(Error::Stride { .. })
    ));
    // Column strides too: [2, 2] with strides (1, 4) ends at 1 + 4 = 5.
    assert!(MatView::strided(&data, 2, 2, 1, 4).is_ok());
    assert!(MatView::strided(&data[..5], 2, 2, 1, 4).is_err());
}
