//! The systemd units in `dist/`, checked with `systemd-analyze verify`
//! where systemd is installed (with the binary path pointed at the one just
//! built, since verify checks that `ExecStart` exists).

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conformance::target_dir;
use crate::root;
use crate::tools::run;

/// Verifies every `dist/*.service`; a machine without `systemd-analyze`
/// skips, and says so.
pub(crate) fn verify() -> Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("units: no systemd-analyze on this machine: dist/*.service not verified");
        return Ok(());
    }
    let binary = target_dir().join("debug/mbaps");
    if !binary.exists() {
        bail!("{} is not built: the test step builds it", binary.display());
    }
    let staged = target_dir().join("units");
    std::fs::create_dir_all(&staged)?;
    let mut units = Vec::new();
    for entry in std::fs::read_dir(root().join("dist"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let name = path.file_name().context("a unit without a name")?;
        let copy = staged.join(name);
        std::fs::write(
            &copy,
            text.replace("/usr/local/bin/mbaps", &binary.display().to_string()),
        )?;
        units.push(copy);
    }
    if units.is_empty() {
        bail!("no unit in dist/");
    }
    run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units))
}
