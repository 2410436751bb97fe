//! Findings kept: the replay file (what was sent on each connection since
//! the last liveness check, the TLS settings and the seed), running it
//! again, and minimizing it (delta debugging) before it is saved.
//!
//! The file is JSON:
//!
//! ```json
//! {
//!   "format": "mbaps-fuzz-replay/1",
//!   "kind": "hang",
//!   "function": "0x04",
//!   "summary": "no answer within 2s to function 0x04 ...",
//!   "seed": "42",
//!   "target": "127.0.0.1:802",
//!   "tls": {"ca": "ca.pem", "cert": "client.pem", "key": "client.key", "server_name": "localhost", "version": "1.3"},
//!   "timeout_ms": 2000,
//!   "in_flight": 4,
//!   "unit": 1,
//!   "connections": [[{"adu": "000100000006010400000001", "delivery": {"as": "record"}, "expect": "answer"}]]
//! }
//! ```
//!
//! `tls` is `null` on plain Modbus/TCP; it names the files, never holds a
//! key. Each connection is a list of steps: the ADU in hex, how it was
//! handed over (`record`, `joined` with the next, `split` at a byte,
//! `close_after` a byte), and what the device may do with it (`answer`,
//! `refusal`, `silence`, `may_close`, `answer_if_served`,
//! `refusal_if_served`: [`crate::Expect`]). The last step of each is the
//! liveness read.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exchange::{check_alive, run_batch};
use crate::input::Step;
use crate::oracle::{FindingKind, Verdict};
use crate::wire::Target;

/// The format's name and version, first in every file.
pub const REPLAY_FORMAT: &str = "mbaps-fuzz-replay/1";

/// The TLS settings of a campaign, as files (never key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// The CA the device's certificate chains to.
    pub ca: PathBuf,
    /// The client's certificate chain (its role is the fuzzer's).
    pub cert: PathBuf,
    /// The client's key: the path only.
    pub key: PathBuf,
    /// The name the device's certificate must carry.
    pub server_name: String,
    /// The TLS version pinned (`1.2`, `1.3`), if one was.
    pub version: Option<String>,
}

/// A finding, reproducible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// [`REPLAY_FORMAT`].
    pub format: String,
    /// What was found.
    pub kind: FindingKind,
    /// The function code of the input it is about (`0x10`), if one.
    pub function: Option<String>,
    /// What was seen, in words.
    pub summary: String,
    /// The campaign's seed, in decimal digits.
    pub seed: String,
    /// The device it was found on.
    pub target: String,
    /// The TLS settings (`None`: plain Modbus/TCP).
    pub tls: Option<TlsFiles>,
    /// How long an answer was waited for, in milliseconds.
    pub timeout_ms: u64,
    /// Requests in flight at once.
    #[serde(default = "one")]
    pub in_flight: usize,
    /// The unit id of the liveness read.
    pub unit: u8,
    /// What was sent on each connection, in order.
    pub connections: Vec<Vec<Step>>,
}

impl Replay {
    /// The wait for an answer.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How many ADUs it sends, the liveness reads included.
    pub fn requests(&self) -> usize {
        self.connections.iter().map(Vec::len).sum()
    }
}

/// Why a replay file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// It is not JSON of the format.
    #[error("not a replay file of {REPLAY_FORMAT}: {0}")]
    Format(String),
    /// The device did not answer before the replay ran.
    #[error("the device does not answer: {0}")]
    Unreachable(String),
}

fn one() -> usize {
    1
}

/// Reads a replay file's text.
pub fn parse(text: &str) -> Result<Replay, ReplayError> {
    let replay: Replay =
        serde_json::from_str(text).map_err(|e| ReplayError::Format(e.to_string()))?;
    if replay.format != REPLAY_FORMAT {
        return Err(ReplayError::Format(format!(
            "format is {:?}",
            replay.format
        )));
    }
    if replay.connections.iter().all(Vec::is_empty) {
        return Err(ReplayError::Format("no step to send".into()));
    }
    Ok(replay)
}

