//! Client and server sessions driven against each other in memory, with a
//! virtual clock: handshakes, authorization, pipelining, timeouts, closes,
//! and every certificate the specification says to refuse.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mbaps_authz::{Access, Denial, Role, RoleError, Table};
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::rustls::{self, CertificateError, ProtocolVersion};
use mbaps_session::{
    ClientEvent, CloseReason, ConfigError, CrlScope, Recording, RequestOutcome, RequestRecord,
    ServerEvent, ServerVerification, SessionError, TlsVersions, Verdict, parse_crls,
};

const READ: Request<'static> = Request::ReadHoldingRegisters {
    address: 0,
    quantity: 3,
};
const WRITE: Request<'static> = Request::WriteSingleRegister {
    address: 7,
    value: 42,
};

fn role(name: &str) -> Option<Role> {
    Some(Role::new(name).unwrap())
}

fn connected(client: &str, versions: TlsVersions) -> Pair {
    let server = server_builder().versions(versions).build().unwrap();
    let client = client_builder(client).build().unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    pair
}

/// Answers every request handed out so far: reads with 1, 2, 3, ...; writes echoed.
fn answer_requests(pair: &mut Pair) {
    let requests: Vec<_> = pair
        .server_events
        .drain(..)
        .filter_map(|e| match e {
            ServerEvent::Request { id, pdu, .. } => Some((id, pdu)),
            _ => None,
        })
        .collect();
    for (id, pdu) in requests {
        let request = pdu.request().unwrap();
        let values: Vec<u16> = (1..=125).collect();
        let response = match request {
            Request::ReadHoldingRegisters { quantity, .. } => Response::ReadHoldingRegisters {
                values: Registers::from_values(&values[..usize::from(quantity)]),
            },
            Request::WriteSingleRegister { address, value } => {
                Response::WriteSingleRegister { address, value }
            }
            other => panic!("unexpected {other:?}"),
        };
        pair.server.send_response(pair.now, id, &response).unwrap();
    }
    pair.drive().unwrap();
}

