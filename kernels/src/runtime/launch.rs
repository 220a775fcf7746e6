//! Kernel launches through `cuLaunchKernelEx`: grid, block, dynamic shared memory,
//! cluster dimensions and programmatic dependent launch (CUDA driver API §6.22).

use std::ffi::c_void;

use cudarc::driver::{sys, CudaFunction, CudaStream};

use crate::Error;

/// How to launch one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Launch {
    /// Grid size in CTAs (x, y, z).
    pub grid: (u32, u32, u32),
    /// CTA size in threads (x, y, z).
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per CTA in bytes (above 48 KiB the function attribute is raised
    /// by [`Launch::run`]).
    pub smem_bytes: u32,
    /// Thread-block cluster size along x (1 = no cluster).
    pub cluster_x: u32,
    /// Programmatic dependent launch: the kernel may start while the previous kernel on the
    /// stream finishes (`CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`).
    pub pdl: bool,
}

/// One kernel argument as the driver takes it: a pointer to its bytes.
pub type Arg = *mut c_void;

/// Makes an [`Arg`] pointing at `value`, which must outlive the launch call.
pub fn arg<T>(value: &T) -> Arg {
    value as *const T as *mut c_void
}

/// Makes `stream`'s context current on the calling thread (driver calls made outside
/// cudarc's wrappers need it). cudarc first returns (and clears) any error it recorded
/// where it could not return one, e.g. a failed free in a drop.
fn bind(stream: &CudaStream) -> Result<(), Error> {
    stream.context().bind_to_thread().map_err(Error::driver(
        "making the context current (or an earlier error cudarc recorded)",
    ))
}

impl Launch {
    /// Launches `func` on `stream` with `args` (one pointer per kernel parameter, in order).
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in number, order and types, every
    /// pointer must stay valid for the call, and every device pointer among the arguments
    /// must be valid for what the kernel accesses.
    ///
    /// # Errors
    /// [`Error::Driver`] if making the stream's context current, raising the shared-memory
    /// limit or the launch fails.
    pub unsafe fn run(
        &self,
        func: &CudaFunction,
        stream: &CudaStream,
        args: &mut [Arg],
    ) -> Result<(), Error> {
        bind(stream)?;
        self.raise_smem_limit(func)?;
        self.run_raised(func, stream, args)
    }

    /// [`Launch::run`] for a function whose dynamic shared-memory limit was already raised
    /// to at least [`Launch::smem_bytes`] (by an earlier `run` or by `Device::prepared`).
    ///
    /// # Safety
    /// As [`Launch::run`].
    ///
    /// # Errors
    /// [`Error::Driver`] if making the stream's context current or the launch fails.
    pub(crate) unsafe fn run_raised(
        &self,
        func: &CudaFunction,
        stream: &CudaStream,
        args: &mut [Arg],
    ) -> Result<(), Error> {
        bind(stream)?;
        let mut attrs = self.attributes();
        let config = self.config(self.grid, stream, &mut attrs);
        sys::cuLaunchKernelEx(
            &config,
            func.cu_function(),
            args.as_mut_ptr(),
            std::ptr::null_mut(),
        )
        .result()
        .map_err(Error::driver("cuLaunchKernelEx"))
    }

    /// How many clusters of [`Launch::cluster_x`] CTAs of this shape (block, shared memory)
    /// can be resident at once (`cuOccupancyMaxActiveClusters`). A persistent kernel must
    /// launch no more, or the surplus clusters wait for whole resident ones to finish.
    ///
    /// # Errors
    /// [`Error::Driver`] if the query (or making the context current, or raising the
    /// shared-memory limit) fails.
    pub fn max_active_clusters(
        &self,
        func: &CudaFunction,
        stream: &CudaStream,
    ) -> Result<u32, Error> {
        bind(stream)?;
        self.raise_smem_limit(func)?;
        let mut attrs = self.attributes();
        let config = self.config((self.grid.0.max(self.cluster_x), 1, 1), stream, &mut attrs);
        let mut n: std::ffi::c_int = 0;
        // SAFETY: `config` and `attrs` live across the call; `n` is written by the driver.
        unsafe { sys::cuOccupancyMaxActiveClusters(&mut n, func.cu_function(), &config) }
            .result()
            .map_err(Error::driver("cuOccupancyMaxActiveClusters"))?;
        Ok(n.max(0) as u32)
    }

    pub(crate) fn raise_smem_limit(&self, func: &CudaFunction) -> Result<(), Error> {
        if self.smem_bytes > 48 * 1024 {
            func.set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                self.smem_bytes as i32,
            )
            .map_err(Error::driver("raising the dynamic shared memory limit"))?;
        }
        Ok(())
    }

    /// The driver's launch configuration for `grid` with this shape; `attrs` (from
    /// [`Launch::attributes`]) must outlive its use.
    fn config(
        &self,
        grid: (u32, u32, u32),
        stream: &CudaStream,
        attrs: &mut [sys::CUlaunchAttribute],
    ) -> sys::CUlaunchConfig {
        sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: grid.2,
            blockDimX: self.block.0,
            blockDimY: self.block.1,
            blockDimZ: self.block.2,
            sharedMemBytes: self.smem_bytes,
            hStream: stream.cu_stream(),
            attrs: if attrs.is_empty() {
                std::ptr::null_mut()
            } else {
                attrs.as_mut_ptr()
            },
            numAttrs: attrs.len() as u32,
        }
    }

    fn attributes(&self) -> Vec<sys::CUlaunchAttribute> {
        let mut attrs: Vec<sys::CUlaunchAttribute> = Vec::with_capacity(2);
        if self.cluster_x > 1 {
            // SAFETY: CUlaunchAttribute is plain data; all-zero is a valid (empty) value.
            let mut a: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
            a.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
            a.value.clusterDim.x = self.cluster_x;
            a.value.clusterDim.y = 1;
            a.value.clusterDim.z = 1;
            attrs.push(a);
        }
        if self.pdl {
            // SAFETY: CUlaunchAttribute is plain data; all-zero is a valid (empty) value.
            let mut a: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
            a.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            a.value.programmaticStreamSerializationAllowed = 1;
            attrs.push(a);
        }
        attrs
    }
}
