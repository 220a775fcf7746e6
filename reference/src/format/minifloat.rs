//! One generic, exact round-to-nearest-even codec for sign/exponent/mantissa formats.
//!
//! Every format here (E4M3, E5M2, E2M1, BF16, and f32 itself) is described by a
//! [`Spec`]; rounding is done on f64, where scaling by a power of two and
//! `round_ties_even` are exact for every input of these formats.

/// A binary floating-point format with a sign bit, a biased exponent and `man_bits`
/// stored mantissa bits (the exponent width only shows in `max`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub man_bits: u32,
    pub bias: i32,
    /// Largest finite magnitude.
    pub max: f64,
    /// Encoding of the largest finite magnitude (sign bit clear).
    pub max_code: u32,
}

impl Spec {
    /// Exponent of the smallest normal number, `1 - bias`.
    const fn emin(&self) -> i32 {
        1 - self.bias
    }
}

/// Result of rounding a magnitude to a format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Rounded {
    /// Finite, with its code (sign bit clear).
    Finite(u32),
    /// Larger than the largest finite value after rounding to nearest even, i.e. it
    /// would round to the (possibly non-existent) next binade step above `max`.
    Overflow,
}

/// `2^e` as f64, exact for -1074 <= e <= 1023.
pub(crate) fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// floor(log2(a)) for finite a > 0 (exact, from the bits).
fn ilog2(a: f64) -> i32 {
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7FF) as i32;
    if exp == 0 {
        // f64 subnormal: value = mantissa * 2^-1074
        let man = bits & ((1u64 << 52) - 1);
        63 - man.leading_zeros() as i32 - 1074
    } else {
        exp - 1023
    }
}

/// Rounds the magnitude `a` (finite, >= 0) to `spec` with round-to-nearest-even.
///
/// When `sticky` is non-zero, `a` stands for `a + sticky·ε` with ε tiny (below half an
/// f64 ulp of `a`): the sign of `sticky` breaks exact ties (used to round a
/// non-overlapping double-double correctly).
pub(crate) fn round_magnitude(spec: &Spec, a: f64, sticky: f64) -> Rounded {
    debug_assert!(a >= 0.0 && a.is_finite());
    if a == 0.0 {
        return Rounded::Finite(0);
    }
    // Quantum (ulp) of the binade that contains `a`, never below the subnormal ulp.
    let e = ilog2(a).max(spec.emin());
    let qexp = e - spec.man_bits as i32;
    let scaled = a * pow2(-qexp); // exact: power-of-two scaling of a normal result
    let mut n = scaled.round_ties_even();
    if (scaled - scaled.floor()) == 0.5 && sticky != 0.0 {
        // An exact tie in `a`; the true value lies just above or below it.
        n = if sticky > 0.0 {
            scaled.ceil()
        } else {
            scaled.floor()
        };
    }
    let value = n * pow2(qexp);
    if value > spec.max {
        return Rounded::Overflow;
    }
    Rounded::Finite(code_of_value(spec, value))
}

/// The code (sign clear) of a value known to be representable in `spec`.
fn code_of_value(spec: &Spec, value: f64) -> u32 {
    if value == 0.0 {
        return 0;
    }
    let e = ilog2(value);
    if e < spec.emin() {
        // subnormal: exponent field 0, mantissa = value / 2^(emin - man_bits)
        (value * pow2(spec.man_bits as i32 - spec.emin())) as u32
    } else {
        let frac = value * pow2(spec.man_bits as i32 - e) - pow2(spec.man_bits as i32);
        (((e + spec.bias) as u32) << spec.man_bits) | frac as u32
    }
}

/// Value of a finite code (sign bit clear), exact in f64.
pub(crate) fn value_of_code(spec: &Spec, code: u32) -> f64 {
    let man_mask = (1u32 << spec.man_bits) - 1;
    let exp = (code >> spec.man_bits) as i32;
    let man = (code & man_mask) as f64;
    if exp == 0 {
        man * pow2(spec.emin() - spec.man_bits as i32)
    } else {
        (pow2(spec.man_bits as i32) + man) * pow2(exp - spec.bias - spec.man_bits as i32)
    }
}

/// Sign and magnitude of `x`.
pub(crate) fn split_sign(x: f64) -> (bool, f64) {
    (x.is_sign_negative(), x.abs())
}

const F32_SPEC: Spec = Spec {
    man_bits: 23,
    bias: 127,
    max: f32::MAX as f64,
    max_code: 0x7F7F_FFFF,
};

/// Rounds `hi + lo` to the nearest f32 (ties to even), where `lo` is a remainder with
/// `|lo| <= ulp(hi)/2` as left by an exact summation (e.g. a non-overlapping
/// double-double): the result is the correctly rounded f32 of the exact value
/// `hi + lo`. Overflow gives ±inf, NaN stays NaN.
///
/// With `lo = 0` this is exactly `hi as f32`.
pub fn round_f64_to_f32(hi: f64, lo: f64) -> f32 {
    if !hi.is_finite() {
        return hi as f32;
    }
    let (neg, a) = split_sign(hi);
    let sticky = if neg { -lo } else { lo };
    let mag = match round_magnitude(&F32_SPEC, a, sticky) {
        Rounded::Finite(code) => f32::from_bits(code),
        Rounded::Overflow => f32::INFINITY,
    };
    if neg {
        -mag
    } else {
        mag
    }
}
