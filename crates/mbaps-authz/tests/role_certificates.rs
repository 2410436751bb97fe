//! The role of real certificates, as rustls would hand them over: every
//! client of the test PKI gives exactly the role, or exactly the error, the
//! specification calls for (R-20..R-23, R-65).

use std::time::{Duration, UNIX_EPOCH};

use mbaps_authz::{Role, RoleError, role_from_certificate};
use mbaps_test_pki::{RoleExtension, TestPki, Validity};

fn pki() -> TestPki {
    // A fixed instant: certificate checks never depend on the clock here.
    TestPki::generate(UNIX_EPOCH + Duration::from_secs(1_800_000_000)).unwrap()
}

fn role_of(pki: &TestPki, client: &str) -> Result<Option<Role>, RoleError> {
    role_from_certificate(&pki.client(client).unwrap().cert_der)
}

#[test]
fn each_standard_client_gives_its_role_or_its_error() {
    let pki = pki();
    let role = |name: &str| Ok(Some(Role::new(name).unwrap()));
    assert_eq!(role_of(&pki, "operator"), role("operator"));
    assert_eq!(role_of(&pki, "viewer"), role("viewer"));
    assert_eq!(role_of(&pki, "no-role"), Ok(None));
    assert_eq!(
        role_of(&pki, "two-roles"),
        Err(RoleError::DuplicateRoleExtension { count: 2 })
    );
    assert_eq!(
        role_of(&pki, "octet-string-role"),
        Err(RoleError::WrongType {
            tag: 0x04,
            name: "OCTET STRING"
        })
    );
    assert_eq!(
        role_of(&pki, "printable-string-role"),
        Err(RoleError::WrongType {
            tag: 0x13,
            name: "PrintableString"
        })
    );
    // Validity and revocation are the TLS layer's to check; the role is there.
    for client in ["expired", "not-yet-valid", "revoked"] {
        assert_eq!(role_of(&pki, client), role("operator"), "{client}");
    }
}

#[test]
fn malformed_role_values_in_real_certificates_are_refused_exactly() {
    let pki = pki();
    let cases: Vec<(Vec<u8>, RoleError)> = vec![
        (
            vec![0x0C, 0x02, b'o', b'p', 0x00],
            RoleError::TrailingBytes { count: 1 },
        ),
        (
            vec![0x0C, 0x02, b'o', 0xFF],
            RoleError::InvalidUtf8 { valid_up_to: 1 },
        ),
        (vec![0x0C, 0x00], RoleError::Empty),
        (
            vec![0x0C, 0x03, b'a', 0x07, b'b'],
            RoleError::ControlCharacter {
                offset: 1,
                character: '\u{7}',
            },
        ),
        (
            vec![0x16, 0x02, b'o', b'p'],
            RoleError::WrongType {
                tag: 0x16,
                name: "IA5String",
            },
        ),
    ];
    for (value, expected) in cases {
        let client = pki
            .issue_client("raw", RoleExtension::Raw(value.clone()), Validity::Current)
            .unwrap();
        assert_eq!(
            role_from_certificate(&client.cert_der),
            Err(expected),
            "{value:02X?}"
        );
    }
    let long = "x".repeat(mbaps_authz::MAX_ROLE_LEN + 1);
    let client = pki
        .issue_client("long", RoleExtension::Role(long), Validity::Current)
        .unwrap();
    assert_eq!(
        role_from_certificate(&client.cert_der),
        Err(RoleError::TooLong { len: 257, max: 256 })
    );
    let truncated = pki
        .issue_client(
            "truncated",
            RoleExtension::Raw(vec![0x0C, 0x09, b'o']),
            Validity::Current,
        )
        .unwrap();
    assert!(matches!(
        role_from_certificate(&truncated.cert_der),
        Err(RoleError::Malformed(_))
    ));
}

#[test]
fn the_role_is_the_whole_string_compared_exactly() {
    let pki = pki();
    let client = pki
        .issue_client(
            "spaced",
            RoleExtension::Role("Plant Operator Ünit 3".into()),
            Validity::Current,
        )
        .unwrap();
    let role = role_from_certificate(&client.cert_der).unwrap().unwrap();
    assert_eq!(role.as_str(), "Plant Operator Ünit 3");
    assert_ne!(role, Role::new("plant operator ünit 3").unwrap());
    assert_ne!(role, Role::new("Plant Operator").unwrap());
}

#[test]
fn the_server_certificate_and_the_ca_carry_no_role_and_garbage_is_an_error() {
    let pki = pki();
    assert_eq!(role_from_certificate(&pki.server.cert_der), Ok(None));
    assert_eq!(role_from_certificate(&pki.ca.cert_der), Ok(None));
    assert!(matches!(
        role_from_certificate(b"not a certificate"),
        Err(RoleError::Certificate(_))
    ));
    let der = &pki.client("operator").unwrap().cert_der;
    for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
        assert!(matches!(
            role_from_certificate(&der[..cut]),
            Err(RoleError::Certificate(_))
        ));
    }
}

#[test]
fn no_real_role_takes_the_name_the_policy_gives_the_null_role() {
    let error = mbaps_authz::Role::new(mbaps_authz::NULL_ROLE_NAME).unwrap_err();
    assert_eq!(error, mbaps_authz::RoleError::NamedAsTheNullRole);
    assert_eq!(error.requirement(), "R-21");
    assert!(error.to_string().contains("[no_role]"), "{error}");
    // A policy file that names a real role so is refused, placed.
    let text = "[roles.\"[no_role]\"]\nallow = []\n";
    let refused = mbaps_authz::Policy::from_toml(text)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("NULL role"), "{refused}");
}
