//! What `mbaps pki` reads from others: a device's certificate signing
//! request (`pki client --csr`) and any certificate (`pki show`). Arbitrary
//! bytes never panic; a request is accepted only with a signature that
//! verifies and a subject; the role `show` reports is the role a server
//! takes from the same certificate.
#![no_main]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mbaps_pki::{CertificateReport, RoleReport, SigningRequest};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz");
    if let Ok(request) = SigningRequest::from_der(path, data) {
        assert!(!request.subject().is_empty());
        assert!(!request.key().is_empty());
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(report) = CertificateReport::new(path, data, now) {
        let server = mbaps_authz::role_from_certificate(data);
        match (&report.role, server) {
            (RoleReport::NoRole, Ok(None)) => {}
            (RoleReport::Role { role }, Ok(Some(taken))) => assert_eq!(role, taken.as_str()),
            (RoleReport::Invalid { requirement, .. }, Err(err)) => {
                assert_eq!(*requirement, err.requirement())
            }
            (shown, taken) => panic!("show says {shown:?}, the server takes {taken:?}"),
        }
        let _ = report.problems();
    }
});
