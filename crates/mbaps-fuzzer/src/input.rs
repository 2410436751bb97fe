//! What the fuzzer sends: ADUs, how each is handed to the connection, and
//! the reactions the specification allows to each.

use mbaps_codec::limits::{MBAP_HEADER_LEN, MBAP_LENGTH};
use mbaps_codec::{ExceptionCode, FunctionCode, Request};
use serde::{Deserialize, Serialize};

/// How an ADU's bytes are handed to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "as")]
pub enum Delivery {
    /// In a TLS record of its own (on plain Modbus/TCP, a write of its
    /// own).
    Record,
    /// In one record with the ADU that follows it: two ADUs in one record.
    Joined,
    /// In two records, the first holding its first `at` bytes.
    Split {
        /// Bytes in the first record.
        at: usize,
    },
    /// Its first `at` bytes, then close_notify (on plain Modbus/TCP the
    /// write side shut): the last step of its connection.
    CloseAfter {
        /// Bytes sent before the close.
        at: usize,
    },
}

/// The reactions the specification allows to one ADU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// A request that decodes: its response, or an exception its function
    /// may return.
    Answer,
    /// A request the specification says must be refused (it does not
    /// decode: an unknown function, a quantity or a byte count out of
    /// range, a value not allowed; or its addresses run past 0xFFFF): an
    /// exception; a normal response is `accepted_malformed`.
    Refusal,
    /// A frame with a protocol id other than 0: discarded without an
    /// answer (Implementation Guide 3.1.3); an answer is
    /// `accepted_malformed`.
    Silence,
    /// A frame the device may close the connection on: an MBAP length
    /// outside 2..=254 or not the frame's, function code 0 or 0x80, a
    /// frame cut short. Anything but a crash or a hang of the device.
    MayClose,
    /// A request that decodes, to a unit id the campaign was not told the
    /// device serves (0 or 255, from a framing mutation): a device reached
    /// directly answers it as it answers [`Expect::Answer`] (0xFF, or 0,
    /// addresses a device reached directly: SPEC "MBAP header"); a server
    /// of several units, or a gateway, may leave it unanswered, as a
    /// serial device does a unit id not its own, or answer 0x0A/0x0B.
    AnswerIfServed,
    /// A request to be refused ([`Expect::Refusal`]) to a unit id the
    /// device may not serve ([`Expect::AnswerIfServed`]): unanswered, or
    /// refused.
    RefusalIfServed,
}

impl Expect {
    /// Whether the device may close the connection on this input.
    pub fn may_close(self) -> bool {
        self == Expect::MayClose
    }

    /// Whether the device may leave this input unanswered.
    pub fn may_be_silent(self) -> bool {
        matches!(
            self,
            Expect::Silence | Expect::MayClose | Expect::AnswerIfServed | Expect::RefusalIfServed
        )
    }

    /// Whether an answer, if one comes, must be a refusal (an exception).
    pub fn must_refuse(self) -> bool {
        matches!(self, Expect::Refusal | Expect::RefusalIfServed)
    }

    /// What is expected of this input sent to a unit id the device may
    /// not serve: what was owed becomes owed only if the unit is served.
    pub fn for_unserved_unit(self) -> Expect {
        match self {
            Expect::Answer => Expect::AnswerIfServed,
            Expect::Refusal => Expect::RefusalIfServed,
            other => other,
        }
    }
}

/// One ADU of a connection, as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The bytes, MBAP header included (in the replay file, hex; at most
    /// [`MAX_ADU_BYTES`]).
    #[serde(with = "hex_bytes")]
    pub adu: Vec<u8>,
    /// How they are handed to the connection.
    pub delivery: Delivery,
    /// What the device may do.
    pub expect: Expect,
}

impl Step {
    /// `adu`, delivered as `delivery`, with the reactions its bytes allow.
    pub fn new(adu: Vec<u8>, delivery: Delivery) -> Step {
        let expect = match delivery {
            // Cut short by the close: nothing is owed for it.
            Delivery::CloseAfter { at } if at < adu.len() => Expect::MayClose,
            _ => expect_of(&adu),
        };
        Step {
            adu,
            delivery,
            expect,
        }
    }

