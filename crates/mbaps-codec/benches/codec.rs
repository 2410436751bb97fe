//! Decode and encode throughput on a realistic mix of frames, beside two
//! physical references: a plain bulk `memcpy` of the same bytes, and a copy
//! of each ADU out of the stream, one at a time (what any consumer that
//! hands out frames must at least do: read each header, move each frame).
//! `cargo xtask bench` prints the ratios.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/common/mix.rs"]
mod mix;

fn codec_mix(c: &mut Criterion) {
    let traffic = mix::Mix::new(8);
    let mut out = vec![0u8; traffic.bytes()];
    let mut group = c.benchmark_group("codec_mix");
    group.throughput(Throughput::Bytes(traffic.bytes() as u64));
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            let (req, resp) = out.split_at_mut(traffic.requests.len());
            req.copy_from_slice(black_box(&traffic.requests));
            resp.copy_from_slice(black_box(&traffic.responses));
            black_box(&mut out);
        })
    });
    group.bench_function("memcpy_per_frame", |b| {
        b.iter(|| {
            let mut frame = [0u8; 260];
            let mut copied = 0usize;
            for stream in [&traffic.requests, &traffic.responses] {
                let mut rest = &black_box(stream)[..];
                while rest.len() >= 6 {
                    let len = 6 + usize::from(u16::from_be_bytes([rest[4], rest[5]]));
                    frame[..len].copy_from_slice(&rest[..len]);
                    black_box(&mut frame);
                    copied += len;
                    rest = &rest[len..];
                }
            }
            black_box(copied)
        })
    });
    group.bench_function("decode_frames_only", |b| {
        b.iter(|| {
            let mut frames = 0u32;
            for stream in [&traffic.requests, &traffic.responses] {
                let mut rest = &black_box(stream)[..];
                while let Ok(mbaps_codec::Decoded::Frame { consumed, .. }) =
                    mbaps_codec::decode(rest)
                {
                    frames += 1;
                    rest = &rest[consumed..];
                }
            }
            black_box(frames)
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(mix::decode_all(black_box(&traffic))))
    });
    group.bench_function("encode", |b| {
        // Encode only: the typed values are decoded once, outside the loop.
        let requests = typed(&traffic.requests, true);
        let responses = typed(&traffic.responses, false);
        b.iter(|| {
            let mut written = 0;
            for (header, request) in &requests {
                let Pdu::Request(request) = request else {
                    unreachable!()
                };
                written +=
                    mbaps_codec::encode_request(*header, request, &mut out[written..]).unwrap();
            }
            for (header, response) in &responses {
                let Pdu::Response(response) = response else {
                    unreachable!()
                };
                written +=
                    mbaps_codec::encode_response(*header, response, &mut out[written..]).unwrap();
            }
            black_box(written)
        })
    });
    group.finish();
}

enum Pdu<'a> {
    Request(mbaps_codec::Request<'a>),
    Response(mbaps_codec::Response<'a>),
}

fn typed(stream: &[u8], requests: bool) -> Vec<(mbaps_codec::MbapHeader, Pdu<'_>)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) = mbaps_codec::decode(rest) {
        let pdu = if requests {
            Pdu::Request(adu.request().unwrap())
        } else {
            Pdu::Response(adu.response().unwrap())
        };
        out.push((adu.header, pdu));
        rest = &rest[consumed..];
    }
    out
}

criterion_group!(benches, codec_mix);
criterion_main!(benches);
