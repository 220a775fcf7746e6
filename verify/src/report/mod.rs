//! The numerical-error report: `scalegemm-verify report`.
//!
//! For every case (built-in shapes and values, or real weights with `--weights`) and
//! every quantization recipe ([`Recipe`]) the report measures
//! - the *quantization error*: the exact product of the quantized inputs against the
//!   product of the unquantized f32 inputs (both in f64);
//! - the *kernel error* of every available kernel against the exact product of the
//!   quantized inputs, with the per-element bound of the Hopper `wgmma` model
//!   (`scalegemm_reference::hopper`, DESIGN §3.3/§3.4): the reference's bit-level Hopper
//!   model itself on sampled rows and columns (it is slow), and every GPU kernel of
//!   [`gpu::gpu_backends`] on the whole output (bound on sampled rows and columns for
//!   large outputs);
//! - the time of each step.
//!
//! [`run`] returns a [`Report`]; [`output`] renders it as a terminal table, report.md,
//! report.json and report.html with plots.
//!
//! # report.json, schema version 1
//! Stable: fields are only ever added (with a `schema_version` bump when one changes
//! meaning). Non-finite numbers (an infinite relative error) are written as `null`.
//! ```text
//! {
//!   "schema_version": 1,
//!   "tool": "scalegemm-verify 0.1.0",
//!   "data": "built-in cases, seed 0" | "weights: <path>",
//!   "gpu": { "ran": bool, "kernels": [name], "reason": string | null },
//!   "threads": int, "wall_s": float,
//!   "ok": bool,                      // every kernel result inside its bound, no case error
//!   "cases": [{
//!     "name": str, "group": "deepseek-v3" | "edge" | "adversarial" | "k-sweep" | "weights",
//!     "m": int, "n": int, "k": int, "data": str,
//!     "error": str | null,           // why the case could not run
//!     "quantization": [{             // one per recipe
//!       "recipe": str, "calc_diff": f, "sqnr_db": f, "max_abs": f, "max_rel": f,
//!       "threshold": f,              // DeepGEMM's calc_diff threshold for the recipe
//!       "above_threshold": bool, "time_s": f }],
//!     "kernels": [{                  // one per (kernel, recipe)
//!       "kernel": str,               // "hopper-model" or a GPU kernel's name
//!       "recipe": str, "elements": int, "checked": int,   // compared / bound-checked
//!       "sampled": str | null,       // how the bound-checked elements were chosen
//!       "calc_diff": f, "max_abs": f, "max_rel": f,
//!       "inside_pct": f, "outside": int,
//!       "worst": { "row": int, "col": int, "value": f, "exact": f,
//!                  "diff": f, "bound": f, "ratio": f } | null,
//!       "time_s": f, "ok": bool, "error": str | null }]
//!   }]
//! }
//! ```
//! Units: errors in the units of the output; `max_rel` = max |x − y| / |y|; `ratio` =
//! |x − y| / bound (> 1 is outside); times in seconds of wall clock.

pub mod cases;
pub mod gpu;
pub mod kernel;
mod measure;
pub mod output;
mod plot;
mod weights;

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub use measure::Recipe;

/// The version of the report.json schema this code writes.
pub const SCHEMA_VERSION: u32 = 1;

/// What `report` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// M of the DeepSeek-V3 shapes (default `[128]`).
    pub ms: Vec<usize>,
    /// Rows and columns sampled for the Hopper model (it is bit-level and slow): up to
    /// `sample × sample` elements per case and recipe.
    pub sample: usize,
    /// Seed of the random data.
    pub seed: u64,
    /// Only the small cases (edge, adversarial, a short K sweep): seconds.
    pub quick: bool,
    /// Real tensors instead of the built-in cases.
    pub weights: Option<PathBuf>,
    /// Show progress bars (on stderr, when it is a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ms: vec![128],
            sample: 64,
            seed: 0,
            quick: false,
            weights: None,
            progress: true,
        }
    }
}

/// Whether GPU kernels ran, and why not.
#[derive(Clone, Debug, Serialize)]
pub struct GpuStatus {
    /// True when at least one GPU kernel ran.
    pub ran: bool,
    /// Names of the kernels run.
    pub kernels: Vec<String>,
    /// Why no GPU kernel ran (`None` when some did).
    pub reason: Option<String>,
}

/// The whole report (serialised as report.json, see the [module docs](self)).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `scalegemm-verify <version>`.
    pub tool: String,
    /// Where the data came from.
    pub data: String,
    /// GPU kernels run, or why none.
    pub gpu: GpuStatus,
    /// Worker threads (rayon).
    pub threads: usize,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// True when every kernel result is inside its bound and every case ran.
    pub ok: bool,
    /// One entry per case.
    pub cases: Vec<CaseReport>,
}

/// The results of one case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    /// Unique name.
    pub name: String,
    /// Case group (see the [module docs](self)).
    pub group: String,
    /// Rows of A and D.
    pub m: usize,
    /// Rows of B, columns of D.
    pub n: usize,
    /// Reduction dimension.
    pub k: usize,
    /// How the data was made or where it came from.
    pub data: String,
    /// Why the case could not run, if it could not.
    pub error: Option<String>,
    /// Quantization error per recipe.
    pub quantization: Vec<QuantRow>,
    /// Kernel error per (kernel, recipe).
    pub kernels: Vec<KernelRow>,
}

