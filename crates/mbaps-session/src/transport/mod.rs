//! What carries the Modbus bytes: TLS (rustls), or plain Modbus/TCP for
//! migration and as the baseline in benchmarks.

use std::io::{self, ErrorKind};

use rustls::pki_types::CertificateDer;

use crate::event::Handshake;

mod tls;

use tls::PeerEnd;
pub(crate) use tls::Tls;

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

#[derive(Default)]
pub(crate) struct Plain {
    inbox: Vec<u8>,
    read: usize,
    outbox: Vec<u8>,
    eof: bool,
}

impl Transport {
    /// Takes one step of input from the front of `input`.
    pub(crate) fn read(&mut self, input: &mut &[u8]) -> Result<(), ReadError> {
        match self {
            Transport::Tls(tls) => tls.read(input),
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
                tls.read_eof();
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
            Transport::Tls(tls) => tls.is_handshaking(),
            Transport::Plain(_) => false,
        }
    }

    /// Whether received plaintext waits to be read.
    pub(crate) fn plaintext_waiting(&self) -> bool {
        match self {
            Transport::Tls(tls) => !tls.plaintext().is_empty(),
            Transport::Plain(plain) => plain.read < plain.inbox.len(),
        }
    }

    /// The TLS parameters, once the handshake is done; `None` for plain.
    pub(crate) fn handshake(&self) -> Option<Handshake> {
        match self {
            Transport::Tls(tls) => Some(Handshake {
                version: tls.protocol_version()?,
                cipher_suite: tls.cipher_suite()?,
                resumed: tls.resumed(),
            }),
            Transport::Plain(_) => None,
        }
    }

    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Transport::Tls(tls) => tls.peer_certificates(),
            Transport::Plain(_) => None,
        }
    }

    /// The plaintext received and not taken yet, borrowed: empty at an
    /// orderly end (close_notify; EOF for
    /// plain), `WouldBlock` when nothing is there yet, `UnexpectedEof` for
    /// a TLS stream cut without close_notify. Take bytes of it with
    /// [`Transport::consume_plaintext`].
    pub(crate) fn peek_plaintext(&mut self) -> io::Result<&[u8]> {
        match self {
            Transport::Tls(tls) => {
                let available = tls.plaintext();
                match tls.peer_end() {
                    _ if !available.is_empty() => Ok(available),
                    PeerEnd::Open => Err(ErrorKind::WouldBlock.into()),
                    PeerEnd::CloseNotify => Ok(available),
                    PeerEnd::Cut => Err(ErrorKind::UnexpectedEof.into()),
                }
            }
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
            Transport::Tls(tls) => tls.consume_plaintext(n),
            Transport::Plain(plain) => plain.read += n,
        }
    }

    /// Queues the plaintext in `bytes` to send, taking all of it (`bytes`
    /// is left empty); `false`, and nothing taken, when that would queue
    /// more than `limit`.
    ///
    /// TLS takes the buffer itself when nothing else is queued (no copy)
    /// and releases it once encrypted, so that an idle TLS session holds no
    /// output buffer; plain Modbus/TCP copies, and both keep their
    /// capacity, so that its round trips allocate nothing.
    pub(crate) fn write_plaintext(&mut self, bytes: &mut Vec<u8>, limit: usize) -> bool {
        let queue = match self {
            Transport::Tls(tls) => tls.sendable(),
            Transport::Plain(plain) => &mut plain.outbox,
        };
        if queue.len() + bytes.len() > limit {
            return false;
        }
        match self {
            Transport::Tls(tls) => {
                let sendable = tls.sendable();
                if sendable.is_empty() {
                    *sendable = std::mem::take(bytes);
                } else {
                    sendable.append(bytes);
                }
            }
            Transport::Plain(plain) => {
                plain.outbox.extend_from_slice(bytes);
                bytes.clear();
            }
        }
        true
    }

    /// Moves everything waiting to go out into `out`; fails when TLS
    /// cannot encrypt it (the alert owed is in `out` then).
    pub(crate) fn write_out(&mut self, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        match self {
            Transport::Tls(tls) => tls.write_out(out),
            Transport::Plain(plain) => {
                out.extend_from_slice(&plain.outbox);
                plain.outbox.clear();
                Ok(())
            }
        }
    }

    /// Whether bytes wait to go out.
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.wants_write(),
            Transport::Plain(plain) => !plain.outbox.is_empty(),
        }
    }

    /// Sends close_notify (TLS); plain Modbus/TCP closes by closing the socket.
    pub(crate) fn send_close(&mut self) {
        if let Transport::Tls(tls) = self {
            tls.send_close();
        }
    }

    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
}
