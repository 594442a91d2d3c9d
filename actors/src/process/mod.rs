//! Managed processes: an external program supervised like any actor of the tree (restart
//! type, backoff, intensity), as supervisord supervises programs but with the tree's policy.
//!
//! - [`spawn`]: the command (no shell), its credentials, its process group, the parent-death
//!   signal; every fork happens on one long-lived thread (see there why);
//! - [`pump`]: a child's stdout/stderr to its rotating log files, on a thread of its own,
//!   with bounded memory, and to the followers of `logs -f`;
//! - [`users`]: user and group names to ids (read when the config is, on the blocking pool);
//! - [`leftovers`]: what a command probe or heal command leaves behind (`setsid` included),
//!   found by a token in its environment and killed with its run, or at the next start;
//! - [`actor`]: the `process` actor: one incarnation is one run of the program;
//! - here: the spec, the judgement of an exit (pure), and [`Processes`], the shared registry
//!   of statuses and output channels by tree path.

pub mod actor;
pub mod leftovers;
pub mod pump;
pub mod spawn;
pub mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::logfile::LogSpec;

pub use actor::{ProcessActor, ProcessArgs, ProcessMessage, ProcessStatus};

/// Who a process runs as (resolved from names when the config is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user's name, for `USER`/`LOGNAME` and messages.
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub gid: u32,
    /// Supplementary groups (the user's, from the group database).
    pub groups: Vec<u32>,
    /// The user's home, for `HOME`.
    pub home: Option<PathBuf>,
}

/// How a process's output is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// stdout, and stderr too unless [`OutputSpec::stderr`] is set.
    pub stdout: LogSpec,
    /// stderr in a file of its own (`stderr = "separate"`); `None`: merged into stdout's file
    /// (one pipe for both, so their order is kept).
    pub stderr: Option<LogSpec>,
}

/// One managed process: what to run and how to stop and judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program: a path, or a name looked up in `PATH` (no shell is involved).
    pub command: String,
    pub args: Vec<String>,
    /// Set in its environment, on top of the daemon's.
    pub env: Vec<(String, String)>,
    /// Its working directory (the daemon's when `None`).
    pub cwd: Option<PathBuf>,
    /// Who it runs as (only when the daemon runs as root); `None`: as the daemon.
    pub credentials: Option<Credentials>,
    /// The signal that asks it to stop (sent to its whole process group).
    pub stop_signal: i32,
    /// How long it has to stop after `stop_signal`; then its group is sent SIGKILL.
    pub stop_timeout: Duration,
    /// A run shorter than this is a failed start, whatever its exit code.
    pub healthy_after: Duration,
    /// Exit codes that are a normal exit (a transient process is not restarted after one).
    pub normal_exit_codes: Vec<i32>,
    pub output: OutputSpec,
}

/// The log files of the process at tree path `path` (`root/web` →
/// `STATE/logs/root/web/output.log` and `stderr.log`): one folder per process, so no two
/// paths share a file.
pub fn log_paths(state_dir: &Path, path: &str) -> (PathBuf, PathBuf) {
    let mut dir = state_dir.join("logs");
    for part in path.split('/') {
        dir.push(part);
    }
    (dir.join("output.log"), dir.join("stderr.log"))
}

/// How a run of a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitInfo {
    pub pid: u32,
    /// Its exit code, when it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it ran.
    pub uptime_ms: u64,
    /// When it ended (Unix milliseconds).
    pub at_ms: i64,
}

/// What an exit means for the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// A normal exit (a transient process is not restarted); otherwise a failure.
    pub normal: bool,
    /// Whether it ended before `healthy_after` (a failed start).
    pub failed_start: bool,
    /// For people and the exit reason: "exited with status 1 after 2.1s".
    pub message: String,
}

/// A signal's name: `SIGTERM`, or `signal 42`.
pub fn signal_name(signal: i32) -> String {
    SIGNALS.iter().find(|(_, n)| *n == signal).map_or_else(
        || format!("signal {signal}"),
        |(name, _)| format!("SIG{name}"),
    )
}

/// The default `stop_signal`.
pub const SIGTERM: i32 = libc::SIGTERM;

/// Signals by name, as `stop_signal` and `signal` accept them (with or without `SIG`).
pub const SIGNALS: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("HUP", libc::SIGHUP),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("ABRT", libc::SIGABRT),
    ("ALRM", libc::SIGALRM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("WINCH", libc::SIGWINCH),
    ("SEGV", libc::SIGSEGV),
    ("PIPE", libc::SIGPIPE),
];

/// `"TERM"`, `"SIGTERM"`, `"term"` → 15.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

fn short(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// Judges an exit (pure): a run shorter than `healthy_after` is a failed start; an exit code
/// in `normal_codes` after that is normal; a signal or any other code is a failure. An exit
/// the daemon asked for (`stopping`) is never judged: it is a shutdown.
pub fn judge(exit: &ExitInfo, healthy_after: Duration, normal_codes: &[i32]) -> Verdict {
    let uptime = Duration::from_millis(exit.uptime_ms);
    let how = match (exit.code, exit.signal) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        (None, None) => "ended (its status could not be read)".to_string(),
    };
    if uptime < healthy_after {
        return Verdict {
            normal: false,
            failed_start: true,
            message: format!(
                "failed start: {how} after {}, before healthy_after ({})",
                short(uptime),
                short(healthy_after)
            ),
        };
    }
    let normal = exit.code.is_some_and(|c| normal_codes.contains(&c));
    Verdict {
        normal,
        failed_start: false,
        message: format!("{how} after {}", short(uptime)),
    }
}