fn responses(pair: &Pair) -> Vec<(u16, Response<'static>)> {
    pair.client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response {
                transaction_id,
                pdu,
                ..
            } => {
                let bytes: &'static [u8] = Box::leak(pdu.as_bytes().to_vec().into_boxed_slice());
                Some((*transaction_id, Response::decode(bytes).unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_handshake_authenticates_the_role_over_tls13_and_tls12() {
    for (versions, expected) in [
        (TlsVersions::Tls13Only, ProtocolVersion::TLSv1_3),
        (TlsVersions::Tls12Only, ProtocolVersion::TLSv1_2),
    ] {
        let pair = connected("operator", versions);
        match &pair.server_events[..] {
            [
                ServerEvent::Authenticated {
                    role: r,
                    handshake: Some(handshake),
                },
            ] => {
                assert_eq!(*r, role("operator"));
                assert_eq!(handshake.version, expected);
                assert!(!handshake.resumed);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&pair.client_events[..], [ClientEvent::Connected(Some(h))] if h.version == expected)
        );
        assert!(pair.server.is_authenticated() && pair.client.is_connected());
    }
}

#[test]
fn tls12_negotiates_the_mandatory_ecdhe_ecdsa_aes128_gcm_suite() {
    let pair = connected("operator", TlsVersions::Tls12Only);
    let ServerEvent::Authenticated {
        handshake: Some(handshake),
        ..
    } = &pair.server_events[0]
    else {
        panic!()
    };
    assert_eq!(
        handshake.cipher_suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
}

#[test]
fn an_allowed_read_is_answered_and_a_denied_write_gets_exception_01_and_the_session_stays_up() {
    let mut pair = connected("viewer", TlsVersions::Both);
    pair.server_events.clear();
    let read = pair.client.send_request(pair.now, 0xFF, &READ).unwrap();
    let write = pair.client.send_request(pair.now, 0x11, &WRITE).unwrap();
    pair.drive().unwrap();
    // The write never reaches the application: the session answered it.
    // For the audit log: who, what function, which addresses, and why.
    let written = Access {
        table: Table::HoldingRegisters,
        first: 7,
        last: 7,
    };
    assert!(pair.server_events.iter().any(|e| matches!(e,
        ServerEvent::Answered(RequestRecord {
            header,
            function: 0x06,
            verdict: Verdict::Denied(Denial::FunctionNotAllowed { function: 0x06 }),
            outcome: RequestOutcome::Exception(ExceptionCode::IllegalFunction),
            role: Some(role),
            touches: [Some(touched), None],
            ..
        }) if header.transaction_id == write
            && header.unit_id == 0x11
            && role.as_str() == "viewer"
            && *touched == written)));
    answer_requests(&mut pair);
    let got = responses(&pair);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&(
        write,
        Response::exception(0x06, ExceptionCode::IllegalFunction)
    )));
    assert!(got.contains(&(
        read,
        Response::ReadHoldingRegisters {
            values: Registers::from_values(&[1, 2, 3])
        }
    )));
    // Still up: the next read works.
    let again = pair.client.send_request(pair.now, 0xFF, &READ).unwrap();
    pair.drive().unwrap();
    answer_requests(&mut pair);
    assert!(responses(&pair).iter().any(|(t, _)| *t == again));
}

#[test]
fn the_unit_id_and_transaction_id_are_echoed() {
    let mut pair = connected("operator", TlsVersions::Both);
    let txn = pair.client.send_request(pair.now, 0xF7, &READ).unwrap();
    pair.drive().unwrap();
    answer_requests(&mut pair);
    assert!(pair.client_events.iter().any(|e| matches!(e,
        ClientEvent::Response { transaction_id, unit_id: 0xF7, .. } if *transaction_id == txn)));
}

#[test]
fn sixteen_pipelined_requests_answered_out_of_order_are_each_matched() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server_events.clear();
    let mut sent = Vec::new();
    for quantity in 1..=16u16 {
        let request = Request::ReadHoldingRegisters {
            address: 0,
            quantity,
        };
        sent.push((
            pair.client.send_request(pair.now, 1, &request).unwrap(),
            quantity,
        ));
    }
    let ids: std::collections::HashSet<u16> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(ids.len(), 16, "transaction ids reused while outstanding");
    pair.drive().unwrap();
    let mut requests: Vec<_> = pair
        .server_events
        .drain(..)
        .filter_map(|e| match e {
            ServerEvent::Request { id, pdu, .. } => Some((id, pdu)),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 16);
    requests.reverse();
    let values: Vec<u16> = (1..=16).collect();
    for (id, pdu) in requests {
        let Request::ReadHoldingRegisters { quantity, .. } = pdu.request().unwrap() else {
            panic!()
        };
        let response = Response::ReadHoldingRegisters {
            values: Registers::from_values(&values[..usize::from(quantity)]),
        };
        pair.server.send_response(pair.now, id, &response).unwrap();
    }
    pair.drive().unwrap();
    let got = responses(&pair);
    assert_eq!(got.len(), 16);
    for (txn, quantity) in sent {
        let (_, response) = got.iter().find(|(t, _)| *t == txn).unwrap();
        let Response::ReadHoldingRegisters { values } = response else {
            panic!()
        };
        assert_eq!(values.len(), usize::from(quantity), "txn {txn}");
    }
}

#[test]
fn beyond_its_window_the_server_holds_requests_until_a_slot_frees_and_the_client_refuses() {
    let server = server_builder().max_outstanding(2).build().unwrap();
    let client = client_builder("operator")
        .max_outstanding(3)
        .build()
        .unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    pair.server_events.clear();
    let txns: Vec<u16> = (0..3)
        .map(|_| pair.client.send_request(pair.now, 1, &READ).unwrap())
        .collect();
    assert_eq!(
        pair.client.send_request(pair.now, 1, &READ),
        Err(SessionError::TooManyOutstanding(3))
    );
    pair.drive().unwrap();
    // Two in the window; the third waits, neither refused nor lost.
    assert_eq!(pair.request_ids().len(), 2, "{:?}", pair.server_events);
    assert!(!pair.server.wants_read());
    assert!(
        !pair
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Answered(_)))
    );
    answer_requests(&mut pair);
    // The freed slots let the third in.
    assert_eq!(pair.request_ids().len(), 1, "{:?}", pair.server_events);
    answer_requests(&mut pair);
    let mut answered: Vec<u16> = responses(&pair).iter().map(|(t, _)| *t).collect();
    answered.sort_unstable();
    assert_eq!(answered, txns);
    assert!(pair.server.wants_read());
}

#[test]
fn a_request_that_is_never_answered_times_out_and_its_late_response_is_discarded() {
    let mut pair = connected("operator", TlsVersions::Both);
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + Duration::from_secs(5))
    );
    pair.advance(Duration::from_secs(5)).unwrap();
    assert!(pair.client_events.contains(&ClientEvent::Timeout {
        transaction_id: txn
    }));
    answer_requests(&mut pair);
    assert_eq!(pair.client.discarded_responses(), 1);
    assert!(responses(&pair).is_empty());
}

