//! The CLI's exit codes: the whole policy is here. Every answer type says its code
//! ([`Verdict`]): the thing asked about is healthy (0) or not (1), a refusal is a usage
//! error (2) or not (1, [`refused`]), and a sync run says more:
//!
//! `sync` (a forced run of one target, or of each without one) has two more, so a script or a
//! scheduler can tell a run that did not happen from one that failed:
//! - 0 [`OK`]: every run did all there was to do;
//! - 3 [`PARTIAL`]: a run succeeded only in part: paths were deferred to the next run (changed
//!   while it ran, in use), conflicts are left unresolved (`metasystem conflicts`), or the
//!   run says `partial`;
//! - 75 [`TEMPFAIL`] (EX_TEMPFAIL, as `run` when the environment is not ready): a run did not
//!   happen (`skipped`): the target is offline, another run holds its lock, its circuit
//!   breaker is open. Trying again later may do it;
//! - 1 [`UNHEALTHY`]: a run failed or was refused (files that failed, a missing marker,
//!   `max_delete`), or the daemon refused the request.
//!
//! With several targets the worst wins: 1, then 3, then 75, then 0 (a failure needs
//! someone; a partial run left work, maybe conflicts for someone; a run that did not happen
//! is tried again by the schedule). Why each run is not 0 is printed: in the summary, or on
//! stderr under `--json`.

use metasystem_actors::sync::RunReport;

use crate::control::protocol::{self, Code};
use metasystem_actors::breakers::StateName;
use metasystem_actors::probes::actor::ProbeStatus;

