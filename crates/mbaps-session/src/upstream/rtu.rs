//! A device reached by Modbus RTU frames, sans-IO: on a serial line
//! (RS-485, through the adapter's port) or carried over TCP as
//! Ethernet-to-serial converters do.
//!
//! The line is half-duplex and has no transaction ids, so one request is on
//! it at a time, whatever the route's `in_flight` says (Serial Line V1.02,
//! 2.4). Between frames the line keeps the inter-frame silence of 3.5
//! characters ([`RtuSettings::silence`]); after a broadcast (unit 0,
//! writes only) no server answers, and the next request waits the
//! turnaround delay ([`RtuSettings::turnaround`]), after which the
//! broadcast is answered with the normal response of its write. Frames from
//! another unit, with a bad CRC, or bytes while nothing is awaited are
//! discarded and counted ([`LineCounters`]); a request whose answer does not
//! come in the response timeout is sent again [`RtuSettings::retries`]
//! times (writes only if [`RtuSettings::retry_writes`]: a write whose answer
//! was lost may have been carried out).
//!
//! [`RtuLine`] reports [`ClientEvent`]s as a [`crate::Client`] does, under
//! transaction ids of its own, so [`super::Upstream`] drives either.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mbaps_codec::CodecError;
use mbaps_codec::rtu::{
    BROADCAST_UNIT, MAX_RTU_FRAME_LEN, RtuDecoded, RtuFrame, RtuFrameKind, decode_rtu,
};

use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, DropReason, Pdu};

/// The inter-frame silence of a serial line at `baud`: 3.5 characters of 11
/// bits, and 1.75 ms above 19,200 baud, where the specification fixes it
/// (Serial Line V1.02, 2.5.1.1). `baud` 0 is taken as 1.
pub fn silence_at(baud: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        // 3.5 characters × 11 bits, in microseconds.
        Duration::from_micros(38_500_000 / u64::from(baud.max(1)))
    }
}

/// How an RTU line behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtuSettings {
    /// The inter-frame silence kept before each request: [`silence_at`] the
    /// line's speed on a serial line, zero for RTU over TCP (the converter
    /// keeps the line's timing).
    pub silence: Duration,
    /// After a broadcast, the wait before the line is used again, and
    /// before the broadcast is answered (default 100 ms); also after a
    /// timeout, so that an answer that just missed it is discarded rather
    /// than taken for the next request's (RTU frames carry no transaction
    /// id).
    pub turnaround: Duration,
    /// How many times a request without a valid answer in its response
    /// timeout is sent again (default 0).
    pub retries: u8,
    /// Whether writes are sent again too (default no: a write whose answer
    /// was lost may have been carried out).
    pub retry_writes: bool,
    /// The response timeout of each attempt, also of a request that waited
    /// in a queue for most of its own timeout: RTU answers carry no
    /// transaction id, so a shorter window would let the answer come after
    /// the next request went out, and be taken for its answer.
    pub response_timeout: Duration,
}

/// The most retries a line may be given: past a few, a device that does
/// not answer only holds the bus longer.
pub const MAX_RETRIES: u8 = 10;

/// What a user chooses of an RTU line's behaviour, besides its speed and
/// the response timeout: see [`RtuSettings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtuOptions {
    /// [`RtuSettings::turnaround`] (default 100 ms).
    pub turnaround: Duration,
    /// [`RtuSettings::retries`] (default 0, at most [`MAX_RETRIES`]).
    pub retries: u8,
    /// [`RtuSettings::retry_writes`] (default no).
    pub retry_writes: bool,
}

impl Default for RtuOptions {
    fn default() -> RtuOptions {
        RtuOptions {
            turnaround: RtuSettings::DEFAULT_TURNAROUND,
            retries: 0,
            retry_writes: false,
        }
    }
}

impl RtuSettings {
    /// The default turnaround delay after a broadcast.
    pub const DEFAULT_TURNAROUND: Duration = Duration::from_millis(100);

    /// A line keeping `silence` between frames, with `options`, whose
    /// retries wait `response_timeout` each.
    pub fn with_options(
        silence: Duration,
        options: RtuOptions,
        response_timeout: Duration,
    ) -> RtuSettings {
        RtuSettings {
            silence,
            turnaround: options.turnaround,
            retries: options.retries,
            retry_writes: options.retry_writes,
            response_timeout,
        }
    }

