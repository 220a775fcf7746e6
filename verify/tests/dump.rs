//! The dump library: every op's reference round-trips through `check`, a wrong element
//! fails it, FP32 reference outputs are the correctly rounded exact values (checked
//! against BigInt arithmetic), and malformed files are errors, never panics.

mod dump_util;

use dump_util::{bf16_dump, d_values, edit_d, fp8_blocks, fp8_dump, fp8_fp4_dump, fp8_rows, randn};
use num_bigint::BigInt;
use proptest::prelude::*;
use safetensors::Dtype;
use scalegemm_reference::format::{e4m3, ue8m0};
use scalegemm_verify::dump::{check, reference, Dump, DumpError, Op, OutDtype, Problem, Tensor};

/// Reference, check (must pass), then `bump` one compared element (must fail).
fn round_trip(d: &Dump, out: OutDtype, bump: usize) {
    let r = reference(d, out).unwrap();
    let bytes = r.to_bytes().unwrap();
    let r = Dump::read(&bytes).unwrap();
    let rep = check(&r).unwrap();
    assert!(rep.passed(), "{rep}");
    let mut bad = r.clone();
    edit_d(&mut bad, |v| {
        let mean = v
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| x.abs())
            .sum::<f32>()
            / v.len() as f32;
        v[bump] += 0.5 * mean.max(1e-3);
    });
    let rep = check(&bad).unwrap();
    assert!(!rep.passed(), "a wrong element must fail: {rep}");
}

#[test]
fn fp8_gemm_1d2d_1d1d_with_and_without_c() {
    round_trip(&fp8_dump(130, 200, 300, 1, true, false), OutDtype::Bf16, 5);
    round_trip(
        &fp8_dump(64, 96, 256, 2, false, true),
        OutDtype::F32,
        64 * 96 - 1,
    );
}

#[test]
fn fp8_fp4_gemm_both_groups_and_packed_i32_scales() {
    round_trip(&fp8_fp4_dump(40, 72, 320, 32, 3), OutDtype::Bf16, 17);
    let mut d = fp8_fp4_dump(40, 72, 320, 128, 4);
    round_trip(&d, OutDtype::F32, 100);
    // The same scales packed four per I32 (and the group given by metadata).
    let codes = d.tensors["sfb"].data().to_vec();
    let packed = scalegemm_reference::quant::pack_ue8m0(&codes, 72, 3).unwrap();
    d.insert("sfb", Tensor::from_i32(&[72, 1], &packed));
    round_trip(&d, OutDtype::Bf16, 3);
}

#[test]
fn bf16_gemm() {
    round_trip(&bf16_dump(33, 65, 700, 5), OutDtype::Bf16, 40);
}

#[test]
fn m_grouped_contiguous_ignores_padding_rows() {
    let (m, n, k, g) = (300, 160, 256, 3);
    let (a, sfa) = fp8_rows(m, k, 10);
    let mut d = Dump::new(Op::MGroupedFp8GemmNtContiguous);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[m, k], a));
    d.insert("sfa", Tensor::from_f32(&[m, 2], &sfa));
    let (mut bc, mut bs) = (Vec::new(), Vec::new());
    for i in 0..g {
        let (c, s) = fp8_blocks(n, k, 20 + i as u64);
        bc.extend(c);
        bs.extend(s);
    }
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[g, n, k], bc));
    d.insert("sfb", Tensor::from_f32(&[g, 2, 2], &bs));
    let layout: Vec<i32> = (0..m as i32)
        .map(|r| match r {
            0..100 => 0,
            100..128 => -1,
            128..250 => 1,
            _ => 2,
        })
        .collect();
    d.insert("grouped_layout", Tensor::from_i32(&[m], &layout));
    round_trip(&d, OutDtype::Bf16, 130 * n + 7);
    // Garbage in a padding row is not compared.
    let mut r = reference(&d, OutDtype::Bf16).unwrap();
    edit_d(&mut r, |v| v[110 * n + 3] = f32::NAN);
    assert!(check(&r).unwrap().passed());
}

