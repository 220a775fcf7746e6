//! GPU benchmark of `scalegemm::fp8_gemm_nt` (1D2D, BF16 out) against cuBLASLt's blockwise
//! FP8 GEMM (A `VEC128_32F`, B `BLK128x128_32F`; `scalegemm_bench::cublaslt`) on the same
//! inputs, in one process, on DeepGEMM's dense shapes (M ∈ {1, 128, 4096} × seven (N, K))
//! plus 8192³, with cuBLASLt's BF16 GEMM at 8192³ and 4096×7168×16384 as the card's roofline.
//!
//! Per shape: seeded random E4M3 codes and non-uniform FP32 scales; A's scales pre-transformed
//! for us (TMA-aligned MN-major: one launch per call) and converted for cuBLASLt on the host.
//! 1. Correctness first: both run once into a NaN-poisoned D; our output is compared with
//!    cuBLASLt's (`calc_diff`, max relative error, unwritten elements); `MISMATCH` when
//!    `calc_diff` > 1e-4 (cuBLASLt's scale layouts would be wrong), `UNWRITTEN` for NaNs.
//! 2. Timing: 3 warm-up launches, then the median over 7 repeats of 20 back-to-back launches
//!    between two CUDA events (host API time included, as a caller sees it). Our repeats and
//!    cuBLASLt's alternate (ours, theirs; theirs, ours; …), so both run from the same power
//!    state: the H200 is power-limited under this load (its SM clock moved between 750 and
//!    1980 MHz at 700 W), and a measurement that ran first after a new shape's upload was up
//!    to 10 % faster than the same one run next. Each has its own D. "rot" columns:
//!    successive launches cycle through copies of A, B, scales and D totalling ≥ 3× the L2
//!    (capped at 8 GiB), so inputs come from HBM; when one set already exceeds 2× L2 the
//!    rotated time is the plain one ("=").
//! 3. M ≤ 128 (host-bound shapes), a second table: 20 launches captured in a CUDA graph and
//!    replayed between events (µs per kernel, no host overhead; ours and cuBLASLt's), and the
//!    Rust API's host time per call (wall clock over 200 calls without synchronising), with
//!    the bench's untracked buffers and with cudarc's default event-tracked buffers; then
//!    the host cost of a call's parts: one `cuTensorMapEncodeTiled`
//!    (a call makes four), making the context current, the tile heuristic, and
//!    `cuLaunchKernelEx` of an empty kernel with 4 or 768 bytes of parameters, with and
//!    without PDL (the floor under the per-call time).
//!
//! TFLOPS = 2·M·N·K / t; GB/s = (A + B + scales + D bytes) / t; ratio = cuBLASLt µs / our µs
//! (> 1: we are faster), with geometric means over the M = 128 and M = 4096 rows (the issue's
//! target) and over all rows where cuBLASLt ran. cuBLASLt shapes it refuses (M = 1) are "n/a".
//! Prints Markdown tables and writes JSON to `$OUT/bench_fp8_gemm.json` (or `./`): an object
//! with `device`, `protocol`, `fp8` (one row per shape and tile), `bf16_cublaslt` and `summary`.
//!
//! Buffers are allocated with cudarc's event tracking off (one stream; a tracked buffer's
//! event waits would otherwise be captured into the graph); the host-time column repeats the
//! measurement with tracked buffers, which is what a default `scalegemm::Device` user has.
//!
//! Usage (on the GPU machine): `bench_fp8_gemm [M,N,K ...] [BMxBN[cC][p][d][b][kS][/B] ...] [flags]`:
//! the given shapes (default: the list above) with the heuristic's tile, or with each given
//! tile (`cC` = C CTAs per cluster, `p` = pipelined promotion, `d` = direct stores, `b` =
//! B's loads from their own producer thread, `kS` = split-K over S units, `/B` = B N-blocks
//! per rasterisation band; a tile that does not parse is an error). Flags:
//! - `--check`: only the scale-layout check: cuBLASLt blockwise (both operand mappings, both
//!   128×128 leading dimensions, and deliberately wrong layouts as controls) and our kernel
//!   against the CPU reference (`scalegemm-reference`, f64) on 256×384×640 (5 K blocks);
//!   exits non-zero when the layout the bench uses disagrees;
//! - `--no-cublas`: no cuBLASLt at all (ours: plain, rotated, graph, host columns);
//! - `--only-ours`: our plain time only (no cuBLASLt, rotation, graph or host columns, no
//!   comparison): the quick loop for tile tuning.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use half::bf16;
use scalegemm::cudarc::driver::sys::{
    CUdevice_attribute, CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode,
};
use scalegemm::cudarc::driver::{CudaEvent, CudaSlice, CudaStream};
use scalegemm::runtime::tma::{self, TmaElem, TmaSwizzle};
use scalegemm::{Device, Fp8GemmConfig, Fp8Operand, Fp8Recipe, Fp8Scales, Matrix, MatrixMut};
use scalegemm_bench::cublaslt::{self, Bf16Gemm, BlockwiseFp8Gemm, Fp8Mapping, Lt, LtError};
use scalegemm_bench::{agreement, random_bf16, Agreement, Fp8Inputs};
use serde_json::{json, Value};

const WARMUP: usize = 3;
const REPEATS: usize = 7;
const LAUNCHES: usize = 20;
/// Calls per host-time measurement: few enough that the launch queue never fills.
const HOST_CALLS: usize = 200;
/// Cap on the memory of the rotated copies.
const ROTATION_CAP: usize = 8 << 30;
/// `calc_diff` above which our output and cuBLASLt's disagree.
const MISMATCH: f64 = 1e-4;
/// The `--check` shape: K = 640 has 5 K blocks (not a multiple of 4), N has 3 N blocks.
const CHECK_SHAPE: (usize, usize, usize) = (256, 384, 640);

type Res<T> = Result<T, Box<dyn Error>>;

