//! Requirements of the specification checked where the other suites do not
//! reach: what goes on the wire in a ClientHello, the cipher suites on
//! offer, resumption over real sockets (and none after a fatal alert, on
//! either side), and whole chains. `cargo xtask conformance` names these
//! tests in the matrix.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{Adapter, localhost, pki, role_config, server_config, start};
use mbaps_session::rustls::{self, CipherSuite, ClientConnection, HandshakeKind, StreamOwned};
use mbaps_session::{Client, ClientConfig, ClientEvent, TlsVersions, crypto_provider};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_test_pki::hello::extension;

/// The suites of the spec's list and the TLS 1.3 AEAD ones, nothing else.
#[test]
fn r12_r38_r48_r50_to_r54_r66_only_registered_aead_suites_with_sha256_or_better_are_offered() {
    let offered: Vec<CipherSuite> = crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(
        offered,
        [
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ]
    );
    // The configurations use that provider, server and client alike.
    for suites in [
        server_config(pki())
            .tls()
            .unwrap()
            .crypto_provider()
            .cipher_suites
            .clone(),
        role_config("viewer")
            .tls()
            .unwrap()
            .crypto_provider()
            .cipher_suites
            .clone(),
    ] {
        let names: Vec<CipherSuite> = suites.iter().map(|s| s.suite()).collect();
        assert_eq!(names, offered);
    }
}

/// The ClientHello of our client, record by record.
fn client_hello(config: &ClientConfig) -> Vec<u8> {
    let mut client = Client::new(config, localhost(), pki_time()).unwrap();
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    out
}

#[allow(clippy::disallowed_methods)] // a Client needs an instant to start at
fn pki_time() -> std::time::Instant {
    std::time::Instant::now()
}

