//! The daemon's integration tests: the real binary, run as a daemon on temp dirs, driven by its
//! CLI and by raw socket conversations.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

mod alertmanager;
mod alerts;
mod breakers;
mod chaos;
mod cli_docs;
mod commands;
mod daemon_log;
mod deploy;
mod events;
mod export;
mod faults;
mod fleet;
mod lifecycle;
mod power;
mod probes;
mod process;
mod process_attack;
mod prometheus;
mod reload;
mod retries;
mod schema;
mod socket;
mod store;
mod strategies;
mod sync;
mod sync_attack;
mod sync_crash;
mod sync_faults;
mod sync_hosts;
mod sync_progress;
mod top;
mod util;
