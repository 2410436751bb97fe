//! The server's request path past a real TLS handshake: a client with the
//! role "operator" sends arbitrary plaintext, cut into records by rustls.
//! Slower than `session_server_plaintext` (a handshake per input); it
//! covers what only TLS reaches: records carrying parts of frames, output
//! encrypted, the window pushing back through TLS. Checked against
//! `common::oracle` as the plain target is, on the decrypted output.
#![no_main]

mod common;

use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;
use mbaps_session::Server;
use mbaps_session::rustls::ClientConnection;

/// Moves bytes both ways until neither side has anything to say, checking
/// the server's events on the way; `false` if either side failed.
fn pump(
    client: &mut ClientConnection,
    server: &mut Server,
    now: std::time::Instant,
    check: &mut impl FnMut(&mut Server),
) -> bool {
    let mut pending = Vec::new();
    for _ in 0..10_000 {
        while client.wants_write() {
            client.write_tls(&mut pending).unwrap();
        }
        let taken = server.handle_tls(now, &pending);
        pending.drain(..taken);
        // What the session reported before it failed still counts.
        check(server);
        if server.is_closed() {
            return false;
        }
        let mut back = Vec::new();
        server.poll_transmit(&mut back);
        if back.is_empty() && (pending.is_empty() || taken == 0) {
            return pending.is_empty();
        }
        if client.read_tls(&mut &back[..]).is_err() || client.process_new_packets().is_err() {
            return false;
        }
    }
    panic!("the pair never went quiet");
}

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let mut server = Server::new(common::server_config(), now).unwrap();
    common::oracle::record_every_request(&mut server);
    let name = mbaps_session::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(common::raw_client_tls(), name).unwrap();
    assert!(
        pump(&mut client, &mut server, now, &mut |_| {}),
        "the handshake fails"
    );
    assert!(server.is_authenticated());
    while server.poll_event().is_some() {}

    let roles = common::roles();
    let policy = common::policy();
    let (frames, fatal) = common::oracle::frames(data, policy, roles[0].as_ref());
    let mut seen = common::oracle::Seen::default();
    client.writer().write_all(data).unwrap();
    pump(&mut client, &mut server, now, &mut |server| {
        common::oracle::check_events(server, now, &frames, &mut seen)
    });
    let mut out = Vec::new();
    let _ = client.reader().read_to_end(&mut out);
    common::oracle::check_end(&server, &frames, fatal, &seen, &out);
});
