//! Fuzzing with cargo-fuzz (libFuzzer, nightly toolchain).
//!
//! Each target has a committed seed corpus in `fuzz/seeds/TARGET/`; what a
//! run discovers goes to `fuzz/corpus/TARGET/`, which git ignores. Crashes
//! land in `fuzz/artifacts/TARGET/` and fail the run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::root;
use crate::tools::{Step, ensure_installed, has_nightly, run};

/// The fuzz targets: one file each in `fuzz/fuzz_targets/`.
fn targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz/fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(names)
}

fn prepare() -> Result<()> {
    if !has_nightly() {
        bail!(
            "cargo-fuzz needs a nightly toolchain and `rustup run nightly rustc` found none; \
             install one with `rustup toolchain install nightly`"
        );
    }
    ensure_installed("cargo-fuzz", "cargo-fuzz")?;
    run(nightly_cargo().args(["fuzz", "build"]))
}

/// `cargo +nightly` through the rustup proxy, not the stable cargo that
/// runs this xtask.
fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    command
}

fn fuzz_one(target: &str, seconds: u64) -> Result<()> {
    let corpus = PathBuf::from("fuzz/corpus").join(target);
    let seeds = PathBuf::from("fuzz/seeds").join(target);
    std::fs::create_dir_all(root().join(&corpus))?;
    if !root().join(&seeds).is_dir() {
        bail!(
            "fuzz target {target} has no seed corpus at {}",
            seeds.display()
        );
    }
    run(nightly_cargo()
        .args(["fuzz", "run", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-max_len=4096")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1"))
}

/// The short run `cargo xtask ci` does: every target for `seconds`.
pub(crate) fn smoke(seconds: u64) -> Result<()> {
    prepare()?;
    for target in targets()? {
        fuzz_one(&target, seconds)?;
    }
    Ok(())
}

/// `cargo xtask fuzz [TARGET..] [--seconds N]`.
pub(crate) fn campaign(args: &[String]) -> Result<()> {
    let mut seconds = 300;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--seconds {value:?} is not a whole number"))?;
            }
            name => chosen.push(name.to_owned()),
        }
    }
    let all = targets()?;
    for name in &chosen {
        if !all.contains(name) {
            bail!(
                "no fuzz target {name:?}; the targets are: {}",
                all.join(", ")
            );
        }
    }
    let chosen = if chosen.is_empty() { all } else { chosen };
    prepare()?;
    for target in chosen {
        let step = Step::start(format!("fuzz {target}"));
        let result = fuzz_one(&target, seconds);
        step.finish(result.is_ok());
        result?;
    }
    Ok(())
}
