//! Which GPU kernels the report runs: `scalegemm`'s `fp8_gemm_nt` on GPU 0 when a Hopper
//! GPU and libnvrtc are present, else none, with the reason.

use half::bf16;
use scalegemm::{Device, Fp8Operand, Fp8Recipe, Fp8Scales, Matrix, MatrixMut};

use super::kernel::{Fp8GemmNt, Fp8GemmProblem};

/// `scalegemm::fp8_gemm_nt` on one device. Each run uploads the problem (codes padded to a
/// 16-byte leading dimension, as TMA needs), launches with the heuristic's tile, and
/// copies D back.
struct ScalegemmFp8 {
    dev: Device,
}

impl Fp8GemmNt for ScalegemmFp8 {
    fn name(&self) -> String {
        "scalegemm fp8_gemm_nt (GPU)".to_string()
    }

    fn run(&self, p: &Fp8GemmProblem) -> Result<Vec<bf16>, String> {
        let e = |e: scalegemm::Error| e.to_string();
        let d_err = |e: scalegemm::cudarc::driver::DriverError| e.to_string();
        let (m, n, k) = (p.m, p.n, p.k);
        let (kb, ld) = (k.div_ceil(128), k.div_ceil(16) * 16);
        let pad = |codes: &[u8], rows: usize| -> Vec<u8> {
            let mut out = vec![0u8; rows * ld];
            for r in 0..rows {
                out[r * ld..r * ld + k].copy_from_slice(&codes[r * k..(r + 1) * k]);
            }
            out
        };
        let s = self.dev.stream();
        let a_buf = s.clone_htod(&pad(&p.a, m)).map_err(d_err)?;
        let b_buf = s.clone_htod(&pad(&p.b, n)).map_err(d_err)?;
        let sfa = s.clone_htod(&p.sfa).map_err(d_err)?;
        let sfb = s.clone_htod(&p.sfb).map_err(d_err)?;
        let mut d_buf = s.alloc_zeros::<bf16>((m * n).max(1)).map_err(d_err)?;
        let a = Fp8Operand::new(
            Matrix::new(a_buf.as_view(), m, k, ld).map_err(e)?,
            Fp8Scales::RowMajor(Matrix::new(sfa.as_view(), m, kb, kb).map_err(e)?),
            Fp8Recipe::PerToken,
        )
        .map_err(e)?;
        let b = Fp8Operand::new(
            Matrix::new(b_buf.as_view(), n, k, ld).map_err(e)?,
            Fp8Scales::RowMajor(Matrix::new(sfb.as_view(), n.div_ceil(128), kb, kb).map_err(e)?),
            Fp8Recipe::PerBlock,
        )
        .map_err(e)?;
        {
            let mut d = MatrixMut::new(d_buf.as_view_mut(), m, n, n).map_err(e)?;
            scalegemm::fp8_gemm_nt(&self.dev, &a, &b, &mut d).map_err(e)?;
        }
        let mut out = s.clone_dtoh(&d_buf).map_err(d_err)?;
        self.dev.synchronize().map_err(e)?;
        out.truncate(m * n);
        Ok(out)
    }
}

/// The GPU backends available on this machine, or none with the reason why (no driver,
/// no sm_90 GPU, no libnvrtc). Every report output states that reason when the list is
/// empty.
pub fn gpu_backends() -> (Vec<Box<dyn Fp8GemmNt>>, Option<String>) {
    match Device::new(0) {
        Ok(_) if !scalegemm::runtime::nvrtc::is_available() => (
            vec![],
            Some("GPU kernels not run: libnvrtc.so.13 is not on the loader path".into()),
        ),
        Ok(dev) => (vec![Box::new(ScalegemmFp8 { dev })], None),
        Err(err) => (vec![], Some(format!("GPU kernels not run: {err}"))),
    }
}
