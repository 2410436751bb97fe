//! pymodbus as an independent Modbus/TCP Security peer, both ways: its TLS
//! client against `mbaps server`, and `mbaps read`/`write` (and the device
//! probe) against its TLS server; and on both sides of `mbaps gateway`: its
//! plain server as the device behind a TLS front, its plain client through
//! a plain front to `mbaps server`; and its serial RTU server (over a pair
//! of pseudo-terminals) and its RTU-over-TCP server behind `mbaps gateway
//! --upstream-serial` and `--upstream-rtu-over-tcp`. pymodbus and pyserial
//! are installed from PyPI, at pinned versions, into a virtual environment
//! under `target/`; the script that drives them is
//! `xtask/conformance/pymodbus_interop.py`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::endpoints::{Pki, credentials, mbaps, run_probe, start_listening};
use super::process::{Background, Finished, Ready, free_port, run_bounded};
use super::{Evidence, target_dir};
use crate::root;

/// The pymodbus release the runs use (and the findings are about).
pub(crate) const VERSION: &str = "3.16.1";
/// The pyserial release pymodbus's serial server runs on.
const PYSERIAL: &str = "3.5";

/// Runs both directions; an error only when pymodbus cannot be installed.
pub(crate) fn run(pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let python = install()?;
    client_against_mbaps(&python, pki, evidence)?;
    mbaps_against_server(&python, pki, evidence)?;
    gateway_to_plain_pymodbus(&python, pki, evidence)?;
    plain_pymodbus_through_gateway(&python, pki, evidence)?;
    gateway_to_serial_pymodbus(&python, pki, evidence)?;
    gateway_to_rtu_over_tcp_pymodbus(&python, pki, evidence)
}

/// The virtual environment's python, with pymodbus `VERSION` installed
/// (kept between runs; reinstalled when the version differs).
fn install() -> Result<PathBuf> {
    let venv = target_dir().join("pymodbus-venv");
    let python = venv.join("bin").join("python");
    let installed = run_bounded(
        Command::new(&python).args([
            "-c",
            "import pymodbus, serial; print(pymodbus.__version__, serial.__version__)",
        ]),
        Duration::from_secs(60),
    );
    let wanted = format!("{VERSION} {PYSERIAL}");
    if installed.is_ok_and(|done| done.success && done.stdout.trim() == wanted) {
        return Ok(python);
    }
    let created = run_bounded(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        Duration::from_secs(120),
    )
    .context("running python3 (Debian: apt-get install python3 python3-venv)")?;
    if !created.success {
        bail!(
            "python3 -m venv {} failed (Debian: apt-get install python3-venv): {}",
            venv.display(),
            created.output
        );
    }
    let pip = run_bounded(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("pymodbus=={VERSION}"))
            .arg(format!("pyserial=={PYSERIAL}")),
        Duration::from_secs(300),
    )?;
    if !pip.success {
        bail!(
            "installing pymodbus {VERSION} and pyserial {PYSERIAL} from PyPI failed: {}",
            pip.output
        );
    }
    Ok(python)
}

fn script() -> PathBuf {
    root().join("xtask/conformance/pymodbus_interop.py")
}

/// pymodbus's TLS client (operator certificate, then viewer, then none)
/// against `mbaps server`; each JSON line of the script is a check.
fn client_against_mbaps(python: &Path, pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let (server, address) = pki.start_server("pymodbus-client-server.log")?;
    // The script takes the same --ca/--cert/--key as `mbaps`.
    let mut command = Command::new(python);
    command
        .arg(script())
        .args(["client", "--port", &address.port().to_string()]);
    let done = run_bounded(
        pki.client(&mut command, "operator")
            .arg("--denied-cert")
            .arg(pki.file("client-viewer-chain.pem"))
            .arg("--denied-key")
            .arg(pki.file("client-viewer.key")),
        Duration::from_secs(120),
    )?;
    let mut checks = 0;
    for line in done.stdout.lines() {
        let Ok(check) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let id = check["id"].as_str().unwrap_or_default();
        let detail = check["detail"].as_str().unwrap_or_default().to_owned();
        if let Some(finding) = check["finding"].as_bool() {
            if finding {
                evidence.find(
                    &format!("pymodbus:{id}"),
                    "pymodbus's synchronous TLS client (ModbusTlsClient) wraps its socket without a server name, so with Python's default client context (check_hostname on) it cannot connect; the runs use the asyncio client, which checks the name",
                );
            }
            continue;
        }
        checks += 1;
        let what = client_check_description(id);
        let mut outcome = if check["ok"].as_bool() == Some(true) {
            Ok(detail)
        } else {
            Err(detail)
        };
        if id == "client_without_certificate_refused" {
            // The refusal must be the server's, for the reason R-10 gives.
            let log = server.log();
            if outcome.is_ok() && !log.contains("failed: TLS: peer sent no certificates") {
                outcome = Err(format!(
                    "the server did not log a missing certificate: {log}"
                ));
            }
        }
        evidence.record(&format!("pymodbus:{id}"), &what, outcome);
    }
    if checks == 0 || !done.success {
        evidence.record(
            "pymodbus:client_run",
            "the pymodbus client script ran to its end",
            Err(done.output),
        );
    }
    drop(server);
    Ok(())
}

