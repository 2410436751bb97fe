//! `mbaps pki`: a small site's certificate authority, and `mbaps certs`,
//! its one-shot quick start. Both run on `mbaps-pki`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mbaps_authz::Role;
use mbaps_pki::{
    CA_DAYS, CRL_DAYS, CertificateAuthority, CertificateReport, ChainReport, Issued, KeyType,
    LEAF_DAYS, RevocationReason, RoleReport, SigningRequest, Subject, Usage,
};

/// Run a certificate authority for a site: servers, clients with roles,
/// signing requests, revocation.
#[derive(Args, Debug)]
pub(crate) struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// Create a CA in DIR: ca.pem (give it to every server and client),
    /// ca.key (mode 0600, never printed), the records pki.toml and an
    /// empty CRL, crl.pem.
    Init {
        /// The CA's folder (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name (its CN).
        #[arg(long, default_value = "mbaps site CA")]
        name: String,
        /// The CA's key.
        #[arg(long, default_value = "ecdsa-p256", value_parser = parse_key)]
        key: KeyType,
        /// Days the CA is valid.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
        /// Replace an existing CA (and forget what it issued).
        #[arg(long)]
        force: bool,
    },
    /// Issue a server certificate (serverAuth) NAME.pem, NAME-chain.pem
    /// and its key NAME.key in DIR.
    Server {
        /// The CA's folder.
        #[arg(long)]
        dir: PathBuf,
        /// The server's name: its CN and the stem of its files.
        #[arg(long)]
        name: String,
        /// A DNS name clients connect to (repeatable; default: NAME when
        /// no --dns or --ip is given).
        #[arg(long)]
        dns: Vec<String>,
        /// An IP address clients connect to (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// Issue a client certificate (clientAuth) carrying ROLE, or no role
    /// (the NULL role, R-23) without --role.
    Client {
        /// The CA's folder.
        #[arg(long)]
        dir: PathBuf,
        /// The client's name: its CN (unless --csr) and the stem of its files.
        #[arg(long)]
        name: String,
        /// The role, in extension 1.3.6.1.4.1.50316.802.1 as a UTF8String
        ///
        #[arg(long)]
        role: Option<String>,
        /// Sign this PKCS#10 request (PEM or DER) instead of making a key:
        /// its subject and key are kept; the role comes from --role only,
        /// and nothing else it asks for is copied.
        #[arg(long)]
        csr: Option<PathBuf>,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// Say what a certificate holds and whether a Modbus/TCP Security peer
    /// takes it: exit 1 when it would be refused.
    Show {
        /// The certificate (PEM, or DER; of a chain, the first).
        file: PathBuf,
        /// Check that it chains to this CA (PEM, one or more certificates).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// With --ca: check that this CRL (of its issuer, not expired)
        /// does not list it (repeatable).
        #[arg(long, requires = "ca")]
        crl: Vec<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Record a certificate this CA issued as revoked; `mbaps pki crl`
    /// then publishes it.
    Revoke {
        /// The CA's folder.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate (PEM or DER).
        file: PathBuf,
        /// Why (RFC 5280): unspecified, key-compromise,
        /// affiliation-changed, superseded, cessation-of-operation.
        #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
        reason: RevocationReason,
    },
    /// Publish a new CRL, DIR/crl.pem, for the servers' --crl (reload them
    /// with SIGHUP).
    Crl {
        /// The CA's folder.
        #[arg(long)]
        dir: PathBuf,
        /// Days until the CRL must be replaced.
        #[arg(long, default_value_t = CRL_DAYS)]
        days: u32,
    },
    /// List what the CA issued, and which are revoked.
    List {
        /// The CA's folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
struct LeafArgs {
    /// The new key (not with --csr).
    #[arg(long, value_parser = parse_key)]
    key: Option<KeyType>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = LEAF_DAYS)]
    days: u32,
    /// Replace existing files of this name.
    #[arg(long)]
    force: bool,
}

impl LeafArgs {
    /// Issues `name` with these options and says what was written.
    fn issue(
        &self,
        ca: &CertificateAuthority,
        name: &str,
        subject: Subject<'_>,
        usage: &Usage,
        now: SystemTime,
    ) -> Result<bool> {
        let issued = ca.issue(name, subject, usage, self.days, self.force, now)?;
        print_issued(&issued);
        Ok(true)
    }
}

fn parse_key(text: &str) -> Result<KeyType, String> {
    text.parse()
        .map_err(|err: mbaps_pki::PkiError| err.to_string())
}

fn parse_reason(text: &str) -> Result<RevocationReason, String> {
    text.parse()
        .map_err(|err: mbaps_pki::PkiError| err.to_string())
}

pub(crate) fn run(args: &PkiArgs) -> Result<bool> {
    let now = SystemTime::now();
    match &args.command {
        PkiCommand::Init {
            dir,
            name,
            key,
            days,
            force,
        } => {
            let ca = CertificateAuthority::init(dir, name, *key, *days, *force, now)?;
            println!(
                "CA {} ({}, {} days) in {}:",
                ca.subject(),
                key,
                days,
                dir.display()
            );
            println!(
                "  {:<12} the CA certificate: give it to every server and client (--ca)",
                "ca.pem"
            );
            println!(
                "  {:<12} its private key, mode 0600: keep it here, backed up",
                "ca.key"
            );
            println!("  {:<12} the records of what it issues", "pki.toml");
            println!(
                "  {:<12} the CRL, empty for now (servers' --crl)",
                "crl.pem"
            );
            Ok(true)
        }
        PkiCommand::Server {
            dir,
            name,
            dns,
            ip,
            leaf,
        } => {
            let ca = CertificateAuthority::open(dir)?;
            let mut dns = dns.clone();
            if dns.is_empty() && ip.is_empty() {
                if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
                    anyhow::bail!(
                        "--name {name:?} is not a DNS name clients could connect to: give --dns or --ip"
                    );
                }
                dns.push(name.clone());
            }
            let usage = Usage::Server {
                dns,
                ips: ip.clone(),
            };
            leaf.issue(
                &ca,
                name,
                Subject::NewKey(leaf.key.unwrap_or_default()),
                &usage,
                now,
            )
        }
        PkiCommand::Client {
            dir,
            name,
            role,
            csr,
            leaf,
        } => {
            let ca = CertificateAuthority::open(dir)?;
            let role = role
                .as_deref()
                .map(|role| Role::new(role).with_context(|| format!("--role {role:?}")))
                .transpose()?;
            let request = match csr {
                Some(path) => {
                    if leaf.key.is_some() {
                        anyhow::bail!(
                            "--key and --csr: with a request the device made its own key"
                        );
                    }
                    Some(SigningRequest::read(path)?)
                }
                None => None,
            };
            if let Some(request) = &request {
                for ignored in request.ignored() {
                    eprintln!(
                        "mbaps: note: the request asks for {ignored}: not copied (only its subject and key are)"
                    );
                }
            }
            let subject = match &request {
                Some(request) => Subject::Request(request),
                None => Subject::NewKey(leaf.key.unwrap_or_default()),
            };
            leaf.issue(&ca, name, subject, &Usage::Client { role }, now)
        }
        PkiCommand::Show {
            file,
            ca,
            crl,
            json,
        } => show(file, ca.as_deref(), crl, *json, now),
        PkiCommand::Revoke { dir, file, reason } => {
            let ca = CertificateAuthority::open(dir)?;
            let record = ca.revoke(file, *reason, now)?;
            println!(
                "revoked {} (serial {}, {}), reason {}",
                record.name,
                record.serial,
                record.subject,
                reason.name()
            );
            println!(
                "publish it: mbaps pki crl --dir {}, then reload the servers (SIGHUP)",
                dir.display()
            );
            Ok(true)
        }
        PkiCommand::Crl { dir, days } => {
            let ca = CertificateAuthority::open(dir)?;
            let crl = ca.publish_crl(*days, now)?;
            println!(
                "{}: CRL number {}, {} revoked, next update {}",
                crl.path.display(),
                crl.number,
                crl.revoked,
                crl.next_update
            );
            Ok(true)
        }
        PkiCommand::List { dir } => {
            let ca = CertificateAuthority::open(dir)?;
            println!(
                "{:<34} {:<20} {:<7} {:<12} {:<21} status",
                "serial", "name", "kind", "role", "not after"
            );
            for record in ca.issued()? {
                let kind = match record.kind {
                    mbaps_pki::Kind::Server => "server",
                    mbaps_pki::Kind::Client => "client",
                };
                let status = match (&record.revoked, record.reason) {
                    (Some(when), reason) => {
                        format!("revoked {when} ({})", reason.unwrap_or_default().name())
                    }
                    (None, _) => "good".to_owned(),
                };
                println!(
                    "{:<34} {:<20} {:<7} {:<12} {:<21} {status}",
                    record.serial,
                    record.name,
                    kind,
                    record.role.as_deref().unwrap_or("-"),
                    record.not_after
                );
            }
            Ok(true)
        }
    }
}

fn print_issued(issued: &Issued) {
    let record = &issued.record;
    let what = match (&record.kind, &record.role) {
        (mbaps_pki::Kind::Server, _) => "server certificate".to_owned(),
        (mbaps_pki::Kind::Client, Some(role)) => format!("client certificate with role {role:?}"),
        (mbaps_pki::Kind::Client, None) => {
            "client certificate with NO role: servers hand it the NULL role (R-23)".to_owned()
        }
    };
    println!(
        "{what}: {}, serial {}, until {}",
        record.subject, record.serial, record.not_after
    );
    for file in &issued.files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let about = if name.ends_with("-chain.pem") {
            "certificate and CA: what --cert takes"
        } else if name.ends_with(".key") {
            "private key, mode 0600: --key"
        } else {
            "certificate alone"
        };
        println!("  {:<32} {about}", file.display());
    }
}