/// (cipher suites, compression methods, extension types) of a ClientHello
/// record.
fn parse_hello(record: &[u8]) -> (Vec<u16>, Vec<u8>, Vec<u16>) {
    assert_eq!(record[0], 0x16, "a handshake record");
    let hello = &record[9..];
    let mut at = 2 + 32; // client_version, random
    at += 1 + usize::from(hello[at]); // session id
    let suites_len = usize::from(u16::from_be_bytes([hello[at], hello[at + 1]]));
    let suites = hello[at + 2..at + 2 + suites_len]
        .chunks(2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .collect();
    at += 2 + suites_len;
    let compression_len = usize::from(hello[at]);
    let compression = hello[at + 1..at + 1 + compression_len].to_vec();
    at += 1 + compression_len;
    let end = at + 2 + usize::from(u16::from_be_bytes([hello[at], hello[at + 1]]));
    at += 2;
    let mut types = Vec::new();
    while at < end {
        types.push(u16::from_be_bytes([hello[at], hello[at + 1]]));
        at += 4 + usize::from(u16::from_be_bytes([hello[at + 2], hello[at + 3]]));
    }
    (suites, compression, types)
}

#[test]
fn r59_r60_r63_r64_the_client_hello_offers_null_compression_renegotiation_indication_curves_and_point_formats()
 {
    for versions in [TlsVersions::Both, TlsVersions::Tls12Only] {
        let config = ClientConfig::builder(
            common::ca(pki()),
            common::chain(pki().client("viewer").unwrap()),
            common::key(pki().client("viewer").unwrap()),
        )
        .versions(versions)
        .build()
        .unwrap();
        let (suites, compression, extensions) = parse_hello(&client_hello(&config));
        assert_eq!(compression, [0], "R-59: null compression only");
        // RFC 5746 lets an initial ClientHello signal renegotiation
        // indication with the SCSV instead of the extension; rustls does.
        assert!(
            suites.contains(&0x00FF) || extensions.contains(&extension::RENEGOTIATION_INFO),
            "R-60: neither TLS_EMPTY_RENEGOTIATION_INFO_SCSV nor renegotiation_info"
        );
        for (requirement, kind) in [
            ("R-63", extension::SUPPORTED_GROUPS),
            ("R-64", extension::EC_POINT_FORMATS),
        ] {
            assert!(
                extensions.contains(&kind),
                "{requirement}: extension 0x{kind:04X} missing from {extensions:04X?}"
            );
        }
    }
}

/// A client of our own on rustls, to see the handshake kind and to send
/// what our sessions never would.
struct RawClient(StreamOwned<ClientConnection, TcpStream>);

impl RawClient {
    fn connect(address: std::net::SocketAddr, tls: &Arc<rustls::ClientConfig>) -> RawClient {
        let socket = TcpStream::connect(address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let conn = ClientConnection::new(Arc::clone(tls), localhost()).unwrap();
        let mut stream = StreamOwned::new(conn, socket);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        RawClient(stream)
    }

    /// One read of holding register 0: the answer proves the session is
    /// up (and, in TLS 1.3, brings the tickets).
    fn read_register(&mut self) -> Vec<u8> {
        self.0
            .write_all(&[0, 1, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 1])
            .unwrap();
        let mut answer = [0u8; 11];
        self.0.read_exact(&mut answer).unwrap();
        answer.to_vec()
    }

    fn kind(&self) -> Option<HandshakeKind> {
        self.0.conn.handshake_kind()
    }
}

/// The tokio server on the preset register map, with the example policy.
fn preset_server() -> common::Running {
    start(
        Adapter::Tokio,
        server_config(pki()),
        RegisterMap::new(Tables::preset()),
        |_| {},
    )
}

/// The viewer's client configuration, resuming sessions.
fn viewer_config(versions: TlsVersions) -> ClientConfig {
    ClientConfig::builder(
        common::ca(pki()),
        common::chain(pki().client("viewer").unwrap()),
        common::key(pki().client("viewer").unwrap()),
    )
    .versions(versions)
    .resumption(true)
    .build()
    .unwrap()
}

fn tls_config(versions: TlsVersions) -> Arc<rustls::ClientConfig> {
    // Clones share the resumption store.
    Arc::new(viewer_config(versions).tls().unwrap().clone())
}

#[test]
fn r42_r43_tls12_resumes_by_session_id_and_tls13_by_ticket_over_real_sockets() {
    let running = preset_server();
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let tls = tls_config(versions);
        let mut first = RawClient::connect(running.address, &tls);
        assert_eq!(first.kind(), Some(HandshakeKind::Full));
        assert_eq!(first.read_register()[7..], [0x03, 0x02, 0x00, 0x00]);
        first.0.conn.send_close_notify();
        let _ = first.0.flush();
        let mut second = RawClient::connect(running.address, &tls);
        assert_eq!(second.kind(), Some(HandshakeKind::Resumed), "{versions:?}");
        assert_eq!(second.read_register()[7..], [0x03, 0x02, 0x00, 0x00]);
    }
    running.stop();
}

#[test]
fn r11_a_session_ended_by_a_fatal_alert_is_not_resumed() {
    let running = preset_server();
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let tls = tls_config(versions);
        let mut victim = RawClient::connect(running.address, &tls);
        victim.read_register();
        // An application-data record that does not decrypt: the server
        // must end the session with a fatal bad_record_mac alert.
        victim
            .0
            .sock
            .write_all(&[0x17, 0x03, 0x03, 0x00, 0x20])
            .unwrap();
        victim.0.sock.write_all(&[0xA5; 0x20]).unwrap();
        // The alert is encrypted (in TLS 1.3 even its record type): the
        // connection closing after it is what shows.
        let mut rest = Vec::new();
        victim.0.sock.read_to_end(&mut rest).unwrap();
        assert!(!rest.is_empty(), "the server sent its alert");
        // This raw client never saw the alert (it was read off the socket
        // above), so it offers the session again: the server must refuse
        // to resume it.
        let mut next = RawClient::connect(running.address, &tls);
        assert_eq!(
            next.kind(),
            Some(HandshakeKind::Full),
            "{versions:?}: a session ended by a fatal alert was resumed"
        );
        next.read_register();
    }
    running.stop();
}

/// Drives a sans-IO client over `socket` until it reports an event `stop`
/// accepts, and returns that event.
#[allow(clippy::disallowed_methods)] // the test drives a real socket
fn drive_until(
    client: &mut Client,
    socket: &mut TcpStream,
    stop: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let mut out = Vec::new();
    let mut buf = [0u8; 16_384];
    let mut ended = false;
    loop {
        out.clear();
        if client.poll_transmit(&mut out) > 0 {
            socket.write_all(&out).unwrap();
        }
        while let Some(event) = client.poll_event() {
            if stop(&event) {
                return event;
            }
        }
        let n = socket.read(&mut buf).unwrap();
        let now = std::time::Instant::now();
        if n == 0 {
            assert!(!ended, "the stream ended without the event awaited");
            ended = true;
            client.handle_eof(now);
        } else {
            client.handle_tls(now, &buf[..n]);
        }
    }
}

/// Connects a sans-IO client and returns it, its socket, and whether the
/// handshake resumed a session.
#[allow(clippy::disallowed_methods)] // the test drives a real socket
fn connect_sans_io(
    address: std::net::SocketAddr,
    config: &ClientConfig,
) -> (Client, TcpStream, bool) {
    let mut socket = TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut client = Client::new(config, localhost(), std::time::Instant::now()).unwrap();
    let event = drive_until(&mut client, &mut socket, |e| {
        matches!(e, ClientEvent::Connected(_))
    });
    let ClientEvent::Connected(Some(handshake)) = event else {
        panic!("not a TLS connection: {event:?}");
    };
    (client, socket, handshake.resumed)
}

