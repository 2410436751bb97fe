//! A server session fed arbitrary bytes from the first byte, cut into
//! reads at arbitrary points: never panics, hands out no request before a
//! handshake, reports its end once and as its last event, and once over
//! takes no more bytes and says nothing more.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mbaps_session::{Server, ServerEvent};

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let mut server = Server::new(common::server_config(), now).unwrap();
    let (cuts, bytes) = data.split_at(data.len().min(1));
    let step = usize::from(cuts.first().copied().unwrap_or(0)).max(1);
    let mut ended = false;
    let drain = |server: &mut Server, ended: &mut bool| {
        while let Some(event) = server.poll_event() {
            assert!(!*ended, "an event after the end: {event:?}");
            match event {
                ServerEvent::Request { .. } => panic!("a request without a handshake"),
                ServerEvent::Closed(_) => *ended = true,
                _ => {}
            }
        }
        assert_eq!(
            *ended,
            server.is_closed(),
            "the end is reported when the session is over"
        );
        let mut out = Vec::new();
        server.poll_transmit(&mut out);
    };
    for chunk in bytes.chunks(step) {
        let taken = server.handle_tls(now, chunk);
        if ended {
            assert_eq!(taken, 0, "bytes taken after the end");
        } else {
            // Without a handshake no request can hold the window.
            assert!(
                taken == chunk.len() || server.is_closed(),
                "{taken} of {} taken",
                chunk.len()
            );
        }
        drain(&mut server, &mut ended);
        if ended {
            let mut out = Vec::new();
            assert_eq!(
                server.poll_transmit(&mut out),
                0,
                "output after the end was drained"
            );
        }
    }
    server.handle_eof(now);
    server.handle_timeout(now + std::time::Duration::from_secs(3600));
    drain(&mut server, &mut ended);
    assert!(ended, "the stream ended, so did the session");
});
