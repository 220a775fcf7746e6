//! TMA tensor-map descriptors (`cuTensorMapEncodeTiled`, CUDA driver API §6.29).

use cudarc::driver::{sys, DeviceRepr};

use crate::Error;

/// A 2-D TMA descriptor (`CUtensorMap`, 128 opaque bytes) for a row-major matrix in device
/// memory, passed by value to kernels as `const __grid_constant__ TmaDesc`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct TensorMap(pub(crate) sys::CUtensorMap);

// SAFETY: CUtensorMap is plain bytes that the kernel receives by value.
unsafe impl DeviceRepr for TensorMap {}

impl std::fmt::Debug for TensorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TensorMap(..)")
    }
}

/// Element type of a tensor map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmaElem {
    /// 1-byte elements (FP8 codes, packed FP4).
    U8,
    /// FP32 (scale factors, FP32 outputs).
    F32,
    /// BF16 (outputs).
    Bf16,
}

impl TmaElem {
    fn bytes(self) -> u64 {
        match self {
            TmaElem::U8 => 1,
            TmaElem::F32 => 4,
            TmaElem::Bf16 => 2,
        }
    }
}

/// Shared-memory swizzle of the boxes a tensor map delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmaSwizzle {
    /// No swizzle (scale vectors).
    None,
    /// 32-byte swizzle: the box's inner extent must be exactly 32 bytes.
    B32,
    /// 64-byte swizzle: the box's inner extent must be exactly 64 bytes.
    B64,
    /// 128-byte swizzle: the box's inner extent must be exactly 128 bytes (wgmma tiles).
    B128,
}

impl TmaSwizzle {
    /// The swizzle span in bytes (0 for none).
    pub fn bytes(self) -> u64 {
        match self {
            TmaSwizzle::None => 0,
            TmaSwizzle::B32 => 32,
            TmaSwizzle::B64 => 64,
            TmaSwizzle::B128 => 128,
        }
    }
}

/// Encodes a tiled 2-D tensor map over `rows × cols` elements at `addr` with row stride
/// `ld` elements, delivering boxes of `box_rows × box_cols`. Out-of-bounds box elements
/// read as zero.
///
/// # Errors
/// [`Error::Alignment`] if `addr` is not 16-byte aligned or the row stride in bytes is not a
/// multiple of 16 (TMA rules); [`Error::Shape`] for empty or oversized dimensions or
/// boxes (box extents 1..=256, a swizzled box exactly as wide as its swizzle span);
/// [`Error::Driver`] if the driver rejects the descriptor, or no context is current on the
/// calling thread (`CUDA_ERROR_INVALID_CONTEXT`: see [`crate::Device::bind_to_thread`]).
#[allow(clippy::too_many_arguments)]
pub fn encode_2d(
    elem: TmaElem,
    addr: u64,
    rows: u64,
    cols: u64,
    ld: u64,
    box_rows: u32,
    box_cols: u32,
    swizzle: TmaSwizzle,
) -> Result<TensorMap, Error> {
    let eb = elem.bytes();
    if addr % 16 != 0 {
        return Err(Error::Alignment(format!(
            "TMA base address {addr:#x} is not 16-byte aligned"
        )));
    }
    if rows == 0 || cols == 0 || rows >= 1 << 32 || cols >= 1 << 32 {
        return Err(Error::Shape(format!(
            "TMA tensor {rows}×{cols} must have extents in 1..2^32"
        )));
    }
    if ld < cols || (rows > 1 && (ld * eb) % 16 != 0) {
        return Err(Error::Alignment(format!(
            "TMA row stride {ld} elements ({} bytes) must be ≥ {cols} and a multiple of 16 bytes",
            ld * eb
        )));
    }
    if !(1..=256).contains(&box_rows)
        || !(1..=256).contains(&box_cols)
        || (box_cols as u64 * eb) % 16 != 0
    {
        return Err(Error::Shape(format!(
            "TMA box {box_rows}×{box_cols} out of range"
        )));
    }
    if swizzle != TmaSwizzle::None && box_cols as u64 * eb != swizzle.bytes() {
        return Err(Error::Shape(format!(
            "a {}-byte-swizzled TMA box must be {} bytes wide",
            swizzle.bytes(),
            swizzle.bytes()
        )));
    }
    let dims = [cols, rows];
    // Stride of dimension 1 in bytes; for a single row any multiple of 16 ≥ the row works.
    let stride = if rows > 1 {
        ld * eb
    } else {
        (cols * eb).div_ceil(16) * 16
    };
    let strides = [stride];
    let boxes = [box_cols, box_rows];
    let elem_strides = [1u32, 1];
    let dtype = match elem {
        TmaElem::U8 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        TmaElem::F32 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        TmaElem::Bf16 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
    };
    let swz = match swizzle {
        TmaSwizzle::None => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_NONE,
        TmaSwizzle::B32 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_32B,
        TmaSwizzle::B64 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_64B,
        TmaSwizzle::B128 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
    };
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: all arrays have rank (2) or rank-1 (1) entries as the API requires; the
    // driver only encodes the address, it does not dereference it.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            dtype,
            2,
            addr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swz,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    r.result()
        .map_err(Error::driver("cuTensorMapEncodeTiled"))?;
    // SAFETY: initialised by the successful call above (and zeroed before).
    Ok(TensorMap(unsafe { map.assume_init() }))
}
