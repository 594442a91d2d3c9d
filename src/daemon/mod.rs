//! The daemon: reads the config, opens the store, starts the tree (the diff from an empty
//! root), serves the control socket, reloads on request or SIGHUP, and shuts down in order on
//! SIGINT/SIGTERM or `shutdown`: socket, tree (each supervisor stops its children in reverse
//! start order), then the store, so the tree's last events are written.
//!
//! - `start`: the startup steps and the main loop;
//! - `handle`: answering control requests;
//! - `chaos`: the chaos monkey's runs (one at a time, a task each);
//! - `reload`: reload as a diff, and the step runner shared with startup;
//! - `resilience`: `breakers` and operators' breaker actions (from the shared registry);
//! - `queries`: `metrics` and `anomalies` (read pool only);
//! - `retries`: `retries`, the retried operations' runs judged by their policies (read pool);
//! - `last_words`: the root gave up: its alert, sent by the daemon before it exits;
//! - `logs`: a managed process's output (`logs`, `logs -f`);
//! - `notify`: systemd notifications and the watchdog interval.

mod chaos;
mod handle;
mod hosts;
mod last_words;
mod logs;
mod notify;
mod queries;
mod reload;
mod resilience;
mod retries;
mod start;
mod stream;
mod sync;

pub use stream::Subscription;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use metasystem_actors::store::Store;
use metasystem_actors::Tree;
use tokio::sync::{watch, Mutex};

use crate::config::{self, Config, DaemonConfig, Origin};
use crate::wiring::Services;

/// Exit codes of `metasystem run`, for the service manager: what it means, and whether
/// starting again can help.
pub mod exit {
    /// Stopped by SIGINT, SIGTERM or `shutdown`; the tree stopped in order.
    pub const STOPPED: u8 = 0;
    /// The config is invalid (or the command line is): starting again will not help until
    /// someone fixes it. The systemd unit does not restart on it (RestartPreventExitStatus).
    pub const CONFIG_INVALID: u8 = 2;
    /// The tree failed: a child failed to start, the root supervisor gave up (restart
    /// intensity reached), or the store died. Start again.
    pub const TREE_FAILED: u8 = 3;
    /// The environment is not ready: the state dir or the socket's directory is unusable, the
    /// disk is full, the store cannot be opened, another daemon holds the state dir or the
    /// socket. It may be ready later: start again (EX_TEMPFAIL).
    pub const NOT_READY: u8 = 75;
}

/// The running daemon, shared with the control connections.
pub struct Daemon {
    /// The running restart tree: every operation and snapshot goes through it.
    tree: Tree,
    /// The store: `events` reads it; reloads record themselves in it.
    store: Store,
    /// What actors are given (the store, the watchdog interval); kept for reloads, which build
    /// new children.
    services: Services,
    /// `--config`, if given: every reload locates the file again from it, so a file created at
    /// the default place after the daemon started is picked up.
    config_arg: Option<PathBuf>,
    /// `[daemon]` as started: fixed for the daemon's life (reload only warns about changes).
    daemon: DaemonConfig,
    /// Where the running config came from, for `status` (updated by reloads; `status` never
    /// waits for a reload's lock).
    origin_shown: std::sync::Mutex<String>,
    /// The config the tree runs now and where it came from. A reload holds it throughout, from
    /// reading the file to the last step, so reloads apply one at a time and in order.
    current: Mutex<(Origin, Config)>,
    /// When the daemon started, for `status`.
    started: Instant,
    /// The run before this one, read once at start (it does not change): `status` shows it.
    previous_run: Option<crate::control::protocol::RunInfo>,
    /// Set by the `shutdown` command; the main loop waits on it.
    shutdown: watch::Sender<bool>,
    /// The chaos run going on, or the last one (`chaos`, `chaos stop`, `chaos status`).
    chaos: chaos::Chaos,
}

/// What the exports (`crate::export`) read.
impl Daemon {
    /// `status`, for `/health`.
    pub(crate) fn metrics_handle(&self) -> &metasystem_actors::metrics::Metrics {
        &self.services.metrics
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// Runs the daemon in the foreground until SIGINT/SIGTERM or `shutdown` ([`exit::STOPPED`]),
/// until the tree fails ([`exit::TREE_FAILED`]), or fails to start: [`exit::CONFIG_INVALID`]
/// or [`exit::NOT_READY`].
pub async fn run(config_arg: Option<PathBuf>) -> ExitCode {
    let origin = config::locate(config_arg.as_deref());
    let reading = origin.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&reading)).await;
    let config = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(errors)) => {
            // Once each, through the log (stderr).
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            tracing::error!(
                "{}: {} error(s); not starting",
                origin.display(),
                errors.0.len()
            );
            return ExitCode::from(exit::CONFIG_INVALID);
        }
        Err(e) => {
            tracing::error!("cannot read the config: {e}");
            return ExitCode::from(exit::NOT_READY);
        }
    };
    match start::start_and_serve(config_arg, origin, config).await {
        Ok(code) => code,
        Err(start::Failure::NotReady(message)) => {
            tracing::error!("{message}");
            ExitCode::from(exit::NOT_READY)
        }
        Err(start::Failure::Tree(message)) => {
            tracing::error!("{message}");
            ExitCode::from(exit::TREE_FAILED)
        }
    }
}
