//! Tests of `scalegemm_reference::attention` (MQA logits, paged MQA logits, FP4
//! indexer) against a naive f64 loop over codes decoded by this file's own decoders.
//!
//! For E4M3 operands every per-head dot product is exact in f64 in any order, and the
//! naive loop applies scale, ReLU, weight and the head sum in the same order as the
//! reference, so f64 outputs must be bit-identical and FP32 outputs equal to the naive
//! value cast to f32. BF16 outputs must be the nearest BF16 of the naive f64 value.

#![allow(clippy::needless_range_loop)]

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_reference::attention::{
    mqa_logits, mqa_logits_compressed, paged_mqa_logits, ContextLens, Keys, KvCacheFormat,
    MqaInputs, OutBuf, OutView, PagedMqaInputs, Query,
};
use scalegemm_reference::Error;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

// ------------------------------------------------------------------------------------
// Own decoders (independent of the crate's codecs)
// ------------------------------------------------------------------------------------

fn dec_e4m3(c: u8) -> f64 {
    let s = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((c >> 3) & 0xF) as i32;
    let m = (c & 7) as f64;
    if e == 15 && c & 7 == 7 {
        return f64::NAN;
    }
    if e == 0 {
        s * m * 2f64.powi(-9)
    } else {
        s * (8.0 + m) * 2f64.powi(e - 10)
    }
}

fn dec_e2m1(c: u8) -> f64 {
    let s = if c & 8 != 0 { -1.0 } else { 1.0 };
    let e = ((c >> 1) & 3) as i32;
    let m = (c & 1) as f64;
    if e == 0 {
        s * m * 0.5
    } else {
        s * (2.0 + m) * 2f64.powi(e - 2)
    }
}

fn dec_ue8m0(c: u8) -> f64 {
    2f64.powi(c as i32 - 127)
}

/// The E4M3 code of an exactly representable value (by search).
fn e4m3_code_of(v: f64) -> u8 {
    (0u8..=255).find(|&c| dec_e4m3(c) == v).unwrap()
}

fn relu(x: f64) -> f64 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

// ------------------------------------------------------------------------------------
// Inputs and the naive loop
// ------------------------------------------------------------------------------------

/// A finite random E4M3 code.
fn rand_e4m3(r: &mut ChaCha8Rng) -> u8 {
    loop {
        let c: u8 = r.random();
        if c & 0x7F != 0x7F {
            return c;
        }
    }
}

/// Dequantized problem: q `[tokens·heads, dim]`, kv `[n_kv, dim]` (values with FP4
/// group scales folded in), kv row scales, weights `[tokens, heads]`.
struct Dense {
    q: Vec<f64>,
    kv: Vec<f64>,
    s: Vec<f64>,
    w: Vec<f32>,
    heads: usize,
    dim: usize,
}

impl Dense {
    /// The logit of query token `i` against key row `j`.
    fn logit(&self, i: usize, j: usize) -> f64 {
        let (h, d) = (self.heads, self.dim);
        let mut acc = 0.0;
        for hh in 0..h {
            let mut dot = 0.0;
            for k in 0..d {
                dot += self.q[(i * h + hh) * d + k] * self.kv[j * d + k];
            }
            acc += relu(dot * self.s[j]) * self.w[i * h + hh] as f64;
        }
        acc
    }
}

struct Fp8Case {
    q: Vec<u8>,
    kv: Vec<u8>,
    s: Vec<f32>,
    w: Vec<f32>,
}

fn fp8_case(r: &mut ChaCha8Rng, tokens: usize, n_kv: usize, heads: usize, dim: usize) -> Fp8Case {
    Fp8Case {
        q: (0..tokens * heads * dim).map(|_| rand_e4m3(r)).collect(),
        kv: (0..n_kv * dim).map(|_| rand_e4m3(r)).collect(),
        s: (0..n_kv).map(|_| r.random_range(0.01f32..2.0)).collect(),
        w: (0..tokens * heads)
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect(),
    }
}

fn dense_fp8(c: &Fp8Case, heads: usize, dim: usize) -> Dense {
    Dense {
        q: c.q.iter().map(|&x| dec_e4m3(x)).collect(),
        kv: c.kv.iter().map(|&x| dec_e4m3(x)).collect(),
        s: c.s.iter().map(|&x| x as f64).collect(),
        w: c.w.clone(),
        heads,
        dim,
    }
}

