//! Response PDUs: what a server sends and a client decodes, exceptions included.

use crate::data::{Bits, List, Registers};
use crate::error::{CodecError, Field};
use crate::function::{ExceptionCode, FunctionCode, limits};
use crate::items::{
    ConformityLevel, DeviceIdObject, FileRecordData, FileRecordWrite, ReadDeviceIdCode,
};
use crate::pdu::{self, MEI_READ_DEVICE_ID};
use crate::wire::{Reader, Writer, check_eq, check_range, count_u8};

/// The exception bit of a response's function code.
pub const EXCEPTION_BIT: u8 = 0x80;

/// Byte counts of read responses: at most 2000 bits or 125 registers.
const READ_BITS_BYTES: core::ops::RangeInclusive<u8> = 1..=250;
const READ_REGISTER_BYTES: core::ops::RangeInclusive<u8> = 2..=250;

/// The answer to a device identification request (0x2B / 0x0E).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIdentification<'a> {
    /// The read device id code of the request, echoed.
    pub code: ReadDeviceIdCode,
    /// What the device supports.
    pub conformity_level: ConformityLevel,
    /// Whether more objects follow in a further transaction (0xFF on the wire).
    pub more_follows: bool,
    /// The object to ask for next when `more_follows` (0 otherwise).
    pub next_object_id: u8,
    /// The objects of this response, at most 255.
    pub objects: List<'a, DeviceIdObject<'a>>,
}

/// A response PDU, typed by function code, or an exception response.
/// Data borrows from the decoded bytes (or the caller's values).
///
/// A read response carries no quantity: its values are as many as its byte
/// count holds. [`Bits`] of a read coils / discrete inputs response are a
/// multiple of 8; the client keeps the first `quantity` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// 0x01: coil values (byte count 1..=250).
    ReadCoils {
        /// The values, padded to whole bytes.
        values: Bits<'a>,
    },
    /// 0x02: discrete input values (byte count 1..=250).
    ReadDiscreteInputs {
        /// The values, padded to whole bytes.
        values: Bits<'a>,
    },
    /// 0x03: holding register values (1..=125).
    ReadHoldingRegisters {
        /// The values.
        values: Registers<'a>,
    },
    /// 0x04: input register values (1..=125).
    ReadInputRegisters {
        /// The values.
        values: Registers<'a>,
    },
    /// 0x05: the request, echoed.
    WriteSingleCoil {
        /// The coil.
        address: u16,
        /// ON or OFF.
        value: bool,
    },
    /// 0x06: the request, echoed.
    WriteSingleRegister {
        /// The register.
        address: u16,
        /// The value written.
        value: u16,
    },
    /// 0x07: the eight exception status outputs (serial line).
    ReadExceptionStatus {
        /// One bit per output.
        status: u8,
    },
    /// 0x08: the sub-function and its data word, echoed or answered
    /// (serial line).
    Diagnostics {
        /// The request's sub-function.
        sub_function: u16,
        /// The data word.
        data: u16,
    },
    /// 0x0B: the status word and the event count (serial line).
    GetCommEventCounter {
        /// 0xFFFF while a previous command is still being processed.
        status: u16,
        /// Messages processed successfully.
        event_count: u16,
    },
    /// 0x0C: status, counters and 0..=64 event bytes (serial line).
    GetCommEventLog {
        /// 0xFFFF while a previous command is still being processed.
        status: u16,
        /// Messages processed successfully.
        event_count: u16,
        /// Messages processed.
        message_count: u16,
        /// The events, most recent first.
        events: &'a [u8],
    },
    /// 0x0F: where and how many coils were written (1..=1968).
    WriteMultipleCoils {
        /// First coil.
        address: u16,
        /// Coils written.
        quantity: u16,
    },
    /// 0x10: where and how many registers were written (1..=123).
    WriteMultipleRegisters {
        /// First register.
        address: u16,
        /// Registers written.
        quantity: u16,
    },
    /// 0x11: the server's id, run indicator and its own data, as the
    /// device defines them (serial line; byte count 1..=251).
    ReportServerId {
        /// The bytes after the byte count.
        data: &'a [u8],
    },
    /// 0x14: one sub-response per sub-request.
    ReadFileRecord {
        /// The sub-responses.
        records: List<'a, FileRecordData<'a>>,
    },
    /// 0x15: the request, echoed.
    WriteFileRecord {
        /// The sub-requests with their data.
        records: List<'a, FileRecordWrite<'a>>,
    },
    /// 0x16: the request, echoed.
    MaskWriteRegister {
        /// The holding register.
        address: u16,
        /// AND mask.
        and_mask: u16,
        /// OR mask.
        or_mask: u16,
    },
    /// 0x17: the registers read (1..=125).
    ReadWriteMultipleRegisters {
        /// The values.
        values: Registers<'a>,
    },
    /// 0x18: the queue's values, oldest first (0..=31).
    ReadFifoQueue {
        /// The values.
        values: Registers<'a>,
    },
    /// 0x2B / MEI 0x0E: device identification objects.
    ReadDeviceIdentification(DeviceIdentification<'a>),
    /// A user-defined function code (65..=72, 100..=110), carried as is.
    UserDefined {
        /// The function code.
        function: u8,
        /// Everything after the function code, at most 252 bytes.
        data: &'a [u8],
    },
    /// An exception response: function code with the top bit set, and a code.
    Exception {
        /// The function code of the request (exception bit clear), 1..=127.
        function: u8,
        /// Why the request failed.
        code: ExceptionCode,
    },
}

