//! The runnable examples, run against each other as users run them: each
//! server example (the sans-IO session on a blocking loop, the tokio server
//! with its own handler, the tokio server with an async handler) serves the
//! tokio client example, once as an operator (its write goes through and
//! the eight reads in flight see it) and once as a viewer (the policy
//! refuses the write with exception 0x01; the reads go on). And the
//! README's "Examples" section, its commands as written (with a fresh
//! folder and a free port).
#![allow(clippy::disallowed_methods)] // real processes, real clocks

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mbaps_test_pki::TestPki;

/// How long an example may take to start, or to run its calls.
const PATIENCE: Duration = Duration::from_secs(60);

/// The examples' executables and the workspace's binaries by name, built
/// once (with the workspace's features, so that after `cargo test
/// --workspace` little is rebuilt).
fn examples() -> &'static HashMap<String, PathBuf> {
    static EXAMPLES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--workspace",
                "--bins",
                "--examples",
                "--message-format",
                "json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "the examples do not build");
        let mut found = HashMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let target = &message["target"];
            let is_example = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example" || k == "bin"));
            if let (true, Some(name), Some(executable)) = (
                is_example,
                target["name"].as_str(),
                message["executable"].as_str(),
            ) {
                found.insert(name.to_owned(), PathBuf::from(executable));
            }
        }
        found
    })
}

fn example(name: &str) -> Command {
    // The README's sections run tshark too (installed by `.ci/run`).
    if name == "tshark" {
        return Command::new("tshark");
    }
    let path = examples()
        .get(name)
        .unwrap_or_else(|| panic!("no example {name:?} among {:?}", examples().keys()));
    Command::new(path)
}

/// A PKI written where the examples read it (`mbaps certs --out DIR`'s
/// layout), removed when dropped.
struct Certificates(PathBuf);

impl Certificates {
    fn new(tag: &str) -> Certificates {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mbaps-examples-{tag}-{}-{nanos}",
            std::process::id()
        ));
        TestPki::generate(SystemTime::now())
            .unwrap()
            .write_to(&dir)
            .unwrap();
        Certificates(dir)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server example, killed when dropped; what it printed is kept.
struct Server {
    child: Child,
    address: String,
    lines: mpsc::Receiver<String>,
}

/// The example policy.
fn policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.toml")
}

impl Server {
    fn start(name: &str, certs: &Path) -> Server {
        let args = [certs.into(), policy(), "127.0.0.1:0".into()];
        Server::start_with(name, &args)
    }

