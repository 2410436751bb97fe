//! The gateway in front of a serial bus, over pseudo-terminals made by the
//! test: TLS clients with roles reach the simulator served as an RTU
//! device (`serve_rtu`) on another pseudo-terminal, the two joined by a
//! relay as a null-modem cable would; and a device scripted byte by byte
//! on the line shows what the gateway does with noise, a corrupted answer
//! (retried), another unit's answer, a truncated frame, silence, and a
//! broadcast.
#![cfg(unix)]
#![allow(clippy::disallowed_methods)] // real ports keep real time

mod common;

use common::gateway::{client, exception, tls_front};

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{pki, runtime};
use mbaps_codec::rtu::{RtuDecoded, RtuFrame, RtuFrameKind, decode_rtu};
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::ClientError;
use mbaps_session::rtu_server::RtuServer;
use mbaps_session::upstream::rtu::{LineCounters, RtuOptions};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::serial::{Parity, SerialLine, SerialPort, serve_rtu};
use mbaps_tokio::{AsyncCalls, Device, Gateway, GatewayError, TokioServer, UpstreamLimits};

/// A pseudo-terminal: its master, and its slave's path.
fn pty() -> (OwnedFd, PathBuf) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    (master, PathBuf::from(name.to_string_lossy().into_owned()))
}

/// Copies bytes from `from` to `to` until either ends.
fn pipe(from: OwnedFd, to: OwnedFd) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = rustix::io::read(&from, &mut buf) {
            if n == 0 || rustix::io::write(&to, &buf[..n]).is_err() {
                return;
            }
        }
    });
}

/// Joins two pseudo-terminals' masters: what is written to one slave is
/// read from the other.
fn null_modem(a: OwnedFd, b: OwnedFd) {
    pipe(a.try_clone().unwrap(), b.try_clone().unwrap());
    pipe(b, a);
}

/// The simulator as RTU unit 1 on a pseudo-terminal joined to another,
/// whose port is returned (for the gateway). Within a runtime.
fn simulator_on_a_line() -> PathBuf {
    let (gateway_master, gateway_port) = pty();
    let (device_master, device_port) = pty();
    null_modem(gateway_master, device_master);
    let device = SerialPort::open(&line(&device_port)).unwrap();
    tokio::spawn(serve_rtu(
        device,
        RtuServer::new([1]),
        RegisterMap::new(Tables::preset()),
    ));
    gateway_port
}

/// Parity none: a pseudo-terminal clears parity.
fn line(path: &std::path::Path) -> SerialLine {
    SerialLine {
        parity: Parity::None,
        ..SerialLine::new(path)
    }
}

fn limits(timeout_ms: u64) -> UpstreamLimits {
    UpstreamLimits {
        timeout: Duration::from_millis(timeout_ms),
        ..UpstreamLimits::default()
    }
}

#[test]
fn roles_reach_the_simulator_on_a_serial_line_and_broadcasts_are_answered_after_the_turnaround() {
    runtime().block_on(async {
        let gateway_port = simulator_on_a_line();
        let gateway = Gateway::builder()
            .route(
                0..=247,
                Device::serial(line(&gateway_port)).limits(limits(1_000)),
                None,
            )
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        let operator = client(&front, "operator").await;

        let before = viewer.read_holding_registers(1, 100, 3).await.unwrap();
        assert_eq!(before.len(), 3);
        let denied = viewer.write_single_register(1, 100, 4242).await;
        assert_eq!(exception(denied), ExceptionCode::IllegalFunction);
        operator.write_single_register(1, 100, 4242).await.unwrap();
        assert_eq!(
            viewer.read_holding_registers(1, 100, 1).await.unwrap(),
            [4242]
        );
        // Another unit on the bus: nobody answers.
        let absent = viewer.read_holding_registers(2, 100, 1).await;
        assert_eq!(
            exception(absent),
            ExceptionCode::GatewayTargetFailedToRespond
        );

        // A broadcast write: answered with the write's normal response
        // once the turnaround has passed, carried out by the device.
        let started = Instant::now();
        operator.write_single_register(0, 101, 77).await.unwrap();
        assert!(started.elapsed() >= RtuOptions::default().turnaround);
        assert_eq!(
            viewer.read_holding_registers(1, 101, 1).await.unwrap(),
            [77]
        );
        // A read cannot be broadcast.
        let read_all = operator.read_holding_registers(0, 100, 1).await;
        assert_eq!(exception(read_all), ExceptionCode::GatewayPathUnavailable);
        // A user-defined function has no RTU length rule.
        let custom = operator
            .request(
                1,
                &Request::UserDefined {
                    function: 0x41,
                    data: &[1, 2],
                },
            )
            .await;
        match custom {
            Ok(pdu) => assert_eq!(pdu.as_bytes(), [0xC1, 0x01]),
            other => assert_eq!(exception(other), ExceptionCode::IllegalFunction),
        }
        front.shutdown().await.unwrap();
    });
}

