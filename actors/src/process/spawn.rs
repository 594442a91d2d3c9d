//! Starting a managed process: the command (no shell), its environment and working directory,
//! its credentials, its own process group, and the parent-death signal.
//!
//! Every fork happens on one long-lived thread of its own ("metasystem-spawn"), for two
//! reasons:
//! - Linux sends the parent-death signal (`PR_SET_PDEATHSIG`) when the *thread* that forked
//!   the child exits, not the process: a child forked from a blocking-pool thread would be
//!   killed when that thread retires after 10 s idle. The spawn thread lives as long as the
//!   daemon, so the children die with the daemon, however it dies (SIGKILL included), and
//!   not before.
//! - `fork` + `exec` blocks until the program is loaded (a binary on a hung network mount
//!   blocks for as long): that must never be the scheduler's thread.
//!
//! The child is registered with the caller's runtime (its exit is learned at once through a
//! pidfd on Linux, else SIGCHLD: never by polling).
//!
//! The parent-death signal reaches the program, not what it forked. For those, when the
//! daemon names a reaper program ([`use_reaper`]: its own binary), the spawn thread starts one
//! small helper process on the first spawn and tells it every process group it starts (and
//! forgets). The helper waits on its stdin; when that ends — the daemon exited, however (its
//! pipe is closed by the kernel even on SIGKILL) — it SIGKILLs every group still registered
//! and exits. So grandchildren that stay in their process group die with the daemon too; one
//! that left its group (`setsid`) is not covered (nor, under systemd, does it need to be: the
//! service's cgroup is killed).

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;

use super::ProcessSpec;

/// Work for the spawn thread.
enum Job {
    Spawn {
        command: Box<tokio::process::Command>,
        runtime: tokio::runtime::Handle,
        reply: oneshot::Sender<io::Result<tokio::process::Child>>,
    },
    /// A process group that is gone: the reaper may forget it.
    Forget(u32),
}

/// The argument that makes the daemon's binary the reaper helper ([`reaper_main`]).
pub const REAPER_ARG: &str = "__reap-process-groups";

/// The program run as the reaper helper, with [`REAPER_ARG`]; none: no helper.
static REAPER: OnceLock<std::path::PathBuf> = OnceLock::new();

/// Names the program run (with [`REAPER_ARG`]) as the reaper helper: the daemon's own binary.
pub fn use_reaper(program: std::path::PathBuf) {
    let _ = REAPER.set(program);
}

/// The helper, as the spawn thread holds it.
struct Reaper {
    /// The helper, killed and reaped when it stops taking lines (then started again).
    child: std::process::Child,
    /// Its stdin: the groups to kill are written there; the kernel closes it when the daemon
    /// dies, which is the helper's signal.
    input: std::process::ChildStdin,
}

impl Reaper {
    fn start() -> Option<Reaper> {
        let program = REAPER.get()?;
        let started = std::process::Command::new(program)
            .arg(REAPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group: a Ctrl-C at the daemon's terminal must not end it first.
            .process_group(0)
            .spawn();
        match started {
            Ok(mut child) => {
                let input = child.stdin.take()?;
                Some(Reaper { child, input })
            }
            Err(e) => {
                tracing::warn!(error = %e, program = %program.display(), "cannot start the process-group reaper: what managed processes fork may outlive a killed daemon");
                None
            }
        }
    }

    /// Tells the helper a line; false when it is gone.
    fn tell(&mut self, line: &str) -> bool {
        use std::io::Write;
        self.input.write_all(line.as_bytes()).is_ok()
    }
}

/// Tells the reaper `line`, starting it (again) when it is not running.
fn tell_reaper(reaper: &mut Option<Reaper>, line: &str, start: bool) {
    if let Some(r) = reaper.as_mut() {
        if r.tell(line) {
            return;
        }
        let _ = r.child.kill();
        let _ = r.child.wait();
        *reaper = None;
    }
    if start {
        *reaper = Reaper::start();
        if let Some(r) = reaper.as_mut() {
            let _ = r.tell(line);
        }
    }
}

/// The reaper helper's whole life: registers the groups its stdin names (`+PGID`, `-PGID`),
/// and when the stdin ends (the daemon is gone) SIGKILLs the groups left. Returns the exit
/// code.
pub fn reaper_main() -> i32 {
    use std::io::BufRead;
    let mut groups = std::collections::HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at(line.len().min(1));
        match (sign, number.trim().parse::<i32>()) {
            ("+", Ok(g)) if g > 1 => {
                groups.insert(g);
            }
            ("-", Ok(g)) => {
                groups.remove(&g);
            }
            _ => {}
        }
    }
    for g in groups {
        if let Some(pid) = rustix::process::Pid::from_raw(g) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    0
}

/// The spawn thread's queue, started on first use.
static SPAWNER: OnceLock<Mutex<Option<mpsc::Sender<Job>>>> = OnceLock::new();

fn spawner() -> io::Result<mpsc::Sender<Job>> {
    let slot = SPAWNER.get_or_init(|| Mutex::new(None));
    let mut sender = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = sender.as_ref() {
        return Ok(s.clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("metasystem-spawn".into())
        .spawn(move || {
            let mut reaper: Option<Reaper> = None;
            for job in rx {
                match job {
                    Job::Spawn {
                        mut command,
                        runtime,
                        reply,
                    } => {
                        let child = {
                            let _entered = runtime.enter();
                            command.spawn()
                        }
                        .map_err(|e| explain(command.as_std(), e));
                        // The command holds the parent's copies of the child's pipe ends:
                        // drop them now, or the pump would never see the end of the output.
                        drop(command);
                        if let Some(pid) = child.as_ref().ok().and_then(|c| c.id()) {
                            tell_reaper(&mut reaper, &format!("+{pid}\n"), true);
                        }
                        let _ = reply.send(child);
                    }
                    Job::Forget(pgid) => tell_reaper(&mut reaper, &format!("-{pgid}\n"), false),
                }
            }
        })?;
    *sender = Some(tx.clone());
    Ok(tx)
}

/// Says what a failed start failed on. The kernel's error alone ("No such file or
/// directory") does not tell a missing working directory from a missing program; the child's
/// side of `std::process` reports only the errno. Runs on the spawn thread (it looks at the
/// file system, which may block).
fn explain(command: &std::process::Command, e: io::Error) -> io::Error {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    let kind = e.kind();
    if let Some(dir) = command.get_current_dir() {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return io::Error::new(
                    kind,
                    format!("its working directory {} is not a directory", dir.display()),
                )
            }
            Err(err) => {
                return io::Error::new(
                    kind,
                    format!("its working directory {}: {err}", dir.display()),
                )
            }
        }
    }
    let program = Path::new(command.get_program());
    let check = |p: &Path| -> Option<String> {
        match std::fs::metadata(p) {
            Ok(m) if !m.is_file() => Some(format!("{} is not a file", p.display())),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Some(format!("{} is not executable", p.display()))
            }
            Ok(_) => None,
            Err(err) => Some(format!("{}: {err}", p.display())),
        }
    };
    if program.components().count() > 1 || program.is_absolute() {
        // Relative paths are relative to the working directory.
        let full = match command.get_current_dir() {
            Some(dir) => dir.join(program),
            None => program.to_path_buf(),
        };
        return match check(&full) {
            Some(why) => io::Error::new(kind, format!("the program {why}")),
            None => e,
        };
    }
    if kind == io::ErrorKind::NotFound {
        let path = command
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v.map(OsString::from))
            .or_else(|| std::env::var_os("PATH"));
        let shown = path
            .as_ref()
            .map_or_else(String::new, |p| p.to_string_lossy().into_owned());
        let found = path
            .as_ref()
            .is_some_and(|p| std::env::split_paths(p).any(|d| check(&d.join(program)).is_none()));
        if !found {
            return io::Error::new(
                kind,
                format!(
                    "no program {:?} in PATH ({shown})",
                    program.display().to_string()
                ),
            );
        }
    }
    e
}