/// Command line: shapes, forced tiles and flags.
struct Args {
    shapes: Vec<(usize, usize, usize)>,
    configs: Vec<Fp8GemmConfig>,
    check: bool,
    cublas: bool,
    only_ours: bool,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| argv.iter().any(|a| a == f);
    let mut shapes: Vec<(usize, usize, usize)> = argv
        .iter()
        .filter_map(|a| {
            let v: Vec<usize> = a.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect();
    if shapes.is_empty() {
        let nk = scalegemm_verify::report::cases::DSV3_NK;
        shapes = [1, 128, 4096]
            .iter()
            .flat_map(|&m| nk.iter().map(move |&(n, k)| (m, n, k)))
            .collect();
        shapes.push((8192, 8192, 8192));
    }
    // Tiles as `BMxBN[cC][p][d][b][kS][/B]` (`Fp8GemmConfig`'s `FromStr`); a mistyped one is an
    // error, not silently the heuristic's tile.
    let configs = argv
        .iter()
        .filter(|a| !a.starts_with('-') && a.contains('x'))
        .map(|a| {
            a.parse::<Fp8GemmConfig>().unwrap_or_else(|e| {
                eprintln!("bench_fp8_gemm: {e}");
                std::process::exit(2)
            })
        })
        .collect();
    let only_ours = flag("--only-ours");
    Args {
        shapes,
        configs,
        check: flag("--check"),
        cublas: !only_ours && !flag("--no-cublas"),
        only_ours,
    }
}

/// CUDA-event timing on one stream.
struct Timer {
    s: Arc<CudaStream>,
    start: CudaEvent,
    end: CudaEvent,
}

impl Timer {
    fn new(s: &Arc<CudaStream>) -> Res<Self> {
        let ev = || s.context().new_event(Some(CUevent_flags::CU_EVENT_DEFAULT));
        Ok(Timer {
            s: s.clone(),
            start: ev()?,
            end: ev()?,
        })
    }

    /// Median over [`REPEATS`] of µs per launch of `n` back-to-back `launch(i)`, after
    /// [`WARMUP`] launches.
    fn launches(&self, n: usize, mut launch: impl FnMut(usize) -> Res<()>) -> Res<f64> {
        for i in 0..WARMUP {
            launch(i)?;
        }
        self.s.synchronize()?;
        let mut times = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            self.start.record(&self.s)?;
            for i in 0..n {
                launch(i)?;
            }
            self.end.record(&self.s)?;
            self.end.synchronize()?;
            times.push(self.start.elapsed_ms(&self.end)? as f64 * 1e3 / n as f64);
        }
        Ok(median(times))
    }

    /// [`Timer::launches`] of two GEMMs with their repeats interleaved (a b, b a, a b, …):
    /// each then runs from the same power and thermal state. The H200 is power-limited
    /// under FP8 GEMM load (700 W; SM clock 750–1980 MHz, logged with `nvidia-smi -lms 100`,
    /// 2026-11-30), so whichever of two back-to-back measurements runs first after an idle
    /// gap (a new shape's upload) ran up to 10 % faster.
    fn pair(
        &self,
        n: usize,
        mut a: impl FnMut(usize) -> Res<()>,
        mut b: impl FnMut(usize) -> Res<()>,
    ) -> Res<(f64, f64)> {
        for i in 0..WARMUP {
            a(i)?;
            b(i)?;
        }
        self.s.synchronize()?;
        let (mut ta, mut tb) = (Vec::with_capacity(REPEATS), Vec::with_capacity(REPEATS));
        let time = |f: &mut dyn FnMut(usize) -> Res<()>| -> Res<f64> {
            self.start.record(&self.s)?;
            for i in 0..n {
                f(i)?;
            }
            self.end.record(&self.s)?;
            self.end.synchronize()?;
            Ok(self.start.elapsed_ms(&self.end)? as f64 * 1e3 / n as f64)
        };
        for r in 0..REPEATS {
            if r % 2 == 0 {
                ta.push(time(&mut a)?);
                tb.push(time(&mut b)?);
            } else {
                tb.push(time(&mut b)?);
                ta.push(time(&mut a)?);
            }
        }
        Ok((median(ta), median(tb)))
    }

    /// Median over [`REPEATS`] replays of a graph of [`LAUNCHES`] captured `launch(i)`: µs
    /// per kernel without host overhead.
    fn graph(&self, mut launch: impl FnMut(usize) -> Res<()>) -> Res<f64> {
        self.s.synchronize()?;
        self.s
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)?;
        let captured = (0..LAUNCHES).try_for_each(&mut launch);
        // End the capture even when a launch failed, so the stream is usable again.
        let graph = self.s.end_capture(CUgraphInstantiate_flags(0));
        captured?;
        let graph = graph?.ok_or("stream capture produced no graph")?;
        graph.upload()?;
        graph.launch()?;
        self.s.synchronize()?;
        let mut times = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            self.start.record(&self.s)?;
            graph.launch()?;
            self.end.record(&self.s)?;
            self.end.synchronize()?;
            times.push(self.start.elapsed_ms(&self.end)? as f64 * 1e3 / LAUNCHES as f64);
        }
        Ok(median(times))
    }

    /// Median over [`REPEATS`] of the host wall-clock µs per call of [`HOST_CALLS`] calls
    /// issued without synchronising (the stream is drained between repeats).
    fn host(&self, mut call: impl FnMut() -> Res<()>) -> Res<f64> {
        call()?;
        self.s.synchronize()?;
        wall_us_per_call(&self.s, HOST_CALLS, &mut call)
    }
}

/// Median over [`REPEATS`] of the host wall-clock µs per call of `calls` calls issued without
/// synchronising (`s` is drained between repeats).
fn wall_us_per_call(s: &CudaStream, calls: usize, call: &mut dyn FnMut() -> Res<()>) -> Res<f64> {
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let t0 = Instant::now();
        for _ in 0..calls {
            call()?;
        }
        times.push(t0.elapsed().as_secs_f64() * 1e6 / calls as f64);
        s.synchronize()?;
    }
    Ok(median(times))
}

