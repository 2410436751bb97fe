//! A role's rules compiled into lookup tables: a decision is two array
//! lookups and a binary search per access, with no allocation and no string
//! comparison.
//!
//! ```text
//! function code ──► function class ──► (class, unit) ──► grant ──► per table: merged ranges
//!   [u8; 256]          (same rules)       [u16; 256]                 covers(first..=last)?
//! ```
//!
//! Rules that allow the same functions share a function class; units that
//! the same rules of a class apply to share a grant; a grant holds, per
//! table, the union of those rules' ranges, merged, so an access is allowed
//! when the rules together cover it, even if no single rule does.

use core::fmt;
use std::collections::HashMap;

use mbaps_codec::{FunctionName, Request};

use crate::access::{Access, Table, accesses};
use crate::policy::rules::Rule;
use crate::role::Role;

/// Whom a set of permissions belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A role the policy defines.
    Role(Role),
    /// A client certificate without a role (the NULL role, R-23).
    NoRole,
    /// A role the policy does not define: nothing is allowed.
    UnknownRole(Role),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Role(role) => write!(f, "role {:?}", role.as_str()),
            Subject::NoRole => f.write_str("the NULL role (no role in the certificate)"),
            Subject::UnknownRole(role) => write!(f, "role {:?} (not in the policy)", role.as_str()),
        }
    }
}

/// The answer to "may this request be made?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// The request may be handed to the application.
    Allow,
    /// The request is answered with exception 0x01 (R-31), for this reason.
    Deny(Denial),
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Why a request was denied: the permission that was missing, for the audit
/// log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The client's role is not in the policy.
    RoleNotInPolicy,
    /// No rule allows the function code.
    FunctionNotAllowed {
        /// The function code.
        function: u8,
    },
    /// Rules allow the function code, but not for this unit id.
    UnitNotAllowed {
        /// The function code.
        function: u8,
        /// The unit id.
        unit: u8,
    },
    /// Rules allow the function code on this unit, but not every address
    /// the request touches.
    AddressNotAllowed {
        /// The function code.
        function: u8,
        /// The unit id.
        unit: u8,
        /// The first access not covered.
        access: Access,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Denial::RoleNotInPolicy => f.write_str("the role is not defined in the policy"),
            Denial::FunctionNotAllowed { function } => {
                write!(f, "no rule allows {}", FunctionName(function))
            }
            Denial::UnitNotAllowed { function, unit } => {
                write!(
                    f,
                    "no rule allows {} on unit {unit}",
                    FunctionName(function)
                )
            }
            Denial::AddressNotAllowed {
                function,
                unit,
                access,
            } => write!(
                f,
                "no rule allows {} on unit {unit} for {} {}..={}",
                FunctionName(function),
                access.table,
                access.first,
                access.last
            ),
        }
    }
}

/// What the rules of one role allow of one table: everything, or merged,
/// sorted, disjoint inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Coverage {
    Everything,
    Ranges(Box<[(u32, u32)]>),
}

impl Coverage {
    fn covers(&self, first: u32, last: u32) -> bool {
        match self {
            Coverage::Everything => true,
            Coverage::Ranges(ranges) => {
                // The last range starting at or before `first`.
                let after = ranges.partition_point(|&(start, _)| start <= first);
                after > 0 && ranges[after - 1].1 >= last
            }
        }
    }

