//! Checks the probe actor evaluates from data it is given rather than by looking at the world:
//! how long since a sync target last succeeded, and which circuit breakers are open. Pure.

use std::time::Duration;

use serde_json::json;

use super::check::{unit, CheckOutcome, Health};
use super::{fmt_approx, fmt_limit};

/// How many breaker names the message lists (all are in `details`).
const NAMES_IN_MESSAGE: usize = 5;

/// What the events say of a sync target's runs (`sync_event`s with outcome success, skipped
/// or error), for [`sync_recency`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncHistory {
    /// The latest successful run (Unix ms).
    pub last_success_ms: Option<i64>,
    /// The earliest run recorded, whatever its outcome (within the events' retention).
    pub first_run_ms: Option<i64>,
    /// The latest run: its outcome (`success`, `skipped`, `error`) and reason.
    pub last_outcome: Option<String>,
    pub last_reason: Option<String>,
}

impl SyncHistory {
    /// Whether the latest run was skipped because the target was not there (an unmounted
    /// drive, an absent cloud folder): the engine's reason then starts with `offline`.
    pub fn offline(&self) -> bool {
        self.last_outcome.as_deref() == Some("skipped")
            && self
                .last_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("offline"))
    }
}

/// How long since the last successful sync at `now_ms`: Fail when longer than `fail_after`
/// (if set), Warn when longer than `warn_after`, else Pass. The value is the age in seconds.
///
/// - A success in the future (clocks disagree) counts as just now, and says so in `details`.
/// - No success recorded ([`never_synced`]): a Warn, or a Fail for a target that has been
///   there and failing for longer than `fail_after`; a target that is offline and never
///   synced (a laptop whose external drive was never plugged in) only warns.
pub fn sync_recency(
    history: &SyncHistory,
    now_ms: i64,
    warn_after: Duration,
    fail_after: Option<Duration>,
) -> CheckOutcome {
    let limits = json!({
        "warn_after_seconds": warn_after.as_secs(),
        "fail_after_seconds": fail_after.map(|d| d.as_secs()),
    });
    let Some(last) = history.last_success_ms else {
        return never_synced(history, now_ms, fail_after, limits);
    };
    let age_ms = now_ms.saturating_sub(last);
    let in_future = age_ms < 0;
    let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
    let (status, limit) = match fail_after {
        Some(f) if age > f => (Health::Fail, Some(f)),
        _ if age > warn_after => (Health::Warn, Some(warn_after)),
        _ => (Health::Pass, None),
    };
    let mut message = if age < Duration::from_secs(60) {
        "last successful sync less than a minute ago".to_string()
    } else {
        format!("last successful sync {} ago", fmt_approx(age))
    };
    if let Some(limit) = limit {
        message.push_str(&format!(", over {}", fmt_limit(limit)));
    }
    CheckOutcome::new(status, message)
        .with_value(age.as_secs_f64(), unit::SECONDS)
        .with_details(json!({
            "last_success_ms": last,
            "age_seconds": age.as_secs(),
            "clock_skew": in_future,
            "limits": limits,
        }))
}

/// [`sync_recency`] with what is only informational made so unless asked (`alert_offline`):
/// a target never synced that has had no run yet, or whose runs find it offline, passes,
/// its message saying what it is (a fresh install on a machine without the drive or the cloud
/// folder raises nothing). A target that is there and never synced still warns and fails.
pub fn quiet_unless_asked(
    outcome: CheckOutcome,
    history: &SyncHistory,
    alert_offline: bool,
) -> CheckOutcome {
    let informational =
        history.last_success_ms.is_none() && (history.first_run_ms.is_none() || history.offline());
    if alert_offline || !informational || outcome.status != Health::Warn {
        return outcome;
    }
    CheckOutcome {
        status: Health::Pass,
        message: format!(
            "{} (informational; `alert_offline = true` warns)",
            outcome.message
        ),
        ..outcome
    }
}

