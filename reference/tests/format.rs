//! Tests of `scalegemm_reference::format` (DESIGN §3.1; issue 2, "Number formats").
//!
//! Strategy. Nothing here calls the crate to compute an expected value: every expected
//! code comes from definitions written out again in this file.
//!
//! 1. **All codes.** [`Fmt::decode`] is the OCP sign/exponent/mantissa formula
//!    (`(-1)^s · 2^(E-bias) · (1 + M/2^m)`, subnormals `2^(1-bias) · M/2^m`, plus each
//!    format's NaN/inf rule), using only [`two_pow`] (repeated exact doubling). Every code
//!    of E4M3, E5M2 (256), E2M1 (16, and all 256 bytes to show the high nibble is
//!    ignored), UE8M0 (256) and BF16 (65536) is decoded and compared bit for bit, and
//!    `encode(decode(c)) == c` is checked for every non-NaN code in both overflow modes.
//! 2. **Slow reference.** [`Grid`] is the sorted list of every finite non-negative value
//!    of a format, plus one "sentinel" one step above the largest (the value the format
//!    would have if its exponent range went on; reaching it means overflow). Rounding
//!    is "find the two neighbours by binary search, compare with their midpoint (exact
//!    in f64, checked), ties to the even code (mantissa LSB 0)". The overflow rules of
//!    each mode are then applied from the text. UE8M0 and f64 → f32 have their
//!    own slow versions ([`slow_ue8m0`], [`slow_f64_to_f32`]). Each fast function is
//!    compared with them over >= 10^7 inputs per format: every rounding boundary (grid
//!    points, midpoints, the overflow threshold, the sentinel) with ±1 and ±2 ulps
//!    around it, both signs, specials (zeros, subnormals, inf, NaN payloads), then
//!    random inputs from a seeded `ChaCha8Rng`: raw f32 (or f64) bit patterns,
//!    log-uniform values over the format's exponent range, uniform values in its range,
//!    and for BF16 and f32 f64 inputs just off a midpoint (where `half` goes wrong). The
//!    double-double functions (`bf16::from_f64_sticky`, `round_f64_to_f32`) get a
//!    remainder `lo` with `|lo| <= ulp(hi)/2`; for such pairs `hi` is the f64 nearest to
//!    `hi + lo`, so the exact value is on the same side of any midpoint as `hi` unless
//!    `hi` is that midpoint, where the sign of `lo` decides. Work is spread with rayon.
//! 3. **Named edge cases** from the issue and public bug reports, one small test each.
//! 4. **DESIGN §3.1 / §3.2**: one test per bullet, asserting the numbers it states.
//! 5. **Third-party crates** (`float8` 0.7, `float4` 0.2, `half`): tests that pin
//!    exactly where they agree with and differ from these codecs, so they fail if the
//!    crates change.

// Bit patterns are grouped as sign.exponent.mantissa (0b0_1111_110).
#![allow(clippy::unusual_byte_groupings)]

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use float4::{F4E2M1x2, E8M0, F4E2M1};
use float8::{F8E4M3, F8E5M2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scalegemm_reference::format::{bf16, e2m1, e4m3, e5m2, round_f64_to_f32, ue8m0};

// ---------------------------------------------------------------------------------------
// Independent definitions
// ---------------------------------------------------------------------------------------

/// `2^e` by repeated exact doubling or halving (exact for -1074 <= e <= 1023).
fn two_pow(e: i32) -> f64 {
    let mut v = 1.0f64;
    if e >= 0 {
        for _ in 0..e {
            v *= 2.0;
        }
    } else {
        for _ in 0..-e {
            v *= 0.5;
        }
    }
    v
}

/// How a format uses its all-ones exponent field.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Specials {
    /// E4M3 "fn": only S.1111.111 is NaN; the rest of that binade is finite; no inf.
    FnNanOnly,
    /// IEEE style (E5M2, BF16): all-ones exponent is ±inf (mantissa 0) or NaN.
    Ieee,
    /// E2M1: every code is finite.
    AllFinite,
}

/// A sign/exponent/mantissa format, as OCP OFP8 v1.0 §5 and OCP MX v1.0 §5.3 define it.
#[derive(Clone, Copy, Debug)]
struct Fmt {
    ebits: u32,
    mbits: u32,
    bias: i32,
    specials: Specials,
}

const E4M3: Fmt = Fmt {
    ebits: 4,
    mbits: 3,
    bias: 7,
    specials: Specials::FnNanOnly,
};
const E5M2: Fmt = Fmt {
    ebits: 5,
    mbits: 2,
    bias: 15,
    specials: Specials::Ieee,
};
const E2M1: Fmt = Fmt {
    ebits: 2,
    mbits: 1,
    bias: 1,
    specials: Specials::AllFinite,
};
const BF16: Fmt = Fmt {
    ebits: 8,
    mbits: 7,
    bias: 127,
    specials: Specials::Ieee,
};

/// The value of one code.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    Finite(f64),
    /// Infinity; `true` when negative.
    Inf(bool),
    Nan,
}

impl Fmt {
    fn width(&self) -> u32 {
        1 + self.ebits + self.mbits
    }

    /// The OCP definition of the value of `code`.
    fn decode(&self, code: u32) -> Val {
        let s = (code >> (self.ebits + self.mbits)) & 1;
        let e = (code >> self.mbits) & ((1 << self.ebits) - 1);
        let m = code & ((1 << self.mbits) - 1);
        let e_all_ones = (1 << self.ebits) - 1;
        let m_all_ones = (1 << self.mbits) - 1;
        match self.specials {
            Specials::FnNanOnly if e == e_all_ones && m == m_all_ones => return Val::Nan,
            Specials::Ieee if e == e_all_ones => {
                return if m == 0 { Val::Inf(s == 1) } else { Val::Nan };
            }
            _ => {}
        }
        let frac = m as f64 / two_pow(self.mbits as i32);
        let mag = if e == 0 {
            two_pow(1 - self.bias) * frac
        } else {
            two_pow(e as i32 - self.bias) * (1.0 + frac)
        };
        Val::Finite(if s == 1 { -mag } else { mag })
    }
}

/// The f32 a [`Val`] stands for.
fn val_f32(v: Val) -> f32 {
    match v {
        Val::Finite(x) => {
            let y = x as f32;
            assert_eq!(y as f64, x, "not an f32");
            y
        }
        Val::Inf(false) => f32::INFINITY,
        Val::Inf(true) => f32::NEG_INFINITY,
        Val::Nan => f32::NAN,
    }
}

/// Bitwise f32 equality, any NaN equal to any NaN.
fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// `x` moved by `k` steps along the ordered f32 line (crosses zero: -0 and +0 are one
/// point). Stays out of NaN for the small `k` used here.
fn f32_step(x: f32, k: i64) -> f32 {
    let b = x.to_bits();
    let ord = if b >> 31 == 1 {
        -((b & 0x7FFF_FFFF) as i64)
    } else {
        b as i64
    };
    let o = ord + k;
    if o < 0 {
        f32::from_bits((-o) as u32 | 0x8000_0000)
    } else {
        f32::from_bits(o as u32)
    }
}

/// As [`f32_step`] for f64.
fn f64_step(x: f64, k: i64) -> f64 {
    let b = x.to_bits();
    let ord = if b >> 63 == 1 {
        -((b & 0x7FFF_FFFF_FFFF_FFFF) as i64)
    } else {
        b as i64
    };
    let o = ord + k;
    if o < 0 {
        f64::from_bits((-o) as u64 | 0x8000_0000_0000_0000)
    } else {
        f64::from_bits(o as u64)
    }
}

/// Spacing of f64 just above `|x|`.
fn ulp64(x: f64) -> f64 {
    let a = x.abs();
    f64_step(a, 1) - a
}

// ---------------------------------------------------------------------------------------
// The slow rounding reference
// ---------------------------------------------------------------------------------------

/// The result of rounding a magnitude onto a [`Grid`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slow {
    /// Nearest finite value, by its code (sign bit clear).
    Code(u32),
    /// Rounds to the sentinel or beyond: overflow.
    Overflow,
}

/// Every finite non-negative value of a format, ascending, with its code, and one
/// sentinel: `max + (max - previous)` with code `max_code + 1`, the next value the format
/// would have with an unbounded exponent (its code's parity decides the tie at the
/// overflow threshold, as in IEEE 754).
struct Grid {
    vals: Vec<f64>,
    codes: Vec<u32>,
}

impl Grid {
    fn new(f: &Fmt) -> Grid {
        let half = 1u32 << (f.width() - 1);
        let mut pts: Vec<(f64, u32)> = (0..half)
            .filter_map(|c| match f.decode(c) {
                Val::Finite(v) => Some((v, c)),
                _ => None,
            })
            .collect();
        pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let n = pts.len();
        let (max, max_code) = pts[n - 1];
        let step = max - pts[n - 2].0;
        pts.push((max + step, max_code + 1));
        for w in pts.windows(2) {
            let (lo, hi) = (w[0].0, w[1].0);
            let mid = (lo + hi) / 2.0;
            // strictly increasing, and the midpoint is exact (equidistant, strictly inside)
            assert!(lo < mid && mid < hi && mid - lo == hi - mid, "{lo} {hi}");
        }
        Grid {
            vals: pts.iter().map(|p| p.0).collect(),
            codes: pts.iter().map(|p| p.1).collect(),
        }
    }

    fn max(&self) -> f64 {
        self.vals[self.vals.len() - 2]
    }

