//! Exit reasons and the restart decision (OTP's rules), as pure functions.

use std::fmt;
use std::time::Duration;

use ractor::ActorProcessingErr;

use crate::supervision::spec::Restart;

/// Why an actor stopped, classified the way OTP does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// It stopped itself with no reason (`myself.stop(None)`) or with `"normal"`.
    Normal,
    /// It was asked to stop (`"shutdown"` or `"shutdown: ..."`, or drained).
    Shutdown,
    /// It returned an error or panicked in a handler, or stopped with any other reason.
    Failed(String),
    /// It was killed (brutal_kill, a shutdown timeout, its task cancelled, chaos injection of a
    /// kill by something other than its supervisor).
    Killed,
    /// It is a supervisor that gave up: more restarts than its intensity allows in its period.
    MaxRestartIntensity,
    /// Not known: it exited on its own while its supervisor was stopping it, and the supervisor
    /// ended before it could read why (ractor queues the reason for the supervisor, which no
    /// longer reads its queue). Counted as abnormal, since it may have been a crash.
    Unknown,
}

impl ExitReason {
    /// Abnormal exits are the ones transient children are restarted after.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }

    /// A short tag: normal, shutdown, failed, killed, max_restart_intensity, unknown.
    pub fn tag(&self) -> &'static str {
        match self {
            ExitReason::Normal => "normal",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Failed(_) => "failed",
            ExitReason::Killed => "killed",
            ExitReason::MaxRestartIntensity => "max_restart_intensity",
            ExitReason::Unknown => "unknown",
        }
    }

    /// Classifies ractor's `ActorTerminated` reason string.
    pub fn from_stop_reason(reason: Option<&str>) -> ExitReason {
        match reason {
            None | Some("normal") => ExitReason::Normal,
            Some("shutdown") | Some("Drained") => ExitReason::Shutdown,
            Some(r) if r.starts_with("shutdown:") => ExitReason::Shutdown,
            // ractor's words for a Kill signal and for a cancelled actor task.
            Some("killed") | Some("actor_task_cancelled") => ExitReason::Killed,
            Some(other) => ExitReason::Failed(other.to_string()),
        }
    }

    /// Classifies ractor's `ActorFailed` error.
    pub fn from_error(err: &ActorProcessingErr) -> ExitReason {
        if err.downcast_ref::<MaxRestartIntensity>().is_some() {
            ExitReason::MaxRestartIntensity
        } else {
            ExitReason::Failed(err.to_string())
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Failed(msg) => write!(f, "failed: {msg}"),
            other => f.write_str(other.tag()),
        }
    }
}

/// OTP's restart matrix: does a child of this restart type get restarted after this exit?
pub fn should_restart(restart: Restart, reason: &ExitReason) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Transient => reason.is_abnormal(),
        Restart::Temporary => false,
    }
}

/// The error a supervisor fails with when it gives up. Its parent sees
/// [`ExitReason::MaxRestartIntensity`], an abnormal exit, and applies its own strategy
/// (escalation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxRestartIntensity {
    pub path: String,
    pub intensity: u32,
    pub period: Duration,
}

impl fmt::Display for MaxRestartIntensity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: reached max restart intensity (more than {} restarts in {:?})",
            self.path, self.intensity, self.period
        )
    }
}

impl std::error::Error for MaxRestartIntensity {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_are_classified() {
        use ExitReason::*;
        assert_eq!(ExitReason::from_stop_reason(None), Normal);
        assert_eq!(ExitReason::from_stop_reason(Some("normal")), Normal);
        assert_eq!(ExitReason::from_stop_reason(Some("shutdown")), Shutdown);
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown: reload")),
            Shutdown
        );
        assert_eq!(ExitReason::from_stop_reason(Some("Drained")), Shutdown);
        assert_eq!(ExitReason::from_stop_reason(Some("killed")), Killed);
        assert_eq!(
            ExitReason::from_stop_reason(Some("actor_task_cancelled")),
            Killed
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("disk gone")),
            Failed("disk gone".into())
        );
    }

    #[test]
    fn errors_are_classified() {
        let gave_up: ActorProcessingErr = Box::new(MaxRestartIntensity {
            path: "root/a".into(),
            intensity: 1,
            period: Duration::from_secs(5),
        });
        assert_eq!(
            ExitReason::from_error(&gave_up),
            ExitReason::MaxRestartIntensity
        );
        let boom: ActorProcessingErr = From::from("boom");
        assert_eq!(
            ExitReason::from_error(&boom),
            ExitReason::Failed("boom".into())
        );
    }

    /// OTP's restart matrix, all nine cells.
    #[test]
    fn restart_matrix() {
        use Restart::*;
        let normal = ExitReason::Normal;
        let shutdown = ExitReason::Shutdown;
        let abnormal = ExitReason::Failed("x".into());
        let table = [
            (Permanent, &normal, true),
            (Permanent, &shutdown, true),
            (Permanent, &abnormal, true),
            (Transient, &normal, false),
            (Transient, &shutdown, false),
            (Transient, &abnormal, true),
            (Temporary, &normal, false),
            (Temporary, &shutdown, false),
            (Temporary, &abnormal, false),
        ];
        for (restart, reason, expected) in table {
            assert_eq!(
                should_restart(restart, reason),
                expected,
                "{restart} {reason}"
            );
        }
        assert!(should_restart(Transient, &ExitReason::Killed));
        assert!(should_restart(Transient, &ExitReason::MaxRestartIntensity));
        assert!(should_restart(Transient, &ExitReason::Unknown));
        assert_eq!(ExitReason::Unknown.to_string(), "unknown");
    }
}