fn show(
    file: &Path,
    ca: Option<&Path>,
    crl_files: &[PathBuf],
    json: bool,
    now: SystemTime,
) -> Result<bool> {
    let certificates = mbaps_session::load_certificates(file)?;
    let mut report = CertificateReport::new(file, &certificates[0], now)?;
    if let Some(ca) = ca {
        let anchors = mbaps_session::load_certificates(ca)?;
        let mut crls = Vec::new();
        for file in crl_files {
            crls.extend(mbaps_session::load_crls(file)?);
        }
        report.check_chain(&certificates[0], &certificates[1..], &anchors, &crls, now);
    }
    let problems = report.problems();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["problems"] = serde_json::json!(problems);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(problems.is_empty());
    }
    let validity = match report.validity {
        mbaps_pki::ValidityNow::Valid => "valid now",
        mbaps_pki::ValidityNow::Expired => "EXPIRED",
        mbaps_pki::ValidityNow::NotYetValid => "NOT YET VALID",
    };
    let rows: Vec<(&str, String)> = vec![
        ("subject", report.subject.clone()),
        ("issuer", report.issuer.clone()),
        ("serial", report.serial.clone()),
        (
            "names",
            if report.subject_alt_names.is_empty() {
                "-".to_owned()
            } else {
                report.subject_alt_names.join(", ")
            },
        ),
        (
            "validity",
            format!("{} to {} ({validity})", report.not_before, report.not_after),
        ),
        ("key", report.key.clone()),
        (
            "usage",
            if report.is_ca {
                "CA".to_owned()
            } else {
                report.extended_key_usage.join(", ")
            },
        ),
        ("sha-256", report.fingerprint_sha256.clone()),
        (
            "role",
            match &report.role {
                RoleReport::NoRole => "no role (the NULL role, R-23)".to_owned(),
                RoleReport::Role { role } => format!("{role:?}"),
                RoleReport::Invalid {
                    reason,
                    requirement,
                } => {
                    format!("INVALID ({requirement}): {reason}")
                }
            },
        ),
    ];
    for (label, value) in rows {
        println!("{label:<9} {value}");
    }
    if let Some(ChainReport {
        usage,
        error,
        revocation_checked,
    }) = &report.chain
    {
        let not_revoked = if *revocation_checked {
            ", not revoked"
        } else {
            ""
        };
        match error {
            None => println!("{:<9} chains to the CA for {usage}{not_revoked}", "chain"),
            Some(error) => println!(
                "{:<9} DOES NOT chain to the CA for {usage}: {error}",
                "chain"
            ),
        }
    }
    if certificates.len() > 1 {
        println!(
            "(the file holds {} certificates; shown: the first)",
            certificates.len()
        );
    }
    for problem in &problems {
        eprintln!("mbaps: refused by a Modbus/TCP Security peer: {problem}");
    }
    Ok(problems.is_empty())
}

