//! `--tap`: the plaintext capture an IDS reads, checked the way an IDS
//! and its operator meet it: read back by tshark (installed by `.ci/run`),
//! dissected as Modbus/TCP, each packet annotated, with no TCP analysis
//! warning; live through standard output and a FIFO; rotated, appended
//! to, reopened on SIGHUP; every request of a burst in it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    as_client, client_config, mbaps, metrics_address, pki, scrape, start_listening,
    start_server_with, text,
};
use mbaps_fuzzer::{Delivery, Link, Step, Target};
use mbaps_session::rustls::pki_types::ServerName;

/// One packet as tshark dissects it.
#[derive(Debug, Default, Clone)]
struct Frame {
    number: u64,
    stream: u64,
    flags: String,
    transaction: Option<u16>,
    unit: Option<u8>,
    function: Option<u8>,
    exception: Option<u8>,
    comments: Vec<String>,
    malformed: bool,
    time: f64,
}

impl Frame {
    fn is_query(&self) -> bool {
        self.function.is_some() && self.comments.iter().any(|c| c.starts_with("request;"))
    }

    fn is_response(&self) -> bool {
        self.function.is_some() && self.comments.iter().any(|c| c.starts_with("response;"))
    }

    fn comment(&self) -> String {
        self.comments.join(" | ")
    }
}

/// `tshark ARGS`, its standard output; it must succeed.
fn tshark(args: &[&str]) -> String {
    let output = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs (.ci/run installs it: apt-get install tshark)");
    assert!(
        output.status.success(),
        "tshark {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Every packet of the capture at `path`, dissected.
fn frames(path: &Path) -> Vec<Frame> {
    let out = tshark(&[
        "-r",
        path.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "aggregator=\u{1}",
        "-e",
        "frame.number",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.flags.str",
        "-e",
        "mbtcp.trans_id",
        "-e",
        "mbtcp.unit_id",
        "-e",
        "modbus.func_code",
        "-e",
        "modbus.exception_code",
        "-e",
        "frame.comment",
        "-e",
        "_ws.malformed",
        "-e",
        "frame.time_epoch",
    ]);
    out.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let num = |s: &str| s.split('\u{1}').next().and_then(|v| v.parse::<u64>().ok());
            Frame {
                number: num(f[0]).unwrap(),
                stream: num(f[1]).unwrap(),
                flags: f[2].to_owned(),
                transaction: num(f[3]).map(|n| n as u16),
                unit: num(f[4]).map(|n| n as u8),
                function: num(f[5]).map(|n| n as u8),
                exception: num(f[6]).map(|n| n as u8),
                comments: f[7]
                    .split('\u{1}')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                malformed: !f[8].is_empty(),
                time: f[9].parse().unwrap(),
            }
        })
        .collect()
}

