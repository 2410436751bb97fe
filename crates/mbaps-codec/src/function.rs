//! Function codes, exception codes and the numeric limits of the specification.

use core::fmt;

use crate::error::{CodecError, Field};

/// The limits of the MBAP header and of each function code
/// (Implementation Guide 3.1.3; Application Protocol V1.1b3, section 6).
pub mod limits {
    use core::ops::RangeInclusive;

    /// Length of the MBAP header: transaction id, protocol id, length, unit id.
    pub const MBAP_HEADER_LEN: usize = 7;
    /// Allowed values of the MBAP length field (unit id + PDU).
    pub const MBAP_LENGTH: RangeInclusive<u16> = 2..=254;
    /// Largest PDU: function code + data.
    pub const MAX_PDU_LEN: usize = 253;
    /// Largest ADU: MBAP header + PDU.
    pub const MAX_ADU_LEN: usize = MBAP_HEADER_LEN + MAX_PDU_LEN;
    /// Quantity of coils or discrete inputs read by 0x01 / 0x02.
    pub const READ_BITS: RangeInclusive<u16> = 1..=2000;
    /// Quantity of registers read by 0x03 / 0x04, and the read part of 0x17.
    pub const READ_REGISTERS: RangeInclusive<u16> = 1..=125;
    /// Quantity of coils written by 0x0F.
    pub const WRITE_COILS: RangeInclusive<u16> = 1..=0x07B0;
    /// Quantity of registers written by 0x10.
    pub const WRITE_REGISTERS: RangeInclusive<u16> = 1..=123;
    /// Quantity of registers written by the write part of 0x17.
    pub const READ_WRITE_WRITE_REGISTERS: RangeInclusive<u16> = 1..=121;
    /// Byte count of a read file record request (0x14).
    pub const READ_FILE_REQUEST_BYTES: RangeInclusive<u8> = 0x07..=0xF5;
    /// Response data length of a read file record response (0x14).
    ///
    /// The specification's table says 0x07..=0xF5, copied from the request;
    /// a response to a one-register read is 4 bytes long, so the smallest
    /// well-formed response (one sub-response of one register) is accepted.
    pub const READ_FILE_RESPONSE_BYTES: RangeInclusive<u8> = 0x04..=0xF5;
    /// Request data length of a write file record request and response (0x15).
    pub const WRITE_FILE_BYTES: RangeInclusive<u8> = 0x09..=0xFB;
    /// The only file record reference type.
    pub const FILE_REFERENCE_TYPE: u8 = 6;
    /// Values in a FIFO queue (0x18).
    pub const FIFO_COUNT: RangeInclusive<u16> = 0..=31;
    /// User-defined function codes, carried as raw PDUs.
    pub const USER_DEFINED: [RangeInclusive<u8>; 2] = [65..=72, 100..=110];
    /// Events in a get comm event log response (0x0C).
    pub const COMM_EVENT_LOG_EVENTS: RangeInclusive<u16> = 0..=64;
    /// Byte count of a report server id response (0x11): the server id,
    /// the run indicator and the device's own data.
    pub const REPORT_SERVER_ID_BYTES: RangeInclusive<u8> = 1..=251;
    /// Write single coil: the value that means ON.
    pub const COIL_ON: u16 = 0xFF00;
    /// Write single coil: the value that means OFF.
    pub const COIL_OFF: u16 = 0x0000;
}

