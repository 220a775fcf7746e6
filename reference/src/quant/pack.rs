//! FP4 (E2M1) packing two per byte and UE8M0 packing four per i32.
//!
//! Sources: OCP MX v1.0 §5.3.3 (E2M1) and §5.4.1 (E8M0); DeepGEMM's
//! `deep_gemm/utils/math.py` (`per_token_cast_to_fp4`'s packing, `transpose_packed_fp4`,
//! `pack_ue8m0_to_int`, `unpack_ue8m0_from_int`).

use crate::error::{checked_len, expect_len, len_error};
use crate::{Error, Result};

fn check_even(name: &'static str, value: usize) -> Result<()> {
    if value % 2 == 0 {
        Ok(())
    } else {
        Err(Error::Shape {
            tensor: name,
            expected: "an even number (packed FP4 holds two codes per byte)".into(),
            got: value.to_string(),
        })
    }
}

/// Packs E2M1 codes two per byte along the columns.
///
/// - `codes`: u8 `[rows, cols]` row-major, one E2M1 code per byte in the low nibble.
/// - Returns u8 `[rows, cols / 2]` row-major: byte `(i, j)` holds column `2j` in its low
///   nibble and column `2j + 1` in its high nibble (so `[1, 2]` packs to `0x21`), as
///   DeepGEMM's `per_token_cast_to_fp4` and the OCP MX / PTX `e2m1x2` layout.
///
/// Errors: [`Error::Shape`] (`"cols"`) when `cols` is odd; [`Error::Shape`] (`"codes"`)
/// when `codes.len() != rows * cols`; [`Error::Argument`] (`"codes"`) for a code above
/// `0xF` (its high nibble set: a caller bug, never silently dropped).
pub fn pack_e2m1(codes: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_even("cols", cols)?;
    expect_len("codes", codes.len(), &[rows, cols])?;
    if let Some(i) = codes.iter().position(|&c| c > 0xF) {
        return Err(Error::Argument {
            name: "codes",
            reason: format!(
                "code {:#04x} at [{}, {}] has its high nibble set (E2M1 codes are one per byte, low nibble)",
                codes[i],
                i / cols,
                i % cols
            ),
        });
    }
    Ok(codes.chunks_exact(2).map(|p| p[0] | (p[1] << 4)).collect())
}

/// Unpacks E2M1 codes packed two per byte along the columns (the inverse of
/// [`pack_e2m1`]).
///
/// - `packed`: u8 `[rows, cols / 2]` row-major, low nibble = even column.
/// - Returns u8 `[rows, cols]` row-major, one code per byte in the low nibble.
///
/// Errors: [`Error::Shape`] (`"cols"`) when `cols` is odd; [`Error::Shape`]
/// (`"packed"`) when `packed.len() != rows * cols / 2`.
pub fn unpack_e2m1(packed: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_even("cols", cols)?;
    let n = checked_len("packed", &[rows, cols / 2])?;
    if packed.len() != n {
        return Err(len_error(
            "packed",
            format!("[{rows}, {}]", cols / 2),
            n,
            packed.len(),
        ));
    }
    Ok(packed.iter().flat_map(|&b| [b & 0xF, b >> 4]).collect())
}

/// Transposes a packed E2M1 matrix, DeepGEMM's `transpose_packed_fp4`.
///
/// - `packed`: u8, logical `[rows, cols]` packed along the columns, i.e. stored
///   `[rows, cols / 2]` row-major (low nibble = even column).
/// - Returns u8, logical `[cols, rows]` packed along its columns (the original rows),
///   stored `[cols, rows / 2]` row-major: byte `(j, i)` holds logical elements
///   `(2i, j)` (low nibble) and `(2i + 1, j)` (high nibble) of the input.
///
/// Errors: [`Error::Shape`] (`"rows"` or `"cols"`) when either is odd;
/// [`Error::Shape`] (`"packed"`) when `packed.len() != rows * cols / 2`.
pub fn transpose_packed_e2m1(packed: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_even("rows", rows)?;
    let codes = unpack_e2m1(packed, rows, cols)?;
    let mut out = vec![0u8; packed.len()];
    if out.is_empty() {
        return Ok(out);
    }
    for (j, out_row) in out.chunks_exact_mut(rows / 2).enumerate() {
        for (p, o) in out_row.iter_mut().enumerate() {
            let lo = codes[2 * p * cols + j];
            let hi = codes[(2 * p + 1) * cols + j];
            *o = lo | (hi << 4);
        }
    }
    Ok(out)
}