/// What an answer means for the exit code, and why it is not 0 (for people: printed on
/// stderr under `--json`, where the human rendering that says it is not).
pub trait Verdict {
    /// The exit code.
    fn code(&self) -> u8 {
        OK
    }
    /// Why the code is not 0, one line each (empty when the rendering says it all).
    fn why(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The exit code of a refusal: bad usage (and refusals to talk at all) is 2, any other
/// refusal 1.
pub fn refused(code: Code) -> u8 {
    if code.is_usage() {
        USAGE
    } else {
        UNHEALTHY
    }
}

fn healthy(yes: bool) -> u8 {
    if yes {
        OK
    } else {
        UNHEALTHY
    }
}

/// The answers that are always 0: lists and acknowledgements.
macro_rules! always_ok {
    ($($t:ty),+ $(,)?) => { $(impl Verdict for $t {})+ };
}

always_ok!(
    crate::control::request::Done,
    crate::control::request::ShuttingDown,
    crate::control::request::Silences,
    protocol::EventsResult,
    protocol::StreamItem,
    protocol::MetricsResult,
    protocol::AnomaliesResult,
    protocol::AlertsResult,
    protocol::BreakerRow,
    protocol::SyncStatusResult,
    protocol::ConflictsResult,
    protocol::BackupsResult,
    protocol::HealResult,
    protocol::RetriesResult,
    protocol::LogsResult,
    protocol::ChaosRun,
    protocol::ChaosStopResult,
    metasystem_actors::sync::backups::Restored,
    metasystem_actors::sync::Resolution,
    serde_json::Value,
);

/// Unhealthy is 1, as systemctl is-system-running.
impl Verdict for protocol::Status {
    fn code(&self) -> u8 {
        healthy(self.healthy)
    }
}

impl Verdict for protocol::TreeResult {
    fn code(&self) -> u8 {
        healthy(self.healthy)
    }
}

/// A step that failed.
impl Verdict for protocol::ReloadResult {
    fn code(&self) -> u8 {
        healthy(self.changes.iter().all(|c| c.error.is_none()))
    }
}

/// The channel did not accept the test.
impl Verdict for metasystem_actors::alerts::actor::TestReport {
    fn code(&self) -> u8 {
        healthy(self.outcome == "accepted")
    }
}

/// Like `status`: something is not closed.
impl Verdict for protocol::BreakersResult {
    fn code(&self) -> u8 {
        healthy(
            self.breakers
                .iter()
                .all(|b| matches!(b.state, StateName::Closed | StateName::Disabled)),
        )
    }
}

/// A probe fails (a warning is 0).
impl Verdict for protocol::HealthResult {
    fn code(&self) -> u8 {
        healthy(self.status != ProbeStatus::Fail)
    }
}

/// A database is damaged or unreadable.
impl Verdict for metasystem_actors::sync::verify::VerifyReport {
    fn code(&self) -> u8 {
        healthy(self.failed == 0)
    }
}

/// A path was not restored.
impl Verdict for metasystem_actors::sync::backups::RestoredSet {
    fn code(&self) -> u8 {
        healthy(self.failed == 0)
    }
    fn why(&self) -> Vec<String> {
        if self.failed == 0 {
            return Vec::new();
        }
        vec![format!(
            "backups restore: {} of {} path(s) not restored",
            self.failed,
            self.paths.len()
        )]
    }
}

/// A kill that its actor did not recover from.
impl Verdict for protocol::ChaosStatusResult {
    fn code(&self) -> u8 {
        match &self.run {
            Some(run) if run.not_recovered > 0 => UNHEALTHY,
            _ => OK,
        }
    }
}

/// The worst run's (see the module's doc).
impl Verdict for protocol::SyncResult {
    fn code(&self) -> u8 {
        worst(self.reports.iter().map(|r| sync_run(r).0))
    }
    fn why(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter_map(|r| sync_run(r).1.map(|why| format!("sync {}: {why}", r.target)))
            .collect()
    }
}

/// Done; the thing asked about is healthy.
pub const OK: u8 = 0;
/// The thing asked about is unhealthy, invalid, or the daemon refused the request.
pub const UNHEALTHY: u8 = 1;
/// Bad usage, or the daemon could not be reached.
pub const USAGE: u8 = 2;
/// `sync`: a run succeeded only in part (deferred paths, unresolved conflicts).
pub const PARTIAL: u8 = 3;
/// `sync`: a run did not happen (offline, lock held, breaker open): try again later.
pub const TEMPFAIL: u8 = 75;

/// How bad a code is: the higher, the worse (see the module's doc).
fn rank(code: u8) -> u8 {
    match code {
        OK => 0,
        TEMPFAIL => 1,
        PARTIAL => 2,
        _ => 3,
    }
}

/// The worst of `codes` (0 for none).
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes.into_iter().max_by_key(|c| rank(*c)).unwrap_or(OK)
}

/// How many paths a reason names at most.
const NAMED: usize = 5;

/// A sync run's exit code and, when it is not 0, why (for people).
pub fn sync_run(r: &RunReport) -> (u8, Option<String>) {
    let reason = r.reason.as_deref().filter(|s| !s.is_empty());
    match r.outcome.name() {
        "success" | "partial" => {}
        "skipped" => {
            let why = reason.unwrap_or("no reason given");
            return (TEMPFAIL, Some(format!("not run: {why}")));
        }
        // "error", and any outcome this CLI does not know: not a success.
        other => {
            let why = reason.unwrap_or(other);
            return (UNHEALTHY, Some(format!("failed: {why}")));
        }
    }
    let mut why = Vec::new();
    if r.outcome.name() == "partial" {
        why.push(reason.unwrap_or("partial").to_string());
    }
    if !r.deferred.is_empty() {
        let named: Vec<String> = r
            .deferred
            .iter()
            .take(NAMED)
            .map(|(p, w)| format!("{p} ({w})"))
            .collect();
        why.push(format!(
            "{} path(s) deferred to the next run: {}{}",
            r.deferred.len(),
            named.join(", "),
            more(r.deferred.len())
        ));
    }
    // Kept earlier and still open, and kept both by this run (manual).
    let open: Vec<&str> = r
        .unresolved
        .iter()
        .map(String::as_str)
        .chain(
            r.conflicts
                .iter()
                .filter(|c| c.copy.is_some())
                .map(|c| c.path.as_str()),
        )
        .collect();
    if !open.is_empty() {
        why.push(format!(
            "{} unresolved conflict(s): {}{} (`metasystem conflicts`)",
            open.len(),
            open[..open.len().min(NAMED)].join(", "),
            more(open.len())
        ));
    }
    if why.is_empty() {
        (OK, None)
    } else {
        (PARTIAL, Some(why.join("; ")))
    }
}

fn more(n: usize) -> String {
    if n > NAMED {
        format!(" and {} more", n - NAMED)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: &str, extra: serde_json::Value) -> RunReport {
        let mut v = serde_json::json!({
            "target": "t", "outcome": outcome, "reason": null, "refusal": null,
            "dry_run": false, "direction": "bidirectional", "strategy": "newest",
            "local_files": 0, "remote_files": 0, "copied_to_remote": 0,
            "copied_to_local": 0, "deleted_remote": 0, "deleted_local": 0, "agreed": 0,
            "bytes": 0, "backups": 0, "backups_pruned": 0, "conflicts": [],
            "unresolved": [], "pending": [], "deferred": [], "errors": [], "skipped": [],
            "collisions": [], "snapshots": [], "planned": [], "took_ms": 1
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_run_has_its_code_and_says_why() {
        use serde_json::json;
        assert_eq!(sync_run(&report("success", json!({}))), (OK, None));
        // Pending changes are what the direction leaves: not a partial run.
        let pending =
            json!({"pending": [{"path": "a", "action": "copy", "local": "x", "remote": "y"}]});
        assert_eq!(sync_run(&report("success", pending)).0, OK);
        let (code, why) = sync_run(&report(
            "skipped",
            json!({"reason": "offline: /mnt/x is not there"}),
        ));
        assert_eq!(code, TEMPFAIL);
        assert_eq!(
            why.as_deref(),
            Some("not run: offline: /mnt/x is not there")
        );
        let (code, why) = sync_run(&report("error", json!({"reason": "1 file(s) failed"})));
        assert_eq!(
            (code, why.as_deref()),
            (UNHEALTHY, Some("failed: 1 file(s) failed"))
        );
        let deferred: Vec<_> = (0..7).map(|i| json!([format!("p{i}"), "in use"])).collect();
        let (code, why) = sync_run(&report("success", json!({ "deferred": deferred })));
        assert_eq!(code, PARTIAL);
        let why = why.unwrap();
        assert!(
            why.starts_with("7 path(s) deferred to the next run: p0 (in use), p1 (in use)")
                && why.ends_with("p4 (in use) and 2 more"),
            "{why}"
        );
        let conflicts = json!({
            "unresolved": ["old.txt"],
            "conflicts": [
                {"path": "new.txt", "kept": "both", "copy": "new.conflict.txt"},
                {"path": "decided.txt", "kept": "local", "copy": null}
            ]
        });
        let (code, why) = sync_run(&report("success", conflicts));
        assert_eq!(code, PARTIAL);
        assert_eq!(
            why.as_deref(),
            Some("2 unresolved conflict(s): old.txt, new.txt (`metasystem conflicts`)")
        );
    }

    #[test]
    fn the_worst_code_wins() {
        assert_eq!(worst([]), OK);
        assert_eq!(worst([OK, TEMPFAIL]), TEMPFAIL);
        assert_eq!(worst([TEMPFAIL, PARTIAL, OK]), PARTIAL);
        assert_eq!(worst([PARTIAL, UNHEALTHY, TEMPFAIL]), UNHEALTHY);
    }
}
