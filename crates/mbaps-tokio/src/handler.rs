//! How the tokio server answers requests: at once, with a synchronous
//! [`Handler`] on the session's task (the fast path: the request borrowed
//! from the receive buffer, the response encoded into the output), or
//! later, with an [`AsyncHandler`] whose futures run as tasks of their
//! own, so that a handler that waits (a database, another device) never
//! holds a runtime worker, and the requests of one session are answered
//! concurrently, up to the session's window.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mbaps_authz::Role;
use mbaps_codec::{CodecError, ExceptionCode, Request};
use mbaps_session::{Handler, Pdu};

/// A request handed to an [`AsyncHandler`]: authorized already, and owned,
/// so that it can be answered later.
#[derive(Clone, Debug)]
pub struct IncomingRequest {
    /// The unit id the request is addressed to.
    pub unit_id: u8,
    /// The transaction id (echoed by the session).
    pub transaction_id: u16,
    /// The client's authenticated role (`None`: the NULL role).
    pub role: Option<Role>,
    /// The session the request came on: a number unique among the
    /// sessions of one server (a gateway takes turns between sessions by
    /// it).
    pub session: u64,
    /// The request PDU, as received (and decoded once by the session).
    pub pdu: Pdu,
}

impl IncomingRequest {
    /// The request, decoded from its PDU (which the session decoded
    /// already, so this cannot fail in practice).
    pub fn request(&self) -> Result<Request<'_>, CodecError> {
        self.pdu.request()
    }
}

/// Answers authorized requests later: each call's future runs as a task of
/// its own, and its answer is sent when it ends.
///
/// Return the response encoded with [`Pdu::encode_response`] (it must be
/// for the request's function), or an exception code (0x02 for an address
/// the device does not have, 0x04 for a failure, 0x0B for a device behind a
/// gateway that did not answer). A future that panics, or a response for
/// another function, is answered 0x04: every request gets exactly one
/// answer.
pub trait AsyncHandler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static;
}

/// An [`AsyncHandler`] for [`crate::TokioServer::bind`]: requests are
/// answered later, by the handler's futures on tasks of their own.
///
/// ```no_run
/// # async fn run(config: mbaps_session::ServerConfig, device: impl mbaps_tokio::AsyncHandler)
/// # -> std::io::Result<()> {
/// let server = mbaps_tokio::TokioServer::bind("0.0.0.0:802", config, mbaps_tokio::Later(device))
///     .await?
///     .spawn()?;
/// # Ok(()) }
/// ```
pub struct Later<H>(pub H);

/// What [`crate::TokioServer`] answers with: a [`Handler`] (at once) or
/// [`Later`] around an [`AsyncHandler`]. Sealed: those two are the ways.
pub trait IntoAnswering: sealed::Sealed {}

impl<H: Handler> IntoAnswering for H {}

impl<H: AsyncHandler> IntoAnswering for Later<H> {}

/// The ways of answering, unnameable outside the crate.
#[allow(unreachable_pub)]
pub(crate) mod sealed {
    use super::*;

    /// A boxed answer of an [`AsyncHandler`].
    pub type Answer = Pin<Box<dyn Future<Output = Result<Pdu, ExceptionCode>> + Send>>;

    /// An [`AsyncHandler`] behind a pointer.
    pub trait LaterHandler: Send + Sync {
        fn answer(&self, request: IncomingRequest) -> Answer;
    }

    impl<H: AsyncHandler> LaterHandler for H {
        fn answer(&self, request: IncomingRequest) -> Answer {
            Box::pin(AsyncHandler::handle(self, request))
        }
    }

    /// The server's way of answering.
    #[derive(Clone)]
    pub enum Answering {
        /// At once, on the session's task.
        Now(Arc<dyn Handler>),
        /// Later, on tasks of their own.
        Later(Arc<dyn LaterHandler>),
    }

    /// The conversion behind [`IntoAnswering`], out of users' reach.
    pub trait Sealed {
        fn into_answering(self) -> Answering;
    }

    impl<H: Handler> Sealed for H {
        fn into_answering(self) -> Answering {
            Answering::Now(Arc::new(self))
        }
    }

    impl<H: AsyncHandler> Sealed for Later<H> {
        fn into_answering(self) -> Answering {
            Answering::Later(Arc::new(self.0))
        }
    }
}
