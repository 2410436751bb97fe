//! The TLS floor and the key log, with bytes no conforming client sends.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use mbaps_session::rustls::{self, KeyLog};
use mbaps_session::{Server, SessionError, TlsVersions};

/// A ClientHello with client_version TLS 1.1 (0x0302) and no
/// supported_versions extension, offering the one cipher suite `suite` and
/// the extensions `extensions` (type, body).
fn tls11_client_hello(suite: [u8; 2], extensions: &[(u16, &[u8])]) -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend([0x5A; 32]); // random
    hello.push(0); // session id
    hello.extend([0x00, 0x02, suite[0], suite[1]]);
    hello.extend([0x01, 0x00]); // null compression
    let mut ext = Vec::new();
    for (kind, body) in extensions {
        ext.extend(kind.to_be_bytes());
        ext.extend((body.len() as u16).to_be_bytes());
        ext.extend(*body);
    }
    if !extensions.is_empty() {
        hello.extend((ext.len() as u16).to_be_bytes());
        hello.extend(ext);
    }
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

/// Feeds `hello` to a fresh server: its error and the alert it sends.
fn refuse(hello: &[u8]) -> (SessionError, Vec<u8>) {
    let config = server_builder().build().unwrap();
    let mut server = Server::new(&config, virtual_epoch()).unwrap();
    let err = server.handle_tls(virtual_epoch(), hello).unwrap_err();
    let mut alert = Vec::new();
    server.poll_transmit(&mut alert);
    assert!(!server.is_authenticated());
    assert!(server.poll_event().is_none());
    // Sticky.
    assert_eq!(
        server.handle_tls(virtual_epoch(), &[0x16]),
        Err(err.clone())
    );
    (err, alert)
}

/// A fatal (2) alert record with `description`.
fn fatal_alert(description: u8) -> Vec<u8> {
    vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

#[test]
fn a_real_tls11_client_hello_is_refused_with_a_fatal_alert() {
    // What a TLS 1.1 client sends: an old suite, no TLS 1.2 extensions.
    let (err, alert) = refuse(&tls11_client_hello([0x00, 0x2F], &[]));
    assert!(
        matches!(err, SessionError::Tls(rustls::Error::PeerIncompatible(_))),
        "{err:?}"
    );
    assert_eq!(alert, fatal_alert(40)); // handshake_failure
}

#[test]
fn a_tls11_client_hello_with_modern_extensions_is_refused_for_its_version() {
    let signature_algorithms: &[u8] = &[0x00, 0x02, 0x04, 0x03];
    let supported_groups: &[u8] = &[0x00, 0x02, 0x00, 0x17];
    let point_formats: &[u8] = &[0x01, 0x00];
    let hello = tls11_client_hello(
        [0xC0, 0x2B],
        &[
            (0x000D, signature_algorithms),
            (0x000A, supported_groups),
            (0x000B, point_formats),
        ],
    );
    let (err, alert) = refuse(&hello);
    assert!(
        matches!(err, SessionError::Tls(rustls::Error::PeerIncompatible(_))),
        "{err:?}"
    );
    assert_eq!(alert, fatal_alert(70)); // protocol_version
}

#[derive(Debug, Default)]
struct Labels(Mutex<Vec<String>>);

impl KeyLog for Labels {
    fn log(&self, label: &str, _client_random: &[u8], _secret: &[u8]) {
        self.0.lock().unwrap().push(label.to_owned());
    }
}

#[test]
fn the_opt_in_key_log_receives_the_secrets_wireshark_needs() {
    for (versions, label) in [
        (TlsVersions::Tls13Only, "CLIENT_TRAFFIC_SECRET_0"),
        (TlsVersions::Tls12Only, "CLIENT_RANDOM"),
    ] {
        let labels = Arc::new(Labels::default());
        let server = server_builder()
            .versions(versions)
            .key_log(labels.clone())
            .build()
            .unwrap();
        let client = client_builder("operator").build().unwrap();
        let mut pair = Pair::new(&server, &client);
        pair.drive().unwrap();
        assert!(
            labels.0.lock().unwrap().iter().any(|l| l == label),
            "{versions:?}"
        );
    }
    // Off by default.
    let server = server_builder().build().unwrap();
    assert!(!server.tls().unwrap().key_log.will_log("CLIENT_RANDOM"));
}
