//! How close `TokioClient` comes to the TLS limit on the client side: its
//! rate with 16 calls in flight on one connection, against a bare rustls
//! load generator (the same rustls configuration, canned request bytes,
//! 16 in flight, nothing else), both against one minimal rustls echo server
//! written for this benchmark (it answers every read of 10 holding
//! registers with canned bytes), in interleaved rounds; and both one
//! request at a time. The generator and the echo server are also the
//! references of the pollers' scenario (`pollers`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::rustls::{self, ClientConnection, ServerConnection};
use mbaps_tokio::TokioClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::pki::Pki;
use crate::throughput::median;
use mbaps_tokio::AsyncCalls;

/// Calls in flight on the one connection.
pub(crate) const IN_FLIGHT: usize = 16;

/// The figures: medians over the rounds.
pub(crate) struct ClientRatio {
    /// The one-task generator: write, then read.
    pub(crate) bare_one_task_per_second: f64,
    /// The two-task generator: reading and writing on both cores.
    pub(crate) bare_two_tasks_per_second: f64,
    /// The generator behind `IN_FLIGHT` caller tasks: the floor of any
    /// client whose calls come from tasks of their own.
    pub(crate) callers_per_second: f64,
    pub(crate) tokio_client_per_second: f64,
    /// The generator with one request in flight.
    pub(crate) bare_one_in_flight_per_second: f64,
    /// The generator behind one caller task.
    pub(crate) callers_one_in_flight_per_second: f64,
    /// `TokioClient` with one call at a time.
    pub(crate) tokio_client_one_in_flight_per_second: f64,
}

impl ClientRatio {
    /// TokioClient against the one-task generator (the target's figure).
    pub(crate) fn ratio(&self) -> f64 {
        self.tokio_client_per_second / self.bare_one_task_per_second
    }

    /// TokioClient against the generator, one at a time.
    pub(crate) fn one_in_flight_ratio(&self) -> f64 {
        self.tokio_client_one_in_flight_per_second / self.bare_one_in_flight_per_second
    }

    /// TokioClient against the generator behind caller tasks: what the
    /// client adds to the hand-offs every such client pays.
    pub(crate) fn ratio_to_callers(&self) -> f64 {
        self.tokio_client_per_second / self.callers_per_second
    }

    /// The same, one at a time.
    pub(crate) fn one_in_flight_ratio_to_callers(&self) -> f64 {
        self.tokio_client_one_in_flight_per_second / self.callers_one_in_flight_per_second
    }

    /// TokioClient against the two-task generator: what rustls can do.
    pub(crate) fn ratio_to_two_tasks(&self) -> f64 {
        self.tokio_client_per_second / self.bare_two_tasks_per_second
    }
}

/// A read of 10 holding registers from 0, unit 1, transaction `txn`.
fn request(txn: u16) -> [u8; 12] {
    let [hi, lo] = txn.to_be_bytes();
    [hi, lo, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 10]
}

/// The answer to `request`: registers 0..10, transaction echoed.
/// Bytes of an answer (`response`).
const RESPONSE_LEN: usize = 29;

