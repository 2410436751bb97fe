//! A client session fed arbitrary bytes as the server's answer to its
//! ClientHello: never panics; its request ends in exactly one outcome and
//! the session's end is its last event, reported once.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mbaps_codec::Request;
use mbaps_session::{Client, ClientEvent};

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let name = mbaps_session::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = Client::new(common::client_config(), name, now).unwrap();
    let txn = client
        .send_request(
            now,
            1,
            &Request::ReadHoldingRegisters {
                address: 0,
                quantity: 1,
            },
        )
        .unwrap();
    let mut hello = Vec::new();
    client.poll_transmit(&mut hello);
    client.handle_tls(now, data);
    client.handle_eof(now);
    client.handle_timeout(now + std::time::Duration::from_secs(3600));
    assert!(client.is_closed(), "the stream ended, so did the session");
    let mut outcomes = 0;
    let mut closed = 0;
    while let Some(event) = client.poll_event() {
        assert_eq!(closed, 0, "an event after the session's end: {event:?}");
        match event {
            ClientEvent::Response { transaction_id, .. }
            | ClientEvent::Invalid { transaction_id, .. }
            | ClientEvent::Timeout { transaction_id }
            | ClientEvent::Aborted { transaction_id, .. } => {
                assert_eq!(transaction_id, txn);
                outcomes += 1;
            }
            ClientEvent::Closed(_) => closed += 1,
            // An answer that matched nothing sent is reported, but it is
            // not the outcome of any request.
            ClientEvent::Connected(_) | ClientEvent::Dropped { .. } => {}
        }
    }
    assert_eq!(closed, 1, "the end is reported once");
    assert_eq!(outcomes, 1, "the request ends exactly once");
});
