//! FP8 E5M2: 1 sign, 5 exponent (bias 15), 2 mantissa bits.
//!
//! OCP OFP8 v1.0 §5.3.2 / Table 1: max finite 57344 (S.11110.11), min normal 2^-14, min
//! subnormal 2^-16, ±inf = S.11111.00, NaN = S.11111.{01,10,11}.

use super::minifloat::{round_magnitude, split_sign, value_of_code, Rounded, Spec};

pub(crate) const SPEC: Spec = Spec {
    man_bits: 2,
    bias: 15,
    max: 57344.0,
    max_code: 0x7B,
};

/// Largest finite magnitude, 57344.
pub const MAX: f32 = 57344.0;
/// Smallest positive subnormal, 2^-16.
pub const MIN_SUBNORMAL: f32 = 1.0 / 65536.0;
/// Smallest positive normal, 2^-14.
pub const MIN_NORMAL: f32 = 1.0 / 16384.0;
/// Positive infinity's code (`0xFC` is negative infinity).
pub const INFINITY: u8 = 0x7C;
/// The NaN code `encode` produces, sign bit clear.
pub const NAN: u8 = 0x7E;

/// Decodes an E5M2 code: exponent field 31 with mantissa 0 → ±inf, otherwise NaN;
/// everything else finite (signed zero kept).
pub fn decode(bits: u8) -> f32 {
    let mag = (bits & 0x7F) as u32;
    let v = if mag == INFINITY as u32 {
        f64::INFINITY
    } else if mag > INFINITY as u32 {
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

/// Encodes with round-to-nearest-even and IEEE-style overflow (`ml_dtypes.float8_e5m2`):
/// values that round beyond 57344 (|x| >= 61440) and ±inf → ±inf (`0x7C | sign`), NaN →
/// `0x7E | sign`. Subnormals and signed zero are exact.
pub fn encode(x: f32) -> u8 {
    encode_with(x, INFINITY)
}

/// Encodes as PTX `cvt.rn.satfinite.e5m2x2.f32` (PTX ISA §9.7.9.21): overflow and ±inf
/// saturate to ±57344 (`0x7B | sign`), NaN → `0x7E | sign`.
pub fn encode_satfinite(x: f32) -> u8 {
    encode_with(x, SPEC.max_code as u8)
}
