//! Resident memory per idle TLS session, measured on a server in a child
//! process (so that the clients' memory is not counted): its RSS after a
//! warm-up, then after N more sessions, divided by N; and one client's
//! latency, one read at a time, before and while the sessions are held.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ServerConfig, load_certificates, load_private_key};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_std::StdClient;
use mbaps_tokio::TokioServer;

use crate::pki::Pki;
use mbaps_std::Calls;

pub(crate) struct Memory {
    pub(crate) sessions: usize,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    /// One client's reads, one at a time, before the idle sessions came.
    pub(crate) quiet: Latency,
    /// The same client's reads while the idle sessions are held.
    pub(crate) held: Latency,
}

/// Percentiles of one client's reads, one at a time.
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

/// How long the probe reads.
const PROBE: Duration = Duration::from_secs(1);

/// One request at a time on `client` for [`PROBE`]: the median and the
/// 99th percentile of the round trips.
fn probe(client: &mut StdClient) -> Result<Latency> {
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PROBE {
        let sent = Instant::now();
        client.read_holding_registers(1, 0, 10)?;
        times.push(sent.elapsed());
    }
    times.sort_unstable();
    // Nearest rank: the smallest time at least `q` of the reads took no
    // longer than.
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Latency {
        p50: at(0.5),
        p99: at(0.99),
    })
}

impl Memory {
    pub(crate) fn per_session_kib(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions as f64
    }
}

/// Kills the child however the measurement ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn measure(pki: &Pki, sessions: usize) -> Result<Memory> {
    let dir = std::env::temp_dir().join(format!("mbaps-netbench-{}", std::process::id()));
    pki.pki.write_to(&dir)?;
    let mut child = Child(
        Command::new(std::env::current_exe()?)
            .arg("idle-server")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the server child")?,
    );
    let stdout = child.0.stdout.take().context("the child's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .with_context(|| format!("the child said {line:?}"))?
        .parse()?;
    let config = pki.client(Some(mbaps_session::TlsVersions::Both), false)?;
    let name = ServerName::try_from("localhost")?;
    let mut clients = Vec::with_capacity(sessions + 10);
    let open = |n: usize, clients: &mut Vec<StdClient>| -> Result<()> {
        for _ in 0..n {
            let mut client =
                StdClient::connect(address, &config, name.clone()).with_context(|| {
                    format!(
                        "session {} of {sessions} (each takes a descriptor here and one in the \
                     server: `ulimit -n` must allow twice as many)",
                        clients.len() + 1
                    )
                })?;
            // A request proves the server has the session up and its role.
            client.read_holding_registers(1, 0, 1)?;
            clients.push(client);
        }
        Ok(())
    };
    // Warm up: the runtime's threads, the allocator's arenas.
    open(10, &mut clients)?;
    let quiet = probe(&mut clients[0])?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_before_kib = rss_kib(child.0.id())?;
    open(sessions, &mut clients)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_after_kib = rss_kib(child.0.id())?;
    // The probe's own memory is not counted: it runs after the reading.
    let held = probe(&mut clients[0])?;
    drop(clients);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Memory {
        sessions,
        rss_before_kib,
        rss_after_kib,
        quiet,
        held,
    })
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (the memory figure needs Linux)")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/PID/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS without a value")?
        .parse()?;
    Ok(kib)
}

/// The child: a TLS server that prints its address and serves until
/// killed.
pub(crate) fn serve(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let config = ServerConfig::builder(
        load_certificates(&dir.join("ca.pem"))?,
        load_certificates(&dir.join("server-chain.pem"))?,
        load_private_key(&dir.join("server.key"))?,
        Pki::policy()?,
    )
    .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = TokioServer::bind("127.0.0.1:0", config, RegisterMap::new(Tables::preset()))
            .await?
            .max_sessions(100_000);
        println!("listening {}", server.local_addr()?);
        server.serve(std::future::pending()).await?;
        Ok(())
    })
}
