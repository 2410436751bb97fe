//! The policy as data: roles and their rules, with function codes already
//! resolved from names and groups. A policy file is parsed into this; a
//! program may also build it directly.

use core::fmt;
use core::ops::RangeInclusive;

use mbaps_codec::FunctionCode;

use crate::access::Table;

/// A set of function codes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FunctionSet([u64; 4]);

impl FunctionSet {
    /// The empty set.
    pub const fn new() -> Self {
        FunctionSet([0; 4])
    }

    /// A set of the given codes.
    pub fn of(codes: &[u8]) -> Self {
        let mut set = FunctionSet::new();
        for &code in codes {
            set.insert(code);
        }
        set
    }

    /// Adds a code.
    pub fn insert(&mut self, code: u8) {
        self.0[usize::from(code / 64)] |= 1 << (code % 64);
    }

    /// Whether the set has `code`.
    pub const fn contains(&self, code: u8) -> bool {
        self.0[(code / 64) as usize] & (1 << (code % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|&code| self.contains(code))
    }
}

impl fmt::Debug for FunctionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|c| format!("0x{c:02X}")))
            .finish()
    }
}

/// Address ranges per table, for a rule that restricts addresses. A table
/// with no range is not accessible through the rule at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses([Vec<RangeInclusive<u16>>; 5]);

impl Addresses {
    /// No address of any table.
    pub fn new() -> Self {
        Addresses::default()
    }

    /// Adds `range` of `table`.
    pub fn allow(&mut self, table: Table, range: RangeInclusive<u16>) -> &mut Self {
        self.0[table.index()].push(range);
        self
    }

    /// The ranges of `table`.
    pub fn ranges(&self, table: Table) -> &[RangeInclusive<u16>] {
        &self.0[table.index()]
    }
}

/// One rule: requests with one of `functions`, for one of `units`, whose
/// every access lies in `addresses`, are allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Function codes the rule allows (groups and names resolved).
    pub functions: FunctionSet,
    /// Unit ids the rule applies to; `None` for every unit.
    pub units: Option<Vec<RangeInclusive<u8>>>,
    /// Address ranges per table; `None` for every address of every table.
    pub addresses: Option<Addresses>,
}

impl Rule {
    /// A rule for `functions` on every unit and every address.
    pub fn functions(functions: FunctionSet) -> Self {
        Rule {
            functions,
            units: None,
            addresses: None,
        }
    }

    /// Whether the rule applies to `unit`.
    pub fn has_unit(&self, unit: u8) -> bool {
        self.units
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|r| r.contains(&unit)))
    }

    /// Whether the rule lets `address` of `table` be accessed.
    pub fn has_address(&self, table: Table, address: u32) -> bool {
        match &self.addresses {
            None => true,
            Some(addresses) => addresses
                .ranges(table)
                .iter()
                .any(|r| u32::from(*r.start()) <= address && address <= u32::from(*r.end())),
        }
    }
}

/// The group `serial`: the serial-line functions (read exception status,
/// diagnostics, get comm event counter and log, report server id). Not part
/// of `all`, so that no policy written before them grants diagnostics'
/// restart or listen-only sub-functions; granted by this name, by each
/// function's name or by code.
pub const SERIAL_GROUP: (&str, &[u8]) = ("serial", &[0x07, 0x08, 0x0B, 0x0C, 0x11]);

/// The named function groups of a policy file that `all` stands for, with
/// the codes they hold ([`SERIAL_GROUP`] is apart).
///
/// `read` holds the functions that only read; `write` every function that
/// writes, read/write multiple registers (0x17) included, since it writes;
/// `diagnostic` is device identification; `user-defined` the user codes.
pub const FUNCTION_GROUPS: &[(&str, &[u8])] = &[
    ("read", &[0x01, 0x02, 0x03, 0x04, 0x14, 0x18]),
    ("write", &[0x05, 0x06, 0x0F, 0x10, 0x15, 0x16, 0x17]),
    ("diagnostic", &[0x2B]),
    (
        "user-defined",
        &[
            65, 66, 67, 68, 69, 70, 71, 72, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
        ],
    ),
];

