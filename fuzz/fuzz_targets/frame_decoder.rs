//! The MBAP stream decoder on arbitrary bytes: never panics, never consumes
//! more than it was given, and every frame it accepts (and every PDU inside
//! it that decodes as a request or a response) encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_codec::{CodecError, Decoded, Request, Response, decode};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut out = [0u8; 260];
    loop {
        match decode(rest) {
            Ok(Decoded::Frame { adu, consumed }) => {
                assert!(
                    consumed <= rest.len(),
                    "consumed {consumed} of {}",
                    rest.len()
                );
                assert_eq!(consumed, adu.wire_len());
                let n = adu.encode(&mut out).expect("a decoded ADU encodes");
                assert_eq!(&out[..n], &rest[..consumed], "ADU re-encode differs");
                if let Ok(request) = Request::decode(adu.pdu) {
                    let n = mbaps_codec::encode_request(adu.header, &request, &mut out)
                        .expect("a decoded request encodes");
                    assert_eq!(
                        &out[..n],
                        &rest[..consumed],
                        "request ADU re-encode differs"
                    );
                }
                if let Ok(response) = Response::decode(adu.pdu) {
                    let n = mbaps_codec::encode_response(adu.header, &response, &mut out)
                        .expect("a decoded response encodes");
                    assert_eq!(
                        &out[..n],
                        &rest[..consumed],
                        "response ADU re-encode differs"
                    );
                }
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed > 0);
                assert!(rest.len() + needed <= 260);
                break;
            }
            Err(CodecError::ProtocolId { frame_len, .. }) if frame_len <= rest.len() => {
                rest = &rest[frame_len..];
            }
            Err(_) => break,
        }
    }
});
