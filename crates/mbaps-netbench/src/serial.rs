//! A serial device behind the gateway: `mbaps server --serial-pty` (the
//! simulator as an RTU device, in a process of its own, on a
//! pseudo-terminal) read one request at a time by the RTU client of the
//! same tool directly, and through the gateway by a TLS client, in
//! interleaved rounds; both keep the inter-frame silence of the configured
//! speed. The reference is the direct read: the gateway should add at most
//! 1 ms per request. Then four TLS clients share the bus through the
//! gateway, each reading as fast as it is answered: every client should get
//! its share (the most-served over the least-served at most 1.5).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mbaps_session::TlsVersions;
use mbaps_session::call::read_holding_registers;
use mbaps_session::upstream::rtu::RtuOptions;
use mbaps_tokio::serial::{Parity, SerialLine};
use mbaps_tokio::{AsyncCalls, Device, Gateway, RtuClient, TokioServer};

use crate::fairness::connect;
use crate::operations::Child;
use crate::pki::Pki;
use crate::throughput::median;

/// The line's speed: 115,200 baud, whose silence is the fixed 1.75 ms.
pub(crate) const BAUD: u32 = 115_200;
/// The clients sharing the bus in the fairness measurement.
pub(crate) const SHARING: usize = 4;

/// Medians over the rounds.
pub(crate) struct SerialFigures {
    /// Per request, read directly by the RTU client.
    pub(crate) direct: Duration,
    /// Per request, read through the gateway over TLS.
    pub(crate) gateway: Duration,
    /// Requests each sharing client got, the most over the least.
    pub(crate) share_ratio: f64,
    /// Requests a second on the bus while shared.
    pub(crate) shared_per_second: f64,
}

impl SerialFigures {
    /// What the gateway adds per request.
    pub(crate) fn added(&self) -> Duration {
        self.gateway.saturating_sub(self.direct)
    }
}

fn line(path: &Path) -> SerialLine {
    SerialLine {
        baud: BAUD,
        // A pseudo-terminal has no parity.
        parity: Parity::None,
        ..SerialLine::new(path)
    }
}

/// `mbaps server --serial-pty DIR/rtu`, once the link is there.
#[allow(clippy::disallowed_methods)] // waits for a real process
fn start_device(dir: &Path) -> Result<(Child, PathBuf)> {
    let link = dir.join("rtu");
    let child = Command::new(crate::operations::mbaps_binary()?)
        .arg("server")
        .arg("--serial-pty")
        .arg(&link)
        .args(["--unit", "1"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting mbaps server --serial-pty")?;
    let child = Child(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::symlink_metadata(&link).is_err() {
        if Instant::now() > deadline {
            bail!("mbaps server --serial-pty made no {}", link.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, link))
}

/// Opens the port, waiting for the gateway of the round before to let it
/// go (its device task ends after the gateway is dropped).
#[allow(clippy::disallowed_methods)] // waits for a real port
async fn open_direct(port: &Path) -> Result<RtuClient> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match RtuClient::serial(&line(port), RtuOptions::default(), Duration::from_secs(1)) {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// When a window started, and how many reads it took: the mean time per
/// request at its end.
struct Window {
    started: Instant,
    reads: u32,
    length: Duration,
}

impl Window {
    #[allow(clippy::disallowed_methods)] // measures real time
    fn new(length: Duration) -> Window {
        Window {
            started: Instant::now(),
            reads: 0,
            length,
        }
    }

    /// Whether another read goes in the window.
    fn open(&self) -> bool {
        self.started.elapsed() < self.length
    }

    fn count(&mut self) {
        self.reads += 1;
    }

    fn per_request(&self) -> Duration {
        self.started.elapsed() / self.reads.max(1)
    }
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<SerialFigures> {
    let dir = std::env::temp_dir().join(format!("mbaps-netbench-serial-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (device, port) = start_device(&dir)?;
    let (mut direct, mut through, mut shares, mut rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut client = open_direct(&port).await?;
        let mut timing = Window::new(window);
        while timing.open() {
            client.call(1, read_holding_registers(0, 10)).await?;
            timing.count();
        }
        direct.push(timing.per_request());
        drop(client);
        let gateway = Gateway::builder()
            .route(1..=247, Device::serial(line(&port)), None)
            .start()?;
        let front = TokioServer::bind(
            "127.0.0.1:0",
            pki.server(Some(TlsVersions::Tls13Only))?,
            gateway,
        )
        .await?
        .spawn()?;
        let connect = || connect(pki, &front, "operator");
        let reader = connect().await?;
        let mut timing = Window::new(window);
        while timing.open() {
            reader.read_holding_registers(1, 0, 10).await?;
            timing.count();
        }
        through.push(timing.per_request());
        reader.close().await;
        // The bus shared: each client reads as fast as it is answered.
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Vec<Arc<AtomicUsize>> = (0..SHARING)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let mut readers = Vec::new();
        for count in &counts {
            let client = connect().await?;
            let (stop, count) = (Arc::clone(&stop), Arc::clone(count));
            readers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed)
                    && client.read_holding_registers(1, 0, 10).await.is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                client.close().await;
            }));
        }
        tokio::time::sleep(window).await;
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await?;
        }
        let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let (most, least) = (
            *got.iter().max().unwrap_or(&0),
            *got.iter().min().unwrap_or(&0),
        );
        shares.push(most as f64 / least.max(1) as f64);
        rates.push(got.iter().sum::<usize>() as f64 / window.as_secs_f64());
        front.shutdown().await?;
    }
    drop(device);
    let _ = std::fs::remove_dir_all(&dir);
    let median_duration = |values: &[Duration]| {
        Duration::from_secs_f64(median(
            &values.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        ))
    };
    Ok(SerialFigures {
        direct: median_duration(&direct),
        gateway: median_duration(&through),
        share_ratio: median(&shares),
        shared_per_second: median(&rates),
    })
}
