//! What a server session must do with a plaintext stream, worked out
//! independently of it: the stream's frames, one by one, each with the
//! outcome the policy's own decision (on the header's unit id) says. The
//! server targets compare the session's events and its output with this.

use mbaps_authz::{Decision, Denial, Policy, Role};
use mbaps_codec::{
    CodecError, Decoded, ExceptionCode, MbapHeader, Request, Response, decode, encode_response,
};
use mbaps_session::{Recording, RequestOutcome, Server, ServerEvent, Verdict};

/// What must happen to one frame of the stream.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Handed to the application (the policy allows it).
    Request,
    /// Denied for this reason, answered 0x01 by the session.
    Denied(Denial),
    /// Answered with this exception: the PDU does not decode.
    Rejected(ExceptionCode),
    /// Silently dropped: a protocol id other than 0.
    Discarded,
}

/// One frame and what must happen to it.
#[derive(Debug)]
pub struct Frame {
    pub header: MbapHeader,
    pub function: u8,
    pub outcome: Outcome,
}

/// The frames of `stream` up to the first one that ends the session (a
/// bad MBAP length, function code 0 or 0x80), and whether there is one.
pub fn frames(stream: &[u8], policy: &Policy, role: Option<&Role>) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        match decode(rest) {
            Ok(Decoded::Frame { adu, consumed }) => {
                let function = adu.pdu.first().copied().unwrap_or(0);
                if function & 0x7F == 0 {
                    return (frames, true);
                }
                let outcome = match Request::decode(adu.pdu) {
                    Err(error) => Outcome::Rejected(
                        error
                            .exception_code()
                            .unwrap_or(ExceptionCode::IllegalDataValue),
                    ),
                    Ok(request) => match policy.decide(role, adu.header.unit_id, &request) {
                        Decision::Allow => Outcome::Request,
                        Decision::Deny(denial) => Outcome::Denied(denial),
                    },
                };
                frames.push(Frame {
                    header: adu.header,
                    function,
                    outcome,
                });
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete { .. }) => return (frames, false),
            Err(CodecError::ProtocolId { frame_len, .. }) => {
                // Reported from its header on; its bytes dropped as they come.
                // Known from the protocol id on (only the outcome is compared).
                let header = MbapHeader {
                    transaction_id: 0,
                    unit_id: 0,
                };
                frames.push(Frame {
                    header,
                    function: 0,
                    outcome: Outcome::Discarded,
                });
                if frame_len > rest.len() {
                    return (frames, false);
                }
                rest = &rest[frame_len..];
            }
            Err(_) => return (frames, true),
        }
    }
}

/// What the checks have seen of a server so far.
#[derive(Default)]
pub struct Seen {
    /// The frames met so far.
    pub next: usize,
    /// The ADUs that must come out (in any order: the session answers what
    /// it refuses at once, the application later).
    pub answers: Vec<Vec<u8>>,
    /// Requests handed out whose record has not come yet.
    awaiting_record: Vec<MbapHeader>,
}

/// Has `server` record every request, as the checks expect.
pub fn record_every_request(server: &mut Server) {
    server.record(Recording::Every);
}