/// Host µs per call of the parts of an `fp8_gemm_nt` call besides the launch, and of bare
/// launches (each the median of [`REPEATS`] loops): encoding one tensor map
/// (`cuTensorMapEncodeTiled`, the B map of 128×7168×16384; a call encodes four), binding the
/// context to the thread, the tile heuristic, and `cuLaunchKernelEx` of an empty kernel
/// (NVRTC-compiled here) with 4 bytes of parameters or 768 (as many as the GEMM's five tensor
/// maps and scalars take), with and without the PDL attribute ([`HOST_CALLS`] launches per
/// loop, unsynchronised).
fn host_parts(dev: &Device) -> Res<Vec<(&'static str, f64)>> {
    use scalegemm::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
    use scalegemm::runtime::launch::{arg, Launch};
    const CALLS: usize = 10_000;
    let time =
        |calls: usize, f: &mut dyn FnMut() -> Res<()>| wall_us_per_call(dev.stream(), calls, f);
    let mut parts = Vec::new();
    let ptr = 1u64 << 40;
    parts.push((
        "cuTensorMapEncodeTiled",
        time(CALLS, &mut || {
            let (rows, cols) = std::hint::black_box((7168, 16384));
            let map = tma::encode_2d(
                TmaElem::U8,
                ptr,
                rows,
                cols,
                cols,
                128,
                128,
                TmaSwizzle::B128,
            )?;
            std::hint::black_box(map);
            Ok(())
        })?,
    ));
    parts.push((
        "binding the context",
        time(CALLS, &mut || Ok(dev.context().bind_to_thread()?))?,
    ));
    let sms = dev.usable_sms();
    parts.push((
        "tile heuristic",
        time(CALLS, &mut || {
            let (m, n, k) = std::hint::black_box((128, 7168, 16384));
            std::hint::black_box(scalegemm::gemm::config::choose(m, n, k, sms));
            Ok(())
        })?,
    ));
    let src = "struct __align__(64) P { unsigned long long w[96]; };\n\
               extern \"C\" __global__ void small(int x) { if (x == 1) asm volatile(\"trap;\"); }\n\
               extern \"C\" __global__ void large(const __grid_constant__ P p) { if (p.w[95] == 1) asm volatile(\"trap;\"); }\n";
    let opts = CompileOptions {
        arch: Some("sm_90a"),
        ..Default::default()
    };
    let module = dev
        .context()
        .load_module(compile_ptx_with_opts(src, opts)?)?;
    let (small, large) = (
        module.load_function("small")?,
        module.load_function("large")?,
    );
    let x = 0i32;
    let p = [0u64; 96];
    for (name, pdl, big) in [
        ("launch, 4 B of parameters", false, false),
        ("launch, 4 B, PDL", true, false),
        ("launch, 768 B", false, true),
        ("launch, 768 B, PDL", true, true),
    ] {
        let launch = Launch {
            grid: (1, 1, 1),
            block: (32, 1, 1),
            smem_bytes: 0,
            cluster_x: 1,
            pdl,
        };
        let (func, mut args) = if big {
            (&large, [arg(&p)])
        } else {
            (&small, [arg(&x)])
        };
        parts.push((
            name,
            time(HOST_CALLS, &mut || {
                // SAFETY: one argument of the kernel's parameter type (int, or 768 bytes).
                unsafe { launch.run(func, dev.stream(), &mut args)? };
                Ok(())
            })?,
        ));
    }
    Ok(parts)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One shape's inputs on the host, in every layout either GEMM reads.
struct HostSet {
    inp: Fp8Inputs,
    /// A's scales for us: TMA-aligned MN-major.
    sfa_tma: Vec<f32>,
    /// A's scales for cuBLASLt (`VEC128_32F`).
    sfa_lt: Vec<f32>,
    /// B's scales for cuBLASLt (`BLK128x128_32F`, padded leading dimension).
    sfb_lt: Vec<f32>,
    m: usize,
    n: usize,
    k: usize,
}

impl HostSet {
    /// The bench's inputs (seed 7) for an `m × n × k` problem.
    fn new(m: usize, n: usize, k: usize) -> Res<Self> {
        Self::from_inputs(Fp8Inputs::new(m, n, k, 7), m, n, k)
    }

    fn from_inputs(inp: Fp8Inputs, m: usize, n: usize, k: usize) -> Res<Self> {
        let kb = k.div_ceil(128);
        Ok(HostSet {
            sfa_tma: scalegemm::layout::to_tma_aligned_mn_major(&inp.sfa, m, kb, kb)?,
            sfa_lt: cublaslt::vec128_scales(&inp.sfa, m, kb),
            sfb_lt: cublaslt::blk128x128_scales(
                &inp.sfb,
                n.div_ceil(128),
                kb,
                cublaslt::blk128x128_ld(kb),
            ),
            inp,
            m,
            n,
            k,
        })
    }

    /// Bytes one GEMM of a [`DevSet`] touches (A, B, the larger of the two scale layouts,
    /// one D): what the rotation must push out of L2.
    fn bytes(&self) -> usize {
        let scales =
            (self.sfa_tma.len() + self.inp.sfb.len()).max(self.sfa_lt.len() + self.sfb_lt.len());
        self.inp.a.len() + self.inp.b.len() + 4 * scales + 2 * self.m * self.n
    }

    fn upload(&self, s: &Arc<CudaStream>) -> Res<DevSet> {
        Ok(DevSet {
            a: s.clone_htod(&self.inp.a)?,
            b: s.clone_htod(&self.inp.b)?,
            sfa: s.clone_htod(&self.sfa_tma)?,
            sfb: s.clone_htod(&self.inp.sfb)?,
            sfa_lt: s.clone_htod(&self.sfa_lt)?,
            sfb_lt: s.clone_htod(&self.sfb_lt)?,
            d: s.alloc_zeros::<bf16>(self.m * self.n)?,
            d_lt: s.alloc_zeros::<bf16>(self.m * self.n)?,
        })
    }
}

/// One copy of a shape's device inputs (ours and cuBLASLt's scale layouts) and output.
struct DevSet {
    a: CudaSlice<u8>,
    b: CudaSlice<u8>,
    sfa: CudaSlice<f32>,
    sfb: CudaSlice<f32>,
    sfa_lt: CudaSlice<f32>,
    sfb_lt: CudaSlice<f32>,
    /// Our output.
    d: CudaSlice<bf16>,
    /// cuBLASLt's output (its own, so both GEMMs can be bound at once: [`Timer::pair`]).
    d_lt: CudaSlice<bf16>,
}

/// Our operands bound to one [`DevSet`].
type Ops<'a> = (Fp8Operand<'a>, Fp8Operand<'a>, MatrixMut<'a, bf16>);

