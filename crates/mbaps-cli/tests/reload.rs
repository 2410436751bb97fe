//! `mbaps server` reloads on SIGHUP: an open viewer session's next write
//! follows the new policy; a policy file with a mistake is reported and
//! the running configuration stays.
#![cfg(unix)]
#![allow(clippy::disallowed_methods)] // waits for a real server

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, mbaps, start_listening, text};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};

const VIEWERS_WRITE: &str = "[roles.viewer]\nallow = [ { functions = [\"read\", \"write\"] } ]\n";

fn hang_up(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until the log holds `wanted` `count` times.
fn wait_for(log: &Path, wanted: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(wanted).count() >= count {
            return text;
        }
        assert!(Instant::now() < deadline, "no {wanted:?} in {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_puts_a_new_policy_in_force_and_a_broken_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("mbaps-reload-test-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let policy = dir.join("policy.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml"),
        &policy,
    )
    .unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    let (server, host) = start_listening(
        &dir,
        "server.log",
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &file("server-chain.pem"),
            "--key",
            &file("server.key"),
            "--ca",
            &file("ca.pem"),
            "--policy",
            &file("policy.toml"),
        ],
    );
    let log = dir.join("server.log");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = ClientConfig::builder(
            load_certificates(&dir.join("ca.pem")).unwrap(),
            load_certificates(&dir.join("client-viewer-chain.pem")).unwrap(),
            load_private_key(&dir.join("client-viewer.key")).unwrap(),
        )
        .build()
        .unwrap();
        let viewer = TokioClient::connect(
            host.as_str(),
            config,
            ServerName::try_from("localhost").unwrap(),
        )
        .await
        .unwrap();
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(
            matches!(denied, Err(ClientError::Exception(_))),
            "{denied:?}"
        );

        std::fs::write(&policy, VIEWERS_WRITE).unwrap();
        hang_up(&server);
        let said = wait_for(&log, "reloaded on SIGHUP", 1);
        assert!(
            said.contains("reloaded on SIGHUP: policy changed"),
            "{said}"
        );
        viewer.write_single_register(1, 100, 7).await.unwrap();

        // A mistake: reported, and the running policy stays.
        std::fs::write(
            &policy,
            "[roles.viewer]\nallow = [ { functions = [\"wrte\"] } ]\n",
        )
        .unwrap();
        hang_up(&server);
        let said = wait_for(&log, "reload on SIGHUP failed", 1);
        assert!(said.contains("policy.toml:2:"), "{said}");
        viewer.write_single_register(1, 100, 8).await.unwrap();
        assert_eq!(viewer.read_holding_registers(1, 100, 1).await.unwrap(), [8]);
        viewer.close().await;
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
