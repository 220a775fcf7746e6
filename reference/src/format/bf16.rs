//! Correctly rounded conversions to BF16 (1 sign, 8 exponent, 7 mantissa bits; storage
//! type [`half::bf16`]).
//!
//! `half::bf16::from_f64` is not correctly rounded (it truncates the low f64 mantissa
//! bits before rounding) and `ml_dtypes` double-rounds f64 through f32, so the
//! reference's outputs go through [`from_f64`] instead (DESIGN §3.1).

use super::minifloat::{round_magnitude, split_sign, Rounded, Spec};
use half::bf16;

const SPEC: Spec = Spec {
    man_bits: 7,
    bias: 127,
    max: 3.3895313892515355e38, // (2 - 2^-7) * 2^127
    max_code: 0x7F7F,
};

/// The correctly rounded (round to nearest, ties to even) BF16 of `x`: overflow gives
/// ±inf, NaN gives the quiet NaN `0x7FC0` with the sign of `x`, signed zero and BF16
/// subnormals exact.
pub fn from_f64(x: f64) -> bf16 {
    from_f64_sticky(x, 0.0)
}

/// The correctly rounded BF16 of the exact value `hi + lo`, where `lo` is a remainder
/// with `|lo| <= ulp(hi)/2` (a non-overlapping double-double from an exact sum); with
/// `lo = 0` it is [`from_f64`].
pub fn from_f64_sticky(hi: f64, lo: f64) -> bf16 {
    let sign: u16 = if hi.is_sign_negative() { 0x8000 } else { 0 };
    if hi.is_nan() {
        return bf16::from_bits(0x7FC0 | sign);
    }
    if hi.is_infinite() {
        return bf16::from_bits(0x7F80 | sign);
    }
    let (neg, a) = split_sign(hi);
    let sticky = if neg { -lo } else { lo };
    match round_magnitude(&SPEC, a, sticky) {
        Rounded::Finite(code) => bf16::from_bits(code as u16 | sign),
        Rounded::Overflow => bf16::from_bits(0x7F80 | sign),
    }
}

/// The correctly rounded BF16 of an f32 (identical to `half::bf16::from_f32` for finite
/// inputs; NaN gives `0x7FC0 | sign`).
pub fn from_f32(x: f32) -> bf16 {
    from_f64(x as f64)
}
