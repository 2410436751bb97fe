//! Request PDUs: what a client sends and a server decodes.

use crate::data::{Bits, List, Registers};
use crate::error::{CodecError, Field};
use crate::function::{FunctionCode, limits};
use crate::items::{FileRecordRead, FileRecordWrite, ReadDeviceIdCode};
use crate::pdu::{self, MEI_READ_DEVICE_ID};
use crate::wire::{Reader, Writer, check_eq, check_range};

/// The diagnostics (0x08) sub-functions that change the device's state:
/// restart communications option, change ASCII input delimiter, force
/// listen only mode, clear counters and diagnostic register, clear overrun
/// counter and flag (Application Protocol V1.1b3, 6.8.1).
pub const DIAGNOSTICS_CHANGING_STATE: [u16; 5] = [0x01, 0x03, 0x04, 0x0A, 0x14];

/// The diagnostics (0x08) sub-functions that only read: return query data,
/// the diagnostic register and the counters (Application Protocol V1.1b3,
/// 6.8.1). Every other sub-function, reserved and vendor ones included, is
/// taken to change state.
pub const DIAGNOSTICS_READING: [u16; 10] =
    [0x00, 0x02, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12];

/// A request PDU, typed by function code. Data borrows from the decoded
/// bytes (or, for encoding, from the caller's values): nothing is copied.
///
/// Every limit of the Application Protocol V1.1b3 is checked by
/// [`Request::decode`] and again by [`Request::encode`], so a request that
/// encodes is one a conforming server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// 0x01: read `quantity` (1..=2000) coils from `address`.
    ReadCoils {
        /// First coil.
        address: u16,
        /// Number of coils, 1..=2000.
        quantity: u16,
    },
    /// 0x02: read `quantity` (1..=2000) discrete inputs from `address`.
    ReadDiscreteInputs {
        /// First input.
        address: u16,
        /// Number of inputs, 1..=2000.
        quantity: u16,
    },
    /// 0x03: read `quantity` (1..=125) holding registers from `address`.
    ReadHoldingRegisters {
        /// First register.
        address: u16,
        /// Number of registers, 1..=125.
        quantity: u16,
    },
    /// 0x04: read `quantity` (1..=125) input registers from `address`.
    ReadInputRegisters {
        /// First register.
        address: u16,
        /// Number of registers, 1..=125.
        quantity: u16,
    },
    /// 0x05: set one coil ON (`true`, 0xFF00 on the wire) or OFF (0x0000).
    WriteSingleCoil {
        /// The coil.
        address: u16,
        /// ON or OFF.
        value: bool,
    },
    /// 0x06: write one holding register.
    WriteSingleRegister {
        /// The register.
        address: u16,
        /// Its new value.
        value: u16,
    },
    /// 0x07: read the eight exception status outputs (serial line).
    ReadExceptionStatus,
    /// 0x08: diagnostics `sub_function` with one data word (serial line).
    /// "Return query data" (0x0000) may carry more words in the
    /// specification; this codec, as RTU framing, takes one. Some
    /// sub-functions change the device's state
    /// ([`Request::changes_state`]).
    Diagnostics {
        /// The sub-function.
        sub_function: u16,
        /// Its data word.
        data: u16,
    },
    /// 0x0B: the status word and event count (serial line).
    GetCommEventCounter,
    /// 0x0C: the status, counters and the last events (serial line).
    GetCommEventLog,
    /// 0x0F: write 1..=1968 coils from `address`.
    WriteMultipleCoils {
        /// First coil.
        address: u16,
        /// The values; their number is the quantity.
        values: Bits<'a>,
    },
    /// 0x10: write 1..=123 holding registers from `address`.
    WriteMultipleRegisters {
        /// First register.
        address: u16,
        /// The values; their number is the quantity.
        values: Registers<'a>,
    },
    /// 0x11: the server's id, run indicator and device-specific data
    /// (serial line).
    ReportServerId,
    /// 0x14: read file records, one sub-request each (byte count 7..=245).
    ReadFileRecord {
        /// The sub-requests, 1..=35 of them.
        records: List<'a, FileRecordRead>,
    },
    /// 0x15: write file records (request data length 9..=251).
    WriteFileRecord {
        /// The sub-requests with their data.
        records: List<'a, FileRecordWrite<'a>>,
    },
    /// 0x16: `register = (register & and_mask) | (or_mask & !and_mask)`.
    MaskWriteRegister {
        /// The holding register.
        address: u16,
        /// AND mask.
        and_mask: u16,
        /// OR mask.
        or_mask: u16,
    },
    /// 0x17: write `values` (1..=121) at `write_address`, then read
    /// `read_quantity` (1..=125) registers from `read_address`.
    ReadWriteMultipleRegisters {
        /// First register read.
        read_address: u16,
        /// Registers read, 1..=125.
        read_quantity: u16,
        /// First register written.
        write_address: u16,
        /// Values written; their number is the write quantity.
        values: Registers<'a>,
    },
    /// 0x18: read the FIFO queue whose count register is at `address`.
    ReadFifoQueue {
        /// FIFO pointer address.
        address: u16,
    },
    /// 0x2B / MEI 0x0E: read device identification objects.
    ReadDeviceIdentification {
        /// Which objects, and stream or individual access.
        code: ReadDeviceIdCode,
        /// First object (stream access) or the object (individual access).
        object_id: u8,
    },
    /// A user-defined function code (65..=72, 100..=110), carried as is.
    UserDefined {
        /// The function code.
        function: u8,
        /// Everything after the function code, at most 252 bytes.
        data: &'a [u8],
    },
}

