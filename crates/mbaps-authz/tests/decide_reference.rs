//! The compiled decision equals a plain, obviously correct evaluation of the
//! rules, over random policies and requests: for every access, address by
//! address, some rule that allows the function on the unit allows it.

use mbaps_authz::{
    Access, Addresses, Decision, Denial, FunctionSet, Policy, Role, Rule, Table, accesses,
};
use mbaps_codec::{Bits, FileRecordRead, List, ReadDeviceIdCode, Registers, Request};
use proptest::collection::vec;
use proptest::prelude::*;

/// Function codes the strategies use: every standard one and a user code.
const CODES: [u8; 15] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10, 0x14, 0x15, 0x16, 0x17, 0x18, 0x2B, 65,
];

fn reference(rules: &[Rule], unit: u8, request: &Request<'_>) -> Decision {
    let function = request.function().code();
    let with_function: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.functions.contains(function))
        .collect();
    if with_function.is_empty() {
        return Decision::Deny(Denial::FunctionNotAllowed { function });
    }
    let with_unit: Vec<&Rule> = with_function
        .into_iter()
        .filter(|r| r.has_unit(unit))
        .collect();
    if with_unit.is_empty() {
        return Decision::Deny(Denial::UnitNotAllowed { function, unit });
    }
    for access in accesses(request) {
        let Access { table, first, last } = access;
        for address in first..=last {
            if !with_unit.iter().any(|r| r.has_address(table, address)) {
                return Decision::Deny(Denial::AddressNotAllowed {
                    function,
                    unit,
                    access,
                });
            }
        }
    }
    Decision::Allow
}

