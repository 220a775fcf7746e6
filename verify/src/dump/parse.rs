//! Turning a [`Dump`] into a typed problem: every dtype and shape is checked here, with
//! an error naming the tensor, before anything is computed.

use half::bf16;
use safetensors::Dtype;
use scalegemm_reference::gemm::{Fp4Group, Fp8Recipe};
use scalegemm_reference::quant::{ue8m0_code_of, unpack_ue8m0};

use super::{
    checked_elems, Dump, DumpError, DumpResult, Op, Tensor, MAX_GROUPS, MAX_OUTPUT_ELEMENTS,
};

/// Scale factors as read from a dump: F32 values or UE8M0 codes, row-major.
#[derive(Clone, Debug)]
pub(crate) enum ScaleData {
    /// FP32 values.
    F32(Vec<f32>),
    /// UE8M0 codes, one per element.
    Ue8m0(Vec<u8>),
}

impl ScaleData {
    /// Rows `start..start + len` of a `[_, cols]` matrix.
    pub(crate) fn rows(&self, start: usize, len: usize, cols: usize) -> ScaleData {
        let r = start * cols..(start + len) * cols;
        match self {
            ScaleData::F32(v) => ScaleData::F32(v[r].to_vec()),
            ScaleData::Ue8m0(v) => ScaleData::Ue8m0(v[r].to_vec()),
        }
    }

    /// The rows listed, of a `[_, cols]` matrix, in order.
    pub(crate) fn gather(&self, rows: &[usize], cols: usize) -> ScaleData {
        fn g<T: Copy>(v: &[T], rows: &[usize], cols: usize) -> Vec<T> {
            rows.iter()
                .flat_map(|&r| v[r * cols..(r + 1) * cols].iter().copied())
                .collect()
        }
        match self {
            ScaleData::F32(v) => ScaleData::F32(g(v, rows, cols)),
            ScaleData::Ue8m0(v) => ScaleData::Ue8m0(g(v, rows, cols)),
        }
    }

    /// Transposes a `[rows, cols]` matrix, keeping only columns `c0..c0 + width`:
    /// result `[width, rows]`.
    fn transpose_cols(&self, rows: usize, cols: usize, c0: usize, width: usize) -> ScaleData {
        fn t<T: Copy>(v: &[T], rows: usize, cols: usize, c0: usize, width: usize) -> Vec<T> {
            (c0..c0 + width)
                .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
                .collect()
        }
        match self {
            ScaleData::F32(v) => ScaleData::F32(t(v, rows, cols, c0, width)),
            ScaleData::Ue8m0(v) => ScaleData::Ue8m0(t(v, rows, cols, c0, width)),
        }
    }
}

/// An FP8 E4M3 operand, K-major `[rows, k]`, with scales `[ceil(rows/g), ceil(k/128)]`
/// (g = 1 per-token, 128 per-block).
#[derive(Clone, Debug)]
pub(crate) struct Fp8Mat {
    pub codes: Vec<u8>,
    pub rows: usize,
    pub k: usize,
    pub scales: ScaleData,
    pub recipe: Fp8Recipe,
}

impl Fp8Mat {
    pub(crate) fn kb(&self) -> usize {
        self.k.div_ceil(128)
    }

    /// Rows `start..start + len` of a per-token operand.
    pub(crate) fn row_range(&self, start: usize, len: usize) -> Fp8Mat {
        Fp8Mat {
            codes: self.codes[start * self.k..(start + len) * self.k].to_vec(),
            rows: len,
            k: self.k,
            scales: self.scales.rows(start, len, self.kb()),
            recipe: self.recipe,
        }
    }

    /// The listed rows of a per-token operand, in order.
    pub(crate) fn gather(&self, rows: &[usize]) -> Fp8Mat {
        let k = self.k;
        Fp8Mat {
            codes: rows
                .iter()
                .flat_map(|&r| self.codes[r * k..(r + 1) * k].iter().copied())
                .collect(),
            rows: rows.len(),
            k,
            scales: self.scales.gather(rows, self.kb()),
            recipe: self.recipe,
        }
    }
}

