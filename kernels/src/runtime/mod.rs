//! The runtime every kernel uses: the device handle, NVRTC, the JIT caches, TMA
//! descriptors and launches.

pub mod cache;
pub mod jit;
pub mod launch;
pub mod nvrtc;
pub mod source;
pub mod tma;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr,
};
use cudarc::nvrtc::Ptx;

pub use jit::KernelSpec;

use crate::Error;

/// Whether `libcuda` can be loaded. Every other driver call of cudarc panics without it,
/// so [`Device::new`] checks this first.
pub fn is_driver_available() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { sys::is_culib_present() }
}

/// A Hopper GPU, a stream on it, and the kernels loaded for it.
///
/// Kernels launched through one `Device` run in order on its stream; results are visible to
/// the host after [`Device::synchronize`] (or a blocking copy on the same stream). Loaded
/// functions are cached in memory per kernel configuration; compiled CUBINs also on disk
/// ([`cache`]).
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    sm_count: u32,
    cc: (i32, i32),
    usable_sms: u32,
    functions: Mutex<HashMap<KernelSpec, CudaFunction>>,
    cluster_limits: Mutex<HashMap<(KernelSpec, launch::Launch), u32>>,
    prepared: Mutex<HashMap<PreparedKey, Prepared>>,
    workspace: Mutex<Buffers>,
    /// Every module loaded with the `SG_TRACE` probe, with its kernel's label
    /// ([`Device::print_traces`]).
    traces: Mutex<Vec<(String, Arc<CudaModule>)>>,
}

/// [`Device::workspace`]'s buffers.
#[derive(Default)]
struct Buffers {
    counters: Option<CudaSlice<u8>>,
    scratch: Option<CudaSlice<u8>>,
    /// Buffers replaced by larger ones, kept until the device handle is dropped.
    retired: Vec<CudaSlice<u8>>,
}

/// Split-K memory on [`Device::stream`] ([`Device::workspace`]): device addresses, valid
/// while this guard lives.
pub(crate) struct Workspace<'d> {
    _guard: MutexGuard<'d, Buffers>,
    /// Zeroed u32 counters.
    pub(crate) counters: u64,
    /// Scratch bytes.
    pub(crate) scratch: u64,
}

/// `sg_trace_buf`'s layout (`kernels/cuda/gemm/trace.cuh`): u64 counts per role, CTA and
/// field, the last field nonzero where a CTA wrote them.
const TRACE_CTAS: usize = 256;
const TRACE_FIELDS: usize = 12;

/// Key of [`Device::prepared`]: a GEMM tile configuration and kernel variant.
pub(crate) type PreparedKey = (crate::gemm::Fp8GemmConfig, crate::gemm::config::Fp8Variant);

/// A loaded kernel ready for repeated launches: its shared-memory limit already raised and
/// its resident-cluster count known, so a hot call builds and hashes no [`KernelSpec`].
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) func: CudaFunction,
    /// Resident clusters (`u32::MAX`, no limit, when the kernel launches without clusters).
    pub(crate) max_clusters: u32,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("ordinal", &self.ctx.ordinal())
            .field("sm_count", &self.sm_count)
            .field("compute_capability", &self.cc)
            .finish()
    }
}

