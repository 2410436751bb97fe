//! `mbaps policy check` and `mbaps policy explain`: a policy file checked
//! before it is deployed, and one request decided the way a server would,
//! with the rules that allow it or the permission that is missing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mbaps_authz::{Decision, NULL_ROLE_NAME, Policy, Role, Target};
use mbaps_codec::Request;

/// Check a policy file, or explain a decision.
#[derive(Args, Debug)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check a policy file: exit 0, or every mistake with its line and
    /// column and exit 1.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Decide one request as a server with this policy would, and say
    /// why: the rules that allow it, or the permission that is missing.
    /// Exit 0 when allowed, 1 when denied.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
struct ExplainArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The role in the client's certificate (default: none, the policy's
    /// `[no_role]` rules, R-23).
    #[arg(long)]
    role: Option<String>,
    /// The unit id the request is addressed to.
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// The request PDU in hex: the function code, then its data (spaces,
    /// colons and 0x prefixes are ignored), e.g. `06 0064 0007` for a write
    /// of 7 to holding register 100.
    #[arg(required = true, value_name = "HEX")]
    pdu: Vec<String>,
}

pub(crate) fn run(args: &PolicyArgs) -> Result<bool> {
    match &args.command {
        PolicyCommand::Check { file } => check(file),
        PolicyCommand::Explain(args) => explain(args),
    }
}

fn check(file: &Path) -> Result<bool> {
    match Policy::load(file) {
        Ok(policy) => {
            let mut roles: Vec<&str> = policy.roles().map(Role::as_str).collect();
            roles.sort_unstable();
            println!(
                "{}: ok, {} role(s): {}",
                file.display(),
                roles.len(),
                roles.join(", ")
            );
            Ok(true)
        }
        Err(error) => {
            eprintln!("{error}");
            Ok(false)
        }
    }
}

fn explain(args: &ExplainArgs) -> Result<bool> {
    let policy = Policy::load(&args.policy)?;
    let role = args
        .role
        .as_deref()
        .map(Role::new)
        .transpose()
        .context("--role")?;
    let bytes = crate::decode::parse_hex(&args.pdu.join(" ")).context("the request PDU")?;
    let request = Request::decode(&bytes).context("the request PDU does not decode")?;
    let subject = role.as_ref().map_or(NULL_ROLE_NAME.to_owned(), |role| {
        format!("roles.{}", role.as_str())
    });
    let explanation = policy
        .permissions(role.as_ref())
        .explain(args.unit, &request);
    let target = Target {
        unit: args.unit,
        request: &request,
    };
    match explanation.decision {
        Decision::Allow => {
            let rules: Vec<String> = explanation
                .rules
                .iter()
                .map(|index| format!("{subject}.allow[{index}]"))
                .collect();
            println!("allowed: {target}, by {}", rules.join(" and "));
            Ok(true)
        }
        Decision::Deny(denial) => {
            println!("denied (exception 0x01): {target}: {denial}");
            Ok(false)
        }
    }
}