/// Inputs of the MQA logits ops, decoded (the paged cache is kept as bytes).
#[derive(Clone, Debug)]
pub(crate) struct MqaData {
    pub q: Vec<u8>,
    pub heads: usize,
    pub dim: usize,
    pub weights: Vec<f32>,
    pub kind: MqaKind,
}

/// The op-specific part of the MQA inputs.
#[derive(Clone, Debug)]
pub(crate) enum MqaKind {
    /// Non-paged: keys `[s_kv, dim]` with row scales and each query's key range.
    Dense {
        seq_len: usize,
        kv: Vec<u8>,
        kv_scales: Vec<f32>,
        ks: Vec<i32>,
        ke: Vec<i32>,
    },
    /// Paged: the raw cache and its tables.
    Paged {
        batch: usize,
        next_n: usize,
        kv_cache: Vec<u8>,
        num_blocks: usize,
        block_kv: usize,
        context_lens: Vec<i32>,
        per_token_lens: bool,
        block_table: Vec<i32>,
        max_blocks: usize,
    },
}

/// The typed inputs of each op.
#[derive(Clone, Debug)]
pub(crate) enum Inner {
    Fp8Gemm {
        a: Fp8Mat,
        b: Fp8Mat,
    },
    Bf16Gemm {
        k: usize,
        a: Vec<bf16>,
        b: Vec<bf16>,
    },
    Fp8Fp4Gemm {
        a: Fp8Mat,
        /// Packed E2M1 `[N, K/2]`.
        b: Vec<u8>,
        /// UE8M0 codes `[N, ceil(K/g)]`.
        sfb: Vec<u8>,
        group: Fp4Group,
    },
    MGroupedContiguous {
        a: Fp8Mat,
        b: Vec<Fp8Mat>,
        layout: Vec<i32>,
    },
    MGroupedMasked {
        a: Fp8Mat,
        b: Vec<Fp8Mat>,
        masked_m: Vec<i32>,
    },
    KGrouped {
        a: Vec<Fp8Mat>,
        b: Vec<Fp8Mat>,
    },
    Mqa(MqaData),
}

/// A dump's problem, checked and decoded: the op, its typed inputs and the shape of its
/// output `d` (as the 2-D `[rows, cols]` the tensor flattens to: `[G·max_m, N]` for the
/// masked GEMM, `[G·M, N]` for the K-grouped one).
#[derive(Clone, Debug)]
pub struct Problem {
    pub(crate) op: Op,
    pub(crate) inner: Inner,
    /// Optional C, f32 `[rows, cols]`.
    pub(crate) c: Option<Vec<f32>>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// The shape `d` has in the file (e.g. `[G, max_m, N]`).
    pub(crate) d_shape: Vec<usize>,
}

/// Reads tensors of one dump for one op, with errors naming the tensor and its spec.
struct Ctx<'a> {
    dump: &'a Dump,
    op: Op,
}

fn shape_err(name: &str, expected: String, got: &[usize]) -> DumpError {
    DumpError::Shape {
        name: name.into(),
        expected,
        got: got.to_vec(),
    }
}

fn value_err(name: &str, reason: String) -> DumpError {
    DumpError::Value {
        name: name.into(),
        reason,
    }
}

fn fmt_dims(d: &[usize]) -> String {
    format!("{d:?}")
}

