//! The engine's black-box tests: Erlang's `supervisor_SUITE` cases ported to the restart tree,
//! on a paused tokio clock wherever time matters.

mod backoff;
mod dynamic;
mod event_store;
mod intensity;
mod lifecycle;
mod operations;
mod regressions;
mod restart_matrix;
mod strategies;
mod util;