#[test]
fn m_grouped_masked_compares_only_used_rows() {
    let (g, max_m, n, k) = (2, 64, 96, 384);
    let (a, sfa) = fp8_rows(g * max_m, k, 30);
    let mut d = Dump::new(Op::MGroupedFp8GemmNtMasked);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[g, max_m, k], a));
    d.insert("sfa", Tensor::from_f32(&[g, max_m, 3], &sfa));
    let (mut bc, mut bs) = (Vec::new(), Vec::new());
    for i in 0..g {
        let (c, s) = fp8_blocks(n, k, 40 + i as u64);
        bc.extend(c);
        bs.extend(s);
    }
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[g, n, k], bc));
    d.insert("sfb", Tensor::from_f32(&[g, 1, 3], &bs));
    d.insert("masked_m", Tensor::from_i32(&[g], &[40, 7]));
    round_trip(&d, OutDtype::Bf16, (max_m + 3) * n + 1);
    let mut r = reference(&d, OutDtype::Bf16).unwrap();
    edit_d(&mut r, |v| v[50 * n] = 1e6);
    assert!(
        check(&r).unwrap().passed(),
        "row 50 >= masked_m[0] is not compared"
    );
}

#[test]
fn k_grouped_with_c_in_f32() {
    let (m, n, ks) = (64usize, 96usize, [128usize, 0, 256]);
    let sum_k: usize = ks.iter().sum();
    // MN-major codes [sum K, M] and scales [sum K / 128, M]: per-token along M, per 128 K.
    let a = randn(sum_k * m, 50);
    let b = randn(sum_k * n, 51);
    let mn_major = |x: &[f32], cols: usize| {
        let codes: Vec<u8> = x
            .iter()
            .map(|&v| e4m3::encode_satfinite(v * 64.0))
            .collect();
        let scales: Vec<f32> = (0..sum_k / 128 * cols)
            .map(|i| 2f32.powi(-6 - (i % 3) as i32))
            .collect();
        (codes, scales)
    };
    let (ac, asf) = mn_major(&a, m);
    let (bc, bsf) = mn_major(&b, n);
    let mut d = Dump::new(Op::KGroupedFp8GemmTnContiguous);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[sum_k, m], ac));
    d.insert("sfa", Tensor::from_f32(&[sum_k / 128, m], &asf));
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[sum_k, n], bc));
    d.insert("sfb", Tensor::from_f32(&[sum_k / 128, n], &bsf));
    d.insert("ks", Tensor::from_i32(&[3], &ks.map(|x| x as i32)));
    d.insert("c", Tensor::from_f32(&[3, m, n], &randn(3 * m * n, 52)));
    round_trip(&d, OutDtype::F32, 2 * m * n + 5);
    // K-grouped D agrees with three dense 1D1D GEMMs on the transposed groups.
    let r = reference(&d, OutDtype::F32).unwrap();
    assert_eq!(r.tensors["d"].shape(), &[3, m, n]);
}

