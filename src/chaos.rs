//! The chaos monkey's pure parts, shared by the CLI (argument checks) and the daemon (the run,
//! `src/daemon/chaos.rs`): the limits, `--every MIN..MAX`, the seeded sequence of intervals
//! and choices, which actors may be killed, and when a killed one counts as back.
//!
//! Targets are actors of the restart tree strictly under the run's PATH: workers and nested
//! supervisors, never PATH itself (so never the root). The store and the control server are
//! not in the tree, so they are never targets: chaos tests the tree's recovery, not the
//! daemon's own plumbing, whose failure ends the daemon by design.

use std::time::Duration;

use metasystem_actors::{NodeSnapshot, NodeState};

/// `--for` may not be longer than this.
pub const MAX_FOR: Duration = Duration::from_secs(24 * 3600);
/// The shortest interval between kills `--every` accepts.
pub const MIN_EVERY: Duration = Duration::from_millis(1);
/// `--every` when not given.
pub const DEFAULT_EVERY: Every = Every {
    min: Duration::from_secs(5),
    max: Duration::from_secs(30),
};
/// A recovery is watched for at most this long after its kill; after that it is reported as
/// not recovered.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// How often the tree is looked at while recoveries are being measured.
pub const WATCH_EVERY: Duration = Duration::from_millis(5);
/// A run ends after this many kills (memory and report size stay bounded).
pub const MAX_KILLS: usize = 100_000;
/// A report (an answer, or the report event) lists at most this many kills; the counts and the
/// median/max cover them all.
pub const KILLS_SHOWN: usize = 1000;

/// The range a step's wait is drawn from, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub min: Duration,
    pub max: Duration,
}

impl Every {
    /// Parses `MIN..MAX` (humantime durations: `200ms..1s`, `5s..30s`) and checks it.
    pub fn parse(text: &str) -> Result<Every, String> {
        let Some((min, max)) = text.split_once("..") else {
            return Err(format!(
                "{text:?} is not MIN..MAX (two durations such as 200ms..1s)"
            ));
        };
        let parse = |end: &str, which: &str| {
            humantime::parse_duration(end.trim())
                .map_err(|e| format!("{text:?}: the {which} {:?} is not a duration: {e}", end))
        };
        Every::new(parse(min, "minimum")?, parse(max, "maximum")?)
    }

    /// Checks the range: both ends at least 1ms, MIN not above MAX, MAX at most 24h.
    pub fn new(min: Duration, max: Duration) -> Result<Every, String> {
        if min < MIN_EVERY {
            return Err(format!(
                "the minimum interval {} must be at least {}",
                show(min),
                show(MIN_EVERY)
            ));
        }
        if min > max {
            return Err(format!(
                "the minimum interval {} is above the maximum {}",
                show(min),
                show(max)
            ));
        }
        if max > MAX_FOR {
            return Err(format!(
                "the maximum interval {} is over {}",
                show(max),
                show(MAX_FOR)
            ));
        }
        Ok(Every { min, max })
    }

    /// From the protocol's milliseconds.
    pub fn from_ms(min_ms: u64, max_ms: u64) -> Result<Every, String> {
        Every::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
    }

    pub fn min_ms(&self) -> u64 {
        ms(self.min)
    }

    pub fn max_ms(&self) -> u64 {
        ms(self.max)
    }
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", show(self.min), show(self.max))
    }
}

/// Checks `--for`: more than zero, at most 24h.
pub fn check_for(d: Duration) -> Result<Duration, String> {
    if d < Duration::from_millis(1) {
        return Err("the run's duration must be more than zero (e.g. 2m)".into());
    }
    if d > MAX_FOR {
        return Err(format!(
            "the run's duration {} is over {}",
            show(d),
            show(MAX_FOR)
        ));
    }
    Ok(d)
}

/// `--for` as clap reads it.
pub fn parse_for(text: &str) -> Result<Duration, String> {
    check_for(humantime::parse_duration(text).map_err(|e| e.to_string())?)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration for people: whole hours as hours (`24h`, not `1day`), else humantime's.
fn show(d: Duration) -> String {
    if d.as_secs() >= 3600 && d.as_secs() % 3600 == 0 && d.subsec_nanos() == 0 {
        return format!("{}h", d.as_secs() / 3600);
    }
    humantime::format_duration(d).to_string()
}

/// The seeded source of a run's choices: the same seed gives the same intervals and, over
/// the same candidates at each step, the same targets.
pub struct Monkey {
    rng: fastrand::Rng,
    every: Every,
}

impl Monkey {
    pub fn new(seed: u64, every: Every) -> Self {
        Monkey {
            rng: fastrand::Rng::with_seed(seed),
            every,
        }
    }

    /// The wait before the next kill, in [MIN, MAX] (millisecond steps).
    pub fn interval(&mut self) -> Duration {
        Duration::from_millis(self.rng.u64(self.every.min_ms()..=self.every.max_ms()))
    }

    /// Which of `n` candidates to kill; `None` when there are none (no draw is made then).
    pub fn pick(&mut self, n: usize) -> Option<usize> {
        (n > 0).then(|| self.rng.usize(..n))
    }
}

/// The steps a run with `seed` would take over a tree whose candidates never change: each
/// step's wait and target. (What a real run kills also depends on what is running at each
/// step.)
pub fn sequence(
    seed: u64,
    every: Every,
    candidates: &[&str],
    steps: usize,
) -> Vec<(Duration, Option<String>)> {
    let mut monkey = Monkey::new(seed, every);
    (0..steps)
        .map(|_| {
            let wait = monkey.interval();
            let target = monkey
                .pick(candidates.len())
                .map(|i| candidates[i].to_string());
            (wait, target)
        })
        .collect()
}

/// The actors a step may kill: running, strictly under `path`, in the snapshot's order
/// (depth-first, start order), so a seed picks the same way on the same tree.
pub fn candidates<'a>(nodes: &'a [NodeSnapshot], path: &str) -> Vec<&'a NodeSnapshot> {
    nodes
        .iter()
        .filter(|n| under(&n.path, path) && n.state == NodeState::Running)
        .collect()
}

