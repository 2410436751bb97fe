//! Heap allocations per request/response round trip in steady state,
//! counted by dhat: none on the plain path (codec and session), and the
//! figure for TLS (rustls's record buffers) printed for the record.

mod common;

use common::round_trip::RoundTrips;
use mbaps_session::TlsVersions;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn allocations_per_round_trip(mut loop_: RoundTrips, in_flight: usize) -> f64 {
    // Warm up: buffers reach their steady-state capacity.
    assert_eq!(loop_.run(50, in_flight), 50 * in_flight);
    let before = dhat::HeapStats::get().total_blocks;
    let batches = 200;
    assert_eq!(loop_.run(batches, in_flight), batches * in_flight);
    let after = dhat::HeapStats::get().total_blocks;
    (after - before) as f64 / (batches * in_flight) as f64
}

#[test]
fn plain_round_trips_allocate_nothing_and_tls_figures_are_reported() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for in_flight in [1, 16] {
        let plain = allocations_per_round_trip(RoundTrips::plain(), in_flight);
        let tls13 = allocations_per_round_trip(RoundTrips::tls(TlsVersions::Tls13Only), in_flight);
        let tls12 = allocations_per_round_trip(RoundTrips::tls(TlsVersions::Tls12Only), in_flight);
        eprintln!(
            "allocations per round trip, {in_flight} in flight: plain {plain:.2}, TLS 1.3 {tls13:.2}, TLS 1.2 {tls12:.2}"
        );
        assert_eq!(plain, 0.0, "the codec and session path allocated");
    }
}
