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

/// A folder with a PKI, the example policy, and `server.toml` holding
/// `front` (TOML) with the paths of that PKI.
fn configured(tag: &str, front: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-reload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml"),
        dir.join("policy.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("writes.toml"), VIEWERS_WRITE).unwrap();
    write_config(&dir, front);
    dir
}

/// `server.toml` of `dir`: the TLS files of `dir`, then `front`.
fn write_config(dir: &Path, front: &str) {
    let file = |name: &str| dir.join(name).display().to_string();
    let tls = format!(
        "cert = {:?}\nkey = {:?}\nca = {:?}\n",
        file("server-chain.pem"),
        file("server.key"),
        file("ca.pem"),
    );
    let front = front.replace("POLICY", &file("policy.toml"));
    let front = front.replace("WRITES", &file("writes.toml"));
    std::fs::write(dir.join("server.toml"), format!("{tls}{front}")).unwrap();
}

async fn viewer(dir: &Path, host: &str) -> TokioClient {
    TokioClient::connect(
        host,
        common::client_config(dir, "viewer"),
        ServerName::try_from("localhost").unwrap(),
    )
    .await
    .unwrap()
}

#[test]
fn sighup_refuses_a_switch_to_plain_and_a_narrower_crl_scope_and_applies_nothing_of_that_file() {
    let dir = configured("plain", "listen = \"127.0.0.1:0\"\npolicy = \"POLICY\"\n");
    let config = dir.join("server.toml").display().to_string();
    let (server, host) = start_listening(&dir, "server.log", &["server", "--config", &config]);
    let log = dir.join("server.log");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let viewer = viewer(&dir, &host).await;
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(matches!(denied, Err(ClientError::Exception(_))), "{denied:?}");

        // Plain, as the operator, with a policy that lets viewers write:
        // refused whole, the policy included.
        write_config(
            &dir,
            "listen = \"127.0.0.1:0\"\npolicy = \"WRITES\"\nplain = true\nplain_role = \"operator\"\n",
        );
        hang_up(&server);
        let said = wait_for(&log, "reload on SIGHUP refused", 1);
        assert!(
            said.contains("plain: a reload cannot switch the front from TLS to plain Modbus/TCP"),
            "{said}"
        );
        assert!(said.contains("plain_role: a reload cannot change"), "{said}");
        assert!(!said.contains("reloaded on SIGHUP"), "{said}");
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(matches!(denied, Err(ClientError::Exception(_))), "{denied:?}");
        // The port still speaks TLS only: a plain request gets no
        // Modbus answer, and a new TLS client is served.
        assert_no_plain_answer(&host);
        let second = self::viewer(&dir, &host).await;
        assert_eq!(second.read_holding_registers(1, 0, 1).await.unwrap().len(), 1);

        // Revocation narrowed to the client's own certificate: refused.
        write_config(
            &dir,
            "listen = \"127.0.0.1:0\"\npolicy = \"WRITES\"\ncrl_scope = \"end-entity\"\n",
        );
        hang_up(&server);
        let said = wait_for(&log, "reload on SIGHUP refused", 2);
        assert!(
            said.contains("crl_scope: a reload cannot narrow revocation checking from chain to end-entity"),
            "{said}"
        );
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(matches!(denied, Err(ClientError::Exception(_))), "{denied:?}");

        // The same file without the refused change applies.
        write_config(&dir, "listen = \"127.0.0.1:0\"\npolicy = \"WRITES\"\n");
        hang_up(&server);
        let said = wait_for(&log, "reloaded on SIGHUP", 1);
        assert!(said.contains("reloaded on SIGHUP: policy changed"), "{said}");
        viewer.write_single_register(1, 100, 7).await.unwrap();
        viewer.close().await;
        second.close().await;
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Modbus/TCP request in the clear to `host`: whatever comes back is
/// not its answer.
fn assert_no_plain_answer(host: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Transaction 0x0102, read one holding register of unit 1.
    stream
        .write_all(&[1, 2, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
        .unwrap();
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).unwrap_or(0);
    assert!(
        !reply[..n].starts_with(&[1, 2, 0, 0]),
        "a plain request was answered: {:?}",
        &reply[..n]
    );
}

#[test]
fn sighup_applies_the_policy_and_names_each_key_that_needs_a_restart() {
    let dir = configured(
        "restart",
        "listen = \"127.0.0.1:0\"\npolicy = \"POLICY\"\nmax_sessions = 64\nwrite_timeout = 10\n",
    );
    let config = dir.join("server.toml").display().to_string();
    let (server, host) = start_listening(&dir, "server.log", &["server", "--config", &config]);
    let log = dir.join("server.log");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let viewer = viewer(&dir, &host).await;
        write_config(
            &dir,
            "listen = \"127.0.0.1:1\"\npolicy = \"WRITES\"\nmax_sessions = 2\nwrite_timeout = 1\nhandshake_timeout = 5\ntap = \"tap.pcapng\"\n",
        );
        hang_up(&server);
        let said = wait_for(&log, "reloaded on SIGHUP", 1);
        for key in ["listen", "max_sessions", "write_timeout", "tap"] {
            assert!(
                said.contains(&format!("reload on SIGHUP: {key} changed, but needs a restart: not applied")),
                "{key}: {said}"
            );
        }
        assert!(
            said.contains("reloaded on SIGHUP: policy, handshake_timeout changed"),
            "{said}"
        );
        viewer.write_single_register(1, 100, 7).await.unwrap();
        // Still on the address it started with, and still bounded by the
        // 64 sessions it started with: three more sessions are served.
        let mut more = Vec::new();
        for _ in 0..3 {
            more.push(self::viewer(&dir, &host).await);
        }
        for client in &more {
            assert_eq!(client.read_holding_registers(1, 0, 1).await.unwrap().len(), 1);
        }
        assert_eq!(viewer.read_holding_registers(1, 100, 1).await.unwrap(), [7]);
        // Compared with what runs, not with the file read last: the keys
        // still need a restart.
        hang_up(&server);
        let said = wait_for(&log, "reloaded on SIGHUP", 2);
        assert_eq!(said.matches("listen changed, but needs a restart").count(), 2, "{said}");
        assert!(
            said.contains("reloaded on SIGHUP: nothing that a reload applies changed"),
            "{said}"
        );
        for client in more {
            client.close().await;
        }
        viewer.close().await;
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_on_the_gateway_names_a_route_change_as_needing_a_restart() {
    let dir = configured(
        "route",
        "listen = \"127.0.0.1:0\"\npolicy = \"POLICY\"\n[[route]]\nunits = 1\nupstream = \"127.0.0.1:1\"\n",
    );
    let config = dir.join("server.toml").display().to_string();
    let (server, _host) = start_listening(&dir, "server.log", &["gateway", "--config", &config]);
    let log = dir.join("server.log");
    write_config(
        &dir,
        "listen = \"127.0.0.1:0\"\npolicy = \"WRITES\"\n[[route]]\nunits = 1\nupstream = \"127.0.0.1:2\"\n",
    );
    hang_up(&server);
    let said = wait_for(&log, "reloaded on SIGHUP", 1);
    assert!(
        said.contains("reload on SIGHUP: route changed, but needs a restart: not applied"),
        "{said}"
    );
    assert!(
        said.contains("reloaded on SIGHUP: policy changed"),
        "{said}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
