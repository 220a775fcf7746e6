//! Strided matrix views: how the reference reads any layout (NT/NN/TN/TT, any leading
//! stride) and writes row-major outputs with a leading dimension.

use crate::{Error, Result};
use half::bf16;

/// A read-only view of a logical `[rows, cols]` matrix inside `data`: element `(r, c)`
/// is `data[r * row_stride + c * col_stride]`.
///
/// For GEMM operands the logical shape is always `[M or N, K]`; the layout letters of
/// DESIGN §2 are constructors: A "N" and B "T" (K-major, stored `[rows, K]` row-major)
/// are [`MatView::k_major`]; A "T" and B "N" (MN-major, stored `[K, rows]`) are
/// [`MatView::mn_major`].
#[derive(Clone, Copy, Debug)]
pub struct MatView<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> MatView<'a, T> {
    /// A general strided view. Errors: [`Error::Stride`] if any element of the
    /// `[rows, cols]` view would lie outside `data` (or the index overflows `usize`).
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(row_stride)
                .and_then(|x| (cols - 1).checked_mul(col_stride).map(|y| (x, y)))
                .and_then(|(x, y)| x.checked_add(y));
            match last {
                Some(last) if last < data.len() => {}
                _ => {
                    return Err(Error::Stride {
                        tensor: "view",
                        reason: format!(
                            "[{rows}, {cols}] with strides ({row_stride}, {col_stride}) needs more than the {} elements given",
                            data.len()
                        ),
                    })
                }
            }
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Row-major `[rows, cols]` with leading dimension `ld >= cols` (K-major for an
    /// operand: A "N", B "T"). Errors: [`Error::Stride`] if `ld < cols` or `data` is too
    /// short.
    pub fn k_major(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < cols {
            return Err(Error::Stride {
                tensor: "view",
                reason: format!("row-major leading dimension {ld} < {cols} columns"),
            });
        }
        Self::strided(data, rows, cols, ld, 1)
    }

    /// Logical `[rows, cols]` stored transposed, as `[cols, rows]` row-major with leading
    /// dimension `ld >= rows` (MN-major for an operand: A "T", B "N"; also the
    /// TMA-aligned scale layout). Errors: [`Error::Stride`] if `ld < rows` or `data` is
    /// too short.
    pub fn mn_major(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        if ld < rows {
            return Err(Error::Stride {
                tensor: "view",
                reason: format!("column-major leading dimension {ld} < {rows} rows"),
            });
        }
        Self::strided(data, rows, cols, 1, ld)
    }

    /// Number of logical rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of logical columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(r, c)`, or `None` outside `[rows, cols]`.
    pub fn try_get(&self, r: usize, c: usize) -> Option<T> {
        (r < self.rows && c < self.cols).then(|| self.get(r, c))
    }

    /// Element `(r, c)`; callers inside the crate keep `r < rows`, `c < cols`.
    pub(crate) fn get(&self, r: usize, c: usize) -> T {
        self.data[r * self.row_stride + c * self.col_stride]
    }

    /// Errors with [`Error::Shape`] naming `tensor` unless the view is `[rows, cols]`.
    pub(crate) fn expect_shape(
        &self,
        tensor: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if self.rows != rows || self.cols != cols {
            return Err(Error::Shape {
                tensor,
                expected: format!("[{rows}, {cols}]"),
                got: format!("[{}, {}]", self.rows, self.cols),
            });
        }
        Ok(())
    }
}

/// The element buffer of a GEMM output `D`.
#[derive(Debug)]
pub enum OutBuf<'a> {
    /// BF16 output, each element the correctly rounded (RNE) exact result.
    Bf16(&'a mut [bf16]),
    /// FP32 output, each element the correctly rounded (RNE) exact result.
    F32(&'a mut [f32]),
    /// Unrounded f64 output: the f64 GEMM value, within the bound documented in
    /// [`crate::gemm`] of the exact result (for error metrics, not a kernel dtype).
    F64(&'a mut [f64]),
}

/// A row-major `[rows, cols]` output with leading dimension `ld >= cols`: element
/// `(r, c)` at `buf[r * ld + c]`. Elements outside the written rows (padding rows of
/// grouped GEMMs) and columns `cols..ld` are never touched.
#[derive(Debug)]
pub struct OutView<'a> {
    pub(crate) buf: OutBuf<'a>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

impl<'a> OutView<'a> {
    /// Wraps `buf` as `[rows, cols]` with leading dimension `ld`. Errors:
    /// [`Error::Stride`] if `ld < cols` or the buffer is shorter than
    /// `(rows - 1) * ld + cols`.
    pub fn new(buf: OutBuf<'a>, rows: usize, cols: usize, ld: usize) -> Result<Self> {
        let len = match &buf {
            OutBuf::Bf16(b) => b.len(),
            OutBuf::F32(b) => b.len(),
            OutBuf::F64(b) => b.len(),
        };
        let needed = if rows == 0 || cols == 0 {
            Some(0)
        } else {
            (rows - 1).checked_mul(ld).and_then(|x| x.checked_add(cols))
        };
        if ld < cols || needed.is_none_or(|n| n > len) {
            return Err(Error::Stride {
                tensor: "d",
                reason: format!("[{rows}, {cols}] with ld {ld} does not fit {len} elements"),
            });
        }
        Ok(Self {
            buf,
            rows,
            cols,
            ld,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn target(&self) -> super::exact::Target {
        match self.buf {
            OutBuf::Bf16(_) => super::exact::Target::Bf16,
            OutBuf::F32(_) => super::exact::Target::F32,
            OutBuf::F64(_) => super::exact::Target::F64,
        }
    }

    /// Writes a value already representable in the output dtype (see
    /// [`super::exact::Target::round`]).
    pub(crate) fn set(&mut self, r: usize, c: usize, v: f64) {
        self.set_row_from(r, c, &[v]);
    }

    /// Writes row `r` (columns `0..values.len()`) from values already representable in
    /// the output dtype (see [`super::exact::Target::round`]).
    pub(crate) fn set_row(&mut self, r: usize, values: &[f64]) {
        self.set_row_from(r, 0, values);
    }

    /// Writes `values` into row `r` from column `c` on.
    fn set_row_from(&mut self, r: usize, c: usize, values: &[f64]) {
        let start = r * self.ld + c;
        let range = start..start + values.len();
        match &mut self.buf {
            OutBuf::Bf16(b) => b[range]
                .iter_mut()
                .zip(values)
                .for_each(|(o, &v)| *o = crate::format::bf16::from_f64(v)),
            OutBuf::F32(b) => b[range]
                .iter_mut()
                .zip(values)
                .for_each(|(o, &v)| *o = v as f32),
            OutBuf::F64(b) => b[range].copy_from_slice(values),
        }
    }
}