#[test]
#[allow(clippy::disallowed_methods)] // the test drives a real socket
fn r11_a_client_whose_session_a_fatal_alert_ended_does_not_resume_it() {
    let running = preset_server();
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let config = viewer_config(versions);
        // A full handshake, and an answer (which brings TLS 1.3's tickets).
        let (mut first, mut socket, resumed) = connect_sans_io(running.address, &config);
        assert!(!resumed, "{versions:?}");
        let read = mbaps_codec::Request::ReadHoldingRegisters {
            address: 0,
            quantity: 1,
        };
        first
            .send_request(std::time::Instant::now(), 1, &read)
            .unwrap();
        drive_until(&mut first, &mut socket, |e| {
            matches!(e, ClientEvent::Response { .. })
        });
        first.close(std::time::Instant::now());
        let mut out = Vec::new();
        first.poll_transmit(&mut out);
        socket.write_all(&out).unwrap();

        // The session resumes, then a record that does not decrypt arrives:
        // the client ends the session with a fatal alert.
        let (mut victim, _socket, resumed) = connect_sans_io(running.address, &config);
        assert!(resumed, "{versions:?}: the precondition, a resumed session");
        let mut garbage = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        garbage.extend([0xA5; 0x20]);
        victim.handle_tls(std::time::Instant::now(), &garbage);
        let ended = std::iter::from_fn(|| victim.poll_event()).last();
        assert!(
            matches!(
                ended,
                Some(ClientEvent::Closed(mbaps_session::CloseReason::Failed(_)))
            ),
            "{versions:?}: a record that does not decrypt is a fatal error: {ended:?}"
        );

        // The client forgot the server's sessions: the next handshake is full.
        let (_next, _socket, resumed) = connect_sans_io(running.address, &config);
        assert!(
            !resumed,
            "{versions:?}: the client resumed a session a fatal alert ended"
        );
    }
    running.stop();
}

/// R-46 as it reads: each side sends its whole chain, the root CA
/// included (given with the chain, it is sent; TLS 1.3 would let it be
/// left out, and mbaps does not). Each side is checked from a plain
/// rustls peer, which keeps what it received.
#[test]
fn r46_each_side_sends_its_whole_chain_down_to_the_root() {
    use mbaps_session::rustls::server::WebPkiClientVerifier;
    let pki = pki();
    let server_chain = common::chain(&pki.server);
    let client_chain = common::chain(pki.client("viewer").unwrap());
    assert_eq!(server_chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(client_chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(server_chain[2].as_ref(), pki.ca.cert_der.as_slice());

    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        // Our server, seen by a rustls client.
        let config = common::client_config(pki, pki.client("viewer").unwrap());
        let mut client =
            ClientConnection::new(Arc::new(config.tls().unwrap().clone()), localhost()).unwrap();
        let server = mbaps_session::ServerConfig::builder(
            common::ca(pki),
            server_chain.clone(),
            common::key(&pki.server),
            common::policy(),
        )
        .versions(versions)
        .build()
        .unwrap();
        let mut session = mbaps_session::Server::new(&server, pki_time()).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            assert_eq!(session.handle_tls(pki_time(), &bytes), bytes.len());
            let mut back = Vec::new();
            session.poll_transmit(&mut back);
            if back.is_empty() && bytes.is_empty() {
                break;
            }
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(session.is_authenticated(), "{versions:?}");
        assert_eq!(
            client.peer_certificates().unwrap(),
            server_chain.as_slice(),
            "{versions:?}: the server's chain"
        );

        // Our client, seen by a rustls server that requires a certificate.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(common::ca(pki)[0].clone()).unwrap();
        let provider = Arc::new(crypto_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let version = match versions {
            TlsVersions::Tls12Only => &rustls::version::TLS12,
            _ => &rustls::version::TLS13,
        };
        let tls_server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_chain.clone(), common::key(&pki.server))
            .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(tls_server)).unwrap();
        let mut client = Client::new(&config, localhost(), pki_time()).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            client.poll_transmit(&mut bytes);
            server.read_tls(&mut &bytes[..]).unwrap();
            server.process_new_packets().unwrap();
            let mut back = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut back).unwrap();
            }
            if back.is_empty() && bytes.is_empty() {
                break;
            }
            client.handle_tls(pki_time(), &back);
        }
        assert_eq!(
            server.peer_certificates().unwrap(),
            client_chain.as_slice(),
            "{versions:?}: the client's chain"
        );
    }
}
