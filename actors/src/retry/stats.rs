//! Statistics of one operation's runs, and the retry schedule they suggest. Pure.
//!
//! **What is measured.** A run's `recovered_after` is the time from its first failure to its
//! success: how long the cause of a transient failure lasted, seen through the schedule (an
//! upper bound: the outage ended somewhere during the last wait). Runs that gave up, were
//! refused or failed permanently say nothing about recovery and are left out of it.
//!
//! **What is recommended.**
//! - Mostly permanent failures (over half the failed attempts): retrying does not help; the
//!   text names the commonest permanent error, the numbers stay the policy's.
//! - Transient failures with at least [`MIN_RECOVERED_RUNS`] recoveries: the first wait's bound
//!   is the median recovery (within [`RetryPolicy::adaptive_bounds`]), so a typical outage is over
//!   by about the first or second retry; `max_attempts` is the fewest attempts whose *mean*
//!   cumulative wait (full jitter waits half the bound on average) reaches the p90 recovery at
//!   that schedule (at least 2, at most [`MAX_RECOMMENDED_ATTEMPTS`]).
//! - Fewer recoveries: too few to tune; the policy's numbers.
//!
//! The caller chooses the window (e.g. the last week's runs): old runs weigh as much as new ones.

use std::collections::HashMap;
use std::time::Duration;

use super::policy::{ErrorKind, RetryPolicy};
use super::run::{Outcome, RunSummary};

/// Recovered runs needed before the median recovery time is trusted.
pub const MIN_RECOVERED_RUNS: u32 = 5;

/// The most attempts a recommendation asks for: beyond that the operation needs a longer
/// `max`, or handling outside a retry loop.
pub const MAX_RECOMMENDED_ATTEMPTS: u32 = 20;

/// What the runs of one operation say.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpStats {
    pub op: String,
    /// Runs of `op` in the input.
    pub runs: u32,
    /// Of which succeeded, and were refused by a guard.
    pub successes: u32,
    pub rejected: u32,
    /// `successes / runs` (0 when there are no runs).
    pub success_rate: f64,
    /// Failed attempts over all runs (calls to the operation that returned an error).
    pub failed_attempts: u32,
    /// Shares of the failed attempts that were transient and permanent (both 0 when none
    /// failed; otherwise they sum to 1).
    pub transient_share: f64,
    pub permanent_share: f64,
    /// The three commonest error labels over the failed attempts, with their counts, commonest
    /// first (ties by label).
    pub commonest_errors: Vec<(String, u32)>,
    /// Runs that succeeded after at least one failure.
    pub recovered_runs: u32,
    #[serde(rename = "median_recovery_ms", with = "super::run::opt_ms", default)]
    pub median_recovery: Option<Duration>,
    /// Nearest-rank 90th percentile.
    #[serde(rename = "p90_recovery_ms", with = "super::run::opt_ms", default)]
    pub p90_recovery: Option<Duration>,
    pub recommendation: Recommendation,
}

/// A suggested schedule and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recommendation {
    #[serde(rename = "initial_ms", with = "super::run::ms")]
    pub initial: Duration,
    pub max_attempts: u32,
    /// One sentence for an operator.
    pub text: String,
}