    /// A serial line at `baud`, with the default turnaround and no retries.
    pub fn serial(baud: u32, response_timeout: Duration) -> RtuSettings {
        RtuSettings {
            silence: silence_at(baud),
            turnaround: Self::DEFAULT_TURNAROUND,
            retries: 0,
            retry_writes: false,
            response_timeout,
        }
    }

    /// RTU frames over TCP: no silence of our own.
    pub fn over_tcp(response_timeout: Duration) -> RtuSettings {
        RtuSettings {
            silence: Duration::ZERO,
            ..RtuSettings::serial(19_200, response_timeout)
        }
    }
}

/// What happened on a line, for metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineCounters {
    /// Requests sent (retries and broadcasts included).
    pub requests: u64,
    /// Frames that failed their CRC check (a corrupted byte, or noise that
    /// looked like a frame).
    pub crc_errors: u64,
    /// Attempts that got no valid answer in their response timeout.
    pub timeouts: u64,
    /// Requests sent again after a timeout.
    pub retries: u64,
    /// Frames from another unit, and bytes that came while no answer was
    /// awaited: dropped.
    pub discarded: u64,
    /// How long the line was held: from each request sent to its answer,
    /// its timeout, or the end of a broadcast's turnaround.
    pub busy: Duration,
}

impl LineCounters {
    /// What was counted since `earlier` (a snapshot of the same counters).
    pub fn since(self, earlier: LineCounters) -> LineCounters {
        LineCounters {
            requests: self.requests.saturating_sub(earlier.requests),
            crc_errors: self.crc_errors.saturating_sub(earlier.crc_errors),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
            retries: self.retries.saturating_sub(earlier.retries),
            discarded: self.discarded.saturating_sub(earlier.discarded),
            busy: self.busy.saturating_sub(earlier.busy),
        }
    }

    /// The sum of two lines' counts (a device's lines over time).
    pub fn plus(self, other: LineCounters) -> LineCounters {
        LineCounters {
            requests: self.requests + other.requests,
            crc_errors: self.crc_errors + other.crc_errors,
            timeouts: self.timeouts + other.timeouts,
            retries: self.retries + other.retries,
            discarded: self.discarded + other.discarded,
            busy: self.busy + other.busy,
        }
    }
}

/// The normal response to a broadcast write, computed from the request
/// (the echo, or its first fields): `None` for functions that cannot be
/// broadcast (reads: they need an answer).
pub fn broadcast_answer(request: &Pdu) -> Option<Pdu> {
    let bytes = request.as_bytes();
    match request.function() {
        0x05 | 0x06 | 0x15 | 0x16 => Some(*request),
        0x0F | 0x10 => bytes.get(..5).map(Pdu::copy_of),
        _ => None,
    }
}

/// Bytes received on an RTU line, hunted for frames: the one hunting rule
/// of the gateway's lines and the RTU server.
///
/// Frames are found past noise and truncated frames (after a bad frame,
/// the next one is looked for one byte further). Each frame with a bad CRC
/// counts once, not the false starts inside it, also when its bytes come
/// in several reads.
#[derive(Debug, Default)]
pub(crate) struct Received {
    bytes: Vec<u8>,
    /// Candidates starting before this index lie inside a bad frame
    /// already counted.
    counted_until: usize,
    /// Frames with a bad CRC.
    pub(crate) crc_errors: u64,
}

