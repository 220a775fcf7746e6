//! Scale-factor layouts the SM90 kernels read: DeepGEMM's TMA-aligned MN-major layout
//! (`get_tma_aligned_size`, `get_mn_major_tma_aligned_tensor`,
//! `get_mn_major_tma_aligned_packed_ue8m0_tensor`, as used by
//! `transform_sf_into_required_layout`).
//!
//! On SM90 with FP32 scales, `transform_sf_into_required_layout` puts A's per-token
//! scales `[M, ceil(K/128)]` (and B's per-token scales in the 1D1D recipe) in this
//! layout; B's 128×128 block scales are used as they are. Packed UE8M0 scales (four per
//! i32 along K) use the same layout over i32 words.

use super::pack::{pack_ue8m0, ue8m0_codes_of, unpack_ue8m0};
use crate::error::{checked_len, len_error};
use crate::format::ue8m0;
use crate::{Error, Result};

/// TMA's global-address alignment, 16 bytes: each stored column starts at a multiple
/// of it.
pub const TMA_ALIGNMENT_BYTES: usize = 16;

/// Elements per 16 bytes; `T` must be 1, 2, 4, 8 or 16 bytes (checked at compile time).
const fn align_elems<T>() -> usize {
    let size = std::mem::size_of::<T>();
    assert!(
        size != 0 && TMA_ALIGNMENT_BYTES % size == 0,
        "element size must divide 16 bytes"
    );
    TMA_ALIGNMENT_BYTES / size
}

/// The leading dimension (in elements of `T`) of the TMA-aligned MN-major layout:
/// `mn` rounded up to a multiple of `16 / size_of::<T>()` (DeepGEMM's
/// `get_tma_aligned_size(mn, element_size)`); 4 for f32 and i32, so `ld(7) = 8`,
/// `ld(33) = 36`, `ld(128) = 128`, `ld(129) = 132`, `ld(0) = 0`.
///
/// `T` must be 1, 2, 4, 8 or 16 bytes (a compile-time error otherwise, like DeepGEMM's
/// assertion). For an `mn` so large that the rounded value would exceed `usize`, the
/// result is the largest multiple of the alignment (no buffer can be that long, so the
/// functions that take buffers fail their length checks instead of panicking).
pub fn tma_aligned_ld<T>(mn: usize) -> usize {
    let a = const { align_elems::<T>() };
    mn.div_ceil(a).min(usize::MAX / a) * a
}

/// `groups * ld * kb`, or a shape error.
fn aligned_len<T>(tensor: &'static str, groups: usize, mn: usize, kb: usize) -> Result<usize> {
    let ld = tma_aligned_ld::<T>(mn);
    groups
        .checked_mul(ld)
        .and_then(|v| v.checked_mul(kb))
        .filter(|_| ld >= mn)
        .ok_or_else(|| Error::Shape {
            tensor,
            expected: "a shape whose TMA-aligned size fits in usize".into(),
            got: format!("[{groups}, {mn}, {kb}]"),
        })
}

/// Converts row-major scales to the TMA-aligned MN-major layout (DeepGEMM's
/// `get_mn_major_tma_aligned_tensor`).
///
/// - `sf`: `[groups, mn, kb]` row-major (`groups = 1` for a 2-D tensor such as A's
///   scales `[M, ceil(K/128)]`); `T` is f32 for FP32 scales or i32 for packed UE8M0.
/// - Returns `groups * kb * ld` elements with `ld = tma_aligned_ld::<T>(mn)`: element
///   `(b, i, j)` at `b*ld*kb + j*ld + i` (each column of `mn` scales contiguous and
///   starting 16-byte aligned); padding entries (`i >= mn`) are `T::default()` (0),
///   where DeepGEMM leaves them uninitialized.
///
/// ```text
/// logical [mn = 5, kb = 3], f32, ld = 8        stored (index = j*ld + i)
///   s00 s01 s02                                  0: s00 s10 s20 s30 s40  0  0  0   column j = 0
///   s10 s11 s12                                  8: s01 s11 s21 s31 s41  0  0  0   column j = 1
///   s20 s21 s22                                 16: s02 s12 s22 s32 s42  0  0  0   column j = 2
///   s30 s31 s32                                 (a next group b = 1 starts at 24)
///   s40 s41 s42
/// ```
///
/// Errors: [`Error::Shape`] (`"sf"`) when `sf.len() != groups * mn * kb` or the aligned
/// size overflows `usize`.
pub fn to_tma_aligned_mn_major<T: Copy + Default>(
    sf: &[T],
    groups: usize,
    mn: usize,
    kb: usize,
) -> Result<Vec<T>> {
    let per = checked_len("sf", &[mn, kb])?;
    let n = checked_len("sf", &[groups, per])?;
    if sf.len() != n {
        return Err(len_error(
            "sf",
            format!("[{groups}, {mn}, {kb}]"),
            n,
            sf.len(),
        ));
    }
    let total = aligned_len::<T>("sf", groups, mn, kb)?;
    let ld = tma_aligned_ld::<T>(mn);
    let mut out = vec![T::default(); total];
    if n == 0 {
        return Ok(out);
    }
    for (b, src) in sf.chunks_exact(per).enumerate() {
        let dst = &mut out[b * ld * kb..(b + 1) * ld * kb];
        for (i, row) in src.chunks_exact(kb).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                dst[j * ld + i] = v;
            }
        }
    }
    Ok(out)
}

