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

#[test]
#[allow(clippy::disallowed_methods)] // waits for a real gateway
fn a_reload_of_a_serial_gateway_keeps_its_port_and_says_a_route_change_needs_a_restart() {
    let dir = dir("reload");
    let device = pty_device(&dir);
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let config = dir.join("gateway.toml");
    let file = |baud: u32| {
        format!(
            "listen = \"127.0.0.1:0\"\nplain = true\nplain_role = \"operator\"\npolicy = \"{policy}\"\n\n\
             [[route]]\nunits = \"1-10\"\nserial = \"{}\"\nparity = \"none\"\nbaud = {baud}\n",
            device.1.display()
        )
    };
    std::fs::write(&config, file(19_200)).unwrap();
    let (gateway, host) = common::start_listening(
        &dir,
        "gateway.log",
        &["gateway", "--config", config.to_str().unwrap()],
    );
    let read = || {
        mbaps(&[
            "read", "holding", "3", "--unit", "1", "--plain", "--host", &host,
        ])
    };
    assert!(text(&read().stdout).contains("      3        3  0x0003"));
    // The bus's settings changed in the file: they need a restart; the
    // port the gateway holds stays open and keeps serving.
    std::fs::write(&config, file(9_600)).unwrap();
    let hang_up = Command::new("kill")
        .args(["-HUP", &gateway.id().to_string()])
        .status()
        .unwrap();
    assert!(hang_up.success());
    let log = dir.join("gateway.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let said = loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains("reloaded on SIGHUP") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        said.contains("reload on SIGHUP: route changed, but needs a restart: not applied"),
        "{said}"
    );
    assert!(text(&read().stdout).contains("      3        3  0x0003"));
    drop(gateway);
}
