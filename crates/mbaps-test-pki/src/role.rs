//! The Modbus/TCP Security role extension.

pub use mbaps_pki::role_extension_value;

/// OID arcs of the Modbus/TCP Security role extension, 1.3.6.1.4.1.50316.802.1.
pub const ROLE_OID: &[u64] = mbaps_pki::ROLE_OID_ARCS;

/// What a client certificate carries in the role extension.
#[derive(Clone, Debug)]
pub enum RoleExtension {
    /// No role extension: the server hands the NULL role to authorization.
    None,
    /// One role extension whose value is `UTF8String(role)`.
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
    fn values_per_variant() {
        assert!(RoleExtension::None.values().is_empty());
        assert_eq!(
            RoleExtension::Twice("a".into(), "b".into()).values(),
            [vec![0x0C, 0x01, b'a'], vec![0x0C, 0x01, b'b']]
        );
        assert_eq!(RoleExtension::Raw(vec![4, 0]).values(), [vec![4, 0]]);
    }
}
