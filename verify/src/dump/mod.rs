//! Dumps: the bridge to other frameworks (PyTorch, JAX, another kernel library).
//!
//! A dump is a [safetensors](https://github.com/huggingface/safetensors) file whose
//! `__metadata__` has an `"op"` key naming the operation and whose tensors use the fixed
//! names of that op ([`Op::tensors`]; the README's "Dump format" section has the same
//! table and a PyTorch snippet that writes one). `scalegemm-verify reference IN -o OUT`
//! adds the reference output `d` to a dump of inputs; `scalegemm-verify check DUMP`
//! compares a candidate `d` with the reference under a per-element bound ([`check`]).
//!
//! Conventions (DESIGN §2): `D = C + A·Bᵀ`, every tensor row-major (C order),
//! little-endian. E4M3 data is `F8_E4M3`; FP4 E2M1 data is `U8` `[rows, K/2]` (two codes
//! per byte, low nibble = even K index) or `F4` `[rows, K]` (the same bytes); scale
//! factors are `F32`, or UE8M0 codes as `U8`/`F8_E8M0` (one code per element) or `I32`
//! (four codes packed per word, little-endian, `[rows, ceil(cols/4)]`, padding bytes 0).
//! Extra metadata keys and extra tensors are ignored (and copied by `reference`).
//!
//! Reading never panics and never allocates more than the file's size plus the outputs
//! of the problem it describes: [`Dump::read`] relies on safetensors' validation (header
//! at most 100 MB, offsets contiguous and inside the buffer, byte counts equal to the
//! checked product of the dims), and [`Problem::parse`] checks every shape and caps the
//! output at [`MAX_OUTPUT_ELEMENTS`] (an empty dim counted as 1) and the groups at
//! [`MAX_GROUPS`] before any computation.

mod compute;
mod parse;

pub use compute::{check, reference, CheckReport, OutDtype, FULL_BOUND_WORK};
pub(crate) use compute::{regrid, sample_spans};
pub use parse::Problem;
pub(crate) use parse::{Fp8Mat, ScaleData};

use std::collections::{BTreeMap, HashMap};

use half::bf16;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// Largest number of output elements (`rows × cols` of `d`) a dump may describe:
/// 2^28 (16384 × 16384). Inputs with a zero-sized K can describe a huge output in a tiny
/// file; this cap keeps a malformed or hostile dump from allocating gigabytes.
pub const MAX_OUTPUT_ELEMENTS: usize = 1 << 28;

/// Largest number of groups (`G` of the M-grouped GEMMs) a dump may describe: 2^16.
/// With `N = 0` or `K = 0` the tensors of any number of groups take no bytes, and each
/// group costs an operand in memory; real MoE layers have at most a few hundred experts.
pub const MAX_GROUPS: usize = 1 << 16;

