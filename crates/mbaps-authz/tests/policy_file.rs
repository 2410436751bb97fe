//! Policy files as an engineer writes them: the example loads and means what
//! it says, and every kind of mistake is reported exactly, with its place.

use mbaps_authz::{Access, Decision, Denial, Policy, PolicyError, Role, Table};
use mbaps_codec::{ReadDeviceIdCode, Registers, Request};

fn problems(text: &str) -> Vec<String> {
    match Policy::from_toml_named(text, "plant.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(err) => err.to_string().lines().map(str::to_owned).collect(),
    }
}

fn role(name: &str) -> Role {
    Role::new(name).unwrap()
}

const READ: Request<'static> = Request::ReadHoldingRegisters {
    address: 0,
    quantity: 10,
};
const WRITE: Request<'static> = Request::WriteSingleRegister {
    address: 5,
    value: 1,
};

#[test]
fn the_example_policy_lets_viewers_read_operators_write_and_no_role_nothing() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let policy = Policy::load(&path).unwrap();
    let mut roles: Vec<&str> = policy.roles().map(Role::as_str).collect();
    roles.sort();
    assert_eq!(roles, ["operator", "viewer"]);
    let device_id = Request::ReadDeviceIdentification {
        code: ReadDeviceIdCode::Basic,
        object_id: 0,
    };
    let viewer = policy.permissions(Some(&role("viewer")));
    let operator = policy.permissions(Some(&role("operator")));
    let nobody = policy.permissions(None);
    for unit in [0, 1, 247, 255] {
        assert_eq!(viewer.decide(unit, &READ), Decision::Allow);
        assert_eq!(viewer.decide(unit, &device_id), Decision::Allow);
        assert_eq!(
            viewer.decide(unit, &WRITE),
            Decision::Deny(Denial::FunctionNotAllowed { function: 0x06 })
        );
        assert_eq!(operator.decide(unit, &READ), Decision::Allow);
        assert_eq!(operator.decide(unit, &WRITE), Decision::Allow);
        assert_eq!(
            nobody.decide(unit, &READ),
            Decision::Deny(Denial::FunctionNotAllowed { function: 0x03 })
        );
    }
    // Read/write multiple writes: a viewer may not use it.
    let values = [1u16];
    let read_write = Request::ReadWriteMultipleRegisters {
        read_address: 0,
        read_quantity: 1,
        write_address: 0,
        values: Registers::from_values(&values),
    };
    assert!(!viewer.decide(1, &read_write).is_allowed());
    assert!(operator.decide(1, &read_write).is_allowed());
    // A role the policy does not name gets nothing.
    assert_eq!(
        policy.decide(Some(&role("Operator")), 1, &READ),
        Decision::Deny(Denial::RoleNotInPolicy)
    );
}

#[test]
fn units_and_address_ranges_restrict_a_rule() {
    let policy = Policy::from_toml(
        r#"
        [[roles.maintenance.allow]]
        functions = ["read-holding-registers", "write-multiple-registers"]
        units = ["1-10", 247]
        holding_registers = ["100-199", 300]
        "#,
    )
    .unwrap();
    let maintenance = policy.permissions(Some(&role("maintenance")));
    let read = |address, quantity| Request::ReadHoldingRegisters { address, quantity };
    assert!(maintenance.decide(1, &read(100, 100)).is_allowed());
    assert!(maintenance.decide(247, &read(300, 1)).is_allowed());
    assert_eq!(
        maintenance.decide(11, &read(100, 1)),
        Decision::Deny(Denial::UnitNotAllowed {
            function: 0x03,
            unit: 11
        })
    );
    assert_eq!(
        maintenance.decide(1, &read(150, 51)),
        Decision::Deny(Denial::AddressNotAllowed {
            function: 0x03,
            unit: 1,
            access: Access {
                table: Table::HoldingRegisters,
                first: 150,
                last: 200
            }
        })
    );
    // A rule with address keys allows no other table.
    assert_eq!(
        maintenance.decide(
            1,
            &Request::ReadCoils {
                address: 0,
                quantity: 1
            }
        ),
        Decision::Deny(Denial::FunctionNotAllowed { function: 0x01 })
    );
    let values = [1u16; 3];
    let write = |address| Request::WriteMultipleRegisters {
        address,
        values: Registers::from_values(&values),
    };
    assert!(maintenance.decide(5, &write(197)).is_allowed());
    assert!(!maintenance.decide(5, &write(198)).is_allowed());
}

#[test]
fn denials_say_what_was_missing_in_words() {
    let denial = Denial::AddressNotAllowed {
        function: 0x10,
        unit: 3,
        access: Access {
            table: Table::HoldingRegisters,
            first: 198,
            last: 200,
        },
    };
    assert_eq!(
        denial.to_string(),
        "no rule allows write multiple registers (0x10) on unit 3 for holding registers 198..=200"
    );
}

#[test]
fn an_unknown_function_name_is_reported_with_a_suggestion() {
    assert_eq!(
        problems("[roles.op]\nallow = [{ functions = [\"reed\", \"write\"] }]\n"),
        [
            "plant.toml:2:25: unknown function \"reed\": did you mean \"read\"? use a group (read, write, diagnostic, user-defined, all, serial), a function such as \"read-holding-registers\", or a function code such as 3"
        ]
    );
}

