//! The device probe's reading of what a server under test sends back to a
//! hand-built hello (`mbaps_test_pki::hello::ServerReply::parse`): bytes
//! from a device, so arbitrary. Never panics, and what it reports is what
//! the bytes say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_test_pki::hello::ServerReply;

fuzz_target!(|data: &[u8]| {
    match ServerReply::parse(data) {
        ServerReply::Nothing => assert!(data.is_empty()),
        ServerReply::Alert { level, description } => {
            assert_eq!(data[0], 0x15);
            assert_eq!((data[5], data[6]), (level, description));
        }
        ServerReply::ServerHello { version, .. } => {
            assert_eq!((data[0], data[5]), (0x16, 0x02));
            assert_eq!(version.to_be_bytes(), [data[9], data[10]]);
        }
        ServerReply::Other => assert!(!data.is_empty()),
    }
});
