//! `cargo xtask bench`: runs the criterion benches in one process run each
//! and prints every figure beside its physical reference, as a ratio; then
//! the loopback benchmark of the adapters (`mbaps-netbench`: requests/s,
//! handshakes/s, memory per idle session), written to
//! `target/bench-network.json`; and the ratios of both as a chart,
//! `docs/benchmarks.svg` (`--chart` redraws it from the last reports).
//!
//! Absolute times on a shared 2-core machine are noisy; the ratio of two
//! benches measured side by side in one run is the figure that counts.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::root;
use crate::tools::cargo;

/// A bench and the reference it is compared with: (criterion group, bench, reference bench).
const COMPARISONS: &[(&str, &str, &str)] = &[
    ("codec_mix", "decode", "memcpy"),
    ("codec_mix", "encode", "memcpy"),
    ("codec_mix", "decode_frames_only", "memcpy"),
    ("codec_mix", "memcpy_per_frame", "memcpy"),
    ("codec_mix", "decode", "memcpy_per_frame"),
    ("codec_mix", "encode", "memcpy_per_frame"),
    ("session", "tls13_1", "plain_1"),
    ("session", "tls12_1", "plain_1"),
    ("session", "tls13_16", "plain_16"),
    ("session", "tls12_16", "plain_16"),
    ("session", "tls13_16_handler", "plain_16_handler"),
    // A handler answering at once against requests taken as events.
    ("session", "plain_1_handler", "plain_1"),
    ("session", "plain_16_handler", "plain_16"),
];

/// Benches reported as a rate of elements (decisions) per second.
const RATES: &[(&str, &str)] = &[
    ("authz", "decide"),
    ("session", "plain_1"),
    ("session", "tls13_1"),
    ("session", "tls12_1"),
    ("session", "plain_16"),
    ("session", "tls13_16"),
    ("session", "tls12_16"),
    ("session", "plain_16_handler"),
    ("session", "tls13_16_handler"),
];

/// Where the chart goes.
const CHART: &str = "docs/benchmarks.svg";

/// `cargo xtask bench [--chart]`.
pub(crate) fn command(args: &[String]) -> Result<()> {
    match args {
        [] => run(),
        [flag] if flag == "--chart" => chart(),
        _ => anyhow::bail!("usage: cargo xtask bench [--chart]"),
    }
}

/// Draws the chart from the reports of the last run.
fn chart() -> Result<()> {
    let target = root().join("target");
    let out = root().join(CHART);
    crate::chart::draw_reports(
        &target.join("bench-report.json"),
        &target.join("bench-network.json"),
        &out,
    )?;
    println!("drawn: {}", out.display());
    Ok(())
}

/// Runs the benches and prints the ratio table; writes it as JSON to
/// `target/bench-report.json`.
fn run() -> Result<()> {
    cargo(&["bench", "--locked", "-p", "mbaps-codec", "--bench", "codec"])?;
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "mbaps-authz",
        "--bench",
        "decide",
    ])?;
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "mbaps-session",
        "--bench",
        "round_trip",
    ])?;
    let criterion = root().join("target/criterion");
    let mut rows = Vec::new();
    println!(
        "\n{:<12} {:<20} {:>12} {:>12} {:>10}",
        "group", "bench", "ns/iter", "MiB/s", "ratio"
    );
    for &(group, bench, reference) in COMPARISONS {
        let measured = mean_ns(&criterion, group, bench)?;
        let baseline = mean_ns(&criterion, group, reference)?;
        let bytes = throughput_bytes(&criterion, group, bench).unwrap_or(f64::NAN);
        // Same bytes in both, so the throughput ratio is the inverse time ratio.
        let ratio = baseline / measured;
        let mib_s = bytes / measured * 1e9 / (1024.0 * 1024.0);
        let mib_text = if mib_s.is_finite() {
            format!("{mib_s:.0}")
        } else {
            "-".into()
        };
        println!(
            "{group:<12} {bench:<20} {measured:>12.0} {mib_text:>12} {ratio:>9.3}x of {reference}"
        );
        rows.push(serde_json::json!({
            "group": group, "bench": bench, "reference": reference,
            "mean_ns": measured, "reference_mean_ns": baseline,
            "bytes": bytes, "mib_per_s": mib_s, "ratio_to_reference": ratio,
        }));
    }
    for &(group, bench) in RATES {
        let measured = mean_ns(&criterion, group, bench)?;
        let elements = throughput(&criterion, group, bench, "Elements")?;
        let per_second = elements / measured * 1e9;
        println!(
            "{group:<12} {bench:<20} {:>12.1} ns/element {:>12.3} M/s",
            measured / elements,
            per_second / 1e6
        );
        rows.push(serde_json::json!({
            "group": group, "bench": bench, "mean_ns": measured,
            "elements": elements, "per_second": per_second,
        }));
    }
    let report = root().join("target/bench-report.json");
    std::fs::write(&report, serde_json::to_string_pretty(&rows)?)?;
    println!("\nwritten: {}", report.display());

    // The adapters on loopback: one process run, scenarios interleaved;
    // `mbaps` beside it, for the operations scenario.
    cargo(&["build", "--locked", "--release", "-q", "-p", "mbaps-cli"])?;
    let network = root().join("target/bench-network.json");
    cargo(&[
        "run",
        "--locked",
        "--release",
        "-q",
        "-p",
        "mbaps-netbench",
        "--",
        "--seconds",
        "2",
        "--rounds",
        "5",
        "--json",
        network
            .to_str()
            .context("the target folder's path is not UTF-8")?,
    ])?;
    chart()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading criterion output {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn mean_ns(criterion: &Path, group: &str, bench: &str) -> Result<f64> {
    let path = criterion.join(group).join(bench).join("new/estimates.json");
    read_json(&path)?["mean"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("{}: no mean.point_estimate", path.display()))
}

fn throughput_bytes(criterion: &Path, group: &str, bench: &str) -> Result<f64> {
    throughput(criterion, group, bench, "Bytes")
}

fn throughput(criterion: &Path, group: &str, bench: &str, unit: &str) -> Result<f64> {
    let path = criterion.join(group).join(bench).join("new/benchmark.json");
    read_json(&path)?["throughput"][unit]
        .as_f64()
        .with_context(|| format!("{}: no throughput.{unit}", path.display()))
}