/// The requests the scripted device reads from its master, one at a time.
fn read_request(master: &OwnedFd, held: &mut Vec<u8>) -> (u8, Vec<u8>) {
    let mut buf = [0u8; 256];
    loop {
        if let Ok(RtuDecoded::Frame { frame, consumed }) = decode_rtu(held, RtuFrameKind::Request) {
            let request = (frame.unit_id, frame.pdu.to_vec());
            held.drain(..consumed);
            return request;
        }
        let n = rustix::io::read(master, &mut buf).unwrap();
        held.extend_from_slice(&buf[..n]);
    }
}

fn rtu(unit_id: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; 256];
    let len = RtuFrame { unit_id, pdu }.encode(&mut out).unwrap();
    out[..len].to_vec()
}

#[test]
fn noise_a_corrupted_answer_another_unit_and_silence_on_the_line() {
    runtime().block_on(async {
        let (master, port) = pty();
        // The scripted device answers register `n` with the value `n`, in
        // the way each request's address asks.
        let script = std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut requests = 0;
            let mut corrupted = false;
            loop {
                let (unit, pdu) = read_request(&master, &mut held);
                requests += 1;
                let address = u16::from_be_bytes([pdu[1], pdu[2]]);
                let [hi, lo] = address.to_be_bytes();
                let good = rtu(unit, &[0x03, 2, hi, lo]);
                let mut wire = Vec::new();
                match address {
                    // Noise, then the answer.
                    1 => wire.extend_from_slice(&[0xFF, 0x00, 0x13, 0x7F]),
                    // A corrupted byte: the gateway retries; the retry is
                    // answered rightly.
                    2 if !corrupted => {
                        corrupted = true;
                        let mut bad = good.clone();
                        bad[3] ^= 0x20;
                        rustix::io::write(&master, &bad).unwrap();
                        continue;
                    }
                    // Another unit answers first.
                    3 => wire.extend_from_slice(&rtu(unit + 1, &[0x03, 2, 0, 0])),
                    // The first half of a frame, then the whole answer.
                    4 => wire.extend_from_slice(&good[..4]),
                    // Silence.
                    5 => continue,
                    // Late: after the timeout (300 ms), each attempt.
                    9 => std::thread::sleep(Duration::from_millis(350)),
                    // Stop.
                    6 => return requests,
                    _ => {}
                }
                wire.extend_from_slice(&good);
                rustix::io::write(&master, &wire).unwrap();
            }
        });
        let options = RtuOptions {
            retries: 1,
            ..RtuOptions::default()
        };
        let counted = std::sync::Arc::new(std::sync::Mutex::new(LineCounters::default()));
        let sum = std::sync::Arc::clone(&counted);
        let gateway = Gateway::builder()
            .route(
                1..=247,
                Device::serial(line(&port))
                    .limits(limits(300))
                    .rtu_options(options),
                None,
            )
            .on_line_counters(move |_, more| {
                let mut sum = sum.lock().unwrap();
                *sum = sum.plus(more);
            })
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        for address in [1, 2, 3, 4, 7] {
            assert_eq!(
                viewer.read_holding_registers(9, address, 1).await.unwrap(),
                [address],
                "register {address}"
            );
        }
        let silent = viewer.read_holding_registers(9, 5, 1).await;
        assert_eq!(
            exception(silent),
            ExceptionCode::GatewayTargetFailedToRespond
        );
        // Answered late, twice: 0x0B; the late answers are discarded
        // while the line waits its turnaround, not taken for the next
        // read's (RTU frames carry no transaction id).
        let late = viewer.read_holding_registers(9, 9, 1).await;
        assert_eq!(exception(late), ExceptionCode::GatewayTargetFailedToRespond);
        assert_eq!(viewer.read_holding_registers(9, 10, 1).await.unwrap(), [10]);
        let _ = viewer.read_holding_registers(9, 6, 1).await;
        // 1, 2 twice, 3, 4, 7, 5 twice (a read is retried), 9 twice, 10, 6.
        assert_eq!(script.join().unwrap(), 12);
        // What the bus's metrics read: the corrupted answer, the other
        // unit's, the timeouts and retries, the time the line was held.
        let counted = *counted.lock().unwrap();
        assert!(counted.requests >= 8, "{counted:?}");
        // The corrupted answer, and noise that looked like a frame.
        assert!((1..=2).contains(&counted.crc_errors), "{counted:?}");
        // Another unit's answer, and the two late ones.
        assert!(counted.discarded >= 3, "{counted:?}");
        assert!(counted.timeouts >= 5 && counted.retries >= 3, "{counted:?}");
        assert!(counted.busy >= Duration::from_millis(600), "{counted:?}");
        front.shutdown().await.unwrap();
    });
}