fn client_check_description(id: &str) -> String {
    match id {
        "client_connects_with_its_certificate" => {
            "pymodbus's asyncio TLS client connects to mbaps server with an operator certificate".into()
        }
        "client_every_function" => "every function code below answered as expected".into(),
        "client_reads_back_its_writes" => "registers written by pymodbus read back".into(),
        "client_denied_write_gets_exception_01" => {
            "a viewer's write is answered exception 01 and the next read on the same session is answered".into()
        }
        "client_without_certificate_refused" => {
            "a pymodbus client without a certificate gets no answer (TLS 1.3: the alert follows the handshake), and the server logs that the peer sent no certificate".into()
        }
        other => match other.strip_prefix("client_fc") {
            Some(rest) => {
                let (code, name) = rest.split_once('_').unwrap_or((rest, ""));
                format!("pymodbus {} (0x{}) answered correctly", name.replace('_', " "), code.to_uppercase())
            }
            None => other.replace('_', " "),
        },
    }
}

/// `mbaps read`/`write` against pymodbus's TLS server (client certificate
/// required), then the device probe, whose failures are pymodbus findings.
fn mbaps_against_server(python: &Path, pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let address = free_port()?;
    let mut command = Command::new(python);
    command
        .arg(script())
        .args(["server", "--port", &address.port().to_string()]);
    credentials(
        &mut command,
        &pki.file("ca.pem"),
        &pki.file("server-chain.pem"),
        &pki.file("server.key"),
    );
    let server = Background::start(&mut command, &pki.beside("pymodbus-server.log"), address)
        .context("starting the pymodbus server")?;
    let host = address.to_string();
    let call = |cert: &str, args: &[&str]| call_as(pki, &host, cert, args);
    let all = record_exchanges(
        evidence,
        &call,
        "mbaps",
        |args| format!("mbaps {args} against pymodbus's TLS server"),
        &device_exchanges(),
    )?;
    // Answers whose contents are the device's own: well-formed is all
    // that can be asked, so they are not part of the summary below.
    for (id, pdu, needle, what) in [
        (
            "fc14_read_file_record",
            "14 07 06 0004 0001 0002",
            r#""function_name":"read file record","records":[{"record_length":"#,
            "mbaps request 14 (read file record) against pymodbus's TLS server: a well-formed answer",
        ),
        (
            "fc18_read_fifo_queue",
            "18 0003",
            r#""function_name":"read FIFO queue""#,
            "mbaps request 18 (read FIFO queue) against pymodbus's TLS server: a well-formed answer",
        ),
    ] {
        let done = call("operator", &["request", pdu, "--json"])?;
        let outcome = if done.success && done.output.contains(needle) {
            Ok(done.output)
        } else {
            Err(done.output)
        };
        evidence.record(&format!("pymodbus:mbaps_{id}"), what, outcome);
    }
    evidence.record(
        "pymodbus:mbaps_client_against_pymodbus_server",
        "mbaps read/write/request with a client certificate against pymodbus's TLS server, which requires one: every exchange with an exact answer above (0x01-0x06, 0x0F, 0x10, 0x15-0x17, 0x2B)",
        if all { Ok("all answered".into()) } else { Err("see the exchanges above".into()) },
    );

    let file = call(
        "operator",
        &["request", "14 07 06 0004 0001 0002", "--json"],
    )?;
    if file.success && !file.output.contains(r#""record_length":2,"#) {
        evidence.find(
            "pymodbus:file_record_of_another_length",
            "pymodbus's server answers a read file record (0x14) of 2 registers with a fixed 10-register record (\"SERVER DUMMY RECORD\"), whatever length was asked for; mbaps decodes it and shows what came",
        );
    }

    // What pymodbus does that Modbus/TCP Security does not ask for.
    let no_role = call("no-role", &["read", "holding", "0", "1"])?;
    if no_role.success {
        evidence.find(
            "pymodbus:no_role_based_authorization",
            "pymodbus's server has no role-based authorization (R-16, a SHOULD): a client certificate without a role reads like any other",
        );
    }
    let unknown_unit = call("operator", &["read", "holding", "0", "1", "--unit", "9"])?;
    if unknown_unit.output.contains("server device failure (0x04)") {
        evidence.find(
            "pymodbus:unknown_unit_answers_exception_04",
            "pymodbus's server answers a request for a unit id it does not have with exception 04 (server device failure, from a KeyError in its datastore) rather than 0x0B or no answer; mbaps reports the exception as such",
        );
    }
    for check in run_probe(pki, &host)? {
        if check.outcome == "fail" {
            // Fixed words per check: the probe's detail is for the console.
            let what = match check.id.as_str() {
                "role_denied" => {
                    "a role the policy would deny is answered like any other (no role-based authorization)"
                }
                "foreign_protocol_discarded" => {
                    "an ADU with protocol id 1 is answered instead of discarded (Implementation Guide 3.1.3)"
                }
                "illegal_function" => {
                    "0x09 (a code no specification defines) is answered with PDU 80 01 (function code 0x80, the request's function lost) instead of 89 01"
                }
                "illegal_data_value" => {
                    "a read of quantity 0 is answered with PDU 80 01 (function code 0x80, the request's function lost) instead of 83 03"
                }
                _ => "the check fails",
            };
            evidence.find(
                &format!("pymodbus:probe_{}", check.id),
                &format!("the device probe's check \"{}\": {what}", check.title),
            );
        }
    }
    drop(server);
    Ok(())
}