fn response(txn: [u8; 2]) -> [u8; RESPONSE_LEN] {
    let mut adu = [0u8; RESPONSE_LEN];
    adu[..2].copy_from_slice(&txn);
    adu[2..9].copy_from_slice(&[0, 0, 0, 23, 1, 0x03, 20]);
    for i in 0..10u8 {
        adu[9 + 2 * usize::from(i) + 1] = i;
    }
    adu
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<ClientRatio> {
    let versions = Some(TlsVersions::Tls13Only);
    let server_tls = Arc::new(
        pki.server(versions)?
            .tls()
            .context("a TLS server configuration")?
            .clone(),
    );
    let client_config = pki.client(versions, false)?;
    let client_tls = Arc::new(
        client_config
            .tls()
            .context("a TLS client configuration")?
            .clone(),
    );
    let address = echo_server(server_tls).await?;
    let (mut one, mut two, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare_single, mut ours_single) = (Vec::new(), Vec::new());
    let (mut callers, mut callers_single) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        one.push(bare_rate_one_task(address, Arc::clone(&client_tls), window, IN_FLIGHT).await?);
        two.push(bare_rate_two_tasks(address, Arc::clone(&client_tls), window).await?);
        callers.push(
            bare_rate_with_callers(address, Arc::clone(&client_tls), window, IN_FLIGHT).await?,
        );
        ours.push(tokio_client_rate(address, client_config.clone(), window, IN_FLIGHT).await?);
        bare_single.push(bare_rate_one_task(address, Arc::clone(&client_tls), window, 1).await?);
        callers_single
            .push(bare_rate_with_callers(address, Arc::clone(&client_tls), window, 1).await?);
        ours_single.push(tokio_client_rate(address, client_config.clone(), window, 1).await?);
    }
    Ok(ClientRatio {
        bare_one_task_per_second: median(&one),
        bare_two_tasks_per_second: median(&two),
        callers_per_second: median(&callers),
        tokio_client_per_second: median(&ours),
        bare_one_in_flight_per_second: median(&bare_single),
        callers_one_in_flight_per_second: median(&callers_single),
        tokio_client_one_in_flight_per_second: median(&ours_single),
    })
}

/// Writes everything rustls has to send (in `out`, reused) to `stream`.
pub(crate) async fn send_tls<Data>(
    conn: &mut rustls::ConnectionCommon<Data>,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    Ok(())
}

/// The echo server: a task per connection, rustls and a socket, canned
/// answers.
pub(crate) async fn echo_server(tls: Arc<rustls::ServerConfig>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = Arc::clone(&tls);
            tokio::spawn(async move {
                let _ = echo(stream, tls).await;
            });
        }
    });
    Ok(address)
}

async fn echo(mut stream: TcpStream, tls: Arc<rustls::ServerConfig>) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = ServerConnection::new(tls)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut plain = Vec::new();
    let mut out = Vec::new();
    loop {
        send_tls(&mut conn, &mut stream, &mut out).await?;
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.read_tls(&mut &buf[..n])?;
        conn.process_new_packets()?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match std::io::Read::read(&mut conn.reader(), &mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => plain.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        let whole = plain.len() / 12 * 12;
        let mut answers = Vec::with_capacity(whole / 12 * 29);
        for adu in plain[..whole].chunks_exact(12) {
            answers.extend_from_slice(&response([adu[0], adu[1]]));
        }
        std::io::Write::write_all(&mut conn.writer(), &answers)?;
        plain.drain(..whole);
    }
}

/// The simplest bare load generator: one task that writes the new
/// requests of each read together (one record), then reads again; one
/// connection, `in_flight` in flight.
pub(crate) async fn bare_rate_one_task(
    address: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    window: Duration,
    in_flight: usize,
) -> Result<f64> {
    bare_rate(address, tls, window, 1, in_flight).await
}

/// The bare load generator on `connections` connections at once, a task
/// each, `in_flight` in flight on each: answers per second, all together.
/// Each connection comes from an address of its own (127.0.0.2, .3, ...),
/// as pollers do: a server's admission control counts handshakes per
/// address.
pub(crate) async fn bare_rate(
    address: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    window: Duration,
    connections: usize,
    in_flight: usize,
) -> Result<f64> {
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for n in 0..connections {
        let (tls, answered) = (Arc::clone(&tls), Arc::clone(&answered));
        let source = Ipv4Addr::new(
            127,
            0,
            0,
            u8::try_from(2 + n).context("too many connections")?,
        );
        tasks.push(tokio::spawn(generate(
            address, source, tls, in_flight, answered,
        )));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (started, before) = (Instant::now(), answered.load(Ordering::Relaxed));
    tokio::time::sleep(window).await;
    let counted = answered.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        // A connection that ended before it was stopped says why.
        if let Ok(ended) = task.await {
            ended.context(
                "a connection of the bare load generator stopped during the measurement",
            )?;
        }
    }
    Ok(counted as f64 / elapsed.as_secs_f64())
}

