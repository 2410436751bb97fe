//! The TLS floor and the key log, with bytes no conforming client sends.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use mbaps_session::rustls::{self, KeyLog};
use mbaps_session::{CloseReason, Server, ServerEvent, SessionError, TlsVersions};
use mbaps_test_pki::hello::{client_hello, modern_extensions, version};

/// Feeds `hello` to a fresh server: its error and the alert it sends.
fn refuse(hello: &[u8]) -> (SessionError, Vec<u8>) {
    let config = server_builder().build().unwrap();
    let mut server = Server::new(&config, virtual_epoch()).unwrap();
    server.handle_tls(virtual_epoch(), hello);
    // The end is the one event, and the alert is waiting by then.
    let err = match server.poll_event() {
        Some(ServerEvent::Closed(CloseReason::Failed(err))) => err,
        other => panic!("{other:?}"),
    };
    assert!(server.poll_event().is_none());
    let mut alert = Vec::new();
    server.poll_transmit(&mut alert);
    assert!(!server.is_authenticated());
    // Over: nothing more is read.
    assert_eq!(server.handle_tls(virtual_epoch(), &[0x16]), 0);
    assert!(server.poll_event().is_none());
    (err, alert)
}

/// A fatal (2) alert record with `description`.
fn fatal_alert(description: u8) -> Vec<u8> {
    vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

#[test]
fn a_real_tls11_client_hello_is_refused_with_a_fatal_alert() {
    // What a TLS 1.1 client sends: an old suite, no TLS 1.2 extensions.
    let (err, alert) = refuse(&client_hello(version::TLS11, &[0x002F], &[]));
    assert!(
        matches!(err, SessionError::Tls(rustls::Error::PeerIncompatible(_))),
        "{err:?}"
    );
    assert_eq!(alert, fatal_alert(40)); // handshake_failure
}

#[test]
fn a_tls11_client_hello_with_modern_extensions_is_refused_for_its_version() {
    let hello = client_hello(version::TLS11, &[0xC02B], &modern_extensions());
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