#[test]
fn a_handshake_that_does_not_finish_times_out() {
    let server = server_builder().build().unwrap();
    let mut session = mbaps_session::Server::new(&server, virtual_epoch()).unwrap();
    let deadline = session.poll_timeout().unwrap();
    assert_eq!(deadline, virtual_epoch() + Duration::from_secs(10));
    session.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(session.poll_event(), None);
    session.handle_timeout(deadline);
    let err = SessionError::HandshakeTimeout(Duration::from_secs(10));
    assert_eq!(
        session.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Failed(err.clone())))
    );
    // Over: nothing more is read or reported, and sending says why.
    assert_eq!(session.handle_tls(deadline, &[0x16]), 0);
    assert_eq!(session.poll_event(), None);
    assert!(session.is_closed());
}

#[test]
fn an_idle_session_is_closed_by_the_server() {
    let mut pair = connected("operator", TlsVersions::Both);
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.now + Duration::from_secs(300))
    );
    pair.advance(Duration::from_secs(300)).unwrap();
    assert!(
        pair.server_events
            .contains(&ServerEvent::Closed(CloseReason::IdleTimeout))
    );
    assert!(
        pair.client_events
            .contains(&ClientEvent::Closed(CloseReason::PeerClosed))
    );
}

#[test]
fn a_client_close_is_seen_by_the_server_and_answered() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.client.close(pair.now);
    pair.drive().unwrap();
    assert!(
        pair.server_events
            .contains(&ServerEvent::Closed(CloseReason::PeerClosed))
    );
    assert!(
        pair.client_events
            .contains(&ClientEvent::Closed(CloseReason::LocalClose))
    );
    assert_eq!(
        pair.client.send_request(pair.now, 1, &READ),
        Err(SessionError::Closed)
    );
}

#[test]
fn a_server_close_aborts_the_clients_requests_in_flight() {
    let mut pair = connected("operator", TlsVersions::Both);
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    pair.server.close(pair.now);
    pair.drive().unwrap();
    assert!(pair.client_events.contains(&ClientEvent::Aborted {
        transaction_id: txn,
        reason: CloseReason::PeerClosed,
    }));
    assert!(
        pair.client_events
            .contains(&ClientEvent::Closed(CloseReason::PeerClosed))
    );
    assert!(
        pair.server_events
            .contains(&ServerEvent::Closed(CloseReason::LocalClose))
    );
}

#[test]
fn eof_without_close_notify_is_reported_as_such() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server.handle_eof(pair.now);
    pair.collect();
    assert!(
        pair.server_events
            .contains(&ServerEvent::Closed(CloseReason::PeerEofWithoutCloseNotify))
    );
}

#[test]
fn a_client_without_a_role_is_authenticated_with_the_null_role_and_denied_by_default() {
    let mut pair = connected("no-role", TlsVersions::Both);
    assert!(matches!(
        &pair.server_events[0],
        ServerEvent::Authenticated { role: None, .. }
    ));
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    assert!(responses(&pair).contains(&(
        txn,
        Response::exception(0x03, ExceptionCode::IllegalFunction)
    )));
}

