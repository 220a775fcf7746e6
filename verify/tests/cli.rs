//! The `scalegemm-verify` binary end to end: `reference` then `check` on dumps, the
//! required failures of `check`, bad files, and a quick report.

mod dump_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dump_util::{d_values, edit_d, fp8_dump};
use safetensors::Dtype;
use scalegemm_verify::dump::{Dump, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_scalegemm-verify");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, d: &Dump) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, d.to_bytes().unwrap()).unwrap();
    p
}

/// A 256x256x512 1D2D problem and its reference output written by the binary.
fn reference_dump(dir: &Path, out_dtype: &str) -> (PathBuf, Dump) {
    let input = write(
        dir,
        "in.safetensors",
        &fp8_dump(256, 256, 512, 7, true, false),
    );
    let out = dir.join(format!("ref-{out_dtype}.safetensors"));
    let o = run(&[
        "reference",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--out-dtype",
        out_dtype,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let d = Dump::read_file(&out).unwrap();
    (out, d)
}

fn check(path: &Path) -> Output {
    run(&["check", path.to_str().unwrap()])
}

#[test]
fn reference_output_passes_check_in_bf16_and_f32() {
    let dir = tempfile::tempdir().unwrap();
    for dt in ["bf16", "f32"] {
        let (path, d) = reference_dump(dir.path(), dt);
        let want = if dt == "bf16" {
            Dtype::BF16
        } else {
            Dtype::F32
        };
        assert_eq!(d.tensors["d"].dtype(), want);
        assert_eq!(d.metadata["op"], "fp8_gemm_nt");
        let o = check(&path);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("PASS"), "{}", text(&o));
    }
}

/// Applies `f` to the reference `d` and returns check's exit code and output.
fn check_edited(f: impl FnOnce(&mut Vec<f32>)) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut d) = reference_dump(dir.path(), "bf16");
    edit_d(&mut d, f);
    let p = write(dir.path(), "bad.safetensors", &d);
    let o = check(&p);
    (code(&o), text(&o))
}

#[test]
fn check_catches_one_block_scaled_by_two() {
    let (c, t) = check_edited(|v| {
        for r in 128..256 {
            for x in &mut v[r * 256 + 128..r * 256 + 256] {
                *x *= 2.0;
            }
        }
    });
    assert_eq!(c, 1, "{t}");
    assert!(t.contains("FAIL"), "{t}");
}

#[test]
fn check_catches_one_element_off_by_half_the_mean_magnitude() {
    let (c, t) = check_edited(|v| {
        let mean = v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len() as f64;
        v[37 * 256 + 201] += (0.5 * mean) as f32;
    });
    eprintln!("{t}");
    assert_eq!(c, 1, "{t}");
    assert!(
        t.contains("(37, 201)"),
        "the report locates the element: {t}"
    );
}

#[test]
fn check_catches_a_transposed_output() {
    let (c, t) = check_edited(|v| {
        let w = v.clone();
        for r in 0..256 {
            for col in 0..256 {
                v[r * 256 + col] = w[col * 256 + r];
            }
        }
    });
    assert_eq!(c, 1, "{t}");
}

#[test]
fn check_catches_one_nan() {
    let (c, t) = check_edited(|v| v[1000] = f32::NAN);
    assert_eq!(c, 1, "{t}");
    assert!(t.contains("NaN mismatches 1"), "{t}");
}

#[test]
fn truncated_file_is_bad_input_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = reference_dump(dir.path(), "bf16");
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 5, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let o = check(&p);
        assert_eq!(code(&o), 2, "cut at {cut}: {}", text(&o));
        assert!(text(&o).contains("malformed"), "{}", text(&o));
        let o = run(&["reference", p.to_str().unwrap(), "-o", "/dev/null"]);
        assert_eq!(code(&o), 2, "{}", text(&o));
    }
}

#[test]
fn wrong_dtype_is_bad_input_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut d) = reference_dump(dir.path(), "bf16");
    let a = d.tensors["a"].clone();
    d.insert(
        "a",
        Tensor::from_bytes(Dtype::U8, a.shape(), a.data().to_vec()),
    );
    let o = check(&write(dir.path(), "u8.safetensors", &d));
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("`a` has dtype U8"), "{}", text(&o));
    // A candidate of a dtype check cannot compare.
    let (_, mut d) = reference_dump(dir.path(), "bf16");
    let v = d_values(&d);
    d.insert(
        "d",
        Tensor::from_i32(
            &[256, 256],
            &v.iter().map(|&x| x as i32).collect::<Vec<_>>(),
        ),
    );
    let o = check(&write(dir.path(), "i32.safetensors", &d));
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("`d` has dtype I32"), "{}", text(&o));
}

