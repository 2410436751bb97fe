//! The policy-file parser and compiler on arbitrary text: never panics;
//! every error is located; a policy that loads decides requests exactly as
//! the plain evaluation of its rules does (`Permissions::explain`, the
//! reference the compiled tables are checked against).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_authz::{Policy, Role};
use mbaps_codec::{ReadDeviceIdCode, Request};

const REQUESTS: [Request<'static>; 8] = [
    Request::ReadHoldingRegisters {
        address: 100,
        quantity: 10,
    },
    Request::ReadHoldingRegisters {
        address: 0,
        quantity: 125,
    },
    Request::ReadCoils {
        address: 10,
        quantity: 2000,
    },
    Request::ReadInputRegisters {
        address: 199,
        quantity: 2,
    },
    Request::WriteSingleCoil {
        address: 0xFFFF,
        value: true,
    },
    Request::WriteSingleRegister {
        address: 5,
        value: 1,
    },
    Request::ReadFifoQueue { address: 0xFFF0 },
    Request::ReadDeviceIdentification {
        code: ReadDeviceIdCode::Basic,
        object_id: 0,
    },
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_toml(text) {
        Ok(policy) => {
            let roles: Vec<Role> = policy.roles().cloned().collect();
            let subjects = std::iter::once(None).chain(roles.iter().map(Some));
            for role in subjects {
                let permissions = policy.permissions(role);
                for unit in [0, 1, 7, 247, 255] {
                    for request in &REQUESTS {
                        let decided = permissions.decide(unit, request);
                        assert_eq!(policy.decide(role, unit, request), decided);
                        let explained = permissions.explain(unit, request);
                        assert_eq!(
                            explained.decision, decided,
                            "{role:?} unit {unit}: {request:?}"
                        );
                        assert_eq!(explained.rules.is_empty(), !decided.is_allowed());
                    }
                }
            }
        }
        Err(err) => {
            assert!(!err.problems().is_empty());
            for problem in err.problems() {
                assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
                assert!(!problem.message.is_empty());
            }
        }
    }
});
