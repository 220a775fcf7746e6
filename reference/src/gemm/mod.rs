//! The GEMM reference: `D = C + A·Bᵀ`, correctly rounded from the exact value.
//!
//! Conventions (DESIGN §2): A is logical `[M, K]`, B logical `[N, K]`, C (optional, FP32)
//! and D logical `[M, N]`; D is row-major with a leading dimension ([`OutView`]). The
//! layout letters are the operands' views: `_nt` = A and B K-major
//! ([`MatView::k_major`]), `_nn` = B MN-major, `_tn` = A MN-major, `_tt` = both
//! ([`MatView::mn_major`]); any leading stride.
//!
//! Operands ([`Operand`]): FP8 E4M3 with FP32 or UE8M0 scales, A per-token 1×128 and B
//! per-block 128×128 (the DeepSeek "1D2D" recipe) or per-token (the "1D1D"
//! weight-gradient recipe); FP8 A × FP4 E2M1 B with UE8M0 scales per 32 or 128 along K;
//! BF16 × BF16.
//!
//! # Exactness (DESIGN §3.2)
//! Every dequantized element (code × scale) is exact in f64. The reference computes
//! `t = c + Σ_k a_k·b_k` with one multi-threaded f64 GEMM (faer), bounds its error by
//! `γ_{K+1}·(‖a‖₂‖b‖₂ + |c|)` (Higham §3.1 with Cauchy–Schwarz), and rounds to the
//! output dtype with round-to-nearest-even when the whole error interval rounds to one
//! value; otherwise it recomputes that element exactly (Dekker products summed as a
//! Shewchuk expansion) and rounds the exact sum. So every BF16/FP32 output element is
//! the correctly rounded exact value of `C + A·Bᵀ`, whatever the cancellation; an
//! exactly zero result is `+0`. [`OutBuf::F64`] returns the unrounded f64 value `t`
//! instead, within the bound above of the exact value (relative error about `K·2^-53`
//! of `Σ|a·b|`), for error metrics.
//!
//! Non-finite values: E4M3 NaN codes and BF16 NaN/inf propagate as IEEE arithmetic
//! would (a NaN in row m of A makes row m of D NaN); non-finite scales are rejected
//! ([`Error::Scale`]); a non-finite C element gives that element `C + product` in IEEE.
//!
//! # Grouped GEMMs (DeepGEMM's MoE layouts)
//! [`m_grouped_gemm_contiguous`] (per-row group index with `-1` padding rows, or the
//! "psum" cumulative layout), [`m_grouped_gemm_masked`] (`[G, max_m, K]` with
//! `masked_m`), [`k_grouped_gemm`] (per-group K, typically FP32 output accumulated into
//! C). Rows a layout leaves out are never written.

mod exact;
mod operand;
mod view;

pub use operand::{Fp4Group, Fp4Operand, Fp8Operand, Fp8Recipe, Operand, Scales, FP8_GRAN_K};
pub use view::{MatView, OutBuf, OutView};

use crate::{Error, Result};
use exact::{dot2, gamma, two_prod, ExactSum};
use faer::{linalg::matmul::matmul, Accum, MatMut, MatRef, Par};
use operand::{check_pair, Dense};
use rayon::prelude::*;

/// `D = C + A·Bᵀ` for one dense problem.
///
/// Shapes: `a` `[M, K]`, `b` `[N, K]`, `c` `[M, N]` (FP32, any strides), `d` `[M, N]`.
/// Errors: [`Error::Argument`] for an unsupported operand pair (see [`Operand`]),
/// [`Error::Shape`] for mismatched M/N/K or scale shapes, [`Error::Scale`] for a
/// non-finite scale or a UE8M0 scale that is not a power of two.
pub fn gemm(a: &Operand, b: &Operand, c: Option<MatView<f32>>, d: &mut OutView) -> Result<()> {
    check_pair(a, b)?;
    check_k("b", a.k(), b.k())?;
    let (m, n) = (a.rows(), b.rows());
    check_out(c.as_ref(), d, m, n)?;
    let da = a.dequantize("sfa")?;
    let db = b.dequantize("sfb")?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let rows: Vec<usize> = (0..m).collect();
    product_rows(&da, &db, c.as_ref(), d, &rows);
    Ok(())
}

