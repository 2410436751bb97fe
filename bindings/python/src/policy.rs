//! `mbaps.Policy` (the policy engine: load, parse, explain a decision) and
//! `mbaps.role_of` (a certificate's role).

use std::path::PathBuf;
use std::sync::Arc;

use mbaps_authz::{Decision, NULL_ROLE_NAME, PolicyError, Role, role_from_certificate};
use mbaps_codec::Request;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::exception;

/// An authorization policy (see the repository's `docs/policy.md`).
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct Policy {
    policy: Arc<mbaps_authz::Policy>,
}

/// `mbaps.PolicyError`, placed at the first mistake (all are listed in its
/// words).
fn policy_error(py: Python<'_>, error: &PolicyError) -> PyErr {
    let (line, column) = error
        .problems()
        .first()
        .map_or((0, 0), |problem| (problem.line, problem.column));
    exception(py, "PolicyError", (error.to_string(), line, column))
}

impl Policy {
    /// The policy engine's policy.
    pub(crate) fn policy(&self) -> &mbaps_authz::Policy {
        &self.policy
    }
}

#[pymethods]
impl Policy {
    /// Reads and checks the policy file at `path` (raises
    /// `mbaps.PolicyError`).
    #[staticmethod]
    pub(crate) fn load(py: Python<'_>, path: PathBuf) -> PyResult<Policy> {
        match mbaps_authz::Policy::load(&path) {
            Ok(policy) => Ok(Policy {
                policy: Arc::new(policy),
            }),
            Err(error) => Err(policy_error(py, &error)),
        }
    }

    /// Checks a policy's TOML text (raises `mbaps.PolicyError`).
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str) -> PyResult<Policy> {
        match mbaps_authz::Policy::from_toml(text) {
            Ok(policy) => Ok(Policy {
                policy: Arc::new(policy),
            }),
            Err(error) => Err(policy_error(py, &error)),
        }
    }

    /// The roles the policy names.
    fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self.policy.roles().map(|r| r.as_str().to_owned()).collect();
        roles.sort_unstable();
        roles
    }

    /// Whether `role` (None: the NULL role) may send the request PDU `pdu`
    /// to `unit`, and why.
    #[pyo3(signature = (role, pdu, unit = 1))]
    fn explain(&self, role: Option<&str>, pdu: Vec<u8>, unit: i64) -> PyResult<Explanation> {
        let unit = u8::try_from(unit)
            .map_err(|_| PyValueError::new_err(format!("unit is {unit}: it must be 0 to 255")))?;
        let role = role
            .map(Role::new)
            .transpose()
            .map_err(|error| PyValueError::new_err(format!("role: {error}")))?;
        let request = Request::decode(&pdu)
            .map_err(|error| PyValueError::new_err(format!("pdu does not decode: {error}")))?;
        let subject = role.as_ref().map_or(NULL_ROLE_NAME.to_owned(), |role| {
            format!("roles.{}", role.as_str())
        });
        let explanation = self
            .policy
            .permissions(role.as_ref())
            .explain(unit, &request);
        Ok(match explanation.decision {
            Decision::Allow => Explanation {
                allowed: true,
                rule: Some(
                    explanation
                        .rules
                        .iter()
                        .map(|index| format!("{subject}.allow[{index}]"))
                        .collect::<Vec<_>>()
                        .join(" and "),
                ),
                missing: None,
            },
            Decision::Deny(denial) => Explanation {
                allowed: false,
                rule: None,
                missing: Some(denial.to_string()),
            },
        })
    }
}

/// A decision and its reasons.
#[pyclass(module = "mbaps", frozen, get_all)]
pub(crate) struct Explanation {
    /// Whether the request is allowed.
    allowed: bool,
    /// The rules that allow it (`roles.NAME.allow[N]`, joined by " and "),
    /// when allowed.
    rule: Option<String>,
    /// The permission missing, when denied.
    missing: Option<String>,
}

#[pymethods]
impl Explanation {
    fn __repr__(&self) -> String {
        match (&self.rule, &self.missing) {
            (Some(rule), _) => format!("Explanation(allowed=True, rule={rule:?})"),
            (_, Some(missing)) => format!("Explanation(allowed=False, missing={missing:?})"),
            _ => format!("Explanation(allowed={})", self.allowed),
        }
    }
}

/// The role carried in a certificate (DER bytes): its name, or None for a
/// certificate without the role extension (the NULL role). A malformed
/// extension raises ValueError.
#[pyfunction]
pub(crate) fn role_of(certificate: Vec<u8>) -> PyResult<Option<String>> {
    role_from_certificate(&certificate)
        .map(|role| role.map(|role| role.as_str().to_owned()))
        .map_err(|error| PyValueError::new_err(format!("certificate: {error}")))
}
