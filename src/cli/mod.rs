//! The command line (`client` sends requests and renders answers, `render` is the human
//! output): `metasystem run` is the daemon; `check` validates a config; the other
//! subcommands talk to the running daemon over its control socket.
//!
//! Exit codes: 0 ok; 1 the thing asked about is unhealthy, invalid or refused; 2 usage or
//! connection error; `sync` also 3 (done only in part) and 75 (not run: try later). See
//! [`exit`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod chaos;
mod client;
mod docs;
mod progress;
mod render;
mod show;
pub(crate) mod top;

use crate::config;

pub mod exit;

#[derive(Parser, Debug)]
#[command(
    name = "metasystem",
    version = crate::VERSION,
    about = "Keeps important state safe and services healthy, with nobody watching",
    after_help = "Exit codes: 0 ok, 1 unhealthy/invalid/refused, 2 usage or connection error; \
                  `sync` also 3 (done only in part) and 75 (not run, try later)."
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
    /// Print the JSON Schema (draft-07) of supervision.toml, for editors (taplo, Even Better
    /// TOML): save it and point the file at it with `#:schema ./supervision.schema.json`.
    Schema,
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
    /// The chaos monkey: for a while, kill a random running actor under PATH every so often
    /// (as `kill` does) and measure how long each takes to run again; prints each kill and the
    /// report. The run lives in the daemon: Ctrl-C stops following, not the run.
    /// `chaos stop` ends it, `chaos status` shows it.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Chaos {
        #[command(subcommand)]
        action: Option<ChaosAction>,
        /// The targets are the actors under this supervisor (never PATH itself; the store
        /// and the control server are not in the tree, so never targets).
        #[arg(default_value = "root")]
        path: String,
        /// How long the run kills (e.g. 2m, 1h; more than zero, at most 24h).
        #[arg(long = "for", value_parser = crate::chaos::parse_for, value_name = "DURATION", required = true)]
        duration: Option<Duration>,
        /// The wait before each kill is drawn from MIN..MAX (e.g. 200ms..1s).
        #[arg(long, value_parser = crate::chaos::Every::parse, value_name = "MIN..MAX", default_value = "5s..30s")]
        every: crate::chaos::Every,
        /// Makes the waits and choices reproducible (default: random; the run says which).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Re-read the config and apply the difference; an invalid file changes nothing.
    Reload {
        /// Only show what would change (added, changed, removed, reordered); apply nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
        /// At most this many, the most recent (1 to 1000000; default 1000, or 10 with
        /// --follow).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        limit: Option<u32>,
        /// Keep printing events as they are written (like `journalctl -f`); under --json,
        /// one JSON object per line. Ctrl-C stops.
        #[arg(short, long)]
        follow: bool,
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
    /// The kinds' own commands (`src/kinds/<kind>.rs`).
    #[command(flatten)]
    Kind(crate::kinds::KindCommand),
    /// Retried operations (heal actions, alert deliveries): per operation, its runs, success
    /// rate, transient vs permanent failures, commonest errors, median recovery, and the
    /// retry schedule they suggest.
    Retries {
        /// The window (e.g. 24h, 7d, 30d).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "7d")]
        since: Duration,
        /// Only this operation (`heal:root/db:vacuum:/var/lib/app.db`, `alert:email`, ...).
        #[arg(long, value_name = "OP")]
        op: Option<String>,
    },
    /// Stop the daemon in order.
    Shutdown,
    /// A live dashboard: the tree, sync targets, breakers, probes, recent alerts and restarts,
    /// fed by the daemon's event stream. Keys: arrows select, Tab switches tree/breakers,
    /// r restart, s stop, g start, x kill, y sync, b reset breaker, / filter, q quit.
    Top {
        /// How often the screen is redrawn, and the daemon's data read again when events
        /// came in since.
        #[arg(long, value_parser = positive_duration, default_value = "1s")]
        refresh: Duration,
        /// Print the dashboard's data once as JSON and exit (no terminal needed).
        #[arg(long)]
        summary: bool,
    },
    /// `completions SHELL` and `man`: generated from these definitions (`docs.rs`).
    #[command(flatten)]
    Docs(docs::DocsCommand),
}

#[derive(Subcommand, Debug)]
pub enum ChaosAction {
    /// End the running chaos run (recoveries being measured get 5 s) and print its report.
    Stop,
    /// The running chaos run, or the report of the last one since the daemon started.
    Status,
}

pub fn main() -> ExitCode {
    use metasystem_actors::process::spawn;
    // The daemon's helper that kills what managed processes forked when the daemon dies
    // (see `metasystem_actors::process::spawn`): not a command for people.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == spawn::REAPER_ARG)
    {
        return ExitCode::from(spawn::reaper_main() as u8);
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run => run(&cli.global),
        Cmd::Check { ref file } => check(&cli.global, file.as_deref()),
        Cmd::Schema => print_schema(),
        Cmd::Top { refresh, summary } => ExitCode::from(top::main(&cli.global, refresh, summary)),
        Cmd::Docs(ref command) => ExitCode::from(docs::run(command)),
        _ => ExitCode::from(client::run(&cli)),
    }
}