/// The exchanges with pymodbus's server as a device: (id, `mbaps`
/// arguments, what the output must hold). The server's data is the preset
/// of `mbaps server` (register n holds n, bit n is on when n % 3 == 0);
/// reads print JSON.
/// `mbaps ARGS --host HOST` with the client certificate `cert` of the PKI.
fn call_as(pki: &Pki, host: &str, cert: &str, args: &[&str]) -> Result<Finished> {
    let mut command = mbaps();
    command.args(args).args(["--host", host, "--timeout", "5"]);
    run_bounded(pki.client(&mut command, cert), Duration::from_secs(30))
}

/// Runs `exchanges` (id, `mbaps` arguments, what the output must hold)
/// as the operator through `call`, records each as `pymodbus:PREFIX_ID`
/// (described by `what` of its arguments), and says whether all were
/// answered as expected.
fn record_exchanges(
    evidence: &mut Evidence,
    call: &dyn Fn(&str, &[&str]) -> Result<Finished>,
    prefix: &str,
    what: impl Fn(&str) -> String,
    exchanges: &[(&str, &[&str], String)],
) -> Result<bool> {
    let mut all = true;
    for (id, args, expected) in exchanges {
        let done = call("operator", args)?;
        let outcome = if done.success && done.output.contains(expected.as_str()) {
            Ok(format!("saw {expected}"))
        } else {
            Err(format!("no {expected:?} in: {}", done.output))
        };
        all &= outcome.is_ok();
        evidence.record(
            &format!("pymodbus:{prefix}_{id}"),
            &what(&args.join(" ")),
            outcome,
        );
    }
    Ok(all)
}

