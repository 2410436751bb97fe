//! TLS records after a real handshake, cut at any byte across reads and
//! damaged at will: the server's transport (rustls's unbuffered API, with
//! buffers of the session's own) takes a record cut anywhere, and a record
//! that does not decrypt or parse ends the session with a fatal alert the
//! client reads: never a panic, never a second alert.
//!
//! Input: a read size (1-255 bytes), a byte to damage (u16, big endian)
//! and the mask it is XORed with (0: none), then the plaintext the client
//! sends (cut into records by rustls).
#![no_main]

mod common;

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mbaps_codec::ExceptionCode;
use mbaps_session::rustls::{ClientConnection, Error as TlsError};
use mbaps_session::{CloseReason, Server, ServerEvent, SessionError};

/// Hands `bytes` to the server `step` bytes at a time, answering every
/// request it hands over; what it sends back is appended to `back`.
fn feed(server: &mut Server, bytes: &[u8], step: usize, back: &mut Vec<u8>) -> Option<CloseReason> {
    let now = common::now();
    let mut ended = None;
    for chunk in bytes.chunks(step) {
        let mut rest = chunk;
        // A full window takes nothing until requests are answered; they
        // are, below, so the rest is offered again after.
        for _ in 0..64 {
            let taken = server.handle_tls(now, rest);
            rest = &rest[taken..];
            while let Some(event) = server.poll_event() {
                match event {
                    ServerEvent::Request { id, .. } => {
                        let _ = server.send_exception(now, id, ExceptionCode::ServerDeviceFailure);
                    }
                    ServerEvent::Closed(reason) => ended = Some(reason),
                    _ => {}
                }
            }
            server.poll_transmit(back);
            if rest.is_empty() || server.is_closed() {
                break;
            }
        }
        if server.is_closed() {
            break;
        }
    }
    ended
}

fuzz_target!(|data: &[u8]| {
    let [step, at_high, at_low, mask, plaintext @ ..] = data else {
        return;
    };
    let step = usize::from(*step).max(1);
    let at = usize::from(u16::from_be_bytes([*at_high, *at_low]));
    let now = common::now();
    let mut server = Server::new(common::server_config(), now).unwrap();
    let name = mbaps_session::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(common::raw_client_tls(), name).unwrap();

    // The handshake, its flights cut at the same size.
    for _ in 0..32 {
        let mut hello = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut hello).unwrap();
        }
        let mut back = Vec::new();
        feed(&mut server, &hello, step, &mut back);
        if back.is_empty() {
            break;
        }
        client.read_tls(&mut &back[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    assert!(server.is_authenticated(), "the handshake fails");
    assert!(!client.is_handshaking());

    client.writer().write_all(plaintext).unwrap();
    let mut records = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut records).unwrap();
    }
    let damaged = *mask != 0 && at < records.len();
    if damaged {
        records[at] ^= mask;
    }
    let mut back = Vec::new();
    let ended = feed(&mut server, &records, step, &mut back);
    server.poll_transmit(&mut back);

    match ended {
        // The server found a record it could not take: the client must
        // read an alert from what the server sent, after the answers.
        Some(CloseReason::Failed(SessionError::Tls(error))) => {
            assert!(damaged, "undamaged records failed the session: {error}");
            let read = client.read_tls(&mut &back[..]).and_then(|_| {
                client
                    .process_new_packets()
                    .map_err(std::io::Error::other)
            });
            match read {
                Err(error) => {
                    let error = error
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<TlsError>())
                        .cloned();
                    assert!(
                        matches!(error, Some(TlsError::AlertReceived(_))),
                        "the client got no alert but {error:?}"
                    );
                }
                Ok(_) => panic!("the session failed ({error}) and sent no alert"),
            }
        }
        // A framing error or a full window ends the session as the
        // session tests say; undamaged TLS is never the cause.
        Some(_) | None => {}
    }
});
