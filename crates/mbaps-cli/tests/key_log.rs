//! `SSLKEYLOGFILE`: off unless set; when set, a read over TLS 1.3 and one
//! over TLS 1.2 append the secrets of exactly those two sessions, in the
//! NSS key log format Wireshark reads, with a warning on standard error.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use common::{pki, start_server_with, text};

fn read(dir: &std::path::Path, host: &str, tls: &str, key_log: Option<&std::path::Path>) -> Output {
    let file = |name: &str| dir.join(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_mbaps"));
    command
        .args(["read", "holding", "0", "1", "--host", host, "--tls", tls])
        .arg("--ca")
        .arg(file("ca.pem"))
        .arg("--cert")
        .arg(file("client-viewer-chain.pem"))
        .arg("--key")
        .arg(file("client-viewer.key"))
        .env_remove("SSLKEYLOGFILE");
    if let Some(path) = key_log {
        command.env("SSLKEYLOGFILE", path);
    }
    command.output().unwrap()
}

#[test]
fn sslkeylogfile_gets_the_secrets_of_exactly_the_sessions_opened() {
    let dir = pki("key-log");
    let (_server, host) = start_server_with(&dir, &[]);
    let keys = dir.join("keys.log");

    let quiet = read(&dir, &host, "1.3", None);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(!text(&quiet.stderr).contains("SSLKEYLOGFILE"));
    assert!(!keys.exists());

    for tls in ["1.3", "1.2"] {
        let out = read(&dir, &host, tls, Some(&keys));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("warning: SSLKEYLOGFILE is set"),
            "{}",
            text(&out.stderr)
        );
    }
    let log = std::fs::read_to_string(&keys).unwrap();
    let mut randoms = BTreeSet::new();
    let mut labels = Vec::new();
    for line in log.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 64, "a client random: {line}");
        assert!(
            fields[1..]
                .iter()
                .all(|f| f.chars().all(|c| c.is_ascii_hexdigit())),
            "{line}"
        );
        randoms.insert(fields[1].to_owned());
        labels.push(fields[0].to_owned());
    }
    assert_eq!(randoms.len(), 2, "two sessions: {log}");
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "CLIENT_RANDOM",
    ] {
        assert_eq!(
            labels.iter().filter(|l| *l == label).count(),
            1,
            "{label} in {log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// tshark, given the key log, decrypts a captured session and finds the
/// Modbus read in it (request and response, function 0x03), over TLS 1.2
/// and 1.3; without the key log it finds none. Skipped, saying why, where
/// tshark is not installed or may not capture (`.ci/run` installs it).
#[test]
#[allow(clippy::disallowed_methods)] // waits for a real capture process
fn tshark_decrypts_a_captured_session_with_the_key_log() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("SKIPPED: tshark is not installed");
        return;
    }
    let dir = pki("tshark");
    let (server, host) = start_server_with(&dir, &[]);
    let port = host.rsplit(':').next().unwrap().to_owned();
    for tls in ["1.3", "1.2"] {
        let capture = dir.join(format!("capture-{tls}.pcapng"));
        let keys = dir.join(format!("keys-{tls}.log"));
        let mut tshark = Command::new("tshark")
            .args([
                "-i",
                "lo",
                "-f",
                &format!("tcp port {port}"),
                "-l",
                "-P",
                "-w",
            ])
            .arg(&capture)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(tshark.stderr.take().unwrap());
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            said.push_str(&line);
            if line.contains("Capturing on") {
                break;
            }
        }
        if !said.contains("Capturing on") {
            let _ = tshark.wait();
            if said.contains("ermission") || said.contains("Operation not permitted") {
                eprintln!("SKIPPED: tshark may not capture here: {said}");
                return;
            }
            panic!("tshark did not start capturing: {said}");
        }
        // "Capturing on" comes before the capture does: knock on the port
        // until tshark prints a packet.
        let printed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut stdout = BufReader::new(tshark.stdout.take().unwrap());
        let seen = printed.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) > 0 {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !printed.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "tshark saw no packet");
            drop(std::net::TcpStream::connect(&host));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = read(&dir, &host, tls, Some(&keys));
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Let the last segments reach the capture, then stop it cleanly.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-INT", &tshark.id().to_string()])
            .status();
        let _ = std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        tshark.wait().unwrap();

        let functions = |with_keys: bool| {
            let mut command = Command::new("tshark");
            command.arg("-r").arg(&capture);
            if with_keys {
                command
                    .arg("-o")
                    .arg(format!("tls.keylog_file:{}", keys.display()));
            }
            let out = command
                .args(["-d", &format!("tcp.port=={port},tls")])
                .args(["-d", &format!("tls.port=={port},mbtcp")])
                .args(["-Y", "mbtcp", "-T", "fields", "-e", "modbus.func_code"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            functions(true),
            ["3", "3"],
            "TLS {tls}: request and response"
        );
        assert!(
            functions(false).is_empty(),
            "TLS {tls}: nothing readable without the keys"
        );
    }
    server.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