#[test]
fn mqa_logits_dense_and_paged() {
    let (s, h, dim, s_kv) = (5usize, 4usize, 64usize, 40usize);
    let q: Vec<u8> = randn(s * h * dim, 60)
        .iter()
        .map(|&x| e4m3::encode_satfinite(x))
        .collect();
    let kv: Vec<u8> = randn(s_kv * dim, 61)
        .iter()
        .map(|&x| e4m3::encode_satfinite(x))
        .collect();
    let mut d = Dump::new(Op::Fp8MqaLogits);
    d.insert(
        "q",
        Tensor::from_bytes(Dtype::F8_E4M3, &[s, h, dim], q.clone()),
    );
    d.insert("kv", Tensor::from_bytes(Dtype::F8_E4M3, &[s_kv, dim], kv));
    let sc: Vec<f32> = randn(s_kv, 62)
        .iter()
        .map(|x| 0.01 + x.abs() * 0.01)
        .collect();
    d.insert("kv_scales", Tensor::from_f32(&[s_kv], &sc));
    d.insert("weights", Tensor::from_f32(&[s, h], &randn(s * h, 63)));
    d.insert("cu_seqlen_ks", Tensor::from_i32(&[s], &[0, 0, 5, 10, 39]));
    d.insert(
        "cu_seqlen_ke",
        Tensor::from_i32(&[s], &[10, 40, 25, 50, 40]),
    );
    round_trip(&d, OutDtype::F32, s_kv + 3);
    // Paged: 2 sequences, next_n 2, blocks of 16 tokens.
    let (batch, next_n, block_kv, nb, max_blocks) = (2usize, 2usize, 16usize, 6usize, 3usize);
    let mut cache = Vec::new();
    for blk in 0..nb {
        let codes = randn(block_kv * dim, 70 + blk as u64);
        cache.extend(codes.iter().map(|&x| e4m3::encode_satfinite(x)));
        for t in 0..block_kv {
            cache.extend((0.02f32 + t as f32 * 1e-3).to_le_bytes());
        }
    }
    let qp: Vec<u8> = randn(batch * next_n * h * dim, 80)
        .iter()
        .map(|&x| e4m3::encode_satfinite(x))
        .collect();
    let mut p = Dump::new(Op::Fp8PagedMqaLogits);
    p.insert(
        "q",
        Tensor::from_bytes(Dtype::F8_E4M3, &[batch, next_n, h, dim], qp),
    );
    p.insert(
        "kv_cache",
        Tensor::from_bytes(Dtype::U8, &[nb, block_kv, 1, dim + 4], cache),
    );
    p.insert(
        "weights",
        Tensor::from_f32(&[batch * next_n, h], &randn(batch * next_n * h, 81)),
    );
    p.insert("context_lens", Tensor::from_i32(&[batch], &[30, 45]));
    p.insert(
        "block_table",
        Tensor::from_i32(&[batch, max_blocks], &[2, 0, 5, 1, 3, 4]),
    );
    round_trip(&p, OutDtype::Bf16, 2 * 48 + 40);
}

// ---------------------------------------------------------------------------------------
// FP32 outputs against integer arithmetic
// ---------------------------------------------------------------------------------------

/// `x = mant · 2^exp` exactly, for a finite f32 or f64.
fn parts(x: f64) -> (BigInt, i32) {
    if x == 0.0 {
        return (BigInt::from(0), 0);
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7FF) as i32;
    let f = (bits & ((1 << 52) - 1)) as i64;
    let (m, e) = if e == 0 {
        (f, -1074)
    } else {
        (f | (1 << 52), e - 1075)
    };
    let m = if x < 0.0 { -m } else { m };
    (BigInt::from(m), e)
}

/// The sum of `terms` (each `(mant, exp)`) as an integer times `2^lo`.
fn exact_sum(terms: &[(BigInt, i32)]) -> (BigInt, i32) {
    let lo = terms.iter().map(|t| t.1).min().unwrap_or(0);
    let s = terms.iter().fold(BigInt::from(0), |acc, (m, e)| {
        acc + (m << ((e - lo) as usize))
    });
    (s, lo)
}

/// `n · 2^s` rounded to f32 with round-to-nearest-even (no overflow in these tests).
fn round_f32(n: &BigInt, s: i32) -> f32 {
    use num_bigint::Sign;
    if n.sign() == Sign::NoSign {
        return 0.0;
    }
    let neg = n.sign() == Sign::Minus;
    let mag = n.magnitude().clone();
    let top = mag.bits() as i32 - 1 + s; // value in [2^top, 2^(top+1))
    let q = (top - 23).max(-149); // quantum exponent
    let shift = q - s;
    let r = if shift <= 0 {
        mag << ((-shift) as usize)
    } else {
        let sh = shift as usize;
        let r = &mag >> sh;
        let rem = &mag - (&r << sh);
        let half = num_bigint::BigUint::from(1u8) << (sh - 1);
        if rem > half || (rem == half && r.bit(0)) {
            r + 1u8
        } else {
            r
        }
    };
    let v = r.to_string().parse::<f64>().unwrap() * 2f64.powi(q);
    (if neg { -v } else { v }) as f32
}

