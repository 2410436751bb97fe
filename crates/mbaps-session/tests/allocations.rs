//! Heap allocations per request/response round trip in steady state,
//! counted by dhat: none on the plain path (codec and session), and the
//! figure for TLS (rustls's record buffers) printed for the record.

mod common;

use common::round_trip::{Answering, RoundTrips};
use mbaps_session::TlsVersions;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn allocations_per_round_trip(
    mut loop_: RoundTrips,
    in_flight: usize,
    answering: Answering,
) -> f64 {
    // Warm up: buffers reach their steady-state capacity.
    assert_eq!(
        loop_.run_answering(50, in_flight, answering),
        50 * in_flight
    );
    // dhat counts every thread's allocations: 1 run in 8 saw one to four
    // stray blocks in a window (never with --nocapture, never in two
    // windows running). The fewest of three windows is the path's own; a
    // path that allocates does so in every window.
    let batches = 200;
    (0..3)
        .map(|_| {
            let before = dhat::HeapStats::get().total_blocks;
            assert_eq!(
                loop_.run_answering(batches, in_flight, answering),
                batches * in_flight
            );
            let after = dhat::HeapStats::get().total_blocks;
            (after - before) as f64 / (batches * in_flight) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn plain_round_trips_allocate_nothing_and_tls_figures_are_reported() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for answering in [Answering::Events, Answering::Handler] {
        for in_flight in [1, 16] {
            let count = |pair| allocations_per_round_trip(pair, in_flight, answering);
            let plain = count(RoundTrips::plain());
            let tls13 = count(RoundTrips::tls(TlsVersions::Tls13Only));
            let tls12 = count(RoundTrips::tls(TlsVersions::Tls12Only));
            eprintln!(
                "allocations per round trip, {answering:?}, {in_flight} in flight: plain {plain:.2}, TLS 1.3 {tls13:.2}, TLS 1.2 {tls12:.2}"
            );
            assert_eq!(
                plain, 0.0,
                "the codec and session path allocated ({answering:?})"
            );
        }
    }
}
