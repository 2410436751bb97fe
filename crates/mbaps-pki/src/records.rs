//! The CA's records (`pki.toml`): every certificate it issued, which are
//! revoked, and the number of the last CRL.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::PkiError;
use crate::files::{self, Access, Existing, FileSet};

/// What a certificate was issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A server (extended key usage serverAuth).
    Server,
    /// A client (extended key usage clientAuth), with or without a role.
    Client,
}

/// Why a certificate was revoked (RFC 5280 5.3.1), as the CRL says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The private key is known or suspected to be in other hands.
    KeyCompromise,
    /// The subject's role or name changed.
    AffiliationChanged,
    /// A newer certificate replaces it.
    Superseded,
    /// The device or person no longer needs it.
    CessationOfOperation,
}

impl RevocationReason {
    /// Every reason, in the order the command line lists them.
    pub const ALL: [RevocationReason; 5] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];

    /// The name the command line and the records use (`key-compromise`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
        }
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        }
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<RevocationReason, PkiError> {
        RevocationReason::ALL
            .into_iter()
            .find(|reason| reason.name() == s)
            .ok_or_else(|| {
                PkiError::invalid(
                    "--reason",
                    s,
                    "must be unspecified, key-compromise, affiliation-changed, superseded or \
                     cessation-of-operation",
                )
            })
    }
}

/// One certificate the CA issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedRecord {
    /// The serial number, upper-case hex.
    pub serial: String,
    /// The name it was issued under (the stem of its files).
    pub name: String,
    /// Server or client.
    pub kind: Kind,
    /// The subject, as `openssl x509 -subject` would show it.
    pub subject: String,
    /// The role it carries; absent for servers and for clients without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// When it expires, RFC 3339.
    pub not_after: String,
    /// When it was revoked, RFC 3339; absent while it is good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
}

/// The whole records file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Records {
    /// The number of the last CRL issued (0: none yet).
    pub(crate) crl_number: u64,
    /// Every certificate issued, oldest first.
    #[serde(default, rename = "certificate")]
    pub(crate) issued: Vec<IssuedRecord>,
}

const HEADER: &str = "# The records of the mbaps CA in this folder: every certificate it issued and\n\
# which are revoked. `mbaps pki` writes this file; keep it, with ca.key, backed up.\n\n";

impl Records {
    /// The path of the records file of the CA in `dir`.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("pki.toml")
    }

    /// Reads the records of the CA in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Records, PkiError> {
        let path = Records::path(dir);
        let bytes = files::read_bounded(&path, files::MAX_RECORDS_FILE)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|err| PkiError::content(&path, format!("not UTF-8: {err}")))?;
        let records: Records = toml::from_str(text)
            .map_err(|err| PkiError::content(&path, err.to_string().trim_end().to_owned()))?;
        Ok(records)
    }

    /// Adds the records file to `set`, replacing the old one.
    pub(crate) fn stage(&self, dir: &Path, set: &mut FileSet) -> Result<(), PkiError> {
        let body = toml::to_string(self).map_err(|err| {
            PkiError::content(&Records::path(dir), format!("cannot encode: {err}"))
        })?;
        set.add(
            Records::path(dir),
            format!("{HEADER}{body}"),
            Access::Public,
            Existing::Replace,
        );
        Ok(())
    }

    /// The record with this serial (upper-case hex), if any.
    pub(crate) fn find_mut(&mut self, serial: &str) -> Option<&mut IssuedRecord> {
        self.issued.iter_mut().find(|r| r.serial == serial)
    }
}

/// `time` as RFC 3339, to the second.
pub(crate) fn rfc3339(time: OffsetDateTime) -> String {
    time.replace_nanosecond(0)
        .unwrap_or(time)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

/// Parses an RFC 3339 date of the records file, in UTC, within the years
/// an X.509 time can hold (1950 to 9999, RFC 5280 4.1.2.5).
pub(crate) fn parse_rfc3339(
    dir: &Path,
    serial: &str,
    text: &str,
) -> Result<OffsetDateTime, PkiError> {
    let bad = |reason: String| {
        PkiError::content(
            &Records::path(dir),
            format!("certificate {serial}: date {text:?} {reason}"),
        )
    };
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|err| bad(format!("is not RFC 3339: {err}")))?
        .to_offset(time::UtcOffset::UTC);
    if !(1950..=9999).contains(&time.year()) {
        return Err(bad("is outside the years 1950 to 9999".to_owned()));
    }
    Ok(time)
}
