//! The command line: `metasystem run` is the daemon; `check` validates a config; the other
//! subcommands talk to the running daemon over its control socket.
//!
//! Exit codes: 0 ok; 1 the thing asked about is unhealthy, invalid or refused; 2 usage or
//! connection error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{
    code, Command, EventsResult, ReloadResult, Response, Status, TreeResult,
};

const OK: u8 = 0;
const UNHEALTHY: u8 = 1;
const USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "metasystem",
    version,
    about = "Keeps important state safe and services healthy, with nobody watching",
    after_help = "Exit codes: 0 ok, 1 unhealthy/invalid/refused, 2 usage or connection error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Args, Debug)]
pub struct Global {
    /// The config file (default: $METASYSTEM_CONFIG, else ~/.metasystem/supervision.toml if it
    /// exists, else the embedded default). Client commands read the socket path from it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The daemon's control socket (overrides the config's).
    #[arg(long, global = true, env = "METASYSTEM_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the daemon's answer (at least 1ms).
    #[arg(long, global = true, value_parser = positive_duration, default_value = "60s")]
    pub timeout: Duration,
    /// Log as JSON lines instead of text (`run`).
    #[arg(long, global = true)]
    pub log_json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon in the foreground (systemd/launchd style; logs to stderr).
    Run,
    /// Validate a config file without starting anything (like `nginx -t`).
    Check {
        /// The file (default: the one `run` would use).
        file: Option<PathBuf>,
    },
    /// Daemon version, pid, uptime, and how many actors are in each state.
    Status,
    /// The supervision tree: every actor, its state, restarts and incarnation.
    Tree,
    /// Start a stopped or failed actor.
    Start { path: String },
    /// Stop an actor and keep it stopped.
    Stop { path: String },
    /// Stop and start an actor.
    Restart { path: String },
    /// Crash an actor as if it failed (chaos testing): its supervisor restarts it.
    Kill { path: String },
    /// Re-read the config and apply the difference; an invalid file changes nothing.
    Reload,
    /// Recorded events: starts, exits and why, restarts, heartbeats, reloads.
    Events {
        /// Only the last DURATION (e.g. 30m, 24h).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        since: Option<Duration>,
        /// Only this actor and those below it.
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        /// Only this kind (started, exited, restarted, heartbeat, ...).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many, the most recent (1 to 100000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Run an operation of an actor (its kind's): `call root/heartbeat status`. Without OP,
    /// list the operations its kind offers.
    Call {
        /// The actor's tree path.
        path: String,
        /// The operation.
        op: Option<String>,
        /// Arguments as KEY=VALUE (VALUE is read as JSON when it parses, else as a string).
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Stop the daemon in order.
    Shutdown,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run => run(&cli.global),
        Cmd::Check { ref file } => check(&cli.global, file.as_deref()),
        _ => ExitCode::from(client_command(&cli)),
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(d)
}

fn run(global: &Global) -> ExitCode {
    crate::telemetry::init("info", global.log_json);
    // One scheduler thread for the whole actor system; blocking work goes to tokio's blocking
    // pool and sqlx runs SQLite on its own thread. Measured (BENCHMARKS.md): paced restarts take
    // 9-13 us here vs 15-19 us on a 2-worker runtime, where much of the time goes to waking
    // parked workers.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("metasystem: cannot start the async runtime: {e}");
            return ExitCode::from(crate::daemon::EXIT_START_FAILED);
        }
    };
    let config = global.config.clone();
    // The daemon runs as a spawned task, not in the block_on body (see shared/NOTES.md).
    let code = runtime.block_on(async {
        match tokio::spawn(crate::daemon::run(config)).await {
            Ok(code) => code,
            Err(e) => {
                tracing::error!(error = %e, "the daemon task failed");
                ExitCode::from(crate::daemon::EXIT_ROOT_GAVE_UP)
            }
        }
    });
    // A blocking task stuck on a bad file system must not keep a stopped daemon alive.
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}

fn check(global: &Global, file: Option<&std::path::Path>) -> ExitCode {
    let origin = config::locate(file.or(global.config.as_deref()));
    match config::load(&origin) {
        Ok(c) => {
            let actors = count(&c.root);
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({ "file": origin.display(), "valid": true, "actors": actors })
                );
            } else {
                println!("{}: ok ({actors} actors)", origin.display());
            }
            ExitCode::from(OK)
        }
        Err(errors) => {
            if global.json {
                let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                println!(
                    "{}",
                    serde_json::json!({ "file": origin.display(), "valid": false, "errors": lines })
                );
            } else {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", origin.display(), errors.0.len());
            }
            ExitCode::from(UNHEALTHY)
        }
    }
}

