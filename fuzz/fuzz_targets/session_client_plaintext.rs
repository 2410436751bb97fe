//! The client's plaintext path (through plain Modbus/TCP, the same state
//! machine past the transport): arbitrary response bytes for three requests
//! in flight. Never panics; each request ends at most once, and every one
//! ends once the stream closes.
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
            .send_request(now, 1, &Request::ReadHoldingRegisters { address: 0, quantity })
            .unwrap();
        ends.insert(txn, 0);
    }
    let (cut, rest) = data.split_at(data.len().min(1));
    let step = usize::from(cut.first().copied().unwrap_or(1)).max(1);
    for chunk in rest.chunks(step) {
        if client.handle_tls(now, chunk).is_err() {
            break;
        }
    }
    let _ = client.handle_eof(now);
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Response { transaction_id, .. }
            | ClientEvent::Invalid { transaction_id, .. }
            | ClientEvent::Timeout { transaction_id }
            | ClientEvent::Aborted { transaction_id } => {
                *ends.get_mut(&transaction_id).expect("an outcome for a request never sent") += 1;
            }
            _ => {}
        }
    }
    assert!(ends.values().all(|&n| n == 1), "{ends:?}");
});