fn device_exchanges() -> [(&'static str, &'static [&'static str], String); 14] {
    [
        ("fc01_read_coils", &["read", "coils", "0", "4", "--json"], values(0, &[1, 0, 0, 1])),
        ("fc02_read_discrete_inputs", &["read", "discrete-inputs", "6", "2", "--json"], values(6, &[1, 0])),
        ("fc03_read_holding_registers", &["read", "holding", "10", "3", "--json"], values(10, &[10, 11, 12])),
        ("fc04_read_input_registers", &["read", "input", "5", "2", "--json"], values(5, &[5, 6])),
        ("fc05_write_single_coil", &["write", "coils", "7", "1"], "written: 1 value".into()),
        ("fc06_write_single_register", &["write", "holding", "50", "9"], "written: 1 value".into()),
        ("fc0f_write_multiple_coils", &["write", "coils", "8", "0", "1", "1"], "written: 3 value".into()),
        ("fc10_write_multiple_registers", &["write", "holding", "60", "1", "2", "3"], "written: 3 value".into()),
        ("writes_read_back", &["read", "holding", "60", "3", "--json"], values(60, &[1, 2, 3])),
        // The function codes `read` and `write` do not offer, as raw PDUs.
        ("fc15_write_file_record", &["request", "15 0B 06 0004 0007 0002 1234 5678", "--json"],
            r#""records":[{"file_number":4,"record_number":7,"record_length":2,"values":[4660,22136]}]"#.into()),
        ("fc16_mask_write_register", &["request", "16 0004 00F2 0025", "--json"],
            r#""address":4,"and_mask":242,"or_mask":37"#.into()),
        ("fc16_result_read_back", &["read", "holding", "4", "1", "--json"], values(4, &[5])),
        ("fc17_read_write_multiple_registers", &["request", "17 0000 0002 0010 0001 02 0007", "--json"],
            r#""function_name":"read/write multiple registers","byte_count":4,"values":[0,1]"#.into()),
        ("fc2b_read_device_identification", &["request", "2B 0E 01 00", "--json"],
            r#"{"id":0,"name":"vendor name","value":"pymodbus"}"#.into()),
    ]
}

/// `mbaps gateway` (TLS front, the example policy) in front of pymodbus's
/// plain Modbus/TCP server: every exchange of the TLS runs goes through
/// the gateway with the operator's certificate, and the viewer's write is
/// answered 0x01 by the gateway and never reaches the device.
fn gateway_to_plain_pymodbus(python: &Path, pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let device = free_port()?;
    let mut command = Command::new(python);
    command
        .arg(script())
        .args(["server", "--plain", "--port", &device.port().to_string()]);
    let server = Background::start(
        &mut command,
        &pki.beside("pymodbus-plain-server.log"),
        device,
    )
    .context("starting pymodbus's plain server")?;
    let mut command = mbaps();
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--exit-after", "600"])
        .args(["--upstream", &device.to_string()])
        .arg("--policy")
        .arg(root().join("examples/policy.toml"));
    let (gateway, address) = start_listening(
        pki.server(&mut command),
        &pki.beside("gateway-to-pymodbus.log"),
    )?;
    let host = address.to_string();
    let call = |cert: &str, args: &[&str]| call_as(pki, &host, cert, args);
    let all = record_exchanges(
        evidence,
        &call,
        "gateway",
        |args| format!("mbaps {args} through mbaps gateway to pymodbus's plain server"),
        &device_exchanges(),
    )?;
    evidence.record(
        "pymodbus:gateway_every_function",
        "every exchange above through mbaps gateway (TLS front, operator role) to pymodbus's plain Modbus/TCP server, answered as pymodbus answers directly (0x01-0x06, 0x0F, 0x10, 0x15-0x17, 0x2B)",
        if all { Ok("all answered".into()) } else { Err("see the exchanges above".into()) },
    );
    // The viewer's write: 0x01 from the gateway; the device's register
    // keeps the operator's value (9, written above), read without the
    // gateway.
    let denied = call("viewer", &["write", "holding", "50", "777"])?;
    let mut direct = mbaps();
    direct.args([
        "read",
        "holding",
        "50",
        "1",
        "--json",
        "--plain",
        "--timeout",
        "5",
    ]);
    direct.args(["--host", &device.to_string()]);
    let after = run_bounded(&mut direct, Duration::from_secs(30))?;
    let kept = values(50, &[9]);
    evidence.record(
        "pymodbus:gateway_denied_write_never_reaches_the_device",
        "a viewer's write through mbaps gateway is answered 0x01 at the gateway, and pymodbus's register, read directly, is unchanged",
        if !denied.success
            && denied.output.contains("(0x01)")
            && after.success
            && after.output.contains(&kept)
        {
            Ok(format!("write: {}; device: {}", denied.output.trim(), after.output.trim()))
        } else {
            Err(format!("write: {}; device: {}", denied.output, after.output))
        },
    );
    drop(gateway);
    drop(server);
    Ok(())
}

/// pymodbus's plain client through `mbaps gateway --plain` (plain clients
/// authorized as the operator role) to `mbaps server` on TLS, which
/// authorizes the gateway's own operator certificate: every function code
/// the client script runs.
fn plain_pymodbus_through_gateway(python: &Path, pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let (server, device) = pki.start_server("gateway-device-server.log")?;
    let mut command = mbaps();
    command
        .args([
            "gateway",
            "--plain",
            "--listen",
            "127.0.0.1:0",
            "--exit-after",
            "600",
        ])
        .args(["--plain-role", "operator"])
        .arg("--policy")
        .arg(root().join("examples/policy.toml"))
        .args(["--upstream", &device.to_string(), "--upstream-tls"])
        .args(["--upstream-server-name", "localhost"])
        .arg("--upstream-cert")
        .arg(pki.file("client-operator-chain.pem"))
        .arg("--upstream-key")
        .arg(pki.file("client-operator.key"))
        .arg("--upstream-ca")
        .arg(pki.file("ca.pem"));
    let (gateway, address) = start_listening(&mut command, &pki.beside("plain-gateway.log"))?;
    let mut command = Command::new(python);
    command
        .arg(script())
        .args(["client", "--plain", "--port", &address.port().to_string()]);
    let done = run_bounded(&mut command, Duration::from_secs(120))?;
    let mut every = None;
    for line in done.stdout.lines() {
        let Ok(check) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let id = check["id"].as_str().unwrap_or_default();
        if id.is_empty() || check["finding"].is_boolean() {
            continue;
        }
        let detail = check["detail"].as_str().unwrap_or_default().to_owned();
        let outcome = if check["ok"].as_bool() == Some(true) {
            Ok(detail)
        } else {
            Err(detail)
        };
        if id == "client_every_function" {
            every = Some(outcome.is_ok());
        }
        let what = format!(
            "through mbaps gateway --plain to mbaps server (TLS): {}",
            client_check_description(id)
        );
        evidence.record(&format!("pymodbus:gateway_plain_{id}"), &what, outcome);
    }
    if every.is_none() || !done.success {
        evidence.record(
            "pymodbus:gateway_plain_client_run",
            "the pymodbus plain client script ran through mbaps gateway --plain to its end",
            Err(done.output),
        );
    }
    drop(gateway);
    drop(server);
    Ok(())
}

/// A policy for the serial runs: the operator may also use the
/// serial-line functions (the group `serial`, which `all` leaves out); the
/// viewer reads.
const SERIAL_POLICY: &str = "\
[roles.operator]
allow = [{ functions = [\"read\", \"write\", \"diagnostic\", \"serial\"] }]
[roles.viewer]
allow = [{ functions = [\"read\"] }]
";

/// The serial-line functions as raw PDUs, and what the answers hold.
fn serial_exchanges() -> [(&'static str, &'static [&'static str], String); 5] {
    [
        (
            "fc07_read_exception_status",
            &["request", "07", "--json"],
            r#""function_name":"read exception status","status":"#.into(),
        ),
        (
            "fc08_diagnostics_return_query_data",
            &["request", "08 0000 A537", "--json"],
            r#""sub_function":0,"data":42295"#.into(),
        ),
        (
            "fc0b_get_comm_event_counter",
            &["request", "0B", "--json"],
            r#""function_name":"get comm event counter""#.into(),
        ),
        (
            "fc0c_get_comm_event_log",
            &["request", "0C", "--json"],
            r#""function_name":"get comm event log""#.into(),
        ),
        (
            "fc11_report_server_id",
            &["request", "11", "--json"],
            r#""function_name":"report server id","data":"70796d6f646275732d"#.into(),
        ),
    ]
}

/// `mbaps gateway` (TLS front) in front of `device_flags` (a serial or RTU
/// over TCP route to pymodbus), with the serial policy: every exchange of
/// the TLS runs and the serial-line functions as the operator, recorded as
/// `pymodbus:PREFIX_ID`; and the viewer's diagnostics, answered 0x01.
fn rtu_exchanges_through_gateway(
    pki: &Pki,
    evidence: &mut Evidence,
    device_flags: &[&str],
    prefix: &str,
    device: &str,
) -> Result<()> {
    let policy = pki.beside("serial-policy.toml");
    std::fs::write(&policy, SERIAL_POLICY)?;
    let mut command = mbaps();
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--exit-after", "600"])
        .args(device_flags)
        .arg("--policy")
        .arg(&policy);
    let (gateway, address) = start_listening(
        pki.server(&mut command),
        &pki.beside(&format!("gateway-{prefix}.log")),
    )?;
    let host = address.to_string();
    let call = |cert: &str, args: &[&str]| call_as(pki, &host, cert, args);
    let through = |args: &str| format!("mbaps {args} through mbaps gateway to {device}");
    let mut all = record_exchanges(evidence, &call, prefix, through, &device_exchanges())?;
    all &= record_exchanges(
        evidence,
        &call,
        prefix,
        |args| format!("{} (policy group serial)", through(args)),
        &serial_exchanges(),
    )?;
    evidence.record(
        &format!("pymodbus:{prefix}_every_function"),
        &format!("every exchange above through mbaps gateway (TLS front, operator role) to {device}: 0x01-0x08, 0x0B, 0x0C, 0x0F-0x11, 0x15-0x17, 0x2B"),
        if all { Ok("all answered".into()) } else { Err("see the exchanges above".into()) },
    );
    let denied = call("viewer", &["request", "08 0000 0001"])?;
    evidence.record(
        &format!("pymodbus:{prefix}_viewer_diagnostics_denied"),
        &format!("the viewer's diagnostics through mbaps gateway to {device}: 0x01 at the gateway (its role has no serial)"),
        if !denied.success && denied.output.contains("(0x01)") {
            Ok(denied.output.trim().to_owned())
        } else {
            Err(denied.output)
        },
    );
    drop(gateway);
    Ok(())
}

/// pymodbus's serial RTU server (pyserial) on a pseudo-terminal joined to
/// another, behind `mbaps gateway --upstream-serial` on that other one.
fn gateway_to_serial_pymodbus(python: &Path, pki: &Pki, evidence: &mut Evidence) -> Result<()> {
    let link = pki.beside("pymodbus-rtu-port");
    let mut command = Command::new(python);
    command
        .arg(script())
        .arg("serial-server")
        .arg("--link")
        .arg(&link);
    let server = Background::start_when(
        &mut command,
        &pki.beside("pymodbus-serial-server.log"),
        &Ready::Logged("ready"),
    )
    .context("starting pymodbus's serial server")?;
    let port = link.display().to_string();
    rtu_exchanges_through_gateway(
        pki,
        evidence,
        &["--upstream-serial", &port, "--parity", "none"],
        "serial",
        "pymodbus's serial RTU server (pseudo-terminal, 19200 baud, parity none)",
    )?;
    drop(server);
    Ok(())
}

/// pymodbus's TCP server with the RTU framer, behind `mbaps gateway
/// --upstream-rtu-over-tcp`.
fn gateway_to_rtu_over_tcp_pymodbus(
    python: &Path,
    pki: &Pki,
    evidence: &mut Evidence,
) -> Result<()> {
    let device = free_port()?;
    let mut command = Command::new(python);
    command
        .arg(script())
        .args(["rtu-tcp-server", "--port", &device.port().to_string()]);
    let server = Background::start(
        &mut command,
        &pki.beside("pymodbus-rtu-tcp-server.log"),
        device,
    )
    .context("starting pymodbus's RTU-over-TCP server")?;
    let address = device.to_string();
    rtu_exchanges_through_gateway(
        pki,
        evidence,
        &["--upstream-rtu-over-tcp", &address],
        "rtu_over_tcp",
        "pymodbus's TCP server with the RTU framer",
    )?;
    drop(server);
    Ok(())
}

/// What `mbaps read --json` prints for these values from `start`.
fn values(start: u16, values: &[u16]) -> String {
    let items: Vec<String> = values
        .iter()
        .zip(start..)
        .map(|(value, address)| format!("{{\"address\":{address},\"value\":{value}}}"))
        .collect();
    format!("[{}]", items.join(","))
}
