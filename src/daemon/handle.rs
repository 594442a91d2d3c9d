//! Answering control requests: one typed command in, one response out.

use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::store::{self, EventQuery};
use metasystem_actors::{NodeSnapshot, NodeState, TreeError};
use serde_json::json;

use super::sync::SyncOpts;
use super::Daemon;
use crate::control::protocol::{
    code, Command, Event, EventsCursor, EventsResult, Node, OpInfo, OpsResult, Response, Status,
    TreeResult,
};
use crate::kinds::{CallCx, Kind};

/// How long an actor may take to answer a `call`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many events in one reply; the reply says where the next page starts.
pub const EVENTS_PAGE: usize = 500;
/// A page also ends once its events take this many bytes of JSON.
const EVENTS_PAGE_BYTES: usize = 512 * 1024;
/// `events` asks for at most this many in all (over as many pages as it takes).
pub const MAX_EVENTS: usize = 1_000_000;
/// Before the first page, the store is given this long to write what waits, so an event
/// recorded just before the request is in the answer (when the disk takes writes).
const EVENTS_FLUSH: Duration = Duration::from_millis(500);

impl Daemon {
    pub async fn handle(self: &Arc<Self>, id: Option<u64>, command: Command) -> Response {
        match command {
            Command::Status => Response::ok(id, json!(self.status().await)),
            Command::Tree => {
                let snapshot = self.tree.snapshot().await;
                Response::ok(
                    id,
                    json!(TreeResult {
                        healthy: healthy(&snapshot),
                        nodes: snapshot.iter().map(node).collect(),
                    }),
                )
            }
            Command::Start { path } => op(id, &path, self.tree.start_child(&path).await),
            Command::Stop { path } => op(id, &path, self.tree.stop(&path).await),
            Command::Restart { path } => op(id, &path, self.tree.restart(&path).await),
            Command::Kill { path } => op(id, &path, self.tree.inject_failure(&path).await),
            Command::Reload { dry_run: true } => match self.plan_reload().await {
                Ok(result) => Response::ok(id, json!(result)),
                Err(response) => Response { id, ..response },
            },
            Command::Reload { dry_run: false } => match self.reload().await {
                Ok(result) => Response::ok(id, json!(result)),
                Err(response) => Response { id, ..response },
            },
            Command::Events {
                since_s,
                path,
                kind,
                limit,
                after,
            } => {
                let query = match events_query(since_s, path, kind) {
                    Ok(q) => q,
                    Err(message) => return Response::error(id, code::BAD_REQUEST, message),
                };
                self.events(id, &query, limit, after).await
            }
            Command::Call { path, op, args } => self.call(id, &path, op, args).await,
            Command::Metrics { name, since_s } => self.metrics(id, name, since_s).await,
            Command::Anomalies { since_s } => self.anomalies(id, since_s).await,
            Command::Alerts { limit } => self.alerts(id, limit).await,
            Command::AlertTest { channel } => self.alert_test(id, channel).await,
            Command::AlertSilence { pattern, for_s } => {
                self.alert_silence(id, pattern, for_s).await
            }
            Command::Breakers => self.breakers(id).await,
            Command::BreakerOp { name, op } => self.breaker_op(id, &name, op),
            Command::Chaos {
                path,
                for_ms,
                every_min_ms,
                every_max_ms,
                seed,
            } => {
                self.chaos_start(id, path, for_ms, (every_min_ms, every_max_ms), seed)
                    .await
            }
            Command::ChaosStop => self.chaos_stop(id).await,
            Command::ChaosStatus { from } => self.chaos_status(id, from),
            Command::Health => self.health_now(id).await,
            Command::Probes => self.probes_latest(id),
            Command::Sync {
                target,
                direction,
                strategy,
                dry_run,
                lock_wait_ms,
                allow_deletes,
            } => {
                let opts = SyncOpts {
                    direction,
                    strategy,
                    dry_run,
                    lock_wait: lock_wait_ms.map(std::time::Duration::from_millis),
                    allow_deletes,
                };
                self.sync_now(id, target, opts).await
            }
            Command::SyncStatus => self.sync_status(id).await,
            Command::Conflicts { all, target } => self.conflicts(id, target, all).await,
            Command::Backups { target } => self.backups(id, target).await,
            Command::BackupRestore { name, target } => self.backup_restore(id, name, target).await,
            Command::BackupRestoreRun {
                run,
                since_unix_ms,
                target,
            } => {
                self.backup_restore_run(id, run, since_unix_ms, target)
                    .await
            }
            Command::Verify => {
                let specs = self.services.sync.specs();
                let report = metasystem_actors::sync::verify::verify(&specs).await;
                Response::ok(id, json!(report))
            }
            Command::ConflictResolve { path, target, keep } => {
                self.conflict_resolve(id, path, target, keep).await
            }
            Command::Heal { since_s } => self.heal_history(id, since_s).await,
            Command::Retries { since_s, op } => self.retries(id, since_s, op).await,
            Command::Logs {
                path,
                lines,
                follow: false,
                stderr,
            } => {
                self.logs(super::LogsRequest {
                    id,
                    path,
                    lines,
                    stderr,
                })
                .await
            }
            Command::Logs { follow: true, .. } => Response::error(
                id,
                code::BAD_REQUEST,
                "logs --follow is answered as a stream on its own connection",
            ),
            // The server turns the connection into a stream (`Daemon::stream`).
            Command::Subscribe { .. } => Response::error(
                id,
                code::BAD_REQUEST,
                "subscribe is answered as a stream on its own connection",
            ),
            Command::Shutdown => {
                self.shutdown.send_replace(true);
                Response::ok(id, json!({ "shutting_down": true }))
            }
        }
    }

