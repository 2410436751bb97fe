//! A campaign: batches of inputs, each ending with the liveness read, until
//! the time or the number of requests is up; every finding minimized,
//! saved as a replay file and counted once per class and function; a
//! device that crashed waited for (bounded) before going on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exchange::{check_alive, liveness, run_batch};
use crate::grammar::{Generator, Scope};
use crate::input::Step;
use crate::oracle::{FindingKind, Verdict};
use crate::replay::{REPLAY_FORMAT, Replay, TlsFiles, minimize, run};
use crate::wire::{Link, Target};

/// A batch's inputs, in windows of `in_flight`: the liveness read comes
/// after every this many windows.
pub const BATCH_WINDOWS: usize = 4;

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The device.
    pub target: Target,
    /// Its TLS settings as files, for the replay files (`None`: plain).
    pub tls_files: Option<TlsFiles>,
    /// What may be sent.
    pub scope: Scope,
    /// The seed: the same seed and options give the same inputs.
    pub seed: u64,
    /// Stop after this long (`None`: only `requests` stops it).
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// At most this many requests a second.
    pub rate: Option<u32>,
    /// How long an answer is waited for.
    pub timeout: Duration,
    /// Requests owed an answer in flight at once, answers making room for
    /// the next; a batch holds [`BATCH_WINDOWS`] times as many, then the
    /// liveness read. Inputs the device may leave unanswered
    /// ([`crate::Expect::may_be_silent`]) are not waited for.
    pub in_flight: usize,
    /// Where replay files go (made at the first finding).
    pub out: PathBuf,
    /// Stop at the first finding.
    pub stop_on_first: bool,
    /// How long a device that crashed is waited for before the campaign
    /// gives it up.
    pub recovery: Duration,
    /// Runs a finding's minimization may take.
    pub minimize_attempts: usize,
    /// Time a finding's minimization may take.
    pub minimize_time: Duration,
}

impl Options {
    /// A campaign against `target` with the defaults of `mbaps fuzz`: 60
    /// seconds, seed 0, 2 s timeout, 4 in flight, reads only.
    pub fn new(target: Target) -> Options {
        Options {
            target,
            tls_files: None,
            scope: Scope::new(false),
            seed: 0,
            duration: Some(Duration::from_secs(60)),
            requests: None,
            rate: None,
            timeout: Duration::from_secs(2),
            in_flight: 4,
            out: PathBuf::from("mbaps-fuzz-findings"),
            stop_on_first: false,
            recovery: Duration::from_secs(30),
            minimize_attempts: 48,
            minimize_time: Duration::from_secs(30),
        }
    }

    /// The unit id of the liveness read: the first in scope.
    fn unit(&self) -> u8 {
        self.scope.units.first().copied().unwrap_or(1)
    }
}

/// A finding, saved.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The class.
    pub kind: FindingKind,
    /// The function code of the input it is about, if one.
    pub function: Option<u8>,
    /// What was seen.
    pub summary: String,
    /// Its replay file.
    pub replay: PathBuf,
    /// The requests the replay sends once minimized (liveness reads
    /// included).
    pub requests: usize,
}

/// Where a campaign stands, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Requests sent.
    pub requests: u64,
    /// Time since the start.
    pub elapsed: Duration,
    /// Findings so far.
    pub findings: usize,
    /// Times the device went down and came back.
    pub restarts: u32,
}

/// What a campaign did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Requests sent, the liveness reads included.
    pub requests: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// The seed.
    pub seed: u64,
    /// The findings, one per class and function.
    pub findings: Vec<Finding>,
    /// Times the device went down and came back.
    pub restarts: u32,
    /// Why the device was lost for good, if it was.
    pub lost: Option<String>,
    /// A digest (FNV-1a) of every byte sent, in order: two campaigns that
    /// sent the same have the same.
    pub sent_digest: u64,
}

