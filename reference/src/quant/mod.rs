//! Quantization recipes: per-token 1×G, per-block G×G and per-channel casts to E4M3 or
//! E2M1 with FP32 or UE8M0 scales, exact dequantization, FP4 / UE8M0 packing and the
//! scale-factor layouts the kernels read.
//!
//! # The recipe
//!
//! The casts mirror DeepGEMM's `deep_gemm/utils/math.py` (`per_token_cast_to_fp8`,
//! `per_block_cast_to_fp8`, `per_channel_cast_to_fp8`, `ceil_to_ue8m0`, and
//! `per_token_cast_to_fp4` for E2M1), step for step and in f32, as torch computes them:
//!
//! 1. `amax` = the largest `|x|` of the block (f32, exact). Blocks at the right or bottom
//!    edge (a dimension not divisible by G: M = 7, N = 33, ...) simply cover fewer
//!    elements; the zero padding DeepGEMM adds never changes an `amax` and is not stored.
//! 2. `scale = max(amax, 1e-4) / max_finite` in f32 (torch's `amax.clamp(1e-4) / 448.0`),
//!    with `max_finite` = 448 for E4M3 and 6 for E2M1 (OCP OFP8 v1.0, OCP MX v1.0
//!    §5.3.3). An all-zero block therefore gets `1e-4 / 448` (or `1e-4 / 6`) and codes 0.
//! 3. With [`ScaleRound::Ue8m0`] (DeepGEMM's `use_ue8m0`), the scale is rounded *up* to a
//!    power of two: `ue8m0::decode(ue8m0::encode_ceil(scale))` (`ceil_to_ue8m0`).
//! 4. Each element: `encode_satfinite(x * (1.0 / scale))`: the f32 reciprocal is rounded
//!    first and then multiplied in f32 (DeepGEMM's `x * (1.0 / sf)`); that double
//!    rounding is part of the recipe and the reference reproduces it bit for bit.
//!
//! With this recipe `|x · (1/scale)|` never exceeds `max_finite` by more than a few f32
//! ulps (the UE8M0 scale only makes it smaller), which round to `max_finite` itself, so a
//! saturating (PTX `cvt.rn.satfinite`) and a non-saturating (torch CPU, `ml_dtypes`)
//! conversion give the same code for every finite input; E4M3's 464/480 overflow
//! boundary is never reached through a cast. The scale stays in `[1e-4/448, f32::MAX/6]`,
//! so its reciprocal is a finite normal f32.
//!
//! E2M1 codes are one per byte (low nibble) until packed with [`pack_e2m1`]. They come
//! from [`crate::format::e2m1::encode_satfinite`] (round to nearest even, as the hardware
//! `cvt.rn.satfinite.e2m1x2.f32`). DeepGEMM's Python test helper `_quantize_to_fp4_e2m1`
//! differs in two ways the reference does not copy: it rounds the ties 0.25, 0.75, 1.25,
//! 1.75, 2.5, 3.5, 5 toward zero (`torch.bucketize`), and maps negative values that round
//! to zero to +0 (code 0x0, where the codec gives 0x8).
//!
//! # Non-finite input
//!
//! A NaN or ±inf anywhere in `x` is rejected with [`Error::NonFinite`] naming the first
//! offending element in row-major order (tensor `"x"`), before any work is done. A GPU
//! or torch cast does not refuse; it spreads the value over the whole block:
//! - NaN: `amax` is NaN (torch's `amax` and `clamp` propagate NaN), so the scale and
//!   `1/scale` are NaN and every code of the block becomes NaN (E4M3 `0x7F`; an E2M1
//!   conversion, which has no NaN, gives ±6 or whatever the helper's comparisons yield).
//! - ±inf: `amax` and the FP32 scale are inf, `1/scale` is 0, so every finite element of
//!   the block encodes to 0 and the inf element to `inf · 0` = NaN. With UE8M0,
//!   `ceil_to_ue8m0` clamps both inf and NaN to 2^127, so the block silently becomes 0
//!   (the inf element saturates to ±448 or becomes NaN, depending on the conversion).
//!
//! Either way the result is an artefact of one implementation, not a number the input
//! defines; a reference that reproduced it would pin that artefact as "correct", and one
//! that invented another value would hide the caller's bug. So the reference refuses.
//!
//! # Granularity
//!
//! G ∈ {32, 128}. 128 ([`DEFAULT_GRAN`]) is what DeepGEMM's FP8 recipes and most callers
//! use (`gran_k = 128`); 32 is the OCP MX block size used for FP4 with UE8M0 scales.
//! Anything else is [`Error::Argument`].

