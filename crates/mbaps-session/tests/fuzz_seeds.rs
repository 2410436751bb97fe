//! The committed seeds of the session fuzz targets hold real TLS 1.2 and
//! 1.3 flights, so that the fuzzer starts from handshakes that parse:
//! ClientHellos (and a TLS 1.2 client's whole first exchange) for
//! `session_server_bytes`, server flights for `session_client_bytes`.
//!
//! This test checks that they still parse as far as flights recorded
//! against another PKI can: a server answers each ClientHello with its
//! own flight; a client takes each server flight's ServerHello and fails
//! only where the keys differ (a record it cannot decrypt, a certificate
//! it does not trust), never on the framing. `MBAPS_WRITE_FUZZ_SEEDS=1`
//! records them anew.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mbaps_session::rustls::Error as TlsError;
use mbaps_session::{Client, Server, SessionError, TlsVersions};

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

/// The flights of one handshake, recorded: (client hello, server flight,
/// client's second flight).
fn record(versions: TlsVersions) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let server = server_builder().versions(versions).build().unwrap();
    let client = client_builder("operator")
        .versions(versions)
        .build()
        .unwrap();
    let now = virtual_epoch();
    let mut server = Server::new(&server, now).unwrap();
    let mut client = Client::new(&client, localhost(), now).unwrap();
    let mut hello = Vec::new();
    client.poll_transmit(&mut hello);
    assert_eq!(server.handle_tls(now, &hello), hello.len());
    let mut flight = Vec::new();
    server.poll_transmit(&mut flight);
    client.handle_tls(now, &flight);
    let mut second = Vec::new();
    client.poll_transmit(&mut second);
    server.handle_tls(now, &second);
    assert!(server.is_authenticated());
    (hello, flight, second)
}

/// `session_server_bytes` cuts its input into reads of the first byte's
/// size: 0xFF, whole records mostly.
const CUT: u8 = 0xFF;

fn write_seeds() {
    for (versions, name) in [
        (TlsVersions::Tls13Only, "tls13"),
        (TlsVersions::Tls12Only, "tls12"),
    ] {
        let (hello, flight, second) = record(versions);
        let server = seeds("session_server_bytes");
        let mut seed = vec![CUT];
        seed.extend_from_slice(&hello);
        std::fs::write(server.join(format!("{name}_client_hello")), &seed).unwrap();
        seed.extend_from_slice(&second);
        std::fs::write(server.join(format!("{name}_client_flights")), &seed).unwrap();
        std::fs::write(
            seeds("session_client_bytes").join(format!("{name}_server_flight")),
            &flight,
        )
        .unwrap();
    }
}

fn drain_server(server: &mut Server) -> Vec<mbaps_session::ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

#[test]
fn the_handshake_seeds_are_real_flights_that_parse() {
    if std::env::var_os("MBAPS_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds();
    }
    let now = virtual_epoch();
    for name in ["tls13_client_hello", "tls12_client_hello"] {
        let seed = std::fs::read(seeds("session_server_bytes").join(name)).unwrap();
        assert_eq!(seed[0], CUT, "{name}: the cut byte");
        let config = server_builder().build().unwrap();
        let mut server = Server::new(&config, now).unwrap();
        server.handle_tls(now, &seed[1..]);
        assert!(!server.is_closed(), "{name}: refused");
        let mut flight = Vec::new();
        server.poll_transmit(&mut flight);
        assert_eq!(
            flight.first(),
            Some(&0x16),
            "{name}: a ServerHello in answer"
        );
    }
    for name in ["tls13_client_flights", "tls12_client_flights"] {
        let seed = std::fs::read(seeds("session_server_bytes").join(name)).unwrap();
        let config = server_builder().build().unwrap();
        let mut server = Server::new(&config, now).unwrap();
        server.handle_tls(now, &seed[1..]);
        // Recorded against another server's keys: its Finished (or for
        // 1.3, its encrypted flight) cannot check out.
        assert_fails_on_keys(name, failed(&drain_server(&mut server)));
    }
    for name in ["tls13_server_flight", "tls12_server_flight"] {
        let seed = std::fs::read(seeds("session_client_bytes").join(name)).unwrap();
        let versions = if name.starts_with("tls12") {
            TlsVersions::Tls12Only
        } else {
            TlsVersions::Tls13Only
        };
        let config = client_builder("operator")
            .versions(versions)
            .build()
            .unwrap();
        let mut client = Client::new(&config, localhost(), now).unwrap();
        let mut hello = Vec::new();
        client.poll_transmit(&mut hello);
        client.handle_tls(now, &seed);
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            events.push(event);
        }
        // Another handshake's keys and certificates: the ServerHello
        // parses; what depends on the keys does not check out.
        assert_fails_on_keys(name, failed(&events));
    }
}

/// A recorded flight replayed into a new session goes as far as the keys:
/// it fails there, and only there.
fn assert_fails_on_keys(name: &str, failure: Option<SessionError>) {
    match failure {
        Some(SessionError::Tls(error)) => assert!(
            matches!(
                error,
                TlsError::DecryptError
                    | TlsError::InvalidCertificate(_)
                    | TlsError::PeerMisbehaved(_)
            ),
            "{name}: {error:?}"
        ),
        other => panic!("{name}: {other:?}"),
    }
}
