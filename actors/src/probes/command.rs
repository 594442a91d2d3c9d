//! A program as a check: exit 0 is Pass, 1 Warn, anything else (or a signal) Fail.
//!
//! No shell: the program and its arguments are given as they are. It runs in its own process
//! group with stdin from `/dev/null`; stdout and stderr are read concurrently (a chatty program
//! never blocks on a full pipe), the first [`OUTPUT_CAP`] bytes of each kept. The group is
//! killed (SIGKILL) when the check ends, whichever way: at a timeout or a cancellation (the
//! program and everything it started), and after the program exits (what it left behind, so
//! its pipes close and nothing accumulates from run to run). Output still held open by a
//! process that left the group is waited for at most [`EXIT_GRACE`] after the exit.
//!
//! The exit is noticed by polling `waitid(WNOWAIT)` (after 1 ms, doubling up to 50 ms), which
//! leaves the program unreaped: its group is killed while its pid, the group's id, cannot have
//! been reused. (std's `Command` with tokio pipes: tokio's `process` feature is not part of
//! this crate's build, and its SIGCHLD handling is not needed for this.)

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::unix::pipe;

use super::check::{unit, CheckOutcome, CommandSpec, Health};
use crate::alerts::channel::text::{one_line, truncate_bytes};

/// How much of stdout, and of stderr, is kept.
pub const OUTPUT_CAP: usize = 4096;
/// How long after the program's exit its output is still read.
pub const EXIT_GRACE: Duration = Duration::from_secs(1);
/// The longest pause between two looks at whether the program has exited.
const POLL_MAX: Duration = Duration::from_millis(50);
/// The longest first line the message quotes.
const LINE_CAP: usize = 300;

/// The program while the check runs. Dropped (the check finished, timed out or was
/// cancelled), it kills the program's process group and the program, and reaps it.
struct Running {
    child: Option<Child>,
    /// The program's pid, which is its group's id; `None` once the group was killed.
    pgid: Option<Pid>,
    /// The run's token ([`leftovers`](crate::process::leftovers)), in the environment of all
    /// it starts: what still carries it once the run ends is killed (taken then).
    token: Option<String>,
}

impl Running {
    /// Kills what is left in the group. Only while the program is not reaped: until then its
    /// pid (the group's id) cannot be reused.
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (nobody left) is the usual answer after an exit.
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
        // What left the group (`setsid`) but carries the run's token: off the scheduler
        // thread (it reads /proc).
        if let Some(token) = self.token.take() {
            let sweep = move || {
                crate::process::leftovers::kill_run(&token);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(sweep)),
                Err(_) => drop(std::thread::Builder::new().spawn(sweep)),
            }
        }
    }

    /// Whether the program has exited, without reaping it (`waitid` with `WNOWAIT`).
    fn exited(&self) -> std::io::Result<bool> {
        let Some(pid) = self.child.as_ref().and_then(child_pid) else {
            return Ok(true);
        };
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(WaitId::Pid(pid), options) {
            Ok(status) => Ok(status.is_some()),
            Err(e) => Err(e.into()),
        }
    }

    /// Kills the group, then reaps the program (which has exited).
    fn finish(&mut self) -> std::io::Result<ExitStatus> {
        self.kill_group();
        match self.child.take() {
            Some(mut child) => child.wait(),
            None => Err(std::io::Error::other("the program was already reaped")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
        let Some(mut child) = self.child.take() else {
            return;
        };
        // In case it left its group; std does not signal a child it has reaped.
        let _ = child.kill();
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // Killed but not dead yet: reaped by a thread of its own (no zombie left behind, and
        // nothing for a runtime's shutdown to wait for).
        let _ = std::thread::Builder::new()
            .name("probe-reaper".to_string())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

fn child_pid(child: &Child) -> Option<Pid> {
    i32::try_from(child.id()).ok().and_then(Pid::from_raw)
}

/// A pipe from the program as an async reader.
fn pipe_reader(fd: Option<impl Into<OwnedFd>>) -> Option<pipe::Receiver> {
    fd.and_then(|fd| pipe::Receiver::from_owned_fd(fd.into()).ok())
}

/// The first bytes of a stream, and how many there were.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    kept: Vec<u8>,
    total: u64,
}

impl Capture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).into_owned()
    }

    pub(crate) fn truncated(&self) -> bool {
        self.total > self.kept.len() as u64
    }
}

/// Reads `reader` to its end (or an error), keeping the first [`OUTPUT_CAP`] bytes. Ends when
/// every holder of the pipe's write end has closed it or died; the caller bounds the wait.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, into: &mut Capture) {
    let Some(mut reader) = reader else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(into.kept.len());
                into.kept.extend_from_slice(&buf[..n.min(room)]);
                into.total = into.total.saturating_add(n as u64);
            }
        }
    }
}

pub(crate) async fn check(spec: &CommandSpec) -> CheckOutcome {
    match run_program(spec).await {
        Ok(ran) => evaluate(spec, ran.status, &ran.stdout, &ran.stderr, ran.elapsed),
        Err(message) => CheckOutcome::fail(message)
            .with_details(json!({ "program": spec.program, "args": spec.args })),
    }
}

/// How a program ended, and what it wrote.
#[derive(Debug)]
pub(crate) struct Exited {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    pub(crate) elapsed: Duration,
}

