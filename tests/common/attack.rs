//! What an attacker does to a server, over real loopback sockets: silent
//! connects, ClientHellos a byte at a time, bursts of connects, TLS
//! clients that write and never read. Connections come from addresses of
//! 127.0.0.0/8 so that both the global and the per-address handshake
//! bounds are reached. Attackers keep real time.
#![allow(clippy::disallowed_methods)]

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mbaps_codec::{MbapHeader, Request, encode_request};
use mbaps_session::rustls;
use mbaps_session::rustls::pki_types::CertificateDer;

use super::{chain, key, localhost, pki, runtime};

/// A TCP connection to `server` from 127.0.0.`source`.
pub fn connect_from(source: u8, server: SocketAddr) -> std::io::Result<TcpStream> {
    connect_with(source, server, None)
}

/// A TCP connection to `server` from 127.0.0.`source`, with small socket
/// buffers if `small_buffers` gives their size: a peer that stops reading
/// is then noticed after kilobytes, not megabytes.
pub fn connect_with(
    source: u8,
    server: SocketAddr,
    small_buffers: Option<u32>,
) -> std::io::Result<TcpStream> {
    runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = small_buffers {
            socket.set_recv_buffer_size(size)?;
            socket.set_send_buffer_size(size)?;
        }
        let from = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, source), 0);
        socket.bind(from.into())?;
        let stream = socket.connect(server).await?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// `count` connections to `server`, spread over the sources 127.0.0.2 ..
/// 127.0.0.(1 + sources), that send nothing.
pub fn silent(server: SocketAddr, count: usize, sources: u8) -> Vec<TcpStream> {
    (0..count)
        .map(|i| connect_from(2 + (i % usize::from(sources)) as u8, server).unwrap())
        .collect()
}

/// The first flight of a real client: a whole ClientHello.
pub fn client_hello() -> Vec<u8> {
    let config = super::role_config("viewer");
    let mut client = mbaps_session::Client::new(&config, localhost(), Instant::now()).unwrap();
    let mut hello = Vec::new();
    client.poll_transmit(&mut hello);
    assert!(hello.len() > 100, "a ClientHello, not {hello:?}");
    hello
}

/// Connections that each send a ClientHello one byte per `pace`, from a
/// single thread, until dropped.
pub struct Dribblers {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Dribblers {
    pub fn start(server: SocketAddr, count: usize, sources: u8, pace: Duration) -> Dribblers {
        let mut streams = silent(server, count, sources);
        let hello = client_hello();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut sent = 0;
            for byte in hello.iter().cycle() {
                for stream in &mut streams {
                    // A dropped connection fails: the server is done with it.
                    if stream.write_all(&[*byte]).is_ok() {
                        sent += 1;
                    }
                }
                let resume = Instant::now() + pace;
                while Instant::now() < resume {
                    if stopping.load(Ordering::Relaxed) {
                        return sent;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            sent
        });
        Dribblers {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns how many bytes were dribbled.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

/// A TLS client with `credential` that completes its handshake and then
/// writes requests (each asking for 125 registers) without ever reading,
/// until the server stops taking them. Returns the connection, held open.
pub fn flood_without_reading(
    server: SocketAddr,
    credential: &mbaps_test_pki::Credential,
) -> (rustls::ClientConnection, TcpStream) {
    let mut conn =
        rustls::ClientConnection::new(raw_client_config(credential), localhost()).unwrap();
    let mut stream = connect_with(1, server, Some(8 * 1024)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut stream).unwrap();
    }
    let mut batch = Vec::new();
    for transaction_id in 0..256u16 {
        let header = MbapHeader {
            transaction_id,
            unit_id: 1,
        };
        let request = Request::ReadHoldingRegisters {
            address: 0,
            quantity: 125,
        };
        let mut adu = [0u8; 260];
        let n = encode_request(header, &request, &mut adu).unwrap();
        batch.extend_from_slice(&adu[..n]);
    }
    stream
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut written = 0usize;
    loop {
        if !conn.wants_write() {
            conn.writer().write_all(&batch).unwrap();
        }
        match conn.write_tls(&mut stream) {
            Ok(n) => written += n,
            // The server stopped reading: it pushes back.
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (conn, stream);
            }
            // The server gave up on it first (its write timeout, or
            // admission), on a machine slow enough that the flood was
            // still being read: the client is stalled all the same.
            Err(error)
                if written > 0
                    && matches!(
                        error.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                    ) =>
            {
                return (conn, stream);
            }
            Err(error) => panic!("after {written} bytes: {error}"),
        }
        assert!(
            written < 256 << 20,
            "the server read 256 MiB of requests from a client that never reads"
        );
    }
}

/// A bare rustls client configuration with `credential`, trusting the
/// test CA: for clients that misbehave below the session.
pub fn raw_client_config(credential: &mbaps_test_pki::Credential) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(mbaps_session::crypto_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki().ca.cert_der.clone()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain(credential), key(credential))
        .unwrap();
    Arc::new(config)
}

/// The server's connections still open: loopback sockets in ESTABLISHED
/// state whose local port is the server's (accepted or waiting to be).
pub fn server_sockets(port: u16) -> usize {
    established_tcp()
        .filter(|socket| socket.local_port == port)
        .count()
}

/// An IPv4 TCP socket of this machine, as `/proc/net/tcp` shows it.
pub struct TcpSocketRow {
    pub local_port: u16,
    pub remote_port: u16,
    /// Bytes sent and not yet acknowledged.
    pub send_queue: usize,
}

/// The ESTABLISHED IPv4 TCP sockets of this machine.
pub fn established_tcp() -> impl Iterator<Item = TcpSocketRow> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let rows: Vec<TcpSocketRow> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: usize| {
                let hex = fields.get(field)?.rsplit(':').next()?;
                u16::from_str_radix(hex, 16).ok()
            };
            let send_queue = fields.get(4)?.split(':').next()?;
            (*fields.get(3)? == "01").then_some(())?;
            Some(TcpSocketRow {
                local_port: port(1)?,
                remote_port: port(2)?,
                send_queue: usize::from_str_radix(send_queue, 16).ok()?,
            })
        })
        .collect();
    rows.into_iter()
}

/// Threads of this process.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Resident memory of this process, in KiB.
pub fn resident_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// The ADU of `request`, unit 1, under `transaction_id`.
pub fn adu(transaction_id: u16, request: &Request<'_>) -> Vec<u8> {
    let header = MbapHeader {
        transaction_id,
        unit_id: 1,
    };
    let mut adu = [0u8; 260];
    let n = encode_request(header, request, &mut adu).unwrap();
    adu[..n].to_vec()
}

/// A TCP connection to `server` that resets when dropped (SO_LINGER 0).
pub fn resetting_tcp(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    stream
}

/// A TLS session with the client `role` of the shared PKI, its handshake
/// done, over a [`resetting_tcp`] connection.
pub fn resetting_tls(
    server: SocketAddr,
    role: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = raw_client_config(pki().client(role).unwrap());
    let conn = rustls::ClientConnection::new(config, localhost()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, resetting_tcp(server));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}
