//! What operations cost: `mbaps server` (the binary, in a process of its
//! own) with its default logging, with `--audit-log`, with `--metrics`,
//! with both, and with `--tap` (the plaintext capture for an IDS), side by
//! side, and the library server with neither (in
//! this process), reading 10 holding registers over TLS 1.3 with 1 and 16
//! in flight. Besides the rates, the CPU time each `mbaps server` process
//! spent per request (user and system, from `/proc`): the load generator
//! shares the two cores, so the rate of a server moves with the machine,
//! while what it spends per request is its own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::{AsyncCalls, TokioClient};

use crate::pki::{POLICY, Pki};
use crate::throughput::{load, median, yield_count};

/// The servers compared: (name, `mbaps server` flags; `None`: the library
/// server in this process).
pub(crate) const SERVERS: [(&str, Option<&[&str]>); 6] = [
    ("library server, no log", None),
    ("mbaps server, default log", Some(&[])),
    ("mbaps server --audit-log", Some(&["--audit-log", "AUDIT"])),
    (
        "mbaps server --metrics",
        Some(&["--metrics", "127.0.0.1:0"]),
    ),
    (
        "mbaps server, both",
        Some(&["--audit-log", "AUDIT", "--metrics", "127.0.0.1:0"]),
    ),
    ("mbaps server --tap", Some(&["--tap", "TAP"])),
];

/// [`SERVERS`]' index of the server with the plaintext tap.
pub(crate) const TAP: usize = 5;

/// Requests/s, medians, by server (in [`SERVERS`]' order) and in flight
/// (1, then 16); and the `mbaps server` processes' CPU time per request at
/// 16 in flight, in microseconds (`None`: the library server, or no
/// `/proc`).
pub(crate) struct OperationsRates {
    pub(crate) per_second: Vec<[f64; 2]>,
    pub(crate) cpu_us_per_request: Vec<Option<f64>>,
}

impl OperationsRates {
    /// Server `index` over the default `mbaps server`, with `flight`
    /// (0: 1 in flight, 1: 16).
    pub(crate) fn ratio(&self, index: usize, flight: usize) -> f64 {
        self.per_second[index][flight] / self.per_second[1][flight]
    }

    /// Server `index`'s CPU time per request over the default `mbaps
    /// server`'s, at 16 in flight: what its options cost.
    pub(crate) fn cpu_ratio(&self, index: usize) -> Option<f64> {
        Some(self.cpu_us_per_request[index]? / self.cpu_us_per_request[1]?)
    }
}

/// The CPU time (user and system) process `pid` has spent, from
/// `/proc/PID/stat`, in clock ticks of 10 ms (Linux's USER_HZ).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, which may hold
    // spaces): state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Kills the child however the measurement ends.
pub(crate) struct Child(pub(crate) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mbaps`, beside this executable (`cargo xtask bench` builds both), or
/// `MBAPS_BIN`.
pub(crate) fn mbaps_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("MBAPS_BIN") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no folder")?
            .join("mbaps"),
    };
    if !path.exists() {
        bail!(
            "{} is missing: `cargo build --release -p mbaps-cli` (cargo xtask bench does)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<OperationsRates> {
    let binary = mbaps_binary()?;
    let dir = std::env::temp_dir().join(format!("mbaps-netbench-ops-{}", std::process::id()));
    pki.pki.write_to(&dir)?;
    std::fs::write(dir.join("policy.toml"), POLICY)?;
    let mut measured = vec![[Vec::new(), Vec::new()]; SERVERS.len()];
    let mut cpu = vec![Vec::new(); SERVERS.len()];
    for _ in 0..rounds {
        for (index, (_, flags)) in SERVERS.iter().enumerate() {
            for (flight, in_flight) in [1, 16].into_iter().enumerate() {
                let rate = match flags {
                    None => {
                        let server = pki
                            .bind_server(Some(TlsVersions::Tls13Only))
                            .await?
                            .spawn()?;
                        let rate = rate(pki, server.local_addr(), in_flight, window).await;
                        server.shutdown().await?;
                        rate?
                    }
                    Some(flags) => {
                        let (child, address) = start(&binary, &dir, flags)?;
                        let before = cpu_time(child.0.id());
                        let rate = rate(pki, address, in_flight, window).await?;
                        if let (1, Some(before), Some(after)) =
                            (flight, before, cpu_time(child.0.id()))
                        {
                            let requests = rate * window.as_secs_f64();
                            cpu[index].push((after - before).as_secs_f64() * 1e6 / requests);
                        }
                        rate
                    }
                };
                measured[index][flight].push(rate);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(OperationsRates {
        per_second: measured
            .iter()
            .map(|[one, sixteen]| [median(one), median(sixteen)])
            .collect(),
        cpu_us_per_request: cpu
            .iter()
            .map(|samples| (!samples.is_empty()).then(|| median(samples)))
            .collect(),
    })
}

/// `mbaps server` with the PKI and policy of `dir` and `flags` (`AUDIT`
/// and `TAP` stand for files in `dir`); its address once it listens.
pub(crate) fn start(binary: &Path, dir: &Path, flags: &[&str]) -> Result<(Child, SocketAddr)> {
    let audit = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let tap = dir.join("tap.pcapng");
    let _ = std::fs::remove_file(&tap);
    let mut command = Command::new(binary);
    command
        .args(["server", "--listen", "127.0.0.1:0", "--exit-after", "600"])
        .arg("--cert")
        .arg(dir.join("server-chain.pem"))
        .arg("--key")
        .arg(dir.join("server.key"))
        .arg("--ca")
        .arg(dir.join("ca.pem"))
        .arg("--policy")
        .arg(dir.join("policy.toml"));
    for flag in flags {
        if *flag == "AUDIT" {
            command.arg(&audit);
        } else if *flag == "TAP" {
            command.arg(&tap);
        } else {
            command.arg(flag);
        }
    }
    let mut child = Child(
        command
            .stdout(Stdio::piped())
            .spawn()
            .context("starting mbaps server")?,
    );
    let stdout = child.0.stdout.take().context("the server's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .context("mbaps server ended before it listened")??;
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest
                .split_whitespace()
                .next()
                .context("no address")?
                .parse()?;
        }
    };
    // Its log (a line per session) is read, so that it never blocks.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, address))
}

/// The operator's reads on one TLS 1.3 connection, `in_flight` at once.
async fn rate(pki: &Pki, address: SocketAddr, in_flight: usize, window: Duration) -> Result<f64> {
    let client = TokioClient::connect(
        address,
        pki.client(Some(TlsVersions::Tls13Only), true)?,
        ServerName::try_from("localhost")?,
    )
    .await?;
    let rate = load(in_flight, window, |_| {
        let client = client.clone();
        async move {
            loop {
                if !client
                    .read_holding_registers(1, 0, 10)
                    .await
                    .is_ok_and(|v| v.len() == 10)
                {
                    return;
                }
                yield_count().await;
            }
        }
    })
    .await;
    client.close().await;
    rate
}