impl Received {
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.counted_until = 0;
    }

    /// The next frame of `kind` from `start`: the frame and where it ends,
    /// or where the bytes not yet a frame begin (`Err`).
    pub(crate) fn next_frame(
        &mut self,
        kind: RtuFrameKind,
        mut start: usize,
    ) -> Result<(RtuFrame<'_>, usize), usize> {
        while let Some(rest) = self.bytes.get(start..).filter(|rest| !rest.is_empty()) {
            match decode_rtu(rest, kind) {
                // Decoded again to borrow for the caller: cheap, once per frame.
                Ok(RtuDecoded::Frame { consumed, .. }) => {
                    return Ok((self.frame_at(start, consumed), start + consumed));
                }
                Ok(RtuDecoded::Incomplete { .. }) => {
                    // Noise can look like the start of a long frame and
                    // hide a whole one after it: a complete frame with a
                    // right CRC further on wins over the wait.
                    return match self.complete_after(kind, start) {
                        Some((at, consumed)) => Ok((self.frame_at(at, consumed), at + consumed)),
                        None => Err(start),
                    };
                }
                Err(CodecError::Crc { frame_len, .. }) => {
                    if start >= self.counted_until {
                        self.crc_errors += 1;
                        self.counted_until = start + frame_len;
                    }
                    start += 1;
                }
                Err(_) => start += 1,
            }
        }
        Err(start)
    }

    /// The first complete frame (right CRC) starting after `start`: where,
    /// and how long.
    fn complete_after(&self, kind: RtuFrameKind, start: usize) -> Option<(usize, usize)> {
        (start + 1..self.bytes.len()).find_map(|at| match decode_rtu(&self.bytes[at..], kind) {
            Ok(RtuDecoded::Frame { consumed, .. }) => Some((at, consumed)),
            _ => None,
        })
    }

    /// The frame of `consumed` bytes at `at` (decoded already).
    fn frame_at(&self, at: usize, consumed: usize) -> RtuFrame<'_> {
        RtuFrame {
            unit_id: self.bytes[at],
            pdu: &self.bytes[at + 1..at + consumed - 2],
        }
    }

    /// Drops the first `n` bytes (frames taken, noise passed over).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
        self.counted_until = self.counted_until.saturating_sub(n);
    }
}

/// Whether `pdu` can be framed as an RTU request (its function has a
/// length rule, and the frame fits): the error names the function if not.
pub fn check_frameable(unit_id: u8, pdu: &Pdu) -> Result<(), CodecError> {
    let mut frame = [0u8; MAX_RTU_FRAME_LEN];
    let len = RtuFrame {
        unit_id,
        pdu: pdu.as_bytes(),
    }
    .encode(&mut frame)?;
    // The receiver must find exactly this frame: not a longer one (a PDU
    // short of its own length rule), not a shorter one.
    match decode_rtu(&frame[..len], RtuFrameKind::Request)? {
        RtuDecoded::Frame { consumed, .. } if consumed == len => Ok(()),
        RtuDecoded::Frame { consumed, .. } => Err(CodecError::Mismatch {
            function: Some(pdu.function()),
            field: mbaps_codec::Field::PduLength,
            value: len as u32 - 3,
            expected: consumed as u32 - 3,
        }),
        RtuDecoded::Incomplete { needed } => Err(CodecError::Mismatch {
            function: Some(pdu.function()),
            field: mbaps_codec::Field::PduLength,
            value: len as u32 - 3,
            expected: (len + needed) as u32 - 3,
        }),
    }
}

/// Whether `pdu` to `unit_id` can go on an RTU line: it must frame
/// ([`check_frameable`]: [`SessionError::InvalidRequest`]), and to unit 0
/// only a write can be broadcast ([`SessionError::BroadcastNotWrite`]).
pub fn check_request(unit_id: u8, pdu: &Pdu) -> Result<(), SessionError> {
    check_frameable(unit_id, pdu).map_err(SessionError::InvalidRequest)?;
    if unit_id == BROADCAST_UNIT && broadcast_answer(pdu).is_none() {
        return Err(SessionError::BroadcastNotWrite(pdu.function()));
    }
    Ok(())
}

/// The request on the line, or about to go on it.
#[derive(Clone, Debug)]
struct OnLine {
    transaction_id: u16,
    unit_id: u8,
    pdu: Pdu,
    /// Attempts left after this one.
    retries_left: u8,
    /// The response timeout of the attempt about to go.
    timeout: Duration,
}

/// Where the line stands: one state.
#[derive(Debug)]
enum State {
    /// Nothing on the line; the next request may go at `quiet_until`.
    Idle { quiet_until: Instant },
    /// A request waits for the line's silence, until `at`.
    Pending { request: OnLine, at: Instant },
    /// A request is on the line since `sent_at`; its answer is due by
    /// `deadline`.
    Awaiting {
        request: OnLine,
        sent_at: Instant,
        deadline: Instant,
    },
    /// A broadcast went out at `sent_at`: the line is the servers' until
    /// `until`.
    Turnaround {
        request: OnLine,
        sent_at: Instant,
        until: Instant,
    },
    /// Closed: nothing more is sent.
    Closed,
}