fn inputs<'a>(
    c: &'a Fp8Case,
    ks: &'a [i32],
    ke: &'a [i32],
    heads: usize,
    dim: usize,
) -> MqaInputs<'a> {
    MqaInputs {
        q: Query::Fp8(&c.q),
        kv: Keys::Fp8 {
            codes: &c.kv,
            scales: &c.s,
        },
        weights: &c.w,
        ks,
        ke,
        seq_len: ks.len(),
        seq_len_kv: c.s.len(),
        heads,
        dim,
    }
}

/// Random ranges including empty rows and ends past `n_kv`.
fn ranges(r: &mut ChaCha8Rng, m: usize, n_kv: usize) -> (Vec<i32>, Vec<i32>) {
    let mut ks = Vec::new();
    let mut ke = Vec::new();
    for i in 0..m {
        let s = r.random_range(0..=n_kv as i32);
        let e = match i % 4 {
            0 => s,                                   // empty
            1 => n_kv as i32 + r.random_range(1..50), // clamped
            _ => r.random_range(s..=n_kv as i32),
        };
        ks.push(s);
        ke.push(e);
    }
    (ks, ke)
}

fn assert_bf16_nearest(got: bf16, v: f64, what: &str) {
    let g = got.to_f64();
    let up = bf16::from_bits(got.to_bits().wrapping_add(1)).to_f64();
    let dn = bf16::from_bits(got.to_bits().wrapping_sub(1)).to_f64();
    let e = (g - v).abs();
    assert!(
        e <= (up - v).abs() && e <= (dn - v).abs(),
        "{what}: bf16 {g} is not nearest to {v}"
    );
}

const POISON: f64 = 12345.0;

// ------------------------------------------------------------------------------------
// Non-paged
// ------------------------------------------------------------------------------------

#[test]
fn fp8_matches_naive_all_dtypes() {
    let mut r = rng(1);
    for &(m, n_kv, heads, dim) in &[
        (5, 37, 8, 32),
        (9, 300, 16, 64),
        (4, 70, 64, 128),
        (17, 20, 12, 96),
    ] {
        let c = fp8_case(&mut r, m, n_kv, heads, dim);
        let (ks, ke) = ranges(&mut r, m, n_kv);
        let x = inputs(&c, &ks, &ke, heads, dim);
        let dn = dense_fp8(&c, heads, dim);
        let ld = n_kv + 3;
        let mut o64 = vec![POISON; m * ld];
        let mut o32 = vec![POISON as f32; m * ld];
        let mut o16 = vec![bf16::from_f64(POISON); m * ld];
        mqa_logits(
            &x,
            true,
            &mut OutView::new(OutBuf::F64(&mut o64), m, n_kv, ld).unwrap(),
        )
        .unwrap();
        mqa_logits(
            &x,
            true,
            &mut OutView::new(OutBuf::F32(&mut o32), m, n_kv, ld).unwrap(),
        )
        .unwrap();
        mqa_logits(
            &x,
            true,
            &mut OutView::new(OutBuf::Bf16(&mut o16), m, n_kv, ld).unwrap(),
        )
        .unwrap();
        for i in 0..m {
            let hi = (ke[i] as usize).min(n_kv);
            let lo = (ks[i] as usize).min(hi);
            for j in 0..n_kv {
                let k = i * ld + j;
                if j >= lo && j < hi {
                    let v = dn.logit(i, j);
                    assert_eq!(o64[k].to_bits(), v.to_bits(), "f64 ({i},{j})");
                    assert_eq!(o32[k].to_bits(), (v as f32).to_bits(), "f32 ({i},{j})");
                    assert_bf16_nearest(o16[k], v, "bf16");
                } else {
                    assert_eq!(o64[k], f64::NEG_INFINITY);
                    assert_eq!(o32[k], f32::NEG_INFINITY);
                    assert_eq!(o16[k], bf16::NEG_INFINITY);
                }
            }
            for j in n_kv..ld.min(o64.len() - i * ld) {
                assert_eq!(o64[i * ld + j], POISON, "padding touched");
            }
        }
    }
}

