//! What the command tests share: running `mbaps`, and an `mbaps server`
//! on a free port of 127.0.0.1 that is killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};

pub fn mbaps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub struct Server(Child);

impl Server {
    /// The process id, to send it signals.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Stops it as a service manager does (SIGTERM) and waits for its end.
    #[allow(clippy::disallowed_methods)] // waits for a real process
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mbaps server` with the certificates of `dir` (as `mbaps certs` writes
/// them) and the example policy, logging to `dir/server.log`; returns it
/// with its HOST:PORT.
pub fn start_server(dir: &Path) -> (Server, String) {
    start_server_with(dir, &[])
}

/// [`start_server`] with more flags. The server binds a free port itself
/// (`--listen 127.0.0.1:0`) and the address is read from its first log
/// line, so no other process can take the port in between.
pub fn start_server_with(dir: &Path, flags: &[&str]) -> (Server, String) {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let mut args: Vec<String> = ["server", "--listen", "127.0.0.1:0"]
        .iter()
        .chain(flags)
        .map(|s| s.to_string())
        .collect();
    for (flag, file) in [
        ("--cert", "server-chain.pem"),
        ("--key", "server.key"),
        ("--ca", "ca.pem"),
    ] {
        args.push(flag.into());
        args.push(dir.join(file).display().to_string());
    }
    args.push("--policy".into());
    args.push(policy.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_listening(dir, "server.log", &args)
}

/// `mbaps ARGS --exit-after 60`, logging to `dir/LOG`, once it logged
/// `listening on ADDRESS`; returns it with that address.
#[allow(clippy::disallowed_methods)] // the test waits for a real server
pub fn start_listening(dir: &Path, log: &str, args: &[&str]) -> (Server, String) {
    let log = dir.join(log);
    let child = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args(args)
        .args(["--exit-after", "60"])
        .env_remove("SSLKEYLOGFILE")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let address = text
            .lines()
            .find_map(|line| line.strip_prefix("listening on "))
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(address) = address {
            return (server, address.to_owned());
        }
        assert!(Instant::now() < deadline, "{args:?} did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The client with `role` of the PKI in `dir`.
pub fn client_config(dir: &Path, role: &str) -> ClientConfig {
    ClientConfig::builder(
        load_certificates(&dir.join("ca.pem")).unwrap(),
        load_certificates(&dir.join(format!("client-{role}-chain.pem"))).unwrap(),
        load_private_key(&dir.join(format!("client-{role}.key"))).unwrap(),
    )
    .build()
    .unwrap()
}

/// `mbaps server` with `flags` and the certificates of `dir`; `reads`
/// allowed reads (16 in flight) and one denied write, as a viewer; then
/// the server's log once it saw the session end (and the server stopped,
/// with SIGTERM).
#[allow(clippy::disallowed_methods)] // waits for a real server
pub fn run_reads(dir: &Path, flags: &[&str], reads: usize) -> String {
    let (server, host) = start_server_with(dir, flags);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(host.as_str(), client_config(dir, "viewer"), name)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let viewer = viewer.clone();
            tasks.push(tokio::spawn(async move {
                for _ in (worker..reads).step_by(16) {
                    viewer.read_holding_registers(1, 0, 10).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(
            matches!(denied, Err(ClientError::Exception(_))),
            "{denied:?}"
        );
        viewer.close().await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
        if log.contains(" ended (peer_closed)") || Instant::now() > deadline {
            server.terminate();
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PKI written by `mbaps certs` into a fresh folder.
pub fn pki(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-logs-{tag}-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir
}

/// `GET PATH` over HTTP/1.0: the head and the body.
pub fn scrape(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// The metrics address `mbaps` logged in `log`.
pub fn metrics_address(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {text}"))
        .to_owned()
}

/// `mbaps ARGS` against `host` as the client with `role` of the PKI in
/// `dir` (its certificate, key, and the CA).
pub fn as_client(dir: &Path, host: &str, role: &str, args: &[&str]) -> Output {
    let file = |name: String| dir.join(name).display().to_string();
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for (flag, value) in [
        ("--host", host.to_owned()),
        ("--ca", file("ca.pem".into())),
        ("--cert", file(format!("client-{role}-chain.pem"))),
        ("--key", file(format!("client-{role}.key"))),
    ] {
        all.push(flag.into());
        all.push(value);
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    mbaps(&all)
}
