//! `cargo xtask certs OUT_DIR`: generates a fresh test PKI (root and
//! intermediate CA, server, the standard clients with their role extensions,
//! an untrusted branch and a CRL) valid from now, and writes it to OUT_DIR.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use mbaps_test_pki::TestPki;

/// Parses `OUT_DIR`, writes the PKI there and prints each file with what it is for.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let [out_dir] = args else {
        bail!(
            "usage: cargo xtask certs OUT_DIR (got {} arguments)",
            args.len()
        );
    };
    let dir = Path::new(out_dir);
    let pki = TestPki::generate(wall_clock())
        .with_context(|| format!("generating the test PKI for {}", dir.display()))?;
    let written = pki
        .write_to(dir)
        .with_context(|| format!("writing the test PKI to {}", dir.display()))?;
    let width = written
        .iter()
        .map(|path| path.display().to_string().len())
        .max()
        .unwrap_or(0);
    for path in &written {
        let about = path
            .file_name()
            .and_then(|name| pki.describe(&name.to_string_lossy()))
            .unwrap_or_default();
        println!("{:width$}  {about}", path.display().to_string());
    }
    println!(
        "\n{} files written to {} (test keys, unprotected: tests and demos only)",
        written.len(),
        dir.display()
    );
    Ok(())
}

/// The current time, which the certificates' validity starts from.
#[allow(clippy::disallowed_methods)] // a tool, not the sans-IO core
pub(crate) fn wall_clock() -> SystemTime {
    SystemTime::now()
}
