//! `mbaps.SyncClient`: a `TokioClient` on the extension's runtime, each
//! call blocking the calling thread (the GIL released) until it is over.

use std::path::PathBuf;
use std::sync::Arc;

use mbaps_codec::ReadDeviceIdCode;
use mbaps_session::ClientError;
use mbaps_tokio::TokioClient;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{
    Answer, Call, Failure, Settings, Step, checked, how_many, quantity, to_python, unit, word,
    words,
};
use crate::errors::raise;

/// Connects (the TCP connection and the handshake within the timeout).
async fn connect(settings: Settings) -> Result<TokioClient, ClientError> {
    let connecting = TokioClient::connect(
        settings.address.as_str(),
        settings.config,
        settings.server_name,
    );
    match tokio::time::timeout(settings.timeout, connecting).await {
        Ok(Ok(client)) => Ok(client.with_timeout(settings.timeout)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// Runs `call` to `unit` on `client`, request after request while it
/// goes on.
async fn perform(client: &TokioClient, unit: u8, mut call: Call) -> Result<Answer, Failure> {
    loop {
        let pdu = client.request(unit, &call.request()?).await?;
        match call.answer(pdu)? {
            Step::Done(answer) => return Ok(answer),
            Step::Again(next) => call = next,
        }
    }
}

/// The blocking client, for scripts and notebooks: the same calls as
/// [`super::Client`], each returning its answer; the GIL is released
/// while it waits. Usable as `with`.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct SyncClient {
    client: TokioClient,
    server_name: Arc<str>,
}

impl SyncClient {
    fn run<'py>(&self, py: Python<'py>, unit: u8, call: Call) -> PyResult<Bound<'py, PyAny>> {
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        match py.detach(|| runtime.block_on(perform(&self.client, unit, call))) {
            Ok(answer) => answer.into_pyobject(py),
            Err(failure) => Err(to_python(py, failure, &self.server_name)),
        }
    }
}

client_methods!(SyncClient, {
    /// Connects to `address`; the arguments are [`super::Client`]'s
    /// `connect`'s.
    #[staticmethod]
    #[pyo3(signature = (address, *, ca = None, cert = None, key = None, server_name = None, tls = None, timeout = 3.0, plain = false))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        server_name: Option<String>,
        tls: Option<String>,
        timeout: f64,
        plain: bool,
    ) -> PyResult<SyncClient> {
        let settings = Settings::new(
            address,
            ca,
            cert,
            key,
            server_name,
            tls.as_deref(),
            timeout,
            plain,
        )?;
        let server_name = Arc::clone(&settings.name);
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        match py.detach(|| runtime.block_on(connect(settings))) {
            Ok(client) => Ok(SyncClient {
                client,
                server_name,
            }),
            Err(error) => Err(raise(py, error, &server_name)),
        }
    }

    /// Ends the session with close_notify.
    fn close(&self, py: Python<'_>) {
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        py.detach(|| runtime.block_on(self.client.close()));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _kind: Py<PyAny>, _value: Py<PyAny>, _traceback: Py<PyAny>) {
        self.close(py);
    }
});