#[test]
fn fp32_reference_is_the_correctly_rounded_exact_value() {
    // 1D2D with C, 1D1D with heavy cancellation (B's second half = -first half + tiny).
    for (case, mut d) in [
        (0, fp8_dump(9, 20, 300, 90, true, true)),
        (1, fp8_dump(7, 33, 256, 91, false, false)),
    ] {
        if case == 1 {
            let t = d.tensors["b"].clone();
            let mut codes = t.data().to_vec();
            for row in codes.chunks_mut(256) {
                for j in 0..128 {
                    row[128 + j] = row[j] ^ 0x80; // negated
                }
                row[255] = 0x01; // the smallest subnormal: a near-tie residue
            }
            d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[33, 256], codes));
            let sfa = vec![1.0f32; 7 * 2];
            d.insert("sfa", Tensor::from_f32(&[7, 2], &sfa));
            let sfb = vec![0.75f32; 66];
            d.insert("sfb", Tensor::from_f32(&[33, 2], &sfb));
        }
        let p = Problem::parse(&d).unwrap();
        let [m, n] = p.out_shape();
        let k = d.tensors["a"].shape()[1];
        let kb = k.div_ceil(128);
        let (a, b) = (d.tensors["a"].data(), d.tensors["b"].data());
        let (sa, sb) = (d.tensors["sfa"].to_f32(), d.tensors["sfb"].to_f32());
        let per_block = d.tensors["sfb"].shape()[0] != n;
        let c = d.tensors.get("c").map(|t| t.to_f32());
        let r = reference(&d, OutDtype::F32).unwrap();
        let got = r.tensors["d"].to_f32();
        for i in 0..m {
            for j in 0..n {
                let mut terms: Vec<(BigInt, i32)> = Vec::new();
                for kk in 0..k {
                    let (ma, ea) = parts(e4m3::decode(a[i * k + kk]) as f64);
                    let (mb, eb) = parts(e4m3::decode(b[j * k + kk]) as f64);
                    let (ms, es) = parts(sa[i * kb + kk / 128] as f64);
                    let brow = if per_block { j / 128 } else { j };
                    let (mt, et) = parts(sb[brow * kb + kk / 128] as f64);
                    terms.push((ma * mb * ms * mt, ea + eb + es + et));
                }
                if let Some(c) = &c {
                    terms.push(parts(c[i * n + j] as f64));
                }
                let (s, lo) = exact_sum(&terms);
                let want = round_f32(&s, lo);
                assert_eq!(
                    got[i * n + j].to_bits(),
                    want.to_bits(),
                    "case {case} ({i}, {j}): got {} want {want}",
                    got[i * n + j]
                );
            }
        }
    }
}

#[test]
fn fp32_bf16_gemm_reference_is_correctly_rounded() {
    let d = bf16_dump(5, 11, 200, 95);
    let (a, b) = (d.tensors["a"].to_f32(), d.tensors["b"].to_f32());
    let got = reference(&d, OutDtype::F32).unwrap().tensors["d"].to_f32();
    for i in 0..5 {
        for j in 0..11 {
            let terms: Vec<(BigInt, i32)> = (0..200)
                .map(|kk| {
                    let (ma, ea) = parts(a[i * 200 + kk] as f64);
                    let (mb, eb) = parts(b[j * 200 + kk] as f64);
                    (ma * mb, ea + eb)
                })
                .collect();
            let (s, lo) = exact_sum(&terms);
            assert_eq!(got[i * 11 + j].to_bits(), round_f32(&s, lo).to_bits());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------

#[test]
fn huge_shapes_from_tiny_files_are_refused_before_allocating() {
    let big = 1usize << 40;
    let mut d = Dump::new(Op::Fp8GemmNt);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[big, 0], vec![]));
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[big, 0], vec![]));
    d.insert("sfa", Tensor::from_f32(&[big, 0], &[]));
    d.insert("sfb", Tensor::from_f32(&[big >> 7, 0], &[]));
    let d = Dump::read(&d.to_bytes().unwrap()).unwrap();
    assert!(matches!(Problem::parse(&d), Err(DumpError::TooLarge(_))));
    assert!(matches!(check(&d), Err(DumpError::TooLarge(_))));
}

