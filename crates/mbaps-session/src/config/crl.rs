//! Which issuers the configured CRLs come from, so that a certificate
//! whose revocation status no CRL can tell is refused with the name of
//! the issuer whose CRL is missing, not an opaque "unknown revocation
//! status".

use std::fmt;
use std::sync::Arc;

use der::Decode;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::{CertificateError, Error as TlsError, OtherError};
use x509_cert::Certificate;
use x509_cert::certificate::Rfc5280;
use x509_cert::crl::CertificateList;
use x509_cert::name::Name;

use super::{ConfigError, CrlScope};

/// The issuers of the configured CRLs.
#[derive(Debug)]
pub(super) struct CrlIssuers(Vec<Name>);

/// No CRL from the issuer of a certificate whose status must be known.
#[derive(Debug)]
pub(crate) struct MissingCrl {
    /// The issuer without a CRL.
    pub(crate) issuer: String,
    /// The certificate it issued.
    pub(crate) subject: String,
}

impl fmt::Display for MissingCrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no CRL from {:?}, the issuer of {:?}, so its revocation status is unknown; \
             give that issuer's CRL, or check only the client's own certificate \
             (CrlScope::EndEntityOnly, mbaps server --crl-scope end-entity)",
            self.issuer, self.subject
        )
    }
}

impl std::error::Error for MissingCrl {}

impl CrlIssuers {
    /// The issuers of `crls`; a CRL that does not parse is an error naming
    /// its position.
    pub(super) fn of(crls: &[CertificateRevocationListDer<'_>]) -> Result<CrlIssuers, ConfigError> {
        let mut issuers = Vec::with_capacity(crls.len());
        for (index, crl) in crls.iter().enumerate() {
            let list = CertificateList::<Rfc5280>::from_der(crl.as_ref()).map_err(|error| {
                ConfigError::Verifier(format!("CRL {index} does not parse: {error}"))
            })?;
            issuers.push(list.tbs_cert_list.issuer);
        }
        Ok(CrlIssuers(issuers))
    }

    fn has(&self, issuer: &Name) -> bool {
        self.0.iter().any(|name| name == issuer)
    }

    /// With the whole chain in scope, every root's certificates need its
    /// CRL: a root without one is an error now, not a refused client later.
    pub(super) fn check_roots(
        &self,
        roots: &[CertificateDer<'_>],
        scope: CrlScope,
    ) -> Result<(), ConfigError> {
        if self.0.is_empty() || scope != CrlScope::WholeChain {
            return Ok(());
        }
        for root in roots {
            let Ok(root) = Certificate::from_der(root.as_ref()) else {
                continue;
            };
            let subject = root.tbs_certificate().subject();
            if !self.has(subject) {
                return Err(ConfigError::MissingCrl {
                    issuer: subject.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Why a chain's revocation status is unknown: the first certificate
    /// in `scope` whose issuer has no CRL, as a certificate error.
    pub(super) fn explain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        scope: CrlScope,
    ) -> Option<TlsError> {
        let in_scope = match scope {
            CrlScope::WholeChain => 1 + intermediates.len(),
            CrlScope::EndEntityOnly => 1,
        };
        std::iter::once(end_entity)
            .chain(intermediates)
            .take(in_scope)
            .filter_map(|der| Certificate::from_der(der.as_ref()).ok())
            .find(|cert| !self.has(cert.tbs_certificate().issuer()))
            .map(|cert| {
                let tbs = cert.tbs_certificate();
                let missing = MissingCrl {
                    issuer: tbs.issuer().to_string(),
                    subject: tbs.subject().to_string(),
                };
                TlsError::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(missing))))
            })
    }
}