impl Device {
    /// Opens GPU `ordinal` (0-based) and creates a stream on it.
    ///
    /// # Errors
    /// [`Error::NoDevice`] when `libcuda` cannot be loaded, the driver fails to initialise or
    /// there is no such device; [`Error::Unsupported`] when it is not compute capability 9.0
    /// (Hopper: these kernels use sm_90a-only instructions).
    pub fn new(ordinal: usize) -> Result<Self, Error> {
        if !is_driver_available() {
            return Err(Error::NoDevice(
                "libcuda.so.1 is not on the loader path (no NVIDIA driver)".into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| Error::NoDevice(format!("cuInit/cuDeviceGetCount: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice(format!(
                "device {ordinal} requested, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::NoDevice(format!("creating a context: {e}")))?;
        let cc = ctx
            .compute_capability()
            .map_err(Error::driver("querying the compute capability"))?;
        if cc != (9, 0) {
            return Err(Error::Unsupported(cc));
        }
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(Error::driver("querying the SM count"))? as u32;
        let stream = ctx
            .new_stream()
            .map_err(Error::driver("creating a stream"))?;
        let usable_sms = std::env::var("SCALEGEMM_NUM_SMS")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&n| n > 0)
            .map_or(sm_count, |n| n.min(sm_count));
        Ok(Device {
            ctx,
            stream,
            sm_count,
            cc,
            usable_sms,
            functions: Mutex::new(HashMap::new()),
            cluster_limits: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            workspace: Mutex::new(Buffers::default()),
            traces: Mutex::new(Vec::new()),
        })
    }

    /// The cudarc context (allocate device memory through [`Device::stream`]).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launch of this handle goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The number of streaming multiprocessors (132 on an H200 SXM).
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// SMs the persistent kernels may use: [`Device::sm_count`], or fewer when
    /// `SCALEGEMM_NUM_SMS` is set to a smaller positive number (to leave SMs to
    /// communication kernels running alongside). The variable is read when the handle is
    /// created.
    pub fn usable_sms(&self) -> u32 {
        self.usable_sms
    }

    /// Compute capability as `(major, minor)`; always `(9, 0)` for a constructed handle.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }

    /// Makes this handle's context current on the calling thread (`cuCtxSetCurrent`, when
    /// it is not already; the previous one is not restored), as driver calls outside a
    /// stream need. The GEMMs, the scale transform and every [`launch::Launch`] do it, so
    /// callers may use a `Device` from any thread; [`tma::encode_2d`] does not (it needs a
    /// current context: call this first).
    ///
    /// # Errors
    /// [`Error::Driver`] if the driver refuses, or with an error cudarc recorded earlier
    /// where it could not return one (a failed free in a drop).
    pub fn bind_to_thread(&self) -> Result<(), Error> {
        self.ctx.bind_to_thread().map_err(Error::driver(
            "making the context current (or an earlier error cudarc recorded)",
        ))
    }

    /// Waits until every launch issued on [`Device::stream`] has finished.
    ///
    /// # Errors
    /// [`Error::Driver`] with the first asynchronous error of those launches.
    pub fn synchronize(&self) -> Result<(), Error> {
        self.stream
            .synchronize()
            .map_err(Error::driver("synchronising the stream"))
    }

    /// The loaded function for `spec`: from memory, else from the disk cache or NVRTC.
    ///
    /// # Errors
    /// Compilation errors ([`Error::NoNvrtc`], [`Error::Compile`]) and module-loading
    /// driver errors.
    pub fn function(&self, spec: &KernelSpec) -> Result<CudaFunction, Error> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(spec)
        {
            return Ok(f.clone());
        }
        let compiled = jit::compile(spec)?;
        let module = self
            .ctx
            .load_module(Ptx::from_binary(compiled.cubin))
            .map_err(Error::driver(format!(
                "loading the module of {}",
                spec.label
            )))?;
        let func = module
            .load_function(spec.function)
            .map_err(Error::driver(format!(
                "finding {} in its module",
                spec.function
            )))?;
        let first = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.clone(), func.clone())
            .is_none();
        // The module a concurrent first call loaded too is not the one launches use; kernels
        // without the probe (no `sg_trace_buf`) are not listed.
        if first && jit::tracing() && module.get_global("sg_trace_buf", &self.stream).is_ok() {
            self.traces
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((spec.label.clone(), module));
        }
        Ok(func)
    }

    /// Experiment probe: with `SCALEGEMM_KERNEL_DEFINES` containing `SG_TRACE`
    /// (`kernels/cuda/gemm/trace.cuh`), prints to stdout, for every kernel with the probe
    /// (the FP8 GEMM's) this handle has loaded since it was created, a line
    /// `SGT kernel <label>` and the ring-wait counts of the kernel's launches since the
    /// previous call: one line `SGT role=R cta=C units=…
    /// kblocks=… cycles=… ns=… wait_first=… wait_rest=… epi=… part0=… part1=… part2=…` per
    /// role (0, 1: math warpgroups; 2: TMA thread; 3: B-scale warp; 4: B thread) and CTA
    /// (those below 256), in SM cycles except `ns` (global timer). A CTA that ran in several
    /// launches shows the last. Synchronises the stream (the host waits for every launch),
    /// then zeroes the counts. `scripts/trace-summary.py` summarises the output. Does nothing
    /// without `SG_TRACE`.
    ///
    /// # Errors
    /// [`Error::Driver`] if the synchronisation or a copy of the counts fails.
    pub fn print_traces(&self) -> Result<(), Error> {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        if traces.is_empty() {
            return Ok(());
        }
        self.synchronize()?;
        for (label, module) in traces.iter() {
            let mut buf = module
                .get_global("sg_trace_buf", &self.stream)
                .map_err(Error::driver("finding sg_trace_buf"))?;
            let bytes: Vec<u8> = self
                .stream
                .clone_dtoh(&buf)
                .map_err(Error::driver("copying sg_trace_buf"))?;
            self.stream
                .memset_zeros(&mut buf)
                .map_err(Error::driver("clearing sg_trace_buf"))?;
            println!("SGT kernel {label}");
            let words: Vec<u64> = bytes
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().expect("8-byte chunks")))
                .collect();
            for (i, f) in words.chunks_exact(TRACE_FIELDS).enumerate() {
                if f[TRACE_FIELDS - 1] == 0 {
                    continue;
                }
                println!(
                    "SGT role={} cta={} units={} kblocks={} cycles={} ns={} wait_first={} \
                     wait_rest={} epi={} part0={} part1={} part2={}",
                    i / TRACE_CTAS,
                    i % TRACE_CTAS,
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    f[4],
                    f[5],
                    f[6],
                    f[7],
                    f[8],
                    f[9]
                );
            }
        }
        self.synchronize()
    }