/// The statistics of `op` from `runs` (summaries of other operations are ignored), and the
/// schedule they suggest under `policy` (its factor, cap and adaptive bounds).
pub fn op_stats(op: &str, runs: &[RunSummary], policy: &RetryPolicy) -> OpStats {
    let runs: Vec<&RunSummary> = runs.iter().filter(|r| r.op == op).collect();
    let successes = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count();
    let rejected = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Rejected)
        .count();
    let exhausted = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Exhausted)
        .count();

    let mut failed = 0usize;
    let mut transient = 0usize;
    let mut by_label: HashMap<&str, (usize, usize)> = HashMap::new(); // (all, permanent)
    for (label, kind) in runs.iter().flat_map(|r| r.errors.iter()) {
        failed += 1;
        let entry = by_label.entry(label.as_str()).or_default();
        entry.0 += 1;
        match kind {
            ErrorKind::Transient => transient += 1,
            ErrorKind::Permanent => entry.1 += 1,
        }
    }
    let (transient_share, permanent_share) = if failed == 0 {
        (0.0, 0.0)
    } else {
        let t = ratio(transient, failed);
        (t, 1.0 - t)
    };
    let mut ranked: Vec<(&str, usize, usize)> = by_label
        .iter()
        .map(|(label, (all, permanent))| (*label, *all, *permanent))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let commonest_errors = ranked
        .iter()
        .take(3)
        .map(|(label, n, _)| (label.to_string(), count(*n)))
        .collect();

    let mut recoveries: Vec<Duration> = runs.iter().filter_map(|r| r.recovered_after).collect();
    recoveries.sort_unstable();
    let median_recovery = median(&recoveries);
    let p90_recovery = nearest_rank(&recoveries, 0.9);

    let facts = Facts {
        op,
        runs: runs.len(),
        exhausted,
        failed,
        permanent_share,
        top_permanent: top_of(&ranked, |(_, _, permanent)| *permanent),
        top_transient: top_of(&ranked, |(_, all, permanent)| all - permanent),
        recovered: recoveries.len(),
        median: median_recovery,
        p90: p90_recovery,
    };
    OpStats {
        op: op.to_string(),
        runs: count(runs.len()),
        successes: count(successes),
        rejected: count(rejected),
        success_rate: ratio(successes, runs.len()),
        failed_attempts: count(failed),
        transient_share,
        permanent_share,
        commonest_errors,
        recovered_runs: count(recoveries.len()),
        median_recovery,
        p90_recovery,
        recommendation: recommend(policy, &facts),
    }
}

/// The first wait's bound to pass to [`super::retry()`]: the median recovery time within
/// [`RetryPolicy::adaptive_bounds`] (`adaptive_min..=min(adaptive_max, max)`) when `policy.adaptive` and at least [`MIN_RECOVERED_RUNS`]
/// runs recovered; otherwise `policy.initial`.
pub fn adaptive_initial(policy: &RetryPolicy, stats: &OpStats) -> Duration {
    if !policy.adaptive || stats.recovered_runs < MIN_RECOVERED_RUNS {
        return policy.initial;
    }
    match stats.median_recovery {
        Some(median) => tuned_initial(policy, median),
        None => policy.initial,
    }
}

/// The median within the adaptive bounds, to whole milliseconds.
fn tuned_initial(policy: &RetryPolicy, median: Duration) -> Duration {
    let d = policy.clamp_adaptive(median);
    Duration::from_millis(super::run::millis(d))
}

/// What the recommendation is reasoned from.
struct Facts<'a> {
    op: &'a str,
    runs: usize,
    exhausted: usize,
    failed: usize,
    permanent_share: f64,
    top_permanent: Option<&'a str>,
    top_transient: Option<&'a str>,
    recovered: usize,
    median: Option<Duration>,
    p90: Option<Duration>,
}

