//! Config → engine specs: the one place that turns `supervision.toml`'s typed children into the
//! engine's `ChildSpec`s, through the kind list (`crate::kinds`).

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
