//! The engine's black-box tests: Erlang's `supervisor_SUITE` cases ported to the restart tree,
//! on a paused tokio clock wherever time matters.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

mod alerts;
mod backoff;
mod breakers;
mod channels;
mod dynamic;
mod intensity;
mod lifecycle;
mod metrics;
mod operations;
mod probes;
mod process_attack;
mod regressions;
mod restart_matrix;
mod select_rsync;
mod start_timeout;
mod store;
mod strategies;
mod sync;
mod sync_edges;
mod sync_trust;
mod sync_watch;
mod util;
