//! NVRTC: CUDA C++ source to an sm_90a CUBIN, through `libnvrtc` loaded at run time.
//!
//! cudarc's safe NVRTC API returns PTX only; a CUBIN needs the raw calls
//! (`nvrtcCreateProgram`, `nvrtcCompileProgram`, `nvrtcGetCUBIN`, `nvrtcGetProgramLog`).
//! None of this needs a GPU or a driver, so kernels compile (and their register use,
//! stack frames and spills can be checked) on machines without CUDA hardware.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::sys;

use crate::Error;

/// The architecture every kernel is compiled for: `sm_90a` (plain `sm_90` rejects `wgmma`
/// and `setmaxnreg`; PTX ISA §9.7.15, "Target ISA notes").
pub const ARCH: &str = "sm_90a";

/// A compiled kernel module.
#[derive(Debug, Clone)]
pub struct Cubin {
    /// The CUBIN (ELF) bytes, loadable with `cuModuleLoadData`.
    pub bytes: Vec<u8>,
    /// NVRTC's program log (with `--ptxas-options=-v`, ptxas' resource report per kernel).
    pub log: String,
}

/// Whether `libnvrtc` can be loaded (it is looked up on the loader path:
/// `LD_LIBRARY_PATH`, or the `nvidia-cuda-nvrtc` wheel's `nvidia/cu13/lib`).
pub fn is_available() -> bool {
    // SAFETY: only tries to dlopen the library; no symbol is called.
    unsafe { sys::is_culib_present() }
}

fn check_loaded() -> Result<(), Error> {
    if is_available() {
        Ok(())
    } else {
        Err(Error::NoNvrtc(
            "libnvrtc.so.13 is not on the loader path (install the CUDA toolkit or the \
             `nvidia-cuda-nvrtc` wheel and add its lib directory to LD_LIBRARY_PATH)"
                .into(),
        ))
    }
}

/// NVRTC's version as `(major, minor)`.
///
/// # Errors
/// [`Error::NoNvrtc`] when the library cannot be loaded.
pub fn version() -> Result<(i32, i32), Error> {
    check_loaded()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loaded; both pointers are valid for writes.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    nvrtc_ok(r, "nvrtcVersion")?;
    Ok((major, minor))
}

fn nvrtc_ok(r: sys::nvrtcResult, what: &str) -> Result<(), Error> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: nvrtcGetErrorString returns a static NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(sys::nvrtcGetErrorString(r)) };
    Err(Error::Compile {
        kernel: what.into(),
        log: msg.to_string_lossy().into_owned(),
    })
}

/// Owns an `nvrtcProgram` and destroys it on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the handle came from nvrtcCreateProgram and is destroyed once.
        unsafe {
            sys::nvrtcDestroyProgram(&mut self.0);
        }
    }
}

impl Program {
    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: valid program handle; size written by NVRTC, then a buffer of that size.
        unsafe {
            if sys::nvrtcGetProgramLogSize(self.0, &mut size) != sys::nvrtcResult::NVRTC_SUCCESS {
                return String::new();
            }
            let mut buf = vec![0u8; size.max(1)];
            if sys::nvrtcGetProgramLog(self.0, buf.as_mut_ptr() as *mut c_char)
                != sys::nvrtcResult::NVRTC_SUCCESS
            {
                return String::new();
            }
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        }
    }
}

