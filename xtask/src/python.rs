//! `mbaps` for Python (`bindings/python`, outside the workspace): its
//! format, lints and licences; the wheel built once with maturin (from
//! PyPI, in a virtual environment under `target/`); its pytest suite run
//! against the workspace's `mbaps`; the same wheel installed into a fresh
//! virtual environment for the README's example
//! (`bindings/python/tests/test_readme.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conformance::target_dir;
use crate::root;
use crate::tools::{cargo, cargo_bin, run};

/// The versions installed from PyPI: pinned, so that a run is a run.
const MATURIN: &str = "maturin==1.16.0";
const PYTEST: &str = "pytest==8.3.4";

fn manifest() -> PathBuf {
    root().join("bindings/python/Cargo.toml")
}

/// The whole step.
pub(crate) fn check() -> Result<()> {
    let manifest = manifest();
    let manifest = manifest.to_str().context("a path that is not UTF-8")?;
    cargo(&["fmt", "--manifest-path", manifest, "--", "--check"])?;
    cargo(&[
        "clippy",
        "--manifest-path",
        manifest,
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    // cargo-deny finds the repository's deny.toml above the manifest.
    cargo(&[
        "deny",
        "--manifest-path",
        manifest,
        "--locked",
        "check",
        "licenses",
        "bans",
        "sources",
    ])?;
    // The server tests reach a Python handler with pymodbus's TLS client
    // too: the version the conformance runs pin.
    let pymodbus = format!("pymodbus=={}", crate::conformance::pymodbus::VERSION);
    let python = venv(
        &target_dir().join("python-venv"),
        &[MATURIN, PYTEST, pymodbus.as_str()],
    )?;
    let wheel = build_wheel(&python)?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--force-reinstall", "--no-deps"])
        .arg(&wheel))?;
    // The `mbaps` the tests start: the workspace's, built by the test step.
    run(Command::new(cargo_bin()).args(["build", "--locked", "-p", "mbaps-cli"]))?;
    let mbaps = target_dir().join("debug/mbaps");
    run(Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root().join("bindings/python/tests"))
        .env("MBAPS_BIN", &mbaps)
        .env("MBAPS_WHEEL", &wheel)
        .current_dir(root()))
}

/// A virtual environment at `dir` with `packages`, its python.
fn venv(dir: &Path, packages: &[&str]) -> Result<PathBuf> {
    let python = dir.join("bin/python");
    if !python.exists() {
        run(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(dir))
        .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages))
    .context("installing from PyPI")?;
    Ok(python)
}

/// Builds the wheel (abi3, for CPython 3.9 and later) once; its path.
fn build_wheel(python: &Path) -> Result<PathBuf> {
    let out = target_dir().join("wheels");
    let _ = std::fs::remove_dir_all(&out);
    let maturin = python.with_file_name("maturin");
    run(Command::new(&maturin)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(manifest())
        .arg("--out")
        .arg(&out)
        .arg("--interpreter")
        .arg(python))?;
    let wheels: Vec<PathBuf> = std::fs::read_dir(&out)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "whl"))
        .collect();
    match &wheels[..] {
        [wheel] => Ok(wheel.clone()),
        _ => bail!(
            "maturin built {} wheels in {}: expected one",
            wheels.len(),
            out.display()
        ),
    }
}
