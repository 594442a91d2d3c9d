//! The progress bar of `metasystem sync TARGET` against a real daemon, on runs long enough to
//! show one (10,000 files to copy): none when stderr is not a terminal; on a terminal (the CLI
//! run under `script`, which gives it a pty) the running counters, cleared before the summary;
//! none on a terminal with `--json` or in CI.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{write_file, TestDaemon, BIN};

const FILES: usize = 10_000;
/// A run this long must have shown the bar (shown after 1 s, polled every 200 ms).
const LONG_ENOUGH: Duration = Duration::from_millis(1_600);

/// Writes (or rewrites) `n` files of the tree, with contents of round `round`, so the next
/// run copies them all.
fn files(dir: &Path, round: usize, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("shared/d{:02}", i % 30));
        if i < 30 {
            std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        }
        write_file(
            sub.join(format!("f{i:05}.txt")),
            format!("round {round} file {i} {}", "x".repeat(2_000)),
        );
    }
}

/// The last run's length, from `sync status`.
fn took(d: &TestDaemon) -> Duration {
    let s = d.json(&["sync", "status"], 0);
    let ms = s["targets"][0]["last"]["took_ms"].as_u64().unwrap_or(0);
    Duration::from_millis(ms)
}

/// Whether `script` (util-linux/bsdutils) is here to give the CLI a terminal.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `metasystem --socket S ARGS` on a pseudo-terminal (stdout and stderr both on it), with
/// `env` set and CI unset unless `env` sets it; its exit code and what the terminal received.
fn on_a_terminal(d: &TestDaemon, args: &str, env: &[(&str, &str)]) -> (i32, String) {
    let line = format!("{BIN} --socket {} {args}", d.socket.display());
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-f", "-e", "-c", &line, "/dev/null"])
        .env_remove("CI")
        .env_remove("METASYSTEM_SOCKET")
        .env_remove("METASYSTEM_CONFIG")
        .env("TERM", "xterm")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

#[test]
fn a_long_sync_shows_progress_on_a_terminal_only() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = remote.path().join("target");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    let d = TestDaemon::start(&format!(
        "[root]\n[[root.children]]\nname = \"t\"\nkind = \"sync_target\"\ntarget = \"{}\"\npaths = [\"shared\"]\nevery = \"1h\"\n",
        target.display()
    ));

    // Not a terminal (stderr is a pipe here): the summary alone, no bar, no escape codes.
    files(&d.state, 0, FILES);
    let out = d.cli(&["sync", "t"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("t: success in"), "{}", out.stdout);
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'),
        "escape codes: {:?} {:?}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains("files"), "{}", out.stderr);
    let first = took(&d);
    let long = first >= LONG_ENOUGH;
    // A machine fast enough to copy them all in under a bar's delay gets more files for the
    // runs on a terminal (bounded: eight times as many at most), so one of them shows a bar.
    let scale = if long {
        1
    } else {
        let ms = first.as_millis().max(1) as usize;
        (2 * LONG_ENOUGH.as_millis() as usize)
            .div_ceil(ms)
            .clamp(1, 8)
    };
    let n = FILES * scale;
    if !long {
        eprintln!(
            "note: the first run took {:?}: too short to show a bar anyway",
            took(&d)
        );
    }

    if !have_script() {
        eprintln!("skipped the terminal half: no `script` here");
        return;
    }
    // A terminal: the counters while it runs, cleared, then the summary.
    files(&d.state, 1, n);
    let (code, screen) = on_a_terminal(&d, "sync t", &[]);
    assert_eq!(code, 0, "{screen}");
    let summary = screen
        .find("t: success in")
        .unwrap_or_else(|| panic!("no summary: {screen:?}"));
    if took(&d) >= LONG_ENOUGH {
        let bar = screen
            .find(&format!("/{n} files"))
            .or_else(|| screen.find("t: scanning and comparing"))
            .unwrap_or_else(|| panic!("a {:?} run showed no progress: {screen:?}", took(&d)));
        assert!(bar < summary, "the bar after the summary: {screen:?}");
        // Cleared (erase line) before the summary, which is plain text.
        assert!(
            screen[..summary].ends_with("\u{1b}[2K"),
            "not cleared before the summary: {screen:?}"
        );
        assert!(!screen[summary..].contains('\u{1b}'), "{screen:?}");
    } else {
        eprintln!(
            "note: the terminal run took {:?}: too short for a bar",
            took(&d)
        );
    }

    // On a terminal with --json, or in CI: no bar, the JSON (or summary) alone.
    files(&d.state, 2, n);
    let (code, screen) = on_a_terminal(&d, "sync t --json", &[]);
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
    let v: Value =
        serde_json::from_str(screen.trim()).unwrap_or_else(|e| panic!("{e}: {screen:?}"));
    assert_eq!(v["reports"][0]["copied_to_remote"], n, "{v}");
    let long = long || took(&d) >= LONG_ENOUGH;
    files(&d.state, 3, n);
    let (code, screen) = on_a_terminal(&d, "sync t", &[("CI", "true")]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.starts_with("t: success in"), "{screen:?}");
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
    assert!(
        long || took(&d) >= LONG_ENOUGH,
        "no run was long enough to tell a bar from none"
    );
}
