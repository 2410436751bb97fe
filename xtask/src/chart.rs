//! The side-by-side figures of `cargo xtask bench` as a chart: one bar per
//! ratio (measured / its reference, measured in the same run), a line at
//! 1x, and each target marked. An SVG that `docs/benchmarks.md` shows.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use serde_json::Value;

/// One ratio.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar {
    /// What is compared with what.
    pub(crate) label: String,
    /// Measured / reference.
    pub(crate) ratio: f64,
    /// The ratio the project aims for, if it set one.
    pub(crate) target: Option<f64>,
}

/// The bars of the two reports `cargo xtask bench` writes: the criterion
/// comparisons (`bench-report.json`) and the loopback ratios
/// (`bench-network.json`, optional: a run may stop before it).
pub(crate) fn bars(criterion: &Value, network: Option<&Value>) -> Vec<Bar> {
    let mut bars = Vec::new();
    for row in criterion.as_array().into_iter().flatten() {
        let (Some(group), Some(bench), Some(reference), Some(ratio)) = (
            row["group"].as_str(),
            row["bench"].as_str(),
            row["reference"].as_str(),
            row["ratio_to_reference"].as_f64(),
        ) else {
            continue;
        };
        bars.push(Bar {
            label: format!("{group}: {bench} / {reference}"),
            ratio,
            target: None,
        });
    }
    let Some(network) = network else {
        return bars;
    };
    let loopback = network["ratios"].as_array().into_iter().flatten();
    let gateway = network["gateway"]["ratios"]
        .as_array()
        .into_iter()
        .flatten();
    for row in loopback.chain(gateway) {
        if let (Some(name), Some(measured)) = (row["name"].as_str(), row["measured"].as_f64()) {
            bars.push(Bar {
                label: format!("loopback: {name}"),
                ratio: measured,
                target: row["target"].as_f64(),
            });
        }
    }
    let client = &network["client_ratio"];
    if let Some(ratio) = client["ratio"].as_f64() {
        bars.push(Bar {
            label: "TokioClient / rustls generator, one task".into(),
            ratio,
            target: client["target"].as_f64(),
        });
    }
    if let Some(ratio) = client["ratio_to_two_tasks"].as_f64() {
        bars.push(Bar {
            label: "TokioClient / rustls generator, two tasks".into(),
            ratio,
            target: None,
        });
    }
    if let Some(ratio) = client["ratio_to_callers"].as_f64() {
        bars.push(Bar {
            label: "TokioClient / rustls generator behind caller tasks".into(),
            ratio,
            target: None,
        });
    }
    if let Some(ratio) = client["one_in_flight_ratio"].as_f64() {
        bars.push(Bar {
            label: "TokioClient / rustls generator, 1 in flight".into(),
            ratio,
            target: client["one_in_flight_target"].as_f64(),
        });
    }
    let pollers = &network["pollers"];
    if let Some(ratio) = pollers["many_ratio"].as_f64() {
        bars.push(Bar {
            label: format!(
                "TokioServer / TLS limit, {} pollers x 1",
                pollers["connections"].as_u64().unwrap_or(0)
            ),
            ratio,
            target: pollers["many_target"].as_f64(),
        });
    }
    if let Some(ratio) = pollers["pipelined_ratio"].as_f64() {
        bars.push(Bar {
            label: "TokioServer / TLS limit, 1 x 16".into(),
            ratio,
            target: None,
        });
    }
    bars
}

/// Pixels per bar, and around the plot.
const ROW: u32 = 24;
const FRAME: u32 = 90;
const LABELS: u32 = 360;

/// Draws `bars` into an SVG file at `path`.
pub(crate) fn draw(path: &Path, title: &str, bars: &[Bar]) -> Result<()> {
    if bars.is_empty() {
        return Err(anyhow!("no figures to draw"));
    }
    let rows = bars.len() as u32;
    let root = SVGBackend::new(path, (LABELS + 560, FRAME + ROW * rows)).into_drawing_area();
    root.fill(&WHITE).map_err(plot)?;
    let widest = bars
        .iter()
        .flat_map(|b| [b.ratio, b.target.unwrap_or(0.0)])
        .filter(|r| r.is_finite())
        .fold(1.0_f64, f64::max);
    let x_max = (widest * 1.15).max(1.25);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0.0..x_max, (0..bars.len() as i32).into_segmented())
        .map_err(plot)?;
    // The y axis counts up from the bottom: the first bar is the top row.
    let n = bars.len() as i32;
    let row = |i: usize| n - 1 - i as i32;
    let label = |value: &SegmentValue<i32>| match value {
        SegmentValue::CenterOf(r) | SegmentValue::Exact(r) => usize::try_from(n - 1 - *r)
            .ok()
            .and_then(|i| bars.get(i))
            .map_or_else(String::new, |b| b.label.clone()),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("measured / reference (same run)")
        .x_label_formatter(&|x| format!("{x:.1}x"))
        .y_label_formatter(&label)
        .y_labels(bars.len())
        .draw()
        .map_err(plot)?;
    let colour = |bar: &Bar| match bar.target {
        Some(target) if bar.ratio >= target => RGBColor(46, 139, 87),
        Some(_) => RGBColor(200, 55, 45),
        None => RGBColor(70, 110, 170),
    };
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let i = row(i);
            let end = if bar.ratio.is_finite() {
                bar.ratio
            } else {
                0.0
            };
            let mut rect = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (end, SegmentValue::Exact(i + 1)),
                ],
                colour(bar).filled(),
            );
            rect.set_margin(4, 4, 0, 0);
            rect
        }))
        .map_err(plot)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let at = if bar.ratio.is_finite() {
                bar.ratio
            } else {
                0.0
            };
            Text::new(
                format!(" {:.2}x", bar.ratio),
                (at, SegmentValue::CenterOf(row(i))),
                ("sans-serif", 12),
            )
        }))
        .map_err(plot)?;
    // Each target, a black tick across its bar.
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, bar)| {
            let target = bar.target?;
            let i = row(i);
            Some(PathElement::new(
                vec![
                    (target, SegmentValue::Exact(i)),
                    (target, SegmentValue::Exact(i + 1)),
                ],
                BLACK.stroke_width(2),
            ))
        }))
        .map_err(plot)?;
    // The reference.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
            BLACK.mix(0.5),
        )))
        .map_err(plot)?;
    root.present().map_err(plot)?;
    Ok(())
}

