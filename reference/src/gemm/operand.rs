//! Typed GEMM operands: data, scales and recipe travel together, so a per-token vs
//! per-block or FP32 vs UE8M0 confusion is an error at construction, not a wrong answer.

use super::view::MatView;
use crate::error::checked_len;
use crate::format::{e2m1, e4m3, ue8m0};
use crate::{Error, Result};
use half::bf16;
use rayon::prelude::*;

/// Scale factors of a quantized operand, as a logical `[ceil(rows/gran_mn),
/// ceil(K/gran_k)]` view (any strides: the natural row-major layout or the TMA-aligned
/// MN-major one of [`crate::quant`], read without copying).
#[derive(Clone, Copy, Debug)]
pub enum Scales<'a> {
    /// FP32 scales; every value must be finite. Zero and negative scales are accepted:
    /// the GEMM is defined for them, though no quantization recipe produces them
    /// ([`crate::quant::dequantize`] rejects them as recipe violations).
    F32(MatView<'a, f32>),
    /// UE8M0 values held in FP32: every value must be an exact power of two in
    /// `2^-127..=2^127` (DeepGEMM's `use_ue8m0` recipe on sm_90).
    Ue8m0InF32(MatView<'a, f32>),
    /// UE8M0 codes, one per byte (`2^(code − 127)`, OCP MX v1.0 §5.4.1); `0xFF` (NaN)
    /// is rejected.
    Ue8m0(MatView<'a, u8>),
}

impl Scales<'_> {
    fn rows(&self) -> usize {
        match self {
            Scales::F32(v) | Scales::Ue8m0InF32(v) => v.rows(),
            Scales::Ue8m0(v) => v.rows(),
        }
    }

    fn cols(&self) -> usize {
        match self {
            Scales::F32(v) | Scales::Ue8m0InF32(v) => v.cols(),
            Scales::Ue8m0(v) => v.cols(),
        }
    }

    /// Checks the shape and the values of the scale rows in use (`used[r]`, every row
    /// when `None`); returns the scales as exact f64, row-major, with unused rows 0.
    fn checked(
        &self,
        tensor: &'static str,
        rows: usize,
        cols: usize,
        used: Option<&[bool]>,
    ) -> Result<Vec<f64>> {
        if self.rows() != rows || self.cols() != cols {
            return Err(Error::Shape {
                tensor,
                expected: format!("[{rows}, {cols}]"),
                got: format!("[{}, {}]", self.rows(), self.cols()),
            });
        }
        let mut out = Vec::with_capacity(checked_len(tensor, &[rows, cols])?);
        for r in 0..rows {
            if used.is_some_and(|u| !u[r]) {
                out.extend(std::iter::repeat_n(0.0, cols));
                continue;
            }
            for c in 0..cols {
                let index = r * cols + c;
                let v = match self {
                    Scales::F32(v) => {
                        let x = v.get(r, c);
                        if !x.is_finite() {
                            return Err(Error::Scale {
                                tensor,
                                index,
                                value: x,
                                reason: "not finite",
                            });
                        }
                        x
                    }
                    Scales::Ue8m0InF32(v) => {
                        let x = v.get(r, c);
                        let code = ue8m0::encode(x);
                        if code == ue8m0::NAN || ue8m0::decode(code) != x {
                            return Err(Error::Scale {
                                tensor,
                                index,
                                value: x,
                                reason: "not a power of two in 2^-127..=2^127 (UE8M0 recipe)",
                            });
                        }
                        x
                    }
                    Scales::Ue8m0(v) => {
                        let code = v.get(r, c);
                        if code == ue8m0::NAN {
                            return Err(Error::Scale {
                                tensor,
                                index,
                                value: f32::NAN,
                                reason: "UE8M0 code 0xFF is NaN",
                            });
                        }
                        ue8m0::decode(code)
                    }
                };
                out.push(v as f64);
            }
        }
        Ok(out)
    }
}

/// How many rows share one scale along M (or N): the recipes of DESIGN §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp8Recipe {
    /// Per-token 1×128: one scale per row per 128 K elements, scales `[rows, ceil(K/128)]`.
    PerToken,
    /// Per-block 128×128: scales `[ceil(rows/128), ceil(K/128)]` (B of the 1D2D GEMM).
    PerBlock,
}

