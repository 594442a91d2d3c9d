//! Answering `retries`: the stored runs of retried operations (the read pool), grouped by
//! operation, each judged by [`op_stats`] under its own policy: the config's when the
//! operation is known (a heal action: one attempt per run; an alert channel: the alerts
//! child's `retry`), the library's default otherwise.

use super::handle::Answer;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metasystem_actors::alerts::actor::retry_op;
use metasystem_actors::heal::guard as heal_guard;
use metasystem_actors::retry::{self, op_stats, OpStats, RetryPolicy, RunSummary};
use metasystem_actors::store::format_ms;

use super::Daemon;
use crate::config::Config;
use crate::control::protocol::{
    ErrorCount, RecommendationView, RetriesResult, RetryOpView, RetryPolicyView,
};

/// The window when `--since` is not given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many runs are read (the latest of the window).
const MAX_RUNS: u32 = 50_000;
/// How long the answer waits for a reload to release the config before judging every
/// operation by the default policy.
const CONFIG_WAIT: Duration = Duration::from_secs(1);

/// An operation's policy and where it comes from (`configured` or `default`).
pub(super) fn policy_for(op: &str, config: Option<&Config>) -> (RetryPolicy, &'static str) {
    if op.starts_with("heal:") {
        return (heal_guard::retry_policy(), "configured");
    }
    if let Some(alerts) = config.and_then(|c| super::last_words::alerts_config(&c.root)) {
        if alerts.channels.iter().any(|ch| retry_op(&ch.name) == op) {
            return (alerts.retry_policy(), "configured");
        }
    }
    (RetryPolicy::default(), "default")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One operation as `retries` shows it.
pub(super) fn op_view(
    stats: OpStats,
    runs: &[&RunSummary],
    policy: &RetryPolicy,
    source: &str,
) -> RetryOpView {
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for r in runs {
        *outcomes.entry(r.outcome.as_str().to_string()).or_default() += 1;
    }
    RetryOpView {
        op: stats.op,
        runs: stats.runs,
        outcomes,
        success_rate: stats.success_rate,
        failed_attempts: stats.failed_attempts,
        transient_share: stats.transient_share,
        permanent_share: stats.permanent_share,
        commonest_errors: stats
            .commonest_errors
            .into_iter()
            .map(|(label, count)| ErrorCount { label, count })
            .collect(),
        recovered_runs: stats.recovered_runs,
        median_recovery_ms: stats.median_recovery.map(millis),
        p90_recovery_ms: stats.p90_recovery.map(millis),
        last_run: runs.iter().map(|r| r.started_ms).max().map(format_ms),
        policy: RetryPolicyView {
            source: source.to_string(),
            initial_ms: millis(policy.initial),
            max_ms: millis(policy.max),
            max_attempts: (policy.attempts() != u32::MAX).then(|| policy.attempts()),
            adaptive: policy.adaptive,
        },
        recommendation: RecommendationView {
            initial_ms: millis(stats.recommendation.initial),
            max_attempts: stats.recommendation.max_attempts,
            text: stats.recommendation.text,
        },
    }
}

/// The answer: every operation with runs in the window (and `only`, when asked for, even
/// without runs), by name.
pub(super) fn judge(
    runs: &[RunSummary],
    only: Option<&str>,
    config: Option<&Config>,
) -> Vec<RetryOpView> {
    let mut names: BTreeSet<&str> = runs.iter().map(|r| r.op.as_str()).collect();
    if let Some(op) = only {
        names.retain(|n| *n == op);
        names.insert(op);
    }
    names
        .into_iter()
        .map(|op| {
            let (policy, source) = policy_for(op, config);
            let mine: Vec<&RunSummary> = runs.iter().filter(|r| r.op == op).collect();
            op_view(op_stats(op, runs, &policy), &mine, &policy, source)
        })
        .collect()
}

impl Daemon {
    pub(super) async fn retries(
        &self,
        since_s: Option<u64>,
        op: Option<String>,
    ) -> Answer<RetriesResult> {
        let since = super::queries::window_start_ms(since_s, DEFAULT_WINDOW);
        let runs = match retry::load(self.store.reader(), op.as_deref(), since, MAX_RUNS).await {
            Ok(runs) => runs,
            Err(e) => return Err(e.into()),
        };
        // A reload holds the config while it runs; `retries` does not wait for it long.
        let config = tokio::time::timeout(CONFIG_WAIT, self.current.lock())
            .await
            .ok()
            .map(|current| current.1.clone());
        let ops = judge(&runs, op.as_deref(), config.as_ref());
        let result = RetriesResult {
            since: format_ms(since),
            runs: runs.len() as u64,
            truncated: runs.len() >= MAX_RUNS as usize,
            ops,
        };
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metasystem_actors::retry::{ErrorKind, Outcome};

    fn run(op: &str, outcome: Outcome, errors: &[(&str, ErrorKind)]) -> RunSummary {
        RunSummary {
            op: op.to_string(),
            started_ms: 1_700_000_000_000,
            attempts: errors.len() as u32 + u32::from(outcome == Outcome::Success),
            outcome,
            errors: errors.iter().map(|(l, k)| (l.to_string(), *k)).collect(),
            recovered_after: (outcome == Outcome::Success && !errors.is_empty())
                .then(|| Duration::from_millis(1500)),
            took: Duration::from_secs(2),
            rejected: None,
        }
    }

    #[test]
    fn runs_are_grouped_by_operation_and_judged_by_its_policy() {
        use ErrorKind::{Permanent, Transient};
        let runs = vec![
            run(
                "heal:root/x:command",
                Outcome::Exhausted,
                &[("heal_failed", Transient)],
            ),
            run("alert:hook", Outcome::Success, &[("http_503", Transient)]),
            run("heal:root/x:command", Outcome::Rejected, &[]),
            run("sync.push", Outcome::Permanent, &[("disk_full", Permanent)]),
            run("alert:hook", Outcome::Success, &[]),
        ];
        let ops = judge(&runs, None, None);
        let names: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
        assert_eq!(names, ["alert:hook", "heal:root/x:command", "sync.push"]);

        let heal = &ops[1];
        assert_eq!(heal.runs, 2);
        assert_eq!(
            heal.outcomes,
            BTreeMap::from([("exhausted".into(), 1), ("rejected".into(), 1)])
        );
        assert_eq!(heal.policy.source, "configured");
        assert_eq!(heal.policy.max_attempts, Some(1));
        assert_eq!(heal.transient_share, 1.0);
        assert_eq!(
            heal.commonest_errors,
            vec![ErrorCount {
                label: "heal_failed".into(),
                count: 1
            }]
        );
        assert!(heal.recommendation.text.contains("transient"), "{heal:?}");

        // Not in a config: the default policy.
        let hook = &ops[0];
        assert_eq!(hook.policy.source, "default");
        assert_eq!(hook.policy.max_attempts, Some(5));
        assert_eq!(hook.success_rate, 1.0);
        assert_eq!(hook.median_recovery_ms, Some(1500));
        assert!(
            ops[2].recommendation.text.contains("permanent"),
            "{:?}",
            ops[2]
        );

        // A channel of the config's alerts child: its `retry`, retried until accepted.
        let config = crate::config::parse(
            r#"
[daemon]
state_dir = "/tmp/x"
[root]
[[root.children]]
name = "alerts"
kind = "alerts"
retry = { initial = "2s", max = "1m", adaptive = true }
channels = [{ name = "hook", type = "webhook", url = "http://127.0.0.1:9/" }]
"#,
            "t.toml",
            std::path::Path::new("/"),
        )
        .unwrap();
        let ops = judge(&runs, None, Some(&config));
        let p = &ops[0].policy;
        assert_eq!(p.source, "configured");
        assert_eq!(
            (p.initial_ms, p.max_ms, p.max_attempts),
            (2000, 60_000, None)
        );
        assert!(p.adaptive);
        assert_eq!(ops[2].policy.source, "default");

        // One operation asked for: it alone, even without runs.
        let only = judge(&runs, Some("sync.pull"), None);
        assert_eq!(only.len(), 1);
        assert_eq!((only[0].op.as_str(), only[0].runs), ("sync.pull", 0));
        assert!(only[0]
            .recommendation
            .text
            .starts_with("no runs of sync.pull"));
    }
}