fn ours_ops(set: &mut DevSet, m: usize, n: usize, k: usize) -> Res<Ops<'_>> {
    Ok(split(set, m, n, k)?.0)
}

/// cuBLASLt's operands bound to one [`DevSet`]: A, A's scales, B, B's scales, D.
type LtOps<'a> = (
    &'a CudaSlice<u8>,
    &'a CudaSlice<f32>,
    &'a CudaSlice<u8>,
    &'a CudaSlice<f32>,
    &'a mut CudaSlice<bf16>,
);

/// Our operands and cuBLASLt's, bound to one [`DevSet`] at once (separate outputs).
fn split(set: &mut DevSet, m: usize, n: usize, k: usize) -> Res<(Ops<'_>, LtOps<'_>)> {
    let DevSet {
        a,
        b,
        sfa,
        sfb,
        sfa_lt,
        sfb_lt,
        d,
        d_lt,
    } = set;
    let kb = k.div_ceil(128);
    let oa = Fp8Operand::new(
        Matrix::new(a.as_view(), m, k, k)?,
        Fp8Scales::TmaAlignedMnMajor(sfa.as_view()),
        Fp8Recipe::PerToken,
    )?;
    let ob = Fp8Operand::new(
        Matrix::new(b.as_view(), n, k, k)?,
        Fp8Scales::RowMajor(Matrix::new(sfb.as_view(), n.div_ceil(128), kb, kb)?),
        Fp8Recipe::PerBlock,
    )?;
    let od = MatrixMut::new(d.as_view_mut(), m, n, n)?;
    Ok(((oa, ob, od), (&*a, &*sfa_lt, &*b, &*sfb_lt, d_lt)))
}

/// One call of our API: the heuristic's tile (`fp8_gemm_nt`) or a forced one.
fn run_ours(dev: &Device, ops: &mut Ops, cfg: Option<Fp8GemmConfig>) -> Res<()> {
    let (a, b, d) = ops;
    match cfg {
        Some(cfg) => scalegemm::fp8_gemm_nt_with_config(dev, a, b, d, cfg)?,
        None => scalegemm::fp8_gemm_nt(dev, a, b, d)?,
    }
    Ok(())
}

/// Fills `d` with NaN, so unwritten elements show.
fn poison(s: &Arc<CudaStream>, d: &mut CudaSlice<bf16>) -> Res<()> {
    s.memcpy_htod(&vec![bf16::NAN; d.len()], d)?;
    Ok(())
}

/// Copies of the input set to cycle through: 1 (no rotation) when one set is ≥ 2× L2, else
/// enough for ≥ 3× L2 (at least 2), within [`ROTATION_CAP`].
fn rotation_copies(set_bytes: usize, l2: usize) -> usize {
    if set_bytes >= 2 * l2 {
        return 1;
    }
    (3 * l2)
        .div_ceil(set_bytes)
        .min(ROTATION_CAP / set_bytes)
        .max(2)
}

fn tflops(m: usize, n: usize, k: usize, us: f64) -> f64 {
    2.0 * (m * n * k) as f64 / (us * 1e-6) / 1e12
}

/// Formats an optional number, "–" when absent.
fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// cuBLASLt's results on one shape (computed once, shared by the rows of every tile).
#[derive(Default)]
struct LtShape {
    /// "ok", or why it did not run.
    status: String,
    /// The plan, timed against ours per row ([`Timer::pair`]) when it ran.
    plan: Option<BlockwiseFp8Gemm>,
    mapping: Option<Fp8Mapping>,
    out: Option<Vec<bf16>>,
    graph_us: Option<f64>,
    /// Why the graph replay failed (the plain timings still count).
    graph_err: Option<String>,
}

/// Everything measured for one shape and tile.
struct Row {
    json: Value,
    line: String,
    graph_line: Option<String>,
    /// (M, cuBLASLt µs / our µs, the same rotated) when cuBLASLt ran.
    ratio: Option<(usize, f64, Option<f64>)>,
}

struct Bench {
    dev: Device,
    s: Arc<CudaStream>,
    lt: Option<Lt>,
    timer: Timer,
    l2: usize,
    args: Args,
}

impl Bench {
    fn lt_shape(&self, host: &HostSet, sets: &mut [DevSet]) -> LtShape {
        let Some(lt) = &self.lt else {
            return LtShape {
                status: "off".into(),
                ..LtShape::default()
            };
        };
        let (m, n, k) = (host.m, host.n, host.k);
        let mut r = LtShape::default();
        // cuBLASLt's blockwise FP8 GEMM needs M a multiple of 4; at M = 1 it accepts the call
        // and leaves D (partly) unwritten, so such a run is no baseline to time.
        if m % 4 != 0 {
            r.status = "n/a: cuBLASLt blockwise needs M a multiple of 4".into();
            return r;
        }
        let measured = (|| -> Res<()> {
            let plan = BlockwiseFp8Gemm::first_supported(lt, m, n, k)?;
            r.mapping = Some(plan.mapping());
            let run = |set: &mut DevSet| -> Res<()> {
                plan.run(lt, &set.a, &set.sfa_lt, &set.b, &set.sfb_lt, &mut set.d_lt)?;
                Ok(())
            };
            poison(&self.s, &mut sets[0].d_lt)?;
            run(&mut sets[0])?;
            r.out = Some(self.s.clone_dtoh(&sets[0].d_lt)?);
            if m <= 128 {
                match self.timer.graph(|_| run(&mut sets[0])) {
                    Ok(us) => r.graph_us = Some(us),
                    Err(e) => r.graph_err = Some(e.to_string()),
                }
            }
            r.plan = Some(plan);
            Ok(())
        })();
        r.status = match measured {
            Ok(()) => "ok".into(),
            Err(e) => match e.downcast_ref::<LtError>() {
                Some(LtError::NotSupported(_)) => "n/a (no algorithm)".into(),
                _ => format!("n/a ({e})"),
            },
        };
        r
    }

