//! Loading credentials from files: PEM and DER work, and every wrong file
//! is an error that names the file and what is wrong with it.

mod common;

use std::path::PathBuf;

use common::pki;
use mbaps_session::{
    ConfigError, LoadProblem, ServerConfig, load_certificates, load_crls, load_private_key,
};

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file(name: &str, contents: &[u8]) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn pem_and_der_certificates_keys_and_crls_load() {
    let server = &pki().server;
    let chain = load_certificates(&file("chain.pem", server.chain_pem.as_bytes())).unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0].as_ref(), &server.cert_der[..]);
    let der = load_certificates(&file("leaf.der", &server.cert_der)).unwrap();
    assert_eq!(der.len(), 1);
    load_private_key(&file("key.pem", server.key_pem.as_bytes())).unwrap();
    load_private_key(&file("key.der", &server.key_der)).unwrap();
    assert_eq!(
        load_crls(&file("crl.pem", pki().crl_pem.as_bytes()))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let err = load_certificates(&dir().join("absent.pem")).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::Io(_)));
    assert!(
        err.to_string().contains("absent.pem: cannot read it:"),
        "{err}"
    );
}

#[test]
fn a_key_file_given_as_certificates_says_what_it_holds() {
    let path = file("swapped.pem", pki().server.key_pem.as_bytes());
    let err = load_certificates(&path).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("swapped.pem: it holds no certificate (found: PKCS#8 private key)"),
        "{err}"
    );
    let cert_as_key = file("cert-as-key.pem", pki().server.cert_pem.as_bytes());
    let err = load_private_key(&cert_as_key).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("it holds no private key (found: certificate)"),
        "{err}"
    );
}

#[test]
fn an_encrypted_key_is_refused_with_advice() {
    let path = file(
        "encrypted.pem",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let err = load_private_key(&path).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::EncryptedKey));
    assert!(err.to_string().contains("encrypted; decrypt it first"));
}

#[test]
fn two_keys_in_one_file_are_refused() {
    let both = format!(
        "{}{}",
        pki().server.key_pem,
        pki().client("operator").unwrap().key_pem
    );
    let err = load_private_key(&file("two-keys.pem", both.as_bytes())).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::SeveralKeys(2)));
}

#[test]
fn text_that_is_neither_pem_nor_der_is_refused() {
    let err = load_certificates(&file("notes.txt", b"hello")).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("it holds no certificate (no PEM section, and not DER either)")
    );
    let err = load_crls(&file("not-a-crl.pem", pki().server.cert_pem.as_bytes())).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::NoCrl { .. }));
}

#[test]
fn an_empty_chain_and_a_key_that_does_not_fit_are_configuration_errors() {
    let server = &pki().server;
    let key = load_private_key(&file("k.pem", server.key_pem.as_bytes())).unwrap();
    let err = ServerConfig::builder(common::ca(), vec![], key, common::example_policy())
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::EmptyChain));
    let other_key = load_private_key(&file(
        "other.pem",
        pki().client("viewer").unwrap().key_pem.as_bytes(),
    ))
    .unwrap();
    let err = ServerConfig::builder(
        common::ca(),
        common::chain(server),
        other_key,
        common::example_policy(),
    )
    .build()
    .unwrap_err();
    assert!(matches!(err, ConfigError::Key(_)), "{err}");
    let key = load_private_key(&file("k2.pem", server.key_pem.as_bytes())).unwrap();
    let err = ServerConfig::builder(vec![], common::chain(server), key, common::example_policy())
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::NoRoots));
}