/// Everything that makes a dump unusable (exit code 2 of `reference` and `check`).
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Not a valid safetensors file (truncated, bad header, bad offsets, ...).
    #[error("malformed safetensors file: {0}")]
    Malformed(String),
    /// `__metadata__` has no `"op"` key.
    #[error("no \"op\" key in the safetensors __metadata__ (a dump names its operation, e.g. {{\"op\": \"fp8_gemm_nt\"}})")]
    NoOp,
    /// The `"op"` is not one of [`Op::ALL`].
    #[error("unknown op {op:?}; known ops: {known}")]
    UnknownOp {
        /// The op found.
        op: String,
        /// The known op names, comma separated.
        known: String,
    },
    /// A tensor the op needs is absent.
    #[error("missing tensor `{name}` (op {op} needs it: {what})")]
    Missing {
        /// The op.
        op: &'static str,
        /// The tensor name.
        name: String,
        /// Its expected dtype and shape.
        what: String,
    },
    /// A tensor has a dtype the op does not accept.
    #[error("tensor `{name}` has dtype {got}, expected {expected}")]
    Dtype {
        /// The tensor name.
        name: String,
        /// The accepted dtypes, as safetensors spells them.
        expected: String,
        /// The dtype found.
        got: String,
    },
    /// A tensor has the wrong rank or shape.
    #[error("tensor `{name}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The tensor name.
        name: String,
        /// The expected shape, with the dimension names (`"[M, ceil(K/128)] = [7, 9]"`).
        expected: String,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A value the op cannot take (a group index out of range, an unparsable metadata
    /// value, ...).
    #[error("invalid value in `{name}`: {reason}")]
    Value {
        /// The tensor or metadata key.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The problem's output exceeds [`MAX_OUTPUT_ELEMENTS`] or a size overflows.
    #[error("problem too large: {0}")]
    TooLarge(String),
    /// The reference rejected the inputs (a NaN scale, a UE8M0 NaN code, ...).
    #[error("the reference rejects the inputs: {0}")]
    Reference(#[from] scalegemm_reference::Error),
    /// Serialising a dump failed.
    #[error("cannot write the dump: {0}")]
    Write(String),
}

/// `Result` with [`DumpError`].
pub type DumpResult<T> = std::result::Result<T, DumpError>;

/// One tensor of a dump: dtype, shape (outermost first) and its little-endian bytes.
/// Invariant (checked by [`Tensor::new`]): `data.len()` is the byte size of `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Tensor {
    /// A tensor from raw little-endian bytes.
    ///
    /// # Errors
    /// [`DumpError::TooLarge`] if the element count overflows; [`DumpError::Shape`]
    /// (tensor `"<new>"`) if `data` is not exactly the byte size of `shape`.
    pub fn new(dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> DumpResult<Self> {
        let n = checked_elems("<new>", &shape)?;
        let bits = n
            .checked_mul(dtype.bitsize())
            .ok_or_else(|| DumpError::TooLarge(format!("shape {shape:?}")))?;
        if bits % 8 != 0 || bits / 8 != data.len() {
            return Err(DumpError::Shape {
                name: "<new>".into(),
                expected: format!("{} bytes of {dtype}", bits.div_ceil(8)),
                got: shape,
            });
        }
        Ok(Self { dtype, shape, data })
    }

    /// F32 tensor of `shape` from its values (row-major).
    ///
    /// # Panics
    /// If `values.len()` is not the product of `shape` (a programming error).
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(Dtype::F32, shape.to_vec(), data).expect("f32 values match their shape")
    }

    /// BF16 tensor of `shape` from its values (row-major).
    ///
    /// # Panics
    /// If `values.len()` is not the product of `shape`.
    pub fn from_bf16(shape: &[usize], values: &[bf16]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(Dtype::BF16, shape.to_vec(), data).expect("bf16 values match their shape")
    }

    /// I32 tensor of `shape` from its values (row-major).
    ///
    /// # Panics
    /// If `values.len()` is not the product of `shape`.
    pub fn from_i32(shape: &[usize], values: &[i32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(Dtype::I32, shape.to_vec(), data).expect("i32 values match their shape")
    }

    /// A one-byte-per-element tensor (`F8_E4M3`, `U8`, `F8_E8M0`) of `shape`.
    ///
    /// # Panics
    /// If `dtype` is not one byte wide or `bytes.len()` is not the product of `shape`.
    pub fn from_bytes(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        assert_eq!(dtype.bitsize(), 8, "{dtype} is not a one-byte dtype");
        Self::new(dtype, shape.to_vec(), bytes).expect("bytes match their shape")
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw little-endian bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The elements of an F32 tensor, or of a BF16/F16 one widened exactly to f32.
    /// Other dtypes give an empty vector (callers check the dtype first).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The elements of a BF16 tensor (empty for other dtypes).
    pub fn to_bf16(&self) -> Vec<bf16> {
        if self.dtype != Dtype::BF16 {
            return Vec::new();
        }
        self.data
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// The elements of an I32 tensor (empty for other dtypes).
    pub fn to_i32(&self) -> Vec<i32> {
        if self.dtype != Dtype::I32 {
            return Vec::new();
        }
        self.data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// The element count of `shape`, or [`DumpError::TooLarge`] naming `name` on overflow.
pub(crate) fn checked_elems(name: &str, shape: &[usize]) -> DumpResult<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DumpError::TooLarge(format!("`{name}` shape {shape:?} overflows")))
}

/// A dump in memory: its `__metadata__` and its tensors by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dump {
    /// The `__metadata__` map (string to string, as safetensors defines it).
    pub metadata: BTreeMap<String, String>,
    /// Every tensor, by name.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Dump {
    /// A dump of `op` with no tensors yet.
    pub fn new(op: Op) -> Self {
        let mut metadata = BTreeMap::new();
        metadata.insert("op".to_string(), op.name().to_string());
        Self {
            metadata,
            tensors: BTreeMap::new(),
        }
    }

    /// Parses the bytes of a safetensors file. Only the file format is checked here
    /// (not the op or the tensors an op needs: see [`Problem::parse`]).
    ///
    /// # Errors
    /// [`DumpError::Malformed`] for anything safetensors rejects (truncated file, header
    /// too large or not JSON, overlapping or out-of-range offsets, byte counts that do
    /// not match the shapes). Never panics.
    pub fn read(bytes: &[u8]) -> DumpResult<Self> {
        let malformed = |e: safetensors::SafeTensorError| DumpError::Malformed(e.to_string());
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
        let st = SafeTensors::deserialize(bytes).map_err(malformed)?;
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            tensors.insert(
                name.to_string(),
                Tensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                },
            );
        }
        Ok(Self { metadata, tensors })
    }

    /// Reads a dump from a file.
    ///
    /// # Errors
    /// [`DumpError::Malformed`] if the file cannot be read (the message names it) or is
    /// not a valid safetensors file.
    pub fn read_file(path: &std::path::Path) -> DumpResult<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| DumpError::Malformed(format!("cannot read {}: {e}", path.display())))?;
        Self::read(&bytes)
    }

    /// Serialises to safetensors bytes (tensors in name order, metadata as given).
    ///
    /// # Errors
    /// [`DumpError::Write`] if safetensors refuses (not expected for valid tensors).
    pub fn to_bytes(&self) -> DumpResult<Vec<u8>> {
        if self.tensors.is_empty() {
            // safetensors 0.8 writes metadata without tensors as `{},"__metadata__":{..}}`,
            // which is not JSON (no reader accepts it): write that header here.
            let json = serde_json::json!({ "__metadata__": &self.metadata });
            let mut header = json.to_string().into_bytes();
            header.resize(header.len().next_multiple_of(8), b' ');
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend(header);
            return Ok(out);
        }
        let views = self
            .tensors
            .iter()
            .map(|(name, t)| {
                TensorView::new(t.dtype, t.shape.clone(), &t.data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| DumpError::Write(format!("`{name}`: {e}")))
            })
            .collect::<DumpResult<Vec<_>>>()?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| DumpError::Write(e.to_string()))
    }

    /// The op named by `__metadata__["op"]`.
    ///
    /// # Errors
    /// [`DumpError::NoOp`] without the key, [`DumpError::UnknownOp`] for a name not in
    /// [`Op::ALL`].
    pub fn op(&self) -> DumpResult<Op> {
        let name = self.metadata.get("op").ok_or(DumpError::NoOp)?;
        Op::from_name(name).ok_or_else(|| DumpError::UnknownOp {
            op: name.clone(),
            known: Op::ALL.map(Op::name).join(", "),
        })
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: &str, t: Tensor) {
        self.tensors.insert(name.to_string(), t);
    }
}

