//! Replacing a running std server's configuration: the session threads
//! look for a newer one at each turn of their loop (a blocked read wakes
//! at least every [`RELOAD_CHECK`] for it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mbaps_session::ServerConfig;

/// How long a session thread may sleep in a read before it looks for a
/// reloaded configuration: a CRL that revokes an idle client closes its
/// session within this time.
pub(crate) const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Replaces a running server's configuration without a restart
/// ([`crate::StdServer::reloader`], [`crate::ServerHandle::reloader`]).
#[derive(Clone)]
pub struct Reloader(Arc<Cell>);

struct Cell {
    config: RwLock<Arc<ServerConfig>>,
    /// Bumped by each reload.
    generation: AtomicU64,
}

impl Reloader {
    pub(crate) fn new(config: ServerConfig) -> Reloader {
        Reloader(Arc::new(Cell {
            config: RwLock::new(Arc::new(config)),
            generation: AtomicU64::new(0),
        }))
    }

    /// Puts `config` in force: new handshakes use its certificate, CA and
    /// CRLs; open sessions authorize their next request against its
    /// policy, for the role their certificate carries, and a session whose
    /// client certificate it no longer accepts is closed, within
    /// a second even when idle
    /// ([`mbaps_session::Server::reconfigure`]).
    pub fn reload(&self, config: ServerConfig) {
        let mut current = self.0.config.write().unwrap_or_else(|p| p.into_inner());
        *current = Arc::new(config);
        self.0.generation.fetch_add(1, Ordering::Release);
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.0.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The configuration in force and its generation, read together (a
    /// reload bumps the generation under the same lock), so that a session
    /// started with it sees every later reload.
    pub(crate) fn snapshot(&self) -> (u64, Arc<ServerConfig>) {
        let config = self.0.config.read().unwrap_or_else(|p| p.into_inner());
        let generation = self.0.generation.load(Ordering::Acquire);
        (generation, Arc::clone(&config))
    }

    /// A configuration newer than `seen` (which is updated), if any.
    pub(crate) fn newer(&self, seen: &mut u64) -> Option<Arc<ServerConfig>> {
        if self.0.generation.load(Ordering::Acquire) == *seen {
            return None;
        }
        let (generation, config) = self.snapshot();
        *seen = generation;
        Some(config)
    }
}
