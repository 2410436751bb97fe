//! The variable-length items inside file record (0x14, 0x15) and device
//! identification (0x2B / 0x0E) PDUs.

use core::fmt;

use crate::data::{Registers, WireItem};
use crate::error::{CodecError, Field};
use crate::function::limits::FILE_REFERENCE_TYPE;

/// Registers one read file record (0x14) sub-request may ask for: the
/// response data is at most 0xF5 bytes and a sub-response takes `2 + 2 * n`
/// of them, so `n <= 121`.
pub const MAX_READ_FILE_RECORD_LENGTH: u16 = 121;

/// Registers one write file record (0x15) sub-request may carry: the request
/// data is at most 0xFB bytes and a sub-request takes `7 + 2 * n` of them,
/// so `n <= 122`.
pub const MAX_WRITE_FILE_RECORD_LENGTH: u16 = 122;

fn truncated(function: u8, field: Field, value: usize, expected: usize) -> CodecError {
    CodecError::Mismatch {
        function: Some(function),
        field,
        value: u32::try_from(value).unwrap_or(u32::MAX),
        expected: u32::try_from(expected).unwrap_or(u32::MAX),
    }
}

fn check_reference_type(function: u8, value: u8) -> Result<(), CodecError> {
    if value == FILE_REFERENCE_TYPE {
        Ok(())
    } else {
        Err(CodecError::InvalidValue {
            function: Some(function),
            field: Field::ReferenceType,
            value: u32::from(value),
        })
    }
}

fn check_record_length(function: u8, registers: usize, max: u16) -> Result<(), CodecError> {
    if (1..=usize::from(max)).contains(&registers) {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            function: Some(function),
            field: Field::RecordLength,
            value: u32::try_from(registers).unwrap_or(u32::MAX),
            min: 1,
            max: u32::from(max),
        })
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// One sub-request of read file record (0x14): `record_length` registers
/// from record `record_number` of file `file_number`. Reference type 6 is
/// implied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRecordRead {
    /// File number (the specification numbers files from 1).
    pub file_number: u16,
    /// First record (0..=9999 in the specification; the server decides).
    pub record_number: u16,
    /// Registers to read, 1..=[`MAX_READ_FILE_RECORD_LENGTH`].
    pub record_length: u16,
}

impl FileRecordRead {
    pub(crate) fn check(&self, function: u8) -> Result<(), CodecError> {
        check_record_length(
            function,
            usize::from(self.record_length),
            MAX_READ_FILE_RECORD_LENGTH,
        )
    }
}

impl WireItem<'_> for FileRecordRead {
    fn read(input: &[u8], function: u8) -> Result<(Self, usize), CodecError> {
        if input.len() < 7 {
            return Err(truncated(function, Field::ByteCount, input.len(), 7));
        }
        check_reference_type(function, input[0])?;
        let item = FileRecordRead {
            file_number: be16(input, 1),
            record_number: be16(input, 3),
            record_length: be16(input, 5),
        };
        item.check(function)?;
        Ok((item, 7))
    }

    fn wire_len(&self) -> usize {
        7
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = FILE_REFERENCE_TYPE;
        out[1..3].copy_from_slice(&self.file_number.to_be_bytes());
        out[3..5].copy_from_slice(&self.record_number.to_be_bytes());
        out[5..7].copy_from_slice(&self.record_length.to_be_bytes());
    }
}

/// One sub-request of write file record (0x15), and of its echoed response:
/// `data` written from record `record_number` of file `file_number`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRecordWrite<'a> {
    /// File number.
    pub file_number: u16,
    /// First record written.
    pub record_number: u16,
    /// The register values, 1..=[`MAX_WRITE_FILE_RECORD_LENGTH`] of them.
    pub data: Registers<'a>,
}

impl FileRecordWrite<'_> {
    pub(crate) fn check(&self, function: u8) -> Result<(), CodecError> {
        check_record_length(function, self.data.len(), MAX_WRITE_FILE_RECORD_LENGTH)
    }
}