fn count(root: &config::SupervisorConfig) -> usize {
    root.children
        .iter()
        .map(|c| match &c.kind {
            config::Kind::Supervisor(s) => 1 + count(s),
            _ => 1,
        })
        .sum()
}

/// The socket: --socket / METASYSTEM_SOCKET, else the config's.
fn socket(global: &Global) -> Result<PathBuf, String> {
    if let Some(s) = &global.socket {
        return Ok(s.clone());
    }
    let origin = config::locate(global.config.as_deref());
    config::socket_of(&origin)
        .map_err(|e| format!("cannot find the control socket: {e} (pass --socket PATH)"))
}

fn client_command(cli: &Cli) -> u8 {
    let global = &cli.global;
    let command = match &cli.command {
        Cmd::Status => Command::Status,
        Cmd::Tree => Command::Tree,
        Cmd::Start { path } => Command::Start { path: path.clone() },
        Cmd::Stop { path } => Command::Stop { path: path.clone() },
        Cmd::Restart { path } => Command::Restart { path: path.clone() },
        Cmd::Kill { path } => Command::Kill { path: path.clone() },
        Cmd::Reload => Command::Reload,
        Cmd::Events {
            since,
            path,
            kind,
            limit,
        } => Command::Events {
            since_s: since.map(|d| d.as_secs().max(1)),
            path: path.clone(),
            kind: kind.clone(),
            limit: Some(*limit as usize),
        },
        Cmd::Shutdown => Command::Shutdown,
        Cmd::Call { path, op, args } => match call_args(args) {
            Ok(args) => Command::Call {
                path: path.clone(),
                op: op.clone(),
                args,
            },
            Err(message) => {
                eprintln!("metasystem: {message}");
                return USAGE;
            }
        },
        Cmd::Run | Cmd::Check { .. } => return USAGE,
    };
    let connection_error = |message: String| {
        if global.json {
            println!(
                "{}",
                serde_json::json!({ "error": { "code": "connection", "message": message } })
            );
        }
        eprintln!("metasystem: {message}");
        USAGE
    };
    let socket = match socket(global) {
        Ok(s) => s,
        Err(message) => return connection_error(message),
    };
    let response = match client::request(&socket, command, global.timeout) {
        Ok(r) => r,
        Err(ClientError::Connect(m) | ClientError::Protocol(m)) => return connection_error(m),
    };
    if !response.ok {
        return report_error(global, &response);
    }
    let result = response.result.unwrap_or(serde_json::Value::Null);
    if global.json {
        println!("{result}");
    }
    match &cli.command {
        Cmd::Status => match serde_json::from_value::<Status>(result) {
            Ok(s) => {
                if !global.json {
                    print_status(&s);
                }
                if s.healthy {
                    OK
                } else {
                    UNHEALTHY
                }
            }
            Err(e) => unreadable(e),
        },
        Cmd::Tree => match serde_json::from_value::<TreeResult>(result) {
            Ok(t) => {
                if !global.json {
                    print_tree(&t);
                }
                let bad = t
                    .nodes
                    .iter()
                    .any(|n| n.state == "failed" || n.state == "restarting");
                if bad {
                    UNHEALTHY
                } else {
                    OK
                }
            }
            Err(e) => unreadable(e),
        },
        Cmd::Events { .. } => match serde_json::from_value::<EventsResult>(result) {
            Ok(e) => {
                if !global.json {
                    print_events(&e);
                }
                OK
            }
            Err(e) => unreadable(e),
        },
        Cmd::Reload => match serde_json::from_value::<ReloadResult>(result) {
            Ok(r) => {
                if !global.json {
                    print_reload(&r);
                }
                if r.changes.iter().any(|c| c.error.is_some()) {
                    UNHEALTHY
                } else {
                    OK
                }
            }
            Err(e) => unreadable(e),
        },
        Cmd::Start { path } | Cmd::Stop { path } | Cmd::Restart { path } | Cmd::Kill { path } => {
            if !global.json {
                let verb = match &cli.command {
                    Cmd::Start { .. } => "started",
                    Cmd::Stop { .. } => "stopped",
                    Cmd::Restart { .. } => "restarted",
                    _ => "killed (its supervisor will restart it per its policy)",
                };
                println!("{path}: {verb}");
            }
            OK
        }
        Cmd::Shutdown => {
            if !global.json {
                println!("shutting down");
            }
            OK
        }
        Cmd::Call { op, .. } => {
            if !global.json {
                print_call(op.is_none(), &result);
            }
            OK
        }
        Cmd::Run | Cmd::Check { .. } => USAGE,
    }
}

