//! Just-in-time compilation: kernel specifications, NVRTC, the disk cache, and the
//! `SCALEGEMM_JIT_DEBUG` / `SCALEGEMM_DUMP_PTX` / `SCALEGEMM_DUMP_SASS` diagnostics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{cache, nvrtc, source};
use crate::Error;

/// One kernel configuration: which embedded source, which entry point, which compile-time
/// constants. Two specs with equal [`KernelSpec::source`] and [`KernelSpec::options`] are
/// the same kernel (and share a cache entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// Human-readable label, e.g. `fp8_gemm_1d2d<BLOCK_M=128, BLOCK_N=128, STAGES=5>`.
    pub label: String,
    /// The embedded file that defines the entry point (a path in [`source::FILES`]).
    pub file: &'static str,
    /// The `extern "C"` entry point.
    pub function: &'static str,
    /// Generated code inserted after `common.cuh` (e.g. `wgmma` wrappers).
    pub prelude: String,
    /// Preprocessor definitions, as `(name, value)`.
    pub defines: Vec<(String, String)>,
}

impl KernelSpec {
    /// The complete source given to NVRTC.
    pub fn source(&self) -> String {
        source::assemble(self.file, &self.prelude)
    }

    /// NVRTC options besides the architecture and language standard.
    ///
    /// `SCALEGEMM_KERNEL_DEFINES` (read once; comma-separated `NAME` or `NAME=VALUE`) appends
    /// defines to every kernel: for experiments and for the planted-bug runs of the
    /// verification suite (`verify/README.md`, "Planted kernel bugs"); never set it in
    /// production.
    pub fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = self
            .defines
            .iter()
            .map(|(k, v)| format!("-D{k}={v}"))
            .collect();
        o.extend(extra_defines().iter().map(|d| format!("-D{d}")));
        // Unannotated functions are device functions (there is no host code here): the
        // kernels' generic lambdas (e.g. `with_sb_boundary` in gemm/promote.cuh) need it.
        o.push("--device-as-default-execution-space".into());
        o.push("--ptxas-options=-v".into());
        o
    }
}

/// Whether `SCALEGEMM_KERNEL_DEFINES` sets `SG_TRACE` (gemm/trace.cuh; see
/// `Device::print_traces`).
pub fn tracing() -> bool {
    extra_defines()
        .iter()
        .any(|d| d == "SG_TRACE" || d.starts_with("SG_TRACE="))
}

/// `SCALEGEMM_KERNEL_DEFINES`, split at commas (see [`KernelSpec::options`]).
fn extra_defines() -> &'static [String] {
    static V: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::env::var("SCALEGEMM_KERNEL_DEFINES")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// What [`compile`] did.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The CUBIN.
    pub cubin: Vec<u8>,
    /// NVRTC's log (empty on a disk-cache hit).
    pub log: String,
    /// Whether the CUBIN came from the disk cache.
    pub cache_hit: bool,
    /// Wall time of the compilation (or cache read), seconds.
    pub seconds: f64,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

fn dump_dir(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    if v.is_empty() || v == "0" {
        return None;
    }
    if v == "1" {
        return Some(PathBuf::from("scalegemm-dump"));
    }
    Some(PathBuf::from(v))
}

