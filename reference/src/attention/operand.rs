//! The operands of the MQA logits ops and their exact decoding to f64.

use crate::error::{checked_len, expect_len};
use crate::format::{e2m1, e4m3, ue8m0};
use crate::{Error, Result};

/// The query operand, logical shape `[tokens, heads, dim]` (non-paged: `tokens =
/// seq_len`; paged: `tokens = batch·next_n`, i.e. `[batch, next_n, heads, dim]`
/// flattened).
#[derive(Clone, Copy, Debug)]
pub enum Query<'a> {
    /// E4M3 codes `[tokens, heads, dim]` row-major, no scale (DeepGEMM
    /// `fp8_mqa_logits`: the query's per-token scale is folded into `weights` by the
    /// caller).
    Fp8(&'a [u8]),
    /// E2M1 values packed two per byte, `[tokens, heads, dim / 2]` row-major, the low
    /// nibble holding the even element of `dim` (as [`crate::quant::pack_e2m1`]),
    /// with one UE8M0 scale per 32 elements of `dim`: `scales` is i32
    /// `[tokens, heads, ceil(dim / 128)]`, `dim / 32` codes per (token, head) packed
    /// four per i32, little-endian (as [`crate::quant::pack_ue8m0`]; for `dim = 128`
    /// exactly DeepGEMM's one i32 per (token, head)). Padding bytes must be 0.
    /// `dim` must be a multiple of 32.
    Fp4 {
        /// Packed E2M1 values.
        values: &'a [u8],
        /// Packed UE8M0 scale codes.
        scales: &'a [i32],
    },
}

/// The key operand of the non-paged op, logical shape `[seq_len_kv, dim]`.
#[derive(Clone, Copy, Debug)]
pub enum Keys<'a> {
    /// E4M3 codes `[seq_len_kv, dim]` row-major with one FP32 scale per row
    /// (`scales: [seq_len_kv]`), DeepGEMM's `kv = (kv_fp8, kv_scales)`.
    Fp8 {
        /// E4M3 codes.
        codes: &'a [u8],
        /// FP32 scale of each key row.
        scales: &'a [f32],
    },
    /// E2M1 values packed two per byte `[seq_len_kv, dim / 2]` (low nibble first) with
    /// UE8M0 scales per 32 elements of `dim`: i32 `[seq_len_kv, ceil(dim / 128)]`, the
    /// `dim / 32` codes of a row packed four per i32, little-endian, padding bytes 0.
    /// There is no FP32 row scale: the UE8M0 group scales replace it. `dim` must be a
    /// multiple of 32.
    Fp4 {
        /// Packed E2M1 values.
        values: &'a [u8],
        /// Packed UE8M0 scale codes.
        scales: &'a [i32],
    },
}

/// The byte format of a paged KV cache (see [`super::paged_mqa_logits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvCacheFormat {
    /// Rows of `dim + 4` bytes: each block holds its `block_kv·dim` E4M3 codes first,
    /// then `block_kv` FP32 scales (little-endian), DeepGEMM `fp8_paged_mqa_logits`.
    Fp8,
    /// Rows of `dim / 2 + dim / 32` bytes: each block holds its `block_kv·dim / 2`
    /// packed E2M1 bytes first (row-major, low nibble first), then `block_kv·dim / 32`
    /// UE8M0 codes (row-major; for `dim = 128` one little-endian i32 per row, the
    /// `D/2 + 4 = 68`-byte rows of DeepGEMM's FP4 indexer cache).
    Fp4,
}

impl KvCacheFormat {
    /// Bytes per cached token for head dimension `dim`.
    pub fn row_bytes(self, dim: usize) -> usize {
        match self {
            KvCacheFormat::Fp8 => dim + 4,
            KvCacheFormat::Fp4 => dim / 2 + dim / 32,
        }
    }
}

pub(crate) fn len_err(tensor: &'static str, expected: String, got: usize) -> Error {
    Error::Shape {
        tensor,
        expected,
        got: format!("{got} elements"),
    }
}

fn check_fp4_dim(dim: usize) -> Result<()> {
    if dim % 32 != 0 {
        return Err(Error::Argument {
            name: "dim",
            reason: format!("FP4 operands need dim a multiple of 32, got {dim}"),
        });
    }
    Ok(())
}

/// Unpacks `rows` rows of `dim / 32` UE8M0 codes, renaming errors to `tensor`.
fn unpack_scales(tensor: &'static str, packed: &[i32], rows: usize, dim: usize) -> Result<Vec<u8>> {
    crate::quant::unpack_ue8m0(packed, rows, dim / 32).map_err(|e| match e {
        Error::Shape { expected, got, .. } => Error::Shape {
            tensor,
            expected,
            got,
        },
        Error::Argument { reason, .. } => Error::Argument {
            name: tensor,
            reason,
        },
        other => other,
    })
}

/// Decodes E2M1 bytes (low nibble first) times the per-32 UE8M0 scales of one row.
fn decode_fp4_row(values: &[u8], codes: &[u8], out: &mut [f64]) {
    for (d, o) in out.iter_mut().enumerate() {
        let byte = values[d / 2];
        let nib = if d % 2 == 0 { byte } else { byte >> 4 };
        *o = e2m1::decode(nib) as f64 * ue8m0::decode(codes[d / 32]) as f64;
    }
}

