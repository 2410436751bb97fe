//! Project automation, run as `cargo xtask <command>`.
//!
//! ```text
//! cargo xtask ci                 fmt, clippy -D warnings, tests, cargo-deny, fuzz smoke run
//! cargo xtask fuzz [TARGET..]    longer fuzz campaigns (default 300 s per target)
//! cargo xtask bench [--chart]    criterion benches, loopback benchmark, the ratios side by side (and a chart)
//! cargo xtask certs OUT_DIR      a fresh test PKI (CAs, server, clients with roles, CRL)
//! cargo xtask conformance        the requirement matrix, from tests, the probe, OpenSSL and pymodbus
//! ```
//!
//! Every tool the commands need and that can be had from crates.io
//! (cargo-deny, cargo-fuzz) is installed when missing, so the commands work
//! on a fresh machine.
#![forbid(unsafe_code)]

mod bench;
mod certs;
mod chart;
mod conformance;
mod fuzz;
mod python;
mod tools;
mod units;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use tools::{Step, cargo};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                          fmt check, clippy -D warnings, rustdoc -D warnings, the whole test suite,
                              cargo deny (licenses bans sources), the conformance runs
                              (conformance --check), fuzz smoke run
  fuzz [TARGET..] [--seconds N]
                              fuzz each target (all by default) for N seconds (300)
  bench [--chart]             run the criterion benches and the loopback benchmark, print the
                              ratios and draw them into docs/benchmarks.svg; --chart: only
                              redraw the chart from the last run's reports in target/
  certs OUT_DIR               write a fresh test PKI to OUT_DIR: root and intermediate
                              CA, server, clients with role extensions (good and
                              bad ones), an untrusted client, a CRL, README.txt
  conformance [--check]       run the tests, the device probe against mbaps server, OpenSSL
                              s_client/s_server and pymodbus (from PyPI, in a venv under
                              target/) on loopback, and write the requirement matrix into
                              docs/conformance.md; --check: fail if the committed one differs

environment:
  MBAPS_FUZZ_SMOKE_SECONDS    seconds per target in the ci smoke run (10)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz::campaign(&args[1..]),
        Some("bench") => bench::command(&args[1..]),
        Some("certs") => certs::run(&args[1..]),
        Some("conformance") => conformance::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn ci() -> Result<()> {
    let mut failed = Vec::new();
    let mut run = |name: &'static str, step: &dyn Fn() -> Result<()>| {
        let step_timer = Step::start(name);
        let result = step();
        step_timer.finish(result.is_ok());
        if let Err(err) = result {
            eprintln!("xtask: {name} failed: {err:#}");
            failed.push(name);
        }
    };
    run("fmt", &|| cargo(&["fmt", "--all", "--", "--check"]));
    run("clippy", &|| {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    });
    run("doc", &|| {
        // Broken intra-doc links fail the build.
        tools::run(
            std::process::Command::new(tools::cargo_bin())
                .args(["doc", "--workspace", "--no-deps", "--locked"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
    });
    let tests = std::cell::RefCell::new(None);
    run("test", &|| {
        *tests.borrow_mut() = Some(tools::cargo_test(&["test", "--workspace", "--locked"])?);
        Ok(())
    });
    run("units", &units::verify);
    run("deny", &|| {
        tools::ensure_installed("cargo-deny", "cargo-deny")?;
        // Advisories need the RustSec database from the network; see deny.toml.
        cargo(&["deny", "--locked", "check", "licenses", "bans", "sources"])
    });
    run("python", &python::check);
    run("conformance", &|| match tests.borrow().as_ref() {
        Some(run) => conformance::gather_and_write(run, true),
        None => anyhow::bail!("the test step failed, so the matrix has no test evidence"),
    });
    run("fuzz smoke", &|| {
        let seconds = std::env::var("MBAPS_FUZZ_SMOKE_SECONDS")
            .ok()
            .map(|s| s.parse::<u64>())
            .transpose()?
            .unwrap_or(10);
        fuzz::smoke(seconds)
    });
    if failed.is_empty() {
        println!("\nxtask ci: all steps passed");
    } else {
        println!("\nxtask ci: steps failed: {}", failed.join(", "));
    }
    // The closing line CI reads: every test of the suite, summed.
    if let Some(run) = tests.borrow().as_ref() {
        println!("tests: {} passed, {} failed", run.passed, run.failed);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("steps failed: {}", failed.join(", "))
    }
}
