//! GPU benchmark of `scalegemm::fp8_gemm_nt` (1D2D, BF16 out) on DeepGEMM's dense shapes.
//!
//! Protocol (as the anchor table of the "full speed" issue): A's scales pre-transformed
//! (TMA-aligned MN-major), 3 warm-up launches, then 7 repeats of 20 back-to-back launches
//! between two CUDA events; the median per-launch time is reported. TFLOPS = 2·M·N·K / t;
//! GB/s = (A + B + scales + D bytes) / t. Prints a Markdown table and writes JSON to
//! `$OUT/bench_fp8_gemm.json` (or `./bench_fp8_gemm.json`).
//!
//! Usage (on the GPU machine): `bench_fp8_gemm [M,N,K ...] [BMxBN[cC] ...]`: the given shapes
//! (default: the list below) with the heuristic's tile, or with each given tile.

use half::bf16;
use scalegemm::cudarc::driver::{sys::CUevent_flags, CudaSlice};
use scalegemm::{Device, Fp8Operand, Fp8Recipe, Fp8Scales, Matrix, MatrixMut};
use scalegemm_bench::Fp8Inputs;

const WARMUP: usize = 3;
const REPEATS: usize = 7;
const LAUNCHES: usize = 20;

struct Buffers {
    a: CudaSlice<u8>,
    sfa: CudaSlice<f32>,
    b: CudaSlice<u8>,
    sfb: CudaSlice<f32>,
    d: CudaSlice<bf16>,
}

fn shapes() -> Vec<(usize, usize, usize)> {
    let args: Vec<(usize, usize, usize)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            let v: Vec<usize> = a.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect();
    if !args.is_empty() {
        return args;
    }
    let nk = [
        (2112, 7168),
        (576, 7168),
        (24576, 1536),
        (32768, 512),
        (7168, 16384),
        (4096, 7168),
        (7168, 2048),
    ];
    let mut v: Vec<_> = [1, 128, 4096]
        .iter()
        .flat_map(|&m| nk.iter().map(move |&(n, k)| (m, n, k)))
        .collect();
    v.push((8192, 8192, 8192));
    v
}

/// Tiles given as `BMxBN` or `BMxBNcC` (C CTAs per cluster) arguments.
fn forced_configs() -> Vec<scalegemm::Fp8GemmConfig> {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (tile, cluster) = a.split_once('c').unwrap_or((a.as_str(), "1"));
            let (m, n) = tile.split_once('x')?;
            let cfg = scalegemm::Fp8GemmConfig::new(m.parse().ok()?, n.parse().ok()?);
            Some(cfg.with_cluster(cluster.parse().ok()?))
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::new(0)?;
    let forced = forced_configs();
    let s = dev.stream().clone();
    let start = dev
        .context()
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    let end = dev
        .context()
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    println!("| M | N | K | config | µs | TFLOPS | GB/s |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (m, n, k) in shapes() {
        let inp = Fp8Inputs::new(m, n, k, 7);
        let kb = k.div_ceil(128);
        let sfa_t = scalegemm::layout::to_tma_aligned_mn_major(&inp.sfa, m, kb, kb)?;
        let mut buf = Buffers {
            a: s.clone_htod(&inp.a)?,
            sfa: s.clone_htod(&sfa_t)?,
            b: s.clone_htod(&inp.b)?,
            sfb: s.clone_htod(&inp.sfb)?,
            d: s.alloc_zeros::<bf16>(m * n)?,
        };
        let a = Fp8Operand::new(
            Matrix::new(buf.a.as_view(), m, k, k)?,
            Fp8Scales::TmaAlignedMnMajor(buf.sfa.as_view()),
            Fp8Recipe::PerToken,
        )?;
        let b = Fp8Operand::new(
            Matrix::new(buf.b.as_view(), n, k, k)?,
            Fp8Scales::RowMajor(Matrix::new(buf.sfb.as_view(), n.div_ceil(128), kb, kb)?),
            Fp8Recipe::PerBlock,
        )?;
        let mut d = MatrixMut::new(buf.d.as_view_mut(), m, n, n)?;
        let heuristic = scalegemm::gemm::config::choose(m, n, k, dev.usable_sms());
        let configs = if forced.is_empty() {
            vec![heuristic]
        } else {
            forced.clone()
        };
        for cfg in configs.into_iter().filter(|c| c.supports(m, n)) {
            for _ in 0..WARMUP {
                scalegemm::fp8_gemm_nt_with_config(&dev, &a, &b, &mut d, cfg)?;
            }
            dev.synchronize()?;
            let mut times = Vec::with_capacity(REPEATS);
            for _ in 0..REPEATS {
                start.record(&s)?;
                for _ in 0..LAUNCHES {
                    scalegemm::fp8_gemm_nt_with_config(&dev, &a, &b, &mut d, cfg)?;
                }
                end.record(&s)?;
                end.synchronize()?;
                times.push(start.elapsed_ms(&end)? as f64 * 1e3 / LAUNCHES as f64);
            }
            times.sort_by(f64::total_cmp);
            let us = times[REPEATS / 2];
            let tflops = 2.0 * (m * n * k) as f64 / (us * 1e-6) / 1e12;
            let bytes = (m * k + n * k + m * n * 2 + 4 * (m * kb + n.div_ceil(128) * kb)) as f64;
            let gbs = bytes / (us * 1e-6) / 1e9;
            let label = format!(
                "{}x{}x{}c{}",
                cfg.block_m, cfg.block_n, cfg.stages, cfg.cluster
            );
            println!("| {m} | {n} | {k} | {label} | {us:.1} | {tflops:.0} | {gbs:.0} |");
            rows.push(serde_json::json!({
                "m": m, "n": n, "k": k, "config": label, "us": us, "tflops": tflops, "gbs": gbs,
            }));
        }
    }
    let out = std::env::var("OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| ".".into());
    std::fs::write(
        out.join("bench_fp8_gemm.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    Ok(())
}
