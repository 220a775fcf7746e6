//! Tests of `scalegemm_reference::quant`: the casts (hand-worked cases, edge blocks,
//! error bounds), dequantization checks, FP4/UE8M0 packing and the TMA-aligned layout.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scalegemm_reference::format::{e2m1, e4m3, ue8m0};
use scalegemm_reference::quant::*;
use scalegemm_reference::Error;

type CastFn =
    fn(&[f32], usize, usize, usize, Elem, ScaleRound) -> scalegemm_reference::Result<Quantized>;

const CASTS: [(&str, CastFn); 3] = [
    ("per_token", per_token_cast),
    ("per_block", per_block_cast),
    ("per_channel", per_channel_cast),
];
const ELEMS: [Elem; 2] = [Elem::E4M3, Elem::E2M1];
const ROUNDS: [ScaleRound; 2] = [ScaleRound::Fp32, ScaleRound::Ue8m0];

fn gran_of(name: &str, g: usize) -> (usize, usize) {
    match name {
        "per_token" => (1, g),
        "per_block" => (g, g),
        _ => (g, 1),
    }
}

fn pow2(e: i32) -> f32 {
    2f32.powi(e)
}

// ---------------------------------------------------------------- hand-worked casts

#[test]
fn per_token_e4m3_hand_worked_row() {
    // amax = 7 -> scale = 7/448 = 1/64 exactly, 1/scale = 64 exactly.
    let mut x = vec![0f32; 128];
    x[0] = 7.0; // 448 -> 0x7E
    x[1] = -3.5; // -224 = -1.75*2^7 -> 1.1110.110 = 0xF6
    x[2] = 1.0 / 64.0; // 1 -> 0x38
    x[3] = 0.001; // 0.064 -> 0.0625 = 2^-4 -> 0.0011.000 = 0x18
    x[4] = 6.9; // 441.6 -> 448 (spacing 32 above 256) -> 0x7E
    x[5] = 6.7; // 428.8 -> 416 = 1.625*2^8 -> 0x7D
    x[6] = 1e-6; // 6.4e-5 < 2^-10 -> 0
    x[7] = -1e-6; // -0 -> 0x80
    x[127] = 3.0 / 512.0; // 0.375 = 1.5 * 2^-2 -> 0.0101.100 = 0x2C
    let q = per_token_cast(&x, 1, 128, 128, Elem::E4M3, ScaleRound::Fp32).unwrap();
    assert_eq!((q.scale_rows, q.scale_cols, q.gran), (1, 1, (1, 128)));
    assert_eq!(q.scales, vec![1.0 / 64.0]);
    let want: [(usize, u8); 9] = [
        (0, 0x7E),
        (1, 0xF6),
        (2, 0x38),
        (3, 0x18),
        (4, 0x7E),
        (5, 0x7D),
        (6, 0x00),
        (7, 0x80),
        (127, 0x2C),
    ];
    for (j, c) in want {
        assert_eq!(q.codes[j], c, "column {j}");
    }
    assert!(q.codes[8..127].iter().all(|&c| c == 0));
    // UE8M0: 1/64 is already a power of two, so nothing changes.
    let u = per_token_cast(&x, 1, 128, 128, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    assert_eq!(u.scales, q.scales);
    assert_eq!(u.codes, q.codes);
}

#[test]
fn per_token_e4m3_scale_rounding_and_reciprocal() {
    // amax = 8: FP32 scale = fl(8/448) = fl(1/56); UE8M0 ceil -> 2^-5 (1/64 < 1/56 < 1/32).
    let mut x = vec![0f32; 32];
    x[0] = 8.0;
    x[1] = 4.0;
    let q = per_token_cast(&x, 1, 32, 32, Elem::E4M3, ScaleRound::Fp32).unwrap();
    assert_eq!(q.scales, vec![8.0f32 / 448.0]);
    let r = 1.0f32 / (8.0f32 / 448.0);
    assert_eq!(q.codes[0], e4m3::encode_satfinite(8.0 * r));
    assert_eq!(e4m3::decode(q.codes[0]), 448.0);
    assert_eq!(q.codes[1], e4m3::encode_satfinite(4.0 * r)); // 224
    assert_eq!(e4m3::decode(q.codes[1]), 224.0);
    let u = per_token_cast(&x, 1, 32, 32, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    assert_eq!(u.scales, vec![pow2(-5)]);
    assert_eq!(u.codes[0], 0x78); // 256 = 1.0*2^8 -> 0.1111.000
    assert_eq!(u.codes[1], 0x70); // 128
}

#[test]
fn per_token_e2m1_hand_worked_row() {
    // amax = 3 -> scale = 3/6 = 0.5, 1/scale = 2.
    let x = [3.0f32, -1.25, 0.3, 0.125, 0.1, -0.875, 2.25, 1.75];
    let mut row = vec![0f32; 128];
    row[..8].copy_from_slice(&x);
    let q = per_token_cast(&row, 1, 128, 128, Elem::E2M1, ScaleRound::Fp32).unwrap();
    assert_eq!(q.scales, vec![0.5]);
    // 6 -> 0x7; -2.5 tie -> 2 (even) -> 0xC; 0.6 -> 0.5 (0x1); 0.25 tie -> 0; 0.2 -> 0;
    // -1.75 tie -> -2 (even) -> 0xC; 4.5 -> 4 (0x6); 3.5 tie -> 4 (0x6).
    assert_eq!(&q.codes[..8], &[0x7, 0xC, 0x1, 0x0, 0x0, 0xC, 0x6, 0x6]);
    for (c, v) in q.codes.iter().zip(x) {
        assert_eq!(*c, e2m1::encode_satfinite(v * 2.0));
    }
    assert!(q.codes.iter().all(|&c| c <= 0xF));
    // UE8M0 keeps 0.5.
    let u = per_token_cast(&row, 1, 128, 128, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
    assert_eq!(u.scales, vec![0.5]);
    // amax = 4: 4/6 -> ceil 1.0; codes of 4 -> 4 (0x6).
    row[0] = 4.0;
    let u = per_token_cast(&row, 1, 128, 128, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
    assert_eq!(u.scales, vec![1.0]);
    assert_eq!(u.codes[0], 0x6);
}

#[test]
fn reciprocal_rounding_is_part_of_the_recipe() {
    // Found by search: `x * fl(1/s)` and `x / s` differ by one f32 ulp right at the
    // midpoint 1.0625 between the E4M3 values 1 (0x38) and 1.125 (0x39), so the recipe's
    // double rounding decides the code.
    for (amax, x, want, other) in [
        // x·fl(1/s) is exactly the tie -> even 1.0; x/s is above it -> 1.125.
        (38487.0f32 / 64.0, 1.4262152f32, 0x38u8, 0x39u8), // amax = 601.359375
        // x·fl(1/s) is above the tie -> 1.125; x/s is exactly the tie -> 1.0.
        (820.15625, 1.9451251, 0x39, 0x38),
    ] {
        let s = amax / 448.0;
        assert_eq!(e4m3::encode_satfinite(x * (1.0 / s)), want);
        assert_eq!(e4m3::encode_satfinite(x / s), other);
        for (name, cast) in CASTS {
            // Every row and every column holds one amax and one x.
            let q = cast(&[amax, x, x, amax], 2, 2, 32, Elem::E4M3, ScaleRound::Fp32).unwrap();
            assert!(q.scales.iter().all(|&v| v == s), "{name}");
            assert_eq!(q.codes, vec![0x7E, want, want, 0x7E], "{name}");
        }
    }
}

#[test]
fn all_zero_blocks() {
    // A 2x256 tensor whose second 128-column block of row 1 is zero, and row 0 all zero.
    let mut x = vec![0f32; 2 * 256];
    x[256] = 1.0;
    for elem in ELEMS {
        let floor = 1e-4f32 / elem.max_finite();
        let q = per_token_cast(&x, 2, 256, 128, elem, ScaleRound::Fp32).unwrap();
        assert_eq!(q.scales, vec![floor, floor, 1.0 / elem.max_finite(), floor]);
        assert!(q
            .codes
            .iter()
            .enumerate()
            .all(|(i, &c)| (c == 0) == (i != 256)));
        let u = per_token_cast(&x, 2, 256, 128, elem, ScaleRound::Ue8m0).unwrap();
        // 1e-4/448 = 2.23e-7 -> 2^-22; 1e-4/6 = 1.67e-5 -> 2^-15.
        let uf = match elem {
            Elem::E4M3 => pow2(-22),
            Elem::E2M1 => pow2(-15),
        };
        assert_eq!(u.scales[0], uf);
        assert_eq!(u.scales[1], uf);
        assert_eq!(u.scales[3], uf);
        for (name, cast) in CASTS {
            let q = cast(&vec![0f32; 7 * 33], 7, 33, 32, elem, ScaleRound::Fp32).unwrap();
            assert!(q.scales.iter().all(|&s| s == floor), "{name}");
            assert!(q.codes.iter().all(|&c| c == 0), "{name}");
        }
    }
}

#[test]
fn overflow_region_never_reached() {
    // Elements 464, 465, 479, 480 (E4M3's overflow boundaries) in one block: the scale
    // comes from amax = 480, so every scaled value is <= 448 (up to f32 rounding).
    let mut x = vec![0f32; 128];
    x[..6].copy_from_slice(&[480.0, 479.0, 465.0, 464.0, -480.0, 448.0]);
    let q = per_token_cast(&x, 1, 128, 128, Elem::E4M3, ScaleRound::Fp32).unwrap();
    let s = 480.0f32 / 448.0;
    assert_eq!(q.scales[0], s);
    for (j, v) in x[..6].iter().enumerate() {
        let y = v * (1.0 / s);
        assert!(y.abs() <= 448.0 * (1.0 + 1e-6), "{y}");
        assert_eq!(
            q.codes[j],
            e4m3::encode(y),
            "non-saturating encode agrees at {j}"
        );
        assert_eq!(q.codes[j], e4m3::encode_satfinite(y));
    }
    // 480·448/480 = 448; 479 -> 447.07 -> 448; 465 -> 434 -> 448; 464 -> 433.07 -> 448;
    // 448 -> 418.13 -> 416.
    assert_eq!(&q.codes[..6], &[0x7E, 0x7E, 0x7E, 0x7E, 0xFE, 0x7D]);
    // UE8M0: scale 2, values 240, 239.5, 232.5, 232 (a tie 224|240 -> even 224), -240, 224.
    let u = per_token_cast(&x, 1, 128, 128, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    assert_eq!(u.scales[0], 2.0);
    assert_eq!(&u.codes[..6], &[0x77, 0x77, 0x77, 0x76, 0xF7, 0x76]);
    // Values 464·s .. 480·s for a scale s = 1: they are the amax, so they scale to 448.
    for v in [464.0f32, 465.0, 479.0, 480.0] {
        for (name, cast) in CASTS {
            for elem in ELEMS {
                for round in ROUNDS {
                    let q = cast(&[v, -v, 0.5 * v, 1.0], 2, 2, 32, elem, round).unwrap();
                    let codes_ok = q.codes.iter().all(|&c| match elem {
                        Elem::E4M3 => c & 0x7F != 0x7F,
                        Elem::E2M1 => c <= 0xF,
                    });
                    assert!(codes_ok, "{name} {elem:?} {round:?} {v}: {:?}", q.codes);
                    // x[0] = v is its block's amax: it scales to max (FP32) or to
                    // (max/2, max] (UE8M0 scale in [s, 2s)), never past max.
                    let max = elem.max_finite();
                    let d0 = elem.decode(q.codes[0]);
                    match round {
                        ScaleRound::Fp32 => assert_eq!(d0, max, "{name} {v}"),
                        ScaleRound::Ue8m0 => {
                            assert!(d0 >= max / 2.0 && d0 <= max, "{name} {v}: {d0}")
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn amax_below_floor_uses_floor() {
    let x = [5e-5f32, -2e-5, 0.0, 1e-9];
    let q = per_block_cast(&x, 2, 2, 32, Elem::E4M3, ScaleRound::Fp32).unwrap();
    let s = 1e-4f32 / 448.0;
    assert_eq!(q.scales, vec![s]);
    for (c, v) in q.codes.iter().zip(x) {
        assert_eq!(*c, e4m3::encode_satfinite(v * (1.0 / s)));
    }
    assert_eq!(e4m3::decode(q.codes[0]), 224.0); // 5e-5/(1e-4/448) = 224
}

// ---------------------------------------------------------------- errors

#[test]
fn non_finite_inputs_are_rejected_with_coordinates() {
    let (rows, cols) = (4, 9);
    for (bad_r, bad_c, bad) in [
        (2usize, 5usize, f32::NAN),
        (3, 1, f32::INFINITY),
        (0, 0, f32::NEG_INFINITY),
    ] {
        let mut x = vec![1.0f32; rows * cols];
        x[bad_r * cols + bad_c] = bad;
        // A later offender must not be the one reported.
        x[rows * cols - 1] = f32::NAN;
        for (name, cast) in CASTS {
            for elem in ELEMS {
                for round in ROUNDS {
                    match cast(&x, rows, cols, 32, elem, round) {
                        Err(Error::NonFinite {
                            tensor,
                            row,
                            col,
                            value,
                        }) => {
                            assert_eq!((tensor, row, col), ("x", bad_r, bad_c), "{name}");
                            assert!(
                                value.is_nan() == bad.is_nan() && (value.is_nan() || value == bad)
                            );
                        }
                        other => panic!("{name}: {other:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn argument_and_shape_errors() {
    let x = vec![0f32; 12];
    for (name, cast) in CASTS {
        for g in [0usize, 1, 16, 64, 127, 256] {
            assert!(
                matches!(
                    cast(&x, 3, 4, g, Elem::E4M3, ScaleRound::Fp32),
                    Err(Error::Argument { name: "g", .. })
                ),
                "{name} g={g}"
            );
        }
        assert!(matches!(
            cast(&x, 3, 5, 128, Elem::E4M3, ScaleRound::Fp32),
            Err(Error::Shape { tensor: "x", .. })
        ));
        assert!(matches!(
            cast(&x, usize::MAX, 2, 128, Elem::E4M3, ScaleRound::Fp32),
            Err(Error::Shape { tensor: "x", .. })
        ));
        // Empty tensors are fine.
        for (r, c) in [(0usize, 5usize), (5, 0), (0, 0)] {
            let q = cast(&[], r, c, 128, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
            assert!(q.codes.is_empty() && q.scales.is_empty(), "{name} {r}x{c}");
            assert_eq!(
                (q.scale_rows, q.scale_cols),
                (r.div_ceil(q.gran.0), c.div_ceil(q.gran.1))
            );
            assert_eq!(dequantize(&q).unwrap(), Vec::<f64>::new());
        }
    }
    assert!(matches!(
        block_scale(f32::NAN, Elem::E4M3, ScaleRound::Fp32),
        Err(Error::Argument { .. })
    ));
    assert!(matches!(
        block_scale(-1.0, Elem::E4M3, ScaleRound::Fp32),
        Err(Error::Argument { .. })
    ));
    assert_eq!(
        block_scale(0.0, Elem::E4M3, ScaleRound::Fp32).unwrap(),
        1e-4f32 / 448.0
    );
    assert_eq!(
        block_scale(f32::MAX, Elem::E2M1, ScaleRound::Ue8m0).unwrap(),
        pow2(126)
    );
}

#[test]
fn dequantize_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f32> = (0..7 * 256)
        .map(|_| rng.random_range(-3.0f32..3.0))
        .collect();
    let q = per_token_cast(&x, 7, 256, 128, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    assert!(dequantize(&q).is_ok());

    // A non-power-of-two scale under a UE8M0 recipe.
    let mut bad = q.clone();
    bad.scales[3] = 0.75;
    match dequantize(&bad) {
        Err(Error::Scale {
            tensor: "scales",
            index: 3,
            value,
            ..
        }) => assert_eq!(value, 0.75),
        other => panic!("{other:?}"),
    }
    // ... is fine as FP32.
    bad.round = ScaleRound::Fp32;
    assert!(dequantize(&bad).is_ok());
    // Out of UE8M0's range (2^-128 is a power of two, but no UE8M0 value).
    let mut bad = q.clone();
    bad.scales[0] = pow2(-127) / 2.0;
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Scale { index: 0, .. })
    ));
    bad.scales[0] = pow2(-127);
    assert!(dequantize(&bad).is_ok());
    // Not finite / not positive, under either recipe.
    for v in [0.0f32, -0.0, -1.0, f32::NAN, f32::INFINITY] {
        for round in ROUNDS {
            let mut bad = q.clone();
            bad.round = round;
            bad.scales[13] = v;
            assert!(
                matches!(dequantize(&bad), Err(Error::Scale { index: 13, .. })),
                "{v} {round:?}"
            );
        }
    }
    // Scale shape that does not match the recipe.
    let mut bad = q.clone();
    bad.scale_cols = 3;
    bad.scales.extend([1.0; 7]);
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Shape {
            tensor: "scales",
            ..
        })
    ));
    let mut bad = q.clone();
    bad.gran = (128, 128);
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Shape {
            tensor: "scales",
            ..
        })
    ));
    let mut bad = q.clone();
    bad.scales.pop();
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Shape {
            tensor: "scales",
            ..
        })
    ));
    let mut bad = q.clone();
    bad.codes.push(0);
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Shape {
            tensor: "codes",
            ..
        })
    ));
    let mut bad = q.clone();
    bad.gran = (0, 128);
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Argument { name: "gran", .. })
    ));
    // NaN codes and E2M1 codes with the high nibble set.
    let mut bad = q.clone();
    bad.codes[5] = 0xFF;
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Argument { name: "codes", .. })
    ));
    let mut bad = q.clone();
    bad.elem = Elem::E2M1;
    bad.codes.iter_mut().for_each(|c| *c &= 0xF);
    assert!(dequantize(&bad).is_ok());
    bad.codes[9] = 0x12;
    assert!(matches!(
        dequantize(&bad),
        Err(Error::Argument { name: "codes", .. })
    ));
    // dequantize_parts with a granularity no cast produces (MX FP4, 1x32).
    let codes = [0x2u8, 0xA, 0x7, 0x1];
    let out = dequantize_parts(
        &codes,
        1,
        4,
        Elem::E2M1,
        &[0.25],
        1,
        1,
        (1, 32),
        ScaleRound::Ue8m0,
    )
    .unwrap();
    assert_eq!(out, vec![0.25, -0.25, 1.5, 0.125]);
    // A [3, 2] scale grid (1x128 over [3, 256]): element (r, c) takes scale r·2 + c/128;
    // one scale short or extra is an error.
    let codes = vec![e4m3::encode(1.0); 3 * 256];
    let scales = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let parts = |scales: &[f32]| {
        dequantize_parts(
            &codes,
            3,
            256,
            Elem::E4M3,
            scales,
            3,
            2,
            (1, 128),
            ScaleRound::Fp32,
        )
    };
    let out = parts(&scales).unwrap();
    for r in 0..3 {
        for c in 0..256 {
            assert_eq!(
                out[r * 256 + c],
                scales[r * 2 + c / 128] as f64,
                "({r}, {c})"
            );
        }
    }
    for bad in [&scales[..5], &[1.0; 7][..]] {
        match parts(bad) {
            Err(Error::Shape { expected, got, .. }) => {
                assert_eq!(expected, "[3, 2] = 6 elements");
                assert_eq!(got, format!("{} elements", bad.len()));
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- error bound over shapes

/// Half the spacing of the format's values around the magnitude `y` (exact value in
/// code units): E4M3 has 3 mantissa bits, so in the binade [2^e, 2^(e+1)), e >= -6, the
/// spacing is 2^(e-3); below 2^-6 (subnormals) it is 2^-9; E2M1 is 0.5 up to 2, 1 up to
/// 4, 2 up to 6. Rounding to nearest lands within half the spacing; saturation at the
/// maximum only happens within f32 rounding of it (the recipe's scaled values are
/// <= max·(1 + 2^-22)).
fn half_spacing(elem: Elem, y: f64) -> f64 {
    match elem {
        Elem::E4M3 => {
            let e = if y < 2f64.powi(-6) {
                -6
            } else {
                y.log2().floor() as i32
            };
            2f64.powi(e.min(8) - 4)
        }
        Elem::E2M1 => {
            if y < 2.0 {
                0.25
            } else if y < 4.0 {
                0.5
            } else {
                1.0
            }
        }
    }
}

/// Independent recomputation of a block's scale: amax over the block, clamp, divide,
/// and UE8M0 ceiling via 2^ceil(log2(s)).
fn expected_scale(
    x: &[f32],
    cols: usize,
    r: std::ops::Range<usize>,
    c: std::ops::Range<usize>,
    elem: Elem,
    round: ScaleRound,
) -> (f32, f32) {
    let mut amax = 0f32;
    for i in r {
        for j in c.clone() {
            amax = amax.max(x[i * cols + j].abs());
        }
    }
    let fp32 = amax.max(1e-4) / elem.max_finite();
    let s = match round {
        ScaleRound::Fp32 => fp32,
        ScaleRound::Ue8m0 => 2f64.powf((fp32 as f64).log2().ceil()) as f32,
    };
    (s, fp32)
}

fn random_tensor(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 17 {
            0 => 0.0,
            1 => rng.random_range(-1e-6f32..1e-6), // below the subnormal range after scaling
            2 => rng.random_range(-1e3f32..1e3),
            _ => {
                let m: f32 = rng.random_range(-1.0f32..1.0);
                m * 2f32.powi(rng.random_range(-12..8))
            }
        })
        .collect()
}

#[test]
fn casts_over_edge_shapes_meet_the_rounding_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ca1e);
    // (rows, cols): M = 7, N = 576, K = 1152 (9 blocks of 128), N = 33.
    let shapes = [
        (7usize, 1152usize),
        (1152, 576),
        (33, 1152),
        (7, 33),
        (1152, 33),
        (576, 33),
        (1, 1),
        (129, 7),
    ];
    for (rows, cols) in shapes {
        let x = random_tensor(&mut rng, rows * cols);
        for (name, cast) in CASTS {
            for g in [32usize, 128] {
                let (gr, gc) = gran_of(name, g);
                for elem in ELEMS {
                    let mut fp32_scales = None;
                    for round in ROUNDS {
                        let ctx = format!("{name} [{rows}, {cols}] g={g} {elem:?} {round:?}");
                        let q = cast(&x, rows, cols, g, elem, round).unwrap();
                        assert_eq!(q.gran, (gr, gc), "{ctx}");
                        assert_eq!(
                            (q.scale_rows, q.scale_cols),
                            (rows.div_ceil(gr), cols.div_ceil(gc)),
                            "{ctx}"
                        );
                        assert_eq!(q.scales.len(), q.scale_rows * q.scale_cols, "{ctx}");
                        assert_eq!(q.codes.len(), rows * cols, "{ctx}");
                        // Scales: recomputed independently; UE8M0 ones exact powers of two
                        // >= the FP32 scale and < twice it.
                        for bi in 0..q.scale_rows {
                            for bj in 0..q.scale_cols {
                                let s = q.scales[bi * q.scale_cols + bj];
                                let (want, fp32) = expected_scale(
                                    &x,
                                    cols,
                                    bi * gr..((bi + 1) * gr).min(rows),
                                    bj * gc..((bj + 1) * gc).min(cols),
                                    elem,
                                    round,
                                );
                                assert_eq!(s, want, "{ctx} block ({bi}, {bj})");
                                if round == ScaleRound::Ue8m0 {
                                    assert_eq!(s.to_bits() & 0x7F_FFFF, 0, "{ctx}");
                                    assert!(s >= fp32 && s < 2.0 * fp32, "{ctx}");
                                    assert!(ue8m0_code_of(s).is_some());
                                }
                            }
                        }
                        if round == ScaleRound::Fp32 {
                            fp32_scales = Some(q.scales.clone());
                        } else {
                            let f = fp32_scales.as_ref().unwrap();
                            assert!(q.scales.iter().zip(f).all(|(u, f)| u >= f), "{ctx}");
                        }
                        // Codes: the recipe bit for bit, never NaN, then the bound.
                        let deq = dequantize(&q).unwrap();
                        let mut worst = 0f64; // largest err / (s · half spacing)
                        for i in 0..rows {
                            for j in 0..cols {
                                let k = i * cols + j;
                                let s = q.scales[(i / gr) * q.scale_cols + j / gc];
                                let c = q.codes[k];
                                assert_eq!(
                                    c,
                                    elem.encode_satfinite(x[k] * (1.0 / s)),
                                    "{ctx} [{i}, {j}]"
                                );
                                match elem {
                                    Elem::E4M3 => assert_ne!(c & 0x7F, 0x7F, "{ctx}"),
                                    Elem::E2M1 => assert!(c <= 0xF, "{ctx}"),
                                }
                                let (xv, s) = (x[k] as f64, s as f64);
                                assert_eq!(deq[k], elem.decode(c) as f64 * s);
                                let y = xv.abs() / s;
                                let bound = s * (half_spacing(elem, y) + y * 2f64.powi(-22));
                                let err = (deq[k] - xv).abs();
                                assert!(
                                    err <= bound,
                                    "{ctx} [{i}, {j}]: x={xv} deq={} err={err} bound={bound}",
                                    deq[k]
                                );
                                worst = worst.max(err / (s * half_spacing(elem, y)));
                            }
                        }
                        // The bound is tight: on any sizeable tensor some element lands
                        // close to a midpoint between two codes.
                        if rows * cols >= 1000 {
                            assert!(worst > 0.9, "{ctx}: worst {worst}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn per_channel_is_per_token_of_the_transpose_for_columns() {
    // Scale (kb, n) of per_channel on [K, N] covers rows kb*G.. of column n: check by
    // transposing and running per_token (same amax sets, same element recipe).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (k, n) = (300usize, 33usize);
    let x = random_tensor(&mut rng, k * n);
    let xt: Vec<f32> = (0..n * k).map(|t| x[(t % k) * n + t / k]).collect();
    for elem in ELEMS {
        for round in ROUNDS {
            let pc = per_channel_cast(&x, k, n, 128, elem, round).unwrap();
            let pt = per_token_cast(&xt, n, k, 128, elem, round).unwrap();
            assert_eq!((pc.scale_rows, pc.scale_cols), (3, 33));
            for kb in 0..3 {
                for j in 0..n {
                    assert_eq!(pc.scales[kb * n + j], pt.scales[j * 3 + kb]);
                }
            }
            for i in 0..k {
                for j in 0..n {
                    assert_eq!(pc.codes[i * n + j], pt.codes[j * k + i]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- FP4 packing

#[test]
fn pack_e2m1_basics() {
    assert_eq!(pack_e2m1(&[1, 2], 1, 2).unwrap(), vec![0x21]);
    assert_eq!(
        pack_e2m1(&[0xF, 0x0, 0x8, 0x7], 2, 2).unwrap(),
        vec![0x0F, 0x78]
    );
    assert_eq!(unpack_e2m1(&[0x21], 1, 2).unwrap(), vec![1, 2]);
    assert!(matches!(
        pack_e2m1(&[1, 2, 3], 1, 3),
        Err(Error::Shape { tensor: "cols", .. })
    ));
    assert!(matches!(
        pack_e2m1(&[1, 2, 3], 1, 4),
        Err(Error::Shape {
            tensor: "codes",
            ..
        })
    ));
    assert!(matches!(
        pack_e2m1(&[1, 0x12], 1, 2),
        Err(Error::Argument { name: "codes", .. })
    ));
    assert!(matches!(
        unpack_e2m1(&[0x21], 1, 3),
        Err(Error::Shape { tensor: "cols", .. })
    ));
    assert!(matches!(
        unpack_e2m1(&[0x21], 2, 2),
        Err(Error::Shape {
            tensor: "packed",
            ..
        })
    ));
    assert_eq!(pack_e2m1(&[], 0, 4).unwrap(), Vec::<u8>::new());
    assert_eq!(pack_e2m1(&[], 3, 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn pack_e2m1_round_trip_and_cast() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (rows, cols) = (7usize, 576usize);
    let x = random_tensor(&mut rng, rows * cols);
    let q = per_token_cast(&x, rows, cols, 32, Elem::E2M1, ScaleRound::Ue8m0).unwrap();
    let packed = pack_e2m1(&q.codes, rows, cols).unwrap();
    assert_eq!(packed.len(), rows * cols / 2);
    for i in 0..rows {
        for j in 0..cols {
            let b = packed[i * cols / 2 + j / 2];
            let nib = if j % 2 == 0 { b & 0xF } else { b >> 4 };
            assert_eq!(nib, q.codes[i * cols + j]);
        }
    }
    assert_eq!(unpack_e2m1(&packed, rows, cols).unwrap(), q.codes);
}

#[test]
fn transpose_packed_e2m1_matches_unpacked_transpose() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for (rows, cols) in [
        (2usize, 2usize),
        (4, 6),
        (34, 576),
        (128, 32),
        (0, 4),
        (2, 0),
    ] {
        let codes: Vec<u8> = (0..rows * cols)
            .map(|_| rng.random_range(0..16u8))
            .collect();
        let packed = pack_e2m1(&codes, rows, cols).unwrap();
        let t = transpose_packed_e2m1(&packed, rows, cols).unwrap();
        let codes_t: Vec<u8> = (0..rows * cols)
            .map(|p| codes[(p % rows) * cols + p / rows])
            .collect();
        assert_eq!(
            t,
            pack_e2m1(&codes_t, cols, rows).unwrap(),
            "[{rows}, {cols}]"
        );
        // Transposing twice is the identity.
        assert_eq!(transpose_packed_e2m1(&t, cols, rows).unwrap(), packed);
    }
    // Hand-checked: [[1, 2], [3, 4]] packed = [0x21, 0x43]; transposed [[1, 3], [2, 4]] = [0x31, 0x42].
    assert_eq!(
        transpose_packed_e2m1(&[0x21, 0x43], 2, 2).unwrap(),
        vec![0x31, 0x42]
    );
    assert!(matches!(
        transpose_packed_e2m1(&[0; 3], 3, 2),
        Err(Error::Shape { tensor: "rows", .. })
    ));
    assert!(matches!(
        transpose_packed_e2m1(&[0; 3], 2, 3),
        Err(Error::Shape { tensor: "cols", .. })
    ));
    assert!(matches!(
        transpose_packed_e2m1(&[0; 3], 2, 2),
        Err(Error::Shape {
            tensor: "packed",
            ..
        })
    ));
}

// ---------------------------------------------------------------- UE8M0 packing

#[test]
fn ue8m0_pack_byte_placement() {
    // One row of 5 codes: word 0 = codes 0..4 little-endian, word 1 = code 4 + zero padding.
    let codes = [0x01u8, 0x02, 0x03, 0x84, 0x7F];
    let p = pack_ue8m0(&codes, 1, 5).unwrap();
    assert_eq!(p, vec![0x8403_0201u32 as i32, 0x0000_007F]);
    assert_eq!(p[0].to_le_bytes(), [0x01, 0x02, 0x03, 0x84]);
    assert_eq!((p[0] >> 24) & 0xFF, 0x84); // column 3 in bits 24..32
    assert_eq!(unpack_ue8m0(&p, 1, 5).unwrap(), codes.to_vec());
    // Two rows of 3: each row starts a new word.
    let p = pack_ue8m0(&[1, 2, 3, 4, 5, 6], 2, 3).unwrap();
    assert_eq!(p, vec![0x0003_0201, 0x0006_0504]);
    // Non-zero padding is rejected (the message names the word's row and column), as is a
    // wrong length.
    assert!(matches!(
        unpack_ue8m0(&[0x0103_0201], 1, 3),
        Err(Error::Argument { name: "packed", .. })
    ));
    // Two rows of 9 codes (three words each): row 1's last word holds column 8 and three
    // padding bytes, the second of them non-zero.
    let mut words = vec![0i32; 6];
    words[5] = 0x0000_0100;
    match unpack_ue8m0(&words, 2, 9) {
        Err(Error::Argument { reason, .. }) => assert!(reason.contains("word [1, 2]"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        unpack_ue8m0(&[0, 0], 1, 3),
        Err(Error::Shape {
            tensor: "packed",
            ..
        })
    ));
    assert!(matches!(
        pack_ue8m0(&[1, 2], 1, 3),
        Err(Error::Shape {
            tensor: "codes",
            ..
        })
    ));
    assert_eq!(pack_ue8m0(&[], 4, 0).unwrap(), Vec::<i32>::new());
    assert_eq!(unpack_ue8m0(&[], 4, 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn ue8m0_pack_round_trip() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (rows, cols) in [
        (7usize, 9usize),
        (1, 1),
        (3, 4),
        (5, 2),
        (33, 13),
        (128, 36),
    ] {
        let codes: Vec<u8> = (0..rows * cols)
            .map(|_| rng.random_range(0..=254u8))
            .collect();
        let p = pack_ue8m0(&codes, rows, cols).unwrap();
        assert_eq!(p.len(), rows * cols.div_ceil(4));
        for i in 0..rows {
            for j in 0..cols {
                let w = p[i * cols.div_ceil(4) + j / 4] as u32;
                assert_eq!((w >> (8 * (j % 4))) as u8, codes[i * cols + j]);
            }
        }
        assert_eq!(unpack_ue8m0(&p, rows, cols).unwrap(), codes);
    }
}

#[test]
fn ue8m0_codes_of_scales() {
    let s = [1.0f32, 0.5, pow2(-127), pow2(127), pow2(-126), pow2(-22)];
    let c = ue8m0_codes_of(&s).unwrap();
    assert_eq!(c, vec![127, 126, 0, 254, 1, 105]);
    for (c, s) in c.iter().zip(s) {
        assert_eq!(ue8m0::decode(*c), s);
    }
    for (i, v) in [
        3.0f32,
        pow2(-128),
        0.0,
        -0.0,
        -1.0,
        f32::INFINITY,
        f32::NAN,
        1.5 * pow2(-127),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = vec![1.0f32; 3];
        s.insert(2, v);
        match ue8m0_codes_of(&s) {
            Err(Error::Scale {
                tensor: "scales",
                index: 2,
                ..
            }) => {}
            other => panic!("case {i} ({v}): {other:?}"),
        }
    }
    // Every UE8M0 value round-trips.
    for c in 0..=254u8 {
        assert_eq!(ue8m0_code_of(ue8m0::decode(c)), Some(c));
    }
}

// ---------------------------------------------------------------- TMA-aligned layout

#[test]
fn tma_aligned_ld_values() {
    assert_eq!(TMA_ALIGNMENT_BYTES, 16);
    for (mn, ld) in [
        (0usize, 0usize),
        (1, 4),
        (7, 8),
        (33, 36),
        (128, 128),
        (129, 132),
    ] {
        assert_eq!(tma_aligned_ld::<f32>(mn), ld);
        assert_eq!(tma_aligned_ld::<i32>(mn), ld);
    }
    assert_eq!(tma_aligned_ld::<u8>(7), 16);
    assert_eq!(tma_aligned_ld::<u16>(7), 8);
    assert_eq!(tma_aligned_ld::<f64>(7), 8);
    assert_eq!(tma_aligned_ld::<f32>(usize::MAX) % 4, 0);
}

#[test]
fn tma_aligned_hand_checked_index() {
    // groups = 2, mn = 7, kb = 3, f32: ld = 8; element (b, i, j) at b*24 + j*8 + i.
    let (groups, mn, kb) = (2usize, 7usize, 3usize);
    let sf: Vec<f32> = (0..groups * mn * kb).map(|v| v as f32 + 1.0).collect();
    let t = to_tma_aligned_mn_major(&sf, groups, mn, kb).unwrap();
    assert_eq!(t.len(), 2 * 3 * 8);
    // (1, 5, 2): row-major index 1*21 + 5*3 + 2 = 38 -> value 39, stored at 24 + 16 + 5 = 45.
    assert_eq!(t[45], 39.0);
    assert_eq!(t[0], 1.0); // (0, 0, 0)
    assert_eq!(t[1], 4.0); // (0, 1, 0)
    assert_eq!(t[8], 2.0); // (0, 0, 1)
    for b in 0..groups {
        for j in 0..kb {
            assert_eq!(t[b * 24 + j * 8 + 7], 0.0, "padding");
        }
    }
}

#[test]
fn tma_aligned_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for mn in [1usize, 7, 33, 128, 129] {
        for groups in [1usize, 3] {
            for kb in [1usize, 3, 9] {
                let sf: Vec<f32> = (0..groups * mn * kb)
                    .map(|_| rng.random_range(0.5f32..2.0))
                    .collect();
                let t = to_tma_aligned_mn_major(&sf, groups, mn, kb).unwrap();
                let ld = tma_aligned_ld::<f32>(mn);
                assert_eq!(t.len(), groups * ld * kb);
                for b in 0..groups {
                    for i in 0..ld {
                        for j in 0..kb {
                            let v = t[b * ld * kb + j * ld + i];
                            if i < mn {
                                assert_eq!(v, sf[(b * mn + i) * kb + j]);
                            } else {
                                assert_eq!(v, 0.0);
                            }
                        }
                    }
                }
                assert_eq!(from_tma_aligned_mn_major(&t, groups, mn, kb).unwrap(), sf);
                // A longer buffer is fine, a shorter one is an error.
                let mut longer = t.clone();
                longer.push(9.0);
                assert_eq!(
                    from_tma_aligned_mn_major(&longer, groups, mn, kb).unwrap(),
                    sf
                );
                assert!(matches!(
                    from_tma_aligned_mn_major(&t[..t.len() - 1], groups, mn, kb),
                    Err(Error::Shape { tensor: "data", .. })
                ));
                // i32 words (packed UE8M0).
                let w: Vec<i32> = (0..groups * mn * kb).map(|_| rng.random()).collect();
                let tw = to_tma_aligned_mn_major(&w, groups, mn, kb).unwrap();
                assert_eq!(from_tma_aligned_mn_major(&tw, groups, mn, kb).unwrap(), w);
            }
        }
    }
    assert!(matches!(
        to_tma_aligned_mn_major(&[1.0f32; 5], 1, 2, 3),
        Err(Error::Shape { tensor: "sf", .. })
    ));
    assert!(matches!(
        from_tma_aligned_mn_major::<f32>(&[], usize::MAX, usize::MAX, 2),
        Err(Error::Shape { tensor: "data", .. })
    ));
    assert_eq!(
        to_tma_aligned_mn_major::<f32>(&[], 3, 0, 4).unwrap(),
        Vec::<f32>::new()
    );
}

#[test]
fn tma_aligned_packed_ue8m0() {
    // The scales of a UE8M0 per-token cast of A [M = 7, K = 1152]: [7, 9] -> packed
    // [7, 3] words -> ld 8.
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let x = random_tensor(&mut rng, 7 * 1152);
    let q = per_token_cast(&x, 7, 1152, 128, Elem::E4M3, ScaleRound::Ue8m0).unwrap();
    let t = to_tma_aligned_packed_ue8m0(&q.scales, 1, 7, 9).unwrap();
    assert_eq!(t.len(), 3 * 8);
    for i in 0..7 {
        for kb in 0..9 {
            let w = t[(kb / 4) * 8 + i] as u32;
            let code = (w >> (8 * (kb % 4))) as u8;
            assert_eq!(ue8m0::decode(code), q.scales[i * 9 + kb]);
        }
    }
    assert_eq!(
        from_tma_aligned_packed_ue8m0(&t, 1, 7, 9).unwrap(),
        q.scales
    );
    // Grouped, and a non-UE8M0 scale is refused.
    let s3: Vec<f32> = (0..3 * 5 * 6).map(|v| pow2(v % 40 - 20)).collect();
    let t3 = to_tma_aligned_packed_ue8m0(&s3, 3, 5, 6).unwrap();
    assert_eq!(t3.len(), 3 * 2 * 8);
    assert_eq!(from_tma_aligned_packed_ue8m0(&t3, 3, 5, 6).unwrap(), s3);
    assert!(matches!(
        to_tma_aligned_packed_ue8m0(&[0.3], 1, 1, 1),
        Err(Error::Scale { index: 0, .. })
    ));
    assert!(matches!(
        to_tma_aligned_packed_ue8m0(&[1.0; 3], 1, 2, 2),
        Err(Error::Shape {
            tensor: "scales",
            ..
        })
    ));
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_pack_e2m1_round_trip(rows in 0usize..9, half_cols in 0usize..20, seed in any::<u64>()) {
        let cols = 2 * half_cols;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let codes: Vec<u8> = (0..rows * cols).map(|_| rng.random_range(0..16u8)).collect();
        let p = pack_e2m1(&codes, rows, cols).unwrap();
        prop_assert_eq!(unpack_e2m1(&p, rows, cols).unwrap(), codes);
    }

    #[test]
    fn prop_cast_dequantize_bound(
        rows in 1usize..40,
        cols in 1usize..300,
        seed in any::<u64>(),
        which in 0usize..3,
        elem_i in 0usize..2,
        round_i in 0usize..2,
        g_i in 0usize..2,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_tensor(&mut rng, rows * cols);
        let (name, cast) = CASTS[which];
        let (elem, round, g) = (ELEMS[elem_i], ROUNDS[round_i], [32, 128][g_i]);
        let (gr, gc) = gran_of(name, g);
        let q = cast(&x, rows, cols, g, elem, round).unwrap();
        let deq = dequantize(&q).unwrap();
        for k in 0..rows * cols {
            let s = q.scales[(k / cols / gr) * q.scale_cols + (k % cols) / gc] as f64;
            let xv = x[k] as f64;
            let y = xv.abs() / s;
            let bound = s * (half_spacing(elem, y) + y * 2f64.powi(-22));
            prop_assert!((deq[k] - xv).abs() <= bound, "{} {:?} {:?} k={}", name, elem, round, k);
        }
    }

    #[test]
    fn prop_tma_layout_round_trip(groups in 0usize..4, mn in 0usize..140, kb in 0usize..12) {
        let sf: Vec<i32> = (0..groups * mn * kb).map(|v| v as i32 + 1).collect();
        let t = to_tma_aligned_mn_major(&sf, groups, mn, kb).unwrap();
        prop_assert_eq!(t.len(), groups * tma_aligned_ld::<i32>(mn) * kb);
        prop_assert_eq!(from_tma_aligned_mn_major(&t, groups, mn, kb).unwrap(), sf);
    }
}