    fn shape(&self, m: usize, n: usize, k: usize, rows: &mut Vec<Row>) -> Res<()> {
        let host = HostSet::new(m, n, k)?;
        let set_bytes = host.bytes();
        let copies = if self.args.only_ours {
            1
        } else {
            rotation_copies(set_bytes, self.l2)
        };
        let mut sets = Vec::with_capacity(copies);
        for _ in 0..copies {
            sets.push(host.upload(&self.s)?);
        }
        let lt = self.lt_shape(&host, &mut sets);
        let heuristic = scalegemm::gemm::config::choose(m, n, k, self.dev.usable_sms());
        let configs: Vec<Option<Fp8GemmConfig>> = if self.args.configs.is_empty() {
            vec![None]
        } else {
            self.args.configs.iter().map(|&c| Some(c)).collect()
        };
        for forced in configs {
            let cfg = forced.unwrap_or(heuristic);
            if !cfg.supports(m, n) {
                continue;
            }
            rows.push(self.row(&host, forced, cfg, &mut sets, &lt)?);
        }
        Ok(())
    }

    /// Measures our kernel with tile `cfg` (`forced`, or the heuristic's through
    /// `fp8_gemm_nt`) on `sets` and formats the row with cuBLASLt's results `lt`.
    fn row(
        &self,
        host: &HostSet,
        forced: Option<Fp8GemmConfig>,
        cfg: Fp8GemmConfig,
        sets: &mut [DevSet],
        lt: &LtShape,
    ) -> Res<Row> {
        let (m, n, k) = (host.m, host.n, host.k);
        let kb = k.div_ceil(128);
        let bytes = (m * k + n * k + m * n * 2 + 4 * (m * kb + n.div_ceil(128) * kb)) as f64;
        let label = format!(
            "{}x{}x{}c{}{}{}{}{}",
            cfg.block_m,
            cfg.block_n,
            cfg.stages_for(scalegemm::gemm::Fp8Variant::BF16_1D2D),
            cfg.cluster,
            if cfg.pipelined { "p" } else { "" },
            if cfg.b_thread { "b" } else { "" },
            match cfg.splits_for(k) {
                1 => String::new(),
                s => format!("k{s}"),
            },
            if cfg.band == scalegemm::gemm::config::DEFAULT_BAND {
                String::new()
            } else {
                format!("/{}", cfg.band)
            }
        );
        let dev = &self.dev;
        let full = !self.args.only_ours;
        // Correctness: our output against cuBLASLt's (or alone: unwritten elements).
        let mut agree = None;
        if full {
            poison(&self.s, &mut sets[0].d)?;
            run_ours(dev, &mut ours_ops(&mut sets[0], m, n, k)?, forced)?;
            let ours = self.s.clone_dtoh(&sets[0].d)?;
            let x = |i: usize| ours[i].to_f64();
            agree = Some(match (&lt.out, lt.mapping) {
                (Some(y), Some(mapping)) => {
                    let y = |i: usize| {
                        let j = if mapping.transposes_d() {
                            (i % n) * m + i / n
                        } else {
                            i
                        };
                        y[j].to_f64()
                    };
                    agreement(m * n, x, y)
                }
                _ => Agreement {
                    non_finite: (0..m * n).filter(|&i| !x(i).is_finite()).count(),
                    ..Agreement::default()
                },
            });
        }
        let c = sets.len();
        let n_rot = c * LAUNCHES.div_ceil(c);
        let (mut ops, mut lts): (Vec<Ops>, Vec<LtOps>) = sets
            .iter_mut()
            .map(|set| split(set, m, n, k))
            .collect::<Res<Vec<_>>>()?
            .into_iter()
            .unzip();
        let mut ours = |i: usize| run_ours(dev, &mut ops[i], forced);
        let mut lt_time_err = None;
        // Ours and cuBLASLt's timed in turn (`Timer::pair`) where cuBLASLt runs.
        let paired = match (&self.lt, &lt.plan) {
            (Some(ltc), Some(plan)) => {
                let mut theirs = |i: usize| -> Res<()> {
                    let t = &mut lts[i];
                    plan.run(ltc, t.0, t.1, t.2, t.3, &mut *t.4)?;
                    Ok(())
                };
                Some((|| -> Res<_> {
                    let (us, lt_us) = self.timer.pair(LAUNCHES, |_| ours(0), |_| theirs(0))?;
                    let rot = if c > 1 {
                        Some(self.timer.pair(n_rot, |i| ours(i % c), |i| theirs(i % c))?)
                    } else {
                        None
                    };
                    Ok((us, rot.map(|r| r.0), Some(lt_us), rot.map(|r| r.1)))
                })())
            }
            _ => None,
        };
        let (us, us_rot, lt_us, lt_us_rot) = match paired {
            Some(Ok(t)) => t,
            // No cuBLASLt, or its timing failed (it ran once already, the correctness run:
            // the failure goes into the note): ours alone.
            failed => {
                if let Some(Err(e)) = failed {
                    lt_time_err = Some(format!("cuBLASLt timing failed: {e}"));
                }
                let us = self.timer.launches(LAUNCHES, |_| ours(0))?;
                let rot = if c > 1 {
                    Some(self.timer.launches(n_rot, |i| ours(i % c))?)
                } else {
                    None
                };
                (us, rot, None, None)
            }
        };
        drop(lts);
        // With SG_TRACE in SCALEGEMM_KERNEL_DEFINES: the last timed launch's ring waits.
        dev.print_traces()?;
        let small = full && m <= 128;
        let (mut graph_us, mut graph_err) = (None, None);
        if small {
            match self.timer.graph(|_| run_ours(dev, &mut ops[0], forced)) {
                Ok(us) => graph_us = Some(us),
                Err(e) => graph_err = Some(format!("graph capture failed: {e}")),
            }
        }
        let lt_graph_err = lt
            .graph_err
            .as_ref()
            .map(|e| format!("cuBLASLt graph capture failed: {e}"));
        let host_us = if small {
            Some(self.timer.host(|| run_ours(dev, &mut ops[0], forced))?)
        } else {
            None
        };
        drop(ops);
        let host_us_tracked = if small {
            Some(self.host_tracked(host, forced)?)
        } else {
            None
        };

        let same = full && c == 1;
        let us_rot = if same { Some(us) } else { us_rot };
        let lt_rot = if same { lt_us } else { lt_us_rot };
        let mismatch = agree
            .is_some_and(|a| lt.out.is_some() && (a.calc_diff.is_nan() || a.calc_diff > MISMATCH));
        let unwritten = agree.is_some_and(|a| a.non_finite > 0);
        // A cuBLASLt run whose output disagrees with ours (ours is checked against the
        // reference by the GPU suite) is no baseline: e.g. at M = 1 cuBLASLt accepts the
        // call and leaves D unwritten. Such rows get no ratio and count in no mean.
        let lt_valid = !(mismatch || unwritten);
        let ratio = lt_us.filter(|_| lt_valid).map(|t| t / us);
        let ratio_rot = lt_rot.filter(|_| lt_valid).zip(us_rot).map(|(t, u)| t / u);
        let note = [
            (mismatch, "MISMATCH"),
            (unwritten, "UNWRITTEN"),
            (lt.status != "ok" && lt.status != "off", lt.status.as_str()),
            (lt_time_err.is_some(), lt_time_err.as_deref().unwrap_or("")),
            (graph_err.is_some(), graph_err.as_deref().unwrap_or("")),
            (
                lt_graph_err.is_some(),
                lt_graph_err.as_deref().unwrap_or(""),
            ),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(", ");
        let rot_cell = |v: Option<f64>| if same { "=".into() } else { opt(v, 1) };
        let line = format!(
            "| {m} | {n} | {k} | {label} | {us:.1} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {note} |",
            rot_cell(us_rot),
            tflops(m, n, k, us),
            bytes / (us * 1e-6) / 1e9,
            opt(lt_us, 1),
            rot_cell(lt_rot),
            opt(lt_us.map(|t| tflops(m, n, k, t)), 0),
            opt(ratio, 2),
            opt(ratio_rot, 2),
            agree.filter(|_| lt.out.is_some()).map_or("–".into(), |a| format!("{:.1e}", a.calc_diff)),
            agree.filter(|_| lt.out.is_some()).map_or("–".into(), |a| format!("{:.1e}", a.max_rel)),
        );
        let graph_line = small.then(|| {
            format!(
                "| {m} | {n} | {k} | {label} | {} | {} | {} | {} |",
                opt(graph_us, 1),
                opt(lt.graph_us, 1),
                opt(host_us, 2),
                opt(host_us_tracked, 2),
            )
        });
        let json = json!({
            "m": m, "n": n, "k": k, "config": label,
            "config_detail": format!("{cfg:?}"),
            "forced": forced.is_some(),
            "us": us, "tflops": tflops(m, n, k, us), "gbs": bytes / (us * 1e-6) / 1e9,
            "us_rotated": us_rot, "rotation_copies": c, "rotated_same_as_plain": same,
            "cublaslt_status": lt.status, "cublaslt_mapping": lt.mapping.map(|m| format!("{m:?}")),
            "cublaslt_us": lt_us, "cublaslt_us_rotated": lt_rot,
            "cublaslt_tflops": lt_us.map(|t| tflops(m, n, k, t)),
            "ratio": ratio, "ratio_rotated": ratio_rot,
            "calc_diff": agree.filter(|_| lt.out.is_some()).map(|a| a.calc_diff),
            "max_rel": agree.filter(|_| lt.out.is_some()).map(|a| a.max_rel),
            "non_finite": agree.map(|a| a.non_finite),
            "mismatch": mismatch, "unwritten": unwritten,
            "graph_us": graph_us, "cublaslt_graph_us": lt.graph_us,
            "host_us_per_call": host_us, "host_us_per_call_tracked": host_us_tracked,
            "graph_error": graph_err, "cublaslt_graph_error": lt.graph_err, "note": note,
        });
        Ok(Row {
            json,
            line,
            graph_line,
            ratio: ratio.map(|r| (m, r, ratio_rot)),
        })
    }

    /// Host µs per call with buffers that carry cudarc's read/write events (the default of
    /// a `scalegemm::Device` user: every operand's use then waits on and records an event).
    fn host_tracked(&self, host: &HostSet, forced: Option<Fp8GemmConfig>) -> Res<f64> {
        let (m, n, k) = (host.m, host.n, host.k);
        let ctx = self.s.context();
        // SAFETY: one stream only; buffers made while tracking is on get events, the others
        // keep none, and tracking is switched off again before any other buffer is made.
        unsafe { ctx.enable_event_tracking() };
        let measured = (|| -> Res<f64> {
            let mut set = host.upload(&self.s)?;
            let mut ops = ours_ops(&mut set, m, n, k)?;
            self.timer.host(|| run_ours(&self.dev, &mut ops, forced))
        })();
        // SAFETY: as above.
        unsafe { ctx.disable_event_tracking() };
        measured
    }

    /// cuBLASLt BF16 GEMM rows for the roofline.
    fn bf16_roofline(&self) -> Vec<Value> {
        let Some(lt) = &self.lt else {
            return Vec::new();
        };
        println!("\ncuBLASLt BF16 GEMM (BF16 in/out, FP32 accumulation), the card's roofline:\n");
        println!("| M | N | K | µs | TFLOPS |");
        println!("|---|---|---|---|---|");
        let mut out = Vec::new();
        for (m, n, k) in [(8192, 8192, 8192), (4096, 7168, 16384)] {
            let measured = (|| -> Res<f64> {
                let plan = Bf16Gemm::new(lt, m, n, k)?;
                let a = self.s.clone_htod(&random_bf16(m * k, 21))?;
                let b = self.s.clone_htod(&random_bf16(n * k, 22))?;
                let mut d = self.s.alloc_zeros::<bf16>(m * n)?;
                self.timer
                    .launches(LAUNCHES, |_| Ok(plan.run(lt, &a, &b, &mut d)?))
            })();
            match measured {
                Ok(us) => {
                    let t = tflops(m, n, k, us);
                    println!("| {m} | {n} | {k} | {us:.1} | {t:.0} |");
                    out.push(json!({"m": m, "n": n, "k": k, "us": us, "tflops": t}));
                }
                Err(e) => {
                    println!("| {m} | {n} | {k} | n/a ({e}) | |");
                    out.push(json!({"m": m, "n": n, "k": k, "error": e.to_string()}));
                }
            }
        }
        out
    }
}

/// Geometric mean of `v` (None when empty).
fn geomean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = v.fold((0.0, 0usize), |(s, c), x| (s + x.ln(), c + 1));
    (count > 0).then(|| (sum / count as f64).exp())
}

