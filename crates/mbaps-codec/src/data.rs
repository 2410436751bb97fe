//! Zero-copy views of the data a PDU carries: packed bits, big-endian
//! registers, and lists of variable-length items (file records, device
//! identification objects).
//!
//! Each view either borrows the wire bytes of a decoded PDU, or borrows the
//! caller's native values (`&[bool]`, `&[u16]`, `&[T]`) for encoding, so that
//! neither direction copies into an intermediate buffer. Two views are equal
//! when they hold the same values, whichever form they borrow.

use core::fmt;
use core::iter::FusedIterator;

use crate::error::CodecError;

/// Coil or discrete input values: packed eight to a byte on the wire, the
/// first value in the least significant bit of the first byte.
#[derive(Clone, Copy)]
pub struct Bits<'a>(BitsRepr<'a>);

#[derive(Clone, Copy)]
enum BitsRepr<'a> {
    Packed { bytes: &'a [u8], len: usize },
    Unpacked(&'a [bool]),
}

impl<'a> Bits<'a> {
    /// `len` values packed in `bytes`; `bytes` must be exactly `ceil(len / 8)`
    /// long. Padding bits in the last byte are kept as they are, so a decoded
    /// PDU encodes back to the same bytes.
    ///
    /// Returns the byte count the length requires as the error's `expected`.
    pub fn from_packed(bytes: &'a [u8], len: usize) -> Result<Self, usize> {
        let expected = len.div_ceil(8);
        if bytes.len() == expected {
            Ok(Bits(BitsRepr::Packed { bytes, len }))
        } else {
            Err(expected)
        }
    }

    /// Every bit of `bytes`: `8 * bytes.len()` values. Read responses carry
    /// no quantity, so this is what a decoded 0x01/0x02 response holds; the
    /// client knows how many of them it asked for.
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Bits(BitsRepr::Packed {
            bytes,
            len: bytes.len() * 8,
        })
    }

    /// Native values, for encoding.
    pub fn from_bools(values: &'a [bool]) -> Self {
        Bits(BitsRepr::Unpacked(values))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self.0 {
            BitsRepr::Packed { len, .. } => len,
            BitsRepr::Unpacked(values) => values.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the values take on the wire.
    pub fn packed_len(&self) -> usize {
        self.len().div_ceil(8)
    }

    /// Value `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<bool> {
        match self.0 {
            BitsRepr::Packed { bytes, len } if index < len => {
                Some(bytes[index / 8] & (1 << (index % 8)) != 0)
            }
            BitsRepr::Packed { .. } => None,
            BitsRepr::Unpacked(values) => values.get(index).copied(),
        }
    }

    /// The values in order.
    pub fn iter(&self) -> BitsIter<'a> {
        BitsIter {
            bits: *self,
            next: 0,
        }
    }

    /// Writes the packed bytes; `out` must be [`Bits::packed_len`] long.
    pub(crate) fn write_packed(&self, out: &mut [u8]) {
        match self.0 {
            BitsRepr::Packed { bytes, .. } => out.copy_from_slice(bytes),
            BitsRepr::Unpacked(values) => {
                for (byte, chunk) in out.iter_mut().zip(values.chunks(8)) {
                    *byte = chunk
                        .iter()
                        .enumerate()
                        .fold(0, |acc, (i, &on)| acc | (u8::from(on) << i));
                }
            }
        }
    }
}

impl PartialEq for Bits<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Bits<'_> {}

impl fmt::Debug for Bits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(u8::from)).finish()
    }
}

