//! SVG plots of the report (plotters, SVG backend): a histogram of |error| / bound per
//! case, and error against K per recipe.

use plotters::prelude::*;

use super::{CaseReport, Recipe};

const W: u32 = 560;
const H: u32 = 320;
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Histogram of log10(|x − exact| / bound) of the case's primary kernel row (the first
/// GPU kernel on the FP8 FP32 recipe, else the Hopper model on it): 20 bins of 0.25 over
/// [−4, 1), the first also holding everything below (exact elements included); bins at 0
/// and above are outside the bound. `None` when the case has no such row.
pub(crate) fn histogram(case: &CaseReport, primary: &str) -> Option<String> {
    let row = case.kernels.iter().find(|k| {
        k.kernel == primary && k.recipe == Recipe::Fp8Fp32.name() && !k.ratios.is_empty()
    })?;
    let mut bins = [0u32; 20];
    for &r in &row.ratios {
        let i = if r.is_nan() || r > 1e1 {
            19
        } else if r <= 1e-4 {
            0
        } else {
            (((r.log10() + 4.0) * 4.0) as usize).min(19)
        };
        bins[i] += 1;
    }
    let ymax = bins.iter().copied().max().unwrap_or(1).max(1);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (W, H)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let title = format!(
            "{}: |err| / bound, {} on {} ({} elements)",
            case.name,
            row.kernel,
            row.recipe,
            row.ratios.len()
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 12))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((0u32..20u32).into_segmented(), 0u32..ymax + ymax / 10 + 1)
            .ok()?;
        chart
            .configure_mesh()
            .x_labels(10)
            .x_desc("log10(|err| / bound): >= 0 is outside the bound")
            .y_desc("elements")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    format!("{:.2}", -4.0 + *i as f64 * 0.25)
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .ok()?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(COLORS[0].filled())
                    .margin(1)
                    .data(bins.iter().enumerate().map(|(i, &c)| (i as u32, c))),
            )
            .ok()?;
        root.present().ok()?;
    }
    Some(s)
}

/// One line per recipe of `value(case, recipe)` against K over `cases` (log-log), points
/// only where the value is finite and positive. `None` with fewer than 2 points.
pub(crate) fn against_k(
    cases: &[&CaseReport],
    title: &str,
    y_desc: &str,
    value: &dyn Fn(&CaseReport, Recipe) -> Option<f64>,
) -> Option<String> {
    let mut series: Vec<(Recipe, Vec<(f64, f64)>)> = Vec::new();
    for r in Recipe::ALL {
        let mut pts: Vec<(f64, f64)> = cases
            .iter()
            .filter_map(|c| value(c, r).map(|v| (c.k as f64, v)))
            .filter(|&(k, v)| k > 0.0 && v.is_finite() && v > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push((r, pts));
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.len() < 2 {
        return None;
    }
    let (kmin, kmax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (ymin, ymax) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (W, H)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 12))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (kmin / 1.2..kmax * 1.2).log_scale(),
                (ymin / 2.0..ymax * 2.0).log_scale(),
            )
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("K")
            .y_desc(y_desc)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .ok()?;
        for (i, (r, pts)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .ok()?
                .label(r.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .ok()?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(s)
}
