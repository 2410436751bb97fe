//! Loading certificates, private keys and CRLs from PEM or DER, with errors
//! that name the file and say what is wrong with it.
//!
//! This is the one part of the crate that reads files: it runs once, when a
//! configuration is built, never on the session path.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

/// Largest credential file read: certificates, keys and CRLs are kilobytes.
pub const MAX_CREDENTIAL_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A file that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: LoadProblem,
}

/// What is wrong with a credential file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadProblem {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than [`MAX_CREDENTIAL_FILE_BYTES`].
    #[error("it is {0} bytes long; a credential file is at most {MAX_CREDENTIAL_FILE_BYTES}")]
    TooLarge(u64),
    /// No certificate in the file; `found` says what is there instead.
    #[error("it holds no certificate{}", found_suffix(.found))]
    NoCertificate {
        /// The PEM sections found, if any.
        found: Vec<&'static str>,
    },
    /// No private key in the file; `found` says what is there instead.
    #[error("it holds no private key{}", found_suffix(.found))]
    NoPrivateKey {
        /// The PEM sections found, if any.
        found: Vec<&'static str>,
    },
    /// The key is encrypted: mbaps does not hold passphrases.
    #[error(
        "the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out KEY.plain)"
    )]
    EncryptedKey,
    /// More than one private key: which one is meant is not guessed.
    #[error("it holds {0} private keys; put exactly one in the file")]
    SeveralKeys(usize),
    /// No CRL in the file.
    #[error("it holds no certificate revocation list{}", found_suffix(.found))]
    NoCrl {
        /// The PEM sections found, if any.
        found: Vec<&'static str>,
    },
    /// The PEM text is malformed.
    #[error("malformed PEM: {0}")]
    Pem(String),
}

fn found_suffix(found: &[&'static str]) -> String {
    if found.is_empty() {
        " (no PEM section, and not DER either)".into()
    } else {
        format!(" (found: {})", found.join(", "))
    }
}

fn section_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "certificate",
        SectionKind::PublicKey => "public key",
        SectionKind::RsaPrivateKey => "RSA private key",
        SectionKind::PrivateKey => "PKCS#8 private key",
        SectionKind::EcPrivateKey => "EC private key",
        SectionKind::Crl => "CRL",
        SectionKind::Csr => "certificate signing request",
        SectionKind::EchConfigList => "ECH config list",
        _ => "other PEM section",
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let error = |problem| LoadError {
        path: path.to_owned(),
        problem,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| error(LoadProblem::Io(e)))?
        .len();
    if size > MAX_CREDENTIAL_FILE_BYTES {
        return Err(error(LoadProblem::TooLarge(size)));
    }
    std::fs::read(path).map_err(|e| error(LoadProblem::Io(e)))
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The PEM sections of `bytes`, in order.
fn sections(bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, LoadProblem> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| LoadProblem::Pem(e.to_string()))
}

/// Certificates from a PEM file (every CERTIFICATE section, in order) or a
/// DER file (one certificate). A chain file lists the leaf first.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let bytes = read(path)?;
    parse_certificates(&bytes).map_err(|problem| LoadError {
        path: path.to_owned(),
        problem,
    })
}

/// As [`load_certificates`], from bytes.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, LoadProblem> {
    if !is_pem(bytes) {
        // DER: an X.509 certificate is a SEQUENCE.
        return if bytes.first() == Some(&0x30) {
            Ok(vec![CertificateDer::from(bytes.to_vec())])
        } else {
            Err(LoadProblem::NoCertificate { found: Vec::new() })
        };
    }
    let sections = sections(bytes)?;
    let certificates: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certificates.is_empty() {
        let found = sections.iter().map(|(k, _)| section_name(*k)).collect();
        return Err(LoadProblem::NoCertificate { found });
    }
    Ok(certificates)
}

/// The one private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC) or of
/// a DER file (PKCS#8).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    let bytes = read(path)?;
    parse_private_key(&bytes).map_err(|problem| LoadError {
        path: path.to_owned(),
        problem,
    })
}

/// As [`load_private_key`], from bytes.
pub fn parse_private_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, LoadProblem> {
    if !is_pem(bytes) {
        return if bytes.first() == Some(&0x30) {
            Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                bytes.to_vec(),
            )))
        } else {
            Err(LoadProblem::NoPrivateKey { found: Vec::new() })
        };
    }
    if bytes
        .windows(29)
        .any(|w| w == b"-----BEGIN ENCRYPTED PRIVATE ")
    {
        return Err(LoadProblem::EncryptedKey);
    }
    let sections = sections(bytes)?;
    let mut keys = sections.iter().filter_map(|(kind, der)| {
        let der = der.clone();
        match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
            _ => None,
        }
    });
    let Some(key) = keys.next() else {
        let found = sections.iter().map(|(k, _)| section_name(*k)).collect();
        return Err(LoadProblem::NoPrivateKey { found });
    };
    let others = keys.count();
    if others > 0 {
        return Err(LoadProblem::SeveralKeys(others + 1));
    }
    Ok(key)
}

/// The CRLs of a PEM file (every X509 CRL section) or a DER file (one CRL).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, LoadError> {
    let bytes = read(path)?;
    parse_crls(&bytes).map_err(|problem| LoadError {
        path: path.to_owned(),
        problem,
    })
}

/// As [`load_crls`], from bytes.
pub fn parse_crls(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, LoadProblem> {
    if !is_pem(bytes) {
        return if bytes.first() == Some(&0x30) {
            Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
        } else {
            Err(LoadProblem::NoCrl { found: Vec::new() })
        };
    }
    let sections = sections(bytes)?;
    let crls: Vec<_> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Crl)
        .map(|(_, der)| CertificateRevocationListDer::from(der.clone()))
        .collect();
    if crls.is_empty() {
        let found = sections.iter().map(|(k, _)| section_name(*k)).collect();
        return Err(LoadProblem::NoCrl { found });
    }
    Ok(crls)
}