#[test]
fn a_missing_port_and_routes_disagreeing_on_a_bus_are_errors_before_anything_listens() {
    runtime().block_on(async {
        let missing = Gateway::to(Device::serial(line(std::path::Path::new(
            "/dev/mbaps-missing",
        ))));
        match missing {
            Err(GatewayError::Serial(error)) => {
                assert!(error.to_string().contains("/dev/mbaps-missing"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        let (_master, port) = pty();
        let fast = SerialLine {
            baud: 38_400,
            ..line(&port)
        };
        let two = Gateway::builder()
            .route(1..=10, Device::serial(line(&port)), None)
            .route(11..=20, Device::serial(fast), None)
            .start();
        assert!(
            matches!(
                two,
                Err(GatewayError::SharedDeviceDiffers {
                    what: "line settings",
                    ..
                })
            ),
            "{two:?}"
        );
        let pipelined = Gateway::to(Device::serial(line(&port)).limits(UpstreamLimits {
            in_flight: 2,
            ..UpstreamLimits::default()
        }));
        assert!(
            matches!(pipelined, Err(GatewayError::Limits { .. })),
            "{pipelined:?}"
        );
    });
}

/// An RTU-over-TCP device: the simulator behind a converter, as a test
/// listener (each connection its own RTU server).
async fn rtu_over_tcp_device() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let map = RegisterMap::new(Tables::preset());
        while let Ok((mut tcp, _)) = listener.accept().await {
            let map = map.clone();
            tokio::spawn(async move {
                let mut server = RtuServer::new([1]);
                let mut buf = [0u8; 512];
                let mut out = Vec::new();
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    server.handle_bytes(&buf[..n], &map);
                    out.clear();
                    server.poll_transmit(&mut out);
                    if tcp.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[test]
fn rtu_frames_over_tcp_reach_a_converter_s_device() {
    runtime().block_on(async {
        let device = rtu_over_tcp_device().await;
        let gateway =
            Gateway::to(Device::rtu_over_tcp(device.to_string()).limits(limits(1_000))).unwrap();
        let front = tls_front(gateway).await;
        let operator = client(&front, "operator").await;
        operator
            .write_multiple_registers(1, 200, &[1, 2, 3])
            .await
            .unwrap();
        assert_eq!(
            operator.read_holding_registers(1, 200, 3).await.unwrap(),
            [1, 2, 3]
        );
        let absent = operator.read_holding_registers(7, 200, 1).await;
        assert_eq!(
            exception(absent),
            ExceptionCode::GatewayTargetFailedToRespond
        );
        front.shutdown().await.unwrap();
    });
}

#[test]
fn the_serial_line_functions_are_forwarded_when_the_policy_grants_them_by_name() {
    use common::{ca, chain, key};
    runtime().block_on(async {
        let gateway_port = simulator_on_a_line();
        let gateway = Gateway::builder()
            .route(1..=247, Device::serial(line(&gateway_port)), None)
            .start()
            .unwrap();
        // The operator may use the serial-line functions; `all` grants the
        // viewer none of them.
        let policy = mbaps_authz::Policy::from_toml(
            "[roles.operator]\nallow = [{ functions = [\"read\", \"serial\"] }]\n\
             [roles.viewer]\nallow = [{ functions = [\"all\"] }]\n",
        )
        .unwrap();
        let pki = pki();
        let config = mbaps_session::ServerConfig::builder(
            ca(pki),
            chain(&pki.server),
            key(&pki.server),
            policy,
        )
        .build()
        .unwrap();
        let front = TokioServer::bind("127.0.0.1:0", config, gateway)
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let operator = client(&front, "operator").await;
        let viewer = client(&front, "viewer").await;
        let id = operator.report_server_id(1).await.unwrap();
        assert_eq!(&id[..2], [mbaps_simulator::SERVER_ID, 0xFF]);
        assert_eq!(
            operator.diagnostics(1, 0x0000, 0xA537).await.unwrap(),
            0xA537
        );
        let (_, events) = operator.get_comm_event_counter(1).await.unwrap();
        assert!(events >= 2, "{events}");
        operator.read_exception_status(1).await.unwrap();
        let denied = viewer.diagnostics(1, 0x0001, 0).await;
        assert_eq!(exception(denied), ExceptionCode::IllegalFunction);
        front.shutdown().await.unwrap();
    });
}

/// A device on a pseudo-terminal reached through a link (as a USB
/// adapter's stable name is): the simulator served on the master, in a
/// thread, until `stop`.
fn device_behind(
    link: &std::path::Path,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (master, port) = pty();
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&port, link).unwrap();
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let map = RegisterMap::new(Tables::preset());
        let mut server = RtuServer::new([1]);
        let mut buf = [0u8; 512];
        let mut out = Vec::new();
        while stopped.try_recv().is_err() {
            match rustix::io::read(&master, &mut buf) {
                Ok(n) if n > 0 => {
                    server.handle_bytes(&buf[..n], &map);
                    out.clear();
                    server.poll_transmit(&mut out);
                    rustix::io::write(&master, &out).unwrap();
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        // The master closes: the port is gone, as an unplugged adapter's.
    });
    (stop, thread)
}

#[test]
fn a_port_that_goes_away_is_answered_0x0a_and_reopened_when_it_is_back() {
    runtime().block_on(async {
        let dir = std::env::temp_dir().join(format!("mbaps-unplug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("ttyUSB0");
        let (stop, thread) = device_behind(&link);
        let gateway = Gateway::builder()
            .route(
                1..=247,
                Device::serial(line(&link)).limits(limits(300)),
                None,
            )
            .start()
            .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        assert_eq!(viewer.read_holding_registers(1, 7, 1).await.unwrap(), [7]);
        // Unplugged.
        stop.send(()).unwrap();
        thread.join().unwrap();
        let _ = std::fs::remove_file(&link);
        let mut unreachable = false;
        for _ in 0..20 {
            match viewer.read_holding_registers(1, 7, 1).await {
                Err(ClientError::Exception(ExceptionCode::GatewayPathUnavailable)) => {
                    unreachable = true;
                    break;
                }
                Err(ClientError::Exception(ExceptionCode::GatewayTargetFailedToRespond)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(unreachable, "never 0x0A while the port was gone");
        // Plugged in again (another pseudo-terminal behind the same name):
        // reopened within the backoff, at most 5 s.
        let (stop, thread) = device_behind(&link);
        let back = Instant::now();
        loop {
            match viewer.read_holding_registers(1, 8, 1).await {
                Ok(values) => {
                    assert_eq!(values, [8]);
                    break;
                }
                Err(_) if back.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("not reopened: {error}"),
            }
        }
        front.shutdown().await.unwrap();
        stop.send(()).unwrap();
        thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_route_to_a_bus_cannot_rewrite_units_to_a_broadcast() {
    runtime().block_on(async {
        let (_master, port) = pty();
        for unit in [0, 248, 255] {
            let route = Gateway::builder()
                .route(1..=10, Device::serial(line(&port)), Some(unit))
                .start();
            assert!(
                matches!(route, Err(GatewayError::RtuUnit { unit: found, .. }) if found == unit),
                "{route:?}"
            );
        }
    });
}

#[test]
fn a_client_flooding_a_bus_never_gets_another_client_answered_busy() {
    runtime().block_on(async {
        let port = simulator_on_a_line();
        let gateway = Gateway::to(Device::serial(line(&port)).limits(UpstreamLimits {
            queue: 16,
            queue_per_session: Some(4),
            ..limits(2_000)
        }))
        .unwrap();
        let front = tls_front(gateway).await;
        let viewer = client(&front, "viewer").await;
        let operator = client(&front, "operator").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut flood = Vec::new();
        for _ in 0..32 {
            let (viewer, stop, busy) = (viewer.clone(), stop.clone(), busy.clone());
            flood.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(ClientError::Exception(ExceptionCode::ServerDeviceBusy)) =
                        viewer.read_holding_registers(1, 0, 10).await
                    {
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        // The operator, one read at a time, while the viewer keeps 32 in
        // flight on a bus that carries one: answered every time.
        for address in 0..20 {
            assert_eq!(
                operator
                    .read_holding_registers(1, address, 1)
                    .await
                    .unwrap(),
                [address]
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in flood {
            task.await.unwrap();
        }
        // The viewer past its share of the queue was answered busy.
        assert!(busy.load(std::sync::atomic::Ordering::Relaxed) > 0);
        front.shutdown().await.unwrap();
    });
}
