//! The role a client certificate carries (R-20..R-23, R-65).

use core::fmt;
use std::sync::Arc;

use const_oid::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader, Tag};
use x509_cert::Certificate;

/// OID of the Modbus/TCP Security role extension (R-21).
pub const ROLE_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.50316.802.1");

/// Longest role accepted, in bytes. The specification sets no limit; a role
/// names a job ("Operator", "Maintenance"), and a longer string is a
/// malformed or hostile certificate, not a role.
pub const MAX_ROLE_LEN: usize = 256;

/// A role: the whole UTF-8 string of the role extension (R-65), compared
/// exactly, byte for byte.
///
/// A role is 1..=[`MAX_ROLE_LEN`] bytes of UTF-8 without control characters
/// (so that it can be logged as it is). Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(Arc<str>);

impl Role {
    /// A role from its name, checked as a role extension value is.
    pub fn new(name: &str) -> Result<Role, RoleError> {
        if name.is_empty() {
            return Err(RoleError::Empty);
        }
        if name.len() > MAX_ROLE_LEN {
            return Err(RoleError::TooLong {
                len: name.len(),
                max: MAX_ROLE_LEN,
            });
        }
        if let Some((offset, character)) = name.char_indices().find(|(_, c)| c.is_control()) {
            return Err(RoleError::ControlCharacter { offset, character });
        }
        if name == NULL_ROLE_NAME {
            return Err(RoleError::NamedAsTheNullRole);
        }
        Ok(Role(Arc::from(name)))
    }

    /// The role's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's role as log lines write it, the one way: a real role quoted
/// (`"operator"`), the NULL role (`None`, R-23) as `null`, unquoted, so
/// that no role name can pass for it.
#[derive(Clone, Copy, Debug)]
pub struct LoggedRole<'a>(pub Option<&'a Role>);

impl fmt::Display for LoggedRole<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(role) => write!(f, "{:?}", role.as_str()),
            None => f.write_str("null"),
        }
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({:?})", &*self.0)
    }
}

/// Why no role could be taken from a certificate. Every such certificate is
/// refused: it is never treated as one without a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The certificate itself is not DER-encoded X.509.
    #[error("the certificate is not a DER-encoded X.509 certificate: {0}")]
    Certificate(der::Error),
    /// More than one role extension: RFC 5280 forbids repeated extensions,
    /// and a certificate has exactly one role (R-65).
    #[error("the certificate has {count} role extensions ({ROLE_OID}); exactly one is allowed")]
    DuplicateRoleExtension {
        /// How many there are.
        count: usize,
    },
    /// The extension value is not a UTF8String (R-22): an OCTET STRING, a
    /// PrintableString or anything else is refused, never reinterpreted.
    #[error(
        "the role extension value has ASN.1 tag 0x{tag:02X} ({name}); it must be a UTF8String (tag 0x0C)"
    )]
    WrongType {
        /// The tag byte found.
        tag: u8,
        /// What that tag is.
        name: &'static str,
    },
    /// The UTF8String is not valid DER (bad or non-minimal length, truncated).
    #[error("the role extension value is not a well-formed DER UTF8String: {0}")]
    Malformed(der::Error),
    /// Bytes follow the UTF8String inside the extension value.
    #[error("{count} bytes follow the UTF8String in the role extension value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The UTF8String's bytes are not UTF-8.
    #[error("the role is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Bytes before the first invalid one.
        valid_up_to: usize,
    },
    /// The role is the empty string.
    #[error("the role is empty")]
    Empty,
    /// The role is longer than [`MAX_ROLE_LEN`].
    #[error("the role is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The role contains a control character.
    #[error("the role contains the control character {character:?} at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        character: char,
    },
    /// The role is named as the policy file names the NULL role
    /// (`[no_role]`, R-23): a real role of that name could not be told from
    /// the certificates without one.
    #[error(
        "the role is named {NULL_ROLE_NAME:?}, the policy file's name for the NULL role (clients without a role)"
    )]
    NamedAsTheNullRole,
}

/// How the policy file names the NULL role, the role of a certificate
/// without a role extension (R-23): its `[no_role]` table. No real role may
/// have this name ([`RoleError::NamedAsTheNullRole`]).
pub const NULL_ROLE_NAME: &str = "[no_role]";

impl RoleError {
    /// The rule of the specification the certificate breaks: `R-65` for
    /// repeated role extensions (exactly one role per certificate), `R-22`
    /// for a value that is not one well-formed DER UTF8String of UTF-8;
    /// `R-21` for a role mbaps refuses although DER allows it (empty, too
    /// long, control characters), since a role is a name; `RFC 5280` for a
    /// certificate that is not DER X.509 at all.
    pub fn requirement(&self) -> &'static str {
        match self {
            RoleError::Certificate(_) => "RFC 5280",
            RoleError::DuplicateRoleExtension { .. } => "R-65",
            RoleError::WrongType { .. }
            | RoleError::Malformed(_)
            | RoleError::TrailingBytes { .. }
            | RoleError::InvalidUtf8 { .. } => "R-22",
            RoleError::Empty
            | RoleError::TooLong { .. }
            | RoleError::ControlCharacter { .. }
            | RoleError::NamedAsTheNullRole => "R-21",
        }
    }
}

