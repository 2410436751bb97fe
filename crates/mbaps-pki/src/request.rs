//! Certificate signing requests: the device keeps its key, the CA takes
//! the request's subject and public key, checks that the device holds the
//! key (the request's own signature), and nothing else.

use std::path::Path;

use rcgen::{DistinguishedName, DnType, DnValue};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;

use crate::PkiError;
use crate::files;
use crate::inspect::{KeyDescription, describe_key};

/// Most attributes a request's subject may have: a real subject has a few
/// (CN, O, OU, C, ...).
const MAX_SUBJECT_ATTRIBUTES: usize = 32;
/// Largest request file read: a real one is under 4 KiB (RSA-8192 included).
const MAX_REQUEST_FILE: u64 = 64 * 1024;
/// Longest subject attribute value, in bytes: RFC 5280's upper bounds are
/// 64 for CN, O and OU, 128 for L and ST; nothing longer is a name.
const MAX_ATTRIBUTE_LEN: usize = 128;

/// A verified certificate signing request (PKCS#10).
///
/// Only the subject and the public key are taken into a certificate: the
/// extended key usage, the SANs and the role come from the CA's command,
/// never from the request (see [`SigningRequest::ignored`]).
#[derive(Debug)]
pub struct SigningRequest {
    pub(crate) subject: DistinguishedName,
    pub(crate) subject_text: String,
    pub(crate) public_key: rcgen::SubjectPublicKeyInfo,
    key: KeyDescription,
    ignored: Vec<String>,
}

impl SigningRequest {
    /// Reads a request from a PEM (`CERTIFICATE REQUEST`) or DER file and
    /// checks its signature against its own public key (proof that the
    /// device holds the private key).
    pub fn read(path: &Path) -> Result<SigningRequest, PkiError> {
        let bytes = files::read_bounded(path, MAX_REQUEST_FILE)?;
        let der = match CertificateSigningRequestDer::from_pem_slice(&bytes) {
            Ok(der) => der.as_ref().to_vec(),
            Err(_) if bytes.first() == Some(&0x30) => bytes,
            Err(err) => {
                return Err(PkiError::content(
                    path,
                    format!("no PEM CERTIFICATE REQUEST and not DER: {err}"),
                ));
            }
        };
        SigningRequest::from_der(path, &der)
    }

    /// A request from its DER; `path` names it in errors.
    pub fn from_der(path: &Path, der: &[u8]) -> Result<SigningRequest, PkiError> {
        let (rest, request) = X509CertificationRequest::from_der(der)
            .map_err(|err| PkiError::content(path, format!("not a PKCS#10 request: {err}")))?;
        if !rest.is_empty() {
            return Err(PkiError::content(
                path,
                format!("{} bytes follow the request", rest.len()),
            ));
        }
        request.verify_signature().map_err(|err| {
            PkiError::content(
                path,
                format!(
                    "the request's signature does not verify with its own key ({err}): \
                     it was not made by the holder of that key"
                ),
            )
        })?;
        let info = &request.certification_request_info;
        let key = describe_key(&info.subject_pki);
        key.check_for_issuing()
            .map_err(|reason| PkiError::content(path, reason))?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|err| PkiError::content(path, format!("public key: {err}")))?;
        let subject = subject(path, &info.subject)?;
        let mut ignored = Vec::new();
        for attribute in info.iter_attributes() {
            match attribute.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(request) => {
                    ignored.extend(request.extensions.iter().map(|extension| {
                        crate::inspect::describe_extension(&extension.oid, extension.value)
                    }));
                }
                ParsedCriAttribute::ChallengePassword(_) => {
                    ignored.push("a challenge password".to_owned());
                }
                ParsedCriAttribute::UnsupportedAttribute => {
                    ignored.push(format!("attribute {}", attribute.oid));
                }
            }
        }
        Ok(SigningRequest {
            subject,
            subject_text: crate::inspect::printable(&info.subject.to_string()),
            public_key,
            key,
            ignored,
        })
    }

    /// The subject, as `openssl req -subject` shows it.
    pub fn subject(&self) -> &str {
        &self.subject_text
    }

    /// The key's type and size ("ECDSA P-256", "RSA 2048 bits").
    pub fn key(&self) -> &str {
        &self.key.text
    }

    /// What the request asks for that a certificate will not carry, one
    /// line each ("role extension 1.3.6.1.4.1.50316.802.1 asking for role
    /// \"admin\"", "extension subjectAltName", ...).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }
}

/// The request's subject as rcgen builds it, attribute by attribute, with
/// each value's string type kept.
fn subject(
    path: &Path,
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    let mut count = 0;
    for attribute in name.iter_attributes() {
        count += 1;
        if count > MAX_SUBJECT_ATTRIBUTES {
            return Err(PkiError::content(
                path,
                format!("the subject has more than {MAX_SUBJECT_ATTRIBUTES} attributes"),
            ));
        }
        let oid = attribute.attr_type();
        let Some(arcs) = oid.iter() else {
            return Err(PkiError::content(
                path,
                format!("subject attribute type {oid} has an arc too large"),
            ));
        };
        let arcs: Vec<u64> = arcs.collect();
        let value = attribute.attr_value();
        let data = value.data.to_vec();
        let bad = |what: &str| PkiError::content(path, format!("subject attribute {oid}: {what}"));
        if data.len() > MAX_ATTRIBUTE_LEN {
            return Err(bad(&format!(
                "the value is {} bytes long; at most {MAX_ATTRIBUTE_LEN} are signed",
                data.len()
            )));
        }
        let text = || {
            let text = String::from_utf8(data.clone()).map_err(|_| bad("not valid text"))?;
            match text.chars().find(|c| c.is_control()) {
                Some(c) => Err(bad(&format!("the value holds the control character {c:?}"))),
                None => Ok(text),
            }
        };
        let value = match value.tag().0 {
            12 => DnValue::Utf8String(text()?),
            19 => DnValue::PrintableString(
                text()?
                    .try_into()
                    .map_err(|_| bad("not a valid PrintableString"))?,
            ),
            22 => DnValue::Ia5String(
                text()?
                    .try_into()
                    .map_err(|_| bad("not a valid IA5String"))?,
            ),
            20 => DnValue::TeletexString(
                text()?
                    .try_into()
                    .map_err(|_| bad("not a valid TeletexString"))?,
            ),
            30 => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(data.clone())
                    .map_err(|_| bad("not a valid BMPString"))?,
            ),
            28 => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.clone())
                    .map_err(|_| bad("not a valid UniversalString"))?,
            ),
            tag => {
                return Err(bad(&format!(
                    "value has ASN.1 tag {tag}, not a string type"
                )));
            }
        };
        let kind = DnType::from_oid(&arcs);
        if dn.get(&kind).is_some() {
            // rcgen keeps one value per attribute type: refuse rather than
            // drop one and sign a subject the device did not ask for.
            return Err(bad(
                "appears twice in the subject; only one value per attribute type can be signed",
            ));
        }
        dn.push(kind, value);
    }
    if count == 0 {
        return Err(PkiError::content(
            path,
            "the request's subject is empty: a certificate needs a name",
        ));
    }
    Ok(dn)
}
