//! Plain Modbus/TCP (port 502) through the same state machines: off unless
//! built explicitly, every connection authorized as the configured role.

mod common;

use common::*;
use mbaps_authz::{Denial, Role};
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::{
    ClientConfig, ClientEvent, CloseReason, RequestOutcome, RequestRecord, ServerConfig,
    ServerEvent, Verdict,
};

fn plain_pair(role: Option<&str>) -> Pair {
    let role = role.map(|r| Role::new(r).unwrap());
    let server = ServerConfig::plain(example_policy(), role).build().unwrap();
    let client = ClientConfig::plain().build().unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    pair
}

#[test]
fn a_plain_session_is_up_at_once_and_established_by_its_first_request_with_the_configured_role() {
    let mut pair = plain_pair(Some("operator"));
    assert_eq!(pair.client_events, [ClientEvent::Connected(None)]);
    // Connected, but not a session yet: nothing has decoded.
    assert!(pair.server_events.is_empty(), "{:?}", pair.server_events);
    assert!(!pair.server.is_authenticated());
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    pair.client.send_request(pair.now, 1, &read).unwrap();
    pair.drive().unwrap();
    assert!(pair.server.is_authenticated());
    assert_eq!(
        pair.server_events[0],
        ServerEvent::Authenticated {
            role: Some(Role::new("operator").unwrap()),
            handshake: None
        }
    );
    assert!(matches!(pair.server_events[1], ServerEvent::Request { .. }));
    assert!(server_builder().build().unwrap().tls().is_some());
}

#[test]
fn a_plain_connection_that_sends_no_request_ends_at_the_handshake_timeout() {
    let config = ServerConfig::plain(example_policy(), None).build().unwrap();
    let start = virtual_epoch();
    let mut server = mbaps_session::Server::new(&config, start).unwrap();
    let limit = mbaps_session::Timers::default().handshake_timeout;
    assert_eq!(server.poll_timeout(), Some(start + limit));
    // Garbage that is no request does not establish it.
    server.handle_tls(start, &adu(1, 1, &[0x03, 0, 0, 0, 0]));
    while server.poll_event().is_some() {}
    assert!(!server.is_authenticated());
    server.handle_timeout(start + limit);
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Failed(
            mbaps_session::SessionError::NoRequest(limit)
        )))
    );
}

#[test]
fn plain_requests_are_authorized_and_answered_like_tls_ones() {
    let mut pair = plain_pair(Some("viewer"));
    pair.server_events.clear();
    let read = pair
        .client
        .send_request(
            pair.now,
            1,
            &Request::ReadHoldingRegisters {
                address: 0,
                quantity: 2,
            },
        )
        .unwrap();
    let write = pair
        .client
        .send_request(
            pair.now,
            1,
            &Request::WriteSingleCoil {
                address: 0,
                value: true,
            },
        )
        .unwrap();
    // The bytes on the wire are the bare ADUs.
    let mut wire = Vec::new();
    pair.client.poll_transmit(&mut wire);
    assert_eq!(
        &wire[..12],
        &[0, read as u8, 0, 0, 0, 6, 1, 0x03, 0, 0, 0, 2]
    );
    assert_eq!(pair.server.handle_tls(pair.now, &wire), wire.len());
    pair.collect();
    pair.drive().unwrap();
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::Answered(RequestRecord {
            verdict: Verdict::Denied(Denial::FunctionNotAllowed { function: 0x05 }),
            ..
        })
    )));
    let id = pair.request_ids()[0];
    pair.server
        .send_response(
            pair.now,
            id,
            &Response::ReadHoldingRegisters {
                values: Registers::from_values(&[5, 6]),
            },
        )
        .unwrap();
    pair.drive().unwrap();
    let outcomes: Vec<_> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                transaction_id,
                pdu,
                ..
            } => Some((*transaction_id, pdu.as_bytes().to_vec())),
            _ => None,
        })
        .collect();
    assert!(outcomes.contains(&(write, vec![0x85, ExceptionCode::IllegalFunction.code()])));
    assert!(outcomes.contains(&(read, vec![0x03, 4, 0, 5, 0, 6])));
}

#[test]
fn a_plain_connection_without_a_configured_role_gets_the_null_role() {
    let mut pair = plain_pair(None);
    pair.client
        .send_request(
            pair.now,
            1,
            &Request::ReadCoils {
                address: 0,
                quantity: 1,
            },
        )
        .unwrap();
    pair.drive().unwrap();
    assert!(pair.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::Answered(RequestRecord {
            verdict: Verdict::Denied(_),
            ..
        })
    )));
}

#[test]
fn a_plain_session_ends_on_eof_and_on_close() {
    let mut pair = plain_pair(Some("operator"));
    pair.server.handle_eof(pair.now);
    pair.collect();
    assert!(
        pair.server_events
            .contains(&ServerEvent::Closed(CloseReason::PeerClosed))
    );
    let mut pair = plain_pair(Some("operator"));
    let txn = pair
        .client
        .send_request(
            pair.now,
            1,
            &Request::ReadCoils {
                address: 0,
                quantity: 1,
            },
        )
        .unwrap();
    pair.client.close(pair.now);
    pair.collect();
    assert_eq!(
        &pair.client_events[1..],
        [
            ClientEvent::Aborted {
                transaction_id: txn,
                reason: CloseReason::LocalClose,
            },
            ClientEvent::Closed(CloseReason::LocalClose)
        ]
    );
}