fn safe_file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Compiles `spec` to an sm_90a CUBIN, through the disk cache.
///
/// # Errors
/// [`Error::NoNvrtc`] / [`Error::Compile`] from NVRTC. Cache I/O failures are not errors
/// (the kernel is compiled and used; `SCALEGEMM_JIT_DEBUG=1` reports them).
pub fn compile(spec: &KernelSpec) -> Result<Compiled, Error> {
    let debug = env_flag("SCALEGEMM_JIT_DEBUG");
    let src = spec.source();
    let options = spec.options();
    let version = nvrtc::version()?;
    let key = cache::key(&src, &options, version, nvrtc::ARCH);
    let dir = cache::cache_dir();
    let start = Instant::now();
    if let Some(dir) = &dir {
        if let Some(cubin) = cache::load(dir, &key) {
            let seconds = start.elapsed().as_secs_f64();
            if debug {
                eprintln!(
                    "[scalegemm jit] cache hit  {} ({:.1} ms, {})",
                    spec.label,
                    seconds * 1e3,
                    dir.display()
                );
            }
            dump(spec, &src, &options, &cubin);
            return Ok(Compiled {
                cubin,
                log: String::new(),
                cache_hit: true,
                seconds,
            });
        }
    }
    let out = nvrtc::compile(&spec.label, &src, &options)?;
    let seconds = start.elapsed().as_secs_f64();
    if debug {
        eprintln!(
            "[scalegemm jit] compiled   {} in {:.3} s",
            spec.label, seconds
        );
        if let Some(u) = nvrtc::parse_resource_usage(&out.log) {
            eprintln!(
                "[scalegemm jit]   {} registers, {} B stack, {}/{} B spill st/ld",
                u.registers, u.stack_frame, u.spill_stores, u.spill_loads
            );
        }
    }
    if let Some(dir) = &dir {
        if let Err(e) = cache::store(dir, &key, &out.bytes) {
            if debug {
                eprintln!(
                    "[scalegemm jit] could not write the cache in {}: {e}",
                    dir.display()
                );
            }
        }
    }
    dump(spec, &src, &options, &out.bytes);
    Ok(Compiled {
        cubin: out.bytes,
        log: out.log,
        cache_hit: false,
        seconds,
    })
}

/// `SCALEGEMM_DUMP_PTX=DIR` writes `<label>.cu` and `<label>.ptx`; `SCALEGEMM_DUMP_SASS=DIR`
/// writes `<label>.cubin` and, with `cuobjdump` on `PATH`, `<label>.sass`. A value of `1`
/// means `./scalegemm-dump`. Failures are reported on stderr and otherwise ignored.
fn dump(spec: &KernelSpec, src: &str, options: &[String], cubin: &[u8]) {
    let name = safe_file_name(&spec.label);
    if let Some(dir) = dump_dir("SCALEGEMM_DUMP_PTX") {
        let r = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(format!("{name}.cu")), src))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let ptx =
                    nvrtc::compile_ptx(&spec.label, src, options).map_err(|e| e.to_string())?;
                std::fs::write(dir.join(format!("{name}.ptx")), ptx).map_err(|e| e.to_string())
            });
        if let Err(e) = r {
            eprintln!(
                "[scalegemm jit] SCALEGEMM_DUMP_PTX failed for {}: {e}",
                spec.label
            );
        }
    }
    if let Some(dir) = dump_dir("SCALEGEMM_DUMP_SASS") {
        let path = dir.join(format!("{name}.cubin"));
        let r = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, cubin));
        match r {
            Err(e) => eprintln!(
                "[scalegemm jit] SCALEGEMM_DUMP_SASS failed for {}: {e}",
                spec.label
            ),
            Ok(()) => match sass(&path) {
                Ok(text) => {
                    if let Err(e) = std::fs::write(dir.join(format!("{name}.sass")), text) {
                        eprintln!("[scalegemm jit] writing SASS failed: {e}");
                    }
                }
                Err(e) => eprintln!("[scalegemm jit] no SASS for {}: {e}", spec.label),
            },
        }
    }
}

/// Disassembles a CUBIN file with `cuobjdump --dump-sass` (from `PATH`).
///
/// # Errors
/// A message when `cuobjdump` is missing or fails.
pub fn sass(cubin_path: &Path) -> Result<String, String> {
    let out = Command::new("cuobjdump")
        .arg("--dump-sass")
        .arg(cubin_path)
        .output()
        .map_err(|e| format!("cannot run cuobjdump (is it on PATH?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cuobjdump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
