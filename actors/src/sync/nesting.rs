//! Where a target may not be: inside its primary (a run would copy the target into itself),
//! around it (the primary's files would be synced twice, once as the target's), or around the
//! daemon's state dir (its live store would be synced as plain files). Checked by the config
//! (`check`, reload) and again before each run, on the paths as the filesystem resolves them:
//! a symlink on the way (`~/link-to-primary/sub`) is no way around it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// How a target is placed where it must not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// The target and the primary are one folder.
    Same,
    /// The target is inside the primary.
    TargetInPrimary,
    /// The primary is inside the target.
    PrimaryInTarget,
    /// The daemon's state dir is the target or inside it.
    StateInTarget,
}

/// One nesting found, with the paths as configured and as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub nesting: Nesting,
    message: String,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `path` with its symlinks resolved, whether it exists or not: its longest existing ancestor
/// canonicalized and the rest appended (`.` dropped, `..` taking back the component before
/// it: what does not exist yet holds no symlink). A relative path is taken from the current
/// directory.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parts: Vec<Component<'_>> = abs.components().collect();
    for k in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..k].iter().collect();
        if let Ok(real) = std::fs::canonicalize(&head) {
            return append(real, &parts[k..]);
        }
    }
    append(PathBuf::new(), &parts)
}