/// plotters' errors carry the backend's error type; the message is enough.
fn plot(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {error}")
}

/// Draws the chart of the reports in `target/` into `out`.
pub(crate) fn draw_reports(criterion: &Path, network: &Path, out: &Path) -> Result<()> {
    let read = |path: &Path| -> Result<Value> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let criterion = read(criterion)?;
    let network = network.exists().then(|| read(network)).transpose()?;
    let bars = bars(&criterion, network.as_ref());
    draw(
        out,
        "cargo xtask bench: ratios measured side by side (black tick: the target)",
        &bars,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports() -> (Value, Value) {
        let criterion = serde_json::json!([
            {"group": "session", "bench": "tls13_16", "reference": "plain_16",
             "ratio_to_reference": 0.72},
            {"group": "codec_mix", "bench": "decode", "reference": "memcpy"},
        ]);
        let network = serde_json::json!({
            "ratios": [
                {"name": "TLS 1.3 / plain, 1 in flight", "measured": 0.91, "target": 0.8},
                {"name": "mbaps plain / tokio-modbus, 1 in flight", "measured": 0.7, "target": 1.2},
            ],
            "client_ratio": {"ratio": 1.19, "ratio_to_two_tasks": 0.28, "target": 0.9,
                             "ratio_to_callers": 0.93,
                             "one_in_flight_ratio": 0.8, "one_in_flight_target": 1.0},
            "pollers": {"connections": 10, "many_ratio": 0.85, "many_target": 0.95,
                        "pipelined_ratio": 0.96},
            "gateway": {"ratios": [
                {"name": "gateway / direct, 16 in flight", "measured": 0.43, "target": 0.8},
            ]},
        });
        (criterion, network)
    }

    #[test]
    fn every_ratio_of_both_reports_is_a_bar_with_its_target() {
        let (criterion, network) = reports();
        let bars = bars(&criterion, Some(&network));
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "session: tls13_16 / plain_16",
                "loopback: TLS 1.3 / plain, 1 in flight",
                "loopback: mbaps plain / tokio-modbus, 1 in flight",
                "loopback: gateway / direct, 16 in flight",
                "TokioClient / rustls generator, one task",
                "TokioClient / rustls generator, two tasks",
                "TokioClient / rustls generator behind caller tasks",
                "TokioClient / rustls generator, 1 in flight",
                "TokioServer / TLS limit, 10 pollers x 1",
                "TokioServer / TLS limit, 1 x 16",
            ]
        );
        assert_eq!(bars[6].target, None);
        assert_eq!(bars[7].target, Some(1.0));
        assert_eq!(bars[8].target, Some(0.95));
        assert_eq!(bars[9].target, None);
        assert_eq!(bars[2].target, Some(1.2));
        assert_eq!(bars[3].target, Some(0.8));
        assert_eq!(bars[5].target, None);
        // Without the loopback report, the criterion bars alone.
        assert_eq!(super::bars(&criterion, None).len(), 1);
    }

    #[test]
    fn the_chart_is_an_svg_with_a_bar_and_a_label_for_each_ratio() {
        let (criterion, network) = reports();
        let bars = bars(&criterion, Some(&network));
        let path = std::env::temp_dir().join(format!("mbaps-chart-{}.svg", std::process::id()));
        draw(&path, "test", &bars).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for bar in &bars {
            assert!(svg.contains(&bar.label), "no label {:?}", bar.label);
            assert!(svg.contains(&format!("{:.2}x", bar.ratio)));
        }
        // Met targets green, missed ones red.
        assert!(svg.contains("#2E8B57"), "no green bar");
        assert!(svg.contains("#C8372D"), "no red bar");
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let path = std::env::temp_dir().join("mbaps-chart-empty.svg");
        assert!(draw(&path, "test", &[]).is_err());
    }
}
