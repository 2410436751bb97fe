//! Plain Modbus/TCP configurations: built only when asked for.

use std::time::Duration;

use super::{ClientConfig, ConfigError, ServerConfig, Timers, check_outstanding, check_timeout};

/// Builds a plain Modbus/TCP configuration ([`ServerConfig::plain`],
/// [`ClientConfig::plain`]).
pub struct PlainConfigBuilder<C> {
    pub(super) config: C,
}

impl PlainConfigBuilder<ServerConfig> {
    /// Requests outstanding per session (1..=256, default 16).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.config.max_outstanding = max;
        self
    }

    /// The idle timeout, and the handshake timeout: the time a plain
    /// connection has to send its first request that decodes.
    pub fn timers(mut self, timers: Timers) -> Self {
        self.config.timers = timers;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        check_outstanding(self.config.max_outstanding)?;
        self.config.timers.validate()?;
        Ok(self.config)
    }
}

impl PlainConfigBuilder<ClientConfig> {
    /// Requests in flight at once (1..=256, default 16).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.config.max_outstanding = max;
        self
    }

    /// The idle timeout.
    pub fn timers(mut self, timers: Timers) -> Self {
        self.config.timers = timers;
        self
    }

    /// How long a request may wait for its response (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        check_outstanding(self.config.max_outstanding)?;
        self.config.timers.validate()?;
        check_request_timeout(self.config.request_timeout)?;
        Ok(self.config)
    }
}

pub(crate) fn check_request_timeout(timeout: Duration) -> Result<(), ConfigError> {
    check_timeout("request_timeout", timeout)
}
