//! A real server on 127.0.0.1 and real clients, with real certificates and
//! the example policy: allowed and denied requests, and the audit log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use mbaps_authz::Policy;
use mbaps_codec::ExceptionCode;
use mbaps_session::rustls::pki_types::{CertificateDer, ServerName};
use mbaps_session::{
    ClientConfig, RegisterMap, ServerConfig, ServerEvent, Tables, parse_private_key,
};
use mbaps_std::{ClientError, SessionLog, StdClient, StdServer};
use mbaps_test_pki::{Credential, TestPki};

fn chain(c: &Credential) -> Vec<CertificateDer<'static>> {
    c.chain_der
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect()
}

#[allow(clippy::disallowed_methods)] // the test issues certificates valid now
fn pki() -> TestPki {
    TestPki::generate(std::time::SystemTime::now()).unwrap()
}

#[test]
fn viewers_read_operators_write_and_a_viewers_write_is_denied_over_real_sockets() {
    let pki = pki();
    let ca = vec![CertificateDer::from(pki.ca.cert_der.clone())];
    let policy =
        Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml"))
            .unwrap();
    let server = &pki.server;
    let config = ServerConfig::builder(
        ca.clone(),
        chain(server),
        parse_private_key(server.key_pem.as_bytes()).unwrap(),
        policy,
    )
    .build()
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let handle = StdServer::bind("127.0.0.1:0", config, RegisterMap::new(Tables::preset()))
        .unwrap()
        .on_log(move |entry| sink.lock().unwrap().push(entry.clone()))
        .spawn()
        .unwrap();
    let address = handle.local_addr();
    let client = |name: &str| {
        let credential = pki.client(name).unwrap();
        let config = ClientConfig::builder(
            ca.clone(),
            chain(credential),
            parse_private_key(credential.key_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
        StdClient::connect(address, &config, ServerName::try_from("localhost").unwrap()).unwrap()
    };

    let mut viewer = client("viewer");
    assert_eq!(
        viewer.read_holding_registers(1, 100, 3).unwrap(),
        [100, 101, 102]
    );
    match viewer.write_single_register(1, 100, 7) {
        Err(ClientError::Exception(ExceptionCode::IllegalFunction)) => {}
        other => panic!("{other:?}"),
    }
    let mut operator = client("operator");
    operator.write_single_register(1, 100, 7).unwrap();
    operator.write_multiple_registers(1, 101, &[8, 9]).unwrap();
    assert_eq!(viewer.read_holding_registers(1, 100, 3).unwrap(), [7, 8, 9]);
    viewer.close().unwrap();
    operator.close().unwrap();

    // A client from another CA does not get in.
    let untrusted = &pki.untrusted_client;
    let config = ClientConfig::builder(
        ca.clone(),
        chain(untrusted),
        parse_private_key(untrusted.key_pem.as_bytes()).unwrap(),
    )
    .build()
    .unwrap();
    let refused = StdClient::connect(address, &config, ServerName::try_from("localhost").unwrap())
        .and_then(|mut c| c.read_holding_registers(1, 0, 1).map(|_| ()));
    assert!(refused.is_err());

    std::thread::sleep(std::time::Duration::from_millis(200));
    handle.stop();
    let log = log.lock().unwrap();
    let roles: Vec<String> = log
        .iter()
        .filter_map(|e| match e {
            SessionLog::Event {
                event: ServerEvent::Authenticated { role, .. },
                ..
            } => role.as_ref().map(|r| r.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(roles, ["viewer", "operator"]);
    assert!(log.iter().any(|e| matches!(
        e,
        SessionLog::Event {
            event: ServerEvent::Denied { function: 0x06, .. },
            ..
        }
    )));
    assert!(
        log.iter().any(|e| matches!(e, SessionLog::Failed { .. })),
        "the untrusted client's failure is logged"
    );
}