/// One connection of the bare generator, until it fails: `in_flight`
/// canned requests in flight, a new one sent for each answer (the new
/// requests of a read together, in one record), every answer counted.
async fn generate(
    address: SocketAddr,
    source: Ipv4Addr,
    tls: Arc<rustls::ClientConfig>,
    in_flight: usize,
    answered: Arc<AtomicU64>,
) -> Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    let mut conn = ClientConnection::new(tls, ServerName::try_from("localhost")?)?;
    let (mut buf, mut out, mut plain) = (vec![0u8; 16 * 1024], Vec::new(), Vec::new());
    let mut txn = 0u16;
    let mut batch = Vec::with_capacity(in_flight * 12);
    for _ in 0..in_flight {
        txn = txn.wrapping_add(1);
        batch.extend_from_slice(&request(txn));
    }
    std::io::Write::write_all(&mut conn.writer(), &batch)?;
    loop {
        send_tls(&mut conn, &mut stream, &mut out).await?;
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        let whole = answer_each(&mut conn, &buf[..n], &mut plain, &mut batch, &mut txn)?;
        answered.fetch_add(whole as u64, Ordering::Relaxed);
    }
}

/// Feeds `bytes` read from the echo server to `conn`: how many whole
/// answers its plaintext now holds (taken out of `plain`, which keeps a
/// part of one).
fn whole_answers(conn: &mut ClientConnection, bytes: &[u8], plain: &mut Vec<u8>) -> Result<usize> {
    conn.read_tls(&mut &bytes[..])?;
    conn.process_new_packets()?;
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n) = std::io::Read::read(&mut conn.reader(), &mut chunk) {
        if n == 0 {
            break;
        }
        plain.extend_from_slice(&chunk[..n]);
    }
    let whole = plain.len() / RESPONSE_LEN;
    plain.drain(..whole * RESPONSE_LEN);
    Ok(whole)
}

/// Feeds `bytes` read from the echo server to `conn` and, for each whole
/// answer now in `plain`, queues a new request (together, in `batch`);
/// returns how many answers came.
fn answer_each(
    conn: &mut ClientConnection,
    bytes: &[u8],
    plain: &mut Vec<u8>,
    batch: &mut Vec<u8>,
    txn: &mut u16,
) -> Result<usize> {
    let whole = whole_answers(conn, bytes, plain)?;
    batch.clear();
    for _ in 0..whole {
        *txn = txn.wrapping_add(1);
        batch.extend_from_slice(&request(*txn));
    }
    if !batch.is_empty() {
        std::io::Write::write_all(&mut conn.writer(), batch)?;
    }
    Ok(whole)
}

