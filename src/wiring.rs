//! Config → engine specs: the one place that turns `supervision.toml`'s typed children into the
//! engine's `ChildSpec`s, through the kind list (`crate::kinds`).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use metasystem_actors::ChildSpec;

use crate::config::{ChildConfig, Kind, SupervisorConfig};
pub use crate::kinds::Services;

/// The engine spec of one child: its kind's spec plus the common settings.
pub fn child_spec(config: &ChildConfig, services: &Services) -> ChildSpec {
    config
        .kind
        .child_spec(&config.name, services)
        .restart(config.restart)
        .shutdown(config.shutdown)
        .start_timeout(config.start_timeout)
}

/// Whether any child of kind `name` is configured anywhere in the tree.
pub fn has_kind(config: &SupervisorConfig, name: &str) -> bool {
    config.children.iter().any(|c| {
        c.kind.name() == name
            || match &c.kind {
                Kind::Supervisor(sup) => has_kind(sup, name),
                _ => false,
            }
    })
}

/// The tree paths of every child of kind `name` (depth first, in file order).
pub fn paths_of_kind(config: &SupervisorConfig, parent: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    for c in &config.children {
        let path = format!("{parent}/{}", c.name);
        if c.kind.name() == name {
            found.push(path.clone());
        }
        if let Kind::Supervisor(sup) = &c.kind {
            found.extend(paths_of_kind(sup, &path, name));
        }
    }
    found
}

/// What heal actions act on: the running tree (restart) and the sync targets.
struct HealTree {
    tree: Arc<std::sync::OnceLock<metasystem_actors::Tree>>,
    sync: metasystem_actors::sync::SyncTargets,
}

/// How long a `sync` heal action waits for its run.
const HEAL_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl metasystem_actors::heal::Tree for HealTree {
    fn restart(&self, path: &str) -> BoxFuture<'_, Result<(), String>> {
        let path = path.to_string();
        Box::pin(async move {
            let Some(tree) = self.tree.get() else {
                return Err("the tree is not running yet".to_string());
            };
            tree.restart(&path).await.map_err(|e| e.to_string())
        })
    }

    fn sync(&self, target: &str) -> BoxFuture<'_, Result<String, String>> {
        let target = target.to_string();
        Box::pin(async move {
            use metasystem_actors::sync::{Outcome, RunOptions};
            let report = self
                .sync
                .run(&target, RunOptions::default(), HEAL_SYNC_WAIT)
                .await?;
            match report.outcome {
                Outcome::Success => Ok(format!(
                    "synced {target}: {} file(s) changed",
                    report.files_changed()
                )),
                o => Err(format!(
                    "sync of {target}: {}: {}",
                    o.name(),
                    report.reason.unwrap_or_default()
                )),
            }
        })
    }
}

impl Services {
    /// What the probes' heal actions act on.
    pub fn heal_tree(&self) -> Arc<dyn metasystem_actors::heal::Tree> {
        Arc::new(HealTree {
            tree: self.tree.clone(),
            sync: self.sync.clone(),
        })
    }
}
