//! Counter-based pseudo-randomness: every element's random bits are a hash of
//! `(seed, stream, row, column)`, so data generated for a smaller shape is a corner of
//! the data for a bigger one (what makes shrinking keep a failing element).

/// SplitMix64's finalizer (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): a bijective mix of 64 bits.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tags that keep the hashes of different uses of one seed independent.
pub(crate) mod tag {
    /// Operand A's elements.
    pub const A: u64 = 1;
    /// Operand B's elements.
    pub const B: u64 = 2;
    /// Which columns are outlier channels.
    pub const OUTLIER: u64 = 0x10;
    /// Which 128×128 tiles are zero.
    pub const ZERO_TILE: u64 = 0x20;
    /// Scales (ORed with `A` or `B`).
    pub const SCALE: u64 = 0x40;
    /// A matrix drawn on its own ([`super::super::matrix`]).
    pub const MATRIX: u64 = 0x80;
}

/// A small generator seeded by the hash of one element's coordinates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ElemRng(u64);

impl ElemRng {
    pub(crate) fn new(seed: u64, stream: u64, i: u64, j: u64) -> Self {
        let h = mix(seed ^ mix(stream.wrapping_mul(0xD1B5_4A32_D192_ED03)));
        Self(mix(mix(h ^ i.wrapping_mul(0xA24B_AED4_963E_E407)) ^ j))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }

    /// Uniform in `0..n` (`n >= 1`; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `(0, 1]`.
    pub(crate) fn unit_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A random sign, `1.0` or `-1.0`.
    pub(crate) fn sign(&mut self) -> f32 {
        if self.next_u64() & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    /// A standard normal deviate (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.unit_open0();
        let u2 = self.unit_open0();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `2^e` as f32 for `-149 <= e <= 127` (exact).
pub(crate) fn pow2f(e: i32) -> f32 {
    debug_assert!((-149..=127).contains(&e));
    if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (e + 149))
    }
}