impl<'a> Response<'a> {
    /// The function code of the request this answers (exception bit clear).
    pub fn function_code(&self) -> u8 {
        match *self {
            Response::ReadCoils { .. } => 0x01,
            Response::ReadDiscreteInputs { .. } => 0x02,
            Response::ReadHoldingRegisters { .. } => 0x03,
            Response::ReadInputRegisters { .. } => 0x04,
            Response::WriteSingleCoil { .. } => 0x05,
            Response::WriteSingleRegister { .. } => 0x06,
            Response::ReadExceptionStatus { .. } => 0x07,
            Response::Diagnostics { .. } => 0x08,
            Response::GetCommEventCounter { .. } => 0x0B,
            Response::GetCommEventLog { .. } => 0x0C,
            Response::WriteMultipleCoils { .. } => 0x0F,
            Response::WriteMultipleRegisters { .. } => 0x10,
            Response::ReportServerId { .. } => 0x11,
            Response::ReadFileRecord { .. } => 0x14,
            Response::WriteFileRecord { .. } => 0x15,
            Response::MaskWriteRegister { .. } => 0x16,
            Response::ReadWriteMultipleRegisters { .. } => 0x17,
            Response::ReadFifoQueue { .. } => 0x18,
            Response::ReadDeviceIdentification(_) => 0x2B,
            Response::UserDefined { function, .. } | Response::Exception { function, .. } => {
                function
            }
        }
    }

    /// Whether this is an exception response.
    pub fn is_exception(&self) -> bool {
        matches!(self, Response::Exception { .. })
    }

    /// The exception response a server sends for a failed request.
    pub fn exception(function: u8, code: ExceptionCode) -> Self {
        Response::Exception {
            function: function & !EXCEPTION_BIT,
            code,
        }
    }

