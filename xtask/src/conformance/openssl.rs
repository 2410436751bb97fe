//! OpenSSL as an independent TLS peer: `openssl s_client` against `mbaps
//! server` (versions, suites, client certificates, what the handshake
//! shows), `openssl s_server` against `mbaps read` (a TLS 1.1 server, the
//! client's chain), and an RSA PKI made by `openssl req` for the RSA suite
//! which the rcgen-based test PKI cannot make.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Evidence;
use super::endpoints::{Pki, ServerFiles, credentials, mbaps, start_server};
use super::process::{Background, Finished, Ready, free_port, run_bounded};

const LIMIT: Duration = Duration::from_secs(20);

/// Suites outside the spec's list that a server must refuse (R-12, R-38,
/// R-50..R-54): AES-256 with SHA-384, SHA-1 HMAC, CBC with SHA-256,
/// ChaCha20 and static RSA.
const OUTSIDE_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "AES128-GCM-SHA256",
];

/// Runs every OpenSSL check; an error only when OpenSSL cannot be run.
pub(crate) fn run(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let version = run_bounded(Command::new("openssl").arg("version"), LIMIT)
        .context("running openssl (Debian: apt-get install openssl)")?;
    if !version.success {
        bail!("openssl version failed: {}", version.output);
    }
    println!("conformance: using {}", version.output.trim());
    against_our_server(pki, evidence)?;
    against_openssl_servers(pki, evidence)?;
    rsa(pki, evidence)
}

/// `openssl s_client` connecting to `address` with `args`; stdin is
/// closed, so it ends after the handshake with close_notify.
fn s_client(address: SocketAddr, ca: &Path, args: &[&str]) -> Result<Finished> {
    run_bounded(
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &address.to_string(),
                "-verify_return_error",
            ])
            .arg("-CAfile")
            .arg(ca)
            .args(args),
        LIMIT,
    )
}

fn expect(output: &str, needles: &[&str]) -> Result<String, String> {
    match needles.iter().find(|needle| !output.contains(**needle)) {
        None => Ok(format!("saw {needles:?}")),
        Some(missing) => Err(format!("no {missing:?} in: {output}")),
    }
}

/// How many times the server has logged `needle` so far.
fn count(server: &Background, needle: &str) -> usize {
    server.log().matches(needle).count()
}

