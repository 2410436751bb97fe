//! The authorization path of a real server session, across crates, on real
//! bytes: a client with a real certificate completes a TLS handshake with
//! an `mbaps_session::Server` running the example policy, then sends MBAP
//! frames; the test sees which requests reach the application and reads
//! back, decrypted, the exception 0x01 ADUs the session itself sends for
//! denied ones, transaction id and
//! unit id echoed. The expected bytes are written out by hand.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::{chain, key, localhost, pki, server_config};
use mbaps_session::rustls::ClientConnection;
use mbaps_session::{ClientConfig, Server, ServerEvent};

/// Moves bytes both ways until neither side has more to say; the
/// server's events are collected as they come.
fn pump(
    client: &mut ClientConnection,
    server: &mut Server,
    now: std::time::Instant,
    events: &mut Vec<ServerEvent>,
) {
    let mut to_server = Vec::new();
    for _ in 0..100 {
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let taken = server.handle_tls(now, &to_server);
        to_server.drain(..taken);
        events.extend(std::iter::from_fn(|| server.poll_event()));
        let mut to_client = Vec::new();
        server.poll_transmit(&mut to_client);
        if taken == 0 && to_client.is_empty() && !client.wants_write() {
            assert!(to_server.is_empty(), "the server stopped taking input");
            return;
        }
        client.read_tls(&mut &to_client[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    panic!("the pair never went quiet");
}

/// Runs `stream` through a server session as the client `name`: the
/// transaction ids handed to the application, and every byte the session
/// sent back after the handshake, decrypted.
fn serve(name: &str, stream: &[u8]) -> (Vec<u16>, Vec<u8>) {
    #[allow(clippy::disallowed_methods)] // certificates valid now need now
    let now = std::time::Instant::now();
    let credential = pki().client(name).unwrap();
    let client = ClientConfig::builder(common::ca(pki()), chain(credential), key(credential))
        .resumption(false)
        .build()
        .unwrap();
    let tls = Arc::new(client.tls().unwrap().clone());
    let mut client = ClientConnection::new(tls, localhost()).unwrap();
    let mut server = Server::new(&server_config(pki()), now).unwrap();
    let mut events = Vec::new();
    pump(&mut client, &mut server, now, &mut events);
    assert!(server.is_authenticated());
    let mut before = Vec::new();
    let _ = client.reader().read_to_end(&mut before);

    client.writer().write_all(stream).unwrap();
    events.clear();
    pump(&mut client, &mut server, now, &mut events);
    let allowed: Vec<u16> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Request { header, .. } => Some(header.transaction_id),
            _ => None,
        })
        .collect();
    let mut answers = Vec::new();
    let _ = client.reader().read_to_end(&mut answers);
    (allowed, answers)
}

/// Read holding registers (txn 1, unit 0xFF), write single register (txn 2,
/// unit 7), read coils (txn 3, unit 0xFF), back to back.
const STREAM: [u8; 36] = [
    0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0xFF, 0x03, 0x00, 0x6B, 0x00, 0x03, //
    0x00, 0x02, 0x00, 0x00, 0x00, 0x06, 0x07, 0x06, 0x00, 0x01, 0x00, 0x03, //
    0x00, 0x03, 0x00, 0x00, 0x00, 0x06, 0xFF, 0x01, 0x00, 0x13, 0x00, 0x13, //
];

#[test]
fn an_operator_may_read_and_write() {
    assert_eq!(serve("operator", &STREAM), (vec![1, 2, 3], vec![]));
}

#[test]
fn a_viewer_may_read_and_its_write_is_answered_illegal_function_with_the_header_echoed() {
    let (allowed, answers) = serve("viewer", &STREAM);
    assert_eq!(allowed, [1, 3]);
    assert_eq!(
        answers,
        [0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x07, 0x86, 0x01]
    );
}

#[test]
fn a_client_without_a_role_may_do_nothing() {
    let (allowed, answers) = serve("no-role", &STREAM);
    assert!(allowed.is_empty());
    assert_eq!(
        answers,
        [
            0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0xFF, 0x83, 0x01, //
            0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x07, 0x86, 0x01, //
            0x00, 0x03, 0x00, 0x00, 0x00, 0x03, 0xFF, 0x81, 0x01, //
        ]
    );
}
