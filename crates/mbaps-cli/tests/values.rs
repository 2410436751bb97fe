//! Typed register values in `mbaps read` and `mbaps write`, and `--poll`
//! as a log: a line per poll with its time, CSV or JSON lines, and a count
//! of polls and failures when Ctrl-C (or SIGTERM) ends it.

mod common;

use std::process::{Command, Stdio};

use common::{as_client, pki, start_server_with, text};

#[test]
fn typed_values_write_and_read_back_in_each_word_order() {
    let dir = pki("values");
    let (_server, host) = start_server_with(&dir, &[]);
    let operator = |args: &[&str]| as_client(&dir, &host, "operator", args);
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(operator(&[
        "write", "holding", "100", "--type", "f32", "3.5",
    ]));
    let raw = ok(operator(&["read", "holding", "100", "2", "--json"]));
    assert_eq!(
        raw.trim(),
        r#"[{"address":100,"value":16480},{"address":101,"value":0}]"#
    );
    let typed = ok(operator(&["read", "holding", "100", "1", "--type", "f32"]));
    assert!(typed.contains("    100      3.5  0x4060 0x0000"), "{typed}");

    ok(operator(&[
        "write",
        "holding",
        "110",
        "--type",
        "f32",
        "--word-order",
        "little",
        "3.5",
    ]));
    let raw = ok(operator(&["read", "holding", "110", "2", "--json"]));
    assert_eq!(
        raw.trim(),
        r#"[{"address":110,"value":0},{"address":111,"value":16480}]"#
    );
    let typed = ok(operator(&[
        "read",
        "holding",
        "110",
        "1",
        "--type",
        "f32",
        "--word-order",
        "little",
        "--json",
    ]));
    assert_eq!(typed.trim(), r#"[{"address":110,"value":3.5}]"#);

    ok(operator(&[
        "write", "holding", "120", "--type", "i16", "-32768", "32767",
    ]));
    let typed = ok(operator(&[
        "read", "holding", "120", "2", "--type", "i16", "--csv",
    ]));
    assert_eq!(
        typed.trim(),
        "address,value,registers\n120,-32768,0x8000\n121,32767,0x7FFF"
    );
    ok(operator(&[
        "write",
        "holding",
        "130",
        "--type",
        "u32",
        "4294967295",
    ]));
    let typed = ok(operator(&[
        "read", "holding", "130", "1", "--type", "u32", "--json",
    ]));
    assert_eq!(typed.trim(), r#"[{"address":130,"value":4294967295}]"#);
    ok(operator(&[
        "write", "holding", "140", "--type", "f64", "inf",
    ]));
    let typed = ok(operator(&[
        "read", "holding", "140", "1", "--type", "f64", "--json",
    ]));
    assert_eq!(typed.trim(), r#"[{"address":140,"value":"inf"}]"#);

    // A value that does not fit its type: refused before anything is sent.
    let refused = operator(&["write", "holding", "100", "--type", "i16", "40000"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("\"40000\" is not a I16 value"),
        "{}",
        text(&refused.stderr)
    );
    let typed = ok(operator(&["read", "holding", "100", "1", "--type", "f32"]));
    assert!(
        typed.contains("3.5"),
        "the refused write reached the server: {typed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn polling_prints_a_timestamped_line_per_poll_and_counts_at_the_end() {
    let dir = pki("poll");
    let (_server, host) = start_server_with(&dir, &[]);
    let file = |name: &str| dir.join(name).display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args([
            "read", "holding", "10", "2", "--poll", "0.1", "--csv", "--host", &host,
        ])
        .args([
            "--ca",
            &file("ca.pem"),
            "--cert",
            &file("client-viewer-chain.pem"),
        ])
        .args(["--key", &file("client-viewer.key")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "time,10,11");
    assert!(lines.len() >= 4, "{stdout}");
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[1..], ["10", "11"], "{line}");
        assert!(
            fields[0].ends_with('Z') && fields[0].contains('T'),
            "{line}"
        );
    }
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{} poll(s), 0 failed", lines.len() - 1)),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