    /// The transaction id of the header (0 for a frame too short).
    pub fn transaction_id(&self) -> u16 {
        match self.adu.as_slice() {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    /// The protocol id of the header (0 for a frame too short).
    pub fn protocol_id(&self) -> u16 {
        match self.adu.as_slice() {
            [_, _, a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    /// The unit id (0 for a frame too short).
    pub fn unit_id(&self) -> u8 {
        self.adu.get(6).copied().unwrap_or(0)
    }

    /// The function code (`None` for a frame without one).
    pub fn function(&self) -> Option<u8> {
        self.adu.get(MBAP_HEADER_LEN).copied()
    }

    /// The PDU (function code and data).
    pub fn pdu(&self) -> &[u8] {
        self.adu.get(MBAP_HEADER_LEN..).unwrap_or(&[])
    }
}

/// The most bytes one step sends: an ADU of the largest PDU. A replay file
/// with a longer one is refused.
pub const MAX_ADU_BYTES: usize = MBAP_HEADER_LEN + mbaps_codec::limits::MAX_PDU_LEN;

/// An ADU in a replay file: hex, bounded.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() > 2 * super::MAX_ADU_BYTES {
            return Err(D::Error::custom(format!(
                "an adu of {} hex digits: at most {} bytes are sent in one step",
                text.len(),
                super::MAX_ADU_BYTES
            )));
        }
        hex::decode(&text).map_err(|e| D::Error::custom(format!("adu {text:?}: {e}")))
    }
}

/// The reactions the bytes of one ADU allow (see [`Expect`]).
pub fn expect_of(adu: &[u8]) -> Expect {
    if adu.len() <= MBAP_HEADER_LEN {
        return Expect::MayClose;
    }
    let length = u16::from_be_bytes([adu[4], adu[5]]);
    if !MBAP_LENGTH.contains(&length) || usize::from(length) != adu.len() - 6 {
        return Expect::MayClose;
    }
    if u16::from_be_bytes([adu[2], adu[3]]) != 0 {
        return Expect::Silence;
    }
    let pdu = &adu[MBAP_HEADER_LEN..];
    if pdu[0] & 0x7F == 0 {
        return Expect::MayClose;
    }
    match Request::decode(pdu) {
        Ok(request) if runs_past_the_address_space(&request) => Expect::Refusal,
        Ok(_) => Expect::Answer,
        Err(_) => Expect::Refusal,
    }
}

/// Whether a range of `request` runs past address 0xFFFF (address plus
/// quantity wrapping): the device must answer 0x02.
fn runs_past_the_address_space(request: &Request<'_>) -> bool {
    mbaps_authz::accesses(request).any(|access| access.last > 0xFFFF)
}

/// Whether a function may answer with `code` (Application Protocol 7):
/// 0x01 to 0x06, 0x0A and 0x0B for any function, 0x08 (memory parity) for
/// the file record functions only.
pub fn exception_allowed(function: u8, code: ExceptionCode) -> bool {
    match code {
        ExceptionCode::MemoryParityError => matches!(
            FunctionCode::from_code(function),
            Ok(FunctionCode::ReadFileRecord | FunctionCode::WriteFileRecord)
        ),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adu(pid: u16, length: u16, pdu: &[u8]) -> Vec<u8> {
        let mut adu = vec![0, 7];
        adu.extend_from_slice(&pid.to_be_bytes());
        adu.extend_from_slice(&length.to_be_bytes());
        adu.push(1);
        adu.extend_from_slice(pdu);
        adu
    }

    #[test]
    fn the_bytes_say_what_the_device_may_do() {
        let read = [0x03, 0, 0, 0, 2];
        assert_eq!(expect_of(&adu(0, 6, &read)), Expect::Answer);
        assert_eq!(expect_of(&adu(5, 6, &read)), Expect::Silence);
        assert_eq!(
            expect_of(&adu(0, 7, &read)),
            Expect::MayClose,
            "length one long"
        );
        assert_eq!(expect_of(&adu(0, 300, &read)), Expect::MayClose);
        assert_eq!(
            expect_of(&adu(0, 2, &[0x00])),
            Expect::MayClose,
            "function 0"
        );
        assert_eq!(expect_of(&adu(0, 2, &[0x80])), Expect::MayClose);
        assert_eq!(
            expect_of(&adu(0, 6, &[0x03, 0, 0, 0, 0])),
            Expect::Refusal,
            "quantity 0"
        );
        assert_eq!(
            expect_of(&adu(0, 6, &[0x03, 0xFF, 0xFF, 0, 2])),
            Expect::Refusal,
            "wraps"
        );
        assert_eq!(
            expect_of(&adu(0, 2, &[0x09])),
            Expect::Refusal,
            "no such function"
        );
        assert_eq!(
            expect_of(&adu(0, 2, &[0x07])),
            Expect::Answer,
            "read exception status"
        );
        assert_eq!(
            expect_of(&adu(0, 3, &[0x41, 9])),
            Expect::Answer,
            "user-defined"
        );
        assert_eq!(expect_of(&[0, 1, 0]), Expect::MayClose);
        let cut = Step::new(adu(0, 6, &read), Delivery::CloseAfter { at: 9 });
        assert_eq!(cut.expect, Expect::MayClose);
        assert_eq!(
            (cut.transaction_id(), cut.unit_id(), cut.function()),
            (7, 1, Some(3))
        );
    }

    #[test]
    fn memory_parity_is_for_file_records_only() {
        assert!(exception_allowed(0x14, ExceptionCode::MemoryParityError));
        assert!(!exception_allowed(0x03, ExceptionCode::MemoryParityError));
        assert!(exception_allowed(
            0x03,
            ExceptionCode::GatewayTargetFailedToRespond
        ));
    }
}