impl<'a> Ctx<'a> {
    fn opt(&self, name: &str) -> Option<&'a Tensor> {
        self.dump.tensors.get(name)
    }

    fn get(&self, name: &str) -> DumpResult<&'a Tensor> {
        self.opt(name).ok_or_else(|| DumpError::Missing {
            op: self.op.name(),
            name: name.into(),
            what: self.op.spec_of(name),
        })
    }

    fn dtype(&self, t: &Tensor, name: &str, allowed: &[Dtype]) -> DumpResult<()> {
        if allowed.contains(&t.dtype()) {
            Ok(())
        } else {
            Err(DumpError::Dtype {
                name: name.into(),
                expected: allowed
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                got: t.dtype().to_string(),
            })
        }
    }

    /// The tensor's dims after checking its rank (`label` names the dims for errors).
    fn dims(&self, name: &str, rank: usize, label: &str) -> DumpResult<&'a [usize]> {
        let t = self.get(name)?;
        if t.shape().len() != rank {
            return Err(shape_err(name, format!("{label} (rank {rank})"), t.shape()));
        }
        Ok(t.shape())
    }

    fn expect_shape(&self, t: &Tensor, name: &str, want: &[usize], label: &str) -> DumpResult<()> {
        if t.shape() != want {
            return Err(shape_err(
                name,
                format!("{label} = {}", fmt_dims(want)),
                t.shape(),
            ));
        }
        Ok(())
    }

    fn e4m3(&self, name: &str, shape: &[usize], label: &str) -> DumpResult<Vec<u8>> {
        let t = self.get(name)?;
        self.dtype(t, name, &[Dtype::F8_E4M3])?;
        self.expect_shape(t, name, shape, label)?;
        Ok(t.data().to_vec())
    }

    fn i32s(&self, name: &str, shape: &[usize], label: &str) -> DumpResult<Vec<i32>> {
        let t = self.get(name)?;
        self.dtype(t, name, &[Dtype::I32])?;
        self.expect_shape(t, name, shape, label)?;
        Ok(t.to_i32())
    }

    fn f32s(&self, name: &str, shape: &[usize], label: &str) -> DumpResult<Vec<f32>> {
        let t = self.get(name)?;
        self.dtype(t, name, &[Dtype::F32])?;
        self.expect_shape(t, name, shape, label)?;
        Ok(t.to_f32())
    }

    /// Optional C: F32, BF16 or F16 of `shape`, as f32.
    fn c(&self, shape: &[usize], label: &str) -> DumpResult<Option<Vec<f32>>> {
        let Some(t) = self.opt("c") else {
            return Ok(None);
        };
        self.dtype(t, "c", &[Dtype::F32, Dtype::BF16, Dtype::F16])?;
        self.expect_shape(t, "c", shape, label)?;
        Ok(Some(t.to_f32()))
    }

    /// Scales with logical shape `lead ++ [rows, cols]`: F32 values, UE8M0 codes (`U8`,
    /// `F8_E8M0`) or packed `I32` (`lead ++ [rows, ceil(cols/4)]`). Returns them flattened
    /// to `[prod(lead)·rows, cols]`.
    fn scales(
        &self,
        name: &str,
        lead: &[usize],
        rows: usize,
        cols: usize,
        label: &str,
    ) -> DumpResult<ScaleData> {
        let t = self.get(name)?;
        self.dtype(
            t,
            name,
            &[Dtype::F32, Dtype::U8, Dtype::F8_E8M0, Dtype::I32],
        )?;
        let mut want: Vec<usize> = lead.to_vec();
        want.push(rows);
        let last = if t.dtype() == Dtype::I32 {
            cols.div_ceil(4)
        } else {
            cols
        };
        want.push(last);
        let label = if t.dtype() == Dtype::I32 {
            format!("{label} with the last dim packed 4 per I32")
        } else {
            label.to_string()
        };
        self.expect_shape(t, name, &want, &label)?;
        let all_rows = checked_elems(name, &want[..want.len() - 1])?;
        Ok(match t.dtype() {
            Dtype::F32 => ScaleData::F32(t.to_f32()),
            Dtype::I32 => ScaleData::Ue8m0(
                unpack_ue8m0(&t.to_i32(), all_rows, cols)
                    .map_err(|e| value_err(name, e.to_string()))?,
            ),
            _ => ScaleData::Ue8m0(t.data().to_vec()),
        })
    }

    fn meta(&self, key: &str) -> Option<&'a str> {
        self.dump.metadata.get(key).map(String::as_str)
    }
}

