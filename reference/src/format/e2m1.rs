//! FP4 E2M1: 1 sign, 2 exponent (bias 1), 1 mantissa bit, in the low nibble of a byte.
//!
//! OCP MX v1.0 §5.3.3: values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, no infinities, no NaN.
//! Every E2M1 value times 2 is an integer, and every E2M1 value is exactly an E4M3
//! value (DESIGN §3.1). Packed storage (two per byte, low nibble = even index) lives in
//! [`crate::quant`].

use super::minifloat::{round_magnitude, split_sign, value_of_code, Rounded, Spec};

pub(crate) const SPEC: Spec = Spec {
    man_bits: 1,
    bias: 1,
    max: 6.0,
    max_code: 0x7,
};

/// Largest finite magnitude, 6.
pub const MAX: f32 = 6.0;

/// Decodes the low nibble of `bits` (the high nibble is ignored): bit 3 is the sign.
pub fn decode(bits: u8) -> f32 {
    let v = value_of_code(&SPEC, (bits & 0x7) as u32) as f32;
    if bits & 0x8 != 0 {
        -v
    } else {
        v
    }
}

/// Encodes with round-to-nearest-even; E2M1 has no NaN or infinity, so overflow and
/// ±inf saturate to ±6 (`0x7 | sign`) and NaN becomes `0x7` (+6), as NVIDIA's
/// `cuda_fp4.h` `__nv_cvt_float_to_fp4(.., __NV_E2M1, cudaRoundNearest)`. The high
/// nibble of the result is zero. Ties: 0.25 → 0, 0.75 → 1, 1.25 → 1, 1.75 → 2,
/// 2.5 → 2, 3.5 → 4, 5 → 4.
pub fn encode(x: f32) -> u8 {
    if x.is_nan() {
        return SPEC.max_code as u8;
    }
    let sign = if x.is_sign_negative() { 0x8 } else { 0 };
    if x.is_infinite() {
        return SPEC.max_code as u8 | sign;
    }
    let (_, a) = split_sign(x as f64);
    match round_magnitude(&SPEC, a, 0.0) {
        Rounded::Finite(code) => code as u8 | sign,
        Rounded::Overflow => SPEC.max_code as u8 | sign,
    }
}

/// As PTX `cvt.rn.satfinite.e2m1x2.f32` (sm_100+; PTX ISA §9.7.9.21): identical to
/// [`encode`], since E2M1 always saturates; NaN → `0x7`.
pub fn encode_satfinite(x: f32) -> u8 {
    encode(x)
}
