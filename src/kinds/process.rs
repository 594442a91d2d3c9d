//! `kind = "process"`: an external program supervised by the tree (see
//! `metasystem_actors::process`).
//!
//! Config: `command` (required: a path, or a name looked up in `PATH`; no shell), `args`,
//! `env` (a table of strings), `cwd` (must be a directory; relative to the state dir), `user`
//! and `group` (names or ids; only when the daemon runs as root), `stop_signal` (TERM),
//! `stop_timeout` (10s; then SIGKILL of the process group), `healthy_after` (1s: a run shorter
//! than this is a failed start), `exit_codes` (codes that are a normal exit, default [0]),
//! `stderr` (`merge` into the output log, or `separate`), `log_max_size` (10MB),
//! `log_keep` (5). Logs: `STATE/logs/<tree path>/output.log` (and `stderr.log`).
//! Operations: `status`, `signal` (`name=HUP`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::logfile::{LogSpec, Rotation, MAX_KEEP};
use metasystem_actors::process::{
    log_paths, parse_signal, users, Credentials, OutputSpec, ProcessActor, ProcessArgs,
    ProcessMessage, ProcessSpec, SIGNALS,
};
use metasystem_actors::{ChildSpec, Shutdown};
use serde_json::Value;

use super::{ActorKind, CallCx, CallError, NoArgs, Op, ParseCx, Services};
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};
use crate::config::{bounded, expand, spanned_bytes};

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_HEALTHY_AFTER: Duration = Duration::from_secs(1);
const DEFAULT_LOG_MAX_SIZE: u64 = 10_000_000;
const DEFAULT_LOG_KEEP: u32 = 5;
/// The longest argument or environment entry (`KEY=VALUE`) exec takes: Linux refuses a
/// longer one (MAX_ARG_STRLEN, 32 pages, with its NUL) with "Argument list too long", which
/// would surface only when the program is started, after a reload has stopped the old one.
const MAX_EXEC_STRING: usize = 128 * 1024 - 1;
/// Past `stop_timeout`, the time the SIGKILL of the group and the reaping may take before
/// the supervisor gives up on the actor (its state's drop SIGKILLs the group again).
const KILL_MARGIN: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    pub spec: Arc<ProcessSpec>,
}

/// `command` as a program to exec: with a `/`, an existing executable file (relative to
/// `cwd`, else to the state dir); without, a name found in `path_var`.
fn program(raw: &str, base: &Path, path_var: Option<&str>) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("is empty".into());
    }
    if raw.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let executable = |p: &Path| -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
            Ok(m) if m.is_file() => Err(format!("{} is not executable", p.display())),
            Ok(_) => Err(format!("{} is not a file", p.display())),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    };
    if raw.contains('/') {
        let p = base.join(raw);
        executable(&p)?;
        return Ok(p.to_string_lossy().into_owned());
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        if executable(&Path::new(dir).join(raw)).is_ok() {
            // Kept as a name: exec looks it up in the same PATH.
            return Ok(raw.to_string());
        }
    }
    Err(format!(
        "no program {raw:?} in PATH ({path_var}); give its full path"
    ))
}

