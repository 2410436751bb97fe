//! Running cargo and other tools, and installing the ones that are missing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::root;

/// Runs `cargo ARGS` in the workspace root; an error if it fails.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(cargo_bin()).args(args))
}

/// Test counts summed over every `test result:` line of a cargo test run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TestCounts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
}

/// Runs `cargo ARGS` (a `cargo test`), echoing its output as it comes, and
/// sums the counts of its `test result:` lines.
pub(crate) fn cargo_test(args: &[&str]) -> Result<TestCounts> {
    let mut command = Command::new(cargo_bin());
    command
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped());
    eprintln!("$ {}", describe(&command));
    let mut child = command.spawn().context("starting cargo test")?;
    let mut counts = TestCounts::default();
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(summary) = line.strip_prefix("test result: ") {
            counts.passed += count_before(summary, " passed");
            counts.failed += count_before(summary, " failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{} exited with {status}", describe(&command));
    }
    Ok(counts)
}

/// The number just before `label` in `ok. 12 passed; 0 failed; ...`.
fn count_before(summary: &str, label: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
                .map(|n| n.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// The cargo that runs this xtask (so `+toolchain` choices carry through).
pub(crate) fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a command in the workspace root, echoing it first.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    command.current_dir(root());
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("{} exited with {status}", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    let mut out = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Installs `krate` from crates.io with `cargo install --locked` when
/// `cargo SUBCOMMAND --version` does not answer.
pub(crate) fn ensure_installed(subcommand: &str, krate: &str) -> Result<()> {
    let present = Command::new(cargo_bin())
        .args([subcommand.trim_start_matches("cargo-"), "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !present {
        eprintln!("xtask: {subcommand} is missing; installing it from crates.io");
        cargo(&["install", "--locked", krate])?;
    }
    Ok(())
}

/// Whether `rustup` has a nightly toolchain (cargo-fuzz needs one).
pub(crate) fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Prints how long a step took: CI has a time budget to keep.
pub(crate) struct Step {
    name: String,
    started: Instant,
}

impl Step {
    #[allow(clippy::disallowed_methods)] // a build tool, not the sans-IO core
    pub(crate) fn start(name: impl Into<String>) -> Self {
        let name = name.into();
        eprintln!("\n=== xtask: {name}");
        Step {
            name,
            started: Instant::now(),
        }
    }

    pub(crate) fn finish(self, ok: bool) {
        let elapsed: Duration = self.started.elapsed();
        let verdict = if ok { "ok" } else { "FAILED" };
        eprintln!(
            "=== xtask: {} {verdict} in {:.1} s",
            self.name,
            elapsed.as_secs_f64()
        );
    }
}