fn refused(
    client: &str,
    server: mbaps_session::ServerConfigBuilder,
) -> (Option<SessionError>, Option<SessionError>, Pair) {
    let server = server.build().unwrap();
    let client = client_builder(client).build().unwrap();
    let mut pair = Pair::new(&server, &client);
    let (s, c) = pair.drive_to_failure();
    (s, c, pair)
}

fn invalid_certificate(err: &Option<SessionError>) -> &CertificateError {
    match err {
        Some(SessionError::Tls(rustls::Error::InvalidCertificate(e))) => e,
        other => panic!("not a certificate error: {other:?}"),
    }
}

#[test]
fn expired_and_not_yet_valid_client_certificates_are_refused() {
    let (server, client, pair) = refused("expired", server_builder());
    assert!(matches!(
        invalid_certificate(&server),
        CertificateError::Expired | CertificateError::ExpiredContext { .. }
    ));
    assert!(
        matches!(
            client,
            Some(SessionError::Tls(rustls::Error::AlertReceived(_)))
        ),
        "{client:?}"
    );
    assert!(!pair.server.is_authenticated());
    let (server, _, _) = refused("not-yet-valid", server_builder());
    assert!(matches!(
        invalid_certificate(&server),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
    ));
}

#[test]
fn a_revoked_client_certificate_is_refused_when_crls_are_configured() {
    // Only the client's own certificate in scope: the intermediate's CRL,
    // the only one this PKI's clients need, is enough.
    let scoped = || {
        server_builder()
            .crls(crls())
            .crl_scope(CrlScope::EndEntityOnly)
    };
    let (server, _, _) = refused("revoked", scoped());
    assert_eq!(invalid_certificate(&server), &CertificateError::Revoked);
    let (server, _, _) = refused("operator", scoped());
    assert_eq!(server, None);
    // The same certificate without the CRL is accepted (revocation status
    // is the CRL's to tell).
    let (server, _, _) = refused("revoked", server_builder());
    assert_eq!(server, None);
}

#[test]
fn with_the_whole_chain_in_scope_a_missing_crl_names_its_issuer() {
    let root_crl = || parse_crls(pki().root_crl_pem.as_bytes()).unwrap();
    // The default scope is the whole chain: an intermediate's CRL alone
    // would refuse every client, so the configuration is refused now,
    // naming the root whose CRL is missing.
    match server_builder().crls(crls()).build() {
        Err(ConfigError::MissingCrl { issuer }) => {
            assert!(issuer.contains("mbaps test root CA"), "{issuer}")
        }
        other => panic!("{other:?}"),
    }
    // Both CRLs: the whole chain is vouched for.
    let both = || server_builder().crls([crls(), root_crl()].concat());
    let (server, _, _) = refused("operator", both());
    assert_eq!(server, None);
    let (server, _, _) = refused("revoked", both());
    assert_eq!(invalid_certificate(&server), &CertificateError::Revoked);
    // The root's CRL alone: a client's status is unknown, and the refusal
    // says whose CRL is missing, not just "unknown revocation status".
    let (server, _, _) = refused("operator", server_builder().crls(root_crl()));
    invalid_certificate(&server);
    let message = server.unwrap().to_string();
    assert!(
        message.contains("no CRL from") && message.contains("mbaps test intermediate CA"),
        "{message}"
    );
}

#[test]
fn certificates_with_two_roles_or_a_role_of_the_wrong_type_fail_the_handshake() {
    for (client, expected) in [
        ("two-roles", RoleError::DuplicateRoleExtension { count: 2 }),
        (
            "octet-string-role",
            RoleError::WrongType {
                tag: 0x04,
                name: "OCTET STRING",
            },
        ),
    ] {
        let (server, client_err, pair) = refused(client, server_builder());
        let CertificateError::Other(other) = invalid_certificate(&server) else {
            panic!("{server:?}")
        };
        let role_error = other.0.downcast_ref::<RoleError>().expect("a role error");
        assert_eq!(role_error, &expected);
        assert!(client_err.is_some(), "the client got the alert");
        // Nothing before the end: no authentication, no request.
        assert!(
            matches!(
                &pair.server_events[..],
                [ServerEvent::Closed(CloseReason::Failed(_))]
            ),
            "{:?}",
            pair.server_events
        );
    }
}

