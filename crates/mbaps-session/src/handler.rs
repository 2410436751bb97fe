//! The application side of a server that answers at once: a [`Handler`]
//! sees each authorized request borrowed from the session's receive buffer
//! (decoded once, for authorization and for it) and writes its response
//! with [`Reply::send`], encoded once, straight into the session's output.
//! [`crate::Server::answer_requests`] calls it.

use mbaps_authz::Role;
use mbaps_codec::limits::MAX_ADU_LEN;
use mbaps_codec::{ExceptionCode, MbapHeader, Request, Response, encode_response};

/// What a handler knows about a request besides its PDU.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// The unit id the request is addressed to.
    pub unit_id: u8,
    /// The transaction id (echoed by the session).
    pub transaction_id: u16,
    /// The client's authenticated role (`None`: the NULL role).
    pub role: Option<&'a Role>,
}

/// Where a handler writes its answer: the session's output, after the
/// answers before it. The transaction id and unit id are echoed.
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    header: MbapHeader,
    function: u8,
    written: bool,
}

impl<'a> Reply<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, header: MbapHeader, function: u8) -> Reply<'a> {
        let start = out.len();
        Reply {
            out,
            start,
            header,
            function,
            written: false,
        }
    }

    /// Sets the response (a second call replaces the first). A response
    /// for another function than the request's, or one that does not
    /// encode (a limit broken by the handler), is a server device failure.
    pub fn send(&mut self, response: &Response<'_>) -> Result<(), ExceptionCode> {
        self.out.truncate(self.start);
        self.written = false;
        if response.function_code() != self.function & 0x7F {
            return Err(ExceptionCode::ServerDeviceFailure);
        }
        self.out.resize(self.start + MAX_ADU_LEN, 0);
        match encode_response(self.header, response, &mut self.out[self.start..]) {
            Ok(n) => {
                self.out.truncate(self.start + n);
                self.written = true;
                Ok(())
            }
            Err(_) => {
                self.out.truncate(self.start);
                Err(ExceptionCode::ServerDeviceFailure)
            }
        }
    }

    /// Whether a response is set (by [`Reply::send`]).
    pub fn has_response(&self) -> bool {
        self.written
    }

    /// Turns the handler's result into exactly one answer: its response,
    /// its exception, or 0x04 if it returned `Ok` without a response.
    pub(crate) fn finish(mut self, result: Result<(), ExceptionCode>) {
        let code = match result {
            Ok(()) if self.written => return,
            Ok(()) => ExceptionCode::ServerDeviceFailure,
            Err(code) => code,
        };
        let exception = Response::exception(self.function, code);
        if self.send(&exception).is_err() {
            // An exception for a function code 1..=0x7F always encodes.
            self.out.truncate(self.start);
        }
    }
}

/// Answers the requests a server session has authorized, at once, on the
/// session's thread or task (so it should not wait for long: an
/// application that answers later takes requests as events instead).
///
/// Return `Err(exception)` to answer with a Modbus exception (0x02 for an
/// address the device does not have, 0x03 for a bad value, 0x04 for a
/// failure); otherwise write the response with [`Reply::send`].
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode>;
}
