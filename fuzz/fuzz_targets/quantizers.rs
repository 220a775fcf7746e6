//! Quantizer invariants on arbitrary f32 matrices (NaN and ±inf included): every cast
//! (per-token, per-block, per-channel; G = 32 or 128; E4M3 or E2M1; FP32 or UE8M0
//! scales) either returns `NonFinite` naming the first non-finite element, or a result
//! whose scales are the recipe's (finite, positive, powers of two for UE8M0) and whose
//! dequantized elements lie within half an ulp of the format, times the scale, of the
//! input (plus the f32 rounding of `x·(1/scale)`); with a power-of-two scale every code
//! is exactly the nearest-even one.
//!
//! Input: 5 header bytes, then values.
//! - byte 0: bits 0-1 recipe (0 per-token, 1 per-block, 2 per-channel, 3 per-token),
//!   bit 2 E2M1, bit 3 UE8M0, bit 4 G = 32, bit 5 values as i16 (see byte 4);
//! - byte 1: rows (0..=40, modulo 41); bytes 2-3: cols (0..=300, little-endian, modulo
//!   301);
//! - byte 4: with bit 5 of byte 0, each value is a little-endian i16 times
//!   2^(byte 4 as i8 / 4) (small integers times a power of two hit rounding ties);
//!   otherwise each value is 4 little-endian bytes of an f32;
//! - the values fill the matrix row-major, repeated cyclically (no values: zeros); rows
//!   are cut so the matrix holds at most `64 + 4·(number of values)` elements, or one
//!   row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalegemm_reference::quant::{
    dequantize, per_block_cast, per_channel_cast, per_token_cast, Elem, ScaleRound,
};
use scalegemm_reference::Error;

/// `(mantissa bits, smallest normal exponent, largest finite)`.
fn params(elem: Elem) -> (i32, i32, f64) {
    match elem {
        Elem::E4M3 => (3, -6, 448.0),
        Elem::E2M1 => (1, 0, 6.0),
    }
}

/// Code values written from the bit layouts, independently of the reference's codecs.
fn code_value(elem: Elem, code: u8) -> f64 {
    let mag = match elem {
        Elem::E4M3 => {
            let (exp, man) = ((code >> 3) & 0xF, (code & 7) as f64);
            if exp == 15 && man == 7.0 {
                return f64::NAN;
            }
            if exp == 0 {
                man / 512.0
            } else {
                (8.0 + man) * 2f64.powi(exp as i32 - 10)
            }
        }
        Elem::E2M1 => [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0][(code & 7) as usize],
    };
    let neg = match elem {
        Elem::E4M3 => code & 0x80 != 0,
        Elem::E2M1 => code & 0x8 != 0,
    };
    if neg {
        -mag
    } else {
        mag
    }
}

fn ulp(elem: Elem, t: f64) -> f64 {
    let (man, emin, _) = params(elem);
    let e = if t > 0.0 {
        (t.log2().floor() as i32).max(emin)
    } else {
        emin
    };
    2f64.powi(e - man)
}

fn rne(elem: Elem, t: f64) -> f64 {
    let u = ulp(elem, t);
    ((t / u).round_ties_even() * u).min(params(elem).2)
}

fn expected_scale(amax: f32, elem: Elem, round: ScaleRound) -> f32 {
    let s = amax.max(1e-4) / params(elem).2 as f32;
    match round {
        ScaleRound::Fp32 => s,
        ScaleRound::Ue8m0 => {
            let bits = s.to_bits();
            let up = (bits & 0x7F_FFFF != 0) as u32;
            f32::from_bits(((bits >> 23) + up).min(254) << 23)
        }
    }
}

fuzz_target!(
    init: {
        // One rayon thread, the fuzzing thread itself: the casts' parallel loops run
        // inline instead of handing every call to a pool thread.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build_global();
    },
    |data: &[u8]| check(data)
);

