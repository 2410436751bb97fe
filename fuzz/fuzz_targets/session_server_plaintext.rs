//! The server's request path on arbitrary plaintext, through the plain
//! transport (no handshake per input, so it runs as fast as the client
//! target; `session_server_tls` covers what only TLS reaches). The first
//! byte picks the role (operator, viewer, none) and where reads are cut.
//!
//! Checked against `common::oracle`, which walks the same bytes on its
//! own: every request handed to the application is one the policy allows
//! for its function and the header's unit id (the policy's own decision is
//! the reference); every one it denies is reported with the same denial
//! and answered 0x01; malformed ones get their exception; foreign protocol
//! ids are dropped; each request handed over is answered exactly once; the
//! output is exactly those answers, each once, with the headers echoed.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mbaps_session::Server;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let role_index = usize::from(selector % 3);
    let step = usize::from(selector / 3).max(1);
    let roles = common::roles();
    let role = roles[role_index].as_ref();
    let policy = common::policy();
    let (frames, fatal) = common::oracle::frames(stream, policy, role);

    let now = common::now();
    let mut server = Server::new(common::plain_server_config(role_index), now).unwrap();
    common::oracle::record_every_request(&mut server);
    let (mut seen, mut out) = (common::oracle::Seen::default(), Vec::new());
    'feed: for chunk in stream.chunks(step) {
        let mut rest = chunk;
        let mut idle_rounds = 0;
        while !rest.is_empty() {
            let taken = server.handle_tls(now, rest);
            rest = &rest[taken..];
            common::oracle::check_events(&mut server, now, &frames, &mut seen);
            server.poll_transmit(&mut out);
            if server.is_closed() {
                break 'feed;
            }
            // Everything handed out was answered and sent: the window is free.
            idle_rounds = if taken == 0 { idle_rounds + 1 } else { 0 };
            assert!(
                idle_rounds < 2,
                "the session stopped taking bytes with its window free"
            );
        }
    }
    common::oracle::check_events(&mut server, now, &frames, &mut seen);
    server.poll_transmit(&mut out);
    common::oracle::check_end(&server, &frames, fatal, &seen, &out);
});