use rayon::prelude::*;

use crate::error::{expect_len, len_error};
use crate::format::{e2m1, e4m3, ue8m0};
use crate::{Error, Result};

mod layout;
mod pack;

pub use layout::{
    from_tma_aligned_mn_major, from_tma_aligned_packed_ue8m0, tma_aligned_ld,
    to_tma_aligned_mn_major, to_tma_aligned_packed_ue8m0, TMA_ALIGNMENT_BYTES,
};
pub use pack::{
    pack_e2m1, pack_ue8m0, transpose_packed_e2m1, ue8m0_code_of, ue8m0_codes_of, unpack_e2m1,
    unpack_ue8m0,
};

/// The default granularity G (elements per scale along a blocked dimension): 128, as
/// DeepGEMM's `gran_k` default.
pub const DEFAULT_GRAN: usize = 128;

/// The lower clamp of `amax` before it is divided by the format's maximum (torch's
/// `clamp(1e-4)`, the f32 nearest to 10^-4), so an all-zero block has a positive scale.
pub const AMAX_FLOOR: f32 = 1e-4;

/// The element format of quantized codes.
///
/// Codes are stored one per byte: E4M3 as its 8-bit code (OCP OFP8 v1.0, "fn" variant),
/// E2M1 in the low nibble with the high nibble zero (OCP MX v1.0 §5.3.3) until packed
/// two per byte with [`pack_e2m1`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    /// FP8 E4M3 (max finite 448).
    E4M3,
    /// FP4 E2M1 (max finite 6), one code per byte in the low nibble.
    E2M1,
}

impl Elem {
    /// Largest finite magnitude of the format as f32: 448 (E4M3) or 6 (E2M1); the
    /// divisor of `amax` in the scale.
    pub const fn max_finite(self) -> f32 {
        match self {
            Elem::E4M3 => e4m3::MAX,
            Elem::E2M1 => e2m1::MAX,
        }
    }

    /// Decodes one code to f32 ([`crate::format::e4m3::decode`] or [`crate::format::e2m1::decode`],
    /// which reads only the low nibble). E4M3 `0x7F`/`0xFF` decode to NaN.
    pub fn decode(self, code: u8) -> f32 {
        match self {
            Elem::E4M3 => e4m3::decode(code),
            Elem::E2M1 => e2m1::decode(code),
        }
    }

    /// Encodes one f32 with round-to-nearest-even and saturation to ±max finite
    /// ([`crate::format::e4m3::encode_satfinite`] or [`crate::format::e2m1::encode_satfinite`]).
    pub fn encode_satfinite(self, x: f32) -> u8 {
        match self {
            Elem::E4M3 => e4m3::encode_satfinite(x),
            Elem::E2M1 => e2m1::encode_satfinite(x),
        }
    }
}

/// How a block's scale is rounded after `max(amax, 1e-4) / max_finite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleRound {
    /// Keep the f32 quotient (DeepGEMM `use_ue8m0=False`; SM90 FP32 scales).
    Fp32,
    /// Round up to a power of two, `ue8m0::decode(ue8m0::encode_ceil(scale))`
    /// (DeepGEMM `use_ue8m0=True`, `ceil_to_ue8m0`): a power of two `>=` the f32
    /// quotient, stored as f32 and representable as a UE8M0 code.
    Ue8m0,
}

impl ScaleRound {
    /// Applies the rounding to an f32 scale: identity for [`ScaleRound::Fp32`],
    /// `ue8m0::decode(ue8m0::encode_ceil(scale))` for [`ScaleRound::Ue8m0`] (for a
    /// positive normal `scale`, the smallest power of two `>= scale`, clamped to
    /// `[2^-126, 2^127]`).
    pub fn apply(self, scale: f32) -> f32 {
        match self {
            ScaleRound::Fp32 => scale,
            ScaleRound::Ue8m0 => ue8m0::decode(ue8m0::encode_ceil(scale)),
        }
    }
}