/// A Modbus function code this codec types: every public code of the
/// Application Protocol V1.1b3 (the serial-line codes 0x07, 0x08, 0x0B,
/// 0x0C and 0x11 among them: the specification marks them serial-line only,
/// yet many TCP devices answer them) and the user-defined ones.
///
/// Code 0 and the codes the specification does not define are not
/// representable: [`FunctionCode::from_code`] rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FunctionCode {
    /// 0x01 read coils.
    ReadCoils,
    /// 0x02 read discrete inputs.
    ReadDiscreteInputs,
    /// 0x03 read holding registers.
    ReadHoldingRegisters,
    /// 0x04 read input registers.
    ReadInputRegisters,
    /// 0x05 write single coil.
    WriteSingleCoil,
    /// 0x06 write single register.
    WriteSingleRegister,
    /// 0x07 read exception status (serial line).
    ReadExceptionStatus,
    /// 0x08 diagnostics, with a sub-function (serial line).
    Diagnostics,
    /// 0x0B get comm event counter (serial line).
    GetCommEventCounter,
    /// 0x0C get comm event log (serial line).
    GetCommEventLog,
    /// 0x0F write multiple coils.
    WriteMultipleCoils,
    /// 0x10 write multiple registers.
    WriteMultipleRegisters,
    /// 0x11 report server id (serial line).
    ReportServerId,
    /// 0x14 read file record.
    ReadFileRecord,
    /// 0x15 write file record.
    WriteFileRecord,
    /// 0x16 mask write register.
    MaskWriteRegister,
    /// 0x17 read/write multiple registers.
    ReadWriteMultipleRegisters,
    /// 0x18 read FIFO queue.
    ReadFifoQueue,
    /// 0x2B / MEI 0x0E read device identification.
    ReadDeviceIdentification,
    /// A user-defined code (65..=72 or 100..=110), carried as a raw PDU.
    UserDefined(u8),
}

impl FunctionCode {
    /// The serial-line codes (Application Protocol V1.1b3, section 6:
    /// "serial line only"), in code order. Not in [`FunctionCode::STANDARD`]:
    /// policies grant them by name, by code or as the group `serial`,
    /// never as part of `all`.
    pub const SERIAL_LINE: [FunctionCode; 5] = [
        FunctionCode::ReadExceptionStatus,
        FunctionCode::Diagnostics,
        FunctionCode::GetCommEventCounter,
        FunctionCode::GetCommEventLog,
        FunctionCode::ReportServerId,
    ];

    /// Every standard function code of Modbus/TCP this codec types, in
    /// code order (the serial-line codes are [`FunctionCode::SERIAL_LINE`]).
    pub const STANDARD: [FunctionCode; 14] = [
        FunctionCode::ReadCoils,
        FunctionCode::ReadDiscreteInputs,
        FunctionCode::ReadHoldingRegisters,
        FunctionCode::ReadInputRegisters,
        FunctionCode::WriteSingleCoil,
        FunctionCode::WriteSingleRegister,
        FunctionCode::WriteMultipleCoils,
        FunctionCode::WriteMultipleRegisters,
        FunctionCode::ReadFileRecord,
        FunctionCode::WriteFileRecord,
        FunctionCode::MaskWriteRegister,
        FunctionCode::ReadWriteMultipleRegisters,
        FunctionCode::ReadFifoQueue,
        FunctionCode::ReadDeviceIdentification,
    ];

    /// The function code for a byte, or [`CodecError::UnsupportedFunction`].
    pub const fn from_code(code: u8) -> Result<Self, CodecError> {
        Ok(match code {
            0x01 => FunctionCode::ReadCoils,
            0x02 => FunctionCode::ReadDiscreteInputs,
            0x03 => FunctionCode::ReadHoldingRegisters,
            0x04 => FunctionCode::ReadInputRegisters,
            0x05 => FunctionCode::WriteSingleCoil,
            0x06 => FunctionCode::WriteSingleRegister,
            0x07 => FunctionCode::ReadExceptionStatus,
            0x08 => FunctionCode::Diagnostics,
            0x0B => FunctionCode::GetCommEventCounter,
            0x0C => FunctionCode::GetCommEventLog,
            0x0F => FunctionCode::WriteMultipleCoils,
            0x10 => FunctionCode::WriteMultipleRegisters,
            0x11 => FunctionCode::ReportServerId,
            0x14 => FunctionCode::ReadFileRecord,
            0x15 => FunctionCode::WriteFileRecord,
            0x16 => FunctionCode::MaskWriteRegister,
            0x17 => FunctionCode::ReadWriteMultipleRegisters,
            0x18 => FunctionCode::ReadFifoQueue,
            0x2B => FunctionCode::ReadDeviceIdentification,
            65..=72 | 100..=110 => FunctionCode::UserDefined(code),
            _ => return Err(CodecError::UnsupportedFunction { code }),
        })
    }