/// Ranges on a grid of 5 (so that ranges of different rules often meet end
/// to start, and requests often straddle them), and arbitrary ones.
fn small_range(max: u16) -> impl Strategy<Value = std::ops::RangeInclusive<u16>> {
    prop_oneof![
        (0..=max / 5, 1..=3u16).prop_map(move |(s, l)| 5 * s..=(5 * (s + l) - 1).min(max)),
        (0..=max, 0..=12u16)
            .prop_map(move |(start, len)| start..=start.saturating_add(len).min(max)),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![sparse_rule(), dense_rule()]
}

/// Rules that allow every function on every unit, with grid ranges on two
/// tables: so that rules meet and requests straddle them often.
fn dense_rule() -> impl Strategy<Value = Rule> {
    vec(
        (
            proptest::sample::select(vec![Table::Coils, Table::HoldingRegisters]),
            (0..=16u16, 1..=2u16).prop_map(|(s, l)| 5 * s..=5 * (s + l) - 1),
        ),
        1..4,
    )
    .prop_map(|ranges| {
        let mut addresses = Addresses::new();
        for (table, range) in ranges {
            addresses.allow(table, range);
        }
        Rule {
            functions: FunctionSet::of(&CODES),
            units: None,
            addresses: Some(addresses),
        }
    })
}

fn sparse_rule() -> impl Strategy<Value = Rule> {
    let functions =
        vec(proptest::sample::select(CODES.to_vec()), 1..5).prop_map(|c| FunctionSet::of(&c));
    let units = proptest::option::weighted(0.6, vec((0..=5u8, 0..=2u8), 1..3)).prop_map(|u| {
        u.map(|v| {
            v.into_iter()
                .map(|(s, l)| s..=s.saturating_add(l))
                .collect()
        })
    });
    let addresses = proptest::option::weighted(
        0.7,
        vec(
            (
                proptest::sample::select(Table::ALL.to_vec()),
                small_range(70),
            ),
            0..6,
        ),
    )
    .prop_map(|a| {
        a.map(|ranges| {
            let mut addresses = Addresses::new();
            for (table, range) in ranges {
                addresses.allow(table, range);
            }
            addresses
        })
    });
    (functions, units, addresses).prop_map(|(functions, units, addresses)| Rule {
        functions,
        units,
        addresses,
    })
}

/// A request in owned form, borrowed as a `Request` by `with`.
#[derive(Clone, Debug)]
enum Owned {
    Plain(Request<'static>),
    Coils(u16, Vec<bool>),
    Registers(u16, Vec<u16>),
    ReadWrite(u16, u16, u16, Vec<u16>),
    Files(Vec<FileRecordRead>),
}

impl Owned {
    fn with<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        match self {
            Owned::Plain(r) => f(r),
            Owned::Coils(address, values) => f(&Request::WriteMultipleCoils {
                address: *address,
                values: Bits::from_bools(values),
            }),
            Owned::Registers(address, values) => f(&Request::WriteMultipleRegisters {
                address: *address,
                values: Registers::from_values(values),
            }),
            Owned::ReadWrite(ra, rq, wa, values) => f(&Request::ReadWriteMultipleRegisters {
                read_address: *ra,
                read_quantity: *rq,
                write_address: *wa,
                values: Registers::from_values(values),
            }),
            Owned::Files(records) => f(&Request::ReadFileRecord {
                records: List::from_items(records),
            }),
        }
    }
}

fn request() -> impl Strategy<Value = Owned> {
    let a = || 0..=80u16;
    let q = || 1..=20u16;
    prop_oneof![
        (a(), q())
            .prop_map(|(address, quantity)| Owned::Plain(Request::ReadCoils { address, quantity })),
        (a(), q()).prop_map(
            |(address, quantity)| Owned::Plain(Request::ReadDiscreteInputs { address, quantity })
        ),
        (a(), q()).prop_map(
            |(address, quantity)| Owned::Plain(Request::ReadHoldingRegisters { address, quantity })
        ),
        (a(), q()).prop_map(
            |(address, quantity)| Owned::Plain(Request::ReadInputRegisters { address, quantity })
        ),
        (a(), any::<bool>())
            .prop_map(|(address, value)| Owned::Plain(Request::WriteSingleCoil { address, value })),
        (a(), any::<u16>()).prop_map(|(address, value)| Owned::Plain(
            Request::WriteSingleRegister { address, value }
        )),
        (a(), vec(any::<bool>(), 1..20)).prop_map(|(a, v)| Owned::Coils(a, v)),
        (a(), vec(any::<u16>(), 1..20)).prop_map(|(a, v)| Owned::Registers(a, v)),
        (a(), q(), a(), vec(any::<u16>(), 1..10))
            .prop_map(|(ra, rq, wa, v)| Owned::ReadWrite(ra, rq, wa, v)),
        a().prop_map(|address| Owned::Plain(Request::MaskWriteRegister {
            address,
            and_mask: 1,
            or_mask: 2
        })),
        a().prop_map(|address| Owned::Plain(Request::ReadFifoQueue { address })),
        vec(0..=80u16, 1..4).prop_map(|files| Owned::Files(
            files
                .into_iter()
                .map(|file_number| FileRecordRead {
                    file_number,
                    record_number: 0,
                    record_length: 1
                })
                .collect()
        )),
        Just(Owned::Plain(Request::ReadDeviceIdentification {
            code: ReadDeviceIdCode::Basic,
            object_id: 0
        })),
        Just(Owned::Plain(Request::UserDefined {
            function: 65,
            data: &[1, 2]
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_decisions_equal_the_reference(
        roles in vec(vec(rule(), 0..6), 1..4),
        no_role in vec(rule(), 0..3),
        who in 0..6usize,
        unit in 0..=7u8,
        requests in vec(request(), 1..8),
    ) {
        let names: Vec<Role> = (0..roles.len()).map(|i| Role::new(&format!("role{i}")).unwrap()).collect();
        let policy = Policy::from_rules(names.iter().cloned().zip(roles.iter().cloned()), no_role.clone()).unwrap();
        // who: one of the roles, the NULL role, or a role the policy lacks.
        let (role, rules): (Option<Role>, Option<&[Rule]>) = if who < roles.len() {
            (Some(names[who].clone()), Some(&roles[who]))
        } else if who == roles.len() {
            (None, Some(&no_role))
        } else {
            (Some(Role::new("stranger").unwrap()), None)
        };
        let permissions = policy.permissions(role.as_ref());
        for owned in &requests {
            owned.with(|request| {
                let expected = match rules {
                    Some(rules) => reference(rules, unit, request),
                    None => Decision::Deny(Denial::RoleNotInPolicy),
                };
                assert_eq!(permissions.decide(unit, request), expected, "{request:?}");
                assert_eq!(policy.decide(role.as_ref(), unit, request), expected);
                // The library's own plain evaluation agrees, and names
                // rules that really allow what it says they allow.
                let explained = permissions.explain(unit, request);
                assert_eq!(explained.decision, expected, "{request:?}");
                if let (Decision::Allow, Some(rules)) = (expected, rules) {
                    let chosen: Vec<Rule> = explained.rules.iter().map(|&i| rules[i].clone()).collect();
                    assert!(!chosen.is_empty());
                    assert_eq!(reference(&chosen, unit, request), Decision::Allow, "{request:?}");
                }
            });
        }
    }
}
