//! SIGHUP: what a reload of the configuration puts in force, what waits
//! for a restart, and what it refuses.
//!
//! A reload is all or nothing. The files the TLS configuration and the
//! policy are made of (`policy`, `cert`, `key`, `ca`, `crl`, a
//! strengthened `crl_scope`) and the timers of new sessions
//! (`handshake_timeout`, `idle_timeout`) are applied. Every other key
//! (the listen address, the admission bounds, the write timeout, the
//! audit trail, metrics, logging, the gateway's routes) is bound when the
//! process starts: a change to it is logged by name as needing a restart,
//! and the running value stays. A change that would weaken the front
//! (TLS to plain or back, another `plain_role`, `crl_scope` from `chain`
//! to `end-entity`) refuses the whole reload.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use super::{CrlScopeArg, Front};

/// Each file the running configuration was made of, with a digest of
/// what it held (a file that cannot be read: `None`): a reload that names
/// the same paths may still bring new contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Contents(Vec<(&'static str, Option<u64>)>);

impl Contents {
    /// The files of `front`, read now.
    pub(super) fn of(front: &Front) -> Contents {
        let optional = |path: &Option<PathBuf>| path.as_ref().and_then(digest);
        let mut crls = std::collections::hash_map::DefaultHasher::new();
        front.crl.iter().map(digest).for_each(|d| d.hash(&mut crls));
        Contents(vec![
            ("policy", digest(&front.policy)),
            ("cert", optional(&front.cert)),
            ("key", optional(&front.key)),
            ("ca", optional(&front.ca)),
            ("crl", Some(crls.finish())),
        ])
    }

    fn changed(&self, key: &str, other: &Contents) -> bool {
        let find = |contents: &Contents| {
            contents
                .0
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, digest)| *digest)
        };
        find(self) != find(other)
    }
}

fn digest(path: &PathBuf) -> Option<u64> {
    std::fs::read(path).ok().map(|bytes| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        hasher.finish()
    })
}

/// What a reload would change, key by key.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// Keys put in force (for new sessions, and open ones at their next
    /// request).
    pub(super) applied: Vec<&'static str>,
    /// Keys whose change takes effect only on a restart: not applied.
    pub(super) needs_restart: Vec<&'static str>,
    /// Changes that would weaken the front, each with why: while there is
    /// one, nothing of the reload applies.
    pub(super) refused: Vec<String>,
}

impl Changes {
    /// From the running front and what its files held, to the front just
    /// read and what its files hold now.
    pub(super) fn between(
        running: &Front,
        running_files: &Contents,
        new: &Front,
        new_files: &Contents,
    ) -> Changes {
        let mut changes = Changes::default();
        if running.plain != new.plain {
            changes.refused.push(format!(
                "plain: a reload cannot switch the front from {} to {}; restart to change it",
                kind(running.plain),
                kind(new.plain)
            ));
        }
        if running.plain_role != new.plain_role {
            changes.refused.push(format!(
                "plain_role: a reload cannot change the role plain clients are authorized as (from {} to {}); restart to change it",
                role(&running.plain_role),
                role(&new.plain_role)
            ));
        }
        match (running.crl_scope, new.crl_scope) {
            (CrlScopeArg::Chain, CrlScopeArg::EndEntity) => changes.refused.push(
                "crl_scope: a reload cannot narrow revocation checking from chain to end-entity; restart to change it"
                    .to_owned(),
            ),
            (CrlScopeArg::EndEntity, CrlScopeArg::Chain) => changes.applied.push("crl_scope"),
            _ => {}
        }
        let files_applied = [
            ("policy", running.policy != new.policy),
            ("cert", running.cert != new.cert),
            ("key", running.key != new.key),
            ("ca", running.ca != new.ca),
            ("crl", running.crl != new.crl),
        ];
        for (key, path_changed) in files_applied {
            if path_changed || running_files.changed(key, new_files) {
                changes.applied.push(key);
            }
        }
        let timers_applied = [
            (
                "handshake_timeout",
                running.handshake_timeout != new.handshake_timeout,
            ),
            ("idle_timeout", running.idle_timeout != new.idle_timeout),
        ];
        changes.applied.extend(
            timers_applied
                .into_iter()
                .filter(|(_, changed)| *changed)
                .map(|(key, _)| key),
        );
        let bound_at_start = [
            ("listen", running.listen != new.listen),
            ("max_sessions", running.max_sessions != new.max_sessions),
            (
                "max_handshakes",
                running.max_handshakes != new.max_handshakes,
            ),
            (
                "max_handshakes_per_address",
                running.max_handshakes_per_address != new.max_handshakes_per_address,
            ),
            ("write_timeout", running.write_timeout != new.write_timeout),
            ("audit_log", running.audit_log != new.audit_log),
            (
                "audit_max_bytes",
                running.audit_max_bytes != new.audit_max_bytes,
            ),
            ("audit_keep", running.audit_keep != new.audit_keep),
            ("tap", running.tap != new.tap),
            ("metrics", running.metrics != new.metrics),
            (
                "log",
                (running.quiet, running.verbose) != (new.quiet, new.verbose),
            ),
            ("log_format", running.log_format != new.log_format),
            ("route", running.routes != new.routes),
        ];
        changes.needs_restart.extend(
            bound_at_start
                .into_iter()
                .filter(|(_, changed)| *changed)
                .map(|(key, _)| key),
        );
        changes
    }
}

impl Front {
    /// This running front with what a reload applied from `new`: the
    /// keys bound at start keep their running values, so that the next
    /// reload compares against what is in force.
    pub(super) fn with_applied(&self, new: &Front) -> Front {
        Front {
            policy: new.policy.clone(),
            cert: new.cert.clone(),
            key: new.key.clone(),
            ca: new.ca.clone(),
            crl: new.crl.clone(),
            crl_scope: new.crl_scope,
            handshake_timeout: new.handshake_timeout,
            idle_timeout: new.idle_timeout,
            ..self.clone()
        }
    }
}

fn kind(plain: bool) -> &'static str {
    if plain { "plain Modbus/TCP" } else { "TLS" }
}

fn role(role: &Option<String>) -> String {
    match role {
        Some(role) => format!("{role:?}"),
        None => "the NULL role".to_owned(),
    }
}
