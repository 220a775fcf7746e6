//! FP8 E4M3 ("fn" variant): 1 sign, 4 exponent (bias 7), 3 mantissa bits.
//!
//! OCP OFP8 v1.0 §5.3.1 / Table 1: max finite 448 (S.1111.110), min normal 2^-6, min
//! subnormal 2^-9, NaN = S.1111.111, no infinities. Every E4M3 value times 2^9 is an
//! integer of magnitude at most 229,376 (DESIGN §3.2).

use super::minifloat::{round_magnitude, split_sign, value_of_code, Rounded, Spec};

pub(crate) const SPEC: Spec = Spec {
    man_bits: 3,
    bias: 7,
    max: 448.0,
    max_code: 0x7E,
};

/// Largest finite magnitude, 448.
pub const MAX: f32 = 448.0;
/// Smallest positive subnormal, 2^-9.
pub const MIN_SUBNORMAL: f32 = 1.0 / 512.0;
/// Smallest positive normal, 2^-6.
pub const MIN_NORMAL: f32 = 1.0 / 64.0;
/// The NaN code with the sign bit clear (`0xFF` is the negative one).
pub const NAN: u8 = 0x7F;

/// Decodes an E4M3 code: `0x7F`/`0xFF` → NaN, everything else finite (signed zero kept).
pub fn decode(bits: u8) -> f32 {
    let mag = (bits & 0x7F) as u32;
    let v = if mag == 0x7F {
        f64::NAN
    } else {
        value_of_code(&SPEC, mag)
    };
    let v = v as f32;
    if bits & 0x80 != 0 {
        -v
    } else {
        v
    }
}

fn encode_with(x: f32, overflow: u8) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return NAN | sign;
    }
    if x.is_infinite() {
        return overflow | sign;
    }
    let (_, a) = split_sign(x as f64);
    match round_magnitude(&SPEC, a, 0.0) {
        Rounded::Finite(code) => code as u8 | sign,
        Rounded::Overflow => overflow | sign,
    }
}

/// Encodes with round-to-nearest-even and the non-saturating overflow of `ml_dtypes`
/// (`float8_e4m3fn`): |x| > 464 (which would round to the non-existent 480), ±inf and
/// NaN become NaN (`0x7F` with the sign bit of `x`); 464 itself rounds to 448.
/// Subnormals and signed zero are exact.
pub fn encode(x: f32) -> u8 {
    encode_with(x, NAN)
}

/// Encodes as PTX `cvt.rn.satfinite.e4m3x2.f32` (PTX ISA §9.7.9.21): round to nearest
/// even, overflow and ±inf saturate to ±448 (`0x7E | sign`), NaN → `0x7F | sign`.
pub fn encode_satfinite(x: f32) -> u8 {
    encode_with(x, SPEC.max_code as u8)
}
