//! Our own endpoints for the conformance runs: the `mbaps` binary, the test
//! PKI, `mbaps server` on a free loopback port, and
//! the device probe (`mbaps conformance`) run against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::process::{Background, Ready, run_bounded};
use super::{Evidence, target_dir};
use crate::{root, tools};

/// The test PKI (`mbaps-test-pki`: root, intermediate, server, clients with
/// good and broken roles, CRLs), in a folder of its own. Its two-level
/// chain is what shows that both sides send their intermediate.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
}

impl Pki {
    /// Writes a fresh test PKI to `work/pki`.
    pub(crate) fn generate(work: &Path) -> Result<Pki> {
        let dir = work.join("pki");
        mbaps_test_pki::TestPki::generate(crate::certs::wall_clock())
            .context("generating the test PKI")?
            .write_to(&dir)
            .context("writing the test PKI")?;
        Ok(Pki { dir })
    }

    /// A file of the PKI, e.g. `ca.pem`.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file beside the PKI, in the run's work folder (logs, other PKIs).
    pub(crate) fn beside(&self, name: &str) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join(name)
    }

    /// `command` with this PKI's server certificate and key, trusting its CA.
    pub(crate) fn server<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .arg("--cert")
            .arg(self.file("server-chain.pem"))
            .arg("--key")
            .arg(self.file("server.key"))
            .arg("--ca")
            .arg(self.file("ca.pem"))
    }

    /// `mbaps server` on this PKI's server certificate, trusting its CA,
    /// logging to `log` beside the PKI.
    pub(crate) fn start_server(&self, log: &str) -> Result<(Background, SocketAddr)> {
        let files = ServerFiles {
            chain: &self.file("server-chain.pem"),
            key: &self.file("server.key"),
            ca: &self.file("ca.pem"),
        };
        start_server(&files, &self.beside(log))
    }

    /// Gives an `mbaps` client command this PKI's CA and the certificate
    /// chain and key of client `name` (`viewer` for `client-viewer-*`).
    pub(crate) fn client<'c>(&self, command: &'c mut Command, name: &str) -> &'c mut Command {
        credentials(
            command,
            &self.file("ca.pem"),
            &self.file(&format!("client-{name}-chain.pem")),
            &self.file(&format!("client-{name}.key")),
        )
    }
}

/// Gives an `mbaps` client command its trust anchor, certificate chain
/// and key.
pub(crate) fn credentials<'c>(
    command: &'c mut Command,
    ca: &Path,
    chain: &Path,
    key: &Path,
) -> &'c mut Command {
    command
        .arg("--ca")
        .arg(ca)
        .arg("--cert")
        .arg(chain)
        .arg("--key")
        .arg(key)
}

/// Where [`build_mbaps`] found the `mbaps` executable.
static MBAPS: OnceLock<PathBuf> = OnceLock::new();

/// Builds `mbaps` and notes where cargo put it (wherever the target
/// directory is configured to be).
pub(crate) fn build_mbaps() -> Result<()> {
    let done = run_bounded(
        Command::new(tools::cargo_bin())
            .current_dir(root())
            .args(["build", "--locked", "-p", "mbaps-cli", "--bin", "mbaps"])
            .args(["--message-format", "json-render-diagnostics"]),
        Duration::from_secs(1800),
    )?;
    if !done.success {
        bail!("building mbaps failed: {}", done.output);
    }
    let executable = done
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "mbaps")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo build reported no mbaps executable")?;
    let _ = MBAPS.set(executable);
    Ok(())
}

/// `mbaps`, as [`build_mbaps`] left it.
pub(crate) fn mbaps() -> Command {
    let executable = MBAPS
        .get()
        .cloned()
        .unwrap_or_else(|| target_dir().join("debug").join("mbaps"));
    let mut command = Command::new(executable);
    command.current_dir(root());
    command
}

/// The certificate files a server runs with.
pub(crate) struct ServerFiles<'a> {
    pub(crate) chain: &'a Path,
    pub(crate) key: &'a Path,
    pub(crate) ca: &'a Path,
}

/// `mbaps server` with the example policy on a port of 127.0.0.1 it binds
/// itself (the address is read from its first log line, so nothing can
/// take the port in between), its log in `log`.
pub(crate) fn start_server(
    files: &ServerFiles<'_>,
    log: &Path,
) -> Result<(Background, SocketAddr)> {
    let mut command = mbaps();
    command
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(["--exit-after", "600"])
        .arg("--cert")
        .arg(files.chain)
        .arg("--key")
        .arg(files.key)
        .arg("--ca")
        .arg(files.ca)
        .arg("--policy")
        .arg(root().join("examples/policy.toml"));
    start_listening(&mut command, log)
}

/// Starts an `mbaps` server or gateway on `127.0.0.1:0` and reads the
/// address it bound from its `listening on ADDRESS` line.
pub(crate) fn start_listening(
    command: &mut Command,
    log: &Path,
) -> Result<(Background, SocketAddr)> {
    let server = Background::start_when(command, log, &Ready::Logged("listening on "))
        .with_context(|| format!("starting {command:?}"))?;
    let address = server
        .log()
        .lines()
        .find_map(|line| line.strip_prefix("listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|address| address.parse().ok())
        .with_context(|| format!("mbaps logged no address: {}", server.log()))?;
    Ok((server, address))
}

/// Runs every check of the probe against `mbaps server` on the ECDSA PKI
/// (viewer allowed to read, the no-role client denied) and records each as
/// `probe:ID`.
pub(crate) fn probe_our_server(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let (server, address) = pki.start_server("probe-server.log")?;
    let report = run_probe(pki, &address.to_string())?;
    for check in report {
        // `info` is a check that reports without judging (TLS 1.3 offered
        // or not); only `fail` and `skip` are missing evidence.
        let outcome = match check.outcome.as_str() {
            "pass" | "info" => Ok(check.detail),
            _ => Err(format!("{}: {}", check.outcome, check.detail)),
        };
        evidence.record(&format!("probe:{}", check.id), &check.title, outcome);
    }
    drop(server);
    Ok(())
}

/// One check of the probe's JSON report.
pub(crate) struct ProbeCheck {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) outcome: String,
    pub(crate) detail: String,
}

/// `mbaps conformance --json` against `target` with the viewer allowed and
/// the no-role client denied.
pub(crate) fn run_probe(pki: &Pki, target: &str) -> Result<Vec<ProbeCheck>> {
    let mut command = mbaps();
    command.args([
        "conformance",
        "--json",
        "--timeout",
        "5",
        "--target",
        target,
    ]);
    let done = run_bounded(
        pki.client(&mut command, "viewer")
            .arg("--denied-cert")
            .arg(pki.file("client-no-role-chain.pem"))
            .arg("--denied-key")
            .arg(pki.file("client-no-role.key")),
        Duration::from_secs(300),
    )?;
    let report: serde_json::Value = serde_json::from_str(&done.stdout)
        .with_context(|| format!("the probe's report is not JSON: {}", done.output))?;
    let checks = report["checks"]
        .as_array()
        .context("the probe's report has no checks")?;
    Ok(checks
        .iter()
        .map(|check| {
            let text = |key: &str| check[key].as_str().unwrap_or_default().to_owned();
            ProbeCheck {
                id: text("id"),
                title: text("title"),
                outcome: text("outcome"),
                detail: text("detail"),
            }
        })
        .collect())
}
