//! The Modbus/TCP Security role extension as the CA writes it (R-21, R-22).

/// OID arcs of the role extension, 1.3.6.1.4.1.50316.802.1 (R-21).
pub const ROLE_OID_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 50316, 802, 1];

/// DER tag of an ASN.1 UTF8String.
const UTF8_STRING_TAG: u8 = 0x0C;

/// The DER of a UTF8String holding `role`: the value of the role extension
/// (R-22). For `"Operator"` this is `0C 08 4F 70 65 72 61 74 6F 72`;
/// contents of 128 bytes or more get a long-form length (`0C 81 C8 ...`
/// for 200 bytes). Any length is encoded, so that tests can build the
/// roles a server must refuse; [`mbaps_authz::Role`] says which it takes.
pub fn role_extension_value(role: &str) -> Vec<u8> {
    let contents = role.as_bytes();
    let mut der = Vec::with_capacity(contents.len() + 6);
    der.push(UTF8_STRING_TAG);
    push_der_length(&mut der, contents.len());
    der.extend_from_slice(contents);
    der
}

/// Appends a DER length: short form below 128, else long form with the
/// fewest length bytes (X.690 8.1.3, 10.1).
fn push_der_length(der: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Checked just above: fits in 7 bits.
        der.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let significant = &bytes[skip..];
    // At most size_of::<usize>() bytes, so this fits in the 7-bit count.
    der.push(0x80 | significant.len() as u8);
    der.extend_from_slice(significant);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_vector_from_the_spec() {
        assert_eq!(
            role_extension_value("Operator"),
            [0x0C, 0x08, 0x4F, 0x70, 0x65, 0x72, 0x61, 0x74, 0x6F, 0x72]
        );
    }

    #[test]
    fn lengths_take_the_shortest_form_and_parse_back() {
        for (len, head) in [
            (0, &[0x0C, 0x00][..]),
            (127, &[0x0C, 0x7F]),
            (128, &[0x0C, 0x81, 0x80]),
            (200, &[0x0C, 0x81, 0xC8]),
            (300, &[0x0C, 0x82, 0x01, 0x2C]),
        ] {
            let role = "r".repeat(len);
            let value = role_extension_value(&role);
            assert_eq!(&value[..head.len()], head);
            assert_eq!(value.len(), head.len() + len);
            if (1..=mbaps_authz::MAX_ROLE_LEN).contains(&len) {
                let parsed = mbaps_authz::role_from_extension_value(&value).unwrap();
                assert_eq!(parsed.as_str(), role);
            }
        }
    }

    #[test]
    fn multibyte_utf8_length_counts_bytes() {
        assert_eq!(role_extension_value("é"), [0x0C, 0x02, 0xC3, 0xA9]);
    }

    #[test]
    fn the_arcs_are_the_oid_authorization_reads() {
        let dotted: Vec<String> = ROLE_OID_ARCS.iter().map(u64::to_string).collect();
        assert_eq!(dotted.join("."), mbaps_authz::ROLE_OID.to_string());
    }
}
