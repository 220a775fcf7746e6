//! Exact summation and certified correct rounding: how the reference turns an f64 GEMM
//! into correctly rounded BF16/FP32 outputs.
//!
//! The f64 value `t = fl(c + fl(Σ a_k·b_k))` of `K + 1` terms satisfies
//! `|t − exact| ≤ γ_{K+1}·(Σ|a_k·b_k| + |c|)` for any summation order, with or without
//! FMA (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, eq. 3.5;
//! `γ_n = n·u/(1 − n·u)`, `u = 2^-53`), and `Σ|a_k·b_k| ≤ ‖a‖₂·‖b‖₂` (Cauchy–Schwarz).
//! Rounding is monotone, so if both ends of `[t − bound, t + bound]` round to the same
//! output value, so does the exact result. Otherwise the element is recomputed with
//! [`dot2`] (twice the working precision, its own error bound, certified the same way)
//! and, in the rare case that is still undecided, exactly with [`ExactSum`] (Shewchuk,
//! "Adaptive Precision Floating-Point Arithmetic", 1997; the final rounding as
//! CPython's `math.fsum`).

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

/// `(p + s, bound)` for `c + Σ a_k·b_k` by Ogita, Rump and Oishi's `Dot2` ("Accurate
/// sum and dot product", SIAM J. Sci. Comput. 26(6), 2005, Algorithm 5.3): error-free
/// products and sums carried in a second word. Proposition 5.5 there bounds the error of
/// the final `p + s` by `u·|p + s| + γ_n²·Σ|a_k·b_k|`; `bound` is that with the sum
/// replaced by its upper bound `abs_sum`, doubled for the rounding of `p + s` itself.
pub(crate) fn dot2(a: &[f64], b: &[f64], c: f64, abs_sum: f64) -> (f64, f64) {
    let (mut p, mut s) = (c, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (h, r) = two_prod(x, y);
        let t = p + h;
        let z = t - p;
        let q = (p - (t - z)) + (h - z);
        p = t;
        s += q + r;
    }
    let v = p + s;
    let g = gamma(a.len() + 1);
    (v, 2.0 * (f64::EPSILON / 2.0) * v.abs() + g * g * abs_sum)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact `c + Σ a·b` as (hi, lo) through the expansion.
    fn exact(a: &[f64], b: &[f64], c: f64) -> (f64, f64) {
        let mut s = ExactSum::default();
        s.add(c);
        for (&x, &y) in a.iter().zip(b) {
            let (p, e) = two_prod(x, y);
            s.add(p);
            s.add(e);
        }
        s.finish()
    }

    #[test]
    fn dot2_error_stays_inside_its_bound_under_cancellation() {
        // A deterministic LCG keeps this test free of dev-dependencies.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let mut checked = 0;
        for trial in 0..400usize {
            let k = 1 + trial % 300;
            let a: Vec<f64> = (0..k)
                .map(|i| next() * 2f64.powi((i % 40) as i32 - 20))
                .collect();
            let mut b: Vec<f64> = (0..k).map(|_| next()).collect();
            // Every other trial: make the sum cancel almost completely.
            if trial % 2 == 1 {
                let (hi, _) = exact(&a[1..], &b[1..], 0.0);
                b[0] = -hi / a[0];
            }
            let c = if trial % 3 == 0 { next() * 1e-3 } else { 0.0 };
            let abs_sum: f64 =
                a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f64>() * 1.01 + c.abs();
            let (v, bound) = dot2(&a, &b, c, abs_sum);
            let (hi, lo) = exact(&a, &b, c);
            // |v - exact| <= |v - hi| + |exact - hi|, and |lo| >= |exact - hi| is the largest
            // component of the remainder expansion (at most half an ulp of hi).
            let err = (v - hi).abs() + lo.abs();
            assert!(err <= bound, "trial {trial}: err {err:e} > bound {bound:e}");
            // Rounding through the certified path agrees with exact rounding.
            for t in [Target::Bf16, Target::F32] {
                if let Some(r) = t.certified(v, bound) {
                    assert_eq!(r.to_bits(), t.round(hi, lo).to_bits(), "trial {trial}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 600, "only {checked} certified");
    }

    #[test]
    fn exact_sum_breaks_the_tie_a_plain_sum_loses() {
        let (hi, lo) = exact(&[1.0, 2f64.powi(-24), 2f64.powi(-80)], &[1.0; 3], 0.0);
        assert_eq!(hi, 1.0 + 2f64.powi(-24));
        assert!(lo > 0.0);
        assert_eq!(Target::F32.round(hi, lo), 1.0 + 2f64.powi(-23));
        assert_eq!(Target::F32.round(hi, -lo), 1.0);
    }
}