/// The UE8M0 code of a power-of-two scale, or `None` when `x` is not exactly one of
/// UE8M0's values `2^-127..=2^127` (code `c` ↔ `2^(c - 127)`, OCP MX v1.0 §5.4.1).
///
/// `x` is f32: for a normal power of two the code is its biased exponent (1..=254);
/// the f32 subnormal `2^-127` is code 0. Zero, negatives, other subnormals, non-powers
/// of two, ±inf and NaN give `None`. This is DeepGEMM's `pack_ue8m0_to_int` bit shift
/// (`bits >> 23`), with its assertion (mantissa zero) made a check.
pub fn ue8m0_code_of(x: f32) -> Option<u8> {
    let bits = x.to_bits();
    let exp = bits >> 23; // sign bit included: negatives give exp >= 256
    let man = bits & 0x7F_FFFF;
    if (1..=254).contains(&exp) && man == 0 {
        Some(exp as u8)
    } else if bits == 0x0040_0000 {
        Some(0) // 2^-127, an f32 subnormal
    } else {
        None
    }
}

/// Converts power-of-two f32 scales to UE8M0 codes, element by element (any shape,
/// flat): `ue8m0::decode(codes[i]) == scales[i]`.
///
/// Errors: [`Error::Scale`] (`"scales"`, flat index, value) for the first scale that is
/// not an exact power of two in `2^-127..=2^127` (see [`ue8m0_code_of`]).
pub fn ue8m0_codes_of(scales: &[f32]) -> Result<Vec<u8>> {
    scales
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            ue8m0_code_of(value).ok_or(Error::Scale {
                tensor: "scales",
                index,
                value,
                reason: "not an exact power of two in UE8M0's range 2^-127..=2^127",
            })
        })
        .collect()
}

/// Packs UE8M0 codes four per i32 along the columns, little-endian, as DeepGEMM's
/// `pack_ue8m0_to_int` (which views four consecutive `uint8` as one `int`).
///
/// - `codes`: u8 `[rows, cols]` row-major UE8M0 codes.
/// - Returns i32 `[rows, ceil(cols / 4)]` row-major: word `(i, j)` holds the code of
///   column `4j + t` in bits `8t..8t + 8` (`t = 0..4`, i.e. byte `t` of its
///   little-endian representation); the padding bytes past `cols` are 0.
///
/// Errors: [`Error::Shape`] (`"codes"`) when `codes.len() != rows * cols`.
pub fn pack_ue8m0(codes: &[u8], rows: usize, cols: usize) -> Result<Vec<i32>> {
    let n = expect_len("codes", codes.len(), &[rows, cols])?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(rows * cols.div_ceil(4));
    for row in codes.chunks_exact(cols) {
        for quad in row.chunks(4) {
            let mut b = [0u8; 4];
            b[..quad.len()].copy_from_slice(quad);
            out.push(i32::from_le_bytes(b));
        }
    }
    Ok(out)
}

/// Unpacks UE8M0 codes packed four per i32 (the inverse of [`pack_ue8m0`], DeepGEMM's
/// `unpack_ue8m0_from_int` before its shift back to f32).
///
/// - `packed`: i32 `[rows, ceil(cols / 4)]` row-major, little-endian bytes.
/// - Returns u8 `[rows, cols]` row-major UE8M0 codes (decode with
///   [`crate::format::ue8m0::decode`]).
///
/// Errors: [`Error::Shape`] (`"packed"`) when `packed.len() != rows * ceil(cols / 4)`;
/// [`Error::Argument`] (`"packed"`) when a padding byte (past `cols` in a row's last
/// word) is not 0, which means the caller's `cols` does not match the packing.
pub fn unpack_ue8m0(packed: &[i32], rows: usize, cols: usize) -> Result<Vec<u8>> {
    let words = cols.div_ceil(4);
    expect_len("packed", packed.len(), &[rows, words])?;
    let mut out = Vec::with_capacity(rows * cols);
    for (w, word) in packed.iter().enumerate() {
        let bytes = word.to_le_bytes();
        let (i, j) = (w / words, w % words);
        let used = (cols - 4 * j).min(4);
        if bytes[used..].iter().any(|&b| b != 0) {
            return Err(Error::Argument {
                name: "packed",
                reason: format!(
                    "word [{i}, {j}] = {word:#010x} has non-zero padding bytes past column {cols}"
                ),
            });
        }
        out.extend_from_slice(&bytes[..used]);
    }
    Ok(out)
}
