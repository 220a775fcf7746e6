//! Compiles kernel configurations (NVRTC only, no GPU) and prints ptxas' registers /
//! stack / spills and the compile time of each: every configuration the library can pick
//! (BF16 1D2D), or the tiles given as arguments (`BMxBN[cC][p][d][b][kS]`, e.g. `128x192 128x128c2p`);
//! `--all-variants` compiles every variant (1D2D/1D1D × BF16/FP32/FP32+C) of each;
//! `SCALEGEMM_DUMP_PTX=DIR` / `SCALEGEMM_DUMP_SASS=DIR` also write their sources, PTX and SASS.
//!
//! `source scripts/cuda-wheels.sh && cargo run --release -p scalegemm --example kernel_resources [--all-variants] [TILE ...]`

use scalegemm::gemm::config::{all_configs, Fp8GemmConfig, Fp8Variant};
use scalegemm::runtime::nvrtc;

fn main() -> Result<(), scalegemm::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all_variants = args.iter().any(|a| a == "--all-variants");
    let picked: Vec<Fp8GemmConfig> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let configs = if picked.is_empty() {
        all_configs()
    } else {
        picked
    };
    let variants = if all_variants {
        Fp8Variant::all()
    } else {
        vec![Fp8Variant::BF16_1D2D]
    };
    println!("| kernel | smem KiB | registers | stack B | spill st/ld B | compile s |");
    println!("|---|---|---|---|---|---|");
    for cfg in configs {
        for &v in &variants {
            let spec = cfg.spec(v);
            let t = std::time::Instant::now();
            let out = nvrtc::compile(&spec.label, &spec.source(), &spec.options())?;
            let u = nvrtc::parse_resource_usage(&out.log).unwrap_or_default();
            if std::env::var_os("SCALEGEMM_DUMP_PTX").is_some() {
                scalegemm::runtime::jit::compile(&spec)?; // writes the dumps
            }
            println!(
                "| {} | {:.1} | {} | {} | {}/{} | {:.2} |",
                spec.label,
                cfg.smem_bytes(v) as f64 / 1024.0,
                u.registers,
                u.stack_frame,
                u.spill_stores,
                u.spill_loads,
                t.elapsed().as_secs_f64()
            );
            if out.log.contains("Performance") || out.log.contains("serialized") {
                println!("  ptxas: {}", out.log.replace('\n', "\n  ptxas: "));
            }
        }
    }
    Ok(())
}