/// What a started process hands back: the child (its exit is awaited through it) and the
/// read ends of its output pipes.
pub struct Started {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// stdout (with stderr when merged).
    pub stdout: OwnedFd,
    /// stderr, when it goes to a file of its own.
    pub stderr: Option<OwnedFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    // Close-on-exec in the daemon, so no other child inherits them; the child's copies are
    // dup2'ed onto 1 and 2, which clears the flag for it.
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// Builds the command of `spec` (output into fresh pipes) and starts it on the spawn thread.
pub async fn start(spec: &ProcessSpec) -> io::Result<Started> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = match spec.output.stderr {
        Some(_) => {
            let (r, w) = pipe()?;
            (Some(r), w)
        }
        None => (None, out_write.try_clone()?),
    };
    let mut std_cmd = std::process::Command::new(&spec.command);
    std_cmd
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(err_write))
        // Its own process group: a stop signal and the final SIGKILL reach what it forked.
        .process_group(0);
    if let Some(c) = &spec.credentials {
        if let Some(home) = &c.home {
            std_cmd.env("HOME", home);
        }
        if let Some(user) = &c.user {
            std_cmd.env("USER", user).env("LOGNAME", user);
        }
    }
    for (k, v) in &spec.env {
        std_cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        std_cmd.current_dir(cwd);
    }
    let credentials = spec.credentials.clone();
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // (setgroups, setgid, setuid, prctl, getppid): no allocation, no lock, nothing that is
    // not async-signal-safe. Everything it reads was prepared before the fork.
    unsafe {
        std_cmd.pre_exec(move || {
            if let Some(c) = &credentials {
                let groups: &[libc::gid_t] = &c.groups;
                if libc::setgroups(groups.len() as _, groups.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::setgid(c.gid) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(uid) = c.uid {
                    if libc::setuid(uid) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            // After the credentials: changing them clears the parent-death signal.
            #[cfg(target_os = "linux")]
            {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                // The daemon died between the fork and the prctl: nobody would ever kill this.
                if rustix::process::getppid() != Some(parent) {
                    return Err(io::Error::other("the daemon exited while starting it"));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    let mut command = tokio::process::Command::from(std_cmd);
    // A child whose handle is dropped unreaped (the actor killed mid-start) is killed.
    command.kill_on_drop(true);
    let (reply, answer) = oneshot::channel();
    spawner()?
        .send(Job::Spawn {
            command: Box::new(command),
            runtime: tokio::runtime::Handle::current(),
            reply,
        })
        .map_err(|_| io::Error::other("the spawn thread is gone"))?;
    let child = answer
        .await
        .map_err(|_| io::Error::other("the spawn thread is gone"))??;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the child has no pid"))?;
    Ok(Started {
        child,
        pid,
        stdout: out_read,
        stderr: err_read,
    })
}

/// The process group `pgid` is gone (its leader reaped, the rest killed): the reaper may
/// forget it.
pub fn forget(pgid: u32) {
    if let Ok(tx) = spawner() {
        let _ = tx.send(Job::Forget(pgid));
    }
}

/// The command line for messages: `prog arg1 arg2` (arguments with spaces quoted).
pub fn command_line(spec: &ProcessSpec) -> String {
    let mut parts: Vec<OsString> = vec![spec.command.clone().into()];
    parts.extend(spec.args.iter().map(|a| {
        if a.is_empty() || a.contains(char::is_whitespace) {
            OsString::from(format!("{a:?}"))
        } else {
            OsString::from(a)
        }
    }));
    parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