/// Sends `connections` to `target`, each on a connection of its own, and
/// returns what the oracle found.
pub(crate) fn run(
    target: &Target,
    connections: &[Vec<Step>],
    unit: u8,
    timeout: Duration,
    window: usize,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for steps in connections {
        let outcome = run_batch(target, &mut None, steps, unit, timeout, window);
        let crashed = outcome
            .verdicts
            .iter()
            .any(|v| v.kind == FindingKind::Crash);
        verdicts.extend(outcome.verdicts);
        if crashed {
            break;
        }
    }
    verdicts
}

/// What a replay did.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Whether the finding's class came again.
    pub reproduced: bool,
    /// Everything the oracle found.
    pub verdicts: Vec<Verdict>,
}

/// Runs `replay` against `target` once the device answers.
pub fn replay(target: &Target, replay: &Replay) -> Result<Replayed, ReplayError> {
    check_alive(target, replay.unit, replay.timeout()).map_err(ReplayError::Unreachable)?;
    let window = replay.in_flight.clamp(1, 256);
    let verdicts = run(
        target,
        &replay.connections,
        replay.unit,
        replay.timeout(),
        window,
    );
    Ok(Replayed {
        reproduced: verdicts.iter().any(|v| v.kind == replay.kind),
        verdicts,
    })
}

/// The shortest sequence of steps that still reproduces (delta debugging
/// over each connection's steps, its liveness read kept last), within
/// `attempts` runs of `reproduces`.
pub fn minimize(
    mut connections: Vec<Vec<Step>>,
    mut reproduces: impl FnMut(&[Vec<Step>]) -> bool,
    attempts: usize,
) -> Vec<Vec<Step>> {
    let mut left = attempts;
    let mut attempt = |candidate: &[Vec<Step>], left: &mut usize| {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        reproduces(candidate)
    };
    // One connection may be enough.
    if connections.len() > 1 {
        for index in (0..connections.len()).rev() {
            let alone = vec![connections[index].clone()];
            if attempt(&alone, &mut left) {
                connections = alone;
                break;
            }
        }
    }
    for index in 0..connections.len() {
        let Some((liveness, steps)) = connections[index].split_last() else {
            continue;
        };
        let (liveness, mut steps) = (liveness.clone(), steps.to_vec());
        let mut chunks = 2;
        while steps.len() > 1 && left > 0 {
            let size = steps.len().div_ceil(chunks);
            let mut reduced = false;
            for start in (0..steps.len()).step_by(size) {
                let mut candidate = connections.clone();
                let mut without: Vec<Step> = steps[..start].to_vec();
                without.extend_from_slice(&steps[(start + size).min(steps.len())..]);
                without.push(liveness.clone());
                candidate[index] = without.clone();
                if attempt(&candidate, &mut left) {
                    without.pop();
                    steps = without;
                    connections = candidate;
                    chunks = (chunks - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if chunks >= steps.len() {
                    break;
                }
                chunks = (chunks * 2).min(steps.len());
            }
        }
    }
    connections
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Delivery;

    fn step(txn: u8) -> Step {
        Step::new(vec![0, txn, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1], Delivery::Record)
    }

    #[test]
    fn delta_debugging_keeps_the_steps_that_matter_and_the_liveness_read() {
        let steps: Vec<Step> = (1..=20).map(step).collect();
        let culprits = [step(7), step(13)];
        let found = minimize(
            vec![steps],
            |candidate| culprits.iter().all(|c| candidate[0].contains(c)),
            200,
        );
        assert_eq!(found, vec![vec![step(7), step(13), step(20)]]);
    }

    #[test]
    fn a_file_round_trips_and_a_foreign_one_is_refused() {
        let replay = Replay {
            format: REPLAY_FORMAT.into(),
            kind: FindingKind::Hang,
            function: Some("0x03".into()),
            summary: "no answer".into(),
            seed: "18446744073709551615".into(),
            target: "127.0.0.1:802".into(),
            tls: None,
            timeout_ms: 2000,
            in_flight: 4,
            unit: 1,
            connections: vec![vec![step(1), step(2)]],
        };
        let text = serde_json::to_string_pretty(&replay).unwrap();
        assert!(text.contains("\"as\": \"record\""), "{text}");
        assert_eq!(parse(&text).unwrap(), replay);
        assert!(matches!(parse("{}"), Err(ReplayError::Format(_))));
        let other = text.replace(REPLAY_FORMAT, "other/9");
        assert!(matches!(parse(&other), Err(ReplayError::Format(_))));
    }
}
