//! Test helpers shared by integration tests: an exact oracle for GEMM outputs, written
//! independently of the crate (no call into `scalegemm_reference::format`).
//!
//! Every finite value of the formats involved (E4M3, E2M1, UE8M0, BF16, FP32) is a
//! dyadic rational `m·2^e` read straight from its bits ([`Dy`]). A dot product
//! `c + Σ a_k·b_k` is then an exact integer `N` times `2^E` ([`Exact`], BigInt), and
//! [`round_bits`] rounds it to BF16 or FP32 with round-to-nearest-even, subnormals and
//! overflow, by integer shifts — the bit pattern an exact reference must produce.
#![allow(dead_code)]

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, ToPrimitive, Zero};

/// The dyadic rational `m·2^e` (`m = 0` is zero, of either sign).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dy {
    pub m: i64,
    pub e: i32,
}

impl Dy {
    pub const ZERO: Dy = Dy { m: 0, e: 0 };

    pub fn new(m: i64, e: i32) -> Dy {
        Dy { m, e }
    }

    pub fn pow2(e: i32) -> Dy {
        Dy { m: 1, e }
    }

    pub fn mul(self, o: Dy) -> Dy {
        Dy {
            m: self
                .m
                .checked_mul(o.m)
                .expect("dyadic product overflows i64"),
            e: self.e + o.e,
        }
    }

    pub fn neg(self) -> Dy {
        Dy {
            m: -self.m,
            e: self.e,
        }
    }

    /// Approximate f64 value (only for building inputs and error bounds; exact when the
    /// mantissa has at most 53 bits and the exponent is in range).
    pub fn to_f64(self) -> f64 {
        ldexp(self.m as f64, self.e)
    }
}

/// `x · 2^e` in f64 by repeated exact power-of-two steps.
pub fn ldexp(mut x: f64, mut e: i32) -> f64 {
    while e > 600 {
        x *= 2f64.powi(600);
        e -= 600;
    }
    while e < -600 {
        x *= 2f64.powi(-600);
        e += 600;
    }
    x * 2f64.powi(e)
}

/// E4M3 (fn): sign, 4-bit exponent (bias 7), 3-bit mantissa; subnormals in units of
/// 2^-9; `S.1111.111` is NaN (`None`), there is no infinity.
pub fn e4m3(code: u8) -> Option<Dy> {
    let neg = code & 0x80 != 0;
    let exp = ((code >> 3) & 0xF) as i32;
    let man = (code & 7) as i64;
    if exp == 15 && man == 7 {
        return None;
    }
    let d = if exp == 0 {
        Dy::new(man, -9)
    } else {
        Dy::new(8 + man, exp - 7 - 3)
    };
    Some(if neg { d.neg() } else { d })
}

/// E2M1 from the low nibble: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0:
/// ±{0, .5, 1, 1.5, 2, 3, 4, 6}.
pub fn e2m1(nibble: u8) -> Dy {
    let neg = nibble & 8 != 0;
    let exp = ((nibble >> 1) & 3) as i32;
    let man = (nibble & 1) as i64;
    let d = if exp == 0 {
        Dy::new(man, -1)
    } else {
        Dy::new(2 + man, exp - 2)
    };
    if neg {
        d.neg()
    } else {
        d
    }
}

/// UE8M0 code `c` → `2^(c − 127)`; 0xFF is NaN (`None`).
pub fn ue8m0(code: u8) -> Option<Dy> {
    (code != 0xFF).then(|| Dy::pow2(code as i32 - 127))
}

/// An f32 from its bits (`None` for inf/NaN).
pub fn f32_dy(x: f32) -> Option<Dy> {
    let b = x.to_bits();
    let neg = b >> 31 != 0;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = (b & 0x7F_FFFF) as i64;
    if exp == 0xFF {
        return None;
    }
    let d = if exp == 0 {
        Dy::new(man, -149)
    } else {
        Dy::new(man | 1 << 23, exp - 150)
    };
    Some(if neg { d.neg() } else { d })
}

/// A BF16 from its bits (the high half of an f32).
pub fn bf16_dy(bits: u16) -> Option<Dy> {
    f32_dy(f32::from_bits((bits as u32) << 16))
}

/// An f64 from its bits (`None` for inf/NaN).
pub fn f64_dy(x: f64) -> Option<Dy> {
    let b = x.to_bits();
    let neg = b >> 63 != 0;
    let exp = ((b >> 52) & 0x7FF) as i32;
    let man = (b & ((1 << 52) - 1)) as i64;
    if exp == 0x7FF {
        return None;
    }
    let d = if exp == 0 {
        Dy::new(man, -1074)
    } else {
        Dy::new(man | 1 << 52, exp - 1075)
    };
    Some(if neg { d.neg() } else { d })
}

/// The exact value `n · 2^e`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exact {
    pub n: BigInt,
    pub e: i32,
}

impl Exact {
    pub fn is_zero(&self) -> bool {
        self.n.is_zero()
    }