impl ActorKind for ProcessConfig {
    type Cli = ProcessCommands;
    const NAME: &'static str = "process";
    const OPS: &'static [Op] = &[
        Op {
            name: "status",
            args: "",
            summary: "state, pid, uptime, runs, last exit, log files and bytes logged",
        },
        Op {
            name: "signal",
            args: "name=HUP",
            summary: "send a signal to its process group (TERM, HUP, USR1, ...)",
        },
    ];

    fn schema() -> Obj {
        let signals: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        Obj::new(vec![
            key(
                "command",
                Ty::Str,
                "The program: a path, or a name looked up in PATH (no shell).",
            )
            .required()
            .example("/bin/sh"),
            key("args", Ty::Strings, "Its arguments.")
                .example(serde_json::json!(["-c", "sleep 1000"])),
            key(
                "env",
                Ty::Map(Box::new(Ty::Str)),
                "Environment variables for it: a table of strings.",
            )
            .example(serde_json::json!({"LANG": "C"})),
            key(
                "cwd",
                Ty::Str,
                "Its working directory (must exist; relative to the state dir).",
            )
            .example("/"),
            key(
                "user",
                Ty::Str,
                "Run it as this user (a name or an id; only when the daemon runs as root).",
            ),
            key(
                "group",
                Ty::Str,
                "Run it with this group (a name or an id; only when the daemon runs as root).",
            ),
            key(
                "stop_signal",
                Ty::Raw(serde_json::json!({"type": "string", "enum": signals
                    .iter()
                    .flat_map(|s| {
                        let lower = s.to_ascii_lowercase();
                        [s.to_string(), format!("SIG{s}"), format!("sig{lower}"), lower]
                    })
                    .collect::<Vec<_>>()})),
                "The signal that asks it to stop, sent to its process group (TERM or SIGTERM).",
            )
            .default("TERM"),
            key(
                "stop_timeout",
                Ty::Duration,
                "How long it may take to stop before the group is SIGKILLed (up to 1h).",
            )
            .default("10s"),
            key(
                "healthy_after",
                Ty::Duration,
                "A run shorter than this is a failed start (up to 1h).",
            )
            .default("1s"),
            key(
                "exit_codes",
                Ty::Raw(serde_json::json!({
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 255}
                })),
                "Exit codes that are a normal exit (0 to 255).",
            )
            .default(serde_json::json!([0])),
            key(
                "stderr",
                Ty::Choice(&["merge", "separate"]),
                "Its stderr merged into the output log, or a log of its own (stderr.log).",
            )
            .default("merge"),
            key(
                "log_max_size",
                Ty::Size,
                "Its logs are rotated at this size (at least 1KiB).",
            )
            .default("10MB"),
            key("log_keep", Ty::Int, "Rotated log files kept.").default(DEFAULT_LOG_KEEP),
        ])
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let state = cx.state_dir.clone();
        let raw_command = t.required_string(cx.d, "command");
        let mut args = Vec::new();
        for a in t.strings(cx.d, "args").unwrap_or_default() {
            if a.get_ref().contains('\0') {
                cx.d.error(
                    a.span(),
                    format!(
                        "`args` in {}: an argument cannot hold a NUL byte",
                        t.context
                    ),
                );
            }
            if a.get_ref().len() > MAX_EXEC_STRING {
                cx.d.error(
                    a.span(),
                    format!(
                        "`args` in {}: an argument of {} bytes is longer than a program can be given (128 KiB)",
                        t.context,
                        a.get_ref().len()
                    ),
                );
            }
            args.push(a.get_ref().clone());
        }
        let mut env = Vec::new();
        if let Some(mut e) = t.table(cx.d, "env") {
            e.context = format!("`env` of {}", t.context);
            env = e.string_entries(cx.d);
            for (k, v) in &env {
                if v.contains('\0') {
                    cx.d.error(
                        e.span.clone(),
                        format!(
                            "`env` of {}: the value of {k:?} holds a NUL byte",
                            t.context
                        ),
                    );
                }
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    cx.d.error(
                        e.span.clone(),
                        format!("`env` of {}: {k:?} is not a variable name", t.context),
                    );
                }
                if k.len() + 1 + v.len() > MAX_EXEC_STRING {
                    cx.d.error(
                        e.span.clone(),
                        format!(
                            "`env` of {}: {k:?} is {} bytes, longer than a program can be given (128 KiB)",
                            t.context,
                            v.len()
                        ),
                    );
                }
            }
            e.finish(cx.d);
        }
        let cwd = t.string(cx.d, "cwd").and_then(|v| {
            let p = expand(cx.d, v.get_ref(), v.span(), &state)?;
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => Some(p),
                Ok(_) => {
                    cx.d.error(
                        v.span(),
                        format!("`cwd` in {}: {} is not a directory", t.context, p.display()),
                    );
                    None
                }
                Err(e) => {
                    cx.d.error(
                        v.span(),
                        format!("`cwd` in {}: {}: {e}", t.context, p.display()),
                    );
                    None
                }
            }
        });
        let path_var = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok());
        let command = raw_command.and_then(|c| {
            let base: PathBuf = cwd.clone().unwrap_or_else(|| state.clone());
            match program(c.get_ref(), &base, path_var.as_deref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    cx.d.error(c.span(), format!("`command` in {}: {e}", t.context));
                    None
                }
            }
        });
        let credentials = credentials(cx, t);
        let stop_signal = match t.string(cx.d, "stop_signal") {
            None => metasystem_actors::process::SIGTERM,
            Some(v) => match parse_signal(v.get_ref()) {
                Some(s) => s,
                None => {
                    let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
                    cx.d.error(
                        v.span(),
                        format!(
                            "`stop_signal` in {} is {:?}, which is not {}",
                            t.context,
                            v.get_ref(),
                            crate::config::reader::one_of(&names)
                        ),
                    );
                    metasystem_actors::process::SIGTERM
                }
            },
        };
        let hour = Duration::from_secs(3600);
        let stop_timeout = bounded(cx.d, t, "stop_timeout", Duration::from_millis(1), hour)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let healthy_after = bounded(cx.d, t, "healthy_after", Duration::ZERO, hour)
            .unwrap_or(DEFAULT_HEALTHY_AFTER);
        let mut normal_exit_codes = vec![0];
        if let Some(v) = t.take("exit_codes") {
            let span = v.span();
            let codes: Option<Vec<i32>> = match v.get_ref() {
                toml::de::DeValue::Array(items) => items
                    .iter()
                    .map(|i| match i.get_ref() {
                        toml::de::DeValue::Integer(n) => n
                            .as_str()
                            .parse::<i32>()
                            .ok()
                            .filter(|c| (0..=255).contains(c)),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            match codes {
                Some(c) => normal_exit_codes = c,
                None => cx.d.error(
                    span,
                    format!(
                        "`exit_codes` in {} must be a list of exit codes from 0 to 255, such as [0, 2]",
                        t.context
                    ),
                ),
            }
        }
        let separate = t
            .choice(cx.d, "stderr", &["merge", "separate"])
            .is_some_and(|v| *v.get_ref() == "separate");
        let log_max_size = match spanned_bytes(cx.d, t, "log_max_size") {
            Some(n) if *n.get_ref() >= 1024 => *n.get_ref(),
            Some(n) => {
                cx.d.error(
                    n.span(),
                    format!("`log_max_size` in {} must be at least 1KiB", t.context),
                );
                DEFAULT_LOG_MAX_SIZE
            }
            None => DEFAULT_LOG_MAX_SIZE,
        };
        let log_keep = match t.integer(cx.d, "log_keep") {
            Some(n) if (0..=MAX_KEEP as i64).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                cx.d.error(
                    n.span(),
                    format!(
                        "`log_keep` in {} must be between 0 and {MAX_KEEP}",
                        t.context
                    ),
                );
                DEFAULT_LOG_KEEP
            }
            None => DEFAULT_LOG_KEEP,
        };
        let (out, err) = log_paths(&state, &cx.path);
        let log = |path: PathBuf| LogSpec {
            path,
            rotation: Rotation::Size(log_max_size),
            keep: log_keep,
        };
        let output = OutputSpec {
            stdout: log(out),
            stderr: separate.then(|| log(err)),
        };
        Some(ProcessConfig {
            spec: Arc::new(ProcessSpec {
                command: command?,
                args,
                env,
                cwd,
                credentials: credentials?,
                stop_signal,
                stop_timeout,
                healthy_after,
                normal_exit_codes,
                output,
            }),
        })
    }

    fn default_shutdown(&self) -> Shutdown {
        Shutdown::Timeout(self.spec.stop_timeout + KILL_MARGIN)
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (spec, services) = (self.spec.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                ProcessActor,
                ProcessArgs {
                    path: ctx.path.clone(),
                    spec: spec.clone(),
                    registry: services.processes.clone(),
                    metrics: Some(services.metrics.clone()),
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        use crate::control::protocol::code;
        super::check_op(Self::NAME, Self::OPS, op)?;
        if op == "signal" {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct SignalArgs {
                name: String,
            }
            let a: SignalArgs = super::args(op, args)?;
            let Some(sig) = parse_signal(&a.name) else {
                let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
                return Err(CallError::new(
                    code::BAD_REQUEST,
                    format!(
                        "{:?} is not a signal: it must be {}",
                        a.name,
                        crate::config::reader::one_of(&names)
                    ),
                ));
            };
            return match super::ask(&cx, |r| ProcessMessage::Signal(sig, r)).await? {
                Ok(()) => super::reply(&serde_json::json!({
                    "sent": metasystem_actors::process::signal_name(sig)
                })),
                Err(e) => Err(CallError::new(code::NOT_RUNNING, e)),
            };
        }
        super::args::<NoArgs>(op, args)?;
        super::reply(&super::ask(&cx, ProcessMessage::Status).await?)
    }
}

/// `user` and `group`: resolved now (an unknown name is an error naming the key); `None`
/// inside when neither is set. Switching users needs the daemon to run as root.
fn credentials(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Option<Credentials>> {
    let user = t.string(cx.d, "user");
    let group = t.string(cx.d, "group");
    if user.is_none() && group.is_none() {
        return Some(None);
    }
    let mut ok = true;
    let resolved_user = match &user {
        Some(u) => match users::user(u.get_ref()) {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                cx.d.error(
                    u.span(),
                    format!(
                        "`user` in {}: no user {:?} on this system",
                        t.context,
                        u.get_ref()
                    ),
                );
                ok = false;
                None
            }
            Err(e) => {
                cx.d.error(u.span(), format!("`user` in {}: {e}", t.context));
                ok = false;
                None
            }
        },
        None => None,
    };
    let resolved_group = match &group {
        Some(g) => match users::group(g.get_ref()) {
            Ok(Some(gid)) => Some(gid),
            Ok(None) => {
                cx.d.error(
                    g.span(),
                    format!(
                        "`group` in {}: no group {:?} on this system",
                        t.context,
                        g.get_ref()
                    ),
                );
                ok = false;
                None
            }
            Err(e) => {
                cx.d.error(g.span(), format!("`group` in {}: {e}", t.context));
                ok = false;
                None
            }
        },
        None => None,
    };
    if !ok {
        return None;
    }
    if !users::is_root() {
        let me = rustix::process::geteuid().as_raw();
        let span = user.as_ref().or(group.as_ref()).map(|v| v.span());
        if resolved_user.as_ref().is_some_and(|u| u.uid != me)
            || resolved_group.is_some_and(|g| g != rustix::process::getegid().as_raw())
        {
            cx.d.error(
                span.unwrap_or(t.span.clone()),
                format!(
                    "`user`/`group` in {}: switching users needs the daemon to run as root (it runs as uid {me})",
                    t.context
                ),
            );
            return None;
        }
        // Already who it should be: nothing to switch.
        return Some(None);
    }
    let gid = resolved_group
        .or(resolved_user.as_ref().map(|u| u.gid))
        .unwrap_or(0);
    let groups = match &resolved_user {
        Some(u) => {
            let mut g = users::groups_of(&u.name, u.gid);
            if !g.contains(&gid) {
                g.push(gid);
            }
            g
        }
        None => vec![gid],
    };
    Some(Some(Credentials {
        user: resolved_user.as_ref().map(|u| u.name.clone()),
        uid: resolved_user.as_ref().map(|u| u.uid),
        gid,
        groups,
        home: resolved_user.map(|u| u.home),
    }))
}

/// The process kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum ProcessCommands {
    /// The output of a managed process (`kind = "process"`), from its log files: the last
    /// lines, then (with -f) each new piece as it is written, across restarts.
    Logs {
        /// The process's tree path.
        path: String,
        /// Keep printing its output as it comes (like `tail -f`). Ctrl-C stops.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to show first (0 to 100000).
        #[arg(short = 'n', long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100_000))]
        lines: u32,
        /// Its stderr (when the process logs it separately: `stderr = "separate"`).
        #[arg(long)]
        stderr: bool,
    },
}

impl super::KindCli for ProcessCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            ProcessCommands::Logs {
                path,
                follow,
                lines,
                stderr,
            } => R::Logs {
                path: path.clone(),
                lines: Some(*lines as usize),
                follow: *follow,
                stderr: *stderr,
            }
            .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            program("sh", dir.path(), Some("/bin:/usr/bin")).unwrap(),
            "sh"
        );
        assert!(program("no-such-program-xyz", dir.path(), Some("/bin"))
            .unwrap_err()
            .contains("no program"));
        assert_eq!(
            program("/bin/sh", dir.path(), None).unwrap(),
            "/bin/sh".to_string()
        );
        std::fs::write(dir.path().join("data"), "x").unwrap();
        assert!(program("./data", dir.path(), None)
            .unwrap_err()
            .contains("not executable"));
        assert!(program("", dir.path(), None).is_err());
    }
}