/// No successful sync recorded. The age, when there is one, is counted from the first run
/// recorded (how long the target has had its chance):
///
/// - no run yet (a target just added; its first run is due soon after start): Warn;
/// - offline at its latest run and never synced: Warn, never Fail, however long. Nothing
///   synced, so nothing is going stale there; an operator sees it (`health`, the warning)
///   and is not paged for a drive that is simply never plugged in;
/// - there (its latest run was not an offline skip) yet never synced: its runs fail or are
///   refused. Warn, and Fail once the first run is older than `fail_after`: the stall this
///   probe exists for.
fn never_synced(
    history: &SyncHistory,
    now_ms: i64,
    fail_after: Option<Duration>,
    limits: serde_json::Value,
) -> CheckOutcome {
    let details = json!({
        "last_success_ms": null,
        "first_run_ms": history.first_run_ms,
        "last_outcome": history.last_outcome,
        "last_reason": history.last_reason,
        "offline": history.offline(),
        "limits": limits,
    });
    let Some(first) = history.first_run_ms else {
        return CheckOutcome::warn("never synced: no run recorded yet").with_details(details);
    };
    let trying = Duration::from_millis(u64::try_from(now_ms.saturating_sub(first)).unwrap_or(0));
    let since = if trying < Duration::from_secs(60) {
        "first run less than a minute ago".to_string()
    } else {
        format!("first run {} ago", fmt_approx(trying))
    };
    if history.offline() {
        return CheckOutcome::warn(format!("offline, never synced ({since})"))
            .with_details(details);
    }
    let last = history.last_outcome.as_deref().unwrap_or("unknown");
    let mut message = format!(
        "never synced: the target is there but no run succeeded (last run: {last}; {since})"
    );
    let status = match fail_after {
        Some(f) if trying > f => {
            message.push_str(&format!(", over {}", fmt_limit(f)));
            Health::Fail
        }
        _ => Health::Warn,
    };
    CheckOutcome::new(status, message).with_details(details)
}

/// The circuit breakers open now: none is a Pass, any is a Warn (a breaker is already
/// containing the failure; whatever sits behind it has its own checks). The value is the count.
pub fn breakers(open: &[String]) -> CheckOutcome {
    let count = open.len();
    let (status, message) = if count == 0 {
        (Health::Pass, "no circuit breaker open".to_string())
    } else {
        let mut names: Vec<&str> = open
            .iter()
            .take(NAMES_IN_MESSAGE)
            .map(String::as_str)
            .collect();
        let more = count.saturating_sub(NAMES_IN_MESSAGE);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        names.sort_unstable();
        let noun = if count == 1 { "breaker" } else { "breakers" };
        (
            Health::Warn,
            format!("{count} circuit {noun} open: {}{more}", names.join(", ")),
        )
    };
    CheckOutcome::new(status, message)
        .with_value(count as f64, unit::COUNT)
        .with_details(json!({ "open": open }))
}

