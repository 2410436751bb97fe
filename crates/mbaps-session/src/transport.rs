//! What carries the Modbus bytes: TLS (rustls), or plain Modbus/TCP for
//! migration and as the baseline in benchmarks.

use std::io::{self, BufRead, ErrorKind, Write};

use rustls::pki_types::CertificateDer;

use crate::event::Handshake;

/// Most bytes the plain transport takes in per step: like one TLS record,
/// so that frames are drained between steps and its buffer stays bounded.
const PLAIN_STEP: usize = 16 * 1024;

pub(crate) enum Transport {
    Tls(Tls),
    Plain(Plain),
}

/// Why input could not be taken.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// TLS failed; rustls has queued the alert it owes.
    Tls(rustls::Error),
    /// rustls's receive buffers are full.
    BufferFull,
}

/// A rustls connection and the plaintext it holds, as its last
/// `process_new_packets` said.
pub(crate) struct Tls {
    conn: Box<rustls::Connection>,
    plaintext: usize,
}

impl Tls {
    pub(crate) fn new(conn: rustls::Connection) -> Tls {
        Tls {
            conn: Box::new(conn),
            plaintext: 0,
        }
    }
}

#[derive(Default)]
pub(crate) struct Plain {
    inbox: Vec<u8>,
    read: usize,
    outbox: Vec<u8>,
    eof: bool,
}

impl Transport {
    pub(crate) fn set_send_limit(&mut self, limit: usize) {
        if let Transport::Tls(tls) = self {
            tls.conn.set_buffer_limit(Some(limit));
        }
    }

    /// Takes one step of input from the front of `input`.
    pub(crate) fn read(&mut self, input: &mut &[u8]) -> Result<(), ReadError> {
        match self {
            Transport::Tls(tls) => {
                match tls.conn.read_tls(input) {
                    // After the peer's close_notify rustls reads nothing
                    // more: what follows it is dropped, not offered again.
                    Ok(0) if !input.is_empty() => *input = &[],
                    Ok(_) => {}
                    // Only when its own buffers are full, which the sides
                    // prevent by taking frames between batches.
                    Err(_) => return Err(ReadError::BufferFull),
                }
                let state = tls.conn.process_new_packets().map_err(ReadError::Tls)?;
                tls.plaintext = state.plaintext_bytes_to_read();
                Ok(())
            }
            Transport::Plain(plain) => {
                plain.inbox.drain(..plain.read);
                plain.read = 0;
                let n = input.len().min(PLAIN_STEP);
                plain.inbox.extend_from_slice(&input[..n]);
                *input = &input[n..];
                Ok(())
            }
        }
    }

    /// The peer's stream ended.
    pub(crate) fn read_eof(&mut self) -> Result<(), rustls::Error> {
        match self {
            Transport::Tls(tls) => {
                // A zero-byte read tells rustls the transport is at EOF.
                let _ = tls.conn.read_tls(&mut &[][..]);
                let state = tls.conn.process_new_packets()?;
                tls.plaintext = state.plaintext_bytes_to_read();
                Ok(())
            }
            Transport::Plain(plain) => {
                plain.eof = true;
                Ok(())
            }
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.conn.is_handshaking(),
            Transport::Plain(_) => false,
        }
    }

    /// Whether received plaintext waits to be read.
    pub(crate) fn plaintext_waiting(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.plaintext > 0,
            Transport::Plain(plain) => plain.read < plain.inbox.len(),
        }
    }

    /// The TLS parameters, once the handshake is done; `None` for plain.
    pub(crate) fn handshake(&self) -> Option<Handshake> {
        match self {
            Transport::Tls(tls) => Some(Handshake {
                version: tls.conn.protocol_version()?,
                cipher_suite: tls.conn.negotiated_cipher_suite()?.suite(),
                resumed: tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            }),
            Transport::Plain(_) => None,
        }
    }

    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Transport::Tls(tls) => tls.conn.peer_certificates(),
            Transport::Plain(_) => None,
        }
    }

    /// The next chunk of plaintext received (for TLS, what one record
    /// carried), borrowed: empty at an orderly end (close_notify; EOF for
    /// plain), `WouldBlock` when nothing is there yet, `UnexpectedEof` for
    /// a TLS stream cut without close_notify. Take bytes of it with
    /// [`Transport::consume_plaintext`].
    pub(crate) fn peek_plaintext(&mut self) -> io::Result<&[u8]> {
        match self {
            Transport::Tls(tls) => tls.conn.reader().into_first_chunk(),
            Transport::Plain(plain) => {
                let available = &plain.inbox[plain.read..];
                if available.is_empty() && !plain.eof {
                    return Err(ErrorKind::WouldBlock.into());
                }
                Ok(available)
            }
        }
    }

    /// Drops the first `n` bytes of [`Transport::peek_plaintext`]'s chunk.
    pub(crate) fn consume_plaintext(&mut self, n: usize) {
        match self {
            Transport::Tls(tls) => {
                tls.conn.reader().consume(n);
                tls.plaintext = tls.plaintext.saturating_sub(n);
            }
            Transport::Plain(plain) => plain.read += n,
        }
    }

    /// Queues plaintext to send; returns how much was taken (less than all
    /// when the send buffer is at `limit`).
    pub(crate) fn write_plaintext(&mut self, bytes: &[u8], limit: usize) -> usize {
        match self {
            Transport::Tls(tls) => tls.conn.writer().write(bytes).unwrap_or(0),
            Transport::Plain(plain) => {
                if plain.outbox.len() + bytes.len() > limit {
                    return 0;
                }
                plain.outbox.extend_from_slice(bytes);
                bytes.len()
            }
        }
    }

    /// Moves everything waiting to go out into `out`.
    pub(crate) fn write_out(&mut self, out: &mut Vec<u8>) {
        match self {
            Transport::Tls(tls) => {
                while tls.conn.wants_write() {
                    match tls.conn.write_tls(out) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            Transport::Plain(plain) => {
                out.extend_from_slice(&plain.outbox);
                plain.outbox.clear();
            }
        }
    }

    /// Whether bytes wait to go out.
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.conn.wants_write(),
            Transport::Plain(plain) => !plain.outbox.is_empty(),
        }
    }

    /// Sends close_notify (TLS); plain Modbus/TCP closes by closing the socket.
    pub(crate) fn send_close(&mut self) {
        if let Transport::Tls(tls) = self {
            tls.conn.send_close_notify();
        }
    }

    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
}