/// An FP8 E4M3 operand of logical shape `[rows, K]` (A: `[M, K]`, B: `[N, K]`) with its
/// scales (128 wide along K) and recipe.
#[derive(Clone, Copy, Debug)]
pub struct Fp8Operand<'a> {
    codes: MatView<'a, u8>,
    scales: Scales<'a>,
    recipe: Fp8Recipe,
}

/// Granularity of FP8 scales along K.
pub const FP8_GRAN_K: usize = 128;

impl<'a> Fp8Operand<'a> {
    /// Bundles E4M3 codes (any layout, see [`MatView`]) with scales of shape
    /// `[ceil(rows/g), ceil(K/128)]`, g = 1 for [`Fp8Recipe::PerToken`] and 128 for
    /// [`Fp8Recipe::PerBlock`]. Errors: [`Error::Shape`] for a scale shape that does not
    /// match the recipe; values are checked when a GEMM reads them.
    pub fn new(codes: MatView<'a, u8>, scales: Scales<'a>, recipe: Fp8Recipe) -> Result<Self> {
        let (rows, k) = (codes.rows(), codes.cols());
        let gran_mn = match recipe {
            Fp8Recipe::PerToken => 1,
            Fp8Recipe::PerBlock => 128,
        };
        let want = (rows.div_ceil(gran_mn), k.div_ceil(FP8_GRAN_K));
        if (scales.rows(), scales.cols()) != want {
            return Err(Error::Shape {
                tensor: "scales",
                expected: format!("[{}, {}] for {recipe:?}", want.0, want.1),
                got: format!("[{}, {}]", scales.rows(), scales.cols()),
            });
        }
        Ok(Self {
            codes,
            scales,
            recipe,
        })
    }

    /// The recipe.
    pub fn recipe(&self) -> Fp8Recipe {
        self.recipe
    }

    /// Logical rows (M or N).
    pub fn rows(&self) -> usize {
        self.codes.rows()
    }

    /// K.
    pub fn k(&self) -> usize {
        self.codes.cols()
    }

    /// The E4M3 codes, logical `[rows, K]` (read by the bit-level model in
    /// [`crate::hopper`]).
    pub(crate) fn codes(&self) -> MatView<'a, u8> {
        self.codes
    }

    /// The checked scale values as exact f64, row-major `[ceil(rows/g), ceil(K/128)]`,
    /// with `g` (rows per scale), as [`Operand::dequantize`] checks them.
    pub(crate) fn checked_scales(&self, tensor: &'static str) -> Result<(Vec<f64>, usize)> {
        let (values, g, _) = Operand::Fp8(*self).scale_values(tensor, None)?;
        Ok((values, g))
    }
}

/// Per-group scale granularity of FP4 along K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp4Group {
    /// One UE8M0 scale per 32 K elements (OCP MX block size).
    G32,
    /// One UE8M0 scale per 128 K elements.
    G128,
}

impl Fp4Group {
    /// The group width in K elements.
    pub fn width(self) -> usize {
        match self {
            Fp4Group::G32 => 32,
            Fp4Group::G128 => 128,
        }
    }
}

/// An FP4 E2M1 operand (B of the FP8×FP4 GEMM) of logical shape `[rows, K]`, stored
/// K-major and packed two per byte (low nibble = even K index): row `r` is bytes
/// `packed[r * ld .. r * ld + K/2]`; with UE8M0 scales per [`Fp4Group`] along K, shape
/// `[rows, ceil(K/g)]` ([`Scales::Ue8m0`] or [`Scales::Ue8m0InF32`]).
#[derive(Clone, Copy, Debug)]
pub struct Fp4Operand<'a> {
    packed: MatView<'a, u8>,
    k: usize,
    scales: Scales<'a>,
    group: Fp4Group,
}

