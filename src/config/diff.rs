//! Reload as a diff (Vector's model): compare the running config with the new one and list the
//! smallest set of tree operations that turns one into the other. Children whose config did not
//! change are not touched and keep running with their state. Startup is the diff from a root
//! with no children, so there is one code path.

use metasystem_actors::SupervisorSettings;

use super::{ChildConfig, Kind, SupervisorConfig};

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Change a running supervisor's strategy/intensity/period/backoff in place.
    Reconfigure {
        path: String,
        settings: SupervisorSettings,
    },
    /// Stop and forget a child that is gone from the config.
    Remove { path: String },
    /// Start a new child at this position among its siblings.
    Add {
        parent: String,
        position: usize,
        child: ChildConfig,
    },
    /// Stop a child whose config changed and start it with the new one.
    Replace { parent: String, child: ChildConfig },
    /// A nested supervisor was changed in place (steps above): record its new config in its
    /// parent so a later restart of it starts what the file says.
    Record { parent: String, child: ChildConfig },
    /// Put a supervisor's children in the file's order.
    Reorder { path: String, names: Vec<String> },
}

impl Step {
    /// The tree path the step is about.
    pub fn path(&self) -> String {
        match self {
            Step::Reconfigure { path, .. } | Step::Remove { path } | Step::Reorder { path, .. } => {
                path.clone()
            }
            Step::Add { parent, child, .. }
            | Step::Replace { parent, child }
            | Step::Record { parent, child } => format!("{parent}/{}", child.name),
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Step::Reconfigure { .. } => "reconfigure",
            Step::Remove { .. } => "remove",
            Step::Add { .. } => "add",
            Step::Replace { .. } => "restart with new config",
            Step::Record { .. } => "record new config",
            Step::Reorder { .. } => "reorder",
        }
    }
}

/// The steps that turn the supervisor at `path` configured as `old` into `new`, in the order
/// they must run: removals (reverse start order), settings, additions and replacements (in the
/// new start order), reordering, and last the parent's record of a changed nested supervisor.
pub fn plan(path: &str, old: &SupervisorConfig, new: &SupervisorConfig) -> Vec<Step> {
    let mut steps = Vec::new();
    plan_into(path, old, new, &mut steps);
    steps
}

fn plan_into(path: &str, old: &SupervisorConfig, new: &SupervisorConfig, steps: &mut Vec<Step>) {
    let find = |list: &'_ [ChildConfig], name: &str| list.iter().position(|c| c.name == name);
    for gone in old.children.iter().rev() {
        if find(&new.children, &gone.name).is_none() {
            steps.push(Step::Remove {
                path: format!("{path}/{}", gone.name),
            });
        }
    }
    if old.settings != new.settings {
        steps.push(Step::Reconfigure {
            path: path.to_string(),
            settings: new.settings,
        });
    }
    // The order the tree will have after removals and insertions, to see if a reorder is due.
    let mut order: Vec<&str> = old
        .children
        .iter()
        .filter(|c| find(&new.children, &c.name).is_some())
        .map(|c| c.name.as_str())
        .collect();
    for (position, child) in new.children.iter().enumerate() {
        let Some(before) = find(&old.children, &child.name).map(|i| &old.children[i]) else {
            steps.push(Step::Add {
                parent: path.to_string(),
                position,
                child: child.clone(),
            });
            order.insert(position.min(order.len()), child.name.as_str());
            continue;
        };
        if before == child {
            continue;
        }
        match (&before.kind, &child.kind) {
            (Kind::Supervisor(old_sup), Kind::Supervisor(new_sup))
                if before.restart == child.restart && before.shutdown == child.shutdown =>
            {
                plan_into(&format!("{path}/{}", child.name), old_sup, new_sup, steps);
                steps.push(Step::Record {
                    parent: path.to_string(),
                    child: child.clone(),
                });
            }
            _ => steps.push(Step::Replace {
                parent: path.to_string(),
                child: child.clone(),
            }),
        }
    }
    let wanted: Vec<&str> = new.children.iter().map(|c| c.name.as_str()).collect();
    if order != wanted {
        steps.push(Step::Reorder {
            path: path.to_string(),
            names: wanted.iter().map(|s| s.to_string()).collect(),
        });
    }
}
