//! `mbaps fuzz --replay`'s file on arbitrary text: never panics, every ADU
//! it accepts is within the bound of one step, and what it accepts writes
//! back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_fuzzer::{MAX_ADU_BYTES, parse_replay};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(replay) = parse_replay(text) else {
        return;
    };
    for step in replay.connections.iter().flatten() {
        assert!(step.adu.len() <= MAX_ADU_BYTES, "{step:?}");
    }
    let again = serde_json::to_string(&replay).unwrap();
    assert_eq!(parse_replay(&again).unwrap(), replay);
});
