//! What stands around one run of a heal action besides its [`super::Limiter`]: a circuit
//! breaker of its own, the retry policy its runs go through, and how a failure is classified
//! for the retry statistics. Pure (no clock, no I/O).
//!
//! A probe runs each heal action through [`crate::retry::retry()`] with [`retry_policy`] (one
//! attempt: a heal action is not retried within a run, its cooldown governs when it runs
//! again) and its own breaker as the guard (not in the shared registry: nobody else calls a
//! heal action). The breaker ([`breaker_config`]) opens after [`FAILURES_TO_OPEN`] failed runs
//! in a row and stays open for twice the cooldown (at least [`MIN_OPEN`]), doubling after each
//! failed trial up to an hour (or the first wait, if longer): an action that keeps failing is
//! left alone for longer than its cooldown alone would leave it. One successful trial closes it.

use std::time::Duration;

use super::actions::{HealAction, HealOutcome};
use super::limits::HealLimits;
use crate::breakers::BreakerConfig;
use crate::retry::{Classify, ErrorKind, RetryPolicy};

/// Failed runs in a row that open an action's breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// The shortest first wait of an open breaker (an action with no cooldown still rests).
pub const MIN_OPEN: Duration = Duration::from_secs(60);
/// The longest wait the breaker grows to (unless twice the cooldown is longer).
pub const MAX_OPEN: Duration = Duration::from_secs(3600);
/// A half-open trial not reported within this counts as a failure. A probe always reports or
/// gives back its permit; this only bounds a trial that is lost by mistake, above the longest
/// command timeout (a day).
const TRIAL_MAX_WAIT: Duration = Duration::from_secs(25 * 3600);

/// The longest target written whole in an operation name (in characters).
pub const TARGET_IN_NAME: usize = 64;

/// The operation name of a heal action's runs, and its breaker's:
/// `heal:PROBE_PATH:ACTION:TARGET` (`heal:root/db:vacuum:/var/lib/app.db`,
/// `heal:root/web:command:systemctl --user restart web`), so two actions of one kind on one
/// probe (two commands, two cleanups) have breakers, retry statistics and cap alerts of their
/// own. Stable across restarts (the stored runs are keyed by it): it depends on the action
/// alone. A target longer than [`TARGET_IN_NAME`] characters is cut and ends with `~` and 8
/// hex digits of its FNV-1a hash, so different long targets keep different names. Within a
/// probe use [`ops`], which also tells repeats of one action apart.
pub fn op(probe: &str, action: &HealAction) -> String {
    format!(
        "heal:{probe}:{}:{}",
        action.name(),
        short_target(&action.target())
    )
}

/// The operation names of a probe's heal actions, in their order: [`op`], with `#2`, `#3`,
/// ... after the second and later copies of the same action (same kind and target).
pub fn ops<'a>(probe: &str, actions: impl IntoIterator<Item = &'a HealAction>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for action in actions {
        let name = op(probe, action);
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        names.push(if *n == 1 { name } else { format!("{name}#{n}") });
    }
    names
}

/// `target`, or when longer than [`TARGET_IN_NAME`] characters its start, `~` and 8 hex
/// digits of the whole one's FNV-1a hash (stable: not std's hasher, which may change).
fn short_target(target: &str) -> String {
    if target.chars().count() <= TARGET_IN_NAME {
        return target.to_string();
    }
    let head: String = target.chars().take(TARGET_IN_NAME - 9).collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{head}~{:08x}", (hash ^ (hash >> 32)) as u32)
}

/// One attempt per run.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

/// The breaker of an action with these limits.
pub fn breaker_config(limits: &HealLimits) -> BreakerConfig {
    let open_for = limits.cooldown.saturating_mul(2).max(MIN_OPEN);
    BreakerConfig {
        failure_threshold: FAILURES_TO_OPEN,
        success_threshold: 1,
        open_for,
        open_for_max: open_for.max(MAX_OPEN),
        open_backoff: 2.0,
        half_open_calls: 1,
        failure_rate: None,
        half_open_max_wait: TRIAL_MAX_WAIT,
        ..BreakerConfig::default()
    }
}

/// A failed run of a heal action, as the retry loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealFailure(pub HealOutcome);