/// A query checked against its shape, with FP4 scale codes unpacked.
pub(crate) enum QueryData<'a> {
    Fp8(&'a [u8]),
    Fp4 { values: &'a [u8], codes: Vec<u8> },
}

impl<'a> QueryData<'a> {
    /// Checks `q` against `[tokens, heads, dim]`.
    pub(crate) fn new(q: &Query<'a>, tokens: usize, heads: usize, dim: usize) -> Result<Self> {
        match *q {
            Query::Fp8(codes) => {
                expect_len("q", codes.len(), &[tokens, heads, dim])?;
                Ok(QueryData::Fp8(codes))
            }
            Query::Fp4 { values, scales } => {
                check_fp4_dim(dim)?;
                expect_len("q", values.len(), &[tokens, heads, dim / 2])?;
                let rows = checked_len("q_scales", &[tokens, heads])?;
                let codes = unpack_scales("q_scales", scales, rows, dim)?;
                Ok(QueryData::Fp4 { values, codes })
            }
        }
    }

    /// The exact f64 values of (token, head) rows `rows`, `[rows.len(), dim]`
    /// row-major (FP4: E2M1 value times its UE8M0 scale, exact in f64).
    pub(crate) fn rows(&self, rows: std::ops::Range<usize>, dim: usize) -> Vec<f64> {
        let mut out = vec![0.0; rows.len() * dim];
        match self {
            QueryData::Fp8(codes) => {
                for (o, &c) in out.iter_mut().zip(&codes[rows.start * dim..rows.end * dim]) {
                    *o = e4m3::decode(c) as f64;
                }
            }
            QueryData::Fp4 { values, codes } => {
                let g = dim / 32;
                for (k, r) in rows.enumerate() {
                    decode_fp4_row(
                        &values[r * dim / 2..(r + 1) * dim / 2],
                        &codes[r * g..(r + 1) * g],
                        &mut out[k * dim..(k + 1) * dim],
                    );
                }
            }
        }
        out
    }
}

/// Keys decoded to f64: `vals [rows, dim]` exact, and the per-row factor applied after
/// the dot product (`scale`: the FP32 row scale for FP8, 1 for FP4 whose group scales
/// are folded into `vals`).
pub(crate) struct KeyRows {
    pub(crate) vals: Vec<f64>,
    pub(crate) scale: Vec<f64>,
}

impl KeyRows {
    pub(crate) fn with_capacity(rows: usize, dim: usize) -> Self {
        KeyRows {
            vals: Vec::with_capacity(rows * dim),
            scale: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn push_fp8(&mut self, codes: &[u8], scale: f32) {
        self.vals
            .extend(codes.iter().map(|&c| e4m3::decode(c) as f64));
        self.scale.push(scale as f64);
    }

    pub(crate) fn push_fp4(&mut self, values: &[u8], codes: &[u8], dim: usize) {
        let start = self.vals.len();
        self.vals.resize(start + dim, 0.0);
        decode_fp4_row(values, codes, &mut self.vals[start..]);
        self.scale.push(1.0);
    }
}

/// Checks and decodes the non-paged keys `[seq_len_kv, dim]`.
pub(crate) fn decode_keys(kv: &Keys, rows: usize, dim: usize) -> Result<KeyRows> {
    let mut out = KeyRows::with_capacity(rows, dim);
    match *kv {
        Keys::Fp8 { codes, scales } => {
            expect_len("kv", codes.len(), &[rows, dim])?;
            expect_len("kv_scales", scales.len(), &[rows])?;
            for r in 0..rows {
                out.push_fp8(&codes[r * dim..(r + 1) * dim], scales[r]);
            }
        }
        Keys::Fp4 { values, scales } => {
            check_fp4_dim(dim)?;
            expect_len("kv", values.len(), &[rows, dim / 2])?;
            let codes = unpack_scales("kv_scales", scales, rows, dim)?;
            let g = dim / 32;
            for r in 0..rows {
                out.push_fp4(
                    &values[r * dim / 2..(r + 1) * dim / 2],
                    &codes[r * g..(r + 1) * g],
                    dim,
                );
            }
        }
    }
    Ok(out)
}

/// Checks the cache format against `dim`.
pub(crate) fn check_cache_dim(format: KvCacheFormat, dim: usize) -> Result<()> {
    if format == KvCacheFormat::Fp4 {
        check_fp4_dim(dim)?;
    }
    Ok(())
}

/// Appends the `block_kv` rows of one cache block (`block`: its bytes).
pub(crate) fn push_cache_block(
    out: &mut KeyRows,
    format: KvCacheFormat,
    block: &[u8],
    block_kv: usize,
    dim: usize,
) {
    match format {
        KvCacheFormat::Fp8 => {
            let (vals, scales) = block.split_at(block_kv * dim);
            for r in 0..block_kv {
                let s = &scales[4 * r..4 * r + 4];
                let s = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                out.push_fp8(&vals[r * dim..(r + 1) * dim], s);
            }
        }
        KvCacheFormat::Fp4 => {
            let (vals, codes) = block.split_at(block_kv * dim / 2);
            let g = dim / 32;
            for r in 0..block_kv {
                out.push_fp4(
                    &vals[r * dim / 2..(r + 1) * dim / 2],
                    &codes[r * g..(r + 1) * g],
                    dim,
                );
            }
        }
    }
}
