//! What a target syncs: the selected paths, filtered by `include` / `exclude` patterns, minus
//! what is never synced.
//!
//! The patterns follow gitignore's rules, which are rsync's except where marked (*):
//!
//! - a pattern without a `/` (a trailing one aside) matches a name at any depth: `node_modules`,
//!   `*.tmp`, `.DS_Store`;
//! - a pattern with a `/` at its start or in its middle is anchored at the root of the synced
//!   tree (the primary, the target): `/build` and `docs/*.md` match only from the root; a
//!   leading `/` anchors and is dropped. (*) rsync matches `docs/*.md` at any depth (only a
//!   leading `/` anchors there); here that is written `**/docs/*.md`;
//! - `*`, `?` and `[...]` never match a `/`; `**` as a whole component matches any number of
//!   folders: `**/cache`, `logs/**`, `a/**/b`. (*) `a/**/b` also matches `a/b` (rsync's needs a
//!   folder between them); (*) a `**` that is not a whole component (`a**`) is a `*`; (*)
//!   `{a,b}` alternatives work (globset's);
//! - a trailing `/` matches folders only: `cache/` is every folder named `cache`, not a file;
//! - an exclude pattern that matches a folder excludes it and all it holds (the scan does not
//!   read it);
//! - `include`, when set, syncs only the files a pattern matches, and all a folder it matches
//!   holds (`include = ["docs/"]`: everything in every `docs` folder). Folders are walked
//!   whether an include pattern matches them or not (as rsync's include does not stop a
//!   walk), so `*.md` finds the Markdown files at every depth. Exclude wins over include.
//!
//! Patterns are translated once into globset globs: `name` into `**/name`, an anchored `a/b`
//! kept as it is, with `*` not crossing `/`.

use std::sync::Arc;

use globset::{Candidate, Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::scan::is_internal;

/// One include or exclude pattern, as written and translated.
#[derive(Debug, Clone)]
pub struct Pattern {
    written: String,
    glob: Glob,
    /// Written with a trailing `/`: matches folders only.
    folders_only: bool,
}

impl Pattern {
    /// Translates `written`; the error says what is wrong with it (to follow the pattern in a
    /// message: "\"a//b\" has an empty path component").
    pub fn new(written: &str) -> Result<Pattern, String> {
        let folders_only = written.ends_with('/');
        let text = written.trim_end_matches('/');
        let anchored_at_start = text.starts_with('/');
        let body = text.strip_prefix('/').unwrap_or(text);
        if body.is_empty() {
            return Err("names no file or folder".into());
        }
        let parts = || body.split('/');
        if parts().any(str::is_empty) {
            return Err("has an empty path component (`//`)".into());
        }
        if parts().any(|c| c == "." || c == "..") {
            return Err(
                "has a `.` or `..` component: patterns are relative to the root of the synced \
                 tree"
                    .into(),
            );
        }
        let anchored = anchored_at_start || body.contains('/');
        let glob = if anchored || body == "**" {
            body.to_string()
        } else {
            format!("**/{body}")
        };
        let glob = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("is not a glob: {}", e.kind()))?;
        Ok(Pattern {
            written: written.to_string(),
            glob,
            folders_only,
        })
    }

    /// The pattern as written.
    pub fn written(&self) -> &str {
        &self.written
    }
}

/// Include or exclude patterns, compiled once (and shared by the clones).
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    written: Vec<String>,
    sets: Arc<Sets>,
}

#[derive(Debug, Default)]
struct Sets {
    /// The patterns that match files and folders.
    any: GlobSet,
    /// Those written with a trailing `/`: folders only.
    folders: GlobSet,
}

impl PartialEq for Patterns {
    fn eq(&self, o: &Self) -> bool {
        self.written == o.written
    }
}

impl Patterns {
    pub fn new(patterns: Vec<Pattern>) -> Result<Patterns, String> {
        let (mut any, mut folders) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut written = Vec::with_capacity(patterns.len());
        for p in patterns {
            if p.folders_only {
                folders.add(p.glob);
            } else {
                any.add(p.glob);
            }
            written.push(p.written);
        }
        let sets = Sets {
            any: any.build().map_err(|e| e.to_string())?,
            folders: folders.build().map_err(|e| e.to_string())?,
        };
        Ok(Patterns {
            written,
            sets: Arc::new(sets),
        })
    }

    /// Translates and compiles `written`; the first bad pattern is the error, named.
    pub fn parse<S: AsRef<str>>(written: impl IntoIterator<Item = S>) -> Result<Patterns, String> {
        let mut out = Vec::new();
        for w in written {
            let w = w.as_ref();
            out.push(Pattern::new(w).map_err(|e| format!("{w:?} {e}"))?);
        }
        Patterns::new(out)
    }

    /// The patterns as written, in order.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// Whether a pattern matches the file `rel` (a relative, `/`-separated path).
    pub fn matches_file(&self, rel: &str) -> bool {
        self.sets.any.is_match(rel)
    }

    /// Whether a pattern matches the folder `rel`.
    pub fn matches_folder(&self, rel: &str) -> bool {
        let c = Candidate::new(rel);
        self.sets.any.is_match_candidate(&c) || self.sets.folders.is_match_candidate(&c)
    }

