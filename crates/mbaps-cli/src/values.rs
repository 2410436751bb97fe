//! Typed register values: what meters, inverters and drives publish
//! across one, two or four registers, in one of several word orders
//! (`--type`, `--word-order`, `--byte-swap`), read from and written to the
//! 16-bit registers Modbus carries.

use anyhow::{Result, bail};
use clap::ValueEnum;
use serde_json::Value;

/// `--type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValueType {
    /// Unsigned 16-bit, one register (the default).
    U16,
    /// Signed 16-bit, one register.
    I16,
    /// Unsigned 32-bit, two registers.
    U32,
    /// Signed 32-bit, two registers.
    I32,
    /// Unsigned 64-bit, four registers.
    U64,
    /// Signed 64-bit, four registers.
    I64,
    /// IEEE 754 single precision, two registers.
    F32,
    /// IEEE 754 double precision, four registers.
    F64,
    /// One register, in hex.
    Hex,
    /// Two characters per register (the high byte first).
    Ascii,
}

/// `--word-order`: which register of a multi-register value holds its
/// most significant word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WordOrder {
    /// The first register (Modbus's own order, "ABCD").
    Big,
    /// The last register ("CDAB").
    Little,
}

/// How values lie in registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) kind: ValueType,
    pub(crate) words: WordOrder,
    /// The two bytes of each register swapped ("BADC", "DCBA").
    pub(crate) byte_swap: bool,
}

impl ValueType {
    /// Registers per value.
    pub(crate) fn registers(self) -> usize {
        match self {
            ValueType::U16 | ValueType::I16 | ValueType::Hex | ValueType::Ascii => 1,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 2,
            ValueType::U64 | ValueType::I64 | ValueType::F64 => 4,
        }
    }
}

impl Layout {
    /// The value's bytes, most significant first, from its registers.
    fn bytes(&self, registers: &[u16]) -> Vec<u8> {
        let mut words: Vec<u16> = registers.to_vec();
        if self.words == WordOrder::Little {
            words.reverse();
        }
        words
            .iter()
            .flat_map(|word| {
                let word = if self.byte_swap {
                    word.swap_bytes()
                } else {
                    *word
                };
                word.to_be_bytes()
            })
            .collect()
    }

    /// The registers of a value, from its bytes most significant first.
    fn registers(&self, bytes: &[u8]) -> Vec<u16> {
        let mut words: Vec<u16> = bytes
            .chunks(2)
            .map(|pair| {
                let word = u16::from_be_bytes([pair[0], pair[1]]);
                if self.byte_swap {
                    word.swap_bytes()
                } else {
                    word
                }
            })
            .collect();
        if self.words == WordOrder::Little {
            words.reverse();
        }
        words
    }

    /// The values in `registers` (a whole number of values), each as text
    /// and as JSON.
    pub(crate) fn decode(&self, registers: &[u16]) -> Vec<(String, Value)> {
        registers
            .chunks_exact(self.kind.registers())
            .map(|chunk| {
                let bytes = self.bytes(chunk);
                let array = |n: usize| -> [u8; 8] {
                    let mut out = [0u8; 8];
                    out[8 - n..].copy_from_slice(&bytes[..n]);
                    out
                };
                match self.kind {
                    ValueType::U16 => number(u16::from_be_bytes([bytes[0], bytes[1]])),
                    ValueType::I16 => number(i16::from_be_bytes([bytes[0], bytes[1]])),
                    ValueType::U32 => number(u64::from_be_bytes(array(4)) as u32),
                    ValueType::I32 => number(u64::from_be_bytes(array(4)) as u32 as i32),
                    ValueType::U64 => number(u64::from_be_bytes(array(8))),
                    ValueType::I64 => number(i64::from_be_bytes(array(8))),
                    ValueType::F32 => {
                        let single = f32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                        match single.is_finite() {
                            // The shortest text that reads back as this f32
                            // (0.1, not 0.10000000149011612), and that number.
                            true => {
                                let text = single.to_string();
                                let json = text.parse::<f64>().map_or(Value::Null, Value::from);
                                (text, json)
                            }
                            false => float(f64::from(single)),
                        }
                    }
                    ValueType::F64 => float(f64::from_be_bytes(array(8))),
                    ValueType::Hex => {
                        let text = format!("0x{:02X}{:02X}", bytes[0], bytes[1]);
                        (text.clone(), Value::from(text))
                    }
                    ValueType::Ascii => {
                        let text: String = bytes
                            .iter()
                            .map(|&b| match b {
                                0x20..=0x7E => char::from(b).to_string(),
                                other => format!("\\x{other:02X}"),
                            })
                            .collect();
                        (text.clone(), Value::from(text))
                    }
                }
            })
            .collect()
    }