/// One piece of a process's output, for `logs -f`.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Whether it came from stderr in a separate file (`false`: stdout, or both merged).
    pub stderr: bool,
    pub data: Arc<[u8]>,
}

/// Chunks kept for a follower that falls behind (each at most the pump's 64 KiB buffer, so
/// at most 2 MiB per process while someone follows it; past that the oldest are dropped and
/// the follower is told).
const FOLLOW_CHUNKS: usize = 32;

/// One process's entry in the registry: it outlives its incarnations, so a follower keeps
/// following across restarts.
pub struct Entry {
    /// Output as it is read, to followers (`logs -f`); nothing is copied when none listens.
    pub output: broadcast::Sender<Chunk>,
    /// The latest status its actor published.
    pub status: Mutex<ProcessStatus>,
    /// When it was restarted (Unix ms of each start after the first), the latest
    /// [`RESTARTS_KEPT`]: what the `process` probe check counts.
    pub restarts: Mutex<std::collections::VecDeque<i64>>,
    /// Its log files' writers, shared by the pumps of its runs (made again when a reload
    /// changes how they are written).
    pub log: Mutex<Option<(OutputSpec, Logs)>>,
}

/// The writers of one process's output: stdout's (or both), and stderr's when separate.
#[derive(Clone)]
pub struct Logs {
    pub stdout: pump::SharedLog,
    pub stderr: Option<pump::SharedLog>,
}

impl Entry {
    /// The writers for `spec`: the ones earlier runs used when it is the same.
    pub fn logs(&self, spec: &OutputSpec) -> Logs {
        let mut slot = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((current, logs)) = slot.as_ref() {
            if current == spec {
                return logs.clone();
            }
        }
        let logs = Logs {
            stdout: pump::shared(spec.stdout.clone()),
            stderr: spec.stderr.clone().map(pump::shared),
        };
        *slot = Some((spec.clone(), logs.clone()));
        logs
    }
}

/// Restart times kept per process.
pub const RESTARTS_KEPT: usize = 256;

/// The managed processes by tree path: their status and their output channels. Shared by the
/// actors (which publish), the daemon (`logs`, `status`) and the `process` probe check.
#[derive(Clone, Default)]
pub struct Processes {
    inner: Arc<Mutex<HashMap<String, Arc<Entry>>>>,
}

impl Processes {
    /// The entry of `path`, made on first use.
    pub fn entry(&self, path: &str) -> Arc<Entry> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(path.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    output: broadcast::channel(FOLLOW_CHUNKS).0,
                    status: Mutex::new(ProcessStatus::default()),
                    restarts: Mutex::new(std::collections::VecDeque::new()),
                    log: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The latest status of the process at `path`, if it ever started.
    pub fn status(&self, path: &str) -> Option<ProcessStatus> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(path)
            .map(|e| e.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// The latest status of the process at `path` and its recent restart times.
    pub fn view(&self, path: &str) -> (Option<ProcessStatus>, Vec<i64>) {
        let entry = {
            let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            map.get(path).cloned()
        };
        match entry {
            Some(e) => (
                Some(e.status.lock().unwrap_or_else(|e| e.into_inner()).clone()),
                e.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect(),
            ),
            None => (None, Vec::new()),
        }
    }

    /// A follower of the output of `path` (from now on).
    pub fn follow(&self, path: &str) -> broadcast::Receiver<Chunk> {
        self.entry(path).output.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>, signal: Option<i32>, uptime_ms: u64) -> ExitInfo {
        ExitInfo {
            pid: 1,
            code,
            signal,
            uptime_ms,
            at_ms: 0,
        }
    }

    #[test]
    fn exits_are_judged() {
        let h = Duration::from_secs(1);
        let v = judge(&exit(Some(0), None, 5000), h, &[0]);
        assert!(v.normal && !v.failed_start);
        assert_eq!(v.message, "exited with status 0 after 5.0s");
        let v = judge(&exit(Some(2), None, 5000), h, &[0, 2]);
        assert!(v.normal);
        let v = judge(&exit(Some(1), None, 5000), h, &[0]);
        assert!(!v.normal && !v.failed_start);
        let v = judge(&exit(None, Some(9), 90_000), h, &[0]);
        assert!(!v.normal);
        assert_eq!(v.message, "killed by SIGKILL after 1m 30s");
        // Too soon: a failed start, even with a normal code.
        let v = judge(&exit(Some(0), None, 120), h, &[0]);
        assert!(!v.normal && v.failed_start);
        assert_eq!(
            v.message,
            "failed start: exited with status 0 after 120ms, before healthy_after (1.0s)"
        );
    }

    #[test]
    fn signals_parse_both_ways() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigint"), Some(libc::SIGINT));
        assert_eq!(parse_signal("SIGHUP"), Some(libc::SIGHUP));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(42), "signal 42");
    }

    #[test]
    fn log_paths_follow_the_tree() {
        let (out, err) = log_paths(Path::new("/s"), "root/web");
        assert_eq!(out, Path::new("/s/logs/root/web/output.log"));
        assert_eq!(err, Path::new("/s/logs/root/web/stderr.log"));
    }
}
