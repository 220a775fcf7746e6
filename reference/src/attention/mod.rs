//! MQA logits: the scoring step of DeepSeek-V3.2's lightning indexer (DeepSeek-V3.2-Exp
//! report, "DeepSeek Sparse Attention"), as DeepGEMM's `fp8_mqa_logits`,
//! `fp8_paged_mqa_logits` and their FP4 variants (`fp8_fp4_mqa_logits`,
//! `fp8_fp4_paged_mqa_logits`) compute it:
//!
//! `logits[i, j] = Σ_h relu(q[i, h, :] · kv[j, :] · s_j) · w[i, h]`
//!
//! with `q` E4M3 (no scale) or E2M1 with UE8M0 scales per 32 elements of `dim`, `kv`
//! E4M3 with one FP32 scale `s_j` per row or E2M1 with per-32 UE8M0 scales (`s_j = 1`),
//! and `w` FP32. Semantics follow DeepGEMM's Python references
//! (`tests/test_attention.py`: `ref_fp8_mqa_logits`, `ref_fp8_paged_mqa_logits`); the
//! FP4 ops are the same references applied to the dequantized operands (value times
//! its group's UE8M0 scale).
//!
//! # Arithmetic
//! Every per-head dot product of two E4M3 operands is exact in f64 (a product of two
//! E4M3 values is an integer multiple of 2^-18 below 2^18, and fewer than 2^17 of them
//! sum exactly; DESIGN §3.2). The row scale, ReLU, weight and the sum over heads (in
//! ascending head order) are done in f64, and the result is rounded once to the output
//! dtype ([`crate::format::bf16::from_f64`], correctly rounded, or `as f32`, RNE). The
//! f64 value is accurate to about `(H + 2)·2^-53` relative to `Σ_h |term_h|` (not a
//! correctly rounded result: a BF16/FP32 output may differ from the correctly rounded
//! exact value by one unit in rare near-tie cases). With FP4 operands each 32-element
//! group's partial dot is exact and the products are exact after scaling, but the sum
//! over `dim / 32` groups with different scales adds up to `dim·2^-53` relative error.
//! NaN inputs (E4M3 NaN codes, UE8M0 0xFF, NaN scales or weights) propagate to NaN
//! logits (ReLU keeps NaN, as `torch.relu`).
//!
//! Output views are [`OutView`]s (row-major with a leading dimension) over BF16, FP32
//! or f64 (unrounded) buffers. Work is parallel over query rows with rayon.

mod compute;
mod operand;

pub use crate::gemm::{OutBuf, OutView};
pub use operand::{Keys, KvCacheFormat, Query};

use crate::error::checked_len;
use crate::{Error, Result};
use compute::{par_row_chunks, score};
use operand::{check_cache_dim, decode_keys, len_err, push_cache_block, KeyRows, QueryData};

/// Query (token, head) rows per parallel work item of the non-paged ops (the GEMM's
/// M; about 1024 keeps its operands and result in L2).
const TILE_ROWS: usize = 1024;

/// Inputs of the non-paged ops [`mqa_logits`] and [`mqa_logits_compressed`].
#[derive(Clone, Copy, Debug)]
pub struct MqaInputs<'a> {
    /// Queries `[seq_len, heads, dim]`.
    pub q: Query<'a>,
    /// Keys `[seq_len_kv, dim]` with their scales.
    pub kv: Keys<'a>,
    /// FP32 `[seq_len, heads]` row-major: the per-head weight of each query token.
    pub weights: &'a [f32],
    /// i32 `[seq_len]`: first key (inclusive) of each query's range (DeepGEMM
    /// `cu_seqlen_ks`). Must be `>= 0`.
    pub ks: &'a [i32],
    /// i32 `[seq_len]`: end key (exclusive) of each query's range (`cu_seqlen_ke`);
    /// must be `>= ks`; values past `seq_len_kv` are clamped to `seq_len_kv`.
    pub ke: &'a [i32],
    /// Number of query tokens.
    pub seq_len: usize,
    /// Number of keys.
    pub seq_len_kv: usize,
    /// Number of query heads `H` (>= 1).
    pub heads: usize,
    /// Head dimension `D` (>= 1; a multiple of 32 for FP4 operands).
    pub dim: usize,
}

