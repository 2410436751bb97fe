//! `cargo xtask conformance`: gathers the evidence for every requirement of
//! Modbus/TCP Security v36 and writes the requirement matrix into
//! `docs/conformance.md`.
//!
//! The evidence, all on loopback:
//! - the workspace's tests (`cargo test --workspace`), each by name;
//! - `mbaps conformance` (the device probe) against `mbaps server`;
//! - OpenSSL's `s_client` and `s_server` as an independent TLS peer, on the
//!   ECDSA test PKI and on an RSA PKI made by `openssl` itself;
//! - pymodbus, installed from PyPI into a virtual environment under
//!   `target/`, as an independent Modbus/TCP Security client and server.
//!
//! Every requirement names the evidence that must have passed
//! ([`requirements::REQUIREMENTS`]); the run fails when a piece of evidence
//! failed or is missing, or a requirement number is missing. With
//! `--check` it also fails when the committed matrix differs from the one
//! this run generates (CI uses it, so the document cannot go stale).

mod endpoints;
mod matrix;
mod openssl;
mod process;
pub(crate) mod pymodbus;
mod requirements;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::root;
use crate::tools::{self, Step, TestRun};

/// The outcome of one piece of evidence.
pub(crate) struct Entry {
    /// What it shows, in words that do not change between runs (printed in
    /// the document); empty for a test, whose name says it.
    pub(crate) what: String,
    pub(crate) passed: bool,
}

/// Every piece of evidence gathered in this run, by id, and what the
/// independent peers were seen to do wrong.
#[derive(Default)]
pub(crate) struct Evidence {
    pub(crate) entries: BTreeMap<String, Entry>,
    /// Finding id -> what the peer does, in words that do not change
    /// between runs of the same peer version.
    pub(crate) findings: BTreeMap<String, String>,
}

impl Evidence {
    /// Records a check and prints its outcome; `detail` (which may name
    /// ports, paths or times) goes to the console only.
    pub(crate) fn record(&mut self, id: &str, what: &str, outcome: Result<String, String>) {
        let (passed, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        let verdict = if passed { "ok" } else { "FAILED" };
        println!("conformance: {id} ... {verdict}: {}", one_line(&detail));
        self.entries.insert(
            id.to_owned(),
            Entry {
                what: what.to_owned(),
                passed,
            },
        );
    }

    /// Records something a peer does wrong (not a failure of ours).
    pub(crate) fn find(&mut self, id: &str, what: &str) {
        println!("conformance: finding {id}: {what}");
        self.findings.insert(id.to_owned(), what.to_owned());
    }

    fn add_tests(&mut self, run: &TestRun) {
        for (id, &passed) in &run.outcomes {
            self.entries.insert(
                id.clone(),
                Entry {
                    what: String::new(),
                    passed,
                },
            );
        }
    }
}

/// The first line of a detail, and at most 300 characters of it.
fn one_line(detail: &str) -> String {
    let line = detail.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(300).collect()
}

/// Where the runs keep their files (PKIs, logs, the virtual environment).
pub(crate) fn work_dir() -> PathBuf {
    target_dir().join("conformance")
}

/// Cargo's target directory (honouring `CARGO_TARGET_DIR`).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        })
        .unwrap_or_else(|| root().join("target"))
}

/// `cargo xtask conformance [--check]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            other => bail!("usage: cargo xtask conformance [--check] (unknown argument {other:?})"),
        }
    }
    let step = Step::start("conformance: the workspace's tests");
    let tests = tools::cargo_test(&["test", "--workspace", "--locked"]);
    step.finish(tests.is_ok());
    gather_and_write(&tests?, check)
}

/// Gathers the evidence beyond the tests (which `run` or `cargo xtask ci`
/// has already run), then writes or checks the matrix.
pub(crate) fn gather_and_write(tests: &TestRun, check: bool) -> Result<()> {
    let mut evidence = Evidence::default();
    evidence.add_tests(tests);
    let dir = work_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let step = Step::start("conformance: building mbaps");
    let built = endpoints::build_mbaps();
    step.finish(built.is_ok());
    built?;
    let pki = endpoints::Pki::generate(&dir)?;

    let step = Step::start("conformance: the probe against mbaps server");
    let probed = endpoints::probe_our_server(&pki, &mut evidence);
    step.finish(probed.is_ok());
    probed?;

    let step = Step::start("conformance: openssl s_client and s_server");
    let openssl = openssl::run(&pki, &mut evidence);
    step.finish(openssl.is_ok());
    openssl?;

    let step = Step::start("conformance: pymodbus");
    let pymodbus = pymodbus::run(&pki, &mut evidence);
    step.finish(pymodbus.is_ok());
    pymodbus?;

    matrix::write(&evidence, check)
}