/// The operations a dump can describe: every op the reference computes. Names are
/// stable (they are part of the file format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `fp8_gemm_nt`: dense FP8 GEMM, A per-token 1×128, B per-block 128×128 (1D2D) or
    /// per-token (1D1D), DeepGEMM `fp8_gemm_nt`.
    Fp8GemmNt,
    /// `bf16_gemm_nt`: dense BF16 GEMM, DeepGEMM `bf16_gemm_nt`.
    Bf16GemmNt,
    /// `fp8_fp4_gemm_nt`: FP8 A (per-token 1×128) × FP4 E2M1 B with UE8M0 scales per 32
    /// or 128 along K.
    Fp8Fp4GemmNt,
    /// `m_grouped_fp8_gemm_nt_contiguous`: MoE prefill, rows of A assigned to groups by a
    /// per-row index (DeepGEMM `m_grouped_fp8_gemm_nt_contiguous` with `m_indices`).
    MGroupedFp8GemmNtContiguous,
    /// `m_grouped_fp8_gemm_nt_masked`: MoE decode, `[G, max_m, K]` with `masked_m`.
    MGroupedFp8GemmNtMasked,
    /// `k_grouped_fp8_gemm_tn_contiguous`: MoE weight gradient, groups concatenated
    /// along K, FP32 output (DeepGEMM `k_grouped_fp8_gemm_tn_contiguous`).
    KGroupedFp8GemmTnContiguous,
    /// `fp8_mqa_logits`: the lightning indexer's non-paged MQA logits.
    Fp8MqaLogits,
    /// `fp8_paged_mqa_logits`: paged MQA logits (decode) over an FP8 KV cache.
    Fp8PagedMqaLogits,
}

