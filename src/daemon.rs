//! The daemon: reads the config, opens the event store, starts the tree (the diff from an empty
//! root), serves the control socket, reloads on request or SIGHUP, and shuts down in order on
//! SIGINT/SIGTERM or `shutdown`: socket, tree (each supervisor stops its children in reverse
//! start order), then the store, so the tree's last events are written.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use metasystem_actors::event_store::{
    EventQuery, EventStore, EventStoreActor, EventStoreArgs, StoredEvent,
};
use metasystem_actors::{ExitReason, NodeSnapshot, NodeState, SupervisorSpec, Tree, TreeError};
use ractor::Actor;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Mutex};

use crate::config::diff::plan;
use crate::config::{self, Config, Origin, SupervisorConfig};
use crate::control::protocol::{
    code, Change, Command, Event, EventsResult, Node, ReloadResult, Response, Status, TreeResult,
};
use crate::control::server;
use crate::wiring::{self, Services};

/// Exit code when the daemon could not start (bad config, state dir, socket in use, a child
/// that fails to start).
pub const EXIT_START_FAILED: u8 = 2;
/// Exit code when the root supervisor gave up (restart intensity reached) or a core part of
/// the daemon failed: the service manager (systemd `Restart=on-failure`, launchd `KeepAlive`)
/// starts us again.
pub const EXIT_ROOT_GAVE_UP: u8 = 3;

/// Events are kept this long.
const EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The running daemon, shared with the control connections.
pub struct Daemon {
    tree: Tree,
    store: EventStore,
    /// What actors are given (the store, the watchdog interval); kept for reloads.
    services: Services,
    /// Where the config came from; reloads read it again.
    origin: Origin,
    /// The config the tree runs now. The lock also makes reloads one at a time.
    config: Mutex<Config>,
    started: Instant,
    /// Set by the `shutdown` command; the main loop waits on it.
    shutdown: watch::Sender<bool>,
}

impl Daemon {
    pub async fn handle(&self, id: Option<u64>, command: Command) -> Response {
        match command {
            Command::Status => Response::ok(id, json!(self.status().await)),
            Command::Tree => Response::ok(
                id,
                json!(TreeResult {
                    nodes: self.tree.snapshot().await.iter().map(node).collect()
                }),
            ),
            Command::Start { path } => op(id, &path, self.tree.start_child(&path).await),
            Command::Stop { path } => op(id, &path, self.tree.stop(&path).await),
            Command::Restart { path } => op(id, &path, self.tree.restart(&path).await),
            Command::Kill { path } => op(id, &path, self.tree.inject_failure(&path).await),
            Command::Reload => match self.reload().await {
                Ok(result) => Response::ok(id, json!(result)),
                Err(response) => Response { id, ..response },
            },
            Command::Events {
                since_s,
                path,
                kind,
                limit,
            } => {
                let query = EventQuery {
                    since: since_s.map(|s| {
                        SystemTime::now()
                            .checked_sub(Duration::from_secs(s))
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                    }),
                    path,
                    kind,
                    limit: limit.unwrap_or(1000).min(100_000),
                };
                match self.store.query(query).await {
                    Ok(events) => Response::ok(
                        id,
                        json!(EventsResult {
                            events: events.iter().map(event).collect()
                        }),
                    ),
                    Err(e) => Response::error(id, code::UNAVAILABLE, e),
                }
            }
            Command::Shutdown => {
                self.shutdown.send_replace(true);
                Response::ok(id, json!({ "shutting_down": true }))
            }
        }
    }

