//! What an idle TLS session keeps on the heap, counted by dhat: the
//! session's own buffers are released once empty (rustls's unbuffered API
//! leaves them to us), where rustls's buffered connection kept a 4 KiB
//! receive buffer for the session's life.

mod common;

use common::*;
use mbaps_codec::{Registers, Request, Response};
use mbaps_session::{ServerEvent, TlsVersions};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const READ: Request<'static> = Request::ReadHoldingRegisters {
    address: 0,
    quantity: 10,
};

/// Heap bytes the sessions of a pair hold once idle after `round_trips`
/// reads: (server, client), each measured as what dropping it frees.
fn held_when_idle(versions: TlsVersions, round_trips: usize) -> (u64, u64) {
    let server = server_builder().versions(versions).build().unwrap();
    let client = client_builder("operator").build().unwrap();
    let mut pair = Pair::new(&server, &client);
    pair.drive().unwrap();
    for _ in 0..round_trips {
        pair.client.send_request(pair.now, 1, &READ).unwrap();
        pair.drive().unwrap();
        let ids: Vec<_> = pair
            .server_events
            .drain(..)
            .filter_map(|e| match e {
                ServerEvent::Request { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1);
        let values: Vec<u16> = (0..10).collect();
        let response = Response::ReadHoldingRegisters {
            values: Registers::from_values(&values),
        };
        pair.server
            .send_response(pair.now, ids[0], &response)
            .unwrap();
        pair.drive().unwrap();
    }
    pair.server_events = Vec::new();
    pair.client_events = Vec::new();
    pair.server_inbox = Vec::new();
    let Pair { server, client, .. } = pair;
    let before = dhat::HeapStats::get().curr_bytes;
    drop(server);
    let without_server = dhat::HeapStats::get().curr_bytes;
    drop(client);
    let without_client = dhat::HeapStats::get().curr_bytes;
    (
        (before - without_server) as u64,
        (without_server - without_client) as u64,
    )
}

#[test]
fn an_idle_tls_session_keeps_no_buffer_of_its_own() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let (server_once, client_once) = held_when_idle(versions, 1);
        let (server_many, client_many) = held_when_idle(versions, 20);
        eprintln!(
            "{versions:?}: an idle server session holds {server_once} bytes after 1 read, \
             {server_many} after 20; a client session {client_once} and {client_many}"
        );
        // rustls's state (the connection, the record keys, the peer's
        // certificate chain) and the session's are 6.3-6.9 KiB; with the
        // buffered connection's 4 KiB receive buffer they were 10.6-11.2.
        for held in [server_once, server_many, client_once, client_many] {
            assert!(
                held < 8 * 1024,
                "an idle session holds {held} bytes ({versions:?})"
            );
        }
        // Nothing accumulates with traffic.
        assert!(
            server_many <= server_once + 64,
            "{server_many} > {server_once}"
        );
        assert!(
            client_many <= client_once + 64,
            "{client_many} > {client_once}"
        );
    }
}
