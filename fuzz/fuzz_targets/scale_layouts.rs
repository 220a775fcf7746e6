//! Scale-layout and packing invariants on arbitrary small dimensions and contents:
//! DeepGEMM's TMA-aligned MN-major layout (for 1-, 2-, 4- and 8-byte elements), its
//! packed-UE8M0 variant, UE8M0 packing four per i32, and FP4 (E2M1) packing and the
//! packed transpose. Every transform inverts, puts each element where the layout says,
//! zeroes the padding, and rejects (never panics on) inconsistent arguments.
//!
//! Input: 4 header bytes, then contents.
//! - byte 0: which check (modulo 5, see the match below);
//! - byte 1: groups (0..=3) in bits 0-1, a "corrupt" flag in bit 2;
//! - byte 2: mn or rows (0..=159, modulo 160, cut so that `groups·mn·kb` is at most
//!   `64 + 4·(content bytes)`); byte 3: kb or cols (0..=19, modulo 20; times 2 plus
//!   bit 3 of byte 1 for FP4 columns);
//! - the contents fill buffers cyclically (no contents: zeros).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalegemm_reference::quant::{
    from_tma_aligned_mn_major, from_tma_aligned_packed_ue8m0, pack_e2m1, pack_ue8m0,
    tma_aligned_ld, to_tma_aligned_mn_major, to_tma_aligned_packed_ue8m0, transpose_packed_e2m1,
    ue8m0_codes_of, unpack_e2m1, unpack_ue8m0,
};
use scalegemm_reference::Error;

/// `n` bytes from the contents, cyclically.
fn bytes(body: &[u8], n: usize, salt: usize) -> Vec<u8> {
    if body.is_empty() {
        return vec![0; n];
    }
    (0..n).map(|i| body[(i + salt) % body.len()]).collect()
}