    async fn status(&self) -> Status {
        let nodes = self.tree.snapshot().await;
        let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
        let config = self.config.lock().await;
        let (running, restarting, stopped, failed) = (
            count(NodeState::Running),
            count(NodeState::Restarting),
            count(NodeState::Stopped),
            count(NodeState::Failed),
        );
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            config: self.origin.display(),
            state_dir: config.daemon.state_dir.display().to_string(),
            socket: config.daemon.socket.display().to_string(),
            running,
            restarting,
            stopped,
            failed,
            healthy: restarting == 0 && failed == 0 && !nodes.is_empty(),
        }
    }

    /// Reads the config again; if it is valid, applies the difference to the running tree.
    /// If not, nothing changes and the error lists every problem.
    pub async fn reload(&self) -> Result<ReloadResult, Response> {
        // The file is read on the blocking pool, not on the scheduler thread.
        let origin = self.origin.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&origin))
            .await
            .map_err(|e| {
                Response::error(None, code::INTERNAL, format!("cannot read the config: {e}"))
            })?;
        let new = loaded.map_err(|errors| {
            let details: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            Response::error_with(
                None,
                code::INVALID_CONFIG,
                format!(
                    "{} has {} error(s); nothing was changed",
                    self.origin.display(),
                    details.len()
                ),
                details,
            )
        })?;
        let mut current = self.config.lock().await;
        notify(&[sd_notify::NotifyState::Reloading]);
        let mut warnings = Vec::new();
        let (old_d, new_d) = (&current.daemon, &new.daemon);
        for (changed, key) in [
            (old_d.state_dir != new_d.state_dir, "state_dir"),
            (old_d.socket != new_d.socket, "socket"),
            (
                old_d.max_connections != new_d.max_connections,
                "max_connections",
            ),
        ] {
            if changed {
                warnings.push(format!(
                    "[daemon] {key} changed: it takes effect when the daemon restarts"
                ));
            }
        }
        let steps = plan("root", &current.root, &new.root);
        let applied = wiring::apply(&self.tree, &steps, &self.services, false).await;
        current.root = new.root;
        notify(&[sd_notify::NotifyState::Ready]);
        let changes: Vec<Change> = applied
            .into_iter()
            .map(|a| Change {
                action: a.action.to_string(),
                path: a.path,
                error: a.error,
            })
            .collect();
        for c in &changes {
            match &c.error {
                None => tracing::info!(action = %c.action, path = %c.path, "reload"),
                Some(e) => tracing::warn!(action = %c.action, path = %c.path, error = %e, "reload"),
            }
        }
        let mut record =
            StoredEvent::new("root", "reloaded", format!("{} change(s)", changes.len()));
        record.data = json!({ "changes": changes.len(), "config": self.origin.display() });
        self.store.record(record);
        Ok(ReloadResult {
            config: self.origin.display(),
            changes,
            warnings,
        })
    }
}

fn op(id: Option<u64>, path: &str, result: Result<(), TreeError>) -> Response {
    match result {
        Ok(()) => Response::ok(id, json!({ "path": path })),
        Err(e) => {
            let code = match &e {
                TreeError::NotFound(_) => code::NOT_FOUND,
                TreeError::InvalidPath(_) => code::INVALID_PATH,
                TreeError::Root => code::ROOT,
                TreeError::NotASupervisor(_) => code::NOT_A_SUPERVISOR,
                TreeError::AlreadyExists(_) => code::ALREADY_EXISTS,
                TreeError::AlreadyRunning(_) => code::ALREADY_RUNNING,
                TreeError::NotRunning(_) => code::NOT_RUNNING,
                TreeError::Invalid(_) => code::BAD_REQUEST,
                TreeError::StartFailed { .. } => code::START_FAILED,
                TreeError::Unavailable => code::UNAVAILABLE,
            };
            Response::error(id, code, e.to_string())
        }
    }
}

fn node(n: &NodeSnapshot) -> Node {
    Node {
        path: n.path.clone(),
        name: n.name.clone(),
        depth: n.depth,
        kind: n.kind.clone(),
        state: n.state.as_str().to_string(),
        restart: n.restart.as_str().to_string(),
        restarts: n.restarts,
        incarnation: n.incarnation,
        strategy: n.strategy.map(|s| s.as_str().to_string()),
        last_exit: n.last_exit.as_ref().map(|r| r.to_string()),
        uptime_s: n.uptime.map(|d| d.as_secs_f64()),
        restart_in_s: n.restart_in.map(|d| d.as_secs_f64()),
        error: n.error.clone(),
        unresponsive: n.unresponsive,
    }
}

fn event(e: &StoredEvent) -> Event {
    Event {
        at: humantime::format_rfc3339_millis(e.at).to_string(),
        at_ms: e.at_ms(),
        path: e.path.clone(),
        kind: e.kind.clone(),
        message: e.message.clone(),
        data: e.data.clone(),
    }
}

