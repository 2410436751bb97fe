//! The serial commands as an engineer meets them, over a pseudo-terminal
//! made by `mbaps server --serial-pty`: a broadcast from the field tools,
//! and the gateway's refusals before anything listens (a missing port, a
//! setting the port does not apply, pipelining on a serial line).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{mbaps, text};

/// `mbaps server --serial-pty DIR/rtu --unit 1`, killed when dropped.
struct PtyDevice(Child, PathBuf);

impl Drop for PtyDevice {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[allow(clippy::disallowed_methods)] // waits for a real process
fn pty_device(dir: &Path) -> PtyDevice {
    std::fs::create_dir_all(dir).unwrap();
    let link = dir.join("rtu");
    let child = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args([
            "server",
            "--serial-pty",
            link.to_str().unwrap(),
            "--unit",
            "1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::symlink_metadata(&link).is_err() {
        assert!(Instant::now() < deadline, "no link at {}", link.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    PtyDevice(child, link)
}

fn dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mbaps-serial-{tag}-{}", std::process::id()))
}

#[test]
fn a_broadcast_write_from_the_field_tools_reaches_the_device_unanswered() {
    let device = pty_device(&dir("broadcast"));
    let port = device.1.to_str().unwrap();
    let line = ["--serial", port, "--parity", "none"];
    let write = mbaps(&[&["write", "holding", "110", "55", "--unit", "0"][..], &line].concat());
    assert!(write.status.success(), "{}", text(&write.stderr));
    let read = mbaps(&[&["read", "holding", "110", "--unit", "1"][..], &line].concat());
    assert!(
        text(&read.stdout).contains("    110       55  0x0037"),
        "{}",
        text(&read.stdout)
    );
    // A unit nobody answers: the timeout, said as such.
    let absent = mbaps(
        &[
            &["read", "holding", "110", "--unit", "2", "--timeout", "0.3"][..],
            &line,
        ]
        .concat(),
    );
    assert!(!absent.status.success());
    assert!(
        text(&absent.stderr).contains("no response within"),
        "{}",
        text(&absent.stderr)
    );
}

#[test]
fn the_gateway_refuses_a_port_it_cannot_use_before_anything_listens() {
    let device = pty_device(&dir("refusals"));
    let port = device.1.to_str().unwrap();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let gateway = |extra: &[&str]| {
        let mut args = vec![
            "gateway",
            "--plain",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy,
            "--exit-after",
            "5",
        ];
        args.extend_from_slice(extra);
        mbaps(&args)
    };
    let missing = gateway(&["--upstream-serial", "/dev/mbaps-no-such-port"]);
    assert!(!missing.status.success());
    assert!(!text(&missing.stdout).contains("listening on"));
    assert!(
        text(&missing.stderr).contains("serial port /dev/mbaps-no-such-port: No such file"),
        "{}",
        text(&missing.stderr)
    );
    // Even parity, the default: a pseudo-terminal drops it.
    let parity = gateway(&["--upstream-serial", port]);
    assert!(!parity.status.success());
    assert!(
        text(&parity.stderr).contains("parity even was asked but the port reports none"),
        "{}",
        text(&parity.stderr)
    );
    let pipelined = gateway(&[
        "--upstream-serial",
        port,
        "--parity",
        "none",
        "--in-flight",
        "2",
    ]);
    assert!(!pipelined.status.success());
    assert!(
        text(&pipelined.stderr).contains("an RTU route (--upstream-serial, --upstream-rtu-over-tcp) carries one request at a time"),
        "{}",
        text(&pipelined.stderr)
    );
}
