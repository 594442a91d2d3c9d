//! Reload as a diff: read and validate the whole file, plan the steps from the running config
//! to the new one (`config::diff`), and run them against the live tree.

use super::handle::Answer;
use crate::control::protocol::Failure;
use std::time::Duration;

use tokio::sync::MutexGuard;

use metasystem_actors::store::StoredEvent;
use metasystem_actors::{ChildSpec, Tree, TreeError};
use serde_json::json;

use super::{notify, Daemon};
use crate::config::diff::{plan, Step};
use crate::config::{self, ChildConfig, Config, Kind, Origin, SupervisorConfig};
use crate::control::protocol::{code, Change, ReloadResult};
use crate::wiring::child_spec;

/// A reload waits this long for the one before it to finish.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A reload's steps run for at most this long in all; the steps left are reported as not
/// attempted and the lock is released (a wedged supervisor cannot hold reloads forever).
const RELOAD_DEADLINE: Duration = Duration::from_secs(300);

impl Daemon {
    /// Reads the config again; if it is valid, applies the difference to the running tree.
    /// If not, nothing changes and the error lists every problem. Reloads run one at a time.
    pub async fn reload(&self) -> Answer<ReloadResult> {
        let mut current = self.lock_current().await?;
        let origin = config::locate(self.config_arg.as_deref());
        let new = read(&origin).await?;
        notify::reloading();
        let warnings = self.warnings(&current.0, &origin, &new);
        let steps = plan("root", &current.1.root, &new.root);
        let build = |c: &ChildConfig| child_spec(c, &self.services);
        let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
        let applied = apply(&self.tree, &steps, &new.root, &build, false, Some(deadline)).await;
        // What the kinds the new tree lacks leave behind (the breakers' registry).
        crate::kinds::Kind::removed(&new.root, &self.services);
        // The tree is whole again: an alert whose source the reload removed ends now (one
        // whose source was replaced waits for the new one to look).
        self.services.alerts.started();
        if let Ok(mut shown) = self.origin_shown.lock() {
            *shown = origin.display();
        }
        *current = (origin.clone(), new);
        drop(current);
        notify::ready("running");
        let changes = changes(applied);
        let mut record = StoredEvent::new(
            "root",
            metasystem_actors::store::events::Kind::Reloaded,
            format!("{} change(s)", changes.len()),
        );
        record.data = json!({ "changes": changes.len(), "config": origin.display() });
        self.store.record(record);
        Ok(ReloadResult {
            config: origin.display(),
            dry_run: false,
            changes,
            warnings,
        })
    }

    /// `reload --dry-run`: reads and validates the config and says what a reload would do,
    /// applying nothing.
    pub async fn plan_reload(&self) -> Answer<ReloadResult> {
        let origin = config::locate(self.config_arg.as_deref());
        let new = read(&origin).await?;
        let current = self.lock_current().await?;
        let warnings = self.warnings(&current.0, &origin, &new);
        let steps = plan("root", &current.1.root, &new.root);
        drop(current);
        Ok(ReloadResult {
            config: origin.display(),
            dry_run: true,
            changes: steps
                .iter()
                .map(|step| Change {
                    action: step.verb().to_string(),
                    path: step.path(),
                    error: None,
                    note: None,
                })
                .collect(),
            warnings,
        })
    }

    /// The running config, once the reload before has finished (waiting at most LOCK_WAIT).
    async fn lock_current(&self) -> Answer<MutexGuard<'_, (Origin, Config)>> {
        tokio::time::timeout(LOCK_WAIT, self.current.lock())
            .await
            .map_err(|_| {
                Failure::new(
                    code::TIMEOUT,
                    format!(
                        "another reload has been running for more than {}; try again when it is done",
                        humantime::format_duration(LOCK_WAIT)
                    ),
                )
            })
    }

    /// What a reload cannot apply now or should tell the operator.
    fn warnings(&self, was: &Origin, origin: &Origin, new: &Config) -> Vec<String> {
        let mut warnings = Vec::new();
        if origin != was {
            warnings.push(format!(
                "the config now comes from {} (was {})",
                origin.display(),
                was.display()
            ));
        }
        let (old_d, new_d) = (&self.daemon, &new.daemon);
        for (changed, key) in [
            (old_d.state_dir != new_d.state_dir, "state_dir"),
            (old_d.socket != new_d.socket, "socket"),
            (
                old_d.max_connections != new_d.max_connections,
                "max_connections",
            ),
            (old_d.idle_timeout != new_d.idle_timeout, "idle_timeout"),
            (old_d.http != new_d.http, "http"),
        ] {
            if changed {
                warnings.push(format!(
                    "[daemon] {key} changed: it takes effect when the daemon restarts"
                ));
            }
        }
        if old_d.host_id != new_d.host_id {
            warnings.push(
                "[daemon] host_id changed: the sync targets restart as the new host (the old \
                 identity's per-host snapshots stay in the targets)"
                    .into(),
            );
        }
        warnings.extend(crate::kinds::Kind::absent(&new.root, &self.services));
        warnings
    }
}