/// `KEY=VALUE` arguments as a JSON object; a VALUE that parses as JSON is taken as such.
fn call_args(args: &[String]) -> Result<serde_json::Value, String> {
    let mut object = serde_json::Map::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("argument {arg:?} is not KEY=VALUE"));
        };
        if key.is_empty() {
            return Err(format!("argument {arg:?} has no key"));
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        if object.insert(key.to_string(), value).is_some() {
            return Err(format!("argument {key:?} is given twice"));
        }
    }
    Ok(if object.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(object)
    })
}

fn print_call(listing: bool, result: &serde_json::Value) {
    if listing {
        if let Ok(ops) =
            serde_json::from_value::<crate::control::protocol::OpsResult>(result.clone())
        {
            println!("{} ({}): operations", ops.path, ops.kind);
            for op in ops.ops {
                let usage = if op.args.is_empty() {
                    op.name.clone()
                } else {
                    format!("{} {}", op.name, op.args)
                };
                println!("  {usage:<24} {}", op.summary);
            }
            return;
        }
    }
    match result {
        serde_json::Value::Object(fields)
            if fields.values().all(|v| !v.is_object() && !v.is_array()) =>
        {
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in fields {
                let shown = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    other => other.to_string(),
                };
                println!("{key:<width$}  {shown}");
            }
        }
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())
        ),
    }
}

fn unreadable(e: serde_json::Error) -> u8 {
    eprintln!("metasystem: unreadable answer from the daemon: {e}");
    USAGE
}

fn report_error(global: &Global, response: &Response) -> u8 {
    let Some(error) = &response.error else {
        eprintln!("metasystem: the daemon refused without saying why");
        return UNHEALTHY;
    };
    if global.json {
        println!("{}", serde_json::json!({ "error": error }));
    } else {
        eprintln!("metasystem: {}", error.message);
        for line in &error.details {
            eprintln!("{line}");
        }
    }
    match error.code.as_str() {
        // Usage errors, and refusals to talk at all (connection errors, not answers).
        code::BAD_REQUEST
        | code::INVALID_PATH
        | code::UNSUPPORTED_VERSION
        | code::TOO_MANY_CONNECTIONS
        | code::FORBIDDEN => USAGE,
        _ => UNHEALTHY,
    }
}

fn short(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0) as u64)).to_string()
}

fn print_status(s: &Status) {
    println!(
        "metasystem {} {} (pid {}, up {})",
        s.version,
        if s.healthy { "healthy" } else { "UNHEALTHY" },
        s.pid,
        short(s.uptime_s as f64)
    );
    println!("config:    {}", s.config);
    println!("state dir: {}", s.state_dir);
    println!("socket:    {}", s.socket);
    println!(
        "actors:    {} running, {} restarting, {} stopped, {} failed",
        s.running, s.restarting, s.stopped, s.failed
    );
}

fn print_tree(t: &TreeResult) {
    let width = t
        .nodes
        .iter()
        .map(|n| n.path.len() + 2 * n.depth)
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<12} {:<11} {:>8} {:>4}  {:<10} LAST EXIT",
        "PATH", "KIND", "STATE", "RESTARTS", "INC", "UPTIME"
    );
    for n in &t.nodes {
        let label = format!("{}{}", "  ".repeat(n.depth), n.path);
        let time = match (n.uptime_s, n.restart_in_s) {
            (Some(up), _) => short(up),
            (None, Some(wait)) => format!("in {}", short(wait.ceil())),
            _ => "-".into(),
        };
        let mut last = n.last_exit.clone().unwrap_or_default();
        if let Some(e) = &n.error {
            last = format!("start failed: {e}");
        }
        if n.unresponsive {
            last = format!("(did not answer) {last}");
        }
        println!(
            "{label:<width$}  {:<12} {:<11} {:>8} {:>4}  {:<10} {last}",
            n.kind, n.state, n.restarts, n.incarnation, time
        );
    }
}

fn print_events(e: &EventsResult) {
    if e.events.is_empty() {
        println!("no events");
        return;
    }
    for ev in &e.events {
        println!("{}  {:<24} {:<18} {}", ev.at, ev.path, ev.kind, ev.message);
    }
}

fn print_reload(r: &ReloadResult) {
    if r.changes.is_empty() {
        println!("{}: no changes", r.config);
    } else {
        println!("{}: {} change(s)", r.config, r.changes.len());
        for c in &r.changes {
            match (&c.error, &c.note) {
                (Some(e), _) => println!("  {:<24} {}  FAILED: {e}", c.action, c.path),
                (None, Some(note)) => println!("  {:<24} {}  ({note})", c.action, c.path),
                (None, None) => println!("  {:<24} {}", c.action, c.path),
            }
        }
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
}
