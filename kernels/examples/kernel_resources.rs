//! Compiles every kernel configuration the library can pick (NVRTC only, no GPU) and
//! prints ptxas' registers / stack / spills and the compile time of each.
//!
//! `LD_LIBRARY_PATH=<nvrtc lib dir> cargo run --release -p scalegemm --example kernel_resources`

use scalegemm::gemm::config::all_configs;
use scalegemm::runtime::nvrtc;

fn main() -> Result<(), scalegemm::Error> {
    println!("| kernel | smem KiB | registers | stack B | spill st/ld B | compile s |");
    println!("|---|---|---|---|---|---|");
    for cfg in all_configs() {
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
