//! `mbaps decode` as a user runs it: arguments, standard input, exit status.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mbaps(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbaps"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mbaps starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_readme_frame_decodes_as_a_read_holding_registers_request() {
    let out = mbaps(
        &["decode", "0001", "0000", "0006", "11", "03", "006B", "0003"],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("transaction 1, unit 17, length 6, request 0x03 read holding registers"),
        "{stdout}"
    );
    assert!(stdout.contains("address: 107"), "{stdout}");
    assert!(stdout.contains("quantity: 3"), "{stdout}");
}

#[test]
fn json_output_has_the_header_the_kind_and_the_typed_fields() {
    let out = mbaps(
        &[
            "decode",
            "--response",
            "--json",
            "000100000009110306022B00000064",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let adu = &value[0];
    assert_eq!(adu["transaction_id"], 1);
    assert_eq!(adu["protocol_id"], 0);
    assert_eq!(adu["length"], 9);
    assert_eq!(adu["unit_id"], 17);
    assert_eq!(adu["function"], 3);
    assert_eq!(adu["kind"], "response");
    assert_eq!(adu["values"], serde_json::json!([555, 0, 100]));
}

#[test]
fn an_exception_response_is_reported_as_such() {
    let out = mbaps(
        &["decode", "--response", "--json", "00070000000301 8302"],
        b"",
    );
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value[0]["kind"], "exception");
    assert_eq!(value[0]["exception_code"], 2);
    assert_eq!(value[0]["exception"], "illegal data address");
}

#[test]
fn raw_bytes_on_standard_input_decode_and_so_do_several_adus() {
    let frame = [
        0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03,
    ];
    let out = mbaps(
        &["decode", "--raw", "--json", "-"],
        &[frame, frame].concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2);
    assert_eq!(value[1]["offset"], 12);
}

#[test]
fn hex_on_standard_input_is_the_default() {
    let out = mbaps(&["decode", "-"], b"0001 0000 0006 11 03 006B 0003\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("quantity: 3"));
}

#[test]
fn an_invalid_request_exits_1_with_field_value_and_limit() {
    // Read coils, quantity 2001: one past the limit.
    let out = mbaps(&["decode", "--json", "00010000000611010000 07D1"], b"");
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = &value[0]["error"];
    assert_eq!(error["field"], "quantity");
    assert_eq!(error["value"], 2001);
    assert_eq!(error["min"], 1);
    assert_eq!(error["max"], 2000);
    assert_eq!(error["exception_code"], 3);
}

#[test]
fn truncated_input_says_how_many_bytes_are_missing() {
    let out = mbaps(&["decode", "0001000000061103"], b"");
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("8 bytes present, at least 4 more needed"),
        "{stdout}"
    );
}

#[test]
fn bad_hex_is_a_clear_error_not_a_panic() {
    let out = mbaps(&["decode", "00zz"], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'z'") && stderr.contains("not a hex digit"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn raw_needs_standard_input() {
    let out = mbaps(&["decode", "--raw", "0001"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--raw applies to standard input"));
}
