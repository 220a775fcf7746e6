//! `scalegemm-verify`: the numerical-error report of scaled low-precision GEMM kernels,
//! and the bridge to other frameworks' dumps. `scalegemm-verify --help` says how to use
//! it; the README has the dump format.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use scalegemm_verify::dump::{self, Dump, Op, OutDtype};
use scalegemm_verify::report::{self, output, Options};

/// Numerical-error reports for Hopper FP8/FP4 GEMM kernels, against an exact CPU
/// reference.
///
/// Run with no arguments (or `report`) for the report on the built-in cases: DeepSeek-V3
/// shapes, edge shapes and adversarial values. Without a GPU it measures each recipe's
/// quantization error and the error a Hopper-style kernel would have (the reference's
/// bit-level model), and says that GPU kernels were not run.
///
/// Exit codes: 0 = every result inside its bound, 1 = some result outside, 2 = bad input
/// or usage.
#[derive(Parser, Debug)]
#[command(
    name = "scalegemm-verify",
    version,
    about,
    long_about,
    after_help = "Examples:\n  \
    scalegemm-verify report --out report/          the report, also as report.md/.json/.html\n  \
    scalegemm-verify report --weights model.safetensors   real [out, in] weights (and *.input activations)\n  \
    scalegemm-verify ops                           the dump format: op names and tensor names\n  \
    scalegemm-verify reference in.safetensors -o ref.safetensors   add the reference output d\n  \
    scalegemm-verify check dump.safetensors        judge a kernel's output d (exit 0/1/2)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The numerical-error report (the default command).
    ///
    /// Per case and recipe: the quantization error (exact product of the quantized inputs
    /// against the unquantized product) and every kernel's error against the exact
    /// product of the quantized inputs, with the Hopper model's per-element bound.
    /// Example: `scalegemm-verify report --out report/`.
    Report(ReportArgs),
    /// Write the reference output `d` of a dump (a safetensors file with an "op").
    ///
    /// OUT holds the inputs, the same __metadata__, and `d`; each GEMM element is the
    /// correctly rounded exact value. `scalegemm-verify ops` lists the tensor names.
    /// Example: `scalegemm-verify reference inputs.safetensors -o ref.safetensors`.
    Reference {
        /// The dump with the op's input tensors.
        input: PathBuf,
        /// Where to write the dump with `d` added.
        #[arg(short, long, value_name = "OUT.safetensors")]
        output: PathBuf,
        /// Dtype of the written `d`.
        #[arg(long, value_enum, default_value_t = OutArg::Bf16)]
        out_dtype: OutArg,
    },
    /// Check a candidate output `d` in a dump against the reference.
    ///
    /// Compares every element with the exact value under the Hopper-model per-element
    /// bound plus half an ulp of d's dtype; prints calc_diff with DeepGEMM's threshold for
    /// context. Exit 0 inside the bound, 1 outside, 2 for a bad file (the message names
    /// the problem). Example: `scalegemm-verify check my_kernel_dump.safetensors`.
    Check {
        /// The dump with the inputs and the candidate `d`.
        dump: PathBuf,
    },
    /// List the ops a dump may name and their tensors (names, dtypes, shapes).
    Ops,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Also write report.md, report.json (stable schema), report.html and plots/ here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Use the tensors of this file instead of random data: each 2-D BF16/F16/F32
    /// `X.weight` [out, in] as B, with its `X.input` [tokens, in] (or a sibling's) as A.
    #[arg(long, value_name = "FILE.safetensors")]
    weights: Option<PathBuf>,
    /// M of the DeepSeek-V3 shapes, comma separated (DeepGEMM tests 128 and 4096).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "128",
        value_name = "M,.."
    )]
    m: Vec<usize>,
    /// Rows and columns sampled per case for the (slow, bit-level) Hopper model.
    #[arg(long, default_value_t = 64)]
    sample: usize,
    /// Seed of the random data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only the small cases (edge, adversarial, a short K sweep): seconds, not minutes.
    #[arg(long)]
    quick: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutArg {
    /// BF16 output.
    Bf16,
    /// FP32 output.
    F32,
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cmd = match cli.cmd {
        Some(c) => c,
        None => match Cli::parse_from(["scalegemm-verify", "report"]).cmd {
            Some(c) => c,
            None => unreachable!("`report` parses to a command"),
        },
    };
    match cmd {
        Cmd::Report(a) => run_report(a),
        Cmd::Reference {
            input,
            output,
            out_dtype,
        } => {
            let pb = spinner("computing the reference");
            let res = Dump::read_file(&input).and_then(|d| {
                let out = match out_dtype {
                    OutArg::Bf16 => OutDtype::Bf16,
                    OutArg::F32 => OutDtype::F32,
                };
                dump::reference(&d, out)?.to_bytes()
            });
            pb.finish_and_clear();
            match res {
                Ok(bytes) => match std::fs::write(&output, bytes) {
                    Ok(()) => {
                        println!("wrote {}", output.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => bad(format!("cannot write {}: {e}", output.display())),
                },
                Err(e) => bad(format!("{}: {e}", input.display())),
            }
        }
        Cmd::Check { dump: path } => {
            let pb = spinner("checking");
            let res = Dump::read_file(&path).and_then(|d| dump::check(&d));
            pb.finish_and_clear();
            match res {
                Ok(rep) => {
                    println!("{}: {rep}", path.display());
                    if rep.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => bad(format!("{}: {e}", path.display())),
            }
        }
        Cmd::Ops => {
            for op in Op::ALL {
                println!("{}", op.name());
                for t in op.tensors() {
                    println!(
                        "  {:<15} {:<9} {:<50} {}",
                        t.name, t.role, t.dtypes, t.shape
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn run_report(a: ReportArgs) -> ExitCode {
    let opts = Options {
        ms: a.m,
        sample: a.sample,
        seed: a.seed,
        quick: a.quick,
        weights: a.weights,
        progress: !a.no_progress,
    };
    let rep = match report::run(&opts) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    print!("{}", output::terminal(&rep));
    if let Some(dir) = &a.out {
        match output::write_dir(&rep, dir) {
            Ok(files) => {
                for f in files
                    .iter()
                    .filter(|f| f.extension().is_some_and(|e| e != "svg"))
                {
                    println!("wrote {}", f.display());
                }
            }
            Err(e) => return bad(format!("cannot write the report to {}: {e}", dir.display())),
        }
    }
    if rep.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
