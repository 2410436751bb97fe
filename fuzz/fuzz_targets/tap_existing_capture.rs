//! What the tap reads of a file it finds at its path (to append to it as
//! a new pcapng section, or move it aside): arbitrary bytes never panic,
//! never read past the end, and whatever is judged whole stays whole with
//! a section appended (what the tap then writes).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mbaps_observe::tap::ends_whole;

/// A minimal section header block (little-endian, no options).
const SECTION: [u8; 28] = [
    0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 28, 0, 0, 0,
];

fuzz_target!(|data: &[u8]| {
    let whole = ends_whole(&mut Cursor::new(data)).expect("reading memory cannot fail");
    if whole {
        let mut appended = data.to_vec();
        appended.extend_from_slice(&SECTION);
        assert!(
            ends_whole(&mut Cursor::new(&appended)).unwrap(),
            "a whole capture with a section appended is whole"
        );
    }
});