    fn max_code(&self) -> u32 {
        self.codes[self.codes.len() - 2]
    }

    fn min_positive(&self) -> f64 {
        self.vals[1]
    }

    /// The smallest magnitude that overflows (midpoint between max and the sentinel).
    fn overflow_threshold(&self) -> f64 {
        (self.max() + self.vals[self.vals.len() - 1]) / 2.0
    }

    /// Every grid point and every midpoint, and the sentinel.
    fn boundaries(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * self.vals.len());
        for w in self.vals.windows(2) {
            out.push(w[0]);
            out.push((w[0] + w[1]) / 2.0);
        }
        out.push(self.vals[self.vals.len() - 1]);
        out
    }

    /// Nearest grid point to the magnitude `a` (>= 0, possibly +inf), ties to the even
    /// code. A non-zero `sticky` means the exact value is `a` plus a tiny amount of that
    /// sign (it only matters when `a` is exactly a midpoint).
    fn round(&self, a: f64, sticky: f64) -> Slow {
        assert!(a >= 0.0);
        let last = self.vals.len() - 1;
        let i = self.vals.partition_point(|&v| v <= a) - 1;
        if i == last {
            return Slow::Overflow;
        }
        let mid = (self.vals[i] + self.vals[i + 1]) / 2.0;
        let ord = if a != mid {
            a.partial_cmp(&mid).unwrap()
        } else {
            sticky.partial_cmp(&0.0).unwrap()
        };
        let j = match ord {
            Ordering::Less => i,
            Ordering::Greater => i + 1,
            Ordering::Equal if self.codes[i] % 2 == 0 => i,
            Ordering::Equal => i + 1,
        };
        if j == last {
            Slow::Overflow
        } else {
            Slow::Code(self.codes[j])
        }
    }
}

/// Slow E4M3 `(encode, encode_satfinite)`: NaN → 0x7F | sign; overflow (|x| > 464, ±inf)
/// → 0x7F | sign or 0x7E | sign.
fn slow_e4m3(g: &Grid, x: f32) -> (u8, u8) {
    let s = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return (0x7F | s, 0x7F | s);
    }
    match g.round((x as f64).abs(), 0.0) {
        Slow::Code(c) => (c as u8 | s, c as u8 | s),
        Slow::Overflow => (0x7F | s, 0x7E | s),
    }
}

/// Slow E5M2: NaN → 0x7E | sign; overflow → 0x7C | sign (inf) or 0x7B | sign (57344).
fn slow_e5m2(g: &Grid, x: f32) -> (u8, u8) {
    let s = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return (0x7E | s, 0x7E | s);
    }
    match g.round((x as f64).abs(), 0.0) {
        Slow::Code(c) => (c as u8 | s, c as u8 | s),
        Slow::Overflow => (0x7C | s, 0x7B | s),
    }
}

/// Slow E2M1: NaN → 0x7 (+6, sign dropped); overflow and ±inf → 0x7 | sign in both modes.
fn slow_e2m1(g: &Grid, x: f32) -> (u8, u8) {
    let s = if x.is_sign_negative() { 0x8 } else { 0 };
    if x.is_nan() {
        return (0x7, 0x7);
    }
    match g.round((x as f64).abs(), 0.0) {
        Slow::Code(c) => (c as u8 | s, c as u8 | s),
        Slow::Overflow => (0x7 | s, 0x7 | s),
    }
}

/// Slow correctly rounded BF16 of the exact value `hi + lo`: NaN → 0x7FC0 | sign,
/// overflow → ±inf.
fn slow_bf16(g: &Grid, hi: f64, lo: f64) -> u16 {
    let s = if hi.is_sign_negative() { 0x8000 } else { 0 };
    if hi.is_nan() {
        return 0x7FC0 | s;
    }
    let sticky = if hi.is_sign_negative() { -lo } else { lo };
    match g.round(hi.abs(), sticky) {
        Slow::Code(c) => c as u16 | s,
        Slow::Overflow => 0x7F80 | s,
    }
}

/// UE8M0 powers: `p[c] = 2^(c - 127)` for c in 0..=255 (255 = 2^128 is only a sentinel).
fn ue8m0_powers() -> Vec<f64> {
    (0..=255).map(|c| two_pow(c - 127)).collect()
}

/// Slow UE8M0 `(encode, encode_ceil)` from the rules.
fn slow_ue8m0(p: &[f64], x: f32) -> (u8, u8) {
    let a = x as f64;
    // nearest, ties upward (ml_dtypes float8_e8m0fnu)
    let nearest = if x.is_nan() || a <= 0.0 || a.is_infinite() {
        0xFF
    } else if a < two_pow(-126) {
        0x00 // positive f32 subnormal
    } else {
        // p[c] <= a < p[c + 1]; round up from 1.5 · p[c] (the midpoint) on
        let c = p.partition_point(|&v| v <= a) - 1;
        let c = if a >= 1.5 * p[c] { c + 1 } else { c };
        if c >= 255 {
            0xFF
        } else {
            c as u8
        }
    };
    // DeepGEMM ceil: smallest 2^(c-127) >= |x|, c clamped to [1, 254]; inf and NaN → 254
    let m = a.abs();
    let ceil = if m.is_nan() || m.is_infinite() {
        254
    } else {
        // first c with p[c] >= m, clamped to [1, 254]
        p.partition_point(|&v| v < m).clamp(1, 254) as u8
    };
    (nearest, ceil)
}

/// Slow correctly rounded f32 of the exact value `hi + lo` (|lo| <= ulp(hi)/2).
fn slow_f64_to_f32(hi: f64, lo: f64) -> f32 {
    if hi.is_nan() {
        return f32::NAN;
    }
    let neg = hi.is_sign_negative();
    let a = hi.abs();
    let sticky = if neg { -lo } else { lo };
    let mag = if a.is_infinite() {
        f32::INFINITY
    } else {
        // c = the largest f32 <= a (start anywhere near and walk)
        let mut c = a as f32;
        while c as f64 > a {
            c = f32_step(c, -1);
        }
        while c < f32::MAX && f32_step(c, 1) as f64 <= a {
            c = f32_step(c, 1);
        }
        let (up, up_val) = if c == f32::MAX {
            (f32::INFINITY, two_pow(128)) // sentinel 2^128, code 0x7F80_0000 (even)
        } else {
            let u = f32_step(c, 1);
            (u, u as f64)
        };
        let mid = (c as f64 + up_val) / 2.0;
        assert!(mid - c as f64 == up_val - mid);
        let ord = if a != mid {
            a.partial_cmp(&mid).unwrap()
        } else {
            sticky.partial_cmp(&0.0).unwrap()
        };
        match ord {
            Ordering::Less => c,
            Ordering::Greater => up,
            Ordering::Equal if c.to_bits() % 2 == 0 => c,
            Ordering::Equal => up,
        }
    };
    if neg {
        -mag
    } else {
        mag
    }
}

// ---------------------------------------------------------------------------------------
// Input generation and the parallel driver
// ---------------------------------------------------------------------------------------

/// f32 specials: zeros, f32 subnormal extremes, min normal, max, inf, NaNs with payloads.
const SPECIAL_F32_BITS: [u32; 16] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007F_FFFF,
    0x807F_FFFF,
    0x0080_0000,
    0x8080_0000,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0xFFC0_0000,
    0x7F80_0001,
    0xFFA1_2345,
];

/// Every boundary of `g` (as f32, where representable) and ±1, ±2 f32 ulps around it,
/// both signs, and the f32 specials.
fn f32_boundary_inputs(g: &Grid) -> Vec<f32> {
    let mut out: Vec<f32> = SPECIAL_F32_BITS
        .iter()
        .map(|&b| f32::from_bits(b))
        .collect();
    for p in g.boundaries() {
        let p32 = p as f32;
        if p32 as f64 != p {
            continue; // not an f32 (BF16's sentinel 2^128)
        }
        for k in -2..=2 {
            let y = f32_step(p32, k);
            out.push(y);
            out.push(-y);
        }
    }
    out
}

/// A random f32 with exponent uniform in `emin..=emax` (normal f32 range), random
/// mantissa and sign.
fn log_uniform_f32(rng: &mut ChaCha8Rng, emin: i32, emax: i32) -> f32 {
    let e = rng.random_range(emin..=emax);
    let bits = (((e + 127) as u32) << 23) | (rng.random::<u32>() & 0x807F_FFFF);
    f32::from_bits(bits)
}

/// Runs `check` on `fixed` and on `chunks` chunks of `chunk_len` random inputs made by
/// `gen` (chunk `i` from `ChaCha8Rng::seed_from_u64(seed + i)`), in parallel. Panics
/// with the first failures; returns the number of inputs checked.
fn check_all<T, G, C>(
    name: &str,
    fixed: &[T],
    seed: u64,
    chunks: u64,
    chunk_len: usize,
    gen: G,
    check: C,
) -> usize
where
    T: Copy + Send + Sync,
    G: Fn(&mut ChaCha8Rng) -> T + Sync,
    C: Fn(T) -> Option<String> + Sync,
{
    let fails = AtomicUsize::new(0);
    let msgs = Mutex::new(Vec::new());
    let record = |m: Option<String>| {
        if let Some(m) = m {
            if fails.fetch_add(1, AtomicOrdering::Relaxed) < 10 {
                msgs.lock().unwrap().push(m);
            }
        }
    };
    fixed.par_iter().for_each(|&x| record(check(x)));
    (0..chunks).into_par_iter().for_each(|i| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i));
        for _ in 0..chunk_len {
            record(check(gen(&mut rng)));
        }
    });
    let n = fixed.len() + chunks as usize * chunk_len;
    let fails = fails.into_inner();
    assert_eq!(
        fails,
        0,
        "{name}: {fails} of {n} inputs wrong, first: {:#?}",
        msgs.into_inner().unwrap()
    );
    eprintln!("{name}: {n} inputs ({} boundary/special)", fixed.len());
    n
}