/// Checks the output `[rows, cols]` against [`MAX_OUTPUT_ELEMENTS`], counting an empty
/// dim as 1: a zero-width output still costs per-row (or per-column) work and memory
/// (row spans, bounds), so `[2^40, 0]` is refused like `[2^40, 1]`.
fn cap(rows: usize, cols: usize) -> DumpResult<usize> {
    let n = checked_elems("d", &[rows.max(1), cols.max(1)])?;
    if n > MAX_OUTPUT_ELEMENTS {
        return Err(DumpError::TooLarge(format!(
            "output [{rows}, {cols}] has {n} elements, more than the {MAX_OUTPUT_ELEMENTS} a dump may describe"
        )));
    }
    Ok(n)
}

/// Per-block (`[ceil(n/128), kb]`) or per-token (`[n, kb]`) B scales, told apart by the
/// leading dim of `sfb` (after `lead`).
fn b_recipe(ctx: &Ctx, lead: usize, n: usize) -> DumpResult<Fp8Recipe> {
    let t = ctx.get("sfb")?;
    match t.shape().get(lead) {
        Some(&r) if r == n.div_ceil(128) => Ok(Fp8Recipe::PerBlock),
        Some(&r) if r == n => Ok(Fp8Recipe::PerToken),
        _ => Err(shape_err(
            "sfb",
            format!(
                "{} (per-block 128x128) or N = {n} (per-token) rows",
                n.div_ceil(128)
            ),
            t.shape(),
        )),
    }
}

fn scale_rows(recipe: Fp8Recipe, n: usize) -> usize {
    match recipe {
        Fp8Recipe::PerBlock => n.div_ceil(128),
        Fp8Recipe::PerToken => n,
    }
}

/// Splits the `[G, N, K]` B and its `[G, sr, kb]` scales into G operands.
fn split_groups(ctx: &Ctx, g: usize, n: usize, k: usize) -> DumpResult<Vec<Fp8Mat>> {
    if g > MAX_GROUPS {
        return Err(DumpError::TooLarge(format!(
            "`b` has {g} groups, more than the {MAX_GROUPS} a dump may describe"
        )));
    }
    let kb = k.div_ceil(128);
    let codes = ctx.e4m3("b", &[g, n, k], "[G, N, K]")?;
    let recipe = b_recipe(ctx, 1, n)?;
    let sr = scale_rows(recipe, n);
    let sfb = ctx.scales("sfb", &[g], sr, kb, "[G, ceil(N/128) or N, ceil(K/128)]")?;
    Ok((0..g)
        .map(|i| Fp8Mat {
            codes: codes[i * n * k..(i + 1) * n * k].to_vec(),
            rows: n,
            k,
            scales: sfb.rows(i * sr, sr, kb),
            recipe,
        })
        .collect())
}

