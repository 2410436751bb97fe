//! Request/response round trips per second on an in-memory pair: TLS 1.3
//! and TLS 1.2 beside plain Modbus/TCP through the same state machines, with
//! 1 and 16 requests in flight, the server answering from events; and
//! plain and TLS 1.3 with a `Handler` answering at once (`_handler`).
//! `cargo xtask bench` prints the ratios.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mbaps_session::TlsVersions;

#[path = "../tests/common/mod.rs"]
mod common;

use common::round_trip::{Answering, RoundTrips};

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("session");
    for in_flight in [1usize, 16] {
        group.throughput(Throughput::Elements(in_flight as u64));
        for (name, mut pair) in [
            ("plain", RoundTrips::plain()),
            ("tls13", RoundTrips::tls(TlsVersions::Tls13Only)),
            ("tls12", RoundTrips::tls(TlsVersions::Tls12Only)),
        ] {
            group.bench_function(format!("{name}_{in_flight}"), |b| {
                b.iter(|| pair.run(1, in_flight))
            });
        }
        for (name, mut pair) in [
            ("plain", RoundTrips::plain()),
            ("tls13", RoundTrips::tls(TlsVersions::Tls13Only)),
        ] {
            group.bench_function(format!("{name}_{in_flight}_handler"), |b| {
                b.iter(|| pair.run_answering(1, in_flight, Answering::Handler))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
