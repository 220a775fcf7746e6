//! The embedded CUDA sources (`kernels/cuda/`) and their assembly into one NVRTC program.
//!
//! NVRTC is given a single self-contained source: `#include "..."` lines of our own
//! headers are resolved here (relative to the including file, each file once, as
//! `#pragma once` would), so no include path, toolkit header or file system is involved,
//! and the exact text compiled is what the JIT cache hashes and `SCALEGEMM_DUMP_PTX` shows.

/// Every CUDA file under `kernels/cuda/`, by its path relative to that directory.
pub const FILES: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../cuda/common.cuh")),
    (
        "ptx/mbarrier.cuh",
        include_str!("../../cuda/ptx/mbarrier.cuh"),
    ),
    ("ptx/tma.cuh", include_str!("../../cuda/ptx/tma.cuh")),
    ("ptx/wgmma.cuh", include_str!("../../cuda/ptx/wgmma.cuh")),
    (
        "ptx/warpgroup.cuh",
        include_str!("../../cuda/ptx/warpgroup.cuh"),
    ),
    ("ptx/cvt.cuh", include_str!("../../cuda/ptx/cvt.cuh")),
    (
        "ptx/stmatrix.cuh",
        include_str!("../../cuda/ptx/stmatrix.cuh"),
    ),
    (
        "ptx/cluster.cuh",
        include_str!("../../cuda/ptx/cluster.cuh"),
    ),
    (
        "gemm/scheduler.cuh",
        include_str!("../../cuda/gemm/scheduler.cuh"),
    ),
    ("ptx/sync.cuh", include_str!("../../cuda/ptx/sync.cuh")),
    (
        "gemm/promote.cuh",
        include_str!("../../cuda/gemm/promote.cuh"),
    ),
    (
        "gemm/epilogue.cuh",
        include_str!("../../cuda/gemm/epilogue.cuh"),
    ),
    ("gemm/trace.cuh", include_str!("../../cuda/gemm/trace.cuh")),
    (
        "gemm/split_k.cuh",
        include_str!("../../cuda/gemm/split_k.cuh"),
    ),
    (
        "gemm/fp8_gemm.cuh",
        include_str!("../../cuda/gemm/fp8_gemm.cuh"),
    ),
    (
        "layout/sf_transform.cuh",
        include_str!("../../cuda/layout/sf_transform.cuh"),
    ),
];

fn file(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// Joins `rel` onto the directory of `from` and normalises `..` components.
fn resolve(from: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for comp in rel.split('/') {
        match comp {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Returns `entry` with its includes inlined (depth first, each file once), after `prelude`
/// (generated code such as the `wgmma` wrappers, inserted right after `common.cuh`).
/// An include of a file that is not embedded becomes an `#error` line, so NVRTC reports
/// it (this module's tests check that no embedded file has one).
pub fn assemble(entry: &str, prelude: &str) -> String {
    let mut out = String::new();
    let mut seen: Vec<String> = Vec::new();
    let mut prelude_done = prelude.is_empty();
    inline(entry, &mut out, &mut seen, prelude, &mut prelude_done);
    if !prelude_done {
        out.push_str(prelude);
    }
    out
}

fn inline(
    path: &str,
    out: &mut String,
    seen: &mut Vec<String>,
    prelude: &str,
    prelude_done: &mut bool,
) {
    if seen.iter().any(|s| s == path) {
        return;
    }
    seen.push(path.to_string());
    let Some(text) = file(path) else {
        debug_assert!(false, "unknown CUDA include {path}");
        out.push_str(&format!("#error \"unknown include {path}\"\n"));
        return;
    };
    out.push_str(&format!("// ---- {path}\n"));
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#pragma once") {
            continue;
        }
        if let Some(rest) = t.strip_prefix("#include \"") {
            let inc = rest.trim_end().trim_end_matches('"');
            inline(&resolve(path, inc), out, seen, prelude, prelude_done);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if path == "common.cuh" && !*prelude_done {
        out.push_str("// ---- generated\n");
        out.push_str(prelude);
        *prelude_done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(resolve("gemm/x.cuh", "../common.cuh"), "common.cuh");
        assert_eq!(resolve("gemm/x.cuh", "scheduler.cuh"), "gemm/scheduler.cuh");
        assert_eq!(resolve("common.cuh", "ptx/tma.cuh"), "ptx/tma.cuh");
    }

    #[test]
    fn every_include_of_every_file_resolves_once() {
        for (path, _) in FILES {
            let src = assemble(path, "// PRELUDE\n");
            assert!(!src.contains("#include"), "{path}: include left");
            assert!(!src.contains("#error"), "{path}: unknown include");
            assert_eq!(src.matches("// ---- common.cuh").count(), 1, "{path}");
            assert_eq!(src.matches("// PRELUDE").count(), 1, "{path}");
            // The prelude follows common.cuh, so it can use its types.
            let common = src.find("// ---- common.cuh").unwrap();
            assert!(src.find("// PRELUDE").unwrap() > common, "{path}");
        }
    }
}