#[test]
fn missing_tensor_unknown_op_and_bad_shape_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = reference_dump(dir.path(), "bf16");
    let mut d = good.clone();
    d.tensors.remove("sfb");
    let o = check(&write(dir.path(), "m.safetensors", &d));
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("missing tensor `sfb`"), "{}", text(&o));
    let mut d = good.clone();
    d.metadata.insert("op".into(), "fp9_gemm".into());
    let o = check(&write(dir.path(), "op.safetensors", &d));
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("unknown op \"fp9_gemm\""), "{}", text(&o));
    let mut d = good.clone();
    d.tensors.remove("d");
    let o = check(&write(dir.path(), "nod.safetensors", &d));
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("missing tensor `d`"), "{}", text(&o));
    let mut d = good;
    d.insert("sfa", Tensor::from_f32(&[256, 3], &[1.0; 768]));
    let o = check(&write(dir.path(), "s.safetensors", &d));
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("`sfa` has shape [256, 3]"),
        "{}",
        text(&o)
    );
}

#[test]
fn extra_metadata_and_bf16_c_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = fp8_dump(64, 128, 256, 3, true, true);
    let c = d.tensors["c"].to_f32();
    let cb: Vec<half::bf16> = c.iter().map(|&x| half::bf16::from_f32(x)).collect();
    d.insert("c", Tensor::from_bf16(&[64, 128], &cb));
    d.metadata.insert("framework".into(), "torch 2.9".into());
    let input = write(dir.path(), "c.safetensors", &d);
    let out = dir.path().join("c-ref.safetensors");
    let o = run(&[
        "reference",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = Dump::read_file(&out).unwrap();
    assert_eq!(r.metadata["framework"], "torch 2.9");
    assert_eq!(code(&check(&out)), 0);
}

#[test]
fn help_and_usage_errors() {
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    for word in ["report", "reference", "check", "Exit codes"] {
        assert!(text(&o).contains(word), "{}", text(&o));
    }
    assert_eq!(code(&run(&["report", "--sample", "x"])), 2);
    assert_eq!(code(&run(&["check"])), 2);
    let o = run(&["check", "/nonexistent/dump.safetensors"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("cannot read"), "{}", text(&o));
    let o = run(&["ops"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o).contains("m_grouped_fp8_gemm_nt_masked"));
}

#[test]
fn quick_report_writes_every_output_and_says_gpu_was_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    let o = run(&[
        "report",
        "--quick",
        "--sample",
        "8",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("GPU kernels not run"), "{}", text(&o));
    for f in ["report.md", "report.json", "report.html"] {
        let body = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(body.contains("GPU kernels not run"), "{f}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["gpu"]["ran"], false);
    assert_eq!(j["ok"], true);
    let cases = j["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["group"] == "adversarial"));
    assert_eq!(cases[0]["quantization"].as_array().unwrap().len(), 4);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "plots are inline");
    assert!(out
        .join("plots")
        .join("error-vs-k-quantization.svg")
        .is_file());
}

#[test]
fn report_on_weights_pairs_inputs_and_falls_back_to_random_activations() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Dump::default();
    let w = dump_util::randn(64 * 128, 1);
    d.insert("layer0.q.weight", Tensor::from_f32(&[64, 128], &w));
    let x: Vec<half::bf16> = dump_util::randn(16 * 128, 2)
        .iter()
        .map(|&v| half::bf16::from_f32(v))
        .collect();
    d.insert("layer0.q.input", Tensor::from_bf16(&[16, 128], &x));
    let k16: Vec<u8> = dump_util::randn(32 * 128, 3)
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    d.insert(
        "layer0.k.weight",
        Tensor::new(Dtype::F16, vec![32, 128], k16).unwrap(),
    );
    d.insert(
        "other.weight",
        Tensor::from_f32(&[8, 256], &dump_util::randn(8 * 256, 4)),
    );
    let path = write(dir.path(), "w.safetensors", &d);
    let out = dir.path().join("rep");
    let o = run(&[
        "report",
        "--weights",
        path.to_str().unwrap(),
        "--sample",
        "4",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(code(&o), 0, "{t}");
    assert!(t.contains("A = layer0.q.input, shared"), "{t}");
    assert!(t.contains("N(0, 1) (no recorded input)"), "{t}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["cases"].as_array().unwrap().len(), 3);
    assert!(j["data"].as_str().unwrap().starts_with("weights: "));
    let o = run(&["report", "--weights", "/nonexistent.safetensors"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
}

#[test]
#[cfg_attr(
    not(scalegemm_data),
    ignore = "real data absent: set SCALEGEMM_DATA_DIR"
)]
fn report_on_the_minilm_weights() {
    let path = scalegemm_verify::data::minilm_path().expect("cfg(scalegemm_data) is set");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    let o = run(&[
        "report",
        "--weights",
        path.to_str().unwrap(),
        "--sample",
        "8",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let cases = j["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 36, "one case per MiniLM weight");
    for c in cases {
        assert!(c["error"].is_null(), "{c}");
        // Key and value share the query's recorded input: no random activations.
        assert!(!c["data"].as_str().unwrap().contains("N(0, 1)"), "{c}");
        let q = &c["quantization"][0];
        assert!(
            q["calc_diff"].as_f64().unwrap() < 1e-3,
            "FP8 1D2D on real data: {c}"
        );
    }
}
