//! The server's plaintext path past a real handshake: a client with the
//! role "operator" sends arbitrary plaintext. Never panics; every request
//! handed to the application can be answered exactly once; denials,
//! rejections and discards never reach the application.
#![no_main]

mod common;

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mbaps_codec::{ExceptionCode, Response};
use mbaps_session::rustls::ClientConnection;
use mbaps_session::{Server, ServerEvent};

fn pump(client: &mut ClientConnection, server: &mut Server, now: std::time::Instant) -> bool {
    for _ in 0..20 {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        if server.handle_tls(now, &bytes).is_err() {
            return false;
        }
        let mut back = Vec::new();
        server.poll_transmit(&mut back);
        if bytes.is_empty() && back.is_empty() {
            return true;
        }
        if client.read_tls(&mut &back[..]).is_err() || client.process_new_packets().is_err() {
            return false;
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let mut server = Server::new(common::server_config(), now).unwrap();
    let name = mbaps_session::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(common::raw_client_tls(), name).unwrap();
    assert!(pump(&mut client, &mut server, now), "the handshake fails");
    assert!(server.is_authenticated());
    while server.poll_event().is_some() {}
    client.writer().write_all(data).unwrap();
    pump(&mut client, &mut server, now);
    while let Some(event) = server.poll_event() {
        if let ServerEvent::Request { id, pdu, .. } = event {
            let function = pdu.as_bytes()[0];
            assert!(pdu.request().is_ok(), "an undecodable request reached the application");
            let answer = Response::exception(function, ExceptionCode::ServerDeviceFailure);
            if !server.is_closed() {
                server.send_response(now, id, &answer).unwrap();
                assert!(server.send_response(now, id, &answer).is_err(), "answered twice");
            }
        }
    }
});