/// Waits (at most 3 s: the server logs as it goes) until the server has
/// logged `needle` `more` times beyond the `before` it had: the lines of
/// the connections just made, not of earlier ones.
#[allow(clippy::disallowed_methods)] // a build tool waiting on a real server
fn logged(server: &Background, needle: &str, before: usize, more: usize) -> Result<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let log = server.log();
        if log.matches(needle).count() >= before + more {
            return Ok(format!("the server logged {needle:?} {more} more time(s)"));
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "the server logged {needle:?} fewer than {more} more time(s): {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn against_our_server(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let (server, address) = pki.start_server("openssl-server.log")?;
    let ca = pki.file("ca.pem");
    let cert = pki.file("client-viewer.pem");
    let key = pki.file("client-viewer.key");
    let chain = pki.file("intermediate.pem");
    let client_cert: Vec<&str> = vec![
        "-cert",
        path(&cert),
        "-key",
        path(&key),
        "-cert_chain",
        path(&chain),
    ];
    let with_cert = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = client_cert.clone();
        args.extend_from_slice(extra);
        args
    };

    const VIEWER: &str = "authenticated role=\"viewer\"";
    let viewers = count(&server, VIEWER);
    let full = s_client(
        address,
        &ca,
        &with_cert(&[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "-showcerts",
        ]),
    )?;
    evidence.record(
        "openssl:tls12_mutual_handshake",
        "s_client with a viewer certificate negotiates TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256, verifies the server, and the server authenticates the viewer role",
        expect(
            &full.output,
            &[
                "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256",
                "Verify return code: 0 (ok)",
            ],
        )
        .and_then(|_| logged(&server, VIEWER, viewers, 1)),
    );
    evidence.record(
        "openssl:certificate_request_sent",
        "s_client sees a CertificateRequest (acceptable CA names, requested signature algorithms)",
        expect(
            &full.output,
            &[
                "Acceptable client certificate CA names",
                "Requested Signature Algorithms",
            ],
        ),
    );
    evidence.record(
        "openssl:secure_renegotiation",
        "s_client reports secure renegotiation (RFC 5746) supported",
        expect(&full.output, &["Secure Renegotiation IS supported"]),
    );
    evidence.record(
        "openssl:no_compression",
        "s_client reports no compression",
        expect(&full.output, &["Compression: NONE"]),
    );
    evidence.record(
        "openssl:server_sends_its_chain",
        "s_client -showcerts receives server, intermediate and root certificates",
        expect(&full.output, &["\n 0 s:", "\n 1 s:", "\n 2 s:"]),
    );

    const NO_CERTIFICATE: &str = "failed: TLS: peer sent no certificates";
    let before = count(&server, NO_CERTIFICATE);
    let no_cert = s_client(address, &ca, &["-tls1_2"])?;
    evidence.record(
        "openssl:no_client_certificate_refused",
        "s_client without a certificate (TLS 1.2) gets the certificate_required alert and no session; the server's log says the peer sent no certificate",
        if no_cert.success {
            Err(format!("the handshake succeeded: {}", no_cert.output))
        } else {
            expect(&no_cert.output, &["alert certificate required"])
                .and_then(|_| logged(&server, NO_CERTIFICATE, before, 1))
        },
    );

    for (id, flag, what) in [
        (
            "openssl:tls10_refused",
            "-tls1",
            "s_client offering only TLS 1.0 gets handshake_failure; the server's log says the hello lacks signature_algorithms",
        ),
        (
            "openssl:tls11_refused",
            "-tls1_1",
            "s_client offering only TLS 1.1 gets handshake_failure; the server's log says the hello lacks signature_algorithms",
        ),
    ] {
        // SECLEVEL=0 lets OpenSSL 3 offer the old versions at all: the
        // refusal must come from the server, not from our own client.
        // OpenSSL's TLS 1.0/1.1 hello has no signature_algorithms, which
        // rustls refuses before it looks at the version.
        const OLD_HELLO: &str = "SignatureAlgorithmsExtensionRequired";
        let before = count(&server, OLD_HELLO);
        let old = s_client(
            address,
            &ca,
            &with_cert(&[flag, "-cipher", "DEFAULT@SECLEVEL=0"]),
        )?;
        let outcome = if old.success {
            Err(format!("a session was set up: {}", old.output))
        } else {
            expect(
                &old.output,
                &["alert handshake failure", "Cipher is (NONE)"],
            )
            .and_then(|_| logged(&server, OLD_HELLO, before, 1))
        };
        evidence.record(id, what, outcome);
    }

    const INCOMPATIBLE: &str = "failed: TLS: peer is incompatible";
    let before = count(&server, INCOMPATIBLE);
    let mut refused = Ok(String::new());
    for suite in OUTSIDE_SUITES {
        let out = s_client(address, &ca, &with_cert(&["-tls1_2", "-cipher", suite]))?;
        if out.success || !out.output.contains("alert handshake failure") {
            refused = Err(format!(
                "{suite} was not refused with handshake_failure: {}",
                out.output
            ));
            break;
        }
    }
    evidence.record(
        "openssl:suites_outside_the_list_refused",
        "s_client offering only ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES128-SHA, ECDHE-ECDSA-AES128-SHA256, ECDHE-ECDSA-CHACHA20-POLY1305 or AES128-GCM-SHA256 gets handshake_failure each time; the server logs each as an incompatible peer",
        refused
            .and_then(|_| logged(&server, INCOMPATIBLE, before, OUTSIDE_SUITES.len()))
            .map(|_| format!("refused: {}", OUTSIDE_SUITES.join(" "))),
    );

    let p256 = s_client(address, &ca, &with_cert(&["-tls1_2", "-groups", "P-256"]))?;
    evidence.record(
        "openssl:p256_group",
        "s_client offering only the P-256 group gets an ECDHE key exchange on prime256v1",
        expect(
            &p256.output,
            &[
                "Server Temp Key: ECDH, prime256v1",
                "Verify return code: 0 (ok)",
            ],
        ),
    );
    drop(server);
    Ok(())
}

fn against_openssl_servers(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let read = |address: SocketAddr| -> Result<Finished> {
        let mut command = mbaps();
        command
            .args(["read", "holding", "0", "--timeout", "2"])
            .args(["--host", &address.to_string()]);
        run_bounded(pki.client(&mut command, "viewer"), LIMIT)
    };
    let s_server = |extra: &[&str], log: &str| -> Result<(Background, SocketAddr)> {
        let address = free_port()?;
        let mut command = Command::new("openssl");
        command
            .args(["s_server", "-naccept", "1", "-accept", &address.to_string()])
            .arg("-cert")
            .arg(pki.file("server.pem"))
            .arg("-key")
            .arg(pki.file("server.key"))
            .arg("-cert_chain")
            .arg(pki.file("intermediate.pem"))
            .args(extra);
        // A test connection would use up `-naccept 1`: wait for its word.
        let server =
            Background::start_when(&mut command, &pki.beside(log), &Ready::Logged("ACCEPT"))?;
        Ok((server, address))
    };

    let (mut old, address) = s_server(
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        "s_server-tls11.log",
    )?;
    let client = read(address)?;
    old.finish(Duration::from_secs(5));
    evidence.record(
        "openssl:client_refuses_a_tls11_server",
        "mbaps read against s_server -tls1_1 gets no session (the server alerts protocol_version)",
        if client.success {
            Err(format!("mbaps read succeeded: {}", client.output))
        } else {
            expect(&client.output, &["ProtocolVersion"])
        },
    );

    // The trust anchor given to s_server is the root only, so the client's
    // certificate verifies only if the client sent its intermediate.
    let ca = pki.file("ca.pem");
    let (mut verifying, address) = s_server(
        &["-Verify", "3", "-verify_return_error", "-CAfile", path(&ca)],
        "s_server-verify.log",
    )?;
    // s_server speaks no Modbus: the read times out after the handshake.
    let _ = read(address)?;
    verifying.finish(Duration::from_secs(5));
    evidence.record(
        "openssl:client_sends_its_chain",
        "s_server -Verify with only the root as trust anchor verifies mbaps read's certificate through the intermediate it sent",
        expect(
            &verifying.log(),
            &[
                "depth=1 CN = mbaps test intermediate CA",
                "depth=0 CN = client viewer",
                "subject=CN = client viewer",
            ],
        ),
    );
    Ok(())
}

