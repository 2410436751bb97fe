//! `mbaps demo`, the README's first command, as a new user runs it.

use std::process::Command;

#[test]
fn the_demo_shows_allowed_and_denied_requests_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 allowed, 2 denied, as the policy says."),
        "{stdout}"
    );
    assert!(stdout.contains("viewer    write single register 100 = 7, unit 1        -> denied: exception illegal function (0x01)"), "{stdout}");
    assert!(
        stdout.contains("authenticated: role \"operator\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("no rule allows write single register (0x06)"),
        "{stdout}"
    );
    assert!(!stdout.contains("!! "), "{stdout}");
    // The certificates' folder is gone.
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("1. Certificates in "))
        .and_then(|l| l.strip_suffix(':'))
        .unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
}
