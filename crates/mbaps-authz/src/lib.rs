//! # mbaps-authz
//!
//! Authorization for Modbus/TCP Security: the role a client certificate
//! carries, and a policy that says, for every request, whether that role may
//! make it (R-16, R-30).
//!
//! ```text
//!  client certificate (DER) ──► role_from_certificate ──► Option<Role>        once per session
//!                                                              │
//!  policy file (TOML) ──► Policy::load ──► Policy ──► permissions(role) ──► Arc<Permissions>
//!                                                                                 │
//!  every request ──────────────────────────► Permissions::decide(unit, &Request) ─► Allow | Deny(Denial)
//! ```
//!
//! A denied request is answered with exception 0x01 (R-31); the [`Denial`]
//! says which permission was missing, for the audit log.
//!
//! ## The role (R-20..R-23, R-65)
//! [`role_from_certificate`] finds the extension 1.3.6.1.4.1.50316.802.1 and
//! decodes its value strictly as a DER UTF8String. No extension is the NULL
//! role (`Ok(None)`); two extensions, another string type, trailing bytes,
//! invalid UTF-8, an empty or overlong role are errors, never guessed at.
//!
//! ## The policy file
//! The end user names the roles and what each may do; there are no built-in
//! roles (R-24..R-29) and everything not allowed is denied.
//!
//! ```toml
//! # Viewers may read everything.
//! [roles.viewer]
//! description = "Reads everything, writes nothing"
//! allow = [{ functions = ["read", "diagnostic"] }]
//!
//! # Operators may read and write everything.
//! [roles.operator]
//! allow = [{ functions = ["read", "write", "diagnostic"] }]
//!
//! # Maintenance may write setpoints 100..=199 of units 1 to 10 only.
//! [[roles.maintenance.allow]]
//! functions = ["read"]
//!
//! [[roles.maintenance.allow]]
//! functions = ["write-single-register", "write-multiple-registers"]
//! units = ["1-10"]
//! holding_registers = ["100-199"]
//!
//! # Clients whose certificate has no role (default: nothing).
//! [no_role]
//! allow = []
//! ```
//!
//! A rule allows a request when the request's function is in `functions`,
//! its unit id in `units` (every unit if the key is left out), and every
//! address it touches is in the rule's address keys. A rule without address
//! keys allows every address of every table; a rule with one or more allows
//! only the tables and ranges it lists. `functions` takes groups (`read`,
//! `write`, `diagnostic`, `user-defined`, `all`), function names
//! (`read-holding-registers`, ...) and codes (`3`, `0x03`). Ranges are
//! numbers or `"first-last"` strings. Rules add up: a request is allowed if
//! the rules of its role that allow its function on its unit together cover
//! every address it touches. `docs/policy.md` has the whole reference.
//!
//! ```
//! use mbaps_authz::{Decision, Denial, Policy, Role};
//! use mbaps_codec::Request;
//!
//! let policy = Policy::from_toml(r#"
//!     [roles.viewer]
//!     allow = [{ functions = ["read"] }]
//! "#)?;
//! let viewer = policy.permissions(Some(&Role::new("viewer")?));
//! let read = Request::ReadHoldingRegisters { address: 0, quantity: 10 };
//! let write = Request::WriteSingleRegister { address: 0, value: 1 };
//! assert_eq!(viewer.decide(1, &read), Decision::Allow);
//! assert_eq!(viewer.decide(1, &write), Decision::Deny(Denial::FunctionNotAllowed { function: 0x06 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod access;
mod policy;
mod role;

pub use access::{Access, Accesses, Table, Target, accesses};
pub use policy::{
    Addresses, Decision, Denial, Explanation, FUNCTION_GROUPS, FunctionSet, Listing,
    MAX_GRANTS_PER_ROLE, MAX_POLICY_BYTES, MAX_RULES_PER_ROLE, Permissions, Policy, PolicyError,
    Problem, Rule, SERIAL_GROUP, Subject, function_key, line_column, resolve_function_name,
};
pub use role::{
    LoggedRole, MAX_ROLE_LEN, NULL_ROLE_NAME, ROLE_OID, Role, RoleError, role_from_certificate,
    role_from_extension_value,
};
