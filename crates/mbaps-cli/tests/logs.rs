//! What `mbaps server` logs: by default sessions, denials, refusals and
//! failures, never a line per allowed request; `-v` every request; `-q`
//! failures only; `--log-format json` one object per line.
#![allow(clippy::disallowed_methods)] // waits for a real server

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{mbaps, start_server_with, text};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};

fn client(dir: &Path, role: &str) -> ClientConfig {
    ClientConfig::builder(
        load_certificates(&dir.join("ca.pem")).unwrap(),
        load_certificates(&dir.join(format!("client-{role}-chain.pem"))).unwrap(),
        load_private_key(&dir.join(format!("client-{role}.key"))).unwrap(),
    )
    .build()
    .unwrap()
}

/// `reads` allowed reads (16 in flight) and one denied write, as a viewer;
/// then the server's log once it saw the session end.
fn run(dir: &Path, flags: &[&str], reads: usize) -> String {
    let (_server, host) = start_server_with(dir, flags);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(host.as_str(), client(dir, "viewer"), name)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let viewer = viewer.clone();
            tasks.push(tokio::spawn(async move {
                for _ in (worker..reads).step_by(16) {
                    viewer.read_holding_registers(1, 0, 10).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(
            matches!(denied, Err(ClientError::Exception(_))),
            "{denied:?}"
        );
        viewer.close().await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
        if log.contains("closed: PeerClosed") || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pki(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-logs-{tag}-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir
}

#[test]
fn ten_thousand_allowed_requests_print_no_line_and_a_denial_does() {
    let dir = pki("default");
    let log = run(&dir, &[], 10_000);
    assert_eq!(log.matches("request role=").count(), 0, "{log}");
    let denials: Vec<&str> = log.lines().filter(|l| l.contains(" denied ")).collect();
    assert_eq!(denials.len(), 1, "{log}");
    assert!(
        denials[0].contains("role=viewer") && denials[0].contains("holding registers 100..=100")
    );
    assert!(
        log.contains(" authenticated ") && log.contains("closed: PeerClosed"),
        "{log}"
    );
    // Few lines in all: listening, the session's start, the denial, its end.
    assert!(log.lines().count() < 10, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verbose_logs_every_request_and_quiet_only_failures() {
    let dir = pki("levels");
    let log = run(&dir, &["-v"], 20);
    // 20 reads and the denied write (handled by the policy, not the map).
    assert_eq!(log.matches("request role=\"viewer\"").count(), 20, "{log}");
    std::fs::remove_file(dir.join("server.log")).unwrap();
    let log = run(&dir, &["-q"], 20);
    assert!(
        !log.contains(" denied ") && !log.contains(" authenticated "),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = pki("json");
    let log = run(&dir, &["--log-format", "json"], 5);
    let mut objects = 0;
    for line in log.lines().filter(|l| !l.starts_with("listening on ")) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
        objects += 1;
    }
    assert!(objects >= 3, "{log}");
    assert!(log.contains("denied"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