fn append(mut out: PathBuf, rest: &[Component<'_>]) -> PathBuf {
    for c in rest {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Every way the target is placed where it must not be (see [`Nesting`]), paths resolved
/// ([`resolve`]). The state dir inside the target is not told again when it is inside the
/// primary and the primary and the target already nest.
pub fn nestings(primary: &Path, target: &Path, state_dir: &Path) -> Vec<Found> {
    let (p, t, s) = (resolve(primary), resolve(target), resolve(state_dir));
    let show = |what: &str, given: &Path, real: &Path| {
        if given == real {
            format!("{what} {}", given.display())
        } else {
            format!("{what} {} (resolved: {})", given.display(), real.display())
        }
    };
    let (primary_, target_) = (show("primary", primary, &p), show("target", target, &t));
    let mut out = Vec::new();
    let mut found = |nesting, message: String| out.push(Found { nesting, message });
    let nest = if p == t {
        found(
            Nesting::Same,
            format!("the {target_} and the {primary_} are the same folder"),
        );
        true
    } else if t.starts_with(&p) {
        found(
            Nesting::TargetInPrimary,
            format!("the {target_} is inside the {primary_}"),
        );
        true
    } else if p.starts_with(&t) {
        found(
            Nesting::PrimaryInTarget,
            format!("the {primary_} is inside the {target_}"),
        );
        true
    } else {
        false
    };
    if s.starts_with(&t) && !(nest && s.starts_with(&p)) {
        let how = if s == t { "is" } else { "is inside" };
        found(
            Nesting::StateInTarget,
            format!(
                "the daemon's {} {how} the {target_}",
                show("state dir", state_dir, &s)
            ),
        );
    }
    out
}

/// Why the target may not be where it is, `None` when it may: the target inside the primary,
/// the primary inside the target, or the state dir inside the target, the paths resolved
/// ([`resolve`]). Several are told together, `; `-separated.
pub fn nesting_error(primary: &Path, target: &Path, state_dir: &Path) -> Option<String> {
    let found = nestings(primary, target, state_dir);
    (!found.is_empty()).then(|| {
        found
            .iter()
            .map(Found::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn kinds(primary: &Path, target: &Path, state: &Path) -> Vec<Nesting> {
        nestings(primary, target, state)
            .iter()
            .map(|f| f.nesting)
            .collect()
    }

    #[test]
    fn resolving_follows_symlinks_and_keeps_what_does_not_exist() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink(root.join("real"), root.join("link")).unwrap();
        assert_eq!(resolve(&root.join("link/sub")), root.join("real/sub"));
        assert_eq!(
            resolve(&root.join("link/not/yet/there")),
            root.join("real/not/yet/there")
        );
        assert_eq!(
            resolve(&root.join("link/not/.././sub2")),
            root.join("real/sub2")
        );
        assert_eq!(resolve(&root.join("real/sub/..")), root.join("real"));
        // A file on the way: what follows it is appended.
        std::fs::write(root.join("real/f"), "x").unwrap();
        assert_eq!(resolve(&root.join("link/f/x")), root.join("real/f/x"));
    }

    #[test]
    fn each_nesting_is_found_and_told() {
        let d = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(d.path()).unwrap();
        let (p, t, s) = (r.join("p"), r.join("t"), r.join("state"));
        assert_eq!(nesting_error(&p, &t, &s), None);
        assert_eq!(nesting_error(&p, &r.join("px"), &s), None);
        assert_eq!(kinds(&p, &p, &s), [Nesting::Same]);
        assert_eq!(kinds(&p, &p.join("t"), &s), [Nesting::TargetInPrimary]);
        assert_eq!(kinds(&t.join("p"), &t, &s), [Nesting::PrimaryInTarget]);
        assert_eq!(kinds(&p, &t, &t.join("state")), [Nesting::StateInTarget]);
        assert_eq!(kinds(&p, &s, &s), [Nesting::StateInTarget]);
        // The state dir is the primary (the default): told once, as the primary.
        assert_eq!(kinds(&s, &r, &s), [Nesting::PrimaryInTarget]);
        // Both, independently.
        assert_eq!(
            kinds(&r.join("t/p"), &t, &r.join("t/state")),
            [Nesting::PrimaryInTarget, Nesting::StateInTarget]
        );
        let e = nesting_error(&p, &p.join("t"), &s).unwrap();
        assert_eq!(
            e,
            format!(
                "the target {}/p/t is inside the primary {}/p",
                r.display(),
                r.display()
            )
        );
        let e = nesting_error(&t.join("p"), &t, &t.join("s")).unwrap();
        assert!(
            e.starts_with(&format!(
                "the primary {}/t/p is inside the target",
                r.display()
            )),
            "{e}"
        );
        let e = nesting_error(&p, &t, &t.join("s")).unwrap();
        assert_eq!(
            e,
            format!(
                "the daemon's state dir {}/t/s is inside the target {}/t",
                r.display(),
                r.display()
            )
        );
        let e = nesting_error(&r.join("a/p"), &r.join("a"), &r.join("a/s")).unwrap();
        assert!(e.contains("; the daemon's state dir"), "{e}");
    }

    /// A symlink on the way is no way around the check: `~/link-to-primary/sub` as a target.
    #[test]
    fn a_target_inside_the_primary_through_a_symlink_is_found() {
        let d = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(d.path()).unwrap();
        let primary = r.join("primary");
        std::fs::create_dir_all(&primary).unwrap();
        symlink(&primary, r.join("link-to-primary")).unwrap();
        let target = r.join("link-to-primary/sub");
        let e = nesting_error(&primary, &target, &r.join("state")).unwrap();
        assert_eq!(
            e,
            format!(
                "the target {} (resolved: {}) is inside the primary {}",
                target.display(),
                primary.join("sub").display(),
                primary.display()
            )
        );
        // And the other way: a primary reached through a link to the target.
        let t = r.join("target");
        std::fs::create_dir_all(t.join("inner")).unwrap();
        symlink(t.join("inner"), r.join("inner-link")).unwrap();
        assert_eq!(
            kinds(&r.join("inner-link"), &t, &r.join("state")),
            [Nesting::PrimaryInTarget]
        );
        // The state dir through a link into the target.
        symlink(&t, r.join("t-link")).unwrap();
        assert_eq!(
            kinds(&primary, &t, &r.join("t-link/.metasystem")),
            [Nesting::StateInTarget]
        );
        // A link to a folder beside the primary is fine.
        std::fs::create_dir_all(r.join("beside")).unwrap();
        symlink(r.join("beside"), r.join("beside-link")).unwrap();
        assert_eq!(
            nesting_error(&primary, &r.join("beside-link/x"), &r.join("state")),
            None
        );
    }
}
