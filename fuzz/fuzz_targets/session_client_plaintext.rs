//! The client's plaintext path (through plain Modbus/TCP, the same state
//! machine past the transport): arbitrary response bytes for three requests
//! in flight. Never panics; every request ends exactly once, and the
//! session's end is its last event, reported once.
#![no_main]

mod common;

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mbaps_codec::Request;
use mbaps_session::{Client, ClientConfig, ClientEvent};

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let config = ClientConfig::plain().build().unwrap();
    let name = mbaps_session::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = Client::new(&config, name, now).unwrap();
    let mut ends: HashMap<u16, usize> = HashMap::new();
    for quantity in [1, 2, 125] {
        let txn = client
            .send_request(
                now,
                1,
                &Request::ReadHoldingRegisters {
                    address: 0,
                    quantity,
                },
            )
            .unwrap();
        ends.insert(txn, 0);
    }
    let (cut, rest) = data.split_at(data.len().min(1));
    let step = usize::from(cut.first().copied().unwrap_or(1)).max(1);
    for chunk in rest.chunks(step) {
        client.handle_tls(now, chunk);
        if client.is_closed() {
            break;
        }
    }
    client.handle_eof(now);
    assert!(client.is_closed(), "the stream ended, so did the session");
    let mut closed = 0;
    while let Some(event) = client.poll_event() {
        assert_eq!(closed, 0, "an event after the session's end: {event:?}");
        match event {
            ClientEvent::Response { transaction_id, .. }
            | ClientEvent::Invalid { transaction_id, .. }
            | ClientEvent::Timeout { transaction_id }
            | ClientEvent::Aborted { transaction_id, .. } => {
                *ends
                    .get_mut(&transaction_id)
                    .expect("an outcome for a request never sent") += 1;
            }
            ClientEvent::Closed(_) => closed += 1,
            // An answer that matched nothing sent is reported, but it is
            // not the outcome of any request.
            ClientEvent::Connected(_) | ClientEvent::Dropped { .. } => {}
        }
    }
    assert_eq!(closed, 1, "the end is reported once");
    assert!(ends.values().all(|&n| n == 1), "{ends:?}");
});
