//! Tests of `scalegemm_verify::data` that need no real data: directory resolution and the
//! safetensors loader on a small file written here.

use std::collections::HashMap;
use std::path::PathBuf;

use half::bf16;
use safetensors::{Dtype, View};
use scalegemm_verify::data::{
    data_dir, default_data_dir, list_tensors, load_bf16_as_f32, SafetensorsFile, TensorInfo,
    ENV_DATA_DIR,
};
use scalegemm_verify::Error;

#[test]
fn default_dir_is_shared_data_beside_the_workspace_root() {
    let d = default_data_dir();
    assert!(d.ends_with("shared/data"), "{}", d.display());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        d.parent().unwrap().parent().unwrap(),
        root.parent().unwrap()
    );
    if std::env::var_os(ENV_DATA_DIR).is_none() {
        assert_eq!(data_dir(), d.is_dir().then_some(d));
    }
}

/// An owned tensor for `safetensors::serialize`.
struct T(Dtype, Vec<usize>, Vec<u8>);

impl View for &T {
    fn dtype(&self) -> Dtype {
        self.0
    }
    fn shape(&self) -> &[usize] {
        &self.1
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.2[..]).into()
    }
    fn data_len(&self) -> usize {
        self.2.len()
    }
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes())
        .collect()
}

/// Writes a small file and returns its path (unique per test process and name).
fn write_file(tag: &str) -> PathBuf {
    let vals = [1.0f32, -2.5, 0.0, 3.0e-3, 65280.0, -1.0];
    let tensors = [
        ("b.matrix", T(Dtype::BF16, vec![2, 3], bf16_bytes(&vals))),
        ("a.vector", T(Dtype::BF16, vec![6], bf16_bytes(&vals))),
        (
            "c.f32",
            T(
                Dtype::F32,
                vec![1, 2],
                [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ),
    ];
    let meta = HashMap::from([("source".to_string(), "test".to_string())]);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), Some(meta)).unwrap();
    let path = std::env::temp_dir().join(format!(
        "scalegemm-verify-{}-{tag}.safetensors",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn loader_reads_bf16_matrices_and_lists_tensors() {
    let path = write_file("ok");
    let file = SafetensorsFile::open(&path).unwrap();
    assert_eq!(file.path(), path.as_path());
    let infos = file.tensors().unwrap();
    let info = |n: &str, d: &str, s: &[usize]| TensorInfo {
        name: n.to_string(),
        dtype: d.to_string(),
        shape: s.to_vec(),
    };
    assert_eq!(
        infos,
        vec![
            info("a.vector", "BF16", &[6]),
            info("b.matrix", "BF16", &[2, 3]),
            info("c.f32", "F32", &[1, 2]),
        ]
    );
    assert_eq!(list_tensors(&path).unwrap(), infos);
    assert_eq!(file.names().unwrap(), ["a.vector", "b.matrix", "c.f32"]);
    assert_eq!(file.metadata().unwrap()["source"], "test");

    let (v, shape) = load_bf16_as_f32(&path, "b.matrix").unwrap();
    assert_eq!(shape, [2, 3]);
    let expect: Vec<f32> = [1.0f32, -2.5, 0.0, 3.0e-3, 65280.0, -1.0]
        .iter()
        .map(|&x| bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(v, expect);
    let (raw, _) = file.bf16("b.matrix").unwrap();
    assert_eq!(raw[1], bf16::from_f32(-2.5));

    // Typed errors: missing tensor, wrong dtype, wrong rank, missing file, not a file.
    let e = file.bf16_as_f32("nope").unwrap_err();
    assert!(
        matches!(e, Error::MissingTensor { ref name, .. } if name == "nope"),
        "{e}"
    );
    let e = file.bf16_as_f32("c.f32").unwrap_err();
    assert!(
        matches!(e, Error::Dtype { expected: "BF16", ref got, .. } if got == "F32"),
        "{e}"
    );
    let e = file.bf16_as_f32("a.vector").unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref tensor, .. } if tensor == "a.vector"),
        "{e}"
    );
    let e = load_bf16_as_f32(path.with_extension("missing"), "b.matrix").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let junk = path.with_extension("junk");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    let e = SafetensorsFile::open(&junk).unwrap_err();
    assert!(matches!(e, Error::SafeTensors { .. }), "{e}");
    std::fs::remove_file(junk).unwrap();
    std::fs::remove_file(path).unwrap();
}