    /// Whether a pattern matches a folder above `rel`.
    pub fn matches_above(&self, rel: &str) -> bool {
        above(rel).any(|a| self.matches_folder(a))
    }
}

/// The folders above `rel`, outermost first: `a`, `a/b` for `a/b/c`.
fn above(rel: &str) -> impl Iterator<Item = &str> + '_ {
    rel.match_indices('/').map(|(i, _)| &rel[..i])
}

/// What is synced: paths under the root (files or folders; empty: everything), filtered.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub paths: Vec<String>,
    /// When set, only the files it matches, and those in a folder it matches.
    pub include: Option<Patterns>,
    /// The files it matches, and the folders it matches with all they hold, are not synced.
    pub exclude: Option<Patterns>,
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
    /// and all it holds, as rsync's do (`exclude = ["node_modules"]` or `["cache/"]`).
    pub fn excluded_above(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|x| x.matches_above(rel))
    }

    /// Whether the folder `rel` is excluded, with all it holds (see [`Selection::excluded_above`]).
    pub fn excludes_folder(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|x| x.matches_folder(rel))
    }

    /// Whether everything the folder `rel` may hold is excluded, whatever its name
    /// (`cache/**`, `cache/*`): tried with a name no pattern names.
    pub fn excludes_all_in(&self, rel: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|x| x.matches_file(&format!("{rel}/\u{1}")))
    }

    /// [`Selection::wants`] without looking at the excluded folders above `rel`: for a walk,
    /// which does not enter an excluded folder.
    pub(crate) fn wants_here(&self, rel: &str) -> bool {
        if is_internal(rel) || self.never.iter().any(|p| under(rel, p)) {
            return false;
        }
        if !self.paths.is_empty() && !self.paths.iter().any(|p| under(rel, p)) {
            return false;
        }
        if self
            .include
            .as_ref()
            .is_some_and(|i| !i.matches_file(rel) && !i.matches_above(rel))
        {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|x| x.matches_file(rel))
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

    fn pats(written: &[&str]) -> Patterns {
        Patterns::parse(written).unwrap()
    }

    fn excluding(written: &[&str]) -> Selection {
        Selection {
            exclude: Some(pats(written)),
            ..Default::default()
        }
    }

    /// For each pattern: the files it excludes and the files it leaves (as files, folders
    /// above them included).
    #[test]
    fn exclude_patterns_follow_the_rules() {
        let table: &[(&str, &[&str], &[&str])] = &[
            // A bare name: at any depth, a file or a folder and all it holds.
            (
                "node_modules",
                &[
                    "node_modules",
                    "node_modules/a.js",
                    "x/y/node_modules/m/i.js",
                ],
                &["node_modules.txt", "x/my_node_modules/a", "nodemodules"],
            ),
            (
                "*.tmp",
                &["a.tmp", "x/y/.b.tmp", "z.tmp/inside"],
                &["a.tmpx", "tmp"],
            ),
            (
                ".DS_Store",
                &[".DS_Store", "a/b/.DS_Store"],
                &["a/.DS_Store2"],
            ),
            (".*", &[".env", "x/.git/config"], &["a.txt", "x/a.b"]),
            ("a b.txt", &["a b.txt", "my dir/a b.txt"], &["a_b.txt"]),
            ("?.txt", &["a.txt", "x/b.txt"], &["ab.txt", ".txt"]),
            ("[ab].txt", &["a.txt", "x/b.txt"], &["c.txt"]),
            // A leading `/` anchors at the root.
            (
                "/build",
                &["build", "build/out.o"],
                &["x/build", "x/build/o"],
            ),
            // A `/` in the middle anchors too (gitignore's rule).
            ("a/b", &["a/b", "a/b/c"], &["x/a/b", "a/bc", "b"]),
            (
                "docs/*.md",
                &["docs/r.md"],
                &["x/docs/r.md", "docs/sub/s.md", "r.md"],
            ),
            (
                "a/*/c",
                &["a/q/c", "a/q/c/f"],
                &["a/c", "a/q/r/c", "x/a/q/c"],
            ),
            ("/a/b", &["a/b"], &["x/a/b"]),
            // `**` crosses folders, none included.
            (
                "**/cache",
                &["cache/f", "x/y/cache", "x/cache/f"],
                &["cachex", "x/cache2"],
            ),
            ("**/a/b", &["a/b", "x/a/b", "x/y/a/b/c"], &["a/c/b"]),
            ("logs/**", &["logs/a", "logs/old/b"], &["x/logs/a", "logs"]),
            (
                "a/**/c",
                &["a/c", "a/q/c", "a/q/r/c/f"],
                &["x/a/c", "a/q/cc"],
            ),
            ("**", &["a", "x/y"], &[]),
            // A trailing `/`: folders only, at any depth without another `/`.
            (
                "cache/",
                &["cache/f", "x/cache/g"],
                &["cache", "x/cache", "cachex/f"],
            ),
            ("x/cache/", &["x/cache/g"], &["y/x/cache/g", "x/cache"]),
            ("/cache/", &["cache/f"], &["x/cache/g"]),
            ("*/", &["a/b", "x/y/z"], &["a", ".env"]),
        ];
        for (pattern, out, kept) in table {
            let sel = excluding(&[pattern]);
            for rel in *out {
                assert!(!sel.wants(rel), "{pattern:?} keeps {rel:?}");
            }
            for rel in *kept {
                assert!(sel.wants(rel), "{pattern:?} excludes {rel:?}");
            }
        }
    }

    #[test]
    fn folders_only_patterns_exclude_folders_not_files() {
        let sel = excluding(&["cache/", "*.d/"]);
        assert!(sel.excludes_folder("cache") && sel.excludes_folder("x/cache"));
        assert!(sel.excludes_folder("conf.d") && !sel.wants("conf.d/a"));
        assert!(sel.wants("cache") && sel.wants("x/conf.d"));
        assert!(sel.excluded_above("x/cache/f") && !sel.excluded_above("x/cache"));
        // Everything in a folder excluded (for a watch: a folder created there is no change).
        assert!(excluding(&["cache/**"]).excludes_all_in("cache"));
        assert!(excluding(&["x/*"]).excludes_all_in("x"));
        assert!(!excluding(&["x/*/"]).excludes_all_in("x"));
        assert!(!excluding(&["*.tmp"]).excludes_all_in("x"));
    }

    #[test]
    fn include_selects_files_and_what_matched_folders_hold() {
        let only = |written: &[&str]| Selection {
            include: Some(pats(written)),
            ..Default::default()
        };
        let table: &[(&[&str], &[&str], &[&str])] = &[
            (&["*.toml"], &["a.toml", "x/y/b.toml"], &["a.txt", "toml"]),
            (
                &["/docs/*.md"],
                &["docs/a.md"],
                &["x/docs/a.md", "docs/s/a.md"],
            ),
            // A folder matched: all it holds.
            (&["docs/"], &["docs/a", "x/docs/s/b"], &["docs", "docsx/a"]),
            (&["/shared"], &["shared", "shared/a/b"], &["x/shared/a"]),
            (&["notes", "*.db"], &["notes/a", "x.db", "x/notes"], &["a"]),
        ];
        for (patterns, wanted, not) in table {
            let sel = only(patterns);
            for rel in *wanted {
                assert!(sel.wants(rel), "{patterns:?} leaves out {rel:?}");
            }
            for rel in *not {
                assert!(!sel.wants(rel), "{patterns:?} selects {rel:?}");
            }
        }
        // Exclude wins; an include does not stop a folder from being walked.
        let both = Selection {
            exclude: Some(pats(&["drafts"])),
            ..only(&["*.md"])
        };
        assert!(both.wants("a/b/c.md") && !both.wants("drafts/c.md"));
        assert!(both.wants("x/drafts.md") && !both.excludes_folder("a"));
    }

    #[test]
    fn selection_by_paths_and_patterns() {
        let sel = Selection {
            paths: vec!["config/".into(), "notes.db".into()],
            include: None,
            exclude: Some(pats(&["*.tmp"])),
            never: vec!["config/backups".into()],
        };
        assert!(!sel.wants("config/backups/x.bak"));
        assert!(sel.wants("config/a.toml"));
        assert!(sel.wants("notes.db"));
        assert!(!sel.wants("configx/a"));
        assert!(!sel.wants("other.db"));
        assert!(!sel.wants("config/x.tmp"));
        assert!(!sel.wants("config/deep/x.tmp"));
        // This tool's own files, whatever the patterns say.
        let all = Selection {
            include: Some(pats(&["**"])),
            ..Default::default()
        };
        assert!(!all.wants(super::super::scan::MARKER));
        assert!(!all.wants(".metasystem-hosts/h/metastore.db") && all.wants("hosts/h/x"));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (written, why) in [
            ("", "names no file or folder"),
            ("/", "names no file or folder"),
            ("//", "names no file or folder"),
            ("a//b", "empty path component"),
            ("//a", "empty path component"),
            ("../a", "`..` component"),
            ("a/./b", "`..` component"),
            ("{a,b", "is not a glob: unclosed alternate group"),
            ("a\\", "is not a glob: dangling"),
            ("[a", "is not a glob: unclosed character class"),
        ] {
            match Pattern::new(written) {
                Ok(p) => panic!("{written:?} accepted as {p:?}"),
                Err(e) => assert!(e.contains(why), "{written:?}: {e}"),
            }
        }
        let e = Patterns::parse(["ok", "a//b"]).unwrap_err();
        assert!(e.starts_with("\"a//b\" has an empty"), "{e}");
        // Equal when written the same; kept as written.
        assert_eq!(pats(&["a", "b/"]), pats(&["a", "b/"]));
        assert_ne!(pats(&["a"]), pats(&["/a"]));
        assert_eq!(pats(&["cache/"]).written(), ["cache/"]);
    }

    #[test]
    fn under_is_by_component() {
        assert!(under("a/b", "a") && under("a", "a") && under("a/b", "a/"));
        assert!(!under("ab", "a") && !under("a", "a/b"));
    }
}
