//! The safetensors dump reader of `scalegemm-verify check` / `reference` on arbitrary
//! bytes: [`Dump::read`] and [`Problem::parse`] return `Ok` or a typed [`DumpError`],
//! never panic and never allocate much more than the input (a header may claim tensors
//! of 2^40 elements, or zero-sized tensors whose other dims describe a huge problem: both
//! must be errors before anything is allocated). When the bytes parse to a problem with
//! a small output, `reference` and `check` run on it too (they allocate the output, so a
//! large but legal output is left out, not run).
//!
//! A parsed dump must also survive a write/read round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalegemm_verify::dump::{check, reference, Dump, OutDtype, Problem};

/// Largest output (`rows·cols`, empty dims counted as 1) on which `reference` and
/// `check` run.
const MAX_RUN_ELEMS: usize = 1 << 12;

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = Dump::read(data) else {
        return;
    };
    let bytes = dump.to_bytes().expect("a dump read from bytes writes back");
    assert_eq!(Dump::read(&bytes).expect("written dumps read"), dump);
    let Ok(p) = Problem::parse(&dump) else {
        return;
    };
    let [rows, cols] = p.out_shape();
    if rows.max(1).saturating_mul(cols.max(1)) > MAX_RUN_ELEMS {
        return;
    }
    if let Ok(r) = reference(&dump, OutDtype::Bf16) {
        // The reference's own output must pass the check.
        let rep = check(&r).expect("check accepts what reference wrote");
        assert!(rep.passed(), "{rep}");
    }
    let _ = reference(&dump, OutDtype::F32);
    let _ = check(&dump);
});