/// A quantized 2-D tensor with its scales and the recipe that produced them.
///
/// Element `(i, j)` stands for `elem.decode(codes[i * cols + j]) × scales[(i / gran.0)
/// * scale_cols + j / gran.1]` ([`dequantize`] computes it exactly in f64).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// Codes `[rows, cols]` row-major, one per byte (E2M1 in the low nibble).
    pub codes: Vec<u8>,
    /// Logical rows of the tensor.
    pub rows: usize,
    /// Logical columns of the tensor.
    pub cols: usize,
    /// Scales `[scale_rows, scale_cols]` row-major, f32, finite and positive (exact
    /// powers of two when `round` is [`ScaleRound::Ue8m0`]); units: value per code unit.
    pub scales: Vec<f32>,
    /// `ceil(rows / gran.0)`.
    pub scale_rows: usize,
    /// `ceil(cols / gran.1)`.
    pub scale_cols: usize,
    /// Element format of `codes`.
    pub elem: Elem,
    /// How the scales were rounded.
    pub round: ScaleRound,
    /// `(rows per scale, cols per scale)`: `(1, G)` per-token, `(G, G)` per-block,
    /// `(G, 1)` per-channel.
    pub gran: (usize, usize),
}

/// The scale of one block from its `amax`: `round.apply(max(amax, 1e-4) / max_finite)`,
/// computed in f32 exactly as DeepGEMM's `amax.clamp(1e-4) / 448.0` (or `/ 6.0` for
/// E2M1), then `ceil_to_ue8m0` for [`ScaleRound::Ue8m0`].
///
/// Returns an f32 in `[1e-4/448, f32::MAX/6]` (UE8M0: a power of two in
/// `[2^-22, 2^126]`). Errors: [`Error::Argument`] (`"amax"`) when `amax` is NaN,
/// infinite or negative.
pub fn block_scale(amax: f32, elem: Elem, round: ScaleRound) -> Result<f32> {
    if !(amax.is_finite() && amax >= 0.0) {
        return Err(Error::Argument {
            name: "amax",
            reason: format!("{amax} is not a finite value >= 0"),
        });
    }
    Ok(scale_of(amax, elem, round))
}

/// [`block_scale`] for a finite `amax >= 0`.
fn scale_of(amax: f32, elem: Elem, round: ScaleRound) -> f32 {
    round.apply(amax.max(AMAX_FLOOR) / elem.max_finite())
}

/// Per-token (1×G) cast, DeepGEMM's `per_token_cast_to_fp8` (and `per_token_cast_to_fp4`
/// for E2M1): one scale per row per G consecutive columns (the K dimension).
///
/// - `x`: f32 `[rows, cols]` row-major, finite.
/// - `g`: G ∈ {32, 128} (128 is the usual choice, [`DEFAULT_GRAN`]).
/// - Returns codes `[rows, cols]`, scales `[rows, ceil(cols / G)]`, `gran = (1, G)`.
///   The last scale column covers the `cols % G` leftover columns when G does not
///   divide `cols`. `rows` or `cols` 0 gives empty codes and scales.
///
/// Errors: [`Error::Argument`] (`"g"`) for G ∉ {32, 128}; [`Error::Shape`] (`"x"`) when
/// `x.len() != rows * cols`; [`Error::NonFinite`] (`"x"`, row, col, value) for the first
/// NaN/±inf in row-major order. Recipe: see the [module docs](self).
pub fn per_token_cast(
    x: &[f32],
    rows: usize,
    cols: usize,
    g: usize,
    elem: Elem,
    round: ScaleRound,
) -> Result<Quantized> {
    check_g(g)?;
    cast(x, rows, cols, (1, g), elem, round)
}

/// Per-block (G×G) cast, DeepGEMM's `per_block_cast_to_fp8`: one scale per G×G block.
///
/// - `x`: f32 `[rows, cols]` row-major, finite.
/// - `g`: G ∈ {32, 128} (128 is the usual choice, [`DEFAULT_GRAN`]).
/// - Returns codes `[rows, cols]`, scales `[ceil(rows / G), ceil(cols / G)]`,
///   `gran = (G, G)`. Edge blocks cover fewer rows/columns. `rows` or `cols` 0 gives
///   empty codes and scales.
///
/// Errors: [`Error::Argument`] (`"g"`) for G ∉ {32, 128}; [`Error::Shape`] (`"x"`) when
/// `x.len() != rows * cols`; [`Error::NonFinite`] (`"x"`, row, col, value) for the first
/// NaN/±inf in row-major order. Recipe: see the [module docs](self).
pub fn per_block_cast(
    x: &[f32],
    rows: usize,
    cols: usize,
    g: usize,
    elem: Elem,
    round: ScaleRound,
) -> Result<Quantized> {
    check_g(g)?;
    cast(x, rows, cols, (g, g), elem, round)
}