impl<'a> IntoIterator for Bits<'a> {
    type Item = bool;
    type IntoIter = BitsIter<'a>;
    fn into_iter(self) -> BitsIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Bits`].
#[derive(Clone, Debug)]
pub struct BitsIter<'a> {
    bits: Bits<'a>,
    next: usize,
}

impl Iterator for BitsIter<'_> {
    type Item = bool;
    fn next(&mut self) -> Option<bool> {
        let value = self.bits.get(self.next)?;
        self.next += 1;
        Some(value)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.bits.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for BitsIter<'_> {}
impl FusedIterator for BitsIter<'_> {}

impl fmt::Debug for BitsRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Bits(*self).fmt(f)
    }
}

/// 16-bit register values: big-endian pairs of bytes on the wire.
#[derive(Clone, Copy)]
pub struct Registers<'a>(RegistersRepr<'a>);

#[derive(Clone, Copy)]
enum RegistersRepr<'a> {
    BigEndian(&'a [u8]),
    Values(&'a [u16]),
}

impl<'a> Registers<'a> {
    /// Values as they are on the wire; `bytes` must have an even length.
    pub fn from_be_bytes(bytes: &'a [u8]) -> Option<Self> {
        bytes
            .len()
            .is_multiple_of(2)
            .then_some(Registers(RegistersRepr::BigEndian(bytes)))
    }

    /// Native values, for encoding.
    pub fn from_values(values: &'a [u16]) -> Self {
        Registers(RegistersRepr::Values(values))
    }

    /// Number of registers.
    pub fn len(&self) -> usize {
        match self.0 {
            RegistersRepr::BigEndian(bytes) => bytes.len() / 2,
            RegistersRepr::Values(values) => values.len(),
        }
    }

    /// Whether there are no registers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the registers take on the wire.
    pub fn byte_len(&self) -> usize {
        self.len() * 2
    }

    /// Register `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<u16> {
        match self.0 {
            RegistersRepr::BigEndian(bytes) => {
                // Checked: an index past `usize::MAX / 2` is past the end, not an overflow.
                let start = index.checked_mul(2)?;
                let pair = bytes.get(start..start.checked_add(2)?)?;
                Some(u16::from_be_bytes([pair[0], pair[1]]))
            }
            RegistersRepr::Values(values) => values.get(index).copied(),
        }
    }

    /// The values in order.
    pub fn iter(&self) -> RegistersIter<'a> {
        RegistersIter {
            registers: *self,
            next: 0,
        }
    }

    /// Writes the big-endian bytes; `out` must be [`Registers::byte_len`] long.
    pub(crate) fn write_be(&self, out: &mut [u8]) {
        match self.0 {
            RegistersRepr::BigEndian(bytes) => out.copy_from_slice(bytes),
            RegistersRepr::Values(values) => {
                for (pair, value) in out.chunks_exact_mut(2).zip(values) {
                    pair.copy_from_slice(&value.to_be_bytes());
                }
            }
        }
    }
}

impl PartialEq for Registers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Registers<'_> {}

impl fmt::Debug for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Registers<'a> {
    type Item = u16;
    type IntoIter = RegistersIter<'a>;
    fn into_iter(self) -> RegistersIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Registers`].
#[derive(Clone, Debug)]
pub struct RegistersIter<'a> {
    registers: Registers<'a>,
    next: usize,
}

impl Iterator for RegistersIter<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        let value = self.registers.get(self.next)?;
        self.next += 1;
        Some(value)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.registers.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for RegistersIter<'_> {}
impl FusedIterator for RegistersIter<'_> {}

impl fmt::Debug for RegistersRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Registers(*self).fmt(f)
    }
}

/// An item of a [`List`]: one element of a variable-length sequence inside a
/// PDU (a file record sub-request, a device identification object).
///
/// This trait is implemented by the codec's item types only; it is public so
/// that `List<'a, T>` can name its bound.
pub trait WireItem<'a>: Sized + Copy {
    /// Parses one item from the front of `input`, returning it and the bytes
    /// it took. `function` is for errors.
    fn read(input: &'a [u8], function: u8) -> Result<(Self, usize), CodecError>;
    /// Bytes the item takes on the wire.
    fn wire_len(&self) -> usize;
    /// Writes the item; `out` is exactly [`WireItem::wire_len`] long.
    fn write(&self, out: &mut [u8]);
}

/// A sequence of [`WireItem`]s: borrowed wire bytes (already validated) of
/// a decoded PDU, or a borrowed slice of items to encode.
#[derive(Clone, Copy)]
pub struct List<'a, T>(ListRepr<'a, T>);

#[derive(Clone, Copy)]
enum ListRepr<'a, T> {
    Wire {
        bytes: &'a [u8],
        count: usize,
        function: u8,
    },
    Items(&'a [T]),
}

