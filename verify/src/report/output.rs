//! Rendering a [`Report`]: terminal table, report.md, report.json, report.html (with the
//! plots inline) and the plots as SVG files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{plot, CaseReport, KernelRow, Recipe, Report};

/// A number for tables: 3 significant digits, `inf`, `nan`.
fn num(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.2e}")
    }
}

/// The sentence every output starts with: which GPU kernels ran, or that none did and why.
pub fn gpu_sentence(r: &Report) -> String {
    if r.gpu.ran {
        format!("GPU kernels run: {}.", r.gpu.kernels.join(", "))
    } else {
        format!(
            "{}. Kernel errors below are those of the reference's bit-level Hopper wgmma model \
             (what a DeepGEMM-style kernel would compute), on sampled elements.",
            r.gpu
                .reason
                .as_deref()
                .unwrap_or("GPU kernels not run")
                .trim_end_matches('.')
        )
    }
}

fn verdict(r: &Report) -> String {
    if r.ok {
        "all kernel results inside their per-element bounds (exit 0)".into()
    } else {
        let bad: Vec<String> = r
            .cases
            .iter()
            .flat_map(|c| {
                c.error
                    .iter()
                    .map(move |e| format!("{}: {e}", c.name))
                    .chain(c.kernels.iter().filter(|k| !k.ok).map(move |k| {
                        format!(
                            "{}: {} on {}: {}",
                            c.name,
                            k.kernel,
                            k.recipe,
                            k.error
                                .clone()
                                .unwrap_or_else(|| format!("{} outside", k.outside))
                        )
                    }))
            })
            .collect();
        format!(
            "SOME RESULTS OUTSIDE THEIR BOUNDS (exit 1): {}",
            bad.join("; ")
        )
    }
}

