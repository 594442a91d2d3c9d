//! The daemon: starts the restart tree, waits for a signal or for the root to give up, and
//! shuts the tree down in order.

use std::process::ExitCode;

use metasystem_actors::{EventSink, ExitReason, Strategy, SupervisorSpec, Tree};
use tokio::signal::unix::{signal, SignalKind};

/// Exit code when the root supervisor gave up (restart intensity reached) or failed: the
/// service manager (systemd `Restart=on-failure`, launchd `KeepAlive`) starts us again.
pub const EXIT_ROOT_GAVE_UP: u8 = 3;
/// Exit code when the daemon could not start (bad config, state dir, tree start failure).
pub const EXIT_START_FAILED: u8 = 2;

/// Runs the daemon in the foreground until SIGINT/SIGTERM (exit 0) or until the root exits on
/// its own (exit [`EXIT_ROOT_GAVE_UP`]).
pub async fn run(spec: SupervisorSpec) -> ExitCode {
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    let tree = match Tree::start(spec, EventSink::none()).await {
        Ok(tree) => tree,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    tracing::info!(pid = std::process::id(), "metasystem running");
    let root_exit = tree.exited();
    tokio::select! {
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        reason = root_exit => {
            tracing::error!(%reason, "the root supervisor exited; exiting so the service manager restarts us");
            return ExitCode::from(EXIT_ROOT_GAVE_UP);
        }
    }
    match tree.shutdown().await {
        ExitReason::Shutdown | ExitReason::Normal => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        reason => {
            tracing::error!(%reason, "the root supervisor ended badly during shutdown");
            ExitCode::from(EXIT_ROOT_GAVE_UP)
        }
    }
}

/// The tree `run` starts until `supervision.toml` is read (next step): an empty root.
pub fn default_spec() -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
}