impl Problem {
    /// Checks and decodes the dump's op and tensors.
    ///
    /// # Errors
    /// [`DumpError::NoOp`] / [`DumpError::UnknownOp`] for the op; [`DumpError::Missing`],
    /// [`DumpError::Dtype`], [`DumpError::Shape`] naming the first offending tensor
    /// (order: as in [`Op::tensors`]); [`DumpError::Value`] for group indices, ks, masked
    /// counts or UE8M0 packings that cannot be right; [`DumpError::TooLarge`] for an
    /// output above [`MAX_OUTPUT_ELEMENTS`] (an empty dim counted as 1) or more than
    /// [`MAX_GROUPS`] groups. Scale and code values the reference rejects
    /// (NaN scales) surface later, from [`super::reference`] / [`super::check`].
    pub fn parse(dump: &Dump) -> DumpResult<Problem> {
        let op = dump.op()?;
        let ctx = Ctx { dump, op };
        match op {
            Op::Fp8GemmNt => {
                let &[m, k] = ctx.dims("a", 2, "[M, K]")? else {
                    unreachable!("rank checked")
                };
                let &[n, kb_] = ctx.dims("b", 2, "[N, K]")? else {
                    unreachable!("rank checked")
                };
                if kb_ != k {
                    return Err(shape_err(
                        "b",
                        format!("[N, K] with K = {k} (a's K)"),
                        &[n, kb_],
                    ));
                }
                cap(m, n)?;
                let kb = k.div_ceil(128);
                let a = Fp8Mat {
                    codes: ctx.e4m3("a", &[m, k], "[M, K]")?,
                    rows: m,
                    k,
                    scales: ctx.scales("sfa", &[], m, kb, "[M, ceil(K/128)]")?,
                    recipe: Fp8Recipe::PerToken,
                };
                let recipe = b_recipe(&ctx, 0, n)?;
                let b = Fp8Mat {
                    codes: ctx.e4m3("b", &[n, k], "[N, K]")?,
                    rows: n,
                    k,
                    scales: ctx.scales(
                        "sfb",
                        &[],
                        scale_rows(recipe, n),
                        kb,
                        "[ceil(N/128) or N, ceil(K/128)]",
                    )?,
                    recipe,
                };
                let c = ctx.c(&[m, n], "[M, N]")?;
                Ok(Self::dense(op, Inner::Fp8Gemm { a, b }, c, m, n))
            }
            Op::Bf16GemmNt => {
                let &[m, k] = ctx.dims("a", 2, "[M, K]")? else {
                    unreachable!("rank checked")
                };
                let n = ctx.dims("b", 2, "[N, K]")?[0];
                cap(m, n)?;
                let ta = ctx.get("a")?;
                ctx.dtype(ta, "a", &[Dtype::BF16])?;
                let tb = ctx.get("b")?;
                ctx.dtype(tb, "b", &[Dtype::BF16])?;
                ctx.expect_shape(tb, "b", &[n, k], "[N, K]")?;
                let c = ctx.c(&[m, n], "[M, N]")?;
                let inner = Inner::Bf16Gemm {
                    k,
                    a: ta.to_bf16(),
                    b: tb.to_bf16(),
                };
                Ok(Self::dense(op, inner, c, m, n))
            }
            Op::Fp8Fp4GemmNt => {
                let &[m, k] = ctx.dims("a", 2, "[M, K]")? else {
                    unreachable!("rank checked")
                };
                if k % 2 != 0 {
                    return Err(shape_err("a", "[M, K] with K even (FP4 B)".into(), &[m, k]));
                }
                let tb = ctx.get("b")?;
                ctx.dtype(tb, "b", &[Dtype::U8, Dtype::F4])?;
                let n = tb.shape().first().copied().unwrap_or(0);
                let want = if tb.dtype() == Dtype::F4 {
                    [n, k]
                } else {
                    [n, k / 2]
                };
                ctx.expect_shape(tb, "b", &want, "[N, K/2] (U8) or [N, K] (F4)")?;
                cap(m, n)?;
                let kb = k.div_ceil(128);
                let a = Fp8Mat {
                    codes: ctx.e4m3("a", &[m, k], "[M, K]")?,
                    rows: m,
                    k,
                    scales: ctx.scales("sfa", &[], m, kb, "[M, ceil(K/128)]")?,
                    recipe: Fp8Recipe::PerToken,
                };
                let group = fp4_group(&ctx, n, k)?;
                let cols = k.div_ceil(group.width());
                let sfb = match ctx.scales("sfb", &[], n, cols, "[N, ceil(K/g)]")? {
                    ScaleData::Ue8m0(v) => v,
                    ScaleData::F32(v) => v
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            ue8m0_code_of(x).ok_or_else(|| {
                                value_err(
                                    "sfb",
                                    format!(
                                        "F32 scale {x} at flat index {i} is not a power of two (FP4 scales are UE8M0)"
                                    ),
                                )
                            })
                        })
                        .collect::<DumpResult<Vec<u8>>>()?,
                };
                let c = ctx.c(&[m, n], "[M, N]")?;
                let inner = Inner::Fp8Fp4Gemm {
                    a,
                    b: tb.data().to_vec(),
                    sfb,
                    group,
                };
                Ok(Self::dense(op, inner, c, m, n))
            }
            Op::MGroupedFp8GemmNtContiguous => {
                let &[m, k] = ctx.dims("a", 2, "[M, K]")? else {
                    unreachable!("rank checked")
                };
                let &[g, n, _] = ctx.dims("b", 3, "[G, N, K]")? else {
                    unreachable!("rank checked")
                };
                cap(m, n)?;
                let kb = k.div_ceil(128);
                let a = Fp8Mat {
                    codes: ctx.e4m3("a", &[m, k], "[M, K]")?,
                    rows: m,
                    k,
                    scales: ctx.scales("sfa", &[], m, kb, "[M, ceil(K/128)]")?,
                    recipe: Fp8Recipe::PerToken,
                };
                let b = split_groups(&ctx, g, n, k)?;
                let layout = ctx.i32s("grouped_layout", &[m], "[M]")?;
                if let Some(i) = layout
                    .iter()
                    .position(|&x| x < -1 || (x >= 0 && x as usize >= g))
                {
                    return Err(value_err(
                        "grouped_layout",
                        format!("row {i} has group {} outside -1..{g}", layout[i]),
                    ));
                }
                let c = ctx.c(&[m, n], "[M, N]")?;
                let inner = Inner::MGroupedContiguous { a, b, layout };
                Ok(Self::dense(op, inner, c, m, n))
            }
            Op::MGroupedFp8GemmNtMasked => {
                let &[g, max_m, k] = ctx.dims("a", 3, "[G, max_m, K]")? else {
                    unreachable!("rank checked")
                };
                let n = ctx.dims("b", 3, "[G, N, K]")?[1];
                let rows = checked_elems("a", &[g, max_m])?;
                cap(rows, n)?;
                let kb = k.div_ceil(128);
                let a = Fp8Mat {
                    codes: ctx.e4m3("a", &[g, max_m, k], "[G, max_m, K]")?,
                    rows,
                    k,
                    scales: ctx.scales("sfa", &[g], max_m, kb, "[G, max_m, ceil(K/128)]")?,
                    recipe: Fp8Recipe::PerToken,
                };
                let b = split_groups(&ctx, g, n, k)?;
                let masked_m = ctx.i32s("masked_m", &[g], "[G]")?;
                if let Some(i) = masked_m.iter().position(|&x| x < 0 || x as usize > max_m) {
                    return Err(value_err(
                        "masked_m",
                        format!("group {i} has {} rows, outside 0..={max_m}", masked_m[i]),
                    ));
                }
                let c = ctx.c(&[g, max_m, n], "[G, max_m, N]")?;
                Ok(Problem {
                    op,
                    inner: Inner::MGroupedMasked { a, b, masked_m },
                    c,
                    rows,
                    cols: n,
                    d_shape: vec![g, max_m, n],
                })
            }
            Op::KGroupedFp8GemmTnContiguous => parse_k_grouped(&ctx),
            Op::Fp8MqaLogits => parse_mqa(&ctx),
            Op::Fp8PagedMqaLogits => parse_paged(&ctx),
        }
    }

    fn dense(op: Op, inner: Inner, c: Option<Vec<f32>>, rows: usize, cols: usize) -> Problem {
        Problem {
            op,
            inner,
            c,
            rows,
            cols,
            d_shape: vec![rows, cols],
        }
    }

    /// The op.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The output `d` as the 2-D `[rows, cols]` it flattens to.
    pub fn out_shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The shape `d` has in the file.
    pub fn d_shape(&self) -> &[usize] {
        &self.d_shape
    }
}