/// How the rows of an M-grouped contiguous A are assigned to groups.
#[derive(Clone, Copy, Debug)]
pub enum MGroupLayout<'a> {
    /// One entry per row of A (`[M]` i32): the group index in `0..G`, or `-1` for a
    /// padding row whose D row is left untouched (DeepGEMM's `m_indices`).
    PerRow(&'a [i32]),
    /// DeepGEMM's "psum" layout: `ends` (`[G]` i32) are cumulative row counts; group `g`
    /// owns rows `[round_up(ends[g-1], align), ends[g])` (group 0 starts at 0), and rows
    /// outside every group are left untouched. Each end must satisfy
    /// `round_up(ends[g-1], align) <= ends[g] <= M` (an empty group has
    /// `ends[g] = round_up(ends[g-1], align)`), as DeepGEMM's scheduler computes group
    /// sizes as `ends[g] − round_up(ends[g-1], align)` in unsigned arithmetic;
    /// `align >= 1` is the kernel's M alignment (128 on sm_90).
    Psum {
        /// Cumulative ends, one per group.
        ends: &'a [i32],
        /// Alignment of each group's start.
        align: usize,
    },
}

/// M-grouped contiguous GEMM (MoE prefill): `D[r] = C[r] + A[r]·B_{g(r)}ᵀ` for every row
/// `r` of A assigned to group `g(r)` by `layout`.
///
/// Shapes: `a` `[M, K]` (all groups' tokens concatenated), `b[g]` `[N, K]` for each of the
/// G groups, `c` and `d` `[M, N]`. Errors: as [`gemm`], plus [`Error::Group`] for a group
/// index outside `-1..G`, decreasing or out-of-range psum ends, or `align == 0`.
pub fn m_grouped_gemm_contiguous(
    a: &Operand,
    b: &[Operand],
    layout: MGroupLayout,
    c: Option<MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    let (m, n) = (a.rows(), group_n(b)?);
    check_out(c.as_ref(), d, m, n)?;
    for bg in b {
        check_pair(a, bg)?;
        check_k("b", a.k(), bg.k())?;
        // every group's scales before the first write: a bad group leaves D untouched
        bg.check_scales("sfb")?;
    }
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); b.len()];
    match layout {
        MGroupLayout::PerRow(idx) => {
            if idx.len() != m {
                return Err(Error::Shape {
                    tensor: "grouped_layout",
                    expected: format!("[{m}]"),
                    got: format!("[{}]", idx.len()),
                });
            }
            for (r, &g) in idx.iter().enumerate() {
                match usize::try_from(g) {
                    Ok(g) if g < b.len() => rows_of[g].push(r),
                    _ if g == -1 => {}
                    _ => {
                        return Err(group_err(
                            "grouped_layout",
                            r,
                            format!("{g} not in -1..{}", b.len()),
                        ))
                    }
                }
            }
        }
        MGroupLayout::Psum { ends, align } => {
            if ends.len() != b.len() {
                return Err(Error::Shape {
                    tensor: "grouped_layout",
                    expected: format!("[{}] (one end per group)", b.len()),
                    got: format!("[{}]", ends.len()),
                });
            }
            if align == 0 {
                return Err(group_err("grouped_layout", 0, "align must be >= 1".into()));
            }
            let mut prev_end = 0usize;
            for (g, &e) in ends.iter().enumerate() {
                let start = if g == 0 {
                    0
                } else {
                    prev_end.next_multiple_of(align)
                };
                let end = usize::try_from(e)
                    .ok()
                    .filter(|&e| e >= start && e <= m)
                    .ok_or_else(|| {
                        group_err(
                            "grouped_layout",
                            g,
                            format!(
                                "end {e} not in {start}..={m} (previous end rounded up to {align})"
                            ),
                        )
                    })?;
                rows_of[g].extend(start..end);
                prev_end = end;
            }
        }
    }
    grouped_products(a, b, &rows_of, c.as_ref(), d)
}

