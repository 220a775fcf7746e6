//! Tests on the real MiniLM tensors of the shared data directory. They show as ignored
//! when the data is absent (the build script sets `cfg(scalegemm_data)` when it exists).

use scalegemm_reference::format::e4m3;
use scalegemm_verify::data::{
    list_tensors, load_bf16_as_f32, minilm_path, SafetensorsFile, MINILM_INPUT_LINEARS,
    MINILM_LAYERS, MINILM_LINEARS, MINILM_TOKENS,
};
use scalegemm_verify::metrics::{calc_diff, compare, Bound};

/// `D = A · Wᵀ` in f64 for A `[m, k]` and W `[n, k]`, both row-major (an NT GEMM).
fn matmul_nt(a: &[f64], w: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut d = vec![0.0; m * n];
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            d[i * n + j] = ar.iter().zip(wr).map(|(x, y)| x * y).sum();
        }
    }
    d
}

/// Rounds to E4M3 per element, with no scale (satfinite, as PTX `cvt.rn.satfinite`).
fn e4m3_round(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| e4m3::decode(e4m3::encode_satfinite(x as f32)) as f64)
        .collect()
}

#[test]
#[cfg_attr(
    not(scalegemm_data),
    ignore = "real data absent: set SCALEGEMM_DATA_DIR"
)]
fn minilm_tensors_load_and_e4m3_product_is_close() {
    let path = minilm_path().expect("cfg(scalegemm_data) is set but the file is not found");
    let file = SafetensorsFile::open(&path).unwrap();
    let infos = file.tensors().unwrap();
    assert_eq!(infos.len(), 60);
    assert_eq!(list_tensors(&path).unwrap(), infos);
    assert!(
        infos.iter().all(|t| t.dtype == "BF16"),
        "all tensors are BF16"
    );
    let n_weights = infos.iter().filter(|t| t.name.ends_with(".weight")).count();
    let n_inputs = infos.iter().filter(|t| t.name.ends_with(".input")).count();
    assert_eq!((n_weights, n_inputs), (36, 24));
    println!(
        "{}: metadata {:?}",
        path.display(),
        file.metadata().unwrap()
    );

    // Every tensor: present, 2-D BF16 with the README's shape, finite.
    let mut loaded = 0;
    for layer in 0..MINILM_LAYERS {
        for (linear, [out_f, in_f]) in MINILM_LINEARS {
            let name = format!("layer{layer}.{linear}.weight");
            let (w, shape) = file.bf16_as_f32(&name).unwrap();
            assert_eq!(shape, [out_f, in_f], "{name}");
            assert_eq!(w.len(), out_f * in_f);
            assert!(w.iter().all(|v| v.is_finite()), "{name}");
            loaded += 1;
            if MINILM_INPUT_LINEARS.contains(&linear) {
                let name = format!("layer{layer}.{linear}.input");
                let (a, shape) = file.bf16_as_f32(&name).unwrap();
                assert_eq!(shape, [MINILM_TOKENS, in_f], "{name}");
                assert!(a.iter().all(|v| v.is_finite()), "{name}");
                loaded += 1;
            }
        }
    }
    assert_eq!(loaded, 60);

    // One GEMM: layer 0's query projection, [316, 384] · [384, 384]ᵀ, in f64 from the
    // BF16 operands, against the same product with both operands rounded to E4M3 per
    // element without scales. Just exercises the path; scaled FP8 is much closer.
    let (a, [m, k]) = load_bf16_as_f32(&path, "layer0.attention.self.query.input").unwrap();
    let (w, [n, k2]) = file
        .bf16_as_f32("layer0.attention.self.query.weight")
        .unwrap();
    assert_eq!((m, k, n, k2), (316, 384, 384, 384));
    let a: Vec<f64> = a.into_iter().map(f64::from).collect();
    let w: Vec<f64> = w.into_iter().map(f64::from).collect();
    let d_ref = matmul_nt(&a, &w, m, n, k);
    let d_q = matmul_nt(&e4m3_round(&a), &e4m3_round(&w), m, n, k);
    let diff = calc_diff(&d_q, &d_ref);
    let operand_diffs = (
        calc_diff(&e4m3_round(&a), &a),
        calc_diff(&e4m3_round(&w), &w),
    );
    let report = compare(
        &d_q,
        n,
        &d_ref,
        n,
        [m, n],
        &Bound::Tolerance {
            atol: 0.05,
            rtol: 0.1,
        },
    )
    .unwrap();
    println!(
        "unscaled E4M3 operands: calc_diff A {:.4e}, W {:.4e}",
        operand_diffs.0, operand_diffs.1
    );
    println!("unscaled E4M3 product vs BF16 product: calc_diff {diff:.4e}");
    println!("{report}");
    assert_eq!(report.calc_diff, diff);
    // Measured 5.79e-4. Each operand alone gives about 3.5e-4: rounding to 3 mantissa
    // bits leaves a relative error δ with E[δ²] ≈ 2⁻⁷/12, and calc_diff(x(1+δ), x) ≈
    // E[δ²]/2 ≈ 3.3e-4; the product carries both operands' errors.
    assert!(diff.is_finite() && diff > 2e-4 && diff < 1e-3, "{diff}");
    assert!(operand_diffs.0 > 2e-4 && operand_diffs.0 < 6e-4);
    assert!(operand_diffs.1 > 2e-4 && operand_diffs.1 < 6e-4);
}
