//! The oracle: what a device did with a batch of inputs, judged against
//! what the specification allows for each ([`Expect`]). What it allows is
//! never a finding: a frame with a protocol id other than 0 discarded, a
//! connection closed on a broken frame, the exceptions every function may
//! return.

use std::fmt;

use mbaps_codec::{ExceptionCode, Request, Response};
use mbaps_session::call::answers;
use serde::{Deserialize, Serialize};

use crate::input::{Delivery, Expect, Step, exception_allowed};
use crate::wire::Frame;

/// The classes of findings, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The whole device stopped: connections refused or reset, the TLS
    /// handshake no longer completes, or nothing answers at all.
    Crash,
    /// No answer on the connection within the timeout, while a fresh
    /// connection is answered.
    Hang,
    /// The device closed the session on an input it must answer.
    Disconnect,
    /// An answer that is not one: the wrong function or unit, a
    /// transaction id never sent, a byte count that does not match, an
    /// exception code the function may not return.
    InvalidResponse,
    /// More answers under a transaction id than requests sent under it.
    DuplicateResponse,
    /// A request the specification says must be refused, answered as if
    /// valid (lower severity).
    AcceptedMalformed,
}

impl FindingKind {
    /// The stable word of the class (`crash`, `hang`, `disconnect`,
    /// `invalid_response`, `duplicate_response`, `accepted_malformed`).
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::Crash => "crash",
            FindingKind::Hang => "hang",
            FindingKind::Disconnect => "disconnect",
            FindingKind::InvalidResponse => "invalid_response",
            FindingKind::DuplicateResponse => "duplicate_response",
            FindingKind::AcceptedMalformed => "accepted_malformed",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How the connection stood when the campaign stopped waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Open: every input that must be answered was, or the timeout passed.
    Open,
    /// The device closed it.
    Closed,
    /// It failed (a reset, a TLS alert).
    Failed(String),
    /// The device sent bytes that are no MBAP frame.
    Garbage(Vec<u8>),
}

/// One thing the oracle found in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The class.
    pub kind: FindingKind,
    /// The input it is about, by index into the batch (`None`: the
    /// batch as a whole).
    pub step: Option<usize>,
    /// What was seen, in words.
    pub summary: String,
}

/// The oracle's judgement of one connection's batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Findings on this connection.
    pub verdicts: Vec<Verdict>,
    /// Inputs that must be answered and were not, the connection still
    /// open: a hang if a fresh connection is answered, else a crash.
    pub silent: Vec<usize>,
}