/// A safetensors file of `header` (JSON) followed by `data`.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn headers_claiming_huge_tensors_are_errors_before_allocating() {
    let big = 1u64 << 40;
    // 2^40 F32 elements claimed, 16 bytes present; offsets that match the claim, then
    // offsets that match the bytes present, then a product of dims that overflows.
    for header in [
        format!(
            r#"{{"__metadata__":{{"op":"fp8_gemm_nt"}},"a":{{"dtype":"F32","shape":[{big}],"data_offsets":[0,{}]}}}}"#,
            4 * big
        ),
        format!(r#"{{"a":{{"dtype":"F32","shape":[{big}],"data_offsets":[0,16]}}}}"#),
        format!(r#"{{"a":{{"dtype":"F32","shape":[{big},{big},{big}],"data_offsets":[0,16]}}}}"#),
    ] {
        let bytes = raw_safetensors(&header, &[0; 16]);
        assert!(
            matches!(Dump::read(&bytes), Err(DumpError::Malformed(_))),
            "{header}"
        );
    }
    // A header length of 2^40 bytes in a 24-byte file.
    let mut bytes = big.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[b'{'; 16]);
    assert!(matches!(Dump::read(&bytes), Err(DumpError::Malformed(_))));
}

#[test]
fn zero_sized_tensors_cannot_describe_huge_problems() {
    let big = 1usize << 40;
    let to_err = |d: Dump| {
        let d = Dump::read(&d.to_bytes().unwrap()).unwrap();
        let p = Problem::parse(&d);
        assert!(matches!(p, Err(DumpError::TooLarge(_))), "{p:?}");
        assert!(matches!(check(&d), Err(DumpError::TooLarge(_))));
        assert!(matches!(
            reference(&d, OutDtype::F32),
            Err(DumpError::TooLarge(_))
        ));
    };
    // [2^40, 0] output: no elements, but 2^40 rows (spans, per-row bounds).
    let mut d = Dump::new(Op::Fp8GemmNt);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[big, 0], vec![]));
    d.insert("b", Tensor::from_bytes(Dtype::F8_E4M3, &[0, 0], vec![]));
    d.insert("sfa", Tensor::from_f32(&[big, 0], &[]));
    d.insert("sfb", Tensor::from_f32(&[0, 0], &[]));
    to_err(d);
    // 2^40 groups of an empty B.
    let mut d = Dump::new(Op::MGroupedFp8GemmNtContiguous);
    d.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[1, 0], vec![]));
    d.insert("sfa", Tensor::from_f32(&[1, 0], &[]));
    d.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[big, 1, 0], vec![]),
    );
    d.insert("sfb", Tensor::from_f32(&[big, 1, 0], &[]));
    d.insert("grouped_layout", Tensor::from_i32(&[1], &[0]));
    to_err(d);
    let mut d = Dump::new(Op::MGroupedFp8GemmNtMasked);
    d.insert(
        "a",
        Tensor::from_bytes(Dtype::F8_E4M3, &[big, 0, 0], vec![]),
    );
    d.insert("sfa", Tensor::from_f32(&[big, 0, 0], &[]));
    d.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[big, 1, 0], vec![]),
    );
    d.insert("sfb", Tensor::from_f32(&[big, 1, 0], &[]));
    d.insert("masked_m", Tensor::from_i32(&[0], &[]));
    to_err(d);
}

#[test]
fn empty_grouped_problems_are_not_panics() {
    // G = 0 groups: the reference's error (it needs a group), never a division by zero.
    let mut d = Dump::new(Op::MGroupedFp8GemmNtMasked);
    d.insert(
        "a",
        Tensor::from_bytes(Dtype::F8_E4M3, &[0, 4, 128], vec![]),
    );
    d.insert("sfa", Tensor::from_f32(&[0, 4, 1], &[]));
    d.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[0, 8, 128], vec![]),
    );
    d.insert("sfb", Tensor::from_f32(&[0, 1, 1], &[]));
    d.insert("masked_m", Tensor::from_i32(&[0], &[]));
    assert!(matches!(
        reference(&d, OutDtype::F32),
        Err(DumpError::Reference(_))
    ));
    d.insert("d", Tensor::from_f32(&[0, 4, 8], &[]));
    assert!(matches!(check(&d), Err(DumpError::Reference(_))));
    let mut d = Dump::new(Op::MGroupedFp8GemmNtContiguous);
    d.insert(
        "a",
        Tensor::from_bytes(Dtype::F8_E4M3, &[2, 128], vec![0x38; 256]),
    );
    d.insert("sfa", Tensor::from_f32(&[2, 1], &[1.0; 2]));
    d.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[0, 8, 128], vec![]),
    );
    d.insert("sfb", Tensor::from_f32(&[0, 1, 1], &[]));
    d.insert("grouped_layout", Tensor::from_i32(&[2], &[-1, -1]));
    assert!(matches!(
        reference(&d, OutDtype::F32),
        Err(DumpError::Reference(_))
    ));
    d.insert("d", Tensor::from_f32(&[2, 8], &[0.0; 16]));
    assert!(matches!(check(&d), Err(DumpError::Reference(_))));
}

