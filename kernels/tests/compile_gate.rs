//! The offline compile gate (no GPU needed): every kernel the library picks by itself
//! (every tile `config::choose_for` can return, for every `Fp8Variant`), every tile of
//! `all_configs` (forced configs, CTA pairs, pipelined) in the BF16 1D2D variant, and the
//! scale transform compile with NVRTC to an sm_90a CUBIN; GEMM kernels use no local memory
//! (stack frame or spills), ptxas did not serialise their wgmma (C7514), and their SASS
//! contains `QGMMA` (FP8 wgmma).
//!
//! Needs `libnvrtc.so.13` on the loader path and, for the SASS checks, `cuobjdump` on
//! `PATH` (CI installs the `nvidia-cuda-nvrtc` / `nvidia-cuda-cuobjdump` wheels, see
//! `scripts/cuda-wheels.sh`). Where they are absent the trials are reported as ignored,
//! unless `SCALEGEMM_REQUIRE_NVRTC=1` (set by `.ci/run`), which makes them fail.

use libtest_mimic::{Arguments, Failed, Trial};
use scalegemm::gemm::config::{all_configs, chosen_configs_for, Fp8Variant};
use scalegemm::runtime::{jit, nvrtc, KernelSpec};

fn cuobjdump_available() -> bool {
    std::process::Command::new("cuobjdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn check(spec: &KernelSpec, gemm: bool, sass: bool) -> Result<(), Failed> {
    let cubin =
        nvrtc::compile(&spec.label, &spec.source(), &spec.options()).map_err(|e| e.to_string())?;
    let usage = nvrtc::parse_resource_usage(&cubin.log)
        .ok_or_else(|| format!("no ptxas report in the NVRTC log:\n{}", cubin.log))?;
    // ptxas' C7514: it could not prove an accumulator read safe while wgmma are in flight
    // and serialised every wgmma (a silent slowdown of the whole kernel).
    if gemm && cubin.log.contains("C7514") {
        return Err(format!("{}: wgmma serialised (C7514)\n{}", spec.label, cubin.log).into());
    }
    if gemm && usage.uses_local_memory() {
        return Err(format!(
            "{}: local memory used: {usage:?}\n{}",
            spec.label, cubin.log
        )
        .into());
    }
    if sass {
        let dir = std::env::temp_dir().join(format!("scalegemm-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!(
            "{}.cubin",
            spec.label
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        std::fs::write(&path, &cubin.bytes).map_err(|e| e.to_string())?;
        let text = jit::sass(&path)?;
        let _ = std::fs::remove_file(&path);
        if gemm && !text.contains("QGMMA") {
            return Err(format!("{}: no QGMMA in the SASS", spec.label).into());
        }
        if text.contains("LDL") || text.contains("STL") {
            return Err(format!("{}: local loads/stores in the SASS", spec.label).into());
        }
    }
    Ok(())
}

/// `jit::compile` through the disk cache and the dump variables: a miss then a hit with the
/// same bytes, and `SCALEGEMM_DUMP_PTX` / `SCALEGEMM_DUMP_SASS` files. (The only trial that
/// reads these variables, so setting them here races with nothing.)
fn jit_cache_and_dumps(sass: bool) -> Result<(), Failed> {
    let root = std::env::temp_dir().join(format!("scalegemm-jit-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::env::set_var("SCALEGEMM_CACHE_DIR", root.join("cache"));
    std::env::set_var("SCALEGEMM_DUMP_PTX", root.join("ptx"));
    if sass {
        std::env::set_var("SCALEGEMM_DUMP_SASS", root.join("sass"));
    }
    let spec = all_configs()[0].spec(Fp8Variant::BF16_1D2D);
    let first = jit::compile(&spec).map_err(|e| e.to_string())?;
    let second = jit::compile(&spec).map_err(|e| e.to_string())?;
    if first.cache_hit || !second.cache_hit || first.cubin != second.cubin {
        return Err(format!(
            "cache: first hit {}, second hit {}",
            first.cache_hit, second.cache_hit
        )
        .into());
    }
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(root.join(dir))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let ptx = names("ptx");
    if !ptx.iter().any(|n| n.ends_with(".cu")) || !ptx.iter().any(|n| n.ends_with(".ptx")) {
        return Err(format!("SCALEGEMM_DUMP_PTX wrote {ptx:?}").into());
    }
    if sass {
        let s = names("sass");
        if !s.iter().any(|n| n.ends_with(".cubin")) || !s.iter().any(|n| n.ends_with(".sass")) {
            return Err(format!("SCALEGEMM_DUMP_SASS wrote {s:?}").into());
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    // CI sets SCALEGEMM_REQUIRE_NVRTC=1: there a missing tool fails the gate instead of
    // turning it into ignored trials.
    let required = std::env::var("SCALEGEMM_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    let have_nvrtc = nvrtc::is_available() || required;
    let have_sass = (nvrtc::is_available() && cuobjdump_available()) || required;
    let mut specs: Vec<(KernelSpec, bool)> = all_configs()
        .into_iter()
        .map(|c| (c.spec(Fp8Variant::BF16_1D2D), true))
        .collect();
    for v in Fp8Variant::all() {
        if v != Fp8Variant::BF16_1D2D {
            for c in chosen_configs_for(v) {
                specs.push((c.spec(v), true));
            }
        }
    }
    specs.push((
        KernelSpec {
            label: "sf_to_tma_aligned_mn_major".into(),
            file: "layout/sf_transform.cuh",
            function: "sf_to_tma_aligned_mn_major",
            prelude: String::new(),
            defines: vec![],
        },
        false,
    ));
    // One compile per kernel: the resource check always, the SASS check where cuobjdump is
    // (the trial name says which; without cuobjdump an ignored trial records the gap).
    let mut trials = Vec::new();
    let what = if have_sass { "compile+sass" } else { "compile" };
    for (spec, gemm) in specs {
        trials.push(
            Trial::test(format!("{what} {}", spec.label), move || {
                check(&spec, gemm, have_sass)
            })
            .with_ignored_flag(!have_nvrtc),
        );
    }
    if !have_sass {
        // Recorded as ignored: the SASS checks did not run.
        trials.push(
            Trial::test("sass checks (QGMMA, no LDL/STL): need cuobjdump", || Ok(()))
                .with_ignored_flag(true),
        );
    }
    let sass_dump = have_sass;
    trials.push(
        Trial::test(
            "jit: disk cache miss then hit, SCALEGEMM_DUMP_PTX/SASS",
            move || jit_cache_and_dumps(sass_dump),
        )
        .with_ignored_flag(!have_nvrtc),
    );
    if !have_nvrtc {
        eprintln!("compile gate: libnvrtc not found, every trial is ignored");
    } else if !have_sass {
        eprintln!("compile gate: cuobjdump not on PATH, the SASS checks are not run");
    }
    libtest_mimic::run(&args, trials).exit();
}
