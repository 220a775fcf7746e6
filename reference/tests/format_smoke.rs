use scalegemm_reference::format::*;
#[test]
fn smoke() {
    assert_eq!(e4m3::encode(464.0), 0x7E);
    assert_eq!(e4m3::encode(465.0), 0x7F);
    assert_eq!(e4m3::encode(-465.0), 0xFF);
    assert_eq!(e4m3::encode_satfinite(1e9), 0x7E);
    assert_eq!(e4m3::decode(0x01), 1.0 / 512.0);
    assert_eq!(e4m3::decode(0x7E), 448.0);
    for b in 0..=255u8 {
        let v = e4m3::decode(b);
        if !v.is_nan() {
            assert_eq!(e4m3::encode(v), b, "{b:#x}");
        }
    }
    for b in 0..=255u8 {
        let v = e5m2::decode(b);
        if !v.is_nan() {
            assert_eq!(e5m2::encode(v), b, "{b:#x}");
        }
    }
    for b in 0..16u8 {
        assert_eq!(e2m1::encode(e2m1::decode(b)), b);
    }
    assert_eq!(e5m2::encode(61440.0), 0x7C);
    assert_eq!(e5m2::encode(61439.0), 0x7B);
    let ties = [
        (0.25, 0.0),
        (0.75, 1.0),
        (1.25, 1.0),
        (1.75, 2.0),
        (2.5, 2.0),
        (3.5, 4.0),
        (5.0, 4.0),
    ];
    for (x, y) in ties {
        assert_eq!(e2m1::decode(e2m1::encode(x)), y, "{x}");
    }
    assert_eq!(ue8m0::encode(3.0), 129);
    assert_eq!(ue8m0::encode_ceil(3.0), 129);
    assert_eq!(ue8m0::encode_ceil(1e-40), 1);
    assert_eq!(ue8m0::decode(0), 2f32.powi(-127));
    assert_eq!(bf16::from_f64(1.0 + 2f64.powi(-8)).to_bits(), 0x3F80);
    assert_eq!(
        bf16::from_f64(1.0 + 2f64.powi(-8) + 2f64.powi(-40)).to_bits(),
        0x3F81
    );
    assert_eq!(
        bf16::from_f64_sticky(1.0 + 2f64.powi(-8), 1e-30).to_bits(),
        0x3F81
    );
    assert_eq!(
        bf16::from_f64_sticky(1.0 + 2f64.powi(-8), -1e-30).to_bits(),
        0x3F80
    );
    assert_eq!(
        round_f64_to_f32(1.0 + 2f64.powi(-24), 1e-30),
        1.0 + 2f32.powi(-23)
    );
    assert_eq!(round_f64_to_f32(1e300, 0.0), f32::INFINITY);
    assert_eq!(round_f64_to_f32(1e-50, 0.0), 0.0);
    assert_eq!(round_f64_to_f32(1.4e-45, 0.0), f32::from_bits(1));
}
