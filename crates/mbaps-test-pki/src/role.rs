//! The Modbus/TCP Security role extension (R-21, R-22).

/// OID arcs of the Modbus/TCP Security role extension, 1.3.6.1.4.1.50316.802.1 (R-21).
pub const ROLE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 50316, 802, 1];

/// DER tag of an ASN.1 UTF8String.
const UTF8_STRING_TAG: u8 = 0x0C;

/// The DER of a UTF8String holding `role`: the value of the role extension (R-22).
///
/// For `"Operator"` this is `0C 08 4F 70 65 72 61 74 6F 72`. Contents of 128
/// bytes or more get a long-form length (`0C 81 C8 ...` for 200 bytes).
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

/// What a client certificate carries in the role extension.
#[derive(Clone, Debug)]
pub enum RoleExtension {
    /// No role extension: the server hands the NULL role to authorization (R-23).
    None,
    /// One role extension whose value is `UTF8String(role)` (R-21, R-22).
    Role(String),
    /// Two role extensions, in this order: invalid per RFC 5280 (extensions are
    /// unique) and R-65 (exactly one role per certificate).
    Twice(String, String),
    /// One role extension whose value is exactly these bytes (wrong ASN.1 type,
    /// trailing bytes, bad UTF-8, ...), for negative tests.
    Raw(Vec<u8>),
}

impl RoleExtension {
    /// The extension values to put in the certificate, one per role extension.
    pub(crate) fn values(&self) -> Vec<Vec<u8>> {
        match self {
            RoleExtension::None => Vec::new(),
            RoleExtension::Role(role) => vec![role_extension_value(role)],
            RoleExtension::Twice(first, second) => {
                vec![role_extension_value(first), role_extension_value(second)]
            }
            RoleExtension::Raw(bytes) => vec![bytes.clone()],
        }
    }

    /// One line saying what the extension holds, for README.txt.
    pub(crate) fn describe(&self) -> String {
        match self {
            RoleExtension::None => "no role extension (NULL role, R-23)".to_owned(),
            RoleExtension::Role(role) => format!("role {role:?} (UTF8String, R-22)"),
            RoleExtension::Twice(first, second) => {
                format!("two role extensions, {first:?} and {second:?} (invalid: RFC 5280, R-65)")
            }
            RoleExtension::Raw(bytes) => format!(
                "role extension with raw value {} (not a valid UTF8String)",
                hex(bytes)
            ),
        }
    }
}

/// Upper-case hex with a space between bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
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
    fn empty_role() {
        assert_eq!(role_extension_value(""), [0x0C, 0x00]);
    }

    #[test]
    fn length_127_is_short_form_and_128_is_long_form() {
        let v = role_extension_value(&"a".repeat(127));
        assert_eq!(&v[..2], [0x0C, 0x7F]);
        assert_eq!(v.len(), 2 + 127);
        let v = role_extension_value(&"a".repeat(128));
        assert_eq!(&v[..3], [0x0C, 0x81, 0x80]);
        assert_eq!(v.len(), 3 + 128);
    }

    #[test]
    fn length_200_is_long_form_one_byte() {
        let role = "r".repeat(200);
        let v = role_extension_value(&role);
        assert_eq!(&v[..3], [0x0C, 0x81, 0xC8]);
        assert_eq!(&v[3..], role.as_bytes());
    }

    #[test]
    fn length_300_is_long_form_two_bytes() {
        let v = role_extension_value(&"x".repeat(300));
        assert_eq!(&v[..4], [0x0C, 0x82, 0x01, 0x2C]);
        assert_eq!(v.len(), 4 + 300);
    }

    #[test]
    fn multibyte_utf8_length_counts_bytes() {
        // "é" is two bytes in UTF-8.
        assert_eq!(role_extension_value("é"), [0x0C, 0x02, 0xC3, 0xA9]);
    }

    #[test]
    fn values_per_variant() {
        assert!(RoleExtension::None.values().is_empty());
        assert_eq!(
            RoleExtension::Twice("a".into(), "b".into()).values(),
            [vec![0x0C, 0x01, b'a'], vec![0x0C, 0x01, b'b']]
        );
        assert_eq!(RoleExtension::Raw(vec![4, 0]).values(), [vec![4, 0]]);
    }
}