    /// One page of events: the most recent `limit` (oldest first), or the next `limit` after
    /// the cursor `after`.
    async fn events(
        &self,
        id: Option<u64>,
        query: &EventQuery,
        limit: Option<usize>,
        after: Option<i64>,
    ) -> Response {
        let limit = match limit {
            None => 1000,
            Some(n) if (1..=MAX_EVENTS).contains(&n) => n,
            Some(n) => {
                return Response::error(
                    id,
                    code::BAD_REQUEST,
                    format!("`limit` is {n}: it must be between 1 and {MAX_EVENTS}"),
                )
            }
        };
        let reader = self.store.reader();
        let mut high_water = None;
        let after = match after {
            Some(after) => Some(after),
            None => {
                // Best effort: a disk that refuses writes must not hold up reading.
                let _ = self.store.flush(Some(EVENTS_FLUSH)).await;
                high_water = match store::events::last_id(reader).await {
                    Ok(last) => Some(last.unwrap_or(0)),
                    Err(e) => return Response::error(id, code::UNAVAILABLE, e),
                };
                match store::events::last_n_cursor(reader, query, limit).await {
                    Ok(cursor) => cursor,
                    Err(e) => return Response::error(id, code::UNAVAILABLE, e),
                }
            }
        };
        let want = limit.min(EVENTS_PAGE);
        let rows = match store::events::page(reader, query, after, want).await {
            Ok(rows) => rows,
            Err(e) => return Response::error(id, code::UNAVAILABLE, e),
        };
        let mut events = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in &rows {
            let e = Event::from(row);
            bytes += serde_json::to_string(&e).map(|t| t.len()).unwrap_or(0);
            events.push(e);
            if bytes >= EVENTS_PAGE_BYTES {
                break;
            }
        }
        let remaining = limit - events.len();
        let full_page = events.len() < rows.len() || rows.len() == want;
        let next = match events.last() {
            Some(last) if remaining > 0 && full_page => Some(EventsCursor {
                after: last.id,
                remaining,
            }),
            _ => None,
        };
        Response::ok(
            id,
            json!(EventsResult {
                events,
                high_water,
                next
            }),
        )
    }

    /// `call PATH [OP] [ARGS]`: routed to the handler of the actor's kind.
    async fn call(
        &self,
        id: Option<u64>,
        path: &str,
        op: Option<String>,
        args: serde_json::Value,
    ) -> Response {
        let kind = match self.tree.kind_of(path).await {
            Ok(kind) => kind,
            Err(e) => return tree_error(id, e),
        };
        let ops = Kind::ops(&kind).unwrap_or(&[]);
        let Some(op) = op else {
            return Response::ok(
                id,
                json!(OpsResult {
                    path: path.to_string(),
                    kind,
                    ops: ops
                        .iter()
                        .map(|o| OpInfo {
                            name: o.name.to_string(),
                            args: o.args.to_string(),
                            summary: o.summary.to_string(),
                        })
                        .collect(),
                }),
            );
        };
        let cx = CallCx {
            tree: &self.tree,
            path,
            services: &self.services,
            timeout: CALL_TIMEOUT,
        };
        match Kind::call(&kind, cx, &op, args).await {
            Ok(result) => Response::ok(id, result),
            Err(e) => Response::error(id, e.code, e.message),
        }
    }

    pub(super) async fn status(&self) -> Status {
        let nodes = self.tree.snapshot().await;
        let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
        let unresponsive = nodes.iter().filter(|n| n.unresponsive).count();
        let config = self
            .origin_shown
            .lock()
            .map(|o| o.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let (running, restarting, stopped, failed) = (
            count(NodeState::Running),
            count(NodeState::Restarting),
            count(NodeState::Stopped),
            count(NodeState::Failed),
        );
        // Writes failing now is unhealthy: events are piling up or being dropped.
        let store = self.store.stats();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            config,
            state_dir: self.daemon.state_dir.display().to_string(),
            socket: self.daemon.socket.display().to_string(),
            running,
            restarting,
            stopped,
            failed,
            unresponsive,
            healthy: healthy(&nodes) && store.failing_since_ms.is_none(),
            store,
            log_lines_dropped: crate::telemetry::lines_dropped(),
            log_file: crate::telemetry::file_status(),
            previous_run: self.previous_run.clone(),
            alerts_undelivered: store::outbox::undelivered(self.store.reader())
                .await
                .unwrap_or(0),
            breakers_open: metasystem_actors::probes::actor::open_breakers(&self.all_breakers()),
            probes_failing: self.probes_failing(),
            probes_pending: self.probes_pending(),
            sync: self.sync_lines().await,
        }
    }
}

