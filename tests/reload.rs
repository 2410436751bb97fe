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

/// Where a real client's handshake is held while the server reloads.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Connected; nothing sent.
    Connected,
    /// Its ClientHello sent and the server's flight read; its
    /// certificate not yet sent.
    AfterServerFlight,
}

/// A sans-IO client over a blocking socket, so that its handshake can
/// be held at a chosen point.
struct HeldClient {
    stream: std::net::TcpStream,
    client: mbaps_session::Client,
    /// The client's output not yet sent.
    pending: Vec<u8>,
}

impl HeldClient {
    fn connect(address: std::net::SocketAddr, role: &str) -> HeldClient {
        let stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let client =
            mbaps_session::Client::new(&role_config(role), localhost(), Instant::now()).unwrap();
        HeldClient {
            stream,
            client,
            pending: Vec::new(),
        }
    }

    /// Sends what the client has to send; false once the socket is gone.
    fn send(&mut self) -> bool {
        use std::io::Write;
        self.client.poll_transmit(&mut self.pending);
        let sent = self.pending.is_empty() || self.stream.write_all(&self.pending).is_ok();
        self.pending.clear();
        sent
    }

    /// Sends the ClientHello and reads the server's whole flight (until
    /// the server waits); what the client answers is kept, not sent.
    fn hold_after_server_flight(&mut self) {
        assert!(self.send());
        let mut heard = false;
        loop {
            match self.read_some() {
                Some(0) if heard => break,
                Some(0) => {}
                Some(_) => heard = true,
                None => panic!("the server closed during its flight"),
            }
            self.client.poll_transmit(&mut self.pending);
        }
        assert!(!self.pending.is_empty(), "the client has nothing to answer");
    }

    /// Reads what the server sent within the read timeout: how much
    /// (0: nothing came), `None` on its end (EOF, reset).
    fn read_some(&mut self) -> Option<usize> {
        use std::io::Read;
        let mut bytes = [0u8; 16 * 1024];
        match self.stream.read(&mut bytes) {
            Ok(0) => {
                self.client.handle_eof(Instant::now());
                None
            }
            Ok(n) => {
                self.client.handle_tls(Instant::now(), &bytes[..n]);
                Some(n)
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Some(0)
            }
            Err(_) => None,
        }
    }

    /// Reads what the server sent within the read timeout; false on its
    /// end (EOF, reset).
    fn receive(&mut self) -> bool {
        self.read_some().is_some()
    }

    /// Drives the client for up to 5 s; whether a response to a read it
    /// sends once connected ever came.
    fn served(mut self) -> bool {
        let read = mbaps_codec::Request::ReadHoldingRegisters {
            address: 0,
            quantity: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut asked = false;
        while Instant::now() < deadline {
            while let Some(event) = self.client.poll_event() {
                if matches!(event, mbaps_session::ClientEvent::Response { .. }) {
                    return true;
                }
            }
            if !asked && self.client.is_connected() {
                asked = self.client.send_request(Instant::now(), 1, &read).is_ok();
            }
            if !self.send() || !self.receive() || self.client.is_closed() {
                break;
            }
        }
        std::iter::from_fn(|| self.client.poll_event())
            .any(|event| matches!(event, mbaps_session::ClientEvent::Response { .. }))
    }
}

/// Either server, with a reloader.
enum Served {
    Tokio(mbaps_tokio::ServerHandle),
    Std(mbaps_std::ServerHandle),
}

impl Served {
    fn start(std: bool) -> Served {
        let config = config_with(policy(), false);
        let map = RegisterMap::new(Tables::preset());
        if std {
            let server = mbaps_std::StdServer::bind("127.0.0.1:0", config, map)
                .unwrap()
                .spawn()
                .unwrap();
            return Served::Std(server);
        }
        runtime().block_on(async {
            Served::Tokio(
                TokioServer::bind("127.0.0.1:0", config, map)
                    .await
                    .unwrap()
                    .spawn()
                    .unwrap(),
            )
        })
    }

    fn address(&self) -> std::net::SocketAddr {
        match self {
            Served::Tokio(server) => server.local_addr(),
            Served::Std(server) => server.local_addr(),
        }
    }

    fn reload(&self, config: ServerConfig) {
        match self {
            Served::Tokio(server) => server.reloader().reload(config),
            Served::Std(server) => server.reloader().reload(config),
        }
    }

    fn stop(self) {
        match self {
            Served::Tokio(server) => runtime().block_on(server.shutdown()).unwrap(),
            Served::Std(server) => server.stop(),
        }
    }
}

#[test]
fn a_handshake_held_across_a_reload_that_revokes_its_client_is_refused_by_both_servers() {
    for std in [false, true] {
        for hold in [Hold::Connected, Hold::AfterServerFlight] {
            let what = format!(
                "{} server, held {hold:?}",
                if std { "std" } else { "tokio" }
            );
            let server = Served::start(std);
            let mut revoked = HeldClient::connect(server.address(), "revoked");
            let mut operator = HeldClient::connect(server.address(), "operator");
            if let Hold::AfterServerFlight = hold {
                revoked.hold_after_server_flight();
                operator.hold_after_server_flight();
            }
            server.reload(config_with(policy(), true));
            // However soon the handshake finishes after the reload.
            assert!(!revoked.served(), "{what}: the revoked client was served");
            assert!(operator.served(), "{what}: the operator was not served");
            server.stop();
        }
    }
}