    fn union(rules: &[&Rule], table: Table) -> Coverage {
        let mut ranges = Vec::new();
        for rule in rules {
            match &rule.addresses {
                None => return Coverage::Everything,
                Some(addresses) => ranges.extend(
                    addresses
                        .ranges(table)
                        .iter()
                        .map(|r| (u32::from(*r.start()), u32::from(*r.end()))),
                ),
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                // Overlapping or adjacent: 0..=99 and 100..=199 cover 0..=199.
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Coverage::Ranges(merged.into_boxed_slice())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant([Coverage; 5]);

/// No class / no grant in the lookup tables.
const NONE: u16 = u16::MAX;

/// The compiled permissions of one subject (a role, the NULL role, or an
/// unknown role). Resolve once per session with
/// [`Policy::permissions`](crate::Policy::permissions); then
/// [`Permissions::decide`] for every request.
#[derive(Clone, Debug)]
pub struct Permissions {
    subject: Subject,
    /// The rules as written, for [`Permissions::explain`].
    pub(super) rules: Box<[Rule]>,
    /// Function code -> function class, or NONE.
    function_class: [u16; 256],
    /// Per function class: unit id -> grant, or NONE.
    unit_grant: Box<[[u16; 256]]>,
    grants: Box<[Grant]>,
}

/// Why a role's rules could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooComplex {
    pub(crate) grants: usize,
}

/// Most distinct (functions, units) combinations one role may produce: far
/// more than any real policy, and a bound on the memory a policy can take.
pub const MAX_GRANTS_PER_ROLE: usize = 4096;

impl Permissions {
    /// Compiles `rules` for `subject`.
    pub(crate) fn compile(subject: Subject, rules: &[Rule]) -> Result<Permissions, TooComplex> {
        let mut function_class = [NONE; 256];
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut class_of: HashMap<Vec<usize>, u16> = HashMap::new();
        for code in 0..=u8::MAX {
            let matching: Vec<usize> = (0..rules.len())
                .filter(|&i| rules[i].functions.contains(code))
                .collect();
            if matching.is_empty() {
                continue;
            }
            let next = classes.len() as u16;
            let class = *class_of.entry(matching.clone()).or_insert_with(|| {
                classes.push(matching);
                next
            });
            function_class[usize::from(code)] = class;
        }
        let mut unit_grant = Vec::with_capacity(classes.len());
        let mut grants: Vec<Grant> = Vec::new();
        let mut grant_of: HashMap<Vec<usize>, u16> = HashMap::new();
        for class in &classes {
            let mut by_unit = [NONE; 256];
            for unit in 0..=u8::MAX {
                let applying: Vec<usize> = class
                    .iter()
                    .copied()
                    .filter(|&i| rules[i].has_unit(unit))
                    .collect();
                if applying.is_empty() {
                    continue;
                }
                let grant = match grant_of.get(&applying) {
                    Some(&grant) => grant,
                    None => {
                        if grants.len() >= MAX_GRANTS_PER_ROLE {
                            return Err(TooComplex {
                                grants: grants.len() + 1,
                            });
                        }
                        let chosen: Vec<&Rule> = applying.iter().map(|&i| &rules[i]).collect();
                        grants.push(Grant(Table::ALL.map(|t| Coverage::union(&chosen, t))));
                        let grant = (grants.len() - 1) as u16;
                        grant_of.insert(applying, grant);
                        grant
                    }
                };
                by_unit[usize::from(unit)] = grant;
            }
            unit_grant.push(by_unit);
        }
        Ok(Permissions {
            subject,
            rules: rules.into(),
            function_class,
            unit_grant: unit_grant.into_boxed_slice(),
            grants: grants.into_boxed_slice(),
        })
    }

    /// Permissions that allow nothing, for a role the policy does not define.
    pub(crate) fn nothing(subject: Subject) -> Permissions {
        Permissions {
            subject,
            rules: Box::new([]),
            function_class: [NONE; 256],
            unit_grant: Box::new([]),
            grants: Box::new([]),
        }
    }

    /// Whom these permissions belong to.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Decides whether `request`, addressed to `unit`, is allowed (R-16,
    /// R-30). Never allocates.
    pub fn decide(&self, unit: u8, request: &Request<'_>) -> Decision {
        let function = request.function().code();
        let class = self.function_class[usize::from(function)];
        if class == NONE {
            return Decision::Deny(match self.subject {
                Subject::UnknownRole(_) => Denial::RoleNotInPolicy,
                _ => Denial::FunctionNotAllowed { function },
            });
        }
        let grant = self.unit_grant[usize::from(class)][usize::from(unit)];
        if grant == NONE {
            return Decision::Deny(Denial::UnitNotAllowed { function, unit });
        }
        let Grant(tables) = &self.grants[usize::from(grant)];
        for access in accesses(request) {
            if !tables[access.table.index()].covers(access.first, access.last) {
                return Decision::Deny(Denial::AddressNotAllowed {
                    function,
                    unit,
                    access,
                });
            }
        }
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_ranges_cover_across_adjacent_rules_but_not_gaps() {
        let a = crate::policy::rules::Addresses::new()
            .allow(Table::Coils, 0..=99)
            .clone();
        let b = crate::policy::rules::Addresses::new()
            .allow(Table::Coils, 100..=199)
            .allow(Table::Coils, 300..=399)
            .clone();
        let rules = [
            Rule {
                functions: Default::default(),
                units: None,
                addresses: Some(a),
            },
            Rule {
                functions: Default::default(),
                units: None,
                addresses: Some(b),
            },
        ];
        let coverage = Coverage::union(&[&rules[0], &rules[1]], Table::Coils);
        assert_eq!(
            coverage,
            Coverage::Ranges(vec![(0, 199), (300, 399)].into())
        );
        assert!(coverage.covers(90, 110));
        assert!(coverage.covers(0, 199));
        assert!(!coverage.covers(150, 300));
        assert!(!coverage.covers(200, 200));
        assert!(coverage.covers(399, 399));
        assert!(!coverage.covers(399, 400));
        assert_eq!(
            Coverage::union(&[&rules[0]], Table::HoldingRegisters),
            Coverage::Ranges(vec![].into())
        );
    }
}