    /// The code's byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            FunctionCode::ReadCoils => 0x01,
            FunctionCode::ReadDiscreteInputs => 0x02,
            FunctionCode::ReadHoldingRegisters => 0x03,
            FunctionCode::ReadInputRegisters => 0x04,
            FunctionCode::WriteSingleCoil => 0x05,
            FunctionCode::WriteSingleRegister => 0x06,
            FunctionCode::ReadExceptionStatus => 0x07,
            FunctionCode::Diagnostics => 0x08,
            FunctionCode::GetCommEventCounter => 0x0B,
            FunctionCode::GetCommEventLog => 0x0C,
            FunctionCode::WriteMultipleCoils => 0x0F,
            FunctionCode::WriteMultipleRegisters => 0x10,
            FunctionCode::ReportServerId => 0x11,
            FunctionCode::ReadFileRecord => 0x14,
            FunctionCode::WriteFileRecord => 0x15,
            FunctionCode::MaskWriteRegister => 0x16,
            FunctionCode::ReadWriteMultipleRegisters => 0x17,
            FunctionCode::ReadFifoQueue => 0x18,
            FunctionCode::ReadDeviceIdentification => 0x2B,
            FunctionCode::UserDefined(code) => code,
        }
    }

    /// The specification's name of the function, in lower case.
    pub const fn name(self) -> &'static str {
        match self {
            FunctionCode::ReadCoils => "read coils",
            FunctionCode::ReadDiscreteInputs => "read discrete inputs",
            FunctionCode::ReadHoldingRegisters => "read holding registers",
            FunctionCode::ReadInputRegisters => "read input registers",
            FunctionCode::WriteSingleCoil => "write single coil",
            FunctionCode::WriteSingleRegister => "write single register",
            FunctionCode::ReadExceptionStatus => "read exception status",
            FunctionCode::Diagnostics => "diagnostics",
            FunctionCode::GetCommEventCounter => "get comm event counter",
            FunctionCode::GetCommEventLog => "get comm event log",
            FunctionCode::WriteMultipleCoils => "write multiple coils",
            FunctionCode::WriteMultipleRegisters => "write multiple registers",
            FunctionCode::ReportServerId => "report server id",
            FunctionCode::ReadFileRecord => "read file record",
            FunctionCode::WriteFileRecord => "write file record",
            FunctionCode::MaskWriteRegister => "mask write register",
            FunctionCode::ReadWriteMultipleRegisters => "read/write multiple registers",
            FunctionCode::ReadFifoQueue => "read FIFO queue",
            FunctionCode::ReadDeviceIdentification => "read device identification",
            FunctionCode::UserDefined(_) => "user-defined function",
        }
    }
}

impl fmt::Display for FunctionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.code())
    }
}

/// The name of any function code byte, for messages. `None` for bytes the
/// specification does not name.
pub const fn function_name(code: u8) -> Option<&'static str> {
    match FunctionCode::from_code(code) {
        Ok(function) => Some(function.name()),
        Err(_) => None,
    }
}

/// Any function code byte, for messages: `write single register (0x06)`,
/// or `function 0x42` for a byte the specification does not name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionName(pub u8);

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match function_name(self.0) {
            Some(name) => write!(f, "{name} (0x{:02X})", self.0),
            None => write!(f, "function 0x{:02X}", self.0),
        }
    }
}

/// A Modbus exception code (Application Protocol V1.1b3, section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExceptionCode {
    /// 0x01: the function is not allowed or not supported; also the answer
    /// to a request that authorization denies.
    IllegalFunction = 0x01,
    /// 0x02: the data address is not allowed.
    IllegalDataAddress = 0x02,
    /// 0x03: a value in the request is not allowed.
    IllegalDataValue = 0x03,
    /// 0x04: an unrecoverable error while performing the action.
    ServerDeviceFailure = 0x04,
    /// 0x05: accepted, but it will take long (programming commands).
    Acknowledge = 0x05,
    /// 0x06: busy with a long command, or no free transaction slot.
    ServerDeviceBusy = 0x06,
    /// 0x08: the extended file area failed a consistency check.
    MemoryParityError = 0x08,
    /// 0x0A: the gateway has no path to the target.
    GatewayPathUnavailable = 0x0A,
    /// 0x0B: the gateway's target did not respond.
    GatewayTargetFailedToRespond = 0x0B,
}

