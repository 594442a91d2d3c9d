//! The daemon's own log with `[daemon] log_file` and `log_stderr = false` (what the launchd
//! agent runs with): the lines go to the rotating file and not to stderr, which keeps only
//! what cannot go there: the errors said before logging is up, and lines the file refuses
//! (after a notice, until it takes them again). Every wait is bounded.

use std::time::{Duration, Instant};

use crate::util::{write_file, TestDaemon, ONE_CHILD};

const WAIT: Duration = Duration::from_secs(20);

fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NO_STDERR: &str = "log_file = \"logs/daemon.log\"\nlog_stderr = false";

#[test]
fn with_log_stderr_false_the_lines_go_to_the_file_and_not_to_stderr() {
    let mut d = TestDaemon::start_with(NO_STDERR, ONE_CHILD);
    // A crash is logged (a warning) while the daemon runs, besides its start and stop.
    let out = d.cli(&["kill", "root/a"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 0);
    let file = std::fs::read_to_string(d.state.join("logs/daemon.log")).unwrap_or_default();
    for want in ["metasystem running", "injected failure"] {
        assert!(
            file.contains(want),
            "{want} missing in the log file:\n{file}"
        );
    }
    assert_eq!(d.log_text(), "", "stderr got lines");
}

#[test]
fn errors_before_logging_is_up_still_reach_stderr() {
    let mut d = TestDaemon::prepare(
        NO_STDERR,
        "[root]\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\nevery = \"forever\"\n",
    );
    d.launch(&[]);
    assert_eq!(d.wait_exit(), 2, "{}", d.log_text());
    assert!(d.log_text().contains("`every`"), "{}", d.log_text());
}

#[test]
fn lines_the_file_refuses_go_to_stderr_until_it_takes_them_again() {
    let mut d = TestDaemon::prepare(NO_STDERR, ONE_CHILD);
    // `logs` is a file: the log file cannot be opened.
    std::fs::create_dir_all(&d.state).unwrap_or_else(|e| panic!("{e}"));
    write_file(d.state.join("logs"), "in the way");
    d.launch(&[]);
    d.wait_ready();
    eventually("the notice and the lines on stderr", || {
        let text = d.log_text();
        text.contains("metasystem: the log file")
            && text.contains("refuses lines")
            && text.contains("INFO")
    });
    assert_eq!(
        d.log_text().matches("refuses lines").count(),
        1,
        "told once:\n{}",
        d.log_text()
    );
    // Out of the way: the file takes the lines again (tried again at most once a second).
    std::fs::remove_file(d.state.join("logs")).unwrap_or_else(|e| panic!("{e}"));
    let log = d.state.join("logs/daemon.log");
    // A crash is logged (one: crashes in a row would reach the root's intensity).
    std::thread::sleep(Duration::from_millis(1100));
    let out = d.cli(&["kill", "root/a"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, d.log_text());
    eventually("the crash in the log file", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("injected failure"))
    });
    // Said by stderr's own writer thread, just after the line reached the file.
    eventually("the notice that the file takes lines again", || {
        d.log_text().contains("takes lines again")
    });
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 0);
    // After the notice, stderr got nothing more: the lines are in the file.
    let stderr = d.log_text();
    let after = stderr.split("takes lines again").nth(1).unwrap_or_default();
    assert_eq!(
        after.trim(),
        "",
        "stderr after the file came back:\n{stderr}"
    );
}

/// A log file that cannot be made (a file where its directory should be) was never reported
/// with `log_stderr = true`, and `status` counted its lines as dropped by stderr. Now stderr
/// says once which file refuses lines and why, and `status` counts them as the file's.
#[test]
fn a_refusing_log_file_is_reported_once_and_counted_as_its_own() {
    let mut d = TestDaemon::prepare(
        "log_file = \"logs/daemon.log\"\nlog_stderr = true",
        ONE_CHILD,
    );
    std::fs::create_dir_all(&d.state).unwrap_or_else(|e| panic!("{e}"));
    write_file(d.state.join("logs"), "in the way");
    d.launch(&[]);
    d.wait_ready();
    let path = d.state.join("logs/daemon.log").display().to_string();
    eventually("the refused lines in status", || {
        d.json(&["status"], 0)["log_file"]["lines_refused"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    let status = d.json(&["status"], 0);
    assert_eq!(status["log_file"]["path"], path.as_str(), "{status:#}");
    assert!(status["log_file"]["error"].is_string(), "{status:#}");
    assert_eq!(status["log_lines_dropped"], 0, "{status:#}");
    let text = d.cli(&["status"]).stdout;
    assert!(
        text.contains(&format!("log file:  {path} refuses lines")),
        "{text}"
    );
    assert!(!text.contains("stderr did not keep up"), "{text}");
    let said = format!("metasystem: the log file {path} refuses lines");
    assert_eq!(d.log_text().matches(&said).count(), 1, "{}", d.log_text());
    d.cli(&["shutdown"]);
    let _ = d.wait_exit();
}
