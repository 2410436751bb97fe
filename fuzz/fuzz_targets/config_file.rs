//! The configuration file (the front's keys and the gateway's routes) on
//! arbitrary text: never panics; every error is placed at a line and column;
//! a file that loads routes each unit id at most once, with limits in range.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match mbaps_config::parse(text) {
        Ok(file) => {
            let mut taken = [false; 256];
            for route in &file.routes {
                assert!(route.limits.validate().is_ok(), "{route:?}");
                for unit in route.units.clone() {
                    assert!(!taken[usize::from(unit)], "unit {unit} routed twice");
                    taken[usize::from(unit)] = true;
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for problem in problems {
                assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
                assert!(!problem.message.is_empty());
            }
        }
    }
});