/// Quantization error of one recipe: the exact product of the quantized inputs (x)
/// against the product of the unquantized inputs (y).
#[derive(Clone, Debug, Serialize)]
pub struct QuantRow {
    /// Recipe name ([`Recipe::name`]).
    pub recipe: String,
    /// DeepGEMM's calc_diff (DESIGN §3.4).
    pub calc_diff: f64,
    /// SQNR in dB.
    pub sqnr_db: f64,
    /// Largest |x − y|.
    pub max_abs: f64,
    /// Largest |x − y| / |y|.
    pub max_rel: f64,
    /// DeepGEMM's calc_diff threshold for the recipe (1e-3 FP8, 1e-2 one FP4 side).
    pub threshold: f64,
    /// `calc_diff > threshold` (adversarial cases are built to cross it; this does not
    /// change the exit code).
    pub above_threshold: bool,
    /// Seconds to quantize and compute the exact product.
    pub time_s: f64,
}

/// Kernel error of one kernel on one recipe against the exact product of the quantized
/// inputs.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    /// `"hopper-model"` or the GPU kernel's name.
    pub kernel: String,
    /// Recipe name.
    pub recipe: String,
    /// Elements compared (global metrics).
    pub elements: usize,
    /// Elements whose per-element bound was checked.
    pub checked: usize,
    /// How the compared or bound-checked elements were sampled, if they were.
    pub sampled: Option<String>,
    /// DeepGEMM's calc_diff over the compared elements.
    pub calc_diff: f64,
    /// Largest |x − exact|.
    pub max_abs: f64,
    /// Largest |x − exact| / |exact|.
    pub max_rel: f64,
    /// Percentage of checked elements inside their bound.
    pub inside_pct: f64,
    /// Checked elements outside their bound (plus NaN/inf mismatches anywhere).
    pub outside: usize,
    /// The element using the largest fraction of its bound.
    pub worst: Option<Worst>,
    /// Seconds the kernel (or the model) took.
    pub time_s: f64,
    /// Inside the bound and no error.
    pub ok: bool,
    /// Why the kernel failed to run, if it did.
    pub error: Option<String>,
    /// |x − exact| / bound of every checked element (for the histogram; not in JSON).
    #[serde(skip)]
    pub ratios: Vec<f64>,
}

/// The element with the largest |x − exact| / bound.
#[derive(Clone, Debug, Serialize)]
pub struct Worst {
    /// Row in D.
    pub row: usize,
    /// Column in D.
    pub col: usize,
    /// The kernel's value.
    pub value: f64,
    /// The exact value.
    pub exact: f64,
    /// |value − exact|.
    pub diff: f64,
    /// The element's bound.
    pub bound: f64,
    /// diff / bound.
    pub ratio: f64,
}

/// Everything `report` can fail on before measuring (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The `--weights` file cannot be used.
    #[error("--weights: {0}")]
    Weights(String),
    /// A bad option value.
    #[error("{0}")]
    Usage(String),
}

/// Runs the report: every case, every recipe, every kernel.
///
/// # Errors
/// [`ReportError::Weights`] when the weights file cannot be read or holds no usable
/// tensor; [`ReportError::Usage`] for `sample == 0` or an M of 0. Failures inside a case
/// (a non-finite weight, a kernel error) are recorded in that case instead.
pub fn run(opts: &Options) -> Result<Report, ReportError> {
    let (backends, why_not) = gpu::gpu_backends();
    run_with(opts, &backends, why_not)
}

/// [`run`] with the given kernels instead of [`gpu::gpu_backends`]'s; `why_not` is the
/// reason reported when `backends` is empty.
///
/// # Errors
/// As [`run`].
pub fn run_with(
    opts: &Options,
    backends: &[Box<dyn kernel::Fp8GemmNt>],
    why_not: Option<String>,
) -> Result<Report, ReportError> {
    if opts.sample == 0 || opts.ms.contains(&0) {
        return Err(ReportError::Usage(
            "--sample and every --m must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let (inputs, data) = match &opts.weights {
        Some(path) => (weights::load(path)?, format!("weights: {}", path.display())),
        None => (
            measure::builtin_inputs(&cases::builtin(&opts.ms, opts.quick), opts.seed),
            format!("built-in cases, seed {}", opts.seed),
        ),
    };
    let bar = if opts.progress {
        ProgressBar::new(inputs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut out = Vec::with_capacity(inputs.len());
    for inp in &inputs {
        bar.set_message(inp.name().to_string());
        out.push(measure::run_case(inp, opts, backends, &|step| {
            bar.set_message(format!("{}: {step}", inp.name()))
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ok = out
        .iter()
        .all(|c| c.error.is_none() && c.kernels.iter().all(|k| k.ok));
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        tool: format!("scalegemm-verify {}", env!("CARGO_PKG_VERSION")),
        data,
        gpu: GpuStatus {
            ran: !backends.is_empty(),
            kernels: backends.iter().map(|b| b.name()).collect(),
            reason: if backends.is_empty() {
                Some(why_not.unwrap_or_else(|| "GPU kernels not run: no GPU backend".into()))
            } else {
                None
            },
        },
        threads: rayon::current_num_threads(),
        wall_s: start.elapsed().as_secs_f64(),
        ok,
        cases: out,
    })
}
