//! The CA of a folder, end to end: what a site engineer relies on.
// Certificates are issued against the real clock, as a site does.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mbaps_authz::Role;
use mbaps_pki::{
    CertificateAuthority, CertificateReport, KeyType, PkiError, RevocationReason, RoleReport,
    SigningRequest, Subject, Usage, ValidityNow,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

fn folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-pki-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn ca(dir: &Path) -> CertificateAuthority {
    CertificateAuthority::init(dir, "Plant 4 CA", KeyType::EcdsaP256, 3650, false, now()).unwrap()
}

fn client(role: Option<&str>) -> Usage {
    Usage::Client {
        role: role.map(|r| Role::new(r).unwrap()),
    }
}

fn report(path: &Path, ca: &CertificateAuthority) -> CertificateReport {
    let certs = mbaps_session::load_certificates(path).unwrap();
    let mut report = CertificateReport::new(path, &certs[0], now()).unwrap();
    report.check_chain(
        &certs[0],
        &certs[1..],
        &[ca.certificate().clone()],
        &[],
        now(),
    );
    report
}

#[test]
fn a_new_ca_keeps_its_key_private_and_is_never_replaced_silently() {
    let dir = folder("init");
    let first = ca(&dir);
    for file in ["ca.pem", "ca.key", "pki.toml", "crl.pem"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = CertificateAuthority::init(&dir, "Other", KeyType::EcdsaP256, 10, false, now());
    assert!(
        matches!(again, Err(PkiError::Exists { .. })),
        "{again:?}",
        again = again.err()
    );
    assert_eq!(
        CertificateAuthority::open(&dir).unwrap().certificate(),
        first.certificate(),
        "the refused init changed nothing"
    );
    let replaced =
        CertificateAuthority::init(&dir, "Other", KeyType::EcdsaP256, 10, true, now()).unwrap();
    assert_ne!(replaced.certificate(), first.certificate());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clients_carry_the_role_servers_their_names_and_both_chain_to_the_ca() {
    let dir = folder("issue");
    let ca = ca(&dir);
    let key = || Subject::NewKey(KeyType::EcdsaP256);
    let hmi = ca
        .issue("hmi", key(), &client(Some("operator")), 365, false, now())
        .unwrap();
    assert_eq!(hmi.files.len(), 3);
    let report_hmi = report(&dir.join("hmi-chain.pem"), &ca);
    assert_eq!(
        report_hmi.role,
        RoleReport::Role {
            role: "operator".into()
        }
    );
    assert_eq!(report_hmi.extended_key_usage, ["clientAuth"]);
    assert_eq!(report_hmi.validity, ValidityNow::Valid);
    assert!(
        report_hmi.problems().is_empty(),
        "{:?}",
        report_hmi.problems()
    );

    ca.issue("historian", key(), &client(None), 365, false, now())
        .unwrap();
    assert_eq!(
        report(&dir.join("historian-chain.pem"), &ca).role,
        RoleReport::NoRole
    );

    let server = Usage::Server {
        dns: vec!["plc-1.plant4".into()],
        ips: vec!["10.0.4.11".parse().unwrap()],
    };
    ca.issue("plc-1", key(), &server, 365, false, now())
        .unwrap();
    let report_plc = report(&dir.join("plc-1-chain.pem"), &ca);
    assert_eq!(
        report_plc.subject_alt_names,
        ["DNS:plc-1.plant4", "IP Address:10.0.4.11"]
    );
    assert_eq!(report_plc.chain.as_ref().unwrap().usage, "serverAuth");
    assert!(
        report_plc.problems().is_empty(),
        "{:?}",
        report_plc.problems()
    );

    // Another CA's certificate does not chain, even under the same name.
    let other_dir = folder("issue-other");
    let other = self::ca(&other_dir);
    let foreign = report(&dir.join("hmi-chain.pem"), &other);
    assert!(
        foreign.problems()[0].contains("another key"),
        "{:?}",
        foreign.problems()
    );
    let renamed_dir = folder("issue-renamed");
    let renamed = CertificateAuthority::init(
        &renamed_dir,
        "Plant 5 CA",
        KeyType::EcdsaP256,
        30,
        false,
        now(),
    )
    .unwrap();
    let foreign = report(&dir.join("hmi.pem"), &renamed);
    assert!(
        foreign.problems()[0].contains("UnknownIssuer"),
        "{:?}",
        foreign.problems()
    );
    let _ = std::fs::remove_dir_all(&renamed_dir);

    // The same name again: refused, unless forced.
    let again = ca.issue("hmi", key(), &client(Some("viewer")), 365, false, now());
    assert!(matches!(again, Err(PkiError::Exists { .. })));
    assert_eq!(
        report(&dir.join("hmi.pem"), &ca).role,
        RoleReport::Role {
            role: "operator".into()
        }
    );
    ca.issue("hmi", key(), &client(Some("viewer")), 365, true, now())
        .unwrap();
    assert_eq!(
        report(&dir.join("hmi.pem"), &ca).role,
        RoleReport::Role {
            role: "viewer".into()
        }
    );
    assert_eq!(ca.issued().unwrap().len(), 4);

    // A certificate may not outlive its CA.
    let err = ca
        .issue("late", key(), &client(None), 3651, false, now())
        .unwrap_err();
    assert!(err.to_string().contains("would outlive the CA"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

#[test]
fn a_request_keeps_its_key_and_subject_and_nothing_else() {
    let dir = folder("csr");
    let ca = ca(&dir);
    // The device asks for role "admin", a SAN and serverAuth.
    let device_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hmi-2");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Plant 4");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        mbaps_pki::ROLE_OID_ARCS,
        mbaps_pki::role_extension_value("admin"),
    )];
    let csr = params.serialize_request(&device_key).unwrap();
    let csr_path = dir.join("hmi-2.csr");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&csr_path, csr.pem().unwrap()).unwrap();

    let request = SigningRequest::read(&csr_path).unwrap();
    assert_eq!(request.subject(), "CN=hmi-2, O=Plant 4");
    let ignored = request.ignored().join("\n");
    assert!(ignored.contains("asking for role \"admin\""), "{ignored}");
    assert!(ignored.contains("subjectAltName"), "{ignored}");
    let issued = ca
        .issue(
            "hmi-2",
            Subject::Request(&request),
            &client(Some("operator")),
            365,
            false,
            now(),
        )
        .unwrap();
    assert_eq!(issued.files.len(), 2, "no key is written for a request");
    assert!(!dir.join("hmi-2.key").exists());

    let report = report(&dir.join("hmi-2-chain.pem"), &ca);
    assert_eq!(
        report.role,
        RoleReport::Role {
            role: "operator".into()
        }
    );
    assert!(report.subject_alt_names.is_empty());
    assert_eq!(report.extended_key_usage, ["clientAuth"]);
    assert_eq!(report.subject, "CN=hmi-2, O=Plant 4");
    let der = mbaps_session::load_certificates(&dir.join("hmi-2.pem"))
        .unwrap()
        .remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&device_key).as_slice(),
        "the device's own key"
    );

    // A request whose signature does not verify is refused.
    let mut forged = csr.der().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = SigningRequest::from_der(&csr_path, &forged).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn revocations_reach_the_next_crl() {
    let dir = folder("revoke");
    let ca = ca(&dir);
    let key = || Subject::NewKey(KeyType::EcdsaP256);
    let historian = ca
        .issue(
            "historian",
            key(),
            &client(Some("viewer")),
            365,
            false,
            now(),
        )
        .unwrap();
    ca.issue("hmi", key(), &client(Some("operator")), 365, false, now())
        .unwrap();
    let record = ca
        .revoke(
            &dir.join("historian.pem"),
            RevocationReason::KeyCompromise,
            now(),
        )
        .unwrap();
    assert_eq!(record.serial, historian.record.serial);
    let twice = ca.revoke(
        &dir.join("historian-chain.pem"),
        RevocationReason::Unspecified,
        now(),
    );
    assert!(twice.unwrap_err().to_string().contains("already revoked"));

    let published = ca.publish_crl(7, now()).unwrap();
    assert_eq!(
        (published.number, published.revoked),
        (2, 1),
        "init published number 1"
    );
    let pem = std::fs::read(&published.path).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|crl: rustls_pki_types::CertificateRevocationListDer<'_>| crl.as_ref().to_vec())
        .unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    let listed: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().iter().map(|b| format!("{b:02X}")).collect())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&historian.record.serial));
    let issuer_key = mbaps_session::load_certificates(&dir.join("ca.pem"))
        .unwrap()
        .remove(0);
    let (_, ca_cert) = X509Certificate::from_der(&issuer_key).unwrap();
    crl.verify_signature(ca_cert.public_key()).unwrap();

    // `show --crl`: the historian is revoked, the HMI is good, and a CRL
    // of another CA says nothing of either.
    let crls = mbaps_session::load_crls(&published.path).unwrap();
    let checked = |name: &str, crls: &[rustls_pki_types::CertificateRevocationListDer<'_>]| {
        let path = dir.join(name);
        let certs = mbaps_session::load_certificates(&path).unwrap();
        let mut report = CertificateReport::new(&path, &certs[0], now()).unwrap();
        report.check_chain(&certs[0], &[], &[ca.certificate().clone()], crls, now());
        report.problems()
    };
    assert!(checked("historian.pem", &crls)[0].contains("CertRevoked"));
    assert!(checked("hmi.pem", &crls).is_empty());
    assert!(
        checked("historian.pem", &[]).is_empty(),
        "no CRL, no revocation check"
    );

    // A certificate of another CA is not this CA's to revoke.
    let other_dir = folder("revoke-other");
    let other = self::ca(&other_dir);
    other
        .issue("stranger", key(), &client(None), 30, false, now())
        .unwrap();
    let err = ca
        .revoke(
            &other_dir.join("stranger.pem"),
            RevocationReason::Unspecified,
            now(),
        )
        .unwrap_err();
    let foreign = mbaps_session::load_crls(&other_dir.join("crl.pem")).unwrap();
    let problems = checked("hmi.pem", &foreign);
    assert!(problems[0].contains("Crl"), "{problems:?}");
    assert!(
        err.to_string().contains("was not issued by this CA"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

#[test]
fn every_broken_role_of_the_test_pki_is_reported_with_its_rule() {
    let pki = mbaps_test_pki::TestPki::generate(now()).unwrap();
    let path = Path::new("test-pki");
    let role_of = |name: &str| {
        let der = &pki.client(name).unwrap().cert_der;
        CertificateReport::new(path, der, now()).unwrap().role
    };
    for (name, requirement, says) in [
        ("two-roles", "R-65", "2 role extensions"),
        ("octet-string-role", "R-22", "tag 0x04 (OCTET STRING)"),
        (
            "printable-string-role",
            "R-22",
            "tag 0x13 (PrintableString)",
        ),
    ] {
        match role_of(name) {
            RoleReport::Invalid {
                reason,
                requirement: rule,
            } => {
                assert_eq!(rule, requirement, "{name}");
                assert!(reason.contains(says), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for (bytes, requirement, says) in [
        (vec![0x0C, 0x00], "R-21", "empty"),
        (vec![0x0C, 0x02, 0xC3, 0x28], "R-22", "not valid UTF-8"),
        (
            vec![0x0C, 0x01, b'a', 0x00],
            "R-22",
            "follow the UTF8String",
        ),
    ] {
        let cert = pki
            .issue_client(
                "broken",
                mbaps_test_pki::RoleExtension::Raw(bytes.clone()),
                mbaps_test_pki::Validity::Current,
            )
            .unwrap();
        let report = CertificateReport::new(path, &cert.cert_der, now()).unwrap();
        match &report.role {
            RoleReport::Invalid {
                reason,
                requirement: rule,
            } => {
                assert_eq!(*rule, requirement, "{bytes:02X?}");
                assert!(reason.contains(says), "{bytes:02X?}: {reason}");
            }
            other => panic!("{bytes:02X?}: {other:?}"),
        }
        assert!(report.problems()[0].starts_with("role extension refused"));
    }
    let expired =
        CertificateReport::new(path, &pki.client("expired").unwrap().cert_der, now()).unwrap();
    assert_eq!(expired.validity, ValidityNow::Expired);
    let later = now() + Duration::from_secs(400 * 86_400);
    let operator = &pki.client("operator").unwrap().cert_der;
    assert_eq!(
        CertificateReport::new(path, operator, later)
            .unwrap()
            .validity,
        ValidityNow::Expired
    );
}

#[test]
fn rsa_keys_are_made_and_signed_with() {
    let dir = folder("rsa");
    let ca =
        CertificateAuthority::init(&dir, "RSA CA", KeyType::Rsa2048, 3650, false, now()).unwrap();
    ca.issue(
        "meter",
        Subject::NewKey(KeyType::Rsa2048),
        &client(Some("viewer")),
        30,
        false,
        now(),
    )
    .unwrap();
    // Opened again from its files, the RSA CA signs as well.
    let reopened = CertificateAuthority::open(&dir).unwrap();
    reopened
        .issue(
            "meter-2",
            Subject::NewKey(KeyType::EcdsaP256),
            &client(None),
            30,
            false,
            now(),
        )
        .unwrap();
    assert!(
        report(&dir.join("meter-2-chain.pem"), &ca)
            .problems()
            .is_empty()
    );
    let report = report(&dir.join("meter-chain.pem"), &ca);
    assert_eq!(report.key, "RSA 2048 bits");
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_inputs_get_errors_that_name_them() {
    let dir = folder("hostile");
    let ca = ca(&dir);
    // A request whose CN holds an escape sequence.
    let device_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hmi\x1b[2Jrole admin");
    let csr = params.serialize_request(&device_key).unwrap();
    let err = SigningRequest::from_der(Path::new("x.csr"), csr.der()).unwrap_err();
    assert!(err.to_string().contains("control character"), "{err}");
    // An overlong one.
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "x".repeat(129));
    let csr = params.serialize_request(&device_key).unwrap();
    let err = SigningRequest::from_der(Path::new("x.csr"), csr.der()).unwrap_err();
    assert!(
        err.to_string().contains("129 bytes long; at most 128"),
        "{err}"
    );

    // A name ending in a dot never matches; the CA's own files are not names.
    let dotted = Usage::Server {
        dns: vec!["plc.example.".into()],
        ips: vec![],
    };
    let err = ca
        .issue(
            "plc",
            Subject::NewKey(KeyType::EcdsaP256),
            &dotted,
            30,
            true,
            now(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("ending in '.'"), "{err}");
    for own in ["CA", "Crl", "PKI"] {
        assert!(mbaps_pki::check_name(own).is_err(), "{own}");
    }

    // The CA certificate is not revoked by its own CA.
    let err = ca
        .revoke(&dir.join("ca.pem"), RevocationReason::Unspecified, now())
        .unwrap_err();
    assert!(err.to_string().contains("is a CA certificate"), "{err}");

    // A records file edited by hand: dates in another offset are taken in
    // UTC; a year X.509 cannot hold is an error, not a crash.
    ca.issue(
        "hmi",
        Subject::NewKey(KeyType::EcdsaP256),
        &client(None),
        30,
        false,
        now(),
    )
    .unwrap();
    ca.revoke(&dir.join("hmi.pem"), RevocationReason::Superseded, now())
        .unwrap();
    let records = std::fs::read_to_string(dir.join("pki.toml")).unwrap();
    let revoked_line = records.lines().find(|l| l.starts_with("revoked")).unwrap();
    let offset = records.replace(revoked_line, "revoked = \"2049-12-31T23:30:00-01:00\"");
    std::fs::write(dir.join("pki.toml"), offset).unwrap();
    ca.publish_crl(7, now()).unwrap();
    let ancient = records.replace(revoked_line, "revoked = \"0000-01-01T00:00:00+00:01\"");
    std::fs::write(dir.join("pki.toml"), ancient).unwrap();
    let err = ca.publish_crl(7, now()).unwrap_err();
    assert!(
        err.to_string().contains("outside the years 1950 to 9999"),
        "{err}"
    );
    std::fs::write(dir.join("pki.toml"), "crl_number = \"many\"").unwrap();
    let err = ca.publish_crl(7, now()).unwrap_err();
    assert!(
        err.to_string().contains("pki.toml") && err.to_string().contains("crl_number"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
