//! The connection under a session, either side: ciphertext in, MBAP frames out, ADUs in,
//! ciphertext out, and the session's one lifecycle state. It holds the
//! session's only buffers, each with a fixed bound, and its timers.
//!
//! ```text
//!  Handshaking ──handshake done──► Open ──close()──► Closing ──peer's close_notify,
//!       │                            │                  │      EOF, close timeout──┐
//!       │                            │                  └─ alert ─────────────────┤
//!       └── alert, timeout, EOF, ────┴── peer's close_notify, EOF, idle timeout, ──┴─► Closed(reason)
//!           close(), peer's close      alert, a stream that cannot be followed
//! ```
//!
//! Every move to `Closed` goes through [`Connection::finish`], which leaves the
//! reason for the side to report once, as its last event, after any alert
//! owed to the peer is queued.

use std::io::ErrorKind;
use std::time::Instant;

use mbaps_codec::limits::MAX_ADU_LEN;
use mbaps_codec::{CodecError, Decoded, MbapHeader, decode};

use crate::config::Timers;
use crate::error::SessionError;
use crate::event::{CloseReason, Handshake};
use crate::resumption::{Forget, noting_keys};
use crate::transport::{ReadError, Transport};

/// Plaintext reassembly, for the rare ADU that spans TLS records (or
/// reads): room for one whole ADU and the start of the next.
const RX_CAPACITY: usize = 2 * MAX_ADU_LEN;

/// Output kept between batches (plain Modbus/TCP: TLS hands the buffer to
/// the transport); a larger buffer is released when drained, so that an
/// idle session holds little.
const KEPT_OUTPUT_CAPACITY: usize = 2 * 1024;

/// Bound on output waiting for `poll_transmit`: the most requests (or
/// answers) in flight, each of the largest size (65 KiB), so that a client
/// may send all it may have in flight before it drains. An adapter that
/// drains after every call never nears it.
pub(crate) const SEND_BUFFER_LIMIT: usize = crate::config::MAX_OUTSTANDING_LIMIT * MAX_ADU_LEN;

/// Where a session stands: one state, moved in one place.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// The TLS handshake is in progress.
    Handshaking,
    /// The session is up: Modbus frames flow.
    Open,
    /// We sent close_notify at `since` and wait for the peer's; the
    /// session's end will be `reason`.
    Closing { since: Instant, reason: CloseReason },
    /// Over.
    Closed(CloseReason),
}

/// A frame taken off the stream, borrowed from the reassembly buffer.
pub(crate) enum Frame<'a> {
    /// An ADU with protocol id 0.
    Adu { header: MbapHeader, pdu: &'a [u8] },
    /// An ADU with another protocol id, discarded.
    Discarded {
        protocol_id: u16,
        transaction_id: u16,
    },
}

/// What the front of some plaintext held, for [`Connection::take_frame`].
enum Step<R, F> {
    /// A whole frame, handed to the caller: drop `consumed` bytes.
    Taken { result: R, consumed: usize },
    /// A frame with another protocol id, reported: drop `frame_len` bytes
    /// as they come.
    Discarded { result: R, frame_len: usize },
    /// The start of a frame: the caller's function, unused.
    Incomplete(F),
    /// Bytes that cannot be a frame: the stream cannot be followed.
    Broken(CodecError),
}

/// Decodes the frame at the front of `bytes` and, if there is one, calls
/// `f` with it and the output buffer.
fn next_frame<R, F: FnOnce(Frame<'_>, &mut Vec<u8>) -> R>(
    bytes: &[u8],
    pending: &mut Vec<u8>,
    f: F,
) -> Step<R, F> {
    match decode(bytes) {
        Ok(Decoded::Frame { adu, consumed }) => {
            let frame = Frame::Adu {
                header: adu.header,
                pdu: adu.pdu,
            };
            Step::Taken {
                result: f(frame, pending),
                consumed,
            }
        }
        Ok(Decoded::Incomplete { .. }) => Step::Incomplete(f),
        Err(CodecError::ProtocolId { value, frame_len }) => {
            let frame = Frame::Discarded {
                protocol_id: value,
                transaction_id: u16::from_be_bytes([bytes[0], bytes[1]]),
            };
            Step::Discarded {
                result: f(frame, pending),
                frame_len,
            }
        }
        Err(error) => Step::Broken(error),
    }
}