impl<'a> WireItem<'a> for FileRecordWrite<'a> {
    fn read(input: &'a [u8], function: u8) -> Result<(Self, usize), CodecError> {
        if input.len() < 7 {
            return Err(truncated(function, Field::ByteCount, input.len(), 7));
        }
        check_reference_type(function, input[0])?;
        let length = usize::from(be16(input, 5));
        check_record_length(function, length, MAX_WRITE_FILE_RECORD_LENGTH)?;
        let end = 7 + 2 * length;
        let bytes = input.get(7..end).ok_or_else(|| {
            truncated(function, Field::RecordLength, length, (input.len() - 7) / 2)
        })?;
        let data = Registers::from_be_bytes(bytes)
            .ok_or_else(|| truncated(function, Field::RecordLength, length, bytes.len() / 2))?;
        let item = FileRecordWrite {
            file_number: be16(input, 1),
            record_number: be16(input, 3),
            data,
        };
        Ok((item, end))
    }

    fn wire_len(&self) -> usize {
        7 + self.data.byte_len()
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = FILE_REFERENCE_TYPE;
        out[1..3].copy_from_slice(&self.file_number.to_be_bytes());
        out[3..5].copy_from_slice(&self.record_number.to_be_bytes());
        // `check` bounds the length to MAX_WRITE_FILE_RECORD_LENGTH before any write.
        let registers = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        out[5..7].copy_from_slice(&registers.to_be_bytes());
        self.data.write_be(&mut out[7..]);
    }
}

/// One sub-response of read file record (0x14): the registers read for the
/// sub-request in the same position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRecordData<'a> {
    /// The register values, 1..=[`MAX_READ_FILE_RECORD_LENGTH`] of them.
    pub data: Registers<'a>,
}

impl FileRecordData<'_> {
    pub(crate) fn check(&self, function: u8) -> Result<(), CodecError> {
        check_record_length(function, self.data.len(), MAX_READ_FILE_RECORD_LENGTH)
    }
}

impl<'a> WireItem<'a> for FileRecordData<'a> {
    fn read(input: &'a [u8], function: u8) -> Result<(Self, usize), CodecError> {
        if input.len() < 2 {
            return Err(truncated(function, Field::ByteCount, input.len(), 2));
        }
        // File response length: the reference type byte plus the data.
        let length = usize::from(input[0]);
        if length % 2 == 0 {
            return Err(CodecError::InvalidValue {
                function: Some(function),
                field: Field::RecordLength,
                value: u32::from(input[0]),
            });
        }
        check_reference_type(function, input[1])?;
        check_record_length(function, (length - 1) / 2, MAX_READ_FILE_RECORD_LENGTH)?;
        let end = 1 + length;
        let bytes = input
            .get(2..end)
            .ok_or_else(|| truncated(function, Field::RecordLength, length, input.len() - 1))?;
        // `length` is odd, so the data part is even.
        let data = Registers::from_be_bytes(bytes)
            .ok_or_else(|| truncated(function, Field::RecordLength, length, bytes.len() + 1))?;
        Ok((FileRecordData { data }, end))
    }

    fn wire_len(&self) -> usize {
        2 + self.data.byte_len()
    }

    fn write(&self, out: &mut [u8]) {
        // `check` bounds the data to 2 * MAX_READ_FILE_RECORD_LENGTH bytes.
        out[0] = u8::try_from(1 + self.data.byte_len()).unwrap_or(u8::MAX);
        out[1] = FILE_REFERENCE_TYPE;
        self.data.write_be(&mut out[2..]);
    }
}

/// Read device id code of a device identification request (0x2B / 0x0E).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReadDeviceIdCode {
    /// 01: stream access to the basic objects (0x00..=0x02).
    Basic = 1,
    /// 02: stream access to the regular objects (0x03..=0x7F).
    Regular = 2,
    /// 03: stream access to the extended objects (0x80..=0xFF).
    Extended = 3,
    /// 04: one specific object (individual access).
    Individual = 4,
}

