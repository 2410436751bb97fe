//! A server session fed arbitrary bytes from the first byte, cut into
//! reads at arbitrary points: never panics, reports nothing before a
//! handshake, and after a fatal error keeps returning it.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mbaps_session::{Server, ServerEvent};

fuzz_target!(|data: &[u8]| {
    let now = common::now();
    let mut server = Server::new(common::server_config(), now).unwrap();
    let (cuts, bytes) = data.split_at(data.len().min(1));
    let step = usize::from(cuts.first().copied().unwrap_or(0)).max(1);
    let mut fatal = None;
    for chunk in bytes.chunks(step) {
        match server.handle_tls(now, chunk) {
            Ok(_) => assert!(fatal.is_none()),
            Err(err) => {
                if let Some(first) = &fatal {
                    // By their text: rustls's errors from a verifier
                    // (`Other`) never compare equal, even to themselves.
                    assert_eq!(format!("{err:?}"), format!("{first:?}"), "fatal errors are sticky");
                }
                fatal = Some(err);
            }
        }
        while let Some(event) = server.poll_event() {
            assert!(!matches!(event, ServerEvent::Request { .. }), "a request without a handshake");
        }
        let mut out = Vec::new();
        server.poll_transmit(&mut out);
    }
    let _ = server.handle_eof(now);
    let _ = server.handle_timeout(now + std::time::Duration::from_secs(3600));
});