impl<'a> Request<'a> {
    /// The request's function code.
    pub fn function(&self) -> FunctionCode {
        match *self {
            Request::ReadCoils { .. } => FunctionCode::ReadCoils,
            Request::ReadDiscreteInputs { .. } => FunctionCode::ReadDiscreteInputs,
            Request::ReadHoldingRegisters { .. } => FunctionCode::ReadHoldingRegisters,
            Request::ReadInputRegisters { .. } => FunctionCode::ReadInputRegisters,
            Request::WriteSingleCoil { .. } => FunctionCode::WriteSingleCoil,
            Request::WriteSingleRegister { .. } => FunctionCode::WriteSingleRegister,
            Request::ReadExceptionStatus => FunctionCode::ReadExceptionStatus,
            Request::Diagnostics { .. } => FunctionCode::Diagnostics,
            Request::GetCommEventCounter => FunctionCode::GetCommEventCounter,
            Request::GetCommEventLog => FunctionCode::GetCommEventLog,
            Request::WriteMultipleCoils { .. } => FunctionCode::WriteMultipleCoils,
            Request::WriteMultipleRegisters { .. } => FunctionCode::WriteMultipleRegisters,
            Request::ReportServerId => FunctionCode::ReportServerId,
            Request::ReadFileRecord { .. } => FunctionCode::ReadFileRecord,
            Request::WriteFileRecord { .. } => FunctionCode::WriteFileRecord,
            Request::MaskWriteRegister { .. } => FunctionCode::MaskWriteRegister,
            Request::ReadWriteMultipleRegisters { .. } => FunctionCode::ReadWriteMultipleRegisters,
            Request::ReadFifoQueue { .. } => FunctionCode::ReadFifoQueue,
            Request::ReadDeviceIdentification { .. } => FunctionCode::ReadDeviceIdentification,
            Request::UserDefined { function, .. } => FunctionCode::UserDefined(function),
        }
    }

