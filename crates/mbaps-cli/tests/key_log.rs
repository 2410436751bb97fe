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