/// Reads and validates the config at `origin` on the blocking pool (never on the scheduler
/// thread); an invalid one becomes the error response listing every problem.
async fn read(origin: &Origin) -> Answer<Config> {
    let reading = origin.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&reading))
        .await
        .map_err(|e| Failure::new(code::INTERNAL, format!("cannot read the config: {e}")))?;
    loaded.map_err(|errors| {
        let details: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        Failure::with_details(
            code::INVALID_CONFIG,
            format!(
                "{} has {} error(s); nothing was changed",
                origin.display(),
                details.len()
            ),
            details,
        )
    })
}

/// The applied steps as the reply's changes, each logged.
fn changes(applied: Vec<Applied>) -> Vec<Change> {
    let changes: Vec<Change> = applied
        .into_iter()
        .map(|a| Change {
            action: a.action.to_string(),
            path: a.path,
            error: a.error,
            note: a.note,
        })
        .collect();
    for c in &changes {
        match &c.error {
            None => tracing::info!(action = %c.action, path = %c.path, note = ?c.note, "reload"),
            Some(e) => tracing::warn!(action = %c.action, path = %c.path, error = %e, "reload"),
        }
    }
    changes
}

/// One applied step, for the reload reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub action: &'static str,
    pub path: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Why it did nothing, when that is fine.
    pub note: Option<String>,
}

/// Runs `steps` (planned towards `target`) in order. With `stop_at_first_error` (startup) the
/// first failure ends the run; otherwise (reload) every step is tried and each failure is
/// reported.
///
/// The running tree can differ from the config the plan started from: temporary children are
/// forgotten once they exit, an operator may have stopped a supervisor. So: removing what is
/// already gone is done; replacing what is gone adds it; steps inside a stopped supervisor whose
/// new config is then recorded are notes, not failures (the config applies when it starts); and
/// every supervisor that got new children has them put back in the file's order.
pub(super) async fn apply(
    tree: &Tree,
    steps: &[Step],
    target: &SupervisorConfig,
    build: &(dyn Fn(&ChildConfig) -> ChildSpec + Sync),
    stop_at_first_error: bool,
    deadline: Option<tokio::time::Instant>,
) -> Vec<Applied> {
    // Results stay typed until the end: the "not running" check matches the error, not its
    // text.
    let mut results: Vec<(&Step, Result<(), TreeError>, Option<String>)> =
        Vec::with_capacity(steps.len());
    let mut grown: Vec<String> = Vec::new();
    let mut out_of_time = None;
    for (index, step) in steps.iter().enumerate() {
        let running = run_step(tree, step, build, &mut grown);
        let (result, note) = match deadline {
            None => running.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, running).await {
                Ok(done) => done,
                Err(_) => {
                    out_of_time = Some(index + 1);
                    (Err(TreeError::Timeout(step.path())), None)
                }
            },
        };
        if let (Step::Record { .. }, Ok(())) = (step, &result) {
            excuse_not_running(&mut results, &step.path());
        }
        let failed = result.is_err();
        results.push((step, result, note));
        if (failed && stop_at_first_error) || out_of_time.is_some() {
            break;
        }
    }
    let failed = results.iter().any(|(_, r, _)| r.is_err());
    let mut applied: Vec<Applied> = results
        .into_iter()
        .map(|(step, result, note)| Applied {
            action: step.verb(),
            path: step.path(),
            error: result.err().map(|e| e.to_string()),
            note,
        })
        .collect();
    if let Some(next) = out_of_time {
        applied.extend(steps[next..].iter().map(|step| Applied {
            action: step.verb(),
            path: step.path(),
            error: Some("not attempted: the reload ran out of time".into()),
            note: None,
        }));
        return applied;
    }
    if !(failed && stop_at_first_error) {
        restore_order(tree, target, grown).await;
    }
    applied
}