/// A managed process as its registry shows it (`status`: `None` if it never started; `starts`:
/// the Unix ms of its recent starts, the first one of the daemon's life excluded) at `now_ms`:
/// Fail when it is not running, Warn when its run is younger than `min_uptime` or it restarted
/// more than `max_restarts` times within `window`, else Pass. The value is its uptime in
/// seconds.
pub fn process(
    spec: &super::check::ProcessCheckSpec,
    status: Option<&crate::process::ProcessStatus>,
    restarts: &[i64],
    now_ms: i64,
) -> CheckOutcome {
    let Some(s) = status else {
        return CheckOutcome::fail(format!("{} has not started", spec.path))
            .with_details(json!({ "path": spec.path }));
    };
    let window_ms = i64::try_from(spec.window.as_millis()).unwrap_or(i64::MAX);
    let recent = restarts
        .iter()
        .filter(|at| now_ms.saturating_sub(**at) <= window_ms)
        .count();
    let details = json!({
        "path": spec.path,
        "state": s.state,
        "pid": s.pid,
        "runs": s.runs,
        "restarts_in_window": recent,
        "window_seconds": spec.window.as_secs(),
        "last_exit": s.last_exit_message,
    });
    if s.state != "running" && s.state != "starting" {
        let why = s
            .last_exit_message
            .as_deref()
            .map(|m| format!(" (last run: {m})"))
            .unwrap_or_default();
        return CheckOutcome::fail(format!("{} is not running{why}", spec.path))
            .with_details(details);
    }
    let up_ms = s
        .started_ms
        .map_or(0, |at| now_ms.saturating_sub(at).max(0));
    let up = Duration::from_millis(u64::try_from(up_ms).unwrap_or(0));
    let value = up.as_secs_f64();
    let pid = s.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    if let Some(min) = spec.min_uptime.filter(|m| up < *m) {
        return CheckOutcome::warn(format!(
            "{} restarted {} ago (under {}){pid}",
            spec.path,
            fmt_approx(up),
            fmt_limit(min)
        ))
        .with_value(value, unit::SECONDS)
        .with_details(details);
    }
    if let Some(max) = spec.max_restarts.filter(|m| recent > *m as usize) {
        return CheckOutcome::warn(format!(
            "{} restarted {recent} times within {} (over {max}){pid}",
            spec.path,
            fmt_limit(spec.window)
        ))
        .with_value(value, unit::SECONDS)
        .with_details(details);
    }
    CheckOutcome::pass(format!("{} running for {}{pid}", spec.path, fmt_approx(up)))
        .with_value(value, unit::SECONDS)
        .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn never_synced_and_offline_is_informational_unless_asked() {
        let now = 10 * H;
        let offline = SyncHistory {
            first_run_ms: Some(now - 5 * H),
            last_outcome: Some("skipped".into()),
            last_reason: Some("offline: no such folder".into()),
            ..SyncHistory::default()
        };
        let strict = sync_recency(&offline, now, SIX_H, Some(DAY));
        assert_eq!(strict.status, Health::Warn);
        let quiet = quiet_unless_asked(strict.clone(), &offline, false);
        assert_eq!(quiet.status, Health::Pass);
        assert!(
            quiet.message.starts_with("offline, never synced"),
            "{}",
            quiet.message
        );
        assert_eq!(
            quiet_unless_asked(strict, &offline, true).status,
            Health::Warn
        );
        // No run yet: the same.
        let none = SyncHistory::default();
        let o = quiet_unless_asked(sync_recency(&none, now, SIX_H, None), &none, false);
        assert_eq!(o.status, Health::Pass);
        // There and never synced: still a warning, then a failure.
        let failing = SyncHistory {
            first_run_ms: Some(now - 48 * H),
            last_outcome: Some("error".into()),
            last_reason: Some("permission denied".into()),
            ..SyncHistory::default()
        };
        let o = quiet_unless_asked(
            sync_recency(&failing, now, SIX_H, Some(DAY)),
            &failing,
            false,
        );
        assert_eq!(o.status, Health::Fail);
    }

    #[test]
    fn a_process_is_judged_from_its_registry_entry() {
        use super::super::check::ProcessCheckSpec;
        let spec = ProcessCheckSpec {
            path: "root/web".into(),
            min_uptime: Some(Duration::from_secs(60)),
            max_restarts: Some(2),
            window: Duration::from_secs(3600),
        };
        let now = 100 * H;
        assert_eq!(process(&spec, None, &[], now).status, Health::Fail);
        let mut s = crate::process::ProcessStatus {
            state: "running".into(),
            pid: Some(42),
            started_ms: Some(now - 2 * H),
            runs: 1,
            ..Default::default()
        };
        let o = process(&spec, Some(&s), &[], now);
        assert_eq!(o.status, Health::Pass, "{}", o.message);
        assert_eq!(o.value, Some(7200.0));
        let o = process(
            &spec,
            Some(&s),
            &[now - 3 * H, now - 100, now - 50, now - 10],
            now,
        );
        assert_eq!(o.status, Health::Warn);
        assert!(o.message.contains("restarted 3 times"), "{}", o.message);
        s.started_ms = Some(now - 5_000);
        let o = process(&spec, Some(&s), &[], now);
        assert_eq!(o.status, Health::Warn);
        assert!(o.message.contains("restarted"), "{}", o.message);
        s.state = "exited".into();
        s.last_exit_message = Some("killed by SIGKILL after 2.0s".into());
        let o = process(&spec, Some(&s), &[], now);
        assert_eq!(o.status, Health::Fail);
        assert_eq!(
            o.message,
            "root/web is not running (last run: killed by SIGKILL after 2.0s)"
        );
    }
    const SIX_H: Duration = Duration::from_secs(6 * 3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn recency_passes_then_warns_then_fails() {
        let now = 100 * H;
        let o = sync_recency(&ok(now - H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.message, "last successful sync ~1 h ago");
        assert_eq!(o.value, Some(3600.0));
        assert_eq!(o.unit, "seconds");
        // Exactly at the limit is not over it.
        assert_eq!(
            sync_recency(&ok(now - 6 * H), now, SIX_H, Some(DAY)).status,
            Health::Pass
        );
        let o = sync_recency(&ok(now - 7 * H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "last successful sync ~7 h ago, over 6h");
        let o = sync_recency(&ok(now - 30 * H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Fail);
        assert_eq!(o.message, "last successful sync ~30 h ago, over 1day");
        // Without fail_after, it only ever warns.
        assert_eq!(
            sync_recency(&ok(now - 300 * H), now, SIX_H, None).status,
            Health::Warn
        );
    }

    /// A target whose latest success was at `ms`.
    fn ok(ms: i64) -> SyncHistory {
        SyncHistory {
            last_success_ms: Some(ms),
            first_run_ms: Some(ms.saturating_sub(DAY.as_millis() as i64)),
            last_outcome: Some("success".into()),
            last_reason: None,
        }
    }

    /// A target that never synced: first run at `first`, the latest run `outcome` for `reason`.
    fn never(first: i64, outcome: &str, reason: &str) -> SyncHistory {
        SyncHistory {
            last_success_ms: None,
            first_run_ms: Some(first),
            last_outcome: Some(outcome.into()),
            last_reason: Some(reason.into()),
        }
    }

    const OFFLINE: &str = "offline: /media/x/.metasystem is not there (No such file or directory)";

    #[test]
    fn recency_before_any_run_warns() {
        let o = sync_recency(&SyncHistory::default(), 5, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "never synced: no run recorded yet");
        assert_eq!(o.value, None);
    }

    #[test]
    fn offline_and_never_synced_warns_and_never_fails() {
        let now = 1_000 * H;
        // Just installed, the drive not plugged in.
        let o = sync_recency(
            &never(now - 10_000, "skipped", OFFLINE),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Warn);
        assert_eq!(
            o.message,
            "offline, never synced (first run less than a minute ago)"
        );
        assert_eq!(o.details["offline"], true);
        // Months later, still never plugged in: visible, not paging.
        let o = sync_recency(
            &never(now - 900 * H, "skipped", OFFLINE),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "offline, never synced (first run ~38 days ago)");
        assert_eq!(o.value, None);
        assert_eq!(o.details["last_reason"], OFFLINE);
        // Plugged in at last, and its run failed: the latest run decides, and it has had
        // its chance since the first run.
        let o = sync_recency(
            &never(now - 900 * H, "error", "cannot read"),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Fail);
        assert_eq!(o.details["offline"], false);
    }

    #[test]
    fn online_and_never_synced_warns_then_fails_after_fail_after() {
        let now = 1_000 * H;
        let o = sync_recency(
            &never(now - 2 * H, "error", "1 file(s) failed"),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Warn);
        assert_eq!(
            o.message,
            "never synced: the target is there but no run succeeded (last run: error; first run ~2 h ago)"
        );
        assert_eq!(o.details["offline"], false);
        let o = sync_recency(
            &never(now - 30 * H, "error", "refused"),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Fail);
        assert!(
            o.message.ends_with("first run ~30 h ago), over 1day"),
            "{}",
            o.message
        );
        // Without fail_after it only warns.
        let o = sync_recency(&never(now - 300 * H, "error", "refused"), now, SIX_H, None);
        assert_eq!(o.status, Health::Warn);
        // Skipped for another reason than offline (another host holds the lock): it is there.
        let o = sync_recency(
            &never(now - 30 * H, "skipped", "/x is locked by another run"),
            now,
            SIX_H,
            Some(DAY),
        );
        assert_eq!(o.status, Health::Fail);
        assert!(
            o.message.starts_with("never synced: the target is there"),
            "{}",
            o.message
        );
        // A first run in the future (clocks disagree) is now.
        let o = sync_recency(&never(now + H, "error", "x"), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Warn);
        assert!(
            o.message.ends_with("first run less than a minute ago)"),
            "{}",
            o.message
        );
    }

    #[test]
    fn a_success_in_the_future_is_now() {
        let o = sync_recency(&ok(10 * H), 9 * H, SIX_H, None);
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.value, Some(0.0));
        assert_eq!(o.details["clock_skew"], true);
        assert_eq!(o.message, "last successful sync less than a minute ago");
        // Extremes do not overflow.
        assert_eq!(
            sync_recency(&ok(i64::MIN), i64::MAX, SIX_H, Some(DAY)).status,
            Health::Fail
        );
    }

    #[test]
    fn open_breakers_warn() {
        let o = breakers(&[]);
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.value, Some(0.0));
        assert_eq!(o.unit, "count");
        let o = breakers(&["smtp".into()]);
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "1 circuit breaker open: smtp");
        let many: Vec<String> = (0..7).map(|i| format!("b{i}")).collect();
        let o = breakers(&many);
        assert_eq!(
            o.message,
            "7 circuit breakers open: b0, b1, b2, b3, b4 and 2 more"
        );
        assert_eq!(o.details["open"].as_array().unwrap().len(), 7);
    }
}