/// Why a campaign could not start.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The device did not answer the first read.
    #[error("the device does not answer before the campaign: {0}")]
    Unreachable(String),
    /// Nothing in scope may be sent.
    #[error("no function in scope may be sent (writes need allow_writes)")]
    NothingToSend,
    /// The findings' folder cannot be written.
    #[error("writing {path}: {error}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Runs a campaign; `progress` is called about twice a second.
pub fn run_campaign(
    options: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, CampaignError> {
    let unit = options.unit();
    check_alive(&options.target, unit, options.timeout).map_err(CampaignError::Unreachable)?;
    let mut generator =
        Generator::new(options.seed, options.scope.clone()).ok_or(CampaignError::NothingToSend)?;
    let start = Instant::now();
    let mut report = Report {
        requests: 0,
        elapsed: Duration::ZERO,
        seed: options.seed,
        findings: Vec::new(),
        restarts: 0,
        lost: None,
        sent_digest: FNV_OFFSET,
    };
    let mut link: Option<Link> = None;
    let mut seen: HashSet<(FindingKind, Option<u8>)> = HashSet::new();
    let mut tried: HashSet<(FindingKind, Option<u8>)> = HashSet::new();
    let mut shapes: HashSet<(u8, u8, usize)> = HashSet::new();
    let mut last_progress = start;
    let in_flight = options.in_flight.max(1);
    'campaign: loop {
        let elapsed = start.elapsed();
        if options.duration.is_some_and(|d| elapsed >= d)
            || options.requests.is_some_and(|n| report.requests >= n)
        {
            break;
        }
        if let Some(rate) = options.rate {
            let due = Duration::from_secs_f64(report.requests as f64 / f64::from(rate.max(1)));
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let mut steps = generator.batch(BATCH_WINDOWS * in_flight);
        steps.push(liveness(generator.transaction_id(), unit));
        let outcome = run_batch(
            &options.target,
            &mut link,
            &steps,
            unit,
            options.timeout,
            in_flight,
        );
        report.requests += steps.len() as u64;
        for step in &steps {
            report.sent_digest = fnv(report.sent_digest, &step.adu);
        }
        // Inputs the device answered in a way not seen before are the
        // ones mutated further.
        for frame in &outcome.exchange.frames {
            let Some(step) = steps
                .iter()
                .find(|s| s.transaction_id() == frame.transaction_id)
            else {
                continue;
            };
            let code = frame.pdu.get(1).copied().unwrap_or(0);
            let shape = (
                frame.pdu.first().copied().unwrap_or(0),
                code,
                frame.pdu.len().min(16),
            );
            if shapes.insert(shape) && !step.pdu().is_empty() {
                generator.remember(step.pdu());
            }
        }
        let crashed = outcome
            .verdicts
            .iter()
            .any(|v| v.kind == FindingKind::Crash);
        if crashed {
            // Minimizing needs the device back.
            link = None;
            match wait_for_recovery(options, unit) {
                Ok(()) => report.restarts += 1,
                Err(why) => report.lost = Some(why),
            }
        }
        for verdict in &outcome.verdicts {
            // Counted once per class and function: as blamed in the batch
            // (seen before: nothing to minimize), then as minimization
            // shows it (a crash blamed on the first input left unanswered
            // may come from another).
            if !tried.insert((verdict.kind, function_of(verdict, &steps))) {
                continue;
            }
            // A device lost for good cannot minimize: the finding is kept
            // as it came.
            let attempts = if report.lost.is_some() {
                0
            } else {
                options.minimize_attempts
            };
            let finding = save(options, verdict, &steps, report.findings.len(), attempts)?;
            if !seen.insert((finding.kind, finding.function)) {
                let _ = std::fs::remove_file(&finding.replay);
                continue;
            }
            report.findings.push(finding);
            if options.stop_on_first {
                break 'campaign;
            }
        }
        if report.lost.is_some() {
            break;
        }
        if last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            progress(&Progress {
                requests: report.requests,
                elapsed: start.elapsed(),
                findings: report.findings.len(),
                restarts: report.restarts,
            });
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The function code of the input a verdict is about.
fn function_of(verdict: &Verdict, steps: &[Step]) -> Option<u8> {
    verdict
        .step
        .and_then(|index| steps.get(index))
        .and_then(Step::function)
}

/// Waits for a device that went down to answer again, `recovery` at most.
fn wait_for_recovery(options: &Options, unit: u8) -> Result<(), String> {
    let deadline = Instant::now() + options.recovery;
    loop {
        match check_alive(&options.target, unit, options.timeout) {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() >= deadline => {
                return Err(format!(
                    "the device did not come back within {:?}: {why}",
                    options.recovery
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Minimizes a finding and writes its replay file. A finding about one
/// input (a wrong answer) must keep its function while it is minimized; one
/// about the device (a crash, a hang, a disconnect) its class only, and its
/// function is then the one of the input the minimized run blames.
fn save(
    options: &Options,
    verdict: &Verdict,
    steps: &[Step],
    number: usize,
    attempts: usize,
) -> Result<Finding, CampaignError> {
    let unit = options.unit();
    let kind = verdict.kind;
    let blamed = function_of(verdict, steps);
    let about_the_device = matches!(
        kind,
        FindingKind::Crash | FindingKind::Hang | FindingKind::Disconnect
    );
    let deadline = Instant::now() + options.minimize_time;
    // The verdict of the last run that reproduced, with its inputs.
    let mut last: (Verdict, Vec<Step>) = (verdict.clone(), steps.to_vec());
    let connections = minimize(
        vec![steps.to_vec()],
        |candidate| {
            if Instant::now() >= deadline {
                return false;
            }
            let verdicts = run(
                &options.target,
                candidate,
                unit,
                options.timeout,
                options.in_flight.max(1),
            );
            if verdicts.iter().any(|v| v.kind == FindingKind::Crash) {
                // The next attempt needs the device back.
                let _ = wait_for_recovery(options, unit);
            }
            let inputs = candidate.last().map_or(&[][..], Vec::as_slice);
            let found = verdicts
                .into_iter()
                .find(|v| v.kind == kind && (about_the_device || function_of(v, inputs) == blamed));
            match found {
                Some(found) => {
                    last = (found, inputs.to_vec());
                    true
                }
                None => false,
            }
        },
        attempts,
    );
    let (verdict, inputs) = last;
    // Once minimized to one input and the liveness read, the finding is
    // about that input: an answer under a transaction id never sent names
    // none, and a device that stops answering after an input is blamed on
    // the read that got no answer.
    let function = match inputs.as_slice() {
        [only, _liveness] => only.function(),
        _ => function_of(&verdict, &inputs),
    };
    let replay = Replay {
        format: REPLAY_FORMAT.into(),
        kind,
        function: function.map(|f| format!("0x{f:02X}")),
        summary: verdict.summary.clone(),
        seed: options.seed.to_string(),
        target: options.target.address.to_string(),
        tls: options.tls_files.clone(),
        timeout_ms: u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX),
        in_flight: options.in_flight.max(1),
        unit,
        connections,
    };
    let name = match function {
        Some(function) => format!("{}-0x{function:02X}-{number}.json", kind.label()),
        None => format!("{}-{number}.json", kind.label()),
    };
    let path = options.out.join(name);
    write(&options.out, &path, &replay)?;
    Ok(Finding {
        kind,
        function,
        summary: verdict.summary,
        requests: replay.requests(),
        replay: path,
    })
}

/// Writes `replay` to `path`, making `folder` first.
fn write(folder: &Path, path: &Path, replay: &Replay) -> Result<(), CampaignError> {
    let output = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CampaignError::Output { path, error }
    };
    std::fs::create_dir_all(folder).map_err(output(folder))?;
    let text = serde_json::to_string_pretty(replay).map_err(std::io::Error::other);
    std::fs::write(path, text.map_err(output(path))? + "\n").map_err(output(path))
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// FNV-1a of `bytes`, continued from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    hash
}