pub(crate) struct Connection {
    conn: Transport,
    state: State,
    /// How the session ended, until the side has reported it.
    end: Option<CloseReason>,
    /// ADUs written since the last `poll_transmit`: handed to the transport
    /// together, so a batch of responses travels in one TLS record.
    pending: Vec<u8>,
    /// The start of a frame that spans TLS records, and what followed it
    /// (at most [`RX_CAPACITY`]); empty, and unallocated, otherwise: whole
    /// frames are taken straight from the transport's plaintext.
    rx: Vec<u8>,
    /// Bytes of a discarded frame still to drop.
    skip: usize,
    /// The peer's stream ended: the session ends once its plaintext has
    /// been read.
    eof: bool,
    started: Instant,
    last_activity: Instant,
    timers: Timers,
    /// What to forget if a fatal alert ends the session (R-11).
    forget: Option<Forget>,
}

impl Connection {
    pub(crate) fn new(conn: Transport, now: Instant, timers: Timers) -> Connection {
        let state = if conn.is_plain() {
            State::Open
        } else {
            State::Handshaking
        };
        Connection {
            conn,
            state,
            end: None,
            pending: Vec::new(),
            rx: Vec::new(),
            skip: 0,
            eof: false,
            started: now,
            last_activity: now,
            timers,
            forget: None,
        }
    }

    /// Forget `forget` if a TLS error (a fatal alert, sent or received)
    /// ends the session (R-11).
    pub(crate) fn forget_on_alert(&mut self, forget: Forget) {
        self.forget = Some(forget);
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.conn
    }

    /// The one move to `Closed`: the first reason stays; it waits in
    /// [`Connection::take_end`] for the side to report.
    fn finish(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        // A session a fatal alert ended, or whose client certificate is
        // no longer accepted, must not be resumed.
        if let CloseReason::Failed(SessionError::Tls(_) | SessionError::NoLongerAccepted(_)) =
            reason
            && let Some(forget) = &mut self.forget
        {
            forget.forget();
        }
        self.pending = Vec::new();
        self.end = Some(reason.clone());
        self.state = State::Closed(reason);
    }

    /// A fatal error: the session is over, the alert rustls owes the peer
    /// (if any) waits in `poll_transmit`.
    pub(crate) fn fail(&mut self, error: SessionError) {
        self.finish(CloseReason::Failed(error));
    }

    /// Ends an open session at once for `error`, with close_notify (not an
    /// alert: nothing the peer sent was wrong); the session's end is
    /// `Failed(error)`.
    pub(crate) fn close_failed(&mut self, error: SessionError) {
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        self.conn.send_close();
        self.finish(CloseReason::Failed(error));
    }

    /// How the session ended, once, when it has.
    pub(crate) fn take_end(&mut self) -> Option<CloseReason> {
        self.end.take()
    }

