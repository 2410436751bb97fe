//! Decisions per second for a policy of 50 roles with 20 rules each, on a
//! mix of requests, units and roles resolved once (as a session does).
//! `cargo xtask bench` prints the figure.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mbaps_authz::{Permissions, Policy, Role};
use mbaps_codec::{Registers, Request};

const ROLES: usize = 50;
const RULES: usize = 20;

/// A policy a large plant might write: each role reads some units widely,
/// writes a few register and coil ranges on some units.
fn policy_text() -> String {
    let functions = [
        r#"["read"]"#,
        r#"["read-holding-registers", "read-input-registers"]"#,
        r#"["write-single-register", "write-multiple-registers"]"#,
        r#"["write-single-coil", "write-multiple-coils", "read-coils"]"#,
        r#"["read", "write"]"#,
    ];
    let mut text = String::new();
    for role in 0..ROLES {
        for rule in 0..RULES {
            let base = (role * 37 + rule * 101) % 60_000;
            writeln!(text, "[[roles.role{role:02}.allow]]").unwrap();
            writeln!(
                text,
                "functions = {}",
                functions[(role + rule) % functions.len()]
            )
            .unwrap();
            writeln!(
                text,
                "units = [\"{}-{}\", 247]",
                rule % 10 + 1,
                rule % 10 + 20
            )
            .unwrap();
            match rule % 3 {
                0 => writeln!(text, "holding_registers = [\"{base}-{}\"]", base + 500).unwrap(),
                1 => writeln!(
                    text,
                    "holding_registers = [\"{base}-{}\"]\ncoils = [\"0-{}\"]",
                    base + 100,
                    rule * 50 + 10
                )
                .unwrap(),
                _ => {}
            }
            text.push('\n');
        }
    }
    text
}

fn decide(c: &mut Criterion) {
    let policy = Policy::from_toml(&policy_text()).expect("bench policy compiles");
    let sessions: Vec<Arc<Permissions>> = (0..ROLES)
        .map(|i| policy.permissions(Some(&Role::new(&format!("role{i:02}")).unwrap())))
        .collect();
    let values = [7u16; 10];
    let requests = [
        Request::ReadHoldingRegisters {
            address: 100,
            quantity: 10,
        },
        Request::ReadInputRegisters {
            address: 5,
            quantity: 2,
        },
        Request::WriteSingleRegister {
            address: 2_000,
            value: 1,
        },
        Request::ReadCoils {
            address: 0,
            quantity: 16,
        },
        Request::WriteMultipleRegisters {
            address: 30_000,
            values: Registers::from_values(&values),
        },
        Request::WriteSingleCoil {
            address: 4,
            value: true,
        },
        Request::ReadHoldingRegisters {
            address: 59_000,
            quantity: 125,
        },
        Request::MaskWriteRegister {
            address: 77,
            and_mask: 0,
            or_mask: 1,
        },
    ];
    let units = [1u8, 5, 12, 247, 30];
    let cases: Vec<(usize, u8, usize)> = (0..1000)
        .map(|i| {
            (
                i * 7 % ROLES,
                units[i % units.len()],
                i * 3 % requests.len(),
            )
        })
        .collect();
    let allowed = cases
        .iter()
        .filter(|&&(s, u, r)| sessions[s].decide(u, &requests[r]).is_allowed())
        .count();
    eprintln!("bench mix: {allowed} of {} decisions allow", cases.len());

    let mut group = c.benchmark_group("authz");
    group.throughput(Throughput::Elements(cases.len() as u64));
    group.bench_function("decide", |b| {
        b.iter(|| {
            let mut allowed = 0u32;
            for &(session, unit, request) in &cases {
                allowed += u32::from(
                    black_box(&sessions[session])
                        .decide(black_box(unit), black_box(&requests[request]))
                        .is_allowed(),
                );
            }
            allowed
        })
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