/// Converts scales in the TMA-aligned MN-major layout back to row-major (the inverse of
/// [`to_tma_aligned_mn_major`]; see its docs for the layout).
///
/// - `data`: at least `groups * kb * ld` elements, `ld = tma_aligned_ld::<T>(mn)`,
///   element `(b, i, j)` at `b*ld*kb + j*ld + i`; padding entries and anything past the
///   last group are ignored.
/// - Returns `[groups, mn, kb]` row-major.
///
/// Errors: [`Error::Shape`] (`"data"`) when `data` is shorter than `groups * kb * ld`
/// or that size overflows `usize`.
pub fn from_tma_aligned_mn_major<T: Copy + Default>(
    data: &[T],
    groups: usize,
    mn: usize,
    kb: usize,
) -> Result<Vec<T>> {
    let total = aligned_len::<T>("data", groups, mn, kb)?;
    let ld = tma_aligned_ld::<T>(mn);
    if data.len() < total {
        return Err(Error::Shape {
            tensor: "data",
            expected: format!(
                "at least {total} elements ([{groups}, {kb}, ld = {ld}] for logical [{groups}, {mn}, {kb}])"
            ),
            got: format!("{} elements", data.len()),
        });
    }
    if total == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(groups * mn * kb);
    for b in 0..groups {
        let src = &data[b * ld * kb..(b + 1) * ld * kb];
        for i in 0..mn {
            out.extend((0..kb).map(|j| src[j * ld + i]));
        }
    }
    Ok(out)
}

/// Power-of-two f32 scales to DeepGEMM's packed-UE8M0, TMA-aligned MN-major layout
/// (`get_mn_major_tma_aligned_packed_ue8m0_tensor`): [`ue8m0_codes_of`], then
/// [`pack_ue8m0`] along `kb` (four codes per i32, little-endian, zero padding), then
/// [`to_tma_aligned_mn_major`] over the i32 words.
///
/// - `scales`: f32 `[groups, mn, kb]` row-major, each an exact power of two in
///   `2^-127..=2^127` (e.g. the scales of a [`super::ScaleRound::Ue8m0`] cast).
/// - Returns i32, logical `[groups, mn, ceil(kb/4)]` in the TMA-aligned MN-major layout
///   with `ld = tma_aligned_ld::<i32>(mn)`: `groups * ceil(kb/4) * ld` words, word
///   `(b, i, w)` at `b*ld*ceil(kb/4) + w*ld + i`.
///
/// Errors: [`Error::Shape`] (`"scales"`) when `scales.len() != groups * mn * kb`;
/// [`Error::Scale`] (`"scales"`) for a scale that is not a UE8M0 value.
pub fn to_tma_aligned_packed_ue8m0(
    scales: &[f32],
    groups: usize,
    mn: usize,
    kb: usize,
) -> Result<Vec<i32>> {
    let rows = checked_len("scales", &[groups, mn])?;
    let n = checked_len("scales", &[rows, kb])?;
    if scales.len() != n {
        return Err(len_error(
            "scales",
            format!("[{groups}, {mn}, {kb}]"),
            n,
            scales.len(),
        ));
    }
    let codes = ue8m0_codes_of(scales)?;
    let packed = pack_ue8m0(&codes, rows, kb)?;
    to_tma_aligned_mn_major(&packed, groups, mn, kb.div_ceil(4))
}

/// The inverse of [`to_tma_aligned_packed_ue8m0`]: returns the f32 scales
/// `[groups, mn, kb]` row-major (`ue8m0::decode` of each code).
///
/// - `data`: at least `groups * ceil(kb/4) * tma_aligned_ld::<i32>(mn)` words.
///
/// Errors: [`Error::Shape`] (`"data"`) when `data` is too short; [`Error::Argument`]
/// (`"packed"`) when a word's padding bytes past `kb` are not 0; [`Error::Scale`]
/// (`"data"`) when a code is `0xFF` (UE8M0 NaN).
pub fn from_tma_aligned_packed_ue8m0(
    data: &[i32],
    groups: usize,
    mn: usize,
    kb: usize,
) -> Result<Vec<f32>> {
    let words = kb.div_ceil(4);
    let packed = from_tma_aligned_mn_major(data, groups, mn, words)?;
    let rows = checked_len("data", &[groups, mn])?;
    let codes = unpack_ue8m0(&packed, rows, kb)?;
    codes
        .iter()
        .enumerate()
        .map(|(index, &c)| {
            if c == ue8m0::NAN {
                Err(Error::Scale {
                    tensor: "data",
                    index,
                    value: f32::NAN,
                    reason: "UE8M0 code 0xFF is NaN",
                })
            } else {
                Ok(ue8m0::decode(c))
            }
        })
        .collect()
}
