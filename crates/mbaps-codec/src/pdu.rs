//! Pieces shared by request and response PDUs: the limits checks and the
//! count-prefixed data blocks both directions use.

use core::ops::RangeInclusive;

use crate::data::{Bits, List, Registers, WireItem};
use crate::error::{CodecError, Field};
use crate::function::limits;
use crate::items::FileRecordWrite;
use crate::wire::{Reader, Writer, check_eq, check_range, count_u8, count_u16};

/// MEI type of read device identification, the only one 0x2B carries here.
pub(crate) const MEI_READ_DEVICE_ID: u8 = 0x0E;

/// Splits a PDU into its function code byte and its data.
pub(crate) fn split(pdu: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let Some((&function, body)) = pdu.split_first() else {
        return Err(CodecError::OutOfRange {
            function: None,
            field: Field::PduLength,
            value: 0,
            min: 1,
            max: limits::MAX_PDU_LEN as u32,
        });
    };
    check_pdu_len(function, pdu.len())?;
    Ok((function, body))
}

/// A PDU may not exceed 253 bytes.
pub(crate) fn check_pdu_len(function: u8, len: usize) -> Result<(), CodecError> {
    if len <= limits::MAX_PDU_LEN {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            function: Some(function),
            field: Field::PduLength,
            value: u32::try_from(len).unwrap_or(u32::MAX),
            min: 1,
            max: limits::MAX_PDU_LEN as u32,
        })
    }
}

/// Write single coil: 0xFF00 is ON, 0x0000 is OFF, nothing else is allowed.
pub(crate) fn coil_value(function: u8, value: u16) -> Result<bool, CodecError> {
    match value {
        limits::COIL_ON => Ok(true),
        limits::COIL_OFF => Ok(false),
        _ => Err(CodecError::InvalidValue {
            function: Some(function),
            field: Field::CoilValue,
            value: u32::from(value),
        }),
    }
}

pub(crate) fn byte_count_error(function: u8, value: usize, expected: usize) -> CodecError {
    CodecError::Mismatch {
        function: Some(function),
        field: Field::ByteCount,
        value: u32::try_from(value).unwrap_or(u32::MAX),
        expected: u32::try_from(expected).unwrap_or(u32::MAX),
    }
}

/// A two-byte quantity field, checked against its range as it is read.
pub(crate) fn quantity(r: &mut Reader<'_>, range: RangeInclusive<u16>) -> Result<u16, CodecError> {
    let quantity = r.u16()?;
    check_range(r.function(), Field::Quantity, quantity, range)?;
    Ok(quantity)
}

/// A count of items (a quantity, a number of registers) against its range.
pub(crate) fn check_len(
    function: u8,
    field: Field,
    len: usize,
    range: RangeInclusive<u16>,
) -> Result<(), CodecError> {
    let value = count_u16(function, field, len).map_err(|_| CodecError::OutOfRange {
        function: Some(function),
        field,
        value: u32::try_from(len).unwrap_or(u32::MAX),
        min: u32::from(*range.start()),
        max: u32::from(*range.end()),
    })?;
    check_range(function, field, value, range)
}

/// A one-byte byte count, computed from the data, against its range.
pub(crate) fn check_byte_count(
    function: u8,
    len: usize,
    range: RangeInclusive<u8>,
) -> Result<(), CodecError> {
    let value = count_u8(function, Field::ByteCount, len).map_err(|_| CodecError::OutOfRange {
        function: Some(function),
        field: Field::ByteCount,
        value: u32::try_from(len).unwrap_or(u32::MAX),
        min: u32::from(*range.start()),
        max: u32::from(*range.end()),
    })?;
    check_range(function, Field::ByteCount, value, range)
}

/// User-defined function codes carry any data that fits in a PDU.
pub(crate) fn check_user_defined(function: u8, data: &[u8]) -> Result<(), CodecError> {
    if !limits::USER_DEFINED.iter().any(|r| r.contains(&function)) {
        return Err(CodecError::UnsupportedFunction { code: function });
    }
    check_pdu_len(function, 1 + data.len())
}

/// A byte count followed by `2 * quantity` bytes of registers.
pub(crate) fn registers_with_byte_count<'a>(
    r: &mut Reader<'a>,
    quantity: u16,
) -> Result<Registers<'a>, CodecError> {
    let function = r.function();
    let byte_count = usize::from(r.u8()?);
    check_eq(
        function,
        Field::ByteCount,
        byte_count,
        2 * usize::from(quantity),
    )?;
    let bytes = r.bytes(byte_count)?;
    Registers::from_be_bytes(bytes).ok_or_else(|| byte_count_error(function, byte_count, 0))
}

/// The sub-requests of write file record, request or response.
pub(crate) fn write_file_records<'a>(
    r: &mut Reader<'a>,
) -> Result<List<'a, FileRecordWrite<'a>>, CodecError> {
    let function = r.function();
    let byte_count = r.u8()?;
    check_range(
        function,
        Field::ByteCount,
        byte_count,
        limits::WRITE_FILE_BYTES,
    )?;
    List::from_wire(r.bytes(usize::from(byte_count))?, function)
}

pub(crate) fn check_write_file_records(
    function: u8,
    records: List<'_, FileRecordWrite<'_>>,
) -> Result<(), CodecError> {
    for record in records {
        record.check(function)?;
    }
    check_byte_count(function, records.wire_len(), limits::WRITE_FILE_BYTES)
}

/// The MEI type byte of 0x2B: only read device identification is served.
pub(crate) fn mei_type(r: &mut Reader<'_>) -> Result<(), CodecError> {
    let mei = r.u8()?;
    if mei == MEI_READ_DEVICE_ID {
        Ok(())
    } else {
        Err(CodecError::InvalidValue {
            function: Some(r.function()),
            field: Field::MeiType,
            value: u32::from(mei),
        })
    }
}

/// Quantity, byte count and packed bits (write multiple coils request).
pub(crate) fn write_bits_with_quantity(
    w: &mut Writer<'_>,
    function: u8,
    values: Bits<'_>,
) -> Result<(), CodecError> {
    w.u16(count_u16(function, Field::Quantity, values.len())?)?;
    write_bits(w, function, values)
}

/// Byte count and packed bits.
pub(crate) fn write_bits(
    w: &mut Writer<'_>,
    function: u8,
    values: Bits<'_>,
) -> Result<(), CodecError> {
    w.u8(count_u8(function, Field::ByteCount, values.packed_len())?)?;
    values.write_packed(w.reserve(values.packed_len())?);
    Ok(())
}

/// Quantity, byte count and registers (write multiple registers, 0x17).
pub(crate) fn write_registers_with_quantity(
    w: &mut Writer<'_>,
    function: u8,
    values: Registers<'_>,
) -> Result<(), CodecError> {
    w.u16(count_u16(function, Field::Quantity, values.len())?)?;
    write_registers(w, function, values)
}

/// Byte count and registers.
pub(crate) fn write_registers(
    w: &mut Writer<'_>,
    function: u8,
    values: Registers<'_>,
) -> Result<(), CodecError> {
    w.u8(count_u8(function, Field::ByteCount, values.byte_len())?)?;
    values.write_be(w.reserve(values.byte_len())?);
    Ok(())
}

/// Byte count and the items of a list.
pub(crate) fn write_list<'a, T: WireItem<'a>>(
    w: &mut Writer<'_>,
    function: u8,
    list: List<'a, T>,
) -> Result<(), CodecError> {
    let len = list.wire_len();
    w.u8(count_u8(function, Field::ByteCount, len)?)?;
    list.write(w.reserve(len)?);
    Ok(())
}