    pub fn from_dy(d: Dy) -> Exact {
        Exact {
            n: BigInt::from(d.m),
            e: d.e,
        }
    }

    /// `self − other`, exactly.
    pub fn sub(&self, other: &Exact) -> Exact {
        let e = self.e.min(other.e);
        let a = &self.n << (self.e - e) as usize;
        let b = &other.n << (other.e - e) as usize;
        Exact { n: a - b, e }
    }

    /// Nearest-ish f64 (truncated to 62 significant bits first; for error bounds only).
    pub fn approx_f64(&self) -> f64 {
        let bits = self.n.bits() as i64;
        let (n, e) = if bits > 62 {
            let s = (bits - 62) as usize;
            (&self.n >> s, self.e + s as i32)
        } else {
            (self.n.clone(), self.e)
        };
        ldexp(n.to_i64().unwrap() as f64, e)
    }
}

/// Exponent window of the bucket accumulator: every product of two values of the
/// formats here (and every FP32 `c`) has its exponent inside it.
const OFF: i32 = 1100;

/// Exact `c + Σ_k a_k·b_k`.
///
/// Terms are accumulated by exponent in i128 buckets (each bucket is a sum of at most
/// `K + 1` mantissa products below 2^62, far from overflowing), then combined into one
/// BigInt at the smallest exponent present.
pub fn exact_dot(a: &[Dy], b: &[Dy], c: Option<Dy>) -> Exact {
    assert_eq!(a.len(), b.len());
    let mut buckets = vec![0i128; 2 * OFF as usize];
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    let mut add = |d: Dy| {
        if d.m == 0 {
            return;
        }
        let idx = usize::try_from(d.e + OFF).expect("exponent window");
        buckets[idx] = buckets[idx]
            .checked_add(d.m as i128)
            .expect("bucket overflow");
        lo = lo.min(idx);
        hi = hi.max(idx);
    };
    if let Some(c) = c {
        add(c);
    }
    for (x, y) in a.iter().zip(b) {
        add(x.mul(*y));
    }
    if lo == usize::MAX {
        return Exact {
            n: BigInt::zero(),
            e: 0,
        };
    }
    let mut n = BigInt::zero();
    let mut gap = 0usize;
    for idx in (lo..=hi).rev() {
        if buckets[idx] != 0 {
            n <<= gap;
            n += BigInt::from(buckets[idx]);
            gap = 0;
        }
        gap += 1;
    }
    n <<= gap - 1;
    Exact {
        n,
        e: lo as i32 - OFF,
    }
}

/// An output dtype of the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    Bf16,
    F32,
}

impl Fmt {
    /// Precision in bits (hidden bit included).
    fn p(self) -> i64 {
        match self {
            Fmt::Bf16 => 8,
            Fmt::F32 => 24,
        }
    }

    fn width(self) -> u32 {
        match self {
            Fmt::Bf16 => 16,
            Fmt::F32 => 32,
        }
    }
}

/// The bits of the correctly rounded (RNE) value of `x` in `fmt` (8 exponent bits,
/// bias 127, subnormals down to `2^(-126-(p-1))`, overflow to ±inf). An exact zero gives
/// `+0`; a nonzero value that rounds to zero keeps its sign.
pub fn round_bits(x: &Exact, fmt: Fmt) -> u32 {
    if x.n.is_zero() {
        return 0;
    }
    let p = fmt.p();
    let sign_bit: u32 = if x.n.sign() == Sign::Minus {
        1 << (fmt.width() - 1)
    } else {
        0
    };
    let mag: BigUint = x.n.magnitude().clone();
    let e = x.e as i64;
    let qmin = -126 - (p - 1);
    let len = mag.bits() as i64;
    let q = (len - 1 + e - (p - 1)).max(qmin);
    let (mut mant, mut q) = if q <= e {
        (mag << (e - q) as usize, q)
    } else {
        let s = (q - e) as usize;
        let quo = &mag >> s;
        let rem = &mag - (&quo << s);
        let half = BigUint::one() << (s - 1);
        let up = rem > half || (rem == half && quo.bit(0));
        (if up { quo + 1u32 } else { quo }, q)
    };
    if mant.bits() as i64 > p {
        // rounded up to 2^p: renormalise
        mant >>= 1usize;
        q += 1;
    }
    let mant = mant.to_u64().unwrap();
    let inf = 0xFFu32 << (p - 1);
    if mant < 1 << (p - 1) {
        // subnormal (or zero after rounding), exponent field 0
        debug_assert_eq!(q, qmin);
        return sign_bit | mant as u32;
    }
    let biased = q + p - 1 + 127;
    if biased >= 255 {
        return sign_bit | inf;
    }
    sign_bit | (biased as u32) << (p - 1) | (mant as u32 - (1 << (p - 1)))
}

/// The f32 nearest the exact value (for building inputs such as `C = −RN(A·Bᵀ)`).
pub fn round_f32(x: &Exact) -> f32 {
    f32::from_bits(round_bits(x, Fmt::F32))
}
