//! UE8M0 (E8M0): an unsigned 8-bit power-of-two scale, `2^(code - 127)`.
//!
//! OCP MX v1.0 §5.4.1: bias 127, codes 0..=254 are 2^-127..2^127, `0xFF` is NaN; no
//! zero, no sign. Two encoders: [`encode`] (nearest, ties up, as
//! `ml_dtypes.float8_e8m0fnu`) and [`encode_ceil`] (DeepGEMM's `ceil_to_ue8m0`, which
//! rounds a quantization scale up so `x / scale` never overflows).

/// The NaN code.
pub const NAN: u8 = 0xFF;
/// The bias: code `c` stands for `2^(c - BIAS)`.
pub const BIAS: i32 = 127;

/// Decodes: `0xFF` → NaN, otherwise `2^(code - 127)`; code 0 is 2^-127 (an f32
/// subnormal), not zero.
pub fn decode(bits: u8) -> f32 {
    if bits == NAN {
        f32::NAN
    } else {
        super::minifloat::pow2(bits as i32 - BIAS) as f32
    }
}

/// Nearest power of two, ties upward (`ml_dtypes.float8_e8m0fnu`): for a positive normal
/// f32 `x = 1.m·2^e`, the code is `e + 127`, plus one when `1.m >= 1.5`; values
/// `>= 1.5·2^127` give `0xFF` (NaN). `x <= 0` (either zero), ±inf and NaN give `0xFF`;
/// positive f32 subnormals give `0x00` (2^-127), as the issue specifies. This deviates
/// from `ml_dtypes` 0.6 for subnormals in `(2^-127, 2^-126)`, which it rounds to `0x01`
/// (2^-126); no quantization recipe produces such a scale.
pub fn encode(x: f32) -> u8 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return NAN;
    }
    let bits = x.to_bits();
    let exp = (bits >> 23) & 0xFF;
    if exp == 0 {
        return 0;
    }
    let round_up = (bits >> 22) & 1; // the mantissa is >= 0.5
    let code = exp + round_up;
    if code >= 0xFF {
        NAN
    } else {
        code as u8
    }
}

/// DeepGEMM's `ceil_to_ue8m0` on the bits of `|x|`: biased exponent plus one when the
/// mantissa is non-zero, clamped to `[1, 254]`, for every input including zero
/// (→ 1, i.e. 2^-126), subnormals (→ 1), ±inf (→ 254) and NaN (→ 254). For finite
/// normal `x` the result is the smallest power of two `>= |x|`.
pub fn encode_ceil(x: f32) -> u8 {
    let bits = x.to_bits() & 0x7FFF_FFFF;
    let exp = (bits >> 23) as i32;
    let man = bits & 0x7F_FFFF;
    (exp + (man != 0) as i32).clamp(1, 254) as u8
}
