//! `mbaps server`: a simulator on a register map.

use anyhow::Result;
use clap::Args;
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{Handler, Reply, RequestContext};
use mbaps_simulator::{RegisterMap, Tables};

use crate::front::FrontArgs;

/// Run a Modbus/TCP Security server simulator on a register map.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    front: FrontArgs,
    /// Answer only these unit ids (repeatable); others get exception 0x0B.
    #[arg(long)]
    unit: Vec<u8>,
}

/// Lets the register map answer, and logs each request at debug level
/// (`mbaps server -v`): at thousands of requests a second a line each
/// would bury the denials and cost more than the answers.
struct LoggingHandler(RegisterMap);

impl Handler for LoggingHandler {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        let result = self.0.handle(context, request, reply);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let role = mbaps_authz::LoggedRole(context.role);
            let outcome = match result {
                Ok(()) => "ok".to_owned(),
                Err(code) => format!("exception {code}"),
            };
            tracing::debug!(
                "request role={role} unit={} txn={} {} -> {outcome}",
                context.unit_id,
                context.transaction_id,
                request.function()
            );
        }
        result
    }
}

pub(crate) fn server(args: &ServerArgs) -> Result<bool> {
    let mut map = RegisterMap::new(Tables::preset());
    if !args.unit.is_empty() {
        map = map.only_units(&args.unit);
    }
    let front = args.front.resolve()?;
    if !front.routes.is_empty() {
        anyhow::bail!("the configuration file has [[route]] entries: routes are for mbaps gateway");
    }
    front.run("", |_| Ok(LoggingHandler(map)))
}