/// Round trip and positions of the TMA-aligned MN-major layout for one element type.
fn mn_major<T: Copy + Default + PartialEq + std::fmt::Debug>(
    sf: &[T],
    groups: usize,
    mn: usize,
    kb: usize,
    cut: usize,
) {
    let ld = tma_aligned_ld::<T>(mn);
    let per = 16 / std::mem::size_of::<T>();
    assert!(
        ld >= mn && ld.is_multiple_of(per) && ld < mn + per,
        "ld {ld} for {mn}"
    );
    let t = to_tma_aligned_mn_major(sf, groups, mn, kb).unwrap();
    assert_eq!(t.len(), groups * kb * ld);
    for b in 0..groups {
        for j in 0..kb {
            for i in 0..ld {
                let want = if i < mn {
                    sf[(b * mn + i) * kb + j]
                } else {
                    T::default()
                };
                assert_eq!(t[b * ld * kb + j * ld + i], want);
            }
        }
    }
    assert_eq!(from_tma_aligned_mn_major(&t, groups, mn, kb).unwrap(), sf);
    // a shorter buffer is an error, a longer one is fine
    let short = t.len().saturating_sub(cut);
    let r = from_tma_aligned_mn_major(&t[..short], groups, mn, kb);
    assert_eq!(r.is_ok(), short == t.len(), "{r:?}");
    let mut long = t.clone();
    long.extend(std::iter::repeat_n(T::default(), cut));
    assert_eq!(
        from_tma_aligned_mn_major(&long, groups, mn, kb).unwrap(),
        sf
    );
    // the wrong number of inputs is an error
    if !sf.is_empty() {
        assert!(to_tma_aligned_mn_major(&sf[1..], groups, mn, kb).is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (h, body) = data.split_at(4);
    let groups = (h[1] & 3) as usize;
    let corrupt = h[1] & 4 != 0;
    let kb = h[3] as usize % 20;
    // Big layouts need long inputs (at most 64 + 4·(content bytes) elements), so that
    // most executions are small and fast.
    let budget = 64 + 4 * body.len();
    let mn = (h[2] as usize % 160).min(budget / (groups * kb).max(1));
    let n = groups * mn * kb;
    let cut = body.first().map_or(0, |&b| b as usize % 5);
    match h[0] % 5 {
        // the plain layout for every element size
        0 => {
            let raw = bytes(body, 8 * n, 0);
            let u8s = raw[..n].to_vec();
            let u16s: Vec<u16> = raw
                .chunks_exact(2)
                .take(n)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let f32s: Vec<f32> = raw
                .chunks_exact(4)
                .take(n)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let u64s: Vec<u64> = raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            mn_major(&u8s, groups, mn, kb, cut);
            mn_major(&u16s, groups, mn, kb, cut);
            // f32 compared by bits (NaN payloads must survive)
            let bits: Vec<u32> = f32s.iter().map(|v| v.to_bits()).collect();
            mn_major(&bits, groups, mn, kb, cut);
            let t = to_tma_aligned_mn_major(&f32s, groups, mn, kb).unwrap();
            let back = from_tma_aligned_mn_major(&t, groups, mn, kb).unwrap();
            assert!(back
                .iter()
                .zip(&f32s)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            mn_major(&u64s, groups, mn, kb, cut);
        }
        // packed UE8M0 from valid (or, when corrupt, arbitrary) f32 scales
        1 => {
            let codes: Vec<u8> = bytes(body, n, 1)
                .into_iter()
                .map(|c| if c == 0xFF { 0xFE } else { c })
                .collect();
            let mut scales: Vec<f32> = codes
                .iter()
                .map(|&c| {
                    if c == 0 {
                        f32::from_bits(0x0040_0000)
                    } else {
                        f32::from_bits((c as u32) << 23)
                    }
                })
                .collect();
            let mut bad = None;
            if corrupt && n > 0 {
                let at = body.get(1).map_or(0, |&b| b as usize) % n;
                let raw = bytes(body, 4, 2);
                let v = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                scales[at] = v;
                let exp = (v.to_bits() >> 23) as u8;
                let valid = v.to_bits() == 0x0040_0000
                    || (v.to_bits() >> 31 == 0
                        && v.to_bits() & 0x7F_FFFF == 0
                        && (1..=254).contains(&exp));
                if !valid {
                    bad = Some(at);
                }
            }
            let r = to_tma_aligned_packed_ue8m0(&scales, groups, mn, kb);
            if let Some(at) = bad {
                assert!(
                    matches!(r, Err(Error::Scale { index, .. }) if index == at),
                    "{r:?}"
                );
                assert!(ue8m0_codes_of(&scales).is_err());
                return;
            }
            let packed = r.unwrap();
            let (ld, words) = (tma_aligned_ld::<i32>(mn), kb.div_ceil(4));
            assert_eq!(packed.len(), groups * words * ld);
            let codes = ue8m0_codes_of(&scales).unwrap();
            for b in 0..groups {
                for w in 0..words {
                    for i in 0..ld {
                        let word = packed[b * ld * words + w * ld + i].to_le_bytes();
                        for (t, &byte) in word.iter().enumerate() {
                            let j = 4 * w + t;
                            let want = if i < mn && j < kb {
                                codes[(b * mn + i) * kb + j]
                            } else {
                                0
                            };
                            assert_eq!(byte, want);
                        }
                    }
                }
            }
            let back = from_tma_aligned_packed_ue8m0(&packed, groups, mn, kb).unwrap();
            assert!(back
                .iter()
                .zip(&scales)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let rows = groups * mn;
            let p = pack_ue8m0(&codes, rows, kb).unwrap();
            assert_eq!(unpack_ue8m0(&p, rows, kb).unwrap(), codes);
        }
        // arbitrary words into the packed-UE8M0 reader: an error, or scales that pack
        // back to the same words (padding rows aside)
        2 => {
            let (ld, words) = (tma_aligned_ld::<i32>(mn), kb.div_ceil(4));
            let len = (groups * words * ld).saturating_sub(if corrupt { cut } else { 0 });
            let raw = bytes(body, 4 * len, 3);
            let data: Vec<i32> = raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            match from_tma_aligned_packed_ue8m0(&data, groups, mn, kb) {
                Ok(scales) => {
                    assert_eq!(scales.len(), n);
                    let again = to_tma_aligned_packed_ue8m0(&scales, groups, mn, kb).unwrap();
                    for b in 0..groups {
                        for w in 0..words {
                            for i in 0..mn {
                                let x = b * ld * words + w * ld + i;
                                assert_eq!(again[x], data[x]);
                            }
                        }
                    }
                }
                Err(e) => {
                    let short = data.len() < groups * words * ld;
                    let padding_or_nan = || {
                        (0..groups).any(|b| {
                            (0..words).any(|w| {
                                (0..mn).any(|i| {
                                    let bytes = data[b * ld * words + w * ld + i].to_le_bytes();
                                    let used = (kb - 4 * w).min(4);
                                    bytes[used..].iter().any(|&x| x != 0)
                                        || bytes[..used].contains(&0xFF)
                                })
                            })
                        })
                    };
                    assert!(short || padding_or_nan(), "unexpected {e:?}");
                }
            }
            // row-major unpacking of the same words with a matching shape
            let rows = data.len().checked_div(words).unwrap_or(0);
            let _ = unpack_ue8m0(&data[..rows * words], rows, kb);
        }
        // FP4 packing and the packed transpose
        3 => {
            let rows = mn;
            let cols = 2 * kb + ((h[1] as usize >> 3) & 1);
            let mut codes: Vec<u8> = bytes(body, rows * cols, 0)
                .into_iter()
                .map(|b| b & 0xF)
                .collect();
            if corrupt && !codes.is_empty() {
                let at = cut % codes.len();
                codes[at] |= 0x10;
                assert!(pack_e2m1(&codes, rows, cols).is_err());
                return;
            }
            let packed = match pack_e2m1(&codes, rows, cols) {
                Ok(p) => p,
                Err(e) => {
                    assert!(cols % 2 == 1, "{e:?}");
                    return;
                }
            };
            assert_eq!(packed.len(), rows * cols / 2);
            for (x, &p) in packed.iter().enumerate() {
                assert_eq!(p, codes[2 * x] | codes[2 * x + 1] << 4);
            }
            assert_eq!(unpack_e2m1(&packed, rows, cols).unwrap(), codes);
            match transpose_packed_e2m1(&packed, rows, cols) {
                Ok(t) => {
                    assert_eq!(rows % 2, 0);
                    let tc = unpack_e2m1(&t, cols, rows).unwrap();
                    for i in 0..rows {
                        for j in 0..cols {
                            assert_eq!(tc[j * rows + i], codes[i * cols + j]);
                        }
                    }
                    assert_eq!(transpose_packed_e2m1(&t, cols, rows).unwrap(), packed);
                }
                Err(e) => assert!(rows % 2 == 1, "{e:?}"),
            }
        }
        // inconsistent lengths everywhere: errors, never panics
        _ => {
            let len = body.len();
            let raw = bytes(body, len, 0);
            let f32s: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let i32s: Vec<i32> = f32s.iter().map(|v| v.to_bits() as i32).collect();
            let _ = to_tma_aligned_mn_major(&f32s, groups, mn, kb);
            let _ = from_tma_aligned_mn_major(&f32s, groups, mn, kb);
            let _ = to_tma_aligned_packed_ue8m0(&f32s, groups, mn, kb);
            let _ = from_tma_aligned_packed_ue8m0(&i32s, groups, mn, kb);
            let _ = pack_ue8m0(&raw, mn, kb);
            let _ = unpack_ue8m0(&i32s, mn, kb);
            let _ = pack_e2m1(&raw, mn, kb);
            let _ = unpack_e2m1(&raw, mn, kb);
            let _ = transpose_packed_e2m1(&raw, mn, kb);
            let _ = ue8m0_codes_of(&f32s);
            // huge dimensions must fail cleanly, not overflow
            let _ = to_tma_aligned_mn_major(&f32s, usize::MAX, mn.max(1), kb.max(1));
            let _ = from_tma_aligned_mn_major(&f32s, 3, usize::MAX - mn, kb.max(1));
            let _ = from_tma_aligned_packed_ue8m0(&i32s, 2, usize::MAX / 3, kb.max(1));
            let _ = unpack_e2m1(&raw, usize::MAX, 2);
            let _ = pack_ue8m0(&raw, usize::MAX, 2);
        }
    }
});