/// Creates and compiles a program with `--gpu-architecture=<arch> -std=c++17` and `options`.
/// Returns the program (to fetch its output) and its log.
fn build(
    name: &str,
    source: &str,
    arch: &str,
    options: &[String],
) -> Result<(Program, String), Error> {
    check_loaded()?;
    let fail = |log: String| Error::Compile {
        kernel: name.into(),
        log,
    };
    let src = CString::new(source).map_err(|_| fail("source contains a NUL byte".into()))?;
    let cname = CString::new(name).map_err(|_| fail("name contains a NUL byte".into()))?;
    let mut all = vec![
        format!("--gpu-architecture={arch}"),
        "-std=c++17".to_string(),
    ];
    all.extend(options.iter().cloned());
    let copts = all
        .iter()
        .map(|o| CString::new(o.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fail("an option contains a NUL byte".into()))?;
    let ptrs: Vec<*const c_char> = copts.iter().map(|c| c.as_ptr()).collect();
    let mut handle: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: src and cname outlive the call; no headers are passed (null, 0).
    let r = unsafe {
        sys::nvrtcCreateProgram(
            &mut handle,
            src.as_ptr(),
            cname.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    nvrtc_ok(r, name)?;
    let prog = Program(handle);
    // SAFETY: ptrs point into copts, alive for the call.
    let r = unsafe { sys::nvrtcCompileProgram(prog.0, ptrs.len() as i32, ptrs.as_ptr()) };
    let log = prog.log();
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(fail(log));
    }
    Ok((prog, log))
}

/// Fetches a compiled program's output through a `(size, copy)` pair of NVRTC calls.
fn output(
    prog: &Program,
    name: &str,
    size_fn: unsafe fn(sys::nvrtcProgram, *mut usize) -> sys::nvrtcResult,
    copy_fn: unsafe fn(sys::nvrtcProgram, *mut c_char) -> sys::nvrtcResult,
) -> Result<Vec<u8>, Error> {
    let mut size = 0usize;
    // SAFETY: compiled program; the buffer is sized as NVRTC reports.
    unsafe {
        nvrtc_ok(size_fn(prog.0, &mut size), name)?;
        let mut bytes = vec![0u8; size];
        nvrtc_ok(copy_fn(prog.0, bytes.as_mut_ptr() as *mut c_char), name)?;
        Ok(bytes)
    }
}

/// Compiles one self-contained CUDA C++ source (no `#include`s left) to an sm_90a CUBIN.
///
/// `name` labels the program in errors; `options` are passed to NVRTC after
/// `--gpu-architecture=sm_90a -std=c++17` (e.g. `-DBLOCK_M=128`, `--ptxas-options=-v`).
///
/// # Errors
/// [`Error::NoNvrtc`] when `libnvrtc` is absent; [`Error::Compile`] with the program log
/// when the source does not compile.
pub fn compile(name: &str, source: &str, options: &[String]) -> Result<Cubin, Error> {
    let (prog, log) = build(name, source, ARCH, options)?;
    let bytes = output(&prog, name, sys::nvrtcGetCUBINSize, sys::nvrtcGetCUBIN)?;
    Ok(Cubin { bytes, log })
}

/// Compiles like [`compile`] but for the virtual architecture `compute_90a` and returns the
/// PTX text (for `SCALEGEMM_DUMP_PTX`).
///
/// # Errors
/// As [`compile`].
pub fn compile_ptx(name: &str, source: &str, options: &[String]) -> Result<String, Error> {
    let options: Vec<String> = options
        .iter()
        .filter(|o| !o.starts_with("--ptxas-options"))
        .cloned()
        .collect();
    let (prog, _) = build(name, source, "compute_90a", &options)?;
    let bytes = output(&prog, name, sys::nvrtcGetPTXSize, sys::nvrtcGetPTX)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// ptxas' resource report for one kernel, parsed from an NVRTC log compiled with
/// `--ptxas-options=-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceUsage {
    /// Registers per thread.
    pub registers: u32,
    /// Stack frame bytes (local memory).
    pub stack_frame: u32,
    /// Spill store bytes.
    pub spill_stores: u32,
    /// Spill load bytes.
    pub spill_loads: u32,
}

impl ResourceUsage {
    /// Whether the kernel uses any local memory (stack frame or spills).
    pub fn uses_local_memory(&self) -> bool {
        self.stack_frame > 0 || self.spill_stores > 0 || self.spill_loads > 0
    }
}

/// Parses the ptxas `-v` lines of an NVRTC log ("N bytes stack frame, N bytes spill stores,
/// N bytes spill loads" and "Used N registers"). Returns `None` when the log has no such
/// lines (compiled without `--ptxas-options=-v`).
pub fn parse_resource_usage(log: &str) -> Option<ResourceUsage> {
    let mut usage = ResourceUsage::default();
    let mut seen = false;
    let number_before = |line: &str, key: &str| -> Option<u32> {
        let idx = line.find(key)?;
        line[..idx].split_whitespace().last()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(v) = number_before(line, "bytes stack frame") {
            usage.stack_frame = usage.stack_frame.max(v);
            seen = true;
        }
        if let Some(v) = number_before(line, "bytes spill stores") {
            usage.spill_stores = usage.spill_stores.max(v);
        }
        if let Some(v) = number_before(line, "bytes spill loads") {
            usage.spill_loads = usage.spill_loads.max(v);
        }
        if let Some(idx) = line.find("Used ") {
            if let Some(v) = line[idx + 5..]
                .split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
            {
                usage.registers = usage.registers.max(v);
                seen = true;
            }
        }
    }
    seen.then_some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_report() {
        let log = "ptxas info    : Compiling entry function 'k' for 'sm_90a'\n\
                   ptxas info    : Function properties for k\n\
                   \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
                   ptxas info    : Used 168 registers, used 1 barriers, 1024 bytes smem\n";
        let u = parse_resource_usage(log).unwrap();
        assert_eq!(
            u,
            ResourceUsage {
                registers: 168,
                stack_frame: 8,
                spill_stores: 4,
                spill_loads: 12
            }
        );
        assert!(u.uses_local_memory());
        let clean = "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\nptxas info : Used 90 registers";
        assert!(!parse_resource_usage(clean).unwrap().uses_local_memory());
        assert_eq!(parse_resource_usage("no report here"), None);
    }
}
