//! Key types and key generation.

use std::fmt;
use std::str::FromStr;

use rcgen::KeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::PkiError;

/// The kind of key a new CA or certificate gets.
///
/// ECDSA P-256 is the default: it is what R-61/R-62 ask for with ECC keys
/// and what every Modbus/TCP Security device handles. RSA keys are for
/// devices that only do `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` (R-14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on the NIST P-256 curve, signatures ECDSA with SHA-256.
    #[default]
    EcdsaP256,
    /// RSA, 2048-bit modulus, signatures PKCS#1 v1.5 with SHA-256.
    Rsa2048,
    /// RSA, 3072-bit modulus, signatures PKCS#1 v1.5 with SHA-256.
    Rsa3072,
}

impl KeyType {
    /// Every key type, in the order the command line lists them.
    pub const ALL: [KeyType; 3] = [KeyType::EcdsaP256, KeyType::Rsa2048, KeyType::Rsa3072];

    /// The name the command line uses: `ecdsa-p256`, `rsa-2048`, `rsa-3072`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
        }
    }

    /// A fresh key of this type, from the operating system's random source.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        let bits = match self {
            KeyType::EcdsaP256 => {
                return KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(PkiError::rcgen("an ECDSA P-256 key"));
            }
            KeyType::Rsa2048 => 2048,
            KeyType::Rsa3072 => 3072,
        };
        // ring, rustls' provider, signs with RSA keys but cannot make them:
        // the RustCrypto rsa crate makes the key, ring does every signature.
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|err| {
            PkiError::invalid(
                "--key",
                self.name(),
                format!("RSA key generation failed: {err}"),
            )
        })?;
        let pkcs8 = key.to_pkcs8_der().map_err(|err| {
            PkiError::invalid(
                "--key",
                self.name(),
                format!("cannot encode the RSA key: {err}"),
            )
        })?;
        KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(PkiError::rcgen(format!("an {} key", self.name())))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<KeyType, PkiError> {
        KeyType::ALL
            .into_iter()
            .find(|key| key.name() == s)
            .ok_or_else(|| {
                PkiError::invalid("--key", s, "must be ecdsa-p256, rsa-2048 or rsa-3072")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for key in KeyType::ALL {
            assert_eq!(key.name().parse::<KeyType>().unwrap(), key);
        }
        let err = "rsa-1024".parse::<KeyType>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#"--key "rsa-1024": must be ecdsa-p256, rsa-2048 or rsa-3072"#
        );
    }
}
