//! Exact summation and certified correct rounding: how the reference turns an f64 GEMM
//! into correctly rounded BF16/FP32 outputs.
//!
//! The f64 value `t = fl(c + fl(Σ a_k·b_k))` of `K + 1` terms satisfies
//! `|t − exact| ≤ γ_{K+1}·(Σ|a_k·b_k| + |c|)` for any summation order, with or without
//! FMA (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, eq. 3.5;
//! `γ_n = n·u/(1 − n·u)`, `u = 2^-53`), and `Σ|a_k·b_k| ≤ ‖a‖₂·‖b‖₂` (Cauchy–Schwarz).
//! Rounding is monotone, so if both ends of `[t − bound, t + bound]` round to the same
//! output value, so does the exact result; otherwise the element is recomputed exactly
//! with [`ExactSum`] (Shewchuk, "Adaptive Precision Floating-Point Arithmetic", 1997;
//! the final rounding as CPython's `math.fsum`).

use crate::format::{bf16, round_f64_to_f32};

/// The output dtype an exact value is rounded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Bf16,
    F32,
    F64,
}

impl Target {
    /// The correctly rounded (RNE) value of `hi + lo` in this dtype, returned as f64
    /// (exactly representable in the dtype). `lo` only breaks exact ties of `hi`.
    pub(crate) fn round(self, hi: f64, lo: f64) -> f64 {
        match self {
            Target::Bf16 => bf16::from_f64_sticky(hi, lo).to_f64(),
            Target::F32 => round_f64_to_f32(hi, lo) as f64,
            Target::F64 => hi,
        }
    }

    /// Rounds `t` if every value within `bound` of it rounds the same way; `None` when
    /// the exact value must be computed.
    pub(crate) fn certified(self, t: f64, bound: f64) -> Option<f64> {
        if self == Target::F64 || !t.is_finite() {
            return Some(t);
        }
        let lo = self.round((t - bound).next_down(), 0.0);
        let hi = self.round((t + bound).next_up(), 0.0);
        (lo.to_bits() == hi.to_bits()).then_some(lo)
    }
}

/// `γ_n = n·u/(1 − n·u)` with `u = 2^-53`, inflated by 0.1% to cover the rounding of
/// the bound's own computation (norms, products): valid for `n·u < 10^-4`.
pub(crate) fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::EPSILON / 2.0;
    1.001 * nu / (1.0 - nu)
}

/// Veltkamp split: `a = hi + lo` with both halves of at most 26 significant bits.
fn split(a: f64) -> (f64, f64) {
    let c = 134_217_729.0 * a; // 2^27 + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

/// Dekker's exact product: `a·b = p + e` exactly (no FMA needed; valid while
/// `|a|, |b| < 2^995` and the product does not underflow, true for every operand here).
pub(crate) fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    (p, e)
}

/// An exact sum of f64 terms as a non-overlapping expansion (Shewchuk's
/// grow-expansion, as CPython's `msum`).
#[derive(Default, Debug)]
pub(crate) struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    pub(crate) fn clear(&mut self) {
        self.partials.clear();
    }

    pub(crate) fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// The correctly rounded f64 of the sum (CPython `fsum`'s final step).
    fn nearest(&self) -> f64 {
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even where the rest of the expansion pushes past the tie.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if x - hi == y {
                hi = x;
            }
        }
        hi
    }

    /// `(hi, lo)`: `hi` the correctly rounded f64 of the exact sum and `lo` a value with
    /// the sign of `sum − hi` (zero when `hi` is exact), for [`Target::round`]. An exact
    /// zero sum gives `+0`.
    pub(crate) fn finish(&self) -> (f64, f64) {
        let hi = self.nearest() + 0.0;
        let mut rest = ExactSum::default();
        for &p in &self.partials {
            rest.add(p);
        }
        rest.add(-hi);
        // The largest component of a non-overlapping expansion carries its sign.
        let lo = rest.partials.iter().rev().copied().find(|&x| x != 0.0);
        (hi, lo.unwrap_or(0.0))
    }
}
