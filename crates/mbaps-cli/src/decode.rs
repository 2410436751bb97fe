//! `mbaps decode`: decodes MBAP ADUs from hex text or raw bytes and prints
//! them as text or JSON.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use clap::Args;
use mbaps_codec::{CodecError, Decoded, decode};
use serde_json::{Value, json};

use crate::describe::{self, Direction};

/// Input larger than this is refused: an ADU is at most 260 bytes, so this
/// is tens of thousands of them, and a pipe cannot make the tool grow.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Decode Modbus/TCP ADUs (MBAP header + PDU) and print them.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  mbaps decode 0001 0000 0006 11 03 006B 0003
  mbaps decode --response --json 00010000000911030602 2B00 000064
  printf '\\x00\\x01\\x00\\x00\\x00\\x06\\x11\\x03\\x00\\x6b\\x00\\x03' | mbaps decode --raw -")]
pub(crate) struct DecodeArgs {
    /// The ADUs as hex digits (spaces, colons and a 0x prefix are ignored),
    /// in one or several arguments; `-` reads standard input.
    #[arg(required = true, value_name = "HEX|-")]
    input: Vec<String>,
    /// Standard input holds hex text (the default).
    #[arg(long, conflicts_with = "raw")]
    hex: bool,
    /// Standard input holds raw bytes.
    #[arg(long)]
    raw: bool,
    /// Decode the PDUs as responses (a client's view) instead of requests.
    #[arg(long)]
    response: bool,
    /// Print a JSON array, one object per ADU.
    #[arg(long)]
    json: bool,
}

/// Runs the command; `Ok(false)` when some input did not decode.
pub(crate) fn run(args: &DecodeArgs) -> Result<bool> {
    let bytes = read_input(args)?;
    let direction = if args.response {
        Direction::Response
    } else {
        Direction::Request
    };
    let (entries, ok) = decode_stream(&bytes, direction);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &Value::Array(entries))?;
        writeln!(stdout)?;
    } else {
        for entry in &entries {
            write_text(&mut stdout, entry)?;
        }
    }
    stdout.flush()?;
    Ok(ok)
}

fn read_input(args: &DecodeArgs) -> Result<Vec<u8>> {
    if args.input.len() == 1 && args.input[0] == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        if buf.len() as u64 > MAX_INPUT_BYTES {
            bail!("standard input is larger than the {MAX_INPUT_BYTES}-byte limit");
        }
        if args.raw {
            return Ok(buf);
        }
        let text = String::from_utf8(buf)
            .context("standard input is not hex text (use --raw for bytes)")?;
        return parse_hex(&text);
    }
    if args.input.iter().any(|a| a == "-") {
        bail!("`-` (standard input) cannot be combined with hex arguments");
    }
    if args.raw {
        bail!("--raw applies to standard input: pass `-` and pipe the bytes in");
    }
    parse_hex(&args.input.join(" "))
}

/// Parses hex digits, ignoring white space, `:` separators and `0x` prefixes.
pub(crate) fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let mut digits = Vec::with_capacity(text.len());
    for token in text.split(|c: char| c.is_ascii_whitespace() || c == ':') {
        let token = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        for (i, c) in token.char_indices() {
            if !c.is_ascii_hexdigit() {
                bail!(
                    "hex input: {c:?} in {token:?} (character {}) is not a hex digit",
                    i + 1
                );
            }
        }
        digits.extend_from_slice(token.as_bytes());
    }
    if digits.is_empty() {
        bail!("hex input is empty");
    }
    if digits.len() % 2 != 0 {
        bail!(
            "hex input has {} digits: an odd number, so the last byte is incomplete",
            digits.len()
        );
    }
    hex::decode(&digits).context("hex input")
}