/// The `openssl req` configuration the RSA PKI is made with: no extension
/// comes from the system's openssl.cnf, only the ones given.
const REQ_CONFIG: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n";

/// One certificate of the RSA PKI: `name.pem` and `name.key`, signed by
/// `rsa-ca` unless it is the CA.
fn rsa_certificate(dir: &Path, name: &str, subject: &str, extensions: &[&str]) -> Result<()> {
    let mut command = Command::new("openssl");
    command
        .current_dir(dir)
        .args([
            "req", "-x509", "-config", "req.cnf", "-newkey", "rsa:2048", "-nodes",
        ])
        .args(["-days", "30", "-subj", subject])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    if name != "rsa-ca" {
        command.args(["-CA", "rsa-ca.pem", "-CAkey", "rsa-ca.key"]);
    }
    for extension in extensions {
        command.args(["-addext", extension]);
    }
    let done = run_bounded(&mut command, Duration::from_secs(60))?;
    if !done.success {
        bail!("openssl req for {name} failed: {}", done.output);
    }
    Ok(())
}

fn rsa(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let dir = pki.beside("rsa-pki");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("req.cnf"), REQ_CONFIG)?;
    rsa_certificate(
        &dir,
        "rsa-ca",
        "/CN=mbaps RSA test CA",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    rsa_certificate(
        &dir,
        "rsa-server",
        "/CN=localhost",
        &[
            "basicConstraints=critical,CA:FALSE",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "extendedKeyUsage=serverAuth",
            "keyUsage=critical,digitalSignature,keyEncipherment",
        ],
    )?;
    rsa_certificate(
        &dir,
        "rsa-client",
        "/CN=rsa operator",
        &[
            "basicConstraints=critical,CA:FALSE",
            "extendedKeyUsage=clientAuth",
            "keyUsage=critical,digitalSignature",
            // The role extension, made by OpenSSL, not by us.
            "1.3.6.1.4.1.50316.802.1=ASN1:UTF8String:operator",
        ],
    )?;
    let ca = std::fs::read_to_string(dir.join("rsa-ca.pem"))?;
    for name in ["rsa-server", "rsa-client"] {
        let leaf = std::fs::read_to_string(dir.join(format!("{name}.pem")))?;
        std::fs::write(dir.join(format!("{name}-chain.pem")), leaf + &ca)?;
    }

    let files = ServerFiles {
        chain: &dir.join("rsa-server-chain.pem"),
        key: &dir.join("rsa-server.key"),
        ca: &dir.join("rsa-ca.pem"),
    };
    let (server, address) = start_server(&files, &dir.join("mbaps-server.log"))?;
    let client_cert = dir.join("rsa-client.pem");
    let client_key = dir.join("rsa-client.key");
    let handshake = s_client(
        address,
        files.ca,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "-cert",
            path(&client_cert),
            "-key",
            path(&client_key),
        ],
    )?;
    evidence.record(
        "openssl:rsa_server_negotiates_ecdhe_rsa_aes128_gcm",
        "with an RSA PKI made by openssl, s_client negotiates TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 with mbaps server, and the server reads the role openssl encoded",
        expect(
            &handshake.output,
            &[
                "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256",
                "Verify return code: 0 (ok)",
            ],
        )
        .and_then(|_| logged(&server, "authenticated role=\"operator\"", 0, 1)),
    );
    let mut command = mbaps();
    command
        .args(["write", "holding", "10", "7", "--timeout", "5"])
        .args(["--host", &address.to_string()]);
    let write = run_bounded(
        credentials(
            &mut command,
            files.ca,
            &dir.join("rsa-client-chain.pem"),
            &client_key,
        ),
        LIMIT,
    )?;
    evidence.record(
        "openssl:rsa_client_certificate_accepted",
        "mbaps write with the openssl-made RSA operator certificate is authorized by mbaps server",
        if write.success {
            expect(&write.output, &["written"])
        } else {
            Err(write.output)
        },
    );
    drop(server);
    Ok(())
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}
