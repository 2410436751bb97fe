//! The generated PKI, checked byte by byte.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mbaps_test_pki::{
    Credential, PkiError, ROLE_OID, RoleExtension, TestPki, Validity, role_extension_value,
};

/// 2025-06-15 15:06:40 UTC.
const NOW_SECS: u64 = 1_750_000_000;

/// The DER of the role OID 1.3.6.1.4.1.50316.802.1, worked out by hand:
/// 1.3 -> 0x2B; 50316 = 3*128^2 + 9*128 + 12 -> 83 89 0C; 802 = 6*128 + 34 -> 86 22.
const ROLE_OID_DER: [u8; 13] = [
    0x06, 0x0B, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x83, 0x89, 0x0C, 0x86, 0x22, 0x01,
];

/// id-kp-serverAuth 1.3.6.1.5.5.7.3.1 and id-kp-clientAuth 1.3.6.1.5.5.7.3.2.
const SERVER_AUTH_DER: [u8; 10] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH_DER: [u8; 10] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(now()).expect("generate"))
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn client(name: &str) -> &'static Credential {
    pki()
        .client(name)
        .unwrap_or_else(|| panic!("no client {name}"))
}

/// The role extension as it must appear in the DER: OID, then (no critical
/// flag: DEFAULT FALSE) the OCTET STRING wrapping `value`.
fn role_extension_der(value: &[u8]) -> Vec<u8> {
    let mut der = ROLE_OID_DER.to_vec();
    der.push(0x04);
    der.push(u8::try_from(value.len()).expect("short value"));
    der.extend_from_slice(value);
    der
}

/// Splits the DER TLV at the start of `der` (definite lengths up to 2 bytes)
/// into (tag, whole TLV, contents, rest).
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
    let (len, header) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(der[2]), 3),
        0x82 => (usize::from(der[2]) << 8 | usize::from(der[3]), 4),
        other => panic!("unexpected length byte {other:#x}"),
    };
    let end = header + len;
    (der[0], &der[..end], &der[header..end], &der[end..])
}

/// The serialNumber INTEGER TLV of a certificate.
fn serial_tlv(cert: &[u8]) -> Vec<u8> {
    let (_, _, certificate, _) = tlv(cert);
    let (_, _, tbs, _) = tlv(certificate);
    let (version_tag, _, _, rest) = tlv(tbs);
    assert_eq!(version_tag, 0xA0, "explicit version");
    let (serial_tag, serial, _, _) = tlv(rest);
    assert_eq!(serial_tag, 0x02, "serialNumber INTEGER");
    serial.to_vec()
}

/// A UTCTime TLV, `YYMMDDhhmmssZ`.
fn utc_time(s: &str) -> Vec<u8> {
    let mut der = vec![0x17, 0x0D];
    der.extend_from_slice(s.as_bytes());
    der
}

#[test]
fn role_oid_der_matches_the_arcs() {
    // Encode ROLE_OID independently of rcgen and compare with the hand-made bytes.
    let mut body = vec![u8::try_from(ROLE_OID[0] * 40 + ROLE_OID[1]).unwrap()];
    for &arc in &ROLE_OID[2..] {
        let mut groups = vec![u8::try_from(arc & 0x7F).unwrap()];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | u8::try_from(rest & 0x7F).unwrap());
            rest >>= 7;
        }
        groups.reverse();
        body.extend(groups);
    }
    let mut der = vec![0x06, u8::try_from(body.len()).unwrap()];
    der.extend(body);
    assert_eq!(der, ROLE_OID_DER);
    assert_eq!(ROLE_OID, [1, 3, 6, 1, 4, 1, 50316, 802, 1]);
}

#[test]
fn role_extension_value_vectors() {
    assert_eq!(
        role_extension_value("Operator"),
        [0x0C, 0x08, 0x4F, 0x70, 0x65, 0x72, 0x61, 0x74, 0x6F, 0x72]
    );
    let long = "R".repeat(200);
    let value = role_extension_value(&long);
    assert_eq!(&value[..3], [0x0C, 0x81, 0xC8]);
    assert_eq!(&value[3..], long.as_bytes());
    assert_eq!(value.len(), 203);
}

#[test]
fn every_standard_client_exists_in_order() {
    let names: Vec<&str> = pki().clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "operator",
            "viewer",
            "no-role",
            "two-roles",
            "octet-string-role",
            "printable-string-role",
            "expired",
            "not-yet-valid",
            "revoked",
        ]
    );
    assert_eq!(names, TestPki::STANDARD_CLIENTS);
    for name in TestPki::STANDARD_CLIENTS {
        assert_eq!(client(name).name, *name);
    }
    assert!(pki().client("untrusted").is_none());
    assert!(pki().client("nobody").is_none());
}

