//! The RTU stream decoder on arbitrary bytes, as requests and as responses:
//! never panics, never asks for more than one frame, never accepts a frame
//! whose CRC is wrong, and every frame it accepts (and every PDU inside it
//! that decodes) encodes back to the same bytes. After an error it hunts
//! one byte further, as a reader of a noisy line does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_codec::rtu::{
    MAX_RTU_FRAME_LEN, RtuDecoded, RtuFrameKind, crc16, decode_rtu, encode_rtu_request,
    encode_rtu_response,
};

fuzz_target!(|data: &[u8]| {
    let (kind, stream) = match data.split_first() {
        Some((selector, rest)) if selector & 1 == 0 => (RtuFrameKind::Request, rest),
        Some((_, rest)) => (RtuFrameKind::Response, rest),
        None => return,
    };
    let mut rest = stream;
    let mut out = [0u8; MAX_RTU_FRAME_LEN];
    while !rest.is_empty() {
        match decode_rtu(rest, kind) {
            Ok(RtuDecoded::Frame { frame, consumed }) => {
                assert!(consumed <= rest.len() && consumed <= MAX_RTU_FRAME_LEN);
                assert_eq!(consumed, frame.wire_len());
                let (body, crc) = rest[..consumed].split_at(consumed - 2);
                assert_eq!(crc16(body).to_le_bytes(), crc, "a frame with a bad CRC");
                let n = frame.encode(&mut out).expect("a decoded frame encodes");
                assert_eq!(&out[..n], &rest[..consumed], "frame re-encode differs");
                if let Ok(request) = frame.request() {
                    let n = encode_rtu_request(frame.unit_id, &request, &mut out)
                        .expect("a decoded request encodes");
                    assert_eq!(&out[..n], &rest[..consumed], "request re-encode differs");
                }
                if let Ok(response) = frame.response() {
                    let n = encode_rtu_response(frame.unit_id, &response, &mut out)
                        .expect("a decoded response encodes");
                    assert_eq!(&out[..n], &rest[..consumed], "response re-encode differs");
                }
                rest = &rest[consumed..];
            }
            Ok(RtuDecoded::Incomplete { needed }) => {
                assert!(needed > 0);
                assert!(rest.len() + needed <= MAX_RTU_FRAME_LEN);
                break;
            }
            Err(err) => {
                assert!(!err.is_framing_intact(), "{err}");
                rest = &rest[1..];
            }
        }
    }
});