/// Whether `path` is strictly below `ancestor`.
pub fn under(path: &str, ancestor: &str) -> bool {
    path.len() > ancestor.len()
        && path.starts_with(ancestor)
        && path.as_bytes()[ancestor.len()] == b'/'
}

/// What a look at the tree says about a killed actor.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Running again, started this long after the kill.
    Back(Duration),
    /// Not yet (exiting, restarting, its supervisor restarting or busy).
    Waiting,
    /// It is gone from a running supervisor (a reload removed it; a temporary child is
    /// forgotten once it exits).
    Removed,
    /// Its supervisor will not restart it: stopped, or failed with this error.
    Down(String),
}

/// Judges a killed actor at `path` in a snapshot taken from `started` to `ended` after its
/// kill. It is back when it runs an incarnation that started after the kill: its uptime is
/// shorter than the time from the kill to the start of the snapshot (the supervisor measured
/// it during the snapshot). This holds even when its supervisor was restarted meanwhile,
/// which starts incarnations from 1 again. The time to recovery is counted to the end of the
/// snapshot minus the uptime, so it is never under the truth by more than the snapshot took.
pub fn judge(nodes: &[NodeSnapshot], path: &str, started: Duration, ended: Duration) -> Seen {
    let Some(node) = nodes.iter().find(|n| n.path == path) else {
        return absent(nodes, path);
    };
    match node.state {
        NodeState::Running => match node.uptime {
            Some(up) if up < started => Seen::Back(ended.saturating_sub(up)),
            _ => Seen::Waiting,
        },
        NodeState::Starting | NodeState::Restarting => Seen::Waiting,
        NodeState::Stopped => Seen::Down("stopped: its supervisor does not restart it".into()),
        NodeState::Failed => Seen::Down(format!(
            "failed: {}",
            node.error.as_deref().unwrap_or("its start failed")
        )),
    }
}

/// `path` is not in the snapshot: removed if its nearest ancestor that is there runs and
/// answered (it would have listed it); otherwise an ancestor is restarting or busy, and its
/// children are simply not listed yet.
fn absent(nodes: &[NodeSnapshot], path: &str) -> Seen {
    let mut at = path;
    while let Some((parent, _)) = at.rsplit_once('/') {
        if let Some(node) = nodes.iter().find(|n| n.path == parent) {
            let answered = node.state == NodeState::Running && !node.unresponsive;
            return if answered {
                Seen::Removed
            } else {
                Seen::Waiting
            };
        }
        at = parent;
    }
    Seen::Waiting
}

