//! The settings of a serial line (the port, its speed and framing): the
//! adapter opens the port with them, the configuration file and the flags
//! describe them, and the line's silence follows from the speed
//! ([`super::rtu::silence_at`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Parity of each character (Serial Line V1.02, 2.5.1: even is the
/// default; with none, two stop bits are the rule, though many devices use
/// one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity (the specification's default).
    Even,
    /// Odd parity.
    Odd,
}

impl Parity {
    /// The name used on the command line and in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Parity {
    type Err = String;

    fn from_str(s: &str) -> Result<Parity, String> {
        match s {
            "none" => Ok(Parity::None),
            "even" => Ok(Parity::Even),
            "odd" => Ok(Parity::Odd),
            other => Err(format!("parity {other:?} is not one of none, even, odd")),
        }
    }
}

/// Stop bits after each character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopBits {
    /// One stop bit.
    One,
    /// Two stop bits.
    Two,
}

impl StopBits {
    /// The number of bits.
    pub fn count(self) -> u8 {
        match self {
            StopBits::One => 1,
            StopBits::Two => 2,
        }
    }

    /// 1 or 2; anything else is `None`.
    pub fn from_count(count: u64) -> Option<StopBits> {
        match count {
            1 => Some(StopBits::One),
            2 => Some(StopBits::Two),
            _ => None,
        }
    }
}

/// The settings of a serial line: the port and its framing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The device, e.g. `/dev/ttyUSB0`.
    pub path: PathBuf,
    /// Bits per second (default 19,200, the specification's).
    pub baud: u32,
    /// Parity (default even, the specification's).
    pub parity: Parity,
    /// Stop bits (default 1).
    pub stop_bits: StopBits,
}

impl SerialLine {
    /// The specification's default speed.
    pub const DEFAULT_BAUD: u32 = 19_200;

    /// `path` at 19,200 baud, even parity, one stop bit: the
    /// specification's defaults (Serial Line V1.02, 2.5.1 and 3.3.1).
    pub fn new(path: impl Into<PathBuf>) -> SerialLine {
        SerialLine {
            path: path.into(),
            baud: Self::DEFAULT_BAUD,
            parity: Parity::Even,
            stop_bits: StopBits::One,
        }
    }
}

impl fmt::Display for SerialLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} baud, 8 data bits, parity {}, {} stop bit{}",
            self.path.display(),
            self.baud,
            self.parity,
            self.stop_bits.count(),
            if self.stop_bits == StopBits::One {
                ""
            } else {
                "s"
            }
        )
    }
}
