//! Certificates and configurations for the benchmarks.

use anyhow::Result;
use mbaps_authz::{Policy, Role};
use mbaps_session::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use mbaps_session::{ClientConfig, ServerConfig, TlsVersions, parse_private_key};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_test_pki::{Credential, TestPki};
use mbaps_tokio::TokioServer;

/// Everyone may read: the benchmark measures transport, not policy.
pub(crate) const POLICY: &str = r#"
[roles.operator]
allow = [{ functions = ["read"] }]

[roles.viewer]
allow = [{ functions = ["read"] }]
"#;

/// A PKI valid now.
pub(crate) struct Pki {
    pub(crate) pki: TestPki,
}

impl Pki {
    pub(crate) fn generate() -> Result<Pki> {
        Ok(Pki {
            pki: TestPki::generate(std::time::SystemTime::now())?,
        })
    }

    fn chain(credential: &Credential) -> Vec<CertificateDer<'static>> {
        credential
            .chain_der
            .iter()
            .map(|d| CertificateDer::from(d.clone()))
            .collect()
    }

    fn key(credential: &Credential) -> Result<PrivateKeyDer<'static>> {
        Ok(parse_private_key(credential.key_pem.as_bytes())?)
    }

    fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.pki.ca.cert_der.clone())]
    }

    pub(crate) fn policy() -> Result<Policy> {
        Ok(Policy::from_toml(POLICY)?)
    }

    /// The TLS server, `versions` only (`None`: plain Modbus/TCP with the
    /// operator role).
    pub(crate) fn server(&self, versions: Option<TlsVersions>) -> Result<ServerConfig> {
        Ok(match versions {
            Some(versions) => ServerConfig::builder(
                self.roots(),
                Pki::chain(&self.pki.server),
                Pki::key(&self.pki.server)?,
                Pki::policy()?,
            )
            .versions(versions)
            .session_cache_size(4096)
            .build()?,
            None => ServerConfig::plain(Pki::policy()?, Some(Role::new("operator")?)).build()?,
        })
    }

    /// A `TokioServer` on a free port of 127.0.0.1 with [`Pki::server`]'s
    /// configuration, answering from the preset register map; not started.
    pub(crate) async fn bind_server(&self, versions: Option<TlsVersions>) -> Result<TokioServer> {
        let map = RegisterMap::new(Tables::preset());
        Ok(TokioServer::bind("127.0.0.1:0", self.server(versions)?, map).await?)
    }

    /// The operator client (`None`: plain Modbus/TCP).
    pub(crate) fn client(
        &self,
        versions: Option<TlsVersions>,
        resumption: bool,
    ) -> Result<ClientConfig> {
        self.client_as("operator", versions, resumption)
    }

    /// The client with `role` of the test PKI (`None`: plain Modbus/TCP).
    pub(crate) fn client_as(
        &self,
        role: &str,
        versions: Option<TlsVersions>,
        resumption: bool,
    ) -> Result<ClientConfig> {
        let credential = self
            .pki
            .client(role)
            .ok_or_else(|| anyhow::anyhow!("the test PKI has no {role}"))?;
        Ok(match versions {
            Some(versions) => {
                ClientConfig::builder(self.roots(), Pki::chain(credential), Pki::key(credential)?)
                    .versions(versions)
                    .resumption(resumption)
                    .build()?
            }
            None => ClientConfig::plain().build()?,
        })
    }
}
