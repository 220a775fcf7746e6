//! The report's GPU hook with stand-in kernels: a correct one passes, one with a block
//! scaled by two fails with the block located, one that errors is recorded as failed.

mod dump_util;

use half::bf16;
use scalegemm_reference::gemm::{gemm, Fp8Operand, Fp8Recipe, MatView, OutBuf, OutView, Scales};
use scalegemm_verify::dump::{Dump, Tensor};
use scalegemm_verify::report::kernel::{Fp8GemmNt, Fp8GemmProblem};
use scalegemm_verify::report::{output, run_with, Options};

/// The correctly rounded BF16 product, with every element of rows and columns
/// `0..128` multiplied by `block_factor`.
struct Cpu {
    name: &'static str,
    block_factor: f32,
}

impl Fp8GemmNt for Cpu {
    fn name(&self) -> String {
        self.name.into()
    }

    fn run(&self, p: &Fp8GemmProblem) -> Result<Vec<bf16>, String> {
        let kb = p.k.div_ceil(128);
        let e = |e: scalegemm_reference::Error| e.to_string();
        let a = Fp8Operand::new(
            MatView::k_major(&p.a, p.m, p.k, p.k).map_err(e)?,
            Scales::F32(MatView::k_major(&p.sfa, p.m, kb, kb).map_err(e)?),
            Fp8Recipe::PerToken,
        )
        .map_err(e)?;
        let b = Fp8Operand::new(
            MatView::k_major(&p.b, p.n, p.k, p.k).map_err(e)?,
            Scales::F32(MatView::k_major(&p.sfb, p.n.div_ceil(128), kb, kb).map_err(e)?),
            Fp8Recipe::PerBlock,
        )
        .map_err(e)?;
        let mut d = vec![bf16::ZERO; p.m * p.n];
        let mut out = OutView::new(OutBuf::Bf16(&mut d), p.m, p.n, p.n).map_err(e)?;
        gemm(&a.into(), &b.into(), None, &mut out).map_err(e)?;
        for r in 0..p.m.min(128) {
            for c in 0..p.n.min(128) {
                let v = &mut d[r * p.n + c];
                *v = bf16::from_f32(v.to_f32() * self.block_factor);
            }
        }
        Ok(d)
    }
}

struct Failing;

impl Fp8GemmNt for Failing {
    fn name(&self) -> String {
        "failing".into()
    }

    fn run(&self, _: &Fp8GemmProblem) -> Result<Vec<bf16>, String> {
        Err("no device".into())
    }
}

#[test]
fn gpu_hook_judges_each_backend() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Dump::default();
    w.insert(
        "l.weight",
        Tensor::from_f32(&[256, 384], &dump_util::randn(256 * 384, 1)),
    );
    w.insert(
        "l.input",
        Tensor::from_f32(&[130, 384], &dump_util::randn(130 * 384, 2)),
    );
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let backends: Vec<Box<dyn Fp8GemmNt>> = vec![
        Box::new(Cpu {
            name: "exact",
            block_factor: 1.0,
        }),
        Box::new(Cpu {
            name: "bad-block",
            block_factor: 2.0,
        }),
        Box::new(Failing),
    ];
    let opts = Options {
        sample: 8,
        weights: Some(path),
        progress: false,
        ..Options::default()
    };
    let rep = run_with(&opts, &backends, None).unwrap();
    assert!(rep.gpu.ran && rep.gpu.reason.is_none());
    assert!(!rep.ok);
    let case = &rep.cases[0];
    // Two FP8 recipes x three backends, plus the Hopper model on four recipes.
    assert_eq!(case.kernels.len(), 4 + 2 * 3);
    for k in &case.kernels {
        match k.kernel.as_str() {
            "exact" | "hopper-model" => {
                assert!(k.ok, "{k:?}");
                assert_eq!(k.inside_pct, 100.0);
            }
            "bad-block" => {
                assert!(!k.ok && k.outside > 1000, "{k:?}");
                let w = k.worst.as_ref().unwrap();
                assert!(w.row < 128 && w.col < 128, "{w:?}");
                assert_eq!(k.elements, 130 * 256);
            }
            "failing" => assert_eq!(k.error.as_deref(), Some("no device")),
            other => panic!("unexpected kernel {other}"),
        }
    }
    let text = output::terminal(&rep);
    assert!(
        text.contains("GPU kernels run: exact, bad-block, failing"),
        "{text}"
    );
    assert!(text.contains("SOME RESULTS OUTSIDE"), "{text}");
}