    /// Whether the request changes the device's state: the writes, every
    /// diagnostics sub-function but the reading ones
    /// ([`DIAGNOSTICS_READING`]: restart communications, listen-only mode,
    /// clearing counters, and reserved or vendor sub-functions, whose effect
    /// the device defines), and the user-defined codes. A gateway retries only the others after
    /// a timeout; a fuzzer sends them only when allowed to write.
    pub fn changes_state(&self) -> bool {
        match *self {
            Request::ReadCoils { .. }
            | Request::ReadDiscreteInputs { .. }
            | Request::ReadHoldingRegisters { .. }
            | Request::ReadInputRegisters { .. }
            | Request::ReadExceptionStatus
            | Request::GetCommEventCounter
            | Request::GetCommEventLog
            | Request::ReportServerId
            | Request::ReadFileRecord { .. }
            | Request::ReadFifoQueue { .. }
            | Request::ReadDeviceIdentification { .. } => false,
            Request::Diagnostics { sub_function, .. } => {
                !DIAGNOSTICS_READING.contains(&sub_function)
            }
            Request::WriteSingleCoil { .. }
            | Request::WriteSingleRegister { .. }
            | Request::WriteMultipleCoils { .. }
            | Request::WriteMultipleRegisters { .. }
            | Request::WriteFileRecord { .. }
            | Request::MaskWriteRegister { .. }
            | Request::ReadWriteMultipleRegisters { .. }
            | Request::UserDefined { .. } => true,
        }
    }

