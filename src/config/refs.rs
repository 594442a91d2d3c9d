//! References from one child to another (a `process` probe's `process`, a `restart` heal
//! action's `path`, a `sync` heal action's or a `sync_recency` probe's `target`). A kind's parser sees only its own table,
//! so it records each reference with its position; once the whole tree is read, [`check`]
//! resolves them all against it and reports every one that names nothing usable. A reference
//! that would only fail at run time ("root/missing has not started") is a config error.

use std::collections::BTreeMap;
use std::ops::Range;

use super::reader::{suggest, Diags};

/// What a reference must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// The tree path of a `kind = "process"` child.
    Process,
    /// The tree path of any child (an actor or a supervisor).
    Child,
    /// The name of a `kind = "sync_target"` child (targets are known by name).
    SyncTarget,
}

/// One reference, as written.
#[derive(Debug, Clone)]
pub struct Reference {
    pub wants: Wants,
    /// What it names.
    pub value: String,
    /// Where the value is written.
    pub span: Range<usize>,
    /// The key and its table, for messages: "`process` in child `root/p`".
    pub key: &'static str,
    pub context: String,
}

/// What the tree declares and what refers into it, gathered while it is read.
#[derive(Debug, Default)]
pub struct Refs {
    /// The references, in file order.
    pub wanted: Vec<Reference>,
    /// Every child written in the file, by tree path, with its kind (`None`: the kind is
    /// unknown), even when its own keys are invalid: a reference to a child with a typo in
    /// one of its keys is not an error of its own (the typo is reported already).
    pub declared: BTreeMap<String, Option<String>>,
}

fn listing(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn hint(value: &str, candidates: &[&str]) -> String {
    match suggest(value, candidates) {
        Some(close) => format!("; did you mean {close:?}?"),
        None => String::new(),
    }
}

/// Reports every reference that does not name what it must in the tree that was read.
pub fn check(d: &mut Diags, refs: &Refs) {
    let kinds = &refs.declared;
    let of_kind = |kind: &str| -> Vec<&str> {
        kinds
            .iter()
            .filter(|(_, k)| k.as_deref() == Some(kind))
            .map(|(p, _)| p.as_str())
            .collect()
    };
    for r in &refs.wanted {
        let at = format!("`{}` in {}", r.key, r.context);
        let message = match r.wants {
            Wants::Process => {
                let processes = of_kind("process");
                match kinds.get(&r.value).map(Option::as_deref) {
                    // A process, or a child of an unknown kind (reported already).
                    Some(Some("process") | None) => continue,
                    Some(Some(other)) => format!(
                        "{at}: {:?} is a `{other}`, not a `kind = \"process\"` child (processes in the tree: {})",
                        r.value,
                        listing(&processes)
                    ),
                    None => format!(
                        "{at}: {:?} is not in the tree (processes in the tree: {}){}",
                        r.value,
                        listing(&processes),
                        hint(&r.value, &processes)
                    ),
                }
            }
            Wants::Child => {
                if kinds.contains_key(&r.value) {
                    continue;
                }
                let all: Vec<&str> = kinds.keys().map(String::as_str).collect();
                format!(
                    "{at}: {:?} is not in the tree, so there is nothing to restart{}",
                    r.value,
                    hint(&r.value, &all)
                )
            }
            Wants::SyncTarget => {
                let paths = of_kind("sync_target");
                let names: Vec<&str> = paths
                    .iter()
                    .map(|p| p.rsplit('/').next().unwrap_or(p))
                    .collect();
                if names.contains(&r.value.as_str()) {
                    continue;
                }
                let extra = match kinds.get(&r.value) {
                    Some(Some(k)) if k == "sync_target" => format!(
                        "; sync targets are named by their `name` (\"{}\"), not their tree path",
                        r.value.rsplit('/').next().unwrap_or(&r.value)
                    ),
                    _ => hint(&r.value, &names),
                };
                format!(
                    "{at}: {:?} is not the name of a `kind = \"sync_target\"` child (sync targets: {}){extra}",
                    r.value,
                    listing(&names)
                )
            }
        };
        d.error(r.span.clone(), message);
    }
}
