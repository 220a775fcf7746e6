//! The on-disk JIT cache: compiled CUBINs keyed by a hash of everything that affects them.
//!
//! Location: `$SCALEGEMM_CACHE_DIR`, else `$XDG_CACHE_HOME/scalegemm`, else
//! `$HOME/.cache/scalegemm`. Each entry is one file `<key>.cubin` holding a 40-byte header
//! (magic, payload length, SHA-256 of the payload) and the CUBIN. Writes go to a unique
//! temporary file in the same directory and are renamed into place, so concurrent processes
//! never see a partial entry; an entry whose header, length or hash does not check out
//! (a truncated or corrupted file) is treated as a miss and rewritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"SGCUBIN1";

/// The cache directory from the environment, or `None` when neither
/// `SCALEGEMM_CACHE_DIR`, `XDG_CACHE_HOME` nor `HOME` is set.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SCALEGEMM_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("scalegemm"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("scalegemm"))
}

/// The cache key: hex SHA-256 over the source, the options, the NVRTC version and the
/// architecture, each length-prefixed so no two different inputs collide by concatenation.
pub fn key(source: &str, options: &[String], nvrtc_version: (i32, i32), arch: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(source.as_bytes());
    for o in options {
        field(o.as_bytes());
    }
    field(format!("nvrtc {}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes());
    field(arch.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.cubin"))
}

/// Reads the entry for `key`, or `None` if it is absent or fails its integrity check.
pub fn load(dir: &Path, key: &str) -> Option<Vec<u8>> {
    let data = std::fs::read(entry_path(dir, key)).ok()?;
    if data.len() < 48 || &data[..8] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(data[8..16].try_into().ok()?) as usize;
    let payload = &data[48..];
    if payload.len() != len || Sha256::digest(payload).as_slice() != &data[16..48] {
        return None;
    }
    Some(payload.to_vec())
}

/// Writes the entry for `key` atomically (temporary file + rename).
///
/// # Errors
/// The I/O error of creating the directory, writing or renaming; the caller treats a
/// failed store as a warning (the kernel still runs from memory).
pub fn store(dir: &Path, key: &str, cubin: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{key}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(cubin.len() as u64).to_le_bytes())?;
        f.write_all(&Sha256::digest(cubin))?;
        f.write_all(cubin)?;
        f.sync_all()?;
        std::fs::rename(&tmp, entry_path(dir, key))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "scalegemm-cache-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_truncation_is_a_miss() {
        let dir = scratch("rt");
        let k = key("src", &["-DA=1".into()], (13, 0), "sm_90a");
        assert_eq!(load(&dir, &k), None);
        store(&dir, &k, b"cubin bytes").unwrap();
        assert_eq!(load(&dir, &k).as_deref(), Some(&b"cubin bytes"[..]));
        // Truncate the file: a miss, not a panic or a short CUBIN.
        let p = entry_path(&dir, &k);
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..data.len() - 3]).unwrap();
        assert_eq!(load(&dir, &k), None);
        // Corrupt one payload byte: a miss.
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(load(&dir, &k), None);
        store(&dir, &k, b"cubin bytes").unwrap();
        assert!(load(&dir, &k).is_some());
        // No temporary files left behind.
        let leftovers = std::fs::read_dir(&dir).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        });
        assert_eq!(leftovers.count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_depends_on_every_input() {
        let base = key("s", &["a".into(), "b".into()], (13, 0), "sm_90a");
        assert_ne!(
            base,
            key("s2", &["a".into(), "b".into()], (13, 0), "sm_90a")
        );
        assert_ne!(base, key("s", &["ab".into()], (13, 0), "sm_90a"));
        assert_ne!(base, key("s", &["a".into(), "b".into()], (13, 1), "sm_90a"));
        assert_ne!(base, key("s", &["a".into(), "b".into()], (13, 0), "sm_90"));
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn concurrent_writers_leave_a_valid_entry() {
        let dir = scratch("conc");
        let k = key("x", &[], (13, 0), "sm_90a");
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        store(&dir, &k, &payload).unwrap();
                        if let Some(p) = load(&dir, &k) {
                            assert_eq!(p, payload);
                        }
                    }
                });
            }
        });
        assert_eq!(load(&dir, &k).unwrap(), payload);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