    /// Decodes a response PDU. A function code with the top bit set is an
    /// exception response; every other byte must belong to the response, and
    /// every limit [`Response::validate`] checks holds for what it returns.
    pub fn decode(pdu: &'a [u8]) -> Result<Self, CodecError> {
        let (byte, body) = pdu::split(pdu)?;
        if byte & EXCEPTION_BIT != 0 {
            return decode_exception(byte & !EXCEPTION_BIT, body);
        }
        let code = FunctionCode::from_code(byte)?;
        let mut r = Reader::new(byte, body);
        let response = match code {
            FunctionCode::ReadCoils => Response::ReadCoils {
                values: read_bits(&mut r)?,
            },
            FunctionCode::ReadDiscreteInputs => Response::ReadDiscreteInputs {
                values: read_bits(&mut r)?,
            },
            FunctionCode::ReadHoldingRegisters => Response::ReadHoldingRegisters {
                values: read_registers(&mut r)?,
            },
            FunctionCode::ReadInputRegisters => Response::ReadInputRegisters {
                values: read_registers(&mut r)?,
            },
            FunctionCode::WriteSingleCoil => Response::WriteSingleCoil {
                address: r.u16()?,
                value: pdu::coil_value(byte, r.u16()?)?,
            },
            FunctionCode::WriteSingleRegister => Response::WriteSingleRegister {
                address: r.u16()?,
                value: r.u16()?,
            },
            FunctionCode::ReadExceptionStatus => Response::ReadExceptionStatus { status: r.u8()? },
            FunctionCode::Diagnostics => Response::Diagnostics {
                sub_function: r.u16()?,
                data: r.u16()?,
            },
            FunctionCode::GetCommEventCounter => Response::GetCommEventCounter {
                status: r.u16()?,
                event_count: r.u16()?,
            },
            FunctionCode::GetCommEventLog => {
                // Status, event count and message count, then the events.
                let byte_count = r.u8()?;
                let events = limits::COMM_EVENT_LOG_EVENTS;
                let (min, max) = (6 + *events.start() as u8, 6 + *events.end() as u8);
                check_range(byte, Field::ByteCount, byte_count, min..=max)?;
                Response::GetCommEventLog {
                    status: r.u16()?,
                    event_count: r.u16()?,
                    message_count: r.u16()?,
                    events: r.bytes(usize::from(byte_count - 6))?,
                }
            }
            FunctionCode::ReportServerId => {
                let byte_count = r.u8()?;
                check_range(
                    byte,
                    Field::ByteCount,
                    byte_count,
                    limits::REPORT_SERVER_ID_BYTES,
                )?;
                Response::ReportServerId {
                    data: r.bytes(usize::from(byte_count))?,
                }
            }
            FunctionCode::WriteMultipleCoils => Response::WriteMultipleCoils {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::WRITE_COILS)?,
            },
            FunctionCode::WriteMultipleRegisters => Response::WriteMultipleRegisters {
                address: r.u16()?,
                quantity: pdu::quantity(&mut r, limits::WRITE_REGISTERS)?,
            },
            FunctionCode::ReadFileRecord => {
                let byte_count = r.u8()?;
                check_range(
                    byte,
                    Field::ByteCount,
                    byte_count,
                    limits::READ_FILE_RESPONSE_BYTES,
                )?;
                Response::ReadFileRecord {
                    records: List::from_wire(r.bytes(usize::from(byte_count))?, byte)?,
                }
            }
            FunctionCode::WriteFileRecord => Response::WriteFileRecord {
                records: pdu::write_file_records(&mut r)?,
            },
            FunctionCode::MaskWriteRegister => Response::MaskWriteRegister {
                address: r.u16()?,
                and_mask: r.u16()?,
                or_mask: r.u16()?,
            },
            FunctionCode::ReadWriteMultipleRegisters => Response::ReadWriteMultipleRegisters {
                values: read_registers(&mut r)?,
            },
            FunctionCode::ReadFifoQueue => {
                let byte_count = usize::from(r.u16()?);
                let count = r.u16()?;
                check_range(byte, Field::FifoCount, count, limits::FIFO_COUNT)?;
                check_eq(
                    byte,
                    Field::ByteCount,
                    byte_count,
                    2 + 2 * usize::from(count),
                )?;
                let bytes = r.bytes(2 * usize::from(count))?;
                Response::ReadFifoQueue {
                    values: Registers::from_be_bytes(bytes)
                        .ok_or_else(|| pdu::byte_count_error(byte, byte_count, 0))?,
                }
            }
            FunctionCode::ReadDeviceIdentification => {
                Response::ReadDeviceIdentification(read_device_identification(&mut r)?)
            }
            FunctionCode::UserDefined(function) => Response::UserDefined {
                function,
                data: r.rest(),
            },
        };
        // Every limit `validate` checks has been checked above, field by
        // field as it was read; the round-trip tests and fuzz targets hold
        // decode and `validate` to the same rules.
        r.finish()?;
        Ok(response)
    }

    /// Checks every limit the specification sets on this response.
    pub fn validate(&self) -> Result<(), CodecError> {
        let function = self.function_code();
        match *self {
            Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => {
                pdu::check_len(function, Field::Quantity, values.len(), limits::READ_BITS)
            }
            Response::ReadHoldingRegisters { values }
            | Response::ReadInputRegisters { values }
            | Response::ReadWriteMultipleRegisters { values } => pdu::check_len(
                function,
                Field::Quantity,
                values.len(),
                limits::READ_REGISTERS,
            ),
            Response::WriteMultipleCoils { quantity, .. } => {
                check_range(function, Field::Quantity, quantity, limits::WRITE_COILS)
            }
            Response::WriteMultipleRegisters { quantity, .. } => {
                check_range(function, Field::Quantity, quantity, limits::WRITE_REGISTERS)
            }
            Response::ReadFileRecord { records } => {
                for record in records {
                    record.check(function)?;
                }
                pdu::check_byte_count(
                    function,
                    records.wire_len(),
                    limits::READ_FILE_RESPONSE_BYTES,
                )
            }
            Response::WriteFileRecord { records } => {
                pdu::check_write_file_records(function, records)
            }
            Response::ReadFifoQueue { values } => {
                pdu::check_len(function, Field::FifoCount, values.len(), limits::FIFO_COUNT)
            }
            Response::ReadDeviceIdentification(id) => {
                for object in id.objects {
                    object.check(function)?;
                }
                pdu::check_len(function, Field::ObjectCount, id.objects.len(), 0..=255)
            }
            Response::UserDefined { function, data } => pdu::check_user_defined(function, data),
            Response::Exception { function, .. } => {
                if (1..EXCEPTION_BIT).contains(&function) {
                    Ok(())
                } else {
                    Err(CodecError::UnsupportedFunction { code: function })
                }
            }
            Response::GetCommEventLog { events, .. } => pdu::check_len(
                function,
                Field::ByteCount,
                events.len(),
                limits::COMM_EVENT_LOG_EVENTS,
            ),
            Response::ReportServerId { data } => {
                let (min, max) = (
                    *limits::REPORT_SERVER_ID_BYTES.start(),
                    *limits::REPORT_SERVER_ID_BYTES.end(),
                );
                pdu::check_len(
                    function,
                    Field::ByteCount,
                    data.len(),
                    u16::from(min)..=u16::from(max),
                )
            }
            Response::WriteSingleCoil { .. }
            | Response::WriteSingleRegister { .. }
            | Response::ReadExceptionStatus { .. }
            | Response::Diagnostics { .. }
            | Response::GetCommEventCounter { .. }
            | Response::MaskWriteRegister { .. } => Ok(()),
        }
    }

    /// Bytes [`Response::encode`] writes: the function code and its data.
    pub fn encoded_len(&self) -> usize {
        1 + match *self {
            Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => {
                1 + values.packed_len()
            }
            Response::ReadHoldingRegisters { values }
            | Response::ReadInputRegisters { values }
            | Response::ReadWriteMultipleRegisters { values } => 1 + values.byte_len(),
            Response::WriteSingleCoil { .. }
            | Response::WriteSingleRegister { .. }
            | Response::Diagnostics { .. }
            | Response::GetCommEventCounter { .. }
            | Response::WriteMultipleCoils { .. }
            | Response::WriteMultipleRegisters { .. } => 4,
            Response::ReadExceptionStatus { .. } => 1,
            Response::GetCommEventLog { events, .. } => 7 + events.len(),
            Response::ReportServerId { data } => 1 + data.len(),
            Response::ReadFileRecord { records } => 1 + records.wire_len(),
            Response::WriteFileRecord { records } => 1 + records.wire_len(),
            Response::MaskWriteRegister { .. } => 6,
            Response::ReadFifoQueue { values } => 4 + values.byte_len(),
            Response::ReadDeviceIdentification(id) => 6 + id.objects.wire_len(),
            Response::UserDefined { data, .. } => data.len(),
            Response::Exception { .. } => 1,
        }
    }

    /// Writes the PDU into `out` and returns its length. Checks every limit
    /// first ([`Response::validate`]); never allocates.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        self.validate()?;
        let function = self.function_code();
        let len = self.encoded_len();
        pdu::check_pdu_len(function, len)?;
        let mut w = Writer::with_capacity(out, len)?;
        match *self {
            Response::Exception { code, .. } => {
                w.u8(function | EXCEPTION_BIT)?;
                w.u8(code.code())?;
                return Ok(w.written());
            }
            _ => w.u8(function)?,
        }
        match *self {
            Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => {
                pdu::write_bits(&mut w, function, values)?;
            }
            Response::ReadHoldingRegisters { values }
            | Response::ReadInputRegisters { values }
            | Response::ReadWriteMultipleRegisters { values } => {
                pdu::write_registers(&mut w, function, values)?;
            }
            Response::WriteSingleCoil { address, value } => {
                w.u16(address)?;
                w.u16(if value {
                    limits::COIL_ON
                } else {
                    limits::COIL_OFF
                })?;
            }
            Response::WriteSingleRegister {
                address,
                value: quantity,
            }
            | Response::WriteMultipleCoils { address, quantity }
            | Response::WriteMultipleRegisters { address, quantity } => {
                w.u16(address)?;
                w.u16(quantity)?;
            }
            Response::ReadExceptionStatus { status } => w.u8(status)?,
            Response::Diagnostics { sub_function, data } => {
                w.u16(sub_function)?;
                w.u16(data)?;
            }
            Response::GetCommEventCounter {
                status,
                event_count,
            } => {
                w.u16(status)?;
                w.u16(event_count)?;
            }
            Response::GetCommEventLog {
                status,
                event_count,
                message_count,
                events,
            } => {
                // `validate` bounds the events to 64.
                w.u8(6 + events.len() as u8)?;
                w.u16(status)?;
                w.u16(event_count)?;
                w.u16(message_count)?;
                w.bytes(events)?;
            }
            Response::ReportServerId { data } => {
                // `validate` bounds the data to 251 bytes.
                w.u8(data.len() as u8)?;
                w.bytes(data)?;
            }
            Response::ReadFileRecord { records } => pdu::write_list(&mut w, function, records)?,
            Response::WriteFileRecord { records } => pdu::write_list(&mut w, function, records)?,
            Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                w.u16(address)?;
                w.u16(and_mask)?;
                w.u16(or_mask)?;
            }
            Response::ReadFifoQueue { values } => {
                // `validate` bounds the count to 31, so both fit in a u16.
                let count = values.len() as u16;
                w.u16(2 + 2 * count)?;
                w.u16(count)?;
                values.write_be(w.reserve(values.byte_len())?);
            }
            Response::ReadDeviceIdentification(id) => {
                w.u8(MEI_READ_DEVICE_ID)?;
                w.u8(id.code.code())?;
                w.u8(id.conformity_level.code())?;
                w.u8(if id.more_follows { 0xFF } else { 0x00 })?;
                w.u8(id.next_object_id)?;
                w.u8(count_u8(function, Field::ObjectCount, id.objects.len())?)?;
                id.objects.write(w.reserve(id.objects.wire_len())?);
            }
            Response::UserDefined { data, .. } => w.bytes(data)?,
            Response::Exception { .. } => {}
        }
        Ok(w.written())
    }
}

