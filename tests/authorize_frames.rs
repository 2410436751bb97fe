//! The authorization path a server session runs, across crates, on real
//! bytes: the role from a real client certificate, the example policy, MBAP
//! frames off the wire, and the exception 0x01 ADU a denied request gets
//! with its transaction id and unit id echoed.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use mbaps_authz::{Decision, Policy, role_from_certificate};
use mbaps_codec::{Decoded, ExceptionCode, MbapHeader, Response, decode, encode_response};
use mbaps_test_pki::TestPki;

/// Answers every request of `stream` as the session will: allowed requests
/// are listed by transaction id, denied ones are answered exception 0x01.
fn serve(client: &str, stream: &[u8]) -> (Vec<u16>, Vec<u8>) {
    let pki = TestPki::generate(UNIX_EPOCH + Duration::from_secs(1_800_000_000)).unwrap();
    let certificate = &pki.client(client).unwrap().cert_der;
    let policy =
        Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.toml"))
            .unwrap();
    // Once per session: the role, then its compiled permissions.
    let role = role_from_certificate(certificate).unwrap();
    let permissions = policy.permissions(role.as_ref());

    let mut allowed = Vec::new();
    let mut answers = Vec::new();
    let mut rest = stream;
    while let Decoded::Frame { adu, consumed } = decode(rest).unwrap() {
        let request = adu.request().unwrap();
        match permissions.decide(adu.header.unit_id, &request) {
            Decision::Allow => allowed.push(adu.header.transaction_id),
            Decision::Deny(_) => {
                let exception = Response::exception(adu.pdu[0], ExceptionCode::IllegalFunction);
                let mut out = [0u8; 260];
                let n = encode_response(adu.header, &exception, &mut out).unwrap();
                answers.extend_from_slice(&out[..n]);
            }
        }
        rest = &rest[consumed..];
    }
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
    let header = |transaction_id, unit_id| MbapHeader {
        transaction_id,
        unit_id,
    };
    let mut expected = Vec::new();
    for (header, function) in [
        (header(1, 0xFF), 0x03),
        (header(2, 7), 0x06),
        (header(3, 0xFF), 0x01),
    ] {
        let mut out = [0u8; 9];
        encode_response(
            header,
            &Response::exception(function, ExceptionCode::IllegalFunction),
            &mut out,
        )
        .unwrap();
        expected.extend_from_slice(&out);
    }
    assert_eq!(answers, expected);
}
