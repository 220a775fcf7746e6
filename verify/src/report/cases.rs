//! The built-in case list and its data: DeepGEMM's DeepSeek-V3 shapes, edge shapes,
//! adversarial values, and a sweep over K.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// How the values of a case's A and B are drawn (all f32, row-major).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Data {
    /// Both standard normal.
    Normal,
    /// A standard normal with a few K channels (every 256th, at least one) ×100: the
    /// activation outliers per-token quantization must survive.
    OutlierChannels,
    /// Both uniform in [0, 1): every product positive, the worst case for accumulation
    /// without promotion.
    SameSign,
    /// B's second half of K is minus its first half plus 10⁻³ noise, A's halves equal:
    /// outputs about 10⁻³ of Σ|a·b| (heavy cancellation, relative errors blow up).
    NearCancellation,
    /// B's rows scaled by 2^u, u uniform in [−12, 12]: per-block 128×128 scales crush the
    /// small rows of a block.
    RowDynamicRange,
    /// A ~ N(0, (3·10⁻⁹)²): block maxima far below the 10⁻⁴ amax clamp of the recipes,
    /// so the scale is the clamp's and the codes are E4M3 subnormals (a few bits).
    Tiny,
}

impl Data {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Data::Normal => "A, B ~ N(0, 1)",
            Data::OutlierChannels => "A ~ N(0, 1) with every 256th K channel x100, B ~ N(0, 1)",
            Data::SameSign => "A, B ~ U[0, 1) (all products positive)",
            Data::NearCancellation => {
                "B's 2nd K half = -(1st half) + 1e-3 noise, A's halves equal (outputs ~1e-3 of sum|ab|)"
            }
            Data::RowDynamicRange => "B rows scaled by 2^U[-12, 12], A ~ N(0, 1)",
            Data::Tiny => "A ~ 3e-9 * N(0, 1) (block amax far below the 1e-4 clamp: subnormal codes), B ~ N(0, 1)",
        }
    }
}

/// One built-in case: a shape and how its data is drawn.
#[derive(Clone, Debug)]
pub struct CaseSpec {
    /// Unique name, e.g. `"dsv3 128x2112x7168"`.
    pub name: String,
    /// `"deepseek-v3"`, `"edge"`, `"adversarial"` or `"k-sweep"`.
    pub group: &'static str,
    /// Rows of A and D.
    pub m: usize,
    /// Rows of B, columns of D.
    pub n: usize,
    /// Reduction dimension.
    pub k: usize,
    /// Value distribution.
    pub data: Data,
}

/// The DeepSeek-V3 `(N, K)` pairs of DeepGEMM's dense GEMM tests with BF16 output
/// (`tests/generators.py`, `enumerate_normal`: `bf16_output_nk`, run there with
/// M in {128, 4096}; M = 1 in newer versions).
pub const DSV3_NK: [(usize, usize); 7] = [
    (2112, 7168),
    (576, 7168),
    (24576, 1536),
    (32768, 512),
    (7168, 16384),
    (4096, 7168),
    (7168, 2048),
];

/// The built-in cases: DeepSeek-V3 shapes for each `m` in `ms`, edge shapes, adversarial
/// values and the K sweep. `quick` keeps only cases of at most ~10⁹ multiply-adds.
pub fn builtin(ms: &[usize], quick: bool) -> Vec<CaseSpec> {
    let mut v = Vec::new();
    let mut add = |group, name: String, m, n, k, data| {
        v.push(CaseSpec {
            name,
            group,
            m,
            n,
            k,
            data,
        })
    };
    if !quick {
        for &m in ms {
            for (n, k) in DSV3_NK {
                add(
                    "deepseek-v3",
                    format!("dsv3 {m}x{n}x{k}"),
                    m,
                    n,
                    k,
                    Data::Normal,
                );
            }
        }
    }
    for (m, n, k) in [
        (1, 128, 128),
        (7, 576, 1152),
        (129, 257, 300),
        (1, 7168, 2048),
        (64, 112, 7168),
        (256, 160, 384),
    ] {
        add("edge", format!("edge {m}x{n}x{k}"), m, n, k, Data::Normal);
    }
    for (data, name, m, n, k) in [
        (Data::OutlierChannels, "outlier-channels", 128, 512, 2048),
        (Data::SameSign, "same-sign", 64, 256, 16384),
        (Data::NearCancellation, "near-cancellation", 128, 512, 2048),
        (Data::RowDynamicRange, "row-dynamic-range", 128, 512, 2048),
        (Data::Tiny, "tiny-values", 128, 512, 2048),
    ] {
        add("adversarial", format!("{name} {m}x{n}x{k}"), m, n, k, data);
    }
    let ks: &[usize] = if quick {
        &[128, 1024, 4096]
    } else {
        &[128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    };
    for &k in ks {
        add(
            "k-sweep",
            format!("k-sweep 64x256x{k}"),
            64,
            256,
            k,
            Data::Normal,
        );
    }
    v
}

/// `rows × cols` standard normal f32 values (Box–Muller on ChaCha8), deterministic in
/// `seed`, generated in parallel by row blocks.
pub fn normal(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; rows * cols];
    let chunk = cols.max(1) * 64;
    v.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for pair in c.chunks_mut(2) {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * u2;
            pair[0] = (r * t.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * t.sin()) as f32;
            }
        }
    });
    v
}

fn uniform(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * cols).map(|_| rng.random::<f32>()).collect()
}

/// A `[m, k]` and B `[n, k]` of a case, f32 row-major.
pub fn generate(c: &CaseSpec, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (m, n, k) = (c.m, c.n, c.k);
    let sa = seed.wrapping_mul(2).wrapping_add(1);
    let sb = seed.wrapping_mul(2).wrapping_add(2);
    match c.data {
        Data::Normal => (normal(m, k, sa), normal(n, k, sb)),
        Data::OutlierChannels => {
            let mut a = normal(m, k, sa);
            for row in a.chunks_mut(k.max(1)) {
                for x in row.iter_mut().step_by(256) {
                    *x *= 100.0;
                }
            }
            (a, normal(n, k, sb))
        }
        Data::SameSign => (uniform(m, k, sa), uniform(n, k, sb)),
        Data::NearCancellation => {
            let h = k / 2;
            let mut a = normal(m, k, sa);
            let mut b = normal(n, k, sb);
            let noise = normal(n, k, sb ^ 0xABCD);
            for row in a.chunks_mut(k.max(1)) {
                let (x, y) = row.split_at_mut(h);
                y[..h].copy_from_slice(x);
            }
            for (row, nz) in b.chunks_mut(k.max(1)).zip(noise.chunks(k.max(1))) {
                for j in 0..h {
                    row[h + j] = -row[j] + 1e-3 * nz[h + j];
                }
            }
            (a, b)
        }
        Data::RowDynamicRange => {
            let mut b = normal(n, k, sb);
            let mut rng = ChaCha8Rng::seed_from_u64(sb ^ 0x1234);
            for row in b.chunks_mut(k.max(1)) {
                let s = 2f32.powi(rng.random_range(-12..=12));
                row.iter_mut().for_each(|x| *x *= s);
            }
            (normal(m, k, sa), b)
        }
        Data::Tiny => {
            let mut a = normal(m, k, sa);
            a.iter_mut().for_each(|x| *x *= 3e-9);
            (a, normal(n, k, sb))
        }
    }
}
