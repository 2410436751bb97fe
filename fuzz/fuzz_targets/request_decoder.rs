//! The request PDU decoder on arbitrary bytes: never panics, and every PDU
//! it accepts encodes back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_codec::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        assert_eq!(request.encoded_len(), data.len());
        let mut out = [0u8; 253];
        let n = request.encode(&mut out).expect("a decoded request encodes");
        assert_eq!(&out[..n], data);
        assert_eq!(Request::decode(&out[..n]), Ok(request));
    }
});