fn decode_exception(function: u8, body: &[u8]) -> Result<Response<'_>, CodecError> {
    if function == 0 {
        return Err(CodecError::UnsupportedFunction { code: 0 });
    }
    let mut r = Reader::new(function, body);
    let code = ExceptionCode::from_code(r.u8()?, function)?;
    r.finish()?;
    Ok(Response::Exception { function, code })
}

fn read_bits<'a>(r: &mut Reader<'a>) -> Result<Bits<'a>, CodecError> {
    let byte_count = r.u8()?;
    check_range(r.function(), Field::ByteCount, byte_count, READ_BITS_BYTES)?;
    Ok(Bits::from_bytes(r.bytes(usize::from(byte_count))?))
}

fn read_registers<'a>(r: &mut Reader<'a>) -> Result<Registers<'a>, CodecError> {
    let function = r.function();
    let byte_count = r.u8()?;
    check_range(function, Field::ByteCount, byte_count, READ_REGISTER_BYTES)?;
    if byte_count % 2 != 0 {
        return Err(CodecError::InvalidValue {
            function: Some(function),
            field: Field::ByteCount,
            value: u32::from(byte_count),
        });
    }
    let bytes = r.bytes(usize::from(byte_count))?;
    Registers::from_be_bytes(bytes).ok_or_else(|| pdu::byte_count_error(function, bytes.len(), 0))
}

fn read_device_identification<'a>(
    r: &mut Reader<'a>,
) -> Result<DeviceIdentification<'a>, CodecError> {
    let function = r.function();
    pdu::mei_type(r)?;
    let code = ReadDeviceIdCode::from_code(r.u8()?, function)?;
    let conformity_level = ConformityLevel::from_code(r.u8()?, function)?;
    let more_follows = match r.u8()? {
        0x00 => false,
        0xFF => true,
        other => {
            return Err(CodecError::InvalidValue {
                function: Some(function),
                field: Field::MoreFollows,
                value: u32::from(other),
            });
        }
    };
    let next_object_id = r.u8()?;
    let count = usize::from(r.u8()?);
    let objects = List::from_wire(r.rest(), function)?;
    check_eq(function, Field::ObjectCount, count, objects.len())?;
    Ok(DeviceIdentification {
        code,
        conformity_level,
        more_follows,
        next_object_id,
        objects,
    })
}
