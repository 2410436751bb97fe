//! One batch on one connection: the inputs sent together, what came back,
//! and the oracle's judgement, with the check on a fresh connection that
//! tells a hang from a crash. The campaign, the replay and the minimizer
//! all go through here, so that a replay does exactly what the campaign
//! did.

use std::time::{Duration, Instant};

use mbaps_codec::{MbapHeader, Request, encode_request};

use crate::input::{Delivery, Expect, Step};
use crate::oracle::{End, FindingKind, Judgement, Verdict, describe, judge, pair};
use crate::wire::{Frame, Link, Received, Target};

/// A read the device answers, whatever it answers (an exception too): the
/// check that it is alive, after every batch and on a fresh connection.
pub(crate) fn liveness(transaction_id: u16, unit_id: u8) -> Step {
    let header = MbapHeader {
        transaction_id,
        unit_id,
    };
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    let mut adu = [0u8; 12];
    let n = encode_request(header, &read, &mut adu).unwrap_or(0);
    Step::new(adu[..n].to_vec(), Delivery::Record)
}

/// What came back for one connection's inputs.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// How the connection stood at the end.
    pub end: End,
}

/// Sends `steps` on `link`, at most `window` owed an answer in flight at
/// once and refilled in groups once half of it is answered (a step joined
/// with the next goes out with it), and reads until
/// every input that must be answered was, the connection ended, or
/// `timeout` passed without a frame. A device answers a connection's
/// requests in order, so once the last (the liveness read) is answered, an
/// answer to a frame it should have discarded has come too.
pub(crate) fn exchange(
    link: &mut Link,
    steps: &[Step],
    timeout: Duration,
    window: usize,
) -> Exchange {
    // What follows a frame the device may lose the framing on is not owed
    // an answer (the oracle's rule too).
    let framed = steps
        .iter()
        .position(|s| s.expect == Expect::MayClose)
        .unwrap_or(steps.len());
    let owes = |i: usize| i < framed && !steps[i].expect.may_be_silent();
    let mut frames = Vec::new();
    let mut sent = 0;
    // Answers paired with inputs as the oracle pairs them, so that an
    // answer under a reused transaction id does not stand for another's.
    let mut answered = vec![false; steps.len()];
    let mut owed = 0;
    let mut deadline = Instant::now() + timeout;
    let window = window.max(1);
    loop {
        // The window is refilled once half of it is answered: requests go
        // out in groups (fewer writes and records), and the device is never
        // left without one.
        let refill = owed <= window / 2;
        while refill && sent < steps.len() && owed < window {
            let mut last = sent;
            while last + 1 < steps.len() && steps[last].delivery == Delivery::Joined {
                last += 1;
            }
            if let Err(error) = link.send(&steps[sent..=last]) {
                return Exchange {
                    frames,
                    end: End::Failed(format!("sending: {error}")),
                };
            }
            owed += (sent..=last).filter(|&i| owes(i)).count();
            sent = last + 1;
            deadline = Instant::now() + timeout;
        }
        if owed == 0 {
            break;
        }
        match link.read(deadline) {
            Received::Frame(frame) => {
                if let Some(index) = pair(&steps[..sent], &answered, &frame) {
                    answered[index] = true;
                    owed -= usize::from(owes(index));
                }
                frames.push(frame);
                deadline = Instant::now() + timeout;
            }
            Received::Timeout => {
                return Exchange {
                    frames,
                    end: End::Open,
                };
            }
            Received::Closed => {
                return Exchange {
                    frames,
                    end: End::Closed,
                };
            }
            Received::Failed(why) => {
                return Exchange {
                    frames,
                    end: End::Failed(why),
                };
            }
            Received::Garbage(bytes) => {
                return Exchange {
                    frames,
                    end: End::Garbage(bytes),
                };
            }
        }
    }
    Exchange {
        frames,
        end: End::Open,
    }
}

/// Whether the device is alive: a fresh connection answers the liveness
/// read. `Err` says how it is not.
pub fn check_alive(target: &Target, unit_id: u8, timeout: Duration) -> Result<(), String> {
    let mut link = Link::connect(target, timeout).map_err(|e| e.to_string())?;
    let step = liveness(0xFFFF, unit_id);
    let exchange = exchange(&mut link, std::slice::from_ref(&step), timeout, 1);
    if exchange.frames.is_empty() {
        return Err(match exchange.end {
            End::Open => format!("a fresh connection got no answer to a read within {timeout:?}"),
            End::Closed => "a fresh connection was closed without an answer to a read".into(),
            End::Failed(why) => format!("a fresh connection failed: {why}"),
            End::Garbage(_) => "a fresh connection got bytes that are no MBAP frame".into(),
        });
    }
    Ok(())
}

/// What became of one batch.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// What came back.
    pub exchange: Exchange,
    /// The findings, the crash or hang among them.
    pub verdicts: Vec<Verdict>,
}

