//! No resumption of a session a fatal alert ended (R-11; RFC 5246 7.2.2).
//!
//! rustls keeps a server's TLS 1.2 session ids and (without a ticketer) its
//! TLS 1.3 tickets in a session store, and a client's in a client store;
//! neither forgets a session when its connection dies of a fatal alert.
//! The server's store here notes which keys each connection stored or
//! looked up (rustls calls the store synchronously from
//! `process_new_packets`, so a thread-local scope around that call ties
//! the keys to the connection), and a session that fails with a TLS error
//! takes them out again. The client forgets every session it holds for the
//! server's name.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::pki_types::ServerName;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

/// Keys a connection can touch: a TLS 1.2 session id, a few TLS 1.3
/// tickets. More are not remembered (and so not forgotten).
const MAX_KEYS_PER_CONNECTION: usize = 8;

thread_local! {
    static TOUCHED: RefCell<Option<Vec<Vec<u8>>>> = const { RefCell::new(None) };
}

/// Runs `f` (a `process_new_packets` call), appending to `keys` the session
/// keys the store was asked to put or get meanwhile.
pub(crate) fn noting_keys<R>(keys: &mut Vec<Vec<u8>>, f: impl FnOnce() -> R) -> R {
    TOUCHED.with(|touched| *touched.borrow_mut() = Some(Vec::new()));
    let result = f();
    let noted = TOUCHED.with(|touched| touched.borrow_mut().take().unwrap_or_default());
    for key in noted {
        if keys.len() < MAX_KEYS_PER_CONNECTION && !keys.contains(&key) {
            keys.push(key);
        }
    }
    result
}

fn note(key: &[u8]) {
    TOUCHED.with(|touched| {
        if let Some(keys) = touched.borrow_mut().as_mut() {
            keys.push(key.to_vec());
        }
    });
}

/// The server's session store: rustls's memory cache, noting keys.
#[derive(Debug)]
pub(crate) struct ServerSessions {
    cache: Arc<ServerSessionMemoryCache>,
}

impl ServerSessions {
    pub(crate) fn new(size: usize) -> Arc<ServerSessions> {
        Arc::new(ServerSessions {
            cache: ServerSessionMemoryCache::new(size),
        })
    }

    /// Takes the sessions of a failed connection out of the store.
    pub(crate) fn forget(&self, keys: &[Vec<u8>]) {
        for key in keys {
            let _ = self.cache.take(key);
        }
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        note(&key);
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        note(key);
        self.cache.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        note(key);
        self.cache.take(key)
    }

    fn can_cache(&self) -> bool {
        self.cache.can_cache()
    }
}

/// What a session forgets when a fatal alert ends it.
pub(crate) enum Forget {
    Server {
        sessions: Arc<ServerSessions>,
        keys: Vec<Vec<u8>>,
    },
    Client {
        sessions: Arc<ClientSessionMemoryCache>,
        server: ServerName<'static>,
    },
}

impl Forget {
    pub(crate) fn forget(&mut self) {
        match self {
            Forget::Server { sessions, keys } => sessions.forget(keys),
            Forget::Client { sessions, server } => {
                sessions.remove_tls12_session(server);
                // Tickets are single-use: taking them all drops them.
                while sessions.take_tls13_ticket(server).is_some() {}
            }
        }
    }
}