/// Make a CA, a server and clients with roles in one go: a quick start on
/// one machine. Run again, it replaces its own files; a CA it did not make
/// is kept unless --force. For a site, use `mbaps pki`.
#[derive(Args, Debug)]
pub(crate) struct CertsArgs {
    /// The folder to write to (created if missing).
    #[arg(long, default_value = "mbaps-certs")]
    out: PathBuf,
    /// Another client role to issue a certificate for, as
    /// client-ROLE.pem (repeatable; operator and viewer are always made).
    #[arg(long)]
    role: Vec<String>,
    /// Replace a CA in the folder that mbaps certs did not make.
    #[arg(long)]
    force: bool,
}

/// The CN of the CA `mbaps certs` makes: how it knows its own.
const QUICK_START_CA: &str = "mbaps quick-start CA";

/// Refuses (without `--force`) to write into `dir` over files that
/// `mbaps certs` did not write: a CA of someone else's, or, in a folder
/// without the quick-start CA (a server's folder, say), any file of the
/// names it would write.
fn refuse_files_not_ours(dir: &std::path::Path, roles: &[String]) -> Result<()> {
    if dir.join("ca.key").exists() {
        let theirs = CertificateAuthority::open(dir)
            .map(|ca| ca.subject().to_owned())
            .unwrap_or_else(|err| format!("unreadable: {err}"));
        if theirs == format!("CN={QUICK_START_CA}") {
            // Its own quick-start folder: written again.
            return Ok(());
        }
        anyhow::bail!(
            "{} holds a CA that mbaps certs did not make ({theirs}); give --force to replace it, \
             or another --out",
            dir.display()
        );
    }
    let mut names = vec![
        "ca.pem".to_owned(),
        "crl.pem".to_owned(),
        "pki.toml".to_owned(),
    ];
    let leaves = ["server".to_owned(), "client-no-role".to_owned()]
        .into_iter()
        .chain(roles.iter().map(|role| format!("client-{role}")));
    for leaf in leaves {
        names.extend([
            format!("{leaf}.pem"),
            format!("{leaf}-chain.pem"),
            format!("{leaf}.key"),
        ]);
    }
    let present: Vec<String> = names
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .collect();
    if !present.is_empty() {
        anyhow::bail!(
            "{} holds {} but no CA of mbaps certs: they were not written by it; give --force to replace them, \
             or another --out",
            dir.display(),
            present.join(", ")
        );
    }
    Ok(())
}

