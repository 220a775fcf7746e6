//! The crate's error type.

use cudarc::driver::DriverError;

/// Everything the kernels crate can fail with. Every shape, stride, alignment, dtype and
/// device check runs on the host before a launch and returns one of these; kernels never
/// see an invalid operand.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable CUDA driver: `libcuda` is not on the loader path, or it reports no device
    /// (the message says which).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// The GPU is not a Hopper sm_90 part (these kernels need `wgmma`, TMA and `setmaxnreg`,
    /// sm_90a only). Holds the compute capability found, as `(major, minor)`.
    #[error("unsupported GPU architecture sm_{}{} (scalegemm needs sm_90)", .0 .0, .0 .1)]
    Unsupported((i32, i32)),
    /// NVRTC (`libnvrtc.so.13`) could not be loaded; the kernels are compiled at run time.
    #[error("NVRTC not found: {0}")]
    NoNvrtc(String),
    /// NVRTC rejected a kernel source; holds the program log.
    #[error("NVRTC compilation of `{kernel}` failed:\n{log}")]
    Compile {
        /// The kernel (entry point and configuration) that failed.
        kernel: String,
        /// NVRTC's program log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {context}: {source}")]
    Driver {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: DriverError,
    },
    /// An operand's shape does not fit the operation (names the operand and the rule).
    #[error("shape error: {0}")]
    Shape(String),
    /// A leading dimension (row stride) is too small or not a multiple of what TMA needs.
    #[error("stride error: {0}")]
    Stride(String),
    /// A device pointer is not aligned as TMA or vector stores need.
    #[error("alignment error: {0}")]
    Alignment(String),
    /// Scale factors of the wrong shape, layout or recipe for the operand.
    #[error("scale-factor error: {0}")]
    Scale(String),
    /// An operand lives on another device (context) than the one launching.
    #[error("device error: {0}")]
    Device(String),
    /// A problem too large for the kernel's index types (for example a dimension ≥ 2^31).
    #[error("size error: {0}")]
    TooLarge(String),
}

impl Error {
    pub(crate) fn driver(context: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
        let context = context.into();
        move |source| Error::Driver { context, source }
    }
}
