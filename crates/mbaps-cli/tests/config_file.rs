//! `mbaps server --config examples/server.toml`, as the README runs it
//! (in a copy of the layout: `certs/` beside `examples/`): the file's keys
//! take effect, a flag overrides its key, and a file with mistakes is
//! refused with each at its line and column.

mod common;

use common::{client_config, mbaps, start_listening, text};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::{AsyncCalls, TokioClient};

#[test]
fn the_example_server_file_runs_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("mbaps-config-test-{}", std::process::id()));
    let examples = dir.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    let repository = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    for file in ["server.toml", "policy.toml"] {
        std::fs::copy(format!("{repository}/{file}"), examples.join(file)).unwrap();
    }
    let out = mbaps(&["certs", "--out", dir.join("certs").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Free ports instead of the file's: the flags override it.
    let config = examples.join("server.toml").display().to_string();
    let (server, host) = start_listening(
        &dir,
        "server.log",
        &[
            "server",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(
            host.as_str(),
            client_config(&dir.join("certs"), "viewer"),
            name,
        )
        .await
        .unwrap();
        assert_eq!(viewer.read_holding_registers(1, 7, 1).await.unwrap(), [7]);
        viewer.close().await;
    });
    server.terminate();
    // The file's audit log, relative to the file: beside examples/.
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"request\""), "{audit}");
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(log.contains("metrics on http://127.0.0.1:"), "{log}");
    assert!(
        !log.contains("127.0.0.1:9802"),
        "the flag did not override the file: {log}"
    );

    // Mistakes, all of them, each placed.
    let broken = examples.join("broken.toml");
    std::fs::write(
        &broken,
        "listen = 802\nmax_sessions = 0\nlog = \"loud\"\npolicy = \"policy.toml\"\n",
    )
    .unwrap();
    let out = mbaps(&["server", "--plain", "--config", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.toml:1:10"), "{stderr}");
    let out = std::fs::write(
        &broken,
        "max_sessions = 0\nlog = \"loud\"\npolicy = \"policy.toml\"\n",
    );
    out.unwrap();
    let out = mbaps(&["server", "--plain", "--config", broken.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("broken.toml:1:16: max_sessions is 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.toml:2:7: log is \"loud\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
