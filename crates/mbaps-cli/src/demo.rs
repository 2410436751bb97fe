//! `mbaps demo`: a secure server and clients on generated certificates,
//! showing allowed and denied requests. Runs on 127.0.0.1 only and cleans up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use mbaps_authz::Policy;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{
    ClientConfig, ServerConfig, ServerEvent, Verdict, load_certificates, load_private_key,
};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_std::Calls;
use mbaps_std::{ClientError, SessionLog, StdClient, StdServer};
use mbaps_test_pki::TestPki;

/// The example policy, as shipped in examples/policy.toml.
const POLICY: &str = include_str!("../../../examples/policy.toml");

/// Run a Modbus/TCP Security server and clients on 127.0.0.1 and show what
/// the role-based policy allows and denies.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the generated certificates instead of deleting them.
    #[arg(long)]
    keep: bool,
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn temp_dir() -> PathBuf {
    let nanos = now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("mbaps-demo-{}-{nanos}", std::process::id()))
}

fn client_config(dir: &Path, name: &str) -> Result<ClientConfig> {
    Ok(ClientConfig::builder(
        load_certificates(&dir.join("ca.pem"))?,
        load_certificates(&dir.join(format!("client-{name}-chain.pem")))?,
        load_private_key(&dir.join(format!("client-{name}.key")))?,
    )
    .build()?)
}

struct Outcome {
    expected_allowed: bool,
    allowed: bool,
}

fn show(
    outcomes: &mut Vec<Outcome>,
    who: &str,
    what: &str,
    expected_allowed: bool,
    result: Result<String, ClientError>,
) {
    let (allowed, text) = match result {
        Ok(detail) => (true, format!("allowed{detail}")),
        Err(ClientError::Exception(code)) => (false, format!("denied: exception {code}")),
        Err(err) => (false, format!("failed: {err}")),
    };
    let mark = if allowed == expected_allowed {
        "ok "
    } else {
        "!! "
    };
    println!("  {mark}{who:<9} {what:<44} -> {text}");
    outcomes.push(Outcome {
        expected_allowed,
        allowed,
    });
}

pub(crate) fn run(args: &DemoArgs) -> Result<bool> {
    let dir = temp_dir();
    let result = demo(&dir);
    if args.keep {
        println!("\nThe certificates are kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn demo(dir: &Path) -> Result<bool> {
    println!(
        "mbaps demo: Modbus/TCP Security (Modbus over TLS, mutual X.509 authentication, roles)\n"
    );
    let pki = TestPki::generate(now()).context("generating the demo PKI")?;
    pki.write_to(dir)?;
    println!("1. Certificates in {}:", dir.display());
    println!("   a CA, a server certificate for localhost, and clients with the roles");
    println!(
        "   \"viewer\" and \"operator\" (role extension 1.3.6.1.4.1.50316.802.1) and one with none.\n"
    );

    let policy = Policy::from_toml_named(POLICY, "examples/policy.toml")?;
    let config = ServerConfig::builder(
        load_certificates(&dir.join("ca.pem"))?,
        load_certificates(&dir.join("server-chain.pem"))?,
        load_private_key(&dir.join("server.key"))?,
        policy,
    )
    .build()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let server = StdServer::bind("127.0.0.1:0", config, RegisterMap::new(Tables::preset()))?
        .on_log(move |entry| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(entry.clone())
        })
        .spawn()?;
    let address = server.local_addr();
    println!("2. A server on {address}: TLS 1.2/1.3, client certificate required, holding");
    println!("   register n holds n. Policy (examples/policy.toml): viewer may read,");
    println!("   operator may read and write, a client without a role may do nothing.\n");

    println!("3. Requests:");
    let name = ServerName::try_from("localhost")?;
    let mut viewer = StdClient::connect(address, &client_config(dir, "viewer")?, name.clone())?;
    let mut operator = StdClient::connect(address, &client_config(dir, "operator")?, name.clone())?;
    let mut nobody = StdClient::connect(address, &client_config(dir, "no-role")?, name)?;
    let mut outcomes = Vec::new();
    let values = |v: Vec<u16>| format!(": {v:?}");
    show(
        &mut outcomes,
        "viewer",
        "read holding registers 100..=102, unit 1",
        true,
        viewer.read_holding_registers(1, 100, 3).map(values),
    );
    show(
        &mut outcomes,
        "operator",
        "write single register 100 = 1234, unit 1",
        true,
        operator
            .write_single_register(1, 100, 1234)
            .map(|()| String::new()),
    );
    show(
        &mut outcomes,
        "viewer",
        "read holding registers 100..=102, unit 1",
        true,
        viewer.read_holding_registers(1, 100, 3).map(values),
    );
    show(
        &mut outcomes,
        "viewer",
        "write single register 100 = 7, unit 1",
        false,
        viewer
            .write_single_register(1, 100, 7)
            .map(|()| String::new()),
    );
    show(
        &mut outcomes,
        "no role",
        "read holding registers 0..=0, unit 1",
        false,
        nobody.read_holding_registers(1, 0, 1).map(values),
    );
    show(
        &mut outcomes,
        "viewer",
        "read holding registers 100..=100 (still up)",
        true,
        viewer.read_holding_registers(1, 100, 1).map(values),
    );
    for client in [viewer, operator, nobody] {
        client.close()?;
    }

    // The server's log arrives from its session threads: wait for all
    // three sessions to end.
    let deadline = Instant::now() + Duration::from_secs(3);
    let closed = |log: &[SessionLog]| {
        log.iter()
            .filter(|e| {
                matches!(
                    e,
                    SessionLog::Event {
                        event: ServerEvent::Closed(_),
                        ..
                    }
                )
            })
            .count()
    };
    while closed(&log.lock().unwrap_or_else(|p| p.into_inner())) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    println!("\n4. What the server saw:");
    for entry in log.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        match entry {
            SessionLog::Event {
                peer,
                event: ServerEvent::Authenticated { role, handshake },
            } => {
                let role = role.as_ref().map_or("no role (the NULL role)".into(), |r| {
                    format!("role {:?}", r.as_str())
                });
                let tls = handshake.map_or(String::new(), |h| {
                    format!(" over {:?}, {:?}", h.version, h.cipher_suite)
                });
                println!("   {peer} authenticated: {role}{tls}");
            }
            SessionLog::Event {
                peer,
                event: ServerEvent::Answered(record),
            } => {
                if let Verdict::Denied(denial) = &record.verdict {
                    println!(
                        "   {peer} denied transaction {}: {denial}; answered exception 0x01",
                        record.header.transaction_id
                    );
                }
            }
            SessionLog::Event {
                peer,
                event: ServerEvent::Closed(reason),
            } => {
                println!("   {peer} closed ({}): {reason}", reason.label());
            }
            SessionLog::Failed { peer, error } => println!("   {peer} failed: {error}"),
            _ => {}
        }
    }
    let as_expected = outcomes.iter().all(|o| o.allowed == o.expected_allowed);
    let allowed = outcomes.iter().filter(|o| o.allowed).count();
    println!(
        "\n{} allowed, {} denied{}",
        allowed,
        outcomes.len() - allowed,
        if as_expected {
            ", as the policy says."
        } else {
            ": NOT as the policy says."
        }
    );
    Ok(as_expected)
}
