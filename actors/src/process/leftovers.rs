//! What a command probe or a heal command leaves behind is killed with its run, whatever it
//! did to escape: a child that called `setsid` leaves the process group the run kills, and a
//! daemon killed by SIGKILL kills nothing at all.
//!
//! Each run's program gets `METASYSTEM_RUN=DAEMON-INSTANCE-SEQ` in its environment, which
//! whatever it starts inherits (a program that clears its environment escapes; nothing short
//! of a cgroup catches that). `DAEMON` names the daemon by its state dir, `INSTANCE` this start
//! of it. When a run ends, every process that still carries its token is SIGKILLed; when a
//! daemon starts, every process that carries a token of an earlier start of the same daemon
//! (left by one that was SIGKILLed, or lost power) is. The processes are found in
//! `/proc/PID/environ` (Linux; the daemon's own user's processes are readable there).
//!
//! Off until [`init`] (the daemon calls it): a library user or a test process never scans.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The variable that carries a run's token.
pub const VAR: &str = "METASYSTEM_RUN";

/// `DAEMON-INSTANCE`, set by [`init`].
static ME: OnceLock<(String, String)> = OnceLock::new();
static SEQ: AtomicU64 = AtomicU64::new(1);

/// Turns tokens on for this daemon: `state_dir` names it, `instance` this start of it.
pub fn init(state_dir: &std::path::Path, instance: u64) {
    // However the config spells it (`dir/./state/`, through a symlink): the folder itself.
    let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let daemon = crate::alerts::fingerprint(&dir.to_string_lossy());
    let _ = ME.set((daemon.clone(), format!("{daemon}-{instance}")));
}

/// A fresh token for a run, if tokens are on.
pub fn next_token() -> Option<String> {
    let (_, me) = ME.get()?;
    Some(format!("{me}-{}", SEQ.fetch_add(1, Ordering::Relaxed)))
}

/// SIGKILLs every process (but this one) whose environment holds `VAR=` a token `wanted`
/// accepts; answers how many. Blocking (reads `/proc`).
fn kill_where(wanted: impl Fn(&str) -> bool) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let prefix = format!("{VAR}=");
    let mut killed = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let hit = env
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter_map(|kv| kv.strip_prefix(&prefix))
            .any(&wanted);
        if !hit {
            continue;
        }
        let Some(p) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        if rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok() {
            killed += 1;
        }
    }
    killed
}

/// The run with `token` has ended: what still carries it goes. Blocking.
pub fn kill_run(token: &str) -> usize {
    kill_where(|t| t == token)
}

/// This start of the daemon is ending: whatever its runs left that no run's end killed (a
/// run cut off by the daemon's shutdown, whose sweep never ran) goes. Blocking; 0 before
/// [`init`].
pub fn kill_this_start() -> usize {
    let Some((_, me)) = ME.get() else {
        return 0;
    };
    let mine = format!("{me}-");
    kill_where(|t| t.starts_with(&mine))
}

/// This daemon has started: what an earlier start of it left goes. Blocking; 0 before
/// [`init`].
pub fn kill_earlier() -> usize {
    let Some((daemon, me)) = ME.get() else {
        return 0;
    };
    let (daemon, mine) = (format!("{daemon}-"), format!("{me}-"));
    kill_where(|t| t.starts_with(&daemon) && !t.starts_with(&mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_token_reaches_what_the_program_starts_and_kills_it() {
        init(std::path::Path::new("/tmp/leftovers-test-state"), 42);
        let token = next_token().unwrap();
        assert!(
            token.ends_with("-42-1") || token.contains("-42-"),
            "{token}"
        );
        // A grandchild in a session of its own: out of any group the run would kill.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"])
            .env(VAR, &token)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = {
            use std::io::Read;
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            s
        };
        child.wait().unwrap();
        let pid: i32 = out.trim().parse().unwrap();
        let alive = |pid: i32| std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(alive(pid));
        assert_eq!(kill_run("some-other-token"), 0);
        assert_eq!(kill_run(&token), 1);
        // Dead (a zombie until init reaps it: its state is Z or it is gone).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
            if stat.is_empty() || state == Some('Z') {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{stat}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
