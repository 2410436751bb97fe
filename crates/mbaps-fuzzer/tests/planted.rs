//! The fuzzer against a device written here with a defect of each class
//! planted: with a fixed seed it finds every one, each replay file
//! reproduces its finding, and minimization leaves a few requests. Against
//! a device without defects, and against `mbaps server`, it finds nothing;
//! and the same seed sends the same bytes.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_authz::Policy;
use mbaps_authz::Role;
use mbaps_fuzzer::{FindingKind, Options, Scope, Target, parse_replay, replay, run_campaign};
use mbaps_session::{Server, ServerConfig};
use mbaps_simulator::{RegisterMap, Tables};

/// The defects a device may have planted.
#[derive(Clone, Copy, Debug, Default)]
struct Defects {
    /// A read of 0 holding registers brings the whole device down for a
    /// moment.
    crash: bool,
    /// The crash is for good.
    for_good: bool,
    /// A read of 126 input registers hangs its connection.
    hang: bool,
    /// A read of 2000 coils is answered under another transaction id.
    wrong_transaction: bool,
    /// A read of device identification by individual access is answered
    /// twice.
    twice: bool,
}

/// The device: a plain Modbus/TCP server (mbaps's session and register
/// map) behind a layer that plants the defects.
struct Device {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.address);
    }
}

fn config() -> ServerConfig {
    let policy = Policy::from_toml("[roles.any]\nallow = [{ functions = [\"all\"] }]\n").unwrap();
    ServerConfig::plain(policy, Some(Role::new("any").unwrap()))
        .build()
        .unwrap()
}

fn device(defects: Defects) -> Device {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let down_until: Arc<Mutex<Option<Instant>>> = Arc::default();
    let map = Arc::new(RegisterMap::new(Tables::preset()));
    let stopping = Arc::clone(&stop);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::Acquire) {
                return;
            }
            let Ok(stream) = stream else { continue };
            if down_until
                .lock()
                .unwrap()
                .is_some_and(|t| Instant::now() < t)
            {
                // Down: the connection is reset at once.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                continue;
            }
            let (map, down_until) = (Arc::clone(&map), Arc::clone(&down_until));
            std::thread::spawn(move || serve(stream, defects, &map, &down_until));
        }
    });
    Device { address, stop }
}

/// One connection: frames go to an mbaps session, unless a defect takes
/// them.
fn serve(
    mut stream: TcpStream,
    defects: Defects,
    map: &Arc<RegisterMap>,
    down_until: &Mutex<Option<Instant>>,
) {
    let _ = stream.set_nodelay(true);
    let mut session = Server::new(&config(), Instant::now()).unwrap();
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    let mut hung = false;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hung {
            continue;
        }
        input.extend_from_slice(&buf[..n]);
        while input.len() >= 7 {
            let length = usize::from(u16::from_be_bytes([input[4], input[5]]));
            let end = 6 + length;
            if input.len() < end {
                break;
            }
            let frame: Vec<u8> = input.drain(..end).collect();
            let pdu = frame.get(7..).unwrap_or(&[]);
            if defects.crash && pdu.len() == 5 && pdu[0] == 0x03 && pdu[3..5] == [0, 0] {
                let down = if defects.for_good {
                    Duration::from_secs(3600)
                } else {
                    Duration::from_millis(200)
                };
                *down_until.lock().unwrap() = Some(Instant::now() + down);
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
            if defects.hang && pdu.len() == 5 && pdu[0] == 0x04 && pdu[3..5] == [0, 126] {
                hung = true;
                break;
            }
            let now = Instant::now();
            session.handle_tls(now, &frame);
            session.answer_requests(now, map.as_ref());
            while session.poll_event().is_some() {}
            let mut out = Vec::new();
            session.poll_transmit(&mut out);
            if defects.wrong_transaction
                && out.len() >= 2
                && pdu.len() == 5
                && pdu[0] == 0x01
                && pdu[3..5] == [0x07, 0xD0]
            {
                let txn = u16::from_be_bytes([out[0], out[1]]).wrapping_add(1000);
                out[..2].copy_from_slice(&txn.to_be_bytes());
            }
            if defects.twice && pdu.len() == 4 && pdu[..3] == [0x2B, 0x0E, 0x04] {
                let again = out.clone();
                out.extend_from_slice(&again);
            }
            if stream.write_all(&out).is_err() || session.is_closed() {
                return;
            }
        }
    }
}