/// Checks a server's events against the frames, in order, answering each
/// request it hands over with exception 0x04; every request's record
/// must come once, with the decision the policy gives (the server must
/// record every request: [`record_every_request`]).
pub fn check_events(
    server: &mut Server,
    now: std::time::Instant,
    frames: &[Frame],
    seen: &mut Seen,
) {
    let Seen {
        next,
        answers,
        awaiting_record,
    } = seen;
    while let Some(event) = server.poll_event() {
        assert!(
            !matches!(event, ServerEvent::Closed(_)) || server.poll_event().is_none(),
            "events after the end"
        );
        let (header, outcome) = match event {
            ServerEvent::Request { id, header, pdu } => {
                assert!(
                    pdu.request().is_ok(),
                    "an undecodable request reached the application"
                );
                let answer =
                    Response::exception(pdu.as_bytes()[0], ExceptionCode::ServerDeviceFailure);
                // After the end nothing is sent (the connection closes),
                // but the late answer is recorded: the request abandoned.
                awaiting_record.push(header);
                let closed = server.is_closed();
                let sent = server.send_response(now, id, &answer);
                assert_eq!(sent.is_ok(), !closed, "{sent:?}");
                assert!(
                    server.send_response(now, id, &answer).is_err(),
                    "answered twice"
                );
                (header, Outcome::Request)
            }
            ServerEvent::Answered(record) => match record.verdict {
                Verdict::Allowed => {
                    // The record of a request answered above (0x04), or
                    // abandoned by a session that failed first.
                    let at = awaiting_record
                        .iter()
                        .position(|h| *h == record.header)
                        .expect("a record of a request never handed out, or a second one");
                    awaiting_record.remove(at);
                    assert!(matches!(
                        record.outcome,
                        RequestOutcome::Exception(ExceptionCode::ServerDeviceFailure)
                            | RequestOutcome::Abandoned { .. }
                    ));
                    continue;
                }
                Verdict::Denied(denial) => {
                    let code = ExceptionCode::IllegalFunction;
                    assert_eq!(record.outcome, RequestOutcome::Exception(code));
                    (record.header, Outcome::Denied(denial))
                }
                Verdict::Rejected(_) => match record.outcome {
                    RequestOutcome::Exception(code) => (record.header, Outcome::Rejected(code)),
                    other => panic!("a rejected request answered {other:?}"),
                },
            },
            ServerEvent::Discarded { .. } => {
                let frame = frames.get(*next).expect("a frame nobody sent");
                assert_eq!(frame.outcome, Outcome::Discarded, "frame {}", *next);
                *next += 1;
                continue;
            }
            ServerEvent::Authenticated { .. } | ServerEvent::Closed(_) => continue,
        };
        let frame = frames.get(*next).expect("an event for a frame nobody sent");
        assert_eq!(header, frame.header, "frame {}", *next);
        // A request the policy denies never reaches the application, and
        // one it allows is never denied.
        assert_eq!(
            outcome, frame.outcome,
            "frame {}: {:?}",
            *next, frame.header
        );
        let exception = match outcome {
            Outcome::Request => ExceptionCode::ServerDeviceFailure,
            Outcome::Denied(_) => ExceptionCode::IllegalFunction,
            Outcome::Rejected(code) => code,
            Outcome::Discarded => unreachable!(),
        };
        let mut adu = [0u8; 9];
        let n = encode_response(
            header,
            &Response::exception(frame.function, exception),
            &mut adu,
        )
        .unwrap();
        answers.push(adu[..n].to_vec());
        *next += 1;
    }
}

/// Checks how a run ended: the session ended exactly when the stream had
/// a fatal frame, it reported every frame, and its output (`out`,
/// plaintext) is the `answers` (some of them, after a fatal error: the
/// connection closes and answers may be cut).
pub fn check_end(server: &Server, frames: &[Frame], fatal: bool, seen: &Seen, out: &[u8]) {
    assert_eq!(
        server.is_closed(),
        fatal,
        "the session ended, or not, against the stream"
    );
    assert_eq!(seen.next, frames.len(), "frames the session never reported");
    assert!(
        seen.awaiting_record.is_empty(),
        "requests handed out without a record: {:?}",
        seen.awaiting_record
    );
    check_output(out, &seen.answers, fatal);
}

/// Checks that `out`, a server's output, is the `answers`, each once, in
/// any order; after the session failed (`cut`), some of them.
pub fn check_output(out: &[u8], answers: &[Vec<u8>], cut: bool) {
    let mut sent = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        match decode(rest) {
            Ok(Decoded::Frame { consumed, .. }) => {
                sent.push(rest[..consumed].to_vec());
                rest = &rest[consumed..];
            }
            other => panic!("the server sent a broken frame: {other:?}"),
        }
    }
    let mut expected = answers.to_vec();
    sent.sort();
    expected.sort();
    if cut {
        for adu in &sent {
            let at = expected
                .iter()
                .position(|a| a == adu)
                .expect("an answer to nothing");
            expected.remove(at);
        }
    } else {
        assert_eq!(sent, expected, "the output is not the answers, each once");
    }
}
