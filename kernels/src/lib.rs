//! `scalegemm`: Hopper (sm_90a) tensor-core kernels for large language models.
//!
//! This crate is empty for now: the JIT runtime (NVRTC → CUBIN, disk cache, launch
//! helpers) and the first kernel, `fp8_gemm_nt`, land with the issue "JIT runtime and
//! the first Hopper FP8 GEMM". The exact CPU reference the kernels are judged against is
//! the separate crate `scalegemm-reference`, which this crate never depends on
//! (DESIGN §1).
