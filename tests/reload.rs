//! A running tokio server's configuration replaced without a restart
//! (`Reloader`): an open session authorizes its next request against the
//! new policy, for the same role; a CRL that now revokes a connected
//! client closes its session; new handshakes use the new configuration.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use std::time::{Duration, Instant};

use common::{ca, chain, key, localhost, pki, policy, role_config, runtime};
use mbaps_authz::Policy;
use mbaps_codec::ExceptionCode;
use mbaps_session::{ClientError, ServerConfig, SessionError, parse_crls};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_tokio::{AsyncCalls, SessionLog, TokioClient, TokioServer};

/// The example policy with writes for viewers too.
fn viewers_write() -> Policy {
    Policy::from_toml(
        "[roles.viewer]\nallow = [ { functions = [\"read\", \"write\"] } ]\n\
         [roles.operator]\nallow = [ { functions = [\"read\", \"write\", \"diagnostic\"] } ]\n",
    )
    .unwrap()
}

fn config_with(policy: Policy, crls: bool) -> ServerConfig {
    let pki = pki();
    let mut builder = ServerConfig::builder(ca(pki), chain(&pki.server), key(&pki.server), policy);
    if crls {
        let mut all = parse_crls(pki.crl_pem.as_bytes()).unwrap();
        all.extend(parse_crls(pki.root_crl_pem.as_bytes()).unwrap());
        builder = builder.crls(all);
    }
    builder.build().unwrap()
}

#[test]
fn an_open_session_takes_the_new_policy_at_its_next_request() {
    runtime().block_on(async {
        let server = common::preset_server().await;
        let viewer = TokioClient::connect(server.local_addr(), role_config("viewer"), localhost())
            .await
            .unwrap();
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(
            matches!(
                denied,
                Err(ClientError::Exception(ExceptionCode::IllegalFunction))
            ),
            "{denied:?}"
        );
        server
            .reloader()
            .reload(config_with(viewers_write(), false));
        // The same session, its next request: allowed now.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match viewer.write_single_register(1, 100, 7).await {
                Ok(()) => break,
                Err(ClientError::Exception(ExceptionCode::IllegalFunction))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(viewer.read_holding_registers(1, 100, 1).await.unwrap(), [7]);
        // And back: the old policy denies again, on the same session.
        server.reloader().reload(config_with(policy(), false));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let denied = viewer.write_single_register(1, 100, 8).await;
        assert!(
            matches!(denied, Err(ClientError::Exception(_))),
            "{denied:?}"
        );
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_crl_that_now_revokes_a_connected_client_closes_its_session() {
    runtime().block_on(async {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        let server = TokioServer::bind(
            "127.0.0.1:0",
            config_with(policy(), false),
            RegisterMap::new(Tables::preset()),
        )
        .await
        .unwrap()
        .on_log(move |entry: &SessionLog| sink.lock().unwrap().push(entry.clone()))
        .spawn()
        .unwrap();
        // Without CRLs, the "revoked" client is in.
        let revoked =
            TokioClient::connect(server.local_addr(), role_config("revoked"), localhost())
                .await
                .unwrap();
        let operator =
            TokioClient::connect(server.local_addr(), role_config("operator"), localhost())
                .await
                .unwrap();
        revoked.read_holding_registers(1, 0, 1).await.unwrap();
        server.reloader().reload(config_with(policy(), true));
        // Its session is closed; the operator's stays.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !revoked.is_closed() {
            assert!(
                Instant::now() < deadline,
                "the revoked client's session stayed open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(revoked.read_holding_registers(1, 0, 1).await.is_err());
        assert_eq!(operator.read_holding_registers(1, 3, 1).await.unwrap(), [3]);
        let closed = log.lock().unwrap().iter().any(|entry| {
            matches!(
                entry,
                SessionLog::Failed {
                    error: SessionError::NoLongerAccepted(_),
                    ..
                }
            )
        });
        assert!(closed, "{:#?}", log.lock().unwrap());
        // And it cannot come back: the new handshake is refused.
        let again =
            TokioClient::connect(server.local_addr(), role_config("revoked"), localhost()).await;
        let refused = match again {
            Err(_) => true,
            Ok(client) => client.read_holding_registers(1, 0, 1).await.is_err(),
        };
        assert!(refused);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn the_std_server_reloads_too_and_closes_a_revoked_idle_session_within_a_second() {
    use mbaps_session::Calls;
    use mbaps_std::{StdClient, StdServer};
    let server = StdServer::bind(
        "127.0.0.1:0",
        config_with(policy(), false),
        RegisterMap::new(Tables::preset()),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let address = server.local_addr();
    let mut viewer = StdClient::connect(address, &role_config("viewer"), localhost()).unwrap();
    let mut revoked = StdClient::connect(address, &role_config("revoked"), localhost()).unwrap();
    revoked.read_holding_registers(1, 0, 1).unwrap();
    assert!(viewer.write_single_register(1, 100, 7).is_err());
    server.reloader().reload(config_with(viewers_write(), true));
    // The viewer's next request: the new policy.
    viewer.write_single_register(1, 100, 7).unwrap();
    // The revoked client, idle: closed within the reload check.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(revoked.read_holding_registers(1, 0, 1).is_err());
    assert_eq!(viewer.read_holding_registers(1, 100, 1).unwrap(), [7]);
    server.stop();
}

#[test]
fn a_new_certificate_and_ca_are_served_to_the_next_handshake() {
    use mbaps_test_pki::TestPki;
    let renewed = TestPki::generate(std::time::SystemTime::now()).unwrap();
    let renewed_config = ServerConfig::builder(
        ca(&renewed),
        chain(&renewed.server),
        key(&renewed.server),
        policy(),
    )
    .build()
    .unwrap();
    let renewed_client = common::client_config(&renewed, renewed.client("operator").unwrap());
    runtime().block_on(async {
        let server = common::preset_server().await;
        let old = TokioClient::connect(server.local_addr(), role_config("operator"), localhost())
            .await
            .unwrap();
        old.read_holding_registers(1, 0, 1).await.unwrap();
        // Before the reload, a client of the new PKI does not trust the
        // server's certificate.
        let early =
            TokioClient::connect(server.local_addr(), renewed_client.clone(), localhost()).await;
        assert!(
            early.is_err(),
            "the old certificate was trusted by the new PKI's client"
        );
        server.reloader().reload(renewed_config);
        // The next handshake: the new certificate, the new CA.
        let new = TokioClient::connect(server.local_addr(), renewed_client, localhost())
            .await
            .unwrap();
        assert_eq!(new.read_holding_registers(1, 5, 1).await.unwrap(), [5]);
        // The old client's certificate chains to a CA no longer trusted:
        // its session is closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !old.is_closed() {
            assert!(
                Instant::now() < deadline,
                "the old CA's session stayed open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let again =
            TokioClient::connect(server.local_addr(), role_config("operator"), localhost()).await;
        assert!(again.is_err(), "a client of the old CA was let in");
        server.shutdown().await.unwrap();
    });
}