/// One tensor an op reads or writes, for documentation and error messages.
#[derive(Clone, Copy, Debug)]
pub struct TensorSpec {
    /// Fixed tensor name.
    pub name: &'static str,
    /// Accepted dtypes, as safetensors spells them.
    pub dtypes: &'static str,
    /// Shape in the op's dimension names.
    pub shape: &'static str,
    /// `"required"`, `"optional"`, or `"output"` (written by `reference`, read by `check`).
    pub role: &'static str,
}

const fn spec(
    name: &'static str,
    dtypes: &'static str,
    shape: &'static str,
    role: &'static str,
) -> TensorSpec {
    TensorSpec {
        name,
        dtypes,
        shape,
        role,
    }
}

const SF: &str = "F32 | U8, F8_E8M0 (UE8M0 codes) | I32 (4 UE8M0 codes packed)";

impl Op {
    /// Every op, in documentation order.
    pub const ALL: [Op; 8] = [
        Op::Fp8GemmNt,
        Op::Bf16GemmNt,
        Op::Fp8Fp4GemmNt,
        Op::MGroupedFp8GemmNtContiguous,
        Op::MGroupedFp8GemmNtMasked,
        Op::KGroupedFp8GemmTnContiguous,
        Op::Fp8MqaLogits,
        Op::Fp8PagedMqaLogits,
    ];