/// The FP4 scale group: metadata `"sfb_gran_k"` ("32" or "128"), else inferred from
/// `sfb`'s last dim when that is unambiguous.
fn fp4_group(ctx: &Ctx, n: usize, k: usize) -> DumpResult<Fp4Group> {
    if let Some(v) = ctx.meta("sfb_gran_k") {
        return match v.trim() {
            "32" => Ok(Fp4Group::G32),
            "128" => Ok(Fp4Group::G128),
            _ => Err(value_err(
                "__metadata__.sfb_gran_k",
                format!("{v:?} is not \"32\" or \"128\""),
            )),
        };
    }
    let t = ctx.get("sfb")?;
    let packed = t.dtype() == Dtype::I32;
    let last = |g: usize| {
        let c = k.div_ceil(g);
        if packed {
            c.div_ceil(4)
        } else {
            c
        }
    };
    let got = t.shape().last().copied();
    let (l32, l128) = (last(32), last(128));
    match got {
        Some(x) if x == l32 && x != l128 => Ok(Fp4Group::G32),
        Some(x) if x == l128 && x != l32 => Ok(Fp4Group::G128),
        Some(x) if x == l32 => Err(value_err(
            "sfb",
            format!(
                "its shape fits both 32- and 128-wide FP4 groups for K = {k}: set __metadata__ \"sfb_gran_k\" to \"32\" or \"128\""
            ),
        )),
        _ => Err(shape_err(
            "sfb",
            format!("[N, ceil(K/32)] = [{n}, {l32}] or [N, ceil(K/128)] = [{n}, {l128}]"),
            t.shape(),
        )),
    }
}