impl<'a, T: WireItem<'a>> List<'a, T> {
    /// Items to encode.
    pub fn from_items(items: &'a [T]) -> Self {
        List(ListRepr::Items(items))
    }

    /// Parses `bytes` as a whole number of items, checking each; the
    /// returned list iterates them without copying.
    pub fn from_wire(bytes: &'a [u8], function: u8) -> Result<Self, CodecError> {
        let mut rest = bytes;
        let mut count = 0;
        while !rest.is_empty() {
            let (_, used) = T::read(rest, function)?;
            rest = &rest[used..];
            count += 1;
        }
        Ok(List(ListRepr::Wire {
            bytes,
            count,
            function,
        }))
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self.0 {
            ListRepr::Wire { count, .. } => count,
            ListRepr::Items(items) => items.len(),
        }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the items take on the wire.
    pub fn wire_len(&self) -> usize {
        match self.0 {
            ListRepr::Wire { bytes, .. } => bytes.len(),
            ListRepr::Items(items) => items.iter().map(WireItem::wire_len).sum(),
        }
    }

    /// The items in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter(match self.0 {
            ListRepr::Wire {
                bytes, function, ..
            } => IterRepr::Wire { bytes, function },
            ListRepr::Items(items) => IterRepr::Items(items.iter()),
        })
    }

    /// Writes the items; `out` must be [`List::wire_len`] long.
    pub(crate) fn write(&self, out: &mut [u8]) {
        match self.0 {
            ListRepr::Wire { bytes, .. } => out.copy_from_slice(bytes),
            ListRepr::Items(items) => {
                let mut at = 0;
                for item in items {
                    let end = at + item.wire_len();
                    item.write(&mut out[at..end]);
                    at = end;
                }
            }
        }
    }
}

impl<'a, T: WireItem<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a, T: WireItem<'a> + Eq> Eq for List<'a, T> {}

impl<'a, T: WireItem<'a> + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: WireItem<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// Iterator over a [`List`].
#[derive(Clone, Debug)]
pub struct ListIter<'a, T>(IterRepr<'a, T>);

#[derive(Clone, Debug)]
enum IterRepr<'a, T> {
    Wire { bytes: &'a [u8], function: u8 },
    Items(core::slice::Iter<'a, T>),
}

impl<'a, T: WireItem<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match &mut self.0 {
            IterRepr::Wire { bytes, function } => {
                if bytes.is_empty() {
                    return None;
                }
                // The bytes were validated when the list was built; an error
                // here cannot happen, and would only end the iteration.
                let (item, used) = T::read(bytes, *function).ok()?;
                *bytes = &bytes[used..];
                Some(item)
            }
            IterRepr::Items(items) => items.next().copied(),
        }
    }
}

impl<'a, T: WireItem<'a>> FusedIterator for ListIter<'a, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_least_significant_bit_first() {
        // Application Protocol 6.1: coils 27..20 = 0xCD, 35..28 = 0x6B, 38..36 = 0x05.
        let values = [
            true, false, true, true, false, false, true, true, // 0xCD
            true, true, false, true, false, true, true, false, // 0x6B
            true, false, true, // 0x05
        ];
        let mut out = [0u8; 3];
        Bits::from_bools(&values).write_packed(&mut out);
        assert_eq!(out, [0xCD, 0x6B, 0x05]);
        let packed = Bits::from_packed(&out, values.len()).unwrap();
        assert_eq!(packed, Bits::from_bools(&values));
        assert_eq!(packed.iter().len(), 19);
    }

    #[test]
    fn packed_bits_need_exactly_the_bytes_their_length_takes() {
        assert_eq!(Bits::from_packed(&[0, 0], 17).unwrap_err(), 3);
        assert_eq!(Bits::from_packed(&[0, 0, 0], 16).unwrap_err(), 2);
        assert!(Bits::from_packed(&[0, 0, 0], 17).is_ok());
    }

    #[test]
    fn registers_are_big_endian() {
        let regs = Registers::from_be_bytes(&[0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]).unwrap();
        assert_eq!(regs, Registers::from_values(&[555, 0, 100]));
        assert_eq!(regs.get(3), None);
        assert!(Registers::from_be_bytes(&[1, 2, 3]).is_none());
        let mut out = [0u8; 6];
        Registers::from_values(&[555, 0, 100]).write_be(&mut out);
        assert_eq!(out, [0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]);
    }
}