/// `--check`: cuBLASLt blockwise (every mapping × 128×128 leading dimension, plus wrong
/// layouts as controls) and our kernel against the f64 CPU reference. Returns whether the
/// layout the bench uses (first supported mapping, padded leading dimension) agrees.
fn check_layouts(b: &Bench) -> Res<bool> {
    use scalegemm_reference::gemm as r;
    let (m, n, k) = CHECK_SHAPE;
    let (kb, nb) = (k.div_ceil(128), n.div_ceil(128));
    let host = HostSet::from_inputs(Fp8Inputs::new(m, n, k, 11), m, n, k)?;
    let inp = &host.inp;
    let mut want = vec![0f64; m * n];
    {
        let a = r::Fp8Operand::new(
            r::MatView::k_major(&inp.a, m, k, k)?,
            r::Scales::F32(r::MatView::k_major(&inp.sfa, m, kb, kb)?),
            r::Fp8Recipe::PerToken,
        )?;
        let bb = r::Fp8Operand::new(
            r::MatView::k_major(&inp.b, n, k, k)?,
            r::Scales::F32(r::MatView::k_major(&inp.sfb, nb, kb, kb)?),
            r::Fp8Recipe::PerBlock,
        )?;
        let mut d = r::OutView::new(r::OutBuf::F64(&mut want), m, n, n)?;
        r::gemm(&a.into(), &bb.into(), None, &mut d)?;
    }
    println!(
        "Scale-layout check, {m}x{n}x{k} ({kb} K blocks, {nb} N blocks), random E4M3 codes and"
    );
    println!("non-uniform scales in [2^-10, 2^-4), against the f64 CPU reference (scalegemm-reference):\n");
    println!("| GEMM | mapping | A scales (1×128) | B scales (128×128) | calc_diff | max rel | verdict |");
    println!("|---|---|---|---|---|---|---|");
    let verdict = |a: &Agreement| {
        if a.non_finite == 0 && a.calc_diff <= MISMATCH {
            "ok"
        } else {
            "WRONG"
        }
    };
    let s = &b.s;
    let mut set = host.upload(s)?;
    poison(s, &mut set.d)?;
    run_ours(&b.dev, &mut ours_ops(&mut set, m, n, k)?, None)?;
    let got = s.clone_dtoh(&set.d)?;
    let a = agreement(m * n, |i| got[i].to_f64(), |i| want[i]);
    println!(
        "| scalegemm fp8_gemm_nt | – | TMA-aligned MN-major | row-major | {:.1e} | {:.1e} | {} |",
        a.calc_diff,
        a.max_rel,
        verdict(&a)
    );
    let Some(lt) = &b.lt else {
        println!("\ncuBLASLt not available: nothing to check.");
        return Ok(false);
    };
    let ld = cublaslt::blk128x128_ld(kb);
    let vec128 = cublaslt::vec128_scales(&inp.sfa, m, kb);
    let blk = |ld| cublaslt::blk128x128_scales(&inp.sfb, nb, kb, ld);
    // (A label, A scales, B label, B scales, is the bench's layout); every buffer padded with
    // zeros so a layout that reads further than ours stays inside its allocation.
    let variants = [
        (
            "rows contiguous",
            vec128.clone(),
            "K-contiguous, ld round_up(kb, 4)",
            blk(ld),
            true,
        ),
        (
            "rows contiguous",
            vec128.clone(),
            "K-contiguous, ld kb",
            blk(kb),
            false,
        ),
        (
            "control: row-major [M, kb]",
            inp.sfa.clone(),
            "K-contiguous, ld round_up(kb, 4)",
            blk(ld),
            false,
        ),
        (
            "rows contiguous",
            vec128,
            "control: N-block contiguous",
            cublaslt::vec128_scales(&inp.sfb, nb, kb),
            false,
        ),
    ]
    .map(|(la, mut sa, lb, mut sb, bench)| {
        sa.resize(sa.len() + 256, 0.0);
        sb.resize(nb * ld + 256, 0.0);
        (la, sa, lb, sb, bench)
    });
    let mut bench_layout_ok = None;
    for mapping in [Fp8Mapping::WeightsAsA, Fp8Mapping::ActivationsAsA] {
        let plan = match BlockwiseFp8Gemm::new(lt, m, n, k, mapping) {
            Ok(p) => p,
            Err(e) => {
                println!("| cuBLASLt blockwise | {mapping:?} | – | – | – | – | n/a: {e} |");
                continue;
            }
        };
        for (sa_label, sa, sb_label, sb, is_bench_layout) in &variants {
            let sa_dev = s.clone_htod(sa)?;
            let sb_dev = s.clone_htod(sb)?;
            poison(s, &mut set.d)?;
            if let Err(e) = plan.run(lt, &set.a, &sa_dev, &set.b, &sb_dev, &mut set.d) {
                println!("| cuBLASLt blockwise | {mapping:?} | {sa_label} | {sb_label} | – | – | n/a: {e} |");
                continue;
            }
            let got = s.clone_dtoh(&set.d)?;
            let t = mapping.transposes_d();
            let x = |i: usize| got[if t { (i % n) * m + i / n } else { i }].to_f64();
            let a = agreement(m * n, x, |i| want[i]);
            println!(
                "| cuBLASLt blockwise | {mapping:?} | {sa_label} | {sb_label} | {:.1e} | {:.1e} | {} |",
                a.calc_diff, a.max_rel, verdict(&a)
            );
            if *is_bench_layout && bench_layout_ok.is_none() {
                bench_layout_ok = Some(verdict(&a) == "ok");
            }
        }
    }
    let ok = bench_layout_ok == Some(true);
    println!(
        "\nThe bench's layout (first supported mapping, 128×128 ld round_up(kb, 4)): {}",
        match bench_layout_ok {
            Some(true) => "agrees with the reference",
            Some(false) => "DISAGREES with the reference",
            None => "not run (cuBLASLt refused every mapping)",
        }
    );
    Ok(ok)
}