fn parse_k_grouped(ctx: &Ctx) -> DumpResult<Problem> {
    let &[sum_k, m] = ctx.dims("a", 2, "[sum K_g, M]")? else {
        unreachable!("rank checked")
    };
    let n = ctx.dims("b", 2, "[sum K_g, N]")?[1];
    let ks_t = ctx.get("ks")?;
    ctx.dtype(ks_t, "ks", &[Dtype::I32])?;
    if ks_t.shape().len() != 1 || ks_t.shape()[0] == 0 {
        return Err(shape_err("ks", "[G] with G >= 1".into(), ks_t.shape()));
    }
    let ks = ks_t.to_i32();
    let g = ks.len();
    let mut total = 0usize;
    for (i, &x) in ks.iter().enumerate() {
        if x < 0 || x % 128 != 0 {
            return Err(value_err(
                "ks",
                format!("K of group {i} is {x}, not a non-negative multiple of 128"),
            ));
        }
        total += x as usize;
    }
    if total != sum_k {
        return Err(value_err(
            "ks",
            format!("the K_g sum to {total} but `a` has {sum_k} rows"),
        ));
    }
    let rows = checked_elems("d", &[g, m])?;
    cap(rows, n)?;
    let a = ctx.e4m3("a", &[sum_k, m], "[sum K_g, M]")?;
    let b = ctx.e4m3("b", &[sum_k, n], "[sum K_g, N]")?;
    let kbs = sum_k / 128;
    let sfa = ctx.scales("sfa", &[], kbs, m, "[sum K_g / 128, M]")?;
    let sfb = ctx.scales("sfb", &[], kbs, n, "[sum K_g / 128, N]")?;
    // Transpose each group to K-major operands.
    let take = |codes: &[u8], cols: usize, sf: &ScaleData, k0: usize, kg: usize| Fp8Mat {
        codes: (0..cols)
            .flat_map(|r| (k0..k0 + kg).map(move |kk| codes[kk * cols + r]))
            .collect(),
        rows: cols,
        k: kg,
        scales: sf
            .rows(k0 / 128, kg / 128, cols)
            .transpose_cols(kg / 128, cols, 0, cols),
        recipe: Fp8Recipe::PerToken,
    };
    let (mut av, mut bv, mut k0) = (Vec::new(), Vec::new(), 0);
    for &kg in &ks {
        let kg = kg as usize;
        av.push(take(&a, m, &sfa, k0, kg));
        bv.push(take(&b, n, &sfb, k0, kg));
        k0 += kg;
    }
    let c = ctx.c(&[g, m, n], "[G, M, N]")?;
    Ok(Problem {
        op: ctx.op,
        inner: Inner::KGrouped { a: av, b: bv },
        c,
        rows,
        cols: n,
        d_shape: vec![g, m, n],
    })
}