/// One table row per (recipe, kernel) of a case: recipe, quantization calc_diff (with
/// `!` above DeepGEMM's threshold), quantization SQNR, kernel, its max abs / max rel /
/// calc_diff, % inside the bound, worst |err|/bound with its coordinates, time.
fn rows(c: &CaseReport) -> Vec<[String; 10]> {
    let mut out = Vec::new();
    for q in &c.quantization {
        let ks: Vec<&KernelRow> = c.kernels.iter().filter(|k| k.recipe == q.recipe).collect();
        let mark = if q.above_threshold { "!" } else { "" };
        let qcols = [
            q.recipe.clone(),
            format!("{}{mark}", num(q.calc_diff)),
            format!("{:.1}", q.sqnr_db),
        ];
        if ks.is_empty() {
            let mut r: [String; 10] = Default::default();
            r[..3].clone_from_slice(&qcols);
            out.push(r);
        }
        for (i, k) in ks.iter().enumerate() {
            let worst = k.worst.as_ref().map_or("-".into(), |w| {
                format!("{:.3} @({},{})", w.ratio, w.row, w.col)
            });
            let kcols = match &k.error {
                Some(e) => [
                    k.kernel.clone(),
                    format!("error: {e}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
                None => [
                    k.kernel.clone(),
                    num(k.max_abs),
                    num(k.max_rel),
                    num(k.calc_diff),
                    format!("{:.2}%{}", k.inside_pct, if k.ok { "" } else { " FAIL" }),
                    worst,
                    format!("{:.2}s", k.time_s),
                ],
            };
            let mut r: [String; 10] = Default::default();
            if i == 0 {
                r[..3].clone_from_slice(&qcols);
            }
            r[3..].clone_from_slice(&kcols);
            out.push(r);
        }
    }
    out
}

const HEAD: [&str; 10] = [
    "recipe",
    "quant calc_diff",
    "quant SQNR dB",
    "kernel",
    "max abs",
    "max rel",
    "calc_diff",
    "in bound",
    "worst |err|/bound",
    "time",
];

/// The terminal report: a header with the GPU status, one table per case, the verdict.
pub fn terminal(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} — {} — {} threads — {:.1} s",
        r.tool, r.data, r.threads, r.wall_s
    );
    let _ = writeln!(s, "{}", gpu_sentence(r));
    let _ = writeln!(
        s,
        "quant = exact product of the quantized inputs vs the unquantized product ('!' = above DeepGEMM's calc_diff threshold);\nkernel = kernel vs the exact product of the quantized inputs, per-element bound from the Hopper model (DESIGN 3.4)."
    );
    let all: Vec<Vec<[String; 10]>> = r.cases.iter().map(rows).collect();
    let mut w = HEAD.map(str::len);
    for row in all.iter().flatten() {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let head: Vec<String> = HEAD.iter().map(|h| h.to_string()).collect();
    for (c, rws) in r.cases.iter().zip(&all) {
        let _ = writeln!(
            s,
            "\n== {} [{}] M={} N={} K={}: {}",
            c.name, c.group, c.m, c.n, c.k, c.data
        );
        if let Some(e) = &c.error {
            let _ = writeln!(s, "   ERROR: {e}");
        }
        let _ = writeln!(s, "{}", line(&head));
        for row in rws {
            let _ = writeln!(s, "{}", line(row));
        }
    }
    let _ = writeln!(s, "\n{}", gpu_sentence(r));
    let _ = writeln!(s, "RESULT: {}", verdict(r));
    s
}

/// The plots: `(file name, title, svg)`.
pub fn plots(r: &Report) -> Vec<(String, String, String)> {
    let primary = r
        .gpu
        .kernels
        .first()
        .cloned()
        .unwrap_or_else(|| "hopper-model".into());
    let mut v = Vec::new();
    let sweep: Vec<&CaseReport> = r.cases.iter().filter(|c| c.group == "k-sweep").collect();
    let basis: Vec<&CaseReport> = if sweep.len() >= 2 {
        sweep
    } else {
        r.cases.iter().collect()
    };
    let quant = |c: &CaseReport, rc: Recipe| {
        c.quantization
            .iter()
            .find(|q| q.recipe == rc.name())
            .map(|q| q.calc_diff)
    };
    let kern = |c: &CaseReport, rc: Recipe| {
        c.kernels
            .iter()
            .find(|k| k.recipe == rc.name() && k.kernel == primary)
            .map(|k| k.calc_diff)
    };
    if let Some(svg) = plot::against_k(
        &basis,
        "quantization error vs K (calc_diff vs unquantized)",
        "calc_diff",
        &quant,
    ) {
        v.push((
            "error-vs-k-quantization.svg".into(),
            "Quantization error vs K".into(),
            svg,
        ));
    }
    let title = format!("kernel error vs K ({primary} vs exact, calc_diff)");
    if let Some(svg) = plot::against_k(&basis, &title, "calc_diff", &kern) {
        v.push((
            "error-vs-k-kernel.svg".into(),
            "Kernel error vs K".into(),
            svg,
        ));
    }
    for (i, c) in r.cases.iter().enumerate() {
        if let Some(svg) = plot::histogram(c, &primary) {
            v.push((
                format!("hist-{i:02}.svg"),
                format!("{}: |err|/bound histogram", c.name),
                svg,
            ));
        }
    }
    v
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// report.md: the GPU status, the verdict, a table per case, the plots as files.
pub fn markdown(r: &Report, plots: &[(String, String, String)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# scalegemm numerical-error report\n");
    let _ = writeln!(s, "**{}**\n", gpu_sentence(r));
    let _ = writeln!(
        s,
        "- tool: {}; data: {}; {} threads; wall time {:.1} s",
        r.tool, r.data, r.threads, r.wall_s
    );
    let _ = writeln!(s, "- result: {}", verdict(r));
    let _ = writeln!(
        s,
        "- *quant*: exact product of the quantized inputs against the unquantized product (`!` = above DeepGEMM's calc_diff threshold, 1e-3 FP8, 1e-2 one FP4 side); *kernel*: kernel output against the exact product of the quantized inputs, with the per-element bound of the Hopper wgmma model (DESIGN §3.3/§3.4). Schema of report.json: `schema_version` {}.\n",
        r.schema_version
    );
    for c in &r.cases {
        let _ = writeln!(
            s,
            "## {} ({}, M={} N={} K={})\n\n{}\n",
            c.name,
            c.group,
            c.m,
            c.n,
            c.k,
            md_escape(&c.data)
        );
        if let Some(e) = &c.error {
            let _ = writeln!(s, "**error:** {}\n", md_escape(e));
        }
        let _ = writeln!(s, "| {} |", HEAD.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(HEAD.len()));
        for row in rows(c) {
            let cells: Vec<String> = row.iter().map(|x| md_escape(x)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Plots\n");
    for (file, title, _) in plots {
        let _ = writeln!(s, "![{title}](plots/{file})\n");
    }
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// report.html: self-contained (CSS and SVG inline).
pub fn html(r: &Report, plots: &[(String, String, String)]) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>scalegemm numerical-error report</title><style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}th{background:#eee}.fail{color:#b00;font-weight:bold}.note{background:#fff3cd;padding:.6em;border:1px solid #e0c060}.plots{display:flex;flex-wrap:wrap;gap:8px}</style></head><body>\n");
    let _ = writeln!(s, "<h1>scalegemm numerical-error report</h1>");
    let _ = writeln!(s, "<p class=\"note\">{}</p>", html_escape(&gpu_sentence(r)));
    let _ = writeln!(
        s,
        "<p>{} — {} — {} threads — {:.1} s</p><p class=\"{}\">Result: {}</p>",
        html_escape(&r.tool),
        html_escape(&r.data),
        r.threads,
        r.wall_s,
        if r.ok { "" } else { "fail" },
        html_escape(&verdict(r))
    );
    let _ = writeln!(s, "<h2>Plots</h2><div class=\"plots\">");
    for (_, title, svg) in plots.iter().filter(|p| p.0.starts_with("error-vs-k")) {
        let _ = writeln!(
            s,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            html_escape(title)
        );
    }
    let _ = writeln!(s, "</div>");
    for (i, c) in r.cases.iter().enumerate() {
        let _ = writeln!(
            s,
            "<h2>{} <small>({}, M={} N={} K={})</small></h2><p>{}</p>",
            html_escape(&c.name),
            c.group,
            c.m,
            c.n,
            c.k,
            html_escape(&c.data)
        );
        if let Some(e) = &c.error {
            let _ = writeln!(s, "<p class=\"fail\">error: {}</p>", html_escape(e));
        }
        s.push_str("<table><tr>");
        for h in HEAD {
            let _ = write!(s, "<th>{h}</th>");
        }
        s.push_str("</tr>\n");
        for row in rows(c) {
            s.push_str("<tr>");
            for cell in row {
                let cls = if cell.contains("FAIL") || cell.starts_with("error") {
                    " class=\"fail\""
                } else {
                    ""
                };
                let _ = write!(s, "<td{cls}>{}</td>", html_escape(&cell));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        let name = format!("hist-{i:02}.svg");
        if let Some((_, _, svg)) = plots.iter().find(|p| p.0 == name) {
            let _ = writeln!(s, "<div>{svg}</div>");
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// report.json (pretty-printed; schema in the [module docs](super)).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("the report serialises")
}

/// Writes report.md, report.json, report.html and plots/*.svg into `dir` (created if
/// needed); returns the files written.
///
/// # Errors
/// The I/O error of the first file that cannot be written.
pub fn write_dir(r: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let plots = plots(r);
    std::fs::create_dir_all(dir.join("plots"))?;
    let mut files = Vec::new();
    let mut put = |name: PathBuf, body: &str| -> std::io::Result<()> {
        std::fs::write(&name, body)?;
        files.push(name);
        Ok(())
    };
    put(dir.join("report.md"), &markdown(r, &plots))?;
    put(dir.join("report.json"), &json(r))?;
    put(dir.join("report.html"), &html(r, &plots))?;
    for (file, _, svg) in &plots {
        put(dir.join("plots").join(file), svg)?;
    }
    Ok(files)
}
