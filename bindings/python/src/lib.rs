//! # mbaps for Python
//!
//! The CPython extension `mbaps._native`: the async client (the sans-IO
//! session driven by the asyncio loop itself), the blocking client and the
//! server with a handler in Python (on the tokio adapter: its runtime
//! inside the extension, the GIL released while waiting on the network),
//! the policy engine, and a certificate's role. The Python package `mbaps` re-exports them with its
//! exceptions (`python/mbaps/_errors.py`).
#![deny(unsafe_code)]

mod client;
mod errors;
mod policy;
mod server;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::Client>()?;
    module.add_class::<client::SyncClient>()?;
    module.add_class::<policy::Policy>()?;
    module.add_class::<policy::Explanation>()?;
    module.add_class::<server::Server>()?;
    module.add_class::<server::RegisterMap>()?;
    module.add_class::<server::Request>()?;
    module.add_function(wrap_pyfunction!(policy::role_of, module)?)?;
    Ok(())
}