/// One RTU line to one or more devices (see the module's documentation).
pub struct RtuLine {
    settings: RtuSettings,
    state: State,
    /// Bytes received since the request went out, hunted for its answer.
    received: Received,
    transmit: Vec<u8>,
    events: VecDeque<ClientEvent>,
    next_transaction_id: u16,
    counters: LineCounters,
}

impl RtuLine {
    /// A line opened at `now` (a serial port opened, or a TCP connection to
    /// a converter): it is up at once.
    pub fn new(settings: RtuSettings, now: Instant) -> RtuLine {
        RtuLine {
            settings,
            state: State::Idle { quiet_until: now },
            received: Received::default(),
            transmit: Vec::with_capacity(MAX_RTU_FRAME_LEN),
            events: VecDeque::from([ClientEvent::Connected(None)]),
            next_transaction_id: 0,
            counters: LineCounters::default(),
        }
    }

    /// The line's settings.
    pub fn settings(&self) -> &RtuSettings {
        &self.settings
    }

    /// What happened on the line so far.
    pub fn counters(&self) -> LineCounters {
        LineCounters {
            crc_errors: self.received.crc_errors,
            ..self.counters
        }
    }

    /// Puts `pdu` for `unit_id` on the line once its silence has passed,
    /// and returns the transaction id its events carry. One request at a
    /// time: [`SessionError::TooManyOutstanding`] while one is under way.
    /// A request to unit 0 is a broadcast, which only writes may be
    /// ([`broadcast_answer`]); a function without an RTU length rule is
    /// refused ([`check_frameable`]).
    pub fn send_request_pdu(
        &mut self,
        now: Instant,
        unit_id: u8,
        pdu: &Pdu,
        timeout: Duration,
    ) -> Result<u16, SessionError> {
        let quiet_until = match self.state {
            State::Idle { quiet_until } => quiet_until,
            State::Closed => return Err(SessionError::Closed),
            State::Pending { .. } | State::Awaiting { .. } | State::Turnaround { .. } => {
                return Err(SessionError::TooManyOutstanding(1));
            }
        };
        check_request(unit_id, pdu)?;
        let transaction_id = self.next_transaction_id;
        self.next_transaction_id = self.next_transaction_id.wrapping_add(1);
        // A request that does not decode changes what the device says it
        // does: not repeated either.
        let changes_state = pdu
            .request()
            .map_or(true, |request| request.changes_state());
        let retries_left = if changes_state && !self.settings.retry_writes {
            0
        } else {
            self.settings.retries
        };
        let request = OnLine {
            transaction_id,
            unit_id,
            pdu: *pdu,
            retries_left,
            // Never less than the response timeout: see its documentation.
            timeout: timeout.max(self.settings.response_timeout),
        };
        self.state = State::Pending {
            request,
            at: quiet_until,
        };
        self.advance(now);
        Ok(transaction_id)
    }

