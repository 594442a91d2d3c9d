//! Typed specifications of a restart tree: what the engine receives. The daemon builds these from
//! `supervision.toml`; the engine never sees TOML.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

use crate::supervision::backoff::Backoff;
use crate::supervision::directory::Directory;
use crate::supervision::event::EventSink;

/// How a supervisor reacts when one child must be restarted (OTP's restart strategies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the child that exited.
    OneForOne,
    /// Stop every other child (reverse start order), then restart all of them in start order.
    OneForAll,
    /// Stop the children started after the one that exited, then restart it and them.
    RestForOne,
    /// One-for-one for children that are added and removed at run time, possibly many of them
    /// (OTP's `simple_one_for_one` without the single-template restriction). Children are
    /// shut down concurrently rather than in reverse order, as OTP does for that strategy.
    Dynamic,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
            Strategy::Dynamic => "dynamic",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a child is restarted (OTP's restart types).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (anything but `normal` or `shutdown`).
    Transient,
    /// Never restarted, not even as a bystander of a one_for_all or rest_for_one restart, and
    /// its exits never count toward restart intensity. Forgotten once it exits.
    Temporary,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child is stopped by its supervisor (OTP's shutdown values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once: the actor's current handler is abandoned at its next await point and
    /// `post_stop` does not run.
    BrutalKill,
    /// Asked to stop (it finishes its current message and runs `post_stop`); killed if it has
    /// not stopped after this long.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes. The default for supervisors.
    Infinity,
}

impl Shutdown {
    /// OTP's default for workers.
    pub const WORKER_DEFAULT: Shutdown = Shutdown::Timeout(Duration::from_secs(5));
}

/// A worker's default start timeout: a `pre_start` that has not returned after this long is
/// taken for wedged.
pub const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shutdown::BrutalKill => f.write_str("brutal_kill"),
            Shutdown::Timeout(d) => write!(f, "{}ms", d.as_millis()),
            Shutdown::Infinity => f.write_str("infinity"),
        }
    }
}

/// What a child's start function receives.
#[derive(Clone)]
pub struct ChildCtx {
    /// The supervisor the new actor must be linked to (`spawn_linked(.., ctx.supervisor)`);
    /// an unlinked actor's exits never reach its supervisor.
    pub supervisor: ActorCell,
    /// The child's tree path, e.g. `root/sync/icloud`.
    pub path: String,
    /// Where actors find each other by path, across restarts.
    pub directory: Directory,
    /// Where lifecycle events go; nested supervisors pass it on.
    pub events: EventSink,
}

/// The future a start function returns: the started, linked actor.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// Starts one incarnation of a worker. Called again for every restart.
pub type StartFn = Arc<dyn Fn(ChildCtx) -> StartFuture + Send + Sync>;

#[derive(Clone)]
pub(crate) enum ChildStart {
    Worker(StartFn),
    Supervisor(SupervisorSpec),
}

/// One child of a supervisor.
#[derive(Clone)]
pub struct ChildSpec {
    /// Unique among its siblings; no `/`.
    pub name: String,
    /// What it is, for people: `heartbeat`, `sync_target`, `supervisor`, ...
    pub kind: String,
    pub restart: Restart,
    pub shutdown: Shutdown,
    /// How long one start may take (a worker's `pre_start`, run by its start function); a start
    /// that takes longer is cancelled and is a failed start ("did not start within ..."). `None`:
    /// as long as it takes. See [`ChildSpec::start_timeout`].
    pub start_timeout: Option<Duration>,
    pub(crate) start: ChildStart,
}

impl ChildSpec {
    /// A worker started by `start`, which must link the actor to `ctx.supervisor`.
    pub fn from_fn(name: impl Into<String>, kind: impl Into<String>, start: StartFn) -> Self {
        ChildSpec {
            name: name.into(),
            kind: kind.into(),
            restart: Restart::Permanent,
            shutdown: Shutdown::WORKER_DEFAULT,
            start_timeout: Some(WORKER_START_TIMEOUT),
            start: ChildStart::Worker(start),
        }
    }

    /// A worker actor `A`; `make` builds a fresh handler and arguments for every incarnation.
    pub fn worker<A, F>(name: impl Into<String>, kind: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn(&ChildCtx) -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let start: StartFn = Arc::new(move |ctx: ChildCtx| {
            let (actor, args) = make(&ctx);
            Box::pin(async move {
                let (actor_ref, _join) =
                    Actor::spawn_linked(None, actor, args, ctx.supervisor).await?;
                Ok(actor_ref.get_cell())
            })
        });
        Self::from_fn(name, kind, start)
    }