#[test]
fn dumps_without_tensors_round_trip() {
    // safetensors 0.8 alone writes metadata without tensors as invalid JSON.
    for d in [Dump::default(), Dump::new(Op::Fp8GemmNt)] {
        let bytes = d.to_bytes().unwrap();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(Dump::read(&bytes).unwrap(), d);
        assert!(Problem::parse(&d).is_err());
    }
}

/// NaN and infinite inputs (the fuzzer's second and fourth finds: the BF16 and MQA
/// bounds were NaN there, so `check` refused the reference's own output).
#[test]
fn bf16_gemm_with_nan_and_inf_inputs_checks() {
    let mut d = bf16_dump(2, 3, 8, 5);
    let mut a = d.tensors["a"].to_bf16();
    let mut b = d.tensors["b"].to_bf16();
    b[0] = half::bf16::NAN; // column 0 of D is NaN
    b[9] = half::bf16::INFINITY; // column 1 infinite ...
    a[9] = half::bf16::ZERO; // ... but NaN at (1, 1): inf·0
    d.insert("a", Tensor::from_bf16(&[2, 8], &a));
    d.insert("b", Tensor::from_bf16(&[3, 8], &b));
    for out in [OutDtype::F32, OutDtype::Bf16] {
        let r = reference(&d, out).unwrap();
        let rep = check(&r).unwrap();
        assert!(rep.passed(), "{rep}");
    }
    // Found by the fuzzer: BF16 with NaN inputs, paged MQA with NaN codes in the cache.
    for name in ["seed-bf16-nan-inf-found", "seed-paged-mqa-nan-found"] {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/dump_reader")
                .join(name),
        )
        .unwrap();
        let d = Dump::read(&bytes).unwrap();
        assert!(check(&d).is_ok());
        assert!(check(&reference(&d, OutDtype::Bf16).unwrap())
            .unwrap()
            .passed());
    }
}

/// An exact value beyond the output range: the reference writes the infinity it rounds
/// to, and `check` accepts it (the fuzzer's third find: an "inf mismatch" before).
#[test]
fn overflowing_outputs_check_as_their_infinity() {
    let mut d = fp8_dump(2, 2, 128, 6, false, false);
    d.insert("sfa", Tensor::from_f32(&[2, 1], &[1e30, 1e30]));
    d.insert("sfb", Tensor::from_f32(&[2, 1], &[1e30, 1e30]));
    for out in [OutDtype::F32, OutDtype::Bf16] {
        let r = reference(&d, out).unwrap();
        assert!(d_values(&r).iter().any(|x| x.is_infinite()));
        let rep = check(&r).unwrap();
        assert!(rep.passed(), "{rep}");
    }
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/dump_reader/seed-fp8-overflow-found"),
    )
    .unwrap();
    let d = reference(&Dump::read(&bytes).unwrap(), OutDtype::Bf16).unwrap();
    assert!(check(&d).unwrap().passed());
}

