//! Criterion benches of the CPU reference MQA logits (`scalegemm_reference::attention`),
//! FP32 output: DeepGEMM's non-paged test shape (seq_len 2048, seq_len_kv 8192, H 64,
//! D 128, causal-style ranges `ks = 0`, `ke = i + seq_len_kv − seq_len`, `clean_logits`)
//! and a paged decode shape (batch 32, next_n 2, H 64, D 128, block 64, contexts of
//! about 4096 tokens, a shuffled block table).
//!
//! `cargo bench -p scalegemm-bench --bench reference_mqa`

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_bench::{random_e4m3_codes, random_scales};
use scalegemm_reference::attention::{
    mqa_logits, paged_mqa_logits, ContextLens, Keys, KvCacheFormat, MqaInputs, OutBuf, OutView,
    PagedMqaInputs, Query,
};
use std::time::Duration;

fn weights(len: usize, seed: u64) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn bench_nonpaged(c: &mut Criterion) {
    let (s, skv, h, d) = (2048usize, 8192usize, 64usize, 128usize);
    let q = random_e4m3_codes(s * h * d, 1);
    let kv = random_e4m3_codes(skv * d, 2);
    let kv_scales = random_scales(skv, 3);
    let w = weights(s * h, 4);
    let ks = vec![0i32; s];
    let ke: Vec<i32> = (0..s).map(|i| (i + skv - s) as i32).collect();
    let x = MqaInputs {
        q: Query::Fp8(&q),
        kv: Keys::Fp8 {
            codes: &kv,
            scales: &kv_scales,
        },
        weights: &w,
        ks: &ks,
        ke: &ke,
        seq_len: s,
        seq_len_kv: skv,
        heads: h,
        dim: d,
    };
    let mut out = vec![0.0f32; s * skv];
    let mut group = c.benchmark_group("reference_mqa_logits_fp8_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function(format!("s{s}_skv{skv}_h{h}_d{d}"), |b| {
        b.iter(|| {
            let mut o = OutView::new(OutBuf::F32(&mut out), s, skv, skv).unwrap();
            mqa_logits(&x, true, &mut o).unwrap();
        })
    });
    group.finish();
}

fn bench_paged(c: &mut Criterion) {
    let (batch, next_n, h, d, block_kv) = (32usize, 2usize, 64usize, 128usize, 64usize);
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let lens: Vec<i32> = (0..batch).map(|_| r.random_range(2867..5325)).collect();
    let max_blocks = (*lens.iter().max().unwrap() as usize).div_ceil(block_kv);
    let num_blocks: usize = lens.iter().map(|&l| (l as usize).div_ceil(block_kv)).sum();
    // Cache: per block, block_kv·d E4M3 codes then block_kv FP32 scales.
    let codes = random_e4m3_codes(num_blocks * block_kv * d, 6);
    let scales = random_scales(num_blocks * block_kv, 7);
    let mut cache = Vec::with_capacity(num_blocks * block_kv * (d + 4));
    for b in 0..num_blocks {
        cache.extend_from_slice(&codes[b * block_kv * d..(b + 1) * block_kv * d]);
        for s in &scales[b * block_kv..(b + 1) * block_kv] {
            cache.extend_from_slice(&s.to_le_bytes());
        }
    }
    let mut perm: Vec<i32> = (0..num_blocks as i32).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, r.random_range(0..=i));
    }
    let mut table = vec![0i32; batch * max_blocks];
    let mut next = 0;
    for (b, &l) in lens.iter().enumerate() {
        for k in 0..(l as usize).div_ceil(block_kv) {
            table[b * max_blocks + k] = perm[next];
            next += 1;
        }
    }
    let q = random_e4m3_codes(batch * next_n * h * d, 8);
    let w = weights(batch * next_n * h, 9);
    let x = PagedMqaInputs {
        q: Query::Fp8(&q),
        kv_cache: &cache,
        kv_format: KvCacheFormat::Fp8,
        weights: &w,
        context_lens: ContextLens::PerSequence(&lens),
        block_table: &table,
        batch,
        next_n,
        heads: h,
        dim: d,
        num_blocks,
        block_kv,
        max_blocks,
    };
    let (rows, cols) = (batch * next_n, max_blocks * block_kv);
    let mut out = vec![0.0f32; rows * cols];
    let mut group = c.benchmark_group("reference_paged_mqa_logits_fp8_f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function(
        format!("b{batch}_n{next_n}_h{h}_d{d}_blk{block_kv}_ctx4k"),
        |b| {
            b.iter(|| {
                let mut o = OutView::new(OutBuf::F32(&mut out), rows, cols, cols).unwrap();
                paged_mqa_logits(&x, true, &mut o).unwrap();
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench_nonpaged, bench_paged);
criterion_main!(benches);