/// Runs `spec`'s program to its exit as the module documents (no shell, its own process group,
/// capped output, the group killed at the end). Not bounded: the caller bounds it with a
/// timeout, and dropping the future kills the group. `Err`: it could not be started or waited
/// for, in words (`cannot start prog: No such file or directory (os error 2)`).
pub(crate) async fn run_program(spec: &CommandSpec) -> Result<Exited, String> {
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let token = crate::process::leftovers::next_token();
    if let Some(t) = &token {
        cmd.env(crate::process::leftovers::VAR, t);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let cwd = spec
                .cwd
                .as_ref()
                .map(|c| format!(" in {}", c.display()))
                .unwrap_or_default();
            return Err(format!("cannot start {}{cwd}: {e}", spec.program));
        }
    };
    let (stdout, stderr) = (
        pipe_reader(child.stdout.take()),
        pipe_reader(child.stderr.take()),
    );
    let mut running = Running {
        pgid: child_pid(&child),
        child: Some(child),
        token,
    };
    let mut out = Capture::default();
    let mut err = Capture::default();
    let waited = {
        let reading =
            async { tokio::join!(read_capped(stdout, &mut out), read_capped(stderr, &mut err)) };
        tokio::pin!(reading);
        let mut read_all = false;
        let mut pause = Duration::from_millis(1);
        // Polls for the exit while reading; bounded by the caller's timeout.
        loop {
            match running.exited() {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return Err(format!("cannot wait for {}: {e}", spec.program)),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => pause = (pause * 2).min(POLL_MAX),
                _ = &mut reading, if !read_all => {
                    // Its output closed: the program is likely ending now.
                    read_all = true;
                    pause = Duration::from_millis(1);
                }
            }
        }
        // Exited: what it left in its group goes too (so the pipes close), then it is reaped.
        let waited = running.finish();
        if !read_all {
            let _ = tokio::time::timeout(EXIT_GRACE, &mut reading).await;
        }
        waited
    };
    let elapsed = started.elapsed();
    match waited {
        Ok(status) => Ok(Exited {
            status,
            stdout: out,
            stderr: err,
            elapsed,
        }),
        Err(e) => Err(format!("cannot wait for {}: {e}", spec.program)),
    }
}

fn evaluate(
    spec: &CommandSpec,
    status: ExitStatus,
    out: &Capture,
    err: &Capture,
    elapsed: Duration,
) -> CheckOutcome {
    use std::os::unix::process::ExitStatusExt;
    let (health, what) = classify(status.code(), status.signal());
    let (stdout, stderr) = (out.text(), err.text());
    let message = match first_line(&stdout).or_else(|| first_line(&stderr)) {
        Some(line) => format!("{what}: {line}"),
        None => format!("{what}, no output"),
    };
    CheckOutcome::new(health, message)
        .with_value(elapsed.as_secs_f64(), unit::SECONDS)
        .with_details(json!({
            "program": spec.program,
            "args": spec.args,
            "exit_code": status.code(),
            "signal": status.signal(),
            "stdout": stdout,
            "stderr": stderr,
            "stdout_bytes": out.total,
            "stderr_bytes": err.total,
            "stdout_truncated": out.truncated(),
            "stderr_truncated": err.truncated(),
        }))
}

/// The health and the words for an exit: code 0 Pass, 1 Warn, other codes and signals Fail.
pub fn classify(code: Option<i32>, signal: Option<i32>) -> (Health, String) {
    match (code, signal) {
        (Some(0), _) => (Health::Pass, "exit 0".to_string()),
        (Some(1), _) => (Health::Warn, "exit 1".to_string()),
        (Some(c), _) => (Health::Fail, format!("exit {c}")),
        (None, Some(s)) => (
            Health::Fail,
            match signal_name(s) {
                Some(name) => format!("killed by signal {s} ({name})"),
                None => format!("killed by signal {s}"),
            },
        ),
        (None, None) => (Health::Fail, "ended without an exit status".to_string()),
    }
}

fn signal_name(s: i32) -> Option<&'static str> {
    Some(match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// The first line with something on it, control characters turned into spaces, cut to
/// [`LINE_CAP`] bytes.
pub(crate) fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| truncate_bytes(&one_line(l), LINE_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_classified() {
        assert_eq!(classify(Some(0), None), (Health::Pass, "exit 0".into()));
        assert_eq!(classify(Some(1), None), (Health::Warn, "exit 1".into()));
        assert_eq!(classify(Some(2), None), (Health::Fail, "exit 2".into()));
        assert_eq!(classify(Some(-1), None).0, Health::Fail);
        assert_eq!(
            classify(None, Some(9)),
            (Health::Fail, "killed by signal 9 (SIGKILL)".into())
        );
        assert_eq!(
            classify(None, Some(40)),
            (Health::Fail, "killed by signal 40".into())
        );
        assert_eq!(classify(None, None).0, Health::Fail);
    }

    #[test]
    fn the_first_line_with_text_is_quoted() {
        assert_eq!(
            first_line("\n  \n ok: 3 items \nmore"),
            Some("ok: 3 items".into())
        );
        assert_eq!(first_line("a\tb"), Some("a b".into()));
        assert_eq!(first_line(" \n"), None);
        let long = "x".repeat(1000);
        assert!(first_line(&long).unwrap().len() <= LINE_CAP);
    }
}
