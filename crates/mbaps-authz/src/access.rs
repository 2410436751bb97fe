//! What a request touches: the data table and the address range of each of
//! its reads and writes. Authorization checks every access of a request.

use core::fmt;

use mbaps_codec::{FileRecordRead, FileRecordWrite, ListIter, Request};

/// A data table of a Modbus server, as a policy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Coils (read/write bits).
    Coils,
    /// Discrete inputs (read-only bits).
    DiscreteInputs,
    /// Holding registers (read/write 16-bit words).
    HoldingRegisters,
    /// Input registers (read-only 16-bit words).
    InputRegisters,
    /// File records, addressed by file number.
    Files,
}

impl Table {
    /// Every table, in the order of [`Table::index`].
    pub const ALL: [Table; 5] = [
        Table::Coils,
        Table::DiscreteInputs,
        Table::HoldingRegisters,
        Table::InputRegisters,
        Table::Files,
    ];

    /// The key that names the table in a policy file.
    pub const fn key(self) -> &'static str {
        match self {
            Table::Coils => "coils",
            Table::DiscreteInputs => "discrete_inputs",
            Table::HoldingRegisters => "holding_registers",
            Table::InputRegisters => "input_registers",
            Table::Files => "files",
        }
    }

    /// Position of the table in [`Table::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Coils => "coils",
            Table::DiscreteInputs => "discrete inputs",
            Table::HoldingRegisters => "holding registers",
            Table::InputRegisters => "input registers",
            Table::Files => "file numbers",
        })
    }
}

/// One read or write of a request: `first..=last` of `table`.
///
/// `last` is a `u32` because a request may reach past address 0xFFFF
/// (address 0xFFFF, quantity 2): such an access is covered only by a rule
/// that does not restrict addresses, and the server answers it with
/// exception 0x02.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The table.
    pub table: Table,
    /// First address (or file number).
    pub first: u32,
    /// Last address, inclusive.
    pub last: u32,
}

impl Access {
    fn span(table: Table, first: u16, count: usize) -> Access {
        let first = u32::from(first);
        // A decoded request has count >= 1; treat 0 as one address so the
        // range is never empty.
        let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
        Access {
            table,
            first,
            last: first.saturating_add(count - 1),
        }
    }
}

/// Registers a read FIFO queue request may return: the count register and
/// up to 31 values after it.
const FIFO_SPAN: usize = 32;

/// The accesses of a request, without allocating. Device identification,
/// the serial-line functions and user-defined functions touch no table:
/// only their function code and unit are authorized.
pub fn accesses<'a>(request: &Request<'a>) -> Accesses<'a> {
    use Table::*;
    let one = |table, first, count| {
        Accesses(Repr::Fixed([Some(Access::span(table, first, count)), None]))
    };
    match *request {
        Request::ReadCoils { address, quantity } => one(Coils, address, quantity.into()),
        Request::ReadDiscreteInputs { address, quantity } => {
            one(DiscreteInputs, address, quantity.into())
        }
        Request::ReadHoldingRegisters { address, quantity } => {
            one(HoldingRegisters, address, quantity.into())
        }
        Request::ReadInputRegisters { address, quantity } => {
            one(InputRegisters, address, quantity.into())
        }
        Request::WriteSingleCoil { address, .. } => one(Coils, address, 1),
        Request::WriteSingleRegister { address, .. }
        | Request::MaskWriteRegister { address, .. } => one(HoldingRegisters, address, 1),
        Request::WriteMultipleCoils { address, values } => one(Coils, address, values.len()),
        Request::WriteMultipleRegisters { address, values } => {
            one(HoldingRegisters, address, values.len())
        }
        Request::ReadWriteMultipleRegisters {
            read_address,
            read_quantity,
            write_address,
            values,
        } => Accesses(Repr::Fixed([
            Some(Access::span(
                HoldingRegisters,
                read_address,
                read_quantity.into(),
            )),
            Some(Access::span(HoldingRegisters, write_address, values.len())),
        ])),
        Request::ReadFifoQueue { address } => one(HoldingRegisters, address, FIFO_SPAN),
        Request::ReadFileRecord { records } => Accesses(Repr::ReadFiles(records.iter())),
        Request::WriteFileRecord { records } => Accesses(Repr::WriteFiles(records.iter())),
        Request::ReadDeviceIdentification { .. }
        | Request::UserDefined { .. }
        | Request::ReadExceptionStatus
        | Request::Diagnostics { .. }
        | Request::GetCommEventCounter
        | Request::GetCommEventLog
        | Request::ReportServerId => Accesses(Repr::Fixed([None, None])),
    }
}

