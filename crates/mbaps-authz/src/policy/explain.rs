//! The plain evaluation of a role's rules: one rule after another, every
//! address of every access. Slow and obviously correct: it says which rules
//! allowed a request (for `mbaps policy explain`, for an auditor), and it is
//! the reference the compiled decision is tested and fuzzed against.

use mbaps_codec::Request;

use crate::access::{Access, accesses};
use crate::policy::compiled::{Decision, Denial, Permissions, Subject};
use crate::policy::rules::Rule;

/// A decision with its reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The decision, the same as [`Permissions::decide`]'s.
    pub decision: Decision,
    /// When allowed: the rules (their positions in the role's list, from
    /// 0) that together cover every address the request touches, each
    /// once; for a request that touches no table, the first rule that
    /// allows its function on the unit. Empty when denied.
    pub rules: Vec<usize>,
}

impl Permissions {
    /// Decides `request` to `unit` the plain way and says why; see
    /// [`Explanation`]. Allocates, and walks every address: use
    /// [`Permissions::decide`] on the request path.
    pub fn explain(&self, unit: u8, request: &Request<'_>) -> Explanation {
        let deny = |denial| Explanation {
            decision: Decision::Deny(denial),
            rules: Vec::new(),
        };
        let function = request.function().code();
        if let Subject::UnknownRole(_) = self.subject() {
            return deny(Denial::RoleNotInPolicy);
        }
        let for_function: Vec<(usize, &Rule)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.functions.contains(function))
            .collect();
        if for_function.is_empty() {
            return deny(Denial::FunctionNotAllowed { function });
        }
        let for_unit: Vec<(usize, &Rule)> = for_function
            .into_iter()
            .filter(|(_, rule)| rule.has_unit(unit))
            .collect();
        let Some(&(first, _)) = for_unit.first() else {
            return deny(Denial::UnitNotAllowed { function, unit });
        };
        let mut used = Vec::new();
        for access in accesses(request) {
            let Access { table, first, last } = access;
            for address in first..=last {
                let covering = for_unit
                    .iter()
                    .find(|(_, rule)| rule.has_address(table, address));
                match covering {
                    Some(&(index, _)) => {
                        if !used.contains(&index) {
                            used.push(index);
                        }
                    }
                    None => {
                        return deny(Denial::AddressNotAllowed {
                            function,
                            unit,
                            access,
                        });
                    }
                }
            }
        }
        if used.is_empty() {
            used.push(first);
        }
        used.sort_unstable();
        Explanation {
            decision: Decision::Allow,
            rules: used,
        }
    }

    /// The role's rules as written.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}