#[test]
fn role_extension_occurrences() {
    let expected = [
        ("operator", 1),
        ("viewer", 1),
        ("no-role", 0),
        ("two-roles", 2),
        ("octet-string-role", 1),
        ("printable-string-role", 1),
        ("expired", 1),
        ("not-yet-valid", 1),
        ("revoked", 1),
    ];
    for (name, n) in expected {
        assert_eq!(count(&client(name).cert_der, &ROLE_OID_DER), n, "{name}");
    }
    assert_eq!(count(&pki().server.cert_der, &ROLE_OID_DER), 0);
    assert_eq!(count(&pki().ca.cert_der, &ROLE_OID_DER), 0);
    assert_eq!(count(&pki().untrusted_client.cert_der, &ROLE_OID_DER), 1);
}

#[test]
fn role_extension_values_are_exact() {
    let operator =
        role_extension_der(&[0x0C, 0x08, b'o', b'p', b'e', b'r', b'a', b't', b'o', b'r']);
    assert_eq!(count(&client("operator").cert_der, &operator), 1);
    assert_eq!(count(&client("revoked").cert_der, &operator), 1);
    assert_eq!(count(&pki().untrusted_client.cert_der, &operator), 1);

    let viewer = role_extension_der(&role_extension_value("viewer"));
    assert_eq!(count(&client("viewer").cert_der, &viewer), 1);

    // Both, operator first.
    let two = &client("two-roles").cert_der;
    let at = |needle: &[u8]| two.windows(needle.len()).position(|w| w == needle);
    let first = at(&operator).expect("operator extension");
    let second = at(&viewer).expect("viewer extension");
    assert!(first < second);

    let mut octet = vec![0x04, 0x08];
    octet.extend_from_slice(b"operator");
    assert_eq!(
        count(
            &client("octet-string-role").cert_der,
            &role_extension_der(&octet)
        ),
        1
    );
    let mut printable = vec![0x13, 0x08];
    printable.extend_from_slice(b"operator");
    assert_eq!(
        count(
            &client("printable-string-role").cert_der,
            &role_extension_der(&printable)
        ),
        1
    );
}

#[test]
fn chains_are_leaf_first_and_end_at_their_root() {
    let pki = pki();
    assert_eq!(pki.ca.chain_der, std::slice::from_ref(&pki.ca.cert_der));
    assert_eq!(
        pki.intermediate.chain_der,
        [pki.intermediate.cert_der.clone(), pki.ca.cert_der.clone()]
    );
    let trusted = pki.clients.iter().chain([&pki.server]);
    for leaf in trusted {
        assert_eq!(
            leaf.chain_der,
            [
                leaf.cert_der.clone(),
                pki.intermediate.cert_der.clone(),
                pki.ca.cert_der.clone()
            ],
            "{}",
            leaf.name
        );
        assert_eq!(
            leaf.chain_pem,
            format!(
                "{}{}{}",
                leaf.cert_pem, pki.intermediate.cert_pem, pki.ca.cert_pem
            )
        );
    }
    assert_eq!(
        pki.untrusted_client.chain_der,
        [
            pki.untrusted_client.cert_der.clone(),
            pki.untrusted_ca.cert_der.clone()
        ]
    );
    assert_ne!(pki.untrusted_ca.cert_der, pki.ca.cert_der);
}

