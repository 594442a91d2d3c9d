//! Include and exclude patterns against real rsync: for each pattern, the files a scan selects
//! are the files `rsync -a` copies with the pattern of the same meaning. Where the meanings
//! are written differently (a `/` in the middle anchors here, as gitignore's; rsync anchors
//! only with a leading one; `a/**/c` matches `a/c` here), the rsync side says it its way.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use metasystem_actors::sync::scan::scan;
use metasystem_actors::sync::select::Patterns;
use metasystem_actors::sync::Selection;

/// Files of the tree; the folders are those on their way.
const TREE: &[&str] = &[
    "README",
    "a.txt",
    "b.txt",
    "ab.txt",
    "a/b",
    "a/bb",
    "a/c/f",
    "a/q/c/g",
    "a/q/r/c/h",
    "x/a/b",
    "x/a/c/k",
    "build/out.o",
    "x/build/o2.o",
    "src/build",
    "docs/r.md",
    "docs/r.txt",
    "docs/sub/s.md",
    "x/docs/t.md",
    "cache/c1",
    "x/cache/c2",
    "x/y/cache/c3",
    "y/cache",
    "logs/l1",
    "logs/old/l2",
    "x/logs/l3",
    "node_modules/m/i.js",
    "x/node_modules/n.js",
    "deep/er/node_modules/p.js",
    "deep/er/still/q.txt",
    "z.tmp",
    "x/.hidden.tmp",
    "y.tmp/inside",
    ".DS_Store",
    "x/y/.DS_Store",
    ".git/config",
    ".env",
    "my dir/a b.txt",
    "my dir/plain",
    "x/my dir/c.txt",
    "x/a b.txt",
];

/// Exclude patterns: ours, and the same meaning in rsync's words.
const EXCLUDES: &[(&[&str], &[&str])] = &[
    // Bare names and globs without a `/`: at any depth, files and folders.
    (&["node_modules"], &["node_modules"]),
    (&["*.tmp"], &["*.tmp"]),
    (&[".DS_Store"], &[".DS_Store"]),
    (&[".*"], &[".*"]),
    (&["build"], &["build"]),
    (&["a b.txt"], &["a b.txt"]),
    (&["my dir"], &["my dir"]),
    (&["* *"], &["* *"]),
    (&["?.txt"], &["?.txt"]),
    (&["[ab].txt"], &["[ab].txt"]),
    (&["*"], &["*"]),
    // Anchored by a leading `/`.
    (&["/build"], &["/build"]),
    (&["/a/b"], &["/a/b"]),
    (&["/a/**"], &["/a/**"]),
    // Anchored by a `/` in the middle (rsync: only a leading `/` anchors).
    (&["a/b"], &["/a/b"]),
    (&["docs/*.md"], &["/docs/*.md"]),
    (&["a/*/c"], &["/a/*/c"]),
    (&["x/*"], &["/x/*"]),
    (&["my dir/plain"], &["/my dir/plain"]),
    // `**`.
    (&["**/cache"], &["**/cache"]),
    (&["**/a/b"], &["**/a/b"]),
    (&["**/x/cache"], &["x/cache"]),
    (&["logs/**"], &["/logs/**"]),
    (&["**/logs/**"], &["logs/**"]),
    (&["a/**/c"], &["/a/**/c", "/a/c"]),
    (&["deep/**/node_modules"], &["/deep/**/node_modules"]),
    // A trailing `/`: folders only.
    (&["cache/"], &["cache/"]),
    (&["**/cache/"], &["**/cache/"]),
    (&["/cache/"], &["/cache/"]),
    (&["x/cache/"], &["/x/cache/"]),
    (&["*/"], &["*/"]),
    (&["*.tmp/"], &["*.tmp/"]),
    // Several.
    (
        &["node_modules", "*.tmp", "/docs/sub", "my dir/"],
        &["node_modules", "*.tmp", "/docs/sub", "my dir/"],
    ),
];

/// Include patterns: ours, and rsync's `--include` rules of the same meaning, tried after
/// `--include='*/'` (every folder walked) and before `--exclude='*'`.
const INCLUDES: &[(&[&str], &[&str])] = &[
    (&["*.md"], &["*.md"]),
    (&["/docs/*.md"], &["/docs/*.md"]),
    (&["docs/*.md"], &["/docs/*.md"]),
    // A folder matched: all it holds.
    (&["docs/"], &["docs/**"]),
    (&["/x"], &["/x/**"]),
    (&["*.txt", "cache/"], &["*.txt", "cache/**"]),
];