impl<'a> Fp4Operand<'a> {
    /// Errors: [`Error::Shape`] when K is odd or the scale shape is not
    /// `[rows, ceil(K/g)]`; [`Error::Stride`] when `ld < K/2` or `packed` is too short;
    /// [`Error::Argument`] for FP32 (non-power-of-two) scales, which no FP4 recipe has.
    pub fn new(
        packed: &'a [u8],
        rows: usize,
        k: usize,
        ld: usize,
        scales: Scales<'a>,
        group: Fp4Group,
    ) -> Result<Self> {
        if k % 2 != 0 {
            return Err(Error::Shape {
                tensor: "b",
                expected: "even K for packed FP4".into(),
                got: format!("K = {k}"),
            });
        }
        if let Scales::F32(_) = scales {
            return Err(Error::Argument {
                name: "scales",
                reason: "FP4 operands take UE8M0 scales (Scales::Ue8m0 or Ue8m0InF32)".into(),
            });
        }
        let want = (rows, k.div_ceil(group.width()));
        if (scales.rows(), scales.cols()) != want {
            return Err(Error::Shape {
                tensor: "scales",
                expected: format!("[{}, {}]", want.0, want.1),
                got: format!("[{}, {}]", scales.rows(), scales.cols()),
            });
        }
        let packed = MatView::k_major(packed, rows, k / 2, ld)?;
        Ok(Self {
            packed,
            k,
            scales,
            group,
        })
    }
}

/// Any GEMM operand. Valid (A, B) pairs: (FP8, FP8) with A per-token (1D2D when B is
/// per-block, 1D1D when B is per-token), (FP8, FP4), (BF16, BF16).
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    /// FP8 E4M3 with scales.
    Fp8(Fp8Operand<'a>),
    /// Packed FP4 E2M1 with UE8M0 scales.
    Fp4(Fp4Operand<'a>),
    /// Unscaled BF16, logical `[rows, K]`.
    Bf16(MatView<'a, bf16>),
}

impl<'a> From<Fp8Operand<'a>> for Operand<'a> {
    fn from(x: Fp8Operand<'a>) -> Self {
        Operand::Fp8(x)
    }
}

impl<'a> From<Fp4Operand<'a>> for Operand<'a> {
    fn from(x: Fp4Operand<'a>) -> Self {
        Operand::Fp4(x)
    }
}

impl<'a> From<MatView<'a, bf16>> for Operand<'a> {
    fn from(x: MatView<'a, bf16>) -> Self {
        Operand::Bf16(x)
    }
}

