//! The one error type of the codec, and the names of the fields it reports.

use core::fmt;

use crate::function::{ExceptionCode, function_name};

/// A field of an MBAP header or of a PDU, named in errors so that a user can
/// find the offending byte in a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// MBAP protocol identifier (must be 0).
    ProtocolId,
    /// MBAP length: the number of bytes after it (unit id + PDU), 2..=254.
    Length,
    /// The PDU as a whole: its length does not fit its function code.
    PduLength,
    /// The function code byte.
    FunctionCode,
    /// The exception code of an exception response.
    ExceptionCode,
    /// Quantity of coils, inputs or registers.
    Quantity,
    /// Read quantity of read/write multiple registers (0x17).
    ReadQuantity,
    /// Write quantity of read/write multiple registers (0x17).
    WriteQuantity,
    /// A one-byte byte count (or the request/response data length of 0x14/0x15).
    ByteCount,
    /// The output value of write single coil (0x0000 or 0xFF00).
    CoilValue,
    /// The reference type of a file record sub-request (always 6).
    ReferenceType,
    /// The length of a file record sub-request or sub-response.
    RecordLength,
    /// The FIFO count of a read FIFO queue response (at most 31).
    FifoCount,
    /// The MEI type of an encapsulated interface transport request (0x0E).
    MeiType,
    /// The read device id code of a device identification request (1..=4).
    ReadDeviceIdCode,
    /// The conformity level of a device identification response.
    ConformityLevel,
    /// The "more follows" byte of a device identification response (0x00 or 0xFF).
    MoreFollows,
    /// The number of objects of a device identification response.
    ObjectCount,
    /// The length of one device identification object value.
    ObjectLength,
    /// The caller's output buffer.
    OutputBuffer,
    /// The length of an RTU frame (unit id, PDU and CRC), 4..=256 bytes.
    FrameLength,
    /// The CRC-16 of an RTU frame.
    Crc,
}

