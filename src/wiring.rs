//! Config → engine specs, and planned reload steps → tree operations. The only place that knows
//! both the config's kinds and the engine's actor types.

use std::time::Duration;

use metasystem_actors::heartbeat::{HeartbeatActor, HeartbeatArgs};
use metasystem_actors::store::EventStore;
use metasystem_actors::{ChildSpec, SupervisorSpec, Tree, TreeError};

use crate::config::diff::Step;
use crate::config::{ChildConfig, Kind, SupervisorConfig};

/// What actors are given besides their own config.
#[derive(Clone)]
pub struct Services {
    pub store: EventStore,
    /// The systemd watchdog interval, when one is set.
    pub watchdog: Option<Duration>,
}

/// The engine spec of a supervisor and its whole subtree.
pub fn supervisor_spec(config: &SupervisorConfig, services: &Services) -> SupervisorSpec {
    SupervisorSpec::default()
        .with_settings(config.settings)
        .children(config.children.iter().map(|c| child_spec(c, services)))
}

/// The engine spec of one child.
pub fn child_spec(config: &ChildConfig, services: &Services) -> ChildSpec {
    let spec = match &config.kind {
        Kind::Supervisor(sup) => {
            ChildSpec::supervisor(&config.name, supervisor_spec(sup, services))
        }
        Kind::Heartbeat(hb) => {
            let (every, services) = (hb.every, services.clone());
            ChildSpec::worker(&config.name, "heartbeat", move |ctx| {
                (
                    HeartbeatActor,
                    HeartbeatArgs {
                        path: ctx.path.clone(),
                        every,
                        store: Some(services.store.clone()),
                        watchdog: services.watchdog,
                    },
                )
            })
        }
    };
    spec.restart(config.restart).shutdown(config.shutdown)
}

/// Whether any heartbeat is configured anywhere in the tree (the watchdog needs one).
pub fn has_heartbeat(config: &SupervisorConfig) -> bool {
    config.children.iter().any(|c| match &c.kind {
        Kind::Heartbeat(_) => true,
        Kind::Supervisor(sup) => has_heartbeat(sup),
    })
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

/// Runs `steps` (planned towards `target`) in order. With `stop_at_first_error` (startup) the
/// first failure ends the run; otherwise (reload) every step is tried and each failure is
/// reported.
///
/// The running tree can differ from the config the plan started from: temporary children are
/// forgotten once they exit, an operator may have stopped a supervisor. So: removing what is
/// already gone is done; replacing what is gone adds it; steps inside a stopped supervisor whose
/// new config is then recorded are notes, not failures (the config applies when it starts); and
/// every supervisor that got new children has them put back in the file's order.
pub async fn apply(
    tree: &Tree,
    steps: &[Step],
    target: &SupervisorConfig,
    services: &Services,
    stop_at_first_error: bool,
) -> Vec<Applied> {
    // Results stay typed until the end: the "not running" check below matches the error, not
    // its text.
    let mut results: Vec<(&Step, Result<(), TreeError>, Option<String>)> =
        Vec::with_capacity(steps.len());
    let mut grown: Vec<String> = Vec::new();
    for step in steps {
        let mut note = None;
        let result = match step {
            Step::Reconfigure { path, settings } => tree.reconfigure(path, *settings).await,
            Step::Remove { path } => match tree.remove(path).await {
                Err(TreeError::NotFound(_)) => {
                    note = Some("already gone".to_string());
                    Ok(())
                }
                other => other,
            },
            Step::Add {
                parent,
                position,
                child,
            } => {
                grown.push(parent.clone());
                tree.insert_child(parent, child_spec(child, services), *position)
                    .await
            }
            Step::Replace { parent, child } => {
                match tree
                    .replace_child(parent, child_spec(child, services))
                    .await
                {
                    Err(TreeError::NotFound(_)) => {
                        grown.push(parent.clone());
                        note = Some("was gone (a temporary child that exited); started".into());
                        tree.insert_child(parent, child_spec(child, services), usize::MAX)
                            .await
                    }
                    other => other,
                }
            }
            Step::Record { parent, child } => {
                tree.update_spec(parent, child_spec(child, services)).await
            }
            Step::Reorder { path, names } => tree.set_order(path, names.clone()).await,
        };
        if let (Step::Record { .. }, Ok(())) = (step, &result) {
            // Steps that failed only because this supervisor is not running apply at its next
            // start: say so instead of failing.
            let recorded = step.path();
            for (_, earlier, earlier_note) in results.iter_mut() {
                if matches!(earlier, Err(TreeError::NotRunning(p)) if *p == recorded) {
                    *earlier = Ok(());
                    *earlier_note =
                        Some(format!("{recorded} is not running; applies when it starts"));
                }
            }
        }
        let failed = result.is_err();
        results.push((step, result, note));
        if failed && stop_at_first_error {
            break;
        }
    }
    let failed = results.iter().any(|(_, r, _)| r.is_err());
    let applied: Vec<Applied> = results
        .into_iter()
        .map(|(step, result, note)| Applied {
            action: step.verb(),
            path: step.path(),
            error: result.err().map(|e| e.to_string()),
            note,
        })
        .collect();
    if failed && stop_at_first_error {
        return applied;
    }
    grown.sort();
    grown.dedup();
    for path in grown {
        if let Some(names) = names_at(target, &path) {
            if let Err(e) = tree.set_order(&path, names).await {
                tracing::debug!(%path, error = %e, "could not restore the configured order");
            }
        }
    }
    applied
}