/// Whether rsync is here to compare with: it must be under CI (`.ci/run` installs it);
/// elsewhere the comparison is skipped, saying so.
fn rsync_present() -> bool {
    let here = Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "rsync is not installed (CI installs it: .ci/run)"
        );
        eprintln!("skipped: rsync is not installed");
    }
    here
}

fn build(root: &Path) {
    for f in TREE {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f).unwrap();
    }
}

/// Regular files under `root`, relative, `/`-separated.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), &rel, out);
            } else if ft.is_file() {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, "", &mut out);
    out
}

/// What rsync copies of `src` with `rules` (`--exclude=...` and such).
fn rsync(src: &Path, scratch: &Path, rules: &[String]) -> BTreeSet<String> {
    let dst = scratch.join("dst");
    if dst.exists() {
        std::fs::remove_dir_all(&dst).unwrap();
    }
    let out = Command::new("rsync")
        .arg("-a")
        .args(rules)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync {rules:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files(&dst)
}

fn ours(src: &Path, sel: &Selection) -> BTreeSet<String> {
    scan(src, sel)
        .unwrap()
        .paths
        .iter()
        .map(str::to_string)
        .collect()
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (
        a.difference(b).cloned().collect(),
        b.difference(a).cloned().collect(),
    )
}

#[test]
fn patterns_select_what_rsync_copies() {
    if !rsync_present() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    build(&src);
    let all = files(&src);
    assert_eq!(all.len(), TREE.len());
    assert_eq!(ours(&src, &Selection::default()), all);
    assert_eq!(rsync(&src, d.path(), &[]), all);

    let mut failures = Vec::new();
    let mut check = |what: &str, mine: &[&str], sel: Selection, rules: Vec<String>| {
        let (got, want) = (ours(&src, &sel), rsync(&src, d.path(), &rules));
        // Every row changes something (none passes by matching nothing).
        assert!(got != all, "{what} {mine:?} selects everything");
        let same = if got == want {
            "as rsync"
        } else {
            "NOT as rsync"
        };
        eprintln!(
            "{what} {mine:?}: {} of {} files, {same}",
            got.len(),
            all.len()
        );
        if got != want {
            let (extra, missing) = diff(&got, &want);
            failures.push(format!(
                "{what} {mine:?} (rsync {rules:?}): selected but not copied by rsync: \
                 {extra:?}; copied by rsync but not selected: {missing:?}"
            ));
        }
    };
    for (mine, theirs) in EXCLUDES {
        let sel = Selection {
            exclude: Some(Patterns::parse(*mine).unwrap()),
            ..Default::default()
        };
        let rules = theirs.iter().map(|p| format!("--exclude={p}")).collect();
        check("exclude", mine, sel, rules);
    }
    for (mine, theirs) in INCLUDES {
        let sel = Selection {
            include: Some(Patterns::parse(*mine).unwrap()),
            ..Default::default()
        };
        let rules = std::iter::once("--include=*/".to_string())
            .chain(theirs.iter().map(|p| format!("--include={p}")))
            .chain(std::iter::once("--exclude=*".to_string()))
            .collect();
        check("include", mine, sel, rules);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The two places where the rules are gitignore's, not rsync's, stated by rsync itself: its
/// `a/b` matches at any depth, and its `a/**/c` needs a folder between `a` and `c`.
#[test]
fn where_the_rules_differ_from_rsyncs_on_purpose() {
    if !rsync_present() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    build(&src);
    // The pattern; what ours selects that rsync does not copy; what rsync copies that ours
    // does not select.
    let table: [(&str, &[&str], &[&str]); 2] =
        [("a/b", &["x/a/b"], &[]), ("a/**/c", &[], &["a/c/f"])];
    for (pattern, extra, missing) in table {
        let sel = Selection {
            exclude: Some(Patterns::parse([pattern]).unwrap()),
            ..Default::default()
        };
        let got = ours(&src, &sel);
        let want = rsync(&src, d.path(), &[format!("--exclude={pattern}")]);
        let (e, m) = diff(&got, &want);
        assert_eq!(e, extra, "{pattern}: selected here, not copied by rsync");
        assert_eq!(m, missing, "{pattern}: copied by rsync, not selected here");
    }
}
