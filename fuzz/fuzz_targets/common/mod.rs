//! Configurations shared by the session fuzz targets, built once.
#![allow(dead_code)]

pub mod oracle;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mbaps_authz::{Policy, Role};
use mbaps_session::rustls::pki_types::{CertificateDer, UnixTime};
use mbaps_session::rustls::time_provider::TimeProvider;
use mbaps_session::{ClientConfig, ServerConfig, parse_private_key};
use mbaps_test_pki::{Credential, TestPki};

const PKI_TIME_SECS: u64 = 1_800_000_000;

#[derive(Debug)]
struct FixedTime;

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            PKI_TIME_SECS,
        )))
    }
}

pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(UNIX_EPOCH + Duration::from_secs(PKI_TIME_SECS)).unwrap())
}

fn chain(c: &Credential) -> Vec<CertificateDer<'static>> {
    c.chain_der
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect()
}

pub fn ca() -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(pki().ca.cert_der.clone())]
}

/// The policy the server targets authorize against: an operator that may do
/// anything on most units, a viewer with a few ranges on a few units, and
/// nothing for the NULL role, so that every kind of denial happens.
pub const POLICY: &str = r#"
[roles.operator]
allow = [{ functions = ["read", "write", "diagnostic"], units = "0-200" }]

[roles.viewer]
allow = [
    { functions = ["read-holding-registers", "read-coils"], units = "1-10", holding_registers = "0-99", coils = "0-15" },
    { functions = ["read-input-registers"], input_registers = "100-199" },
    { functions = ["read-device-identification"] },
]
"#;

pub fn policy() -> &'static Policy {
    static POLICY_: OnceLock<Policy> = OnceLock::new();
    POLICY_.get_or_init(|| Policy::from_toml(POLICY).unwrap())
}

/// The roles the server targets draw from.
pub fn roles() -> &'static [Option<Role>; 3] {
    static ROLES: OnceLock<[Option<Role>; 3]> = OnceLock::new();
    ROLES.get_or_init(|| {
        [
            Some(Role::new("operator").unwrap()),
            Some(Role::new("viewer").unwrap()),
            None,
        ]
    })
}

/// Plain Modbus/TCP servers, one per role of [`roles`], with a window of 4.
pub fn plain_server_config(role: usize) -> &'static ServerConfig {
    static CONFIGS: OnceLock<Vec<ServerConfig>> = OnceLock::new();
    &CONFIGS.get_or_init(|| {
        roles()
            .iter()
            .map(|role| {
                ServerConfig::plain(policy().clone(), role.clone())
                    .max_outstanding(4)
                    .build()
                    .unwrap()
            })
            .collect()
    })[role]
}

pub fn server_config() -> &'static ServerConfig {
    static CONFIG: OnceLock<ServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let server = &pki().server;
        let policy = policy().clone();
        ServerConfig::builder(
            ca(),
            chain(server),
            parse_private_key(server.key_pem.as_bytes()).unwrap(),
            policy,
        )
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
        ClientConfig::builder(
            ca(),
            chain(client),
            parse_private_key(client.key_pem.as_bytes()).unwrap(),
        )
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