/// Decodes every ADU of `bytes`. Returns one JSON value per ADU (or per
/// error) and whether everything decoded.
pub(crate) fn decode_stream(bytes: &[u8], direction: Direction) -> (Vec<Value>, bool) {
    let mut entries = Vec::new();
    let mut all_ok = true;
    let mut offset = 0;
    while offset < bytes.len() {
        match decode(&bytes[offset..]) {
            Ok(Decoded::Frame { adu, consumed }) => {
                let (entry, ok) = describe::adu(offset, &adu, direction);
                entries.push(entry);
                all_ok &= ok;
                offset += consumed;
            }
            Ok(Decoded::Incomplete { needed }) => {
                let have = bytes.len() - offset;
                entries.push(json!({
                    "offset": offset,
                    "error": {
                        "field": "length",
                        "value": have,
                        "expected": have + needed,
                        "message": format!(
                            "input ends inside an ADU: {have} bytes present, at least {needed} more needed"
                        ),
                    }
                }));
                return (entries, false);
            }
            Err(err) => {
                entries.push(json!({ "offset": offset, "error": describe::error(&err) }));
                all_ok = false;
                match err {
                    // A server discards such a frame and reads on; so do we.
                    CodecError::ProtocolId { frame_len, .. } => offset += frame_len,
                    // The length is wrong: the stream cannot be followed further.
                    _ => return (entries, false),
                }
            }
        }
    }
    (entries, all_ok)
}

const HEADER_KEYS: [&str; 9] = [
    "offset",
    "transaction_id",
    "protocol_id",
    "length",
    "unit_id",
    "function",
    "function_name",
    "kind",
    "error",
];

fn write_text(out: &mut impl Write, entry: &Value) -> Result<()> {
    let get = |key: &str| entry.get(key).cloned().unwrap_or(Value::Null);
    write!(out, "@{}", get("offset"))?;
    if entry.get("transaction_id").is_some() {
        let function = get("function").as_u64().unwrap_or(0);
        write!(
            out,
            ": transaction {}, unit {}, length {}, {} 0x{function:02X}",
            get("transaction_id"),
            get("unit_id"),
            get("length"),
            get("kind").as_str().unwrap_or("?"),
        )?;
        if let Some(name) = entry.get("function_name").and_then(Value::as_str) {
            write!(out, " {name}")?;
        }
    }
    writeln!(out)?;
    if let Some(map) = entry.as_object() {
        for (key, value) in map
            .iter()
            .filter(|(k, _)| !HEADER_KEYS.contains(&k.as_str()))
        {
            writeln!(out, "    {key}: {value}")?;
        }
    }
    if let Some(message) = entry
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
    {
        writeln!(out, "    error: {message}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing_ignores_separators_and_reports_bad_digits() {
        assert_eq!(parse_hex("0x00 01:0A ff").unwrap(), [0, 1, 10, 255]);
        let err = parse_hex("00 0g").unwrap_err().to_string();
        assert!(err.contains("'g'"), "{err}");
        assert!(parse_hex("001").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex("  ").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn a_stream_of_two_adus_gives_two_entries() {
        let bytes = parse_hex("000100000006110300 6B0003 000200000006110300 6B0003").unwrap();
        let (entries, ok) = decode_stream(&bytes, Direction::Request);
        assert!(ok);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["transaction_id"], 2);
        assert_eq!(entries[1]["quantity"], 3);
        assert_eq!(entries[1]["offset"], 12);
    }

    #[test]
    fn a_foreign_protocol_id_is_skipped_and_reported() {
        let bytes = parse_hex("000100010006110300 6B0003 000200000006110300 6B0003").unwrap();
        let (entries, ok) = decode_stream(&bytes, Direction::Request);
        assert!(!ok);
        assert_eq!(entries[0]["error"]["field"], "protocol_id");
        assert_eq!(entries[1]["transaction_id"], 2);
    }

    #[test]
    fn a_bad_length_stops_the_stream_with_field_value_and_limit() {
        let bytes = parse_hex("0001000000FF11 03006B0003").unwrap();
        let (entries, ok) = decode_stream(&bytes, Direction::Request);
        assert!(!ok);
        assert_eq!(entries.len(), 1);
        let error = &entries[0]["error"];
        assert_eq!(error["field"], "length");
        assert_eq!(error["value"], 255);
        assert_eq!(error["max"], 254);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes: no panic, offsets inside the input, an error exactly
        /// when something did not decode.
        #[test]
        fn any_input_decodes_or_is_reported(bytes in proptest::collection::vec(any::<u8>(), 0..600), response in any::<bool>()) {
            let direction = if response { Direction::Response } else { Direction::Request };
            let (entries, ok) = decode_stream(&bytes, direction);
            for entry in &entries {
                let offset = entry["offset"].as_u64().unwrap() as usize;
                prop_assert!(offset < bytes.len().max(1));
            }
            let errors = entries.iter().filter(|e| e.get("error").is_some()).count();
            prop_assert_eq!(ok, errors == 0);
        }
    }
}