/// M-grouped masked GEMM (MoE decode under CUDA graphs): for each group `g` and row
/// `r < masked_m[g]`, `D[g·max_m + r] = C[g·max_m + r] + A[g·max_m + r]·B_gᵀ`; rows
/// `r >= masked_m[g]` are left untouched.
///
/// Shapes: `a` `[G·max_m, K]` (the `[G, max_m, K]` tensor with groups stacked along
/// rows; per-token scales stack the same way), `b[g]` `[N, K]`, `masked_m` `[G]`, `c`
/// and `d` `[G·max_m, N]`. Errors: as [`gemm`], plus [`Error::Shape`] when A's rows are
/// not a multiple of G, [`Error::Group`] for `masked_m[g]` outside `0..=max_m`.
pub fn m_grouped_gemm_masked(
    a: &Operand,
    b: &[Operand],
    masked_m: &[i32],
    c: Option<MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    let groups = b.len();
    let n = group_n(b)?;
    if masked_m.len() != groups || a.rows() % groups != 0 {
        return Err(Error::Shape {
            tensor: "a, masked_m",
            expected: format!("masked_m [{groups}] and A rows a multiple of {groups}"),
            got: format!("masked_m [{}], A rows {}", masked_m.len(), a.rows()),
        });
    }
    let max_m = a.rows() / groups;
    check_out(c.as_ref(), d, a.rows(), n)?;
    let mut rows_of = Vec::with_capacity(groups);
    for (g, (&mm, bg)) in masked_m.iter().zip(b).enumerate() {
        check_pair(a, bg)?;
        check_k("b", a.k(), bg.k())?;
        bg.check_scales("sfb")?;
        let mm = usize::try_from(mm)
            .ok()
            .filter(|&x| x <= max_m)
            .ok_or_else(|| group_err("masked_m", g, format!("{mm} not in 0..={max_m}")))?;
        rows_of.push((g * max_m..g * max_m + mm).collect::<Vec<_>>());
    }
    grouped_products(a, b, &rows_of, c.as_ref(), d)
}

/// K-grouped GEMM (MoE weight gradient): `D_g = C_g + A_g·B_gᵀ` where group `g` has its
/// own `K_g` (DeepGEMM's `k_grouped_fp8_gemm_tn_contiguous`, usually 1D1D FP8 with FP32
/// output).
///
/// Shapes: `a[g]` `[M, K_g]`, `b[g]` `[N, K_g]` (build them as views into the
/// K-concatenated buffers), `c` and `d` `[G·M, N]` (`[G, M, N]` stacked). A group with
/// `K_g = 0` gives `D_g = C_g` (or zeros). Errors: as [`gemm`], plus [`Error::Shape`]
/// when `a` and `b` have different lengths or groups disagree on M or N.
pub fn k_grouped_gemm(
    a: &[Operand],
    b: &[Operand],
    c: Option<MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    if a.len() != b.len() || a.is_empty() {
        return Err(Error::Shape {
            tensor: "a, b",
            expected: "the same non-zero number of groups".into(),
            got: format!("{} and {}", a.len(), b.len()),
        });
    }
    let m = a[0].rows();
    let n = group_n(b)?;
    check_out(
        c.as_ref(),
        d,
        crate::error::checked_len("d", &[a.len(), m])?,
        n,
    )?;
    for (ag, bg) in a.iter().zip(b) {
        check_pair(ag, bg)?;
        check_k("b", ag.k(), bg.k())?;
        ag.check_scales("sfa")?;
        bg.check_scales("sfb")?;
        if ag.rows() != m {
            return Err(Error::Shape {
                tensor: "a",
                expected: format!("M = {m} in every group"),
                got: format!("{}", ag.rows()),
            });
        }
    }
    for (g, (ag, bg)) in a.iter().zip(b).enumerate() {
        let rows: Vec<usize> = (g * m..(g + 1) * m).collect();
        product_rows(
            &ag.dequantize("sfa")?,
            &bg.dequantize("sfb")?,
            c.as_ref(),
            d,
            &rows,
        );
    }
    Ok(())
}

/// Writes `D[r] = C[r] + A[r]·B_gᵀ` for the rows `rows_of[g]` of each group `g`. Only
/// those rows of A are read (and their scales checked, before anything is written).
fn grouped_products(
    a: &Operand,
    b: &[Operand],
    rows_of: &[Vec<usize>],
    c: Option<&MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    let all: Vec<usize> = rows_of.concat();
    let da = a.dequantize_rows("sfa", Some(&all))?;
    let mut first = 0;
    for (bg, rows) in b.iter().zip(rows_of) {
        let db = bg.dequantize("sfb")?;
        product_rows(&da.row_range(first, rows.len()), &db, c, d, rows);
        first += rows.len();
    }
    Ok(())
}

