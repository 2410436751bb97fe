//! Against `mbaps server` (the library's tokio server with the register
//! map), over TLS with a role certificate and over plain Modbus/TCP,
//! writes allowed: no finding. Whatever the fuzzer reports here is a false
//! positive of its oracle, or a defect of mbaps.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mbaps_authz::{Policy, Role};
use mbaps_fuzzer::{Options, Scope, Target, run_campaign};
use mbaps_session::rustls::pki_types::{CertificateDer, ServerName};
use mbaps_session::{ClientConfig, ServerConfig, parse_private_key};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_test_pki::{Credential, TestPki};
use mbaps_tokio::TokioServer;

const POLICY: &str = "[roles.operator]\nallow = [{ functions = [\"all\"] }]\n";

fn chain(credential: &Credential) -> Vec<CertificateDer<'static>> {
    credential
        .chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

fn campaign(target: Target, tag: &str) {
    let mut options = Options::new(target);
    options.seed = 11;
    options.duration = None;
    options.requests = Some(20_000);
    options.scope = Scope::new(true);
    options.timeout = Duration::from_secs(2);
    options.out =
        std::env::temp_dir().join(format!("mbaps-fuzz-server-{tag}-{}", std::process::id()));
    let report = run_campaign(&options, &mut |_| {}).unwrap();
    assert!(report.requests >= 20_000);
    assert!(
        report.findings.is_empty(),
        "{tag}: {:#?}",
        report
            .findings
            .iter()
            .map(|f| (
                f.kind,
                f.function,
                &f.summary,
                std::fs::read_to_string(&f.replay).unwrap_or_default()
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn mbaps_server_over_tls_and_plain_gives_no_finding_writes_allowed() {
    let pki = TestPki::generate(std::time::SystemTime::now()).unwrap();
    let _ = UNIX_EPOCH;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ca = vec![CertificateDer::from(pki.ca.cert_der.clone())];
    let server_config = ServerConfig::builder(
        ca.clone(),
        chain(&pki.server),
        parse_private_key(pki.server.key_pem.as_bytes()).unwrap(),
        Policy::from_toml(POLICY).unwrap(),
    )
    .build()
    .unwrap();
    let plain_config = ServerConfig::plain(
        Policy::from_toml(POLICY).unwrap(),
        Some(Role::new("operator").unwrap()),
    )
    .build()
    .unwrap();
    let (tls, plain) = runtime.block_on(async {
        let map = || RegisterMap::new(Tables::preset());
        let tls = TokioServer::bind("127.0.0.1:0", server_config, map())
            .await
            .unwrap()
            .spawn()
            .unwrap();
        let plain = TokioServer::bind("127.0.0.1:0", plain_config, map())
            .await
            .unwrap()
            .spawn()
            .unwrap();
        (tls, plain)
    });
    let operator = pki.client("operator").unwrap();
    let client = ClientConfig::builder(
        ca,
        chain(operator),
        parse_private_key(operator.key_pem.as_bytes()).unwrap(),
    )
    .build()
    .unwrap();
    let rustls_config = Arc::new(client.tls().unwrap().clone());
    campaign(
        Target {
            address: tls.local_addr(),
            tls: Some((rustls_config, ServerName::try_from("localhost").unwrap())),
        },
        "tls",
    );
    campaign(
        Target {
            address: plain.local_addr(),
            tls: None,
        },
        "plain",
    );
    runtime.block_on(async {
        tls.shutdown().await.unwrap();
        plain.shutdown().await.unwrap();
    });
}