/// `metasystem schema`: the JSON Schema of the config file on stdout.
fn print_schema() -> ExitCode {
    use std::io::Write;
    let text = match serde_json::to_string_pretty(&config::schema::document()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("metasystem: cannot write the schema: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("metasystem: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `--since D` of `backups restore`: a time back from now (`2h`, `1day`) or an RFC 3339 time
/// (`2026-12-01T10:15:00Z`; without a zone, UTC).
pub(crate) fn since_time(text: &str) -> Result<std::time::SystemTime, String> {
    let text = text.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    match humantime::parse_duration(text) {
        Ok(d) => std::time::SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| format!("{text} ago is before any time there is")),
        Err(_) => Err(format!(
            "{text:?} is neither a time back from now (e.g. 2h, 3days) nor an RFC 3339 time \
             (e.g. 2026-12-01T10:15:00Z)"
        )),
    }
}

pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(d)
}

fn run(global: &Global) -> ExitCode {
    // Held to the end: dropping it writes out the buffered log lines.
    // The log settings of `[daemon]` are needed before anything logs: the config is read
    // here once for them (the daemon reads it again and reports what is wrong with it).
    // An invalid config leaves stderr as the log, so its errors are seen.
    let settings = config::load(&config::locate(global.config.as_deref()))
        .ok()
        .map(|c| (c.daemon.log_file, c.daemon.log_json, c.daemon.log_stderr));
    let (file, json, mirror) = settings.unwrap_or((None, false, true));
    if let (Some(spec), false) = (&file, mirror) {
        // Someone watching a terminal learns where the lines go; a service manager's
        // stderr file gets nothing.
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!(
                "metasystem: logging to {} ([daemon] log_stderr = false)",
                spec.path.display()
            );
        }
    }
    // The reaper helper is this binary; through /proc on Linux, so a binary replaced on disk
    // (an upgrade) is still the one that runs.
    let me = std::path::Path::new("/proc/self/exe");
    if me.exists() {
        metasystem_actors::process::spawn::use_reaper(me.to_path_buf());
    } else if let Ok(exe) = std::env::current_exe() {
        metasystem_actors::process::spawn::use_reaper(exe);
    }
    metasystem_actors::memory::limit_arenas();
    let _log = crate::telemetry::init("info", global.log_json || json, file, mirror);
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
            return ExitCode::from(crate::daemon::exit::NOT_READY);
        }
    };
    let config = global.config.clone();
    // The daemon runs as a spawned task, not in the block_on body (see shared/NOTES.md).
    let code = runtime.block_on(async {
        match tokio::spawn(crate::daemon::run(config)).await {
            Ok(code) => code,
            Err(e) => {
                tracing::error!(error = %e, "the daemon task failed");
                ExitCode::from(crate::daemon::exit::TREE_FAILED)
            }
        }
    });
    // Whatever is left on the blocking pool now is work nobody waits for (the daemon's own
    // has ended): a probe's `statvfs` on a hung mount, a file read on a bad file system. It
    // must not keep a stopped daemon alive: a short grace, then the process exits without it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

fn check(global: &Global, file: Option<&std::path::Path>) -> ExitCode {
    use std::io::Write;
    let origin = config::locate(file.or(global.config.as_deref()));
    let mut out = std::io::stdout().lock();
    let (code, written) = match config::load(&origin) {
        Ok(c) => {
            let actors = count(&c.root);
            let warnings: Vec<String> = c
                .root
                .children
                .iter()
                .flat_map(|child| child.kind.warnings(&format!("root/{}", child.name)))
                .collect();
            let written = if global.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "file": origin.display(),
                        "valid": true,
                        "actors": actors,
                        "warnings": warnings,
                    })
                )
            } else {
                for w in &warnings {
                    client::say(&format!("warning: {w}"));
                }
                writeln!(out, "{}: ok ({actors} actors)", origin.display())
            };
            (exit::OK, written)
        }
        Err(errors) => {
            let written = if global.json {
                let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "file": origin.display(), "valid": false, "errors": lines })
                )
            } else {
                client::say(&errors.to_string());
                client::say(&format!(
                    "{}: {} error(s)",
                    origin.display(),
                    errors.0.len()
                ));
                Ok(())
            };
            (exit::UNHEALTHY, written)
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            client::say(&format!("metasystem: cannot write the output: {e}"));
            ExitCode::from(exit::USAGE)
        }
        _ => ExitCode::from(code),
    }
}

/// Actors in the tree, the root supervisor included (as `status` counts them).
fn count(root: &config::SupervisorConfig) -> usize {
    1 + root
        .children
        .iter()
        .map(|c| match &c.kind {
            config::Kind::Supervisor(s) => count(s),
            _ => 1,
        })
        .sum::<usize>()
}