fn recommend(policy: &RetryPolicy, f: &Facts<'_>) -> Recommendation {
    let keep = |text: String| Recommendation {
        initial: policy.initial,
        max_attempts: policy.attempts(),
        text,
    };
    let schedule = if policy.attempts() == u32::MAX {
        format!(
            "first retry within {}, retried until it succeeds",
            human(policy.initial)
        )
    } else if policy.attempts() == 1 {
        "one attempt per run, no retry".to_string()
    } else {
        format!(
            "first retry within {}, {} attempts",
            human(policy.initial),
            policy.attempts()
        )
    };
    if f.runs == 0 {
        return keep(format!(
            "no runs of {} recorded: keep the policy ({schedule})",
            f.op
        ));
    }
    if f.failed == 0 {
        return keep(format!(
            "no failed attempt in {} runs: keep the policy ({schedule})",
            f.runs
        ));
    }
    if f.permanent_share > 0.5 {
        return keep(format!(
            "failures are mostly permanent ({}, {:.0}% of failed attempts): retrying does not \
             help; fix the cause",
            f.top_permanent.unwrap_or("unknown"),
            f.permanent_share * 100.0
        ));
    }
    let cause = f.top_transient.unwrap_or("unknown");
    let gave_up = if f.exhausted > 0 {
        format!(
            "; {} of {} runs gave up before recovering",
            f.exhausted, f.runs
        )
    } else {
        String::new()
    };
    let (Some(median), Some(p90)) = (f.median, f.p90) else {
        return keep(format!(
            "transient failures ({cause}) never recovered within a run{gave_up}: the schedule \
             ({schedule}) may be too short, or the failure not transient"
        ));
    };
    if f.recovered < MIN_RECOVERED_RUNS as usize {
        return keep(format!(
            "transient failures ({cause}) recovered in only {} runs (median {}), too few to \
             tune (at least {MIN_RECOVERED_RUNS}){gave_up}: keep the policy ({schedule})",
            f.recovered,
            human(median)
        ));
    }
    let initial = tuned_initial(policy, median);
    let (max_attempts, covered) = attempts_to_cover(policy, initial, p90);
    let clamped = if policy.clamp_adaptive(median) != median {
        let (lo, hi) = policy.adaptive_bounds();
        format!(" (the median clamped to {}..{})", human(lo), human(hi))
    } else {
        String::new()
    };
    let cover = if covered {
        format!("{max_attempts} attempts cover the p90 on average")
    } else {
        format!(
            "even {max_attempts} attempts do not cover the p90 at this schedule (cap {}): \
             raise the cap, or handle the outage outside the retry loop",
            human(policy.max)
        )
    };
    Recommendation {
        initial,
        max_attempts,
        text: format!(
            "transient failures ({cause}) recover in a median {} (p90 {}): start retries at \
             {}{clamped}; {cover}{gave_up}",
            human(median),
            human(p90),
            human(initial)
        ),
    }
}

/// The fewest attempts (at least 2, at most [`MAX_RECOMMENDED_ATTEMPTS`]) whose mean cumulative
/// wait reaches `target`, and whether that many do.
fn attempts_to_cover(policy: &RetryPolicy, initial: Duration, target: Duration) -> (u32, bool) {
    let target = target.as_secs_f64();
    let mut waited = 0.0;
    // n retries follow n failed attempts: attempt n + 1 runs after waits 0..n.
    for retries in 0..MAX_RECOMMENDED_ATTEMPTS {
        if waited >= target {
            return ((retries + 1).max(2), true);
        }
        waited += policy.nominal(retries, initial).as_secs_f64() / 2.0;
    }
    (MAX_RECOMMENDED_ATTEMPTS, waited >= target)
}

