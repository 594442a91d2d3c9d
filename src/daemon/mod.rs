//! The daemon: reads the config, opens the store, starts the tree (the diff from an empty
//! root), serves the control socket, reloads on request or SIGHUP, and shuts down in order on
//! SIGINT/SIGTERM or `shutdown`: socket, tree (each supervisor stops its children in reverse
//! start order), then the store, so the tree's last events are written.
//!
//! - `start`: the startup steps and the main loop;
//! - `handle`: answering control requests;
//! - `reload`: reload as a diff, and the step runner shared with startup;
//! - `notify`: systemd notifications and the watchdog interval.

mod handle;
mod notify;
mod reload;
mod start;
mod stream;

pub use stream::Subscription;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use metasystem_actors::store::Store;
use metasystem_actors::Tree;
use tokio::sync::{watch, Mutex};

use crate::config::{self, Config, DaemonConfig, Origin};
use crate::wiring::Services;

/// Exit code when the daemon cannot start because of its setup (invalid config, unusable state
/// dir or socket, another daemon already running): starting again would not help.
pub const EXIT_START_FAILED: u8 = 2;
/// Exit code when the tree failed: a child failed to start, the root supervisor gave up
/// (restart intensity reached), or the event store died. The service manager (systemd
/// `Restart=on-failure`, launchd `KeepAlive`) should start us again.
pub const EXIT_ROOT_GAVE_UP: u8 = 3;

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
    /// This run's row in the store's `daemon_runs` (None if the disk refused it): `status`
    /// shows the run before it.
    run_id: Option<i64>,
    /// Set by the `shutdown` command; the main loop waits on it.
    shutdown: watch::Sender<bool>,
}

/// Runs the daemon in the foreground until SIGINT/SIGTERM or `shutdown` (exit 0), until the
/// tree fails ([`EXIT_ROOT_GAVE_UP`]), or fails to start ([`EXIT_START_FAILED`]).
pub async fn run(config_arg: Option<PathBuf>) -> ExitCode {
    let origin = config::locate(config_arg.as_deref());
    let reading = origin.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&reading)).await;
    let config = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(errors)) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            eprintln!("{errors}");
            return ExitCode::from(EXIT_START_FAILED);
        }
        Err(e) => {
            tracing::error!("cannot read the config: {e}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    match start::start_and_serve(config_arg, origin, config).await {
        Ok(code) => code,
        Err(start::Failure::Setup(message)) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_START_FAILED)
        }
        Err(start::Failure::Tree(message)) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_ROOT_GAVE_UP)
        }
    }
}