    /// How many clusters of `launch`'s shape the function of `spec` can keep resident
    /// ([`launch::Launch::max_active_clusters`]), cached per (kernel, launch shape).
    ///
    /// # Errors
    /// As [`Device::function`], and the occupancy query's driver error.
    pub fn max_active_clusters(
        &self,
        spec: &KernelSpec,
        launch: &launch::Launch,
    ) -> Result<u32, Error> {
        let key = (
            spec.clone(),
            launch::Launch {
                grid: (0, 0, 0),
                ..*launch
            },
        );
        if let Some(&n) = self
            .cluster_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(n);
        }
        let func = self.function(spec)?;
        let n = launch.max_active_clusters(&func, &self.stream)?;
        self.cluster_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, n);
        Ok(n)
    }

    /// Device memory for split-K launches on [`Device::stream`]: at least `counters` u32
    /// counters, all zero before each launch, and at least `scratch` bytes of scratch (two
    /// separate buffers, so a launch's scratch never lands on another's counters). Both grow
    /// on demand (to at least twice their size, in whole MiB; the counters zeroed when
    /// allocated), and every launch must leave the counters it used zero (the split-K GEMM
    /// does). A replaced buffer stays allocated until this handle is dropped, so a CUDA graph
    /// that captured a split launch keeps valid pointers; make the largest split call once
    /// before capturing (an allocation inside a capture would belong to the graph), and do not
    /// replay such graphs concurrently on several streams (they share the counters). Hold the
    /// guard until the launch is enqueued.
    ///
    /// # Errors
    /// [`Error::Driver`] when an allocation fails.
    pub(crate) fn workspace(
        &self,
        counters: usize,
        scratch: usize,
    ) -> Result<Workspace<'_>, Error> {
        let mut guard = self.workspace.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut *guard;
        let counters = grow(&self.stream, &mut b.counters, &mut b.retired, counters * 4)?;
        let scratch = grow(&self.stream, &mut b.scratch, &mut b.retired, scratch)?;
        Ok(Workspace {
            _guard: guard,
            counters,
            scratch,
        })
    }

    /// The [`Prepared`] kernel for `key`, made by `make` (spec and launch shape) on first use:
    /// loaded, its dynamic shared-memory limit raised, its resident clusters counted.
    pub(crate) fn prepared(
        &self,
        key: PreparedKey,
        make: impl FnOnce() -> (KernelSpec, launch::Launch),
    ) -> Result<Prepared, Error> {
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let (spec, shape) = make();
        let func = self.function(&spec)?;
        shape.raise_smem_limit(&func)?;
        let max_clusters = if shape.cluster_x > 1 {
            self.max_active_clusters(&spec, &shape)?.max(1)
        } else {
            u32::MAX
        };
        let p = Prepared { func, max_clusters };
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, p.clone());
        Ok(p)
    }
}

/// The address of `slot`'s buffer, replaced first by a zeroed one of at least `bytes` (and
/// twice the old size, in whole MiB) when it is smaller; the old one goes to `retired`.
fn grow(
    stream: &Arc<CudaStream>,
    slot: &mut Option<CudaSlice<u8>>,
    retired: &mut Vec<CudaSlice<u8>>,
    bytes: usize,
) -> Result<u64, Error> {
    let old = slot.as_ref().map_or(0, |w| w.len());
    if slot.is_none() || old < bytes {
        let len = bytes.max(2 * old).max(1).next_multiple_of(1 << 20);
        let new = stream
            .alloc_zeros::<u8>(len)
            .map_err(Error::driver("allocating the split-K workspace"))?;
        retired.extend(slot.replace(new));
    }
    Ok(slot.as_ref().map_or(0, |w| w.device_ptr(stream).0))
}
