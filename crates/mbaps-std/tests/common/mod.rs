//! What the loopback tests share: a PKI valid now, the example policy, and
//! configurations built from them.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;

use mbaps_authz::Policy;
use mbaps_session::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use mbaps_session::{ClientConfig, ServerConfig, parse_private_key};
use mbaps_std::{ClientError, StdClient};
use mbaps_test_pki::{Credential, TestPki};

/// A PKI whose certificates are valid now (the servers use the system clock).
#[allow(clippy::disallowed_methods)] // the tests issue certificates valid now
pub fn pki() -> TestPki {
    TestPki::generate(std::time::SystemTime::now()).unwrap()
}

pub fn chain(credential: &Credential) -> Vec<CertificateDer<'static>> {
    credential
        .chain_der
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect()
}

pub fn key(credential: &Credential) -> PrivateKeyDer<'static> {
    parse_private_key(credential.key_pem.as_bytes()).unwrap()
}

pub fn ca(pki: &TestPki) -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(pki.ca.cert_der.clone())]
}

/// The server of `pki` with the example policy.
pub fn server_config(pki: &TestPki) -> ServerConfig {
    let policy =
        Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml"))
            .unwrap();
    ServerConfig::builder(ca(pki), chain(&pki.server), key(&pki.server), policy)
        .build()
        .unwrap()
}

/// A client with `credential`, trusting `pki`'s CA.
pub fn client_config(pki: &TestPki, credential: &Credential) -> ClientConfig {
    ClientConfig::builder(ca(pki), chain(credential), key(credential))
        .build()
        .unwrap()
}

pub fn connect(address: SocketAddr, config: &ClientConfig) -> Result<StdClient, ClientError> {
    StdClient::connect(address, config, ServerName::try_from("localhost").unwrap())
}
