//! Config → engine specs, and planned reload steps → tree operations. The only place that knows
//! both the config's kinds and the engine's actor types.

use std::time::Duration;

use metasystem_actors::event_store::EventStore;
use metasystem_actors::heartbeat::{HeartbeatActor, HeartbeatArgs};
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
}

/// Runs `steps` in order. With `stop_at_first_error` (startup) the first failure ends the run;
/// otherwise (reload) every step is tried and each failure is reported.
pub async fn apply(
    tree: &Tree,
    steps: &[Step],
    services: &Services,
    stop_at_first_error: bool,
) -> Vec<Applied> {
    let mut applied = Vec::with_capacity(steps.len());
    for step in steps {
        let result = match step {
            Step::Reconfigure { path, settings } => tree.reconfigure(path, *settings).await,
            Step::Remove { path } => tree.remove(path).await,
            Step::Add {
                parent,
                position,
                child,
            } => {
                tree.insert_child(parent, child_spec(child, services), *position)
                    .await
            }
            Step::Replace { parent, child } => {
                tree.replace_child(parent, child_spec(child, services))
                    .await
            }
            Step::Record { parent, child } => {
                tree.update_spec(parent, child_spec(child, services)).await
            }
            Step::Reorder { path, names } => tree.set_order(path, names.clone()).await,
        };
        let error = result.err().map(|e: TreeError| e.to_string());
        let failed = error.is_some();
        applied.push(Applied {
            action: step.verb(),
            path: step.path(),
            error,
        });
        if failed && stop_at_first_error {
            break;
        }
    }
    applied
}