fn check(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let (h, body) = data.split_at(5);
    let recipe = h[0] & 3;
    let elem = if h[0] & 4 == 0 {
        Elem::E4M3
    } else {
        Elem::E2M1
    };
    let round = if h[0] & 8 == 0 {
        ScaleRound::Fp32
    } else {
        ScaleRound::Ue8m0
    };
    let g = if h[0] & 16 == 0 { 128 } else { 32 };
    let rows = h[1] as usize % 41;
    let cols = u16::from_le_bytes([h[2], h[3]]) as usize % 301;
    let values: Vec<f32> = if h[0] & 32 != 0 {
        let s = 2f32.powi((h[4] as i8 / 4) as i32);
        body.chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 * s)
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    // Big matrices need long inputs (at most 4 repeats of the values, plus 64), so
    // that most executions are small and fast.
    let rows = rows
        .min((64 + 4 * values.len()) / cols.max(1))
        .max(rows.min(1));
    let n = rows * cols;
    let x: Vec<f32> = if values.is_empty() {
        vec![0.0; n]
    } else {
        (0..n).map(|i| values[i % values.len()]).collect()
    };
    let (result, gran) = match recipe {
        1 => (per_block_cast(&x, rows, cols, g, elem, round), (g, g)),
        2 => (per_channel_cast(&x, rows, cols, g, elem, round), (g, 1)),
        _ => (per_token_cast(&x, rows, cols, g, elem, round), (1, g)),
    };
    if let Some(first) = x.iter().position(|v| !v.is_finite()) {
        match result {
            Err(Error::NonFinite {
                tensor,
                row,
                col,
                value,
            }) => {
                assert_eq!(tensor, "x");
                assert_eq!((row, col), (first / cols, first % cols));
                assert!(value.to_bits() == x[first].to_bits());
            }
            other => panic!("expected NonFinite at {first}, got {other:?}"),
        }
        return;
    }
    let q = result.expect("finite input is accepted");
    let (gr, gc) = gran;
    assert_eq!((q.rows, q.cols, q.gran), (rows, cols, gran));
    assert_eq!(
        (q.scale_rows, q.scale_cols),
        (rows.div_ceil(gr), cols.div_ceil(gc))
    );
    assert_eq!(q.codes.len(), n);
    assert_eq!(q.scales.len(), q.scale_rows * q.scale_cols);
    let block = |idx: usize| (idx / cols / gr) * q.scale_cols + (idx % cols) / gc;
    let mut amax = vec![0f32; q.scales.len()];
    for (idx, v) in x.iter().enumerate() {
        amax[block(idx)] = amax[block(idx)].max(v.abs());
    }
    for (&s, &a) in q.scales.iter().zip(&amax) {
        assert!(s.is_finite() && s > 0.0, "scale {s}");
        assert_eq!(
            s.to_bits(),
            expected_scale(a, elem, round).to_bits(),
            "scale {s} for amax {a}"
        );
    }
    let deq = dequantize(&q).expect("a cast's output dequantizes");
    for (idx, (&xv, &code)) in x.iter().zip(&q.codes).enumerate() {
        match elem {
            Elem::E4M3 => assert!(code & 0x7F != 0x7F, "NaN code"),
            Elem::E2M1 => assert!(code <= 0xF, "E2M1 code {code:#x}"),
        }
        let s = q.scales[block(idx)] as f64;
        let t = (xv as f64).abs() / s;
        let got = code_value(elem, code) * s;
        assert_eq!(got, deq[idx]);
        let bound = s * (0.5 * ulp(elem, t * (1.0 + 2f64.powi(-21))) + t * 2f64.powi(-21));
        assert!(
            (got - xv as f64).abs() <= bound,
            "x = {xv}, scale {s}: dequantized {got}, bound {bound}"
        );
        if s.log2().fract() == 0.0 {
            assert_eq!(
                code_value(elem, code).abs(),
                rne(elem, t),
                "x = {xv}, scale {s}: not the nearest-even code"
            );
        }
    }
}