/// Runs one batch on `link` (opening one if there is none) and judges it:
/// inputs left unanswered on an open connection are a hang when a fresh
/// connection is answered, a crash when it is not; a connection that
/// cannot be opened is a crash.
pub(crate) fn run_batch(
    target: &Target,
    link: &mut Option<Link>,
    steps: &[Step],
    unit_id: u8,
    timeout: Duration,
    window: usize,
) -> Outcome {
    let connection = match link.take() {
        Some(open) => Ok(open),
        None => Link::connect(target, timeout),
    };
    let mut connection = match connection {
        Ok(connection) => connection,
        Err(error) => {
            return Outcome {
                exchange: Exchange {
                    frames: Vec::new(),
                    end: End::Failed(error.to_string()),
                },
                verdicts: vec![Verdict {
                    kind: FindingKind::Crash,
                    step: None,
                    summary: format!("the device cannot be reached: {error}"),
                }],
            };
        }
    };
    let exchange = exchange(&mut connection, steps, timeout, window);
    let Judgement {
        mut verdicts,
        silent,
    } = judge(steps, &exchange.frames, &exchange.end);
    let ended = exchange.end != End::Open;
    // A connection whose framing may be broken is not used again (one
    // with frames to be discarded is: the device answers in order, so an
    // answer to them came before the liveness read's); after one that
    // went silent, ended, or got a frame that may break it, the device is
    // asked on a fresh connection whether it lives.
    let broken = steps.iter().any(|s| s.expect == Expect::MayClose);
    let reusable = !ended && silent.is_empty() && !broken;
    if reusable {
        *link = Some(connection);
    } else if !silent.is_empty() || ended || broken {
        drop(connection);
        // The input the connection went silent or closed on.
        let blamed = silent.first().copied().or_else(|| {
            verdicts
                .iter()
                .find(|v| v.kind == FindingKind::Disconnect)
                .and_then(|v| v.step)
        });
        match check_alive(target, unit_id, timeout) {
            Err(why) => {
                // Whatever else the connection did follows from the crash.
                verdicts.retain(|v| !matches!(v.kind, FindingKind::Disconnect));
                verdicts.insert(
                    0,
                    Verdict {
                        kind: FindingKind::Crash,
                        step: blamed,
                        summary: match blamed {
                            Some(step) => format!("after {}: {why}", describe(&steps[step])),
                            None => why,
                        },
                    },
                );
            }
            Ok(()) if !silent.is_empty() => verdicts.insert(0, hang(steps, &silent, timeout)),
            Ok(()) => {}
        }
    }
    Outcome { exchange, verdicts }
}

/// The hang of a connection that left `silent` unanswered: blamed on the
/// first of them; or, when that is the liveness read alone, on the input
/// before it, after which the connection answered nothing more.
fn hang(steps: &[Step], silent: &[usize], timeout: Duration) -> Verdict {
    let first = silent[0];
    let only_the_liveness_read = silent == [steps.len() - 1] && first > 0;
    if only_the_liveness_read {
        let culprit = first - 1;
        return Verdict {
            kind: FindingKind::Hang,
            step: Some(culprit),
            summary: format!(
                "after {}, nothing more on the connection: no answer within {timeout:?} to the read that followed, while a fresh connection is answered",
                describe(&steps[culprit])
            ),
        };
    }
    Verdict {
        kind: FindingKind::Hang,
        step: Some(first),
        summary: format!(
            "no answer within {timeout:?} to {} (and {} more), while a fresh connection is answered",
            describe(&steps[first]),
            silent.len() - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Two requests under one transaction id, the first to a unit the
    /// device may not serve (nothing owed), the second owed: the exchange
    /// waits for the second's answer, not only for an answer under the id.
    #[test]
    fn an_answer_under_a_reused_id_does_not_stand_for_the_owed_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let device = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut requests = [0u8; 24];
            socket.read_exact(&mut requests).unwrap();
            // Unit 0 refused at once, unit 1 answered a moment later.
            socket
                .write_all(&hex::decode("000700000003008302").unwrap())
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            socket
                .write_all(&hex::decode("0007000000050103020001").unwrap())
                .unwrap();
            // Held open until the exchange is over.
            let _ = socket.read(&mut requests);
        });
        let unserved = {
            let mut step = liveness(7, 0);
            step.expect = step.expect.for_unserved_unit();
            step
        };
        let steps = [unserved, liveness(7, 1)];
        let target = Target { address, tls: None };
        let mut link = Link::connect(&target, Duration::from_secs(2)).unwrap();
        let exchange = exchange(&mut link, &steps, Duration::from_secs(2), 4);
        assert_eq!(exchange.frames.len(), 2, "{exchange:?}");
        assert_eq!(
            judge(&steps, &exchange.frames, &exchange.end),
            Judgement::default()
        );
        drop(link);
        device.join().unwrap();
    }
}