/// Per-channel cast, DeepGEMM's `per_channel_cast_to_fp8`, for an operand stored
/// `[K, N]` row-major (rows = K): one scale per column per G consecutive rows.
///
/// - `x`: f32 `[k, n]` row-major, finite.
/// - `g`: G ∈ {32, 128} (128 is the usual choice, [`DEFAULT_GRAN`]).
/// - Returns codes `[k, n]` (`rows = k`, `cols = n`), scales `[ceil(k / G), n]`,
///   `gran = (G, 1)`. Unlike DeepGEMM (which asserts `K % G == 0`), a K not divisible by
///   G is allowed: the last scale row covers the leftover rows. `k` or `n` 0 gives empty
///   codes and scales.
///
/// Errors: [`Error::Argument`] (`"g"`) for G ∉ {32, 128}; [`Error::Shape`] (`"x"`) when
/// `x.len() != k * n`; [`Error::NonFinite`] (`"x"`, row = k index, col = n index, value)
/// for the first NaN/±inf in row-major order. Recipe: see the [module docs](self).
pub fn per_channel_cast(
    x: &[f32],
    k: usize,
    n: usize,
    g: usize,
    elem: Elem,
    round: ScaleRound,
) -> Result<Quantized> {
    check_g(g)?;
    cast(x, k, n, (g, 1), elem, round)
}

fn check_g(g: usize) -> Result<()> {
    if g == 32 || g == 128 {
        Ok(())
    } else {
        Err(Error::Argument {
            name: "g",
            reason: format!("granularity {g} is not supported (allowed: 32, 128)"),
        })
    }
}

/// The shared cast: blocks of `gran = (gr, gc)` over `[rows, cols]`.
fn cast(
    x: &[f32],
    rows: usize,
    cols: usize,
    gran: (usize, usize),
    elem: Elem,
    round: ScaleRound,
) -> Result<Quantized> {
    let (gr, gc) = gran;
    let n = expect_len("x", x.len(), &[rows, cols])?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            tensor: "x",
            row: i / cols,
            col: i % cols,
            value: x[i],
        });
    }
    let scale_rows = rows.div_ceil(gr);
    let scale_cols = cols.div_ceil(gc);
    let mut codes = vec![0u8; n];
    let mut scales = vec![0f32; scale_rows * scale_cols];
    if n > 0 {
        // One task per band of `gr` rows: its codes, its row of scales and its input.
        let band = gr * cols; // <= n when rows >= gr; chunks clip at the end anyway
        codes
            .par_chunks_mut(band)
            .zip(scales.par_chunks_mut(scale_cols))
            .zip(x.par_chunks(band))
            .for_each(|((codes, scales), x)| {
                cast_band(x, cols, gc, elem, round, codes, scales);
            });
    }
    Ok(Quantized {
        codes,
        rows,
        cols,
        scales,
        scale_rows,
        scale_cols,
        elem,
        round,
        gran,
    })
}

/// Casts one band of whole rows (`x.len() / cols` rows, all in one scale row) whose
/// blocks are `gc` columns wide.
fn cast_band(
    x: &[f32],
    cols: usize,
    gc: usize,
    elem: Elem,
    round: ScaleRound,
    codes: &mut [u8],
    scales: &mut [f32],
) {
    let mut amax = vec![0f32; scales.len()];
    for row in x.chunks_exact(cols) {
        for (j, v) in row.iter().enumerate() {
            let a = &mut amax[j / gc];
            *a = a.max(v.abs());
        }
    }
    let mut recip = vec![0f32; scales.len()];
    for ((s, r), a) in scales.iter_mut().zip(recip.iter_mut()).zip(&amax) {
        *s = scale_of(*a, elem, round);
        *r = 1.0 / *s;
    }
    for (row, out) in x.chunks_exact(cols).zip(codes.chunks_exact_mut(cols)) {
        for (j, (v, c)) in row.iter().zip(out.iter_mut()).enumerate() {
            *c = elem.encode_satfinite(v * recip[j / gc]);
        }
    }
}

/// Dequantizes `q` exactly: `code value × scale` in f64 (exact: an E4M3 or E2M1 value
/// times an f32 has at most 28 significant bits), `[rows, cols]` row-major.
///
/// Checks the recipe's consistency like [`dequantize_parts`] (whose errors it returns).
pub fn dequantize(q: &Quantized) -> Result<Vec<f64>> {
    dequantize_parts(
        &q.codes,
        q.rows,
        q.cols,
        q.elem,
        &q.scales,
        q.scale_rows,
        q.scale_cols,
        q.gran,
        q.round,
    )
}