#[test]
fn a_client_certificate_from_an_unknown_ca_is_refused() {
    let untrusted = &pki().untrusted_client;
    let server = server_builder().build().unwrap();
    let client = mbaps_session::ClientConfig::builder(ca(), chain(untrusted), key(untrusted))
        .time_provider(Arc::new(FixedTime))
        .build()
        .unwrap();
    let mut pair = Pair::new(&server, &client);
    let (server_err, _) = pair.drive_to_failure();
    assert_eq!(
        invalid_certificate(&server_err),
        &CertificateError::UnknownIssuer
    );
}

#[test]
fn a_client_that_sends_no_certificate_gets_a_fatal_alert_and_no_session() {
    // on TLS 1.3 and 1.2, the client is told with a fatal
    // alert. rustls sends certificate_required (116, from TLS 1.3) on TLS
    // 1.2 too, where RFC 5246 names handshake_failure: an unknown alert is
    // fatal to a TLS 1.2 client all the same (docs/conformance.md, R-10).
    let alert = rustls::AlertDescription::CertificateRequired;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // A plain rustls client without client authentication.
        let tls = rustls::ClientConfig::builder_with_details(
            Arc::new(mbaps_session::crypto_provider()),
            Arc::new(FixedTime),
        )
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca()[0].clone()).unwrap();
            roots
        })
        .with_no_client_auth();
        let server = server_builder().build().unwrap();
        let mut session = mbaps_session::Server::new(&server, virtual_epoch()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(tls), localhost()).unwrap();
        let mut client_err = None;
        let mut events = Vec::new();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            session.handle_tls(virtual_epoch(), &bytes);
            while let Some(event) = session.poll_event() {
                events.push(event);
            }
            let mut back = Vec::new();
            session.poll_transmit(&mut back);
            if back.is_empty() {
                break;
            }
            client.read_tls(&mut &back[..]).unwrap();
            if let Err(err) = client.process_new_packets() {
                client_err = Some(err);
                break;
            }
        }
        assert_eq!(
            failed(&events),
            Some(SessionError::Tls(rustls::Error::NoCertificatesPresented)),
            "{version:?}"
        );
        assert_eq!(
            client_err,
            Some(rustls::Error::AlertReceived(alert)),
            "{version:?}: the client learns why"
        );
        assert!(!session.is_authenticated());
        assert_eq!(events.len(), 1, "only the end: {events:?}");
    }
}

#[test]
fn a_client_that_checks_names_refuses_a_server_certificate_for_another_name() {
    let server = server_builder().build().unwrap();
    let client = client_builder("operator").build().unwrap();
    let name = rustls::pki_types::ServerName::try_from("plc7.plant.example").unwrap();
    let mut pair = Pair::with_name(&server, &client, name.clone());
    let (_, client_err) = pair.drive_to_failure();
    assert!(
        matches!(
            client_err,
            Some(SessionError::Tls(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )))
        ),
        "{client_err:?}"
    );
    // The loudly named chain-only option accepts it.
    let client = client_builder("operator")
        .verification(ServerVerification::ChainOnlyNameNotCheckedInsecure)
        .build()
        .unwrap();
    let mut pair = Pair::with_name(&server, &client, name);
    pair.drive().unwrap();
    assert!(pair.client.is_connected());
}

#[test]
fn a_pinned_server_certificate_is_accepted_and_another_is_not() {
    let server = server_builder().build().unwrap();
    let pinned = chain(&pki().server)[0].clone();
    let client = client_builder("operator")
        .verification(ServerVerification::Pinned(pinned))
        .build()
        .unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    assert!(pair.client.is_connected());
    let other = chain(&pki().intermediate)[0].clone();
    let client = client_builder("operator")
        .verification(ServerVerification::Pinned(other))
        .build()
        .unwrap();
    let mut pair = Pair::new(&server, &client);
    let (_, client_err) = pair.drive_to_failure();
    assert!(client_err.is_some());
}

