//! The gateway's per-device queue ([`Upstream`]) under any interleaving of
//! requests from many clients, device answers (right and wrong), timeouts,
//! failed connects and lost connections: every request is answered exactly
//! once, a response reaches only the request it answers, no request goes to
//! the device twice, the queue and the wire stay within their limits, and
//! a session is answered busy only when it holds its share of the queue or
//! the queue is full. The same holds over an RTU line (a serial device,
//! with noise, other units' answers and retries of reads), where at most
//! one request is ever on the line.

#![allow(clippy::disallowed_methods)] // the simulated clock starts at the real now

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mbaps_codec::rtu::{RtuDecoded, RtuFrame, RtuFrameKind, decode_rtu};
use mbaps_codec::{Request, Response};
use mbaps_session::upstream::rtu::{RtuLine, RtuSettings};
use mbaps_session::upstream::{Failure, LinkEvent, Requester, Ticket, Upstream, UpstreamLimits};
use mbaps_session::{
    Client, ClientConfig, DropReason, InvalidResponse, Pdu, rustls::pki_types::ServerName,
};
use proptest::prelude::*;

/// What the simulated world does next.
#[derive(Clone, Debug)]
enum Step {
    /// Front session `session` submits a request.
    Submit { session: u8, unit: u8 },
    /// The device answers the `pick`-th request it holds, in a way.
    Answer { pick: usize, how: How },
    /// The device closes the connection.
    Drop,
    /// Time passes.
    Advance { millis: u64 },
    /// The adapter's pending TCP connect ends.
    Dial { ok: bool },
}

/// How the device answers.
#[derive(Clone, Copy, Debug)]
enum How {
    Right,
    WrongTransaction,
    WrongFunction,
    WrongUnit,
    Exception,
    /// A frame with a length field of zero: the stream cannot be followed.
    Garbage,
}

fn step() -> impl Strategy<Value = Step> {
    let how = prop_oneof![
        6 => Just(How::Right),
        1 => Just(How::WrongTransaction),
        1 => Just(How::WrongFunction),
        1 => Just(How::WrongUnit),
        1 => Just(How::Exception),
        1 => Just(How::Garbage),
    ];
    prop_oneof![
        6 => (0u8..3, 1u8..4).prop_map(|(session, unit)| Step::Submit { session, unit }),
        6 => (0usize..4, how).prop_map(|(pick, how)| Step::Answer { pick, how }),
        1 => Just(Step::Drop),
        3 => (0u64..2_000).prop_map(|millis| Step::Advance { millis }),
        2 => any::<bool>().prop_map(|ok| Step::Dial { ok }),
    ]
}

fn limits() -> impl Strategy<Value = UpstreamLimits> {
    (1usize..=4, 1usize..=6, 0usize..=6).prop_map(|(in_flight, queue, share)| UpstreamLimits {
        in_flight,
        queue,
        queue_per_session: (share > 0).then_some(share.min(queue)),
        timeout: Duration::from_millis(1_500),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(800),
    })
}

/// How the device is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Mbap,
    /// An RTU line that retries reads this many times.
    Rtu {
        retries: u8,
    },
}

fn rtu_limits() -> impl Strategy<Value = (UpstreamLimits, Framing)> {
    (limits(), 0u8..=2).prop_map(|(limits, retries)| {
        (
            UpstreamLimits {
                in_flight: 1,
                ..limits
            },
            Framing::Rtu { retries },
        )
    })
}

/// A request as the device received it.
struct Held {
    transaction_id: u16,
    unit: u8,
    address: u16,
}

/// The world: the upstream under test, the device's side of the current
/// connection, and what each ticket is owed.
struct World {
    upstream: Upstream,
    framing: Framing,
    config: ClientConfig,
    now: Instant,
    /// Requests the device holds on the current connection.
    held: Vec<Held>,
    /// Bytes the device received and has not parsed yet.
    received: Vec<u8>,
    /// Every address (= ticket) the device ever received.
    seen: BTreeSet<u16>,
    /// Tickets answered rightly by the device: their register value.
    answered_rightly: BTreeSet<u16>,
    /// Each ticket's answer.
    answers: BTreeMap<u64, Result<Pdu, Failure>>,
    /// Each ticket's session.
    sessions: BTreeMap<u64, u8>,
    next_ticket: u64,
    /// The connection's events so far.
    link_events: Vec<LinkEvent>,
}

