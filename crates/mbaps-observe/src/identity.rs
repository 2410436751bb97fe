//! Who a client is, from its certificate, as the trail and the tap write
//! it: the subject and the SHA-256 fingerprint.

/// The certificate's subject, as RFC 4514 writes it.
pub(crate) fn subject(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    Some(certificate.tbs_certificate().subject().to_string())
}

/// The certificate's SHA-256, in hex.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}