    /// The registers `text` is written as: a value of the type, in range,
    /// or an error that says which and why, before anything is sent.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u16>> {
        let kind = self.kind;
        let out_of_range =
            || anyhow::anyhow!("{text:?} is not a {kind:?} value (or out of its range)");
        let bytes: Vec<u8> = match kind {
            ValueType::U16 => text
                .parse::<u16>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::I16 => text
                .parse::<i16>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::U32 => text
                .parse::<u32>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::I32 => text
                .parse::<i32>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::U64 => text
                .parse::<u64>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::I64 => text
                .parse::<i64>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::F32 => {
                let value: f64 = text.parse().map_err(|_| out_of_range())?;
                let single = value as f32;
                if value.is_finite() && !single.is_finite() {
                    bail!("{text} does not fit in an f32 (largest {})", f32::MAX);
                }
                single.to_be_bytes().to_vec()
            }
            ValueType::F64 => text
                .parse::<f64>()
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            ValueType::Hex => {
                let digits = text.trim_start_matches("0x").trim_start_matches("0X");
                u16::from_str_radix(digits, 16)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec()
            }
            ValueType::Ascii => {
                if !text.is_ascii() {
                    bail!("{text:?} is not ASCII");
                }
                let mut bytes = text.as_bytes().to_vec();
                if !bytes.len().is_multiple_of(2) {
                    bytes.push(0);
                }
                bytes
            }
        };
        Ok(self.registers(&bytes))
    }
}

fn number<T: Into<Value> + ToString + Copy>(value: T) -> (String, Value) {
    (value.to_string(), value.into())
}

/// A float as text, NaN and the infinities named; in JSON, which has no
/// such numbers, as strings.
fn float(value: f64) -> (String, Value) {
    if value.is_finite() {
        (value.to_string(), Value::from(value))
    } else {
        let text = if value.is_nan() {
            "NaN".to_owned()
        } else if value > 0.0 {
            "inf".to_owned()
        } else {
            "-inf".to_owned()
        };
        (text.clone(), Value::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(kind: ValueType, words: WordOrder, byte_swap: bool) -> Layout {
        Layout {
            kind,
            words,
            byte_swap,
        }
    }

    #[test]
    fn f32_in_each_word_and_byte_order() {
        let big = layout(ValueType::F32, WordOrder::Big, false);
        assert_eq!(big.encode("3.5").unwrap(), [0x4060, 0x0000]);
        assert_eq!(big.decode(&[0x4060, 0x0000])[0].0, "3.5");
        let little = layout(ValueType::F32, WordOrder::Little, false);
        assert_eq!(little.encode("3.5").unwrap(), [0x0000, 0x4060]);
        let swapped = layout(ValueType::F32, WordOrder::Big, true);
        assert_eq!(swapped.encode("3.5").unwrap(), [0x6040, 0x0000]);
        assert_eq!(swapped.decode(&[0x6040, 0x0000])[0].0, "3.5");
    }

    #[test]
    fn every_type_at_its_limits_round_trips() {
        for (kind, values) in [
            (ValueType::U16, &["0", "65535"][..]),
            (ValueType::I16, &["-32768", "32767"]),
            (ValueType::U32, &["0", "4294967295"]),
            (ValueType::I32, &["-2147483648", "2147483647"]),
            (ValueType::U64, &["18446744073709551615"]),
            (
                ValueType::I64,
                &["-9223372036854775808", "9223372036854775807"],
            ),
            (ValueType::F64, &["-1.7976931348623157e308", "0.1", "-0"]),
            (
                ValueType::F32,
                &["1.5", "-340282350000000000000000000000000000000"],
            ),
        ] {
            for words in [WordOrder::Big, WordOrder::Little] {
                for byte_swap in [false, true] {
                    let layout = layout(kind, words, byte_swap);
                    for text in values {
                        let registers = layout.encode(text).unwrap();
                        assert_eq!(registers.len(), kind.registers());
                        let back = &layout.decode(&registers)[0].0;
                        let parsed: f64 = text.parse().unwrap();
                        assert_eq!(back.parse::<f64>().unwrap(), parsed, "{kind:?} {text}");
                    }
                }
            }
        }
    }

    #[test]
    fn nan_and_infinities_are_named_and_out_of_range_is_refused() {
        let f32s = layout(ValueType::F32, WordOrder::Big, false);
        assert_eq!(f32s.decode(&[0x7FC0, 0x0000])[0].0, "NaN");
        assert_eq!(f32s.decode(&[0x7F80, 0x0000])[0].0, "inf");
        assert_eq!(f32s.decode(&[0xFF80, 0x0000])[0].1, Value::from("-inf"));
        assert!(f32s.encode("1e39").is_err());
        let i16s = layout(ValueType::I16, WordOrder::Big, false);
        assert_eq!(i16s.decode(&[0x8000])[0].0, "-32768");
        for (kind, text) in [
            (ValueType::I16, "32768"),
            (ValueType::U16, "-1"),
            (ValueType::U32, "4294967296"),
            (ValueType::I32, "2.5"),
            (ValueType::Hex, "0x10000"),
            (ValueType::Ascii, "é"),
        ] {
            let error = layout(kind, WordOrder::Big, false).encode(text);
            assert!(error.is_err(), "{kind:?} {text}");
        }
        let ascii = layout(ValueType::Ascii, WordOrder::Big, false);
        assert_eq!(ascii.encode("ABC").unwrap(), [0x4142, 0x4300]);
        assert_eq!(ascii.decode(&[0x4142, 0x4300])[1].0, "C\\x00");
    }
}