/// The faster bare load generator: one connection, `IN_FLIGHT` canned requests
/// in flight, a new one sent for each answer, new requests of a read
/// together in one record. Reading and writing run on two tasks around
/// the one rustls connection, so that it uses both cores as `TokioClient`
/// (a driver task and the callers' tasks) may.
async fn bare_rate_two_tasks(
    address: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    window: Duration,
) -> Result<f64> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let conn = ClientConnection::new(tls, ServerName::try_from("localhost")?)?;
    let conn = Arc::new(std::sync::Mutex::new(conn));
    let (mut reading, mut writing) = stream.into_split();
    let wake = Arc::new(tokio::sync::Notify::new());
    let answered = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (conn, wake) = (Arc::clone(&conn), Arc::clone(&wake));
        async move {
            let mut out = Vec::new();
            loop {
                out.clear();
                {
                    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    while conn.wants_write() {
                        if conn.write_tls(&mut out).is_err() {
                            return;
                        }
                    }
                }
                if out.is_empty() {
                    wake.notified().await;
                } else if writing.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    });
    let reader = tokio::spawn({
        let (conn, wake, answered) = (Arc::clone(&conn), Arc::clone(&wake), Arc::clone(&answered));
        async move {
            let mut txn = 0u16;
            let mut batch = Vec::with_capacity(IN_FLIGHT * 12);
            for _ in 0..IN_FLIGHT {
                txn = txn.wrapping_add(1);
                batch.extend_from_slice(&request(txn));
            }
            {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                std::io::Write::write_all(&mut conn.writer(), &batch)?;
            }
            wake.notify_one();
            let mut buf = vec![0u8; 16 * 1024];
            let mut plain = Vec::new();
            loop {
                let n = reading.read(&mut buf).await?;
                if n == 0 {
                    bail!("the echo server closed the connection");
                }
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let whole = answer_each(&mut conn, &buf[..n], &mut plain, &mut batch, &mut txn)?;
                drop(conn);
                answered.fetch_add(whole as u64, Ordering::Relaxed);
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (started, before) = (Instant::now(), answered.load(Ordering::Relaxed));
    tokio::time::sleep(window).await;
    let counted = answered.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    let failed = reader.is_finished();
    reader.abort();
    writer.abort();
    if failed {
        bail!("the bare load generator stopped during the measurement");
    }
    Ok(counted as f64 / elapsed.as_secs_f64())
}

/// The generator with `callers` caller tasks in front of it: each caller
/// hands its request to the connection's task through a channel and
/// waits on a oneshot for the answer, as every design that serves calls
/// from many tasks on one connection must (a caller whose answer another
/// task read is woken by that task). Nothing else: no session, no
/// transaction table, no timeouts. What it loses to the one-task
/// generator is the price of the hand-offs and wake-ups themselves.
async fn bare_rate_with_callers(
    address: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    window: Duration,
    callers: usize,
) -> Result<f64> {
    type Waiter = tokio::sync::oneshot::Sender<()>;
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (calls, mut queued) = tokio::sync::mpsc::channel::<Waiter>(callers);
    let connection = tokio::spawn(async move {
        let mut conn = ClientConnection::new(tls, ServerName::try_from("localhost")?)?;
        let (mut buf, mut out, mut plain) = (vec![0u8; 16 * 1024], Vec::new(), Vec::new());
        let mut waiting = std::collections::VecDeque::with_capacity(callers);
        let mut batch = Vec::with_capacity(callers * 12);
        let mut txn = 0u16;
        loop {
            send_tls(&mut conn, &mut stream, &mut out).await?;
            tokio::select! {
                read = stream.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        bail!("the echo server closed the connection");
                    }
                    for _ in 0..whole_answers(&mut conn, &buf[..n], &mut plain)? {
                        if let Some(waiter) = waiting.pop_front() {
                            let _ = Waiter::send(waiter, ());
                        }
                    }
                }
                call = queued.recv() => {
                    let Some(first) = call else { return Ok(()) };
                    batch.clear();
                    let mut next = Some(first);
                    while let Some(waiter) = next {
                        txn = txn.wrapping_add(1);
                        batch.extend_from_slice(&request(txn));
                        waiting.push_back(waiter);
                        next = queued.try_recv().ok();
                    }
                    std::io::Write::write_all(&mut conn.writer(), &batch)?;
                }
            }
        }
    });
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (calls, answered) = (calls.clone(), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            loop {
                let (waiter, answer) = tokio::sync::oneshot::channel();
                if calls.send(waiter).await.is_err() || answer.await.is_err() {
                    return;
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    drop(calls);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (started, before) = (Instant::now(), answered.load(Ordering::Relaxed));
    tokio::time::sleep(window).await;
    let counted = answered.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    connection.abort();
    // A connection that ended before it was stopped says why.
    if let Ok(ended) = connection.await {
        ended.context("the generator behind callers stopped during the measurement")?;
    }
    Ok(counted as f64 / elapsed.as_secs_f64())
}

/// `TokioClient`: `in_flight` tasks calling on one connection.
async fn tokio_client_rate(
    address: SocketAddr,
    config: mbaps_session::ClientConfig,
    window: Duration,
    in_flight: usize,
) -> Result<f64> {
    let client = TokioClient::connect(address, config, ServerName::try_from("localhost")?).await?;
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (client, count, failed) = (client.clone(), Arc::clone(&count), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            loop {
                match client.read_holding_registers(1, 0, 10).await {
                    Ok(values) if values.len() == 10 => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (started, before) = (Instant::now(), count.load(Ordering::Relaxed));
    tokio::time::sleep(window).await;
    let counted = count.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    if failed.load(Ordering::Relaxed) {
        bail!("a TokioClient call failed during the measurement");
    }
    Ok(counted as f64 / elapsed.as_secs_f64())
}