    /// Bytes read from the line.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(self.state, State::Awaiting { .. }) {
            if !bytes.is_empty() && !matches!(self.state, State::Closed) {
                // Nothing is awaited: noise, or an answer after its
                // timeout. Its bytes end the silence.
                self.counters.discarded += 1;
                self.quiet_from(now);
            }
            return;
        }
        self.received.extend(bytes);
        self.hunt(now);
    }

    /// The line ended (the converter's TCP connection closed).
    pub fn handle_eof(&mut self, _now: Instant) {
        self.end(CloseReason::PeerEofWithoutCloseNotify);
    }

    /// The line failed (a serial port's read or write error).
    pub fn handle_error(&mut self, _now: Instant, kind: std::io::ErrorKind) {
        self.end(CloseReason::Reset(kind));
    }

    /// Sends what waited for the silence, ends attempts past their
    /// timeout, answers broadcasts; call at [`RtuLine::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// When [`RtuLine::handle_timeout`] is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Pending { at, .. } => Some(*at),
            State::Awaiting { deadline, .. } => Some(*deadline),
            State::Turnaround { until, .. } => Some(*until),
            State::Idle { .. } | State::Closed => None,
        }
    }

    /// The next event; drain until `None` after every call.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends the bytes to write to the line; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.transmit.len();
        out.append(&mut self.transmit);
        n
    }

    /// Stops waiting for request `transaction_id`: it reports nothing more.
    /// `false` when it was not under way.
    pub fn abandon(&mut self, transaction_id: u16) -> bool {
        // The line stays quiet as long as the request would have held it:
        // its answer may still come, and is discarded.
        let quiet_until = match &self.state {
            State::Pending { request, at } if request.transaction_id == transaction_id => *at,
            State::Awaiting {
                request, deadline, ..
            } if request.transaction_id == transaction_id => {
                *deadline + self.settings.silence.max(self.settings.turnaround)
            }
            State::Turnaround { request, until, .. }
                if request.transaction_id == transaction_id =>
            {
                *until
            }
            _ => return false,
        };
        self.state = State::Idle { quiet_until };
        self.received.clear();
        true
    }

    /// Closes the line: the request under way ends with
    /// [`ClientEvent::Aborted`], then [`ClientEvent::Closed`].
    pub fn close(&mut self, _now: Instant) {
        self.end(CloseReason::LocalClose);
    }

    /// Frames and bytes dropped ([`LineCounters::discarded`]) and frames
    /// with a bad CRC.
    pub fn discarded_responses(&self) -> u64 {
        self.counters.discarded + self.received.crc_errors
    }

    /// Whether a request is under way.
    pub fn in_flight(&self) -> usize {
        match self.state {
            State::Pending { .. } | State::Awaiting { .. } | State::Turnaround { .. } => 1,
            State::Idle { .. } | State::Closed => 0,
        }
    }

    fn end(&mut self, reason: CloseReason) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match state {
            State::Closed => return,
            State::Pending { request, .. }
            | State::Awaiting { request, .. }
            | State::Turnaround { request, .. } => self.events.push_back(ClientEvent::Aborted {
                transaction_id: request.transaction_id,
                reason: reason.clone(),
            }),
            State::Idle { .. } => {}
        }
        self.received.clear();
        self.events.push_back(ClientEvent::Closed(reason));
    }

    fn quiet_from(&mut self, now: Instant) {
        if let State::Idle { quiet_until } = &mut self.state {
            *quiet_until = (*quiet_until).max(now + self.settings.silence);
        }
    }

    /// Moves the line on by time: a request whose silence has passed goes
    /// out, an attempt past its timeout is retried or ends, a broadcast's
    /// turnaround ends.
    fn advance(&mut self, now: Instant) {
        loop {
            let state = std::mem::replace(&mut self.state, State::Closed);
            self.state = match state {
                State::Pending { request, at } if at <= now => self.put_on_line(now, request),
                State::Awaiting {
                    mut request,
                    sent_at,
                    deadline,
                } if deadline <= now => {
                    self.counters.timeouts += 1;
                    self.counters.busy += now.saturating_duration_since(sent_at);
                    self.received.clear();
                    // RTU frames carry no transaction id: an answer that
                    // just missed its timeout would be taken for the next
                    // request's. The line waits the turnaround first, and
                    // what comes meanwhile is discarded.
                    let at = now + self.settings.silence.max(self.settings.turnaround);
                    if request.retries_left > 0 {
                        request.retries_left -= 1;
                        request.timeout = self.settings.response_timeout;
                        self.counters.retries += 1;
                        State::Pending { request, at }
                    } else {
                        self.events.push_back(ClientEvent::Timeout {
                            transaction_id: request.transaction_id,
                        });
                        State::Idle { quiet_until: at }
                    }
                }
                State::Turnaround {
                    request,
                    sent_at,
                    until,
                } if until <= now => {
                    self.counters.busy += now.saturating_duration_since(sent_at);
                    if let Some(pdu) = broadcast_answer(&request.pdu) {
                        self.events.push_back(ClientEvent::Response {
                            transaction_id: request.transaction_id,
                            unit_id: BROADCAST_UNIT,
                            pdu,
                        });
                    }
                    State::Idle { quiet_until: now }
                }
                other => {
                    self.state = other;
                    return;
                }
            };
        }
    }

    fn put_on_line(&mut self, now: Instant, request: OnLine) -> State {
        let mut frame = [0u8; MAX_RTU_FRAME_LEN];
        let encoded = RtuFrame {
            unit_id: request.unit_id,
            pdu: request.pdu.as_bytes(),
        }
        .encode(&mut frame);
        // send_request_pdu checked that it frames.
        let len = encoded.unwrap_or(0);
        self.transmit.extend_from_slice(&frame[..len]);
        self.counters.requests += 1;
        self.received.clear();
        if request.unit_id == BROADCAST_UNIT {
            let until = now + self.settings.turnaround;
            return State::Turnaround {
                request,
                sent_at: now,
                until,
            };
        }
        let deadline = now + request.timeout;
        State::Awaiting {
            request,
            sent_at: now,
            deadline,
        }
    }

    /// Looks for the awaited answer in what was received: frames from
    /// another unit are dropped; noise and truncated frames are passed
    /// over ([`Received::next_frame`]).
    fn hunt(&mut self, now: Instant) {
        let State::Awaiting {
            request, sent_at, ..
        } = &self.state
        else {
            return;
        };
        let (unit_id, transaction_id, sent_at) =
            (request.unit_id, request.transaction_id, *sent_at);
        let function = request.pdu.function();
        let mut start = 0;
        let crc_errors = self.received.crc_errors;
        let answer = loop {
            match self.received.next_frame(RtuFrameKind::Response, start) {
                Ok((frame, _)) if frame.unit_id == unit_id => {
                    break Some(crate::client::judge_response(
                        transaction_id,
                        function,
                        unit_id,
                        unit_id,
                        frame.pdu,
                    ));
                }
                Ok((frame, end)) => {
                    self.counters.discarded += 1;
                    self.events.push_back(ClientEvent::Dropped {
                        transaction_id,
                        reason: DropReason::OtherUnit(frame.unit_id),
                    });
                    start = end;
                }
                Err(from) => {
                    start = from;
                    break None;
                }
            }
        };
        for _ in crc_errors..self.received.crc_errors {
            self.events.push_back(ClientEvent::Dropped {
                transaction_id,
                reason: DropReason::Crc,
            });
        }
        match answer {
            Some(event) => {
                self.received.clear();
                self.counters.busy += now.saturating_duration_since(sent_at);
                self.events.push_back(event);
                self.state = State::Idle {
                    quiet_until: now + self.settings.silence,
                };
            }
            None => self.received.consume(start),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)] // the virtual clock starts at the real now

    use super::*;
    use mbaps_codec::Request;

    const TIMEOUT: Duration = Duration::from_millis(500);

    fn read(address: u16) -> Pdu {
        Pdu::encode_request(&Request::ReadHoldingRegisters {
            address,
            quantity: 1,
        })
        .unwrap()
    }

    fn write(address: u16, value: u16) -> Pdu {
        Pdu::encode_request(&Request::WriteSingleRegister { address, value }).unwrap()
    }

    fn frame(unit_id: u8, pdu: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_RTU_FRAME_LEN];
        let len = RtuFrame { unit_id, pdu }.encode(&mut out).unwrap();
        out[..len].to_vec()
    }

    fn line(retries: u8, retry_writes: bool) -> (RtuLine, Instant) {
        let now = Instant::now();
        let settings = RtuSettings {
            retries,
            retry_writes,
            ..RtuSettings::serial(9_600, TIMEOUT)
        };
        let mut line = RtuLine::new(settings, now);
        assert_eq!(line.poll_event(), Some(ClientEvent::Connected(None)));
        (line, now)
    }

    fn sent(line: &mut RtuLine) -> Vec<u8> {
        let mut out = Vec::new();
        line.poll_transmit(&mut out);
        out
    }

    fn events(line: &mut RtuLine) -> Vec<ClientEvent> {
        std::iter::from_fn(|| line.poll_event()).collect()
    }

    fn answered(transaction_id: u16, unit_id: u8, pdu: &[u8]) -> ClientEvent {
        ClientEvent::Response {
            transaction_id,
            unit_id,
            pdu: Pdu::copy_of(pdu),
        }
    }

    #[test]
    fn the_silence_is_three_and_a_half_characters_and_fixed_above_19200_baud() {
        assert_eq!(silence_at(9_600), Duration::from_micros(4_010));
        assert_eq!(silence_at(19_200), Duration::from_micros(2_005));
        assert_eq!(silence_at(38_400), Duration::from_micros(1_750));
        assert_eq!(silence_at(115_200), Duration::from_micros(1_750));
    }

    #[test]
    fn one_request_at_a_time_and_the_next_after_the_silence() {
        let (mut line, t0) = line(0, false);
        let id = line
            .send_request_pdu(t0, 0x11, &read(0x6B), TIMEOUT)
            .unwrap();
        assert_eq!(sent(&mut line), frame(0x11, read(0x6B).as_bytes()));
        assert_eq!(
            line.send_request_pdu(t0, 0x11, &read(1), TIMEOUT),
            Err(SessionError::TooManyOutstanding(1))
        );
        let t1 = t0 + Duration::from_millis(20);
        line.handle_bytes(t1, &frame(0x11, &[0x03, 2, 0x12, 0x34]));
        assert_eq!(
            events(&mut line),
            [answered(id, 0x11, &[0x03, 2, 0x12, 0x34])]
        );
        // The next request waits for the line's silence.
        let next = line.send_request_pdu(t1, 0x11, &read(1), TIMEOUT).unwrap();
        assert!(sent(&mut line).is_empty());
        assert_eq!(line.poll_timeout(), Some(t1 + silence_at(9_600)));
        line.handle_timeout(t1 + silence_at(9_600));
        assert_eq!(sent(&mut line), frame(0x11, read(1).as_bytes()));
        assert_ne!(next, id);
        assert_eq!(line.counters().requests, 2);
    }

    #[test]
    fn noise_a_truncated_frame_and_another_units_answer_are_passed_over() {
        let (mut line, t0) = line(0, false);
        let id = line.send_request_pdu(t0, 5, &read(7), TIMEOUT).unwrap();
        sent(&mut line);
        let answer = frame(5, &[0x03, 2, 0, 9]);
        let mut bytes = vec![0xFF, 0x00, 0x13];
        bytes.extend_from_slice(&answer[..4]);
        bytes.extend_from_slice(&frame(6, &[0x03, 2, 0, 1]));
        // The answer itself comes in two reads.
        line.handle_bytes(t0, &bytes);
        assert_eq!(line.in_flight(), 1);
        line.handle_bytes(t0, &answer[..3]);
        line.handle_bytes(t0, &answer[3..]);
        let events = events(&mut line);
        assert!(events.contains(&ClientEvent::Dropped {
            transaction_id: id,
            reason: DropReason::OtherUnit(6)
        }));
        assert_eq!(events.last(), Some(&answered(id, 5, &[0x03, 2, 0, 9])));
        assert_eq!(line.counters().discarded, 1);
        assert_eq!(line.in_flight(), 0);
    }

    #[test]
    fn noise_that_looks_like_the_start_of_a_long_frame_does_not_hide_the_answer() {
        let (mut line, t0) = line(0, false);
        let id = line.send_request_pdu(t0, 0x11, &read(9), TIMEOUT).unwrap();
        sent(&mut line);
        // `03` read as a function code, `11` as a byte count of 17.
        let mut bytes = vec![0xFF, 0x03];
        bytes.extend_from_slice(&frame(0x11, &[0x03, 2, 0, 9]));
        line.handle_bytes(t0, &bytes);
        assert_eq!(
            events(&mut line).last(),
            Some(&answered(id, 0x11, &[0x03, 2, 0, 9]))
        );
    }

    #[test]
    fn a_corrupted_answer_is_counted_and_a_read_is_sent_again() {
        let (mut line, t0) = line(1, false);
        let id = line.send_request_pdu(t0, 5, &read(7), TIMEOUT).unwrap();
        let request = sent(&mut line);
        let mut corrupted = frame(5, &[0x03, 2, 0, 9]);
        corrupted[3] ^= 0x01;
        line.handle_bytes(t0, &corrupted);
        assert_eq!(
            events(&mut line),
            [ClientEvent::Dropped {
                transaction_id: id,
                reason: DropReason::Crc
            }]
        );
        // The timeout: the read goes again, after the silence.
        let t1 = t0 + TIMEOUT;
        line.handle_timeout(t1);
        assert!(events(&mut line).is_empty());
        line.handle_timeout(line.poll_timeout().unwrap());
        assert_eq!(sent(&mut line), request);
        line.handle_bytes(t1, &frame(5, &[0x03, 2, 0, 9]));
        assert_eq!(events(&mut line), [answered(id, 5, &[0x03, 2, 0, 9])]);
        let counters = line.counters();
        assert_eq!(
            (
                counters.crc_errors,
                counters.retries,
                counters.timeouts,
                counters.requests
            ),
            (1, 1, 1, 2)
        );
    }

    #[test]
    fn a_write_is_not_sent_again_unless_asked() {
        for (retry_writes, attempts) in [(false, 1), (true, 3)] {
            let (mut line, mut now) = line(2, retry_writes);
            let id = line
                .send_request_pdu(now, 5, &write(1, 2), TIMEOUT)
                .unwrap();
            let mut sends = 0;
            let mut timed_out = false;
            while !timed_out {
                sends += usize::from(!sent(&mut line).is_empty());
                now = line.poll_timeout().unwrap();
                line.handle_timeout(now);
                timed_out = events(&mut line) == [ClientEvent::Timeout { transaction_id: id }];
            }
            assert_eq!(sends, attempts, "retry_writes {retry_writes}");
        }
    }

    #[test]
    fn a_broadcast_write_is_answered_after_the_turnaround_without_waiting_for_a_server() {
        let (mut line, t0) = line(0, false);
        let id = line.send_request_pdu(t0, 0, &write(1, 2), TIMEOUT).unwrap();
        assert_eq!(sent(&mut line), frame(0, write(1, 2).as_bytes()));
        assert!(events(&mut line).is_empty());
        assert_eq!(
            line.poll_timeout(),
            Some(t0 + RtuSettings::DEFAULT_TURNAROUND)
        );
        assert_eq!(
            line.send_request_pdu(t0, 1, &read(1), TIMEOUT),
            Err(SessionError::TooManyOutstanding(1))
        );
        line.handle_timeout(t0 + RtuSettings::DEFAULT_TURNAROUND);
        assert_eq!(events(&mut line), [answered(id, 0, write(1, 2).as_bytes())]);
        // A read cannot be broadcast.
        assert!(line.send_request_pdu(t0, 0, &read(1), TIMEOUT).is_err());
    }

    #[test]
    fn an_answer_after_its_timeout_is_discarded_and_a_closed_line_aborts() {
        let (mut line, t0) = line(0, false);
        let id = line.send_request_pdu(t0, 5, &read(7), TIMEOUT).unwrap();
        sent(&mut line);
        line.handle_timeout(t0 + TIMEOUT);
        assert_eq!(
            events(&mut line),
            [ClientEvent::Timeout { transaction_id: id }]
        );
        line.handle_bytes(t0 + TIMEOUT, &frame(5, &[0x03, 2, 0, 9]));
        assert!(events(&mut line).is_empty());
        assert_eq!(line.counters().discarded, 1);
        let t1 = t0 + TIMEOUT * 2;
        let id = line.send_request_pdu(t1, 5, &read(7), TIMEOUT).unwrap();
        line.handle_error(t1, std::io::ErrorKind::BrokenPipe);
        let reason = CloseReason::Reset(std::io::ErrorKind::BrokenPipe);
        assert_eq!(
            events(&mut line),
            [
                ClientEvent::Aborted {
                    transaction_id: id,
                    reason: reason.clone()
                },
                ClientEvent::Closed(reason)
            ]
        );
    }

    #[test]
    fn user_defined_functions_cannot_be_framed() {
        let (mut line, t0) = line(0, false);
        let pdu = Pdu::copy_of(&[0x41, 1, 2]);
        assert_eq!(
            line.send_request_pdu(t0, 1, &pdu, TIMEOUT),
            Err(SessionError::InvalidRequest(CodecError::NoLengthRule {
                code: 0x41
            }))
        );
    }
}
