//! Typed device operands (DESIGN §2): row-major matrices with a leading dimension, and FP8
//! operands that carry their data, scale factors and recipe together.

use cudarc::driver::{
    CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice, SyncOnDrop,
};

use crate::runtime::Device;
use crate::Error;

/// A row-major `rows × cols` matrix in device memory with leading dimension `ld` (elements
/// between the starts of consecutive rows), starting at the first element of `data`.
#[derive(Debug)]
pub struct Matrix<'a, T> {
    pub(crate) data: CudaView<'a, T>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

/// The mutable counterpart of [`Matrix`] (for outputs).
#[derive(Debug)]
pub struct MatrixMut<'a, T> {
    pub(crate) data: CudaViewMut<'a, T>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

/// Checks `ld ≥ cols` and that `len` elements hold `(rows − 1)·ld + cols`.
fn check_extent(what: &str, len: usize, rows: usize, cols: usize, ld: usize) -> Result<(), Error> {
    if ld < cols.max(1) {
        return Err(Error::Stride(format!(
            "{what}: leading dimension {ld} < {cols} columns"
        )));
    }
    let needed = if rows == 0 || cols == 0 {
        Some(0)
    } else {
        (rows - 1).checked_mul(ld).and_then(|x| x.checked_add(cols))
    };
    match needed {
        Some(n) if n <= len => Ok(()),
        Some(n) => Err(Error::Shape(format!(
            "{what}: {rows}×{cols} with leading dimension {ld} needs {n} elements, the buffer has {len}"
        ))),
        None => Err(Error::TooLarge(format!("{what}: {rows}×{cols} with leading dimension {ld} overflows"))),
    }
}

impl<'a, T> Matrix<'a, T> {
    /// Wraps `data` as a `rows × cols` row-major matrix with leading dimension `ld`.
    ///
    /// # Errors
    /// [`Error::Stride`] if `ld < cols`; [`Error::Shape`] if `data` is too short.
    pub fn new(data: CudaView<'a, T>, rows: usize, cols: usize, ld: usize) -> Result<Self, Error> {
        check_extent("matrix", data.len(), rows, cols, ld)?;
        Ok(Matrix {
            data,
            rows,
            cols,
            ld,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Leading dimension in elements.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The device address, with the guard that orders other streams after this use.
    pub(crate) fn ptr<'s>(&'s self, stream: &'s CudaStream) -> (u64, SyncOnDrop<'s>) {
        self.data.device_ptr(stream)
    }
}

impl<'a, T> MatrixMut<'a, T> {
    /// Wraps `data` as a mutable `rows × cols` row-major matrix with leading dimension `ld`.
    ///
    /// # Errors
    /// [`Error::Stride`] if `ld < cols`; [`Error::Shape`] if `data` is too short.
    pub fn new(
        data: CudaViewMut<'a, T>,
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<Self, Error> {
        check_extent("output matrix", data.len(), rows, cols, ld)?;
        Ok(MatrixMut {
            data,
            rows,
            cols,
            ld,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Leading dimension in elements.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The device address, with the guard that orders other streams after this use.
    pub(crate) fn ptr_mut<'s>(&'s mut self, stream: &'s CudaStream) -> (u64, SyncOnDrop<'s>) {
        self.data.device_ptr_mut(stream)
    }
}

/// Checks that a device buffer belongs to `dev`'s context.
pub(crate) fn check_device<T>(
    what: &str,
    data: &impl DeviceSlice<T>,
    dev: &Device,
) -> Result<(), Error> {
    if data.stream().context().cu_ctx() != dev.context().cu_ctx() {
        return Err(Error::Device(format!(
            "{what} was allocated in another context than the launching device's"
        )));
    }
    Ok(())
}

/// Fine-grained FP8 scaling recipes of DeepSeek-V3 (§3.3 of its report), as (rows × K) blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fp8Recipe {
    /// One FP32 scale per 1×128 (per token and 128-wide K block): activations, `A`.
    PerToken,
    /// One FP32 scale per 128×128 block: weights, `B`.
    PerBlock,
}

/// Where and how an FP8 operand's FP32 scale factors are stored.
#[derive(Debug)]
pub enum Fp8Scales<'a> {
    /// Row-major: `[rows, ceil(K/128)]` for [`Fp8Recipe::PerToken`],
    /// `[ceil(rows/128), ceil(K/128)]` for [`Fp8Recipe::PerBlock`], with a leading dimension.
    /// Per-token scales are transposed on the GPU into the layout below before the GEMM.
    RowMajor(Matrix<'a, f32>),
    /// The TMA-aligned MN-major layout the kernels read (per-token only, as DeepGEMM's
    /// `get_mn_major_tma_aligned_tensor`): `ceil(K/128)` columns of `round_up(rows, 4)` floats
    /// (each column 16-byte aligned), element `(r, kb)` at `kb · round_up(rows, 4) + r`. Used in place.
    TmaAlignedMnMajor(CudaView<'a, f32>),
}

/// An E4M3 FP8 operand `[rows, K]` (K-major: row-major codes, one byte each, OCP OFP8 E4M3)
/// with its scale factors and recipe. `value(r, k) = e4m3(codes[r, k]) · scale(r, k)`.
#[derive(Debug)]
pub struct Fp8Operand<'a> {
    pub(crate) codes: Matrix<'a, u8>,
    pub(crate) scales: Fp8Scales<'a>,
    pub(crate) recipe: Fp8Recipe,
}

/// `round_up(x, m)`.
pub(crate) fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

impl<'a> Fp8Operand<'a> {
    /// Binds codes, scales and recipe, checking that the scales' shape matches the codes'.
    ///
    /// # Errors
    /// [`Error::Scale`] when the scale matrix has the wrong shape for `recipe` and the codes'
    /// shape, or a TMA-aligned layout is given for a per-block operand or is too short.
    pub fn new(
        codes: Matrix<'a, u8>,
        scales: Fp8Scales<'a>,
        recipe: Fp8Recipe,
    ) -> Result<Self, Error> {
        let (rows, k) = (codes.rows, codes.cols);
        let kb = k.div_ceil(128);
        match (&scales, recipe) {
            (Fp8Scales::RowMajor(s), _) => {
                let want_rows = match recipe {
                    Fp8Recipe::PerToken => rows,
                    Fp8Recipe::PerBlock => rows.div_ceil(128),
                };
                if s.rows != want_rows || s.cols != kb {
                    return Err(Error::Scale(format!(
                        "{recipe:?} scales of a {rows}×{k} operand must be {want_rows}×{kb}, got {}×{}",
                        s.rows, s.cols
                    )));
                }
            }
            (Fp8Scales::TmaAlignedMnMajor(v), Fp8Recipe::PerToken) => {
                let need = round_up(rows, 4) * kb;
                if v.len() < need {
                    return Err(Error::Scale(format!(
                        "TMA-aligned MN-major scales of a {rows}×{k} operand need {need} floats, got {}",
                        v.len()
                    )));
                }
            }
            (Fp8Scales::TmaAlignedMnMajor(_), Fp8Recipe::PerBlock) => {
                return Err(Error::Scale(
                    "per-block (128×128) scales are only accepted row-major".into(),
                ));
            }
        }
        Ok(Fp8Operand {
            codes,
            scales,
            recipe,
        })
    }

    /// Rows (M for `A`, N for `B`).
    pub fn rows(&self) -> usize {
        self.codes.rows
    }

    /// The reduction dimension K.
    pub fn k(&self) -> usize {
        self.codes.cols
    }

    /// The recipe.
    pub fn recipe(&self) -> Fp8Recipe {
        self.recipe
    }
}
