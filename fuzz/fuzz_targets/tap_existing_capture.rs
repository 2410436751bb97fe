//! What the tap reads of a file it finds at its path (to append to it as
//! a new pcapng section, or move it aside): arbitrary bytes never panic,
//! never read past the end, and whatever is judged whole stays whole with
//! a section appended in its own byte order (what the tap then writes on
//! a machine of that order; a section of the other order makes the file
//! not whole, by design: it is moved aside at the next start).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mbaps_observe::tap::ends_whole;

/// A minimal section header block (no options), little-endian.
const SECTION_LE: [u8; 28] = [
    0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 28, 0, 0, 0,
];

/// The same, big-endian.
const SECTION_BE: [u8; 28] = [
    0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0, 28, 0x1A, 0x2B, 0x3C, 0x4D, 0, 1, 0, 0, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 28,
];

fuzz_target!(|data: &[u8]| {
    let whole = ends_whole(&mut Cursor::new(data)).expect("reading memory cannot fail");
    if whole {
        let mut appended = data.to_vec();
        // A whole capture starts with a section header: its byte-order
        // magic at offset 8.
        let big = data[8..12] == [0x1A, 0x2B, 0x3C, 0x4D];
        appended.extend_from_slice(if big { &SECTION_BE } else { &SECTION_LE });
        assert!(
            ends_whole(&mut Cursor::new(&appended)).unwrap(),
            "a whole capture with a section appended is whole"
        );
    }
});