#[test]
fn names_and_usages() {
    let pki = pki();
    let utf8 = |s: &str| {
        let mut der = vec![0x0C, u8::try_from(s.len()).unwrap()];
        der.extend_from_slice(s.as_bytes());
        der
    };
    let cases = [
        (&pki.ca, "mbaps test root CA", "ca"),
        (
            &pki.intermediate,
            "mbaps test intermediate CA",
            "intermediate",
        ),
        (&pki.server, "mbaps-server", "server"),
        (client("operator"), "client operator", "operator"),
        (&pki.untrusted_ca, "mbaps untrusted root CA", "untrusted-ca"),
        (&pki.untrusted_client, "client untrusted", "untrusted"),
    ];
    for (credential, cn, name) in cases {
        assert_eq!(credential.name, name);
        assert!(count(&credential.cert_der, &utf8(cn)) >= 1, "CN {cn}");
        assert!(
            count(&credential.cert_der, &utf8("mbaps test PKI")) >= 1,
            "O of {cn}"
        );
    }
    // Issuer and subject of the intermediate both name a CA: root then itself.
    assert_eq!(
        count(&pki.intermediate.cert_der, &utf8("mbaps test root CA")),
        1
    );
    assert_eq!(
        count(
            &client("operator").cert_der,
            &utf8("mbaps test intermediate CA")
        ),
        1
    );

    assert_eq!(count(&pki.server.cert_der, &SERVER_AUTH_DER), 1);
    assert_eq!(count(&pki.server.cert_der, &CLIENT_AUTH_DER), 0);
    for c in &pki.clients {
        assert_eq!(count(&c.cert_der, &CLIENT_AUTH_DER), 1, "{}", c.name);
        assert_eq!(count(&c.cert_der, &SERVER_AUTH_DER), 0, "{}", c.name);
    }
    // SANs: dNSName [2] "localhost", "mbaps-server"; iPAddress [7] 127.0.0.1, ::1.
    let server = &pki.server.cert_der;
    assert_eq!(count(server, b"\x82\x09localhost"), 1);
    assert_eq!(count(server, b"\x82\x0Cmbaps-server"), 1);
    assert_eq!(count(server, &[0x87, 0x04, 127, 0, 0, 1]), 1);
    let mut v6 = vec![0x87, 0x10];
    v6.extend_from_slice(&[0; 15]);
    v6.push(1);
    assert_eq!(count(server, &v6), 1);
    // ecdsa-with-SHA256 1.2.840.10045.4.3.2, and P-256 keys (prime256v1 1.2.840.10045.3.1.7).
    let ecdsa_sha256 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    let p256 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    for c in [&pki.ca, &pki.intermediate, &pki.server, client("viewer")] {
        assert_eq!(count(&c.cert_der, &ecdsa_sha256), 2, "{}", c.name);
        assert_eq!(count(&c.cert_der, &p256), 1, "{}", c.name);
        assert!(
            c.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{}",
            c.name
        );
        assert_eq!(c.key_der[0], 0x30, "{}", c.name);
    }
}

#[test]
fn validity_windows() {
    let pki = pki();
    let current = [utc_time("250614150640Z"), utc_time("260615150640Z")].concat();
    assert_eq!(count(&client("operator").cert_der, &current), 1);
    assert_eq!(count(&pki.server.cert_der, &current), 1);
    let expired = [utc_time("250516150640Z"), utc_time("250614150640Z")].concat();
    assert_eq!(count(&client("expired").cert_der, &expired), 1);
    let not_yet = [utc_time("250715150640Z"), utc_time("260615150640Z")].concat();
    assert_eq!(count(&client("not-yet-valid").cert_der, &not_yet), 1);
    let ca = [utc_time("250614150640Z"), utc_time("350613150640Z")].concat();
    assert_eq!(count(&pki.ca.cert_der, &ca), 1);
    assert_eq!(count(&pki.intermediate.cert_der, &ca), 1);
}

#[test]
fn crl_revokes_exactly_the_revoked_client() {
    let pki = pki();
    let revoked = serial_tlv(&client("revoked").cert_der);
    assert_eq!(count(&pki.crl_der, &revoked), 1);
    for c in pki.clients.iter().filter(|c| c.name != "revoked") {
        assert_eq!(
            count(&pki.crl_der, &serial_tlv(&c.cert_der)),
            0,
            "{}",
            c.name
        );
    }
    // Serials are unique across the PKI.
    let mut serials: Vec<Vec<u8>> = pki
        .clients
        .iter()
        .chain([
            &pki.ca,
            &pki.intermediate,
            &pki.server,
            &pki.untrusted_ca,
            &pki.untrusted_client,
        ])
        .map(|c| serial_tlv(&c.cert_der))
        .collect();
    let all = serials.len();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), all);
    assert!(pki.crl_pem.starts_with("-----BEGIN X509 CRL-----"));
    // Issued by the intermediate.
    let issuer = b"\x0C\x1Ambaps test intermediate CA";
    assert_eq!(count(&pki.crl_der, issuer), 1);
}

