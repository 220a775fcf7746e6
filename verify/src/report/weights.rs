//! `--weights FILE.safetensors`: real `[out, in]` weights (BF16, F16 or F32) as B of an
//! NT GEMM, with their recorded activations as A where the file has them.
//!
//! Pairing: the weight `X.weight` `[N, K]` takes the activation `X.input` `[T, K]` when
//! present; otherwise the `*.input` with K columns whose name shares the longest prefix
//! with `X` (at least its first dotted component: `layer0.attention.self.key` takes
//! `layer0.attention.self.query.input`, which is what MiniLM's key and value read);
//! otherwise 128 rows of N(0, 1) activations, said so in the case's description. Every
//! other 2-D float tensor whose name does not end in `.input` is taken as a weight.

use safetensors::Dtype;

use super::cases::normal;
use super::measure::CaseInput;
use super::ReportError;
use crate::dump::Dump;

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::BF16 | Dtype::F16 | Dtype::F32)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Reads the file and builds one case per weight, in name order.
///
/// # Errors
/// [`ReportError::Weights`] when the file cannot be read, is not safetensors, or has no
/// 2-D float tensor.
pub(crate) fn load(path: &std::path::Path) -> Result<Vec<CaseInput>, ReportError> {
    let dump = Dump::read_file(path).map_err(|e| ReportError::Weights(e.to_string()))?;
    let two_d = |name: &String| {
        let t = &dump.tensors[name];
        is_float(t.dtype()) && t.shape().len() == 2
    };
    let inputs: Vec<&String> = dump
        .tensors
        .keys()
        .filter(|n| n.ends_with(".input") && two_d(n))
        .collect();
    let mut cases = Vec::new();
    for (name, t) in &dump.tensors {
        if name.ends_with(".input") || !two_d(name) {
            continue;
        }
        let (n, k) = (t.shape()[0], t.shape()[1]);
        let stem = name.strip_suffix(".weight").unwrap_or(name);
        let first = stem.split('.').next().unwrap_or(stem).len();
        let own = format!("{stem}.input");
        let chosen = inputs
            .iter()
            .filter(|i| dump.tensors[i.as_str()].shape()[1] == k)
            .map(|i| {
                (
                    if **i == own {
                        usize::MAX
                    } else {
                        common_prefix(i, stem)
                    },
                    *i,
                )
            })
            .filter(|&(p, _)| p >= first)
            .max_by_key(|&(p, _)| p)
            .map(|(_, i)| i);
        let (a, m, src) = match chosen {
            Some(i) => {
                let ta = &dump.tensors[i.as_str()];
                let how = if *i == own { "" } else { ", shared" };
                (ta.to_f32(), ta.shape()[0], format!("A = {i}{how}"))
            }
            None => (
                normal(128, k, 0xA11CE),
                128,
                "A = 128 rows of N(0, 1) (no recorded input)".into(),
            ),
        };
        cases.push(CaseInput::Data {
            name: stem.to_string(),
            group: "weights",
            m,
            n,
            k,
            a,
            b: t.to_f32(),
            desc: format!("B = {name} ({}), {src}", t.dtype()),
        });
    }
    if cases.is_empty() {
        return Err(ReportError::Weights(format!(
            "{} has no 2-D BF16/F16/F32 weight tensor",
            path.display()
        )));
    }
    Ok(cases)
}
