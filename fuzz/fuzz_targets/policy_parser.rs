//! The policy-file parser and compiler on arbitrary text: never panics;
//! every error is located; a policy that loads can decide requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbaps_authz::{Policy, Role};
use mbaps_codec::{ReadDeviceIdCode, Request};

const REQUESTS: [Request<'static>; 4] = [
    Request::ReadHoldingRegisters { address: 100, quantity: 10 },
    Request::WriteSingleCoil { address: 0xFFFF, value: true },
    Request::ReadFifoQueue { address: 0xFFF0 },
    Request::ReadDeviceIdentification { code: ReadDeviceIdCode::Basic, object_id: 0 },
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::from_toml(text) {
        Ok(policy) => {
            let roles: Vec<Role> = policy.roles().cloned().collect();
            for unit in [0, 1, 247, 255] {
                for request in &REQUESTS {
                    let _ = policy.decide(None, unit, request);
                    for role in &roles {
                        let _ = policy.permissions(Some(role)).decide(unit, request);
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
