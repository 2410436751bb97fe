//! Configurations shared by the session fuzz targets, built once.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mbaps_authz::Policy;
use mbaps_session::rustls::pki_types::{CertificateDer, UnixTime};
use mbaps_session::rustls::time_provider::TimeProvider;
use mbaps_session::{ClientConfig, ServerConfig, parse_private_key};
use mbaps_test_pki::{Credential, TestPki};

const PKI_TIME_SECS: u64 = 1_800_000_000;

#[derive(Debug)]
struct FixedTime;

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(PKI_TIME_SECS)))
    }
}

pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(UNIX_EPOCH + Duration::from_secs(PKI_TIME_SECS)).unwrap())
}

fn chain(c: &Credential) -> Vec<CertificateDer<'static>> {
    c.chain_der.iter().map(|d| CertificateDer::from(d.clone())).collect()
}

pub fn ca() -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(pki().ca.cert_der.clone())]
}

pub fn server_config() -> &'static ServerConfig {
    static CONFIG: OnceLock<ServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let server = &pki().server;
        let policy = Policy::from_toml(
            "[roles.operator]\nallow = [{ functions = [\"read\", \"write\", \"diagnostic\"], units = \"0-200\" }]\n",
        )
        .unwrap();
        ServerConfig::builder(ca(), chain(server), parse_private_key(server.key_pem.as_bytes()).unwrap(), policy)
            .time_provider(Arc::new(FixedTime))
            .max_outstanding(4)
            .build()
            .unwrap()
    })
}

pub fn client_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let client = pki().client("operator").unwrap();
        ClientConfig::builder(ca(), chain(client), parse_private_key(client.key_pem.as_bytes()).unwrap())
            .time_provider(Arc::new(FixedTime))
            .resumption(false)
            .build()
            .unwrap()
    })
}

/// The client's rustls configuration, for driving a server with raw plaintext.
pub fn raw_client_tls() -> Arc<mbaps_session::rustls::ClientConfig> {
    Arc::new(client_config().tls().expect("a TLS configuration").clone())
}

pub fn now() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    #[allow(clippy::disallowed_methods)]
    *EPOCH.get_or_init(Instant::now)
}