fn group_err(tensor: &'static str, index: usize, reason: String) -> Error {
    Error::Group {
        tensor,
        index,
        reason,
    }
}

fn check_k(tensor: &'static str, k: usize, got: usize) -> Result<()> {
    if k != got {
        return Err(Error::Shape {
            tensor,
            expected: format!("K = {k} (A's K)"),
            got: format!("K = {got}"),
        });
    }
    Ok(())
}

/// The common N of grouped B operands.
fn group_n(b: &[Operand]) -> Result<usize> {
    let n = b.first().map(Operand::rows).ok_or_else(|| Error::Shape {
        tensor: "b",
        expected: "at least one group".into(),
        got: "0 groups".into(),
    })?;
    if let Some(bad) = b.iter().find(|x| x.rows() != n) {
        return Err(Error::Shape {
            tensor: "b",
            expected: format!("N = {n} in every group"),
            got: format!("N = {}", bad.rows()),
        });
    }
    Ok(n)
}

fn check_out(c: Option<&MatView<f32>>, d: &OutView, m: usize, n: usize) -> Result<()> {
    if d.rows() != m || d.cols() != n {
        return Err(Error::Shape {
            tensor: "d",
            expected: format!("[{m}, {n}]"),
            got: format!("[{}, {}]", d.rows(), d.cols()),
        });
    }
    if let Some(c) = c {
        c.expect_shape("c", m, n)?;
    }
    Ok(())
}

/// `D[rows_out[i]] = C[rows_out[i]] + a[i]·bᵀ`, every element correctly rounded.
fn product_rows(
    a: &Dense,
    b: &Dense,
    c: Option<&MatView<f32>>,
    d: &mut OutView,
    rows_out: &[usize],
) {
    let (m, n, k) = (a.rows, b.rows, a.k);
    if m == 0 || n == 0 {
        return;
    }
    let mut t = vec![0.0f64; m * n];
    matmul(
        MatMut::from_row_major_slice_mut(&mut t, m, n),
        Accum::Replace,
        MatRef::from_row_major_slice(&a.vals, m, k),
        MatRef::from_column_major_slice(&b.vals, k, n),
        1.0,
        Par::rayon(0),
    );
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let na: Vec<f64> = (0..m).map(|i| norm(a.row(i))).collect();
    let nb: Vec<f64> = (0..n).map(|j| norm(b.row(j))).collect();
    let target = d.target();
    let gamma = gamma(k + 1);
    t.par_chunks_mut(n)
        .enumerate()
        .for_each_init(ExactSum::default, |sum, (i, row)| {
            let ar = a.row(i);
            for (j, out) in row.iter_mut().enumerate() {
                let cv = c.map_or(0.0, |c| c.get(rows_out[i], j) as f64);
                let br = b.row(j);
                let scale = na[i] * nb[j];
                *out = if !scale.is_finite() {
                    // inf or NaN in an operand row: IEEE semantics, evaluated plainly
                    // (order does not matter once a NaN or an infinity is involved).
                    let dot: f64 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
                    target.round(cv + dot, 0.0)
                } else if scale == 0.0 {
                    target.round(cv + 0.0, 0.0)
                } else {
                    let v = cv + *out;
                    let abs_sum = scale + cv.abs();
                    let certified = target.certified(v, gamma * abs_sum).or_else(|| {
                        let (v2, bound2) = dot2(ar, br, cv, abs_sum);
                        target.certified(v2, bound2)
                    });
                    certified.unwrap_or_else(|| {
                        sum.clear();
                        sum.add(cv);
                        for (&x, &y) in ar.iter().zip(br) {
                            let (p, e) = two_prod(x, y);
                            sum.add(p);
                            sum.add(e);
                        }
                        let (hi, lo) = sum.finish();
                        target.round(hi, lo)
                    })
                };
            }
        });
    for (i, &r) in rows_out.iter().enumerate() {
        d.set_row(r, &t[i * n..(i + 1) * n]);
    }
}