/// The frames tshark's expert info rates a warning or worse, with why:
/// TCP analysis (a retransmission, a lost segment, segments out of
/// order) and the dissectors'. Malformed packets are counted apart
/// ([`Frame::malformed`]), and so is the warning every RST carries (a
/// dropped session ends with one, on purpose).
fn warnings(path: &Path) -> Vec<String> {
    tshark(&[
        "-r",
        path.to_str().unwrap(),
        // Checksums too: the capture's are computed, not left blank.
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-Y",
        "_ws.expert.severity >= 6291456 && !_ws.malformed && !tcp.connection.rst",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// A raw session with the viewer's certificate: ADUs the clients of
/// mbaps would never send.
fn raw_viewer(dir: &Path, host: &str) -> Link {
    let config = client_config(dir, "viewer");
    let target = Target {
        address: host.parse::<SocketAddr>().unwrap(),
        tls: Some((
            Arc::new(config.tls().unwrap().clone()),
            ServerName::try_from("localhost").unwrap(),
        )),
    };
    Link::connect(&target, Duration::from_secs(5)).unwrap()
}

/// Waits until `log` has `count` lines containing `needle`.
#[allow(clippy::disallowed_methods)] // waits for a real server
fn wait_for_log(log: &Path, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {count}× {needle:?} in {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // waits for a real server
fn the_servers_tap_is_modbus_tcp_with_who_asked_and_what_was_decided() {
    let dir = pki("tap-server");
    let capture = dir.join("tap.pcapng");
    let (server, host) = start_server_with(&dir, &["--tap", capture.to_str().unwrap()]);
    // Allowed, then denied: one session each.
    let read = as_client(&dir, &host, "viewer", &["read", "holding", "100", "3"]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    let write = as_client(&dir, &host, "viewer", &["write", "holding", "100", "7"]);
    assert!(!write.status.success());
    // Malformed on purpose: a read of holding registers without its
    // quantity (rejected: 0x03), then a frame the server cannot follow
    // (an MBAP length of 0): the session is dropped.
    let mut link = raw_viewer(&dir, &host);
    link.send(&[Step::new(
        vec![0x00, 0x2A, 0x00, 0x00, 0x00, 0x04, 0x01, 0x03, 0x00, 0x64],
        Delivery::Record,
    )])
    .unwrap();
    let _ = link.read(Instant::now() + Duration::from_secs(5));
    link.send(&[Step::new(
        vec![0x00, 0x2B, 0x00, 0x00, 0x00, 0x00],
        Delivery::Record,
    )])
    .unwrap();
    let log = dir.join("server.log");
    wait_for_log(&log, " ended (", 2);
    wait_for_log(&log, " failed: the Modbus stream cannot be followed", 1);
    server.terminate();

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&capture).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the capture holds plaintext: 0600");

    let frames = frames(&capture);
    let queries: Vec<&Frame> = frames.iter().filter(|f| f.is_query()).collect();
    let responses: Vec<&Frame> = frames.iter().filter(|f| f.is_response()).collect();
    assert_eq!((queries.len(), responses.len()), (3, 3), "{frames:#?}");
    // The allowed read.
    let (q, r) = (queries[0], responses[0]);
    assert_eq!((q.function, q.unit, q.exception), (Some(3), Some(1), None));
    assert_eq!((r.function, r.exception), (Some(3), None));
    assert_eq!(q.transaction, r.transaction);
    for frame in [q, r] {
        let comment = frame.comment();
        assert!(comment.contains("role=viewer"), "{comment}");
        assert!(comment.contains("decision=allowed"), "{comment}");
        assert!(comment.contains("subject=CN=client-viewer"), "{comment}");
        let fingerprint = comment.split("certificate sha256=").nth(1).unwrap();
        assert!(
            fingerprint[..64].chars().all(|c| c.is_ascii_hexdigit()),
            "{comment}"
        );
    }
    // The denied write: its 0x01 answer too, with the missing permission.
    let (q, r) = (queries[1], responses[1]);
    assert_eq!(
        (q.function, r.function, r.exception),
        (Some(6), Some(6), Some(1))
    );
    assert!(
        q.comment()
            .contains("decision=denied (no rule allows write single register (0x06))"),
        "{}",
        q.comment()
    );
    // The malformed request: the only malformed packet of the capture.
    let (q, r) = (queries[2], responses[2]);
    assert_eq!((q.transaction, r.exception), (Some(0x2A), Some(3)));
    assert!(q.comment().contains("decision=rejected"), "{}", q.comment());
    let malformed: Vec<u64> = frames
        .iter()
        .filter(|f| f.malformed)
        .map(|f| f.number)
        .collect();
    assert_eq!(malformed, vec![q.number], "{frames:#?}");
    // Each session: a SYN naming TLS, then an orderly FIN, or an RST for
    // the session dropped mid-way.
    let streams: Vec<Vec<&Frame>> = (0..3)
        .map(|s| frames.iter().filter(|f| f.stream == s).collect())
        .collect();
    for (n, stream) in streams.iter().enumerate() {
        assert!(stream[0].flags.contains('S'), "{stream:#?}");
        let first = stream[0].comment();
        assert!(
            first.contains("session start; tls=TLSv1_") && first.contains("suite=TLS"),
            "{first}"
        );
        let last = stream.last().unwrap();
        if n < 2 {
            assert!(stream.iter().any(|f| f.flags.contains('F')), "{stream:#?}");
            assert!(!last.flags.contains('R'), "{stream:#?}");
        } else {
            assert!(last.flags.contains('R'), "dropped: an RST: {stream:#?}");
            assert!(
                last.comment().contains("reason=failed"),
                "{}",
                last.comment()
            );
        }
    }
    assert_eq!(warnings(&capture), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gateways_tap_shows_what_reached_the_device_and_what_did_not() {
    let dir = pki("tap-gateway");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let policy = policy.to_str().unwrap();
    let (_device, device) = start_listening(
        &dir,
        "device.log",
        &[
            "server",
            "--plain",
            "--listen",
            "127.0.0.1:0",
            "--plain-role",
            "operator",
            "--policy",
            policy,
        ],
    );
    let capture = dir.join("gateway.pcapng");
    let file = |name: &str| dir.join(name).display().to_string();
    let (gateway, host) = start_listening(
        &dir,
        "server.log",
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &file("server-chain.pem"),
            "--key",
            &file("server.key"),
            "--ca",
            &file("ca.pem"),
            "--policy",
            policy,
            "--upstream",
            &device,
            "--tap",
            capture.to_str().unwrap(),
            "--tap-port",
            "5020",
        ],
    );
    let write = as_client(
        &dir,
        &host,
        "operator",
        &["write", "holding", "100", "4242"],
    );
    assert!(write.status.success(), "{}", text(&write.stderr));
    let denied = as_client(&dir, &host, "viewer", &["write", "holding", "100", "7"]);
    assert!(!denied.status.success());
    wait_for_log(&dir.join("server.log"), " ended (", 2);
    gateway.terminate();

    // Port 5020: decoded as Modbus/TCP by asking tshark to.
    let frames = {
        let out = tshark(&[
            "-r",
            capture.to_str().unwrap(),
            "-d",
            "tcp.port==5020,mbtcp",
            "-Y",
            "mbtcp",
            "-T",
            "fields",
            "-e",
            "tcp.dstport",
            "-e",
            "modbus.func_code",
            "-e",
            "modbus.exception_code",
            "-e",
            "frame.comment",
        ]);
        out.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(frames.len(), 4, "{frames:#?}");
    assert!(
        frames[0].starts_with("5020\t6\t\trequest; decision=allowed; role=operator"),
        "{frames:#?}"
    );
    assert!(frames[1].contains("\tresponse; decision=allowed; role=operator"));
    assert!(
        frames[2].starts_with("5020\t6\t\trequest; decision=denied"),
        "{frames:#?}"
    );
    assert!(frames[3].contains("\t6\t1\t") && frames[3].contains("decision=denied"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ten_thousand_requests_at_16_in_flight_are_all_in_the_capture_in_order() {
    let dir = pki("tap-burst");
    let capture = dir.join("burst.pcapng");
    let (server, host) = start_server_with(
        &dir,
        &[
            "--tap",
            capture.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
            "-q",
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use mbaps_tokio::{AsyncCalls, TokioClient};
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(host.as_str(), client_config(&dir, "viewer"), name)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for worker in 0..16u16 {
            let viewer = viewer.clone();
            tasks.push(tokio::spawn(async move {
                for n in (worker..10_000).step_by(16) {
                    viewer.read_holding_registers(1, n % 100, 1).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        viewer.close().await;
    });
    let (_, metrics) = scrape(&metrics_address(&dir.join("server.log")), "/metrics");
    assert!(
        !metrics.contains("mbaps_tap_dropped_total{"),
        "nothing dropped: {metrics}"
    );
    server.terminate();
    let frames = frames(&capture);
    let queries: Vec<&Frame> = frames.iter().filter(|f| f.is_query()).collect();
    let responses: Vec<&Frame> = frames.iter().filter(|f| f.is_response()).collect();
    assert_eq!((queries.len(), responses.len()), (10_000, 10_000));
    // In order: every response after its request, time never going back.
    let mut open = std::collections::HashSet::new();
    let mut last = 0.0;
    for frame in &frames {
        assert!(
            frame.time >= last,
            "frame {} goes back in time",
            frame.number
        );
        last = frame.time;
        if frame.is_query() {
            assert!(open.insert(frame.transaction), "{frame:?}");
        } else if frame.is_response() {
            assert!(
                open.remove(&frame.transaction),
                "answer before its request: {frame:?}"
            );
        }
    }
    assert!(open.is_empty());
    assert!(
        !frames.iter().any(|f| f.comment().contains("tap:")),
        "no gap noted"
    );
    assert_eq!(warnings(&capture), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[allow(clippy::disallowed_methods)] // waits for real processes
fn tshark_reads_the_tap_live_from_standard_output() {
    let dir = pki("tap-live");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let file = |name: &str| dir.join(name).display().to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--tap",
            "-",
            "--exit-after",
            "60",
        ])
        .args([
            "--cert",
            &file("server-chain.pem"),
            "--key",
            &file("server.key"),
        ])
        .args([
            "--ca",
            &file("ca.pem"),
            "--policy",
            policy.to_str().unwrap(),
        ])
        .env_remove("SSLKEYLOGFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let capture = server.stdout.take().unwrap();
    let mut tshark = Command::new("tshark")
        .args(["-i", "-", "-l", "-Y", "modbus", "-T", "fields"])
        .args(["-e", "modbus.func_code", "-e", "frame.comment"])
        .stdin(Stdio::from(capture))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tshark runs");
    // Every line of the program's own goes to standard error.
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let host = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server ended");
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let read = as_client(&dir, &host, "viewer", &["read", "holding", "100", "3"]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    // tshark prints the request while the server still runs.
    let (send, seen) = std::sync::mpsc::channel();
    let out = tshark.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let line = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("tshark saw the request live");
    assert!(
        line.starts_with("3\trequest; decision=allowed; role=viewer"),
        "{line}"
    );
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server still runs"
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = tshark.kill();
    let _ = tshark.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader of the FIFO at `path`, on a thread: it reads until it has a
/// session's end in whole blocks, then goes away; returns what it read.
fn fifo_reader(path: std::path::PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut file = std::fs::File::open(path).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            let n = file.read(&mut chunk).unwrap();
            if n == 0 {
                return bytes;
            }
            bytes.extend_from_slice(&chunk[..n]);
            let ended = bytes.windows(11).any(|w| w == b"session end");
            if ended && mbaps_observe::tap::ends_whole(&mut std::io::Cursor::new(&bytes)).unwrap() {
                return bytes;
            }
        }
    })
}

#[test]
#[allow(clippy::disallowed_methods)] // waits for a real server
fn a_fifo_reader_may_come_late_go_away_and_come_back() {
    let dir = pki("tap-fifo");
    let fifo = dir.join("tap.fifo");
    let made = Command::new("mkfifo")
        .args(["-m", "0600"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (server, host) = start_server_with(
        &dir,
        &["--tap", fifo.to_str().unwrap(), "--metrics", "127.0.0.1:0"],
    );
    let metrics = metrics_address(&dir.join("server.log"));
    let read = || {
        let out = as_client(&dir, &host, "viewer", &["read", "holding", "100", "1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let no_reader = || {
        let (_, body) = scrape(&metrics, "/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix("mbaps_tap_dropped_total{reason=\"no_reader\"} "))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    let settle = || std::thread::sleep(Duration::from_millis(500));
    // No reader yet: the server serves; the packets are dropped, counted.
    read();
    settle();
    let before_first = no_reader();
    assert!(
        before_first >= 8,
        "a session's packets dropped: {before_first}"
    );
    // A reader comes: a capture of its own, headers first; then it goes.
    let first = fifo_reader(fifo.clone());
    settle();
    read();
    let first = first.join().unwrap();
    settle();
    // Without a reader again: dropped; then a new reader gets the next
    // session, told of the gap.
    read();
    settle();
    let gone = no_reader();
    assert!(gone > before_first, "dropped after the reader left: {gone}");
    let second = fifo_reader(fifo.clone());
    settle();
    // A reload (SIGHUP) leaves a FIFO as it is: the reader reads on.
    let hup = Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    settle();
    read();
    let second = second.join().unwrap();
    server.terminate();
    for (n, bytes) in [first, second].iter().enumerate() {
        let path = dir.join(format!("read-{n}.pcapng"));
        std::fs::write(&path, bytes).unwrap();
        let frames = frames(&path);
        assert_eq!(
            frames.iter().filter(|f| f.is_query()).count(),
            1,
            "{frames:#?}"
        );
        assert!(frames[0].flags.contains('S'), "{frames:#?}");
        let gap = frames[0].comment();
        assert!(
            gap.contains("packets before this one were not written (no reader)"),
            "reader {n}: {gap}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_tap_rotates_by_size_and_every_file_is_a_capture_of_its_own() {
    let dir = pki("tap-rotation");
    let capture = dir.join("tap.pcapng");
    common::run_reads(
        &dir,
        &[
            "--tap",
            capture.to_str().unwrap(),
            "--tap-max-bytes",
            "100000",
            "--tap-keep",
            "2",
        ],
        1_000,
    );
    let rotated = |n: u32| dir.join(format!("tap.pcapng.{n}"));
    assert!(
        rotated(1).exists() && rotated(2).exists(),
        "two rotated files"
    );
    assert!(!rotated(3).exists(), "only two kept");
    for path in [capture.clone(), rotated(1), rotated(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 100_000, "{} is {size} bytes", path.display());
        // tshark reads each without complaint, and finds Modbus in each.
        let frames = frames(&path);
        assert!(frames.iter().any(|f| f.is_query()), "{}", path.display());
        assert_eq!(warnings(&path), Vec::<String>::new(), "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The packets of the capture at `path` that tshark dissects as Modbus.
fn modbus_packets(path: &Path) -> usize {
    frames(path).iter().filter(|f| f.function.is_some()).count()
}

#[test]
fn an_existing_pcapng_is_appended_to_and_a_classic_pcap_is_moved_aside() {
    let dir = pki("tap-existing");
    let capture = dir.join("tap.pcapng");
    let path = capture.to_str().unwrap();
    common::run_reads(&dir, &["--tap", path, "--tap-format", "pcap"], 10);
    // Classic pcap: tshark reads it; then a pcapng tap moves it aside.
    assert_eq!(modbus_packets(&capture), 22);
    common::run_reads(&dir, &["--tap", path], 10);
    let aside = dir.join("tap.pcapng.1");
    assert_eq!(modbus_packets(&aside), 22);
    // A pcapng capture: a second run appends a section of its own.
    common::run_reads(&dir, &["--tap", path], 10);
    let frames = frames(&capture);
    assert_eq!(frames.iter().filter(|f| f.is_query()).count(), 22);
    assert!(!dir.join("tap.pcapng.2").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[allow(clippy::disallowed_methods)] // waits for a real server
fn sighup_reopens_the_path_after_an_outside_rotation() {
    let dir = pki("tap-sighup");
    let capture = dir.join("tap.pcapng");
    let (server, host) = start_server_with(&dir, &["--tap", capture.to_str().unwrap()]);
    let read = || {
        let out = as_client(&dir, &host, "viewer", &["read", "holding", "100", "1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    read();
    // Its packets are in the file (the writer flushes when idle), then an
    // outside rotation moves the file away.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&capture)
        .unwrap_or_default()
        .windows(11)
        .any(|w| w == b"session end")
    {
        assert!(
            Instant::now() < deadline,
            "the session never reached the capture"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let moved = dir.join("tap.pcapng.old");
    std::fs::rename(&capture, &moved).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !capture.exists() {
        assert!(Instant::now() < deadline, "SIGHUP did not reopen the path");
        std::thread::sleep(Duration::from_millis(20));
    }
    read();
    wait_for_log(&dir.join("server.log"), " ended (", 2);
    server.terminate();
    for path in [&moved, &capture] {
        let frames = frames(path);
        assert_eq!(
            frames.iter().filter(|f| f.is_query()).count(),
            1,
            "{}",
            path.display()
        );
        assert!(frames[0].flags.contains('S'), "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mbaps ARGS` fails, and says `why` on standard error.
fn refused(args: &[&str], why: &str) {
    let out = mbaps(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        text(&out.stderr).contains(why),
        "{args:?}: {}",
        text(&out.stderr)
    );
}

#[test]
fn the_tap_refuses_what_cannot_work() {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let policy = policy.to_str().unwrap();
    let plain = ["server", "--plain", "--policy", policy];
    refused(
        &[&plain[..], &["--tap", "-", "--audit-log", "-"]].concat(),
        "both want standard output",
    );
    refused(
        &[&plain[..], &["--tap-port", "5020"]].concat(),
        "are for --tap",
    );
    refused(
        &["server", "--serial", "/dev/null", "--tap", "t.pcapng"],
        "--tap captures Modbus/TCP sessions",
    );
    refused(
        &[&plain[..], &["--tap", "/nonexistent-folder/tap.pcapng"]].concat(),
        "--tap /nonexistent-folder/tap.pcapng",
    );
    refused(
        &[
            &plain[..],
            &["--tap", "same.log", "--audit-log", "same.log"],
        ]
        .concat(),
        "--tap and --audit-log are both same.log",
    );
    // Not through a link; not a FIFO others may open.
    let dir = pki("tap-refused");
    let link = dir.join("link.pcapng");
    std::os::unix::fs::symlink(dir.join("elsewhere"), &link).unwrap();
    refused(
        &[&plain[..], &["--tap", link.to_str().unwrap()]].concat(),
        "is a symbolic link",
    );
    assert!(
        !dir.join("elsewhere").exists(),
        "nothing made through the link"
    );
    let open_fifo = dir.join("open.fifo");
    let made = Command::new("mkfifo")
        .args(["-m", "0644"])
        .arg(&open_fifo)
        .status()
        .unwrap();
    assert!(made.success());
    refused(
        &[&plain[..], &["--tap", open_fifo.to_str().unwrap()]].concat(),
        "is mode 0644: others may open it",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_capture_readable_by_others_is_made_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = pki("tap-mode");
    let capture = dir.join("tap.pcapng");
    std::fs::write(&capture, b"").unwrap();
    std::fs::set_permissions(&capture, std::fs::Permissions::from_mode(0o644)).unwrap();
    common::run_reads(&dir, &["--tap", capture.to_str().unwrap()], 1);
    let mode = std::fs::metadata(&capture).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(frames(&capture).iter().filter(|f| f.is_query()).count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[allow(clippy::disallowed_methods)] // waits for a real server
fn a_reload_that_moved_nothing_keeps_writing_the_same_capture() {
    let dir = pki("tap-reload");
    let capture = dir.join("tap.pcap");
    let (server, host) = start_server_with(
        &dir,
        &["--tap", capture.to_str().unwrap(), "--tap-format", "pcap"],
    );
    let read = || {
        let out = as_client(&dir, &host, "viewer", &["read", "holding", "100", "1"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    read();
    for reloads in 1..=2 {
        let hup = Command::new("kill")
            .args(["-HUP", &server.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        wait_for_log(&dir.join("server.log"), "reloaded on SIGHUP", reloads);
    }
    read();
    wait_for_log(&dir.join("server.log"), " ended (", 2);
    server.terminate();
    assert!(!dir.join("tap.pcap.1").exists(), "nothing moved aside");
    let queries = frames(&capture)
        .iter()
        .filter(|f| f.function.is_some() && f.flags.contains('P'))
        .count();
    assert_eq!(queries, 4, "both sessions in the one capture");
    let _ = std::fs::remove_dir_all(&dir);
}