/// Random inputs per codec test (on top of the boundaries): `RANDOM_CHUNKS` chunks of
/// `CHUNK_LEN`, or [`FAST_DIVISOR`] times fewer chunks under [`fast_tests`].
const RANDOM_CHUNKS: u64 = 100;
const CHUNK_LEN: usize = 100_000;

/// The fast test profile: `SCALEGEMM_FAST_TESTS=1` (any value but empty or `0`), meant
/// for mutation testing (`cargo mutants`, verify/README.md), never set in CI. The
/// exhaustive comparisons keep every boundary and special input and every check, but
/// draw [`FAST_DIVISOR`] times fewer random inputs, sweep every [`FAST_STRIDE`]-th f32
/// bit pattern (an odd stride, so every low mantissa bit pattern still occurs) instead
/// of every one, and require `>= 10^5` inputs instead of `>= 10^7`.
fn fast_tests() -> bool {
    std::env::var_os("SCALEGEMM_FAST_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// See [`fast_tests`].
const FAST_DIVISOR: u64 = 50;
/// See [`fast_tests`].
const FAST_STRIDE: usize = 61;

/// `full` random chunks (or draws), or [`FAST_DIVISOR`] times fewer (at least 1) under
/// [`fast_tests`].
fn random_count(full: u64) -> u64 {
    if fast_tests() {
        (full / FAST_DIVISOR).max(1)
    } else {
        full
    }
}

/// The least number of inputs an exhaustive comparison must have checked: `full`, or
/// `full / 100` under [`fast_tests`].
fn min_inputs(full: usize) -> usize {
    if fast_tests() {
        full / 100
    } else {
        full
    }
}

/// The f32 → 8-bit (or 4-bit) codec test against a slow reference.
fn check_minifloat(
    name: &str,
    fmt: &Fmt,
    encode: fn(f32) -> u8,
    encode_satfinite: fn(f32) -> u8,
    slow: fn(&Grid, f32) -> (u8, u8),
    seed: u64,
) {
    let g = Grid::new(fmt);
    let fixed = f32_boundary_inputs(&g);
    let thr = g.overflow_threshold();
    let emin = g.min_positive().log2().floor() as i32 - 3;
    let emax = thr.log2().floor() as i32 + 2;
    let range = (1.25 * thr) as f32;
    let n = check_all(
        name,
        &fixed,
        seed,
        random_count(RANDOM_CHUNKS),
        CHUNK_LEN,
        |rng| match rng.random_range(0..3) {
            0 => f32::from_bits(rng.random()),
            1 => log_uniform_f32(rng, emin, emax),
            _ => rng.random_range(-range..range),
        },
        |x| {
            let (want, want_sat) = slow(&g, x);
            let (got, got_sat) = (encode(x), encode_satfinite(x));
            (got != want || got_sat != want_sat).then(|| {
                format!(
                    "x = {x:e} ({:#010x}): encode {got:#04x} (want {want:#04x}), \
                     encode_satfinite {got_sat:#04x} (want {want_sat:#04x})",
                    x.to_bits()
                )
            })
        },
    );
    assert!(n >= min_inputs(10_000_000));
}

// ---------------------------------------------------------------------------------------
// 1. Every code
// ---------------------------------------------------------------------------------------

/// Decode of all 256 codes against the OCP formula; encode(decode(c)) == c in both modes
/// for every non-NaN code; the NaN codes are exactly those the definition says.
fn check_all_codes_8bit(
    fmt: &Fmt,
    decode: fn(u8) -> f32,
    encode: fn(f32) -> u8,
    encode_satfinite: fn(f32) -> u8,
) {
    for c in 0..=255u8 {
        let want = fmt.decode(c as u32);
        let got = decode(c);
        assert!(
            same_f32(got, val_f32(want)),
            "{fmt:?} decode({c:#04x}) = {got:e}, want {want:?}"
        );
        assert_eq!(got.is_nan(), want == Val::Nan, "{c:#04x}");
        if want != Val::Nan {
            assert_eq!(encode(got), c, "encode(decode({c:#04x}))");
            if !got.is_infinite() {
                assert_eq!(encode_satfinite(got), c, "satfinite(decode({c:#04x}))");
            }
        }
    }
}

#[test]
fn e4m3_all_codes() {
    check_all_codes_8bit(&E4M3, e4m3::decode, e4m3::encode, e4m3::encode_satfinite);
    // NaN codes: S.1111.111, and encoding a NaN of either sign gives them back
    let nans: Vec<u8> = (0..=255u8).filter(|&c| e4m3::decode(c).is_nan()).collect();
    assert_eq!(nans, [0x7F, 0xFF]);
    for enc in [e4m3::encode, e4m3::encode_satfinite] {
        assert_eq!(enc(f32::NAN), 0x7F);
        assert_eq!(enc(-f32::NAN), 0xFF);
    }
}

#[test]
fn e5m2_all_codes() {
    check_all_codes_8bit(&E5M2, e5m2::decode, e5m2::encode, e5m2::encode_satfinite);
    let nans: Vec<u8> = (0..=255u8).filter(|&c| e5m2::decode(c).is_nan()).collect();
    assert_eq!(nans, [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]);
    // ±inf round-trips through encode; satfinite saturates it
    assert_eq!(e5m2::decode(0x7C), f32::INFINITY);
    assert_eq!(e5m2::decode(0xFC), f32::NEG_INFINITY);
    assert_eq!(e5m2::encode(e5m2::decode(0xFC)), 0xFC);
    assert_eq!(e5m2::encode_satfinite(e5m2::decode(0x7C)), 0x7B);
    assert_eq!(e5m2::encode_satfinite(e5m2::decode(0xFC)), 0xFB);
    for enc in [e5m2::encode, e5m2::encode_satfinite] {
        assert_eq!(enc(f32::NAN), 0x7E);
        assert_eq!(enc(-f32::NAN), 0xFE);
    }
}

#[test]
fn e2m1_all_codes_and_high_nibble_ignored() {
    for b in 0..=255u8 {
        let want = val_f32(E2M1.decode((b & 0xF) as u32));
        let got = e2m1::decode(b);
        assert_eq!(got.to_bits(), want.to_bits(), "decode({b:#04x})");
    }
    for c in 0..16u8 {
        let v = e2m1::decode(c);
        assert_eq!(e2m1::encode(v), c, "encode(decode({c:#x}))");
        assert_eq!(e2m1::encode_satfinite(v), c, "satfinite(decode({c:#x}))");
    }
    // no NaN code: NaN encodes to +6
    assert!((0..16u8).all(|c| e2m1::decode(c).is_finite()));
    assert_eq!(e2m1::encode(f32::NAN), 0x7);
    assert_eq!(e2m1::encode_satfinite(-f32::NAN), 0x7);
}

#[test]
fn ue8m0_all_codes() {
    for c in 0..=255u8 {
        let got = ue8m0::decode(c);
        if c == 0xFF {
            assert!(got.is_nan());
            continue;
        }
        // 2^(c - 127), written out independently
        let want = two_pow(c as i32 - 127);
        assert_eq!(got as f64, want, "decode({c})");
        assert_eq!(ue8m0::encode(got), c, "encode(decode({c}))");
        assert_eq!(
            ue8m0::encode_ceil(got),
            c.max(1),
            "encode_ceil(decode({c}))"
        );
    }
    // NaN through encode: NaN
    assert_eq!(ue8m0::encode(ue8m0::decode(0xFF)), 0xFF);
}

#[test]
fn bf16_all_codes() {
    for c in 0..=u16::MAX {
        let want = BF16.decode(c as u32);
        let stored = half::bf16::from_bits(c).to_f32();
        assert!(same_f32(stored, val_f32(want)), "{c:#06x}: {want:?}");
        let ours = bf16::from_f64(stored as f64).to_bits();
        let ours32 = bf16::from_f32(stored).to_bits();
        if want == Val::Nan {
            let nan = 0x7FC0 | (c & 0x8000);
            assert_eq!((ours, ours32), (nan, nan), "{c:#06x}");
        } else {
            assert_eq!((ours, ours32), (c, c), "{c:#06x}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Against the slow reference, >= 10^7 inputs per format
// ---------------------------------------------------------------------------------------

#[test]
fn e4m3_matches_slow_reference() {
    check_minifloat(
        "e4m3",
        &E4M3,
        e4m3::encode,
        e4m3::encode_satfinite,
        slow_e4m3,
        0xE4_0000,
    );
}

#[test]
fn e5m2_matches_slow_reference() {
    check_minifloat(
        "e5m2",
        &E5M2,
        e5m2::encode,
        e5m2::encode_satfinite,
        slow_e5m2,
        0xE5_0000,
    );
}

#[test]
fn e2m1_matches_slow_reference() {
    check_minifloat(
        "e2m1",
        &E2M1,
        e2m1::encode,
        e2m1::encode_satfinite,
        slow_e2m1,
        0xE2_0000,
    );
}

#[test]
fn ue8m0_matches_slow_reference() {
    let p = ue8m0_powers();
    let mut fixed: Vec<f32> = SPECIAL_F32_BITS
        .iter()
        .map(|&b| f32::from_bits(b))
        .collect();
    // boundaries: every power of two 2^-149..2^127 (ceil) and 1.5·2^k (nearest)
    for k in -149..=128 {
        for b in [two_pow(k), 1.5 * two_pow(k)] {
            let b32 = b as f32;
            if b32 as f64 != b {
                continue;
            }
            for j in -2..=2 {
                let y = f32_step(b32, j);
                fixed.push(y);
                fixed.push(-y);
            }
        }
    }
    let n = check_all(
        "ue8m0",
        &fixed,
        0xE8_0000,
        random_count(RANDOM_CHUNKS),
        CHUNK_LEN,
        |rng| match rng.random_range(0..4) {
            0 => f32::from_bits(rng.random()),
            1 => log_uniform_f32(rng, -126, 127),
            2 => f32::from_bits(rng.random::<u32>() & 0x807F_FFFF), // subnormals
            _ => rng.random_range(0.0f32..16.0),
        },
        |x| {
            let (want, want_ceil) = slow_ue8m0(&p, x);
            let (got, got_ceil) = (ue8m0::encode(x), ue8m0::encode_ceil(x));
            (got != want || got_ceil != want_ceil).then(|| {
                format!(
                    "x = {x:e} ({:#010x}): encode {got} (want {want}), \
                     encode_ceil {got_ceil} (want {want_ceil})",
                    x.to_bits()
                )
            })
        },
    );
    assert!(n >= min_inputs(10_000_000));
}

/// A remainder for `hi` with `|lo| <= ulp(hi)/2`: 0, ±ulp/2, ±ulp/4, tiny, or random.
fn random_lo(rng: &mut ChaCha8Rng, hi: f64) -> f64 {
    let u = ulp64(hi);
    if hi == 0.0 || !u.is_finite() {
        return 0.0;
    }
    let s = if rng.random::<bool>() { 1.0 } else { -1.0 };
    match rng.random_range(0..5) {
        0 => 0.0,
        1 => s * u / 2.0,
        2 => s * u / 4.0,
        3 => s * u / 2.0 * two_pow(-rng.random_range(1..60)),
        _ => rng.random_range(-0.5..0.5) * u,
    }
}

/// Deterministic remainders used with the boundary inputs.
fn fixed_los(hi: f64) -> [f64; 5] {
    let u = ulp64(hi);
    if hi == 0.0 || !u.is_finite() {
        return [0.0; 5];
    }
    [0.0, u / 2.0, -u / 2.0, u * two_pow(-40), -u * two_pow(-40)]
}

#[test]
fn bf16_from_f64_matches_slow_reference() {
    let g = Grid::new(&BF16);
    let mut fixed: Vec<(f64, f64)> = Vec::new();
    let specials = SPECIAL_F32_BITS.iter().map(|&b| f32::from_bits(b) as f64);
    let f64_specials = [
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        1e-300,
        1e300,
    ];
    for x in specials.chain(f64_specials) {
        fixed.push((x, 0.0));
        fixed.push((-x, 0.0));
    }
    for p in g.boundaries() {
        let mut near = vec![];
        for k in -2..=2 {
            near.push(f64_step(p, k)); // ±1, ±2 f64 ulps
        }
        let p32 = p as f32;
        if p32 as f64 == p {
            for k in [-2, -1, 1, 2] {
                near.push(f32_step(p32, k) as f64); // ±1, ±2 f32 ulps
            }
        }
        // every check also runs `from_f64(x)`, i.e. lo = 0; the exact boundary gets every
        // non-zero remainder, its neighbours one each
        for (j, x) in near.into_iter().enumerate() {
            let los = fixed_los(x);
            let los = if x == p {
                &los[1..]
            } else {
                &los[1 + j % 4..2 + j % 4]
            };
            for &lo in los {
                fixed.push((x, lo));
                fixed.push((-x, -lo));
            }
        }
    }
    let n = check_all(
        "bf16::from_f64",
        &fixed,
        0xBF_0000,
        random_count(RANDOM_CHUNKS),
        CHUNK_LEN,
        |rng| {
            let x = match rng.random_range(0..5) {
                0 => f32::from_bits(rng.random()) as f64,
                1 => f64::from_bits(rng.random()),
                2 => {
                    let e = rng.random_range(-140..=129i64);
                    let bits = (((e + 1023) as u64) << 52) | (rng.random::<u64>() >> 12);
                    f64::from_bits(bits)
                }
                3 => {
                    // a midpoint plus up to ±2^33 f64 ulps: bits `half` drops
                    let i = rng.random_range(0..g.vals.len() - 1);
                    let mid = (g.vals[i] + g.vals[i + 1]) / 2.0;
                    f64_step(mid, rng.random_range(-(1i64 << 33)..=1 << 33))
                }
                _ => {
                    let i = rng.random_range(0..g.vals.len() - 1);
                    let mid = ((g.vals[i] + g.vals[i + 1]) / 2.0) as f32;
                    f32_step(mid, rng.random_range(-3..=3)) as f64
                }
            };
            let x = if rng.random::<bool>() { -x } else { x };
            (x, random_lo(rng, x))
        },
        |(x, lo)| {
            let want = slow_bf16(&g, x, 0.0);
            let got = bf16::from_f64(x).to_bits();
            let want_s = slow_bf16(&g, x, lo);
            let got_s = bf16::from_f64_sticky(x, lo).to_bits();
            (got != want || got_s != want_s).then(|| {
                format!(
                    "x = {x:e} ({:#018x}), lo = {lo:e}: from_f64 {got:#06x} (want {want:#06x}), \
                     from_f64_sticky {got_s:#06x} (want {want_s:#06x})",
                    x.to_bits()
                )
            })
        },
    );
    assert!(n >= min_inputs(10_000_000));
}

#[test]
fn bf16_from_f32_matches_slow_reference_and_half() {
    let g = Grid::new(&BF16);
    let fixed = f32_boundary_inputs(&g);
    let n = check_all(
        "bf16::from_f32",
        &fixed,
        0xBF_1000,
        random_count(RANDOM_CHUNKS / 4),
        CHUNK_LEN,
        |rng| match rng.random_range(0..2) {
            0 => f32::from_bits(rng.random()),
            _ => log_uniform_f32(rng, -126, 127),
        },
        |x| {
            let want = slow_bf16(&g, x as f64, 0.0);
            let got = bf16::from_f32(x).to_bits();
            // DESIGN §3.1: `half::bf16::from_f32` is correctly rounded on finite inputs
            let half = half::bf16::from_f32(x).to_bits();
            (got != want || (x.is_finite() && half != want)).then(|| {
                format!("x = {x:e}: from_f32 {got:#06x}, half {half:#06x}, want {want:#06x}")
            })
        },
    );
    assert!(n >= min_inputs(2_500_000));
}

#[test]
fn round_f64_to_f32_matches_slow_reference() {
    let mut fixed: Vec<(f64, f64)> = Vec::new();
    // boundaries: f32 midpoints around zero, the subnormal/normal switch, powers of two,
    // and the overflow threshold MAX + 2^103
    let mut points = vec![0.0, two_pow(-150), 3.0 * two_pow(-150), two_pow(-126)];
    points.push(two_pow(-126) - two_pow(-150));
    points.push(f32::MAX as f64 + two_pow(103));
    points.push(f32::MAX as f64);
    points.push(two_pow(128));
    for e in -149..=127 {
        points.push(two_pow(e));
        points.push(two_pow(e) * (1.0 + two_pow(-24))); // midpoint above 2^e
        points.push(two_pow(e) * (1.0 - two_pow(-25))); // midpoint below 2^e
    }
    for p in points {
        for k in -2..=2 {
            let x = f64_step(p, k);
            for lo in fixed_los(x) {
                fixed.push((x, lo));
                fixed.push((-x, -lo));
            }
        }
    }
    for b in SPECIAL_F32_BITS {
        fixed.push((f32::from_bits(b) as f64, 0.0));
    }
    fixed.push((f64::NAN, 0.0));
    fixed.push((f64::INFINITY, 0.0));
    fixed.push((f64::NEG_INFINITY, 0.0));
    let n = check_all(
        "round_f64_to_f32",
        &fixed,
        0xF3_2000,
        random_count(RANDOM_CHUNKS),
        CHUNK_LEN,
        |rng| {
            let x = match rng.random_range(0..4) {
                0 => {
                    // a random f32 midpoint ± up to 2 f64 ulps
                    let c = f32::from_bits(rng.random::<u32>() % 0x7F7F_FFFF);
                    let mid = (c as f64 + f32_step(c, 1) as f64) / 2.0;
                    f64_step(mid, rng.random_range(-2..=2))
                }
                1 => f64::from_bits(rng.random()),
                2 => {
                    let e = rng.random_range(-152..=129i64);
                    let bits = (((e + 1023) as u64) << 52) | (rng.random::<u64>() >> 12);
                    f64::from_bits(bits)
                }
                _ => f32::from_bits(rng.random()) as f64,
            };
            let x = if rng.random::<bool>() { -x } else { x };
            (x, random_lo(rng, x))
        },
        |(x, lo)| {
            let want = slow_f64_to_f32(x, lo);
            let got = round_f64_to_f32(x, lo);
            let got0 = round_f64_to_f32(x, 0.0);
            let want0 = slow_f64_to_f32(x, 0.0);
            (!same_f32(got, want) || !same_f32(got0, want0)).then(|| {
                format!(
                    "x = {x:e} ({:#018x}), lo = {lo:e}: got {got:e} want {want:e}; \
                     with lo = 0 got {got0:e} want {want0:e}",
                    x.to_bits()
                )
            })
        },
    );
    assert!(n >= min_inputs(10_000_000));
}

// ---------------------------------------------------------------------------------------
// 3. Named edge cases
// ---------------------------------------------------------------------------------------

#[test]
fn e4m3_464_465_479_480() {
    for s in [1.0f32, -1.0] {
        let sb = if s < 0.0 { 0x80 } else { 0 };
        // 464 is the tie between 448 (even) and the non-existent 480: rounds to 448
        assert_eq!(e4m3::encode(s * 464.0), 0x7E | sb);
        assert_eq!(e4m3::encode(s * f32_step(464.0, -1)), 0x7E | sb);
        assert_eq!(e4m3::encode(s * f32_step(464.0, 1)), 0x7F | sb);
        for x in [465.0, 479.0, 480.0, 1e9] {
            assert_eq!(e4m3::encode(s * x), 0x7F | sb, "encode({})", s * x);
            assert_eq!(e4m3::encode_satfinite(s * x), 0x7E | sb, "{}", s * x);
        }
        assert_eq!(e4m3::encode_satfinite(s * 464.0), 0x7E | sb);
    }
    assert_eq!(e4m3::decode(0x7E), 448.0);
}

#[test]
fn e4m3_inf_and_nan_both_modes() {
    assert_eq!(e4m3::encode(f32::INFINITY), 0x7F);
    assert_eq!(e4m3::encode(f32::NEG_INFINITY), 0xFF);
    assert_eq!(e4m3::encode_satfinite(f32::INFINITY), 0x7E);
    assert_eq!(e4m3::encode_satfinite(f32::NEG_INFINITY), 0xFE);
    for enc in [e4m3::encode, e4m3::encode_satfinite] {
        assert_eq!(enc(f32::NAN), 0x7F);
        assert_eq!(enc(-f32::NAN), 0xFF);
    }
}

#[test]
fn e5m2_inf_and_nan_both_modes() {
    assert_eq!(e5m2::encode(f32::INFINITY), 0x7C);
    assert_eq!(e5m2::encode(f32::NEG_INFINITY), 0xFC);
    assert_eq!(e5m2::encode_satfinite(f32::INFINITY), 0x7B);
    assert_eq!(e5m2::encode_satfinite(f32::NEG_INFINITY), 0xFB);
    for enc in [e5m2::encode, e5m2::encode_satfinite] {
        assert_eq!(enc(f32::NAN), 0x7E);
        assert_eq!(enc(-f32::NAN), 0xFE);
    }
}

#[test]
fn e2m1_inf_and_nan_both_modes() {
    for enc in [e2m1::encode, e2m1::encode_satfinite] {
        assert_eq!(enc(f32::INFINITY), 0x7);
        assert_eq!(enc(f32::NEG_INFINITY), 0xF);
        assert_eq!(enc(1e30), 0x7);
        assert_eq!(enc(-7.0), 0xF);
    }
}

#[test]
fn e2m1_nan_is_0x7() {
    for b in [0x7FC0_0000u32, 0xFFC0_0000, 0x7F80_0001, 0xFFFF_FFFF] {
        let x = f32::from_bits(b);
        assert_eq!(e2m1::encode(x), 0x7, "{b:#x}");
        assert_eq!(e2m1::encode_satfinite(x), 0x7, "{b:#x}");
    }
    assert_eq!(e2m1::decode(0x7), 6.0);
}

#[test]
fn nan_sign_bit_kept_e4m3_e5m2() {
    // quiet, signaling-pattern and payload NaNs of both signs
    for b in [0x7FC0_0000u32, 0x7F80_0001, 0x7FA1_2345, 0x7FFF_FFFF] {
        let (p, n) = (f32::from_bits(b), f32::from_bits(b | 0x8000_0000));
        for enc in [e4m3::encode, e4m3::encode_satfinite] {
            assert_eq!((enc(p), enc(n)), (0x7F, 0xFF), "{b:#x}");
        }
        for enc in [e5m2::encode, e5m2::encode_satfinite] {
            assert_eq!((enc(p), enc(n)), (0x7E, 0xFE), "{b:#x}");
        }
    }
}

#[test]
fn e5m2_overflow_threshold_61440() {
    assert_eq!(e5m2::encode(61440.0), 0x7C);
    assert_eq!(e5m2::encode(-61440.0), 0xFC);
    assert_eq!(e5m2::encode(f32_step(61440.0, -1)), 0x7B);
    assert_eq!(e5m2::encode(-f32_step(61440.0, -1)), 0xFB);
    assert_eq!(e5m2::decode(0x7B), 57344.0);
    assert_eq!(e5m2::encode(57344.0), 0x7B);
    assert_eq!(e5m2::encode_satfinite(61440.0), 0x7B);
    assert_eq!(e5m2::encode_satfinite(-1e30), 0xFB);
}

#[test]
fn e2m1_ties_round_to_nearest_even() {
    let ties = [
        (0.25, 0.0),
        (0.75, 1.0),
        (1.25, 1.0),
        (1.75, 2.0),
        (2.5, 2.0),
        (3.5, 4.0),
        (5.0, 4.0),
    ];
    for (x, want) in ties {
        for s in [1.0f32, -1.0] {
            let got = e2m1::decode(e2m1::encode(s * x));
            assert_eq!(got.to_bits(), (s * want).to_bits(), "encode({})", s * x);
            let got = e2m1::decode(e2m1::encode_satfinite(s * x));
            assert_eq!(got.to_bits(), (s * want).to_bits(), "satfinite({})", s * x);
        }
    }
    // not toward zero: just above a tie goes up
    assert_eq!(e2m1::decode(e2m1::encode(f32_step(0.25, 1))), 0.5);
    assert_eq!(e2m1::decode(e2m1::encode(f32_step(5.0, 1))), 6.0);
}

#[test]
fn ue8m0_of_three() {
    assert_eq!(ue8m0::encode(3.0), 129);
    assert_eq!(ue8m0::encode_ceil(3.0), 129);
    assert_eq!(ue8m0::decode(129), 4.0);
}

#[test]
fn ue8m0_encode_ceil_specials() {
    for b in [0x0000_0001u32, 0x0040_0000, 0x007F_FFFF, 0x8000_0001] {
        assert_eq!(ue8m0::encode_ceil(f32::from_bits(b)), 1, "{b:#x}");
    }
    assert_eq!(ue8m0::decode(1), f32::MIN_POSITIVE); // 2^-126
    assert_eq!(ue8m0::encode_ceil(0.0), 1);
    assert_eq!(ue8m0::encode_ceil(-0.0), 1);
    assert_eq!(ue8m0::encode_ceil(f32::INFINITY), 254);
    assert_eq!(ue8m0::encode_ceil(f32::NEG_INFINITY), 254);
    assert_eq!(ue8m0::encode_ceil(f32::NAN), 254);
    assert_eq!(ue8m0::encode_ceil(f32::MAX), 254);
    assert_eq!(ue8m0::encode_ceil(-3.0), 129); // on |x|
}

#[test]
fn ue8m0_encode_specials() {
    let big = 1.5 * two_pow(127) as f32;
    assert_eq!(ue8m0::encode(big), 0xFF);
    assert_eq!(ue8m0::encode(f32::MAX), 0xFF);
    assert_eq!(ue8m0::encode(f32_step(big, -1)), 254);
    for x in [
        0.0,
        -0.0,
        -1.0,
        -f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        assert_eq!(ue8m0::encode(x), 0xFF, "{x}");
    }
    assert_eq!(ue8m0::encode(f32::NAN), 0xFF);
    for b in [0x0000_0001u32, 0x0040_0000, 0x007F_FFFF] {
        assert_eq!(ue8m0::encode(f32::from_bits(b)), 0x00, "{b:#x}");
    }
    assert_eq!(ue8m0::encode(f32::MIN_POSITIVE), 1);
}

#[test]
fn ue8m0_code_zero_is_two_to_minus_127() {
    let v = ue8m0::decode(0);
    assert_eq!(v.to_bits(), 0x0040_0000); // 2^-127, an f32 subnormal
    assert_eq!(v as f64, two_pow(-127));
    assert_ne!(v, 0.0);
    assert!(ue8m0::decode(0xFF).is_nan());
}

#[test]
fn signed_zero_exact_in_all_formats() {
    for enc in [
        e4m3::encode,
        e4m3::encode_satfinite,
        e5m2::encode,
        e5m2::encode_satfinite,
    ] {
        assert_eq!((enc(0.0), enc(-0.0)), (0x00, 0x80));
    }
    for enc in [e2m1::encode, e2m1::encode_satfinite] {
        assert_eq!((enc(0.0), enc(-0.0)), (0x0, 0x8));
    }
    assert_eq!(e4m3::decode(0x80).to_bits(), (-0.0f32).to_bits());
    assert_eq!(e5m2::decode(0x80).to_bits(), (-0.0f32).to_bits());
    assert_eq!(e2m1::decode(0x8).to_bits(), (-0.0f32).to_bits());
    // underflow keeps the sign
    assert_eq!(e4m3::encode(-1e-10), 0x80);
    assert_eq!(e2m1::encode(-0.25), 0x8);
    assert_eq!(bf16::from_f64(-0.0).to_bits(), 0x8000);
    assert_eq!(bf16::from_f64(-1e-300).to_bits(), 0x8000);
    assert_eq!(bf16::from_f64_sticky(-0.0, 0.0).to_bits(), 0x8000);
    assert_eq!(round_f64_to_f32(-0.0, 0.0).to_bits(), 0x8000_0000);
    assert_eq!(round_f64_to_f32(-1e-300, 0.0).to_bits(), 0x8000_0000);
    // UE8M0 has no zero
    assert_eq!(ue8m0::encode(0.0), 0xFF);
    assert!((0..=255u8).all(|c| ue8m0::decode(c) != 0.0));
}

#[test]
fn subnormals_exact() {
    for m in 1..8u8 {
        let v = m as f64 * two_pow(-9);
        assert_eq!(e4m3::decode(m) as f64, v);
        assert_eq!(e4m3::encode(v as f32), m);
        assert_eq!(e4m3::encode_satfinite(-v as f32), 0x80 | m);
    }
    for m in 1..4u8 {
        let v = m as f64 * two_pow(-16);
        assert_eq!(e5m2::decode(m) as f64, v);
        assert_eq!(e5m2::encode(v as f32), m);
        assert_eq!(e5m2::encode_satfinite(-v as f32), 0x80 | m);
    }
    assert_eq!(e2m1::decode(0x1), 0.5);
    assert_eq!(e2m1::encode(-0.5), 0x9);
    for m in 1..128u16 {
        let v = m as f64 * two_pow(-133);
        assert_eq!(bf16::from_f64(v).to_bits(), m);
        assert_eq!(bf16::from_f64(-v).to_bits(), 0x8000 | m);
    }
    for b in [1u32, 2, 3, 0x1234, 0x007F_FFFF] {
        let x = f32::from_bits(b);
        assert_eq!(round_f64_to_f32(x as f64, 0.0).to_bits(), b);
    }
}

#[test]
fn bf16_specials() {
    assert_eq!(bf16::from_f64(f64::INFINITY).to_bits(), 0x7F80);
    assert_eq!(bf16::from_f64(f64::NEG_INFINITY).to_bits(), 0xFF80);
    assert_eq!(bf16::from_f64(f64::NAN).to_bits(), 0x7FC0);
    assert_eq!(bf16::from_f64(-f64::NAN).to_bits(), 0xFFC0);
    assert_eq!(bf16::from_f64(1e39).to_bits(), 0x7F80);
    // overflow threshold (2 - 2^-8)·2^127: ties to the even 2^128 → inf
    let thr = (2.0 - two_pow(-8)) * two_pow(127);
    assert_eq!(bf16::from_f64(thr).to_bits(), 0x7F80);
    assert_eq!(bf16::from_f64(f64_step(thr, -1)).to_bits(), 0x7F7F);
    assert_eq!(bf16::from_f64_sticky(thr, -1e-300).to_bits(), 0x7F7F);
}

#[test]
fn sticky_breaks_exact_ties() {
    let mid = 1.0 + two_pow(-8); // between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81)
    assert_eq!(bf16::from_f64_sticky(mid, 0.0).to_bits(), 0x3F80);
    assert_eq!(bf16::from_f64_sticky(mid, 1e-30).to_bits(), 0x3F81);
    assert_eq!(bf16::from_f64_sticky(mid, -1e-30).to_bits(), 0x3F80);
    assert_eq!(bf16::from_f64_sticky(-mid, -1e-30).to_bits(), 0xBF81);
    let mid32 = 1.0 + two_pow(-24); // between 1 and 1 + 2^-23
    assert_eq!(round_f64_to_f32(mid32, 0.0), 1.0);
    assert_eq!(round_f64_to_f32(mid32, 1e-30), 1.0 + f32::EPSILON);
    assert_eq!(round_f64_to_f32(-mid32, -1e-30), -1.0 - f32::EPSILON);
    assert_eq!(round_f64_to_f32(mid32, -1e-30), 1.0);
    assert_eq!(round_f64_to_f32(1e300, 0.0), f32::INFINITY);
    assert_eq!(round_f64_to_f32(-1e300, 0.0), f32::NEG_INFINITY);
}

#[test]
fn half_bf16_from_f64_is_not_correctly_rounded() {
    // 1 + 2^-8 + 2^-40 is just above the midpoint between 1 and 1 + 2^-7; `half` drops
    // the low 32 bits of the f64, sees an exact tie and rounds to even (down).
    let x = 1.0 + two_pow(-8) + two_pow(-40);
    assert_eq!(half::bf16::from_f64(x).to_bits(), 0x3F80);
    assert_eq!(slow_bf16(&Grid::new(&BF16), x, 0.0), 0x3F81);
    assert_eq!(bf16::from_f64(x).to_bits(), 0x3F81);
    // and not a one-off: count disagreements just above random midpoints
    let g = Grid::new(&BF16);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut differ = 0;
    for _ in 0..10_000 {
        let i = rng.random_range(1..g.vals.len() - 2);
        let mid = (g.vals[i] + g.vals[i + 1]) / 2.0;
        let x = f64_step(mid, rng.random_range(1..1 << 20));
        let want = slow_bf16(&g, x, 0.0);
        assert_eq!(bf16::from_f64(x).to_bits(), want);
        differ += (half::bf16::from_f64(x).to_bits() != want) as u32;
    }
    // half is wrong exactly when the rounding goes to the odd side: about half of them
    assert!((4000..6000).contains(&differ), "{differ}");
}

// ---------------------------------------------------------------------------------------
// 4. DESIGN §3.1 (one test per bullet) and §3.2
// ---------------------------------------------------------------------------------------

/// Finite values of all codes of an 8-bit decoder.
fn finite_values(decode: fn(u8) -> f32) -> Vec<f32> {
    (0..=255u8).map(decode).filter(|v| v.is_finite()).collect()
}

/// Bullet 1: "E4M3 (fn): bias 7, max 448, min subnormal 2^-9, NaN = S.1111.111, no
/// infinity. E5M2: bias 15, max 57344, has ±inf. E2M1: bias 1, values ±{0, .5, 1, 1.5,
/// 2, 3, 4, 6}, no NaN/inf. UE8M0: bias 127, 2^-127..2^127, 0xFF = NaN, no zero."
#[test]
fn design_3_1_bullet1_format_parameters() {
    // the independent grids agree on max and its code
    for (fmt, max, code) in [(E4M3, 448.0, 0x7E), (E5M2, 57344.0, 0x7B), (E2M1, 6.0, 0x7)] {
        let g = Grid::new(&fmt);
        assert_eq!((g.max(), g.max_code()), (max, code), "{fmt:?}");
    }
    // E4M3: exponent field 7 with mantissa 0 is 1.0 (bias 7)
    assert_eq!(e4m3::decode(0b0_0111_000), 1.0);
    let v = finite_values(e4m3::decode);
    assert_eq!(v.len(), 254);
    assert_eq!(v.iter().fold(0.0f32, |m, x| m.max(*x)), 448.0);
    assert_eq!(e4m3::MAX, 448.0);
    let min_pos = v
        .iter()
        .filter(|x| **x > 0.0)
        .fold(f32::MAX, |m, x| m.min(*x));
    assert_eq!(min_pos as f64, two_pow(-9));
    assert_eq!(e4m3::MIN_SUBNORMAL as f64, two_pow(-9));
    let nans: Vec<u8> = (0..=255u8).filter(|&c| e4m3::decode(c).is_nan()).collect();
    assert_eq!(nans, [0b0_1111_111, 0b1_1111_111]);
    assert!((0..=255u8).all(|c| !e4m3::decode(c).is_infinite()));
    assert_eq!(e4m3::NAN, 0x7F);

    // E5M2
    assert_eq!(e5m2::decode(0b0_01111_00), 1.0);
    let v = finite_values(e5m2::decode);
    assert_eq!(v.iter().fold(0.0f32, |m, x| m.max(*x)), 57344.0);
    assert_eq!(e5m2::MAX, 57344.0);
    assert_eq!(e5m2::decode(0x7C), f32::INFINITY);
    assert_eq!(e5m2::decode(0xFC), f32::NEG_INFINITY);
    assert_eq!(e5m2::INFINITY, 0x7C);
    assert_eq!(e5m2::MIN_SUBNORMAL as f64, two_pow(-16));
    // The smallest normals: exponent field 1, mantissa 0.
    assert_eq!(e5m2::MIN_NORMAL, e5m2::decode(0b0_00001_00));
    assert_eq!(e5m2::MIN_NORMAL as f64, two_pow(-14));
    assert_eq!(e4m3::MIN_NORMAL, e4m3::decode(0b0_0001_000));
    assert_eq!(e4m3::MIN_NORMAL as f64, two_pow(-6));

    // E2M1
    assert_eq!(e2m1::decode(0b0_01_0), 1.0);
    let vals: Vec<f32> = (0..16u8).map(e2m1::decode).collect();
    let want = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    assert_eq!(vals[..8], want);
    assert_eq!(vals[8..], want.map(|x: f32| -x));
    assert!(vals.iter().all(|v| v.is_finite()));
    assert_eq!(e2m1::MAX, 6.0);

    // UE8M0
    assert_eq!(ue8m0::decode(127), 1.0);
    assert_eq!(ue8m0::BIAS, 127);
    assert_eq!(ue8m0::decode(0) as f64, two_pow(-127));
    assert_eq!(ue8m0::decode(254) as f64, two_pow(127));
    assert!(ue8m0::decode(0xFF).is_nan());
    assert_eq!(ue8m0::NAN, 0xFF);
    assert!((0..=255u8).all(|c| ue8m0::decode(c) != 0.0));
}

/// Bullet 2: "Encoding is round-to-nearest-even. Two overflow modes: non-saturating (as
/// ml_dtypes): E4M3 |x| > 464 → NaN (464 itself rounds to 448), E5M2 overflow → ±inf;
/// satfinite (as PTX cvt.rn.satfinite): overflow → ±max finite, NaN stays NaN."
#[test]
fn design_3_1_bullet2_rne_and_overflow_modes() {
    // RNE: 1 + 1/16 is the tie between 1 (even) and 1.125 in E4M3; 1 + 3/16 → 1.25
    assert_eq!(e4m3::decode(e4m3::encode(1.0625)), 1.0);
    assert_eq!(e4m3::decode(e4m3::encode(1.1875)), 1.25);
    assert_eq!(e5m2::decode(e5m2::encode(1.125)), 1.0);
    assert_eq!(e5m2::decode(e5m2::encode(1.375)), 1.5);
    // non-saturating
    assert_eq!(e4m3::decode(e4m3::encode(464.0)), 448.0);
    assert!(e4m3::decode(e4m3::encode(f32_step(464.0, 1))).is_nan());
    assert_eq!(e5m2::decode(e5m2::encode(1e6)), f32::INFINITY);
    assert_eq!(e5m2::decode(e5m2::encode(-1e6)), f32::NEG_INFINITY);
    // satfinite
    assert_eq!(e4m3::decode(e4m3::encode_satfinite(1e6)), 448.0);
    assert_eq!(e4m3::decode(e4m3::encode_satfinite(-1e6)), -448.0);
    assert_eq!(e5m2::decode(e5m2::encode_satfinite(1e6)), 57344.0);
    assert_eq!(e5m2::decode(e5m2::encode_satfinite(-1e6)), -57344.0);
    assert_eq!(e2m1::decode(e2m1::encode_satfinite(1e6)), 6.0);
    assert!(e4m3::decode(e4m3::encode_satfinite(f32::NAN)).is_nan());
    assert!(e5m2::decode(e5m2::encode_satfinite(f32::NAN)).is_nan());
}

/// Bullet 3: "UE8M0 scale rules: DeepGEMM's ceil (amax/448 rounded up to a power of two,
/// biased exponent clamped to [1, 254]); nearest (ties upward, as ml_dtypes)."
#[test]
fn design_3_1_bullet3_ue8m0_scale_rules() {
    // ceil: amax 1000 → 1000/448 = 2.23 → 4; amax 448·2 → exactly 2
    assert_eq!(ue8m0::decode(ue8m0::encode_ceil(1000.0 / 448.0)), 4.0);
    assert_eq!(ue8m0::decode(ue8m0::encode_ceil(896.0 / 448.0)), 2.0);
    assert_eq!(ue8m0::decode(ue8m0::encode_ceil(f32_step(2.0, 1))), 4.0);
    // clamped to [1, 254]
    assert_eq!(ue8m0::encode_ceil(1e-40 / 448.0), 1);
    assert_eq!(ue8m0::encode_ceil(0.0), 1);
    assert_eq!(ue8m0::encode_ceil(f32::MAX), 254);
    // nearest, ties upward: the midpoint of 2^k and 2^(k+1) is 1.5·2^k
    assert_eq!(ue8m0::encode(1.5), 128);
    assert_eq!(ue8m0::encode(f32_step(1.5, -1)), 127);
    assert_eq!(ue8m0::encode(0.75), 127);
    assert_eq!(ue8m0::encode(3.0), 129);
    assert_eq!(ue8m0::encode(2.9), 128);
}

/// Bullet 4: the Rust crates. `half::bf16::from_f32` is correctly rounded on finite
/// inputs (checked over 2.5·10^6 inputs in `bf16_from_f32_matches_slow_reference_and_half`),
/// `from_f64` is not (`half_bf16_from_f64_is_not_correctly_rounded`), and NaN payloads
/// differ (here). `float8` and `float4`: the `crate_*` tests below.
#[test]
fn design_3_1_bullet4_half_nan_payloads_differ() {
    let x = f32::from_bits(0x7FA1_2345);
    assert_eq!(half::bf16::from_f32(x).to_bits(), 0x7FE1); // payload kept, quiet bit set
    assert_eq!(bf16::from_f32(x).to_bits(), 0x7FC0);
    let y = f64::from_bits(0x7FFF_F000_0000_0000);
    assert_eq!(half::bf16::from_f64(y).to_bits(), 0x7FFF);
    assert_eq!(bf16::from_f64(y).to_bits(), 0x7FC0);
}

/// Bullet 5: "Every E2M1 value is exactly representable in E4M3, so FP4 operands can be
/// widened to FP8 with no rounding."
#[test]
fn design_3_1_bullet5_e2m1_exact_in_e4m3() {
    for c in 0..16u8 {
        let v = e2m1::decode(c);
        let w = e4m3::encode(v);
        assert_eq!(e4m3::decode(w).to_bits(), v.to_bits(), "{v}");
        assert_eq!(e4m3::encode_satfinite(v), w);
        // and E2M1 · 2 is an integer
        assert_eq!((2.0 * v).fract(), 0.0);
    }
}

/// §3.2: "an E4M3 value times 2^9 is an integer of magnitude <= 229,376; a product of two
/// is an integer < 2^36 and a sum of up to 128 such products is below 2^43"; E2M1·2 is
/// an integer.
#[test]
fn design_3_2_e4m3_products_are_exact_integers() {
    let ints: Vec<i64> = finite_values(e4m3::decode)
        .into_iter()
        .map(|v| {
            let s = v as f64 * 512.0;
            assert_eq!(s.fract(), 0.0, "{v}");
            s as i64
        })
        .collect();
    let max = ints.iter().map(|v| v.abs()).max().unwrap();
    assert_eq!(max, 229_376);
    assert!(max * max < 1 << 36);
    assert!(128 * max * max < 1 << 43);
    // every product of two E4M3 values is exact in f64 (integer product · 2^-18)
    for &a in &ints {
        for &b in &ints {
            let p = (a as f64 / 512.0) * (b as f64 / 512.0);
            assert_eq!(p * two_pow(18), (a * b) as f64);
        }
    }
    // a sum of 128 largest products is exact in f64
    let big = (max * max) as f64 * two_pow(-18);
    let s: f64 = (0..128).map(|_| big).sum();
    assert_eq!(s * two_pow(18), (128 * max * max) as f64);
    for c in 0..16u8 {
        assert_eq!((e2m1::decode(c) * 2.0).fract(), 0.0);
    }
}

// ---------------------------------------------------------------------------------------
// 5. Where the `float8` 0.7 and `float4` 0.2 crates differ (DESIGN §3.1, bullet 4)
// ---------------------------------------------------------------------------------------

/// The count [`float8_sweep`] returns for ranges of these lengths (both signs).
fn sweep_len(lens: &[usize]) -> u64 {
    let stride = if fast_tests() { FAST_STRIDE } else { 1 };
    lens.iter().map(|&l| 2 * l.div_ceil(stride) as u64).sum()
}

/// Checks `float8` against our satfinite encoder over every f32 with bits in `range`
/// (both signs; under [`fast_tests`], every [`FAST_STRIDE`]-th pattern from the start);
/// returns how many were checked.
fn float8_sweep(range: std::ops::Range<u32>, f: fn(f32) -> u8, ours: fn(f32) -> u8) -> u64 {
    let stride = if fast_tests() { FAST_STRIDE } else { 1 };
    let n = 2 * range.len().div_ceil(stride) as u64;
    let bad = range.into_par_iter().step_by(stride).find_first(|&b| {
        let (p, m) = (f32::from_bits(b), f32::from_bits(b | 0x8000_0000));
        f(p) != ours(p) || f(m) != ours(m)
    });
    if let Some(b) = bad {
        let x = f32::from_bits(b);
        panic!(
            "x = ±{x:e} ({b:#010x}): crate {:#04x}/{:#04x}, ours {:#04x}/{:#04x}",
            f(x),
            f(-x),
            ours(x),
            ours(-x)
        );
    }
    n
}

/// `F8E4M3::from_f32` is our `encode_satfinite` bit for bit (RNE up to 464, saturating
/// to 448 beyond, inf → 448, NaN → 0x7F | sign), so it differs from `encode` above 464.
#[test]
fn crate_float8_e4m3_conversion_is_satfinite() {
    let f = |x: f32| F8E4M3::from_f32(x).to_bits();
    // every f32 in [2^-10, 2^-6) (all E4M3 subnormals, the underflow tie 2^-10 and the
    // switch to normals) and in [256, 512) (448, 464, 480), both signs
    let n = float8_sweep(0x3A80_0000..0x3C80_0000, f, e4m3::encode_satfinite)
        + float8_sweep(0x4380_0000..0x4400_0000, f, e4m3::encode_satfinite);
    let full = (2 * 5) << 23;
    assert_eq!(
        n,
        if fast_tests() {
            sweep_len(&[4 << 23, 1 << 23])
        } else {
            full
        }
    );
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for _ in 0..random_count(1_000_000) {
        let x = f32::from_bits(rng.random());
        assert_eq!(f(x), e4m3::encode_satfinite(x), "{x:e}");
    }
    for b in SPECIAL_F32_BITS {
        let x = f32::from_bits(b);
        assert_eq!(f(x), e4m3::encode_satfinite(x), "{b:#x}");
    }
    // the difference from the non-saturating `encode`
    assert_eq!(f(464.0), 0x7E);
    assert_eq!((f(465.0), e4m3::encode(465.0)), (0x7E, 0x7F));
    assert_eq!((f(-480.0), e4m3::encode(-480.0)), (0xFE, 0xFF));
    assert_eq!(
        (f(f32::INFINITY), e4m3::encode(f32::INFINITY)),
        (0x7E, 0x7F)
    );
}

/// `F8E5M2::from_f32` is our `encode_satfinite` on every non-NaN input, but passes the
/// top two f64 mantissa bits of a NaN into the code (still a NaN code, not `0x7E`).
#[test]
fn crate_float8_e5m2_conversion_is_satfinite_except_nan_payload() {
    let f = |x: f32| F8E5M2::from_f32(x).to_bits();
    // every f32 in [2^-17, 2^-14) (E5M2 subnormals, the underflow tie 2^-17) and
    // [2^15, 2^16) (57344, 61440), both signs
    let n = float8_sweep(0x3700_0000..0x3880_0000, f, e5m2::encode_satfinite)
        + float8_sweep(0x4700_0000..0x4780_0000, f, e5m2::encode_satfinite);
    let full = (2 * 4) << 23;
    assert_eq!(
        n,
        if fast_tests() {
            sweep_len(&[3 << 23, 1 << 23])
        } else {
            full
        }
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..random_count(1_000_000) {
        let x = f32::from_bits(rng.random());
        if x.is_nan() {
            assert!(e5m2::decode(f(x)).is_nan());
        } else {
            assert_eq!(f(x), e5m2::encode_satfinite(x), "{x:e}");
        }
    }
    assert_eq!((f(61440.0), e5m2::encode(61440.0)), (0x7B, 0x7C));
    assert_eq!(
        (f(f32::INFINITY), e5m2::encode(f32::INFINITY)),
        (0x7B, 0x7C)
    );
    assert_eq!(f(f32::NAN), 0x7E);
    // NaN payload 0x7FE0_0000 (top mantissa bits 11) gives 0x7F; ours 0x7E
    let x = f32::from_bits(0x7FE0_0000);
    assert_eq!((f(x), e5m2::encode_satfinite(x)), (0x7F, 0x7E));
    assert_eq!(f(-x), 0xFF);
}

/// `float8`'s constants and predicates are wrong: never use them.
#[test]
fn crate_float8_constants_and_predicates_are_wrong() {
    // E4M3
    assert_eq!(F8E4M3::MAX.to_bits(), 0x7D);
    assert_eq!(F8E4M3::MAX.to_f32(), 416.0); // the real max is 448
    assert_ne!(F8E4M3::MAX.to_f32(), e4m3::MAX);
    assert_eq!(F8E4M3::INFINITY.to_bits(), 0x7E); // 448, finite
    assert_eq!(F8E4M3::INFINITY.to_f32(), 448.0);
    assert!(F8E4M3::INFINITY.is_infinite());
    assert!(F8E4M3::from_f32(448.0).is_infinite());
    assert!(e4m3::decode(0x7E).is_finite());
    assert_eq!(F8E4M3::NAN.to_bits(), e4m3::NAN); // this one is right
    assert!(F8E4M3::from_bits(0xFF).is_nan());
    // E5M2: MAX is 49152 (0x7A) too, INFINITY is the finite 57344, and the predicates
    assert_eq!(F8E5M2::MAX.to_bits(), 0x7A);
    assert_eq!(F8E5M2::MAX.to_f32(), 49152.0); // the real max is 57344
    assert_eq!(F8E5M2::INFINITY.to_bits(), 0x7B);
    assert_eq!(F8E5M2::INFINITY.to_f32(), 57344.0);
    assert!(F8E5M2::from_bits(0x7B).is_infinite()); // finite 57344
    assert!(!F8E5M2::from_bits(0x7C).is_infinite()); // the real +inf
    assert!(!F8E5M2::from_bits(0xFC).is_infinite());
    assert!(F8E5M2::from_bits(0x7C).is_finite());
    assert!(!F8E5M2::from_bits(0x7D).is_nan()); // NaN codes it misses
    assert!(!F8E5M2::from_bits(0x7F).is_nan());
    assert!(F8E5M2::from_bits(0x7E).is_nan());
    assert!(e5m2::decode(0x7D).is_nan() && e5m2::decode(0x7F).is_nan());
    assert_eq!(e5m2::decode(0x7C), f32::INFINITY);
    // ... while its decoding (through f16) agrees with ours on every code
    for c in 0..=255u8 {
        assert!(
            same_f32(F8E4M3::from_bits(c).to_f32(), e4m3::decode(c)),
            "{c:#x}"
        );
        assert!(
            same_f32(F8E5M2::from_bits(c).to_f32(), e5m2::decode(c)),
            "{c:#x}"
        );
    }
}

/// `float4::E8M0` rounds up (our `encode_ceil` on positive normal f32, not `encode`),
/// maps x <= 0 to 0x00 (not NaN, not 1), inf to 0xFE (as `encode_ceil`, not NaN), NaN
/// to 0xFF (`encode_ceil` gives 254), and f32 subnormals to their true ceiling clamped at
/// 0x00 (2^-127) where DeepGEMM clamps at 1.
#[test]
fn crate_float4_e8m0_rounds_up_and_clamps_differently() {
    let f = |x: f32| E8M0::from(x).to_bits();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    // powers of two 2^-126..2^127 and ±2 ulps around them, then random positive normals
    let mut inputs: Vec<f32> = Vec::new();
    for e in -126..=127 {
        for k in -2..=2 {
            inputs.push(f32_step(two_pow(e) as f32, k));
        }
    }
    inputs.extend((0..2_000_000).map(|_| log_uniform_f32(&mut rng, -126, 127).abs()));
    let mut differs_from_nearest = 0;
    for x in inputs {
        if !x.is_normal() {
            continue;
        }
        assert_eq!(f(x), ue8m0::encode_ceil(x), "{x:e}");
        differs_from_nearest += (f(x) != ue8m0::encode(x)) as u32;
    }
    assert!(differs_from_nearest > 100_000);
    assert_eq!(
        (f(2.5), ue8m0::encode(2.5), ue8m0::encode_ceil(2.5)),
        (129, 128, 129)
    );
    assert_eq!(f(3.0), 129);
    // x <= 0
    for x in [0.0, -0.0, -3.0, f32::NEG_INFINITY] {
        assert_eq!(f(x), 0x00, "{x}");
        assert_eq!(ue8m0::encode(x), 0xFF, "{x}");
    }
    assert_eq!(
        (ue8m0::encode_ceil(0.0), ue8m0::encode_ceil(-3.0)),
        (1, 129)
    );
    // inf, NaN, beyond 2^127
    assert_eq!(
        (f(f32::INFINITY), ue8m0::encode(f32::INFINITY)),
        (0xFE, 0xFF)
    );
    assert_eq!(ue8m0::encode_ceil(f32::INFINITY), 0xFE);
    assert_eq!((f(f32::NAN), ue8m0::encode_ceil(f32::NAN)), (0xFF, 254));
    assert_eq!((f(f32::MAX), ue8m0::encode(f32::MAX)), (0xFE, 0xFF));
    // subnormals: <= 2^-127 → 0x00, in (2^-127, 2^-126) → 1; DeepGEMM always 1
    let tiny = f32::from_bits(1);
    assert_eq!(
        (f(tiny), ue8m0::encode_ceil(tiny), ue8m0::encode(tiny)),
        (0, 1, 0)
    );
    let two_m127 = f32::from_bits(0x0040_0000);
    assert_eq!((f(two_m127), ue8m0::encode_ceil(two_m127)), (0, 1));
    let above = f32::from_bits(0x0040_0001);
    assert_eq!((f(above), ue8m0::encode_ceil(above)), (1, 1));
    // decoding agrees
    for c in 0..=255u8 {
        assert!(same_f32(
            E8M0::from_bits(c).to_f64() as f32,
            ue8m0::decode(c)
        ));
    }
}

/// `float4::F4E2M1` agrees with our E2M1 codec bit for bit (encode, including ±inf → ±6
/// and NaN → +6, and decode), and `F4E2M1x2` keeps the low nibble first.
#[test]
fn crate_float4_e2m1_agrees() {
    let f = |x: f32| F4E2M1::from(x).to_bits();
    let g = Grid::new(&E2M1);
    let mut inputs = f32_boundary_inputs(&g);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..random_count(1_000_000) {
        inputs.push(match rng.random_range(0..3) {
            0 => f32::from_bits(rng.random()),
            1 => log_uniform_f32(&mut rng, -4, 4),
            _ => rng.random_range(-8.0..8.0),
        });
    }
    for x in inputs {
        assert_eq!(f(x), e2m1::encode(x), "x = {x:e} ({:#010x})", x.to_bits());
    }
    for c in 0..16u8 {
        assert_eq!(F4E2M1::from_bits(c).to_f64() as f32, e2m1::decode(c));
    }
    assert_eq!(F4E2M1::MAX.to_f64(), 6.0);
    let pair = F4E2M1x2::from_f32_pair(1.0, -6.0);
    assert_eq!(pair.to_bits(), e2m1::encode(1.0) | e2m1::encode(-6.0) << 4);
}