/// The policy-file name of a standard function code: its specification name
/// in kebab case (`read-holding-registers`).
pub fn function_key(function: FunctionCode) -> Option<&'static str> {
    Some(match function {
        FunctionCode::ReadCoils => "read-coils",
        FunctionCode::ReadDiscreteInputs => "read-discrete-inputs",
        FunctionCode::ReadHoldingRegisters => "read-holding-registers",
        FunctionCode::ReadInputRegisters => "read-input-registers",
        FunctionCode::WriteSingleCoil => "write-single-coil",
        FunctionCode::WriteSingleRegister => "write-single-register",
        FunctionCode::WriteMultipleCoils => "write-multiple-coils",
        FunctionCode::WriteMultipleRegisters => "write-multiple-registers",
        FunctionCode::ReadFileRecord => "read-file-record",
        FunctionCode::WriteFileRecord => "write-file-record",
        FunctionCode::MaskWriteRegister => "mask-write-register",
        FunctionCode::ReadWriteMultipleRegisters => "read-write-multiple-registers",
        FunctionCode::ReadFifoQueue => "read-fifo-queue",
        FunctionCode::ReadDeviceIdentification => "read-device-identification",
        FunctionCode::ReadExceptionStatus => "read-exception-status",
        FunctionCode::Diagnostics => "diagnostics",
        FunctionCode::GetCommEventCounter => "get-comm-event-counter",
        FunctionCode::GetCommEventLog => "get-comm-event-log",
        FunctionCode::ReportServerId => "report-server-id",
        FunctionCode::UserDefined(_) => return None,
    })
}

/// The codes a function name or group stands for: a group (`read`, `write`,
/// `diagnostic`, `user-defined`, `all`, `serial`) or a function's key.
pub fn resolve_function_name(name: &str) -> Option<FunctionSet> {
    if name == "all" {
        let mut all = FunctionSet::new();
        for (_, codes) in FUNCTION_GROUPS {
            for &code in *codes {
                all.insert(code);
            }
        }
        return Some(all);
    }
    if let Some((_, codes)) = FUNCTION_GROUPS
        .iter()
        .chain([&SERIAL_GROUP])
        .find(|(group, _)| *group == name)
    {
        return Some(FunctionSet::of(codes));
    }
    FunctionCode::STANDARD
        .iter()
        .chain(&FunctionCode::SERIAL_LINE)
        .find(|&&f| function_key(f) == Some(name))
        .map(|f| FunctionSet::of(&[f.code()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_known_code_once_and_all_leaves_the_serial_line_ones_out() {
        let all = resolve_function_name("all").unwrap();
        let serial = resolve_function_name("serial").unwrap();
        for code in 0..=u8::MAX {
            let groups = FUNCTION_GROUPS
                .iter()
                .chain([&SERIAL_GROUP])
                .filter(|(_, codes)| codes.contains(&code))
                .count();
            let known = FunctionCode::from_code(code).is_ok();
            let serial_line = FunctionCode::SERIAL_LINE.iter().any(|f| f.code() == code);
            assert_eq!(groups, usize::from(known), "0x{code:02X}");
            assert_eq!(all.contains(code), known && !serial_line, "0x{code:02X}");
            assert_eq!(serial.contains(code), serial_line, "0x{code:02X}");
        }
    }

    #[test]
    fn every_standard_function_has_a_key_that_resolves_to_it() {
        for function in FunctionCode::STANDARD
            .into_iter()
            .chain(FunctionCode::SERIAL_LINE)
        {
            let key = function_key(function).unwrap();
            assert_eq!(
                resolve_function_name(key),
                Some(FunctionSet::of(&[function.code()]))
            );
        }
        assert_eq!(resolve_function_name("reed"), None);
    }
}
