//! The command line: `metasystem run` is the daemon; the other subcommands talk to it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "metasystem",
    version,
    about = "Keeps important state safe and services healthy"
)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground (systemd/launchd style; logs to stderr).
    Run,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run => {
            crate::telemetry::init("info", cli.log_json);
            // One scheduler thread for the whole actor system; blocking work goes to tokio's
            // blocking pool (spawn_blocking) and sqlx runs SQLite on its own threads. Measured
            // (BENCHMARKS.md): paced restarts take 9-13 us here vs 15-18 us on a 2-worker
            // runtime, where most of the time goes to waking parked workers.
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
            // The daemon runs as a spawned task, not in the block_on body (see NOTES.md).
            runtime.block_on(async {
                match tokio::spawn(crate::daemon::run(crate::daemon::default_spec())).await {
                    Ok(code) => code,
                    Err(e) => {
                        tracing::error!(error = %e, "the daemon task failed");
                        ExitCode::from(crate::daemon::EXIT_ROOT_GAVE_UP)
                    }
                }
            })
        }
    }
}
