//! metasystem's runtime: the CLI, the daemon's wiring, telemetry. The supervision engine and
//! the actor kinds live in the `metasystem-actors` crate (`actors/`).

/// What `--version`, `status`, `/health` and the run records say: the package's version and
/// the commit it is built from, `0.1.0 (abc1234 2026-12-07)` (`abc1234-dirty` with
/// uncommitted edits; `unknown` without git: see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("METASYSTEM_BUILD"),
    ")"
);

/// The commit part of [`VERSION`]: `abc1234 2026-12-07`, or `unknown`.
pub const BUILD: &str = env!("METASYSTEM_BUILD");

pub mod chaos;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod export;
pub mod kinds;
pub mod telemetry;
pub mod wiring;
