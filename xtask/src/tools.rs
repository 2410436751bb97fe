//! Running cargo and other tools, and installing the ones that are missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::root;

/// Runs `cargo ARGS` in the workspace root; an error if it fails.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(cargo_bin()).args(args))
}

/// What a `cargo test` run reported: the counts of its `test result:`
/// lines, and the outcome of every test by its evidence id.
#[derive(Clone, Debug, Default)]
pub(crate) struct TestRun {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    /// `binary::test` -> passed. The binary is the test target's name
    /// (`sessions` for `tests/sessions.rs`, the crate name for unit tests,
    /// `doc:crate` for doc tests); integration test names are unique across
    /// the workspace, so the id names one test.
    pub(crate) outcomes: BTreeMap<String, bool>,
}

/// Runs `cargo ARGS` (a `cargo test`), echoing its output as it comes, and
/// collects what it reported. Cargo's `Running` lines go to stderr and the
/// test lines to stdout: both are read from one pipe so their order holds.
pub(crate) fn cargo_test(args: &[&str]) -> Result<TestRun> {
    let mut command = Command::new(cargo_bin());
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    command
        .args(args)
        .current_dir(root())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    eprintln!("$ {}", describe(&command));
    let mut child = command.spawn().context("starting cargo test")?;
    // The command holds the pipe's write ends; without dropping it the
    // reader would never see the end of the output.
    drop(command);
    let mut run = TestRun::default();
    let mut binary = String::new();
    let mut reader = BufReader::new(reader);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        // A test may print bytes that are not UTF-8: read on, lossily.
        if reader.read_until(b'\n', &mut raw).unwrap_or(0) == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']);
        println!("{line}");
        let trimmed = line.trim_start();
        if let Some(target) = trimmed.strip_prefix("Running ") {
            binary = binary_name(target);
        } else if let Some(krate) = trimmed.strip_prefix("Doc-tests ") {
            binary = format!("doc:{}", krate.trim());
        } else if let Some(summary) = line.strip_prefix("test result: ") {
            run.passed += count_before(summary, " passed");
            run.failed += count_before(summary, " failed");
        } else if let Some(test) = line.strip_prefix("test ")
            && let Some((name, verdict)) = test.rsplit_once(" ... ")
        {
            let passed = match verdict.trim() {
                "ok" => true,
                "FAILED" => false,
                _ => continue,
            };
            // Reported twice (a test printing a look-alike line): a failure wins.
            run.outcomes
                .entry(format!("{binary}::{name}"))
                .and_modify(|ok| *ok &= passed)
                .or_insert(passed);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test exited with {status}");
    }
    Ok(run)
}

/// `sessions` from `tests/sessions.rs (target/debug/deps/sessions-0123abcd)`:
/// the executable's name without its hash.
fn binary_name(target: &str) -> String {
    let executable = target
        .rsplit_once('(')
        .map_or(target, |(_, path)| path.trim_end_matches(')'));
    let file = executable.rsplit(['/', '\\']).next().unwrap_or(executable);
    file.rsplit_once('-')
        .map_or(file, |(name, _hash)| name)
        .to_owned()
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

#[cfg(test)]
mod tests {
    use super::{binary_name, count_before};

    #[test]
    fn a_test_target_is_named_by_its_executable_without_the_hash() {
        assert_eq!(
            binary_name("tests/sessions.rs (target/debug/deps/sessions-7fc09915896d05a5)"),
            "sessions"
        );
        assert_eq!(
            binary_name("unittests src/lib.rs (target/debug/deps/mbaps_session-bc9a257608a3e557)"),
            "mbaps_session"
        );
        assert_eq!(
            binary_name("conformance.rs (target/debug/deps/conformance-1467e3b39d8ca6d5)"),
            "conformance"
        );
    }

    #[test]
    fn the_counts_are_read_from_a_summary_line() {
        let summary = "FAILED. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(count_before(summary, " passed"), 12);
        assert_eq!(count_before(summary, " failed"), 3);
    }
}
