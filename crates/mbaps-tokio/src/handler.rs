//! How the tokio server answers requests: at once, with a synchronous
//! [`Handler`] on the session's task (the fast path: the request borrowed
//! from the receive buffer, the response encoded into the output); later,
//! with an [`AsyncHandler`] whose futures run as tasks of their own, so
//! that a handler that waits (a database, another device) never holds a
//! runtime worker and the requests of one session are answered
//! concurrently, up to the session's window; or forwarded by a
//! [`crate::Gateway`] straight to its device's queue, without a task.
//!
//! Answers given later come back to their session on one channel per
//! session ([`Reply`]); every request handed out gets exactly one, even
//! from a handler that panics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mbaps_codec::ExceptionCode;
use mbaps_session::{Handler, Pdu, RequestId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use mbaps_admission::IncomingRequest;

/// Answers authorized requests later: each call's future runs as a task of
/// its own, and its answer is sent when it ends.
///
/// Return the response encoded with [`Pdu::encode_response`] (it must be
/// for the request's function), or an exception code (0x02 for an address
/// the device does not have, 0x04 for a failure, 0x0B for a device behind a
/// gateway that did not answer). A future that panics, or a response for
/// another function, is answered 0x04: every request gets exactly one
/// answer. A future still running when its session ends runs on; what it
/// answers then is not sent, but recorded (the request abandoned, with the
/// late answer) if an audit trail is kept.
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

/// What [`crate::TokioServer`] answers with: a [`Handler`] (at once),
/// [`Later`] around an [`AsyncHandler`], or a [`crate::Gateway`]. Sealed:
/// those three are the ways.
pub trait IntoAnswering: sealed::Sealed {}

impl<H: Handler> IntoAnswering for H {}

impl<H: AsyncHandler> IntoAnswering for Later<H> {}

impl IntoAnswering for crate::Gateway {}

/// A request's answer and the request it answers, on its way back to its
/// session.
pub(crate) type Answer = (RequestId, Result<Pdu, ExceptionCode>);

/// Where a session's answers come back.
pub(crate) type AnswerSender = mpsc::UnboundedSender<Answer>;

/// The answers given later to one session's requests: the channel they
/// come back on, and the tasks of an [`AsyncHandler`]'s futures, aborted
/// when the session's task ends (after its late answers are in, or
/// waited for long enough). Nothing is allocated before the first.
#[derive(Default)]
pub(crate) struct Answers {
    channel: Option<(AnswerSender, mpsc::UnboundedReceiver<Answer>)>,
    tasks: Option<JoinSet<()>>,
}

impl Answers {
    /// Where an answer for this session is sent.
    fn sender(&mut self) -> &AnswerSender {
        &self.channel.get_or_insert_with(mpsc::unbounded_channel).0
    }

    /// Runs `answer` as a task of this session; its result goes back with
    /// `reply`.
    fn spawn(&mut self, answer: sealed::BoxedAnswer, reply: Reply) {
        let tasks = self.tasks.get_or_insert_with(JoinSet::new);
        // Tasks that ended are let go of as new ones come.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { reply.send(answer.await) });
    }

    /// The next answer; pending while none can come.
    pub(crate) async fn next(&mut self) -> Option<Answer> {
        match &mut self.channel {
            Some((_, receiver)) => receiver.recv().await,
            None => std::future::pending().await,
        }
    }

    /// An answer that came already, if any.
    pub(crate) fn ready(&mut self) -> Option<Answer> {
        self.channel.as_mut()?.1.try_recv().ok()
    }
}

/// The answer owed to one request handed out: sent once, to its session;
/// dropped unsent (a handler that panicked, a device task that ended), it
/// sends its fallback exception instead. A session that has ended and
/// stopped waiting receives nothing, and nothing is kept.
pub(crate) struct Reply {
    to: Option<AnswerSender>,
    id: RequestId,
    fallback: ExceptionCode,
}

impl Reply {
    pub(crate) fn new(to: &AnswerSender, id: RequestId, fallback: ExceptionCode) -> Reply {
        Reply {
            to: Some(to.clone()),
            id,
            fallback,
        }
    }

    /// Sends `answer`.
    pub(crate) fn send(mut self, answer: Result<Pdu, ExceptionCode>) {
        if let Some(to) = self.to.take() {
            let _ = to.send((self.id, answer));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            let _ = to.send((self.id, Err(self.fallback)));
        }
    }
}

/// The ways of answering, unnameable outside the crate.
#[allow(unreachable_pub)]
pub(crate) mod sealed {
    use super::*;

    /// A boxed answer of an [`AsyncHandler`].
    pub type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Pdu, ExceptionCode>> + Send>>;

    /// An [`AsyncHandler`] behind a pointer.
    pub trait LaterHandler: Send + Sync {
        fn answer(&self, request: IncomingRequest) -> BoxedAnswer;
    }

    impl<H: AsyncHandler> LaterHandler for H {
        fn answer(&self, request: IncomingRequest) -> BoxedAnswer {
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
        /// Forwarded to a device's queue, answered by its task.
        Forward(crate::Gateway),
    }

    impl Answering {
        /// How the served connection answers.
        pub(crate) fn served(&self) -> mbaps_admission::Answering {
            match self {
                Answering::Now(handler) => mbaps_admission::Answering::Now(Arc::clone(handler)),
                Answering::Later(_) | Answering::Forward(_) => mbaps_admission::Answering::Later,
            }
        }

        /// Starts answering request `id`: its answer comes back in
        /// `answers`.
        pub(crate) fn start(&self, id: RequestId, request: IncomingRequest, answers: &mut Answers) {
            match self {
                Answering::Later(handler) => {
                    let answer = handler.answer(request);
                    let reply =
                        Reply::new(answers.sender(), id, ExceptionCode::ServerDeviceFailure);
                    answers.spawn(answer, reply);
                }
                Answering::Forward(gateway) => gateway.forward(id, request, answers.sender()),
                // Answered at once: nothing is handed out, and one that
                // were would get 0x04 (the reply dropped unsent).
                Answering::Now(_) => {
                    Reply::new(answers.sender(), id, ExceptionCode::ServerDeviceFailure);
                }
            }
        }
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

    impl Sealed for crate::Gateway {
        fn into_answering(self) -> Answering {
            Answering::Forward(self)
        }
    }
}
