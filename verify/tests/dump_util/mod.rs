//! Shared helpers of the dump and CLI tests: small problems written as dumps.
#![allow(dead_code)]

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;
use scalegemm_reference::quant::{
    pack_e2m1, per_block_cast, per_token_cast, ue8m0_codes_of, Elem, ScaleRound,
};
use scalegemm_verify::dump::{Dump, Op, Tensor};

/// `n` values ~ N(0, 1) (sum of uniforms), deterministic in `seed`.
pub fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7)
        .collect()
}

/// An `fp8_gemm_nt` dump (1D2D when `per_block`, else 1D1D) of random data, with an
/// optional F32 C.
pub fn fp8_dump(m: usize, n: usize, k: usize, seed: u64, per_block: bool, with_c: bool) -> Dump {
    let a = randn(m * k, seed);
    let b = randn(n * k, seed + 1);
    let qa = per_token_cast(&a, m, k, 128, Elem::E4M3, ScaleRound::Fp32).unwrap();
    let qb = if per_block {
        per_block_cast(&b, n, k, 128, Elem::E4M3, ScaleRound::Fp32).unwrap()
    } else {
        per_token_cast(&b, n, k, 128, Elem::E4M3, ScaleRound::Fp32).unwrap()
    };
    let mut d = Dump::new(Op::Fp8GemmNt);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[m, k], qa.codes));
    d.insert(
        "sfa",
        Tensor::from_f32(&[qa.scale_rows, qa.scale_cols], &qa.scales),
    );
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[n, k], qb.codes));
    d.insert(
        "sfb",
        Tensor::from_f32(&[qb.scale_rows, qb.scale_cols], &qb.scales),
    );
    if with_c {
        d.insert("c", Tensor::from_f32(&[m, n], &randn(m * n, seed + 2)));
    }
    d
}

/// An `fp8_fp4_gemm_nt` dump with FP4 B scaled per `g` (32 or 128), UE8M0 codes as U8.
pub fn fp8_fp4_dump(m: usize, n: usize, k: usize, g: usize, seed: u64) -> Dump {
    let a = randn(m * k, seed);
    let b = randn(n * k, seed + 1);
    let qa = per_token_cast(&a, m, k, 128, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    let qb = per_token_cast(&b, n, k, g, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
    let mut d = Dump::new(Op::Fp8Fp4GemmNt);
    d.metadata.insert("sfb_gran_k".into(), g.to_string());
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[m, k], qa.codes));
    d.insert(
        "sfa",
        Tensor::from_f32(&[qa.scale_rows, qa.scale_cols], &qa.scales),
    );
    d.insert(
        "b",
        Tensor::from_bytes(Dtype::U8, &[n, k / 2], pack_e2m1(&qb.codes, n, k).unwrap()),
    );
    let codes = ue8m0_codes_of(&qb.scales).unwrap();
    d.insert(
        "sfb",
        Tensor::from_bytes(Dtype::U8, &[qb.scale_rows, qb.scale_cols], codes),
    );
    d
}

/// A `bf16_gemm_nt` dump.
pub fn bf16_dump(m: usize, n: usize, k: usize, seed: u64) -> Dump {
    let to = |v: Vec<f32>| v.into_iter().map(bf16::from_f32).collect::<Vec<_>>();
    let mut d = Dump::new(Op::Bf16GemmNt);
    d.insert("a", Tensor::from_bf16(&[m, k], &to(randn(m * k, seed))));
    d.insert("b", Tensor::from_bf16(&[n, k], &to(randn(n * k, seed + 1))));
    d
}

/// E4M3 codes and per-token FP32 scales of a random `[rows, k]` operand.
pub fn fp8_rows(rows: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let q = per_token_cast(
        &randn(rows * k, seed),
        rows,
        k,
        128,
        Elem::E4M3,
        ScaleRound::Fp32,
    )
    .unwrap();
    (q.codes, q.scales)
}

/// 128x128 per-block E4M3 codes and scales of a random `[rows, k]` operand.
pub fn fp8_blocks(rows: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let q = per_block_cast(
        &randn(rows * k, seed),
        rows,
        k,
        128,
        Elem::E4M3,
        ScaleRound::Fp32,
    )
    .unwrap();
    (q.codes, q.scales)
}

/// The dump's `d` as f32 values (BF16 or F32).
pub fn d_values(d: &Dump) -> Vec<f32> {
    d.tensors["d"].to_f32()
}

/// Replaces `d` with `f(values)`, keeping its dtype and shape.
pub fn edit_d(d: &mut Dump, f: impl FnOnce(&mut Vec<f32>)) {
    let t = &d.tensors["d"];
    let (dtype, shape) = (t.dtype(), t.shape().to_vec());
    let mut v = t.to_f32();
    f(&mut v);
    let nt = if dtype == Dtype::BF16 {
        Tensor::from_bf16(
            &shape,
            &v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>(),
        )
    } else {
        Tensor::from_f32(&shape, &v)
    };
    d.insert("d", nt);
}
