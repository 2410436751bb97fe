//! TLS on rustls's unbuffered connection: the session owns every buffer,
//! so an idle session holds none (R-01's TLS, with the alerts of R-10).
//!
//! rustls's buffered connection keeps a 4 KiB receive buffer from its first
//! read to its end, idle or not; here the ciphertext waiting for the rest of
//! its record, and the plaintext waiting to be framed, live in vectors that
//! are released as soon as they are empty.

use std::mem;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::CertificateDer;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus,
};

use super::ReadError;

/// Most ciphertext taken in per step: one record of the largest size
/// rustls accepts (16 KiB of payload and its overhead), so that the
/// plaintext of a step is at most a record's and is framed before the next.
const TLS_STEP: usize = 16 * 1024 + 2048 + 5;

/// Most ciphertext held waiting for the rest of a record or of a
/// handshake message spanning records: rustls refuses handshake messages
/// over 64 KiB, and a record over [`TLS_STEP`].
const MAX_INCOMING: usize = 64 * 1024 + TLS_STEP;

thread_local! {
    /// The thread's buffer for ciphertext being decrypted: a session keeps
    /// only what its last read cut short, so an idle one holds none.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most the thread's buffer keeps between reads (one step).
const SCRATCH_KEPT: usize = TLS_STEP;

/// Room for a record's header, padding and tag beyond its payload; a
/// first guess for the output, which grows to what rustls says it needs.
const RECORD_OVERHEAD: usize = 5 + 1 + 32;

/// The most plaintext one record carries.
const MAX_FRAGMENT: usize = 16 * 1024;

/// A close_notify alert record before any keys are in use: content type
/// alert, the record version rustls writes, two bytes of payload, level
/// warning, close_notify.
const PLAINTEXT_CLOSE_NOTIFY: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00];

/// The error of a connection whose records rustls panicked on.
const RUSTLS_PANICKED: &str = "rustls (a debug build) panicked on a record received after our \
     close_notify (rustls issue 959)";

/// Where our close_notify stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CloseNotify {
    /// Not asked for.
    NotAsked,
    /// Asked for: it goes out after what was written before it.
    Owed,
    /// Encrypted into the output.
    Sent,
}

/// The two sides of rustls's unbuffered API, which differ only in their
/// type.
enum Side {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// Where the end of the peer's stream stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerEnd {
    /// The stream goes on.
    Open,
    /// The peer's close_notify came: its stream is over, in order.
    CloseNotify,
    /// The stream ended (EOF) without close_notify.
    Cut,
}

/// A TLS connection over rustls's unbuffered API and the buffers it needs.
pub(crate) struct Tls {
    /// Boxed: a plain session's transport, of the same type, stays small.
    side: Box<Side>,
    /// Ciphertext not yet made into records: the start of a record, or a
    /// handshake message spanning records. Unallocated when empty.
    incoming: Vec<u8>,
    /// Plaintext received and not yet taken, from `taken` on. Unallocated
    /// when empty.
    received: Vec<u8>,
    taken: usize,
    /// Plaintext written before it can be encrypted (during the
    /// handshake), or since the last `write_out`.
    sendable: Vec<u8>,
    /// TLS bytes rustls produced while reading (handshake flights, tickets,
    /// alerts), to go out before anything encrypted after them.
    outgoing: Vec<u8>,
    /// Where our close_notify stands.
    close: CloseNotify,
    /// Something came from the peer (from then on a handshake's records
    /// may be encrypted).
    heard: bool,
    peer_end: PeerEnd,
    /// The error that failed the connection: every later read returns it
    /// (rustls's errors are sticky in the buffered connection too).
    failed: Option<rustls::Error>,
}

impl Tls {
    pub(crate) fn server(conn: UnbufferedServerConnection) -> Tls {
        Tls::new(Side::Server(conn))
    }

    pub(crate) fn client(conn: UnbufferedClientConnection) -> Tls {
        Tls::new(Side::Client(conn))
    }

    fn new(side: Side) -> Tls {
        Tls {
            side: Box::new(side),
            incoming: Vec::new(),
            received: Vec::new(),
            taken: 0,
            sendable: Vec::new(),
            outgoing: Vec::new(),
            close: CloseNotify::NotAsked,
            heard: false,
            peer_end: PeerEnd::Open,
            failed: None,
        }
    }