#[test]
fn bad_values_are_errors() {
    let mut d = fp8_dump(8, 8, 128, 1, true, false);
    d.insert("sfb", Tensor::from_f32(&[1, 1], &[f32::NAN]));
    assert!(matches!(
        reference(&d, OutDtype::Bf16),
        Err(DumpError::Reference(_))
    ));
    let mut d = fp8_dump(8, 8, 128, 1, true, false);
    d.insert(
        "sfa",
        Tensor::from_bytes(Dtype::U8, &[8, 1], vec![ue8m0::NAN; 8]),
    );
    assert!(reference(&d, OutDtype::Bf16).is_err());
    let mut d = fp8_dump(8, 8, 128, 1, true, false);
    d.metadata.remove("op");
    assert!(matches!(Problem::parse(&d), Err(DumpError::NoOp)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Corrupting bytes of a valid dump never panics anywhere in read / parse / check.
    #[test]
    fn corrupted_dumps_never_panic(edits in proptest::collection::vec((0usize..4000, any::<u8>()), 1..6), cut in 0usize..4000) {
        let mut d = fp8_dump(4, 8, 130, 2, true, false);
        d = reference(&d, OutDtype::Bf16).unwrap();
        let mut bytes = d.to_bytes().unwrap();
        for (i, v) in edits {
            let n = bytes.len();
            bytes[i % n] = v;
        }
        bytes.truncate(cut.max(bytes.len().saturating_sub(cut % 16)));
        if let Ok(d) = Dump::read(&bytes) {
            let _ = Problem::parse(&d);
            let _ = check(&d);
            let _ = reference(&d, OutDtype::F32);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds of the `dump_reader` fuzz target (../fuzz/corpus/dump_reader/seed-*)
// ---------------------------------------------------------------------------------------

/// The seed dumps: small valid dumps of most ops (some with the reference `d`), written
/// by [`Dump::to_bytes`], and one truncated file. Name and bytes.
fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let with_d = |d: &Dump, out| reference(d, out).unwrap().to_bytes().unwrap();
    let fp8 = with_d(&fp8_dump(2, 3, 130, 1, true, true), OutDtype::Bf16);
    let truncated = fp8[..fp8.len() * 2 / 3].to_vec();
    let mut masked = Dump::new(Op::MGroupedFp8GemmNtMasked);
    let (a, sfa) = fp8_rows(4, 128, 90);
    masked.insert("a", Tensor::from_bytes(Dtype::F8_E4M3, &[2, 2, 128], a));
    masked.insert("sfa", Tensor::from_f32(&[2, 2, 1], &sfa));
    let (b, sfb) = fp8_blocks(2, 128, 91);
    let (b2, sfb2) = fp8_blocks(2, 128, 92);
    masked.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[2, 2, 128], [b, b2].concat()),
    );
    masked.insert("sfb", Tensor::from_f32(&[2, 1, 1], &[sfb, sfb2].concat()));
    masked.insert("masked_m", Tensor::from_i32(&[2], &[1, 2]));
    let mut kg = Dump::new(Op::KGroupedFp8GemmTnContiguous);
    let codes = |n: usize, seed| -> Vec<u8> {
        randn(n, seed)
            .iter()
            .map(|&x| e4m3::encode_satfinite(x * 64.0))
            .collect()
    };
    kg.insert(
        "a",
        Tensor::from_bytes(Dtype::F8_E4M3, &[128, 2], codes(256, 93)),
    );
    kg.insert("sfa", Tensor::from_f32(&[1, 2], &[0.5, 0.25]));
    kg.insert(
        "b",
        Tensor::from_bytes(Dtype::F8_E4M3, &[128, 3], codes(384, 94)),
    );
    kg.insert(
        "sfb",
        Tensor::from_bytes(Dtype::U8, &[1, 3], vec![126, 127, 128]),
    );
    kg.insert("ks", Tensor::from_i32(&[2], &[128, 0]));
    let mut mqa = Dump::new(Op::Fp8MqaLogits);
    mqa.insert(
        "q",
        Tensor::from_bytes(Dtype::F8_E4M3, &[2, 1, 4], codes(8, 95)),
    );
    mqa.insert(
        "kv",
        Tensor::from_bytes(Dtype::F8_E4M3, &[3, 4], codes(12, 96)),
    );
    mqa.insert("kv_scales", Tensor::from_f32(&[3], &[0.01, 0.02, 0.03]));
    mqa.insert("weights", Tensor::from_f32(&[2, 1], &[1.0, -0.5]));
    mqa.insert("cu_seqlen_ks", Tensor::from_i32(&[2], &[0, 1]));
    mqa.insert("cu_seqlen_ke", Tensor::from_i32(&[2], &[2, 3]));
    let mut paged = Dump::new(Op::Fp8PagedMqaLogits);
    let mut cache = codes(2 * 2 * 4, 97)[..8].to_vec();
    cache.extend([0.5f32, 0.25].iter().flat_map(|x| x.to_le_bytes()));
    cache.extend(codes(8, 98));
    cache.extend([1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()));
    paged.insert(
        "q",
        Tensor::from_bytes(Dtype::F8_E4M3, &[1, 1, 1, 4], codes(4, 99)),
    );
    paged.insert(
        "kv_cache",
        Tensor::from_bytes(Dtype::U8, &[2, 2, 1, 8], cache),
    );
    paged.insert("weights", Tensor::from_f32(&[1, 1], &[1.0]));
    paged.insert("context_lens", Tensor::from_i32(&[1], &[3]));
    paged.insert("block_table", Tensor::from_i32(&[1, 2], &[1, 0]));
    vec![
        ("seed-fp8-1d2d-c-d-bf16", fp8),
        (
            "seed-fp8-1d1d-inputs",
            fp8_dump(3, 2, 64, 2, false, false).to_bytes().unwrap(),
        ),
        (
            "seed-fp8-fp4-g32-d-f32",
            with_d(&fp8_fp4_dump(2, 2, 64, 32, 3), OutDtype::F32),
        ),
        (
            "seed-bf16-d-f32",
            with_d(&bf16_dump(2, 2, 8, 4), OutDtype::F32),
        ),
        ("seed-m-grouped-masked", masked.to_bytes().unwrap()),
        ("seed-k-grouped-d-f32", with_d(&kg, OutDtype::F32)),
        ("seed-mqa-d-bf16", with_d(&mqa, OutDtype::Bf16)),
        ("seed-paged-mqa-d-f32", with_d(&paged, OutDtype::F32)),
        ("seed-truncated", truncated),
    ]
}

fn seed_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dump_reader")
}

/// Writes the seeds: `cargo test -p scalegemm-verify --test dump -- --ignored
/// write_dump_reader_fuzz_seeds`.
#[test]
#[ignore = "writes ../fuzz/corpus/dump_reader/seed-*; run by hand"]
fn write_dump_reader_fuzz_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, bytes) in fuzz_seeds() {
        std::fs::write(seed_dir().join(name), bytes).unwrap();
    }
}

