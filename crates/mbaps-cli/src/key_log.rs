//! `SSLKEYLOGFILE`, honoured as curl and browsers honour it: when the
//! variable names a file, the TLS secrets of every session this run opens
//! are appended to it in the NSS key log format, so that Wireshark can
//! decrypt a capture (`mbtls`, port 802). Off unless set; a warning on
//! standard error when on, since whoever reads the file can read the
//! traffic.

use std::sync::{Arc, Once};

use mbaps_session::rustls::{KeyLog, KeyLogFile};

/// The key log `SSLKEYLOGFILE` asks for, if any.
pub(crate) fn from_env() -> Option<Arc<dyn KeyLog>> {
    let path = std::env::var_os("SSLKEYLOGFILE").filter(|path| !path.is_empty())?;
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "mbaps: warning: SSLKEYLOGFILE is set: the TLS secrets of this run are appended to {} \
             (whoever can read it can decrypt the traffic)",
            std::path::Path::new(&path).display()
        );
    });
    Some(Arc::new(KeyLogFile::new()))
}

/// `SSLKEYLOGFILE` on a configuration builder.
pub(crate) trait KeyLogFromEnv: Sized {
    /// The builder with the key log `SSLKEYLOGFILE` asks for, if any.
    fn key_log_from_env(self) -> Self;
}

impl KeyLogFromEnv for mbaps_session::ServerConfigBuilder {
    fn key_log_from_env(self) -> Self {
        match from_env() {
            Some(key_log) => self.key_log(key_log),
            None => self,
        }
    }
}

impl KeyLogFromEnv for mbaps_session::ClientConfigBuilder {
    fn key_log_from_env(self) -> Self {
        match from_env() {
            Some(key_log) => self.key_log(key_log),
            None => self,
        }
    }
}
