//! Sets `cfg(scalegemm_data)` when the shared MiniLM tensors are present, so tests that
//! need them run, and show as ignored otherwise (a test cannot ignore itself at run time).
//!
//! Resolution as `scalegemm_verify::data::data_dir`: `$SCALEGEMM_DATA_DIR` if set and
//! non-empty (a relative path is taken from this crate's directory, which is also where
//! `cargo test` runs the tests), else `shared/data` beside the workspace root.
//!
//! Reruns when the variable changes, when the file changes or disappears, and when it
//! appears in an existing data directory (or, for the default location, when `shared/`
//! beside the workspace root changes). Not watched: a data directory created later under
//! a path where nothing exists yet, since cargo would then rerun this script and rebuild
//! the crate on every build; set (or re-set) `SCALEGEMM_DATA_DIR` to pick it up.

use std::env;
use std::path::{Path, PathBuf};

const FILE: &str = "minilm-l6-linear.safetensors";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(scalegemm_data)");
    println!("cargo::rerun-if-env-changed=SCALEGEMM_DATA_DIR");
    println!("cargo::rerun-if-changed=build.rs");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let (dir, from_env) = match env::var_os("SCALEGEMM_DATA_DIR") {
        Some(v) if !v.is_empty() => (manifest.join(v), true), // join keeps an absolute path
        _ => (
            manifest
                .parent()
                .and_then(Path::parent)
                .map_or_else(|| manifest.join("..").join(".."), Path::to_path_buf)
                .join("shared")
                .join("data"),
            false,
        ),
    };
    let file = dir.join(FILE);
    if file.is_file() {
        println!("cargo::rerun-if-changed={}", file.display());
        println!("cargo::rustc-cfg=scalegemm_data");
    } else if dir.is_dir() {
        // A directory is scanned recursively: the data directory is small.
        println!("cargo::rerun-if-changed={}", dir.display());
    } else if !from_env {
        // `shared/` beside the workspace root is small too (data and documents).
        if let Some(shared) = dir.parent().filter(|p| p.is_dir()) {
            println!("cargo::rerun-if-changed={}", shared.display());
        }
    }
}