    fn start_with(name: &str, args: &[PathBuf]) -> Server {
        let mut child = example(name)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            address: String::new(),
            lines,
        };
        // `listening on ADDRESS` (and, from mbaps, what it serves).
        let mut before = Vec::new();
        server.address = loop {
            let line = server
                .next_line()
                .unwrap_or_else(|| panic!("{name} never said where it listens: {before:#?}"));
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            before.push(line);
        };
        server
    }

    fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(PATIENCE).ok()
    }

    /// What the server printed until its `count`th line with `wanted` in it.
    fn wait_for(&self, wanted: &str, count: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(line) = self.next_line() {
            seen.push(line);
            if seen.iter().filter(|line| line.contains(wanted)).count() == count {
                return seen;
            }
        }
        panic!("the server never printed {wanted:?} {count} times; it printed {seen:#?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client example as `role` against `server`; its output.
fn run_client(certs: &Path, server: &Server, role: &str) -> String {
    let args = [certs.into(), server.address.clone().into(), role.into()];
    run_to_end("client", &args)
}

/// Runs executable `name` with `args` to its end; what it printed.
fn run_to_end(name: &str, args: &[PathBuf]) -> String {
    let (success, stdout) = run_to_exit(name, args);
    assert!(success, "{name}: {stdout}");
    stdout
}

/// Runs executable `name` with `args` to its end: whether it succeeded, and
/// what it printed (standard output, then standard error).
fn run_to_exit(name: &str, args: &[PathBuf]) -> (bool, String) {
    let mut child = example(name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
    printed.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}

/// The eight reads of the client: registers 0..32, register n holding n,
/// with register 10 as the write left it.
fn reads(register_10: u16) -> String {
    (0..8u16)
        .map(|block| {
            let values: Vec<u16> = (block * 4..block * 4 + 4)
                .map(|n| if n == 10 { register_10 } else { n })
                .collect();
            format!("registers {}..{}: {values:?}\n", block * 4, block * 4 + 4)
        })
        .collect()
}

fn serve_the_client(server_example: &str) {
    let certs = Certificates::new(server_example);
    let server = Server::start(server_example, &certs.0);
    the_client_is_served(&certs, &server);
}

/// The client example, as a viewer and as an operator, against `server`.
fn the_client_is_served(certs: &Certificates, server: &Server) {
    let viewer = run_client(&certs.0, server, "viewer");
    assert!(
        viewer.contains("write refused: ") && viewer.contains("0x01"),
        "{viewer}"
    );
    assert!(viewer.ends_with(&reads(10)), "{viewer}");

    let operator = run_client(&certs.0, server, "operator");
    assert!(operator.contains("wrote 1234 to register 10"), "{operator}");
    assert!(operator.ends_with(&reads(1234)), "{operator}");
    // The server logged the denial, and saw both sessions to their end:
    // each client closed with close_notify.
    let log = server.wait_for("(peer_closed)", 2);
    let denials: Vec<_> = log.iter().filter(|line| line.contains("denied")).collect();
    assert_eq!(denials.len(), 1, "{log:#?}");
    assert!(
        denials[0].contains("write single register (0x06)"),
        "{log:#?}"
    );
}

#[test]
fn the_gateway_example_serves_the_tokio_client_from_a_plain_device() {
    let certs = Certificates::new("gateway-example");
    let device_args: Vec<PathBuf> = [
        "server",
        "--plain",
        "--plain-role",
        "operator",
        "--listen",
        "127.0.0.1:0",
        "-v",
        "--policy",
    ]
    .iter()
    .map(PathBuf::from)
    .chain([policy()])
    .collect();
    let device = Server::start_with("mbaps", &device_args);
    let args = [
        certs.0.clone(),
        policy(),
        "127.0.0.1:0".into(),
        device.address.clone().into(),
    ];
    let gateway = Server::start_with("gateway", &args);
    the_client_is_served(&certs, &gateway);
    // The device saw the operator's write, and never the viewer's.
    let log = device.wait_for("write single register", 1);
    let writes = log
        .iter()
        .filter(|line| line.contains("write single register"));
    assert_eq!(writes.count(), 1, "{log:#?}");
}

#[test]
fn the_blocking_sans_io_server_serves_the_tokio_client() {
    serve_the_client("blocking_server");
}

#[test]
fn the_tokio_server_with_its_own_handler_serves_the_tokio_client() {
    serve_the_client("server");
}

#[test]
fn the_async_handler_serves_the_tokio_client() {
    serve_the_client("async_handler");
}

/// The commands of the README's section `heading`: (program, its
/// arguments, whether it runs in the background).
fn readme_commands(heading: &str) -> Vec<(String, Vec<String>, bool)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("the README has no section {heading:?}"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("the section {heading:?} has no sh block"));
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let background = line.ends_with('&');
            let words: Vec<&str> = line.trim_end_matches('&').split_whitespace().collect();
            if words[0] == "tshark" {
                let args = words[1..].iter().map(|w| w.to_string()).collect();
                return ("tshark".to_owned(), args, background);
            }
            assert_eq!(&words[..2], ["cargo", "run"], "{line}");
            // `--example NAME`, or the package's binary (mbaps for mbaps-cli).
            let program = match words.iter().position(|w| *w == "--example") {
                Some(at) => words[at + 1].to_owned(),
                None => {
                    assert!(line.contains("-p mbaps-cli"), "{line}");
                    "mbaps".to_owned()
                }
            };
            let at = words
                .iter()
                .position(|w| *w == "--")
                .expect("arguments after --");
            let args = words[at + 1..].iter().map(|w| w.to_string()).collect();
            (program, args, background)
        })
        .collect()
}