/// The role of a DER-encoded certificate (the leaf of a chain, as rustls
/// hands it over): `Ok(None)` when it has no role extension (the NULL role,
/// R-23), the role when it has exactly one whose value is a DER UTF8String
/// (R-21, R-22), and an error for everything else.
///
/// Never panics; memory use is bounded by the certificate's size.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let pki = mbaps_test_pki::TestPki::generate(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000))?;
/// # let der = &pki.client("operator").unwrap().cert_der;
/// let role = mbaps_authz::role_from_certificate(der)?;
/// assert_eq!(role.map(|r| r.to_string()).as_deref(), Some("operator"));
/// # Ok(()) }
/// ```
pub fn role_from_certificate(der: &[u8]) -> Result<Option<Role>, RoleError> {
    let certificate = Certificate::from_der(der).map_err(RoleError::Certificate)?;
    let mut values = certificate
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|extension| extension.extn_id == ROLE_OID)
        .map(|extension| extension.extn_value.as_bytes());
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let others = values.count();
    if others > 0 {
        return Err(RoleError::DuplicateRoleExtension { count: others + 1 });
    }
    role_from_extension_value(value).map(Some)
}

/// The role in a role extension's value: the DER of a UTF8String (R-22).
pub fn role_from_extension_value(value: &[u8]) -> Result<Role, RoleError> {
    if let Some(&tag) = value.first()
        && tag != 0x0C
    {
        return Err(RoleError::WrongType {
            tag,
            name: tag_name(tag),
        });
    }
    let mut reader = SliceReader::new(value).map_err(RoleError::Malformed)?;
    let header = Header::decode(&mut reader).map_err(RoleError::Malformed)?;
    debug_assert_eq!(header.tag(), Tag::Utf8String);
    let bytes = reader
        .read_slice(header.length())
        .map_err(RoleError::Malformed)?;
    let trailing = usize::try_from(reader.remaining_len()).unwrap_or(usize::MAX);
    if trailing > 0 {
        return Err(RoleError::TrailingBytes { count: trailing });
    }
    let name = core::str::from_utf8(bytes).map_err(|err| RoleError::InvalidUtf8 {
        valid_up_to: err.valid_up_to(),
    })?;
    Role::new(name)
}

fn tag_name(tag: u8) -> &'static str {
    match tag {
        0x04 => "OCTET STRING",
        0x13 => "PrintableString",
        0x16 => "IA5String",
        0x14 => "TeletexString",
        0x1C => "UniversalString",
        0x1E => "BMPString",
        0x0C => "UTF8String",
        0x2C => "constructed UTF8String",
        0x30 => "SEQUENCE",
        0x31 => "SET",
        0x05 => "NULL",
        0x02 => "INTEGER",
        _ => "not a string type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_operator_decodes() {
        let value = [0x0C, 0x08, 0x4F, 0x70, 0x65, 0x72, 0x61, 0x74, 0x6F, 0x72];
        assert_eq!(
            role_from_extension_value(&value).unwrap().as_str(),
            "Operator"
        );
    }

    #[test]
    fn each_malformed_value_gets_its_own_error() {
        assert_eq!(
            role_from_extension_value(&[0x04, 0x02, b'o', b'p']),
            Err(RoleError::WrongType {
                tag: 0x04,
                name: "OCTET STRING"
            })
        );
        assert_eq!(
            role_from_extension_value(&[0x13, 0x02, b'o', b'p']),
            Err(RoleError::WrongType {
                tag: 0x13,
                name: "PrintableString"
            })
        );
        assert_eq!(
            role_from_extension_value(&[0x0C, 0x02, b'o', b'p', 0x00]),
            Err(RoleError::TrailingBytes { count: 1 })
        );
        assert_eq!(
            role_from_extension_value(&[0x0C, 0x02, b'o', 0xFF]),
            Err(RoleError::InvalidUtf8 { valid_up_to: 1 })
        );
        assert_eq!(
            role_from_extension_value(&[0x0C, 0x00]),
            Err(RoleError::Empty)
        );
        assert!(matches!(
            role_from_extension_value(&[0x0C, 0x05, b'o']),
            Err(RoleError::Malformed(_))
        ));
        // Non-minimal (BER, not DER) length encoding.
        assert!(matches!(
            role_from_extension_value(&[0x0C, 0x81, 0x02, b'o', b'p']),
            Err(RoleError::Malformed(_))
        ));
        assert!(matches!(
            role_from_extension_value(&[]),
            Err(RoleError::Malformed(_))
        ));
        assert_eq!(
            role_from_extension_value(&[0x0C, 0x03, b'o', b'\n', b'p']),
            Err(RoleError::ControlCharacter {
                offset: 1,
                character: '\n'
            })
        );
    }

    #[test]
    fn roles_up_to_the_limit_are_accepted_and_one_more_byte_is_not() {
        let longest = "r".repeat(MAX_ROLE_LEN);
        assert!(Role::new(&longest).is_ok());
        assert_eq!(
            Role::new(&format!("{longest}r")),
            Err(RoleError::TooLong {
                len: MAX_ROLE_LEN + 1,
                max: MAX_ROLE_LEN
            })
        );
    }
}