fn main() -> Res<()> {
    let args = parse_args();
    let dev = Device::new(0)?;
    let s = dev.stream().clone();
    let ctx = dev.context().clone();
    // SAFETY: the bench uses one stream, so cudarc's cross-stream events are not needed;
    // untracked buffers also keep event waits out of captured graphs.
    unsafe { ctx.disable_event_tracking() };
    let lt = if args.cublas {
        match Lt::new(s.clone()) {
            Ok(lt) => Some(lt),
            Err(e) => {
                eprintln!("cuBLASLt unavailable ({e}): timing ours only");
                None
            }
        }
    } else {
        None
    };
    let l2 = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as usize;
    let device = json!({
        "name": ctx.name().unwrap_or_default(),
        "sms": dev.sm_count(),
        "l2_bytes": l2,
    });
    let bench = Bench {
        timer: Timer::new(&s)?,
        dev,
        s,
        lt,
        l2,
        args,
    };
    if bench.args.check {
        let ok = check_layouts(&bench)?;
        std::process::exit(if ok { 0 } else { 1 });
    }

    println!("FP8 1D2D GEMM, BF16 out: scalegemm vs cuBLASLt blockwise (µs per launch, median of {REPEATS}×{LAUNCHES}; rot = inputs rotated through ≥ 3× L2; ratio = cuBLASLt / ours):\n");
    println!("| M | N | K | config | µs | rot µs | TFLOPS | GB/s | cuBLASLt µs | rot µs | cuBLASLt TFLOPS | ratio | ratio rot | calc_diff | max rel | note |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &(m, n, k) in &bench.args.shapes {
        let before = rows.len();
        let measured = bench.shape(m, n, k, &mut rows);
        for row in &rows[before..] {
            println!("{}", row.line);
        }
        if let Err(e) = measured {
            println!("| {m} | {n} | {k} | error: {e} | | | | | | | | | | | | |");
        }
    }
    let graph_lines: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.graph_line.as_deref())
        .collect();
    if !graph_lines.is_empty() {
        println!("\nM ≤ 128: kernel time from CUDA-graph replay (µs per kernel, 20 per graph) and host time per call of the Rust API (µs, {HOST_CALLS} calls unsynchronised; tracked = cudarc event-tracked buffers, the default):\n");
        println!("| M | N | K | config | graph µs | cuBLASLt graph µs | host µs/call | host µs/call (tracked) |");
        println!("|---|---|---|---|---|---|---|---|");
        for l in graph_lines {
            println!("{l}");
        }
    }
    // A failure here (e.g. NVRTC missing for the empty kernels) is reported, not fatal: the
    // rows above still reach the JSON.
    let parts = if bench.args.only_ours {
        Vec::new()
    } else {
        host_parts(&bench.dev).unwrap_or_else(|e| {
            println!("\nHost µs per call of a call's parts: not measured ({e})");
            Vec::new()
        })
    };
    if !parts.is_empty() {
        let line: Vec<String> = parts.iter().map(|(p, us)| format!("{p} {us:.3}")).collect();
        println!(
            "\nHost µs per call of a call's parts and of empty-kernel launches: {}",
            line.join(", ")
        );
    }
    let ratios: Vec<(usize, f64, Option<f64>)> = rows.iter().filter_map(|r| r.ratio).collect();
    let target = |r: &&(usize, f64, Option<f64>)| r.0 == 128 || r.0 == 4096;
    let summary = json!({
        "geomean_ratio_m128_m4096": geomean(ratios.iter().filter(target).map(|r| r.1)),
        "geomean_ratio_rotated_m128_m4096": geomean(ratios.iter().filter(target).filter_map(|r| r.2)),
        "geomean_ratio_all": geomean(ratios.iter().map(|r| r.1)),
        "geomean_ratio_rotated_all": geomean(ratios.iter().filter_map(|r| r.2)),
        "rows_with_cublaslt": ratios.len(),
    });
    if !ratios.is_empty() {
        println!(
            "\nGeometric mean of cuBLASLt µs / our µs (> 1: we are faster): M = 128 and 4096: {} (rotated {}); all {} rows with cuBLASLt: {} (rotated {})",
            opt(summary["geomean_ratio_m128_m4096"].as_f64(), 3),
            opt(summary["geomean_ratio_rotated_m128_m4096"].as_f64(), 3),
            ratios.len(),
            opt(summary["geomean_ratio_all"].as_f64(), 3),
            opt(summary["geomean_ratio_rotated_all"].as_f64(), 3),
        );
    }
    let bf16 = bench.bf16_roofline();
    let out = std::env::var("OUT").map_or_else(|_| ".".into(), std::path::PathBuf::from);
    let doc = json!({
        "device": device,
        "protocol": {
            "warmup": WARMUP, "repeats": REPEATS, "launches": LAUNCHES, "host_calls": HOST_CALLS,
            "interleaved": "ours and cuBLASLt's repeats alternate (ours, theirs; theirs, ours; ...); CUDA-graph replays are not interleaved",
            "rotation": "copies of A, B, scales and D totalling >= 3x L2 (<= 8 GiB); none when one set >= 2x L2",
            "mismatch_calc_diff": MISMATCH,
        },
        "fp8": rows.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
        "bf16_cublaslt": bf16,
        "host_parts_us": parts.iter().map(|(p, us)| (p.to_string(), json!(us))).collect::<serde_json::Map<_, _>>(),
        "summary": summary,
    });
    std::fs::write(
        out.join("bench_fp8_gemm.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;
    Ok(())
}
