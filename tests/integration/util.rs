//! Helpers: a real daemon (the built binary) in a temp dir, the CLI against it, raw socket
//! conversations. Every wait is bounded.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_metasystem");

/// Generous: CI machines are slow and shared.
const START_TIMEOUT: Duration = Duration::from_secs(20);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(output: Output) -> Out {
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr),
        }
    }
}

/// Runs the binary with `args` (no daemon involved unless the args say so).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("METASYSTEM_SOCKET")
        .env_remove("METASYSTEM_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(o) => Out::from(o),
        Err(e) => panic!("cannot run {BIN}: {e}"),
    }
}

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// `[daemon]` for a daemon living in `dir`, plus `extra` daemon keys.
pub fn daemon_section(dir: &Path, extra: &str) -> String {
    format!(
        "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n{extra}\n",
        dir.join("state").display(),
        dir.join("state/control.sock").display()
    )
}

impl TestDaemon {
    /// Starts a daemon whose config is `[daemon]` (in a temp dir) followed by `tree`.
    pub fn start(tree: &str) -> TestDaemon {
        Self::start_with("", tree)
    }

    pub fn start_with(daemon_extra: &str, tree: &str) -> TestDaemon {
        let mut d = Self::spawn(daemon_extra, tree);
        d.wait_ready();
        d
    }

    /// Spawns without waiting for it to be ready.
    pub fn spawn(daemon_extra: &str, tree: &str) -> TestDaemon {
        let mut d = Self::prepare(daemon_extra, tree);
        d.launch(&[]);
        d
    }

    /// The temp dir and its config, without starting the daemon (`launch` starts it).
    pub fn prepare(daemon_extra: &str, tree: &str) -> TestDaemon {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let config = dir.path().join("supervision.toml");
        let text = format!("{}{tree}", daemon_section(dir.path(), daemon_extra));
        if let Err(e) = std::fs::write(&config, text) {
            panic!("write config: {e}");
        }
        TestDaemon {
            socket: dir.path().join("state/control.sock"),
            state: dir.path().join("state"),
            log: dir.path().join("daemon.log"),
            config,
            dir,
            child: None,
        }
    }

    /// (Re)launches the daemon process on this dir's config.
    pub fn launch(&mut self, env: &[(&str, &str)]) {
        let log = match std::fs::File::create(&self.log) {
            Ok(f) => f,
            Err(e) => panic!("log file: {e}"),
        };
        self.launch_with(env, Stdio::from(log));
    }

    /// (Re)launches with stderr going to `stderr` instead of the log file.
    pub fn launch_with(&mut self, env: &[(&str, &str)], stderr: Stdio) {
        self.launch_via(&[], env, stderr);
    }

    /// (Re)launches as `WRAPPER... BIN run ...` (e.g. `setpriv` with its options), with
    /// stderr going to `stderr`.
    pub fn launch_via(&mut self, wrapper: &[&str], env: &[(&str, &str)], stderr: Stdio) {
        let log = stderr;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("METASYSTEM_SOCKET")
            .env_remove("METASYSTEM_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        match cmd.spawn() {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("cannot start the daemon: {e}"),
        }
    }