fn check_heads_dim(heads: usize, dim: usize) -> Result<()> {
    if heads == 0 || dim == 0 {
        return Err(Error::Argument {
            name: if heads == 0 { "heads" } else { "dim" },
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

fn check_out(out: &OutView, rows: usize, cols: usize) -> Result<()> {
    if out.rows() != rows || out.cols() != cols {
        return Err(Error::Shape {
            tensor: "logits",
            expected: format!("[{rows}, {cols}]"),
            got: format!("[{}, {}]", out.rows(), out.cols()),
        });
    }
    Ok(())
}

/// Validated non-paged inputs: decoded keys and each query's clamped range.
struct Prepared<'a> {
    q: QueryData<'a>,
    kv: KeyRows,
    ranges: Vec<(usize, usize)>,
}

fn prepare<'a>(x: &MqaInputs<'a>) -> Result<Prepared<'a>> {
    check_heads_dim(x.heads, x.dim)?;
    let q = QueryData::new(&x.q, x.seq_len, x.heads, x.dim)?;
    let kv = decode_keys(&x.kv, x.seq_len_kv, x.dim)?;
    let nw = checked_len("weights", &[x.seq_len, x.heads])?;
    if x.weights.len() != nw {
        return Err(len_err(
            "weights",
            format!("[{}, {}]", x.seq_len, x.heads),
            x.weights.len(),
        ));
    }
    for (name, v) in [("ks", x.ks), ("ke", x.ke)] {
        if v.len() != x.seq_len {
            return Err(len_err(name, format!("[{}]", x.seq_len), v.len()));
        }
    }
    let mut ranges = Vec::with_capacity(x.seq_len);
    for (i, (&s, &e)) in x.ks.iter().zip(x.ke).enumerate() {
        if s < 0 {
            return Err(Error::Group {
                tensor: "ks",
                index: i,
                reason: format!("negative start {s}"),
            });
        }
        if e < s {
            return Err(Error::Group {
                tensor: "ke",
                index: i,
                reason: format!("end {e} before start {s}"),
            });
        }
        let hi = (e as usize).min(x.seq_len_kv);
        let lo = (s as usize).min(hi);
        ranges.push((lo, hi));
    }
    Ok(Prepared { q, kv, ranges })
}

/// Runs the scores of every query chunk and hands each chunk's `[n, seq_len_kv]`
/// accumulator to `emit(first_token, ranges, acc, rows)`.
fn run<F>(x: &MqaInputs, p: &Prepared, out: &mut OutView, emit: F)
where
    F: Fn(usize, &[(usize, usize)], &[f64], &mut compute::Rows) + Sync + Send,
{
    let (h, d, n_kv) = (x.heads, x.dim, x.seq_len_kv);
    let tile_q = (TILE_ROWS / h).clamp(1, 64);
    par_row_chunks(out, tile_q, |t0, mut rows| {
        let t1 = (t0 + tile_q).min(x.seq_len);
        let ranges = &p.ranges[t0..t1];
        let q = p.q.rows(t0 * h..t1 * h, d);
        let mut acc = vec![0.0f64; (t1 - t0) * n_kv];
        score(
            &q,
            h,
            d,
            &p.kv.vals,
            &p.kv.scale,
            &x.weights[t0 * h..t1 * h],
            ranges,
            &mut acc,
        );
        emit(t0, ranges, &acc, &mut rows);
    });
}

/// Non-paged MQA logits, DeepGEMM `fp8_mqa_logits(q, (kv, kv_scales), weights, ks, ke,
/// clean_logits)` (and `fp8_fp4_mqa_logits` for FP4 operands).
///
/// `out` is `[seq_len, seq_len_kv]` (any leading dimension, BF16/FP32/f64). For each
/// query `i` and key `ks[i] <= j < min(ke[i], seq_len_kv)`:
/// `out[i, j] = Σ_h relu(q[i, h, :]·kv[j, :]·s_j)·w[i, h]`, rounded once (see the
/// module docs). Outside that range: `−inf` when `clean_logits`, otherwise left
/// untouched (DeepGEMM leaves unspecified values there). `ks[i] = ke[i]` gives an empty
/// row.
///
/// Errors: [`Error::Shape`] for any length that does not match the shapes in
/// [`MqaInputs`] (`q`, `q_scales`, `kv`, `kv_scales`, `weights`, `ks`, `ke`) or an
/// `out` that is not `[seq_len, seq_len_kv]` (`logits`); [`Error::Group`] for a
/// negative `ks` (`"ks"`) or `ke < ks` (`"ke"`; DeepGEMM's reference would give an
/// empty row, its kernel is undefined there); [`Error::Argument`] for `heads`/`dim` 0,
/// an FP4 `dim` that is not a multiple of 32, or nonzero padding bytes in packed UE8M0
/// scales.
pub fn mqa_logits(x: &MqaInputs, clean_logits: bool, out: &mut OutView) -> Result<()> {
    let p = prepare(x)?;
    check_out(out, x.seq_len, x.seq_len_kv)?;
    let (n_kv, ld) = (x.seq_len_kv, out.ld);
    run(x, &p, out, |_, ranges, acc, rows| {
        for (t, &(lo, hi)) in ranges.iter().enumerate() {
            for j in lo..hi {
                rows.set(t * ld + j, acc[t * n_kv + j]);
            }
            if clean_logits {
                for j in (0..lo).chain(hi..n_kv) {
                    rows.set(t * ld + j, f64::NEG_INFINITY);
                }
            }
        }
    });
    Ok(())
}

/// Non-paged MQA logits in DeepGEMM's compressed form (`fp8_mqa_logits(...,
/// max_seqlen_k = max_seqlen_k, clean_logits = False)`): `out` is
/// `[seq_len, max_seqlen_k]` and column `c` of row `i` holds key `ks[i] + c` for
/// `c < min(ke[i], seq_len_kv) − ks[i]`; the other columns are left untouched.
///
/// Errors: as [`mqa_logits`], with `out` required to be `[seq_len, max_seqlen_k]`
/// for some `max_seqlen_k`, plus [`Error::Group`] (`"ke"`) when a row's clamped range
/// is wider than `max_seqlen_k` (the kernel would write past the row).
pub fn mqa_logits_compressed(x: &MqaInputs, out: &mut OutView) -> Result<()> {
    let p = prepare(x)?;
    let width = out.cols();
    check_out(out, x.seq_len, width)?;
    if let Some(i) = p.ranges.iter().position(|r| r.1 - r.0 > width) {
        return Err(Error::Group {
            tensor: "ke",
            index: i,
            reason: format!(
                "range [{}, {}) wider than max_seqlen_k = {width}",
                p.ranges[i].0, p.ranges[i].1
            ),
        });
    }
    let (n_kv, ld) = (x.seq_len_kv, out.ld);
    run(x, &p, out, |_, ranges, acc, rows| {
        for (t, &(lo, hi)) in ranges.iter().enumerate() {
            for j in lo..hi {
                rows.set(t * ld + (j - lo), acc[t * n_kv + j]);
            }
        }
    });
    Ok(())
}

/// Context lengths of the paged op.
#[derive(Clone, Copy, Debug)]
pub enum ContextLens<'a> {
    /// i32 `[batch]`: sequence `b` holds `L = context_lens[b]` tokens and the `next_n`
    /// queries are its last `next_n` positions: token `t` sees positions
    /// `p < L` with `p <= L − next_n + t` (none at all when `L − next_n + t < 0`).
    PerSequence(&'a [i32]),
    /// i32 `[batch, next_n]`: token `t` of sequence `b` sees positions
    /// `p < context_lens[b, t]` (DeepGEMM's 2-D `context_lens`).
    PerToken(&'a [i32]),
}

/// Inputs of [`paged_mqa_logits`].
#[derive(Clone, Copy, Debug)]
pub struct PagedMqaInputs<'a> {
    /// Queries `[batch, next_n, heads, dim]` (the [`Query`] docs with
    /// `tokens = batch·next_n`).
    pub q: Query<'a>,
    /// Cache bytes `[num_blocks, block_kv, 1, row_bytes]`, laid out per block as
    /// [`KvCacheFormat`] says (`row_bytes` = [`KvCacheFormat::row_bytes`]).
    pub kv_cache: &'a [u8],
    /// Byte format of `kv_cache`.
    pub kv_format: KvCacheFormat,
    /// FP32 `[batch·next_n, heads]` row-major.
    pub weights: &'a [f32],
    /// Context length of each sequence (or of each query token).
    pub context_lens: ContextLens<'a>,
    /// i32 `[batch, max_blocks]` row-major: logical block `k` of sequence `b` is cache
    /// block `block_table[b, k]`. Entries may repeat and come in any order; only the
    /// blocks actually read (`k < ceil(max visible length / block_kv)`) must lie in
    /// `[0, num_blocks)`.
    pub block_table: &'a [i32],
    /// Number of sequences.
    pub batch: usize,
    /// Query tokens per sequence (speculative decoding window).
    pub next_n: usize,
    /// Query heads (>= 1).
    pub heads: usize,
    /// Head dimension (>= 1; a multiple of 32 for FP4).
    pub dim: usize,
    /// Cache blocks in `kv_cache`.
    pub num_blocks: usize,
    /// Tokens per cache block (>= 1).
    pub block_kv: usize,
    /// Columns of `block_table`.
    pub max_blocks: usize,
}

/// Paged (decode) MQA logits, DeepGEMM `fp8_paged_mqa_logits(q, kv_cache, weights,
/// context_lens, block_table, schedule_meta, max_model_len, clean_logits)` (and
/// `fp8_fp4_paged_mqa_logits` for FP4 operands; the schedule metadata only splits
/// work and does not change the result).
///
/// `out` is `[batch·next_n, max_model_len]` with `max_model_len = max_blocks·block_kv`.
/// Row `b·next_n + t`, column `p` (a position in sequence `b`, stored in cache block
/// `block_table[b, p / block_kv]`, row `p % block_kv`) holds
/// `Σ_h relu(q[b, t, h, :]·kv[p, :]·s_p)·w[b·next_n + t, h]` for the visible positions
/// (see [`ContextLens`]); the others are `−inf` when `clean_logits` (DeepGEMM's
/// reference), otherwise left untouched.
///
/// Errors: [`Error::Shape`] for lengths not matching [`PagedMqaInputs`] (`q`,
/// `q_scales`, `kv_cache`, `weights`, `context_lens`, `block_table`) or an `out` that
/// is not `[batch·next_n, max_blocks·block_kv]` (`logits`); [`Error::Group`] for a
/// negative context length or one above `max_model_len` (`"context_lens"`), or a block
/// table entry that is read and lies outside `[0, num_blocks)` (`"block_table"`,
/// flat index); [`Error::Argument`] for `heads`, `dim` or `block_kv` 0, an FP4 `dim`
/// that is not a multiple of 32, or nonzero UE8M0 padding bytes in `q_scales`.
pub fn paged_mqa_logits(x: &PagedMqaInputs, clean_logits: bool, out: &mut OutView) -> Result<()> {
    check_heads_dim(x.heads, x.dim)?;
    if x.block_kv == 0 {
        return Err(Error::Argument {
            name: "block_kv",
            reason: "must be at least 1".into(),
        });
    }
    check_cache_dim(x.kv_format, x.dim)?;
    let tokens = checked_len("q", &[x.batch, x.next_n])?;
    let q = QueryData::new(&x.q, tokens, x.heads, x.dim)?;
    let row_bytes = x.kv_format.row_bytes(x.dim);
    let block_bytes = checked_len("kv_cache", &[x.block_kv, row_bytes])?;
    let need = checked_len("kv_cache", &[x.num_blocks, block_bytes])?;
    if x.kv_cache.len() != need {
        return Err(len_err(
            "kv_cache",
            format!("[{}, {}, 1, {row_bytes}] bytes", x.num_blocks, x.block_kv),
            x.kv_cache.len(),
        ));
    }
    if x.weights.len() != checked_len("weights", &[tokens, x.heads])? {
        return Err(len_err(
            "weights",
            format!("[{tokens}, {}]", x.heads),
            x.weights.len(),
        ));
    }
    if x.block_table.len() != checked_len("block_table", &[x.batch, x.max_blocks])? {
        return Err(len_err(
            "block_table",
            format!("[{}, {}]", x.batch, x.max_blocks),
            x.block_table.len(),
        ));
    }
    let max_model_len = checked_len("logits", &[x.max_blocks, x.block_kv])?;
    check_out(out, tokens, max_model_len)?;
    // Visible length of every query token.
    let (lens, per_token) = match x.context_lens {
        ContextLens::PerSequence(l) => (l, false),
        ContextLens::PerToken(l) => (l, true),
    };
    let n_lens = if per_token { tokens } else { x.batch };
    if lens.len() != n_lens {
        let shape = if per_token {
            format!("[{}, {}]", x.batch, x.next_n)
        } else {
            format!("[{}]", x.batch)
        };
        return Err(len_err("context_lens", shape, lens.len()));
    }
    if let Some(i) = lens
        .iter()
        .position(|&l| l < 0 || l as usize > max_model_len)
    {
        return Err(Error::Group {
            tensor: "context_lens",
            index: i,
            reason: format!("{} outside [0, max_model_len = {max_model_len}]", lens[i]),
        });
    }
    let visible: Vec<usize> = (0..tokens)
        .map(|r| {
            if per_token {
                lens[r] as usize
            } else {
                let (b, t) = (r / x.next_n, r % x.next_n);
                let l = lens[b] as i64;
                (l - x.next_n as i64 + t as i64 + 1).clamp(0, l) as usize
            }
        })
        .collect();
    // Blocks read per sequence, checked before any work.
    let mut blocks_read = vec![0usize; x.batch];
    for b in 0..x.batch {
        let vmax = visible[b * x.next_n..(b + 1) * x.next_n]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        blocks_read[b] = vmax.div_ceil(x.block_kv);
        for k in 0..blocks_read[b] {
            let idx = b * x.max_blocks + k;
            let e = x.block_table[idx];
            if e < 0 || e as usize >= x.num_blocks {
                return Err(Error::Group {
                    tensor: "block_table",
                    index: idx,
                    reason: format!("block {e} outside [0, {})", x.num_blocks),
                });
            }
        }
    }
    if x.next_n == 0 {
        return Ok(());
    }
    let (h, d, ld) = (x.heads, x.dim, out.ld);
    par_row_chunks(out, x.next_n, |r0, mut rows| {
        let b = r0 / x.next_n;
        let nb = blocks_read[b];
        let n_kv = nb * x.block_kv;
        let mut kv = KeyRows::with_capacity(n_kv, d);
        for k in 0..nb {
            let blk = x.block_table[b * x.max_blocks + k] as usize;
            let bytes = &x.kv_cache[blk * block_bytes..(blk + 1) * block_bytes];
            push_cache_block(&mut kv, x.kv_format, bytes, x.block_kv, d);
        }
        let ranges: Vec<(usize, usize)> =
            visible[r0..r0 + x.next_n].iter().map(|&v| (0, v)).collect();
        let qv = q.rows(r0 * h..(r0 + x.next_n) * h, d);
        let mut acc = vec![0.0f64; x.next_n * n_kv];
        score(
            &qv,
            h,
            d,
            &kv.vals,
            &kv.scale,
            &x.weights[r0 * h..(r0 + x.next_n) * h],
            &ranges,
            &mut acc,
        );
        for (t, &(_, v)) in ranges.iter().enumerate() {
            for p in 0..v {
                rows.set(t * ld + p, acc[t * n_kv + p]);
            }
            if clean_logits {
                for p in v..max_model_len {
                    rows.set(t * ld + p, f64::NEG_INFINITY);
                }
            }
        }
    });
    Ok(())
}
