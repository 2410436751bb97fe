//! A client session fed arbitrary bytes as the server's answer to its
//! ClientHello: never panics; its request always ends in exactly one outcome.
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
        .send_request(now, 1, &Request::ReadHoldingRegisters { address: 0, quantity: 1 })
        .unwrap();
    let mut hello = Vec::new();
    client.poll_transmit(&mut hello);
    let _ = client.handle_tls(now, data);
    let _ = client.handle_eof(now);
    let _ = client.handle_timeout(now + std::time::Duration::from_secs(3600));
    let mut outcomes = 0;
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Response { transaction_id, .. }
            | ClientEvent::Invalid { transaction_id, .. }
            | ClientEvent::Timeout { transaction_id }
            | ClientEvent::Aborted { transaction_id } => {
                assert_eq!(transaction_id, txn);
                outcomes += 1;
            }
            _ => {}
        }
    }
    // Either the session failed (no outcome owed) or the request ended once.
    assert!(outcomes <= 1);
    if !client.is_closed() {
        assert_eq!(outcomes, 1);
    }
});