impl World {
    fn new(limits: UpstreamLimits) -> World {
        World::framed(limits, Framing::Mbap)
    }

    fn framed(limits: UpstreamLimits, framing: Framing) -> World {
        let now = Instant::now();
        let config = ClientConfig::plain()
            .max_outstanding(limits.in_flight)
            .build()
            .unwrap();
        let upstream = match framing {
            Framing::Mbap => Upstream::new(limits, now).unwrap(),
            Framing::Rtu { .. } => {
                Upstream::rtu(limits, World::rtu_settings(framing), now).unwrap()
            }
        };
        World {
            upstream,
            framing,
            config,
            now,
            held: Vec::new(),
            received: Vec::new(),
            seen: BTreeSet::new(),
            answered_rightly: BTreeSet::new(),
            answers: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_ticket: 0,
            link_events: Vec::new(),
        }
    }

    fn rtu_settings(framing: Framing) -> RtuSettings {
        let retries = match framing {
            Framing::Rtu { retries } => retries,
            Framing::Mbap => 0,
        };
        RtuSettings {
            retries,
            ..RtuSettings::serial(9_600, Duration::from_millis(400))
        }
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Submit { session, unit } => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.sessions.insert(ticket, session);
                let request = Request::ReadHoldingRegisters {
                    address: ticket as u16,
                    quantity: 1,
                };
                let full = self.upstream.queued() == self.upstream.limits().queue;
                let before: Vec<u64> = self.answers.keys().copied().collect();
                let own = self.waiting(session);
                self.upstream.submit(
                    self.now,
                    Requester(u64::from(session)),
                    Ticket(ticket),
                    unit,
                    Pdu::encode_request(&request).unwrap(),
                );
                self.collect()?;
                let share = self.upstream.limits().session_share();
                for (answered, result) in &self.answers {
                    if before.contains(answered) || *result != Err(Failure::QueueFull) {
                        continue;
                    }
                    if *answered == ticket {
                        prop_assert!(full || own >= share, "0x06 with room for the session");
                    } else {
                        // Pushed out by this one: from a session that held
                        // at least two more.
                        prop_assert!(full, "pushed out with room in the queue");
                        prop_assert_ne!(self.sessions[answered], session);
                    }
                }
            }
            Step::Answer { pick, how } => {
                if self.upstream.has_connection() && !self.held.is_empty() {
                    let held = self.held.remove(pick % self.held.len());
                    let frame = match self.framing {
                        Framing::Mbap => answer(&held, how),
                        Framing::Rtu { .. } => rtu_answer(&held, how),
                    };
                    if matches!(how, How::Right) {
                        self.answered_rightly.insert(held.address);
                    }
                    self.upstream.handle_bytes(self.now, &frame);
                }
            }
            Step::Drop => {
                if self.upstream.has_connection() {
                    self.upstream.handle_eof(self.now);
                }
            }
            Step::Advance { millis } => {
                self.now += Duration::from_millis(millis);
                if self
                    .upstream
                    .poll_timeout()
                    .is_some_and(|at| at <= self.now)
                {
                    self.upstream.handle_timeout(self.now);
                }
            }
            Step::Dial { ok } => {
                if self.upstream.poll_connect(self.now) {
                    if ok {
                        match self.framing {
                            Framing::Mbap => {
                                let name = ServerName::try_from("device").unwrap();
                                let session = Client::new(&self.config, name, self.now).unwrap();
                                self.upstream.connected(self.now, session);
                            }
                            Framing::Rtu { .. } => {
                                let settings = World::rtu_settings(self.framing);
                                self.upstream
                                    .connected(self.now, RtuLine::new(settings, self.now));
                            }
                        }
                    } else {
                        self.upstream.connect_failed(self.now);
                    }
                }
            }
        }
        self.collect()
    }

    /// The device reads RTU requests: it holds only the last (a serial
    /// device that hears a new request has given up the one before).
    fn device_reads_rtu(&mut self, retries: u8) -> Result<(), TestCaseError> {
        while let Ok(RtuDecoded::Frame { frame, consumed }) =
            decode_rtu(&self.received, RtuFrameKind::Request)
        {
            let address = u16::from_be_bytes([frame.pdu[1], frame.pdu[2]]);
            // Reads are retried after a timeout: the same request again.
            let first = self.seen.insert(address);
            prop_assert!(
                first || retries > 0,
                "request {address} sent twice without retries"
            );
            self.held.clear();
            self.held.push(Held {
                transaction_id: 0,
                unit: frame.unit_id,
                address,
            });
            self.received.drain(..consumed);
        }
        prop_assert!(
            self.upstream.in_flight() <= 1,
            "two requests on an RTU line"
        );
        Ok(())
    }

    /// The requests of `session` waiting in the queue: its tickets not
    /// answered and never sent to the device.
    fn waiting(&self, session: u8) -> usize {
        self.sessions
            .iter()
            .filter(|(t, s)| {
                **s == session
                    && !self.answers.contains_key(t)
                    && !self.seen.contains(&(**t as u16))
            })
            .count()
    }

    /// Moves the bytes to the device, takes the answers, checks the bounds.
    fn collect(&mut self) -> Result<(), TestCaseError> {
        let connected = self.upstream.has_connection();
        let mut out = Vec::new();
        self.upstream.poll_transmit(&mut out);
        self.received.extend_from_slice(&out);
        if let Framing::Rtu { retries } = self.framing {
            self.device_reads_rtu(retries)?;
        }
        while matches!(self.framing, Framing::Mbap) && self.received.len() >= 7 {
            let len = usize::from(u16::from_be_bytes([self.received[4], self.received[5]]));
            if self.received.len() < 6 + len {
                break;
            }
            let frame: Vec<u8> = self.received.drain(..6 + len).collect();
            let address = u16::from_be_bytes([frame[8], frame[9]]);
            prop_assert!(
                self.seen.insert(address),
                "request {address} sent to the device twice"
            );
            self.held.push(Held {
                transaction_id: u16::from_be_bytes([frame[0], frame[1]]),
                unit: frame[6],
                address,
            });
        }
        if !connected {
            // The device's side of a closed connection is gone.
            self.held.clear();
            self.received.clear();
        }
        while let Some(answer) = self.upstream.poll_completion() {
            let ticket = answer.ticket.0;
            if let Ok(pdu) = &answer.result {
                match pdu.response() {
                    Ok(Response::ReadHoldingRegisters { values }) => {
                        prop_assert_eq!(values.get(0), Some(ticket as u16), "another's answer");
                        prop_assert!(self.answered_rightly.contains(&(ticket as u16)));
                    }
                    // An exception from the device is passed on as it is.
                    Ok(Response::Exception { .. }) => {}
                    other => prop_assert!(false, "unexpected response {other:?}"),
                }
            }
            prop_assert!(
                self.answers.insert(ticket, answer.result).is_none(),
                "ticket {ticket} answered twice"
            );
        }
        while let Some(event) = self.upstream.poll_link_event() {
            self.link_events.push(event);
        }
        prop_assert!(self.upstream.in_flight() <= self.upstream.limits().in_flight);
        prop_assert!(self.upstream.queued() <= self.upstream.limits().queue);
        Ok(())
    }
}