    fn common(&self) -> &rustls::CommonState {
        match &*self.side {
            Side::Server(conn) => conn,
            Side::Client(conn) => conn,
        }
    }

    /// Takes one step of ciphertext from the front of `input` and processes
    /// every whole record in it.
    pub(crate) fn read(&mut self, input: &mut &[u8]) -> Result<(), ReadError> {
        if let Some(error) = &self.failed {
            return Err(ReadError::Tls(error.clone()));
        }
        if self.peer_end != PeerEnd::Open {
            // After the peer's close_notify nothing more is read: what
            // follows it is dropped, not offered again.
            *input = &[];
            return Ok(());
        }
        let room = MAX_INCOMING.saturating_sub(self.incoming.len());
        if room == 0 {
            return Err(ReadError::BufferFull);
        }
        let n = input.len().min(TLS_STEP).min(room);
        let (step, rest) = input.split_at(n);
        *input = rest;
        self.heard |= n > 0;
        let mut outgoing = mem::take(&mut self.outgoing);
        let result = if self.incoming.is_empty() {
            // The usual case, whole records: they are decrypted in the
            // thread's buffer, and only a record cut short is kept.
            SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut scratch) => {
                    scratch.clear();
                    scratch.extend_from_slice(step);
                    let result = self.pump_over(&mut scratch, &mut outgoing);
                    self.incoming.extend_from_slice(&scratch);
                    if scratch.capacity() > SCRATCH_KEPT {
                        *scratch = Vec::new();
                    }
                    result
                }
                Err(_) => {
                    self.incoming.extend_from_slice(step);
                    self.pump(&mut outgoing)
                }
            })
        } else {
            self.incoming.extend_from_slice(step);
            self.pump(&mut outgoing)
        };
        self.outgoing = outgoing;
        result.map_err(ReadError::Tls)
    }

    /// The peer's stream ended.
    pub(crate) fn read_eof(&mut self) {
        if self.peer_end == PeerEnd::Open {
            self.peer_end = PeerEnd::Cut;
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    pub(crate) fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.common().protocol_version()
    }

    pub(crate) fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        Some(self.common().negotiated_cipher_suite()?.suite())
    }

    pub(crate) fn resumed(&self) -> bool {
        self.common().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.common().peer_certificates()
    }

    /// The plaintext received and not taken; empty when there is none.
    pub(crate) fn plaintext(&self) -> &[u8] {
        &self.received[self.taken..]
    }

    /// How the peer's stream stands, once its plaintext is taken.
    pub(crate) fn peer_end(&self) -> PeerEnd {
        self.peer_end
    }

    pub(crate) fn consume_plaintext(&mut self, n: usize) {
        self.taken = (self.taken + n).min(self.received.len());
        if self.taken == self.received.len() {
            self.received = Vec::new();
            self.taken = 0;
        }
    }

    /// The plaintext queued to send (written, not yet encrypted).
    pub(crate) fn sendable(&mut self) -> &mut Vec<u8> {
        &mut self.sendable
    }

    /// Moves everything that can go out into `out`: what rustls produced,
    /// then the plaintext written, encrypted, then a close_notify owed.
    /// Fails (once) when encrypting fails: the alert rustls owes, if any,
    /// is in `out` then.
    pub(crate) fn write_out(&mut self, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        out.append(&mut self.outgoing);
        self.outgoing = Vec::new();
        let owed = !self.sendable.is_empty()
            || self.close == CloseNotify::Owed
            || self.common().wants_write();
        if self.failed.is_some() || !owed {
            return Ok(());
        }
        let result = self.pump(out);
        if !self.common().is_handshaking() {
            // Past the handshake, what `pump` could not send never will be
            // (the connection is closed): it must not be asked for again.
            self.sendable.clear();
            if self.close == CloseNotify::Owed {
                self.close = CloseNotify::NotAsked;
            }
        }
        result
    }

    pub(crate) fn wants_write(&self) -> bool {
        if self.failed.is_some() {
            // Only what was made before the failure (its alert).
            return !self.outgoing.is_empty();
        }
        !self.outgoing.is_empty()
            || (!self.common().is_handshaking()
                && (!self.sendable.is_empty() || self.close == CloseNotify::Owed))
            || self.common().wants_write()
    }

    /// Sends close_notify after what was written before it.
    ///
    /// During the handshake rustls's unbuffered API has no way to send an
    /// alert. Before anything came from the peer no keys are in use and
    /// the alert is a plaintext record, which is written here, after the
    /// flight rustls has queued (a client's ClientHello); later in the
    /// handshake the alert would have to be encrypted, and the socket's
    /// close is all the peer gets.
    pub(crate) fn send_close(&mut self) {
        if !self.is_handshaking() {
            if self.close == CloseNotify::NotAsked {
                self.close = CloseNotify::Owed;
            }
            return;
        }
        if self.heard || self.failed.is_some() {
            return;
        }
        let mut outgoing = mem::take(&mut self.outgoing);
        if self.pump(&mut outgoing).is_ok() {
            outgoing.extend_from_slice(&PLAINTEXT_CLOSE_NOTIFY);
        }
        self.outgoing = outgoing;
    }

    /// Drives rustls over the ciphertext held until it waits for more:
    /// records decrypted to `received`, rustls's output and the plaintext
    /// written, encrypted, to `out`.
    fn pump(&mut self, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        let mut incoming = mem::take(&mut self.incoming);
        let result = self.pump_over(&mut incoming, out);
        if !incoming.is_empty() {
            self.incoming = incoming;
        }
        result
    }

    /// [`Tls::pump`] over `incoming`, which holds the ciphertext held and
    /// is left with what rustls has not taken yet (the start of a record,
    /// or a handshake message spanning records), at its front.
    fn pump_over(
        &mut self,
        incoming: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        // See the catch below.
        let guarded = cfg!(debug_assertions) && self.close == CloseNotify::Sent;
        let written = out.len();
        let mut io = Buffers {
            received: &mut self.received,
            sendable: &mut self.sendable,
            close: &mut self.close,
            peer_closed: false,
            discard: 0,
            out,
        };
        let side = &mut *self.side;
        let mut pump = || match side {
            Side::Server(conn) => io.pump::<ServerConnectionData>(conn, incoming),
            Side::Client(conn) => io.pump::<ClientConnectionData>(conn, incoming),
        };
        let result = if guarded {
            // rustls asserts, in debug builds only, that it sends no second
            // fatal alert, and counts close_notify as one: a record that
            // fails after ours panics there (rustls issue 959), where a
            // release build fails the connection. The peer's bytes must
            // not panic a session, so the debug build fails it too, and
            // the connection is never processed again (`failed`).
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(pump)) {
                Ok(result) => result,
                Err(payload) => {
                    // Half a record of ours, if it came while writing one.
                    io.out.truncate(written);
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(rustls::Error::General(format!("{RUSTLS_PANICKED}: {what}")))
                }
            }
        } else {
            pump()
        };
        if io.peer_closed && self.peer_end == PeerEnd::Open {
            // Nothing after the peer's close_notify is read.
            self.peer_end = PeerEnd::CloseNotify;
            incoming.clear();
        }
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            incoming.clear();
        }
        result
    }
}