/// Runs one step against the live tree; a note says why a step that did nothing is fine.
/// Supervisors that got a new child are added to `grown`.
async fn run_step(
    tree: &Tree,
    step: &Step,
    build: &(dyn Fn(&ChildConfig) -> ChildSpec + Sync),
    grown: &mut Vec<String>,
) -> (Result<(), TreeError>, Option<String>) {
    match step {
        Step::Reconfigure { path, settings } => (tree.reconfigure(path, *settings).await, None),
        Step::Remove { path } => match tree.remove(path).await {
            Err(TreeError::NotFound(_)) => (Ok(()), Some("already gone".to_string())),
            other => (other, None),
        },
        Step::Add {
            parent,
            position,
            child,
        } => {
            grown.push(parent.clone());
            let spec = build(child);
            (tree.insert_child(parent, spec, *position).await, None)
        }
        Step::Replace { parent, child } => match tree.replace_child(parent, build(child)).await {
            Err(TreeError::NotFound(_)) => {
                grown.push(parent.clone());
                let spec = build(child);
                (
                    tree.insert_child(parent, spec, usize::MAX).await,
                    Some("was gone (a temporary child that exited); started".into()),
                )
            }
            other => (other, None),
        },
        Step::Record { parent, child } => (tree.update_spec(parent, build(child)).await, None),
        Step::Reorder { path, names } => (tree.set_order(path, names.clone()).await, None),
    }
}

/// Steps that failed only because the supervisor at `recorded` is not running apply at its
/// next start, now that its new config is recorded: say so instead of failing.
fn excuse_not_running(
    results: &mut [(&Step, Result<(), TreeError>, Option<String>)],
    recorded: &str,
) {
    for (_, earlier, earlier_note) in results.iter_mut() {
        if matches!(earlier, Err(TreeError::NotRunning(p)) if *p == recorded) {
            *earlier = Ok(());
            *earlier_note = Some(format!("{recorded} is not running; applies when it starts"));
        }
    }
}

/// Puts the children of every supervisor in `grown` back in the file's order.
async fn restore_order(tree: &Tree, target: &SupervisorConfig, mut grown: Vec<String>) {
    grown.sort();
    grown.dedup();
    for path in grown {
        if let Some(names) = names_at(target, &path) {
            if let Err(e) = tree.set_order(&path, names).await {
                tracing::debug!(%path, error = %e, "could not restore the configured order");
            }
        }
    }
}

/// The children names, in order, of the supervisor at `path` in `root`'s config.
fn names_at(root: &SupervisorConfig, path: &str) -> Option<Vec<String>> {
    let mut sup = root;
    for segment in path.split('/').skip(1) {
        sup = sup.children.iter().find_map(|c| match &c.kind {
            Kind::Supervisor(s) if c.name == segment => Some(s),
            _ => None,
        })?;
    }
    Some(sup.children.iter().map(|c| c.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metasystem_actors::testkit::{worker, Probe};
    use metasystem_actors::{ChildSpec, EventSink, Restart, Shutdown, SupervisorSpec, Tree};

    use super::*;
    use crate::kinds::heartbeat::HeartbeatConfig;

    fn child(name: &str) -> ChildConfig {
        ChildConfig {
            name: name.into(),
            restart: Restart::Permanent,
            shutdown: Shutdown::WORKER_DEFAULT,
            start_timeout: None,
            kind: Kind::Heartbeat(HeartbeatConfig {
                every: Duration::from_secs(10),
            }),
        }
    }

    /// A wedged start (no start timeout) must not hold a reload, and with it the reload lock,
    /// forever: past the reload's deadline the step fails and the rest are not attempted.
    #[tokio::test(start_paused = true)]
    async fn a_wedged_step_ends_at_the_reload_deadline() {
        let probe = Probe::new();
        probe.hang_on_start("stuck");
        let tree = Tree::start(SupervisorSpec::default(), EventSink::none())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let build = |c: &ChildConfig| -> ChildSpec { worker(&c.name, &probe).start_timeout(None) };
        let target = SupervisorConfig {
            settings: SupervisorConfig::default_settings(),
            children: vec![child("stuck"), child("later")],
        };
        let steps = vec![
            Step::Add {
                parent: "root".into(),
                position: 0,
                child: child("stuck"),
            },
            Step::Add {
                parent: "root".into(),
                position: 1,
                child: child("later"),
            },
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        let applied = apply(&tree, &steps, &target, &build, false, Some(deadline)).await;
        let outcome: Vec<(String, Option<String>)> =
            applied.into_iter().map(|a| (a.path, a.error)).collect();
        assert_eq!(outcome.len(), 2, "{outcome:?}");
        assert!(
            outcome[0]
                .1
                .as_deref()
                .is_some_and(|e| e.contains("did not answer in time")),
            "{outcome:?}"
        );
        assert_eq!(
            outcome[1],
            (
                "root/later".to_string(),
                Some("not attempted: the reload ran out of time".to_string())
            )
        );
        drop(tree);
    }
}