    /// A nested supervisor. It has no start timeout of its own: its start is its children's
    /// starts, each bounded by its own timeout.
    pub fn supervisor(name: impl Into<String>, spec: SupervisorSpec) -> Self {
        ChildSpec {
            name: name.into(),
            kind: "supervisor".into(),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            start_timeout: None,
            start: ChildStart::Supervisor(spec),
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// How long one start may take; `None` waits as long as it takes. Defaults:
    /// [`WORKER_START_TIMEOUT`] for workers, `None` for supervisors.
    ///
    /// A start that takes longer is cancelled (ractor runs `pre_start` inside the start
    /// future, so the half-started actor is dropped with it) and is a failed start, like a
    /// failing `pre_start`: it fails its supervisor's own start, counts toward intensity at a
    /// restart, and leaves an operator-started child failed. The supervisor is busy for the
    /// whole wait. Set on a supervisor child, it bounds that supervisor's whole start; on
    /// expiry whatever the nested supervisor had started is killed, unordered.
    pub fn start_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.start_timeout = timeout;
        self
    }

    pub fn is_supervisor(&self) -> bool {
        matches!(self.start, ChildStart::Supervisor(_))
    }

    /// The nested tree, when this child is a supervisor.
    pub fn supervisor_spec(&self) -> Option<&SupervisorSpec> {
        match &self.start {
            ChildStart::Supervisor(spec) => Some(spec),
            ChildStart::Worker(_) => None,
        }
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ChildSpec");
        d.field("name", &self.name)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("start_timeout", &self.start_timeout);
        if let ChildStart::Supervisor(spec) = &self.start {
            d.field("supervisor", spec);
        }
        d.finish()
    }
}

/// A supervisor: its strategy, restart intensity, backoff and children in start order.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// More than `intensity` restarts within `period` and the supervisor gives up.
    pub intensity: u32,
    pub period: Duration,
    pub backoff: Backoff,
    pub children: Vec<ChildSpec>,
}

/// A supervisor's own settings, without its children: what a reload can change in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SupervisorSettings {
    pub strategy: Strategy,
    pub intensity: u32,
    pub period: Duration,
    pub backoff: Backoff,
}

impl Default for SupervisorSpec {
    /// OTP's defaults: one_for_one, intensity 1 in 5 s; no backoff.
    fn default() -> Self {
        SupervisorSpec {
            strategy: Strategy::OneForOne,
            intensity: 1,
            period: Duration::from_secs(5),
            backoff: Backoff::none(),
            children: Vec::new(),
        }
    }
}

impl SupervisorSpec {
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            ..Default::default()
        }
    }

    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(children);
        self
    }

    pub fn settings(&self) -> SupervisorSettings {
        SupervisorSettings {
            strategy: self.strategy,
            intensity: self.intensity,
            period: self.period,
            backoff: self.backoff,
        }
    }

    pub fn with_settings(mut self, settings: SupervisorSettings) -> Self {
        self.strategy = settings.strategy;
        self.intensity = settings.intensity;
        self.period = settings.period;
        self.backoff = settings.backoff;
        self
    }
}

/// The longest child name, in characters.
pub const MAX_NAME: usize = 64;

/// The naming rule, for messages.
pub const NAME_RULE: &str = "a child name is 1 to 64 characters: letters, digits, '-', '_' and '.', starting with a letter or digit, without '..'";

/// Checks a child name against [`NAME_RULE`]: a name is a path segment people type and read,
/// so no `/`, no control, bidi or zero-width characters, no `..`, and bounded. Uniqueness
/// among siblings is the supervisor's to check.
pub fn check_name(name: &str) -> Result<(), String> {
    let shown = || {
        // A 70,000-character name must not become a 70,000-character message.
        let mut s: String = name.chars().take(40).collect();
        if name.chars().count() > 40 {
            s.push('…');
        }
        format!("{s:?}")
    };
    let chars = name.chars().count();
    let ok = (1..=MAX_NAME).contains(&chars)
        && name.chars().next().is_some_and(char::is_alphanumeric)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!("{} is not a valid name: {NAME_RULE}", shown()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_timeout_defaults() {
        let start: StartFn = Arc::new(|_ctx| -> StartFuture {
            Box::pin(async { Err(SpawnErr::StartupFailed("unused".into())) })
        });
        let worker = ChildSpec::from_fn("w", "test", start);
        assert_eq!(worker.start_timeout, Some(Duration::from_secs(60)));
        let sup = ChildSpec::supervisor("s", SupervisorSpec::default());
        assert_eq!(sup.start_timeout, None);
        let custom = worker.start_timeout(Some(Duration::from_secs(2)));
        assert_eq!(custom.start_timeout, Some(Duration::from_secs(2)));
        assert_eq!(custom.start_timeout(None).start_timeout, None);
    }

    #[test]
    fn names_are_checked() {
        for good in ["icloud-2", "a", "x.y_z", "données", "同步", &"n".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "a\nb",
            "..",
            "a..b",
            ".hidden",
            "-flag",
            "a b",
            "a\u{202e}b",
            "a\u{200b}b",
            "a\u{feff}",
            &"n".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let long = check_name(&"x".repeat(70_000)).err().unwrap_or_default();
        assert!(long.len() < 300, "{}", long.len());
        assert!(long.contains("1 to 64 characters"), "{long}");
    }
}
