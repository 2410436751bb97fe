//! `mbaps policy check` and `mbaps policy explain` on the example policy
//! and on a file with mistakes.

mod common;

use common::{mbaps, text};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");

#[test]
fn check_accepts_the_example_and_places_every_mistake() {
    let ok = mbaps(&["policy", "check", EXAMPLE]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("ok, 2 role(s): operator, viewer"),
        "{}",
        text(&ok.stdout)
    );

    let dir = std::env::temp_dir().join(format!("mbaps-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        "[roles.viewer]\nallow = [ { functions = [\"reed\"] } ]\n\n[roles.operator]\nallow = [ { functions = [\"write\"], holding_registers = \"9-1\" } ]\n",
    )
    .unwrap();
    let broken = mbaps(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(broken.status.code(), Some(1));
    let stderr = text(&broken.stderr);
    assert!(stderr.contains("broken.toml:2:"), "{stderr}");
    assert!(stderr.contains("broken.toml:5:"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_names_the_rule_that_allows_and_the_permission_that_is_missing() {
    // A viewer reads holding registers 100..=109: allowed by its first rule.
    let read = mbaps(&[
        "policy",
        "explain",
        "--policy",
        EXAMPLE,
        "--role",
        "viewer",
        "03 0064 000A",
    ]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(
        text(&read.stdout).trim(),
        "allowed: read holding registers (0x03) unit 1, holding registers 100..=109, by roles.viewer.allow[0]"
    );
    // Its write of 7 to register 100: denied, exit 1.
    let write = mbaps(&[
        "policy",
        "explain",
        "--policy",
        EXAMPLE,
        "--role",
        "viewer",
        "06 0064 0007",
    ]);
    assert_eq!(write.status.code(), Some(1));
    assert!(
        text(&write.stdout).starts_with("denied (exception 0x01): write single register (0x06) unit 1, holding registers 100..=100: no rule allows write single register (0x06)"),
        "{}",
        text(&write.stdout)
    );
    // No role: the [no_role] rules, which allow nothing.
    let anonymous = mbaps(&["policy", "explain", "--policy", EXAMPLE, "03 0000 0001"]);
    assert_eq!(anonymous.status.code(), Some(1));
    // A PDU that does not decode is an error, not a decision.
    let garbage = mbaps(&["policy", "explain", "--policy", EXAMPLE, "03 00"]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(
        text(&garbage.stderr).contains("does not decode"),
        "{}",
        text(&garbage.stderr)
    );
}