fn parse_mqa(ctx: &Ctx) -> DumpResult<Problem> {
    let &[s, h, d] = ctx.dims("q", 3, "[S, H, D]")? else {
        unreachable!("rank checked")
    };
    let s_kv = ctx.dims("kv", 2, "[S_kv, D]")?[0];
    if h == 0 || d == 0 {
        return Err(shape_err(
            "q",
            "[S, H, D] with H, D >= 1".into(),
            &[s, h, d],
        ));
    }
    cap(s, s_kv)?;
    let q = ctx.e4m3("q", &[s, h, d], "[S, H, D]")?;
    let kv = ctx.e4m3("kv", &[s_kv, d], "[S_kv, D]")?;
    let kv_scales = ctx.f32s("kv_scales", &[s_kv], "[S_kv]")?;
    let weights = ctx.f32s("weights", &[s, h], "[S, H]")?;
    let ks = ctx.i32s("cu_seqlen_ks", &[s], "[S]")?;
    let ke = ctx.i32s("cu_seqlen_ke", &[s], "[S]")?;
    for (i, (&a, &b)) in ks.iter().zip(&ke).enumerate() {
        if a < 0 || b < a {
            return Err(value_err(
                "cu_seqlen_ks",
                format!("query {i} has the key range [{a}, {b})"),
            ));
        }
    }
    Ok(Problem {
        op: ctx.op,
        inner: Inner::Mqa(MqaData {
            q,
            heads: h,
            dim: d,
            weights,
            kind: MqaKind::Dense {
                seq_len: s,
                kv,
                kv_scales,
                ks,
                ke,
            },
        }),
        c: None,
        rows: s,
        cols: s_kv,
        d_shape: vec![s, s_kv],
    })
}

fn parse_paged(ctx: &Ctx) -> DumpResult<Problem> {
    let &[batch, next_n, h, d] = ctx.dims("q", 4, "[B, next_n, H, D]")? else {
        unreachable!("rank checked")
    };
    if h == 0 || d == 0 {
        return Err(shape_err(
            "q",
            "[B, next_n, H, D] with H, D >= 1".into(),
            &[batch, next_n, h, d],
        ));
    }
    let &[num_blocks, block_kv, one, row] =
        ctx.dims("kv_cache", 4, "[num_blocks, block_kv, 1, D + 4]")?
    else {
        unreachable!("rank checked")
    };
    let tc = ctx.get("kv_cache")?;
    ctx.dtype(tc, "kv_cache", &[Dtype::U8])?;
    if one != 1 || row != d + 4 || block_kv == 0 {
        return Err(shape_err(
            "kv_cache",
            format!("[num_blocks, block_kv >= 1, 1, D + 4 = {}]", d + 4),
            tc.shape(),
        ));
    }
    let &[b2, max_blocks] = ctx.dims("block_table", 2, "[B, max_blocks]")? else {
        unreachable!("rank checked")
    };
    if b2 != batch {
        return Err(shape_err(
            "block_table",
            format!("[B = {batch}, max_blocks]"),
            &[b2, max_blocks],
        ));
    }
    let tokens = checked_elems("q", &[batch, next_n])?;
    let cols = checked_elems("d", &[max_blocks, block_kv])?;
    cap(tokens, cols)?;
    let q = ctx.e4m3("q", &[batch, next_n, h, d], "[B, next_n, H, D]")?;
    let weights = ctx.f32s("weights", &[tokens, h], "[B * next_n, H]")?;
    let block_table = ctx.i32s("block_table", &[batch, max_blocks], "[B, max_blocks]")?;
    let tl = ctx.get("context_lens")?;
    ctx.dtype(tl, "context_lens", &[Dtype::I32])?;
    let per_token_lens = match tl.shape() {
        [x] if *x == batch => false,
        [x, y] if *x == batch && *y == next_n => true,
        other => {
            return Err(shape_err(
                "context_lens",
                format!("[B] = [{batch}] or [B, next_n] = [{batch}, {next_n}]"),
                other,
            ))
        }
    };
    Ok(Problem {
        op: ctx.op,
        inner: Inner::Mqa(MqaData {
            q,
            heads: h,
            dim: d,
            weights,
            kind: MqaKind::Paged {
                batch,
                next_n,
                kv_cache: tc.data().to_vec(),
                num_blocks,
                block_kv,
                context_lens: tl.to_i32(),
                per_token_lens,
                block_table,
                max_blocks,
            },
        }),
        c: None,
        rows: tokens,
        cols,
        d_shape: vec![tokens, cols],
    })
}