/// The tree is healthy when it runs and no node is failed, restarting, or a supervisor that
/// did not answer (its children are then missing from the snapshot: nothing can be said of
/// them).
pub(super) fn healthy(nodes: &[NodeSnapshot]) -> bool {
    !nodes.is_empty()
        && nodes.iter().all(|n| {
            !n.unresponsive && !matches!(n.state, NodeState::Failed | NodeState::Restarting)
        })
}

/// The answer to start/stop/restart/kill. Starting what runs and stopping what is stopped
/// answer alike (like systemctl): done, nothing changed.
fn op(id: Option<u64>, path: &str, result: Result<(), TreeError>) -> Response {
    match result {
        Ok(()) => Response::ok(id, json!({ "path": path, "changed": true })),
        Err(TreeError::AlreadyRunning(_)) => Response::ok(
            id,
            json!({ "path": path, "changed": false, "state": "running" }),
        ),
        Err(TreeError::AlreadyStopped(_)) => Response::ok(
            id,
            json!({ "path": path, "changed": false, "state": "stopped" }),
        ),
        Err(e) => tree_error(id, e),
    }
}

/// A tree error as a response, with the code that says what went wrong.
pub(super) fn tree_error(id: Option<u64>, e: TreeError) -> Response {
    let code = match &e {
        TreeError::NotFound(_) => code::NOT_FOUND,
        TreeError::InvalidPath(_) => code::INVALID_PATH,
        TreeError::Root => code::ROOT,
        TreeError::NotASupervisor(_) => code::NOT_A_SUPERVISOR,
        TreeError::AlreadyExists(_) => code::ALREADY_EXISTS,
        TreeError::AlreadyRunning(_) => code::ALREADY_RUNNING,
        TreeError::AlreadyStopped(_) => code::ALREADY_STOPPED,
        TreeError::NotRunning(_) => code::NOT_RUNNING,
        TreeError::Invalid(_) => code::BAD_REQUEST,
        TreeError::StartFailed { .. } => code::START_FAILED,
        TreeError::Timeout(_) => code::TIMEOUT,
        TreeError::Unavailable => code::UNAVAILABLE,
    };
    Response::error(id, code, e.to_string())
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

/// The filters of `events`, checked: an unknown kind is a typo, not an empty answer.
pub(super) fn events_query(
    since_s: Option<u64>,
    path: Option<String>,
    kind: Option<String>,
) -> Result<EventQuery, String> {
    if let Some(path) = &path {
        metasystem_actors::supervision::tree::check_path(path).map_err(|e| e.to_string())?;
    }
    if let Some(kind) = &kind {
        if !store::events::KINDS.contains(&kind.as_str()) {
            let hint = match crate::config::reader::suggest(kind, store::events::KINDS) {
                Some(close) => format!("; did you mean `{close}`?"),
                None => String::new(),
            };
            return Err(format!(
                "unknown event kind `{kind}`: it must be {}{hint}",
                crate::config::reader::one_of(store::events::KINDS)
            ));
        }
    }
    Ok(EventQuery {
        since: since_s.map(|s| super::queries::window_start(Some(s), Duration::ZERO)),
        path,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use metasystem_actors::{NodeSnapshot, NodeState, Restart};

    fn node(path: &str, state: NodeState, unresponsive: bool) -> NodeSnapshot {
        NodeSnapshot {
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            depth: path.matches('/').count(),
            kind: "supervisor".into(),
            restart: Restart::Permanent,
            state,
            restarts: 0,
            incarnation: 1,
            last_exit: None,
            uptime: None,
            restart_in: None,
            error: None,
            strategy: None,
            unresponsive,
        }
    }

    /// Regression: `status` said healthy while a supervisor did not answer and its children
    /// were missing (5 of ~22k replies under chaos).
    #[test]
    fn an_unresponsive_supervisor_is_unhealthy() {
        let running = |p| node(p, NodeState::Running, false);
        assert!(super::healthy(&[running("root"), running("root/a")]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/grp", NodeState::Running, true)
        ]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/a", NodeState::Restarting, false)
        ]));
        assert!(!super::healthy(&[
            running("root"),
            node("root/a", NodeState::Failed, false)
        ]));
        assert!(super::healthy(&[
            running("root"),
            node("root/a", NodeState::Stopped, false)
        ]));
        assert!(!super::healthy(&[]));
    }
}