#[test]
fn unclean_and_compressed_leave_poison() {
    let mut r = rng(2);
    let (m, n_kv, heads, dim) = (12, 150, 8, 64);
    let c = fp8_case(&mut r, m, n_kv, heads, dim);
    let (ks, ke) = ranges(&mut r, m, n_kv);
    let x = inputs(&c, &ks, &ke, heads, dim);
    let dn = dense_fp8(&c, heads, dim);
    let mut full = vec![POISON; m * n_kv];
    mqa_logits(
        &x,
        false,
        &mut OutView::new(OutBuf::F64(&mut full), m, n_kv, n_kv).unwrap(),
    )
    .unwrap();
    let width = ks
        .iter()
        .zip(&ke)
        .map(|(s, e)| (e - s) as usize)
        .max()
        .unwrap();
    let mut comp = vec![POISON; m * width];
    mqa_logits_compressed(
        &x,
        &mut OutView::new(OutBuf::F64(&mut comp), m, width, width).unwrap(),
    )
    .unwrap();
    for i in 0..m {
        let hi = (ke[i] as usize).min(n_kv);
        let lo = (ks[i] as usize).min(hi);
        for j in 0..n_kv {
            let v = full[i * n_kv + j];
            if j >= lo && j < hi {
                assert_eq!(v.to_bits(), dn.logit(i, j).to_bits());
            } else {
                assert_eq!(v, POISON);
            }
        }
        for cc in 0..width {
            let v = comp[i * width + cc];
            if cc < hi - lo {
                assert_eq!(v.to_bits(), full[i * n_kv + lo + cc].to_bits());
            } else {
                assert_eq!(v, POISON);
            }
        }
    }
}

#[test]
fn nan_propagates_through_relu() {
    let mut r = rng(3);
    let (m, n_kv, heads, dim) = (2, 4, 8, 32);
    let mut c = fp8_case(&mut r, m, n_kv, heads, dim);
    c.kv[dim] = 0x7F; // NaN in key row 1
    let (ks, ke) = (vec![0, 0], vec![4, 4]);
    let x = inputs(&c, &ks, &ke, heads, dim);
    let mut o = vec![0.0f32; m * n_kv];
    mqa_logits(
        &x,
        true,
        &mut OutView::new(OutBuf::F32(&mut o), m, n_kv, n_kv).unwrap(),
    )
    .unwrap();
    assert!(o[1].is_nan() && o[n_kv + 1].is_nan());
    assert!(o[0].is_finite() && o[2].is_finite());
}

