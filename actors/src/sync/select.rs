//! What a target syncs: the selected paths, filtered by `include` / `exclude` globs, minus
//! what is never synced.

use globset::GlobSet;

use super::scan::is_internal;

/// What is synced: paths under the root (files or folders; empty: everything), filtered.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub paths: Vec<String>,
    /// When set, only matching files (relative paths, `/`-separated).
    pub include: Option<GlobSet>,
    pub exclude: Option<GlobSet>,
    /// Paths never synced, whatever the rest says: the backups folder and the snapshotted
    /// databases when they sit under the primary.
    pub never: Vec<String>,
}

impl Selection {
    /// Whether the file `rel` is synced.
    pub fn wants(&self, rel: &str) -> bool {
        self.wants_here(rel) && !self.excluded_above(rel)
    }

    /// Whether a folder above `rel` is excluded: a pattern that matches a folder excludes it
    /// and all it holds, as rsync's do (`exclude = ["node_modules"]` or `["**/cache"]`).
    pub fn excluded_above(&self, rel: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|g| rel.match_indices('/').any(|(i, _)| g.is_match(&rel[..i])))
    }

    /// Whether the folder `rel` is excluded, with all it holds (see [`Selection::excluded_above`]).
    pub fn excludes_folder(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|g| g.is_match(rel))
    }

    /// [`Selection::wants`] without looking at the folders above `rel`: for a walk, which
    /// does not enter an excluded folder.
    pub(crate) fn wants_here(&self, rel: &str) -> bool {
        if is_internal(rel) || self.never.iter().any(|p| under(rel, p)) {
            return false;
        }
        if !self.paths.is_empty() && !self.paths.iter().any(|p| under(rel, p)) {
            return false;
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(rel)) {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|g| g.is_match(rel))
    }
}

/// Whether `rel` is `p` or inside it.
pub(crate) fn under(rel: &str, p: &str) -> bool {
    let p = p.trim_end_matches('/');
    rel == p || (rel.starts_with(p) && rel.as_bytes().get(p.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Option<GlobSet> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(globset::Glob::new(p).unwrap());
        }
        Some(b.build().unwrap())
    }

    #[test]
    fn selection_by_paths_and_globs() {
        let sel = Selection {
            paths: vec!["config/".into(), "notes.db".into()],
            include: None,
            exclude: globs(&["**/*.tmp"]),
            never: vec!["config/backups".into()],
        };
        assert!(!sel.wants("config/backups/x.bak"));
        assert!(sel.wants("config/a.toml"));
        assert!(sel.wants("notes.db"));
        assert!(!sel.wants("configx/a"));
        assert!(!sel.wants("other.db"));
        assert!(!sel.wants("config/x.tmp"));
        let only = Selection {
            paths: vec![],
            include: globs(&["*.toml"]),
            exclude: None,
            never: Vec::new(),
        };
        assert!(only.wants("a.toml"));
        assert!(!only.wants("a.txt"));
    }
}
