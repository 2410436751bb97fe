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
        let first = server.next_line().expect("the server printed nothing");
        server.address = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} began with {first:?}"))
            .to_owned();
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
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name}: {stdout}{stderr}");
    stdout
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

    let viewer = run_client(&certs.0, &server, "viewer");
    assert!(
        viewer.contains("write refused: ") && viewer.contains("0x01"),
        "{viewer}"
    );
    assert!(viewer.ends_with(&reads(10)), "{viewer}");

    let operator = run_client(&certs.0, &server, "operator");
    assert!(operator.contains("wrote 1234 to register 10"), "{operator}");
    assert!(operator.ends_with(&reads(1234)), "{operator}");
    // The server logged the denial, and saw both sessions to their end:
    // each client closed with close_notify.
    let log = server.wait_for("PeerClosed", 2);
    let denials: Vec<_> = log.iter().filter(|line| line.contains("denied")).collect();
    assert_eq!(denials.len(), 1, "{log:#?}");
    assert!(
        denials[0].contains("write single register (0x06)"),
        "{log:#?}"
    );
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

/// The commands of the README's "Examples" section: (program, its
/// arguments, whether it runs in the background).
fn readme_commands() -> Vec<(String, Vec<String>, bool)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let section = readme
        .split("\n## Examples\n")
        .nth(1)
        .expect("the README has an Examples section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the Examples section has a sh block");
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let background = line.ends_with('&');
            let words: Vec<&str> = line.trim_end_matches('&').split_whitespace().collect();
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

#[test]
fn the_readme_examples_run_as_written() {
    let commands = readme_commands();
    assert!(commands.len() >= 4, "{commands:?}");
    let folder = Certificates::new("readme");
    let certs = folder.0.join("certs");
    let mut server: Option<Server> = None;
    let mut outputs = Vec::new();
    for (program, args, background) in commands {
        // The same commands, in a fresh folder, on a free port.
        let args: Vec<PathBuf> = args
            .iter()
            .enumerate()
            .map(|(at, arg)| match arg.as_str() {
                // The folder, not `mbaps certs`, the command.
                "certs" if at > 0 || program != "mbaps" => certs.clone(),
                "examples/policy.toml" => policy(),
                "127.0.0.1:8802" if background => "127.0.0.1:0".into(),
                "127.0.0.1:8802" => server
                    .as_ref()
                    .expect("a server runs")
                    .address
                    .clone()
                    .into(),
                other => other.into(),
            })
            .collect();
        if background {
            server = Some(Server::start_with(&program, &args));
        } else {
            outputs.push(run_to_end(&program, &args));
        }
    }
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