/// The label with the highest `score` among those scoring above 0 (`ranked` is sorted by
/// count, then label, so ties go to the commoner, then the first label).
fn top_of<'a>(
    ranked: &[(&'a str, usize, usize)],
    score: impl Fn(&(&'a str, usize, usize)) -> usize,
) -> Option<&'a str> {
    let mut best: Option<(&'a str, usize)> = None;
    for entry in ranked {
        let s = score(entry);
        if s > 0 && best.is_none_or(|(_, b)| s > b) {
            best = Some((entry.0, s));
        }
    }
    best.map(|(label, _)| label)
}

/// The median of sorted durations (the mean of the middle two for an even count).
fn median(sorted: &[Duration]) -> Option<Duration> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => {
            let (a, b) = (*sorted.get(n / 2 - 1)?, *sorted.get(n / 2)?);
            Some(a.checked_add(b).map_or(a / 2 + b / 2, |sum| sum / 2))
        }
    }
}

/// Nearest-rank percentile `q` (0..=1) of sorted durations.
fn nearest_rank(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize; // 1-based; saturating cast
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A duration for a sentence: `350 ms`, `4.2 s`, `2.5 min`, `1.3 h` (a trailing `.0` dropped).
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let (value, unit) = if secs < 1.0 {
        return format!("{} ms", d.as_millis());
    } else if secs < 60.0 {
        (secs, "s")
    } else if secs < 3600.0 {
        (secs / 60.0, "min")
    } else {
        (secs / 3600.0, "h")
    };
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn run(
        op: &str,
        outcome: Outcome,
        errors: &[(&str, ErrorKind)],
        rec: Option<Duration>,
    ) -> RunSummary {
        RunSummary {
            op: op.to_string(),
            started_ms: 1_700_000_000_000,
            attempts: u32::try_from(errors.len()).unwrap() + u32::from(outcome == Outcome::Success),
            outcome,
            errors: errors.iter().map(|(l, k)| (l.to_string(), *k)).collect(),
            recovered_after: rec,
            took: rec.unwrap_or(S),
            rejected: None,
        }
    }

    use ErrorKind::{Permanent as P, Transient as T};

    /// 10 runs: 7 failed on a full disk at once, 1 after a timeout, 2 succeeded at once.
    fn mostly_permanent() -> Vec<RunSummary> {
        let mut runs = vec![run("write", Outcome::Permanent, &[("disk_full", P)], None); 7];
        runs.push(run(
            "write",
            Outcome::Permanent,
            &[("timeout", T), ("disk_full", P)],
            None,
        ));
        runs.extend(vec![run("write", Outcome::Success, &[], None); 2]);
        runs
    }

    /// 12 runs: 10 recovered after 1..=10 s (one or two timeouts, one 503), 2 gave up after 5
    /// refused connections; plus another operation's runs, which must be ignored.
    fn mostly_transient() -> Vec<RunSummary> {
        let mut runs = Vec::new();
        for s in 1..=10u32 {
            let errors: &[(&str, ErrorKind)] = match s {
                1..=4 => &[("timeout", T)],
                5 => &[("http_503", T)],
                _ => &[("timeout", T), ("timeout", T)],
            };
            runs.push(run("push", Outcome::Success, errors, Some(s * S)));
        }
        for _ in 0..2 {
            runs.push(run(
                "push",
                Outcome::Exhausted,
                &[("connection_refused", T); 5],
                None,
            ));
        }
        runs.push(run("other", Outcome::Permanent, &[("disk_full", P)], None));
        runs
    }

    #[test]
    fn mostly_permanent_op() {
        let st = op_stats("write", &mostly_permanent(), &RetryPolicy::default());
        assert_eq!(st.op, "write");
        assert_eq!((st.runs, st.successes, st.rejected), (10, 2, 0));
        assert!((st.success_rate - 0.2).abs() < 1e-9);
        assert_eq!(st.failed_attempts, 9);
        assert!((st.permanent_share - 8.0 / 9.0).abs() < 1e-9);
        assert!((st.transient_share - 1.0 / 9.0).abs() < 1e-9);
        assert_eq!(
            st.commonest_errors,
            vec![("disk_full".to_string(), 8), ("timeout".to_string(), 1)]
        );
        assert_eq!((st.recovered_runs, st.median_recovery), (0, None));
        let r = &st.recommendation;
        assert_eq!(r.initial, S, "the policy's");
        assert_eq!(r.max_attempts, 5, "the policy's");
        assert_eq!(
            r.text,
            "failures are mostly permanent (disk_full, 89% of failed attempts): retrying does \
             not help; fix the cause"
        );
    }

    #[test]
    fn mostly_transient_op() {
        let policy = RetryPolicy::default();
        let st = op_stats("push", &mostly_transient(), &policy);
        assert_eq!((st.runs, st.successes), (12, 10));
        assert!((st.success_rate - 10.0 / 12.0).abs() < 1e-9);
        // 4 + 1 + 5×2 = 15 from recovered runs, 10 from the exhausted ones.
        assert_eq!(st.failed_attempts, 25);
        assert_eq!((st.transient_share, st.permanent_share), (1.0, 0.0));
        assert_eq!(
            st.commonest_errors,
            vec![
                ("timeout".to_string(), 14),
                ("connection_refused".to_string(), 10),
                ("http_503".to_string(), 1)
            ]
        );
        assert_eq!(st.recovered_runs, 10);
        assert_eq!(st.median_recovery, Some(5500 * MS), "mean of 5 s and 6 s");
        assert_eq!(st.p90_recovery, Some(9 * S), "nearest rank: the 9th of 10");
        let r = &st.recommendation;
        assert_eq!(r.initial, 5500 * MS);
        // Mean waits at 5.5 s ×2: 2.75, 5.5 (8.25 s, short of 9 s), 11 (19.25 s): 3 retries.
        assert_eq!(r.max_attempts, 4);
        assert_eq!(
            r.text,
            "transient failures (timeout) recover in a median 5.5 s (p90 9 s): start retries at \
             5.5 s; 4 attempts cover the p90 on average; 2 of 12 runs gave up before recovering"
        );
        // JSON carries milliseconds.
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["median_recovery_ms"], 5500);
        assert_eq!(json["recommendation"]["initial_ms"], 5500);
        assert_eq!(serde_json::from_value::<OpStats>(json).unwrap(), st);
    }

    #[test]
    fn clamped_and_uncovered_recommendations() {
        // Recoveries of an hour; the 10 min adaptive cap is above the 5 min schedule cap, so
        // 5 min initial; 20 attempts (19 mean waits of 2.5 min: 47.5 min) fall short.
        let runs: Vec<_> = (0..5)
            .map(|_| run("slow", Outcome::Success, &[("timeout", T)], Some(3600 * S)))
            .collect();
        let st = op_stats("slow", &runs, &RetryPolicy::default());
        let r = &st.recommendation;
        assert_eq!(r.initial, 300 * S);
        assert_eq!(r.max_attempts, MAX_RECOMMENDED_ATTEMPTS);
        assert_eq!(
            r.text,
            "transient failures (timeout) recover in a median 1 h (p90 1 h): start retries at \
             5 min (the median clamped to 100 ms..5 min); even 20 \
             attempts do not cover the p90 at this schedule (cap 5 min): raise the cap, or \
             handle the outage outside the retry loop"
        );
        // Quick recoveries: at least 2 attempts, and the 100 ms floor.
        let runs: Vec<_> = (0..6)
            .map(|_| {
                run(
                    "fast",
                    Outcome::Success,
                    &[("would_block", T)],
                    Some(20 * MS),
                )
            })
            .collect();
        let st = op_stats("fast", &runs, &RetryPolicy::default());
        assert_eq!(st.recommendation.initial, 100 * MS);
        assert_eq!(st.recommendation.max_attempts, 2);
    }

    #[test]
    fn too_little_to_tune() {
        let policy = RetryPolicy::default();
        let st = op_stats("none", &[], &policy);
        assert_eq!((st.runs, st.success_rate, st.failed_attempts), (0, 0.0, 0));
        assert_eq!(
            st.recommendation,
            Recommendation {
                initial: S,
                max_attempts: 5,
                text: "no runs of none recorded: keep the policy (first retry within 1 s, 5 \
                       attempts)"
                    .to_string()
            }
        );
        let clean = vec![run("ok", Outcome::Success, &[], None); 3];
        let st = op_stats("ok", &clean, &policy);
        assert_eq!(st.success_rate, 1.0);
        assert_eq!((st.transient_share, st.permanent_share), (0.0, 0.0));
        assert!(st
            .recommendation
            .text
            .starts_with("no failed attempt in 3 runs"));

        let few: Vec<_> = (1..=3)
            .map(|s| run("few", Outcome::Success, &[("timeout", T)], Some(s * S)))
            .collect();
        let st = op_stats("few", &few, &policy);
        assert_eq!(st.median_recovery, Some(2 * S));
        assert_eq!(
            (st.recommendation.initial, st.recommendation.max_attempts),
            (S, 5)
        );
        assert_eq!(
            st.recommendation.text,
            "transient failures (timeout) recovered in only 3 runs (median 2 s), too few to \
             tune (at least 5): keep the policy (first retry within 1 s, 5 attempts)"
        );
        // A policy that retries until it succeeds (alert deliveries) says so.
        let unbounded = RetryPolicy {
            max_attempts: u32::MAX,
            ..policy
        };
        let st = op_stats("few", &few, &unbounded);
        assert!(
            st.recommendation
                .text
                .ends_with("keep the policy (first retry within 1 s, retried until it succeeds)"),
            "{}",
            st.recommendation.text
        );
        // One attempt per run (heal actions) is not a schedule of retries.
        let single = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        let st = op_stats("never", &[], &single);
        assert_eq!(
            st.recommendation.text,
            "no runs of never recorded: keep the policy (one attempt per run, no retry)"
        );

        let never = vec![run("never", Outcome::Exhausted, &[("timeout", T); 5], None); 4];
        let st = op_stats("never", &never, &policy);
        assert_eq!(st.success_rate, 0.0);
        assert!(
            st.recommendation.text.starts_with(
                "transient failures (timeout) never recovered within a run; 4 of 4 runs gave up"
            ),
            "{}",
            st.recommendation.text
        );
    }

    #[test]
    fn rejected_runs_are_counted_but_say_nothing_about_recovery() {
        let mut runs = vec![run("g", Outcome::Rejected, &[], None); 3];
        runs.push(run("g", Outcome::Success, &[("timeout", T)], Some(S)));
        let st = op_stats("g", &runs, &RetryPolicy::default());
        assert_eq!((st.runs, st.rejected, st.successes), (4, 3, 1));
        assert_eq!(st.success_rate, 0.25);
        assert_eq!(st.failed_attempts, 1);
        assert_eq!(st.recovered_runs, 1);
    }

    #[test]
    fn adaptive_initial_is_the_clamped_median_with_enough_data() {
        let adaptive = RetryPolicy {
            adaptive: true,
            ..RetryPolicy::default()
        };
        let st = op_stats("push", &mostly_transient(), &adaptive);
        assert_eq!(adaptive_initial(&adaptive, &st), 5500 * MS);
        // Not adaptive: the policy's initial, whatever the data.
        assert_eq!(adaptive_initial(&RetryPolicy::default(), &st), S);
        // Clamped both ways.
        let tight = RetryPolicy {
            adaptive_min: 6 * S,
            adaptive_max: 8 * S,
            ..adaptive
        };
        assert_eq!(adaptive_initial(&tight, &st), 6 * S);
        let low = RetryPolicy {
            adaptive_max: 2 * S,
            ..adaptive
        };
        assert_eq!(adaptive_initial(&low, &st), 2 * S);
        // Fewer than 5 recovered runs: the policy's initial.
        let few: Vec<_> = (1..=4)
            .map(|s| run("few", Outcome::Success, &[("timeout", T)], Some(s * 10 * S)))
            .collect();
        let st = op_stats("few", &few, &adaptive);
        assert_eq!(st.recovered_runs, 4);
        assert_eq!(adaptive_initial(&adaptive, &st), S);
    }

    #[test]
    fn medians_percentiles_and_words() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3 * S]), Some(3 * S));
        assert_eq!(median(&[S, 2 * S, 10 * S]), Some(2 * S));
        assert_eq!(median(&[S, 2 * S]), Some(1500 * MS));
        let huge = median(&[Duration::MAX, Duration::MAX]).unwrap();
        assert!(
            huge >= Duration::MAX - Duration::from_nanos(1),
            "no overflow"
        );
        let ten: Vec<_> = (1..=10).map(|s| s * S).collect();
        assert_eq!(nearest_rank(&ten, 0.9), Some(9 * S));
        assert_eq!(nearest_rank(&ten, 0.0), Some(S));
        assert_eq!(nearest_rank(&ten, 1.0), Some(10 * S));
        assert_eq!(nearest_rank(&[], 0.9), None);
        assert_eq!(human(350 * MS), "350 ms");
        assert_eq!(human(4200 * MS), "4.2 s");
        assert_eq!(human(4 * S), "4 s");
        assert_eq!(human(150 * S), "2.5 min");
        assert_eq!(human(4680 * S), "1.3 h");
    }
}
