//! Times one reference FP8 1D2D GEMM: `time_reference M N K [bf16|f32|f64]`.
use scalegemm_bench::Fp8Inputs;
use scalegemm_reference::gemm::*;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dim = |i: usize, d: usize| args.get(i).map_or(Ok(d), |s| s.parse()).unwrap_or(d);
    let (m, n, k) = (dim(1, 4096), dim(2, 7168), dim(3, 7168));
    let out = args.get(4).map_or("bf16", String::as_str).to_owned();
    let kb = k.div_ceil(128);
    let t0 = Instant::now();
    let x = Fp8Inputs::new(m, n, k, 7);
    let a = Fp8Operand::new(
        MatView::k_major(&x.a, m, k, k)?,
        Scales::F32(MatView::k_major(&x.sfa, m, kb, kb)?),
        Fp8Recipe::PerToken,
    )?;
    let b = Fp8Operand::new(
        MatView::k_major(&x.b, n, k, k)?,
        Scales::F32(MatView::k_major(&x.sfb, n.div_ceil(128), kb, kb)?),
        Fp8Recipe::PerBlock,
    )?;
    println!("inputs: {:.2} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    match out.as_str() {
        "f32" => {
            let mut d = vec![0f32; m * n];
            gemm(
                &a.into(),
                &b.into(),
                None,
                &mut OutView::new(OutBuf::F32(&mut d), m, n, n)?,
            )?;
        }
        "f64" => {
            let mut d = vec![0f64; m * n];
            gemm(
                &a.into(),
                &b.into(),
                None,
                &mut OutView::new(OutBuf::F64(&mut d), m, n, n)?,
            )?;
        }
        _ => {
            let mut d = vec![half::bf16::ZERO; m * n];
            gemm(
                &a.into(),
                &b.into(),
                None,
                &mut OutView::new(OutBuf::Bf16(&mut d), m, n, n)?,
            )?;
        }
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{m}x{n}x{k} {out}: {s:.2} s ({:.1} GFLOP/s)",
        2.0 * (m * n * k) as f64 / s / 1e9
    );
    Ok(())
}