impl Field {
    /// The field's name in `snake_case`, stable for machine-readable output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::ProtocolId => "protocol_id",
            Field::Length => "length",
            Field::PduLength => "pdu_length",
            Field::FunctionCode => "function_code",
            Field::ExceptionCode => "exception_code",
            Field::Quantity => "quantity",
            Field::ReadQuantity => "read_quantity",
            Field::WriteQuantity => "write_quantity",
            Field::ByteCount => "byte_count",
            Field::CoilValue => "coil_value",
            Field::ReferenceType => "reference_type",
            Field::RecordLength => "record_length",
            Field::FifoCount => "fifo_count",
            Field::MeiType => "mei_type",
            Field::ReadDeviceIdCode => "read_device_id_code",
            Field::ConformityLevel => "conformity_level",
            Field::MoreFollows => "more_follows",
            Field::ObjectCount => "object_count",
            Field::ObjectLength => "object_length",
            Field::OutputBuffer => "output_buffer",
            Field::FrameLength => "frame_length",
            Field::Crc => "crc",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can be wrong with a frame or a PDU, on decode or on encode.
///
/// Every variant names the field, the value found and the limit it broke, so
/// that an error can be logged, shown to an engineer, or turned into the
/// Modbus exception a server owes its client ([`CodecError::exception_code`]).
/// `function` is the function code (without the exception bit) the error was
/// found in, or `None` for the MBAP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// A field is outside the range the specification allows.
    OutOfRange {
        /// Function code the field belongs to, `None` for the MBAP header.
        function: Option<u8>,
        /// The field.
        field: Field,
        /// The value found (or asked for, on encode).
        value: u32,
        /// Smallest allowed value.
        min: u32,
        /// Largest allowed value.
        max: u32,
    },
    /// A field must equal a value derived from other fields (a byte count
    /// from a quantity, a PDU length from its byte count), and does not.
    Mismatch {
        /// Function code the field belongs to, `None` for the MBAP header.
        function: Option<u8>,
        /// The field.
        field: Field,
        /// The value found.
        value: u32,
        /// The value the other fields require.
        expected: u32,
    },
    /// A field holds a value that is none of the values it may take.
    InvalidValue {
        /// Function code the field belongs to, `None` for the MBAP header.
        function: Option<u8>,
        /// The field.
        field: Field,
        /// The value found.
        value: u32,
    },
    /// The MBAP protocol id is not 0 (Modbus). A server silently discards
    /// such a frame (Implementation Guide 3.1.3): `frame_len` is the length
    /// of the whole ADU, header included, so the caller can skip it.
    ProtocolId {
        /// The protocol id found.
        value: u16,
        /// Length of the whole ADU as its header announces it.
        frame_len: usize,
    },
    /// A function code the codec does not know: code 0, or one the
    /// specification does not define and that is not in the user-defined
    /// ranges 65..=72, 100..=110.
    UnsupportedFunction {
        /// The function code (exception bit cleared for responses).
        code: u8,
    },
    /// The CRC of an RTU frame is not the CRC of its bytes (Serial Line
    /// V1.02, 2.5.1.2): a byte was corrupted on the line, or the bytes are
    /// not a frame. The receiver discards the frame without answering.
    Crc {
        /// The CRC of the frame's bytes.
        computed: u16,
        /// The CRC the frame carries (its last two bytes, low byte first).
        received: u16,
        /// Length of the frame the CRC was checked over, CRC included.
        frame_len: usize,
    },
    /// An RTU frame whose length cannot be known from its function code:
    /// code 0, the user-defined codes, an MEI type other than 0x0E, a
    /// request with the exception bit. Such functions cannot be carried on
    /// a serial line or as RTU over TCP.
    NoLengthRule {
        /// The function code byte.
        code: u8,
    },
    /// The caller's output buffer is too small for what is being encoded.
    InsufficientSize {
        /// Bytes the encoding needs.
        required: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl CodecError {
    /// The field the error is about.
    pub fn field(&self) -> Field {
        match *self {
            CodecError::OutOfRange { field, .. }
            | CodecError::Mismatch { field, .. }
            | CodecError::InvalidValue { field, .. } => field,
            CodecError::ProtocolId { .. } => Field::ProtocolId,
            CodecError::UnsupportedFunction { .. } | CodecError::NoLengthRule { .. } => {
                Field::FunctionCode
            }
            CodecError::Crc { .. } => Field::Crc,
            CodecError::InsufficientSize { .. } => Field::OutputBuffer,
        }
    }

    /// The offending value.
    pub fn value(&self) -> u32 {
        match *self {
            CodecError::OutOfRange { value, .. }
            | CodecError::Mismatch { value, .. }
            | CodecError::InvalidValue { value, .. } => value,
            CodecError::ProtocolId { value, .. } => u32::from(value),
            CodecError::UnsupportedFunction { code } | CodecError::NoLengthRule { code } => {
                u32::from(code)
            }
            CodecError::Crc { received, .. } => u32::from(received),
            CodecError::InsufficientSize { available, .. } => saturate(available),
        }
    }

    /// The function code the error was found in, if it is inside a PDU.
    pub fn function(&self) -> Option<u8> {
        match *self {
            CodecError::OutOfRange { function, .. }
            | CodecError::Mismatch { function, .. }
            | CodecError::InvalidValue { function, .. } => function,
            CodecError::UnsupportedFunction { code } | CodecError::NoLengthRule { code } => {
                Some(code)
            }
            CodecError::ProtocolId { .. }
            | CodecError::Crc { .. }
            | CodecError::InsufficientSize { .. } => None,
        }
    }

    /// Whether the byte stream is still in step after this error.
    ///
    /// Errors inside a PDU and a non-zero protocol id leave the MBAP framing
    /// intact: the caller can skip the ADU and decode the next one. A bad
    /// MBAP length does not: the stream cannot be resynchronised and the
    /// connection must be closed. No RTU framing error leaves an RTU stream
    /// in step: the reader hunts for the next frame (or the line's silence).
    pub fn is_framing_intact(&self) -> bool {
        !matches!(
            self,
            CodecError::OutOfRange { function: None, .. }
                | CodecError::Mismatch { function: None, .. }
                | CodecError::InvalidValue { function: None, .. }
                | CodecError::OutOfRange {
                    field: Field::FrameLength,
                    ..
                }
                | CodecError::Crc { .. }
                | CodecError::NoLengthRule { .. }
        )
    }

    /// The exception a server answers a request with when decoding it failed
    /// this way (Application Protocol V1.1b3, section 7 and the per-function
    /// state diagrams): 0x01 for a function it does not serve, 0x02 for a bad
    /// file reference type, 0x03 for any other bad value. `None` where no
    /// response is owed: MBAP header errors and encoding errors.
    pub fn exception_code(&self) -> Option<ExceptionCode> {
        match *self {
            CodecError::UnsupportedFunction { .. } | CodecError::NoLengthRule { .. } => {
                Some(ExceptionCode::IllegalFunction)
            }
            CodecError::OutOfRange {
                field: Field::FrameLength,
                ..
            } => None,
            CodecError::InvalidValue {
                function: Some(_),
                field: Field::MeiType,
                ..
            } => Some(ExceptionCode::IllegalFunction),
            CodecError::InvalidValue {
                function: Some(_),
                field: Field::ReferenceType,
                ..
            } => Some(ExceptionCode::IllegalDataAddress),
            CodecError::OutOfRange {
                function: Some(_), ..
            }
            | CodecError::Mismatch {
                function: Some(_), ..
            }
            | CodecError::InvalidValue {
                function: Some(_), ..
            } => Some(ExceptionCode::IllegalDataValue),
            _ => None,
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct In(Option<u8>);

impl fmt::Display for In {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("MBAP header"),
            Some(code) => match function_name(code) {
                Some(name) => write!(f, "{name} (0x{code:02X})"),
                None => write!(f, "function 0x{code:02X}"),
            },
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CodecError::OutOfRange {
                function,
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "{}: {field} {value} is outside the allowed range {min}..={max}",
                In(function)
            ),
            CodecError::Mismatch {
                function,
                field,
                value,
                expected,
            } => write!(
                f,
                "{}: {field} is {value} but must be {expected}",
                In(function)
            ),
            CodecError::InvalidValue {
                function,
                field,
                value,
            } => write!(
                f,
                "{}: {field} 0x{value:X} is not an allowed value",
                In(function)
            ),
            CodecError::ProtocolId { value, frame_len } => write!(
                f,
                "MBAP header: protocol_id {value} is not 0 (Modbus); the {frame_len}-byte frame is discarded"
            ),
            CodecError::UnsupportedFunction { code } => write!(
                f,
                "function_code 0x{code:02X} is not a Modbus function code"
            ),
            CodecError::Crc {
                computed,
                received,
                frame_len,
            } => write!(
                f,
                "RTU frame of {frame_len} bytes: crc 0x{received:04X} is not 0x{computed:04X}, the CRC of its bytes"
            ),
            CodecError::NoLengthRule { code } => write!(
                f,
                "{}: no length rule, so it cannot be framed as RTU (a serial line or RTU over TCP)",
                In(Some(code))
            ),
            CodecError::InsufficientSize {
                required,
                available,
            } => write!(
                f,
                "output_buffer of {available} bytes is too small: {required} bytes required"
            ),
        }
    }
}

impl core::error::Error for CodecError {}
