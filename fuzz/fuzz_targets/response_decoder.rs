//! The response PDU decoder on arbitrary bytes: never panics, and every PDU
//! it accepts encodes back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_codec::Response;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = Response::decode(data) {
        assert_eq!(response.encoded_len(), data.len());
        let mut out = [0u8; 253];
        let n = response
            .encode(&mut out)
            .expect("a decoded response encodes");
        assert_eq!(&out[..n], data);
        assert_eq!(Response::decode(&out[..n]), Ok(response));
    }
});