#[test]
fn a_resumed_session_keeps_the_role_of_the_full_handshake() {
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let server = server_builder().versions(versions).build().unwrap();
        let client = client_builder("operator").build().unwrap();
        let mut first = Pair::new(&server, &client);
        first.drive().unwrap();
        let mut second = Pair::new(&server, &client);
        second.drive().unwrap();
        match &second.server_events[..] {
            [
                ServerEvent::Authenticated {
                    role: r,
                    handshake: Some(handshake),
                },
            ] => {
                assert!(handshake.resumed, "{versions:?}: not resumed");
                assert_eq!(*r, role("operator"));
            }
            other => panic!("{other:?}"),
        }
        // And the resumed session authorizes as the role says.
        let txn = second.client.send_request(second.now, 1, &WRITE).unwrap();
        second.drive().unwrap();
        assert!(second.server_events.iter().any(
            |e| matches!(e, ServerEvent::Request { header, .. } if header.transaction_id == txn)
        ));
    }
}

#[test]
fn a_response_for_the_wrong_function_is_answered_0x04_by_the_server_session() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server.record(Recording::Every);
    pair.server_events.clear();
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    let id = pair.request_ids()[0];
    let wrong = Response::WriteSingleRegister {
        address: 0,
        value: 0,
    };
    assert_eq!(
        pair.server.send_response(pair.now, id, &wrong),
        Err(SessionError::WrongFunction {
            expected: 0x03,
            found: 0x06
        })
    );
    // Not fatal, and the request had its one answer: 0x04, not the wrong
    // function's response (the client would take it for invalid).
    assert_eq!(pair.server.outstanding(), 0);
    let right = Response::ReadHoldingRegisters {
        values: Registers::from_values(&[1, 2, 3]),
    };
    assert_eq!(
        pair.server.send_response(pair.now, id, &right),
        Err(SessionError::UnknownRequest(id))
    );
    pair.drive().unwrap();
    assert_eq!(
        responses(&pair),
        [(
            txn,
            Response::exception(0x03, ExceptionCode::ServerDeviceFailure)
        )]
    );
    let records: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Answered(record) => Some((record.verdict, record.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        records,
        [(
            Verdict::Allowed,
            RequestOutcome::Exception(ExceptionCode::ServerDeviceFailure)
        )]
    );
}

#[test]
fn closing_during_the_handshake_abandons_it_cleanly_on_both_sides() {
    let server = server_builder().build().unwrap();
    let client = client_builder("operator").build().unwrap();
    let mut pair = Pair::new(&server, &client);
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.client.close(pair.now);
    pair.collect();
    assert_eq!(
        pair.client_events,
        [
            ClientEvent::Aborted {
                transaction_id: txn,
                reason: CloseReason::LocalClose,
            },
            ClientEvent::Closed(CloseReason::LocalClose)
        ]
    );
    pair.drive().unwrap();
    assert_eq!(
        pair.server_events,
        [ServerEvent::Closed(CloseReason::PeerClosed)]
    );
    assert!(!pair.server.is_authenticated());
}

#[test]
fn eof_during_the_handshake_ends_the_session_without_an_error() {
    let server = server_builder().build().unwrap();
    let mut session = mbaps_session::Server::new(&server, virtual_epoch()).unwrap();
    session.handle_eof(virtual_epoch());
    assert_eq!(
        session.poll_event(),
        Some(ServerEvent::Closed(CloseReason::PeerEofWithoutCloseNotify))
    );
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_response_written_just_before_close_still_reaches_the_client() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server_events.clear();
    let txn = pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    let id = pair.request_ids()[0];
    let response = Response::ReadHoldingRegisters {
        values: Registers::from_values(&[1, 2, 3]),
    };
    pair.server.send_response(pair.now, id, &response).unwrap();
    pair.server.close(pair.now);
    pair.drive().unwrap();
    let position =
        |wanted: &dyn Fn(&ClientEvent) -> bool| pair.client_events.iter().position(wanted).unwrap();
    let answered = position(
        &|e| matches!(e, ClientEvent::Response { transaction_id, .. } if *transaction_id == txn),
    );
    let closed = position(&|e| matches!(e, ClientEvent::Closed(CloseReason::PeerClosed)));
    assert!(answered < closed);
}