    /// Decodes a request PDU: the function code and its data, as carried in
    /// an [`Adu`](crate::Adu). Every byte must belong to the request, and
    /// every limit [`Request::validate`] checks holds for what it returns.
    pub fn decode(pdu: &'a [u8]) -> Result<Self, CodecError> {
        let (function, body) = pdu::split(pdu)?;
        let code = FunctionCode::from_code(function)?;
        let mut r = Reader::new(function, body);
        let request = match code {
            FunctionCode::ReadCoils => Request::ReadCoils {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::READ_BITS)?,
            },
            FunctionCode::ReadDiscreteInputs => Request::ReadDiscreteInputs {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::READ_BITS)?,
            },
            FunctionCode::ReadHoldingRegisters => Request::ReadHoldingRegisters {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::READ_REGISTERS)?,
            },
            FunctionCode::ReadInputRegisters => Request::ReadInputRegisters {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::READ_REGISTERS)?,
            },
            FunctionCode::WriteSingleCoil => Request::WriteSingleCoil {
                address: r.u16()?,
                value: pdu::coil_value(function, r.u16()?)?,
            },
            FunctionCode::WriteSingleRegister => Request::WriteSingleRegister {
                address: r.u16()?,
                value: r.u16()?,
            },
            FunctionCode::ReadExceptionStatus => Request::ReadExceptionStatus,
            FunctionCode::Diagnostics => Request::Diagnostics {
                sub_function: r.u16()?,
                data: r.u16()?,
            },
            FunctionCode::GetCommEventCounter => Request::GetCommEventCounter,
            FunctionCode::GetCommEventLog => Request::GetCommEventLog,
            FunctionCode::ReportServerId => Request::ReportServerId,
            FunctionCode::WriteMultipleCoils => {
                let address = r.u16()?;
                let quantity = r.u16()?;
                check_range(function, Field::Quantity, quantity, limits::WRITE_COILS)?;
                let byte_count = usize::from(r.u8()?);
                let expected = usize::from(quantity).div_ceil(8);
                check_eq(function, Field::ByteCount, byte_count, expected)?;
                let bytes = r.bytes(byte_count)?;
                let values = Bits::from_packed(bytes, usize::from(quantity))
                    .map_err(|expected| pdu::byte_count_error(function, bytes.len(), expected))?;
                Request::WriteMultipleCoils { address, values }
            }
            FunctionCode::WriteMultipleRegisters => {
                let address = r.u16()?;
                let quantity = r.u16()?;
                check_range(function, Field::Quantity, quantity, limits::WRITE_REGISTERS)?;
                let values = pdu::registers_with_byte_count(&mut r, quantity)?;
                Request::WriteMultipleRegisters { address, values }
            }
            FunctionCode::ReadFileRecord => {
                let byte_count = r.u8()?;
                check_range(
                    function,
                    Field::ByteCount,
                    byte_count,
                    limits::READ_FILE_REQUEST_BYTES,
                )?;
                let whole = usize::from(byte_count) / 7 * 7;
                check_eq(function, Field::ByteCount, usize::from(byte_count), whole)?;
                let records = List::from_wire(r.bytes(usize::from(byte_count))?, function)?;
                Request::ReadFileRecord { records }
            }
            FunctionCode::WriteFileRecord => Request::WriteFileRecord {
                records: pdu::write_file_records(&mut r)?,
            },
            FunctionCode::MaskWriteRegister => Request::MaskWriteRegister {
                address: r.u16()?,
                and_mask: r.u16()?,
                or_mask: r.u16()?,
            },
            FunctionCode::ReadWriteMultipleRegisters => {
                let read_address = r.u16()?;
                let read_quantity = r.u16()?;
                check_range(
                    function,
                    Field::ReadQuantity,
                    read_quantity,
                    limits::READ_REGISTERS,
                )?;
                let write_address = r.u16()?;
                let write_quantity = r.u16()?;
                check_range(
                    function,
                    Field::WriteQuantity,
                    write_quantity,
                    limits::READ_WRITE_WRITE_REGISTERS,
                )?;
                let values = pdu::registers_with_byte_count(&mut r, write_quantity)?;
                Request::ReadWriteMultipleRegisters {
                    read_address,
                    read_quantity,
                    write_address,
                    values,
                }
            }
            FunctionCode::ReadFifoQueue => Request::ReadFifoQueue { address: r.u16()? },
            FunctionCode::ReadDeviceIdentification => {
                pdu::mei_type(&mut r)?;
                Request::ReadDeviceIdentification {
                    code: ReadDeviceIdCode::from_code(r.u8()?, function)?,
                    object_id: r.u8()?,
                }
            }
            FunctionCode::UserDefined(function) => Request::UserDefined {
                function,
                data: r.rest(),
            },
        };
        // Every limit `validate` checks has been checked above, field by
        // field as it was read; the round-trip tests and fuzz targets hold
        // decode and `validate` to the same rules.
        r.finish()?;
        Ok(request)
    }

    /// Checks every limit the specification sets on this request.
    pub fn validate(&self) -> Result<(), CodecError> {
        let function = self.function().code();
        match *self {
            Request::ReadCoils { quantity, .. } | Request::ReadDiscreteInputs { quantity, .. } => {
                check_range(function, Field::Quantity, quantity, limits::READ_BITS)
            }
            Request::ReadHoldingRegisters { quantity, .. }
            | Request::ReadInputRegisters { quantity, .. } => {
                check_range(function, Field::Quantity, quantity, limits::READ_REGISTERS)
            }
            Request::WriteMultipleCoils { values, .. } => {
                pdu::check_len(function, Field::Quantity, values.len(), limits::WRITE_COILS)
            }
            Request::WriteMultipleRegisters { values, .. } => pdu::check_len(
                function,
                Field::Quantity,
                values.len(),
                limits::WRITE_REGISTERS,
            ),
            Request::ReadFileRecord { records } => {
                for record in records {
                    record.check(function)?;
                }
                pdu::check_byte_count(
                    function,
                    records.wire_len(),
                    limits::READ_FILE_REQUEST_BYTES,
                )
            }
            Request::WriteFileRecord { records } => {
                pdu::check_write_file_records(function, records)
            }
            Request::ReadWriteMultipleRegisters {
                read_quantity,
                values,
                ..
            } => {
                check_range(
                    function,
                    Field::ReadQuantity,
                    read_quantity,
                    limits::READ_REGISTERS,
                )?;
                pdu::check_len(
                    function,
                    Field::WriteQuantity,
                    values.len(),
                    limits::READ_WRITE_WRITE_REGISTERS,
                )
            }
            Request::UserDefined { function, data } => pdu::check_user_defined(function, data),
            Request::WriteSingleCoil { .. }
            | Request::WriteSingleRegister { .. }
            | Request::ReadExceptionStatus
            | Request::Diagnostics { .. }
            | Request::GetCommEventCounter
            | Request::GetCommEventLog
            | Request::ReportServerId
            | Request::MaskWriteRegister { .. }
            | Request::ReadFifoQueue { .. }
            | Request::ReadDeviceIdentification { .. } => Ok(()),
        }
    }

    /// Bytes [`Request::encode`] writes: the function code and its data.
    pub fn encoded_len(&self) -> usize {
        1 + match *self {
            Request::ReadCoils { .. }
            | Request::ReadDiscreteInputs { .. }
            | Request::ReadHoldingRegisters { .. }
            | Request::ReadInputRegisters { .. }
            | Request::WriteSingleCoil { .. }
            | Request::WriteSingleRegister { .. }
            | Request::Diagnostics { .. } => 4,
            Request::ReadExceptionStatus
            | Request::GetCommEventCounter
            | Request::GetCommEventLog
            | Request::ReportServerId => 0,
            Request::WriteMultipleCoils { values, .. } => 5 + values.packed_len(),
            Request::WriteMultipleRegisters { values, .. } => 5 + values.byte_len(),
            Request::ReadFileRecord { records } => 1 + records.wire_len(),
            Request::WriteFileRecord { records } => 1 + records.wire_len(),
            Request::MaskWriteRegister { .. } => 6,
            Request::ReadWriteMultipleRegisters { values, .. } => 9 + values.byte_len(),
            Request::ReadFifoQueue { .. } => 2,
            Request::ReadDeviceIdentification { .. } => 3,
            Request::UserDefined { data, .. } => data.len(),
        }
    }

    /// Writes the PDU into `out` and returns its length. Checks every limit
    /// first ([`Request::validate`]); never allocates.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        self.validate()?;
        let function = self.function().code();
        let len = self.encoded_len();
        pdu::check_pdu_len(function, len)?;
        let mut w = Writer::with_capacity(out, len)?;
        w.u8(function)?;
        match *self {
            Request::ReadCoils { address, quantity }
            | Request::ReadDiscreteInputs { address, quantity }
            | Request::ReadHoldingRegisters { address, quantity }
            | Request::ReadInputRegisters { address, quantity } => {
                w.u16(address)?;
                w.u16(quantity)?;
            }
            Request::WriteSingleCoil { address, value } => {
                w.u16(address)?;
                w.u16(if value {
                    limits::COIL_ON
                } else {
                    limits::COIL_OFF
                })?;
            }
            Request::WriteSingleRegister { address, value } => {
                w.u16(address)?;
                w.u16(value)?;
            }
            Request::Diagnostics { sub_function, data } => {
                w.u16(sub_function)?;
                w.u16(data)?;
            }
            Request::ReadExceptionStatus
            | Request::GetCommEventCounter
            | Request::GetCommEventLog
            | Request::ReportServerId => {}
            Request::WriteMultipleCoils { address, values } => {
                w.u16(address)?;
                pdu::write_bits_with_quantity(&mut w, function, values)?;
            }
            Request::WriteMultipleRegisters { address, values } => {
                w.u16(address)?;
                pdu::write_registers_with_quantity(&mut w, function, values)?;
            }
            Request::ReadFileRecord { records } => pdu::write_list(&mut w, function, records)?,
            Request::WriteFileRecord { records } => pdu::write_list(&mut w, function, records)?,
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                w.u16(address)?;
                w.u16(and_mask)?;
                w.u16(or_mask)?;
            }
            Request::ReadWriteMultipleRegisters {
                read_address,
                read_quantity,
                write_address,
                values,
            } => {
                w.u16(read_address)?;
                w.u16(read_quantity)?;
                w.u16(write_address)?;
                pdu::write_registers_with_quantity(&mut w, function, values)?;
            }
            Request::ReadFifoQueue { address } => w.u16(address)?,
            Request::ReadDeviceIdentification { code, object_id } => {
                w.u8(MEI_READ_DEVICE_ID)?;
                w.u8(code.code())?;
                w.u8(object_id)?;
            }
            Request::UserDefined { data, .. } => w.bytes(data)?,
        }
        Ok(w.written())
    }
}