/// The buffers one [`Tls::pump`] works on, apart from the connection.
struct Buffers<'a> {
    received: &'a mut Vec<u8>,
    sendable: &'a mut Vec<u8>,
    close: &'a mut CloseNotify,
    peer_closed: bool,
    /// What the records taken asked to drop beyond the status's discard.
    discard: usize,
    out: &'a mut Vec<u8>,
}

/// One `process_tls_records` for either side.
trait Process<Data> {
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Data>;
}

impl Process<ServerConnectionData> for UnbufferedConnectionCommon<ServerConnectionData> {
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Process<ClientConnectionData> for UnbufferedConnectionCommon<ClientConnectionData> {
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// What one state asks next.
enum Next {
    /// Process again.
    Continue,
    /// rustls waits for the peer, or for more to send.
    Wait,
}

impl Buffers<'_> {
    fn pump<Data>(
        &mut self,
        conn: &mut UnbufferedConnectionCommon<Data>,
        incoming: &mut Vec<u8>,
    ) -> Result<(), rustls::Error>
    where
        UnbufferedConnectionCommon<Data>: Process<Data>,
    {
        // What rustls is done with: dropped from the front once, at the
        // end, and meanwhile not passed again.
        let mut done = 0;
        let result = loop {
            let status = conn.process(&mut incoming[done..]);
            let discard = status.discard;
            let next = match status.state {
                Ok(state) => {
                    let next = self.handle(state);
                    done += mem::take(&mut self.discard);
                    next
                }
                Err(error) => {
                    done += discard;
                    // After our close_notify nothing more is said: rustls
                    // would follow it with a fatal alert.
                    if *self.close != CloseNotify::Sent {
                        self.take_alert(conn, &mut incoming[done..]);
                    }
                    break Err(error);
                }
            };
            done += discard;
            match next {
                Ok(Next::Continue) => {}
                Ok(Next::Wait) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        incoming.drain(..done);
        result
    }

    fn handle<Data>(
        &mut self,
        state: ConnectionState<'_, '_, Data>,
    ) -> Result<Next, rustls::Error> {
        match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    // Always 0 while rustls copies plaintext out; counted
                    // as its contract asks, for when it decrypts in place.
                    self.discard += record.discard;
                    self.received.extend_from_slice(record.payload);
                }
                Ok(Next::Continue)
            }
            // Early data is never enabled (replayable requests must not be
            // served): rustls refuses it before it could get here.
            ConnectionState::ReadEarlyData(_) => Err(rustls::Error::General(
                "early data, which is not enabled".into(),
            )),
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(self.out, |buffer| encode.encode(buffer))?;
                Ok(Next::Continue)
            }
            ConnectionState::TransmitTlsData(mut transmit) => {
                // The bytes are in `out`, which the caller sends in order.
                if let Some(mut traffic) = transmit.may_encrypt_app_data() {
                    self.encrypt(&mut traffic)?;
                }
                transmit.done();
                Ok(Next::Continue)
            }
            ConnectionState::WriteTraffic(mut traffic) => {
                self.encrypt(&mut traffic)?;
                if *self.close == CloseNotify::Owed {
                    encrypt_into(self.out, RECORD_OVERHEAD, |buffer| {
                        traffic.queue_close_notify(buffer)
                    })?;
                    *self.close = CloseNotify::Sent;
                }
                Ok(Next::Wait)
            }
            ConnectionState::PeerClosed => {
                self.peer_closed = true;
                Ok(Next::Continue)
            }
            ConnectionState::BlockedHandshake | ConnectionState::Closed => Ok(Next::Wait),
            // A state a later rustls may add: wait for more input.
            _ => Ok(Next::Wait),
        }
    }

    fn encrypt<Data>(
        &mut self,
        traffic: &mut rustls::unbuffered::WriteTraffic<'_, Data>,
    ) -> Result<(), rustls::Error> {
        if self.sendable.is_empty() {
            return Ok(());
        }
        let plaintext = &self.sendable[..];
        let records = plaintext.len() / MAX_FRAGMENT + 1;
        let room = plaintext.len() + records * RECORD_OVERHEAD;
        encrypt_into(self.out, room, |buffer| traffic.encrypt(plaintext, buffer))?;
        // Released: an idle session holds no output buffer.
        *self.sendable = Vec::new();
        Ok(())
    }

    /// After an error, the alert rustls queued for the peer, if any.
    ///
    /// rustls hands out what it queued before it reads any more input, so
    /// asking only while something is queued never processes the input
    /// that failed a second time.
    fn take_alert<Data>(&mut self, conn: &mut UnbufferedConnectionCommon<Data>, incoming: &mut [u8])
    where
        UnbufferedConnectionCommon<Data>: Process<Data>,
    {
        // Nothing rustls takes of `incoming` here needs dropping: the
        // connection has failed, and its input is dropped whole.
        while conn.wants_write() {
            let encoded = match conn.process(incoming).state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(self.out, |buffer| encode.encode(buffer)).is_ok()
                }
                _ => false,
            };
            if !encoded {
                return;
            }
        }
    }
}

/// Appends what `encode` writes to `out` (a record rustls made).
fn encode_into(
    out: &mut Vec<u8>,
    encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    append(out, 1024, encode, |error| match error {
        EncodeError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    })
}

/// Appends what `encrypt` writes to `out`, in `room` bytes at first.
fn encrypt_into(
    out: &mut Vec<u8>,
    room: usize,
    encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    append(out, room, encrypt, |error| match error {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    })
}

/// Appends what `write` puts in the buffer it is given to `out`, growing
/// the buffer to what rustls says it needs (`needs`) and trying again.
fn append<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), rustls::Error> {
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(error) => {
                out.truncate(start);
                match needs(&error) {
                    Some(needed) if needed > room => room = needed,
                    _ => return Err(rustls::Error::General(error.to_string())),
                }
            }
        }
    }
}