fn adu(transaction_id: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = transaction_id.to_be_bytes().to_vec();
    out.extend([0, 0]);
    out.extend(((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend(pdu);
    out
}

#[test]
fn a_client_reports_wrong_function_wrong_unit_and_discards_unknown_ids() {
    let mut pair = plain_pair(Some("operator"));
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    let a = pair.client.send_request(pair.now, 1, &read).unwrap();
    let b = pair.client.send_request(pair.now, 1, &read).unwrap();
    let c = pair.client.send_request(pair.now, 1, &read).unwrap();
    pair.client_events.clear();
    let mut bytes = adu(a, 1, &[0x06, 0, 0, 0, 1]); // a write single register response
    bytes.extend(adu(b, 9, &[0x03, 2, 0, 1])); // the wrong unit
    bytes.extend(adu(0x7777, 1, &[0x03, 2, 0, 1])); // nobody asked
    bytes.extend(adu(c, 1, &[0x03, 3, 0, 1])); // odd byte count
    pair.client.handle_tls(pair.now, &bytes);
    pair.collect();
    use mbaps_session::InvalidResponse::*;
    let invalid: Vec<_> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Invalid {
                transaction_id,
                error,
            } => Some((*transaction_id, *error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        invalid[0],
        (
            a,
            WrongFunction {
                expected: 0x03,
                found: 0x06
            }
        )
    );
    assert_eq!(
        invalid[1],
        (
            b,
            WrongUnit {
                expected: 1,
                found: 9
            }
        )
    );
    assert!(matches!(invalid[2], (t, Malformed(_)) if t == c));
    assert_eq!(pair.client.discarded_responses(), 1);
    assert_eq!(pair.client.in_flight(), 0);
}

#[test]
fn a_server_discards_foreign_protocol_ids_and_answers_bad_pdus_with_their_exception() {
    let role = Role::new("operator").unwrap();
    let config = ServerConfig::plain(example_policy(), Some(role))
        .build()
        .unwrap();
    let mut server = mbaps_session::Server::new(&config, virtual_epoch()).unwrap();
    let mut bytes = vec![0, 1, 0, 7, 0, 6, 1, 0x03, 0, 0, 0, 1]; // protocol id 7
    bytes.extend(adu(2, 1, &[0x03, 0, 0, 0, 0])); // quantity 0
    bytes.extend(adu(3, 1, &[0x09, 0, 0, 0, 0])); // no such function
    bytes.extend(adu(4, 1, &[0x03, 0, 0, 0, 1])); // fine
    // Split mid-frame; each part fed as the session takes it.
    let mut events = Vec::new();
    for mut part in [&bytes[..20], &bytes[20..]] {
        while !part.is_empty() {
            let taken = server.handle_tls(virtual_epoch(), part);
            part = &part[taken..];
            while let Some(event) = server.poll_event() {
                events.push(event);
            }
        }
    }
    // What is no request is answered before the session is established;
    // the first request establishes it.
    assert!(matches!(
        events[0],
        ServerEvent::Discarded { protocol_id: 7 }
    ));
    assert!(matches!(
        events[1],
        ServerEvent::Answered(RequestRecord {
            verdict: Verdict::Rejected(_),
            outcome: RequestOutcome::Exception(ExceptionCode::IllegalDataValue),
            ..
        })
    ));
    assert!(matches!(
        events[2],
        ServerEvent::Answered(RequestRecord {
            verdict: Verdict::Rejected(_),
            outcome: RequestOutcome::Exception(ExceptionCode::IllegalFunction),
            ..
        })
    ));
    assert!(matches!(events[3], ServerEvent::Authenticated { .. }));
    assert!(matches!(events[4], ServerEvent::Request { header, .. } if header.transaction_id == 4));
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    let mut expected = adu(2, 1, &[0x83, 0x03]);
    expected.extend(adu(3, 1, &[0x89, 0x01]));
    assert_eq!(out, expected);
    // A length outside 2..=254 ends the session: the stream is out of step.
    server.handle_tls(virtual_epoch(), &[0, 5, 0, 0, 0, 255, 1]);
    assert!(matches!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Failed(
            mbaps_session::SessionError::Framing(_)
        )))
    ));
    assert!(server.is_closed());
}

#[test]
fn a_call_timeout_beyond_a_day_is_taken_as_a_day_instead_of_overflowing_the_clock() {
    let mut pair = plain_pair(Some("operator"));
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    pair.client
        .send_request_with_timeout(pair.now, 1, &read, std::time::Duration::MAX)
        .unwrap();
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + mbaps_session::MAX_TIMEOUT)
    );
}
