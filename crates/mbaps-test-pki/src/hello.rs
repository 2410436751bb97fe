//! Hand-built ClientHellos that no conforming client sends (old versions,
//! the NULL suite, SSL 2.0), and what a server answered to one: for the
//! negative checks of the conformance suite and the device probe (R-34,
//!

/// TLS versions on the wire.
pub mod version {
    /// SSL 3.0.
    pub const SSL30: u16 = 0x0300;
    /// TLS 1.0.
    pub const TLS10: u16 = 0x0301;
    /// TLS 1.1.
    pub const TLS11: u16 = 0x0302;
    /// TLS 1.2.
    pub const TLS12: u16 = 0x0303;
}

/// Extension types used by the hellos here.
pub mod extension {
    /// supported_groups (elliptic curves), RFC 8422.
    pub const SUPPORTED_GROUPS: u16 = 0x000A;
    /// ec_point_formats, RFC 8422.
    pub const EC_POINT_FORMATS: u16 = 0x000B;
    /// signature_algorithms, RFC 5246.
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000D;
    /// renegotiation_info, RFC 5746.
    pub const RENEGOTIATION_INFO: u16 = 0xFF01;
}

/// The extensions a TLS 1.2 client sends for ECDHE-ECDSA with P-256, so
/// that a refusal is for the version or suite asked about, not for a
/// missing extension.
pub fn modern_extensions() -> Vec<(u16, Vec<u8>)> {
    vec![
        // ecdsa_secp256r1_sha256, rsa_pkcs1_sha256, rsa_pss_rsae_sha256
        (
            extension::SIGNATURE_ALGORITHMS,
            vec![0x00, 0x06, 0x04, 0x03, 0x04, 0x01, 0x08, 0x04],
        ),
        // secp256r1, x25519
        (
            extension::SUPPORTED_GROUPS,
            vec![0x00, 0x04, 0x00, 0x17, 0x00, 0x1D],
        ),
        // uncompressed
        (extension::EC_POINT_FORMATS, vec![0x01, 0x00]),
        (extension::RENEGOTIATION_INFO, vec![0x00]),
    ]
}

/// A ClientHello record: record-layer version 0x0301 (as real clients send),
/// `client_version`, no supported_versions extension (so the server must
/// take `client_version` at its word), the cipher `suites`, null
/// compression, and `extensions` (type, body).
pub fn client_hello(client_version: u16, suites: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut hello = client_version.to_be_bytes().to_vec();
    hello.extend([0x5A; 32]); // random
    hello.push(0); // no session id
    hello.extend(u16_len(suites.len() * 2));
    for suite in suites {
        hello.extend(suite.to_be_bytes());
    }
    hello.extend([0x01, 0x00]); // null compression
    if !extensions.is_empty() {
        let mut body = Vec::new();
        for (kind, data) in extensions {
            body.extend(kind.to_be_bytes());
            body.extend(u16_len(data.len()));
            body.extend(data);
        }
        hello.extend(u16_len(body.len()));
        hello.extend(body);
    }
    let mut handshake = vec![0x01];
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(u16_len(handshake.len()));
    record.extend(handshake);
    record
}

/// An SSL 2.0 CLIENT-HELLO (two-byte record header, version 0x0002),
/// offering SSL_CK_RC4_128_WITH_MD5 and SSL_CK_DES_192_EDE3_CBC_WITH_MD5.
pub fn sslv2_client_hello() -> Vec<u8> {
    let ciphers = [0x01, 0x00, 0x80, 0x07, 0x00, 0xC0];
    let challenge = [0x5A; 16];
    let mut body = vec![0x01, 0x00, 0x02]; // CLIENT-HELLO, version 2
    body.extend(u16_len(ciphers.len()));
    body.extend([0x00, 0x00]); // no session id
    body.extend(u16_len(challenge.len()));
    body.extend(ciphers);
    body.extend(challenge);
    let mut record = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
    record.extend(body);
    record
}

fn u16_len(len: usize) -> [u8; 2] {
    u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes()
}

/// What a server sent back to a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerReply {
    /// A ServerHello: the server accepted, at this version (the
    /// server_version field; TLS 1.3 says 0x0303 there too).
    ServerHello {
        /// server_version.
        version: u16,
        /// The cipher suite chosen.
        suite: u16,
    },
    /// An alert record.
    Alert {
        /// 1 warning, 2 fatal.
        level: u8,
        /// The alert description (40 handshake_failure, 70
        /// protocol_version, ...).
        description: u8,
    },
    /// The connection closed (or nothing came) without a record.
    Nothing,
    /// Bytes that are neither.
    Other,
}

impl ServerReply {
    /// Reads the first record of `bytes`.
    pub fn parse(bytes: &[u8]) -> ServerReply {
        match bytes {
            [] => ServerReply::Nothing,
            [0x15, _, _, _, _, level, description, ..] => ServerReply::Alert {
                level: *level,
                description: *description,
            },
            // Handshake record, ServerHello (2): version after the 4-byte
            // handshake header; the suite after random and session id.
            [0x16, _, _, _, _, 0x02, _, _, _, v0, v1, rest @ ..] => {
                let suite = rest
                    .get(32)
                    .map(|len| 33 + usize::from(*len))
                    .and_then(|at| rest.get(at..at + 2))
                    .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]));
                ServerReply::ServerHello {
                    version: u16::from_be_bytes([*v0, *v1]),
                    suite,
                }
            }
            _ => ServerReply::Other,
        }
    }

    /// Whether the server went on with the handshake.
    pub fn accepted(&self) -> bool {
        matches!(self, ServerReply::ServerHello { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_has_consistent_lengths() {
        let hello = client_hello(version::TLS11, &[0x002F], &modern_extensions());
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        let handshake_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(handshake_len, hello.len() - 9);
        assert_eq!(&hello[9..11], &[0x03, 0x02]);
    }

    #[test]
    fn replies_are_told_apart() {
        assert_eq!(
            ServerReply::parse(&[0x15, 3, 3, 0, 2, 2, 70]),
            ServerReply::Alert {
                level: 2,
                description: 70
            }
        );
        assert_eq!(ServerReply::parse(&[]), ServerReply::Nothing);
        let mut hello = vec![0x16, 3, 3, 0, 0x40, 0x02, 0, 0, 0x3C, 0x03, 0x03];
        hello.extend([0u8; 32]);
        hello.push(0); // session id length
        hello.extend([0xC0, 0x2B]);
        assert_eq!(
            ServerReply::parse(&hello),
            ServerReply::ServerHello {
                version: 0x0303,
                suite: 0xC02B
            }
        );
    }
}
