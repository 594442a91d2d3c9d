//! What the binary says about itself with no daemon: `--version` naming the commit,
//! `completions SHELL` scripts the shells accept, and the man pages. Skipped (failing under
//! CI) where a shell or man is missing.

use std::process::Command;

use crate::util::{have_tool, run_cli};

/// Subcommands every generated artefact must name: the tree's, a kind's (flattened in from
/// `src/kinds/`), and these two.
const SUBCOMMANDS: &[&str] = &[
    "run",
    "check",
    "status",
    "sync",
    "breakers",
    "completions",
    "man",
];

/// The short hash of HEAD, when the tests run in a git checkout.
fn head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !hash.is_empty()).then_some(hash)
}

#[test]
fn version_names_the_commit_it_is_built_from() {
    let out = run_cli(&["--version"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.trim();
    assert_eq!(line, format!("metasystem {}", metasystem::VERSION));
    assert!(
        line.starts_with(&format!("metasystem {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    match head() {
        // `abc1234 2026-12-07` or `abc1234-dirty 2026-12-07`.
        Some(hash) => assert!(line.contains(&format!("({hash}")), "{line} vs HEAD {hash}"),
        None => eprintln!("skipped the commit check: not in a git checkout ({line})"),
    }
}

fn completions(shell: &str) -> String {
    let out = run_cli(&["completions", shell], &[]);
    assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    for sub in SUBCOMMANDS {
        assert!(out.stdout.contains(sub), "{shell} script names no {sub}");
    }
    out.stdout
}

/// `SHELL -n` (parse, run nothing) on `script`.
/// What fish, with the completion `script` at `path` loaded, offers after `line`.
fn fish_offers(path: &std::path::Path, line: &str) -> Vec<String> {
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!("source {}; complete -C '{line}'", path.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l).to_string())
        .collect()
}

fn parses(shell: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("metasystem.{shell}"));
    std::fs::write(&path, script).unwrap();
    let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{shell} -n refused the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_are_scripts_each_shell_accepts() {
    let bash = completions("bash");
    assert!(bash.contains("complete -F _metasystem"), "{bash}");
    assert!(bash.contains("--dry-run"), "options of subcommands too");
    if have_tool("bash", "bash") {
        parses("bash", &bash);
        // Loaded for real: a completion function is registered for the command.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metasystem.bash");
        std::fs::write(&path, &bash).unwrap();
        let out = Command::new("bash")
            .args([
                "--norc",
                "-c",
                "source \"$1\" && complete -p metasystem",
                "bash",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("_metasystem"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef metasystem"), "{zsh}");
    if Command::new("zsh").arg("--version").output().is_ok() {
        parses("zsh", &zsh);
    }
    let fish = completions("fish");
    assert!(fish.contains("complete -c metasystem"), "{fish}");
    if have_tool("fish", "fish") {
        parses("fish", &fish);
        // Loaded for real: the shells are offered after `completions` (regression: clap's
        // fish script left positional choices out, so fish offered files).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metasystem.fish");
        std::fs::write(&path, &fish).unwrap();
        let offered = fish_offers(&path, "metasystem completions ");
        for shell in ["bash", "zsh", "fish"] {
            assert!(
                offered.iter().any(|o| o == shell),
                "fish offers {offered:?} after `completions`"
            );
        }
        // An option's choices too (`--keep` was parsed by a function, so files were offered).
        let offered = fish_offers(&path, "metasystem conflicts resolve p --keep ");
        assert_eq!(offered, ["both", "local", "remote"], "after --keep");
    }
    let bad = run_cli(&["completions", "tcsh"], &[]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("bash"),
        "the choices are listed: {}",
        bad.stderr
    );
}

#[test]
fn the_man_page_renders_and_names_the_subcommands() {
    let out = run_cli(&["man"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let roff = out.stdout;
    assert!(roff.contains(".TH metasystem 1"), "{roff}");
    assert!(
        roff.contains(metasystem::VERSION),
        "the version in the footer: {roff}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            roff.contains(&format!("metasystem\\-{sub}")),
            "{sub} in\n{roff}"
        );
    }

    // One page per command with --dir.
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    let out = run_cli(&["man", "--dir", &shown], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "metasystem.1",
        "metasystem-sync.1",
        "metasystem-completions.1",
        "metasystem-chaos-stop.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie \\n(.g") || text.contains(".TH "),
            "{page}: {text}"
        );
    }
    let missing = run_cli(&["man", "--dir", &format!("{shown}/nope")], &[]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nope: No such file or directory"),
        "{}",
        missing.stderr
    );
    let file = dir.path().join("metasystem.1");
    let not_dir = run_cli(&["man", "--dir", &file.display().to_string()], &[]);
    assert_eq!(not_dir.code, 2);
    assert!(
        not_dir.stderr.contains("metasystem.1: not a directory"),
        "{}",
        not_dir.stderr
    );

    // A link where a page goes is replaced, never written through (regression: a page
    // overwrote the file a planted link pointed at, outside DIR).
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "VICTIM").unwrap();
    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&victim, linked.path().join("metasystem.1")).unwrap();
    let out = run_cli(&["man", "--dir", &linked.path().display().to_string()], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "VICTIM");
    let page = linked.path().join("metasystem.1");
    assert!(!page.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&page).unwrap().contains(".TH "));
    // A page that cannot be written says how far it got, and leaves no temp file.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::create_dir(blocked.path().join("metasystem-sync.1")).unwrap();
    let out = run_cli(
        &["man", "--dir", &blocked.path().display().to_string()],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("metasystem-sync.1") && out.stderr.contains("pages written"),
        "{}",
        out.stderr
    );
    let temps: Vec<_> = std::fs::read_dir(blocked.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");

    // Rendered by man(1) as a reader sees it, with groff's warnings on.
    if !have_tool("man", "man-db") {
        return;
    }
    let page = dir.path().join("metasystem.1");
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l: {warnings}");
    assert!(warnings.trim().is_empty(), "man warned: {warnings}");
    assert!(
        text.contains("SUBCOMMANDS") && text.contains("metasystem-sync"),
        "{text}"
    );
}