/// Runs the commands of the README's section `heading` as written, in a
/// fresh folder: `certs` is that folder, and each address a background
/// command listens on is a free port, given to the commands after it.
/// Returns the background servers and what each other command printed
/// (and whether it succeeded).
fn run_readme_section(heading: &str, folder: &Certificates) -> (Vec<Server>, Vec<(bool, String)>) {
    let commands = readme_commands(heading);
    let certs = folder.0.join("certs");
    let mut servers: Vec<Server> = Vec::new();
    let mut addresses: HashMap<String, String> = HashMap::new();
    let mut outputs = Vec::new();
    for (program, args, background) in commands {
        let mut listens_on = None;
        let args: Vec<PathBuf> = args
            .iter()
            .enumerate()
            .map(|(at, arg)| match arg.as_str() {
                // The folder, not `mbaps certs`, the command.
                "certs" if at > 0 || program != "mbaps" => certs.clone(),
                "examples/policy.toml" => policy(),
                path if path.starts_with("certs/") => certs.join(&path["certs/".len()..]),
                "site" => folder.0.join("site"),
                "findings" => folder.0.join("findings"),
                // The tap's capture, in the test's folder.
                capture if capture.ends_with(".pcapng") => folder.0.join(capture),
                // The serial section's port link, one per test folder.
                "/tmp/mbaps-rtu" => folder.0.join("rtu"),
                path if path.starts_with("site/") => folder.0.join(path),
                address if address.starts_with("127.0.0.1:") => match addresses.get(address) {
                    Some(actual) => actual.into(),
                    None if background && listens_on.is_none() => {
                        listens_on = Some(address.to_owned());
                        "127.0.0.1:0".into()
                    }
                    None => panic!("nothing listens on {address} yet"),
                },
                other => other.into(),
            })
            .collect();
        if background {
            let server = Server::start_with(&program, &args);
            if let Some(written) = listens_on {
                addresses.insert(written, server.address.clone());
            }
            servers.push(server);
        } else {
            outputs.push(run_to_exit(&program, &args));
        }
    }
    (servers, outputs)
}

#[test]
fn the_readme_examples_run_as_written() {
    let folder = Certificates::new("readme");
    let (_servers, outputs) = run_readme_section("Examples", &folder);
    let outputs: Vec<String> = outputs
        .into_iter()
        .map(|(success, printed)| {
            assert!(success, "{printed}");
            printed
        })
        .collect();
    let [_certs, operator, viewer] = &outputs[..] else {
        panic!("{outputs:#?}");
    };
    assert!(operator.contains("wrote 1234 to register 10"), "{operator}");
    assert!(operator.ends_with(&reads(1234)), "{operator}");
    assert!(
        viewer.contains("write refused: ") && viewer.contains("0x01"),
        "{viewer}"
    );
    assert!(viewer.ends_with(&reads(1234)), "{viewer}");
}