/// What a request touches, for a log line: its function, unit and every
/// table range, e.g. `read holding registers (0x03) unit 1, holding
/// registers 100..=109`.
#[derive(Clone, Copy, Debug)]
pub struct Target<'r, 'a> {
    /// The unit id the request is addressed to.
    pub unit: u8,
    /// The request.
    pub request: &'r Request<'a>,
}

impl fmt::Display for Target<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} unit {}", self.request.function(), self.unit)?;
        for access in accesses(self.request) {
            write!(f, ", {} {}..={}", access.table, access.first, access.last)?;
        }
        Ok(())
    }
}

/// Iterator over the [`Access`]es of a request.
#[derive(Clone, Debug)]
pub struct Accesses<'a>(Repr<'a>);

#[derive(Clone, Debug)]
enum Repr<'a> {
    Fixed([Option<Access>; 2]),
    ReadFiles(ListIter<'a, FileRecordRead>),
    WriteFiles(ListIter<'a, FileRecordWrite<'a>>),
}

impl Iterator for Accesses<'_> {
    type Item = Access;

    fn next(&mut self) -> Option<Access> {
        match &mut self.0 {
            Repr::Fixed(slots) => slots.iter_mut().find_map(Option::take),
            Repr::ReadFiles(records) => records
                .next()
                .map(|r| Access::span(Table::Files, r.file_number, 1)),
            Repr::WriteFiles(records) => records
                .next()
                .map(|r| Access::span(Table::Files, r.file_number, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use mbaps_codec::{List, Registers};

    use super::*;

    fn all(request: &Request<'_>) -> Vec<Access> {
        accesses(request).collect()
    }

    #[test]
    fn read_write_multiple_touches_its_read_and_its_write_range() {
        let values = [1u16, 2, 3];
        let request = Request::ReadWriteMultipleRegisters {
            read_address: 3,
            read_quantity: 6,
            write_address: 14,
            values: Registers::from_values(&values),
        };
        assert_eq!(
            all(&request),
            [
                Access {
                    table: Table::HoldingRegisters,
                    first: 3,
                    last: 8
                },
                Access {
                    table: Table::HoldingRegisters,
                    first: 14,
                    last: 16
                },
            ]
        );
    }

    #[test]
    fn a_range_past_the_last_address_is_kept_whole() {
        let request = Request::ReadCoils {
            address: 0xFFFF,
            quantity: 2,
        };
        assert_eq!(
            all(&request),
            [Access {
                table: Table::Coils,
                first: 0xFFFF,
                last: 0x10000
            }]
        );
    }

    #[test]
    fn file_records_touch_each_file_and_device_id_touches_nothing() {
        let records = [
            FileRecordRead {
                file_number: 4,
                record_number: 1,
                record_length: 2,
            },
            FileRecordRead {
                file_number: 3,
                record_number: 9,
                record_length: 2,
            },
        ];
        let request = Request::ReadFileRecord {
            records: List::from_items(&records),
        };
        assert_eq!(
            all(&request),
            [
                Access {
                    table: Table::Files,
                    first: 4,
                    last: 4
                },
                Access {
                    table: Table::Files,
                    first: 3,
                    last: 3
                },
            ]
        );
        let request = Request::ReadDeviceIdentification {
            code: mbaps_codec::ReadDeviceIdCode::Basic,
            object_id: 0,
        };
        assert!(all(&request).is_empty());
    }
}