#[test]
fn answering_after_close_says_the_session_is_closed() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server_events.clear();
    pair.client.send_request(pair.now, 1, &READ).unwrap();
    pair.drive().unwrap();
    let id = pair.request_ids()[0];
    pair.server.close(pair.now);
    let response = Response::ReadHoldingRegisters {
        values: Registers::from_values(&[1, 2, 3]),
    };
    assert_eq!(
        pair.server.send_response(pair.now, id, &response),
        Err(SessionError::Closed)
    );
}

#[test]
fn bytes_after_the_peers_close_notify_are_dropped_not_read_forever() {
    // Found by the state-machine model: rustls reads nothing after a
    // close_notify, and the session offered the rest again, forever.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pair = connected("operator", TlsVersions::Both);
        pair.server.close(pair.now);
        let mut close_notify = Vec::new();
        pair.server.poll_transmit(&mut close_notify);
        pair.client.handle_tls(pair.now, &close_notify);
        // Then a peer sends more: a record rustls will not read.
        let after = [0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5];
        pair.client.handle_tls(pair.now, &after);
        pair.collect();
        let _ = done.send(pair.client_events);
    });
    let events = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("handle_tls returned");
    assert!(events.contains(&ClientEvent::Closed(CloseReason::PeerClosed)));
}

/// A recorded session whose client closes while a write is with the
/// application: the late answer is recorded (abandoned, with what was
/// done), and only then is the end reported, as the last event.
#[test]
fn a_late_answer_is_recorded_abandoned_with_what_was_done_and_the_end_follows() {
    let mut pair = connected("operator", TlsVersions::Both);
    pair.server.record(Recording::EveryWithPdus);
    pair.server_events.clear();
    pair.client.send_request(pair.now, 9, &WRITE).unwrap();
    pair.drive().unwrap();
    let id = pair.request_ids()[0];
    pair.client.close(pair.now);
    pair.drive().unwrap();
    assert!(pair.server.is_closed());
    assert!(
        !pair
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Closed(_))),
        "the end waits for the record: {:?}",
        pair.server_events
    );
    assert_eq!(pair.server.outstanding(), 1);
    pair.now += Duration::from_millis(30);
    let done = Response::WriteSingleRegister {
        address: 7,
        value: 42,
    };
    assert_eq!(
        pair.server.send_response(pair.now, id, &done),
        Err(SessionError::Closed),
        "nothing is sent"
    );
    pair.collect();
    let tail: Vec<_> = pair.server_events.iter().rev().take(2).rev().collect();
    let [
        ServerEvent::Answered(record),
        ServerEvent::Closed(CloseReason::PeerClosed),
    ] = tail[..]
    else {
        panic!("{:?}", pair.server_events);
    };
    assert_eq!(
        record.outcome,
        RequestOutcome::Abandoned {
            late: Some(mbaps_session::LateAnswer::Response)
        }
    );
    assert_eq!(record.latency(), Duration::from_millis(30));
    let pdus = record.pdus.as_ref().unwrap();
    assert_eq!(pdus.response.unwrap().as_bytes(), [0x06, 0, 7, 0, 42]);
    assert_eq!(pair.server.outstanding(), 0);
}

/// An adapter that stops waiting gives the requests up: each is recorded
/// abandoned without an answer, then the end. Without a record to keep
/// (nobody audits), the end comes at once.
#[test]
fn requests_given_up_are_recorded_never_answered_and_unrecorded_ones_do_not_hold_the_end() {
    for recording in [Recording::Every, Recording::Refused] {
        let mut pair = connected("operator", TlsVersions::Both);
        pair.server.record(recording);
        pair.server_events.clear();
        pair.client.send_request(pair.now, 9, &WRITE).unwrap();
        pair.drive().unwrap();
        pair.server.abandon_requests(pair.now);
        assert_eq!(
            pair.server.outstanding(),
            1,
            "an open session owes its answer"
        );
        pair.client.close(pair.now);
        pair.drive().unwrap();
        let ended = |pair: &Pair| {
            pair.server_events
                .iter()
                .any(|e| matches!(e, ServerEvent::Closed(_)))
        };
        if recording == Recording::Refused {
            assert!(ended(&pair), "nothing to wait for");
            assert_eq!(pair.server.outstanding(), 0);
            continue;
        }
        assert!(!ended(&pair));
        pair.server.abandon_requests(pair.now);
        pair.collect();
        let records: Vec<_> = pair
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Answered(record) => Some(record.outcome),
                _ => None,
            })
            .collect();
        assert_eq!(records, [RequestOutcome::Abandoned { late: None }]);
        assert!(matches!(
            pair.server_events.last(),
            Some(ServerEvent::Closed(_))
        ));
    }
}