impl ReadDeviceIdCode {
    /// The code for a byte.
    pub fn from_code(code: u8, function: u8) -> Result<Self, CodecError> {
        Ok(match code {
            1 => ReadDeviceIdCode::Basic,
            2 => ReadDeviceIdCode::Regular,
            3 => ReadDeviceIdCode::Extended,
            4 => ReadDeviceIdCode::Individual,
            _ => {
                return Err(CodecError::OutOfRange {
                    function: Some(function),
                    field: Field::ReadDeviceIdCode,
                    value: u32::from(code),
                    min: 1,
                    max: 4,
                });
            }
        })
    }

    /// The code's byte on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Conformity level of a device identification response: which access
/// kinds and which object categories the device supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConformityLevel {
    /// 0x01: basic identification, stream access only.
    BasicStream = 0x01,
    /// 0x02: regular identification, stream access only.
    RegularStream = 0x02,
    /// 0x03: extended identification, stream access only.
    ExtendedStream = 0x03,
    /// 0x81: basic identification, stream and individual access.
    Basic = 0x81,
    /// 0x82: regular identification, stream and individual access.
    Regular = 0x82,
    /// 0x83: extended identification, stream and individual access.
    Extended = 0x83,
}

impl ConformityLevel {
    /// The level for a byte.
    pub fn from_code(code: u8, function: u8) -> Result<Self, CodecError> {
        Ok(match code {
            0x01 => ConformityLevel::BasicStream,
            0x02 => ConformityLevel::RegularStream,
            0x03 => ConformityLevel::ExtendedStream,
            0x81 => ConformityLevel::Basic,
            0x82 => ConformityLevel::Regular,
            0x83 => ConformityLevel::Extended,
            _ => {
                return Err(CodecError::InvalidValue {
                    function: Some(function),
                    field: Field::ConformityLevel,
                    value: u32::from(code),
                });
            }
        })
    }

    /// The level's byte on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One object of a device identification response: 0x00 vendor name,
/// 0x01 product code, 0x02 major/minor revision (the mandatory basic
/// objects), 0x03..=0x06 regular objects, 0x80..=0xFF device-specific.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceIdObject<'a> {
    /// Object id.
    pub id: u8,
    /// Object value, at most 255 bytes (the standard objects are ASCII).
    pub value: &'a [u8],
}

impl<'a> DeviceIdObject<'a> {
    /// The value as text, if it is UTF-8 (the standard objects are ASCII).
    pub fn value_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.value).ok()
    }

    pub(crate) fn check(&self, function: u8) -> Result<(), CodecError> {
        if self.value.len() <= 255 {
            Ok(())
        } else {
            Err(CodecError::OutOfRange {
                function: Some(function),
                field: Field::ObjectLength,
                value: u32::try_from(self.value.len()).unwrap_or(u32::MAX),
                min: 0,
                max: 255,
            })
        }
    }
}

impl fmt::Debug for DeviceIdObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("DeviceIdObject");
        s.field("id", &self.id);
        match self.value_str() {
            Some(text) => s.field("value", &text),
            None => s.field("value", &self.value),
        };
        s.finish()
    }
}

impl<'a> WireItem<'a> for DeviceIdObject<'a> {
    fn read(input: &'a [u8], function: u8) -> Result<(Self, usize), CodecError> {
        if input.len() < 2 {
            return Err(truncated(function, Field::ObjectLength, input.len(), 2));
        }
        let length = usize::from(input[1]);
        let value = input
            .get(2..2 + length)
            .ok_or_else(|| truncated(function, Field::ObjectLength, length, input.len() - 2))?;
        Ok((
            DeviceIdObject {
                id: input[0],
                value,
            },
            2 + length,
        ))
    }

    fn wire_len(&self) -> usize {
        2 + self.value.len()
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = self.id;
        // `check` bounds the value to 255 bytes before any write.
        out[1] = u8::try_from(self.value.len()).unwrap_or(u8::MAX);
        out[2..].copy_from_slice(self.value);
    }
}
