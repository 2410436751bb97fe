//! Bounds-checked big-endian cursors over PDU bytes. Nothing here can panic:
//! every short read or write is an error.

use crate::error::{CodecError, Field};

/// Reads a PDU body (the bytes after the function code).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    function: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(function: u8, buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            function,
        }
    }

    pub(crate) fn function(&self) -> u8 {
        self.function
    }

    /// The error for a PDU that ends before `needed` more bytes: the PDU
    /// length (function code included) against the length it needs.
    fn short(&self, needed: usize) -> CodecError {
        CodecError::Mismatch {
            function: Some(self.function),
            field: Field::PduLength,
            value: pdu_len(self.buf.len()),
            expected: pdu_len(self.pos + needed),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(self.short(n)),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// The PDU must end here.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::Mismatch {
                function: Some(self.function),
                field: Field::PduLength,
                value: pdu_len(self.buf.len()),
                expected: pdu_len(self.pos),
            })
        }
    }
}

/// PDU length (function code byte included) for a body length, for errors.
fn pdu_len(body: usize) -> u32 {
    u32::try_from(body.saturating_add(1)).unwrap_or(u32::MAX)
}

/// Writes into a caller's buffer. The caller checks the total size first
/// (for a precise [`CodecError::InsufficientSize`]); every write is checked
/// again so a miscounted length is an error, never a panic.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer over `out`, after checking that `required` bytes fit.
    pub(crate) fn with_capacity(out: &'a mut [u8], required: usize) -> Result<Self, CodecError> {
        if out.len() < required {
            return Err(CodecError::InsufficientSize {
                required,
                available: out.len(),
            });
        }
        Ok(Writer { out, pos: 0 })
    }

    /// A slice of the next `n` bytes, to be filled by the caller.
    pub(crate) fn reserve(&mut self, n: usize) -> Result<&mut [u8], CodecError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.out.len())
            .ok_or(CodecError::InsufficientSize {
                required: start.saturating_add(n),
                available: self.out.len(),
            })?;
        self.pos = end;
        Ok(&mut self.out[start..end])
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn u8(&mut self, value: u8) -> Result<(), CodecError> {
        self.bytes(&[value])
    }

    pub(crate) fn u16(&mut self, value: u16) -> Result<(), CodecError> {
        self.bytes(&value.to_be_bytes())
    }

    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}

/// A length that must fit in a one-byte count field.
pub(crate) fn count_u8(function: u8, field: Field, n: usize) -> Result<u8, CodecError> {
    u8::try_from(n).map_err(|_| CodecError::OutOfRange {
        function: Some(function),
        field,
        value: u32::try_from(n).unwrap_or(u32::MAX),
        min: 0,
        max: 255,
    })
}

/// A length that must fit in a two-byte count field.
pub(crate) fn count_u16(function: u8, field: Field, n: usize) -> Result<u16, CodecError> {
    u16::try_from(n).map_err(|_| CodecError::OutOfRange {
        function: Some(function),
        field,
        value: u32::try_from(n).unwrap_or(u32::MAX),
        min: 0,
        max: 65535,
    })
}

/// Checks that `value` lies in `range`.
pub(crate) fn check_range<T: Into<u32> + Copy + PartialOrd>(
    function: u8,
    field: Field,
    value: T,
    range: core::ops::RangeInclusive<T>,
) -> Result<(), CodecError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            function: Some(function),
            field,
            value: value.into(),
            min: (*range.start()).into(),
            max: (*range.end()).into(),
        })
    }
}

/// Checks that a count field equals what the other fields require.
pub(crate) fn check_eq(
    function: u8,
    field: Field,
    value: usize,
    expected: usize,
) -> Result<(), CodecError> {
    if value == expected {
        Ok(())
    } else {
        Err(CodecError::Mismatch {
            function: Some(function),
            field,
            value: u32::try_from(value).unwrap_or(u32::MAX),
            expected: u32::try_from(expected).unwrap_or(u32::MAX),
        })
    }
}