fn plain(address: SocketAddr) -> Target {
    Target { address, tls: None }
}

fn options(target: Target, out: &str, requests: u64) -> Options {
    let mut options = Options::new(target);
    options.seed = 7;
    options.duration = None;
    options.requests = Some(requests);
    options.timeout = Duration::from_millis(200);
    options.recovery = Duration::from_secs(5);
    options.minimize_attempts = 12;
    options.out = std::env::temp_dir().join(format!("mbaps-fuzz-{out}-{}", std::process::id()));
    options
}

#[test]
fn every_planted_defect_is_found_replayed_and_minimized() {
    let device = device(Defects {
        crash: true,
        hang: true,
        wrong_transaction: true,
        twice: true,
        ..Defects::default()
    });
    let options = options(plain(device.address), "planted", 1_500);
    let report = run_campaign(&options, &mut |_| {}).unwrap();
    assert!(report.lost.is_none(), "{:?}", report.lost);
    let found = |kind: FindingKind, function: u8| {
        report
            .findings
            .iter()
            .find(|f| f.kind == kind && f.function == Some(function))
            .unwrap_or_else(|| panic!("no {kind} on 0x{function:02X}: {:#?}", report.findings))
    };
    let planted = [
        found(FindingKind::Crash, 0x03),
        found(FindingKind::Hang, 0x04),
        found(FindingKind::InvalidResponse, 0x01),
        found(FindingKind::DuplicateResponse, 0x2B),
    ];
    assert!(report.restarts >= 1, "the crash was waited out");
    for finding in planted {
        assert!(
            finding.requests <= 3,
            "{finding:?}: minimized to {} requests",
            finding.requests
        );
        let text = std::fs::read_to_string(&finding.replay).unwrap();
        let file = parse_replay(&text).unwrap();
        assert_eq!(file.kind, finding.kind);
        assert_eq!(file.seed, "7");
        // The device comes back from a crash before the next replay.
        std::thread::sleep(Duration::from_millis(400));
        let replayed = replay(&plain(device.address), &file).unwrap();
        assert!(replayed.reproduced, "{finding:?}: {:?}", replayed.verdicts);
    }
    let _ = std::fs::remove_dir_all(&options.out);
}

#[test]
fn a_device_without_defects_gives_no_finding_and_a_seed_sends_the_same_bytes() {
    let device = device(Defects::default());
    let mut options = options(plain(device.address), "clean", 3_000);
    options.scope = Scope::new(true);
    let first = run_campaign(&options, &mut |_| {}).unwrap();
    assert!(first.findings.is_empty(), "{:#?}", first.findings);
    let again = run_campaign(&options, &mut |_| {}).unwrap();
    assert_eq!(again.requests, first.requests);
    assert_eq!(
        again.sent_digest, first.sent_digest,
        "the same seed, the same bytes"
    );
    options.seed = 8;
    let other = run_campaign(&options, &mut |_| {}).unwrap();
    assert_ne!(other.sent_digest, first.sent_digest);
}

#[test]
fn a_device_that_does_not_come_back_is_lost_with_its_finding_kept() {
    let device = device(Defects {
        crash: true,
        for_good: true,
        ..Defects::default()
    });
    let mut options = options(plain(device.address), "lost", 5_000);
    options.recovery = Duration::from_millis(600);
    let report = run_campaign(&options, &mut |_| {}).unwrap();
    let lost = report.lost.expect("the device was lost");
    assert!(lost.contains("did not come back"), "{lost}");
    assert!(report.requests < 5_000, "the campaign stopped");
    let crash = &report.findings[0];
    assert_eq!(crash.kind, FindingKind::Crash);
    assert!(crash.replay.exists(), "kept, unminimized");
    let _ = std::fs::remove_dir_all(&options.out);
}