/// Judges what the device sent (`frames`, in order) for `steps`, sent on
/// one connection, which ended as `end`.
pub fn judge(steps: &[Step], frames: &[Frame], end: &End) -> Judgement {
    let mut judgement = Judgement::default();
    let mut answered = vec![false; steps.len()];
    // Answers under transaction ids never sent, for the requests left
    // unanswered at the end.
    let mut misdirected: Vec<&Frame> = Vec::new();
    // After a frame the device may close on (a broken length), its framing
    // of what followed is its own: unmatched answers are not findings.
    let unframed = steps.iter().any(|s| s.expect == Expect::MayClose);
    for frame in frames {
        let candidates: Vec<usize> = (0..steps.len())
            .filter(|&i| steps[i].transaction_id() == frame.transaction_id)
            .collect();
        if candidates.is_empty() {
            misdirected.push(frame);
            continue;
        }
        let Some(index) = pair(steps, &answered, frame) else {
            // The request of the answer's function, of those under the id.
            let function = frame.pdu.first().map(|f| f & 0x7F);
            let blamed = candidates
                .iter()
                .rev()
                .find(|&&i| steps[i].function().map(|f| f & 0x7F) == function)
                .or(candidates.first());
            judgement.verdicts.push(Verdict {
                kind: FindingKind::DuplicateResponse,
                step: blamed.copied(),
                summary: format!(
                    "{} requests sent under transaction id {}, one more answer came",
                    candidates.len(),
                    frame.transaction_id
                ),
            });
            continue;
        };
        answered[index] = true;
        if let Some((kind, summary)) = check_answer(&steps[index], frame) {
            judgement.verdicts.push(Verdict {
                kind,
                step: Some(index),
                summary,
            });
        }
    }
    match end {
        End::Garbage(bytes) => judgement.verdicts.push(Verdict {
            kind: FindingKind::InvalidResponse,
            step: None,
            summary: format!(
                "bytes that are no MBAP frame: {}",
                hex::encode(&bytes[..bytes.len().min(32)])
            ),
        }),
        End::Open | End::Closed | End::Failed(_) => {}
    }
    // A close we asked for, or one the device may make on a broken frame.
    let closing_allowed = steps
        .iter()
        .any(|s| s.expect == Expect::MayClose || matches!(s.delivery, Delivery::CloseAfter { .. }));
    // What follows a frame whose framing the device may lose (a wrong
    // MBAP length) is read as part of it or not at all: not owed.
    let framed = steps
        .iter()
        .position(|s| s.expect == Expect::MayClose)
        .unwrap_or(steps.len());
    let mut unanswered: Vec<usize> = (0..framed)
        .filter(|&i| !answered[i] && !steps[i].expect.may_be_silent())
        .collect();
    // An answer under an id never sent is taken for the answer of a
    // request left unanswered (the id not echoed), in order; one that no
    // request is left for answers nothing at all.
    for frame in misdirected {
        let step = (!unanswered.is_empty()).then(|| unanswered.remove(0));
        if step.is_none() && unframed {
            // Read by the device out of a frame it lost the framing of.
            continue;
        }
        let summary = format!(
            "an answer under transaction id {} (unit {}, PDU {}), which was never sent",
            frame.transaction_id,
            frame.unit_id,
            hex::encode(&frame.pdu[..frame.pdu.len().min(32)])
        );
        judgement.verdicts.push(Verdict {
            kind: FindingKind::InvalidResponse,
            summary: match step {
                Some(step) => format!("{summary}, where {} was owed one", describe(&steps[step])),
                None => summary,
            },
            step,
        });
    }
    match (end, unanswered.first()) {
        (_, None) => {}
        (End::Open, Some(_)) => judgement.silent = unanswered,
        (_, Some(_)) if closing_allowed => {}
        (End::Closed | End::Failed(_) | End::Garbage(_), Some(&first)) => {
            let how = match end {
                End::Failed(why) => format!("the connection failed ({why})"),
                _ => "the device closed the session".into(),
            };
            judgement.verdicts.push(Verdict {
                kind: FindingKind::Disconnect,
                step: Some(first),
                summary: format!(
                    "{how} with {} request(s) it must answer unanswered, the first {}",
                    unanswered.len(),
                    describe(&steps[first])
                ),
            });
        }
    }
    judgement
}

/// The input `frame` answers, of `steps` not yet `answered`: of those
/// under its transaction id, the one whose protocol id, unit id and
/// function it echoes, else the one whose protocol id it echoes, else the
/// first. Under a reused transaction id, or with a frame to be discarded
/// waiting beside a request, an answer is the one of the input it echoes.
/// The exchange pairs by this rule too, so that it waits for the answers
/// the oracle will look for.
pub(crate) fn pair(steps: &[Step], answered: &[bool], frame: &Frame) -> Option<usize> {
    let answered_function = frame.pdu.first().map(|f| f & 0x7F);
    let echoes = |step: &Step| step.protocol_id() == frame.protocol_id;
    let fits = |step: &Step| {
        echoes(step)
            && step.unit_id() == frame.unit_id
            && step.function().map(|f| f & 0x7F) == answered_function
    };
    let waiting = || {
        steps.iter().enumerate().filter(|&(i, step)| {
            !answered.get(i).copied().unwrap_or(true)
                && step.transaction_id() == frame.transaction_id
        })
    };
    waiting()
        .find(|(_, step)| fits(step))
        .or_else(|| waiting().find(|(_, step)| echoes(step)))
        .or_else(|| waiting().next())
        .map(|(i, _)| i)
}