#[test]
fn issue_client_makes_fresh_certificates() {
    let pki = pki();
    let engineer = pki
        .issue_client(
            "engineer",
            RoleExtension::Role("engineer".into()),
            Validity::Current,
        )
        .unwrap();
    assert_eq!(engineer.name, "engineer");
    assert_eq!(count(&engineer.cert_der, b"\x0C\x0Fclient engineer"), 1);
    assert_eq!(
        count(
            &engineer.cert_der,
            &role_extension_der(&role_extension_value("engineer"))
        ),
        1
    );
    assert_eq!(engineer.chain_der.len(), 3);
    assert_eq!(engineer.chain_der[1], pki.intermediate.cert_der);
    assert_eq!(engineer.chain_der[2], pki.ca.cert_der);

    let raw = pki
        .issue_client(
            "raw",
            RoleExtension::Raw(vec![0x0C, 0x02, 0xC3, 0x28]),
            Validity::Expired,
        )
        .unwrap();
    assert_eq!(
        count(
            &raw.cert_der,
            &role_extension_der(&[0x0C, 0x02, 0xC3, 0x28])
        ),
        1
    );

    let again = pki
        .issue_client("engineer", RoleExtension::None, Validity::NotYetValid)
        .unwrap();
    assert_eq!(count(&again.cert_der, &ROLE_OID_DER), 0);
    assert_ne!(serial_tlv(&again.cert_der), serial_tlv(&engineer.cert_der));
    assert_ne!(again.key_der, engineer.key_der);
    assert_eq!(count(&pki.crl_der, &serial_tlv(&again.cert_der)), 0);
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-test-pki-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn write_to_writes_every_listed_file() {
    let pki = pki();
    let dir = scratch_dir("write").join("nested");
    let written = pki.write_to(&dir).unwrap();
    let mut expected: Vec<String> = ["ca.pem", "ca.der", "intermediate.pem", "server.pem"]
        .into_iter()
        .chain(["server-chain.pem", "server.key"])
        .map(str::to_owned)
        .collect();
    for name in TestPki::STANDARD_CLIENTS.iter().chain(&["untrusted"]) {
        if *name == "untrusted" {
            expected.push("untrusted-ca.pem".to_owned());
        }
        expected.push(format!("client-{name}.pem"));
        expected.push(format!("client-{name}-chain.pem"));
        expected.push(format!("client-{name}.key"));
    }
    expected.extend(["crl.pem", "crl.der", "ca-crl.pem", "README.txt"].map(str::to_owned));
    let names: Vec<String> = written
        .iter()
        .map(|p| {
            assert_eq!(p.parent(), Some(dir.as_path()));
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(names, expected);
    assert_eq!(names.len(), 6 + 9 * 3 + 1 + 3 + 4);

    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_eq!(read("ca.der"), pki.ca.cert_der);
    assert_eq!(read("ca.pem"), pki.ca.cert_pem.as_bytes());
    assert_eq!(read("server.pem"), pki.server.cert_pem.as_bytes());
    assert_eq!(read("server-chain.pem"), pki.server.chain_pem.as_bytes());
    assert_eq!(read("server.key"), pki.server.key_pem.as_bytes());
    assert_eq!(
        read("client-two-roles.pem"),
        client("two-roles").cert_pem.as_bytes()
    );
    assert_eq!(
        read("client-untrusted.key"),
        pki.untrusted_client.key_pem.as_bytes()
    );
    assert_eq!(read("crl.der"), pki.crl_der);
    assert_eq!(read("crl.pem"), pki.crl_pem.as_bytes());

    let readme = String::from_utf8(read("README.txt")).unwrap();
    for name in &names {
        let line = readme
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("README.txt does not list {name}"));
        let about = pki.describe(name).unwrap();
        if name != "README.txt" {
            assert!(line.ends_with(&about), "{line:?} vs {about:?}");
        }
    }
    assert!(pki.describe("nothing.pem").is_none());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in &names {
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            if name.ends_with(".key") {
                assert_eq!(mode, 0o600, "{name}");
            } else {
                assert_ne!(mode & 0o044, 0, "{name} should stay readable: {mode:o}");
            }
        }
        // Rewriting over a world-readable key tightens it again.
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        pki.write_to(&dir).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn write_to_errors_name_the_path() {
    let dir = scratch_dir("error");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let target = file.join("pki");
    let err = pki().write_to(&target).unwrap_err();
    assert!(matches!(err, PkiError::CreateDir { ref path, .. } if *path == target));
    assert!(
        err.to_string().contains(&target.display().to_string()),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keys_differ_between_generations() {
    let other = TestPki::generate(now()).unwrap();
    assert_ne!(other.ca.key_der, pki().ca.key_der);
    assert_ne!(other.ca.cert_der, pki().ca.cert_der);
}

#[test]
fn dates_before_the_epoch_and_far_future_are_handled() {
    let before = UNIX_EPOCH - Duration::from_secs(86_400 * 365);
    assert!(TestPki::generate(before).is_ok());
    let far = UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 86_400);
    assert!(matches!(
        TestPki::generate(far),
        Err(PkiError::TimeOutOfRange { .. })
    ));
}