/// The checked-in seeds are what [`fuzz_seeds`] writes, and they are what they say:
/// valid dumps whose `d` (if any) passes `check`, and one malformed file.
#[test]
fn dump_reader_fuzz_seeds_are_checked_in_and_valid() {
    for (name, bytes) in fuzz_seeds() {
        let on_disk = std::fs::read(seed_dir().join(name)).unwrap();
        // Compared as dumps: the order of metadata keys in a header is not fixed.
        let same = match (Dump::read(&on_disk), Dump::read(&bytes)) {
            (Ok(x), Ok(y)) => x == y,
            _ => on_disk == bytes,
        };
        assert!(same, "{name} differs from fuzz_seeds(): rewrite the seeds");
        match Dump::read(&on_disk) {
            Err(DumpError::Malformed(_)) if name == "seed-truncated" => {}
            Ok(d) if name != "seed-truncated" => {
                let p = Problem::parse(&d).unwrap();
                assert!(reference(&d, OutDtype::F32).is_ok(), "{name}: {:?}", p.op());
                if d.tensors.contains_key("d") {
                    assert!(check(&d).unwrap().passed(), "{name}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Found by the `dump_reader` fuzz target: an `fp8_mqa_logits` dump with a NaN key scale.
/// `reference` computes NaN logits there; `check` must accept them (the bound of a key
/// whose scale is not finite is +inf) instead of refusing the scale.
#[test]
fn mqa_with_a_nan_key_scale_checks_what_reference_writes() {
    let bytes = std::fs::read(seed_dir().join("seed-mqa-nan-kv-scale-found")).unwrap();
    let dump = Dump::read(&bytes).unwrap();
    let r = reference(&dump, OutDtype::Bf16).expect("reference accepts the dump");
    let rep = check(&r).expect("check accepts what reference wrote");
    assert!(rep.passed(), "{rep}");
}
