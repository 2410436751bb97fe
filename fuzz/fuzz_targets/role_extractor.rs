//! Role extraction on arbitrary bytes and on mutated real certificates:
//! never panics; a role it returns obeys the role rules; and a role
//! extension value it accepts is exactly the DER UTF8String of that role.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_authz::{MAX_ROLE_LEN, role_from_certificate, role_from_extension_value};

fn utf8_string_der(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut out = vec![0x0C];
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(text.as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(role)) = role_from_certificate(data) {
        assert!(!role.as_str().is_empty() && role.as_str().len() <= MAX_ROLE_LEN);
        assert!(!role.as_str().chars().any(char::is_control));
    }
    if let Ok(role) = role_from_extension_value(data) {
        assert_eq!(
            utf8_string_der(role.as_str()),
            data,
            "accepted a non-canonical value"
        );
    }
});