pub(crate) fn certs(args: &CertsArgs) -> Result<bool> {
    let now = SystemTime::now();
    let dir = &args.out;
    let mut roles = vec!["operator".to_owned(), "viewer".to_owned()];
    for role in &args.role {
        Role::new(role).with_context(|| format!("--role {role:?}"))?;
        mbaps_pki::check_name(&format!("client-{role}"))
            .with_context(|| format!("--role {role:?} names the file client-{role}.pem"))?;
        if !roles.contains(role) {
            roles.push(role.clone());
        }
    }
    if !args.force {
        refuse_files_not_ours(dir, &roles)?;
    }
    let ca =
        CertificateAuthority::init(dir, QUICK_START_CA, KeyType::EcdsaP256, CA_DAYS, true, now)?;
    let key = || Subject::NewKey(KeyType::EcdsaP256);
    let server = Usage::Server {
        dns: vec!["localhost".into(), "mbaps-server".into()],
        ips: vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ],
    };
    let mut lines = vec![
        (
            "ca.pem".to_owned(),
            "the CA: --ca of servers and clients".to_owned(),
        ),
        (
            "ca.key".to_owned(),
            "its key (mode 0600): mbaps pki --dir this folder issues more".to_owned(),
        ),
        ("crl.pem".to_owned(), "its CRL, empty: --crl".to_owned()),
    ];
    ca.issue("server", key(), &server, LEAF_DAYS, true, now)?;
    lines.push((
        "server-chain.pem, server.key".to_owned(),
        "server: localhost, mbaps-server, 127.0.0.1, ::1".to_owned(),
    ));
    for role in &roles {
        let name = format!("client-{role}");
        ca.issue(
            &name,
            key(),
            &Usage::Client {
                role: Some(Role::new(role)?),
            },
            LEAF_DAYS,
            true,
            now,
        )
        .with_context(|| format!("--role {role:?}"))?;
        lines.push((
            format!("{name}-chain.pem, {name}.key"),
            format!("client with the role {role:?}"),
        ));
    }
    ca.issue(
        "client-no-role",
        key(),
        &Usage::Client { role: None },
        LEAF_DAYS,
        true,
        now,
    )?;
    lines.push((
        "client-no-role-chain.pem, client-no-role.key".to_owned(),
        "client without a role (the NULL role, R-23)".to_owned(),
    ));
    println!("written to {}:", dir.display());
    for (files, what) in &lines {
        println!("  {files:<48} {what}");
    }
    println!(
        "\nTry: mbaps server --cert {0}/server-chain.pem --key {0}/server.key --ca {0}/ca.pem --policy examples/policy.toml",
        dir.display()
    );
    println!(
        "     mbaps read holding 0 10 --cert {0}/client-viewer-chain.pem --key {0}/client-viewer.key --ca {0}/ca.pem --server-name localhost",
        dir.display()
    );
    Ok(true)
}