impl ExceptionCode {
    /// Every exception code, in code order.
    pub const ALL: [ExceptionCode; 9] = [
        ExceptionCode::IllegalFunction,
        ExceptionCode::IllegalDataAddress,
        ExceptionCode::IllegalDataValue,
        ExceptionCode::ServerDeviceFailure,
        ExceptionCode::Acknowledge,
        ExceptionCode::ServerDeviceBusy,
        ExceptionCode::MemoryParityError,
        ExceptionCode::GatewayPathUnavailable,
        ExceptionCode::GatewayTargetFailedToRespond,
    ];

    /// The exception code for a byte; `function` is only for the error.
    pub const fn from_code(code: u8, function: u8) -> Result<Self, CodecError> {
        Ok(match code {
            0x01 => ExceptionCode::IllegalFunction,
            0x02 => ExceptionCode::IllegalDataAddress,
            0x03 => ExceptionCode::IllegalDataValue,
            0x04 => ExceptionCode::ServerDeviceFailure,
            0x05 => ExceptionCode::Acknowledge,
            0x06 => ExceptionCode::ServerDeviceBusy,
            0x08 => ExceptionCode::MemoryParityError,
            0x0A => ExceptionCode::GatewayPathUnavailable,
            0x0B => ExceptionCode::GatewayTargetFailedToRespond,
            _ => {
                return Err(CodecError::InvalidValue {
                    function: Some(function),
                    field: Field::ExceptionCode,
                    value: code as u32,
                });
            }
        })
    }

    /// The code's byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The specification's name of the exception, in lower case.
    pub const fn name(self) -> &'static str {
        match self {
            ExceptionCode::IllegalFunction => "illegal function",
            ExceptionCode::IllegalDataAddress => "illegal data address",
            ExceptionCode::IllegalDataValue => "illegal data value",
            ExceptionCode::ServerDeviceFailure => "server device failure",
            ExceptionCode::Acknowledge => "acknowledge",
            ExceptionCode::ServerDeviceBusy => "server device busy",
            ExceptionCode::MemoryParityError => "memory parity error",
            ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
            ExceptionCode::GatewayTargetFailedToRespond => {
                "gateway target device failed to respond"
            }
        }
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_either_maps_to_a_code_that_maps_back_or_is_rejected() {
        for byte in 0..=u8::MAX {
            match FunctionCode::from_code(byte) {
                Ok(function) => assert_eq!(function.code(), byte),
                Err(err) => assert_eq!(err, CodecError::UnsupportedFunction { code: byte }),
            }
        }
    }

    #[test]
    fn serial_line_codes_are_typed_and_zero_and_undefined_codes_are_not() {
        for function in FunctionCode::SERIAL_LINE {
            assert_eq!(FunctionCode::from_code(function.code()), Ok(function));
            assert!(!FunctionCode::STANDARD.contains(&function));
        }
        for code in [0x00, 0x09, 0x0A, 0x0D, 0x0E, 0x80, 0xFF, 64, 73, 99, 111] {
            assert!(FunctionCode::from_code(code).is_err(), "0x{code:02X}");
        }
        for code in [65, 72, 100, 110] {
            assert_eq!(
                FunctionCode::from_code(code),
                Ok(FunctionCode::UserDefined(code))
            );
        }
    }

    #[test]
    fn exception_codes_round_trip_and_unknown_ones_are_rejected() {
        for code in ExceptionCode::ALL {
            assert_eq!(ExceptionCode::from_code(code.code(), 3), Ok(code));
        }
        for byte in [0x00, 0x07, 0x09, 0x0C, 0xFF] {
            assert!(ExceptionCode::from_code(byte, 3).is_err());
        }
    }
}