/// Tells systemd (when it started us with NOTIFY_SOCKET); a no-op otherwise.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The systemd watchdog interval, with libsystemd's `sd_watchdog_enabled` rules: WATCHDOG_USEC
/// set and positive, and WATCHDOG_PID, when set, naming this process. (The sd-notify crate also
/// insists on WATCHDOG_PID being present, which libsystemd does not.)
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Runs the daemon in the foreground until SIGINT/SIGTERM or `shutdown` (exit 0), until the
/// root gives up (exit [`EXIT_ROOT_GAVE_UP`]), or fails to start ([`EXIT_START_FAILED`]).
pub async fn run(origin: Origin) -> ExitCode {
    let config = match config::load(&origin) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            eprintln!("{errors}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    match start_and_serve(origin, config).await {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}

async fn start_and_serve(origin: Origin, config: Config) -> Result<ExitCode, String> {
    let (mut sigint, mut sigterm, mut sighup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(i), Ok(t), Ok(h)) => (i, t, h),
        _ => return Err("cannot install signal handlers".into()),
    };
    server::secure_dir(&config.daemon.state_dir)?;
    // The socket first: if another daemon runs here we stop before touching anything else.
    let listener = server::bind(&config.daemon.socket)?;
    let db = config.daemon.state_dir.join("metastore.db");
    let (store_ref, mut store_join) = Actor::spawn(
        None,
        EventStoreActor,
        EventStoreArgs {
            path: db.clone(),
            retention: EVENT_RETENTION,
        },
    )
    .await
    .map_err(|e| {
        let _ = std::fs::remove_file(&config.daemon.socket);
        format!("cannot open the event store {}: {e}", db.display())
    })?;
    let store = EventStore::new(store_ref);
    let services = Services {
        store: store.clone(),
        watchdog: watchdog_interval(),
    };
    if services.watchdog.is_some() && !wiring::has_heartbeat(&config.root) {
        tracing::warn!(
            "the systemd watchdog is on but the tree has no heartbeat: systemd will kill the daemon; add a `kind = \"heartbeat\"` child"
        );
    }

    // Startup is the diff from a root with no children.
    let empty_root = SupervisorConfig {
        settings: config.root.settings,
        children: Vec::new(),
    };
    let tree = Tree::start(
        SupervisorSpec::default().with_settings(config.root.settings),
        store.sink(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let steps = plan("root", &empty_root, &config.root);
    let applied = wiring::apply(&tree, &steps, &services, true).await;
    if let Some(failed) = applied.iter().find(|a| a.error.is_some()) {
        let message = format!(
            "startup failed: {} {}: {}",
            failed.action,
            failed.path,
            failed.error.as_deref().unwrap_or("")
        );
        tree.shutdown().await;
        let _ = store.flush().await;
        store.actor().stop(None);
        let _ = std::fs::remove_file(&config.daemon.socket);
        return Err(message);
    }

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (stop_server, server_stop) = watch::channel(false);
    let socket = config.daemon.socket.clone();
    let max_connections = config.daemon.max_connections;
    let daemon = Arc::new(Daemon {
        tree,
        store: store.clone(),
        services,
        origin,
        config: Mutex::new(config),
        started: Instant::now(),
        shutdown: shutdown_tx,
    });
    let server = tokio::spawn(server::serve(
        listener,
        socket.clone(),
        daemon.clone(),
        max_connections,
        server_stop,
    ));
    tracing::info!(
        pid = std::process::id(),
        config = %daemon.origin.display(),
        socket = %socket.display(),
        "metasystem running"
    );
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("running"),
    ]);

    let root_exit = daemon.tree.exited();
    tokio::pin!(root_exit);
    let code = loop {
        tokio::select! {
            _ = sigint.recv() => {
                tracing::info!("SIGINT: shutting down");
                break ExitCode::SUCCESS;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break ExitCode::SUCCESS;
            }
            () = async { let _ = shutdown_rx.wait_for(|s| *s).await; } => {
                tracing::info!("shutdown requested over the control socket");
                break ExitCode::SUCCESS;
            }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading {}", daemon.origin.display());
                match daemon.reload().await {
                    Ok(result) => tracing::info!(changes = result.changes.len(), "reloaded"),
                    Err(response) => {
                        if let Some(error) = response.error {
                            tracing::error!("reload refused: {}", error.message);
                            for line in error.details {
                                tracing::error!("{line}");
                            }
                        }
                    }
                }
            }
            reason = &mut root_exit => {
                tracing::error!(%reason, "the root supervisor exited; exiting so the service manager restarts the daemon");
                break ExitCode::from(EXIT_ROOT_GAVE_UP);
            }
            _ = &mut store_join => {
                tracing::error!("the event store stopped; exiting so the service manager restarts the daemon");
                stop_server.send_replace(true);
                let _ = server.await;
                daemon.tree.shutdown().await;
                return Ok(ExitCode::from(EXIT_ROOT_GAVE_UP));
            }
        }
    };
    notify(&[sd_notify::NotifyState::Stopping]);
    stop_server.send_replace(true);
    let _ = server.await;
    let reason = daemon.tree.shutdown().await;
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "could not write the last events");
    }
    store.actor().stop(None);
    let _ = store_join.await;
    match (code == ExitCode::SUCCESS, reason) {
        (true, ExitReason::Shutdown | ExitReason::Normal) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        (true, reason) => {
            tracing::error!(%reason, "the tree ended badly during shutdown");
            Ok(ExitCode::from(EXIT_ROOT_GAVE_UP))
        }
        (false, _) => Ok(code),
    }
}
