//! Scale-factor layout transforms (DESIGN §2): natural row-major `[rows, cols]` FP32 scales
//! to DeepGEMM's TMA-aligned MN-major layout, on the host and on the GPU.

use cudarc::driver::CudaSlice;

use crate::runtime::launch::{arg, Launch};
use crate::runtime::{Device, KernelSpec};
use crate::tensor::{check_device, round_up, Matrix};
use crate::Error;

/// Leading dimension of the TMA-aligned MN-major layout of `rows` rows: `rows` rounded up to
/// a multiple of 4, so each column of FP32 scales starts 16-byte aligned (the TMA rule).
pub fn tma_aligned_ld(rows: usize) -> usize {
    round_up(rows, 4)
}

/// Host transform: row-major `[rows, cols]` (leading dimension `ld`) to MN-major
/// `[cols][tma_aligned_ld(rows)]`, padding entries 0.
///
/// # Errors
/// [`Error::Stride`] if `ld < cols`; [`Error::Shape`] if `scales` is too short.
pub fn to_tma_aligned_mn_major(
    scales: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<Vec<f32>, Error> {
    if ld < cols.max(1) {
        return Err(Error::Stride(format!(
            "scales: leading dimension {ld} < {cols} columns"
        )));
    }
    if rows > 0 && cols > 0 && scales.len() < (rows - 1) * ld + cols {
        return Err(Error::Shape(format!(
            "scales: {rows}×{cols} (ld {ld}) needs more than {} floats",
            scales.len()
        )));
    }
    let mld = tma_aligned_ld(rows);
    let mut out = vec![0.0f32; mld * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * mld + r] = scales[r * ld + c];
        }
    }
    Ok(out)
}

/// GPU transform of [`to_tma_aligned_mn_major`], into a new buffer on `dev`'s stream.
///
/// # Errors
/// [`Error::Device`] if `scales` lives in another context; compile and driver errors.
pub fn to_tma_aligned_mn_major_gpu(
    dev: &Device,
    scales: &Matrix<f32>,
) -> Result<CudaSlice<f32>, Error> {
    check_device("scales", &scales.data, dev)?;
    let (rows, cols) = (scales.rows, scales.cols);
    let mld = tma_aligned_ld(rows);
    let total = mld * cols;
    let mut out = dev
        .stream()
        .alloc_zeros::<f32>(total.max(1))
        .map_err(Error::driver("allocating scales"))?;
    if total == 0 || rows == 0 {
        return Ok(out);
    }
    if rows > u32::MAX as usize || cols > u32::MAX as usize {
        return Err(Error::TooLarge(format!("scales {rows}×{cols}")));
    }
    let spec = KernelSpec {
        label: "sf_to_tma_aligned_mn_major".into(),
        file: "layout/sf_transform.cuh",
        function: "sf_to_tma_aligned_mn_major",
        prelude: String::new(),
        defines: vec![],
    };
    let func = dev.function(&spec)?;
    let stream = dev.stream();
    let (src, _g1) = scales.ptr(stream);
    let (dst, _g2) = {
        use cudarc::driver::DevicePtrMut;
        out.device_ptr_mut(stream)
    };
    let (ld_in, ld_out, rows32, cols32) = (scales.ld as u64, mld as u64, rows as u32, cols as u32);
    let mut args = [
        arg(&src),
        arg(&ld_in),
        arg(&dst),
        arg(&ld_out),
        arg(&rows32),
        arg(&cols32),
    ];
    let launch = Launch {
        grid: ((total as u64).div_ceil(256) as u32, 1, 1),
        block: (256, 1, 1),
        smem_bytes: 0,
        cluster_x: 1,
        pdl: false,
    };
    // SAFETY: the arguments match `sf_to_tma_aligned_mn_major(const float*, u64, float*, u64,
    // u32, u32)`; `src` holds (rows−1)·ld+cols floats (checked by Matrix::new) and `dst`
    // holds ld_out·cols; the kernel reads and writes only inside those.
    unsafe { launch.run(&func, stream, &mut args)? };
    drop((_g1, _g2));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_transform() {
        // 3 rows × 2 cols, ld 3 (one padding column).
        let s = [1.0, 2.0, -9.0, 3.0, 4.0, -9.0, 5.0, 6.0];
        let t = to_tma_aligned_mn_major(&s, 3, 2, 3).unwrap();
        assert_eq!(t, vec![1.0, 3.0, 5.0, 0.0, 2.0, 4.0, 6.0, 0.0]);
        assert!(to_tma_aligned_mn_major(&s, 3, 2, 1).is_err());
        assert!(to_tma_aligned_mn_major(&s[..7], 3, 2, 3).is_err());
    }
}
