//! The shared arithmetic: per-head scores by an f64 GEMM (exact for E4M3 codes, DESIGN
//! §3.2), then scale, ReLU, weight and the sum over heads in f64.

use crate::gemm::{OutBuf, OutView};
use faer::{linalg::matmul::matmul, Accum, MatMut, MatRef, Par};
use half::bf16;
use rayon::prelude::*;

/// Key columns per GEMM tile.
const TILE_KV: usize = 512;

/// ReLU that keeps NaN (as `torch.relu`), unlike `f64::max`.
fn relu(x: f64) -> f64 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `acc[t, j] = Σ_h relu(q[t, h]·kv[j] · kv_scale[j]) · w[t, h]` for `j` in
/// `ranges[t]`, heads summed in ascending order; `acc` is `[n_q, n_kv]` row-major and
/// only the range entries are written.
///
/// `q`: f64 `[n_q·heads, dim]` row-major; `kv`: f64 `[n_kv, dim]`; `w`: f32
/// `[n_q, heads]`. Runs single-threaded (callers parallelize over query chunks).
#[allow(clippy::too_many_arguments)]
pub(crate) fn score(
    q: &[f64],
    heads: usize,
    dim: usize,
    kv: &[f64],
    kv_scale: &[f64],
    w: &[f32],
    ranges: &[(usize, usize)],
    acc: &mut [f64],
) {
    let n_q = ranges.len();
    let n_kv = kv_scale.len();
    for (t, &(lo, hi)) in ranges.iter().enumerate() {
        acc[t * n_kv + lo..t * n_kv + hi].fill(0.0);
    }
    let lo_all = ranges.iter().filter(|r| r.0 < r.1).map(|r| r.0).min();
    let hi_all = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let Some(lo_all) = lo_all else { return };
    let m = n_q * heads;
    let mut s = vec![0.0f64; m * TILE_KV];
    let mut c0 = lo_all;
    while c0 < hi_all {
        let c1 = (c0 + TILE_KV).min(hi_all);
        let tw = c1 - c0;
        matmul(
            MatMut::from_row_major_slice_mut(&mut s[..m * tw], m, tw),
            Accum::Replace,
            MatRef::from_row_major_slice(q, m, dim),
            MatRef::from_row_major_slice(&kv[c0 * dim..c1 * dim], tw, dim).transpose(),
            1.0,
            Par::Seq,
        );
        for (t, &(lo, hi)) in ranges.iter().enumerate() {
            let (a, b) = (lo.max(c0), hi.min(c1));
            if a >= b {
                continue;
            }
            let row_acc = &mut acc[t * n_kv + a..t * n_kv + b];
            let sc = &kv_scale[a..b];
            for h in 0..heads {
                let wt = w[t * heads + h] as f64;
                let srow = &s[(t * heads + h) * tw + (a - c0)..(t * heads + h) * tw + (b - c0)];
                for ((o, &x), &k) in row_acc.iter_mut().zip(srow).zip(sc) {
                    *o += relu(x * k) * wt;
                }
            }
        }
        c0 = c1;
    }
}

/// Mutable rows `[first, first + n)` of an output view, `ld` apart.
pub(crate) enum Rows<'b> {
    Bf16(&'b mut [bf16]),
    F32(&'b mut [f32]),
    F64(&'b mut [f64]),
}

impl Rows<'_> {
    /// Rounds `v` once to the output dtype and stores it at element `i` of the chunk.
    pub(crate) fn set(&mut self, i: usize, v: f64) {
        match self {
            Rows::Bf16(b) => b[i] = crate::format::bf16::from_f64(v),
            Rows::F32(b) => b[i] = v as f32,
            Rows::F64(b) => b[i] = v,
        }
    }
}

/// Calls `f(first_row, rows)` in parallel for chunks of `per` output rows.
pub(crate) fn par_row_chunks<F>(out: &mut OutView, per: usize, f: F)
where
    F: Fn(usize, Rows) + Sync + Send,
{
    let (rows, cols, ld) = (out.rows, out.cols, out.ld);
    if rows == 0 || cols == 0 || per == 0 {
        return;
    }
    let need = (rows - 1) * ld + cols;
    let step = per * ld;
    match &mut out.buf {
        OutBuf::Bf16(b) => b[..need]
            .par_chunks_mut(step)
            .enumerate()
            .for_each(|(k, c)| f(k * per, Rows::Bf16(c))),
        OutBuf::F32(b) => b[..need]
            .par_chunks_mut(step)
            .enumerate()
            .for_each(|(k, c)| f(k * per, Rows::F32(c))),
        OutBuf::F64(b) => b[..need]
            .par_chunks_mut(step)
            .enumerate()
            .for_each(|(k, c)| f(k * per, Rows::F64(c))),
    }
}