    /// Waits until the daemon answers `status` (bounded).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(code) = self.try_exit() {
                panic!(
                    "the daemon exited with {code} while starting:\n{}",
                    self.log_text()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                let out = self.cli(&["status", "--json"]);
                if out.code == 0 || out.code == 1 {
                    return;
                }
            }
            std::thread::sleep(POLL);
        }
        panic!("the daemon did not come up:\n{}", self.log_text());
    }

    /// Waits (bounded) until a daemon this struct did not spawn answers `status`.
    pub fn wait_until_up(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                let out = self.cli(&["status", "--json"]);
                if out.code == 0 || out.code == 1 {
                    return;
                }
            }
            std::thread::sleep(POLL);
        }
        panic!("the daemon did not come up:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The CLI against this daemon's socket.
    pub fn cli(&self, args: &[&str]) -> Out {
        let socket = self.socket.display().to_string();
        let mut all = vec!["--socket", socket.as_str()];
        all.extend_from_slice(args);
        run_cli(&all, &[])
    }

    /// `ARGS --json`, which must exit with `code`; its JSON.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert_eq!(
            out.code,
            code,
            "{args:?}: stdout {}\nstderr {}\nlog:\n{}",
            out.stdout,
            out.stderr,
            self.log_text()
        );
        out.json()
    }

    pub fn nodes(&self) -> Vec<Value> {
        let out = self.cli(&["tree", "--json"]);
        match out.json()["nodes"].as_array() {
            Some(nodes) => nodes.clone(),
            None => panic!("no nodes: {}", out.stdout),
        }
    }

    pub fn node(&self, path: &str) -> Option<Value> {
        self.nodes().into_iter().find(|n| n["path"] == path)
    }

    /// Polls `check` until it holds (bounded); panics with `what` otherwise.
    pub fn wait_until(&self, what: &str, check: impl Fn(&TestDaemon) -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "timed out waiting for {what}; tree: {:#?}\nlog:\n{}",
            self.nodes(),
            self.log_text()
        );
    }

    /// Events (all of them, oldest first) through the CLI.
    pub fn events(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["events"];
        args.extend_from_slice(extra);
        let v = self.json(&args, 0);
        v["events"].as_array().cloned().unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        match &self.child {
            Some(c) => c.id() as i32,
            None => panic!("not running"),
        }
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    fn try_exit(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status.code().unwrap_or(-1))
            }
            _ => None,
        }
    }

    /// Waits (bounded) for the daemon to exit; its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(code) = self.try_exit() {
                return code;
            }
            std::thread::sleep(POLL);
        }
        panic!("the daemon did not exit:\n{}", self.log_text());
    }

    /// SIGTERM and wait; the exit code.
    pub fn terminate(&mut self) -> i32 {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit()
    }

    /// Sends raw bytes on a fresh connection, closes the write side, and returns every
    /// response line (bounded by a read timeout).
    pub fn raw(&self, bytes: &[u8]) -> Vec<Value> {
        let mut stream = match UnixStream::connect(&self.socket) {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}"),
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text.lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(v) => v,
                Err(e) => panic!("response line is not JSON ({e}): {l}"),
            })
            .collect()
    }

    /// Sends many request lines on one connection from a writer thread while reading the
    /// answers (a client that reads, unlike [`raw`](Self::raw) for large bursts); the answers,
    /// bounded by a 60 s read timeout.
    pub fn burst(&self, lines: &[String]) -> Vec<Value> {
        use std::io::BufRead;
        let stream = match UnixStream::connect(&self.socket) {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}"),
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let mut writer = match stream.try_clone() {
            Ok(s) => s,
            Err(e) => panic!("clone: {e}"),
        };
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let sending = std::thread::spawn(move || {
            let _ = writer.write_all(text.as_bytes());
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
        let mut answers = Vec::with_capacity(lines.len());
        for line in std::io::BufReader::new(stream).lines().take(lines.len()) {
            match line {
                Ok(l) => match serde_json::from_str(&l) {
                    Ok(v) => answers.push(v),
                    Err(e) => panic!("answer is not JSON ({e}): {l}"),
                },
                Err(_) => break,
            }
        }
        let _ = sending.join();
        answers
    }

    pub fn write_config(&self, tree: &str) {
        let text = format!("{}{tree}", daemon_section(self.dir.path(), ""));
        if let Err(e) = std::fs::write(&self.config, text) {
            panic!("write config: {e}");
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The identity a daemon of this machine with state dir `state` names itself by in sync
/// targets (it inherits this process's environment, `METASYSTEM_HOST_ID` included).
pub fn host_id(state: &Path) -> String {
    match metasystem_actors::host::resolve(None, state) {
        Ok(id) => id,
        Err(e) => panic!("this host has no identity: {e}"),
    }
}

/// The smallest tree a config may have (a config needs [root] with a child).
pub const ONE_CHILD: &str = "[root]\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\n";

/// Writes a test's file or fails the test (a silent failure here would test nothing).
pub fn write_file(path: impl AsRef<Path>, text: impl AsRef<[u8]>) {
    let path = path.as_ref();
    if let Err(e) = std::fs::write(path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
}

/// Sets a mode or fails the test.
pub fn chmod(path: impl AsRef<Path>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = path.as_ref();
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        panic!("cannot chmod {}: {e}", path.display());
    }
}

/// A child process killed and reaped when dropped, so a failed assertion never leaves it
/// running.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmpfs mounted at a path, unmounted when dropped.
pub struct Mount(std::path::PathBuf);

impl Mount {
    /// `None` where this process may not mount (not root).
    pub fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("{e}"));
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Fills the filesystem holding `dir` with a file of zeros; its path.
pub fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap_or_else(|e| panic!("filler: {e}"));
    let block = vec![0u8; 4096];
    for _ in 0..100_000 {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    let _ = file.sync_all();
    filler
}

pub fn node_field<'a>(nodes: &'a [Value], path: &str) -> &'a Value {
    match nodes.iter().find(|n| n["path"] == path) {
        Some(n) => n,
        None => panic!("no node {path} in {nodes:#?}"),
    }
}

/// A test that cannot do its work here (it needs root: a mount, another uid, immutable files)
/// says so and returns. Under CI (`CI=true`), which runs as root, one that is not root fails
/// instead of skipping silently.
pub fn skipped(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci && !rustix::process::geteuid().is_root() {
        panic!("{why}: this test needs root, which CI runs as");
    }
    eprintln!("skipped: {why}");
}

/// Whether `program` can be run here. Where it cannot, the test says so and should return;
/// under CI (`CI=true`), whose image installs every tool the tests use, a missing one fails
/// the test instead (`package` says what to install).
pub fn have_tool(program: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        missing_tool(&format!(
            "{program} is not installed (apt-get install {package})"
        ));
    }
    found
}

/// A test that needs a tool this machine lacks (a Python package, a program) says so and
/// returns; under CI (`CI=true`), where `.ci/run` installs it, it fails instead.
pub fn missing_tool(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci {
        panic!("{why}: CI must install it");
    }
    eprintln!("skipped: {why}");
}
