//! What the command tests share: running `mbaps`, and an `mbaps server`
//! on a free port of 127.0.0.1 that is killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// [`start_server`] with more flags.
#[allow(clippy::disallowed_methods)] // the test waits for a real server
pub fn start_server_with(dir: &Path, flags: &[&str]) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--exit-after", "60"])
        .args(flags)
        .arg("--cert")
        .arg(dir.join("server-chain.pem"))
        .arg("--key")
        .arg(dir.join("server.key"))
        .arg("--ca")
        .arg(dir.join("ca.pem"))
        .arg("--policy")
        .arg(policy)
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("server.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child), format!("127.0.0.1:{port}"))
}
