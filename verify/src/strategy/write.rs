//! Writing a failing case as a ready-to-run safetensors dump.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::{Error, Result};

/// The `"op"` metadata value of an FP8 1D2D GEMM dump.
pub const FP8_GEMM_NT_OP: &str = "fp8_gemm_nt";

/// The tensors of one `fp8_gemm_nt` dump, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Fp8GemmTensors<'a> {
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// A's E4M3 codes, `[M, K]` row-major.
    pub a: &'a [u8],
    /// A's FP32 scales, `[M, ceil(K/128)]` row-major.
    pub sfa: &'a [f32],
    /// B's E4M3 codes, `[N, K]` row-major.
    pub b: &'a [u8],
    /// B's FP32 scales, `[ceil(N/128), ceil(K/128)]` row-major.
    pub sfb: &'a [f32],
    /// Optional C, `[M, N]` row-major FP32.
    pub c: Option<&'a [f32]>,
}

/// Writes an `fp8_gemm_nt` dump: a safetensors file with metadata `"op" =
/// "fp8_gemm_nt"` and tensors `a` (F8_E4M3 `[M, K]`), `sfa` (F32 `[M, ceil(K/128)]`),
/// `b` (F8_E4M3 `[N, K]`), `sfb` (F32 `[ceil(N/128), ceil(K/128)]`) and, when given, `c`
/// (F32 `[M, N]`), all row-major little-endian.
///
/// Errors: [`Error::Shape`] when a slice's length does not match its shape,
/// [`Error::SafeTensors`] when serializing fails, [`Error::Io`] when writing fails.
pub fn write_fp8_gemm_case(path: impl AsRef<Path>, t: &Fp8GemmTensors) -> Result<()> {
    let path = path.as_ref();
    let kb = t.k.div_ceil(128);
    let sfa = f32_bytes(t.sfa);
    let sfb = f32_bytes(t.sfb);
    let c = t.c.map(f32_bytes);
    let mut entries = vec![
        Entry::new("a", Dtype::F8_E4M3, [t.m, t.k], t.a, t.a.len()),
        Entry::new("sfa", Dtype::F32, [t.m, kb], &sfa, t.sfa.len()),
        Entry::new("b", Dtype::F8_E4M3, [t.n, t.k], t.b, t.b.len()),
        Entry::new(
            "sfb",
            Dtype::F32,
            [t.n.div_ceil(128), kb],
            &sfb,
            t.sfb.len(),
        ),
    ];
    if let (Some(bytes), Some(c)) = (&c, t.c) {
        entries.push(Entry::new("c", Dtype::F32, [t.m, t.n], bytes, c.len()));
    }
    let mut views = Vec::with_capacity(entries.len());
    for e in entries {
        let want = e.shape[0].checked_mul(e.shape[1]);
        if want != Some(e.len) {
            return Err(Error::Shape {
                tensor: e.name.to_string(),
                expected: format!("{:?} = {want:?} elements", e.shape),
                got: format!("{} elements", e.len),
            });
        }
        let view = TensorView::new(e.dtype, e.shape.to_vec(), e.bytes).map_err(|source| {
            Error::SafeTensors {
                path: path.to_path_buf(),
                source,
            }
        })?;
        views.push((e.name, view));
    }
    let metadata = HashMap::from([("op".to_string(), FP8_GEMM_NT_OP.to_string())]);
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|source| Error::SafeTensors {
            path: path.to_path_buf(),
            source,
        })?;
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One tensor to write: its bytes, and the element count of the slice it came from.
struct Entry<'a> {
    name: &'static str,
    dtype: Dtype,
    shape: [usize; 2],
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Entry<'a> {
    fn new(
        name: &'static str,
        dtype: Dtype,
        shape: [usize; 2],
        bytes: &'a [u8],
        len: usize,
    ) -> Self {
        Self {
            name,
            dtype,
            shape,
            bytes,
            len,
        }
    }
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}