    /// The stable name used in `__metadata__["op"]`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Fp8GemmNt => "fp8_gemm_nt",
            Op::Bf16GemmNt => "bf16_gemm_nt",
            Op::Fp8Fp4GemmNt => "fp8_fp4_gemm_nt",
            Op::MGroupedFp8GemmNtContiguous => "m_grouped_fp8_gemm_nt_contiguous",
            Op::MGroupedFp8GemmNtMasked => "m_grouped_fp8_gemm_nt_masked",
            Op::KGroupedFp8GemmTnContiguous => "k_grouped_fp8_gemm_tn_contiguous",
            Op::Fp8MqaLogits => "fp8_mqa_logits",
            Op::Fp8PagedMqaLogits => "fp8_paged_mqa_logits",
        }
    }

    /// The op of a name, `None` if unknown.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The tensors of the op with their fixed names, dtypes and shapes. Scale tensors
    /// (`sf*`) accept F32 values, or UE8M0 codes one per element (`U8`, `F8_E8M0`) or four
    /// per `I32` (the last dimension then `ceil(cols/4)`).
    pub fn tensors(self) -> &'static [TensorSpec] {
        const FP8_GEMM: &[TensorSpec] = &[
            spec("a", "F8_E4M3", "[M, K]", "required"),
            spec("sfa", SF, "[M, ceil(K/128)]", "required"),
            spec("b", "F8_E4M3", "[N, K]", "required"),
            spec(
                "sfb",
                SF,
                "[ceil(N/128), ceil(K/128)] (1D2D) or [N, ceil(K/128)] (1D1D)",
                "required",
            ),
            spec("c", "F32 | BF16", "[M, N]", "optional"),
            spec("d", "BF16 | F32", "[M, N]", "output"),
        ];
        const BF16_GEMM: &[TensorSpec] = &[
            spec("a", "BF16", "[M, K]", "required"),
            spec("b", "BF16", "[N, K]", "required"),
            spec("c", "F32 | BF16", "[M, N]", "optional"),
            spec("d", "BF16 | F32", "[M, N]", "output"),
        ];
        const FP8_FP4_GEMM: &[TensorSpec] = &[
            spec("a", "F8_E4M3", "[M, K]", "required"),
            spec("sfa", SF, "[M, ceil(K/128)]", "required"),
            spec(
                "b",
                "U8 (two E2M1 per byte, low nibble first) | F4",
                "[N, K/2] (U8) or [N, K] (F4)",
                "required",
            ),
            spec(
                "sfb",
                "U8, F8_E8M0 | I32 (packed) | F32 (powers of two)",
                "[N, ceil(K/g)], g = 32 or 128 (metadata \"sfb_gran_k\", else inferred)",
                "required",
            ),
            spec("c", "F32 | BF16", "[M, N]", "optional"),
            spec("d", "BF16 | F32", "[M, N]", "output"),
        ];
        const M_CONTIG: &[TensorSpec] = &[
            spec("a", "F8_E4M3", "[M, K]", "required"),
            spec("sfa", SF, "[M, ceil(K/128)]", "required"),
            spec("b", "F8_E4M3", "[G, N, K]", "required"),
            spec("sfb", SF, "[G, ceil(N/128), ceil(K/128)]", "required"),
            spec(
                "grouped_layout",
                "I32",
                "[M]: group of each row, -1 = padding row",
                "required",
            ),
            spec("c", "F32 | BF16", "[M, N]", "optional"),
            spec(
                "d",
                "BF16 | F32",
                "[M, N] (padding rows not compared)",
                "output",
            ),
        ];
        const M_MASKED: &[TensorSpec] = &[
            spec("a", "F8_E4M3", "[G, max_m, K]", "required"),
            spec("sfa", SF, "[G, max_m, ceil(K/128)]", "required"),
            spec("b", "F8_E4M3", "[G, N, K]", "required"),
            spec("sfb", SF, "[G, ceil(N/128), ceil(K/128)]", "required"),
            spec(
                "masked_m",
                "I32",
                "[G]: rows used in each group",
                "required",
            ),
            spec("c", "F32 | BF16", "[G, max_m, N]", "optional"),
            spec(
                "d",
                "BF16 | F32",
                "[G, max_m, N] (rows >= masked_m[g] not compared)",
                "output",
            ),
        ];
        const K_GROUPED: &[TensorSpec] = &[
            spec(
                "a",
                "F8_E4M3",
                "[sum K_g, M] (MN-major, groups stacked along K)",
                "required",
            ),
            spec("sfa", SF, "[sum K_g / 128, M]", "required"),
            spec("b", "F8_E4M3", "[sum K_g, N]", "required"),
            spec("sfb", SF, "[sum K_g / 128, N]", "required"),
            spec("ks", "I32", "[G]: K_g, each a multiple of 128", "required"),
            spec("c", "F32 | BF16", "[G, M, N]", "optional"),
            spec("d", "F32 | BF16", "[G, M, N]", "output"),
        ];
        const MQA: &[TensorSpec] = &[
            spec("q", "F8_E4M3", "[S, H, D]", "required"),
            spec("kv", "F8_E4M3", "[S_kv, D]", "required"),
            spec("kv_scales", "F32", "[S_kv]", "required"),
            spec("weights", "F32", "[S, H]", "required"),
            spec(
                "cu_seqlen_ks",
                "I32",
                "[S]: first key of each query",
                "required",
            ),
            spec(
                "cu_seqlen_ke",
                "I32",
                "[S]: end key (exclusive)",
                "required",
            ),
            spec(
                "d",
                "F32 | BF16",
                "[S, S_kv] (only keys in [ks, ke) compared)",
                "output",
            ),
        ];
        const PAGED: &[TensorSpec] = &[
            spec("q", "F8_E4M3", "[B, next_n, H, D]", "required"),
            spec(
                "kv_cache",
                "U8",
                "[num_blocks, block_kv, 1, D + 4]: per block the block_kv*D E4M3 codes, then block_kv F32 scales",
                "required",
            ),
            spec("weights", "F32", "[B * next_n, H]", "required"),
            spec("context_lens", "I32", "[B] or [B, next_n]", "required"),
            spec("block_table", "I32", "[B, max_blocks]", "required"),
            spec(
                "d",
                "F32 | BF16",
                "[B * next_n, max_blocks * block_kv] (only visible positions compared)",
                "output",
            ),
        ];
        match self {
            Op::Fp8GemmNt => FP8_GEMM,
            Op::Bf16GemmNt => BF16_GEMM,
            Op::Fp8Fp4GemmNt => FP8_FP4_GEMM,
            Op::MGroupedFp8GemmNtContiguous => M_CONTIG,
            Op::MGroupedFp8GemmNtMasked => M_MASKED,
            Op::KGroupedFp8GemmTnContiguous => K_GROUPED,
            Op::Fp8MqaLogits => MQA,
            Op::Fp8PagedMqaLogits => PAGED,
        }
    }

    pub(crate) fn spec_of(self, name: &str) -> String {
        self.tensors()
            .iter()
            .find(|s| s.name == name)
            .map_or_else(String::new, |s| format!("{} {}", s.dtypes, s.shape))
    }
}
