//! The blocking client: several requests in flight, matched by transaction
//! id, and per-call timeouts.

mod common;

use std::time::Duration;

use common::{localhost, plain_client, reverse_order_device};
use mbaps_codec::Request;
use mbaps_session::ClientError;
use mbaps_std::Calls;
use mbaps_std::StdClient;

#[test]
fn a_pipeline_keeps_requests_in_flight_and_matches_answers_out_of_order() {
    let device = reverse_order_device(4);
    let mut client = StdClient::connect(device, &plain_client(), localhost()).unwrap();
    let requests: Vec<(u8, Request<'_>)> = (0..8u16)
        .map(|i| {
            let read = Request::ReadHoldingRegisters {
                address: i * 10,
                quantity: 2,
            };
            (1, read)
        })
        .collect();
    let results = client.pipeline(&requests);
    let values: Vec<Vec<u16>> = results
        .into_iter()
        .map(|r| {
            let pdu = r.unwrap();
            pdu.as_bytes()[2..]
                .chunks(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect()
        })
        .collect();
    let expected: Vec<Vec<u16>> = (0..8u16).map(|i| vec![i * 10, i * 10 + 1]).collect();
    assert_eq!(values, expected);
}

#[test]
fn a_call_without_an_answer_times_out_and_the_next_one_still_gets_its_own() {
    // The device answers in pairs: the first call waits alone and times out.
    let device = reverse_order_device(2);
    let mut client = StdClient::connect(device, &plain_client(), localhost()).unwrap();
    client.set_request_timeout(Duration::from_millis(100));
    assert!(matches!(
        client.read_holding_registers(1, 10, 1),
        Err(ClientError::Timeout)
    ));
    // The second request releases both answers; the late one is dropped.
    client.set_request_timeout(Duration::from_secs(5));
    assert_eq!(client.read_holding_registers(1, 20, 1).unwrap(), [20]);
}

#[test]
fn a_server_that_takes_nothing_we_send_fails_the_calls_within_their_timeouts() {
    let address = common::runtime().block_on(common::deaf_server());
    let config = mbaps_session::ClientConfig::builder(
        common::ca(common::pki()),
        common::chain(common::pki().client("operator").unwrap()),
        common::key(common::pki().client("operator").unwrap()),
    )
    .max_outstanding(256)
    .build()
    .unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut client = StdClient::connect(address, &config, localhost()).unwrap();
        client.set_request_timeout(Duration::from_millis(50));
        let values = [0u16; 123];
        let writes: Vec<(u8, Request<'_>)> = (0..256)
            .map(|_| {
                let write = Request::WriteMultipleRegisters {
                    address: 0,
                    values: mbaps_codec::Registers::from_values(&values),
                };
                (1, write)
            })
            .collect();
        // Rounds of 256 long writes, each failing unanswered, until the
        // socket takes no more (about 5 MiB: more than the kernel buffers),
        // and then some.
        let mut errors = std::collections::BTreeSet::new();
        for _ in 0..80 {
            for error in client.pipeline(&writes).into_iter().filter_map(Result::err) {
                errors.insert(error.to_string());
            }
        }
        let _ = done.send(errors);
    });
    // Every call ended in an error, none hung behind a write: first the
    // calls' timeouts, then the write that timed out.
    let errors = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("a call hung behind a write nobody takes");
    assert!(
        errors.iter().any(|e| e.contains("took nothing more")),
        "{errors:?}"
    );
}
