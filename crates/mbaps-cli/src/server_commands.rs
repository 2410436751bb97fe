//! `mbaps server` (a simulator on a register map) and `mbaps certs` (a PKI
//! for trying things out).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_authz::Role;
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{Handler, Reply, RequestContext};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_test_pki::{RoleExtension, TestPki, Validity};

use crate::front::FrontArgs;

/// Run a Modbus/TCP Security server simulator on a register map.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    front: FrontArgs,
    /// Answer only these unit ids (repeatable); others get exception 0x0B.
    #[arg(long)]
    unit: Vec<u8>,
}

/// Lets the register map answer, and logs each request at debug level
/// (`mbaps server -v`): at thousands of requests a second a line each
/// would bury the denials and cost more than the answers.
struct LoggingHandler(RegisterMap);

impl Handler for LoggingHandler {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        let result = self.0.handle(context, request, reply);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let role = context
                .role
                .map_or("<no role>".into(), |r| format!("{:?}", r.as_str()));
            let outcome = match result {
                Ok(()) => "ok".to_owned(),
                Err(code) => format!("exception {code}"),
            };
            tracing::debug!(
                "request role={role} unit={} txn={} {} -> {outcome}",
                context.unit_id,
                context.transaction_id,
                request.function()
            );
        }
        result
    }
}

pub(crate) fn server(args: &ServerArgs) -> Result<bool> {
    let mut map = RegisterMap::new(Tables::preset());
    if !args.unit.is_empty() {
        map = map.only_units(&args.unit);
    }
    let front = args.front.resolve()?;
    if !front.routes.is_empty() {
        anyhow::bail!("the configuration file has [[route]] entries: routes are for mbaps gateway");
    }
    front.run("", |_| Ok(LoggingHandler(map)))
}

/// Make a CA, a server certificate and client certificates with roles.
#[derive(Args, Debug)]
pub(crate) struct CertsArgs {
    /// The folder to write to (created if missing).
    #[arg(long, default_value = "mbaps-certs")]
    out: PathBuf,
    /// A client role to issue a certificate for (repeatable; default:
    /// operator and viewer).
    #[arg(long)]
    role: Vec<String>,
}

pub(crate) fn certs(args: &CertsArgs) -> Result<bool> {
    let pki = TestPki::generate(std::time::SystemTime::now()).context("generating certificates")?;
    let mut written = pki.write_to(&args.out)?;
    let mut described: Vec<(String, String)> = Vec::new();
    for role in &args.role {
        Role::new(role).with_context(|| format!("--role {role:?}"))?;
        let client =
            pki.issue_client(role, RoleExtension::Role(role.clone()), Validity::Current)?;
        let file = |suffix: &str| args.out.join(format!("client-role-{role}{suffix}"));
        for (path, contents) in [
            (file(".pem"), &client.cert_pem),
            (file("-chain.pem"), &client.chain_pem),
            (file(".key"), &client.key_pem),
        ] {
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            described.push((name, format!("client with the role {role:?}")));
            written.push(path);
        }
    }
    println!("written to {}:", args.out.display());
    for path in &written {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = described
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
            .or_else(|| pki.describe(&name))
            .unwrap_or_default();
        println!("  {name:<36} {what}");
    }
    println!(
        "\nTry: mbaps server --cert {0}/server-chain.pem --key {0}/server.key --ca {0}/ca.pem --policy examples/policy.toml",
        args.out.display()
    );
    println!(
        "     mbaps read holding 0 10 --cert {0}/client-viewer-chain.pem --key {0}/client-viewer.key --ca {0}/ca.pem --server-name localhost",
        args.out.display()
    );
    Ok(true)
}
