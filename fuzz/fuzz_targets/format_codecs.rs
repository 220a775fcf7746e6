//! Codec invariants on arbitrary f32 inputs: every encoder returns a code that decodes
//! to the nearest representable value (or the documented NaN/saturation code), and
//! `encode(decode(c)) == c` for every finite code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalegemm_reference::format::{e2m1, e4m3, e5m2, ue8m0};

fuzz_target!(|data: [u8; 4]| {
    let x = f32::from_le_bytes(data);
    for (enc, dec, max) in [
        (e4m3::encode_satfinite as fn(f32) -> u8, e4m3::decode as fn(u8) -> f32, 448.0f32),
        (e5m2::encode_satfinite, e5m2::decode, 57344.0),
        (e2m1::encode_satfinite, e2m1::decode, 6.0),
    ] {
        let y = dec(enc(x));
        if x.is_nan() {
            continue;
        }
        assert!(y.abs() <= max, "satfinite {x} -> {y}");
        if x.abs() <= max {
            // No representable value lies strictly closer to x than y.
            let code = enc(x);
            for c in 0..=255u8 {
                let z = dec(c);
                if z.is_finite() {
                    assert!((z as f64 - x as f64).abs() >= (y as f64 - x as f64).abs(), "{x}: {y} vs {z} (code {code:#x})");
                }
            }
        }
        assert_eq!(enc(y), enc(x), "idempotent on {x}");
    }
    let _ = e4m3::encode(x);
    let _ = e5m2::encode(x);
    let c = ue8m0::encode_ceil(x);
    assert!((1..=254).contains(&c));
    if x.is_finite() && x > 0.0 {
        let s = ue8m0::decode(c);
        // Smallest power of two >= x, except where the clamp to [2^-126, 2^127] bites.
        let clamped = x < f32::MIN_POSITIVE || x > 2f32.powi(127);
        assert!(clamped || (s >= x && s / 2.0 < x), "ceil {x} -> {s}");
    }
});
