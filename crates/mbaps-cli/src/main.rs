//! # mbaps
//!
//! The command-line tool of the mbaps Modbus/TCP Security stack.
//!
//! ```text
//! mbaps demo           ──► test PKI ──► mbaps-std server + clients on 127.0.0.1
//! mbaps server         ──► mbaps-tokio server on a register map, a log line per request
//! mbaps gateway        ──► the same front, each authorized request forwarded to a device
//! mbaps read / write   ──► mbaps-std client, a table or JSON
//! mbaps certs          ──► mbaps-pki: a quick-start CA, a server and clients with roles
//! mbaps pki            ──► mbaps-pki: a site's CA, CSR signing, revocation, CRLs, show
//! mbaps policy         ──► check a policy file, explain a decision
//! mbaps decode HEX|-   ──► mbaps-codec ──► text or JSON, one entry per ADU
//! mbaps conformance    ──► raw TLS and Modbus checks against a server under test
//! mbaps fuzz           ──► mbaps-fuzzer: a campaign against a device, findings as replay files
//! ```
//!
//! Exit status: 0 when everything asked for succeeded, 1 when some input
//! did not decode (or a command failed), 2 for a usage error.
#![forbid(unsafe_code)]
// A tool, not the sans-IO core: it may read the clock.
#![allow(clippy::disallowed_methods)]

mod client_commands;
mod connect;
mod console;
mod decode;
mod demo;
mod describe;
mod front;
mod fuzz_command;
mod gateway_command;
mod key_log;
mod metrics;
mod pki_command;
mod policy_command;
mod poll;
mod probe;
#[cfg(unix)]
mod serial_pty;
mod server_commands;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Modbus/TCP Security (Modbus over TLS, port 802) tools.
#[derive(Parser, Debug)]
#[command(name = "mbaps", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a secure server and clients on 127.0.0.1 with generated
    /// certificates, and show allowed and denied requests.
    Demo(demo::DemoArgs),
    /// Run a server simulator on a register map.
    Server(server_commands::ServerArgs),
    /// Put Modbus/TCP Security with per-request role authorization in
    /// front of plain Modbus/TCP devices, or let plain clients reach a
    /// secure device as one role.
    Gateway(gateway_command::GatewayArgs),
    /// Read coils, discrete inputs, holding or input registers from a server.
    Read(client_commands::ReadArgs),
    /// Write coils or holding registers of a server.
    Write(client_commands::WriteArgs),
    /// Send any request PDU (given in hex) to a server and print the
    /// response decoded.
    Request(client_commands::RequestArgs),
    /// Check a policy file, or explain why a request is allowed or denied.
    Policy(policy_command::PolicyArgs),
    /// Make a CA, a server certificate and client certificates with roles
    /// in one go: a quick start on one machine.
    Certs(pki_command::CertsArgs),
    /// Run a certificate authority for a site: servers, clients with
    /// roles, signing requests, revocation and CRLs.
    Pki(pki_command::PkiArgs),
    /// Decode Modbus/TCP ADUs (MBAP header + PDU) from hex or raw bytes.
    Decode(decode::DecodeArgs),
    /// Probe a Modbus/TCP Security server for conformance (TLS floor,
    /// client certificates, roles, exceptions, MBAP echo).
    Conformance(probe::ConformanceArgs),
    /// Fuzz a device through an authenticated session: structure-aware
    /// inputs, an oracle of what the specification allows, findings saved
    /// as replay files.
    Fuzz(fuzz_command::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Server(args) => server_commands::server(args),
        Command::Gateway(args) => gateway_command::gateway(args),
        Command::Read(args) => client_commands::read(args),
        Command::Write(args) => client_commands::write(args),
        Command::Request(args) => client_commands::request(args),
        Command::Policy(args) => policy_command::run(args),
        Command::Certs(args) => pki_command::certs(args),
        Command::Pki(args) => pki_command::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Conformance(args) => probe::run(args),
        // Its exit status has more to say than success or failure.
        Command::Fuzz(args) => return fuzz_command::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // `mbaps decode ... | head`: the reader has gone, which is no failure.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mbaps: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
