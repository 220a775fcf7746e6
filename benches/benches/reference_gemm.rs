//! Criterion benches of the CPU reference GEMM (`scalegemm_reference::gemm::gemm`),
//! FP8 1D2D with BF16 output, on DeepGEMM-style shapes. The issue target is
//! 4096x7168x7168 in under 15 s on the 2-core build machine; results in
//! benches/README.md.
//!
//! `cargo bench -p scalegemm-bench --bench reference_gemm` (set
//! `SCALEGEMM_BENCH_LARGE=1` to include 4096x7168x7168).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use half::bf16;
use scalegemm_bench::Fp8Inputs;
use scalegemm_reference::gemm::{gemm, Fp8Operand, Fp8Recipe, MatView, OutBuf, OutView, Scales};
use std::time::Duration;

fn run(x: &Fp8Inputs, m: usize, n: usize, k: usize, d: &mut [bf16]) {
    let kb = k.div_ceil(128);
    let a = Fp8Operand::new(
        MatView::k_major(&x.a, m, k, k).unwrap(),
        Scales::F32(MatView::k_major(&x.sfa, m, kb, kb).unwrap()),
        Fp8Recipe::PerToken,
    )
    .unwrap();
    let b = Fp8Operand::new(
        MatView::k_major(&x.b, n, k, k).unwrap(),
        Scales::F32(MatView::k_major(&x.sfb, n.div_ceil(128), kb, kb).unwrap()),
        Fp8Recipe::PerBlock,
    )
    .unwrap();
    let mut out = OutView::new(OutBuf::Bf16(d), m, n, n).unwrap();
    gemm(&a.into(), &b.into(), None, &mut out).unwrap();
}

fn bench(c: &mut Criterion) {
    let mut shapes = vec![(128, 2112, 7168), (1024, 4096, 7168)];
    if std::env::var_os("SCALEGEMM_BENCH_LARGE").is_some() {
        shapes.push((4096, 7168, 7168));
    }
    let mut group = c.benchmark_group("reference_fp8_gemm_1d2d_bf16");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (m, n, k) in shapes {
        let x = Fp8Inputs::new(m, n, k, 1);
        let mut d = vec![bf16::ZERO; m * n];
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{m}x{n}x{k}")),
            &x,
            |bch, x| bch.iter(|| run(x, m, n, k, &mut d)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