/// Checks one answer against the input it answers.
fn check_answer(step: &Step, frame: &Frame) -> Option<(FindingKind, String)> {
    let input = describe(step);
    let invalid = |why: String| Some((FindingKind::InvalidResponse, format!("{why}, to {input}")));
    match step.expect {
        Expect::Silence => {
            return Some((
                FindingKind::AcceptedMalformed,
                format!("answered {input}, a frame to be discarded without an answer"),
            ));
        }
        // What a broken frame is answered with is the device's business.
        Expect::MayClose => return None,
        Expect::Answer | Expect::Refusal | Expect::AnswerIfServed | Expect::RefusalIfServed => {}
    }
    if frame.protocol_id != 0 {
        return invalid(format!("an answer with protocol id {}", frame.protocol_id));
    }
    if frame.unit_id != step.unit_id() {
        return invalid(format!("an answer from unit {}", frame.unit_id));
    }
    let function = step.function().unwrap_or(0);
    let Some(&answered) = frame.pdu.first() else {
        return invalid("an empty PDU".into());
    };
    if answered & 0x7F != function & 0x7F {
        return invalid(format!("an answer for function 0x{answered:02X}"));
    }
    if answered & 0x80 != 0 {
        return match frame.pdu.as_slice() {
            [_, code] => match ExceptionCode::from_code(*code, function) {
                Ok(code) if exception_allowed(function, code) => None,
                _ => invalid(format!(
                    "exception 0x{code:02X}, which function 0x{function:02X} may not return"
                )),
            },
            pdu => invalid(format!("an exception response of {} bytes", pdu.len())),
        };
    }
    if step.expect.must_refuse() {
        return Some((
            FindingKind::AcceptedMalformed,
            format!(
                "a normal response ({}) to {input}, which must be refused",
                hex::encode(&frame.pdu)
            ),
        ));
    }
    let Ok(request) = Request::decode(step.pdu()) else {
        return None;
    };
    match Response::decode(&frame.pdu) {
        Err(error) => invalid(format!("a response that does not decode ({error})")),
        Ok(response) if !answers(&request, &response) => invalid(format!(
            "a response that does not match the request ({})",
            hex::encode(&frame.pdu)
        )),
        Ok(_) => None,
    }
}

