//! The authorization policy: which requests each role may make (R-24..R-31).

mod compiled;
mod error;
mod explain;
mod file;
mod rules;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use mbaps_codec::Request;

pub use compiled::{Decision, Denial, MAX_GRANTS_PER_ROLE, Permissions, Subject};
pub use error::{Listing, PolicyError, Problem};
pub use explain::Explanation;
pub use file::{MAX_POLICY_BYTES, MAX_RULES_PER_ROLE, line_column};
pub use rules::{
    Addresses, FUNCTION_GROUPS, FunctionSet, Rule, SERIAL_GROUP, function_key,
    resolve_function_name,
};

use crate::role::Role;

/// A compiled policy: for each role it names, and for clients without a
/// role, the requests allowed. Everything else is denied.
///
/// There are no built-in roles (R-24..R-29): an empty policy allows nothing.
#[derive(Clone, Debug)]
pub struct Policy {
    roles: HashMap<Role, Arc<Permissions>>,
    no_role: Arc<Permissions>,
}

impl Default for Policy {
    /// The policy that allows nothing to anyone.
    fn default() -> Self {
        Policy {
            roles: HashMap::new(),
            no_role: Arc::new(Permissions::nothing(Subject::NoRole)),
        }
    }
}

impl Policy {
    /// Parses and compiles a policy file's text. Every mistake is reported,
    /// each with its line and column; `<policy>` stands for the origin.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        Self::from_toml_named(text, "<policy>")
    }

    /// As [`Policy::from_toml`], naming `origin` (a file path) in errors.
    pub fn from_toml_named(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |problems| PolicyError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let parsed = file::parse(text).map_err(invalid)?;
        Self::compile(parsed.roles, parsed.no_role).map_err(invalid)
    }

    /// Reads, parses and compiles a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_POLICY_BYTES as u64 {
            return Err(PolicyError::Invalid {
                origin: path.display().to_string(),
                problems: vec![Problem {
                    line: 0,
                    column: 0,
                    message: format!(
                        "the file is {size} bytes long; at most {MAX_POLICY_BYTES} are accepted"
                    ),
                }],
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_toml_named(&text, &path.display().to_string())
    }

    /// Compiles a policy built in code: each role with its rules, and the
    /// rules for clients without a role.
    pub fn from_rules(
        roles: impl IntoIterator<Item = (Role, Vec<Rule>)>,
        no_role: Vec<Rule>,
    ) -> Result<Policy, PolicyError> {
        Self::compile(roles.into_iter().collect(), no_role).map_err(|problems| {
            PolicyError::Invalid {
                origin: "<policy>".into(),
                problems,
            }
        })
    }

    fn compile(roles: Vec<(Role, Vec<Rule>)>, no_role: Vec<Rule>) -> Result<Policy, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut compiled = HashMap::with_capacity(roles.len());
        let mut compile = |subject: Subject, rules: &[Rule]| {
            let name = subject.to_string();
            match Permissions::compile(subject, rules) {
                Ok(permissions) => Some(Arc::new(permissions)),
                Err(err) => {
                    problems.push(Problem {
                        line: 0,
                        column: 0,
                        message: format!(
                            "the rules of {name} combine units and functions in more than {MAX_GRANTS_PER_ROLE} ways ({} at least); merge rules",
                            err.grants
                        ),
                    });
                    None
                }
            }
        };
        let no_role = compile(Subject::NoRole, &no_role);
        let mut duplicates = Vec::new();
        for (role, rules) in roles {
            if compiled.contains_key(&role) {
                duplicates.push(role);
                continue;
            }
            if let Some(permissions) = compile(Subject::Role(role.clone()), &rules) {
                compiled.insert(role, permissions);
            }
        }
        for role in duplicates {
            problems.push(Problem {
                line: 0,
                column: 0,
                message: format!("role {:?} is defined more than once", role.as_str()),
            });
        }
        match no_role {
            Some(no_role) if problems.is_empty() => Ok(Policy {
                roles: compiled,
                no_role,
            }),
            _ => Err(problems),
        }
    }

    /// The roles the policy defines.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.keys()
    }

    /// The compiled permissions of a client: of its role, of the NULL role
    /// when its certificate has none, or nothing at all for a role
    /// the policy does not define. Resolve once per session, at the
    /// handshake; then [`Permissions::decide`] costs no string comparison.
    pub fn permissions(&self, role: Option<&Role>) -> Arc<Permissions> {
        match role {
            None => Arc::clone(&self.no_role),
            Some(role) => match self.roles.get(role) {
                Some(permissions) => Arc::clone(permissions),
                None => Arc::new(Permissions::nothing(Subject::UnknownRole(role.clone()))),
            },
        }
    }

    /// Decides one request of a client with `role`. This looks
    /// the role up by name each time: a session resolves
    /// [`Policy::permissions`] once and decides with those.
    pub fn decide(&self, role: Option<&Role>, unit: u8, request: &Request<'_>) -> Decision {
        match role {
            None => self.no_role.decide(unit, request),
            Some(role) => match self.roles.get(role) {
                Some(permissions) => permissions.decide(unit, request),
                None => Decision::Deny(Denial::RoleNotInPolicy),
            },
        }
    }
}