/// The median of `values` (sorted in place); the mean of the middle two for an even count.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use metasystem_actors::Restart;

    fn every(min_ms: u64, max_ms: u64) -> Every {
        match Every::from_ms(min_ms, max_ms) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let candidates = ["root/a", "root/b", "root/grp", "root/grp/x", "root/grp/y"];
        let e = every(200, 1000);
        let first = sequence(7, e, &candidates, 200);
        assert_eq!(first, sequence(7, e, &candidates, 200));
        assert_ne!(first, sequence(8, e, &candidates, 200));
        for (wait, target) in &first {
            assert!(
                (Duration::from_millis(200)..=Duration::from_secs(1)).contains(wait),
                "{wait:?}"
            );
            assert!(target.as_deref().is_some_and(|t| candidates.contains(&t)));
        }
        // Every candidate gets its turn, and the waits spread over the range.
        for c in candidates {
            assert!(first.iter().any(|(_, t)| t.as_deref() == Some(c)), "{c}");
        }
        let waits: std::collections::BTreeSet<_> = first.iter().map(|(w, _)| *w).collect();
        assert!(waits.len() > 100, "{}", waits.len());
        // A fixed interval is that interval.
        assert!(sequence(1, every(5, 5), &candidates, 10)
            .iter()
            .all(|(w, _)| *w == Duration::from_millis(5)));
        // Nothing to pick: no target, and the waits are unchanged.
        let empty = sequence(7, e, &[], 5);
        assert!(empty.iter().all(|(_, t)| t.is_none()));
    }

    #[test]
    fn every_is_checked() {
        assert_eq!(
            Every::parse("200ms..1s"),
            Ok(Every {
                min: Duration::from_millis(200),
                max: Duration::from_secs(1)
            })
        );
        assert_eq!(Every::parse("5s..30s"), Ok(DEFAULT_EVERY));
        assert_eq!(
            Every::parse("1s..1s").map(|e| e.min),
            Ok(Duration::from_secs(1))
        );
        for (bad, says) in [
            ("1s", "is not MIN..MAX"),
            ("1s-2s", "is not MIN..MAX"),
            ("x..1s", "minimum \"x\" is not a duration"),
            ("1s..", "maximum \"\" is not a duration"),
            ("2s..1s", "above the maximum"),
            ("0s..1s", "at least 1ms"),
            ("0s..0s", "at least 1ms"),
            ("1s..25h", "25h is over 24h"),
        ] {
            match Every::parse(bad) {
                Ok(e) => panic!("{bad} parsed as {e:?}"),
                Err(e) => assert!(e.contains(says), "{bad}: {e}"),
            }
        }
        assert!(check_for(Duration::ZERO).is_err());
        assert!(check_for(MAX_FOR).is_ok());
        assert!(check_for(MAX_FOR + Duration::from_secs(1)).is_err_and(|e| e.contains("over 24h")));
        assert!(parse_for("2m").is_ok());
        assert!(parse_for("soon").is_err());
    }

    fn node(path: &str, state: NodeState, uptime_ms: Option<u64>) -> NodeSnapshot {
        NodeSnapshot {
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            depth: path.matches('/').count(),
            kind: "heartbeat".into(),
            restart: Restart::Permanent,
            state,
            restarts: 0,
            incarnation: 1,
            last_exit: None,
            uptime: uptime_ms.map(Duration::from_millis),
            restart_in: None,
            error: None,
            strategy: None,
            unresponsive: false,
        }
    }

    #[test]
    fn candidates_are_running_and_strictly_under_the_path() {
        let nodes = [
            node("root", NodeState::Running, Some(1000)),
            node("root/a", NodeState::Running, Some(10)),
            node("root/ab", NodeState::Running, Some(10)),
            node("root/b", NodeState::Restarting, None),
            node("root/grp", NodeState::Running, Some(10)),
            node("root/grp/x", NodeState::Running, Some(10)),
            node("root/grp/y", NodeState::Stopped, None),
        ];
        let paths = |under: &str| -> Vec<String> {
            candidates(&nodes, under)
                .iter()
                .map(|n| n.path.clone())
                .collect()
        };
        assert_eq!(
            paths("root"),
            ["root/a", "root/ab", "root/grp", "root/grp/x"]
        );
        assert_eq!(paths("root/grp"), ["root/grp/x"]);
        assert_eq!(paths("root/a"), Vec::<String>::new());
    }

    #[test]
    fn a_kill_is_judged_by_when_the_running_incarnation_started() {
        let ms = Duration::from_millis;
        let tree = |x: NodeSnapshot| vec![node("root", NodeState::Running, Some(9000)), x];
        // Still the old incarnation (up longer than since the kill).
        let old = tree(node("root/x", NodeState::Running, Some(5000)));
        assert_eq!(judge(&old, "root/x", ms(10), ms(11)), Seen::Waiting);
        // A new one, started 2 ms before the snapshot ended: back 9 ms after the kill.
        let new = tree(node("root/x", NodeState::Running, Some(2)));
        assert_eq!(judge(&new, "root/x", ms(10), ms(11)), Seen::Back(ms(9)));
        let restarting = tree(node("root/x", NodeState::Restarting, None));
        assert_eq!(judge(&restarting, "root/x", ms(10), ms(11)), Seen::Waiting);
        let stopped = tree(node("root/x", NodeState::Stopped, None));
        assert!(matches!(
            judge(&stopped, "root/x", ms(10), ms(11)),
            Seen::Down(_)
        ));
        // Gone from a running supervisor: removed.
        let gone = tree(node("root/y", NodeState::Running, Some(1)));
        assert_eq!(judge(&gone, "root/x", ms(10), ms(11)), Seen::Removed);
        // Its supervisor is restarting (its children are not listed): not yet.
        let parent_restarting = tree(node("root/grp", NodeState::Restarting, None));
        assert_eq!(
            judge(&parent_restarting, "root/grp/x", ms(10), ms(11)),
            Seen::Waiting
        );
        let mut busy = tree(node("root/grp", NodeState::Running, Some(100)));
        busy[1].unresponsive = true;
        assert_eq!(judge(&busy, "root/grp/x", ms(10), ms(11)), Seen::Waiting);
        // The supervisor itself is gone: so is what was under it.
        assert_eq!(judge(&gone, "root/grp/x", ms(10), ms(11)), Seen::Removed);
        // No tree at all (shutting down): not yet, the bound decides.
        assert_eq!(judge(&[], "root/x", ms(10), ms(11)), Seen::Waiting);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