#[test]
fn a_damaged_record_after_our_close_notify_fails_the_session_without_a_panic_or_an_alert() {
    // rustls's own `debug_assert` (rustls issue 959): once close_notify is
    // sent, a record that fails to decrypt or to parse would send a second
    // fatal alert, and a debug build panics; a release build would send
    // that alert. Both fail the session with the TLS error (its keys are
    // forgotten, R-11) and send nothing more. Both sides, TLS 1.3 and 1.2.
    let mut undecryptable = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    undecryptable.extend([0xAA; 32]);
    let damaged: [&[u8]; 3] = [
        &undecryptable,
        // Not a record type at all.
        &[0x42, 0x03, 0x03, 0x00, 0x01, 0x00],
        // A record longer than any allowed.
        &[0x17, 0x03, 0x03, 0xFF, 0xFF, 0x00],
    ];
    let closed = |reason: &CloseReason| matches!(reason, CloseReason::Failed(SessionError::Tls(_)));
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        for record in damaged {
            let mut pair = connected("operator", versions);
            pair.server.close(pair.now);
            let mut close_notify = Vec::new();
            pair.server.poll_transmit(&mut close_notify);
            assert!(!close_notify.is_empty(), "the server sent no close_notify");
            pair.server.handle_tls(pair.now, record);
            pair.collect();
            let mut after = Vec::new();
            pair.server.poll_transmit(&mut after);
            assert_eq!(after, [], "{versions:?} {record:x?}: the server sent more");
            assert!(
                matches!(pair.server_events.last(), Some(ServerEvent::Closed(r)) if closed(r)),
                "{versions:?} {record:x?}: {:?}",
                pair.server_events.last()
            );

            let mut pair = connected("operator", versions);
            pair.client.close(pair.now);
            let mut close_notify = Vec::new();
            pair.client.poll_transmit(&mut close_notify);
            assert!(!close_notify.is_empty(), "the client sent no close_notify");
            pair.client.handle_tls(pair.now, record);
            pair.collect();
            let mut after = Vec::new();
            pair.client.poll_transmit(&mut after);
            assert_eq!(after, [], "{versions:?} {record:x?}: the client sent more");
            assert!(
                matches!(pair.client_events.last(), Some(ClientEvent::Closed(r)) if closed(r)),
                "{versions:?} {record:x?}: {:?}",
                pair.client_events.last()
            );
        }
    }
}

#[test]
fn a_client_may_send_its_most_calls_of_the_largest_size_before_draining() {
    // 256 writes of 123 registers are 66,560 bytes: the session's output
    // holds them all (it held 64 KiB, and the 253rd failed the session).
    let server = server_builder().max_outstanding(256).build().unwrap();
    let client = client_builder("operator")
        .max_outstanding(256)
        .build()
        .unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    pair.server_events.clear();
    let values = [7u16; 123];
    let write = Request::WriteMultipleRegisters {
        address: 0,
        values: Registers::from_values(&values),
    };
    let sent: Vec<u16> = (0..256)
        .map(|n| {
            let sent = pair.client.send_request(pair.now, 1, &write);
            sent.unwrap_or_else(|error| panic!("call {n}: {error}"))
        })
        .collect();
    let mut requests = Vec::new();
    pair.client.poll_transmit(&mut requests);
    assert!(!pair.client.is_closed());
    pair.server_inbox = requests;
    pair.drive().unwrap();
    let received: Vec<u16> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request { header, .. } => Some(header.transaction_id),
            _ => None,
        })
        .collect();
    assert_eq!(received, sent);
}