impl Operand<'_> {
    /// Logical rows (M or N).
    pub fn rows(&self) -> usize {
        match self {
            Operand::Fp8(o) => o.rows(),
            Operand::Fp4(o) => o.packed.rows(),
            Operand::Bf16(v) => v.rows(),
        }
    }

    /// K.
    pub fn k(&self) -> usize {
        match self {
            Operand::Fp8(o) => o.k(),
            Operand::Fp4(o) => o.k,
            Operand::Bf16(v) => v.cols(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Operand::Fp8(o) if o.recipe == Fp8Recipe::PerToken => "FP8 per-token (1x128)",
            Operand::Fp8(_) => "FP8 per-block (128x128)",
            Operand::Fp4(_) => "FP4",
            Operand::Bf16(_) => "BF16",
        }
    }

    /// The checked scale values as exact f64, row-major, with the number of rows per
    /// scale and the K width per scale (no values for BF16).
    ///
    /// Only the scale rows of `rows` (all rows when `None`) are value-checked: rows a
    /// grouped GEMM never reads may hold garbage, as DeepGEMM's padding rows do.
    fn scale_values(
        &self,
        tensor: &'static str,
        rows: Option<&[usize]>,
    ) -> Result<(Vec<f64>, usize, usize)> {
        let k = self.k();
        let (scales, g, w) = match self {
            Operand::Fp8(o) => {
                let g = match o.recipe {
                    Fp8Recipe::PerToken => 1,
                    Fp8Recipe::PerBlock => 128,
                };
                (&o.scales, g, FP8_GRAN_K)
            }
            Operand::Fp4(o) => (&o.scales, 1, o.group.width()),
            Operand::Bf16(_) => return Ok((Vec::new(), 1, 1)),
        };
        let scale_rows = self.rows().div_ceil(g);
        let used = rows.map(|rows| {
            let mut used = vec![false; scale_rows];
            for &r in rows {
                used[r / g] = true;
            }
            used
        });
        let values = scales.checked(tensor, scale_rows, k.div_ceil(w), used.as_deref())?;
        Ok((values, g, w))
    }

    /// Checks the scale values as [`Operand::dequantize`] does, so a grouped GEMM can
    /// reject a bad group before writing any output.
    pub(crate) fn check_scales(&self, tensor: &'static str) -> Result<()> {
        self.scale_values(tensor, None).map(|_| ())
    }

    /// Dequantizes to exact f64 values, row-major `[rows, K]` (each is a code value
    /// times an f32 or power-of-two scale: at most 28 significant bits, exact).
    pub(crate) fn dequantize(&self, tensor: &'static str) -> Result<Dense> {
        self.dequantize_rows(tensor, None)
    }

    /// [`Operand::dequantize`] of the listed rows only (each `< rows()`), in order; only
    /// their scales are checked.
    pub(crate) fn dequantize_rows(
        &self,
        tensor: &'static str,
        rows: Option<&[usize]>,
    ) -> Result<Dense> {
        let k = self.k();
        let n_out = rows.map_or(self.rows(), <[usize]>::len);
        let mut vals = vec![0.0f64; checked_len(tensor, &[n_out, k])?];
        let (s, g, w) = self.scale_values(tensor, rows)?;
        if k == 0 {
            return Ok(Dense {
                rows: n_out,
                k,
                vals,
            });
        }
        let src = |i: usize| rows.map_or(i, |rows| rows[i]);
        let rows_mut = vals
            .par_chunks_mut(k)
            .enumerate()
            .map(|(i, out)| (src(i), out));
        match self {
            Operand::Fp8(o) => {
                let kb = k.div_ceil(w);
                let lut: Vec<f64> = (0..=255u8).map(|c| e4m3::decode(c) as f64).collect();
                rows_mut.for_each(|(r, out)| {
                    let s = &s[(r / g) * kb..][..kb];
                    for (c, v) in out.iter_mut().enumerate() {
                        *v = lut[o.codes.get(r, c) as usize] * s[c / w];
                    }
                });
            }
            Operand::Fp4(o) => {
                let kb = k.div_ceil(w);
                let lut: Vec<f64> = (0..16u8).map(|c| e2m1::decode(c) as f64).collect();
                rows_mut.for_each(|(r, out)| {
                    let s = &s[r * kb..][..kb];
                    for (c, v) in out.iter_mut().enumerate() {
                        let byte = o.packed.get(r, c / 2);
                        let code = if c % 2 == 0 { byte & 0xF } else { byte >> 4 };
                        *v = lut[code as usize] * s[c / w];
                    }
                });
            }
            Operand::Bf16(v) => rows_mut.for_each(|(r, out)| {
                for (c, x) in out.iter_mut().enumerate() {
                    *x = v.get(r, c).to_f64();
                }
            }),
        }
        Ok(Dense {
            rows: n_out,
            k,
            vals,
        })
    }
}

/// Checks that (a, b) is a supported combination.
pub(crate) fn check_pair(a: &Operand, b: &Operand) -> Result<()> {
    let ok = matches!(
        (a, b),
        (Operand::Fp8(x), Operand::Fp8(_)) | (Operand::Fp8(x), Operand::Fp4(_))
            if x.recipe == Fp8Recipe::PerToken
    ) || matches!((a, b), (Operand::Bf16(_), Operand::Bf16(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::Argument {
            name: "a, b",
            reason: format!(
                "unsupported operand pair ({}, {}): use FP8 per-token A with FP8 per-block or per-token B, FP8 A with FP4 B, or BF16 with BF16",
                a.kind(),
                b.kind()
            ),
        })
    }
}

/// Dequantized operand: exact f64 values, row-major `[rows, k]`.
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    pub rows: usize,
    pub k: usize,
    pub vals: Vec<f64>,
}

impl Dense {
    pub(crate) fn row(&self, r: usize) -> &[f64] {
        &self.vals[r * self.k..(r + 1) * self.k]
    }

    /// Rows `start..start + len`, copied.
    pub(crate) fn row_range(&self, start: usize, len: usize) -> Dense {
        Dense {
            rows: len,
            k: self.k,
            vals: self.vals[start * self.k..(start + len) * self.k].to_vec(),
        }
    }
}