#[test]
fn an_undefined_function_code_is_reported() {
    assert_eq!(
        problems("[[roles.op.allow]]\nfunctions = [9, 3, 300]\n"),
        [
            "plant.toml:2:14: function code 9 is not a Modbus function code",
            "plant.toml:2:20: function code 300 is outside 1..=127",
        ]
    );
}

#[test]
fn serial_line_functions_are_granted_by_group_name_or_code_never_by_all() {
    let policy = Policy::from_toml(
        "[roles.admin]\nallow = [{ functions = [\"all\"] }]\n\
         [roles.maintainer]\nallow = [{ functions = [\"serial\"] }]\n\
         [roles.tech]\nallow = [{ functions = [\"report-server-id\", 7] }]\n",
    )
    .unwrap();
    let allowed = |role: &str, request: &Request<'_>| {
        let role = Role::new(role).unwrap();
        matches!(
            policy.permissions(Some(&role)).decide(1, request),
            Decision::Allow
        )
    };
    let restart = Request::Diagnostics {
        sub_function: 0x01,
        data: 0,
    };
    assert!(
        !allowed("admin", &restart),
        "all grants no serial-line function"
    );
    assert!(!allowed("admin", &Request::ReportServerId));
    assert!(allowed("maintainer", &restart));
    assert!(allowed("maintainer", &Request::GetCommEventLog));
    assert!(allowed("tech", &Request::ReportServerId));
    assert!(allowed("tech", &Request::ReadExceptionStatus));
    assert!(!allowed("tech", &restart));
}

#[test]
fn unknown_keys_are_reported_with_the_keys_that_exist() {
    assert_eq!(
        problems("[roles.op]\nallow = [{ functions = [\"read\"], unit = 3 }]\n"),
        [
            "plant.toml:2:34: unknown field `unit`, expected one of `functions`, `units`, `coils`, `discrete_inputs`, `holding_registers`, `input_registers`, `files`"
        ]
    );
    assert_eq!(
        problems("[role.op]\nallow = []\n"),
        ["plant.toml:1:2: unknown field `role`, expected `roles` or `no_role`"]
    );
}

#[test]
fn a_duplicated_role_is_reported_where_it_is_defined_again() {
    assert_eq!(
        problems("[roles.op]\nallow = []\n\n[roles.op]\nallow = []\n"),
        [
            "plant.toml:4:8: duplicate key \"op\": a role, and a key within one table, may be defined only once"
        ]
    );
}

#[test]
fn reversed_and_overlapping_ranges_are_reported_each_in_its_place() {
    assert_eq!(
        problems("[[roles.op.allow]]\nfunctions = \"read\"\ncoils = [\"20-10\"]\n"),
        ["plant.toml:3:10: coils: address range \"20-10\" is reversed: write \"10-20\""]
    );
    assert_eq!(
        problems(
            "[[roles.op.allow]]\nfunctions = \"read\"\nholding_registers = [\"100-199\", \"150-160\", 7]\nunits = [300, \"1-2\"]\n"
        ),
        [
            "plant.toml:3:33: holding_registers: 150-160 overlaps 100-199; list each address once",
            "plant.toml:4:10: units: unit 300 is outside 0..=255",
        ]
    );
}

#[test]
fn every_mistake_of_a_file_is_reported_not_only_the_first() {
    let text = "[[roles.a.allow]]\nfunctions = [\"reed\"]\n\n[[roles.b.allow]]\nfunctions = [\"read\"]\ncoils = \"9-1\"\n";
    assert_eq!(problems(text).len(), 2);
}

#[test]
fn empty_lists_that_would_allow_nothing_are_reported() {
    assert_eq!(
        problems("[[roles.op.allow]]\nfunctions = []\nunits = []\n"),
        [
            "plant.toml:2:13: functions is empty: a rule must allow at least one function",
            "plant.toml:3:9: units is empty, so the rule applies to no unit; leave the key out to apply it to every unit",
        ]
    );
}

#[test]
fn wrong_types_syntax_errors_and_bad_role_names_are_located() {
    assert_eq!(
        problems("[[roles.op.allow]]\nfunctions = [1.5]\n"),
        [
            "plant.toml:2:14: invalid type: floating point `1.5`, expected a function name (\"read\", \"read-coils\", ...) or code"
        ]
    );
    assert_eq!(
        problems("[[roles.op.allow]]\nunits = 1\n"),
        ["plant.toml:1:1: missing field `functions`"]
    );
    assert_eq!(
        problems("[roles.op\nallow = []\n"),
        ["plant.toml:1:10: unclosed table, expected `]`"]
    );
    assert_eq!(
        problems("[roles.\"\"]\nallow = []\n"),
        ["plant.toml:1:1: role name \"\": the role is empty"]
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let err = Policy::load(std::path::Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot read the policy file /nonexistent/policy.toml:")
    );
}

#[test]
fn an_empty_policy_allows_nothing() {
    let policy = Policy::from_toml("").unwrap();
    assert_eq!(
        policy.decide(None, 1, &READ),
        Decision::Deny(Denial::FunctionNotAllowed { function: 0x03 })
    );
    assert_eq!(
        policy.decide(Some(&role("operator")), 1, &READ),
        Decision::Deny(Denial::RoleNotInPolicy)
    );
}
