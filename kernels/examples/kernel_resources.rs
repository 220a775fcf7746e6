//! Compiles kernel configurations (NVRTC only, no GPU) and prints ptxas' registers /
//! stack / spills and the compile time of each: every configuration the library can pick,
//! or the `BLOCK_MxBLOCK_N` pairs given as arguments (e.g. `128x192 128x224`).
//!
//! `LD_LIBRARY_PATH=<nvrtc lib dir> cargo run --release -p scalegemm --example kernel_resources [BMxBN ...]`

use scalegemm::gemm::config::{all_configs, Fp8GemmConfig};
use scalegemm::runtime::nvrtc;

fn main() -> Result<(), scalegemm::Error> {
    let picked: Vec<Fp8GemmConfig> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (m, n) = a.split_once('x')?;
            Some(Fp8GemmConfig::new(m.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    let configs = if picked.is_empty() {
        all_configs()
    } else {
        picked
    };
    println!("| kernel | smem KiB | registers | stack B | spill st/ld B | compile s |");
    println!("|---|---|---|---|---|---|");
    for cfg in configs {
        let spec = cfg.spec();
        let t = std::time::Instant::now();
        let out = nvrtc::compile(&spec.label, &spec.source(), &spec.options())?;
        let u = nvrtc::parse_resource_usage(&out.log).unwrap_or_default();
        println!(
            "| {} | {:.1} | {} | {} | {}/{} | {:.2} |",
            spec.label,
            cfg.smem_bytes() as f64 / 1024.0,
            u.registers,
            u.stack_frame,
            u.spill_stores,
            u.spill_loads,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
