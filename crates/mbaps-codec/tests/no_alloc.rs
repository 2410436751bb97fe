//! The codec never allocates: decoding and re-encoding a realistic mix of
//! frames is counted by dhat's heap profiler and must make no allocation.
//! (The crate is `no_std` without `alloc`, so this also holds by
//! construction; the test keeps it so if that ever changes.)

#[path = "common/mix.rs"]
mod mix;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn decoding_and_encoding_the_mix_allocates_nothing() {
    let traffic = mix::Mix::new(4);
    let mut out = vec![0u8; traffic.bytes()];
    let profiler = dhat::Profiler::builder().testing().build();
    let checksum = mix::decode_all(&traffic);
    let written = mix::reencode_all(&traffic, &mut out);
    let stats = dhat::HeapStats::get();
    drop(profiler);
    assert_ne!(checksum, 0);
    assert_eq!(written, traffic.bytes());
    assert_eq!(&out[..traffic.requests.len()], &traffic.requests[..]);
    assert_eq!(&out[traffic.requests.len()..], &traffic.responses[..]);
    assert_eq!(
        stats.total_blocks, 0,
        "allocations during decode+encode: {stats:?}"
    );
}