/// An input in words: its function, transaction id and bytes.
pub(crate) fn describe(step: &Step) -> String {
    let function = step
        .function()
        .map_or("no function".into(), |f| format!("function 0x{f:02X}"));
    format!(
        "{function} (transaction id {}, ADU {})",
        step.transaction_id(),
        hex::encode(&step.adu[..step.adu.len().min(40)])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(txn: u16, quantity: u16) -> Step {
        let mut adu = vec![0, 0, 0, 0, 0, 6, 1, 0x03, 0, 0];
        adu[..2].copy_from_slice(&txn.to_be_bytes());
        adu.extend_from_slice(&quantity.to_be_bytes());
        Step::new(adu, Delivery::Record)
    }

    fn frame(txn: u16, pdu: &[u8]) -> Frame {
        Frame {
            transaction_id: txn,
            protocol_id: 0,
            unit_id: 1,
            pdu: pdu.to_vec(),
        }
    }

    fn kinds(judgement: &Judgement) -> Vec<FindingKind> {
        judgement.verdicts.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn right_answers_and_allowed_exceptions_are_no_finding() {
        let steps = [read(1, 1), read(2, 0), read(3, 1)];
        let frames = [
            frame(1, &[0x03, 2, 0, 7]),
            frame(2, &[0x83, 0x03]),
            frame(3, &[0x83, 0x0B]),
        ];
        let judgement = judge(&steps, &frames, &End::Open);
        assert_eq!(judgement, Judgement::default());
    }

    #[test]
    fn each_wrong_answer_is_named() {
        let steps = [read(1, 2), read(2, 0), read(3, 1), read(4, 1)];
        let frames = [
            // Two registers asked, one given.
            frame(1, &[0x03, 2, 0, 7]),
            // Quantity 0 answered as valid.
            frame(2, &[0x03, 0]),
            frame(3, &[0x83, 0x07]),
            frame(9, &[0x03, 2, 0, 1]),
            frame(3, &[0x03, 2, 0, 1]),
        ];
        let judgement = judge(&steps, &frames, &End::Open);
        assert_eq!(
            kinds(&judgement),
            [
                FindingKind::InvalidResponse,
                FindingKind::AcceptedMalformed,
                FindingKind::InvalidResponse,
                FindingKind::DuplicateResponse,
                FindingKind::InvalidResponse,
            ]
        );
        // The answer under id 9 is taken for request 4's: not a hang.
        assert_eq!(judgement.verdicts[4].step, Some(3));
        assert!(judgement.silent.is_empty());
    }

    #[test]
    fn a_close_is_a_disconnect_unless_the_input_allows_it() {
        let judgement = judge(&[read(1, 1)], &[], &End::Closed);
        assert_eq!(kinds(&judgement), [FindingKind::Disconnect]);
        let mut broken = read(2, 1);
        broken.adu[5] = 9;
        let broken = Step::new(broken.adu, Delivery::Record);
        assert_eq!(broken.expect, Expect::MayClose);
        let judgement = judge(&[read(1, 1), broken], &[], &End::Closed);
        assert_eq!(judgement, Judgement::default());
    }

    #[test]
    fn a_frame_to_be_discarded_may_go_unanswered_but_not_be_answered() {
        let mut foreign = read(5, 1);
        foreign.adu[3] = 1;
        let foreign = Step::new(foreign.adu, Delivery::Record);
        assert_eq!(
            judge(std::slice::from_ref(&foreign), &[], &End::Open),
            Judgement::default()
        );
        let answered = judge(&[foreign], &[frame(5, &[0x03, 2, 0, 0])], &End::Open);
        assert_eq!(kinds(&answered), [FindingKind::AcceptedMalformed]);
    }

    /// A read of `quantity` registers under `txn` to `unit`, a unit the
    /// device may not serve.
    fn unserved(txn: u16, unit: u8, quantity: u16) -> Step {
        let mut step = read(txn, quantity);
        step.adu[6] = unit;
        let mut step = Step::new(step.adu, Delivery::Record);
        step.expect = step.expect.for_unserved_unit();
        step
    }

    #[test]
    fn a_unit_the_device_may_not_serve_may_go_unanswered_but_a_malformed_request_to_it_is_still_refused()
     {
        let steps = [unserved(1, 255, 1), unserved(2, 0, 0), read(3, 1)];
        assert_eq!(steps[0].expect, Expect::AnswerIfServed);
        assert_eq!(steps[1].expect, Expect::RefusalIfServed);
        // Neither answered: only the served unit's request is owed.
        let judgement = judge(&steps, &[frame(3, &[0x03, 2, 0, 1])], &End::Open);
        assert_eq!(judgement, Judgement::default());
        let answered = |unit, txn, pdu: &[u8]| Frame {
            unit_id: unit,
            ..frame(txn, pdu)
        };
        // Answered as a device reached directly: judged as any answer.
        let frames = [
            answered(255, 1, &[0x03, 2, 0, 1]),
            answered(0, 2, &[0x03, 0]),
            frame(3, &[0x03, 2, 0, 1]),
        ];
        let judgement = judge(&steps, &frames, &End::Open);
        assert_eq!(kinds(&judgement), [FindingKind::AcceptedMalformed]);
        assert_eq!(judgement.verdicts[0].step, Some(1));
        let refused = [answered(0, 2, &[0x83, 0x0B]), frame(3, &[0x03, 2, 0, 1])];
        assert_eq!(judge(&steps, &refused, &End::Open), Judgement::default());
    }

    #[test]
    fn under_a_reused_transaction_id_an_answer_is_paired_with_the_request_it_echoes() {
        // Unit 255 left unanswered, unit 1's read (the same id) answered:
        // the answer is unit 1's, not a wrong answer to unit 255's read.
        let steps = [unserved(7, 255, 1), read(7, 2)];
        let judgement = judge(&steps, &[frame(7, &[0x03, 4, 0, 1, 0, 2])], &End::Open);
        assert_eq!(judgement, Judgement::default());
        // The same under one unit, two functions: each answer to its own.
        let mut coils = read(8, 1);
        coils.adu[7] = 0x01;
        let coils = Step::new(coils.adu, Delivery::Record);
        let steps = [read(8, 1), coils];
        let frames = [frame(8, &[0x01, 1, 1]), frame(8, &[0x03, 2, 0, 1])];
        assert_eq!(judge(&steps, &frames, &End::Open), Judgement::default());
    }
}