#[test]
fn the_readme_site_pki_section_runs_as_written() {
    let folder = Certificates::new("site");
    let (_servers, outputs) = run_readme_section("Certificates for a site: mbaps pki", &folder);
    let [
        init,
        plc,
        meter,
        hmi,
        historian,
        show,
        revoke,
        crl,
        show_revoked,
        write,
        revoked_read,
    ] = &outputs[..]
    else {
        panic!("{outputs:#?}");
    };
    assert!(!show_revoked.0, "{}", show_revoked.1);
    assert!(show_revoked.1.contains("CertRevoked"), "{}", show_revoked.1);
    for (ok, printed) in [init, plc, meter, hmi, historian, show, revoke, crl, write] {
        assert!(ok, "{printed}");
    }
    assert!(plc.1.contains("server certificate: CN=plc-1"), "{}", plc.1);
    assert!(meter.1.contains("meter-1-chain.pem"), "{}", meter.1);
    assert!(hmi.1.contains("role \"operator\""), "{}", hmi.1);
    assert!(historian.1.contains("role \"viewer\""), "{}", historian.1);
    assert!(
        show.1.contains("role      \"operator\"") && show.1.contains("chains to the CA"),
        "{}",
        show.1
    );
    assert!(revoke.1.contains("revoked historian"), "{}", revoke.1);
    assert!(crl.1.contains("1 revoked"), "{}", crl.1);
    assert!(write.1.contains("100"), "{}", write.1);
    let (ok, printed) = revoked_read;
    assert!(!ok, "the revoked historian was served: {printed}");
    assert!(printed.to_lowercase().contains("revoked"), "{printed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = folder.0.join("site/ca.key");
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_readme_gateway_section_runs_as_written() {
    let folder = Certificates::new("gateway");
    let (servers, outputs) = run_readme_section("Secure a plain Modbus/TCP device", &folder);
    let [_certs, (read_ok, read), (write_ok, write)] = &outputs[..] else {
        panic!("{outputs:#?}");
    };
    assert!(*read_ok, "{read}");
    // The preset device: register n holds n.
    for register in 100..=102u16 {
        let row = format!("{register:>7}  {register:>7}  0x{register:04X}");
        assert!(read.contains(&row), "{read}");
    }
    assert!(!*write_ok, "the viewer's write went through: {write}");
    assert!(write.contains("0x01"), "{write}");
    // The device saw the read, never the write.
    let [device, gateway] = &servers[..] else {
        panic!("two servers expected");
    };
    // The gateway logged the denial: who, what, where, why.
    let denied = gateway.wait_for("denied", 1);
    let line = denied.last().unwrap();
    assert!(
        line.contains("role=\"viewer\"")
            && line.contains("write single register (0x06)")
            && line.contains("holding registers 100..=100"),
        "{denied:#?}"
    );
    let log = device.wait_for("read holding registers", 1);
    assert!(
        !log.iter()
            .any(|line| line.starts_with("request") && line.contains("write")),
        "{log:#?}"
    );
}

#[test]
fn the_readme_fuzzing_section_runs_as_written() {
    let folder = Certificates::new("fuzzing");
    let (_servers, outputs) = run_readme_section("Fuzzing a device: mbaps fuzz", &folder);
    let [_certs, (fuzzed, printed)] = &outputs[..] else {
        panic!("{outputs:#?}");
    };
    assert!(*fuzzed, "{printed}");
    assert!(
        printed.contains("seed 42") && printed.contains("no finding"),
        "{printed}"
    );
    assert!(!folder.0.join("findings").exists(), "no finding, no folder");
}

#[test]
fn the_readme_ids_section_runs_as_written() {
    let folder = Certificates::new("ids");
    let (_servers, outputs) = run_readme_section("Feeding an IDS", &folder);
    let [
        _certs,
        (read_ok, read),
        (write_ok, write),
        (tshark_ok, dissected),
    ] = &outputs[..]
    else {
        panic!("{outputs:#?}");
    };
    assert!(*read_ok, "{read}");
    assert!(!*write_ok && write.contains("0x01"), "{write}");
    assert!(*tshark_ok, "{dissected}");
    // What tshark printed of the packets (its warnings come in too).
    let lines: Vec<&str> = dissected.lines().filter(|l| l.contains('\t')).collect();
    assert_eq!(lines.len(), 4, "{dissected}");
    let fields = |line: &str| line.split('\t').map(str::to_owned).collect::<Vec<_>>();
    let read_request = fields(lines[0]);
    assert_eq!(read_request[2], "3", "{dissected}");
    assert!(
        read_request[4].contains("role=viewer") && read_request[4].contains("decision=allowed")
    );
    let write_answer = fields(lines[3]);
    assert_eq!(
        (write_answer[2].as_str(), write_answer[3].as_str()),
        ("6", "1"),
        "{dissected}"
    );
    assert!(write_answer[4].contains("decision=denied"), "{dissected}");
    assert!(
        write_answer[4].contains("subject=CN=client-viewer"),
        "{dissected}"
    );
}

#[test]
fn the_readme_serial_section_runs_as_written() {
    let folder = Certificates::new("serial");
    let (servers, outputs) = run_readme_section("Secure a serial device", &folder);
    let [
        _certs,
        (direct_ok, direct),
        (write_ok, write),
        (read_ok, read),
        (denied_ok, denied),
        (held_ok, held),
    ] = &outputs[..]
    else {
        panic!("{outputs:#?}");
    };
    assert!(*direct_ok, "{direct}");
    assert!(direct.contains("    100      100  0x0064"), "{direct}");
    assert!(*write_ok, "{write}");
    assert!(
        *read_ok && read.contains("    100     4242  0x1092"),
        "{read}"
    );
    assert!(!*denied_ok && denied.contains("0x01"), "{denied}");
    // The gateway holds the port: a second program cannot open it.
    assert!(!*held_ok && held.contains("exclusively"), "{held}");
    let [_device, gateway] = &servers[..] else {
        panic!("two servers expected");
    };
    let denied = gateway.wait_for("denied", 1);
    assert!(
        denied.last().unwrap().contains("role=\"viewer\""),
        "{denied:#?}"
    );
}
