//! `--metrics`: `/metrics` parses as OpenMetrics text, and its counters
//! match the requests made.
#![allow(clippy::disallowed_methods)] // a real server

mod common;

use common::{client_config, pki, scrape, start_server_with};
use mbaps_session::ClientError;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::{AsyncCalls, TokioClient};

#[test]
fn the_metrics_parse_and_count_the_requests_made() {
    let dir = pki("metrics");
    let (server, host) = start_server_with(&dir, &["--metrics", "127.0.0.1:0"]);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let metrics = log
        .lines()
        .find_map(|line| line.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {log}"))
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(host.as_str(), client_config(&dir, "viewer"), name)
            .await
            .unwrap();
        for _ in 0..50 {
            viewer.read_holding_registers(1, 0, 10).await.unwrap();
        }
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(matches!(denied, Err(ClientError::Exception(_))));
        let (head, body) = scrape(&metrics, "/metrics");
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("openmetrics-text"), "{head}");
        // Every line: a comment, a sample `name{labels} value`, or the end.
        assert!(body.ends_with("# EOF\n"), "{body}");
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(value.parse::<f64>().is_ok(), "{line:?}");
            assert!(name.starts_with("mbaps_"), "{line:?}");
        }
        for sample in [
            "mbaps_requests_total{role=\"viewer\",function=\"read holding registers\",decision=\"allowed\"} 50",
            "mbaps_requests_total{role=\"viewer\",function=\"write single register\",decision=\"denied\"} 1",
            "mbaps_sessions_started_total 1",
            "mbaps_sessions_open 1",
            "mbaps_request_duration_seconds_count 51",
        ] {
            assert!(body.lines().any(|l| l == sample), "no {sample:?} in {body}");
        }
        let (head, _) = scrape(&metrics, "/other");
        assert!(head.contains(" 404"), "{head}");
        viewer.close().await;
    });
    server.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