/// An action refused as configured ([`HealAction::validate`]: `heal_refused`) is permanent:
/// it fails the same way until someone changes the config. A timeout (`heal_timeout`) and any
/// other failure (`heal_failed`: a command's exit status, a restart or a sync that failed, a
/// busy database) are transient: the same action may well work at its next run.
impl Classify for HealFailure {
    fn kind(&self) -> ErrorKind {
        class(&self.0.detail).1
    }
    fn label(&self) -> String {
        class(&self.0.detail).0.to_string()
    }
}

impl std::fmt::Display for HealFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.detail)
    }
}

/// By the words [`super::execute`] uses: `refused: ...` for an invalid action, `... timed out
/// after ...` for a command past its timeout.
fn class(detail: &str) -> (&'static str, ErrorKind) {
    if detail.starts_with("refused: ") {
        ("heal_refused", ErrorKind::Permanent)
    } else if detail.contains(" timed out after ") {
        ("heal_timeout", ErrorKind::Transient)
    } else {
        ("heal_failed", ErrorKind::Transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_rests_twice_the_cooldown_and_at_least_a_minute() {
        let limits = |cooldown| HealLimits {
            cooldown,
            max_per_hour: 3,
        };
        let c = breaker_config(&limits(Duration::from_secs(300)));
        assert_eq!(c.failure_threshold, 3);
        assert_eq!(c.success_threshold, 1);
        assert_eq!(c.open_for, Duration::from_secs(600));
        assert_eq!(c.open_for_max, Duration::from_secs(3600));
        assert_eq!(c.failure_rate, None);
        let c = breaker_config(&limits(Duration::ZERO));
        assert_eq!(c.open_for, MIN_OPEN);
        let c = breaker_config(&limits(Duration::from_secs(24 * 3600)));
        assert_eq!(c.open_for, Duration::from_secs(48 * 3600));
        assert_eq!(c.open_for_max, c.open_for);
        assert_eq!(retry_policy().attempts(), 1);
    }

    #[test]
    fn failures_are_classified_by_what_execute_says() {
        let f = |detail: &str| {
            let e = HealFailure(HealOutcome::failure(detail));
            (e.label(), e.kind())
        };
        assert_eq!(
            f("refused: command: the timeout is zero"),
            ("heal_refused".into(), ErrorKind::Permanent)
        );
        assert_eq!(
            f("/usr/bin/fix timed out after 1m"),
            ("heal_timeout".into(), ErrorKind::Transient)
        );
        assert_eq!(
            f("exited with status 1, no output"),
            ("heal_failed".into(), ErrorKind::Transient)
        );
        let action = HealAction::Command {
            program: "/bin/false".into(),
            args: vec![],
            timeout: Duration::from_secs(1),
        };
        assert_eq!(op("root/x", &action), "heal:root/x:command:/bin/false");
    }

    #[test]
    fn actions_of_one_kind_on_one_probe_have_names_of_their_own() {
        let command = |args: &[&str]| HealAction::Command {
            program: "/usr/bin/systemctl".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout: Duration::from_secs(60),
        };
        let cleanup = |dir: &str| HealAction::Cleanup {
            dir: dir.into(),
            older_than: Duration::from_secs(3600),
            pattern: None,
        };
        let actions = [
            command(&["restart", "web"]),
            command(&["restart", "db"]),
            cleanup("/var/tmp/a"),
            cleanup("/var/tmp/b"),
            command(&["restart", "web"]),
        ];
        assert_eq!(
            ops("root/svc", &actions),
            [
                "heal:root/svc:command:/usr/bin/systemctl restart web",
                "heal:root/svc:command:/usr/bin/systemctl restart db",
                "heal:root/svc:cleanup:/var/tmp/a",
                "heal:root/svc:cleanup:/var/tmp/b",
                "heal:root/svc:command:/usr/bin/systemctl restart web#2",
            ]
        );
        // A long target is cut, and two long ones differing only at the end stay apart.
        let long = |end: &str| cleanup(&format!("/{}/{end}", "d".repeat(100)));
        let (a, b) = (op("root/p", &long("x")), op("root/p", &long("y")));
        assert_ne!(a, b);
        let target = a.trim_start_matches("heal:root/p:cleanup:");
        assert_eq!(target.chars().count(), TARGET_IN_NAME);
        assert!(target.starts_with("/ddd"), "{a}");
        assert_eq!(target.as_bytes()[TARGET_IN_NAME - 9], b'~', "{a}");
        // The same name every time (it keys stored runs across restarts).
        assert_eq!(a, op("root/p", &long("x")));
        assert_eq!(short_target("abc"), "abc");
    }
}