#[test]
fn nonpaged_errors() {
    let mut r = rng(4);
    let (m, n_kv, heads, dim) = (3, 10, 8, 32);
    let c = fp8_case(&mut r, m, n_kv, heads, dim);
    let (ks, ke) = (vec![0, 2, 4], vec![5, 6, 10]);
    let mut o = vec![0.0f32; m * n_kv];
    let mut run = |x: &MqaInputs| {
        mqa_logits(
            x,
            true,
            &mut OutView::new(OutBuf::F32(&mut o), m, n_kv, n_kv).unwrap(),
        )
    };
    let good = inputs(&c, &ks, &ke, heads, dim);
    assert!(run(&good).is_ok());
    let bad_ks = [0, -1, 4];
    assert!(matches!(
        run(&MqaInputs {
            ks: &bad_ks,
            ..good
        }),
        Err(Error::Group {
            tensor: "ks",
            index: 1,
            ..
        })
    ));
    let bad_ke = [5, 1, 10];
    assert!(matches!(
        run(&MqaInputs {
            ke: &bad_ke,
            ..good
        }),
        Err(Error::Group {
            tensor: "ke",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        run(&MqaInputs {
            ke: &ke[..2],
            ..good
        }),
        Err(Error::Shape { tensor: "ke", .. })
    ));
    assert!(matches!(
        run(&MqaInputs {
            weights: &c.w[1..],
            ..good
        }),
        Err(Error::Shape {
            tensor: "weights",
            ..
        })
    ));
    assert!(matches!(
        run(&MqaInputs {
            q: Query::Fp8(&c.q[1..]),
            ..good
        }),
        Err(Error::Shape { tensor: "q", .. })
    ));
    assert!(matches!(
        run(&MqaInputs {
            kv: Keys::Fp8 {
                codes: &c.kv,
                scales: &c.s[1..]
            },
            ..good
        }),
        Err(Error::Shape {
            tensor: "kv_scales",
            ..
        })
    ));
    assert!(matches!(
        run(&MqaInputs { heads: 0, ..good }),
        Err(Error::Argument { name: "heads", .. })
    ));
    let fp4_vals = vec![0u8; n_kv * 48 / 2];
    let fp4_scales = vec![0i32; n_kv];
    let q48 = vec![0u8; m * heads * 48];
    assert!(matches!(
        run(&MqaInputs {
            q: Query::Fp8(&q48),
            kv: Keys::Fp4 {
                values: &fp4_vals,
                scales: &fp4_scales
            },
            dim: 48,
            ..good
        }),
        Err(Error::Argument { name: "dim", .. })
    ));
    // Wrong output shape.
    let mut o2 = vec![0.0f32; m * (n_kv + 1)];
    assert!(matches!(
        mqa_logits(
            &good,
            true,
            &mut OutView::new(OutBuf::F32(&mut o2), m, n_kv + 1, n_kv + 1).unwrap()
        ),
        Err(Error::Shape {
            tensor: "logits",
            ..
        })
    ));
    // Compressed output narrower than a range.
    let mut o3 = vec![0.0f32; m * 4];
    assert!(matches!(
        mqa_logits_compressed(
            &good,
            &mut OutView::new(OutBuf::F32(&mut o3), m, 4, 4).unwrap()
        ),
        Err(Error::Group {
            tensor: "ke",
            index: 0,
            ..
        })
    ));
}

// ------------------------------------------------------------------------------------
// FP4
// ------------------------------------------------------------------------------------

fn pack_nibbles(codes: &[u8]) -> Vec<u8> {
    codes.chunks(2).map(|p| p[0] | (p[1] << 4)).collect()
}

/// `rows` rows of `g` UE8M0 codes packed four per little-endian i32.
fn pack_scale_codes(codes: &[u8], rows: usize, g: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for r in 0..rows {
        for quad in codes[r * g..(r + 1) * g].chunks(4) {
            let mut b = [0u8; 4];
            b[..quad.len()].copy_from_slice(quad);
            out.push(i32::from_le_bytes(b));
        }
    }
    out
}

#[test]
fn fp4_equals_fp8_on_e2m1_values() {
    let mut r = rng(5);
    for &(m, n_kv, heads, dim) in &[(6, 90, 8, 32), (5, 40, 32, 64), (3, 33, 64, 128)] {
        let g = dim / 32;
        let qc: Vec<u8> = (0..m * heads * dim)
            .map(|_| r.random_range(0..16u8))
            .collect();
        let kc: Vec<u8> = (0..n_kv * dim).map(|_| r.random_range(0..16u8)).collect();
        let w: Vec<f32> = (0..m * heads)
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect();
        let (ks, ke) = ranges(&mut r, m, n_kv);
        let q8: Vec<u8> = qc.iter().map(|&c| e4m3_code_of(dec_e2m1(c))).collect();
        let k8: Vec<u8> = kc.iter().map(|&c| e4m3_code_of(dec_e2m1(c))).collect();
        let ones = vec![1.0f32; n_kv];
        let q4 = pack_nibbles(&qc);
        let k4 = pack_nibbles(&kc);
        let qs = pack_scale_codes(&vec![127u8; m * heads * g], m * heads, g);
        let kvs = pack_scale_codes(&vec![127u8; n_kv * g], n_kv, g);
        let base = MqaInputs {
            q: Query::Fp8(&q8),
            kv: Keys::Fp8 {
                codes: &k8,
                scales: &ones,
            },
            weights: &w,
            ks: &ks,
            ke: &ke,
            seq_len: m,
            seq_len_kv: n_kv,
            heads,
            dim,
        };
        let fp4 = MqaInputs {
            q: Query::Fp4 {
                values: &q4,
                scales: &qs,
            },
            kv: Keys::Fp4 {
                values: &k4,
                scales: &kvs,
            },
            ..base
        };
        let mut a = vec![0.0f64; m * n_kv];
        let mut b = vec![1.0f64; m * n_kv];
        mqa_logits(
            &base,
            true,
            &mut OutView::new(OutBuf::F64(&mut a), m, n_kv, n_kv).unwrap(),
        )
        .unwrap();
        mqa_logits(
            &fp4,
            true,
            &mut OutView::new(OutBuf::F64(&mut b), m, n_kv, n_kv).unwrap(),
        )
        .unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn fp4_scaled_matches_naive() {
    let mut r = rng(6);
    let (m, n_kv, heads, dim) = (7, 64, 16, 128);
    let g = dim / 32;
    let qc: Vec<u8> = (0..m * heads * dim)
        .map(|_| r.random_range(0..16u8))
        .collect();
    let kc: Vec<u8> = (0..n_kv * dim).map(|_| r.random_range(0..16u8)).collect();
    let qsc: Vec<u8> = (0..m * heads * g)
        .map(|_| r.random_range(115..140u8))
        .collect();
    let ksc: Vec<u8> = (0..n_kv * g).map(|_| r.random_range(115..140u8)).collect();
    let w: Vec<f32> = (0..m * heads)
        .map(|_| r.random_range(-1.0f32..1.0))
        .collect();
    let (ks, ke) = ranges(&mut r, m, n_kv);
    let (q4, k4) = (pack_nibbles(&qc), pack_nibbles(&kc));
    let qs = pack_scale_codes(&qsc, m * heads, g);
    let kvs = pack_scale_codes(&ksc, n_kv, g);
    let x = MqaInputs {
        q: Query::Fp4 {
            values: &q4,
            scales: &qs,
        },
        kv: Keys::Fp4 {
            values: &k4,
            scales: &kvs,
        },
        weights: &w,
        ks: &ks,
        ke: &ke,
        seq_len: m,
        seq_len_kv: n_kv,
        heads,
        dim,
    };
    let dn = Dense {
        q: (0..m * heads * dim)
            .map(|i| dec_e2m1(qc[i]) * dec_ue8m0(qsc[i / 32]))
            .collect(),
        kv: (0..n_kv * dim)
            .map(|i| dec_e2m1(kc[i]) * dec_ue8m0(ksc[i / 32]))
            .collect(),
        s: vec![1.0; n_kv],
        w: w.clone(),
        heads,
        dim,
    };
    let mut o = vec![POISON; m * n_kv];
    mqa_logits(
        &x,
        false,
        &mut OutView::new(OutBuf::F64(&mut o), m, n_kv, n_kv).unwrap(),
    )
    .unwrap();
    for i in 0..m {
        let hi = (ke[i] as usize).min(n_kv);
        let lo = (ks[i] as usize).min(hi);
        for j in lo..hi {
            let v = dn.logit(i, j);
            // Bound: (dim + heads + 2)·2^-52 · Σ_h Σ_d |q·k|·|w|.
            let mut mag = 0.0;
            for h in 0..heads {
                let mut s = 0.0;
                for d in 0..dim {
                    s += (dn.q[(i * heads + h) * dim + d] * dn.kv[j * dim + d]).abs();
                }
                mag += s * (w[i * heads + h] as f64).abs();
            }
            let tol = (dim + heads + 2) as f64 * 2f64.powi(-52) * mag;
            assert!(
                (o[i * n_kv + j] - v).abs() <= tol,
                "({i},{j}) {} vs {v}",
                o[i * n_kv + j]
            );
        }
    }
    // A nonzero padding byte in the packed scales is rejected (dim = 32: one code per word).
    let bad = vec![0x0100_007Fi32; m * heads];
    let q32 = vec![0u8; m * heads * 16];
    let x32 = MqaInputs {
        q: Query::Fp4 {
            values: &q32,
            scales: &bad,
        },
        kv: Keys::Fp8 {
            codes: &vec![0u8; n_kv * 32],
            scales: &vec![1.0; n_kv],
        },
        dim: 32,
        ..x
    };
    let mut o = vec![0.0f32; m * n_kv];
    assert!(matches!(
        mqa_logits(
            &x32,
            true,
            &mut OutView::new(OutBuf::F32(&mut o), m, n_kv, n_kv).unwrap()
        ),
        Err(Error::Argument {
            name: "q_scales",
            ..
        })
    ));
}

// ------------------------------------------------------------------------------------
// Paged
// ------------------------------------------------------------------------------------

/// A logical kv sequence of `max_blocks·block_kv` rows (`rows`: each row's value
/// bytes, `tails`: its scale bytes) whose logical block 2 duplicates block 0, laid out
/// in a cache of `num_blocks` physical blocks through a shuffled table in which logical
/// blocks 0 and 2 share one physical block. Returns (cache bytes, table row).
fn build_cache(
    r: &mut ChaCha8Rng,
    rows: &[Vec<u8>],
    tails: &[Vec<u8>],
    block_kv: usize,
    max_blocks: usize,
    num_blocks: usize,
    row_bytes: usize,
) -> (Vec<u8>, Vec<i32>) {
    let mut phys: Vec<usize> = (0..num_blocks).collect();
    for i in (1..num_blocks).rev() {
        let j = r.random_range(0..=i);
        phys.swap(i, j);
    }
    let mut table: Vec<i32> = (0..max_blocks).map(|k| phys[k] as i32).collect();
    if max_blocks > 2 {
        table[2] = table[0];
    }
    let mut cache = vec![0xAAu8; num_blocks * block_kv * row_bytes];
    let vb = rows[0].len();
    for k in 0..max_blocks {
        let base = table[k] as usize * block_kv * row_bytes;
        for t in 0..block_kv {
            let p = k * block_kv + t;
            cache[base + t * vb..base + (t + 1) * vb].copy_from_slice(&rows[p]);
            let tb = tails[p].len();
            let off = base + block_kv * vb + t * tb;
            cache[off..off + tb].copy_from_slice(&tails[p]);
        }
    }
    (cache, table)
}

/// Paged FP8 and FP4 equal the non-paged op over the same logical keys, row by row,
/// with 1-D and 2-D context lengths, short contexts and garbage in unread table slots.
#[test]
fn paged_equals_nonpaged() {
    let mut r = rng(7);
    for &(batch, next_n, heads, dim, block_kv, max_blocks) in &[
        (3, 2, 8, 32, 4, 6),
        (2, 3, 64, 128, 16, 4),
        (4, 1, 16, 64, 8, 5),
    ] {
        for fp4 in [false, true] {
            let mml = block_kv * max_blocks;
            let tokens = batch * next_n;
            let g = dim / 32;
            // Logical keys: FP4 codes (also used, widened, for FP8 when fp4).
            let mut kc: Vec<u8> = (0..mml * dim).map(|_| r.random_range(0..16u8)).collect();
            let mut k8: Vec<u8> = (0..mml * dim).map(|_| rand_e4m3(&mut r)).collect();
            let mut s8: Vec<f32> = (0..mml).map(|_| r.random_range(0.1f32..2.0)).collect();
            let mut sc: Vec<u8> = (0..mml * g).map(|_| r.random_range(120..134u8)).collect();
            // Logical block 2 duplicates block 0.
            if max_blocks > 2 {
                let (a, b) = (2 * block_kv, block_kv);
                kc.copy_within(0..b * dim, a * dim);
                k8.copy_within(0..b * dim, a * dim);
                s8.copy_within(0..b, a);
                sc.copy_within(0..b * g, a * g);
            }
            let (rows, tails, row_bytes): (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) = if fp4 {
                (
                    (0..mml)
                        .map(|p| pack_nibbles(&kc[p * dim..(p + 1) * dim]))
                        .collect(),
                    (0..mml).map(|p| sc[p * g..(p + 1) * g].to_vec()).collect(),
                    dim / 2 + g,
                )
            } else {
                (
                    (0..mml)
                        .map(|p| k8[p * dim..(p + 1) * dim].to_vec())
                        .collect(),
                    (0..mml).map(|p| s8[p].to_le_bytes().to_vec()).collect(),
                    dim + 4,
                )
            };
            let num_blocks = max_blocks + 3;
            let (cache, trow) = build_cache(
                &mut r, &rows, &tails, block_kv, max_blocks, num_blocks, row_bytes,
            );
            let q: Vec<u8> = (0..tokens * heads * dim)
                .map(|_| rand_e4m3(&mut r))
                .collect();
            let w: Vec<f32> = (0..tokens * heads)
                .map(|_| r.random_range(-1.0f32..1.0))
                .collect();
            // Context lengths: full, shorter than next_n, zero, partial block.
            let lens: Vec<i32> = (0..batch)
                .map(|b| match b {
                    0 => mml as i32,
                    1 => (next_n as i32 - 1).max(0),
                    2 => 0,
                    _ => r.random_range(1..=mml as i32),
                })
                .collect();
            for two_d in [false, true] {
                let lens2: Vec<i32> = (0..tokens)
                    .map(|i| r.random_range(0..=lens[i / next_n].max(1)).min(mml as i32))
                    .collect();
                let ctx = if two_d {
                    ContextLens::PerToken(&lens2)
                } else {
                    ContextLens::PerSequence(&lens)
                };
                let visible = |i: usize| -> usize {
                    if two_d {
                        lens2[i] as usize
                    } else {
                        let (b, t) = (i / next_n, i % next_n);
                        (lens[b] - next_n as i32 + t as i32 + 1).clamp(0, lens[b]) as usize
                    }
                };
                // Table: the same row for every sequence, garbage past the blocks read.
                let mut table = Vec::new();
                for i in 0..batch {
                    let vmax = (0..next_n).map(|t| visible(i * next_n + t)).max().unwrap();
                    let nb = vmax.div_ceil(block_kv);
                    for k in 0..max_blocks {
                        table.push(if k < nb { trow[k] } else { -7 - k as i32 });
                    }
                }
                let x = PagedMqaInputs {
                    q: Query::Fp8(&q),
                    kv_cache: &cache,
                    kv_format: if fp4 {
                        KvCacheFormat::Fp4
                    } else {
                        KvCacheFormat::Fp8
                    },
                    weights: &w,
                    context_lens: ctx,
                    block_table: &table,
                    batch,
                    next_n,
                    heads,
                    dim,
                    num_blocks,
                    block_kv,
                    max_blocks,
                };
                let mut got = vec![POISON; tokens * mml];
                paged_mqa_logits(
                    &x,
                    true,
                    &mut OutView::new(OutBuf::F64(&mut got), tokens, mml, mml).unwrap(),
                )
                .unwrap();
                // Non-paged over the logical keys.
                let k4 = pack_nibbles(&kc);
                let ks4 = pack_scale_codes(&sc, mml, g);
                let ks_: Vec<i32> = vec![0; tokens];
                let ke_: Vec<i32> = (0..tokens).map(|i| visible(i) as i32).collect();
                let y = MqaInputs {
                    q: Query::Fp8(&q),
                    kv: if fp4 {
                        Keys::Fp4 {
                            values: &k4,
                            scales: &ks4,
                        }
                    } else {
                        Keys::Fp8 {
                            codes: &k8,
                            scales: &s8,
                        }
                    },
                    weights: &w,
                    ks: &ks_,
                    ke: &ke_,
                    seq_len: tokens,
                    seq_len_kv: mml,
                    heads,
                    dim,
                };
                let mut want = vec![0.0f64; tokens * mml];
                mqa_logits(
                    &y,
                    true,
                    &mut OutView::new(OutBuf::F64(&mut want), tokens, mml, mml).unwrap(),
                )
                .unwrap();
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "fp4={fp4} 2d={two_d} at {k}");
                }
                // Unclean leaves masked entries untouched.
                let mut got2 = vec![POISON; tokens * mml];
                paged_mqa_logits(
                    &x,
                    false,
                    &mut OutView::new(OutBuf::F64(&mut got2), tokens, mml, mml).unwrap(),
                )
                .unwrap();
                for i in 0..tokens {
                    for p in 0..mml {
                        let v = got2[i * mml + p];
                        if p < visible(i) {
                            assert_eq!(v.to_bits(), want[i * mml + p].to_bits());
                        } else {
                            assert_eq!(v, POISON);
                        }
                    }
                }
            }
        }
    }
}

/// Direct check of one paged FP8 case against the naive loop (cache decoded by hand).
#[test]
fn paged_matches_naive() {
    let mut r = rng(8);
    let (batch, next_n, heads, dim, block_kv, max_blocks, num_blocks) = (2, 2, 8, 32, 4, 3, 5);
    let row = dim + 4;
    let cache: Vec<u8> = (0..num_blocks * block_kv * row)
        .map(|i| {
            let in_scales = i % (block_kv * row) >= block_kv * dim;
            if in_scales {
                0
            } else {
                rand_e4m3(&mut r)
            }
        })
        .collect();
    let mut cache = cache;
    for b in 0..num_blocks {
        for t in 0..block_kv {
            let s: f32 = r.random_range(0.5f32..1.5);
            let off = b * block_kv * row + block_kv * dim + 4 * t;
            cache[off..off + 4].copy_from_slice(&s.to_le_bytes());
        }
    }
    let table = vec![4, 1, 4, 0, 3, 2];
    let lens = vec![11, 6];
    let tokens = batch * next_n;
    let q: Vec<u8> = (0..tokens * heads * dim)
        .map(|_| rand_e4m3(&mut r))
        .collect();
    let w: Vec<f32> = (0..tokens * heads)
        .map(|_| r.random_range(-1.0f32..1.0))
        .collect();
    let x = PagedMqaInputs {
        q: Query::Fp8(&q),
        kv_cache: &cache,
        kv_format: KvCacheFormat::Fp8,
        weights: &w,
        context_lens: ContextLens::PerSequence(&lens),
        block_table: &table,
        batch,
        next_n,
        heads,
        dim,
        num_blocks,
        block_kv,
        max_blocks,
    };
    let mml = block_kv * max_blocks;
    let mut o = vec![0.0f32; tokens * mml];
    paged_mqa_logits(
        &x,
        true,
        &mut OutView::new(OutBuf::F32(&mut o), tokens, mml, mml).unwrap(),
    )
    .unwrap();
    for i in 0..tokens {
        let (b, t) = (i / next_n, i % next_n);
        let vis = lens[b] as usize - next_n + t + 1;
        for p in 0..mml {
            let got = o[i * mml + p];
            if p >= vis {
                assert_eq!(got, f32::NEG_INFINITY);
                continue;
            }
            let blk = table[b * max_blocks + p / block_kv] as usize;
            let base = blk * block_kv * row;
            let tr = p % block_kv;
            let so = base + block_kv * dim + 4 * tr;
            let s = f32::from_le_bytes(cache[so..so + 4].try_into().unwrap()) as f64;
            let mut acc = 0.0;
            for h in 0..heads {
                let mut dot = 0.0;
                for d in 0..dim {
                    dot += dec_e4m3(q[(i * heads + h) * dim + d])
                        * dec_e4m3(cache[base + tr * dim + d]);
                }
                acc += relu(dot * s) * w[i * heads + h] as f64;
            }
            assert_eq!(got.to_bits(), (acc as f32).to_bits(), "({i},{p})");
        }
    }
}

#[test]
fn paged_errors() {
    let (batch, next_n, heads, dim, block_kv, max_blocks, num_blocks) = (2, 2, 8, 32, 4, 3, 3);
    let cache = vec![0u8; num_blocks * block_kv * (dim + 4)];
    let q = vec![0u8; batch * next_n * heads * dim];
    let w = vec![1.0f32; batch * next_n * heads];
    let lens = vec![5, 12];
    let table = vec![0, 1, 99, 2, 1, 0]; // 99 unread: sequence 0 reads 2 blocks
    let x = PagedMqaInputs {
        q: Query::Fp8(&q),
        kv_cache: &cache,
        kv_format: KvCacheFormat::Fp8,
        weights: &w,
        context_lens: ContextLens::PerSequence(&lens),
        block_table: &table,
        batch,
        next_n,
        heads,
        dim,
        num_blocks,
        block_kv,
        max_blocks,
    };
    let (tokens, mml) = (batch * next_n, block_kv * max_blocks);
    let mut o = vec![0.0f32; tokens * mml];
    let mut run = |x: &PagedMqaInputs| {
        paged_mqa_logits(
            x,
            true,
            &mut OutView::new(OutBuf::F32(&mut o), tokens, mml, mml).unwrap(),
        )
    };
    assert!(run(&x).is_ok());
    let t2 = [0, 3, 0, 2, 1, 0];
    assert!(matches!(
        run(&PagedMqaInputs {
            block_table: &t2,
            ..x
        }),
        Err(Error::Group {
            tensor: "block_table",
            index: 1,
            ..
        })
    ));
    let t3 = [0, 1, 0, 2, -1, 0];
    assert!(matches!(
        run(&PagedMqaInputs {
            block_table: &t3,
            ..x
        }),
        Err(Error::Group {
            tensor: "block_table",
            index: 4,
            ..
        })
    ));
    let l2 = [5, 13];
    assert!(matches!(
        run(&PagedMqaInputs {
            context_lens: ContextLens::PerSequence(&l2),
            ..x
        }),
        Err(Error::Group {
            tensor: "context_lens",
            index: 1,
            ..
        })
    ));
    let l3 = [5, -1];
    assert!(matches!(
        run(&PagedMqaInputs {
            context_lens: ContextLens::PerSequence(&l3),
            ..x
        }),
        Err(Error::Group {
            tensor: "context_lens",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs {
            context_lens: ContextLens::PerToken(&lens),
            ..x
        }),
        Err(Error::Shape {
            tensor: "context_lens",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs {
            kv_cache: &cache[1..],
            ..x
        }),
        Err(Error::Shape {
            tensor: "kv_cache",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs {
            kv_format: KvCacheFormat::Fp4,
            ..x
        }),
        Err(Error::Shape {
            tensor: "kv_cache",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs {
            block_table: &table[1..],
            ..x
        }),
        Err(Error::Shape {
            tensor: "block_table",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs {
            weights: &w[1..],
            ..x
        }),
        Err(Error::Shape {
            tensor: "weights",
            ..
        })
    ));
    assert!(matches!(
        run(&PagedMqaInputs { block_kv: 0, ..x }),
        Err(Error::Argument {
            name: "block_kv",
            ..
        })
    ));
    let mut o2 = vec![0.0f32; tokens * (mml + 1)];
    assert!(matches!(
        paged_mqa_logits(
            &x,
            true,
            &mut OutView::new(OutBuf::F32(&mut o2), tokens, mml + 1, mml + 1).unwrap()
        ),
        Err(Error::Shape {
            tensor: "logits",
            ..
        })
    ));
}
