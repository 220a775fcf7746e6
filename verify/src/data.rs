//! Real tensors for tests: where to find them and how to read them.
//!
//! The shared data directory (DESIGN §2, `SCALEGEMM_DATA_DIR`) holds
//! [`MINILM_FILE`], linear-layer weights and activations of all-MiniLM-L6-v2 in BF16
//! (its README: `<data dir>/README.md`). It is never part of the repository, so tests
//! that need it are compiled with `#[ignore]` when it is absent: this crate's build
//! script sets `cfg(scalegemm_data)` when [`MINILM_FILE`] exists under the directory
//! [`data_dir`] resolves to, and such tests carry
//! `#[cfg_attr(not(scalegemm_data), ignore = "real data absent: set SCALEGEMM_DATA_DIR")]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::bf16;
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// The environment variable naming the data directory.
pub const ENV_DATA_DIR: &str = "SCALEGEMM_DATA_DIR";

/// File name of the MiniLM linear-layer tensors in the data directory.
pub const MINILM_FILE: &str = "minilm-l6-linear.safetensors";

/// Number of transformer layers in [`MINILM_FILE`] (`layer0` … `layer5`).
pub const MINILM_LAYERS: usize = 6;

/// Rows (tokens) of every activation in [`MINILM_FILE`].
pub const MINILM_TOKENS: usize = 316;

/// The six linear layers of each MiniLM layer, as they appear in tensor names
/// `layer{L}.{linear}.weight`; each weight is BF16 `[out_features, in_features]` (the B
/// of an NT GEMM), with the `(out, in)` given here.
pub const MINILM_LINEARS: [(&str, [usize; 2]); 6] = [
    ("attention.self.query", [384, 384]),
    ("attention.self.key", [384, 384]),
    ("attention.self.value", [384, 384]),
    ("attention.output.dense", [384, 384]),
    ("intermediate.dense", [1536, 384]),
    ("output.dense", [384, 1536]),
];

/// The linear layers that have a recorded input `layer{L}.{linear}.input` (BF16
/// `[316, in_features]`, the A of the NT GEMM). Key and value read the same input as
/// query, so they have none of their own.
pub const MINILM_INPUT_LINEARS: [&str; 4] = [
    "attention.self.query",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

/// `<workspace root>/../shared/data`, with the workspace root taken as the parent of this
/// crate's manifest directory at compile time.
pub fn default_data_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // verify/ → workspace root → the folder beside it.
    let beside_root = manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.join("..").join(".."), Path::to_path_buf);
    beside_root.join("shared").join("data")
}

/// The data directory: `$SCALEGEMM_DATA_DIR` if set and non-empty, else
/// [`default_data_dir`]; `None` if that directory does not exist. A set variable is never
/// second-guessed: if it names a missing directory the answer is `None`, not the default.
///
/// Prefer an absolute path in the variable: a relative one is taken from the current
/// directory, which under `cargo test` is this crate's directory (`verify/`), not where
/// the command was typed (the build script resolves it from `verify/` too).
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(ENV_DATA_DIR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default_data_dir(),
    };
    dir.is_dir().then_some(dir)
}

/// `<data dir>/minilm-l6-linear.safetensors` if the data directory exists and holds that
/// file, else `None`.
pub fn minilm_path() -> Option<PathBuf> {
    let p = data_dir()?.join(MINILM_FILE);
    p.is_file().then_some(p)
}

/// Name, element type and shape of one tensor in a safetensors file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name in the file.
    pub name: String,
    /// Element type as safetensors spells it (`"BF16"`, `"F32"`, ...).
    pub dtype: String,
    /// Shape, outermost dimension first (row-major, C order).
    pub shape: Vec<usize>,
}

/// A safetensors file read into memory (the MiniLM file is 31 MB), so that many tensors
/// can be taken from one read.
#[derive(Clone)]
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Reads the whole file and checks its header.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::SafeTensors`] if it is not a
    /// valid safetensors file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let file = Self { path, bytes };
        file.parse()?;
        Ok(file)
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|source| Error::SafeTensors {
            path: self.path.clone(),
            source,
        })
    }

    /// Every tensor's name, dtype and shape, sorted by name.
    ///
    /// # Errors
    /// [`Error::SafeTensors`] (not expected after a successful [`open`](Self::open)).
    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        let st = self.parse()?;
        let mut v: Vec<TensorInfo> = st
            .iter()
            .map(|(name, view)| TensorInfo {
                name: name.to_string(),
                dtype: view.dtype().to_string(),
                shape: view.shape().to_vec(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Every tensor name, sorted.
    ///
    /// # Errors
    /// As [`tensors`](Self::tensors).
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.tensors()?.into_iter().map(|t| t.name).collect())
    }

    /// The header's free-form `__metadata__` map (empty if the file has none).
    ///
    /// # Errors
    /// [`Error::SafeTensors`] if the header cannot be read.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.bytes).map_err(|source| Error::SafeTensors {
                path: self.path.clone(),
                source,
            })?;
        Ok(meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// A 2-D BF16 tensor: its elements in row-major order and its shape `[rows, cols]`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] if there is no tensor `name`; [`Error::Dtype`] if it is not
    /// BF16; [`Error::Shape`] if it is not 2-D.
    pub fn bf16(&self, name: &str) -> Result<(Vec<bf16>, [usize; 2])> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|e| match e {
            safetensors::SafeTensorError::TensorNotFound(_) => Error::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            },
            source => Error::SafeTensors {
                path: self.path.clone(),
                source,
            },
        })?;
        if view.dtype() != Dtype::BF16 {
            return Err(Error::Dtype {
                name: name.to_string(),
                expected: "BF16",
                got: view.dtype().to_string(),
            });
        }
        let shape: [usize; 2] = view.shape().try_into().map_err(|_| Error::Shape {
            tensor: name.to_string(),
            expected: "a 2-D tensor".to_string(),
            got: format!("shape {:?}", view.shape()),
        })?;
        // safetensors checked that the data is exactly shape.product() * 2 bytes.
        let data = view
            .data()
            .chunks_exact(2)
            .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        Ok((data, shape))
    }

    /// A 2-D BF16 tensor widened (exactly) to f32, row-major, with its shape `[rows, cols]`.
    ///
    /// # Errors
    /// As [`bf16`](Self::bf16).
    pub fn bf16_as_f32(&self, name: &str) -> Result<(Vec<f32>, [usize; 2])> {
        let (v, shape) = self.bf16(name)?;
        Ok((v.into_iter().map(bf16::to_f32).collect(), shape))
    }
}

/// Every tensor in the safetensors file at `path`: name, dtype and shape, sorted by name.
///
/// # Errors
/// As [`SafetensorsFile::open`].
pub fn list_tensors(path: impl AsRef<Path>) -> Result<Vec<TensorInfo>> {
    SafetensorsFile::open(path)?.tensors()
}

/// Reads the 2-D BF16 tensor `name` from the safetensors file at `path`, widened exactly
/// to f32: row-major elements and shape `[rows, cols]`. Reads the whole file; use
/// [`SafetensorsFile`] to take several tensors from one read.
///
/// # Errors
/// [`Error::Io`], [`Error::SafeTensors`] for an unreadable or invalid file;
/// [`Error::MissingTensor`], [`Error::Dtype`], [`Error::Shape`] as in
/// [`SafetensorsFile::bf16`].
pub fn load_bf16_as_f32(path: impl AsRef<Path>, name: &str) -> Result<(Vec<f32>, [usize; 2])> {
    SafetensorsFile::open(path)?.bf16_as_f32(name)
}
