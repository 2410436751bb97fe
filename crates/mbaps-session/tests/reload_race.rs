//! A reload that revokes a client cannot be raced: a handshake under way
//! when the server is reconfigured is judged by the configuration in
//! force when it completes, whether it was held at its ClientHello, after
//! the server's flight, or resumes a session made before the reload.

mod common;

use common::*;
use mbaps_codec::Request;
use mbaps_session::{
    ClientEvent, CloseReason, ServerConfig, ServerEvent, SessionError, TlsVersions, parse_crls,
};

const VERSIONS: [TlsVersions; 2] = [TlsVersions::Tls13Only, TlsVersions::Tls12Only];

/// The server without CRLs: the "revoked" client is let in.
fn before(versions: TlsVersions) -> ServerConfig {
    server_builder().versions(versions).build().unwrap()
}

/// The server with the CRLs that revoke it.
fn after(versions: TlsVersions) -> ServerConfig {
    let root = parse_crls(pki().root_crl_pem.as_bytes()).unwrap();
    server_builder()
        .versions(versions)
        .crls([crls(), root].concat())
        .build()
        .unwrap()
}

/// Where the client's handshake is held while the server reloads.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Connected, its ClientHello not yet read by the server.
    BeforeClientHello,
    /// The ClientHello answered; the server's flight not yet read.
    AtClientHello,
    /// The server's flight read; the client's answer (its certificate,
    /// Finished) not yet sent.
    AfterServerFlight,
}

/// Moves the client's output to the server.
fn to_server(pair: &mut Pair) {
    let mut bytes = Vec::new();
    pair.client.poll_transmit(&mut bytes);
    let taken = pair.server.handle_tls(pair.now, &bytes);
    assert_eq!(taken, bytes.len());
}

/// Moves the server's output to the client.
fn to_client(pair: &mut Pair) {
    let mut bytes = Vec::new();
    pair.server.poll_transmit(&mut bytes);
    pair.client.handle_tls(pair.now, &bytes);
}

/// Runs the handshake of `client` with a server that is reconfigured to
/// `reload` where `hold` says; returns the pair once it is idle.
fn held(server: &ServerConfig, client: &str, hold: Hold, reload: &ServerConfig) -> Pair {
    let client = client_builder(client).build().unwrap();
    let mut pair = Pair::new(server, &client);
    match hold {
        Hold::BeforeClientHello => {}
        Hold::AtClientHello => to_server(&mut pair),
        Hold::AfterServerFlight => {
            to_server(&mut pair);
            to_client(&mut pair);
        }
    }
    pair.server.reconfigure(pair.now, reload);
    let _ = pair.drive_to_failure();
    pair
}

/// The server refused the client before serving anything: no
/// authentication, closed as no longer accepted (revoked); a request
/// gets no answer.
fn assert_refused(pair: &mut Pair, what: &str) {
    assert!(
        !pair
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Authenticated { .. })),
        "{what}: authenticated: {:?}",
        pair.server_events
    );
    match pair.server_events.last() {
        Some(ServerEvent::Closed(CloseReason::Failed(
            SessionError::NoLongerAccepted(_) | SessionError::Tls(_),
        ))) => {}
        other => panic!("{what}: the server's end is {other:?}"),
    }
    assert!(pair.server.is_closed(), "{what}");
    // Whatever the client believes, nothing it sends is served.
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    let _ = pair.client.send_request(pair.now, 1, &read);
    let _ = pair.drive();
    assert!(
        !pair
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Response { .. })),
        "{what}: {:?}",
        pair.client_events
    );
}

#[test]
fn a_handshake_held_across_a_reload_that_revokes_its_client_is_refused() {
    for versions in VERSIONS {
        for hold in [
            Hold::BeforeClientHello,
            Hold::AtClientHello,
            Hold::AfterServerFlight,
        ] {
            let what = format!("{versions:?}, held {hold:?}");
            let mut pair = held(&before(versions), "revoked", hold, &after(versions));
            assert_refused(&mut pair, &what);
        }
    }
}

#[test]
fn a_handshake_held_across_a_reload_that_still_accepts_its_client_completes() {
    for versions in VERSIONS {
        for hold in [Hold::AtClientHello, Hold::AfterServerFlight] {
            let mut pair = held(&before(versions), "operator", hold, &after(versions));
            assert!(
                pair.server.is_authenticated(),
                "{versions:?} {hold:?}: {:?}",
                pair.server_events
            );
            let read = Request::ReadHoldingRegisters {
                address: 0,
                quantity: 1,
            };
            pair.client.send_request(pair.now, 1, &read).unwrap();
            pair.drive().unwrap();
            assert!(
                pair.server_events
                    .iter()
                    .any(|e| matches!(e, ServerEvent::Request { .. })),
                "{versions:?} {hold:?}"
            );
        }
    }
}

#[test]
fn a_client_resuming_a_session_made_before_a_reload_that_revokes_it_is_refused() {
    for versions in VERSIONS {
        let server = before(versions);
        let client = client_builder("revoked").build().unwrap();
        // The full handshake, before the reload: in, and its session kept.
        let mut first = Pair::new(&server, &client);
        first.drive().unwrap();
        assert!(first.server.is_authenticated());
        // The next connection resumes it; the reload comes meanwhile.
        let mut second = Pair::new(&server, &client);
        to_server(&mut second);
        second.server.reconfigure(second.now, &after(versions));
        let _ = second.drive_to_failure();
        let resumed = second
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected(Some(handshake)) if handshake.resumed));
        assert!(
            resumed,
            "{versions:?}: not a resumption: {:?}",
            second.client_events
        );
        assert_refused(&mut second, &format!("{versions:?}, resumed"));
        // And the refused session is forgotten: the next attempt is a full
        // handshake, which the new configuration refuses with an alert.
        let mut third = Pair::new(&after(versions), &client);
        let (server_error, _) = third.drive_to_failure();
        assert!(
            matches!(server_error, Some(SessionError::Tls(_))),
            "{versions:?}: {server_error:?}"
        );
    }
}

#[test]
fn a_resumed_session_of_a_client_still_accepted_is_served() {
    for versions in VERSIONS {
        let server = before(versions);
        let client = client_builder("operator").build().unwrap();
        Pair::new(&server, &client).drive().unwrap();
        let mut second = Pair::new(&server, &client);
        to_server(&mut second);
        second.server.reconfigure(second.now, &after(versions));
        second.drive().unwrap();
        assert!(
            second.server_events.iter().any(|e| matches!(
                e,
                ServerEvent::Authenticated { handshake: Some(h), .. } if h.resumed
            )),
            "{versions:?}: {:?}",
            second.server_events
        );
    }
}