/// Dequantizes codes with their scales, checking that they fit together: element
/// `(i, j)` is `elem.decode(codes[i*cols + j]) × scales[(i/gr)*scale_cols + j/gc]` in f64
/// (exact), returned `[rows, cols]` row-major.
///
/// - `codes`: u8 `[rows, cols]` row-major, one code per byte (E2M1 in the low nibble).
/// - `scales`: f32 `[scale_rows, scale_cols]` row-major.
/// - `gran = (gr, gc)`: rows and columns per scale, both `>= 1` (any values, not only
///   the casts' G: e.g. `(1, 32)` for MX FP4).
/// - `round`: with [`ScaleRound::Ue8m0`] every scale must be a UE8M0 value.
///
/// Errors, in this order:
/// - [`Error::Argument`] (`"gran"`) when `gr` or `gc` is 0;
/// - [`Error::Shape`] (`"codes"`) when `codes.len() != rows * cols`;
/// - [`Error::Shape`] (`"scales"`) when `[scale_rows, scale_cols]` is not
///   `[ceil(rows/gr), ceil(cols/gc)]`, or `scales.len()` is not their product;
/// - [`Error::Scale`] (`"scales"`, flat index) for a scale that is not finite and `> 0`,
///   or, with `Ue8m0`, not an exact power of two in UE8M0's range `2^-127..=2^127`;
/// - [`Error::Argument`] (`"codes"`) for an E4M3 NaN code (`0x7F`, `0xFF`) or an E2M1
///   code with its high nibble set (the reference never invents numbers).
#[allow(clippy::too_many_arguments)]
pub fn dequantize_parts(
    codes: &[u8],
    rows: usize,
    cols: usize,
    elem: Elem,
    scales: &[f32],
    scale_rows: usize,
    scale_cols: usize,
    gran: (usize, usize),
    round: ScaleRound,
) -> Result<Vec<f64>> {
    let (gr, gc) = gran;
    if gr == 0 || gc == 0 {
        return Err(Error::Argument {
            name: "gran",
            reason: format!("granularity ({gr}, {gc}) must be >= 1 in both dimensions"),
        });
    }
    let n = expect_len("codes", codes.len(), &[rows, cols])?;
    let (sr, sc) = (rows.div_ceil(gr), cols.div_ceil(gc));
    if (scale_rows, scale_cols) != (sr, sc) {
        return Err(Error::Shape {
            tensor: "scales",
            expected: format!("[{sr}, {sc}] (gran ({gr}, {gc}) over [{rows}, {cols}])"),
            got: format!("[{scale_rows}, {scale_cols}]"),
        });
    }
    if scales.len() != sr * sc {
        return Err(len_error(
            "scales",
            format!("[{sr}, {sc}]"),
            sr * sc,
            scales.len(),
        ));
    }
    for (index, &value) in scales.iter().enumerate() {
        let reason = if !(value.is_finite() && value > 0.0) {
            Some("a scale must be finite and > 0")
        } else if round == ScaleRound::Ue8m0 && ue8m0_code_of(value).is_none() {
            Some("the recipe uses UE8M0 scales but this is not an exact power of two in 2^-127..=2^127")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::Scale {
                tensor: "scales",
                index,
                value,
                reason,
            });
        }
    }
    if let Some(i) = codes.iter().position(|&c| match elem {
        Elem::E4M3 => (c & 0x7F) == e4m3::NAN,
        Elem::E2M1 => c > 0xF,
    }) {
        let what = match elem {
            Elem::E4M3 => "is an E4M3 NaN",
            Elem::E2M1 => "has its high nibble set (E2M1 codes are one per byte, low nibble)",
        };
        return Err(Error::Argument {
            name: "codes",
            reason: format!(
                "code {:#04x} at [{}, {}] {what}",
                codes[i],
                i / cols,
                i % cols
            ),
        });
    }
    let mut out = vec![0f64; n];
    if n > 0 {
        out.par_chunks_mut(cols)
            .zip(codes.par_chunks(cols))
            .enumerate()
            .for_each(|(i, (out, codes))| {
                let srow = &scales[(i / gr) * sc..(i / gr + 1) * sc];
                for (j, (o, &c)) in out.iter_mut().zip(codes).enumerate() {
                    *o = elem.decode(c) as f64 * srow[j / gc] as f64;
                }
            });
    }
    Ok(out)
}