    /// Why nothing more can be sent: the sticky error of a failed session,
    /// or [`SessionError::Closed`].
    pub(crate) fn refusal(&self) -> Option<SessionError> {
        match &self.state {
            State::Handshaking | State::Open => None,
            State::Closed(CloseReason::Failed(error)) => Some(error.clone()),
            State::Closing { .. } | State::Closed(_) => Some(SessionError::Closed),
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.state == State::Handshaking
    }

    /// Open: frames may be taken and ADUs written.
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Feeds the transport, noting the session keys a server's store is
    /// asked about meanwhile.
    fn feed<E>(&mut self, f: impl FnOnce(&mut Transport) -> Result<(), E>) -> Result<(), E> {
        match &mut self.forget {
            Some(Forget::Server { keys, .. }) => {
                let conn = &mut self.conn;
                noting_keys(keys, || f(conn))
            }
            _ => f(&mut self.conn),
        }
    }

    /// Feeds ciphertext to rustls: one batch of records from the front of
    /// `input` (which is advanced; all of it once the session is closed).
    /// `true` when this batch finished the handshake.
    pub(crate) fn read_tls(&mut self, now: Instant, input: &mut &[u8]) -> bool {
        if self.is_closed() || self.eof {
            // Nothing more is read: what still arrives is dropped.
            *input = &[];
            return false;
        }
        if input.is_empty() {
            return false;
        }
        self.last_activity = now;
        match self.feed(|conn| conn.read(input)) {
            Ok(()) => {}
            // rustls reports close_notify before the handshake finished as
            // an error: the peer gave up, which is a close, not a failure.
            Err(ReadError::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::CloseNotify,
            ))) if self.is_handshaking() => {
                self.finish(CloseReason::PeerClosed);
            }
            Err(ReadError::Tls(error)) => self.fail(SessionError::Tls(error)),
            Err(ReadError::BufferFull) => self.fail(SessionError::ReceiveBufferFull),
        }
        let opened = self.is_handshaking() && !self.conn.is_handshaking();
        if opened {
            self.state = State::Open;
        }
        opened
    }

    /// The handshake's outcome, once, on the move to `Open`: the TLS
    /// parameters (`None` for plain Modbus/TCP, open from the start).
    pub(crate) fn handshake(&self) -> Option<Handshake> {
        self.conn.handshake()
    }

    /// The peer's stream ended (a read returned 0).
    pub(crate) fn read_eof(&mut self) {
        if self.is_closed() || self.eof {
            return;
        }
        self.eof = true;
        match self.state {
            State::Handshaking => self.finish(CloseReason::PeerEofWithoutCloseNotify),
            State::Closing { .. } => self.finish_closing(),
            _ => {
                if let Err(error) = self.feed(Transport::read_eof) {
                    self.fail(SessionError::Tls(error));
                }
                // The end is seen once the plaintext before it is read
                // (`take_frame`), so that no frame received is lost: now,
                // if none is left.
                if self.rx.is_empty() && self.skip == 0 {
                    self.peek();
                }
            }
        }
    }

    /// Whether the connection holds plaintext that may make a frame: the side
    /// must take frames before more input is read.
    pub(crate) fn has_plaintext(&self) -> bool {
        let in_rx = !self.rx.is_empty()
            && (self.skip > 0 || !matches!(decode(&self.rx), Ok(Decoded::Incomplete { .. })));
        in_rx || self.conn.plaintext_waiting()
    }

    /// Calls `f` with the next whole frame of the stream and the output
    /// buffer, then drops the frame; `None` when no whole frame is there
    /// (or the session is over). The frame is borrowed from the
    /// transport's plaintext (the record it came in), or, when it spans
    /// records, from the reassembly buffer.
    pub(crate) fn take_frame<R, F: FnOnce(Frame<'_>, &mut Vec<u8>) -> R>(
        &mut self,
        f: F,
    ) -> Option<R> {
        self.next_whole_frame(f, true)
    }

    /// Calls `f` with the next whole frame of the stream, as
    /// [`Connection::take_frame`] does, but leaves the frame where it is: the
    /// next `take_frame` gets it again. `None` when no whole frame is
    /// there (or the session is over).
    pub(crate) fn peek_frame<R>(&mut self, f: impl FnOnce(Frame<'_>) -> R) -> Option<R> {
        self.next_whole_frame(|frame, _| f(frame), false)
    }

    fn next_whole_frame<R, F: FnOnce(Frame<'_>, &mut Vec<u8>) -> R>(
        &mut self,
        mut f: F,
        consume: bool,
    ) -> Option<R> {
        loop {
            if self.is_closed() {
                return None;
            }
            if self.skip > 0 {
                // A discarded frame's bytes: dropped where they are.
                let n = if self.rx.is_empty() {
                    let available = self.peek()?;
                    let n = self.skip.min(available);
                    self.conn.consume_plaintext(n);
                    n
                } else {
                    let n = self.skip.min(self.rx.len());
                    self.drop_front(n);
                    n
                };
                self.skip -= n;
                continue;
            }
            // A frame that spans records is in the reassembly buffer; any
            // other comes straight from the plaintext, where it was decrypted.
            let in_rx = !self.rx.is_empty();
            let step = if in_rx {
                next_frame(&self.rx, &mut self.pending, f)
            } else {
                match self.conn.peek_plaintext() {
                    Ok(chunk) if !chunk.is_empty() => next_frame(chunk, &mut self.pending, f),
                    other => {
                        let outcome = other.map(|_| ()).map_err(|error| error.kind());
                        self.no_plaintext(outcome);
                        return None;
                    }
                }
            };
            match step {
                Step::Taken { result, .. } | Step::Discarded { result, .. } if !consume => {
                    return Some(result);
                }
                Step::Taken { result, consumed } if in_rx => {
                    self.drop_front(consumed);
                    return Some(result);
                }
                Step::Taken { result, consumed } => {
                    self.conn.consume_plaintext(consumed);
                    return Some(result);
                }
                Step::Discarded { result, frame_len } => {
                    self.skip = frame_len;
                    return Some(result);
                }
                Step::Incomplete(unused) => {
                    f = unused;
                    self.fill()?;
                }
                Step::Broken(error) => {
                    self.fail(SessionError::Framing(error));
                    return None;
                }
            }
        }
    }

    /// How many bytes of plaintext the transport has now (in its next
    /// chunk); `None` when it has none, having seen the peer's end (its
    /// close_notify, or EOF) when that is why.
    fn peek(&mut self) -> Option<usize> {
        let outcome = match self.conn.peek_plaintext() {
            Ok(chunk) if !chunk.is_empty() => return Some(chunk.len()),
            Ok(_) => Ok(()),
            Err(error) => Err(error.kind()),
        };
        self.no_plaintext(outcome);
        None
    }

    /// The transport had no plaintext: `Ok` at the peer's orderly end
    /// (close_notify; EOF for plain), otherwise why (`WouldBlock`: none
    /// yet; `UnexpectedEof`: EOF without close_notify).
    fn no_plaintext(&mut self, outcome: Result<(), ErrorKind>) {
        match outcome {
            Ok(()) => self.peer_closed(CloseReason::PeerClosed),
            Err(ErrorKind::WouldBlock) => {}
            Err(ErrorKind::UnexpectedEof) => {
                self.peer_closed(CloseReason::PeerEofWithoutCloseNotify)
            }
            Err(kind) => self.fail(SessionError::ReceiveFailed(kind)),
        }
    }

    /// Moves the transport's next plaintext into the reassembly buffer, as
    /// much as it has room for; `None` when there is none now.
    fn fill(&mut self) -> Option<()> {
        self.peek()?;
        let room = RX_CAPACITY.saturating_sub(self.rx.len());
        if room == 0 {
            // Cannot happen: a frame is at most half the buffer and whole
            // frames are taken out before more is moved in.
            return None;
        }
        let chunk = self.conn.peek_plaintext().ok()?;
        let n = chunk.len().min(room);
        self.rx.extend_from_slice(&chunk[..n]);
        self.conn.consume_plaintext(n);
        Some(())
    }

    /// The peer closed (close_notify, or for plain Modbus/TCP the end of
    /// its stream): an open session answers with close_notify and ends; a
    /// closing one has its answer.
    fn peer_closed(&mut self, reason: CloseReason) {
        match self.state {
            State::Open => {
                self.flush_pending();
                self.conn.send_close();
                self.finish(reason);
            }
            State::Closing { .. } => self.finish_closing(),
            _ => self.finish(reason),
        }
    }

    fn drop_front(&mut self, n: usize) {
        self.rx.drain(..n);
        if self.rx.is_empty() {
            // Spanning frames are rare: an idle session holds no buffer.
            self.rx = Vec::new();
        }
    }

    /// Bytes of ADUs written and not yet taken by `poll_transmit`.
    pub(crate) fn queued_output(&self) -> usize {
        self.pending.len()
    }

    /// Queues one ADU, encoded by `encode` straight into the output (the
    /// caller has checked the session may send); returns it as written.
    /// `None` when the output is full: the session failed
    /// ([`SessionError::SendBufferFull`]).
    pub(crate) fn write_adu(
        &mut self,
        now: Instant,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, CodecError>,
    ) -> Option<Result<&[u8], CodecError>> {
        if self.pending.len() + MAX_ADU_LEN > SEND_BUFFER_LIMIT {
            self.fail(SessionError::SendBufferFull);
            return None;
        }
        let start = self.pending.len();
        self.pending.resize(start + MAX_ADU_LEN, 0);
        let written = encode(&mut self.pending[start..]);
        self.pending
            .truncate(start + *written.as_ref().unwrap_or(&0));
        self.last_activity = now;
        Some(written.map(|_| &self.pending[start..]))
    }

    /// Notes traffic at `now` (the idle timer restarts).
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Whether bytes wait for `poll_transmit` (an alert, close_notify,
    /// responses).
    pub(crate) fn wants_write(&self) -> bool {
        !self.pending.is_empty() || self.conn.wants_write()
    }

    /// Appends every byte waiting to go to the peer (an alert too).
    pub(crate) fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        self.flush_pending();
        if let Err(error) = self.conn.write_out(out) {
            self.fail(SessionError::Tls(error));
        }
        out.len() - before
    }

    /// Hands the ADUs written so far to the transport, in order, before
    /// anything that must follow them (a close_notify, the next records).
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let whole = self
            .conn
            .write_plaintext(&mut self.pending, SEND_BUFFER_LIMIT);
        if self.pending.capacity() > KEPT_OUTPUT_CAPACITY {
            self.pending = Vec::new();
        }
        if !whole {
            // Cannot happen: the transport's buffer is drained on every
            // poll_transmit and holds at most what `pending` may.
            self.fail(SessionError::SendBufferFull);
        }
    }

    /// Sends close_notify, once: an open session then waits for the
    /// peer's (at most the close timeout); during the handshake this
    /// abandons it; plain Modbus/TCP, which has no close handshake, is
    /// over at once. The session's end is `reason`.
    pub(crate) fn close(&mut self, now: Instant, reason: CloseReason) {
        match self.state {
            State::Open => {
                self.flush_pending();
                if self.is_closed() {
                    // What was written could not be queued: failed.
                    return;
                }
                self.conn.send_close();
                // Plain Modbus/TCP has no answer to wait for, nor a peer
                // whose stream is over already.
                if self.conn.is_plain() || self.eof {
                    self.finish(reason);
                } else {
                    self.state = State::Closing { since: now, reason };
                }
            }
            State::Handshaking => {
                self.conn.send_close();
                self.finish(reason);
            }
            State::Closing { .. } | State::Closed(_) => {}
        }
    }

    /// The connection is gone (cut by admission control, a failed read or
    /// write, the write timeout): nothing more is sent, the session is over
    /// with `reason`, unless it was already, or was closing at our
    /// initiative (then our reason stands: only the last words were lost).
    pub(crate) fn cut(&mut self, reason: CloseReason) {
        match self.state {
            State::Closing { .. } => self.finish_closing(),
            _ => self.finish(reason),
        }
    }

    /// A close of ours is over (answered, the peer's stream ended, or the
    /// close timeout): the end is the reason it was started with.
    fn finish_closing(&mut self) {
        if let State::Closing { reason, .. } = &self.state {
            let reason = reason.clone();
            self.finish(reason);
        }
    }

    /// When the handshake must be over: the session's start plus the
    /// handshake timeout.
    pub(crate) fn handshake_deadline(&self) -> Instant {
        self.started + self.timers.handshake_timeout
    }

    /// The next deadline: the handshake's while handshaking; the end of
    /// the wait for the peer's close_notify while closing; otherwise the
    /// idle deadline, when the caller says the session is idle.
    pub(crate) fn deadline(&self, idle: bool) -> Option<Instant> {
        match self.state {
            State::Handshaking => Some(self.handshake_deadline()),
            State::Closing { since, .. } => Some(since + self.timers.close_timeout),
            State::Open if idle => self.timers.idle_timeout.map(|t| self.last_activity + t),
            State::Open | State::Closed(_) => None,
        }
    }

    /// Checks the timers at `now`: the handshake timeout fails the session;
    /// the idle timeout closes it (without waiting for the peer's answer);
    /// the close timeout ends a close the peer does not answer.
    pub(crate) fn check_timers(&mut self, now: Instant, idle: bool) {
        let Some(deadline) = self.deadline(idle) else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Handshaking => self.fail(SessionError::HandshakeTimeout(
                self.timers.handshake_timeout,
            )),
            State::Closing { .. } => self.finish_closing(),
            State::Open => {
                self.flush_pending();
                if !self.is_closed() {
                    self.conn.send_close();
                    self.finish(CloseReason::IdleTimeout);
                }
            }
            State::Closed(_) => {}
        }
    }
}