/// The device's answer to `held`, right or wrong in the way asked.
fn answer(held: &Held, how: How) -> Vec<u8> {
    let (mut transaction_id, mut unit) = (held.transaction_id, held.unit);
    let [hi, lo] = held.address.to_be_bytes();
    let pdu = match how {
        How::Right => vec![0x03, 2, hi, lo],
        How::WrongTransaction => {
            transaction_id = transaction_id.wrapping_add(0x1000);
            vec![0x03, 2, hi, lo]
        }
        How::WrongFunction => vec![0x04, 2, hi, lo],
        How::WrongUnit => {
            unit = unit.wrapping_add(1);
            vec![0x03, 2, hi, lo]
        }
        How::Exception => vec![0x83, 0x02],
        How::Garbage => Vec::new(),
    };
    let mut frame = Vec::new();
    frame.extend_from_slice(&transaction_id.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    // A length of zero (no unit id, no PDU) for the garbage frame.
    let len = if pdu.is_empty() { 0 } else { pdu.len() + 1 };
    frame.extend_from_slice(&(len as u16).to_be_bytes());
    if !pdu.is_empty() {
        frame.push(unit);
        frame.extend_from_slice(&pdu);
    }
    frame
}

/// The device's RTU answer to `held`: right, or wrong in the way asked
/// (a corrupted byte for a wrong transaction, noise for garbage).
fn rtu_answer(held: &Held, how: How) -> Vec<u8> {
    let [hi, lo] = held.address.to_be_bytes();
    let (unit, pdu) = match how {
        How::Right | How::WrongTransaction => (held.unit, vec![0x03, 2, hi, lo]),
        How::WrongFunction => (held.unit, vec![0x04, 2, hi, lo]),
        How::WrongUnit => (held.unit.wrapping_add(1), vec![0x03, 2, hi, lo]),
        How::Exception => (held.unit, vec![0x83, 0x02]),
        How::Garbage => return vec![0xFF, 0x00, 0x13],
    };
    let mut out = [0u8; 256];
    let len = RtuFrame {
        unit_id: unit,
        pdu: &pdu,
    }
    .encode(&mut out)
    .unwrap();
    let mut frame = out[..len].to_vec();
    if matches!(how, How::WrongTransaction) {
        frame[3] ^= 0x40;
    }
    frame
}

/// Limits and framing: a Modbus/TCP device, or an RTU line (one request
/// at a time, retries of reads).
fn framed_limits() -> impl Strategy<Value = (UpstreamLimits, Framing)> {
    prop_oneof![
        limits().prop_map(|limits| (limits, Framing::Mbap)),
        rtu_limits(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn every_request_is_answered_exactly_once(
        (limits, framing) in framed_limits(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut world = World::framed(limits, framing);
        for step in steps {
            world.run(step)?;
        }
        // Whatever is left ends in one of two ways: a close answers the
        // queue and the wire alike.
        world.upstream.close(world.now);
        world.collect()?;
        for ticket in 0..world.next_ticket {
            prop_assert!(world.answers.contains_key(&ticket), "ticket {ticket} never answered");
        }
        prop_assert_eq!(world.upstream.in_flight(), 0);
        prop_assert_eq!(world.upstream.queued(), 0);
    }

    /// Without a close: time alone answers everything (the timeout and
    /// the failed attempts bound every wait; on an RTU line each attempt
    /// has 400 ms, at most three attempts, and a turnaround after each).
    #[test]
    fn time_alone_answers_every_request(
        (limits, framing) in framed_limits(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut world = World::framed(limits, framing);
        for step in steps {
            world.run(step)?;
        }
        // No more answers or connects: the device went silent.
        for _ in 0..12 {
            world.run(Step::Advance { millis: 1_600 })?;
        }
        for ticket in 0..world.next_ticket {
            prop_assert!(world.answers.contains_key(&ticket), "ticket {ticket} never answered");
        }
    }
}

#[test]
fn a_device_never_reached_answers_0x0a_and_a_silent_one_0x0b() {
    let limits = UpstreamLimits::default();
    let mut world = World::new(limits);
    // The first attempt fails: a request during the backoff is 0x0A at once.
    world.run(Step::Dial { ok: false }).unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    assert_eq!(world.answers[&0], Err(Failure::Unreachable));
    // After the backoff, connected, the device stays silent: 0x0B.
    world.run(Step::Advance { millis: 100 }).unwrap();
    world.run(Step::Dial { ok: true }).unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    assert!(world.upstream.is_up());
    assert_eq!(world.upstream.in_flight(), 1);
    world.run(Step::Advance { millis: 3_000 }).unwrap();
    assert_eq!(world.answers[&1], Err(Failure::Timeout));
    assert_eq!(
        Failure::Unreachable.exception(),
        mbaps_codec::ExceptionCode::GatewayPathUnavailable
    );
    assert_eq!(
        Failure::Timeout.exception(),
        mbaps_codec::ExceptionCode::GatewayTargetFailedToRespond
    );
}

#[test]
fn with_one_in_flight_requests_reach_the_device_one_at_a_time_in_order() {
    let mut world = World::new(UpstreamLimits::default());
    world.run(Step::Dial { ok: true }).unwrap();
    for unit in [1, 2, 3] {
        world.run(Step::Submit { session: 0, unit }).unwrap();
    }
    assert_eq!(
        (world.upstream.in_flight(), world.upstream.queued()),
        (1, 2)
    );
    let mut order = Vec::new();
    while let Some(held) = world.held.first() {
        order.push(held.address);
        assert_eq!(world.held.len(), 1, "two requests on the wire");
        world
            .run(Step::Answer {
                pick: 0,
                how: How::Right,
            })
            .unwrap();
    }
    assert_eq!(order, [0, 1, 2]);
    assert!(world.answers.values().all(Result::is_ok));
}

#[test]
fn a_lost_connection_answers_the_wire_0x0b_and_sends_the_queue_on_the_next() {
    let mut world = World::new(UpstreamLimits::default());
    world.run(Step::Dial { ok: true }).unwrap();
    // The connection works: it answers.
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Answer {
            pick: 0,
            how: How::Right,
        })
        .unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world.run(Step::Drop).unwrap();
    assert!(matches!(world.answers[&1], Err(Failure::Lost(_))));
    assert!(!world.answers.contains_key(&2), "the queued request waits");
    // Dialled again at once.
    world.run(Step::Dial { ok: true }).unwrap();
    assert_eq!(world.held.len(), 1);
    assert_eq!(world.held[0].address, 2);
    world
        .run(Step::Answer {
            pick: 0,
            how: How::Right,
        })
        .unwrap();
    assert!(world.answers[&2].is_ok());
    assert!(
        matches!(
            world.link_events[..],
            [LinkEvent::Up, LinkEvent::Lost(_), LinkEvent::Up]
        ),
        "{:?}",
        world.link_events
    );
}

#[test]
fn a_device_that_accepts_and_closes_is_dialled_with_a_growing_backoff_and_reported_once() {
    let limits = UpstreamLimits::default();
    let mut world = World::new(limits);
    let start = world.now;
    let mut dials = Vec::new();
    // Ten simulated seconds of a device that closes every connection at once.
    while world.now < start + Duration::from_secs(10) {
        if world.upstream.poll_connect(world.now) {
            dials.push(world.now - start);
            let name = ServerName::try_from("device").unwrap();
            let session = Client::new(&world.config, name, world.now).unwrap();
            world.upstream.connected(world.now, session);
            world.upstream.handle_eof(world.now);
            world.collect().unwrap();
        }
        world.run(Step::Advance { millis: 10 }).unwrap();
    }
    // 100 ms, 200, 400, ... up to 5 s apart: a handful, not thousands.
    assert!(dials.len() <= 8, "{} connects: {dials:?}", dials.len());
    let gaps: Vec<Duration> = dials.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    let flapping = world
        .link_events
        .iter()
        .filter(|e| matches!(e, LinkEvent::Flapping { .. }))
        .count();
    assert_eq!(flapping, 1, "{:?}", world.link_events);
    assert!(
        !world.link_events[1..]
            .iter()
            .any(|e| matches!(e, LinkEvent::Up | LinkEvent::Lost(_))),
        "one line, not one per attempt: {:?}",
        world.link_events
    );
    // A request meanwhile is answered 0x0A at once, not after the timeout.
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    assert_eq!(
        world.answers.values().last(),
        Some(&Err(Failure::Unreachable))
    );
    // Once a connection answers, it is reported up again, and the next
    // loss is dialled at once.
    while !world.upstream.poll_connect(world.now) {
        world.run(Step::Advance { millis: 10 }).unwrap();
    }
    let name = ServerName::try_from("device").unwrap();
    let session = Client::new(&world.config, name, world.now).unwrap();
    world.upstream.connected(world.now, session);
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Answer {
            pick: 0,
            how: How::Right,
        })
        .unwrap();
    assert_eq!(world.link_events.last(), Some(&LinkEvent::Up));
    world.run(Step::Drop).unwrap();
    assert!(
        world.upstream.poll_connect(world.now),
        "not dialled at once"
    );
}

#[test]
fn with_one_request_on_the_wire_an_answer_under_another_id_fails_it_at_once() {
    let mut world = World::new(UpstreamLimits::default());
    world.run(Step::Dial { ok: true }).unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    let sent = world.held[0].transaction_id;
    world
        .run(Step::Answer {
            pick: 0,
            how: How::WrongTransaction,
        })
        .unwrap();
    // 0x0B now, not after the 3 s timeout.
    match &world.answers[&0] {
        Err(Failure::Invalid(InvalidResponse::Unechoed {
            expected,
            found,
            protocol_id: 0,
        })) => {
            assert_eq!(*expected, sent);
            assert_eq!(*found, sent.wrapping_add(0x1000));
        }
        other => panic!("{other:?}"),
    }
    assert!(world.link_events.iter().any(|e| matches!(
        e,
        LinkEvent::DroppedAnswer { reason: DropReason::UnknownTransactionId, in_flight, .. }
            if in_flight[..] == [sent]
    )));
    // The session goes on: the next request is answered.
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Answer {
            pick: 0,
            how: How::Right,
        })
        .unwrap();
    assert!(world.answers[&1].is_ok());
}

#[test]
fn with_several_on_the_wire_a_stray_answer_blames_none_and_a_late_one_is_logged() {
    let limits = UpstreamLimits {
        in_flight: 2,
        ..UpstreamLimits::default()
    };
    let mut world = World::new(limits);
    world.run(Step::Dial { ok: true }).unwrap();
    world
        .run(Step::Submit {
            session: 0,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Submit {
            session: 1,
            unit: 1,
        })
        .unwrap();
    world
        .run(Step::Answer {
            pick: 0,
            how: How::WrongTransaction,
        })
        .unwrap();
    assert!(world.answers.is_empty(), "{:?}", world.answers);
    assert_eq!(world.upstream.in_flight(), 2);
    // The other times out; its late answer is dropped and said so.
    world.run(Step::Advance { millis: 3_000 }).unwrap();
    assert_eq!(world.answers.len(), 2);
    world
        .run(Step::Answer {
            pick: 0,
            how: How::Right,
        })
        .unwrap();
    assert!(matches!(
        world.link_events.last(),
        Some(LinkEvent::DroppedAnswer {
            reason: DropReason::Late,
            ..
        })
    ));
}

#[test]
fn a_burst_of_one_session_does_not_delay_another_sessions_request() {
    let mut world = World::new(UpstreamLimits::default());
    world.run(Step::Dial { ok: true }).unwrap();
    // Session 0 floods: its share (a quarter of 64) waits, the rest is busy.
    for _ in 0..40 {
        world
            .run(Step::Submit {
                session: 0,
                unit: 1,
            })
            .unwrap();
    }
    let busy = world
        .answers
        .values()
        .filter(|r| **r == Err(Failure::QueueFull))
        .count();
    assert_eq!(busy, 40 - 1 - 16, "one on the wire, 16 waiting");
    // Session 1's request waits behind one of session 0's (whose turn
    // came first), not behind its 16.
    world
        .run(Step::Submit {
            session: 1,
            unit: 1,
        })
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(world.sessions[&u64::from(world.held[0].address)]);
        world
            .run(Step::Answer {
                pick: 0,
                how: How::Right,
            })
            .unwrap();
    }
    assert_eq!(order, [0, 0, 1, 0]);
}
