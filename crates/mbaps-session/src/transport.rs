//! What carries the Modbus bytes: TLS (rustls), or plain Modbus/TCP for
//! migration and as the baseline in benchmarks.

use std::io::{self, ErrorKind, Read, Write};

use rustls::pki_types::CertificateDer;

use crate::event::Handshake;

/// Most bytes the plain transport takes in per step: like one TLS record,
/// so that frames are drained between steps and its buffer stays bounded.
const PLAIN_STEP: usize = 16 * 1024;

pub(crate) enum Transport {
    Tls(Box<rustls::Connection>),
    Plain(Plain),
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
        if let Transport::Tls(conn) = self {
            conn.set_buffer_limit(Some(limit));
        }
    }

    /// Takes one step of input from the front of `input`.
    pub(crate) fn read(&mut self, input: &mut &[u8]) -> Result<(), rustls::Error> {
        match self {
            Transport::Tls(conn) => {
                match conn.read_tls(input) {
                    // After the peer's close_notify rustls reads nothing
                    // more: what follows it is dropped, not offered again.
                    Ok(0) if !input.is_empty() => *input = &[],
                    Ok(_) => {}
                    Err(err) => {
                        return Err(rustls::Error::General(format!(
                            "reading TLS records: {err}"
                        )));
                    }
                }
                conn.process_new_packets().map(|_| ())
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
            Transport::Tls(conn) => {
                // A zero-byte read tells rustls the transport is at EOF.
                let _ = conn.read_tls(&mut &[][..]);
                conn.process_new_packets().map(|_| ())
            }
            Transport::Plain(plain) => {
                plain.eof = true;
                Ok(())
            }
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        match self {
            Transport::Tls(conn) => conn.is_handshaking(),
            Transport::Plain(_) => false,
        }
    }

    /// The TLS parameters, once the handshake is done; `None` for plain.
    pub(crate) fn handshake(&self) -> Option<Handshake> {
        match self {
            Transport::Tls(conn) => Some(Handshake {
                version: conn.protocol_version()?,
                cipher_suite: conn.negotiated_cipher_suite()?.suite(),
                resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            }),
            Transport::Plain(_) => None,
        }
    }

    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Transport::Tls(conn) => conn.peer_certificates(),
            Transport::Plain(_) => None,
        }
    }

    /// Plaintext received: `Ok(0)` at an orderly end (close_notify; EOF for
    /// plain), `WouldBlock` when nothing is there yet, `UnexpectedEof` for
    /// a TLS stream cut without close_notify.
    pub(crate) fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tls(conn) => conn.reader().read(buf),
            Transport::Plain(plain) => {
                let available = &plain.inbox[plain.read..];
                if available.is_empty() {
                    return if plain.eof {
                        Ok(0)
                    } else {
                        Err(ErrorKind::WouldBlock.into())
                    };
                }
                let n = available.len().min(buf.len());
                buf[..n].copy_from_slice(&available[..n]);
                plain.read += n;
                Ok(n)
            }
        }
    }

    /// Queues plaintext to send; returns how much was taken (less than all
    /// when the send buffer is at `limit`).
    pub(crate) fn write_plaintext(&mut self, bytes: &[u8], limit: usize) -> usize {
        match self {
            Transport::Tls(conn) => conn.writer().write(bytes).unwrap_or(0),
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
            Transport::Tls(conn) => {
                while conn.wants_write() {
                    match conn.write_tls(out) {
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

    /// Sends close_notify (TLS); plain Modbus/TCP closes by closing the socket.
    pub(crate) fn send_close(&mut self) {
        if let Transport::Tls(conn) = self {
            conn.send_close_notify();
        }
    }

    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
}
